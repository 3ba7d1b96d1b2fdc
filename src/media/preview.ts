/** MJPEG preview: one ffmpeg decodes the newest segments to JPEGs, fanned out to every viewer. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../log.js';
import type { Segment } from '../capture/segment-store.js';
import { findSetpriv } from '../util/child.js';
import { JpegSplitter } from './jpeg-split.js';

/** What the hub needs of the segment store. */
export interface SegmentFeed {
  all(): Segment[];
  on(event: 'segment', fn: (seg: Segment) => void): unknown;
  off(event: 'segment', fn: (seg: Segment) => void): unknown;
}

/** One viewer as the hub sees it (the HTTP layer wraps a response in this). */
export interface PreviewViewer {
  /** Bytes written to the viewer but not yet sent; above the hub's limit frames are skipped. */
  buffered(): number;
  /** Deliver one JPEG. */
  send(jpeg: Buffer): void;
  /** No more frames will come (the hub is closing or its ffmpeg died). */
  end(): void;
}

/** Options of the PreviewHub. */
export interface PreviewOptions {
  store: SegmentFeed;
  ffmpegPath: string;
  log: Logger;
  /** Frames per second sent to viewers (default 5), and the widest picture (default 640; never scaled up). */
  fps?: number;
  width?: number;
  /** JPEG quality, ffmpeg's -q:v scale 2 (best) … 31 (default 7). */
  quality?: number;
  /** ffmpeg is stopped this long after the last viewer left (default 3000 ms). */
  idleStopMs?: number;
  /** A viewer with more than this many bytes unsent skips frames (default 512 KiB). */
  maxBufferedBytes?: number;
  /** util-linux setpriv for a parent-death signal; undefined = look it up, null = don't use it. */
  setprivPath?: string | null;
}

/** Counters of the hub and the pid of its running ffmpeg (or null), for status and tests. */
export interface PreviewStats {
  viewers: number;
  pid: number | null;
  framesDecoded: number;
  framesSkipped: number;
  runs: number;
}

/** A running preview ffmpeg: segments in on stdin, JPEGs out on stdout. */
interface DecoderRun {
  proc: ChildProcess;
  queue: Segment[];
  feeding: boolean;
  lastFedStartMs: number;
  planned: boolean;
  exited: Promise<void>;
}

/**
 * Runs one preview ffmpeg while anyone watches. Frames come out of ffmpeg in a burst per segment;
 * the hub paces them out at `fps` (dropping the oldest when more than a few seconds queue up) so a
 * browser shows motion rather than one picture a second.
 */
export class PreviewHub {
  private readonly viewers = new Set<PreviewViewer>();
  private run: DecoderRun | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private paceTimer: NodeJS.Timeout | null = null;
  private pending: Buffer[] = [];
  private lastFrame: Buffer | null = null;
  private closed = false;
  private readonly stats_ = { framesDecoded: 0, framesSkipped: 0, runs: 0 };
  private readonly fps: number;
  private readonly setpriv: string | null;
  private readonly onSegment = (seg: Segment) => {
    if (this.run) this.feed(this.run, seg);
  };

  constructor(private readonly o: PreviewOptions) {
    this.fps = o.fps ?? 5;
    this.setpriv = o.setprivPath === undefined ? findSetpriv() : o.setprivPath;
  }

  /** True when a viewer would get pictures: not closed and some footage exists. */
  available(): boolean {
    return !this.closed && this.o.store.all().length > 0;
  }

  /** Counters and the running ffmpeg's pid. */
  stats(): PreviewStats {
    return { viewers: this.viewers.size, pid: this.run?.proc.pid ?? null, ...this.stats_ };
  }

  /** Add a viewer (starting ffmpeg if needed); returns its unsubscribe function. */
  subscribe(viewer: PreviewViewer): () => void {
    if (this.closed) {
      viewer.end();
      return () => undefined;
    }
    this.viewers.add(viewer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (!this.run) this.start();
    else if (this.lastFrame) viewer.send(this.lastFrame);
    return () => this.unsubscribe(viewer);
  }

  /** End every viewer and stop ffmpeg; later subscribers are ended at once. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.endViewers();
    await this.stopRun();
  }

  private unsubscribe(viewer: PreviewViewer): void {
    if (!this.viewers.delete(viewer) || this.viewers.size > 0 || this.closed) return;
    this.clearPacing();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.viewers.size === 0) void this.stopRun();
    }, this.o.idleStopMs ?? 3000);
    this.idleTimer.unref();
  }

  private start(): void {
    const width = this.o.width ?? 640;
    const args = [
      // Concatenated segments break the TS continuity counters: ffmpeg flags each segment's last
      // frame "corrupt" (it is whole) and warns; keep the frame and log errors only.
      '-hide_banner', '-nostdin', '-loglevel', 'error',
      // Probing 0.2 s instead of 5 s: the first picture comes from the first segment fed.
      '-probesize', '1000000', '-analyzeduration', '200000',
      // A gap or a new run's time base is a splice, not a stretch to fill with repeated frames.
      '-dts_delta_threshold', '2',
      '-f', 'mpegts', '-i', 'pipe:0',
      '-map', '0:v:0', '-an', '-sn', '-dn',
      '-vf', `fps=${this.fps},scale='min(${width},iw)':-2`,
      '-c:v', 'mjpeg', '-q:v', String(this.o.quality ?? 7),
      '-f', 'image2pipe', '-flush_packets', '1', 'pipe:1',
    ];
    const [file, argv] = this.setpriv ? [this.setpriv, ['--pdeathsig', 'INT', '--', this.o.ffmpegPath, ...args]] : [this.o.ffmpegPath, args];
    // Like util/child spawnGroup (own process group), but with stdin and stdout piped.
    const proc = spawn(file, argv, { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const run: DecoderRun = { proc, queue: [], feeding: false, lastFedStartMs: -Infinity, planned: false, exited: Promise.resolve() };
    this.run = run;
    this.stats_.runs++;
    proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
      tail.push(...s.split('\n').filter((l) => l.trim()));
      if (tail.length > 40) tail.splice(0, tail.length - 10);
    });
    proc.stdin!.on('error', () => undefined); // EPIPE when ffmpeg dies; its exit reports why
    const splitter = new JpegSplitter();
    proc.stdout!.on('data', (chunk: Buffer) => splitter.push(chunk).forEach((jpeg) => this.onFrame(run, jpeg)));
    proc.once('error', (err) => tail.push(`spawn failed: ${err.message}`));
    run.exited = new Promise((resolve) => proc.once('close', (code, signal) => resolve(this.onExit(run, code, signal, tail.slice(-10)))));
    this.o.log.info({ pid: proc.pid, fps: this.fps, width }, 'preview ffmpeg started');
    this.o.store.on('segment', this.onSegment);
    const newest = this.o.store.all().at(-1);
    if (newest) this.feed(run, newest);
  }

  private feed(run: DecoderRun, seg: Segment): void {
    if (seg.startMs <= run.lastFedStartMs) return;
    run.lastFedStartMs = seg.startMs;
    run.queue.push(seg);
    // ffmpeg falling behind (slow CPU): skip whole segments rather than fall further behind.
    if (run.queue.length > 2) run.queue.shift();
    if (!run.feeding) void this.pump(run);
  }

  private async pump(run: DecoderRun): Promise<void> {
    run.feeding = true;
    const stdin = run.proc.stdin!;
    for (let seg = run.queue.shift(); seg && this.run === run; seg = run.queue.shift()) {
      const data = await readFile(seg.path).catch(() => null); // deleted meanwhile: skip it
      if (!data || this.run !== run || stdin.write(data)) continue;
      await new Promise<void>((resolve) => {
        const done = () => (stdin.off('drain', done), stdin.off('close', done), resolve());
        stdin.on('drain', done).on('close', done);
      });
    }
    run.feeding = false;
  }

  private onFrame(run: DecoderRun, jpeg: Buffer): void {
    if (this.run !== run) return;
    this.stats_.framesDecoded++;
    this.pending.push(jpeg);
    const maxQueued = this.fps * 3;
    if (this.pending.length > maxQueued) this.pending.splice(0, this.pending.length - maxQueued);
    if (!this.paceTimer) this.emitNext();
  }

  private emitNext(): void {
    const jpeg = this.pending.shift();
    if (!jpeg) {
      this.paceTimer = null;
      return;
    }
    this.lastFrame = jpeg;
    const limit = this.o.maxBufferedBytes ?? 512 * 1024;
    for (const v of this.viewers) {
      if (v.buffered() > limit) this.stats_.framesSkipped++;
      else v.send(jpeg);
    }
    this.paceTimer = setTimeout(() => this.emitNext(), 1000 / this.fps);
    this.paceTimer.unref();
  }

  private onExit(run: DecoderRun, code: number | null, signal: NodeJS.Signals | null, tail: string[]): void {
    if (this.run === run) {
      this.run = null;
      this.o.store.off('segment', this.onSegment);
    }
    if (run.planned) {
      this.o.log.info({ pid: run.proc.pid }, 'preview ffmpeg stopped');
      return;
    }
    this.o.log.warn({ pid: run.proc.pid, code, signal, stderr: tail }, 'preview ffmpeg exited; ending the preview streams');
    this.clearPacing();
    this.endViewers();
  }

  private async stopRun(): Promise<void> {
    const run = this.run;
    if (!run) return;
    run.planned = true;
    this.run = null;
    this.o.store.off('segment', this.onSegment);
    this.clearPacing();
    run.proc.stdin!.destroy();
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-run.proc.pid!, sig);
      } catch {
        /* already gone */
      }
    };
    kill('SIGINT');
    const timer = setTimeout(() => kill('SIGKILL'), 1000);
    await run.exited;
    clearTimeout(timer);
  }

  private clearPacing(): void {
    if (this.paceTimer) clearTimeout(this.paceTimer);
    this.paceTimer = null;
    this.pending = [];
    this.lastFrame = null;
  }

  private endViewers(): void {
    const all = [...this.viewers];
    this.viewers.clear();
    for (const v of all) v.end();
  }
}
