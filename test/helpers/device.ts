/** Start a whole arenacam unit for tests: in-process (startApp) or as a real `arenacam serve` process. */
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { validate } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { startApp, type App, type AppSeams } from '../../src/app.js';
import { startStampCamera, type StampCamera } from './stamp-camera.js';

/** Deep partial of the config, for overrides. */
export type ConfigPatch = { [K in keyof Config]?: Config[K] extends object ? Partial<Config[K]> : Config[K] };

/** Loopback-only defaults for a test unit: ports 0, no mDNS, small fast video. */
export function testConfig(dataDir: string, patch: ConfigPatch = {}): Config {
  const base = {
    dataDir,
    log: { level: 'debug' },
    multicam: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    mdns: { enabled: false },
    camera: { width: 320, height: 240, fps: 30 },
    encoder: { codec: 'libx264', bitrateKbps: 800, preset: 'ultrafast' },
    clock: { source: 'system' },
    storage: { minFreeMB: 1 },
    // Test units never take the pins of a Pi running the suite; GPIO tests enable it with a fake backend.
    gpio: { enabled: false },
  } as Record<string, Record<string, unknown> | string>;
  for (const [k, v] of Object.entries(patch)) {
    base[k] = typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...(base[k] as object), ...v } : (v as string);
  }
  return validate(base);
}

/** A collected log, searchable by message. */
export class LogSink extends Writable {
  readonly lines: Array<Record<string, unknown>> = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) this.lines.push(JSON.parse(l));
    cb();
  }
  /** Lines whose msg contains `text`. */
  find(text: string): Array<Record<string, unknown>> {
    return this.lines.filter((l) => String(l.msg).includes(text));
  }
}

/** A unit running in this process. */
export interface TestUnit {
  app: App;
  dataDir: string;
  logs: LogSink;
  camera: StampCamera | null;
  stop(): Promise<void>;
}

/** Make a temp folder removed by `cleanup`. */
export async function tempDir(prefix = 'arenacam-test-'): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** ffmpeg input arguments for a stamp camera FIFO. */
export function stampInput(fifo: string, w: number, h: number, fps: number): string[] {
  return ['-f', 'rawvideo', '-pix_fmt', 'gray', '-video_size', `${w}x${h}`, '-framerate', String(fps), '-i', fifo];
}

/** Start a unit in-process; with `stamp: true` its camera is the time-stamping fake camera. */
export async function startUnit(opts: { dataDir: string; patch?: ConfigPatch; stamp?: boolean; seams?: AppSeams }): Promise<TestUnit> {
  let camera: StampCamera | null = null;
  let patch = opts.patch ?? {};
  if (opts.stamp) {
    const cam = { width: 320, height: 240, fps: 30, ...(patch.camera ?? {}) };
    const fifo = join(opts.dataDir, 'camera.fifo');
    camera = await startStampCamera({ fifoPath: fifo, width: cam.width, height: cam.height, fps: cam.fps });
    patch = { ...patch, camera: { ...cam, source: 'ffmpeg', input: stampInput(fifo, cam.width, cam.height, cam.fps) } };
  }
  const config = testConfig(opts.dataDir, patch);
  const logs = new LogSink();
  try {
    const app = await startApp(config, createLogger(config.log.level, logs), opts.seams);
    return {
      app,
      dataDir: opts.dataDir,
      logs,
      camera,
      stop: async () => {
        await app.stop();
        await camera?.stop();
      },
    };
  } catch (err) {
    await camera?.stop();
    throw err;
  }
}

/** Wait until `fn` returns a truthy value (polling), or throw after `timeoutMs`. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string, everyMs = 100): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** A unit running as a separate `arenacam serve` process (for kill -9 tests). */
export interface UnitProcess {
  proc: ChildProcess;
  multicamPort: number;
  log(): string;
  exited: Promise<number | null>;
}

/** Spawn `arenacam serve --config <json>`; resolves when it logs "arenacam ready" with its ports. */
export async function spawnUnit(dataDir: string, config: Config, name = 'unit'): Promise<UnitProcess> {
  const file = join(dataDir, `${name}.config.json`);
  await writeFile(file, JSON.stringify(config));
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  proc.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const port = await waitFor(
    () => {
      const m = /"multicamPort":(\d+).*"arenacam ready"/.exec(out);
      if (proc.exitCode !== null) throw new Error(`unit exited early: ${out.slice(-2000)}`);
      return m ? Number(m[1]) : 0;
    },
    30000,
    'the unit to be ready',
  );
  return { proc, multicamPort: port, log: () => out, exited };
}

/** Read a JSON file. */
export async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

/** Mount a small tmpfs on `dir` (a disk that can really fill up); false where mounting is not allowed. */
export function canMountTmpfs(dir: string, sizeMB = 48): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMB}m`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
