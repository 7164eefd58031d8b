#!/usr/bin/env node
// tags_grpc.mjs: one tempopb.StreamingQuerier tag call (SearchTags, SearchTagsV2, SearchTagValues,
// SearchTagValuesV2) with @grpc/grpc-js over h2c, the request built from flags and every response
// message decoded into Tempo's JSON shape, so tests can compare it with the HTTP answer.
//
// Usage:
//   node tags_grpc.mjs --target 127.0.0.1:3200 --method SearchTagsV2 [--scope S] [--tag T]
//                      [--query Q] [--start N] [--end N] [--limit N] [--header 'Name: value' ...]
//                      [--timeout-ms 10000]
// Prints one JSON line: { code, details, messages: N, metricsInEvery: bool, response } where
// response is the last message decoded, e.g. {scopes:[{name, tags}]} or {tagValues:[{type, value}]}
// (metrics left out). Exit 0 whenever a status arrived, 1 on local failures, 2 on usage errors.

import { parseArgs } from 'node:util';
import grpc from '@grpc/grpc-js';

function usage(msg) {
  if (msg) console.error(`tags_grpc: ${msg}`);
  console.error('usage: node tags_grpc.mjs --target HOST:PORT --method M [--scope S] [--tag T] ' +
    '[--query Q] [--start N] [--end N] [--limit N] [--header "Name: value"]...');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      target: { type: 'string' },
      method: { type: 'string' },
      scope: { type: 'string' },
      tag: { type: 'string' },
      query: { type: 'string' },
      start: { type: 'string' },
      end: { type: 'string' },
      limit: { type: 'string' },
      header: { type: 'string', multiple: true, default: [] },
      'timeout-ms': { type: 'string', default: '10000' },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage(e.message);
}
const METHODS = ['SearchTags', 'SearchTagsV2', 'SearchTagValues', 'SearchTagValuesV2'];
if (!args.target || !METHODS.includes(args.method)) usage('--target and a valid --method are required');
const isValues = args.method.startsWith('SearchTagValues');

// --- protobuf helpers ---
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
const str = (f, s) => (s === undefined ? Buffer.alloc(0)
  : Buffer.concat([varint((f << 3) | 2), varint(Buffer.byteLength(s)), Buffer.from(s)]));
const num = (f, n) => (n === undefined ? Buffer.alloc(0) : Buffer.concat([varint(f << 3), varint(Number(n))]));
function* fields(buf) {
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
    } else throw new Error(`unexpected wire type ${wt}`);
  }
}

// SearchTagsRequest {scope 1, query 2, start 3, end 4, maxTagsPerScope 5};
// SearchTagValuesRequest {tagName 1, query 2, start 4, end 5, maxTagValues 6}.
const request = isValues
  ? Buffer.concat([str(1, args.tag), str(2, args.query), num(4, args.start), num(5, args.end), num(6, args.limit)])
  : Buffer.concat([str(1, args.scope), str(2, args.query), num(3, args.start), num(4, args.end), num(5, args.limit)]);

function decode(m) {
  // proto3: an empty repeated field is absent on the wire and an empty list in JSON
  const r = args.method === 'SearchTagsV2' ? { scopes: [] } : { [isValues ? 'tagValues' : 'tagNames']: [] };
  let metrics = false;
  for (const [f, , v] of fields(m)) {
    if (f === 2) { metrics = true; continue; }
    if (f !== 1) continue;
    if (args.method === 'SearchTagsV2') {
      const sc = { name: '', tags: [] };
      for (const [sf, , sv] of fields(v)) {
        if (sf === 1) sc.name = sv.toString();
        if (sf === 2) sc.tags.push(sv.toString());
      }
      r.scopes.push(sc);
    } else if (args.method === 'SearchTagValuesV2') {
      const tv = { type: '', value: '' };
      for (const [tf, , tvv] of fields(v)) {
        if (tf === 1) tv.type = tvv.toString();
        if (tf === 2) tv.value = tvv.toString();
      }
      r.tagValues.push(tv);
    } else {
      r[isValues ? 'tagValues' : 'tagNames'].push(v.toString());
    }
  }
  return { r, metrics };
}

const md = new grpc.Metadata();
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header: ${h}`);
  md.add(h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim());
}
const timeoutMs = Number(args['timeout-ms']);
const client = new grpc.Client(args.target, grpc.credentials.createInsecure(), {
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
});
const messages = [];
const call = client.makeServerStreamRequest(`/tempopb.StreamingQuerier/${args.method}`,
  (b) => b, (b) => Buffer.from(b), request, md, { deadline: new Date(Date.now() + timeoutMs) });
call.on('data', (m) => messages.push(m));
call.on('error', () => {});
call.on('status', (s) => setImmediate(() => {
  let response = null, metricsInEvery = messages.length > 0, error;
  try {
    for (const m of messages) {
      const d = decode(m);
      response = d.r;
      if (!d.metrics) metricsInEvery = false;
    }
  } catch (e) {
    error = e.message;
  }
  console.log(JSON.stringify({ code: s.code, details: s.details ?? '', messages: messages.length, metricsInEvery, response, error }));
  client.close();
  process.exit(0);
}));
setTimeout(() => {
  console.error('tags_grpc: no status within the deadline + 5 s');
  process.exit(1);
}, timeoutMs + 5000).unref();
