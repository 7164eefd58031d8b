#!/usr/bin/env node
// otel_corpus.mjs: export a small, deterministic search corpus to traced with the official
// OpenTelemetry JS SDK and OTLP/HTTP protobuf exporter, then write what was sent.
//
// Usage:
//   node otel_corpus.mjs --endpoint http://127.0.0.1:4318 --out corpus.json [--tag T]
//                        [--traces 36] [--header 'Name: value' ...]
//
// Three services shop-<tag>, cart-<tag>, pay-<tag>, one tracer provider (one resource) each.
// Trace i (0-based) starts (traces - i) * 9 s before now, so the corpus covers a few minutes
// (several minute buckets) and ends in the past:
//   shop  SERVER  route[i % 3]                   root; http.method GET|POST, http.status_code
//   cart  SERVER  "cart.update"                  child of the root; region eu|us by i % 2
//   pay   CLIENT  "charge"                       child of the cart span, only when i % 3 == 0;
//                                                ERROR "card declined" when i % 6 == 0
// Durations: the root lasts 100 ms + i ms, except every 5th trace whose root lasts 1.5 s.
// The --out file: { tag, services: {shop, cart, pay}, spans: [ {traceId, spanId, parentSpanId,
//   name, kind ("server"...), service, startNs, endNs (decimal strings), status ("unset"|"ok"|
//   "error"), statusMessage, attrs: {key: value} } ] } -- enough for tests to compute search,
//   tag and metrics answers on their own.

import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';

import { trace, ROOT_CONTEXT, SpanKind, SpanStatusCode, diag, DiagLogLevel } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

function usage(msg) {
  if (msg) console.error(`otel_corpus: ${msg}`);
  console.error('usage: node otel_corpus.mjs --endpoint URL --out corpus.json [--tag T] [--traces N] [--header "N: v"]...');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      endpoint: { type: 'string' },
      out: { type: 'string' },
      tag: { type: 'string', default: 'c' },
      traces: { type: 'string', default: '36' },
      header: { type: 'string', multiple: true, default: [] },
    },
    strict: true,
  }).values;
} catch (e) {
  usage(e.message);
}
if (!args.endpoint || !args.out) usage('--endpoint and --out are required');
const ntraces = Number(args.traces);
if (!Number.isInteger(ntraces) || ntraces < 1 || ntraces > 1000) usage('--traces must be 1..1000');
const headers = {};
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header: ${h}`);
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}
let url = args.endpoint.replace(/\/+$/, '');
if (!url.endsWith('/v1/traces')) url += '/v1/traces';

const problems = [];
diag.setLogger({
  error: (...a) => problems.push(a.join(' ')),
  warn: (...a) => { const t = a.join(' '); if (/Partial Success|Invalid attribute/i.test(t)) problems.push(t); },
  info: () => {}, debug: () => {}, verbose: () => {},
}, DiagLogLevel.WARN);

const tag = args.tag;
const services = { shop: `shop-${tag}`, cart: `cart-${tag}`, pay: `pay-${tag}` };
const providers = {};
const results = [];
for (const [k, name] of Object.entries(services)) {
  const exporter = new OTLPTraceExporter({ url, headers, timeoutMillis: 15000 });
  const wrapped = {
    export: (spans, cb) => exporter.export(spans, (r) => { results.push(r); cb(r); }),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush(),
  };
  providers[k] = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': name, 'e2e.corpus': tag }),
    spanProcessors: [new BatchSpanProcessor(wrapped, {
      maxQueueSize: 4096, maxExportBatchSize: 1024, scheduledDelayMillis: 60_000,
    })],
  });
}
const tracer = (k) => providers[k].getTracer('e2e.corpus', '1.0.0');

const MS = 1_000_000n;
const NOW = BigInt(Date.now()) * MS;
const hr = (ns) => [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
const routes = ['GET /a', 'GET /b', 'POST /c'];
const KIND = { [SpanKind.SERVER]: 'server', [SpanKind.CLIENT]: 'client' };
const spans = [];

function record(span, service, kind, start, end, status, statusMessage, attrs) {
  const c = span.spanContext();
  spans.push({
    traceId: c.traceId,
    spanId: c.spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? span.parentSpanId ?? '',
    name: span.name,
    kind: KIND[kind],
    service,
    startNs: start.toString(),
    endNs: end.toString(),
    status,
    statusMessage,
    attrs,
  });
}

for (let i = 0; i < ntraces; i++) {
  const t0 = NOW - BigInt(ntraces - i) * 9000n * MS;
  const rootDur = (i % 5 === 0 ? 1500n : 100n + BigInt(i)) * MS;
  const method = i % 3 === 2 ? 'POST' : 'GET';
  const code = i % 7 === 0 ? 503 : 200;
  const rattrs = { 'http.method': method, 'http.status_code': code };
  const root = tracer('shop').startSpan(routes[i % 3], { kind: SpanKind.SERVER, startTime: hr(t0), attributes: rattrs });
  const cattrs = { region: i % 2 ? 'us' : 'eu', 'cart.items': i % 4 };
  const cstart = t0 + 10n * MS, cend = t0 + 60n * MS;
  const cart = tracer('cart').startSpan('cart.update', { kind: SpanKind.SERVER, startTime: hr(cstart), attributes: cattrs },
    trace.setSpan(ROOT_CONTEXT, root));
  if (i % 3 === 0) {
    const pstart = t0 + 20n * MS, pend = t0 + 50n * MS;
    const pay = tracer('pay').startSpan('charge', { kind: SpanKind.CLIENT, startTime: hr(pstart), attributes: { 'pay.amount': 10 + i } },
      trace.setSpan(ROOT_CONTEXT, cart));
    const err = i % 6 === 0;
    if (err) pay.setStatus({ code: SpanStatusCode.ERROR, message: 'card declined' });
    pay.end(hr(pend));
    record(pay, services.pay, SpanKind.CLIENT, pstart, pend, err ? 'error' : 'unset', err ? 'card declined' : '', { 'pay.amount': 10 + i });
  }
  cart.end(hr(cend));
  record(cart, services.cart, SpanKind.SERVER, cstart, cend, 'unset', '', cattrs);
  root.setStatus({ code: SpanStatusCode.OK });
  root.end(hr(t0 + rootDur));
  record(root, services.shop, SpanKind.SERVER, t0, t0 + rootDur, 'ok', '', rattrs);
}

for (const p of Object.values(providers)) {
  await p.forceFlush();
  await p.shutdown();
}
const failed = results.filter((r) => r.code !== 0);
if (failed.length || problems.length || results.length === 0) {
  console.error(`otel_corpus: export failed: ${JSON.stringify(failed.map((r) => String(r.error)))} ${problems.join('; ')}`);
  process.exit(1);
}
writeFileSync(args.out, JSON.stringify({ tag, services, spans }, null, 1));
console.log(`otel_corpus: ${spans.length} spans in ${ntraces} traces exported in ${results.length} requests`);
