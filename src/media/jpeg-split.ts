/** Splitting a byte stream of concatenated JPEGs (ffmpeg's image2pipe output) into whole images. */

const SOI = Buffer.from([0xff, 0xd8]);

/**
 * Cuts a byte stream of concatenated JPEGs into whole images by walking the markers: segments by
 * their length, entropy-coded data up to the next real marker (FF00 stuffing and RSTn skipped), so
 * an FFD9 inside a thumbnail or a table cannot end a picture early.
 */
export class JpegSplitter {
  private buf: Buffer = Buffer.alloc(0);
  /** Where parsing resumes; 0 = still looking for a start of image. */
  private pos = 0;
  private inScan = false;

  constructor(private readonly maxBytes = 16 * 1024 * 1024) {}

  /** Add bytes; returns the images completed by them. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    for (let end = this.scan(); end > 0; end = this.scan()) {
      out.push(Buffer.from(this.buf.subarray(0, end)));
      this.restart(end);
    }
    if (this.buf.length > this.maxBytes) this.restart(this.buf.length - 1);
    return out;
  }

  private restart(from: number): void {
    this.buf = this.buf.subarray(from);
    this.pos = 0;
    this.inScan = false;
  }

  /** Length of the whole image at the start of buf, or 0 while it needs more bytes. */
  private scan(): number {
    for (;;) {
      if (this.pos === 0) {
        const soi = this.buf.indexOf(SOI);
        this.restart(soi < 0 ? Math.max(0, this.buf.length - 1) : soi);
        if (soi < 0) return 0;
        this.pos = 2;
      }
      const b = this.buf;
      let p = this.pos;
      if (this.inScan) {
        p = this.scanEnd(p);
        if (p < 0) return 0;
        this.inScan = false;
      }
      if (p + 2 > b.length) {
        this.pos = p;
        return 0;
      }
      const m = b[p + 1];
      if (b[p] !== 0xff || m === 0xd8) {
        this.restart(b[p] !== 0xff ? 1 : p); // corrupt, or a new image before this one ended
        continue;
      }
      if (m === 0xd9) return p + 2;
      if (m === 0xff || m === 0x01 || (m & 0xf8) === 0xd0) {
        this.pos = p + (m === 0xff ? 1 : 2); // fill byte or a marker without length
        continue;
      }
      if (p + 4 > b.length) {
        this.pos = p;
        return 0;
      }
      this.pos = p + 2 + b.readUInt16BE(p + 2);
      this.inScan = m === 0xda;
    }
  }

  /** Where the entropy-coded data from p ends (the next marker), or -1 with pos saved. */
  private scanEnd(p: number): number {
    const b = this.buf;
    for (let i = b.indexOf(0xff, p); i >= 0; i = b.indexOf(0xff, i + 1)) {
      if (i + 1 >= b.length) {
        this.pos = i;
        return -1;
      }
      const m = b[i + 1];
      if (m !== 0x00 && m !== 0xff && (m & 0xf8) !== 0xd0) return i;
    }
    this.pos = Math.max(p, b.length);
    return -1;
  }
}
