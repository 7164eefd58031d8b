// fake_tempo.mjs - a canned Tempo query API for testing tracectl without traced.
//
// Listens on 127.0.0.1 on an ephemeral port and prints the port number as the
// first line of stdout. Routes (GET only):
//   /api/v2/traces/<KNOWN_ID>    Tempo v2 JSON: 6 spans, 2 services, an orphan,
//                                an error status, attributes of every AnyValue type
//   /api/v2/traces/<ECHO_ID>     one span whose name echoes the request headers
//                                ("org=<X-Scope-OrgID> accept=<Accept>") and query
//   /api/v2/traces/<DEEP_ID>     a chain of DEEP_SPANS spans, each the child of the previous
//   /api/v2/traces/<WIDE_ID>     one root with WIDE_SPANS - 1 children
//   /api/v2/traces/<HOSTILE_ID>  malformed but parseable: a parent cycle, a self-parent, junk
//                                entries, terminal escapes in names, an int64-overflowing number
//   /api/v2/traces/<V404_ID>     404 "trace not found"
//   /api/v2/traces/<SLOW_ID>     never answers (timeout test)
//   /api/v2/traces/<BADJSON_ID>  200 with a body that is not JSON
//   /api/v2/traces/5000          500 "boom"
//   /api/v2/traces/<other>       200 {"trace":{},"metrics":{}} (Tempo's "not found")
//   /canned/<id>                 the exact body served for /api/v2/traces/<id>
//   /api/search?q=...            SearchResponse JSON chosen by the query text q:
//                                  contains "bad"   400 "invalid TraceQL query: ..."
//                                  contains "none"  200, no traces (the key omitted, as Tempo does)
//                                  contains "empty" 200, "traces": []
//                                  contains "echo"  200, one trace; the body's "request" member holds
//                                                   the raw query string, decoded params and headers
//                                  contains "slow"  never answers
//                                  contains "boom"  500 "boom"
//                                  contains "junk"  200 with a body that is not JSON
//                                  otherwise        SEARCH_BODY (5 traces, see searchBody)
//   /canned-search               the exact body of SEARCH_BODY
//   /api/v2/search/tags          SearchTagsV2Response chosen by the scope parameter:
//                                  trace  200, one scope "echo" whose tags are the raw query
//                                         string, the X-Scope-OrgID and Accept headers
//                                  link   200, scopes without tags (nothing listed)
//                                  event  400 "invalid scope: event"
//                                  otherwise TAGS_BODY (resource, span with a hostile name, intrinsic)
//   /api/v2/search/tag/<t>/values SearchTagValuesV2Response chosen by the raw (undecoded) tag t:
//                                  contains "echo"  one string value: the raw path and query
//                                  contains "none"  200, {"tagValues":[]}
//                                  contains "bad"   400 "please provide a valid tagName: ..."
//                                  contains "boom"  500 "boom"
//                                  otherwise        VALUES_BODY (typed values, one hostile)
// Every ID is also exported for tests that import this module.

import http from 'node:http';
import { fileURLToPath } from 'node:url';

export const KNOWN_ID = '5b8efff798038103d269b633813fc60c';
export const ECHO_ID = '0e0e';
export const DEEP_ID = 'dee9';
export const WIDE_ID = 'a1de';
export const HOSTILE_ID = 'bee5';
export const V404_ID = '4040';
export const SLOW_ID = '5105';
export const BADJSON_ID = 'bad0';
export const DEEP_SPANS = 10000;
export const WIDE_SPANS = 10000;

const b64 = (hex) => Buffer.from(hex, 'hex').toString('base64');
const T0 = 1700000000000000000n; // ns
const ns = (ms) => (T0 + BigInt(Math.round(ms * 1e6))).toString();
const str = (key, v) => ({ key, value: { stringValue: v } });

function span(id, parent, name, kind, startMs, durMs, extra = {}) {
  const s = {
    traceId: b64(KNOWN_ID),
    spanId: b64(id),
    name,
    kind,
    startTimeUnixNano: ns(startMs),
    endTimeUnixNano: ns(startMs + durMs),
    status: {},
    ...extra,
  };
  if (parent) s.parentSpanId = b64(parent);
  return s;
}

// IDs: a=root, b/c children of a, d child of c (other service), e child of d, f orphan.
export const SPAN_IDS = {
  root: '1000000000000001',
  lookup: '1000000000000002',
  call: '1000000000000003',
  items: '2000000000000004',
  select: '2000000000000005',
  orphan: '2000000000000006',
  missingParent: '00f067aa0ba902b7',
};

function knownTrace() {
  const I = SPAN_IDS;
  const frontend = {
    resource: {
      attributes: [str('service.name', 'frontend'), str('host.name', 'web-1')],
      droppedAttributesCount: 0,
      someFutureField: { nested: true },
    },
    scopeSpans: [{
      scope: { name: 'manual', version: '1.0.0' },
      spans: [
        // Deliberately out of start order: tracectl must sort children by start.
        span(I.call, I.root, 'POST cart', 'SPAN_KIND_CLIENT', 400, 800, {
          attributes: [str('http.request.method', 'POST'), str('url.path', '/items')],
        }),
        span(I.root, null, 'GET /cart', 'SPAN_KIND_SERVER', 0, 1250, {
          attributes: [
            str('http.request.method', 'GET'),
            str('http.route', '/cart'),
            { key: 'http.response.status_code', value: { intValue: '500' } },
            str('user.note', 'not shown'),
          ],
          status: { code: 'STATUS_CODE_ERROR', message: 'boom' },
          flags: 257,
        }),
        span(I.lookup, I.root, 'cart.lookup', 'SPAN_KIND_INTERNAL', 5, 0.3, {
          attributes: [
            { key: 'cache.hit', value: { boolValue: true } },
            { key: 'cache.ratio', value: { doubleValue: 0.25 } },
            // Key attributes deliberately holding every AnyValue type.
            { key: 'http.route', value: { bytesValue: 'AAEC/w==' } },
            { key: 'db.system', value: { kvlistValue: { values: [{ key: 'k', value: { stringValue: 'v' } }, { key: 'n', value: { doubleValue: 1.5 } }] } } },
            { key: 'rpc.method', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '2' }, { boolValue: false }, { doubleValue: 0.25 }, { stringValue: 'x y' }] } } },
            { key: 'error', value: { boolValue: true } },
            { key: 'empty', value: {} },
          ],
          status: { code: 'STATUS_CODE_OK' },
        }),
      ],
    }],
  };
  const cart = {
    resource: { attributes: [str('service.name', 'cart')] },
    scopeSpans: [{
      scope: { name: 'otel' },
      spans: [
        span(I.items, I.call, 'POST /items', 'SPAN_KIND_SERVER', 410, 780, {
          attributes: [str('http.method', 'POST'), str('http.route', '/items'),
            { key: 'http.status_code', value: { intValue: 201 } }],
          status: { code: 'STATUS_CODE_OK' },
        }),
        span(I.select, I.items, 'SELECT items', 'SPAN_KIND_CLIENT', 420, 50, {
          attributes: [str('db.system', 'postgresql'), str('db.statement', 'SELECT * FROM items')],
          events: [{
            timeUnixNano: ns(430), name: 'exception',
            attributes: [str('exception.type', 'PgError'), str('exception.message', 'deadlock detected')],
          }],
          status: { code: 'STATUS_CODE_ERROR' },
        }),
        span(I.orphan, I.missingParent, 'flush queue', 'SPAN_KIND_PRODUCER', 1300, 2.5, {
          attributes: [{ key: 'messaging.system', value: { stringValue: 'kafka' } }],
        }),
      ],
    }],
  };
  return {
    trace: { resourceSpans: [frontend, cart] },
    metrics: { inspectedBytes: '4242', totalBlockBytes: '0' },
  };
}

function chainTrace(n, wide) {
  const spans = [];
  const id = (i) => (i + 1).toString(16).padStart(16, '0');
  for (let i = 0; i < n; i++) {
    const parent = i === 0 ? null : wide ? id(0) : id(i - 1);
    spans.push(span(id(i), parent, `op-${i}`, 'SPAN_KIND_INTERNAL', i * 0.001, 1));
  }
  return {
    trace: { resourceSpans: [{ resource: { attributes: [str('service.name', 'big')] }, scopeSpans: [{ spans }] }] },
    metrics: {},
  };
}

function hostileTrace() {
  const s = (id, parent, name, extra = {}) => span(id, parent, name, 'SPAN_KIND_INTERNAL', 1, 1, extra);
  const spans = [
    s('00000000000000c1', '00000000000000c2', 'loop-a'),
    s('00000000000000c2', '00000000000000c1', 'loop-b'),
    s('00000000000000c3', '00000000000000c3', 'self-parent'),
    s('00000000000000c4', null, '\x1b[2J\x1b]0;pwned\x07evil\u009b1m', { kind: 3, status: { code: 2, message: 'line1\nline2' } }),
    s('00000000000000c5', null, 'big-number', {
      attributes: [{ key: 'http.status_code', value: { intValue: '__BIGINT__' } }],
    }),
    { name: null, kind: [1], status: 'x', spanId: '!!', parentSpanId: '%%', attributes: [null, 1, { key: 5 }] },
    5, null, [],
  ];
  const body = {
    trace: { resourceSpans: [{ resource: {}, scopeSpans: [{ spans }, null, 5] }, null, { scopeSpans: 'x' }] },
  };
  // A JSON number beyond int64: the client must still parse the body.
  return JSON.stringify(body).replace('"__BIGINT__"', '123456789012345678901234567890');
}

// Search results: a full Tempo-style trace, a long-named one with several span sets, one with
// only the deprecated spanSet, one with a short (leading zeros stripped) ID, no duration and
// terminal escapes in its names, and one with neither spanSet nor spanSets.
export const SEARCH_T0_S = 1700000000; // 2023-11-14 22:13:20 UTC
function searchBody() {
  const sset = (matched, n = 1) => ({
    spans: Array.from({ length: n }, (_, i) => ({
      spanID: `56${i}d623c76514f8e`.slice(0, 16), name: 'charge',
      startTimeUnixNano: `${SEARCH_T0_S}000000000`, durationNanos: '446979497',
      attributes: [str('status', 'error')],
    })),
    matched,
  });
  const traces = [
    {
      traceID: '2f3e0cee77ae5dc9c17ade3689eb2e54', rootServiceName: 'shop-backend',
      rootTraceName: 'update-billing', startTimeUnixNano: `${SEARCH_T0_S + 7}699392724`,
      durationMs: 557, spanSet: sset(2, 2), spanSets: [sset(2, 2)],
      serviceStats: { 'shop-backend': { spanCount: 12, errorCount: 1 } },
    },
    {
      traceID: 'A1B2C3D4E5F60718293A4B5C6D7E8F90', rootServiceName: 'a-very-long-service-name-that-goes-on-and-on',
      rootTraceName: 'GET /api/v1/some/really/long/route/that/will/not/fit/in/the/column',
      startTimeUnixNano: `${SEARCH_T0_S + 5}000000000`, durationMs: 61234,
      spanSet: sset(3), spanSets: [sset(3), sset(4), sset(5)],
    },
    {
      traceID: 'c0ffee00c0ffee00c0ffee00c0ffee00', rootServiceName: 'légacy-svc',
      rootTraceName: 'only spanSet', startTimeUnixNano: `${SEARCH_T0_S + 3}000000000`,
      durationMs: 1500, spanSet: sset(7),
    },
    {
      traceID: 'abc123', rootServiceName: '\x1b[2Jevil\u009b1m',
      rootTraceName: 'tab\there', startTimeUnixNano: `${SEARCH_T0_S + 1}000000000`,
      spanSets: [sset(1)],
    },
    {
      traceID: '00000000000000000000000000000def', rootTraceName: 'no service, no span sets',
      startTimeUnixNano: `${SEARCH_T0_S}000000000`, durationMs: 3,
    },
  ];
  return { traces, metrics: { inspectedTraces: 431, inspectedBytes: '292781', completedJobs: 1, totalJobs: 1 } };
}
export const SEARCH_BODY = JSON.stringify(searchBody());

function handleSearch(url, req, send) {
  const q = url.searchParams.get('q') ?? '';
  if (q.includes('bad')) {
    return send(400, 'text/plain', 'invalid TraceQL query: parse error at line 1, col 3: syntax error: unexpected IDENTIFIER\n');
  }
  if (q.includes('slow')) return undefined;
  if (q.includes('boom')) return send(500, 'text/plain', 'boom');
  if (q.includes('junk')) return send(200, 'application/json', '{"traces": [');
  if (q.includes('none')) return send(200, 'application/json', JSON.stringify({ metrics: { inspectedTraces: 3 } }));
  if (q.includes('empty')) return send(200, 'application/json', JSON.stringify({ traces: [], metrics: {} }));
  if (q.includes('echo')) {
    const request = {
      raw: url.search,
      params: Object.fromEntries(url.searchParams),
      org: req.headers['x-scope-orgid'] ?? null,
      accept: req.headers.accept ?? null,
    };
    const trace = {
      traceID: 'e0e0', rootServiceName: 'echo', rootTraceName: 'echo',
      startTimeUnixNano: `${SEARCH_T0_S}000000000`, durationMs: 1, spanSets: [{ spans: [], matched: 1 }],
    };
    return send(200, 'application/json', JSON.stringify({ traces: [trace], request }));
  }
  return send(200, 'application/json', SEARCH_BODY);
}

export const TAGS_BODY = JSON.stringify({
  scopes: [
    { name: 'resource', tags: ['host.name', 'service.name'] },
    { name: 'span', tags: ['http.method', 'evil\x1b[2Jname'] },
    { name: 'intrinsic', tags: ['duration', 'kind', 'name', 'status'] },
  ],
  metrics: { inspectedBytes: '1234' },
});
export const VALUES_BODY = JSON.stringify({
  tagValues: [
    { type: 'int', value: '200' }, { type: 'float', value: '0.25' }, { type: 'bool', value: 'true' },
    { type: 'string', value: 'cart' }, { type: 'string', value: 'with space' },
    { type: 'string', value: '\x1b]0;pwned\x07' }, { type: 'keyword', value: 'error' },
  ],
  metrics: { inspectedBytes: '99' },
});

function handleTags(url, req, send) {
  const scope = url.searchParams.get('scope') ?? '';
  if (scope === 'event') return send(400, 'text/plain', 'invalid scope: event\n');
  if (scope === 'link') return send(200, 'application/json', JSON.stringify({ scopes: [{ name: 'link' }], metrics: {} }));
  if (scope === 'trace') {
    const tags = [url.search, req.headers['x-scope-orgid'] ?? '-', req.headers.accept ?? '-'];
    return send(200, 'application/json', JSON.stringify({ scopes: [{ name: 'echo', tags }] }));
  }
  return send(200, 'application/json', TAGS_BODY);
}

function handleTagValues(rawTag, url, req, send) {
  if (rawTag.includes('echo')) {
    const raw = req.url;
    return send(200, 'application/json', JSON.stringify({ tagValues: [{ type: 'string', value: raw }] }));
  }
  if (rawTag.includes('none')) return send(200, 'application/json', JSON.stringify({ tagValues: [], metrics: {} }));
  if (rawTag.includes('bad')) {
    return send(400, 'text/plain', 'please provide a valid tagName: failed to parse identifier bad: parse error at line 1, col 2: unknown identifier: bad\n');
  }
  if (rawTag.includes('boom')) return send(500, 'text/plain', 'boom');
  return send(200, 'application/json', VALUES_BODY);
}

const cache = new Map();
export function cannedBody(id) {
  if (!cache.has(id)) {
    let body;
    if (id === KNOWN_ID) body = JSON.stringify(knownTrace());
    else if (id === DEEP_ID) body = JSON.stringify(chainTrace(DEEP_SPANS, false));
    else if (id === HOSTILE_ID) body = hostileTrace();
    else if (id === WIDE_ID) body = JSON.stringify(chainTrace(WIDE_SPANS, true));
    else body = JSON.stringify({ trace: {}, metrics: {} });
    cache.set(id, body);
  }
  return cache.get(id);
}

function handle(req, res) {
  const url = new URL(req.url, 'http://x');
  const send = (code, type, body) => {
    res.writeHead(code, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (req.method !== 'GET') return send(405, 'text/plain', 'method not allowed\n');
  let m = url.pathname.match(/^\/canned\/([^/]+)$/);
  if (m) return send(200, 'application/json', cannedBody(m[1]));
  if (url.pathname === '/canned-search') return send(200, 'application/json', SEARCH_BODY);
  if (url.pathname === '/api/search') return handleSearch(url, req, send);
  if (url.pathname === '/api/v2/search/tags') return handleTags(url, req, send);
  const raw = req.url.split('?')[0];
  m = raw.match(/^\/api\/v2\/search\/tag\/(.*)\/values$/);
  if (m) return handleTagValues(m[1], url, req, send);
  m = url.pathname.match(/^\/api\/v2\/traces\/([^/]+)$/);
  if (!m) return send(404, 'text/plain', '404 page not found\n');
  const id = m[1];
  if (id === '5000') return send(500, 'text/plain', 'boom');
  if (id === V404_ID) return send(404, 'text/plain', 'trace not found\n');
  if (id === SLOW_ID) return; // hold the request open; the client must time out
  if (id === BADJSON_ID) return send(200, 'application/json', '{"trace": {');
  if (id === ECHO_ID) {
    const org = req.headers['x-scope-orgid'] ?? '-';
    const name = `org=${org} accept=${req.headers.accept ?? '-'} query=${url.search || '-'}`;
    const s = span('00000000000000e1', null, name, 'SPAN_KIND_SERVER', 0, 1);
    const body = { trace: { resourceSpans: [{ resource: { attributes: [str('service.name', 'echo')] }, scopeSpans: [{ spans: [s] }] }] } };
    return send(200, 'application/json', JSON.stringify(body));
  }
  return send(200, 'application/json', cannedBody(id));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = http.createServer(handle);
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${server.address().port}\n`);
  });
  const stop = () => { server.closeAllConnections?.(); server.close(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
