/**
 * Bench: how long STOP_RECORDING takes to answer after a long recording. A unit runs as its own
 * process at 1280x720@30 (testsrc, libx264 veryfast, 4000 kbit/s, like the defaults); the
 * recording starts now, runs `--seconds` (default 600), and the controller times the STOP reply
 * (the reply comes once the MP4 is assembled). The unit's log splits that into waiting for the
 * last segment vs assembly ('recording finished' carries assembleMs). Baseline, right after the
 * stop and with the unit still capturing: a bare
 *   ffmpeg -f concat -safe 0 -i list -c copy -movflags +faststart out.mp4
 * over the same segment files (from <dataDir>/segments/<runBase>.csv).
 *
 * Also times a replay of the unit's own assembleRange on the same segments (ffmpeg + edit-list
 * trim + fsync without the device around it), and with --repeat N runs baseline and replay
 * N times in turn (default 2).
 *
 * Usage: node dist/bench/stop-latency.js [--seconds 600] [--repeat 2]
 * Prints one JSON object on stdout; progress on stderr.
 */
import { open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { spawnUnit, tempDir, testConfig, waitFor, type UnitProcess } from '../test/helpers/device.js';
import { sendCommand } from '../test/helpers/controller.js';
import { assembleRange } from '../src/media/assemble.js';
import { parseSegmentLine, type Segment } from '../src/capture/segment-store.js';
import { emit, load, machineInfo, note, numArg, nowMs, onInterrupt, round2, sampleProc, sleep, stopUnitProcess } from './capture-lib.js';

const HOST = '127.0.0.1';
const SECONDS = numArg('seconds', 600);
/** How many times the baseline and the replay are run after the stop (alternating); the first pair is the headline. */
const REPEAT = Math.round(numArg('repeat', 2));
const run = promisify(execFile);

/** The unit's JSON log lines whose msg is `msg`. */
function logLines(unit: UnitProcess, msg: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of unit.log().split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      if (j.msg === msg) out.push(j);
    } catch {
      /* not JSON */
    }
  }
  return out;
}

/** Segments of the store overlapping [startMs, stopMs), read from the runs' CSV lists. */
async function segmentsInRange(dir: string, startMs: number, stopMs: number): Promise<Array<{ path: string; startMs: number; endMs: number }>> {
  const segs: Array<{ path: string; startMs: number; endMs: number }> = [];
  for (const csv of (await readdir(dir)).filter((n) => /^\d+\.csv$/.test(n))) {
    const runBase = Number(csv.slice(0, -4));
    for (const line of (await readFile(join(dir, csv), 'utf8')).split('\n')) {
      const [name, s, e] = line.trim().split(',');
      if (!name || s === undefined || e === undefined) continue;
      const seg = { path: join(dir, name), startMs: runBase * 1000 + Number(s) * 1000, endMs: runBase * 1000 + Number(e) * 1000 };
      if (seg.endMs > startMs && seg.startMs < stopMs) segs.push(seg);
    }
  }
  return segs.sort((a, b) => a.startMs - b.startMs);
}

/** The same range as the unit's store sees it (Segment objects, as assembleRange takes them). */
async function storeSegmentsInRange(dir: string, startMs: number, stopMs: number): Promise<Segment[]> {
  const segs: Segment[] = [];
  for (const csv of (await readdir(dir)).filter((n) => /^\d+\.csv$/.test(n))) {
    const runBase = Number(csv.slice(0, -4));
    for (const line of (await readFile(join(dir, csv), 'utf8')).split('\n')) {
      const seg = parseSegmentLine(line, runBase, dir);
      if (seg && seg.seq > 0 && seg.endMs > startMs && seg.startMs < stopMs) segs.push(seg);
    }
  }
  return segs.sort((a, b) => a.startMs - b.startMs);
}

async function duration(file: string): Promise<number> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file]);
  return Number(stdout.trim());
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const tmp = await tempDir('arenacam-bench-stop-');
  const dataDir = tmp.dir;
  let unit: UnitProcess | null = null;
  const cleanup = async (): Promise<void> => {
    if (unit) await stopUnitProcess(unit, dataDir).catch(() => undefined);
    unit = null;
    await tmp.cleanup();
  };
  onInterrupt(cleanup);
  try {
    const config = testConfig(dataDir, {
      camera: { source: 'testsrc', width: 1280, height: 720, fps: 30 },
      encoder: { codec: 'libx264', bitrateKbps: 4000, preset: 'veryfast' },
      log: { level: 'info' },
      // Keep every segment of the range on disk after the stop: with the default 10-minute
      // retention the unit prunes the oldest segments of a 10-minute recording as soon as it is
      // finished, racing the baseline that reads them (retention does not change the stop itself).
      segments: { retentionMinutes: Math.ceil(SECONDS / 60) + 10 },
    });
    note(`spawning a unit: 1280x720@30 testsrc, libx264 veryfast 4000 kbit/s; recording ${SECONDS} s`);
    const u = await spawnUnit(dataDir, config, 'stop-latency');
    unit = u;
    await waitFor(() => u.log().includes('"capture is running"'), 30000, 'capture to run');
    await sleep(3000);
    const start = await sendCommand(HOST, u.multicamPort, 'START_RECORDING', { timestamp: Date.now() / 1000 });
    if (start.body.status !== 'recording') throw new Error(`start failed: ${JSON.stringify(start.body)}`);
    const startedAt = nowMs();
    const loads: number[][] = [];
    while (nowMs() - startedAt < SECONDS * 1000) {
      const left = SECONDS * 1000 - (nowMs() - startedAt);
      await sleep(Math.min(left, 60000));
      loads.push(load());
      if (nowMs() - startedAt < SECONDS * 1000) note(`recording for ${Math.round((nowMs() - startedAt) / 1000)} s of ${SECONDS} (load ${load().join(' ')})`);
    }
    // The unit's own memory while it assembles: VmRSS every 50 ms from the STOP to the reply.
    const rssBefore = (await sampleProc(u.proc.pid!))?.rssKb ?? NaN;
    let rssMaxKb = rssBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const p = await sampleProc(u.proc.pid!);
        if (p) rssMaxKb = Math.max(rssMaxKb, p.rssKb);
        await sleep(50);
      }
    })();
    const stopSentMs = Date.now();
    const t = nowMs();
    const stop = await sendCommand(HOST, u.multicamPort, 'STOP_RECORDING', { timestamp: stopSentMs / 1000 }, 600000).finally(() => (sampling = false));
    const replyMs = nowMs() - t;
    await sampler;
    if (stop.kind !== 'stop') throw new Error(`stop failed: ${JSON.stringify(stop.body)}`);
    note(`STOP answered after ${replyMs.toFixed(0)} ms: ${stop.body.fileName}, ${stop.body.fileSize} bytes`);
    const loadAtStop = load();

    // Baseline right away, with the unit still capturing as it was during its own assembly.
    const startedLog = logLines(u, 'recording started').at(-1);
    const startMs = Number(startedLog?.startMs ?? startedAt);
    const segs = await segmentsInRange(join(dataDir, 'segments'), startMs, stopSentMs);
    const list = join(dataDir, 'baseline-list.txt');
    await writeFile(list, segs.map((s) => `file '${s.path}'\n`).join(''));
    const baseOut = join(dataDir, 'baseline.mp4');
    const b0 = nowMs();
    const bare = await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', '-movflags', '+faststart', baseOut], { maxBuffer: 1 << 24 });
    const baselineMs = nowMs() - b0;
    // Not part of the bare command, but the unit does it: fsync the output (timed apart).
    const f0 = nowMs();
    const fh = await open(baseOut, 'r+');
    await fh.sync().finally(() => fh.close());
    const baselineFsyncMs = nowMs() - f0;
    note(`baseline concat of ${segs.length} segments took ${baselineMs.toFixed(0)} ms (+ fsync ${baselineFsyncMs.toFixed(0)} ms)`);
    const baseSize = (await stat(baseOut)).size;
    const baseDuration = await duration(baseOut);
    await rm(baseOut, { force: true });

    // Replay: the unit's own assembly code (assembleRange) on the same segments, right after.
    const replaySegs = await storeSegmentsInRange(join(dataDir, 'segments'), startMs, stopSentMs);
    const replayOnce = async (): Promise<number> => {
      const r0 = nowMs();
      const replay = await assembleRange({ segments: replaySegs, startMs, stopMs: stopSentMs, outPath: join(dataDir, 'replay.mp4'), ffmpegPath: 'ffmpeg' });
      const ms = nowMs() - r0;
      await rm(replay.path, { force: true });
      return ms;
    };
    const replayMs = await replayOnce();
    note(`replay of assembleRange over ${replaySegs.length} segments took ${replayMs.toFixed(0)} ms`);
    // Repeats (--repeat N), alternating, to tell a one-off from a steady difference.
    const repeats: Array<{ baselineMs: number; replayMs: number }> = [];
    for (let k = 1; k < REPEAT; k++) {
      const t1 = nowMs();
      await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', '-movflags', '+faststart', baseOut], { maxBuffer: 1 << 24 });
      const bMs = nowMs() - t1;
      await rm(baseOut, { force: true });
      const rMs = await replayOnce();
      repeats.push({ baselineMs: Math.round(bMs), replayMs: Math.round(rMs) });
      note(`repeat ${k}: baseline ${bMs.toFixed(0)} ms, replay ${rMs.toFixed(0)} ms`);
    }

    const lastSegEndMs = segs.length ? segs[segs.length - 1].endMs : NaN;
    const finished = logLines(u, 'recording finished').at(-1);
    const assembleMs = finished ? Number(finished.assembleMs) : NaN;
    const recPath = join(dataDir, 'recordings', String(stop.body.fileName));
    const recDuration = await duration(recPath);
    // The baseline counts only if it really read the whole range (ffmpeg's concat demuxer can end early with exit code 0).
    const baselineProblems: string[] = [];
    if (Math.abs(baseDuration - recDuration) > 2) baselineProblems.push(`baseline lasts ${baseDuration.toFixed(2)} s, the recording ${recDuration.toFixed(2)} s`);
    if (bare.stderr.trim()) baselineProblems.push(`ffmpeg said: ${bare.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    if (baselineProblems.length) note(`BASELINE INVALID: ${baselineProblems.join('; ')}`);
    let segBytes = 0;
    for (const s of segs) segBytes += (await stat(s.path).catch(() => ({ size: 0 }))).size;
    const totalSegments = (await readdir(join(dataDir, 'segments'))).filter((n) => n.endsWith('.ts')).length;

    await stopUnitProcess(u, dataDir);
    unit = null;
    emit({
      bench: 'stop-latency',
      date: new Date().toISOString(),
      machine,
      loadavgDuringRecording: loads,
      loadavgAtStop: loadAtStop,
      loadavgEnd: load(),
      params: { seconds: SECONDS, camera: 'testsrc2 1280x720@30', encoder: 'libx264 veryfast 4000 kbit/s', segmentSec: config.segments.durationSec, retentionMinutes: config.segments.retentionMinutes },
      unit: {
        stopReplyMs: Math.round(replyMs),
        assembleMs,
        replyMinusAssembleMs: Math.round(replyMs - assembleMs),
        // Split by the capture clock: the last segment of the range ends (its last frame is
        // captured) captureTailMs after the STOP was sent; the unit answered replyAfterLastSegmentEndMs later.
        captureTailMs: Math.round(lastSegEndMs - stopSentMs),
        replyAfterLastSegmentEndMs: Math.round(stopSentMs + replyMs - lastSegEndMs),
        splitNote: "assembleMs (the unit's log) counts from the start of assembly; since commit 381f4f5 assembly starts at once and takes the last segment as it comes, so it includes the wait for it",
        nodeRssBeforeStopMB: round2(rssBefore / 1024),
        nodeRssMaxDuringStopMB: round2(rssMaxKb / 1024),
        fileName: stop.body.fileName,
        fileSizeBytes: Number(stop.body.fileSize),
        fileSizeMB: round2(Number(stop.body.fileSize) / 1e6),
        durationSec: round2(recDuration),
        frames: finished ? finished.frames : null,
        segmentsInRecording: segs.length,
        segmentBytes: segBytes,
        segmentsOnDisk: totalSegments,
      },
      baseline: {
        what: 'ffmpeg -f concat -safe 0 -i list -c copy -movflags +faststart out.mp4 over the same segments, run right after the stop (segment files warm in the page cache; no fsync)',
        valid: baselineProblems.length === 0,
        problems: baselineProblems,
        ms: Math.round(baselineMs),
        fsyncAfterMs: Math.round(baselineFsyncMs),
        fileSizeMB: round2(baseSize / 1e6),
        durationSec: round2(baseDuration),
      },
      replay: {
        what: "the unit's assembleRange (src/media/assemble.ts) called again on the same segments after the baseline: its ffmpeg, edit-list trim and fsync, without the device around it",
        ms: Math.round(replayMs),
        segments: replaySegs.length,
        repeats,
      },
      unitLog: logLines(u, 'recording finished').concat(logLines(u, 'stop failed'), logLines(u, 'the last segment did not arrive in time; the recording ends at the last one captured')),
      ratio: {
        stopReplyOverBaseline: round2(replyMs / baselineMs),
        replayOverBaseline: round2(replayMs / baselineMs),
        assemblyOverBaseline: round2(assembleMs / baselineMs),
        assemblyOverBaselinePlusFsync: round2(assembleMs / (baselineMs + baselineFsyncMs)),
      },
    });
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`stop-latency failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
