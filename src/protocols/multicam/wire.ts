/** MultiCam wire format: command framing and command validation (replies in replies.ts). Pure: no sockets, no files. */
import { clip } from './replies.js';
import type { UploadRequest } from '../../device/types.js';

/** Strict UTF-8 decoder (stateless between calls since each decode is complete). */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export * from './replies.js';

/** What the framer has made of the bytes fed so far. */
export type FrameResult =
  | { kind: 'need-more' }
  | { kind: 'message'; value: unknown; length: number }
  | { kind: 'malformed'; message: string }
  | { kind: 'too-large'; message: string };

const OPEN = 0x7b;
const CLOSE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isSpace = (b: number): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
const describeByte = (b: number): string =>
  b >= 0x21 && b <= 0x7e ? `'${String.fromCharCode(b)}'` : `0x${b.toString(16).padStart(2, '0')}`;

/**
 * Buffers TCP chunks until the first complete top-level JSON object, found by a byte-level,
 * string- and escape-aware brace scan (UTF-8 continuation bytes never look like ASCII, so bytes
 * are safe to scan and are decoded only once the object is complete).
 */
export class CommandFramer {
  private chunks: Buffer[] = [];
  private total = 0;
  private start = -1;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private result: FrameResult = { kind: 'need-more' };

  constructor(private readonly maxMessageBytes: number) {}

  /** Bytes fed so far. */
  get bufferedBytes(): number {
    return this.total;
  }

  /** Feed one chunk. Once a final result is reached it is returned again and later bytes are ignored. */
  push(chunk: Uint8Array): FrameResult {
    if (this.result.kind !== 'need-more') return this.result;
    const base = this.total;
    this.chunks.push(Buffer.from(chunk));
    this.total += chunk.length;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.start < 0) {
        if (isSpace(b)) continue;
        if (b !== OPEN) {
          return this.finish({
            kind: 'malformed',
            message: `malformed command: expected a JSON object starting with '{', got ${describeByte(b)} at byte ${base + i}`,
          });
        }
        this.start = base + i;
        this.depth = 1;
      } else if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.inString = false;
      } else if (b === QUOTE) this.inString = true;
      else if (b === OPEN) this.depth++;
      else if (b === CLOSE && --this.depth === 0) return this.finish(this.complete(base + i + 1));
    }
    if (this.total > this.maxMessageBytes) return this.finish(this.tooLarge());
    return this.result;
  }

  private complete(end: number): FrameResult {
    if (end > this.maxMessageBytes) return this.tooLarge();
    const bytes = Buffer.concat(this.chunks, this.total).subarray(this.start, end);
    let text: string;
    try {
      text = UTF8.decode(bytes);
    } catch {
      return { kind: 'malformed', message: 'malformed command: not valid UTF-8' };
    }
    try {
      return { kind: 'message', value: JSON.parse(text), length: end };
    } catch (err) {
      return { kind: 'malformed', message: `malformed command: invalid JSON (${(err as Error).message})` };
    }
  }

  private tooLarge(): FrameResult {
    return { kind: 'too-large', message: `command too large: more than ${this.maxMessageBytes} bytes without a complete JSON object` };
  }

  private finish(result: FrameResult): FrameResult {
    this.result = result;
    this.chunks = [];
    return result;
  }
}

/** Every command name the device understands. */
export const COMMAND_NAMES = [
  'START_RECORDING',
  'STOP_RECORDING',
  'DEVICE_STATUS',
  'HEARTBEAT',
  'UPLOAD_STATUS',
  'GET_VIDEO',
  'LIST_FILES',
  'UPLOAD_TO_CLOUD',
] as const;

/** One MultiCam command name. */
export type CommandName = (typeof COMMAND_NAMES)[number];

/** Where UPLOAD_TO_CLOUD wants the file: a presigned URL, or the IAM form (bucket, key, STS credentials). */
export type UploadTarget = UploadRequest;

interface CommandBase {
  /** The sender's id (the controller sends "controller"); informational only. */
  deviceId: string | null;
  /** Epoch seconds (float), when sent. */
  timestamp: number | null;
}

/** A validated MultiCam command. */
export type Command =
  | (CommandBase & { command: 'START_RECORDING' | 'STOP_RECORDING'; timestamp: number })
  | (CommandBase & { command: 'DEVICE_STATUS' | 'HEARTBEAT' | 'UPLOAD_STATUS' | 'LIST_FILES' })
  | (CommandBase & { command: 'GET_VIDEO'; fileName: string })
  | (CommandBase & { command: 'UPLOAD_TO_CLOUD'; fileName: string; upload: UploadTarget });

/** Outcome of parseCommand: the command, or a message naming the offending field. */
export type ParseResult = { ok: true; command: Command } | { ok: false; message: string };

class FieldError extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function optString(o: Record<string, unknown>, key: string): string | null {
  const v = o[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new FieldError(`field "${key}" must be a string or null, got ${typeof v}`);
  return v;
}

function optTimestamp(o: Record<string, unknown>): number | null {
  const v = o.timestamp;
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new FieldError(`field "timestamp" must be a finite number of epoch seconds, got ${JSON.stringify(v) ?? typeof v}`);
  }
  return v;
}

/** Validates a parsed JSON value into a Command; unknown extra keys are ignored. */
export function parseCommand(value: unknown): ParseResult {
  if (!isObject(value)) return { ok: false, message: 'invalid command: expected a JSON object' };
  const name = value.command;
  if (name === undefined || name === null) return { ok: false, message: 'invalid command: missing field "command"' };
  if (typeof name !== 'string') return { ok: false, message: 'invalid command: field "command" must be a string' };
  if (!(COMMAND_NAMES as readonly string[]).includes(name)) {
    return { ok: false, message: `unknown command "${clip(name)}"` };
  }
  const command = name as CommandName;
  try {
    const timestamp = optTimestamp(value);
    const deviceId = optString(value, 'deviceId');
    const fileName = optString(value, 'fileName');
    const upload: UploadTarget = {
      uploadUrl: optString(value, 'uploadUrl'),
      s3Bucket: optString(value, 's3Bucket'),
      s3Key: optString(value, 's3Key'),
      awsAccessKeyId: optString(value, 'awsAccessKeyId'),
      awsSecretAccessKey: optString(value, 'awsSecretAccessKey'),
      awsSessionToken: optString(value, 'awsSessionToken'),
      awsRegion: optString(value, 'awsRegion'),
    };
    switch (command) {
      case 'START_RECORDING':
      case 'STOP_RECORDING':
        if (timestamp === null) throw new FieldError(`field "timestamp" is required for ${command}`);
        return { ok: true, command: { command, deviceId, timestamp } };
      case 'GET_VIDEO':
      case 'UPLOAD_TO_CLOUD': {
        if (fileName === null || fileName === '') {
          throw new FieldError(`field "fileName" must be a non-empty string for ${command}`);
        }
        return command === 'GET_VIDEO'
          ? { ok: true, command: { command, deviceId, timestamp, fileName } }
          : { ok: true, command: { command, deviceId, timestamp, fileName, upload } };
      }
      default:
        return { ok: true, command: { command, deviceId, timestamp } };
    }
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, message: `invalid ${command}: ${err.message}` };
    throw err;
  }
}
