/** The Pi's under-voltage/throttling flags reach the coordinator's status, /health and the log; the battery reaches MultiCam. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withPairedUnit } from '../helpers/var-unit.js';
import { sendCommand } from '../helpers/controller.js';
import { FakeSystemFacts } from '../fakes/system-facts.js';
import { parseGetThrottled } from '../../src/hw/throttle.js';
import { piFixture } from '../helpers/pi-fixtures.js';

test('under-voltage (0x50005 from a real Pi 3) shows as warnings in VAR status and /health, is logged once, and clears', async () => {
  const bits = parseGetThrottled(piFixture('vcgencmd-measure_temp-get_throttled.pi3.0x50005.txt')) as number;
  const facts = new FakeSystemFacts({ battery: 64, temperatureC: 51.2, throttled: { bits, source: 'vcgencmd' } });
  await withPairedUnit({ seams: { systemFacts: facts } }, async ({ unit, coord }) => {
    const status = await coord.waitFor((m) => m.type === 'status');
    assert.equal(status.payload.battery, 64);
    assert.equal(status.payload.temperature, 51.2);
    assert.ok(Array.isArray(status.payload.warnings), JSON.stringify(status.payload));
    assert.ok(status.payload.warnings.includes('under-voltage now'));
    assert.ok(status.payload.warnings.includes('throttled now'));
    assert.equal(status.payload.warnings.some((w: string) => w.includes('since boot')), false, 'sticky since-boot flags stay out of the live status');

    const health = (await (await fetch(`http://127.0.0.1:${unit.app.httpPort}/health`)).json()) as { system: { warnings: string[]; throttled: { bits: number } } };
    assert.equal(health.system.throttled.bits, bits);
    assert.ok(health.system.warnings.includes('under-voltage now'));
    assert.ok((health.system as unknown as { sinceBoot: string[] }).sinceBoot.includes('under-voltage has occurred since boot'));
    assert.equal(unit.logs.find('power/thermal warning').length, 1, 'logged once');

    // MultiCam carries the battery (batteryLevel) but no extra keys: the controller's reply classes stay exact.
    const reply = await sendCommand('127.0.0.1', unit.app.multicamPort, 'DEVICE_STATUS');
    assert.equal(reply.body.batteryLevel, 64);
    assert.equal('warnings' in reply.body, false);
    assert.equal('message' in reply.body, false);

    // The next poll (10 s) would see it; refresh now instead of waiting.
    // Fixed power supply: the "now" bits clear, the "since boot" ones stay until a reboot.
    facts.set({ throttled: { bits: 0x50000, source: 'vcgencmd' } });
    await unit.app.facts.refresh();
    const after = await coord.waitFor((m) => m.type === 'status' && !('warnings' in m.payload), 5000);
    assert.equal(after.payload.battery, 64);
    assert.equal(unit.logs.find('power/thermal warning: under-voltage has occurred since boot').length, 1, 'the change is logged once');
    facts.set({ throttled: { bits: 0, source: 'vcgencmd' } });
    await unit.app.facts.refresh();
    assert.equal(unit.logs.find('power/thermal warnings cleared').length, 1);
  });
});
