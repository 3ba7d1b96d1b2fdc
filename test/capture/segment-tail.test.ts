/** Reading the segment ffmpeg is still writing, up to the first frame at or after an instant. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packetFrameMs, tailOpenSegment, type TailEnd } from '../../src/capture/segment-tail.js';
import { videoPtsList } from '../../src/media/ts-pts.js';
import { segmentPath } from '../../src/capture/ffmpeg-args.js';
import { startUnit, tempDir, waitFor } from '../helpers/device.js';

const FRAME_MS = 1000 / 30;

async function collect(gen: AsyncGenerator<Buffer, TailEnd>): Promise<{ bytes: Buffer; end: TailEnd; endedAt: number }> {
  const parts: Buffer[] = [];
  let r = await gen.next();
  while (!r.done) {
    parts.push(Buffer.from(r.value));
    r = await gen.next();
  }
  return { bytes: Buffer.concat(parts), end: r.value, endedAt: Date.now() };
}

test('the open segment is read as it is written and ends just before the first frame at or after the stop', async () => {
  const { dir, cleanup } = await tempDir();
  const unit = await startUnit({ dataDir: dir });
  try {
    await waitFor(() => unit.app.store.size >= 2, 15000, 'segments');
    const last = unit.app.store.all().at(-1)!;
    // Inside the open segment (it ends about a second after the last one), still ahead of now.
    const stopMs = last.endMs + 500;
    const { bytes, end, endedAt } = await collect(tailOpenSegment(unit.app.store, last, stopMs, 5000));
    assert.equal(end.kind, 'reached');
    assert.ok(endedAt - stopMs < 400, `reached ${endedAt - stopMs} ms after the stop instant (a segment closes up to 1000 ms after)`);
    assert.equal(bytes.length % 188, 0, 'whole packets only');
    const frames = videoPtsList(bytes).map((p) => last.runBase * 1000 + p / 90);
    assert.ok(frames.length > 5);
    assert.ok(frames.every((t) => t < stopMs), 'no frame at or after the stop');
    assert.ok(Math.max(...frames) >= stopMs - 2 * FRAME_MS, 'every frame before the stop is there');
    assert.ok(Math.abs(Math.min(...frames) - last.endMs) < FRAME_MS / 2, `it starts with the segment after the given one: first ${Math.min(...frames) - last.endMs} ms from its end`);
  } finally {
    await unit.stop();
    await cleanup();
  }
});

test('a segment that closes before the stop is read whole and handed on; a stalled one ends as gone', async () => {
  const { dir, cleanup } = await tempDir();
  const unit = await startUnit({ dataDir: dir });
  try {
    await waitFor(() => unit.app.store.size >= 2, 15000, 'segments');
    const last = unit.app.store.all().at(-1)!;
    const { bytes, end } = await collect(tailOpenSegment(unit.app.store, last, Date.now() + 60000, 5000));
    assert.equal(end.kind, 'closed');
    const seg = (end as { kind: 'closed'; seg: typeof last }).seg;
    assert.equal(seg.seq, last.seq + 1);
    const { readFile } = await import('node:fs/promises');
    assert.ok(bytes.equals(await readFile(seg.path)), 'every byte of the closed segment');
    await unit.app.capture.stop();
    const stalled = await collect(tailOpenSegment(unit.app.store, unit.app.store.all().at(-1)!, Date.now() + 60000, 300));
    assert.equal(stalled.end.kind, 'gone');
  } finally {
    await unit.stop();
    await cleanup();
  }
});

test('a stop at the first frame of the open segment yields nothing; an aborted tail ends on a whole frame', async () => {
  const { dir, cleanup } = await tempDir();
  const unit = await startUnit({ dataDir: dir });
  try {
    await waitFor(() => unit.app.store.size >= 2, 15000, 'segments');
    const last = unit.app.store.all().at(-1)!;
    // The open segment's first frame: a stop there yields none of its frames. (Not last.endMs:
    // ffmpeg's listed end is the last frame + one nominal frame duration, and a loaded machine
    // delivers frames closer together than that.)
    const { readFile: read } = await import('node:fs/promises');
    const openPath = segmentPath(unit.app.store.dir, last.runBase, last.seq + 1);
    const firstOpenMs = await waitFor(async () => {
      const buf = await read(openPath).catch(() => Buffer.alloc(0));
      for (let o = 0; o + 188 <= buf.length; o += 188) {
        const ms = packetFrameMs(buf.subarray(o, o + 188), last.runBase);
        if (ms !== null) return ms;
      }
      return null;
    }, 5000, 'the open segment\'s first frame');
    const first = await collect(tailOpenSegment(unit.app.store, last, firstOpenMs, 5000));
    assert.equal(first.end.kind, 'reached');
    assert.equal(videoPtsList(first.bytes).length, 0, 'only the tables before the first frame');

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 350);
    const cut = await collect(tailOpenSegment(unit.app.store, last, Date.now() + 60000, 5000, ac.signal));
    assert.equal(cut.end.kind, 'gone');
    assert.ok(cut.bytes.length > 0 && cut.bytes.length % 188 === 0);
    const seg = await waitFor(() => unit.app.store.all().find((s) => s.runBase === last.runBase && s.seq === last.seq + 1), 5000, 'the segment to close');
    const { readFile } = await import('node:fs/promises');
    const file = await readFile(seg.path);
    assert.ok(file.subarray(0, cut.bytes.length).equals(cut.bytes), 'a prefix of the segment');
    assert.notEqual(packetFrameMs(file.subarray(cut.bytes.length, cut.bytes.length + 188), last.runBase), null, 'it stops right before a frame starts');
  } finally {
    await unit.stop();
    await cleanup();
  }
});

test('packet parsing ignores packets that do not start a video PES', () => {
  const p = Buffer.alloc(188, 0xff);
  p[0] = 0x47;
  assert.equal(packetFrameMs(p, 0), null, 'no payload-unit start');
  p[1] = 0x40;
  p[3] = 0x10;
  p.set([0, 0, 1, 0xc0], 4);
  assert.equal(packetFrameMs(p, 0), null, 'an audio stream id');
  p.set([0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0x00, 0x01, 0x00, 0x03], 4);
  assert.equal(packetFrameMs(p, 1000), 1000 * 1000 + 1 / 90, 'PTS 1 tick after the run base');
  // 27 h into a run the 33-bit PTS has wrapped; a nearby time tells which turn it is.
  const turn = 2 ** 33 / 90;
  assert.equal(packetFrameMs(p, 1000, 1000 * 1000 + turn + 5), 1000 * 1000 + turn + 1 / 90, 'after the wrap');
});
