/**
 * Bench: VAR clip export (issue 4). One unit in the bench process (`startUnit`), paired to the
 * coordinator peer of the tests (test/helpers/coordinator.ts), capturing 1280x720@30 from the
 * stamp camera (each frame painted with its capture time; libx264 veryfast 4000 kbit/s, 1-s
 * segments, like the defaults). Marks come one after another; each is answered by a
 * coordinator-style request_clip (fromMs 10000, toMs 5000, quality original) sent right after
 * its mark_ack, so the clip is cut while its post-roll is still being captured.
 *
 * Per clip:
 * - clipReadyMs: when the coordinator received clip_ready, minus (b) wallEndMs = mark + 5000, the
 *   moment the post-roll's last frame is captured (the unit reads the post-roll from the segment
 *   ffmpeg is still writing), and minus (a) segReadyMs, the moment the segment holding the window
 *   end was added to the store (`app.store.on('segment')`; negative when the clip was ready first).
 * - Goals are judged from (b): against a bare concat started when its input exists, i.e. the
 *   segment wait (segReady − wallEnd) plus the bare concat time.
 * - Baselines in the same run, right after clip_ready with the unit still capturing, over exactly
 *   the segments `app.store.overlapping(from, to)` returns then: bare
 *   `ffmpeg -f concat -safe 0 -i list.txt -c copy out.mp4`, the same with `-movflags +faststart`
 *   (spawn to exit), and a replay of the unit's own assembleRange over the same (now all known)
 *   segments. Their order rotates from clip to clip.
 * - Accuracy: the clip is downloaded over HTTP (Content-Length == bytes == sizeBytes), every
 *   frame's painted capture time is decoded: firstFrame − windowStart, windowEnd − lastFrame, frame
 *   index gaps.
 * - RSS of the bench process (unit + coordinator peer; the capture ffmpeg and the camera are
 *   other processes) sampled every 50 ms from request_clip to clip_ready.
 *
 * Each mark comes after a random 0–1 s wait, so the window end falls at a random point of its
 * 1-s segment (otherwise the marks lock to the segment clock and (b) is always ~1 s).
 *
 * The first clip and the last are cut with no recording running (pre-roll only: the mark is sent
 * raw, as a coordinator that marks an idle camera would); the ones between while a VAR session
 * records. The first clip is also the process's first fluent-ffmpeg job.
 *
 * Usage: node dist/bench/var-clip.js [--marks 5] [--width 1280] [--height 720] [--gap 2] [--testsrc]
 *   --marks    clips cut while recording (plus one before and one after the recording)
 *   --gap      seconds between one clip's measurements ending and the next mark (plus 0–1 s at random)
 *   --testsrc  testsrc2 instead of the stamp camera (no accuracy figures)
 * Prints one JSON object on stdout; progress on stderr.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startUnit, tempDir, waitFor, type TestUnit } from '../test/helpers/device.js';
import { startCoordinator, type Coordinator } from '../test/helpers/coordinator.js';
import { decodeTimecodes } from '../test/helpers/decode-frames.js';
import { assembleRange } from '../src/media/assemble.js';
import type { Segment } from '../src/capture/segment-store.js';
import { emit, flag, load, machineInfo, note, numArg, nowMs, onInterrupt, round2, sampleProc, sleep, stats, summarise, type ProcSample } from './capture-lib.js';

const MARKS = Math.round(numArg('marks', 5));
const WIDTH = Math.round(numArg('width', 1280));
const HEIGHT = Math.round(numArg('height', 720));
const FPS = 30;
const GAP_S = numArg('gap', 2);
const TESTSRC = flag('testsrc');
const FROM_MS = 10_000;
const TO_MS = 5000;
const FRAME_MS = 1000 / FPS;
const run = promisify(execFile);

/** Spawn a command and time it from spawn to exit; rejects on a non-zero exit. */
function timed(cmd: string, args: string[]): Promise<{ ms: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = nowMs() - t0;
      if (code === 0) resolve({ ms, stderr });
      else reject(new Error(`${cmd} exited ${code}: ${stderr.trim().slice(-500)}`));
    });
  });
}

async function probeDuration(file: string): Promise<number> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file]);
  return Number(stdout.trim());
}

/** One measured clip. */
interface ClipRecord {
  n: number;
  recording: boolean;
  markId: string;
  markMs: number;
  windowStartMs: number;
  windowEndMs: number;
  loadavg: number[];
  /** The clip, in ms. */
  requestAfterMarkMs: number;
  segReadyAfterWallEndMs: number;
  /** Split of segReadyAfterWallEndMs: the end segment's last frame period ends this long after the window end, */
  endSegmentEndAfterWallEndMs: number;
  /** and the store learns of the segment this long after that. */
  segReadyAfterSegmentEndMs: number;
  clipReadyMinusSegReadyMs: number;
  clipReadyMinusWallEndMs: number;
  unitLog: { copyMs: unknown; totalMs: unknown; frames: unknown; firstFrameOffsetMs: unknown };
  segments: number;
  segmentBytes: number;
  runs: number;
  baseline: { bareMs: number; faststartMs: number; replayMs: number; order: string[]; bareDurationSec: number; bareProblems: string[] };
  ratio: { wallEndClipOverBareFromWallEnd: number; wallEndClipOverBare: number; clipOverBare: number; clipOverFaststart: number; replayOverBare: number };
  /** Judged from the window end (the post-roll's last frame captured): clip_ready vs segment wait + bare concat. */
  goals: { withinRatio: boolean; under500ms: boolean };
  bareFromWallEndMs: number;
  clip: { sizeBytes: number; contentLength: number; bytes: number; sizesAgree: boolean; durationMs: number };
  accuracy: null | {
    frames: number;
    undecodable: number;
    indexGaps: number;
    firstMinusWindowStartMs: number;
    windowEndMinusLastMs: number;
    firstWithinOneFrame: boolean;
    lastWithinOneFrame: boolean;
    /** Read from the segments themselves: is the first frame the first painted at or after the window start, the last the last painted before its end? */
    exactFirst: boolean;
    exactLast: boolean;
    /** Camera frame spacing at the edges: first − the frame before it, the frame after the last − last. */
    firstMinusPreviousFrameMs: number;
    nextFrameMinusLastMs: number;
    durationMsMinusFrameSpanMs: number;
  };
  rssAtRequestMB: number;
  rssMaxMB: number;
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const tmp = await tempDir('arenacam-bench-clip-');
  const dataDir = tmp.dir;
  let unit: TestUnit | null = null;
  let coord: Coordinator | null = null;
  const cleanup = async (): Promise<void> => {
    if (unit) await unit.stop().catch(() => undefined);
    unit = null;
    if (coord) await coord.close().catch(() => undefined);
    coord = null;
    await tmp.cleanup();
  };
  onInterrupt(cleanup);
  try {
    const c = await startCoordinator({ waitTimeoutMs: 30000 });
    coord = c;
    const camera = TESTSRC ? { source: 'testsrc', width: WIDTH, height: HEIGHT, fps: FPS } : { width: WIDTH, height: HEIGHT, fps: FPS };
    note(`starting a unit: ${TESTSRC ? 'testsrc2' : 'stamp camera'} ${WIDTH}x${HEIGHT}@${FPS}, libx264 veryfast 4000 kbit/s, 1-s segments`);
    const u = await startUnit({
      dataDir,
      stamp: !TESTSRC,
      patch: {
        log: { level: 'info' },
        camera: camera as never,
        encoder: { codec: 'libx264', bitrateKbps: 4000, preset: 'veryfast' },
        var: { coordinator: c.pairLink(c.newToken()), reconnectMinMs: 50, reconnectMaxMs: 400 },
      } as never,
    });
    unit = u;
    const deviceId = u.app.deviceId;
    await waitFor(() => c.devices().get(deviceId)?.paired, 15000, 'pairing');
    const segLog: Array<{ seg: Segment; atMs: number }> = [];
    u.app.store.on('segment', (seg: Segment) => segLog.push({ seg, atMs: nowMs() }));
    note('paired; waiting for 13 s of pre-roll');
    await waitFor(() => u.app.store.size >= 13, 40000, 'pre-roll', 200);
    const runBase0 = u.app.store.all().at(-1)!.runBase;

    const rssIdleMB = process.memoryUsage.rss() / 1048576;
    // The capture ffmpeg's CPU over the whole bench (does 720p from the stamp camera keep up?).
    const capturePid = Number((await readFile(join(dataDir, 'capture.pid'), 'utf8').catch(() => '')).trim());
    const capStart = capturePid > 1 ? await sampleProc(capturePid) : null;
    const clips: ClipRecord[] = [];
    const work = join(dataDir, 'bench');
    await mkdir(work, { recursive: true });
    const total = MARKS + 2;

    const oneClip = async (n: number, recording: boolean): Promise<void> => {
      // A random wait first, so the window end falls at a random point of its segment.
      await sleep(Math.random() * 1000);
      const markId = `MARK-${n}`;
      const acked = c.waitFor((m) => m?.type === 'mark_ack' && m.payload?.markId === markId);
      if (recording) {
        if (!c.mark(deviceId, markId)) throw new Error('the coordinator does not see the unit recording');
      } else {
        c.sendRaw(deviceId, JSON.stringify({ type: 'mark', protoVersion: '1.0', deviceId: 'coordinator', sessionId: null, payload: { markId, coordinatorTs: Date.now(), note: null } }));
      }
      const ack = await acked;
      const markMs = Number(ack.payload.deviceTs);
      const from = markMs - FROM_MS;
      const to = markMs + TO_MS;
      // clip_ready's arrival, stamped as the coordinator peer records it.
      let readyAt = NaN;
      const readyWait = c.waitFor((m) => {
        const hit = (m?.type === 'clip_ready' || m?.type === 'error') && m.payload?.markId === markId;
        if (hit && Number.isNaN(readyAt)) readyAt = nowMs();
        return hit;
      }, 60000);
      const rssAtRequest = process.memoryUsage.rss();
      let rssMax = rssAtRequest;
      const sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage.rss())), 50);
      const asked = nowMs();
      const [ready] = await Promise.all([readyWait, c.requestClip(deviceId, markId, { fromMs: FROM_MS, toMs: TO_MS, quality: 'original', timeoutMs: 60000 })]).finally(() => clearInterval(sampler));
      if (ready.type !== 'clip_ready') throw new Error(`clip ${markId} failed: ${JSON.stringify(ready)}`);
      // The unit reads the post-roll from the segment being written, so clip_ready usually comes
      // before that segment closes; a bare concat can only start once it has.
      let endSeg = segLog.find((e) => e.seg.endMs >= to);
      for (let i = 0; !endSeg && i < 300; i++) {
        await new Promise((r) => setTimeout(r, 10));
        endSeg = segLog.find((e) => e.seg.endMs >= to);
      }
      if (!endSeg) throw new Error(`no segment reaching ${to} was seen`);
      const segs = u.app.store.overlapping(from, to);
      const load1 = load();
      const logLine = u.logs.find('clip ready').find((l) => l.markId === markId) ?? {};

      // Baselines, right away, over the same segment files.
      const list = join(work, `list-${n}.txt`);
      await writeFile(list, segs.map((s) => `file '${s.path}'\n`).join(''));
      const bareOut = join(work, `bare-${n}.mp4`);
      const fastOut = join(work, `fast-${n}.mp4`);
      const replayOut = join(work, `replay-${n}.mp4`);
      let bareStderr = '';
      const base = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy'];
      const jobs: Record<string, () => Promise<number>> = {
        bare: async () => {
          const r = await timed('ffmpeg', [...base, bareOut]);
          bareStderr = r.stderr;
          return r.ms;
        },
        faststart: async () => (await timed('ffmpeg', [...base, '-movflags', '+faststart', fastOut])).ms,
        replay: async () => {
          const runSegs = segs.filter((s) => s.runBase === segs[segs.length - 1].runBase);
          const t0 = nowMs();
          await assembleRange({ segments: runSegs, startMs: from, stopMs: to, outPath: replayOut, ffmpegPath: 'ffmpeg' });
          return nowMs() - t0;
        },
      };
      const names = ['bare', 'faststart', 'replay'];
      const order = names.map((_, i) => names[(i + n) % names.length]);
      const ms: Record<string, number> = {};
      for (const name of order) ms[name] = await jobs[name]();
      const segSeconds = segs.reduce((a, s) => a + (s.endMs - s.startMs), 0) / 1000;
      const bareDurationSec = await probeDuration(bareOut);
      const bareProblems: string[] = [];
      if (Math.abs(bareDurationSec - segSeconds) > 0.5) bareProblems.push(`bare output lasts ${bareDurationSec.toFixed(2)} s, the segments ${segSeconds.toFixed(2)} s`);
      if (bareStderr.trim()) bareProblems.push(`ffmpeg said: ${bareStderr.trim().split('\n').slice(-2).join(' | ')}`);
      // The ideal first and last frames, painted times read from the segment files around the window edges.
      let edges: { idealFirst: number; idealLast: number; prevMs: number; nextMs: number } | null = null;
      if (!TESTSRC) {
        const decodeSegs = async (xs: Segment[]) =>
          (await Promise.all(xs.map((x) => decodeTimecodes(x.path, { width: WIDTH, height: HEIGHT })))).flat().filter((x): x is NonNullable<typeof x> => x !== null);
        const head = await decodeSegs(segs.filter((x) => x.endMs > from - 1000 && x.startMs < from + 1000));
        const tail = await decodeSegs(segs.filter((x) => x.endMs > to - 1000));
        const iFirst = head.findIndex((x) => x.epochMs >= from);
        const iNext = tail.findIndex((x) => x.epochMs >= to);
        const iLast = (iNext < 0 ? tail.length : iNext) - 1;
        edges = {
          idealFirst: head[iFirst]?.frameIndex ?? NaN,
          idealLast: tail[iLast]?.frameIndex ?? NaN,
          prevMs: iFirst > 0 ? head[iFirst - 1].epochMs : NaN,
          nextMs: iNext >= 0 ? tail[iNext].epochMs : NaN,
        };
      }
      let segmentBytes = 0;
      for (const s of segs) segmentBytes += (await stat(s.path).catch(() => ({ size: 0 }))).size;
      for (const f of [bareOut, fastOut, replayOut, list]) await rm(f, { force: true });

      // Download and read the frames back.
      const got = await c.download(ready.payload.url);
      if (got.status !== 200) throw new Error(`download of ${ready.payload.url}: HTTP ${got.status}`);
      const file = join(work, `clip-${n}.mp4`);
      await writeFile(file, got.body);
      let accuracy: ClipRecord['accuracy'] = null;
      if (!TESTSRC) {
        const codes = await decodeTimecodes(file, { width: WIDTH, height: HEIGHT });
        const ok = codes.filter((x): x is NonNullable<typeof x> => x !== null);
        let gaps = 0;
        for (let i = 1; i < ok.length; i++) if (ok[i].frameIndex !== ok[i - 1].frameIndex + 1) gaps++;
        const first = ok[0].epochMs;
        const last = ok[ok.length - 1].epochMs;
        accuracy = {
          frames: codes.length,
          undecodable: codes.length - ok.length,
          indexGaps: gaps,
          firstMinusWindowStartMs: round2(first - from),
          windowEndMinusLastMs: round2(to - last),
          firstWithinOneFrame: first >= from - 0.01 && first - from < FRAME_MS,
          lastWithinOneFrame: last < to && to - last <= FRAME_MS + 0.01,
          exactFirst: edges !== null && ok[0].frameIndex === edges.idealFirst,
          exactLast: edges !== null && ok[ok.length - 1].frameIndex === edges.idealLast,
          firstMinusPreviousFrameMs: round2(first - (edges?.prevMs ?? NaN)),
          nextFrameMinusLastMs: round2((edges?.nextMs ?? NaN) - last),
          durationMsMinusFrameSpanMs: round2(Number(ready.payload.durationMs) - (last - first + FRAME_MS)),
        };
      }
      await rm(file, { force: true });

      const clipA = readyAt - endSeg.atMs;
      const clipB = readyAt - to;
      const bareFromWallEnd = endSeg.atMs - to + ms.bare;
      const rec: ClipRecord = {
        n,
        recording,
        markId,
        markMs,
        windowStartMs: from,
        windowEndMs: to,
        loadavg: load1,
        requestAfterMarkMs: round2(asked - markMs),
        segReadyAfterWallEndMs: round2(endSeg.atMs - to),
        endSegmentEndAfterWallEndMs: round2(endSeg.seg.endMs - to),
        segReadyAfterSegmentEndMs: round2(endSeg.atMs - endSeg.seg.endMs),
        clipReadyMinusSegReadyMs: round2(clipA),
        clipReadyMinusWallEndMs: round2(readyAt - to),
        unitLog: { copyMs: logLine.copyMs, totalMs: logLine.totalMs, frames: logLine.frames, firstFrameOffsetMs: logLine.firstFrameOffsetMs },
        segments: segs.length,
        segmentBytes,
        runs: new Set(segs.map((s) => s.runBase)).size,
        baseline: { bareMs: round2(ms.bare), faststartMs: round2(ms.faststart), replayMs: round2(ms.replay), order, bareDurationSec: round2(bareDurationSec), bareProblems },
        bareFromWallEndMs: round2(bareFromWallEnd),
        ratio: { wallEndClipOverBareFromWallEnd: round2(clipB / bareFromWallEnd), wallEndClipOverBare: round2(clipB / ms.bare), clipOverBare: round2(clipA / ms.bare), clipOverFaststart: round2(clipA / ms.faststart), replayOverBare: round2(ms.replay / ms.bare) },
        goals: { withinRatio: clipB <= 1.3 * bareFromWallEnd, under500ms: clipB < 500 },
        clip: {
          sizeBytes: Number(ready.payload.sizeBytes),
          contentLength: got.contentLength,
          bytes: got.body.length,
          sizesAgree: got.contentLength === got.body.length && got.body.length === Number(ready.payload.sizeBytes),
          durationMs: Number(ready.payload.durationMs),
        },
        accuracy,
        rssAtRequestMB: round2(rssAtRequest / 1048576),
        rssMaxMB: round2(rssMax / 1048576),
      };
      clips.push(rec);
      note(
        `clip ${n}/${total}${recording ? '' : ' (no recording)'}: ready ${clipA.toFixed(0)} ms after the end segment, ${(readyAt - to).toFixed(0)} ms after the window end; ` +
          `bare ${ms.bare.toFixed(0)} ms, +faststart ${ms.faststart.toFixed(0)} ms, replay ${ms.replay.toFixed(0)} ms; ` +
          (accuracy ? `first +${accuracy.firstMinusWindowStartMs} ms, last −${accuracy.windowEndMinusLastMs} ms (exact ${accuracy.exactFirst}/${accuracy.exactLast}), ${accuracy.frames} frames, gaps ${accuracy.indexGaps}` : ''),
      );
    };

    let n = 1;
    await oneClip(n++, false);
    await sleep(GAP_S * 1000);
    c.startRecord(deviceId, 'BENCH-S1', null);
    await c.waitFor((m) => m?.type === 'recording_started');
    await waitFor(() => c.devices().get(deviceId)?.recording, 5000, 'the coordinator to see the recording');
    note('recording');
    await sleep(GAP_S * 1000);
    for (let k = 0; k < MARKS; k++) {
      await oneClip(n++, true);
      await sleep(GAP_S * 1000);
    }
    c.stopRecord(deviceId, 'BENCH-S1');
    await c.waitFor((m) => m?.type === 'recording_stopped');
    note('recording stopped');
    await sleep(GAP_S * 1000);
    await oneClip(n++, false);

    const capEnd = capturePid > 1 ? await sampleProc(capturePid) : null;
    const captureFfmpeg = capStart && capEnd ? summarise([capStart, capEnd] as ProcSample[]) : null;
    const runBases = new Set(u.app.store.all().filter((s) => s.startMs >= clips[0].windowStartMs).map((s) => s.runBase));
    const camStatsWait = u.camera;
    await u.stop();
    unit = null;
    const cam = camStatsWait?.stats() ?? null;
    await c.close();
    coord = null;

    const pick = (f: (r: ClipRecord) => number, xs = clips) => stats(xs.map(f));
    const all = clips;
    const notFirst = clips.slice(1);
    const med = (f: (r: ClipRecord) => number, xs = clips) => stats(xs.map(f)).median;
    emit({
      bench: 'var-clip',
      date: new Date().toISOString(),
      machine,
      loadavgEnd: load(),
      params: {
        camera: `${TESTSRC ? 'testsrc2' : 'stamp camera (gray, painted capture time)'} ${WIDTH}x${HEIGHT}@${FPS}`,
        encoder: 'libx264 veryfast 4000 kbit/s, 1-s segments',
        request: { fromMs: FROM_MS, toMs: TO_MS, quality: 'original' },
        clips: clips.length,
        whileRecording: MARKS,
        gapSec: GAP_S,
      },
      camera: cam
        ? { framesWritten: cam.framesWritten, slotsSkipped: cam.slotsSkipped, latenessP99Ms: round2(cam.latenessMs.p99), latenessMaxMs: round2(cam.latenessMs.max), cpuPercent: round2(cam.cpuPercent) }
        : null,
      captureFfmpeg,
      captureRestarts: [...runBases].filter((r) => r !== runBase0).length,
      summary: {
        clipReadyMinusSegReadyMs: pick((r) => r.clipReadyMinusSegReadyMs),
        clipReadyMinusSegReadyMsWithoutFirst: pick((r) => r.clipReadyMinusSegReadyMs, notFirst),
        clipReadyMinusWallEndMs: pick((r) => r.clipReadyMinusWallEndMs),
        segReadyAfterWallEndMs: pick((r) => r.segReadyAfterWallEndMs),
        endSegmentEndAfterWallEndMs: pick((r) => r.endSegmentEndAfterWallEndMs),
        segReadyAfterSegmentEndMs: pick((r) => r.segReadyAfterSegmentEndMs),
        bareMs: pick((r) => r.baseline.bareMs),
        faststartMs: pick((r) => r.baseline.faststartMs),
        replayMs: pick((r) => r.baseline.replayMs),
        ratioClipOverBare: pick((r) => r.ratio.clipOverBare),
        bareFromWallEndMs: pick((r) => r.bareFromWallEndMs),
        ratioWallEndClipOverBareFromWallEnd: pick((r) => r.ratio.wallEndClipOverBareFromWallEnd),
        ratioOfMedians: {
          clipOverBare: round2(med((r) => r.clipReadyMinusSegReadyMs) / med((r) => r.baseline.bareMs)),
          clipOverFaststart: round2(med((r) => r.clipReadyMinusSegReadyMs) / med((r) => r.baseline.faststartMs)),
          replayOverBare: round2(med((r) => r.baseline.replayMs) / med((r) => r.baseline.bareMs)),
          wallEndOverBare: round2(med((r) => r.clipReadyMinusWallEndMs) / med((r) => r.baseline.bareMs)),
        },
        goals: {
          medianWithin1_3xBare: med((r) => r.clipReadyMinusWallEndMs) <= 1.3 * med((r) => r.bareFromWallEndMs),
          clipsWithin1_3xBare: `${all.filter((r) => r.goals.withinRatio).length}/${all.length}`,
          medianUnder500ms: med((r) => r.clipReadyMinusWallEndMs) < 500,
          clipsUnder500ms: `${all.filter((r) => r.goals.under500ms).length}/${all.length}`,
        },
        accuracy: TESTSRC
          ? null
          : {
              firstMinusWindowStartMs: pick((r) => r.accuracy!.firstMinusWindowStartMs),
              windowEndMinusLastMs: pick((r) => r.accuracy!.windowEndMinusLastMs),
              firstWithinOneFrame: `${all.filter((r) => r.accuracy!.firstWithinOneFrame).length}/${all.length}`,
              lastWithinOneFrame: `${all.filter((r) => r.accuracy!.lastWithinOneFrame).length}/${all.length}`,
              exactFirst: `${all.filter((r) => r.accuracy!.exactFirst).length}/${all.length}`,
              exactLast: `${all.filter((r) => r.accuracy!.exactLast).length}/${all.length}`,
              framesWithGapsOrUndecodable: all.filter((r) => r.accuracy!.indexGaps || r.accuracy!.undecodable).length,
            },
        sizesAgree: `${all.filter((r) => r.clip.sizesAgree).length}/${all.length}`,
        rssIdleMB: round2(rssIdleMB),
        rssAtRequestMB: stats(all.map((r) => r.rssAtRequestMB)),
        rssMaxDuringExportMB: stats(all.map((r) => r.rssMaxMB)),
        rssGrowthDuringExportMB: stats(all.map((r) => r.rssMaxMB - r.rssAtRequestMB)),
        rssNote: 'VmRSS of the bench process every 50 ms from request_clip to clip_ready: the unit and the coordinator peer together, plus whatever the previous clip\'s download and decoding left for the GC (they run after clip_ready, outside the sampled span)',
      },
      clips,
    });
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`var-clip failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
