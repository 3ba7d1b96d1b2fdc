/**
 * The Raspberry Pi's power and thermal throttling flags (`vcgencmd get_throttled`), or, where the
 * firmware tool is missing (a plain Debian kernel on a Pi), the mainline rpi_volt hwmon alarm.
 * Pure parsing here plus a small reader; no module state.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/** The documented bits of get_throttled: bits 0–3 are "now", 16–19 "has occurred since boot". */
export const THROTTLE_BITS: ReadonlyArray<{ bit: number; warning: string }> = [
  { bit: 0, warning: 'under-voltage now' },
  { bit: 1, warning: 'ARM frequency capped now' },
  { bit: 2, warning: 'throttled now' },
  { bit: 3, warning: 'soft temperature limit active' },
  { bit: 16, warning: 'under-voltage has occurred since boot' },
  { bit: 17, warning: 'ARM frequency capping has occurred since boot' },
  { bit: 18, warning: 'throttling has occurred since boot' },
  { bit: 19, warning: 'soft temperature limit has occurred since boot' },
];

/** The flags as read, and where they came from. */
export interface ThrottleState {
  /** get_throttled bit field (from hwmon only bit 0 is known). */
  bits: number;
  source: 'vcgencmd' | 'hwmon';
}

/** The bit field from `vcgencmd get_throttled` output (`throttled=0x50005`), wherever the line is; null when absent. */
export function parseGetThrottled(text: string): number | null {
  const m = /^\s*throttled=(0x[0-9a-fA-F]+|\d+)\s*$/m.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/**
 * Human warnings for the set bits, "now" ones first; unknown bits are named by number.
 * `which`: 'now' = only conditions present now (bits 0–3 and unknown ones); the "since boot" bits
 * stay set until the next reboot, so they belong in the log and /health, not in a live status.
 */
export function throttleWarnings(bits: number, which: 'all' | 'now' | 'past' = 'all'): string[] {
  const out: string[] = [];
  let known = 0;
  for (const { bit, warning } of THROTTLE_BITS) {
    const mask = 2 ** bit;
    known += mask;
    const wanted = which === 'all' || (which === 'now') === bit < 16;
    if (wanted && Math.floor(bits / mask) % 2 === 1) out.push(warning);
  }
  const unknown = bits - (bits & known);
  if (unknown > 0 && which !== 'past') out.push(`unknown throttle flags 0x${unknown.toString(16)}`);
  return out;
}

/** Options of readThrottle. */
export interface ThrottleReadOptions {
  /** vcgencmd binary (default 'vcgencmd'); null = don't try it. */
  vcgencmdPath?: string | null;
  /** sysfs root for the hwmon fallback (default '/sys'). */
  sysRoot?: string;
  timeoutMs?: number;
}

/**
 * Read the flags: vcgencmd first (all bits), then the rpi_volt hwmon's in0_lcrit_alarm
 * (under-voltage now only). null when neither exists (not a Pi) — not an error.
 * Throws only when vcgencmd exists but fails (a real problem worth one warning).
 */
export async function readThrottle(opts: ThrottleReadOptions = {}): Promise<ThrottleState | null> {
  const path = opts.vcgencmdPath === undefined ? 'vcgencmd' : opts.vcgencmdPath;
  if (path !== null) {
    let out: string | null = null;
    try {
      out = String((await execa(path, ['get_throttled'], { timeout: opts.timeoutMs ?? 2000 })).stdout);
    } catch (err) {
      const e = err as { code?: string; shortMessage?: string; stderr?: string; message?: string };
      // Missing tool: not a Raspberry Pi OS; try the kernel's alarm instead.
      if (e.code !== 'ENOENT') throw new Error(`vcgencmd get_throttled failed: ${String(e.stderr || e.shortMessage || e.message).trim().slice(0, 200)}`);
    }
    if (out !== null) {
      const bits = parseGetThrottled(out);
      if (bits === null) throw new Error(`vcgencmd get_throttled gave no flags: ${out.trim().slice(0, 200)}`);
      return { bits, source: 'vcgencmd' };
    }
  }
  const alarm = await hwmonUnderVoltage(opts.sysRoot ?? '/sys');
  return alarm === null ? null : { bits: alarm ? 1 : 0, source: 'hwmon' };
}

/** in0_lcrit_alarm of the hwmon named rpi_volt: true/false, or null when there is none. */
export async function hwmonUnderVoltage(sysRoot: string): Promise<boolean | null> {
  const dir = join(sysRoot, 'class/hwmon');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return null;
  }
  for (const n of names) {
    const name = await readFile(join(dir, n, 'name'), 'utf8').catch(() => '');
    if (name.trim() !== 'rpi_volt') continue;
    const v = await readFile(join(dir, n, 'in0_lcrit_alarm'), 'utf8').catch(() => null);
    if (v === null) return null;
    return v.trim() === '1';
  }
  return null;
}
