/** VAR wire format: inbound envelope parsing, coordinator payload readers, outbound framing, pairing links. Pure. */
import { isIP } from 'node:net';

/** The protocol version this device speaks and puts on every message. */
export const PROTO_VERSION = '1.0';
/** The coordinator's WebSocket port when a pairing link leaves it out. */
export const DEFAULT_COORDINATOR_PORT = 8765;
/** request_clip pre-roll (ms) when `fromMs` is absent: the real coordinator's default. */
export const DEFAULT_FROM_MS = 10_000;
/** request_clip post-roll (ms) when `toMs` is absent: the real coordinator's default. */
export const DEFAULT_TO_MS = 5_000;
/** Longest pre-roll or post-roll a request_clip may ask for (10 minutes each). */
export const MAX_CLIP_SIDE_MS = 600_000;

/** A validated envelope; the payload is still untyped (see the read* functions). */
export interface Inbound {
  type: string;
  protoVersion: string;
  deviceId: string | null;
  sessionId: string | null;
  payload: Record<string, unknown>;
}

/** Why an inbound frame was refused (the code is also what the device reports in its `error`). */
export type InboundErrorCode = 'BAD_MESSAGE' | 'UNSUPPORTED_VERSION' | 'TOO_LARGE';

/** Outcome of parseInbound; `type` is the message type when it could be read, for the error reply. */
export type ParseInboundResult =
  | { ok: true; msg: Inbound }
  | { ok: false; code: InboundErrorCode; message: string; type: string | null };

/** Outcome of a payload reader: the typed value, or a message naming the offending field. */
export type ReadResult<T> = { ok: true; value: T } | { ok: false; message: string };

/** Recording profile of start_record; every field may be absent (null = keep the device's setting). */
export interface RecordProfile {
  width: number | null;
  height: number | null;
  fps: number | null;
  bitrateBps: number | null;
}

/** Clip quality asked for by request_clip. */
export type ClipQuality = 'original' | 'preview';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A short picture of an untrusted value for error texts (never throws, even on very deep nesting). */
const show = (v: unknown): string => {
  if (Array.isArray(v)) return `an array`;
  if (isObject(v)) return 'an object';
  const s = typeof v === 'string' ? JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v) : String(v);
  return s.length > 44 ? `${s.slice(0, 41)}...` : s;
};
/** Largest `meta` kept with a session, as JSON. */
const MAX_META_BYTES = 4096;
/** Major version 1 only: "1", "1.0", "1.2", "1.2.3". */
const VERSION_1 = /^1(?:\.\d+){0,2}$/;

class FieldError extends Error {}

/**
 * Parses and validates one text frame. A missing `protoVersion` is UNSUPPORTED_VERSION (like a
 * wrong one); `deviceId` is never checked against ours (the coordinator sends "coordinator");
 * an empty or null top-level `sessionId` falls back to `payload.sessionId`.
 */
export function parseInbound(data: string, maxBytes: number): ParseInboundResult {
  const bytes = Buffer.byteLength(data, 'utf8');
  if (bytes > maxBytes) return { ok: false, code: 'TOO_LARGE', message: `message of ${bytes} bytes exceeds the limit of ${maxBytes}`, type: null };
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (err) {
    return { ok: false, code: 'BAD_MESSAGE', message: `invalid JSON (${(err as Error).message})`, type: null };
  }
  if (!isObject(value)) return { ok: false, code: 'BAD_MESSAGE', message: 'message must be a JSON object', type: null };
  const type = value.type;
  if (typeof type !== 'string' || type === '') {
    return { ok: false, code: 'BAD_MESSAGE', message: `field "type" must be a non-empty string, got ${show(type)}`, type: null };
  }
  const bad = (message: string): ParseInboundResult => ({ ok: false, code: 'BAD_MESSAGE', message, type });
  const version = value.protoVersion;
  if (typeof version !== 'string' || !VERSION_1.test(version)) {
    const what = version === undefined ? 'is missing' : `${show(version)} is not supported`;
    return { ok: false, code: 'UNSUPPORTED_VERSION', message: `field "protoVersion" ${what} (this device speaks ${PROTO_VERSION})`, type };
  }
  const deviceId = value.deviceId ?? null;
  if (deviceId !== null && typeof deviceId !== 'string') return bad(`field "deviceId" must be a string, got ${show(deviceId)}`);
  const payload = value.payload ?? {};
  if (!isObject(payload)) return bad(`field "payload" must be a JSON object, got ${show(payload)}`);
  const top = value.sessionId ?? null;
  if (top !== null && typeof top !== 'string') return bad(`field "sessionId" must be a string or null, got ${show(top)}`);
  const inner = payload.sessionId ?? null;
  if (inner !== null && typeof inner !== 'string') return bad(`field "payload.sessionId" must be a string or null, got ${show(inner)}`);
  const sessionId = top || inner || null;
  return { ok: true, msg: { type, protoVersion: version, deviceId, sessionId, payload } };
}

function reader<T>(type: string, read: () => T): ReadResult<T> {
  try {
    return { ok: true, value: read() };
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, message: `invalid ${type}: ${err.message}` };
    throw err;
  }
}

function optString(o: Record<string, unknown>, key: string, path = `payload.${key}`): string | null {
  const v = o[key] ?? null;
  if (v !== null && typeof v !== 'string') throw new FieldError(`field "${path}" must be a string or null, got ${show(v)}`);
  return v;
}

function idString(o: Record<string, unknown>, key: string, max: number): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '' || v.length > max) {
    throw new FieldError(`field "payload.${key}" must be a non-empty string of at most ${max} characters, got ${show(v)}`);
  }
  return v;
}

function optNumber(o: Record<string, unknown>, key: string, path: string, ok: (n: number) => boolean, rule: string): number | null {
  const v = o[key] ?? null;
  if (v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new FieldError(`field "${path}" must be ${rule}, got ${show(v)}`);
  return v;
}

/** Reads pair_accept: the key to persist (≤ 512 chars) and the name the coordinator gave us. */
export function readPairAccept(payload: Record<string, unknown>): ReadResult<{ deviceKey: string; assignedName: string | null }> {
  return reader('pair_accept', () => ({ deviceKey: idString(payload, 'deviceKey', 512), assignedName: optString(payload, 'assignedName') }));
}

/** Reads pair_reject; an absent reason reads as "unspecified". */
export function readPairReject(payload: Record<string, unknown>): ReadResult<{ reason: string }> {
  return reader('pair_reject', () => ({ reason: optString(payload, 'reason') ?? 'unspecified' }));
}

const NAMED_RESOLUTIONS: Record<string, [number, number]> = {
  '480p': [854, 480],
  '720p': [1280, 720],
  '1080p': [1920, 1080],
  '1440p': [2560, 1440],
  '2160p': [3840, 2160],
  '4k': [3840, 2160],
};

/** "1080p" (case-insensitive), "4K" or "WxH" (16–8192 each) to [width, height]; null if not recognised. */
export function parseResolution(s: string): [number, number] | null {
  const t = s.trim().toLowerCase();
  const named = NAMED_RESOLUTIONS[t];
  if (named) return [...named];
  const m = /^(\d{2,5})\s*[x×]\s*(\d{2,5})$/.exec(t);
  if (!m) return null;
  const [w, h] = [Number(m[1]), Number(m[2])];
  return w >= 16 && h >= 16 && w <= 8192 && h <= 8192 ? [w, h] : null;
}

function readProfile(v: unknown): RecordProfile | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw new FieldError(`field "payload.profile" must be an object or null, got ${show(v)}`);
  let [width, height]: (number | null)[] = [null, null];
  const res = v.resolution ?? null;
  if (res !== null) {
    const wh = typeof res === 'string' ? parseResolution(res) : null;
    if (!wh) throw new FieldError(`field "payload.profile.resolution" must be 480p, 720p, 1080p, 1440p, 2160p, 4K or WxH, got ${show(res)}`);
    [width, height] = wh;
  }
  const fps = optNumber(v, 'fps', 'payload.profile.fps', (n) => n > 0 && n <= 240, 'a number in (0, 240]');
  const bitrateBps = optNumber(v, 'bitrate', 'payload.profile.bitrate', (n) => n > 0 && n <= 1e9, 'a positive number of bits/s (at most 1e9)');
  return { width, height, fps, bitrateBps };
}

/** Reads start_record; the session id is `topSessionId` (Inbound.sessionId) if non-empty, else `payload.sessionId`. */
export function readStartRecord(
  payload: Record<string, unknown>,
  topSessionId: string | null = null,
): ReadResult<{ sessionId: string | null; profile: RecordProfile | null; meta: Record<string, unknown> }> {
  return reader('start_record', () => {
    const sessionId = topSessionId || optString(payload, 'sessionId') || null;
    const meta = payload.meta ?? {};
    if (!isObject(meta)) throw new FieldError(`field "payload.meta" must be an object, got ${show(meta)}`);
    let size = Infinity;
    try {
      size = Buffer.byteLength(JSON.stringify(meta));
    } catch {
      /* too deep to serialise: refused below */
    }
    if (size > MAX_META_BYTES) throw new FieldError(`field "payload.meta" must serialise to at most ${MAX_META_BYTES} bytes`);
    return { sessionId, profile: readProfile(payload.profile), meta };
  });
}

/** Reads mark: the mark id (≤ 128 chars), the coordinator's clock when it was sent, a note. */
export function readMark(payload: Record<string, unknown>): ReadResult<{ markId: string; coordinatorTs: number | null; note: string | null }> {
  return reader('mark', () => ({
    markId: idString(payload, 'markId', 128),
    coordinatorTs: optNumber(payload, 'coordinatorTs', 'payload.coordinatorTs', () => true, 'a number (ms)'),
    note: optString(payload, 'note')?.slice(0, 1000) ?? null,
  }));
}

/** Clip ids a coordinator may choose (and this unit uses): safe as a file name and in a URL. */
export const CLIP_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Reads request_clip as the window [mark − |fromMs|, mark + toMs] (the coordinator sends +10000, the document −10000). */
export function readRequestClip(
  p: Record<string, unknown>,
): ReadResult<{ markId: string; fromMs: number; toMs: number; quality: ClipQuality; clipId: string | null }> {
  return reader('request_clip', () => {
    const markId = idString(p, 'markId', 128);
    const side = `a number of ms with magnitude at most ${MAX_CLIP_SIDE_MS}`;
    const from = optNumber(p, 'fromMs', 'payload.fromMs', (n) => Math.abs(n) <= MAX_CLIP_SIDE_MS, side);
    const toMs = optNumber(p, 'toMs', 'payload.toMs', (n) => n >= 0 && n <= MAX_CLIP_SIDE_MS, `a number in [0, ${MAX_CLIP_SIDE_MS}]`) ?? DEFAULT_TO_MS;
    const fromMs = from === null ? DEFAULT_FROM_MS : Math.abs(from);
    if (fromMs + toMs <= 0) throw new FieldError('fields "payload.fromMs" and "payload.toMs" make an empty clip window');
    const quality = optString(p, 'quality') ?? 'original';
    if (quality !== 'original' && quality !== 'preview') {
      throw new FieldError(`field "payload.quality" must be "original" or "preview", got ${show(quality)}`);
    }
    const clipId = p.clipId ?? null;
    if (clipId !== null && (typeof clipId !== 'string' || !CLIP_ID.test(clipId))) {
      throw new FieldError(`field "payload.clipId" must match ${CLIP_ID.source}, got ${show(clipId)}`);
    }
    return { markId, fromMs, toMs, quality, clipId };
  });
}

/** Reads ping: the coordinator's clock (ms), if sent. */
export function readPing(payload: Record<string, unknown>): ReadResult<{ coordinatorTs: number | null }> {
  return reader('ping', () => ({
    coordinatorTs: optNumber(payload, 'coordinatorTs', 'payload.coordinatorTs', () => true, 'a number (ms)'),
  }));
}

/** Reads disconnect: why the coordinator is sending us away, if it says. */
export function readDisconnect(payload: Record<string, unknown>): ReadResult<{ reason: string | null }> {
  return reader('disconnect', () => ({ reason: optString(payload, 'reason') }));
}

/** One outbound text frame; `sessionId` is included only when given and non-null. */
export function buildOutbound(type: string, deviceId: string, payload: object, sessionId?: string | null): string {
  const body: Record<string, unknown> = { type, protoVersion: PROTO_VERSION, deviceId };
  if (sessionId !== undefined && sessionId !== null) body.sessionId = sessionId;
  body.payload = payload;
  return JSON.stringify(body);
}

/** Where to connect and the pairing token ('' when the link carries none). */
export type PairLink = { url: string; token: string } | { error: string };

const HOSTNAME = /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** Parses a QR pairing link `var://pair?host=&port=&token=` (→ ws://host:port/ws), or a plain ws:// / wss:// URL. */
export function parsePairLink(link: string): PairLink {
  const text = link.trim();
  // A typed address (the coordinator's IP, optionally with a port): ws://host:8765/ws, no token.
  const typed = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text);
  if (typed && (isIP(typed[1]) === 4 || (HOSTNAME.test(typed[1]) && !/^[\d.]+$/.test(typed[1])))) {
    const port = typed[2] ? Number(typed[2]) : DEFAULT_COORDINATOR_PORT;
    if (!(port >= 1 && port <= 65535)) return { error: `port ${show(typed[2])} must be an integer in 1..65535` };
    return { url: `ws://${typed[1]}:${port}/ws`, token: '' };
  }
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return { error: `not a URL: ${show(text)}` };
  }
  if (u.protocol === 'ws:' || u.protocol === 'wss:') {
    if (u.username || u.password) return { error: 'credentials in the URL are not supported' };
    if (text.includes('#')) return { error: 'a WebSocket URL cannot have a #fragment' };
    return { url: u.href, token: '' };
  }
  if (u.protocol !== 'var:') return { error: `unsupported scheme "${u.protocol.replace(/:$/, '')}": expected var://pair, ws:// or wss://` };
  if (u.host.toLowerCase() !== 'pair' || (u.pathname !== '' && u.pathname !== '/')) return { error: 'expected var://pair?host=...&port=...&token=...' };
  const q = u.searchParams;
  let host = (q.get('host') ?? '').trim();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') return { error: 'pairing link has no "host"' };
  const family = isIP(host);
  if (family === 6 && host.includes('%')) return { error: `"host" ${show(host)}: IPv6 zone ids are not supported` };
  if (family === 0 && (!HOSTNAME.test(host) || /^[\d.]+$/.test(host))) return { error: `"host" ${show(host)} is not an IP address or host name` };
  const portText = q.get('port');
  let port = DEFAULT_COORDINATOR_PORT;
  if (portText !== null && portText.trim() !== '') {
    port = /^\d{1,5}$/.test(portText.trim()) ? Number(portText.trim()) : NaN;
    if (!(port >= 1 && port <= 65535)) return { error: `"port" ${show(portText)} must be an integer in 1..65535` };
  }
  const token = (q.get('token') ?? '').trim();
  if (token === '') return { error: 'pairing link has no "token"' };
  if (!/^[A-Za-z0-9]{4,64}$/.test(token)) return { error: `"token" ${show(token)} must be 4 to 64 letters or digits` };
  return { url: `ws://${family === 6 ? `[${host}]` : host}:${port}/ws`, token: token.toUpperCase() };
}

/** An address as it goes in a URL (IPv6 in brackets, IPv4-mapped IPv6 unwrapped). */
export function formatHost(host: string): string {
  const h = host.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}
