/** GPIO: small input/output interfaces, sysfs chip discovery (base + BCM number), and the onoff adapter. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../log.js';

/** A digital input that reports each edge with the time taken as soon as the edge callback runs. */
export interface DigitalInput {
  /** The current level (true = active, after activeLow). */
  read(): boolean;
  /** Be called on every edge: the level after it and the epoch ms taken first thing in the edge callback. */
  watch(onEdge: (active: boolean, atMs: number) => void): void;
  /** Stop watching and release the pin. */
  close(): void;
}

/** A digital output (true = active, after activeLow). */
export interface DigitalOutput {
  write(active: boolean): void;
  /** Drive it inactive and release the pin. */
  close(): void;
}

/** Where pins come from (the onoff adapter on a Pi, a fake in tests). Pins are BCM numbers. */
export interface GpioBackend {
  /** What is used, for the log (e.g. "sysfs gpiochip571 [pinctrl-rp1] base 571"). */
  describe(): string;
  input(bcm: number, opts: { activeLow: boolean }): DigitalInput;
  output(bcm: number, opts: { activeLow: boolean }): DigitalOutput;
}

/** Timer seam for the button and LED drivers (tests step a fake one). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's timers, not keeping the process alive. */
export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** GPIO cannot be used here: `absent` = this machine has none (normal off a Pi), `unusable` = it has, but it fails. */
export class GpioUnavailableError extends Error {
  constructor(
    readonly kind: 'absent' | 'unusable',
    message: string,
    /** The errno code behind it (e.g. EACCES while udev has not yet given the gpio group a fresh pin), if any. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'GpioUnavailableError';
  }
}

/** How often opening a pin is tried while permission is refused, and the wait between tries. */
export interface OpenRetry {
  attempts: number;
  delayMs: number;
  /** Waits `ms` (tests pass one that returns at once). */
  sleep: (ms: number) => Promise<void>;
}

/** 5 tries 300 ms apart: udev usually gives the gpio group a freshly exported pin within a second. */
export const DEFAULT_OPEN_RETRY: OpenRetry = { attempts: 5, delayMs: 300, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

/** The errno code of an open failure (on the error or its GpioUnavailableError wrapper), or null. */
export function errnoOf(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : null;
}

/**
 * Run `open` until it works, trying again after `delayMs` while it fails with EACCES or EPERM (the
 * pin's files are not yet group-writable right after export), at most `attempts` times in all.
 * Resolves with the result and the number of tries; the last error is thrown unchanged.
 */
export async function openWithRetry<T>(open: () => T, retry: OpenRetry): Promise<{ value: T; tries: number }> {
  for (let tries = 1; ; tries++) {
    try {
      return { value: open(), tries };
    } catch (err) {
      const code = errnoOf(err);
      if (tries >= retry.attempts || (code !== 'EACCES' && code !== 'EPERM')) throw err;
      await retry.sleep(retry.delayMs);
    }
  }
}

/** One sysfs gpiochip: its label and the global numbers [base, base + ngpio). */
export interface GpioChip {
  name: string;
  label: string;
  base: number;
  ngpio: number;
}

/** Labels of the header GPIO controller, in order of preference: Pi 5 (RP1), Pi 4, older Pis. */
export const KNOWN_HEADER_LABELS = ['pinctrl-rp1', 'pinctrl-bcm2711', 'pinctrl-bcm2835'] as const;

/** Every gpiochip under `sysfsDir` with label, base and ngpio; "no GPIO here" when the folder is absent. */
export async function listGpioChips(sysfsDir: string): Promise<GpioChip[]> {
  let names: string[];
  try {
    names = await readdir(sysfsDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new GpioUnavailableError('absent', `no GPIO here: ${sysfsDir} does not exist`);
    throw new GpioUnavailableError('unusable', `cannot read ${sysfsDir}: ${(err as Error).message}`);
  }
  const chips: GpioChip[] = [];
  for (const name of names.filter((n) => /^gpiochip\d+$/.test(n))) {
    const read = (f: string) => readFile(join(sysfsDir, name, f), 'utf8').then((s) => s.trim());
    try {
      const [label, base, ngpio] = await Promise.all([read('label'), read('base'), read('ngpio')]);
      if (!/^\d+$/.test(base) || !/^\d+$/.test(ngpio)) throw new Error(`base "${base}" / ngpio "${ngpio}" are not numbers`);
      chips.push({ name, label, base: Number(base), ngpio: Number(ngpio) });
    } catch (err) {
      throw new GpioUnavailableError('unusable', `cannot read ${join(sysfsDir, name)}: ${(err as Error).message}`);
    }
  }
  return chips.sort((a, b) => a.base - b.base);
}

/** The chip of the header pins: labelled `chipLabel`, else the first known Pi label found. */
export function pickHeaderChip(chips: GpioChip[], chipLabel: string | null): GpioChip {
  const found = chips.map((c) => `${c.name} [${c.label}] base ${c.base} ngpio ${c.ngpio}`).join('; ') || 'none';
  const wanted = chipLabel !== null ? [chipLabel] : [...KNOWN_HEADER_LABELS];
  for (const label of wanted) {
    const hits = chips.filter((c) => c.label === label);
    if (hits.length > 1) throw new GpioUnavailableError('unusable', `several gpiochips are labelled ${label} (${found}); cannot tell which holds the header pins`);
    if (hits.length === 1) return hits[0];
  }
  const hint = chipLabel !== null ? `gpio.chipLabel "${chipLabel}"` : `a known Pi label (${KNOWN_HEADER_LABELS.join(', ')}); set gpio.chipLabel`;
  throw new GpioUnavailableError('unusable', `no gpiochip matches ${hint}; chips found: ${found}`);
}

/** The sysfs number of BCM pin `bcm` on `chip` (base + bcm); an error names the valid range. */
export function sysfsNumber(chip: GpioChip, bcm: number): number {
  if (!Number.isInteger(bcm) || bcm < 0 || bcm >= chip.ngpio) {
    throw new GpioUnavailableError('unusable', `BCM pin ${bcm} is out of range for ${chip.name} [${chip.label}] (0-${chip.ngpio - 1})`);
  }
  return chip.base + bcm;
}

/** Find the header chip under `sysfsDir` (see listGpioChips and pickHeaderChip). */
export async function findHeaderChip(sysfsDir: string, chipLabel: string | null): Promise<GpioChip> {
  return pickHeaderChip(await listGpioChips(sysfsDir), chipLabel);
}

/** The part of onoff this adapter uses (typed here so a build without onoff still compiles). */
export interface OnoffGpio {
  readSync(): 0 | 1;
  writeSync(v: 0 | 1): void;
  watch(cb: (err: Error | null | undefined, value: 0 | 1) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

/** The onoff module: the Gpio class and whether this process may export pins. */
export interface OnoffModule {
  Gpio: {
    new (gpio: number, direction: 'in' | 'out', edge?: 'none' | 'both', options?: { activeLow?: boolean }): OnoffGpio;
    accessible: boolean;
  };
}

/** Load onoff at run time: it is an optional dependency with a native part. */
export async function loadOnoff(): Promise<OnoffModule> {
  const name = 'onoff';
  const mod = (await import(name)) as OnoffModule & { default?: OnoffModule };
  return mod.Gpio ? mod : mod.default!;
}

/** What openOnoffGpio needs. `sysfsDir` is where chips are looked up; onoff itself uses /sys/class/gpio. */
export interface OnoffOptions {
  sysfsDir: string;
  chipLabel: string | null;
  clock: Clock;
  log: Logger;
  /** How onoff is loaded (tests pass a fake module). */
  load?: () => Promise<OnoffModule>;
}

/**
 * The onoff-backed GPIO: finds the header chip first (so a machine without GPIO says so plainly),
 * then loads onoff. Edges are not debounced by onoff (its debounce reports late): the time is
 * taken first thing in onoff's edge callback, which runs on the event loop once its epoll thread
 * has seen the interrupt (a few ms at most on an idle loop), and debouncing is the button's job.
 */
export async function openOnoffGpio(o: OnoffOptions): Promise<GpioBackend> {
  const chip = await findHeaderChip(o.sysfsDir, o.chipLabel);
  let mod: OnoffModule;
  try {
    mod = await (o.load ?? loadOnoff)();
  } catch (err) {
    throw new GpioUnavailableError('unusable', `onoff cannot be loaded (${(err as Error).message})`);
  }
  if (!mod.Gpio.accessible) throw new GpioUnavailableError('unusable', 'no permission to export GPIO pins (run as a member of the gpio group)');
  const open = (bcm: number, make: (n: number) => OnoffGpio): OnoffGpio => {
    const n = sysfsNumber(chip, bcm);
    try {
      return make(n);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new GpioUnavailableError('unusable', `cannot open GPIO${bcm} (sysfs gpio${n}): ${(err as Error).message}`, typeof code === 'string' ? code : null);
    }
  };
  return {
    describe: () => `sysfs ${chip.name} [${chip.label}] base ${chip.base}`,
    input(bcm, { activeLow }) {
      const g = open(bcm, (n) => new mod.Gpio(n, 'in', 'both', { activeLow }));
      return {
        read: () => g.readSync() === 1,
        watch(onEdge) {
          g.watch((err, value) => {
            const atMs = o.clock.now();
            if (err) o.log.warn({ pin: bcm, err: err.message }, 'GPIO interrupt error');
            else onEdge(value === 1, atMs);
          });
        },
        close() {
          g.unwatchAll();
          g.unexport();
        },
      };
    },
    output(bcm, { activeLow }) {
      const g = open(bcm, (n) => new mod.Gpio(n, 'out', 'none', { activeLow }));
      return {
        write: (active) => g.writeSync(active ? 1 : 0),
        close() {
          g.writeSync(0);
          g.unexport();
        },
      };
    },
  };
}
