/**
 * systemd watchdog: WATCHDOG=1 every half of $WATCHDOG_USEC, but only while the unit is healthy —
 * capture alive, or down for less than systemd.captureGraceMs (a restarting ffmpeg is normal; a
 * camera gone for good stops the pings, and systemd restarts the whole unit).
 */
import type { Logger } from '../log.js';
import type { Notifier } from './sd-notify.js';

/** What $WATCHDOG_USEC / $WATCHDOG_PID say: the interval systemd expects, or why there is none. */
export type WatchdogEnv = { usec: number } | { disabled: string };

/** Read the watchdog settings like sd_watchdog_enabled(3): WATCHDOG_PID, when set, must be `pid`. */
export function watchdogFromEnv(env: NodeJS.ProcessEnv, pid: number): WatchdogEnv {
  const raw = env.WATCHDOG_USEC;
  if (raw === undefined || raw === '') return { disabled: 'WATCHDOG_USEC is not set' };
  if (!/^\d+$/.test(raw) || Number(raw) <= 0 || !Number.isSafeInteger(Number(raw))) {
    return { disabled: `WATCHDOG_USEC=${JSON.stringify(raw)} is not a positive integer` };
  }
  const forPid = env.WATCHDOG_PID;
  if (forPid !== undefined && forPid !== '' && forPid !== String(pid)) {
    return { disabled: `WATCHDOG_PID=${forPid} is not this process (${pid})` };
  }
  return { usec: Number(raw) };
}

/** Options of the watchdog pinger. */
export interface WatchdogOptions {
  notifier: Notifier;
  /** $WATCHDOG_USEC: systemd's timeout; pings go out every half of it. */
  watchdogUsec: number;
  /** Capture may be down this long before pings stop (config systemd.captureGraceMs). */
  captureGraceMs: number;
  /** Is capture alive now? */
  captureAlive: () => boolean;
  log: Logger;
  /** Monotonic milliseconds (default performance.now: a clock step by chrony must not count as downtime). */
  now?: () => number;
  /** Called when pings stop (false) or resume (true), e.g. to update STATUS=. */
  onGate?: (pinging: boolean, verdict: WatchdogVerdict) => void;
}

/** The gate's state after one look at capture. */
export interface WatchdogVerdict {
  /** Send pings? */
  healthy: boolean;
  /** How long capture has been down (ms), or null while it runs. */
  downForMs: number | null;
}

/** Pure gate: healthy while capture runs or has been down for less than `graceMs`. */
export function judgeWatchdog(downSinceMs: number | null, nowMs: number, graceMs: number): WatchdogVerdict {
  if (downSinceMs === null) return { healthy: true, downForMs: null };
  const downForMs = Math.max(0, nowMs - downSinceMs);
  return { healthy: downForMs < graceMs, downForMs };
}

/** Sends WATCHDOG=1 at half the interval while the gate says healthy; logs when pings stop and resume. */
export class Watchdog {
  private timer: NodeJS.Timeout | null = null;
  private downSince: number | null = null;
  private withholding = false;
  private inFlight = false;
  private readonly now: () => number;
  /** Ping period in ms (half of WATCHDOG_USEC). */
  readonly periodMs: number;

  constructor(private readonly o: WatchdogOptions) {
    this.now = o.now ?? (() => performance.now());
    this.periodMs = Math.max(1, Math.floor(o.watchdogUsec / 2000));
  }

  /** Start pinging (one ping at once, then every periodMs). Capture counts as down from now until it is seen alive. */
  start(): void {
    if (this.timer) return;
    this.observe();
    this.o.log.info({ watchdogSec: this.o.watchdogUsec / 1e6, pingEveryMs: this.periodMs, captureGraceMs: this.o.captureGraceMs }, 'systemd watchdog on');
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.periodMs);
    this.timer.unref();
  }

  /** Stop pinging (shutdown: systemd stops watching once STOPPING=1 arrives). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Look at capture now (call on capture health changes so downtime is timed from the change). */
  observe(): void {
    if (this.o.captureAlive()) this.downSince = null;
    else if (this.downSince === null) this.downSince = this.now();
  }

  /** The gate's current verdict (after observe()). */
  verdict(): WatchdogVerdict {
    return judgeWatchdog(this.downSince, this.now(), this.o.captureGraceMs);
  }

  /** One period: look at capture, then ping or withhold. Resolves when the ping was handed over. */
  async tick(): Promise<void> {
    this.observe();
    const v = this.verdict();
    const { log, notifier } = this.o;
    if (!v.healthy) {
      if (!this.withholding) {
        this.withholding = true;
        const downSec = Math.round((v.downForMs ?? 0) / 1000);
        log.error(
          { downForMs: v.downForMs, captureGraceMs: this.o.captureGraceMs },
          `capture has been down for ${downSec} s: watchdog pings stop, systemd will restart the unit`,
        );
        this.o.onGate?.(false, v);
      }
      return;
    }
    if (this.withholding) {
      this.withholding = false;
      log.warn('capture is back: watchdog pings resume');
      this.o.onGate?.(true, v);
    }
    if (this.inFlight) {
      log.debug('previous watchdog ping still being sent; skipping this one');
      return;
    }
    this.inFlight = true;
    try {
      await notifier.send('WATCHDOG=1');
    } finally {
      this.inFlight = false;
    }
  }
}
