/** Low-level ISO-BMFF box walking: header parsing, in-memory children, finding moov on disk. */
import type { FileHandle } from 'node:fs/promises';

/** A box located in a buffer or file: header start, body start and end offsets. */
export interface Box {
  type: string;
  start: number; // offset of the box header (buffer or file, per caller)
  body: number; // offset of the first byte after the header
  end: number; // offset just past the box
}

// Box types are four printable characters (0xA9 "©" appears in QuickTime metadata types).
const printable = (b: Buffer): boolean => b.every((c) => (c >= 0x20 && c <= 0x7e) || c === 0xa9);

/**
 * Parses the box header at `pos` of `buf` (with `avail` readable bytes from there) for a box that
 * must end by `limit`; `at` is its offset in the file, for messages.
 */
export function boxAt(buf: Buffer, pos: number, avail: number, limit: number, at: number): Box {
  if (avail < 8) throw new Error(`box header at offset ${at} is cut short`);
  const typeBytes = buf.subarray(pos + 4, pos + 8);
  if (!printable(typeBytes)) throw new Error(`no valid box type at offset ${at}`);
  const type = typeBytes.toString('latin1');
  let size = buf.readUInt32BE(pos);
  let body = pos + 8;
  if (size === 1) {
    if (avail < 16) throw new Error(`box '${type}' header at offset ${at} is cut short`);
    size = Number(buf.readBigUInt64BE(pos + 8));
    body = pos + 16;
  } else if (size === 0) {
    size = limit - pos;
  }
  if (size < body - pos || pos + size > limit) {
    throw new Error(`box '${type}' at offset ${at} declares ${size} bytes, only ${limit - pos} are there`);
  }
  return { type, start: pos, body, end: pos + size };
}

/** Direct children of a container body in an in-memory buffer whose byte 0 is file offset `base`. */
export function children(buf: Buffer, from: number, to: number, base: number): Box[] {
  const out: Box[] = [];
  for (let pos = from; pos < to; ) {
    const box = boxAt(buf, pos, to - pos, to, base + pos);
    out.push(box);
    pos = box.end;
  }
  return out;
}

/** Walks the top-level boxes with positioned header reads and returns the moov bytes. */
export async function readMoov(fh: FileHandle): Promise<{ moov: Buffer; offset: number }> {
  const fileSize = (await fh.stat()).size;
  const head = Buffer.alloc(16);
  let found: Box | null = null;
  for (let pos = 0; pos < fileSize; ) {
    const { bytesRead } = await fh.read(head, 0, 16, pos);
    let box: Box;
    try {
      // Offsets here are relative to `pos`, so the box must end by fileSize - pos.
      box = boxAt(head, 0, bytesRead, fileSize - pos, pos);
    } catch (err) {
      const why = (err as Error).message;
      throw new Error(pos === 0 ? `not an MP4 file (${why})` : `truncated or corrupt MP4: ${why}`);
    }
    if (box.type === 'moov') found = { ...box, start: pos, body: pos + box.body, end: pos + box.end };
    pos += box.end;
  }
  if (!found) throw new Error('no moov box (truncated, still being written, or not an MP4 file)');
  const moov = Buffer.alloc(found.end - found.start);
  await fh.read(moov, 0, moov.length, found.start);
  return { moov, offset: found.start };
}

/** Reads an unsigned field that is 64-bit in version 1 boxes and 32-bit otherwise. */
export function readVarUint(buf: Buffer, pos: number, version: number): number {
  return version === 1 ? Number(buf.readBigUInt64BE(pos)) : buf.readUInt32BE(pos);
}

