/**
 * Bench: the Node process's own footprint while the unit captures. A unit runs as its own
 * process (1280x720@30 testsrc, libx264 veryfast 4000 kbit/s, log level info), polled like a real
 * controller (HEARTBEAT every 3 s, DEVICE_STATUS every 2 s). After a 10 s warm-up, /proc/<pid>/stat
 * and /proc/<pid>/status are sampled every second for `--seconds` (default 60) for the node
 * process and, apart, for its capture ffmpeg (pid from <dataDir>/capture.pid). With chronyd
 * available, the unit reads a real loopback chronyd through chronyc like a deployed unit
 * (`--no-chrony` to use clock.source=system). Baseline, sampled at the same time the same way:
 * a bare `node -e "setInterval(()=>{},1000)"`.
 *
 * Usage: node dist/bench/capture-footprint.js [--seconds 60] [--warmup 10] [--no-chrony]
 * Prints one JSON object on stdout; progress on stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { spawnUnit, tempDir, testConfig, waitFor, type UnitProcess } from '../test/helpers/device.js';
import { sendCommand } from '../test/helpers/controller.js';
import { chronydSkipReason, findExecutable, startChronydClient, startChronydServer, type Chronyd } from '../test/helpers/chronyd.js';
import { emit, flag, load, machineInfo, note, numArg, nowMs, onInterrupt, round2, sampleProc, sleep, stopUnitProcess, summarise, CLK_TCK, type ProcSample } from './capture-lib.js';

const HOST = '127.0.0.1';
const SECONDS = numArg('seconds', 60);
const WARMUP = numArg('warmup', 10);
const SAMPLE_MS = 1000;
const GOAL_RSS_MB = 80;
const GOAL_CPU = 3;

async function main(): Promise<void> {
  const machine = machineInfo();
  const tmp = await tempDir('arenacam-bench-footprint-');
  const dataDir = tmp.dir;
  let unit: UnitProcess | null = null;
  let bare: ChildProcess | null = null;
  const chronyds: Chronyd[] = [];
  const timers: NodeJS.Timeout[] = [];
  const cleanup = async (): Promise<void> => {
    for (const t of timers) clearInterval(t);
    if (unit) await stopUnitProcess(unit, dataDir).catch(() => undefined);
    unit = null;
    if (bare && bare.exitCode === null) bare.kill('SIGKILL');
    for (const c of chronyds.splice(0).reverse()) await c.stop().catch(() => undefined);
    await tmp.cleanup();
  };
  onInterrupt(cleanup);
  try {
    let clock: Record<string, unknown> = { source: 'system' };
    let clockNote = 'clock.source=system (no chronyc polls)';
    const skip = flag('no-chrony') ? 'disabled with --no-chrony' : chronydSkipReason();
    if (!skip) {
      try {
        const server = await startChronydServer();
        chronyds.push(server);
        const client = await startChronydClient(server.ntpPort!);
        chronyds.push(client);
        clock = { source: 'chrony', chronycPath: findExecutable('chronyc')!, chronySocket: client.socket, maxOffsetMs: 50 };
        clockNote = 'clock.source=chrony: the unit runs chronyc -c tracking every 5 s (default pollMs) against a loopback chronyd';
      } catch (err) {
        clockNote = `clock.source=system: chronyd could not start (${(err as Error).message.split('\n')[0]})`;
      }
    } else clockNote = `clock.source=system: ${skip}`;
    note(clockNote);

    const config = testConfig(dataDir, {
      camera: { source: 'testsrc', width: 1280, height: 720, fps: 30 },
      encoder: { codec: 'libx264', bitrateKbps: 4000, preset: 'veryfast' },
      log: { level: 'info' },
      clock,
    } as never);
    note('spawning a unit: 1280x720@30 testsrc, libx264 veryfast 4000 kbit/s');
    const u = await spawnUnit(dataDir, config, 'footprint');
    unit = u;
    await waitFor(() => u.log().includes('"capture is running"'), 30000, 'capture to run');
    bare = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], { stdio: 'ignore' });

    // A controller's polling, for the whole run (warm-up included).
    const polls = { heartbeat: 0, deviceStatus: 0, failures: 0, statuses: new Set<string>() };
    const poll = (cmd: string, key: 'heartbeat' | 'deviceStatus') => () => {
      sendCommand(HOST, u.multicamPort, cmd).then(
        (r) => {
          polls[key]++;
          polls.statuses.add(String(r.body.status));
        },
        () => polls.failures++,
      );
    };
    timers.push(setInterval(poll('HEARTBEAT', 'heartbeat'), 3000), setInterval(poll('DEVICE_STATUS', 'deviceStatus'), 2000));

    note(`warming up ${WARMUP} s`);
    await sleep(WARMUP * 1000);
    const ffmpegPid = Number((await readFile(`${dataDir}/capture.pid`, 'utf8')).trim());
    const nodePid = u.proc.pid!;
    const barePid = bare.pid!;
    const series: Record<'node' | 'ffmpeg' | 'bare', ProcSample[]> = { node: [], ffmpeg: [], bare: [] };
    note(`sampling node ${nodePid}, ffmpeg ${ffmpegPid} and bare node ${barePid} every ${SAMPLE_MS} ms for ${SECONDS} s`);
    const t0 = nowMs();
    for (let k = 0; nowMs() - t0 <= SECONDS * 1000 + 1; k++) {
      const [n, f, b] = await Promise.all([sampleProc(nodePid), sampleProc(ffmpegPid), sampleProc(barePid)]);
      if (!n || !f || !b) throw new Error(`a sampled process is gone (node ${!!n}, ffmpeg ${!!f}, bare ${!!b}): ${u.log().slice(-1500)}`);
      series.node.push(n);
      series.ffmpeg.push(f);
      series.bare.push(b);
      await sleep(t0 + (k + 1) * SAMPLE_MS - nowMs());
    }
    for (const t of timers.splice(0)) clearInterval(t);
    const node = summarise(series.node);
    const ffmpeg = summarise(series.ffmpeg);
    const bareNode = summarise(series.bare);
    const captureRestarts = (u.log().match(/"capture failed; restarting"/g) ?? []).length;
    await stopUnitProcess(u, dataDir);
    unit = null;
    emit({
      bench: 'capture-footprint',
      date: new Date().toISOString(),
      machine,
      loadavgEnd: load(),
      params: { seconds: SECONDS, warmupSec: WARMUP, sampleMs: SAMPLE_MS, clkTck: CLK_TCK, camera: 'testsrc2 1280x720@30', encoder: 'libx264 veryfast 4000 kbit/s', clock: clockNote, mdns: 'disabled (testConfig)' },
      polls: { heartbeat: polls.heartbeat, deviceStatus: polls.deviceStatus, failures: polls.failures, statuses: [...polls.statuses] },
      unit: { node, ffmpeg, captureRestarts },
      baseline: { what: 'bare node -e "setInterval(()=>{},1000)", sampled at the same time', node: bareNode },
      ratio: {
        rssMaxOverBare: round2(node.rssMaxMB / bareNode.rssMaxMB),
        rssMeanOverBare: round2(node.rssMeanMB / bareNode.rssMeanMB),
        rssMaxAboveBareMB: round2(node.rssMaxMB - bareNode.rssMaxMB),
      },
      goals: {
        rssUnder80MB: node.rssMaxMB < GOAL_RSS_MB,
        cpuUnder3Percent: node.cpuPercentOfOneCore < GOAL_CPU,
      },
    });
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`capture-footprint failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
