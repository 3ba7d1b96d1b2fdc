/**
 * The IAM form, with the AWS SDK: one PutObject for small files, a resumable multipart upload above
 * the threshold.
 *
 * The SDK makes the control calls (CreateMultipartUpload, CompleteMultipartUpload, HeadObject,
 * AbortMultipartUpload) and signs every data request; the bodies themselves go out through
 * putRange (a request presigned by the SDK's presigner for that one PutObject or UploadPart, valid
 * a few minutes). That keeps one body path for both forms: flat memory (two reused buffers rather
 * than a Readable the SDK would pipe), byte-accurate progress and pacing, and an MD5 per part
 * checked against its ETag. The multipart state is handed to the caller to persist after each
 * part, so an upload cut by a restart continues with the next part.
 *
 * The SDK is imported on first use: it is large, and a unit that never uploads with the IAM form
 * should not carry it in memory.
 */
import http from 'node:http';
import https from 'node:https';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { pumpFile } from '../util/file-pump.js';
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Dest } from './target.js';
import { classify, fromNetworkError, UploadError } from './errors.js';
import { abortedError, bareEtag, checkDigest, isPlainHttp, putRange, wantsMd5, type TransferOptions, type UploadResult } from './http-put.js';

/** A multipart upload in progress, persisted by the queue between parts. */
export interface MultipartState {
  uploadId: string;
  partSize: number;
  parts: Array<{ partNumber: number; etag: string; size: number }>;
}

/** Options of an IAM-form upload. */
export interface S3TransferOptions extends TransferOptions {
  /** S3-compatible endpoint, or null for AWS. */
  endpoint: string | null;
  /** Files larger than this go up in parts. */
  thresholdBytes: number;
  partSizeBytes: number;
  /** The state saved by an earlier, interrupted attempt (or null). */
  multipart: MultipartState | null;
  /** Persist the multipart state (null once the upload is completed). */
  saveMultipart(state: MultipartState | null): Promise<void>;
}

const MAX_PARTS = 10000;
/** Lifetime of the presigned URL of one data request (only its start must fall inside). */
const PRESIGN_SECONDS = 900;
const MD5_RE = /^[0-9a-f]{32}$/;

/** An S3 client for one destination: no SDK retries (the queue retries), no flexible-checksum trailers. */
export async function s3ClientFor(dest: S3Dest, endpoint: string | null, timeoutMs: number): Promise<S3Client> {
  let S3Client: typeof import('@aws-sdk/client-s3').S3Client;
  try {
    ({ S3Client } = await import('@aws-sdk/client-s3'));
  } catch (err) {
    throw new UploadError(`the AWS SDK cannot be loaded (${(err as Error).message.split('\n')[0].slice(0, 120)}); reinstall the device software`, 'fatal', 'SdkUnavailable');
  }
  return new S3Client({
    region: dest.region,
    credentials: {
      accessKeyId: dest.accessKeyId,
      secretAccessKey: dest.secretAccessKey,
      ...(dest.sessionToken ? { sessionToken: dest.sessionToken } : {}),
    },
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    maxAttempts: 1,
    // Flexible checksums would add CRC parameters to presigned requests and aws-chunked trailers
    // that several S3-compatible stores reject; the MD5/ETag checks here cover integrity.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: Math.min(timeoutMs, 10000), requestTimeout: timeoutMs },
  });
}

/** An UploadError from whatever the SDK threw. */
export function fromSdkError(err: unknown, signal: AbortSignal): UploadError {
  if (err instanceof UploadError) return err;
  if (signal.aborted) return abortedError();
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  if (typeof status === 'number') {
    const code = e.name && e.name !== 'Error' ? e.name : `HTTP${status}`;
    return new UploadError(`${code}: ${(e.message ?? '').slice(0, 300)} (HTTP ${status})`, classify(status, code), code, status);
  }
  if (e?.name === 'TimeoutError') return new UploadError(`no answer in time; connection cut (${e.message})`, 'retry', 'Timeout');
  return fromNetworkError(err);
}

/** MD5 of a byte range of the file (hex), read through pumpFile's two reused buffers (flat memory). */
async function hashRange(path: string, start: number, length: number): Promise<string> {
  const h = createHash('md5');
  const file = await open(path, 'r');
  try {
    await pumpFile(file, start, length, async (chunk) => void h.update(chunk));
  } finally {
    await file.close();
  }
  return h.digest('hex');
}

/** Upload the file to `dest`; resolves after the store confirmed every byte. */
export async function putS3(dest: S3Dest, o: S3TransferOptions): Promise<UploadResult> {
  const client = await s3ClientFor(dest, o.endpoint, o.timeoutMs);
  // One kept-alive connection for all the data requests of this upload (they go to one host).
  const agent = new (isPlainHttp(o.endpoint ?? 'https:') ? http : https).Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const result = o.size > o.thresholdBytes ? await multipart(client, dest, o, agent) : await single(client, dest, o, agent);
    await checkSize(client, dest, o);
    return result;
  } catch (err) {
    throw fromSdkError(err, o.signal);
  } finally {
    agent.destroy();
    client.destroy();
  }
}

async function presign(client: S3Client, command: object): Promise<string> {
  const { getSignedUrl } = await import('@aws-sdk/s3-request-presigner');
  return getSignedUrl(client, command as Parameters<typeof getSignedUrl>[1], { expiresIn: PRESIGN_SECONDS });
}

async function single(client: S3Client, dest: S3Dest, o: S3TransferOptions, agent: http.Agent): Promise<UploadResult> {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const url = await presign(client, new PutObjectCommand({ Bucket: dest.bucket, Key: dest.key }));
  const answer = await putRange(url, 0, o.size, o, agent);
  checkDigest(answer, 'upload');
  return { etag: answer.etag, digestVerified: answer.md5 !== null && answer.etagIsMd5 };
}

async function multipart(client: S3Client, dest: S3Dest, o: S3TransferOptions, agent: http.Agent): Promise<UploadResult> {
  const sdk = await import('@aws-sdk/client-s3');
  const hashing = wantsMd5(o.verifyMd5, o.endpoint ?? 'https:');
  /** MD5 of each stored part, when hashing. */
  const partMd5s: Buffer[] = [];
  let state = o.multipart;
  let done = 0;
  if (state) {
    // Resume after the parts already stored; when verifying, re-read them to check they are this file's bytes.
    for (const [i, p] of state.parts.entries()) {
      if (p.partNumber !== i + 1) throw new UploadError('the saved parts are not in order; starting again', 'restart', 'InvalidPart');
      if (hashing) {
        const md5 = await hashRange(o.path, done, p.size);
        if (MD5_RE.test(p.etag) && p.etag !== md5) {
          throw new UploadError('the parts already uploaded do not match the file; starting again', 'restart', 'InvalidPart');
        }
        partMd5s.push(Buffer.from(md5, 'hex'));
      }
      done += p.size;
    }
    o.onBytes(done);
  } else {
    const created = await client.send(new sdk.CreateMultipartUploadCommand({ Bucket: dest.bucket, Key: dest.key }), { abortSignal: o.signal });
    if (!created.UploadId) throw new UploadError('the store did not start a multipart upload (no UploadId)', 'retry', 'NoUploadId');
    state = { uploadId: created.UploadId, partSize: Math.max(o.partSizeBytes, Math.ceil(o.size / MAX_PARTS)), parts: [] };
    await o.saveMultipart(state);
  }
  // Each part's record is saved while the next part is already moving (a crash in between only
  // means that part is sent again); the last save is awaited before completing.
  let saving: Promise<void> = Promise.resolve();
  while (done < o.size) {
    const partNumber = state.parts.length + 1;
    const length = Math.min(state.partSize, o.size - done);
    const url = await presign(client, new sdk.UploadPartCommand({ Bucket: dest.bucket, Key: dest.key, UploadId: state.uploadId, PartNumber: partNumber }));
    const answer = await putRange(url, done, length, o, agent);
    checkDigest(answer, `part ${partNumber}`);
    if (answer.md5 !== null) partMd5s.push(Buffer.from(answer.md5, 'hex'));
    state.parts.push({ partNumber, etag: answer.etag, size: length });
    done += length;
    await saving;
    saving = o.saveMultipart(state);
    saving.catch(() => undefined); // awaited below; until then a failure must not go unhandled
  }
  await saving;
  const r = await client.send(
    new sdk.CompleteMultipartUploadCommand({
      Bucket: dest.bucket,
      Key: dest.key,
      UploadId: state.uploadId,
      MultipartUpload: { Parts: state.parts.map((p) => ({ PartNumber: p.partNumber, ETag: `"${p.etag}"` })) },
    }),
    { abortSignal: o.signal },
  );
  await o.saveMultipart(null);
  if (!r.ETag) throw new UploadError('the store completed the upload without an ETag', 'retry', 'NoETag');
  const got = bareEtag(r.ETag);
  if (!hashing || (r.ServerSideEncryption ?? '').startsWith('aws:kms')) return { etag: got, digestVerified: false };
  // S3 (and MinIO, Ceph…) answer the MD5 of the part MD5s with "-N": check it. Stores that answer
  // something else (s3rver: the plain MD5 of the object) assembled parts whose MD5s were each
  // checked above; re-reading the whole file for them would cost seconds per GiB and prove little more.
  const md5OfMd5s = `${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${state.parts.length}`;
  if (got !== md5OfMd5s && got.endsWith(`-${state.parts.length}`)) {
    throw new UploadError(`the completed object's ETag ${got} is not ${md5OfMd5s}`, 'retry', 'BadDigest');
  }
  return { etag: got, digestVerified: true };
}

/** Confirm the stored size with HeadObject where the credentials allow it (upload-only STS policies may not). */
async function checkSize(client: S3Client, dest: S3Dest, o: S3TransferOptions): Promise<void> {
  const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
  let length: number | undefined;
  try {
    length = (await client.send(new HeadObjectCommand({ Bucket: dest.bucket, Key: dest.key }), { abortSignal: o.signal })).ContentLength;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 403) return; // may not look: the ETag checks stand
    throw err;
  }
  if (length !== undefined && length !== o.size) {
    throw new UploadError(`the stored object has ${length} bytes, the file ${o.size}`, 'retry', 'SizeMismatch');
  }
}

/** Give up a multipart upload on the server so its parts stop costing storage (best effort). */
export async function abortMultipart(dest: S3Dest, endpoint: string | null, uploadId: string, timeoutMs: number): Promise<void> {
  const { AbortMultipartUploadCommand } = await import('@aws-sdk/client-s3');
  const client = await s3ClientFor(dest, endpoint, timeoutMs);
  try {
    await client.send(new AbortMultipartUploadCommand({ Bucket: dest.bucket, Key: dest.key, UploadId: uploadId }));
  } finally {
    client.destroy();
  }
}
