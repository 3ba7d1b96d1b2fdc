/** Recording and clip assembly: stream-copy a time range out of the segment store into an MP4. */
import { writeFile, rename, unlink, stat, open } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import ffmpeg from 'fluent-ffmpeg';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { Segment } from '../capture/segment-store.js';
import { fsyncDir } from '../util/atomic.js';
import { readMp4Info, samplePts, trimStart } from './mp4.js';
import type { TailEnd } from '../capture/segment-tail.js';

/** What an assembly produced. */
export interface AssemblyResult {
  path: string;
  size: number;
  /** Capture time of the first displayed frame (epoch ms). */
  firstFrameMs: number;
  /** Capture time of the last frame (epoch ms). */
  lastFrameMs: number;
  frames: number;
  /** Presentation length of the file from its sample table: first displayed frame to the end of the last. */
  durationMs: number;
}

/** A range request over the store. */
export interface AssemblyRequest {
  /** Segments overlapping [startMs, stopMs) known now, oldest first. */
  segments: Segment[];
  /**
   * For a range whose end is still being captured: the bytes of the segment after a given one as they are written, ending at
   * the first frame at or after `stopMs`; 'closed' continues with the following segment.
   */
  tail?: (after: Segment) => AsyncGenerator<Buffer, TailEnd>;
  startMs: number;
  stopMs: number;
  outPath: string;
  ffmpegPath: string;
}

/** An assembly that could not produce a file; `code` tells a full disk from other causes. */
export class AssemblyError extends Error {
  constructor(
    message: string,
    readonly code: 'NO_FOOTAGE' | 'ENOSPC' | 'FFMPEG' | 'TRIM',
  ) {
    super(message);
    this.name = 'AssemblyError';
  }
}

const q = (p: string) => `'${p.replace(/'/g, "'\\''")}'`;

/** The concat list: each segment with its duration up to the next one, so gaps keep their length. */
export function concatList(segments: Segment[]): string {
  return segments
    .map((s, i) => {
      const next = segments[i + 1];
      const until = next && next.runBase === s.runBase ? next.startMs : s.endMs;
      return `file ${q(s.path)}\nduration ${((until - s.startMs) / 1000).toFixed(6)}\n`;
    })
    .join('');
}

/**
 * Stream-copy the segments into `outPath` (moov first), ending before `stopMs`, and trim the
 * start with the MP4 edit list so the first displayed frame is the first captured at or after
 * `startMs`. Written to a temporary name, fsynced, then renamed: a crash leaves no half file.
 */
export async function assembleRange(req: AssemblyRequest): Promise<AssemblyResult> {
  const segs = req.segments.filter((s) => s.endMs > req.startMs && s.startMs < req.stopMs);
  if (segs.length === 0) throw new AssemblyError('no footage was captured in the requested time range', 'NO_FOOTAGE');
  const part = join(dirname(req.outPath), `.${basename(req.outPath)}.part`);
  const list = `${part}.txt`;
  const t0 = segs[0].startMs;
  try {
    // Segments of one capture run are one continuous MPEG-TS stream cut in pieces: fed back to
    // back through a pipe they need no per-file probing (the concat demuxer spends most of its
    // time probing each file). Across runs the timestamps restart, so the concat demuxer is used.
    const oneRun = segs.every((s) => s.runBase === segs[0].runBase);
    if (!oneRun && req.tail) throw new Error('a live range must come from one capture run');
    if (!oneRun) await writeFile(list, concatList(segs));
    // A fresh input per attempt (a pipe can be read once); the retry below is a rare fallback.
    const input = (): JobInput =>
      oneRun ? { kind: 'pipe', stream: Readable.from(catSegments(segs, req.stopMs, req.tail)) } : { kind: 'concat', list };
    const seconds = (req.stopMs - t0) / 1000;
    const common = [
      '-map', '0:v:0', '-c', 'copy', '-t', seconds.toFixed(6), '-use_editlist', '1',
      '-metadata', `creation_time=${new Date(Math.max(req.startMs, t0)).toISOString()}`,
    ];
    // The moov goes first (players start at once) without +faststart's second pass over the whole
    // file: space for it is reserved up front (~12 bytes a sample; room for 60 fps and margin).
    const reserve = Math.ceil(seconds * 60 * 16) + 65536;
    try {
      await runFfmpegJob(req.ffmpegPath, input(), part, [...common, '-moov_size', String(reserve)]);
    } catch (err) {
      if (!(err instanceof AssemblyError && /moov/i.test(err.message))) throw err;
      await runFfmpegJob(req.ffmpegPath, input(), part, [...common, '-movflags', '+faststart']);
    }
    const info = await readMp4Info(part);
    const found = info.tracks.find((t) => t.handler === 'vide');
    if (!found || found.sampleCount === 0) throw new AssemblyError('assembled file has no video frames', 'NO_FOOTAGE');
    const track = found;
    const base = samplePts(track, 0);
    const wall = (i: number) => t0 + ((samplePts(track, i) - base) / track.mediaTimescale) * 1000;
    // Half a 90 kHz tick of tolerance for the float round trip.
    let first = 0;
    while (first < track.sampleCount && wall(first) < req.startMs - 0.006) first++;
    if (first >= track.sampleCount) throw new AssemblyError('no frame captured at or after the start', 'NO_FOOTAGE');
    if (first > 0) {
      try {
        await trimStart(part, track.trackId, samplePts(track, first) - base);
      } catch (err) {
        throw new AssemblyError(`cannot trim the start: ${(err as Error).message}`, 'TRIM');
      }
    }
    const fh = await open(part, 'r+');
    await fh.sync().finally(() => fh.close());
    await rename(part, req.outPath);
    await fsyncDir(dirname(req.outPath));
    const size = (await stat(req.outPath)).size;
    const lastI = track.sampleCount - 1;
    const lastDur = track.mediaDuration > track.sampleDts[lastI] ? track.mediaDuration - track.sampleDts[lastI] : lastI > 0 ? track.sampleDts[lastI] - track.sampleDts[lastI - 1] : 0;
    return {
      durationMs: ((samplePts(track, lastI) + lastDur - samplePts(track, first)) / track.mediaTimescale) * 1000,
      path: req.outPath,
      size,
      firstFrameMs: wall(first),
      lastFrameMs: wall(track.sampleCount - 1),
      frames: track.sampleCount - first,
    };
  } catch (err) {
    await unlink(part).catch(() => undefined);
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new AssemblyError('disk full while writing the recording', 'ENOSPC');
    throw err;
  } finally {
    await unlink(list).catch(() => undefined);
  }
}

/** Where an assembly job reads from. */
type JobInput = { kind: 'concat'; list: string } | { kind: 'pipe'; stream: Readable };

/** The bytes of the segments one after the other, then of those still to come up to `stopMs`. */
async function* catSegments(
  segs: Segment[],
  stopMs: number,
  tail?: (after: Segment) => AsyncGenerator<Buffer, TailEnd>,
): AsyncGenerator<Buffer> {
  let last: Segment | null = null;
  for (const s of segs) {
    yield* catFile(s.path);
    last = s;
  }
  while (tail && last && last.endMs < stopMs) {
    const end: TailEnd = yield* tail(last);
    if (end.kind !== 'closed') return;
    last = end.seg;
  }
}

async function* catFile(path: string): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
}

/**
 * One short ffmpeg job through fluent-ffmpeg (a good fit for run-to-completion jobs; the
 * never-ending capture uses a plain child process instead, see capture/pipeline.ts).
 */
function runFfmpegJob(ffmpegPath: string, input: JobInput, out: string, outputOptions: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const cmd = ffmpeg().setFfmpegPath(ffmpegPath);
    if (input.kind === 'concat') cmd.input(input.list).inputFormat('concat').inputOptions(['-safe', '0']);
    else cmd.input(input.stream).inputFormat('mpegts');
    cmd
      .outputOptions(['-hide_banner', '-nostdin', '-loglevel', 'error', ...outputOptions])
      .format('mp4')
      .output(out)
      .on('end', () => resolve())
      .on('error', (err: Error, _stdout: string | null, stderr: string | null) => {
        if (input.kind === 'pipe') input.stream.destroy();
        const msg = (stderr || err.message).trim().split('\n').slice(-3).join(' | ');
        if (/No space left/i.test(msg)) reject(new AssemblyError(`disk full while writing the recording: ${msg}`, 'ENOSPC'));
        else reject(new AssemblyError(`ffmpeg could not assemble the recording: ${msg}`, 'FFMPEG'));
      })
      .run();
  });
}
