/**
 * Runs the benchmarks one after another, each as its own child process (so none disturbs the
 * next), collects the one JSON object each prints, prints them as a JSON array on stdout and
 * writes the array to bench/out/latest.json. Progress (the benches' stderr) goes to stderr.
 *
 * The capture benches always run; get-video, heartbeat and upload run when they have been built.
 * The long stop-latency bench runs last, alone.
 *
 * Usage: node dist/bench/run-all.js [--quick] [--only name,name] [--skip name,name]
 *   --quick   shorter runs: stop-latency 60 s, capture-footprint 20 s, var-clip 4 clips (scheduled-start keeps 20 starts)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { flag, note } from './capture-lib.js';

interface BenchSpec {
  name: string;
  args: string[];
  quickArgs: string[];
  /** Written by someone else; skipped when not built. */
  optional?: boolean;
}

const BENCHES: BenchSpec[] = [
  { name: 'scheduled-start', args: [], quickArgs: ['--trials', '20'] },
  { name: 'two-devices', args: [], quickArgs: ['--trials', '10'] },
  { name: 'capture-footprint', args: [], quickArgs: ['--seconds', '20'] },
  { name: 'get-video', args: [], quickArgs: ['--runs', '1'], optional: true },
  { name: 'heartbeat', args: [], quickArgs: ['--rounds', '1'], optional: true },
  { name: 'upload', args: [], quickArgs: ['--mib', '256', '--runs', '1'], optional: true },
  { name: 'var-clip', args: [], quickArgs: ['--marks', '2'] },
  { name: 'ts-pts', args: [], quickArgs: [] },
  // Needs root, mmdebstrap and qemu-user-static; the first run installs into an arm64 root (minutes, then cached).
  { name: 'arm64-footprint', args: [], quickArgs: ['--seconds', '20'] },
  { name: 'encoders', args: [], quickArgs: ['--seconds', '8'] },
  { name: 'stop-latency', args: [], quickArgs: ['--seconds', '60'] },
];

const listArg = (name: string): string[] | null => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? null : (process.argv[i + 1] ?? '').split(',').filter(Boolean);
};

/** Run one bench; resolves with its JSON (or an error record). */
function runBench(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderrTail: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderrTail = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      process.stderr.write(c);
      stderrTail = (stderrTail + c).slice(-3000);
    });
    const stopChild = (): void => void child.kill('SIGINT');
    process.once('SIGINT', stopChild);
    child.on('error', (err) => {
      process.off('SIGINT', stopChild);
      resolve({ code: null, stdout, stderrTail: stderrTail + err.message });
    });
    child.on('close', (code) => {
      process.off('SIGINT', stopChild);
      resolve({ code, stdout, stderrTail });
    });
  });
}

/** The last line of stdout that parses as a JSON object. */
function lastJson(stdout: string): unknown {
  const lines = stdout.trim().split('\n').reverse();
  for (const l of lines) {
    try {
      const v = JSON.parse(l) as unknown;
      if (v && typeof v === 'object') return v;
    } catch {
      /* not this line */
    }
  }
  try {
    return JSON.parse(stdout) as unknown;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const quick = flag('quick');
  const only = listArg('only');
  const skip = listArg('skip') ?? [];
  const results: unknown[] = [];
  for (const b of BENCHES) {
    if (only && !only.includes(b.name)) continue;
    if (skip.includes(b.name)) continue;
    const script = fileURLToPath(new URL(`./${b.name}.js`, import.meta.url));
    if (!existsSync(script)) {
      if (b.optional) note(`run-all: ${b.name} is not built; skipped`);
      else results.push({ bench: b.name, error: `${script} not found (build first: npx tsc -p .)` });
      continue;
    }
    let args = quick ? b.quickArgs : b.args;
    note(`run-all: ${b.name} ${args.join(' ')}`);
    const t0 = Date.now();
    let r = await runBench(script, args);
    // Someone else's bench may not take our quick flags: run it with its defaults instead.
    if (r.code !== 0 && b.optional && args.length && /unknown option|ERR_PARSE_ARGS/i.test(r.stderrTail)) {
      note(`run-all: ${b.name} refused ${args.join(' ')}; running it with its defaults`);
      args = b.args;
      r = await runBench(script, args);
    }
    const json = lastJson(r.stdout);
    const wallSec = Math.round((Date.now() - t0) / 1000);
    if (r.code === 0 && json) results.push({ ...(json as object), runAll: { args, wallSec } });
    else results.push({ bench: b.name, error: `exit code ${r.code}`, args, wallSec, stderrTail: r.stderrTail.slice(-1500), stdout: r.stdout.slice(-1500) });
  }
  const text = JSON.stringify(results, null, 2);
  const outDir = fileURLToPath(new URL('../../bench/out/', import.meta.url));
  await mkdir(outDir, { recursive: true });
  await writeFile(`${outDir}latest.json`, text + '\n');
  process.stdout.write(text + '\n');
  note(`run-all: wrote ${outDir}latest.json`);
}

main().catch((err) => {
  process.stderr.write(`run-all failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
