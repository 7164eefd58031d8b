#!/usr/bin/env bash
# metrics: TraceQL metrics (API-CONTRACT §3.8, §3.9). Spans with chosen start times and
# durations go in through the real OpenTelemetry JS exporter; /api/metrics/query_range is then
# queried the way Grafana does (q, start/end in seconds, step, Accept: application/json) for
# rate, count_over_time and quantile_over_time by(resource.service.name), and every series is
# compared with values computed here from the spans (Tempo's rules: start aligned down and one
# step earlier, right-closed intervals stamped with their end, power-of-two duration buckets),
# with their exemplars (trace:id, the value of their interval).
# Then the instant endpoint, protobuf, StreamingQuerier/MetricsQueryRange and
# /MetricsQueryInstant over h2c with @grpc/grpc-js (same series as HTTP), and bad input (400,
# INVALID_ARGUMENT) with the daemon staying up.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init metrics

T=$E2E_TMP
start_or_bail
TARGET=127.0.0.1:$QUERY_PORT
RUN=$RANDOM$RANDOM
SA=svc-a-$RUN
SB=svc-b-$RUN

# --- 1. the corpus: spans at known offsets (seconds) from BASE, a 10-minute boundary 30-40 min ago
NOW=$(date +%s)
BASE=$(((NOW - 1800) / 600 * 600))
START=$BASE
END=$((BASE + 600))
# service offset_s dur_ms error
cat >"$T/corpus.txt" <<EOF
$SA -30 10 0
$SA 5 100 0
$SA 10 300 0
$SA 65 1000 0
$SA 130 20 0
$SA 130.5 40 1
$SA 599 5 0
$SA 600 7 0
$SB 30 50 1
$SB 70 200 0
$SB 400 3000 0
$SB 600.5 10 0
$SB -61 10 0
EOF
node -e '
const [file, base] = [process.argv[1], BigInt(process.argv[2])];
const spans = require("fs").readFileSync(file, "utf8").trim().split("\n").map((l) => {
  const [service, off, dur, err] = l.split(" ");
  return { service, name: "op", startNs: (base * 1000000000n + BigInt(Math.round(Number(off) * 1000)) * 1000000n).toString(),
           durNs: (BigInt(dur) * 1000000n).toString(), error: err === "1" };
});
console.log(JSON.stringify({ spans }));' "$T/corpus.txt" "$BASE" >"$T/spec.json"
check "export 13 spans with the OTel JS SDK (OTLP/HTTP protobuf)" \
    quiet node_run 40 otel_spans.mjs --protocol proto --endpoint "$OTLP_HTTP" --spec "$T/spec.json"

# expected series, computed here: expect KIND QUANTILES... -> Tempo JSON "series" array
expect() {
    node -e '
const [file, base, kind, ...qs] = process.argv.slice(1);
const B = BigInt(base) * 1000000000n, STEP = 60n * 1000000000n, S0 = B - STEP, E = B + 600n * 1000000000n;
const n = Number((E - S0) / STEP);
const spans = JSON.parse(require("fs").readFileSync(file, "utf8")).spans;
const per = new Map(); // service -> [ [durations in ns per interval] ]
for (const s of spans) {
  const t = BigInt(s.startNs);
  if (t <= S0 || t > E) continue;
  const i = Number((t - S0 + STEP - 1n) / STEP) - 1;
  if (!per.has(s.service)) per.set(s.service, Array.from({ length: n }, () => []));
  per.get(s.service)[i].push(BigInt(s.durNs));
}
const ts = (i) => ((S0 + BigInt(i + 1) * STEP) / 1000000n).toString();
const smp = (i, v) => (v === 0 ? { timestampMs: ts(i) } : { timestampMs: ts(i), value: v });
const bucket = (d) => { let b = 1n; while (b < d) b <<= 1n; return Number(b) / 1e9; };
function quantile(p, ds) {
  const m = new Map();
  for (const d of ds) if (d >= 2n) m.set(bucket(d), (m.get(bucket(d)) || 0) + 1);
  const bs = [...m.entries()].sort((a, b) => a[0] - b[0]);
  const total = bs.reduce((a, b) => a + b[1], 0);
  if (!total) return 0;
  let max = Math.ceil(p * total) || 1, acc = 0, k = 0;
  for (k = 0; k < bs.length; k++) {
    if (acc + bs[k][1] > max) break;
    acc += bs[k][1];
    if (acc === max) return bs[k][0];
  }
  const interp = (max - acc) / bs[k][1];
  const hi = Math.log2(bs[k][0]), lo = k > 0 ? Math.log2(bs[k - 1][0]) : hi - 1;
  return Math.pow(2, lo + (hi - lo) * interp);
}
const out = [];
for (const svc of [...per.keys()].sort()) {
  const lab = [{ key: "resource.service.name", value: { stringValue: svc } }];
  const iv = per.get(svc);
  if (kind === "count") out.push({ labels: lab, samples: iv.map((d, i) => smp(i, d.length)) });
  if (kind === "rate") out.push({ labels: lab, samples: iv.map((d, i) => smp(i, d.length * (1 / 60))) });
  if (kind === "quantile") for (const q of qs) {
    out.push({ labels: [...lab, { key: "p", value: { doubleValue: Number(q) } }],
               samples: iv.map((d, i) => smp(i, quantile(Number(q), d))) });
  }
}
console.log(JSON.stringify(out));' "$T/spec.json" "$BASE" "$@"
}

# query NAME Q [extra curl args]: GET query_range like Grafana (start/end seconds, step 60)
query() {
    local name=$1 q=$2
    shift 2
    http "$name" -G -H 'Accept: application/json' "$QUERY/api/metrics/query_range" \
        --data-urlencode "q=$q" --data-urlencode "start=$START" --data-urlencode "end=$END" \
        --data-urlencode "step=60s" "$@"
}
# series_of NAME: the series of a saved body, without exemplars (checked on their own)
series_of() {
    jsv "$T/$1.body" 'JSON.stringify((j.series || []).map((s) => s.value === undefined && !s.samples ? { labels: s.labels } : s.samples ? { labels: s.labels, samples: s.samples } : { labels: s.labels, value: s.value }))' 2>&1
}
# same_series GOT WANT: equal labels and timestamps, values within 1e-9 (relative): the quantile
# interpolation goes through log2/pow, whose last bit may differ between libm and V8
same_series() {
    node -e '
const [a, b] = [JSON.parse(process.argv[1]), JSON.parse(process.argv[2])];
const close = (x = 0, y = 0) => Math.abs(x - y) <= 1e-9 * Math.max(Math.abs(x), Math.abs(y));
const ok = a.length === b.length && a.every((s, i) =>
  JSON.stringify(s.labels) === JSON.stringify(b[i].labels) && s.samples.length === b[i].samples.length &&
  s.samples.every((x, k) => x.timestampMs === b[i].samples[k].timestampMs && close(x.value, b[i].samples[k].value)));
process.exit(ok ? 0 : 1);' "$1" "$2" || { echo "    got  $1" | head -c 600; echo; echo "    want $2" | head -c 600; echo; false; }
}

# the spans are in once the count over the window says 11 (2 of the 13 lie outside it)
ingested() {
    query wait '{} | count_over_time()' >/dev/null &&
        [ "$(jsv "$T/wait.body" '(j.series || []).reduce((n, s) => n + s.samples.reduce((m, x) => m + (x.value || 0), 0), 0)')" = 11 ]
}
check "all spans are visible to count_over_time() within 20 s" wait_for 20 ingested

# --- 2. query_range, the Grafana way -------------------------------------------------------
code=$(query rate "{ resource.service.name =~ \"svc-.-$RUN\" } | rate() by (resource.service.name)")
expect_eq "rate() by (resource.service.name) -> 200 ($(show_body rate))" "$code" 200
expect_eq "... Content-Type is application/json" "$(hdr rate Content-Type)" application/json
expect_eq "... the series computed from the spans" "$(series_of rate)" "$(expect rate)"
expect_eq "... and nothing else but metrics (no status: complete, every job done)" \
    "$(jsv "$T/rate.body" 'Object.keys(j).join(",") + ":" + (j.metrics.completedJobs === j.metrics.totalJobs)')" \
    "series,metrics:true"

# exemplars (Grafana asks for them): one span per trace, trace:id + by() labels, the value of
# the series at that time; every span is its own trace here, so up to 11 of them
expect_eq "... exemplars: trace:id and service labels, value = the sample of their interval" \
    "$(jsv "$T/rate.body" 'j.series.every((s) => (s.exemplars || []).every((e) => /^[0-9a-f]{32}$/.test(e.labels[0].value.stringValue) && e.labels[0].key === "trace:id" && e.labels[1].value.stringValue === s.labels[0].value.stringValue && s.samples.some((x) => Number(x.timestampMs) >= Number(e.timestampMs) && Number(x.timestampMs) - 60000 < Number(e.timestampMs) && x.value === e.value))) + ":" + j.series.reduce((n, s) => n + (s.exemplars || []).length, 0)')" \
    "true:11"
code=$(query ex1 "{ } | rate()" --data-urlencode "exemplars=1")
expect_eq "exemplars=1 -> one exemplar" "$code:$(jsv "$T/ex1.body" 'j.series[0].exemplars.length')" "200:1"
code=$(query count '{ } | count_over_time() by (resource.service.name)' --data-urlencode "step=60")
expect_eq "count_over_time() by (resource.service.name), step in seconds -> 200" "$code" 200
expect_eq "... the series computed from the spans" "$(series_of count)" "$(expect count)"

code=$(query quant '{} | quantile_over_time(duration, .5, .9, .99) by (resource.service.name)')
expect_eq "quantile_over_time(duration, .5, .9, .99) by (resource.service.name) -> 200" "$code" 200
check "... the series computed from the spans (p label, power-of-two buckets)" \
    same_series "$(series_of quant)" "$(expect quantile 0.5 0.9 0.99)"

code=$(query errs '{ status = error } | count_over_time()')
expect_eq "{ status = error } | count_over_time() -> 200" "$code" 200
expect_eq "... one __name__ series counting the 2 error spans (t=+30 s and +130.5 s)" \
    "$(jsv "$T/errs.body" 'j.series.map((s) => s.labels[0].key + "=" + s.labels[0].value.stringValue + ":" + s.samples.filter((x) => x.value).map((x) => (Number(x.timestampMs) / 1000 - '"$BASE"') + "=" + x.value).join(" ")).join("|")')" \
    "__name__=count_over_time:60=1 180=1"

code=$(http hist -G "$QUERY/api/metrics/query_range" --data-urlencode "q={ resource.service.name = \"$SB\" } | histogram_over_time(duration)" \
    --data-urlencode "start=$START" --data-urlencode "end=$END" --data-urlencode "step=10m")
expect_eq "histogram_over_time(duration), step=10m -> 200" "$code" 200
expect_eq "... __bucket labels (seconds) with their counts" \
    "$(jsv "$T/hist.body" 'j.series.map((s) => s.labels[0].key + "=" + s.labels[0].value.doubleValue + ":" + s.samples.map((x) => x.value || 0).join(",")).join(" ")')" \
    "__bucket=0.016777216:1,0 __bucket=0.067108864:0,1 __bucket=0.268435456:0,1 __bucket=4.294967296:0,1"

# no step: derived from the range like Tempo (600 s / 240 = 2.5 s -> 2 s; 301 intervals)
code=$(http nostep -G "$QUERY/api/metrics/query_range" --data-urlencode "query={} | count_over_time()" \
    --data-urlencode "start=$START" --data-urlencode "end=$END")
expect_eq "no step, query= alias -> 200" "$code" 200
expect_eq "... 2 s step: 301 samples, the first stamped start, counting the 10 spans in (start - 2 s, end]" \
    "$(jsv "$T/nostep.body" '[j.series[0].samples.length, Number(j.series[0].samples[0].timestampMs) / 1000 - '"$BASE"', j.series[0].samples.reduce((n, x) => n + (x.value || 0), 0)].join(":")')" \
    "301:0:10"

# RFC3339 and nanosecond times give the same answer as seconds
RFC_START=$(date -u -d "@$START" +%Y-%m-%dT%H:%M:%SZ)
code=$(http rfc -G -H 'Accept: application/json' "$QUERY/api/metrics/query_range" \
    --data-urlencode "q={ } | count_over_time() by (resource.service.name)" \
    --data-urlencode "start=$RFC_START" --data-urlencode "end=${END}000000000" --data-urlencode "step=1m")
expect_eq "RFC3339 start, nanosecond end, step=1m -> same series as seconds" \
    "$code:$(series_of rfc)" "200:$(series_of count)"

# protobuf when Accept asks for it
code=$(http pb -G -H 'Accept: application/protobuf' "$QUERY/api/metrics/query_range" \
    --data-urlencode "q={ } | count_over_time() by (resource.service.name)" \
    --data-urlencode "start=$START" --data-urlencode "end=$END" --data-urlencode "step=60")
expect_eq "Accept: application/protobuf -> 200 application/protobuf" "$code $(hdr pb Content-Type)" \
    "200 application/protobuf"
expect_eq "... QueryRangeResponse with the same series and exemplars" \
    "$(node "$TD_E2E_DIR/metrics_pb.mjs" decode-body range "$T/pb.body" | jsv - 'JSON.stringify(j.series)')" \
    "$(jsv "$T/count.body" 'JSON.stringify(j.series)')"

# --- 3. instant ------------------------------------------------------------------------------
code=$(http inst -G -H 'Accept: application/json' "$QUERY/api/metrics/query" \
    --data-urlencode "q={ } | count_over_time() by (resource.service.name)" \
    --data-urlencode "start=$START" --data-urlencode "end=$END")
expect_eq "/api/metrics/query (instant) -> 200" "$code" 200
# [start, end] inclusive: A has 7 spans in it (not -30 s), B 3 (not +600.5 s, not -61 s)
expect_eq "... one value per series over [start, end]" \
    "$(jsv "$T/inst.body" 'j.series.map((s) => s.labels[0].value.stringValue + "=" + s.value).join(" ")')" \
    "$SA=7 $SB=3"
expect_eq "... only the QueryInstantResponse keys" \
    "$(jsv "$T/inst.body" 'Object.keys(j).join(",") + "|" + Object.keys(j.series[0]).join(",")')" \
    "series,metrics|labels,value"

# --- 4. gRPC StreamingQuerier over h2c (@grpc/grpc-js) ---------------------------------------
stream() { # stream NAME PATH HEX
    node_run 30 grpc_stream.mjs --target "$TARGET" --timeout-ms 10000 --path "$2" --hex "$3" \
        --out "$T/$1.json" >/dev/null 2>"$T/$1.err"
}
Q="{ } | count_over_time() by (resource.service.name)"
REQ=$(node "$TD_E2E_DIR/metrics_pb.mjs" encode-range "$Q" "${START}000000000" "${END}000000000" 60000000000)
stream g_range /tempopb.StreamingQuerier/MetricsQueryRange "$REQ"
expect_eq "MetricsQueryRange -> OK (0) ($(head -c 200 "$T/g_range.json" 2>/dev/null))" \
    "$(jsv "$T/g_range.json" j.code 2>&1)" 0
node "$TD_E2E_DIR/metrics_pb.mjs" decode-stream range "$T/g_range.json" >"$T/g_range.dec" 2>&1
expect_eq "... the same series and exemplars as HTTP" "$(jsv "$T/g_range.dec" 'JSON.stringify(j.series)')" \
    "$(jsv "$T/count.body" 'JSON.stringify(j.series)')"
expect_eq "... in 1 message with metrics, under 4 MiB" \
    "$(jsv "$T/g_range.dec" '[j.messages, j.metricsInEvery, j.maxMessageBytes < 4194304].join(":")')" "1:true:true"
# step 0: derived from the range, as over HTTP without step
REQ=$(node "$TD_E2E_DIR/metrics_pb.mjs" encode-range "{} | count_over_time()" "${START}000000000" "${END}000000000" 0)
stream g_nostep /tempopb.StreamingQuerier/MetricsQueryRange "$REQ"
node "$TD_E2E_DIR/metrics_pb.mjs" decode-stream range "$T/g_nostep.json" >"$T/g_nostep.dec" 2>&1
expect_eq "MetricsQueryRange with step 0 -> the default step, same series as HTTP" \
    "$(jsv "$T/g_nostep.dec" 'JSON.stringify(j.series)')" "$(jsv "$T/nostep.body" 'JSON.stringify(j.series)')"

REQ=$(node "$TD_E2E_DIR/metrics_pb.mjs" encode-instant "$Q" "${START}000000000" "${END}000000000")
stream g_inst /tempopb.StreamingQuerier/MetricsQueryInstant "$REQ"
expect_eq "MetricsQueryInstant -> OK (0)" "$(jsv "$T/g_inst.json" j.code 2>&1)" 0
node "$TD_E2E_DIR/metrics_pb.mjs" decode-stream instant "$T/g_inst.json" >"$T/g_inst.dec" 2>&1
expect_eq "... the same series as /api/metrics/query" \
    "$(jsv "$T/g_inst.dec" 'JSON.stringify(j.series)')" "$(jsv "$T/inst.body" 'JSON.stringify(j.series)')"

REQ=$(node "$TD_E2E_DIR/metrics_pb.mjs" encode-range "{ status = error }" "${START}000000000" "${END}000000000" 60000000000)
stream g_bad /tempopb.StreamingQuerier/MetricsQueryRange "$REQ"
expect_eq "MetricsQueryRange with a search query -> INVALID_ARGUMENT (3)" "$(jsv "$T/g_bad.json" j.code 2>&1)" 3
REQ=$(node "$TD_E2E_DIR/metrics_pb.mjs" encode-range "{} | rate()" "${END}000000000" "${START}000000000" 0)
stream g_bad2 /tempopb.StreamingQuerier/MetricsQueryRange "$REQ"
expect_eq "MetricsQueryRange with end before start -> 3, Tempo's message" \
    "$(jsv "$T/g_bad2.json" 'j.code + " " + j.details' 2>&1)" "3 end must be greater than start"

# --- 5. bad input: 400 with a message, daemon stays up ---------------------------------------
bad() { # bad NAME WANT_PREFIX ARGS...: expects 400 text/plain starting with WANT_PREFIX
    local name=$1 want=$2
    shift 2
    local code
    code=$(http "$name" -G "$QUERY/api/metrics/query_range" "$@")
    expect_eq "$name -> 400 ($(show_body "$name"))" "$code" 400
    check "... message starts with '$want'" grep -qF -- "$want" "$T/$name.body"
}
bad not_metrics "invalid TraceQL query: not a metrics query" --data-urlencode "q={ status = error }"
bad parse_error "invalid TraceQL query: parse error at line 1, col" --data-urlencode "q={ status = } | rate()"
bad bad_step "cannot parse \"fast\" to a valid duration" --data-urlencode "q={} | rate()" \
    --data-urlencode "start=$START" --data-urlencode "end=$END" --data-urlencode "step=fast"
bad end_before_start "end must be greater than start" --data-urlencode "q={} | rate()" \
    --data-urlencode "start=$END" --data-urlencode "end=$START"
bad bad_start "could not parse 'start' parameter" --data-urlencode "q={} | rate()" --data-urlencode "start=yesterday"
bad too_many_points "step of 50ms is too small, minimum step for given range is 60ms" \
    --data-urlencode "q={} | rate()" --data-urlencode "start=$START" --data-urlencode "end=$END" \
    --data-urlencode "step=50ms"
bad quantile_range "invalid TraceQL query: quantile must be between 0 and 1" \
    --data-urlencode "q={} | quantile_over_time(duration, 2)"
code=$(http inst_bad -G "$QUERY/api/metrics/query" --data-urlencode "q={} | rate()" \
    --data-urlencode "start=$END" --data-urlencode "end=$START")
expect_eq "instant with end before start -> 400" "$code" 400
code=$(http ready "$QUERY/ready")
expect_eq "the daemon is still ready" "$code" 200
expect_eq "no warnings or errors logged" \
    "$(grep -E '"level":"(warn|error)"' "$TRACED_LOG" | head -n 1 | head -c 300)" ""
check "SIGTERM: exit 0" traced_stop

# --- 6. a scan cut by search-max-traces is reported, not silently smaller ---------------------
start_or_bail --search-max-traces 3
code=$(query cut '{ } | count_over_time()')
expect_eq "search-max-traces 3: 200 with status PARTIAL and a message naming the limit" \
    "$code:$(jsv "$T/cut.body" 'j.status + ":" + /search-max-traces/.test(j.message) + ":" + j.metrics.inspectedTraces')" \
    "200:PARTIAL:true:3"
code=$(http cut_inst -G "$QUERY/api/metrics/query" --data-urlencode "q={ } | count_over_time()" \
    --data-urlencode "start=$START" --data-urlencode "end=$END")
expect_eq "... the instant endpoint too" "$code:$(jsv "$T/cut_inst.body" 'j.status')" "200:PARTIAL"
check "SIGTERM: exit 0" traced_stop
start_or_bail --search-max-bytes 1
code=$(query cutb '{ } | count_over_time()')
expect_eq "search-max-bytes 1: PARTIAL after one trace, completedJobs < totalJobs" \
    "$code:$(jsv "$T/cutb.body" 'j.status + ":" + /search-max-bytes/.test(j.message) + ":" + j.metrics.inspectedTraces + ":" + (j.metrics.completedJobs < j.metrics.totalJobs)')" \
    "200:PARTIAL:true:1:true"
check "SIGTERM: exit 0" traced_stop
finish
