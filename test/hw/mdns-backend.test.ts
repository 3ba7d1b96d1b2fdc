/** Backend selection and avahi-publish supervision, without any network traffic. */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger, type Logger } from '../../src/log.js';
import { chooseBackend, createAdvertiser, type AvahiProbe } from '../../src/hw/mdns.js';
import { AvahiAdvertiser } from '../../src/hw/mdns-avahi.js';

type Entry = Record<string, unknown> & { level: number; msg: string };

function captureLog(): { log: Logger; entries: () => Entry[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
      done();
    },
  });
  return { log: createLogger('debug', sink), entries: () => lines.map((l) => JSON.parse(l) as Entry) };
}

function probe(socket: boolean, publish: string | null): AvahiProbe {
  return { avahiSocketExists: () => socket, findExecutable: (name) => (name === 'avahi-publish' ? publish : null) };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('mDNS backend selection', () => {
  it('auto picks avahi only when avahi-daemon runs and avahi-publish is installed', () => {
    assert.equal(chooseBackend('auto', probe(true, '/usr/bin/avahi-publish')).backend, 'avahi');
    assert.equal(chooseBackend('auto', probe(false, '/usr/bin/avahi-publish')).backend, 'bonjour');
    const noUtils = chooseBackend('auto', probe(true, null));
    assert.equal(noUtils.backend, 'bonjour');
    assert.equal(noUtils.degraded, true);
    assert.match(noUtils.reason, /avahi-utils/);
    assert.equal(chooseBackend('bonjour', probe(true, '/usr/bin/avahi-publish')).backend, 'bonjour');
    assert.equal(chooseBackend('avahi', probe(false, null)).backend, 'avahi');
  });

  it('the chosen backend and its reason are logged once, when the advertiser is built', () => {
    const { log, entries } = captureLog();
    const adv = createAdvertiser({ deviceId: 'A1', port: 8080, log, probe: probe(true, '/usr/bin/avahi-publish') });
    assert.equal(adv.backend, 'avahi');
    const chosen = entries().filter((e) => e.msg === 'mdns: backend chosen');
    assert.equal(chosen.length, 1);
    assert.equal(chosen[0].backend, 'avahi');
    assert.match(String(chosen[0].reason), /avahi-daemon is running/);
  });

  it('invalid options are rejected when the advertiser is built', () => {
    const { log } = captureLog();
    const p = probe(false, null);
    assert.throws(() => createAdvertiser({ deviceId: '', port: 8080, log, probe: p }), /deviceId/);
    assert.throws(() => createAdvertiser({ deviceId: 'A1', port: 0, log, probe: p }), /port/);
    assert.throws(() => createAdvertiser({ deviceId: 'x'.repeat(60), port: 8080, log, probe: p }), /63 bytes/);
  });

  it('a configured avahi backend without avahi-publish logs an error and start() still resolves', async () => {
    const { log, entries } = captureLog();
    const adv = createAdvertiser({ deviceId: 'A1', port: 8080, log, backend: 'avahi', probe: probe(false, null) });
    await adv.start();
    await adv.stop();
    const error = entries().find((e) => e.level === 50);
    assert.ok(error, 'an error is logged');
    assert.match(error.msg, /avahi-publish is not installed/);
  });
});

describe('avahi-publish supervision', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'arenacam-mdns-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fakePublish(name: string, body: string): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, `#!/bin/sh\n${body}\n`);
    await chmod(file, 0o755);
    return file;
  }

  const base = { name: 'multiCam-A1', serviceType: '_multicam._tcp', deviceId: 'A1', port: 8080 };

  it('start() resolves when avahi-publish reports the service established, and stop() ends its process group', async () => {
    const command = await fakePublish('ok.sh', `echo "Established under name '$2'" >&2\nexec sleep 30`);
    const { log, entries } = captureLog();
    const adv = new AvahiAdvertiser({ ...base, log, command });
    assert.deepEqual(adv.args(), ['-s', 'multiCam-A1', '_multicam._tcp', '8080', 'deviceId=A1']);
    const t0 = Date.now();
    await adv.start();
    assert.ok(Date.now() - t0 < 3000, 'start() did not wait for its timeout');
    const started = entries().find((e) => e.msg === 'mdns: avahi-publish started');
    const pid = Number(started?.pid);
    assert.ok(alive(pid));
    assert.ok(entries().some((e) => e.msg === 'mdns: published via avahi'));
    await adv.stop();
    assert.equal(alive(pid), false, 'avahi-publish is gone after stop()');
    assert.ok(entries().some((e) => e.msg === 'mdns: avahi-publish stopped (service withdrawn)'));
  });

  it('an avahi-publish that dies is logged with its exit code and stderr tail and started again', async () => {
    const command = await fakePublish('dies.sh', 'echo "Failed to create client object: Daemon not running" >&2\nexit 1');
    const { log, entries } = captureLog();
    const adv = new AvahiAdvertiser({ ...base, log, command, startTimeoutMs: 200, restartMinMs: 20, restartMaxMs: 40 });
    await adv.start();
    const deadline = Date.now() + 3000;
    while (entries().filter((e) => e.msg === 'mdns: avahi-publish exited; restarting').length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await adv.stop();
    const exits = entries().filter((e) => e.msg === 'mdns: avahi-publish exited; restarting');
    assert.ok(exits.length >= 3, `restarted ${exits.length} times`);
    assert.equal(exits[0].code, 1);
    assert.match(String(exits[0].stderrTail), /Daemon not running/);
    assert.ok(entries().some((e) => e.msg === 'mdns: avahi-publish reports a problem'));
  });

  it('an avahi-publish that cannot be executed is logged as an error and not retried', async () => {
    const { log, entries } = captureLog();
    const adv = new AvahiAdvertiser({ ...base, log, command: path.join(dir, 'missing'), restartMinMs: 10 });
    await adv.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await adv.stop();
    assert.ok(entries().some((e) => e.level === 50 && /cannot run avahi-publish/.test(e.msg)));
    assert.equal(entries().filter((e) => e.msg === 'mdns: avahi-publish started').length, 1);
  });
});
