/**
 * Tests of the S3 test helper itself (test/helpers/s3.ts, sigv4.ts), all against real servers on
 * 127.0.0.1: the AWS SDK and plain http requests go through the signature-checking front to s3rver.
 * The verifier is also checked against the worked examples of the AWS S3 SigV4 documentation.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { DEFAULT_CREDENTIALS, startCutProxy, startS3, type S3RequestRecord, type TestS3 } from './s3.js';
import { canonicalQueryString, parseS3Error, verifySigV4, type SigV4Credentials } from './sigv4.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Send a request to a loopback URL with its path+query byte-for-byte as given (no URL re-encoding). */
function rawRequest(url: string, method: string, body?: Buffer, headers: http.OutgoingHttpHeaders = {}): Promise<RawResponse> {
  const m = /^http:\/\/127\.0\.0\.1:(\d+)(\/[^#]*)$/.exec(url);
  assert.ok(m, `not a loopback URL: ${url}`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: Number(m[1]),
        method,
        path: m[2],
        headers: body ? { 'content-length': body.length, ...headers } : headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The S3 error an SDK call failed with. */
async function sdkError(p: Promise<unknown>): Promise<{ name: string; status?: number; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  assert.fail('expected the S3 call to fail');
}

/** Add a middleware that runs after the SDK signed the request (once per attempt). */
function afterSigning(client: S3Client, name: string, fn: (request: { headers: Record<string, string>; body?: unknown }) => void): void {
  type Middleware = Parameters<S3Client['middlewareStack']['addRelativeTo']>[0];
  const middleware = (next: (args: { request: unknown }) => Promise<unknown>) => async (args: { request: unknown }) => {
    fn(args.request as { headers: Record<string, string>; body?: unknown });
    return next(args);
  };
  client.middlewareStack.addRelativeTo(middleware as unknown as Middleware, {
    relation: 'after',
    toMiddleware: 'httpSigningMiddleware',
    name,
  });
}

const flipHexDigit = (hex: string, at: number): string =>
  hex.slice(0, at) + ((parseInt(hex[at], 16) + 1) % 16).toString(16) + hex.slice(at + 1);

const lastFor = (s3: TestS3, pred: (r: S3RequestRecord) => boolean): S3RequestRecord => {
  const r = s3.requests.filter(pred).at(-1);
  assert.ok(r, 'no matching request recorded');
  return r;
};

describe('sigv4 verifier against the AWS documentation examples', () => {
  // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html and
  // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
  const creds: SigV4Credentials = new Map([['AKIAIOSFODNN7EXAMPLE', { secret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }]]);
  const now = Date.UTC(2013, 4, 24, 0, 0, 30);
  const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  const auth = (signed: string, sig: string): string =>
    `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=${signed},Signature=${sig}`;

  it('GET object with Range', () => {
    const r = verifySigV4(
      {
        method: 'GET',
        rawUrl: '/test.txt',
        headers: {
          host: 'examplebucket.s3.amazonaws.com',
          range: 'bytes=0-9',
          'x-amz-content-sha256': EMPTY,
          'x-amz-date': '20130524T000000Z',
          authorization: auth('host;range;x-amz-content-sha256;x-amz-date', 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'),
        },
      },
      creds,
      now,
    );
    assert.deepEqual(r.ok ? { form: r.form, payloadHash: r.payloadHash } : r, { form: 'header', payloadHash: EMPTY });
  });

  it('PUT object with an encoded path and a storage class header', () => {
    const r = verifySigV4(
      {
        method: 'PUT',
        rawUrl: '/test%24file.text',
        headers: {
          host: 'examplebucket.s3.amazonaws.com',
          date: 'Fri, 24 May 2013 00:00:00 GMT',
          'x-amz-date': '20130524T000000Z',
          'x-amz-storage-class': 'REDUCED_REDUNDANCY',
          'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
          authorization: auth(
            'date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class',
            '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd',
          ),
        },
      },
      creds,
      now,
    );
    assert.equal(r.ok, true, JSON.stringify(r));
  });

  it('GET bucket with a query (list objects)', () => {
    const r = verifySigV4(
      {
        method: 'GET',
        rawUrl: '/?max-keys=2&prefix=J',
        headers: {
          host: 'examplebucket.s3.amazonaws.com',
          'x-amz-date': '20130524T000000Z',
          'x-amz-content-sha256': EMPTY,
          authorization: auth('host;x-amz-content-sha256;x-amz-date', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'),
        },
      },
      creds,
      now,
    );
    assert.equal(r.ok, true, JSON.stringify(r));
  });

  it('presigned GET, then expired, then tampered', () => {
    const rawUrl =
      '/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request' +
      '&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host' +
      '&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
    const req = { method: 'GET', rawUrl, headers: { host: 'examplebucket.s3.amazonaws.com' } };
    const ok = verifySigV4(req, creds, now);
    assert.equal(ok.ok, true, JSON.stringify(ok));
    assert.equal(ok.ok && ok.form, 'query');
    const expired = verifySigV4(req, creds, Date.UTC(2013, 4, 25, 0, 0, 0));
    assert.deepEqual(expired.ok ? expired : [expired.status, expired.code, expired.message], [403, 'AccessDenied', 'Request has expired']);
    const tampered = verifySigV4({ ...req, rawUrl: rawUrl.replace('d404', 'd405') }, creds, now);
    assert.equal(!tampered.ok && tampered.code, 'SignatureDoesNotMatch');
    const wrongKey = verifySigV4(req, new Map([['AKIAIOSFODNN7EXAMPLE', { secret: 'nope' }]]), now);
    assert.equal(!wrongKey.ok && wrongKey.code, 'SignatureDoesNotMatch');
  });

  it('canonical query: decode, RFC 3986 re-encode, sort, drop X-Amz-Signature', () => {
    assert.equal(
      canonicalQueryString('b=%7e~&a=x%20y+z&uploads&X-Amz-Signature=abc&%C3%A9=%e2%9c%93', new Set(['X-Amz-Signature'])),
      '%C3%A9=%E2%9C%93&a=x%20y%2Bz&b=~~&uploads=',
    );
  });
});

describe('startS3 (front + s3rver on loopback)', () => {
  let s3: TestS3;
  let client: S3Client;

  before(async () => {
    s3 = await startS3();
    client = s3.s3Client();
  });
  after(async () => {
    await s3.close();
  });

  it('listens on loopback only', () => {
    assert.match(s3.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(s3.bucket, 'arenacam-test');
    assert.equal(s3.region, 'us-east-1');
  });

  it('accepts an SDK PutObject and stores it byte-identically', async () => {
    const body = randomBytes(300 * 1024 + 7);
    const out = await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'clips/a.mp4', Body: body }));
    assert.equal(out.ETag, `"${md5(body)}"`);
    assert.deepEqual(await s3.getObject('clips/a.mp4'), body);
    const rec = lastFor(s3, (r) => r.method === 'PUT' && r.key === 'clips/a.mp4');
    assert.equal(rec.form, 'header');
    assert.equal(rec.ok, true);
    assert.equal(rec.status, 200);
    assert.equal(rec.write, 'put');
    assert.equal(rec.bytesIn, body.length);
    assert.equal(rec.payloadHash, createHash('sha256').update(body).digest('hex'), 'SDK signed the body hash');
    assert.ok(rec.endedAt !== undefined && rec.endedAt >= rec.startedAt);
    // and it reads back through the front too
    const got = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'clips/a.mp4' }));
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);
    assert.ok((await s3.listKeys()).includes('clips/a.mp4'));
  });

  it('accepts a presigned PUT sent with only Content-Length, query arriving byte-for-byte', async () => {
    const url = await s3.presignPut('clips/presigned.bin', 120);
    assert.match(url, /X-Amz-Signature=[0-9a-f]{64}/);
    const body = randomBytes(64 * 1024);
    const res = await rawRequest(url, 'PUT', body);
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.headers.etag, `"${md5(body)}"`);
    assert.deepEqual(await s3.getObject('clips/presigned.bin'), body);
    const rec = lastFor(s3, (r) => r.key === 'clips/presigned.bin');
    assert.equal(rec.form, 'query');
    assert.equal(rec.payloadHash, 'UNSIGNED-PAYLOAD');
    assert.equal(`${s3.endpoint}${rec.rawUrl}`, url, 'query string arrived exactly as generated');

    const getUrl = await s3.presignGet('clips/presigned.bin', 120);
    const got = await rawRequest(getUrl, 'GET');
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, body);
  });

  it('handles a key with spaces, +, unicode and ~ both via the SDK and presigned URLs', async () => {
    const key = 'odd dir/a+b ünïcødé~ ✓ (1).bin';
    const a = randomBytes(10_000);
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: a }));
    assert.deepEqual(await s3.getObject(key), a);
    const viaSdk = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    assert.deepEqual(Buffer.from(await viaSdk.Body!.transformToByteArray()), a);

    const b = randomBytes(12_345);
    const putUrl = await s3.presignPut(key, 120);
    const put = await rawRequest(putUrl, 'PUT', b);
    assert.equal(put.status, 200, put.body.toString());
    assert.deepEqual(await s3.getObject(key), b);
    const get = await rawRequest(await s3.presignGet(key, 120), 'GET');
    assert.equal(get.status, 200);
    assert.deepEqual(get.body, b);
    assert.ok((await s3.listKeys('odd dir/')).includes(key));
    assert.equal(lastFor(s3, (r) => r.method === 'PUT' && r.key === key).form, 'query');
  });

  it('refuses a tampered header signature (SignatureDoesNotMatch)', async () => {
    const c = s3.s3Client({ maxAttempts: 1 });
    afterSigning(c, 'tamperSignature', (request) => {
      const name = Object.keys(request.headers).find((h) => h.toLowerCase() === 'authorization')!;
      const v = request.headers[name];
      request.headers[name] = flipHexDigit(v, v.length - 5);
    });
    const err = await sdkError(c.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'tampered.bin', Body: Buffer.from('x') })));
    assert.deepEqual([err.name, err.status], ['SignatureDoesNotMatch', 403]);
    assert.equal(lastFor(s3, (r) => r.key === 'tampered.bin').code, 'SignatureDoesNotMatch');
    assert.ok(!(await s3.listKeys()).includes('tampered.bin'));
  });

  it('refuses a tampered presigned signature with S3 XML', async () => {
    const url = await s3.presignPut('tampered-presigned.bin', 120);
    const at = url.indexOf('X-Amz-Signature=') + 'X-Amz-Signature='.length + 10;
    const res = await rawRequest(flipHexDigit(url, at), 'PUT', Buffer.from('hello'));
    assert.equal(res.status, 403);
    assert.equal(res.headers['content-type'], 'application/xml');
    const xml = res.body.toString();
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>SignatureDoesNotMatch<\/Code><Message>/);
    assert.match(xml, /<RequestId>[0-9A-F]+<\/RequestId><\/Error>$/);
    assert.ok(!(await s3.listKeys()).includes('tampered-presigned.bin'));
  });

  it('refuses a wrong secret and an unknown key', async () => {
    const wrong = s3.s3Client({ maxAttempts: 1, credentials: { ...s3.credentials, secretAccessKey: 'not-the-secret' } });
    const e1 = await sdkError(wrong.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'wrong.bin', Body: Buffer.from('x') })));
    assert.deepEqual([e1.name, e1.status], ['SignatureDoesNotMatch', 403]);
    const unknown = s3.s3Client({ maxAttempts: 1, credentials: { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x' } });
    const e2 = await sdkError(unknown.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'wrong.bin', Body: Buffer.from('x') })));
    assert.deepEqual([e2.name, e2.status], ['InvalidAccessKeyId', 403]);
    assert.ok(!(await s3.listKeys()).includes('wrong.bin'));
  });

  it('checks session tokens: right one passes, missing/wrong refused', async () => {
    const temp = DEFAULT_CREDENTIALS[1];
    assert.ok(temp.sessionToken);
    const good = s3.s3Client({ credentials: { ...temp } });
    await good.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'token.bin', Body: Buffer.from('ok') }));
    assert.deepEqual(await s3.getObject('token.bin'), Buffer.from('ok'));

    const missing = s3.s3Client({ maxAttempts: 1, credentials: { accessKeyId: temp.accessKeyId, secretAccessKey: temp.secretAccessKey } });
    const e1 = await sdkError(missing.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'token2.bin', Body: Buffer.from('x') })));
    assert.deepEqual([e1.name, e1.status], ['MissingSecurityHeader', 400]);
    const wrong = s3.s3Client({ maxAttempts: 1, credentials: { ...temp, sessionToken: 'some-other-token' } });
    const e2 = await sdkError(wrong.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'token2.bin', Body: Buffer.from('x') })));
    assert.deepEqual([e2.name, e2.status], ['InvalidToken', 400]);
    // a token on a key that has none is refused too
    const extra = s3.s3Client({ maxAttempts: 1, credentials: { ...s3.credentials, sessionToken: 'unexpected' } });
    const e3 = await sdkError(extra.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'token2.bin', Body: Buffer.from('x') })));
    assert.equal(e3.name, 'InvalidToken');

    // presigned with a token: X-Amz-Security-Token in the query
    const url = await s3.presignPut('token3.bin', 120, { credentials: temp });
    assert.match(url, /X-Amz-Security-Token=/);
    assert.equal((await rawRequest(url, 'PUT', Buffer.from('p'))).status, 200);
    const noToken = url.replace(/&X-Amz-Security-Token=[^&]*/, '');
    const res = await rawRequest(noToken, 'PUT', Buffer.from('p'));
    assert.equal(res.status, 400);
    assert.equal(parseS3Error(res.body.toString()).code, 'MissingSecurityHeader');
    assert.ok(!(await s3.listKeys()).includes('token2.bin'));
  });

  it('refuses an expired presigned URL (AccessDenied, Request has expired)', async () => {
    const url = await s3.presignPut('expired.bin', 1);
    await sleep(1500);
    const res = await rawRequest(url, 'PUT', Buffer.from('late'));
    assert.equal(res.status, 403);
    assert.deepEqual(parseS3Error(res.body.toString()), { code: 'AccessDenied', message: 'Request has expired' });
    assert.ok(!(await s3.listKeys()).includes('expired.bin'));
  });

  it('answers XAmzContentSHA256Mismatch when the body does not match the signed hash, keeping the old object', async () => {
    const original = randomBytes(200_000);
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'hash.bin', Body: original }));
    const c = s3.s3Client({ maxAttempts: 1 });
    afterSigning(c, 'swapBody', (request) => {
      request.body = randomBytes(200_000);
    });
    const err = await sdkError(c.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'hash.bin', Body: randomBytes(200_000) })));
    assert.deepEqual([err.name, err.status], ['XAmzContentSHA256Mismatch', 400]);
    assert.deepEqual(await s3.getObject('hash.bin'), original, 'the refused body never replaced the object');
    const rec = lastFor(s3, (r) => r.key === 'hash.bin');
    assert.equal(rec.bytesIn, 200_000);
    assert.equal(rec.code, 'XAmzContentSHA256Mismatch');
  });

  it('accepts an SDK multipart upload and records the parts', async () => {
    const key = 'clips/multi.mp4';
    const p1 = randomBytes(5 * MiB);
    const p2 = randomBytes(1 * MiB);
    s3.clearRequests();
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }));
    assert.ok(UploadId);
    const u1 = await client.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId, PartNumber: 1, Body: p1 }));
    const u2 = await client.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId, PartNumber: 2, Body: p2 }));
    assert.equal(u1.ETag, `"${md5(p1)}"`, 's3rver part ETag = md5 of the part');
    assert.equal(u2.ETag, `"${md5(p2)}"`);
    const done = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: s3.bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: u1.ETag }, { PartNumber: 2, ETag: u2.ETag }] },
      }),
    );
    const whole = Buffer.concat([p1, p2]);
    assert.equal(done.ETag, `"${md5(whole)}"`, 's3rver: plain md5 of the whole object, not the -N form');
    assert.deepEqual(await s3.getObject(key), whole);

    const parts = s3.requests.filter((r) => r.write === 'part');
    assert.deepEqual(
      parts.map((r) => [r.partNumber, r.uploadId, r.status, r.bytesIn]),
      [
        [1, UploadId, 200, p1.length],
        [2, UploadId, 200, p2.length],
      ],
    );
    assert.deepEqual(
      s3.requests.map((r) => [r.method, r.write ?? null, r.status]),
      [
        ['POST', null, 200],
        ['PUT', 'part', 200],
        ['PUT', 'part', 200],
        ['POST', 'complete', 200],
      ],
    );
    assert.ok(s3.requests.every((r) => r.ok && r.form === 'header'));
  });

  it('emulates AbortMultipartUpload and then answers NoSuchUpload', async () => {
    const key = 'clips/aborted.mp4';
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }));
    await client.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(1000) }));
    await client.send(new AbortMultipartUploadCommand({ Bucket: s3.bucket, Key: key, UploadId }));
    const err = await sdkError(
      s3.s3Client({ maxAttempts: 1 }).send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId, PartNumber: 2, Body: Buffer.from('x') })),
    );
    assert.deepEqual([err.name, err.status], ['NoSuchUpload', 404]);
    assert.ok(!(await s3.listKeys()).includes(key));
  });

  it('failNext(1) fails one object write with 500 InternalError, then passes', async () => {
    const once = s3.s3Client({ maxAttempts: 1 });
    s3.failNext(1);
    const err = await sdkError(once.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'fault.bin', Body: Buffer.from('a') })));
    assert.deepEqual([err.name, err.status], ['InternalError', 500]);
    assert.ok(!(await s3.listKeys()).includes('fault.bin'));
    await once.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'fault.bin', Body: Buffer.from('b') }));
    assert.deepEqual(await s3.getObject('fault.bin'), Buffer.from('b'));
    const recs = s3.requests.filter((r) => r.key === 'fault.bin');
    assert.deepEqual(
      recs.map((r) => [r.status, r.injected, r.code ?? null]),
      [
        [500, true, 'InternalError'],
        [200, false, null],
      ],
    );

    // with the SDK's own retries a single fault is invisible to the caller; reads are never failed
    s3.failNext(1, 503, 'SlowDown');
    await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'fault.bin' })).then((r) => r.Body!.transformToByteArray());
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'fault.bin', Body: Buffer.from('c') }));
    assert.deepEqual(
      s3.requests.filter((r) => r.key === 'fault.bin').slice(2).map((r) => [r.method, r.status]),
      [
        ['GET', 200],
        ['PUT', 503],
        ['PUT', 200],
      ],
    );
  });

  it('an injected fault on a ≥2 MiB body is answered without 100 Continue', async () => {
    const once = s3.s3Client({ maxAttempts: 1 });
    s3.failNext(1);
    const err = await sdkError(once.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'fault-big.bin', Body: randomBytes(3 * MiB) })));
    assert.equal(err.name, 'InternalError');
    assert.equal(lastFor(s3, (r) => r.key === 'fault-big.bin').bytesIn, 0, 'body never sent (Expect: 100-continue)');
  });

  it('failAlways / clearFaults and the onWrite hook', async () => {
    const once = s3.s3Client({ maxAttempts: 1 });
    s3.failAlways(503, 'ServiceUnavailable');
    for (let i = 0; i < 2; i++) {
      const err = await sdkError(once.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'always.bin', Body: Buffer.from('x') })));
      assert.deepEqual([err.name, err.status], ['ServiceUnavailable', 503]);
    }
    s3.clearFaults();
    const seen: string[] = [];
    s3.onWrite(async (w) => {
      seen.push(`${w.kind}:${w.key}`);
    });
    await once.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'always.bin', Body: Buffer.from('y') }));
    s3.onWrite(() => {
      throw new Error('local file gone');
    });
    const err = await sdkError(once.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'always.bin', Body: Buffer.from('z') })));
    assert.equal(err.name, 'InternalError');
    s3.onWrite(undefined);
    assert.deepEqual(seen, ['put:always.bin']);
    assert.equal(s3.hookErrors.length, 1);
    assert.deepEqual(await s3.getObject('always.bin'), Buffer.from('y'));
  });

  it('a cut proxy cuts a 4 MiB PUT once and the SDK retry passes', async () => {
    const proxy = await startCutProxy(s3.port, { cutAfterBytes: 1 * MiB, times: 1 });
    try {
      const viaProxy = s3.s3Client({ endpoint: proxy.endpoint });
      const body = randomBytes(4 * MiB);
      await viaProxy.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'clips/cut.mp4', Body: body }));
      assert.equal(proxy.cuts, 1);
      assert.deepEqual(await s3.getObject('clips/cut.mp4'), body);
      const recs = s3.requests.filter((r) => r.key === 'clips/cut.mp4');
      assert.equal(recs.length, 2);
      assert.equal(recs[0].aborted, true);
      assert.equal(recs[0].status, 0);
      assert.ok(recs[0].bytesIn > 0 && recs[0].bytesIn < body.length, `cut mid-body (${recs[0].bytesIn} bytes)`);
      assert.deepEqual([recs[1].status, recs[1].bytesIn, recs[1].aborted], [200, body.length, false]);

      // later connections pass through untouched
      const url = await s3.presignPut('clips/cut2.bin', 60, { endpoint: proxy.endpoint });
      const small = randomBytes(2 * MiB);
      assert.equal((await rawRequest(url, 'PUT', small)).status, 200);
      assert.deepEqual(await s3.getObject('clips/cut2.bin'), small);
      assert.equal(proxy.cuts, 1);
    } finally {
      await proxy.close();
    }
  });

  it('a cut upload leaves no truncated object behind', async () => {
    const proxy = await startCutProxy(s3.port, { cutAfterBytes: 512 * 1024, times: 1 });
    try {
      const url = await s3.presignPut('clips/never.bin', 60, { endpoint: proxy.endpoint });
      await assert.rejects(rawRequest(url, 'PUT', randomBytes(2 * MiB)));
      assert.equal(proxy.cuts, 1);
      await sleep(100);
      assert.ok(!(await s3.listKeys()).includes('clips/never.bin'));
    } finally {
      await proxy.close();
    }
  });
});
