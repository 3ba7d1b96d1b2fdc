/** Why a clip could not be made, as a wire code, and the mapping from lower-level failures. */
import { AssemblyError } from '../media/assemble.js';

/** Why a clip could not be made; `code` goes on the wire. */
export class ClipError extends Error {
  constructor(
    readonly code: 'CLIP_EXPORT_FAILED' | 'LOW_STORAGE' | 'NO_FOOTAGE' | 'DUPLICATE_CLIP_ID' | 'BUSY',
    message: string,
  ) {
    super(message);
    this.name = 'ClipError';
  }
}

/** Turn any failure of a clip job into a ClipError (a full disk becomes LOW_STORAGE). */
export function toClipError(err: unknown): ClipError {
  if (err instanceof ClipError) return err;
  const e = err as NodeJS.ErrnoException;
  if ((err instanceof AssemblyError && err.code === 'ENOSPC') || e.code === 'ENOSPC' || /No space left/i.test(e.message ?? '')) {
    return new ClipError('LOW_STORAGE', 'not enough free space to write the clip');
  }
  if (err instanceof AssemblyError && err.code === 'NO_FOOTAGE') return new ClipError('NO_FOOTAGE', err.message);
  return new ClipError('CLIP_EXPORT_FAILED', (e.message ?? String(err)).slice(0, 300));
}
