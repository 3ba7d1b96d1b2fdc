/**
 * A real avahi-daemon (with a private D-Bus system bus, for avahi-publish) inside a test network
 * namespace. /run and /etc/avahi/services are bind-mounted from a temp folder in the namespace's own
 * mount namespace, so nothing of the host's /run or /etc is touched or seen.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { NsProcess, type PrivateMounts } from './netns.js';

const run = promisify(execFile);

/** The static service avahi-daemon publishes on its own (so "avahi still answers" can be checked). */
export const AVAHI_SIDE_SERVICE = { name: 'multiCam-AVAHI-SIDE', port: 8099, deviceId: 'AVAHI-SIDE' };

/** Names of the Debian packages the avahi tests need, for error messages. */
export const AVAHI_PACKAGES = 'avahi-daemon avahi-utils dbus-daemon';

/** Paths of the programs needed, or a message naming what is missing. */
export async function findAvahiTools(): Promise<{ ok: true } | { ok: false; missing: string }> {
  const missing: string[] = [];
  for (const tool of ['avahi-daemon', 'avahi-publish', 'dbus-daemon']) {
    try {
      await run('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`]);
    } catch {
      missing.push(tool);
    }
  }
  try {
    await run('test', ['-d', '/etc/avahi/services']);
  } catch {
    missing.push('/etc/avahi/services');
  }
  return missing.length === 0 ? { ok: true } : { ok: false, missing: missing.join(', ') };
}

const DBUS_CONF = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`;

function avahiConf(iface: string, disallowOtherStacks: boolean): string {
  return `[server]
host-name=avahi-test-host
use-ipv4=yes
use-ipv6=no
allow-interfaces=${iface}
enable-dbus=yes
disallow-other-stacks=${disallowOtherStacks ? 'yes' : 'no'}
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
[rlimits]
`;
}

const SIDE_SERVICE = `<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>${AVAHI_SIDE_SERVICE.name}</name>
  <service>
    <type>_multicam._tcp</type>
    <port>${AVAHI_SIDE_SERVICE.port}</port>
    <txt-record>deviceId=${AVAHI_SIDE_SERVICE.deviceId}</txt-record>
  </service>
</service-group>
`;

/** A running avahi-daemon + dbus-daemon pair in a namespace. */
export interface AvahiInNs {
  mounts: PrivateMounts;
  /** The avahi-daemon process now running. */
  readonly daemon: NsProcess;
  /** Stop avahi-daemon (the bus stays) and start it again, like `systemctl restart avahi-daemon`. */
  restartDaemon(): Promise<void>;
  stop(): Promise<void>;
}

/** Start dbus-daemon and avahi-daemon in `ns`, restricted to `iface`; resolves once avahi's static service is established. */
export async function startAvahi(ns: string, iface: string, dir: string, opts: { disallowOtherStacks?: boolean } = {}): Promise<AvahiInNs> {
  const mounts: PrivateMounts = { run: path.join(dir, 'run'), services: path.join(dir, 'services') };
  await mkdir(path.join(mounts.run, 'avahi-daemon'), { recursive: true });
  await mkdir(path.join(mounts.run, 'dbus'), { recursive: true });
  await mkdir(mounts.services, { recursive: true });
  await writeFile(path.join(dir, 'dbus.conf'), DBUS_CONF);
  await writeFile(path.join(dir, 'avahi-daemon.conf'), avahiConf(iface, opts.disallowOtherStacks ?? false));
  await writeFile(path.join(mounts.services, 'avahi-side.service'), SIDE_SERVICE);

  const bus = new NsProcess(ns, ['dbus-daemon', '--nofork', '--nopidfile', `--config-file=${path.join(dir, 'dbus.conf')}`], mounts);
  let daemon: NsProcess | undefined;
  const startDaemon = async (): Promise<NsProcess> => {
    const argv = ['avahi-daemon', '--no-drop-root', '--no-chroot', '--no-rlimits', '--no-proc-title', '-f', path.join(dir, 'avahi-daemon.conf')];
    daemon = new NsProcess(ns, argv, mounts);
    await daemon.waitForText(`Service "${AVAHI_SIDE_SERVICE.name}"`, 8000);
    await daemon.waitForText('successfully established', 8000);
    return daemon;
  };
  const stop = async (): Promise<void> => {
    await daemon?.signalAndWait('SIGTERM', 2000);
    await bus.signalAndWait('SIGTERM', 2000);
  };
  try {
    await waitForSocket(path.join(mounts.run, 'dbus', 'system_bus_socket'), bus);
    await startDaemon();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    mounts,
    get daemon(): NsProcess {
      if (!daemon) throw new Error('avahi-daemon is not running');
      return daemon;
    },
    async restartDaemon() {
      await daemon?.signalAndWait('SIGTERM', 2000);
      await startDaemon();
    },
    stop,
  };
}

async function waitForSocket(file: string, owner: NsProcess): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    try {
      await run('test', ['-S', file]);
      return;
    } catch {
      if (owner.child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`${file} did not appear; output:\n${owner.lines.join('\n')}`);
}
