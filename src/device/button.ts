/** The push button: debounce and short/long classification as pure logic over edge times, plus a timer driver. */
import type { Clock } from '../util/clock.js';
import type { DigitalInput, Timers } from '../hw/gpio.js';

/** A classified press. `atMs` is always the time of the first edge of the press. */
export type ButtonEvent =
  /** Released before longPressMs. */
  | { kind: 'short'; atMs: number; heldMs: number }
  /** Still held when longPressMs passed; reported at that moment (`firedAtMs`), not at release. */
  | { kind: 'long'; atMs: number; firedAtMs: number };

/** Debounce and press lengths in ms. */
export interface ButtonTiming {
  debounceMs: number;
  longPressMs: number;
}

/**
 * Debounce + classification with no timers of its own: feed it edges (`edge`) and the passing of
 * time (`advance`); `nextWakeMs` says when time next matters. A change of level counts once it
 * has held for debounceMs after the last edge; chatter inside that counts once, and a glitch
 * that returns to the previous level within it is ignored.
 */
export class ButtonLogic {
  /** The debounced level (true = pressed). */
  private stable: boolean;
  /** The raw level after the latest edge. */
  private raw: boolean;
  /** First edge of a change not yet confirmed, and the latest edge since. */
  private firstEdgeMs: number | null = null;
  private lastEdgeMs = 0;
  /** First edge of the press being held. */
  private pressMs = 0;
  private longFired = false;
  /** The latest moment processed (an edge or a deadline). */
  private processedMs = -Infinity;

  constructor(
    private readonly t: ButtonTiming,
    initiallyPressed = false,
  ) {
    this.stable = initiallyPressed;
    this.raw = initiallyPressed;
    // A button already held at start-up is not a press: wait for a release first.
    this.longFired = initiallyPressed;
  }

  /** An edge to `pressed` at `atMs` (times must not go backwards). */
  edge(pressed: boolean, atMs: number): ButtonEvent[] {
    const out = this.advance(atMs);
    if (this.firstEdgeMs === null && pressed !== this.stable) this.firstEdgeMs = atMs;
    if (this.firstEdgeMs !== null) this.lastEdgeMs = atMs;
    this.raw = pressed;
    return out;
  }

  /** Let time pass up to `nowMs`; returns what happened meanwhile, in order. */
  advance(nowMs: number): ButtonEvent[] {
    const out: ButtonEvent[] = [];
    for (;;) {
      const settleAt = this.settleAt();
      const longAt = this.longAt();
      const next = Math.min(settleAt, longAt);
      if (next > nowMs) {
        this.processedMs = Math.max(this.processedMs, nowMs);
        return out;
      }
      // A long press held back by a glitch is reported when the glitch settles.
      this.processedMs = Math.max(this.processedMs, next);
      if (settleAt <= longAt) this.settle(out);
      else {
        this.longFired = true;
        out.push({ kind: 'long', atMs: this.pressMs, firedAtMs: this.processedMs });
      }
    }
  }

  /** When `advance` next has something to do, or null while nothing is pending. */
  nextWakeMs(): number | null {
    const t = Math.min(this.settleAt(), this.longAt());
    return t === Infinity ? null : t;
  }

  /** Is the button (debounced) held now? */
  pressed(): boolean {
    return this.stable;
  }

  private settleAt(): number {
    return this.firstEdgeMs === null ? Infinity : this.lastEdgeMs + this.t.debounceMs;
  }

  /** The long-press moment; held back while a release is being debounced (it may end the press first). */
  private longAt(): number {
    return this.stable && !this.longFired && this.firstEdgeMs === null ? this.pressMs + this.t.longPressMs : Infinity;
  }

  private settle(out: ButtonEvent[]): void {
    const first = this.firstEdgeMs!;
    this.firstEdgeMs = null;
    if (this.raw === this.stable) return; // a glitch: back where it was
    this.stable = this.raw;
    if (this.stable) {
      this.pressMs = first;
      this.longFired = false;
    } else if (!this.longFired) {
      out.push({ kind: 'short', atMs: this.pressMs, heldMs: first - this.pressMs });
    }
  }
}

/** What a Button is built from. */
export interface ButtonOptions extends ButtonTiming {
  input: DigitalInput;
  clock: Clock;
  timers: Timers;
  onEvent: (ev: ButtonEvent) => void;
}

/** Drives ButtonLogic from a DigitalInput's edges and one timer at the next moment that matters. */
export class Button {
  private readonly logic: ButtonLogic;
  private timer: unknown = null;
  private closed = false;

  constructor(private readonly o: ButtonOptions) {
    this.logic = new ButtonLogic(o, o.input.read());
    o.input.watch((active, atMs) => {
      if (this.closed) return;
      this.emit(this.logic.edge(active, atMs));
      this.schedule();
    });
  }

  private emit(events: ButtonEvent[]): void {
    for (const ev of events) this.o.onEvent(ev);
  }

  private schedule(): void {
    if (this.timer !== null) this.o.timers.clearTimeout(this.timer);
    this.timer = null;
    const at = this.logic.nextWakeMs();
    if (at === null || this.closed) return;
    this.timer = this.o.timers.setTimeout(
      () => {
        this.timer = null;
        this.emit(this.logic.advance(this.o.clock.now()));
        this.schedule();
      },
      Math.max(0, Math.ceil(at - this.o.clock.now())),
    );
  }

  /** Stop listening and release the input. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) this.o.timers.clearTimeout(this.timer);
    this.timer = null;
    this.o.input.close();
  }
}
