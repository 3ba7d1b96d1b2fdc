/**
 * A camera that sends H.264 with keyframes 7 s apart, captured by stream copy (what encoder.codec
 * auto picks for a USB camera offering H.264): segments can end only at keyframes, so no segment
 * is listed for 7 s. Capture must still count as running (the open segment grows), warn once
 * about the long segments, and still restart when video really stops.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { CapturePipeline, type CaptureHealth } from '../../src/capture/pipeline.js';
import { SegmentStore } from '../../src/capture/segment-store.js';
import { createLogger } from '../../src/log.js';
import { systemClock } from '../../src/util/clock.js';
import { LogSink, tempDir, testConfig, waitFor } from '../helpers/device.js';

const GOP_SEC = 7;
const FPS = 30;

test('stream copy from a camera with 7-s keyframes: healthy, not restarted as stalled, one warning naming the interval; a real stall still restarts', async (t) => {
  const tmp = await tempDir('arenacam-longgop-');
  let cap: CapturePipeline | null = null;
  t.after(async () => {
    await cap?.stop();
    camera.kill('SIGCONT');
    camera.kill('SIGKILL');
    await tmp.cleanup();
  });
  const fifo = join(tmp.dir, 'camera.h264');
  execFileSync('mkfifo', [fifo]);
  // The "camera": real H.264 from libx264, one keyframe every 7 s, written as it is encoded.
  const camera = spawn('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-f', 'lavfi', '-i', `testsrc2=size=160x120:rate=${FPS}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-bf', '0',
    '-g', String(GOP_SEC * FPS), '-keyint_min', String(GOP_SEC * FPS), '-sc_threshold', '0',
    '-f', 'h264', '-y', fifo,
  ], { stdio: 'ignore' });

  const config = testConfig(tmp.dir, {
    camera: { source: 'ffmpeg', input: ['-f', 'h264', '-framerate', String(FPS), '-i', fifo], width: 160, height: 120, fps: FPS },
    encoder: { codec: 'copy' },
  });
  const logs = new LogSink();
  const log = createLogger('debug', logs);
  const store = new SegmentStore(join(tmp.dir, 'segments'), { ffprobePath: 'ffprobe', log });
  const pipe = new CapturePipeline({ config, store, clock: systemClock, log, setprivPath: null });
  cap = pipe;
  const health: CaptureHealth[] = [];
  pipe.on('health', (h: CaptureHealth) => health.push(h));
  const startedAt = Date.now();
  await pipe.start();

  await waitFor(() => pipe.status().alive, 20000, 'capture to become healthy');
  // Three keyframe intervals in: two whole segments listed, well past the 5-s stall limit.
  await waitFor(() => store.size >= 2 && Date.now() - startedAt > 15000, 30000, 'two listed segments');
  assert.equal(pipe.status().restarts, 0, 'never restarted');
  assert.deepEqual(logs.find('no video from ffmpeg'), [], 'never taken for stalled');
  assert.deepEqual(health.map((h) => [h.alive, h.error]), [[true, null]], 'health never went bad');
  const lengths = store.all().map((s) => (s.endMs - s.startMs) / 1000);
  t.diagnostic(`segment lengths: ${lengths.map((x) => x.toFixed(2)).join(', ')} s`);
  assert.ok(lengths.every((x) => x > 5), 'segments follow the keyframes');

  const warned = logs.find('segments are');
  assert.equal(warned.length, 1, 'one warning, however many long segments');
  const interval = warned[0].keyframeIntervalSec as number;
  assert.ok(Math.abs(interval - GOP_SEC) < 1, `measured keyframe interval ${interval} s`);
  assert.match(String(warned[0].msg), /keyframe only every [\d.]+ s .* set camera\.format mjpeg or encoder\.codec libx264/);
  assert.equal(warned[0].level, 40, 'a warning');

  // Video really stops (the camera hangs): the open segment stops growing and capture restarts.
  camera.kill('SIGSTOP');
  const stalled = await waitFor(() => health.find((h) => !h.alive && h.error), 20000, 'the stall to be reported');
  assert.match(stalled.error!, /^capture stalled: no video for \d+(\.\d)? s$/);
  await waitFor(() => pipe.status().restarts >= 1, 15000, 'a restart after the stall');
  assert.equal(logs.find('no video from ffmpeg').length >= 1, true);
});
