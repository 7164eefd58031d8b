#!/usr/bin/env bash
# tracectl_search: `tracectl search` against the real traced. One OTLP JSON trace (a root span
# and an erroring child in another service, timestamped now) goes in over OTLP/HTTP; TraceQL
# searches read it back as a table and as JSON; a query that matches nothing exits 1, a bad
# query exits 4 with the server's message, usage errors exit 2.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init tracectl_search
start_or_bail

RUN=$RANDOM$RANDOM
TID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
NOW=$(date +%s%N)
S0=$((NOW - 2000000000)) # the trace started 2 s ago and lasted 1.5 s
cat >"$E2E_TMP/trace.json" <<EOF
{"resourceSpans":[
 {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop-$RUN"}}]},
  "scopeSpans":[{"scope":{"name":"e2e"},"spans":[
   {"traceId":"$TID","spanId":"1000000000000001","name":"GET /checkout","kind":2,
    "startTimeUnixNano":"$S0","endTimeUnixNano":"$((S0 + 1500000000))","status":{}}]}]},
 {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing-$RUN"}}]},
  "scopeSpans":[{"scope":{"name":"e2e"},"spans":[
   {"traceId":"$TID","spanId":"2000000000000002","parentSpanId":"1000000000000001","name":"charge",
    "kind":3,"startTimeUnixNano":"$((S0 + 100000000))","endTimeUnixNano":"$((S0 + 600000000))",
    "status":{"code":2,"message":"card declined"}}]}]}]}
EOF
code=$(http post -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/trace.json" \
    "$OTLP_HTTP/v1/traces")
expect_eq "OTLP/HTTP JSON export -> 200" "$code" 200

Q="{ resource.service.name = \"billing-$RUN\" && status = error }"
found() { tracectl search "$Q" --since 15m >"$E2E_TMP/table" 2>"$E2E_TMP/table.err"; }
if wait_for 20 found; then
    pass "tracectl search finds the trace (exit 0)"
else
    fail "tracectl search finds the trace (exit 0)"
    sed 's/^/    | /' "$E2E_TMP/table" "$E2E_TMP/table.err"
fi
expect_eq "table header" "$(head -1 "$E2E_TMP/table" | tr -s ' ')" \
    "TRACE ID ROOT SERVICE ROOT NAME START DURATION MATCHED"
row=$(grep -- "^$TID " "$E2E_TMP/table" | tr -s ' ')
want_start=$(date -d "@$((S0 / 1000000000))" '+%Y-%m-%d %H:%M:%S')
expect_eq "row: id, root service, root name, local start, duration, matched" "$row" \
    "$TID shop-$RUN GET /checkout $want_start 1.5s 1"
expect_eq "final line counts the traces (singular for one)" "$(tail -1 "$E2E_TMP/table")" "1 trace"

tracectl search "$Q" --json >"$E2E_TMP/search.json" 2>&1
expect_eq "search --json exits 0" "$?" 0
expect_eq "search --json: the server's SearchResponse" \
    "$(jsv "$E2E_TMP/search.json" 'j.traces.map((t) => [t.traceID.padStart(32, "0"), t.rootServiceName, t.rootTraceName].join("|")).join(",")')" \
    "$TID|shop-$RUN|GET /checkout"

# The whole window given explicitly.
tracectl search '{ name = "charge" }' --start $((S0 / 1000000000 - 60)) --end $((NOW / 1000000000 + 60)) \
    --limit 5 >"$E2E_TMP/win" 2>&1
expect_eq "search --start/--end exits 0" "$?" 0
check "search --start/--end lists the trace" grep -q -- "^$TID " "$E2E_TMP/win"

tracectl search "{ resource.service.name = \"nobody-$RUN\" }" >"$E2E_TMP/none" 2>&1
expect_eq "a query matching nothing exits 1" "$?" 1
expect_eq "... and prints 0 traces" "$(tail -1 "$E2E_TMP/none")" "0 traces"

# An old window holds nothing of this run.
tracectl search "$Q" --start 1000000000 --end 1000003600 >/dev/null 2>&1
expect_eq "an old window exits 1" "$?" 1

tracectl search '{ status = }' >"$E2E_TMP/bad.out" 2>"$E2E_TMP/bad.err"
expect_eq "a bad TraceQL query exits 4" "$?" 4
check "the server's 400 message is on stderr" grep -q 'HTTP 400: .*invalid' "$E2E_TMP/bad.err"

tracectl search >/dev/null 2>&1
expect_eq "no query exits 2" "$?" 2
tracectl search "$Q" --since 1y >/dev/null 2>&1
expect_eq "bad --since exits 2" "$?" 2
timeout -k 2 30 "$TRACECTL_BIN" --server http://127.0.0.1:1 --timeout 5 search "$Q" >/dev/null 2>&1
expect_eq "closed port exits 3" "$?" 3

finish
