/** The onoff adapter over a fake onoff module (this machine has no GPIO), on a fake Pi 5 sysfs tree. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOnoff, openOnoffGpio, openWithRetry, GpioUnavailableError, type OnoffGpio, type OnoffModule } from '../../src/hw/gpio.js';
import { silentLogger } from '../../src/log.js';
import { pi5Chips, writeSysfsTree } from '../fakes/gpio.js';

type Call = { n: number; direction: string; edge?: string; options?: { activeLow?: boolean } };

/** A stand-in for onoff's Gpio that records what the adapter asks of it. */
function fakeOnoff(accessible = true, failures: string[] = []) {
  const made: Array<Call & { writes: number[]; unexported: boolean; watcher: ((err: Error | null, v: 0 | 1) => void) | null; value: 0 | 1 }> = [];
  class Gpio implements OnoffGpio {
    static accessible = accessible;
    private readonly rec: (typeof made)[number];
    constructor(n: number, direction: 'in' | 'out', edge?: 'none' | 'both', options?: { activeLow?: boolean }) {
      const code = failures.shift();
      if (code) throw Object.assign(new Error(`${code}: permission denied, open '/sys/class/gpio/gpio${n}/direction'`), { code, errno: -13 });
      this.rec = { n, direction, edge, options, writes: [], unexported: false, watcher: null, value: 0 };
      made.push(this.rec);
    }
    readSync(): 0 | 1 {
      return this.rec.value;
    }
    writeSync(v: 0 | 1): void {
      this.rec.writes.push(v);
    }
    watch(cb: (err: Error | null | undefined, value: 0 | 1) => void): void {
      this.rec.watcher = cb as never;
    }
    unwatchAll(): void {
      this.rec.watcher = null;
    }
    unexport(): void {
      this.rec.unexported = true;
    }
  }
  return { mod: { Gpio } as OnoffModule, made };
}

async function withPi5(fn: (dir: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'arenacam-onoff-'));
  try {
    await writeSysfsTree(join(root, 'gpio'), pi5Chips());
    await fn(join(root, 'gpio'));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test('pins are opened as base + BCM; an edge carries the clock read first thing in the edge callback, not a later one', () =>
  withPi5(async (dir) => {
    const { mod, made } = fakeOnoff();
    let now = 5000;
    const gpio = await openOnoffGpio({ sysfsDir: dir, chipLabel: null, clock: { now: () => now }, log: silentLogger(), load: async () => mod });
    assert.match(gpio.describe(), /gpiochip571 \[pinctrl-rp1\] base 571/);
    const btn = gpio.input(17, { activeLow: true });
    const led = gpio.output(27, { activeLow: false });
    assert.deepEqual(made.map((m) => [m.n, m.direction, m.edge, m.options]), [
      [588, 'in', 'both', { activeLow: true }],
      [598, 'out', 'none', { activeLow: false }],
    ]);
    const edges: Array<[boolean, number]> = [];
    btn.watch((active, atMs) => {
      edges.push([active, atMs]);
      now += 1000; // whatever runs after the callback must not move the stamp
    });
    made[0].watcher!(null, 1);
    now = 5030;
    made[0].watcher!(null, 0);
    assert.deepEqual(edges, [
      [true, 5000],
      [false, 5030],
    ]);
    made[0].value = 1;
    assert.equal(btn.read(), true);
    led.write(true);
    led.write(false);
    led.close();
    btn.close();
    assert.deepEqual(made[1].writes, [1, 0, 0], 'closing the LED drives it inactive');
    assert.ok(made[0].unexported && made[1].unexported);
    assert.equal(made[0].watcher, null);
    assert.throws(() => gpio.input(54, { activeLow: true }), /BCM pin 54 is out of range .*\(0-53\)/);
  }));

test('without sysfs GPIO onoff is not even loaded; an unloadable or inaccessible onoff is reported plainly', async () => {
  let loads = 0;
  const opts = { chipLabel: null, clock: { now: () => 0 }, log: silentLogger() };
  await assert.rejects(
    openOnoffGpio({ ...opts, sysfsDir: join(tmpdir(), 'arenacam-no-such-gpio'), load: async () => (loads++, fakeOnoff().mod) }),
    (err: GpioUnavailableError) => err.kind === 'absent' && /no GPIO here/.test(err.message),
  );
  assert.equal(loads, 0);
  await withPi5(async (dir) => {
    await assert.rejects(
      openOnoffGpio({ ...opts, sysfsDir: dir, load: async () => Promise.reject(new Error('Cannot find module epoll')) }),
      (err: GpioUnavailableError) => err.kind === 'unusable' && /onoff cannot be loaded \(Cannot find module epoll\)/.test(err.message),
    );
    await assert.rejects(openOnoffGpio({ ...opts, sysfsDir: dir, load: async () => fakeOnoff(false).mod }), /no permission to export GPIO pins/);
  });
});

test('the installed onoff loads through the dynamic import', async () => {
  const mod = await loadOnoff();
  assert.equal(typeof mod.Gpio, 'function');
  assert.equal(typeof mod.Gpio.accessible, 'boolean');
});

test('a pin onoff cannot open for lack of permission keeps its errno code, so the panel can wait for udev and try again', () =>
  withPi5(async (dir) => {
    const { mod, made } = fakeOnoff(true, ['EACCES', 'EACCES']);
    const gpio = await openOnoffGpio({ sysfsDir: dir, chipLabel: null, clock: { now: () => 0 }, log: silentLogger(), load: async () => mod });
    assert.throws(
      () => gpio.output(27, { activeLow: false }),
      (err: GpioUnavailableError) => err.code === 'EACCES' && /^cannot open GPIO27 \(sysfs gpio598\): EACCES: permission denied/.test(err.message),
    );
    const waits: number[] = [];
    const { value: led, tries } = await openWithRetry(() => gpio.output(27, { activeLow: false }), { attempts: 5, delayMs: 300, sleep: async (ms) => void waits.push(ms) });
    assert.equal(tries, 2, 'the second EACCES, then success');
    assert.deepEqual(waits, [300]);
    assert.equal(made.length, 1);
    led.close();
  }));
