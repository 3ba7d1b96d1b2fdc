/**
 * UPLOAD_TO_CLOUD end to end: a real unit, a real S3-compatible server (s3rver behind a front that
 * verifies every SigV4 signature), the controller's wire format, and injected network faults.
 * After each case: the object is byte-identical, the local file was still there when the store
 * took the last byte and is gone after, and the queues tell the truth.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnUnit, startUnit, tempDir, testConfig, waitFor, type ConfigPatch, type TestUnit } from '../helpers/device.js';
import { getVideo, sendCommand, type CommandFields } from '../helpers/controller.js';
import { DEFAULT_CREDENTIALS, startCutProxy, startS3, type TestS3 } from '../helpers/s3.js';
import { makeTestCerts } from '../helpers/tls.js';
import type { UploadItem } from '../../src/device/types.js';

const HOST = '127.0.0.1';
const MiB = 1024 * 1024;
const TEMP_KEY = DEFAULT_CREDENTIALS[1]; // an STS-like key: its requests must carry the session token

let s3: TestS3;
before(async () => {
  s3 = await startS3();
});
after(async () => {
  await s3?.close();
});

interface Unit extends TestUnit {
  port: number;
  files: Map<string, Buffer>;
  cleanup(): Promise<void>;
}

/** A unit whose recordings/ holds `files` (name → size) of random bytes before it starts. */
async function unitWith(files: Record<string, number>, upload: ConfigPatch['upload'] = {}, dataDir?: string): Promise<Unit> {
  const tmp = dataDir ? { dir: dataDir, cleanup: async () => undefined } : await tempDir('arenacam-upload-');
  const contents = new Map<string, Buffer>();
  await mkdir(join(tmp.dir, 'recordings'), { recursive: true });
  for (const [name, size] of Object.entries(files)) {
    const data = randomBytes(size);
    contents.set(name, data);
    await writeFile(join(tmp.dir, 'recordings', name), data);
  }
  const unit = await startUnit({
    dataDir: tmp.dir,
    patch: { camera: { fps: 10 }, upload: { allowHttp: true, s3Endpoint: s3.endpoint, retryBaseMs: 150, ...upload } },
  });
  return { ...unit, port: unit.app.multicamPort, files: contents, cleanup: tmp.cleanup };
}

async function stopUnit(u: Unit): Promise<void> {
  await u.stop();
  await u.cleanup();
}

const iamFields = (key: string, creds = TEMP_KEY): Partial<CommandFields> => ({
  s3Bucket: s3.bucket,
  s3Key: key,
  awsAccessKeyId: creds.accessKeyId,
  awsSecretAccessKey: creds.secretAccessKey,
  awsSessionToken: creds.sessionToken ?? null,
  awsRegion: s3.region,
});

async function queues(u: { port: number }): Promise<{ uploadQueue: UploadItem[]; failedUploadQueue: UploadItem[] }> {
  const r = await sendCommand(HOST, u.port, 'DEVICE_STATUS');
  return { uploadQueue: r.body.uploadQueue as UploadItem[], failedUploadQueue: r.body.failedUploadQueue as UploadItem[] };
}

/** Send UPLOAD_TO_CLOUD and check the acceptance: a status reply whose uploadQueue already holds the file. */
async function requestUpload(u: Unit, fileName: string, fields: Partial<CommandFields>): Promise<UploadItem> {
  const r = await sendCommand(HOST, u.port, 'UPLOAD_TO_CLOUD', { fileName, ...fields });
  assert.equal(r.kind, 'status', `accepted as a status reply: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.status, 'upload_queued');
  const item = (r.body.uploadQueue as UploadItem[]).find((i) => i.fileName === fileName);
  assert.ok(item, 'the item is in uploadQueue when the reply leaves');
  assert.equal(item.fileSize, (await stat(join(u.dataDir, 'recordings', fileName))).size);
  return item;
}

/** Wait until the file has left both queues (the controller's "completed"). */
async function waitGone(u: { port: number }, fileName: string, timeoutMs = 30000): Promise<void> {
  await waitFor(
    async () => {
      const q = await queues(u);
      const failed = q.failedUploadQueue.find((i) => i.fileName === fileName);
      if (failed) throw new Error(`upload failed: ${failed.error}`);
      return !q.uploadQueue.some((i) => i.fileName === fileName);
    },
    timeoutMs,
    `${fileName} to be uploaded`,
    50,
  );
}

/** The file leaves the disk shortly after it leaves the queue (the catalog entry first, then the file). */
async function waitDeleted(dir: string, fileName: string): Promise<void> {
  await waitFor(() => !existsSync(join(dir, 'recordings', fileName)), 5000, `${fileName} to be deleted`, 10);
}

/** When the unit logged the file's deletion (pino's epoch ms), for "only after the store answered". */
function deletedAtMs(u: Unit, fileName: string): number {
  const line = u.logs.find('uploaded file deleted from the device').find((l) => l.fileName === fileName);
  assert.ok(line, `the deletion of ${fileName} is logged`);
  return Date.parse(String(line.time));
}

async function listed(u: Unit): Promise<string[]> {
  const r = await sendCommand(HOST, u.port, 'LIST_FILES');
  return (r.body.files as Array<{ fileName: string }>).map((f) => f.fileName);
}

/** Every secret a test used, for "never in a reply or a log line" checks. */
function assertNoSecrets(u: Unit, extra: string[] = []): void {
  const logs = JSON.stringify(u.logs.lines);
  for (const secret of [TEMP_KEY.secretAccessKey, TEMP_KEY.sessionToken!, DEFAULT_CREDENTIALS[0].secretAccessKey, ...extra]) {
    assert.ok(!logs.includes(secret), `a secret reached the log: ${secret.slice(0, 12)}…`);
  }
}

/** While the store takes the last bytes of `key`, the local file must still be there. */
function watchLocalFile(u: Unit, fileName: string): { checks: boolean[] } {
  const seen = { checks: [] as boolean[] };
  s3.onWrite((w) => {
    if (w.key?.endsWith(fileName)) seen.checks.push(existsSync(join(u.dataDir, 'recordings', fileName)));
  });
  return seen;
}

describe('UPLOAD_TO_CLOUD', () => {
  test('presigned form: a real recording goes up byte for byte, the URL is sent as given, then the file leaves the device', async (t) => {
    const u = await unitWith({});
    t.after(() => stopUnit(u));
    await waitFor(() => u.app.capture.status().alive, 15000, 'capture');
    const start = await sendCommand(HOST, u.port, 'START_RECORDING', { timestamp: Date.now() / 1000 });
    assert.equal(start.body.status, 'recording');
    await new Promise((r) => setTimeout(r, 2500));
    const stop = await sendCommand(HOST, u.port, 'STOP_RECORDING', { timestamp: Date.now() / 1000 });
    assert.equal(stop.kind, 'stop');
    const fileName = stop.body.fileName as string;
    const original = await readFile(join(u.dataDir, 'recordings', fileName));
    u.files.set(fileName, original);
    const key = `recordings/ring 1/unit+a ü~/${fileName}`;
    const url = await s3.presignPut(key, 600, { credentials: TEMP_KEY });
    const seen = watchLocalFile(u, fileName);
    s3.clearRequests();

    const item = await requestUpload(u, fileName, { uploadUrl: url });
    assert.ok(['queued', 'uploading'].includes(item.status));
    assert.equal(item.uploadUrl, url.slice(0, url.indexOf('?')), 'the reported URL has no query: no signature, no token');
    await waitGone(u, fileName);

    assert.ok((await s3.getObject(key)).equals(original), 'the object is byte-identical to the recording');
    const puts = s3.requests.filter((r) => r.method === 'PUT');
    assert.equal(puts.length, 1);
    assert.equal(puts[0].ok, true, 'the front verified the presigned signature');
    assert.equal(puts[0].form, 'query');
    assert.equal(`${s3.endpoint}${puts[0].rawUrl}`, url, 'path and query arrived exactly as generated');
    assert.deepEqual(seen.checks, [true], 'the local file was still there while the store took it');
    await waitDeleted(u.dataDir, fileName);
    assert.ok(deletedAtMs(u, fileName) >= puts[0].answeredAt!, 'deleted only after the store had answered');
    assert.ok(!(await listed(u)).includes(fileName), 'and gone from LIST_FILES');
    assert.deepEqual(await queues(u), { uploadQueue: [], failedUploadQueue: [] });
    const sig = new URL(url).searchParams.get('X-Amz-Signature')!;
    assertNoSecrets(u, [sig]);
    assert.equal((await stat(join(u.dataDir, 'uploads.json'))).mode & 0o777, 0o600, 'the queue file holds secrets: owner only');
    assert.ok(u.logs.find('upload completed and verified').some((l) => l.digestVerified === true && l.fileName === fileName));
  });

  test('IAM form with a session token: multipart, progress in DEVICE_STATUS, capped bandwidth, recording meanwhile', async (t) => {
    const fileName = 'video_1729000100.mp4';
    const u = await unitWith({ [fileName]: Math.round(3.5 * MiB) }, { multipartThresholdMB: 1, partSizeMB: 1, maxBytesPerSecond: 1_000_000 });
    t.after(() => stopUnit(u));
    const key = `iam/${fileName}`;
    const seen = watchLocalFile(u, fileName);
    s3.clearRequests();
    const t0 = Date.now();
    const item = await requestUpload(u, fileName, iamFields(key));
    assert.equal(item.uploadUrl, `${s3.endpoint}/${s3.bucket}/iam/${fileName}`);

    // Recording carries on while uploading.
    const start = await sendCommand(HOST, u.port, 'START_RECORDING', { timestamp: Date.now() / 1000 });
    assert.equal(start.body.status, 'recording');
    const progress = await waitFor(
      async () => {
        const q = await queues(u);
        const i = q.uploadQueue.find((x) => x.fileName === fileName);
        return i && i.status === 'uploading' && i.uploadProgress > 20 && i.uploadProgress < 90 && i.uploadSpeed > 0 ? i : null;
      },
      15000,
      'progress mid-upload',
      50,
    );
    assert.ok(progress.bytesUploaded > 0 && progress.bytesUploaded < progress.fileSize);
    assert.ok(Math.abs(progress.uploadProgress - (100 * progress.bytesUploaded) / progress.fileSize) <= 0.1);
    assert.ok(progress.uploadSpeed < 3_000_000, `smoothed speed ${progress.uploadSpeed} B/s near the 1 MB/s cap`);
    await waitGone(u, fileName);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 2500, `3.5 MiB under a 1 MB/s cap took ${elapsed} ms`);
    const stop = await sendCommand(HOST, u.port, 'STOP_RECORDING', { timestamp: Date.now() / 1000 });
    assert.equal(stop.kind, 'stop', 'the recording made meanwhile is complete');

    assert.ok((await s3.getObject(key)).equals(u.files.get(fileName)!));
    const writes = s3.requests.filter((r) => r.write);
    assert.deepEqual(writes.map((w) => w.write === 'part' ? `part ${w.partNumber}` : w.write), ['part 1', 'part 2', 'part 3', 'part 4', 'complete']);
    assert.ok(s3.requests.every((r) => r.ok && r.accessKeyId === TEMP_KEY.accessKeyId), 'every request signed with the temporary key and its token');
    assert.ok(seen.checks.length === 5 && seen.checks.every(Boolean), 'the file was there for every part and the completion');
    await waitDeleted(u.dataDir, fileName);
    assert.ok(deletedAtMs(u, fileName) >= writes[writes.length - 1].answeredAt!, 'deleted only after the store answered the completion');
    assertNoSecrets(u);
    const replies = JSON.stringify(await sendCommand(HOST, u.port, 'DEVICE_STATUS')) + JSON.stringify(progress);
    for (const secret of [TEMP_KEY.secretAccessKey, TEMP_KEY.sessionToken!, TEMP_KEY.accessKeyId]) assert.ok(!replies.includes(secret), 'no credential in status replies');
  });

  test('a connection cut mid-body is retried and the object arrives whole', async (t) => {
    const fileName = 'video_1729000200.mp4';
    const u = await unitWith({ [fileName]: 3 * MiB });
    t.after(() => stopUnit(u));
    const proxy = await startCutProxy(s3.port, { cutAfterBytes: MiB, times: 1 });
    t.after(() => proxy.close());
    const key = `cut/${fileName}`;
    const url = await s3.presignPut(key, 600, { endpoint: proxy.endpoint });
    const states: string[] = [];
    await requestUpload(u, fileName, { uploadUrl: url });
    await waitFor(
      async () => {
        const q = await queues(u);
        const i = q.uploadQueue.find((x) => x.fileName === fileName);
        if (i) states.push(`${i.status}:${i.error ?? ''}`);
        return !i;
      },
      20000,
      'the upload to finish',
      20,
    );
    assert.equal(proxy.cuts, 1);
    assert.ok((await s3.getObject(key)).equals(u.files.get(fileName)!));
    assert.equal((await queues(u)).failedUploadQueue.length, 0);
    const failures = u.logs.find('upload attempt failed; will retry');
    assert.equal(failures.length, 1);
    assert.match(String(failures[0].error), /network error/);
    assert.ok(states.some((s) => s.startsWith('retrying:network error')), `the queue showed the retry: ${[...new Set(states)].join(', ')}`);
    await waitDeleted(u.dataDir, fileName);
  });

  test('asking again while uploading keeps the new destination: when the running attempt fails, the next one uses it', async (t) => {
    const fileName = 'video_1729000250.mp4';
    const u = await unitWith({ [fileName]: 3 * MiB }, { maxBytesPerSecond: 1_500_000 });
    t.after(() => stopUnit(u));
    const proxy = await startCutProxy(s3.port, { cutAfterBytes: 2 * MiB, times: 1 });
    t.after(() => proxy.close());
    const [oldKey, newKey] = [`again/old/${fileName}`, `again/new/${fileName}`];
    await requestUpload(u, fileName, { uploadUrl: await s3.presignPut(oldKey, 600, { endpoint: proxy.endpoint }) });
    await waitFor(async () => (await queues(u)).uploadQueue[0]?.status === 'uploading', 5000, 'the first attempt to run', 20);
    const again = await requestUpload(u, fileName, { uploadUrl: await s3.presignPut(newKey, 600) });
    assert.equal(again.status, 'uploading', 'the running attempt goes on');
    await waitGone(u, fileName);
    assert.equal(proxy.cuts, 1, 'the first attempt was cut');
    assert.ok((await s3.getObject(newKey)).equals(u.files.get(fileName)!), 'the object went to the newer destination');
    assert.deepEqual(await s3.listKeys('again/old/'), [], 'nothing at the old one');
    assert.equal(u.logs.find('retrying at once with the destination sent meanwhile').length, 1);
    await waitDeleted(u.dataDir, fileName);
  });

  test('a 500 on a part is retried from that part; the parts before are not sent again', async (t) => {
    const fileName = 'video_1729000300.mp4';
    const u = await unitWith({ [fileName]: 3 * MiB + 5 }, { multipartThresholdMB: 1, partSizeMB: 1 });
    t.after(() => stopUnit(u));
    const key = `retry/${fileName}`;
    s3.clearRequests();
    let writes = 0;
    s3.onWrite(() => {
      if (++writes === 3) s3.failNext(1, 500, 'InternalError'); // the 4th write: part 4
    });
    await requestUpload(u, fileName, iamFields(key));
    await waitGone(u, fileName);
    s3.onWrite(undefined);
    assert.ok((await s3.getObject(key)).equals(u.files.get(fileName)!));
    const parts = s3.requests.filter((r) => r.write === 'part').map((r) => `${r.partNumber}:${r.status}`);
    assert.deepEqual(parts, ['1:200', '2:200', '3:200', '4:500', '4:200']);
    assert.match(String(u.logs.find('upload attempt failed; will retry')[0]?.error), /InternalError/);
  });

  test('an expired URL fails at once with S3\'s code, keeps the file, and asking again requeues it', async (t) => {
    const fileName = 'video_1729000400.mp4';
    const u = await unitWith({ [fileName]: 2 * MiB });
    t.after(() => stopUnit(u));
    const key = `expired/${fileName}`;
    const url = await s3.presignPut(key, 1);
    await new Promise((r) => setTimeout(r, 1600));
    s3.clearRequests();
    await requestUpload(u, fileName, { uploadUrl: url });
    const failed = await waitFor(async () => (await queues(u)).failedUploadQueue.find((i) => i.fileName === fileName), 10000, 'the failure', 50);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error ?? '', /^AccessDenied: Request has expired \(HTTP 403\)$/);
    assert.equal(s3.requests.length, 1, 'no retry of an expired URL');
    assert.equal(s3.requests[0].bytesIn, 0, 'refused before the body was sent (Expect: 100-continue)');
    assert.deepEqual((await queues(u)).uploadQueue, []);
    assert.ok(existsSync(join(u.dataDir, 'recordings', fileName)) && (await listed(u)).includes(fileName), 'the file stays');

    await requestUpload(u, fileName, { uploadUrl: await s3.presignPut(key, 600) });
    assert.deepEqual((await queues(u)).failedUploadQueue.map((i) => i.fileName), [], 'requeued: no longer failed');
    await waitGone(u, fileName);
    assert.ok((await s3.getObject(key)).equals(u.files.get(fileName)!));
  });

  test('forbidden credentials fail at once; a store that keeps failing exhausts the attempts; the file stays either way', async (t) => {
    const [a, b] = ['video_1729000500.mp4', 'video_1729000501.mp4'];
    const u = await unitWith({ [a]: 100_000, [b]: 100_000 }, { maxAttempts: 3, retryBaseMs: 50 });
    t.after(() => stopUnit(u));
    s3.clearRequests();
    await requestUpload(u, a, iamFields(`forbidden/${a}`, { ...TEMP_KEY, secretAccessKey: 'not-the-secret-at-all-000000000000' }));
    const fa = await waitFor(async () => (await queues(u)).failedUploadQueue.find((i) => i.fileName === a), 10000, 'forbidden failure', 50);
    assert.match(fa.error ?? '', /^SignatureDoesNotMatch: The request signature we calculated does not match/);
    assert.equal(s3.requests.length, 1, 'no retry when the store refuses the credentials');
    assert.ok(!(fa.error ?? '').includes('not-the-secret'));

    s3.failAlways(503, 'SlowDown');
    t.after(() => s3.clearFaults());
    await requestUpload(u, b, { uploadUrl: await s3.presignPut(`slow/${b}`, 600) });
    const fb = await waitFor(async () => (await queues(u)).failedUploadQueue.find((i) => i.fileName === b), 15000, 'exhausted attempts', 50);
    s3.clearFaults();
    assert.match(fb.error ?? '', /^SlowDown/);
    assert.equal(s3.requests.filter((r) => r.key === `slow/${b}`).length, 3, 'three attempts');
    const names = await listed(u);
    assert.ok(names.includes(a) && names.includes(b), 'nothing is deleted after a failure');
    assert.deepEqual((await queues(u)).failedUploadQueue.map((i) => i.fileName).sort(), [a, b]);
  });

  test('a download already streaming the file finishes before the uploaded file is deleted', async (t) => {
    const [fileName, next] = ['video_1729000600.mp4', 'video_1729000601.mp4'];
    const u = await unitWith({ [fileName]: 8 * MiB, [next]: MiB });
    t.after(() => stopUnit(u));
    const download = getVideo(HOST, u.port, fileName, null, { pauseAfterFirstChunkMs: 2500 });
    await new Promise((r) => setTimeout(r, 300)); // the download has its first chunk and holds the file open
    const key = `while-downloading/${fileName}`;
    await requestUpload(u, fileName, { uploadUrl: await s3.presignPut(key, 600) });
    await requestUpload(u, next, { uploadUrl: await s3.presignPut(`while-downloading/${next}`, 600) });
    await waitGone(u, fileName);
    await waitGone(u, next);
    assert.ok(existsSync(join(u.dataDir, 'recordings', fileName)), 'still on disk while the download runs');
    assert.ok(!(await listed(u)).includes(fileName), 'but no longer listed');
    await waitDeleted(u.dataDir, next);
    assert.ok(existsSync(join(u.dataDir, 'recordings', fileName)), 'the next upload was done and deleted while the download still runs');
    const v = await download;
    assert.equal(v.bytes, 8 * MiB, 'the download completed');
    await waitFor(() => !existsSync(join(u.dataDir, 'recordings', fileName)), 5000, 'deletion after the download');
    assert.ok((await s3.getObject(key)).equals(u.files.get(fileName)!));
  });

  test('bad requests get an error with a message and leave the queue untouched', async (t) => {
    const fileName = 'video_1729000700.mp4';
    const u = await unitWith({ [fileName]: 1000 }, { allowHttp: false });
    t.after(() => stopUnit(u));
    const https = 'https://bucket.s3.amazonaws.com/k.mp4?X-Amz-Signature=SIGNATURE-DO-NOT-LOG';
    const cases: Array<[string, Partial<CommandFields>, RegExp]> = [
      ['missing fileName', { fileName: null, uploadUrl: https }, /fileName/],
      ['unknown file', { fileName: 'video_1.mp4', uploadUrl: https }, /^File video_1\.mp4 not found$/],
      ['path traversal', { fileName: '../device-id', uploadUrl: https }, /^File \.\.\/device-id not found$/],
      ['no target', { fileName }, /uploadUrl.*s3Bucket/],
      ['missing credential', { fileName, ...iamFields('k'), awsSecretAccessKey: null }, /missing: awsSecretAccessKey/],
      ['malformed URL', { fileName, uploadUrl: 'https//nope' }, /not a valid URL/],
      ['refused scheme', { fileName, uploadUrl: 'ftp://example.invalid/k.mp4' }, /scheme "ftp"/],
      ['plain http not allowed', { fileName, uploadUrl: `${s3.endpoint}/b/k.mp4` }, /plain http/],
      ['http endpoint for the IAM form not allowed', { fileName, ...iamFields('k') }, /s3Endpoint uses plain http/],
    ];
    for (const [what, fields, why] of cases) {
      const r = await sendCommand(HOST, u.port, 'UPLOAD_TO_CLOUD', fields);
      assert.equal(r.kind, 'error', what);
      assert.equal(r.body.status, /not found/.test(String(r.body.message)) ? 'file_not_found' : 'error', what);
      assert.match(r.kind === 'error' ? r.message : '', why, what);
    }
    assert.deepEqual(await queues(u), { uploadQueue: [], failedUploadQueue: [] });
    assert.ok(!existsSync(join(u.dataDir, 'uploads.json')) || JSON.parse(await readFile(join(u.dataDir, 'uploads.json'), 'utf8')).queue.length === 0);
    assert.ok((await listed(u)).includes(fileName));
    assertNoSecrets(u, ['SIGNATURE-DO-NOT-LOG']);
  });

  test('when the queue cannot be saved the request is refused with the reason, and nothing is half-queued', async (t) => {
    const fileName = 'video_1729000720.mp4';
    const u = await unitWith({ [fileName]: 1000 });
    t.after(() => stopUnit(u));
    // A non-empty directory where the queue file goes: the atomic rename fails like a full or broken disk would.
    await mkdir(join(u.dataDir, 'uploads.json', 'blocker'), { recursive: true });
    const url = await s3.presignPut(`unsaved/${fileName}`, 600);
    const r = await sendCommand(HOST, u.port, 'UPLOAD_TO_CLOUD', { fileName, uploadUrl: url });
    assert.equal(r.kind, 'error');
    assert.match(r.kind === 'error' ? r.message : '', /queue could not be saved/);
    assert.deepEqual(await queues(u), { uploadQueue: [], failedUploadQueue: [] });
    assert.equal(u.logs.find('the queue could not be saved').length, 1);
    await rm(join(u.dataDir, 'uploads.json'), { recursive: true });
    await requestUpload(u, fileName, { uploadUrl: url });
    await waitGone(u, fileName);
  });

  test('a damaged queue file does not keep the unit from starting; it is set aside and logged', async (t) => {
    const tmp = await tempDir('arenacam-upload-');
    t.after(() => tmp.cleanup());
    await writeFile(join(tmp.dir, 'uploads.json'), '{"version":1,"queue":[{"fileName":');
    const u = await unitWith({ 'video_1729000750.mp4': 1000 }, {}, tmp.dir);
    t.after(() => u.stop());
    assert.deepEqual(await queues(u), { uploadQueue: [], failedUploadQueue: [] });
    const logged = u.logs.find('the upload queue file is damaged');
    assert.equal(logged.length, 1);
    assert.equal(await readFile(String(logged[0].keptAs), 'utf8'), '{"version":1,"queue":[{"fileName":', 'kept for inspection');
    assert.ok((await listed(u)).includes('video_1729000750.mp4'));
  });

  test('a shutdown mid-upload resumes at the next start with the next part', async (t) => {
    const fileName = 'video_1729000800.mp4';
    const tmp = await tempDir('arenacam-upload-');
    t.after(() => tmp.cleanup());
    const cfg = { multipartThresholdMB: 1, partSizeMB: 1, maxBytesPerSecond: 2_000_000 };
    const u1 = await unitWith({ [fileName]: 6 * MiB }, cfg, tmp.dir);
    const data = u1.files.get(fileName)!;
    const key = `resume/${fileName}`;
    s3.clearRequests();
    await requestUpload(u1, fileName, iamFields(key));
    await waitFor(() => s3.requests.filter((r) => r.write === 'part' && r.status === 200).length >= 2, 15000, 'two parts stored', 20);
    await u1.stop();
    const saved = JSON.parse(await readFile(join(tmp.dir, 'uploads.json'), 'utf8'));
    assert.equal(saved.queue.length, 1, 'the job is persisted');
    const doneBefore = saved.queue[0].multipart.parts.length as number;
    assert.ok(doneBefore >= 2);
    assert.ok(u1.logs.find('upload interrupted by shutdown').length === 1);

    const u2 = await unitWith({}, cfg, tmp.dir);
    u2.files.set(fileName, data);
    t.after(() => u2.stop());
    assert.ok(u2.logs.find('resuming uploads from before the restart').length === 1);
    await waitGone(u2, fileName);
    assert.ok((await s3.getObject(key)).equals(data));
    const stored = s3.requests.filter((r) => r.write === 'part' && r.status === 200).map((r) => r.partNumber);
    assert.deepEqual([...stored].sort((x, y) => x! - y!), [1, 2, 3, 4, 5, 6], `each part stored once: ${stored.join(',')}`);
    assert.equal(new Set(s3.requests.filter((r) => r.uploadId).map((r) => r.uploadId)).size, 1, 'the same multipart upload continued');
    await waitDeleted(tmp.dir, fileName);
  });

  test('the daemon killed with SIGKILL mid-upload resumes after a restart, and the object is whole', async (t) => {
    const fileName = 'video_1729000900.mp4';
    const tmp = await tempDir('arenacam-upload-kill-');
    t.after(() => tmp.cleanup());
    await mkdir(join(tmp.dir, 'recordings'), { recursive: true });
    const data = randomBytes(6 * MiB);
    await writeFile(join(tmp.dir, 'recordings', fileName), data);
    const config = testConfig(tmp.dir, {
      camera: { fps: 10 },
      upload: { allowHttp: true, s3Endpoint: s3.endpoint, multipartThresholdMB: 1, partSizeMB: 1, maxBytesPerSecond: 2_000_000 },
    });
    const key = `killed/${fileName}`;
    s3.clearRequests();
    const first = await spawnUnit(tmp.dir, config, 'first');
    t.after(() => void first.proc.kill('SIGKILL'));
    const r = await sendCommand(HOST, first.multicamPort, 'UPLOAD_TO_CLOUD', { fileName, ...iamFields(key) });
    assert.equal(r.body.status, 'upload_queued');
    await waitFor(() => s3.requests.filter((x) => x.write === 'part' && x.status === 200).length >= 2, 15000, 'two parts stored', 20);
    first.proc.kill('SIGKILL');
    await first.exited;
    assert.ok(existsSync(join(tmp.dir, 'recordings', fileName)), 'the file survives the kill');

    const second = await spawnUnit(tmp.dir, config, 'second');
    t.after(async () => {
      second.proc.kill('SIGINT');
      await second.exited;
    });
    await waitGone({ port: second.multicamPort }, fileName);
    assert.ok((await s3.getObject(key)).equals(data), 'byte-identical after the kill');
    const stored = s3.requests.filter((x) => x.write === 'part' && x.status === 200).map((x) => x.partNumber!);
    assert.deepEqual([...new Set(stored)].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6]);
    assert.ok(stored.length <= 7, `at most the part in flight at the kill is sent twice: ${stored.join(',')}`);
    await waitDeleted(tmp.dir, fileName);
    assert.match(second.log(), /resuming uploads from before the restart/);
    for (const secret of [TEMP_KEY.secretAccessKey, TEMP_KEY.sessionToken!]) {
      assert.ok(!second.log().includes(secret) && !first.log().includes(secret), 'no credential in the logs');
    }
  });

  test('over https with the default settings (allowHttp false): both forms go up, TLS instead of MD5', async (t) => {
    const tmp = await tempDir('arenacam-upload-tls-');
    t.after(() => tmp.cleanup());
    const certs = await makeTestCerts(join(tmp.dir, 'tls'));
    const secure = await startS3({ tls: certs });
    t.after(() => secure.close());
    assert.match(secure.endpoint, /^https:/);
    const [a, b] = ['video_1729001000.mp4', 'video_1729001001.mp4'];
    await mkdir(join(tmp.dir, 'recordings'), { recursive: true });
    const data = { [a]: randomBytes(2 * MiB + 7), [b]: randomBytes(3 * MiB + 11) };
    for (const [name, bytes] of Object.entries(data)) await writeFile(join(tmp.dir, 'recordings', name), bytes);
    const config = testConfig(tmp.dir, { camera: { fps: 10 }, upload: { s3Endpoint: secure.endpoint, multipartThresholdMB: 1, partSizeMB: 1 } });
    assert.equal(config.upload.allowHttp, false);
    // The unit trusts the test CA the way a unit trusts a private store's CA: NODE_EXTRA_CA_CERTS.
    process.env.NODE_EXTRA_CA_CERTS = certs.ca;
    const unit = await spawnUnit(tmp.dir, config, 'tls').finally(() => delete process.env.NODE_EXTRA_CA_CERTS);
    t.after(async () => {
      unit.proc.kill('SIGINT');
      await unit.exited;
    });
    const port = unit.multicamPort;
    const upload = async (fileName: string, fields: Partial<CommandFields>): Promise<void> => {
      const r = await sendCommand(HOST, port, 'UPLOAD_TO_CLOUD', { fileName, ...fields });
      assert.equal(r.body.status, 'upload_queued', JSON.stringify(r.body));
      await waitGone({ port }, fileName, 20000);
    };
    await upload(a, { uploadUrl: await secure.presignPut(`tls/${a}`, 600) });
    await upload(b, { s3Bucket: secure.bucket, s3Key: `tls/${b}`, awsAccessKeyId: TEMP_KEY.accessKeyId, awsSecretAccessKey: TEMP_KEY.secretAccessKey, awsSessionToken: TEMP_KEY.sessionToken!, awsRegion: secure.region });
    assert.ok((await secure.getObject(`tls/${a}`)).equals(data[a]));
    assert.ok((await secure.getObject(`tls/${b}`)).equals(data[b]));
    assert.ok(secure.requests.every((r) => r.ok), 'every request over TLS carried a valid signature');
    assert.deepEqual(secure.requests.filter((r) => r.write).map((r) => r.write), ['put', 'part', 'part', 'part', 'part', 'complete']);
    const done = unit.log().split('\n').filter((l) => l.includes('upload completed and verified')).map((l) => JSON.parse(l) as { digestVerified: boolean });
    assert.deepEqual(done.map((d) => d.digestVerified), [false, false], 'verifyMd5 auto: no MD5 over TLS');
    await waitDeleted(tmp.dir, a);
    await waitDeleted(tmp.dir, b);
  });
});
