/** ffmpeg command lines of the capture pipeline, and the segment list parser. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { buildCaptureArgs, buildCaptureCommand, rpicamArgs, runFiles, shellQuote } from '../../src/capture/ffmpeg-args.js';
import { parseSegmentLine } from '../../src/capture/segment-store.js';
import { defaults } from '../../src/config/load.js';
import { tempDir } from '../helpers/device.js';

const spec = (patch: Record<string, unknown> = {}, enc: Record<string, unknown> = {}) => {
  const d = defaults();
  return { camera: { ...d.camera, ...patch }, encoder: { ...d.encoder, codec: 'libx264', ...enc }, segmentSec: 1, runBase: 1795000000, dir: '/data/segments' };
};

test('every frame is stamped with the wall clock minus the run base and the stamp is carried into the segments', () => {
  const args = buildCaptureArgs(spec());
  const vf = args[args.indexOf('-vf') + 1];
  assert.equal(vf, 'settb=1/1000000,setpts=RTCTIME-1795000000000000');
  for (const flag of ['-copyts', '-fps_mode', '-enc_time_base']) assert.ok(args.includes(flag), flag);
  assert.equal(args[args.indexOf('-segment_format_options') + 1], 'mpegts_copyts=1:flush_packets=1');
  assert.equal(args.at(-1), '/data/segments/1795000000_%06d.ts');
  assert.equal(args[args.indexOf('-segment_list') + 1], runFiles('/data/segments', 1795000000).csv);
});

test('libx264 gets closed one-second GOPs on segment boundaries and no B-frames', () => {
  const args = buildCaptureArgs(spec());
  assert.equal(args[args.indexOf('-bf') + 1], '0');
  assert.equal(args[args.indexOf('-force_key_frames') + 1], 'expr:gte(t,n_forced*1)');
  assert.equal(args[args.indexOf('-sc_threshold') + 1], '0');
});

test('each camera source builds its input and unsupported ones fail with a clear message', () => {
  const v4l2 = buildCaptureArgs(spec({ source: 'v4l2', device: '/dev/video2', width: 640, height: 480, fps: 25 }));
  assert.deepEqual(v4l2.slice(v4l2.indexOf('-f'), v4l2.indexOf('-i') + 2), ['-f', 'v4l2', '-framerate', '25', '-video_size', '640x480', '-i', '/dev/video2']);
  const raw = buildCaptureArgs(spec({ source: 'ffmpeg', input: ['-f', 'rawvideo', '-i', '/tmp/fifo'] }));
  assert.ok(raw.join(' ').includes('-f rawvideo -i /tmp/fifo'));
  assert.throws(() => buildCaptureArgs(spec({ source: 'ffmpeg', input: [] })), /camera.input must hold ffmpeg input arguments/);
  assert.throws(() => buildCaptureArgs(spec({ source: 'auto' })), /"auto" must be resolved/);
  assert.throws(() => buildCaptureArgs(spec({}, { codec: 'auto' })), /encoder.codec "auto" must be resolved/);
  const copy = buildCaptureArgs(spec({ source: 'v4l2' }, { codec: 'copy' }));
  assert.ok(!copy.includes('-vf') && copy.includes('-use_wallclock_as_timestamps'));
});

test('a segment list line becomes capture times; lines of other runs or garbage are ignored', () => {
  const s = parseSegmentLine('1795000000_000007.ts,7.016667,8.018000', 1795000000, '/d')!;
  assert.equal(s.seq, 7);
  assert.equal(s.path, '/d/1795000000_000007.ts');
  assert.ok(Math.abs(s.startMs - 1795000007016.667) < 0.01);
  assert.ok(Math.abs(s.endMs - 1795000008018) < 0.01);
  assert.equal(parseSegmentLine('1795000001_000007.ts,7,8', 1795000000, '/d'), null);
  assert.equal(parseSegmentLine('../x.ts,7,8', 1795000000, '/d'), null);
  assert.equal(parseSegmentLine('garbage', 1795000000, '/d'), null);
});

test('the built command line runs in the real ffmpeg and writes listed segments', async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const runBase = Math.floor(Date.now() / 1000);
  const args = buildCaptureArgs({ ...spec({ width: 160, height: 120 }, { preset: 'ultrafast' }), runBase, dir: tmp.dir });
  // Frames are stamped with the wall clock, so the source must run in real time (-re stays).
  const src = args.findIndex((a) => a.startsWith('testsrc2='));
  args[src] += ':duration=2.5';
  execFileSync('ffmpeg', args, { stdio: 'pipe' });
  const { readFile } = await import('node:fs/promises');
  const lines = (await readFile(runFiles(tmp.dir, runBase).csv, 'utf8')).trim().split('\n');
  assert.ok(lines.length >= 2, `segments listed: ${lines.length}`);
  const segs = lines.map((l) => parseSegmentLine(l, runBase, tmp.dir)!);
  assert.ok(segs.every((s) => s && s.endMs > s.startMs));
});

const after = (args: string[], flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);

test('a USB camera is captured in the format chosen for it: h264, mjpeg or yuyv422, or the driver default for auto', () => {
  const fmt = (format: string) => after(buildCaptureArgs(spec({ source: 'v4l2', device: '/dev/video10', format })), '-input_format');
  assert.equal(fmt('h264'), 'h264');
  assert.equal(fmt('mjpeg'), 'mjpeg');
  assert.equal(fmt('yuyv'), 'yuyv422');
  assert.equal(fmt('auto'), undefined);
  const h264copy = buildCaptureArgs(spec({ source: 'v4l2', format: 'h264' }, { codec: 'copy' }));
  assert.deepEqual(h264copy.slice(h264copy.indexOf('-use_wallclock_as_timestamps'), h264copy.indexOf('-f')), ['-use_wallclock_as_timestamps', '1', '-itsoffset', '-1795000000']);
  assert.equal(after(h264copy, '-c:v'), 'copy');
  const mjpeg = buildCaptureArgs(spec({ source: 'v4l2', format: 'mjpeg' }, { codec: 'h264_v4l2m2m' }));
  assert.equal(after(mjpeg, '-c:v'), 'h264_v4l2m2m');
  assert.equal(after(mjpeg, '-pix_fmt'), 'yuv420p', 'the M2M encoder takes yuv420p only, so decoded MJPEG (yuvj422p) is converted');
});

test('a CSI camera is read as raw YUV420 from rpicam-vid on stdin, stamped on arrival, with the row padding cropped off', () => {
  const args = buildCaptureArgs(spec({ source: 'rpicam', width: 1280, height: 720, fps: 30 }));
  const input = args.slice(args.indexOf('-f'), args.indexOf('-i') + 2);
  assert.deepEqual(input, [
    '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-color_range', 'pc', '-video_size', '1280x720', '-framerate', '30',
    '-probesize', '32', '-analyzeduration', '0', '-fflags', 'nobuffer', '-i', 'pipe:0',
  ]);
  assert.ok(!args.includes('-thread_queue_size'), 'no input thread: ffmpeg 5.1 polls one every 10 ms');
  assert.equal(after(args, '-vf'), 'settb=1/1000000,setpts=RTCTIME-1795000000000000');
  // 780 is not a multiple of 64: rpicam-vid writes 832-byte rows (rpicam-apps#188).
  const odd = buildCaptureArgs(spec({ source: 'rpicam', width: 780, height: 360 }));
  assert.equal(after(odd, '-video_size'), '832x360');
  assert.equal(after(odd, '-vf'), 'settb=1/1000000,setpts=RTCTIME-1795000000000000,crop=780:360:0:0');
  assert.deepEqual(rpicamArgs({ ...spec().camera, width: 1280, height: 720, fps: 30, rpicamCamera: 1 }), [
    '-t', '0', '-n', '--camera', '1', '--codec', 'yuv420', '--width', '1280', '--height', '720', '--framerate', '30', '--flush', '-o', '-',
  ]);
});

test('camera.latencyMs is taken off every stamp, in the filter and in the stream-copy offset', () => {
  const enc = buildCaptureArgs(spec({ source: 'rpicam', latencyMs: 42.5 }));
  assert.equal(after(enc, '-vf'), 'settb=1/1000000,setpts=RTCTIME-1795000000000000-42500');
  const copy = buildCaptureArgs(spec({ source: 'v4l2', format: 'h264', latencyMs: 40 }, { codec: 'copy' }));
  assert.equal(after(copy, '-itsoffset'), '-1795000000.040000');
});

test('rpicam capture is one bash that execs ffmpeg reading rpicam-vid, other sources run ffmpeg directly', () => {
  const tools = { ffmpegPath: '/usr/bin/ffmpeg', setprivPath: '/usr/bin/setpriv' };
  const plain = buildCaptureCommand(spec({ source: 'v4l2' }), tools);
  assert.equal(plain.cmd, '/usr/bin/ffmpeg');
  assert.equal(plain.args.at(-1), '/data/segments/1795000000_%06d.ts');
  const pipe = buildCaptureCommand(spec({ source: 'rpicam', rpicamPath: "/opt/it's here/rpicam-vid" }), tools);
  assert.equal(pipe.cmd, 'bash');
  assert.equal(pipe.args[0], '-c');
  assert.ok(pipe.args[1].startsWith('exec /usr/bin/ffmpeg -hide_banner '), pipe.args[1]);
  assert.ok(pipe.args[1].includes(`< <(exec /usr/bin/setpriv --pdeathsig INT -- ${shellQuote("/opt/it's here/rpicam-vid")} -t 0 -n `), pipe.args[1]);
  assert.ok(pipe.display.startsWith("/opt/it's here/rpicam-vid -t 0 -n --camera 0 --codec yuv420") && pipe.display.includes(' | /usr/bin/ffmpeg '));
  const noSetpriv = buildCaptureCommand(spec({ source: 'rpicam' }), { ffmpegPath: 'ffmpeg', setprivPath: null });
  assert.ok(noSetpriv.args[1].includes('< <(exec rpicam-vid -t 0'));
});

test('shell quoting survives spaces, quotes and dollars in a real shell', () => {
  const words = ["it's", 'a b', '$HOME', 'plain/path-1.ts', '`x`', ''];
  const out = execFileSync('bash', ['-c', `printf '%s\\n' ${words.map(shellQuote).join(' ')}`], { encoding: 'utf8' });
  assert.deepEqual(out.split('\n').slice(0, -1), words);
});
