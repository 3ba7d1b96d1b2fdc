/** Camera listings parsed from real Pi outputs (../shared/fixtures/pi), and the discovery built on them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isUsbBlock, parseRpicamCameras, parseV4l2Devices, parseV4l2Formats, csiSizes } from '../../src/hw/camera-parse.js';
import { SystemCameraDiscovery, summariseFormats } from '../../src/hw/cameras.js';
import type { RunResult } from '../../src/hw/encoder-probe.js';
import { piFixture } from '../helpers/pi-fixtures.js';
import { tempDir } from '../helpers/device.js';

const ARDUCAM_DEVICES = 'v4l2-ctl-list-devices.pi5-k6.1.73.arducam-1080p-h264-uvc.txt';
const ARDUCAM_V8 = 'v4l2-ctl-D-list-formats-ext.pi5-k6.1.73.arducam-1080p.video8-mjpg-yuyv.txt';
const ARDUCAM_V10 = 'v4l2-ctl-D-list-formats-ext.pi5-k6.1.73.arducam-1080p.video10-h264.txt';
const C270_FORMATS = 'v4l2-ctl-list-formats-ext.pi5-ubuntu2404.logitech-c270-046d-0825.txt';
const ELP_FORMATS = 'v4l2-ctl-list-formats-ext.pi5-ubuntu2404.elp-stereo-3d-usb-camera.txt';

test('v4l2-ctl --list-devices: platform blocks (pispbe, rpivid, bcm2835-*, unicam) are told apart from USB cameras', () => {
  const c270 = parseV4l2Devices(piFixture('v4l2-ctl-list-devices.pi5-ubuntu2404.logitech-c270.txt'));
  assert.deepEqual(c270.map((b) => [b.name, b.bus, b.nodes.length]), [
    ['pispbe', 'platform:1000880000.pisp_be', 18],
    ['rpivid', 'platform:rpivid', 1],
    ['UVC Camera (046d:0825)', 'usb-xhci-hcd.1-1', 2],
  ]);
  assert.deepEqual(c270.filter(isUsbBlock)[0].nodes, ['/dev/video0', '/dev/video1'], '/dev/media nodes are left out');
  const elp = parseV4l2Devices(piFixture('v4l2-ctl-list-devices.pi5-ubuntu2404.elp-stereo-3d-usb-camera.txt')).filter(isUsbBlock);
  assert.deepEqual(elp.map((b) => [b.name, b.bus]), [['3D USB Camera: 3D USB Camera', 'usb-xhci-hcd.0-1.1']]);
  const pi4 = parseV4l2Devices(piFixture('v4l2-ctl-list-devices.pi4-bcm2711.csi-imx219-no-usb.txt'));
  assert.deepEqual(pi4.map((b) => b.name), ['bcm2835-codec-decode', 'bcm2835-isp', 'unicam']);
  assert.equal(pi4.filter(isUsbBlock).length, 0, 'a CSI sensor behind unicam is not a USB camera');
  const arducam = parseV4l2Devices(piFixture(ARDUCAM_DEVICES));
  assert.deepEqual(arducam, [{ name: 'USB 2.0 Camera: USB Camera', bus: 'usb-xhci-hcd.0-1', nodes: ['/dev/video8', '/dev/video9', '/dev/video10', '/dev/video11'] }]);
});

test('v4l2-ctl --list-formats-ext: formats, sizes and rates, with tabs or spaces, repeated sizes merged', () => {
  const c270 = parseV4l2Formats(piFixture(C270_FORMATS));
  assert.deepEqual(c270.formats.map((f) => [f.fourcc, f.compressed, f.sizes.length]), [['YUYV', false, 19], ['MJPG', true, 19]]);
  assert.deepEqual(c270.formats[0].sizes[0], { width: 640, height: 480, fps: [30, 25, 20, 15, 10, 5] });
  const elp = parseV4l2Formats(piFixture(ELP_FORMATS));
  assert.deepEqual(elp.formats[0].sizes.find((s) => s.width === 1600)!.fps, [120, 60, 30, 25, 20, 15, 10]);
  assert.deepEqual(elp.formats[1].sizes.map((s) => `${s.width}x${s.height}@${s.fps[0]}`), ['3200x1200@2', '2560x720@2', '1600x600@10', '1280x480@15', '640x240@60']);
  const v8text = piFixture(ARDUCAM_V8);
  const v8 = parseV4l2Formats(v8text);
  assert.deepEqual([v8.driver, v8.card, v8.bus], ['uvcvideo', 'USB 2.0 Camera: USB Camera', 'usb-xhci-hcd.0-1'], 'the -D header is read');
  assert.deepEqual(v8.formats.map((f) => `${f.fourcc}:${f.sizes.map((s) => `${s.width}x${s.height}@${s.fps.join('/')}`).join(',')}`), [
    'MJPG:1920x1080@30,1280x720@30,640x480@30,320x240@30',
    'YUYV:640x480@30,320x240@30',
  ]);
  assert.deepEqual(parseV4l2Formats(v8text.replace(/\t/g, '        ')), v8, 'the same listing with tabs expanded parses the same');
  const v10 = parseV4l2Formats(piFixture(ARDUCAM_V10));
  assert.deepEqual(v10.formats.map((f) => [f.fourcc, f.description, f.compressed]), [['H264', 'H.264', true]]);
  assert.equal(summariseFormats(v10.formats), 'H264 1920x1080@30 1280x720@30 640x480@30 640x360@30');
});

test('rpicam-hello/libcamera-hello --list-cameras: every published variant', () => {
  const cm3 = parseRpicamCameras(piFixture('libcamera-hello-list-cameras.pi5.imx708-cm3.txt'));
  assert.equal(cm3.length, 1);
  assert.deepEqual({ ...cm3[0], modes: cm3[0].modes.length }, {
    index: 0, model: 'imx708', pixelArray: { width: 4608, height: 2592 }, bitDepth: 10, id: '/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a', modes: 3,
  });
  assert.deepEqual(cm3[0].modes[0], { format: 'SRGGB10_CSI2P', width: 1536, height: 864, fps: 120.13 });

  const gs = parseRpicamCameras(piFixture('libcamera-still-list-cameras-v.pi-i2c0mux.imx296-gs.txt'));
  assert.deepEqual(gs[0].modes, [{ format: 'SRGGB10_CSI2P', width: 1456, height: 1088, fps: 60.38 }], 'the controls block adds no modes');

  assert.deepEqual(parseRpicamCameras(piFixture('libcamera-still-list-cameras.no-camera.txt')), []);

  const imx219 = parseRpicamCameras(piFixture('rpicam-hello-list-cameras-v.pi5-ubuntu2404.imx219-cm2.txt'))[0];
  assert.deepEqual([...new Set(imx219.modes.map((m) => m.format))], ['SRGGB10_CSI2P', 'SRGGB8']);
  assert.equal(imx219.modes.length, 8);
  assert.deepEqual(csiSizes(imx219).map((s) => `${s.width}x${s.height}@${s.fps[0]}`), ['3280x2464@21.19', '1920x1080@47.57', '1640x1232@41.85', '640x480@103.33']);

  const hq = parseRpicamCameras(piFixture('rpicam-list-cameras-v.pi-i2c0mux.imx477-hq.fragment.txt'));
  assert.deepEqual(hq.map((c) => [c.index, c.model, c.bitDepth, c.modes.map((m) => `${m.format}:${m.width}x${m.height}`)]), [
    [0, 'imx477', 12, ['SRGGB10_CSI2P:1332x990', 'SRGGB12_CSI2P:2028x1080', 'SRGGB12_CSI2P:2028x1520', 'SRGGB12_CSI2P:4056x3040']],
  ], 'a fragment without header lines');

  const wide = parseRpicamCameras(piFixture('rpicam-list-cameras-v.pi4-i2c0mux.imx708_wide.header-only.txt'))[0];
  assert.deepEqual([wide.model, wide.pixelArray, wide.bitDepth, wide.modes.length], ['imx708_wide', { width: 4608, height: 2592 }, null, 3], 'the old header without bit depth');

  const af = parseRpicamCameras(piFixture('rpicam-list-cameras-v.pi5-pcie1000120000.imx708-arducam.fragment.txt'));
  assert.deepEqual(af.map((c) => [c.id, c.modes.length]), [['/base/axi/pcie@1000120000/rp1/i2c@88000/imx708@1a', 3]]);

  const two = parseRpicamCameras(piFixture('rpicam-list-cameras.rpi-docs-example.imx219-imx477.txt'));
  assert.deepEqual(two.map((c) => [c.index, c.model, c.modes.length]), [[0, 'imx219', 8], [1, 'imx477', 4]], 'two cameras without a blank line between them');
});

/** A command runner that answers v4l2-ctl/rpicam-hello from fixture files (the Pi's tools are absent here). */
function fixtureRunner(files: { devices?: string; nodes?: Record<string, string>; rpicam?: string }) {
  const calls: string[] = [];
  const run = async (cmd: string, args: string[]): Promise<RunResult> => {
    calls.push([cmd, ...args].join(' '));
    if (args[0] === '--list-devices') return files.devices ? { code: 0, stdout: piFixture(files.devices), stderr: '' } : { code: null, stdout: '', stderr: '', error: `${cmd} not found` };
    if (args[0] === '-d') {
      const f = files.nodes?.[args[1]];
      return f ? { code: 0, stdout: piFixture(f), stderr: '' } : { code: 1, stdout: '', stderr: '' };
    }
    if (args[0] === '--list-cameras' && files.rpicam) return { code: 0, stdout: piFixture(files.rpicam), stderr: '' };
    return { code: null, stdout: '', stderr: '', error: `${cmd} not found` };
  };
  return { run, calls };
}

test('discovery asks every node of a USB camera for its formats (H.264 lives on a sibling node)', async () => {
  const { run, calls } = fixtureRunner({ devices: ARDUCAM_DEVICES, nodes: { '/dev/video8': ARDUCAM_V8, '/dev/video10': ARDUCAM_V10 } });
  const d = new SystemCameraDiscovery({ v4l2ctlPath: 'v4l2-ctl', rpicamHelloPath: 'rpicam-hello', run });
  const usb = await d.usb();
  assert.equal(usb.note, null);
  assert.equal(usb.cameras.length, 1);
  assert.deepEqual(usb.cameras[0].nodes.map((n) => [n.path, n.formats?.map((f) => f.fourcc) ?? null]), [
    ['/dev/video8', ['MJPG', 'YUYV']], ['/dev/video9', null], ['/dev/video10', ['H264']], ['/dev/video11', null],
  ]);
  assert.ok(calls.includes('v4l2-ctl -d /dev/video10 --list-formats-ext'));
  const csi = await d.csi();
  assert.deepEqual(csi, { cameras: [], note: 'rpicam-hello and libcamera-hello not found: no CSI cameras can be listed' });
  assert.ok(calls.includes('libcamera-hello --list-cameras'), 'the old tool name is tried when rpicam-hello is missing');
});

test('without v4l2-ctl, USB cameras are read from a sysfs tree, grouped per USB device; platform nodes are skipped', async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const usbIf = join(tmp.dir, 'devices/platform/axi/1000120000.pcie/1f00200000.usb/xhci-hcd.1/usb3/3-1/3-1:1.0');
  const rpivid = join(tmp.dir, 'devices/platform/soc/rpivid');
  await mkdir(usbIf, { recursive: true });
  await mkdir(rpivid, { recursive: true });
  const v4l = join(tmp.dir, 'class/video4linux');
  for (const [node, target, name] of [['video1', usbIf, 'UVC Camera (046d:0825)'], ['video0', usbIf, 'UVC Camera (046d:0825)'], ['video19', rpivid, 'rpivid']]) {
    await mkdir(join(v4l, node), { recursive: true });
    await writeFile(join(v4l, node, 'name'), `${name}\n`);
    await symlink(target, join(v4l, node, 'device'));
  }
  const d = new SystemCameraDiscovery({ v4l2ctlPath: join(tmp.dir, 'no-such-v4l2-ctl'), rpicamHelloPath: 'rpicam-hello', sysfsRoot: tmp.dir });
  const usb = await d.usb();
  assert.match(usb.note!, /no-such-v4l2-ctl not found: USB cameras read from sysfs, formats unknown/);
  assert.deepEqual(usb.cameras, [{ name: 'UVC Camera (046d:0825)', bus: 'usb-3-1', via: 'sysfs', nodes: [{ path: '/dev/video0', formats: null }, { path: '/dev/video1', formats: null }] }]);
});
