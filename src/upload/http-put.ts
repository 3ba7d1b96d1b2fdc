/**
 * One streaming PUT of a byte range of a file to a (presigned) URL, sent exactly as given.
 *
 * Plain node:http(s) rather than an SDK call: a presigned signature covers the query byte for
 * byte and the signed headers (normally just Host), so the request target is sent unparsed and
 * nothing is added but Content-Length and `Expect: 100-continue` (an expired or forbidden URL is
 * answered before any of the body is sent). The body goes through pumpFile's two reused buffers,
 * each refilled only after the socket took the previous one: memory stays flat at any file size.
 * Every chunk is counted, paced and, where the MD5 policy says so, hashed (compared with the
 * ETag by the caller).
 */
import http from 'node:http';
import https from 'node:https';
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { PUMP_CHUNK, pumpFile, writeTo } from '../util/file-pump.js';
import { rawRequestTarget } from './target.js';
import { fromNetworkError, fromS3Answer, UploadError } from './errors.js';
import type { Pacer } from './pacer.js';

/** What moving bytes needs. */
export interface TransferOptions {
  /** The local file and its size (the catalog's). */
  path: string;
  size: number;
  pacer: Pacer | null;
  /** Cut the connection when it makes no progress for this long. */
  timeoutMs: number;
  signal: AbortSignal;
  /** Progress: bytes handed to the network since the last call (negative when a failed part is undone). */
  onBytes(n: number): void;
  /** The `upload.verifyMd5` policy. */
  verifyMd5: Md5Policy;
}

/**
 * When to hash what is sent and compare it with the store's ETag: `auto` does it over plain http
 * only — over https, TLS already authenticates every byte between the device and the store, and
 * hashing costs a core's worth of CPU per ~600 MB on a fast link.
 */
export type Md5Policy = 'auto' | 'always' | 'never';

/** Whether to hash for a target URL (or endpoint) under `policy`. */
export function wantsMd5(policy: Md5Policy, url: string): boolean {
  return policy === 'always' || (policy === 'auto' && isPlainHttp(url));
}

/** True when `url` uses plain http (any letter case). */
export function isPlainHttp(url: string): boolean {
  return /^http:/i.test(url);
}

/** The store's answer to a PUT: the ETag (bare, lower-case) and the MD5 of what was sent (null when not hashed). */
export interface PutAnswer {
  etag: string;
  md5: string | null;
  /** False when the store says its ETag is not an MD5 (SSE-KMS, SSE-C). */
  etagIsMd5: boolean;
}

/** How long to wait for "100 Continue" before sending the body anyway (servers may ignore Expect). */
const CONTINUE_WAIT_MS = 1000;
const MAX_ERROR_BODY = 64 * 1024;

/** The ETag without quotes, lower-cased. */
export const bareEtag = (etag: string): string => etag.replace(/"/g, '').trim().toLowerCase();

/** The UploadError for an interrupted transfer. */
export const abortedError = (): UploadError => new UploadError('upload interrupted (device shutting down)', 'retry', 'Aborted');

/**
 * PUT `length` bytes of the file from `start` to `url`; resolves with the store's 2xx answer,
 * rejects with an UploadError (S3's code for an error answer). `agent`: a keep-alive agent to
 * reuse one connection across the parts of a multipart upload (default: a connection per PUT).
 */
export async function putRange(url: string, start: number, length: number, o: TransferOptions, agent?: http.Agent): Promise<PutAnswer> {
  const u = new URL(url);
  const target = rawRequestTarget(url);
  if (target === null) throw new UploadError('the upload URL has no host', 'fatal', 'InvalidURL');
  const file = await open(o.path, 'r');
  try {
    return await send(u, target, file, start, length, o, wantsMd5(o.verifyMd5, url), agent);
  } finally {
    await file.close();
  }
}

function send(
  u: URL,
  target: string,
  file: FileHandle,
  start: number,
  length: number,
  o: TransferOptions,
  hash: boolean,
  agent: http.Agent | undefined,
): Promise<PutAnswer> {
  const md5 = hash ? createHash('md5') : null;
  const mod = u.protocol === 'https:' ? https : http;
  let sent = 0;
  return new Promise<PutAnswer>((resolve, reject) => {
    let settled = false;
    let answered = false;
    let bodyStarted = false;
    const finish = (err: UploadError | null, answer?: PutAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(continueTimer);
      if (err) {
        req.destroy();
        o.onBytes(-sent);
        reject(err);
      } else resolve(answer!);
    };
    const failed = (err: unknown): void => {
      if (!answered) finish(o.signal.aborted ? abortedError() : fromNetworkError(err));
    };
    const req = mod.request({
      method: 'PUT',
      hostname: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port || undefined,
      path: target,
      headers: { 'Content-Length': String(length), Expect: '100-continue' },
      agent: agent ?? false,
      signal: o.signal,
    });
    const write = writeTo(req);
    const sendBody = (): void => {
      if (bodyStarted || answered || settled) return;
      bodyStarted = true;
      clearTimeout(continueTimer);
      // pumpFile keeps two chunks in flight; a paced chunk waits for its turn, so chaining keeps
      // them in file order even when a stalled event loop lets a later chunk's wait come out 0.
      let tail: Promise<void> = Promise.resolve();
      pumpFile(file, start, length, (chunk) => {
        const mine = tail.then(async () => {
          const wait = o.pacer?.take(chunk.length, Date.now()) ?? 0;
          if (wait > 0) await sleep(wait);
          if (settled) throw abortedError();
          md5?.update(chunk);
          await write(chunk);
          sent += chunk.length;
          o.onBytes(chunk.length);
        });
        tail = mine.catch(() => undefined);
        return mine;
      })
        .then((n) => {
          if (n !== length) throw new UploadError(`the file ended after ${start + n} bytes; expected ${start + length}`, 'fatal', 'FileChanged');
          req.end();
        })
        .catch(failed);
    };
    const continueTimer = setTimeout(sendBody, CONTINUE_WAIT_MS);
    // A low bandwidth cap spaces chunks out: never call that a stall.
    const idleMs = Math.max(o.timeoutMs, o.pacer ? (2000 * PUMP_CHUNK) / o.pacer.bytesPerSecond : 0);
    req.setTimeout(idleMs, () => finish(new UploadError(`no progress for ${Math.round(idleMs / 1000)} s; connection cut`, 'retry', 'Timeout')));
    req.on('continue', sendBody);
    req.on('error', failed);
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (c: Buffer) => {
        if (kept < MAX_ERROR_BODY) chunks.push(c), (kept += c.length);
      });
      res.on('error', (err) => finish(fromNetworkError(err)));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) return finish(fromS3Answer(status, Buffer.concat(chunks).toString('utf8')));
        if (!bodyStarted || sent !== length) {
          return finish(new UploadError(`the store answered ${status} after ${sent} of ${length} bytes`, 'retry', 'IncompleteBody', status));
        }
        const etag = res.headers.etag;
        if (!etag) return finish(new UploadError(`the store answered ${status} without an ETag`, 'retry', 'NoETag', status));
        const sse = String(res.headers['x-amz-server-side-encryption'] ?? '');
        const etagIsMd5 = !sse.startsWith('aws:kms') && res.headers['x-amz-server-side-encryption-customer-algorithm'] === undefined;
        finish(null, { etag: bareEtag(etag), md5: md5?.digest('hex') ?? null, etagIsMd5 });
      });
    });
    req.flushHeaders();
  });
}

/** Throw unless the answer's ETag is the MD5 of what was sent (when it was hashed and the store's ETags are MD5s). */
export function checkDigest(a: PutAnswer, what: string): void {
  if (a.md5 !== null && a.etagIsMd5 && a.etag !== a.md5) {
    throw new UploadError(`${what}: the store's ETag ${a.etag} is not the MD5 of the bytes sent (${a.md5})`, 'retry', 'BadDigest');
  }
}

/** A verified upload. */
export interface UploadResult {
  etag: string;
  /** False when the store's ETag could not be compared with the file (not an MD5: SSE-KMS, some stores). */
  digestVerified: boolean;
}

/** The presigned form: one PUT of the whole file to the URL as given, its ETag checked against the file's MD5. */
export async function putPresigned(url: string, o: TransferOptions): Promise<UploadResult> {
  const answer = await putRange(url, 0, o.size, o);
  checkDigest(answer, 'upload');
  return { etag: answer.etag, digestVerified: answer.md5 !== null && answer.etagIsMd5 };
}
