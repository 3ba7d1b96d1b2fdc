/** Clips: time windows around a mark cut from the segment store (stream copy), kept in their own catalog. */
import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { CLIP_ID } from '../protocols/var/messages.js';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import type { Segment, SegmentStore } from '../capture/segment-store.js';
import { assembleRange } from '../media/assemble.js';
import { tailOpenSegment, type TailEnd } from '../capture/segment-tail.js';
import { ClipError, toClipError } from './clip-errors.js';
export { ClipError } from './clip-errors.js';
import { transcodePreview } from '../media/preview-clip.js';
import { AtomicFile, readJsonFile } from '../util/atomic.js';
import type { RecordingHandle } from './types.js';
import { OpenReaders } from '../util/open-readers.js';

/** Clip ids this catalog accepts (its own and a coordinator's): safe as a file name. */
export const CLIP_ID_RE = CLIP_ID;

/** Clips being made at once (each may wait for its post-roll); more are refused with BUSY. */
const MAX_IN_FLIGHT = 16;

/** A finished clip. */
export interface ClipInfo {
  clipId: string;
  markId: string;
  sessionId: string | null;
  quality: 'original' | 'preview';
  /** The requested window, epoch ms. */
  fromMs: number;
  toMs: number;
  /** Capture times of the first and last frame in the file. */
  firstFrameMs: number;
  lastFrameMs: number;
  durationMs: number;
  sizeBytes: number;
  createdAtMs: number;
  /** When a download of the whole file last completed (delivered clips may be removed for space). */
  downloadedAtMs?: number | null;
  /** Who asked for it: a coordinator's request_clip (absent = coordinator) or the unit's button. */
  source?: 'coordinator' | 'button';
  /** The mark the window is around (epoch ms), when known at export. */
  markMs?: number;
}

/** One clip as GET /clips lists it: its ClipInfo with the id, download path, source and mark time spelled out. */
export type ClipListItem = Omit<ClipInfo, 'clipId' | 'downloadedAtMs' | 'source' | 'markMs'> & {
  id: string;
  url: string;
  source: 'coordinator' | 'button';
  markMs: number | null;
  delivered: boolean;
  deliveredAtMs: number | null;
};

/** A clip request, resolved to absolute times. */
export interface ClipRequest {
  clipId: string | null;
  markId: string;
  sessionId: string | null;
  fromMs: number;
  toMs: number;
  quality: 'original' | 'preview';
  /** Who asked (default coordinator) and the mark time, kept with the clip for listings. */
  source?: 'coordinator' | 'button';
  markMs?: number;
}

/** Options of the clip catalog. */
export interface ClipStoreOptions {
  dir: string;
  store: SegmentStore;
  ffmpegPath: string;
  segmentSec: number;
  previewWidth: number;
  previewBitrateKbps: number;
  /** Is capture running (decides how long to wait for the post-roll)? */
  captureAlive: () => boolean;
  clock: Clock;
  log: Logger;
}

/** The clip catalog: clips/<clipId>.mp4 plus clips.json; the network reaches clips only by exact id. */
export class ClipStore {
  private readonly entries = new Map<string, ClipInfo>();
  private readonly inFlight = new Map<string, { fromMs: number; done: Promise<ClipInfo> }>();
  private readonly readers = new OpenReaders();
  /** Aborted at shutdown: clips waiting for their post-roll finish with what was captured. */
  private readonly closing = new AbortController();
  private readonly index: AtomicFile;

  constructor(private readonly o: ClipStoreOptions) {
    this.index = new AtomicFile(join(o.dir, 'clips.json'));
  }

  /** Load clips.json, keeping only entries whose file exists; stray temporary files are removed. */
  async load(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    const saved = await readJsonFile<ClipInfo[]>(this.index.path, []);
    const names = new Set(await readdir(this.o.dir));
    for (const n of names) if (n.startsWith('.')) await unlink(join(this.o.dir, n)).catch(() => undefined);
    for (const c of saved) {
      if (CLIP_ID_RE.test(c.clipId) && names.has(`${c.clipId}.mp4`)) this.entries.set(c.clipId, c);
      else this.o.log.warn({ clipId: c.clipId }, 'clip listed but missing on disk; dropped from the list');
    }
  }

  private async save(): Promise<void> {
    await this.index.save(() => JSON.stringify([...this.entries.values()], null, 1));
  }

  /** How many clips there are and their bytes (for /health). */
  usage(): { count: number; bytes: number; undelivered: number } {
    const all = [...this.entries.values()];
    return { count: all.length, bytes: all.reduce((a, c) => a + c.sizeBytes, 0), undelivered: all.filter((c) => !c.downloadedAtMs).length };
  }

  /** All clips, oldest first. */
  list(): ClipInfo[] {
    return [...this.entries.values()].sort((a, b) => a.createdAtMs - b.createdAtMs);
  }

  /** All clips for GET /clips, oldest first; `markOf` finds the time of a mark not stored with its clip. */
  listing(markOf: (markId: string) => number | null): ClipListItem[] {
    return this.list().map(({ clipId, downloadedAtMs, source, markMs, ...rest }) => ({
      id: clipId,
      url: `/clips/${clipId}.mp4`,
      source: source ?? 'coordinator',
      markMs: markMs ?? markOf(rest.markId),
      ...rest,
      delivered: !!downloadedAtMs,
      deliveredAtMs: downloadedAtMs ?? null,
    }));
  }

  /** A clip by id. */
  get(clipId: string): ClipInfo | null {
    return this.entries.get(clipId) ?? null;
  }

  /** Earliest instant a clip being made still needs from the store (retention must keep it). */
  protectFromMs(): number {
    let min = Infinity;
    for (const f of this.inFlight.values()) min = Math.min(min, f.fromMs);
    return min;
  }

  /** Open a clip by exact id for download; null for anything not in the catalog. */
  async open(clipId: string): Promise<RecordingHandle | null> {
    if (!CLIP_ID_RE.test(clipId) || !this.entries.has(clipId)) return null;
    const path = join(this.o.dir, `${clipId}.mp4`);
    const st = await stat(path).catch(() => null);
    if (!st) return null;
    return this.readers.handle(clipId, { path, fileName: `${clipId}.mp4`, size: st.size });
  }

  /**
   * Make the clip [fromMs, toMs] (waiting for the end to be captured). A repeated request with the
   * same id and window gets the same clip; the same id for something else is refused.
   */
  async export(req: ClipRequest): Promise<ClipInfo> {
    if (req.clipId !== null && !CLIP_ID_RE.test(req.clipId)) throw new ClipError('CLIP_EXPORT_FAILED', 'clipId may hold only A-Z a-z 0-9 _ - (1-128 characters)');
    if (req.clipId !== null) {
      const have = this.entries.get(req.clipId);
      if (have) {
        if (have.markId === req.markId && have.fromMs === req.fromMs && have.toMs === req.toMs && have.quality === req.quality) return have;
        throw new ClipError('DUPLICATE_CLIP_ID', `clipId ${req.clipId} is already used by another clip`);
      }
      const running = this.inFlight.get(req.clipId);
      if (running) return running.done;
    }
    if (this.closing.signal.aborted) throw new ClipError('BUSY', 'the unit is shutting down');
    if (this.inFlight.size >= MAX_IN_FLIGHT) throw new ClipError('BUSY', `${MAX_IN_FLIGHT} clips are being made already; ask again when one is ready`);
    const clipId = req.clipId ?? `CLIP-${randomBytes(16).toString('base64url')}`;
    const done = this.make(clipId, req);
    this.inFlight.set(clipId, { fromMs: req.fromMs, done });
    try {
      return await done;
    } finally {
      this.inFlight.delete(clipId);
    }
  }

  private async make(clipId: string, req: ClipRequest): Promise<ClipInfo> {
    const { store, log, clock } = this.o;
    const t = performance.now();
    const out = join(this.o.dir, `${clipId}.mp4`);
    // The segments of one capture run: a clip never spans an ffmpeg restart (settings may differ).
    const known = store.overlapping(req.fromMs, req.toMs);
    const latest = store.all().at(-1);
    const base = known.find((s) => s.startMs <= (req.fromMs + req.toMs) / 2 && s.endMs > (req.fromMs + req.toMs) / 2) ?? known.at(-1) ?? latest;
    if (!base) throw new ClipError('NO_FOOTAGE', 'no footage has been captured yet');
    const segments = known.filter((s) => s.runBase === base.runBase);
    if (segments.length && segments[0].startMs > req.fromMs + 1) {
      log.warn({ clipId, fromMs: req.fromMs, firstMs: segments[0].startMs }, 'the start of the clip window is no longer (or not) in the segment store; the clip starts later');
    }
    const waitMs = this.o.captureAlive() ? this.o.segmentSec * 3000 + 3000 : 500;
    let waitedOut = false;
    // The post-roll is taken from the segments as ffmpeg writes them, up to the first frame past
    // the window: no waiting for the last segment to close.
    const closing = this.closing.signal;
    const tail = async function* (after: Segment): AsyncGenerator<Buffer, TailEnd> {
      const end: TailEnd = yield* tailOpenSegment(store, after, req.toMs, waitMs, closing);
      if (end.kind === 'gone') waitedOut = true;
      return end;
    };
    let segs = segments;
    if (segs.length === 0) {
      // Nothing of the window captured yet (a window in the future): wait for its first segment.
      const first = await store.firstEndingAfter(req.fromMs, Math.max(0, req.fromMs - clock.now()) + waitMs);
      if (!first) throw new ClipError('NO_FOOTAGE', 'no footage was captured in the requested window');
      segs = [first];
    }
    const quality = req.quality;
    const target = quality === 'preview' ? join(this.o.dir, `.${clipId}.original.mp4`) : out;
    let res;
    try {
      res = await assembleRange({ segments: segs, tail, startMs: req.fromMs, stopMs: req.toMs, outPath: target, ffmpegPath: this.o.ffmpegPath });
    } catch (err) {
      throw toClipError(err);
    }
    let sizeBytes = res.size;
    let durationMs = res.durationMs;
    const copiedMs = performance.now() - t;
    if (quality === 'preview') {
      try {
        ({ size: sizeBytes, durationMs } = await transcodePreview({ input: target, output: out, width: this.o.previewWidth, bitrateKbps: this.o.previewBitrateKbps, ffmpegPath: this.o.ffmpegPath }));
      } catch (err) {
        throw toClipError(err);
      } finally {
        await unlink(target).catch(() => undefined);
      }
    }
    if (waitedOut) log.warn({ clipId, toMs: req.toMs }, 'the end of the clip window was not captured in time; the clip ends at the last frame captured');
    const info: ClipInfo = {
      clipId,
      markId: req.markId,
      sessionId: req.sessionId,
      quality,
      fromMs: req.fromMs,
      toMs: req.toMs,
      firstFrameMs: res.firstFrameMs,
      lastFrameMs: res.lastFrameMs,
      durationMs: Math.round(durationMs),
      sizeBytes,
      createdAtMs: clock.now(),
      ...(req.source ? { source: req.source } : {}),
      ...(req.markMs !== undefined ? { markMs: req.markMs } : {}),
    };
    this.entries.set(clipId, info);
    try {
      await this.save();
    } catch (err) {
      this.entries.delete(clipId);
      await unlink(out).catch(() => undefined);
      throw toClipError(err);
    }
    log.info(
      {
        clipId,
        markId: req.markId,
        quality,
        frames: res.frames,
        durationMs: info.durationMs,
        sizeBytes,
        firstFrameOffsetMs: +(res.firstFrameMs - req.fromMs).toFixed(2),
        copyMs: Math.round(copiedMs),
        totalMs: Math.round(performance.now() - t),
      },
      'clip ready',
    );
    return info;
  }

  /** Shutdown: clips still waiting for their post-roll are finished at once with what was captured. */
  async close(): Promise<void> {
    if (this.inFlight.size) this.o.log.warn({ clips: [...this.inFlight.keys()] }, 'shutting down: clips being made end at the last frame captured');
    this.closing.abort();
    await Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
  }

  /** A download of the whole clip completed: from now on it may go when space or its keep time runs out. */
  async delivered(clipId: string): Promise<void> {
    const c = this.entries.get(clipId);
    if (!c) return;
    c.downloadedAtMs = this.o.clock.now();
    await this.save().catch((err) => this.o.log.warn({ err: (err as Error).message }, 'cannot save clips.json'));
  }

  /** Delivered clips, oldest delivery first, that nobody is downloading right now. */
  private removable(): ClipInfo[] {
    return this.list()
      .filter((c) => c.downloadedAtMs && !this.readers.isOpen(c.clipId))
      .sort((a, b) => (a.downloadedAtMs ?? 0) - (b.downloadedAtMs ?? 0));
  }

  /** Remove delivered clips older than `keepMs` since their download. Undelivered clips are never removed. */
  async expire(keepMs: number): Promise<void> {
    const limit = this.o.clock.now() - keepMs;
    const old = this.removable().filter((c) => (c.downloadedAtMs ?? Infinity) < limit);
    for (const c of old) await this.remove(c.clipId);
    if (old.length) this.o.log.info({ removed: old.length }, 'delivered clips past clips.keepDeliveredHours removed');
  }

  /** Low space: remove delivered clips, oldest delivery first, until `needBytes` are freed. */
  async reclaim(needBytes: number): Promise<number> {
    let freed = 0;
    const gone: string[] = [];
    for (const c of this.removable()) {
      if (freed >= needBytes) break;
      freed += c.sizeBytes;
      gone.push(c.clipId);
      await this.remove(c.clipId);
    }
    if (gone.length) this.o.log.warn({ removed: gone.length, freedMB: +(freed / 1e6).toFixed(1) }, 'low space: delivered clips removed');
    return freed;
  }

  /** Remove a clip (its file goes at once; a download already running keeps its open descriptor). */
  async remove(clipId: string): Promise<boolean> {
    if (!this.entries.delete(clipId)) return false;
    await this.save();
    await unlink(join(this.o.dir, `${clipId}.mp4`)).catch(() => undefined);
    return true;
  }
}
