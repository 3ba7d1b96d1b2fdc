/**
 * The chrony drop-in (config/chrony/arenacam.conf) and its renderer (scripts/chrony-conf.sh):
 * every variant parses in chronyd, bad arguments write nothing, and a unit rendered as the LAN
 * server really serves a unit rendered as its client, which then reads as synchronised.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { ChronyClockStatus } from '../../src/hw/chrony.js';
import type { ClockStatus } from '../../src/hw/clock-status.js';
import { chronydSkipReason, findExecutable, freeUdpPort } from '../helpers/chronyd.js';
import { tempDir } from '../helpers/device.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = join(REPO, 'scripts', 'chrony-conf.sh');
const SHIPPED = join(REPO, 'config', 'chrony', 'arenacam.conf');
const chronyd = findExecutable('chronyd');
const chronyc = findExecutable('chronyc') ?? 'chronyc';

const render = (...args: string[]) => execa('sh', [SCRIPT, ...args], { reject: false });
/** The directives of a config text (comments and blank lines dropped). */
const directives = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));

/** A Debian-like main chrony.conf in `dir` that reads the drop-in from dir/conf.d, plus `extra` lines. */
async function mainConf(dir: string, dropIn: string, extra: string[]): Promise<string> {
  await mkdir(join(dir, 'conf.d'), { recursive: true });
  await writeFile(join(dir, 'conf.d', 'arenacam.conf'), dropIn);
  const file = join(dir, 'chrony.conf');
  await writeFile(file, [`confdir ${join(dir, 'conf.d')}`, ...extra].join('\n') + '\n');
  return file;
}

describe('scripts/chrony-conf.sh', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('renders, without options, exactly the shipped config/chrony/arenacam.conf', async () => {
    const r = await render();
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout + '\n', readFileSync(SHIPPED, 'utf8'));
    assert.deepEqual(directives(r.stdout), ['makestep 1 3', 'rtcsync']);
  });

  it('renders the LAN client and the serving unit, alone and together', async () => {
    const client = await render('--ntp-server', 'coordinator.local');
    assert.deepEqual(directives(client.stdout).slice(2), ['server coordinator.local iburst prefer trust minpoll 4 maxpoll 6']);
    const port = await render('--ntp-server', '192.168.1.10', '--ntp-port', '1123');
    assert.deepEqual(directives(port.stdout).slice(2), ['server 192.168.1.10 port 1123 iburst prefer trust minpoll 4 maxpoll 6']);
    const both = await render('--ntp-server=fd00::1', '--serve-ntp', '192.168.1.0/24', '--serve-ntp=fd00::/8');
    assert.deepEqual(directives(both.stdout).slice(2), [
      'server fd00::1 iburst prefer trust minpoll 4 maxpoll 6',
      'allow 192.168.1.0/24',
      'allow fd00::/8',
      'local stratum 10',
    ]);
  });

  it('refuses bad arguments with exit code 2 and writes nothing', async () => {
    const tmp = await tempDir('arenacam-chrony-conf-');
    cleanups.push(tmp.cleanup);
    const out = join(tmp.dir, 'arenacam.conf');
    const bad: Array<[string[], RegExp]> = [
      [['--ntp-server', 'a..b'], /not a host name or IP address: a\.\.b/],
      [['--ntp-server', '300.1.1.1'], /not a host name or IP address/],
      [['--ntp-server', 'x\nallow all'], /not a host name or IP address/],
      [['--ntp-port', '123'], /--ntp-port needs --ntp-server/],
      [['--ntp-server', 'h', '--ntp-port', '70000'], /not a port number: 70000/],
      [['--serve-ntp', '10.0.0.0/33'], /not a subnet/],
      [['--serve-ntp', '10.0.0.0/8 all'], /not a subnet/],
      [['--bogus'], /unknown argument: --bogus/],
    ];
    for (const [args, message] of bad) {
      const r = await render(...args, '-o', out);
      assert.equal(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.deepEqual(await readdir(tmp.dir), [], 'no file, no temporary file');
    const ok = await render('--ntp-server', '10.0.0.1', '-o', out);
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.deepEqual(await readdir(tmp.dir), ['arenacam.conf']);
    assert.equal((await stat(out)).mode & 0o777, 0o644);
    assert.match(readFileSync(out, 'utf8'), /^server 10\.0\.0\.1 iburst prefer trust minpoll 4 maxpoll 6$/m);
  });

  it('gives configs chronyd parses when its chrony.conf includes them as Debian does', { skip: chronyd === null ? 'chronyd is not installed' : false }, async () => {
    const tmp = await tempDir('arenacam-chrony-parse-');
    cleanups.push(tmp.cleanup);
    const variants = [[], ['--ntp-server', '192.168.1.10'], ['--serve-ntp', '10.0.0.0/8'], ['--ntp-server', 'fd00::1', '--ntp-port', '1123', '--serve-ntp', 'all']];
    for (const [i, args] of variants.entries()) {
      const text = (await render(...args)).stdout;
      const file = await mainConf(join(tmp.dir, String(i)), text, ['pool 2.debian.pool.ntp.org iburst']);
      const r = await execa(chronyd!, ['-p', '-f', file], { reject: false });
      assert.equal(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
      // chronyd -p prints the configuration it read, the drop-in's directives included.
      for (const d of directives(text)) assert.ok(r.stdout.split('\n').includes(d), `${d} missing from:\n${r.stdout}`);
    }
    // And the check itself catches a broken drop-in.
    const broken = await mainConf(join(tmp.dir, 'broken'), 'makestep one three\n', []);
    assert.notEqual((await execa(chronyd!, ['-p', '-f', broken], { reject: false })).exitCode, 0);
  });
});

/** A chronyd (-x: never touches the system clock) with the rendered drop-in; resolves once chronyc gets answers. */
async function startRendered(dir: string, renderArgs: string[], extra: string[]): Promise<{ socket: string; log(): string; stop(): Promise<void> }> {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o700); // chronyd refuses a command-socket folder others can enter
  const socket = join(dir, 'chronyd.sock');
  const text = (await render(...renderArgs)).stdout;
  const conf = await mainConf(dir, text, [...extra, `bindcmdaddress ${socket}`, 'cmdport 0', `pidfile ${join(dir, 'chronyd.pid')}`, `driftfile ${join(dir, 'drift')}`]);
  const child = spawn(chronyd!, ['-4', '-x', '-d', '-u', userInfo().username, '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (b) => (log += b));
  child.stderr.on('data', (b) => (log += b));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  const end = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null || /Fatal error|Could not/i.test(log)) {
      await stop();
      throw new Error(`chronyd did not start:\n${log}`);
    }
    const r = await execa(chronyc, ['-h', socket, '-n', '-c', 'tracking'], { reject: false, timeout: 2000 });
    if (r.exitCode === 0) break;
    if (Date.now() > end) {
      await stop();
      throw new Error(`chronyd did not answer:\n${log}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  return { socket, log: () => log, stop };
}

describe('the rendered LAN variants with real chronyd on loopback', { skip: chronydSkipReason() ?? false }, () => {
  it('makes a unit rendered with --ntp-server synchronised to a unit rendered with --serve-ntp', async (t) => {
    const tmp = await tempDir('arenacam-chrony-lan-');
    const port = await freeUdpPort();
    const server = await startRendered(join(tmp.dir, 'server'), ['--serve-ntp', '127.0.0.1/32'], [`port ${port}`, 'bindaddress 127.0.0.1']);
    let client: Awaited<ReturnType<typeof startRendered>> | null = null;
    try {
      const t0 = Date.now();
      client = await startRendered(join(tmp.dir, 'client'), ['--ntp-server', '127.0.0.1', '--ntp-port', String(port)], ['port 0']);
      const reader = new ChronyClockStatus({ chronycPath: chronyc, socket: client.socket, maxOffsetMs: 10 });
      let s: ClockStatus;
      for (;;) {
        s = await reader.read();
        if (s.synchronised || Date.now() - t0 > 60000) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      t.diagnostic(`first sync after ${Date.now() - t0} ms (iburst, minpoll 4)`);
      assert.equal(s.synchronised, true, `${s.reason}\nclient:\n${client.log()}\nserver:\n${server.log()}`);
      assert.equal(s.refId, '127.0.0.1');
      assert.equal(s.stratum, 11, 'one below the serving unit\'s local stratum 10');
      // The serving unit itself, without a source of its own, is on its local clock: not a time
      // source for an ordinary unit, but the arena's reference when it is the time master.
      const own = await new ChronyClockStatus({ chronycPath: chronyc, socket: server.socket, maxOffsetMs: 10 }).read();
      assert.equal(own.synchronised, false);
      assert.match(own.reason ?? '', /^chrony reference is the local clock/);
      assert.equal(own.stratum, 10);
      const master = await new ChronyClockStatus({ chronycPath: chronyc, socket: server.socket, maxOffsetMs: 10, timeMaster: true }).read();
      assert.equal(master.synchronised, true, master.reason ?? '');
      assert.match(master.reason ?? '', /^time master: /);
      // timeMaster does not make a clock without any reference synchronised.
      const lost = await new ChronyClockStatus({ chronycPath: chronyc, socket: join(tmp.dir, 'no-such-socket'), maxOffsetMs: 10, timeMaster: true }).read();
      assert.equal(lost.synchronised, false);
    } finally {
      await client?.stop();
      await server.stop();
      await tmp.cleanup();
    }
  });
});
