/** Upload failures: S3's error answers parsed, and sorted into "try again" and "give up now". Pure. */

/** How the queue should react to a failure. */
export type FailureKind =
  /** Network trouble, a timeout, 5xx, throttling: try again after a pause. */
  | 'retry'
  /** The store refused (expired URL, forbidden, bad credentials, no such bucket): fail at once. */
  | 'fatal'
  /** The multipart upload is gone on the server: start it again from the first part (not an attempt). */
  | 'restart';

/** An upload failure with S3's code where there was one. */
export class UploadError extends Error {
  constructor(
    message: string,
    readonly kind: FailureKind,
    /** S3's error code (AccessDenied, SignatureDoesNotMatch, …) or a local one (Timeout, ConnectionLost, …). */
    readonly code: string,
    readonly httpStatus: number | null = null,
  ) {
    super(message);
    this.name = 'UploadError';
  }
}

const RETRY_CODES = new Set(['InternalError', 'ServiceUnavailable', 'SlowDown', 'RequestTimeout', 'RequestTimeTooSkewed', 'OperationAborted', 'BadDigest', 'IncompleteBody']);
const RESTART_CODES = new Set(['NoSuchUpload', 'InvalidPart', 'InvalidPartOrder']);

/** Decide from an HTTP status and S3 code whether to retry, give up or restart a multipart upload. */
export function classify(httpStatus: number | null, code: string): FailureKind {
  if (RESTART_CODES.has(code)) return 'restart';
  if (RETRY_CODES.has(code)) return 'retry';
  if (httpStatus === null) return 'retry';
  if (httpStatus >= 500 || httpStatus === 408 || httpStatus === 429) return 'retry';
  return 'fatal';
}

const tag = (xml: string, name: string): string | null => {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&') : null;
};

/**
 * An UploadError from an S3 error answer. Only <Code> and <Message> are read: S3's
 * SignatureDoesNotMatch body also echoes the canonical request, which can carry credentials.
 */
export function fromS3Answer(httpStatus: number, body: string): UploadError {
  const code = tag(body, 'Code') ?? `HTTP${httpStatus}`;
  const msg = tag(body, 'Message');
  const text = `${code}${msg ? `: ${msg.slice(0, 300)}` : ''} (HTTP ${httpStatus})`;
  return new UploadError(text, classify(httpStatus, code), code, httpStatus);
}

/** An UploadError for a failure below HTTP (refused, reset, timed out). */
export function fromNetworkError(err: unknown): UploadError {
  if (err instanceof UploadError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? e?.name ?? 'NetworkError';
  return new UploadError(`network error: ${e?.message ?? String(err)}`, 'retry', code, null);
}
