/** A small, fast MPEG-TS reader: the PTS of every video PES, without ffprobe. */
import { readFile } from 'node:fs/promises';

const PACKET = 188;
const SYNC = 0x47;
/** PMT stream types taken as video: MPEG-2, H.264, HEVC. */
const VIDEO_STREAM_TYPES = new Set([0x02, 0x1b, 0x24]);
/** PES header bytes up to and including the PTS: start code, stream_id, length, 2 flag bytes, header length, PTS. */
const PES_PTS_END = 14;

/** Per-PID state of a PES whose header has started but not yet reached the PTS bytes. */
interface PendingHeader {
  bytes: number[];
}

/** What one pass over the packets found. */
interface Scan {
  /** PTS of every PES with a PTS, per PID, in stream order. */
  ptsByPid: Map<number, number[]>;
  /** The first video PID the PMT names; null when no PAT/PMT was seen. */
  pmtVideoPid: number | null;
  /** The PID of the first PES with a video stream_id (0xE0–0xEF); the fallback. */
  firstVideoStreamPid: number | null;
}

/**
 * The PTS (90 kHz ticks, 33-bit) of every video PES in an MPEG-TS buffer, in stream order.
 * The video PID comes from PAT/PMT (stream type 0x1B H.264, 0x24 HEVC, 0x02 MPEG-2); without
 * them, from the first PES with stream_id 0xE0–0xEF. Bytes that are not a packet starting with
 * 0x47 are skipped (resync); a trailing partial packet is ignored; PES without a PTS are left out.
 */
export function videoPtsList(buf: Buffer): number[] {
  const scan = scanPackets(buf);
  const pid = scan.pmtVideoPid ?? scan.firstVideoStreamPid;
  return pid === null ? [] : (scan.ptsByPid.get(pid) ?? []);
}

/** videoPtsList of a whole file (segments are small enough to read at once). */
export async function framePtsOfFile(path: string): Promise<number[]> {
  return videoPtsList(await readFile(path));
}

/** One pass over the buffer's packets, collecting PAT/PMT facts and PES timestamps. */
function scanPackets(buf: Buffer): Scan {
  const scan: Scan = { ptsByPid: new Map(), pmtVideoPid: null, firstVideoStreamPid: null };
  const pmtPids = new Set<number>();
  const pending = new Map<number, PendingHeader>();
  let pos = 0;
  while (pos + PACKET <= buf.length) {
    if (buf[pos] !== SYNC) {
      pos = resync(buf, pos + 1);
      continue;
    }
    const b1 = buf[pos + 1];
    const pid = ((b1 & 0x1f) << 8) | buf[pos + 2];
    const pusi = (b1 & 0x40) !== 0;
    const afc = (buf[pos + 3] >> 4) & 3;
    let start = pos + 4;
    if (afc & 2) start += 1 + buf[pos + 4];
    const end = pos + PACKET;
    pos = end;
    if ((b1 & 0x80) !== 0 || (afc & 1) === 0 || start >= end || pid === 0x1fff) continue; // error, no payload, null
    if (pid === 0) {
      if (pusi) for (const p of patPmtPids(buf, start, end)) pmtPids.add(p);
    } else if (pmtPids.has(pid)) {
      if (pusi && scan.pmtVideoPid === null) scan.pmtVideoPid = pmtVideoPid(buf, start, end);
    } else if (pusi) {
      pending.delete(pid);
      takeHeaderBytes(scan, pending, pid, { bytes: [] }, buf, start, end);
    } else {
      const p = pending.get(pid);
      if (p !== undefined) takeHeaderBytes(scan, pending, pid, p, buf, start, end);
    }
  }
  return scan;
}

/** The next offset at or after `from` holding 0x47 with another 0x47 one packet later (or the end). */
function resync(buf: Buffer, from: number): number {
  for (let i = buf.indexOf(SYNC, from); i >= 0; i = buf.indexOf(SYNC, i + 1)) {
    if (i + PACKET >= buf.length || buf[i + PACKET] === SYNC) return i;
  }
  return buf.length;
}

/** Add payload bytes to a PES header; once the PTS bytes are in, record the PTS (if any). */
function takeHeaderBytes(
  scan: Scan,
  pending: Map<number, PendingHeader>,
  pid: number,
  header: PendingHeader,
  buf: Buffer,
  start: number,
  end: number,
): void {
  const h = header.bytes;
  for (let i = start; i < end && h.length < PES_PTS_END; i++) h.push(buf[i]);
  const verdict = readHeader(h);
  if (verdict === 'more') {
    pending.set(pid, header);
    return;
  }
  pending.delete(pid);
  if (verdict === 'not-pes') return;
  if (h[3] >= 0xe0 && h[3] <= 0xef && scan.firstVideoStreamPid === null) scan.firstVideoStreamPid = pid;
  if (verdict === 'no-pts') return;
  let list = scan.ptsByPid.get(pid);
  if (list === undefined) scan.ptsByPid.set(pid, (list = []));
  list.push(verdict);
}

/** The PTS of a PES header's first bytes, or why there is none yet ('more' = need more bytes). */
function readHeader(h: number[]): number | 'more' | 'not-pes' | 'no-pts' {
  if (h.length < 4) return 'more';
  if (h[0] !== 0 || h[1] !== 0 || h[2] !== 1) return 'not-pes';
  if (h.length < 9) return 'more';
  // '10' marker of the optional header, PTS flag set, room for 5 PTS bytes.
  if ((h[6] & 0xc0) !== 0x80 || (h[7] & 0x80) === 0 || h[8] < 5) return 'no-pts';
  if (h.length < PES_PTS_END) return 'more';
  // 33 bits over 5 bytes with marker bits; bitwise operators would overflow above 2^31, so multiply.
  return ((h[9] >> 1) & 0x07) * 2 ** 30 + ((h[10] << 7) | (h[11] >> 1)) * 2 ** 15 + ((h[12] << 7) | (h[13] >> 1));
}

/** Start and end (before the CRC) of a PSI section with the given table_id in one payload; null if not there. */
function section(buf: Buffer, start: number, end: number, tableId: number): { from: number; to: number } | null {
  const from = start + 1 + buf[start]; // pointer_field
  if (from + 8 > end || buf[from] !== tableId) return null;
  const length = ((buf[from + 1] & 0x0f) << 8) | buf[from + 2];
  return { from, to: Math.min(end, from + 3 + length - 4) };
}

/** The PMT PIDs a PAT section lists (program 0, the network PID, is left out). */
function patPmtPids(buf: Buffer, start: number, end: number): number[] {
  const s = section(buf, start, end, 0x00);
  if (s === null) return [];
  const pids: number[] = [];
  for (let i = s.from + 8; i + 4 <= s.to; i += 4) {
    const program = (buf[i] << 8) | buf[i + 1];
    if (program !== 0) pids.push(((buf[i + 2] & 0x1f) << 8) | buf[i + 3]);
  }
  return pids;
}

/** The first elementary PID of a video stream type in a PMT section; null when none (or not a PMT). */
function pmtVideoPid(buf: Buffer, start: number, end: number): number | null {
  const s = section(buf, start, end, 0x02);
  if (s === null || s.from + 12 > s.to) return null;
  const programInfoLength = ((buf[s.from + 10] & 0x0f) << 8) | buf[s.from + 11];
  for (let i = s.from + 12 + programInfoLength; i + 5 <= s.to; ) {
    const streamType = buf[i];
    const pid = ((buf[i + 1] & 0x1f) << 8) | buf[i + 2];
    if (VIDEO_STREAM_TYPES.has(streamType)) return pid;
    i += 5 + (((buf[i + 3] & 0x0f) << 8) | buf[i + 4]);
  }
  return null;
}
