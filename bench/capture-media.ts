/** Media helpers of the capture benchmarks: read stamp-camera timecodes from files, run the naive baseline recorder. */
import type { NaiveJob } from './naive-recorder.js';
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { readTimecode, type Timecode } from '../test/helpers/timecode.js';
import { startStampCamera, type StampCamera } from '../test/helpers/stamp-camera.js';

const NAIVE = fileURLToPath(new URL('./naive-recorder.js', import.meta.url));

/**
 * Timecodes of the first `maxFrames` frames of `file` in display order. With `ignoreEditlist`
 * the MP4 edit list is ignored, so the frames the trim hides (from the keyframe on) show too.
 */
export async function timecodes(
  file: string,
  o: { width: number; height: number; maxFrames: number; ignoreEditlist?: boolean },
): Promise<Array<Timecode | null>> {
  const size = o.width * o.height;
  const args = ['-hide_banner', '-nostdin', '-v', 'error'];
  if (o.ignoreEditlist) args.push('-ignore_editlist', '1');
  args.push('-i', file, '-map', '0:v:0', '-an', '-vf', `scale=${o.width}:${o.height}`, '-fps_mode', 'passthrough');
  args.push('-frames:v', String(o.maxFrames), '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1');
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Array<Timecode | null> = [];
  const frame = Buffer.alloc(size);
  let filled = 0;
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    for (let off = 0; off < chunk.length; ) {
      const n = Math.min(size - filled, chunk.length - off);
      chunk.copy(frame, filled, off, off + n);
      filled += n;
      off += n;
      if (filled === size) {
        out.push(readTimecode(frame, o.width, o.height));
        filled = 0;
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-2000)));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`ffmpeg could not decode ${file} (code ${code}): ${stderr.trim()}`);
  return out;
}

/** The painted capture time and frame index of the first displayed frame of `file`. */
export async function firstFrame(file: string, width: number, height: number): Promise<Timecode> {
  const [tc] = await timecodes(file, { width, height, maxFrames: 1 });
  if (!tc) throw new Error(`the first frame of ${file} carries no readable timecode`);
  return tc;
}

/**
 * The frame that should have been shown first: among the frames stored from the keyframe on
 * (edit list ignored), the first whose painted time is at or after `startMs`. Null if none.
 */
export async function idealFirstFrame(file: string, width: number, height: number, startMs: number, maxFrames = 90): Promise<Timecode | null> {
  const all = await timecodes(file, { width, height, maxFrames, ignoreEditlist: true });
  return all.find((t) => t !== null && t.epochMs >= startMs) ?? null;
}

/** What one naive-recorder run reported. */
export interface NaiveRun {
  spawnedAtMs: number;
  lateByMs: number;
  exitCode: number | null;
  stderr: string;
}

/** Run the naive baseline recorder (a child that sleeps until targetMs, then starts ffmpeg on the FIFO). */
export function runNaive(job: NaiveJob): Promise<NaiveRun> {
  const child = spawn(process.execPath, [NAIVE, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        const r = JSON.parse(line) as NaiveRun;
        if (r.exitCode !== 0) reject(new Error(`baseline ffmpeg failed (${r.exitCode}): ${r.stderr}`));
        else resolve(r);
      } catch {
        reject(new Error(`naive recorder exited ${code} without a result: ${stderr.trim()}`));
      }
    });
  });
}

/**
 * Start a fresh stamp camera with a random frame phase: after a random delay of up to one frame
 * period, briefly open its FIFO for reading (non-blocking), so the camera connects and starts
 * its absolute frame schedule, then leave. A later reader gets frames on that schedule, so its
 * first frame comes 0…1 frame after it opens — like a real camera whose sensor runs on its own
 * clock — and two cameras primed this way have independent phases.
 */
export async function freshCamera(fifoPath: string, width: number, height: number, fps: number): Promise<StampCamera> {
  const cam = await startStampCamera({ fifoPath, width, height, fps });
  try {
    await new Promise((r) => setTimeout(r, Math.random() * (1000 / fps)));
    const fh = await open(fifoPath, constants.O_RDONLY | constants.O_NONBLOCK);
    await new Promise((r) => setTimeout(r, 100));
    await fh.close();
    // The camera notices the reader left on its next write; a new reader must come after that.
    await new Promise((r) => setTimeout(r, 3 * (1000 / fps)));
    return cam;
  } catch (err) {
    await cam.stop();
    throw err;
  }
}
