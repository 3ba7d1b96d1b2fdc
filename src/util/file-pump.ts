/** Stream a byte range of a file into a writer through two reused buffers (flat memory at any size). */
import type { FileHandle } from 'node:fs/promises';

/** Bytes read per chunk. */
export const PUMP_CHUNK = 256 * 1024;

/**
 * Read `length` bytes of `file` from `start` and hand them to `write` in order. A buffer is
 * refilled only after `write` resolved for its previous contents (for a socket: its write
 * callback, when the bytes reached the kernel), so memory stays flat however large the file and
 * reads overlap with the network. `write` must not keep the chunk after resolving. Returns the
 * bytes read (fewer than `length` only when the file is shorter).
 */
export async function pumpFile(file: FileHandle, start: number, length: number, write: (chunk: Buffer) => Promise<void>): Promise<number> {
  const bufs = [Buffer.allocUnsafe(Math.min(PUMP_CHUNK, Math.max(length, 1))), Buffer.allocUnsafe(Math.min(PUMP_CHUNK, Math.max(length, 1)))];
  const inFlight: Array<Promise<void>> = [Promise.resolve(), Promise.resolve()];
  let done = 0;
  let i = 0;
  while (done < length) {
    await inFlight[i];
    const { bytesRead } = await file.read(bufs[i], 0, Math.min(bufs[i].length, length - done), start + done);
    if (bytesRead === 0) break;
    done += bytesRead;
    inFlight[i] = write(bufs[i].subarray(0, bytesRead));
    // Don't let an early failure of this write go unhandled while the other buffer is awaited.
    inFlight[i].catch(() => undefined);
    i ^= 1;
  }
  await Promise.all(inFlight);
  return done;
}

/** A `write` for pumpFile over a Node writable: resolves at the write callback. */
export function writeTo(w: { write(chunk: Buffer, cb: (err?: Error | null) => void): boolean; destroyed: boolean }): (chunk: Buffer) => Promise<void> {
  return (chunk) =>
    new Promise<void>((resolve, reject) => {
      if (w.destroyed) return reject(Object.assign(new Error('the connection was closed'), { code: 'ECONNRESET' }));
      w.write(chunk, (err) => (err ? reject(err) : resolve()));
    });
}
