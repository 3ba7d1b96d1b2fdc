/** Loading, validating and defaulting the configuration (file + ARENACAM_ environment). */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { schema, type Config, type Field } from './schema.js';

/** A configuration problem that names the offending key. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`config ${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Tree = { [k: string]: Field | Tree };
const isField = (v: unknown): v is Field =>
  typeof v === 'object' && v !== null && 'type' in v && 'default' in v && 'doc' in v;

/** The defaults as a plain config object. */
export function defaults(): Config {
  const build = (t: Tree): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(t).map(([k, v]) => [k, isField(v) ? structuredClone(v.default) : build(v)]),
    );
  return build(schema as unknown as Tree) as Config;
}

function checkLeaf(key: string, field: Field, value: unknown): unknown {
  const fail = (what: string): never => {
    throw new ConfigError(key, `${what} (got ${JSON.stringify(value)})`);
  };
  switch (field.type) {
    case 'string':
      if (typeof value !== 'string') fail('must be a string');
      break;
    case 'string|null':
      if (value !== null && typeof value !== 'string') fail('must be a string or null');
      break;
    case 'boolean':
      if (typeof value !== 'boolean') fail('must be true or false');
      break;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) fail('must be an integer');
      break;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) fail('must be a number');
      break;
    case 'string[]':
      if (!Array.isArray(value) || value.some((x) => typeof x !== 'string')) fail('must be an array of strings');
      break;
  }
  if (field.enum && !field.enum.includes(value as string)) fail(`must be one of ${field.enum.join(', ')}`);
  if (typeof value === 'number') {
    if (field.min !== undefined && value < field.min) fail(`must be >= ${field.min}`);
    if (field.max !== undefined && value > field.max) fail(`must be <= ${field.max}`);
  }
  return value;
}

/** Merge a partial config over the defaults, rejecting unknown keys and bad values. */
export function validate(input: unknown, base: Config = defaults()): Config {
  const walk = (t: Tree, inp: unknown, out: Record<string, unknown>, prefix: string): void => {
    if (inp === undefined || inp === null) return;
    if (typeof inp !== 'object' || Array.isArray(inp)) throw new ConfigError(prefix || '(root)', 'must be an object');
    for (const [k, v] of Object.entries(inp)) {
      const key = prefix ? `${prefix}.${k}` : k;
      const node = t[k];
      if (!node) throw new ConfigError(key, 'unknown key');
      if (isField(node)) out[k] = checkLeaf(key, node, v);
      else walk(node, v, out[k] as Record<string, unknown>, key);
    }
  };
  const out = structuredClone(base) as unknown as Record<string, unknown>;
  walk(schema as unknown as Tree, input, out, '');
  return out as unknown as Config;
}

function coerceEnv(key: string, field: Field, raw: string): unknown {
  switch (field.type) {
    case 'integer':
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError(key, `environment value ${JSON.stringify(raw)} is not a number`);
      return n;
    }
    case 'boolean':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new ConfigError(key, `environment value ${JSON.stringify(raw)} is not a boolean`);
    case 'string[]':
      try {
        return JSON.parse(raw);
      } catch {
        throw new ConfigError(key, 'environment value must be a JSON array of strings');
      }
    case 'string|null':
      return raw === '' || raw === 'null' ? null : raw;
    default:
      return raw;
  }
}

/** ARENACAM_MULTICAM_PORT=8081 → { multicam: { port: 8081 } }; unknown ARENACAM_ names are rejected. */
export function envOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const leaves: Array<[string[], Field]> = [];
  const collect = (t: Tree, path: string[]): void => {
    for (const [k, v] of Object.entries(t)) isField(v) ? leaves.push([[...path, k], v]) : collect(v, [...path, k]);
  };
  collect(schema as unknown as Tree, []);
  const envName = (p: string[]) => 'ARENACAM_' + p.map((s) => s.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
  const byName = new Map(leaves.map(([p, fld]) => [envName(p), [p, fld] as const]));
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('ARENACAM_') || raw === undefined) continue;
    if (name === 'ARENACAM_CONFIG') continue;
    const hit = byName.get(name);
    if (!hit) throw new ConfigError(name, 'unknown environment override');
    const [path, field] = hit;
    let node = out;
    for (const seg of path.slice(0, -1)) node = (node[seg] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1]] = coerceEnv(path.join('.'), field, raw);
  }
  return out;
}

/** Parse a YAML or JSON config file's text (YAML is a superset of JSON). */
export function parseConfigText(text: string, source: string): unknown {
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(source, `cannot parse: ${(err as Error).message}`);
  }
}

/** Load: defaults ← file (if given) ← environment overrides. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  let cfg = defaults();
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(file, `cannot read: ${(err as Error).message}`);
    }
    cfg = validate(parseConfigText(text, file), cfg);
  }
  return validate(envOverrides(env), cfg);
}
