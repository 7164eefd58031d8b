#!/usr/bin/env node
// otel_export.mjs: export one deterministic multi-service trace to traced with the
// official OpenTelemetry JS SDK (sdk-trace-base 2.x + OTLP exporters 0.2xx), then
// write a description of exactly what was sent (independent of traced's output format).
//
// Usage:
//   node otel_export.mjs --protocol grpc|proto|json --endpoint URL --out expected.json
//                        [--gzip] [--tag STRING] [--processor batch|simple]
//                        [--timeout-ms 10000] [--header 'Name: value' ...]
//
//   grpc : URL like http://127.0.0.1:4317            (OTLP/gRPC, h2c)
//   proto: URL like http://127.0.0.1:4318/v1/traces  (OTLP/HTTP protobuf)
//   json : URL like http://127.0.0.1:4318/v1/traces  (OTLP/HTTP JSON)
//   For proto/json a URL without a path gets /v1/traces appended.
//   --gzip       compress requests (grpc-encoding: gzip / Content-Encoding: gzip)
//   --processor  batch (default): one request per service; simple: one request per span
//   --header     extra request header / gRPC metadata (e.g. 'X-Scope-OrgID: tenant-a'), repeatable
//
// The trace (6 spans, one trace id, two services/resources):
//   frontend-<tag>: SERVER "GET /checkout" (root, 100 ms, status OK)
//                   └ CLIENT "POST /api/order"
//   backend-<tag>:  SERVER "POST /api/order"   (parent = the frontend CLIENT span, remote)
//                   ├ INTERNAL "validate order" (status ERROR "boom", exception event)
//                   ├ PRODUCER "publish order.created"
//                   │ └ CONSUMER "process order.created" (2 events, links to the PRODUCER
//                   │    span and to a span of an unrelated trace, both with attributes)
// Span attributes cover string, bool, int, double and string/int/bool/double arrays
// (plus tricky strings: quotes, backslash, control chars, non-ASCII, empty string).
//
// Attribute types the JS SDK API cannot produce (the SDK drops them with a diag warning):
// kvlistValue, bytesValue, empty AnyValue, mixed-type arrays, nested arrays, and int64 values
// outside +-(2^53-1) (JS numbers). Also an integral JS number (e.g. 2.0, or any double
// >= 2^53 such as 1e300) is always sent as intValue: the SDK cannot send doubleValue 2.0,
// and large integral doubles would be mangled, so only non-integral doubles are used here.
// Those cases are covered by hand-written OTLP requests (curl) on the C side, not here.
//
// The --out file has this shape (check_trace.mjs reads it):
// { traceId, protocol, endpoint, gzip, tag,
//   resources: { <service.name>: { attributes } },
//   spans: [ { traceId, spanId, parentSpanId|"", name, kind: "SPAN_KIND_SERVER"...,
//              service, scope: {name, version}, startTimeUnixNano: "<ns>", endTimeUnixNano,
//              status: {code: "STATUS_CODE_UNSET|OK|ERROR", message},
//              attributes: { key: {type, value} },
//              events: [ {name, timeUnixNano, attributes} ],
//              links: [ {traceId, spanId, attributes} ] } ] }
// Typed values: {type:"string",value:"s"} {type:"bool",value:true} {type:"int",value:"42"}
// (int64 as decimal string) {type:"double",value:1.5} {type:"array",value:[typed...]}
// ({type:"kvlist",value:{k:typed}}, {type:"bytes",value:"<base64>"}, {type:"empty",value:null}
// never produced here, but understood by check_trace.mjs).

import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

import { trace, ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, diag, DiagLogLevel } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes, defaultResource } from '@opentelemetry/resources';
import { ExportResultCode } from '@opentelemetry/core';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Metadata } from '@grpc/grpc-js';

function usage(msg) {
  if (msg) console.error(`otel_export: ${msg}`);
  console.error('usage: node otel_export.mjs --protocol grpc|proto|json --endpoint URL --out expected.json ' +
    '[--gzip] [--tag STRING] [--processor batch|simple] [--timeout-ms N] [--header "Name: value"]...');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      protocol: { type: 'string' },
      endpoint: { type: 'string' },
      out: { type: 'string' },
      gzip: { type: 'boolean', default: false },
      tag: { type: 'string' },
      processor: { type: 'string', default: 'batch' },
      'timeout-ms': { type: 'string', default: '10000' },
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
const protocol = args.protocol;
if (!['grpc', 'proto', 'json'].includes(protocol)) usage('--protocol must be grpc, proto or json');
if (!args.endpoint) usage('--endpoint is required');
if (!args.out) usage('--out is required');
if (!['batch', 'simple'].includes(args.processor)) usage('--processor must be batch or simple');
const timeoutMillis = Number(args['timeout-ms']);
if (!Number.isInteger(timeoutMillis) || timeoutMillis <= 0) usage('--timeout-ms must be a positive integer');
const tag = args.tag ?? `${protocol}${args.gzip ? '-gzip' : ''}-${randomBytes(3).toString('hex')}`;

let endpoint = args.endpoint;
try {
  const u = new URL(endpoint);
  if (protocol !== 'grpc' && (u.pathname === '' || u.pathname === '/')) {
    u.pathname = '/v1/traces';
    endpoint = u.toString();
  }
} catch {
  usage(`bad --endpoint URL: ${args.endpoint}`);
}

const headers = {};
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header (want "Name: value"): ${h}`);
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}

// ---------------------------------------------------------------------------------------
// diag: surface SDK warnings; a partial success or an unparsable response is a failure.
const problems = [];
diag.setLogger({
  error: (...a) => { console.error('otel diag error:', ...a.map(fmt)); },
  warn: (...a) => {
    const text = a.map(fmt).join(' ');
    console.error('otel diag warn:', text);
    if (/Partial Success/i.test(text)) problems.push(`server reported partial success: ${text}`);
    if (/could not deserialize response|failed to parse .*response/i.test(text)) problems.push(`server response not decodable: ${text}`);
    if (/Invalid attribute/i.test(text)) problems.push(`SDK dropped an attribute: ${text}`);
  },
  info: () => {},
  debug: () => {},
  verbose: () => {},
}, DiagLogLevel.WARN);

function fmt(x) {
  if (x instanceof Error) return process.env.OTEL_EXPORT_DEBUG ? (x.stack || x.message) : `${x.name}: ${x.message}`.replace(/\s+for call at\s*$/, '');
  if (x instanceof Uint8Array) return `<${x.length} bytes: ${Buffer.from(x).toString('utf8').slice(0, 200)}>`;
  if (typeof x === 'object') { try { return JSON.stringify(x); } catch { return String(x); } }
  return String(x);
}

// ---------------------------------------------------------------------------------------
// Exporter wrapper: records every export result and every span handed to the exporter.
class RecordingExporter {
  constructor(inner, label) {
    this.inner = inner;
    this.label = label;
    this.results = [];
    this.spans = [];
  }
  export(spans, resultCallback) {
    this.spans.push(...spans);
    this.inner.export(spans, (result) => {
      this.results.push({ spans: spans.length, result });
      resultCallback(result);
    });
  }
  forceFlush() { return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve(); }
  shutdown() { return this.inner.shutdown(); }
}

function makeExporter() {
  const common = { url: endpoint, timeoutMillis };
  if (args.gzip) common.compression = 'gzip';
  if (protocol === 'grpc') {
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(headers)) metadata.set(k.toLowerCase(), v);
    return new GrpcExporter({ ...common, metadata });
  }
  const cfg = { ...common, headers };
  return protocol === 'proto' ? new ProtoExporter(cfg) : new JsonExporter(cfg);
}

function makeProvider(service, extraResource) {
  const exporter = new RecordingExporter(makeExporter(), service);
  const processor = args.processor === 'simple'
    ? new SimpleSpanProcessor(exporter)
    : new BatchSpanProcessor(exporter, {
      maxQueueSize: 1000,
      maxExportBatchSize: 512,
      scheduledDelayMillis: 60_000, // only forceFlush exports: one request per provider
      exportTimeoutMillis: timeoutMillis + 5000,
    });
  const resource = defaultResource().merge(resourceFromAttributes({
    [ATTR_SERVICE_NAME]: service,
    [ATTR_SERVICE_VERSION]: '1.4.2',
    'deployment.environment': 'e2e',
    'deployment.environment.name': 'e2e',
    'host.name': hostname(),
    'e2e.tag': tag,
    'e2e.protocol': protocol,
    ...extraResource,
  }));
  const provider = new BasicTracerProvider({ resource, spanProcessors: [processor] });
  return { provider, exporter, service };
}

// ---------------------------------------------------------------------------------------
// Deterministic timing: all offsets are relative to T0 (ns since epoch, 1 s in the past,
// with non-zero sub-millisecond digits so nanosecond precision is exercised).
const MS = 1_000_000n;
const T0 = (BigInt(Date.now()) - 1000n) * MS + 123_457n;
const at = (ms, extraNs = 0) => {
  const t = T0 + BigInt(Math.round(ms * 1000)) * 1000n + BigInt(extraNs);
  return [Number(t / 1_000_000_000n), Number(t % 1_000_000_000n)]; // HrTime
};

const frontend = makeProvider(`frontend-${tag}`, { 'e2e.role': 'frontend' });
const backend = makeProvider(`backend-${tag}`, { 'e2e.role': 'backend', 'e2e.replicas': 3 });
const ftracer = frontend.provider.getTracer('e2e.frontend', '1.0.0');
const btracer = backend.provider.getTracer('e2e.backend', '2.1.0');

// Frontend root SERVER span: every primitive and array attribute type.
const root = ftracer.startSpan('GET /checkout', {
  kind: SpanKind.SERVER,
  startTime: at(0),
  attributes: {
    'http.request.method': 'GET',
    'url.path': '/checkout',
    'http.response.status_code': 200,
    'e2e.string': `hello ${tag}`,
    'e2e.string.empty': '',
    'e2e.string.tricky': 'quote " backslash \\ slash / nl \n tab \t ctl \u0001 unicode \u00e9\u4e2d\u{1F600}',
    'e2e.bool.true': true,
    'e2e.bool.false': false,
    'e2e.int': 42,
    'e2e.int.zero': 0,
    'e2e.int.negative': -17,
    'e2e.int.large': 9007199254740991,
    'e2e.int.negative_large': -9007199254740991,
    'e2e.double': 3.141592653589793,
    'e2e.double.negative': -0.5,
    'e2e.double.small': 1.5e-7,
    'e2e.double.tiny': 1.0e-300,
    'e2e.strings': ['a', 'b c', '', '\u00fcn\u00efc\u00f6d\u00e9 \u2713'],
    'e2e.ints': [1, -2, 3000000000, 0],
    'e2e.bools': [true, false, true],
    'e2e.doubles': [0.5, -2.25, 1.0e-7, 6.02214076e-23],
  },
});
root.addEvent('request.received', { 'e2e.event.int': 7, 'e2e.event.str': 'x', 'e2e.event.doubles': [1.5, 2.5] }, at(1, 250));
root.setStatus({ code: SpanStatusCode.OK });

const client = ftracer.startSpan('POST /api/order', {
  kind: SpanKind.CLIENT,
  startTime: at(10),
  attributes: {
    'http.request.method': 'POST',
    'server.address': 'backend',
    'server.port': 8080,
    'e2e.double': 0.25,
    'e2e.bools': [false],
  },
}, trace.setSpan(ROOT_CONTEXT, root));

// Cross-provider propagation: the backend sees the CLIENT span context as a remote parent.
const remoteParent = trace.setSpanContext(ROOT_CONTEXT, { ...client.spanContext(), isRemote: true });

const bserver = btracer.startSpan('POST /api/order', {
  kind: SpanKind.SERVER,
  startTime: at(15),
  attributes: {
    'http.request.method': 'POST',
    'http.route': '/api/order',
    'http.response.status_code': 201,
    'e2e.ints': [7, 8, 9],
    'e2e.strings': ['x'],
  },
}, remoteParent);
const bctx = trace.setSpan(ROOT_CONTEXT, bserver);

const validate = btracer.startSpan('validate order', {
  kind: SpanKind.INTERNAL,
  startTime: at(20),
  attributes: { 'e2e.items': 3, 'e2e.total': 99.95, 'e2e.valid': false },
}, bctx);
validate.addEvent('exception', {
  'exception.type': 'ValidationError',
  'exception.message': 'boom',
  'exception.escaped': false,
  'e2e.line': 123,
}, at(29, 1));
validate.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
validate.end(at(30));

const producer = btracer.startSpan('publish order.created', {
  kind: SpanKind.PRODUCER,
  startTime: at(40),
  attributes: {
    'messaging.system': 'kafka',
    'messaging.destination.name': 'orders',
    'messaging.message.body.size': 512,
  },
}, bctx);
producer.end(at(45));

const external = {
  traceId: randomBytes(16).toString('hex'),
  spanId: randomBytes(8).toString('hex'),
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
};
const consumer = btracer.startSpan('process order.created', {
  kind: SpanKind.CONSUMER,
  startTime: at(50),
  attributes: { 'messaging.system': 'kafka', 'messaging.operation.type': 'process' },
  links: [
    { context: producer.spanContext(), attributes: { 'e2e.link.kind': 'producer', 'e2e.link.int': 1 } },
    { context: external, attributes: { 'e2e.link.kind': 'external', 'e2e.link.bool': true, 'e2e.link.double': 2.5, 'e2e.link.strings': ['p', 'q'] } },
  ],
}, trace.setSpan(ROOT_CONTEXT, producer));
consumer.addEvent('message.received', { 'messaging.message.id': 'm-1' }, at(51));
consumer.addEvent('message.processed', { 'e2e.ok': true, 'e2e.latency_ms': 28.5 }, at(79, 999));
consumer.end(at(80));

bserver.end(at(85));
client.end(at(90));
root.end(at(100));

const SPAN_COUNT = 6;
const traceId = root.spanContext().traceId;

// ---------------------------------------------------------------------------------------
// Export: flush and shut down both providers, then check every export result.
let failed = false;
for (const p of [frontend, backend]) {
  try {
    await p.provider.forceFlush();
    await p.provider.shutdown();
  } catch (e) {
    console.error(`otel_export: ${p.service}: flush/shutdown failed: ${fmt(e)}`);
    failed = true;
  }
}

const exported = [];
for (const p of [frontend, backend]) {
  const { results, spans } = p.exporter;
  if (results.length === 0) {
    console.error(`otel_export: ${p.service}: no export was attempted`);
    failed = true;
  }
  for (const { spans: n, result } of results) {
    if (result.code !== ExportResultCode.SUCCESS) {
      const e = result.error;
      const detail = e && e.code !== undefined ? ` (code ${e.code}${e.data ? `, body ${String(e.data).slice(0, 300)}` : ''})` : '';
      console.error(`otel_export: ${p.service}: export of ${n} span(s) FAILED: ${fmt(e ?? 'unknown error')}${detail}`);
      failed = true;
    }
  }
  exported.push(...spans);
}
if (exported.length !== SPAN_COUNT) {
  console.error(`otel_export: expected ${SPAN_COUNT} spans handed to exporters, got ${exported.length}`);
  failed = true;
}
for (const p of problems) {
  console.error(`otel_export: ${p}`);
  failed = true;
}

// ---------------------------------------------------------------------------------------
// Describe what was sent (from the ReadableSpans the exporters received).
const KIND = ['SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'];
const STATUS = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'];
const hrToNs = (hr) => (BigInt(Math.trunc(hr[0])) * 1_000_000_000n + BigInt(Math.trunc(hr[1]))).toString();

// Mirrors @opentelemetry/otlp-transformer toAnyValue().
function typed(v) {
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'boolean') return { type: 'bool', value: v };
  if (typeof v === 'number') {
    return Number.isInteger(v) ? { type: 'int', value: BigInt(v).toString() } : { type: 'double', value: v };
  }
  if (v instanceof Uint8Array) return { type: 'bytes', value: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return { type: 'array', value: v.map(typed) };
  if (v != null && typeof v === 'object') return { type: 'kvlist', value: typedAttrs(v) };
  return { type: 'empty', value: null };
}
function typedAttrs(attrs) {
  const out = {};
  for (const k of Object.keys(attrs ?? {}).sort()) out[k] = typed(attrs[k]);
  return out;
}

const resources = {};
const spans = exported.map((s) => {
  const ctx = s.spanContext();
  const service = String(s.resource.attributes[ATTR_SERVICE_NAME] ?? '');
  resources[service] = { attributes: typedAttrs(s.resource.attributes) };
  return {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? '',
    name: s.name,
    kind: KIND[s.kind],
    service,
    scope: { name: s.instrumentationScope.name, version: s.instrumentationScope.version ?? '' },
    startTimeUnixNano: hrToNs(s.startTime),
    endTimeUnixNano: hrToNs(s.endTime),
    status: { code: STATUS[s.status.code], message: s.status.message ?? '' },
    attributes: typedAttrs(s.attributes),
    events: s.events.map((e) => ({ name: e.name, timeUnixNano: hrToNs(e.time), attributes: typedAttrs(e.attributes) })),
    links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId, attributes: typedAttrs(l.attributes) })),
  };
}).sort((a, b) => (BigInt(a.startTimeUnixNano) < BigInt(b.startTimeUnixNano) ? -1 : 1));

for (const s of spans) {
  if (s.traceId !== traceId) {
    console.error(`otel_export: span ${s.spanId} has trace id ${s.traceId}, expected ${traceId}`);
    failed = true;
  }
}

const expected = {
  traceId,
  protocol,
  endpoint,
  gzip: args.gzip,
  tag,
  resources,
  spans,
};
writeFileSync(args.out, JSON.stringify(expected, null, 2) + '\n');

if (failed) {
  console.error(`otel_export: FAILED (protocol=${protocol} endpoint=${endpoint}); description written to ${args.out}`);
  process.exit(1);
}
console.log(`otel_export: ok: trace ${traceId}, ${spans.length} spans, ` +
  `services frontend-${tag} + backend-${tag}, protocol=${protocol}${args.gzip ? '+gzip' : ''} -> ${endpoint}; wrote ${args.out}`);
process.exit(0);
