import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { JpegSplitter } from '../../src/media/jpeg-split.js';

const run = promisify(execFile);

test('the JPEG splitter finds exactly the images in any chunking, whatever their segments hold', async () => {
  const { stdout } = await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=5', '-frames:v', '3', '-c:v', 'mjpeg', '-f', 'image2pipe', 'pipe:1'], {
    encoding: 'buffer',
  });
  const images = new JpegSplitter().push(stdout);
  assert.equal(images.length, 3);
  // An APP1 segment holding FF D9 and FF D8 must not end or restart the image.
  const app1 = Buffer.from([0xff, 0xe1, 0x00, 0x08, 0xff, 0xd9, 0xff, 0xd8, 0x00, 0x00]);
  const tricky = Buffer.concat([images[1].subarray(0, 2), app1, images[1].subarray(2)]);
  const expected = [images[0], tricky, images[2]];
  const stream = Buffer.concat([Buffer.from('junk'), images[0], tricky, Buffer.from([0xff, 0x00]), images[2]]);
  for (const size of [1, 2, 7, 97, 4096, stream.length]) {
    const split = new JpegSplitter();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i += size) got.push(...split.push(stream.subarray(i, i + size)));
    assert.equal(got.length, 3, `chunks of ${size}`);
    got.forEach((g, i) => assert.ok(g.equals(expected[i]), `image ${i} in chunks of ${size}`));
  }
});
