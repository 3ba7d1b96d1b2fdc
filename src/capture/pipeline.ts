/** The capture pipeline: one supervised ffmpeg per camera writing stamped segments into the store. */
import { mkdir, writeFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import type { Config } from '../config/schema.js';
import type { Clock } from '../util/clock.js';
import { spawnGroup, findSetpriv, type GroupChild } from '../util/child.js';
import { buildCaptureCommand, exitMessage, rpicamSize, rpicamStreamMismatch, runFiles, RPICAM_PREFIX, type CaptureCommand } from './ffmpeg-args.js';
import { tailCsv } from './csv-tail.js';
import { longSegmentWarning, StallWatch } from './stall-watch.js';
import { groupGone, reapStaleCapture, sleep } from './capture-process.js';
import { parseSegmentLine, type SegmentStore } from './segment-store.js';

/** Health of the capture pipeline. */
export interface CaptureHealth {
  alive: boolean;
  /** What went wrong last, while not alive. */
  error: string | null;
  restarts: number;
  lastSegmentAtMs: number | null;
}

/** The capture settings a VAR start_record profile may change. */
export interface CaptureProfile {
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
}

/** Options of the pipeline. */
export interface CaptureOptions {
  config: Config;
  store: SegmentStore;
  clock: Clock;
  log: Logger;
  /** May the pipeline restart now for a planned run rotation? (not while recording) */
  mayRotate?: () => boolean;
  /** util-linux setpriv for parent-death signals; undefined = look it up, null = don't use it. */
  setprivPath?: string | null;
  /** Age of a run after which it is rotated (default 24 h; tests shorten it). */
  rotateAfterMs?: number;
  /**
   * Set when the camera is not known yet (camera.source auto found none at start-up): capture
   * reports `error` and calls `find` before each run, with the restart backoff, until it
   * resolves; its camera and encoder then replace config.camera/config.encoder.
   */
  findCamera?: CameraFinder;
}

/** How a pipeline started without a camera looks for one. */
export interface CameraFinder {
  /** Why there is no camera now (the capture error until one is found). */
  error: string;
  /** Look again: the camera and encoder to run with, or a rejection saying why there is none. */
  find(): Promise<{ camera: Config['camera']; encoder: Config['encoder'] }>;
}

/**
 * MPEG-TS timestamps wrap after 2^33 / 90 kHz ≈ 26.5 h from a run's base; a new run (new base)
 * is started before that, at a moment when no recording is running.
 */
const ROTATE_AFTER_MS = 24 * 3600 * 1000;

/** Time a run may take to write its first segment file, on top of the stall limit (opening and probing the camera). */
const STARTUP_GRACE_MS = 10000;

/**
 * Runs ffmpeg from start() to stop(), restarting it with exponential backoff when it dies or
 * stalls. Emits 'health' whenever alive/error changes.
 */
export class CapturePipeline extends EventEmitter {
  private child: GroupChild | null = null;
  private stopping = false;
  private health: CaptureHealth = { alive: false, error: null, restarts: 0, lastSegmentAtMs: null };
  private backoffMs: number;
  private restartTimer: NodeJS.Timeout | null = null;
  private stall: StallWatch | null = null;
  private tail: { stop(): void } | null = null;
  private runStartedAt = 0;
  private rotating = false;
  private readonly pidFile: string;
  private readonly setpriv: string | null;
  private profile: CaptureProfile;
  private runBase = 0;
  /** Camera and encoder of the runs (config's, or what findCamera found). */
  private camera: Config['camera'];
  private encoder: Config['encoder'];
  private finder: CameraFinder | null;
  private finding: Promise<void> | null = null;
  private longSegmentsWarned = false;
  /** Why the current run is being stopped by the pipeline itself (reported instead of ffmpeg's exit). */
  private runError: string | null = null;

  constructor(private readonly o: CaptureOptions) {
    super();
    this.backoffMs = o.config.capture.restartMinMs;
    this.pidFile = join(o.config.dataDir, 'capture.pid');
    this.setpriv = o.setprivPath === undefined ? findSetpriv() : o.setprivPath;
    const { camera, encoder } = o.config;
    this.camera = camera;
    this.encoder = encoder;
    this.finder = o.findCamera ?? null;
    if (this.finder) this.health.error = this.finder.error;
    this.profile = { width: camera.width, height: camera.height, fps: camera.fps, bitrateKbps: encoder.bitrateKbps };
    if (!this.setpriv) o.log.warn('util-linux setpriv not found: ffmpeg may outlive a crashed daemon (it is reaped at the next start)');
  }

  /** Current health (a copy). */
  status(): CaptureHealth {
    return { ...this.health };
  }

  /** The settings capture runs with now. */
  currentProfile(): CaptureProfile {
    return { ...this.profile };
  }

  /** The run base of the running (or last) ffmpeg run; segments of one run join without a gap. */
  currentRunBase(): number {
    return this.runBase;
  }

  /**
   * Run with `p` from now on. ffmpeg is restarted (a new run) only when something differs;
   * resolves true when it was. Settings a source cannot change are reported by `unchangeable`.
   */
  applyProfile(p: CaptureProfile): { restarted: boolean; unchangeable: string[] } {
    const { config, log } = this.o;
    const unchangeable: string[] = [];
    const next = { ...p };
    if (this.encoder.codec === 'copy') {
      if (p.width !== this.profile.width || p.height !== this.profile.height || p.fps !== this.profile.fps || p.bitrateKbps !== this.profile.bitrateKbps) {
        unchangeable.push('resolution', 'fps', 'bitrate');
      }
      return { restarted: false, unchangeable };
    }
    if (this.camera.source === 'ffmpeg' && p.fps !== this.profile.fps) {
      unchangeable.push('fps');
      next.fps = this.profile.fps;
    }
    const same = (Object.keys(next) as Array<keyof CaptureProfile>).every((k) => next[k] === this.profile[k]);
    if (same) return { restarted: false, unchangeable };
    log.info({ from: this.profile, to: next }, 'capture settings change; restarting ffmpeg');
    this.profile = next;
    if (this.child && !this.rotating) {
      this.rotating = true;
      void this.child.stop(config.capture.stopGraceMs);
    }
    return { restarted: true, unchangeable };
  }

  /** Kill an ffmpeg left behind by a previous daemon that died without stopping it. */
  async reapStale(): Promise<void> {
    await reapStaleCapture(this.pidFile, this.o.store.dir, this.o.log);
  }

  /** Start capturing (returns once ffmpeg is spawned; segments follow). */
  async start(): Promise<void> {
    this.stopping = false;
    await mkdir(this.o.store.dir, { recursive: true });
    // Without a camera the first look was just made at start-up: look again after the first backoff.
    if (this.finder) this.retryLater();
    else this.launch();
  }

  /** Launch again after the current backoff, doubling it (up to restartMaxMs) for the next time. */
  private retryLater(): void {
    if (this.stopping) return;
    this.restartTimer = setTimeout(() => this.launch(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.config.capture.restartMaxMs);
  }

  /** Ask findCamera again; launch with what it finds, or report why not and retry later. */
  private lookForCamera(finder: CameraFinder): void {
    const { log } = this.o;
    this.finding = finder
      .find()
      .then(
        ({ camera, encoder }) => {
          if (this.stopping) return;
          this.finder = null;
          this.camera = camera;
          this.encoder = encoder;
          this.profile = { width: camera.width, height: camera.height, fps: camera.fps, bitrateKbps: encoder.bitrateKbps };
          log.info({ source: camera.source, size: `${camera.width}x${camera.height}`, fps: camera.fps, codec: encoder.codec }, 'camera found; starting capture');
          this.launch();
        },
        (err: Error) => {
          if (this.stopping) return;
          this.setHealth(false, err.message);
          log.warn({ err: err.message, retryInMs: this.backoffMs }, 'still no camera');
          this.retryLater();
        },
      )
      .finally(() => (this.finding = null));
  }

  private launch(): void {
    if (this.stopping) return;
    if (this.finder) return this.lookForCamera(this.finder);
    const { config, log } = this.o;
    // A fresh base per run, never reused, so segment names never collide across runs.
    let runBase = Math.floor(this.o.clock.now() / 1000);
    const last = this.o.store.all().at(-1);
    if (last && runBase <= last.runBase) runBase = last.runBase + 1;
    if (runBase <= this.runBase) runBase = this.runBase + 1;
    this.runBase = runBase;
    const { width, height, fps, bitrateKbps } = this.profile;
    const scaled = this.camera.source === 'ffmpeg' && (width !== this.camera.width || height !== this.camera.height);
    let command: CaptureCommand;
    const camera = { ...this.camera, width, height, fps };
    try {
      const spec = {
        camera,
        encoder: { ...this.encoder, bitrateKbps },
        scaleTo: scaled ? { width, height } : undefined,
        segmentSec: config.segments.durationSec,
        runBase,
        dir: this.o.store.dir,
      };
      command = buildCaptureCommand(spec, { ffmpegPath: config.capture.ffmpegPath, setprivPath: this.setpriv });
    } catch (err) {
      this.setHealth(false, (err as Error).message);
      log.error({ err: (err as Error).message }, 'capture cannot start');
      return;
    }
    log.info({ runBase, cmd: command.display }, 'starting ffmpeg');
    this.runError = null;
    const onRpicamLine = (line: string) => {
      log.debug({ rpicam: line }, 'rpicam-vid says');
      // libcamera may configure another size than asked: the raw frames would then be misread.
      const mismatch = camera.source === 'rpicam' ? rpicamStreamMismatch(line, camera) : null;
      if (mismatch && this.child === child && !this.runError) {
        log.error({ rpicam: line }, mismatch);
        this.runError = mismatch;
        void child.stop(config.capture.stopGraceMs);
      }
    };
    const child: GroupChild = spawnGroup(command.cmd, command.args, {
      onStderrLine: (l) => (l.startsWith(RPICAM_PREFIX) ? onRpicamLine(l.slice(RPICAM_PREFIX.length)) : log.debug({ ffmpeg: l }, 'ffmpeg says')),
      // If the daemon dies hard, the kernel tells ffmpeg to close its segment and exit.
      setprivPath: this.setpriv,
    });
    this.child = child;
    this.runStartedAt = this.o.clock.now();
    void writeFile(this.pidFile, `${child.pid}\n`).catch(() => undefined);
    this.tail = tailCsv(runFiles(this.o.store.dir, runBase).csv, (line) => this.onListLine(line, runBase));
    const limit = Math.max(5000, config.segments.durationSec * 5000);
    this.stall?.stop();
    this.stall = new StallWatch({
      dir: this.o.store.dir,
      runBase,
      limitMs: limit,
      startupGraceMs: STARTUP_GRACE_MS,
      onStall: (seconds) => {
        if (this.stopping || this.child !== child) return;
        log.error({ seconds }, 'no video from ffmpeg (no segment listed, the open segment did not grow); restarting it');
        this.runError = `capture stalled: no video for ${seconds} s`;
        this.setHealth(false, this.runError);
        void child.stop(config.capture.stopGraceMs);
      },
    });
    void child.exited.then((r) => this.onExit(child, r));
  }

  private onListLine(line: string, runBase: number): void {
    const seg = parseSegmentLine(line, runBase, this.o.store.dir);
    if (!seg) return;
    if (seg.seq === 0) {
      // ffmpeg lists the first segment of a run as starting at 0: use the end of it minus nothing
      // known; the store re-probes it below.
      void this.o.store.probeFirst(seg).then((s) => this.accept(s));
      return;
    }
    this.accept(seg);
  }

  private accept(seg: ReturnType<typeof parseSegmentLine>): void {
    if (!seg) return;
    this.o.store.add(seg);
    this.health.lastSegmentAtMs = this.o.clock.now();
    if (!this.health.alive) {
      this.o.log.info({ segment: seg.name }, 'capture is running');
      this.setHealth(true, null);
    }
    if (this.o.clock.now() - this.runStartedAt > 30000) this.backoffMs = this.o.config.capture.restartMinMs;
    if (seg.runBase === this.runBase) this.stall?.listed(seg.seq);
    this.warnLongSegments(seg);
    if (this.o.clock.now() - this.runStartedAt > (this.o.rotateAfterMs ?? ROTATE_AFTER_MS) && this.o.mayRotate?.() && this.child && !this.rotating) {
      this.o.log.info('starting a new capture run (timestamps of a run must stay below 26 h)');
      this.rotating = true;
      void this.child.stop(this.o.config.capture.stopGraceMs);
    }
  }

  /** Segments far longer than asked: the camera's keyframes are that far apart. Said once per pipeline. */
  private warnLongSegments(seg: NonNullable<ReturnType<typeof parseSegmentLine>>): void {
    if (this.longSegmentsWarned) return;
    const w = longSegmentWarning((seg.endMs - seg.startMs) / 1000, this.o.config.segments.durationSec, this.encoder.codec);
    if (!w) return;
    this.longSegmentsWarned = true;
    this.o.log.warn({ segment: seg.name, keyframeIntervalSec: w.intervalSec, wantedSec: this.o.config.segments.durationSec }, w.message);
  }

  private async onExit(child: GroupChild, r: { code: number | null; signal: NodeJS.Signals | null }): Promise<void> {
    if (this.child !== child) return;
    this.tail?.stop();
    this.tail = null;
    this.stall?.stop();
    // rpicam-vid (same group) must have let go of the camera before the next run opens it.
    await groupGone(child.pid, this.o.config.capture.stopGraceMs);
    this.child = null;
    if (this.stopping) return;
    if (this.rotating) {
      this.rotating = false;
      this.launch();
      return;
    }
    const tail = child.stderrTail();
    const message = this.runError ?? exitMessage(tail, r, this.camera.source === 'rpicam' ? rpicamSize({ ...this.camera, ...this.profile }) : undefined);
    this.health.restarts++;
    this.o.log.error({ code: r.code, signal: r.signal, stderr: tail, retryInMs: this.backoffMs }, 'capture failed; restarting');
    this.setHealth(false, message);
    this.retryLater();
  }

  private setHealth(alive: boolean, error: string | null): void {
    const changed = this.health.alive !== alive || this.health.error !== error;
    this.health.alive = alive;
    this.health.error = error;
    if (changed) this.emit('health', this.status());
  }

  /** Stop ffmpeg cleanly (it closes its last segment) and stop restarting it. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.stall?.stop();
    // A camera lookup under way (v4l2-ctl, a trial encode) is let finish, never left running.
    await this.finding;
    const child = this.child;
    if (child) {
      await child.stop(this.o.config.capture.stopGraceMs);
      await groupGone(child.pid, this.o.config.capture.stopGraceMs);
      // Pick up the final list lines ffmpeg wrote on its way out.
      await sleep(50);
    }
    this.tail?.stop();
    this.tail = null;
    this.child = null;
    await unlink(this.pidFile).catch(() => undefined);
    this.setHealth(false, null);
  }
}
