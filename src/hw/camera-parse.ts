/** Parsers (pure) for the camera listings of v4l2-ctl and rpicam-hello / libcamera-hello. */

/** One block of `v4l2-ctl --list-devices`: a driver/card with its /dev/video nodes. */
export interface V4l2DeviceBlock {
  name: string;
  /** Bus info from the trailing parentheses, e.g. `usb-xhci-hcd.0-1` or `platform:rpivid`. */
  bus: string | null;
  /** /dev/video* nodes in listed order (/dev/media* nodes are left out). */
  nodes: string[];
}

/** One frame size of a format with its discrete frame rates. */
export interface V4l2Size {
  width: number;
  height: number;
  /** Frames per second, highest first, without duplicates. */
  fps: number[];
}

/** One pixel format of a node. */
export interface V4l2Format {
  /** Four-character code as printed, e.g. `H264`, `MJPG`, `YUYV`. */
  fourcc: string;
  description: string;
  compressed: boolean;
  /** Distinct discrete sizes in listed order (stepwise and continuous sizes are not listed). */
  sizes: V4l2Size[];
}

/** The result of `v4l2-ctl [-D] -d DEV --list-formats-ext`. */
export interface V4l2NodeInfo {
  driver: string | null;
  card: string | null;
  bus: string | null;
  formats: V4l2Format[];
}

/** One sensor mode listed by `rpicam-hello --list-cameras`. */
export interface CsiMode {
  /** Bayer or mono format of the mode, e.g. `SRGGB10_CSI2P`. */
  format: string;
  width: number;
  height: number;
  /** Highest frame rate of the mode; null when printed as nan. */
  fps: number | null;
}

/** One camera listed by `rpicam-hello --list-cameras`. */
export interface CsiCamera {
  index: number;
  /** Sensor model, e.g. `imx708` or `imx708_wide`. */
  model: string;
  /** Active pixel array size from the header; null when not printed. */
  pixelArray: { width: number; height: number } | null;
  bitDepth: number | null;
  /** libcamera's camera id (device-tree path). */
  id: string;
  modes: CsiMode[];
}

/** True for a `--list-devices` block of a USB camera (bus info `usb-…`). */
export const isUsbBlock = (b: V4l2DeviceBlock): boolean => b.bus !== null && b.bus.startsWith('usb-');

/** Parse `v4l2-ctl --list-devices` (tab- or space-indented). */
export function parseV4l2Devices(text: string): V4l2DeviceBlock[] {
  const blocks: V4l2DeviceBlock[] = [];
  let current: V4l2DeviceBlock | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim()) continue;
    if (/^\s/.test(line)) {
      const node = line.trim();
      if (current && /^\/dev\/video\d+$/.test(node)) current.nodes.push(node);
      continue;
    }
    const head = /^(.*?)\s*(?:\(([^()]*)\))?:\s*$/.exec(line);
    if (!head) {
      current = null;
      continue;
    }
    current = { name: head[1], bus: head[2] ?? null, nodes: [] };
    blocks.push(current);
  }
  return blocks;
}

/** Parse `v4l2-ctl [-D] -d DEV --list-formats-ext` (tab- or space-indented). */
export function parseV4l2Formats(text: string): V4l2NodeInfo {
  const info: V4l2NodeInfo = { driver: null, card: null, bus: null, formats: [] };
  let format: V4l2Format | null = null;
  let size: V4l2Size | null = null;
  let inFormats = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('ioctl: VIDIOC_ENUM_FMT')) {
      inFormats = true;
      continue;
    }
    if (!inFormats) {
      const kv = /^(Driver name|Card type|Bus info)\s*:\s*(.*)$/.exec(line);
      if (kv) {
        const v = kv[2].trim();
        if (kv[1] === 'Driver name') info.driver ??= v;
        else if (kv[1] === 'Card type') info.card ??= v;
        else info.bus ??= v;
      }
      continue;
    }
    const fmt = /^\[\d+\]:\s*'([^']*)'\s*\((.*)\)\s*$/.exec(line);
    if (fmt) {
      const compressed = /,\s*compressed$/.test(fmt[2]);
      format = { fourcc: fmt[1].trim(), description: fmt[2].replace(/,\s*compressed$/, ''), compressed, sizes: [] };
      info.formats.push(format);
      size = null;
      continue;
    }
    const sz = /^Size:\s*Discrete\s+(\d+)x(\d+)$/.exec(line);
    if (sz && format) {
      const width = Number(sz[1]);
      const height = Number(sz[2]);
      // Some cameras list a size twice; keep one entry and merge its rates.
      size = format.sizes.find((s) => s.width === width && s.height === height) ?? null;
      if (!size) {
        size = { width, height, fps: [] };
        format.sizes.push(size);
      }
      continue;
    }
    if (line.startsWith('Size:')) {
      size = null; // stepwise/continuous: not used for mode choice
      continue;
    }
    const iv = /^Interval:\s*Discrete\s+([\d.]+)s(?:\s*\(([\d.]+)\s*fps\))?/.exec(line);
    if (iv && size) {
      const fps = iv[2] !== undefined ? Number(iv[2]) : 1 / Number(iv[1]);
      const rounded = Math.round(fps * 1000) / 1000;
      if (Number.isFinite(rounded) && rounded > 0 && !size.fps.includes(rounded)) {
        size.fps.push(rounded);
        size.fps.sort((a, b) => b - a);
      }
    }
  }
  return info;
}

const CAMERA_HEAD = /^\s*(\d+)\s*:\s*(\S+)\s*\[([^\]]*)\]\s*\((.*)\)\s*$/;
const MODE = /(?:'([^']+)'\s*:\s*)?(\d+)x(\d+)\s*\[\s*([\d.]+|nan|-?inf)\s*fps/;

/**
 * Parse `rpicam-hello --list-cameras` (also libcamera-hello/-still, with or without -v): the
 * header lines are optional, cameras may follow each other without a blank line, and
 * "No cameras available!" gives an empty list.
 */
export function parseRpicamCameras(text: string): CsiCamera[] {
  const cams: CsiCamera[] = [];
  let cam: CsiCamera | null = null;
  let format: string | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const head = CAMERA_HEAD.exec(line);
    if (head) {
      const px = /(\d+)x(\d+)/.exec(head[3]);
      const bits = /(\d+)-bit/.exec(head[3]);
      cam = {
        index: Number(head[1]),
        model: head[2],
        pixelArray: px ? { width: Number(px[1]), height: Number(px[2]) } : null,
        bitDepth: bits ? Number(bits[1]) : null,
        id: head[4],
        modes: [],
      };
      cams.push(cam);
      format = null;
      continue;
    }
    if (!cam) continue;
    // The -v controls block ends a camera's mode list.
    if (/Available controls/.test(line)) {
      format = '\0done';
      continue;
    }
    if (format === '\0done') continue;
    const mode = MODE.exec(line);
    if (!mode) continue;
    if (mode[1]) format = mode[1];
    if (!format) continue;
    const fps = Number(mode[4]);
    cam.modes.push({ format, width: Number(mode[2]), height: Number(mode[3]), fps: Number.isFinite(fps) ? fps : null });
  }
  return cams;
}

/** The distinct sizes of a CSI camera's modes with the best frame rate of each, largest first. */
export function csiSizes(cam: CsiCamera): V4l2Size[] {
  const out: V4l2Size[] = [];
  for (const m of cam.modes) {
    let s = out.find((x) => x.width === m.width && x.height === m.height);
    if (!s) out.push((s = { width: m.width, height: m.height, fps: [] }));
    if (m.fps !== null && !s.fps.includes(m.fps)) s.fps.push(m.fps);
  }
  for (const s of out) s.fps.sort((a, b) => b - a);
  return out.sort((a, b) => b.width * b.height - a.width * a.height);
}

/** Encoder/decoder names from `ffmpeg -encoders` / `-decoders` (the ` V..... name  description` lines). */
export function parseCodecList(text: string): string[] {
  const names: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([VAS][F.][S.][X.][B.][D.])\s+(\S+)\s/.exec(line);
    if (m && m[2] !== '=') names.push(m[2]);
  }
  return names;
}
