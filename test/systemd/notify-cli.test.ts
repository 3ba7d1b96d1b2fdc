/**
 * The real `arenacam serve` process against a real notify socket: READY=1 only once both ports
 * answer, WATCHDOG=1 while capture runs, none once capture has been down for captureGraceMs,
 * pings again when it is back, STOPPING=1 on SIGTERM.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendMultiCam } from '../../src/protocols/multicam/client.js';
import { findExecutable } from '../helpers/chronyd.js';
import { stampInput, tempDir, testConfig, waitFor, type ConfigPatch } from '../helpers/device.js';
import { startStampCamera, type StampCamera } from '../helpers/stamp-camera.js';
import { notifyReceiverSkipReason, startNotifyReceiver, type NotifyMessage, type NotifyReceiver } from './notify-receiver.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const skip = notifyReceiverSkipReason() ?? (findExecutable('ffmpeg') === null ? 'ffmpeg is not installed' : false);
const W = 320;
const H = 240;
const FPS = 15;

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface Serve {
  proc: ChildProcess;
  out(): string;
  exited: Promise<number | null>;
}

async function serve(dir: string, patch: ConfigPatch, rx: NotifyReceiver): Promise<Serve> {
  const file = join(dir, 'arenacam.json');
  await writeFile(file, JSON.stringify(testConfig(join(dir, 'data'), patch)));
  const env: NodeJS.ProcessEnv = { ...process.env, NOTIFY_SOCKET: rx.socket, WATCHDOG_USEC: '2000000' };
  delete env.WATCHDOG_PID;
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  proc.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, out: () => out, exited };
}

const has = (m: NotifyMessage, field: string) => m.fields.includes(field);
const count = (ms: NotifyMessage[], field: string) => ms.filter((m) => has(m, field)).length;

describe('arenacam serve under a notify socket', { skip }, () => {
  let tmp: { dir: string; cleanup(): Promise<void> };
  let rx: NotifyReceiver;
  let camera: StampCamera | null = null;
  let unit: Serve | null = null;
  before(async () => {
    tmp = await tempDir('arenacam-notify-cli-');
    rx = await startNotifyReceiver(tmp.dir);
  });
  after(async () => {
    if (unit && unit.proc.exitCode === null) {
      unit.proc.kill('SIGKILL');
      await unit.exited;
    }
    await camera?.stop();
    await rx?.stop();
    await tmp?.cleanup();
  });

  it('sends READY=1 once both ports answer, gates WATCHDOG=1 on capture, and STOPPING=1 on SIGTERM', async (t) => {
    const fifo = join(tmp.dir, 'camera.fifo');
    const startCamera = () => startStampCamera({ fifoPath: fifo, width: W, height: H, fps: FPS });
    camera = await startCamera();
    const multicamPort = await freePort();
    const httpPort = await freePort();
    // At the instant READY=1 arrives, both listeners must already answer.
    let probe: Promise<[Record<string, unknown>, number]> | null = null;
    rx.onMessage((m) => {
      if (probe === null && has(m, 'READY=1')) {
        probe = Promise.all([
          sendMultiCam('127.0.0.1', multicamPort, { command: 'DEVICE_STATUS', timestamp: Date.now() / 1000 }, 5000),
          fetch(`http://127.0.0.1:${httpPort}/health`).then((r) => r.status),
        ]);
      }
    });
    unit = await serve(
      tmp.dir,
      {
        camera: { source: 'ffmpeg', width: W, height: H, fps: FPS, input: stampInput(fifo, W, H, FPS) },
        multicam: { host: '127.0.0.1', port: multicamPort },
        http: { host: '127.0.0.1', port: httpPort },
        systemd: { captureGraceMs: 1000 },
        capture: { restartMinMs: 200, restartMaxMs: 1000 },
        log: { level: 'info' },
      },
      rx,
    );
    const u = unit;
    const ready = await rx.waitFor('READY=1', 30000).catch((e) => assert.fail(`${(e as Error).message}\n${u.out().slice(-3000)}`));
    assert.ok(ready.fields.some((f) => f.startsWith(`STATUS=MultiCam :${multicamPort}, HTTP :${httpPort}; capture `)), JSON.stringify(ready.fields));
    assert.ok(probe, 'READY=1 seen');
    const [status, health] = await (probe as unknown as Promise<[Record<string, unknown>, number]>);
    assert.ok(typeof status.status === 'string', JSON.stringify(status));
    assert.ok(health === 200 || health === 503, `GET /health answered ${health}`);
    assert.equal(rx.messages.findIndex((m) => has(m, 'READY=1')), 0, 'READY=1 is the first message');

    // Pings while capture runs (every second: WATCHDOG_USEC is 2 s).
    await waitFor(async () => {
      const r = await fetch(`http://127.0.0.1:${httpPort}/health`);
      return ((await r.json()) as { capture: { alive: boolean } }).capture.alive;
    }, 20000, 'capture to run');
    const alive = rx.messages.length;
    await waitFor(() => count(rx.messages.slice(alive), 'WATCHDOG=1') >= 3, 6000, 'three pings while capture runs');

    // ffmpeg does not inherit the notify socket.
    const ffmpegPid = Number((await readFile(join(tmp.dir, 'data', 'capture.pid'), 'utf8')).trim());
    const environ = await readFile(`/proc/${ffmpegPid}/environ`, 'utf8').catch(() => '');
    assert.ok(environ !== '' && !environ.includes('NOTIFY_SOCKET=') && !environ.includes('WATCHDOG_USEC='), 'ffmpeg environment holds no NOTIFY_SOCKET');

    // Camera gone: after captureGraceMs the pings stop, and stay stopped.
    await camera.stop();
    camera = null;
    const down = rx.messages.length;
    const withheld = await rx.waitFor(/^STATUS=MultiCam :\d+, HTTP :\d+; watchdog pings stopped \(capture down \d+ s\); capture down: /, 15000, down);
    const quiet = rx.messages.indexOf(withheld) + 1;
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(count(rx.messages.slice(quiet), 'WATCHDOG=1'), 0, `no ping for 3.5 s: ${JSON.stringify(rx.messages.slice(quiet).map((m) => m.fields))}`);
    assert.match(u.out(), /capture has been down for \d+ s: watchdog pings stop, systemd will restart the unit/);

    // Camera back: pings resume.
    camera = await startCamera();
    const back = rx.messages.length;
    await rx.waitFor('WATCHDOG=1', 30000, back);
    assert.match(u.out(), /capture is back: watchdog pings resume/);

    // SIGTERM: STOPPING=1, an orderly exit, and no ping after it.
    unit.proc.kill('SIGTERM');
    const stopping = await rx.waitFor('STOPPING=1', 10000, back);
    assert.equal(await unit.exited, 0, u.out().slice(-2000));
    const afterStop = rx.messages.slice(rx.messages.indexOf(stopping) + 1);
    assert.equal(count(afterStop, 'WATCHDOG=1'), 0, JSON.stringify(afterStop.map((m) => m.fields)));
    const t0 = rx.messages[0].at;
    for (const m of rx.messages) t.diagnostic(`+${m.at - t0} ms ${m.fields.join(' | ')}`);
  });

  it('never sends READY=1 when a port cannot be bound, and exits 1', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as { port: number }).port;
    const from = rx.messages.length;
    try {
      unit = await serve(tmp.dir, { camera: { source: 'testsrc', width: W, height: H, fps: FPS }, http: { host: '127.0.0.1', port: taken }, log: { level: 'info' } }, rx);
      assert.equal(await unit.exited, 1, unit.out().slice(-2000));
    } finally {
      blocker.close();
    }
    assert.match(unit.out(), /arenacam could not start/);
    assert.equal(count(rx.messages.slice(from), 'READY=1'), 0, JSON.stringify(rx.messages.slice(from)));
  });
});
