/**
 * Upload pacing: a token bucket shared by all uploads, so `upload.maxBytesPerSecond` caps the
 * device's total upload bandwidth (Wi-Fi uploads must not starve capture). Pure arithmetic over
 * the times it is given.
 */
export class Pacer {
  private tokens: number;
  private lastMs: number | null = null;

  constructor(
    readonly bytesPerSecond: number,
    private readonly burstBytes = Math.max(64 * 1024, bytesPerSecond / 4),
  ) {
    this.tokens = burstBytes;
  }

  /** Take `bytes` at `nowMs`; returns how long (ms) to wait before sending them. */
  take(bytes: number, nowMs: number): number {
    if (this.lastMs !== null) this.tokens = Math.min(this.burstBytes, this.tokens + ((nowMs - this.lastMs) * this.bytesPerSecond) / 1000);
    this.lastMs = nowMs;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond;
  }
}
