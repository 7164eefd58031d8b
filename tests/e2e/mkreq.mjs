#!/usr/bin/env node
// mkreq.mjs: write a small OTLP JSON ExportTraceServiceRequest with fresh random IDs, plus the
// check_trace.mjs description of the spans that are valid (so they can be read back).
//
// Usage:
//   node mkreq.mjs --spans N --out REQ.json [--expected EXPECTED.json] [--service NAME]
//                  [--bad-span-ids K] [--bad-trace-ids K] [--pad-bytes B]
//
//   --bad-span-ids K   the last K spans get spanId "" (invalid: rejected one by one)
//   --bad-trace-ids K  the last K spans (after the bad span-id ones) get traceId "" (invalid)
//   --pad-bytes B      add a string attribute of B bytes to the first span (size tests)
// All spans share one trace id; span 0 is the root, the others its children.
// Prints the trace id.

import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

function usage(msg) {
  if (msg) console.error(`mkreq: ${msg}`);
  console.error('usage: node mkreq.mjs --spans N --out REQ.json [--expected F] [--service NAME] [--bad-span-ids K] [--bad-trace-ids K] [--pad-bytes B]');
  process.exit(2);
}
let args;
try {
  args = parseArgs({
    options: {
      spans: { type: 'string' },
      out: { type: 'string' },
      expected: { type: 'string' },
      service: { type: 'string', default: 'mkreq' },
      'bad-span-ids': { type: 'string', default: '0' },
      'bad-trace-ids': { type: 'string', default: '0' },
      'pad-bytes': { type: 'string', default: '0' },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage(e.message);
}
const n = Number(args.spans);
const badSpan = Number(args['bad-span-ids']);
const badTrace = Number(args['bad-trace-ids']);
const pad = Number(args['pad-bytes']);
if (!Number.isInteger(n) || n < 1 || !args.out) usage('--spans and --out are required');
if (![badSpan, badTrace, pad].every((x) => Number.isInteger(x) && x >= 0) || badSpan + badTrace >= n + 1) usage('bad counts');

const hex = (k) => {
  for (;;) {
    const h = randomBytes(k).toString('hex');
    if (!/^0+$/.test(h)) return h;
  }
};
const traceId = hex(16);
const t0 = BigInt(Date.now() - 2000) * 1_000_000n + 4321n;
const rootId = hex(8);
const spans = [];
const expected = [];
for (let i = 0; i < n; i++) {
  const spanId = i === 0 ? rootId : hex(8);
  const start = t0 + BigInt(i) * 1_000_000n;
  const end = start + (i === 0 ? BigInt(n + 5) * 1_000_000n : 500_000n);
  const s = {
    traceId,
    spanId,
    parentSpanId: i === 0 ? '' : rootId,
    name: i === 0 ? `mkreq root` : `mkreq child ${i}`,
    kind: i === 0 ? 2 : 1,
    startTimeUnixNano: start.toString(),
    endTimeUnixNano: end.toString(),
    attributes: [{ key: 'mkreq.index', value: { intValue: String(i) } }],
    status: {},
  };
  const exp = {
    traceId, spanId, parentSpanId: s.parentSpanId, name: s.name,
    kind: i === 0 ? 'SPAN_KIND_SERVER' : 'SPAN_KIND_INTERNAL', service: args.service,
    scope: { name: 'e2e.mkreq', version: '1.0.0' },
    startTimeUnixNano: s.startTimeUnixNano, endTimeUnixNano: s.endTimeUnixNano,
    status: { code: 'STATUS_CODE_UNSET', message: '' },
    attributes: { 'mkreq.index': { type: 'int', value: String(i) } },
    events: [], links: [],
  };
  if (i === 0 && pad > 0) {
    const p = 'p'.repeat(pad);
    s.attributes.push({ key: 'mkreq.pad', value: { stringValue: p } });
    exp.attributes['mkreq.pad'] = { type: 'string', value: p };
  }
  let valid = true;
  if (i >= n - badSpan - badTrace && i < n - badTrace) { s.spanId = ''; valid = false; }
  if (i >= n - badTrace) { s.traceId = ''; valid = false; }
  spans.push(s);
  if (valid) expected.push(exp);
}
const req = {
  resourceSpans: [{
    resource: { attributes: [{ key: 'service.name', value: { stringValue: args.service } }] },
    scopeSpans: [{ scope: { name: 'e2e.mkreq', version: '1.0.0' }, spans }],
  }],
};
writeFileSync(args.out, JSON.stringify(req) + '\n');
if (args.expected) {
  writeFileSync(args.expected, JSON.stringify({
    traceId,
    resources: { [args.service]: { attributes: { 'service.name': { type: 'string', value: args.service } } } },
    spans: expected,
  }, null, 1) + '\n');
}
console.log(traceId);
