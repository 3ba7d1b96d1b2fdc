/** Small helpers of the install test: copying the checkout, reading users/owners/ELF headers, snapshots of managed files. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, openSync, readSync, closeSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Files the install reads that other parts of the project provide. */
const PROVIDED = ['systemd/arenacam.service', 'config/chrony/arenacam.conf'];

/**
 * Copy the checkout's files (tracked and untracked-but-not-ignored, as they are in the working tree)
 * to `dest`: no node_modules, dist or data. A missing unit or chrony drop-in is an error, unless
 * ARENACAM_TEST_PLACEHOLDERS=1 (development only) puts placeholders into the copy.
 */
export function copyCheckout(repo: string, dest: string): void {
  const list = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8', maxBuffer: 32 << 20 })
    .split('\0')
    .filter((f) => f && existsSync(join(repo, f)));
  mkdirSync(dest, { recursive: true });
  execFileSync('sh', ['-c', `tar -C "$1" --null -T - -cf - | tar -C "$2" -xf -`, 'copy', repo, dest], { input: list.join('\0'), stdio: ['pipe', 'ignore', 'pipe'] });
  for (const f of PROVIDED) {
    if (existsSync(join(dest, f))) continue;
    if (process.env.ARENACAM_TEST_PLACEHOLDERS !== '1') throw new Error(`${f} is missing from the checkout (the install needs it)`);
    mkdirSync(join(dest, f, '..'), { recursive: true });
    const text = f.endsWith('.service')
      ? '[Unit]\nDescription=arenacam (placeholder)\n[Service]\nType=notify\nUser=arenacam\nExecStart=/usr/bin/node /opt/arenacam/dist/src/cli.js serve --config /etc/arenacam/arenacam.yaml\n[Install]\nWantedBy=multi-user.target\n'
      : '# placeholder chrony drop-in\n';
    execFileSync('sh', ['-c', 'cat > "$1"', 'write', join(dest, f)], { input: text });
  }
}

/** The environment install.sh gets in the root (a download cache for npm bind-mounted from the host). */
export function installEnv(): Record<string, string> {
  return { DEBIAN_FRONTEND: 'noninteractive', npm_config_cache: '/var/cache/arenacam-npm', HOME: '/root' };
}

/** ELF e_machine of a file (0xb7 = aarch64, 0x3e = x86-64); -1 when it is not an ELF file. */
export function elfMachine(path: string): number {
  const b = Buffer.alloc(20);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, b, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  return b.subarray(0, 4).toString('latin1') === '\x7fELF' ? b.readUInt16LE(18) : -1;
}

/** Users and groups of a root, from its /etc/passwd and /etc/group. */
export function usersOf(rootDir: string): {
  users: Map<string, { uid: number; gid: number; home: string; shell: string }>;
  groups: Map<string, { gid: number; members: string[] }>;
} {
  const users = new Map<string, { uid: number; gid: number; home: string; shell: string }>();
  for (const l of readFileSync(join(rootDir, 'etc/passwd'), 'utf8').split('\n').filter(Boolean)) {
    const [name, , uid, gid, , home, shell] = l.split(':');
    users.set(name, { uid: Number(uid), gid: Number(gid), home, shell });
  }
  const groups = new Map<string, { gid: number; members: string[] }>();
  for (const l of readFileSync(join(rootDir, 'etc/group'), 'utf8').split('\n').filter(Boolean)) {
    const [name, , gid, members] = l.split(':');
    groups.set(name, { gid: Number(gid), members: members ? members.split(',') : [] });
  }
  return { users, groups };
}

/** Type, octal mode and owner:group (names of the root) of a path; null when it does not exist. */
export function fileInfo(path: string, users: ReturnType<typeof usersOf>['users'], groups: ReturnType<typeof usersOf>['groups']): { type: string; mode: string; owner: string } | null {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return null;
  }
  const uname = [...users].find(([, u]) => u.uid === st.uid)?.[0] ?? String(st.uid);
  const gname = [...groups].find(([, g]) => g.gid === st.gid)?.[0] ?? String(st.gid);
  const type = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  return { type, mode: (st.mode & 0o7777).toString(8), owner: `${uname}:${gname}` };
}

/** Every entry under `paths` (inside `rootDir`): type, mode, owner, mtime and content hash or link target. */
export function snapshot(rootDir: string, paths: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    const abs = join(rootDir, rel);
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      out[rel] = 'missing';
      return;
    }
    const head = `${(st.mode & 0o177777).toString(8)} ${st.uid}:${st.gid} mtime=${st.mtimeMs}`;
    if (st.isSymbolicLink()) out[rel] = `${head} -> ${readlinkSync(abs)}`;
    else if (st.isDirectory()) {
      out[rel] = head;
      for (const n of readdirSync(abs).sort()) walk(`${rel}/${n}`);
    } else if (st.isFile()) out[rel] = `${head} sha256=${createHash('sha256').update(readFileSync(abs)).digest('hex')}`;
    else out[rel] = head;
  };
  for (const p of paths) walk(p);
  return out;
}

/** install.sh's step lines (not notes, not dry-run details). */
export function stepLines(out: string): string[] {
  return out.split('\n').filter((l) => l.startsWith('install: ') && !l.startsWith('install: note:') && !l.startsWith('install:  '));
}

/** The last `n` lines of a text. */
export function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join('\n');
}
