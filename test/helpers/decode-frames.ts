/**
 * Read the stamp camera's timecodes back out of a recorded video: ffmpeg decodes it (honouring
 * edit lists, in display order, one output frame per decoded frame) to gray rawvideo on a pipe,
 * and each frame goes through `readTimecode`.
 */
import { spawn } from 'node:child_process';
import { readTimecode, type Timecode } from './timecode.js';

/** Options of `decodeTimecodes`. */
export interface DecodeOptions {
  /** Size the frames are scaled to before reading; use the size the camera painted. */
  width: number;
  height: number;
  /** Stop after this many frames (`-frames:v`). */
  maxFrames?: number;
  /** ffmpeg binary; defaults to `ffmpeg` on PATH. */
  ffmpegPath?: string;
  /** Decode only the end of the file (`-sseof -tailSeconds`). */
  fromEnd?: boolean;
  /** How much of the end `fromEnd` decodes, in seconds (default 3). */
  tailSeconds?: number;
}

/** The timecode of every frame of `file` in display order; null for a frame without a valid code. */
export async function decodeTimecodes(file: string, opts: DecodeOptions): Promise<Array<Timecode | null>> {
  const { width, height } = opts;
  const frameSize = width * height;
  const args = ['-hide_banner', '-nostdin', '-v', 'error'];
  if (opts.fromEnd) args.push('-sseof', `-${opts.tailSeconds ?? 3}`);
  args.push('-i', file, '-map', '0:v:0', '-an', '-sn', '-dn');
  args.push('-vf', `scale=${width}:${height}`, '-fps_mode', 'passthrough');
  if (opts.maxFrames !== undefined) args.push('-frames:v', String(opts.maxFrames));
  args.push('-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1');

  const child = spawn(opts.ffmpegPath ?? 'ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const codes: Array<Timecode | null> = [];
  const frame = Buffer.alloc(frameSize);
  let filled = 0;
  let stderr = '';

  child.stdout.on('data', (chunk: Buffer) => {
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(frameSize - filled, chunk.length - offset);
      chunk.copy(frame, filled, offset, offset + n);
      filled += n;
      offset += n;
      if (filled === frameSize) {
        codes.push(readTimecode(frame, width, height));
        filled = 0;
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });

  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve([c, s]));
  });
  if (code !== 0) {
    throw new Error(`ffmpeg decoding ${file} failed (code ${code}, signal ${signal}): ${stderr.trim()}`);
  }
  if (filled !== 0) throw new Error(`ffmpeg left a partial frame (${filled} of ${frameSize} bytes) decoding ${file}`);
  return codes;
}

/**
 * The timecodes of the last `n` frames of `file` (fewer if the file is shorter). Decodes only the
 * tail, widening it (3 s, 12 s, 48 s, ...) until it holds n frames or covers the whole file.
 */
export async function lastTimecodes(
  file: string,
  n: number,
  opts: Omit<DecodeOptions, 'fromEnd' | 'maxFrames'>,
): Promise<Array<Timecode | null>> {
  let seconds = opts.tailSeconds ?? 3;
  let previous = -1;
  for (;;) {
    const codes = await decodeTimecodes(file, { ...opts, fromEnd: true, tailSeconds: seconds });
    if (codes.length >= n || codes.length === previous || seconds >= 24 * 3600) {
      return codes.slice(Math.max(0, codes.length - n));
    }
    previous = codes.length;
    seconds *= 4;
  }
}
