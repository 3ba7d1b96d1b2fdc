/** The status LED: one pattern per unit state (pure), and a driver that plays patterns on an output with timers. */
import type { DigitalOutput, Timers } from '../hw/gpio.js';

/** What the LED shows, highest priority first in `ledStateOf`. */
export type LedState = 'error' | 'starting' | 'recording' | 'uploading' | 'clock-unsynced' | 'ready';

/** One step of a pattern: the LED on or off for `ms` (Infinity = hold). */
export interface LedStep {
  on: boolean;
  ms: number;
}

/** A named sequence of steps; a state pattern loops, a flash plays once. */
export interface LedPattern {
  name: string;
  steps: readonly LedStep[];
}

const on = (ms: number): LedStep => ({ on: true, ms });
const off = (ms: number): LedStep => ({ on: false, ms });

/**
 * The state patterns, each with its own rhythm:
 * - error: fast flicker, 5 per second (100 ms on / 100 ms off)
 * - starting: even slow blink, once a second (500 / 500)
 * - recording: steady on
 * - uploading: long on, short off (800 / 200)
 * - clock-unsynced: two short blips every 2 s
 * - ready: one short blip every 2 s
 */
export const LED_PATTERNS: Readonly<Record<LedState, LedPattern>> = {
  error: { name: 'error', steps: [on(100), off(100)] },
  starting: { name: 'starting', steps: [on(500), off(500)] },
  recording: { name: 'recording', steps: [on(Infinity)] },
  uploading: { name: 'uploading', steps: [on(800), off(200)] },
  'clock-unsynced': { name: 'clock-unsynced', steps: [on(150), off(150), on(150), off(1550)] },
  ready: { name: 'ready', steps: [on(100), off(1900)] },
};

/** Played once over the state pattern: a press was taken (three quick flashes, seen in any state). */
export const LED_ACK: LedPattern = { name: 'ack', steps: [off(80), on(80), off(80), on(80), off(80), on(80), off(80)] };
/** Played once over the state pattern: a press was refused or its action failed (long-short-long, 1.75 s; unlike any state). */
export const LED_REFUSED: LedPattern = { name: 'refused', steps: [on(500), off(150), on(150), off(150), on(500), off(300)] };

/** The facts the LED state is decided from. */
export interface UnitView {
  /** The unit finished starting (every listener is up). */
  ready: boolean;
  captureAlive: boolean;
  /** Why capture is down, if it failed (null while it has simply not produced video yet). */
  captureError: string | null;
  storageError: string | null;
  recording: boolean;
  uploading: boolean;
  clockSynchronised: boolean;
}

/** The state to show: error > starting > recording > uploading > clock-unsynced > ready. */
export function ledStateOf(v: UnitView): LedState {
  if (v.storageError || (!v.captureAlive && v.captureError)) return 'error';
  if (!v.ready || !v.captureAlive) return 'starting';
  if (v.recording) return 'recording';
  if (v.uploading) return 'uploading';
  if (!v.clockSynchronised) return 'clock-unsynced';
  return 'ready';
}

/** Plays a looping state pattern and one-off flashes on an output; writes only when the level changes. */
export class LedDriver {
  private base: LedPattern | null = null;
  private flashing: LedPattern | null = null;
  private step = 0;
  private timer: unknown = null;
  private level: boolean | null = null;
  private closed = false;

  constructor(
    private readonly out: DigitalOutput,
    private readonly timers: Timers,
  ) {}

  /** Show `p` as the state pattern (from its start); the same pattern again changes nothing. */
  show(p: LedPattern): void {
    if (this.closed || this.base?.name === p.name) return;
    this.base = p;
    if (!this.flashing) this.restart();
  }

  /** Play `p` once, then go back to the state pattern from its start. */
  flash(p: LedPattern): void {
    if (this.closed) return;
    this.flashing = p;
    this.restart();
  }

  /** The pattern playing now (a flash, or the state pattern). */
  current(): string | null {
    return (this.flashing ?? this.base)?.name ?? null;
  }

  /** Stop the timers and turn the LED off. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancel();
    this.write(false);
    this.out.close();
  }

  private cancel(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private restart(): void {
    this.cancel();
    this.step = 0;
    this.play();
  }

  private play(): void {
    const p = this.flashing ?? this.base;
    if (!p) return this.write(false);
    const s = p.steps[this.step];
    this.write(s.on);
    if (s.ms === Infinity) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.step++;
      if (this.step >= p.steps.length) {
        this.step = 0;
        if (this.flashing === p) this.flashing = null;
      }
      this.play();
    }, s.ms);
  }

  private write(level: boolean): void {
    if (this.level === level) return;
    this.level = level;
    this.out.write(level);
  }
}
