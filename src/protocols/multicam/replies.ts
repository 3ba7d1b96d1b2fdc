/** MultiCam reply shapes, exactly as INTEROP.md's controller classifies them. Pure: no sockets, no files. */
import type { DeviceSnapshot, RecordingInfo, UploadItem } from '../../device/types.js';

/** Shortens a string for messages and logs. */
export const clip = (s: string, n = 80): string => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Status values a status reply may carry (never 'error': that needs a message, see ErrorReply). */
export type ReplyStatus = 'ready' | 'recording' | 'stopping' | 'scheduled_recording_accepted' | 'upload_queued';

/** The status reply: exactly these keys, never `message`, never `fileName` with `fileSize`. */
export interface StatusReply {
  deviceId: string;
  status: ReplyStatus;
  timestamp: number;
  batteryLevel: number | null;
  deviceType: string;
  uploadQueue: UploadItem[];
  failedUploadQueue: UploadItem[];
}

/** Statuses that make the controller treat a reply as an error (and so demand `message`). */
export type ErrorStatus = 'error' | 'file_not_found' | 'time_not_synchronized';

/** The error reply; `message` is mandatory for the controller. */
export interface ErrorReply {
  deviceId: string;
  status: ErrorStatus;
  timestamp: number;
  message: string;
}

/** The STOP_RECORDING reply, sent once the file is complete. */
export interface StopReply {
  deviceId: string;
  status: 'recording_stopped';
  timestamp: number;
  fileName: string;
  fileSize: number;
}

/** The LIST_FILES reply: the state reply plus the catalog. */
export type ListReply = (StatusReply | ErrorReply) & { files: RecordingInfo[] };

/** Any JSON reply body. */
export type WireReply = StatusReply | ErrorReply | StopReply | ListReply;

const seconds = (nowMs: number): number => nowMs / 1000;

/** Presigned URLs are long and carry the signature: report only origin and path (keeps replies in one segment). */
function shortUrl(url: string | null): string | null {
  if (url === null) return null;
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return clip(url, 120);
  }
}

const wireItem = (i: UploadItem): UploadItem => ({
  fileName: i.fileName,
  fileSize: i.fileSize,
  bytesUploaded: i.bytesUploaded,
  uploadProgress: i.uploadProgress,
  uploadSpeed: i.uploadSpeed,
  status: i.status,
  uploadUrl: shortUrl(i.uploadUrl),
  // S3's code and the start of its message are enough on the wire (the log has the whole text).
  error: i.error === null ? null : clip(i.error, 100),
});

/**
 * A reply larger than one TCP segment can reach the controller's single read in two pieces
 * (INTEROP); past this size the queue items' uploadUrl (the only optional bulk) is left out.
 */
export const ONE_SEGMENT_BYTES = 1400;

/** A status reply with the given status, from a snapshot. */
export function statusReply(s: DeviceSnapshot, status: ReplyStatus, nowMs: number): StatusReply {
  const reply: StatusReply = {
    deviceId: s.deviceId,
    status,
    timestamp: seconds(nowMs),
    batteryLevel: s.batteryLevel,
    deviceType: s.deviceType,
    uploadQueue: s.uploadQueue.map(wireItem),
    failedUploadQueue: s.failedUploadQueue.map(wireItem),
  };
  if (reply.uploadQueue.length + reply.failedUploadQueue.length > 0 && Buffer.byteLength(JSON.stringify(reply)) > ONE_SEGMENT_BYTES) {
    for (const i of [...reply.uploadQueue, ...reply.failedUploadQueue]) i.uploadUrl = null;
  }
  return reply;
}

/** An error reply; an empty message is replaced, since the controller requires one. */
export function errorReply(deviceId: string, status: ErrorStatus, message: string, nowMs: number): ErrorReply {
  return { deviceId, status, timestamp: seconds(nowMs), message: message || 'unknown error' };
}

/** The reply to STOP_RECORDING. */
export function stopReply(deviceId: string, fileName: string, fileSize: number, nowMs: number): StopReply {
  return { deviceId, status: 'recording_stopped', timestamp: seconds(nowMs), fileName, fileSize };
}

/** The device's state as a reply: status reply (ready/scheduled/recording/stopping) or, in state 'error', an error reply. */
export function stateReply(s: DeviceSnapshot, nowMs: number): StatusReply | ErrorReply {
  switch (s.state) {
    case 'error':
      return errorReply(s.deviceId, 'error', s.errorMessage ?? 'device error', nowMs);
    case 'ready':
      return statusReply(s, s.scheduledStartMs !== null ? 'scheduled_recording_accepted' : 'ready', nowMs);
    default:
      return statusReply(s, s.state, nowMs);
  }
}

/**
 * The UPLOAD_TO_CLOUD acceptance. The document adds `fileName` and `fileSize`, but INTEROP's first
 * classification rule takes any reply with both as a stop reply, so the controller would misread
 * it; the exact status key set is sent instead, and the file is identified by its entry, already
 * present, in `uploadQueue`.
 */
export function uploadQueuedReply(s: DeviceSnapshot, nowMs: number): StatusReply {
  return statusReply(s, 'upload_queued', nowMs);
}

/** The LIST_FILES reply: the state reply plus `files`, each with exactly the four documented keys. */
export function listReply(s: DeviceSnapshot, files: RecordingInfo[], nowMs: number): ListReply {
  return {
    ...stateReply(s, nowMs),
    files: files.map((f) => ({
      fileName: f.fileName,
      fileSize: f.fileSize,
      creationDate: f.creationDate,
      modificationDate: f.modificationDate,
    })),
  };
}

/** The GET_VIDEO preamble: 4-byte big-endian length, then the JSON header `{deviceId, fileName, fileSize, status}`. */
export function videoHeader(deviceId: string, fileName: string, fileSize: number): Buffer {
  const json = Buffer.from(JSON.stringify({ deviceId, fileName, fileSize, status: 'ready' }), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length, 0);
  return Buffer.concat([length, json]);
}

/** A JSON reply as the bytes of its single write (compact, no newline). */
export function encodeReply(body: WireReply): Buffer {
  return Buffer.from(JSON.stringify(body), 'utf8');
}
