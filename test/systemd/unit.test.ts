/** systemd/arenacam.service: `systemd-analyze verify` finds nothing to say, and the unit keeps what the code relies on. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { findExecutable } from '../helpers/chronyd.js';
import { tempDir } from '../helpers/device.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const UNIT_FILE = join(REPO, 'systemd', 'arenacam.service');
const INSTALL_DIR = '/opt/arenacam/';
const analyze = findExecutable('systemd-analyze');

/** Key → values (in order) of one section; continuation lines are not used in our unit. */
function section(text: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let inside = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('[')) {
      inside = line === `[${name}]`;
      continue;
    }
    if (!inside) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

/**
 * Run `systemd-analyze verify` on `text` saved as arenacam.service in `dir`; returns the output
 * lines that concern our unit (verify also reports on units it pulls in, which are not ours).
 */
async function verify(dir: string, text: string): Promise<{ exitCode: number | undefined; ours: string[]; all: string }> {
  const file = join(dir, 'arenacam.service');
  await writeFile(file, text);
  const r = await execa(analyze!, ['verify', '--man=no', file], { reject: false, cwd: dir, env: { SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: 'cat' } });
  const all = `${r.stdout}\n${r.stderr}`;
  const ours = all.split('\n').filter((l) => l.includes('arenacam.service') || l.includes(file));
  return { exitCode: r.exitCode, ours, all };
}

/** The unit as it would run from this checkout: node is this Node, the app is this build. */
function localised(text: string): string {
  const exec = section(text, 'Service').get('ExecStart')?.[0] ?? '';
  const [bin] = exec.split(' ');
  return text
    .replace(`ExecStart=${bin} `, `ExecStart=${process.execPath} `)
    .replaceAll(INSTALL_DIR, REPO.endsWith('/') ? REPO : `${REPO}/`);
}

describe('systemd/arenacam.service', () => {
  const text = readFileSync(UNIT_FILE, 'utf8');
  const service = section(text, 'Service');
  const unit = section(text, 'Unit');
  let tmp: { dir: string; cleanup(): Promise<void> };
  before(async () => {
    tmp = await tempDir('arenacam-unit-');
  });
  after(async () => {
    await tmp?.cleanup();
  });

  it('passes systemd-analyze verify without a single remark about it', { skip: analyze === null ? 'systemd-analyze is not installed' : false }, async () => {
    const r = await verify(tmp.dir, localised(text));
    assert.deepEqual(r.ours, [], r.all);
    assert.equal(r.exitCode, 0, r.all);
  });

  it('would notice a mistake (the check itself works)', { skip: analyze === null ? 'systemd-analyze is not installed' : false }, async () => {
    const typo = await verify(tmp.dir, localised(text).replace('WatchdogSec=', 'WatchdogSecs='));
    assert.equal(typo.exitCode, 0, 'an unknown key is only a warning for systemd');
    assert.ok(typo.ours.some((l) => l.includes("Unknown key 'WatchdogSecs'")), typo.all);
    const missing = await verify(tmp.dir, localised(text).replace(`ExecStart=${process.execPath} `, 'ExecStart=/nonexistent/node '));
    assert.ok(missing.ours.some((l) => l.includes('/nonexistent/node')), missing.all);
  });

  it('starts the installed build: ExecStart runs dist/src/cli.js serve with the installed config', () => {
    const exec = service.get('ExecStart') ?? [];
    assert.equal(exec.length, 1);
    const args = exec[0].split(' ');
    const script = args.find((a) => a.startsWith(INSTALL_DIR));
    assert.ok(script, exec[0]);
    assert.ok(existsSync(join(REPO, script.slice(INSTALL_DIR.length))), `${script} is not in this build`);
    assert.deepEqual(args.slice(args.indexOf(script) + 1), ['serve', '--config', '/etc/arenacam/arenacam.yaml']);
  });

  it('keeps the contract src/hw/sd-notify.ts and the capture supervisor rely on', () => {
    const one = (k: string) => {
      const v = service.get(k);
      assert.ok(v && v.length === 1, `${k}= set once`);
      return v[0];
    };
    assert.equal(one('Type'), 'notify');
    // Notifications come from a systemd-notify child, not the main PID.
    assert.equal(one('NotifyAccess'), 'all');
    assert.ok(Number(one('WatchdogSec')) >= 10, 'pings wait up to 5 s for PID 1: the interval must leave room');
    // ffmpeg must not outlive the service: only modes that SIGKILL the whole control group.
    assert.ok(['mixed', 'control-group'].includes(one('KillMode')));
    assert.notEqual(service.get('SendSIGKILL')?.[0], 'no');
    // V8's JIT maps W+X pages.
    assert.notEqual(one('MemoryDenyWriteExecute'), 'yes');
    // Starting must never wait for clock sync (scheduled starts are refused until synced instead).
    const after = (unit.get('After') ?? []).join(' ').split(/\s+/);
    assert.ok(!after.includes('time-sync.target') && !after.includes('chrony-wait.service'), after.join(' '));
  });
});
