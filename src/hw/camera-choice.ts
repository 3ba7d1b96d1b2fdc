/** Choosing what to capture: camera.source auto → CSI or USB; for USB the node, format and closest mode. */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { csiSizes, type CsiCamera, type V4l2Size } from './camera-parse.js';
import type { CameraDiscovery, Found, UsbCamera } from './cameras.js';
import { resolveEncoder, type EncoderProbe, type EncoderProber } from './encoder-probe.js';

type Camera = Config['camera'];

/** The camera settings capture runs with, why, and what was changed to fit the camera. */
export interface ResolvedCamera {
  camera: Camera;
  reason: string;
  /** Settings changed to a mode the camera lists (and other warnings), one sentence each. */
  adjustments: string[];
}

/** Where the discovery results come from (each asked at most once). */
export interface CameraLists {
  usb(): Promise<Found<UsbCamera>>;
  csi(): Promise<Found<CsiCamera>>;
}

/** camera.source auto found no camera at all (the unit runs on and looks again; see CaptureOptions.findCamera). */
export class NoCameraError extends Error {
  override name = 'NoCameraError';
}

/**
 * rpicam-vid's YUV420 needs an even width and height (libcamera would adjust odd ones and the
 * raw frames would be misread): round down, and say so.
 */
export function evenRpicamSize(camera: Camera): { camera: Camera; adjustment: string | null } {
  const width = Math.max(2, camera.width - (camera.width % 2));
  const height = Math.max(2, camera.height - (camera.height % 2));
  if (width === camera.width && height === camera.height) return { camera, adjustment: null };
  return { camera: { ...camera, width, height }, adjustment: `rpicam-vid needs an even width and height: using ${width}x${height} instead of ${camera.width}x${camera.height}` };
}

/** V4L2 four-character codes per camera.format, in order of preference for `auto`. */
const FOURCCS: Record<string, string[]> = { h264: ['H264'], mjpeg: ['MJPG', 'JPEG'], yuyv: ['YUYV'] };
const AUTO_ORDER = ['h264', 'mjpeg', 'yuyv'];

/** The listed size closest to the wanted one (log-ratio distance, larger on a tie) and its closest rate. */
export function closestMode(sizes: V4l2Size[], want: { width: number; height: number; fps: number }): { width: number; height: number; fps: number } | null {
  if (sizes.length === 0) return null;
  const d = (s: V4l2Size) => Math.abs(Math.log(s.width / want.width)) + Math.abs(Math.log(s.height / want.height));
  const best = [...sizes].sort((a, b) => d(a) - d(b) || b.width * b.height - a.width * a.height)[0];
  const fps = best.fps.length ? [...best.fps].sort((a, b) => Math.abs(a - want.fps) - Math.abs(b - want.fps) || b - a)[0] : want.fps;
  return { width: best.width, height: best.height, fps: Math.max(1, Math.round(fps)) };
}

/** Pick node, format and mode of a USB camera; throws when an explicitly asked format is missing. */
export function chooseUsbMode(cam: UsbCamera, camera: Camera): ResolvedCamera {
  const adjustments: string[] = [];
  const known = cam.nodes.filter((n) => n.formats && n.formats.length > 0);
  if (known.length === 0) {
    const node = cam.nodes.find((n) => n.path === camera.device) ?? cam.nodes[0];
    return { camera: { ...camera, source: 'v4l2', device: node.path }, reason: `${cam.name} at ${node.path} (formats unknown: the driver's default format is used)`, adjustments };
  }
  const order = camera.format === 'auto' ? AUTO_ORDER : [camera.format];
  for (const format of order) {
    // Prefer the configured node when it has the format (a camera can put H.264 on a sibling node).
    const nodes = [...known].sort((a, b) => Number(b.path === camera.device) - Number(a.path === camera.device));
    for (const node of nodes) {
      const f = node.formats!.find((x) => FOURCCS[format].includes(x.fourcc));
      if (!f) continue;
      const mode = closestMode(f.sizes, camera);
      if (!mode) continue;
      if (mode.width !== camera.width || mode.height !== camera.height || mode.fps !== camera.fps) {
        adjustments.push(`${cam.name} has no ${f.fourcc} ${camera.width}x${camera.height}@${camera.fps}; using its closest mode ${mode.width}x${mode.height}@${mode.fps}`);
      }
      const why = camera.format === 'auto' ? `${f.fourcc} is the best format it offers` : `camera.format is ${format}`;
      return { camera: { ...camera, source: 'v4l2', device: node.path, format, ...mode }, reason: `${cam.name} at ${node.path}, ${f.fourcc} ${mode.width}x${mode.height}@${mode.fps} (${why})`, adjustments };
    }
  }
  const offered = known.map((n) => `${n.path}: ${n.formats!.map((f) => f.fourcc).join('/')}`).join(', ');
  throw new Error(`camera.format ${camera.format}: ${cam.name} does not offer it (${offered})`);
}

/** Check a CSI camera's modes: the rate is lowered to what a mode at least as large as the frame can do. */
export function chooseCsiMode(cam: CsiCamera, camera: Camera): ResolvedCamera {
  const adjustments: string[] = [];
  let fps = camera.fps;
  const sizes = csiSizes(cam);
  const large = sizes.filter((s) => s.width >= camera.width && s.height >= camera.height);
  const rates = (large.length ? large : sizes).flatMap((s) => s.fps);
  const max = rates.length ? Math.max(...rates) : null;
  if (max !== null && fps > max) {
    fps = Math.max(1, Math.floor(max));
    adjustments.push(`${cam.model} has no mode for ${camera.width}x${camera.height} at ${camera.fps} fps; using ${fps} fps`);
  }
  const even = evenRpicamSize(camera);
  if (even.adjustment) adjustments.push(even.adjustment);
  const { width, height } = even.camera;
  const reason = `CSI camera ${cam.index}: ${cam.model} (${cam.id}), ${width}x${height}@${fps} through rpicam-vid`;
  return { camera: { ...camera, source: 'rpicam', rpicamCamera: cam.index, fps, width, height }, reason, adjustments };
}

/** Resolve camera.source (auto, v4l2, rpicam) against the cameras found; throws NoCameraError when auto finds none. */
export async function chooseCamera(camera: Camera, lists: CameraLists): Promise<ResolvedCamera> {
  if (camera.source === 'testsrc' || camera.source === 'ffmpeg') {
    return { camera, reason: `camera.source is ${camera.source}`, adjustments: [] };
  }
  const notes: string[] = [];
  const csi = camera.source === 'v4l2' ? null : await lists.csi();
  if (csi?.note) notes.push(csi.note);
  if (csi && camera.source !== 'v4l2') {
    const cam = csi.cameras.find((c) => c.index === camera.rpicamCamera) ?? (camera.source === 'auto' ? csi.cameras[0] : undefined);
    if (cam) {
      const r = chooseCsiMode(cam, camera);
      return { ...r, reason: camera.source === 'auto' ? `auto: ${r.reason}` : r.reason, adjustments: [...notes, ...r.adjustments] };
    }
    if (camera.source === 'rpicam') {
      const listed = csi.cameras.map((c) => `${c.index}: ${c.model}`).join(', ') || 'none';
      const even = evenRpicamSize(camera);
      const adjustments = [...notes, `rpicam-hello does not list camera ${camera.rpicamCamera} (listed: ${listed}); rpicam-vid is started anyway`];
      return { camera: even.camera, reason: `rpicam camera ${camera.rpicamCamera} as configured`, adjustments: even.adjustment ? [...adjustments, even.adjustment] : adjustments };
    }
  }
  const usb = await lists.usb();
  if (usb.note) notes.push(usb.note);
  if (camera.source === 'v4l2') {
    const cam = usb.cameras.find((c) => c.nodes.some((n) => n.path === camera.device));
    if (!cam) return { camera, reason: `v4l2 device ${camera.device} as configured`, adjustments: [...notes, `${camera.device} is not a USB camera found by discovery; used as configured`] };
    const r = chooseUsbMode(cam, camera);
    return { ...r, adjustments: [...notes, ...r.adjustments] };
  }
  const first = usb.cameras[0];
  if (!first) {
    const why = notes.length ? ` (${notes.join('; ')})` : '';
    throw new NoCameraError(`camera.source auto: no camera found: rpicam-hello lists no CSI camera and there is no USB camera${why}`);
  }
  const r = chooseUsbMode(first, camera);
  return { ...r, reason: `auto: no CSI camera; USB camera ${r.reason}`, adjustments: [...notes, ...r.adjustments] };
}

/** Camera and encoder as capture will run them, with the reasons. */
export interface ResolvedCapture {
  camera: Camera;
  encoder: Config['encoder'];
  cameraReason: string;
  encoderReason: string;
  adjustments: string[];
  probe: EncoderProbe | null;
}

/** Memoise the discovery so each list is asked once. */
export function listsOf(discovery: CameraDiscovery): CameraLists {
  let usb: Promise<Found<UsbCamera>> | null = null;
  let csi: Promise<Found<CsiCamera>> | null = null;
  return { usb: () => (usb ??= discovery.usb()), csi: () => (csi ??= discovery.csi()) };
}

/** Resolve camera and encoder (auto values) once at start-up, and log the decision once. */
export async function resolveCapture(config: Config, o: { lists: CameraLists; prober: EncoderProber; log?: Logger }): Promise<ResolvedCapture> {
  const cam = await chooseCamera(config.camera, o.lists);
  const enc = await resolveEncoder(config.encoder, cam.camera, o.prober);
  const r: ResolvedCapture = { camera: cam.camera, encoder: enc.encoder, cameraReason: cam.reason, encoderReason: enc.reason, adjustments: cam.adjustments, probe: enc.probe };
  if (o.log) {
    const c = r.camera;
    o.log.info({ source: c.source, device: c.source === 'v4l2' ? c.device : undefined, format: c.source === 'v4l2' ? c.format : undefined, size: `${c.width}x${c.height}`, fps: c.fps, why: r.cameraReason }, 'camera chosen');
    for (const a of r.adjustments) o.log.warn(a);
    o.log.info({ codec: r.encoder.codec, why: r.encoderReason, m2mTrial: r.probe?.m2mTrial?.detail || undefined }, 'encoder chosen');
  }
  return r;
}
