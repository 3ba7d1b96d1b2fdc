import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DeviceSnapshot, UploadItem } from '../../../src/device/types.js';
import {
  CommandFramer,
  errorReply,
  listReply,
  parseCommand,
  stateReply,
  statusReply,
  stopReply,
  uploadQueuedReply,
  ONE_SEGMENT_BYTES,
  videoHeader,
  type FrameResult,
} from '../../../src/protocols/multicam/wire.js';
import { buildCommand, classifyReply } from '../../helpers/controller.js';

const NOW = 1_729_000_000_123.5;
const STATUS_KEYS = ['batteryLevel', 'deviceId', 'deviceType', 'failedUploadQueue', 'status', 'timestamp', 'uploadQueue'];
const keys = (o: object): string[] => Object.keys(o).sort();

function snap(over: Partial<DeviceSnapshot> = {}): DeviceSnapshot {
  return {
    deviceId: 'arena-1',
    deviceType: 'arenacam',
    state: 'ready',
    errorMessage: null,
    batteryLevel: null,
    uploadQueue: [],
    failedUploadQueue: [],
    scheduledStartMs: null,
    ...over,
  };
}

function feed(chunks: (Buffer | string)[], max = 65536): FrameResult[] {
  const f = new CommandFramer(max);
  return chunks.map((c) => f.push(typeof c === 'string' ? Buffer.from(c) : c));
}

const iamCommand = (): Buffer =>
  buildCommand('UPLOAD_TO_CLOUD', {
    fileName: 'video_1729000000.mp4',
    s3Bucket: 'arena-bucket',
    s3Key: 'recordings/exo/arena-1/video_1729000000.mp4',
    awsAccessKeyId: 'ASIA' + 'X'.repeat(16),
    awsSecretAccessKey: 's'.repeat(40),
    awsSessionToken: 'T'.repeat(2200),
    awsRegion: 'eu-west-1',
  });

describe('CommandFramer', () => {
  test('a command in one chunk is returned parsed', () => {
    const [r] = feed([buildCommand('HEARTBEAT')]);
    assert.equal(r.kind, 'message');
    assert.equal((r as { value: { command: string } }).value.command, 'HEARTBEAT');
  });

  test('a command fed one byte at a time needs more until its last byte', () => {
    const bytes = buildCommand('DEVICE_STATUS');
    const results = feed([...bytes].map((b) => Buffer.from([b])));
    assert.ok(results.slice(0, -1).every((r) => r.kind === 'need-more'));
    assert.equal(results.at(-1)!.kind, 'message');
  });

  test('leading whitespace and a trailing newline are tolerated', () => {
    const [r] = feed(['\r\n  \t{"command":"HEARTBEAT"}\n']);
    assert.deepEqual(r, { kind: 'message', value: { command: 'HEARTBEAT' }, length: 28 });
  });

  test('braces, quotes and escapes inside strings do not end the object', () => {
    const text = '{"a":"}\\"{","b":{"c":"\\\\"},"d":[{"e":1}]}';
    const results = feed([text.slice(0, 9), text.slice(9, 20), text.slice(20)]);
    assert.deepEqual(results.at(-1), { kind: 'message', value: JSON.parse(text), length: text.length });
  });

  test('a 3 KB IAM-form upload command split into 1400-byte segments is reassembled', () => {
    const bytes = iamCommand();
    assert.ok(bytes.length > 2500);
    const parts: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 1400) parts.push(bytes.subarray(i, i + 1400));
    const results = feed(parts);
    assert.equal(results.at(-1)!.kind, 'message');
    assert.deepEqual((results.at(-1) as { value: unknown }).value, JSON.parse(bytes.toString()));
  });

  test('a multi-byte character split across chunks decodes correctly', () => {
    const bytes = Buffer.from('{"deviceId":"Kamera Süd 🎥 南"}', 'utf8');
    const cut = bytes.indexOf(Buffer.from('🎥')) + 2;
    const results = feed([bytes.subarray(0, cut), bytes.subarray(cut)]);
    assert.equal(results[0].kind, 'need-more');
    assert.deepEqual((results[1] as { value: unknown }).value, { deviceId: 'Kamera Süd 🎥 南' });
  });

  test('invalid UTF-8 is malformed', () => {
    const [r] = feed([Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])]);
    assert.equal(r.kind, 'malformed');
  });

  test('anything but an object is malformed at its first byte', () => {
    for (const text of ['[1,2]', 'GET / HTTP/1.1\r\n', '"x"', '\x00\x01']) {
      const [r] = feed([text]);
      assert.equal(r.kind, 'malformed', text);
      assert.match((r as { message: string }).message, /expected a JSON object/);
    }
  });

  test('a complete object that is not valid JSON is malformed', () => {
    const [r] = feed(['{"command": HEARTBEAT}']);
    assert.equal(r.kind, 'malformed');
    assert.match((r as { message: string }).message, /invalid JSON/);
  });

  test('more than maxMessageBytes without a complete object is too large and names the limit', () => {
    const results = feed(['{"a":"', 'x'.repeat(1000), 'x'.repeat(200)], 1024);
    assert.deepEqual(results.map((r) => r.kind), ['need-more', 'need-more', 'too-large']);
    assert.match((results[2] as { message: string }).message, /1024 bytes/);
  });

  test('an object of exactly maxMessageBytes passes and one byte more is too large', () => {
    const exact = `{"a":"${'x'.repeat(1024 - 8)}"}`;
    assert.equal(Buffer.byteLength(exact), 1024);
    assert.equal(feed([exact], 1024)[0].kind, 'message');
    assert.equal(feed([exact.replace('"a"', '"ab"')], 1024)[0].kind, 'too-large');
  });

  test('bytes after the first command are ignored and the result stays the same', () => {
    const results = feed(['{"command":"HEARTBEAT"}{"command":"STOP_RECORDING"}', 'garbage']);
    assert.equal(results[0].kind, 'message');
    assert.deepEqual(results[1], results[0]);
  });
});

describe('parseCommand', () => {
  const parse = (name: string, extra: Record<string, unknown> = {}) =>
    parseCommand({ ...JSON.parse(buildCommand(name).toString()), ...extra });

  test('every command the controller sends, with all keys and nulls, is accepted', () => {
    for (const name of ['START_RECORDING', 'STOP_RECORDING', 'DEVICE_STATUS', 'HEARTBEAT', 'UPLOAD_STATUS', 'LIST_FILES']) {
      const r = parse(name);
      assert.ok(r.ok, name);
      assert.equal(r.command.command, name);
    }
    const get = parse('GET_VIDEO', { fileName: 'video_1.mp4' });
    assert.ok(get.ok && get.command.command === 'GET_VIDEO' && get.command.fileName === 'video_1.mp4');
    const up = parseCommand(JSON.parse(iamCommand().toString()));
    assert.ok(up.ok && up.command.command === 'UPLOAD_TO_CLOUD');
    assert.equal(up.command.upload.s3Bucket, 'arena-bucket');
    assert.equal(up.command.upload.uploadUrl, null);
  });

  test('the timestamp is kept as float seconds', () => {
    const r = parseCommand({ command: 'START_RECORDING', timestamp: 1729000003.5 });
    assert.ok(r.ok && r.command.command === 'START_RECORDING');
    assert.equal(r.command.timestamp, 1729000003.5);
  });

  test('START and STOP without a usable timestamp are refused naming the field', () => {
    for (const name of ['START_RECORDING', 'STOP_RECORDING']) {
      for (const timestamp of [undefined, null, '1729000000', Infinity, true]) {
        const r = parseCommand({ command: name, timestamp });
        assert.ok(!r.ok, `${name} ${String(timestamp)}`);
        assert.match(r.message, /"timestamp"/);
      }
    }
    const huge = parseCommand(JSON.parse('{"command":"START_RECORDING","timestamp":1e400}'));
    assert.ok(!huge.ok && /finite/.test(huge.message));
  });

  test('the timestamp is optional for polls but must be a number when present', () => {
    assert.ok(parseCommand({ command: 'HEARTBEAT' }).ok);
    const r = parseCommand({ command: 'HEARTBEAT', timestamp: 'now' });
    assert.ok(!r.ok && /"timestamp"/.test(r.message));
  });

  test('GET_VIDEO and UPLOAD_TO_CLOUD need a non-empty fileName', () => {
    for (const name of ['GET_VIDEO', 'UPLOAD_TO_CLOUD']) {
      for (const fileName of [null, '', 42]) {
        const r = parse(name, { fileName });
        assert.ok(!r.ok, `${name} ${String(fileName)}`);
        assert.match(r.message, /"fileName"/);
      }
    }
  });

  test('unknown, missing or non-string command names are refused clearly', () => {
    const unknown = parseCommand({ command: 'SELF_DESTRUCT', timestamp: 1 });
    assert.ok(!unknown.ok && /unknown command "SELF_DESTRUCT"/.test(unknown.message));
    const missing = parseCommand({ timestamp: 1 });
    assert.ok(!missing.ok && /missing field "command"/.test(missing.message));
    const number = parseCommand({ command: 7 });
    assert.ok(!number.ok && /"command" must be a string/.test(number.message));
    for (const v of [null, [], 'HEARTBEAT', 3]) assert.ok(!parseCommand(v).ok);
  });

  test('wrongly typed optional keys are refused naming the key; unknown keys are ignored', () => {
    const id = parse('HEARTBEAT', { deviceId: 5 });
    assert.ok(!id.ok && /"deviceId"/.test(id.message));
    const region = parse('UPLOAD_TO_CLOUD', { fileName: 'a.mp4', awsRegion: { name: 'x' } });
    assert.ok(!region.ok && /"awsRegion"/.test(region.message));
    assert.ok(parse('HEARTBEAT', { somethingNew: [1, 2] }).ok);
  });
});

describe('replies', () => {
  const item: UploadItem = {
    fileName: 'video_1.mp4',
    fileSize: 10,
    bytesUploaded: 5,
    uploadProgress: 50,
    uploadSpeed: 100,
    status: 'uploading',
    uploadUrl: 'https://bucket.s3.amazonaws.com/recordings/video_1.mp4?X-Amz-Signature=' + 'a'.repeat(500),
    error: null,
  };

  test('a status reply has exactly the status keys and is classified as a status reply', () => {
    const r = statusReply(snap({ batteryLevel: 85.5 }), 'ready', NOW);
    assert.deepEqual(keys(r), STATUS_KEYS);
    assert.equal(r.timestamp, NOW / 1000);
    assert.equal(classifyReply(JSON.parse(JSON.stringify(r))).kind, 'status');
  });

  test('the device state maps onto reply statuses', () => {
    assert.equal((stateReply(snap(), NOW) as { status: string }).status, 'ready');
    assert.equal((stateReply(snap({ scheduledStartMs: NOW + 3000 }), NOW) as { status: string }).status, 'scheduled_recording_accepted');
    assert.equal((stateReply(snap({ state: 'recording' }), NOW) as { status: string }).status, 'recording');
    assert.equal((stateReply(snap({ state: 'stopping' }), NOW) as { status: string }).status, 'stopping');
    assert.equal((stateReply(snap({ uploadQueue: [item] }), NOW) as { status: string }).status, 'ready');
  });

  test('the error state becomes an error reply carrying the device message', () => {
    const r = stateReply(snap({ state: 'error', errorMessage: 'disk full' }), NOW);
    assert.deepEqual(r, { deviceId: 'arena-1', status: 'error', timestamp: NOW / 1000, message: 'disk full' });
    const c = classifyReply(r);
    assert.ok(c.kind === 'error' && c.message === 'disk full');
  });

  test('an error reply always has a message, even when given an empty one', () => {
    for (const status of ['error', 'file_not_found', 'time_not_synchronized'] as const) {
      const r = errorReply('arena-1', status, '', NOW);
      assert.deepEqual(keys(r), ['deviceId', 'message', 'status', 'timestamp']);
      assert.ok(r.message.length > 0);
      assert.equal(classifyReply(r).kind, 'error');
    }
  });

  test('a stop reply has exactly its keys and is classified as a stop reply', () => {
    const r = stopReply('arena-1', 'video_1729000000.mp4', 52428800, NOW);
    assert.deepEqual(keys(r), ['deviceId', 'fileName', 'fileSize', 'status', 'timestamp']);
    assert.equal(classifyReply(r).kind, 'stop');
  });

  test('upload_queued is a plain status reply, not mistaken for a stop or error reply', () => {
    const r = uploadQueuedReply(snap({ uploadQueue: [item] }), NOW);
    assert.deepEqual(keys(r), STATUS_KEYS);
    assert.equal(r.status, 'upload_queued');
    assert.equal(classifyReply(JSON.parse(JSON.stringify(r))).kind, 'status');
  });

  test('queue items keep their keys but lose the presigned query string', () => {
    const r = statusReply(snap({ uploadQueue: [item], failedUploadQueue: [{ ...item, status: 'failed', error: 'x' }] }), 'ready', NOW);
    assert.equal(r.uploadQueue[0].uploadUrl, 'https://bucket.s3.amazonaws.com/recordings/video_1.mp4');
    assert.deepEqual(keys(r.uploadQueue[0]), keys(item));
    assert.ok(JSON.stringify(r).length < 1400);
  });

  test('with many items the URLs are left out so the reply stays within one TCP segment', () => {
    const many = Array.from({ length: 6 }, (_, n) => ({ ...item, fileName: `video_172900000${n}.mp4` }));
    const r = statusReply(snap({ uploadQueue: many }), 'ready', NOW);
    assert.ok(r.uploadQueue.every((i) => i.uploadUrl === null));
    assert.deepEqual(r.uploadQueue.map((i) => i.fileName), many.map((i) => i.fileName), 'every item is still reported');
    assert.ok(JSON.stringify(r).length <= ONE_SEGMENT_BYTES, `${JSON.stringify(r).length} bytes`);
    const one = statusReply(snap({ uploadQueue: many.slice(0, 1) }), 'ready', NOW);
    assert.notEqual(one.uploadQueue[0].uploadUrl, null, 'one item keeps its URL');
  });

  test('the list reply is a status reply plus files with their four keys', () => {
    const files = [{ fileName: 'video_1.mp4', fileSize: 10, creationDate: 1.5, modificationDate: 2.5 }];
    const r = listReply(snap(), files, NOW);
    assert.deepEqual(keys(r), [...STATUS_KEYS, 'files'].sort());
    assert.deepEqual(r.files, files);
    assert.equal(classifyReply(JSON.parse(JSON.stringify(r))).kind, 'status');
  });

  test('the video header is a big-endian length followed by exactly that much JSON', () => {
    const h = videoHeader('arena-1', 'vidéo_1.mp4', 20_000_000);
    const n = h.readUInt32BE(0);
    assert.equal(h.length, 4 + n);
    assert.deepEqual(JSON.parse(h.subarray(4).toString('utf8')), {
      deviceId: 'arena-1',
      fileName: 'vidéo_1.mp4',
      fileSize: 20_000_000,
      status: 'ready',
    });
  });

  test('the controller peer refuses an error reply without a message', () => {
    assert.throws(() => classifyReply({ deviceId: 'x', status: 'file_not_found', timestamp: 1 }), /without a message/);
    assert.throws(() => classifyReply({ deviceId: 'x', status: 'error', timestamp: 1 }), /without a message/);
  });
});
