// Regenerates config/arenacam.example.yaml from the schema (after npm run build): node scripts/gen-example-config.mjs > config/arenacam.example.yaml
import { schema } from '../dist/src/config/schema.js';
const lines = ['# arenacam configuration: every key with its default (this file equals the built-in defaults).', '# Copy it to /etc/arenacam/arenacam.yaml (or pass --config) and change what you need.', '# Any key can also be set from the environment: ARENACAM_<PATH_IN_UPPER_SNAKE_CASE>.', ''];
const isField = (v) => v && typeof v === 'object' && 'type' in v && 'doc' in v;
const fmt = (v) => v === null ? 'null' : Array.isArray(v) ? JSON.stringify(v) : typeof v === 'string' ? JSON.stringify(v) : String(v);
function walk(t, ind) {
  for (const [k, v] of Object.entries(t)) {
    if (isField(v)) { lines.push(`${ind}# ${v.doc}${v.enum ? ` (${v.enum.join(' | ')})` : ''}`); lines.push(`${ind}${k}: ${fmt(v.default)}`); }
    else { lines.push(`${ind}${k}:`); walk(v, ind + '  '); }
  }
}
walk(schema, '');
process.stdout.write(lines.join('\n') + '\n');
