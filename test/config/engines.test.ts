/**
 * Every installed package must run on the Node this device ships with (Debian trixie and
 * Raspberry Pi OS trixie: 20.19). An upgrade that pulls a dependency declaring a newer Node
 * (as light-my-request 6.8 did with cookie 2, "node >= 22") fails here instead of on a unit.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const TARGET = [20, 19, 0] as const;
const LOCK = fileURLToPath(new URL('../../../package-lock.json', import.meta.url));

type V = [number, number, number];

/** "20", "20.19", "10.x", "0.6.x" → [major, minor, patch] with missing or x parts as 0, and how many parts were given. */
function parseVersion(text: string): { v: V; parts: number } | null {
  const m = /^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(text);
  if (!m) return null;
  const given = [m[1], m[2], m[3]].filter((p) => p !== undefined && p !== 'x' && p !== '*');
  return { v: [Number(m[1]), Number(given[1] ?? 0), Number(given[2] ?? 0)], parts: given.length };
}

const cmp = (a: readonly number[], b: readonly number[]): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** Does `version` satisfy one comparator ("&gt;=18.0.0", "^18.19.0", "&lt;7", "*")? Unknown syntax throws. */
function satisfiesComparator(version: readonly number[], c: string): boolean {
  if (c === '*' || c === '') return true;
  const m = /^(>=|<=|>|<|=|\^|~)?(.+)$/.exec(c);
  const parsed = m && parseVersion(m[2]);
  if (!m || !parsed) throw new Error(`unknown engines comparator "${c}"`);
  const { v, parts } = parsed;
  const d = cmp(version, v);
  switch (m[1]) {
    case '>=':
      return d >= 0;
    case '>':
      return d > 0;
    case '<=':
      return d <= 0;
    case '<':
      return d < 0;
    case '^':
      return d >= 0 && (v[0] > 0 ? version[0] === v[0] : version[0] === 0 && version[1] === v[1]);
    case '~':
      return d >= 0 && version[0] === v[0] && (parts < 2 || version[1] === v[1]);
    default:
      return parts === 1 ? version[0] === v[0] : parts === 2 ? version[0] === v[0] && version[1] === v[1] : d === 0;
  }
}

/** Does `version` satisfy an npm range ("&gt;=6 &lt;7 || &gt;=8", "^18.19.0 || &gt;=20.5.0", "&gt;= 10.x")? */
export function satisfies(version: readonly number[], range: string): boolean {
  return range.split('||').some((alt) => {
    const comparators = alt.trim().replace(/([<>=^~]+)\s+/g, '$1').split(/\s+/);
    return comparators.every((c) => satisfiesComparator(version, c));
  });
}

test('the range reader agrees with npm on the forms in use', () => {
  const v = TARGET;
  for (const r of ['>=20.19', '>=18', '>= 10.x', '^18.19.0 || >=20.5.0', '>=6 <7 || >=8', '*', '>=0.6.x', '^20.1.0', '~20.19.0', '20']) {
    assert.equal(satisfies(v, r), true, r);
  }
  for (const r of ['>=22', '>= 22.0.0', '^18.19.0', '>=6 <7', '~20.18.0', '<20', '>20.19.0', '21']) assert.equal(satisfies(v, r), false, r);
  assert.throws(() => satisfies(v, 'node >= 8'), /unknown engines comparator/);
});

test('every package in the lock file supports Node 20.19', () => {
  const lock = JSON.parse(readFileSync(LOCK, 'utf8')) as { packages: Record<string, { engines?: { node?: string } }> };
  const checked: string[] = [];
  const refused: string[] = [];
  for (const [path, pkg] of Object.entries(lock.packages)) {
    const range = pkg.engines?.node;
    if (!path || !range) continue;
    checked.push(path);
    if (!satisfies(TARGET, range)) refused.push(`${path.replace(/^.*node_modules\//, '')} needs node ${range}`);
  }
  assert.ok(checked.length > 50, `engines read from ${checked.length} packages`);
  assert.deepEqual(refused, [], 'dependencies that do not run on Node 20.19');
});
