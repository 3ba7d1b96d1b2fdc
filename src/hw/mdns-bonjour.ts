/** mDNS advertiser backed by bonjour-service (its own responder on UDP 5353, in this process). */
import type { EventEmitter } from 'node:events';
import os from 'node:os';
import { Bonjour, type Service } from 'bonjour-service';
import type { Logger } from '../log.js';
import type { Advertiser } from './mdns.js';

/** Options of the bonjour backend; the last three have production defaults and exist for tests. */
export interface BonjourAdvertiserOptions {
  name: string;
  deviceId: string;
  port: number;
  log: Logger;
  /** Interface name or IPv4 address to advertise on (multicast and A records); default all. */
  interface?: string;
  /** Reads the host's interfaces; default os.networkInterfaces. */
  networkInterfaces?: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** How often addresses are re-checked and a failed publish retried (ms); default 10 s. */
  recheckMs?: number;
  /** How long start() waits for the first announcement (ms); default 3 s. */
  upTimeoutMs?: number;
}

interface Target {
  /** Sorted addresses the A/AAAA records will carry. */
  addresses: string[];
  /** IPv4 address of the one interface to multicast on (configured, or the only one with IPv4). */
  mcast?: string;
  /** Why nothing can be published now. */
  problem?: string;
}

type BonjourOptions = ConstructorParameters<typeof Bonjour>[0];

interface Instance {
  bonjour: Bonjour;
  service: Service;
  key: string;
}

/** The host label of the SRV target: device-specific, so it never collides with avahi's `<hostname>.local`. */
export function bonjourHostName(deviceId: string): string {
  const label = `arenacam-${deviceId}`.replace(/[^A-Za-z0-9-]+/g, '-').slice(0, 63).replace(/-+$/, '');
  return `${label}.local`;
}

/** bonjour-service keeps its multicast-dns emitter private; without an 'error' listener a bind failure would throw. */
function mdnsOf(bonjour: Bonjour): EventEmitter {
  const mdns = (bonjour as unknown as { server?: { mdns?: EventEmitter } }).server?.mdns;
  if (!mdns) throw new Error('bonjour-service internals changed: no server.mdns');
  return mdns;
}

function withTimeout(run: (done: () => void) => void, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    try {
      run(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/** Publishes with bonjour-service and re-announces when the host's addresses change. */
export class BonjourAdvertiser implements Advertiser {
  readonly backend = 'bonjour';
  private readonly log: Logger;
  private readonly host: string;
  private readonly recheckMs: number;
  private readonly upTimeoutMs: number;
  private readonly interfaces: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  private instance: Instance | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private queue: Promise<void> = Promise.resolve();
  private lastProblem: string | null = null;
  private failures = 0;
  private skipTicks = 0;

  constructor(private readonly opts: BonjourAdvertiserOptions) {
    this.log = opts.log;
    this.host = bonjourHostName(opts.deviceId);
    this.recheckMs = opts.recheckMs ?? 10_000;
    this.upTimeoutMs = opts.upTimeoutMs ?? 3_000;
    this.interfaces = opts.networkInterfaces ?? os.networkInterfaces;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.serial(() => this.ensure());
    this.timer = setInterval(() => {
      if (this.skipTicks > 0) this.skipTicks -= 1;
      else void this.serial(() => this.ensure());
    }, this.recheckMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.serial(() => this.teardown());
  }

  /** Run publish/teardown steps one at a time; a step never rejects. */
  private serial(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step).catch((err: unknown) => {
      this.log.error({ err }, 'mdns: unexpected bonjour failure');
    });
    this.queue = next;
    return next;
  }

  private problem(message: string, fields: object = {}, level: 'info' | 'warn' | 'error' = 'warn'): void {
    if (message === this.lastProblem) this.log.debug(fields, message);
    else this.log[level](fields, message);
    this.lastProblem = message;
  }

  private failed(): void {
    this.failures += 1;
    this.skipTicks = Math.min(2 ** this.failures - 1, 30);
  }

  /** What should be published right now, from the host's interfaces. */
  private target(): Target {
    const nets = this.interfaces();
    const usable = (a: os.NetworkInterfaceInfo): boolean => !a.internal && a.mac !== '00:00:00:00:00:00';
    const ipv4Of = (name: string): string | undefined =>
      (nets[name] ?? []).find((a) => a.family === 'IPv4' && usable(a))?.address;
    const want = this.opts.interface;
    let only: string | undefined;
    if (want !== undefined) {
      only = Object.keys(nets).find((n) => n === want || (nets[n] ?? []).some((a) => a.address === want));
      if (!only || !ipv4Of(only)) return { addresses: [], problem: `mdns: interface ${want} is missing or has no IPv4 address yet` };
    } else {
      // One IPv4 interface (the usual Pi): name it as the multicast interface, so sending works even
      // without a route for 224.0.0.0/4 (static address, no gateway). With several, the kernel's route picks.
      const withIpv4 = Object.keys(nets).filter((n) => ipv4Of(n) !== undefined);
      if (withIpv4.length === 1) only = withIpv4[0];
    }
    const addresses: string[] = [];
    for (const [name, list] of Object.entries(nets)) {
      if (only !== undefined && name !== only) continue;
      for (const a of list ?? []) if (usable(a)) addresses.push(a.address);
    }
    addresses.sort();
    if (!addresses.some((a) => !a.includes(':'))) return { addresses, problem: 'mdns: waiting for an IPv4 address' };
    return { addresses, mcast: only === undefined ? undefined : ipv4Of(only) };
  }

  private async ensure(): Promise<void> {
    if (!this.running) return;
    const target = this.target();
    const key = `${target.mcast ?? '*'}|${target.addresses.join(',')}`;
    if (this.instance && this.instance.key === key && this.instance.service.activated) return;
    if (this.instance) {
      this.log.info({ from: this.instance.key, to: key }, 'mdns: network addresses changed; re-announcing');
      await this.teardown();
    }
    if (target.problem) {
      this.problem(target.problem, { addresses: target.addresses }, 'info');
      return;
    }
    await this.publish(target, key);
  }

  private async publish(target: Target, key: string): Promise<void> {
    // These go to multicast-dns (bonjour-service types them as ServiceConfig). Bind the wildcard address:
    // a socket bound to the interface's unicast address would not receive multicast on Linux.
    const mdnsOptions = (target.mcast ? { interface: target.mcast, bind: '0.0.0.0' } : {}) as BonjourOptions;
    const bonjour = new Bonjour(mdnsOptions, (err: NodeJS.ErrnoException) =>
      this.problem(`mdns: sending a response failed (${err.code ?? err.message})`, { err }),
    );
    const mdns = mdnsOf(bonjour);
    mdns.on('warning', (err: Error) => this.log.debug({ err }, 'mdns: socket warning'));
    let bound = false;
    const bindError = await new Promise<Error | null>((resolve) => {
      mdns.on('error', (err: Error) => {
        if (bound) this.log.warn({ err }, 'mdns: socket error');
        resolve(err);
      });
      mdns.once('ready', () => {
        bound = true;
        resolve(null);
      });
    });
    if (bindError) {
      const code = (bindError as NodeJS.ErrnoException).code;
      this.problem(
        `mdns: cannot use UDP 5353 (${code ?? bindError.message}); another mDNS stack holds it exclusively ` +
          '(avahi-daemon with disallow-other-stacks=yes?): the device is not advertised',
        { err: bindError },
        'error',
      );
      await withTimeout((done) => bonjour.destroy(done), 1000);
      this.failed();
      return;
    }

    const service = bonjour.publish({
      name: this.opts.name,
      type: 'multicam',
      protocol: 'tcp',
      port: this.opts.port,
      host: this.host,
      txt: { deviceId: this.opts.deviceId },
      probe: true,
    });
    // Announce only the chosen addresses (the probe delays the first announcement, so this is in time).
    const allowed = new Set(target.addresses);
    const allRecords = service.records.bind(service);
    service.records = () => allRecords().filter((r) => (r.type !== 'A' && r.type !== 'AAAA') || allowed.has(r.data));
    this.instance = { bonjour, service, key };

    const up = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.upTimeoutMs);
      service.once('up', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    const fields = { fqdn: service.fqdn, host: this.host, port: this.opts.port, addresses: target.addresses };
    if (up) {
      this.log.info(fields, 'mdns: published');
      this.lastProblem = null;
      this.failures = 0;
    } else if (!service.activated) {
      // bonjour-service's probe found the name taken: it stopped the service (and printed an Error on stdout).
      this.problem(`mdns: ${service.fqdn} is already in use on the network (same deviceId on another device?)`, fields, 'error');
      await this.teardown();
      this.failed();
    } else {
      this.problem('mdns: first announcement not sent yet; it will follow', fields);
    }
  }

  /** Send goodbyes (TTL 0) for the service and close the socket. */
  private async teardown(): Promise<void> {
    const inst = this.instance;
    this.instance = null;
    if (!inst) return;
    const wasUp = inst.service.published;
    await withTimeout((done) => (inst.service.stop ? inst.service.stop(done) : done()), 2000);
    await withTimeout((done) => inst.bonjour.destroy(done), 2000);
    if (wasUp) this.log.info({ fqdn: inst.service.fqdn }, 'mdns: withdrawn (goodbye sent)');
  }
}
