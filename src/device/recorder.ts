/** Recordings as ranges over the segment store: start/stop, persistence, assembly and crash recovery. */
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import type { Segment, SegmentStore } from '../capture/segment-store.js';
import { assembleRange, AssemblyError } from '../media/assemble.js';
import { tailOpenSegment, type TailEnd } from '../capture/segment-tail.js';
import { AtomicFile, readJsonFile } from '../util/atomic.js';
import type { RecordingsCatalog } from './catalog.js';
import type { RecordingInfo } from './types.js';

/** A recording range in progress (persisted so a crash can finish it). */
export interface RangeState {
  startMs: number;
  /** Set once a stop was asked for (may be in the future). */
  stopMs: number | null;
}

interface Persisted {
  active: RangeState | null;
  /** Ranges whose assembly failed for lack of space, retried later. */
  pending: Array<{ startMs: number; stopMs: number }>;
}

/** Options of the recorder. */
export interface RecorderOptions {
  dataDir: string;
  store: SegmentStore;
  catalog: RecordingsCatalog;
  clock: Clock;
  log: Logger;
  ffmpegPath: string;
  segmentSec: number;
  /** Is ffmpeg producing segments right now? (decides how long to wait for the last one) */
  captureAlive: () => boolean;
}

/** A finished recording with the capture times of its first and last frame. */
export type FinishedRecording = RecordingInfo & { firstFrameMs: number; lastFrameMs: number };

/** Owns the active range and turns finished ranges into catalog files. */
export class Recorder {
  private state: Persisted = { active: null, pending: [] };
  private readonly file: AtomicFile;

  constructor(private readonly o: RecorderOptions) {
    this.file = new AtomicFile(join(o.dataDir, 'recording-state.json'));
  }

  /** Load the persisted state; returns the ranges an earlier run left unfinished (to finish). */
  async load(): Promise<Array<{ startMs: number; stopMs: number | null }>> {
    this.state = await readJsonFile<Persisted>(this.file.path, { active: null, pending: [] });
    const left = [...this.state.pending, ...(this.state.active ? [this.state.active] : [])];
    return left;
  }

  private async persist(): Promise<void> {
    await this.file.save(() => JSON.stringify(this.state));
  }

  /** The active range, if any. */
  get active(): RangeState | null {
    return this.state.active;
  }

  /** Earliest instant any unfinished range still needs (segments after it must be kept). */
  protectFromMs(): number {
    const starts = [...this.state.pending.map((p) => p.startMs), ...(this.state.active ? [this.state.active.startMs] : [])];
    return starts.length ? Math.min(...starts) : Infinity;
  }

  /** Begin a range at `startMs` (persisted before this resolves). */
  async begin(startMs: number): Promise<void> {
    this.state.active = { startMs, stopMs: null };
    await this.persist();
  }

  /** Mark the active range's stop time (persisted). */
  async setStop(stopMs: number): Promise<void> {
    if (!this.state.active) return;
    this.state.active.stopMs = stopMs;
    await this.persist();
  }

  /** Drop the active range without producing a file (a scheduled start cancelled before it began). */
  async cancel(): Promise<void> {
    this.state.active = null;
    await this.persist();
  }

  /**
   * Finish the active range [start, stopMs]: wait for the segment holding stopMs, assemble, add
   * to the catalog. On a full disk the range is kept as pending and the error is rethrown.
   */
  async finishActive(stopMs: number): Promise<FinishedRecording> {
    const active = this.state.active;
    if (!active) throw new Error('not recording');
    try {
      const info = await this.assemble(active.startMs, stopMs, true);
      this.state.active = null;
      await this.persist();
      return info;
    } catch (err) {
      // Keep the range (and so its segments) for a retry unless there is nothing to assemble.
      if (!(err instanceof AssemblyError && err.code === 'NO_FOOTAGE')) {
        this.state.pending.push({ startMs: active.startMs, stopMs });
      }
      this.state.active = null;
      await this.persist();
      throw err;
    }
  }

  /** Finish a range left by an earlier run (crash) or pending for space. */
  async finishLeftover(range: { startMs: number; stopMs: number | null }, fallbackStopMs: number): Promise<FinishedRecording> {
    const stopMs = range.stopMs ?? fallbackStopMs;
    const info = await this.assemble(range.startMs, stopMs);
    this.state.pending = this.state.pending.filter((p) => p.startMs !== range.startMs);
    if (this.state.active?.startMs === range.startMs) this.state.active = null;
    await this.persist();
    return info;
  }

  /** Forget a leftover that cannot be assembled (no footage survived). */
  async dropLeftover(startMs: number): Promise<void> {
    this.state.pending = this.state.pending.filter((p) => p.startMs !== startMs);
    if (this.state.active?.startMs === startMs) this.state.active = null;
    await this.persist();
  }

  /** Ranges waiting for disk space. */
  pending(): Array<{ startMs: number; stopMs: number }> {
    return [...this.state.pending];
  }

  /**
   * Assemble [startMs, stopMs] into the catalog. `live`: the end may still be being captured;
   * assembly starts at once with the segments already finished and takes the rest as they come
   * (from one capture run), so the reply follows the last segment closely.
   */
  private async assemble(startMs: number, stopMs: number, live = false): Promise<FinishedRecording> {
    const { store, catalog, log } = this.o;
    const fileName = catalog.uniqueName(startMs);
    const t = performance.now();
    const waitMs = this.o.captureAlive() ? this.o.segmentSec * 3000 + 3000 : 500;
    let segments = store.overlapping(startMs, stopMs);
    const oneRun = segments.every((s) => s.runBase === segments[0]?.runBase);
    const pending = (store.latestEndMs() ?? -Infinity) < stopMs;
    let tail: ((after: Segment) => AsyncGenerator<Buffer, TailEnd>) | undefined;
    let waitedOut = false;
    if (live && pending && oneRun && segments.length > 0) {
      // The end comes from the segment ffmpeg is still writing, up to the first frame past the stop.
      tail = async function* (after) {
        const end: TailEnd = yield* tailOpenSegment(store, after, stopMs, waitMs);
        if (end.kind === 'gone') waitedOut = true;
        return end;
      };
    } else if (live && pending) {
      waitedOut = !(await store.waitForCoverage(stopMs, waitMs));
      segments = store.overlapping(startMs, stopMs);
    }
    const res = await assembleRange({
      segments,
      tail,
      startMs,
      stopMs,
      outPath: catalog.pathOf(fileName),
      ffmpegPath: this.o.ffmpegPath,
    });
    if (waitedOut) log.warn({ stopMs }, 'the last segment did not arrive in time; the recording ends at the last one captured');
    const info: RecordingInfo = {
      fileName,
      fileSize: res.size,
      creationDate: res.firstFrameMs / 1000,
      modificationDate: this.o.clock.now() / 1000,
    };
    await catalog.add(info);
    log.info(
      {
        fileName,
        fileSize: res.size,
        frames: res.frames,
        firstFrameOffsetMs: +(res.firstFrameMs - startMs).toFixed(2),
        lastFrameMs: res.lastFrameMs,
        assembleMs: Math.round(performance.now() - t),
      },
      'recording finished',
    );
    return { ...info, firstFrameMs: res.firstFrameMs, lastFrameMs: res.lastFrameMs };
  }
}
