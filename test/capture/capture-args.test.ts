/** ffmpeg command lines of the capture pipeline, and the segment list parser. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { buildCaptureArgs, runFiles } from '../../src/capture/ffmpeg-args.js';
import { parseSegmentLine } from '../../src/capture/segment-store.js';
import { defaults } from '../../src/config/load.js';
import { tempDir } from '../helpers/device.js';

const spec = (patch: Record<string, unknown> = {}, enc: Record<string, unknown> = {}) => {
  const d = defaults();
  return { camera: { ...d.camera, ...patch }, encoder: { ...d.encoder, ...enc }, segmentSec: 1, runBase: 1795000000, dir: '/data/segments' };
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
  assert.deepEqual(v4l2.slice(v4l2.indexOf('-f'), v4l2.indexOf('-i') + 2), ['-f', 'v4l2', '-thread_queue_size', '64', '-framerate', '25', '-video_size', '640x480', '-i', '/dev/video2']);
  const raw = buildCaptureArgs(spec({ source: 'ffmpeg', input: ['-f', 'rawvideo', '-i', '/tmp/fifo'] }));
  assert.ok(raw.join(' ').includes('-f rawvideo -i /tmp/fifo'));
  assert.throws(() => buildCaptureArgs(spec({ source: 'ffmpeg', input: [] })), /camera.input must hold ffmpeg input arguments/);
  assert.throws(() => buildCaptureArgs(spec({ source: 'rpicam' })), /rpicam.*not supported by this build yet/);
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
