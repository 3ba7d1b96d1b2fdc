/** mDNS advertiser that publishes through the host's avahi-daemon with a supervised `avahi-publish`. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../log.js';
import type { Advertiser } from './mdns.js';

/** Options of the avahi backend; timings default to production values. */
export interface AvahiAdvertiserOptions {
  name: string;
  /** DNS-SD type as avahi-publish takes it, e.g. `_multicam._tcp`. */
  serviceType: string;
  deviceId: string;
  port: number;
  log: Logger;
  /** Path of avahi-publish; null when it is not installed (start() then logs an error). */
  command: string | null;
  /** How long start() waits for "Established under name" (ms); default 5 s. */
  startTimeoutMs?: number;
  /** First and largest restart delay (ms); defaults 1 s and 60 s. */
  restartMinMs?: number;
  restartMaxMs?: number;
  /** A child that lived this long resets the backoff (ms); default 30 s. */
  stableMs?: number;
  /** SIGINT, then SIGKILL after this long (ms); default 2 s. */
  stopGraceMs?: number;
}

const TAIL_LINES = 10;

/** Keeps `avahi-publish -s multiCam-<id> _multicam._tcp <port> deviceId=<id>` running until stop(). */
export class AvahiAdvertiser implements Advertiser {
  readonly backend = 'avahi';
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private restartTimer: NodeJS.Timeout | null = null;
  private running = false;
  private failures = 0;
  private tail: string[] = [];
  private onEstablished: (() => void) | null = null;

  constructor(private readonly opts: AvahiAdvertiserOptions) {}

  /** The argument vector given to avahi-publish. */
  args(): string[] {
    return ['-s', this.opts.name, this.opts.serviceType, String(this.opts.port), `deviceId=${this.opts.deviceId}`];
  }

  async start(): Promise<void> {
    if (this.running) return;
    if (this.opts.command === null) {
      this.opts.log.error(
        { hint: 'apt-get install avahi-utils, or set the mdns backend to bonjour' },
        'mdns: avahi-publish is not installed: the device is not advertised over mDNS',
      );
      return;
    }
    this.running = true;
    const established = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.opts.log.warn({ waitedMs: this.startTimeoutMs }, 'mdns: avahi-publish has not confirmed the service yet');
        resolve();
      }, this.startTimeoutMs);
      this.onEstablished = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.spawnChild(this.opts.command);
    await established;
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.settle();
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const grace = this.opts.stopGraceMs ?? 2000;
    this.signal(child, 'SIGINT');
    const killer = setTimeout(() => {
      this.opts.log.warn({ pid: child.pid, graceMs: grace }, 'mdns: avahi-publish ignored SIGINT; sending SIGKILL');
      this.signal(child, 'SIGKILL');
    }, grace);
    await this.exited;
    clearTimeout(killer);
  }

  private get startTimeoutMs(): number {
    return this.opts.startTimeoutMs ?? 5000;
  }

  /** Resolve a pending start() (established, failed, or stopped). */
  private settle(): void {
    const done = this.onEstablished;
    this.onEstablished = null;
    done?.();
  }

  /** Signal the child's process group (it is its own leader), falling back to the child alone. */
  private signal(child: ChildProcess, sig: NodeJS.Signals): void {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      child.kill(sig);
    }
  }

  private spawnChild(command: string): void {
    const { log } = this.opts;
    const startedAt = Date.now();
    this.tail = [];
    const child = spawn(command, this.args(), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let finished = false;
    let markExited: () => void = () => {};
    this.exited = new Promise((resolve) => (markExited = resolve));
    const finish = (code: number | null, signal: NodeJS.Signals | null, err?: NodeJS.ErrnoException): void => {
      if (finished) return;
      finished = true;
      markExited();
      this.onExit(command, Date.now() - startedAt, code, signal, err);
    };
    child.on('error', (err: NodeJS.ErrnoException) => finish(null, null, err));
    child.on('exit', (code, signal) => finish(code, signal));
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => this.onLine(line));
    }
    log.debug({ pid: child.pid, command, args: this.args() }, 'mdns: avahi-publish started');
  }

  private onLine(line: string): void {
    const { log, name } = this.opts;
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    const established = /^Established under name '(.*)'$/.exec(line);
    if (established) {
      const got = established[1];
      if (got === name) log.info({ name: got, type: this.opts.serviceType, port: this.opts.port }, 'mdns: published via avahi');
      else log.warn({ wanted: name, got }, 'mdns: name taken on the network; avahi published an alternative name');
      this.failures = 0;
      this.settle();
    } else if (/collision/i.test(line)) {
      log.warn({ line }, 'mdns: avahi reports a name collision');
    } else if (/fail|waiting/i.test(line)) {
      log.warn({ line }, 'mdns: avahi-publish reports a problem');
    } else {
      log.debug({ line }, 'mdns: avahi-publish output');
    }
  }

  private onExit(command: string, livedMs: number, code: number | null, signal: NodeJS.Signals | null, err?: NodeJS.ErrnoException): void {
    const { log } = this.opts;
    this.child = null;
    if (!this.running) {
      log.info({ code, signal }, 'mdns: avahi-publish stopped (service withdrawn)');
      return;
    }
    this.settle();
    if (err?.code === 'ENOENT' || err?.code === 'EACCES') {
      log.error({ err, command }, 'mdns: cannot run avahi-publish: the device is not advertised over mDNS');
      this.running = false;
      return;
    }
    if (livedMs >= (this.opts.stableMs ?? 30_000)) this.failures = 0;
    const min = this.opts.restartMinMs ?? 1000;
    const delayMs = Math.min(this.opts.restartMaxMs ?? 60_000, min * 2 ** this.failures);
    this.failures += 1;
    log.warn(
      { err, code, signal, livedMs, stderrTail: this.tail.join('\n'), restartInMs: delayMs },
      'mdns: avahi-publish exited; restarting',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.running) this.spawnChild(command);
    }, delayMs);
  }
}
