/** What capture runs with: source auto, USB node/format/mode choice, CSI rates, and the encoder probe. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { defaults } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { parseCodecList, parseRpicamCameras, parseV4l2Formats } from '../../src/hw/camera-parse.js';
import type { CameraLists } from '../../src/hw/camera-choice.js';
import { chooseCamera, closestMode, NoCameraError, resolveCapture } from '../../src/hw/camera-choice.js';
import type { UsbCamera } from '../../src/hw/cameras.js';
import { explainM2mFailure, FfmpegEncoderProber, resolveEncoder, type EncoderProber, type RunResult } from '../../src/hw/encoder-probe.js';
import { piFixture } from '../helpers/pi-fixtures.js';
import { LogSink, tempDir } from '../helpers/device.js';
import { createLogger } from '../../src/log.js';
import { buildCaptureArgs, rpicamArgs } from '../../src/capture/ffmpeg-args.js';

const cam = (patch: Partial<Config['camera']> = {}): Config['camera'] => ({ ...defaults().camera, ...patch });
const formats = (f: string) => parseV4l2Formats(piFixture(f)).formats;

const arducam: UsbCamera = {
  name: 'USB 2.0 Camera: USB Camera',
  bus: 'usb-xhci-hcd.0-1',
  via: 'v4l2-ctl',
  nodes: [
    { path: '/dev/video8', formats: formats('v4l2-ctl-D-list-formats-ext.pi5-k6.1.73.arducam-1080p.video8-mjpg-yuyv.txt') },
    { path: '/dev/video9', formats: null },
    { path: '/dev/video10', formats: formats('v4l2-ctl-D-list-formats-ext.pi5-k6.1.73.arducam-1080p.video10-h264.txt') },
  ],
};
const elp: UsbCamera = { name: '3D USB Camera', bus: 'usb-xhci-hcd.0-1.1', via: 'v4l2-ctl', nodes: [{ path: '/dev/video0', formats: formats('v4l2-ctl-list-formats-ext.pi5-ubuntu2404.elp-stereo-3d-usb-camera.txt') }] };
const c270: UsbCamera = { name: 'UVC Camera (046d:0825)', bus: 'usb-xhci-hcd.1-1', via: 'v4l2-ctl', nodes: [{ path: '/dev/video0', formats: formats('v4l2-ctl-list-formats-ext.pi5-ubuntu2404.logitech-c270-046d-0825.txt') }] };

function lists(usb: UsbCamera[], rpicamFixture: string | null): CameraLists & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    usb: async () => (asked.push('usb'), { cameras: usb, note: null }),
    csi: async () => (asked.push('csi'), { cameras: rpicamFixture ? parseRpicamCameras(piFixture(rpicamFixture)) : [], note: null }),
  };
}
const NO_CSI = 'libcamera-still-list-cameras.no-camera.txt';

test('source auto takes the CSI camera when rpicam-hello lists one, and lowers a rate its modes cannot reach', async () => {
  const r = await chooseCamera(cam({ source: 'auto', width: 1920, height: 1080, fps: 60 }), lists([arducam], 'rpicam-hello-list-cameras-v.pi5-ubuntu2404.imx219-cm2.txt'));
  assert.equal(r.camera.source, 'rpicam');
  assert.equal(r.camera.rpicamCamera, 0);
  assert.equal(r.camera.fps, 47, 'imx219 modes of at least 1920x1080 reach 47.57 fps');
  assert.match(r.reason, /^auto: CSI camera 0: imx219/);
  assert.deepEqual(r.adjustments, ['imx219 has no mode for 1920x1080 at 60 fps; using 47 fps']);
  const second = await chooseCamera(cam({ source: 'rpicam', rpicamCamera: 1 }), lists([], 'rpicam-list-cameras.rpi-docs-example.imx219-imx477.txt'));
  assert.match(second.reason, /CSI camera 1: imx477/);
});

test('source auto without a CSI camera takes the first USB camera, preferring its own H.264 on whichever node has it', async () => {
  const l = lists([arducam, c270], NO_CSI);
  const r = await chooseCamera(cam({ source: 'auto', device: '/dev/video0' }), l);
  assert.deepEqual([r.camera.source, r.camera.device, r.camera.format, r.camera.width, r.camera.height, r.camera.fps], ['v4l2', '/dev/video10', 'h264', 1280, 720, 30]);
  assert.deepEqual(r.adjustments, []);
  assert.deepEqual(l.asked, ['csi', 'usb']);
  const enc = await resolveEncoder({ ...defaults().encoder }, r.camera, { probe: async () => assert.fail('no probe when the camera sends H.264') });
  assert.equal(enc.encoder.codec, 'copy');
});

test('MJPEG is preferred over YUYV and the closest listed mode is used, with the adjustment reported', async () => {
  const r = await chooseCamera(cam({ source: 'v4l2', device: '/dev/video0', width: 1280, height: 720, fps: 30 }), lists([elp], null));
  assert.deepEqual([r.camera.format, r.camera.width, r.camera.height, r.camera.fps], ['mjpeg', 1600, 600, 30]);
  assert.deepEqual(r.adjustments, ['3D USB Camera has no MJPG 1280x720@30; using its closest mode 1600x600@30']);
  const yuyv = await chooseCamera(cam({ source: 'v4l2', device: '/dev/video0', format: 'yuyv', width: 640, height: 480, fps: 60 }), lists([c270], null));
  assert.deepEqual([yuyv.camera.format, yuyv.camera.width, yuyv.camera.height, yuyv.camera.fps], ['yuyv', 640, 480, 30], 'never a mode the camera lacks');
  await assert.rejects(chooseCamera(cam({ source: 'v4l2', device: '/dev/video0', format: 'h264' }), lists([c270], null)), /camera.format h264: UVC Camera \(046d:0825\) does not offer it \(\/dev\/video0: YUYV\/MJPG\)/);
  assert.deepEqual(closestMode([], { width: 1, height: 1, fps: 1 }), null);
});

test('source auto with no camera at all is a clear error of its own kind, not a test pattern', async () => {
  await assert.rejects(chooseCamera(cam({ source: 'auto' }), lists([], NO_CSI)), (err: Error) => err instanceof NoCameraError && /^camera.source auto: no camera found/.test(err.message));
  await assert.rejects(chooseCamera(cam({ source: 'v4l2', device: '/dev/video0', format: 'h264' }), lists([c270], null)), (err: Error) => !(err instanceof NoCameraError), 'a missing format is a config error, not "no camera"');
  const t = await chooseCamera(cam({ source: 'testsrc' }), { usb: async () => assert.fail('not asked'), csi: async () => assert.fail('not asked') });
  assert.equal(t.camera.source, 'testsrc');
});

test('h264_v4l2m2m failures from real Pis are explained; a decoder listing is not an encoder', () => {
  assert.match(explainM2mFailure(piFixture('ffmpeg-h264_v4l2m2m-error.pi5-opencv.txt')), /no V4L2 memory-to-memory H.264 encoder device \(the Pi 5 has no H.264 encoder block/);
  assert.match(explainM2mFailure(piFixture('ffmpeg-h264_v4l2m2m-encoder-open.pi-bcm2835-codec.yuvj-error.txt')), /refused the pixel format \(it takes yuv420p only\)/);
  const decoders = parseCodecList(piFixture('ffmpeg-decoders-grep-m2m.pi-rpios64.txt'));
  assert.equal(decoders.length, 9);
  assert.ok(decoders.includes('h264_v4l2m2m'));
  const encoders = parseCodecList(execFileSync('ffmpeg', ['-hide_banner', '-encoders'], { encoding: 'utf8' }));
  assert.ok(encoders.includes('libx264') && !encoders.includes('='), 'the legend lines are not encoders');
});

test('the real ffmpeg here: the h264_v4l2m2m trial fails, so the probe chooses libx264 and says why', async () => {
  const prober = new FfmpegEncoderProber({ ffmpegPath: 'ffmpeg', timeoutMs: 20000, bitrateKbps: 1000 });
  const p = await prober.probe({ width: 320, height: 240, fps: 30 });
  assert.equal(p.codec, 'libx264');
  assert.ok(p.encoders?.includes('libx264'));
  if (p.encoders!.includes('h264_v4l2m2m')) {
    assert.equal(p.m2mTrial?.ok, false);
    assert.match(p.reason, /h264_v4l2m2m is listed but a trial encode failed: no V4L2 memory-to-memory H.264 encoder device/);
    assert.match(p.m2mTrial!.detail, /Could not find a valid device/);
  } else {
    assert.match(p.reason, /no h264_v4l2m2m encoder/);
  }
});

test('where the trial encode works (a Pi 4) h264_v4l2m2m is chosen; a hanging trial is cut and libx264 used', async (t) => {
  const listing = execFileSync('ffmpeg', ['-hide_banner', '-encoders'], { encoding: 'utf8' });
  const pi4 = async (_cmd: string, args: string[]): Promise<RunResult> => (args.includes('-encoders') ? { code: 0, stdout: listing, stderr: '' } : { code: 0, stdout: '', stderr: '' });
  const ok = await new FfmpegEncoderProber({ ffmpegPath: 'ffmpeg', timeoutMs: 1000, bitrateKbps: 1000, run: pi4 }).probe({ width: 1280, height: 720, fps: 30 });
  assert.deepEqual([ok.codec, ok.m2mTrial], ['h264_v4l2m2m', { ok: true, detail: '' }]);
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  // A stuck encoder device: an ffmpeg stand-in that lists encoders and then hangs on the trial.
  const stuck = join(tmp.dir, 'ffmpeg');
  await writeFile(join(tmp.dir, 'encoders.txt'), listing);
  await writeFile(stuck, `#!/bin/sh\ncase "$*" in *-encoders*) cat '${join(tmp.dir, 'encoders.txt')}';; *) exec sleep 30;; esac\n`);
  await chmod(stuck, 0o755);
  const hung = await new FfmpegEncoderProber({ ffmpegPath: stuck, timeoutMs: 1000, bitrateKbps: 1000 }).probe({ width: 320, height: 240, fps: 30 });
  assert.equal(hung.codec, 'libx264');
  assert.match(hung.reason, /timed out after 1000 ms; using libx264/);
});

test('resolveCapture keeps explicit settings without probing and refuses copy from a camera that sends no H.264', async () => {
  const never: EncoderProber = { probe: async () => assert.fail('explicit codecs are not probed') };
  const config = defaults();
  const explicit = await resolveCapture({ ...config, encoder: { ...config.encoder, codec: 'libx264' } }, { lists: lists([], null), prober: never });
  assert.deepEqual([explicit.camera.source, explicit.encoder.codec], ['testsrc', 'libx264']);
  const probed = await resolveCapture(config, { lists: lists([], null), prober: { probe: async () => ({ encoders: [], codec: 'h264_v4l2m2m', reason: 'trial worked', m2mTrial: { ok: true, detail: '' } }) } });
  assert.equal(probed.encoder.codec, 'h264_v4l2m2m');
  await assert.rejects(resolveEncoder({ ...config.encoder, codec: 'copy' }, cam({ source: 'rpicam' }), never), /encoder.codec "copy" needs a camera that sends H.264/);
});

test('rpicam sizes are rounded down to even numbers before any command line is built, and the rounding is logged', async () => {
  const imx708 = 'libcamera-hello-list-cameras.pi5.imx708-cm3.txt';
  const auto = await chooseCamera(cam({ source: 'auto', width: 1281, height: 721, fps: 30 }), lists([], imx708));
  assert.deepEqual([auto.camera.source, auto.camera.width, auto.camera.height], ['rpicam', 1280, 720]);
  assert.deepEqual(auto.adjustments, ['rpicam-vid needs an even width and height: using 1280x720 instead of 1281x721']);
  assert.match(auto.reason, /1280x720@30 through rpicam-vid/);
  const unlisted = await chooseCamera(cam({ source: 'rpicam', rpicamCamera: 1, width: 640, height: 481 }), lists([], imx708));
  assert.deepEqual([unlisted.camera.width, unlisted.camera.height], [640, 480]);
  assert.equal(unlisted.adjustments.at(-1), 'rpicam-vid needs an even width and height: using 640x480 instead of 640x481');
  const even = await chooseCamera(cam({ source: 'rpicam', width: 640, height: 480 }), lists([], imx708));
  assert.deepEqual(even.adjustments, [], 'even sizes are left alone');

  const logs = new LogSink();
  const config = defaults();
  await resolveCapture({ ...config, camera: { ...config.camera, source: 'auto', width: 1281, height: 721 }, encoder: { ...config.encoder, codec: 'libx264' } }, { lists: lists([], imx708), prober: { probe: async () => assert.fail('not probed') }, log: createLogger('info', logs) });
  assert.deepEqual(logs.lines.filter((l) => l.level === 40).map((l) => l.msg), ['rpicam-vid needs an even width and height: using 1280x720 instead of 1281x721']);

  // Whatever reaches the command lines, rpicam-vid and ffmpeg agree on an even size.
  const odd = cam({ source: 'rpicam', width: 1281, height: 721 });
  const r = rpicamArgs(odd);
  assert.deepEqual([r[r.indexOf('--width') + 1], r[r.indexOf('--height') + 1]], ['1280', '720']);
  const args = buildCaptureArgs({ camera: odd, encoder: { ...config.encoder, codec: 'libx264' }, segmentSec: 1, runBase: 1795000000, dir: '/d' });
  assert.equal(args[args.indexOf('-video_size') + 1], '1280x720');
  assert.equal(args[args.indexOf('-vf') + 1], 'settb=1/1000000,setpts=RTCTIME-1795000000000000', 'no crop: 1280 is a whole number of 64-byte rows');
});
