#!/usr/bin/env node
// grpc_flood.mjs: the gRPC twin of flood.mjs. Push many OTLP/gRPC Export calls (raw protobuf, one new
// trace each) at traced concurrently over one channel and record which were accepted (OK), refused
// (UNAVAILABLE) or answered otherwise. No retries, so accepted traces must be complete and refused
// ones absent.
//
// Usage:
//   node grpc_flood.mjs --target 127.0.0.1:4317 --requests N --spans-per-request M --concurrency C
//                       --out result.json [--timeout-ms 60000] [--service grpc-flood] [--header 'k: v' ...]
//
// result.json:
//   { accepted: [traceId...], refused: [traceId...], other: [{traceId, code, details}],
//     spansPerRequest, requests, concurrency,
//     refusals: [{details, statusCode, retryDelay: {seconds, nanos} | null}],  // one per UNAVAILABLE
//     statusCounts: {"0": n, "14": n, ...}, elapsedMs, timedOut }
// Exit 0 whenever result.json was written (2 on usage errors).

import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import grpc from '@grpc/grpc-js';
import { encodeExportRequest, decodeStatus } from './pbtool.mjs';

function usage(msg) {
  if (msg) console.error(`grpc_flood: ${msg}`);
  console.error('usage: node grpc_flood.mjs --target HOST:PORT --requests N --spans-per-request M --concurrency C --out F ' +
    '[--timeout-ms N] [--service NAME] [--header "k: v"]...');
  process.exit(2);
}
let args;
try {
  args = parseArgs({
    options: {
      target: { type: 'string' },
      requests: { type: 'string' },
      'spans-per-request': { type: 'string' },
      concurrency: { type: 'string', default: '8' },
      out: { type: 'string' },
      'timeout-ms': { type: 'string', default: '60000' },
      service: { type: 'string', default: 'grpc-flood' },
      header: { type: 'string', multiple: true, default: [] },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage(e.message);
}
const posInt = (k) => {
  const n = Number(args[k]);
  if (!Number.isInteger(n) || n < 1) usage(`--${k} must be a positive integer`);
  return n;
};
if (!args.target || !args.out) usage('--target and --out are required');
const N = posInt('requests');
const M = posInt('spans-per-request');
const C = Math.min(posInt('concurrency'), N);
const timeoutMs = posInt('timeout-ms');
const md = new grpc.Metadata();
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header: ${h}`);
  md.add(h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim());
}

const hex = (n) => {
  for (;;) {
    const h = randomBytes(n).toString('hex');
    if (!/^0+$/.test(h)) return h;
  }
};
const t0ns = BigInt(Date.now() - 5000) * 1_000_000n;
function buildRequest(index) {
  const traceId = hex(16);
  const rootId = hex(8);
  const spans = [];
  for (let j = 0; j < M; j++) {
    const start = t0ns + BigInt(index) * 1000n + BigInt(j) * 1_000_000n;
    spans.push({
      traceId,
      spanId: j === 0 ? rootId : hex(8),
      parentSpanId: j === 0 ? '' : rootId,
      name: j === 0 ? `grpc flood ${index}` : `grpc flood child ${j}`,
      kind: j === 0 ? 2 : 1,
      startTimeUnixNano: start.toString(),
      endTimeUnixNano: (start + 500_000n).toString(),
      attributes: [{ key: 'flood.request', value: { intValue: String(index) } }],
    });
  }
  const body = encodeExportRequest({
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: args.service } }] },
      scopeSpans: [{ scope: { name: 'e2e.grpc_flood', version: '1.0.0' }, spans }],
    }],
  });
  return { traceId, body };
}

const client = new grpc.Client(args.target, grpc.credentials.createInsecure(), {
  'grpc.max_send_message_length': -1,
  'grpc.max_receive_message_length': -1,
});
const PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const result = {
  accepted: [], refused: [], other: [], spansPerRequest: M, requests: N, concurrency: C,
  refusals: [], statusCounts: {}, elapsedMs: 0, timedOut: false,
};
const start = Date.now();
const deadlineAll = start + timeoutMs;

function callOnce(body) {
  return new Promise((resolve) => {
    const deadline = new Date(Math.max(Date.now() + 100, Math.min(deadlineAll, Date.now() + 30000)));
    const call = client.makeUnaryRequest(PATH, (b) => b, (b) => Buffer.from(b), body, md, { deadline }, () => {});
    call.on('status', (s) => resolve(s));
  });
}

async function sendOne(index) {
  const { traceId, body } = buildRequest(index);
  if (Date.now() >= deadlineAll) {
    result.timedOut = true;
    result.statusCounts.notSent = (result.statusCounts.notSent ?? 0) + 1;
    result.other.push({ traceId, code: -1, details: 'not sent: overall timeout' });
    return;
  }
  const s = await callOnce(body);
  result.statusCounts[s.code] = (result.statusCounts[s.code] ?? 0) + 1;
  if (s.code === 0) {
    result.accepted.push(traceId);
  } else if (s.code === 14) {
    result.refused.push(traceId);
    const bin = s.metadata?.get('grpc-status-details-bin') ?? [];
    let statusCode = null;
    let retryDelay = null;
    if (bin.length > 0) {
      try {
        const st = decodeStatus(Buffer.from(bin[0]));
        statusCode = st.code;
        retryDelay = st.details.find((d) => d.retryDelay)?.retryDelay ?? null;
      } catch (e) {
        statusCode = `undecodable: ${e.message}`;
      }
    }
    result.refusals.push({ details: s.details, statusCode, retryDelay });
  } else {
    result.other.push({ traceId, code: s.code, details: s.details });
  }
}

let next = 0;
await Promise.all(Array.from({ length: C }, async () => {
  while (next < N) await sendOne(next++);
}));
result.elapsedMs = Date.now() - start;
client.close();
writeFileSync(args.out, JSON.stringify(result, null, 1) + '\n');
console.log(`grpc_flood: ${N} calls x ${M} spans, concurrency ${C}, ${result.elapsedMs} ms: accepted ${result.accepted.length}, ` +
  `refused(UNAVAILABLE) ${result.refused.length}, other ${result.other.length}; codes ${JSON.stringify(result.statusCounts)}`);
process.exit(0);
