/**
 * Benchmark: HEARTBEAT latency and throughput with many concurrent controllers, against a bare
 * Node server.
 *
 * The unit runs as a separate `arenacam serve` process (spawnUnit) with its testsrc camera
 * capturing, and is RECORDING (START_RECORDING is sent first; STOP_RECORDING at the end).
 * `--clients` (default 50) controllers each loop: new TCP connection, write the compact JSON
 * HEARTBEAT with every key (as the real controller does), wait for ONE read, close. Latency is
 * from connect() to the first reply byte, and includes the connect.
 *
 * Baseline, same client load: a bare Node `net` server in its own process that, per connection,
 * waits for the first data chunk, writes a canned reply of the same size as the device's
 * HEARTBEAT reply (the device's own reply bytes) and closes.
 *
 * Phases alternate device / bare, `--rounds` times (default 3), each `--seconds` long
 * (default 8) or `--max-commands` commands, after a short unmeasured warm-up of each. This is a
 * closed loop: every client starts its next command as soon as the last one ends, so the
 * servers run saturated and latency includes queueing (Little: latency ~ clients / throughput).
 * A second, paced series (`--paced-rate` commands/s in total, default 1000, 0 = skip) spreads
 * the same clients' commands in time to show latency below saturation. Prints ONE JSON object
 * on stdout; progress on stderr.
 *
 *   node dist/bench/heartbeat.js [--clients 50] [--seconds 8] [--rounds 3] [--max-commands 200000]
 *                                [--paced-rate 1000 --paced-seconds 5 --paced-rounds 2]
 *                                [--width 640 --height 360 --fps 30]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnUnit, testConfig, waitFor, type UnitProcess } from '../test/helpers/device.js';
import { buildCommand, classifyReply, sendCommand } from '../test/helpers/controller.js';

const SELF = fileURLToPath(import.meta.url);
const HOST = '127.0.0.1';
const COMMAND_TIMEOUT_MS = 5000;

const log = (msg: string): void => void process.stderr.write(`[heartbeat] ${msg}\n`);
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Bare server child mode: `node heartbeat.js --bare-server <base64 reply>`; prints {"port":N}.
// ---------------------------------------------------------------------------------------------

function bareServerMain(replyB64: string): void {
  const reply = Buffer.from(replyB64, 'base64');
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    let answered = false;
    socket.on('data', () => {
      if (answered) return; // keep reading so that closing never sends a reset
      answered = true;
      socket.end(reply);
    });
  });
  server.listen({ host: HOST, port: 0, backlog: 511 }, () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  process.stdin.on('end', () => process.exit(0)); // parent gone
  process.stdin.resume();
}

// ---------------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------------

interface PhaseResult {
  latenciesMs: number[];
  connectMs: number[];
  ok: number;
  errors: Record<string, number>;
  seconds: number;
  clientLoopDelayP99Ms: number;
  serverCpuPercent: number | null;
}

/** One controller command: connect, write, one read, close. Resolves with [total ms, connect ms]. */
function heartbeatOnce(port: number, check: (first: Buffer) => string | null): Promise<[number, number]> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let tc = t0;
    let done = false;
    const socket = connect({ host: HOST, port });
    const timer = setTimeout(() => finish(new Error('timeout')), COMMAND_TIMEOUT_MS);
    const finish = (err: Error | null, first?: Buffer): void => {
      if (done) return;
      done = true;
      const t1 = performance.now();
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      const bad = check(first!);
      if (bad) return reject(new Error(bad));
      resolve([t1 - t0, tc - t0]);
    };
    socket.once('connect', () => {
      tc = performance.now();
      socket.write(buildCommand('HEARTBEAT'));
    });
    socket.once('data', (chunk: Buffer) => finish(null, chunk));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(new Error(err.code ?? err.message)));
    socket.once('close', () => finish(new Error('closed without a reply')));
  });
}

/** CPU seconds (user+system) a process has used so far, or null. */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
}

/**
 * `clients` loops hammering `port` until `seconds` pass or `maxCommands` are sent. With
 * `periodMs` > 0 each client starts a command every periodMs (staggered; at once when late)
 * instead of right after the previous one.
 */
async function phase(
  port: number,
  clients: number,
  seconds: number,
  maxCommands: number,
  check: (b: Buffer) => string | null,
  serverPid: number,
  periodMs = 0,
): Promise<PhaseResult> {
  const latenciesMs: number[] = [];
  const connectMs: number[] = [];
  const errors: Record<string, number> = {};
  let issued = 0;
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  const cpu0 = cpuSeconds(serverPid);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const worker = async (_: unknown, i: number): Promise<void> => {
    let next = t0 + (periodMs * i) / clients;
    while (performance.now() < end && issued < maxCommands) {
      if (periodMs > 0) {
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        next = Math.max(next + periodMs, performance.now() - periodMs);
        if (performance.now() >= end) break;
      }
      issued++;
      try {
        const [ms, cms] = await heartbeatOnce(port, check);
        latenciesMs.push(ms);
        connectMs.push(cms);
      } catch (err) {
        const k = (err as Error).message;
        errors[k] = (errors[k] ?? 0) + 1;
        if (k === 'EADDRNOTAVAIL' || k === 'ECONNREFUSED') await sleep(10);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(serverPid);
  eld.disable();
  return {
    latenciesMs,
    connectMs,
    ok: latenciesMs.length,
    errors,
    seconds: elapsed,
    clientLoopDelayP99Ms: eld.percentile(99) / 1e6,
    serverCpuPercent: cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) / elapsed) * 100 : null,
  };
}

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summarize(results: PhaseResult[]) {
  const lat = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const con = results.flatMap((r) => r.connectMs).sort((a, b) => a - b);
  const ok = results.reduce((s, r) => s + r.ok, 0);
  const secs = results.reduce((s, r) => s + r.seconds, 0);
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    commands: ok,
    errors,
    seconds: round(secs, 1),
    throughputPerSec: round(ok / secs, 0),
    throughputPerRound: results.map((r) => round(r.ok / r.seconds, 0)),
    latencyMs: { p50: round(pct(lat, 50)), p90: round(pct(lat, 90)), p99: round(pct(lat, 99)), max: round(lat[lat.length - 1] ?? NaN) },
    p99PerRoundMs: results.map((r) => round(pct([...r.latenciesMs].sort((a, b) => a - b), 99))),
    connectMs: { p50: round(pct(con, 50)), p99: round(pct(con, 99)) },
    clientLoopDelayP99Ms: results.map((r) => round(r.clientLoopDelayP99Ms)),
    serverCpuPercent: results.map((r) => (r.serverCpuPercent === null ? null : round(r.serverCpuPercent, 0))),
    serverCpuMicrosPerCommand: round(
      results.reduce((s, r) => s + ((r.serverCpuPercent ?? NaN) / 100) * r.seconds, 0) / ok * 1e6,
      0,
    ),
  };
}

function startChild(args: string[]): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr!.on('data', (c) => (err += c));
    proc.once('exit', (code) => reject(new Error(`bare server exited early (${code}): ${err.slice(-500)}`)));
    proc.stdout!.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ proc, port: Number((JSON.parse(out.slice(0, nl)) as { port: number }).port) });
    });
  });
}

async function stopProc(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 15000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill(signal);
  const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

const rssMiB = (pid: number): number | null => {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024, 1) : null;
  } catch {
    return null;
  }
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '50' },
      seconds: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '3' },
      'max-commands': { type: 'string', default: '200000' },
      width: { type: 'string', default: '640' },
      height: { type: 'string', default: '360' },
      fps: { type: 'string', default: '30' },
      'paced-rate': { type: 'string', default: '1000' },
      'paced-seconds': { type: 'string', default: '5' },
      'paced-rounds': { type: 'string', default: '2' },
      'bare-server': { type: 'string' },
    },
  });
  if (values['bare-server']) return bareServerMain(values['bare-server']);
  const clients = Number(values.clients);
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const maxCommands = Number(values['max-commands']);
  const pacedRate = Number(values['paced-rate']);
  const pacedSeconds = Number(values['paced-seconds']);
  const pacedRounds = Number(values['paced-rounds']);
  const cam = { width: Number(values.width), height: Number(values.height), fps: Number(values.fps) };
  const date = new Date().toISOString();
  const machine = { nproc: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadavg: loadavg().map((x) => round(x)) };
  log(`machine ${JSON.stringify(machine)}`);

  const dataDir = await mkdtemp(join(tmpdir(), 'arenacam-bench-heartbeat-'));
  let unit: UnitProcess | null = null;
  let bare: ChildProcess | null = null;
  const cleanup = async (): Promise<void> => {
    if (bare) await stopProc(bare, 'SIGKILL').catch(() => undefined);
    if (unit) await stopProc(unit.proc, 'SIGTERM').catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    log(`removed ${dataDir}`);
  };
  const onSignal = (): void => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const config = testConfig(dataDir, {
      log: { level: 'info' },
      camera: { source: 'testsrc', ...cam },
      encoder: { codec: 'libx264', preset: 'ultrafast', bitrateKbps: 1500 },
    });
    log(`spawning the unit (testsrc ${cam.width}x${cam.height}@${cam.fps}, libx264 ultrafast, log level info)`);
    unit = await spawnUnit(dataDir, config, 'bench-unit');
    const unitPid = unit.proc.pid!;
    const port = unit.multicamPort;
    log(`unit pid ${unitPid}, multicam port ${port}`);

    // Record: capture must be up for START_RECORDING to mean anything; retry until it says so.
    await waitFor(async () => {
      const r = await sendCommand(HOST, port, 'HEARTBEAT');
      return r.kind === 'status' && r.body.status === 'ready';
    }, 30000, 'the unit to report ready');
    await sleep(2000); // a few segments in the store
    const start = await sendCommand(HOST, port, 'START_RECORDING', { timestamp: Date.now() / 1000 });
    if (start.kind !== 'status' || start.body.status !== 'recording') throw new Error(`START_RECORDING: ${JSON.stringify(start.body)}`);
    log('unit is recording');

    // The device's own HEARTBEAT reply, as the bare server's canned reply.
    const sample = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ host: HOST, port }, () => s.write(buildCommand('HEARTBEAT')));
      s.once('data', (c: Buffer) => (s.destroy(), resolve(c)));
      s.once('error', reject);
    });
    log(`device HEARTBEAT reply: ${sample.length} bytes: ${sample.toString('utf8')}`);
    const b = await startChild([SELF, '--bare-server', sample.toString('base64')]);
    bare = b.proc;

    const checkDevice = (first: Buffer): string | null => {
      try {
        const r = classifyReply(JSON.parse(first.toString('utf8')));
        if (r.kind !== 'status') return `device reply ${r.kind}: ${'message' in r ? r.message : ''}`;
        return r.body.status === 'recording' ? null : `device status ${String(r.body.status)}`;
      } catch (err) {
        return `bad reply: ${(err as Error).message}`;
      }
    };
    const checkBare = (first: Buffer): string | null => (first.length === sample.length ? null : `bare reply of ${first.length} bytes`);

    const rssBefore = rssMiB(unitPid);
    log('warm-up (1 s each, not counted)');
    await phase(port, clients, 1, maxCommands, checkDevice, unitPid);
    await phase(b.port, clients, 1, maxCommands, checkBare, bare.pid!);

    const dev: PhaseResult[] = [];
    const base: PhaseResult[] = [];
    for (let r = 1; r <= rounds; r++) {
      await sleep(500);
      const d = await phase(port, clients, seconds, maxCommands, checkDevice, unitPid);
      dev.push(d);
      log(`round ${r}/${rounds} device: ${d.ok} ok in ${round(d.seconds, 1)} s, errors ${JSON.stringify(d.errors)}`);
      await sleep(500);
      const n = await phase(b.port, clients, seconds, maxCommands, checkBare, bare.pid!);
      base.push(n);
      log(`round ${r}/${rounds} bare:   ${n.ok} ok in ${round(n.seconds, 1)} s, errors ${JSON.stringify(n.errors)}`);
    }
    // Paced series: same 50 clients, each one command every periodMs (below saturation), so
    // latency is service time rather than queueing behind the closed loop.
    const pacedDev: PhaseResult[] = [];
    const pacedBase: PhaseResult[] = [];
    const periodMs = pacedRate > 0 ? (clients * 1000) / pacedRate : 0;
    for (let r = 1; periodMs > 0 && r <= pacedRounds; r++) {
      await sleep(500);
      const d = await phase(port, clients, pacedSeconds, maxCommands, checkDevice, unitPid, periodMs);
      pacedDev.push(d);
      log(`paced ${pacedRate}/s round ${r}/${pacedRounds} device: ${d.ok} ok in ${round(d.seconds, 1)} s, errors ${JSON.stringify(d.errors)}`);
      await sleep(500);
      const n = await phase(b.port, clients, pacedSeconds, maxCommands, checkBare, bare.pid!, periodMs);
      pacedBase.push(n);
      log(`paced ${pacedRate}/s round ${r}/${pacedRounds} bare:   ${n.ok} ok in ${round(n.seconds, 1)} s, errors ${JSON.stringify(n.errors)}`);
    }
    const rssAfter = rssMiB(unitPid);

    const stop = await sendCommand(HOST, port, 'STOP_RECORDING', {}, 60000);
    log(`STOP_RECORDING: ${JSON.stringify(stop.body)}`);

    const device = summarize(dev);
    const bareS = summarize(base);
    const out = {
      bench: 'heartbeat',
      date,
      machine: { ...machine, loadavgEnd: loadavg().map((x) => round(x)) },
      load: {
        clients,
        pattern: 'per command: new TCP connection, compact JSON with all keys, one read, close',
        roundSeconds: seconds,
        rounds,
        order: 'alternating device, bare; 1 s warm-up of each first',
        maxCommandsPerRound: maxCommands,
        latency: 'connect() to the first reply byte (includes the TCP connect), ms',
      },
      unit: {
        camera: `testsrc ${cam.width}x${cam.height}@${cam.fps}, libx264 ultrafast 1500 kbit/s`,
        recording: true,
        replyBytes: sample.length,
        rssBeforeMiB: rssBefore,
        rssAfterMiB: rssAfter,
        stopReply: stop.body.status,
      },
      device,
      bare: { ...bareS, server: 'separate node process, net server, canned reply of the same size, end()' },
      ratioThroughputDeviceToBare: round(device.throughputPerSec / bareS.throughputPerSec, 3),
      ratioP99DeviceToBare: round(device.latencyMs.p99 / bareS.latencyMs.p99, 2),
      paced: pacedDev.length
        ? {
            targetRatePerSec: pacedRate,
            perClientPeriodMs: round(periodMs, 1),
            roundSeconds: pacedSeconds,
            rounds: pacedRounds,
            device: summarize(pacedDev),
            bare: summarize(pacedBase),
          }
        : null,
      goals: {
        deviceP99: { target: '< 10 ms (saturating closed loop, the load asked for)', valueMs: device.latencyMs.p99, met: device.latencyMs.p99 < 10 },
        deviceP99Paced: pacedDev.length
          ? { target: `< 10 ms at ${pacedRate} commands/s (context)`, valueMs: summarize(pacedDev).latencyMs.p99, met: summarize(pacedDev).latencyMs.p99 < 10 }
          : null,
      },
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`[heartbeat] failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
