/**
 * A Debian trixie arm64 root file system run through qemu-user (binfmt_misc): built once with
 * mmdebstrap and cached as a tarball, unpacked per test into a temp folder, entered with chroot.
 * Used by the install test and the arm64 footprint bench. Needs root, mmdebstrap and qemu-user-static.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';

/** Where the built base roots are kept between runs. */
export const CACHE_DIR = process.env.ARENACAM_TEST_CACHE ?? '/var/cache/arenacam-test';
/** Debian mirror: the only archive the test machines reach. */
export const MIRROR = 'http://deb.debian.org/debian';
/** What a Raspberry Pi OS Lite already has before arenacam (on top of mmdebstrap's minbase). */
export const BASE_PACKAGES = ['systemd', 'systemd-sysv', 'udev', 'dbus', 'sudo', 'ca-certificates', 'procps', 'iproute2'];
const BINFMT = '/proc/sys/fs/binfmt_misc';
const QEMU = '/usr/bin/qemu-aarch64-static';
const HOST_CA = process.env.NODE_EXTRA_CA_CERTS;
const ROOT_CA = '/etc/ssl/certs/arenacam-test-host-ca.pem';

const which = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/**
 * Mount binfmt_misc if needed and make sure arm64 ELF files run through qemu-aarch64-static with
 * the F (fix binary) flag, so they also run inside a chroot. Returns why it cannot, or null.
 */
export function ensureQemuBinfmt(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (mount, chroot, mmdebstrap)';
  if (!which('mmdebstrap')) return 'mmdebstrap is not installed (bash scripts/setup.sh --test)';
  if (!existsSync(QEMU)) return `${QEMU} is missing (apt-get install qemu-user-static)`;
  try {
    if (!existsSync(join(BINFMT, 'status'))) execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', BINFMT], { stdio: 'pipe' });
  } catch (err) {
    return `cannot mount binfmt_misc: ${(err as Error).message.split('\n')[0]}`;
  }
  const entry = join(BINFMT, 'qemu-aarch64');
  if (!existsSync(entry)) {
    try {
      if (which('update-binfmts')) execFileSync('update-binfmts', ['--enable', 'qemu-aarch64'], { stdio: 'pipe' });
    } catch {
      /* fall through to registering it by hand */
    }
  }
  if (!existsSync(entry)) {
    const magic = '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00';
    const mask = '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff';
    try {
      writeFileSync(join(BINFMT, 'register'), `:qemu-aarch64:M::${magic}:${mask}:${QEMU}:F`);
    } catch (err) {
      return `cannot register qemu-aarch64 with binfmt_misc: ${(err as Error).message}`;
    }
  }
  const text = readFileSync(entry, 'utf8');
  if (!/^enabled/m.test(text)) return 'binfmt_misc qemu-aarch64 is registered but disabled';
  if (!/^flags:.*F/m.test(text)) return 'binfmt_misc qemu-aarch64 lacks the F flag (it would not run inside a chroot)';
  return null;
}

/** mmdebstrap arguments of the base root (also its cache key). */
function mmdebstrapArgs(out: string): string[] {
  return ['--skip=check/qemu', '--variant=minbase', '--arch=arm64', `--include=${BASE_PACKAGES.join(',')}`, 'trixie', out, MIRROR];
}

/** The cached base root tarball; built with mmdebstrap when missing (minutes). */
export function baseRootTar(log: (m: string) => void = () => undefined): { path: string; buildSec: number | null } {
  const key = createHash('sha256').update(JSON.stringify(mmdebstrapArgs(''))).digest('hex').slice(0, 12);
  const path = join(CACHE_DIR, `trixie-arm64-${key}.tar`);
  if (existsSync(path)) return { path, buildSec: null };
  mkdirSync(CACHE_DIR, { recursive: true });
  const partial = `${path}.partial.tar`;
  log(`building the arm64 base root with mmdebstrap into ${path}`);
  const t0 = Date.now();
  try {
    execFileSync('mmdebstrap', mmdebstrapArgs(partial), { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    rmSync(partial, { force: true });
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`mmdebstrap failed: ${e.stderr?.toString().slice(-3000) ?? e.message}`);
  }
  renameSync(partial, path);
  return { path, buildSec: Math.round((Date.now() - t0) / 1000) };
}

/** Result of a command run inside the root. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((m) => m === dir || m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

/** An unpacked arm64 root with /proc, /sys and /dev mounted; `destroy()` undoes everything. */
export class Arm64Root {
  private constructor(readonly dir: string) {}

  /** Unpack `tar` into a new temp folder and prepare it for chroot (mounts, resolv.conf, policy-rc.d). */
  static async create(tar: string): Promise<Arm64Root> {
    const dir = await mkdtemp('/var/tmp/arenacam-arm64-root-');
    const root = new Arm64Root(dir);
    try {
      execFileSync('tar', ['-C', dir, '--numeric-owner', '-xpf', tar], { stdio: 'pipe' });
      execFileSync('mount', ['-t', 'proc', 'proc', join(dir, 'proc')], { stdio: 'pipe' });
      execFileSync('mount', ['-t', 'sysfs', '-o', 'ro,nosuid,nodev,noexec', 'sysfs', join(dir, 'sys')], { stdio: 'pipe' });
      execFileSync('mount', ['--bind', '/dev', join(dir, 'dev')], { stdio: 'pipe' });
      rmSync(join(dir, 'etc/resolv.conf'), { force: true });
      writeFileSync(join(dir, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
      // Faster package installs under emulation (test roots only): no fsync per file, no translations.
      writeFileSync(join(dir, 'etc/dpkg/dpkg.cfg.d/arenacam-test'), 'force-unsafe-io\n');
      writeFileSync(join(dir, 'etc/apt/apt.conf.d/99arenacam-test'), 'Acquire::Languages "none";\n');
      // A TLS-inspecting proxy's CA that this host trusts through NODE_EXTRA_CA_CERTS: node and npm in the root need it too.
      if (HOST_CA && existsSync(HOST_CA)) writeFileSync(join(dir, ROOT_CA.slice(1)), readFileSync(HOST_CA));
      // No service may start in the root (chronyd there would steer this machine's clock).
      writeFileSync(join(dir, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    } catch (err) {
      root.destroy();
      throw err;
    }
    return root;
  }

  /** Host path of a path inside the root. */
  path(inside: string): string {
    return join(this.dir, inside);
  }

  /** Bind-mount a host folder (created if missing) at `inside` (e.g. a download cache). */
  bind(hostDir: string, inside: string): void {
    mkdirSync(hostDir, { recursive: true });
    mkdirSync(this.path(inside), { recursive: true });
    execFileSync('mount', ['--bind', hostDir, this.path(inside)], { stdio: 'pipe' });
  }

  /** Start `argv` inside the root in its own process group, with a clean environment plus `env`. */
  spawn(argv: string[], env: Record<string, string> = {}): ChildProcess {
    const base: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root' };
    if (existsSync(this.path(ROOT_CA))) base.NODE_EXTRA_CA_CERTS = ROOT_CA;
    return spawn('chroot', [this.dir, ...argv], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  }

  /** Start `argv` inside the root as `user` (uid, gid and the user's groups from the root's files). */
  spawnAs(user: string, argv: string[], env: Record<string, string> = {}): ChildProcess {
    return this.spawn(['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', ...argv], env);
  }

  /** Unmount what `bind` mounted at `inside`. */
  unbind(inside: string): void {
    execFileSync('umount', [this.path(inside)], { stdio: 'pipe' });
  }

  /** Save the root (without /proc, /sys, /dev and other mounts) as a tarball, atomically. */
  saveTar(path: string): void {
    const partial = `${path}.partial.tar`;
    try {
      execFileSync('tar', ['-C', this.dir, '--one-file-system', '--numeric-owner', '-cpf', partial, '.'], { stdio: 'pipe' });
      renameSync(partial, path);
    } finally {
      rmSync(partial, { force: true });
    }
  }

  /** Run `argv` inside the root to completion; killed (whole group) after `timeoutMs`. */
  run(argv: string[], opts: { env?: Record<string, string>; timeoutMs?: number; onOutput?: (chunk: string) => void } = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(argv, opts.env);
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (c: string) => ((stdout += c), opts.onOutput?.(c)));
      child.stderr!.setEncoding('utf8').on('data', (c: string) => ((stderr += c), opts.onOutput?.(c)));
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
        stderr += `\n[killed after ${opts.timeoutMs} ms]`;
      }, opts.timeoutMs ?? 30 * 60_000);
      child.on('error', (err) => (clearTimeout(timer), reject(err)));
      child.on('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
    });
  }

  /** Pids of processes whose root is this root (apt's helpers, a started unit, ffmpeg...). */
  processes(): number[] {
    const out: number[] = [];
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const r = readlinkSync(`/proc/${name}/root`);
        if (r === this.dir || r.startsWith(this.dir + '/')) out.push(Number(name));
      } catch {
        /* gone or not ours to read */
      }
    }
    return out;
  }

  /** SIGKILL every process inside the root and wait until they are gone. */
  killAll(): void {
    for (let round = 0; round < 50; round++) {
      const pids = this.processes();
      if (!pids.length) return;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      execFileSync('sleep', ['0.1']);
    }
    throw new Error(`processes still running in ${this.dir}: ${this.processes().join(' ')}`);
  }

  /** Kill what runs inside, unmount everything under the root, then delete it (never across a mount). */
  destroy(): void {
    this.killAll();
    for (const m of mountsUnder(this.dir)) {
      try {
        execFileSync('umount', [m], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', m], { stdio: 'pipe' });
      }
    }
    const left = mountsUnder(this.dir);
    if (left.length) throw new Error(`still mounted, ${this.dir} is left in place: ${left.join(' ')}`);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
