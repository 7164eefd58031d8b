#!/usr/bin/env node
// check_trace.mjs: read a trace back from traced's Tempo API in three representations and
// compare every field of every span with the description written by otel_export.mjs.
//
// Usage:
//   node check_trace.mjs --base http://127.0.0.1:3200 --expected expected.json
//                        [--timeout-ms 10000] [--interval-ms 100] [--retries N]
//                        [--header 'X-Scope-OrgID: t1' ...] [--max-diffs 20] [--v1-proto]
//
// Representations (API-CONTRACT §3.3, §3.4):
//   v1-json   GET /api/traces/<id>      Accept: application/json     {"batches":[ResourceSpans...]}
//   v2-json   GET /api/v2/traces/<id>   Accept: application/json     {"trace":{"resourceSpans":[...]}}
//   v2-proto  GET /api/v2/traces/<id>   Accept: application/protobuf TraceByIDResponse bytes
//   v1-proto  (only with --v1-proto)    GET /api/traces/<id> Accept: application/protobuf, Trace bytes
//
// Ingest is asynchronous, so each representation is polled every --interval-ms while the trace is
// missing (404, empty v2 trace, connection error) or has fewer spans than expected, for at most
// --timeout-ms in total (or at most --retries attempts per representation when given).
// Exit 0 and print "ok: N spans x 3 representations" when everything matches; otherwise print the
// first differences and exit 1 (exit 2 for usage errors).
//
// Besides values, the Tempo JSON encoding rules are checked (as "format" problems): base64 IDs,
// enum names for kind/status code, int64 (intValue, times) as strings, doubles as numbers, and
// protobuf wire types (times are fixed64, double is fixed64).

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';

function usage(msg) {
  if (msg) console.error(`check_trace: ${msg}`);
  console.error('usage: node check_trace.mjs --base http://127.0.0.1:3200 --expected expected.json ' +
    '[--timeout-ms 10000] [--interval-ms 100] [--retries N] [--header "Name: value"]... [--max-diffs 20] [--v1-proto]');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      base: { type: 'string' },
      expected: { type: 'string' },
      'timeout-ms': { type: 'string', default: '10000' },
      'interval-ms': { type: 'string', default: '100' },
      retries: { type: 'string' },
      header: { type: 'string', multiple: true, default: [] },
      'max-diffs': { type: 'string', default: '20' },
      'v1-proto': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage(e.message);
}
if (args.help) usage();
if (!args.base) usage('--base is required');
if (!args.expected) usage('--expected is required');
const posInt = (name, allowZero = false) => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) usage(`--${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer`);
  return n;
};
const timeoutMs = posInt('timeout-ms', true);
const intervalMs = posInt('interval-ms');
const maxDiffs = posInt('max-diffs');
const maxAttempts = args.retries !== undefined ? posInt('retries', true) + 1 : Infinity;
const base = args.base.replace(/\/+$/, '');
const extraHeaders = {};
for (const h of args.header) {
  const i = h.indexOf(':');
  if (i <= 0) usage(`bad --header (want "Name: value"): ${h}`);
  extraHeaders[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}

// ---------------------------------------------------------------------------------------
// Canonical shape helpers
const KIND_NAMES = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'];
const STATUS_NAMES = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'];
const HEX_RE = /^[0-9a-f]*$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function show(v) {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}

// ---------------------------------------------------------------------------------------
// Expected file normalisation (tolerant: hand-written files may omit defaults).
function normExpectedValue(v, path) {
  if (v == null || typeof v !== 'object' || !('type' in v)) throw new Error(`${path}: typed value {type, value} expected, got ${show(v)}`);
  switch (v.type) {
    case 'string': return { type: 'string', value: String(v.value) };
    case 'bool': return { type: 'bool', value: Boolean(v.value) };
    case 'int': return { type: 'int', value: BigInt(v.value).toString() };
    case 'double': return { type: 'double', value: typeof v.value === 'string' ? Number(v.value) : v.value };
    case 'array': return { type: 'array', value: (v.value ?? []).map((x, i) => normExpectedValue(x, `${path}[${i}]`)) };
    case 'kvlist': return { type: 'kvlist', value: normExpectedAttrs(v.value, path) };
    case 'bytes': return { type: 'bytes', value: Buffer.from(v.value ?? '', 'base64').toString('base64') };
    case 'empty': return { type: 'empty', value: null };
    default: throw new Error(`${path}: unknown type ${show(v.type)}`);
  }
}
function normExpectedAttrs(a, path) {
  const out = {};
  for (const k of Object.keys(a ?? {}).sort()) out[k] = normExpectedValue(a[k], `${path}.${k}`);
  return out;
}
function loadExpected(file) {
  const e = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof e.traceId !== 'string' || !/^[0-9a-fA-F]{32}$/.test(e.traceId)) throw new Error('expected.traceId must be 32 hex chars');
  if (!Array.isArray(e.spans) || e.spans.length === 0) throw new Error('expected.spans must be a non-empty array');
  const traceId = e.traceId.toLowerCase();
  const spans = e.spans.map((s, i) => {
    const p = `spans[${i}]`;
    const out = {
      traceId: (s.traceId ?? traceId).toLowerCase(),
      spanId: String(s.spanId).toLowerCase(),
      parentSpanId: (s.parentSpanId ?? '').toLowerCase(),
      name: s.name ?? '',
      kind: s.kind ?? 'SPAN_KIND_UNSPECIFIED',
      service: s.service ?? '',
      startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0).toString(),
      endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0).toString(),
      status: { code: s.status?.code ?? 'STATUS_CODE_UNSET', message: s.status?.message ?? '' },
      attributes: normExpectedAttrs(s.attributes, `${p}.attributes`),
      events: (s.events ?? []).map((ev, j) => ({
        name: ev.name ?? '',
        timeUnixNano: BigInt(ev.timeUnixNano ?? 0).toString(),
        attributes: normExpectedAttrs(ev.attributes, `${p}.events[${j}].attributes`),
      })),
      links: (s.links ?? []).map((l, j) => ({
        traceId: String(l.traceId).toLowerCase(),
        spanId: String(l.spanId).toLowerCase(),
        attributes: normExpectedAttrs(l.attributes, `${p}.links[${j}].attributes`),
      })),
    };
    if (s.scope) out.scope = { name: s.scope.name ?? '', version: s.scope.version ?? '' };
    return out;
  });
  let resources;
  if (e.resources) {
    resources = {};
    for (const svc of Object.keys(e.resources)) {
      resources[svc] = { attributes: normExpectedAttrs(e.resources[svc].attributes, `resources.${svc}`) };
    }
  }
  return { traceId, spans, resources };
}

// ---------------------------------------------------------------------------------------
// Tempo JSON -> canonical
function b64Id(v, bytes, path, issues, optional = false) {
  if (v === undefined || v === null || v === '') {
    if (!optional) issues.push(`${path}: missing`);
    return '';
  }
  if (typeof v !== 'string') { issues.push(`${path}: not a string: ${show(v)}`); return String(v); }
  if (v.length === bytes * 2 && HEX_RE.test(v.toLowerCase())) {
    // base64 of N bytes is never 2N chars long for N = 8 or 16
    issues.push(`${path}: ${show(v)} looks like hex; Tempo JSON encodes IDs as standard base64`);
    return v.toLowerCase();
  }
  if (!B64_RE.test(v)) {
    issues.push(`${path}: ${show(v)} is not standard padded base64`);
    return v;
  }
  const buf = Buffer.from(v, 'base64');
  if (buf.length !== bytes) issues.push(`${path}: decodes to ${buf.length} bytes, want ${bytes}`);
  return buf.toString('hex');
}

function jsonInt64(v, path, issues, what = 'int64') {
  if (v === undefined || v === null) return '0';
  if (typeof v === 'number') {
    issues.push(`${path}: ${what} is a JSON number (${v}); Tempo JSON writes 64-bit ints as strings`);
    return Number.isSafeInteger(v) ? String(v) : `${v}(unsafe)`;
  }
  if (typeof v !== 'string' || !/^-?\d+$/.test(v)) { issues.push(`${path}: bad ${what} ${show(v)}`); return String(v); }
  return BigInt(v).toString();
}

function jsonAny(v, path, issues) {
  if (v === undefined || v === null) return { type: 'empty', value: null };
  if (typeof v !== 'object' || Array.isArray(v)) { issues.push(`${path}: AnyValue is not an object: ${show(v)}`); return { type: 'invalid', value: v }; }
  const keys = Object.keys(v);
  if (keys.length === 0) return { type: 'empty', value: null };
  if (keys.length > 1) issues.push(`${path}: AnyValue has several keys ${show(keys)}`);
  const k = keys[0];
  const x = v[k];
  switch (k) {
    case 'stringValue':
      if (typeof x !== 'string') issues.push(`${path}.stringValue: not a string: ${show(x)}`);
      return { type: 'string', value: x };
    case 'boolValue':
      if (typeof x !== 'boolean') issues.push(`${path}.boolValue: not a boolean: ${show(x)}`);
      return { type: 'bool', value: x };
    case 'intValue':
      return { type: 'int', value: jsonInt64(x, `${path}.intValue`, issues, 'intValue') };
    case 'doubleValue':
      if (typeof x === 'number') return { type: 'double', value: x };
      if (x === 'NaN' || x === 'Infinity' || x === '-Infinity') return { type: 'double', value: Number(x) };
      issues.push(`${path}.doubleValue: not a JSON number: ${show(x)}`);
      return { type: 'double', value: Number(x) };
    case 'arrayValue': {
      const vals = x?.values ?? [];
      if (!Array.isArray(vals)) { issues.push(`${path}.arrayValue.values: not an array`); return { type: 'array', value: [] }; }
      return { type: 'array', value: vals.map((e, i) => jsonAny(e, `${path}.arrayValue.values[${i}]`, issues)) };
    }
    case 'kvlistValue':
      return { type: 'kvlist', value: jsonAttrs(x?.values, `${path}.kvlistValue`, issues) };
    case 'bytesValue':
      if (typeof x !== 'string' || !B64_RE.test(x)) issues.push(`${path}.bytesValue: not standard base64: ${show(x)}`);
      return { type: 'bytes', value: Buffer.from(String(x), 'base64').toString('base64') };
    default:
      issues.push(`${path}: unknown AnyValue key ${show(k)}`);
      return { type: 'invalid', value: v };
  }
}

function jsonAttrs(list, path, issues) {
  const out = {};
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list)) { issues.push(`${path}: attributes is not an array`); return out; }
  list.forEach((kv, i) => {
    const key = kv?.key;
    if (typeof key !== 'string') { issues.push(`${path}[${i}]: key missing or not a string`); return; }
    if (Object.hasOwn(out, key)) issues.push(`${path}: duplicate key ${show(key)}`);
    out[key] = jsonAny(kv.value, `${path}[${show(key)}]`, issues);
  });
  return sortKeys(out);
}

function sortKeys(o) {
  const out = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k];
  return out;
}

function jsonEnum(v, names, path, issues, what) {
  if (v === undefined || v === null) return names[0];
  if (typeof v === 'number') {
    issues.push(`${path}: ${what} is the number ${v}; Tempo JSON writes enum names like ${show(names[Math.min(2, names.length - 1)])}`);
    return names[v] ?? `#${v}`;
  }
  if (!names.includes(v)) issues.push(`${path}: unknown ${what} ${show(v)}`);
  return v;
}

function serviceOf(attrs) {
  const s = attrs['service.name'];
  return s && s.type === 'string' ? s.value : '';
}

function fromTempoJson(resourceSpans, label, issues, key = 'resourceSpans') {
  const spans = [];
  const resources = {};
  if (!Array.isArray(resourceSpans)) { issues.push(`${label}: resourceSpans/batches is not an array`); return { spans, resources }; }
  resourceSpans.forEach((rs, ri) => {
    const rp = `${label}.${key}[${ri}]`;
    const rattrs = jsonAttrs(rs?.resource?.attributes, `${rp}.resource.attributes`, issues);
    const service = serviceOf(rattrs);
    noteResource(resources, service, rattrs, rp, issues);
    let scopeSpans = rs?.scopeSpans;
    if (scopeSpans === undefined && rs?.instrumentationLibrarySpans !== undefined) {
      issues.push(`${rp}: uses instrumentationLibrarySpans; expected scopeSpans`);
      scopeSpans = rs.instrumentationLibrarySpans;
    }
    (scopeSpans ?? []).forEach((ss, si) => {
      const sp = `${rp}.scopeSpans[${si}]`;
      const scopeObj = ss?.scope ?? ss?.instrumentationLibrary ?? {};
      const scope = { name: scopeObj.name ?? '', version: scopeObj.version ?? '' };
      (ss?.spans ?? []).forEach((s, i) => {
        const p = `${sp}.spans[${i}]`;
        const st = s.status ?? {};
        spans.push({
          _path: p,
          traceId: b64Id(s.traceId, 16, `${p}.traceId`, issues),
          spanId: b64Id(s.spanId, 8, `${p}.spanId`, issues),
          parentSpanId: b64Id(s.parentSpanId, 8, `${p}.parentSpanId`, issues, true),
          name: s.name ?? '',
          kind: jsonEnum(s.kind, KIND_NAMES, `${p}.kind`, issues, 'kind'),
          service,
          scope,
          startTimeUnixNano: jsonInt64(s.startTimeUnixNano, `${p}.startTimeUnixNano`, issues, 'startTimeUnixNano'),
          endTimeUnixNano: jsonInt64(s.endTimeUnixNano, `${p}.endTimeUnixNano`, issues, 'endTimeUnixNano'),
          status: {
            code: jsonEnum(st.code, STATUS_NAMES, `${p}.status.code`, issues, 'status code'),
            message: st.message ?? '',
          },
          attributes: jsonAttrs(s.attributes, `${p}.attributes`, issues),
          events: (s.events ?? []).map((ev, j) => ({
            name: ev.name ?? '',
            timeUnixNano: jsonInt64(ev.timeUnixNano, `${p}.events[${j}].timeUnixNano`, issues, 'timeUnixNano'),
            attributes: jsonAttrs(ev.attributes, `${p}.events[${j}].attributes`, issues),
          })),
          links: (s.links ?? []).map((l, j) => ({
            traceId: b64Id(l.traceId, 16, `${p}.links[${j}].traceId`, issues),
            spanId: b64Id(l.spanId, 8, `${p}.links[${j}].spanId`, issues),
            attributes: jsonAttrs(l.attributes, `${p}.links[${j}].attributes`, issues),
          })),
        });
      });
    });
  });
  return { spans, resources };
}

function noteResource(resources, service, attrs, path, issues) {
  if (!resources[service]) { resources[service] = { attributes: attrs }; return; }
  if (show(resources[service].attributes) !== show(attrs)) {
    issues.push(`${path}: service ${show(service)} appears with different resource attributes in two batches`);
  }
}

// ---------------------------------------------------------------------------------------
// Minimal protobuf reader
const utf8 = new TextDecoder('utf-8', { fatal: true });

function readFields(buf, path) {
  const fields = [];
  let pos = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new Error(`${path}: truncated varint at byte ${pos}`);
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new Error(`${path}: varint longer than 10 bytes at byte ${pos}`);
  };
  while (pos < buf.length) {
    const start = pos;
    const tag = varint();
    const no = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    if (no === 0) throw new Error(`${path}: field number 0 at byte ${start}`);
    let val;
    switch (wt) {
      case 0: val = varint(); break;
      case 1:
        if (pos + 8 > buf.length) throw new Error(`${path}: truncated fixed64 field ${no}`);
        val = buf.subarray(pos, pos + 8); pos += 8; break;
      case 2: {
        const len = Number(varint());
        if (pos + len > buf.length) throw new Error(`${path}: field ${no} length ${len} runs past the end (${buf.length - pos} bytes left)`);
        val = buf.subarray(pos, pos + len); pos += len; break;
      }
      case 5:
        if (pos + 4 > buf.length) throw new Error(`${path}: truncated fixed32 field ${no}`);
        val = buf.subarray(pos, pos + 4); pos += 4; break;
      default:
        throw new Error(`${path}: unsupported wire type ${wt} (field ${no}) at byte ${start}`);
    }
    fields.push({ no, wt, val });
  }
  return fields;
}

const WT_NAMES = ['varint', 'fixed64', 'len', '?', '?', 'fixed32'];
function want(f, wt, path, issues, name) {
  if (f.wt === wt) return true;
  issues.push(`${path}: field ${f.no} (${name}) has wire type ${WT_NAMES[f.wt]}, want ${WT_NAMES[wt]}`);
  return false;
}
function pbString(f, path, issues, name) {
  if (!want(f, 2, path, issues, name)) return '';
  try { return utf8.decode(f.val); } catch { issues.push(`${path}: ${name} is not valid UTF-8`); return Buffer.from(f.val).toString('utf8'); }
}
function pbId(f, bytes, path, issues, name) {
  if (!want(f, 2, path, issues, name)) return '';
  if (f.val.length !== bytes && !(name === 'parent_span_id' && f.val.length === 0)) issues.push(`${path}: ${name} is ${f.val.length} bytes, want ${bytes}`);
  return Buffer.from(f.val).toString('hex');
}
function pbFixed64(f, path, issues, name) {
  if (f.wt === 0) { issues.push(`${path}: ${name} encoded as varint, must be fixed64`); return f.val.toString(); }
  if (!want(f, 1, path, issues, name)) return '0';
  return Buffer.from(f.val).readBigUInt64LE(0).toString();
}
function pbEnum(f, names, path, issues, name) {
  if (!want(f, 0, path, issues, name)) return names[0];
  const n = Number(BigInt.asIntN(32, f.val));
  return names[n] ?? `#${n}`;
}

function pbAny(buf, path, issues) {
  let out = { type: 'empty', value: null };
  for (const f of readFields(buf, path)) {
    switch (f.no) {
      case 1: out = { type: 'string', value: pbString(f, path, issues, 'string_value') }; break;
      case 2: if (want(f, 0, path, issues, 'bool_value')) out = { type: 'bool', value: f.val !== 0n }; break;
      case 3: if (want(f, 0, path, issues, 'int_value')) out = { type: 'int', value: BigInt.asIntN(64, f.val).toString() }; break;
      case 4: if (want(f, 1, path, issues, 'double_value')) out = { type: 'double', value: Buffer.from(f.val).readDoubleLE(0) }; break;
      case 5:
        if (want(f, 2, path, issues, 'array_value')) {
          out = { type: 'array', value: readFields(f.val, `${path}.array`).filter((g) => g.no === 1 && want(g, 2, path, issues, 'values')).map((g, i) => pbAny(g.val, `${path}.array[${i}]`, issues)) };
        }
        break;
      case 6:
        if (want(f, 2, path, issues, 'kvlist_value')) {
          out = { type: 'kvlist', value: pbAttrs(readFields(f.val, `${path}.kvlist`).filter((g) => g.no === 1), `${path}.kvlist`, issues) };
        }
        break;
      case 7: if (want(f, 2, path, issues, 'bytes_value')) out = { type: 'bytes', value: Buffer.from(f.val).toString('base64') }; break;
      default: break; // 8 string_value_strindex (profiles) and unknown fields: ignore
    }
  }
  return out;
}

// kvFields: list of fields each holding a KeyValue message
function pbAttrs(kvFields, path, issues) {
  const out = {};
  for (const f of kvFields) {
    if (!want(f, 2, path, issues, 'KeyValue')) continue;
    let key;
    let value = { type: 'empty', value: null };
    for (const g of readFields(f.val, `${path}.KeyValue`)) {
      if (g.no === 1) key = pbString(g, path, issues, 'key');
      else if (g.no === 2 && want(g, 2, path, issues, 'value')) value = pbAny(g.val, `${path}[${show(key)}]`, issues);
    }
    if (key === undefined) { issues.push(`${path}: KeyValue without key`); continue; }
    if (Object.hasOwn(out, key)) issues.push(`${path}: duplicate key ${show(key)}`);
    out[key] = value;
  }
  return sortKeys(out);
}

function pbSpan(buf, path, issues) {
  const s = {
    _path: path, traceId: '', spanId: '', parentSpanId: '', name: '', kind: KIND_NAMES[0],
    startTimeUnixNano: '0', endTimeUnixNano: '0', status: { code: STATUS_NAMES[0], message: '' },
    attributes: [], events: [], links: [],
  };
  const attrFields = [];
  for (const f of readFields(buf, path)) {
    switch (f.no) {
      case 1: s.traceId = pbId(f, 16, path, issues, 'trace_id'); break;
      case 2: s.spanId = pbId(f, 8, path, issues, 'span_id'); break;
      case 4: s.parentSpanId = pbId(f, 8, path, issues, 'parent_span_id'); break;
      case 5: s.name = pbString(f, path, issues, 'name'); break;
      case 6: s.kind = pbEnum(f, KIND_NAMES, path, issues, 'kind'); break;
      case 7: s.startTimeUnixNano = pbFixed64(f, path, issues, 'start_time_unix_nano'); break;
      case 8: s.endTimeUnixNano = pbFixed64(f, path, issues, 'end_time_unix_nano'); break;
      case 9: attrFields.push(f); break;
      case 11: {
        if (!want(f, 2, path, issues, 'events')) break;
        const ep = `${path}.events[${s.events.length}]`;
        const ev = { name: '', timeUnixNano: '0', attributes: {} };
        const evAttrs = [];
        for (const g of readFields(f.val, ep)) {
          if (g.no === 1) ev.timeUnixNano = pbFixed64(g, ep, issues, 'time_unix_nano');
          else if (g.no === 2) ev.name = pbString(g, ep, issues, 'name');
          else if (g.no === 3) evAttrs.push(g);
        }
        ev.attributes = pbAttrs(evAttrs, `${ep}.attributes`, issues);
        s.events.push(ev);
        break;
      }
      case 13: {
        if (!want(f, 2, path, issues, 'links')) break;
        const lp = `${path}.links[${s.links.length}]`;
        const l = { traceId: '', spanId: '', attributes: {} };
        const lAttrs = [];
        for (const g of readFields(f.val, lp)) {
          if (g.no === 1) l.traceId = pbId(g, 16, lp, issues, 'trace_id');
          else if (g.no === 2) l.spanId = pbId(g, 8, lp, issues, 'span_id');
          else if (g.no === 4) lAttrs.push(g);
        }
        l.attributes = pbAttrs(lAttrs, `${lp}.attributes`, issues);
        s.links.push(l);
        break;
      }
      case 15: {
        if (!want(f, 2, path, issues, 'status')) break;
        for (const g of readFields(f.val, `${path}.status`)) {
          if (g.no === 2) s.status.message = pbString(g, path, issues, 'status.message');
          else if (g.no === 3) s.status.code = pbEnum(g, STATUS_NAMES, path, issues, 'status.code');
        }
        break;
      }
      default: break;
    }
  }
  s.attributes = pbAttrs(attrFields, `${path}.attributes`, issues);
  return s;
}

// buf = tempopb.Trace (= OTLP TracesData): field 1 repeated ResourceSpans
function fromProtoTrace(buf, label, issues) {
  const spans = [];
  const resources = {};
  let ri = 0;
  for (const rsf of readFields(buf, label)) {
    if (rsf.no !== 1 || !want(rsf, 2, label, issues, 'resource_spans')) continue;
    const rp = `${label}.resourceSpans[${ri++}]`;
    let rattrs = {};
    const scopeFields = [];
    for (const f of readFields(rsf.val, rp)) {
      if (f.no === 1 && want(f, 2, rp, issues, 'resource')) {
        rattrs = pbAttrs(readFields(f.val, `${rp}.resource`).filter((g) => g.no === 1), `${rp}.resource.attributes`, issues);
      } else if (f.no === 2) {
        scopeFields.push(f);
      } else if (f.no === 1000) {
        issues.push(`${rp}: uses deprecated field 1000 (instrumentation_library_spans)`);
        scopeFields.push(f);
      }
    }
    const service = serviceOf(rattrs);
    noteResource(resources, service, rattrs, rp, issues);
    scopeFields.forEach((ssf, si) => {
      const sp = `${rp}.scopeSpans[${si}]`;
      if (!want(ssf, 2, sp, issues, 'scope_spans')) return;
      const scope = { name: '', version: '' };
      let i = 0;
      for (const f of readFields(ssf.val, sp)) {
        if (f.no === 1 && want(f, 2, sp, issues, 'scope')) {
          for (const g of readFields(f.val, `${sp}.scope`)) {
            if (g.no === 1) scope.name = pbString(g, sp, issues, 'scope.name');
            else if (g.no === 2) scope.version = pbString(g, sp, issues, 'scope.version');
          }
        } else if (f.no === 2 && want(f, 2, sp, issues, 'spans')) {
          const s = pbSpan(f.val, `${sp}.spans[${i++}]`, issues);
          s.service = service;
          s.scope = scope;
          spans.push(s);
        }
      }
    });
  }
  return { spans, resources };
}

// TraceByIDResponse: 1 trace (Trace), 2 metrics, 3 status (PartialStatus), 4 message
function fromProtoV2(buf, label, issues) {
  let traceBuf = null;
  let status = 0;
  let message = '';
  for (const f of readFields(buf, label)) {
    if (f.no === 1 && want(f, 2, label, issues, 'trace')) traceBuf = traceBuf ? Buffer.concat([traceBuf, f.val]) : Buffer.from(f.val);
    else if (f.no === 3 && want(f, 0, label, issues, 'status')) status = Number(f.val);
    else if (f.no === 4) message = pbString(f, label, issues, 'message');
  }
  if (traceBuf === null) {
    issues.push(`${label}: TraceByIDResponse has no field 1 (trace); even "not found" must carry an empty Trace (0a 00)`);
    traceBuf = Buffer.alloc(0);
  }
  if (status === 1) issues.push(`${label}: status PARTIAL${message ? `: ${message}` : ''}`);
  return fromProtoTrace(traceBuf, `${label}.trace`, issues);
}

// ---------------------------------------------------------------------------------------
// Fetching with retries
const REPS = [
  { label: 'v1-json', path: 'api/traces', accept: 'application/json', ctype: 'application/json' },
  { label: 'v2-json', path: 'api/v2/traces', accept: 'application/json', ctype: 'application/json' },
  { label: 'v2-proto', path: 'api/v2/traces', accept: 'application/protobuf', ctype: 'application/protobuf' },
];
if (args['v1-proto']) REPS.push({ label: 'v1-proto', path: 'api/traces', accept: 'application/protobuf', ctype: 'application/protobuf' });

function decode(rep, status, ctype, body, issues) {
  if (status === 404) return { missing: `404 ${body.toString('utf8').slice(0, 200).trim()}` };
  if (status !== 200) return { missing: `HTTP ${status}: ${body.toString('utf8').slice(0, 300).trim()}`, hard: status >= 400 && status !== 404 && status !== 503 && status !== 429 };
  if (!ctype.toLowerCase().startsWith(rep.ctype)) issues.push(`${rep.label}: Content-Type ${show(ctype)}, want ${rep.ctype}`);
  if (rep.label.endsWith('proto')) {
    const r = rep.label === 'v2-proto' ? fromProtoV2(body, rep.label, issues) : fromProtoTrace(body, rep.label, issues);
    return r;
  }
  let j;
  try { j = JSON.parse(body.toString('utf8')); } catch (e) {
    issues.push(`${rep.label}: body is not JSON: ${e.message}: ${show(body.toString('utf8').slice(0, 200))}`);
    return { spans: [], resources: {} };
  }
  if (rep.label === 'v1-json') {
    if (j.batches === undefined) {
      if (j.resourceSpans !== undefined) issues.push(`${rep.label}: top-level key is resourceSpans; Tempo v1 renames it to batches`);
      return j.resourceSpans !== undefined ? fromTempoJson(j.resourceSpans, rep.label, issues) : { missing: `no "batches" key in ${show(j).slice(0, 200)}` };
    }
    return fromTempoJson(j.batches, rep.label, issues, 'batches');
  }
  if (j.status === 'PARTIAL' || j.status === 1) issues.push(`${rep.label}: status PARTIAL: ${j.message ?? ''}`);
  if (j.trace === undefined && j.resourceSpans !== undefined) {
    issues.push(`${rep.label}: no "trace" envelope; v2 wraps the trace as {"trace":{"resourceSpans":[...]}}`);
    return fromTempoJson(j.resourceSpans, rep.label, issues);
  }
  if (j.trace === undefined || j.trace === null) return { missing: `no "trace" key in ${show(j).slice(0, 200)}` };
  if (j.trace.batches !== undefined) issues.push(`${rep.label}: trace uses "batches"; v2 keeps "resourceSpans"`);
  return fromTempoJson(j.trace.resourceSpans ?? j.trace.batches ?? [], `${rep.label}.trace`, issues);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fetchRep(rep, traceId, wantSpans, deadline) {
  const url = `${base}/${rep.path}/${traceId}`;
  let attempts = 0;
  let last;
  for (;;) {
    attempts++;
    const issues = [];
    let result;
    try {
      const res = await fetch(url, {
        headers: { Accept: rep.accept, ...extraHeaders },
        signal: AbortSignal.timeout(Math.max(1000, Math.min(5000, deadline - Date.now() + 1000))),
      });
      const body = Buffer.from(await res.arrayBuffer());
      try {
        result = decode(rep, res.status, res.headers.get('content-type') ?? '', body, issues);
      } catch (e) {
        issues.push(`${rep.label}: decode error: ${e.message}`);
        result = { spans: [], resources: {} };
      }
    } catch (e) {
      result = { missing: `request failed: ${e.cause?.code ?? e.cause?.message ?? e.message}` };
    }
    last = { ...result, issues, attempts, url };
    const incomplete = last.missing !== undefined || last.spans.length < wantSpans;
    if (!incomplete || last.hard || attempts >= maxAttempts || Date.now() + intervalMs > deadline) return last;
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------
// Comparison
function compareValue(exp, got, path, diffs) {
  if (exp.type !== got.type) {
    let hint = '';
    if (got.type === 'empty' && ['string', 'bool', 'int', 'double'].includes(exp.type)) {
      hint = ' (oneof members must be emitted even when they hold the zero value: "", false, 0)';
    }
    diffs.push(`${path}: type ${exp.type} expected, got ${got.type} (expected ${show(exp.value)}, got ${show(got.value)})${hint}`);
    return;
  }
  switch (exp.type) {
    case 'array':
      if (exp.value.length !== got.value.length) {
        diffs.push(`${path}: array length ${exp.value.length} expected, got ${got.value.length} (expected ${show(exp.value)}, got ${show(got.value)})`);
        return;
      }
      exp.value.forEach((e, i) => compareValue(e, got.value[i], `${path}[${i}]`, diffs));
      return;
    case 'kvlist':
      compareAttrs(exp.value, got.value, path, diffs);
      return;
    case 'double':
      if (!(Object.is(exp.value, got.value) || (exp.value === got.value))) diffs.push(`${path}: double ${show(exp.value)} expected, got ${show(got.value)}`);
      return;
    default:
      if (exp.value !== got.value) diffs.push(`${path}: ${exp.type} ${show(exp.value)} expected, got ${show(got.value)}`);
  }
}

function compareAttrs(exp, got, path, diffs) {
  for (const k of Object.keys(exp)) {
    if (!Object.hasOwn(got, k)) diffs.push(`${path}[${show(k)}]: missing (expected ${show(exp[k])})`);
    else compareValue(exp[k], got[k], `${path}[${show(k)}]`, diffs);
  }
  for (const k of Object.keys(got)) {
    if (!Object.hasOwn(exp, k)) diffs.push(`${path}[${show(k)}]: unexpected attribute ${show(got[k])}`);
  }
}

function compareScalar(exp, got, path, diffs) {
  if (exp !== got) diffs.push(`${path}: ${show(exp)} expected, got ${show(got)}`);
}

function compareSpan(e, g, diffs) {
  const p = `span ${e.spanId} (${show(e.name)})`;
  for (const f of ['traceId', 'parentSpanId', 'name', 'kind', 'service', 'startTimeUnixNano', 'endTimeUnixNano']) {
    compareScalar(e[f], g[f], `${p}.${f}`, diffs);
  }
  if (e.scope) {
    compareScalar(e.scope.name, g.scope?.name, `${p}.scope.name`, diffs);
    compareScalar(e.scope.version, g.scope?.version, `${p}.scope.version`, diffs);
  }
  compareScalar(e.status.code, g.status.code, `${p}.status.code`, diffs);
  compareScalar(e.status.message, g.status.message, `${p}.status.message`, diffs);
  compareAttrs(e.attributes, g.attributes, `${p}.attributes`, diffs);
  if (e.events.length !== g.events.length) {
    diffs.push(`${p}.events: ${e.events.length} expected, got ${g.events.length} (${show(g.events.map((x) => x.name))})`);
  }
  e.events.forEach((ev, i) => {
    const gv = g.events[i];
    if (!gv) return;
    compareScalar(ev.name, gv.name, `${p}.events[${i}].name`, diffs);
    compareScalar(ev.timeUnixNano, gv.timeUnixNano, `${p}.events[${i}].timeUnixNano`, diffs);
    compareAttrs(ev.attributes, gv.attributes, `${p}.events[${i}].attributes`, diffs);
  });
  if (e.links.length !== g.links.length) {
    diffs.push(`${p}.links: ${e.links.length} expected, got ${g.links.length}`);
  }
  e.links.forEach((l, i) => {
    const gl = g.links[i];
    if (!gl) return;
    compareScalar(l.traceId, gl.traceId, `${p}.links[${i}].traceId`, diffs);
    compareScalar(l.spanId, gl.spanId, `${p}.links[${i}].spanId`, diffs);
    compareAttrs(l.attributes, gl.attributes, `${p}.links[${i}].attributes`, diffs);
  });
}

function compareAll(expected, got) {
  const diffs = [];
  const byId = new Map();
  for (const s of got.spans) {
    if (byId.has(s.spanId)) diffs.push(`span ${s.spanId} (${show(s.name)}): returned more than once (${byId.get(s.spanId)._path} and ${s._path})`);
    else byId.set(s.spanId, s);
  }
  for (const e of expected.spans) {
    const g = byId.get(e.spanId);
    if (!g) { diffs.push(`span ${e.spanId} (${show(e.name)}, ${e.service}): missing`); continue; }
    compareSpan(e, g, diffs);
  }
  const expIds = new Set(expected.spans.map((s) => s.spanId));
  for (const s of got.spans) {
    if (!expIds.has(s.spanId)) diffs.push(`span ${s.spanId} (${show(s.name)}): unexpected span (trace ${s.traceId})`);
  }
  if (expected.resources) {
    for (const svc of Object.keys(expected.resources)) {
      if (!got.resources[svc]) { diffs.push(`resource ${show(svc)}: missing`); continue; }
      compareAttrs(expected.resources[svc].attributes, got.resources[svc].attributes, `resource ${show(svc)}.attributes`, diffs);
    }
    for (const svc of Object.keys(got.resources)) {
      if (!expected.resources[svc]) diffs.push(`resource ${show(svc)}: unexpected resource`);
    }
  }
  return diffs;
}

// Group format issues that differ only in indices, keys and numbers: show the first of each group.
function collapse(issues) {
  const groups = new Map();
  for (const text of issues) {
    const sig = text.replace(/\[("(?:[^"\\]|\\.)*"|\d+)\]/g, '[*]').replace(/"(?:[^"\\]|\\.)*"/g, '"*"').replace(/-?\d+/g, 'N');
    const g = groups.get(sig);
    if (g) g.count++;
    else groups.set(sig, { text, count: 1 });
  }
  return [...groups.values()].map((g) => (g.count > 1 ? `${g.text} (and ${g.count - 1} similar)` : g.text));
}

// ---------------------------------------------------------------------------------------
let expected;
try {
  expected = loadExpected(args.expected);
} catch (e) {
  console.error(`check_trace: cannot load ${args.expected}: ${e.message}`);
  process.exit(2);
}

const t0 = Date.now();
const deadline = t0 + timeoutMs;
let failed = false;
for (const rep of REPS) {
  const r = await fetchRep(rep, expected.traceId, expected.spans.length, deadline);
  const waited = Date.now() - t0;
  const problems = [];
  if (r.missing !== undefined) {
    problems.push(`${rep.label}: trace not available after ${r.attempts} attempt(s), ${waited} ms: ${r.missing}`);
  } else {
    if (r.spans.length < expected.spans.length) {
      problems.push(`${rep.label}: only ${r.spans.length} of ${expected.spans.length} spans after ${r.attempts} attempt(s), ${waited} ms`);
    }
    // value differences first, then encoding problems collapsed by kind
    if (r.spans.length > 0) problems.push(...compareAll(expected, r));
    problems.push(...collapse(r.issues).map((x) => `format: ${x}`));
  }
  if (problems.length) {
    failed = true;
    console.error(`FAIL ${rep.label} (GET ${r.url}, Accept: ${rep.accept}): ${problems.length} problem(s)`);
    for (const p of problems.slice(0, maxDiffs)) console.error(`  - ${p}`);
    if (problems.length > maxDiffs) console.error(`  ... and ${problems.length - maxDiffs} more (raise --max-diffs)`);
  } else {
    console.log(`${rep.label}: ${r.spans.length} spans match (${r.attempts} attempt(s))`);
  }
}

if (failed) {
  console.error(`check_trace: FAILED for trace ${expected.traceId}`);
  process.exit(1);
}
console.log(`ok: ${expected.spans.length} spans x ${REPS.length} representations (trace ${expected.traceId})`);
process.exit(0);
