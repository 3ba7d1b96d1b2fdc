/**
 * A real S3-compatible server on loopback for tests, with SigV4 checking and fault injection.
 *
 *   client ──► front (127.0.0.1:port, this file) ──► s3rver (127.0.0.1:port, Koa fake S3)
 *
 * s3rver stores objects on disk but does not verify SigV4 signatures (it only checks that the
 * access key exists), so every request first goes through a "front" HTTP server that verifies the
 * signature with our own independent verifier (./sigv4.ts), checks a hex x-amz-content-sha256
 * against the streamed body, records the request, applies injected faults and then streams the
 * request (path + query byte-for-byte as received, headers unchanged apart from hop-by-hop ones)
 * to s3rver and s3rver's answer back. Bodies are streamed, never buffered whole.
 *
 * Also here: `startCutProxy`, a TCP proxy that cuts the first N connections mid-body.
 *
 * s3rver 3.7.1 facts this helper relies on or works around (read from its lib/ sources):
 *  - ETags: PUT object → `"<md5 hex of the body>"`; UploadPart → `"<md5 hex of the part>"`;
 *    CompleteMultipartUpload → `<ETag>"<md5 hex of the WHOLE assembled object>"</ETag>`, i.e. the
 *    plain MD5 like a single PUT, NOT S3's `"<md5 of the concatenated binary part md5s>-<N>"`.
 *    Complete does not compare the part ETags it is sent (it only reads the part numbers), does
 *    not enforce the 5 MiB minimum part size, and UploadPart does not check that the upload id
 *    exists (the front answers 404 NoSuchUpload for unknown upload ids instead).
 *  - AbortMultipartUpload (DELETE ?uploadId), ListParts (GET ?uploadId) answer 405
 *    MethodNotAllowed and ListMultipartUploads answers 501 in s3rver; the front emulates Abort
 *    (204, deletes the upload's directory; 404 NoSuchUpload if unknown).
 *  - Auth: for SigV4 it only checks that the access key id is in its (process-global) account
 *    registry, so the helper registers its keys there; it also checks the 15-minute skew of
 *    x-amz-date and the expiry of presigned URLs itself (after the front has already done so).
 *    It requires x-amz-content-sha256 on header-signed requests and never looks at the payload.
 *  - It writes objects and parts in place while the body streams, so an interrupted upload would
 *    leave a truncated object/part visible; the helper replaces the instance's putObject/putPart
 *    with versions that write to a temp file and rename on success (as atomic as real S3).
 *  - It does not understand aws-chunked bodies (STREAMING-… payloads, checksum trailers): the
 *    front refuses them with 501 and the SDK client here is configured not to send them.
 *  - Expect: 100-continue: s3rver (plain Node http server) would send 100 Continue immediately;
 *    the front instead answers auth errors/injected faults *without* 100 Continue (like S3, with
 *    Connection: close) and sends 100 Continue only when it is about to forward. The header is
 *    not forwarded upstream. The AWS SDK sends it for bodies ≥ 2 MiB.
 *  - Responses carry no x-amz-request-id; error bodies have Code/Message (+details) but no
 *    RequestId. Error bodies the front produces itself do carry a RequestId.
 *  - With vhostBuckets: false s3rver routes by path only, so Host is forwarded unchanged (the
 *    `Location` in CompleteMultipartUploadResult therefore names the front, or the cut proxy).
 *  - Responses: ETag, Last-Modified, Content-Type (default binary/octet-stream), Content-Length,
 *    Accept-Ranges, x-amz-meta-*; HEAD/GET honour Range, If-None-Match, If-Modified-Since.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';
import { PutObjectCommand, GetObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  parseQuery,
  percentDecode,
  renderS3Error,
  splitRawUrl,
  verifySigV4,
  type SigV4Credentials,
  type SigV4Form,
} from './sigv4.js';

// ---------------------------------------------------------------------------------------------
// Public types and defaults

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Test-only keys. The second one is "temporary": requests must carry its session token. */
export const DEFAULT_CREDENTIALS: readonly S3Credentials[] = Object.freeze([
  { accessKeyId: 'AKIAARENACAMTEST0001', secretAccessKey: 'arenacam+test/secret/key/0001/NotARealKey' },
  {
    accessKeyId: 'ASIAARENACAMTEST0002',
    secretAccessKey: 'arenacam+test/secret/key/0002/NotARealKey',
    sessionToken: 'arenacam-test-session-token/0002+==',
  },
]);
export const DEFAULT_BUCKET = 'arenacam-test';
export const DEFAULT_REGION = 'us-east-1';

export interface StartS3Options {
  /** Bucket created at start; default `arenacam-test`. */
  bucket?: string;
  /** Region the credential scope must name; default `us-east-1`. */
  region?: string;
  /** Accepted keys; default DEFAULT_CREDENTIALS. The first is `credentials` / used by s3Client(). */
  credentials?: readonly S3Credentials[];
  /** Serve the front over https with this key and certificate (PEM file paths); s3rver behind stays plain. */
  tls?: { key: string; cert: string };
}

/** Object-write requests: the ones fault injection and onWrite apply to. */
export type WriteKind = 'put' | 'copy' | 'part' | 'complete';

/** One request as the front saw it. Mutated in place while the request runs. */
export interface S3RequestRecord {
  method: string;
  /** Request-target exactly as received (path + `?query`). */
  rawUrl: string;
  /** Raw (still URI-encoded) path. */
  path: string;
  /** Decoded query parameters (first value wins). */
  query: Record<string, string>;
  bucket?: string;
  /** Decoded object key. */
  key?: string;
  form?: SigV4Form;
  accessKeyId?: string;
  /** x-amz-content-sha256 as signed (hex, UNSIGNED-PAYLOAD, …). */
  payloadHash?: string;
  /** The signature verified. */
  ok: boolean;
  write?: WriteKind;
  /** HTTP status answered; 0 while running or when the connection died before an answer. */
  status: number;
  /** S3 error code when the front answered with an error itself (auth, fault, hash mismatch…). */
  code?: string;
  /** Answered by fault injection. */
  injected: boolean;
  /** The client connection went away before the exchange finished. */
  aborted: boolean;
  /** Request body bytes received from the client. */
  bytesIn: number;
  /** ETag header of s3rver's answer, if any. */
  etag?: string;
  startedAt: number;
  endedAt?: number;
  /** When the store's answer started back to the client (epoch ms): no client can know it earlier. */
  answeredAt?: number;
  partNumber?: number;
  uploadId?: string;
}

export interface WriteInfo {
  kind: WriteKind;
  method: string;
  rawUrl: string;
  bucket: string;
  key: string;
  partNumber?: number;
  uploadId?: string;
  record: S3RequestRecord;
}
export type WriteHook = (info: WriteInfo) => void | Promise<void>;

export interface TestS3 {
  /** http(s)://127.0.0.1:PORT of the signature-checking front. */
  readonly endpoint: string;
  readonly port: number;
  readonly bucket: string;
  readonly region: string;
  /** The primary key (first of the configured credentials). */
  readonly credentials: S3Credentials;
  readonly allCredentials: readonly S3Credentials[];
  /** Every request the front received, in arrival order. */
  readonly requests: S3RequestRecord[];
  /** Errors thrown by the onWrite hook (the request got a 500 InternalError). */
  readonly hookErrors: unknown[];
  /** s3rver's own port (unauthenticated; for diagnostics only). */
  readonly upstreamPort: number;
  /** s3rver's storage directory (removed by close()). */
  readonly dataDir: string;

  /** The next `n` object writes get this S3 error (queued after any already pending). */
  failNext(n: number, status?: number, code?: string): void;
  /** Every object write gets this error until clearFaults(). */
  failAlways(status?: number, code?: string): void;
  clearFaults(): void;
  /** Called (and awaited) just before an object write is forwarded; `undefined` removes it. */
  onWrite(hook: WriteHook | undefined): void;

  /** An SDK client for the front (path style, WHEN_REQUIRED checksums); overrides win. Closed by close(). */
  s3Client(overrides?: Partial<S3ClientConfig>): S3Client;
  /** Presigned PUT URL for `key` (getSignedUrl + PutObjectCommand). */
  presignPut(key: string, expiresInSec?: number, opts?: PresignOptions): Promise<string>;
  /** Presigned GET URL for `key`. */
  presignGet(key: string, expiresInSec?: number, opts?: PresignOptions): Promise<string>;

  /** Stored bytes of `key`, read straight from s3rver's store (not through HTTP). */
  getObject(key: string): Promise<Buffer>;
  /** File holding the bytes of `key` in s3rver's store. */
  objectPath(key: string): string;
  objectStream(key: string): Readable;
  /** Keys in the bucket (sorted), optionally under a prefix. */
  listKeys(prefix?: string): Promise<string[]>;
  /** Forget recorded requests. */
  clearRequests(): void;
  close(): Promise<void>;
}

export interface PresignOptions {
  /** Endpoint the URL points at (e.g. a cut proxy); default the front. */
  endpoint?: string;
  credentials?: S3Credentials;
}

// ---------------------------------------------------------------------------------------------
// s3rver plumbing

interface S3rverAccountModule {
  DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
}
const requireCjs = createRequire(import.meta.url);

/** s3rver checks only that a SigV4 access key exists in its global registry: register ours. */
function registerWithS3rver(creds: readonly S3Credentials[]): void {
  const { DUMMY_ACCOUNT } = requireCjs('s3rver/lib/models/account.js') as S3rverAccountModule;
  for (const c of creds) DUMMY_ACCOUNT.createKeyPair(c.accessKeyId, c.secretAccessKey);
}

/** Stream `content` to a temp file next to `finalPath`, then rename: no partial file is ever visible. */
async function writeAtomically(finalPath: string, content: Readable | Buffer): Promise<{ size: number; md5: string }> {
  await mkdir(dirname(finalPath), { recursive: true });
  const tmp = `${finalPath}.partial-${randomBytes(6).toString('hex')}`;
  const md5 = createHash('md5');
  let size = 0;
  try {
    if (Buffer.isBuffer(content)) {
      md5.update(content);
      size = content.length;
      await writeFile(tmp, content);
    } else {
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          md5.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      });
      await pipeline(content, tap, createWriteStream(tmp));
    }
    await rename(tmp, finalPath);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return { size, md5: md5.digest('hex') };
}

function makeStoreAtomic(store: S3rver.FilesystemStore): void {
  store.putObject = async (object) => {
    if (object.content === null) throw new Error('putObject without content');
    const result = await writeAtomically(store.getResourcePath(object.bucket, object.key, 'object'), object.content);
    await store.putMetadata(object.bucket, object.key, object.metadata, result.md5);
    return result;
  };
  store.putPart = async (bucket, uploadId, partNumber, content) => {
    const partPath = join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
    const result = await writeAtomically(partPath, content);
    await writeFile(`${partPath}.md5`, result.md5);
    return result;
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect']);
const EMPTY_SHA256 = createHash('sha256').digest('hex');

function newRequestId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}

/** Request headers for upstream: as received minus hop-by-hop ones (framing headers are kept). */
function upstreamHeaders(raw: string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (HOP_BY_HOP.has(name)) continue;
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1] : ([] as string[]).concat(prev, raw[i + 1]);
  }
  return out;
}

/** Response headers for the client: s3rver's raw headers minus hop-by-hop and framing-by-chunks. */
function downstreamHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (HOP_BY_HOP.has(name) || name === 'transfer-encoding') continue;
    out.push(raw[i], raw[i + 1]);
  }
  return out;
}

/** Which object write (if any) a request is. Sub-resource requests such as ?tagging are not. */
function classifyWrite(method: string, key: string | undefined, query: Record<string, string>, hasCopySource: boolean): WriteKind | undefined {
  if (!key) return undefined;
  const subresources = Object.keys(query).filter((k) => !/^x-amz-/i.test(k) && k !== 'x-id');
  if (method === 'PUT') {
    if ('uploadId' in query) return 'part';
    if (subresources.length > 0) return undefined;
    return hasCopySource ? 'copy' : 'put';
  }
  if (method === 'POST' && 'uploadId' in query) return 'complete';
  return undefined;
}

/**
 * Counts body bytes; with `expectedSha256` it also hashes them and holds back the latest chunk, so
 * upstream never receives a complete body unless the hash matched (flush errors otherwise).
 */
class BodyTap extends Transform {
  private readonly hash = createHash('sha256');
  private held: Buffer | undefined;
  computed?: string;
  constructor(
    private readonly expectedSha256: string | undefined,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onBytes(chunk.length);
    if (this.expectedSha256 === undefined) return cb(null, chunk);
    this.hash.update(chunk);
    const prev = this.held;
    this.held = chunk;
    cb(null, prev);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expectedSha256 === undefined) return cb();
    this.computed = this.hash.digest('hex');
    if (this.computed !== this.expectedSha256) return cb(new Error('XAmzContentSHA256Mismatch'));
    cb(null, this.held);
  }
}

interface Fault {
  status: number;
  code: string;
}

const FAULT_MESSAGES: Record<string, string> = {
  InternalError: 'We encountered an internal error. Please try again.',
  ServiceUnavailable: 'Please reduce your request rate.',
  SlowDown: 'Please reduce your request rate.',
  AccessDenied: 'Access Denied',
};

// ---------------------------------------------------------------------------------------------
// startS3

export async function startS3(opts: StartS3Options = {}): Promise<TestS3> {
  const bucket = opts.bucket ?? DEFAULT_BUCKET;
  const region = opts.region ?? DEFAULT_REGION;
  const allCredentials = opts.credentials ?? DEFAULT_CREDENTIALS;
  if (allCredentials.length === 0) throw new Error('startS3: at least one credential is needed');
  const credMap: SigV4Credentials = new Map(
    allCredentials.map((c) => [c.accessKeyId, { secret: c.secretAccessKey, sessionToken: c.sessionToken }]),
  );

  const dataDir = await mkdtemp(join(tmpdir(), 'arenacam-s3-'));
  registerWithS3rver(allCredentials);
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dataDir,
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  makeStoreAtomic(s3rver.store);
  const upstreamPort = (await s3rver.run()).port;
  const agent = new http.Agent({ keepAlive: true });

  const requests: S3RequestRecord[] = [];
  const hookErrors: unknown[] = [];
  const faultQueue: Fault[] = [];
  let alwaysFault: Fault | undefined;
  let writeHook: WriteHook | undefined;
  const clients = new Set<S3Client>();

  const uploadDir = (uploadId: string): string | undefined =>
    /^[A-Za-z0-9_-]+$/.test(uploadId) ? join(s3rver.store.getResourcePath(bucket, undefined, 'uploads'), uploadId) : undefined;
  const uploadExists = async (uploadId: string): Promise<boolean> => {
    const dir = uploadDir(uploadId);
    if (!dir) return false;
    return stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    );
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const { path, rawQuery } = splitRawUrl(rawUrl);
    const query = parseQuery(rawQuery);
    const segments = path.split('/');
    const reqBucket = segments[1] ? percentDecode(segments[1]).toString('utf8') : undefined;
    const key = segments.length > 2 ? percentDecode(segments.slice(2).join('/')).toString('utf8') || undefined : undefined;
    const rec: S3RequestRecord = {
      method,
      rawUrl,
      path,
      query,
      bucket: reqBucket,
      key,
      ok: false,
      status: 0,
      injected: false,
      aborted: false,
      bytesIn: 0,
      startedAt: Date.now(),
    };
    if (query.partNumber !== undefined) rec.partNumber = Number(query.partNumber);
    if (query.uploadId !== undefined) rec.uploadId = query.uploadId;
    requests.push(rec);
    res.on('close', () => {
      rec.endedAt = Date.now();
      if (!res.writableFinished) rec.aborted = true;
    });
    req.on('close', () => {
      if (!req.complete) rec.aborted = true;
    });

    /** Answer with an S3 XML error. `close` asks the client not to reuse the connection. */
    const sendError = (status: number, code: string, message: string, details: Record<string, string> = {}, close = false): void => {
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      const requestId = newRequestId();
      const body = method === 'HEAD' ? '' : renderS3Error(code, message, requestId, details);
      rec.status = status;
      rec.code = code;
      const headers: http.OutgoingHttpHeaders = {
        'content-type': 'application/xml',
        'content-length': Buffer.byteLength(body),
        'x-amz-request-id': requestId,
      };
      if (close) headers.connection = 'close';
      res.writeHead(status, headers);
      res.end(body);
    };

    /**
     * Refuse before forwarding. With Expect: 100-continue the body was never sent: answer at once
     * and close (as S3 does). Otherwise read the body to its end first so the client isn't cut off.
     */
    const refuse = (status: number, code: string, message: string, details: Record<string, string> = {}): void => {
      if (expectContinue) return sendError(status, code, message, details, true);
      if (req.complete) return sendError(status, code, message, details);
      req.on('data', (c: Buffer) => (rec.bytesIn += c.length));
      req.on('end', () => sendError(status, code, message, details));
      req.resume();
    };

    // ---- authentication
    const auth = verifySigV4({ method, rawUrl, headers: req.headersDistinct }, credMap, Date.now(), { region });
    rec.form = auth.form;
    rec.accessKeyId = auth.accessKeyId;
    if (!auth.ok) return refuse(auth.status, auth.code, auth.message, auth.details);
    rec.ok = true;
    rec.payloadHash = auth.payloadHash;
    if (auth.payloadHash.startsWith('STREAMING-')) {
      return refuse(
        501,
        'NotImplemented',
        `x-amz-content-sha256 ${auth.payloadHash} (aws-chunked body) is not supported by this test server; ` +
          "configure the client with requestChecksumCalculation: 'WHEN_REQUIRED'",
      );
    }
    const expectedSha256 = /^[0-9a-f]{64}$/.test(auth.payloadHash) ? auth.payloadHash : undefined;
    const declaredEmpty = req.headers['content-length'] === '0' || (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined);
    if (expectedSha256 !== undefined && declaredEmpty && expectedSha256 !== EMPTY_SHA256) {
      return refuse(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", {
        ClientComputedContentSHA256: expectedSha256,
        S3ComputedContentSHA256: EMPTY_SHA256,
      });
    }

    // ---- AbortMultipartUpload: s3rver answers 405, so emulate it here
    if (method === 'DELETE' && key !== undefined && query.uploadId !== undefined) {
      if (!(await uploadExists(query.uploadId))) {
        return refuse(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', {
          UploadId: query.uploadId,
        });
      }
      await rm(uploadDir(query.uploadId)!, { recursive: true, force: true });
      rec.status = 204;
      res.writeHead(204, { 'x-amz-request-id': newRequestId() });
      res.end();
      req.resume();
      return;
    }

    // ---- object writes: faults, upload id, hook
    const write = classifyWrite(method, key, query, req.headers['x-amz-copy-source'] !== undefined);
    rec.write = write;
    if (write !== undefined) {
      const fault = faultQueue.shift() ?? alwaysFault;
      if (fault) {
        rec.injected = true;
        return refuse(fault.status, fault.code, FAULT_MESSAGES[fault.code] ?? `Injected fault ${fault.code}`);
      }
      if ((write === 'part' || write === 'complete') && !(await uploadExists(query.uploadId))) {
        return refuse(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', {
          UploadId: query.uploadId,
        });
      }
      if (writeHook) {
        try {
          await writeHook({
            kind: write,
            method,
            rawUrl,
            bucket: reqBucket!,
            key: key!,
            partNumber: rec.partNumber,
            uploadId: rec.uploadId,
            record: rec,
          });
        } catch (err) {
          hookErrors.push(err);
          return refuse(500, 'InternalError', `onWrite hook threw: ${String(err)}`);
        }
      }
    }
    if (req.destroyed) return;

    // ---- forward
    if (expectContinue) res.writeContinue();
    const up = http.request({
      host: '127.0.0.1',
      port: upstreamPort,
      method,
      path: rawUrl,
      headers: upstreamHeaders(req.rawHeaders),
      agent,
    });
    const tap = new BodyTap(expectedSha256, (n) => (rec.bytesIn += n));
    let settle!: (v: 'ok' | 'mismatch' | 'aborted') => void;
    const bodyVerdict = new Promise<'ok' | 'mismatch' | 'aborted'>((resolve) => (settle = resolve));
    let verdict: 'ok' | 'mismatch' | 'aborted' | undefined;
    const decide = (v: 'ok' | 'mismatch' | 'aborted'): void => {
      if (verdict !== undefined) return;
      verdict = v;
      settle(v);
    };

    tap.on('end', () => decide('ok'));
    tap.on('error', () => {
      decide('mismatch');
      up.destroy();
      sendError(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", {
        ClientComputedContentSHA256: expectedSha256 ?? '',
        S3ComputedContentSHA256: tap.computed ?? '',
      });
    });
    req.on('close', () => {
      if (req.complete) return;
      decide('aborted');
      tap.destroy();
      up.destroy();
    });
    up.on('error', (err) => {
      if (verdict === 'mismatch' || verdict === 'aborted') return;
      if (!res.headersSent) sendError(500, 'InternalError', `upstream (s3rver) failed: ${err.message}`, {}, true);
      else res.destroy();
    });
    up.on('response', (upRes) => {
      void (async () => {
        if (expectedSha256 !== undefined && (await bodyVerdict) !== 'ok') {
          upRes.destroy();
          return;
        }
        if (res.headersSent || res.destroyed) {
          upRes.destroy();
          return;
        }
        rec.status = upRes.statusCode ?? 0;
        if (typeof upRes.headers.etag === 'string') rec.etag = upRes.headers.etag;
        rec.answeredAt = Date.now();
        res.writeHead(upRes.statusCode ?? 502, downstreamHeaders(upRes.rawHeaders));
        upRes.pipe(res);
        upRes.on('error', () => res.destroy());
        upRes.on('aborted', () => res.destroy());
      })();
    });
    req.pipe(tap).pipe(up);
  }

  const front = opts.tls
    ? https.createServer({ key: await readFile(opts.tls.key), cert: await readFile(opts.tls.cert) })
    : http.createServer();
  const onRequest = (expectContinue: boolean) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    handle(req, res, expectContinue).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        const body = renderS3Error('InternalError', `test front failed: ${String(err)}`, newRequestId());
        res.writeHead(500, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), connection: 'close' });
        res.end(body);
      } else res.destroy();
    });
  };
  front.on('request', onRequest(false));
  front.on('checkContinue', onRequest(true));
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(0, '127.0.0.1', () => {
      front.off('error', reject);
      resolve();
    });
  });
  const port = (front.address() as net.AddressInfo).port;
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const primary = allCredentials[0];

  const makeClient = (overrides: Partial<S3ClientConfig> = {}): S3Client => {
    const client = new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { ...primary },
      // s3rver cannot decode aws-chunked bodies with checksum trailers
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...overrides,
    });
    clients.add(client);
    return client;
  };
  const presign = async (command: PutObjectCommand | GetObjectCommand, expiresIn: number, o: PresignOptions): Promise<string> => {
    const client = makeClient({
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      ...(o.credentials ? { credentials: { ...o.credentials } } : {}),
    });
    try {
      return await getSignedUrl(client, command, { expiresIn });
    } finally {
      client.destroy();
      clients.delete(client);
    }
  };
  const objectPath = (key: string): string => s3rver.store.getResourcePath(bucket, key, 'object');

  let closed = false;
  return {
    endpoint,
    port,
    bucket,
    region,
    credentials: primary,
    allCredentials,
    requests,
    hookErrors,
    upstreamPort,
    dataDir,
    failNext(n, status = 500, code = 'InternalError') {
      for (let i = 0; i < n; i++) faultQueue.push({ status, code });
    },
    failAlways(status = 500, code = 'InternalError') {
      alwaysFault = { status, code };
    },
    clearFaults() {
      faultQueue.length = 0;
      alwaysFault = undefined;
    },
    onWrite(hook) {
      writeHook = hook;
    },
    s3Client: makeClient,
    presignPut: (key, expiresInSec = 900, o = {}) => presign(new PutObjectCommand({ Bucket: bucket, Key: key }), expiresInSec, o),
    presignGet: (key, expiresInSec = 900, o = {}) => presign(new GetObjectCommand({ Bucket: bucket, Key: key }), expiresInSec, o),
    getObject: (key) => readFile(objectPath(key)),
    objectPath,
    objectStream: (key) => createReadStream(objectPath(key)),
    async listKeys(prefix = '') {
      const { objects } = await s3rver.store.listObjects(bucket, { prefix });
      return objects.map((o) => o.key).sort();
    },
    clearRequests() {
      requests.length = 0;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const c of clients) c.destroy();
      clients.clear();
      await new Promise<void>((resolve) => {
        front.close(() => resolve());
        front.closeAllConnections();
      });
      agent.destroy();
      s3rver.httpServer?.closeAllConnections?.();
      await s3rver.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// startCutProxy

export interface CutProxyOptions {
  /** Cut a connection once more than this many client→server bytes (headers included) went through. */
  cutAfterBytes: number;
  /** How many connections to cut; later ones pass through. Default 1. */
  times?: number;
}

export interface CutProxy {
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1:0 to 127.0.0.1:targetPort. The first `times` connections whose
 * client→server byte count exceeds `cutAfterBytes` are reset on both sides after exactly
 * `cutAfterBytes` bytes were forwarded: an upload connection dying mid-body.
 */
export async function startCutProxy(targetPort: number, opts: CutProxyOptions): Promise<CutProxy> {
  const times = opts.times ?? 1;
  const sockets = new Set<net.Socket>();
  const state = { cuts: 0, connections: 0 };
  const server = net.createServer((client) => {
    state.connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let sent = 0;
    let cut = false;
    const kill = (): void => {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    };
    client.on('data', (chunk: Buffer) => {
      if (cut) return;
      if (state.cuts < times && sent + chunk.length > opts.cutAfterBytes) {
        cut = true;
        state.cuts++;
        const head = chunk.subarray(0, opts.cutAfterBytes - sent);
        sent += head.length;
        if (head.length > 0) upstream.write(head, kill);
        else kill();
        return;
      }
      sent += chunk.length;
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.pipe(client);
    client.on('end', () => upstream.end());
    const cleanup = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', cleanup).on('close', cleanup);
    upstream.on('error', cleanup).on('close', cleanup);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    get cuts() {
      return state.cuts;
    },
    get connections() {
      return state.connections;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
