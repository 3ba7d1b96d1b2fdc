/** The Pi's throttling flags: vcgencmd outputs captured on real Pis, a real vcgencmd-shaped process, the rpi_volt hwmon alarm. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseGetThrottled, throttleWarnings, readThrottle } from '../../src/hw/throttle.js';
import { SiSystemFacts, SystemFactsPoller, factWarnings } from '../../src/hw/system-facts.js';
import { FakeSystemFacts, fakeSi } from '../fakes/system-facts.js';
import { piFixture } from '../helpers/pi-fixtures.js';

let root = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'arenacam-throttle-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** An executable that prints `text` (or fails with `code`), standing in for vcgencmd. */
async function fakeTool(name: string, text: string, code = 0): Promise<string> {
  const dir = join(root, `bin-${name}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'out.txt'), text);
  const path = join(dir, 'vcgencmd');
  await writeFile(path, `#!/bin/sh\n[ "$1" = get_throttled ] || { echo "unknown command $1" >&2; exit 2; }\ncat "${join(dir, 'out.txt')}"\nexit ${code}\n`);
  await chmod(path, 0o755);
  return path;
}

describe('get_throttled flags from real Raspberry Pi outputs', () => {
  const cases: Array<{ file: string; bits: number; warnings: string[] }> = [
    { file: 'vcgencmd-measure_clock-measure_temp-get_throttled.duckiebot.0x0.txt', bits: 0, warnings: [] },
    { file: 'vcgencmd-measure_temp-get_throttled.pi3.0x50000.txt', bits: 0x50000, warnings: ['under-voltage has occurred since boot', 'throttling has occurred since boot'] },
    {
      file: 'vcgencmd-measure_temp-get_throttled.pi3.0x50005.txt',
      bits: 0x50005,
      warnings: ['under-voltage now', 'throttled now', 'under-voltage has occurred since boot', 'throttling has occurred since boot'],
    },
    { file: 'vcgencmd-get_throttled.pi3bplus-osmc.0x80008.txt', bits: 0x80008, warnings: ['soft temperature limit active', 'soft temperature limit has occurred since boot'] },
    { file: 'vcgencmd-get_throttled.raspiblitz.0x80000.txt', bits: 0x80000, warnings: ['soft temperature limit has occurred since boot'] },
  ];
  for (const c of cases) {
    it(`${c.file} → 0x${c.bits.toString(16)}`, () => {
      const bits = parseGetThrottled(piFixture(c.file));
      assert.equal(bits, c.bits);
      assert.deepEqual(throttleWarnings(bits as number), c.warnings);
    });
  }
  it('a file without get_throttled output (measure_temp only) gives null, and unknown bits are named', () => {
    assert.equal(parseGetThrottled(piFixture('vcgencmd-measure_temp.treehouses.txt')), null);
    assert.deepEqual(throttleWarnings(0x100001), ['under-voltage now', 'unknown throttle flags 0x100000']);
  });
});

describe('readThrottle', () => {
  it('runs vcgencmd get_throttled as a process and parses what it prints', async () => {
    const tool = await fakeTool('uv', piFixture('vcgencmd-measure_temp-get_throttled.pi3.0x50005.txt'));
    assert.deepEqual(await readThrottle({ vcgencmdPath: tool, sysRoot: join(root, 'none') }), { bits: 0x50005, source: 'vcgencmd' });
  });

  it('a failing vcgencmd is an error naming what it said (e.g. no access to /dev/vcio)', async () => {
    const tool = await fakeTool('fail', '', 255);
    await assert.rejects(readThrottle({ vcgencmdPath: tool, sysRoot: join(root, 'none') }), /vcgencmd get_throttled (failed|gave no flags)/);
  });

  it('without vcgencmd falls back to the rpi_volt hwmon alarm (plain Debian kernel on a Pi); neither → null', async () => {
    const sys = join(root, 'sys');
    await mkdir(join(sys, 'class/hwmon/hwmon0'), { recursive: true });
    await mkdir(join(sys, 'class/hwmon/hwmon1'), { recursive: true });
    await writeFile(join(sys, 'class/hwmon/hwmon0/name'), 'cpu_thermal\n');
    await writeFile(join(sys, 'class/hwmon/hwmon1/name'), 'rpi_volt\n');
    await writeFile(join(sys, 'class/hwmon/hwmon1/in0_lcrit_alarm'), '1\n');
    const missing = join(root, 'no-such-vcgencmd');
    assert.deepEqual(await readThrottle({ vcgencmdPath: missing, sysRoot: sys }), { bits: 1, source: 'hwmon' });
    await writeFile(join(sys, 'class/hwmon/hwmon1/in0_lcrit_alarm'), '0\n');
    assert.deepEqual(await readThrottle({ vcgencmdPath: missing, sysRoot: sys }), { bits: 0, source: 'hwmon' });
    assert.equal(await readThrottle({ vcgencmdPath: missing, sysRoot: join(root, 'empty-sys') }), null);
  });

  it('SiSystemFacts reports the flags with the other facts', async () => {
    const tool = await fakeTool('facts', piFixture('vcgencmd-get_throttled.pi3bplus-osmc.0x80008.txt'));
    const empty = join(root, 'empty');
    await mkdir(empty, { recursive: true });
    const log = pino({ level: 'silent' });
    const facts = await new SiSystemFacts({ log, si: fakeSi({}), sysRoot: empty, procRoot: empty, throttle: () => readThrottle({ vcgencmdPath: tool }) }).read();
    assert.deepEqual(facts.throttled, { bits: 0x80008, source: 'vcgencmd' });
    assert.deepEqual(factWarnings(facts), ['soft temperature limit active'], 'live: what is true now');
    assert.deepEqual(factWarnings(facts, 'past'), ['soft temperature limit has occurred since boot'], 'sticky until reboot');
  });
});

describe('SystemFactsPoller logs a change of warnings once', () => {
  it('warns when under-voltage appears, stays quiet while it lasts, says when it clears', async () => {
    const lines: Array<{ level: number; msg: string; warnings?: string[] }> = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const reader = new FakeSystemFacts();
    const p = new SystemFactsPoller({ reader, log, pollMs: 3_600_000 });
    await p.refresh();
    assert.equal(lines.length, 0);
    reader.set({ throttled: { bits: parseGetThrottled(piFixture('vcgencmd-measure_temp-get_throttled.pi3.0x50005.txt')) as number, source: 'vcgencmd' } });
    await p.refresh();
    await p.refresh();
    const warns = lines.filter((l) => l.level === 40);
    assert.equal(warns.length, 1);
    assert.ok(warns[0].msg.includes('under-voltage now'), warns[0].msg);
    reader.set({ throttled: { bits: 0, source: 'vcgencmd' } });
    await p.refresh();
    assert.equal(lines.filter((l) => l.msg.includes('cleared')).length, 1);
  });
});
