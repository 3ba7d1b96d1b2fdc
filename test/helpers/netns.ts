/**
 * Test plumbing for mDNS: a pair of network namespaces joined by a veth pair (so multicast never
 * touches the host's interfaces), processes run inside them, and their JSON-line output.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** True when the `ip` command (iproute2) can be run. */
export async function hasIpCommand(): Promise<boolean> {
  try {
    await run('ip', ['-V']);
    return true;
  } catch {
    return false;
  }
}

/** Two namespaces: `device` (10.213.0.1) and `controller` (10.213.0.2) on one veth link. */
export interface NsPair {
  device: string;
  controller: string;
  deviceIf: string;
  deviceIp: string;
  controllerIp: string;
  /** Kill every process left in either namespace (all started by the test) and delete both. */
  destroy(): Promise<void>;
}

/** Create the pair with unique names; on any failure, what was created is removed again. */
export async function createNsPair(): Promise<NsPair> {
  const id = randomBytes(3).toString('hex');
  const device = `arenacam-mdns-${process.pid}-${id}-dev`;
  const controller = `arenacam-mdns-${process.pid}-${id}-ctl`;
  const deviceIf = `acm${id}d`; // interface names are limited to 15 characters
  const controllerIf = `acm${id}c`;
  const pair: NsPair = {
    device,
    controller,
    deviceIf,
    deviceIp: '10.213.0.1',
    controllerIp: '10.213.0.2',
    destroy: () => destroyNs([device, controller]),
  };
  try {
    await run('ip', ['netns', 'add', device]);
    await run('ip', ['netns', 'add', controller]);
    await run('ip', ['-n', device, 'link', 'add', deviceIf, 'type', 'veth', 'peer', 'name', controllerIf, 'netns', controller]);
    for (const [ns, ifname, ip] of [
      [device, deviceIf, pair.deviceIp],
      [controller, controllerIf, pair.controllerIp],
    ]) {
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', ifname]);
      await run('ip', ['-n', ns, 'link', 'set', ifname, 'multicast', 'on', 'up']);
      await run('ip', ['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', ifname]);
    }
  } catch (err) {
    await pair.destroy();
    throw err;
  }
  return pair;
}

async function destroyNs(names: string[]): Promise<void> {
  for (const ns of names) {
    try {
      const { stdout } = await run('ip', ['netns', 'pids', ns]);
      for (const pid of stdout.split('\n').filter((s) => s.trim() !== '')) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    } catch {
      // namespace was never created
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const ns of names) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
}

/** Run `ip` with arguments (e.g. to change an address during a test). */
export async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

/** Files bind-mounted for avahi inside the namespace's private mount namespace. */
export interface PrivateMounts {
  /** Directory mounted over /run (holds avahi-daemon's socket and the private D-Bus). */
  run: string;
  /** Directory mounted over /etc/avahi/services (static service files). */
  services: string;
}

/** A process started inside a namespace, with its stdout/stderr collected as lines. */
export class NsProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private readonly waiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(ns: string, argv: string[], mounts?: PrivateMounts) {
    // `ip netns exec` gives each command its own mount namespace, so these mounts never reach the host.
    const wrapped = mounts
      ? ['sh', '-c', 'mount --bind "$0" /run && mount --bind "$1" /etc/avahi/services && shift && exec "$@"', mounts.run, mounts.services, ...argv]
      : argv;
    this.child = spawn('ip', ['netns', 'exec', ns, ...wrapped], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let buffered = '';
      stream?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const parts = buffered.split('\n');
        buffered = parts.pop() ?? '';
        this.lines.push(...parts);
        for (const wake of this.waiters.splice(0)) wake();
      });
    }
    this.child.on('exit', () => {
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Lines that parse as JSON objects. */
  json(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.lines) {
      try {
        const value: unknown = JSON.parse(line);
        if (value && typeof value === 'object') out.push(value as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
    return out;
  }

  /** Wait for a JSON line matching `match`; rejects with the output so far after `timeoutMs`. */
  async waitForJson(match: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
    return this.waitFor(() => this.json().find(match), timeoutMs);
  }

  /** Wait for a raw line containing `text`. */
  async waitForText(text: string, timeoutMs: number): Promise<string> {
    return this.waitFor(() => this.lines.find((l) => l.includes(text)), timeoutMs);
  }

  private async waitFor<T>(find: () => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`not seen within ${timeoutMs} ms; output:\n${this.lines.join('\n')}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  /** Send a signal; resolves with how the process ended, or null if it is still running after `timeoutMs`. */
  async signalAndWait(sig: NodeJS.Signals, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
    const ended = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    return ended;
  }
}
