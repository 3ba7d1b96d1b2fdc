/** The button: debounce and short/long classification over edge times, and its timer driver on a fake pin. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Button, ButtonLogic, type ButtonEvent } from '../../src/device/button.js';
import { FakeInput, FakeTimers } from '../fakes/gpio.js';

const T = { debounceMs: 30, longPressMs: 2000 };

/** Feed [level, atMs] edges, then let time run to `untilMs`; all events in order. */
function run(edges: Array<[boolean, number]>, untilMs: number, timing = T, initiallyPressed = false): ButtonEvent[] {
  const logic = new ButtonLogic(timing, initiallyPressed);
  const out: ButtonEvent[] = [];
  for (const [level, at] of edges) out.push(...logic.edge(level, at));
  out.push(...logic.advance(untilMs));
  return out;
}

test('contact chatter on press and release counts as one short press, timed at the first edge', () => {
  const press = [true, false, true, false, true].map((l, i): [boolean, number] => [l, 1000 + i * 3]);
  const release = [false, true, false, true, false].map((l, i): [boolean, number] => [l, 1400 + i * 4]);
  assert.deepEqual(run([...press, ...release], 5000), [{ kind: 'short', atMs: 1000, heldMs: 400 }]);
});

test('a glitch shorter than debounceMs is ignored, however it chatters', () => {
  assert.deepEqual(run([[true, 1000], [false, 1000 + T.debounceMs - 1]], 5000), []);
  assert.deepEqual(run([[true, 1000], [false, 1005], [true, 1010], [false, 1015]], 5000), []);
  // Released at exactly the debounce: the press had held debounceMs, so it counts.
  assert.equal(run([[true, 1000], [false, 1000 + T.debounceMs]], 5000).length, 1);
});

test('a press held past longPressMs is reported at the threshold while still held, and its release reports nothing', () => {
  const logic = new ButtonLogic(T);
  assert.deepEqual(logic.edge(true, 1000), []);
  assert.deepEqual(logic.advance(1000 + T.longPressMs - 1), [], 'not before the threshold');
  assert.equal(logic.nextWakeMs(), 1000 + T.longPressMs);
  assert.deepEqual(logic.advance(1000 + T.longPressMs), [{ kind: 'long', atMs: 1000, firedAtMs: 1000 + T.longPressMs }]);
  assert.ok(logic.pressed());
  assert.deepEqual(logic.edge(false, 9000), []);
  assert.deepEqual(logic.advance(20000), []);
  assert.equal(logic.nextWakeMs(), null, 'nothing pending once released');
});

test('a release that starts just before the threshold makes a short press, even if it bounces past it', () => {
  const at = 1000 + T.longPressMs;
  const ev = run([[true, 1000], [false, at - 5], [true, at + 2], [false, at + 6]], at + 5000);
  assert.deepEqual(ev, [{ kind: 'short', atMs: 1000, heldMs: T.longPressMs - 5 }]);
  // A glitch near the threshold does not end the press: long fires once the glitch settles.
  const held = run([[true, 1000], [false, at - 5], [true, at - 2]], at + 100);
  assert.deepEqual(held, [{ kind: 'long', atMs: 1000, firedAtMs: at - 2 + T.debounceMs }]);
});

test('two presses give two events; a button already held at start-up gives none until pressed again', () => {
  const two = run([[true, 0], [false, 100], [true, 500], [false, 3000]], 9000);
  assert.deepEqual(two.map((e) => [e.kind, e.atMs]), [['short', 0], ['long', 500]]);
  assert.deepEqual(run([[false, 100]], 9000, T, true), []);
  assert.deepEqual(run([[false, 100], [true, 200], [false, 300]], 9000, T, true), [{ kind: 'short', atMs: 200, heldMs: 100 }]);
});

test('with debounceMs 0 every settled change counts at once', () => {
  assert.deepEqual(run([[true, 10], [false, 20]], 100, { debounceMs: 0, longPressMs: 2000 }), [{ kind: 'short', atMs: 10, heldMs: 10 }]);
});

test('the driver fires the long press from its timer at the threshold, and the short press when the release settles', () => {
  const timers = new FakeTimers(0);
  const pin = new FakeInput(timers);
  const seen: Array<ButtonEvent & { seenAt: number }> = [];
  const button = new Button({ input: pin, ...T, clock: timers, timers, onEvent: (e) => seen.push({ ...e, seenAt: timers.now() }) });
  pin.set(true, 100);
  pin.set(false, 102);
  pin.set(true, 104);
  timers.advanceTo(100 + T.longPressMs - 1);
  assert.equal(seen.length, 0);
  timers.advanceTo(100 + T.longPressMs + 500);
  assert.deepEqual(seen, [{ kind: 'long', atMs: 100, firedAtMs: 100 + T.longPressMs, seenAt: 100 + T.longPressMs }]);
  timers.advanceTo(5000);
  pin.set(false, 5000);
  timers.advanceTo(6000);
  pin.set(true, 6000);
  timers.advanceTo(6300);
  pin.set(false, 6300);
  timers.advanceTo(6300 + T.debounceMs - 1);
  assert.equal(seen.length, 1, 'the release is not settled yet');
  timers.advanceTo(7000);
  assert.deepEqual(seen.at(-1), { kind: 'short', atMs: 6000, heldMs: 300, seenAt: 6300 + T.debounceMs });
  assert.equal(timers.pending(), 0, 'no timer left running while idle');
  button.close();
  assert.ok(pin.closed);
  pin.set(true, 8000);
  timers.advanceTo(20000);
  assert.equal(seen.length, 2, 'nothing after close');
});
