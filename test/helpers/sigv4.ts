/**
 * An independent AWS Signature Version 4 verifier for S3 requests, written from the AWS spec
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html and the S3
 * "Authenticating Requests (AWS Signature Version 4)" pages). It deliberately shares no code with
 * the AWS SDK's signer, so a test that passes proves the SDK (or any other client) produced a
 * signature a real S3 would accept, not that two copies of one implementation agree.
 *
 * Both forms S3 clients use are handled:
 *  - header auth: `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`
 *    with `x-amz-date`, `x-amz-content-sha256` (hex sha256 or UNSIGNED-PAYLOAD / STREAMING-…)
 *    and optionally `x-amz-security-token`;
 *  - query auth (presigned URLs): `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
 *    `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature` (+ `X-Amz-Security-Token`).
 *
 * S3 specifics: the canonical URI is the path exactly as it came on the wire (S3 does not
 * normalise or double-encode it); the canonical query decodes every name and value that came on
 * the wire and re-encodes it RFC 3986 style (only A-Z a-z 0-9 - _ . ~ left bare), sorted by
 * encoded name then value. A literal `+` in a query is taken as a plus sign, not a space.
 *
 * Pure: no I/O, the clock is a parameter. The body is not seen here; when the result carries a hex
 * `payloadHash` the caller must hash the body and compare (S3 answers 400
 * XAmzContentSHA256Mismatch).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** S3's limit on the difference between x-amz-date and the server clock, header form. */
export const MAX_SKEW_MS = 15 * 60 * 1000;
/** S3's upper bound for X-Amz-Expires (7 days). */
export const MAX_PRESIGN_EXPIRES_S = 604_800;

/** What the verifier needs of an HTTP request. Header names are matched case-insensitively. */
export interface SigV4Request {
  method: string;
  /** The request-target exactly as received (path + optional `?query`), e.g. Node's `req.url`. */
  rawUrl: string;
  /** Repeated headers may be given as arrays (e.g. Node's `req.headersDistinct`); joined with ','. */
  headers: Record<string, string | string[] | undefined>;
}

/** Known keys: access key id → secret (and the session token the key requires, if any). */
export type SigV4Credentials = Map<string, { secret: string; sessionToken?: string }>;

export interface SigV4Options {
  /** When set, a credential scope naming another region is refused (AuthorizationHeaderMalformed). */
  region?: string;
  /** Service in the credential scope; default `s3`. */
  service?: string;
  /** Allowed clock skew for header auth; default 15 min like S3. */
  maxSkewMs?: number;
}

export type SigV4Form = 'header' | 'query';

export interface SigV4Success {
  ok: true;
  form: SigV4Form;
  accessKeyId: string;
  /** The payload hash that was signed: 64 lower-case hex digits, `UNSIGNED-PAYLOAD` or `STREAMING-…`. */
  payloadHash: string;
  signedHeaders: string[];
  /** Request time from x-amz-date / X-Amz-Date, ms since the epoch. */
  dateMs: number;
  /** For the query form: when the URL stops being valid, ms since the epoch. */
  expiresAtMs?: number;
}

export interface SigV4Failure {
  ok: false;
  /** Undefined when the request carried no SigV4 authentication at all. */
  form?: SigV4Form;
  accessKeyId?: string;
  status: number;
  code: string;
  message: string;
  /** Extra elements for the XML error body (S3 adds e.g. StringToSign, CanonicalRequest). */
  details?: Record<string, string>;
}

export type SigV4Result = SigV4Success | SigV4Failure;

const fail = (
  status: number,
  code: string,
  message: string,
  extra: Partial<Pick<SigV4Failure, 'form' | 'accessKeyId' | 'details'>> = {},
): SigV4Failure => ({ ok: false, status, code, message, ...extra });

// ---------------------------------------------------------------------------------------------
// Encoding helpers

const HEX_PAIR = /^[0-9A-Fa-f]{2}$/;

/** Percent-decode to raw bytes. Invalid `%` sequences are kept literally; `+` stays a plus. */
export function percentDecode(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; ) {
    if (s[i] === '%' && HEX_PAIR.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
      continue;
    }
    const cp = s.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    for (const b of Buffer.from(ch, 'utf8')) out.push(b);
    i += ch.length;
  }
  return Buffer.from(out);
}

function isUnreserved(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    (b >= 0x30 && b <= 0x39) || // 0-9
    b === 0x2d || b === 0x5f || b === 0x2e || b === 0x7e // - _ . ~
  );
}

/** RFC 3986 encoding of raw bytes (or a string's UTF-8): unreserved bare, everything else %XX. */
export function rfc3986Encode(input: Buffer | string): string {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  let out = '';
  for (const b of bytes) out += isUnreserved(b) ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

/** Split a raw query string into [name, value] pairs as they came on the wire (not decoded). */
export function splitRawQuery(rawQuery: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    pairs.push(eq < 0 ? [part, ''] : [part.slice(0, eq), part.slice(eq + 1)]);
  }
  return pairs;
}

/** Decoded (UTF-8) query parameters; for repeated names the first wins. */
export function parseQuery(rawQuery: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of splitRawQuery(rawQuery)) {
    const key = percentDecode(k).toString('utf8');
    if (!(key in out)) out[key] = percentDecode(v).toString('utf8');
  }
  return out;
}

/** Split `rawUrl` into the raw path and the raw query (without `?`). */
export function splitRawUrl(rawUrl: string): { path: string; rawQuery: string } {
  const q = rawUrl.indexOf('?');
  return q < 0 ? { path: rawUrl, rawQuery: '' } : { path: rawUrl.slice(0, q), rawQuery: rawUrl.slice(q + 1) };
}

/** The SigV4 canonical query string; names in `exclude` (exact, case-sensitive) are left out. */
export function canonicalQueryString(rawQuery: string, exclude: ReadonlySet<string> = new Set()): string {
  const pairs: Array<[string, string]> = [];
  for (const [k, v] of splitRawQuery(rawQuery)) {
    const name = percentDecode(k);
    if (exclude.has(name.toString('utf8'))) continue;
    pairs.push([rfc3986Encode(name), rfc3986Encode(percentDecode(v))]);
  }
  // Sort by code point of the encoded (ASCII) strings, name first then value.
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/** Trim and collapse inner runs of spaces, as the spec asks for canonical header values. */
function canonicalHeaderValue(v: string): string {
  return v.trim().replace(/ +/g, ' ');
}

function headerValues(headers: SigV4Request['headers'], name: string): string[] | undefined {
  let found: string[] | undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== name || v === undefined) continue;
    found = (found ?? []).concat(Array.isArray(v) ? v : [v]);
  }
  return found;
}

function headerValue(headers: SigV4Request['headers'], name: string): string | undefined {
  return headerValues(headers, name)?.join(',');
}

// ---------------------------------------------------------------------------------------------
// The signature itself

const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"). */
export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const kDate = hmac('AWS4' + secret, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

/** Build the canonical request for the given signed headers. Missing signed headers count as ''. */
export function canonicalRequest(
  req: SigV4Request,
  signedHeaders: string[],
  payloadHash: string,
  excludeQuery: ReadonlySet<string> = new Set(),
): string {
  const { path, rawQuery } = splitRawUrl(req.rawUrl);
  const canonicalHeaders = signedHeaders
    .map((h) => `${h}:${(headerValues(req.headers, h) ?? []).map(canonicalHeaderValue).join(',')}\n`)
    .join('');
  return [
    req.method.toUpperCase(),
    path === '' ? '/' : path,
    canonicalQueryString(rawQuery, excludeQuery),
    canonicalHeaders,
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

/** Parse `yyyyMMddTHHmmssZ` (ISO 8601 basic, UTC) to ms, or NaN. */
export function parseAmzDate(s: string | undefined): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s ?? '');
  if (!m) return NaN;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number);
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  // reject rollovers like month 13 or Feb 30
  return new Date(ms).getUTCDate() === d && new Date(ms).getUTCMonth() === mo - 1 ? ms : NaN;
}

function safeEqualHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

const QUERY_AUTH_PARAMS = [
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
] as const;

interface ParsedAuth {
  form: SigV4Form;
  accessKeyId: string;
  scopeDate: string;
  scopeRegion: string;
  scopeService: string;
  scopeTerminator: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  sessionToken: string | undefined;
  payloadHash: string;
  expiresS?: number;
}

/** The fields of a `AKID/date/region/service/aws4_request` credential, already split on '/'. */
function credentialScope(parts: string[]): { accessKeyId: string; scopeDate: string; scopeRegion: string; scopeService: string; scopeTerminator: string } {
  return { accessKeyId: parts[0], scopeDate: parts[1], scopeRegion: parts[2], scopeService: parts[3], scopeTerminator: parts[4] };
}

/**
 * Verify the SigV4 signature of an S3 request. Returns what was authenticated, or the error S3
 * would answer with (status, code, message). `nowMs` is the server clock.
 */
export function verifySigV4(
  req: SigV4Request,
  creds: SigV4Credentials,
  nowMs: number,
  opts: SigV4Options = {},
): SigV4Result {
  const service = opts.service ?? 's3';
  const maxSkewMs = opts.maxSkewMs ?? MAX_SKEW_MS;
  const { rawQuery } = splitRawUrl(req.rawUrl);
  const query = parseQuery(rawQuery);
  const authorization = headerValue(req.headers, 'authorization');
  const hasQueryAuth = 'X-Amz-Algorithm' in query || 'X-Amz-Signature' in query || 'X-Amz-Credential' in query;

  if (authorization !== undefined && hasQueryAuth) {
    return fail(
      400,
      'InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
    );
  }
  if (authorization === undefined && !hasQueryAuth) {
    return fail(403, 'AccessDenied', 'Access Denied');
  }

  // ---- parse either form into the same shape
  let parsed: ParsedAuth;
  if (authorization !== undefined) {
    const form: SigV4Form = 'header';
    const malformed = (why: string): SigV4Failure =>
      fail(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; ${why}`, { form });
    const sp = authorization.indexOf(' ');
    const algorithm = sp < 0 ? authorization : authorization.slice(0, sp);
    if (algorithm !== ALGORITHM) {
      return fail(
        400,
        'InvalidRequest',
        'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
        { form },
      );
    }
    const fields = new Map<string, string>();
    for (const part of authorization.slice(sp + 1).split(',')) {
      const p = part.trim();
      if (p === '') continue;
      const eq = p.indexOf('=');
      if (eq < 0) return malformed(`incorrect component "${p}".`);
      const k = p.slice(0, eq);
      if (fields.has(k)) return malformed(`duplicate component ${k}.`);
      fields.set(k, p.slice(eq + 1));
    }
    for (const k of ['Credential', 'SignedHeaders', 'Signature']) {
      if (!fields.has(k)) return malformed(`missing ${k}.`);
    }
    const credParts = fields.get('Credential')!.split('/');
    if (credParts.length !== 5 || credParts[0] === '') {
      return malformed('the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".');
    }
    const amzDate = headerValue(req.headers, 'x-amz-date');
    if (amzDate === undefined || Number.isNaN(parseAmzDate(amzDate))) {
      return fail(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header', {
        form,
        accessKeyId: credParts[0],
      });
    }
    const payloadHash = headerValue(req.headers, 'x-amz-content-sha256');
    if (payloadHash === undefined) {
      return fail(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256', {
        form,
        accessKeyId: credParts[0],
      });
    }
    parsed = {
      form,
      ...credentialScope(credParts),
      signedHeaders: fields.get('SignedHeaders')!.split(';'),
      signature: fields.get('Signature')!,
      amzDate,
      sessionToken: headerValue(req.headers, 'x-amz-security-token'),
      payloadHash,
    };
  } else {
    const form: SigV4Form = 'query';
    const qerr = (message: string): SigV4Failure => fail(400, 'AuthorizationQueryParametersError', message, { form });
    if (query['X-Amz-Algorithm'] !== ALGORITHM) return qerr('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
    for (const p of QUERY_AUTH_PARAMS) {
      if (!(p in query)) {
        return qerr(
          'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
        );
      }
    }
    const credParts = query['X-Amz-Credential'].split('/');
    if (credParts.length !== 5 || credParts[0] === '') {
      return qerr('Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".');
    }
    const amzDate = query['X-Amz-Date'];
    if (Number.isNaN(parseAmzDate(amzDate))) {
      return qerr('X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
    }
    const expiresRaw = query['X-Amz-Expires'];
    if (!/^\d+$/.test(expiresRaw)) return qerr('X-Amz-Expires should be a number');
    const expiresS = Number(expiresRaw);
    if (expiresS < 1) return qerr('X-Amz-Expires must be non-negative');
    if (expiresS > MAX_PRESIGN_EXPIRES_S) {
      return qerr(
        'X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds',
      );
    }
    parsed = {
      form,
      ...credentialScope(credParts),
      signedHeaders: query['X-Amz-SignedHeaders'].split(';'),
      signature: query['X-Amz-Signature'],
      amzDate,
      sessionToken: query['X-Amz-Security-Token'],
      // A presigned URL cannot know its payload: S3 signs the literal UNSIGNED-PAYLOAD (the SDK's
      // presigner also puts X-Amz-Content-Sha256=UNSIGNED-PAYLOAD in the query; it is just a param).
      payloadHash: UNSIGNED_PAYLOAD,
      expiresS,
    };
  }

  const { form, accessKeyId } = parsed;
  const at = { form, accessKeyId };
  const malformedScope = (why: string): SigV4Failure =>
    form === 'header'
      ? fail(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; ${why}`, at)
      : fail(400, 'AuthorizationQueryParametersError', `Error parsing the X-Amz-Credential parameter; ${why}`, at);

  // ---- credential scope
  if (parsed.scopeTerminator !== 'aws4_request') {
    return malformedScope(`incorrect terminal "${parsed.scopeTerminator}". This endpoint uses "aws4_request".`);
  }
  if (parsed.scopeService !== service) {
    return malformedScope(`incorrect service "${parsed.scopeService}". This endpoint belongs to "${service}".`);
  }
  if (opts.region !== undefined && parsed.scopeRegion !== opts.region) {
    return malformedScope(`the region '${parsed.scopeRegion}' is wrong; expecting '${opts.region}'`);
  }
  if (parsed.scopeDate !== parsed.amzDate.slice(0, 8)) {
    return malformedScope(`Invalid credential date "${parsed.scopeDate}". This date is not the same as X-Amz-Date: "${parsed.amzDate.slice(0, 8)}".`);
  }

  // ---- signed headers: lower-case names, host required
  if (parsed.signedHeaders.some((h) => h === '' || h !== h.toLowerCase()) || !parsed.signedHeaders.includes('host')) {
    return form === 'header'
      ? fail(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed; SignedHeaders must be lower-case and include host.', at)
      : fail(400, 'AuthorizationQueryParametersError', 'X-Amz-SignedHeaders must be lower-case and include host.', at);
  }

  // ---- key and session token
  const key = creds.get(accessKeyId);
  if (!key) {
    return fail(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', {
      ...at,
      details: { AWSAccessKeyId: accessKeyId },
    });
  }
  if (key.sessionToken !== undefined) {
    if (parsed.sessionToken === undefined) {
      return fail(400, 'MissingSecurityHeader', 'Your request was missing a required header', {
        ...at,
        details: { MissingHeaderName: form === 'header' ? 'x-amz-security-token' : 'X-Amz-Security-Token' },
      });
    }
    if (parsed.sessionToken !== key.sessionToken) {
      return fail(400, 'InvalidToken', 'The provided token is malformed or otherwise invalid.', at);
    }
  } else if (parsed.sessionToken !== undefined) {
    return fail(400, 'InvalidToken', 'The provided token is malformed or otherwise invalid.', at);
  }

  // ---- time
  const dateMs = parseAmzDate(parsed.amzDate);
  let expiresAtMs: number | undefined;
  if (form === 'header') {
    if (Math.abs(nowMs - dateMs) > maxSkewMs) {
      return fail(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
        ...at,
        details: { RequestTime: parsed.amzDate, ServerTime: new Date(nowMs).toISOString().replace(/\.\d+/, '') },
      });
    }
  } else {
    expiresAtMs = dateMs + parsed.expiresS! * 1000;
    if (dateMs - nowMs > maxSkewMs) {
      return fail(403, 'AccessDenied', 'Request is not valid yet', at);
    }
    if (nowMs >= expiresAtMs) {
      return fail(403, 'AccessDenied', 'Request has expired', {
        ...at,
        details: {
          'X-Amz-Expires': String(parsed.expiresS),
          Expires: new Date(expiresAtMs).toISOString().replace(/\.\d+/, ''),
          ServerTime: new Date(nowMs).toISOString().replace(/\.\d+/, ''),
        },
      });
    }
  }

  // ---- every x-amz-* header that is present must be signed (S3: HeadersNotSigned)
  const unsigned = Object.entries(req.headers)
    .filter(([, v]) => v !== undefined)
    .map(([h]) => h.toLowerCase())
    .filter((h) => h.startsWith('x-amz-') && !parsed.signedHeaders.includes(h));
  if (unsigned.length > 0) {
    return fail(403, 'AccessDenied', 'There were headers present in the request which were not signed', {
      ...at,
      details: { HeadersNotSigned: unsigned.join(', ') },
    });
  }

  // ---- payload hash form (header auth only; the query form always signs UNSIGNED-PAYLOAD)
  if (
    form === 'header' &&
    !/^[0-9a-f]{64}$/.test(parsed.payloadHash) &&
    parsed.payloadHash !== UNSIGNED_PAYLOAD &&
    !parsed.payloadHash.startsWith('STREAMING-')
  ) {
    return fail(400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-…, or a valid sha256 value.', at);
  }

  // ---- the signature
  const canonical = canonicalRequest(
    req,
    parsed.signedHeaders,
    parsed.payloadHash,
    form === 'query' ? new Set(['X-Amz-Signature']) : undefined,
  );
  const scope = [parsed.scopeDate, parsed.scopeRegion, parsed.scopeService, parsed.scopeTerminator].join('/');
  const sts = stringToSign(parsed.amzDate, scope, canonical);
  const expected = createHmac('sha256', signingKey(key.secret, parsed.scopeDate, parsed.scopeRegion, parsed.scopeService))
    .update(sts, 'utf8')
    .digest('hex');
  if (!safeEqualHex(expected, parsed.signature.toLowerCase())) {
    return fail(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      {
        ...at,
        details: {
          AWSAccessKeyId: accessKeyId,
          StringToSign: sts,
          SignatureProvided: parsed.signature,
          CanonicalRequest: canonical,
        },
      },
    );
  }

  return {
    ok: true,
    form,
    accessKeyId,
    payloadHash: parsed.payloadHash,
    signedHeaders: parsed.signedHeaders,
    dateMs,
    ...(expiresAtMs !== undefined ? { expiresAtMs } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Error bodies

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** S3's XML error body: `<Error><Code/><Message/>…details…<RequestId/></Error>`. */
export function renderS3Error(code: string, message: string, requestId: string, details: Record<string, string> = {}): string {
  const extra = Object.entries(details)
    .filter(([k]) => /^[A-Za-z][A-Za-z0-9_.-]*$/.test(k))
    .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`)
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message>${extra}` +
    `<RequestId>${xmlEscape(requestId)}</RequestId></Error>`
  );
}

/** Pull `<Code>` and `<Message>` out of an S3 XML error body (for tests). */
export function parseS3Error(xml: string): { code?: string; message?: string } {
  const unescape = (s: string): string =>
    s.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!);
  const code = /<Code>([^<]*)<\/Code>/.exec(xml)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(xml)?.[1];
  return { code: code === undefined ? undefined : unescape(code), message: message === undefined ? undefined : unescape(message) };
}
