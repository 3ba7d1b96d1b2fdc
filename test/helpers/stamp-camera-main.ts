/**
 * Child-process entry of the stamp camera (started by `startStampCamera`, never imported).
 *
 * argv[2] is a JSON `{ fifoPath, width, height, fps, maxLagMs }`. The child makes the FIFO if missing, waits
 * (polling a non-blocking open) for a reader, then writes gray frames on an absolute schedule:
 * slot n is due at t0 + n * 1000 / fps. Each frame carries, as a block timecode, the slot number
 * and the wall-clock time read immediately before its write. At most one write is in flight; a
 * slot that comes due meanwhile is written as soon as that write completes (late, with its real
 * time), and when the camera falls more than `maxLagMs` behind it skips to the newest due slot
 * instead of bursting (skipped slots show up as gaps in the frame index). When the reader goes
 * away (EPIPE) it closes, polls for the next reader and carries on with the same schedule.
 *
 * Talks to the parent in JSON lines on stdout: `ready` (FIFO exists), `connected`,
 * `disconnected`, and `stats` just before exiting. Exits on SIGINT/SIGTERM or when stdin closes
 * (the parent died).
 */
import { execFile } from 'node:child_process';
import { closeSync, constants, open, stat } from 'node:fs';
import { Socket } from 'node:net';
import { promisify } from 'node:util';
import { paintTimecode } from './timecode.js';
import type { StampCameraEvent, StampCameraStats } from './stamp-camera.js';

const POLL_READER_MS = 5;
const HIST_MIN_MS = -100;
const HIST_BIN_MS = 0.01;
const HIST_BINS = 100_000; // -100 ms .. 900 ms; values outside land in the end bins

interface CameraOptions {
  fifoPath: string;
  width: number;
  height: number;
  fps: number;
  maxLagMs: number;
}

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A histogram of milliseconds in 10 µs bins: median and p99 without keeping every sample. */
class Histogram {
  private readonly bins = new Uint32Array(HIST_BINS);
  count = 0;
  max = -Infinity;
  private sum = 0;

  add(ms: number): void {
    const bin = Math.min(HIST_BINS - 1, Math.max(0, Math.round((ms - HIST_MIN_MS) / HIST_BIN_MS)));
    this.bins[bin]++;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let bin = 0; bin < HIST_BINS; bin++) {
      seen += this.bins[bin];
      if (seen >= rank) return HIST_MIN_MS + bin * HIST_BIN_MS;
    }
    return this.max;
  }

  summary(): { count: number; mean: number; median: number; p99: number; max: number } {
    const mean = this.count ? this.sum / this.count : NaN;
    return { count: this.count, mean, median: this.quantile(0.5), p99: this.quantile(0.99), max: this.max };
  }
}

class Camera {
  private readonly frame: Buffer;
  private readonly periodMs: number;
  private t0 = NaN;
  private slot = 0;
  private socket: Socket | undefined;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private lastStamp = NaN;
  private lastSlot = -2;
  private readonly spacing = new Histogram();
  private readonly lateness = new Histogram();
  private framesWritten = 0;
  private slotsSkipped = 0;
  private connections = 0;
  private readonly startedAt = now();
  private readonly cpuAtStart = process.cpuUsage();

  constructor(private readonly opts: CameraOptions) {
    this.periodMs = 1000 / opts.fps;
    this.frame = Buffer.alloc(opts.width * opts.height);
    // A static background (diagonal gradient); only the code cells are repainted per frame.
    for (let y = 0; y < opts.height; y++) {
      for (let x = 0; x < opts.width; x++) this.frame[y * opts.width + x] = 64 + ((x + y) % 128);
    }
  }

  async start(): Promise<void> {
    await ensureFifo(this.opts.fifoPath);
    emit({ event: 'ready', fifoPath: this.opts.fifoPath });
    this.reconnect();
  }

  stop(): void {
    this.stopping = true;
    clearTimeout(this.timer);
    this.socket?.destroy();
    emit({ event: 'stats', stats: this.stats() });
  }

  private reconnect(): void {
    this.connect().catch(fail);
  }

  private async connect(): Promise<void> {
    while (!this.stopping) {
      try {
        const fd = await promisify(open)(this.opts.fifoPath, constants.O_WRONLY | constants.O_NONBLOCK);
        if (this.stopping) return closeSync(fd);
        this.attach(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err; // ENXIO: no reader yet
        await sleep(POLL_READER_MS);
      }
    }
  }

  private attach(fd: number): void {
    const socket = new Socket({ fd, readable: false, writable: true });
    socket.on('error', (err) => this.detach(socket, err));
    this.socket = socket;
    this.connections++;
    const t = now();
    if (Number.isNaN(this.t0)) this.t0 = t;
    this.slot = Math.max(this.slot, Math.ceil((t - this.t0) / this.periodMs));
    emit({ event: 'connected', connection: this.connections, firstSlot: this.slot });
    this.schedule();
  }

  private detach(socket: Socket, err: Error): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    this.writing = false;
    clearTimeout(this.timer);
    socket.destroy();
    this.lastSlot = -2;
    emit({ event: 'disconnected', reason: (err as NodeJS.ErrnoException).code ?? err.message });
    if (!this.stopping) this.reconnect();
  }

  private schedule(): void {
    if (this.stopping || !this.socket || this.writing) return;
    const delay = this.t0 + this.slot * this.periodMs - now();
    if (delay > 0) this.timer = setTimeout(() => this.tick(), delay);
    else this.tick();
  }

  private tick(): void {
    const socket = this.socket;
    if (this.stopping || !socket || this.writing) return;
    const stamp = now();
    const newest = Math.floor((stamp - this.t0) / this.periodMs);
    if (stamp - (this.t0 + this.slot * this.periodMs) > this.opts.maxLagMs && newest > this.slot) {
      this.slotsSkipped += newest - this.slot;
      this.slot = newest;
    }
    const slot = this.slot;
    paintTimecode(this.frame, this.opts.width, this.opts.height, stamp, slot);
    this.writing = true;
    socket.write(this.frame, (err) => {
      if (socket !== this.socket) return;
      this.writing = false;
      if (!err) this.schedule();
    });
    this.lateness.add(stamp - (this.t0 + slot * this.periodMs));
    if (this.lastSlot === slot - 1) this.spacing.add(stamp - this.lastStamp);
    this.lastSlot = slot;
    this.lastStamp = stamp;
    this.framesWritten++;
    this.slot++;
  }

  private stats(): StampCameraStats {
    const elapsedMs = now() - this.startedAt;
    const cpu = process.cpuUsage(this.cpuAtStart);
    return {
      framesWritten: this.framesWritten,
      slotsSkipped: this.slotsSkipped,
      connections: this.connections,
      spacingMs: this.spacing.summary(),
      latenessMs: this.lateness.summary(),
      elapsedMs,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  }
}

async function ensureFifo(path: string): Promise<void> {
  try {
    const st = await promisify(stat)(path);
    if (!st.isFIFO()) throw new Error(`${path} exists and is not a FIFO`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await promisify(execFile)('mkfifo', ['-m', '600', path]);
  }
}

function fail(err: unknown): never {
  process.stderr.write(`stamp camera failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
}

function emit(event: StampCameraEvent): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function parseOptions(raw: string | undefined): CameraOptions {
  const o = JSON.parse(raw ?? '{}') as Partial<CameraOptions>;
  if (typeof o.fifoPath !== 'string' || !o.fifoPath) throw new Error('fifoPath is required');
  for (const key of ['width', 'height', 'fps'] as const) {
    if (typeof o[key] !== 'number' || !(o[key] > 0)) throw new Error(`${key} must be a positive number`);
  }
  return { fifoPath: o.fifoPath, width: o.width!, height: o.height!, fps: o.fps!, maxLagMs: o.maxLagMs ?? 500 };
}

function main(): void {
  const camera = new Camera(parseOptions(process.argv[2]));
  const shutdown = (): void => {
    camera.stop();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  process.stdin.on('end', shutdown).on('error', shutdown).resume();
  camera.start().catch(fail);
}

main();
