/**
 * systemd notifications (sd_notify protocol) sent through the `systemd-notify` binary.
 *
 * Why a binary: the protocol is one AF_UNIX datagram to $NOTIFY_SOCKET, and Node's `dgram` has no
 * AF_UNIX datagram sockets (`net` only does stream sockets), so a dependency-free sender would need
 * a native addon. `systemd-notify` ships in Debian's/Raspberry Pi OS's `systemd` package, which
 * every unit running this service already has.
 *
 * Why it is reliable from a child process (checked against systemd-notify(1) of systemd 252 and the
 * upstream commits "Introduce sd_notify_barrier" / "man: sd_notify() race is gone with
 * sd_notify_barrier()", systemd v246):
 * - PID 1 attributes a message to a unit by the sender's cgroup. A sender that has already exited
 *   cannot be placed and its message is dropped. Since v246 systemd-notify, unless `--no-block`,
 *   follows its message with `BARRIER=1` carrying a pipe fd and waits (up to 5 s) until PID 1 has
 *   closed it, i.e. processed everything sent before. So the sender is alive while it is placed.
 * - The sender is systemd-notify (not the main PID), so the unit needs `NotifyAccess=all`.
 *   systemd-notify first tries to send as its parent's PID; that needs privileges this unprivileged
 *   service does not have, so it falls back to its own PID — fine with NotifyAccess=all.
 * - When the barrier times out systemd-notify exits 1 ("Failed to invoke barrier") and, like every
 *   systemd tool, reports `ERRNO=<n>` on $NOTIFY_SOCKET; the message itself was still sent.
 * Without $NOTIFY_SOCKET (not started by systemd) every send is a no-op.
 */
import { execa } from 'execa';
import type { Logger } from '../log.js';

/** Sends sd_notify fields ("READY=1", "STATUS=…", "WATCHDOG=1", "STOPPING=1"). */
export interface Notifier {
  /** True when messages go somewhere (NOTIFY_SOCKET was set). */
  readonly enabled: boolean;
  /** Send the fields as one message, after any earlier message. Never rejects. */
  send(...fields: string[]): Promise<void>;
}

/** A notifier that drops everything (no systemd, or tests that do not care). */
export const nullNotifier: Notifier = { enabled: false, send: async () => undefined };

/** Options of the systemd-notify notifier. */
export interface SystemdNotifierOptions {
  /** Value of $NOTIFY_SOCKET (a path or "@abstract" name). */
  socket: string;
  log: Logger;
  /** systemd-notify binary (default: `systemd-notify` on PATH). */
  path?: string;
  /** Kill a systemd-notify that has not finished in this many ms (default 10000; its barrier waits ≤ 5 s). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10000;

/** A STATUS= value on one line (a newline would start another field). */
export function statusField(text: string): string {
  return `STATUS=${text.replace(/[\r\n]+/g, ' ').trim()}`;
}

/** Sends each message by running `systemd-notify FIELD…`; messages go out one at a time, in order. */
export class SystemdNotifier implements Notifier {
  readonly enabled = true;
  private chain: Promise<void> = Promise.resolve();
  private failing = false;
  private readonly path: string;
  private readonly timeoutMs: number;

  constructor(private readonly o: SystemdNotifierOptions) {
    this.path = o.path ?? 'systemd-notify';
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  send(...fields: string[]): Promise<void> {
    const clean = fields.filter((f) => /^[A-Z_]+=/.test(f)).map((f) => f.replace(/[\r\n]+/g, ' '));
    if (clean.length === 0) return this.chain;
    this.chain = this.chain.then(() => this.run(clean));
    return this.chain;
  }

  private async run(fields: string[]): Promise<void> {
    const what = fields.join(' ');
    let problem: string | null = null;
    try {
      const r = await execa(this.path, fields, {
        reject: false,
        timeout: this.timeoutMs,
        forceKillAfterDelay: 500,
        detached: true, // its own process group
        stdin: 'ignore',
        env: { NOTIFY_SOCKET: this.o.socket },
      });
      if (r.code === 'ENOENT') problem = `systemd-notify not found at "${this.path}" (the systemd package provides it)`;
      else if (r.timedOut) problem = `systemd-notify did not finish within ${this.timeoutMs} ms`;
      else if (r.exitCode !== 0) {
        const said = String(r.stderr ?? '').trim().split('\n')[0] || r.shortMessage || 'no output';
        problem = `systemd-notify exited with code ${r.exitCode ?? 'none'}: ${said}`;
      }
    } catch (err) {
      problem = `could not run systemd-notify: ${(err as Error).message}`;
    }
    if (problem === null) {
      if (this.failing) this.o.log.info({ sent: what }, 'systemd notifications work again');
      this.failing = false;
      return;
    }
    // Logged loudly once, then quietly while it keeps failing: a lost ping is no reason to stop.
    if (!this.failing) this.o.log.error({ sent: what, err: problem }, 'systemd notification failed (the unit keeps running)');
    else this.o.log.debug({ sent: what, err: problem }, 'systemd notification failed again');
    this.failing = true;
  }
}

/** The notifier for this process: systemd-notify when $NOTIFY_SOCKET is set, else a no-op (said once at debug). */
export function createNotifier(env: NodeJS.ProcessEnv, log: Logger, opts: { path?: string; timeoutMs?: number } = {}): Notifier {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) {
    log.debug('NOTIFY_SOCKET is not set (not started by systemd): no systemd notifications');
    return nullNotifier;
  }
  log.debug({ socket }, 'systemd notifications through systemd-notify');
  return new SystemdNotifier({ socket, log, ...opts });
}
