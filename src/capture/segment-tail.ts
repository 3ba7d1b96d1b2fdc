/**
 * Reading the segment ffmpeg is still writing: capture flushes every packet (flush_packets=1), so
 * a clip whose window ends inside the open segment can take its last frames as they are written
 * instead of waiting up to a segment length for the file to close.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Segment, SegmentStore } from './segment-store.js';
import { segmentPath } from './ffmpeg-args.js';

const PACKET = 188;
const WRAP = 2 ** 33;
/** Poll period near the stop instant, and while it is still far away. */
const POLL_NEAR_MS = 10;
const POLL_FAR_MS = 100;

/** How a tail ended: the stop frame was reached, the segment closed first (continue after it), or nothing came. */
export type TailEnd = { kind: 'reached' } | { kind: 'closed'; seg: Segment } | { kind: 'gone' };

/**
 * Capture time (epoch ms) of a video PES starting in this 188-byte packet, or null. `nearMs` is a
 * time the frame is known to be close to (within hours): it resolves the 33-bit PTS wrap after
 * ~26.5 h of one capture run.
 */
export function packetFrameMs(p: Buffer, runBase: number, nearMs = runBase * 1000): number | null {
  if (p[0] !== 0x47 || !(p[1] & 0x40)) return null;
  const afc = (p[3] >> 4) & 3;
  if (!(afc & 1)) return null;
  const at = 4 + (afc & 2 ? 1 + p[4] : 0);
  if (at + 14 > PACKET || p[at] !== 0 || p[at + 1] !== 0 || p[at + 2] !== 1) return null;
  const streamId = p[at + 3];
  if (streamId < 0xe0 || streamId > 0xef || !(p[at + 7] & 0x80)) return null;
  const b = p.subarray(at + 9, at + 14);
  let pts = (b[0] & 0x0e) * 2 ** 29 + b[1] * 2 ** 22 + (b[2] >> 1) * 2 ** 15 + b[3] * 2 ** 7 + (b[4] >> 1);
  pts += WRAP * Math.round(((nearMs - runBase * 1000) * 90 - pts) / WRAP);
  return runBase * 1000 + pts / 90;
}

/**
 * Yield the bytes of the segment after `after` while ffmpeg writes it, ending just before the
 * first frame captured at or after `stopMs` ('reached'). Bytes are given out a whole frame at a
 * time (a frame is complete once the next one starts, or the file closes), so an interrupted tail
 * never ends in half a frame. If the segment closes first, all of it is yielded and it is returned
 * ('closed'); 'gone' when it does not grow for `idleMs`, a newer capture run starts, or `signal`
 * aborts — the unfinished last frame is then left out.
 */
export async function* tailOpenSegment(store: SegmentStore, after: Segment, stopMs: number, idleMs: number, signal?: AbortSignal): AsyncGenerator<Buffer, TailEnd> {
  const seq = after.seq + 1;
  const path = segmentPath(store.dir, after.runBase, seq);
  let fh: FileHandle | null = null;
  let offset = 0;
  /** Bytes from the start of the newest frame on: not known to be complete yet. */
  let held: Buffer[] = [];
  let lastGrowth = performance.now();
  try {
    for (;;) {
      if (signal?.aborted) return { kind: 'gone' };
      const done = store.find(after.runBase, seq);
      if (!fh) fh = await open(path, 'r').catch(() => null);
      if (fh) {
        const size = (await fh.stat()).size;
        const whole = done ? size : size - (size % PACKET);
        if (whole > offset) {
          const buf = Buffer.alloc(whole - offset);
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          const chunk = buf.subarray(0, bytesRead - (done ? 0 : bytesRead % PACKET));
          if (chunk.length > 0) {
            offset += chunk.length;
            lastGrowth = performance.now();
            let from = 0;
            for (let i = 0; i + PACKET <= chunk.length; i += PACKET) {
              const t = packetFrameMs(chunk.subarray(i, i + PACKET), after.runBase, after.endMs);
              if (t === null) continue;
              // A new frame starts here: everything before it is whole.
              const ready = Buffer.concat([...held, chunk.subarray(from, i)]);
              held = [];
              from = i;
              if (ready.length) yield ready;
              if (t >= stopMs - 0.006) return { kind: 'reached' };
            }
            held.push(chunk.subarray(from));
            continue;
          }
        }
      }
      if (done && fh) {
        const rest = Buffer.concat(held);
        held = [];
        if (rest.length) yield rest;
        return { kind: 'closed', seg: done };
      }
      if (done && !fh) return { kind: 'gone' };
      if ((store.latestRunBase() ?? 0) > after.runBase || performance.now() - lastGrowth > idleMs) return { kind: 'gone' };
      const near = stopMs - Date.now() < 1500;
      await new Promise((r) => setTimeout(r, near ? POLL_NEAR_MS : POLL_FAR_MS));
    }
  } finally {
    await fh?.close();
  }
}
