/**
 * Baseline "device" for the capture benchmarks (child process, not a bench of its own): what the
 * existing Python Raspberry Pi device does for a scheduled start — sleep until the target time,
 * then start a fresh ffmpeg that opens the camera and encodes. Here the camera is a stamp-camera
 * FIFO, so the first frame in the file carries the time it was captured.
 *
 * argv[2] is JSON `{ fifo, width, height, fps, targetMs, out, frames, preset, bitrateKbps }`.
 * It sleeps precisely (timer, then spin) until targetMs — the best a sleeping device can do, so
 * only the camera/ffmpeg start-up lands in the measurement — then runs ffmpeg until `frames`
 * frames are written, and prints one JSON line `{ spawnedAtMs, lateByMs, exitCode, stderr }`.
 */
import { spawn } from 'node:child_process';
import { nowMs, sleepUntil } from './capture-lib.js';

/** What one naive recording does (also the type bench/capture-media.ts sends). */
export interface NaiveJob {
  fifo: string;
  width: number;
  height: number;
  fps: number;
  targetMs: number;
  out: string;
  frames: number;
  preset: string;
  bitrateKbps: number;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as NaiveJob;
  const args = [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-y',
    '-f', 'rawvideo', '-pix_fmt', 'gray', '-video_size', `${job.width}x${job.height}`, '-framerate', String(job.fps),
    '-i', job.fifo,
    '-an', '-c:v', 'libx264', '-preset', job.preset, '-b:v', `${job.bitrateKbps}k`, '-pix_fmt', 'yuv420p',
    '-frames:v', String(job.frames), '-f', 'mp4', job.out,
  ];
  await sleepUntil(job.targetMs);
  const spawnedAtMs = nowMs();
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-2000)));
  const exitCode = await new Promise<number | null>((resolve) => {
    child.on('error', (err) => {
      stderr += err.message;
      resolve(null);
    });
    child.on('close', (code) => resolve(code));
  });
  process.stdout.write(JSON.stringify({ spawnedAtMs, lateByMs: spawnedAtMs - job.targetMs, exitCode, stderr: stderr.trim() }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`naive-recorder failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
