/** Battery, SoC temperature and Wi-Fi signal for status messages: a systeminformation/sysfs reader and a poller. */
import { readFile } from 'node:fs/promises';
import { Poller } from '../util/poller.js';
import { join } from 'node:path';
import si from 'systeminformation';
import type { Logger } from '../log.js';
import { readThrottle, throttleWarnings, type ThrottleState } from './throttle.js';

/** What the status message reports about the unit itself; null = not known or not applicable. */
export interface SystemFacts {
  /** Battery charge in percent; null on mains power without a battery, or when unknown. */
  battery: number | null;
  /** SoC temperature in °C. */
  temperatureC: number | null;
  /** Wi-Fi RSSI in dBm; null on Ethernet or without Wi-Fi. */
  signalDbm: number | null;
  /** The Pi's under-voltage/throttling flags; null when not a Pi (or unreadable). */
  throttled: ThrottleState | null;
}

/**
 * Warnings worth showing an operator now: the Pi's present under-voltage/throttling conditions in
 * words (empty when all is well). `past` = the "has occurred since boot" flags instead (sticky until
 * a reboot: for /health and the log, not for a live status).
 */
export function factWarnings(f: SystemFacts, which: 'now' | 'past' = 'now'): string[] {
  return f.throttled ? throttleWarnings(f.throttled.bits, which) : [];
}

/** Reads the system facts once. */
export interface SystemFactsReader {
  read(): Promise<SystemFacts>;
}

/** Facts with every field unknown. */
export function noFacts(): SystemFacts {
  return { battery: null, temperatureC: null, signalDbm: null, throttled: null };
}

/** The part of systeminformation's battery() answer the mapping uses. */
export interface SiBattery {
  hasBattery: boolean;
  acConnected: boolean;
  percent: number | null;
}

/** The systeminformation calls the real reader makes (the package itself by default; tests inject others). */
export interface SiFunctions {
  battery(): Promise<SiBattery>;
  cpuTemperature(): Promise<{ main: number | null }>;
  wifiConnections(): Promise<Array<{ signalLevel: number | null }>>;
}

/** Battery percent from si.battery(): null without a battery (hasBattery false, e.g. on mains). */
export function batteryPercent(b: SiBattery): number | null {
  if (!b.hasBattery || typeof b.percent !== 'number' || !Number.isFinite(b.percent)) return null;
  return b.percent < 0 || b.percent > 100 ? null : Math.round(b.percent);
}

/** °C from si.cpuTemperature().main: null, -1 (systeminformation's "unknown") and NaN give null. */
export function cpuTemperatureC(t: { main: number | null }): number | null {
  const c = t.main;
  return typeof c === 'number' && Number.isFinite(c) && c !== -1 ? c : null;
}

/** dBm of the first connection si.wifiConnections() lists with a (negative, dBm) signal; none gives null. */
export function wifiSignalDbm(conns: Array<{ signalLevel: number | null }>): number | null {
  for (const c of conns) if (typeof c.signalLevel === 'number' && Number.isFinite(c.signalLevel) && c.signalLevel < 0) return c.signalLevel;
  return null;
}

/** °C from the text of a sysfs thermal zone `temp` file (millidegrees); null when it is not a number. */
export function parseThermalZoneTemp(text: string): number | null {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) return null;
  return Number(t) / 1000;
}

/**
 * Signal in dBm of the first interface in /proc/net/wireless whose level is fresh (marked '.') and
 * in dBm (negative); drivers that report a relative level (positive) or an idle interface give null.
 */
export function parseProcNetWireless(text: string): number | null {
  for (const line of text.split('\n')) {
    // iface: status  link[.]  level[.]  noise[.] ...
    const m = /^\s*[^\s:]+:\s+[0-9a-fA-F]{4}\s+-?\d+\.?\s+(-?\d+)(\.?)\s/.exec(line);
    if (m && m[2] === '.' && Number(m[1]) < 0) return Number(m[1]);
  }
  return null;
}

/** Options of the real reader. */
export interface SiSystemFactsOptions {
  log: Logger;
  /** sysfs root (default '/sys'): the SoC temperature is read from class/thermal/thermal_zone0/temp when present. */
  sysRoot?: string;
  /** procfs root (default '/proc'): the Wi-Fi signal is read from net/wireless when present. */
  procRoot?: string;
  /** The systeminformation calls (default: the package). */
  si?: SiFunctions;
  /** How long one fact may take before it counts as unknown (default 3000 ms). */
  timeoutMs?: number;
  /** Reads the Pi's throttling flags (default: vcgencmd, then the rpi_volt hwmon under sysRoot). */
  throttle?: () => Promise<ThrottleState | null>;
}

/** The facts; each is read and fails on its own. */
type Kind = 'battery' | 'temperature' | 'wifi' | 'throttle';

const DEFAULT_TIMEOUT_MS = 3000;
const TIMED_OUT = Symbol('timed out');

/**
 * Reads the facts: temperature from sysfs thermal_zone0 and Wi-Fi signal from /proc/net/wireless
 * when present (no helper processes), otherwise through systeminformation, which runs helpers
 * (nmcli, iw, wpa_cli, sensors) and may be slow. Never throws: a failure or timeout makes that fact
 * null and logs one warning per kind for the reader's life; a call still running after its timeout
 * is not started again until it settles.
 */
export class SiSystemFacts implements SystemFactsReader {
  private readonly si: SiFunctions;
  private readonly timeoutMs: number;
  private readonly warned = new Set<Kind>();
  private readonly running = new Set<Kind>();

  constructor(private readonly opts: SiSystemFactsOptions) {
    this.si = opts.si ?? { battery: () => si.battery(), cpuTemperature: () => si.cpuTemperature(), wifiConnections: () => si.wifiConnections() };
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Read all facts concurrently. */
  async read(): Promise<SystemFacts> {
    const throttle = this.opts.throttle ?? (() => readThrottle({ sysRoot: this.opts.sysRoot }));
    const [battery, temperatureC, signalDbm, throttled] = await Promise.all([
      this.guard('battery', async () => batteryPercent(await this.si.battery())),
      this.guard('temperature', () => this.temperature()),
      this.guard('wifi', () => this.signal()),
      this.guard('throttle', throttle),
    ]);
    return { battery, temperatureC, signalDbm, throttled };
  }

  private async temperature(): Promise<number | null> {
    const sysfs = await readText(join(this.opts.sysRoot ?? '/sys', 'class/thermal/thermal_zone0/temp'));
    const c = sysfs === null ? null : parseThermalZoneTemp(sysfs);
    return c !== null ? c : cpuTemperatureC(await this.si.cpuTemperature());
  }

  private async signal(): Promise<number | null> {
    const wireless = await readText(join(this.opts.procRoot ?? '/proc', 'net/wireless'));
    return wireless !== null ? parseProcNetWireless(wireless) : wifiSignalDbm(await this.si.wifiConnections());
  }

  /** Run one fact's read with a timeout; errors and timeouts give null and one warning per kind. */
  private async guard<T>(kind: Kind, fn: () => Promise<T | null>): Promise<T | null> {
    if (this.running.has(kind)) return null; // the last call has not settled: do not pile up helpers
    this.running.add(kind);
    const call = Promise.resolve()
      .then(fn)
      .finally(() => this.running.delete(kind));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), this.timeoutMs); // not unref'd: read() must settle
    });
    try {
      const r = await Promise.race([call, timeout]);
      if (r !== TIMED_OUT) return r;
      this.warnOnce(kind, `no answer within ${this.timeoutMs} ms`);
      return null;
    } catch (err) {
      this.warnOnce(kind, (err as Error)?.message ?? String(err));
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  private warnOnce(kind: Kind, why: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.opts.log.warn({ fact: kind, err: why }, `cannot read ${kind}; reporting it as unknown (logged once)`);
  }
}

/** A file's text, or null when it cannot be read (absent, no permission, driver error). */
async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

/** Options of the poller. */
export interface SystemFactsPollerOptions {
  reader: SystemFactsReader;
  log: Logger;
  /** Refresh period (default 10 000 ms). */
  pollMs?: number;
}

const DEFAULT_POLL_MS = 10_000;

/** Keeps the latest facts in memory so a status message can take them synchronously. */
export class SystemFactsPoller {
  private failing = false;
  private lastWarnings = '';
  private readonly poller: Poller<SystemFacts>;

  constructor(private readonly opts: SystemFactsPollerOptions) {
    this.poller = new Poller(noFacts(), () => this.readOnce(), opts.pollMs ?? DEFAULT_POLL_MS);
  }

  /** Refresh at once, then every pollMs (the timer does not keep the process alive). Idempotent. */
  start(): void {
    this.poller.start();
  }

  /** Stop refreshing; a read under way still updates current(). */
  stop(): void {
    this.poller.stop();
  }

  /** The latest facts (all null before the first read completes). */
  current(): SystemFacts {
    return this.poller.current();
  }

  /** Read now; concurrent calls share one read. Never rejects (a throwing reader gives all nulls). */
  refresh(): Promise<SystemFacts> {
    return this.poller.refresh();
  }

  /** A change of the Pi's power/thermal warnings is logged once (warn when any, info when cleared). */
  private logWarnings(f: SystemFacts): void {
    const w = f.throttled ? throttleWarnings(f.throttled.bits) : [];
    const key = w.join('; ');
    if (key === this.lastWarnings) return;
    if (w.length) this.opts.log.warn({ warnings: w, throttled: f.throttled }, `power/thermal warning: ${key}`);
    else if (this.lastWarnings) this.opts.log.info('power/thermal warnings cleared');
    this.lastWarnings = key;
  }

  private async readOnce(): Promise<SystemFacts> {
    try {
      const facts = await this.opts.reader.read();
      this.failing = false;
      this.logWarnings(facts);
      return facts;
    } catch (err) {
      if (!this.failing) this.opts.log.warn({ err: (err as Error)?.message ?? String(err) }, 'system facts read failed');
      this.failing = true;
      return noFacts();
    }
  }
}
