/** Following ffmpeg's growing segment list (a CSV file) line by line. */
import { open, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';

/** Follow a growing text file, calling `onLine` for each complete line (watch + slow poll). */
export function tailCsv(path: string, onLine: (line: string) => void): { stop(): void } {
  let offset = 0;
  let partial = '';
  let busy = false;
  let again = false;
  let stopped = false;
  let current: Promise<void> = Promise.resolve();
  const read = (): Promise<void> => {
    if (busy) {
      again = true;
      return current;
    }
    busy = true;
    current = readAll().catch(() => undefined);
    return current;
  };
  const readAll = async (): Promise<void> => {
    try {
      do {
        again = false;
        const st = await stat(path).catch(() => null);
        if (!st || st.size <= offset) continue;
        const fh = await open(path, 'r');
        try {
          const buf = Buffer.alloc(st.size - offset);
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          offset += bytesRead;
          const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          for (const l of lines) if (l.trim() && !stopped) onLine(l);
        } finally {
          await fh.close();
        }
      } while (again);
    } finally {
      busy = false;
    }
  };
  let watcher: FSWatcher | null = null;
  const dir = path.slice(0, path.lastIndexOf('/'));
  const base = path.slice(path.lastIndexOf('/') + 1);
  try {
    watcher = watch(dir, (_ev, name) => {
      if (name === base) void read();
    });
    watcher.on('error', () => undefined);
  } catch {
    watcher = null;
  }
  const poll = setInterval(() => void read(), 500);
  poll.unref();
  return {
    stop: () => {
      // Let a read in progress finish, then take what ffmpeg wrote on its way out, then stop.
      void current
        .then(() => read())
        .finally(() => {
          stopped = true;
        });
      clearInterval(poll);
      watcher?.close();
    },
  };
}
