/**
 * A fake camera for frame-accuracy tests: a separate Node process that writes gray frames at a
 * fixed rate into a FIFO, each painted with its own capture time (see timecode.ts). Feed it to
 * ffmpeg with `-f rawvideo -pix_fmt gray -video_size WxH -framerate FPS -i <fifo>`.
 *
 * It runs as a child so the test's event loop cannot disturb its timing. The child lives in its
 * own process group, is stopped with SIGINT then SIGKILL after a grace period, and exits by
 * itself when this process dies (its stdin closes). The child is unref'd: a forgotten camera
 * does not keep a test process alive.
 *
 * After a reader leaves, the camera notices on its next write (within one frame period); a new
 * reader that opens the FIFO inside that window may read the tail of the last frame, so restart
 * readers after at least one frame period.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./stamp-camera-main.js', import.meta.url));

/** Options of `startStampCamera`. */
export interface StampCameraOptions {
  /** FIFO to write into; created (mkfifo) when missing. */
  fifoPath: string;
  width: number;
  height: number;
  /** Frames per second of the absolute schedule. */
  fps: number;
  /** Node binary for the child; defaults to this process's. */
  nodePath?: string;
  /** How far behind schedule the camera may fall before it skips slots instead of catching up (ms, default 500). */
  maxLagMs?: number;
  /** Called with each event the child reports (connected, disconnected, ...). */
  onEvent?: (event: StampCameraEvent) => void;
  /** How long to wait for the child to create the FIFO (ms, default 10 000). */
  startTimeoutMs?: number;
}

/** Median, p99 and friends of a series of milliseconds. */
export interface MsSummary {
  count: number;
  mean: number;
  median: number;
  p99: number;
  max: number;
}

/** What the child measured about itself, reported when it stops. */
export interface StampCameraStats {
  framesWritten: number;
  /** Slots given up because the camera was more than maxLagMs behind (index gaps). */
  slotsSkipped: number;
  /** How many times a reader opened the FIFO. */
  connections: number;
  /** Time between the stamps of consecutive slots written to the same reader. */
  spacingMs: MsSummary;
  /** Stamp minus due time of each frame. */
  latenessMs: MsSummary;
  elapsedMs: number;
  /** User + system CPU over the child's lifetime, percent of one core. */
  cpuPercent: number;
  maxRssBytes: number;
}

/** One JSON line from the child. */
export type StampCameraEvent =
  | { event: 'ready'; fifoPath: string }
  | { event: 'connected'; connection: number; firstSlot: number }
  | { event: 'disconnected'; reason: string }
  | { event: 'stats'; stats: StampCameraStats };

/** A running stamp camera. */
export interface StampCamera {
  /** Process id of the child (also its process group id). */
  pid: number;
  /** Stop the child (SIGINT, then SIGKILL after 2 s) and wait until it has exited. */
  stop(): Promise<void>;
  /** The child's own measurements, available once it has stopped. */
  stats(): StampCameraStats | undefined;
}

/** Start the stamp camera child; resolves once the FIFO exists, so a reader may open it. */
export function startStampCamera(opts: StampCameraOptions): Promise<StampCamera> {
  const config = JSON.stringify({
    fifoPath: opts.fifoPath,
    width: opts.width,
    height: opts.height,
    fps: opts.fps,
    maxLagMs: opts.maxLagMs ?? 500,
  });
  const child = spawn(opts.nodePath ?? process.execPath, [MAIN, config], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?(): void }).unref?.();
  child.stdin.on('error', () => {}); // EPIPE once the child is gone

  let stats: StampCameraStats | undefined;
  let stderrTail = '';
  let stdoutRest = '';
  let onReady: (() => void) | undefined;
  const exited = new Promise<string>((resolve) => {
    child.on('exit', (code, signal) => resolve(`exit code ${code}, signal ${signal}`));
    child.on('error', (err) => resolve(`spawn error: ${err.message}`));
  });

  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (stdoutRest + chunk).split('\n');
    stdoutRest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      let event: StampCameraEvent;
      try {
        event = JSON.parse(line) as StampCameraEvent;
      } catch {
        continue; // not one of ours; ignore
      }
      if (event.event === 'stats') stats = event.stats;
      if (event.event === 'ready') onReady?.();
      opts.onEvent?.(event);
    }
  });

  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };

  const camera: StampCamera = {
    pid: child.pid ?? -1,
    stats: () => stats,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      signalGroup('SIGINT');
      const grace = setTimeout(() => signalGroup('SIGKILL'), 2000);
      await exited;
      clearTimeout(grace);
    },
  };

  return new Promise<StampCamera>((resolve, reject) => {
    const timeout = setTimeout(() => {
      signalGroup('SIGKILL');
      reject(new Error(`stamp camera did not become ready within ${opts.startTimeoutMs ?? 10_000} ms: ${stderrTail}`));
    }, opts.startTimeoutMs ?? 10_000);
    onReady = () => {
      clearTimeout(timeout);
      resolve(camera);
    };
    void exited.then((how) => {
      clearTimeout(timeout);
      reject(new Error(`stamp camera exited before it was ready (${how}): ${stderrTail}`));
    });
  });
}
