#!/usr/bin/env bash
# search_http: /api/search request forms other than `q`: the very old bare-parameter tags
# (`?service.name=x`, used when none of q, tags, start, end is given) and protobuf responses
# (`Accept: application/protobuf` → a tempopb.SearchResponse). One OTLP JSON trace goes in.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init search_http
start_or_bail

RUN=$RANDOM$RANDOM
TID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
NOW=$(date +%s%N)
S0=$((NOW - 2000000000))
cat >"$E2E_TMP/trace.json" <<EOF
{"resourceSpans":[
 {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop-$RUN"}}]},
  "scopeSpans":[{"scope":{"name":"e2e"},"spans":[
   {"traceId":"$TID","spanId":"1000000000000001","name":"GET /checkout","kind":2,
    "startTimeUnixNano":"$S0","endTimeUnixNano":"$((S0 + 1500000000))","status":{},
    "attributes":[{"key":"region","value":{"stringValue":"eu west"}}]}]}]}]}
EOF
code=$(http post -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/trace.json" \
    "$OTLP_HTTP/v1/traces")
expect_eq "OTLP/HTTP JSON export -> 200" "$code" 200

ids() { jsv "$E2E_TMP/$1.body" 'j.traces.map((t) => t.traceID.padStart(32, "0")).join(",")'; }
bare_found() {
    [ "$(http bare "$QUERY/api/search?service.name=shop-$RUN&region=eu%20west&limit=5")" = 200 ] &&
        [ "$(ids bare)" = "$TID" ]
}
if wait_for 20 bare_found; then
    pass "bare tag parameters (service.name, a quoted attribute value) find the trace"
else
    fail "bare tag parameters (service.name, a quoted attribute value) find the trace"
    show_body bare
fi
code=$(http bare2 "$QUERY/api/search?service.name=shop-$RUN&region=elsewhere")
expect_eq "bare tags are AND-ed: 200" "$code" 200
expect_eq "... and a non-matching value finds nothing" "$(ids bare2)" ""
code=$(http bare3 "$QUERY/api/search?service.name=shop-$RUN&start=1")
expect_eq "with start present, bare parameters are not tags: 200" "$code" 200
expect_eq "... (the window starting at 1 s holds the trace, unfiltered by the tag)" \
    "$(jsv "$E2E_TMP/bare3.body" 'String(j.traces.some((t) => t.traceID.padStart(32, "0") === "'"$TID"'"))')" true
code=$(http bare4 "$QUERY/api/search?region=a&region=b")
expect_eq "a bare tag given twice -> 400" "$code" 400
check "... with Tempo's duplicate-tag message" grep -q "tag region has been set twice" "$E2E_TMP/bare4.body"

code=$(http pb -H 'Accept: application/protobuf' \
    --get --data-urlencode "q={ resource.service.name = \"shop-$RUN\" }" "$QUERY/api/search")
expect_eq "search with Accept: application/protobuf -> 200" "$code" 200
expect_eq "... Content-Type application/protobuf" "$(hdr pb Content-Type)" "application/protobuf"
node "$TD_E2E_DIR/pbtool.mjs" fields "$E2E_TMP/pb.body" >"$E2E_TMP/pb.fields" 2>&1
expect_eq "... a SearchResponse: one trace (field 1) then metrics (field 2)" \
    "$(jsv "$E2E_TMP/pb.fields" 'j.map((f) => f.num).join(",")')" "1,2"
check "... the trace entry carries the trace ID as hex text" \
    grep -q "$TID" "$E2E_TMP/pb.body"

code=$(http pbjson -H 'Accept: application/x-protobuf' \
    --get --data-urlencode "q={ resource.service.name = \"shop-$RUN\" }" "$QUERY/api/search")
expect_eq "Accept: application/x-protobuf is not protobuf (Tempo's substring rule): JSON" \
    "$(hdr pbjson Content-Type)" "application/json"

finish
