/**
 * systemd/arenacam.service under a real systemd (PID 1 of a throw-away container, test/systemd/box.sh):
 * Type=notify start through the systemd-notify child, watchdog pings accepted by PID 1, the
 * sandbox as the app sees it, an orderly stop that finishes a recording, and a restart by the
 * watchdog when capture is gone. Needs root, util-linux unshare/nsenter, overlayfs and cgroup2;
 * skipped on a host whose PID 1 is systemd (its cgroup tree is not ours to write into).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { findExecutable } from '../helpers/chronyd.js';
import { tempDir, waitFor } from '../helpers/device.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const BOX = join(REPO, 'test', 'systemd', 'box.sh');

/** Where cgroup2 is mounted on this host, or null. */
function cgroup2Mount(): string | null {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (right?.startsWith('cgroup2 ')) return left.split(' ')[4];
  }
  return null;
}

function skipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, mounts, a systemd PID 1)';
  if (readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd') return 'the host runs systemd: its cgroup tree is not ours to write into';
  for (const bin of ['unshare', 'nsenter', 'chroot', 'useradd', 'groupadd', 'setpriv', 'ip']) if (!findExecutable(bin)) return `${bin} is not installed`;
  if (!existsSync('/lib/systemd/systemd')) return 'systemd is not installed';
  if (!existsSync(join(REPO, 'dist', 'src', 'cli.js'))) return 'no build in dist/';
  if (cgroup2Mount() === null) return 'no cgroup2 mount';
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'no overlayfs';
  return null;
}

const skip = skipReason() ?? false;

const CONFIG = (camera: string) => `dataDir: /var/lib/arenacam
log: { level: info }
multicam: { host: 127.0.0.1, port: 8080 }
http: { host: 127.0.0.1, port: 9000 }
mdns: { enabled: false }
camera: ${camera}
encoder: { codec: libx264, bitrateKbps: 500, preset: ultrafast }
clock: { source: system }
storage: { minFreeMB: 1 }
systemd: { captureGraceMs: 2000 }
`;

describe('arenacam.service under a real systemd', { skip }, () => {
  let tmp: { dir: string; cleanup(): Promise<void> };
  let unshare: ChildProcess | null = null;
  let unshareExit: Promise<void> = Promise.resolve();
  let pid1 = 0;
  let cgroup = '';
  let out = '';

  const box = (...cmd: string[]) =>
    execa('nsenter', ['-t', String(pid1), '-m', '-p', '-n', '-u', '-i', '-C', '-r', '-w', '--', ...cmd], { reject: false, timeout: 30000 });
  const show = async (...props: string[]) => {
    const r = await box('systemctl', 'show', 'arenacam', ...props.map((p) => `-p${p}`));
    return Object.fromEntries(r.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  };
  const appLog = async () => (await box('cat', '/var/log/arenacam-box.log')).stdout;
  const diag = async () => {
    const journal = (await box('journalctl', '--no-pager', '-o', 'short-monotonic', '-n', '60')).stdout;
    return `app log:\n${(await appLog()).slice(-3000)}\njournal:\n${journal.slice(-4000)}\nbox:\n${out}`;
  };

  before(async () => {
    tmp = await tempDir('arenacam-systemd-box-');
    const files = join(tmp.dir, 'files');
    const units = join(files, 'etc/systemd/system');
    await mkdir(join(units, 'arenacam.service.d'), { recursive: true });
    await mkdir(join(files, 'etc/arenacam'), { recursive: true });
    await writeFile(join(units, 'arenacam.service'), readFileSync(join(REPO, 'systemd', 'arenacam.service')));
    // Only what this test needs changed: no boot-time dependencies, a log file instead of the
    // journal, a short watchdog (pings every 2 s) so a restart takes seconds.
    const node = existsSync('/usr/bin/node') ? '' : `ExecStart=\nExecStart=${process.execPath} --max-semi-space-size=2 /opt/arenacam/dist/src/cli.js serve --config /etc/arenacam/arenacam.yaml\n`;
    await writeFile(
      join(units, 'arenacam.service.d', 'box.conf'),
      `[Unit]\nDefaultDependencies=no\n[Service]\nStandardOutput=append:/var/log/arenacam-box.log\nStandardError=inherit\nWatchdogSec=4\n${node}`,
    );
    await writeFile(join(units, 'box.target'), '[Unit]\nDescription=test box\nWants=systemd-journald.socket arenacam.service\n');
    await writeFile(join(files, 'etc/arenacam/arenacam.yaml'), CONFIG('{ source: testsrc, width: 320, height: 240, fps: 15 }'));
    cgroup = join(cgroup2Mount()!, `arenacam-test-${process.pid}`);
    await mkdir(cgroup);
    unshare = spawn('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec unshare --mount --pid --fork --net --uts --ipc --cgroup sh ${BOX} ${tmp.dir} ${REPO}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    unshare.stdout!.on('data', (b) => (out += b));
    unshare.stderr!.on('data', (b) => (out += b));
    unshareExit = new Promise((r) => unshare!.once('exit', () => r()));
    const shPid = unshare.pid!;
    pid1 = await waitFor(
      () => {
        const kids = readFileSync(`/proc/${shPid}/task/${shPid}/children`, 'utf8').trim();
        return kids === '' ? 0 : Number(kids.split(' ')[0]);
      },
      10000,
      'the container',
    );
    await waitFor(async () => (await box('systemctl', 'is-system-running')).stdout.trim() !== '', 20000, 'systemd in the container');
  });

  after(async () => {
    if (pid1 > 0) process.kill(pid1, 'SIGKILL'); // PID 1 gone: the kernel ends the whole container
    await unshareExit;
    // Empty cgroups left behind by the container's systemd, deepest first.
    const rmTree = (dir: string) => {
      if (!existsSync(dir)) return;
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(dir, e.name));
      rmdirSync(dir);
    };
    if (cgroup) rmTree(cgroup);
    await tmp?.cleanup();
  });

  it('becomes active through READY=1 from systemd-notify, and PID 1 takes the watchdog pings', async () => {
    await waitFor(async () => (await show('ActiveState')).ActiveState === 'active', 60000, 'arenacam active').catch(async (e) => assert.fail(`${e}\n${await diag()}`));
    const s = await waitFor(async () => {
      const v = await show('StatusText', 'WatchdogTimestampMonotonic', 'MainPID');
      return v.StatusText.endsWith('capture running') ? v : null;
    }, 20000, 'STATUS= capture running');
    assert.match(s.StatusText, /^MultiCam :8080, HTTP :9000; capture running$/);
    const first = Number(s.WatchdogTimestampMonotonic);
    await waitFor(async () => Number((await show('WatchdogTimestampMonotonic')).WatchdogTimestampMonotonic) > first, 8000, 'a later watchdog ping');
    assert.equal((await show('NRestarts')).NRestarts, '0', await diag());
  });

  it('runs sandboxed: as arenacam in video and gpio, read-only system, writable data folder', async () => {
    const pid = (await show('MainPID')).MainPID;
    const status = (await box('cat', `/proc/${pid}/status`)).stdout;
    const ids = (await box('sh', '-c', 'id -u arenacam; getent group video | cut -d: -f3; getent group gpio | cut -d: -f3')).stdout.split('\n');
    assert.equal(/^Uid:\s+(\d+)/m.exec(status)?.[1], ids[0]);
    const groups = /^Groups:\s*(.*)$/m.exec(status)?.[1].trim().split(/\s+/) ?? [];
    assert.ok(groups.includes(ids[1]) && groups.includes(ids[2]), `groups ${groups.join(' ')} hold video ${ids[1]} and gpio ${ids[2]}`);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(status, /^CapBnd:\s+0+$/m);
    const mounts = new Map<string, string>();
    for (const l of (await box('cat', `/proc/${pid}/mountinfo`)).stdout.split('\n')) {
      const f = l.split(' ');
      if (f.length > 5) mounts.set(f[4], f[5]);
    }
    const ro = (p: string) => mounts.get(p)?.split(',').includes('ro');
    assert.equal(ro('/'), true, 'ProtectSystem=strict');
    assert.equal(ro('/var/lib/arenacam'), false, 'StateDirectory is writable');
    assert.equal(ro('/sys'), true, 'ProtectKernelTunables');
    assert.equal(ro('/proc/sys'), true, 'ProtectKernelTunables');
    if (existsSync('/sys/devices/platform')) assert.equal(ro('/sys/devices/platform'), false, 'GPIO attributes stay writable');
  });

  it('stops in order on systemctl stop: the running recording is finished, nothing is left', async () => {
    const start = await box('/usr/bin/env', `PATH=${process.env.PATH}`, process.execPath, '/opt/arenacam/dist/src/cli.js', 'record', 'start', '127.0.0.1:8080');
    assert.match(start.stdout, /"status":"recording"/, start.stdout + start.stderr);
    await new Promise((r) => setTimeout(r, 3000));
    const cg = (await show('ControlGroup')).ControlGroup;
    const pids = (await box('cat', `/sys/fs/cgroup${cg}/cgroup.procs`)).stdout.split('\n').filter(Boolean);
    assert.ok(pids.length >= 2, `node and ffmpeg in ${cg}: ${pids.join(' ')}`);
    const stop = await box('systemctl', 'stop', 'arenacam');
    assert.equal(stop.exitCode, 0, stop.stderr);
    const s = await show('Result', 'ExecMainStatus', 'ActiveState');
    assert.deepEqual(s, { Result: 'success', ExecMainStatus: '0', ActiveState: 'inactive' }, await diag());
    const log = await appLog();
    assert.match(log, /"msg":"recording finished"/);
    assert.doesNotMatch(log, /capture failed; restarting/, 'ffmpeg was stopped by the app, not killed under it');
    const files = (await box('ls', '/var/lib/arenacam/recordings')).stdout;
    assert.match(files, /video_\d+\.mp4/);
    const left = (await box('sh', '-c', pids.map((p) => `test -e /proc/${p} && echo ${p}`).join('; ') + '; true')).stdout.trim();
    assert.equal(left, '', 'no process of the unit outlives it');
  });

  it('is restarted by the watchdog when capture stays down longer than captureGraceMs', async () => {
    await box('sh', '-c', `cat > /etc/arenacam/arenacam.yaml <<'EOF'\n${CONFIG('{ source: v4l2, device: /dev/video99, width: 320, height: 240, fps: 15 }')}EOF`);
    assert.equal((await box('systemctl', 'start', 'arenacam')).exitCode, 0);
    await waitFor(async () => (await show('Result')).Result === 'watchdog', 30000, 'a watchdog timeout', 100).catch(async (e) => assert.fail(`${e}\n${await diag()}`));
    await waitFor(async () => {
      const v = await show('NRestarts', 'ActiveState');
      return Number(v.NRestarts) >= 1 && v.ActiveState === 'active';
    }, 30000, 'the restarted unit');
    const log = await appLog();
    const down = log.indexOf('watchdog pings stop, systemd will restart the unit');
    const term = log.indexOf('"signal":"SIGTERM"', down);
    assert.ok(down > 0 && term > down, 'pings stopped, then systemd sent WatchdogSignal=SIGTERM');
    assert.ok(log.indexOf('"msg":"arenacam stopped"', term) > term, 'and the app stopped in order');
  });
});
