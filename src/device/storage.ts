/** Storage guard: pre-roll retention, pruning on low space, and the "storage full" error. */
import { stat } from 'node:fs/promises';
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import type { DiskSpace } from '../hw/disk.js';
import type { SegmentStore } from '../capture/segment-store.js';

/** Options of the guard. */
export interface StorageOptions {
  dataDir: string;
  store: SegmentStore;
  disk: DiskSpace;
  minFreeBytes: number;
  retentionMs: number;
  checkMs: number;
  /** Segments ending after this instant belong to an unfinished recording and are never pruned. */
  protectFromMs: () => number;
  /** Other housekeeping each pass (delivered clips past their keep time). */
  housekeeping?: () => Promise<void>;
  /** After pre-roll, free up to `needBytes` more (delivered clips); resolves with what was freed. */
  reclaim?: (needBytes: number) => Promise<number>;
  /** Called once when space runs out while pruning cannot help. */
  onFull: (reason: string) => Promise<void>;
  clock: Clock;
  log: Logger;
}

/** Keeps pre-roll within its retention and the disk above its floor; reports when it cannot. */
export class StorageGuard {
  private err: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private lastFreeBytes: number | null = null;

  constructor(private readonly o: StorageOptions) {}

  /** The storage error, or null while there is room. */
  error(): string | null {
    return this.err;
  }

  /** Free bytes at the last check. */
  freeBytes(): number | null {
    return this.lastFreeBytes;
  }

  /** Check now and then every checkMs. */
  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.o.checkMs);
    this.timer.unref();
  }

  /** Stop checking. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass: prune expired pre-roll, then prune further while space is short, then judge. */
  check(): Promise<void> {
    this.running ??= this.pass().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private prunable(limitMs: number) {
    const protect = this.o.protectFromMs();
    return this.o.store.all().filter((s) => s.endMs < limitMs && s.endMs <= protect);
  }

  private async pass(): Promise<void> {
    const { store, log, clock } = this.o;
    const expired = this.prunable(clock.now() - this.o.retentionMs);
    for (const seg of expired) await store.remove(seg);
    if (expired.length) log.debug({ removed: expired.length }, 'pre-roll past retention removed');
    await this.o.housekeeping?.().catch((err) => log.warn({ err: (err as Error).message }, 'housekeeping failed'));
    let free: number;
    try {
      free = (await this.o.disk.usage(this.o.dataDir)).freeBytes;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot read free space');
      return;
    }
    if (free < this.o.minFreeBytes) {
      // Oldest pre-roll goes first; the newest few seconds stay so marks can still look back a little.
      const candidates = this.prunable(clock.now() - 10000);
      let freed = 0;
      for (const seg of candidates) {
        if (free + freed >= this.o.minFreeBytes) break;
        freed += (await stat(seg.path).catch(() => ({ size: 0 }))).size;
        await store.remove(seg);
      }
      if (freed) log.warn({ freedMB: +(freed / 1e6).toFixed(1) }, 'low space: oldest pre-roll removed');
      if (free + freed < this.o.minFreeBytes && this.o.reclaim) {
        await this.o.reclaim(this.o.minFreeBytes - free - freed).catch((err) => log.warn({ err: (err as Error).message }, 'reclaiming space failed'));
      }
      free = (await this.o.disk.usage(this.o.dataDir)).freeBytes;
    }
    this.lastFreeBytes = free;
    const minMB = Math.round(this.o.minFreeBytes / 1e6);
    if (free < this.o.minFreeBytes) {
      if (!this.err) {
        this.err = `storage full: ${(free / 1e6).toFixed(0)} MB free, below storage.minFreeMB ${minMB}`;
        log.error({ freeMB: Math.round(free / 1e6), minFreeMB: minMB }, 'storage full');
        await this.o.onFull(this.err).catch((e) => log.error({ err: (e as Error).message }, 'stopping for storage failed'));
      }
    } else if (this.err) {
      log.info({ freeMB: Math.round(free / 1e6) }, 'storage has room again');
      this.err = null;
    }
  }
}
