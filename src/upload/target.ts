/**
 * Upload targets: turn an UPLOAD_TO_CLOUD request into a checked destination, and describe a
 * destination without its secrets. Pure: no sockets, no files.
 */
import type { UploadRequest } from '../device/types.js';

/** A presigned PUT URL, kept exactly as the controller sent it. */
export interface PresignedDest {
  kind: 'url';
  url: string;
}

/** The IAM form: bucket, key and (usually temporary STS) credentials. */
export interface S3Dest {
  kind: 's3';
  bucket: string;
  key: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string | null;
}

/** Where a file goes. */
export type UploadDest = PresignedDest | S3Dest;

/** What the device allows (from config). */
export interface TargetPolicy {
  allowHttp: boolean;
  /** S3-compatible endpoint for the IAM form; null = AWS. */
  s3Endpoint: string | null;
}

/** Outcome of resolveTarget. */
export type ResolveResult = { ok: true; dest: UploadDest } | { ok: false; message: string };

const IAM_FIELDS = ['s3Bucket', 's3Key', 'awsAccessKeyId', 'awsSecretAccessKey', 'awsRegion'] as const;
// S3 bucket names: 3–63 of lower-case letters, digits, dots and hyphens, starting and ending alphanumeric.
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
// AWS regions (us-east-1, eu-central-1, us-gov-west-1) and what S3-compatible stores use (auto, garage).
const REGION_RE = /^[a-z0-9][a-z0-9-]{0,40}$/;
// What may appear in a request target on the wire (RFC 3986 characters, already percent-encoded).
const WIRE_PATH_RE = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*$/;

/** Why a URL's scheme is refused, or null when it is allowed. */
export function schemeProblem(url: URL, allowHttp: boolean, what: string): string | null {
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:') {
    return allowHttp ? null : `${what} uses plain http; only https is allowed (set upload.allowHttp: true to permit http)`;
  }
  return `${what} uses the scheme "${url.protocol.replace(/:$/, '')}"; only https${allowHttp ? ' and http are' : ' is'} allowed`;
}

/**
 * The request target (path and query) of `url` exactly as written, never re-encoded: a presigned
 * signature covers the query byte for byte. Null when the URL has no authority part.
 */
export function rawRequestTarget(url: string): string | null {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url);
  if (!m) return null;
  let rest = url.slice(m[0].length);
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  if (rest === '') return '/';
  return rest.startsWith('?') ? `/${rest}` : rest;
}

function resolvePresigned(raw: string, policy: TargetPolicy): ResolveResult {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, message: 'uploadUrl is not a valid URL' };
  }
  const scheme = schemeProblem(url, policy.allowHttp, 'uploadUrl');
  if (scheme) return { ok: false, message: scheme };
  if (!url.hostname) return { ok: false, message: 'uploadUrl has no host' };
  if (url.username || url.password) return { ok: false, message: 'uploadUrl must not carry a user name or password' };
  const target = rawRequestTarget(raw);
  if (target === null || !WIRE_PATH_RE.test(target)) {
    return { ok: false, message: 'uploadUrl contains characters that must be percent-encoded (spaces, quotes, non-ASCII)' };
  }
  if (url.pathname === '/' || url.pathname === '') return { ok: false, message: 'uploadUrl names no object (empty path)' };
  return { ok: true, dest: { kind: 'url', url: raw } };
}

function resolveIam(req: UploadRequest, policy: TargetPolicy): ResolveResult {
  const missing = IAM_FIELDS.filter((k) => req[k] === null || req[k] === '');
  if (missing.length) {
    return {
      ok: false,
      message: `UPLOAD_TO_CLOUD needs either uploadUrl or the IAM form; missing: ${missing.join(', ')}`,
    };
  }
  const bucket = req.s3Bucket!;
  const key = req.s3Key!;
  const region = req.awsRegion!;
  if (!BUCKET_RE.test(bucket) || bucket.includes('..')) return { ok: false, message: `s3Bucket "${bucket.slice(0, 64)}" is not a valid bucket name` };
  if (Buffer.byteLength(key, 'utf8') > 1024) return { ok: false, message: 's3Key is longer than 1024 bytes' };
  if (!REGION_RE.test(region)) return { ok: false, message: `awsRegion "${region.slice(0, 40)}" is not a region name` };
  if (policy.s3Endpoint !== null) {
    let ep: URL;
    try {
      ep = new URL(policy.s3Endpoint);
    } catch {
      return { ok: false, message: 'the configured upload.s3Endpoint is not a valid URL' };
    }
    const scheme = schemeProblem(ep, policy.allowHttp, 'the configured upload.s3Endpoint');
    if (scheme) return { ok: false, message: scheme };
  }
  return {
    ok: true,
    dest: {
      kind: 's3',
      bucket,
      key,
      region,
      accessKeyId: req.awsAccessKeyId!,
      secretAccessKey: req.awsSecretAccessKey!,
      sessionToken: req.awsSessionToken === '' ? null : req.awsSessionToken,
    },
  };
}

/**
 * Checks an UPLOAD_TO_CLOUD request. A presigned URL wins when both forms are present (it is
 * exact and needs nothing from config); otherwise every IAM field but the session token is required
 * (long-lived IAM user keys have none).
 */
export function resolveTarget(req: UploadRequest, policy: TargetPolicy): ResolveResult {
  if (req.uploadUrl !== null && req.uploadUrl !== '') return resolvePresigned(req.uploadUrl, policy);
  const anyIam = IAM_FIELDS.some((k) => req[k] !== null && req[k] !== '');
  if (!anyIam) {
    return {
      ok: false,
      message: 'UPLOAD_TO_CLOUD needs uploadUrl (a presigned PUT URL) or s3Bucket, s3Key, awsAccessKeyId, awsSecretAccessKey and awsRegion',
    };
  }
  return resolveIam(req, policy);
}

const encodeKey = (key: string): string => key.split('/').map(encodeURIComponent).join('/');

/** The object's address without signature or credentials: safe for status replies and logs. */
export function publicUrl(dest: UploadDest, s3Endpoint: string | null): string {
  if (dest.kind === 'url') {
    try {
      const u = new URL(dest.url);
      return `${u.origin}${u.pathname}`;
    } catch {
      return '(invalid URL)';
    }
  }
  if (s3Endpoint !== null) return `${s3Endpoint.replace(/\/+$/, '')}/${dest.bucket}/${encodeKey(dest.key)}`;
  return `https://${dest.bucket}.s3.${dest.region}.amazonaws.com/${encodeKey(dest.key)}`;
}

/** The secret strings of a destination (signature and credentials), for scrubbing error texts. */
function secretsOf(dest: UploadDest): string[] {
  if (dest.kind === 's3') return [dest.secretAccessKey, dest.sessionToken ?? '', dest.accessKeyId].filter((s) => s.length >= 8);
  const out: string[] = [];
  const q = dest.url.indexOf('?');
  if (q >= 0) {
    out.push(dest.url.slice(q + 1));
    for (const part of dest.url.slice(q + 1).split('&')) {
      const v = part.slice(part.indexOf('=') + 1);
      if (v.length >= 8) {
        out.push(v);
        try {
          out.push(decodeURIComponent(v));
        } catch {
          /* not decodable: the raw form is enough */
        }
      }
    }
  }
  return out.sort((a, b) => b.length - a.length);
}

/** `text` with every secret of `dest` replaced by "***" (belt and braces for errors from libraries). */
export function scrubSecrets(text: string, dest: UploadDest): string {
  let out = text;
  for (const s of secretsOf(dest)) out = out.split(s).join('***');
  return out;
}
