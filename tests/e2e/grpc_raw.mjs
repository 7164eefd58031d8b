#!/usr/bin/env node
// grpc_raw.mjs: send one unary gRPC call with raw request bytes (no generated stubs) and print
// exactly what came back, so tests can check status codes, RetryInfo and partial_success.
//
// Usage:
//   node grpc_raw.mjs --target 127.0.0.1:4317 (--file REQ.pb | --hex HEX | --json OTLP.json | --empty)
//                     [--gzip] [--header 'Name: value' ...] [--timeout-ms 10000]
//                     [--path /opentelemetry.proto.collector.trace.v1.TraceService/Export] [--out RESULT.json]
//
//   --json  OTLP JSON request, encoded to protobuf with pbtool.mjs (literal: bad IDs stay bad)
//   --gzip  compress the message (grpc-encoding: gzip)
//
// Prints one JSON line (and writes it to --out when given):
//   { code, codeName, details,                      // gRPC status code / message
//     metadata: { key: "text" | "base64:..." },     // response headers + trailers (binary keys as base64)
//     statusDetails: google.rpc.Status | null,      // grpc-status-details-bin decoded (RetryInfo decoded)
//     response: ExportTraceServiceResponse | null,  // decoded response message when the call succeeded
//     responseHex, requestBytes, elapsedMs }
// Exit 0 whenever a status was received (whatever the code), 1 on local failures, 2 on usage errors.

import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import grpc from '@grpc/grpc-js';
import { encodeExportRequest, decodeStatus, decodeExportResponse } from './pbtool.mjs';

const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
  'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

function usage(msg) {
  if (msg) console.error(`grpc_raw: ${msg}`);
  console.error('usage: node grpc_raw.mjs --target HOST:PORT (--file F | --hex H | --json F | --empty) [--gzip] ' +
    '[--header "Name: value"]... [--timeout-ms N] [--path P] [--out F]');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      target: { type: 'string' },
      file: { type: 'string' },
      hex: { type: 'string' },
      json: { type: 'string' },
      empty: { type: 'boolean', default: false },
      gzip: { type: 'boolean', default: false },
      header: { type: 'string', multiple: true, default: [] },
      'timeout-ms': { type: 'string', default: '10000' },
      path: { type: 'string', default: '/opentelemetry.proto.collector.trace.v1.TraceService/Export' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage(e.message);
}
if (args.help) usage();
if (!args.target) usage('--target is required');
const sources = ['file', 'hex', 'json'].filter((k) => args[k] !== undefined).length + (args.empty ? 1 : 0);
if (sources !== 1) usage('exactly one of --file, --hex, --json, --empty is required');
const timeoutMs = Number(args['timeout-ms']);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) usage('--timeout-ms must be a positive integer');

let request;
try {
  if (args.file !== undefined) request = readFileSync(args.file);
  else if (args.hex !== undefined) {
    const h = args.hex.replace(/\s+/g, '');
    if (!/^([0-9a-fA-F]{2})*$/.test(h)) usage('--hex must be an even number of hex digits');
    request = Buffer.from(h, 'hex');
  } else if (args.json !== undefined) request = encodeExportRequest(JSON.parse(readFileSync(args.json, 'utf8')));
  else request = Buffer.alloc(0);
} catch (e) {
  console.error(`grpc_raw: cannot build the request: ${e.message}`);
  process.exit(1);
}

const md = new grpc.Metadata();
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header (want "Name: value"): ${h}`);
  md.add(h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim());
}

const channelOptions = {
  'grpc.max_send_message_length': -1,
  'grpc.max_receive_message_length': -1,
};
if (args.gzip) channelOptions['grpc.default_compression_algorithm'] = 2; // gzip
const client = new grpc.Client(args.target, grpc.credentials.createInsecure(), channelOptions);

const mdToObject = (m) => {
  const out = {};
  if (!m) return out;
  for (const [k, vals] of Object.entries(m.getMap ? m.toJSON() : {})) {
    out[k] = vals.map((v) => (Buffer.isBuffer(v) ? `base64:${v.toString('base64')}` : String(v))).join(', ');
  }
  return out;
};

const t0 = Date.now();
let headers = null;
let responseBytes = null;
let finished = false;

function report(status) {
  if (finished) return;
  finished = true;
  const meta = { ...mdToObject(headers), ...mdToObject(status.metadata) };
  let statusDetails = null;
  const bin = status.metadata?.get('grpc-status-details-bin') ?? [];
  if (bin.length > 0) {
    try {
      statusDetails = decodeStatus(Buffer.from(bin[0]));
    } catch (e) {
      statusDetails = { decodeError: e.message, hex: Buffer.from(bin[0]).toString('hex') };
    }
  }
  let response = null;
  if (responseBytes) {
    try {
      response = decodeExportResponse(responseBytes);
    } catch (e) {
      response = { decodeError: e.message };
    }
  }
  const result = {
    code: status.code,
    codeName: CODE_NAMES[status.code] ?? `#${status.code}`,
    details: status.details ?? '',
    metadata: meta,
    statusDetails,
    response,
    responseHex: responseBytes ? responseBytes.toString('hex') : null,
    requestBytes: request.length,
    elapsedMs: Date.now() - t0,
  };
  const line = JSON.stringify(result);
  if (args.out) writeFileSync(args.out, line + '\n');
  console.log(line);
  client.close();
  process.exit(0);
}

const deadline = new Date(Date.now() + timeoutMs);
const call = client.makeUnaryRequest(
  args.path,
  (b) => b,
  (b) => Buffer.from(b),
  request,
  md,
  { deadline },
  (err, value) => {
    if (!err) responseBytes = value ?? Buffer.alloc(0);
  },
);
call.on('metadata', (m) => { headers = m; });
call.on('status', (s) => {
  // the callback runs before 'status' for unary calls; give it one tick anyway
  setImmediate(() => report(s));
});
setTimeout(() => {
  if (!finished) {
    console.error('grpc_raw: no status within the deadline + 5 s');
    process.exit(1);
  }
}, timeoutMs + 5000).unref();
