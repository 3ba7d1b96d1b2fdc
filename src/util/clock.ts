/** The one injectable wall clock. Everything that needs "now" takes a Clock. */
export interface Clock {
  /** Milliseconds since the Unix epoch (may carry a fraction). */
  now(): number;
}

/** The operating system's clock, with sub-millisecond resolution. */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
};
