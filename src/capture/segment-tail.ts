/**
 * Reading the segment ffmpeg is still writing: capture flushes every packet (flush_packets=1), so
 * a clip whose window ends inside the open segment can take its last frames as they are written
 * instead of waiting up to a segment length for the file to close.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Segment, SegmentStore } from './segment-store.js';

const PACKET = 188;
const POLL_MS = 10;

/** How a tail ended: the stop frame was reached, the segment closed first (continue after it), or nothing came. */
export type TailEnd = { kind: 'reached' } | { kind: 'closed'; seg: Segment } | { kind: 'gone' };

/** Capture time (epoch ms) of a video PES starting in this 188-byte packet, or null. */
export function packetFrameMs(p: Buffer, runBase: number): number | null {
  if (p[0] !== 0x47 || !(p[1] & 0x40)) return null;
  const afc = (p[3] >> 4) & 3;
  if (!(afc & 1)) return null;
  const at = 4 + (afc & 2 ? 1 + p[4] : 0);
  if (at + 14 > PACKET || p[at] !== 0 || p[at + 1] !== 0 || p[at + 2] !== 1) return null;
  const streamId = p[at + 3];
  if (streamId < 0xe0 || streamId > 0xef || !(p[at + 7] & 0x80)) return null;
  const b = p.subarray(at + 9, at + 14);
  const pts = (b[0] & 0x0e) * 2 ** 29 + b[1] * 2 ** 22 + (b[2] >> 1) * 2 ** 15 + b[3] * 2 ** 7 + (b[4] >> 1);
  return runBase * 1000 + pts / 90;
}

/**
 * Yield the bytes of the segment after `after` while ffmpeg writes it, in whole packets, ending
 * just before the first frame captured at or after `stopMs` ('reached'). If the segment is closed
 * first, all of it is yielded and it is returned ('closed'); 'gone' when it does not grow for
 * `idleMs` or a newer capture run starts.
 */
export async function* tailOpenSegment(store: SegmentStore, after: Segment, stopMs: number, idleMs: number, signal?: AbortSignal): AsyncGenerator<Buffer, TailEnd> {
  const seq = after.seq + 1;
  const path = join(store.dir, `${after.runBase}_${String(seq).padStart(6, '0')}.ts`);
  const closed = () => store.all().find((s) => s.runBase === after.runBase && s.seq === seq) ?? null;
  const newerRun = () => (store.all().at(-1)?.runBase ?? 0) > after.runBase;
  let fh: FileHandle | null = null;
  let offset = 0;
  let lastGrowth = performance.now();
  try {
    for (;;) {
      if (signal?.aborted) return { kind: 'gone' };
      const done = closed();
      if (!fh) fh = await open(path, 'r').catch(() => null);
      if (fh) {
        const size = (await fh.stat()).size;
        const whole = done ? size : size - (size % PACKET);
        if (whole > offset) {
          const buf = Buffer.alloc(whole - offset);
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          const chunk = buf.subarray(0, bytesRead - (done ? 0 : bytesRead % PACKET));
          for (let i = 0; i + PACKET <= chunk.length; i += PACKET) {
            const t = packetFrameMs(chunk.subarray(i, i + PACKET), after.runBase);
            if (t !== null && t >= stopMs - 0.006) {
              if (i > 0) yield chunk.subarray(0, i);
              return { kind: 'reached' };
            }
          }
          offset += chunk.length;
          lastGrowth = performance.now();
          if (chunk.length) yield chunk;
          continue;
        }
      }
      if (done && fh) return { kind: 'closed', seg: done };
      if (done && !fh) return { kind: 'gone' };
      if (newerRun() || performance.now() - lastGrowth > idleMs) return { kind: 'gone' };
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    await fh?.close();
  }
}
