#!/usr/bin/env node
// count_spans.mjs: fetch many traces from traced's Tempo v2 API and check how many spans each has.
//
// Usage:
//   node count_spans.mjs --base http://127.0.0.1:3200 --ids FILE [--field accepted] --want N
//                        [--max 500] [--concurrency 8] [--timeout-ms 30000] [--header 'Name: value' ...]
//
//   --ids FILE    a JSON file: either an array of hex trace ids, or an object whose --field is one
//                 (e.g. flood.mjs's result.json with --field accepted, refused or other; objects
//                 with a traceId are accepted as elements)
//   --want N      spans every trace must have (0 = the trace must be absent: v2 answers an empty trace);
//                 a comma list such as 0,500 accepts any of the counts (all-or-nothing checks)
//   --max         check at most this many ids (the first ones); the run is bounded by --timeout-ms
//
// Each id gets GET /api/v2/traces/<id> (Accept: application/json); spans are counted over
// trace.resourceSpans[].scopeSpans[].spans[]. No polling: call it after ingest has been flushed
// (e.g. traced_spans_written_total == accepted). Prints a summary line; exit 0 if every trace had
// exactly N spans, 1 otherwise (listing up to 10 offenders), 2 on usage errors.

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';

function usage(msg) {
  if (msg) console.error(`count_spans: ${msg}`);
  console.error('usage: node count_spans.mjs --base URL --ids FILE [--field NAME] --want N [--max N] [--concurrency N] [--timeout-ms N] [--header "Name: value"]...');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      base: { type: 'string' },
      ids: { type: 'string' },
      field: { type: 'string' },
      want: { type: 'string' },
      max: { type: 'string', default: '500' },
      concurrency: { type: 'string', default: '8' },
      'timeout-ms': { type: 'string', default: '30000' },
      header: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage(e.message);
}
if (args.help) usage();
if (!args.base || !args.ids || args.want === undefined) usage('--base, --ids and --want are required');
const wants = String(args.want).split(',').map(Number);
const want = wants[0];
const max = Number(args.max);
const conc = Number(args.concurrency);
const timeoutMs = Number(args['timeout-ms']);
if (![...wants, max, conc, timeoutMs].every((n) => Number.isInteger(n) && n >= 0) || conc < 1) usage('bad numeric option');
const headers = { Accept: 'application/json' };
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header: ${h}`);
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}

let ids = JSON.parse(readFileSync(args.ids, 'utf8'));
if (args.field) ids = ids[args.field];
if (!Array.isArray(ids)) usage('--ids must name an array of trace ids');
ids = ids.map((x) => (typeof x === 'string' ? x : x?.traceId)).slice(0, max); // flood.mjs `other` holds objects
const base = args.base.replace(/\/+$/, '');

const abort = new AbortController();
const timer = setTimeout(() => abort.abort(new Error('overall timeout')), timeoutMs);
const bad = [];
let checked = 0;

async function one(id) {
  try {
    const res = await fetch(`${base}/api/v2/traces/${id}`, { headers, signal: abort.signal });
    const text = await res.text();
    if (res.status !== 200) { bad.push(`${id}: HTTP ${res.status} ${text.slice(0, 200)}`); return; }
    const j = JSON.parse(text);
    let n = 0;
    for (const rs of j.trace?.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) n += (ss.spans ?? []).length;
    if (!wants.includes(n)) bad.push(`${id}: ${n} spans, want ${wants.join(' or ')}`);
  } catch (e) {
    bad.push(`${id}: ${e.message}`);
  } finally {
    checked++;
  }
}

let next = 0;
await Promise.all(Array.from({ length: Math.min(conc, ids.length || 1) }, async () => {
  while (next < ids.length) await one(ids[next++]);
}));
clearTimeout(timer);
console.log(`count_spans: ${checked} trace(s) checked, want ${wants.join(' or ')} spans each, ${bad.length} bad`);
for (const b of bad.slice(0, 10)) console.log(`  ${b}`);
process.exit(bad.length === 0 ? 0 : 1);
