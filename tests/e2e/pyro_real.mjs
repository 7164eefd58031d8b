#!/usr/bin/env node
// pyro_real.mjs: one querier.v1 Connect call and its summary in a single node process, for
// pyro_real.test.sh (three node starts per call were too slow on a loaded machine).
//
//   node pyro_real.mjs BASE METHOD REQMSG RESPMSG JSON OUT
//
// REQMSG "json": JSON is sent as is with Content-Type application/json (as the Drilldown app);
// otherwise JSON is encoded as the protobuf message REQMSG (pyro_tool.mjs schema) and sent as
// application/proto with Connect-Protocol-Version: 1 (as Grafana's Go client), and a 200 answer
// is decoded as RESPMSG. Files: OUT.body (raw answer), OUT.hdr ("content-type: ..."), OUT.json
// (the answer as JSON), OUT.names (flame graph names, one a line), OUT.stats ("total heaviest
// self": the flame graph total, the leaf with the greatest self summed by name, that self),
// OUT.ssum (sum over all series points), OUT.series (one line per series:
// "k=v,k=v<TAB>sum<TAB>ts=value;...").
// Prints the HTTP status (000 when the call could not be made, exit 1).
//
//   node pyro_real.mjs BASE --batch FILE
//
// runs one call per line of FILE (TAB-separated METHOD, REQMSG, RESPMSG, JSON, OUT) and prints
// "OUT STATUS" per call.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

// pyro_tool.mjs runs its command line on import: give it a harmless one and mute it
const argv = process.argv;
const log = console.log;
process.argv = [argv[0], 'pyro_tool.mjs', 'decode', 'Point', '/dev/null'];
console.log = () => {};
const here = dirname(fileURLToPath(import.meta.url));
const { encode, decode } = await import(join(here, 'pyro_tool.mjs'));
console.log = log;
process.argv = argv;

async function call(base, method, reqMsg, respMsg, json, out) {
  const proto = reqMsg !== 'json';
  let body;
  try {
    body = proto ? encode(reqMsg, JSON.parse(json)) : Buffer.from(json, 'utf8');
  } catch (e) {
    console.error('pyro_real: cannot encode the request: ' + e.message);
    return '000';
  }
  let res;
  try {
    res = await fetch(`${base}/querier.v1.QuerierService/${method}`, {
      method: 'POST',
      headers: proto ? { 'Content-Type': 'application/proto', 'Connect-Protocol-Version': '1' }
        : { 'Content-Type': 'application/json' },
      body,
      signal: AbortSignal.timeout(20000),
    });
  } catch (e) {
    console.error('pyro_real: request failed: ' + e.message);
    return '000';
  }
  const raw = Buffer.from(await res.arrayBuffer());
  writeFileSync(out + '.body', raw);
  writeFileSync(out + '.hdr', 'content-type: ' + (res.headers.get('content-type') || '') + '\n');
  let j = {};
  try {
    if (res.status === 200 && proto && respMsg === '-') j = {};
    else if (res.status === 200) j = proto ? decode(respMsg, raw) : JSON.parse(raw.toString('utf8') || '{}');
    else j = JSON.parse(raw.toString('utf8') || '{}');
  } catch (e) {
    console.error('pyro_real: cannot decode the answer: ' + e.message);
  }
  writeFileSync(out + '.json', JSON.stringify(j) + '\n');

  const g = j.flamegraph || {};
  const self = {};
  for (const l of g.levels || []) {
    const v = (l.values || []).map(Number);
    for (let i = 0; i + 3 < v.length; i += 4) {
      const n = g.names[v[i + 3]];
      self[n] = (self[n] || 0) + v[i + 2];
    }
  }
  let best = '';
  for (const n in self) if (best === '' || self[n] > self[best]) best = n;
  writeFileSync(out + '.names', (g.names || []).map((n) => n + '\n').join(''));

  let ssum = 0;
  const lines = [];
  for (const s of j.series || []) {
    const pts = s.points || [];
    const sum = pts.reduce((a, p) => a + (p.value || 0), 0);
    ssum += sum;
    lines.push((s.labels || []).map((l) => `${l.name}=${l.value}`).join(',') + '\t' + sum + '\t'
      + pts.map((p) => `${p.timestamp}=${p.value || 0}`).join(';'));
  }
  writeFileSync(out + '.series', lines.map((l) => l + '\n').join(''));
  writeFileSync(out + '.stats', `${Number(g.total || 0)} ${best || '-'} ${self[best] || 0}\n`);
  writeFileSync(out + '.ssum', `${ssum}\n`);
  return String(res.status);
}

const args = argv.slice(2);
if (args[1] === '--batch' && args[2]) {
  for (const line of readFileSync(args[2], 'utf8').split('\n')) {
    if (!line) continue;
    const [method, reqMsg, respMsg, json, out] = line.split('\t');
    console.log(out + ' ' + await call(args[0], method, reqMsg, respMsg, json, out));
  }
} else if (args.length === 6) {
  const st = await call(...args);
  console.log(st);
  process.exit(st === '000' ? 1 : 0);
} else {
  console.error('usage: pyro_real.mjs BASE METHOD REQMSG|json RESPMSG JSON OUT | BASE --batch FILE');
  process.exit(2);
}
