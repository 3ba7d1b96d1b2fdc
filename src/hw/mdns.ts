/** mDNS advertisement of this MultiCam device as `multiCam-<deviceId>._multicam._tcp.local.`. */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { BonjourAdvertiser } from './mdns-bonjour.js';
import { AvahiAdvertiser } from './mdns-avahi.js';

/** Publishes the device's service until stopped. */
export interface Advertiser {
  /** Publish. Resolves once announced, or once a failure has been logged: network trouble never rejects. */
  start(): Promise<void>;
  /** Withdraw the service (goodbye packets) and release sockets and child processes. Safe to call twice. */
  stop(): Promise<void>;
  /** The backend actually in use: 'bonjour' or 'avahi'. */
  readonly backend: string;
}

/** Which implementation to use; 'auto' picks avahi when avahi-daemon runs, else bonjour. */
export type MdnsBackendChoice = 'auto' | 'bonjour' | 'avahi';

/** What `createAdvertiser` needs. */
export interface AdvertiserOptions {
  deviceId: string;
  /** The MultiCam TCP port actually listened on (1–65535). */
  port: number;
  log: Logger;
  backend?: MdnsBackendChoice;
  /** bonjour only: an interface name (`wlan0`) or its IPv4 address to advertise on; default all. */
  interface?: string;
  /** How 'auto' looks at the host; defaults to the real file system and PATH. */
  probe?: AvahiProbe;
  /** bonjour only: how often addresses are re-checked and a failed publish retried (ms); default 10 s. */
  recheckMs?: number;
}

/** The DNS-SD service type (RFC 6763 form) the MultiCam controller browses for. */
export const MULTICAM_SERVICE_TYPE = '_multicam._tcp';

/** Where avahi-daemon listens for its simple protocol while it runs (Debian / Raspberry Pi OS). */
export const AVAHI_SOCKET_PATH = '/run/avahi-daemon/socket';

/** What 'auto' asks of the host; injected so tests can play any machine. */
export interface AvahiProbe {
  /** True when avahi-daemon's socket exists, i.e. the daemon is (or was last seen) running. */
  avahiSocketExists(): boolean;
  /** Absolute path of an executable found on PATH (plus /usr/sbin, /usr/bin), or null. */
  findExecutable(name: string): string | null;
}

/** The real host: looks at AVAHI_SOCKET_PATH and at PATH. */
export function systemAvahiProbe(env: NodeJS.ProcessEnv = process.env): AvahiProbe {
  return {
    avahiSocketExists() {
      try {
        return statSync(AVAHI_SOCKET_PATH).isSocket();
      } catch {
        return false;
      }
    },
    findExecutable(name) {
      const dirs = [...(env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/bin'];
      for (const dir of dirs.filter((d) => d !== '')) {
        const candidate = path.join(dir, name);
        try {
          accessSync(candidate, constants.X_OK);
          if (statSync(candidate).isFile()) return candidate;
        } catch {
          // not here
        }
      }
      return null;
    },
  };
}

/** The outcome of backend selection, with a human-readable reason for the log. */
export interface BackendDecision {
  backend: 'bonjour' | 'avahi';
  reason: string;
  /** Path of avahi-publish when backend is 'avahi' (null: not installed). */
  avahiPublish: string | null;
  /** True when the decision deserves a warning (a configured backend cannot work, or a fallback). */
  degraded: boolean;
}

/** Decide which backend to use. Pure apart from the probe. */
export function chooseBackend(requested: MdnsBackendChoice, probe: AvahiProbe): BackendDecision {
  if (requested === 'bonjour') {
    return { backend: 'bonjour', reason: 'mdns backend configured as bonjour', avahiPublish: null, degraded: false };
  }
  const avahiPublish = probe.findExecutable('avahi-publish');
  if (requested === 'avahi') {
    return avahiPublish
      ? { backend: 'avahi', reason: 'mdns backend configured as avahi', avahiPublish, degraded: false }
      : {
          backend: 'avahi',
          reason: 'mdns backend configured as avahi, but avahi-publish is not installed (apt-get install avahi-utils)',
          avahiPublish: null,
          degraded: true,
        };
  }
  const daemon = probe.avahiSocketExists();
  if (daemon && avahiPublish) {
    return {
      backend: 'avahi',
      reason: `avahi-daemon is running (${AVAHI_SOCKET_PATH}) and ${avahiPublish} exists: publishing through the host's own mDNS responder`,
      avahiPublish,
      degraded: false,
    };
  }
  if (daemon) {
    return {
      backend: 'bonjour',
      reason:
        'avahi-daemon is running but avahi-publish is missing (apt-get install avahi-utils); ' +
        'using bonjour-service, which shares UDP 5353 with avahi-daemon unless it sets disallow-other-stacks=yes',
      avahiPublish: null,
      degraded: true,
    };
  }
  return {
    backend: 'bonjour',
    reason: `avahi-daemon is not running (no ${AVAHI_SOCKET_PATH}): using bonjour-service`,
    avahiPublish: null,
    degraded: false,
  };
}

/** The DNS-SD instance name the controller shows (after stripping `multiCam-`). */
export function serviceInstanceName(deviceId: string): string {
  return `multiCam-${deviceId}`;
}

/** Build the advertiser; picks and logs the backend once. Throws only on invalid options. */
export function createAdvertiser(opts: AdvertiserOptions): Advertiser {
  if (opts.deviceId.trim() === '') throw new Error('mdns: deviceId must not be empty');
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new Error(`mdns: port must be the listening MultiCam port (1-65535), got ${opts.port}`);
  }
  const name = serviceInstanceName(opts.deviceId);
  if (Buffer.byteLength(name, 'utf8') > 63) {
    throw new Error(`mdns: service name "${name}" is longer than the 63 bytes a DNS label allows`);
  }
  const decision = chooseBackend(opts.backend ?? 'auto', opts.probe ?? systemAvahiProbe());
  const log = opts.log.child({ mdnsBackend: decision.backend });
  const fields = { backend: decision.backend, requested: opts.backend ?? 'auto', reason: decision.reason };
  if (decision.degraded) log.warn(fields, 'mdns: backend chosen with a problem');
  else log.info(fields, 'mdns: backend chosen');

  if (decision.backend === 'avahi') {
    if (opts.interface !== undefined) {
      log.info({ interface: opts.interface }, 'mdns: interface is ignored with avahi; avahi-daemon.conf allow-interfaces decides');
    }
    return new AvahiAdvertiser({ name, serviceType: MULTICAM_SERVICE_TYPE, deviceId: opts.deviceId, port: opts.port, log, command: decision.avahiPublish });
  }
  return new BonjourAdvertiser({
    name,
    deviceId: opts.deviceId,
    port: opts.port,
    log,
    interface: opts.interface,
    recheckMs: opts.recheckMs,
  });
}
