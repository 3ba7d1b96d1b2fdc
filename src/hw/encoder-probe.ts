/** Choosing the H.264 encoder by probing: h264_v4l2m2m where a trial encode works (Pi 4), else libx264. */
import { execFile } from 'node:child_process';
import type { Config } from '../config/schema.js';
import { parseCodecList } from './camera-parse.js';

/** What a probe found out and what it chose. */
export interface EncoderProbe {
  /** Encoders ffmpeg lists (`-encoders`); null when the listing failed. */
  encoders: string[] | null;
  /** The chosen encoder. */
  codec: 'h264_v4l2m2m' | 'libx264';
  /** Why, in one sentence. */
  reason: string;
  /** The trial encode with h264_v4l2m2m: null when not tried, else ok or the failure explained. */
  m2mTrial: { ok: boolean; detail: string } | null;
}

/** Something that can tell which H.264 encoder works on this machine (the seam for tests). */
export interface EncoderProber {
  probe(size: { width: number; height: number; fps: number }): Promise<EncoderProbe>;
}

/** The result of running one command. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Spawn failure or timeout, when there was one. */
  error?: string;
}

/** Run `cmd args` with a time limit; never rejects (failures are in the result). */
export function runCommand(cmd: string, args: string[], timeoutMs = 10000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 8 << 20, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; code?: number | string }) | null;
      if (!e) return resolve({ code: 0, stdout, stderr });
      const code = typeof e.code === 'number' ? e.code : null;
      const error = e.code === 'ENOENT' ? `${cmd} not found` : e.killed ? `${cmd} timed out after ${timeoutMs} ms` : code === null ? e.message : undefined;
      resolve({ code, stdout: stdout ?? '', stderr: stderr ?? '', ...(error ? { error } : {}) });
    });
  });
}

/** Known h264_v4l2m2m failures, as a sentence for the log (the raw lines stay in `detail`). */
export function explainM2mFailure(stderr: string): string {
  if (/Could not find a valid device/.test(stderr)) {
    return 'no V4L2 memory-to-memory H.264 encoder device (the Pi 5 has no H.264 encoder block; on a Pi 4 the bcm2835-codec driver is not loaded)';
  }
  if (/Encoder requires yuv420p pixel format/.test(stderr)) return 'the encoder refused the pixel format (it takes yuv420p only)';
  if (/Unknown encoder|Encoder not found/i.test(stderr)) return 'this ffmpeg was built without h264_v4l2m2m';
  if (/can't configure encoder|Error while opening encoder/.test(stderr)) return 'the encoder device refused the settings';
  const last = stderr.trim().split('\n').filter(Boolean).at(-1);
  return last ? `trial encode failed: ${last.trim()}` : 'trial encode failed without a message';
}

/** Options of the real prober. */
export interface FfmpegProberOptions {
  ffmpegPath: string;
  timeoutMs: number;
  bitrateKbps: number;
  /** Injectable command runner (default: runCommand). */
  run?: typeof runCommand;
}

/** Probes with the real ffmpeg: list encoders, then a 10-frame trial with h264_v4l2m2m. */
export class FfmpegEncoderProber implements EncoderProber {
  constructor(private readonly o: FfmpegProberOptions) {}

  async probe(size: { width: number; height: number; fps: number }): Promise<EncoderProbe> {
    const run = this.o.run ?? runCommand;
    const list = await run(this.o.ffmpegPath, ['-hide_banner', '-encoders'], this.o.timeoutMs);
    const encoders = list.code === 0 ? parseCodecList(list.stdout) : null;
    const noX264 = encoders !== null && !encoders.includes('libx264') ? ' (but this ffmpeg has no libx264 either: capture will fail)' : '';
    const x264 = (why: string, trial: EncoderProbe['m2mTrial']): EncoderProbe => ({ encoders, codec: 'libx264', reason: why + noX264, m2mTrial: trial });
    if (encoders === null) {
      return x264(`ffmpeg -encoders failed (${list.error ?? list.stderr.trim().split('\n').at(-1) ?? `code ${list.code}`}); using libx264`, null);
    }
    if (!encoders.includes('h264_v4l2m2m')) return x264('this ffmpeg has no h264_v4l2m2m encoder; using libx264', null);
    // Even sizes only: the trial must not fail for a reason the capture would not have.
    const w = size.width - (size.width % 2);
    const h = size.height - (size.height % 2);
    const trial = await run(
      this.o.ffmpegPath,
      [
        '-hide_banner', '-nostdin', '-loglevel', 'error',
        '-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=${size.fps}`,
        '-frames:v', '10', '-pix_fmt', 'yuv420p', '-c:v', 'h264_v4l2m2m', '-b:v', `${this.o.bitrateKbps}k`,
        '-f', 'null', '-',
      ],
      this.o.timeoutMs,
    );
    if (trial.code === 0 && !trial.error) {
      return { encoders, codec: 'h264_v4l2m2m', reason: `a ${w}x${h} trial encode with h264_v4l2m2m worked`, m2mTrial: { ok: true, detail: '' } };
    }
    const detail = trial.error ?? trial.stderr.trim();
    const why = trial.error ?? explainM2mFailure(trial.stderr);
    return x264(`h264_v4l2m2m is listed but a trial encode failed: ${why}; using libx264`, { ok: false, detail });
  }
}

/** The encoder settings capture runs with, and why. */
export interface ResolvedEncoder {
  encoder: Config['encoder'];
  reason: string;
  probe: EncoderProbe | null;
}

/**
 * Resolve encoder.codec: an explicit codec is kept; `auto` is `copy` when the camera itself
 * sends H.264 (v4l2 format h264: no decode, no encode, stamped as packets arrive), otherwise
 * the prober's choice.
 */
export async function resolveEncoder(
  encoder: Config['encoder'],
  camera: Config['camera'],
  prober: EncoderProber,
): Promise<ResolvedEncoder> {
  const cameraH264 = camera.source === 'v4l2' && camera.format === 'h264';
  if (encoder.codec === 'copy' && camera.source !== 'ffmpeg' && !cameraH264) {
    throw new Error(`encoder.codec "copy" needs a camera that sends H.264 (camera.source v4l2 with format h264, or an ffmpeg input); this one is ${camera.source}${camera.source === 'v4l2' ? `/${camera.format}` : ''}`);
  }
  if (encoder.codec !== 'auto') return { encoder, reason: `encoder.codec is set to ${encoder.codec}`, probe: null };
  if (cameraH264) {
    return { encoder: { ...encoder, codec: 'copy' }, reason: 'the camera sends H.264 itself: stream copy (segments end at the camera\'s keyframes; capture warns once if they are far apart — then camera.format mjpeg or encoder.codec libx264 gives short segments)', probe: null };
  }
  const probe = await prober.probe({ width: camera.width, height: camera.height, fps: camera.fps });
  return { encoder: { ...encoder, codec: probe.codec }, reason: probe.reason, probe };
}
