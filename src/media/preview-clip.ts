/** Quality "preview" clips: the stream-copied clip re-encoded smaller (H.264, narrower, lower bitrate). */
import { rename, stat, unlink, open } from 'node:fs/promises';
import type { ChildProcess } from 'node:child_process';
import { basename, dirname, join } from 'node:path';
import ffmpeg from 'fluent-ffmpeg';
import { readMp4Info, samplePts, type Mp4Track } from './mp4.js';

/** What a preview transcode needs. */
export interface PreviewClipJob {
  /** A finished clip (its edit list decides the first frame; ffmpeg honours it when decoding). */
  input: string;
  output: string;
  width: number;
  bitrateKbps: number;
  ffmpegPath: string;
  /** ffmpeg is killed and the transcode fails after this many seconds (default 120). */
  timeoutSec?: number;
}

/** What a finished preview transcode reports. */
export interface PreviewClipResult {
  /** Bytes of the output file. */
  size: number;
  /** Presentation duration of the output's video track, ms. */
  durationMs: number;
}

/** Presentation span of a track in ms: from its first frame's pts to the end of its last frame. */
export function trackDurationMs(track: Mp4Track): number {
  const n = track.sampleCount;
  if (n === 0 || track.mediaTimescale === 0) return 0;
  let first = Infinity;
  let end = -Infinity;
  for (let i = 0; i < n; i++) {
    // A sample lasts until the next one's decode time; the last one until the media duration.
    const dur = (i + 1 < n ? track.sampleDts[i + 1] : track.mediaDuration) - track.sampleDts[i];
    const pts = samplePts(track, i);
    first = Math.min(first, pts);
    end = Math.max(end, pts + dur);
  }
  return ((end - first) * 1000) / track.mediaTimescale;
}

/**
 * Re-encode `input` to `output` at `width` (height keeps the aspect, even) with libx264 veryfast,
 * moov first, at a lower CPU priority on two threads so capture keeps up; written under a
 * temporary name, fsynced and renamed. Fails (leaving no file) after `timeoutSec`.
 */
export async function transcodePreview(job: PreviewClipJob): Promise<PreviewClipResult> {
  const part = join(dirname(job.output), `.${basename(job.output)}.part`);
  const kbps = job.bitrateKbps;
  const timeoutSec = job.timeoutSec ?? 120;
  try {
    await new Promise<void>((resolve, reject) => {
      const cmd = ffmpeg({ niceness: 10, timeout: timeoutSec })
        .setFfmpegPath(job.ffmpegPath)
        .input(job.input)
        .inputOptions(['-threads', '2'])
        .outputOptions([
          '-hide_banner', '-nostdin', '-loglevel', 'error', '-map', '0:v:0',
          // Never scale up; keep the aspect with an even height.
          '-vf', `scale='min(${job.width},iw)':-2`,
          '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '0', '-b:v', `${kbps}k`, '-maxrate', `${Math.round(kbps * 1.5)}k`,
          '-bufsize', `${kbps * 2}k`, '-pix_fmt', 'yuv420p', '-fps_mode', 'passthrough', '-movflags', '+faststart', '-an',
          '-threads', '2',
        ])
        .format('mp4')
        .output(part)
        .on('end', () => resolve())
        .on('error', (err: Error, _o: string | null, stderr: string | null) => {
          const timedOut = /ran into a timeout/.test(err.message);
          const detail = (timedOut ? `timed out after ${timeoutSec} s` : stderr || err.message).trim().split('\n').slice(-3).join(' | ');
          const e = Object.assign(new Error(`ffmpeg could not make the preview clip: ${detail}`), /No space left/i.test(detail) ? { code: 'ENOSPC' } : {});
          // On a timeout ffmpeg still runs (fluent-ffmpeg only sends SIGTERM): kill it and wait,
          // so nothing writes the part file once it is removed.
          const proc = (cmd as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
          if (!proc || proc.exitCode !== null || proc.signalCode !== null) return reject(e);
          proc.once('exit', () => reject(e));
          proc.kill('SIGKILL');
        });
      cmd.run();
    });
    const fh = await open(part, 'r+');
    await fh.sync().finally(() => fh.close());
    const video = (await readMp4Info(part)).tracks.find((t) => t.handler === 'vide');
    if (!video) throw new Error('the preview clip has no video track');
    const durationMs = trackDurationMs(video);
    await rename(part, job.output);
    return { size: (await stat(job.output)).size, durationMs };
  } catch (err) {
    await unlink(part).catch(() => undefined);
    throw err;
  }
}
