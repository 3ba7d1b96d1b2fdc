/** A unit paired to a fresh coordinator peer for the length of one test, cleaned up whatever happens. */
import { startCoordinator, type Coordinator } from './coordinator.js';
import type { AppSeams } from '../../src/app.js';
import { startUnit, tempDir, waitFor, type TestUnit } from './device.js';

/** Fast VAR timings for tests: status every 300 ms, reconnects within 50–400 ms. */
export const TEST_VAR = { statusIntervalMs: 300, reconnectMinMs: 50, reconnectMaxMs: 400 };

/** What a test body gets. */
export interface PairedUnit {
  unit: TestUnit;
  coord: Coordinator;
  /** The unit's deviceId. */
  id: string;
  dataDir: string;
}

/**
 * Start a coordinator and a unit paired to it through a pairing link in its config, run `fn`,
 * then stop both and remove the data folder (also after a failure).
 */
export async function withPairedUnit(opts: { patch?: Record<string, unknown>; stamp?: boolean; seams?: AppSeams }, fn: (p: PairedUnit) => Promise<void>): Promise<void> {
  const { dir, cleanup } = await tempDir();
  const coord = await startCoordinator();
  let unit: TestUnit | null = null;
  try {
    const patch = { ...opts.patch, var: { ...TEST_VAR, coordinator: coord.pairLink(coord.newToken()), ...(opts.patch?.var as object) } };
    unit = await startUnit({ dataDir: dir, stamp: opts.stamp, patch: patch as never, seams: opts.seams });
    const id = unit.app.deviceId;
    await waitFor(() => coord.devices().get(id)?.authed, 10000, 'pairing');
    await fn({ unit, coord, id, dataDir: dir });
  } finally {
    await unit?.stop();
    await coord.close();
    await cleanup();
  }
}
