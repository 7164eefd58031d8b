#!/usr/bin/env bash
# bad_input: malformed, oversize, mislabelled and partly-invalid requests on both ingest ports and
# bad parameters on the query port get the contract's answers, while a well-behaved client keeps
# exporting in the background and loses nothing. Also every AnyValue shape the JS SDK cannot
# produce (kvlist, bytes, empty, NaN/Infinity, int64 extremes) round-trips into Tempo JSON.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init bad_input

RUN=$RANDOM$RANDOM
T=$E2E_TMP
TEXT415='415 unsupported media type, supported: [application/json, application/x-protobuf]'
TEXT405='405 method not allowed, supported: [POST]'

start_or_bail --max-recv-size 1MiB --max-trace-size 256KiB
V1=$OTLP_HTTP/v1/traces

# --- the good client, in the background ---------------------------------------------------------
(
    for i in 1 2 3; do
        for p in json grpc; do
            if [ $p = grpc ]; then ep="http://$OTLP_GRPC"; else ep=$V1; fi
            if node_run 40 otel_export.mjs --protocol $p --endpoint "$ep" --out "$T/good-$p-$i.json" \
                --tag "good-$p-$i-$RUN" >"$T/good-$p-$i.log" 2>&1; then
                echo "good-$p-$i" >>"$T/good.ok"
            else
                echo "good-$p-$i" >>"$T/good.failed"
            fi
        done
    done
) &
GOOD_PID=$!

# post NAME CONTENT_TYPE FILE [curl args...]: POST a body file to /v1/traces, print the status.
post() {
    local name=$1 ct=$2 file=$3
    shift 3
    http "$name" -H "Content-Type: $ct" --data-binary "@$file" "$@" "$V1"
}
status_json() { node_run 10 pbtool.mjs status "$T/$1.body" 2>&1; }

# --- 1. malformed protobuf -------------------------------------------------------------------------
printf '\x0a\xff\xff\xff\xff\x0f\x01\x02' >"$T/bad.pb"
code=$(post badpb application/x-protobuf "$T/bad.pb")
expect_eq "HTTP: malformed protobuf -> 400" "$code" 400
expect_eq "HTTP: malformed protobuf -> Content-Type application/x-protobuf" "$(hdr badpb Content-Type)" application/x-protobuf
st=$(status_json badpb)
check "HTTP: 400 body is a google.rpc.Status with code 3 (or none) and a message: $st" \
    test "$(jsv - '(j.code === 3 || j.code === 0) && j.message.length > 0' <<<"$st" 2>&1)" = true
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --file "$T/bad.pb" --out "$T/gbad.json" >/dev/null
expect_eq "gRPC: malformed protobuf -> INVALID_ARGUMENT (3) [$(jsv "$T/gbad.json" j.details 2>&1)]" \
    "$(jsv "$T/gbad.json" j.code 2>&1)" 3
printf '\x0a\x02\x12\x00\x07' >"$T/bad2.pb" # a valid field followed by a field with wire type 7
code=$(post badpb2 application/x-protobuf "$T/bad2.pb")
expect_eq "HTTP: protobuf with an invalid wire type -> 400" "$code" 400

# --- 2. bad JSON -------------------------------------------------------------------------------------
printf '{"resourceSpans":[{"scopeSpans":[' >"$T/bad.json"
code=$(post badjson application/json "$T/bad.json")
expect_eq "HTTP: truncated JSON -> 400" "$code" 400
expect_eq "HTTP: bad JSON -> Content-Type application/json" "$(hdr badjson Content-Type)" application/json
check "HTTP: bad JSON body is {\"code\":3?,\"message\":...}: $(show_body badjson)" \
    test "$(jsv "$T/badjson.body" '(j.code === undefined || j.code === 3) && typeof j.message === "string" && j.message.length > 0' 2>&1)" = true
printf '{"resourceSpans":"nope"}' >"$T/bad3.json"
code=$(post badjson3 application/json "$T/bad3.json")
expect_eq "HTTP: JSON with resourceSpans of the wrong type -> 400" "$code" 400
printf '\xff\xfe{}' >"$T/bad4.json"
code=$(post badjson4 application/json "$T/bad4.json")
expect_eq "HTTP: JSON that is not UTF-8 -> 400" "$code" 400

# --- 3. encodings and media types ------------------------------------------------------------------
node_run 10 mkreq.mjs --spans 3 --out "$T/ok.json" --service bad-input-ok >/dev/null
gzip -c "$T/ok.json" >"$T/ok.json.gz"
head -c $(($(stat -c %s "$T/ok.json.gz") / 2)) "$T/ok.json.gz" >"$T/trunc.gz"
code=$(post trunc application/json "$T/trunc.gz" -H 'Content-Encoding: gzip')
expect_eq "HTTP: truncated gzip body -> 400" "$code" 400
code=$(post garbagegz application/json "$T/ok.json" -H 'Content-Encoding: gzip')
expect_eq "HTTP: Content-Encoding gzip on a plain body -> 400" "$code" 400
code=$(post bogusenc application/json "$T/ok.json" -H 'Content-Encoding: bogus')
expect_eq "HTTP: unknown Content-Encoding -> 400" "$code" 400
code=$(post textplain text/plain "$T/ok.json")
expect_eq "HTTP: Content-Type text/plain -> 415" "$code" 415
check "HTTP: 415 body is the contract text (got: $(show_body textplain))" body_is textplain "$TEXT415"
code=$(post formenc application/x-www-form-urlencoded "$T/ok.json")
expect_eq "HTTP: form content type -> 415" "$code" 415
code=$(http get405 "$V1")
expect_eq "HTTP: GET /v1/traces -> 405" "$code" 405
check "HTTP: 405 body is the contract text (got: $(show_body get405))" body_is get405 "$TEXT405"
check "HTTP: 405 is text/plain ($(hdr get405 Content-Type))" grep -qi '^text/plain' <<<"$(hdr get405 Content-Type)"
code=$(post charset 'application/json; charset=utf-8' "$T/ok.json")
expect_eq "HTTP: application/json; charset=utf-8 is accepted (parameters ignored)" "$code" 200
code=$(post okgz application/json "$T/ok.json.gz" -H 'Content-Encoding: gzip')
expect_eq "HTTP: a good gzip body -> 200" "$code" 200

# --- 4. size limits (--max-recv-size 1MiB) ---------------------------------------------------------
node_run 20 mkreq.mjs --spans 2 --pad-bytes $((2 * 1024 * 1024)) --out "$T/big.json" --service bad-input-big >/dev/null
code=$(post big application/json "$T/big.json" -H 'Expect:')
expect_eq "HTTP: 2 MiB body over a 1 MiB limit -> 413 [$(head -c 200 "$T/big.curlerr")]" "$code" 413
node_run 20 mkreq.mjs --spans 2 --pad-bytes $((4 * 1024 * 1024)) --out "$T/bomb.json" --service bad-input-bomb >/dev/null
gzip -9 -c "$T/bomb.json" >"$T/bomb.json.gz"
echo "  gzip bomb: $(stat -c %s "$T/bomb.json.gz") bytes on the wire, $(stat -c %s "$T/bomb.json") inflated"
code=$(post bomb application/json "$T/bomb.json.gz" -H 'Content-Encoding: gzip')
expect_eq "HTTP: gzip bomb inflating past 1 MiB -> 413" "$code" 413
node_run 20 mkreq.mjs --spans 2 --pad-bytes $((512 * 1024)) --out "$T/half.json" --expected "$T/half.exp.json" \
    --service bad-input-half >/dev/null
gzip -c "$T/half.json" >"$T/half.json.gz"
code=$(post half application/json "$T/half.json.gz" -H 'Content-Encoding: gzip')
expect_eq "HTTP: 512 KiB (gzip) under the limit -> 200" "$code" 200
# exact boundaries: a body of exactly 1 MiB (after decompression) is fine, one byte more is not
node_run 20 mkreq.mjs --spans 2 --pad-bytes 1000000 --out "$T/probe.json" --service bad-input-edge >/dev/null
PAD=$((1000000 + 1048576 - $(stat -c %s "$T/probe.json")))
node_run 20 mkreq.mjs --spans 2 --pad-bytes $PAD --out "$T/edge0.json" --service bad-input-edge >/dev/null
node_run 20 mkreq.mjs --spans 2 --pad-bytes $((PAD + 1)) --out "$T/edge1.json" --service bad-input-edge >/dev/null
expect_eq "boundary files are 1048576 and 1048577 bytes" \
    "$(stat -c %s "$T/edge0.json") $(stat -c %s "$T/edge1.json")" "1048576 1048577"
code=$(post edge0 application/json "$T/edge0.json")
expect_eq "HTTP: JSON body of exactly 1 MiB -> 200" "$code" 200
code=$(post edge1 application/json "$T/edge1.json")
expect_eq "HTTP: JSON body of 1 MiB + 1 byte -> 413" "$code" 413
expect_eq "HTTP: 413 body is a JSON Status with a message ($(show_body edge1))" \
    "$(jsv "$T/edge1.body" 'typeof j.message === "string" && j.message.length > 0' 2>&1)" true
gzip -c "$T/edge0.json" >"$T/edge0.json.gz"
gzip -c "$T/edge1.json" >"$T/edge1.json.gz"
code=$(post edge0gz application/json "$T/edge0.json.gz" -H 'Content-Encoding: gzip')
expect_eq "HTTP: gzip inflating to exactly 1 MiB -> 200" "$code" 200
code=$(post edge1gz application/json "$T/edge1.json.gz" -H 'Content-Encoding: gzip')
expect_eq "HTTP: gzip inflating to 1 MiB + 1 byte -> 413" "$code" 413
node_run 20 pbtool.mjs encode "$T/edge0.json" "$T/probe.pb"
PAD=$((PAD + 1048576 - $(stat -c %s "$T/probe.pb")))
node_run 20 mkreq.mjs --spans 2 --pad-bytes $PAD --out "$T/pedge0.json" --service bad-input-edge >/dev/null
node_run 20 mkreq.mjs --spans 2 --pad-bytes $((PAD + 1)) --out "$T/pedge1.json" --service bad-input-edge >/dev/null
node_run 20 pbtool.mjs encode "$T/pedge0.json" "$T/pedge0.pb"
node_run 20 pbtool.mjs encode "$T/pedge1.json" "$T/pedge1.pb"
expect_eq "protobuf boundary files are 1048576 and 1048577 bytes" \
    "$(stat -c %s "$T/pedge0.pb") $(stat -c %s "$T/pedge1.pb")" "1048576 1048577"
node_run 30 grpc_raw.mjs --target "$OTLP_GRPC" --file "$T/pedge0.pb" --out "$T/gedge0.json" >/dev/null
expect_eq "gRPC: message of exactly 1 MiB -> OK" "$(jsv "$T/gedge0.json" j.code 2>&1)" 0
node_run 30 grpc_raw.mjs --target "$OTLP_GRPC" --file "$T/pedge1.pb" --out "$T/gedge1.json" >/dev/null
expect_eq "gRPC: message of 1 MiB + 1 byte -> RESOURCE_EXHAUSTED (8)" "$(jsv "$T/gedge1.json" j.code 2>&1)" 8
code=$(post pedge1 application/x-protobuf "$T/pedge1.pb")
expect_eq "HTTP protobuf: 1 MiB + 1 byte -> 413" "$code" 413
expect_eq "HTTP protobuf 413: body is a google.rpc.Status (code 8)" \
    "$(node_run 10 pbtool.mjs status "$T/pedge1.body" | jsv - j.code 2>&1)" 8

node_run 20 pbtool.mjs encode "$T/big.json" "$T/big.pb"
node_run 30 grpc_raw.mjs --target "$OTLP_GRPC" --file "$T/big.pb" --out "$T/gbig.json" >/dev/null
expect_eq "gRPC: 2 MiB message -> RESOURCE_EXHAUSTED (8) [$(jsv "$T/gbig.json" j.details 2>&1)]" \
    "$(jsv "$T/gbig.json" j.code 2>&1)" 8
node_run 20 pbtool.mjs encode "$T/bomb.json" "$T/bomb.pb"
node_run 30 grpc_raw.mjs --target "$OTLP_GRPC" --file "$T/bomb.pb" --gzip --out "$T/gbomb.json" >/dev/null
expect_eq "gRPC: gzip message inflating to 4 MiB -> RESOURCE_EXHAUSTED (8)" "$(jsv "$T/gbomb.json" j.code 2>&1)" 8
expect_eq "gRPC: RESOURCE_EXHAUSTED for size carries no RetryInfo" \
    "$(jsv "$T/gbomb.json" '(j.statusDetails && j.statusDetails.details || []).some((d) => d.retryDelay)' 2>&1)" false

# --- 4b. nesting depth: deep AnyValues are refused cleanly, never a crash ----------------------------
node_run 20 mkdeep.mjs --depth 100000 --format pb --out "$T/deep.pb" >/dev/null
code=$(post deeppb application/x-protobuf "$T/deep.pb")
expect_eq "HTTP protobuf: AnyValue nested 100000 deep -> 400" "$code" 400
node_run 20 mkdeep.mjs --depth 30000 --format pb --kind kvlist --out "$T/deepkv.pb" >/dev/null
node_run 30 grpc_raw.mjs --target "$OTLP_GRPC" --file "$T/deepkv.pb" --out "$T/gdeep.json" >/dev/null
expect_eq "gRPC: kvlist nested 30000 deep -> INVALID_ARGUMENT (3)" "$(jsv "$T/gdeep.json" j.code 2>&1)" 3
node_run 20 mkdeep.mjs --depth 30000 --format json --out "$T/deep.json" >/dev/null
code=$(post deepjson application/json "$T/deep.json")
expect_eq "HTTP JSON: arrayValue nested 30000 deep -> 400" "$code" 400
TIDD=$(node_run 20 mkdeep.mjs --depth 40 --format pb --out "$T/deep40.pb")
code=$(post deep40 application/x-protobuf "$T/deep40.pb")
expect_eq "HTTP protobuf: nesting 40 deep is fine -> 200" "$code" 200
check "the 40-deep trace reads back as JSON" wait_for 10 eval "curl -sf --max-time 5 '$QUERY/api/v2/traces/$TIDD' | grep -q stringValue"
check "daemon alive after the deep requests" curl -sf --max-time 5 "$QUERY/ready" -o /dev/null

# --- 4c. gRPC methods that do not exist are answered, not left hanging -----------------------------
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --empty --path /opentelemetry.proto.collector.logs.v1.LogsService/Export \
    --timeout-ms 5000 --out "$T/gunimpl.json" >/dev/null
expect_eq "gRPC: LogsService/Export -> UNIMPLEMENTED (12)" "$(jsv "$T/gunimpl.json" j.code 2>&1)" 12
check "gRPC: ... answered in under 3 s ($(jsv "$T/gunimpl.json" j.elapsedMs 2>&1) ms)" \
    test "$(jsv "$T/gunimpl.json" j.elapsedMs 2>/dev/null || echo 99999)" -lt 3000

# --- 5. partial success ------------------------------------------------------------------------------
node_run 10 mkreq.mjs --spans 2 --bad-span-ids 1 --out "$T/ps.json" --expected "$T/ps.exp.json" --service ps-json >/dev/null
code=$(post psjson application/json "$T/ps.json")
expect_eq "HTTP JSON: one span with spanId \"\" + one good span -> 200" "$code" 200
expect_eq "HTTP JSON: partialSuccess.rejectedSpans is \"1\" (body $(show_body psjson))" \
    "$(jsv "$T/psjson.body" 'j.partialSuccess && j.partialSuccess.rejectedSpans' 2>&1)" 1
expect_eq "HTTP JSON: rejectedSpans is a JSON string (int64)" \
    "$(jsv "$T/psjson.body" 'typeof (j.partialSuccess && j.partialSuccess.rejectedSpans)' 2>&1)" string
check "HTTP JSON: partialSuccess.errorMessage explains it" \
    test -n "$(jsv "$T/psjson.body" 'j.partialSuccess.errorMessage || ""' 2>/dev/null)"
check "HTTP JSON: the good span of the partial request reads back" quiet node_run 30 check_trace.mjs --base "$QUERY" \
    --expected "$T/ps.exp.json" --v1-proto --timeout-ms 10000

node_run 10 mkreq.mjs --spans 3 --bad-span-ids 1 --bad-trace-ids 1 --out "$T/psg.json" --expected "$T/psg.exp.json" \
    --service ps-grpc >/dev/null
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --json "$T/psg.json" --out "$T/gps.json" >/dev/null
expect_eq "gRPC: 1 good + 1 bad span id + 1 bad trace id -> OK" "$(jsv "$T/gps.json" j.code 2>&1)" 0
expect_eq "gRPC: partial_success.rejected_spans = 2" \
    "$(jsv "$T/gps.json" 'j.response && j.response.partialSuccess && j.response.partialSuccess.rejectedSpans' 2>&1)" 2
check "gRPC: the good span reads back" quiet node_run 30 check_trace.mjs --base "$QUERY" --expected "$T/psg.exp.json" \
    --v1-proto --timeout-ms 10000

node_run 10 mkreq.mjs --spans 2 --bad-span-ids 1 --out "$T/psp.json" --expected "$T/psp.exp.json" --service ps-proto >/dev/null
node_run 10 pbtool.mjs encode "$T/psp.json" "$T/psp.pb"
code=$(post psproto application/x-protobuf "$T/psp.pb")
expect_eq "HTTP protobuf: one bad + one good span -> 200" "$code" 200
expect_eq "HTTP protobuf: response Content-Type application/x-protobuf" "$(hdr psproto Content-Type)" application/x-protobuf
expect_eq "HTTP protobuf: partial_success.rejected_spans = 1" \
    "$(node_run 10 pbtool.mjs export-response "$T/psproto.body" | jsv - 'j.partialSuccess && j.partialSuccess.rejectedSpans' 2>&1)" 1
check "HTTP protobuf: the good span reads back" quiet node_run 30 check_trace.mjs --base "$QUERY" --expected "$T/psp.exp.json" \
    --timeout-ms 10000

node_run 10 mkreq.mjs --spans 1 --bad-trace-ids 1 --out "$T/allbad.json" --service all-bad >/dev/null
code=$(post allbad application/json "$T/allbad.json")
expect_eq "HTTP JSON: only invalid spans is still 200" "$code" 200
expect_eq "HTTP JSON: ... with rejectedSpans \"1\"" "$(jsv "$T/allbad.body" 'j.partialSuccess && j.partialSuccess.rejectedSpans' 2>&1)" 1
printf '{}' >"$T/empty.json"
code=$(post emptyjson application/json "$T/empty.json")
expect_eq "HTTP JSON: empty request {} -> 200" "$code" 200
expect_eq "HTTP JSON: ... full success without partialSuccess" "$(jsv "$T/emptyjson.body" 'j.partialSuccess === undefined' 2>&1)" true
: >"$T/empty.pb"
code=$(post emptypb application/x-protobuf "$T/empty.pb")
expect_eq "HTTP protobuf: empty body (empty request) -> 200" "$code" 200
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --empty --out "$T/gempty.json" >/dev/null
expect_eq "gRPC: empty request -> OK" "$(jsv "$T/gempty.json" j.code 2>&1)" 0

# --- 5b. retries: the same spans sent again (HTTP twice + gRPC) are stored once -------------------------
TIDR=$(node_run 10 mkreq.mjs --spans 3 --out "$T/dup.json" --expected "$T/dup.exp.json" --service dup)
node_run 10 pbtool.mjs encode "$T/dup.json" "$T/dup.pb"
post dup1 application/json "$T/dup.json" >/dev/null
post dup2 application/json "$T/dup.json" >/dev/null
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --file "$T/dup.pb" --out "$T/gdup.json" >/dev/null
check "re-sent spans read back exactly once (3 spans, all representations)" quiet node_run 30 check_trace.mjs \
    --base "$QUERY" --expected "$T/dup.exp.json" --v1-proto --timeout-ms 10000
wait_metric 10 traced_spans_written_total "$(metric 'traced_spans_accepted_total{protocol="grpc"}' | awk -v h="$(metric 'traced_spans_accepted_total{protocol="http"}')" '{ print $1 + h }')" >/dev/null
check "re-sent spans: still 3 after everything was written" node_run 20 count_spans.mjs --base "$QUERY" \
    --ids <(echo "[\"$TIDR\"]") --want 3

# --- 5c. trace size limit (--max-trace-size 256KiB): v1 422, v2 PARTIAL ---------------------------------
TIDH=$(jsv "$T/half.exp.json" j.traceId)
code=$(http big1 "$QUERY/api/traces/$TIDH")
expect_eq "v1: trace over --max-trace-size -> 422 ($(show_body big1))" "$code" 422
code=$(http big2 -H 'Accept: application/json' "$QUERY/api/v2/traces/$TIDH")
expect_eq "v2: trace over --max-trace-size -> 200" "$code" 200
expect_eq "v2: ... with status PARTIAL and a message" \
    "$(jsv "$T/big2.body" 'j.status + ":" + (typeof j.message === "string" && j.message.length > 0)' 2>&1)" PARTIAL:true

# --- 6. the query port ---------------------------------------------------------------------------
for v in api/traces api/v2/traces; do
    code=$(http qxyz "$QUERY/$v/xyz")
    expect_eq "/$v/xyz -> 400" "$code" 400
    check "/$v/xyz body (got: $(show_body qxyz))" \
        body_is qxyz "trace IDs can only contain hex characters: invalid character 'x' at position 1"
    check "/$v/xyz is text/plain" grep -qi '^text/plain' <<<"$(hdr qxyz Content-Type)"
    code=$(http q33 "$QUERY/$v/0123456789abcdef0123456789abcdef0")
    expect_eq "/$v/<33 hex> -> 400" "$code" 400
    check "/$v/<33 hex> body (got: $(show_body q33))" body_is q33 "trace IDs can't be larger than 128 bits"
    code=$(http qse "$QUERY/$v/0123456789abcdef0123456789abcdef?start=20&end=10")
    expect_eq "/$v/<id>?start=20&end=10 -> 400" "$code" 400
    check "/$v start>end body (got: $(show_body qse))" \
        body_is qse "http parameter start must be before end. received start=20 end=10"
done
# short / odd-length / upper-case ids are left-padded like Tempo does
SHORT=$(node_run 10 mkreq.mjs --spans 1 --out "$T/short.json" --service short-id)
sed -i "s/\"traceId\":\"$SHORT\"/\"traceId\":\"0000000000000000${SHORT:16}\"/" "$T/short.json"
post short application/json "$T/short.json" >/dev/null
LOW=${SHORT:16}
wait_for 10 curl -sf --max-time 5 "$QUERY/api/traces/$LOW" -o /dev/null
for id in "$LOW" "${LOW^^}" "0000000000000000$LOW" "000$LOW"; do
    code=$(http qshort "$QUERY/api/traces/$id")
    expect_eq "v1 trace by a padded/short id '$id' -> 200" "$code" 200
done
UNKNOWN=fedcba9876543210fedcba9876543210
code=$(http q404 "$QUERY/api/traces/$UNKNOWN")
expect_eq "v1 unknown trace -> 404" "$code" 404
code=$(http qv2j -H 'Accept: application/json' "$QUERY/api/v2/traces/$UNKNOWN")
expect_eq "v2 unknown trace (JSON) -> 200" "$code" 200
expect_eq "v2 unknown trace (JSON) has an empty trace (body $(show_body qv2j))" \
    "$(jsv "$T/qv2j.body" 'j.trace !== undefined && (j.trace.resourceSpans || []).length === 0' 2>&1)" true
code=$(http qv2p -H 'Accept: application/protobuf' "$QUERY/api/v2/traces/$UNKNOWN")
expect_eq "v2 unknown trace (protobuf) -> 200" "$code" 200
expect_eq "v2 unknown trace (protobuf) starts with 0a 00" "$(head -c 2 "$T/qv2p.body" | od -An -tx1 | tr -d ' \n')" 0a00
expect_eq "v2 unknown trace (protobuf) Content-Type" "$(hdr qv2p Content-Type)" application/protobuf

# --- 7. AnyValue shapes the SDK cannot send ----------------------------------------------------------
code=$(post anyvalues application/json "$TD_TEST_DATA/otlp_anyvalues.json")
expect_eq "HTTP JSON: hand-written request with every AnyValue shape -> 200 (body $(show_body anyvalues))" "$code" 200
check "anyvalues read back (kvlist, bytes, empty, NaN/Inf, int64 extremes)" quiet node_run 30 check_trace.mjs \
    --base "$QUERY" --expected "$TD_TEST_DATA/otlp_anyvalues.expected.json" --v1-proto --timeout-ms 10000
AV=a1b2c3d4e5f60718293a4b5c6d7e8f90
curl -s --max-time 10 -H 'Accept: application/json' "$QUERY/api/v2/traces/$AV" >"$T/av.json"
ATTR='((k) => j.trace.resourceSpans[0].scopeSpans[0].spans[0].attributes.find((a) => a.key === k).value)'
expect_eq "Tempo JSON: bytesValue is base64" "$(jsv "$T/av.json" "$ATTR('e2e.bytes').bytesValue" 2>&1)" 'AAECA/7/'
expect_eq "Tempo JSON: int64 max is the string \"9223372036854775807\"" \
    "$(jsv "$T/av.json" "JSON.stringify($ATTR('e2e.int.max').intValue)" 2>&1)" '"9223372036854775807"'
expect_eq "Tempo JSON: int64 min is the string" \
    "$(jsv "$T/av.json" "JSON.stringify($ATTR('e2e.int.min').intValue)" 2>&1)" '"-9223372036854775808"'
expect_eq "Tempo JSON: kvlistValue.values has the 4 entries" \
    "$(jsv "$T/av.json" "$ATTR('e2e.kv').kvlistValue.values.map((kv) => kv.key).join(',')" 2>&1)" \
    'inner.s,inner.i,inner.nested,inner.empty'
expect_eq "Tempo JSON: NaN double" "$(jsv "$T/av.json" "JSON.stringify($ATTR('e2e.nan'))" 2>&1)" '{"doubleValue":"NaN"}'
expect_eq "Tempo JSON: empty value is {}" "$(jsv "$T/av.json" "JSON.stringify($ATTR('e2e.empty'))" 2>&1)" '{}'
expect_eq "Tempo JSON: a 19-digit JSON number for endTimeUnixNano kept its precision" \
    "$(jsv "$T/av.json" 'j.trace.resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano' 2>&1)" 1700000001987654321

# every other Span/Resource/Scope field survives: traceState, flags, dropped counts, schemaUrl, scope
# attributes, link traceState/flags, status enum given as a name (JSON) -- over OTLP JSON and gRPC
ALLF='((t) => { const rs = t.resourceSpans[0], ss = rs.scopeSpans[0], s = ss.spans[0], e = s.events[0], l = s.links[0]; return [
  rs.resource.droppedAttributesCount, rs.schemaUrl, ss.schemaUrl, ss.scope.name, ss.scope.version,
  ss.scope.attributes[0].key, ss.scope.droppedAttributesCount, s.traceState, s.flags, s.kind, s.droppedAttributesCount,
  e.droppedAttributesCount, s.droppedEventsCount, l.traceState, l.flags, l.droppedAttributesCount, s.droppedLinksCount,
  s.status.code, s.status.message ].join("|"); })(j.trace)'
WANT='3|https://opentelemetry.io/schemas/1.21.0|https://s/1|sc|9|scope.attr|1|k=v,x=y|769|SPAN_KIND_CLIENT|5|2|6|l=1|256|4|7|STATUS_CODE_ERROR|m'
code=$(post allf application/json "$TD_TEST_DATA/otlp_allfields.json")
expect_eq "HTTP JSON: request using every OTLP field -> 200" "$code" 200
wait_for 10 curl -sf --max-time 5 -o /dev/null "$QUERY/api/traces/22222222222222222222222222222222"
curl -s --max-time 10 "$QUERY/api/v2/traces/22222222222222222222222222222222" >"$T/allf.json"
expect_eq "Tempo JSON keeps traceState, flags, dropped counts, schemaUrls, scope attributes (JSON in)" \
    "$(jsv "$T/allf.json" "$ALLF" 2>&1)" "$WANT"
sed 's/22222222222222222222222222222222/22222222222222222222222222222223/' "$TD_TEST_DATA/otlp_allfields.json" \
    | sed 's/"STATUS_CODE_ERROR"/2/' >"$T/allf2.json"
node_run 10 pbtool.mjs encode "$T/allf2.json" "$T/allf2.pb"
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --file "$T/allf2.pb" --out "$T/gallf.json" >/dev/null
expect_eq "gRPC: request using every OTLP field -> OK" "$(jsv "$T/gallf.json" j.code 2>&1)" 0
wait_for 10 curl -sf --max-time 5 -o /dev/null "$QUERY/api/traces/22222222222222222222222222222223"
curl -s --max-time 10 "$QUERY/api/v2/traces/22222222222222222222222222222223" >"$T/allf2.json.out"
expect_eq "Tempo JSON keeps every field (protobuf over gRPC in)" "$(jsv "$T/allf2.json.out" "$ALLF" 2>&1)" "$WANT"

# --- 8. the good client lost nothing --------------------------------------------------------------
deadline=$(($(now_ms) + 120000))
while kill -0 $GOOD_PID 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
wait $GOOD_PID 2>/dev/null
expect_eq "background good client: all 6 exports succeeded (failed: $(cat "$T/good.failed" 2>/dev/null | tr '\n' ' '))" \
    "$(wc -l <"$T/good.ok" 2>/dev/null | tr -d ' ')" 6
for f in "$T"/good-*.json; do
    [ -f "$f" ] || continue
    check "background trace $(basename "$f" .json) is complete" quiet node_run 30 check_trace.mjs --base "$QUERY" \
        --expected "$f" --timeout-ms 10000
done
check "daemon still ready" curl -sf --max-time 5 "$QUERY/ready" -o /dev/null
check "SIGTERM: exit 0" traced_stop
finish
