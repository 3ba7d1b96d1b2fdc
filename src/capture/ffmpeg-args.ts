/** ffmpeg command lines for the never-stopping capture pipeline, one per camera source and encoder. */
import type { Config } from '../config/schema.js';

/** Everything one capture run needs to know to build its command line. */
export interface CaptureRunSpec {
  camera: Config['camera'];
  encoder: Config['encoder'];
  segmentSec: number;
  /** Whole epoch seconds; every timestamp of this run is wall-clock minus this base. */
  runBase: number;
  /** Folder for segments and the run's CSV index. */
  dir: string;
  /** Scale frames to this size (for sources whose own size cannot be chosen). */
  scaleTo?: { width: number; height: number };
}

/** File name pattern of a run's segments (ffmpeg numbering) and its CSV index. */
export function runFiles(dir: string, runBase: number): { pattern: string; csv: string } {
  return { pattern: `${dir}/${runBase}_%06d.ts`, csv: `${dir}/${runBase}.csv` };
}

/** The input arguments of a camera source. */
export function inputArgs(camera: Config['camera']): string[] {
  switch (camera.source) {
    case 'testsrc':
      // -re paces the synthetic source at its native rate, like a real camera.
      return ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${camera.width}x${camera.height}:rate=${camera.fps}`];
    case 'v4l2':
      return [
        '-f', 'v4l2', '-thread_queue_size', '64',
        '-framerate', String(camera.fps), '-video_size', `${camera.width}x${camera.height}`,
        '-i', camera.device,
      ];
    case 'ffmpeg':
      if (camera.input.length === 0) throw new Error('camera.input must hold ffmpeg input arguments when camera.source is "ffmpeg"');
      return [...camera.input];
    case 'rpicam':
      throw new Error('camera.source "rpicam" (CSI through rpicam-vid) is not supported by this build yet; use v4l2, ffmpeg or testsrc');
    default:
      throw new Error(`unknown camera.source ${String(camera.source)}`);
  }
}

/** Encoder arguments: short closed GOPs forced on segment boundaries, no B-frames. */
export function encoderArgs(encoder: Config['encoder'], fps: number, segmentSec: number): string[] {
  const kbps = encoder.bitrateKbps;
  const keyframes = ['-force_key_frames', `expr:gte(t,n_forced*${segmentSec})`];
  switch (encoder.codec) {
    case 'libx264':
      return [
        '-c:v', 'libx264', '-preset', encoder.preset, '-tune', 'zerolatency', '-bf', '0',
        '-g', String(Math.max(1, Math.round(fps * segmentSec * 2))), '-sc_threshold', '0',
        '-b:v', `${kbps}k`, '-maxrate', `${Math.round(kbps * 1.5)}k`, '-bufsize', `${kbps * 2}k`,
        ...keyframes, '-pix_fmt', 'yuv420p',
      ];
    case 'h264_v4l2m2m':
      return ['-c:v', 'h264_v4l2m2m', '-b:v', `${kbps}k`, '-g', String(Math.round(fps * segmentSec)), ...keyframes, '-pix_fmt', 'yuv420p'];
    case 'copy':
      return ['-c:v', 'copy'];
    default:
      throw new Error(`unknown encoder.codec ${String(encoder.codec)}`);
  }
}

/**
 * The whole command line. Every packet is flushed to the open segment as it is muxed
 * (flush_packets), so clips can take their last frames from the segment still being written. Each frame is stamped with the wall clock as it leaves the source
 * (setpts=RTCTIME), minus the run base so values stay small; -copyts keeps those stamps all the
 * way into the MPEG-TS segments and the segment list, so segment times are capture times.
 */
export function buildCaptureArgs(spec: CaptureRunSpec): string[] {
  const { camera, encoder, segmentSec, runBase } = spec;
  const { pattern, csv } = runFiles(spec.dir, runBase);
  const stamp = `settb=1/1000000,setpts=RTCTIME-${runBase}000000`;
  // Stream copy cannot filter: stamp packets with the wall clock as they are read instead.
  const copy = encoder.codec === 'copy';
  const scale = spec.scaleTo ? `,scale=${spec.scaleTo.width}:${spec.scaleTo.height}` : '';
  const filter = copy ? [] : ['-vf', stamp + scale];
  const preInput = copy ? ['-use_wallclock_as_timestamps', '1', '-itsoffset', `-${runBase}`] : [];
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'warning',
    ...preInput, ...inputArgs(camera),
    '-copyts', ...filter, '-fps_mode', 'passthrough', '-enc_time_base', '1/90000',
    '-an', ...encoderArgs(encoder, camera.fps, segmentSec),
    '-f', 'segment', '-segment_time', String(segmentSec), '-segment_format', 'mpegts',
    '-segment_format_options', 'mpegts_copyts=1:flush_packets=1', '-reset_timestamps', '0',
    '-segment_list', csv, '-segment_list_type', 'csv', '-segment_list_flags', 'live',
    pattern,
  ];
}
