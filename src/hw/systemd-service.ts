/** The service's side of the systemd contract: READY=1 once every listener is up, STATUS=, gated WATCHDOG=1, STOPPING=1. */
import type { Logger } from '../log.js';
import { createNotifier, statusField, type Notifier } from './sd-notify.js';
import { Watchdog, watchdogFromEnv } from './watchdog.js';

/** What the service needs to see of a running unit (App satisfies it). */
export interface ServedUnit {
  multicamPort: number;
  httpPort: number;
  capture: {
    status(): { alive: boolean; error: string | null };
    on(event: 'health', listener: (h: { alive: boolean; error: string | null }) => void): unknown;
  };
}

/** Options of SystemdService. */
export interface SystemdServiceOptions {
  /** The process environment: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID. */
  env: NodeJS.ProcessEnv;
  pid: number;
  log: Logger;
  /** Config systemd.captureGraceMs. */
  captureGraceMs: number;
  /** Remove the three variables from `env` after reading them, so child processes (ffmpeg…) do not inherit them. */
  unsetEnvironment?: boolean;
  /** Default: systemd-notify when NOTIFY_SOCKET is set, else a no-op. */
  notifier?: Notifier;
  /** Monotonic ms for the watchdog gate (default performance.now). */
  now?: () => number;
}

const STATUS_MAX = 120;

/** Keeps systemd informed about this process; every method is a no-op without NOTIFY_SOCKET. */
export class SystemdService {
  readonly notifier: Notifier;
  private watchdog: Watchdog | null = null;
  private readonly watchdogUsec: number | null;
  private stopped = false;

  constructor(private readonly o: SystemdServiceOptions) {
    this.notifier = o.notifier ?? createNotifier(o.env, o.log);
    const wd = watchdogFromEnv(o.env, o.pid);
    this.watchdogUsec = 'usec' in wd ? wd.usec : null;
    if ('disabled' in wd) o.log.debug(`no systemd watchdog: ${wd.disabled}`);
    if (o.unsetEnvironment) {
      delete o.env.NOTIFY_SOCKET;
      delete o.env.WATCHDOG_USEC;
      delete o.env.WATCHDOG_PID;
    }
  }

  /** The unit is up (startApp resolved: both ports answer): READY=1 with a status line, then the watchdog. */
  async ready(unit: ServedUnit): Promise<void> {
    if (this.stopped) return;
    let withheldSec: number | null = null;
    const status = () => {
      const h = unit.capture.status();
      const capture = h.alive ? 'running' : h.error ? `down: ${h.error}` : 'starting';
      const pings = withheldSec === null ? '' : `; watchdog pings stopped (capture down ${withheldSec} s)`;
      return statusField(clip(`MultiCam :${unit.multicamPort}, HTTP :${unit.httpPort}${pings}; capture ${capture}`));
    };
    const sent = this.notifier.send('READY=1', status());
    if (this.watchdogUsec !== null && this.notifier.enabled) {
      this.watchdog = new Watchdog({
        notifier: this.notifier,
        watchdogUsec: this.watchdogUsec,
        captureGraceMs: this.o.captureGraceMs,
        captureAlive: () => unit.capture.status().alive,
        log: this.o.log,
        now: this.o.now,
        onGate: (pinging, v) => {
          withheldSec = pinging ? null : Math.round((v.downForMs ?? 0) / 1000);
          if (!this.stopped) void this.notifier.send(status());
        },
      });
    }
    unit.capture.on('health', () => {
      if (this.stopped) return;
      this.watchdog?.observe();
      void this.notifier.send(status());
    });
    this.watchdog?.start();
    await sent;
  }

  /** Shutdown has begun (a signal): no more pings, STOPPING=1. */
  async stopping(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watchdog?.stop();
    await this.notifier.send('STOPPING=1', statusField('stopping'));
  }
}

function clip(s: string): string {
  return s.length > STATUS_MAX ? `${s.slice(0, STATUS_MAX - 1)}…` : s;
}
