import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { afterEach, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { startCoordinator, type Coordinator } from './coordinator.js';

/** A bare camera over a raw `ws` client: sends envelopes, keeps every frame the coordinator sent. */
class RawCam {
  readonly inbox: any[] = [];
  private waiters: Array<{ pred: (m: any) => boolean; resolve: (m: any) => void }> = [];
  private constructor(
    readonly ws: WebSocket,
    readonly deviceId: string,
  ) {
    ws.on('message', (data) => {
      let msg: any;
      try {
        msg = JSON.parse(String(data));
      } catch {
        msg = { raw: String(data) };
      }
      this.inbox.push(msg);
      const hit = this.waiters.filter((w) => w.pred(msg));
      this.waiters = this.waiters.filter((w) => !hit.includes(w));
      for (const w of hit) w.resolve(msg);
    });
  }

  static async open(url: string, deviceId: string): Promise<RawCam> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return new RawCam(ws, deviceId);
  }

  send(type: string, payload: object = {}, sessionId?: string): void {
    this.ws.send(JSON.stringify({ type, protoVersion: '1.0', deviceId: this.deviceId, ...(sessionId ? { sessionId } : {}), payload }));
  }

  /** The oldest unconsumed message of one of `types` (consumed), waiting for it if need be. */
  next(types: string | string[], timeoutMs = 3000): Promise<any> {
    const is = (m: any): boolean => [types].flat().includes(m.type);
    const seen = this.inbox.find(is);
    if (seen) return (this.inbox.splice(this.inbox.indexOf(seen), 1), Promise.resolve(seen));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.deviceId}: no ${types} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ pred: is, resolve: (m) => (clearTimeout(timer), this.inbox.splice(this.inbox.indexOf(m), 1), resolve(m)) });
    });
  }

  /** hello + pair_request; returns the reply (pair_accept or pair_reject). */
  async pair(token: string): Promise<any> {
    this.send('hello', { deviceName: this.deviceId, platform: 'linux', appVersion: '0.1.0', capabilities: {} });
    this.send('pair_request', { pairToken: token, deviceName: this.deviceId });
    return this.next(['pair_accept', 'pair_reject']);
  }

  /** hello + auth; returns auth_ok or auth_failed. */
  async auth(deviceKey: string): Promise<any> {
    this.send('hello', { deviceName: this.deviceId });
    this.send('auth', { deviceKey });
    return this.next(['auth_ok', 'auth_failed']);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, end = Date.now() + 3000): Promise<void> {
  for (; !cond(); await sleep(5)) if (Date.now() > end) throw new Error('timed out');
}
const HEX64 = /^[0-9a-f]{64}$/;

describe('the coordinator test peer', () => {
  const opened: Array<Coordinator | RawCam> = [];
  const all: any[] = [];
  async function coordinator(opts?: Parameters<typeof startCoordinator>[0]): Promise<Coordinator> {
    const c = await startCoordinator(opts);
    opened.push(c);
    return c;
  }
  async function cam(c: Coordinator, id: string, url = c.url): Promise<RawCam> {
    const r = await RawCam.open(url, id);
    r.ws.on('message', (d) => String(d) !== 'garbage' && all.push(JSON.parse(String(d))));
    opened.push(r);
    return r;
  }
  afterEach(async () => {
    for (const o of opened.splice(0).reverse()) await (o instanceof RawCam ? o.ws.terminate() : o.close());
  });

  test('a valid token pairs once and is refused the second time', async () => {
    const c = await coordinator();
    const token = c.newToken();
    assert.match(token, /^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{6}$/);
    assert.equal(c.pairLink(token), `var://pair?host=127.0.0.1&port=${c.port}&token=${token}`);
    const a = await cam(c, 'cam-a');
    const ok = await a.pair(token.toLowerCase());
    assert.equal(ok.type, 'pair_accept');
    assert.match(ok.payload.deviceKey, HEX64);
    assert.equal(ok.payload.assignedName, 'Camera 1');
    const b = await cam(c, 'cam-b');
    assert.deepEqual((await b.pair(token)).payload, { reason: 'invalid_token' });
    assert.deepEqual((await b.pair('ZZZZZZ')).payload, { reason: 'invalid_token' });
    const view = c.devices().get('cam-a')!;
    assert.deepEqual([view.paired, view.authed, view.connected, view.deviceKey], [true, true, true, ok.payload.deviceKey]);
    assert.equal(c.devices().get('cam-b')!.paired, false);
  });

  test('a token expires five minutes after it was made, by the injected clock', async () => {
    let now = 1_000_000;
    const c = await coordinator({ now: () => now });
    const [early, late] = [c.newToken(), c.newToken()];
    now += 5 * 60_000 - 1;
    assert.equal((await (await cam(c, 'cam-a')).pair(early)).type, 'pair_accept');
    now += 1;
    assert.deepEqual((await (await cam(c, 'cam-b')).pair(late)).payload, { reason: 'expired' });
  });

  test('pairing can be disabled', async () => {
    const c = await coordinator();
    c.setPairing(false);
    const a = await cam(c, 'cam-a');
    assert.deepEqual((await a.pair(c.newToken())).payload, { reason: 'pairing_disabled' });
    c.setPairing(true);
    assert.equal((await a.pair(c.newToken())).type, 'pair_accept');
  });

  test('auth succeeds with the issued key on a new connection and fails with another key or after revoke', async () => {
    const c = await coordinator();
    const key = (await (await cam(c, 'cam-a')).pair(c.newToken())).payload.deviceKey;
    assert.equal((await (await cam(c, 'cam-a')).auth(key)).type, 'auth_ok');
    assert.equal(c.devices().get('cam-a')!.authed, true);
    assert.equal((await (await cam(c, 'cam-a')).auth('f'.repeat(64))).type, 'auth_failed');
    assert.equal((await (await cam(c, 'stranger')).auth(key)).type, 'auth_failed');
    c.revoke('cam-a');
    assert.equal((await (await cam(c, 'cam-a')).auth(key)).type, 'auth_failed');
    assert.equal(c.devices().get('cam-a')!.paired, false);
  });

  test('status from a socket that has not paired or authed is dropped and counted', async () => {
    const c = await coordinator();
    const a = await cam(c, 'cam-a');
    a.send('hello', { deviceName: 'a' });
    a.send('status', { battery: 50, isRecording: true });
    await c.waitFor((m) => m.type === 'hello');
    await sleep(50);
    assert.equal(c.droppedStatus, 1);
    assert.equal(c.devices().get('cam-a')!.lastStatus, null);
    await assert.rejects(c.waitFor((m) => m.type === 'status', 100), /no matching message/);
    assert.equal(c.received.filter((r) => r.dropped).length, 1);
    await a.pair(c.newToken());
    a.send('status', { battery: 51, isRecording: false }, 'S1');
    await c.waitFor((m) => m.type === 'status');
    assert.deepEqual(c.devices().get('cam-a')!.lastStatus, { battery: 51, isRecording: false });
    assert.equal(c.droppedStatus, 1);
  });

  test('marks go only to a device believed to be recording', async () => {
    const c = await coordinator();
    const a = await cam(c, 'cam-a');
    await a.pair(c.newToken());
    assert.equal(c.mark('cam-a', 'M1'), false);
    c.startRecord('cam-a', 'S1');
    const start = await a.next('start_record');
    assert.deepEqual(start.payload, { sessionId: 'S1', profile: { resolution: '1080p', fps: 30, bitrate: 12_000_000 }, meta: {} });
    a.send('recording_started', { startedAt: Date.now() }, 'S1');
    await c.waitFor((m) => m.type === 'recording_started');
    assert.equal(c.mark('cam-a', 'M1', 'fall'), true);
    const mark = await a.next('mark');
    assert.equal(mark.sessionId, 'S1');
    assert.equal(mark.payload.markId, 'M1');
    assert.equal(mark.payload.note, 'fall');
    assert.equal(typeof mark.payload.coordinatorTs, 'number');
    a.send('recording_stopped', { stoppedAt: Date.now() }, 'S1');
    await c.waitFor((m) => m.type === 'recording_stopped');
    assert.equal(c.mark('cam-a', 'M2'), false);
    a.send('status', { isRecording: true }, 'S1');
    await c.waitFor((m) => m.type === 'status');
    assert.equal(c.mark('cam-a', 'M3'), true);
  });

  test('start_record can carry the session id at the top level instead of in the payload', async () => {
    const c = await coordinator();
    const a = await cam(c, 'cam-a');
    await a.pair(c.newToken());
    c.startRecord('cam-a', 'S9', null, { matchId: 'M12' }, 'top');
    const msg = await a.next('start_record');
    assert.equal(msg.sessionId, 'S9');
    assert.deepEqual(msg.payload, { meta: { matchId: 'M12' } });
    c.stopRecord('cam-a', 'S9');
    assert.deepEqual(await a.next('stop_record'), { type: 'stop_record', protoVersion: '1.0', deviceId: 'coordinator', sessionId: 'S9', payload: {} });
  });

  test('requestClip sends the real defaults and resolves with the clip_ready or error for its mark', async () => {
    const c = await coordinator();
    const [a, b] = [await cam(c, 'cam-a'), await cam(c, 'cam-b')];
    await a.pair(c.newToken());
    await b.pair(c.newToken());
    const first = c.requestClip('cam-a', 'M1');
    const req = await a.next('request_clip');
    assert.deepEqual(req.payload, { markId: 'M1', fromMs: 10_000, toMs: 5000, quality: 'original' });
    b.send('clip_ready', { markId: 'M1', clipId: 'other' });
    a.send('clip_ready', { markId: 'M0', clipId: 'old' });
    a.send('clip_ready', { markId: 'M1', clipId: 'C1', url: 'http://x/clips/C1.mp4' });
    assert.equal((await first).payload.clipId, 'C1');
    const second = c.requestClip('cam-a', 'M2', { fromMs: -3000, toMs: 0, quality: 'preview', clipId: 'C-2' });
    assert.deepEqual((await a.next('request_clip')).payload, { markId: 'M2', fromMs: -3000, toMs: 0, quality: 'preview', clipId: 'C-2' });
    a.send('error', { code: 'CLIP_FAILED', message: 'no', markId: 'M2' });
    assert.equal((await second).payload.code, 'CLIP_FAILED');
  });

  test('ping resolves with the pong of that device', async () => {
    const c = await coordinator();
    const a = await cam(c, 'cam-a');
    await a.pair(c.newToken());
    const pong = c.ping('cam-a');
    const ping = await a.next('ping');
    assert.equal(typeof ping.payload.coordinatorTs, 'number');
    a.send('pong', { deviceTs: 123 });
    assert.equal((await pong).payload.deviceTs, 123);
  });

  test('unknown types, invalid JSON and binary frames are recorded, and the connection stays open', async () => {
    const c = await coordinator();
    const a = await cam(c, 'cam-a');
    a.send('hello', {});
    a.send('mystery', { x: 1 });
    a.ws.send('{not json');
    a.ws.send(Buffer.from([1, 2, 3]));
    await c.waitFor((m) => m.binary === 3);
    assert.deepEqual(c.received.map((r) => r.msg.type ?? Object.keys(r.msg)[0]), ['hello', 'mystery', 'invalid', 'binary']);
    assert.equal(c.received[1].deviceId, 'cam-a');
    assert.equal(a.ws.readyState, WebSocket.OPEN);
    c.disconnect('cam-a', 'unpaired');
    assert.deepEqual((await a.next('disconnect')).payload, { reason: 'unpaired' });
    c.sendRaw('cam-a', 'garbage');
    await until(() => a.inbox.some((m) => m.raw === 'garbage'));
  });

  test('the path / is accepted as well as /ws, and other paths are refused', async () => {
    const c = await coordinator();
    const root = await cam(c, 'cam-root', `ws://127.0.0.1:${c.port}/`);
    root.send('hello', {});
    await c.waitFor((m) => m.type === 'hello');
    await assert.rejects(RawCam.open(`ws://127.0.0.1:${c.port}/other`, 'x'), /404/);
    assert.throws(() => c.mark('nobody', 'M'), /not connected/);
  });

  test('download returns the status, the Content-Length header and the body', async () => {
    const c = await coordinator();
    const server = createServer((req, res) => {
      if (req.url === '/clips/C1.mp4') res.writeHead(200, { 'Content-Length': 5 }).end('abcde');
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      assert.deepEqual(await c.download(`${base}/clips/C1.mp4`), { status: 200, contentLength: 5, body: Buffer.from('abcde') });
      assert.equal((await c.download(`${base}/missing`)).status, 404);
    } finally {
      server.close();
    }
  });

  test('every message the coordinator sent in these tests carries deviceId "coordinator" and protoVersion "1.0"', () => {
    assert.ok(all.length > 20, `only ${all.length} messages seen`);
    for (const m of all) assert.deepEqual([m.deviceId, m.protoVersion, typeof m.payload], ['coordinator', '1.0', 'object'], JSON.stringify(m));
    const types = new Set(all.map((m) => m.type));
    for (const t of ['pair_accept', 'pair_reject', 'auth_ok', 'auth_failed', 'start_record', 'stop_record', 'mark', 'request_clip', 'ping', 'disconnect']) {
      assert.ok(types.has(t), `no ${t} seen`);
    }
  });
});
