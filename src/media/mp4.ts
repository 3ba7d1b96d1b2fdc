/** ISO-BMFF (MP4) reader and in-place edit-list patcher that never loads mdat into memory. */
import { open, type FileHandle } from 'node:fs/promises';
import { boxAt, children, readMoov, readVarUint, type Box } from './mp4-boxes.js';

/** One entry of a track's edit list (elst). */
export interface Mp4Edit {
  /** Duration of this edit in movie timescale units. */
  segmentDuration: number;
  /** Media time where the edit starts, in media timescale units; -1 means an empty edit. */
  mediaTime: number;
  /** Playback rate (16.16 fixed point, as a number). */
  rate: number;
  /** File offset of this entry inside the elst box, for patching. */
  fileOffset: number;
}

/** What readMp4Info reports about one track. */
export interface Mp4Track {
  /** Track ID from tkhd. */
  trackId: number;
  /** Handler type from hdlr: 'vide', 'soun', ... */
  handler: string;
  /** Track duration from tkhd, in movie timescale units. */
  duration: number;
  /** Timescale from mdhd. */
  mediaTimescale: number;
  /** Media duration from mdhd, in media timescale units. */
  mediaDuration: number;
  /** Number of samples (stsz/stz2). */
  sampleCount: number;
  /** Decode time of each sample in media units, from stts. */
  sampleDts: number[];
  /** Composition offset of each sample in media units, from ctts; null without ctts. */
  compositionOffsets: number[] | null;
  /** 1-based sample numbers of sync samples from stss; null = every sample is a sync sample. */
  syncSamples: number[] | null;
  /** Edit list entries; empty when the track has no elst. */
  edits: Mp4Edit[];
  /** elst box version (0 or 1), null when the track has no elst. */
  elstVersion: 0 | 1 | null;
}

/** What readMp4Info reports about a file. */
export interface Mp4Info {
  /** Timescale from mvhd. */
  movieTimescale: number;
  /** Duration from mvhd, in movie timescale units. */
  movieDuration: number;
  /** File offset of the moov box (before mdat when the file was written with +faststart). */
  moovOffset: number;
  /** The tracks, in file order. */
  tracks: Mp4Track[];
}

/** A malformed, truncated or unsupported MP4 file, or an impossible patch request. */
export class Mp4Error extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'Mp4Error';
  }
}

/** Where the fields trimStart rewrites live in the file, beside the parsed info. */
interface Layout {
  mvhd: { version: number; durationOffset: number };
  tracks: Map<number, { tkhdVersion: number; tkhdDurationOffset: number }>;
}

/** Throws unless `box` has at least `bytes` bytes of body (so fixed fields are really its own). */
function ensure(box: Box, bytes: number, base: number): void {
  if (box.end - box.body < bytes) {
    const have = box.end - box.body;
    throw new Error(`box '${box.type}' at offset ${base + box.start} is too short (${have} < ${bytes} bytes)`);
  }
}

/** Reads a run-length table (stts/ctts: count, value pairs) into one value per sample. */
function expandRuns(buf: Buffer, box: Box, base: number, samples: number, dts: boolean): number[] {
  ensure(box, 8, base);
  const n = buf.readUInt32BE(box.body + 4);
  ensure(box, 8 + 8 * n, base);
  const out: number[] = [];
  let t = 0;
  for (let i = 0, p = box.body + 8; i < n; i++, p += 8) {
    const count = buf.readUInt32BE(p);
    // stts deltas are unsigned; ctts offsets are read as signed, as decoders do for both versions.
    const value = dts ? buf.readUInt32BE(p + 4) : buf.readInt32BE(p + 4);
    if (out.length + count > samples) {
      throw new Error(`'${box.type}' at offset ${base + box.start} covers more than the ${samples} samples`);
    }
    for (let k = 0; k < count; k++, t += value) out.push(dts ? t : value);
  }
  if (out.length !== samples) {
    throw new Error(`'${box.type}' at offset ${base + box.start} covers ${out.length} of ${samples} samples`);
  }
  return out;
}

/** Parses the elst entries and records their file offsets. */
function parseElst(buf: Buffer, box: Box, base: number): { version: 0 | 1; edits: Mp4Edit[] } {
  const version = buf[box.body] === 1 ? 1 : 0;
  const n = buf.readUInt32BE(box.body + 4);
  const step = version === 1 ? 20 : 12;
  ensure(box, 8 + n * step, base);
  const edits: Mp4Edit[] = [];
  for (let i = 0, p = box.body + 8; i < n; i++, p += step) {
    const segmentDuration = readVarUint(buf, p, version);
    const mediaTime = version === 1 ? Number(buf.readBigInt64BE(p + 8)) : buf.readInt32BE(p + 4);
    const r = p + (version === 1 ? 16 : 8);
    const rate = buf.readInt16BE(r) + buf.readUInt16BE(r + 2) / 65536;
    edits.push({ segmentDuration, mediaTime, rate, fileOffset: base + p });
  }
  return { version, edits };
}

/** Parses one trak box into its public description and the patch locations. */
function parseTrak(buf: Buffer, trak: Box, base: number, layout: Layout): Mp4Track {
  const find = (parent: Box, type: string): Box | undefined =>
    children(buf, parent.body, parent.end, base).find((b) => b.type === type);
  const need = (parent: Box | undefined, type: string): Box => {
    const box = parent && find(parent, type);
    if (!box) throw new Error(`trak at offset ${base + trak.start} has no '${type}' box`);
    ensure(box, 4, base);
    return box;
  };
  const tkhd = need(trak, 'tkhd');
  const tv = buf[tkhd.body];
  ensure(tkhd, tv === 1 ? 36 : 24, base);
  const trackId = buf.readUInt32BE(tkhd.body + (tv === 1 ? 20 : 12));
  const tkhdDurationOffset = tkhd.body + (tv === 1 ? 28 : 20);
  layout.tracks.set(trackId, { tkhdVersion: tv, tkhdDurationOffset: base + tkhdDurationOffset });
  const mdia = need(trak, 'mdia');
  const mdhd = need(mdia, 'mdhd');
  const mv = buf[mdhd.body];
  ensure(mdhd, mv === 1 ? 32 : 20, base);
  const hdlr = need(mdia, 'hdlr');
  ensure(hdlr, 12, base);
  const stbl = need(need(mdia, 'minf'), 'stbl');
  const stsz = find(stbl, 'stsz') ?? need(stbl, 'stz2');
  const stts = need(stbl, 'stts');
  const ctts = find(stbl, 'ctts');
  const stss = find(stbl, 'stss');
  const edts = find(trak, 'edts');
  const elstBox = edts && find(edts, 'elst');
  const elst = elstBox ? parseElst(buf, elstBox, base) : null;
  ensure(stsz, 12, base);
  const sampleCount = buf.readUInt32BE(stsz.body + 8);
  let syncSamples: number[] | null = null;
  if (stss) {
    ensure(stss, 8, base);
    const n = buf.readUInt32BE(stss.body + 4);
    ensure(stss, 8 + 4 * n, base);
    syncSamples = Array.from({ length: n }, (_, i) => buf.readUInt32BE(stss.body + 8 + 4 * i));
  }
  return {
    trackId,
    handler: buf.toString('latin1', hdlr.body + 8, hdlr.body + 12),
    duration: readVarUint(buf, tkhdDurationOffset, tv),
    mediaTimescale: buf.readUInt32BE(mdhd.body + (mv === 1 ? 20 : 12)),
    mediaDuration: readVarUint(buf, mdhd.body + (mv === 1 ? 24 : 16), mv),
    sampleCount,
    sampleDts: expandRuns(buf, stts, base, sampleCount, true),
    compositionOffsets: ctts ? expandRuns(buf, ctts, base, sampleCount, false) : null,
    syncSamples,
    edits: elst?.edits ?? [],
    elstVersion: elst?.version ?? null,
  };
}

/** Reads the moov of an open file into info plus the offsets trimStart patches. */
async function parse(fh: FileHandle): Promise<{ info: Mp4Info; layout: Layout }> {
  const { moov, offset } = await readMoov(fh);
  const top = boxAt(moov, 0, moov.length, moov.length, offset);
  const kids = children(moov, top.body, top.end, offset);
  const mvhd = kids.find((b) => b.type === 'mvhd');
  if (!mvhd) throw new Error(`moov at offset ${offset} has no 'mvhd' box`);
  const v = moov[mvhd.body];
  ensure(mvhd, v === 1 ? 32 : 20, offset);
  const durationOffset = mvhd.body + (v === 1 ? 24 : 16);
  const layout: Layout = { mvhd: { version: v, durationOffset: offset + durationOffset }, tracks: new Map() };
  const tracks = kids.filter((b) => b.type === 'trak').map((t) => parseTrak(moov, t, offset, layout));
  const info: Mp4Info = {
    movieTimescale: moov.readUInt32BE(mvhd.body + (v === 1 ? 20 : 12)),
    movieDuration: readVarUint(moov, durationOffset, v),
    moovOffset: offset,
    tracks,
  };
  return { info, layout };
}

/** Runs `fn` on the opened file and turns any parse failure into an Mp4Error naming the file. */
async function withFile<T>(path: string, flags: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
  const fh = await open(path, flags);
  try {
    return await fn(fh);
  } catch (err) {
    if (err instanceof Mp4Error) throw err;
    const msg = err instanceof RangeError ? `corrupt MP4 (${err.message})` : (err as Error).message;
    throw new Mp4Error(path, msg);
  } finally {
    await fh.close();
  }
}

/** Reads the movie header, tracks, sample timing, sync samples and edit lists of an MP4 file. */
export async function readMp4Info(path: string): Promise<Mp4Info> {
  return withFile(path, 'r', async (fh) => (await parse(fh)).info);
}

/** Presentation time of 0-based sample `i` in media units (decode time plus composition offset). */
export function samplePts(track: Mp4Track, i: number): number {
  return track.sampleDts[i] + (track.compositionOffsets?.[i] ?? 0);
}

/** Writes an unsigned duration field of a version 0/1 box at a file offset. */
async function writeVarUint(fh: FileHandle, at: number, version: number, value: number): Promise<void> {
  const b = Buffer.alloc(version === 1 ? 8 : 4);
  if (version === 1) b.writeBigUInt64BE(BigInt(value));
  else b.writeUInt32BE(value);
  await fh.write(b, 0, b.length, at);
}

/**
 * Patches the file in place so the track's presentation starts `offset` media units later:
 * moves the single non-empty elst entry's media_time forward, shortens it, and updates tkhd/mvhd.
 */
export async function trimStart(path: string, trackId: number, offset: number): Promise<void> {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new Mp4Error(path, `trim offset must be a non-negative integer, got ${offset}`);
  }
  await withFile(path, 'r+', async (fh) => {
    const { info, layout } = await parse(fh);
    const track = info.tracks.find((t) => t.trackId === trackId);
    if (!track) throw new Error(`no track with id ${trackId}`);
    if (track.elstVersion === null) throw new Error(`track ${trackId} has no edit list (elst)`);
    const live = track.edits.filter((e) => e.mediaTime !== -1);
    if (live.length !== 1) {
      throw new Error(`track ${trackId} has ${live.length} non-empty elst entries, expected exactly 1`);
    }
    const edit = live[0];
    const movieDelta = Math.round((offset * info.movieTimescale) / track.mediaTimescale);
    const mediaTime = edit.mediaTime + offset;
    const segmentDuration = edit.segmentDuration - movieDelta;
    if (mediaTime >= track.mediaDuration || segmentDuration <= 0) {
      throw new Error(
        `trim offset ${offset} is beyond track ${trackId} (media duration ${track.mediaDuration}, ` +
          `edit starts at ${edit.mediaTime} and lasts ${edit.segmentDuration} movie units)`,
      );
    }
    if (track.elstVersion === 0 && mediaTime > 0x7fffffff) {
      throw new Error(`media_time ${mediaTime} does not fit a version 0 elst`);
    }
    const v = track.elstVersion;
    const entry = Buffer.alloc(v === 1 ? 16 : 8);
    if (v === 1) {
      entry.writeBigUInt64BE(BigInt(segmentDuration), 0);
      entry.writeBigInt64BE(BigInt(mediaTime), 8);
    } else {
      entry.writeUInt32BE(segmentDuration, 0);
      entry.writeInt32BE(mediaTime, 4);
    }
    await fh.write(entry, 0, entry.length, edit.fileOffset);
    edit.segmentDuration = segmentDuration;
    const durations = info.tracks.map((t) =>
      t === track ? track.edits.reduce((sum, e) => sum + e.segmentDuration, 0) : t.duration,
    );
    const tk = layout.tracks.get(trackId)!;
    await writeVarUint(fh, tk.tkhdDurationOffset, tk.tkhdVersion, durations[info.tracks.indexOf(track)]);
    await writeVarUint(fh, layout.mvhd.durationOffset, layout.mvhd.version, Math.max(...durations));
    await fh.datasync();
  });
}
