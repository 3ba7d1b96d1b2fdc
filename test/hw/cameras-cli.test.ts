/** `arenacam cameras` as a real process, with the Pi's v4l2-ctl and rpicam-hello replaced by scripts printing real outputs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { shellQuote as q } from '../../src/capture/ffmpeg-args.js';
import type { CamerasReport } from '../../src/hw/camera-report.js';
import { piFixtureDir } from '../helpers/pi-fixtures.js';
import { tempDir } from '../helpers/device.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** A bin folder with `v4l2-ctl` and `rpicam-hello` that print the named fixture files. */
async function fakeTools(dir: string, o: { devices: string; nodes?: Record<string, string>; rpicam: string }): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const fx = (name: string) => q(join(piFixtureDir(), name));
  const nodeCases = Object.entries(o.nodes ?? {}).map(([dev, f]) => `  *"-d ${dev} "*) cat ${fx(f)} ;;`).join('\n');
  // Nodes without a fixture (UVC metadata nodes) fail without output.
  await writeFile(join(bin, 'v4l2-ctl'), `#!/bin/sh\ncase "$* " in\n  *--list-devices*) cat ${fx(o.devices)} ;;\n${nodeCases}\n  *) exit 1 ;;\nesac\n`);
  await writeFile(join(bin, 'rpicam-hello'), `#!/bin/sh\ncat ${fx(o.rpicam)}\n`);
  await chmod(join(bin, 'v4l2-ctl'), 0o755);
  await chmod(join(bin, 'rpicam-hello'), 0o755);
  return bin;
}

async function cameras(dir: string, bin: string, camera: Record<string, unknown>, json: boolean): Promise<{ code: number; out: string; err: string }> {
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify({ dataDir: join(dir, 'data'), camera, encoder: { codec: 'auto' } }));
  const args = [CLI, 'cameras', '--config', file, ...(json ? ['--json'] : [])];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, timeout: 60000 }, (err, out, errOut) => {
      resolve({ code: err ? Number((err as { code?: number }).code) : 0, out, err: errOut });
    });
  });
}

const ARDUCAM = {
  devices: 'v4l2-ctl-list-devices.pi5-k6.1.73.arducam-1080p-h264-uvc.txt',
  nodes: {
    '/dev/video8': 'v4l2-ctl-D-list-formats-ext.pi5-k6.1.73.arducam-1080p.video8-mjpg-yuyv.txt',
    '/dev/video10': 'v4l2-ctl-D-list-formats-ext.pi5-k6.1.73.arducam-1080p.video10-h264.txt',
  },
};

test('with a CSI camera, auto chooses it and shows the rpicam-vid | ffmpeg command and the encoder probe', async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const bin = await fakeTools(tmp.dir, { ...ARDUCAM, rpicam: 'libcamera-hello-list-cameras.pi5.imx708-cm3.txt' });
  const r = await cameras(tmp.dir, bin, { source: 'auto', width: 1280, height: 720, fps: 30 }, false);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /^USB cameras: 1\n  USB 2\.0 Camera: USB Camera \(usb-xhci-hcd\.0-1\)\n    \/dev\/video8: MJPG 1920x1080@30 1280x720@30 640x480@30 320x240@30, YUYV 640x480@30 320x240@30\n/);
  assert.match(r.out, /\n    \/dev\/video10: H264 1920x1080@30 1280x720@30 640x480@30 640x360@30\n/);
  assert.match(r.out, /\nCSI cameras: 1\n  0: imx708 \(\/base\/axi\/pcie@120000\/rp1\/i2c@88000\/imx708@1a\) modes 4608x2592@14\.35 2304x1296@56\.03 1536x864@120\.13\n/);
  assert.match(r.out, /\nConfigured source: auto: CSI camera 0: imx708 .*1280x720@30 through rpicam-vid\n/);
  assert.match(r.out, /\nEncoder: libx264 \(/, 'the real ffmpeg here has no working h264_v4l2m2m');
  assert.match(r.out, /\nCommand: rpicam-vid -t 0 -n --camera 0 --codec yuv420 --width 1280 --height 720 --framerate 30 --flush -o - \| ffmpeg .*-f rawvideo -pix_fmt yuv420p .*-i pipe:0 .*-c:v libx264 /);
});

test('without a CSI camera, auto uses the USB camera\'s own H.264 node with stream copy (--json)', async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const bin = await fakeTools(tmp.dir, { ...ARDUCAM, rpicam: 'libcamera-still-list-cameras.no-camera.txt' });
  const r = await cameras(tmp.dir, bin, { source: 'auto', width: 1920, height: 1080, fps: 30 }, true);
  assert.equal(r.code, 0, r.out + r.err);
  const rep = JSON.parse(r.out) as CamerasReport;
  assert.deepEqual(rep.csi, { cameras: [], note: null });
  assert.deepEqual([rep.camera?.camera.source, rep.camera?.camera.device, rep.camera?.camera.format], ['v4l2', '/dev/video10', 'h264']);
  assert.equal(rep.encoder?.encoder.codec, 'copy');
  assert.equal(rep.encoder?.probe, null, 'no probe is needed for stream copy');
  assert.match(rep.command!, /^ffmpeg .*-use_wallclock_as_timestamps 1 -itsoffset -\d+ -f v4l2 -input_format h264 -framerate 30 -video_size 1920x1080 -i \/dev\/video10 .*-c:v copy /);
});

test('no camera anywhere: exit 1 with the reason; the configured test pattern is fine', async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const bin = await fakeTools(tmp.dir, { devices: 'v4l2-ctl-list-devices.pi4-bcm2711.csi-imx219-no-usb.txt', rpicam: 'libcamera-still-list-cameras.no-camera.txt' });
  const none = await cameras(tmp.dir, bin, { source: 'auto' }, false);
  assert.equal(none.code, 1);
  assert.match(none.out, /^USB cameras: 0\nCSI cameras: 0\n/);
  assert.match(none.out, /\nConfigured source: cannot run: camera.source auto: no camera found: rpicam-hello lists no CSI camera and there is no USB camera\n/);
  const pattern = await cameras(tmp.dir, bin, { source: 'testsrc' }, false);
  assert.equal(pattern.code, 0);
  assert.match(pattern.out, /\nCommand: ffmpeg .*-f lavfi -i testsrc2=size=1280x720:rate=30 /);
});
