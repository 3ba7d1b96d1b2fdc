/** The unit as a VAR camera node, against a coordinator peer that behaves like the real one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startCoordinator } from '../helpers/coordinator.js';
import { withPairedUnit, TEST_VAR } from '../helpers/var-unit.js';
import { startUnit, tempDir, waitFor, type TestUnit } from '../helpers/device.js';
import { decodeTimecodes, lastTimecodes } from '../helpers/decode-frames.js';

const run = promisify(execFile);
const FRAME_MS = 1000 / 30;
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

test('a coordinator pairs the unit, sees it recording, marks, and downloads a clip cut while recording continues', () =>
  withPairedUnit({ stamp: true }, async ({ unit, coord, id: deviceId, dataDir: dir }) => {
    const hello = await coord.waitFor((m) => m.type === 'hello');
    assert.equal(hello.deviceId, deviceId);
    assert.equal(hello.protoVersion, '1.0');
    assert.deepEqual(hello.payload.capabilities, { maxResolution: '320x240', maxFps: 30, segmentRecording: true });
    const accept = coord.devices().get(deviceId)!;
    const saved = JSON.parse(await readFile(join(dir, 'var-pairing.json'), 'utf8'));
    assert.equal(saved.deviceKey, accept.deviceKey, 'the key is persisted');
    assert.equal((await stat(join(dir, 'var-pairing.json'))).mode & 0o777, 0o600);
    assert.equal(coord.droppedStatus, 0, 'no status was sent before pairing');
    const status = await coord.waitFor((m) => m.type === 'status');
    assert.equal(status.payload.isRecording, false);
    assert.equal(typeof status.payload.freeSpaceMB, 'number');
    assert.ok('battery' in status.payload && 'temperature' in status.payload && 'signalStrength' in status.payload);

    await waitFor(() => unit.app.store.size >= 4, 15000, 'pre-roll');
    const base = `http://127.0.0.1:${unit.app.httpPort}`;
    const health = (await (await fetch(`${base}/health`)).json()) as Record<string, any>;
    assert.equal(health.ok, true);
    assert.equal(health.capture.alive, true);
    assert.equal(health.clock.synchronised, true);
    assert.equal(typeof health.storage.freeMB, 'number');
    assert.equal(health.coordinator.state, 'ready');
    assert.equal(health.coordinator.connected, true);
    assert.equal(health.coordinator.assignedName, accept.assignedName);
    const snap = await fetch(`${base}/snapshot`);
    assert.equal(snap.headers.get('content-type'), 'image/jpeg');
    assert.ok(Date.now() - Number(snap.headers.get('x-capture-time')) < 4000, 'a recent frame');
    const jpeg = Buffer.from(await snap.arrayBuffer());
    assert.equal(jpeg.readUInt16BE(0), 0xffd8);
    // 720p is above this camera's 320x240: clamped to it; with the same fps and bitrate nothing restarts.
    const asked = Date.now();
    coord.startRecord(deviceId, 'S1', { resolution: '720p', fps: 30, bitrate: 800_000 }, { eventId: 'EVT01', matchId: 'MCH12' }, 'top');
    const started = await coord.waitFor((m) => m.type === 'recording_started');
    assert.equal(started.sessionId, 'S1');
    assert.ok(started.payload.startedAt >= asked - 5 && started.payload.startedAt < asked + 1000, `startedAt ${started.payload.startedAt - asked} ms after the request`);
    assert.ok(coord.devices().get(deviceId)!.recording);
    assert.equal(unit.logs.find('capture settings change').length, 0, 'nothing to restart');

    await new Promise((r) => setTimeout(r, 2500));
    const before = Date.now();
    assert.ok(coord.mark(deviceId, 'MARK-1', 'Possible fall'));
    const ack = await coord.waitFor((m) => m.type === 'mark_ack');
    const after = Date.now();
    assert.equal(ack.payload.markId, 'MARK-1');
    assert.equal(ack.sessionId, 'S1');
    assert.ok(ack.payload.deviceTs >= before && ack.payload.deviceTs <= after, 'deviceTs is the device clock at reception');

    const ready = await coord.requestClip(deviceId, 'MARK-1', { fromMs: 2000, toMs: 1000 });
    assert.equal(ready.type, 'clip_ready', JSON.stringify(ready));
    assert.ok(unit.app.device.isRecording(), 'recording goes on while the clip is cut');
    const { clipId, url, durationMs, sizeBytes } = ready.payload;
    assert.match(clipId, /^CLIP-[A-Za-z0-9_-]{22}$/, 'clip ids are unguessable');
    assert.equal(url, `http://127.0.0.1:${unit.app.httpPort}/clips/${clipId}.mp4`);
    const got = await coord.download(url);
    assert.equal(got.status, 200);
    assert.equal(got.contentLength, got.body.length);
    assert.equal(got.body.length, sizeBytes);

    const file = join(dir, 'clip-copy.mp4');
    await writeFile(file, got.body);
    const codes = await decodeTimecodes(file, { width: 320, height: 240 });
    assert.ok(codes.length > 0 && codes.every((c) => c !== null), 'every frame decodes with its capture time');
    const from = ack.payload.deviceTs - 2000;
    const to = ack.payload.deviceTs + 1000;
    const first = codes[0]!.epochMs;
    const last = codes.at(-1)!.epochMs;
    assert.ok(first >= from - 1 && first < from + FRAME_MS + 1, `first frame ${(first - from).toFixed(1)} ms from the window start`);
    assert.ok(last < to && last >= to - 2 * FRAME_MS, `last frame ${(to - last).toFixed(1)} ms before the window end`);
    assert.ok(Math.abs(durationMs - (last - first + FRAME_MS)) <= FRAME_MS + 1, `durationMs ${durationMs} vs frames ${(last - first).toFixed(0)}`);

    const stopAsk = Date.now();
    coord.stopRecord(deviceId, 'S1');
    const stopped = await coord.waitFor((m) => m.type === 'recording_stopped');
    assert.equal(stopped.sessionId, 'S1');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(coord.received.filter((r) => r.msg?.type === 'recording_stopped').length, 1, 'exactly one recording_stopped');
    assert.ok(Math.abs(stopped.payload.stoppedAt - stopAsk) < 200, 'stoppedAt is the last frame, near the stop');
    const rec = unit.app.device.listRecordings().at(-1)!;
    assert.equal(stopped.payload.fileName, rec.fileName, 'the session recording is in the MultiCam catalog');
    const recCodes = await decodeTimecodes(join(dir, 'recordings', rec.fileName), { width: 320, height: 240, maxFrames: 1 });
    assert.ok(Math.abs(recCodes[0]!.epochMs - started.payload.startedAt) < 1, 'startedAt is the capture time of the first frame');
    const lastCode = (await lastTimecodes(join(dir, 'recordings', rec.fileName), 1, { width: 320, height: 240 }))[0]!;
    assert.ok(Math.abs(lastCode.epochMs - stopped.payload.stoppedAt) < 1, `stoppedAt is the capture time of the last frame (${(stopped.payload.stoppedAt - lastCode.epochMs).toFixed(1)} ms off)`);
    assert.ok(lastCode.epochMs < stopAsk + 200 && lastCode.epochMs > stopAsk - 200, 'the recording ends at the stop');
    const book = JSON.parse(await readFile(join(dir, 'var-sessions.json'), 'utf8'));
    const s1 = book.find((s: { sessionId: string }) => s.sessionId === 'S1');
    assert.deepEqual(s1.meta, { eventId: 'EVT01', matchId: 'MCH12' });
    assert.equal(s1.fileName, rec.fileName);
    assert.equal(s1.marks[0].markId, 'MARK-1');
    await waitFor(() => coord.devices().get(deviceId)!.lastStatus?.isRecording === false, 3000, 'status shows the stop');
  }));

test('a preview clip is re-encoded smaller and a coordinator clipId is echoed; a repeated request gets the same clip', () =>
  withPairedUnit({ patch: { clips: { previewWidth: 160 } }, stamp: true }, async ({ unit, coord, id: deviceId, dataDir: dir }) => {
    await waitFor(() => unit.app.store.size >= 3, 15000, 'pre-roll');
    coord.startRecord(deviceId, 'S2', null);
    await coord.waitFor((m) => m.type === 'recording_started');
    assert.ok(coord.mark(deviceId, 'M2'));
    await coord.waitFor((m) => m.type === 'mark_ack');
    const ready = await coord.requestClip(deviceId, 'M2', { fromMs: 1500, toMs: 500, quality: 'preview', clipId: 'CLIP-from_coord-7' });
    assert.equal(ready.type, 'clip_ready', JSON.stringify(ready));
    assert.equal(ready.payload.clipId, 'CLIP-from_coord-7');
    const got = await coord.download(ready.payload.url);
    assert.equal(got.status, 200);
    const file = join(dir, 'p.mp4');
    await writeFile(file, got.body);
    const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height', '-of', 'csv=p=0', file]);
    assert.equal(stdout.trim(), 'h264,160,120');
    assert.ok(Math.abs(ready.payload.durationMs - 2000) <= 2 * FRAME_MS, `durationMs ${ready.payload.durationMs}`);
    const again = await coord.requestClip(deviceId, 'M2', { fromMs: 1500, toMs: 500, quality: 'preview', clipId: 'CLIP-from_coord-7' });
    assert.deepEqual(again.payload, ready.payload);
    const other = await coord.requestClip(deviceId, 'M2', { fromMs: 1000, toMs: 500, clipId: 'CLIP-from_coord-7' });
    assert.equal(other.type, 'error');
    assert.equal(other.payload.code, 'DUPLICATE_CLIP_ID');
    const unknown = await coord.requestClip(deviceId, 'NO-SUCH-MARK');
    assert.equal(unknown.type, 'error');
    assert.equal(unknown.payload.code, 'MARK_NOT_FOUND');
    const missing = await coord.download(`http://127.0.0.1:${unit.app.httpPort}/clips/CLIP-nothere.mp4`);
    assert.equal(missing.status, 404);
  }));

test('after a reconnect the unit authenticates with its key; auth_failed and disconnect(unpaired) make it forget the key', () =>
  withPairedUnit({ stamp: true }, async ({ unit, coord, id: deviceId, dataDir: dir }) => {
    const key = coord.devices().get(deviceId)!.deviceKey;
    coord.disconnect(deviceId, 'restart');
    const auth = await coord.waitFor((m) => m.type === 'auth');
    assert.equal(auth.payload.deviceKey, key);
    await waitFor(() => coord.devices().get(deviceId)?.authed, 5000, 'auth_ok');
    const pong = await coord.ping(deviceId);
    assert.equal(typeof pong.payload.deviceTs, 'number');

    // The coordinator forgot us: auth_failed → the key is dropped; the token was single use, so it waits for a new link.
    coord.revoke(deviceId);
    coord.disconnect(deviceId, 'restart');
    await coord.waitFor((m) => m.type === 'auth' && m.payload.deviceKey === key && coord.received.filter((r) => r.msg?.type === 'auth').length >= 2);
    await waitFor(async () => JSON.parse(await readFile(join(dir, 'var-pairing.json'), 'utf8')).deviceKey === null, 5000, 'key forgotten');
    assert.equal(unit.logs.find('deviceKey forgotten').length, 1);

    // A new link through the CLI, as an operator would scan it.
    const cfg = join(dir, 'cli.json');
    await writeFile(cfg, JSON.stringify({ dataDir: dir }));
    const out = await run(process.execPath, [CLI, 'pair', coord.pairLink(coord.newToken()), '--config', cfg]);
    assert.match(out.stdout, /pairing link saved/);
    unit.app.varClient.poke();
    await waitFor(() => coord.devices().get(deviceId)?.authed && coord.devices().get(deviceId)?.deviceKey !== key, 10000, 'paired again');
    const key2 = coord.devices().get(deviceId)!.deviceKey;
    assert.equal(JSON.parse(await readFile(join(dir, 'var-pairing.json'), 'utf8')).deviceKey, key2);

    coord.disconnect(deviceId, 'unpaired');
    await waitFor(async () => JSON.parse(await readFile(join(dir, 'var-pairing.json'), 'utf8')).deviceKey === null, 5000, 'key forgotten on unpaired');
  }));

test('bad input from the coordinator gets an error back and the link keeps working', () =>
  withPairedUnit({ stamp: true }, async ({ unit, coord, id: deviceId, dataDir: dir }) => {
    const errorAfter = (n: number) => coord.waitFor((m) => m.type === 'error' && coord.received.filter((r) => r.msg?.type === 'error').length > n);
    const count = () => coord.received.filter((r) => r.msg?.type === 'error').length;
    let n = count();
    coord.sendRaw(deviceId, JSON.stringify({ type: 'ping', protoVersion: '2.0', deviceId: 'coordinator', payload: {} }));
    let e = await errorAfter(n);
    assert.equal(e.payload.code, 'UNSUPPORTED_VERSION');
    n = count();
    coord.sendRaw(deviceId, '{"type": "mark", garbage');
    e = await errorAfter(n);
    assert.equal(e.payload.code, 'BAD_MESSAGE');
    n = count();
    coord.sendRaw(deviceId, Buffer.from([1, 2, 3]), true);
    e = await errorAfter(n);
    assert.equal(e.payload.code, 'BAD_MESSAGE');
    n = count();
    coord.sendRaw(deviceId, JSON.stringify({ type: 'request_clip', protoVersion: '1.0', deviceId: 'coordinator', payload: { markId: 'x', quality: 'hd' } }));
    e = await errorAfter(n);
    assert.equal(e.payload.code, 'BAD_MESSAGE');
    assert.match(e.payload.message, /quality/);
    for (let i = 0; i < 2; i++) coord.sendRaw(deviceId, JSON.stringify({ type: 'thumbnail_request', protoVersion: '1.0', deviceId: 'coordinator', payload: {} }));
    assert.equal((await coord.ping(deviceId)).type, 'pong');
    assert.equal(unit.logs.find('unknown message type').length, 1, 'unknown types are logged once');

    // Deeply nested JSON, an oversized meta, two marks in one millisecond: errors or acks, never a crash.
    n = count();
    coord.sendRaw(deviceId, `{"type":"mark","protoVersion":"1.0","payload":{"markId":"deep","note":${'['.repeat(30000)}${']'.repeat(30000)}}}`);
    e = await errorAfter(n);
    assert.equal(e.payload.code, 'BAD_MESSAGE');
    n = count();
    coord.sendRaw(deviceId, JSON.stringify({ type: 'start_record', protoVersion: '1.0', deviceId: 'coordinator', payload: { sessionId: 'X', meta: { blob: 'y'.repeat(5000) } } }));
    e = await errorAfter(n);
    assert.equal(e.payload.code, 'BAD_MESSAGE');
    assert.match(e.payload.message, /meta/);
    const twoMarks = ['T1', 'T2'].map((markId) => JSON.stringify({ type: 'mark', protoVersion: '1.0', deviceId: 'coordinator', sessionId: null, payload: { markId, coordinatorTs: 1 } }));
    for (const m of twoMarks) coord.sendRaw(deviceId, m);
    await coord.waitFor((m) => m.type === 'mark_ack' && m.payload.markId === 'T2');
    await coord.waitFor((m) => m.type === 'mark_ack' && m.payload.markId === 'T1');
    await waitFor(async () => {
      const book = JSON.parse(await readFile(join(dir, 'var-sessions.json'), 'utf8')) as Array<{ marks: Array<{ markId: string }> }>;
      return book.flatMap((s) => s.marks.map((m) => m.markId)).join() === 'T1,T2';
    }, 3000, 'both marks on disk');

    // Oversized: a known type over var.maxMessageBytes is refused with an error and the link stays;
    // an unknown type of any size (up to the 4 MiB socket cap) is ignored; beyond the cap the link is re-made.
    const auths = () => coord.received.filter((r) => r.msg?.type === 'auth').length;
    const before = auths();
    n = count();
    coord.sendRaw(deviceId, JSON.stringify({ type: 'ping', protoVersion: '1.0', deviceId: 'coordinator', payload: { pad: 'x'.repeat(70000) } }));
    e = await errorAfter(n);
    assert.equal(e.payload.code, 'TOO_LARGE');
    coord.sendRaw(deviceId, JSON.stringify({ type: 'clip_listing', protoVersion: '1.0', deviceId: 'coordinator', payload: { pad: 'x'.repeat(300000) } }));
    assert.equal((await coord.ping(deviceId)).type, 'pong');
    assert.equal(auths(), before, 'the link was kept');
    assert.equal(count(), n + 1, 'an unknown type is not answered');
    coord.sendRaw(deviceId, 'x'.repeat(5 * 1024 * 1024));
    await waitFor(() => auths() > before && coord.devices().get(deviceId)?.authed, 10000, 'reconnect after a frame over the socket cap');
    assert.ok(unit.logs.find('coordinator connection error').some((l) => /over 4194304 bytes/.test(String(l.err))));
    assert.equal((await coord.ping(deviceId)).type, 'pong');
    assert.equal(coord.droppedStatus, 0);
  }));

test('a replayed pairing token is refused and the refusal is shown in /health and the log', async () => {
  const { dir, cleanup } = await tempDir();
  const dir2 = await tempDir();
  const coord = await startCoordinator();
  const token = coord.newToken();
  const patch = { var: { ...TEST_VAR, coordinator: coord.pairLink(token) } } as never;
  const a = await startUnit({ dataDir: dir, patch });
  let b: TestUnit | null = null;
  try {
    await waitFor(() => coord.devices().get(a.app.deviceId)?.paired, 10000, 'first unit paired');
    b = await startUnit({ dataDir: dir2.dir, patch });
    const reject = await coord.waitFor((m) => m.type === 'pair_request' && m.deviceId === b!.app.deviceId).then(() =>
      waitFor(() => b!.app.varNode.view().lastReject, 5000, 'rejection'),
    );
    assert.equal(reject.reason, 'invalid_token');
    const health = (await (await fetch(`http://127.0.0.1:${b.app.httpPort}/health`)).json()) as { coordinator: { state: string; lastReject: { reason: string } } };
    assert.equal(health.coordinator.state, 'needs_pairing');
    assert.equal(health.coordinator.lastReject.reason, 'invalid_token');
    assert.equal(b.logs.find('pairing refused').length, 1);
    await new Promise((r) => setTimeout(r, 1500));
    const tries = coord.received.filter((r) => r.msg?.type === 'pair_request' && r.deviceId === b!.app.deviceId).length;
    assert.equal(tries, 1, 'a refused token is not tried again');
    assert.equal(coord.devices().get(b.app.deviceId)?.paired ?? false, false);
  } finally {
    await b?.stop();
    await a.stop();
    await coord.close();
    await cleanup();
    await dir2.cleanup();
  }
});
