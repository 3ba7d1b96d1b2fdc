/** The capture pipeline against real ffmpeg: segments arrive, runs rotate, stop is clean. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CapturePipeline } from '../../src/capture/pipeline.js';
import { SegmentStore } from '../../src/capture/segment-store.js';
import { silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/util/clock.js';
import { tempDir, testConfig, waitFor } from '../helpers/device.js';

test('a run older than the rotation age is replaced by a new run without an error or a gap of more than a second', async (t) => {
  const tmp = await tempDir();
  const log = silentLogger();
  const config = testConfig(tmp.dir, { camera: { width: 160, height: 120 } } as never);
  const store = new SegmentStore(join(tmp.dir, 'segments'), { ffprobePath: 'ffprobe', log });
  let rotate = false;
  const cap = new CapturePipeline({ config, store, clock: systemClock, log, mayRotate: () => rotate, rotateAfterMs: 2000 });
  const health: boolean[] = [];
  cap.on('health', (h) => health.push(h.alive));
  t.after(async () => {
    await cap.stop();
    await tmp.cleanup();
  });
  await cap.start();
  await waitFor(() => store.size >= 3, 15000, 'segments of the first run');
  assert.equal(new Set(store.all().map((s) => s.runBase)).size, 1, 'no rotation while a recording forbids it');
  rotate = true;
  await waitFor(() => new Set(store.all().map((s) => s.runBase)).size >= 2 && store.all().at(-1)!.seq >= 1, 15000, 'a second run');
  rotate = false;
  const segs = store.all();
  const firstOfNew = segs.findIndex((s) => s.runBase !== segs[0].runBase);
  const gap = segs[firstOfNew].startMs - segs[firstOfNew - 1].endMs;
  assert.ok(gap < 1000, `gap between runs ${gap.toFixed(0)} ms`);
  assert.equal(cap.status().restarts, 0, 'a planned rotation is not a failure');
  assert.deepEqual(health, [true], 'health never went bad');
});

test('the store re-indexes from disk: listed segments keep their times, the first of each run is probed', async (t) => {
  const tmp = await tempDir();
  const log = silentLogger();
  const config = testConfig(tmp.dir, { camera: { width: 160, height: 120 } } as never);
  const store = new SegmentStore(join(tmp.dir, 'segments'), { ffprobePath: 'ffprobe', log });
  const cap = new CapturePipeline({ config, store, clock: systemClock, log });
  t.after(() => tmp.cleanup());
  await cap.start();
  await waitFor(() => store.size >= 3, 15000, 'segments');
  await cap.stop();
  const before = store.all();
  const again = new SegmentStore(join(tmp.dir, 'segments'), { ffprobePath: 'ffprobe', log });
  await again.load();
  const after = again.all();
  assert.equal(after.length, before.length);
  for (let i = 0; i < after.length; i++) {
    assert.equal(after[i].name, before[i].name);
    assert.ok(Math.abs(after[i].startMs - before[i].startMs) < 0.5, `${after[i].name} start`);
  }
  assert.ok(after[0].startMs > after[0].runBase * 1000, 'the first segment has its probed start, not the run base');
});
