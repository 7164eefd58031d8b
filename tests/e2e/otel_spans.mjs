#!/usr/bin/env node
// otel_spans.mjs: send spans with chosen start times and durations through the official
// OpenTelemetry JS SDK and an OTLP exporter (for the TraceQL metrics tests, which need
// spans at known instants).
//
// Usage:
//   node otel_spans.mjs --protocol grpc|proto|json --endpoint URL --spec SPEC.json
//                       [--timeout-ms 10000]
//
// SPEC.json: { "spans": [ { "service": "svc", "name": "GET /x", "startNs": "<unix ns>",
//                           "durNs": "<ns>", "error": false, "attributes": { "k": v } } ] }
// Every span is the root of its own trace; spans of one service share one tracer provider
// (resource service.name = service) and one export request. Exit 0 when every export
// succeeded, 1 otherwise, 2 on usage errors.

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';

import { ROOT_CONTEXT, SpanKind, SpanStatusCode, diag, DiagLogLevel } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ExportResultCode } from '@opentelemetry/core';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';

function usage(msg) {
  if (msg) console.error(`otel_spans: ${msg}`);
  console.error('usage: node otel_spans.mjs --protocol grpc|proto|json --endpoint URL --spec SPEC.json [--timeout-ms N]');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      protocol: { type: 'string' },
      endpoint: { type: 'string' },
      spec: { type: 'string' },
      'timeout-ms': { type: 'string', default: '10000' },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage(e.message);
}
if (!['grpc', 'proto', 'json'].includes(args.protocol)) usage('--protocol must be grpc, proto or json');
if (!args.endpoint || !args.spec) usage('--endpoint and --spec are required');
const timeoutMillis = Number(args['timeout-ms']);
let spec;
try {
  spec = JSON.parse(readFileSync(args.spec, 'utf8'));
} catch (e) {
  usage(`cannot read --spec: ${e.message}`);
}

diag.setLogger({
  error: (...a) => console.error('otel diag error:', ...a.map(String)),
  warn: (...a) => console.error('otel diag warn:', ...a.map(String)),
  info: () => {}, debug: () => {}, verbose: () => {},
}, DiagLogLevel.WARN);

let endpoint = args.endpoint;
if (args.protocol !== 'grpc') {
  const u = new URL(endpoint);
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/traces';
  endpoint = u.toString();
}

function makeExporter() {
  const cfg = { url: endpoint, timeoutMillis };
  if (args.protocol === 'grpc') return new GrpcExporter(cfg);
  return args.protocol === 'proto' ? new ProtoExporter(cfg) : new JsonExporter(cfg);
}

// One provider (and exporter) per service.
const providers = new Map();
const results = [];
function providerFor(service) {
  let p = providers.get(service);
  if (p) return p;
  const inner = makeExporter();
  const exporter = {
    export(spans, cb) {
      inner.export(spans, (r) => { results.push({ service, n: spans.length, r }); cb(r); });
    },
    forceFlush: () => (inner.forceFlush ? inner.forceFlush() : Promise.resolve()),
    shutdown: () => inner.shutdown(),
  };
  const processor = new BatchSpanProcessor(exporter, {
    maxQueueSize: 10000, maxExportBatchSize: 5000, scheduledDelayMillis: 60_000,
    exportTimeoutMillis: timeoutMillis + 5000,
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: service }),
    spanProcessors: [processor],
  });
  p = { provider, tracer: provider.getTracer('e2e.metrics', '1.0.0') };
  providers.set(service, p);
  return p;
}

const hr = (ns) => [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
let sent = 0;
for (const s of spec.spans) {
  const { tracer } = providerFor(s.service);
  const start = BigInt(s.startNs);
  const span = tracer.startSpan(s.name ?? 'op', {
    kind: SpanKind.SERVER, startTime: hr(start), attributes: s.attributes ?? {},
  }, ROOT_CONTEXT);
  if (s.error) span.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
  span.end(hr(start + BigInt(s.durNs)));
  sent++;
}

let failed = false;
for (const [service, p] of providers) {
  try {
    await p.provider.forceFlush();
    await p.provider.shutdown();
  } catch (e) {
    console.error(`otel_spans: ${service}: flush failed: ${e.message}`);
    failed = true;
  }
}
let exported = 0;
for (const { service, n, r } of results) {
  if (r.code !== ExportResultCode.SUCCESS) {
    console.error(`otel_spans: ${service}: export of ${n} span(s) failed: ${r.error?.message ?? 'unknown'}`);
    failed = true;
  } else {
    exported += n;
  }
}
if (exported !== sent) {
  console.error(`otel_spans: ${sent} spans created, ${exported} exported`);
  failed = true;
}
console.log(JSON.stringify({ sent, exported }));
process.exit(failed ? 1 : 0);
