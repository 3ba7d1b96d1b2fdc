import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mp4Error, readMp4Info, samplePts, trimStart } from '../../src/media/mp4.js';
import { children } from '../../src/media/mp4-boxes.js';

const N = 90; // frames: three 1-second GOPs at 30 fps
const SIDE = 64; // frame width and height; 16x16 blocks each carry one bit of the frame index
const TICK = 3000; // one frame in the 90 kHz media timescale ffmpeg keeps from MPEG-TS

/** Runs a tool, feeding `input` on stdin, and resolves with its stdout. */
function run(cmd: string, args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, ['-hide_banner', '-v', 'error', ...args], { stdio: 'pipe' });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${cmd} exited ${code}: ${err.slice(-800)}`));
    });
    child.stdin.on('error', () => {}); // a failing tool may close stdin early; 'close' reports it
    child.stdin.end(input);
  });
}

/** Gray frames whose 16 blocks spell the frame index in binary (black = 0, white = 1). */
function indexedFrames(from: number, count: number): Buffer {
  const buf = Buffer.alloc(SIDE * SIDE * count);
  for (let f = 0; f < count; f++) {
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        const bit = (y >> 4) * 4 + (x >> 4);
        buf[f * SIDE * SIDE + y * SIDE + x] = ((from + f) >> bit) & 1 ? 255 : 0;
      }
    }
  }
  return buf;
}

/** Reads the index back from each decoded gray frame (block centres thresholded at mid-gray). */
function frameIndices(raw: Buffer): number[] {
  const out: number[] = [];
  for (let f = 0; f + SIDE * SIDE <= raw.length; f += SIDE * SIDE) {
    let index = 0;
    for (let bit = 0; bit < 16; bit++) {
      const centre = f + ((bit >> 2) * 16 + 8) * SIDE + (bit & 3) * 16 + 8;
      if (raw[centre] > 128) index |= 1 << bit;
    }
    out.push(index);
  }
  return out;
}

const x264 = ['-c:v', 'libx264', '-bf', '0', '-g', '30', '-x264-params', 'scenecut=0', '-pix_fmt', 'yuv420p'];
const rawIn = ['-f', 'rawvideo', '-pix_fmt', 'gray', '-s', `${SIDE}x${SIDE}`, '-r', '30', '-i', 'pipe:0'];

/** Encodes frames [from, from+count) into an MPEG-TS segment, as the capture does. */
async function makeTs(path: string, from: number, count: number): Promise<void> {
  await run('ffmpeg', ['-y', ...rawIn, ...x264, '-f', 'mpegts', path], indexedFrames(from, count));
}

/** Stream-copies `input` into an MP4 (extra args before the output name). */
async function remux(input: string[], out: string, extra: string[] = []): Promise<void> {
  await run('ffmpeg', ['-y', ...input, '-c', 'copy', ...extra, out]);
}

/** Decodes a file's video to gray frames and reads their indices back. */
async function decodeIndices(path: string): Promise<number[]> {
  const args = ['-i', path, '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1'];
  return frameIndices(await run('ffmpeg', args));
}

/** ffprobe's idea of the container duration, in seconds. */
async function probeDuration(path: string): Promise<number> {
  const out = await run('ffprobe', ['-show_entries', 'format=duration', '-of', 'csv=p=0', path]);
  return Number(out.toString().trim());
}

/** Rewrites a moov-at-end file's version 0 elst as version 1, growing the boxes around it. */
async function upgradeElstToV1(path: string): Promise<void> {
  const info = await readMp4Info(path);
  const file = await readFile(path);
  const entries = info.tracks[0].edits;
  const elstStart = entries[0].fileOffset - 16;
  const v1 = Buffer.alloc(16 + 20 * entries.length);
  v1.writeUInt32BE(v1.length, 0);
  v1.write('elst', 4, 'latin1');
  v1[8] = 1;
  v1.writeUInt32BE(entries.length, 12);
  entries.forEach((e, i) => {
    v1.writeBigUInt64BE(BigInt(e.segmentDuration), 16 + 20 * i);
    v1.writeBigInt64BE(BigInt(e.mediaTime), 24 + 20 * i);
    v1.writeUInt32BE(e.rate * 65536, 32 + 20 * i);
  });
  const grow = v1.length - file.readUInt32BE(elstStart);
  const moov = info.moovOffset;
  const trak = children(file, moov + 8, moov + file.readUInt32BE(moov), 0).find((b) => b.type === 'trak')!;
  for (const at of [moov, trak.start, elstStart - 8]) file.writeUInt32BE(file.readUInt32BE(at) + grow, at);
  const tail = file.subarray(elstStart + file.readUInt32BE(elstStart));
  await writeFile(path, Buffer.concat([file.subarray(0, elstStart), v1, tail]));
}

describe('mp4 edit-list reader and trimmer', () => {
  let dir = '';
  const file = (name: string): string => join(dir, name);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'arenacam-mp4-'));
    await makeTs(file('seg.ts'), 0, N);
    await remux(['-i', file('seg.ts')], file('front.mp4'), ['-movflags', '+faststart']);
    await remux(['-i', file('seg.ts')], file('end.mp4'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the test media decodes to frames 0..N-1 before any trimming', async () => {
    assert.deepEqual(await decodeIndices(file('front.mp4')), Array.from({ length: N }, (_, i) => i));
  });

  for (const layout of ['front', 'end'] as const) {
    test(`readMp4Info reports samples, timing, sync samples and the elst with the moov at the ${layout}`, async () => {
      const info = await readMp4Info(file(`${layout}.mp4`));
      assert.equal(info.movieTimescale, 1000);
      assert.equal(info.movieDuration, 3000);
      assert.equal(info.moovOffset < 100, layout === 'front');
      assert.equal(info.tracks.length, 1);
      const t = info.tracks[0];
      assert.equal(t.handler, 'vide');
      assert.equal(t.mediaTimescale, 90000);
      assert.equal(t.mediaDuration, N * TICK);
      assert.equal(t.sampleCount, N);
      assert.deepEqual(t.sampleDts, Array.from({ length: N }, (_, i) => i * TICK));
      assert.equal(t.compositionOffsets, null);
      assert.equal(samplePts(t, 31), 31 * TICK);
      assert.deepEqual(t.syncSamples, [1, 31, 61]);
      assert.equal(t.elstVersion, 0);
      assert.deepEqual(
        t.edits.map(({ segmentDuration, mediaTime, rate }) => ({ segmentDuration, mediaTime, rate })),
        [{ segmentDuration: 3000, mediaTime: 0, rate: 1 }],
      );
    });

    for (const k of [0, 7, 29, 45]) {
      test(`trimming ${k} frames with the moov at the ${layout} makes frame ${k} the first decoded`, async () => {
        const path = file(`${layout}-trim${k}.mp4`);
        await copyFile(file(`${layout}.mp4`), path);
        await trimStart(path, 1, k * TICK);
        const info = await readMp4Info(path);
        const kept = 3000 - Math.round((k * 1000) / 30);
        assert.equal(info.movieDuration, kept);
        assert.equal(info.tracks[0].duration, kept);
        assert.equal(info.tracks[0].edits[0].mediaTime, k * TICK);
        assert.equal(info.tracks[0].edits[0].segmentDuration, kept);
        const frames = await decodeIndices(path);
        assert.equal(frames[0], k);
        assert.equal(frames.length, N - k);
        assert.deepEqual(frames, Array.from({ length: N - k }, (_, i) => k + i));
        assert.ok(Math.abs((await probeDuration(path)) - (N - k) / 30) < 0.02);
      });
    }
  }

  test('a recording concatenated from 1-second segments trims to the frame', async () => {
    const list: string[] = [];
    for (let s = 0; s < 3; s++) {
      await makeTs(file(`cat${s}.ts`), 30 * s, 30);
      list.push(`file '${file(`cat${s}.ts`)}'`);
    }
    await writeFile(file('list.txt'), list.join('\n') + '\n');
    const out = file('concat.mp4');
    await remux(['-f', 'concat', '-safe', '0', '-i', file('list.txt')], out, ['-movflags', '+faststart']);
    const before = await readMp4Info(out);
    assert.deepEqual(before.tracks[0].syncSamples, [1, 31, 61]);
    assert.equal(before.tracks[0].edits.length, 1);
    await trimStart(out, 1, 40 * TICK);
    const frames = await decodeIndices(out);
    assert.equal(frames[0], 40);
    assert.equal(frames.length, N - 40);
  });

  test('a version 1 elst is read and trimmed like a version 0 one', async () => {
    const path = file('v1.mp4');
    await copyFile(file('end.mp4'), path);
    await upgradeElstToV1(path);
    const info = await readMp4Info(path);
    assert.equal(info.tracks[0].elstVersion, 1);
    assert.equal(info.tracks[0].edits[0].segmentDuration, 3000);
    assert.equal((await decodeIndices(path)).length, N);
    await trimStart(path, 1, 12 * TICK);
    assert.equal((await readMp4Info(path)).tracks[0].edits[0].mediaTime, 12 * TICK);
    const frames = await decodeIndices(path);
    assert.equal(frames[0], 12);
    assert.equal(frames.length, N - 12);
  });

  test('a non-MP4 file is rejected as not an MP4', async () => {
    const notMp4 = (e: unknown): boolean => e instanceof Mp4Error && /not an MP4/.test(e.message);
    await assert.rejects(readMp4Info(file('seg.ts')), notMp4);
    await writeFile(file('text.mp4'), 'hello, this is not a movie\n');
    await assert.rejects(readMp4Info(file('text.mp4')), /not an MP4/);
  });

  test('a truncated file is rejected whether the cut is in the moov or in the mdat', async () => {
    for (const layout of ['front', 'end']) {
      const path = file(`${layout}-cut.mp4`);
      await copyFile(file(`${layout}.mp4`), path);
      await truncate(path, 2000);
      const cut = /truncated or corrupt MP4: box '(moov|mdat)' at offset \d+ declares/;
      await assert.rejects(readMp4Info(path), cut);
      await assert.rejects(trimStart(path, 1, TICK), Mp4Error);
    }
  });

  test('a file written without an edit list reads with no edits and refuses to be trimmed', async () => {
    const path = file('noelst.mp4');
    await remux(['-i', file('seg.ts')], path, ['-use_editlist', '0']);
    const info = await readMp4Info(path);
    assert.deepEqual(info.tracks[0].edits, []);
    assert.equal(info.tracks[0].elstVersion, null);
    await assert.rejects(trimStart(path, 1, TICK), /track 1 has no edit list \(elst\)/);
  });

  test('trimming past the end, by a bad offset or on a missing track fails and changes nothing', async () => {
    const path = file('bad-trim.mp4');
    await copyFile(file('front.mp4'), path);
    const original = await readFile(path);
    await assert.rejects(trimStart(path, 1, N * TICK), /beyond track 1/);
    await assert.rejects(trimStart(path, 1, -1), /non-negative integer/);
    await assert.rejects(trimStart(path, 1, 1.5), /non-negative integer/);
    await assert.rejects(trimStart(path, 2, TICK), /no track with id 2/);
    assert.deepEqual(await readFile(path), original);
  });

  test('reading a 10-minute file of 18000 samples takes milliseconds', async () => {
    const path = file('long.mp4');
    const src = ['-f', 'lavfi', '-i', 'color=c=gray:s=64x64:r=30:d=600'];
    await run('ffmpeg', ['-y', ...src, ...x264, '-preset', 'ultrafast', path]);
    await readMp4Info(path); // warm the page cache and the JIT
    const started = performance.now();
    const info = await readMp4Info(path);
    const ms = performance.now() - started;
    assert.equal(info.tracks[0].sampleCount, 18000);
    assert.equal(info.tracks[0].syncSamples?.length, 600);
    assert.ok(ms < 50, `readMp4Info took ${ms.toFixed(1)} ms`);
  });
});
