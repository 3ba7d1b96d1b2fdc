/** Shared pieces of the capture benchmarks: machine facts, statistics, arguments, precise sleeps, /proc sampling. */
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';

/** What the figures were measured on. */
export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  loadavg: number[];
  node: string;
  ffmpeg: string;
  /** The commit the benches ran against, and how many files under src/ differ from it. */
  commit: string;
  srcFilesChanged: number;
}

/** nproc, CPU model, load average now, node and ffmpeg versions. */
export function machineInfo(): MachineInfo {
  let ffmpeg = 'unknown';
  try {
    ffmpeg = execFileSync('ffmpeg', ['-hide_banner', '-version'], { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    /* not installed */
  }
  let commit = 'unknown';
  let srcFilesChanged = -1;
  try {
    const cwd = new URL('../../', import.meta.url).pathname;
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    srcFilesChanged = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd, encoding: 'utf8' }).split('\n').filter(Boolean).length;
  } catch {
    /* not a git checkout */
  }
  return {
    commit,
    srcFilesChanged,
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadavg: loadavg().map((l) => +l.toFixed(2)),
    node: process.version,
    ffmpeg,
  };
}

/** The current 1/5/15-minute load averages, rounded. */
export function load(): number[] {
  return loadavg().map((l) => +l.toFixed(2));
}

/** Distribution of a series of numbers (nearest-rank percentiles). */
export interface Stats {
  n: number;
  min: number;
  median: number;
  mean: number;
  p90: number;
  max: number;
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

/** Nearest-rank percentile of a sorted array. */
function pct(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** min/median/mean/p90/max of `xs`, rounded to 0.01. Median of an even count is the mean of the middle two. */
export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return {
    n,
    min: r2(s[0] ?? NaN),
    median: r2(median),
    mean: r2(n ? s.reduce((a, b) => a + b, 0) / n : NaN),
    p90: r2(pct(s, 0.9)),
    max: r2(s[n - 1] ?? NaN),
  };
}

/** Round to 0.01 (null stays null). */
export function round2(x: number): number {
  return r2(x);
}

/** `--name value` from argv, as a number, or the default. */
export function numArg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number, got ${process.argv[i + 1]}`);
  return v;
}

/** True when `--name` is on the command line. */
export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/** Progress for humans, on stderr. */
export function note(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

/** Print the result: ONE JSON object on stdout. */
export function emit(result: unknown): void {
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** Wall clock with sub-millisecond resolution (the same clock the stamp camera paints with). */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Sleep until wall-clock `targetMs`: a timer to 3 ms before, then spin, so it wakes within ~0.1 ms. */
export async function sleepUntil(targetMs: number): Promise<void> {
  const coarse = targetMs - nowMs() - 3;
  if (coarse > 0) await sleep(coarse);
  while (nowMs() < targetMs) {
    /* spin */
  }
}

/** One /proc sample of a process: cumulative CPU ticks and resident set. */
export interface ProcSample {
  atMs: number;
  ticks: number;
  rssKb: number;
}

/** Clock ticks per second of /proc/<pid>/stat times. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Read utime+stime (ticks) and VmRSS (kB) of `pid`; null when it is gone. */
export async function sampleProc(pid: number): Promise<ProcSample | null> {
  try {
    const [stat, status] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/status`, 'utf8')]);
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return { atMs: nowMs(), ticks, rssKb: m ? Number(m[1]) : NaN };
  } catch {
    return null;
  }
}

/** Summary of a series of samples of one process: RSS (MB) and CPU (% of one core) over the span. */
export interface ProcSummary {
  samples: number;
  seconds: number;
  rssMaxMB: number;
  rssMeanMB: number;
  cpuPercentOfOneCore: number;
}

/** RSS max/mean and the average CPU between the first and last sample. */
export function summarise(samples: ProcSample[]): ProcSummary {
  const first = samples[0];
  const last = samples[samples.length - 1];
  const seconds = (last.atMs - first.atMs) / 1000;
  const rss = samples.map((s) => s.rssKb / 1024);
  return {
    samples: samples.length,
    seconds: r2(seconds),
    rssMaxMB: r2(Math.max(...rss)),
    rssMeanMB: r2(rss.reduce((a, b) => a + b, 0) / rss.length),
    cpuPercentOfOneCore: r2(seconds > 0 ? ((last.ticks - first.ticks) / CLK_TCK / seconds) * 100 : NaN),
  };
}

/** Run `fn` for cleanup on SIGINT/SIGTERM too, then exit (so no unit or camera is left behind). */
export function onInterrupt(fn: () => Promise<void>): void {
  let done = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (done) return;
    done = true;
    note(`${sig}: cleaning up`);
    void fn().finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

/**
 * Stop a unit spawned as its own process: SIGTERM (it finishes a running recording and stops
 * ffmpeg), SIGKILL after `graceMs`; then make sure its capture ffmpeg (own process group, pid
 * in <dataDir>/capture.pid) is gone too, so nothing is orphaned.
 */
export async function stopUnitProcess(
  unit: { proc: import('node:child_process').ChildProcess; exited: Promise<number | null> },
  dataDir: string,
  graceMs = 15000,
): Promise<void> {
  const ffmpegPid = await readFile(`${dataDir}/capture.pid`, 'utf8').then((t) => Number(t.trim()), () => NaN);
  if (unit.proc.exitCode === null && unit.proc.signalCode === null) {
    unit.proc.kill('SIGTERM');
    const timer = setTimeout(() => unit.proc.kill('SIGKILL'), graceMs);
    await unit.exited;
    clearTimeout(timer);
  }
  // Only if that pid is still our unit's ffmpeg (its command line names the data dir).
  const cmdline = ffmpegPid > 1 ? await readFile(`/proc/${ffmpegPid}/cmdline`, 'utf8').catch(() => '') : '';
  if (cmdline.includes(dataDir)) {
    try {
      process.kill(-ffmpegPid, 'SIGKILL');
    } catch {
      /* already gone, as it should be */
    }
  }
}

/** VmRSS and RssAnon of a process in KiB (synchronous, for tight sampling loops), or null when it is gone. */
export function memKiB(pid: number): { rss: number; anon: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)\s+kB/.exec(s);
    const anon = /RssAnon:\s+(\d+)\s+kB/.exec(s);
    return rss ? { rss: Number(rss[1]), anon: anon ? Number(anon[1]) : NaN } : null;
  } catch {
    return null;
  }
}
