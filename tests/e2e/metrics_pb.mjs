#!/usr/bin/env node
// metrics_pb.mjs: tempopb metrics messages for the e2e tests, without generated stubs.
//
//   node metrics_pb.mjs encode-range QUERY START_NS END_NS STEP_NS   -> QueryRangeRequest hex
//   node metrics_pb.mjs encode-instant QUERY START_NS END_NS         -> QueryInstantRequest hex
//   node metrics_pb.mjs decode-stream range|instant RESULT.json      (a grpc_stream.mjs --out file)
//   node metrics_pb.mjs decode-body range|instant BODY.pb            (an HTTP protobuf body)
//
// Decoding prints the response in Tempo JSON form ({series, metrics, status, message}, zero
// values left out as Tempo's jsonpb does), so it compares directly with the HTTP JSON answer.
// decode-stream merges the messages (series appended in order) and adds
// {messages: N, metricsInEvery: bool}.

import { readFileSync } from 'node:fs';

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
const key = (f, wt) => varint((f << 3) | wt);
const str = (f, s) => { const b = Buffer.from(s); return Buffer.concat([key(f, 2), varint(b.length), b]); };
const u64 = (f, v) => (BigInt(v) === 0n ? Buffer.alloc(0) : Buffer.concat([key(f, 0), varint(v)]));

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
    const k = rv();
    const f = Number(k >> 3n), wt = Number(k & 7n);
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
const signed = (v) => BigInt.asIntN(64, v);

function anyValue(buf) {
  for (const [f, , v] of fields(buf)) {
    if (f === 1) return { stringValue: v.toString() };
    if (f === 2) return { boolValue: v !== 0n };
    if (f === 3) return { intValue: signed(v).toString() };
    if (f === 4) return { doubleValue: v.readDoubleLE(0) };
  }
  return {};
}
function keyValue(buf) {
  const kv = { key: '', value: {} };
  for (const [f, , v] of fields(buf)) {
    if (f === 1) kv.key = v.toString();
    if (f === 2) kv.value = anyValue(v);
  }
  return kv;
}
function sample(buf) {
  let value = 0, ts = 0n;
  for (const [f, , v] of fields(buf)) {
    if (f === 1) value = v.readDoubleLE(0);
    if (f === 2) ts = signed(v);
  }
  const s = { timestampMs: ts.toString() };
  if (value !== 0) s.value = value;
  return s;
}
function exemplar(buf) {
  const e = { labels: [] };
  let value = 0, ts = 0n;
  for (const [f, , v] of fields(buf)) {
    if (f === 1) e.labels.push(keyValue(v));
    if (f === 2) value = v.readDoubleLE(0);
    if (f === 3) ts = signed(v);
  }
  if (value !== 0) e.value = value;
  e.timestampMs = ts.toString();
  return e;
}
function series(buf, instant) {
  const s = { labels: [] };
  let value = 0;
  const ex = [];
  if (!instant) s.samples = [];
  for (const [f, , v] of fields(buf)) {
    if (f === 1) s.labels.push(keyValue(v));
    else if (f === 2 && !instant) s.samples.push(sample(v));
    else if (f === 2 && instant) value = v.readDoubleLE(0);
    else if (f === 4) ex.push(exemplar(v));
  }
  if (instant && value !== 0) s.value = value;
  if (ex.length) s.exemplars = ex;
  return s;
}
function metrics(buf) {
  const m = {};
  for (const [f, , v] of fields(buf)) {
    if (f === 1) m.inspectedTraces = Number(v);
    if (f === 2) m.inspectedBytes = v.toString();
    if (f === 4) m.completedJobs = Number(v);
    if (f === 5) m.totalJobs = Number(v);
  }
  return m;
}
function response(buf, instant, into) {
  const r = into ?? { series: [] };
  let hasMetrics = false;
  for (const [f, , v] of fields(buf)) {
    if (f === 1) r.series.push(series(v, instant));
    else if (f === 2) { r.metrics = metrics(v); hasMetrics = true; }
    else if (f === 3 && v === 1n) r.status = 'PARTIAL';
    else if (f === 4) r.message = v.toString();
  }
  return [r, hasMetrics];
}

const [cmd, ...rest] = process.argv.slice(2);
switch (cmd) {
  case 'encode-range': {
    const [q, start, end, step] = rest;
    process.stdout.write(Buffer.concat([str(1, q), u64(2, start), u64(3, end), u64(4, step)]).toString('hex'));
    break;
  }
  case 'encode-instant': {
    const [q, start, end] = rest;
    process.stdout.write(Buffer.concat([str(1, q), u64(2, start), u64(3, end)]).toString('hex'));
    break;
  }
  case 'decode-stream': {
    const [kind, file] = rest;
    const res = JSON.parse(readFileSync(file, 'utf8'));
    const out = { series: [] };
    let every = res.messages.length > 0;
    for (const hex of res.messages) {
      const [, has] = response(Buffer.from(hex, 'hex'), kind === 'instant', out);
      if (!has) every = false;
    }
    out.messages = res.messages.length;
    out.metricsInEvery = every;
    out.maxMessageBytes = Math.max(0, ...res.messages.map((h) => h.length / 2));
    console.log(JSON.stringify(out));
    break;
  }
  case 'decode-body': {
    const [kind, file] = rest;
    const [r] = response(readFileSync(file), kind === 'instant');
    console.log(JSON.stringify(r));
    break;
  }
  default:
    console.error('usage: node metrics_pb.mjs encode-range|encode-instant|decode-stream|decode-body ...');
    process.exit(2);
}
