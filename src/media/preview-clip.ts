/** Quality "preview" clips: the stream-copied clip re-encoded smaller (H.264, narrower, lower bitrate). */
import { rename, stat, unlink, open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import ffmpeg from 'fluent-ffmpeg';

/** What a preview transcode needs. */
export interface PreviewClipJob {
  /** A finished clip (its edit list decides the first frame; ffmpeg honours it when decoding). */
  input: string;
  output: string;
  width: number;
  bitrateKbps: number;
  ffmpegPath: string;
}

/**
 * Re-encode `input` to `output` at `width` (height keeps the aspect, even) with libx264 veryfast,
 * moov first; written under a temporary name, fsynced and renamed. Resolves with the size.
 */
export async function transcodePreview(job: PreviewClipJob): Promise<number> {
  const part = join(dirname(job.output), `.${basename(job.output)}.part`);
  const kbps = job.bitrateKbps;
  try {
    await new Promise<void>((resolve, reject) => {
      ffmpeg()
        .setFfmpegPath(job.ffmpegPath)
        .input(job.input)
        .outputOptions([
          '-hide_banner', '-nostdin', '-loglevel', 'error', '-map', '0:v:0',
          // Never scale up; keep the aspect with an even height.
          '-vf', `scale='min(${job.width},iw)':-2`,
          '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '0', '-b:v', `${kbps}k`, '-maxrate', `${Math.round(kbps * 1.5)}k`,
          '-bufsize', `${kbps * 2}k`, '-pix_fmt', 'yuv420p', '-fps_mode', 'passthrough', '-movflags', '+faststart', '-an',
        ])
        .format('mp4')
        .output(part)
        .on('end', () => resolve())
        .on('error', (err: Error, _o: string | null, stderr: string | null) => {
          const msg = (stderr || err.message).trim().split('\n').slice(-3).join(' | ');
          reject(Object.assign(new Error(`ffmpeg could not make the preview clip: ${msg}`), /No space left/i.test(msg) ? { code: 'ENOSPC' } : {}));
        })
        .run();
    });
    const fh = await open(part, 'r+');
    await fh.sync().finally(() => fh.close());
    await rename(part, job.output);
    return (await stat(job.output)).size;
  } catch (err) {
    await unlink(part).catch(() => undefined);
    throw err;
  }
}
