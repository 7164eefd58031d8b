#!/usr/bin/env bash
# flood: overload the bounded queue. Every request is answered 200 or 503 (+ Retry-After), the
# counters add up exactly (dropped = refused x spans, accepted = accepted x spans), the daemon stays
# ready, every accepted trace is complete and no refused trace was half-written. Then a queue
# smaller than one request: gRPC UNAVAILABLE with a RetryInfo detail, HTTP 503 with Retry-After.
# Finally SIGTERM in the middle of a flood: clean exit, and after a restart every accepted request is
# complete while refused or unanswered ones are absent (or, if unanswered, complete): never partial.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init flood

SPANS=500
REQUESTS=200

# --- 1. HTTP flood ---------------------------------------------------------------------------
# fsync per write batch and 8 decoding threads keep the queue occupied, so overlaps (refusals) are certain
start_or_bail --queue-max-spans 600 --retry-after 2s --store-sync true --http-threads 8
node_run 70 flood.mjs --endpoint "$OTLP_HTTP/v1/traces" --requests $REQUESTS --spans-per-request $SPANS \
    --concurrency 16 --out "$E2E_TMP/flood.json" --timeout-ms 50000
R=$E2E_TMP/flood.json
if [ ! -f "$R" ]; then
    fail "flood.mjs wrote no result"
    finish
    exit 1
fi
ACC=$(jsv "$R" j.accepted.length)
REF=$(jsv "$R" j.refused.length)
echo "flood: accepted=$ACC refused=$REF statuses=$(jsv "$R" j.statusCounts) elapsed=$(jsv "$R" j.elapsedMs)ms"
expect_eq "flood finished before its timeout" "$(jsv "$R" j.timedOut)" false
expect_eq "no status other than 200/503 (other: $(jsv "$R" 'j.other.slice(0, 3)'))" "$(jsv "$R" j.other.length)" 0
check "some requests were refused with 503 (refused=$REF)" test "$REF" -gt 0
check "some requests were accepted (accepted=$ACC)" test "$ACC" -gt 0
expect_eq "every 503 carries Retry-After: 2" \
    "$(jsv "$R" 'j.retryAfter.filter((v) => v !== "2").length')" 0
check "daemon still ready after the flood" curl -sf --max-time 5 "$QUERY/ready" -o /dev/null
expect_eq 'traced_spans_dropped_total{reason="queue_full"} == refused x spans' \
    "$(metric 'traced_spans_dropped_total{reason="queue_full"}')" $((REF * SPANS))
expect_eq 'traced_spans_accepted_total{protocol="http"} == accepted x spans' \
    "$(metric 'traced_spans_accepted_total{protocol="http"}')" $((ACC * SPANS))
if wait_metric 30 traced_spans_written_total $((ACC * SPANS)); then
    pass "all accepted spans written ($((ACC * SPANS)))"
else
    fail "all accepted spans written: written=$(metric traced_spans_written_total), want $((ACC * SPANS))"
fi
check "every accepted trace has all $SPANS spans" node_run 40 count_spans.mjs --base "$QUERY" --ids "$R" \
    --field accepted --want $SPANS --max $REQUESTS --timeout-ms 35000
check "no refused trace was (partly) written" node_run 40 count_spans.mjs --base "$QUERY" --ids "$R" \
    --field refused --want 0 --max $REQUESTS --timeout-ms 35000

# --- 1b. the same over gRPC: UNAVAILABLE (14) with a RetryInfo of 2 s ------------------------------------
node_run 70 grpc_flood.mjs --target "$OTLP_GRPC" --requests $REQUESTS --spans-per-request $SPANS \
    --concurrency 16 --out "$E2E_TMP/gflood.json" --timeout-ms 50000
GR=$E2E_TMP/gflood.json
if [ -f "$GR" ]; then
    GACC=$(jsv "$GR" j.accepted.length)
    GREF=$(jsv "$GR" j.refused.length)
    expect_eq "gRPC flood: no code other than OK/UNAVAILABLE (other: $(jsv "$GR" 'j.other.slice(0, 3)'))" \
        "$(jsv "$GR" j.other.length)" 0
    check "gRPC flood: some calls refused with UNAVAILABLE (refused=$GREF)" test "$GREF" -gt 0
    check "gRPC flood: some calls accepted (accepted=$GACC)" test "$GACC" -gt 0
    expect_eq "gRPC flood: every UNAVAILABLE carries a google.rpc.Status(14) with RetryInfo 2 s" \
        "$(jsv "$GR" 'j.refusals.filter((r) => !(r.statusCode === 14 && r.retryDelay && r.retryDelay.seconds === "2" && r.retryDelay.nanos === 0)).length')" 0
    expect_eq 'traced_spans_dropped_total{reason="queue_full"} == (HTTP + gRPC refused) x spans' \
        "$(metric 'traced_spans_dropped_total{reason="queue_full"}')" $(((REF + GREF) * SPANS))
    expect_eq 'traced_spans_accepted_total{protocol="grpc"} == accepted x spans' \
        "$(metric 'traced_spans_accepted_total{protocol="grpc"}')" $((GACC * SPANS))
    if wait_metric 30 traced_spans_written_total $(((ACC + GACC) * SPANS)); then
        pass "all accepted spans written ($(((ACC + GACC) * SPANS)))"
    else
        fail "all accepted spans written: written=$(metric traced_spans_written_total), want $(((ACC + GACC) * SPANS))"
    fi
    check "gRPC flood: every accepted trace has all $SPANS spans" node_run 40 count_spans.mjs --base "$QUERY" \
        --ids "$GR" --field accepted --want $SPANS --max $REQUESTS --timeout-ms 35000
    check "gRPC flood: no refused trace was (partly) written" node_run 40 count_spans.mjs --base "$QUERY" \
        --ids "$GR" --field refused --want 0 --max $REQUESTS --timeout-ms 35000
else
    fail "grpc_flood.mjs wrote no result"
fi
check "daemon still ready after both floods" curl -sf --max-time 5 "$QUERY/ready" -o /dev/null
curl -sf --max-time 5 "$QUERY/metrics" | grep -E '^traced_(ingest_requests_total|queue_)' | sed 's/^/  metric: /'
check "SIGTERM after the floods: exit 0" traced_stop

# --- 2. a queue smaller than one request ------------------------------------------------------
DATA_DIR=$E2E_TMP/data-small
start_or_bail --queue-max-spans 4 --retry-after 3s
node_run 10 mkreq.mjs --spans 6 --out "$E2E_TMP/six.json" --service flood-six >/dev/null
node_run 10 pbtool.mjs encode "$E2E_TMP/six.json" "$E2E_TMP/six.pb"

for gz in "" --gzip; do
    label="gRPC${gz:+ gzip}"
    node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --file "$E2E_TMP/six.pb" $gz --out "$E2E_TMP/g6.json" >/dev/null
    G=$E2E_TMP/g6.json
    expect_eq "$label: 6 spans into a 4-span queue -> UNAVAILABLE (14)" "$(jsv "$G" j.code 2>&1)" 14
    expect_eq "$label: grpc-status-details-bin is a google.rpc.Status with code 14" \
        "$(jsv "$G" 'j.statusDetails && j.statusDetails.code' 2>&1)" 14
    expect_eq "$label: Status.details has one RetryInfo" \
        "$(jsv "$G" '(j.statusDetails && j.statusDetails.details || []).filter((d) => d.typeUrl === "type.googleapis.com/google.rpc.RetryInfo").length' 2>&1)" 1
    expect_eq "$label: RetryInfo.retry_delay is 3 s" \
        "$(jsv "$G" '(j.statusDetails.details.find((d) => d.retryDelay) || {}).retryDelay' 2>&1)" '{"seconds":"3","nanos":0}'
    check "$label: status message is not empty ($(jsv "$G" j.details 2>&1))" test -n "$(jsv "$G" j.details 2>/dev/null)"
done

code=$(http h6 -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/six.json" "$OTLP_HTTP/v1/traces")
expect_eq "HTTP JSON: 6 spans into a 4-span queue -> 503" "$code" 503
expect_eq "HTTP JSON 503: Retry-After: 3" "$(hdr h6 Retry-After)" 3
code=$(http h6p -H 'Content-Type: application/x-protobuf' --data-binary "@$E2E_TMP/six.pb" "$OTLP_HTTP/v1/traces")
expect_eq "HTTP protobuf: 6 spans into a 4-span queue -> 503" "$code" 503
expect_eq "HTTP protobuf 503: Retry-After: 3" "$(hdr h6p Retry-After)" 3
expect_eq "HTTP protobuf 503: Content-Type application/x-protobuf" "$(hdr h6p Content-Type)" application/x-protobuf
check "HTTP protobuf 503: body is a google.rpc.Status ($(node_run 10 pbtool.mjs status "$E2E_TMP/h6p.body" 2>&1))" \
    quiet node_run 10 pbtool.mjs status "$E2E_TMP/h6p.body"
expect_eq 'queue_full drops counted: 4 requests x 6 spans' \
    "$(metric 'traced_spans_dropped_total{reason="queue_full"}')" 24
TID6=$(jsv "$E2E_TMP/six.json" 'j.resourceSpans[0].scopeSpans[0].spans[0].traceId')
code=$(http six404 "$QUERY/api/traces/$TID6")
expect_eq "refused 6-span trace was not written (v1 404)" "$code" 404

# a request that fits still goes through (the queue is not simply closed)
node_run 10 mkreq.mjs --spans 3 --out "$E2E_TMP/three.json" --expected "$E2E_TMP/three.exp.json" --service flood-three >/dev/null
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --json "$E2E_TMP/three.json" --out "$E2E_TMP/g3.json" >/dev/null
expect_eq "gRPC: 3 spans into the 4-span queue -> OK" "$(jsv "$E2E_TMP/g3.json" j.code 2>&1)" 0
check "the 3-span trace reads back" quiet node_run 30 check_trace.mjs --base "$QUERY" --expected "$E2E_TMP/three.exp.json" --timeout-ms 10000
check "SIGTERM: exit 0" traced_stop

# --- 3. SIGTERM in the middle of a flood: exit 0, accepted requests complete, nothing half-written ----
DATA_DIR=$E2E_TMP/data-term
start_or_bail --queue-max-spans 5000 --store-sync true
node_run 60 flood.mjs --endpoint "$OTLP_HTTP/v1/traces" --requests 400 --spans-per-request $SPANS \
    --concurrency 16 --out "$E2E_TMP/flood-term.json" --timeout-ms 40000 >"$E2E_TMP/flood-term.log" 2>&1 &
FLOOD_PID=$!
some_accepted() { awk -v v="$(metric 'traced_spans_accepted_total{protocol="http"}')" 'BEGIN { exit !(v >= 5000) }'; }
check "flood under way (>= 10 requests accepted)" wait_for 30 some_accepted
check "SIGTERM during the flood: traced exits 0" traced_stop
deadline=$(($(now_ms) + 60000))
while kill -0 $FLOOD_PID 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
wait $FLOOD_PID 2>/dev/null
R=$E2E_TMP/flood-term.json
if [ -f "$R" ]; then
    echo "  $(cat "$E2E_TMP/flood-term.log")"
    start_or_bail
    check "after restart: every request answered 200 before SIGTERM is complete" node_run 40 count_spans.mjs \
        --base "$QUERY" --ids "$R" --field accepted --want $SPANS --max 400 --timeout-ms 35000
    check "after restart: no refused request left spans" node_run 40 count_spans.mjs --base "$QUERY" --ids "$R" \
        --field refused --want 0 --max 400 --timeout-ms 35000
    check "after restart: unanswered requests are all-or-nothing (0 or $SPANS spans)" node_run 40 count_spans.mjs \
        --base "$QUERY" --ids "$R" --field other --want 0,$SPANS --max 400 --timeout-ms 35000
    check "SIGTERM: exit 0" traced_stop
else
    fail "flood during SIGTERM wrote no result: $(cat "$E2E_TMP/flood-term.log")"
fi
finish
