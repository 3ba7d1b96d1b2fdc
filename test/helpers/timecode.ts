/**
 * A block timecode painted into gray (1 byte per pixel) frames, robust to lossy H.264.
 *
 * Layout: a grid of COLS x ROWS square cells, one cell in from the top-left corner. Cells are
 * 16 px at up to 640x360 and grow in steps of 16 px with the frame (48 px at 1920x1080), so they
 * stay aligned to H.264 macroblocks when the frame is not rescaled. Row 0 is a fixed sync
 * pattern (half black, half white): it tells a code from garbage and gives the black and white
 * levels the decoder thresholds against. Rows 1..7 carry 112 bits, most significant first:
 *   56 bits  epoch time in 1/256 ms (48 bits of whole milliseconds: good until year 10889)
 *   24 bits  frame index (wraps at 2^24, 6.5 days at 30 fps)
 *   32 bits  CRC-32 (IEEE) of the 10 bytes above
 * Only the code cells are written; the rest of the frame is left as the caller painted it.
 */

const COLS = 16;
const ROWS = 8;
/** Sync row, one bit per cell, left to right: 8 white and 8 black cells, not periodic. */
const SYNC = 0b1011_0001_1101_0010;
const PAYLOAD_BYTES = ((ROWS - 1) * COLS) / 8; // 14
const FRACTION = 256; // epoch units per millisecond
const MAX_EPOCH_UNITS = 2 ** 56;
const FRAME_INDEX_MODULO = 2 ** 24;
/** Smallest white-minus-black difference of the sync row that still counts as a code. */
const MIN_CONTRAST = 48;
const BLACK = 0;
const WHITE = 255;

/** Where the code sits in a frame of a given size: cell edge and top-left corner, in pixels. */
export interface TimecodeGeometry {
  /** Edge of one square cell. */
  cell: number;
  /** Left edge of the grid. */
  x0: number;
  /** Top edge of the grid. */
  y0: number;
  /** Grid width in pixels (COLS cells). */
  gridWidth: number;
  /** Grid height in pixels (ROWS cells). */
  gridHeight: number;
}

/** A decoded timecode: capture time (ms since the Unix epoch, 1/256 ms steps) and frame index. */
export interface Timecode {
  epochMs: number;
  frameIndex: number;
}

/** The code's geometry for a width x height frame; throws a RangeError if it does not fit. */
export function timecodeGeometry(width: number, height: number): TimecodeGeometry {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`frame size must be positive integers, got ${width}x${height}`);
  }
  const cell = 16 * Math.max(1, Math.floor(Math.min(width / 640, height / 360)));
  if ((COLS + 2) * cell > width || (ROWS + 2) * cell > height) {
    throw new RangeError(
      `frame ${width}x${height} is too small for the timecode (needs ${(COLS + 2) * cell}x${(ROWS + 2) * cell})`,
    );
  }
  return { cell, x0: cell, y0: cell, gridWidth: COLS * cell, gridHeight: ROWS * cell };
}

/** Paint the code for `epochMs` and `frameIndex` into a gray frame (only the code cells change). */
export function paintTimecode(
  frame: Buffer,
  width: number,
  height: number,
  epochMs: number,
  frameIndex: number,
): void {
  checkFrame(frame, width, height);
  const units = Math.round(epochMs * FRACTION);
  if (!Number.isFinite(units) || units < 0 || units >= MAX_EPOCH_UNITS) {
    throw new RangeError(`epochMs out of range: ${epochMs}`);
  }
  if (!Number.isSafeInteger(frameIndex) || frameIndex < 0) {
    throw new RangeError(`frameIndex must be a non-negative integer, got ${frameIndex}`);
  }
  const payload = new Uint8Array(PAYLOAD_BYTES);
  const hi = Math.floor(units / 2 ** 32); // top 24 bits
  const lo = units - hi * 2 ** 32; // bottom 32 bits
  writeUint(payload, 0, 3, hi);
  writeUint(payload, 3, 4, lo);
  writeUint(payload, 7, 3, frameIndex % FRAME_INDEX_MODULO);
  writeUint(payload, 10, 4, crc32(payload.subarray(0, 10)));

  const g = timecodeGeometry(width, height);
  for (let row = 0; row < ROWS; row++) {
    // Paint the first pixel line of the cell row, then copy it down (a memmove per line).
    const first = (g.y0 + row * g.cell) * width + g.x0;
    for (let col = 0; col < COLS; col++) {
      const white = row === 0 ? bitOf(SYNC, COLS - 1 - col) : bitAt(payload, (row - 1) * COLS + col);
      frame.fill(white ? WHITE : BLACK, first + col * g.cell, first + (col + 1) * g.cell);
    }
    for (let y = 1; y < g.cell; y++) frame.copyWithin(first + y * width, first, first + g.gridWidth);
  }
}

/** Read the code back from a gray frame; null when there is no valid code (sync or CRC fails). */
export function readTimecode(frame: Buffer, width: number, height: number): Timecode | null {
  checkFrame(frame, width, height);
  const g = timecodeGeometry(width, height);
  let whiteSum = 0;
  let blackSum = 0;
  const sync = new Float64Array(COLS);
  for (let col = 0; col < COLS; col++) {
    sync[col] = cellMean(frame, width, g, 0, col);
    if (bitOf(SYNC, COLS - 1 - col)) whiteSum += sync[col];
    else blackSum += sync[col];
  }
  const white = whiteSum / (COLS / 2);
  const black = blackSum / (COLS / 2);
  if (white - black < MIN_CONTRAST) return null;
  const threshold = (white + black) / 2;
  for (let col = 0; col < COLS; col++) {
    if (sync[col] > threshold !== bitOf(SYNC, COLS - 1 - col)) return null;
  }

  const payload = new Uint8Array(PAYLOAD_BYTES);
  for (let i = 0; i < PAYLOAD_BYTES * 8; i++) {
    if (cellMean(frame, width, g, 1 + Math.floor(i / COLS), i % COLS) > threshold) {
      payload[i >> 3] |= 1 << (7 - (i & 7));
    }
  }
  if (readUint(payload, 10, 4) !== crc32(payload.subarray(0, 10))) return null;
  const units = readUint(payload, 0, 3) * 2 ** 32 + readUint(payload, 3, 4);
  return { epochMs: units / FRACTION, frameIndex: readUint(payload, 7, 3) };
}

/** CRC-32 (IEEE 802.3, as zlib) of some bytes. */
export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function checkFrame(frame: Buffer, width: number, height: number): void {
  if (frame.length < width * height) {
    throw new RangeError(`frame holds ${frame.length} bytes, a ${width}x${height} gray frame needs ${width * height}`);
  }
}

function bitOf(value: number, bit: number): boolean {
  return ((value >> bit) & 1) === 1;
}

function bitAt(bytes: Uint8Array, i: number): boolean {
  return ((bytes[i >> 3] >> (7 - (i & 7))) & 1) === 1;
}

/** Mean of the inner half of a cell (its edges blur and ring after lossy coding). */
function cellMean(frame: Buffer, width: number, g: TimecodeGeometry, row: number, col: number): number {
  const inset = g.cell >> 2;
  const left = g.x0 + col * g.cell + inset;
  const top = g.y0 + row * g.cell + inset;
  const size = g.cell - 2 * inset;
  let sum = 0;
  for (let y = top; y < top + size; y++) {
    const start = y * width + left;
    for (let x = start; x < start + size; x++) sum += frame[x];
  }
  return sum / (size * size);
}

function writeUint(bytes: Uint8Array, offset: number, length: number, value: number): void {
  for (let i = length - 1; i >= 0; i--) {
    bytes[offset + i] = value % 256;
    value = Math.floor(value / 256);
  }
}

function readUint(bytes: Uint8Array, offset: number, length: number): number {
  let value = 0;
  for (let i = 0; i < length; i++) value = value * 256 + bytes[offset + i];
  return value;
}
