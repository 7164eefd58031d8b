#!/usr/bin/env node
// http_pipeline.mjs: write several HTTP/1.1 requests to one TCP connection in a single write()
// (pipelining) and parse the responses that come back, in order.
//
// Usage:
//   node http_pipeline.mjs --port P --expect N (--raw FILE | --request 'METHOD PATH [CT BODYFILE]' ...)
//                          [--host 127.0.0.1] [--timeout-ms 10000]
//
//   --raw FILE      bytes to send verbatim (must contain N complete requests)
//   --request SPEC  build one request: "GET /ready" or "POST /v1/traces application/json body.json";
//                   repeatable, all concatenated into one write (Host and Content-Length are added)
//
// Prints a JSON array with one {status, headers, body} per parsed response (bodies as text) and exits
// 0 when exactly N complete responses arrived before the timeout or the server closed, else 1.

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import net from 'node:net';

function usage(msg) {
  if (msg) console.error(`http_pipeline: ${msg}`);
  console.error('usage: node http_pipeline.mjs --port P --expect N (--raw FILE | --request "METHOD PATH [CT BODYFILE]"...) [--host H] [--timeout-ms N]');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      expect: { type: 'string' },
      raw: { type: 'string' },
      request: { type: 'string', multiple: true, default: [] },
      'timeout-ms': { type: 'string', default: '10000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage(e.message);
}
if (args.help) usage();
const port = Number(args.port);
const expect = Number(args.expect);
const timeoutMs = Number(args['timeout-ms']);
if (!Number.isInteger(port) || port <= 0) usage('--port is required');
if (!Number.isInteger(expect) || expect <= 0) usage('--expect must be a positive integer');
if ((args.raw === undefined) === (args.request.length === 0)) usage('give either --raw or --request');

let payload;
if (args.raw !== undefined) {
  payload = readFileSync(args.raw);
} else {
  const parts = [];
  for (const spec of args.request) {
    const [method, path, ct, bodyFile] = spec.split(/\s+/);
    if (!method || !path) usage(`bad --request ${spec}`);
    const body = bodyFile ? readFileSync(bodyFile) : Buffer.alloc(0);
    let head = `${method} ${path} HTTP/1.1\r\nHost: ${args.host}:${port}\r\n`;
    if (ct) head += `Content-Type: ${ct}\r\n`;
    if (bodyFile || method === 'POST' || method === 'PUT') head += `Content-Length: ${body.length}\r\n`;
    head += '\r\n';
    parts.push(Buffer.from(head, 'latin1'), body);
  }
  payload = Buffer.concat(parts);
}

const responses = [];
let buf = Buffer.alloc(0);
let done = false;

// Parse as many complete responses from buf as possible (Content-Length or chunked bodies).
function parse() {
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let pos = headEnd + 4;
    let body;
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const chunks = [];
      for (;;) {
        const le = buf.indexOf('\r\n', pos);
        if (le < 0) return;
        const size = parseInt(buf.subarray(pos, le).toString('latin1'), 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size');
        if (buf.length < le + 2 + size + 2) return;
        chunks.push(buf.subarray(le + 2, le + 2 + size));
        pos = le + 2 + size + 2;
        if (size === 0) break;
      }
      body = Buffer.concat(chunks);
    } else {
      const len = Number(headers['content-length'] ?? 0);
      if (buf.length < pos + len) return;
      body = buf.subarray(pos, pos + len);
      pos += len;
    }
    responses.push({ status: Number(m[1]), headers, body: body.toString('utf8') });
    buf = buf.subarray(pos);
  }
}

function finish(why) {
  if (done) return;
  done = true;
  console.log(JSON.stringify(responses));
  if (responses.length !== expect) console.error(`http_pipeline: got ${responses.length} responses, expected ${expect} (${why})`);
  sock.destroy();
  process.exit(responses.length === expect ? 0 : 1);
}

const sock = net.connect({ host: args.host, port }, () => {
  sock.write(payload); // one write: all requests back to back
});
sock.setNoDelay(true);
sock.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  try {
    parse();
  } catch (e) {
    finish(e.message);
  }
  if (responses.length >= expect) finish('complete');
});
sock.on('end', () => finish('server closed the connection'));
sock.on('error', (e) => finish(`socket error: ${e.message}`));
setTimeout(() => finish('timeout'), timeoutMs).unref();
