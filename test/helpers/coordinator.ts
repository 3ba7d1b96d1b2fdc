/** A VAR coordinator peer over a real WebSocket that behaves like INTEROP.md's Flutter coordinator. Shares no device code. */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';

const PROTO_VERSION = '1.0';
const SELF = 'coordinator';
const TOKEN_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
const TOKEN_TTL_MS = 5 * 60_000;
const DEFAULT_PROFILE = { resolution: '1080p', fps: 30, bitrate: 12_000_000 };

/** What the coordinator knows about one camera, by the camera's deviceId. */
export interface DeviceView {
  paired: boolean;
  authed: boolean;
  assignedName: string | null;
  deviceKey: string | null;
  recording: boolean;
  lastStatus: Record<string, unknown> | null;
  sessionId: string | null;
  connected: boolean;
}

/** One frame from a camera (non-JSON text arrives as { invalid }, binary as { binary: bytes }); dropped = ignored status. */
export type Received = { deviceId: string | null; msg: any; atMs: number; dropped: boolean };

/** Options of requestClip; defaults are the real coordinator's (+10000 pre-roll, 5000 post-roll, original). */
export type ClipRequestOptions = { fromMs?: number; toMs?: number; quality?: string; clipId?: string; timeoutMs?: number };

/** Options of startCoordinator: listen address, the clock used for token expiry, default waitFor timeout. */
export type CoordinatorOptions = { host?: string; now?: () => number; waitTimeoutMs?: number };

type Conn = { ws: WebSocket; deviceId: string | null; authed: boolean };

type DeviceRecord = Omit<DeviceView, 'authed' | 'connected'> & { conn: Conn | null };

type Waiter = { pred: (r: Received) => boolean; from: number; resolve: (m: any) => void; reject: (err: Error) => void };

const isObject = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isOpen = (c: Conn | null): c is Conn => c !== null && c.ws.readyState === WebSocket.OPEN;

/** Starts a coordinator on host:0 (default 127.0.0.1) accepting WebSocket upgrades on /ws and /. */
export async function startCoordinator(opts: CoordinatorOptions = {}): Promise<Coordinator> {
  const c = new Coordinator(opts);
  await c.listen();
  return c;
}

/** A running coordinator peer; create it with startCoordinator. */
export class Coordinator {
  port = 0;
  url = '';
  /** Every frame from cameras, in arrival order. */
  readonly received: Received[] = [];
  /** Status messages dropped because their socket had not paired or authed. */
  droppedStatus = 0;
  private pairing = true;
  private named = 0;
  private waiters: Waiter[] = [];
  private readonly tokens = new Map<string, { expiresAt: number; used: boolean }>();
  private readonly known = new Map<string, DeviceRecord>();
  private readonly conns = new Set<Conn>();
  private readonly http: Server = createServer((_req, res) => res.writeHead(404).end());
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly host: string;
  private readonly now: () => number;
  private offline = false;

  constructor(private readonly opts: CoordinatorOptions) {
    [this.host, this.now] = [opts.host ?? '127.0.0.1', opts.now ?? Date.now];
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/ws' && path !== '/') return void socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      if (this.offline) return void socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  /** Binds the listening socket (startCoordinator calls this). */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(0, this.host, () => (this.http.off('error', reject), resolve()));
    });
    this.port = (this.http.address() as { port: number }).port;
    this.url = `ws://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}/ws`;
  }

  /** Like the coordinator PC going away: drop every camera and refuse connections until `online()`. */
  offlineNow(): void {
    this.offline = true;
    for (const c of this.conns) c.ws.terminate();
  }

  /** Accept connections again. */
  online(): void {
    this.offline = false;
  }

  /** A fresh 6-character pairing token, valid 5 minutes by the injected clock, single use. */
  newToken(): string {
    const token = Array.from({ length: 6 }, () => TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)]).join('');
    this.tokens.set(token, { expiresAt: this.now() + TOKEN_TTL_MS, used: false });
    return token;
  }

  /** The QR pairing link for a token. */
  pairLink(token: string): string {
    return `var://pair?host=${encodeURIComponent(this.host)}&port=${this.port}&token=${token}`;
  }

  /** Turns pairing on or off (off → pair_reject "pairing_disabled"). */
  setPairing(enabled: boolean): void {
    this.pairing = enabled;
  }

  /** A snapshot of every device seen, by deviceId. */
  devices(): Map<string, DeviceView> {
    const out = new Map<string, DeviceView>();
    for (const [id, { conn, ...d }] of this.known) out.set(id, { ...d, authed: isOpen(conn) && conn.authed, connected: isOpen(conn) });
    return out;
  }

  /** Forgets a device's key: its next auth gets auth_failed. */
  revoke(deviceId: string): void {
    const d = this.known.get(deviceId);
    if (d) Object.assign(d, { paired: false, deviceKey: null });
  }

  /** The first received message (past or future, dropped status excluded) matching pred. */
  waitFor(pred: (m: any) => boolean, timeoutMs?: number): Promise<any> {
    return this.waitEntry((r) => pred(r.msg), timeoutMs);
  }

  /** Sends start_record with sessionId in the payload (default, as the document) or at the top level. */
  startRecord(deviceId: string, sessionId: string, profile: object | null = DEFAULT_PROFILE, meta = {}, where: 'top' | 'payload' = 'payload'): void {
    const { d, ws } = this.live(deviceId);
    d.sessionId = sessionId;
    const payload: Record<string, unknown> = where === 'payload' ? { sessionId } : {};
    if (profile !== null) payload.profile = profile;
    this.send(ws, 'start_record', { ...payload, meta }, where === 'top' ? sessionId : null);
  }

  /** Sends stop_record (payload {}), with a top-level sessionId when given. */
  stopRecord(deviceId: string, sessionId?: string): void {
    this.send(this.live(deviceId).ws, 'stop_record', {}, sessionId ?? null);
  }

  /** Sends a mark only if the device is believed to be recording; returns whether it was sent. */
  mark(deviceId: string, markId: string, note?: string): boolean {
    const { d, ws } = this.live(deviceId);
    if (!d.recording) return false;
    this.send(ws, 'mark', { markId, coordinatorTs: Date.now(), note: note ?? null }, d.sessionId);
    return true;
  }

  /** Sends request_clip; resolves with that device's clip_ready or error for this markId (or clipId). */
  requestClip(deviceId: string, markId: string, o: ClipRequestOptions = {}): Promise<any> {
    const { d, ws } = this.live(deviceId);
    const payload: Record<string, unknown> = { markId, fromMs: o.fromMs ?? 10_000, toMs: o.toMs ?? 5000, quality: o.quality ?? 'original' };
    if (o.clipId !== undefined) payload.clipId = o.clipId;
    const mine = ({ deviceId: id, msg: m }: Received): boolean =>
      id === deviceId && ['clip_ready', 'error'].includes(m?.type) && isObject(m.payload) &&
      (m.payload.markId === markId || (o.clipId !== undefined && m.payload.clipId === o.clipId));
    const reply = this.waitEntry(mine, o.timeoutMs ?? 60_000, this.received.length);
    this.send(ws, 'request_clip', payload, d.sessionId);
    return reply;
  }

  /** Sends ping; resolves with the device's next pong. */
  ping(deviceId: string): Promise<any> {
    const { ws } = this.live(deviceId);
    const reply = this.waitEntry((r) => r.deviceId === deviceId && r.msg?.type === 'pong', undefined, this.received.length);
    this.send(ws, 'ping', { coordinatorTs: Date.now() });
    return reply;
  }

  /** Sends disconnect with a reason (the socket stays open: the device is expected to leave). */
  disconnect(deviceId: string, reason: string): void {
    this.send(this.live(deviceId).ws, 'disconnect', { reason });
  }

  /** Sends arbitrary bytes to a device, as a text frame or (binary) a binary frame. */
  sendRaw(deviceId: string, data: string | Buffer, binary = false): void {
    this.live(deviceId).ws.send(data, { binary });
  }

  /** A plain HTTP GET like the coordinator's clip download: status, Content-Length (-1 if absent), body; checks nothing. */
  download(url: string, timeoutMs = 60_000): Promise<{ status: number; contentLength: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = get(url, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const header = res.headers['content-length'];
          resolve({ status: res.statusCode ?? 0, contentLength: header === undefined ? -1 : Number(header), body: Buffer.concat(chunks) });
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`download stalled for ${timeoutMs} ms: ${url}`)));
      req.on('error', reject);
    });
  }

  /** Rejects pending waits, drops every connection and stops listening. */
  async close(): Promise<void> {
    for (const w of this.waiters.splice(0)) w.reject(new Error('coordinator closed'));
    for (const c of this.conns) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private device(id: string): DeviceRecord {
    const fresh = { paired: false, assignedName: null, deviceKey: null, recording: false, lastStatus: null, sessionId: null, conn: null };
    return this.known.get(id) ?? (this.known.set(id, fresh), fresh);
  }

  private live(id: string): { d: DeviceRecord; ws: WebSocket } {
    const d = this.known.get(id);
    if (!d || !isOpen(d.conn)) throw new Error(`coordinator: device ${id} is not connected`);
    return { d, ws: d.conn.ws };
  }

  private send(ws: WebSocket, type: string, payload: object, sessionId: string | null = null): void {
    ws.send(JSON.stringify({ type, protoVersion: PROTO_VERSION, deviceId: SELF, sessionId, payload }));
  }

  private waitEntry(pred: (r: Received) => boolean, timeoutMs = this.opts.waitTimeoutMs ?? 5000, from = 0): Promise<any> {
    const past = this.received.slice(from).find((r) => !r.dropped && pred(r));
    if (past) return Promise.resolve(past.msg);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const seen = this.received.slice(-20).map((r) => r.msg?.type ?? '?').join(', ');
        reject(new Error(`coordinator: no matching message within ${timeoutMs} ms (last received: ${seen || 'none'})`));
      }, timeoutMs);
      const settle = <T>(f: (v: T) => void) => (v: T) => (clearTimeout(timer), f(v));
      const waiter: Waiter = { pred, from, resolve: settle(resolve), reject: settle(reject) };
      this.waiters.push(waiter);
    });
  }

  private record(conn: Conn, msg: any, dropped = false): void {
    const id = conn.deviceId ?? (isObject(msg) && typeof msg.deviceId === 'string' ? msg.deviceId : null);
    const entry: Received = { deviceId: id, msg, atMs: Date.now(), dropped };
    const index = this.received.push(entry) - 1;
    if (dropped) return;
    const done = this.waiters.filter((w) => index >= w.from && w.pred(entry));
    this.waiters = this.waiters.filter((w) => !done.includes(w));
    for (const w of done) w.resolve(msg);
  }

  private accept(ws: WebSocket): void {
    const conn: Conn = { ws, deviceId: null, authed: false };
    this.conns.add(conn);
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) return this.record(conn, { binary: buf.length });
      let msg: unknown;
      try {
        msg = JSON.parse(buf.toString('utf8'));
      } catch {
        return this.record(conn, { invalid: buf.toString('utf8') });
      }
      this.onMessage(conn, msg);
    });
    ws.on('error', () => undefined).on('close', () => {
      this.conns.delete(conn);
      const d = conn.deviceId === null ? undefined : this.known.get(conn.deviceId);
      if (d?.conn === conn) d.conn = null;
    });
  }

  private onMessage(conn: Conn, msg: any): void {
    if (!isObject(msg)) return this.record(conn, msg);
    if (['hello', 'pair_request', 'auth'].includes(msg.type) && typeof msg.deviceId === 'string' && msg.deviceId !== '') {
      conn.deviceId = msg.deviceId;
      this.device(msg.deviceId).conn = conn;
    }
    const d = conn.deviceId === null ? null : this.device(conn.deviceId);
    const sessionId = typeof msg.sessionId === 'string' ? msg.sessionId : null;
    const payload = isObject(msg.payload) ? msg.payload : {};
    if (msg.type === 'pair_request') this.pairRequest(conn, String(payload.pairToken ?? ''));
    else if (msg.type === 'auth') this.auth(conn, d, payload.deviceKey);
    else if (msg.type === 'status') {
      if (!conn.authed || !d) return this.droppedStatus++, this.record(conn, msg, true);
      d.lastStatus = payload;
      if (typeof payload.isRecording === 'boolean') d.recording = payload.isRecording;
      if (sessionId) d.sessionId = sessionId;
    } else if (msg.type === 'recording_started' && d) Object.assign(d, { recording: true }, sessionId ? { sessionId } : {});
    else if (msg.type === 'recording_stopped' && d) d.recording = false;
    this.record(conn, msg);
  }

  private pairRequest(conn: Conn, raw: string): void {
    const t = this.tokens.get(raw.trim().toUpperCase());
    const reason = !this.pairing ? 'pairing_disabled' : !t || t.used || !conn.deviceId ? 'invalid_token' : this.now() >= t.expiresAt ? 'expired' : null;
    if (reason !== null || !t) return this.send(conn.ws, 'pair_reject', { reason });
    t.used = true;
    const d = this.device(conn.deviceId!);
    Object.assign(d, { paired: true, deviceKey: randomBytes(32).toString('hex'), assignedName: d.assignedName ?? `Camera ${++this.named}` });
    conn.authed = true;
    this.send(conn.ws, 'pair_accept', { deviceKey: d.deviceKey, assignedName: d.assignedName });
  }

  private auth(conn: Conn, d: DeviceRecord | null, key: unknown): void {
    conn.authed = !!d?.deviceKey && key === d.deviceKey;
    if (conn.authed) return this.send(conn.ws, 'auth_ok', { assignedName: d!.assignedName });
    this.send(conn.ws, 'auth_failed', { reason: d?.deviceKey ? 'bad_key' : 'unknown_device' });
  }
}
