/**
 * Standalone device-side publisher (run as its own process, e.g. inside `ip netns exec`):
 * runs `createAdvertiser` until SIGTERM/SIGINT, then stops it and lets the process end by itself,
 * so a test can tell that no socket, timer or child process is left holding it.
 * stdout carries the advertiser's pino JSON logs plus these lines:
 *   {"event":"started","backend":"bonjour"|"avahi"}   after start() resolved
 *   {"event":"stopped"}                               after stop() resolved
 *
 * Usage: node mdns-publish.js --device-id ID --port 8080 [--backend auto|bonjour|avahi]
 *        [--interface IFACE] [--recheck-ms MS]
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../../src/log.js';
import { createAdvertiser, type MdnsBackendChoice } from '../../src/hw/mdns.js';

/** Print one JSON line. */
function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Publish until signalled. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'device-id': { type: 'string' },
      port: { type: 'string', default: '8080' },
      backend: { type: 'string', default: 'auto' },
      interface: { type: 'string' },
      'recheck-ms': { type: 'string' },
    },
  });
  if (!values['device-id']) throw new Error('--device-id is required');
  const backend = values.backend as MdnsBackendChoice;
  if (!['auto', 'bonjour', 'avahi'].includes(backend)) throw new Error(`bad --backend ${backend}`);

  const log = createLogger('debug');
  const advertiser = createAdvertiser({
    deviceId: values['device-id'],
    port: Number(values.port),
    log,
    backend,
    interface: values.interface,
    recheckMs: values['recheck-ms'] ? Number(values['recheck-ms']) : undefined,
  });

  // Stand in for the device's servers, which keep a real process alive; released on signal.
  const keepAlive = setInterval(() => {}, 1 << 30);
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    clearInterval(keepAlive);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    void advertiser.stop().then(() => emit({ event: 'stopped' }));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  await advertiser.start();
  emit({ event: 'started', backend: advertiser.backend });
}

main().catch((err: unknown) => {
  emit({ event: 'error', message: String(err) });
  process.exitCode = 1;
});
