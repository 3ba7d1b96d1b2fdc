/** Who is reading which file: downloads hold a handle, removals wait for the last reader. */
import type { RecordingHandle } from '../device/types.js';

/** Reader counts by key (a recording's name, a clip's id). */
export class OpenReaders {
  private readonly counts = new Map<string, number>();
  private readonly waiters = new Map<string, Array<() => void>>();

  /** Count one more reader of `key`; the handle's release() (once) counts it out. */
  handle(key: string, h: Omit<RecordingHandle, 'release'>): RecordingHandle {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let released = false;
    return {
      ...h,
      release: () => {
        if (released) return;
        released = true;
        const n = (this.counts.get(key) ?? 1) - 1;
        if (n > 0) return void this.counts.set(key, n);
        this.counts.delete(key);
        const waiting = this.waiters.get(key) ?? [];
        this.waiters.delete(key);
        for (const w of waiting) w();
      },
    };
  }

  /** True while some reader has `key` open. */
  isOpen(key: string): boolean {
    return (this.counts.get(key) ?? 0) > 0;
  }

  /** Resolves once nobody reads `key` (at once when nobody does). */
  whenClosed(key: string): Promise<void> {
    if (!this.isOpen(key)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.set(key, [...(this.waiters.get(key) ?? []), resolve]));
  }
}
