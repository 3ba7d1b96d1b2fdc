/**
 * Benchmark: GET_VIDEO of a large recording over loopback, against a bare sender.
 *
 * The unit runs as a separate `arenacam serve` process (spawnUnit) with its test-pattern camera
 * capturing, so its VmRSS can be sampled from /proc during the transfers. A file of `--mib` MiB
 * (default 1024) named like a recording is written into <dataDir>/recordings before the unit
 * starts, so the catalog picks it up; it is deleted at the end.
 *
 * Baselines, read by the same client: a bare Node `net` server (its own process) that, on the
 * first data chunk, writes the same 4-byte length + JSON header and pipes fs.createReadStream of
 * the file; and, when installed, `socat -u OPEN:<file> TCP-LISTEN:…` (raw file bytes, no
 * protocol: the client sends nothing and reads exactly the file size), with socat's default
 * 8 KiB blocks and with `-b 262144`.
 *
 * Runs alternate device / bare node / socat, `--runs` times (default 3). Prints ONE JSON object
 * on stdout; progress goes to stderr.
 *
 *   node dist/bench/get-video.js [--mib 1024] [--runs 3] [--no-socat]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { accessSync, constants, createReadStream, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, open, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnUnit, testConfig, type UnitProcess } from '../test/helpers/device.js';
import { buildCommand } from '../test/helpers/controller.js';
import { memKiB } from './capture-lib.js';

const SELF = fileURLToPath(import.meta.url);
const FILE_NAME = 'video_1700000000.mp4';
const SAMPLE_BYTES = 4 * 1024 * 1024; // hashed at the start of every transfer to check the bytes
const RSS_EVERY_MS = 25;

const log = (msg: string): void => void process.stderr.write(`[get-video] ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Bare sender child mode: `node get-video.js --bare-sender <path>`; prints {"port":N} on stdout.
// ---------------------------------------------------------------------------------------------

function bareSenderMain(path: string, size: number): void {
  const json = Buffer.from(JSON.stringify({ deviceId: 'bare-sender', fileName: FILE_NAME, fileSize: size, status: 'ready' }));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length, 0);
  const header = Buffer.concat([len, json]);
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    let started = false;
    socket.on('data', () => {
      if (started) return; // keep reading (and discarding) so closing never sends a reset
      started = true;
      socket.write(header);
      createReadStream(path).pipe(socket);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  process.stdin.on('end', () => process.exit(0)); // parent gone
  process.stdin.resume();
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const rssKiB = (pid: number): number | null => memKiB(pid)?.rss ?? null;

function machine(): Record<string, unknown> {
  return { nproc: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadavg: loadavg().map((x) => round(x, 2)) };
}

/** Write `mib` MiB of non-repeating pseudo-random bytes in 8 MiB chunks; returns the sha256 of the first SAMPLE_BYTES. */
async function writeBigFile(path: string, mib: number): Promise<string> {
  const CHUNK = 8 * 1024 * 1024;
  const total = mib * 1024 * 1024;
  const seed = randomFillSync(Buffer.alloc(CHUNK));
  const fh = await open(path, 'w');
  const sample = createHash('sha256');
  let sampled = 0;
  try {
    for (let off = 0, n = 0; off < total; off += CHUNK, n++) {
      const len = Math.min(CHUNK, total - off);
      const buf = seed.subarray(0, len);
      buf.writeUInt32LE(n, 0); // every chunk differs
      await fh.write(buf, 0, len, off);
      if (sampled < SAMPLE_BYTES) {
        const part = buf.subarray(0, Math.min(len, SAMPLE_BYTES - sampled));
        sample.update(part);
        sampled += part.length;
      }
      if (n % 32 === 0) log(`writing test file: ${Math.round(off / 1048576)} / ${mib} MiB`);
    }
  } finally {
    await fh.close();
  }
  return sample.digest('hex');
}

interface TransferResult {
  bytes: number;
  ms: number;
  mbps: number;
  sampleSha256: string;
  headerFileSize: number | null;
}

/**
 * Controller-like reader. `protocol`: write the GET_VIDEO command, read a 4-byte big-endian
 * length, the JSON header, then fileSize bytes. `raw` (socat): write nothing, read `rawSize`
 * bytes. Bytes are discarded but counted; the first SAMPLE_BYTES of the body are hashed.
 */
function transfer(port: number, mode: 'protocol' | 'raw', rawSize: number, stallMs = 30000): Promise<TransferResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // One reused 256 KiB read buffer (onread): the reader discards data, so it should cost as little as possible.
    const socket = connect({
      host: '127.0.0.1',
      port,
      onread: { buffer: Buffer.allocUnsafe(256 * 1024), callback: (n: number, buf: Uint8Array) => (onChunk(Buffer.from(buf.buffer, buf.byteOffset, n)), true) },
    });
    const hash = createHash('sha256');
    let hashed = 0;
    let pending: Buffer = Buffer.alloc(0);
    let headerLen = -1;
    let fileSize = mode === 'raw' ? rawSize : -1;
    let headerFileSize: number | null = null;
    let body = 0;
    let finished = false;
    let stall: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(stall);
      stall = setTimeout(() => fail(new Error(`stalled for ${stallMs} ms after ${body} body bytes`)), stallMs);
    };
    const fail = (err: Error): void => {
      if (finished) return;
      finished = true;
      clearTimeout(stall);
      socket.destroy();
      reject(err);
    };
    const onBody = (chunk: Buffer): void => {
      const part = chunk.length > fileSize - body ? chunk.subarray(0, fileSize - body) : chunk;
      if (hashed < SAMPLE_BYTES) {
        const h = part.subarray(0, SAMPLE_BYTES - hashed);
        hash.update(h);
        hashed += h.length;
      }
      body += part.length;
      if (body === fileSize) {
        const ms = performance.now() - t0;
        finished = true;
        clearTimeout(stall);
        socket.destroy();
        resolve({ bytes: body, ms, mbps: body / 1e6 / (ms / 1000), sampleSha256: hash.digest('hex'), headerFileSize });
      }
    };
    const onChunk = (chunk: Buffer): void => {
      if (finished) return;
      arm();
      if (fileSize >= 0) return onBody(chunk);
      pending = Buffer.concat([pending, chunk]); // copies: chunk is a view into the reused read buffer
      if (headerLen < 0 && pending.length >= 4) headerLen = pending.readUInt32BE(0);
      if (headerLen < 0 || pending.length < 4 + headerLen) return;
      let header: { fileSize?: unknown };
      try {
        header = JSON.parse(pending.subarray(4, 4 + headerLen).toString('utf8'));
      } catch (err) {
        return fail(new Error(`bad header: ${(err as Error).message}: ${pending.subarray(0, 200).toString('latin1')}`));
      }
      if (typeof header.fileSize !== 'number') return fail(new Error(`header without fileSize: ${JSON.stringify(header)}`));
      fileSize = header.fileSize;
      headerFileSize = fileSize;
      const rest = pending.subarray(4 + headerLen);
      pending = Buffer.alloc(0);
      if (rest.length) onBody(rest);
    };
    socket.once('connect', () => {
      socket.setNoDelay(true);
      if (mode === 'protocol') socket.write(buildCommand('GET_VIDEO', { fileName: FILE_NAME }));
    });
    socket.once('error', (err) => fail(err));
    socket.once('close', () => fail(new Error(`connection closed after ${body} of ${fileSize} body bytes`)));
    arm();
  });
}

/** Start a child and wait for its first stdout line as JSON. */
function startChild(cmd: string, args: string[], readyLine: boolean): Promise<{ proc: ChildProcess; info: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr!.on('data', (c) => (err += c));
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`${cmd} exited early (${code}): ${err.slice(-500)}`)));
    if (!readyLine) return resolve({ proc, info: {} });
    proc.stdout!.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ proc, info: JSON.parse(out.slice(0, nl)) as Record<string, unknown> });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function hasSocat(): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => {
    try {
      accessSync(join(d, 'socat'), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** socat serves one connection per process here (no fork); start it, wait until it listens. */
async function startSocat(path: string, extra: string[]): Promise<{ proc: ChildProcess; port: number }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn('socat', [...extra, '-u', `OPEN:${path},rdonly`, `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let exited = false;
    proc.once('exit', () => (exited = true));
    // Wait until the port accepts: probe with /proc/net/tcp rather than connecting (a probe would be the one connection).
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    for (let i = 0; i < 100 && !exited; i++) {
      const tcp = readFileSync('/proc/net/tcp', 'utf8');
      if (tcp.split('\n').some((l) => l.includes(`0100007F:${hexPort}`) && / 0A /.test(l))) return { proc, port };
      await sleep(20);
    }
    proc.kill('SIGKILL');
  }
  throw new Error('socat did not start listening');
}

async function stopProc(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 15000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill(signal);
  const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string', default: '1024' },
      runs: { type: 'string', default: '3' },
      'no-socat': { type: 'boolean', default: false },
      'bare-sender': { type: 'string' },
      size: { type: 'string' },
    },
  });
  if (values['bare-sender']) return bareSenderMain(values['bare-sender'], Number(values.size));

  const mib = Number(values.mib);
  const runs = Number(values.runs);
  if (!(mib > 0) || !Number.isInteger(mib) || !(runs >= 1)) throw new Error('--mib and --runs must be positive integers');
  const machineStart = machine();
  const date = new Date().toISOString();
  log(`machine ${JSON.stringify(machineStart)}`);

  const dataDir = await mkdtemp(join(tmpdir(), 'arenacam-bench-getvideo-'));
  const recDir = join(dataDir, 'recordings');
  const filePath = join(recDir, FILE_NAME);
  const fileBytes = mib * 1024 * 1024;
  let unit: UnitProcess | null = null;
  let bare: ChildProcess | null = null;
  let socatProc: ChildProcess | null = null;
  const cleanup = async (): Promise<void> => {
    if (socatProc) await stopProc(socatProc, 'SIGKILL').catch(() => undefined);
    if (bare) await stopProc(bare, 'SIGKILL').catch(() => undefined);
    if (unit) await stopProc(unit.proc, 'SIGTERM').catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    log(`removed ${dataDir}`);
  };
  const onSignal = (): void => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    await mkdir(recDir, { recursive: true });
    log(`writing ${mib} MiB to ${filePath}`);
    const tw = performance.now();
    const expectSample = await writeBigFile(filePath, mib);
    log(`written in ${round((performance.now() - tw) / 1000)} s`);

    // Warm the page cache once so every sender reads from memory (all runs then see the same cache state).
    await new Promise<void>((resolve, reject) => createReadStream(filePath, { highWaterMark: 1 << 20 }).on('data', () => undefined).on('end', resolve).on('error', reject));

    const config = testConfig(dataDir, { log: { level: 'info' } });
    log('spawning the unit (testsrc camera 320x240@30, as testConfig)');
    unit = await spawnUnit(dataDir, config, 'bench-unit');
    const unitPid = unit.proc.pid!;
    if (!unit.log().includes(FILE_NAME)) log('warning: the unit did not log the file being added to the catalog');

    const b = await startChild(process.execPath, [SELF, '--bare-sender', filePath, '--size', String(fileBytes)], true);
    bare = b.proc;
    const barePort = Number(b.info.port);
    const useSocat = !values['no-socat'] && hasSocat();
    log(`bare node sender on ${barePort}; socat ${useSocat ? 'used' : 'not used'}`);

    await sleep(3000); // let the unit settle (capture running) before the RSS baseline
    const devBefore = memKiB(unitPid)!;
    const bareBefore = memKiB(bare.pid!)!;
    log(`device RSS before: ${round(devBefore.rss / 1024)} MiB (anon ${round(devBefore.anon / 1024)} MiB)`);

    type Sender = 'device' | 'bareNode' | 'socat' | 'socatBig';
    const results: Record<Sender, TransferResult[]> = { device: [], bareNode: [], socat: [], socatBig: [] };
    const devMax = { ...devBefore };
    const bareMax = { ...bareBefore };
    const devRunMaxMiB: number[] = [];
    const devDuring: number[] = [];

    /** One transfer while sampling `pid`'s memory every RSS_EVERY_MS into `max` (and `all`). */
    const sampled = async (pid: number | null, max: { rss: number; anon: number } | null, all: number[] | null, fn: () => Promise<TransferResult>) => {
      let runMax = 0;
      const take = (): void => {
        if (pid === null || max === null) return;
        const m = memKiB(pid);
        if (!m) return;
        max.rss = Math.max(max.rss, m.rss);
        max.anon = Math.max(max.anon, m.anon);
        runMax = Math.max(runMax, m.rss);
        all?.push(m.rss);
      };
      const timer = setInterval(take, RSS_EVERY_MS);
      try {
        const r = await fn();
        take();
        return { r, runMax };
      } finally {
        clearInterval(timer);
      }
    };
    const say = (run: number, what: string, r: TransferResult): void =>
      log(`run ${run}/${runs} ${what.padEnd(10)} ${round(r.mbps)} MB/s (${round(r.ms)} ms)`);

    for (let run = 1; run <= runs; run++) {
      const d = await sampled(unitPid, devMax, devDuring, () => transfer(unit!.multicamPort, 'protocol', 0));
      results.device.push(d.r);
      devRunMaxMiB.push(round(d.runMax / 1024));
      say(run, 'device', d.r);

      const n = await sampled(bare.pid!, bareMax, null, () => transfer(barePort, 'protocol', 0));
      results.bareNode.push(n.r);
      say(run, 'bare node', n.r);

      if (useSocat) {
        for (const [key, extra] of [['socat', []], ['socatBig', ['-b', '262144']]] as Array<[Sender, string[]]>) {
          const s = await startSocat(filePath, extra);
          socatProc = s.proc;
          const r = await transfer(s.port, 'raw', fileBytes);
          results[key].push(r);
          say(run, key, r);
          await stopProc(s.proc, 'SIGTERM', 2000);
          socatProc = null;
        }
      }
    }
    await sleep(1000);
    const devAfter = memKiB(unitPid);

    const badBytes = Object.entries(results).flatMap(([k, rs]) =>
      rs.filter((r) => r.bytes !== fileBytes || r.sampleSha256 !== expectSample || (r.headerFileSize !== null && r.headerFileSize !== fileBytes)).map(() => k),
    );
    const summary = (rs: TransferResult[]) =>
      rs.length === 0
        ? null
        : {
            runsMBps: rs.map((r) => round(r.mbps)),
            medianMBps: round(median(rs.map((r) => r.mbps))),
            minMBps: round(Math.min(...rs.map((r) => r.mbps))),
            maxMBps: round(Math.max(...rs.map((r) => r.mbps))),
            medianSeconds: round(median(rs.map((r) => r.ms)) / 1000, 3),
          };
    const med = (k: Sender): number | null => (results[k].length ? median(results[k].map((r) => r.mbps)) : null);
    const dev = med('device')!;
    const ratio = dev / med('bareNode')!;
    const ratioTo = (k: Sender): number | null => (med(k) ? round(dev / med(k)!, 3) : null);
    const growthMiB = (devMax.rss - devBefore.rss) / 1024;
    const growthMB = (growthMiB * 1048576) / 1e6;
    const mib2 = (kib: number): number => round(kib / 1024);
    const out = {
      bench: 'get-video',
      date,
      machine: { ...machineStart, loadavgEnd: loadavg().map((x) => round(x, 2)) },
      file: { mib, bytes: fileBytes, name: FILE_NAME, pageCache: 'warm (read once before the runs)' },
      runs,
      order: 'alternating per run: device, bareNode, socat, socatBig',
      units: 'MB/s = 1e6 bytes/s, from connect to the last body byte; memory in MiB',
      client: 'one Node process, onread into a reused 256 KiB buffer; bytes counted, first 4 MiB sha256-checked',
      device: { ...summary(results.device), sender: 'arenacam serve (separate process), testsrc camera capturing' },
      bareNode: { ...summary(results.bareNode), sender: 'separate node process: net server, header + fs.createReadStream(file).pipe(socket)' },
      socat: useSocat ? { ...summary(results.socat), sender: 'socat -u OPEN:file TCP-LISTEN (default 8 KiB blocks; raw bytes, client sends no command)' } : null,
      socatBig: useSocat ? { ...summary(results.socatBig), sender: 'as socat with -b 262144' } : null,
      ratioDeviceToBareNode: round(ratio, 3),
      ratioDeviceToSocat: ratioTo('socat'),
      ratioDeviceToSocatBig: ratioTo('socatBig'),
      deviceMemory: {
        rssBeforeMiB: mib2(devBefore.rss),
        rssMaxDuringMiB: mib2(devMax.rss),
        rssMaxPerRunMiB: devRunMaxMiB,
        rssMedianDuringMiB: devDuring.length ? mib2(median(devDuring)) : null,
        rssAfterMiB: devAfter ? mib2(devAfter.rss) : null,
        rssGrowthMiB: round(growthMiB),
        rssGrowthMB: round(growthMB),
        anonBeforeMiB: mib2(devBefore.anon),
        anonMaxDuringMiB: mib2(devMax.anon),
        samples: devDuring.length,
      },
      bareNodeMemory: { rssBeforeMiB: mib2(bareBefore.rss), rssMaxDuringMiB: mib2(bareMax.rss), rssGrowthMiB: mib2(bareMax.rss - bareBefore.rss) },
      verified: badBytes.length === 0 ? 'all transfers: byte count and sha256 of the first 4 MiB match' : `MISMATCH in ${badBytes.join(',')}`,
      goals: {
        throughputRatio: { target: '>= 0.9 x bare node', value: round(ratio, 3), met: ratio >= 0.9 },
        rssGrowth: { target: '< 30 MB', valueMB: round(growthMB), met: growthMB < 30 },
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
  process.stderr.write(`[get-video] failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
