#!/usr/bin/env node
// pyro_tool.mjs: dependency-free protobuf helpers for the Pyroscope e2e tests.
//
// Usage:
//   node pyro_tool.mjs pprof OUT.pb.gz TIME_NS   write a gzipped pprof (cpu/nanoseconds) with the
//        API-CONTRACT §6.3 stacks: main;a;b 3 (span_id 0000000000001111), main;a 1, main;c 2
//   node pyro_tool.mjs encode MESSAGE JSON OUT   encode a querier.v1 / types.v1 request (JSON in
//        protojson field names; int64 as strings or numbers) -> OUT
//   node pyro_tool.mjs decode MESSAGE FILE       decode a response -> JSON (int64 as strings,
//        zero fields omitted, like protojson)
// MESSAGE is a name from the schema below (e.g. SelectMergeStacktracesRequest, FlameGraph...).
// Exit status: 0 ok, 1 decode error, 2 usage.

import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

// field name -> [number, type, repeated?]; types: string, int64, uint64, double, bool, enum,
// bytes, or a message name
const S = {
  ProfileTypesRequest: { start: [1, 'int64'], end: [2, 'int64'] },
  ProfileTypesResponse: { profileTypes: [1, 'ProfileType', true] },
  ProfileType: { ID: [1, 'string'], name: [2, 'string'], sampleType: [4, 'string'],
    sampleUnit: [5, 'string'], periodType: [6, 'string'], periodUnit: [7, 'string'] },
  LabelNamesRequest: { matchers: [1, 'string', true], start: [2, 'int64'], end: [3, 'int64'] },
  LabelValuesRequest: { name: [1, 'string'], matchers: [2, 'string', true], start: [3, 'int64'],
    end: [4, 'int64'] },
  NamesResponse: { names: [1, 'string', true] },
  SeriesRequest: { matchers: [1, 'string', true], labelNames: [2, 'string', true],
    start: [3, 'int64'], end: [4, 'int64'] },
  SeriesResponse: { labelsSet: [2, 'Labels', true] },
  Labels: { labels: [1, 'LabelPair', true] },
  LabelPair: { name: [1, 'string'], value: [2, 'string'] },
  SelectMergeStacktracesRequest: { profileTypeID: [1, 'string'], labelSelector: [2, 'string'],
    start: [3, 'int64'], end: [4, 'int64'], maxNodes: [5, 'int64'], format: [6, 'enum'],
    spanSelector: [11, 'string', true] },
  SelectMergeStacktracesResponse: { flamegraph: [1, 'FlameGraph'], tree: [2, 'bytes'] },
  SelectMergeSpanProfileRequest: { profileTypeID: [1, 'string'], labelSelector: [2, 'string'],
    spanSelector: [3, 'string', true], start: [4, 'int64'], end: [5, 'int64'],
    maxNodes: [6, 'int64'], format: [7, 'enum'] },
  SelectMergeProfileRequest: { profileTypeID: [1, 'string'], labelSelector: [2, 'string'],
    start: [3, 'int64'], end: [4, 'int64'] },
  FlameGraph: { names: [1, 'string', true], levels: [2, 'Level', true], total: [3, 'int64'],
    maxSelf: [4, 'int64'] },
  FlameGraphDiff: { names: [1, 'string', true], levels: [2, 'Level', true], total: [3, 'int64'],
    maxSelf: [4, 'int64'], leftTicks: [5, 'int64'], rightTicks: [6, 'int64'] },
  Level: { values: [1, 'int64', true] },
  SelectSeriesRequest: { profileTypeID: [1, 'string'], labelSelector: [2, 'string'],
    start: [3, 'int64'], end: [4, 'int64'], groupBy: [5, 'string', true], step: [6, 'double'],
    aggregation: [7, 'enum'], limit: [9, 'int64'], exemplarType: [10, 'enum'] },
  SelectSeriesResponse: { series: [1, 'Series', true] },
  Series: { labels: [1, 'LabelPair', true], points: [2, 'Point', true] },
  Point: { value: [1, 'double'], timestamp: [2, 'int64'] },
  DiffRequest: { left: [1, 'SelectMergeStacktracesRequest'],
    right: [2, 'SelectMergeStacktracesRequest'] },
  DiffResponse: { flamegraph: [1, 'FlameGraphDiff'] },
  GetProfileStatsRequest: {},
  GetProfileStatsResponse: { dataIngested: [1, 'bool'], oldestProfileTime: [2, 'int64'],
    newestProfileTime: [3, 'int64'] },
};

// ---- writer ----
function varint(v) {
  let x = BigInt.asUintN(64, BigInt(v));
  const out = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
  return Buffer.from(out);
}
const key = (num, wt) => varint((num << 3) | wt);
const ld = (num, buf) => Buffer.concat([key(num, 2), varint(buf.length), buf]);

function encodeValue(type, num, v) {
  switch (type) {
    case 'string': return ld(num, Buffer.from(String(v), 'utf8'));
    case 'bytes': return ld(num, Buffer.from(v, 'base64'));
    case 'int64': case 'uint64': case 'enum': return Buffer.concat([key(num, 0), varint(v)]);
    case 'bool': return Buffer.concat([key(num, 0), varint(v ? 1 : 0)]);
    case 'double': { const b = Buffer.alloc(8); b.writeDoubleLE(Number(v)); return Buffer.concat([key(num, 1), b]); }
    default: return ld(num, encode(type, v));
  }
}

export function encode(msg, obj) {
  const sch = S[msg];
  if (!sch) throw new Error('unknown message ' + msg);
  const parts = [];
  for (const [name, v] of Object.entries(obj)) {
    const f = sch[name];
    if (!f) throw new Error(`${msg}: unknown field ${name}`);
    const [num, type, rep] = f;
    for (const x of rep ? v : [v]) parts.push(encodeValue(type, num, x));
  }
  return Buffer.concat(parts);
}

// ---- reader ----
function readVarint(buf, pos) {
  let x = 0n, shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    x |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [x, pos];
    shift += 7n;
  }
}

export function decode(msg, buf) {
  const sch = S[msg];
  const byNum = {};
  for (const [name, f] of Object.entries(sch)) byNum[f[0]] = [name, ...f];
  const out = {};
  let pos = 0;
  const put = (f, v) => {
    const [name, , , rep] = f;
    if (rep) (out[name] ||= []).push(v); else out[name] = v;
  };
  while (pos < buf.length) {
    let k;
    [k, pos] = readVarint(buf, pos);
    const num = Number(k >> 3n), wt = Number(k & 7n);
    const f = byNum[num];
    if (wt === 0) {
      let v;
      [v, pos] = readVarint(buf, pos);
      if (!f) continue;
      const t = f[2];
      put(f, t === 'bool' ? v !== 0n : t === 'enum' ? Number(v)
        : t === 'int64' ? BigInt.asIntN(64, v).toString() : v.toString());
    } else if (wt === 1) {
      if (f) put(f, buf.readDoubleLE(pos));
      pos += 8;
    } else if (wt === 5) {
      pos += 4;
    } else if (wt === 2) {
      let n;
      [n, pos] = readVarint(buf, pos);
      const sub = buf.subarray(pos, pos + Number(n));
      pos += Number(n);
      if (!f) continue;
      const t = f[2];
      if (t === 'string') put(f, sub.toString('utf8'));
      else if (t === 'bytes') put(f, sub.toString('base64'));
      else if (t === 'int64') { // packed
        let p = 0;
        while (p < sub.length) { let v; [v, p] = readVarint(sub, p); put(f, BigInt.asIntN(64, v).toString()); }
      } else put(f, decode(t, sub));
    } else {
      throw new Error('bad wire type ' + wt);
    }
  }
  return out;
}

// ---- pprof ----
function pprof(timeNs) {
  const strings = [''];
  const str = (s) => { let i = strings.indexOf(s); if (i < 0) { i = strings.length; strings.push(s); } return i; };
  const msg = (fields) => Buffer.concat(fields);
  const vt = (num, t, u) => ld(num, msg([key(1, 0), varint(str(t)), key(2, 0), varint(str(u))]));
  const parts = [vt(1, 'cpu', 'nanoseconds')];
  const fnames = ['main', 'a', 'b', 'c'];
  // mapping 1
  parts.push(ld(3, msg([key(1, 0), varint(1), key(5, 0), varint(str('/bin/shop')),
    key(7, 0), varint(1)])));
  fnames.forEach((n, i) => {
    // location i+1 -> function i+1, line 10*(i+1)
    const line = msg([key(1, 0), varint(i + 1), key(2, 0), varint(10 * (i + 1))]);
    parts.push(ld(4, msg([key(1, 0), varint(i + 1), key(2, 0), varint(1), key(3, 0),
      varint(0x1000 + i), ld(4, line)])));
    parts.push(ld(5, msg([key(1, 0), varint(i + 1), key(2, 0), varint(str(n)), key(3, 0),
      varint(str(n)), key(4, 0), varint(str(n + '.go'))])));
  });
  const sample = (locs, v, span) => {
    const f = [ld(1, Buffer.concat(locs.map(varint))), ld(2, varint(v))];
    if (span) f.push(ld(3, msg([key(1, 0), varint(str('span_id')), key(2, 0), varint(str(span))])));
    return ld(2, msg(f));
  };
  parts.push(sample([3, 2, 1], 3, '0000000000001111')); // main;a;b (leaf first)
  parts.push(sample([2, 1], 1));
  parts.push(sample([4, 1], 2, '0000000000002222'));
  parts.push(Buffer.concat([key(9, 0), varint(BigInt(timeNs))]));
  parts.push(Buffer.concat([key(10, 0), varint(10_000_000_000n)]));
  parts.push(vt(11, 'cpu', 'nanoseconds'));
  parts.push(Buffer.concat([key(12, 0), varint(10_000_000)]));
  // the string table last: every index above is assigned by now
  const table = strings.map((s) => ld(6, Buffer.from(s, 'utf8')));
  return gzipSync(Buffer.concat([...parts, ...table]));
}

const [cmd, a1, a2, a3] = process.argv.slice(2);
try {
  if (cmd === 'pprof' && a1 && a2) {
    writeFileSync(a1, pprof(a2));
  } else if (cmd === 'encode' && a1 && a2 !== undefined && a3) {
    writeFileSync(a3, encode(a1, JSON.parse(a2)));
  } else if (cmd === 'decode' && a1 && a2) {
    console.log(JSON.stringify(decode(a1, readFileSync(a2))));
  } else {
    console.error('usage: pyro_tool.mjs pprof OUT TIME_NS | encode MSG JSON OUT | decode MSG FILE');
    process.exit(2);
  }
} catch (e) {
  console.error('pyro_tool: ' + e.message);
  process.exit(1);
}
