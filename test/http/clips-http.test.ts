import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFile, mkdtemp, open, readFile, readdir, readlink, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildHttpServer, parseRange, type ClipSource } from '../../src/http/server.js';
import type { RecordingHandle } from '../../src/device/types.js';
import { silentLogger } from '../../src/log.js';

const run = promisify(execFile);
/** The longest clip id allowed. */
const LONG_ID = 'L'.repeat(127) + '-';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A response with its whole body (or what arrived of it). */
interface Got {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** One HTTP request with the path sent exactly as given (no URL normalisation). */
function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Clips served from one folder, counting releases per open. */
class FolderClips implements ClipSource {
  readonly opened: Array<{ id: string; releases: number }> = [];
  constructor(private readonly dir: string) {}
  async open(clipId: string): Promise<RecordingHandle | null> {
    const path = join(this.dir, `${clipId}.mp4`);
    const st = await stat(path).catch(() => null);
    if (!st) return null;
    const entry = { id: clipId, releases: 0 };
    this.opened.push(entry);
    return { path, fileName: `${clipId}.mp4`, size: st.size, release: () => void entry.releases++ };
  }
}

describe('clip download over HTTP', () => {
  let dir: string;
  let app: FastifyInstance;
  let port: number;
  let clips: FolderClips;
  let small: Buffer;
  let bigSize: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'arenacam-clips-'));
    const enc = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-movflags', '+faststart'];
    await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=30', '-t', '2', ...enc, join(dir, 'clip_1.mp4')]);
    // Lossless noise: tens of megabytes, more than loopback socket buffers hold, to abort mid-body.
    const noise = 'testsrc2=size=640x480:rate=30,noise=alls=100:allf=t';
    await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', noise, '-t', '2', ...enc, '-qp', '0', join(dir, 'big-one.mp4')]);
    small = await readFile(join(dir, 'clip_1.mp4'));
    await copyFile(join(dir, 'clip_1.mp4'), join(dir, `${LONG_ID}.mp4`));
    bigSize = (await stat(join(dir, 'big-one.mp4'))).size;
    clips = new FolderClips(dir);
    app = buildHttpServer({ log: silentLogger(), health: () => ({ ok: true }), clips });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
  });

  after(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a clip is served whole with its length, type and byte-range support', async () => {
    const r = await get(port, '/clips/clip_1.mp4');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'video/mp4');
    assert.equal(r.headers['content-length'], String(small.length));
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.ok(r.body.equals(small), 'body is the file, byte for byte');
    const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width', '-of', 'csv=p=0', join(dir, 'clip_1.mp4')]);
    assert.equal(probe.stdout.trim(), 'h264,320');
  });

  test('the longest allowed id is served', async () => {
    const r = await get(port, `/clips/${LONG_ID}.mp4`);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(small));
  });

  test('each single range form answers 206 with the right bytes and Content-Range', async () => {
    const size = small.length;
    const cases: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 99],
      ['bytes=100-', 100, size - 1],
      ['bytes=-500', size - 500, size - 1],
      [`bytes=10-${size + 1000}`, 10, size - 1],
      [`bytes=-${size + 10}`, 0, size - 1],
    ];
    for (const [range, start, end] of cases) {
      const r = await get(port, '/clips/clip_1.mp4', { Range: range });
      assert.equal(r.status, 206, range);
      assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
      assert.equal(r.headers['content-length'], String(end - start + 1), range);
      assert.ok(r.body.equals(small.subarray(start, end + 1)), `${range}: bytes match`);
    }
  });

  test('an unsatisfiable range answers 416 with the size', async () => {
    for (const range of [`bytes=${small.length}-`, `bytes=${small.length + 5}-${small.length + 9}`, 'bytes=-0']) {
      const r = await get(port, '/clips/clip_1.mp4', { Range: range });
      assert.equal(r.status, 416, range);
      assert.equal(r.headers['content-range'], `bytes */${small.length}`, range);
    }
  });

  test('several ranges, malformed ranges and conditional ranges get the whole clip', async () => {
    const variants: Array<Record<string, string>> = [{ Range: 'bytes=0-1,5-9' }, { Range: 'bytes=9-2' }, { Range: 'items=0-1' }, { Range: 'bytes=-' }, { Range: 'bytes=0-1', 'If-Range': '"x"' }];
    for (const headers of variants) {
      const r = await get(port, '/clips/clip_1.mp4', headers);
      assert.equal(r.status, 200, JSON.stringify(headers));
      assert.ok(r.body.equals(small), JSON.stringify(headers));
    }
  });

  test('HEAD tells the length without a body', async () => {
    const r = await get(port, '/clips/clip_1.mp4', {}, 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(small.length));
    assert.equal(r.headers['content-type'], 'video/mp4');
    assert.equal(r.body.length, 0);
    const ranged = await get(port, '/clips/clip_1.mp4', { Range: 'bytes=0-9' }, 'HEAD');
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers['content-length'], '10');
  });

  test('unknown clips and path tricks answer 404 without reaching the provider', async () => {
    const before = clips.opened.length;
    const unknown = await get(port, '/clips/nope.mp4');
    assert.equal(unknown.status, 404);
    assert.equal(typeof JSON.parse(unknown.body.toString()).error, 'string');
    const tricks = [
      '/clips/..%2F..%2Fetc%2Fpasswd.mp4',
      '/clips/a.b.mp4',
      '/clips/%2e%2e.mp4',
      '/clips/../clips/clip_1.mp4',
      '/clips/clip_1.mp4%00.mp4',
      '/clips/clip_1.MP4',
      '/clips/clip_1',
      `/clips/${'a'.repeat(129)}.mp4`,
      '/clips/clip%201.mp4',
    ];
    for (const path of tricks) {
      const r = await get(port, path);
      assert.equal(r.status, 404, path);
    }
    assert.equal(clips.opened.length, before, 'only the well-formed unknown id reached open()');
  });

  test('every opened clip is released exactly once, also when the client aborts mid-body', async () => {
    const from = clips.opened.length;
    await get(port, '/clips/clip_1.mp4');
    await get(port, '/clips/clip_1.mp4', {}, 'HEAD');
    await get(port, '/clips/clip_1.mp4', { Range: `bytes=${small.length}-` });
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/clips/big-one.mp4' }, (res) => {
        res.once('data', (b: Buffer) => {
          received = b.length;
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => (received ? undefined : reject(err)));
      req.end();
    });
    assert.ok(received < bigSize, 'the client left before the end');
    for (let i = 0; i < 50 && !clips.opened.slice(from).every((o) => o.releases === 1); i++) await sleep(100);
    await sleep(200);
    assert.deepEqual(clips.opened.slice(from).map((o) => [o.id, o.releases]), [['clip_1', 1], ['clip_1', 1], ['clip_1', 1], ['big-one', 1]]);
    // And the aborted download's file is no longer open in this process.
    const fds = await readdir('/proc/self/fd');
    const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
    assert.ok(!targets.some((t) => t.endsWith('big-one.mp4')), 'file descriptor closed');
  });

  test('parseRange reads single ranges and refuses the rest', () => {
    assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
    assert.deepEqual(parseRange('BYTES=5-', 10), { start: 5, end: 9 });
    assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
    assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable');
    assert.equal(parseRange('bytes=-1', 0), 'unsatisfiable');
    assert.equal(parseRange('bytes=1-2, 3-4', 10), null);
    assert.equal(parseRange('bytes=abc', 10), null);
    assert.equal(parseRange(undefined, 10), null);
  });
});

test('shutdown cuts a slow clip download instead of waiting for it, and releases its handle once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'arenacam-clips-slow-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // 24 MB of random bytes: the route only streams bytes, and far more than socket buffers hold.
  const fh = await open(join(dir, 'slow.mp4'), 'w');
  for (let i = 0; i < 24; i++) await fh.write(randomBytes(1024 * 1024));
  await fh.close();
  const clips = new FolderClips(dir);
  const app = buildHttpServer({ log: silentLogger(), health: () => ({ ok: true }), clips });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  // A client that takes the first chunk and then stops reading (a slow coordinator).
  let received = 0;
  let complete = false;
  const req = request({ host: '127.0.0.1', port, path: '/clips/slow.mp4' });
  const started = new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', (res) => {
      res.on('data', (b: Buffer) => (received += b.length));
      res.once('data', () => {
        res.pause();
        resolve(res);
      });
      res.on('end', () => (complete = true));
      res.on('error', () => undefined);
    });
    req.on('error', (err) => (received ? undefined : reject(err)));
  });
  req.end();
  t.after(() => req.destroy());
  const res = await started;
  await sleep(200); // the server fills the socket buffers and stalls
  assert.equal(clips.opened[0].releases, 0, 'the download is still going');
  const t0 = performance.now();
  const closed = await Promise.race([app.close().then(() => 'closed'), sleep(5000).then(() => 'still waiting')]);
  const ms = performance.now() - t0;
  assert.equal(closed, 'closed');
  assert.ok(ms < 2000, `close took ${ms.toFixed(0)} ms`);
  // Reading again, the client gets what was in flight and then sees the download cut short.
  const ended = new Promise((resolve) => res.once('close', resolve));
  res.resume();
  assert.equal(await Promise.race([ended.then(() => 'ended'), sleep(2000).then(() => 'still open')]), 'ended');
  assert.equal(complete, false, 'the response did not end normally');
  assert.ok(received < 24 * 1024 * 1024, `the client got ${received} bytes, not the whole clip`);
  assert.deepEqual(clips.opened.map((o) => [o.id, o.releases]), [['slow', 1]]);
});
