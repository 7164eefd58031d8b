#!/usr/bin/env node
// mkdeep.mjs: write an OTLP request whose one span attribute is an AnyValue nested DEPTH levels deep
// (arrayValue -> values[0] -> arrayValue -> ... -> stringValue "x"), as OTLP JSON or protobuf.
// Decoders that recurse once per level without a depth limit overflow the stack on these.
//
// Usage: node mkdeep.mjs --depth N --format json|pb --out FILE [--kind array|kvlist]
// Built iteratively (no recursion here), so any depth works. Prints the trace id.

import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

const { values: a } = parseArgs({
  options: {
    depth: { type: 'string' },
    format: { type: 'string', default: 'json' },
    out: { type: 'string' },
    kind: { type: 'string', default: 'array' },
  },
  strict: true,
});
const depth = Number(a.depth);
if (!Number.isInteger(depth) || depth < 1 || !a.out || !['json', 'pb'].includes(a.format) || !['array', 'kvlist'].includes(a.kind)) {
  console.error('usage: node mkdeep.mjs --depth N --format json|pb --out FILE [--kind array|kvlist]');
  process.exit(2);
}
const traceId = randomBytes(16).toString('hex');
const spanId = randomBytes(8).toString('hex');
const now = BigInt(Date.now()) * 1_000_000n;

if (a.format === 'json') {
  const open = a.kind === 'array' ? '{"arrayValue":{"values":[' : '{"kvlistValue":{"values":[{"key":"k","value":';
  const close = a.kind === 'array' ? ']}}' : '}]}}';
  const value = open.repeat(depth) + '{"stringValue":"x"}' + close.repeat(depth);
  const body = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"deep"}}]},` +
    `"scopeSpans":[{"spans":[{"traceId":"${traceId}","spanId":"${spanId}","name":"deep",` +
    `"startTimeUnixNano":"${now}","endTimeUnixNano":"${now + 1000n}",` +
    `"attributes":[{"key":"deep","value":${value}}]}]}]}]}`;
  writeFileSync(a.out, body);
} else {
  const varint = (n) => {
    const out = [];
    let x = n;
    do { let b = x & 0x7f; x = Math.floor(x / 128); if (x) b |= 0x80; out.push(b); } while (x);
    return out;
  };
  const ld = (field, len) => [(field << 3) | 2, ...varint(len)];
  // innermost AnyValue{string_value="x"}
  const inner = Buffer.from([0x0a, 0x01, 0x78]);
  // per level (array): AnyValue{5: ArrayValue{1: AnyValue}}; (kvlist): AnyValue{6: KVList{1: KeyValue{1:"k", 2: AnyValue}}}
  const heads = [];
  let len = inner.length;
  for (let i = 0; i < depth; i++) {
    let h;
    if (a.kind === 'array') {
      const arr = [...ld(1, len)];               // ArrayValue.values
      const arrLen = arr.length + len;
      h = [...ld(5, arrLen), ...arr];            // AnyValue.array_value
    } else {
      const kvBody = [0x0a, 0x01, 0x6b, ...ld(2, len)]; // KeyValue{key="k", value=...}
      const kvLen = kvBody.length + len;
      const list = [...ld(1, kvLen), ...kvBody];  // KeyValueList.values
      const listLen = list.length + len;
      h = [...ld(6, listLen), ...list];           // AnyValue.kvlist_value
    }
    heads.push(Buffer.from(h));
    len += h.length;
  }
  heads.reverse();
  const anyValue = Buffer.concat([...heads, inner]);
  const kv = Buffer.concat([Buffer.from([0x0a, 0x04]), Buffer.from('deep'), Buffer.from(ld(2, anyValue.length)), anyValue]);
  const fixed64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };
  const span = Buffer.concat([
    Buffer.from([0x0a, 16]), Buffer.from(traceId, 'hex'),
    Buffer.from([0x12, 8]), Buffer.from(spanId, 'hex'),
    Buffer.from([0x2a, 4]), Buffer.from('deep'),
    Buffer.from([0x39]), fixed64(now), Buffer.from([0x41]), fixed64(now + 1000n),
    Buffer.from(ld(9, kv.length)), kv,
  ]);
  const ss = Buffer.concat([Buffer.from(ld(2, span.length)), span]);
  const rs = Buffer.concat([Buffer.from(ld(2, ss.length)), ss]);
  const req = Buffer.concat([Buffer.from(ld(1, rs.length)), rs]);
  writeFileSync(a.out, req);
}
console.log(traceId);
