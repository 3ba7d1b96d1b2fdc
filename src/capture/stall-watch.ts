/** Stall detection of one capture run: is video still arriving (a segment listed, or the open segment growing)? */
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { segmentPath } from './ffmpeg-args.js';

/** Options of a stall watch. */
export interface StallWatchOptions {
  /** Folder of the run's segments. */
  dir: string;
  runBase: number;
  /** No video for this long (once the run has written its first segment file) is a stall. */
  limitMs: number;
  /** Extra time before the first segment file of the run appears (ffmpeg opening and probing the camera). */
  startupGraceMs: number;
  /** Called once, with the seconds without video, when the run stalls. */
  onStall(seconds: number): void;
  /** How often the open segment is looked at (default 1000 ms). */
  everyMs?: number;
}

/**
 * ffmpeg muxes with flush_packets=1, so the segment being written grows with every frame. With
 * stream copy a segment can only end at one of the camera's keyframes (which may be 10 s apart),
 * so "no segment listed for a while" alone is not a stall; no listed segment *and* no growth is.
 */
export class StallWatch {
  private lastProgress = performance.now();
  private openSeq = 0;
  private lastSize = -1;
  private sawFile = false;
  private busy = false;
  private done = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly o: StallWatchOptions) {
    this.timer = setInterval(() => void this.tick(), o.everyMs ?? 1000);
    this.timer.unref();
  }

  /** A segment of the run was listed: that is video. */
  listed(seq: number): void {
    this.lastProgress = performance.now();
    this.sawFile = true;
    if (seq + 1 > this.openSeq) {
      this.openSeq = seq + 1;
      this.lastSize = -1;
    }
  }

  /** Stop watching (the run ended). */
  stop(): void {
    this.done = true;
    clearInterval(this.timer);
  }

  private path(seq: number): string {
    return segmentPath(this.o.dir, this.o.runBase, seq);
  }

  private async tick(): Promise<void> {
    if (this.busy || this.done) return;
    this.busy = true;
    try {
      // The open segment is the newest file of the run.
      let seq = this.openSeq;
      while (await stat(this.path(seq + 1)).then(() => true, () => false)) seq++;
      const size = await stat(this.path(seq)).then((s) => s.size, () => null);
      if (size !== null) {
        this.sawFile = true;
        if (seq !== this.openSeq || size !== this.lastSize) this.lastProgress = performance.now();
        this.openSeq = seq;
        this.lastSize = size;
      }
      const limit = this.o.limitMs + (this.sawFile ? 0 : this.o.startupGraceMs);
      const idle = performance.now() - this.lastProgress;
      if (!this.done && idle > limit) {
        this.stop();
        this.o.onStall(Math.round(idle / 100) / 10);
      }
    } finally {
      this.busy = false;
    }
  }
}

/** Segments this many times longer than segments.durationSec mean the keyframes are that far apart. */
const LONG_SEGMENT_FACTOR = 2.5;

/**
 * A listed segment of `segmentSec` when `wantSec` were asked: ffmpeg ends segments only at
 * keyframes, so a segment far longer than asked measures the keyframe interval. Returns the
 * warning to log (with what to do), or null when the length is fine.
 */
export function longSegmentWarning(segmentSec: number, wantSec: number, codec: string): { intervalSec: number; message: string } | null {
  if (!(segmentSec > wantSec * LONG_SEGMENT_FACTOR)) return null;
  const intervalSec = Math.round(segmentSec * 10) / 10;
  const fix =
    codec === 'copy'
      ? `the camera sends a keyframe only every ${intervalSec} s and stream copy (encoder.codec copy) can end a segment only at a keyframe; clips and recordings still work, but for ${wantSec}-s segments set camera.format mjpeg or encoder.codec libx264`
      : `the encoder puts keyframes ${intervalSec} s apart; check the encoder settings`;
  return { intervalSec, message: `segments are ${intervalSec} s long instead of ${wantSec} s: ${fix}` };
}
