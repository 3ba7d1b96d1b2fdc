/**
 * scripts/install.sh in a Debian trixie arm64 root (mmdebstrap, run through qemu-user in a chroot,
 * without a running systemd, as in an SD image build): install, second run changes nothing, the
 * arm64 build answers MultiCam, --uninstall keeps the data, a second --uninstall is a no-op,
 * install again keeps the user's config, --purge, --dry-run.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, readdirSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Arm64Root, baseRootTar, ensureQemuBinfmt, CACHE_DIR } from '../helpers/arm64-root.js';
import { copyCheckout, elfMachine, fileInfo, installEnv, lastLines, snapshot, stepLines, usersOf } from './install-lib.js';
import { sendMultiCam } from '../../src/protocols/multicam/client.js';
import { waitFor } from '../helpers/device.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SRC_IN_ROOT = '/usr/local/src/arenacam';
const INSTALL = ['/bin/bash', `${SRC_IN_ROOT}/scripts/install.sh`];
const EM_AARCH64 = 0xb7;
/** Managed by install.sh: every file under these (type, mode, owner, mtime, content) is compared. */
const MANAGED = ['/opt/arenacam', '/etc/arenacam', '/etc/systemd/system', '/etc/chrony/conf.d', '/etc/udev/rules.d', '/boot/firmware',
  '/usr/local/bin', '/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow', '/var/lib/dpkg/status', '/usr/sbin/policy-rc.d'];
// A firmware config.txt ending in a conditional section: the arenacam block must apply to all boards.
const CONFIG_TXT = '# test input: a config.txt whose last section is conditional\ndtparam=audio=on\n[pi4]\narm_boost=1\n';

// Opt-in: under qemu-user every install runs apt, npm ci and tsc emulated (tens of minutes), which
// would take most of a CI run. `ARENACAM_INSTALL_TEST=1 npm test` (or npm run test:install) runs it.
const skip = process.env.ARENACAM_INSTALL_TEST === '1' ? ensureQemuBinfmt() : 'opt-in (tens of minutes under qemu-user): set ARENACAM_INSTALL_TEST=1';

describe('scripts/install.sh in a Debian trixie arm64 root (qemu-user, chroot, no systemd running)', { skip: skip ?? false, timeout: 90 * 60_000 }, () => {
  let root: Arm64Root;
  const log = (m: string): void => void process.stderr.write(`# install test: ${m}\n`);
  /** Whether a path exists inside the root (lstat: absolute symlinks there point into the root, not at this host). */
  const present = (p: string): boolean => fileInfo(root.path(p), new Map(), new Map()) !== null;
  const install = async (args: string[] = []) => {
    const t0 = Date.now();
    const r = await root.run([...INSTALL, ...args], { env: installEnv(), timeoutMs: 40 * 60_000 });
    log(`install.sh ${args.join(' ')} exited ${r.code} after ${Math.round((Date.now() - t0) / 1000)} s`);
    assert.equal(r.code, 0, `install.sh ${args.join(' ')} failed:\n${lastLines(r.stdout + '\n' + r.stderr, 60)}`);
    assert.deepEqual(root.processes(), [], 'install.sh left processes running in the root');
    return r.stdout;
  };

  before(async () => {
    const tar = baseRootTar(log);
    if (tar.buildSec !== null) log(`built the base root in ${tar.buildSec} s`);
    root = await Arm64Root.create(tar.path);
    root.bind(join(CACHE_DIR, 'apt-archives-arm64'), '/var/cache/apt/archives');
    root.bind(join(CACHE_DIR, 'npm-cache-arm64'), '/var/cache/arenacam-npm');
    copyCheckout(REPO, root.path(SRC_IN_ROOT));
    execFileSync('mkdir', ['-p', root.path('/boot/firmware')]);
    writeFileSync(root.path('/boot/firmware/config.txt'), CONFIG_TXT);
  });

  after(() => root?.destroy());

  it('installs packages, user, folders, app, config, unit, chrony drop-in, udev rule and the button pull-up', async () => {
    const out = await install();
    assert.match(out, /note: systemd is not running .*enabled only/);
    const dpkg = readFileSync(root.path('/var/lib/dpkg/status'), 'utf8');
    for (const p of ['nodejs', 'ffmpeg', 'chrony', 'v4l-utils']) assert.match(dpkg, new RegExp(`^Package: ${p}\\nStatus: install ok installed`, 'm'), p);

    const { users, groups } = usersOf(root.path('/'));
    const u = users.get('arenacam');
    assert.ok(u && u.uid < 1000, 'arenacam is a system user');
    assert.equal(u.home, '/var/lib/arenacam');
    assert.equal(u.shell, '/usr/sbin/nologin');
    for (const g of ['video', 'gpio']) assert.ok(groups.get(g)?.members.includes('arenacam'), `arenacam in ${g}`);

    const info = (p: string) => fileInfo(root.path(p), users, groups);
    assert.deepEqual(info('/opt/arenacam'), { type: 'dir', mode: '755', owner: 'root:root' });
    assert.deepEqual(info('/opt/arenacam/dist/src/cli.js'), { type: 'file', mode: '644', owner: 'root:root' });
    assert.deepEqual(info('/var/lib/arenacam'), { type: 'dir', mode: '750', owner: 'arenacam:arenacam' });
    assert.deepEqual(info('/etc/arenacam'), { type: 'dir', mode: '755', owner: 'root:root' });
    assert.deepEqual(info('/etc/arenacam/arenacam.yaml'), { type: 'file', mode: '640', owner: 'root:arenacam' });
    assert.deepEqual(info('/usr/local/bin/arenacam'), { type: 'file', mode: '755', owner: 'root:root' });
    assert.equal(readFileSync(root.path('/etc/arenacam/arenacam.yaml'), 'utf8'), readFileSync(root.path(`${SRC_IN_ROOT}/config/arenacam.yaml`), 'utf8'));
    assert.ok(!present('/opt/arenacam/node_modules/typescript'), 'dev dependencies are pruned');
    assert.equal(elfMachine(root.path('/opt/arenacam/node_modules/epoll/build/Release/epoll.node')), EM_AARCH64, "onoff's epoll is built for arm64");

    const unit = readFileSync(root.path(`${SRC_IN_ROOT}/systemd/arenacam.service`), 'utf8');
    assert.equal(readFileSync(root.path('/etc/systemd/system/arenacam.service'), 'utf8'), unit);
    const wantedBy = /^WantedBy=(\S+)/m.exec(unit)?.[1] ?? 'multi-user.target';
    assert.equal(readlinkSync(root.path(`/etc/systemd/system/${wantedBy}.wants/arenacam.service`)), '/etc/systemd/system/arenacam.service', `enabled: ${wantedBy}.wants link`);
    assert.equal(readFileSync(root.path('/etc/chrony/conf.d/arenacam.conf'), 'utf8'), readFileSync(root.path(`${SRC_IN_ROOT}/config/chrony/arenacam.conf`), 'utf8'));
    assert.match(readFileSync(root.path('/etc/udev/rules.d/60-arenacam-gpio.rules'), 'utf8'), /GROUP="gpio"/, 'plain Debian has no gpio rule: ours is installed');

    const txt = readFileSync(root.path('/boot/firmware/config.txt'), 'utf8');
    assert.ok(txt.startsWith(CONFIG_TXT), 'the existing config.txt lines are kept');
    assert.match(txt.slice(CONFIG_TXT.length), /^# arenacam begin.*\n\[all\]\ngpio=17=ip,pu\n# arenacam end\n$/);
  });

  it('the installed arm64 CLI reads /etc/arenacam/arenacam.yaml under qemu-user', async () => {
    assert.equal(elfMachine(root.path('/usr/bin/node')), EM_AARCH64, 'node in the root is an arm64 binary');
    for (const argv of [['/usr/bin/node', '/opt/arenacam/dist/src/cli.js', 'config', '--config', '/etc/arenacam/arenacam.yaml'], ['arenacam', 'config']]) {
      const r = await root.run(argv, { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      const cfg = JSON.parse(r.stdout);
      assert.equal(cfg.dataDir, '/var/lib/arenacam');
      assert.equal(cfg.camera.source, 'auto');
      assert.equal(cfg.encoder.codec, 'auto');
      assert.equal(cfg.clock.source, 'chrony');
      assert.equal(cfg.mdns.enabled, true);
      assert.equal(cfg.log.level, 'info');
    }
  });

  it('a second run changes nothing and says so for every step', async () => {
    const before = snapshot(root.dir, MANAGED);
    const out = await install();
    assert.deepEqual(snapshot(root.dir, MANAGED), before);
    const steps = stepLines(out);
    assert.ok(steps.length >= 10, out);
    for (const l of steps) assert.match(l, /nothing to do/, `a second run did something: ${l}`);
  });

  it('--ntp-server/--serve-ntp install what scripts/chrony-conf.sh renders, kept by a later run until --ntp-default', async () => {
    const dropin = root.path('/etc/chrony/conf.d/arenacam.conf');
    const opts = ['--ntp-server', '192.168.7.1', '--serve-ntp', '192.168.7.0/24'];
    const expected = execFileSync('sh', [root.path(`${SRC_IN_ROOT}/scripts/chrony-conf.sh`), ...opts], { encoding: 'utf8' });
    assert.match(expected, /^server 192\.168\.7\.1 .*\n[^]*^allow 192\.168\.7\.0\/24$/m);
    await install(opts);
    assert.equal(readFileSync(dropin, 'utf8'), expected);
    const again = await install();
    assert.equal(readFileSync(dropin, 'utf8'), expected, 'remembered without the options');
    assert.match(again, /chrony: .*nothing to do/);
    await install(['--ntp-default']);
    assert.equal(readFileSync(dropin, 'utf8'), readFileSync(root.path(`${SRC_IN_ROOT}/config/chrony/arenacam.conf`), 'utf8'));
  });

  it('the arm64 app runs as user arenacam in the root and answers DEVICE_STATUS over MultiCam', async () => {
    const cfg = {
      dataDir: '/var/lib/arenacam', log: { level: 'info' }, multicam: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 },
      mdns: { enabled: false }, camera: { source: 'testsrc', width: 320, height: 240, fps: 15 },
      encoder: { codec: 'libx264', preset: 'ultrafast', bitrateKbps: 500 }, clock: { source: 'system' }, gpio: { enabled: false }, storage: { minFreeMB: 1 },
    };
    writeFileSync(root.path('/tmp/arenacam-test.json'), JSON.stringify(cfg), { mode: 0o644 });
    const proc = root.spawnAs('arenacam', ['/usr/bin/node', '/opt/arenacam/dist/src/cli.js', 'serve', '--config', '/tmp/arenacam-test.json'], { HOME: '/var/lib/arenacam' });
    let out = '';
    proc.stdout!.on('data', (c) => (out += c));
    proc.stderr!.on('data', (c) => (out += c));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    try {
      const port = await waitFor(() => {
        if (proc.exitCode !== null) throw new Error(`the unit exited: ${out.slice(-2000)}`);
        return Number(/"multicamPort":(\d+).*"arenacam ready"/.exec(out)?.[1] ?? 0);
      }, 180_000, 'the arm64 unit to be ready');
      await waitFor(() => out.includes('"capture is running"'), 120_000, 'arm64 ffmpeg to write a segment');
      const reply = await sendMultiCam('127.0.0.1', port, { command: 'DEVICE_STATUS' });
      assert.equal(reply.status, 'ready', JSON.stringify(reply));
      assert.equal(reply.deviceId, readFileSync(root.path('/var/lib/arenacam/device-id'), 'utf8').trim());
      const { users, groups } = usersOf(root.path('/'));
      assert.equal(fileInfo(root.path('/var/lib/arenacam/device-id'), users, groups)?.owner.split(':')[0], 'arenacam', 'the unit ran as arenacam');
      process.kill(proc.pid!, 'SIGTERM');
      assert.equal(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 60_000))]), 0, out.slice(-2000));
    } finally {
      if (proc.exitCode === null) process.kill(-proc.pid!, 'SIGKILL');
      root.killAll();
    }
  });

  it('--uninstall removes the service, app and system files and keeps recordings and config', async () => {
    const data = readdirSync(root.path('/var/lib/arenacam'));
    await install(['--uninstall']);
    for (const p of ['/opt/arenacam', '/usr/local/bin/arenacam', '/etc/systemd/system/arenacam.service', '/etc/systemd/system/multi-user.target.wants/arenacam.service',
      '/etc/chrony/conf.d/arenacam.conf', '/etc/udev/rules.d/60-arenacam-gpio.rules']) assert.ok(!present(p), `${p} is removed`);
    assert.equal(readFileSync(root.path('/boot/firmware/config.txt'), 'utf8'), CONFIG_TXT);
    assert.deepEqual(readdirSync(root.path('/var/lib/arenacam')), data, 'the data folder is kept as it was');
    assert.ok(present('/etc/arenacam/arenacam.yaml'));
    assert.ok(usersOf(root.path('/')).users.has('arenacam'));
  });

  it('a second --uninstall is a no-op', async () => {
    const all = ['/opt', '/etc', '/var/lib/arenacam', '/boot/firmware', '/usr/local'];
    const before = snapshot(root.dir, all);
    const out = await install(['--uninstall']);
    assert.deepEqual(snapshot(root.dir, all), before);
    for (const l of stepLines(out)) assert.match(l, /nothing to do/, l);
  });

  it('installing again brings everything back and keeps the edited config', async () => {
    const conf = root.path('/etc/arenacam/arenacam.yaml');
    const edited = readFileSync(conf, 'utf8') + 'deviceType: "edited-by-user"\n';
    writeFileSync(conf, edited);
    const out = await install();
    assert.match(out, /arenacam\.yaml exists and is kept/);
    assert.equal(readFileSync(conf, 'utf8'), edited);
    assert.ok(present('/opt/arenacam/dist/src/cli.js'));
    assert.equal(readlinkSync(root.path('/etc/systemd/system/multi-user.target.wants/arenacam.service')), '/etc/systemd/system/arenacam.service');
  });

  it('--uninstall --purge also removes data, config, user and the gpio group it made; --dry-run then changes nothing', async () => {
    await install(['--uninstall', '--purge']);
    const { users, groups } = usersOf(root.path('/'));
    assert.ok(!users.has('arenacam') && !groups.has('arenacam') && !groups.has('gpio'));
    assert.ok(!present('/var/lib/arenacam') && !present('/etc/arenacam'));
    const all = ['/opt', '/etc', '/var/lib', '/boot/firmware', '/usr/local'];
    const before = snapshot(root.dir, all);
    const out = await install(['--dry-run']);
    assert.deepEqual(snapshot(root.dir, all), before);
    assert.match(out, /app: \(dry run, not done\) installed \/opt\/arenacam/);
    assert.match(out, /would run: useradd/);
  });
});
