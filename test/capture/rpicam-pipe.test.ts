/**
 * The CSI pipe through a real pipe: a stand-in `rpicam-vid` (a script taking rpicam-vid's
 * arguments) passes on raw YUV420 frames, rows padded to 64 bytes like the Pi's ISP writes
 * them, from the stamp camera at its real rate; a whole unit captures them. Checks: stamps equal
 * capture times, rpicam-vid's death is reported with its stderr and capture restarts, and
 * nothing is left over after stop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildCaptureCommand, exitMessage, rpicamStride, RPICAM_PREFIX, shellQuote as q } from '../../src/capture/ffmpeg-args.js';
import { spawnGroup } from '../../src/util/child.js';
import { defaults } from '../../src/config/load.js';
import type { CaptureHealth } from '../../src/capture/pipeline.js';
import type { Segment } from '../../src/capture/segment-store.js';
import { startUnit, tempDir, waitFor } from '../helpers/device.js';
import { startStampCamera } from '../helpers/stamp-camera.js';
import { decodeTimecodes } from '../helpers/decode-frames.js';
import { piFixture, piFixtureDir } from '../helpers/pi-fixtures.js';
import { parseRpicamCameras } from '../../src/hw/camera-parse.js';
import type { CameraDiscovery } from '../../src/hw/cameras.js';

const W = 352; // not a multiple of 64: rows arrive padded to 384 and are cropped
const H = 240;
const FPS = 30;
const run = promisify(execFile);

/**
 * The stand-in rpicam-vid. A padded YUV420 frame of WxH is, byte for byte, a gray frame of
 * stride x 1.5H: its first H rows are the Y plane (the timecode sits there), the rest fills the
 * chroma planes. So the stamp camera paints stride x 1.5H gray frames and the stand-in passes
 * them on unchanged (cat): no converter adds latency between capture and the pipe.
 */
function fakeRpicam(fifo: string, argsFile: string, pidFile: string): string {
  return `#!/bin/sh
printf '%s\\n' "$*" >> ${q(argsFile)}
W=; H=
while [ $# -gt 0 ]; do
  case "$1" in --width) W=$2; shift;; --height) H=$2; shift;; esac
  shift
done
if [ "$W" != ${W} ] || [ "$H" != ${H} ]; then echo "ERROR: *** this stand-in camera only does ${W}x${H} ***" >&2; exit 1; fi
sleep 1 # rpicam-vid takes about a second to start the camera; ffmpeg is reading by then
cat ${q(fifo)} &
echo $! > ${q(pidFile)}
wait $!
echo "ERROR: *** fake rpicam-vid lost its camera (frame source ended with status $?) ***" >&2
exit 1
`;
}

/** Per frame of a segment: its stamp (from the MPEG-TS PTS) minus the capture time painted into it. */
async function stampErrors(seg: Segment): Promise<number[]> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'frame=pts', '-of', 'csv=p=0', seg.path]);
  const pts = stdout.split('\n').filter((l) => /^\d/.test(l)).map((l) => parseInt(l, 10));
  const codes = await decodeTimecodes(seg.path, { width: W, height: H });
  assert.equal(codes.length, pts.length, `${seg.name}: frames decoded vs probed`);
  return codes.map((c, i) => {
    assert.ok(c, `${seg.name} frame ${i} carries a readable timecode`);
    return seg.runBase * 1000 + pts[i] / 90 - c.epochMs;
  });
}

/** Pids of processes whose command line mentions `needle`. */
async function processesWith(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle)) out.push(Number(p));
  }
  return out;
}

test('a CSI camera through rpicam-vid: exact stamps, its failure reported and restarted, nothing left after stop', async (t) => {
  // A data folder with a space and a quote in its name: every path goes through bash quoting.
  const dataDir = await mkdtemp(join(tmpdir(), "arenacam rpicam it's-"));
  const camDir = await tempDir('arenacam-stampcam-');
  // Hooks run in the order they are added: the unit and the camera stop first, then the folders go.
  let stopUnit: (() => Promise<void>) | null = null;
  let stopCamera: (() => Promise<void>) | null = null;
  t.after(async () => {
    await stopUnit?.();
    await stopCamera?.();
    await rm(dataDir, { recursive: true, force: true });
    await camDir.cleanup();
  });
  const fifo = join(camDir.dir, 'camera.fifo');
  const camera = await startStampCamera({ fifoPath: fifo, width: rpicamStride(W), height: (H * 3) / 2, fps: FPS });
  stopCamera = () => camera.stop();
  await mkdir(join(dataDir, 'bin'));
  const rpicamPath = join(dataDir, 'bin', 'rpicam-vid');
  const argsFile = join(dataDir, 'rpicam-args.txt');
  const pidFile = join(dataDir, 'frame-source.pid');
  await writeFile(rpicamPath, fakeRpicam(fifo, argsFile, pidFile));
  await chmod(rpicamPath, 0o755);

  // The unit decides itself: camera.source auto finds the CSI camera (rpicam-hello's real
  // output from a Pi 5), encoder.codec auto probes the real ffmpeg here (libx264).
  const cameras: CameraDiscovery = {
    usb: async () => ({ cameras: [], note: null }),
    csi: async () => ({ cameras: parseRpicamCameras(piFixture('libcamera-hello-list-cameras.pi5.imx708-cm3.txt')), note: null }),
  };
  const patch = { camera: { source: 'auto', width: W, height: H, fps: FPS, rpicamPath }, encoder: { codec: 'auto' } };
  const unit = await startUnit({ dataDir, patch, seams: { cameras } });
  let stopped = false;
  stopUnit = async () => {
    if (!stopped) await unit.stop();
  };
  const health: CaptureHealth[] = [];
  unit.app.capture.on('health', (h: CaptureHealth) => health.push(h));
  const store = unit.app.store;
  await waitFor(() => store.size >= 5, 30000, 'five segments from the rpicam pipe');
  assert.deepEqual(unit.logs.find('camera chosen').map((l) => [l.source, l.size, l.fps]), [['rpicam', `${W}x${H}`, FPS]]);
  assert.deepEqual(unit.logs.find('encoder chosen').map((l) => l.codec), ['libx264']);
  assert.equal((await readFile(argsFile, 'utf8')).trim(), `-t 0 -n --camera 0 --codec yuv420 --width ${W} --height ${H} --framerate ${FPS} --flush -o -`);

  // Every frame of every finished segment carries its capture time as its stamp (within a frame period).
  const errors: number[] = [];
  for (const seg of store.all().slice(0, -1)) errors.push(...(await stampErrors(seg)));
  assert.ok(errors.length >= 3 * FPS, `frames checked: ${errors.length}`);
  const period = 1000 / FPS;
  const sorted = [...errors].sort((a, b) => a - b);
  t.diagnostic(`stamp - capture over ${errors.length} frames: min ${sorted[0].toFixed(2)} ms, median ${sorted[sorted.length >> 1].toFixed(2)} ms, max ${sorted.at(-1)!.toFixed(2)} ms`);
  for (const e of errors) assert.ok(e > -0.05 && e < period, `stamp ${e.toFixed(2)} ms after capture`);

  // rpicam-vid dies (here: its frame source): ffmpeg sees EOF, the pipeline says why and restarts.
  const firstRun = unit.app.capture.currentRunBase();
  const sourcePid = Number(await readFile(pidFile, 'utf8'));
  process.kill(sourcePid, 'SIGKILL');
  const failed = await waitFor(() => health.find((h) => !h.alive && h.error), 15000, 'the failure to be reported');
  assert.match(failed.error!, /^rpicam-vid stopped: ERROR: \*\*\* fake rpicam-vid lost its camera \(frame source ended with status 137\) \*\*\*; ffmpeg exited \(code 0\)/);
  assert.ok(unit.logs.find('capture failed; restarting').some((l) => (l.stderr as string[]).some((s) => s.includes('fake rpicam-vid lost its camera'))), 'the stderr tail is logged');
  await waitFor(() => store.all().filter((s) => s.runBase !== firstRun).length >= 3, 30000, 'segments of the restarted run');
  assert.equal(unit.app.capture.status().restarts, 1);
  assert.equal(unit.app.capture.status().alive, true);
  const again = store.all().filter((s) => s.runBase !== firstRun);
  for (const e of await stampErrors(again[again.length - 2])) assert.ok(e > -0.05 && e < period, `after the restart: stamp ${e.toFixed(2)} ms after capture`);

  // Stop: ffmpeg, rpicam-vid and everything they started are gone.
  const pgid = Number(await readFile(join(dataDir, 'capture.pid'), 'utf8'));
  stopped = true;
  await unit.stop();
  assert.throws(() => process.kill(-pgid, 0), /ESRCH/, 'the capture process group is empty');
  assert.deepEqual(await processesWith(dataDir), [], 'no process of the pipe is left');
});

test('rpicam-vid\'s own error (a Pi 5 without an H.264 codec) reaches the capture error through the real bash pipe', async (t) => {
  const tmp = await tempDir('arenacam-rpicam-err-');
  t.after(() => tmp.cleanup());
  // A stand-in that fails the way rpicam-vid did on a Pi 5 (rpicam-apps#672): its real stderr, then exit.
  const fake = join(tmp.dir, 'rpicam-vid');
  await writeFile(fake, `#!/bin/sh\ncat ${q(join(piFixtureDir(), 'rpicam-vid-no-h264-codec.pi5-ov5647.txt'))} >&2\nexit 255\n`);
  await chmod(fake, 0o755);
  const d = defaults();
  const cmd = buildCaptureCommand(
    { camera: { ...d.camera, source: 'rpicam', width: W, height: H, rpicamPath: fake }, encoder: { ...d.encoder, codec: 'libx264' }, segmentSec: 1, runBase: Math.floor(Date.now() / 1000), dir: tmp.dir },
    { ffmpegPath: 'ffmpeg', setprivPath: null },
  );
  const child = spawnGroup(cmd.cmd, cmd.args);
  const r = await child.exited;
  const tail = child.stderrTail();
  assert.ok(tail.includes(`${RPICAM_PREFIX}Mode selection for 640:480:12:P`), 'each rpicam-vid line arrives, prefixed');
  assert.match(exitMessage(tail, r), /^rpicam-vid stopped: ERROR: \*\*\* Unable to find an appropriate H\.264 codec \*\*\*; ffmpeg exited \(code \d+\)/);
});
