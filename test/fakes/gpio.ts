/** Fake GPIO for machines without it: pins driven by the test, virtual timers, and sysfs trees built from the Pi fixtures. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DigitalInput, DigitalOutput, GpioBackend, Timers } from '../../src/hw/gpio.js';
import type { Clock } from '../../src/util/clock.js';
import { piFixture } from '../helpers/pi-fixtures.js';

/** Timers on a virtual clock: `advance` runs every timer due, in time order. */
export class FakeTimers implements Timers, Clock {
  private t: number;
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();

  constructor(startMs = 1_700_000_000_000) {
    this.t = startMs;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.due.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.due.delete(handle as number);
  }
  /** Timers pending. */
  pending(): number {
    return this.due.size;
  }
  /** Move the clock to `toMs`, running timers as their moment comes (earliest first, then by creation). */
  advanceTo(toMs: number): void {
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.due) if (e[1].at <= toMs && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.due.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = Math.max(this.t, toMs);
  }
  /** Move the clock on by `ms`. */
  advance(ms: number): void {
    this.advanceTo(this.t + ms);
  }
}

/** An input pin the test drives; edges carry the time the test gives (the "edge callback time"). */
export class FakeInput implements DigitalInput {
  level = false;
  closed = false;
  private listeners: Array<(active: boolean, atMs: number) => void> = [];

  constructor(private readonly clock: Clock) {}
  read(): boolean {
    return this.level;
  }
  watch(onEdge: (active: boolean, atMs: number) => void): void {
    this.listeners.push(onEdge);
  }
  close(): void {
    this.closed = true;
    this.listeners = [];
  }
  /** An edge to `active` at `atMs` (default: the clock now). */
  set(active: boolean, atMs = this.clock.now()): void {
    this.level = active;
    for (const l of this.listeners) l(active, atMs);
  }
}

/** An output pin that remembers every write with the time it happened. */
export class FakeOutput implements DigitalOutput {
  readonly writes: Array<{ atMs: number; on: boolean }> = [];
  closed = false;

  constructor(private readonly clock: Clock) {}
  write(active: boolean): void {
    if (this.closed) throw new Error('write after close');
    this.writes.push({ atMs: this.clock.now(), on: active });
  }
  close(): void {
    this.closed = true;
  }
  /** The level last written (false before any write). */
  level(): boolean {
    return this.writes.at(-1)?.on ?? false;
  }
}

/** A GPIO backend of fake pins, by BCM number. */
export class FakeGpio implements GpioBackend {
  readonly inputs = new Map<number, FakeInput>();
  readonly outputs = new Map<number, FakeOutput>();
  readonly opened: Array<{ bcm: number; dir: 'in' | 'out'; activeLow: boolean }> = [];
  /** Every open asked for, failed ones included, in order. */
  readonly attempts: Array<{ bcm: number; failed: string | null }> = [];
  private readonly failures = new Map<number, string[]>();

  constructor(private readonly clock: Clock = { now: () => performance.timeOrigin + performance.now() }) {}
  describe(): string {
    return 'fake GPIO';
  }
  /** The next opens of `bcm` fail, one per code, like onoff's constructor (an Error with that errno code). */
  failOpen(bcm: number, ...codes: string[]): void {
    this.failures.set(bcm, [...(this.failures.get(bcm) ?? []), ...codes]);
  }
  private attempt(bcm: number): void {
    const code = this.failures.get(bcm)?.shift() ?? null;
    this.attempts.push({ bcm, failed: code });
    if (code) throw Object.assign(new Error(`${code}: permission denied, open '/sys/class/gpio/gpio${bcm}/direction'`), { code });
  }
  input(bcm: number, opts: { activeLow: boolean }): FakeInput {
    this.attempt(bcm);
    this.opened.push({ bcm, dir: 'in', activeLow: opts.activeLow });
    const p = new FakeInput(this.clock);
    this.inputs.set(bcm, p);
    return p;
  }
  output(bcm: number, opts: { activeLow: boolean }): FakeOutput {
    this.attempt(bcm);
    this.opened.push({ bcm, dir: 'out', activeLow: opts.activeLow });
    const p = new FakeOutput(this.clock);
    this.outputs.set(bcm, p);
    return p;
  }
}

/** One chip of a fake sysfs tree. */
export interface FakeChip {
  base: number;
  label: string;
  ngpio: number;
}

/** The gpiochipN names in an `ls -la /sys/class/gpio` fixture (N is the chip's base in sysfs). */
export function chipBasesFromLs(text: string): number[] {
  return [...text.matchAll(/\sgpiochip(\d+) -> /g)].map((m) => Number(m[1])).sort((a, b) => a - b);
}

/** The chips of a `gpiodetect` fixture: label and line count. */
export function chipsFromGpiodetect(text: string): Array<{ label: string; ngpio: number }> {
  return [...text.matchAll(/^gpiochip\d+ \[([^\]]+)\] \((\d+) lines\)$/gm)].map((m) => ({ label: m[1], ngpio: Number(m[2]) }));
}

/**
 * Give each sysfs base its label: a chip spans up to the next base, so every chip but the last is
 * the gpiodetect chip with exactly that many lines; the last is the one left over.
 */
export function matchChips(bases: number[], detected: Array<{ label: string; ngpio: number }>): FakeChip[] {
  const left = [...detected];
  const take = (i: number) => left.splice(i, 1)[0];
  const out: FakeChip[] = [];
  for (let i = 0; i < bases.length; i++) {
    const span = i + 1 < bases.length ? bases[i + 1] - bases[i] : null;
    const idx = span === null ? (left.length === 1 ? 0 : -1) : left.findIndex((c) => c.ngpio === span);
    if (idx < 0) throw new Error(`no gpiodetect chip fits sysfs base ${bases[i]} (span ${span})`);
    const c = take(idx);
    out.push({ base: bases[i], label: c.label, ngpio: c.ngpio });
  }
  return out;
}

/** Write gpiochip<base>/{label,base,ngpio} plus export/unexport under `dir`, as the kernel shows them. */
export async function writeSysfsTree(dir: string, chips: FakeChip[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const c of chips) {
    const d = join(dir, `gpiochip${c.base}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'label'), `${c.label}\n`);
    await writeFile(join(d, 'base'), `${c.base}\n`);
    await writeFile(join(d, 'ngpio'), `${c.ngpio}\n`);
  }
  await writeFile(join(dir, 'export'), '');
  await writeFile(join(dir, 'unexport'), '');
}

/** The Pi 4 (kernel ≥ 6.6) chips: bases from its `ls -la`, labels and line counts from its gpiodetect. */
export function pi4Chips(): FakeChip[] {
  return matchChips(chipBasesFromLs(piFixture('sys-class-gpio.ls-la.pi4-bcm2711-k6.6plus.txt')), chipsFromGpiodetect(piFixture('gpiodetect.pi4-k6.6.47.txt')));
}

/** The Pi 5 (kernel 6.12.47) chips: bases from its `ls -la`, labels from a Pi 5 gpiodetect after the 6.6.45 renumbering. */
export function pi5Chips(): FakeChip[] {
  return matchChips(chipBasesFromLs(piFixture('sys-class-gpio.ls-la.pi5-k6.12.47.txt')), chipsFromGpiodetect(piFixture('gpiodetect.pi5-k6.6.47.after-renumbering.txt')));
}
