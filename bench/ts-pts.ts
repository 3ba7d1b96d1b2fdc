/**
 * How fast videoPtsList reads the frame PTS of an MPEG-TS file, against ffprobe listing the same
 * packets' pts. The file is made by ffmpeg at capture-like bitrate (1280x720@30, 4 Mbit/s H.264)
 * unless --file is given. Both lists must agree, or the bench fails.
 *
 * Usage: node dist/bench/ts-pts.js [--seconds 10] [--runs 7] [--file path.ts]
 * Prints one JSON object: file MB, median ms of videoPtsList (buffer already read), of
 * framePtsOfFile (read + parse), of ffprobe, and the ratio ffprobe / videoPtsList.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { emit, machineInfo, note, numArg, round2, stats } from './capture-lib.js';
import { framePtsOfFile, videoPtsList } from '../src/media/ts-pts.js';

const run = promisify(execFile);

/** `--name value` from argv as a string, or null. */
function strArg(name: string): string | null {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? null : (process.argv[i + 1] ?? null);
}

/** Make a capture-like segment of `seconds` with ffmpeg; returns its path. */
async function makeSegment(dir: string, seconds: number): Promise<string> {
  const path = join(dir, 'bench.ts');
  await run('ffmpeg', [
    '-hide_banner', '-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '4M', '-g', '30', '-bf', '0',
    '-f', 'mpegts', '-mpegts_copyts', '1', '-output_ts_offset', '1000', path,
  ]);
  return path;
}

/** ffprobe's pts list of the first video stream. */
async function ffprobePts(path: string): Promise<number[]> {
  const { stdout } = await run(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts', '-of', 'csv=p=0', path],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  return stdout
    .split('\n')
    .map((l) => l.split(',')[0].trim())
    .filter((l) => l !== '')
    .map(Number);
}

/** Milliseconds `fn` takes, measured `runs` times after three warm-up calls (JIT). */
async function timeRuns(runs: number, fn: () => unknown): Promise<number[]> {
  for (let i = 0; i < 3; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return ms;
}

async function main(): Promise<void> {
  const seconds = numArg('seconds', 10);
  const runs = numArg('runs', 7);
  const given = strArg('file');
  const dir = await mkdtemp(join(tmpdir(), 'arenacam-bench-ts-pts-'));
  try {
    note(given ? `reading ${given}` : `making a ${seconds} s 720p30 segment`);
    const path = given ?? (await makeSegment(dir, seconds));
    const bytes = (await stat(path)).size;
    const buf = await readFile(path);
    const ours = videoPtsList(buf);
    const theirs = await ffprobePts(path);
    if (ours.length === 0 || JSON.stringify(ours) !== JSON.stringify(theirs)) {
      throw new Error(`lists differ: videoPtsList ${ours.length} entries, ffprobe ${theirs.length}`);
    }
    note(`${ours.length} frames, lists agree; timing ${runs} runs each`);
    const parse = stats(await timeRuns(runs, () => videoPtsList(buf)));
    const readParse = stats(await timeRuns(runs, () => framePtsOfFile(path)));
    const probe = stats(await timeRuns(runs, () => ffprobePts(path)));
    emit({
      bench: 'ts-pts',
      machine: machineInfo(),
      fileMB: round2(bytes / 1e6),
      frames: ours.length,
      runs,
      videoPtsListMs: parse.median,
      framePtsOfFileMs: readParse.median,
      ffprobeMs: probe.median,
      ratio: round2(probe.median / parse.median),
      ratioWithRead: round2(probe.median / readParse.median),
      detail: { videoPtsList: parse, framePtsOfFile: readParse, ffprobe: probe },
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
