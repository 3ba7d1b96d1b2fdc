/** What the button does (short press: local incident mark + clip; long press: local recording on/off) and the button/LED panel. */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import { DEFAULT_OPEN_RETRY, GpioUnavailableError, errnoOf, openOnoffGpio, openWithRetry, realTimers, type GpioBackend, type OpenRetry, type Timers } from '../hw/gpio.js';
import { Button, type ButtonEvent } from './button.js';
import { LED_ACK, LED_PATTERNS, LED_REFUSED, LedDriver, ledStateOf, type UnitView } from './led.js';
import { ClipError, type ClipInfo, type ClipStore } from './clips.js';
import type { Device } from './device.js';
import type { SessionBook, SessionRecord } from './sessions.js';
import type { StorageGuard } from './storage.js';

/** What the button's actions are built from. */
export interface LocalControlsDeps {
  device: Pick<Device, 'isRecording' | 'snapshot' | 'startRecording' | 'stopRecording' | 'onStopped'>;
  /** The open VAR session, if any (VarDevice.current). */
  varSession: () => SessionRecord | null;
  /** What the VAR coordinator link is while it is up (see varLinkUp), else null. */
  varLink: () => string | null;
  /** When a MultiCam controller last sent a command (epoch ms, MultiCamServer.lastCommandAtMs), null = never. */
  controllerLastCommandMs: () => number | null;
  clips: Pick<ClipStore, 'export'>;
  book: Pick<SessionBook, 'addMark'>;
  storage: Pick<StorageGuard, 'error' | 'freeBytes'>;
  /** Bitrate capture runs with now (for the clip size estimate). */
  bitrateKbps: () => number;
  /** storage.minFreeMB in bytes. */
  minFreeBytes: number;
  preRollMs: number;
  postRollMs: number;
  clock: Clock;
  log: Logger;
}

/** Result of a short press: the mark is always kept; the clip may fail with a code. */
export type MarkResult = { ok: true; markId: string; clip: ClipInfo } | { ok: false; markId: string; code: string; message: string };

/** A MultiCam controller heard within this long (2 min) is taken to be in charge of recording. */
export const CONTROLLER_RECENT_MS = 120_000;

/** The VAR link as the button sees it: a description while a coordinator is connected (pairing, authenticating or ready), else null. */
export function varLinkUp(client: { connected: boolean }, node: { state: string }): string | null {
  return client.connected && ['pairing', 'authenticating', 'ready'].includes(node.state) ? `a VAR coordinator is connected (link ${node.state})` : null;
}

/** Why a local recording may not start now (a coordinator or controller is in charge), or null when the unit is on its own. */
export function inChargeReason(o: { varLink: string | null; controllerLastMs: number | null; nowMs: number }): string | null {
  const standalone = 'a local recording is for standalone use only';
  if (o.varLink) return `${o.varLink}; ${standalone}, record from the coordinator`;
  const ago = o.controllerLastMs === null ? Infinity : o.nowMs - o.controllerLastMs;
  if (ago < CONTROLLER_RECENT_MS) return `a MultiCam controller sent a command ${Math.max(0, Math.round(ago / 1000))} s ago (within ${CONTROLLER_RECENT_MS / 60000} min); ${standalone}, record from the controller`;
  return null;
}

/** Result of a long press. */
export type ToggleResult = { ok: true; action: 'started' | 'stopped'; fileName?: string } | { ok: false; code: string; message: string };

/**
 * The button's actions. Nothing here talks to a coordinator: a button mark is kept in the session
 * book (source 'button') and its clip is listed with the others, but no message is sent for it.
 */
export class LocalControls {
  /** A recording this button started is running. */
  private local = false;
  private toggling = false;

  constructor(private readonly d: LocalControlsDeps) {
    d.device.onStopped(() => {
      this.local = false;
    });
  }

  /** Short press at `atMs` (the press's first edge): a local mark and a clip [atMs − pre, atMs + post]. */
  async mark(atMs: number): Promise<MarkResult> {
    const { log, book, clips } = this.d;
    const markId = `BTN-${randomBytes(12).toString('base64url')}`;
    const session = this.d.varSession();
    const sessionId = session?.sessionId ?? null;
    try {
      await book.addMark(session, { markId, coordinatorTs: null, deviceTs: atMs, note: 'button', source: 'button' });
    } catch (err) {
      log.error({ markId, err: (err as Error).message }, 'cannot save the button mark in the session book; the clip is made anyway');
    }
    log.info({ markId, markMs: atMs, sessionId, recording: this.d.device.isRecording() }, 'button mark');
    const fromMs = atMs - this.d.preRollMs;
    const toMs = atMs + this.d.postRollMs;
    const fail = (code: string, message: string): MarkResult => {
      log.error({ markId, code, error: message }, `button clip failed: ${code}`);
      return { ok: false, markId, code, message };
    };
    const storageErr = this.d.storage.error();
    if (storageErr) return fail('LOW_STORAGE', storageErr);
    const estimate = ((toMs - fromMs) / 1000) * this.d.bitrateKbps() * 125 * 1.5;
    const free = this.d.storage.freeBytes();
    if (free !== null && free - estimate < this.d.minFreeBytes) {
      return fail('LOW_STORAGE', `not enough space for the clip: ${Math.round(free / 1e6)} MB free, about ${Math.ceil(estimate / 1e6)} MB needed above the ${Math.round(this.d.minFreeBytes / 1e6)} MB floor`);
    }
    try {
      const clip = await clips.export({ clipId: null, markId, sessionId, fromMs, toMs, quality: 'original', source: 'button', markMs: atMs });
      log.info({ markId, clipId: clip.clipId, url: `/clips/${clip.clipId}.mp4`, durationMs: clip.durationMs, sizeBytes: clip.sizeBytes }, 'button clip ready');
      return { ok: true, markId, clip };
    } catch (err) {
      return fail(err instanceof ClipError ? err.code : 'CLIP_EXPORT_FAILED', (err as Error).message);
    }
  }

  /**
   * Long press: start a local recording when idle, stop it when it is one this button started.
   * Refused while a VAR session or a MultiCam controller (running or scheduled) owns the recording;
   * a start is also refused while a coordinator or controller is in charge (inChargeReason), so
   * neither ever sees a recording it did not ask for. Stopping the button's own recording always
   * works: it is how the unit is handed back (a VAR stop_record does not stop it).
   */
  async toggleRecording(): Promise<ToggleResult> {
    const { device, log, clock } = this.d;
    const refuse = (message: string): ToggleResult => {
      log.warn({ reason: message }, 'long press refused');
      return { ok: false, code: 'REFUSED', message };
    };
    if (this.toggling) return refuse('the previous long press is still being carried out');
    const session = this.d.varSession();
    if (session) return refuse(`VAR session ${session.sessionId ?? '(no id)'} owns the recording; the coordinator starts and stops it`);
    if (!this.local) {
      const other = inChargeReason({ varLink: this.d.varLink(), controllerLastMs: this.d.controllerLastCommandMs(), nowMs: clock.now() });
      if (other) return refuse(other);
    }
    const scheduled = device.snapshot().scheduledStartMs;
    if (scheduled !== null) return refuse(`a MultiCam recording is scheduled to start at ${new Date(scheduled).toISOString()}`);
    if (device.isRecording() && !this.local) return refuse('a recording started by a MultiCam controller is running; stop it there');
    this.toggling = true;
    try {
      if (this.local) {
        const r = await device.stopRecording(clock.now());
        if (r.kind !== 'stopped') return refuse(`stop failed: ${r.message}`);
        log.info({ fileName: r.fileName, fileSize: r.fileSize }, 'local recording stopped (long press)');
        return { ok: true, action: 'stopped', fileName: r.fileName };
      }
      const r = await device.startRecording(clock.now());
      if (r.kind !== 'started') return refuse(`start failed: ${'message' in r ? r.message : r.kind}`);
      this.local = true;
      log.info({ startMs: r.atMs }, 'local recording started (long press)');
      return { ok: true, action: 'started' };
    } catch (err) {
      return refuse(`failed: ${(err as Error).message}`);
    } finally {
      this.toggling = false;
    }
  }
}

/** The button and LED as the unit runs them. */
export interface Panel {
  /** For /health: the pins in use, the LED pattern now, and why GPIO is off (null when on). */
  view(): { button: number | null; led: string | null; off: string | null };
  stop(): Promise<void>;
}

/** What startPanel needs. */
export interface PanelOptions {
  settings: Config['gpio'];
  /** The GPIO to use; undefined = onoff on this machine. */
  backend?: GpioBackend;
  controls: Pick<LocalControls, 'mark' | 'toggleRecording'>;
  unitView: () => UnitView;
  clock: Clock;
  timers?: Timers;
  log: Logger;
  /** How often the LED looks at the unit state (ms, default 250); it writes only on changes. */
  watchMs?: number;
  /** Retries of a pin refused with EACCES/EPERM at boot (default DEFAULT_OPEN_RETRY: 5 × 300 ms). */
  openRetry?: OpenRetry;
}

/** Start the button and LED; without GPIO (or gpio.enabled false) says so in one line and does nothing. */
export async function startPanel(o: PanelOptions): Promise<Panel> {
  const { settings: s, log } = o;
  const timers = o.timers ?? realTimers;
  const off = (why: string, level: 'info' | 'warn' = 'info'): Panel => {
    log[level]({ reason: why }, `button and status LED off: ${why}; the unit runs without them`);
    return { view: () => ({ button: null, led: null, off: why }), stop: async () => undefined };
  };
  if (!s.enabled) return off('gpio.enabled is false');
  if (s.buttonPin < 0 && s.ledPin < 0) return off('gpio.buttonPin and gpio.ledPin are both -1');
  let backend = o.backend;
  if (!backend) {
    try {
      backend = await openOnoffGpio({ sysfsDir: s.sysfsDir, chipLabel: s.chipLabel, clock: o.clock, log });
    } catch (err) {
      return off((err as Error).message, err instanceof GpioUnavailableError && err.kind === 'absent' ? 'info' : 'warn');
    }
  }
  const gpio = backend;
  const retry = o.openRetry ?? DEFAULT_OPEN_RETRY;
  /** Open a pin, trying again while udev has not yet given us a freshly exported one; one error line if it never opens. */
  const tryOpen = async <T>(what: string, pin: number, fn: () => T): Promise<T | null> => {
    if (pin < 0) return null;
    try {
      const { value, tries } = await openWithRetry(fn, retry);
      if (tries > 1) log.info({ pin, tries }, `GPIO${pin} opened after ${tries} tries (permission came late)`);
      return value;
    } catch (err) {
      const code = errnoOf(err);
      const tried = code === 'EACCES' || code === 'EPERM' ? ` after ${retry.attempts} tries ${retry.delayMs} ms apart` : '';
      log.error({ pin, code, err: (err as Error).message }, `${what} off: cannot open GPIO${pin}${tried}`);
      return null;
    }
  };
  const ledOut = await tryOpen('status LED', s.ledPin, () => gpio.output(s.ledPin, { activeLow: s.ledActiveLow }));
  const led = ledOut ? new LedDriver(ledOut, timers) : null;
  const pending = new Set<Promise<unknown>>();
  /** Keep an action until it ends (stop waits for it); `ackOnSuccess`: flash LED_ACK when it worked. */
  const track = (p: Promise<{ ok: boolean }>, ackOnSuccess: boolean) => {
    const q = p
      .then((r) => {
        if (!r.ok) led?.flash(LED_REFUSED);
        else if (ackOnSuccess) led?.flash(LED_ACK);
      })
      .finally(() => pending.delete(q));
    pending.add(q);
  };
  const onEvent = (ev: ButtonEvent) => {
    if (ev.kind === 'short') {
      log.info({ markMs: ev.atMs, heldMs: Math.round(ev.heldMs) }, 'button: short press (incident mark)');
      led?.flash(LED_ACK);
      track(o.controls.mark(ev.atMs), false);
    } else {
      log.info({ pressMs: ev.atMs }, 'button: long press (local recording on/off)');
      track(o.controls.toggleRecording(), true);
    }
  };
  const input = await tryOpen('button', s.buttonPin, () => gpio.input(s.buttonPin, { activeLow: s.buttonActiveLow }));
  const button = input ? new Button({ input, debounceMs: s.debounceMs, longPressMs: s.longPressMs, clock: o.clock, timers, onEvent }) : null;

  let watch: unknown = null;
  let lastState = '';
  const look = () => {
    const state = ledStateOf(o.unitView());
    if (state !== lastState) log.debug({ state }, 'status LED');
    lastState = state;
    led?.show(LED_PATTERNS[state]);
    watch = timers.setTimeout(look, o.watchMs ?? 250);
  };
  if (led) look();
  log.info({ button: button ? s.buttonPin : null, led: led ? s.ledPin : null, gpio: gpio.describe() }, 'button and status LED on');
  return {
    view: () => ({ button: button ? s.buttonPin : null, led: led?.current() ?? null, off: null }),
    stop: async () => {
      button?.close();
      if (watch !== null) timers.clearTimeout(watch);
      await Promise.allSettled([...pending]);
      led?.close();
    },
  };
}
