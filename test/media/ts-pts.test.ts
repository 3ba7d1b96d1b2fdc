/** Tests of the MPEG-TS PTS reader against segments ffmpeg makes at run time, checked with ffprobe. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { framePtsOfFile, videoPtsList } from '../../src/media/ts-pts.js';

const run = promisify(execFile);
const TS = 188;
const testsrc = ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'];
const ts = (offsetS: number): string[] => ['-f', 'mpegts', '-mpegts_copyts', '1', '-output_ts_offset', String(offsetS)];

/** The segments made once for all tests: name → ffmpeg arguments after the inputs. */
const SEGMENTS: Record<string, string[]> = {
  // 4.5e9 ticks: above 2^32, so 33-bit arithmetic is needed.
  'h264.ts': [...testsrc, '-t', '2', '-c:v', 'libx264', '-bf', '0', ...ts(50000)],
  // B-frames (PTS out of order in stream order), audio first so it gets the lower PID.
  'h264-bframes-audio.ts': [
    ...testsrc, '-f', 'lavfi', '-i', 'sine=frequency=440', '-map', '1:a', '-map', '0:v', '-t', '2',
    '-c:v', 'libx264', '-bf', '3', '-c:a', 'aac', ...ts(1000),
  ],
  'hevc.ts': [...testsrc, '-t', '1', '-c:v', 'libx265', '-x265-params', 'log-level=error', ...ts(10)],
  'mpeg2.ts': [...testsrc, '-t', '1', '-c:v', 'mpeg2video', ...ts(10)],
  // A stream type the PMT rule does not take (0x10, MPEG-4 part 2) whose PES come first, then H.264.
  'mpeg4-then-h264.ts': [
    ...testsrc, '-filter_complex', '[0:v]split[a][b];[a]fps=15[m];[b]setpts=PTS+0.5/TB[h]', '-map', '[m]', '-map', '[h]',
    '-t', '1', '-c:v:0', 'mpeg4', '-c:v:1', 'libx264', ...ts(10),
  ],
  'audio-only.ts': ['-f', 'lavfi', '-i', 'sine=frequency=440', '-t', '1', '-c:a', 'aac', ...ts(0)],
};

/** ffprobe's packets of the first video stream: pts and byte position of the PES's first TS packet. */
async function ffprobePackets(path: string, stream = 'v:0'): Promise<Array<{ pts: number; pos: number }>> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', stream, '-show_entries', 'packet=pts,pos', '-of', 'csv=p=0', path]);
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [pts, pos] = l.split(',');
      return { pts: Number(pts), pos: Number(pos) };
    });
}

/** The PID of the TS packet at `pos`. */
const pidAt = (buf: Buffer, pos: number): number => ((buf[pos + 1] & 0x1f) << 8) | buf[pos + 2];

/** The first program's PMT PID in the first PAT packet (ffmpeg writes it without adaptation field). */
function pmtPidOf(buf: Buffer): number {
  const pat = buf.indexOf(Buffer.from([0x47, 0x40, 0x00]));
  const entry = pat + 4 + 1 + 8; // header, pointer_field, 8 section header bytes; then program_number, PID
  return ((buf[entry + 2] & 0x1f) << 8) | buf[entry + 3];
}

/** A buffer of the packets of `buf` whose PID `keep` accepts. */
function filterPackets(buf: Buffer, keep: (pid: number) => boolean): Buffer {
  const out: Buffer[] = [];
  for (let p = 0; p + TS <= buf.length; p += TS) if (keep(pidAt(buf, p))) out.push(buf.subarray(p, p + TS));
  return Buffer.concat(out);
}

/** A deterministic byte stream (xorshift32), so a "garbage" failure can be replayed. */
function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * Re-packetise one PUSI packet so that its PES header is split: `first` payload bytes in one
 * packet, the rest in the next, each padded with adaptation-field stuffing (a real muxer may do this).
 */
function splitPesHeader(packet: Buffer, first: number): Buffer {
  const afc = (packet[3] >> 4) & 3;
  const payload = packet.subarray(afc & 2 ? 5 + packet[4] : 4);
  const make = (pusi: boolean, part: Buffer): Buffer => {
    const p = Buffer.alloc(TS, 0xff);
    p[0] = 0x47;
    p[1] = (packet[1] & 0x1f) | (pusi ? 0x40 : 0);
    p[2] = packet[2];
    const stuffing = TS - 4 - part.length;
    p[3] = (stuffing > 0 ? 0x30 : 0x10) | (packet[3] & 0x0f);
    if (stuffing > 0) {
      p[4] = stuffing - 1; // adaptation_field_length
      if (stuffing > 1) p[5] = 0x00; // no flags; the rest stays 0xFF stuffing
    }
    part.copy(p, TS - part.length);
    return p;
  };
  return Buffer.concat([make(true, payload.subarray(0, first)), make(false, payload.subarray(first))]);
}

describe('videoPtsList on segments made by ffmpeg', () => {
  let dir = '';
  const path = (name: string): string => join(dir, name);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'arenacam-ts-pts-'));
    await Promise.all(
      Object.entries(SEGMENTS).map(([name, args]) => run('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...args, path(name)])),
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const name of ['h264.ts', 'h264-bframes-audio.ts', 'hevc.ts', 'mpeg2.ts']) {
    it(`gives exactly ffprobe's packet PTS list for ${name}`, async () => {
      const expected = (await ffprobePackets(path(name))).map((p) => p.pts);
      assert.ok(expected.length >= 30, `ffprobe saw only ${expected.length} packets`);
      assert.deepEqual(await framePtsOfFile(path(name)), expected);
    });
  }

  it('reads PTS above 2^32 ticks and keeps B-frame order as stored', async () => {
    const big = await framePtsOfFile(path('h264.ts'));
    assert.equal(big[0], 50000 * 90000);
    assert.ok(big[0] > 2 ** 32);
    const b = await framePtsOfFile(path('h264-bframes-audio.ts'));
    assert.ok(b.some((p, i) => i > 0 && p < b[i - 1]), 'with B-frames some PTS must go backwards');
  });

  it('finds the video by stream_id when PAT and PMT are stripped, even with audio on the lower PID', async () => {
    const buf = await readFile(path('h264-bframes-audio.ts'));
    const stripped = filterPackets(buf, (pid) => pid !== 0 && pid !== pmtPidOf(buf));
    assert.ok(stripped.length < buf.length);
    assert.deepEqual(videoPtsList(stripped), videoPtsList(buf));
    assert.deepEqual(videoPtsList(stripped), (await ffprobePackets(path('h264-bframes-audio.ts'))).map((p) => p.pts));
  });

  it('takes the video PID from the PMT, not from an earlier PES of a stream type it does not list', async () => {
    const buf = await readFile(path('mpeg4-then-h264.ts'));
    const h264 = (await ffprobePackets(path('mpeg4-then-h264.ts'), 'v:1')).map((p) => p.pts);
    const mpeg4 = (await ffprobePackets(path('mpeg4-then-h264.ts'), 'v:0')).map((p) => p.pts);
    assert.notDeepEqual(h264, mpeg4);
    assert.deepEqual(videoPtsList(buf), h264);
    // Without PAT/PMT the first video stream_id wins: the MPEG-4 stream, whose PES come first.
    assert.deepEqual(videoPtsList(filterPackets(buf, (pid) => pid !== 0 && pid !== pmtPidOf(buf))), mpeg4);
  });

  it('resyncs over junk between packets and skips a packet whose sync byte is damaged', async () => {
    const buf = await readFile(path('h264.ts'));
    const packets = await ffprobePackets(path('h264.ts'));
    const parts: Buffer[] = [];
    for (let p = 0, n = 0; p < buf.length; p += TS, n++) {
      parts.push(buf.subarray(p, p + TS));
      if (n % 37 === 5) parts.push(Buffer.from([0x00, 0x47, 0x12, 0x47, 0xff, 0x00, 0x01])); // 0x47s that are not syncs
    }
    assert.deepEqual(videoPtsList(Buffer.concat(parts)), packets.map((p) => p.pts));

    const damaged = Buffer.from(buf);
    damaged[packets[3].pos] = 0x48;
    assert.deepEqual(videoPtsList(damaged), packets.filter((_, i) => i !== 3).map((p) => p.pts));
  });

  it('reads a PES header that is split over two packets', async () => {
    const buf = await readFile(path('h264.ts'));
    const packets = await ffprobePackets(path('h264.ts'));
    for (const first of [2, 6, 11]) {
      const at = packets[2].pos;
      const split = Buffer.concat([buf.subarray(0, at), splitPesHeader(buf.subarray(at, at + TS), first), buf.subarray(at + TS)]);
      assert.deepEqual(videoPtsList(split), packets.map((p) => p.pts), `header split after ${first} bytes`);
    }
  });

  it('gives the PES starts in complete packets before a cut in the middle of a packet, as ffprobe does', async () => {
    const buf = await readFile(path('h264-bframes-audio.ts'));
    const packets = await ffprobePackets(path('h264-bframes-audio.ts'));
    const k = Math.floor(packets.length / 2);
    for (const into of [1, 12, 100]) {
      const cut = packets[k].pos + into;
      const expected = packets.filter((p) => p.pos + TS <= cut).map((p) => p.pts);
      assert.equal(expected.length, k);
      const cutPath = path(`cut-${into}.ts`);
      await writeFile(cutPath, buf.subarray(0, cut));
      assert.deepEqual(await framePtsOfFile(cutPath), expected, `cut ${into} bytes into packet`);
      assert.deepEqual((await ffprobePackets(cutPath)).map((p) => p.pts), expected, 'ffprobe agrees on the cut file');
    }
  });

  it('gives [] for garbage and for a segment without video', async () => {
    assert.deepEqual(videoPtsList(Buffer.alloc(0)), []);
    assert.deepEqual(videoPtsList(Buffer.alloc(TS - 1, 0x47)), []);
    assert.deepEqual(videoPtsList(Buffer.alloc(TS * 100, 0x47)), []);
    assert.deepEqual(videoPtsList(Buffer.from('not a transport stream\n'.repeat(1000))), []);
    for (const seed of [1, 2, 3]) assert.deepEqual(videoPtsList(pseudoRandom(1 << 20, seed)), []);
    assert.deepEqual(await framePtsOfFile(path('audio-only.ts')), []);
    await assert.rejects(framePtsOfFile(path('missing.ts')), { code: 'ENOENT' });
  });
});
