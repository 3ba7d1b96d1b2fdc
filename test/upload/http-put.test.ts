/** The PUT sender on its own, against a plain local HTTP server: order under pacing, idle timeouts. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { putRange, type TransferOptions } from '../../src/upload/http-put.js';
import { Pacer } from '../../src/upload/pacer.js';
import { tempDir } from '../helpers/device.js';

/** A server that stores what each PUT sent and answers 200 with the MD5 as ETag. */
async function md5Server(): Promise<{ url: string; bodies: Buffer[]; close(): Promise<void> }> {
  const bodies: Buffer[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      bodies.push(body);
      res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/bucket/key?X-Amz-Signature=abc`, bodies, close: () => new Promise((r) => server.close(() => r())) };
}

const options = (path: string, size: number, pacer: Pacer | null): TransferOptions => ({
  path,
  size,
  pacer,
  timeoutMs: 10000,
  signal: new AbortController().signal,
  onBytes: () => undefined,
  verifyMd5: 'never',
});

test('a paced body arrives in file order even when the event loop stalls between chunks', async (t) => {
  const tmp = await tempDir();
  const srv = await md5Server();
  t.after(async () => {
    await srv.close();
    await tmp.cleanup();
  });
  const data = randomBytes(3 * 1024 * 1024);
  const path = join(tmp.dir, 'video_1729000000.mp4');
  await writeFile(path, data);
  // Stall the loop for 150 ms every 50 ms: longer than a 256 KiB chunk's turn at 4 MB/s (~65 ms),
  // so a later chunk's pacing wait can come out 0 while the earlier one's timer is still pending.
  const stall = setInterval(() => {
    const end = Date.now() + 150;
    while (Date.now() < end);
  }, 50);
  try {
    const answer = await putRange(srv.url, 0, data.length, options(path, data.length, new Pacer(4_000_000, 64 * 1024)));
    assert.equal(answer.md5, null, 'verifyMd5 never: nothing hashed, so order is all that protects the object');
  } finally {
    clearInterval(stall);
  }
  assert.equal(srv.bodies.length, 1);
  assert.ok(srv.bodies[0].equals(data), 'the stored body is the file, byte for byte');
});

test('a range of the file is sent with its length, and the MD5 is of that range', async (t) => {
  const tmp = await tempDir();
  const srv = await md5Server();
  t.after(async () => {
    await srv.close();
    await tmp.cleanup();
  });
  const data = randomBytes(1_000_003);
  const path = join(tmp.dir, 'video_1729000000.mp4');
  await writeFile(path, data);
  const answer = await putRange(srv.url, 300_001, 500_000, { ...options(path, data.length, null), verifyMd5: 'always' });
  assert.ok(srv.bodies[0].equals(data.subarray(300_001, 800_001)));
  assert.equal(answer.md5, createHash('md5').update(data.subarray(300_001, 800_001)).digest('hex'));
  assert.equal(answer.etag, answer.md5);
});
