/** What the VAR node needs from the device, the pairing store and the connection it runs on. */
import type { Logger } from '../../log.js';

/** A refusal with a wire code. */
export interface VarFailure {
  ok: false;
  code: string;
  message: string;
}

/** A start_record as the device sees it. */
export interface StartRequest {
  sessionId: string | null;
  profile: { width: number | null; height: number | null; fps: number | null; bitrateBps: number | null } | null;
  meta: Record<string, unknown>;
}

/** What the node asks of the device (implemented in device/, over the segment store and catalogs). */
export interface VarDeviceApi {
  capabilities(): { maxResolution: string; maxFps: number; segmentRecording: boolean };
  status(): { battery: number | null; temperature: number | null; freeSpaceMB: number | null; isRecording: boolean; signalStrength: number | null; sessionId: string | null; warnings?: string[] };
  startSession(req: StartRequest): Promise<{ ok: true; sessionId: string | null; startedAtMs: number } | VarFailure>;
  /** `repeated`: the session had already stopped (a repeated stop_record); the answer is sent again. */
  stopSession(sessionId: string | null): Promise<{ ok: true; sessionId: string | null; stoppedAtMs: number | null; fileName: string | null; repeated: boolean } | VarFailure>;
  mark(m: { markId: string; coordinatorTs: number | null; note: string | null; deviceTs: number; sessionId: string | null }): Promise<void>;
  requestClip(r: { markId: string; fromMs: number; toMs: number; quality: 'original' | 'preview'; clipId: string | null; sessionId: string | null }): Promise<
    { ok: true; clipId: string; durationMs: number; sizeBytes: number } | VarFailure
  >;
}

/** Pairing persistence as the node needs it. */
export interface PairingApi {
  key(): string | null;
  token(): string | null;
  paired(key: string, assignedName: string | null, token: string | null): Promise<void>;
  forgetKey(why: string): Promise<void>;
  rejected(token: string | null, reason: string): Promise<void>;
}

/** Where the node is in its life with the coordinator. */
export type LinkState = 'disconnected' | 'connecting' | 'pairing' | 'authenticating' | 'ready' | 'needs_pairing';

/** What the node needs from the connection it runs on. */
export interface Connection {
  /** false when the frame could not be handed to the socket (it is closing). */
  send(text: string): boolean;
  /** Close; `retry` false = do not reconnect until the pairing target changes. */
  close(reason: string, retry: boolean): void;
  /** The unit's address on this connection (for clip URLs). */
  localAddress: string;
}

/** Node options. */
export interface VarNodeOptions {
  deviceId: string;
  deviceName: string;
  appVersion: string;
  maxMessageBytes: number;
  httpPort: () => number;
  advertisedHost: string | null;
  device: VarDeviceApi;
  pairing: PairingApi;
  now: () => number;
  log: Logger;
}
