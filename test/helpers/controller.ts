/** A MultiCam controller peer that behaves like INTEROP.md's real controller, plus raw-socket helpers for bad input. */
import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect, type Socket } from 'node:net';

/** The keys the real controller always sends besides `command` (unused ones as null). */
export interface CommandFields {
  timestamp: number;
  deviceId: string;
  fileName: string | null;
  uploadUrl: string | null;
  s3Bucket: string | null;
  s3Key: string | null;
  awsAccessKeyId: string | null;
  awsSecretAccessKey: string | null;
  awsSessionToken: string | null;
  awsRegion: string | null;
}

/** A reply as the controller classifies it. */
export type ClassifiedReply =
  | { kind: 'stop'; body: Record<string, unknown> }
  | { kind: 'error'; body: Record<string, unknown>; message: string }
  | { kind: 'status'; body: Record<string, unknown> };

/** The command bytes the controller writes: compact JSON, every key, no newline. */
export function buildCommand(command: string, extra: Partial<CommandFields> = {}): Buffer {
  const body = {
    command,
    timestamp: Date.now() / 1000,
    deviceId: 'controller',
    fileName: null,
    uploadUrl: null,
    s3Bucket: null,
    s3Key: null,
    awsAccessKeyId: null,
    awsSecretAccessKey: null,
    awsSessionToken: null,
    awsRegion: null,
    ...extra,
  };
  return Buffer.from(JSON.stringify(body), 'utf8');
}

/** INTEROP's key rules, in order: stop, then error (message mandatory, else throw), else status. */
export function classifyReply(body: unknown): ClassifiedReply {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('reply is not a JSON object');
  const b = body as Record<string, unknown>;
  if (b.status === 'recording_stopped' || ('fileName' in b && 'fileSize' in b)) return { kind: 'stop', body: b };
  if (b.status === 'file_not_found' || b.status === 'error' || 'message' in b) {
    if (typeof b.message !== 'string') throw new Error(`error reply without a message: ${JSON.stringify(b)}`);
    return { kind: 'error', body: b, message: b.message };
  }
  return { kind: 'status', body: b };
}

function connected(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** One command on its own connection: one write, ONE read (the first chunk, at most 65536 bytes), parse, close. */
export async function sendCommand(
  host: string,
  port: number,
  command: string,
  extra: Partial<CommandFields> = {},
  timeoutMs = 10_000,
): Promise<ClassifiedReply> {
  const socket = await connected(host, port);
  try {
    const first = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('data', (chunk: Buffer) => {
        clearTimeout(timer);
        resolve(chunk.subarray(0, 65536));
      });
      socket.once('close', () => fail(new Error('connection closed without a reply')));
      socket.once('error', fail);
      socket.write(buildCommand(command, extra));
    });
    return classifyReply(JSON.parse(first.toString('utf8')));
  } finally {
    socket.destroy();
  }
}

/** A GET_VIDEO that failed the way the controller fails; `received` holds what came before the failure. */
export class TransferError extends Error {
  constructor(
    message: string,
    readonly received: Buffer,
  ) {
    super(message);
    this.name = 'TransferError';
  }
}

/** What a completed GET_VIDEO delivered. */
export interface VideoResult {
  header: { deviceId: string; fileName: string; fileSize: number; status: string };
  bytes: number;
  sha256: string;
}

/** Options of getVideo: the stall timeout, and a pause after the first body chunk (to hold a transfer open). */
export interface GetVideoOptions {
  stallTimeoutMs?: number;
  pauseAfterFirstChunkMs?: number;
}

/** GET_VIDEO like the controller: 4 bytes as a big-endian length whatever they are, the header, then fileSize bytes. */
export async function getVideo(
  host: string,
  port: number,
  fileName: string,
  destPath: string | null,
  opts: GetVideoOptions = {},
): Promise<VideoResult> {
  const socket = await connected(host, port);
  const stallMs = opts.stallTimeoutMs ?? 10_000;
  const hash = createHash('sha256');
  let out: WriteStream | null = null;
  try {
    const result = await new Promise<VideoResult>((resolve, reject) => {
      let pending = Buffer.alloc(0); // bytes of the length and header parts
      let seen = Buffer.alloc(0); // the first bytes, kept for TransferError
      let headerLength = -1;
      let header: VideoResult['header'] | null = null;
      let body = 0;
      let paused = false;
      let stall: NodeJS.Timeout | undefined;
      const fail = (why: string): void => {
        clearTimeout(stall);
        reject(new TransferError(why, seen));
      };
      const arm = (): void => {
        clearTimeout(stall);
        stall = setTimeout(() => fail(`stalled for ${stallMs} ms`), stallMs);
      };
      const done = (): void => {
        clearTimeout(stall);
        resolve({ header: header!, bytes: body, sha256: hash.digest('hex') });
      };
      const onBody = (chunk: Buffer): void => {
        const part = chunk.subarray(0, header!.fileSize - body);
        body += part.length;
        hash.update(part);
        if (out && !out.write(part)) {
          socket.pause();
          out.once('drain', () => socket.resume());
        }
        if (body === header!.fileSize) return done();
        if (opts.pauseAfterFirstChunkMs && !paused) {
          paused = true;
          socket.pause();
          clearTimeout(stall);
          setTimeout(() => (socket.resume(), arm()), opts.pauseAfterFirstChunkMs);
        }
      };
      socket.on('data', (chunk: Buffer) => {
        arm();
        if (seen.length < 4096) seen = Buffer.concat([seen, chunk.subarray(0, 4096 - seen.length)]);
        if (header) return onBody(chunk);
        pending = Buffer.concat([pending, chunk]);
        if (headerLength < 0 && pending.length >= 4) headerLength = pending.readUInt32BE(0);
        if (headerLength < 0 || pending.length < 4 + headerLength) return;
        try {
          header = JSON.parse(pending.subarray(4, 4 + headerLength).toString('utf8'));
        } catch (err) {
          return fail(`bad header: ${(err as Error).message}`);
        }
        if (destPath) out = createWriteStream(destPath);
        const rest = pending.subarray(4 + headerLength);
        if (header!.fileSize === 0) return done();
        if (rest.length) onBody(rest);
      });
      socket.once('end', () => fail('connection closed prematurely'));
      socket.once('close', () => fail('connection closed prematurely'));
      socket.once('error', (err) => fail(`socket error: ${err.message}`));
      arm();
      socket.write(buildCommand('GET_VIDEO', { fileName }));
    });
    if (out) await new Promise<void>((resolve, reject) => out!.end((err?: Error | null) => (err ? reject(err) : resolve())));
    return result;
  } finally {
    socket.destroy();
    (out as WriteStream | null)?.destroy();
  }
}

/** A controller that gives up: sends GET_VIDEO, reads at least `afterBytes`, then resets the connection. */
export async function abandonGetVideo(host: string, port: number, fileName: string, afterBytes: number): Promise<number> {
  const socket = await connected(host, port);
  return new Promise((resolve, reject) => {
    let got = 0;
    socket.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got >= afterBytes) {
        socket.resetAndDestroy();
        resolve(got);
      }
    });
    socket.once('close', () => reject(new Error(`closed after ${got} bytes`)));
    socket.write(buildCommand('GET_VIDEO', { fileName }));
  });
}

/** One piece of a raw exchange: bytes to write after an optional delay. */
export interface RawPart {
  data: Buffer | string;
  delayMs?: number;
}

/** What came back on a raw exchange: every byte, and when (after the last write) the server ended, if it did. */
export interface RawResult {
  data: Buffer;
  endedAfterMs: number | null;
  error: string | null;
}

/** Writes raw bytes (or timed pieces), never half-closes, and collects everything until the server ends or timeoutMs. */
export async function rawExchange(
  host: string,
  port: number,
  input: Buffer | string | RawPart[],
  timeoutMs = 5000,
): Promise<RawResult> {
  const parts: RawPart[] = Array.isArray(input) ? input : [{ data: input }];
  const socket = await connected(host, port);
  const chunks: Buffer[] = [];
  let lastWrite = Date.now();
  let error: string | null = null;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (err) => (error ??= err.message));
  const ended = new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      resolve(Date.now() - lastWrite);
    };
    socket.once('end', finish);
    socket.once('close', finish);
  });
  for (const p of parts) {
    if (p.delayMs) await new Promise((r) => setTimeout(r, p.delayMs));
    if (socket.destroyed || socket.writableEnded) break;
    socket.write(p.data);
    lastWrite = Date.now();
  }
  const endedAfterMs = await ended;
  socket.destroy();
  return { data: Buffer.concat(chunks), endedAfterMs, error };
}
