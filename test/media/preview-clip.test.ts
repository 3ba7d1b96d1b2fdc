/** Preview transcodes with real ffmpeg: size, measured duration, failures that leave nothing behind. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { transcodePreview } from '../../src/media/preview-clip.js';
import { tempDir, waitFor } from '../helpers/device.js';

const run = promisify(execFile);
const FPS = 25;

let tmp: { dir: string; cleanup(): Promise<void> };
let source: string;

before(async () => {
  tmp = await tempDir('arenacam-preview-clip-');
  source = join(tmp.dir, 'source.mp4');
  await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', `testsrc=size=320x240:rate=${FPS}`, '-t', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', source]);
});

after(() => tmp?.cleanup());

/** Names in the temp folder that are leftovers of a transcode. */
async function partFiles(): Promise<string[]> {
  return (await readdir(tmp.dir)).filter((n) => n.endsWith('.part'));
}

/** argv of every process whose command line mentions `needle`, by pid. */
async function processesWith(needle: string): Promise<Map<number, string[]>> {
  const found = new Map<number, string[]>();
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
    if (argv.some((a) => a.includes(needle))) found.set(Number(pid), argv);
  }
  return found;
}

test('a preview transcode is narrower H.264 and reports the duration measured from its file', async () => {
  const output = join(tmp.dir, 'small.mp4');
  const res = await transcodePreview({ input: source, output, width: 160, bitrateKbps: 300, ffmpegPath: 'ffmpeg' });
  const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height', '-of', 'csv=p=0', output]);
  assert.equal(stdout.trim(), 'h264,160,120');
  assert.equal(res.size, (await stat(output)).size);
  assert.ok(Math.abs(res.durationMs - 3000) <= 1000 / FPS, `durationMs ${res.durationMs}`);
  assert.deepEqual(await partFiles(), []);
});

test('a preview transcode of a file that is not a video rejects with ffmpeg’s reason and leaves no part file', async () => {
  const bad = join(tmp.dir, 'bad.mp4');
  await writeFile(bad, 'this is not a video\n'.repeat(100));
  const output = join(tmp.dir, 'bad-small.mp4');
  await assert.rejects(transcodePreview({ input: bad, output, width: 160, bitrateKbps: 300, ffmpegPath: 'ffmpeg' }), (err: Error) => {
    assert.match(err.message, /ffmpeg could not make the preview clip: .*(Invalid data|moov atom not found)/);
    return true;
  });
  assert.equal(existsSync(output), false);
  assert.deepEqual(await partFiles(), []);
});

test('a preview transcode runs niced on two threads and is killed after its timeout', async () => {
  // ffmpeg blocks opening a FIFO that nobody writes: a transcode that never finishes.
  const fifo = join(tmp.dir, 'stuck.mp4');
  await run('mkfifo', [fifo]);
  const output = join(tmp.dir, 'stuck-small.mp4');
  const t0 = performance.now();
  const job = transcodePreview({ input: fifo, output, width: 160, bitrateKbps: 300, ffmpegPath: 'ffmpeg', timeoutSec: 1.5 });
  const rejected = assert.rejects(job, /ffmpeg could not make the preview clip: timed out after 1.5 s/);
  const [pid, argv] = await waitFor(
    async () => [...(await processesWith(fifo))].find(([, a]) => a[0].endsWith('ffmpeg')),
    1000,
    'the transcoding ffmpeg',
    20,
  );
  assert.equal(argv[argv.indexOf('-threads') + 1], '2');
  assert.equal(argv.filter((a) => a === '-threads').length, 2, 'decoder and encoder threads both limited');
  const nice = Number((await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')[16]);
  assert.equal(nice, Math.min(19, getPriority() + 10));
  await rejected;
  const ms = performance.now() - t0;
  assert.ok(ms >= 1400 && ms < 4000, `rejected after ${ms.toFixed(0)} ms`);
  assert.equal((await processesWith(fifo)).size, 0, 'ffmpeg is gone once the transcode rejects');
  assert.equal(existsSync(output), false);
  assert.deepEqual(await partFiles(), []);
});
