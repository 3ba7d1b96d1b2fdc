/** The capture process group (ffmpeg and rpicam-vid share one): waiting for it to be gone, reaping a stale one. */
import { readFile, unlink } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { processMatches } from '../util/child.js';

/** Resolve after `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until no process of group `pgid` is left; SIGKILL the group after `graceMs`. */
export async function groupGone(pgid: number, graceMs: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (pgid <= 1) return;
  const end = Date.now() + graceMs;
  while (alive() && Date.now() < end) await sleep(20);
  if (!alive()) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* gone */
  }
  for (let i = 0; i < 50 && alive(); i++) await sleep(20);
}

/** Stop an ffmpeg left running by a previous daemon that died without stopping it (its pid file names it). */
export async function reapStaleCapture(pidFile: string, storeDir: string, log: Logger): Promise<void> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (pid > 1 && (await processMatches(pid, storeDir))) {
    log.warn({ pid }, 'stopping an ffmpeg left running by a previous daemon');
    try {
      process.kill(-pid, 'SIGINT');
    } catch {
      /* gone */
    }
    for (let i = 0; i < 50 && (await processMatches(pid, storeDir)); i++) await sleep(100);
    if (await processMatches(pid, storeDir)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await sleep(200);
    }
  }
  await unlink(pidFile).catch(() => undefined);
}
