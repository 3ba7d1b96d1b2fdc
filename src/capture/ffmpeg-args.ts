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

/** The file of segment `seq` of a run (the name ffmpeg gives it through runFiles' pattern). */
export function segmentPath(dir: string, runBase: number, seq: number): string {
  return `${dir}/${runBase}_${String(seq).padStart(6, '0')}.ts`;
}

/** File name pattern of a run's segments (ffmpeg numbering) and its CSV index. */
export function runFiles(dir: string, runBase: number): { pattern: string; csv: string } {
  return { pattern: `${dir}/${runBase}_%06d.ts`, csv: `${dir}/${runBase}.csv` };
}

/** ffmpeg's v4l2 -input_format per camera.format ('auto' leaves the driver's current format). */
const V4L2_INPUT_FORMAT: Record<string, string> = { h264: 'h264', mjpeg: 'mjpeg', yuyv: 'yuyv422' };

/**
 * rpicam-vid writes whole ISP buffers: rows of YUV420 are padded to a multiple of 64 bytes
 * (rpicam-apps#188: 780 wide comes out 832 wide), so ffmpeg reads the padded width and crops.
 */
export const rpicamStride = (width: number): number => Math.ceil(width / 64) * 64;

/** An even number, rounded down (at least 2): YUV420 frames have even sizes, odd ones are adjusted by libcamera. */
export const evenDown = (n: number): number => Math.max(2, n - (n % 2));

/**
 * The size rpicam-vid is asked for and ffmpeg reads: even width and height. Camera choice rounds
 * and logs it already; this keeps both command lines agreeing whatever they are given.
 */
export const rpicamSize = (camera: Config['camera']): { width: number; height: number } => ({ width: evenDown(camera.width), height: evenDown(camera.height) });

/** The input arguments of a camera source. */
export function inputArgs(camera: Config['camera']): string[] {
  switch (camera.source) {
    case 'testsrc':
      // -re paces the synthetic source at its native rate, like a real camera.
      return ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${camera.width}x${camera.height}:rate=${camera.fps}`];
    case 'v4l2': {
      const fmt = V4L2_INPUT_FORMAT[camera.format];
      // No -thread_queue_size: with it, ffmpeg 5.1 reads a single input in a thread that its main
      // loop polls every 10 ms, which would add up to 10 ms to every stamp.
      return [
        '-f', 'v4l2', ...(fmt ? ['-input_format', fmt] : []),
        '-framerate', String(camera.fps), '-video_size', `${camera.width}x${camera.height}`,
        '-i', camera.device,
      ];
    }
    case 'ffmpeg':
      if (camera.input.length === 0) throw new Error('camera.input must hold ffmpeg input arguments when camera.source is "ffmpeg"');
      return [...camera.input];
    case 'rpicam': {
      const { width, height } = rpicamSize(camera);
      // Raw frames from rpicam-vid on stdin, read in ffmpeg's main loop (no input thread, see
      // v4l2) with no probing and no buffering while ffmpeg starts (frames read while probing are
      // dropped, not stamped late), so each frame is stamped as its last byte arrives.
      // rpicam-vid's YUV420 is full range (JPEG colour space).
      return [
        '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-color_range', 'pc',
        '-video_size', `${rpicamStride(width)}x${height}`, '-framerate', String(camera.fps),
        '-probesize', '32', '-analyzeduration', '0', '-fflags', 'nobuffer',
        '-i', 'pipe:0',
      ];
    }
    case 'auto':
      throw new Error('camera.source "auto" must be resolved to a camera before capture starts');
    default:
      throw new Error(`unknown camera.source ${String(camera.source)}`);
  }
}

/** rpicam-vid arguments: endless raw YUV420 on stdout, flushed per frame, no preview window. */
export function rpicamArgs(camera: Config['camera']): string[] {
  const { width, height } = rpicamSize(camera);
  return [
    '-t', '0', '-n', '--camera', String(camera.rpicamCamera), '--codec', 'yuv420',
    '--width', String(width), '--height', String(height), '--framerate', String(camera.fps),
    '--flush', '-o', '-',
  ];
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
    case 'auto':
      throw new Error('encoder.codec "auto" must be resolved (by the encoder probe) before capture starts');
    default:
      throw new Error(`unknown encoder.codec ${String(encoder.codec)}`);
  }
}

/**
 * The whole command line. Every packet is flushed to the open segment as it is muxed
 * (flush_packets), so clips can take their last frames from the segment still being written. Each frame is stamped with the wall clock as it leaves the source
 * (setpts=RTCTIME), minus the run base so values stay small and minus camera.latencyMs; -copyts
 * keeps those stamps all the way into the MPEG-TS segments and the segment list, so segment
 * times are capture times.
 */
export function buildCaptureArgs(spec: CaptureRunSpec): string[] {
  const { camera, encoder, segmentSec, runBase } = spec;
  const { pattern, csv } = runFiles(spec.dir, runBase);
  const latencyUs = Math.round((camera.latencyMs ?? 0) * 1000);
  const stamp = `settb=1/1000000,setpts=RTCTIME-${runBase}000000${latencyUs ? `-${latencyUs}` : ''}`;
  // Stream copy cannot filter: stamp packets with the wall clock as they are read instead.
  const copy = encoder.codec === 'copy';
  const rp = rpicamSize(camera);
  const crop = camera.source === 'rpicam' && rpicamStride(rp.width) !== rp.width ? `,crop=${rp.width}:${rp.height}:0:0` : '';
  const scale = spec.scaleTo ? `,scale=${spec.scaleTo.width}:${spec.scaleTo.height}` : '';
  const filter = copy ? [] : ['-vf', stamp + crop + scale];
  const offset = latencyUs ? (runBase + latencyUs / 1e6).toFixed(6) : String(runBase);
  const preInput = copy ? ['-use_wallclock_as_timestamps', '1', '-itsoffset', `-${offset}`] : [];
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

/** A process to start for capture: the command, its arguments, and a readable form for logs. */
export interface CaptureCommand {
  cmd: string;
  args: string[];
  display: string;
}

/** Quote one word for a POSIX shell. */
export const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** Prefix of rpicam-vid's stderr lines in the capture log (the pipeline picks its errors by it). */
export const RPICAM_PREFIX = 'rpicam-vid: ';

/**
 * The process capture starts. For rpicam, one bash that becomes ffmpeg (exec) and reads
 * rpicam-vid from a process substitution: both share one process group (SIGINT to the group
 * stops both, ffmpeg closes its segment), the spawned pid is ffmpeg itself, rpicam-vid is its
 * child (with setpriv it gets SIGINT when ffmpeg dies) and its stderr lines are prefixed
 * "rpicam-vid: ". When rpicam-vid dies, ffmpeg reads EOF and exits.
 */
export function buildCaptureCommand(spec: CaptureRunSpec, tools: { ffmpegPath: string; setprivPath?: string | null; shellPath?: string }): CaptureCommand {
  const args = buildCaptureArgs(spec);
  if (spec.camera.source !== 'rpicam') return { cmd: tools.ffmpegPath, args, display: [tools.ffmpegPath, ...args].join(' ') };
  const rpicam = [spec.camera.rpicamPath, ...rpicamArgs(spec.camera)];
  const guard = tools.setprivPath ? [tools.setprivPath, '--pdeathsig', 'INT', '--'] : [];
  const q = (words: string[]) => words.map(shellQuote).join(' ');
  const prefix = `while IFS= read -r l || [ -n "$l" ]; do printf '${RPICAM_PREFIX}%s\\n' "$l"; done`;
  const script = `exec ${q([tools.ffmpegPath, ...args])} < <(exec ${q([...guard, ...rpicam])} 2> >(trap '' INT; exec >&2; ${prefix}))`;
  return { cmd: tools.shellPath ?? 'bash', args: ['-c', script], display: `${rpicam.join(' ')} | ${[tools.ffmpegPath, ...args].join(' ')}` };
}

/**
 * Why a run ended, in one line. With rpicam-vid piped in, ffmpeg usually exits normally on EOF,
 * so rpicam-vid's last error (its lines carry RPICAM_PREFIX) says what happened.
 */
export function exitMessage(tail: string[], r: { code: number | null; signal: NodeJS.Signals | null }, asked?: { width: number; height: number }): string {
  const how = r.signal ? `signal ${r.signal}` : `code ${r.code}`;
  const rpicam = tail.filter((l) => l.startsWith(RPICAM_PREFIX)).map((l) => l.slice(RPICAM_PREFIX.length));
  const ffmpeg = tail.filter((l) => !l.startsWith(RPICAM_PREFIX));
  if (rpicam.length) {
    const err = rpicam.filter((l) => /error|fail|unable|cannot|no camera/i.test(l)).at(-1) ?? rpicam.at(-1);
    return `rpicam-vid stopped: ${err}; ffmpeg exited (${how})${ffmpeg.length ? `: ${ffmpeg.at(-1)}` : ''}${adjustedNote(rpicam, asked)}`;
  }
  return `ffmpeg exited (${how}): ${ffmpeg.at(-1) ?? 'no output'}`;
}

/**
 * libcamera's line naming the streams it configured, as rpicam-vid passes it on:
 * `... INFO Camera camera.cpp:1183 configuring streams: (0) 2304x1296-YUV420 (1) 2304x1296-SBGGR10_CSI2P`.
 * Stream (0) is the one rpicam-vid writes out.
 */
export function rpicamConfiguredStream(line: string): { width: number; height: number; format: string } | null {
  const m = /configuring streams: \(0\) (\d+)x(\d+)-(\S+)/.exec(line);
  return m ? { width: Number(m[1]), height: Number(m[2]), format: m[3] } : null;
}

/** When libcamera configured another output size than asked: the capture error, in one sentence; else null. */
export function rpicamStreamMismatch(line: string, camera: Config['camera']): string | null {
  const got = rpicamConfiguredStream(line);
  const want = rpicamSize(camera);
  if (!got || (got.width === want.width && got.height === want.height)) return null;
  return `rpicam-vid: libcamera adjusted the stream configuration to ${got.width}x${got.height} (${got.format}) instead of ${want.width}x${want.height}; the frames would be misread, so capture stops. Set camera.width/height to a size this camera gives (rpicam-hello --list-cameras lists its modes)`;
}

/**
 * rpicam-vid prints "Stream configuration adjusted" whenever libcamera changed anything it asked
 * for, which is common and often harmless (a Bayer order, a raw stream size); in a failure it is
 * named with what libcamera configured, so the reader can tell whether the size was the problem.
 */
function adjustedNote(rpicam: string[], asked?: { width: number; height: number }): string {
  if (!rpicam.some((l) => /stream configuration adjusted/i.test(l))) return '';
  const got = rpicam.map(rpicamConfiguredStream).find((x) => x !== null);
  const size = got ? `: libcamera configured ${got.width}x${got.height}-${got.format}` : '';
  const vs = got && asked ? (got.width === asked.width && got.height === asked.height ? ' as asked' : `, not the ${asked.width}x${asked.height} asked for`) : '';
  return ` (rpicam-vid said "Stream configuration adjusted"${size}${vs})`;
}
