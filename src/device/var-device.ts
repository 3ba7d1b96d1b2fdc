/** The device as the VAR node sees it: sessions over the shared recorder, marks, clips, status facts. */
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import type { Config } from '../config/schema.js';
import type { SegmentStore } from '../capture/segment-store.js';
import type { CaptureProfile } from '../capture/pipeline.js';
import { factWarnings, type SystemFacts } from '../hw/system-facts.js';
import { framePtsOfFile } from '../media/ts-pts.js';
import type { StartRequest, VarDeviceApi, VarFailure } from '../protocols/var/types.js';
import type { Device } from './device.js';
import type { StorageGuard } from './storage.js';
import { ClipError, type ClipStore } from './clips.js';
import type { SessionBook, SessionRecord } from './sessions.js';
import type { StopResult } from './types.js';

/** What the VAR side is built from. */
export interface VarDeviceDeps {
  device: Device;
  capture: { status(): { alive: boolean; error: string | null }; currentProfile(): CaptureProfile; currentRunBase(): number; applyProfile(p: CaptureProfile): { restarted: boolean; unchangeable: string[] } };
  store: SegmentStore;
  clips: ClipStore;
  book: SessionBook;
  storage: Pick<StorageGuard, 'error' | 'freeBytes'>;
  facts: { current(): SystemFacts };
  camera: Config['camera'];
  markClock: 'device' | 'coordinator';
  /** storage.minFreeMB in bytes: a clip is refused when it would take free space below it. */
  minFreeBytes: number;
  segmentSec: number;
  clock: Clock;
  log: Logger;
}

const fail = (code: string, message: string): VarFailure => ({ ok: false, code, message });
/** A clip window may end at most this far in the future (its export waits for it). */
const MAX_WAIT_MS = 10 * 60000;

/** A resolution label the coordinator understands. */
export function resolutionLabel(width: number, height: number): string {
  const named: Record<number, string> = { 480: '480p', 720: '720p', 1080: '1080p', 1440: '1440p', 2160: '4K' };
  return named[height] && width >= height ? named[height] : `${width}x${height}`;
}

/** Sessions, marks and clips for the VAR node. */
export class VarDevice implements VarDeviceApi {
  private session: SessionRecord | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly endedListeners: Array<(sessionId: string | null, stoppedAtMs: number | null, fileName: string | null) => void> = [];

  constructor(private readonly d: VarDeviceDeps) {
    d.device.onStopped((r) => this.onStopped(r));
  }

  /** Be told when a session's recording ended other than by stop_record (MultiCam STOP, full disk). */
  onSessionEnded(fn: (sessionId: string | null, stoppedAtMs: number | null, fileName: string | null) => void): void {
    this.endedListeners.push(fn);
  }

  /** @inheritdoc */
  capabilities(): { maxResolution: string; maxFps: number; segmentRecording: boolean } {
    const { width, height, fps } = this.d.camera;
    return { maxResolution: resolutionLabel(width, height), maxFps: fps, segmentRecording: true };
  }

  /** @inheritdoc */
  status(): ReturnType<VarDeviceApi['status']> {
    const f = this.d.facts.current();
    const warnings = factWarnings(f);
    const free = this.d.storage.freeBytes();
    return {
      battery: f.battery,
      temperature: f.temperatureC,
      freeSpaceMB: free === null ? null : Math.floor(free / 1e6),
      isRecording: this.d.device.isRecording(),
      signalStrength: f.signalDbm,
      sessionId: this.session?.sessionId ?? null,
      // Only when there is something to say (under-voltage, throttling): the field is ours, not the document's.
      ...(warnings.length ? { warnings } : {}),
    };
  }

  /** @inheritdoc */
  startSession(req: StartRequest): Promise<{ ok: true; sessionId: string | null; startedAtMs: number } | VarFailure> {
    return this.serial(() => this.doStart(req));
  }

  /** Starts and stops run one after another, in arrival order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.catch(() => undefined).then(fn);
    this.chain = p;
    return p;
  }

  private async doStart(req: StartRequest): Promise<{ ok: true; sessionId: string | null; startedAtMs: number } | VarFailure> {
    const { device, capture, log, clock } = this.d;
    const open = this.session;
    if (open && device.isRecording()) {
      if (open.sessionId === req.sessionId && open.startedAtMs !== null) return { ok: true, sessionId: open.sessionId, startedAtMs: open.startedAtMs };
      return fail('ALREADY_RECORDING', `session ${open.sessionId ?? '(none)'} is recording; send stop_record first`);
    }
    if (device.isRecording()) return fail('ALREADY_RECORDING', 'a recording started outside this session (a MultiCam controller or the unit\'s button) is running; stop it first');
    const storageErr = this.d.storage.error();
    if (storageErr) return fail('LOW_STORAGE', storageErr);
    const previous = capture.currentProfile();
    const profile = this.profileFor(req.profile);
    const runBefore = capture.currentRunBase();
    const applied = capture.applyProfile(profile);
    if (applied.unchangeable.length) log.warn({ unchangeable: applied.unchangeable }, 'this camera source cannot apply part of the profile; recording with the current settings for those');
    if (applied.restarted && !(await this.waitForRun(runBefore + 1, 15000))) {
      const why = capture.status().error ?? 'no video within 15 s';
      capture.applyProfile(previous);
      log.error({ profile, why }, 'capture did not come back with the new profile; going back to the previous one');
      return fail('CAPTURE_FAILED', `capture did not start with ${profile.width}x${profile.height}@${profile.fps} (${why}); back to ${previous.width}x${previous.height}@${previous.fps}`);
    }
    const r = await device.startRecording(clock.now());
    if (r.kind !== 'started') return fail(r.kind === 'not_synchronized' ? 'CLOCK_NOT_SYNCHRONIZED' : 'START_FAILED', 'message' in r ? r.message : 'not started');
    // The session is current before anything is awaited, so a stop from elsewhere closes it.
    const { rec, saved } = this.d.book.open({ sessionId: req.sessionId, meta: req.meta, profile: capture.currentProfile(), startedAtMs: null });
    this.session = rec;
    const startedAtMs = await this.firstFrameAtOrAfter(r.atMs);
    // The recording runs whatever happens to the session book: a failed save is logged, not a failed start.
    await Promise.all([saved, this.d.book.started(rec, startedAtMs)]).catch((err) =>
      log.error({ err: (err as Error).message }, 'cannot save the session book; the recording goes on'),
    );
    log.info({ sessionId: req.sessionId, startedAtMs, requestedMs: r.atMs, profile: rec.profile, meta: req.meta }, 'VAR session recording');
    return { ok: true, sessionId: req.sessionId, startedAtMs };
  }

  /** The profile asked for, within what the camera is configured to deliver. */
  private profileFor(p: StartRequest['profile']): CaptureProfile {
    const cam = this.d.camera;
    const cur = this.d.capture.currentProfile();
    if (!p) return cur;
    let width = p.width ?? cur.width;
    let height = p.height ?? cur.height;
    if (width > cam.width || height > cam.height) {
      this.d.log.warn({ asked: `${width}x${height}`, max: `${cam.width}x${cam.height}` }, 'profile resolution above the camera maximum; using the maximum');
      width = cam.width;
      height = cam.height;
    }
    const fps = Math.min(p.fps ?? cur.fps, cam.fps);
    // 100 kbit/s … 50 Mbit/s: beyond that an SD card cannot keep up anyway.
    const bitrateKbps = p.bitrateBps ? Math.min(50000, Math.max(100, Math.round(p.bitrateBps / 1000))) : cur.bitrateKbps;
    return { width: width - (width % 2), height: height - (height % 2), fps, bitrateKbps };
  }

  /** True once a segment of run `runBase` or newer is in the store (within `timeoutMs`). */
  private async waitForRun(runBase: number, timeoutMs: number): Promise<boolean> {
    const { store } = this.d;
    if ((store.latestRunBase() ?? 0) >= runBase) return true;
    return (await store.waitForSegment((s) => (s.runBase >= runBase ? s : undefined), timeoutMs)) !== null;
  }

  /** Capture time of the first frame at or after `atMs` (read from the segments' own timestamps). */
  private async firstFrameAtOrAfter(atMs: number): Promise<number> {
    const { store, log } = this.d;
    const wait = this.d.segmentSec * 3000 + 3000;
    if (!(await store.waitForCoverage(atMs + 1, wait))) {
      log.warn({ atMs }, 'no frame captured after the start yet; recording_started carries the start request time');
      return atMs;
    }
    for (const seg of store.all().filter((x) => x.endMs > atMs).slice(0, 3)) {
      try {
        const frames = (await framePtsOfFile(seg.path)).map((p) => seg.runBase * 1000 + p / 90).filter((t) => t >= atMs - 0.006);
        if (frames.length) return Math.min(...frames);
      } catch (err) {
        log.warn({ segment: seg.name, err: (err as Error).message }, 'cannot read frame times of a segment');
      }
    }
    return atMs;
  }

  /** @inheritdoc */
  stopSession(sessionId: string | null): ReturnType<VarDeviceApi['stopSession']> {
    return this.serial(() => this.doStop(sessionId));
  }

  private async doStop(sessionId: string | null): ReturnType<VarDeviceApi['stopSession']> {
    const { device } = this.d;
    const open = this.session;
    if (!device.isRecording()) {
      const last = this.d.book.all().findLast((s) => s.startedAtMs !== null && s.stoppedAtMs !== null);
      if (last && sessionId !== null && last.sessionId === sessionId) return { ok: true, sessionId, stoppedAtMs: last.stoppedAtMs, fileName: last.fileName, repeated: true };
      return fail('NOT_RECORDING', 'not recording');
    }
    if (!open) return fail('NOT_RECORDING', 'the running recording was started outside this session (a MultiCam controller or the unit\'s button); stop it there');
    if (sessionId !== null && open.sessionId !== null && sessionId !== open.sessionId) {
      return fail('WRONG_SESSION', `session ${sessionId} is not the one recording (${open.sessionId})`);
    }
    const r = await device.stopRecording(this.d.clock.now());
    if (r.kind !== 'stopped') return fail('STOP_FAILED', r.message);
    return { ok: true, sessionId: open.sessionId, stoppedAtMs: r.lastFrameMs ?? null, fileName: r.fileName, repeated: false };
  }

  private onStopped(r: StopResult): void {
    const open = this.session;
    if (!open) return;
    this.session = null;
    const stoppedAtMs = r.kind === 'stopped' ? (r.lastFrameMs ?? null) : null;
    const fileName = r.kind === 'stopped' ? r.fileName : null;
    void this.d.book.close(open, stoppedAtMs, fileName).catch((err) => this.d.log.error({ err: (err as Error).message }, 'cannot save the session book'));
    for (const l of this.endedListeners) l(open.sessionId, stoppedAtMs, fileName);
  }

  /** @inheritdoc */
  async mark(m: { markId: string; coordinatorTs: number | null; note: string | null; deviceTs: number; sessionId: string | null }): Promise<void> {
    await this.d.book.addMark(this.session, { markId: m.markId, coordinatorTs: m.coordinatorTs, deviceTs: m.deviceTs, note: m.note, source: 'coordinator' });
    this.d.log.info({ markId: m.markId, deviceTs: m.deviceTs, coordinatorTs: m.coordinatorTs, sessionId: m.sessionId, note: m.note }, 'mark');
  }

  /** @inheritdoc */
  async requestClip(r: { markId: string; fromMs: number; toMs: number; quality: 'original' | 'preview'; clipId: string | null; sessionId: string | null }): ReturnType<VarDeviceApi['requestClip']> {
    const mark = this.d.book.findMark(r.markId);
    if (!mark) return fail('MARK_NOT_FOUND', `no mark ${r.markId} was received by this camera`);
    const storageErr = this.d.storage.error();
    if (storageErr) return fail('LOW_STORAGE', storageErr);
    const at = this.d.markClock === 'coordinator' && mark.coordinatorTs !== null ? mark.coordinatorTs : mark.deviceTs;
    const fromMs = at - Math.abs(r.fromMs);
    const toMs = at + r.toMs;
    if (toMs > this.d.clock.now() + MAX_WAIT_MS) return fail('CLIP_EXPORT_FAILED', `the clip window ends ${Math.round((toMs - this.d.clock.now()) / 1000)} s from now; at most ${MAX_WAIT_MS / 60000} min ahead`);
    // A clip must not push free space under the floor (that would stop a running recording).
    const estimate = ((toMs - fromMs) / 1000) * this.d.capture.currentProfile().bitrateKbps * 125 * 1.5;
    const free = this.d.storage.freeBytes();
    if (free !== null && free - estimate < this.d.minFreeBytes) {
      return fail('LOW_STORAGE', `not enough space for the clip: ${Math.round(free / 1e6)} MB free, about ${Math.ceil(estimate / 1e6)} MB needed above the ${Math.round(this.d.minFreeBytes / 1e6)} MB floor`);
    }
    try {
      const clip = await this.d.clips.export({
        clipId: r.clipId,
        markId: r.markId,
        sessionId: r.sessionId,
        fromMs,
        toMs,
        quality: r.quality,
      });
      return { ok: true, clipId: clip.clipId, durationMs: clip.durationMs, sizeBytes: clip.sizeBytes };
    } catch (err) {
      if (err instanceof ClipError) return fail(err.code === 'NO_FOOTAGE' ? 'CLIP_EXPORT_FAILED' : err.code, err.message);
      return fail('CLIP_EXPORT_FAILED', (err as Error).message);
    }
  }

  /** The open session, if any. */
  current(): SessionRecord | null {
    return this.session;
  }
}
