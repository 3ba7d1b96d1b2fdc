/** `arenacam cameras`: what cameras and encoders this machine has, and what the config would run. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { loadConfig } from '../config/load.js';
import { buildCaptureCommand } from '../capture/ffmpeg-args.js';
import { findSetpriv } from '../util/child.js';
import { csiSizes } from './camera-parse.js';
import { SystemCameraDiscovery, summariseFormats } from './cameras.js';
import { chooseCamera, listsOf, type CameraLists, type ResolvedCamera } from './camera-choice.js';
import { FfmpegEncoderProber, resolveEncoder, type EncoderProber, type ResolvedEncoder } from './encoder-probe.js';

/** Everything `arenacam cameras` found out, as printed with --json. */
export interface CamerasReport {
  usb: Awaited<ReturnType<CameraLists['usb']>>;
  csi: Awaited<ReturnType<CameraLists['csi']>>;
  camera: ResolvedCamera | null;
  encoder: ResolvedEncoder | null;
  /** The command capture would start (rpicam: `rpicam-vid … | ffmpeg …`). */
  command: string | null;
  error: string | null;
  /** True when the configured source has a camera (or is testsrc/ffmpeg). */
  usable: boolean;
}

/** Build the report; discovery and prober default to the real ones from the config. */
export async function camerasReport(config: Config, o: { lists?: CameraLists; prober?: EncoderProber; now?: number } = {}): Promise<CamerasReport> {
  const c = config.camera;
  const lists = o.lists ?? listsOf(new SystemCameraDiscovery({ v4l2ctlPath: c.v4l2ctlPath, rpicamHelloPath: c.rpicamHelloPath }));
  const prober = o.prober ?? new FfmpegEncoderProber({ ffmpegPath: config.capture.ffmpegPath, timeoutMs: config.encoder.probeTimeoutMs, bitrateKbps: config.encoder.bitrateKbps });
  const [usb, csi] = [await lists.usb(), await lists.csi()];
  const report: CamerasReport = { usb, csi, camera: null, encoder: null, command: null, error: null, usable: false };
  try {
    report.camera = await chooseCamera(c, lists);
    report.encoder = await resolveEncoder(config.encoder, report.camera.camera, prober);
    const cam = report.camera.camera;
    report.command = buildCaptureCommand(
      { camera: cam, encoder: report.encoder.encoder, segmentSec: config.segments.durationSec, runBase: Math.floor((o.now ?? Date.now()) / 1000), dir: join(resolve(config.dataDir), 'segments') },
      { ffmpegPath: config.capture.ffmpegPath, setprivPath: findSetpriv() },
    ).display;
    report.usable =
      cam.source === 'testsrc' ||
      cam.source === 'ffmpeg' ||
      (cam.source === 'rpicam' && csi.cameras.some((x) => x.index === cam.rpicamCamera)) ||
      (cam.source === 'v4l2' && (usb.cameras.some((u) => u.nodes.some((n) => n.path === cam.device)) || existsSync(cam.device)));
  } catch (err) {
    report.error = (err as Error).message;
  }
  return report;
}

/** The report as text for people. */
export function formatReport(r: CamerasReport): string {
  const out: string[] = [];
  out.push(`USB cameras: ${r.usb.cameras.length}${r.usb.note ? ` (${r.usb.note})` : ''}`);
  for (const u of r.usb.cameras) {
    out.push(`  ${u.name} (${u.bus})`);
    for (const n of u.nodes) out.push(`    ${n.path}: ${summariseFormats(n.formats)}`);
  }
  out.push(`CSI cameras: ${r.csi.cameras.length}${r.csi.note ? ` (${r.csi.note})` : ''}`);
  for (const cam of r.csi.cameras) {
    const modes = csiSizes(cam).map((s) => `${s.width}x${s.height}@${s.fps[0] ?? '?'}`);
    out.push(`  ${cam.index}: ${cam.model} (${cam.id}) modes ${modes.join(' ')}`);
  }
  if (r.encoder?.probe) {
    const p = r.encoder.probe;
    const trial = p.m2mTrial ? `h264_v4l2m2m trial encode ${p.m2mTrial.ok ? 'worked' : 'failed'}` : 'no h264_v4l2m2m trial';
    out.push(`Encoder probe: ${trial}; libx264 ${p.encoders === null ? 'unknown' : p.encoders.includes('libx264') ? 'available' : 'missing'}`);
    if (p.m2mTrial && !p.m2mTrial.ok && p.m2mTrial.detail) out.push(`  h264_v4l2m2m said: ${p.m2mTrial.detail.split('\n').join(' | ')}`);
  }
  if (r.error) {
    out.push(`Configured source: cannot run: ${r.error}`);
    return out.join('\n') + '\n';
  }
  const cam = r.camera!;
  out.push(`Configured source: ${cam.reason}`);
  for (const a of cam.adjustments) out.push(`  note: ${a}`);
  out.push(`Encoder: ${r.encoder!.encoder.codec} (${r.encoder!.reason})`);
  out.push(`Command: ${r.command}`);
  if (!r.usable) out.push('No usable camera for this configuration.');
  return out.join('\n') + '\n';
}

/** `arenacam cameras [--config FILE] [--json]`: print the report; exit 0 when the source is usable. */
export async function camerasCli(argv: string[], write: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  let file = process.env.ARENACAM_CONFIG || undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--json') json = true;
    else if (argv[i] === '--config' || argv[i] === '-c') file = argv[++i];
    else if (argv[i].startsWith('--config=')) file = argv[i].slice('--config='.length);
    else {
      process.stderr.write(`arenacam cameras: unknown argument ${argv[i]}\n`);
      return 2;
    }
  }
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (err) {
    process.stderr.write(`arenacam: ${(err as Error).message}\n`);
    return 2;
  }
  const r = await camerasReport(config);
  write(json ? JSON.stringify(r, null, 2) + '\n' : formatReport(r));
  return r.usable ? 0 : 1;
}
