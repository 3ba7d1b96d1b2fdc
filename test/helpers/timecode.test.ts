import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { paintTimecode, readTimecode, timecodeGeometry, type Timecode } from './timecode.js';
import { startStampCamera, type StampCamera } from './stamp-camera.js';
import { decodeTimecodes, lastTimecodes } from './decode-frames.js';

const SIZES: Array<[number, number]> = [[320, 240], [640, 480], [1280, 720], [1920, 1080]];

/** A small deterministic PRNG (xorshift32), so a failing noise frame can be reproduced. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function noiseFrame(width: number, height: number, seed: number): Buffer {
  const random = prng(seed);
  const frame = Buffer.alloc(width * height);
  for (let i = 0; i < frame.length; i++) frame[i] = Math.floor(random() * 256);
  return frame;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

describe('the block timecode', () => {
  it('reads back exactly what was painted at every size from 320x240 to 1920x1080', () => {
    for (const [width, height] of SIZES) {
      for (const [epochMs, frameIndex] of [[Date.now(), 0], [1_700_000_000_123.5, 12345], [2 ** 48 - 1, 2 ** 24 - 1]]) {
        const frame = noiseFrame(width, height, width + frameIndex);
        paintTimecode(frame, width, height, epochMs, frameIndex);
        assert.deepEqual(readTimecode(frame, width, height), { epochMs, frameIndex }, `${width}x${height}`);
      }
    }
  });

  it('keeps the epoch to 1/256 ms and wraps the frame index at 2^24', () => {
    const frame = Buffer.alloc(320 * 240, 128);
    paintTimecode(frame, 320, 240, 1_795_311_735_648.123_456, 2 ** 24 + 7);
    const code = readTimecode(frame, 320, 240);
    assert.ok(code);
    assert.ok(Math.abs(code.epochMs - 1_795_311_735_648.123_456) <= 1 / 512);
    assert.equal(code.frameIndex, 7);
  });

  it('still reads when every pixel is disturbed by up to 60 gray levels of noise', () => {
    for (const [width, height] of SIZES) {
      const frame = Buffer.alloc(width * height, 128);
      paintTimecode(frame, width, height, 1_800_000_000_000, 99);
      const random = prng(7);
      for (let i = 0; i < frame.length; i++) frame[i] = Math.max(0, Math.min(255, frame[i] + Math.round((random() - 0.5) * 120)));
      assert.deepEqual(readTimecode(frame, width, height), { epochMs: 1_800_000_000_000, frameIndex: 99 });
    }
  });

  it('finds no timecode in random noise, flat gray or a code with one flipped cell', () => {
    for (const [width, height] of SIZES) {
      for (let seed = 1; seed <= 5; seed++) assert.equal(readTimecode(noiseFrame(width, height, seed), width, height), null);
      assert.equal(readTimecode(Buffer.alloc(width * height, 128), width, height), null);
    }
    const frame = Buffer.alloc(320 * 240, 128);
    paintTimecode(frame, 320, 240, 1_800_000_000_000, 1);
    const g = timecodeGeometry(320, 240);
    const centre = (g.y0 + 3 * g.cell + g.cell / 2) * 320 + g.x0 + 5 * g.cell + g.cell / 2;
    const flipped = 255 - frame[centre];
    for (let y = -4; y < 4; y++) frame.fill(flipped, centre + y * 320 - 4, centre + y * 320 + 4);
    assert.equal(readTimecode(frame, 320, 240), null);
  });

  it('refuses a frame too small to hold the code or a buffer shorter than the frame', () => {
    assert.throws(() => paintTimecode(Buffer.alloc(160 * 120), 160, 120, 0, 0), RangeError);
    assert.throws(() => readTimecode(Buffer.alloc(100), 320, 240), RangeError);
  });
});

describe('the stamp camera recorded by ffmpeg with libx264', () => {
  const fps = 30;
  const period = 1000 / fps;
  let dir = '';
  const cameras: StampCamera[] = [];
  const running = new Set<ChildProcess>();

  /** Run ffmpeg to completion (killed after `timeoutMs`), failing with its stderr on a bad exit. */
  function ffmpeg(args: string[], timeoutMs = 15_000): Promise<void> {
    const child = spawn('ffmpeg', ['-hide_banner', '-nostdin', '-y', '-v', 'error', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        running.delete(child);
        if (code === 0) resolve();
        else reject(new Error(`ffmpeg exited with ${code ?? signal}: ${stderr}`));
      });
    });
  }

  function cameraInput(fifo: string, width: number, height: number): string[] {
    return ['-f', 'rawvideo', '-pix_fmt', 'gray', '-video_size', `${width}x${height}`, '-framerate', String(fps), '-i', fifo];
  }

  const x264 = ['-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '1M', '-bf', '0', '-pix_fmt', 'yuv420p'];

  /** Every frame decodes, indices are consecutive, spacing is one period, and there is no drift. */
  function assertTimeline(codes: Array<Timecode | null>, startedBefore: number, frames: number): Timecode[] {
    assert.equal(codes.length, frames);
    const valid = codes.filter((c): c is Timecode => c !== null);
    assert.equal(valid.length, codes.length, `${codes.length - valid.length} frames carry no readable timecode`);
    valid.forEach((c, i) => assert.equal(c.frameIndex, valid[0].frameIndex + i, `frame ${i} has index ${c.frameIndex}`));
    const spacing = valid.slice(1).map((c, i) => c.epochMs - valid[i].epochMs);
    assert.ok(Math.abs(median(spacing) - period) <= 2, `median spacing ${median(spacing)} ms`);
    assert.ok(Math.max(...spacing) < 2.5 * period, `a gap of ${Math.max(...spacing)} ms is more than 2 frames`);
    const offset = valid.map((c) => c.epochMs - c.frameIndex * period);
    const half = Math.floor(offset.length / 2);
    assert.ok(Math.abs(median(offset.slice(half)) - median(offset.slice(0, half))) < 2, 'the schedule drifts');
    assert.ok(valid[0].epochMs >= startedBefore, 'the first frame was painted before ffmpeg started');
    assert.ok(valid[valid.length - 1].epochMs <= Date.now(), 'the last frame was painted in the future');
    return valid;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'arenacam-timecode-'));
    cameras.push(await startStampCamera({ fifoPath: join(dir, 'cam.fifo'), width: 320, height: 240, fps }));
  });

  after(async () => {
    for (const child of running) child.kill('SIGKILL');
    await Promise.all(cameras.map((c) => c.stop()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('records an MPEG-TS whose every frame carries its capture time, one period apart', async () => {
    const out = join(dir, 'out.ts');
    const startedBefore = Date.now();
    await ffmpeg([...cameraInput(join(dir, 'cam.fifo'), 320, 240), '-t', '3', ...x264, out]);
    assertTimeline(await decodeTimecodes(out, { width: 320, height: 240 }), startedBefore, 3 * fps);
  });

  it('records an MP4 just as well after its reader restarted, and reads its tail with lastTimecodes', async () => {
    const out = join(dir, 'out.mp4');
    const startedBefore = Date.now();
    await ffmpeg([...cameraInput(join(dir, 'cam.fifo'), 320, 240), '-t', '3', ...x264, out]);
    const all = assertTimeline(await decodeTimecodes(out, { width: 320, height: 240 }), startedBefore, 3 * fps);
    assert.deepEqual(await lastTimecodes(out, 5, { width: 320, height: 240 }), all.slice(-5));
    assert.deepEqual(await decodeTimecodes(out, { width: 320, height: 240, maxFrames: 4 }), all.slice(0, 4));
  });

  it('reads a 1920x1080 camera recorded scaled down to 1280x720', async () => {
    const fifo = join(dir, 'hd.fifo');
    cameras.push(await startStampCamera({ fifoPath: fifo, width: 1920, height: 1080, fps }));
    const out = join(dir, 'hd.mp4');
    await ffmpeg([...cameraInput(fifo, 1920, 1080), '-t', '1', '-vf', 'scale=1280:720', ...x264, out]);
    const codes = await decodeTimecodes(out, { width: 1920, height: 1080 });
    assert.equal(codes.length, fps);
    assert.ok(codes.every((c) => c !== null), 'every frame carries a readable timecode');
  });

  it('stops when asked and reports its own write spacing, lateness and CPU use', async (t) => {
    for (const camera of cameras) {
      await camera.stop();
      const stats = camera.stats();
      assert.ok(stats, 'the camera reported its stats');
      assert.ok(Math.abs(stats.spacingMs.median - period) <= 1, `median write spacing ${stats.spacingMs.median} ms`);
      t.diagnostic(`camera ${camera.pid}: ${JSON.stringify(stats)}`);
    }
    assert.equal(cameras[0].stats()?.connections, 2, 'the 320x240 camera served two readers');
    assert.throws(() => process.kill(cameras[0].pid, 0), /ESRCH/);
  });
});
