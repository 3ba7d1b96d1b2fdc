/** Waiting on the segment store: the next segment of a run, a capture restart, the first segment past an instant. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentStore, type Segment } from '../../src/capture/segment-store.js';
import { silentLogger } from '../../src/log.js';

const T0 = 1_700_000_000_000;

/** A store that is never loaded from disk: segments come in through add() only. */
function newStore(): SegmentStore {
  return new SegmentStore(join(tmpdir(), 'arenacam-no-such-dir'), { ffprobePath: 'ffprobe', log: silentLogger() });
}

/** A synthetic one-second segment `seq` of the run started at `runBase` (epoch seconds). */
function seg(runBase: number, seq: number, startMs = runBase * 1000 + seq * 1000): Segment {
  const name = `${runBase}_${String(seq).padStart(6, '0')}.ts`;
  return { name, path: join(tmpdir(), name), runBase, seq, startMs, endMs: startMs + 1000, listed: true };
}

/** How many timers keep the event loop alive right now. */
function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

const later = (ms: number, fn: () => void) => setTimeout(fn, ms);

test('nextAfter resolves with the following segment of the run as soon as it is added', async () => {
  const store = newStore();
  const run = T0 / 1000;
  store.add(seg(run, 0));
  const t0 = performance.now();
  const waiting = store.nextAfter(seg(run, 0), 10_000);
  later(50, () => store.add(seg(run, 1)));
  const got = await waiting;
  assert.equal(got?.seq, 1);
  assert.ok(performance.now() - t0 < 1000, 'resolved on arrival, not at the timeout');
  assert.equal(store.listenerCount('segment'), 0);
});

test('nextAfter returns a segment already in the store without waiting', async () => {
  const store = newStore();
  const run = T0 / 1000;
  store.add(seg(run, 0));
  store.add(seg(run, 1));
  assert.equal((await store.nextAfter(seg(run, 0), 10_000))?.seq, 1);
  assert.equal(store.listenerCount('segment'), 0);
});

test('nextAfter resolves null as soon as a segment of a newer run is added, long before its timeout', async () => {
  const store = newStore();
  const run = T0 / 1000;
  store.add(seg(run, 3));
  const timersBefore = activeTimers();
  const t0 = performance.now();
  const waiting = store.nextAfter(seg(run, 3), 10_000);
  // A segment of an older run (recovered from disk) does not end the wait; the restart does.
  later(30, () => store.add(seg(run - 100, 7)));
  later(60, () => store.add(seg(run + 5, 0)));
  assert.equal(await waiting, null);
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `resolved after ${ms.toFixed(0)} ms`);
  assert.ok(ms >= 50, 'the older run did not end the wait');
  assert.equal(store.listenerCount('segment'), 0);
  assert.equal(activeTimers(), timersBefore, 'the timeout was cleared');
});

test('nextAfter resolves null at once when a newer run is already in the store', async () => {
  const store = newStore();
  const run = T0 / 1000;
  store.add(seg(run, 3));
  store.add(seg(run + 5, 0));
  const t0 = performance.now();
  assert.equal(await store.nextAfter(seg(run, 3), 10_000), null);
  assert.ok(performance.now() - t0 < 100);
  assert.equal(store.listenerCount('segment'), 0);
});

test('nextAfter resolves null after its timeout when nothing comes, and stops listening', async () => {
  const store = newStore();
  const run = T0 / 1000;
  store.add(seg(run, 0));
  const t0 = performance.now();
  const waiting = store.nextAfter(seg(run, 0), 150);
  later(30, () => store.add(seg(run, 5))); // same run, but not the next one
  assert.equal(await waiting, null);
  assert.ok(performance.now() - t0 >= 140);
  assert.equal(store.listenerCount('segment'), 0);
});

test('firstEndingAfter returns the earliest stored segment that ends past the instant', async () => {
  const store = newStore();
  const run = T0 / 1000;
  for (let i = 0; i < 4; i++) store.add(seg(run, i));
  // Segment 1 covers [T0+1000, T0+2000): an instant at its exact end belongs to segment 2.
  assert.equal((await store.firstEndingAfter(T0 + 1500, 5000))?.seq, 1);
  assert.equal((await store.firstEndingAfter(T0 + 2000, 5000))?.seq, 2);
  assert.equal((await store.firstEndingAfter(T0 - 60_000, 5000))?.seq, 0);
  assert.equal(store.listenerCount('segment'), 0);
});

test('firstEndingAfter waits for a segment reaching past the instant and skips ones that end before it', async () => {
  const store = newStore();
  const run = T0 / 1000;
  store.add(seg(run, 0));
  const timersBefore = activeTimers();
  const t0 = performance.now();
  const waiting = store.firstEndingAfter(T0 + 2500, 10_000);
  later(30, () => store.add(seg(run, 1))); // ends at T0+2000: not yet
  later(60, () => store.add(seg(run, 2))); // ends at T0+3000
  const got = await waiting;
  assert.equal(got?.seq, 2);
  store.add(seg(run, 3)); // later segments go to nobody
  const ms = performance.now() - t0;
  assert.ok(ms >= 50 && ms < 1000, `resolved after ${ms.toFixed(0)} ms`);
  assert.equal(store.listenerCount('segment'), 0);
  assert.equal(activeTimers(), timersBefore, 'the timeout was cleared');
});

test('firstEndingAfter resolves null after its timeout when capture never gets there', async () => {
  const store = newStore();
  const run = T0 / 1000;
  store.add(seg(run, 0));
  const t0 = performance.now();
  const waiting = store.firstEndingAfter(T0 + 60_000, 150);
  later(30, () => store.add(seg(run, 1)));
  assert.equal(await waiting, null);
  assert.ok(performance.now() - t0 >= 140);
  assert.equal(store.listenerCount('segment'), 0);
});

test('dozens of waiters at once raise no listener-leak warning, and each gets its answer', async () => {
  const store = newStore();
  const run = T0 / 1000;
  store.add(seg(run, 0));
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const waits = [
      ...Array.from({ length: 30 }, () => store.nextAfter(seg(run, 0), 10_000)),
      ...Array.from({ length: 30 }, () => store.firstEndingAfter(T0 + 1500, 10_000)),
    ];
    assert.equal(store.listenerCount('segment'), 60);
    store.add(seg(run, 1));
    const got = await Promise.all(waits);
    assert.ok(got.every((s) => s?.seq === 1));
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    assert.deepEqual(warnings.filter((w) => w.includes('MaxListeners')), []);
    assert.equal(store.listenerCount('segment'), 0);
  } finally {
    process.off('warning', onWarning);
  }
});
