/** Crash-safe small-file writes: write a temp file, fsync it, rename over, fsync the folder. */
import { open, rename, mkdir, readFile, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Write `data` to `path` atomically (readers see the old or the new content, never a torn one). */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  // A unique temp name: two writers of one file must never share (and rename away) a temp file.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    // A full disk must not also leave a temp file behind per failed save.
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** fsync a directory so a rename in it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } catch {
    /* some filesystems refuse fsync on directories; nothing more to do */
  } finally {
    await d.close();
  }
}

/** Read and parse a JSON file, or return `fallback` when it does not exist. */
export async function readJsonFile<T>(path: string, fallback: T): Promise<T> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * One state file saved atomically, one save at a time: saves never overlap, and each renders the
 * state as it is when its turn comes, so the newest state is always the last one written.
 */
export class AtomicFile {
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly mode = 0o644,
  ) {}

  /** Queue a save of `render()`; resolves when that save is on disk. */
  save(render: () => string | Buffer): Promise<void> {
    const p = this.chain.catch(() => undefined).then(() => writeFileAtomic(this.path, render(), this.mode));
    this.chain = p;
    return p;
  }
}
