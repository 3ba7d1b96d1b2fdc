/**
 * Bench: accuracy of scheduled starts. One running unit whose camera is the stamp camera (each
 * frame painted with its capture time). Each trial: START_RECORDING at now + 1.0…2.0 s (random
 * sub-frame phase), STOP ~1.5 s after the start, decode the recording: error = painted capture
 * time of the first displayed frame − requested start. Baseline, interleaved trial by trial in
 * the same run: the naive device (sleep until the target, then start a fresh ffmpeg on a stamp
 * camera FIFO), decoded the same way. The baseline camera is started fresh for each trial with a
 * random frame phase; it has no sensor warm-up, which is kinder to the baseline than a real USB
 * camera (hundreds of ms).
 *
 * Usage: node dist/bench/scheduled-start.js [--trials 20] [--fps 30]
 * Prints one JSON object on stdout; progress on stderr.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startUnit, tempDir, waitFor, type TestUnit } from '../test/helpers/device.js';
import { sendCommand } from '../test/helpers/controller.js';
import { emit, load, machineInfo, note, numArg, nowMs, onInterrupt, round2, sleep, sleepUntil, stats } from './capture-lib.js';
import { freshCamera, idealFirstFrame, runNaive, timecodes } from './capture-media.js';

const HOST = '127.0.0.1';
const TRIALS = Math.round(numArg('trials', 20));
const FPS = numArg('fps', 30);
const W = 320;
const H = 240;
const FRAME_MS = 1000 / FPS;
const RECORD_MS = 1500;
/** A painted time this far before the start still counts as "at the start" (pipe from camera to ffmpeg). */
const PIPE_SLACK_MS = 5;

interface UnitTrial {
  startMs: number;
  errorMs: number;
  /** Frames between the displayed first frame and the first painted at/after the start (0 = exact). */
  framesOffIdeal: number | null;
  /** The unit's own view (ffmpeg's capture stamps) of its first frame minus the start. */
  unitReportedOffsetMs: number | null;
  stopReplyMs: number;
  frames: number;
  measuredFps: number;
  frameIndexGaps: number;
}

interface BaselineTrial {
  targetMs: number;
  errorMs: number;
  sleepLateByMs: number;
}

/** Frames, measured rate and index gaps of a decoded recording. */
function cadence(codes: Array<{ epochMs: number; frameIndex: number } | null>): { frames: number; fps: number; gaps: number } {
  const ok = codes.filter((c): c is { epochMs: number; frameIndex: number } => c !== null);
  let gaps = 0;
  for (let i = 1; i < ok.length; i++) if (ok[i].frameIndex !== ok[i - 1].frameIndex + 1) gaps++;
  const span = ok.length > 1 ? ok[ok.length - 1].epochMs - ok[0].epochMs : NaN;
  return { frames: codes.length, fps: round2(((ok.length - 1) * 1000) / span), gaps };
}

async function unitTrial(unit: TestUnit, i: number): Promise<UnitTrial> {
  const port = unit.app.multicamPort;
  const startMs = nowMs() + 1000 + Math.random() * 1000;
  const r = await sendCommand(HOST, port, 'START_RECORDING', { timestamp: startMs / 1000 });
  if (r.body.status !== 'scheduled_recording_accepted') throw new Error(`trial ${i}: start not accepted: ${JSON.stringify(r.body)}`);
  await sleepUntil(startMs + RECORD_MS);
  const t = nowMs();
  const stop = await sendCommand(HOST, port, 'STOP_RECORDING', { timestamp: Date.now() / 1000 }, 60000);
  const stopReplyMs = nowMs() - t;
  if (stop.kind !== 'stop') throw new Error(`trial ${i}: stop failed: ${JSON.stringify(stop.body)}`);
  const fileName = String(stop.body.fileName);
  const path = join(unit.dataDir, 'recordings', fileName);
  const codes = await timecodes(path, { width: W, height: H, maxFrames: 10000 });
  const first = codes[0];
  if (!first) throw new Error(`trial ${i}: first frame of ${fileName} has no timecode`);
  const ideal = await idealFirstFrame(path, W, H, startMs);
  const logged = unit.logs.find('recording finished').filter((l) => l.fileName === fileName).at(-1);
  const c = cadence(codes);
  await rm(path, { force: true });
  return {
    startMs,
    errorMs: first.epochMs - startMs,
    framesOffIdeal: ideal ? first.frameIndex - ideal.frameIndex : null,
    unitReportedOffsetMs: logged ? Number(logged.firstFrameOffsetMs) : null,
    stopReplyMs,
    frames: c.frames,
    measuredFps: c.fps,
    frameIndexGaps: c.gaps,
  };
}

async function baselineTrial(fifo: string, dir: string, i: number): Promise<BaselineTrial> {
  const targetMs = nowMs() + 1000 + Math.random() * 1000;
  const out = join(dir, `baseline-${i}.mp4`);
  // A fresh camera per trial with a random frame phase (its first frame comes 0…1 frame after open).
  const cam = await freshCamera(fifo, W, H, FPS);
  let run: Awaited<ReturnType<typeof runNaive>>;
  try {
    run = await runNaive({ fifo, width: W, height: H, fps: FPS, targetMs, out, frames: Math.round((RECORD_MS / 1000) * FPS), preset: 'ultrafast', bitrateKbps: 800 });
  } finally {
    await cam.stop();
  }
  const [first] = await timecodes(out, { width: W, height: H, maxFrames: 1 });
  if (!first) throw new Error(`baseline trial ${i}: no timecode in the first frame`);
  await rm(out, { force: true });
  return { targetMs, errorMs: first.epochMs - targetMs, sleepLateByMs: run.lateByMs };
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const tmp = await tempDir('arenacam-bench-sched-');
  let unit: TestUnit | null = null;
  const cleanup = async (): Promise<void> => {
    await unit?.stop().catch(() => undefined);
    await tmp.cleanup();
  };
  onInterrupt(cleanup);
  try {
    const dataDir = join(tmp.dir, 'unit');
    await mkdir(dataDir);
    note(`starting a unit with a ${W}x${H}@${FPS} stamp camera`);
    unit = await startUnit({ dataDir, stamp: true, patch: { camera: { fps: FPS }, log: { level: 'info' } } as never });
    const u = unit;
    await waitFor(() => u.app.capture.status().alive, 20000, 'capture to run');
    const baseFifo = join(tmp.dir, 'baseline.fifo');
    await sleep(2000);

    const units: UnitTrial[] = [];
    const base: BaselineTrial[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const t = await unitTrial(u, i);
      units.push(t);
      const b = await baselineTrial(baseFifo, tmp.dir, i);
      base.push(b);
      note(
        `trial ${i + 1}/${TRIALS}: unit error ${t.errorMs.toFixed(2)} ms (off ideal ${t.framesOffIdeal}, unit says ${t.unitReportedOffsetMs}), ` +
          `stop reply ${t.stopReplyMs.toFixed(0)} ms; baseline error ${b.errorMs.toFixed(2)} ms`,
      );
    }
    await u.stop(); // also stops its stamp camera, which then reports its own stats
    unit = null;
    const camStats = u.camera?.stats();
    const unitErr = stats(units.map((t) => t.errorMs));
    const baseErr = stats(base.map((b) => b.errorMs));
    const over = (xs: number[]) => xs.filter((x) => x > FRAME_MS).length;
    const before = (xs: number[]) => xs.filter((x) => x < -PIPE_SLACK_MS).length;
    const unitOver = over(units.map((t) => t.errorMs));
    const result = {
      bench: 'scheduled-start',
      date: new Date().toISOString(),
      machine,
      loadavgEnd: load(),
      params: { trials: TRIALS, fps: FPS, width: W, height: H, recordMs: RECORD_MS, startLeadMs: '1000..2000 (uniform random)', encoder: 'libx264 ultrafast 800 kbit/s (unit and baseline)' },
      unit: {
        errorMs: unitErr,
        overOneFrame: unitOver,
        beforeStart: before(units.map((t) => t.errorMs)),
        framesOffIdeal: stats(units.map((t) => t.framesOffIdeal ?? NaN).filter((x) => !Number.isNaN(x))),
        trialsNotIdeal: units.filter((t) => t.framesOffIdeal !== 0).length,
        unitReportedOffsetMs: stats(units.map((t) => t.unitReportedOffsetMs ?? NaN).filter((x) => !Number.isNaN(x))),
        paintToStampMs: stats(units.filter((t) => t.unitReportedOffsetMs !== null).map((t) => t.unitReportedOffsetMs! - t.errorMs)),
        stopReplyMs: stats(units.map((t) => t.stopReplyMs)),
        measuredFps: stats(units.map((t) => t.measuredFps)),
        frameIndexGapsTotal: units.reduce((a, t) => a + t.frameIndexGaps, 0),
        camera: camStats ? { framesWritten: camStats.framesWritten, slotsSkipped: camStats.slotsSkipped, latenessMs: camStats.latenessMs, cpuPercent: round2(camStats.cpuPercent) } : null,
        trials: units.map((t) => ({ errorMs: round2(t.errorMs), framesOffIdeal: t.framesOffIdeal, unitReportedOffsetMs: t.unitReportedOffsetMs, stopReplyMs: Math.round(t.stopReplyMs) })),
      },
      baseline: {
        what: 'sleep until the target (timer + spin), then spawn a fresh ffmpeg on a stamp-camera FIFO (libx264 ultrafast); camera started fresh per trial with a random frame phase (first frame 0…1 frame after open; no sensor warm-up); first frame decoded',
        errorMs: baseErr,
        overOneFrame: over(base.map((b) => b.errorMs)),
        beforeStart: before(base.map((b) => b.errorMs)),
        sleepLateByMs: stats(base.map((b) => b.sleepLateByMs)),
        trials: base.map((b) => round2(b.errorMs)),
      },
      ratio: {
        medianErrorBaselineOverUnit: round2(baseErr.median / unitErr.median),
        maxErrorBaselineOverUnit: round2(baseErr.max / unitErr.max),
      },
      goals: {
        frameMs: round2(FRAME_MS),
        medianWithinHalfFrame: unitErr.median <= FRAME_MS / 2,
        neverMoreThanOneFrame: unitOver === 0,
        exactFirstFrameEveryTrial: units.every((t) => t.framesOffIdeal === 0),
        overOneFrameAndNotExact: units.filter((t) => t.errorMs > FRAME_MS && t.framesOffIdeal !== 0).length,
        note:
          'with a random start phase a perfect device shows errors uniform in [0, one frame): median ≈ half a frame, so the median goal sits on the boundary; ' +
          'an error just over one frame with framesOffIdeal = 0 is the stamp camera writing that frame late (its own jitter), not the device; framesOffIdeal = 0 is the exactness check',
      },
    };
    emit(result);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`scheduled-start failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
