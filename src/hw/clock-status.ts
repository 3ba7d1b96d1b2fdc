/** Clock synchronisation status, as the device and protocols see it. */

/** What is known about the wall clock's synchronisation. */
export interface ClockStatus {
  synchronised: boolean;
  source: 'chrony' | 'system';
  /** Estimated |system − true| in ms, when known. */
  offsetMs: number | null;
  stratum: number | null;
  refId: string | null;
  leapStatus: string | null;
  /** Why it is not synchronised (or a warning), human readable. */
  reason: string | null;
  /** When this status was read (epoch ms). */
  checkedAt: number;
}

/** Reads the clock status once. Implemented by the chrony adapter and the "system" source. */
export interface ClockStatusReader {
  read(): Promise<ClockStatus>;
}

/** The "system" source: trusts the OS clock as synchronised (development only). */
export class SystemClockStatus implements ClockStatusReader {
  constructor(private readonly now: () => number = Date.now) {}
  async read(): Promise<ClockStatus> {
    return {
      synchronised: true,
      source: 'system',
      offsetMs: null,
      stratum: null,
      refId: null,
      leapStatus: null,
      reason: 'clock.source=system: the OS clock is trusted without checking synchronisation',
      checkedAt: this.now(),
    };
  }
}
