/** The MultiCam TCP server: one command per connection, one reply per command, files streamed from disk. */
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { DeviceApi, RecordingHandle } from '../../device/types.js';
import type { Logger } from '../../log.js';
import type { Clock } from '../../util/clock.js';
import { deviceIdOf, fileNotFoundMessage, handleCommand } from './handler.js';
import { pumpFile, writeTo } from '../../util/file-pump.js';
import { CommandFramer, encodeReply, errorReply, parseCommand, type Command, type WireReply } from './wire.js';

/** Everything the server needs; the first five are the `multicam.*` config keys. */
export interface MultiCamServerOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  receiveTimeoutMs: number;
  maxConnections: number;
  device: DeviceApi;
  clock: Clock;
  log: Logger;
  /** How long close() lets running commands and transfers go on before cutting them (default 5000 ms). */
  closeGraceMs?: number;
}

type Phase = 'reading' | 'handling' | 'streaming' | 'closing';

interface Connection {
  socket: Socket;
  remote: string;
  phase: Phase;
  timer: NodeJS.Timeout | undefined;
}

const POLLS = new Set(['HEARTBEAT', 'DEVICE_STATUS', 'UPLOAD_STATUS']);

/** Serves MultiCam commands on TCP: reply in one write then close; never waits for the peer's EOF. */
export class MultiCamServer {
  private server: Server | null = null;
  private readonly conns = new Set<Connection>();
  private readonly transfers = new Set<Promise<void>>();
  private closing: Promise<void> | null = null;
  private stopping = false;
  private lastCommandMs: number | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: MultiCamServerOptions) {
    this.log = opts.log;
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(): Promise<{ port: number }> {
    if (this.server) return Promise.reject(new Error('MultiCamServer is already listening'));
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.onConnection(s));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.error({ err: err.message }, 'multicam server error'));
        const { port } = server.address() as AddressInfo;
        this.log.info({ host: this.opts.host, port }, 'multicam listening');
        resolve({ port });
      });
    });
  }

  /** The bound address, or null when not listening. */
  address(): { host: string; port: number } | null {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }

  /** When the last well-formed command arrived (epoch ms; polls count, unparsable input does not), null = none yet. */
  lastCommandAtMs(): number | null {
    return this.lastCommandMs;
  }

  /** Connections currently open (refused ones included). */
  get connectionCount(): number {
    return this.conns.size;
  }

  /** Stops accepting, ends idle connections, lets running work finish for closeGraceMs, then cuts the rest. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const server = this.server;
    if (!server) return Promise.resolve();
    this.stopping = true;
    this.closing = new Promise<void>((resolve) => {
      const grace = setTimeout(() => {
        for (const c of this.conns) {
          this.log.warn({ remote: c.remote, phase: c.phase }, 'multicam connection cut at shutdown');
          c.socket.destroy();
        }
      }, this.opts.closeGraceMs ?? 5000);
      server.close(() => {
        clearTimeout(grace);
        // Sockets are gone; wait for their transfers to settle so every handle is released.
        void Promise.allSettled([...this.transfers]).then(() => {
          this.server = null;
          this.closing = null;
          this.stopping = false;
          this.log.info('multicam server closed');
          resolve();
        });
      });
      for (const c of this.conns) {
        if (c.phase === 'reading') this.fail(c, 'device is shutting down');
        else if (c.phase === 'closing') this.destroyWhenFlushed(c);
      }
    });
    return this.closing;
  }

  private onConnection(socket: Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const conn: Connection = { socket, remote, phase: 'reading', timer: undefined };
    socket.setNoDelay(true);
    socket.on('error', (err: NodeJS.ErrnoException) =>
      this.log.warn({ remote, phase: conn.phase, code: err.code, err: err.message }, 'multicam socket error'),
    );
    socket.once('close', () => {
      clearTimeout(conn.timer);
      this.conns.delete(conn);
    });
    const busy = this.conns.size >= this.opts.maxConnections;
    this.conns.add(conn);
    // Keep reading (and discarding) after the command: closing with unread bytes would send a reset.
    const framer = new CommandFramer(this.opts.maxMessageBytes);
    socket.on('data', (chunk: Buffer) => {
      if (conn.phase === 'reading') this.onData(conn, framer, chunk);
    });
    socket.on('end', () => {
      if (conn.phase !== 'reading') return;
      if (framer.bufferedBytes > 0) return this.fail(conn, 'connection closed before a complete command');
      // A bare connect-and-close (port probe, health check) is not worth a warning or a reply.
      this.log.debug({ remote }, 'multicam connection closed without a command');
      clearTimeout(conn.timer);
      conn.phase = 'closing';
      socket.end();
    });
    if (this.stopping) return this.fail(conn, 'device is shutting down');
    if (busy) return this.fail(conn, `too many connections (limit ${this.opts.maxConnections})`);
    conn.timer = setTimeout(
      () => this.fail(conn, `no complete command within ${this.opts.receiveTimeoutMs} ms`),
      this.opts.receiveTimeoutMs,
    );
  }

  private onData(conn: Connection, framer: CommandFramer, chunk: Buffer): void {
    const frame = framer.push(chunk);
    if (frame.kind === 'need-more') return;
    if (frame.kind !== 'message') return this.fail(conn, frame.message);
    const parsed = parseCommand(frame.value);
    if (!parsed.ok) return this.fail(conn, parsed.message);
    this.lastCommandMs = this.opts.clock.now();
    clearTimeout(conn.timer);
    conn.phase = 'handling';
    this.run(conn, parsed.command).catch((err: unknown) => {
      this.log.error({ remote: conn.remote, err: (err as Error).message }, 'multicam connection failed');
      conn.socket.destroy();
    });
  }

  /** Answers a bad connection with an error reply, then closes it. */
  private fail(conn: Connection, reason: string): void {
    if (conn.phase !== 'reading') return;
    clearTimeout(conn.timer);
    this.log.warn({ remote: conn.remote, reason }, 'multicam command refused');
    this.reply(conn, errorReply(deviceIdOf(this.opts.device), 'error', reason, this.opts.clock.now()));
  }

  /** The whole reply in one write, then our FIN; the peer's close (or the linger timer) finishes the socket. */
  private reply(conn: Connection, body: WireReply): void {
    conn.phase = 'closing';
    if (conn.socket.destroyed || !conn.socket.writable) {
      conn.socket.destroy();
      return;
    }
    conn.socket.end(encodeReply(body));
    this.linger(conn);
  }

  private linger(conn: Connection): void {
    conn.phase = 'closing';
    clearTimeout(conn.timer);
    conn.timer = setTimeout(() => conn.socket.destroy(), this.opts.receiveTimeoutMs);
    if (this.stopping) this.destroyWhenFlushed(conn);
  }

  /** At shutdown a replied connection need not wait for the peer: close once our bytes are with the kernel. */
  private destroyWhenFlushed(conn: Connection): void {
    const s = conn.socket;
    if (s.writableFinished) s.destroy();
    else s.once('finish', () => s.destroy());
  }

  private logCommand(conn: Connection, cmd: Command): void {
    const fields: Record<string, unknown> = { remote: conn.remote, command: cmd.command, timestamp: cmd.timestamp };
    if ('fileName' in cmd) fields.fileName = cmd.fileName;
    // Never the credentials or the presigned URL: only which form of upload was asked for.
    if ('upload' in cmd) fields.uploadForm = cmd.upload.uploadUrl ? 'url' : cmd.upload.s3Bucket ? 'iam' : 'none';
    if (POLLS.has(cmd.command)) this.log.debug(fields, 'multicam command');
    else this.log.info(fields, 'multicam command');
  }

  private async run(conn: Connection, cmd: Command): Promise<void> {
    this.logCommand(conn, cmd);
    const { device, clock } = this.opts;
    const reply = await handleCommand(cmd, { device, clock, log: this.log });
    if (reply.kind === 'file') {
      const transfer = this.stream(conn, reply.header, reply.handle);
      this.transfers.add(transfer);
      return transfer.finally(() => this.transfers.delete(transfer));
    }
    if ('message' in reply.body) {
      this.log.warn(
        { remote: conn.remote, command: cmd.command, status: reply.body.status, reason: reply.body.message },
        'multicam command answered with an error',
      );
    }
    this.reply(conn, reply.body);
  }

  /** GET_VIDEO: header, then exactly `size` bytes from disk with backpressure; the handle is always released. */
  private async stream(conn: Connection, header: Buffer, handle: RecordingHandle): Promise<void> {
    const { socket, remote } = conn;
    const started = Date.now();
    try {
      if (socket.destroyed) {
        this.log.warn({ remote, fileName: handle.fileName }, 'multicam peer left before the transfer');
        return;
      }
      let file: FileHandle;
      try {
        file = await open(handle.path, 'r');
      } catch (err) {
        this.log.warn({ remote, fileName: handle.fileName, err: (err as Error).message }, 'multicam recording unreadable');
        const id = deviceIdOf(this.opts.device);
        this.reply(conn, errorReply(id, 'file_not_found', fileNotFoundMessage(handle.fileName), this.opts.clock.now()));
        return;
      }
      conn.phase = 'streaming';
      socket.write(header);
      if (handle.size === 0) {
        await file.close();
        socket.end();
      } else {
        const sent = await pumpFile(file, 0, handle.size, writeTo(socket)).finally(() => file.close());
        if (sent < handle.size) {
          this.log.warn({ remote, fileName: handle.fileName, sent, size: handle.size }, 'multicam file shorter than announced');
          socket.destroy();
          return;
        }
        socket.end();
      }
      this.log.info({ remote, fileName: handle.fileName, bytes: handle.size, ms: Date.now() - started }, 'multicam transfer done');
      this.linger(conn);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      this.log.warn({ remote, fileName: handle.fileName, code: e.code, err: e.message }, 'multicam transfer aborted');
      socket.destroy();
    } finally {
      handle.release();
    }
  }
}
