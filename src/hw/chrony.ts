/** chrony adapter: runs `chronyc -c tracking` and decides whether the wall clock is synchronised. */
import { execa } from 'execa';
import type { ClockStatus, ClockStatusReader } from './clock-status.js';

/** The fields of one `chronyc tracking` report that the verdict needs. */
export interface ChronyTracking {
  /** Reference ID as 8 upper-case hex digits (00000000 = none, 7F7F0101 = local clock). */
  refIdHex: string;
  /** Reference name or IP address as chronyc printed it ('' when none). */
  refName: string;
  stratum: number;
  /** System clock minus true time, in seconds (positive = system clock fast). */
  systemOffsetSec: number;
  rootDelaySec: number;
  rootDispersionSec: number;
  leapStatus: string;
}

const CSV_FIELDS = 14;
const LOCAL_REF_NAMES = new Set(['LOCL', 'LOCAL']);
/** Leap statuses of a synchronised chronyd that has a leap second scheduled at the end of the day. */
const LEAP_PENDING = new Set(['Insert second', 'Delete second']);

/** Parse the CSV form (`chronyc -c tracking`); null when it is not one well-formed report line. */
export function parseTrackingCsv(output: string): ChronyTracking | null {
  const lines = output.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length !== 1) return null;
  const f = lines[0].split(',');
  if (f.length !== CSV_FIELDS || !/^[0-9A-Fa-f]{8}$/.test(f[0])) return null;
  const stratum = toNumber(f[2]);
  const nums = [f[4], f[10], f[11]].map(toNumber);
  if (stratum === null || !Number.isInteger(stratum) || nums.some((n) => n === null)) return null;
  const leapStatus = f[13];
  if (leapStatus === '') return null;
  // chronyc -c prints chrony's correction: negative when the system clock is fast.
  return {
    refIdHex: f[0].toUpperCase(),
    refName: f[1],
    stratum,
    systemOffsetSec: -(nums[0] as number),
    rootDelaySec: nums[1] as number,
    rootDispersionSec: nums[2] as number,
    leapStatus,
  };
}

/** Parse the human form (`chronyc tracking`, "Key : value" lines); null when a needed line is missing. */
export function parseTrackingText(output: string): ChronyTracking | null {
  const kv = new Map<string, string>();
  for (const line of output.split('\n')) {
    const m = /^\s*([A-Za-z][A-Za-z ()]*?)\s*:\s*(.*?)\s*$/.exec(line);
    if (m) kv.set(m[1], m[2]);
  }
  const ref = /^([0-9A-Fa-f]{8})\s*\((.*)\)$/.exec(kv.get('Reference ID') ?? '');
  const stratum = toNumber(kv.get('Stratum') ?? '');
  const sys = /^([0-9.]+) seconds (fast|slow) of NTP time$/.exec(kv.get('System time') ?? '');
  const rootDelay = secondsOf(kv.get('Root delay'));
  const rootDispersion = secondsOf(kv.get('Root dispersion'));
  const leapStatus = kv.get('Leap status') ?? '';
  if (!ref || stratum === null || !Number.isInteger(stratum) || !sys || leapStatus === '') return null;
  if (rootDelay === null || rootDispersion === null) return null;
  const magnitude = Number(sys[1]);
  if (!Number.isFinite(magnitude)) return null;
  return {
    refIdHex: ref[1].toUpperCase(),
    refName: ref[2],
    stratum,
    systemOffsetSec: sys[2] === 'fast' ? magnitude : -magnitude,
    rootDelaySec: rootDelay,
    rootDispersionSec: rootDispersion,
    leapStatus,
  };
}

/** True when the report's reference is chrony's local clock (`local` directive) rather than a real source. */
export function isLocalReference(t: Pick<ChronyTracking, 'refIdHex' | 'refName'>): boolean {
  return (
    t.refIdHex.startsWith('7F7F') || // 127.127.x.x; chrony's `local` reference is 7F7F0101
    LOCAL_REF_NAMES.has(t.refName.toUpperCase()) ||
    /^127\.127\.\d{1,3}\.\d{1,3}$/.test(t.refName)
  );
}

/** Turn a parsed report into a ClockStatus: synchronised, or not with the first reason found. */
export function judgeTracking(t: ChronyTracking, maxOffsetMs: number, now: number, timeMaster = false): ClockStatus {
  const noRef = t.refIdHex === '00000000';
  const local = !noRef && isLocalReference(t);
  const unsyncedLeap = t.leapStatus !== 'Normal' && !LEAP_PENDING.has(t.leapStatus);
  const offsetKnown = !noRef && !local && !unsyncedLeap;
  const offsetMs = Math.abs(t.systemOffsetSec) * 1000;
  const base: ClockStatus = {
    synchronised: false,
    source: 'chrony',
    offsetMs: offsetKnown ? offsetMs : null,
    stratum: t.stratum,
    refId: noRef ? null : t.refName !== '' ? t.refName : t.refIdHex,
    leapStatus: t.leapStatus,
    reason: null,
    checkedAt: now,
  };
  let reason: string | null = null;
  if (unsyncedLeap) reason = `chrony leap status is ${t.leapStatus}`;
  else if (noRef) reason = 'chrony has no reference (reference ID 00000000)';
  else if (local && !timeMaster) reason = `chrony reference is the local clock (reference ID ${t.refIdHex}), not a time source`;
  else if (t.stratum < 1 || t.stratum > 15) reason = `chrony stratum ${t.stratum} is outside 1–15`;
  else if (offsetMs > maxOffsetMs) reason = `offset ${fmt(offsetMs)} ms exceeds clock.maxOffsetMs ${maxOffsetMs}`;
  if (reason !== null) return { ...base, reason };
  // The arena's time master serves its own clock (local stratum) to the other units: they agree
  // with it by construction, which is what a synchronised start needs.
  if (local) return { ...base, synchronised: true, reason: `time master: this unit's clock is the arena's reference (chrony local stratum ${t.stratum})` };
  const warning = LEAP_PENDING.has(t.leapStatus) ? `chrony announces a leap second (${t.leapStatus})` : null;
  return { ...base, synchronised: true, reason: warning };
}

/**
 * Parse `chronyc -c tracking` output (the human `chronyc tracking` form is accepted too) into a
 * ClockStatus. Malformed output gives synchronised:false with a reason quoting its start.
 */
export function parseChronyTracking(output: string, maxOffsetMs: number, now: number, timeMaster = false): ClockStatus {
  const parsed = /Reference ID\s*:/.test(output) ? parseTrackingText(output) : parseTrackingCsv(output);
  if (parsed) return judgeTracking(parsed, maxOffsetMs, now, timeMaster);
  return notSynchronised(`unexpected chronyc tracking output: ${quote(output)}`, now);
}

/** A ClockStatus that is not synchronised for the given reason. */
export function notSynchronised(reason: string, now: number): ClockStatus {
  return {
    synchronised: false,
    source: 'chrony',
    offsetMs: null,
    stratum: null,
    refId: null,
    leapStatus: null,
    reason,
    checkedAt: now,
  };
}

/** Options of the chrony clock-status reader (config keys clock.chronycPath, chronySocket, maxOffsetMs). */
export interface ChronyClockStatusOptions {
  chronycPath: string;
  /** chronyd command socket passed as `chronyc -h`; null = chronyc's default. */
  socket: string | null;
  maxOffsetMs: number;
  /** clock.timeMaster: a local reference (chrony serving its own clock) counts as synchronised. */
  timeMaster?: boolean;
  /** How long chronyc may take before it is killed (default 3000 ms). */
  timeoutMs?: number;
  now?: () => number;
}

const DEFAULT_TIMEOUT_MS = 3000;

/** Reads the clock status from chronyd through chronyc; never throws, failures become reasons. */
export class ChronyClockStatus implements ClockStatusReader {
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: ChronyClockStatusOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.now = opts.now ?? Date.now;
  }

  /** The chronyc arguments used for one read. */
  args(): string[] {
    return [...(this.opts.socket !== null ? ['-h', this.opts.socket] : []), '-n', '-c', 'tracking'];
  }

  /** Run chronyc once and judge its report. */
  async read(): Promise<ClockStatus> {
    const { chronycPath } = this.opts;
    try {
      const r = await execa(chronycPath, this.args(), {
        reject: false,
        timeout: this.timeoutMs,
        killSignal: 'SIGINT', // on timeout: SIGINT, then SIGKILL after 500 ms
        forceKillAfterDelay: 500,
        detached: true, // its own process group
        stdin: 'ignore',
        env: { LC_ALL: 'C' },
      });
      const now = this.now();
      if (r.code === 'ENOENT') return notSynchronised(`chronyc not found at "${chronycPath}" (is chrony installed?)`, now);
      if (r.timedOut) {
        return notSynchronised(`chronyc did not answer within ${this.timeoutMs} ms (chronyd busy or hung?)`, now);
      }
      const out = String(r.stdout ?? '');
      const err = String(r.stderr ?? '').trim();
      if (r.exitCode === undefined) return notSynchronised(`could not run chronyc "${chronycPath}": ${r.shortMessage ?? 'unknown error'}`, now);
      if (r.exitCode !== 0) {
        const said = firstLine(err !== '' ? err : out);
        if (/cannot talk to daemon|could not open connection to daemon/i.test(said)) {
          const where = this.opts.socket ?? "chronyc's default socket";
          return notSynchronised(`cannot talk to chronyd at ${where}: chronyc says "${said}"`, now);
        }
        return notSynchronised(`chronyc exited with code ${r.exitCode}: ${quote(said)}`, now);
      }
      return parseChronyTracking(out, this.opts.maxOffsetMs, now, this.opts.timeMaster ?? false);
    } catch (e) {
      return notSynchronised(`could not run chronyc "${chronycPath}": ${(e as Error).message}`, this.now());
    }
  }
}

function toNumber(s: string): number | null {
  if (s.trim() === '') return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

function secondsOf(v: string | undefined): number | null {
  const m = /^([+-]?[0-9.]+) seconds$/.exec(v ?? '');
  return m ? toNumber(m[1]) : null;
}

/** Up to 3 decimals, trailing zeros dropped: 25.3, 0.355, 12. */
function fmt(ms: number): string {
  return String(Number(ms.toFixed(3)));
}

function firstLine(s: string): string {
  return s.split('\n')[0]?.trim() ?? '';
}

function quote(s: string): string {
  const max = 60;
  const t = s.trim();
  return t === '' ? '(empty)' : JSON.stringify(t.length > max ? `${t.slice(0, max)}…` : t);
}
