#!/usr/bin/env node
// grpc_stream.mjs: one server-streaming gRPC call with a raw request message (no generated stubs),
// the way Grafana's Tempo streaming client calls tempopb.StreamingQuerier (h2c, prior knowledge),
// and print what came back, so tests can check status codes and messages.
//
// Usage:
//   node grpc_stream.mjs --target 127.0.0.1:3200 [--path /tempopb.StreamingQuerier/Search]
//                        [--hex HEX | --file REQ.pb] [--header 'Name: value' ...] [--timeout-ms 10000]
//                        [--out RESULT.json] [--hold-ms N]
//                        [--search-query Q [--search-limit N] [--search-spss N]] [--decode-search]
//
// --search-query builds a tempopb.SearchRequest {Query (8), Limit (4), SpansPerSpanSet (9)} as the
// request. --decode-search adds `search: { traceIDs: [...], metricsInEvery: bool,
// completedJobs, totalJobs }` decoded from the SearchResponse messages (traces #1 / traceID #1,
// metrics #2 / completedJobs #4, totalJobs #5).
// --hold-ms keeps the connection open for N ms after the result is printed (shutdown tests).
// The request defaults to an empty message. Prints one JSON line (and writes it to --out):
//   { code, codeName, details,                  // gRPC status code / message
//     messages: [hex, ...],                     // response messages in order
//     metadata: { key: "text" | "base64:..." }, // response headers + trailers
//     connectError: bool,                       // UNAVAILABLE before any response header
//     elapsedMs }
// Exit 0 whenever a status was received (whatever the code), 1 on local failures, 2 on usage errors.

import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import grpc from '@grpc/grpc-js';

const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
  'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

function usage(msg) {
  if (msg) console.error(`grpc_stream: ${msg}`);
  console.error('usage: node grpc_stream.mjs --target HOST:PORT [--path P] [--hex H | --file F] ' +
    '[--header "Name: value"]... [--timeout-ms N] [--out F] [--hold-ms N]');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      target: { type: 'string' },
      path: { type: 'string', default: '/tempopb.StreamingQuerier/Search' },
      hex: { type: 'string' },
      file: { type: 'string' },
      header: { type: 'string', multiple: true, default: [] },
      'timeout-ms': { type: 'string', default: '10000' },
      out: { type: 'string' },
      'hold-ms': { type: 'string', default: '0' },
      'search-query': { type: 'string' },
      'search-limit': { type: 'string', default: '20' },
      'search-spss': { type: 'string', default: '3' },
      'decode-search': { type: 'boolean', default: false },
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
if (args.hex !== undefined && args.file !== undefined) usage('--hex and --file are exclusive');
const timeoutMs = Number(args['timeout-ms']);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) usage('--timeout-ms must be a positive integer');
const holdMs = Number(args['hold-ms']);
if (!Number.isInteger(holdMs) || holdMs < 0) usage('--hold-ms must be a non-negative integer');

let request = Buffer.alloc(0);
try {
  if (args.file !== undefined) request = readFileSync(args.file);
  else if (args.hex !== undefined) {
    const h = args.hex.replace(/\s+/g, '');
    if (!/^([0-9a-fA-F]{2})*$/.test(h)) usage('--hex must be an even number of hex digits');
    request = Buffer.from(h, 'hex');
  }
} catch (e) {
  console.error(`grpc_stream: cannot read the request: ${e.message}`);
  process.exit(1);
}

// --- minimal protobuf helpers (SearchRequest / SearchResponse) ---
function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
function* fields(buf) { // yields [field, wireType, value (BigInt or Buffer)]
  let i = 0;
  const rv = () => {
    let v = 0n, shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < buf.length) {
    const key = rv();
    const f = Number(key >> 3n), wt = Number(key & 7n);
    if (wt === 0) yield [f, wt, rv()];
    else if (wt === 2) {
      const n = Number(rv());
      if (i + n > buf.length) throw new Error('truncated field');
      yield [f, wt, buf.subarray(i, i + n)];
      i += n;
    } else if (wt === 1) { yield [f, wt, buf.subarray(i, i + 8)]; i += 8; }
    else if (wt === 5) { yield [f, wt, buf.subarray(i, i + 4)]; i += 4; }
    else throw new Error(`bad wire type ${wt}`);
  }
}
if (args['search-query'] !== undefined) {
  const q = Buffer.from(args['search-query']);
  request = Buffer.concat([
    Buffer.from([0x42]), varint(q.length), q,
    Buffer.from([0x20]), varint(Number(args['search-limit'])),
    Buffer.from([0x48]), varint(Number(args['search-spss'])),
  ]);
}
function decodeSearch(msgs) {
  const r = { traceIDs: [], metricsInEvery: msgs.length > 0, completedJobs: 0, totalJobs: 0 };
  for (const m of msgs) {
    let metrics = false;
    for (const [f, wt, v] of fields(m)) {
      if (f === 1 && wt === 2) {
        for (const [tf, twt, tv] of fields(v)) if (tf === 1 && twt === 2) r.traceIDs.push(tv.toString());
      } else if (f === 2 && wt === 2) {
        metrics = true;
        for (const [mf, mwt, mv] of fields(v)) {
          if (mf === 4 && mwt === 0) r.completedJobs = Number(mv);
          if (mf === 5 && mwt === 0) r.totalJobs = Number(mv);
        }
      }
    }
    if (!metrics) r.metricsInEvery = false;
  }
  return r;
}

const md = new grpc.Metadata();
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header (want "Name: value"): ${h}`);
  md.add(h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim());
}

// Grafana's default receive limit is 4 MiB: keep it, so an oversized message shows up here too.
const client = new grpc.Client(args.target, grpc.credentials.createInsecure(), {
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
});

const mdToObject = (m) => {
  const out = {};
  if (!m) return out;
  for (const [k, vals] of Object.entries(m.toJSON())) {
    out[k] = vals.map((v) => (Buffer.isBuffer(v) ? `base64:${v.toString('base64')}` : String(v))).join(', ');
  }
  return out;
};

const t0 = Date.now();
const messages = [];
let headers = null;
let finished = false;

function report(status) {
  if (finished) return;
  finished = true;
  const result = {
    code: status.code,
    codeName: CODE_NAMES[status.code] ?? `#${status.code}`,
    details: status.details ?? '',
    messages: messages.map((m) => m.toString('hex')),
    metadata: { ...mdToObject(headers), ...mdToObject(status.metadata) },
    connectError: status.code === grpc.status.UNAVAILABLE && headers === null,
    elapsedMs: Date.now() - t0,
  };
  if (args['decode-search']) {
    try {
      result.search = decodeSearch(messages);
    } catch (e) {
      result.search = { error: e.message };
    }
  }
  const line = JSON.stringify(result);
  if (args.out) writeFileSync(args.out, line + '\n');
  console.log(line);
  if (holdMs === 0) {
    client.close();
    process.exit(0);
  }
  // the channel keeps its (idle) connection until we close it
  setTimeout(() => {
    client.close();
    process.exit(0);
  }, holdMs);
}

const call = client.makeServerStreamRequest(
  args.path,
  (b) => b,
  (b) => Buffer.from(b),
  request,
  md,
  { deadline: new Date(Date.now() + timeoutMs) },
);
call.on('metadata', (m) => { headers = m; });
call.on('data', (m) => { messages.push(m); });
call.on('error', () => { /* the status event carries it */ });
call.on('status', (s) => setImmediate(() => report(s)));
setTimeout(() => {
  if (!finished) {
    console.error('grpc_stream: no status within the deadline + 5 s');
    process.exit(1);
  }
}, timeoutMs + 5000).unref();
