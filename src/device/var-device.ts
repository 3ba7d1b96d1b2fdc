/** The device as the VAR node sees it: sessions over the shared recorder, marks, clips, status facts. */
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import type { Config } from '../config/schema.js';
import type { SegmentStore } from '../capture/segment-store.js';
import type { CaptureProfile } from '../capture/pipeline.js';
import type { SystemFacts } from '../hw/system-facts.js';
import { framePtsOfFile } from '../media/ts-pts.js';
import type { StartRequest, VarDeviceApi, VarFailure } from '../protocols/var/node.js';
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
  segmentSec: number;
  clock: Clock;
  log: Logger;
}

const fail = (code: string, message: string): VarFailure => ({ ok: false, code, message });

/** A resolution label the coordinator understands. */
export function resolutionLabel(width: number, height: number): string {
  const named: Record<number, string> = { 480: '480p', 720: '720p', 1080: '1080p', 1440: '1440p', 2160: '4K' };
  return named[height] && width >= height ? named[height] : `${width}x${height}`;
}

/** Sessions, marks and clips for the VAR node. */
export class VarDevice implements VarDeviceApi {
  private session: SessionRecord | null = null;
  private starting: Promise<unknown> | null = null;
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
    const free = this.d.storage.freeBytes();
    return {
      battery: f.battery,
      temperature: f.temperatureC,
      freeSpaceMB: free === null ? null : Math.floor(free / 1e6),
      isRecording: this.d.device.isRecording(),
      signalStrength: f.signalDbm,
      sessionId: this.session?.sessionId ?? null,
    };
  }

  /** @inheritdoc */
  async startSession(req: StartRequest): Promise<{ ok: true; sessionId: string | null; startedAtMs: number } | VarFailure> {
    if (this.starting) await this.starting.catch(() => undefined);
    const p = this.doStart(req);
    this.starting = p;
    try {
      return await p;
    } finally {
      if (this.starting === p) this.starting = null;
    }
  }

  private async doStart(req: StartRequest): Promise<{ ok: true; sessionId: string | null; startedAtMs: number } | VarFailure> {
    const { device, capture, log, clock } = this.d;
    const open = this.session;
    if (open && device.isRecording()) {
      if (open.sessionId === req.sessionId && open.startedAtMs !== null) return { ok: true, sessionId: open.sessionId, startedAtMs: open.startedAtMs };
      return fail('ALREADY_RECORDING', `session ${open.sessionId ?? '(none)'} is recording; send stop_record first`);
    }
    if (device.isRecording()) return fail('ALREADY_RECORDING', 'a recording started by a MultiCam controller is running; stop it first');
    const storageErr = this.d.storage.error();
    if (storageErr) return fail('LOW_STORAGE', storageErr);
    const profile = this.profileFor(req.profile);
    const applied = capture.applyProfile(profile);
    if (applied.unchangeable.length) log.warn({ unchangeable: applied.unchangeable }, 'this camera source cannot apply part of the profile; recording with the current settings for those');
    if (applied.restarted) {
      const runBase = capture.currentRunBase();
      const ok = await this.waitForRun(runBase, 15000);
      if (!ok) return fail('CAPTURE_FAILED', `capture did not restart with the new profile: ${capture.status().error ?? 'no video within 15 s'}`);
    }
    const r = await device.startRecording(clock.now());
    if (r.kind !== 'started') return fail(r.kind === 'not_synchronized' ? 'CLOCK_NOT_SYNCHRONIZED' : 'START_FAILED', 'message' in r ? r.message : 'not started');
    this.session = await this.d.book.open({ sessionId: req.sessionId, meta: req.meta, profile: capture.currentProfile(), startedAtMs: null });
    const startedAtMs = await this.firstFrameAtOrAfter(r.atMs);
    await this.d.book.started(this.session, startedAtMs);
    log.info({ sessionId: req.sessionId, startedAtMs, requestedMs: r.atMs, profile: this.session.profile, meta: req.meta }, 'VAR session recording');
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
    const bitrateKbps = p.bitrateBps ? Math.max(100, Math.round(p.bitrateBps / 1000)) : cur.bitrateKbps;
    return { width: width - (width % 2), height: height - (height % 2), fps, bitrateKbps };
  }

  private waitForRun(runBase: number, timeoutMs: number): Promise<boolean> {
    const { store } = this.d;
    if (store.all().some((s) => s.runBase >= runBase)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const on = (s: { runBase: number }) => {
        if (s.runBase < runBase) return;
        clearTimeout(t);
        store.off('segment', on);
        resolve(true);
      };
      const t = setTimeout(() => {
        store.off('segment', on);
        resolve(false);
      }, timeoutMs);
      store.on('segment', on);
    });
  }

  /** Capture time of the first frame at or after `atMs` (read from the segment's own timestamps). */
  private async firstFrameAtOrAfter(atMs: number): Promise<number> {
    const { store, log } = this.d;
    const wait = this.d.segmentSec * 3000 + 3000;
    const ok = await store.waitForCoverage(atMs + 1, wait);
    const seg = ok ? store.all().find((s) => s.endMs > atMs) : undefined;
    if (!seg) {
      log.warn({ atMs }, 'no frame captured after the start yet; recording_started carries the start request time');
      return atMs;
    }
    try {
      const frames = (await framePtsOfFile(seg.path)).map((p) => seg.runBase * 1000 + p / 90);
      const first = frames.filter((t) => t >= atMs - 0.006).sort((a, b) => a - b)[0];
      return first ?? seg.startMs;
    } catch (err) {
      log.warn({ segment: seg.name, err: (err as Error).message }, 'cannot read frame times; using the segment start');
      return Math.max(atMs, seg.startMs);
    }
  }

  /** @inheritdoc */
  async stopSession(sessionId: string | null): Promise<{ ok: true; sessionId: string | null; stoppedAtMs: number | null; fileName: string | null } | VarFailure> {
    const { device } = this.d;
    if (this.starting) await this.starting.catch(() => undefined);
    const open = this.session;
    if (!device.isRecording()) {
      const last = this.d.book.all().findLast((s) => s.startedAtMs !== null && s.stoppedAtMs !== null);
      if (last && sessionId !== null && last.sessionId === sessionId) return { ok: true, sessionId, stoppedAtMs: last.stoppedAtMs, fileName: last.fileName };
      return fail('NOT_RECORDING', 'not recording');
    }
    if (!open) return fail('NOT_RECORDING', 'the running recording was started by a MultiCam controller; stop it there');
    if (sessionId !== null && open.sessionId !== null && sessionId !== open.sessionId) {
      return fail('WRONG_SESSION', `session ${sessionId} is not the one recording (${open.sessionId})`);
    }
    const r = await device.stopRecording(this.d.clock.now());
    if (r.kind !== 'stopped') return fail('STOP_FAILED', r.message);
    return { ok: true, sessionId: open.sessionId, stoppedAtMs: r.lastFrameMs ?? null, fileName: r.fileName };
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
    try {
      const clip = await this.d.clips.export({
        clipId: r.clipId,
        markId: r.markId,
        sessionId: r.sessionId,
        fromMs: at - Math.abs(r.fromMs),
        toMs: at + r.toMs,
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
