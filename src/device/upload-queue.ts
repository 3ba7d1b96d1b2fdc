/**
 * The upload queue: recordings waiting for, or being, uploaded, persisted so that a restart or a
 * crash resumes them. A file leaves the device only after the store confirmed every byte.
 *
 * uploads.json (mode 0600: it holds the presigned URLs and credentials needed to resume) is
 * rewritten atomically on every change of state and after every multipart part. Failed items keep
 * no secrets. Nothing here is ever put in a reply or a log line but fileName, sizes, progress, the
 * object's address without query (publicUrl) and error texts scrubbed of every secret.
 */
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import { readJsonFile, writeFileAtomic } from '../util/atomic.js';
import type { RecordingsCatalog } from './catalog.js';
import type { QueueUploadResult, UploadItem, UploadRequest } from './types.js';
import { publicUrl, resolveTarget, scrubSecrets, type UploadDest } from '../upload/target.js';
import { UploadError } from '../upload/errors.js';
import { Pacer } from '../upload/pacer.js';
import { putPresigned, type Md5Policy, type TransferOptions, type UploadResult } from '../upload/http-put.js';
import { abortMultipart, putS3, type MultipartState } from '../upload/s3-put.js';

/** The upload settings: config `upload`, one declaration in the schema. */
export type UploadSettings = Config['upload'];

/** A job as persisted (with its destination, secrets included). */
interface StoredJob {
  fileName: string;
  fileSize: number;
  dest: UploadDest;
  publicUrl: string;
  attempts: number;
  restarts: number;
  error: string | null;
  multipart: MultipartState | null;
  queuedAtMs: number;
  /** A destination sent while the upload was running (e.g. fresh STS credentials): used if this attempt fails. */
  next?: { dest: UploadDest; publicUrl: string } | null;
}

/** A job in memory: the stored part plus what only lives while it runs. */
interface Job extends StoredJob {
  status: 'queued' | 'uploading' | 'retrying';
  bytesUploaded: number;
  speed: number;
  notBeforeMs: number;
  abort: AbortController | null;
  sample: { atMs: number; bytes: number };
  /** Not started until its queue entry is saved. */
  held: boolean;
}

/** What uploads.json holds. */
interface QueueFile {
  version: 1;
  queue: StoredJob[];
  failed: UploadItem[];
}

/** S3's limit for one PUT. */
const SINGLE_PUT_MAX = 5 * 1024 ** 3;
/** Restarts of a multipart upload (vanished on the server) before that counts as a failed attempt. */
const MAX_FREE_RESTARTS = 2;
const SPEED_SAMPLE_MS = 500;
/** Time constant of the smoothed speed. */
const SPEED_TAU_MS = 2000;
const MiB = 1024 * 1024;

/** Everything the queue is built from. */
export interface UploadQueueDeps {
  dataDir: string;
  catalog: RecordingsCatalog;
  settings: UploadSettings;
  clock: Clock;
  log: Logger;
  /** Random in [0,1) for retry jitter (tests may pin it). */
  random?: () => number;
}

/** The persistent upload queue (see the file comment). */
export class UploadQueue {
  private readonly jobs: Job[] = [];
  private failed: UploadItem[] = [];
  private readonly path: string;
  private readonly pacer: Pacer | null;
  private running = 0;
  private stopped = true;
  private wakeTimer: NodeJS.Timeout | null = null;
  private speedTimer: NodeJS.Timeout | null = null;
  private saving: Promise<void> = Promise.resolve();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly d: UploadQueueDeps) {
    this.path = join(d.dataDir, 'uploads.json');
    this.pacer = d.settings.maxBytesPerSecond > 0 ? new Pacer(d.settings.maxBytesPerSecond) : null;
    if (d.settings.partSizeMB < 5) d.log.warn({ partSizeMB: d.settings.partSizeMB }, 'upload.partSizeMB is below 5: AWS S3 refuses parts under 5 MiB (but the last)');
  }

  /** Load uploads.json; jobs whose file is gone move to the failed list (nothing is silently dropped). */
  async load(): Promise<void> {
    let saved: QueueFile | null;
    try {
      saved = await readJsonFile<QueueFile | null>(this.path, null);
      if (saved !== null && (saved.version !== 1 || !Array.isArray(saved.queue) || !Array.isArray(saved.failed))) {
        throw new Error('not an upload queue (version 1)');
      }
    } catch (err) {
      // A damaged queue must not keep the unit from starting; keep the file for inspection.
      const aside = `${this.path}.damaged-${this.d.clock.now()}`;
      await rename(this.path, aside).catch(() => undefined);
      this.d.log.error({ err: (err as Error).message, keptAs: aside }, 'the upload queue file is damaged; starting with an empty queue (the recordings are all still listed)');
      return;
    }
    if (!saved) return;
    this.failed = saved.failed ?? [];
    for (const s of saved.queue ?? []) {
      if (!this.d.catalog.has(s.fileName)) {
        this.d.log.error({ fileName: s.fileName }, 'a queued upload\'s file is no longer on the device; moved to the failed uploads');
        this.failed.push(this.failedItem(s, 'the file is no longer on the device'));
        continue;
      }
      this.jobs.push(this.toJob(s));
    }
    if (this.jobs.length) {
      this.d.log.info({ files: this.jobs.map((j) => j.fileName) }, 'resuming uploads from before the restart');
    }
    await this.save().catch((err) => this.d.log.error({ err: (err as Error).message }, 'could not save the upload queue; continuing with it in memory'));
  }

  /** Start working through the queue. */
  start(): void {
    this.stopped = false;
    this.speedTimer = setInterval(() => this.sampleSpeeds(), SPEED_SAMPLE_MS);
    this.speedTimer.unref();
    this.pump();
  }

  /** Stop: running uploads are interrupted (not counted as failures) and resume at the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    if (this.speedTimer) clearInterval(this.speedTimer);
    for (const j of this.jobs) j.abort?.abort();
    // Runs that end now may start a deletion: wait until nothing is left.
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    await this.save();
  }

  /** The queues as the protocols report them. */
  view(): { uploadQueue: UploadItem[]; failedUploadQueue: UploadItem[] } {
    // The document's monitor takes uploadQueue[0] as the upload in progress: running ones first.
    const order = [...this.jobs.filter((j) => j.status === 'uploading'), ...this.jobs.filter((j) => j.status !== 'uploading')];
    return { uploadQueue: order.map((j) => this.item(j)), failedUploadQueue: this.failed.map((f) => ({ ...f })) };
  }

  /** True while an upload is moving bytes. */
  busy(): boolean {
    return this.running > 0;
  }

  /**
   * Queue `fileName` for upload. Resolves once the job is in the queue and on disk, or with why
   * it was refused (the queue is then untouched). Asking again for a queued file replaces its
   * destination (unless it is uploading already); asking again for a failed file requeues it.
   */
  async enqueue(fileName: string, request: UploadRequest): Promise<QueueUploadResult> {
    const { log, settings } = this.d;
    const resolved = resolveTarget(request, { allowHttp: settings.allowHttp, s3Endpoint: settings.s3Endpoint });
    if (!resolved.ok) {
      log.warn({ fileName, reason: resolved.message }, 'upload refused');
      return { kind: 'error', message: resolved.message };
    }
    const dest = resolved.dest;
    const info = this.d.catalog.list().find((r) => r.fileName === fileName);
    if (!info) {
      log.warn({ fileName }, 'upload refused: no such recording');
      return { kind: 'not_found' };
    }
    if (dest.kind === 'url' && info.fileSize > SINGLE_PUT_MAX) {
      return { kind: 'error', message: `${fileName} is ${info.fileSize} bytes; one presigned PUT takes at most 5 GiB: use the IAM form (multipart)` };
    }
    const url = publicUrl(dest, settings.s3Endpoint);
    const existing = this.jobs.find((j) => j.fileName === fileName);
    if (existing) {
      if (existing.status === 'uploading') {
        // Keep it: if this attempt fails (say its STS credentials expire), the next one uses it.
        const nextBefore = existing.next ?? null;
        existing.next = { dest, publicUrl: url };
        const unsaved = await this.persistOrUndo(() => (existing.next = nextBefore));
        if (unsaved) return unsaved;
        log.info({ fileName, url }, 'upload requested again while uploading; the new destination is kept for a retry');
        return { kind: 'queued' };
      }
      const before = { dest: existing.dest, publicUrl: existing.publicUrl, attempts: existing.attempts, restarts: existing.restarts, error: existing.error, multipart: existing.multipart, notBeforeMs: existing.notBeforeMs };
      const oldUpload = existing.multipart;
      const oldDest = existing.dest;
      existing.held = true;
      Object.assign(existing, { dest, publicUrl: url, attempts: 0, restarts: 0, error: null, multipart: null, notBeforeMs: 0 });
      const unsaved = await this.persistOrUndo(() => Object.assign(existing, before));
      existing.held = false;
      if (unsaved) return unsaved;
      this.discardMultipart(oldDest, oldUpload);
      log.info({ fileName, url }, 'queued upload given a new destination');
      this.pump();
      return { kind: 'queued' };
    }
    const failedBefore = this.failed;
    const wasFailed = this.failed.some((f) => f.fileName === fileName);
    this.failed = this.failed.filter((f) => f.fileName !== fileName);
    const job = this.toJob({ fileName, fileSize: info.fileSize, dest, publicUrl: url, attempts: 0, restarts: 0, error: null, multipart: null, queuedAtMs: this.d.clock.now() });
    job.held = true;
    this.jobs.push(job);
    const unsaved = await this.persistOrUndo(() => {
      this.removeJob(job);
      this.failed = failedBefore;
    });
    job.held = false;
    if (unsaved) return unsaved;
    log.info({ fileName, fileSize: info.fileSize, url, form: dest.kind === 'url' ? 'presigned' : 'iam', requeued: wasFailed }, 'upload queued');
    this.pump();
    return { kind: 'queued' };
  }

  /** Save; when that fails, undo the change in memory too and say why (the queue stays as it was). */
  private async persistOrUndo(undo: () => void): Promise<QueueUploadResult | null> {
    try {
      await this.save();
      return null;
    } catch (err) {
      undo();
      this.d.log.error({ err: (err as Error).message }, 'upload refused: the queue could not be saved');
      return { kind: 'error', message: `cannot queue the upload: the queue could not be saved (${(err as Error).message})` };
    }
  }

  private toJob(s: StoredJob): Job {
    return { ...s, status: 'queued', bytesUploaded: 0, speed: 0, notBeforeMs: 0, abort: null, sample: { atMs: 0, bytes: 0 }, held: false };
  }

  private removeJob(job: Job): void {
    const i = this.jobs.indexOf(job);
    if (i >= 0) this.jobs.splice(i, 1);
  }

  /** Give up a multipart upload left behind on the server (best effort, not awaited). */
  private discardMultipart(dest: UploadDest, state: MultipartState | null): void {
    if (!state || dest.kind !== 's3') return;
    const p = abortMultipart(dest, this.d.settings.s3Endpoint, state.uploadId, this.d.settings.timeoutMs)
      .catch((e) => this.d.log.warn({ error: scrubSecrets((e as Error).message, dest) }, 'could not abort an abandoned multipart upload on the server'))
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private item(j: Job): UploadItem {
    return {
      fileName: j.fileName,
      fileSize: j.fileSize,
      bytesUploaded: j.bytesUploaded,
      uploadProgress: j.fileSize > 0 ? Math.floor((j.bytesUploaded / j.fileSize) * 1000) / 10 : 0,
      uploadSpeed: Math.round(j.speed),
      status: j.status,
      uploadUrl: j.publicUrl,
      error: j.error,
    };
  }

  private failedItem(s: StoredJob, error: string): UploadItem {
    return { fileName: s.fileName, fileSize: s.fileSize, bytesUploaded: 0, uploadProgress: 0, uploadSpeed: 0, status: 'failed', uploadUrl: s.publicUrl, error };
  }

  /** Persist the queue; saves are serialised so an older state never lands after a newer one. */
  private save(): Promise<void> {
    const data: QueueFile = {
      version: 1,
      // Only the stored fields; what lives while a job runs stays in memory.
      queue: this.jobs.map(({ status, bytesUploaded, speed, notBeforeMs, abort, sample, held, ...stored }) => stored),
      failed: this.failed,
    };
    const text = JSON.stringify(data);
    this.saving = this.saving.catch(() => undefined).then(() => writeFileAtomic(this.path, text, 0o600));
    return this.saving;
  }

  /** Start whatever may run now; schedule a wake-up for the next retry. */
  private pump(): void {
    if (this.stopped) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    const now = this.d.clock.now();
    for (const j of this.jobs) {
      if (this.running >= this.d.settings.concurrency) break;
      if (j.status === 'uploading' || j.held || j.notBeforeMs > now) continue;
      const p = this.run(j).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
    const next = Math.min(...this.jobs.filter((j) => j.status !== 'uploading' && j.notBeforeMs > now).map((j) => j.notBeforeMs));
    if (Number.isFinite(next)) {
      this.wakeTimer = setTimeout(() => this.pump(), next - now);
      this.wakeTimer.unref();
    }
  }

  private sampleSpeeds(): void {
    const now = this.d.clock.now();
    for (const j of this.jobs) {
      if (j.status !== 'uploading') continue;
      const dt = now - j.sample.atMs;
      if (dt <= 0) continue;
      const inst = (Math.max(0, j.bytesUploaded - j.sample.bytes) * 1000) / dt;
      const a = 1 - Math.exp(-dt / SPEED_TAU_MS);
      j.speed = j.speed === 0 ? inst : j.speed + a * (inst - j.speed);
      j.sample = { atMs: now, bytes: j.bytesUploaded };
    }
  }

  private async run(job: Job): Promise<void> {
    const { log, catalog, clock, settings } = this.d;
    this.running++;
    job.status = 'uploading';
    job.bytesUploaded = 0;
    job.speed = 0;
    job.sample = { atMs: clock.now(), bytes: 0 };
    job.abort = new AbortController();
    const signal = job.abort.signal;
    const handle = await catalog.open(job.fileName);
    const started = clock.now();
    let result: UploadResult | null = null;
    let failure: UploadError | null = null;
    try {
      if (!handle) throw new UploadError('the file is no longer on the device', 'fatal', 'NoSuchFile');
      log.info({ fileName: job.fileName, url: job.publicUrl, attempt: job.attempts + 1, resumeParts: job.multipart?.parts.length ?? 0 }, 'upload started');
      const transfer: TransferOptions = {
        path: handle.path,
        size: handle.size,
        pacer: this.pacer,
        timeoutMs: settings.timeoutMs,
        signal: job.abort.signal,
        onBytes: (n) => {
          job.bytesUploaded += n;
        },
        verifyMd5: settings.verifyMd5 as Md5Policy,
      };
      result =
        job.dest.kind === 'url'
          ? await putPresigned(job.dest.url, transfer)
          : await putS3(job.dest, {
              ...transfer,
              endpoint: settings.s3Endpoint,
              thresholdBytes: settings.multipartThresholdMB * MiB,
              partSizeBytes: Math.round(settings.partSizeMB * MiB),
              multipart: job.multipart,
              saveMultipart: async (state) => {
                job.multipart = state;
                await this.save();
              },
            });
    } catch (err) {
      failure = err instanceof UploadError ? err : new UploadError((err as Error).message, 'retry', 'Error');
    } finally {
      handle?.release();
      job.abort = null;
      this.running--;
    }
    try {
      if (result) await this.succeeded(job, result, clock.now() - started);
      else if (this.stopped && signal.aborted) {
        job.status = 'queued';
        log.info({ fileName: job.fileName, bytesUploaded: job.bytesUploaded }, 'upload interrupted by shutdown; it resumes at the next start');
      } else await this.failedAttempt(job, failure!);
    } catch (err) {
      log.error({ fileName: job.fileName, err: (err as Error).message }, 'could not save the upload queue');
    }
    this.pump();
  }

  private async succeeded(job: Job, result: UploadResult, ms: number): Promise<void> {
    const { log, catalog } = this.d;
    job.bytesUploaded = job.fileSize;
    this.removeJob(job);
    await this.save();
    log.info(
      { fileName: job.fileName, bytes: job.fileSize, ms, MBps: +(job.fileSize / 1e6 / Math.max(ms / 1000, 1e-3)).toFixed(1), url: job.publicUrl, etag: result.etag, digestVerified: result.digestVerified },
      'upload completed and verified',
    );
    if (catalog.isOpen(job.fileName)) log.info({ fileName: job.fileName }, 'the uploaded file is being downloaded; it is deleted when that finishes');
    // Not awaited: a slow download of this file must not hold up the next upload (stop() waits for it).
    const removal = catalog
      .remove(job.fileName)
      .then(() => log.info({ fileName: job.fileName }, 'uploaded file deleted from the device'))
      .catch((err) => log.error({ fileName: job.fileName, err: (err as Error).message }, 'could not delete the uploaded file'))
      .finally(() => this.inFlight.delete(removal));
    this.inFlight.add(removal);
  }

  private async failedAttempt(job: Job, err: UploadError): Promise<void> {
    const { log, settings } = this.d;
    const error = scrubSecrets(err.message, job.dest);
    if (job.next) {
      // A newer destination came while this attempt ran: switch to it and start over.
      const { dest: oldDest, multipart: oldUpload } = job;
      Object.assign(job, { dest: job.next.dest, publicUrl: job.next.publicUrl, next: null, attempts: 0, restarts: 0, multipart: null, error, status: 'queued', notBeforeMs: 0 });
      await this.save();
      this.discardMultipart(oldDest, oldUpload);
      log.warn({ fileName: job.fileName, code: err.code, error, url: job.publicUrl }, 'upload attempt failed; retrying at once with the destination sent meanwhile');
      return;
    }
    if (err.kind === 'restart' && job.restarts < MAX_FREE_RESTARTS) {
      job.restarts++;
      this.discardMultipart(job.dest, job.multipart);
      job.multipart = null;
      job.status = 'queued';
      job.error = error;
      await this.save();
      log.warn({ fileName: job.fileName, error }, 'the multipart upload is gone on the server; starting it again');
      return;
    }
    job.attempts++;
    job.error = error;
    if (err.kind !== 'fatal' && job.attempts < settings.maxAttempts) {
      const base = Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** (job.attempts - 1));
      const delay = Math.round(base * (0.5 + 0.5 * (this.d.random ?? Math.random)()));
      job.status = 'retrying';
      job.notBeforeMs = this.d.clock.now() + delay;
      if (err.kind === 'restart') {
        this.discardMultipart(job.dest, job.multipart);
        job.multipart = null;
      }
      await this.save();
      log.warn({ fileName: job.fileName, attempt: job.attempts, of: settings.maxAttempts, retryInMs: delay, code: err.code, error }, 'upload attempt failed; will retry');
      return;
    }
    this.removeJob(job);
    this.failed.push(this.failedItem(job, error));
    await this.save();
    log.error({ fileName: job.fileName, attempts: job.attempts, code: err.code, error, url: job.publicUrl }, 'upload failed; the file stays on the device (ask again to retry)');
    this.discardMultipart(job.dest, job.multipart);
  }
}

