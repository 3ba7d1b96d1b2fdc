/** The WebSocket side of the VAR node: connect, reconnect forever with backoff and jitter, feed the node. */
import { WebSocket } from 'ws';
import type { Logger } from '../../log.js';
import { HARD_MAX_FRAME_BYTES, type VarNode } from './node.js';

/** Client options. */
export interface VarClientOptions {
  node: VarNode;
  /** Re-read before every attempt: where to connect (null = nothing to connect to, or no key and no token). */
  target: () => Promise<{ url: string } | null>;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  statusIntervalMs: number;
  /** WebSocket ping period; a coordinator that stops answering is dropped after two. */
  keepaliveMs?: number;
  log: Logger;
}

/** Keeps one connection to the coordinator up for as long as the unit runs. */
export class VarClient {
  private ws: WebSocket | null = null;
  private stopped = true;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private keepTimer: NodeJS.Timeout | null = null;
  private waitingForLink = false;
  private lastError: string | null = null;
  private connectedUrl: string | null = null;

  constructor(private readonly o: VarClientOptions) {}

  /** Start connecting (returns at once). */
  start(): void {
    this.stopped = false;
    this.statusTimer = setInterval(() => this.o.node.tick(), this.o.statusIntervalMs);
    this.statusTimer.unref();
    void this.connect();
  }

  /** The pairing link may have changed: try now instead of waiting. */
  poke(): void {
    if (this.stopped || this.ws) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    void this.connect();
  }

  /** Connection facts for /health. */
  view(): { url: string | null; connected: boolean; lastError: string | null; waitingForLink: boolean } {
    return { url: this.connectedUrl, connected: this.ws?.readyState === WebSocket.OPEN, lastError: this.lastError, waitingForLink: this.waitingForLink };
  }

  private async connect(): Promise<void> {
    if (this.stopped || this.ws) return;
    const { log, node } = this.o;
    const target = await this.o.target().catch((err) => {
      log.error({ err: (err as Error).message }, 'cannot read the pairing state');
      return null;
    });
    if (this.stopped || this.ws) return;
    if (!target) {
      this.waitingForLink = true;
      this.schedule(5000, false);
      return;
    }
    this.connectedUrl = target.url;
    node.connecting();
    let ws: WebSocket;
    try {
      // The socket's own cap is generous: the node refuses oversized known messages with an
      // error and ignores unknown ones, rather than dropping the link (INTEROP: never disconnect for them).
      ws = new WebSocket(target.url, { maxPayload: HARD_MAX_FRAME_BYTES, handshakeTimeout: 10000, perMessageDeflate: false });
    } catch (err) {
      this.lastError = (err as Error).message;
      log.error({ url: target.url, err: this.lastError }, 'cannot connect to this coordinator address');
      this.schedule(this.delay(), true);
      return;
    }
    this.ws = ws;
    let localAddress = '127.0.0.1';
    ws.once('upgrade', (res) => {
      localAddress = res.socket.localAddress ?? localAddress;
    });
    let retry = true;
    let alive = true;
    ws.on('open', () => {
      this.waitingForLink = false;
      this.lastError = null;
      log.info({ url: target.url }, 'connected to the coordinator');
      node.onOpen({
        send: (text) => {
          if (ws.readyState !== WebSocket.OPEN) return false;
          ws.send(text);
          return true;
        },
        close: (reason, again) => {
          retry = again;
          if (!again) this.waitingForLink = true;
          log.info({ reason }, 'closing the coordinator connection');
          ws.close(1000, reason.slice(0, 120));
        },
        localAddress,
      });
      const every = this.o.keepaliveMs ?? 10000;
      this.keepTimer = setInterval(() => {
        if (!alive) {
          log.warn('the coordinator stopped answering pings; reconnecting');
          ws.terminate();
          return;
        }
        alive = false;
        ws.ping();
      }, every);
      this.keepTimer.unref();
    });
    ws.on('pong', () => {
      alive = true;
    });
    ws.on('message', (data, isBinary) => {
      alive = true;
      if (isBinary) node.onBinary();
      else node.onMessage(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
    });
    ws.on('error', (err: Error & { code?: string }) => {
      const msg = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? `a frame over ${HARD_MAX_FRAME_BYTES} bytes was refused` : err.message;
      if (msg !== this.lastError) log.warn({ url: target.url, err: msg }, 'coordinator connection error');
      this.lastError = msg;
    });
    ws.on('close', (code, reason) => {
      if (this.keepTimer) clearInterval(this.keepTimer);
      this.keepTimer = null;
      this.ws = null;
      // A connection that got as far as ready starts the backoff again from the bottom.
      if (node.view().state === 'ready') this.attempt = 0;
      node.onClose();
      if (this.stopped) return;
      log.info({ code, reason: reason.toString('utf8') || undefined }, 'coordinator connection closed');
      this.schedule(this.delay(), retry);
    });
  }

  private delay(): number {
    const base = Math.min(this.o.reconnectMaxMs, this.o.reconnectMinMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(base * (0.5 + Math.random()));
  }

  /** Try again after `ms`; without `retry` only a new link (poke) or the slow poll brings it back. */
  private schedule(ms: number, retry: boolean): void {
    if (this.stopped) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, retry ? ms : Math.max(ms, 5000));
    this.retryTimer.unref();
  }

  /** Close the connection and stop reconnecting. */
  async stop(): Promise<void> {
    // Answers still being made (a clip cut short at shutdown) go out before the link closes.
    await this.o.node.settle(3000);
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.keepTimer) clearInterval(this.keepTimer);
    const ws = this.ws;
    if (!ws) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1001, 'unit shutting down');
    });
  }
}
