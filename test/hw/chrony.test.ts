/** Tests of the chrony adapter (captured outputs, then real chronyd on loopback) and of ClockMonitor. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { piFixture as fixture } from '../helpers/pi-fixtures.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChronyClockStatus, parseChronyTracking } from '../../src/hw/chrony.js';
import type { ClockStatus, ClockStatusReader } from '../../src/hw/clock-status.js';
import { ClockMonitor } from '../../src/hw/clock-monitor.js';
import type { Logger } from '../../src/log.js';
import { pino } from 'pino';
import { chronydSkipReason, findExecutable, freeUdpPort, startChronydClient, startChronydServer, type Chronyd } from '../helpers/chronyd.js';

const NOW = 1_700_000_000_000;

describe('parseChronyTracking on captured outputs', () => {
  it('calls the loopback-synced CSV report synchronised, with stratum, IP and offset in ms', () => {
    const s = parseChronyTracking(fixture('chronyc-c-tracking.loopback-synced.chrony4.3.txt'), 10, NOW);
    assert.equal(s.synchronised, true, s.reason ?? '');
    assert.equal(s.source, 'chrony');
    assert.equal(s.stratum, 11);
    assert.equal(s.refId, '127.0.0.1');
    assert.equal(s.leapStatus, 'Normal');
    assert.ok(Math.abs((s.offsetMs ?? NaN) - 0.001229) < 1e-9, `offsetMs ${s.offsetMs}`);
    assert.equal(s.reason, null);
    assert.equal(s.checkedAt, NOW);
  });

  it('calls the unsynced CSV report not synchronised because of the leap status', () => {
    const s = parseChronyTracking(fixture('chronyc-c-tracking.unsynced.chrony4.3.txt'), 10, NOW);
    assert.equal(s.synchronised, false);
    assert.equal(s.reason, 'chrony leap status is Not synchronised');
    assert.equal(s.refId, null);
    assert.equal(s.offsetMs, null);
  });

  it('reads the human form of the same loopback capture the same way as the CSV form', () => {
    const text = parseChronyTracking(fixture('chronyc-tracking.loopback-synced.chrony4.3.txt'), 10, NOW);
    const csv = parseChronyTracking(fixture('chronyc-c-tracking.loopback-synced.chrony4.3.txt'), 10, NOW);
    assert.equal(text.synchronised, true);
    assert.equal(text.refId, 'localhost'); // without -n chronyc prints the name
    assert.deepEqual({ ...text, refId: null }, { ...csv, refId: null });
  });

  it('calls the unsynced human-form report not synchronised', () => {
    const s = parseChronyTracking(fixture('chronyc-tracking.unsynced.chrony4.3.txt'), 10, NOW);
    assert.equal(s.synchronised, false);
    assert.equal(s.reason, 'chrony leap status is Not synchronised');
  });

  it('calls the CM4 on an internet NTP server synchronised at 10 ms but not at 0.1 ms', () => {
    const out = fixture('chronyc-tracking.cm4-ntp-synced.txt');
    const ok = parseChronyTracking(out, 10, NOW);
    assert.equal(ok.synchronised, true, ok.reason ?? '');
    assert.equal(ok.stratum, 3);
    assert.equal(ok.refId, 'ipv4.ntp3.rbauman.com');
    assert.ok(Math.abs((ok.offsetMs ?? NaN) - 0.354839) < 1e-9);
    const strict = parseChronyTracking(out, 0.1, NOW);
    assert.equal(strict.synchronised, false);
    assert.equal(strict.reason, 'offset 0.355 ms exceeds clock.maxOffsetMs 0.1');
    assert.equal(strict.offsetMs, ok.offsetMs);
  });

  it('calls the GPS/PPS stratum-1 Pi synchronised with refId PPS0', () => {
    const s = parseChronyTracking(fixture('chronyc-tracking.pi-gps-pps-stratum1.txt'), 1, NOW);
    assert.equal(s.synchronised, true, s.reason ?? '');
    assert.equal(s.stratum, 1);
    assert.equal(s.refId, 'PPS0');
    assert.ok((s.offsetMs ?? NaN) < 0.0001);
  });

  it('calls a server serving its local clock not synchronised', () => {
    // Captured on this machine: `chronyc -n -c tracking` of chronyd 4.3 with `local stratum 8` and no sources.
    const out = '7F7F0101,,8,1795311563.350685889,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,0.000000000,0.000000000,0.0,Normal\n';
    const s = parseChronyTracking(out, 10, NOW);
    assert.equal(s.synchronised, false);
    assert.match(s.reason ?? '', /^chrony reference is the local clock/);
    assert.equal(s.stratum, 8);
    assert.equal(s.refId, '7F7F0101');
  });

  it('calls the same local clock synchronised on the time master (clock.timeMaster), but never a clock without reference', () => {
    const out = '7F7F0101,,8,1795311563.350685889,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,0.000000000,0.000000000,0.0,Normal\n';
    const s = parseChronyTracking(out, 10, NOW, true);
    assert.equal(s.synchronised, true);
    assert.match(s.reason ?? '', /^time master: .*local stratum 8/);
    const unsynced = parseChronyTracking(fixture('chronyc-c-tracking.unsynced.chrony4.3.txt'), 10, NOW, true);
    assert.equal(unsynced.synchronised, false);
    assert.equal(unsynced.reason, 'chrony leap status is Not synchronised');
  });

  it('calls malformed output not synchronised and quotes its start', () => {
    const cut = fixture('chronyc-c-tracking.loopback-synced.chrony4.3.txt').slice(0, 40);
    const s = parseChronyTracking(cut, 10, NOW);
    assert.equal(s.synchronised, false);
    assert.equal(s.reason, `unexpected chronyc tracking output: ${JSON.stringify(cut)}`);
    const empty = parseChronyTracking('', 10, NOW);
    assert.equal(empty.reason, 'unexpected chronyc tracking output: (empty)');
    const long = parseChronyTracking('x'.repeat(500), 10, NOW);
    assert.ok((long.reason ?? '').length < 120, long.reason ?? '');
  });
});

const skip = chronydSkipReason() ?? false;
const chronyc = findExecutable('chronyc') ?? 'chronyc';

/** Read until synchronised or the deadline; returns the last status. */
async function readUntilSynchronised(reader: ChronyClockStatus, deadlineMs: number): Promise<ClockStatus> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const s = await reader.read();
    if (s.synchronised || Date.now() > end) return s;
    await new Promise((res) => setTimeout(res, 100));
  }
}

describe('ChronyClockStatus against real chronyd on loopback', { skip }, () => {
  let server: Chronyd | undefined;
  const started: Chronyd[] = [];
  before(async () => {
    server = await startChronydServer({ stratum: 8 });
    started.push(server);
  });
  after(async () => {
    await Promise.all(started.map((c) => c.stop()));
  });

  it('sees a client of the loopback server become synchronised at stratum 9', async () => {
    assert.ok(server?.ntpPort);
    const client = await startChronydClient(server.ntpPort);
    started.push(client);
    const reader = new ChronyClockStatus({ chronycPath: chronyc, socket: client.socket, maxOffsetMs: 10 });
    const t0 = Date.now();
    const s = await readUntilSynchronised(reader, 40_000);
    assert.equal(s.synchronised, true, `${s.reason} after ${Date.now() - t0} ms\n${client.log()}`);
    assert.equal(s.stratum, 9);
    assert.equal(s.refId, '127.0.0.1');
    assert.equal(s.leapStatus, 'Normal');
    assert.ok(s.offsetMs !== null && s.offsetMs < 10, `offsetMs ${s.offsetMs}`);
    assert.equal(s.reason, null);
  });

  it('calls the server itself not synchronised because its reference is the local clock', async () => {
    assert.ok(server);
    const s = await new ChronyClockStatus({ chronycPath: chronyc, socket: server.socket, maxOffsetMs: 10 }).read();
    assert.equal(s.synchronised, false);
    assert.match(s.reason ?? '', /^chrony reference is the local clock \(reference ID 7F7F0101\)/);
    assert.equal(s.stratum, 8);
  });

  it('keeps a client of a port where nothing serves not synchronised', async () => {
    const client = await startChronydClient(await freeUdpPort());
    started.push(client);
    const reader = new ChronyClockStatus({ chronycPath: chronyc, socket: client.socket, maxOffsetMs: 10 });
    for (let i = 0; i < 4; i++) {
      const s = await reader.read();
      assert.equal(s.synchronised, false, 'a client without a server must not be synchronised');
      assert.equal(s.reason, 'chrony leap status is Not synchronised');
      await new Promise((res) => setTimeout(res, 400));
    }
  });

  it('reports a hung chronyd as a timeout within timeoutMs', async () => {
    assert.ok(server);
    const reader = new ChronyClockStatus({ chronycPath: chronyc, socket: server.socket, maxOffsetMs: 10, timeoutMs: 300 });
    process.kill(server.pid, 'SIGSTOP');
    const t0 = Date.now();
    let s: ClockStatus;
    try {
      s = await reader.read();
    } finally {
      process.kill(server.pid, 'SIGCONT');
    }
    assert.equal(s.synchronised, false);
    assert.equal(s.reason, 'chronyc did not answer within 300 ms (chronyd busy or hung?)');
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });
});

describe('ChronyClockStatus when chrony is missing', { skip: findExecutable('chronyc') === null ? 'chronyc is not installed' : false }, () => {
  it('says it cannot talk to chronyd when no chronyd listens on the socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'arenacam-nochronyd-'));
    try {
      const socket = join(dir, 'chronyd.sock');
      const s = await new ChronyClockStatus({ chronycPath: chronyc, socket, maxOffsetMs: 10 }).read();
      assert.equal(s.synchronised, false);
      assert.match(s.reason ?? '', /^cannot talk to chronyd at .*chronyd\.sock: chronyc says "/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says chronyc is not found when chronycPath does not exist', async () => {
    const s = await new ChronyClockStatus({ chronycPath: '/nonexistent/chronyc', socket: null, maxOffsetMs: 10, now: () => NOW }).read();
    assert.equal(s.synchronised, false);
    assert.equal(s.reason, 'chronyc not found at "/nonexistent/chronyc" (is chrony installed?)');
    assert.equal(s.checkedAt, NOW);
  });
});

/** A reader that returns the given statuses in order (the last one repeats). */
class ScriptedReader implements ClockStatusReader {
  reads = 0;
  constructor(private readonly script: Array<ClockStatus | Error>) {}
  async read(): Promise<ClockStatus> {
    const next = this.script[Math.min(this.reads++, this.script.length - 1)];
    if (next instanceof Error) throw next;
    return next;
  }
}

/** A pino logger that keeps its JSON lines in an array. */
function memoryLogger(): { log: Logger; lines: Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

const synced = parseChronyTracking(fixture('chronyc-c-tracking.loopback-synced.chrony4.3.txt'), 10, NOW);
const unsynced = parseChronyTracking(fixture('chronyc-c-tracking.unsynced.chrony4.3.txt'), 10, NOW);

describe('ClockMonitor', () => {
  it('reports "clock status not read yet" before the first read', () => {
    const m = new ClockMonitor({ reader: new ScriptedReader([synced]), pollMs: 1000, log: memoryLogger().log });
    assert.equal(m.current().synchronised, false);
    assert.equal(m.current().reason, 'clock status not read yet');
  });

  it('logs each change of synchronisation once, not every poll', async () => {
    const { log, lines } = memoryLogger();
    const script = [unsynced, unsynced, synced, synced, synced, unsynced, unsynced, synced];
    const m = new ClockMonitor({ reader: new ScriptedReader(script), pollMs: 1000, log });
    for (const expected of script) assert.equal((await m.refresh()).synchronised, expected.synchronised);
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg]),
      [
        [40, 'clock not synchronised: chrony leap status is Not synchronised'],
        [30, 'clock synchronised'],
        [40, 'clock not synchronised: chrony leap status is Not synchronised'],
        [30, 'clock synchronised'],
      ],
    );
    assert.deepEqual([lines[1].offsetMs, lines[1].stratum, lines[1].refId], [synced.offsetMs, 11, '127.0.0.1']);
    assert.equal(lines[2].reason, 'chrony leap status is Not synchronised');
    assert.equal(m.current(), synced);
  });

  it('turns a reader that throws into a not-synchronised status with the error', async () => {
    const { log, lines } = memoryLogger();
    const m = new ClockMonitor({ reader: new ScriptedReader([synced, new Error('boom')]), pollMs: 1000, log, now: () => NOW + 1 });
    await m.refresh();
    const s = await m.refresh();
    assert.equal(s.synchronised, false);
    assert.equal(s.reason, 'clock status read failed: boom');
    assert.equal(s.checkedAt, NOW + 1);
    assert.equal(lines.length, 2);
  });

  it('reads at once on start, then every pollMs until stopped', async () => {
    const reader = new ScriptedReader([synced]);
    const m = new ClockMonitor({ reader, pollMs: 25, log: memoryLogger().log });
    m.start();
    m.start(); // idempotent
    await new Promise((res) => setImmediate(res));
    assert.equal(reader.reads, 1, 'the first read happens at start, not after pollMs');
    await new Promise((res) => setTimeout(res, 140));
    m.stop();
    const seen = reader.reads;
    assert.ok(seen >= 2, `only ${seen} reads: the timer did not poll`);
    assert.equal(m.current().synchronised, true);
    await new Promise((res) => setTimeout(res, 80));
    assert.equal(reader.reads, seen, 'no reads after stop()');
  });

  it('shares one read between concurrent refresh calls', async () => {
    const reader = new ScriptedReader([synced]);
    const m = new ClockMonitor({ reader, pollMs: 1000, log: memoryLogger().log });
    const [a, b] = await Promise.all([m.refresh(), m.refresh()]);
    assert.equal(a, b);
    assert.equal(reader.reads, 1);
  });
});
