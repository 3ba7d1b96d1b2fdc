/** The button/LED panel on fake GPIO and fake timers: presses reach the actions, the LED follows the unit, no GPIO is said once. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPanel, type MarkResult, type PanelOptions, type ToggleResult } from '../../src/device/local-marks.js';
import { LED_ACK, LED_PATTERNS, LED_REFUSED, type UnitView } from '../../src/device/led.js';
import { createLogger } from '../../src/log.js';
import type { Config } from '../../src/config/schema.js';
import { validate } from '../../src/config/load.js';
import { LogSink } from '../helpers/device.js';
import { FakeGpio, FakeTimers } from '../fakes/gpio.js';

const settings = (patch: Partial<Config['gpio']> = {}): Config['gpio'] => ({ ...validate({}).gpio, ...patch });

function rig(patch: Partial<Config['gpio']> = {}) {
  const timers = new FakeTimers(0);
  const gpio = new FakeGpio(timers);
  const logs = new LogSink();
  const view: UnitView = { ready: true, captureAlive: true, captureError: null, storageError: null, recording: false, uploading: false, clockSynchronised: true };
  const calls: Array<['mark', number] | ['toggle', number]> = [];
  let markResult: MarkResult = { ok: false, markId: 'BTN-x', code: 'LOW_STORAGE', message: 'disk full' };
  let toggleResult: ToggleResult = { ok: true, action: 'started' };
  const controls = {
    mark: async (atMs: number) => (calls.push(['mark', atMs]), markResult),
    toggleRecording: async () => (calls.push(['toggle', timers.now()]), toggleResult),
  };
  const s = settings(patch);
  const start = (extra: Partial<PanelOptions> = {}) => startPanel({ settings: s, backend: gpio, controls, unitView: () => view, clock: timers, timers, log: createLogger('debug', logs), ...extra });
  return {
    timers, gpio, logs, view, calls, s, start,
    setMark: (r: MarkResult) => (markResult = r),
    setToggle: (r: ToggleResult) => (toggleResult = r),
  };
}

/** Let promise callbacks run (the fake timers do not). */
const flush = () => new Promise((r) => setImmediate(r));

test('a short press calls the mark action with the time of its first edge and flashes; a failed clip flashes refused', async () => {
  const r = rig();
  r.setMark({ ok: true, markId: 'BTN-a', clip: {} as never });
  const panel = await r.start();
  assert.deepEqual(r.gpio.opened, [
    { bcm: r.s.ledPin, dir: 'out', activeLow: r.s.ledActiveLow },
    { bcm: r.s.buttonPin, dir: 'in', activeLow: r.s.buttonActiveLow },
  ]);
  const btn = r.gpio.inputs.get(r.s.buttonPin)!;
  const led = r.gpio.outputs.get(r.s.ledPin)!;
  r.timers.advanceTo(3000);
  assert.equal(panel.view().led, 'ready');
  btn.set(true, 3000);
  btn.set(false, 3001);
  btn.set(true, 3003);
  r.timers.advanceTo(3200);
  btn.set(false, 3200);
  r.timers.advanceTo(3200 + r.s.debounceMs);
  assert.deepEqual(r.calls, [['mark', 3000]]);
  assert.equal(panel.view().led, 'ack', 'acknowledged at once');
  await flush();
  assert.equal(panel.view().led, 'ack', 'a clip that worked adds no second flash');
  assert.equal(r.logs.find('button: short press').length, 1);
  await panel.stop();
  assert.ok(led.closed && btn.closed);

  // The same with a mark whose clip fails: ack, then the refused flash.
  const r2 = rig();
  const p2 = await r2.start();
  const b2 = r2.gpio.inputs.get(r2.s.buttonPin)!;
  b2.set(true, 100);
  r2.timers.advanceTo(300);
  b2.set(false, 300);
  r2.timers.advanceTo(400);
  await flush();
  assert.deepEqual(r2.calls, [['mark', 100]]);
  assert.equal(p2.view().led, LED_REFUSED.name);
  await p2.stop();
});

test('a long press runs the recording toggle once, at the threshold, while the button is still held', async () => {
  const r = rig({ longPressMs: 1500 });
  const panel = await r.start();
  const btn = r.gpio.inputs.get(r.s.buttonPin)!;
  btn.set(true, 1000);
  r.timers.advanceTo(2499);
  assert.deepEqual(r.calls, []);
  r.timers.advanceTo(2500);
  assert.deepEqual(r.calls, [['toggle', 2500]]);
  await flush();
  assert.equal(panel.view().led, LED_ACK.name);
  r.timers.advanceTo(6000);
  btn.set(false, 6000);
  r.timers.advanceTo(7000);
  assert.equal(r.calls.length, 1, 'the release after a long press does nothing');
  r.setToggle({ ok: false, code: 'REFUSED', message: 'VAR session' });
  btn.set(true, 8000);
  r.timers.advanceTo(9600);
  await flush();
  assert.equal(panel.view().led, LED_REFUSED.name, 'a refused long press blinks refused');
  await panel.stop();
});

test('the LED follows the unit state and is written only when a pattern needs it', async () => {
  const r = rig();
  r.view.ready = false;
  const panel = await r.start();
  const led = r.gpio.outputs.get(r.s.ledPin)!;
  r.timers.advanceTo(2000);
  assert.equal(panel.view().led, 'starting');
  r.view.ready = true;
  r.view.recording = true;
  r.timers.advanceTo(2500);
  assert.equal(panel.view().led, 'recording');
  const before = led.writes.length;
  r.timers.advanceTo(60_000);
  assert.equal(led.writes.length, before, 'a steady recording writes nothing for a minute');
  assert.equal(led.level(), true);
  r.view.recording = false;
  r.view.clockSynchronised = false;
  r.timers.advanceTo(61_000);
  assert.equal(panel.view().led, LED_PATTERNS['clock-unsynced'].name);
  r.view.captureAlive = false;
  r.view.captureError = 'ffmpeg exited with code 1';
  r.timers.advanceTo(62_000);
  assert.equal(panel.view().led, 'error');
  await panel.stop();
  assert.equal(led.level(), false, 'off after stop');
  assert.equal(r.timers.pending(), 0, 'no timers left');
});

test('without GPIO the panel says so in one line and does nothing; pins set to -1 are not opened', async () => {
  for (const [patch, text] of [
    [{ enabled: false }, 'gpio.enabled is false'],
    [{ sysfsDir: join(tmpdir(), 'arenacam-no-gpio-here') }, 'no GPIO here'],
    [{ buttonPin: -1, ledPin: -1 }, 'both -1'],
  ] as const) {
    const logs = new LogSink();
    const timers = new FakeTimers(0);
    const panel = await startPanel({ settings: settings(patch), controls: { mark: async () => assert.fail(), toggleRecording: async () => assert.fail() }, unitView: () => assert.fail(), clock: timers, timers, log: createLogger('debug', logs) });
    assert.equal(logs.lines.length, 1, JSON.stringify(logs.lines));
    assert.equal(logs.lines[0].level, 30, 'info: a machine without GPIO is not a fault');
    assert.match(String(logs.lines[0].msg), new RegExp(`button and status LED off: .*${text}.*; the unit runs without them`));
    assert.equal(panel.view().off !== null && panel.view().button === null && panel.view().led === null, true);
    assert.equal(timers.pending(), 0);
    await panel.stop();
  }
  const r = rig({ buttonPin: -1 });
  const panel = await r.start();
  assert.deepEqual(r.gpio.opened.map((o) => o.dir), ['out']);
  assert.equal(panel.view().button, null);
  await panel.stop();
});

test('a pin refused with EACCES right after export is tried again until udev lets us in; one that never opens is logged once', async () => {
  const r = rig();
  const waits: number[] = [];
  const openRetry = { attempts: 5, delayMs: 300, sleep: async (ms: number) => void waits.push(ms) };
  r.gpio.failOpen(r.s.buttonPin, 'EACCES', 'EACCES');
  r.gpio.failOpen(r.s.ledPin, 'EPERM');
  const panel = await r.start({ openRetry });
  assert.deepEqual(r.gpio.attempts, [
    { bcm: r.s.ledPin, failed: 'EPERM' },
    { bcm: r.s.ledPin, failed: null },
    { bcm: r.s.buttonPin, failed: 'EACCES' },
    { bcm: r.s.buttonPin, failed: 'EACCES' },
    { bcm: r.s.buttonPin, failed: null },
  ]);
  assert.deepEqual(waits, [300, 300, 300], 'a wait before each new try');
  assert.deepEqual(panel.view(), { button: r.s.buttonPin, led: 'ready', off: null });
  assert.equal(r.logs.find('cannot open').length, 0);
  assert.deepEqual(r.logs.find('opened after').map((l) => [l.pin, l.tries]), [[r.s.ledPin, 2], [r.s.buttonPin, 3]]);
  // The button works after its late start.
  const btn = r.gpio.inputs.get(r.s.buttonPin)!;
  btn.set(true, 1000);
  r.timers.advanceTo(1100);
  btn.set(false, 1100);
  r.timers.advanceTo(1200);
  assert.deepEqual(r.calls, [['mark', 1000]]);
  await panel.stop();

  // Permission that never comes: five tries, one error line, the LED goes on without the button.
  const r2 = rig();
  const waits2: number[] = [];
  r2.gpio.failOpen(r2.s.buttonPin, ...Array(9).fill('EACCES'));
  const p2 = await r2.start({ openRetry: { ...openRetry, sleep: async (ms: number) => void waits2.push(ms) } });
  assert.equal(r2.gpio.attempts.filter((a) => a.bcm === r2.s.buttonPin).length, 5);
  assert.equal(waits2.length, 4);
  const errs = r2.logs.lines.filter((l) => (l.level as number) >= 50);
  assert.equal(errs.length, 1, JSON.stringify(errs));
  assert.match(String(errs[0].msg), new RegExp(`^button off: cannot open GPIO${r2.s.buttonPin} after 5 tries 300 ms apart$`));
  assert.equal(errs[0].code, 'EACCES');
  assert.deepEqual(p2.view(), { button: null, led: 'ready', off: null });
  await p2.stop();

  // Any other failure is not waited on.
  const r3 = rig();
  r3.gpio.failOpen(r3.s.ledPin, 'EBUSY');
  const p3 = await r3.start({ openRetry: { ...openRetry, sleep: async () => assert.fail('no retry for EBUSY') } });
  assert.deepEqual(r3.gpio.attempts.map((a) => a.failed), ['EBUSY', null]);
  assert.match(String(r3.logs.find('status LED off')[0].msg), /^status LED off: cannot open GPIO\d+$/);
  assert.equal(p3.view().led, null);
  await p3.stop();
});
