/**
 * Bench: the Node process's RSS and CPU on arm64, for the record. No Pi here, so the arm64 build
 * runs under qemu-user: scripts/install.sh installs the unit into a Debian trixie arm64 root
 * (test/helpers/arm64-root.ts; the installed root is cached as a tarball keyed by the install
 * inputs), then `arenacam serve` runs there as user arenacam (640x360@15 testsrc, libx264
 * ultrafast 1000 kbit/s, clock.source=system, mDNS and GPIO off) next to the same build on this
 * x86 host with the same settings, both polled like a real controller (HEARTBEAT every 3 s,
 * DEVICE_STATUS every 2 s). After a warm-up, /proc/<pid>/stat and /status of both node processes
 * (and their ffmpeg) are sampled every second for `--seconds` (default 60), with a bare
 * `node -e "setInterval(()=>{},1000)"` on each side as the same-run baseline.
 *
 * Caveat: under qemu-user the sampled process is qemu running node: its CPU includes the
 * emulation (binary translation, typically 5-20x native) and its RSS the translator's code cache.
 * These are upper bounds, not a Pi's figures; the host run is the same-run baseline.
 *
 * Usage: node dist/bench/arm64-footprint.js [--seconds 60] [--warmup 15]
 * Prints one JSON object on stdout; progress on stderr. Needs root, mmdebstrap, qemu-user-static.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Arm64Root, baseRootTar, ensureQemuBinfmt, CACHE_DIR } from '../test/helpers/arm64-root.js';
import { copyCheckout, installEnv, lastLines } from '../test/install/install-lib.js';
import { spawnUnit, tempDir, testConfig, waitFor, type UnitProcess } from '../test/helpers/device.js';
import { sendCommand } from '../test/helpers/controller.js';
import { emit, load, machineInfo, note, numArg, nowMs, onInterrupt, round2, sampleProc, sleep, stopUnitProcess, summarise, CLK_TCK, type ProcSample } from './capture-lib.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const HOST = '127.0.0.1';
const SECONDS = numArg('seconds', 60);
const WARMUP = numArg('warmup', 15);
const SAMPLE_MS = 1000;
const VIDEO = { camera: { source: 'testsrc', width: 640, height: 360, fps: 15 }, encoder: { codec: 'libx264', preset: 'ultrafast', bitrateKbps: 1000 } } as const;

/** Hash of what install.sh reads from the checkout: the installed-root cache key. */
function installInputsHash(baseTar: string): string {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', 'scripts', 'systemd', 'config', 'src', 'package.json', 'package-lock.json', 'tsconfig.json', 'README.md'], { cwd: REPO, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f && existsSync(join(REPO, f)))
    .sort();
  const h = createHash('sha256').update(baseTar);
  for (const f of files) h.update(f).update(readFileSync(join(REPO, f)));
  return h.digest('hex').slice(0, 12);
}

/** An arm64 root with arenacam installed: from the cache, or installed now (and cached). */
async function installedRoot(): Promise<{ root: Arm64Root; prep: Record<string, unknown> }> {
  const base = baseRootTar(note);
  const cached = join(CACHE_DIR, `trixie-arm64-installed-${installInputsHash(base.path)}.tar`);
  if (existsSync(cached)) return { root: await Arm64Root.create(cached), prep: { baseBuildSec: base.buildSec, installSec: null, installedRootFromCache: cached } };
  const root = await Arm64Root.create(base.path);
  try {
    // Its own apt download folder (apt locks it; the install test may run at the same time), seeded
    // with hard links to the test's downloads.
    const debs = join(CACHE_DIR, 'apt-archives-arm64-bench');
    root.bind(debs, '/var/cache/apt/archives');
    if (existsSync(join(CACHE_DIR, 'apt-archives-arm64'))) execFileSync('sh', ['-c', 'cp -aln "$1"/*.deb "$2"/ 2>/dev/null || true', 'seed', join(CACHE_DIR, 'apt-archives-arm64'), debs]);
    root.bind(join(CACHE_DIR, 'npm-cache-arm64'), '/var/cache/arenacam-npm');
    copyCheckout(REPO, root.path('/usr/local/src/arenacam'));
    note('running scripts/install.sh in the arm64 root (qemu-user; minutes)');
    const t0 = Date.now();
    const r = await root.run(['/bin/bash', '/usr/local/src/arenacam/scripts/install.sh'], { env: installEnv(), timeoutMs: 60 * 60_000 });
    if (r.code !== 0) throw new Error(`install.sh failed:\n${lastLines(r.stdout + r.stderr, 40)}`);
    const installSec = Math.round((Date.now() - t0) / 1000);
    root.unbind('/var/cache/arenacam-npm');
    root.unbind('/var/cache/apt/archives');
    // One installed root is kept (1.2 GB): the new one replaces those of earlier sources.
    for (const f of readdirSync(CACHE_DIR)) if (/^trixie-arm64-installed-.*\.tar$/.test(f)) rmSync(join(CACHE_DIR, f), { force: true });
    root.saveTar(cached);
    return { root, prep: { baseBuildSec: base.buildSec, installSec, installedRootCachedAs: cached } };
  } catch (err) {
    root.destroy();
    throw err;
  }
}

async function main(): Promise<void> {
  const skip = ensureQemuBinfmt();
  if (skip) throw new Error(`cannot run arm64 code here: ${skip}`);
  const machine = machineInfo();
  const tmp = await tempDir('arenacam-bench-arm64-');
  let root: Arm64Root | null = null;
  let host: UnitProcess | null = null;
  const bares: ChildProcess[] = [];
  const timers: NodeJS.Timeout[] = [];
  const cleanup = async (): Promise<void> => {
    for (const t of timers) clearInterval(t);
    for (const b of bares.splice(0)) if (b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
    if (host) await stopUnitProcess(host, tmp.dir).catch(() => undefined);
    host = null;
    root?.destroy();
    root = null;
    await tmp.cleanup();
  };
  onInterrupt(cleanup);
  try {
    const made = await installedRoot();
    const r = (root = made.root);
    const cfg = testConfig('/var/lib/arenacam', { ...VIDEO, log: { level: 'info' }, gpio: { enabled: false } } as never);
    writeFileSync(r.path('/tmp/bench.json'), JSON.stringify(cfg), { mode: 0o644 });
    note('starting the arm64 unit under qemu-user');
    const t0 = Date.now();
    const arm = r.spawnAs('arenacam', ['/usr/bin/node', '/opt/arenacam/dist/src/cli.js', 'serve', '--config', '/tmp/bench.json'], { HOME: '/var/lib/arenacam' });
    let armOut = '';
    arm.stdout!.on('data', (c) => (armOut += c));
    arm.stderr!.on('data', (c) => (armOut += c));
    const armPort = await waitFor(() => {
      if (arm.exitCode !== null) throw new Error(`arm64 unit exited: ${armOut.slice(-2000)}`);
      return Number(/"multicamPort":(\d+).*"arenacam ready"/.exec(armOut)?.[1] ?? 0);
    }, 300_000, 'the arm64 unit to be ready');
    const armReadySec = (Date.now() - t0) / 1000;
    await waitFor(() => armOut.includes('"capture is running"'), 180_000, 'arm64 capture to run');

    note('starting the same unit on this host');
    const t1 = Date.now();
    const h = (host = await spawnUnit(tmp.dir, testConfig(tmp.dir, { ...VIDEO, log: { level: 'info' } } as never), 'arm64-baseline'));
    const hostReadySec = (Date.now() - t1) / 1000;
    await waitFor(() => h.log().includes('"capture is running"'), 30_000, 'host capture to run');

    // Same-run baselines: a bare node (setInterval only) in the root under qemu, and one on the host.
    const bareArm = r.spawnAs('arenacam', ['/usr/bin/node', '-e', 'setInterval(()=>{},1000)'], { HOME: '/var/lib/arenacam' });
    const bareHost = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], { stdio: 'ignore' });
    bares.push(bareArm, bareHost);
    const polls = { ok: 0, failures: 0 };
    const poll = (port: number, cmd: string) => () => void sendCommand(HOST, port, cmd).then(() => polls.ok++, () => polls.failures++);
    for (const port of [armPort, h.multicamPort]) timers.push(setInterval(poll(port, 'HEARTBEAT'), 3000), setInterval(poll(port, 'DEVICE_STATUS'), 2000));
    note(`warming up ${WARMUP} s`);
    await sleep(WARMUP * 1000);
    const pids = {
      armNode: arm.pid!,
      armFfmpeg: Number(readFileSync(r.path('/var/lib/arenacam/capture.pid'), 'utf8').trim()),
      hostNode: h.proc.pid!,
      hostFfmpeg: Number(readFileSync(join(tmp.dir, 'capture.pid'), 'utf8').trim()),
      armBare: bareArm.pid!,
      hostBare: bareHost.pid!,
    };
    const series: Record<keyof typeof pids, ProcSample[]> = { armNode: [], armFfmpeg: [], hostNode: [], hostFfmpeg: [], armBare: [], hostBare: [] };
    note(`sampling ${JSON.stringify(pids)} every ${SAMPLE_MS} ms for ${SECONDS} s`);
    const ts = nowMs();
    for (let k = 0; nowMs() - ts <= SECONDS * 1000 + 1; k++) {
      for (const key of Object.keys(pids) as Array<keyof typeof pids>) {
        const s = await sampleProc(pids[key]);
        if (!s) throw new Error(`${key} (${pids[key]}) is gone: ${(key.startsWith('arm') ? armOut : h.log()).slice(-1500)}`);
        series[key].push(s);
      }
      await sleep(ts + (k + 1) * SAMPLE_MS - nowMs());
    }
    for (const t of timers.splice(0)) clearInterval(t);
    const s = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, summarise(v)])) as Record<keyof typeof pids, ReturnType<typeof summarise>>;
    const restarts = (text: string) => (text.match(/"capture failed; restarting"/g) ?? []).length;
    const armRestarts = restarts(armOut);
    const hostRestarts = restarts(h.log());
    process.kill(arm.pid!, 'SIGTERM');
    await waitFor(() => arm.exitCode !== null || arm.signalCode !== null, 60_000, 'the arm64 unit to stop').catch(() => undefined);
    emit({
      bench: 'arm64-footprint',
      date: new Date().toISOString(),
      machine,
      loadavgEnd: load(),
      params: { seconds: SECONDS, warmupSec: WARMUP, sampleMs: SAMPLE_MS, clkTck: CLK_TCK, camera: 'testsrc 640x360@15', encoder: 'libx264 ultrafast 1000 kbit/s', clock: 'system', mdns: 'off', gpio: 'off', arm64: 'Debian trixie arm64 root, installed by scripts/install.sh, run through qemu-aarch64-static (binfmt_misc) in a chroot', concurrent: 'both units run at the same time' },
      prep: made.prep,
      readySec: { arm64: round2(armReadySec), host: round2(hostReadySec) },
      polls,
      arm64: { node: s.armNode, ffmpeg: s.armFfmpeg, bareNode: s.armBare, captureRestarts: armRestarts },
      host: { node: s.hostNode, ffmpeg: s.hostFfmpeg, bareNode: s.hostBare, captureRestarts: hostRestarts },
      aboveBare: {
        what: 'the unit minus a bare node -e "setInterval(()=>{},1000)" sampled at the same time on the same side: takes out most of qemu\'s and V8\'s fixed cost',
        arm64RssMB: round2(s.armNode.rssMeanMB - s.armBare.rssMeanMB),
        hostRssMB: round2(s.hostNode.rssMeanMB - s.hostBare.rssMeanMB),
        arm64CpuPercent: round2(s.armNode.cpuPercentOfOneCore - s.armBare.cpuPercentOfOneCore),
        hostCpuPercent: round2(s.hostNode.cpuPercentOfOneCore - s.hostBare.cpuPercentOfOneCore),
      },
      ratio: {
        nodeRssMeanArm64OverHost: round2(s.armNode.rssMeanMB / s.hostNode.rssMeanMB),
        nodeCpuArm64OverHost: round2(s.armNode.cpuPercentOfOneCore / s.hostNode.cpuPercentOfOneCore),
        ffmpegCpuArm64OverHost: round2(s.armFfmpeg.cpuPercentOfOneCore / s.hostFfmpeg.cpuPercentOfOneCore),
      },
      caveat: 'arm64 figures are qemu-user running the arm64 binaries: CPU includes binary translation and RSS the translator\'s code cache, so both overstate a Pi; use the host run as the same-run baseline and confirm on a Pi',
    });
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`arm64-footprint failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
