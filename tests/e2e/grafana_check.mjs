#!/usr/bin/env node
// grafana_check.mjs: drive traced's query port with exactly the requests Grafana's Tempo
// datasource makes (API-CONTRACT §3.11) against a corpus written by otel_corpus.mjs, and check
// every answer against expectations computed here from the corpus description alone.
//
// Usage: node grafana_check.mjs --base http://127.0.0.1:PORT --corpus corpus.json [--only PART,...]
// PARTS: basics, trace, search, stream, tags, metrics (default: all).
// Prints one line per check, "ok   <what>" or "FAIL <what>: <details>"; exit 0 when all passed.

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import grpc from '@grpc/grpc-js';

const args = parseArgs({
  options: { base: { type: 'string' }, corpus: { type: 'string' }, only: { type: 'string', default: '' } },
  strict: true,
}).values;
if (!args.base || !args.corpus) {
  console.error('usage: node grafana_check.mjs --base URL --corpus corpus.json [--only parts]');
  process.exit(2);
}
const base = args.base.replace(/\/+$/, '');
const target = new URL(base).host;
const corpus = JSON.parse(readFileSync(args.corpus, 'utf8'));
const only = new Set(args.only ? args.only.split(',') : []);
const want = (part) => only.size === 0 || only.has(part);
const S = corpus.services;

let failures = 0;
function ok(what) { console.log(`ok   ${what}`); }
function bad(what, details) { failures++; console.log(`FAIL ${what}: ${details}`); }
function eq(what, got, exp) {
  const g = JSON.stringify(got), e = JSON.stringify(exp);
  if (g === e) ok(what); else bad(what, `got ${g.slice(0, 400)}, want ${e.slice(0, 400)}`);
}
function truthy(what, cond, details = '') { if (cond) ok(what); else bad(what, details); }

// ---- the corpus, by trace -------------------------------------------------------------------
const traces = new Map();
for (const s of corpus.spans) {
  if (!traces.has(s.traceId)) traces.set(s.traceId, []);
  traces.get(s.traceId).push(s);
}
const startOf = (spans) => spans.reduce((m, s) => (BigInt(s.startNs) < m ? BigInt(s.startNs) : m), BigInt(spans[0].startNs));
const endOf = (spans) => spans.reduce((m, s) => (BigInt(s.endNs) > m ? BigInt(s.endNs) : m), 0n);
const minStart = [...traces.values()].reduce((m, sp) => (startOf(sp) < m ? startOf(sp) : m), BigInt(Date.now()) * 1_000_000n);
const START = Number(minStart / 1_000_000_000n) - 60;
const END = Math.ceil(Date.now() / 1000) + 60;
const rootOf = (spans) => spans.find((s) => !s.parentSpanId);
// trace IDs whose spans satisfy pred (some span), newest first
function tracesWhere(pred) {
  return [...traces.entries()].filter(([, sp]) => sp.some(pred))
    .sort((a, b) => (startOf(b[1]) > startOf(a[1]) ? 1 : -1)).map(([id]) => id);
}
const durNs = (s) => BigInt(s.endNs) - BigInt(s.startNs);

// ---- HTTP -------------------------------------------------------------------------------------
async function get(path, headers = {}) {
  const r = await fetch(base + path, { headers, signal: AbortSignal.timeout(20000) });
  const buf = Buffer.from(await r.arrayBuffer());
  return { status: r.status, ctype: r.headers.get('content-type') || '', buf, text: buf.toString('utf8') };
}
async function getJSON(what, path) {
  const r = await get(path, { Accept: 'application/json' });
  if (r.status !== 200) { bad(what, `HTTP ${r.status}: ${r.text.slice(0, 300)}`); return null; }
  try { return JSON.parse(r.text); } catch (e) { bad(what, `not JSON: ${r.text.slice(0, 200)}`); return null; }
}
const qs = (o) => Object.entries(o).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');

// ---- protobuf (only what the checks need) ---------------------------------------------------
function readFields(buf) {
  const out = [];
  let i = 0;
  const varint = () => {
    let v = 0n, shift = 0n;
    for (;;) {
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const num = key >>> 3, wt = key & 7;
    if (wt === 0) out.push({ num, wt, v: varint() });
    else if (wt === 2) { const n = Number(varint()); out.push({ num, wt, b: buf.subarray(i, i + n) }); i += n; }
    else if (wt === 1) { out.push({ num, wt, b: buf.subarray(i, i + 8) }); i += 8; }
    else if (wt === 5) { out.push({ num, wt, b: buf.subarray(i, i + 4) }); i += 4; }
    else throw new Error(`wire type ${wt}`);
  }
  return out;
}
function pbVarint(n) {
  let v = BigInt(n);
  const out = [];
  do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; out.push(b); } while (v);
  return Buffer.from(out);
}
const pbStr = (num, s) => { const b = Buffer.from(s); return Buffer.concat([pbVarint((num << 3) | 2), pbVarint(b.length), b]); };
const pbU = (num, v) => Buffer.concat([pbVarint(num << 3), pbVarint(v)]);
function countTraceSpans(traceBuf) { // tempopb.Trace: resourceSpans(1) > scopeSpans(2) > spans(2)
  let n = 0;
  for (const rs of readFields(traceBuf).filter((f) => f.num === 1)) {
    for (const ss of readFields(rs.b).filter((f) => f.num === 2)) n += readFields(ss.b).filter((f) => f.num === 2).length;
  }
  return n;
}

// ---- gRPC (h2c on the query port, like Grafana's streaming client) ----------------------------
function stream(path, request) {
  return new Promise((resolve) => {
    const client = new grpc.Client(target, grpc.credentials.createInsecure());
    const msgs = [];
    const call = client.makeServerStreamRequest(path, (b) => b, (b) => b, request, new grpc.Metadata(),
      { deadline: Date.now() + 20000 });
    call.on('data', (m) => msgs.push(Buffer.from(m)));
    call.on('error', (e) => { client.close(); resolve({ code: e.code, details: e.details, msgs }); });
    call.on('status', (st) => { if (st.code === 0) { client.close(); resolve({ code: 0, msgs }); } });
  });
}

// ---- 1. datasource basics --------------------------------------------------------------------
async function basics() {
  const bi = await getJSON('GET /api/status/buildinfo', '/api/status/buildinfo');
  if (bi) truthy('buildinfo has a version', typeof bi.version === 'string' && bi.version.length > 0, JSON.stringify(bi));
  const echo = await get('/api/echo');
  eq('Save & test without streaming: GET /api/echo -> 200', echo.status, 200);
  const st = await stream('/tempopb.StreamingQuerier/Search', Buffer.concat([
    pbStr(8, '{}'), pbU(4, 1), pbU(5, Math.floor(Date.now() / 1000) - 900), pbU(6, Math.floor(Date.now() / 1000)), pbU(9, 3)]));
  eq('Save & test with streaming: Search {} over 15 min, limit 1 -> OK', st.code, 0);
  const ntr = st.msgs.reduce((n, m) => n + readFields(m).filter((f) => f.num === 1).length, 0);
  eq('... one trace, in messages that all carry metrics', [ntr, st.msgs.length > 0 && st.msgs.every((m) => readFields(m).some((f) => f.num === 2))], [1, true]);
}

// ---- 2. trace by ID, the way Grafana's backend asks ------------------------------------------
async function traceById() {
  const [id, spans] = [...traces.entries()][0];
  const r = await get(`/api/v2/traces/${id}`, { Accept: 'application/protobuf' });
  eq('trace by ID: GET /api/v2/traces/{id} (protobuf) -> 200 application/protobuf', [r.status, r.ctype], [200, 'application/protobuf']);
  const f1 = readFields(r.buf).find((f) => f.num === 1);
  eq('... TraceByIDResponse.trace holds every span', f1 ? countTraceSpans(f1.b) : -1, spans.length);
  const missing = '0123456789abcdef0123456789abcdef';
  const r2 = await get(`/api/v2/traces/${missing}`, { Accept: 'application/protobuf' });
  eq('unknown trace, v2: 200 with an empty trace (0a 00 first)', [r2.status, r2.buf.subarray(0, 2).toString('hex')], [200, '0a00']);
  const r3 = await get(`/api/traces/${missing}`, { Accept: 'application/protobuf' });
  eq('unknown trace, v1 fallback: 404', r3.status, 404);
  const r4 = await get(`/api/traces/${id}`, { Accept: 'application/protobuf' });
  eq('v1 (protobuf tempopb.Trace) holds every span', r4.status === 200 ? countTraceSpans(r4.buf) : r4.status, spans.length);
}

// ---- 3. search (TraceQL tab, Search builder), non-streaming and streaming ---------------------
const QUERIES = [
  [`{ resource.service.name = "${S.pay}" && status = error }`, (s) => s.service === S.pay && s.status === 'error'],
  ['{ span.http.status_code >= 500 }', (s) => Number(s.attrs['http.status_code']) >= 500],
  ['{ duration > 1s }', (s) => durNs(s) > 1_000_000_000n],
  [`{ (resource.service.name = "${S.cart}" || resource.service.name = "${S.pay}") && span.region = "us" }`,
    (s) => (s.service === S.cart || s.service === S.pay) && s.attrs.region === 'us'],
  [`{ resource.service.name =~ "${S.shop}|${S.pay}" && kind = client }`, (s) => (s.service === S.shop || s.service === S.pay) && s.kind === 'client'],
  ['{ span.cart.items = 3 }', (s) => s.attrs['cart.items'] === 3],
  [`{ resource.e2e.corpus = "${corpus.tag}" && name = "charge" && status != error }`, (s) => s.name === 'charge' && s.status !== 'error'],
];
async function search() {
  for (const [q, pred] of QUERIES) {
    const exp = tracesWhere(pred);
    const j = await getJSON(`search ${q}`, `/api/search?${qs({ q, limit: 20, spss: 3, start: START, end: END })}`);
    if (!j) continue;
    eq(`search ${q}: the ${exp.length} expected traces, newest first`, j.traces.map((t) => t.traceID.padStart(32, '0')), exp);
    const t0 = j.traces[0];
    if (t0) {
      const sp = traces.get(t0.traceID.padStart(32, '0'));
      const root = sp && rootOf(sp);
      eq(`... root service/name, start, duration of the first`, [t0.rootServiceName, t0.rootTraceName, t0.startTimeUnixNano, t0.durationMs],
        [root.service, root.name, startOf(sp).toString(), Number((endOf(sp) - startOf(sp)) / 1_000_000n)]);
      const m = sp.filter(pred);
      const ids = new Set(m.map((x) => x.spanId));
      const got = t0.spanSet.spans.map((x) => x.spanID);
      eq('... spanSet/spanSets[0]: matched counts all matching spans, spss=3 of them listed',
        [t0.spanSet.matched, t0.spanSets[0].matched, got.length, got.every((x) => ids.has(x))],
        [m.length, m.length, Math.min(3, m.length), true]);
    }
  }
  // no filter: the 20 newest traces
  const all = tracesWhere(() => true);
  const j = await getJSON('search {} limit 20', `/api/search?${qs({ q: '{}', limit: 20, spss: 3, start: START, end: END })}`);
  if (j) eq('search {} limit 20: the 20 newest traces', j.traces.map((t) => t.traceID.padStart(32, '0')), all.slice(0, 20));
  // legacy tags (older Grafana search tab)
  const lt = await getJSON('legacy tags search', `/api/search?${qs({ tags: `service.name=${S.pay} status.code=error`, limit: 20, start: START, end: END })}`);
  if (lt) eq('legacy tags=service.name=.. status.code=error', lt.traces.map((t) => t.traceID.padStart(32, '0')).sort(),
    tracesWhere((s) => s.service === S.pay && s.status === 'error').sort());
  const md = await getJSON('legacy minDuration', `/api/search?${qs({ tags: `service.name=${S.shop}`, minDuration: '1s', limit: 20, start: START, end: END })}`);
  if (md) eq('legacy minDuration=1s (trace duration)', md.traces.map((t) => t.traceID.padStart(32, '0')).sort(),
    [...traces.entries()].filter(([, sp]) => endOf(sp) - startOf(sp) >= 1_000_000_000n).map(([id]) => id).sort());
  // bad TraceQL → 400 with the parser's position
  const e = await get(`/api/search?${qs({ q: '{ .a = }', start: START, end: END })}`);
  truthy('bad TraceQL -> 400 "invalid TraceQL query: ... line 1, col"', e.status === 400 && /invalid TraceQL query: .*line 1, col/.test(e.text), `${e.status} ${e.text}`);
}

async function streamSearch() {
  for (const [q, pred] of QUERIES.slice(0, 3)) {
    const st = await stream('/tempopb.StreamingQuerier/Search', Buffer.concat([
      pbStr(8, q), pbU(4, 20), pbU(5, START), pbU(6, END), pbU(9, 3)]));
    const ids = [];
    for (const m of st.msgs) {
      for (const t of readFields(m).filter((f) => f.num === 1)) {
        const idf = readFields(t.b).find((f) => f.num === 1);
        ids.push(idf.b.toString('utf8').padStart(32, '0'));
      }
    }
    eq(`streaming Search ${q}: OK and the same traces as /api/search`, [st.code, ids.sort()], [0, tracesWhere(pred).sort()]);
  }
  const bad = await stream('/tempopb.StreamingQuerier/Search', Buffer.concat([pbStr(8, '{ .a = }'), pbU(4, 20)]));
  eq('streaming Search with bad TraceQL -> INVALID_ARGUMENT', bad.code, 3);
}

// ---- 4. tags: autocomplete, builder dropdowns ------------------------------------------------
async function tags() {
  const t = await getJSON('GET /api/v2/search/tags?limit=5000', '/api/v2/search/tags?limit=5000');
  if (t) {
    const scope = (n) => (t.scopes.find((s) => s.name === n) || { tags: [] }).tags;
    truthy('v2 tags: resource scope has service.name and e2e.corpus',
      ['service.name', 'e2e.corpus'].every((k) => scope('resource').includes(k)), JSON.stringify(scope('resource')));
    truthy('v2 tags: span scope has http.method, http.status_code, region, cart.items, pay.amount',
      ['http.method', 'http.status_code', 'region', 'cart.items', 'pay.amount'].every((k) => scope('span').includes(k)), JSON.stringify(scope('span')));
    truthy('v2 tags: intrinsic scope has name, status, kind, duration',
      ['name', 'status', 'kind', 'duration'].every((k) => scope('intrinsic').includes(k)), JSON.stringify(scope('intrinsic')));
  }
  const v = await getJSON('service values', '/api/v2/search/tag/resource.service.name/values?limit=5000');
  if (v) {
    truthy('v2 values of resource.service.name: the three services, typed string',
      Object.values(S).every((n) => v.tagValues.some((x) => x.type === 'string' && x.value === n)), JSON.stringify(v.tagValues));
  }
  const n = await getJSON('name values narrowed by q', `/api/v2/search/tag/name/values?${qs({ limit: 5000, q: `{resource.service.name="${S.shop}"}` })}`);
  if (n) eq(`v2 values of name with q={resource.service.name="${S.shop}"}: its span names`, n.tagValues.map((x) => x.value).sort(), ['GET /a', 'GET /b', 'POST /c']);
  const c = await getJSON('status code values', '/api/v2/search/tag/span.http.status_code/values?limit=5000');
  if (c) eq('v2 values of span.http.status_code: typed ints', c.tagValues.filter((x) => ['200', '503'].includes(x.value)).map((x) => `${x.type}:${x.value}`).sort(), ['int:200', 'int:503']);
  const st = await getJSON('status values', '/api/v2/search/tag/status/values?limit=5000');
  if (st) eq('v2 values of status: the keywords', st.tagValues.map((x) => `${x.type}:${x.value}`).sort(), ['keyword:error', 'keyword:ok', 'keyword:unset']);
  const inc = await get(`/api/v2/search/tag/name/values?${qs({ limit: 5000, q: '{ resource.cluster = }' })}`);
  eq('v2 values with an incomplete q (typing in progress) -> 200', inc.status, 200);
  const t1 = await getJSON('v1 tags', '/api/search/tags');
  if (t1) truthy('v1 tags: tagNames has service.name and region', ['service.name', 'region'].every((k) => t1.tagNames.includes(k)), JSON.stringify(t1.tagNames));
  const v1 = await getJSON('v1 values', '/api/search/tag/region/values');
  if (v1) eq('v1 values of region', [...v1.tagValues].sort(), ['eu', 'us']);
}

// ---- 5. TraceQL metrics panels --------------------------------------------------------------
function seriesSums(series) {
  const out = {};
  for (const s of series) {
    const lbl = (s.labels || []).map((l) => `${l.key}=${Object.values(l.value)[0]}`).join(',');
    out[lbl] = (s.samples || []).reduce((a, x) => a + Number(x.value ?? 0), 0); // Tempo JSON omits 0
  }
  return out;
}
async function metrics() {
  const step = 60;
  // Like Tempo, a range query never counts past now rounded down to the step (an end in the
  // future is clamped there), so the range checks end on the last step boundary before now and
  // count the spans up to it; the instant query below still covers everything.
  const MEND = Math.floor(Date.now() / 1000 / step) * step;
  const inRange = (x) => BigInt(x.startNs) <= BigInt(MEND) * 1_000_000_000n;
  const q = `{resource.service.name="${S.shop}"} | count_over_time() by (span.http.method)`;
  const j = await getJSON(`query_range ${q}`, `/api/metrics/query_range?${qs({ q, start: START, end: MEND, step })}`);
  const byMethod = {};
  for (const s of corpus.spans.filter((x) => x.service === S.shop && inRange(x))) {
    const k = `span.http.method=${s.attrs['http.method']}`;
    byMethod[k] = (byMethod[k] || 0) + 1;
  }
  if (j) eq(`query_range ${q}: per-method sums equal the span counts`, seriesSums(j.series), byMethod);
  const r = await getJSON('rate', `/api/metrics/query_range?${qs({ q: `{resource.e2e.corpus="${corpus.tag}"} | rate()`, start: START, end: MEND, step })}`);
  if (r) {
    const total = Object.values(seriesSums(r.series)).reduce((a, b) => a + b, 0) * step;
    const want = corpus.spans.filter(inRange).length;
    truthy(`query_range rate(): sum(rate x step) = ${want} spans`, Math.abs(total - want) < 1e-6 * want + 1e-9,
      `got ${total}; ${JSON.stringify(r.series).slice(0, 300)}`);
    truthy('... ungrouped series is labelled __name__', r.series.length === 1 && r.series[0].labels.some((l) => l.key === '__name__'), JSON.stringify(r.series.map((s) => s.labels)));
  }
  const qq = await getJSON('quantile', `/api/metrics/query_range?${qs({ q: `{resource.service.name="${S.shop}"} | quantile_over_time(duration, .9)`, start: START, end: END, step })}`);
  if (qq) truthy('query_range quantile_over_time(duration, .9): a series with samples', qq.series.length >= 1 && qq.series[0].samples.length > 0, JSON.stringify(qq).slice(0, 300));
  const inst = await getJSON('instant', `/api/metrics/query?${qs({ q: `{resource.service.name="${S.cart}"} | count_over_time()`, start: START, end: END })}`);
  if (inst) eq('instant count_over_time over the window = the cart spans', inst.series.map((s) => s.value), [corpus.spans.filter((x) => x.service === S.cart).length]);
  const nm = await get(`/api/metrics/query_range?${qs({ q: '{ }', start: START, end: END })}`);
  eq('query_range without a metrics function -> 400', nm.status, 400);
  // MetricsQueryRange over h2c: the same sums
  const st = await stream('/tempopb.StreamingQuerier/MetricsQueryRange', Buffer.concat([
    pbStr(1, q), pbU(2, BigInt(START) * 1_000_000_000n), pbU(3, BigInt(MEND) * 1_000_000_000n), pbU(4, BigInt(step) * 1_000_000_000n)]));
  const sums = {};
  for (const m of st.msgs) {
    for (const ts of readFields(m).filter((f) => f.num === 1)) {
      const fs = readFields(ts.b);
      const lbl = fs.filter((f) => f.num === 1).map((l) => {
        const kv = readFields(l.b);
        const key = kv.find((f) => f.num === 1).b.toString();
        const av = readFields(kv.find((f) => f.num === 2).b)[0];
        return `${key}=${av.b ? av.b.toString() : av.v}`;
      }).join(',');
      sums[lbl] = (sums[lbl] || 0) + fs.filter((f) => f.num === 2).reduce((a, smp) => {
        const d = readFields(smp.b).find((f) => f.num === 1);
        return a + (d ? d.b.readDoubleLE(0) : 0);
      }, 0);
    }
  }
  eq('streaming MetricsQueryRange: OK and the same per-method sums', [st.code, sums], [0, byMethod]);
}

if (want('basics')) await basics();
if (want('trace')) await traceById();
if (want('search')) await search();
if (want('stream')) await streamSearch();
if (want('tags')) await tags();
if (want('metrics')) await metrics();
console.log(failures ? `${failures} failed` : 'all passed');
process.exit(failures ? 1 : 0);
