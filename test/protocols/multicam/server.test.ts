import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { DeviceApi, DeviceSnapshot, QueueUploadResult, RecordingHandle, RecordingInfo, StartResult, StopResult, UploadItem, UploadRequest } from '../../../src/device/types.js';
import { createLogger } from '../../../src/log.js';
import { MultiCamServer, type MultiCamServerOptions } from '../../../src/protocols/multicam/server.js';
import { systemClock } from '../../../src/util/clock.js';
import { abandonGetVideo, buildCommand, getVideo, rawExchange, sendCommand, TransferError } from '../../helpers/controller.js';

const [HOST, BIG] = ['127.0.0.1', 'video_1729000100.mp4'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, end = Date.now() + 3000): Promise<void> {
  for (; !cond(); await sleep(5)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

/** A small DeviceApi over real files in a temp dir (the real device is tested end-to-end elsewhere). */
class TestDevice implements DeviceApi {
  state: DeviceSnapshot['state'] = 'ready';
  errorMessage: string | null = null;
  scheduledStartMs: number | null = null;
  synchronised = true;
  opened = 0;
  released = 0;
  calls: string[] = [];
  uploads: UploadItem[] = [];
  lastUpload: UploadRequest | null = null;
  private readonly files = new Map<string, RecordingInfo>();
  constructor(readonly dir: string) {}
  add(fileName: string, data: Buffer): void {
    writeFileSync(join(this.dir, fileName), data);
    const now = Date.now() / 1000;
    this.files.set(fileName, { fileName, fileSize: data.length, creationDate: now - 30, modificationDate: now });
  }
  snapshot(): DeviceSnapshot {
    const { state, errorMessage, scheduledStartMs } = this;
    return { deviceId: 'arena-test', deviceType: 'arenacam', state, errorMessage, batteryLevel: null, uploadQueue: [...this.uploads], failedUploadQueue: [], scheduledStartMs };
  }
  async startRecording(atMs: number): Promise<StartResult> {
    this.calls.push(`start ${atMs}`);
    if (!this.synchronised) return { kind: 'not_synchronized', message: 'Cannot start scheduled recording - time not synchronized' };
    if (this.state !== 'ready' || this.scheduledStartMs !== null) return { kind: 'error', message: 'already recording' };
    if (atMs > Date.now() + 10) return (this.scheduledStartMs = atMs), { kind: 'scheduled', atMs };
    this.state = 'recording';
    return { kind: 'started', atMs };
  }
  async stopRecording(): Promise<StopResult> {
    this.calls.push('stop');
    if (this.state !== 'recording' && this.scheduledStartMs === null) return { kind: 'error', message: 'not recording' };
    [this.state, this.scheduledStartMs] = ['ready', null];
    const fileName = `video_${Math.floor(Date.now() / 1000)}.mp4`;
    this.add(fileName, Buffer.from('recorded'));
    return { kind: 'stopped', fileName, fileSize: 8 };
  }
  listRecordings(): RecordingInfo[] {
    return this.calls.push('list'), [...this.files.values()];
  }
  async openRecording(fileName: string): Promise<RecordingHandle | null> {
    this.calls.push('open');
    const info = this.files.get(fileName);
    if (!info) return null;
    this.opened++;
    let done = false;
    const release = (): void => void (assert.equal(done, false, 'released twice'), (done = true), this.released++);
    return { path: join(this.dir, fileName), fileName, size: info.fileSize, release };
  }
  async queueUpload(fileName: string, request: UploadRequest): Promise<QueueUploadResult> {
    this.calls.push('upload');
    this.lastUpload = request;
    const info = this.files.get(fileName);
    if (!info) return { kind: 'not_found' };
    const url = request.uploadUrl ?? `https://${request.s3Bucket}.s3.${request.awsRegion}.amazonaws.com/${request.s3Key}`;
    this.uploads.push({ fileName, fileSize: info.fileSize, bytesUploaded: 0, uploadProgress: 0, uploadSpeed: 0, status: 'queued', uploadUrl: url, error: null });
    return { kind: 'queued' };
  }
}

const dir = mkdtempSync(join(tmpdir(), 'arenacam-multicam-'));
const bigData = randomBytes(20 * 1024 * 1024);
const logLines: string[] = [];
const logSink = new Writable({ write: (c, _e, cb) => (logLines.push(String(c)), cb()) });

async function start(over: Partial<MultiCamServerOptions> = {}) {
  const device = new TestDevice(mkdtempSync(join(dir, 'dev-')));
  device.add(BIG, bigData);
  device.add('video_1729000000.mp4', Buffer.from('small file'));
  const server = new MultiCamServer({
    host: HOST, port: 0, maxMessageBytes: 65536, receiveTimeoutMs: 2000, maxConnections: 128,
    device, clock: systemClock, log: createLogger('debug', logSink), closeGraceMs: 2000, ...over,
  });
  const { port } = await server.listen();
  return { server, device, port };
}

after(() => rmSync(dir, { recursive: true, force: true }));

describe('MultiCamServer', () => {
  let s: Awaited<ReturnType<typeof start>>;
  before(async () => (s = await start()));
  after(() => s.server.close());

  test('polls are answered with the ready status reply', async () => {
    for (const cmd of ['HEARTBEAT', 'DEVICE_STATUS', 'UPLOAD_STATUS']) {
      const r = await sendCommand(HOST, s.port, cmd);
      assert.equal(r.kind, 'status');
      assert.equal(r.body.status, 'ready');
      assert.equal(r.body.deviceId, 'arena-test');
      assert.ok(Math.abs((r.body.timestamp as number) - Date.now() / 1000) < 5);
    }
  });

  test('a future START is scheduled, STOP returns the file, and a past START records at once', async () => {
    const at = Date.now() / 1000 + 3;
    const scheduled = await sendCommand(HOST, s.port, 'START_RECORDING', { timestamp: at });
    assert.equal(scheduled.body.status, 'scheduled_recording_accepted');
    assert.equal(s.device.calls.at(-1), `start ${at * 1000}`);
    assert.equal((await sendCommand(HOST, s.port, 'HEARTBEAT')).body.status, 'scheduled_recording_accepted');
    const stopped = await sendCommand(HOST, s.port, 'STOP_RECORDING');
    assert.equal(stopped.kind, 'stop');
    assert.match(stopped.body.fileName as string, /^video_\d+\.mp4$/);
    assert.equal(stopped.body.fileSize, 8);
    const now = await sendCommand(HOST, s.port, 'START_RECORDING', { timestamp: Date.now() / 1000 - 1 });
    assert.equal(now.body.status, 'recording');
    assert.equal((await sendCommand(HOST, s.port, 'DEVICE_STATUS')).body.status, 'recording');
    assert.equal((await sendCommand(HOST, s.port, 'STOP_RECORDING')).kind, 'stop');
  });

  test('STOP while idle, START unsynchronised and polls in the error state get error replies with a message', async () => {
    const stop = await sendCommand(HOST, s.port, 'STOP_RECORDING');
    assert.ok(stop.kind === 'error' && stop.message === 'not recording');
    s.device.synchronised = false;
    const r = await sendCommand(HOST, s.port, 'START_RECORDING', { timestamp: Date.now() / 1000 + 3 });
    s.device.synchronised = true;
    assert.ok(r.kind === 'error' && r.body.status === 'time_not_synchronized' && /not synchronized/.test(r.message));
    [s.device.state, s.device.errorMessage] = ['error', 'storage full'];
    const poll = await sendCommand(HOST, s.port, 'HEARTBEAT');
    s.device.state = 'ready';
    assert.ok(poll.kind === 'error' && poll.message === 'storage full');
  });

  test('LIST_FILES lists the catalog and GET_VIDEO of a small file delivers it', async () => {
    const list = await sendCommand(HOST, s.port, 'LIST_FILES');
    assert.equal(list.kind, 'status');
    const names = (list.body.files as { fileName: string }[]).map((f) => f.fileName);
    assert.ok(names.includes(BIG) && names.includes('video_1729000000.mp4'));
    const v = await getVideo(HOST, s.port, 'video_1729000000.mp4', null);
    assert.deepEqual(v.header, { deviceId: 'arena-test', fileName: 'video_1729000000.mp4', fileSize: 10, status: 'ready' });
    assert.equal(v.sha256, createHash('sha256').update('small file').digest('hex'));
  });

  test('UPLOAD_TO_CLOUD in IAM form reaches the device whole; the reply is upload_queued with the item, no secret anywhere', async () => {
    const creds = { s3Bucket: 'b-arena', s3Key: 'k/v.mp4', awsAccessKeyId: 'ASIAXEXAMPLEKEY1', awsSecretAccessKey: 'SECRET-DO-NOT-LOG', awsSessionToken: 'T'.repeat(2500), awsRegion: 'eu-west-1' };
    const r = await sendCommand(HOST, s.port, 'UPLOAD_TO_CLOUD', { fileName: BIG, ...creds });
    assert.equal(r.kind, 'status', 'a status reply: no message, never fileName together with fileSize');
    assert.equal(r.body.status, 'upload_queued');
    assert.deepEqual(Object.keys(r.body).sort(), ['batteryLevel', 'deviceId', 'deviceType', 'failedUploadQueue', 'status', 'timestamp', 'uploadQueue']);
    const queue = r.body.uploadQueue as UploadItem[];
    assert.deepEqual(queue.map((i) => i.fileName), [BIG], 'the item is in uploadQueue when the reply leaves');
    assert.deepEqual(s.device.lastUpload, { uploadUrl: null, ...creds }, 'every field reaches the device unchanged');
    const all = JSON.stringify(r.body) + logLines.join('');
    for (const secret of [creds.awsSecretAccessKey, creds.awsSessionToken]) assert.ok(!all.includes(secret), 'credentials must not be logged or echoed');
    const gone = await sendCommand(HOST, s.port, 'UPLOAD_TO_CLOUD', { fileName: 'video_1.mp4', uploadUrl: 'https://b.s3.amazonaws.com/x?X-Amz-Signature=abc' });
    assert.ok(gone.kind === 'error' && gone.body.status === 'file_not_found' && /^File video_1\.mp4 not found$/.test(gone.message));
    assert.equal(((await sendCommand(HOST, s.port, 'DEVICE_STATUS')).body.uploadQueue as unknown[]).length, 1, 'a refused upload leaves the queue as it was');
  });

  test('the reply comes in one chunk and the server closes without waiting for our EOF', async () => {
    const r = await rawExchange(HOST, s.port, buildCommand('HEARTBEAT'), 2000);
    assert.ok(r.endedAfterMs !== null && r.endedAfterMs < 1000);
    assert.equal(JSON.parse(r.data.toString()).status, 'ready');
  });

  test('a command split in 3 writes with delays, and one followed by junk, are answered once', async () => {
    const bytes = buildCommand('HEARTBEAT');
    const parts = [0, 10, 30, bytes.length].slice(1).map((end, i, a) => ({ data: bytes.subarray(i ? a[i - 1] : 0, end), delayMs: i ? 80 : 0 }));
    const split = await rawExchange(HOST, s.port, parts);
    assert.equal(JSON.parse(split.data.toString()).status, 'ready');
    const stops = s.device.calls.filter((c) => c === 'stop').length;
    const junk = await rawExchange(HOST, s.port, Buffer.concat([bytes, Buffer.from('\n{"command":"STOP_RECORDING"} trailing')]));
    assert.equal(JSON.parse(junk.data.toString()).status, 'ready');
    assert.equal(s.device.calls.filter((c) => c === 'stop').length, stops, 'the second command is ignored');
  });

  test('a command half-closed by the peer, as a document-style client does, is still answered', async () => {
    const chunks: Buffer[] = [];
    const sock = connect(s.port, HOST).on('data', (c) => chunks.push(c));
    sock.end(buildCommand('HEARTBEAT'));
    await new Promise((r) => sock.once('close', r));
    assert.equal(JSON.parse(Buffer.concat(chunks).toString()).status, 'ready');
  });

  test('70 KiB of garbage gets an error reply and the connection is closed', async () => {
    const garbage = await rawExchange(HOST, s.port, randomBytes(70 * 1024).fill(0x41, 0, 1));
    assert.match(JSON.parse(garbage.data.toString()).message, /malformed/);
    assert.notEqual(garbage.endedAfterMs, null);
    const open = await rawExchange(HOST, s.port, Buffer.concat([Buffer.from('{"command":"'), Buffer.alloc(70 * 1024, 0x61)]));
    assert.match(JSON.parse(open.data.toString()).message, /too large.*65536/);
    assert.notEqual(open.endedAfterMs, null);
  });

  test('malformed JSON, an unknown command and a missing timestamp get error replies with messages', async () => {
    const cases: [string, RegExp][] = [
      ['{"command": HEARTBEAT}', /invalid JSON/],
      ['{"command":"SELF_DESTRUCT","timestamp":1}', /unknown command/],
      ['{"command":"START_RECORDING","deviceId":"controller"}', /"timestamp" is required/],
    ];
    for (const [input, re] of cases) {
      const r = await rawExchange(HOST, s.port, input);
      const body = JSON.parse(r.data.toString());
      assert.equal(body.status, 'error');
      assert.match(body.message, re);
      assert.notEqual(r.endedAfterMs, null);
    }
    assert.ok(logLines.some((l) => l.includes('"level":40') && l.includes('unknown command')), 'refusals are logged at warn');
  });

  test('a 20 MB GET_VIDEO arrives byte-identical and the handle is released', async (t) => {
    const dest = join(dir, 'download.mp4');
    const t0 = Date.now();
    const v = await getVideo(HOST, s.port, BIG, dest);
    assert.equal(v.header.fileSize, bigData.length);
    assert.equal(v.sha256, createHash('sha256').update(bigData).digest('hex'));
    assert.ok(readFileSync(dest).equals(bigData));
    await until('release', () => s.device.released === s.device.opened);
    t.diagnostic(`20 MB in ${Date.now() - t0} ms`);
  });

  test('path tricks and unknown names get file_not_found and the socket closes at once', async () => {
    for (const name of ['../' + BIG, `${s.device.dir}/${BIG}`, '/etc/passwd', 'video_0.mp4', BIG + '\u0000']) {
      const r = await rawExchange(HOST, s.port, buildCommand('GET_VIDEO', { fileName: name }), 3000);
      assert.ok(r.endedAfterMs !== null && r.endedAfterMs < 1000, `${name} closed after ${r.endedAfterMs} ms`);
      const body = JSON.parse(r.data.toString());
      assert.deepEqual([body.status, body.message], ['file_not_found', `File ${name} not found`]);
      const failed = await getVideo(HOST, s.port, name, null).then(() => null, (e: unknown) => e);
      assert.ok(failed instanceof TransferError, 'the controller fails fast instead of hanging');
    }
  });

  test('a peer leaving mid-transfer releases the handle and the server serves the next command', async () => {
    const opened = s.device.opened;
    await abandonGetVideo(HOST, s.port, BIG, 1024 * 1024);
    await until('release', () => s.device.released === opened + 1 && s.device.opened === opened + 1);
    const quick = connect(s.port, HOST).on('error', () => {});
    quick.once('connect', () => quick.resetAndDestroy());
    assert.equal((await sendCommand(HOST, s.port, 'HEARTBEAT')).body.status, 'ready');
  });

  test('50 concurrent HEARTBEATs are all answered', async () => {
    const replies = await Promise.all(Array.from({ length: 50 }, () => sendCommand(HOST, s.port, 'HEARTBEAT')));
    assert.ok(replies.every((r) => r.kind === 'status' && r.body.status === 'ready'));
  });
});

describe('MultiCamServer limits and shutdown', () => {
  test('a connection that sends half a command gets an error after the receive timeout', async (t) => {
    const { server, port } = await start({ receiveTimeoutMs: 300 });
    t.after(() => server.close());
    const t0 = Date.now();
    const r = await rawExchange(HOST, port, '{"command":"HEART', 3000);
    const waited = Date.now() - t0;
    assert.ok(waited >= 280 && waited < 1500, `waited ${waited} ms`);
    assert.match(JSON.parse(r.data.toString()).message, /no complete command within 300 ms/);
  });

  test('one connection over maxConnections is told there are too many', async (t) => {
    const { server, port } = await start({ maxConnections: 2 });
    t.after(() => server.close());
    const idle = [connect(port, HOST), connect(port, HOST)];
    await until('two connections', () => server.connectionCount === 2);
    const r = await sendCommand(HOST, port, 'HEARTBEAT');
    assert.ok(r.kind === 'error' && /too many connections/.test(r.message));
    idle.forEach((c) => c.destroy());
    await until('idle gone', () => server.connectionCount === 0);
    assert.equal((await sendCommand(HOST, port, 'HEARTBEAT')).kind, 'status');
  });

  test('close() lets a running transfer finish, and refuses new connections', async () => {
    const { server, port, device } = await start({ closeGraceMs: 5000 });
    const transfer = getVideo(HOST, port, BIG, null, { pauseAfterFirstChunkMs: 300 });
    await until('transfer started', () => device.opened === 1);
    await sleep(50);
    assert.equal(device.released, 0, 'the transfer is still running');
    const closed = server.close();
    const v = await transfer;
    assert.equal(v.sha256, createHash('sha256').update(bigData).digest('hex'));
    await closed;
    assert.equal(device.released, 1);
    await assert.rejects(sendCommand(HOST, port, 'HEARTBEAT'), /ECONNREFUSED/);
  });

  test('close() answers a connection still waiting for its command and closes it', async () => {
    const { server, port } = await start();
    const waiting = rawExchange(HOST, port, '{"command":', 3000);
    await until('connection', () => server.connectionCount === 1);
    await server.close();
    const r = await waiting;
    assert.match(JSON.parse(r.data.toString()).message, /shutting down/);
    assert.notEqual(r.endedAfterMs, null);
  });

  test('close() cuts a stalled transfer after the grace and releases its handle', async () => {
    const { server, port, device } = await start({ closeGraceMs: 150 });
    const transfer = getVideo(HOST, port, BIG, null, { pauseAfterFirstChunkMs: 1000 }).then(() => null, (e: unknown) => e);
    await until('transfer started', () => device.opened === 1);
    await sleep(50);
    const t0 = Date.now();
    await server.close();
    assert.ok(Date.now() - t0 < 1500, `close took ${Date.now() - t0} ms`);
    assert.equal(device.released, 1);
    assert.ok((await transfer) instanceof TransferError);
  });
});
