/** The one logger: pino JSON lines on stdout (journald keeps them); parts take a child. */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Build the root logger. `destination` defaults to stdout. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { svc: 'arenacam' }, timestamp: pino.stdTimeFunctions.isoTime }, destination as never);
}

/** A logger that drops everything (tests that do not care about logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
