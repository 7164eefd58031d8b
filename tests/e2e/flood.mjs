#!/usr/bin/env node
// flood.mjs: push many OTLP/HTTP JSON requests at traced concurrently and record which were
// accepted (200), refused (503, overload) or answered otherwise. No retries: every request is
// sent exactly once, so the caller can check that accepted traces are queryable and refused
// ones were not half-written.
//
// Usage:
//   node flood.mjs --endpoint http://127.0.0.1:4318/v1/traces --requests N
//                  --spans-per-request M --concurrency C --out result.json
//                  [--timeout-ms 60000] [--service flood] [--header 'Name: value' ...]
//
// Each request carries one ResourceSpans (service.name = --service) with M spans of one new
// random trace id (a root span and M-1 children; every span id is unique across the run).
// result.json:
//   { accepted: [traceId of each 200], refused: [traceId of each 503],
//     other: [{traceId, status, body, retryAfter?}],   // status 0 = network error / timeout
//     spansPerRequest: M, requests: N, concurrency: C,
//     retryAfter: [Retry-After header of each 503, null when absent],
//     statusCounts: {"200": n, "503": n, ...}, elapsedMs, timedOut }
// The whole run is bounded by --timeout-ms (default 60 s): requests still in flight are aborted
// and requests not yet started are recorded in `other` with status 0. Exit code 0 whenever
// result.json was written (2 on usage errors).

import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

function usage(msg) {
  if (msg) console.error(`flood: ${msg}`);
  console.error('usage: node flood.mjs --endpoint http://127.0.0.1:4318/v1/traces --requests N ' +
    '--spans-per-request M --concurrency C --out result.json [--timeout-ms 60000] [--service NAME] [--header "Name: value"]...');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      endpoint: { type: 'string' },
      requests: { type: 'string' },
      'spans-per-request': { type: 'string' },
      concurrency: { type: 'string', default: '8' },
      out: { type: 'string' },
      'timeout-ms': { type: 'string', default: '60000' },
      service: { type: 'string', default: 'flood' },
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
if (!args.endpoint) usage('--endpoint is required');
if (!args.out) usage('--out is required');
const posInt = (name) => {
  const n = Number(args[name]);
  if (args[name] === undefined || !Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer`);
  return n;
};
const N = posInt('requests');
const M = posInt('spans-per-request');
const C = Math.min(posInt('concurrency'), N);
const timeoutMs = posInt('timeout-ms');
let endpoint;
try {
  const u = new URL(args.endpoint);
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/traces';
  endpoint = u.toString();
} catch {
  usage(`bad --endpoint URL: ${args.endpoint}`);
}
const headers = { 'Content-Type': 'application/json' };
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header (want "Name: value"): ${h}`);
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}

// ---------------------------------------------------------------------------------------
const usedSpanIds = new Set();
function newSpanId() {
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (id !== '0000000000000000' && !usedSpanIds.has(id)) { usedSpanIds.add(id); return id; }
  }
}
const usedTraceIds = new Set();
function newTraceId() {
  for (;;) {
    const id = randomBytes(16).toString('hex');
    if (!/^0+$/.test(id) && !usedTraceIds.has(id)) { usedTraceIds.add(id); return id; }
  }
}

const runStartNs = BigInt(Date.now()) * 1_000_000n;
const str = (key, v) => ({ key, value: { stringValue: v } });
const int = (key, v) => ({ key, value: { intValue: String(v) } });

function buildRequest(index) {
  const traceId = newTraceId();
  const start = runStartNs - 5_000_000_000n + BigInt(index) * 1000n; // 5 s ago, distinct per request
  const rootId = newSpanId();
  const spans = [];
  for (let j = 0; j < M; j++) {
    const spanId = j === 0 ? rootId : newSpanId();
    const s = BigInt(j) * 1_000_000n;             // child j starts j ms after the root
    const dur = j === 0 ? BigInt(M + 10) * 1_000_000n : 500_000n;
    spans.push({
      traceId,
      spanId,
      parentSpanId: j === 0 ? '' : rootId,
      name: j === 0 ? `flood request ${index}` : `flood child ${j}`,
      kind: j === 0 ? 2 : 1,
      startTimeUnixNano: (start + s).toString(),
      endTimeUnixNano: (start + s + dur).toString(),
      attributes: [int('flood.request', index), int('flood.span', j), str('flood.kind', j === 0 ? 'root' : 'child')],
      status: {},
    });
  }
  const body = JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [str('service.name', args.service), str('deployment.environment', 'e2e')] },
      scopeSpans: [{ scope: { name: 'e2e.flood', version: '1.0.0' }, spans }],
    }],
  });
  return { traceId, body };
}

// ---------------------------------------------------------------------------------------
const result = {
  accepted: [],
  refused: [],
  other: [],
  spansPerRequest: M,
  requests: N,
  concurrency: C,
  retryAfter: [],
  statusCounts: {},
  elapsedMs: 0,
  timedOut: false,
};
const overall = new AbortController();
const t0 = Date.now();
const timer = setTimeout(() => { result.timedOut = true; overall.abort(new Error('overall timeout')); }, timeoutMs);

function count(status) {
  result.statusCounts[status] = (result.statusCounts[status] ?? 0) + 1;
}

async function sendOne(index) {
  const { traceId, body } = buildRequest(index);
  if (overall.signal.aborted) {
    count(0);
    result.other.push({ traceId, status: 0, body: 'not sent: overall timeout' });
    return;
  }
  try {
    const res = await fetch(endpoint, { method: 'POST', headers, body, signal: overall.signal });
    const text = await res.text(); // always drain so the connection can be reused
    count(res.status);
    if (res.status === 200) {
      result.accepted.push(traceId);
    } else if (res.status === 503) {
      result.refused.push(traceId);
      result.retryAfter.push(res.headers.get('retry-after'));
    } else {
      const entry = { traceId, status: res.status, body: text.slice(0, 500) };
      const ra = res.headers.get('retry-after');
      if (ra !== null) entry.retryAfter = ra;
      result.other.push(entry);
    }
  } catch (e) {
    count(0);
    const why = overall.signal.aborted ? 'aborted: overall timeout' : `${e.cause?.code ?? ''} ${e.cause?.message ?? e.message}`.trim();
    result.other.push({ traceId, status: 0, body: why });
  }
}

let next = 0;
async function worker() {
  while (next < N) {
    const i = next++;
    await sendOne(i);
  }
}
await Promise.all(Array.from({ length: C }, worker));
clearTimeout(timer);
result.elapsedMs = Date.now() - t0;

writeFileSync(args.out, JSON.stringify(result, null, 1) + '\n');
console.log(`flood: ${N} requests x ${M} spans, concurrency ${C}, ${result.elapsedMs} ms: ` +
  `accepted ${result.accepted.length}, refused(503) ${result.refused.length}, other ${result.other.length}` +
  `${result.timedOut ? ' (overall timeout hit)' : ''}; statuses ${JSON.stringify(result.statusCounts)}; wrote ${args.out}`);
process.exit(0);
