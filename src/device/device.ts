/** The device: state machine over capture health, the active recording and storage; the DeviceApi. */
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import type { ClockStatus } from '../hw/clock-status.js';
import type { SegmentStore } from '../capture/segment-store.js';
import type { CaptureHealth } from '../capture/pipeline.js';
import { AssemblyError } from '../media/assemble.js';
import type { RecordingsCatalog } from './catalog.js';
import type { Recorder } from './recorder.js';
import type { StorageGuard } from './storage.js';
import type { UploadQueue } from './upload-queue.js';
import type {
  DeviceApi,
  DeviceSnapshot,
  DeviceState,
  QueueUploadResult,
  RecordingHandle,
  RecordingInfo,
  StartResult,
  StopResult,
  UploadRequest,
} from './types.js';

/** Everything the device is built from. */
export interface DeviceDeps {
  deviceId: string;
  deviceType: string;
  store: SegmentStore;
  catalog: RecordingsCatalog;
  recorder: Recorder;
  storage: StorageGuard;
  capture: { status(): CaptureHealth };
  clockStatus: { current(): ClockStatus };
  /** The upload queue (UPLOAD_TO_CLOUD). */
  uploads: Pick<UploadQueue, 'view' | 'enqueue'>;
  battery?: () => number | null;
  clock: Clock;
  log: Logger;
}

/** A start this close to now (ms) counts as "now". */
const NOW_TOLERANCE_MS = 10;

/** The device domain shared by the protocols. */
export class Device implements DeviceApi {
  private phase: 'idle' | 'scheduled' | 'recording' | 'stopping' = 'idle';
  private startTimer: NodeJS.Timeout | null = null;
  private stopping: Promise<StopResult> | null = null;
  private recovering: Promise<void> | null = null;
  private readonly stopListeners: Array<(r: StopResult) => void> = [];

  constructor(private readonly d: DeviceDeps) {}

  /** Be told whenever a recording ends, whoever stopped it (MultiCam, VAR, a full disk, shutdown). */
  onStopped(listener: (r: StopResult) => void): void {
    this.stopListeners.push(listener);
  }

  /** Finish what an earlier run left (crash or full disk), then keep going; never twice at once. */
  recover(leftovers: Array<{ startMs: number; stopMs: number | null }>, lastEndMs: number | null): Promise<void> {
    this.recovering ??= this.finishLeftovers(leftovers, lastEndMs).finally(() => {
      this.recovering = null;
    });
    return this.recovering;
  }

  private async finishLeftovers(leftovers: Array<{ startMs: number; stopMs: number | null }>, lastEndMs: number | null): Promise<void> {
    for (const r of leftovers) {
      const fallback = lastEndMs ?? r.startMs;
      try {
        const info = await this.d.recorder.finishLeftover(r, fallback);
        this.d.log.warn({ fileName: info.fileName, startMs: r.startMs }, 'an unfinished recording was finished (after a restart or a failed assembly)');
      } catch (err) {
        if (err instanceof AssemblyError && err.code === 'NO_FOOTAGE') {
          this.d.log.error({ startMs: r.startMs }, 'an unfinished recording had no surviving footage; dropped');
          await this.d.recorder.dropLeftover(r.startMs);
        } else {
          this.d.log.error({ startMs: r.startMs, err: (err as Error).message }, 'could not finish an unfinished recording; will retry');
        }
      }
    }
  }

  /** Retry ranges whose assembly failed earlier (full disk, ffmpeg trouble) while there is room. */
  async retryPending(): Promise<void> {
    if (this.d.storage.error()) return;
    const pending = this.d.recorder.pending();
    if (pending.length) await this.recover(pending, null);
  }

  /** The MultiCam-level state. */
  state(): { state: DeviceState; message: string | null } {
    const cap = this.d.capture.status();
    const storageErr = this.d.storage.error();
    if (storageErr) return { state: 'error', message: storageErr };
    if (!cap.alive && cap.error) return { state: 'error', message: cap.error };
    if (this.phase === 'recording') return { state: 'recording', message: null };
    if (this.phase === 'stopping') return { state: 'stopping', message: null };
    return { state: 'ready', message: null };
  }

  /** @inheritdoc */
  snapshot(): DeviceSnapshot {
    const s = this.state();
    const active = this.d.recorder.active;
    return {
      deviceId: this.d.deviceId,
      deviceType: this.d.deviceType,
      state: s.state,
      errorMessage: s.message,
      batteryLevel: this.d.battery ? this.d.battery() : null,
      ...this.d.uploads.view(),
      scheduledStartMs: this.phase === 'scheduled' && active ? active.startMs : null,
    };
  }

  /** True between an accepted start and the finished file. */
  isRecording(): boolean {
    return this.phase === 'recording' || this.phase === 'stopping';
  }

  /** @inheritdoc */
  async startRecording(atMs: number): Promise<StartResult> {
    const { log, clock } = this.d;
    if (!Number.isFinite(atMs)) return { kind: 'error', message: 'timestamp is not a number' };
    const storageErr = this.d.storage.error();
    if (storageErr) return { kind: 'error', message: `cannot record: ${storageErr}` };
    if (this.phase === 'scheduled' && this.d.recorder.active) {
      return { kind: 'error', message: `a recording is already scheduled to start at ${new Date(this.d.recorder.active.startMs).toISOString()}` };
    }
    if (this.phase !== 'idle') return { kind: 'error', message: 'already recording; send STOP_RECORDING first' };
    const now = clock.now();
    const future = atMs > now + NOW_TOLERANCE_MS;
    if (future) {
      const cs = this.d.clockStatus.current();
      if (!cs.synchronised) {
        const message = `Cannot start scheduled recording - time not synchronized (${cs.reason ?? 'unknown'})`;
        log.warn({ atMs, reason: cs.reason }, 'scheduled start refused: clock not synchronised');
        return { kind: 'not_synchronized', message };
      }
    }
    const startMs = future ? atMs : now;
    this.phase = future ? 'scheduled' : 'recording';
    try {
      await this.d.recorder.begin(startMs);
    } catch (err) {
      this.phase = 'idle';
      log.error({ err: (err as Error).message }, 'cannot persist the recording state');
      return { kind: 'error', message: `cannot start: ${(err as Error).message}` };
    }
    if (!this.d.capture.status().alive) log.warn('recording started while capture is not running; footage begins when it recovers');
    if (future) {
      this.startTimer = setTimeout(() => {
        this.startTimer = null;
        if (this.phase === 'scheduled') {
          this.phase = 'recording';
          log.info({ startMs }, 'scheduled recording started');
        }
      }, atMs - now);
      log.info({ startMs, inMs: Math.round(atMs - now) }, 'recording scheduled');
      return { kind: 'scheduled', atMs: startMs };
    }
    log.info({ startMs, requestedMs: atMs }, 'recording started');
    return { kind: 'started', atMs: startMs };
  }

  /** @inheritdoc */
  stopRecording(atMs: number): Promise<StopResult> {
    if (this.stopping) return this.stopping;
    if (this.phase === 'idle' || !this.d.recorder.active) {
      return Promise.resolve({ kind: 'error', message: 'not recording' });
    }
    this.stopping = this.doStop(atMs)
      .then((r) => {
        for (const l of this.stopListeners) l(r);
        return r;
      })
      .finally(() => {
        this.stopping = null;
      });
    return this.stopping;
  }

  private async doStop(atMs: number): Promise<StopResult> {
    const { log, clock, recorder } = this.d;
    const active = recorder.active!;
    const now = clock.now();
    const stopMs = Number.isFinite(atMs) && atMs > now ? atMs : now;
    if (stopMs <= active.startMs) {
      if (this.startTimer) clearTimeout(this.startTimer);
      this.startTimer = null;
      await recorder.cancel();
      this.phase = 'idle';
      log.info({ startMs: active.startMs }, 'scheduled recording cancelled before it began');
      return { kind: 'error', message: 'the scheduled start had not been reached; the recording was cancelled and no file was made' };
    }
    await recorder.setStop(stopMs);
    if (stopMs > now) {
      log.info({ stopMs, inMs: Math.round(stopMs - now) }, 'stop scheduled');
      await new Promise((r) => setTimeout(r, stopMs - now));
    }
    if (this.startTimer) clearTimeout(this.startTimer);
    this.startTimer = null;
    this.phase = 'stopping';
    try {
      const info = await recorder.finishActive(stopMs);
      return { kind: 'stopped', fileName: info.fileName, fileSize: info.fileSize, firstFrameMs: info.firstFrameMs, lastFrameMs: info.lastFrameMs };
    } catch (err) {
      const kept = !(err instanceof AssemblyError && err.code === 'NO_FOOTAGE');
      const message = `recording could not be finished: ${(err as Error).message}${kept ? '; the footage is kept and the file will be finished automatically' : ''}`;
      log.error({ err: (err as Error).message }, 'stop failed');
      return { kind: 'error', message };
    } finally {
      this.phase = 'idle';
    }
  }

  /** @inheritdoc */
  listRecordings(): RecordingInfo[] {
    return this.d.catalog.list();
  }

  /** @inheritdoc */
  openRecording(fileName: string): Promise<RecordingHandle | null> {
    return this.d.catalog.open(fileName);
  }

  /** @inheritdoc */
  queueUpload(fileName: string, request: UploadRequest): Promise<QueueUploadResult> {
    return this.d.uploads.enqueue(fileName, request);
  }

  /** Called by the storage guard when space runs out during a recording: finish it now. */
  async stopForStorage(reason: string): Promise<void> {
    if (this.phase === 'idle') return;
    this.d.log.error({ reason }, 'storage is full: stopping the recording');
    const r = await this.stopRecording(this.d.clock.now());
    if (r.kind === 'stopped') this.d.log.warn({ fileName: r.fileName }, 'recording stopped early for lack of space');
  }

  /** Graceful shutdown: a running recording is finished into a file first. */
  async close(): Promise<void> {
    if (this.startTimer) clearTimeout(this.startTimer);
    if (this.phase === 'scheduled') {
      this.d.log.warn('shutting down before a scheduled start was reached; the start is cancelled');
      await this.d.recorder.cancel();
      this.phase = 'idle';
    } else if (this.stopping) await this.stopping;
    else if (this.phase === 'recording') await this.stopRecording(this.d.clock.now());
  }
}
