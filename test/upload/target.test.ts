import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { UploadRequest } from '../../src/device/types.js';
import { publicUrl, rawRequestTarget, resolveTarget, scrubSecrets } from '../../src/upload/target.js';
import { classify, fromS3Answer } from '../../src/upload/errors.js';
import { Pacer } from '../../src/upload/pacer.js';
import { wantsMd5 } from '../../src/upload/http-put.js';

const none: UploadRequest = { uploadUrl: null, s3Bucket: null, s3Key: null, awsAccessKeyId: null, awsSecretAccessKey: null, awsSessionToken: null, awsRegion: null };
const iam: UploadRequest = {
  ...none,
  s3Bucket: 'arena-footage',
  s3Key: 'recordings/ring 1/video_1729000000.mp4',
  awsAccessKeyId: 'ASIAEXAMPLEKEYID123',
  awsSecretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  awsSessionToken: 'IQoJb3JpZ2luX2VjEXAMPLETOKEN'.repeat(20),
  awsRegion: 'eu-central-1',
};
const presigned =
  'https://arena-footage.s3.eu-central-1.amazonaws.com/recordings/ring%201/video_1729000000.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256' +
  '&X-Amz-Credential=ASIAEXAMPLEKEYID123%2F20261122%2Feu-central-1%2Fs3%2Faws4_request&X-Amz-Date=20261122T101010Z&X-Amz-Expires=900' +
  '&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2Btoken%3D&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0&X-Amz-SignedHeaders=host';
const policy = { allowHttp: false, s3Endpoint: null };

describe('upload targets', () => {
  test('a presigned URL is kept exactly as given, and its public form has no query', () => {
    const r = resolveTarget({ ...none, uploadUrl: presigned }, policy);
    assert.ok(r.ok && r.dest.kind === 'url');
    assert.equal(r.dest.url, presigned);
    assert.equal(rawRequestTarget(presigned), presigned.slice('https://arena-footage.s3.eu-central-1.amazonaws.com'.length));
    assert.equal(publicUrl(r.dest, null), 'https://arena-footage.s3.eu-central-1.amazonaws.com/recordings/ring%201/video_1729000000.mp4');
  });

  test('the request target is taken raw: no re-encoding, fragment dropped, empty path becomes /', () => {
    assert.equal(rawRequestTarget('http://h:9/a%2Fb/c?x=%7E~&y=a+b#frag'), '/a%2Fb/c?x=%7E~&y=a+b');
    assert.equal(rawRequestTarget('http://h?x=1'), '/?x=1');
    assert.equal(rawRequestTarget('http://h'), '/');
    assert.equal(rawRequestTarget('not a url'), null);
  });

  test('schemes: https always, http only with allowHttp, anything else never', () => {
    const http = { ...none, uploadUrl: 'http://127.0.0.1:9000/b/k?X-Amz-Signature=1' };
    const refused = resolveTarget(http, policy);
    assert.ok(!refused.ok && /plain http/.test(refused.message) && /allowHttp/.test(refused.message));
    assert.ok(resolveTarget(http, { ...policy, allowHttp: true }).ok);
    for (const url of ['ftp://h/b/k', 'file:///etc/passwd', 'javascript:alert(1)', 'data:text/plain,x']) {
      const r = resolveTarget({ ...none, uploadUrl: url }, { ...policy, allowHttp: true });
      assert.ok(!r.ok, url);
      assert.match(r.message, /scheme|not a valid URL|no host/, url);
    }
  });

  test('malformed URLs are refused with a reason', () => {
    const cases: Array<[string, RegExp]> = [
      ['https://', /not a valid URL/],
      ['://x', /not a valid URL/],
      ['https://user:pw@h/b/k', /user name or password/],
      ['https://h/b/a key with spaces', /percent-encoded/],
      ['https://h/b/clé', /percent-encoded/],
      ['https://h/', /empty path/],
    ];
    for (const [url, why] of cases) {
      const r = resolveTarget({ ...none, uploadUrl: url }, policy);
      assert.ok(!r.ok, url);
      assert.match(r.message, why, url);
    }
  });

  test('the IAM form needs every field but the session token, and names what is missing', () => {
    const r = resolveTarget(iam, policy);
    assert.ok(r.ok && r.dest.kind === 's3' && r.dest.sessionToken === iam.awsSessionToken);
    assert.ok(resolveTarget({ ...iam, awsSessionToken: null }, policy).ok, 'long-lived keys have no session token');
    const missing = resolveTarget({ ...iam, awsSecretAccessKey: null, awsRegion: '' }, policy);
    assert.ok(!missing.ok);
    assert.match(missing.message, /awsSecretAccessKey, awsRegion/);
    const nothing = resolveTarget(none, policy);
    assert.ok(!nothing.ok && /uploadUrl/.test(nothing.message) && /s3Bucket/.test(nothing.message));
  });

  test('IAM fields are checked: bucket names, key length, region, and the configured endpoint scheme', () => {
    for (const bucket of ['a', 'Upper', '../etc', 'b/c', 'x'.repeat(64), 'a..b']) {
      assert.ok(!resolveTarget({ ...iam, s3Bucket: bucket }, policy).ok, bucket);
    }
    assert.ok(!resolveTarget({ ...iam, s3Key: 'k'.repeat(1025) }, policy).ok);
    assert.ok(!resolveTarget({ ...iam, awsRegion: 'eu central' }, policy).ok);
    const httpEp = resolveTarget(iam, { allowHttp: false, s3Endpoint: 'http://nas.local:9000' });
    assert.ok(!httpEp.ok && /s3Endpoint/.test(httpEp.message));
    assert.ok(resolveTarget(iam, { allowHttp: true, s3Endpoint: 'http://nas.local:9000' }).ok);
  });

  test('a presigned URL wins when both forms are present', () => {
    const r = resolveTarget({ ...iam, uploadUrl: presigned }, policy);
    assert.ok(r.ok && r.dest.kind === 'url');
  });

  test('public URLs of the IAM form: AWS virtual-host style, or path style on a configured endpoint', () => {
    const r = resolveTarget(iam, policy);
    assert.ok(r.ok);
    assert.equal(publicUrl(r.dest, null), 'https://arena-footage.s3.eu-central-1.amazonaws.com/recordings/ring%201/video_1729000000.mp4');
    assert.equal(publicUrl(r.dest, 'http://127.0.0.1:9000/'), 'http://127.0.0.1:9000/arena-footage/recordings/ring%201/video_1729000000.mp4');
    assert.ok(!publicUrl(r.dest, null).includes(iam.awsAccessKeyId!));
  });

  test('scrubSecrets removes signatures, tokens and keys from error texts', () => {
    const url = resolveTarget({ ...none, uploadUrl: presigned }, policy);
    assert.ok(url.ok);
    const leaked = `connect failed for ${presigned} (token IQoJb3JpZ2luX2VjEXAMPLE+token=)`;
    const clean = scrubSecrets(leaked, url.dest);
    assert.ok(!clean.includes('0f1e2d3c4b5a6978') && !clean.includes('IQoJb3JpZ2luX2VjEXAMPLE'), clean);
    const s3 = resolveTarget(iam, policy);
    assert.ok(s3.ok);
    const text = scrubSecrets(`bad key ${iam.awsSecretAccessKey} for ${iam.awsAccessKeyId} with ${iam.awsSessionToken}`, s3.dest);
    assert.equal(text, 'bad key *** for *** with ***');
  });
});

describe('upload errors', () => {
  test("S3's XML error answers give code and message; only those two are read", () => {
    const body =
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match &amp; so on</Message>' +
      '<AWSAccessKeyId>ASIAEXAMPLEKEYID123</AWSAccessKeyId><CanonicalRequest>PUT /k X-Amz-Security-Token=SECRET</CanonicalRequest></Error>';
    const e = fromS3Answer(403, body);
    assert.equal(e.code, 'SignatureDoesNotMatch');
    assert.equal(e.kind, 'fatal');
    assert.match(e.message, /^SignatureDoesNotMatch: The request signature we calculated does not match & so on \(HTTP 403\)$/);
    assert.ok(!e.message.includes('SECRET') && !e.message.includes('ASIAEXAMPLE'));
    const expired = fromS3Answer(403, '<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
    assert.equal(expired.kind, 'fatal');
    assert.match(expired.message, /AccessDenied: Request has expired/);
    assert.equal(fromS3Answer(502, '<html>bad gateway</html>').code, 'HTTP502');
  });

  test('retry on 5xx, 408, 429, throttling and lost connections; give up on refusals; restart vanished multipart uploads', () => {
    assert.equal(classify(500, 'InternalError'), 'retry');
    assert.equal(classify(503, 'SlowDown'), 'retry');
    assert.equal(classify(400, 'RequestTimeout'), 'retry');
    assert.equal(classify(429, 'TooManyRequests'), 'retry');
    assert.equal(classify(null, 'ECONNRESET'), 'retry');
    assert.equal(classify(400, 'ExpiredToken'), 'fatal');
    assert.equal(classify(403, 'AccessDenied'), 'fatal');
    assert.equal(classify(404, 'NoSuchBucket'), 'fatal');
    assert.equal(classify(404, 'NoSuchUpload'), 'restart');
  });
});

describe('pacer', () => {
  test('a burst passes at once, then bytes are spread at the set rate', () => {
    const p = new Pacer(1_000_000, 100_000);
    assert.equal(p.take(100_000, 0), 0, 'the burst');
    assert.equal(p.take(500_000, 0), 500, 'half a second of debt');
    assert.equal(p.take(0, 500), 0, 'paid off after 500 ms');
    // Over 10 simulated seconds of back-to-back 256 KiB chunks the average stays at the rate.
    let t = 500;
    let sent = 0;
    while (t < 10_500) {
      t += p.take(262144, t);
      sent += 262144;
    }
    const rate = sent / ((t - 500) / 1000);
    assert.ok(Math.abs(rate - 1_000_000) / 1_000_000 < 0.05, `average ${rate} B/s`);
  });

  test('idle time refills at most one burst', () => {
    const p = new Pacer(1000, 2000);
    p.take(2000, 0);
    assert.equal(p.take(2000, 100_000), 0, 'a full burst after a long idle');
    assert.equal(p.take(1000, 100_000), 1000, 'but not more');
  });
});

describe('MD5 policy', () => {
  test('auto hashes over plain http only; always and never mean what they say', () => {
    assert.equal(wantsMd5('auto', 'http://nas.local:9000/b/k'), true);
    assert.equal(wantsMd5('auto', 'https://b.s3.amazonaws.com/k?X-Amz-Signature=1'), false);
    assert.equal(wantsMd5('always', 'https://b.s3.amazonaws.com/k'), true);
    assert.equal(wantsMd5('never', 'http://nas.local:9000/b/k'), false);
  });
});
