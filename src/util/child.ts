/** Child processes in their own process group: spawn, keep a stderr tail, stop with SIGINT then SIGKILL. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

/** A running child with its stderr tail and a promise of its exit. */
export interface GroupChild {
  proc: ChildProcess;
  pid: number;
  /** The last lines it wrote on stderr. */
  stderrTail(): string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGINT to the group, SIGKILL after graceMs; resolves on exit. */
  stop(graceMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Options of spawnGroup. */
export interface SpawnGroupOptions {
  tailLines?: number;
  onStderrLine?: (l: string) => void;
  /**
   * Path of util-linux `setpriv`: when given, the child is started through
   * `setpriv --pdeathsig INT` so the kernel sends it SIGINT if this process dies, even by SIGKILL.
   */
  setprivPath?: string | null;
}

/** Where util-linux setpriv lives on this machine, or null (then children can outlive a crash). */
export function findSetpriv(candidates = ['/usr/bin/setpriv', '/bin/setpriv']): string | null {
  return candidates.find((p) => existsSync(p)) ?? null;
}

/** Spawn `cmd args` detached (own process group) with stdin ignored and stderr tailed. */
export function spawnGroup(cmd: string, args: string[], opts: SpawnGroupOptions = {}): GroupChild {
  const [file, argv] = opts.setprivPath ? [opts.setprivPath, ['--pdeathsig', 'INT', '--', cmd, ...args]] : [cmd, args];
  const proc = spawn(file, argv, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const tail: string[] = [];
  const max = opts.tailLines ?? 20;
  let partial = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.trim()) continue;
      tail.push(l);
      if (tail.length > max) tail.shift();
      opts.onStderrLine?.(l);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('error', (err) => {
      tail.push(`spawn failed: ${err.message}`);
      resolve({ code: null, signal: null });
    });
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const killGroup = (sig: NodeJS.Signals) => {
    if (proc.pid === undefined) return;
    try {
      process.kill(-proc.pid, sig);
    } catch {
      /* already gone */
    }
  };
  return {
    proc,
    pid: proc.pid ?? -1,
    stderrTail: () => [...tail, ...(partial.trim() ? [partial] : [])],
    exited,
    stop: async (graceMs) => {
      killGroup('SIGINT');
      const timer = setTimeout(() => killGroup('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** True when a process with this pid exists and its command line contains `needle`. */
export async function processMatches(pid: number, needle: string): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(needle);
  } catch {
    return false;
  }
}
