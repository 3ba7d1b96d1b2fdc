/** The button and LED on a whole unit (fake pins, real capture, clips, recordings, coordinator). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startCoordinator } from '../helpers/coordinator.js';
import { TEST_VAR, withPairedUnit } from '../helpers/var-unit.js';
import { sendCommand } from '../helpers/controller.js';
import { startUnit, tempDir, waitFor, type ConfigPatch, type TestUnit } from '../helpers/device.js';
import { decodeTimecodes, lastTimecodes } from '../helpers/decode-frames.js';
import { FakeGpio, type FakeInput, type FakeOutput } from '../fakes/gpio.js';
import type { ClipListItem } from '../../src/device/clips.js';
import type { AppSeams } from '../../src/app.js';

const FRAME_MS = 1000 / 30;
const GPIO = { enabled: true, debounceMs: 30, longPressMs: 600 };
const CLIPS = { preRollMs: 2000, postRollMs: 1000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The unit's clock (systemClock). */
const now = () => performance.timeOrigin + performance.now();

/** Press with contact chatter, hold `holdMs`, release with chatter; resolves with the first edge's time. */
async function press(pin: FakeInput, holdMs: number): Promise<number> {
  const t0 = now();
  pin.set(true, t0);
  pin.set(false, t0 + 2);
  pin.set(true, t0 + 5);
  await sleep(holdMs);
  const t1 = now();
  pin.set(false, t1);
  pin.set(true, t1 + 3);
  pin.set(false, t1 + 6);
  return t0;
}

type Rig = { unit: TestUnit; gpio: FakeGpio; button: FakeInput; led: FakeOutput; base: string; dir: string };

/** A unit with fake pins for one test, cleaned up whatever happens. */
async function withButtonUnit(opts: { patch?: ConfigPatch; stamp?: boolean; seams?: AppSeams }, fn: (r: Rig) => Promise<void>): Promise<void> {
  const { dir, cleanup } = await tempDir();
  const gpio = new FakeGpio();
  let unit: TestUnit | null = null;
  try {
    unit = await startUnit({ dataDir: dir, stamp: opts.stamp, patch: { gpio: GPIO, clips: CLIPS, ...opts.patch }, seams: { gpio, ...opts.seams } });
    const base = `http://127.0.0.1:${unit.app.httpPort}`;
    await fn({ unit, gpio, button: gpio.inputs.get(17)!, led: gpio.outputs.get(27)!, base, dir });
  } finally {
    await unit?.stop();
    await cleanup();
  }
}

const getJson = async (url: string): Promise<any> => (await fetch(url)).json();
const buttonClips = async (base: string): Promise<ClipListItem[]> => ((await getJson(`${base}/clips`)).clips as ClipListItem[]).filter((c) => c.source === 'button');

test('a short press makes a clip of the default window around the press, listed at GET /clips and downloadable', () =>
  withButtonUnit({ stamp: true }, async ({ unit, base, button, led, dir }) => {
    await waitFor(() => unit.app.store.size >= 4, 15000, 'pre-roll');
    await waitFor(async () => (await getJson(`${base}/health`)).gpio?.led === 'ready', 5000, 'the LED to show ready');
    const t0 = await press(button, 150);
    const released = now();
    const [clip] = await waitFor(() => buttonClips(base).then((l) => (l.length ? l : null)), 20000, 'the button clip');
    assert.equal(clip.markMs, t0, 'the mark is the first edge of the press');
    assert.equal(clip.fromMs, t0 - CLIPS.preRollMs);
    assert.equal(clip.toMs, t0 + CLIPS.postRollMs);
    assert.equal(clip.url, `/clips/${clip.id}.mp4`);
    assert.match(clip.id, /^CLIP-[A-Za-z0-9_-]{22}$/);
    assert.equal(clip.sessionId, null);
    assert.equal(clip.delivered, false);
    const health = await getJson(`${base}/health`);
    assert.equal(health.clips.count, 1);
    assert.equal(health.gpio.button, 17);
    const flashes = led.writes.filter((w) => w.on && w.atMs >= released && w.atMs < released + 1000).length;
    assert.ok(flashes >= 3, `the LED acknowledged the press (${flashes} flashes in 1 s)`);

    const res = await fetch(`${base}${clip.url}`);
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, clip.sizeBytes);
    const file = join(dir, 'button-clip.mp4');
    await writeFile(file, body);
    const codes = await decodeTimecodes(file, { width: 320, height: 240 });
    assert.ok(codes.length > 0 && codes.every((c) => c !== null), 'every frame decodes with its capture time');
    const first = codes[0]!.epochMs;
    const last = codes.at(-1)!.epochMs;
    assert.ok(first >= clip.fromMs - 1 && first < clip.fromMs + FRAME_MS + 1, `first frame ${(first - clip.fromMs).toFixed(1)} ms from the window start`);
    assert.ok(last < clip.toMs && last >= clip.toMs - 2 * FRAME_MS, `last frame ${(clip.toMs - last).toFixed(1)} ms before the window end`);
    await waitFor(async () => (await buttonClips(base))[0].delivered, 3000, 'the clip to count as delivered');

    const book = JSON.parse(await readFile(join(dir, 'var-sessions.json'), 'utf8'));
    const marks = book.flatMap((s: { marks: unknown[] }) => s.marks);
    assert.deepEqual(marks, [{ markId: clip.markId, coordinatorTs: null, deviceTs: t0, note: 'button', source: 'button' }]);
    assert.equal(unit.logs.find('button mark').length, 1);
    assert.equal(unit.logs.find('button clip ready')[0].clipId, clip.id);
  }));

test('a long press starts a local recording and the next one stops it; the file is in the catalog and covers the time between', () =>
  withButtonUnit({ stamp: true }, async ({ unit, base, button, led, dir }) => {
    await waitFor(() => unit.app.store.size >= 2, 15000, 'capture');
    const held = press(button, GPIO.longPressMs + 300);
    await waitFor(() => unit.app.device.isRecording(), 3000, 'the recording to start while the button is held');
    await held;
    const startMs = unit.logs.find('local recording started (long press)')[0].startMs as number;
    await waitFor(async () => (await getJson(`${base}/health`)).gpio.led === 'recording', 3000, 'the LED to show recording');
    assert.equal(led.level(), true);
    await sleep(1500);
    const asked = now();
    await press(button, GPIO.longPressMs + 300);
    await waitFor(() => !unit.app.device.isRecording() && unit.app.device.listRecordings().length === 1, 15000, 'the recording to stop');
    const rec = unit.app.device.listRecordings()[0];
    assert.equal(unit.logs.find('local recording stopped (long press)')[0].fileName, rec.fileName);
    const path = join(dir, 'recordings', rec.fileName);
    const firstMs = (await decodeTimecodes(path, { width: 320, height: 240, maxFrames: 1 }))[0]!.epochMs;
    const lastMs = (await lastTimecodes(path, 1, { width: 320, height: 240 }))[0]!.epochMs;
    assert.ok(firstMs >= startMs - 1 && firstMs < startMs + FRAME_MS + 1, `first frame ${(firstMs - startMs).toFixed(1)} ms after the long press took effect`);
    // The stop is decided at the second threshold: after the press began, before it was released.
    assert.ok(lastMs > asked + GPIO.longPressMs - 2 * FRAME_MS && lastMs < asked + GPIO.longPressMs + 1000, `last frame ${(lastMs - asked).toFixed(0)} ms after the second press`);
    assert.equal(unit.logs.find('long press refused').length, 0);
  }));

test('with a paired coordinator recording a session, a button mark tells it nothing and a long press is refused', async () => {
  const coord = await startCoordinator();
  await withButtonUnit({ patch: { var: { ...TEST_VAR, coordinator: coord.pairLink(coord.newToken()) } } }, async ({ unit, base, button, dir }) => {
    const id = unit.app.deviceId;
    await waitFor(() => coord.devices().get(id)?.authed, 10000, 'pairing');
    await waitFor(() => unit.app.store.size >= 3, 15000, 'pre-roll');
    coord.startRecord(id, 'S1', null);
    await coord.waitFor((m) => m.type === 'recording_started');
    const from = coord.received.length;
    const t0 = await press(button, 120);
    const [clip] = await waitFor(() => buttonClips(base).then((l) => (l.length ? l : null)), 20000, 'the button clip');
    assert.equal(clip.markMs, t0);
    assert.equal(clip.sessionId, 'S1', 'the clip is filed with the open session, locally');
    await press(button, GPIO.longPressMs + 200);
    const refused = await waitFor(() => unit.logs.find('long press refused')[0], 3000, 'the refusal');
    assert.match(String(refused.reason), /VAR session S1 owns the recording/);
    assert.ok(unit.app.device.isRecording(), 'the session recording goes on');
    await sleep(3 * TEST_VAR.statusIntervalMs);
    const since = coord.received.slice(from).filter((r) => r.deviceId === id);
    assert.deepEqual([...new Set(since.map((r) => r.msg?.type))], ['status'], 'only status messages since the press');
    assert.ok(since.length >= 2);
    for (const r of since) assert.deepEqual([r.msg.payload.isRecording, r.msg.sessionId], [true, 'S1']);
    assert.equal(coord.devices().get(id)!.sessionId, 'S1');

    coord.stopRecord(id, 'S1');
    const stopped = await coord.waitFor((m) => m.type === 'recording_stopped');
    assert.equal(stopped.sessionId, 'S1');
    const book = JSON.parse(await readFile(join(dir, 'var-sessions.json'), 'utf8'));
    const s1 = book.find((s: { sessionId: string }) => s.sessionId === 'S1');
    assert.deepEqual(s1.marks.map((m: { markId: string; source: string }) => [m.markId, m.source]), [[clip.markId, 'button']]);
    assert.equal(coord.received.filter((r) => ['mark_ack', 'clip_ready'].includes(r.msg?.type)).length, 0);
  }).finally(() => coord.close());
});

test('with a paired coordinator that is idle, a long press is refused: nothing records and its next status still says isRecording false', async () => {
  const gpio = new FakeGpio();
  await withPairedUnit({ patch: { gpio: GPIO, clips: CLIPS }, seams: { gpio } }, async ({ unit, coord, id }) => {
    const base = `http://127.0.0.1:${unit.app.httpPort}`;
    await waitFor(() => unit.app.store.size >= 2, 15000, 'capture');
    await waitFor(async () => (await getJson(`${base}/health`)).coordinator?.state === 'ready', 5000, 'the link to be ready');
    await press(gpio.inputs.get(17)!, GPIO.longPressMs + 300);
    const refused = await waitFor(() => unit.logs.find('long press refused')[0], 3000, 'the refusal');
    assert.match(String(refused.reason), /^a VAR coordinator is connected \(link ready\); a local recording is for standalone use only/);
    assert.equal((await getJson(`${base}/health`)).gpio.led, 'refused', 'the LED blinks refused');
    assert.equal(unit.app.device.isRecording(), false);
    assert.equal(unit.logs.find('local recording started').length, 0);
    const from = coord.received.length;
    const status = await waitFor(() => coord.received.slice(from).find((r) => r.deviceId === id && r.msg?.type === 'status'), 5000, 'the next status');
    assert.equal(status.msg.payload.isRecording, false);
    assert.equal(status.msg.sessionId ?? null, null);
    // The camera is still the coordinator's to record with.
    coord.startRecord(id, 'S2', null);
    const started = await coord.waitFor((m) => m.type === 'recording_started' || m.type === 'error');
    assert.equal(started.type, 'recording_started', JSON.stringify(started));
    coord.stopRecord(id, 'S2');
    await coord.waitFor((m) => m.type === 'recording_stopped');
  });
});

test('after a MultiCam command a long press may not start a local recording, but one already running is still stopped by the button', () =>
  withButtonUnit({}, async ({ unit, button }) => {
    const port = unit.app.multicamPort;
    await waitFor(() => unit.app.store.size >= 2, 15000, 'capture');
    // Input the server cannot take as a command does not count as a controller.
    assert.equal((await sendCommand('127.0.0.1', port, 'NOT_A_COMMAND')).kind, 'error');
    await press(button, GPIO.longPressMs + 300);
    await waitFor(() => unit.logs.find('local recording started (long press)')[0], 3000, 'the local recording to start');
    const seen = await sendCommand('127.0.0.1', port, 'DEVICE_STATUS');
    assert.equal(seen.kind, 'status');
    assert.equal(seen.body.status, 'recording', 'a controller arriving now sees the local recording');
    await sleep(500);
    await press(button, GPIO.longPressMs + 300);
    await waitFor(() => unit.logs.find('local recording stopped (long press)')[0], 15000, 'the button to stop its own recording');
    assert.equal(unit.logs.find('long press refused').length, 0);
    await sleep(500);
    await press(button, GPIO.longPressMs + 300);
    const refused = await waitFor(() => unit.logs.find('long press refused')[0], 3000, 'the refusal');
    assert.match(String(refused.reason), /^a MultiCam controller sent a command \d+ s ago \(within 2 min\); a local recording is for standalone use only/);
    assert.equal(unit.app.device.isRecording(), false);
    assert.equal(unit.logs.find('local recording started (long press)').length, 1);
    assert.equal(unit.app.device.listRecordings().length, 1);
  }));

test('a press with too little space keeps the mark, refuses the clip with LOW_STORAGE and blinks refused', () =>
  withButtonUnit({ patch: { storage: { minFreeMB: 1 } }, seams: { disk: { usage: async () => ({ freeBytes: 1.05e6, totalBytes: 1e9 }) } } }, async ({ unit, base, button, dir }) => {
    await waitFor(() => unit.app.store.size >= 3, 15000, 'pre-roll');
    await press(button, 100);
    const failed = await waitFor(() => unit.logs.find('button clip failed')[0], 5000, 'the clip failure');
    assert.equal(failed.code, 'LOW_STORAGE');
    assert.match(String(failed.error), /not enough space for the clip/);
    await waitFor(async () => (await getJson(`${base}/health`)).gpio.led === 'refused', 2000, 'the refused blink');
    assert.deepEqual((await getJson(`${base}/clips`)).clips, []);
    const book = JSON.parse(await readFile(join(dir, 'var-sessions.json'), 'utf8'));
    assert.equal(book.flatMap((s: { marks: unknown[] }) => s.marks).length, 1, 'the mark is kept');
  }));

test('without GPIO the unit runs normally and says once that the button and LED are off', async () => {
  const { dir, cleanup } = await tempDir();
  const unit = await startUnit({ dataDir: dir, patch: { gpio: { enabled: true, sysfsDir: join(tmpdir(), 'arenacam-no-gpio-here') } } });
  try {
    const base = `http://127.0.0.1:${unit.app.httpPort}`;
    const health = await waitFor(async () => {
      const h = await getJson(`${base}/health`);
      return h.ok ? h : null;
    }, 15000, 'a healthy unit');
    assert.equal(unit.logs.find('button and status LED off').length, 1);
    assert.match(String(health.gpio.off), /^no GPIO here: /);
    assert.equal(health.gpio.button, null);
    assert.deepEqual((await getJson(`${base}/clips`)).clips, []);
  } finally {
    await unit.stop();
    await cleanup();
  }
});
