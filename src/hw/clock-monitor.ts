/** Keeps the latest clock status fresh by polling a ClockStatusReader, and logs sync changes once. */
import type { Logger } from '../log.js';
import { Poller } from '../util/poller.js';
import type { ClockStatus, ClockStatusReader } from './clock-status.js';
import { notSynchronised } from './chrony.js';

/** What a ClockMonitor needs: the reader to poll, how often, and where to log. */
export interface ClockMonitorOptions {
  reader: ClockStatusReader;
  pollMs: number;
  log: Logger;
  /** Epoch ms for checkedAt when the reader itself fails (default Date.now). */
  now?: () => number;
}

/**
 * Polls the clock status every pollMs; current() is always answerable without waiting. Logs once
 * per change of the synchronised flag (the first read counts as a change): info when synchronised,
 * warn with the reason when not.
 */
export class ClockMonitor {
  /** Sync state last logged; null until the first read. */
  private logged: boolean | null = null;
  private readonly poller: Poller<ClockStatus>;

  constructor(private readonly opts: ClockMonitorOptions) {
    this.poller = new Poller(notSynchronised('clock status not read yet', 0), () => this.readOnce(), opts.pollMs);
  }

  /** Read at once, then every pollMs (the timer does not keep the process alive). Idempotent. */
  start(): void {
    this.poller.start();
  }

  /** Stop polling; a read already under way still updates current(). */
  stop(): void {
    this.poller.stop();
  }

  /** The latest status (not synchronised, "clock status not read yet", before the first read). */
  current(): ClockStatus {
    return this.poller.current();
  }

  /** Read now and return the new status; concurrent calls share one read. Never rejects. */
  refresh(): Promise<ClockStatus> {
    return this.poller.refresh();
  }

  private async readOnce(): Promise<ClockStatus> {
    let next: ClockStatus;
    try {
      next = await this.opts.reader.read();
    } catch (e) {
      next = {
        ...this.poller.current(),
        synchronised: false,
        offsetMs: null,
        reason: `clock status read failed: ${(e as Error)?.message ?? String(e)}`,
        checkedAt: (this.opts.now ?? Date.now)(),
      };
    }
    this.logTransition(next);
    return next;
  }

  private logTransition(s: ClockStatus): void {
    if (this.logged === s.synchronised) return;
    this.logged = s.synchronised;
    const fields = { source: s.source, offsetMs: s.offsetMs, stratum: s.stratum, refId: s.refId };
    if (s.synchronised) {
      this.opts.log.info({ ...fields, note: s.reason ?? undefined }, 'clock synchronised');
    } else {
      this.opts.log.warn({ ...fields, leapStatus: s.leapStatus, reason: s.reason }, `clock not synchronised: ${s.reason}`);
    }
  }
}
