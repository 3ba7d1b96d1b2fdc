/** The VAR node at its edges: commands before authentication, profile changes, a full disk, stops from elsewhere. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, statfs, readFile } from 'node:fs/promises';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { startCoordinator, type Coordinator } from '../helpers/coordinator.js';
import { withPairedUnit, TEST_VAR } from '../helpers/var-unit.js';
import { startUnit, tempDir, waitFor, canMountTmpfs, type TestUnit } from '../helpers/device.js';

const run = promisify(execFile);

async function paired(coord: Coordinator, dataDir: string, patch: Record<string, unknown> = {}): Promise<TestUnit> {
  const unit = await startUnit({ dataDir, patch: { var: { ...TEST_VAR, coordinator: coord.pairLink(coord.newToken()) }, ...patch } as never });
  await waitFor(() => coord.devices().get(unit.app.deviceId)?.authed, 10000, 'pairing');
  return unit;
}

test('commands that arrive before pairing or authentication are refused, and no status is sent before it', async () => {
  const { dir, cleanup } = await tempDir();
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const port = (wss.address() as { port: number }).port;
  const got: Array<{ type: string; payload: Record<string, unknown> }> = [];
  wss.on('connection', (ws: WebSocket) => {
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      got.push(m);
      if (m.type === 'pair_request') {
        // Answer nothing; try to drive the camera instead.
        for (const type of ['start_record', 'mark', 'request_clip', 'stop_record']) {
          ws.send(JSON.stringify({ type, protoVersion: '1.0', deviceId: 'coordinator', sessionId: 'S', payload: { markId: 'M', sessionId: 'S' } }));
        }
      }
    });
  });
  const unit = await startUnit({ dataDir: dir, patch: { var: { ...TEST_VAR, coordinator: `var://pair?host=127.0.0.1&port=${port}&token=ABCD23` } } as never });
  try {
    await waitFor(() => got.filter((m) => m.type === 'error').length >= 4, 10000, 'four refusals');
    const errors = got.filter((m) => m.type === 'error');
    assert.ok(errors.every((e) => e.payload.code === 'NOT_AUTHENTICATED'), JSON.stringify(errors));
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(got.filter((m) => m.type === 'status').length, 0, 'no status before pairing');
    assert.equal(unit.app.device.isRecording(), false);
  } finally {
    await unit.stop();
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
    await cleanup();
  }
});

test('a start_record profile restarts capture only when it differs, and the recording has that profile', () =>
  withPairedUnit({}, async ({ unit, coord, id, dataDir: dir }) => {
    await waitFor(() => unit.app.capture.status().alive, 15000, 'capture');
    const profile = { resolution: '160x120', fps: 15, bitrate: 300000 };
    coord.startRecord(id, 'P1', profile, {}, 'payload');
    const started = await coord.waitFor((m) => m.type === 'recording_started');
    assert.equal(started.sessionId, 'P1', 'sessionId read from the payload');
    await new Promise((r) => setTimeout(r, 2000));
    coord.stopRecord(id, 'P1');
    const stopped = await coord.waitFor((m) => m.type === 'recording_stopped');
    const file = join(dir, 'recordings', stopped.payload.fileName);
    const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames,duration', '-of', 'json', file]);
    const s = JSON.parse(stdout).streams[0];
    assert.equal(`${s.width}x${s.height}`, '160x120');
    const fps = Number(s.nb_read_frames) / Number(s.duration);
    assert.ok(Math.abs(fps - 15) < 1.5, `recorded at ${fps.toFixed(1)} fps`);
    assert.equal(unit.logs.find('capture settings change').length, 1);
    coord.startRecord(id, 'P2', profile);
    await coord.waitFor((m) => m.type === 'recording_started' && m.sessionId === 'P2');
    assert.equal(unit.logs.find('capture settings change').length, 1, 'the same profile again: no restart');
    // A MultiCam STOP (or anything else) ending the recording is reported to the coordinator.
    const r = await unit.app.device.stopRecording(Date.now());
    assert.equal(r.kind, 'stopped');
    const ended = await coord.waitFor((m) => m.type === 'recording_stopped' && m.sessionId === 'P2');
    assert.equal(ended.payload.fileName, r.kind === 'stopped' ? r.fileName : null);
    await waitFor(() => coord.devices().get(id)?.recording === false, 3000, 'the coordinator no longer believes it records');
  }));

test('on a full disk start_record and request_clip answer LOW_STORAGE, and nothing is lost', async (t) => {
  const tmp = await tempDir();
  const mnt = join(tmp.dir, 'small');
  await mkdir(mnt);
  if (!canMountTmpfs(mnt, 40)) {
    t.skip('cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)');
    await tmp.cleanup();
    return;
  }
  const coord = await startCoordinator();
  const unit = await paired(coord, mnt, { storage: { minFreeMB: 12, checkMs: 200 } });
  const id = unit.app.deviceId;
  t.after(async () => {
    await unit.stop();
    await coord.close();
    execFileSync('umount', ['-l', mnt]);
    await tmp.cleanup();
  });
  coord.startRecord(id, 'F1', null);
  await coord.waitFor((m) => m.type === 'recording_started');
  assert.ok(coord.mark(id, 'FM1'));
  await coord.waitFor((m) => m.type === 'mark_ack');
  const s = await statfs(mnt);
  await writeFile(join(mnt, 'filler.bin'), Buffer.alloc(Math.max(0, s.bavail * s.bsize - 8e6)));
  const stopped = await coord.waitFor((m) => m.type === 'recording_stopped', 15000);
  assert.ok(stopped.payload.fileName, 'the recording was finished cleanly into a file');
  const clip = await coord.requestClip(id, 'FM1', { fromMs: 1000, toMs: 0 });
  assert.equal(clip.type, 'error');
  assert.equal(clip.payload.code, 'LOW_STORAGE');
  assert.match(clip.payload.message, /storage full/);
  coord.startRecord(id, 'F2', null);
  const refused = await coord.waitFor((m) => m.type === 'error' && m.payload.code === 'LOW_STORAGE' && m.sessionId === 'F2');
  assert.match(refused.payload.message, /storage full/);
  assert.ok(unit.app.device.listRecordings().some((r) => r.fileName === stopped.payload.fileName));
});

test('results made while the coordinator is away reach it after the reconnect; recording and clips carry on', () =>
  withPairedUnit({}, async ({ unit, coord, id, dataDir: dir }) => {
    await waitFor(() => unit.app.store.size >= 3, 15000, 'pre-roll');
    coord.startRecord(id, 'D1', null);
    await coord.waitFor((m) => m.type === 'recording_started');
    assert.ok(coord.mark(id, 'DM1'));
    await coord.waitFor((m) => m.type === 'mark_ack');
    const clip = coord.requestClip(id, 'DM1', { fromMs: 1000, toMs: 2500 });
    coord.offlineNow();
    await new Promise((r) => setTimeout(r, 4000));
    assert.ok(unit.app.device.isRecording(), 'still recording while the coordinator is away');
    assert.equal(unit.app.clips.list().length, 1, 'the clip was cut while disconnected');
    coord.online();
    const ready = await clip;
    assert.equal(ready.type, 'clip_ready');
    assert.equal((await coord.download(ready.payload.url)).status, 200);
    assert.equal(unit.logs.find('results kept while disconnected delivered').length, 1);
    const auths = coord.received.filter((r) => r.msg?.type === 'auth').length;
    assert.ok(auths >= 1, 'it came back with its key');
    coord.stopRecord(id, 'D1');
    await coord.waitFor((m) => m.type === 'recording_stopped');
  }));

test('a clip downloaded in full is removed after clips.keepDeliveredHours; one only partly downloaded is kept', () =>
  withPairedUnit({ patch: { clips: { keepDeliveredHours: 0 }, storage: { minFreeMB: 1, checkMs: 200 } } }, async ({ unit, coord, id, dataDir: dir }) => {
    await waitFor(() => unit.app.store.size >= 3, 15000, 'pre-roll');
    coord.startRecord(id, 'K1', null);
    await coord.waitFor((m) => m.type === 'recording_started');
    assert.ok(coord.mark(id, 'KM1'));
    await coord.waitFor((m) => m.type === 'mark_ack');
    const a = await coord.requestClip(id, 'KM1', { fromMs: 1500, toMs: 0, clipId: 'keep-a' });
    const b = await coord.requestClip(id, 'KM1', { fromMs: 1500, toMs: 0, clipId: 'keep-b' });
    assert.deepEqual([a.type, b.type], ['clip_ready', 'clip_ready']);
    const part = await fetch(b.payload.url, { headers: { Range: 'bytes=0-99' } });
    assert.equal(part.status, 206);
    assert.equal((await part.arrayBuffer()).byteLength, 100);
    const full = await coord.download(a.payload.url);
    assert.equal(full.status, 200);
    await waitFor(() => !unit.app.clips.get('keep-a'), 5000, 'the delivered clip removed');
    assert.equal((await coord.download(a.payload.url)).status, 404);
    await new Promise((r) => setTimeout(r, 600));
    assert.ok(unit.app.clips.get('keep-b'), 'a clip not delivered in full is kept');
    assert.equal((await coord.download(b.payload.url)).status, 200);
  }));

test('a clip still waiting for its post-roll at shutdown is finished with what was captured and announced', () =>
  withPairedUnit({}, async ({ unit, coord, id, dataDir: dir }) => {
    await waitFor(() => unit.app.store.size >= 3, 15000, 'pre-roll');
    coord.startRecord(id, 'Z1', null);
    await coord.waitFor((m) => m.type === 'recording_started');
    assert.ok(coord.mark(id, 'ZM1'));
    const ack = await coord.waitFor((m) => m.type === 'mark_ack');
    const ready = coord.requestClip(id, 'ZM1', { fromMs: 1000, toMs: 60000 });
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    await unit.stop();
    assert.ok(Date.now() - t0 < 8000, `shutdown took ${Date.now() - t0} ms`);
    const msg = await ready;
    assert.equal(msg.type, 'clip_ready');
    assert.ok(msg.payload.durationMs > 1000 && msg.payload.durationMs < 10000, `a short clip: ${msg.payload.durationMs} ms`);
    const saved = JSON.parse(await readFile(join(dir, 'clips', 'clips.json'), 'utf8')) as Array<{ clipId: string; firstFrameMs: number }>;
    assert.equal(saved[0].clipId, msg.payload.clipId);
    assert.ok(Math.abs(saved[0].firstFrameMs - (ack.payload.deviceTs - 1000)) < 34);
    assert.ok(unit.logs.find('clips being made end at the last frame captured').length === 1);
  }));
