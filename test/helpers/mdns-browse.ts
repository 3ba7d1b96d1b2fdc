/**
 * Standalone controller-side browser (run as its own process, e.g. inside `ip netns exec`):
 * browses `_<type>._tcp` with bonjour-service and prints one JSON line per event on stdout:
 *   {"event":"browsing"}                       once the socket is bound
 *   {"event":"up","name","shown","host","port","ipv4","addresses","txt"}
 *   {"event":"down","name"}
 *   {"event":"done","seen":[names]}             before exiting
 * Like the MultiCam controller, it reports the first IPv4 address and strips `multiCam-` for `shown`.
 *
 * Usage: node mdns-browse.js [--type multicam] [--duration-ms 4000] [--until up:NAME,down:NAME]
 * With --until it exits as soon as every listed event has been seen.
 */
import type { EventEmitter } from 'node:events';
import { parseArgs } from 'node:util';
import { Bonjour, type Service } from 'bonjour-service';

interface Answer {
  name: string;
  type: string;
  ttl?: number;
  data: unknown;
}

/** Print one JSON line. */
function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Browse until the duration ends or every `--until` event has been seen. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      type: { type: 'string', default: 'multicam' },
      'duration-ms': { type: 'string', default: '4000' },
      until: { type: 'string', default: '' },
    },
  });
  const pending = new Set((values.until ?? '').split(',').filter((s) => s !== ''));
  const bonjour = new Bonjour({}, (err: Error) => emit({ event: 'warning', message: err.message }));
  // bonjour-service keeps its multicast-dns emitter private; we need it for readiness and A records.
  const mdns = (bonjour as unknown as { server: { mdns: EventEmitter & { query(name: string, type: string): void } } }).server.mdns;
  mdns.on('error', (err: Error) => emit({ event: 'error', message: err.message }));

  // A records seen in any response, so a service announced without them can still be resolved.
  const ipv4ByHost = new Map<string, string[]>();
  const waiters = new Map<string, Array<() => void>>();
  mdns.on('response', (packet: { answers: Answer[]; additionals: Answer[] }) => {
    for (const rr of [...packet.answers, ...packet.additionals]) {
      if (rr.type !== 'A' || rr.ttl === 0) continue;
      const host = rr.name.toLowerCase();
      const list = ipv4ByHost.get(host) ?? [];
      if (!list.includes(String(rr.data))) list.push(String(rr.data));
      ipv4ByHost.set(host, list);
      for (const wake of waiters.get(host) ?? []) wake();
      waiters.delete(host);
    }
  });

  const resolveIpv4 = async (service: Service): Promise<string | null> => {
    const direct = (service.addresses ?? []).find((a) => !a.includes(':'));
    if (direct) return direct;
    const host = service.host.toLowerCase();
    if (!ipv4ByHost.has(host)) {
      const arrived = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1500);
        waiters.set(host, [...(waiters.get(host) ?? []), () => (clearTimeout(timer), resolve())]);
      });
      mdns.query(service.host, 'A');
      await arrived;
    }
    return ipv4ByHost.get(host)?.[0] ?? null;
  };

  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const seen: string[] = [];
  const mark = (key: string): void => {
    pending.delete(key);
    if (values.until && pending.size === 0) finish();
  };

  await new Promise<void>((resolve) => mdns.once('ready', resolve));
  emit({ event: 'browsing' });
  const browser = bonjour.find({ type: values.type ?? 'multicam', protocol: 'tcp' });
  browser.on('up', (service: Service) => {
    void resolveIpv4(service).then((ipv4) => {
      seen.push(service.name);
      emit({
        event: 'up',
        name: service.name,
        shown: service.name.replace(/^multiCam-/, ''),
        host: service.host,
        port: service.port,
        ipv4,
        addresses: service.addresses ?? [],
        txt: service.txt ?? {},
      });
      mark(`up:${service.name}`);
    });
  });
  browser.on('down', (service: Service) => {
    emit({ event: 'down', name: service.name });
    mark(`down:${service.name}`);
  });
  // Ask again now and then, as a controller does, in case an announcement was missed.
  const requery = setInterval(() => browser.update(), 1000);
  const timer = setTimeout(finish, Number(values['duration-ms']));
  await finished;
  clearInterval(requery);
  clearTimeout(timer);
  browser.stop();
  emit({ event: 'done', seen, missing: [...pending] });
  await new Promise<void>((resolve) => bonjour.destroy(resolve));
}

main().catch((err: unknown) => {
  emit({ event: 'error', message: String(err) });
  process.exitCode = 1;
});
