/** Configuration: defaults declared once, unknown keys rejected by name, env overrides, files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { defaults, validate, envOverrides, loadConfig, ConfigError } from '../../src/config/load.js';
import { tempDir } from '../helpers/device.js';
import { parse as parseYaml } from 'yaml';

const EXAMPLE = fileURLToPath(new URL('../../../config/arenacam.example.yaml', import.meta.url));

test('the shipped example config equals the built-in defaults', async () => {
  assert.deepEqual(parseYaml(await readFile(EXAMPLE, 'utf8')), defaults());
});

test('the embedded default is a test-pattern camera with data in ./data, MultiCam on 8080 and HTTP on 9000', () => {
  const d = defaults();
  assert.equal(d.camera.source, 'testsrc');
  assert.equal(d.dataDir, './data');
  assert.equal(d.multicam.port, 8080);
  assert.equal(d.http.port, 9000);
});

test('an unknown key is rejected with its full path named', () => {
  assert.throws(() => validate({ camera: { fsp: 30 } }), (e: unknown) => e instanceof ConfigError && e.key === 'camera.fsp' && /unknown key/.test(e.message));
  assert.throws(() => validate({ cameras: {} }), /config cameras: unknown key/);
});

test('a wrongly typed or out-of-range value is rejected naming the key and the value', () => {
  assert.throws(() => validate({ multicam: { port: '8080' } }), /config multicam.port: must be an integer \(got "8080"\)/);
  assert.throws(() => validate({ multicam: { port: 70000 } }), /multicam.port: must be <= 65535/);
  assert.throws(() => validate({ camera: { source: 'webcam' } }), /camera.source: must be one of testsrc, v4l2, rpicam, ffmpeg/);
  assert.throws(() => validate({ camera: { input: ['-i', 3] } }), /camera.input: must be an array of strings/);
  assert.throws(() => validate({ camera: 5 }), /config camera: must be an object/);
});

test('ARENACAM_ environment variables override nested keys with typed values', () => {
  const o = envOverrides({ ARENACAM_MULTICAM_PORT: '8081', ARENACAM_MDNS_ENABLED: 'false', ARENACAM_CAMERA_INPUT: '["-i","x"]', ARENACAM_SEGMENTS_RETENTION_MINUTES: '2.5', PATH: '/bin' });
  assert.deepEqual(o, { multicam: { port: 8081 }, mdns: { enabled: false }, camera: { input: ['-i', 'x'] }, segments: { retentionMinutes: 2.5 } });
  assert.throws(() => envOverrides({ ARENACAM_MULTICAM_PROT: '1' }), /ARENACAM_MULTICAM_PROT: unknown environment override/);
  assert.throws(() => envOverrides({ ARENACAM_MULTICAM_PORT: 'eighty' }), /multicam.port: environment value "eighty" is not a number/);
});

test('a YAML file is layered over the defaults and the environment over the file', async (t) => {
  const tmp = await tempDir();
  t.after(() => tmp.cleanup());
  const file = join(tmp.dir, 'a.yaml');
  await writeFile(file, 'camera:\n  fps: 25\nmulticam:\n  port: 9090\n');
  const cfg = loadConfig(file, { ARENACAM_MULTICAM_PORT: '9191' });
  assert.equal(cfg.camera.fps, 25);
  assert.equal(cfg.camera.width, 1280);
  assert.equal(cfg.multicam.port, 9191);
  await writeFile(file, 'camera: [unclosed');
  assert.throws(() => loadConfig(file, {}), /cannot parse/);
  assert.throws(() => loadConfig(join(tmp.dir, 'missing.yaml'), {}), /cannot read/);
});
