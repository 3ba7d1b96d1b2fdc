/**
 * mDNS discovery as a controller sees it: the device publishes in one network namespace, a second
 * process browses from another, joined by a veth pair the test creates and deletes. No packet
 * reaches the host's own interfaces. Needs root and iproute2; the avahi part also needs
 * avahi-daemon, avahi-utils and dbus-daemon (it fails, naming them, when they are missing).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AVAHI_PACKAGES, AVAHI_SIDE_SERVICE, findAvahiTools, startAvahi, type AvahiInNs } from '../helpers/avahi-ns.js';
import { createNsPair, hasIpCommand, ip, NsProcess, type NsPair, type PrivateMounts } from '../helpers/netns.js';

const helpers = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers');
const BROWSE = path.join(helpers, 'mdns-browse.js');
const PUBLISH = path.join(helpers, 'mdns-publish.js');

const skip =
  process.getuid?.() !== 0
    ? 'needs root to create network namespaces'
    : !(await hasIpCommand())
      ? 'needs the ip command (iproute2)'
      : false;

type Line = Record<string, unknown>;
const isUp = (name: string) => (l: Line) => l.event === 'up' && l.name === name;
const isDown = (name: string) => (l: Line) => l.event === 'down' && l.name === name;

describe('mDNS discovery between network namespaces', { skip }, () => {
  let ns: NsPair | undefined;
  let dir = '';
  const procs: NsProcess[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'arenacam-mdns-'));
    ns = await createNsPair();
  });
  afterEach(async () => {
    // A failed test may leave its processes behind; they would hold UDP 5353 for the next one.
    for (const p of procs.splice(0)) await p.signalAndWait('SIGKILL', 2000);
  });
  after(async () => {
    await ns?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  function pair(): NsPair {
    assert.ok(ns, 'network namespaces were created');
    return ns;
  }
  function spawnIn(where: string, argv: string[], mounts?: PrivateMounts): NsProcess {
    const p = new NsProcess(where, [process.execPath, ...argv], mounts);
    procs.push(p);
    return p;
  }
  async function browse(until: string[], durationMs = 8000): Promise<NsProcess> {
    const b = spawnIn(pair().controller, [BROWSE, '--until', until.join(','), '--duration-ms', String(durationMs)]);
    await b.waitForJson((l) => l.event === 'browsing', 5000);
    return b;
  }
  function publish(deviceId: string, backend: string, extra: string[] = [], mounts?: PrivateMounts): NsProcess {
    return spawnIn(pair().device, [PUBLISH, '--device-id', deviceId, '--port', '8080', '--backend', backend, ...extra], mounts);
  }
  async function stopCleanly(device: NsProcess): Promise<number> {
    const t0 = Date.now();
    const ended = await device.signalAndWait('SIGTERM', 5000);
    assert.ok(ended, 'the publishing process exits by itself after stop()');
    assert.deepEqual(ended, { code: 0, signal: null });
    assert.ok(device.json().some((l) => l.event === 'stopped'));
    return Date.now() - t0;
  }

  it('the bonjour advertisement is discovered from a second process with its name, port, TXT deviceId and IPv4 address', async () => {
    const browser = await browse(['up:multiCam-Mountain-A1B2C3D4']);
    const device = publish('Mountain-A1B2C3D4', 'bonjour');
    const up = await browser.waitForJson(isUp('multiCam-Mountain-A1B2C3D4'), 8000);
    assert.equal(up.shown, 'Mountain-A1B2C3D4');
    assert.equal(up.port, 8080);
    assert.deepEqual(up.txt, { deviceId: 'Mountain-A1B2C3D4' });
    assert.equal(up.ipv4, pair().deviceIp);
    assert.equal(up.host, 'arenacam-Mountain-A1B2C3D4.local');
    assert.ok((await device.waitForJson((l) => l.event === 'started', 5000)).backend === 'bonjour');
    await stopCleanly(device);
  });

  it('stop() sends a goodbye that the browser sees, and the publishing process then exits by itself', async () => {
    const name = 'multiCam-GOODBYE-1';
    const browser = await browse([`up:${name}`, `down:${name}`]);
    const device = publish('GOODBYE-1', 'bonjour');
    await browser.waitForJson(isUp(name), 8000);
    await device.waitForJson((l) => l.event === 'started', 5000);
    const t0 = Date.now();
    const exitMs = await stopCleanly(device);
    await browser.waitForJson(isDown(name), 3000);
    assert.ok(Date.now() - t0 < 3000, 'the goodbye arrives at once, not after the TTL');
    assert.ok(exitMs < 3000, `exited ${exitMs} ms after SIGTERM`);
  });

  it('an advertiser started before the device has an IPv4 address announces itself once one appears', async () => {
    const { device: dev, deviceIf, deviceIp } = pair();
    // Deleting the last address also flushes the 224.0.0.0/4 route, and adding it back does not restore
    // it: like a LAN with static addresses and no gateway. The advertiser must name its interface itself.
    await ip('-n', dev, 'addr', 'del', `${deviceIp}/24`, 'dev', deviceIf);
    try {
      const device = publish('LATE-DHCP', 'bonjour', ['--recheck-ms', '200']);
      await device.waitForJson((l) => l.msg === 'mdns: waiting for an IPv4 address', 5000);
      const browser = await browse(['up:multiCam-LATE-DHCP']);
      await ip('-n', dev, 'addr', 'add', `${deviceIp}/24`, 'dev', deviceIf);
      const up = await browser.waitForJson(isUp('multiCam-LATE-DHCP'), 5000);
      assert.equal(up.ipv4, deviceIp);
      await stopCleanly(device);
    } finally {
      await ip('-n', dev, 'addr', 'add', `${deviceIp}/24`, 'dev', deviceIf).catch(() => undefined);
      await ip('-n', dev, 'route', 'add', '224.0.0.0/4', 'dev', deviceIf).catch(() => undefined);
    }
  });

  it('a second device with the same deviceId is refused by the name probe, logged, and keeps running', async () => {
    const first = publish('TWIN-1', 'bonjour');
    await first.waitForJson((l) => l.msg === 'mdns: published', 5000);
    const second = spawnIn(pair().controller, [PUBLISH, '--device-id', 'TWIN-1', '--port', '8081', '--backend', 'bonjour']);
    const refused = await second.waitForJson((l) => /already in use on the network/.test(String(l.msg)), 6000);
    assert.equal(refused.level, 50);
    await second.waitForJson((l) => l.event === 'started', 5000);
    await stopCleanly(second);
    await stopCleanly(first);
  });

  describe('next to a real avahi-daemon on the device', () => {
    let avahi: AvahiInNs | undefined;

    before(async () => {
      const tools = await findAvahiTools();
      assert.ok(tools.ok, `missing ${tools.ok ? '' : tools.missing}: apt-get install ${AVAHI_PACKAGES}`);
      avahi = await startAvahi(pair().device, pair().deviceIf, path.join(dir, 'avahi'));
    });
    after(async () => {
      await avahi?.stop();
    });

    it('the bonjour advertisement and avahi-daemon own service are both discovered (the two stacks share UDP 5353)', async () => {
      const browser = await browse(['up:multiCam-BOTH-1', `up:${AVAHI_SIDE_SERVICE.name}`]);
      const device = publish('BOTH-1', 'bonjour');
      const ours = await browser.waitForJson(isUp('multiCam-BOTH-1'), 8000);
      const theirs = await browser.waitForJson(isUp(AVAHI_SIDE_SERVICE.name), 8000);
      assert.deepEqual([ours.port, ours.ipv4, ours.txt], [8080, pair().deviceIp, { deviceId: 'BOTH-1' }]);
      assert.deepEqual(
        [theirs.port, theirs.ipv4, theirs.txt],
        [AVAHI_SIDE_SERVICE.port, pair().deviceIp, { deviceId: AVAHI_SIDE_SERVICE.deviceId }],
      );
      await stopCleanly(device);
      assert.ok(!avahi?.daemon.lines.some((l) => /conflict/i.test(l)), 'avahi saw no host name conflict');
    });

    it('auto publishes through avahi-daemon when it runs, and stop() withdraws the service', async () => {
      const name = 'multiCam-VIA-AVAHI';
      const browser = await browse([`up:${name}`, `down:${name}`]);
      const device = publish('VIA-AVAHI', 'auto', [], avahi?.mounts);
      assert.equal((await device.waitForJson((l) => l.event === 'started', 8000)).backend, 'avahi');
      const up = await browser.waitForJson(isUp(name), 8000);
      assert.deepEqual([up.port, up.ipv4, up.txt], [8080, pair().deviceIp, { deviceId: 'VIA-AVAHI' }]);
      assert.ok(device.json().some((l) => l.msg === 'mdns: published via avahi'));
      await stopCleanly(device);
      await browser.waitForJson(isDown(name), 3000);
      const pids = execFileSync('ip', ['netns', 'pids', pair().device]).toString();
      for (const pid of pids.split('\n').filter((s) => s !== '')) {
        const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
        assert.notEqual(comm, 'avahi-publish', 'no avahi-publish is left running');
      }
    });

    it('the avahi backend publishes again after avahi-daemon restarts', async () => {
      const name = 'multiCam-RESTART-1';
      const device = publish('RESTART-1', 'avahi', [], avahi?.mounts);
      await device.waitForJson((l) => l.msg === 'mdns: published via avahi', 8000);
      await avahi?.restartDaemon();
      await device.waitForJson((l) => l.msg === 'mdns: avahi-publish exited; restarting', 5000);
      const browser = await browse([`up:${name}`]);
      const up = await browser.waitForJson(isUp(name), 10_000);
      assert.deepEqual([up.port, up.ipv4], [8080, pair().deviceIp]);
      await stopCleanly(device);
    });

    it('a bonjour advertiser facing an avahi-daemon that disallows other stacks logs why and keeps running', async () => {
      await avahi?.stop();
      avahi = await startAvahi(pair().device, pair().deviceIf, path.join(dir, 'avahi-exclusive'), { disallowOtherStacks: true });
      const device = publish('EXCLUSIVE-1', 'bonjour');
      const error = await device.waitForJson((l) => /cannot use UDP 5353/.test(String(l.msg)), 5000);
      assert.equal(error.level, 50);
      await device.waitForJson((l) => l.event === 'started', 5000);
      assert.equal(device.child.exitCode, null, 'the device process is still running');
      await stopCleanly(device);
    });
  });
});
