/** The recordings catalog: the only files the network may read, by exact name. */
import { readdir, stat, unlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { AtomicFile, readJsonFile } from '../util/atomic.js';
import type { RecordingHandle, RecordingInfo } from './types.js';
import { OpenReaders } from '../util/open-readers.js';

const NAME_RE = /^video_\d{9,11}(?:_\d{1,4})?\.mp4$/;

/** True for names this device itself gives recordings (no separators, no dots but the extension). */
export function isRecordingName(name: string): boolean {
  return NAME_RE.test(name);
}

/** The catalog: recordings/ plus catalog.json with capture times, reconciled with the folder at load. */
export class RecordingsCatalog {
  private entries = new Map<string, RecordingInfo>();
  /** Transfers reading a recording; a removal waits for the last. */
  private readonly readers = new OpenReaders();
  private readonly index: AtomicFile;

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {
    this.index = new AtomicFile(join(dir, 'catalog.json'));
  }

  /** Load catalog.json and reconcile it with the files actually present. */
  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const saved = await readJsonFile<RecordingInfo[]>(this.index.path, []);
    const present = new Set((await readdir(this.dir)).filter(isRecordingName));
    this.entries.clear();
    for (const e of saved) {
      if (!present.has(e.fileName)) {
        this.log.warn({ fileName: e.fileName }, 'recording listed in the catalog is missing from disk; dropped from the list');
        continue;
      }
      const st = await stat(join(this.dir, e.fileName));
      this.entries.set(e.fileName, { ...e, fileSize: st.size });
    }
    for (const name of present) {
      if (this.entries.has(name)) continue;
      const st = await stat(join(this.dir, name));
      this.entries.set(name, {
        fileName: name,
        fileSize: st.size,
        creationDate: Number(/^video_(\d+)/.exec(name)?.[1] ?? st.mtimeMs / 1000),
        modificationDate: st.mtimeMs / 1000,
      });
      this.log.info({ fileName: name }, 'recording found on disk added to the catalog');
    }
    await this.save();
  }

  private async save(): Promise<void> {
    await this.index.save(() => JSON.stringify([...this.entries.values()], null, 1));
  }

  /** A unique file name for a recording whose first frame is at `firstFrameMs`. */
  uniqueName(firstFrameMs: number, taken: Set<string> = new Set()): string {
    const s = Math.floor(firstFrameMs / 1000);
    for (let i = 1; ; i++) {
      const name = i === 1 ? `video_${s}.mp4` : `video_${s}_${i}.mp4`;
      if (!this.entries.has(name) && !taken.has(name)) return name;
    }
  }

  /** Path of a catalog name (only call with names this catalog produced). */
  pathOf(name: string): string {
    return join(this.dir, name);
  }

  /** Record a finished file. */
  async add(info: RecordingInfo): Promise<void> {
    this.entries.set(info.fileName, info);
    await this.save();
  }

  /** All recordings, oldest first. */
  list(): RecordingInfo[] {
    return [...this.entries.values()].sort((a, b) => a.creationDate - b.creationDate);
  }

  /** Open a recording by exact catalog name; anything else (paths, unknown names) → null. */
  async open(fileName: string): Promise<RecordingHandle | null> {
    const info = this.entries.get(fileName);
    if (!info || !isRecordingName(fileName)) return null;
    const path = this.pathOf(fileName);
    const st = await stat(path).catch(() => null);
    if (!st) return null;
    return this.readers.handle(fileName, { path, fileName, size: st.size });
  }

  /** True while some transfer has the file open. */
  isOpen(fileName: string): boolean {
    return this.readers.isOpen(fileName);
  }

  /** True when `fileName` is in the catalog. */
  has(fileName: string): boolean {
    return this.entries.has(fileName);
  }

  /**
   * Remove a recording: it leaves the list at once (no new download can start), and the file is
   * deleted once every transfer already reading it has finished.
   */
  async remove(fileName: string): Promise<void> {
    if (!this.entries.has(fileName)) return;
    this.entries.delete(fileName);
    await this.save();
    await this.readers.whenClosed(fileName);
    await unlink(this.pathOf(fileName)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}
