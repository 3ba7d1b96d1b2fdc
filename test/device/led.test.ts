/** The status LED: state priorities, distinct patterns, and the driver's writes on a fake pin and fake timers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LED_ACK, LED_PATTERNS, LED_REFUSED, LedDriver, ledStateOf, type LedPattern, type LedState, type LedStep, type UnitView } from '../../src/device/led.js';
import { FakeOutput, FakeTimers } from '../fakes/gpio.js';

const READY: UnitView = { ready: true, captureAlive: true, captureError: null, storageError: null, recording: false, uploading: false, clockSynchronised: true };

test('the state follows error > starting > recording > uploading > clock-unsynced > ready', () => {
  const all: UnitView = { ready: false, captureAlive: false, captureError: 'ffmpeg exited', storageError: 'disk full', recording: true, uploading: true, clockSynchronised: false };
  // Clear the causes one by one, highest first: each step uncovers the next state down.
  const steps: Array<[Partial<UnitView>, LedState]> = [
    [{}, 'error'],
    [{ storageError: null }, 'error'],
    [{ captureError: null }, 'starting'],
    [{ captureAlive: true }, 'starting'],
    [{ ready: true }, 'recording'],
    [{ recording: false }, 'uploading'],
    [{ uploading: false }, 'clock-unsynced'],
    [{ clockSynchronised: true }, 'ready'],
  ];
  let v = all;
  for (const [change, want] of steps) {
    v = { ...v, ...change };
    assert.equal(ledStateOf(v), want, JSON.stringify(change));
  }
  assert.equal(ledStateOf({ ...READY, storageError: 'disk full', recording: true }), 'error', 'a full disk shows over a recording');
  assert.equal(ledStateOf({ ...READY, captureAlive: false, captureError: null }), 'starting', 'capture not up yet (no failure) is still starting');
});

/** A pattern's rhythm as the eye sees it: its shortest repeating cycle (same-level steps merged), that cycle's length, and the distinct on and off durations in it. */
function rhythm(p: LedPattern): { periodMs: number; on: number[]; off: number[] } {
  const merged: LedStep[] = [];
  for (const s of p.steps) {
    const last = merged.at(-1);
    if (last && last.on === s.on) last.ms += s.ms;
    else merged.push({ ...s });
  }
  const n = merged.length;
  let k = n;
  for (let d = 1; d < n; d++) {
    if (n % d === 0 && merged.every((s, i) => s.on === merged[i % d].on && s.ms === merged[i % d].ms)) {
      k = d;
      break;
    }
  }
  const cycle = merged.slice(0, k);
  const durations = (level: boolean) => [...new Set(cycle.filter((s) => s.on === level).map((s) => s.ms))].sort((x, y) => x - y);
  return { periodMs: cycle.reduce((t, s) => t + s.ms, 0), on: durations(true), off: durations(false) };
}

test('the rhythm helper sees through repetition: six loops of a pattern have the rhythm of one', () => {
  const six: LedPattern = { name: 'six', steps: Array.from({ length: 6 }, () => LED_PATTERNS.error.steps).flat() };
  assert.deepEqual(rhythm(six), rhythm(LED_PATTERNS.error));
  assert.deepEqual(rhythm(LED_PATTERNS['clock-unsynced']), { periodMs: 2000, on: [150], off: [150, 1550] });
});

test('the six state patterns and the two flashes each have their own rhythm (on and off durations), not just their own steps', () => {
  const all = [...Object.values(LED_PATTERNS), LED_ACK, LED_REFUSED];
  assert.equal(new Set(all.map((p) => p.name)).size, all.length);
  for (const [state, p] of Object.entries(LED_PATTERNS)) assert.equal(p.name, state);
  for (const p of all) for (const s of p.steps) assert.ok(s.ms > 0, `${p.name}: steps last`);
  const key = (p: LedPattern) => {
    const r = rhythm(p);
    return `on ${r.on.map(String).join('/')} off ${r.off.map(String).join('/')}`;
  };
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const [a, b] = [all[i], all[j]];
      assert.notEqual(key(a), key(b), `${a.name} and ${b.name} blink alike (${key(a)}; periods ${rhythm(a).periodMs} / ${rhythm(b).periodMs} ms)`);
    }
  }
  // Refused must not read as the error state it sits over most often, nor as a run of acks.
  assert.notDeepEqual(rhythm(LED_REFUSED).on, rhythm(LED_PATTERNS.error).on);
  assert.notDeepEqual(rhythm(LED_REFUSED).on, rhythm(LED_ACK).on);
});

/** Expected writes of `loops` loops of a pattern started at `t0`, levels changing only. */
function expected(p: LedPattern, t0: number, untilMs: number): Array<{ atMs: number; on: boolean }> {
  const out: Array<{ atMs: number; on: boolean }> = [];
  let t = t0;
  let last: boolean | null = null;
  for (let i = 0; t <= untilMs; i = (i + 1) % p.steps.length) {
    const s = p.steps[i];
    if (s.on !== last) out.push({ atMs: t, on: s.on });
    last = s.on;
    t += s.ms;
  }
  return out;
}

test('each blinking pattern is written step by step on its own rhythm, only when the level changes', () => {
  for (const state of ['error', 'starting', 'uploading', 'clock-unsynced', 'ready'] as const) {
    const timers = new FakeTimers(0);
    const out = new FakeOutput(timers);
    const led = new LedDriver(out, timers);
    led.show(LED_PATTERNS[state]);
    timers.advanceTo(10_000);
    assert.deepEqual(out.writes, expected(LED_PATTERNS[state], 0, 10_000), state);
    led.close();
  }
});

test('recording is steady: one write and no timer; showing the same pattern again writes nothing', () => {
  const timers = new FakeTimers(0);
  const out = new FakeOutput(timers);
  const led = new LedDriver(out, timers);
  led.show(LED_PATTERNS.recording);
  assert.equal(timers.pending(), 0);
  for (let i = 0; i < 100; i++) {
    led.show(LED_PATTERNS.recording);
    timers.advance(250);
  }
  assert.deepEqual(out.writes, [{ atMs: 0, on: true }]);
  led.show(LED_PATTERNS.ready);
  timers.advance(10);
  led.show(LED_PATTERNS.ready);
  timers.advance(5000);
  // Ready starts with "on" while the LED is on already: its first write is the first "off".
  assert.deepEqual(out.writes.slice(1), expected(LED_PATTERNS.ready, 25_000, 30_010).slice(1), 'ready is not restarted by a repeated show');
});

test('a flash plays once over the state pattern, which then starts again; close turns the LED off', () => {
  const timers = new FakeTimers(0);
  const out = new FakeOutput(timers);
  const led = new LedDriver(out, timers);
  led.show(LED_PATTERNS.recording);
  timers.advance(1000);
  led.flash(LED_ACK);
  assert.equal(led.current(), 'ack');
  const flashMs = LED_ACK.steps.reduce((a, s) => a + s.ms, 0);
  timers.advance(flashMs + 1000);
  assert.equal(led.current(), 'recording');
  const during = out.writes.filter((w) => w.atMs >= 1000 && w.atMs < 1000 + flashMs);
  assert.deepEqual(during, expected(LED_ACK, 1000, 1000 + flashMs - 1), 'the flash is seen over a steady LED');
  assert.deepEqual(out.writes.at(-1), { atMs: 1000 + flashMs, on: true }, 'back to steady on');
  // A state change during a flash waits for the flash to end.
  led.flash(LED_REFUSED);
  led.show(LED_PATTERNS.error);
  assert.equal(led.current(), 'refused');
  timers.advance(LED_REFUSED.steps.reduce((a, s) => a + s.ms, 0));
  assert.equal(led.current(), 'error');
  led.close();
  assert.equal(out.level(), false);
  assert.ok(out.closed);
  assert.equal(timers.pending(), 0);
  led.show(LED_PATTERNS.ready);
  led.flash(LED_ACK);
  assert.equal(timers.pending(), 0, 'nothing plays after close');
});
