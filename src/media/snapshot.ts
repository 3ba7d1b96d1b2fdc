/** Stills of the newest footage: the keyframe of the newest finished segment, decoded to JPEG. */
import { access } from 'node:fs/promises';
import { execa } from 'execa';
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import type { Segment } from '../capture/segment-store.js';

/** One decoded still and when its frame was captured. */
export interface Snapshot {
  jpeg: Buffer;
  /** Capture time of the frame (the segment's first keyframe), epoch ms. */
  captureMs: number;
  /** Name of the segment it was taken from. */
  segment: string;
}

/** Options of the Snapshotter. */
export interface SnapshotterOptions {
  store: { all(): Segment[] };
  ffmpegPath: string;
  log: Logger;
  /** A still this young (ms) is served again instead of running ffmpeg (default 500). */
  maxAgeMs?: number;
  /** JPEG quality, ffmpeg's -q:v scale 2 (best) … 31 (default 5). */
  quality?: number;
  /** Give up on one ffmpeg run after this long (default 10000 ms). */
  timeoutMs?: number;
  /** How many of the newest segments to try before giving up (default 3). */
  attempts?: number;
  clock?: Clock;
}

/** Thrown when footage exists but no still could be decoded from it. */
export class SnapshotError extends Error {}

/**
 * Decodes stills on demand. Concurrent callers share one ffmpeg run, and a result is reused for
 * `maxAgeMs`, so a page polling /snapshot from many tabs costs one decode per half second.
 */
export class Snapshotter {
  private cached: { snap: Snapshot; atMs: number } | null = null;
  private inflight: Promise<Snapshot | null> | null = null;
  private readonly now: () => number;

  constructor(private readonly o: SnapshotterOptions) {
    this.now = o.clock ? () => o.clock!.now() : () => Date.now();
  }

  /** The newest still, or null when there is no footage yet. Rejects with SnapshotError when decoding fails. */
  latest(): Promise<Snapshot | null> {
    const c = this.cached;
    if (c && this.now() - c.atMs < (this.o.maxAgeMs ?? 500)) return Promise.resolve(c.snap);
    if (!this.inflight) {
      this.inflight = this.decodeNewest().finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  private async decodeNewest(): Promise<Snapshot | null> {
    const candidates = this.o.store.all().slice(-(this.o.attempts ?? 3)).reverse();
    if (candidates.length === 0) return null;
    let lastError = '';
    for (const seg of candidates) {
      const t0 = this.now();
      try {
        const { jpeg, ptsSec } = await this.decodeKeyframe(seg.path);
        if (jpeg.length === 0) {
          lastError = `no keyframe in ${seg.name}`;
          this.o.log.debug({ segment: seg.name }, 'segment holds no keyframe; trying the one before');
          continue;
        }
        // Segment timestamps are seconds since the run's base (see capture/ffmpeg-args).
        const captureMs = ptsSec === null ? seg.startMs : seg.runBase * 1000 + ptsSec * 1000;
        const snap: Snapshot = { jpeg, captureMs, segment: seg.name };
        this.cached = { snap, atMs: this.now() };
        this.o.log.debug({ segment: seg.name, bytes: jpeg.length, ms: Math.round(this.now() - t0) }, 'snapshot decoded');
        return snap;
      } catch (err) {
        const gone = await access(seg.path).then(
          () => false,
          () => true,
        );
        lastError = gone ? `${seg.name} was deleted` : firstLine(err);
        if (gone) this.o.log.debug({ segment: seg.name }, 'segment deleted before its snapshot; trying the one before');
        else this.o.log.warn({ segment: seg.name, err: lastError }, 'cannot decode a snapshot; trying the segment before');
      }
    }
    throw new SnapshotError(`no still could be decoded from the newest segments: ${lastError}`);
  }

  /** The first keyframe as JPEG, and its pts in seconds (kept as in the file by -copyts, read from showinfo). */
  private async decodeKeyframe(path: string): Promise<{ jpeg: Buffer; ptsSec: number | null }> {
    const args = [
      '-hide_banner', '-nostdin', '-nostats', '-loglevel', 'info', '-threads', '1',
      '-skip_frame', 'nokey', '-i', path, '-copyts',
      '-map', '0:v:0', '-an', '-sn', '-dn', '-frames:v', '1', '-vf', 'showinfo',
      '-c:v', 'mjpeg', '-q:v', String(this.o.quality ?? 5), '-f', 'mjpeg', 'pipe:1',
    ];
    const r = await execa(this.o.ffmpegPath, args, {
      encoding: 'buffer',
      stripFinalNewline: false,
      timeout: this.o.timeoutMs ?? 10000,
      maxBuffer: 32 * 1024 * 1024,
    });
    // pts_time is printed with six digits only: use the integer pts and the filter's time base.
    const info = Buffer.from(r.stderr).toString('utf8');
    const tb = /showinfo.*config in time_base:\s*(\d+)\/(\d+)/.exec(info);
    const pts = /showinfo.*\bn:\s*0\s+pts:\s*(-?\d+)/.exec(info);
    const ptsSec = tb && pts && Number(tb[2]) > 0 ? (Number(pts[1]) * Number(tb[1])) / Number(tb[2]) : null;
    return { jpeg: Buffer.from(r.stdout), ptsSec };
  }
}

function firstLine(err: unknown): string {
  const e = err as { stderr?: Uint8Array | string; shortMessage?: string; message?: string };
  const stderr = e.stderr ? Buffer.from(e.stderr).toString('utf8').trim() : '';
  const text = stderr.split('\n').at(-1) || e.shortMessage || e.message || String(err);
  return text.slice(0, 300);
}
