/**
 * End to end: a controller that behaves like the real one drives a unit whose camera paints its
 * own capture time into every frame; the recordings are checked by decoding them.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startUnit, tempDir, waitFor, type TestUnit } from '../helpers/device.js';
import { sendCommand, getVideo } from '../helpers/controller.js';
import { decodeTimecodes, lastTimecodes } from '../helpers/decode-frames.js';
import { startChronydServer, startChronydClient, chronydSkipReason, findExecutable, type Chronyd } from '../helpers/chronyd.js';

const FPS = 30;
const FRAME_MS = 1000 / FPS;
const HOST = '127.0.0.1';
let unit: TestUnit;
let tmp: { dir: string; cleanup(): Promise<void> };
const chronyds: Chronyd[] = [];
const skip = chronydSkipReason();

before(async () => {
  tmp = await tempDir();
  let clock: Record<string, unknown> = { source: 'system' };
  if (!skip) {
    // A real chronyd pair on loopback: the unit reads the client's tracking through chronyc.
    const server = await startChronydServer();
    chronyds.push(server);
    const client = await startChronydClient(server.ntpPort!);
    chronyds.push(client);
    clock = { source: 'chrony', chronycPath: findExecutable('chronyc')!, chronySocket: client.socket, pollMs: 200, maxOffsetMs: 50 };
  }
  unit = await startUnit({ dataDir: tmp.dir, stamp: true, patch: { clock } as never });
  await waitFor(() => unit.app.capture.status().alive, 15000, 'capture to run');
  if (!skip) await waitFor(async () => (await sendCommand(HOST, unit.app.multicamPort, 'HEARTBEAT')).body.status === 'ready', 15000, 'clock sync');
});

after(async () => {
  await unit?.stop();
  for (const c of chronyds) await c.stop();
  await tmp?.cleanup();
});

const port = () => unit.app.multicamPort;

test('a scheduled start is accepted, reported, and the first displayed frame is the first captured at or after it', async () => {
  const startSec = Date.now() / 1000 + 1.5;
  const r = await sendCommand(HOST, port(), 'START_RECORDING', { timestamp: startSec });
  assert.equal(r.kind, 'status');
  assert.equal(r.body.status, 'scheduled_recording_accepted');
  assert.equal('message' in r.body, false);
  const during = await sendCommand(HOST, port(), 'DEVICE_STATUS');
  assert.equal(during.body.status, 'scheduled_recording_accepted');
  await waitFor(async () => (await sendCommand(HOST, port(), 'HEARTBEAT')).body.status === 'recording', 5000, 'recording state');
  const again = await sendCommand(HOST, port(), 'START_RECORDING', { timestamp: Date.now() / 1000 });
  assert.equal(again.kind, 'error');
  assert.match(again.kind === 'error' ? again.message : '', /already recording/);
  await new Promise((r) => setTimeout(r, 2500));
  const stopSec = Date.now() / 1000;
  const stop = await sendCommand(HOST, port(), 'STOP_RECORDING', { timestamp: stopSec }, 60000);
  assert.equal(stop.kind, 'stop');
  const fileName = String(stop.body.fileName);
  assert.match(fileName, /^video_\d+\.mp4$/);
  assert.equal(fileName, `video_${Math.floor(startSec)}.mp4`);
  const path = join(unit.dataDir, 'recordings', fileName);
  assert.equal(stop.body.fileSize, (await stat(path)).size);

  const frames = await decodeTimecodes(path, { width: 320, height: 240 });
  assert.ok(frames.length > 0 && frames.every((f) => f !== null), 'every frame carries a readable timecode');
  const first = frames[0]!;
  const startMs = startSec * 1000;
  const errMs = first.epochMs - startMs;
  // Painted just before the camera wrote it; stamped by ffmpeg a moment later: allow 5 ms of pipe.
  assert.ok(errMs >= -5, `first frame ${errMs.toFixed(1)} ms before the start`);
  assert.ok(errMs < FRAME_MS + 5, `first frame ${errMs.toFixed(1)} ms after the start: not the first at or after it`);
  // Consecutive camera frames: nothing dropped inside the recording.
  for (let i = 1; i < frames.length; i++) assert.equal(frames[i]!.frameIndex, frames[i - 1]!.frameIndex + 1);
  const last = frames.at(-1)!;
  // Stamped by ffmpeg after it was painted: a frame kept (stamped before the stop) was painted before it.
  assert.ok(last.epochMs < stopSec * 1000 + 0.01, `no frame at or after the stop (last ${(last.epochMs - stopSec * 1000).toFixed(2)} ms from it)`);
  assert.ok(last.epochMs > stopSec * 1000 - FRAME_MS - 10, 'the frames up to the stop are there');

  // The controller downloads it byte for byte.
  const got = await getVideo(HOST, port(), fileName, join(tmp.dir, 'download.mp4'));
  assert.equal(got.header.fileName, fileName);
  assert.equal(got.header.fileSize, (await stat(path)).size);
  assert.equal(got.sha256, createHash('sha256').update(await readFile(path)).digest('hex'));

  const list = await sendCommand(HOST, port(), 'LIST_FILES');
  assert.equal(list.kind, 'status');
  const files = list.body.files as Array<Record<string, number | string>>;
  const entry = files.find((f) => f.fileName === fileName)!;
  assert.ok(entry, 'LIST_FILES shows the recording');
  assert.equal(entry.fileSize, got.header.fileSize);
  assert.ok(Math.abs(Number(entry.creationDate) * 1000 - first.epochMs) < 10, 'creationDate is the first frame time');
});

test('a stop with a future timestamp is scheduled and the reply comes when the file is complete', async () => {
  const r = await sendCommand(HOST, port(), 'START_RECORDING', { timestamp: Date.now() / 1000 - 5 });
  assert.equal(r.body.status, 'recording', 'a past timestamp starts now');
  await new Promise((res) => setTimeout(res, 1200));
  const stopMs = Date.now() + 1500;
  const t = Date.now();
  const stop = await sendCommand(HOST, port(), 'STOP_RECORDING', { timestamp: stopMs / 1000 }, 60000);
  assert.equal(stop.kind, 'stop');
  assert.ok(Date.now() >= stopMs, 'the reply waited for the scheduled stop');
  assert.ok(Date.now() - t < 6000);
  const path = join(unit.dataDir, 'recordings', String(stop.body.fileName));
  const tail = await lastTimecodes(path, 2, { width: 320, height: 240 });
  const last = tail.at(-1)!;
  assert.ok(last, 'the last frame has a timecode');
  assert.ok(last.epochMs < stopMs + 0.01 && last.epochMs > stopMs - FRAME_MS - 10, `last frame ${last.epochMs - stopMs} ms from the stop`);
  const idle = await sendCommand(HOST, port(), 'HEARTBEAT');
  assert.equal(idle.body.status, 'ready');
});

test('stop while not recording and a stop before a scheduled start are errors with a message', async () => {
  const none = await sendCommand(HOST, port(), 'STOP_RECORDING', { timestamp: Date.now() / 1000 });
  assert.equal(none.kind, 'error');
  assert.match(none.kind === 'error' ? none.message : '', /not recording/);
  const sched = await sendCommand(HOST, port(), 'START_RECORDING', { timestamp: Date.now() / 1000 + 5 });
  assert.equal(sched.body.status, 'scheduled_recording_accepted');
  const cancel = await sendCommand(HOST, port(), 'STOP_RECORDING', { timestamp: Date.now() / 1000 });
  assert.equal(cancel.kind, 'error');
  assert.match(cancel.kind === 'error' ? cancel.message : '', /cancelled/);
  assert.equal((await sendCommand(HOST, port(), 'HEARTBEAT')).body.status, 'ready');
});

test('status replies carry exactly the keys the controller expects and UPLOAD_STATUS answers like DEVICE_STATUS', async () => {
  for (const cmd of ['HEARTBEAT', 'DEVICE_STATUS', 'UPLOAD_STATUS']) {
    const r = await sendCommand(HOST, port(), cmd);
    assert.equal(r.kind, 'status');
    assert.deepEqual(Object.keys(r.body).sort(), ['batteryLevel', 'deviceId', 'deviceType', 'failedUploadQueue', 'status', 'timestamp', 'uploadQueue']);
    assert.equal(r.body.deviceId, unit.app.deviceId);
    assert.equal(r.body.batteryLevel, null);
    assert.notEqual(String(r.body.deviceType).toLowerCase().includes('quest'), true);
    assert.notEqual(r.body.deviceType, 'Oak');
  }
  const up = await sendCommand(HOST, port(), 'UPLOAD_TO_CLOUD', { fileName: 'video_1.mp4', uploadUrl: 'https://example.invalid/x' });
  assert.equal(up.kind, 'error');
});

test('GET_VIDEO of anything outside the catalog is file_not_found', async () => {
  for (const name of ['../device-id', '/etc/passwd', 'recording-state.json', 'video_1.mp4', '..%2fdevice-id']) {
    const r = await sendCommand(HOST, port(), 'GET_VIDEO', { fileName: name });
    assert.equal(r.kind, 'error');
    assert.equal(r.body.status, 'file_not_found');
  }
  assert.ok(unit.logs.lines.some((l) => JSON.stringify(l).includes('/etc/passwd')), 'the refused name is logged');
});

test('a scheduled start is refused with time_not_synchronized and a message while the clock is not synchronised', { skip: skip ?? false }, async () => {
  // Stop the chrony client: chronyc can no longer reach it, so the clock is not known to be synchronised.
  await chronyds[1].stop();
  const health = async () => (await (await fetch(`http://${HOST}:${unit.app.httpPort}/health`)).json()) as { clock: { synchronised: boolean; reason: string } };
  const h = await waitFor(async () => ((await health()).clock.synchronised ? null : await health()), 10000, 'the clock to be seen unsynchronised');
  assert.match(h.clock.reason, /chronyd|chronyc/);
  const r = await sendCommand(HOST, port(), 'START_RECORDING', { timestamp: Date.now() / 1000 + 3 });
  assert.equal(r.kind, 'error');
  assert.match(r.kind === 'error' ? r.message : '', /not synchronized/);
  assert.equal((await sendCommand(HOST, port(), 'HEARTBEAT')).body.status, 'ready', 'nothing was scheduled');
});
