#!/usr/bin/env node
/** Command-line entry: `arenacam serve [--config FILE]`, `arenacam config` (print the effective config). */
import { mkdir } from 'node:fs/promises';
import { loadConfig, ConfigError } from './config/load.js';
import { createLogger } from './log.js';
import { startApp } from './app.js';
import { sendMultiCam } from './protocols/multicam/client.js';
import { savePairLink } from './device/pairing-store.js';
import { SystemdService } from './hw/systemd-service.js';
import { camerasCli } from './hw/camera-report.js';

const USAGE = `usage:
  arenacam serve [--config FILE]     run the device (config: YAML or JSON; ARENACAM_* env overrides)
  arenacam config [--config FILE]    print the effective configuration as JSON
  arenacam cameras [--config FILE] [--json]
                                     list USB and CSI cameras, probe the encoder and show the
                                     capture command the config would run (exit 1: no camera)
  arenacam status [HOST[:PORT]]      ask a device for its status (default 127.0.0.1:8080)
  arenacam record start|stop [HOST[:PORT]] [--in SECONDS]
                                     start (optionally scheduled) or stop a recording
  arenacam pair LINK [--config FILE] pair with a VAR coordinator: LINK is the QR code's
                                     var://pair?host=…&port=…&token=… (or a ws:// URL);
                                     a running unit picks it up within seconds
`;

function parseArgs(argv: string[]): { cmd: string | undefined; configFile: string | undefined } {
  const [cmd, ...rest] = argv;
  let configFile = process.env.ARENACAM_CONFIG || undefined;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--config' || rest[i] === '-c') configFile = rest[++i];
    else if (rest[i].startsWith('--config=')) configFile = rest[i].slice('--config='.length);
    else throw new ConfigError(rest[i], 'unknown argument\n' + USAGE);
  }
  return { cmd, configFile };
}

/** `arenacam status|record …`: talk to a device over MultiCam. */
async function client(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  let sub: string | undefined;
  if (cmd === 'record') sub = rest.shift();
  let inSec = 0;
  const pos: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--in') inSec = Number(rest[++i]);
    else pos.push(rest[i]);
  }
  const [host, portText] = (pos[0] ?? '127.0.0.1:8080').split(':');
  const port = Number(portText ?? 8080);
  const command =
    cmd === 'status' ? 'DEVICE_STATUS' : sub === 'start' ? 'START_RECORDING' : sub === 'stop' ? 'STOP_RECORDING' : null;
  if (!command || !Number.isFinite(inSec) || !Number.isInteger(port)) {
    process.stderr.write(USAGE);
    return 2;
  }
  try {
    const reply = await sendMultiCam(host || '127.0.0.1', port, { command, timestamp: Date.now() / 1000 + inSec });
    process.stdout.write(JSON.stringify(reply) + '\n');
    return reply.status === 'error' || reply.status === 'time_not_synchronized' ? 1 : 0;
  } catch (err) {
    process.stderr.write(`arenacam: ${(err as Error).message}\n`);
    return 1;
  }
}

async function main(): Promise<number> {
  const first = process.argv[2];
  if (first === 'cameras') return camerasCli(process.argv.slice(3));
  if (first === 'status' || first === 'record') return client(process.argv.slice(2));
  let args;
  let link: string | undefined;
  try {
    const argv = process.argv.slice(2);
    if (first === 'pair') {
      link = argv[1];
      if (!link || link.startsWith('-')) throw new ConfigError('pair', 'needs the pairing link\n' + USAGE);
      argv.splice(1, 1);
    }
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (!args.cmd || args.cmd === 'help' || args.cmd === '--help') {
    process.stdout.write(USAGE);
    return args.cmd ? 0 : 2;
  }
  let config;
  try {
    config = loadConfig(args.configFile);
  } catch (err) {
    process.stderr.write(`arenacam: ${(err as Error).message}\n`);
    return 2;
  }
  if (args.cmd === 'config') {
    process.stdout.write(JSON.stringify(config, null, 2) + '\n');
    return 0;
  }
  if (args.cmd === 'pair' && link) {
    await mkdir(config.dataDir, { recursive: true });
    const r = await savePairLink(config.dataDir, link, Date.now());
    if ('error' in r) {
      process.stderr.write(`arenacam: ${r.error}\n`);
      return 2;
    }
    process.stdout.write(`pairing link saved for ${r.url} (in ${config.dataDir}/var-link.json); the unit pairs at its next attempt\n`);
    return 0;
  }
  if (args.cmd !== 'serve') {
    process.stderr.write(`arenacam: unknown command ${args.cmd}\n${USAGE}`);
    return 2;
  }
  const log = createLogger(config.log.level);
  // systemd (Type=notify): READY=1 after startApp, STOPPING=1 on a signal, gated watchdog pings.
  const service = new SystemdService({ env: process.env, pid: process.pid, log: log.child({ part: 'systemd' }), captureGraceMs: config.systemd.captureGraceMs, unsetEnvironment: true });
  // Signals are handled from the first moment: one during start-up aborts it cleanly, so ffmpeg
  // and every listener started so far are stopped rather than orphaned.
  const startup = new AbortController();
  let app: Awaited<ReturnType<typeof startApp>> | null = null;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'signal received');
    void service.stopping();
    if (!app) {
      startup.abort(new Error(`start-up interrupted by ${sig}`));
      return;
    }
    app.stop().then(
      () => resolveDone(0),
      (err) => {
        log.error({ err: (err as Error).message }, 'shutdown error');
        resolveDone(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Last resort: a promise rejection nobody handled is a bug; log it loudly instead of dying
  // mid-recording (capture and the recordings are unaffected; systemd would restart us anyway).
  process.on('unhandledRejection', (err) => log.error({ err: (err as Error)?.stack ?? String(err) }, 'unhandled promise rejection (a bug)'));
  try {
    app = await startApp(config, log, { signal: startup.signal });
    void service.ready(app);
  } catch (err) {
    if (startup.signal.aborted) {
      log.info('start-up interrupted; everything started so far was stopped');
      return 0;
    }
    log.fatal({ err: (err as Error).message }, 'arenacam could not start');
    return 1;
  }
  return done;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Give pino's stdout a moment, then leave even if a stray handle remains.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err) => {
    process.stderr.write(`arenacam: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
