/** Free space of the data folder's filesystem. */
import { statfs } from 'node:fs/promises';

/** Free/total bytes of the filesystem holding a path. */
export interface DiskSpace {
  usage(path: string): Promise<{ freeBytes: number; totalBytes: number }>;
}

/** The real filesystem, through statfs(2). */
export const statfsDisk: DiskSpace = {
  async usage(path) {
    const s = await statfs(path);
    return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  },
};
