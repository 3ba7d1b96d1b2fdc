/** The segment store: an in-memory index of capture segments on disk, rebuilt from disk at start. */
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import { probeTimes } from '../media/probe.js';

/** One MPEG-TS segment: a closed GOP run whose frames carry capture-time stamps. */
export interface Segment {
  name: string;
  path: string;
  runBase: number;
  seq: number;
  /** Capture time of the first frame, epoch ms. */
  startMs: number;
  /** Capture time just past the last frame, epoch ms. */
  endMs: number;
  /** false when recovered from an interrupted run (not in the run's list). */
  listed: boolean;
}

const SEG_RE = /^(\d+)_(\d{6})\.ts$/;

/** Parse one line of ffmpeg's CSV segment list: "name,start,end" (seconds since the run base). */
export function parseSegmentLine(line: string, runBase: number, dir: string): Segment | null {
  const parts = line.trim().split(',');
  if (parts.length < 3) return null;
  const m = SEG_RE.exec(parts[0]);
  const start = Number(parts[1]);
  const end = Number(parts[2]);
  if (!m || Number(m[1]) !== runBase || !Number.isFinite(start) || !Number.isFinite(end)) return null;
  return {
    name: parts[0],
    path: join(dir, parts[0]),
    runBase,
    seq: Number(m[2]),
    startMs: runBase * 1000 + start * 1000,
    endMs: runBase * 1000 + end * 1000,
    listed: true,
  };
}

/** Index of segments sorted by start time, with waiters for coverage of an instant. */
export class SegmentStore extends EventEmitter {
  private segments: Segment[] = [];
  private readonly waiters = new Set<{ untilMs: number; resolve: (ok: boolean) => void }>();

  constructor(
    readonly dir: string,
    private readonly opts: { ffprobePath: string; log: Logger },
  ) {
    super();
    // Every pending clip export and live recording holds a 'segment' listener while it waits.
    this.setMaxListeners(64);
  }

  /** Rebuild the index from the run lists and the segment files on disk (probing unlisted ones). */
  async load(): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const byName = new Map<string, Segment>();
    for (const csv of names.filter((n) => /^\d+\.csv$/.test(n))) {
      const runBase = Number(csv.slice(0, -4));
      const text = await readFile(join(this.dir, csv), 'utf8');
      for (const line of text.split('\n')) {
        const seg = parseSegmentLine(line, runBase, this.dir);
        if (seg) byName.set(seg.name, seg);
      }
    }
    for (const name of names) {
      const m = SEG_RE.exec(name);
      if (!m) continue;
      const listed = byName.get(name);
      if (listed && Number(m[2]) > 0) continue;
      // Unlisted (the run was interrupted) or the first of a run (ffmpeg lists its start as 0): probe.
      const path = join(this.dir, name);
      const times = await probeTimes(path, this.opts.ffprobePath).catch(() => null);
      if (!times) {
        this.opts.log.warn({ segment: name }, 'segment unreadable after an interruption; removing it');
        await unlink(path).catch(() => undefined);
        byName.delete(name);
        continue;
      }
      const runBase = Number(m[1]);
      byName.set(name, {
        name,
        path,
        runBase,
        seq: Number(m[2]),
        startMs: runBase * 1000 + times.firstPts * 1000,
        endMs: listed ? listed.endMs : runBase * 1000 + times.endPts * 1000,
        listed: Boolean(listed),
      });
    }
    for (const seg of byName.values()) {
      if (!(await stat(seg.path).catch(() => null))) byName.delete(seg.name);
    }
    this.segments = [...byName.values()].sort((a, b) => a.startMs - b.startMs);
    this.opts.log.info({ segments: this.segments.length, recovered: this.segments.filter((s) => !s.listed).length }, 'segment store indexed');
  }

  /** The first segment of a run is listed by ffmpeg as starting at 0: read its real start. */
  async probeFirst(seg: Segment): Promise<Segment> {
    try {
      const t = await probeTimes(seg.path, this.opts.ffprobePath);
      return { ...seg, startMs: seg.runBase * 1000 + t.firstPts * 1000 };
    } catch (err) {
      this.opts.log.warn({ segment: seg.name, err: (err as Error).message }, 'cannot probe first segment of a run');
      return { ...seg, startMs: seg.endMs - 1000 };
    }
  }

  /** Add a segment ffmpeg just finished. */
  add(seg: Segment): void {
    let i = this.segments.length;
    while (i > 0 && this.segments[i - 1].startMs > seg.startMs) i--;
    this.segments.splice(i, 0, seg);
    this.emit('segment', seg);
    for (const w of this.waiters) {
      if (seg.endMs >= w.untilMs) {
        this.waiters.delete(w);
        w.resolve(true);
      }
    }
  }

  /** The segment of a run with this sequence number, if finished (no copy of the index). */
  find(runBase: number, seq: number): Segment | null {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i];
      if (s.runBase === runBase && s.seq === seq) return s;
      if (s.runBase < runBase) break;
    }
    return null;
  }

  /** Run base of the newest segment, or null when empty. */
  latestRunBase(): number | null {
    return this.segments.at(-1)?.runBase ?? null;
  }

  /** All segments, oldest first (a copy). */
  all(): Segment[] {
    return [...this.segments];
  }

  /** Segments holding any frame in [startMs, endMs). */
  overlapping(startMs: number, endMs: number): Segment[] {
    return this.segments.filter((s) => s.endMs > startMs && s.startMs < endMs);
  }

  /** End of the newest finished segment, or null when empty. */
  latestEndMs(): number | null {
    return this.segments.length ? Math.max(...this.segments.slice(-3).map((s) => s.endMs)) : null;
  }

  /** Resolves true once a finished segment reaches `untilMs`, false after `timeoutMs`. */
  waitForCoverage(untilMs: number, timeoutMs: number): Promise<boolean> {
    const end = this.latestEndMs();
    if (end !== null && end >= untilMs) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        untilMs,
        resolve: (ok: boolean) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        resolve(false);
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  /**
   * The segment that follows `seg` in its run (seq + 1), once ffmpeg has finished it; null when
   * none arrives within `timeoutMs`, or as soon as a segment of a newer run shows that capture
   * restarted (that run's settings or time base may differ).
   */
  nextAfter(seg: Segment, timeoutMs: number): Promise<Segment | null> {
    const next = (s: Segment) => s.runBase === seg.runBase && s.seq === seg.seq + 1;
    const have = this.segments.find(next);
    if (have) return Promise.resolve(have);
    if (this.segments.some((s) => s.runBase > seg.runBase)) return Promise.resolve(null);
    return this.waitForSegment((s) => (next(s) ? s : s.runBase > seg.runBase ? null : undefined), timeoutMs);
  }

  /** The first segment whose end is past `fromMs`, now or once one is added; null after `timeoutMs`. */
  firstEndingAfter(fromMs: number, timeoutMs: number): Promise<Segment | null> {
    const have = this.segments.find((s) => s.endMs > fromMs);
    if (have) return Promise.resolve(have);
    return this.waitForSegment((s) => (s.endMs > fromMs ? s : undefined), timeoutMs);
  }

  /**
   * Resolves with what `decide` makes of the next added segments (undefined = keep waiting), or
   * null after `timeoutMs`. The timer keeps the process alive while waiting and is always cleared.
   */
  waitForSegment(decide: (seg: Segment) => Segment | null | undefined, timeoutMs: number): Promise<Segment | null> {
    return new Promise((resolve) => {
      const finish = (s: Segment | null) => {
        clearTimeout(timer);
        this.off('segment', onSeg);
        resolve(s);
      };
      const onSeg = (seg: Segment) => {
        const s = decide(seg);
        if (s !== undefined) finish(s);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      this.on('segment', onSeg);
    });
  }

  /** Delete a segment from disk and index. */
  async remove(seg: Segment): Promise<void> {
    this.segments = this.segments.filter((s) => s !== seg);
    await unlink(seg.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** How many segments are indexed. */
  get size(): number {
    return this.segments.length;
  }
}
