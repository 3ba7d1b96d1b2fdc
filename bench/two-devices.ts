/**
 * Bench: two units started with the same scheduled timestamp. Two units on this machine (separate
 * data dirs, separate stamp cameras with independent frame phases); each trial sends both
 * START_RECORDING with the same timestamp (now + 2 s), STOP ~1.5 s after it, and decodes each
 * recording's first displayed frame: |first frame A − first frame B|. Baseline, interleaved in
 * the same run: two naive devices (each a child that sleeps until the target and then starts a
 * fresh ffmpeg on its own stamp camera; the cameras are started fresh for each trial with
 * independent random frame phases, and have no sensor warm-up, which is kind to the baseline).
 *
 * Usage: node dist/bench/two-devices.js [--trials 12]
 * Prints one JSON object on stdout; progress on stderr.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startUnit, tempDir, waitFor, type TestUnit } from '../test/helpers/device.js';
import { sendCommand } from '../test/helpers/controller.js';
import { emit, load, machineInfo, note, numArg, nowMs, onInterrupt, round2, sleep, sleepUntil, stats } from './capture-lib.js';
import { firstFrame, freshCamera, idealFirstFrame, runNaive } from './capture-media.js';

const HOST = '127.0.0.1';
const TRIALS = Math.round(numArg('trials', 12));
const FPS = 30;
const W = 320;
const H = 240;
const FRAME_MS = 1000 / FPS;
const RECORD_MS = 1500;
const GOAL_MS = 33;

interface Pair {
  diffMs: number;
  errorA: number;
  errorB: number;
  /** Units only: frames between each first displayed frame and the first painted at/after the start (0 = exact). */
  offIdeal?: Array<number | null>;
}

async function record(unit: TestUnit, startMs: number): Promise<{ errorMs: number; offIdeal: number | null }> {
  const port = unit.app.multicamPort;
  const stop = await sendCommand(HOST, port, 'STOP_RECORDING', { timestamp: Date.now() / 1000 }, 60000);
  if (stop.kind !== 'stop') throw new Error(`stop failed: ${JSON.stringify(stop.body)}`);
  const path = join(unit.dataDir, 'recordings', String(stop.body.fileName));
  const first = await firstFrame(path, W, H);
  const ideal = await idealFirstFrame(path, W, H, startMs);
  await rm(path, { force: true });
  return { errorMs: first.epochMs - startMs, offIdeal: ideal ? first.frameIndex - ideal.frameIndex : null };
}

async function unitTrial(a: TestUnit, b: TestUnit, i: number): Promise<Pair> {
  const startMs = nowMs() + 2000;
  const replies = await Promise.all([a, b].map((u) => sendCommand(HOST, u.app.multicamPort, 'START_RECORDING', { timestamp: startMs / 1000 })));
  for (const r of replies) if (r.body.status !== 'scheduled_recording_accepted') throw new Error(`trial ${i}: start not accepted: ${JSON.stringify(r.body)}`);
  await sleepUntil(startMs + RECORD_MS);
  const [ra, rb] = await Promise.all([record(a, startMs), record(b, startMs)]);
  return { diffMs: Math.abs(ra.errorMs - rb.errorMs), errorA: ra.errorMs, errorB: rb.errorMs, offIdeal: [ra.offIdeal, rb.offIdeal] };
}

async function baselineTrial(fifos: [string, string], dir: string, i: number): Promise<Pair> {
  const targetMs = nowMs() + 2000;
  const outs = [join(dir, `base-a-${i}.mp4`), join(dir, `base-b-${i}.mp4`)];
  const frames = Math.round((RECORD_MS / 1000) * FPS);
  // Fresh cameras per trial, each with its own random frame phase (independent cameras).
  const cams = await Promise.all(fifos.map((fifoPath) => freshCamera(fifoPath, W, H, FPS)));
  try {
    await Promise.all(fifos.map((fifo, k) => runNaive({ fifo, width: W, height: H, fps: FPS, targetMs, out: outs[k], frames, preset: 'ultrafast', bitrateKbps: 800 })));
  } finally {
    for (const c of cams) await c.stop();
  }
  const [fa, fb] = await Promise.all(outs.map((o) => firstFrame(o, W, H)));
  for (const o of outs) await rm(o, { force: true });
  const errorA = fa.epochMs - targetMs;
  const errorB = fb.epochMs - targetMs;
  return { diffMs: Math.abs(errorA - errorB), errorA, errorB };
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const tmp = await tempDir('arenacam-bench-two-');
  const units: TestUnit[] = [];
  const cleanup = async (): Promise<void> => {
    for (const u of units.splice(0)) await u.stop().catch(() => undefined);
    await tmp.cleanup();
  };
  onInterrupt(cleanup);
  try {
    for (const name of ['a', 'b']) {
      const dataDir = join(tmp.dir, `unit-${name}`);
      await mkdir(dataDir);
      note(`starting unit ${name.toUpperCase()} with its own ${W}x${H}@${FPS} stamp camera`);
      units.push(await startUnit({ dataDir, stamp: true, patch: { log: { level: 'info' } } as never }));
    }
    const [a, b] = units;
    await waitFor(() => a.app.capture.status().alive && b.app.capture.status().alive, 20000, 'both captures to run');
    const fifos: [string, string] = [join(tmp.dir, 'base-a.fifo'), join(tmp.dir, 'base-b.fifo')];
    await sleep(2000);

    const unitPairs: Pair[] = [];
    const basePairs: Pair[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const u = await unitTrial(a, b, i);
      unitPairs.push(u);
      const bl = await baselineTrial(fifos, tmp.dir, i);
      basePairs.push(bl);
      note(
        `trial ${i + 1}/${TRIALS}: units |A−B| ${u.diffMs.toFixed(2)} ms (A ${u.errorA.toFixed(1)}, B ${u.errorB.toFixed(1)}, off ideal ${u.offIdeal?.join('/')}); ` +
          `baseline |A−B| ${bl.diffMs.toFixed(2)} ms (A ${bl.errorA.toFixed(1)}, B ${bl.errorB.toFixed(1)})`,
      );
    }
    const unitDiff = stats(unitPairs.map((p) => p.diffMs));
    const baseDiff = stats(basePairs.map((p) => p.diffMs));
    const result = {
      bench: 'two-devices',
      date: new Date().toISOString(),
      machine,
      loadavgEnd: load(),
      params: { trials: TRIALS, fps: FPS, width: W, height: H, recordMs: RECORD_MS, startLeadMs: 2000, note: 'two units in one Node process, each with its own stamp camera (independent frame phases)' },
      unit: {
        diffMs: unitDiff,
        overGoal: unitPairs.filter((p) => p.diffMs > GOAL_MS).length,
        errorMs: stats(unitPairs.flatMap((p) => [p.errorA, p.errorB])),
        errorsOverOneFrame: unitPairs.flatMap((p) => [p.errorA, p.errorB]).filter((e) => e > FRAME_MS).length,
        recordingsNotIdeal: unitPairs.flatMap((p) => p.offIdeal ?? []).filter((x) => x !== 0).length,
        trials: unitPairs.map((p) => ({ diffMs: round2(p.diffMs), errorA: round2(p.errorA), errorB: round2(p.errorB), framesOffIdeal: p.offIdeal })),
      },
      baseline: {
        what: 'two children, each sleeping until the target (timer + spin) and then spawning a fresh ffmpeg on its own stamp-camera FIFO; cameras started fresh per trial with independent random frame phases (first frame 0…1 frame after open, no sensor warm-up)',
        diffMs: baseDiff,
        overGoal: basePairs.filter((p) => p.diffMs > GOAL_MS).length,
        errorMs: stats(basePairs.flatMap((p) => [p.errorA, p.errorB])),
        trials: basePairs.map((p) => ({ diffMs: round2(p.diffMs), errorA: round2(p.errorA), errorB: round2(p.errorB) })),
      },
      ratio: {
        medianDiffBaselineOverUnit: round2(baseDiff.median / unitDiff.median),
        maxDiffBaselineOverUnit: round2(baseDiff.max / unitDiff.max),
      },
      goals: { goalMs: GOAL_MS, frameMs: round2(FRAME_MS), allWithinGoal: unitDiff.max <= GOAL_MS },
    };
    emit(result);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`two-devices failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
