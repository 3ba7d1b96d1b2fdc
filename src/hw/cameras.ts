/** Camera discovery: USB (UVC) cameras through v4l2-ctl or sysfs, CSI cameras through rpicam-hello. */
import { readdir, readFile, realpath } from 'node:fs/promises';
import { join, basename, dirname } from 'node:path';
import { isUsbBlock, parseRpicamCameras, parseV4l2Devices, parseV4l2Formats, type CsiCamera, type V4l2Format } from './camera-parse.js';
import { runCommand, type RunResult } from './encoder-probe.js';

/** One /dev/video node of a USB camera; formats null when they could not be listed. */
export interface UsbNode {
  path: string;
  formats: V4l2Format[] | null;
}

/** A USB camera: one physical device, possibly with several capture nodes (H.264 on its own node). */
export interface UsbCamera {
  name: string;
  bus: string;
  nodes: UsbNode[];
  /** Where the listing came from. */
  via: 'v4l2-ctl' | 'sysfs';
}

/** Cameras of one kind and what went wrong listing them. */
export interface Found<T> {
  cameras: T[];
  /** Why the list may be incomplete (tool missing, failed…); null when all went well. */
  note: string | null;
}

/** How the unit finds its cameras (the seam for tests). */
export interface CameraDiscovery {
  usb(): Promise<Found<UsbCamera>>;
  csi(): Promise<Found<CsiCamera>>;
}

/** Options of the real discovery. */
export interface SystemDiscoveryOptions {
  v4l2ctlPath: string;
  rpicamHelloPath: string;
  /** Root of sysfs (default /sys); tests point it at a fake tree. */
  sysfsRoot?: string;
  timeoutMs?: number;
  run?: (cmd: string, args: string[], timeoutMs?: number) => Promise<RunResult>;
}

const lastLine = (r: RunResult): string => r.error ?? (r.stderr.trim().split('\n').at(-1) || `exit code ${r.code}`);

/** Discovery with the real tools of the machine. */
export class SystemCameraDiscovery implements CameraDiscovery {
  private readonly run: NonNullable<SystemDiscoveryOptions['run']>;
  constructor(private readonly o: SystemDiscoveryOptions) {
    this.run = o.run ?? runCommand;
  }

  async usb(): Promise<Found<UsbCamera>> {
    const t = this.o.timeoutMs ?? 10000;
    const list = await this.run(this.o.v4l2ctlPath, ['--list-devices'], t);
    // v4l2-ctl exits non-zero when some node cannot be opened but still lists the rest.
    const blocks = parseV4l2Devices(list.stdout).filter(isUsbBlock);
    if (list.error && blocks.length === 0) {
      const fromSysfs = await sysfsUsbCameras(this.o.sysfsRoot ?? '/sys');
      return { cameras: fromSysfs, note: `${list.error}: USB cameras read from sysfs, formats unknown (install v4l-utils)` };
    }
    const cameras: UsbCamera[] = [];
    for (const b of blocks) {
      const nodes: UsbNode[] = [];
      for (const path of b.nodes) {
        const r = await this.run(this.o.v4l2ctlPath, ['-d', path, '--list-formats-ext'], t);
        const formats = r.code === 0 ? parseV4l2Formats(r.stdout).formats : null;
        nodes.push({ path, formats });
      }
      cameras.push({ name: b.name, bus: b.bus ?? '', nodes, via: 'v4l2-ctl' });
    }
    return { cameras, note: list.code !== 0 && blocks.length === 0 ? `v4l2-ctl --list-devices: ${lastLine(list)}` : null };
  }

  async csi(): Promise<Found<CsiCamera>> {
    const t = this.o.timeoutMs ?? 10000;
    let tool = this.o.rpicamHelloPath;
    let r = await this.run(tool, ['--list-cameras'], t);
    if (r.error?.endsWith('not found') && tool === 'rpicam-hello') {
      tool = 'libcamera-hello';
      r = await this.run(tool, ['--list-cameras'], t);
    }
    if (r.error) {
      const which = tool === this.o.rpicamHelloPath ? r.error : `${this.o.rpicamHelloPath} and ${r.error}`;
      return { cameras: [], note: `${which}: no CSI cameras can be listed` };
    }
    const cameras = parseRpicamCameras(r.stdout);
    const none = /No cameras available/.test(r.stdout);
    const note = cameras.length === 0 && !none ? `${tool} --list-cameras listed nothing: ${lastLine(r)}` : null;
    return { cameras, note };
  }
}

/** USB video nodes from sysfs (`class/video4linux/videoN`), grouped per USB device; formats unknown. */
export async function sysfsUsbCameras(root: string): Promise<UsbCamera[]> {
  const dir = join(root, 'class', 'video4linux');
  const names = await readdir(dir).catch(() => [] as string[]);
  const byDevice = new Map<string, UsbCamera & { order: number[] }>();
  for (const n of names.filter((x) => /^video\d+$/.test(x))) {
    const target = await realpath(join(dir, n, 'device')).catch(() => null);
    if (!target || !/\/usb\d+\//.test(target)) continue;
    const name = (await readFile(join(dir, n, 'name'), 'utf8').catch(() => n)).trim();
    // The link points at the USB interface (1-1:1.0); its parent is the device.
    const device = /:\d+\.\d+$/.test(basename(target)) ? dirname(target) : target;
    let cam = byDevice.get(device);
    if (!cam) {
      cam = { name, bus: `usb-${basename(device)}`, nodes: [], via: 'sysfs', order: [] };
      byDevice.set(device, cam);
    }
    cam.nodes.push({ path: `/dev/${n}`, formats: null });
    cam.order.push(Number(n.slice(5)));
  }
  return [...byDevice.values()].map(({ order, ...cam }) => ({
    ...cam,
    nodes: cam.nodes.map((node, i) => ({ node, k: order[i] })).sort((a, b) => a.k - b.k).map((x) => x.node),
  }));
}

/** A short text of a format list: `MJPG 1920x1080@30 1280x720@30, YUYV 640x480@30`. */
export function summariseFormats(formats: V4l2Format[] | null, maxSizes = 6): string {
  if (formats === null) return 'formats unknown';
  if (formats.length === 0) return 'no capture formats (metadata node)';
  return formats
    .map((f) => {
      const sizes = f.sizes.slice(0, maxSizes).map((s) => `${s.width}x${s.height}@${s.fps[0] ?? '?'}`);
      const more = f.sizes.length > maxSizes ? ` (+${f.sizes.length - maxSizes})` : '';
      return `${f.fourcc} ${sizes.join(' ')}${more}`;
    })
    .join(', ');
}
