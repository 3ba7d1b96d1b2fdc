/** The shared Raspberry Pi command-output fixtures (../shared/fixtures/pi, see SOURCES.md there). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fixture folder: $ARENACAM_PI_FIXTURES, or ../shared/fixtures/pi beside the repository. */
export function piFixtureDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  // From dist/test/helpers (compiled) or test/helpers (sources).
  const candidates = [process.env.ARENACAM_PI_FIXTURES, join(here, '../../../../shared/fixtures/pi'), join(here, '../../../shared/fixtures/pi')];
  const dir = candidates.find((d): d is string => d !== undefined && existsSync(join(d, 'SOURCES.md')));
  if (dir === undefined) throw new Error(`Pi fixtures not found in ${candidates.filter(Boolean).join(', ')}`);
  return dir;
}

/** The text of one fixture file. */
export function piFixture(name: string): string {
  return readFileSync(join(piFixtureDir(), name), 'utf8');
}
