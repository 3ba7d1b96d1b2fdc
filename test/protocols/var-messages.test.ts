import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WebSocket } from 'ws';
import {
  buildOutbound,
  parseInbound,
  parsePairLink,
  parseResolution,
  PROTO_VERSION,
  readDisconnect,
  readMark,
  readPairAccept,
  readPairReject,
  readPing,
  readRequestClip,
  readStartRecord,
  type Inbound,
  type ReadResult,
} from '../../src/protocols/var/messages.js';
import { startCoordinator } from '../helpers/coordinator.js';

const MAX = 4096;
const env = (o: Record<string, unknown>): string => JSON.stringify({ type: 'ping', protoVersion: '1.0', deviceId: 'coordinator', payload: {}, ...o });
function ok(data: string, max = MAX): Inbound {
  const r = parseInbound(data, max);
  assert.ok(r.ok, `expected ${data} to parse: ${JSON.stringify(r)}`);
  return r.msg;
}
function value<T>(r: ReadResult<T>): T {
  assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`);
  return r.value;
}
function fails<T>(r: ReadResult<T>, field: string): void {
  assert.equal(r.ok, false, `expected a failure naming ${field}, got ${JSON.stringify(r)}`);
  if (!r.ok) assert.ok(r.message.includes(`"${field}"`), `message ${JSON.stringify(r.message)} should name "${field}"`);
}

describe('parseInbound', () => {
  test('a document hello parses with all envelope fields', () => {
    const hello = { type: 'hello', protoVersion: '1.0', deviceId: 'android-uuid', payload: { deviceName: 'Samsung A34', platform: 'android' } };
    assert.deepEqual(ok(JSON.stringify(hello)), { ...hello, sessionId: null });
  });

  test('the coordinator\'s deviceId, other 1.x versions and missing optional fields are accepted', () => {
    const cases: Array<[Record<string, unknown>, Partial<Inbound>]> = [
      [{ deviceId: 'coordinator' }, { deviceId: 'coordinator' }],
      [{ deviceId: undefined }, { deviceId: null }],
      [{ deviceId: null }, { deviceId: null }],
      [{ protoVersion: '1' }, { protoVersion: '1' }],
      [{ protoVersion: '1.2' }, { protoVersion: '1.2' }],
      [{ protoVersion: '1.0.3' }, { protoVersion: '1.0.3' }],
      [{ payload: undefined }, { payload: {} }],
      [{ payload: null }, { payload: {} }],
      [{ sessionId: 'S1' }, { sessionId: 'S1' }],
      [{ payload: { sessionId: 'S2' } }, { sessionId: 'S2' }],
      [{ sessionId: null, payload: { sessionId: 'S3' } }, { sessionId: 'S3' }],
      [{ sessionId: '', payload: { sessionId: 'S4' } }, { sessionId: 'S4' }],
      [{ sessionId: 'top', payload: { sessionId: 'inner' } }, { sessionId: 'top' }],
      [{ unknownExtra: [1, 2] }, { type: 'ping' }],
    ];
    for (const [over, want] of cases) {
      const msg = ok(env(over));
      for (const [k, v] of Object.entries(want)) assert.deepEqual(msg[k as keyof Inbound], v, `${JSON.stringify(over)} → ${k}`);
    }
  });

  test('the byte length, not the character count, is compared with maxBytes', () => {
    const room = 40;
    const max = Buffer.byteLength(env({ payload: { note: '' } })) + room;
    assert.ok(parseInbound(env({ payload: { note: 'x'.repeat(room) } }), max).ok);
    const over = parseInbound(env({ payload: { note: 'x'.repeat(room + 1) } }), max);
    assert.deepEqual(over, { ok: false, code: 'TOO_LARGE', message: `message of ${max + 1} bytes exceeds the limit of ${max}`, type: null });
    const wide = env({ payload: { note: 'é'.repeat(room) } });
    assert.ok(wide.length <= max);
    assert.equal((parseInbound(wide, max) as { code: string }).code, 'TOO_LARGE');
  });

  test('malformed envelopes are BAD_MESSAGE with a message naming the field', () => {
    const cases: Array<[string, string, string | null]> = [
      ['', 'invalid JSON', null],
      ['{"type":', 'invalid JSON', null],
      ['[]', 'JSON object', null],
      ['null', 'JSON object', null],
      ['"hello"', 'JSON object', null],
      ['{"protoVersion":"1.0","payload":{}}', '"type"', null],
      [env({ type: '' }), '"type"', null],
      [env({ type: 5 }), '"type"', null],
      [env({ payload: [] }), '"payload"', 'ping'],
      [env({ payload: 'x' }), '"payload"', 'ping'],
      [env({ deviceId: 7 }), '"deviceId"', 'ping'],
      [env({ sessionId: 7 }), '"sessionId"', 'ping'],
      [env({ payload: { sessionId: {} } }), '"payload.sessionId"', 'ping'],
    ];
    for (const [data, names, type] of cases) {
      const r = parseInbound(data, MAX);
      assert.equal(r.ok, false, data);
      if (r.ok) continue;
      assert.equal(r.code, 'BAD_MESSAGE', data);
      assert.equal(r.type, type, data);
      assert.ok(r.message.includes(names), `${data}: ${r.message}`);
    }
  });

  test('a missing or non-1.x protoVersion is UNSUPPORTED_VERSION and keeps the type for the error reply', () => {
    for (const v of [undefined, null, '2.0', '2', '10.0', '1.x', 'v1', '', ' 1.0', 1, 1.0, {}]) {
      const r = parseInbound(env({ type: 'mark', protoVersion: v }), MAX);
      assert.equal(r.ok, false, String(v));
      if (r.ok) continue;
      assert.equal(r.code, 'UNSUPPORTED_VERSION', String(v));
      assert.equal(r.type, 'mark');
      assert.match(r.message, /"protoVersion"/);
    }
  });
});

describe('payload readers', () => {
  test('readPairAccept needs a non-empty key of at most 512 characters', () => {
    assert.deepEqual(value(readPairAccept({ deviceKey: 'a'.repeat(64), assignedName: 'Camera 3' })), { deviceKey: 'a'.repeat(64), assignedName: 'Camera 3' });
    assert.deepEqual(value(readPairAccept({ deviceKey: 'k' })), { deviceKey: 'k', assignedName: null });
    assert.equal(value(readPairAccept({ deviceKey: 'k'.repeat(512) })).deviceKey.length, 512);
    for (const deviceKey of [undefined, null, '', 5, 'k'.repeat(513)]) fails(readPairAccept({ deviceKey }), 'payload.deviceKey');
    fails(readPairAccept({ deviceKey: 'k', assignedName: 3 }), 'payload.assignedName');
  });

  test('readPairReject passes the reason through and defaults a missing one', () => {
    assert.deepEqual(value(readPairReject({ reason: 'expired' })), { reason: 'expired' });
    assert.deepEqual(value(readPairReject({})), { reason: 'unspecified' });
    fails(readPairReject({ reason: 42 }), 'payload.reason');
  });

  test('readStartRecord takes the session id from the top level or the payload and parses the profile', () => {
    const doc = { sessionId: 'session-001', profile: { resolution: '1080p', fps: 30, bitrate: 12000000 }, meta: { eventId: 'EVT01' } };
    assert.deepEqual(value(readStartRecord(doc)), {
      sessionId: 'session-001',
      profile: { width: 1920, height: 1080, fps: 30, bitrateBps: 12_000_000 },
      meta: { eventId: 'EVT01' },
    });
    assert.equal(value(readStartRecord({ sessionId: 'inner' }, 'top')).sessionId, 'top');
    assert.equal(value(readStartRecord({ sessionId: 'inner' }, null)).sessionId, 'inner');
    assert.deepEqual(value(readStartRecord({})), { sessionId: null, profile: null, meta: {} });
    assert.deepEqual(value(readStartRecord({ profile: {}, meta: null })).profile, { width: null, height: null, fps: null, bitrateBps: null });
    assert.deepEqual(value(readStartRecord({ profile: { fps: 59.94 } })).profile, { width: null, height: null, fps: 59.94, bitrateBps: null });
  });

  test('resolution names, 4K and WxH map to pixel sizes', () => {
    const table: Array<[string, [number, number] | null]> = [
      ['480p', [854, 480]],
      ['720p', [1280, 720]],
      ['1080p', [1920, 1080]],
      ['1080P', [1920, 1080]],
      ['1440p', [2560, 1440]],
      ['2160p', [3840, 2160]],
      ['4K', [3840, 2160]],
      ['4k', [3840, 2160]],
      ['1280x720', [1280, 720]],
      ['640X480', [640, 480]],
      ['8k', null],
      ['1080', null],
      ['0x0', null],
      ['99999x1', null],
      ['hd', null],
    ];
    for (const [s, want] of table) assert.deepEqual(parseResolution(s), want, s);
  });

  test('readStartRecord refuses bad profile fields and a non-object meta, naming them', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ profile: 'hd' }, 'payload.profile'],
      [{ profile: { resolution: '8k' } }, 'payload.profile.resolution'],
      [{ profile: { resolution: 1080 } }, 'payload.profile.resolution'],
      [{ profile: { fps: 0 } }, 'payload.profile.fps'],
      [{ profile: { fps: 241 } }, 'payload.profile.fps'],
      [{ profile: { fps: '30' } }, 'payload.profile.fps'],
      [{ profile: { bitrate: -1 } }, 'payload.profile.bitrate'],
      [{ profile: { bitrate: 0 } }, 'payload.profile.bitrate'],
      [{ meta: 'x' }, 'payload.meta'],
      [{ meta: [] }, 'payload.meta'],
      [{ sessionId: 5 }, 'payload.sessionId'],
    ];
    for (const [p, field] of cases) fails(readStartRecord(p), field);
  });

  test('readMark needs a mark id of 1 to 128 characters', () => {
    assert.deepEqual(value(readMark({ markId: 'MARK-00012', coordinatorTs: 1690000123456, note: 'Possible fall' })), {
      markId: 'MARK-00012',
      coordinatorTs: 1690000123456,
      note: 'Possible fall',
    });
    assert.deepEqual(value(readMark({ markId: 'M' })), { markId: 'M', coordinatorTs: null, note: null });
    for (const markId of [undefined, '', 7, 'm'.repeat(129)]) fails(readMark({ markId }), 'payload.markId');
    fails(readMark({ markId: 'M', coordinatorTs: 'now' }), 'payload.coordinatorTs');
    fails(readMark({ markId: 'M', note: {} }), 'payload.note');
  });

  test('readRequestClip reads both signs of fromMs as pre-roll and defaults quality to original', () => {
    const base = { markId: 'MARK-00012', toMs: 5000 };
    assert.deepEqual(value(readRequestClip({ ...base, fromMs: 10000 })), { markId: 'MARK-00012', fromMs: 10000, toMs: 5000, quality: 'original', clipId: null });
    assert.deepEqual(value(readRequestClip({ ...base, fromMs: -10000, quality: 'preview' })).fromMs, 10000);
    assert.equal(value(readRequestClip({ ...base, fromMs: -10000, quality: 'preview' })).quality, 'preview');
    assert.deepEqual(value(readRequestClip({ markId: 'M' })), { markId: 'M', fromMs: 10000, toMs: 5000, quality: 'original', clipId: null });
    assert.equal(value(readRequestClip({ ...base, clipId: 'CLIP-8891_a' })).clipId, 'CLIP-8891_a');
    assert.equal(value(readRequestClip({ markId: 'M', fromMs: 600_000, toMs: 600_000 })).toMs, 600_000);
    assert.equal(value(readRequestClip({ markId: 'M', fromMs: 0, toMs: 1 })).fromMs, 0);
  });

  test('readRequestClip refuses bad windows, qualities and clip ids, naming the field', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, 'payload.markId'],
      [{ markId: 'M', fromMs: '10000' }, 'payload.fromMs'],
      [{ markId: 'M', fromMs: 600_001 }, 'payload.fromMs'],
      [{ markId: 'M', fromMs: -600_001 }, 'payload.fromMs'],
      [{ markId: 'M', toMs: -1 }, 'payload.toMs'],
      [{ markId: 'M', toMs: 600_001 }, 'payload.toMs'],
      [{ markId: 'M', toMs: Number.NaN }, 'payload.toMs'],
      [{ markId: 'M', fromMs: 0, toMs: 0 }, 'payload.fromMs'],
      [{ markId: 'M', quality: 'high' }, 'payload.quality'],
      [{ markId: 'M', quality: 1 }, 'payload.quality'],
      [{ markId: 'M', clipId: '../etc/passwd' }, 'payload.clipId'],
      [{ markId: 'M', clipId: '' }, 'payload.clipId'],
      [{ markId: 'M', clipId: 'c'.repeat(129) }, 'payload.clipId'],
      [{ markId: 'M', clipId: 12 }, 'payload.clipId'],
    ];
    for (const [p, field] of cases) fails(readRequestClip(p), field);
  });

  test('readPing and readDisconnect accept their optional fields and refuse wrong types', () => {
    assert.deepEqual(value(readPing({ coordinatorTs: 1690000200000 })), { coordinatorTs: 1690000200000 });
    assert.deepEqual(value(readPing({})), { coordinatorTs: null });
    fails(readPing({ coordinatorTs: Infinity }), 'payload.coordinatorTs');
    assert.deepEqual(value(readDisconnect({ reason: 'unpaired' })), { reason: 'unpaired' });
    assert.deepEqual(value(readDisconnect({})), { reason: null });
    fails(readDisconnect({ reason: ['x'] }), 'payload.reason');
  });
});

describe('buildOutbound', () => {
  test('frames carry type, protoVersion, deviceId, the session id only when given, and the payload', () => {
    assert.equal(PROTO_VERSION, '1.0');
    assert.equal(buildOutbound('pong', 'arena-1', { deviceTs: 5 }), '{"type":"pong","protoVersion":"1.0","deviceId":"arena-1","payload":{"deviceTs":5}}');
    assert.equal(buildOutbound('pong', 'arena-1', {}, null), '{"type":"pong","protoVersion":"1.0","deviceId":"arena-1","payload":{}}');
    const framed = buildOutbound('mark_ack', 'arena-1', { markId: 'M1', deviceTs: 9 }, 'S1');
    assert.deepEqual(Object.keys(JSON.parse(framed)), ['type', 'protoVersion', 'deviceId', 'sessionId', 'payload']);
    assert.deepEqual(ok(framed), { type: 'mark_ack', protoVersion: '1.0', deviceId: 'arena-1', sessionId: 'S1', payload: { markId: 'M1', deviceTs: 9 } });
  });
});

describe('parsePairLink', () => {
  test('pairing links and plain WebSocket URLs give a URL and a token', () => {
    const table: Array<[string, string, string]> = [
      ['var://pair?host=192.168.1.23&port=8765&token=abcd12', 'ws://192.168.1.23:8765/ws', 'ABCD12'],
      ['var://pair?host=192.168.1.23&token=ABCD12', 'ws://192.168.1.23:8765/ws', 'ABCD12'],
      ['var://pair?host=10.0.0.1&port=9001&token=Q7RT', 'ws://10.0.0.1:9001/ws', 'Q7RT'],
      ['  var://pair?token=XYZ234&host=coordinator.local&port=8765\n', 'ws://coordinator.local:8765/ws', 'XYZ234'],
      ['var://pair/?host=laptop&port=8765&token=ABCDEF', 'ws://laptop:8765/ws', 'ABCDEF'],
      ['VAR://PAIR?host=10.0.0.1&token=ABCDEF', 'ws://10.0.0.1:8765/ws', 'ABCDEF'],
      ['var://pair?host=fe80::1&port=8765&token=ABCDEF', 'ws://[fe80::1]:8765/ws', 'ABCDEF'],
      ['var://pair?host=%5B::1%5D&token=ABCDEF', 'ws://[::1]:8765/ws', 'ABCDEF'],
      ['var://pair?host=%3A%3A1&token=ABCDEF', 'ws://[::1]:8765/ws', 'ABCDEF'],
      [`var://pair?host=h&token=${'a'.repeat(64)}`, 'ws://h:8765/ws', 'A'.repeat(64)],
      ['ws://192.168.1.23:8765/ws', 'ws://192.168.1.23:8765/ws', ''],
      ['wss://coord.example/ws', 'wss://coord.example/ws', ''],
      // A typed address (INTEROP: "or from a typed IP"): no token, so it can only authenticate with a key.
      ['192.168.1.23', 'ws://192.168.1.23:8765/ws', ''],
      ['coordinator-pc.local:9000', 'ws://coordinator-pc.local:9000/ws', ''],
    ];
    for (const [link, url, token] of table) assert.deepEqual(parsePairLink(link), { url, token }, link);
  });

  test('bad links give an error naming what is wrong', () => {
    const table: Array<[string, RegExp]> = [
      ['', /not a URL/],
      ['192.168.1.23:99999', /port/],
      ['999.1.1.1', /not a URL/],
      ['http://192.168.1.23:8765/ws', /unsupported scheme "http"/],
      ['var://other?host=h&token=ABCD', /var:\/\/pair/],
      ['var://pair/x?host=h&token=ABCD', /var:\/\/pair/],
      ['var://pair?port=8765&token=ABCD', /no "host"/],
      ['var://pair?host=&token=ABCD', /no "host"/],
      ['var://pair?host=bad%20host!&token=ABCD', /"host"/],
      ['var://pair?host=999.1.1.1&token=ABCD', /"host"/],
      ['var://pair?host=fe80::1%25eth0&token=ABCD', /zone/],
      ['var://pair?host=h&port=abc&token=ABCD', /"port"/],
      ['var://pair?host=h&port=0&token=ABCD', /"port"/],
      ['var://pair?host=h&port=65536&token=ABCD', /"port"/],
      ['var://pair?host=h&port=-1&token=ABCD', /"port"/],
      ['var://pair?host=h&port=8765', /no "token"/],
      ['var://pair?host=h&token=', /no "token"/],
      ['var://pair?host=h&token=ABC', /"token"/],
      ['var://pair?host=h&token=AB-CD', /"token"/],
      [`var://pair?host=h&token=${'A'.repeat(65)}`, /"token"/],
      ['ws://user:pw@h:8765/ws', /credentials/],
    ];
    for (const [link, re] of table) {
      const r = parsePairLink(link);
      assert.ok('error' in r, `${link} should fail, got ${JSON.stringify(r)}`);
      assert.match(r.error, re, link);
    }
  });
});

describe('against the coordinator test peer', () => {
  test('every message the coordinator peer sends parses, and its readers accept the payloads', async () => {
    const c = await startCoordinator();
    const ws = new WebSocket(c.url);
    const inbox: string[] = [];
    ws.on('message', (d) => inbox.push(String(d)));
    try {
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const link = parsePairLink(c.pairLink(c.newToken()));
      assert.ok('url' in link);
      assert.equal(link.url, c.url);
      const send = (type: string, payload: object, sessionId?: string): void => ws.send(buildOutbound(type, 'arena-1', payload, sessionId));
      send('hello', { deviceName: 'arena-1', platform: 'linux' });
      send('pair_request', { pairToken: link.token, deviceName: 'arena-1' });
      await c.waitFor((m) => m.type === 'pair_request');
      c.startRecord('arena-1', 'S1');
      c.startRecord('arena-1', 'S2', { resolution: '720p' }, {}, 'top');
      send('recording_started', { startedAt: Date.now() }, 'S2');
      await c.waitFor((m) => m.type === 'recording_started');
      assert.ok(c.mark('arena-1', 'M1', 'fall'));
      void c.requestClip('arena-1', 'M1', { timeoutMs: 50 }).catch(() => undefined);
      void c.ping('arena-1').catch(() => undefined);
      c.disconnect('arena-1', 'unpaired');
      const wantTypes = ['pair_accept', 'start_record', 'start_record', 'mark', 'request_clip', 'ping', 'disconnect'];
      for (let end = Date.now() + 3000; inbox.length < wantTypes.length && Date.now() < end; ) await new Promise((r) => setTimeout(r, 5));
      const msgs = inbox.map((d) => ok(d));
      assert.deepEqual(msgs.map((m) => m.type), wantTypes);
      const [accept, start1, start2, mark, clip, ping, bye] = msgs;
      assert.match(value(readPairAccept(accept.payload)).deviceKey, /^[0-9a-f]{64}$/);
      assert.equal(value(readStartRecord(start1.payload, start1.sessionId)).sessionId, 'S1');
      assert.deepEqual(value(readStartRecord(start2.payload, start2.sessionId)).profile, { width: 1280, height: 720, fps: null, bitrateBps: null });
      assert.equal(value(readStartRecord(start2.payload, start2.sessionId)).sessionId, 'S2');
      assert.equal(value(readMark(mark.payload)).note, 'fall');
      assert.equal(mark.sessionId, 'S2');
      assert.deepEqual(value(readRequestClip(clip.payload)), { markId: 'M1', fromMs: 10000, toMs: 5000, quality: 'original', clipId: null });
      assert.equal(typeof value(readPing(ping.payload)).coordinatorTs, 'number');
      assert.equal(value(readDisconnect(bye.payload)).reason, 'unpaired');
      for (const m of msgs) assert.equal(m.deviceId, 'coordinator');
    } finally {
      ws.terminate();
      await c.close();
    }
  });
});
