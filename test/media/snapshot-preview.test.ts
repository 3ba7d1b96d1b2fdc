import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage, type ClientRequest } from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { validate } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { systemClock } from '../../src/util/clock.js';
import { SegmentStore, type Segment } from '../../src/capture/segment-store.js';
import { CapturePipeline } from '../../src/capture/pipeline.js';
import { Snapshotter } from '../../src/media/snapshot.js';
import { PreviewHub, type PreviewViewer } from '../../src/media/preview.js';
import { buildHttpServer, PREVIEW_BOUNDARY } from '../../src/http/server.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it is truthy or `ms` pass. */
async function until(fn: () => unknown, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Log lines collected in memory. */
class Lines extends Writable {
  readonly all: Array<{ msg: string } & Record<string, unknown>> = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const l of chunk.toString().split('\n')) if (l.trim()) this.all.push(JSON.parse(l));
    cb();
  }
  count(msg: string): number {
    return this.all.filter((l) => l.msg.includes(msg)).length;
  }
}

/** GET with the whole body. */
function get(port: number, path: string): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
    })
      .on('error', reject)
      .end();
  });
}

/** A /preview client that parses the multipart stream strictly as it arrives. */
class PreviewClient {
  readonly parts: Buffer[] = [];
  readonly errors: string[] = [];
  ended = false;
  res: IncomingMessage | null = null;
  private buf = Buffer.alloc(0);
  private readonly req: ClientRequest;
  readonly opened: Promise<IncomingMessage>;
  constructor(port: number) {
    this.req = request({ host: '127.0.0.1', port, path: '/preview' });
    this.opened = new Promise((resolve, reject) => {
      this.req.on('response', (res) => {
        this.res = res;
        res.on('data', (b: Buffer) => this.push(b));
        res.on('end', () => (this.ended = true));
        res.on('close', () => (this.ended = true));
        resolve(res);
      });
      this.req.on('error', (err) => (this.res ? (this.ended = true) : reject(err)));
    });
    this.req.end();
  }
  private push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const head = this.buf.indexOf('\r\n\r\n');
      if (this.buf.subarray(0, PREVIEW_BOUNDARY.length + 4).toString() === `--${PREVIEW_BOUNDARY}--`) return;
      if (head < 0) return;
      const lines = this.buf.subarray(0, head).toString().split('\r\n');
      if (lines[0] !== `--${PREVIEW_BOUNDARY}`) this.errors.push(`bad boundary line ${JSON.stringify(lines[0])}`);
      const headers = new Map(lines.slice(1).map((l) => [l.split(':')[0].toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      if (headers.get('content-type') !== 'image/jpeg') this.errors.push(`bad part type ${headers.get('content-type')}`);
      const len = Number(headers.get('content-length'));
      if (!(len > 0)) this.errors.push('part without Content-Length');
      if (this.buf.length < head + 4 + len + 2) return;
      const body = this.buf.subarray(head + 4, head + 4 + len);
      if (this.buf.subarray(head + 4 + len, head + 6 + len).toString() !== '\r\n') this.errors.push('part not followed by CRLF');
      if (body.readUInt16BE(0) !== 0xffd8 || body.readUInt16BE(body.length - 2) !== 0xffd9) this.errors.push('part is not a whole JPEG');
      this.parts.push(Buffer.from(body));
      this.buf = this.buf.subarray(head + 6 + len);
    }
  }
  close(): void {
    this.req.destroy();
  }
}

/** codec_name,width,height of one image as ffprobe sees it. */
async function probeJpeg(dir: string, jpeg: Buffer): Promise<string> {
  const file = join(dir, `probe-${Date.now()}-${Math.random()}.jpg`);
  await writeFile(file, jpeg);
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'csv=p=0', file]);
  return stdout.trim();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('snapshot and preview over live capture segments', () => {
  let dir: string;
  let store: SegmentStore;
  let capture: CapturePipeline;
  let http: FastifyInstance;
  let port: number;
  let preview: PreviewHub;
  let decodes = 0;
  const logs = new Lines();
  const log = createLogger('debug', logs);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'arenacam-preview-'));
    const config = validate({
      dataDir: dir,
      camera: { width: 320, height: 240, fps: 30 },
      encoder: { codec: 'libx264', bitrateKbps: 800, preset: 'ultrafast' },
      clock: { source: 'system' },
    });
    store = new SegmentStore(join(dir, 'segments'), { ffprobePath: 'ffprobe', log: log.child({ part: 'store' }) });
    capture = new CapturePipeline({ config, store, clock: systemClock, log: log.child({ part: 'capture' }), setprivPath: null });
    await capture.start();
    await until(() => store.size >= 2, 20000, 'two capture segments');
    const counted = { all: (): Segment[] => (decodes++, store.all()) };
    const snapshot = new Snapshotter({ store: counted, ffmpegPath: 'ffmpeg', log: log.child({ part: 'snapshot' }) });
    preview = new PreviewHub({ store, ffmpegPath: 'ffmpeg', log: log.child({ part: 'preview' }), width: 160, idleStopMs: 500 });
    http = buildHttpServer({ log: log.child({ part: 'http' }), health: () => ({ ok: true }), snapshot, preview });
    http.get('/test/preview.html', (_req, reply) => reply.type('text/html').send(PAGE));
    // Holds the page's load event (when --dump-dom reads the page) for three seconds of streaming.
    http.get('/test/hold', async (_req, reply) => {
      await sleep(3000);
      return reply.type('text/plain').send('ok');
    });
    await http.listen({ host: '127.0.0.1', port: 0 });
    port = (http.server.address() as { port: number }).port;
  });

  after(async () => {
    await http?.close();
    await preview?.close();
    await capture?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('a snapshot is a JPEG of the newest keyframe, stamped with its capture time', async (t) => {
    const t0 = performance.now();
    const r = await get(port, '/snapshot');
    const ms = performance.now() - t0;
    t.diagnostic(`uncached /snapshot took ${ms.toFixed(0)} ms`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'image/jpeg');
    assert.equal(await probeJpeg(dir, r.body), 'mjpeg,320,240');
    const at = Number(r.headers['x-capture-time']);
    assert.ok(store.all().slice(-3).some((s) => Math.abs(s.startMs - at) <= 1), `capture time ${at} is a recent segment start`);
    assert.ok(Date.now() - at < 5000, `frame is recent (${Date.now() - at} ms old)`);
  });

  test('concurrent snapshot requests share one decode and a fresh one follows later', async () => {
    await sleep(600);
    const before = decodes;
    const all = await Promise.all(Array.from({ length: 6 }, () => get(port, '/snapshot')));
    assert.equal(decodes - before, 1, 'one ffmpeg run for six requests');
    for (const r of all) assert.ok(r.body.equals(all[0].body));
    await sleep(1600);
    const later = await get(port, '/snapshot');
    assert.equal(decodes - before, 2);
    assert.ok(Number(later.headers['x-capture-time']) > Number(all[0].headers['x-capture-time']), 'newer footage');
  });

  test('a snapshot falls back to the segment before when the newest was deleted', async () => {
    const segs = store.all();
    const gone: Segment = { ...segs.at(-1)!, name: 'gone.ts', path: join(dir, 'gone.ts'), startMs: segs.at(-1)!.endMs };
    const snap = new Snapshotter({ store: { all: () => [...segs, gone] }, ffmpegPath: 'ffmpeg', log });
    const s = await snap.latest();
    assert.equal(s?.segment, segs.at(-1)!.name);
    assert.ok(Math.abs(s!.captureMs - segs.at(-1)!.startMs) <= 1);
  });

  test('snapshot and preview answer 503 while there is no footage', async () => {
    const empty = { all: (): Segment[] => [], on: () => undefined, off: () => undefined };
    const bare = buildHttpServer({
      log,
      health: () => ({ ok: true }),
      snapshot: new Snapshotter({ store: empty, ffmpegPath: 'ffmpeg', log }),
      preview: new PreviewHub({ store: empty, ffmpegPath: 'ffmpeg', log }),
    });
    const none = buildHttpServer({ log, health: () => ({ ok: true }) });
    try {
      for (const app of [bare, none]) {
        await app.listen({ host: '127.0.0.1', port: 0 });
        const p = (app.server.address() as { port: number }).port;
        for (const path of ['/snapshot', '/preview']) {
          const r = await get(p, path);
          assert.equal(r.status, 503, path);
          assert.equal(typeof JSON.parse(r.body.toString()).error, 'string');
        }
      }
    } finally {
      await bare.close();
      await none.close();
    }
  });

  test('two viewers of /preview get well-formed JPEG parts from one ffmpeg, which stops after they leave', async (t) => {
    const t0 = performance.now();
    const a = new PreviewClient(port);
    const b = new PreviewClient(port);
    const res = await a.opened;
    await b.opened;
    assert.equal(res.headers['content-type'], `multipart/x-mixed-replace; boundary=${PREVIEW_BOUNDARY}`);
    await until(() => a.parts.length >= 1, 10000, 'a first picture');
    t.diagnostic(`first preview picture after ${(performance.now() - t0).toFixed(0)} ms`);
    await until(() => a.parts.length >= 4 && b.parts.length >= 4, 10000, 'four pictures on both');
    const spread = performance.now();
    await until(() => a.parts.length >= 14, 10000, 'ten more pictures');
    t.diagnostic(`ten pictures in ${(performance.now() - spread).toFixed(0)} ms (paced at 5 fps: ~2000)`);
    assert.deepEqual([...a.errors, ...b.errors], []);
    assert.equal(await probeJpeg(dir, a.parts.at(-1)!), 'mjpeg,160,120');
    const stats = preview.stats();
    assert.equal(stats.runs, 1, 'one ffmpeg for both viewers');
    const pid = stats.pid!;
    assert.ok(alive(pid));
    a.close();
    b.close();
    await until(() => preview.stats().pid === null && !alive(pid), 5000, 'the preview ffmpeg to stop');
    assert.equal(preview.stats().viewers, 0);

    const c = new PreviewClient(port);
    await until(() => c.parts.length >= 3, 10000, 'pictures for a later viewer');
    assert.notEqual(preview.stats().pid, pid, 'a new ffmpeg');
    c.close();
  });

  test('a viewer whose socket is backed up skips frames while others keep theirs', async () => {
    const counts = { slow: 0, fast: 0 };
    const slow: PreviewViewer = { buffered: () => 10 << 20, send: () => void counts.slow++, end: () => undefined };
    const fast: PreviewViewer = { buffered: () => 0, send: () => void counts.fast++, end: () => undefined };
    const skippedBefore = preview.stats().framesSkipped;
    const offSlow = preview.subscribe(slow);
    const offFast = preview.subscribe(fast);
    await until(() => counts.fast >= 5, 10000, 'five frames');
    offSlow();
    offFast();
    assert.ok(counts.slow <= 1, `slow viewer got ${counts.slow} (at most the catch-up picture)`);
    assert.ok(preview.stats().framesSkipped - skippedBefore >= 4);
  });

  test('a preview whose ffmpeg cannot start ends its viewer and says why', async () => {
    const hub = new PreviewHub({ store, ffmpegPath: join(dir, 'no-such-ffmpeg'), log, setprivPath: null });
    let ended = false;
    hub.subscribe({ buffered: () => 0, send: () => undefined, end: () => (ended = true) });
    await until(() => ended, 5000, 'the viewer to be ended');
    assert.ok(logs.all.some((l) => l.msg.includes('preview ffmpeg exited') && String(l.stderr).includes('ENOENT')));
    await hub.close();
  });

  test('when the preview ffmpeg dies, the viewers streams end and it is logged once', async () => {
    const a = new PreviewClient(port);
    const b = new PreviewClient(port);
    await until(() => a.parts.length >= 1 && b.parts.length >= 1, 10000, 'pictures');
    const pid = preview.stats().pid!;
    const before = logs.count('preview ffmpeg exited');
    process.kill(-pid, 'SIGKILL');
    await until(() => a.ended && b.ended, 5000, 'both streams to end');
    assert.equal(logs.count('preview ffmpeg exited') - before, 1);
    assert.equal(preview.stats().viewers, 0);
  });

  test('/preview loads as an image in a real browser', async (t) => {
    const browser = ['chromium-headless-shell', 'chromium'].map((b) => `/usr/bin/${b}`).find((p) => existsSync(p));
    if (!browser) {
      t.skip('no chromium on this machine (Debian: apt-get install chromium-headless-shell)');
      return;
    }
    const { stdout } = await run(
      browser,
      ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', `http://127.0.0.1:${port}/test/preview.html`],
      { timeout: 60000 },
    );
    const m = /id="result">([^<]*)</.exec(stdout);
    assert.ok(m, `page result in ${stdout.slice(0, 500)}`);
    const [w, h, lit, pictures] = m[1].split(',').map(Number);
    assert.equal(`${w}x${h}`, '160x120');
    assert.ok(lit > 0, 'the picture is not blank');
    assert.ok(pictures >= 5, `the picture moves (${pictures} distinct in 3 s)`);
    t.diagnostic(`browser saw ${pictures} distinct pictures in 3 s`);
  });

  test('shutdown with a viewer connected finishes quickly', async () => {
    const hub = new PreviewHub({ store, ffmpegPath: 'ffmpeg', log, width: 160 });
    const app = buildHttpServer({ log, health: () => ({ ok: true }), preview: hub });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const viewer = new PreviewClient((app.server.address() as { port: number }).port);
    await until(() => viewer.parts.length >= 2, 10000, 'pictures');
    const pid = hub.stats().pid!;
    const t0 = performance.now();
    await app.close();
    await hub.close();
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `closed in ${ms.toFixed(0)} ms`);
    await until(() => viewer.ended, 2000, 'the viewer stream to end');
    assert.ok(!alive(pid), 'preview ffmpeg gone');
  });
});

/** A page that shows /preview and reports its size, whether it is blank, and how many pictures it showed. */
const PAGE = `<!doctype html><html><body><img id="p" src="/preview"><iframe src="/test/hold"></iframe><div id="result">pending</div><script>
const img = document.getElementById('p'), c = document.createElement('canvas'), seen = new Set();
let lit = 0;
const tick = setInterval(() => {
  if (!img.naturalWidth) return;
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0; for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
  lit = Math.max(lit, sum); seen.add(sum);
  document.getElementById('result').textContent = [img.naturalWidth, img.naturalHeight, lit, seen.size].join(',');
}, 100);
</script></body></html>`;
