/** The device domain as the protocols see it: state, recordings, commands. No sockets here. */

/** The MultiCam-visible state of the device. */
export type DeviceState = 'ready' | 'recording' | 'stopping' | 'error';

/** One upload queue entry as reported on the wire; `uploadUrl` never carries a signature or credentials. */
export interface UploadItem {
  fileName: string;
  fileSize: number;
  bytesUploaded: number;
  uploadProgress: number;
  uploadSpeed: number;
  status: 'queued' | 'uploading' | 'retrying' | 'completed' | 'failed';
  uploadUrl: string | null;
  error: string | null;
}

/**
 * Where UPLOAD_TO_CLOUD wants a file, as the controller sends it: a presigned PUT URL, or the IAM
 * form (bucket, key and temporary STS credentials). Unused fields are null.
 */
export interface UploadRequest {
  uploadUrl: string | null;
  s3Bucket: string | null;
  s3Key: string | null;
  awsAccessKeyId: string | null;
  awsSecretAccessKey: string | null;
  awsSessionToken: string | null;
  awsRegion: string | null;
}

/** Result of an upload request: queued (the item is in uploadQueue already), no such recording, or refused with a reason. */
export type QueueUploadResult = { kind: 'queued' } | { kind: 'not_found' } | { kind: 'error'; message: string };

/** A point-in-time view of the device for status replies. */
export interface DeviceSnapshot {
  deviceId: string;
  deviceType: string;
  state: DeviceState;
  /** Set when state is 'error': what went wrong, in words. */
  errorMessage: string | null;
  /** Percent, or null on mains power. */
  batteryLevel: number | null;
  uploadQueue: UploadItem[];
  failedUploadQueue: UploadItem[];
  /** A start is scheduled at this epoch ms (not yet reached). */
  scheduledStartMs: number | null;
}

/** A finished recording in the catalog. */
export interface RecordingInfo {
  fileName: string;
  fileSize: number;
  /** Epoch seconds of the first frame. */
  creationDate: number;
  /** Epoch seconds of the file's completion. */
  modificationDate: number;
}

/** Result of a START request. */
export type StartResult =
  | { kind: 'scheduled'; atMs: number }
  | { kind: 'started'; atMs: number }
  | { kind: 'not_synchronized'; message: string }
  | { kind: 'error'; message: string };

/** Result of a STOP request (resolved only when the file is complete). */
export type StopResult =
  | { kind: 'stopped'; fileName: string; fileSize: number; firstFrameMs?: number; lastFrameMs?: number }
  | { kind: 'error'; message: string };

/** An open handle to a recording for streaming; release() when done (keeps it from deletion meanwhile). */
export interface RecordingHandle {
  path: string;
  fileName: string;
  size: number;
  release(): void;
}

/** What the MultiCam (and later VAR) protocol handlers need from the device. */
export interface DeviceApi {
  snapshot(): DeviceSnapshot;
  /** atMs: requested start (epoch ms). Future → scheduled; now or past → start now. */
  startRecording(atMs: number): Promise<StartResult>;
  /** atMs: requested stop (epoch ms). Future → scheduled stop. Resolves when the file is complete. */
  stopRecording(atMs: number): Promise<StopResult>;
  listRecordings(): RecordingInfo[];
  /** A recording by exact catalog name, or null (no path tricks can reach anything else). */
  openRecording(fileName: string): Promise<RecordingHandle | null>;
  /** Queue a recording for upload; resolves once the item is in the (persisted) queue, or with the reason it was refused. */
  queueUpload(fileName: string, request: UploadRequest): Promise<QueueUploadResult>;
}
