/** MultiCam command handling: one validated command in, one reply out, through DeviceApi. No sockets, no files. */
import type { DeviceApi, RecordingHandle } from '../../device/types.js';
import type { Logger } from '../../log.js';
import type { Clock } from '../../util/clock.js';
import {
  clip,
  errorReply,
  listReply,
  stateReply,
  statusReply,
  stopReply,
  uploadQueuedReply,
  videoHeader,
  type Command,
  type WireReply,
} from './wire.js';

/** What a handler needs: the device, the clock for reply timestamps, a logger. */
export interface HandlerContext {
  device: DeviceApi;
  clock: Clock;
  log: Logger;
}

/** A JSON reply (one write, then close) or a file transfer (header, then the file; the server must release the handle). */
export type Reply = { kind: 'json'; body: WireReply } | { kind: 'file'; header: Buffer; handle: RecordingHandle };

/** The message of a file_not_found reply, as the document words it. */
export const fileNotFoundMessage = (fileName: string): string => `File ${clip(fileName, 200)} not found`;

const json = (body: WireReply): Reply => ({ kind: 'json', body });

/** The device id for replies, even when the device cannot give a snapshot. */
export function deviceIdOf(device: DeviceApi): string {
  try {
    return device.snapshot().deviceId;
  } catch {
    return 'unknown';
  }
}

async function dispatch(cmd: Command, ctx: HandlerContext): Promise<Reply> {
  const { device, clock } = ctx;
  switch (cmd.command) {
    case 'START_RECORDING': {
      const result = await device.startRecording(cmd.timestamp * 1000);
      const snap = device.snapshot();
      switch (result.kind) {
        case 'scheduled':
          return json(statusReply(snap, 'scheduled_recording_accepted', clock.now()));
        case 'started':
          return json(statusReply(snap, 'recording', clock.now()));
        case 'not_synchronized':
          return json(errorReply(snap.deviceId, 'time_not_synchronized', result.message, clock.now()));
        case 'error':
          return json(errorReply(snap.deviceId, 'error', result.message, clock.now()));
      }
      break;
    }
    case 'STOP_RECORDING': {
      const result = await device.stopRecording(cmd.timestamp * 1000);
      const id = deviceIdOf(device);
      return json(
        result.kind === 'stopped'
          ? stopReply(id, result.fileName, result.fileSize, clock.now())
          : errorReply(id, 'error', result.message, clock.now()),
      );
    }
    case 'HEARTBEAT':
    case 'DEVICE_STATUS':
    case 'UPLOAD_STATUS':
      return json(stateReply(device.snapshot(), clock.now()));
    case 'LIST_FILES':
      return json(listReply(device.snapshot(), device.listRecordings(), clock.now()));
    case 'GET_VIDEO': {
      const handle = await device.openRecording(cmd.fileName);
      const id = deviceIdOf(device);
      if (handle === null) return json(errorReply(id, 'file_not_found', fileNotFoundMessage(cmd.fileName), clock.now()));
      return { kind: 'file', header: videoHeader(id, handle.fileName, handle.size), handle };
    }
    case 'UPLOAD_TO_CLOUD': {
      const result = await device.queueUpload(cmd.fileName, cmd.upload);
      // The item is already in uploadQueue: the controller takes a file missing from both queues as uploaded.
      switch (result.kind) {
        case 'queued':
          return json(uploadQueuedReply(device.snapshot(), clock.now()));
        case 'not_found':
          return json(errorReply(deviceIdOf(device), 'file_not_found', fileNotFoundMessage(cmd.fileName), clock.now()));
        case 'error':
          return json(errorReply(deviceIdOf(device), 'error', result.message, clock.now()));
      }
      break;
    }
  }
  // Unreachable for a validated Command; kept so a new command name cannot fall through silently.
  return json(errorReply(deviceIdOf(device), 'error', `command ${(cmd as Command).command} has no handler`, clock.now()));
}

/** Runs one command against the device; a device failure becomes an error reply, never a rejection. */
export async function handleCommand(cmd: Command, ctx: HandlerContext): Promise<Reply> {
  try {
    return await dispatch(cmd, ctx);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    ctx.log.warn({ command: cmd.command, err: reason }, 'multicam command failed in the device');
    return json(errorReply(deviceIdOf(ctx.device), 'error', `${cmd.command} failed: ${reason}`, ctx.clock.now()));
  }
}
