/** A value read now and then in the background and kept for synchronous readers. */

/** Polls `read` every `pollMs` (unref'd timer); concurrent refreshes share one read. */
export class Poller<T> {
  private value: T;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<T> | null = null;

  /** `read` must not reject: it turns its own failures into a value. */
  constructor(
    initial: T,
    private readonly read: () => Promise<T>,
    private readonly pollMs: number,
  ) {
    this.value = initial;
  }

  /** Read at once, then every pollMs (the timer does not keep the process alive). Idempotent. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.refresh(), this.pollMs);
    this.timer.unref();
    void this.refresh();
  }

  /** Stop polling; a read already under way still updates current(). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** The latest value. */
  current(): T {
    return this.value;
  }

  /** Read now and return the new value; concurrent calls share one read. */
  refresh(): Promise<T> {
    this.inFlight ??= this.read()
      .then((v) => (this.value = v))
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }
}
