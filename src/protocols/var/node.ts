/** The VAR camera node: pairing/auth and command handling over one connection, free of sockets. */
import type { Connection, LinkState, VarNodeOptions } from './types.js';
import { Outbox } from './outbox.js';
import {
  buildOutbound,
  formatHost,
  parseInbound,
  readDisconnect,
  readMark,
  readPairAccept,
  readPairReject,
  readRequestClip,
  readStartRecord,
  type Inbound,
} from './messages.js';

/** Messages queued while the link is down (results must reach the coordinator after a reconnect). */
const OUTBOX_MAX = 200;
const COMMANDS = new Set(['start_record', 'stop_record', 'mark', 'request_clip']);
/** Types this node understands; frames of these over maxMessageBytes are refused, other types of any size ignored. */
const KNOWN = new Set([...COMMANDS, 'pair_accept', 'pair_reject', 'auth_ok', 'auth_failed', 'ping', 'disconnect', 'error']);
const QUIET = new Set(['hello', 'hello_ack', 'welcome', 'status_ack', 'pong']);
/** Hard cap on any frame (the socket's limit); unknown types up to it are ignored, not refused. */
export const HARD_MAX_FRAME_BYTES = 4 * 1024 * 1024;

/** One VAR node; the client feeds it connections and messages. */
export class VarNode {
  private conn: Connection | null = null;
  private linkState: LinkState = 'disconnected';
  private pendingToken: string | null = null;
  private readonly outbox: Outbox;
  private lastAddress = '127.0.0.1';
  /** Commands being handled (their answers are still to be sent). */
  private readonly pending = new Set<Promise<void>>();
  private readonly unknownSeen = new Set<string>();
  private lastReject: { reason: string; atMs: number } | null = null;
  private assignedName: string | null = null;

  constructor(private readonly o: VarNodeOptions) {
    this.outbox = new Outbox(OUTBOX_MAX, o.log);
  }

  /** Link state, last rejection and the name the coordinator gave. */
  view(): { state: LinkState; assignedName: string | null; lastReject: { reason: string; atMs: number } | null; queued: number } {
    return { state: this.linkState, assignedName: this.assignedName, lastReject: this.lastReject, queued: this.outbox.size };
  }

  /** Set the name the coordinator gave (loaded from disk). */
  setAssignedName(name: string | null): void {
    this.assignedName = name;
  }

  /** Resolves once every command being handled has answered, or after `ms` (before closing the link at shutdown). */
  async settle(ms: number): Promise<void> {
    if (!this.pending.size) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  /** A connection opened: hello, then auth with the key or pair with the token. */
  onOpen(conn: Connection): void {
    this.conn = conn;
    this.lastAddress = conn.localAddress;
    const caps = this.o.device.capabilities();
    this.emit('hello', { deviceName: this.o.deviceName, platform: 'linux', appVersion: this.o.appVersion, capabilities: caps });
    const key = this.o.pairing.key();
    const token = this.o.pairing.token();
    if (key) {
      this.linkState = 'authenticating';
      this.emit('auth', { deviceKey: key });
    } else if (token) {
      this.linkState = 'pairing';
      this.pendingToken = token;
      this.emit('pair_request', { pairToken: token, deviceName: this.o.deviceName });
    } else {
      this.linkState = 'needs_pairing';
      this.o.log.warn('not paired and no pairing token: give a pairing link (var.coordinator or `arenacam pair <link>`)');
      conn.close('no pairing token', false);
    }
  }

  /** The connection closed. */
  onClose(): void {
    this.conn = null;
    if (this.linkState !== 'needs_pairing') this.linkState = 'disconnected';
  }

  /** Mark the node as connecting (for status views). */
  connecting(): void {
    if (this.linkState !== 'needs_pairing') this.linkState = 'connecting';
  }

  /** A binary frame: not part of the protocol. */
  onBinary(): void {
    this.o.log.warn('binary WebSocket frame from the coordinator ignored');
    this.emit('error', { code: 'BAD_MESSAGE', message: 'binary frames are not part of the VAR protocol; send JSON text' });
  }

  /** Periodic status; only once paired/authenticated (the coordinator drops it otherwise). */
  tick(): void {
    if (this.linkState !== 'ready') return;
    const s = this.o.device.status();
    const { sessionId, ...payload } = s;
    this.emit('status', payload, sessionId);
  }

  /** One text frame from the coordinator. Never throws; failures go back as `error`. */
  onMessage(text: string): void {
    try {
      const parsed = parseInbound(text, HARD_MAX_FRAME_BYTES);
      if (!parsed.ok) {
        this.o.log.warn({ code: parsed.code, type: parsed.type, error: parsed.message }, 'bad message from the coordinator');
        // Never answer a broken `error` with an `error` (two such peers would ping-pong forever).
        if (parsed.type !== 'error') this.emit('error', { code: parsed.code, message: parsed.message });
        return;
      }
      const bytes = Buffer.byteLength(text);
      if (KNOWN.has(parsed.msg.type) && bytes > this.o.maxMessageBytes) {
        const message = `${parsed.msg.type} of ${bytes} bytes exceeds the limit of ${this.o.maxMessageBytes}`;
        this.o.log.warn({ type: parsed.msg.type, bytes }, 'oversized message from the coordinator refused');
        this.emit('error', { code: 'TOO_LARGE', message });
        return;
      }
      this.dispatch(parsed.msg);
    } catch (err) {
      this.internal('message', err);
    }
  }

  private internal(type: string, err: unknown): void {
    this.o.log.error({ type, err: (err as Error).message }, 'message handling failed');
    this.emit('error', { code: 'INTERNAL', message: `${type} failed: ${(err as Error).message}` }, null, true);
  }

  private dispatch(msg: Inbound): void {
    const { log } = this.o;
    const async = (p: Promise<void>) => {
      const q = p.catch((err) => this.internal(msg.type, err));
      this.pending.add(q);
      void q.finally(() => this.pending.delete(q));
    };
    if (COMMANDS.has(msg.type) && this.linkState !== 'ready') {
      log.warn({ type: msg.type, state: this.linkState }, 'command before pairing/authentication refused');
      this.emit('error', { code: 'NOT_AUTHENTICATED', message: `${msg.type} refused: this camera has not paired or authenticated on this connection` });
      return;
    }
    switch (msg.type) {
      case 'pair_accept':
        return async(this.onPairAccept(msg));
      case 'pair_reject':
        return async(this.onPairReject(msg));
      case 'auth_ok':
        if (this.linkState !== 'authenticating') return log.warn({ state: this.linkState }, 'unexpected auth_ok ignored');
        log.info('authenticated with the coordinator');
        return this.becomeReady();
      case 'auth_failed':
        return async(this.onAuthFailed());
      case 'ping':
        return this.emit('pong', { deviceTs: this.o.now() });
      case 'disconnect':
        return async(this.onDisconnect(msg));
      case 'start_record':
        return async(this.onStart(msg));
      case 'stop_record':
        return async(this.onStop(msg));
      case 'mark':
        return async(this.onMark(msg));
      case 'request_clip':
        return async(this.onClip(msg));
      case 'error':
        log.warn({ payload: msg.payload }, 'the coordinator reported an error');
        return;
      default:
        if (QUIET.has(msg.type)) return;
        if (!this.unknownSeen.has(msg.type) && this.unknownSeen.size < 100) {
          this.unknownSeen.add(msg.type);
          log.info({ type: msg.type }, 'unknown message type from the coordinator ignored (logged once per type)');
        }
    }
  }

  private becomeReady(): void {
    this.linkState = 'ready';
    this.lastReject = null;
    const queued = this.outbox.drain();
    let sent = 0;
    for (const { type, text } of queued) {
      if (this.conn?.send(text)) sent++;
      else this.outbox.push(type, text);
    }
    if (queued.length) this.o.log.info({ messages: sent, left: queued.length - sent }, 'results kept while disconnected delivered');
    this.tick();
  }

  private async onPairAccept(msg: Inbound): Promise<void> {
    if (this.linkState !== 'pairing') return void this.o.log.warn({ state: this.linkState }, 'unexpected pair_accept ignored');
    const r = readPairAccept(msg.payload);
    if (!r.ok) {
      this.o.log.error({ error: r.message }, 'unusable pair_accept');
      this.emit('error', { code: 'BAD_MESSAGE', message: r.message });
      return;
    }
    await this.o.pairing.paired(r.value.deviceKey, r.value.assignedName, this.pendingToken);
    this.pendingToken = null;
    this.assignedName = r.value.assignedName;
    this.o.log.info({ assignedName: r.value.assignedName }, 'paired with the coordinator');
    this.becomeReady();
  }

  private async onPairReject(msg: Inbound): Promise<void> {
    const r = readPairReject(msg.payload);
    const reason = r.ok ? r.value.reason : 'unknown';
    this.lastReject = { reason, atMs: this.o.now() };
    const retry = reason === 'pairing_disabled';
    this.o.log.error({ reason }, retry ? 'pairing refused: pairing is disabled on the coordinator; will retry' : 'pairing refused; a new pairing link is needed');
    await this.o.pairing.rejected(this.pendingToken, reason);
    this.pendingToken = null;
    this.linkState = retry ? 'disconnected' : 'needs_pairing';
    this.conn?.close(`pair_reject: ${reason}`, retry);
  }

  private async onAuthFailed(): Promise<void> {
    if (this.linkState !== 'authenticating') return void this.o.log.warn({ state: this.linkState }, 'unexpected auth_failed ignored');
    this.o.log.warn('the coordinator refused our key (auth_failed); forgetting it and pairing again');
    await this.o.pairing.forgetKey('auth_failed');
    this.linkState = 'disconnected';
    this.conn?.close('auth_failed', true);
  }

  private async onDisconnect(msg: Inbound): Promise<void> {
    const r = readDisconnect(msg.payload);
    const reason = (r.ok ? r.value.reason : null) ?? 'none given';
    this.o.log.warn({ reason }, 'the coordinator asked us to disconnect');
    if (reason === 'unpaired') await this.o.pairing.forgetKey('unpaired by the coordinator');
    this.linkState = 'disconnected';
    this.conn?.close(`disconnect: ${reason}`, true);
  }

  private async onStart(msg: Inbound): Promise<void> {
    const r = readStartRecord(msg.payload, msg.sessionId);
    if (!r.ok) return this.fail('BAD_MESSAGE', r.message, msg.sessionId);
    const res = await this.o.device.startSession(r.value);
    if (!res.ok) return this.fail(res.code, res.message, r.value.sessionId);
    this.emit('recording_started', { startedAt: Math.round(res.startedAtMs) }, res.sessionId, true);
    this.tick();
  }

  private async onStop(msg: Inbound): Promise<void> {
    const res = await this.o.device.stopSession(msg.sessionId);
    if (!res.ok) return this.fail(res.code, res.message, msg.sessionId);
    // A stop that happened now reaches the coordinator through sessionEnded (the device's stop
    // listener); only a repeated stop_record for a session already stopped is answered here.
    if (res.repeated) this.sessionEnded(res.sessionId, res.stoppedAtMs, res.fileName);
  }

  /** A recording ended (stop_record, or another way: MultiCam STOP, full disk): tell the coordinator. */
  sessionEnded(sessionId: string | null, stoppedAtMs: number | null, fileName: string | null): void {
    this.emit('recording_stopped', { stoppedAt: stoppedAtMs === null ? this.o.now() : Math.round(stoppedAtMs), fileName }, sessionId, true);
    this.tick();
  }

  private async onMark(msg: Inbound): Promise<void> {
    const deviceTs = this.o.now();
    const r = readMark(msg.payload);
    if (!r.ok) return this.fail('BAD_MESSAGE', r.message, msg.sessionId);
    await this.o.device.mark({ ...r.value, deviceTs, sessionId: msg.sessionId });
    this.emit('mark_ack', { markId: r.value.markId, deviceTs }, msg.sessionId, true);
  }

  private async onClip(msg: Inbound): Promise<void> {
    const r = readRequestClip(msg.payload);
    if (!r.ok) return this.fail('BAD_MESSAGE', r.message, msg.sessionId);
    const req = r.value;
    const res = await this.o.device.requestClip({ ...req, sessionId: msg.sessionId });
    if (!res.ok) {
      this.o.log.warn({ markId: req.markId, code: res.code, error: res.message }, 'clip request failed');
      this.emit('error', { code: res.code, message: res.message, markId: req.markId, clipId: req.clipId }, msg.sessionId, true);
      return;
    }
    const host = this.o.advertisedHost ?? this.conn?.localAddress ?? this.lastAddress;
    const url = `http://${formatHost(host)}:${this.o.httpPort()}/clips/${res.clipId}.mp4`;
    this.emit('clip_ready', { clipId: res.clipId, markId: req.markId, url, durationMs: res.durationMs, sizeBytes: res.sizeBytes }, msg.sessionId, true);
  }

  private fail(code: string, message: string, sessionId: string | null): void {
    this.o.log.warn({ code, error: message }, 'command refused');
    this.emit('error', { code, message }, sessionId, true);
  }

  /** Send now, or keep `keep` messages for after the reconnect. */
  private emit(type: string, payload: object, sessionId: string | null = null, keep = false): void {
    const text = buildOutbound(type, this.o.deviceId, payload, sessionId);
    const handshake = type === 'hello' || type === 'auth' || type === 'pair_request';
    if (this.conn && (this.linkState === 'ready' || handshake || !keep) && this.conn.send(text)) return;
    if (keep) this.outbox.push(type, text);
  }
}
