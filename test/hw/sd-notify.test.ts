/** Tests of the systemd notifier (real systemd-notify into a real AF_UNIX socket), the watchdog gate and SystemdService. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../src/log.js';
import { createNotifier, nullNotifier, statusField, SystemdNotifier, type Notifier } from '../../src/hw/sd-notify.js';
import { judgeWatchdog, Watchdog, watchdogFromEnv } from '../../src/hw/watchdog.js';
import { SystemdService } from '../../src/hw/systemd-service.js';
import { LogSink, tempDir, waitFor } from '../helpers/device.js';
import { notifyReceiverSkipReason, startNotifyReceiver, type NotifyReceiver } from '../systemd/notify-receiver.js';

/** Records every message; `hold` keeps sends pending until `release`. */
class RecordingNotifier implements Notifier {
  readonly enabled = true;
  readonly sent: string[][] = [];
  hold = false;
  private waiting: Array<() => void> = [];
  async send(...fields: string[]): Promise<void> {
    this.sent.push(fields);
    if (this.hold) await new Promise<void>((r) => this.waiting.push(r));
  }
  release(): void {
    for (const r of this.waiting.splice(0)) r();
  }
  count(field: string): number {
    return this.sent.filter((m) => m.includes(field)).length;
  }
}

function logged(): { sink: LogSink; log: ReturnType<typeof createLogger> } {
  const sink = new LogSink();
  return { sink, log: createLogger('debug', sink) };
}

describe('watchdogFromEnv', () => {
  it('is disabled without WATCHDOG_USEC and says so', () => {
    assert.deepEqual(watchdogFromEnv({}, 42), { disabled: 'WATCHDOG_USEC is not set' });
  });
  it('refuses values that are not positive integers', () => {
    for (const v of ['abc', '0', '-5', '1.5', '99999999999999999999']) {
      const r = watchdogFromEnv({ WATCHDOG_USEC: v }, 42);
      assert.ok('disabled' in r && r.disabled.includes('not a positive integer'), `${v}: ${JSON.stringify(r)}`);
    }
  });
  it('is disabled when WATCHDOG_PID names another process, enabled when it names this one', () => {
    assert.deepEqual(watchdogFromEnv({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42), { disabled: 'WATCHDOG_PID=7 is not this process (42)' });
    assert.deepEqual(watchdogFromEnv({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), { usec: 30000000 });
    assert.deepEqual(watchdogFromEnv({ WATCHDOG_USEC: '2000000' }, 42), { usec: 2000000 });
  });
});

describe('judgeWatchdog', () => {
  it('is healthy while capture runs and until it has been down for the whole grace period', () => {
    assert.deepEqual(judgeWatchdog(null, 5000, 1000), { healthy: true, downForMs: null });
    assert.deepEqual(judgeWatchdog(4000, 4999, 1000), { healthy: true, downForMs: 999 });
    assert.deepEqual(judgeWatchdog(4000, 5000, 1000), { healthy: false, downForMs: 1000 });
  });
});

describe('Watchdog gate with an injected clock', () => {
  const setup = (aliveAtStart: boolean) => {
    let t = 0;
    let alive = aliveAtStart;
    const notifier = new RecordingNotifier();
    const { sink, log } = logged();
    const gate: Array<[boolean, number | null]> = [];
    const onGate = (pinging: boolean, v: { downForMs: number | null }) => gate.push([pinging, v.downForMs]);
    const wd = new Watchdog({ notifier, watchdogUsec: 2_000_000, captureGraceMs: 1000, captureAlive: () => alive, log, now: () => t, onGate });
    return { wd, notifier, sink, gate, set: (ms: number, a: boolean) => ((t = ms), (alive = a)) };
  };

  it('pings every half interval and counts downtime from the moment capture was seen down', async () => {
    const { wd, notifier, sink, gate, set } = setup(true);
    assert.equal(wd.periodMs, 1000);
    await wd.tick();
    assert.equal(notifier.count('WATCHDOG=1'), 1);
    set(100, false);
    wd.observe(); // a capture health event at t=100
    set(1099, false);
    await wd.tick();
    assert.equal(notifier.count('WATCHDOG=1'), 2, 'down 999 ms of a 1000 ms grace: still pinging');
    set(1100, false);
    await wd.tick();
    set(2100, false);
    await wd.tick();
    assert.equal(notifier.count('WATCHDOG=1'), 2, 'down for the grace period: pings withheld');
    const stop = sink.find('watchdog pings stop');
    assert.equal(stop.length, 1, 'the stop is logged once');
    assert.equal(stop[0].level, 50);
    assert.equal(stop[0].downForMs, 1000);
    assert.deepEqual(gate, [[false, 1000]]);
    set(2500, true);
    await wd.tick();
    assert.equal(notifier.count('WATCHDOG=1'), 3, 'capture back: pinging again');
    assert.equal(sink.find('watchdog pings resume').length, 1);
    assert.deepEqual(gate, [[false, 1000], [true, null]]);
    assert.ok(notifier.sent.every((m) => m.length === 1 && m[0] === 'WATCHDOG=1'), 'the gate itself sends only pings');
  });

  it('counts capture that never came up as down from start()', async () => {
    const { wd, notifier, set } = setup(false);
    set(0, false);
    wd.start();
    wd.stop();
    await new Promise((r) => setImmediate(r));
    assert.equal(notifier.count('WATCHDOG=1'), 1, 'the first ping goes out at once');
    set(999, false);
    await wd.tick();
    set(1000, false);
    await wd.tick();
    assert.equal(notifier.count('WATCHDOG=1'), 2);
  });

  it('does not pile up pings while one is still being sent', async () => {
    const { wd, notifier, sink } = setup(true);
    notifier.hold = true;
    const first = wd.tick();
    await wd.tick();
    await wd.tick();
    assert.equal(notifier.count('WATCHDOG=1'), 1);
    assert.equal(sink.find('still being sent').length, 2);
    notifier.release();
    await first;
    notifier.hold = false;
    await wd.tick();
    assert.equal(notifier.count('WATCHDOG=1'), 2);
  });

  it('pings on its own timer until stopped', async () => {
    const notifier = new RecordingNotifier();
    const wd = new Watchdog({ notifier, watchdogUsec: 40_000, captureGraceMs: 1000, captureAlive: () => true, log: logged().log });
    wd.start();
    await waitFor(() => notifier.count('WATCHDOG=1') >= 4, 2000, 'four pings');
    wd.stop();
    const n = notifier.count('WATCHDOG=1');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(notifier.count('WATCHDOG=1'), n, 'no ping after stop()');
  });
});

describe('SystemdService', () => {
  const unit = () => {
    const capture = Object.assign(new EventEmitter(), { state: { alive: false, error: null as string | null }, status() { return { ...this.state }; } });
    return { multicamPort: 8080, httpPort: 9000, capture };
  };

  it('says READY=1 with a status line, follows capture health in STATUS, and says STOPPING=1 on stop', async () => {
    const notifier = new RecordingNotifier();
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '60000000', WATCHDOG_PID: '42', OTHER: 'kept' };
    const svc = new SystemdService({ env, pid: 42, log: logged().log, captureGraceMs: 1000, unsetEnvironment: true, notifier });
    assert.deepEqual(env, { OTHER: 'kept' }, 'children do not inherit the three variables');
    const u = unit();
    await svc.ready(u);
    assert.deepEqual(notifier.sent[0], ['READY=1', 'STATUS=MultiCam :8080, HTTP :9000; capture starting']);
    await waitFor(() => notifier.count('WATCHDOG=1') === 1, 1000, 'the first ping');
    u.capture.state = { alive: false, error: 'ffmpeg exited (code 1): boom' };
    u.capture.emit('health', u.capture.status());
    assert.deepEqual(notifier.sent.at(-1), ['STATUS=MultiCam :8080, HTTP :9000; capture down: ffmpeg exited (code 1): boom']);
    await svc.stopping();
    assert.deepEqual(notifier.sent.at(-1), ['STOPPING=1', 'STATUS=stopping']);
    const n = notifier.sent.length;
    u.capture.emit('health', { alive: true, error: null });
    await svc.stopping();
    assert.equal(notifier.sent.length, n, 'nothing after STOPPING=1');
  });

  it('says in STATUS when the watchdog stops pinging and when it resumes', async () => {
    const notifier = new RecordingNotifier();
    let t = 0;
    const svc = new SystemdService({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '60000000' }, pid: 1, log: logged().log, captureGraceMs: 1000, notifier, now: () => t });
    const u = unit();
    await svc.ready(u);
    const wd = (svc as unknown as { watchdog: Watchdog }).watchdog;
    t = 1000;
    await wd.tick();
    assert.deepEqual(notifier.sent.at(-1), ['STATUS=MultiCam :8080, HTTP :9000; watchdog pings stopped (capture down 1 s); capture starting']);
    u.capture.state = { alive: true, error: null };
    u.capture.emit('health', u.capture.status());
    t = 2000;
    await wd.tick();
    assert.deepEqual(notifier.sent.at(-2), ['STATUS=MultiCam :8080, HTTP :9000; capture running']);
    assert.deepEqual(notifier.sent.at(-1), ['WATCHDOG=1']);
    await svc.stopping();
  });

  it('runs no watchdog without WATCHDOG_USEC', async () => {
    const notifier = new RecordingNotifier();
    const { sink, log } = logged();
    const svc = new SystemdService({ env: { NOTIFY_SOCKET: '/run/x' }, pid: 1, log, captureGraceMs: 1000, notifier });
    await svc.ready(unit());
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(notifier.count('WATCHDOG=1'), 0);
    assert.equal(sink.find('no systemd watchdog: WATCHDOG_USEC is not set').length, 1);
    await svc.stopping();
  });
});

describe('createNotifier', () => {
  it('is a no-op without NOTIFY_SOCKET and says so once, at debug level', async () => {
    const { sink, log } = logged();
    const n = createNotifier({}, log);
    assert.equal(n, nullNotifier);
    await n.send('READY=1');
    const lines = sink.find('NOTIFY_SOCKET is not set');
    assert.equal(lines.length, 1);
    assert.equal(lines[0].level, 20);
  });

  it('keeps a status on one line', () => {
    assert.equal(statusField('a\nREADY=1\r\n'), 'STATUS=a READY=1');
  });
});

const skip = notifyReceiverSkipReason() ?? false;

describe('SystemdNotifier through systemd-notify into a real AF_UNIX socket', { skip }, () => {
  let tmp: { dir: string; cleanup(): Promise<void> };
  let rx: NotifyReceiver;
  before(async () => {
    tmp = await tempDir('arenacam-notify-');
    rx = await startNotifyReceiver(tmp.dir);
  });
  after(async () => {
    await rx?.stop();
    await tmp?.cleanup();
  });

  it('delivers messages in the order sent, one line per field', async () => {
    const { sink, log } = logged();
    const n = new SystemdNotifier({ socket: rx.socket, log });
    const from = rx.messages.length;
    const sends = [n.send('READY=1', 'STATUS=one'), n.send('WATCHDOG=1'), n.send(statusField('two\nSTOPPING=1'))];
    await Promise.all(sends);
    await rx.waitFor('STATUS=two STOPPING=1', 2000, from);
    assert.deepEqual(
      rx.messages.slice(from).map((m) => m.fields),
      [['READY=1', 'STATUS=one'], ['WATCHDOG=1'], ['STATUS=two STOPPING=1']],
    );
    assert.equal(sink.find('failed').length, 0, JSON.stringify(sink.lines));
  });

  it('waits until the receiver has taken the message (the barrier), as PID 1 would', async () => {
    const { sink, log } = logged();
    const n = new SystemdNotifier({ socket: rx.socket, log });
    const from = rx.messages.length;
    process.kill(rx.pid, 'SIGSTOP');
    let done = false;
    let sent: Promise<void>;
    try {
      sent = n.send('WATCHDOG=1').then(() => void (done = true));
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(done, false, 'systemd-notify must wait while the receiver is not reading');
    } finally {
      process.kill(rx.pid, 'SIGCONT');
    }
    await sent;
    await rx.waitFor('WATCHDOG=1', 2000, from);
    assert.equal(sink.find('failed').length, 0, JSON.stringify(sink.lines));
  });

  it('logs a failure once, never throws, and says when it works again', async () => {
    const { sink, log } = logged();
    const lateDir = join(tmp.dir, 'late');
    const gone = new SystemdNotifier({ socket: join(lateDir, 'notify'), log });
    await gone.send('WATCHDOG=1');
    await gone.send('WATCHDOG=1');
    const errors = sink.find('systemd notification failed (the unit keeps running)');
    assert.equal(errors.length, 1);
    assert.match(String(errors[0].err), /^systemd-notify exited with code 1: .*No such file or directory/);
    assert.equal(sink.find('systemd notification failed again').length, 1);

    const missing = new SystemdNotifier({ socket: rx.socket, log, path: '/nonexistent/systemd-notify' });
    await missing.send('READY=1');
    assert.match(String(sink.find('systemd notification failed (the unit keeps running)')[1]?.err), /systemd-notify not found at "\/nonexistent\/systemd-notify"/);

    // The first notifier recovers once something listens on its socket.
    await mkdir(lateDir);
    const late = await startNotifyReceiver(lateDir);
    try {
      await gone.send('WATCHDOG=1');
      assert.equal(sink.find('systemd notifications work again').length, 1);
      await late.waitFor('WATCHDOG=1', 2000);
    } finally {
      await late.stop();
    }
  });
});
