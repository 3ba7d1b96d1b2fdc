/** Test helpers: real chronyd processes on loopback (never touching the system clock) for adapter tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { accessSync, constants, existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';

/** A running chronyd started by these helpers. */
export interface Chronyd {
  /** Private mode-700 folder holding config, pidfile, driftfile and the command socket. */
  dir: string;
  /** Command socket, for `chronyc -h <socket>`. */
  socket: string;
  /** NTP port it serves on 127.0.0.1 (server), or null (client: `port 0`). */
  ntpPort: number | null;
  pid: number;
  /** Everything chronyd has written to stdout/stderr so far. */
  log(): string;
  /** Kill it (SIGTERM, then SIGKILL) and remove its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** Log lines by which chronyd reports a start-up problem without exiting. */
const STARTUP_FAILURES = [/Fatal error/i, /Could not open/i, /Disabled command socket/i, /Wrong (owner|permissions)/i, /Could not bind/i];
const START_TIMEOUT_MS = 5000;

/** Path of an executable found in the usual sbin folders or on PATH, or null. */
export function findExecutable(name: string): string | null {
  const dirs = ['/usr/sbin', '/sbin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(delimiter)];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* try the next folder */
    }
  }
  return null;
}

/** Why real-chronyd tests cannot run here (no chronyd/chronyc, not root), or null when they can. */
export function chronydSkipReason(): string | null {
  if (findExecutable('chronyd') === null) return 'chronyd is not installed on this machine';
  if (findExecutable('chronyc') === null) return 'chronyc is not installed on this machine';
  if (process.getuid?.() !== 0) return 'chronyd refuses to start unless run as root ("Not superuser")';
  return null;
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Start a chronyd that serves NTP on 127.0.0.1 from its local clock (`local stratum <stratum>`). */
export async function startChronydServer(opts: { stratum?: number } = {}): Promise<Chronyd> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeUdpPort();
    const conf = [
      `local stratum ${opts.stratum ?? 8}`,
      'allow 127.0.0.1',
      `port ${port}`,
      'bindaddress 127.0.0.1',
    ];
    try {
      return await startChronyd('server', conf, port);
    } catch (e) {
      lastError = e; // most likely the port was taken in between: try another one
      if (!/Could not open NTP socket/.test((e as Error).message)) throw e;
    }
  }
  throw lastError;
}

/** Start a chronyd client of the NTP server at 127.0.0.1:<serverPort>, polling as fast as chrony allows. */
export function startChronydClient(serverPort: number): Promise<Chronyd> {
  const conf = [
    `server 127.0.0.1 port ${serverPort} iburst minpoll -6 maxpoll -6`,
    'port 0',
    'makestep 1 -1',
  ];
  return startChronyd('client', conf, null);
}

async function startChronyd(kind: string, specific: string[], ntpPort: number | null): Promise<Chronyd> {
  const chronyd = findExecutable('chronyd');
  if (chronyd === null) throw new Error('chronyd is not installed on this machine');
  const dir = await mkdtemp(join(tmpdir(), `arenacam-chronyd-${kind}-`));
  await chmod(dir, 0o700); // chronyd refuses a command-socket folder others can enter
  const socket = join(dir, 'chronyd.sock');
  const confPath = join(dir, 'chrony.conf');
  const conf = [
    ...specific,
    `bindcmdaddress ${socket}`,
    'cmdport 0',
    `pidfile ${join(dir, 'chronyd.pid')}`,
    `driftfile ${join(dir, 'chronyd.drift')}`,
  ];
  await writeFile(confPath, conf.join('\n') + '\n');
  // -x: never touch the system clock; -d: foreground, log to stderr; -4: IPv4 only;
  // -u <us>: keep our uid, else chronyd drops to _chrony and rejects our root-owned folder.
  const child = spawn(chronyd, ['-4', '-x', '-d', '-u', userInfo().username, '-f', confPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout?.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (log += b.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', (e) => {
      log += `spawn error: ${e.message}\n`;
      exited = true;
      resolve();
    });
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      await killChild(child, exit, () => exited);
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    await waitUntilAnswering(socket, () => exited, () => log);
  } catch (e) {
    await stop();
    throw e;
  }
  return { dir, socket, ntpPort, pid: child.pid ?? -1, log: () => log, stop };
}

/** Wait until chronyc gets an answer on the socket, failing early on chronyd's own complaints. */
async function waitUntilAnswering(socket: string, exited: () => boolean, log: () => string): Promise<void> {
  const chronyc = findExecutable('chronyc') ?? 'chronyc';
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const problem = STARTUP_FAILURES.find((re) => re.test(log()));
    if (problem) throw new Error(`chronyd failed to start:\n${log()}`);
    if (exited()) throw new Error(`chronyd exited during start-up:\n${log()}`);
    if (existsSync(socket)) {
      const r = await execa(chronyc, ['-h', socket, '-n', '-c', 'tracking'], { reject: false, timeout: 2000 });
      if (r.exitCode === 0) {
        // Every start-up line precedes the main loop that answered; look at them once more.
        await new Promise((res) => setImmediate(res));
        if (STARTUP_FAILURES.some((re) => re.test(log()))) throw new Error(`chronyd failed to start:\n${log()}`);
        return;
      }
    }
    if (Date.now() > deadline) throw new Error(`chronyd did not answer on ${socket} within ${START_TIMEOUT_MS} ms:\n${log()}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function killChild(child: ChildProcess, exit: Promise<void>, exited: () => boolean): Promise<void> {
  if (exited() || child.pid === undefined) return;
  child.kill('SIGCONT'); // a test may have stopped it with SIGSTOP
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 2000).unref());
  if ((await Promise.race([exit.then(() => 'exited' as const), timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exit;
  }
}
