/** sysfs GPIO chip discovery on fake /sys/class/gpio trees built from real Pi 4 and Pi 5 listings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findHeaderChip, listGpioChips, sysfsNumber, GpioUnavailableError, KNOWN_HEADER_LABELS } from '../../src/hw/gpio.js';
import { chipBasesFromLs, chipsFromGpiodetect, pi4Chips, pi5Chips, writeSysfsTree, type FakeChip } from '../fakes/gpio.js';
import { piFixture } from '../helpers/pi-fixtures.js';

async function withTree(chips: FakeChip[], fn: (dir: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'arenacam-gpio-'));
  try {
    const dir = join(root, 'class', 'gpio');
    await writeSysfsTree(dir, chips);
    await fn(dir);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const DEBUGFS_PI4 = piFixture('sys-kernel-debug-gpio.pi4-bcm2711-k6.6plus.truncated.txt');

test('the fake trees use every chip of the listings: each sysfs base gets a gpiodetect chip whose lines fit before the next base', () => {
  for (const [chips, ls, detect] of [
    [pi4Chips(), 'sys-class-gpio.ls-la.pi4-bcm2711-k6.6plus.txt', 'gpiodetect.pi4-k6.6.47.txt'],
    [pi5Chips(), 'sys-class-gpio.ls-la.pi5-k6.12.47.txt', 'gpiodetect.pi5-k6.6.47.after-renumbering.txt'],
  ] as const) {
    assert.deepEqual(chips.map((c) => c.base), chipBasesFromLs(piFixture(ls)));
    assert.deepEqual(chips.map((c) => c.label).sort(), chipsFromGpiodetect(piFixture(detect)).map((c) => c.label).sort());
    for (let i = 0; i + 1 < chips.length; i++) assert.equal(chips[i].base + chips[i].ngpio, chips[i + 1].base, `${chips[i].label} ends where the next chip begins`);
  }
});

test('on a Pi 4 with kernel 6.6+ the header chip is pinctrl-bcm2711 at the base and size its debugfs listing gives', () =>
  withTree(pi4Chips(), async (dir) => {
    const m = /^gpiochip\d+: GPIOs (\d+)-(\d+), parent: [^,]+, ([^:]+):$/m.exec(DEBUGFS_PI4)!;
    const chip = await findHeaderChip(dir, null);
    assert.equal(chip.label, m[3]);
    assert.equal(chip.base, Number(m[1]));
    assert.equal(chip.ngpio, Number(m[2]) - Number(m[1]) + 1);
    assert.equal(chip.name, `gpiochip${m[1]}`);
    assert.equal((await listGpioChips(dir)).length, 2, 'the firmware expander is listed too');
  }));

test('every BCM pin named in the Pi 4 debugfs listing maps to its sysfs number, and GPIO17 is the exported gpio529', () =>
  withTree(pi4Chips(), async (dir) => {
    const chip = await findHeaderChip(dir, null);
    const named = [...DEBUGFS_PI4.matchAll(/^ gpio-(\d+) \(GPIO(\d+)\s/gm)].map((x) => ({ sysfs: Number(x[1]), bcm: Number(x[2]) }));
    assert.ok(named.length >= 20, `${named.length} pins named`);
    for (const p of named) assert.equal(sysfsNumber(chip, p.bcm), p.sysfs, `GPIO${p.bcm}`);
    const exported = [...piFixture('sys-class-gpio.ls-la.pi4-bcm2711-k6.6plus.txt').matchAll(/\sgpio(\d+) -> /g)].map((x) => Number(x[1]));
    assert.ok(exported.includes(sysfsNumber(chip, 17)), `gpio${sysfsNumber(chip, 17)} is exported in the listing (${exported.join(', ')})`);
    assert.match(DEBUGFS_PI4, new RegExp(`gpio-${sysfsNumber(chip, 17)} \\(GPIO17 `));
  }));

test('on a Pi 5 (kernel 6.12) the RP1 chip is found by its label, not as the lowest base: BCM 17 is 588', () =>
  withTree(pi5Chips(), async (dir) => {
    const chips = await listGpioChips(dir);
    assert.equal(chips[0].base, 512, 'the lowest chip is a SoC bank');
    assert.notEqual(chips[0].label, 'pinctrl-rp1');
    const chip = await findHeaderChip(dir, null);
    assert.equal(chip.label, 'pinctrl-rp1');
    assert.equal(chip.base, 571);
    assert.equal(chip.ngpio, 54);
    assert.equal(sysfsNumber(chip, 17), 588);
    assert.equal(sysfsNumber(chip, 27), 598);
  }));

test('gpio.chipLabel picks another chip, and a pin past its lines is refused with the valid range', () =>
  withTree(pi4Chips(), async (dir) => {
    const exp = await findHeaderChip(dir, 'raspberrypi-exp-gpio');
    assert.equal(exp.base, 570);
    assert.equal(sysfsNumber(exp, 7), 577);
    assert.throws(() => sysfsNumber(exp, 8), /BCM pin 8 is out of range for gpiochip570 \[raspberrypi-exp-gpio\] \(0-7\)/);
    const header = await findHeaderChip(dir, null);
    assert.throws(() => sysfsNumber(header, 58), /out of range .*\(0-57\)/);
    assert.throws(() => sysfsNumber(header, -1), /out of range/);
  }));

test('when no chip matches, the error names the label wanted and every chip found', async () => {
  await withTree(pi5Chips(), async (dir) => {
    await assert.rejects(findHeaderChip(dir, 'pinctrl-bcm2711'), (err: GpioUnavailableError) => {
      assert.equal(err.kind, 'unusable');
      assert.match(err.message, /no gpiochip matches gpio\.chipLabel "pinctrl-bcm2711"/);
      assert.match(err.message, /gpiochip571 \[pinctrl-rp1\] base 571 ngpio 54/);
      return true;
    });
  });
  // The SoC banks alone (no header controller): no known label.
  await withTree(pi5Chips().filter((c) => c.label !== 'pinctrl-rp1'), async (dir) => {
    await assert.rejects(findHeaderChip(dir, null), new RegExp(`no gpiochip matches a known Pi label \\(${KNOWN_HEADER_LABELS.join(', ')}\\); set gpio.chipLabel`));
  });
});

test('a missing sysfs folder means "no GPIO here"; an unreadable chip is a clear error', async () => {
  const root = await mkdtemp(join(tmpdir(), 'arenacam-gpio-'));
  try {
    await assert.rejects(findHeaderChip(join(root, 'nothing'), null), (err: GpioUnavailableError) => {
      assert.equal(err.kind, 'absent');
      assert.match(err.message, /^no GPIO here: .*nothing does not exist$/);
      return true;
    });
    await mkdir(join(root, 'gpio', 'gpiochip512'), { recursive: true });
    await writeFile(join(root, 'gpio', 'gpiochip512', 'label'), 'pinctrl-bcm2711\n');
    await writeFile(join(root, 'gpio', 'gpiochip512', 'base'), '512\n');
    await assert.rejects(listGpioChips(join(root, 'gpio')), /cannot read .*gpiochip512: .*ngpio/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
