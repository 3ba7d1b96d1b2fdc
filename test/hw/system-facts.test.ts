/** Tests of the system-facts reader (mapping, sysfs/procfs trees with captured Pi values, this machine) and poller. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { piFixture as fixture } from '../helpers/pi-fixtures.js';
import si from 'systeminformation';
import { SiSystemFacts, SystemFactsPoller, parseProcNetWireless, parseThermalZoneTemp, type SystemFacts } from '../../src/hw/system-facts.js';
import type { Logger } from '../../src/log.js';
import { FakeSystemFacts, fakeSi, gate, type FakeSi } from '../fakes/system-facts.js';

/** A pino logger that keeps its JSON lines in an array. */
function memoryLogger(): { log: Logger; lines: Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

let root = '';
/** A fresh directory under the suite's temp root, with the given files (path → content). */
async function tree(name: string, files: Record<string, string> = {}): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  for (const [p, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), text);
  }
  return dir;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'arenacam-facts-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A reader over `fake` with empty sysfs/procfs trees, so every fact goes through systeminformation. */
async function siOnly(fake: FakeSi, log: Logger = memoryLogger().log, timeoutMs = 3000): Promise<SiSystemFacts> {
  const empty = await tree('empty');
  return new SiSystemFacts({ log, si: fake, sysRoot: empty, procRoot: empty, timeoutMs });
}

describe('SiSystemFacts mapping of systeminformation answers', () => {
  // What si.battery() answers on this VM (no /sys/class/power_supply entries), field for field.
  const noBattery = {
    ...{ hasBattery: false, cycleCount: 0, isCharging: false, designedCapacity: 0, maxCapacity: 0, currentCapacity: 0 },
    ...{ voltage: 0, capacityUnit: '', percent: 0, timeRemaining: null, acConnected: true, type: '', model: '' },
    ...{ manufacturer: '', serial: '' },
  };
  const cases: Array<{ name: string; fake: Parameters<typeof fakeSi>[0]; expect: Partial<SystemFacts> }> = [
    { name: 'no battery on mains gives battery null', fake: { battery: noBattery }, expect: { battery: null } },
    { name: 'no battery and no mains flag gives null', fake: { battery: { hasBattery: false, acConnected: false, percent: 0 } }, expect: { battery: null } },
    { name: 'a discharging battery gives its percent', fake: { battery: { hasBattery: true, acConnected: false, percent: 87 } }, expect: { battery: 87 } },
    { name: 'a charging battery on mains still gives its percent', fake: { battery: { hasBattery: true, acConnected: true, percent: 41.6 } }, expect: { battery: 42 } },
    { name: 'a battery percent out of 0–100 gives null', fake: { battery: { hasBattery: true, acConnected: false, percent: 250 } }, expect: { battery: null } },
    { name: 'temperature null gives null', fake: { cpuTemperature: { main: null } }, expect: { temperatureC: null } },
    { name: 'temperature -1 gives null', fake: { cpuTemperature: { main: -1 } }, expect: { temperatureC: null } },
    { name: 'temperature NaN gives null', fake: { cpuTemperature: { main: NaN } }, expect: { temperatureC: null } },
    { name: 'a temperature gives °C', fake: { cpuTemperature: { main: 52.3 } }, expect: { temperatureC: 52.3 } },
    { name: 'no Wi-Fi connection gives signal null', fake: { wifiConnections: [] }, expect: { signalDbm: null } },
    { name: 'a connection without a level gives null', fake: { wifiConnections: [{ signalLevel: null }] }, expect: { signalDbm: null } },
    { name: 'the connected network gives its dBm', fake: { wifiConnections: [{ signalLevel: -61 }] }, expect: { signalDbm: -61 } },
  ];
  for (const c of cases) {
    it(`maps: ${c.name}`, async () => {
      const facts = await (await siOnly(fakeSi(c.fake))).read();
      assert.deepEqual(facts, { battery: null, temperatureC: null, signalDbm: null, throttled: null, ...c.expect });
    });
  }
});

describe('SiSystemFacts on sysfs and procfs trees with values captured on Raspberry Pis', () => {
  it('reads the SoC temperature from thermal_zone0 (35780 millidegrees → 35.78 °C) without asking systeminformation', async () => {
    const captured = fixture('sys-class-thermal-thermal_zone0-temp.pi1-pi2.txt');
    assert.equal(parseThermalZoneTemp(captured), 35.78);
    const sys = await tree('sys-pi', { 'class/thermal/thermal_zone0/temp': `${captured.trim()}\n` });
    const fake = fakeSi({ cpuTemperature: { main: 99 } });
    const facts = await new SiSystemFacts({ log: memoryLogger().log, si: fake, sysRoot: sys, procRoot: await tree('empty') }).read();
    assert.equal(facts.temperatureC, 35.78);
    assert.equal(fake.calls.cpuTemperature, 0);
  });

  it('falls back to systeminformation when thermal_zone0 holds no number', async () => {
    const sys = await tree('sys-bad', { 'class/thermal/thermal_zone0/temp': '' });
    const fake = fakeSi({ cpuTemperature: { main: 48.5 } });
    const facts = await new SiSystemFacts({ log: memoryLogger().log, si: fake, sysRoot: sys, procRoot: await tree('empty') }).read();
    assert.equal(facts.temperatureC, 48.5);
    assert.equal(fake.calls.cpuTemperature, 1);
  });

  it('reads the brcmfmac level (-58 dBm) from /proc/net/wireless without running Wi-Fi helpers', async () => {
    const proc = await tree('proc-brcmfmac', { 'net/wireless': fixture('proc-net-wireless.pi-brcmfmac.raspinfo.txt') });
    const fake = fakeSi({ wifiConnections: [{ signalLevel: -30 }] });
    const facts = await new SiSystemFacts({ log: memoryLogger().log, si: fake, sysRoot: await tree('empty'), procRoot: proc }).read();
    assert.equal(facts.signalDbm, -58);
    assert.equal(fake.calls.wifiConnections, 0);
  });

  it('gives null for a driver reporting a relative level (XBian 2013: level 95.) and for a table without interfaces', () => {
    const xbian = fixture('proc-net-wireless.pi-xbian-2013.txt');
    assert.equal(parseProcNetWireless(xbian), null);
    assert.equal(parseProcNetWireless(xbian.split('\n').slice(0, 2).join('\n') + '\n'), null);
  });
});

describe('SiSystemFacts with the real systeminformation on this machine', () => {
  it('returns a well-formed object within a few seconds: no battery, no Wi-Fi, no warnings', async () => {
    const { log, lines } = memoryLogger();
    const t0 = Date.now();
    const facts = await new SiSystemFacts({ log }).read();
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    assert.deepEqual(Object.keys(facts).sort(), ['battery', 'signalDbm', 'temperatureC', 'throttled']);
    assert.equal(facts.throttled, null, 'not a Pi: no vcgencmd, no rpi_volt hwmon');
    assert.equal(facts.battery, null);
    assert.equal(facts.signalDbm, null);
    assert.ok(facts.temperatureC === null || Number.isFinite(facts.temperatureC), `temperatureC ${facts.temperatureC}`);
    assert.deepEqual(lines, []);
  });

  it('agrees with the systeminformation package called directly when no sysfs/procfs files exist', async () => {
    const empty = await tree('empty');
    const facts = await new SiSystemFacts({ log: memoryLogger().log, sysRoot: empty, procRoot: empty }).read();
    const battery = await si.battery();
    assert.equal(facts.battery, battery.hasBattery ? Math.round(battery.percent) : null);
    const main = (await si.cpuTemperature()).main as number | null;
    assert.equal(facts.temperatureC, main === null || main === -1 ? null : main);
  });
});

describe('SiSystemFacts when systeminformation fails or hangs', () => {
  it('gives nulls, logs one warning per kind however many polls fail, and does not restart a hung call', async () => {
    const { log, lines } = memoryLogger();
    const hung = gate();
    const fake = fakeSi({ battery: new Error('battery boom'), cpuTemperature: { throwSync: new Error('sensors boom') }, wifiConnections: hung });
    const reader = await siOnly(fake, log, 100);
    for (let i = 0; i < 4; i++) {
      const t0 = Date.now();
      assert.deepEqual(await reader.read(), { battery: null, temperatureC: null, signalDbm: null, throttled: null });
      assert.ok(Date.now() - t0 < 1000, `read ${i} took ${Date.now() - t0} ms`);
    }
    assert.deepEqual(fake.calls, { battery: 4, cpuTemperature: 4, wifiConnections: 1 });
    assert.deepEqual(lines.map((l) => [l.level, l.fact, l.err]).sort(), [
      [40, 'battery', 'battery boom'],
      [40, 'temperature', 'sensors boom'],
      [40, 'wifi', 'no answer within 100 ms'],
    ]);
    hung.release();
    await new Promise((res) => setImmediate(res));
    await reader.read();
    assert.equal(fake.calls.wifiConnections, 2, 'once the hung call settled, the next poll asks again');
    assert.equal(lines.length, 3);
  });
});

describe('SystemFactsPoller', () => {
  const facts: SystemFacts = { battery: 76, temperatureC: 35.78, signalDbm: -58, throttled: null };

  it('answers all nulls before the first read and the reader’s facts after refresh()', async () => {
    const p = new SystemFactsPoller({ reader: new FakeSystemFacts(facts), log: memoryLogger().log });
    assert.deepEqual(p.current(), { battery: null, temperatureC: null, signalDbm: null, throttled: null });
    assert.deepEqual(await p.refresh(), facts);
    assert.deepEqual(p.current(), facts);
  });

  it('reads at once on start, then every pollMs until stopped', async () => {
    const reader = new FakeSystemFacts(facts);
    const p = new SystemFactsPoller({ reader, log: memoryLogger().log, pollMs: 25 });
    p.start();
    p.start(); // idempotent
    await new Promise((res) => setImmediate(res));
    assert.equal(reader.reads, 1);
    reader.set({ battery: 75 });
    await new Promise((res) => setTimeout(res, 140));
    p.stop();
    const seen = reader.reads;
    assert.ok(seen >= 3, `only ${seen} reads`);
    assert.equal(p.current().battery, 75);
    await new Promise((res) => setTimeout(res, 80));
    assert.equal(reader.reads, seen, 'no reads after stop()');
  });

  it('answers current() at once while a read hangs, and shares one read between concurrent refreshes', async () => {
    const reader = new FakeSystemFacts(facts);
    const p = new SystemFactsPoller({ reader, log: memoryLogger().log });
    await p.refresh();
    reader.hold = gate();
    reader.set({ signalDbm: -70 });
    const a = p.refresh();
    const b = p.refresh();
    assert.equal(p.current().signalDbm, -58, 'the old facts, synchronously');
    reader.hold.release();
    assert.equal(await a, await b);
    assert.equal(reader.reads, 2);
    assert.equal(p.current().signalDbm, -70);
  });

  it('turns a throwing reader into all nulls and warns once until it recovers', async () => {
    const { log, lines } = memoryLogger();
    const reader = new FakeSystemFacts(facts);
    const p = new SystemFactsPoller({ reader, log });
    await p.refresh();
    reader.failWith = new Error('boom');
    for (let i = 0; i < 3; i++) assert.deepEqual(await p.refresh(), { battery: null, temperatureC: null, signalDbm: null, throttled: null });
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.err]), [[40, 'system facts read failed', 'boom']]);
    reader.failWith = null;
    assert.deepEqual(await p.refresh(), facts);
  });
});
