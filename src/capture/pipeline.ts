/** The capture pipeline: one supervised ffmpeg per camera writing stamped segments into the store. */
import { mkdir, readFile, writeFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import type { Config } from '../config/schema.js';
import type { Clock } from '../util/clock.js';
import { spawnGroup, processMatches, findSetpriv, type GroupChild } from '../util/child.js';
import { buildCaptureCommand, exitMessage, runFiles, RPICAM_PREFIX, type CaptureCommand } from './ffmpeg-args.js';
import { tailCsv } from './csv-tail.js';
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
}

/**
 * MPEG-TS timestamps wrap after 2^33 / 90 kHz ≈ 26.5 h from a run's base; a new run (new base)
 * is started before that, at a moment when no recording is running.
 */
const ROTATE_AFTER_MS = 24 * 3600 * 1000;

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
  private stallTimer: NodeJS.Timeout | null = null;
  private tail: { stop(): void } | null = null;
  private runStartedAt = 0;
  private rotating = false;
  private readonly pidFile: string;
  private readonly setpriv: string | null;
  private profile: CaptureProfile;
  private runBase = 0;

  constructor(private readonly o: CaptureOptions) {
    super();
    this.backoffMs = o.config.capture.restartMinMs;
    this.pidFile = join(o.config.dataDir, 'capture.pid');
    this.setpriv = o.setprivPath === undefined ? findSetpriv() : o.setprivPath;
    const { camera, encoder } = o.config;
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
    if (config.encoder.codec === 'copy') {
      if (p.width !== this.profile.width || p.height !== this.profile.height || p.fps !== this.profile.fps || p.bitrateKbps !== this.profile.bitrateKbps) {
        unchangeable.push('resolution', 'fps', 'bitrate');
      }
      return { restarted: false, unchangeable };
    }
    if (config.camera.source === 'ffmpeg' && p.fps !== this.profile.fps) {
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
    const text = await readFile(this.pidFile, 'utf8').catch(() => '');
    const pid = Number(text.trim());
    if (pid > 1 && (await processMatches(pid, this.o.store.dir))) {
      this.o.log.warn({ pid }, 'stopping an ffmpeg left running by a previous daemon');
      try {
        process.kill(-pid, 'SIGINT');
      } catch {
        /* gone */
      }
      for (let i = 0; i < 50 && (await processMatches(pid, this.o.store.dir)); i++) await sleep(100);
      if (await processMatches(pid, this.o.store.dir)) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await sleep(200);
      }
    }
    await unlink(this.pidFile).catch(() => undefined);
  }

  /** Start capturing (returns once ffmpeg is spawned; segments follow). */
  async start(): Promise<void> {
    this.stopping = false;
    await mkdir(this.o.store.dir, { recursive: true });
    this.launch();
  }

  private launch(): void {
    if (this.stopping) return;
    const { config, log } = this.o;
    // A fresh base per run, never reused, so segment names never collide across runs.
    let runBase = Math.floor(this.o.clock.now() / 1000);
    const last = this.o.store.all().at(-1);
    if (last && runBase <= last.runBase) runBase = last.runBase + 1;
    if (runBase <= this.runBase) runBase = this.runBase + 1;
    this.runBase = runBase;
    const { width, height, fps, bitrateKbps } = this.profile;
    const scaled = config.camera.source === 'ffmpeg' && (width !== config.camera.width || height !== config.camera.height);
    let command: CaptureCommand;
    try {
      const spec = {
        camera: { ...config.camera, width, height, fps },
        encoder: { ...config.encoder, bitrateKbps },
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
    const child = spawnGroup(command.cmd, command.args, {
      onStderrLine: (l) => (l.startsWith(RPICAM_PREFIX) ? log.debug({ rpicam: l.slice(RPICAM_PREFIX.length) }, 'rpicam-vid says') : log.debug({ ffmpeg: l }, 'ffmpeg says')),
      // If the daemon dies hard, the kernel tells ffmpeg to close its segment and exit.
      setprivPath: this.setpriv,
    });
    this.child = child;
    this.runStartedAt = this.o.clock.now();
    void writeFile(this.pidFile, `${child.pid}\n`).catch(() => undefined);
    this.tail = tailCsv(runFiles(this.o.store.dir, runBase).csv, (line) => this.onListLine(line, runBase));
    this.armStallTimer();
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
    this.armStallTimer();
    if (this.o.clock.now() - this.runStartedAt > (this.o.rotateAfterMs ?? ROTATE_AFTER_MS) && this.o.mayRotate?.() && this.child && !this.rotating) {
      this.o.log.info('starting a new capture run (timestamps of a run must stay below 26 h)');
      this.rotating = true;
      void this.child.stop(this.o.config.capture.stopGraceMs);
    }
  }

  private armStallTimer(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    const limit = Math.max(5000, this.o.config.segments.durationSec * 5000);
    this.stallTimer = setTimeout(() => {
      if (this.stopping || !this.child) return;
      this.o.log.error({ seconds: limit / 1000 }, 'ffmpeg produced no segment in time; restarting it');
      this.setHealth(false, `capture stalled: no video for ${limit / 1000} s`);
      void this.child.stop(this.o.config.capture.stopGraceMs);
    }, limit);
    this.stallTimer.unref();
  }

  private async onExit(child: GroupChild, r: { code: number | null; signal: NodeJS.Signals | null }): Promise<void> {
    if (this.child !== child) return;
    this.tail?.stop();
    this.tail = null;
    if (this.stallTimer) clearTimeout(this.stallTimer);
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
    const message = exitMessage(tail, r);
    this.health.restarts++;
    this.o.log.error({ code: r.code, signal: r.signal, stderr: tail, retryInMs: this.backoffMs }, 'capture failed; restarting');
    this.setHealth(false, message);
    this.restartTimer = setTimeout(() => this.launch(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.config.capture.restartMaxMs);
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
    if (this.stallTimer) clearTimeout(this.stallTimer);
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until no process of group `pgid` is left; SIGKILL the group after `graceMs`. */
async function groupGone(pgid: number, graceMs: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (pgid <= 1) return;
  const end = Date.now() + graceMs;
  while (alive() && Date.now() < end) await sleep(20);
  if (!alive()) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* gone */
  }
  for (let i = 0; i < 50 && alive(); i++) await sleep(20);
}
