/**
 * A controller on another host finds the whole unit by mDNS and drives it: `arenacam serve` runs in
 * one network namespace, the browser and the commands come from another (veth between them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNsPair, hasIpCommand, NsProcess } from '../helpers/netns.js';
import { tempDir, testConfig } from '../helpers/device.js';

const HELPERS = fileURLToPath(new URL('../helpers/', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const skip = process.getuid?.() !== 0 ? 'needs root for network namespaces' : !(await hasIpCommand()) ? 'needs iproute2' : false;

test('a controller in another namespace discovers the running unit by mDNS and gets its status at the advertised address', { skip }, async (t) => {
  const tmp = await tempDir();
  const ns = await createNsPair();
  const procs: NsProcess[] = [];
  t.after(async () => {
    for (const p of procs) await p.signalAndWait('SIGKILL', 2000);
    await ns.destroy();
    await tmp.cleanup();
  });
  const config = testConfig(tmp.dir, {
    deviceId: 'ring-cam-1',
    multicam: { host: '0.0.0.0', port: 8080 },
    http: { host: '0.0.0.0', port: 9000 },
    mdns: { enabled: true, backend: 'bonjour' },
    log: { level: 'info' },
  } as never);
  const file = join(tmp.dir, 'unit.json');
  await writeFile(file, JSON.stringify(config));
  const unit = new NsProcess(ns.device, [process.execPath, CLI, 'serve', '--config', file]);
  procs.push(unit);
  await unit.waitForJson((l) => l.msg === 'arenacam ready', 30000);

  const browser = new NsProcess(ns.controller, [process.execPath, join(HELPERS, 'mdns-browse.js'), '--until', 'up:multiCam-ring-cam-1', '--duration-ms', '10000']);
  procs.push(browser);
  const up = await browser.waitForJson((l) => l.event === 'up' && l.name === 'multiCam-ring-cam-1', 10000);
  assert.equal(up.shown, 'ring-cam-1');
  assert.equal(up.port, 8080);
  assert.deepEqual(up.txt, { deviceId: 'ring-cam-1' });
  assert.equal(up.ipv4, ns.deviceIp);

  // What the controller does next: connect to the first IPv4 address and port it found.
  const status = new NsProcess(ns.controller, [process.execPath, CLI, 'status', `${up.ipv4}:${up.port}`]);
  procs.push(status);
  const reply = await status.waitForJson((l) => 'status' in l, 10000);
  assert.equal(reply.deviceId, 'ring-cam-1');
  assert.equal(reply.status, 'ready');

  const ended = await unit.signalAndWait('SIGINT', 10000);
  assert.deepEqual(ended, { code: 0, signal: null }, 'the unit stops cleanly, withdrawing its service');
});
