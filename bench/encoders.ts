/**
 * ffmpeg's CPU per encoder choice at 720p30 and 1080p30, on this machine, through the real capture
 * command line (buildCaptureArgs: test pattern paced at its rate, wall-clock stamping, 1-s MPEG-TS
 * segments). The same-run baseline is the same pipeline without an encoder (frames made, stamped
 * and dropped: -f null with wrapped_avframe), so "encoder CPU" = variant − baseline and the ratio
 * variant/baseline are comparable across noisy runs. h264_v4l2m2m is tried with the app's encoder
 * probe (a short trial encode); on a machine without the V4L2 M2M encoder (x86, Pi 5) its error is reported instead.
 *
 * Usage: node dist/bench/encoders.js [--seconds 20] [--warmup 3]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FfmpegEncoderProber } from '../src/hw/encoder-probe.js';
import { buildCaptureArgs } from '../src/capture/ffmpeg-args.js';
import { validate } from '../src/config/load.js';
import { framePtsOfFile } from '../src/media/ts-pts.js';
import { emit, machineInfo, note, numArg, sampleProc, sleep, summarise, type ProcSample, round2 } from './capture-lib.js';

const SECONDS = numArg('seconds', 20);
const WARMUP = numArg('warmup', 3);
const FPS = 30;
const SIZES = [
  { label: '720p30', width: 1280, height: 720 },
  { label: '1080p30', width: 1920, height: 1080 },
];
type Variant = { name: string; codec: 'libx264' | 'h264_v4l2m2m' | null; preset?: string };
const VARIANTS: Variant[] = [
  { name: 'baseline (no encoder)', codec: null },
  { name: 'libx264 ultrafast', codec: 'libx264', preset: 'ultrafast' },
  { name: 'libx264 veryfast', codec: 'libx264', preset: 'veryfast' },
];

/** Run one variant for WARMUP+SECONDS; CPU and RSS of ffmpeg, frames written per second. */
async function runVariant(size: (typeof SIZES)[number], v: Variant): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'arenacam-enc-'));
  try {
    const config = validate({
      dataDir: dir,
      camera: { source: 'testsrc', width: size.width, height: size.height, fps: FPS },
      encoder: { codec: v.codec ?? 'libx264', preset: v.preset ?? 'veryfast', bitrateKbps: size.height >= 1080 ? 6000 : 4000 },
    });
    const runBase = Math.floor(Date.now() / 1000);
    let args = buildCaptureArgs({ camera: config.camera, encoder: config.encoder, segmentSec: 1, runBase, dir });
    if (v.codec === null) {
      // Keep input, pacing and the stamping filter; drop encoder and muxer.
      const cut = args.indexOf('-an');
      args = [...args.slice(0, cut), '-an', '-c:v', 'wrapped_avframe', '-f', 'null', '-'];
    }
    const proc = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    await sleep(WARMUP * 1000);
    const samples: ProcSample[] = [];
    const t0 = Date.now();
    while (Date.now() - t0 < SECONDS * 1000) {
      const s = await sampleProc(proc.pid as number);
      if (!s) break;
      samples.push(s);
      await sleep(500);
    }
    proc.kill('SIGINT');
    await new Promise((r) => proc.once('exit', r));
    if (samples.length < 2) throw new Error(`ffmpeg ended early: ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
    const sum = summarise(samples);
    let framesPerSec: number | null = null;
    if (v.codec !== null) {
      const segs = (await readdir(dir)).filter((f) => f.endsWith('.ts')).sort();
      const pts: number[] = [];
      for (const f of segs) pts.push(...(await framePtsOfFile(join(dir, f))));
      const span = pts.length > 1 ? (Math.max(...pts) - Math.min(...pts)) / 90000 : 0;
      framesPerSec = span > 0 ? round2((pts.length - 1) / span) : null;
    }
    return { variant: v.name, cpuPercentOfOneCore: sum.cpuPercentOfOneCore, rssMaxMB: sum.rssMaxMB, seconds: sum.seconds, framesPerSec };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const results: Array<Record<string, unknown>> = [];
  for (const size of SIZES) {
    const rows: Array<Record<string, unknown>> = [];
    for (const v of VARIANTS) {
      note(`${size.label}: ${v.name} for ${SECONDS} s`);
      rows.push(await runVariant(size, v));
    }
    const base = rows[0].cpuPercentOfOneCore as number;
    for (const r of rows.slice(1)) {
      const cpu = r.cpuPercentOfOneCore as number;
      r.encoderCpuPercent = round2(cpu - base);
      r.ratioToBaseline = round2(cpu / base);
    }
    // The same probe encoder.codec auto runs at start-up.
    const probe = await new FfmpegEncoderProber({ ffmpegPath: 'ffmpeg', timeoutMs: 15000, bitrateKbps: size.height >= 1080 ? 6000 : 4000 }).probe({ ...size, fps: FPS });
    rows.push({ variant: 'h264_v4l2m2m', available: probe.codec === 'h264_v4l2m2m', error: probe.m2mTrial?.ok ? null : (probe.m2mTrial?.detail ?? probe.reason) });
    results.push({ size: size.label, rows });
  }
  emit({
    bench: 'encoders',
    machine: machineInfo(),
    params: { seconds: SECONDS, warmupSec: WARMUP, source: 'testsrc2 paced (-re), stamped, 1-s segments', bitrate: '4000 kbit/s 720p, 6000 kbit/s 1080p' },
    results,
  });
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
