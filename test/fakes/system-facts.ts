/** Fakes for the system-facts seam: a SystemFactsReader, and systeminformation-like functions. */
import type { SiBattery, SiFunctions, SystemFacts, SystemFactsReader } from '../../src/hw/system-facts.js';

/** A promise that never settles until release() is called (for hung reads). */
export interface Gate {
  promise: Promise<void>;
  release(): void;
}

/** A gate that opens on release(). */
export function gate(): Gate {
  let release = (): void => {};
  const promise = new Promise<void>((resolve) => (release = resolve));
  return { promise, release };
}

/** A reader that returns the facts set on it, counts reads, and can be made to throw or hang. */
export class FakeSystemFacts implements SystemFactsReader {
  reads = 0;
  facts: SystemFacts;
  /** When set, read() throws it. */
  failWith: Error | null = null;
  /** When set, read() waits for it before answering. */
  hold: Gate | null = null;

  constructor(facts: Partial<SystemFacts> = {}) {
    this.facts = { battery: null, temperatureC: null, signalDbm: null, throttled: null, ...facts };
  }

  /** Change some facts for the next reads. */
  set(facts: Partial<SystemFacts>): void {
    this.facts = { ...this.facts, ...facts };
  }

  /** The facts at the time of the call (after any hold). */
  async read(): Promise<SystemFacts> {
    this.reads++;
    if (this.hold !== null) await this.hold.promise;
    if (this.failWith !== null) throw this.failWith;
    return { ...this.facts };
  }
}

/** What one fake systeminformation call does: answer a value, reject/throw an error, or hang until a gate opens. */
export type SiAnswer<T> = T | Error | { throwSync: Error } | Gate;

/** Answers for the three calls, and how often each was made. */
export interface FakeSi extends SiFunctions {
  calls: { battery: number; cpuTemperature: number; wifiConnections: number };
}

/** systeminformation-like functions answering as told (the defaults: no battery, no sensor, no Wi-Fi). */
export function fakeSi(answers: {
  battery?: SiAnswer<SiBattery>;
  cpuTemperature?: SiAnswer<{ main: number | null }>;
  wifiConnections?: SiAnswer<Array<{ signalLevel: number | null }>>;
}): FakeSi {
  const calls = { battery: 0, cpuTemperature: 0, wifiConnections: 0 };
  const answer = <T>(a: SiAnswer<T>): Promise<T> => {
    if (a instanceof Error) return Promise.reject(a);
    if (typeof a === 'object' && a !== null && 'throwSync' in a) throw a.throwSync;
    if (typeof a === 'object' && a !== null && 'release' in a && 'promise' in a) {
      return a.promise.then(() => Promise.reject(new Error('released hung call')));
    }
    return Promise.resolve(a as T);
  };
  return {
    calls,
    battery() {
      calls.battery++;
      return answer(answers.battery ?? { hasBattery: false, acConnected: true, percent: 0 });
    },
    cpuTemperature() {
      calls.cpuTemperature++;
      return answer(answers.cpuTemperature ?? { main: null });
    },
    wifiConnections() {
      calls.wifiConnections++;
      return answer(answers.wifiConnections ?? []);
    },
  };
}
