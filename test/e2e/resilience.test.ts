/** End to end: a dying ffmpeg, a daemon killed with SIGKILL mid-recording, retention, a full disk. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile, mkdir, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startUnit, spawnUnit, tempDir, testConfig, waitFor, canMountTmpfs } from '../helpers/device.js';
import { sendCommand } from '../helpers/controller.js';
import { probeDuration } from '../../src/media/probe.js';

const HOST = '127.0.0.1';

/** ffmpeg decodes the whole file without a single error. */
function decodesCleanly(path: string): void {
  const out = execFileSync('ffmpeg', ['-v', 'error', '-i', path, '-f', 'null', '-'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(out.trim(), '', `decode errors: ${out}`);
}

test('ffmpeg dying puts the unit in error with a message, and it recovers by itself', async (t) => {
  const tmp = await tempDir();
  const unit = await startUnit({ dataDir: tmp.dir, patch: { capture: { restartMinMs: 300 } } as never });
  t.after(async () => {
    await unit.stop();
    await tmp.cleanup();
  });
  const port = unit.app.multicamPort;
  await waitFor(() => unit.app.capture.status().alive, 15000, 'capture to run');
  const pid = Number((await readFile(join(tmp.dir, 'capture.pid'), 'utf8')).trim());
  process.kill(pid, 'SIGKILL');
  const err = await waitFor(async () => {
    const r = await sendCommand(HOST, port, 'HEARTBEAT');
    return r.kind === 'error' ? r : null;
  }, 5000, 'the error status');
  assert.equal(err.body.status, 'error');
  assert.match(err.kind === 'error' ? err.message : '', /ffmpeg exited \(signal SIGKILL\)/);
  await waitFor(async () => (await sendCommand(HOST, port, 'HEARTBEAT')).body.status === 'ready', 10000, 'recovery');
  assert.equal(unit.app.capture.status().restarts, 1);
  assert.ok(unit.logs.find('capture failed; restarting').length === 1, 'the failure is logged with its cause');
});

test('a daemon killed with SIGKILL mid-recording finishes the recording on the next start, losing at most one segment', async (t) => {
  const tmp = await tempDir();
  const config = testConfig(tmp.dir, { multicam: { host: '127.0.0.1', port: 0 } });
  const first = await spawnUnit(tmp.dir, config, 'first');
  t.after(async () => {
    first.proc.kill('SIGKILL');
    await tmp.cleanup();
  });
  await waitFor(async () => (await sendCommand(HOST, first.multicamPort, 'HEARTBEAT').catch(() => null))?.body.status === 'ready', 20000, 'ready');
  const startMs = Date.now();
  const r = await sendCommand(HOST, first.multicamPort, 'START_RECORDING', { timestamp: startMs / 1000 });
  assert.equal(r.body.status, 'recording');
  await new Promise((res) => setTimeout(res, 4000));
  const killedAt = Date.now();
  first.proc.kill('SIGKILL');
  await first.exited;
  // ffmpeg runs in its own process group but under a parent-death signal: the kernel tells it to
  // close its segment and exit when the daemon dies, even by SIGKILL.
  await waitFor(async () => (await processesMentioning(tmp.dir)).length === 0, 5000, 'the orphaned ffmpeg to exit');
  const second = await spawnUnit(tmp.dir, config, 'second');
  const readyAt = Date.now();
  t.after(() => second.proc.kill('SIGKILL'));
  const list = await sendCommand(HOST, second.multicamPort, 'LIST_FILES');
  const files = list.body.files as Array<{ fileName: string; fileSize: number }>;
  assert.equal(files.length, 1, 'the interrupted recording is listed');
  assert.equal(files[0].fileName, `video_${Math.floor(startMs / 1000)}.mp4`);
  const path = join(tmp.dir, 'recordings', files[0].fileName);
  decodesCleanly(path);
  const dur = await probeDuration(path, 'ffprobe');
  const expected = (killedAt - startMs) / 1000;
  assert.ok(dur >= expected - 1.0 - 0.2, `recovered ${dur.toFixed(2)} s of ${expected.toFixed(2)} s: more than one segment lost`);
  // The orphaned ffmpeg kept capturing until the second daemon reaped it; that footage may be in.
  assert.ok(dur <= (readyAt - startMs) / 1000 + 0.2, `recovered ${dur.toFixed(2)} s, longer than captured`);
  assert.match(second.log(), /an unfinished recording was finished/);
  assert.equal((await sendCommand(HOST, second.multicamPort, 'HEARTBEAT')).body.status, 'ready');
  second.proc.kill('SIGINT');
  assert.equal(await second.exited, 0, 'clean shutdown');
});

test('pre-roll past its retention is deleted but the segments of a running recording are kept', async (t) => {
  const tmp = await tempDir();
  const unit = await startUnit({ dataDir: tmp.dir, patch: { segments: { retentionMinutes: 0.1 }, storage: { checkMs: 200 } } as never });
  t.after(async () => {
    await unit.stop();
    await tmp.cleanup();
  });
  const port = unit.app.multicamPort;
  await waitFor(() => unit.app.capture.status().alive, 15000, 'capture');
  // Let pre-roll age past the 6 s retention, then record for longer than the retention.
  await waitFor(() => unit.app.store.all()[0].startMs < Date.now() - 7000, 20000, 'old pre-roll');
  assert.ok(unit.app.store.all()[0].endMs > Date.now() - 6000 - 1500, 'pre-roll older than the retention is deleted');
  const startMs = Date.now();
  await sendCommand(HOST, port, 'START_RECORDING', { timestamp: startMs / 1000 });
  await new Promise((r) => setTimeout(r, 8000));
  const segs = unit.app.store.all();
  // The start may fall after a segment's last frame and before the next segment's first: then the
  // first frame at or after it opens the next segment, less than a frame (30 fps) later.
  assert.ok(segs[0].startMs < startMs + 1000 / 30, `the segment holding the first frame at or after the start is kept: start ${startMs}, segments ${JSON.stringify(segs.slice(0, 3).map((s) => [s.name, s.startMs, s.endMs]))}`);
  assert.ok(segs[0].endMs > startMs - 1500, 'older pre-roll is gone');
  const onDisk = (await readdir(join(tmp.dir, 'segments'))).filter((n) => n.endsWith('.ts'));
  const indexed = new Set(segs.map((x) => x.name));
  const unindexed = onDisk.filter((n) => !indexed.has(n));
  // The segment being written, and at most one just closed whose list line is still on its way.
  const newest = onDisk.sort().slice(-2);
  assert.ok(unindexed.every((n) => newest.includes(n)), `only the newest segments are not indexed yet: ${unindexed.join(', ')}`);
  assert.ok(segs.every((x) => onDisk.includes(x.name)), 'every indexed segment is on disk');
  const stop = await sendCommand(HOST, port, 'STOP_RECORDING', { timestamp: Date.now() / 1000 }, 60000);
  assert.equal(stop.kind, 'stop');
  const dur = await probeDuration(join(tmp.dir, 'recordings', String(stop.body.fileName)), 'ffprobe');
  assert.ok(dur > 7.5, `the whole recording survived retention (${dur} s)`);
  await waitFor(() => unit.app.store.all()[0].endMs > Date.now() - 6000 - 1500, 8000, 'retention to resume after the stop');
});

/** Pids of processes whose command line mentions `text` (other than this one). */
async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(text)) pids.push(Number(name));
  }
  return pids;
}

test('a signal during start-up stops everything started so far: no ffmpeg is left behind', async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const file = join(tmp.dir, 'early.json');
  await writeFile(file, JSON.stringify(testConfig(tmp.dir)));
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  const proc = spawn(process.execPath, [cli, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  await waitFor(() => out.includes('starting ffmpeg'), 20000, 'ffmpeg to be started');
  proc.kill('SIGINT');
  assert.equal(await exited, 0, out.slice(-1500));
  assert.match(out, /start-up interrupted|arenacam stopped/);
  await waitFor(async () => (await processesMentioning(tmp.dir)).length === 0, 5000, 'no process of this unit left');
});

test('a full disk stops the recording cleanly with an error status, and nothing recorded is damaged', async (t) => {
  const tmp = await tempDir();
  const mnt = join(tmp.dir, 'small');
  await mkdir(mnt);
  if (!canMountTmpfs(mnt)) {
    t.skip('cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)');
    await tmp.cleanup();
    return;
  }
  const unit = await startUnit({
    dataDir: mnt,
    patch: { storage: { minFreeMB: 12, checkMs: 200 }, encoder: { bitrateKbps: 4000 }, camera: { width: 640, height: 360 } } as never,
  });
  t.after(async () => {
    await unit.stop();
    execFileSync('umount', ['-l', mnt]);
    await tmp.cleanup();
  });
  const port = unit.app.multicamPort;
  await waitFor(() => unit.app.capture.status().alive, 15000, 'capture');
  assert.equal((await sendCommand(HOST, port, 'START_RECORDING', { timestamp: Date.now() / 1000 })).body.status, 'recording');
  await new Promise((r) => setTimeout(r, 2500));
  // Something else eats the card: leave about 10 MB, below the 12 MB floor.
  const { freeBytes } = await import('node:fs/promises').then((fs) => fs.statfs(mnt)).then((s) => ({ freeBytes: s.bavail * s.bsize }));
  const filler = join(mnt, 'filler.bin');
  await writeFile(filler, Buffer.alloc(Math.max(0, freeBytes - 10e6)));
  const err = await waitFor(async () => {
    const r = await sendCommand(HOST, port, 'HEARTBEAT');
    return r.kind === 'error' ? r : null;
  }, 10000, 'the storage error');
  assert.match(err.kind === 'error' ? err.message : '', /storage full/);
  const list = await waitFor(async () => {
    const l = await sendCommand(HOST, port, 'LIST_FILES');
    return (l.body.files as unknown[]).length ? l : null;
  }, 10000, 'the stopped recording');
  const file = (list.body.files as Array<{ fileName: string }>)[0];
  decodesCleanly(join(mnt, 'recordings', file.fileName));
  assert.ok((await probeDuration(join(mnt, 'recordings', file.fileName), 'ffprobe')) > 2, 'the recording holds what was captured');
  const refused = await sendCommand(HOST, port, 'START_RECORDING', { timestamp: Date.now() / 1000 });
  assert.equal(refused.kind, 'error');
  assert.match(refused.kind === 'error' ? refused.message : '', /storage full/);
  await rm(filler);
  await waitFor(async () => (await sendCommand(HOST, port, 'HEARTBEAT')).body.status === 'ready', 10000, 'recovery once space is back');
});
