/**
 * camera.source auto (the installed config) on a unit with no camera: the unit still comes up,
 * says "no camera found" over MultiCam and /health, keeps looking with the restart backoff, and
 * starts capturing when a camera appears, without being restarted. The camera that appears is
 * a CSI camera (rpicam-hello's real listing from a Pi 5) whose rpicam-vid is a stand-in passing
 * on real raw frames from ffmpeg's test source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sendMultiCam } from '../../src/protocols/multicam/client.js';
import { parseRpicamCameras } from '../../src/hw/camera-parse.js';
import type { CameraDiscovery } from '../../src/hw/cameras.js';
import { startUnit, tempDir, waitFor } from '../helpers/device.js';
import { piFixture } from '../helpers/pi-fixtures.js';

const W = 320;
const H = 240;
const FPS = 30;

/** A stand-in rpicam-vid: endless raw YUV420 of the asked size on stdout, from ffmpeg's test source. */
const fakeRpicam = `#!/bin/sh
W=; H=; F=
while [ $# -gt 0 ]; do
  case "$1" in --width) W=$2; shift;; --height) H=$2; shift;; --framerate) F=$2; shift;; esac
  shift
done
exec ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i "testsrc2=size=\${W}x\${H}:rate=\${F}" -pix_fmt yuv420p -f rawvideo -
`;

test('no camera at start-up: the unit runs and reports it, looks again with backoff, and captures once a camera appears', async (t) => {
  const tmp = await tempDir('arenacam-nocam-');
  let unit: Awaited<ReturnType<typeof startUnit>> | null = null;
  t.after(async () => {
    await unit?.stop();
    await tmp.cleanup();
  });
  const rpicamPath = join(tmp.dir, 'rpicam-vid');
  await writeFile(rpicamPath, fakeRpicam);
  await chmod(rpicamPath, 0o755);

  let present = false;
  let asked = 0;
  const cameras: CameraDiscovery = {
    usb: async () => ({ cameras: [], note: null }),
    csi: async () => {
      asked++;
      return { cameras: present ? parseRpicamCameras(piFixture('libcamera-hello-list-cameras.pi5.imx708-cm3.txt')) : [], note: null };
    },
  };
  const patch = { camera: { source: 'auto', width: W, height: H, fps: FPS, rpicamPath }, capture: { restartMinMs: 300, restartMaxMs: 1200 } };
  const u = await startUnit({ dataDir: join(tmp.dir, 'data'), patch, seams: { cameras } });
  unit = u;
  const { app } = u;
  const base = `http://127.0.0.1:${app.httpPort}`;
  const noCamera = /^camera\.source auto: no camera found: rpicam-hello lists no CSI camera and there is no USB camera/;

  assert.equal(u.logs.find('no camera found; the unit starts without capture').length, 1);
  assert.equal(app.capture.status().alive, false);
  assert.match(app.capture.status().error ?? '', noCamera);
  const status = await sendMultiCam('127.0.0.1', app.multicamPort, { command: 'DEVICE_STATUS' }, 5000);
  assert.equal(status.status, 'error');
  assert.match(String(status.message), noCamera);
  const res = await fetch(`${base}/health`);
  assert.equal(res.status, 503);
  const health = (await res.json()) as { ok: boolean; state: string; message: string; capture: { alive: boolean; error: string } };
  assert.deepEqual([health.ok, health.state, health.capture.alive], [false, 'error', false]);
  assert.match(health.capture.error, noCamera);
  assert.match(health.message, noCamera);

  // It keeps looking, each time a little later (restartMinMs doubling up to restartMaxMs).
  await waitFor(() => u.logs.find('still no camera').length >= 3, 15000, 'three more looks');
  const delays = u.logs.find('still no camera').map((l) => l.retryInMs as number);
  assert.deepEqual(delays.slice(0, 3), [600, 1200, 1200]);
  assert.ok(asked >= 4, `discovery asked ${asked} times`);
  assert.equal(app.store.size, 0);

  // A camera is connected: the next look finds it and capture starts, in the same unit.
  present = true;
  await waitFor(() => app.capture.status().alive && app.store.size >= 2, 30000, 'capture from the camera that appeared');
  assert.deepEqual(u.logs.find('camera chosen').map((l) => [l.source, l.size, l.fps]), [['rpicam', `${W}x${H}`, FPS]]);
  assert.equal(u.logs.find('camera found; starting capture').length, 1);
  assert.equal(app.capture.status().error, null);
  const after = await sendMultiCam('127.0.0.1', app.multicamPort, { command: 'DEVICE_STATUS' }, 5000);
  assert.equal(after.status, 'ready');
  const healthy = await fetch(`${base}/health`);
  assert.equal(healthy.status, 200);
  assert.equal(((await healthy.json()) as { ok: boolean }).ok, true);
});
