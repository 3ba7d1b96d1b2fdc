/**
 * libcamera may configure another stream than rpicam-vid asked for; rpicam-vid then prints
 * "Stream configuration adjusted" (rpicam-apps core/rpicam_app.cpp, LOG level 1) and libcamera
 * logs the streams it configured. The lines below are real rpicam-hello output from a Pi 4 with a
 * Camera Module 3 (libcamera v0.2.0), published in a Zenn-format setup note "RaspberryPiの環境設定" by hattori-sat;
 * there the adjustment was harmless (the size is the one asked for), so it alone is no error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exitMessage, rpicamConfiguredStream, rpicamStreamMismatch, RPICAM_PREFIX, shellQuote as q } from '../../src/capture/ffmpeg-args.js';
import { CapturePipeline, type CaptureHealth } from '../../src/capture/pipeline.js';
import { SegmentStore } from '../../src/capture/segment-store.js';
import { defaults } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { systemClock } from '../../src/util/clock.js';
import { LogSink, tempDir, testConfig, waitFor } from '../helpers/device.js';

const PUBLISHED = [
  'Mode selection for 2304:1296:12:P',
  '    SRGGB10_CSI2P,1536x864/0 - Score: 3400',
  '    SRGGB10_CSI2P,2304x1296/0 - Score: 1000',
  '    SRGGB10_CSI2P,4608x2592/0 - Score: 1900',
  'Stream configuration adjusted',
  '[0:07:40.725946928] [1965]  INFO Camera camera.cpp:1183 configuring streams: (0) 2304x1296-YUV420 (1) 2304x1296-SBGGR10_CSI2P',
  '[0:07:40.726534589] [1968]  INFO RPI vc4.cpp:611 Sensor: /base/soc/i2c0mux/i2c@1/imx708@1a - Selected sensor format: 2304x1296-SBGGR10_1X10 - Selected unicam format: 2304x1296-pBAA',
];
const cam = (width: number, height: number) => ({ ...defaults().camera, source: 'rpicam' as const, width, height });

test('the configured stream is read from libcamera\'s line; only a size other than the asked one is an error', () => {
  assert.deepEqual(rpicamConfiguredStream(PUBLISHED[5]), { width: 2304, height: 1296, format: 'YUV420' });
  assert.equal(rpicamConfiguredStream(PUBLISHED[4]), null);
  assert.equal(rpicamStreamMismatch(PUBLISHED[5], cam(2304, 1296)), null, 'adjusted, but to the size asked for');
  assert.equal(rpicamStreamMismatch(PUBLISHED[5], cam(2305, 1297)), null, 'odd sizes are asked for rounded down');
  assert.equal(
    rpicamStreamMismatch(PUBLISHED[5], cam(1920, 1080)),
    'rpicam-vid: libcamera adjusted the stream configuration to 2304x1296 (YUV420) instead of 1920x1080; the frames would be misread, so capture stops. Set camera.width/height to a size this camera gives (rpicam-hello --list-cameras lists its modes)',
  );
  const tail = [...PUBLISHED.map((l) => RPICAM_PREFIX + l), 'pipe:0: End of file'];
  assert.equal(
    exitMessage(tail, { code: 0, signal: null }, { width: 1920, height: 1080 }),
    `rpicam-vid stopped: ${PUBLISHED[6]}; ffmpeg exited (code 0): pipe:0: End of file (rpicam-vid said "Stream configuration adjusted": libcamera configured 2304x1296-YUV420, not the 1920x1080 asked for)`,
  );
  assert.match(exitMessage(tail, { code: 0, signal: null }, { width: 2304, height: 1296 }), /libcamera configured 2304x1296-YUV420 as asked\)$/);
  assert.doesNotMatch(exitMessage([`${RPICAM_PREFIX}ERROR: *** no cameras available ***`], { code: 1, signal: null }), /adjusted/);
});

test('through the real pipe: rpicam-vid reporting another stream size stops the run with that as the capture error', async (t) => {
  const tmp = await tempDir('arenacam-rpicam-adj-');
  let cap: CapturePipeline | null = null;
  t.after(async () => {
    await cap?.stop();
    await tmp.cleanup();
  });
  // The stand-in prints the published lines, then sends frames of the asked size (without the
  // check, capture would run on; on a real Pi the frames would be 2304x1296 and misread).
  const lines = join(tmp.dir, 'rpicam-stderr.txt');
  await writeFile(lines, PUBLISHED.join('\n') + '\n');
  const fake = join(tmp.dir, 'rpicam-vid');
  await writeFile(fake, `#!/bin/sh
W=; H=; F=
while [ $# -gt 0 ]; do
  case "$1" in --width) W=$2; shift;; --height) H=$2; shift;; --framerate) F=$2; shift;; esac
  shift
done
cat ${q(lines)} >&2
exec ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i "testsrc2=size=\${W}x\${H}:rate=\${F}" -pix_fmt yuv420p -f rawvideo -
`);
  await chmod(fake, 0o755);
  const config = testConfig(tmp.dir, { camera: { source: 'rpicam', width: 320, height: 240, fps: 30, rpicamPath: fake }, capture: { restartMinMs: 5000 } });
  const logs = new LogSink();
  const log = createLogger('debug', logs);
  const store = new SegmentStore(join(tmp.dir, 'segments'), { ffprobePath: 'ffprobe', log });
  const pipe = new CapturePipeline({ config, store, clock: systemClock, log, setprivPath: null });
  cap = pipe;
  const health: CaptureHealth[] = [];
  pipe.on('health', (h: CaptureHealth) => health.push(h));
  await pipe.start();
  const failed = await waitFor(() => health.find((h) => !h.alive && h.error), 15000, 'the run to be stopped');
  assert.match(failed.error!, /^rpicam-vid: libcamera adjusted the stream configuration to 2304x1296 \(YUV420\) instead of 320x240; /);
  assert.equal(pipe.status().restarts, 1);
  assert.equal(logs.find('libcamera adjusted the stream configuration').filter((l) => l.level === 50).length, 1, 'logged once as an error');
});
