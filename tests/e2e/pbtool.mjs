#!/usr/bin/env node
// pbtool.mjs: a tiny, dependency-free protobuf writer/reader for the e2e tests.
//
// Usage:
//   node pbtool.mjs encode IN.json OUT.pb     OTLP JSON (ExportTraceServiceRequest, §2.5 rules) -> protobuf
//   node pbtool.mjs status FILE               decode a google.rpc.Status (RetryInfo details decoded) -> JSON
//   node pbtool.mjs export-response FILE      decode an ExportTraceServiceResponse -> JSON
//   node pbtool.mjs trace-spans FILE [v1|v2]  count spans in a tempopb Trace (v1) / TraceByIDResponse (v2)
//   node pbtool.mjs fields FILE               dump the top-level fields (number, wire type, length/value)
//
// The encoder is deliberately literal so that tests can build invalid-but-decodable requests:
//   - IDs are hex strings written as-is (any length; "" writes an explicit zero-length field);
//   - a key that is absent is not written; `value: {}` writes an empty AnyValue, `value: null`
//     or no `value` writes a KeyValue without field 2;
//   - intValue / *UnixNano accept decimal strings or numbers and are encoded as int64/fixed64 without
//     going through double; doubleValue accepts numbers and "NaN" / "Infinity" / "-Infinity";
//   - kind / status.code are integers (enum names like "SPAN_KIND_SERVER" are mapped too);
//   - JSON.parse reads the input, so 64-bit values given as JSON *numbers* lose precision: use strings.
// Exit status: 0 ok, 1 decode error, 2 usage.
//
// Also importable: encodeExportRequest(obj) -> Buffer, decodeStatus(buf), decodeExportResponse(buf),
// readFields(buf).

import { readFileSync, writeFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------
// Writer
class W {
  constructor() { this.parts = []; }
  raw(b) { this.parts.push(Buffer.from(b)); return this; }
  varint(v) {
    let x = BigInt.asUintN(64, BigInt(v));
    const out = [];
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) byte |= 0x80;
      out.push(byte);
    } while (x !== 0n);
    return this.raw(out);
  }
  tag(field, wt) { return this.varint((BigInt(field) << 3n) | BigInt(wt)); }
  uint(field, v) { return this.tag(field, 0).varint(v); }
  bytes(field, b) { const buf = Buffer.from(b); return this.tag(field, 2).varint(buf.length).raw(buf); }
  str(field, s) { return this.bytes(field, Buffer.from(String(s), 'utf8')); }
  msg(field, w) { return this.bytes(field, w.done()); }
  fixed64(field, v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
    return this.tag(field, 1).raw(b);
  }
  fixed32(field, v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(Number(v) >>> 0);
    return this.tag(field, 5).raw(b);
  }
  double(field, d) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(d);
    return this.tag(field, 1).raw(b);
  }
  done() { return Buffer.concat(this.parts); }
}

const has = (o, k) => o != null && Object.hasOwn(o, k) && o[k] !== null && o[k] !== undefined;
const hexBytes = (s) => {
  const h = String(s);
  if (!/^[0-9a-fA-F]*$/.test(h) || h.length % 2) throw new Error(`bad hex id ${JSON.stringify(s)}`);
  return Buffer.from(h, 'hex');
};
const int64 = (v) => BigInt(typeof v === 'number' ? Math.trunc(v) : String(v));
const KINDS = { SPAN_KIND_UNSPECIFIED: 0, SPAN_KIND_INTERNAL: 1, SPAN_KIND_SERVER: 2, SPAN_KIND_CLIENT: 3, SPAN_KIND_PRODUCER: 4, SPAN_KIND_CONSUMER: 5 };
const CODES = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 };
const enumVal = (v, names) => (typeof v === 'string' && Object.hasOwn(names, v) ? names[v] : Number(v));

function anyValue(v) {
  const w = new W();
  if (v == null) return w;
  if (has(v, 'stringValue')) w.str(1, v.stringValue);
  else if (has(v, 'boolValue')) w.uint(2, v.boolValue ? 1 : 0);
  else if (has(v, 'intValue')) w.uint(3, int64(v.intValue));
  else if (has(v, 'doubleValue')) w.double(4, typeof v.doubleValue === 'string' ? Number(v.doubleValue) : v.doubleValue);
  else if (has(v, 'arrayValue')) {
    const a = new W();
    for (const x of v.arrayValue.values ?? []) a.msg(1, anyValue(x));
    w.msg(5, a);
  } else if (has(v, 'kvlistValue')) {
    const a = new W();
    for (const kv of v.kvlistValue.values ?? []) a.msg(1, keyValue(kv));
    w.msg(6, a);
  } else if (has(v, 'bytesValue')) w.bytes(7, Buffer.from(v.bytesValue, 'base64'));
  return w;
}

function keyValue(kv) {
  const w = new W();
  if (has(kv, 'key')) w.str(1, kv.key);
  if (has(kv, 'value')) w.msg(2, anyValue(kv.value));
  return w;
}

function attrs(w, field, list) {
  for (const kv of list ?? []) w.msg(field, keyValue(kv));
}

function span(s) {
  const w = new W();
  if (has(s, 'traceId')) w.bytes(1, hexBytes(s.traceId));
  if (has(s, 'spanId')) w.bytes(2, hexBytes(s.spanId));
  if (has(s, 'traceState')) w.str(3, s.traceState);
  if (has(s, 'parentSpanId') && s.parentSpanId !== '') w.bytes(4, hexBytes(s.parentSpanId));
  if (has(s, 'name')) w.str(5, s.name);
  if (has(s, 'kind')) w.uint(6, enumVal(s.kind, KINDS));
  if (has(s, 'startTimeUnixNano')) w.fixed64(7, int64(s.startTimeUnixNano));
  if (has(s, 'endTimeUnixNano')) w.fixed64(8, int64(s.endTimeUnixNano));
  attrs(w, 9, s.attributes);
  if (has(s, 'droppedAttributesCount')) w.uint(10, s.droppedAttributesCount);
  for (const e of s.events ?? []) {
    const ew = new W();
    if (has(e, 'timeUnixNano')) ew.fixed64(1, int64(e.timeUnixNano));
    if (has(e, 'name')) ew.str(2, e.name);
    attrs(ew, 3, e.attributes);
    if (has(e, 'droppedAttributesCount')) ew.uint(4, e.droppedAttributesCount);
    w.msg(11, ew);
  }
  if (has(s, 'droppedEventsCount')) w.uint(12, s.droppedEventsCount);
  for (const l of s.links ?? []) {
    const lw = new W();
    if (has(l, 'traceId')) lw.bytes(1, hexBytes(l.traceId));
    if (has(l, 'spanId')) lw.bytes(2, hexBytes(l.spanId));
    if (has(l, 'traceState')) lw.str(3, l.traceState);
    attrs(lw, 4, l.attributes);
    if (has(l, 'droppedAttributesCount')) lw.uint(5, l.droppedAttributesCount);
    if (has(l, 'flags')) lw.fixed32(6, l.flags);
    w.msg(13, lw);
  }
  if (has(s, 'droppedLinksCount')) w.uint(14, s.droppedLinksCount);
  if (has(s, 'status')) {
    const sw = new W();
    if (has(s.status, 'message')) sw.str(2, s.status.message);
    if (has(s.status, 'code')) sw.uint(3, enumVal(s.status.code, CODES));
    w.msg(15, sw);
  }
  if (has(s, 'flags')) w.fixed32(16, s.flags);
  return w;
}

export function encodeExportRequest(req) {
  const w = new W();
  for (const rs of req.resourceSpans ?? []) {
    const rw = new W();
    if (has(rs, 'resource')) {
      const res = new W();
      attrs(res, 1, rs.resource.attributes);
      if (has(rs.resource, 'droppedAttributesCount')) res.uint(2, rs.resource.droppedAttributesCount);
      rw.msg(1, res);
    }
    for (const ss of rs.scopeSpans ?? []) {
      const sw = new W();
      if (has(ss, 'scope')) {
        const sc = new W();
        if (has(ss.scope, 'name')) sc.str(1, ss.scope.name);
        if (has(ss.scope, 'version')) sc.str(2, ss.scope.version);
        attrs(sc, 3, ss.scope.attributes);
        if (has(ss.scope, 'droppedAttributesCount')) sc.uint(4, ss.scope.droppedAttributesCount);
        sw.msg(1, sc);
      }
      for (const s of ss.spans ?? []) sw.msg(2, span(s));
      if (has(ss, 'schemaUrl')) sw.str(3, ss.schemaUrl);
      rw.msg(2, sw);
    }
    if (has(rs, 'schemaUrl')) rw.str(3, rs.schemaUrl);
    w.msg(1, rw);
  }
  return w.done();
}

// ---------------------------------------------------------------------------------------
// Reader
export function readFields(buf) {
  const b = Buffer.from(buf);
  const out = [];
  let i = 0;
  const varint = () => {
    let x = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= b.length) throw new Error('truncated varint');
      const byte = b[i++];
      x |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return x;
      shift += 7n;
      if (shift > 63n) throw new Error('varint too long');
    }
  };
  while (i < b.length) {
    const key = varint();
    const num = Number(key >> 3n);
    const wt = Number(key & 7n);
    if (num === 0) throw new Error('field number 0');
    if (wt === 0) out.push({ num, wt, val: varint() });
    else if (wt === 1) {
      if (i + 8 > b.length) throw new Error('truncated fixed64');
      out.push({ num, wt, val: b.subarray(i, i + 8) });
      i += 8;
    } else if (wt === 2) {
      const len = Number(varint());
      if (i + len > b.length) throw new Error(`truncated length-delimited field ${num}`);
      out.push({ num, wt, val: b.subarray(i, i + len) });
      i += len;
    } else if (wt === 5) {
      if (i + 4 > b.length) throw new Error('truncated fixed32');
      out.push({ num, wt, val: b.subarray(i, i + 4) });
      i += 4;
    } else throw new Error(`unsupported wire type ${wt}`);
  }
  return out;
}

const int32 = (x) => Number(BigInt.asIntN(32, x));
const int64s = (x) => BigInt.asIntN(64, x).toString();

function decodeDuration(buf) {
  const d = { seconds: '0', nanos: 0 };
  for (const f of readFields(buf)) {
    if (f.num === 1 && f.wt === 0) d.seconds = int64s(f.val);
    if (f.num === 2 && f.wt === 0) d.nanos = int32(f.val);
  }
  return d;
}

export function decodeStatus(buf) {
  const st = { code: 0, message: '', details: [] };
  for (const f of readFields(buf)) {
    if (f.num === 1 && f.wt === 0) st.code = int32(f.val);
    else if (f.num === 2 && f.wt === 2) st.message = f.val.toString('utf8');
    else if (f.num === 3 && f.wt === 2) {
      const any = { typeUrl: '', valueHex: '' };
      for (const g of readFields(f.val)) {
        if (g.num === 1 && g.wt === 2) any.typeUrl = g.val.toString('utf8');
        if (g.num === 2 && g.wt === 2) any.valueHex = g.val.toString('hex');
      }
      if (any.typeUrl === 'type.googleapis.com/google.rpc.RetryInfo') {
        any.retryDelay = { seconds: '0', nanos: 0 };
        for (const g of readFields(Buffer.from(any.valueHex, 'hex'))) {
          if (g.num === 1 && g.wt === 2) any.retryDelay = decodeDuration(g.val);
        }
      }
      st.details.push(any);
    }
  }
  return st;
}

export function decodeExportResponse(buf) {
  const r = {};
  for (const f of readFields(buf)) {
    if (f.num === 1 && f.wt === 2) {
      const ps = { rejectedSpans: '0', errorMessage: '' };
      for (const g of readFields(f.val)) {
        if (g.num === 1 && g.wt === 0) ps.rejectedSpans = int64s(g.val);
        if (g.num === 2 && g.wt === 2) ps.errorMessage = g.val.toString('utf8');
      }
      r.partialSuccess = ps;
    }
  }
  return r;
}

// Spans in a Trace { repeated ResourceSpans = 1 } -> ScopeSpans = 2 -> Span = 2.
export function countTraceSpans(buf) {
  let n = 0;
  for (const rs of readFields(buf)) {
    if (rs.num !== 1 || rs.wt !== 2) continue;
    for (const ss of readFields(rs.val)) {
      if (ss.num !== 2 || ss.wt !== 2) continue;
      for (const sp of readFields(ss.val)) if (sp.num === 2 && sp.wt === 2) n++;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------
function main(argv) {
  const usage = () => {
    console.error('usage: node pbtool.mjs encode IN.json OUT.pb | status FILE | export-response FILE | trace-spans FILE [v1|v2] | fields FILE');
    process.exit(2);
  };
  const [cmd, a, b] = argv;
  if (!cmd || !a) usage();
  try {
    switch (cmd) {
      case 'encode': {
        if (!b) usage();
        writeFileSync(b, encodeExportRequest(JSON.parse(readFileSync(a, 'utf8'))));
        break;
      }
      case 'status':
        console.log(JSON.stringify(decodeStatus(readFileSync(a))));
        break;
      case 'export-response':
        console.log(JSON.stringify(decodeExportResponse(readFileSync(a))));
        break;
      case 'trace-spans': {
        let buf = readFileSync(a);
        if ((b ?? 'v1') === 'v2') {
          const t = readFields(buf).find((f) => f.num === 1 && f.wt === 2);
          buf = t ? t.val : Buffer.alloc(0);
        }
        console.log(countTraceSpans(buf));
        break;
      }
      case 'fields':
        console.log(JSON.stringify(readFields(readFileSync(a)).map((f) => ({
          num: f.num, wt: f.wt, ...(f.wt === 0 ? { val: f.val.toString() } : { len: f.val.length, hex: f.val.subarray(0, 32).toString('hex') }),
        }))));
        break;
      default:
        usage();
    }
  } catch (e) {
    console.error(`pbtool: ${cmd} ${a}: ${e.message}`);
    process.exit(1);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) main(process.argv.slice(2));
