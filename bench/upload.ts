/**
 * Benchmark: UPLOAD_TO_CLOUD of a large recording to a local S3-compatible server, over plain http
 * and over https, against bare streaming PUTs of the same file to the same server, in the same run.
 *
 * The store is s3rver (a Koa fake S3 that writes objects to disk), one per scheme, each in its own
 * child process (`--s3-server <dir> [--tls-key k --tls-cert c]` mode, 127.0.0.1, one bucket); each
 * reports every request it served (method, kind, start/end, Content-Length) so the time each upload
 * spends inside the store can be told apart from the time outside it. For https the bench makes a
 * throwaway CA and a server certificate for 127.0.0.1 (IP SAN) with the `openssl` CLI in its temp
 * dir at start (without openssl the https scheme is skipped, with a note); the units trust the CA
 * through NODE_EXTRA_CA_CERTS (set in this process's environment before any child is spawned, so
 * every unit, http ones included, starts with it), the bare Node PUT through `https.request({ca})`,
 * curl through `--cacert`, the bench's own S3 client (presigning, HeadObject, DeleteObject)
 * through an https.Agent with the CA. Each server is warmed up by one unmeasured bare PUT of the
 * file. A file of `--mib` MiB (default 1024) of pseudo-random bytes is written once (its MD5
 * computed while writing), plus a 1 MiB one for the IAM warm-up.
 *
 * Every run has one "session" per unit; each session starts a fresh unit (`arenacam serve` as its
 * own process, spawnUnit, testsrc 320×240@15 capturing the whole session, `upload.s3Endpoint` = the
 * scheme's s3rver, `allowHttp`) with hard links of the file(s) in recordings/ (the device deletes
 * a file once it is uploaded), and keeps it running during all phases of the session, the bare
 * ones included, so every sender sees the same machine load. Sessions of a run, per scheme:
 *  - <scheme>, default policy (`upload.verifyMd5` = auto: hashes over http, not over https):
 *    phases presigned, [iamFirstUse, run 1 only], iam, bareNode, curl.
 *  - http only, `upload.verifyMd5: never`: phase presignedNoMd5 (what the MD5 check costs).
 * Odd runs go http-default, http-never, https-default with the phases in the order above; even
 * runs reverse both the sessions and the phases within them.
 *
 * Phases:
 *  - presigned / presignedNoMd5: UPLOAD_TO_CLOUD with `uploadUrl` (a presigned PUT URL): one
 *    streaming PUT.
 *  - iam: UPLOAD_TO_CLOUD with the IAM form (bucket, key, keys, region): multipart upload in the
 *    unit's default 8 MiB parts (data requests presigned by the SDK and sent over one kept-alive
 *    connection). The SDK is loaded lazily on the first IAM upload of a unit; so that this phase
 *    measures the transfer alone, it follows (unmeasured for throughput) either iamFirstUse (run 1)
 *    or an `iamWarmUp` phase: a 1 MiB IAM upload (single PutObject) whose RSS growth is the SDK's
 *    first load (reported as sdkLoadGrowthMB).
 *  - iamFirstUse (run 1 only): the fresh unit's FIRST IAM upload, of the whole file: RSS growth
 *    including the SDK's first load plus the transfer.
 *  - bareNode: a separate Node process doing `fs.createReadStream(file).pipe(http(s).request(PUT,
 *    Content-Length))` to a fresh presigned URL (default 64 KiB chunks); it times itself from
 *    request() to the end of the 2xx answer.
 *  - curl: `curl -T <file> <presigned url>` (when curl is installed), timed by curl (time_total).
 * Device timing: from writing UPLOAD_TO_CLOUD to the DEVICE_STATUS poll (every 50 ms, each on its
 * own connection) that shows the item gone from uploadQueue (and not in failedUploadQueue); the
 * unit's own log line "upload completed and verified" (ms, MBps, digestVerified) is reported too.
 * Memory: VmRSS and RssAnon of the unit process from /proc every 25 ms. CPU: /proc/<pid>/stat
 * times of the unit, its capture ffmpeg, the scheme's s3rver child and the sender child, per
 * phase. Every object is checked after its upload (HeadObject: size and ETag = MD5 of the file;
 * s3rver's ETag is the plain MD5 even for multipart) and deleted; `store` per phase is s3rver's
 * view (requests by kind, time inside/outside requests, gaps between parts, body MB/s while in
 * requests). MB/s = 1e6 bytes/s. Prints ONE JSON object on stdout (summary and goals per scheme);
 * progress goes to stderr. Everything is on 127.0.0.1.
 *
 *   node dist/bench/upload.js [--mib 1024] [--runs 3] [--schemes http,https]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { accessSync, constants, createReadStream, readFileSync, statSync } from 'node:fs';
import { link, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { S3Client } from '@aws-sdk/client-s3';
import type { UnitProcess } from '../test/helpers/device.js';
import { sendCommand, type ClassifiedReply } from '../test/helpers/controller.js';
import { makeTestCerts, type TestCerts } from '../test/helpers/tls.js';
import { CLK_TCK, load, machineInfo, memKiB } from './capture-lib.js';

const SELF = fileURLToPath(import.meta.url);
const HOST = '127.0.0.1';
const BUCKET = 'arenacam-bench';
const REGION = 'us-east-1';
/** s3rver's built-in account; it checks only that a SigV4 access key exists. */
const S3_KEY = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const RSS_EVERY_MS = 25;
const POLL_EVERY_MS = 50;
const WARM_UP_MIB = 1;

const log = (msg: string): void => void process.stderr.write(`[upload] ${msg}\n`);
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
/** Wall clock in ms with sub-ms resolution, comparable across processes. */
const wallMs = (): number => performance.timeOrigin + performance.now();
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---------------------------------------------------------------------------------------------
// s3rver child mode: `node upload.js --s3-server <dir> [--tls-key <pem> --tls-cert <pem>]`;
// prints {"port":N}, then one JSON line per request served:
// {"m":method,"k":kind,"t0":ms,"t1":ms,"len":content-length,"st":status}.
// ---------------------------------------------------------------------------------------------

/** What this bench uses of s3rver 3.7.1 (CommonJS, no types of its own). */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: http.Server;
}
type S3rverCtor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: Array<{ name: string }>;
  /** With both, s3rver listens with https.createServer(options). */
  key?: Buffer;
  cert?: Buffer;
}) => S3rverInstance;

/** The kind of S3 request, from method and query. */
function requestKind(method: string, url: string): string {
  const q = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
  if (method === 'PUT') return q.has('uploadId') ? 'UploadPart' : 'PutObject';
  if (method === 'POST') return q.has('uploadId') ? 'CompleteMultipartUpload' : q.has('uploads') ? 'CreateMultipartUpload' : 'POST';
  if (method === 'HEAD') return 'HeadObject';
  if (method === 'DELETE') return 'DeleteObject';
  return method;
}

async function s3ServerMain(dir: string, tls: { key: string; cert: string } | null): Promise<void> {
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;
  const server = new S3rver({
    address: HOST,
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: BUCKET }],
    ...(tls ? { key: readFileSync(tls.key), cert: readFileSync(tls.cert) } : {}),
  });
  const addr = await server.run();
  // Observe only (no 'data' listener: that would start the body flowing before s3rver pipes it).
  server.httpServer!.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const t0 = wallMs();
    const kind = requestKind(req.method ?? '', req.url ?? '');
    const len = Number(req.headers['content-length'] ?? 0);
    let logged = false;
    const done = (): void => {
      if (logged) return;
      logged = true;
      process.stdout.write(`${JSON.stringify({ m: req.method, k: kind, t0, t1: wallMs(), len, st: res.statusCode, ok: res.writableFinished })}\n`);
    };
    res.once('finish', done);
    res.once('close', done);
  });
  process.stdout.write(`${JSON.stringify({ port: addr.port, tls: tls !== null })}\n`);
  process.stdin.on('end', () => process.exit(0)); // parent gone
  process.stdin.resume();
}

// ---------------------------------------------------------------------------------------------
// Bare PUT child mode: `node upload.js --bare-put <file> --url <presigned url> [--ca <pem>]`;
// prints one JSON line {ms, status, etag, bytes} timed from request() to the end of the answer.
// ---------------------------------------------------------------------------------------------

function barePutMain(path: string, url: string, caPath: string | undefined): void {
  const size = statSync(path).size;
  const headers = { 'Content-Length': String(size) };
  const ca = caPath ? readFileSync(caPath) : undefined;
  const t0 = performance.now();
  const req = url.startsWith('https:')
    ? https.request(url, { method: 'PUT', headers, ...(ca ? { ca } : {}) })
    : http.request(url, { method: 'PUT', headers });
  req.on('error', (err) => {
    process.stderr.write(`bare PUT failed: ${err.message}\n`);
    process.exit(1);
  });
  req.on('response', (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (body += c));
    res.on('end', () => {
      const ms = performance.now() - t0;
      const out = { ms, status: res.statusCode, etag: res.headers.etag ?? null, bytes: size, body: res.statusCode === 200 ? undefined : body.slice(0, 500) };
      process.stdout.write(`${JSON.stringify(out)}\n`);
      process.exit(0);
    });
  });
  createReadStream(path).pipe(req);
}

// ---------------------------------------------------------------------------------------------
// /proc helpers
// ---------------------------------------------------------------------------------------------


/** Fields of /proc/<pid>/stat after the command name (index 0 = field 3, "state"). */
function statFields(pid: number | 'self'): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}
/** utime + stime of a process, in ticks (null when gone). */
function cpuTicks(pid: number | null): number | null {
  if (pid === null) return null;
  const f = statFields(pid);
  return f ? Number(f[11]) + Number(f[12]) : null;
}
/** cutime + cstime of this process: CPU of the children it has reaped (the sender children). */
function reapedChildTicks(): number {
  const f = statFields('self');
  return f ? Number(f[13]) + Number(f[14]) : 0;
}
/** Whole-machine CPU ticks from /proc/stat: busy (not idle/iowait) and total. */
function machineTicks(): { busy: number; total: number; steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - v[3] - v[4], total, steal: v[7] ?? 0 };
}

/** Dirty + Writeback from /proc/meminfo, in MB: page-cache writes not yet on disk. */
function dirtyMB(): number | null {
  try {
    const s = readFileSync('/proc/meminfo', 'utf8');
    const kib = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return round(((kib('Dirty') + kib('Writeback')) * 1024) / 1e6);
  } catch {
    return null;
  }
}

interface CpuMark {
  unit: number | null;
  ffmpeg: number | null;
  s3rver: number | null;
  reaped: number;
  self: NodeJS.CpuUsage;
  machine: { busy: number; total: number; steal: number };
  atMs: number;
}

function cpuMark(unitPid: number, ffmpegPid: number | null, s3Pid: number): CpuMark {
  return {
    unit: cpuTicks(unitPid),
    ffmpeg: cpuTicks(ffmpegPid),
    s3rver: cpuTicks(s3Pid),
    reaped: reapedChildTicks(),
    self: process.cpuUsage(),
    machine: machineTicks(),
    atMs: performance.now(),
  };
}

/** CPU seconds per process between two marks, and how busy the whole machine was. */
function cpuBetween(a: CpuMark, b: CpuMark, senderIsChild: boolean): Record<string, number | null> {
  const d = (x: number | null, y: number | null): number | null => (x === null || y === null ? null : round((y - x) / CLK_TCK, 2));
  const wall = (b.atMs - a.atMs) / 1000;
  const mt = b.machine.total - a.machine.total;
  return {
    unit: d(a.unit, b.unit),
    captureFfmpeg: d(a.ffmpeg, b.ffmpeg),
    s3rver: d(a.s3rver, b.s3rver),
    senderChild: senderIsChild ? d(a.reaped, b.reaped) : null,
    benchClient: round((b.self.user - a.self.user + b.self.system - a.self.system) / 1e6, 2),
    wallSeconds: round(wall, 2),
    machineBusyPercent: mt > 0 ? round(((b.machine.busy - a.machine.busy) / mt) * 100, 1) : null,
    machineStealPercent: mt > 0 ? round(((b.machine.steal - a.machine.steal) / mt) * 100, 1) : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Files, children
// ---------------------------------------------------------------------------------------------

/** Write `mib` MiB of non-repeating pseudo-random bytes in 8 MiB chunks; returns the MD5 (hex). */
async function writeBigFile(path: string, mib: number): Promise<string> {
  const CHUNK = 8 * 1024 * 1024;
  const total = mib * 1024 * 1024;
  const seed = randomFillSync(Buffer.alloc(CHUNK));
  const md5 = createHash('md5');
  const fh = await open(path, 'w');
  try {
    for (let off = 0, n = 0; off < total; off += CHUNK, n++) {
      const len = Math.min(CHUNK, total - off);
      const buf = seed.subarray(0, len);
      buf.writeUInt32LE(n, 0); // every chunk differs
      await fh.write(buf, 0, len, off);
      md5.update(buf);
      if (n % 32 === 0) log(`writing test file: ${Math.round(off / 1048576)} / ${mib} MiB`);
    }
    await fh.sync(); // not left as dirty page cache for the first phases' writeback to compete with
  } finally {
    await fh.close();
  }
  return md5.digest('hex');
}

interface S3Request {
  m: string;
  k: string;
  t0: number;
  t1: number;
  len: number;
  st: number;
  ok: boolean;
}

/** Start an s3rver child (TLS when `tls` is given); resolves with its port once it listens. Later lines go to `requests`. */
function startS3Child(dir: string, tls: { key: string; cert: string } | null, requests: S3Request[]): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const args = [SELF, '--s3-server', dir, ...(tls ? ['--tls-key', tls.key, '--tls-cert', tls.cert] : [])];
    const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    let err = '';
    let ready = false;
    proc.stderr!.on('data', (c) => (err = (err + c).slice(-4000)));
    proc.once('error', reject);
    proc.once('exit', (code, sig) => {
      if (!ready) reject(new Error(`s3rver child exited early (${code ?? sig}): ${err}`));
      else log(`s3rver child ${proc.pid} exited (${code ?? sig})${err ? `: ${err.slice(-500)}` : ''}`);
    });
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const v = JSON.parse(line) as S3Request & { port?: number };
        if (!ready && typeof v.port === 'number') {
          ready = true;
          resolve({ proc, port: v.port });
        } else requests.push(v);
      }
    });
  });
}

function hasCmd(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => {
    try {
      accessSync(join(d, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Run a child to its end; resolves with stdout, stderr and the exit code. `track` sees the process. */
function runChild(cmd: string, args: string[], track: (p: ChildProcess | null) => void): Promise<{ code: number | null; out: string; err: string; wallMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(proc);
    let out = '';
    let err = '';
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (err = (err + c).slice(-4000)));
    proc.once('error', (e) => {
      track(null);
      reject(e);
    });
    proc.once('close', (code) => {
      track(null);
      resolve({ code, out, err, wallMs: performance.now() - t0 });
    });
  });
}

async function stopProc(proc: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill(signal);
  const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** Stop a unit with SIGINT and wait for it; then make sure its capture ffmpeg (own group) is gone. */
async function stopUnit(unit: UnitProcess, dataDir: string): Promise<void> {
  const ffmpegPid = await readPid(join(dataDir, 'capture.pid'));
  if (unit.proc.exitCode === null && unit.proc.signalCode === null) {
    unit.proc.kill('SIGINT');
    const t = setTimeout(() => unit.proc.kill('SIGKILL'), 20000);
    await unit.exited;
    clearTimeout(t);
  }
  const cmdline = ffmpegPid !== null ? await readFile(`/proc/${ffmpegPid}/cmdline`, 'utf8').catch(() => '') : '';
  if (ffmpegPid !== null && cmdline.includes(dataDir)) {
    try {
      process.kill(-ffmpegPid, 'SIGKILL');
    } catch {
      /* already gone, as it should be */
    }
  }
}

async function readPid(path: string): Promise<number | null> {
  const n = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  return Number.isInteger(n) && n > 1 ? n : null;
}


// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

type Scheme = 'http' | 'https';
/** The unit's `upload.verifyMd5`: auto is the default (not set in the config). */
type Policy = 'auto' | 'never';
type DevicePhase = 'presigned' | 'presignedNoMd5' | 'iamFirstUse' | 'iamWarmUp' | 'iam';
type BarePhase = 'bareNode' | 'curl';
type Phase = DevicePhase | BarePhase;
const isDevicePhase = (p: Phase): p is DevicePhase => p !== 'bareNode' && p !== 'curl';

interface RssInfo {
  beforeMiB: number;
  maxDuringMiB: number;
  growthMB: number;
  growthMiB: number;
  anonBeforeMiB: number;
  anonMaxDuringMiB: number;
  anonGrowthMB: number;
  samples: number;
}

interface Verified {
  size: number;
  etag: string;
  md5Match: boolean;
  headChecks: number;
}

interface PhaseRecord {
  run: number;
  scheme: Scheme;
  /** The running unit's upload.verifyMd5 (the bare phases run beside a default-policy unit). */
  unitVerifyMd5: Policy;
  session: number;
  position: number;
  phase: Phase;
  key: string;
  bytes: number;
  ms: number;
  MBps: number;
  timing: string;
  deviceLog?: { ms: number; MBps: number; digestVerified: boolean | null } | null;
  attemptErrors?: string[];
  childWallMsIncludingSpawn?: number;
  rss?: RssInfo;
  s3rverRssMaxMiB: number | null;
  /** Dirty + Writeback page cache (MB) when the phase started. */
  dirtyMBAtStart: number | null;
  cpuSeconds: Record<string, number | null>;
  store?: StoreView;
  verified: Verified;
  /** Wall-clock window (ms since epoch) for matching s3rver's request log; removed from the output. */
  window?: [number, number];
}

interface StoreView {
  requests: number;
  byKind: Record<string, { n: number; ms: number }>;
  failedRequests: number;
  msInsideRequests: number;
  msOutsideRequests: number;
  firstRequestAfterMs: number | null;
  lastAnswerToDoneMs: number | null;
  gapsBetweenPartsMs: { n: number; total: number; median: number; max: number } | null;
  bodyMBpsWhileInRequests: number | null;
  /** Multipart only: from the command to s3rver receiving CompleteMultipartUpload (create + all parts). */
  msUntilComplete: number | null;
  /** Multipart only: bytes / msUntilComplete, the parts phase without s3rver's whole-object rewrite. */
  partsPhaseMBps: number | null;
  /**
   * Multipart only: from s3rver's answer to CompleteMultipartUpload to the device's next request
   * (its HeadObject): the device's work after Complete (over http with s3rver: re-reading the
   * whole file for its MD5).
   */
  afterCompleteMs: number | null;
}

/** One fresh unit and the phases run beside it. */
interface Session {
  scheme: Scheme;
  policy: Policy;
  phases: Phase[];
}

/** One s3rver child and the bench's client for it. */
interface Server {
  scheme: Scheme;
  proc: ChildProcess;
  pid: number;
  endpoint: string;
  requests: S3Request[];
  client: S3Client;
  presignPut(key: string): Promise<string>;
  verifyAndDelete(key: string, bytes: number, md5: string): Promise<Verified>;
  warmUpSeconds: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string', default: '1024' },
      runs: { type: 'string', default: '3' },
      schemes: { type: 'string', default: 'http,https' },
      's3-server': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-cert': { type: 'string' },
      'bare-put': { type: 'string' },
      url: { type: 'string' },
      ca: { type: 'string' },
    },
  });
  if (values['s3-server']) {
    const tls = values['tls-key'] && values['tls-cert'] ? { key: values['tls-key'], cert: values['tls-cert'] } : null;
    return s3ServerMain(values['s3-server'], tls);
  }
  if (values['bare-put']) return barePutMain(values['bare-put'], values.url ?? '', values.ca);

  // Loaded here, not at the top: the child modes above should not pay for the whole app's imports.
  const { spawnUnit, testConfig } = await import('../test/helpers/device.js');
  const mib = Number(values.mib);
  const runs = Number(values.runs);
  if (!(mib > 0) || !Number.isInteger(mib) || !(runs >= 1) || !Number.isInteger(runs)) throw new Error('--mib and --runs must be positive integers');
  const asked = [...new Set(values.schemes.split(',').map((s) => s.trim()).filter(Boolean))];
  for (const s of asked) if (s !== 'http' && s !== 'https') throw new Error(`--schemes: unknown scheme "${s}" (http, https)`);
  if (!asked.length) throw new Error('--schemes: none given');
  const notes: string[] = [];
  const hasOpenssl = hasCmd('openssl');
  const schemes = (['http', 'https'] as const).filter((s) => asked.includes(s) && (s === 'http' || hasOpenssl));
  if (asked.includes('https') && !hasOpenssl) {
    notes.push('openssl is not installed: the https scheme was skipped (no certificate could be made)');
    log('openssl is not installed: skipping https');
  }
  if (!schemes.length) throw new Error('nothing to run: only https was asked for and openssl is not installed');
  const machine = machineInfo();
  const date = new Date().toISOString();
  const tStart = performance.now();
  log(`machine ${JSON.stringify(machine)}; schemes ${schemes.join(', ')}`);

  const root = await mkdtemp(join(tmpdir(), 'arenacam-bench-upload-'));
  const master = join(root, 'master.bin');
  const small = join(root, 'warm-up.bin');
  const fileBytes = mib * 1024 * 1024;
  const smallBytes = WARM_UP_MIB * 1024 * 1024;
  const useCurl = hasCmd('curl');
  let unit: UnitProcess | null = null;
  let unitDir = '';
  const servers = new Map<Scheme, Server>();
  const serverProcs: ChildProcess[] = [];
  let sender: ChildProcess | null = null;
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      if (sender) await stopProc(sender, 'SIGKILL', 1000).catch(() => undefined);
      if (unit) await stopUnit(unit, unitDir).catch(() => undefined);
      for (const p of serverProcs) await stopProc(p, 'SIGKILL', 1000).catch(() => undefined);
      for (const s of servers.values()) s.client.destroy();
      await rm(root, { recursive: true, force: true });
      log(`removed ${root}`);
    })());
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    log(`writing ${mib} MiB to ${master}`);
    const tw = performance.now();
    const fileMd5 = await writeBigFile(master, mib);
    const smallMd5 = await writeBigFile(small, WARM_UP_MIB);
    log(`written in ${round((performance.now() - tw) / 1000)} s, md5 ${fileMd5}`);
    // Read it once so every sender reads from the page cache (hard links share the inode).
    await new Promise<void>((resolve, reject) => createReadStream(master, { highWaterMark: 1 << 20 }).on('data', () => undefined).on('end', resolve).on('error', reject));

    let certs: (TestCerts & { ms: number }) | null = null;
    if (schemes.includes('https')) {
      const t0 = performance.now();
      certs = { ...(await makeTestCerts(join(root, 'tls'), 'arenacam upload bench CA')), ms: performance.now() - t0 };
      // Read by Node at start-up only: every unit spawned from now on trusts the bench CA.
      process.env.NODE_EXTRA_CA_CERTS = certs.ca;
      log(`made a throwaway CA and a 127.0.0.1 certificate with openssl in ${round(certs.ms)} ms; NODE_EXTRA_CA_CERTS=${certs.ca}`);
    }
    if (!useCurl) notes.push('curl is not installed: the curl baseline was skipped');

    const bareArgs = (url: string, scheme: Scheme): string[] => [SELF, '--bare-put', master, '--url', url, ...(scheme === 'https' ? ['--ca', certs!.ca] : [])];

    const sdk = await import('@aws-sdk/client-s3');
    const { getSignedUrl } = await import('@aws-sdk/s3-request-presigner');
    for (const scheme of schemes) {
      const requests: S3Request[] = [];
      const dir = join(root, `s3-${scheme}`);
      await mkdir(dir, { recursive: true });
      const started = await startS3Child(dir, scheme === 'https' ? { key: certs!.key, cert: certs!.cert } : null, requests);
      serverProcs.push(started.proc);
      const endpoint = `${scheme}://${HOST}:${started.port}`;
      const client = new sdk.S3Client({
        region: REGION,
        endpoint,
        forcePathStyle: true,
        credentials: { ...S3_KEY },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...(scheme === 'https' ? { requestHandler: { httpsAgent: new https.Agent({ ca: readFileSync(certs!.ca), keepAlive: true }) } } : {}),
      });
      const srv: Server = {
        scheme,
        proc: started.proc,
        pid: started.proc.pid!,
        endpoint,
        requests,
        client,
        warmUpSeconds: 0,
        presignPut: (key) => getSignedUrl(client, new sdk.PutObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn: 3600 }),
        /** HeadObject until size and ETag are the file's (s3rver answers before its file stream has flushed), then delete. */
        verifyAndDelete: async (key, bytes, md5) => {
          let size = -1;
          let etag = '';
          let checks = 0;
          for (const end = Date.now() + 3000; ; ) {
            checks++;
            const h = await client.send(new sdk.HeadObjectCommand({ Bucket: BUCKET, Key: key }));
            size = h.ContentLength ?? -1;
            etag = (h.ETag ?? '').replace(/"/g, '').toLowerCase();
            if ((size === bytes && etag === md5) || Date.now() > end) break;
            await sleep(100);
          }
          await client.send(new sdk.DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
          if (size !== bytes || etag !== md5) throw new Error(`${scheme} object ${key}: ${size} bytes, ETag ${etag}; expected ${bytes} bytes, MD5 ${md5}`);
          return { size, etag, md5Match: true, headChecks: checks };
        },
      };
      servers.set(scheme, srv);
      log(`${scheme} s3rver child (pid ${srv.pid}) at ${endpoint}`);
      // Warm s3rver's code paths (its first PUT runs cold) with one unmeasured bare PUT of the file.
      const tw0 = performance.now();
      const url = await srv.presignPut('warm-up');
      const r = await runChild(process.execPath, bareArgs(url, scheme), (p) => (sender = p));
      if (r.code !== 0) throw new Error(`${scheme} warm-up PUT failed (${r.code}): ${r.out} ${r.err}`);
      await srv.verifyAndDelete('warm-up', fileBytes, fileMd5);
      srv.warmUpSeconds = round((performance.now() - tw0) / 1000, 2);
      log(`${scheme} s3rver warmed up with one unmeasured PUT of the file (${srv.warmUpSeconds} s)`);
      requests.length = 0;
    }
    log(`curl ${useCurl ? 'used' : 'not installed: skipped'}`);

    /** Sessions of a run: per scheme one default-policy unit, plus for http one `verifyMd5: never` unit. */
    const sessionsFor = (run: number): Session[] => {
      const list: Session[] = [];
      for (const scheme of schemes) {
        const phases: Phase[] = ['presigned', ...(run === 1 ? (['iamFirstUse'] as const) : []), 'iam', 'bareNode', ...(useCurl ? (['curl'] as const) : [])];
        list.push({ scheme, policy: 'auto', phases });
        if (scheme === 'http') list.push({ scheme, policy: 'never', phases: ['presignedNoMd5'] });
      }
      if (run % 2 === 0) {
        list.reverse();
        for (const s of list) s.phases.reverse();
      }
      return list;
    };

    interface Ctx {
      run: number;
      sessionIndex: number;
      session: Session;
      position: number;
      u: UnitProcess;
      unitPid: number;
      ffmpegPid: number | null;
      srv: Server;
    }
    const records: PhaseRecord[] = [];
    const tag = (c: Ctx, phase: Phase): string => `run ${c.run}/${runs} ${c.session.scheme}${c.session.policy === 'never' ? ' (verifyMd5 never)' : ''} ${phase}`;
    const kib2mb = (k: number): number => (k * 1024) / 1e6;

    /** One UPLOAD_TO_CLOUD of `fileName` (already in the unit's recordings), timed, sampled, verified. */
    const devicePhase = async (c: Ctx, phase: DevicePhase, fileName: string, bytes: number, md5: string): Promise<void> => {
      const { u, unitPid, ffmpegPid, srv } = c;
      const key = `run-${c.run}/${srv.scheme}/${c.session.policy}/${phase}/${fileName}`;
      let s3RssMax = 0;
      log(`${tag(c, phase)}: start`);
      const extra = phase.startsWith('presigned')
        ? { fileName, uploadUrl: await srv.presignPut(key) }
        : {
            fileName,
            s3Bucket: BUCKET,
            s3Key: key,
            awsAccessKeyId: S3_KEY.accessKeyId,
            awsSecretAccessKey: S3_KEY.secretAccessKey,
            awsSessionToken: null,
            awsRegion: REGION,
          };
      const before = memKiB(unitPid)!;
      const max = { ...before };
      let samples = 0;
      const take = (): void => {
        s3RssMax = Math.max(s3RssMax, memKiB(srv.pid)?.rss ?? 0);
        const m = memKiB(unitPid);
        if (!m) return;
        samples++;
        max.rss = Math.max(max.rss, m.rss);
        max.anon = Math.max(max.anon, m.anon);
      };
      const sampler = setInterval(take, RSS_EVERY_MS);
      const attemptErrors: string[] = [];
      const dirty0 = dirtyMB();
      const cpu0 = cpuMark(unitPid, ffmpegPid, srv.pid);
      const w0 = wallMs();
      const t0 = performance.now();
      let t1 = 0;
      try {
        const reply = await sendCommand(HOST, u.multicamPort, 'UPLOAD_TO_CLOUD', extra);
        if (reply.kind !== 'status' || reply.body.status !== 'upload_queued') throw new Error(`UPLOAD_TO_CLOUD refused: ${JSON.stringify(reply.body)}`);
        const deadline = Date.now() + 60000 + bytes / 2000; // gives up below 2 MB/s
        for (;;) {
          const p0 = performance.now();
          const r: ClassifiedReply = await sendCommand(HOST, u.multicamPort, 'DEVICE_STATUS');
          const body = r.body as { uploadQueue?: Array<{ fileName: string; status: string; error: string | null }>; failedUploadQueue?: Array<{ fileName: string; error: string | null }> };
          const failed = body.failedUploadQueue?.find((i) => i.fileName === fileName);
          if (failed) throw new Error(`${tag(c, phase)} upload FAILED on the device: ${failed.error}`);
          const item = body.uploadQueue?.find((i) => i.fileName === fileName);
          if (r.kind === 'status' && body.uploadQueue && !item) {
            t1 = performance.now();
            break;
          }
          if (item?.error && !attemptErrors.includes(item.error)) {
            attemptErrors.push(item.error);
            log(`${tag(c, phase)}: attempt error: ${item.error}`);
          }
          if (Date.now() > deadline) throw new Error(`${tag(c, phase)} upload not done after ${round((performance.now() - t0) / 1000)} s: ${JSON.stringify(item)}`);
          await sleep(POLL_EVERY_MS - (performance.now() - p0));
        }
        take();
      } finally {
        clearInterval(sampler);
      }
      const w1 = wallMs();
      const cpu1 = cpuMark(unitPid, ffmpegPid, srv.pid);
      const ms = t1 - t0;
      // The log line follows the queue change (after a save): wait for it briefly.
      let deviceLog = null as PhaseRecord['deviceLog'];
      for (let i = 0; i < 100 && !deviceLog; i++) {
        for (const line of u.log().split('\n')) {
          if (!line.includes('upload completed and verified') || !line.includes(fileName)) continue;
          const j = JSON.parse(line) as { fileName?: string; ms?: number; MBps?: number; digestVerified?: boolean };
          if (j.fileName === fileName) deviceLog = { ms: round(Number(j.ms)), MBps: Number(j.MBps), digestVerified: typeof j.digestVerified === 'boolean' ? j.digestVerified : null };
        }
        if (!deviceLog) await sleep(50);
      }
      if (!deviceLog) notes.push(`${tag(c, phase)}: the unit's "upload completed and verified" line was not found`);
      const verified = await srv.verifyAndDelete(key, bytes, md5);
      const rec: PhaseRecord = {
        run: c.run,
        scheme: srv.scheme,
        unitVerifyMd5: c.session.policy,
        session: c.sessionIndex,
        position: c.position,
        phase,
        key,
        bytes,
        ms: round(ms),
        MBps: round(bytes / 1e6 / (ms / 1000)),
        timing: 'UPLOAD_TO_CLOUD written → DEVICE_STATUS poll (50 ms) showing the item gone from uploadQueue',
        deviceLog,
        attemptErrors,
        rss: {
          beforeMiB: round(before.rss / 1024),
          maxDuringMiB: round(max.rss / 1024),
          growthMB: round(kib2mb(max.rss - before.rss)),
          growthMiB: round((max.rss - before.rss) / 1024),
          anonBeforeMiB: round(before.anon / 1024),
          anonMaxDuringMiB: round(max.anon / 1024),
          anonGrowthMB: round(kib2mb(max.anon - before.anon)),
          samples,
        },
        s3rverRssMaxMiB: round(s3RssMax / 1024),
        dirtyMBAtStart: dirty0,
        cpuSeconds: cpuBetween(cpu0, cpu1, false),
        verified,
        window: [w0, w1],
      };
      records.push(rec);
      log(
        `${tag(c, phase)}: ${rec.MBps} MB/s (${rec.ms} ms; unit log ${deviceLog?.MBps} MB/s, ${deviceLog?.ms} ms, digestVerified ${deviceLog?.digestVerified}), ` +
          `RSS ${rec.rss!.beforeMiB} → max ${rec.rss!.maxDuringMiB} MiB (+${rec.rss!.growthMB} MB), cpu ${JSON.stringify(rec.cpuSeconds)}`,
      );
    };

    /** One bare PUT of the master file by a child process (Node or curl) to a fresh presigned URL. */
    const barePhase = async (c: Ctx, phase: BarePhase): Promise<void> => {
      const { unitPid, ffmpegPid, srv } = c;
      const key = `run-${c.run}/${srv.scheme}/${c.session.policy}/${phase}/video.mp4`;
      log(`${tag(c, phase)}: start`);
      const url = await srv.presignPut(key);
      let s3RssMax = 0;
      const s3Take = (): void => void (s3RssMax = Math.max(s3RssMax, memKiB(srv.pid)?.rss ?? 0));
      const s3Sampler = setInterval(s3Take, RSS_EVERY_MS);
      const dirty0 = dirtyMB();
      const cpu0 = cpuMark(unitPid, ffmpegPid, srv.pid);
      const w0 = wallMs();
      let ms = 0;
      let childWall = 0;
      try {
        if (phase === 'bareNode') {
          const r = await runChild(process.execPath, bareArgs(url, srv.scheme), (p) => (sender = p));
          const out = JSON.parse(r.out.trim().split('\n').pop() || 'null') as { ms: number; status: number; body?: string } | null;
          if (r.code !== 0 || !out || out.status < 200 || out.status > 299) throw new Error(`bare node PUT failed (${r.code}): ${r.out} ${r.err}`);
          ms = out.ms;
          childWall = r.wallMs;
        } else {
          const r = await runChild(
            'curl',
            ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total} %{size_upload}', ...(srv.scheme === 'https' ? ['--cacert', certs!.ca] : []), '-T', master, url],
            (p) => (sender = p),
          );
          const [code, total, up] = r.out.trim().split(' ');
          if (r.code !== 0 || !/^2\d\d$/.test(code) || Number(up) !== fileBytes) throw new Error(`curl PUT failed (${r.code}): ${r.out} ${r.err}`);
          ms = Number(total) * 1000;
          childWall = r.wallMs;
        }
        s3Take();
      } finally {
        clearInterval(s3Sampler);
      }
      const w1 = wallMs();
      const cpu1 = cpuMark(unitPid, ffmpegPid, srv.pid);
      const verified = await srv.verifyAndDelete(key, fileBytes, fileMd5);
      const rec: PhaseRecord = {
        run: c.run,
        scheme: srv.scheme,
        unitVerifyMd5: c.session.policy,
        session: c.sessionIndex,
        position: c.position,
        phase,
        key,
        bytes: fileBytes,
        ms: round(ms),
        MBps: round(fileBytes / 1e6 / (ms / 1000)),
        timing: phase === 'bareNode' ? 'measured by the child: request() → end of the 2xx answer' : 'measured by curl: time_total',
        childWallMsIncludingSpawn: round(childWall),
        s3rverRssMaxMiB: round(s3RssMax / 1024),
        dirtyMBAtStart: dirty0,
        cpuSeconds: cpuBetween(cpu0, cpu1, true),
        verified,
        window: [w0, w1],
      };
      records.push(rec);
      log(`${tag(c, phase)}: ${rec.MBps} MB/s (${rec.ms} ms; spawn→exit ${rec.childWallMsIncludingSpawn} ms), cpu ${JSON.stringify(rec.cpuSeconds)}`);
    };

    let fileSeq = 0;
    for (let run = 1; run <= runs; run++) {
      const sessions = sessionsFor(run);
      log(`run ${run}/${runs}: ${sessions.map((s) => `${s.scheme}/${s.policy}[${s.phases.join(',')}]`).join(' → ')}`);
      for (const [sessionIndex, session] of sessions.entries()) {
        const srv = servers.get(session.scheme)!;
        unitDir = join(root, `run-${run}-${sessionIndex}-${session.scheme}-${session.policy}`);
        const recDir = join(unitDir, 'recordings');
        await mkdir(recDir, { recursive: true });
        // One hard link per device phase (the device deletes a file once uploaded); the IAM
        // warm-up (1 MiB) is needed where iam is not preceded by iamFirstUse.
        const devPhases: DevicePhase[] = session.phases.filter(isDevicePhase);
        if (devPhases.includes('iam') && !devPhases.includes('iamFirstUse')) devPhases.push('iamWarmUp');
        const names = new Map<DevicePhase, string>();
        for (const p of devPhases) {
          const name = `video_${1700000000 + ++fileSeq}.mp4`;
          names.set(p, name);
          await link(p === 'iamWarmUp' ? small : master, join(recDir, name));
        }
        const config = testConfig(unitDir, {
          log: { level: 'info' },
          camera: { width: 320, height: 240, fps: 15 },
          clock: { source: 'system' },
          upload: { s3Endpoint: srv.endpoint, allowHttp: true, ...(session.policy === 'never' ? { verifyMd5: 'never' } : {}) },
        });
        log(`run ${run}/${runs}: spawning a fresh unit (testsrc 320x240@15, s3Endpoint ${srv.endpoint}, verifyMd5 ${session.policy}), phases ${session.phases.join(', ')}`);
        unit = await spawnUnit(unitDir, config, 'bench-unit');
        const u = unit;
        for (const n of names.values()) if (!u.log().includes(n)) throw new Error(`the unit did not add ${n} to its catalog: ${u.log().slice(-1500)}`);
        await sleep(3000); // capture running, start-up garbage settled, before any RSS baseline
        const c: Ctx = { run, sessionIndex, session, position: 0, u, unitPid: u.proc.pid!, ffmpegPid: await readPid(join(unitDir, 'capture.pid')), srv };
        let sdkLoaded = false;
        for (const phase of session.phases) {
          if (phase === 'iam' && !sdkLoaded) {
            // Load the SDK with a small unmeasured (for throughput) IAM upload first.
            await sleep(1000);
            await devicePhase(c, 'iamWarmUp', names.get('iamWarmUp')!, smallBytes, smallMd5);
            c.position++;
            sdkLoaded = true;
          }
          await sleep(1000); // let the previous phase's writeback and garbage settle a little
          if (isDevicePhase(phase)) await devicePhase(c, phase, names.get(phase)!, fileBytes, fileMd5);
          else await barePhase(c, phase);
          if (phase === 'iam' || phase === 'iamFirstUse') sdkLoaded = true;
          c.position++;
        }
        await stopUnit(u, unitDir);
        unit = null;
        await rm(unitDir, { recursive: true, force: true });
      }
    }

    // Where the time went, from the store's side: requests served inside each phase's window.
    await sleep(200);
    for (const r of records) {
      const [w0, w1] = r.window!;
      const reqs = servers.get(r.scheme)!.requests.filter((q) => q.t0 >= w0 && q.t0 <= w1).sort((a, b) => a.t0 - b.t0);
      const byKind: Record<string, { n: number; ms: number }> = {};
      let union = 0;
      let cursor = w0;
      for (const q of reqs) {
        (byKind[q.k] ??= { n: 0, ms: 0 }).n++;
        byKind[q.k].ms += q.t1 - q.t0;
        const s = Math.max(q.t0, cursor);
        if (q.t1 > s) union += q.t1 - s;
        cursor = Math.max(cursor, q.t1);
      }
      for (const k of Object.keys(byKind)) byKind[k].ms = round(byKind[k].ms);
      const bodyReqs = reqs.filter((q) => q.k === 'PutObject' || q.k === 'UploadPart');
      // Between one part's answer and the next part's request: the device's per-part overhead.
      const gaps = bodyReqs.slice(1).map((q, i) => q.t0 - bodyReqs[i].t1);
      const complete = reqs.find((q) => q.k === 'CompleteMultipartUpload');
      const afterComplete = complete ? reqs.find((q) => q.t0 >= complete.t1) : undefined;
      r.store = {
        requests: reqs.length,
        byKind,
        failedRequests: reqs.filter((q) => q.st >= 300).length,
        msInsideRequests: round(union),
        msOutsideRequests: round(w1 - w0 - union),
        firstRequestAfterMs: reqs.length ? round(reqs[0].t0 - w0) : null,
        lastAnswerToDoneMs: reqs.length ? round(w1 - Math.max(...reqs.map((q) => q.t1))) : null,
        gapsBetweenPartsMs: gaps.length ? { n: gaps.length, total: round(gaps.reduce((a, b) => a + b, 0)), median: round(median(gaps)), max: round(Math.max(...gaps)) } : null,
        bodyMBpsWhileInRequests: bodyReqs.length ? round(bodyReqs.reduce((a, q) => a + q.len, 0) / 1e6 / (bodyReqs.reduce((a, q) => a + q.t1 - q.t0, 0) / 1000)) : null,
        msUntilComplete: complete ? round(complete.t0 - w0) : null,
        partsPhaseMBps: complete ? round(r.bytes / 1e6 / ((complete.t0 - w0) / 1000)) : null,
        afterCompleteMs: complete && afterComplete ? round(afterComplete.t0 - complete.t1) : null,
      };
      delete r.window;
    }

    // What hashing costs here: the device MD5-hashes what it sends when its policy says so.
    const md5Buf = randomFillSync(Buffer.alloc(256 * 1024));
    const md5T0 = performance.now();
    const md5Probe = createHash('md5');
    for (let i = 0; i < 256; i++) md5Probe.update(md5Buf);
    md5Probe.digest();
    const md5MBps = round((256 * md5Buf.length) / 1e6 / ((performance.now() - md5T0) / 1000));

    const RSS_LIMIT_MB = 30;
    const HIGH_STEAL_PERCENT = 10;
    const THROUGHPUT_RATIO = 0.9;
    const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? round(a / b, 3) : null);
    const maxOrNull = (xs: number[]): number | null => (xs.length ? round(Math.max(...xs)) : null);
    const medOrNull = (xs: number[], d = 1): number | null => (xs.length && xs.every((x) => Number.isFinite(x)) ? round(median(xs), d) : null);
    const perScheme = (scheme: Scheme) => {
      const of = (p: Phase): PhaseRecord[] => records.filter((r) => r.scheme === scheme && r.phase === p);
      const med = (p: Phase): number | null => medOrNull(of(p).map((r) => r.MBps));
      const devSummary = (p: DevicePhase) => {
        const rs = of(p);
        if (!rs.length) return null;
        return {
          n: rs.length,
          medianMBps: med(p),
          runsMBps: rs.map((r) => r.MBps),
          medianMBpsByUnitLog: rs.every((r) => r.deviceLog) ? medOrNull(rs.map((r) => r.deviceLog!.MBps)) : null,
          digestVerified: rs.map((r) => r.deviceLog?.digestVerified ?? null),
          rssGrowthMB: rs.map((r) => r.rss!.growthMB),
          rssGrowthMBmax: maxOrNull(rs.map((r) => r.rss!.growthMB)),
          rssMaxDuringMiB: maxOrNull(rs.map((r) => r.rss!.maxDuringMiB)),
          medianUnitCpuSeconds: medOrNull(rs.map((r) => r.cpuSeconds.unit ?? NaN), 2),
          medianS3rverCpuSeconds: medOrNull(rs.map((r) => r.cpuSeconds.s3rver ?? NaN), 2),
          ...(p === 'iam' || p === 'iamFirstUse'
            ? {
                partsPhaseMBps: rs.map((r) => r.store?.partsPhaseMBps ?? null),
                medianPartsPhaseMBps: medOrNull(rs.map((r) => r.store?.partsPhaseMBps ?? NaN)),
                medianCompleteMultipartUploadMs: medOrNull(rs.map((r) => r.store?.byKind.CompleteMultipartUpload?.ms ?? NaN)),
                medianGapsBetweenPartsMsTotal: medOrNull(rs.map((r) => r.store?.gapsBetweenPartsMs?.total ?? NaN)),
                medianLastAnswerToDoneMs: medOrNull(rs.map((r) => r.store?.lastAnswerToDoneMs ?? NaN)),
                afterCompleteMs: rs.map((r) => r.store?.afterCompleteMs ?? null),
              }
            : {}),
        };
      };
      const bareSummary = (p: BarePhase) => {
        const rs = of(p);
        if (!rs.length) return null;
        return {
          n: rs.length,
          medianMBps: med(p),
          runsMBps: rs.map((r) => r.MBps),
          medianSenderCpuSeconds: medOrNull(rs.map((r) => r.cpuSeconds.senderChild ?? NaN), 2),
          medianS3rverCpuSeconds: medOrNull(rs.map((r) => r.cpuSeconds.s3rver ?? NaN), 2),
        };
      };
      const presigned = devSummary('presigned');
      const presignedNoMd5 = devSummary('presignedNoMd5');
      const iam = devSummary('iam');
      const iamFirstUse = devSummary('iamFirstUse');
      const iamWarmUp = devSummary('iamWarmUp');
      const bareNode = bareSummary('bareNode');
      const curl = bareSummary('curl');
      const partsMed = iam?.medianPartsPhaseMBps ?? null;
      /** Median over runs of (this run's a MB/s / this run's b MB/s): robust to drift between runs. */
      const paired = (a: Phase, b: Phase): number | null => {
        const rs: number[] = [];
        for (let run = 1; run <= runs; run++) {
          const x = of(a).find((r) => r.run === run);
          const y = of(b).find((r) => r.run === run);
          if (x && y && y.MBps > 0) rs.push(x.MBps / y.MBps);
        }
        return rs.length ? round(median(rs), 3) : null;
      };
      const spread = (p: Phase): number | null => {
        const xs = of(p).map((r) => r.MBps);
        return xs.length > 1 ? round(Math.max(...xs) / Math.min(...xs), 2) : null;
      };
      const summary = {
        medianMBps: {
          presigned: med('presigned'),
          ...(scheme === 'http' ? { presignedNoMd5: med('presignedNoMd5') } : {}),
          iam: med('iam'),
          iamPartsPhase: partsMed,
          iamFirstUse: med('iamFirstUse'),
          bareNode: med('bareNode'),
          curl: med('curl'),
        },
        ratios: {
          presignedVsBareNode: ratio(med('presigned'), med('bareNode')),
          presignedVsCurl: ratio(med('presigned'), med('curl')),
          iamVsBareNode: ratio(med('iam'), med('bareNode')),
          iamVsCurl: ratio(med('iam'), med('curl')),
          iamPartsPhaseVsBareNode: ratio(partsMed, med('bareNode')),
          ...(scheme === 'http'
            ? {
                presignedNoMd5VsBareNode: ratio(med('presignedNoMd5'), med('bareNode')),
                presignedVsPresignedNoMd5: ratio(med('presigned'), med('presignedNoMd5')),
              }
            : {}),
        },
        highStealPhases: records
          .filter((r) => r.scheme === scheme && (r.cpuSeconds.machineStealPercent ?? 0) > HIGH_STEAL_PERCENT)
          .map((r) => ({ run: r.run, phase: r.phase, MBps: r.MBps, stealPercent: r.cpuSeconds.machineStealPercent })),
        baselineSpread: {
          bareNode: spread('bareNode'),
          curl: spread('curl'),
        },
        pairedRatiosMedianOfRuns: {
          presignedVsBareNode: paired('presigned', 'bareNode'),
          presignedVsCurl: paired('presigned', 'curl'),
          iamVsBareNode: paired('iam', 'bareNode'),
          ...(scheme === 'http' ? { presignedNoMd5VsBareNode: paired('presignedNoMd5', 'bareNode'), presignedVsPresignedNoMd5: paired('presigned', 'presignedNoMd5') } : {}),
        },
        rssGrowthMBmax: {
          duringTransferWarm: {
            presigned: presigned?.rssGrowthMBmax ?? null,
            ...(scheme === 'http' ? { presignedNoMd5: presignedNoMd5?.rssGrowthMBmax ?? null } : {}),
            iam: iam?.rssGrowthMBmax ?? null,
          },
          firstUse: {
            iamFirstUse: iamFirstUse?.rssGrowthMBmax ?? null,
            sdkLoadGrowthMB: iamWarmUp?.rssGrowthMBmax ?? null,
          },
        },
        presigned,
        ...(scheme === 'http' ? { presignedNoMd5 } : {}),
        iam,
        iamFirstUse,
        iamWarmUp,
        bareNode,
        curl,
      };
      const throughputRatio = summary.ratios.presignedVsBareNode;
      const warmList = [presigned?.rssGrowthMBmax, presignedNoMd5?.rssGrowthMBmax, iam?.rssGrowthMBmax].filter((x): x is number => typeof x === 'number');
      const warmMax = warmList.length ? Math.max(...warmList) : null;
      const firstUse = iamFirstUse?.rssGrowthMBmax ?? null;
      const goals = {
        [`throughput: presigned >= ${THROUGHPUT_RATIO} x bareNode`]: throughputRatio === null ? null : throughputRatio >= THROUGHPUT_RATIO,
        [`RSS growth < ${RSS_LIMIT_MB} MB during the transfer (warm)`]: warmMax === null ? null : warmMax < RSS_LIMIT_MB,
        [`RSS growth < ${RSS_LIMIT_MB} MB at first IAM use (SDK load included)`]: firstUse === null ? null : firstUse < RSS_LIMIT_MB,
      };
      const goalDetails = {
        throughput: {
          presignedMedianMBps: med('presigned'),
          bareNodeMedianMBps: med('bareNode'),
          ratio: throughputRatio,
          threshold: THROUGHPUT_RATIO,
          met: goals[`throughput: presigned >= ${THROUGHPUT_RATIO} x bareNode`],
          unitPolicy: scheme === 'http' ? 'verifyMd5 auto (default): hashes every byte and checks the ETag over http' : 'verifyMd5 auto (default): no hashing over https',
          informational: {
            pairedPresignedVsBareNodeMedianOfRuns: summary.pairedRatiosMedianOfRuns.presignedVsBareNode,
            iamRatioVsBareNode: summary.ratios.iamVsBareNode,
            iamPartsPhaseRatioVsBareNode: summary.ratios.iamPartsPhaseVsBareNode,
            ...(scheme === 'http' ? { presignedNoMd5RatioVsBareNode: summary.ratios.presignedNoMd5VsBareNode } : {}),
            iamNote:
              "not part of the goal: s3rver's CompleteMultipartUpload re-reads every part and re-writes (and MD5-hashes) the whole object before answering; that time is the store's. iamPartsPhase = bytes / (command → s3rver receiving CompleteMultipartUpload).",
          },
        },
        rssWarm: {
          limitMB: RSS_LIMIT_MB,
          maxGrowthMB: warmMax,
          perForm: summary.rssGrowthMBmax.duringTransferWarm,
          met: goals[`RSS growth < ${RSS_LIMIT_MB} MB during the transfer (warm)`],
        },
        rssFirstUse: {
          limitMB: RSS_LIMIT_MB,
          iamFirstUseGrowthMB: firstUse,
          met: goals[`RSS growth < ${RSS_LIMIT_MB} MB at first IAM use (SDK load included)`],
          sdkLoadGrowthMB: iamWarmUp?.rssGrowthMBmax ?? null,
          sdkLoadNote: `sdkLoadGrowthMB: RSS growth during the ${WARM_UP_MIB} MiB warm-up IAM upload (single PutObject) that loads the SDK in runs 2+, informational`,
        },
      };
      return { summary, goals, goalDetails };
    };
    const results = schemes.map((s) => ({ scheme: s, ...perScheme(s) }));

    notes.push(
      'Device MB/s are timed from writing UPLOAD_TO_CLOUD to the first DEVICE_STATUS poll (every 50 ms, own connection each) that no longer lists the file: they include queueing, opening the file, for the IAM form the CreateMultipartUpload/CompleteMultipartUpload/HeadObject calls (and, over http with verifyMd5 auto, re-reading the file for the whole-file MD5 since s3rver answers Complete with a plain MD5), and up to ~50 ms of polling lag. deviceLog is the unit\'s own "upload completed and verified" (ms from the job start to the verified answer; digestVerified = whether the ETag was compared with an MD5 of the bytes).',
      `MD5: with verifyMd5 auto (the default) the device hashes what it sends over http only; over https it does not hash. One MD5 stream runs at ${md5MBps} MB/s on one core of this machine (md5MBpsOneCore). presignedNoMd5 (http, verifyMd5 never) isolates that cost.`,
      `The IAM SDK is loaded lazily on a unit's first IAM upload. iam is measured with it already loaded (after iamFirstUse in run 1, after a ${WARM_UP_MIB} MiB iamWarmUp upload in other runs); iamFirstUse (run 1 only) is a fresh unit's first IAM upload of the whole file, SDK load included; iamWarmUp's RSS growth is the SDK load with a ${WARM_UP_MIB} MiB upload (sdkLoadGrowthMB). iamWarmUp and iamFirstUse are not in the iam medians.`,
      "s3rver's CompleteMultipartUpload re-reads every part and writes (and MD5-hashes) the whole object again before answering: that time (store.byKind.CompleteMultipartUpload) counts against the IAM form and is the store's, not the device's; store.partsPhaseMBps leaves it out.",
      'Bare baselines: bareNode is timed by the child itself (request() → end of the 2xx answer), curl by its time_total; childWallMsIncludingSpawn adds process start-up. curl sends Expect: 100-continue (s3rver answers it at once); the bare Node PUT does not; the device does.',
      'https: one s3rver per scheme, the https one with a throwaway CA/127.0.0.1 certificate made by openssl at start; units trust the CA via NODE_EXTRA_CA_CERTS (set for every unit, http ones too), bareNode via https.request({ca}), curl via --cacert. TLS costs CPU in the sender and in s3rver alike.',
      "cpuSeconds: utime+stime from /proc/<pid>/stat over the phase (unit = the arenacam node process; captureFfmpeg = its camera ffmpeg; s3rver = the scheme's store child; senderChild = the bare node/curl child, from this process's cutime+cstime; benchClient = this process, incl. polling and /proc sampling); machineBusyPercent and machineStealPercent (time the hypervisor gave to others) from /proc/stat; dirtyMBAtStart = Dirty+Writeback from /proc/meminfo when the phase started.",
      `highStealPhases: phases during which the hypervisor took more than ${HIGH_STEAL_PERCENT}% of the machine's CPU time (steal, /proc/stat): their MB/s and CPU seconds are depressed by the host, not by what was measured; they are kept in the medians.`,
      'pairedRatiosMedianOfRuns: per run, the ratio of the two phases of that run (same s3rver, adjacent in time), then the median over runs; less sensitive than the ratio of medians to the machine getting faster or slower between runs (summary.<scheme>.baselineSpread = max/min over runs of the same bare sender to the same store shows how much the machine drifted).',
      `goals, per scheme: throughput = the device's presigned median (unit with the default verifyMd5 policy) >= ${THROUGHPUT_RATIO} x the bare Node PUT median (the IAM ratio is reported, not judged); RSS warm = the largest growth (max during - just before the command) over the device's whole-file uploads with the SDK already loaded or not used (presigned, presignedNoMd5, iam) < ${RSS_LIMIT_MB} MB; RSS first use = iamFirstUse's growth (SDK load + whole-file transfer) < ${RSS_LIMIT_MB} MB.`,
    );
    if (mib !== 1024) notes.push(`--mib ${mib}: the RSS goals are stated for a 1 GiB upload; this run moved ${fileBytes} bytes per upload`);

    const out = {
      bench: 'upload',
      date,
      wallSeconds: round((performance.now() - tStart) / 1000),
      machine: { ...machine, loadavgEnd: load() },
      fileBytes,
      fileMiB: mib,
      fileMd5,
      md5MBpsOneCore: md5MBps,
      runsCount: runs,
      schemes,
      order:
        'per run, per scheme: a default-policy unit (phases presigned, [iamFirstUse in run 1], [iamWarmUp], iam, bareNode, curl) and for http a verifyMd5-never unit (presignedNoMd5); sessions http-auto, http-never, https-auto; even runs reverse the sessions and the phases',
      units: 'MB/s = 1e6 bytes/s; ms; RSS in MiB (growth in MB = 1e6 bytes, and MiB)',
      store: `s3rver 3.7.1, one child process per scheme (filesystem store under ${tmpdir()}), path-style, bucket ${BUCKET}; each warmed up by one unmeasured PUT of the file (${schemes.map((s) => `${s} ${servers.get(s)!.warmUpSeconds} s`).join(', ')})`,
      unit: 'arenacam serve (own process), fresh per session, testsrc 320x240@15 capturing during all phases of the session; upload defaults (concurrency 1, 8 MiB parts, no pacing) except s3Endpoint, allowHttp and (presignedNoMd5) verifyMd5 never',
      runs: records,
      summary: Object.fromEntries(results.map((r) => [r.scheme, r.summary])),
      goals: Object.fromEntries(results.map((r) => [r.scheme, r.goals])),
      goalDetails: {
        definitions: {
          throughput: `per scheme: median MB/s of the device's presigned uploads (unit with the default upload.verifyMd5 = auto) >= ${THROUGHPUT_RATIO} x the median MB/s of the bare Node streaming PUT of the same file to the same s3rver; the IAM form's ratio is reported beside it, not judged (s3rver's CompleteMultipartUpload rewrites the whole object)`,
          rssWarm: `per scheme: max over the device's whole-file uploads (presigned, presignedNoMd5, iam with the SDK already loaded) of (max VmRSS during the upload - VmRSS just before the command) < ${RSS_LIMIT_MB} MB (1e6 bytes), for a 1 GiB file`,
          rssFirstUse: `per scheme: the same growth for a fresh unit's first IAM upload of the whole file (iamFirstUse, run 1), i.e. including the AWS SDK's first load, < ${RSS_LIMIT_MB} MB`,
        },
        ...Object.fromEntries(results.map((r) => [r.scheme, r.goalDetails])),
      },
      notes,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`[upload] failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
