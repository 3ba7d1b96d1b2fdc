/** Per-device identity, made on the device the first time it runs and kept in the data folder. */
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';

/** The configured id, or the one kept in dataDir/device-id, or a new one (then kept). */
export async function resolveDeviceId(configured: string | null, dataDir: string): Promise<string> {
  if (configured) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(configured)) {
      throw new Error('config deviceId: use letters, digits, "-" and "_" only (at most 63 characters)');
    }
    return configured;
  }
  const file = join(dataDir, 'device-id');
  const kept = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (kept) return kept;
  const id = `arenacam-${randomBytes(4).toString('hex')}`;
  await writeFileAtomic(file, `${id}\n`);
  return id;
}
