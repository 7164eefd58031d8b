#!/usr/bin/env bash
# retention: old traces and profiles are deleted by the background pass, new ones stay.
# traced first runs with --retention 0 (keep forever) so both the old and the new span
# and profile are seen stored; it restarts with --retention 10m --retention-interval 1s
# and the old ones (timestamps two hours back) disappear from /api/v2/traces/{id} (and v1),
# /api/search and the profile query while the new ones stay and the daemon keeps
# serving. (The retention is 10 minutes rather than seconds so that the "new" data,
# stamped now, cannot age out while the test runs: traces are cut at whole minutes.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init retention

RUN=$RANDOM$RANDOM
NOW=$(date +%s%N)
OLD=$((NOW - 7200000000000))
NEW=$((NOW - 1000000000))
TID_OLD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
TID_NEW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
NOW_S=$((NOW / 1000000000))
OLD_S=$((OLD / 1000000000))

span() { # span FILE TRACE_ID START_NS
    cat >"$1" <<EOF
{"resourceSpans":[
 {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ret-$RUN"}}]},
  "scopeSpans":[{"scope":{"name":"e2e"},"spans":[
   {"traceId":"$2","spanId":"1000000000000001","name":"GET /r","kind":2,
    "startTimeUnixNano":"$3","endTimeUnixNano":"$(($3 + 500000000))","status":{}}]}]}]}
EOF
}
span "$E2E_TMP/old.json" "$TID_OLD" "$OLD"
span "$E2E_TMP/new.json" "$TID_NEW" "$NEW"

# trace_is ID CODE: GET /api/v2/traces/ID answers CODE
trace_is() { [ "$(http "tr$1" "$QUERY/api/v2/traces/$1")" = "$2" ]; }
# trace_gone ID: v2 answers an empty trace (200, as Tempo does) and v1 answers 404
trace_gone() {
    trace_is "$1" 200 && ! grep -q resourceSpans "$E2E_TMP/tr$1.body" &&
        [ "$(http "v1$1" "$QUERY/api/traces/$1")" = 404 ]
}
# trace_there ID: v2 answers the trace's spans
trace_there() { trace_is "$1" 200 && grep -q resourceSpans "$E2E_TMP/tr$1.body"; }
# found: the trace IDs /api/search finds for this run's service over the last three hours
found() {
    http search --get --data-urlencode "q={ resource.service.name = \"ret-$RUN\" }" \
        --data-urlencode "start=$((NOW_S - 10800))" --data-urlencode "end=$((NOW_S + 60))" \
        --data-urlencode "limit=20" "$QUERY/api/search" >/dev/null &&
        jsv "$E2E_TMP/search.body" \
            'j.traces.map((t) => t.traceID.padStart(32, "0")).sort().join(",")'
}
search_is() { [ "$(found)" = "$1" ]; }
# apps: the service_name values of stored profiles over the last three hours
apps() {
    printf '{"name":"service_name","start":"%s","end":"%s"}' "$(((NOW_S - 10800) * 1000))" \
        "$(((NOW_S + 60) * 1000))" >"$E2E_TMP/lv.req"
    http lv -X POST -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/lv.req" \
        "$QUERY/querier.v1.QuerierService/LabelValues" >/dev/null &&
        jsv "$E2E_TMP/lv.body" '(j.names || []).filter((n) => n.endsWith("'"$RUN"'")).join(",")'
}
apps_is() { [ "$(apps)" = "$1" ]; }
both=$(printf '%s\n%s\n' "$TID_OLD" "$TID_NEW" | sort | paste -sd,)

# ---- keep forever: everything goes in and is found ----
start_or_bail --retention 0
for f in old new; do
    expect_eq "OTLP/HTTP JSON export of the $f span -> 200" \
        "$(http "post$f" -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/$f.json" \
            "$OTLP_HTTP/v1/traces")" 200
done
expect_eq "folded profile two hours back -> 200" \
    "$(http pold -X POST --data-binary 'main;oldwork 5' \
        "$QUERY/ingest?name=old-$RUN&format=folded&from=$((OLD_S - 10))&until=$OLD_S")" 200
expect_eq "folded profile now -> 200" \
    "$(http pnew -X POST --data-binary 'main;newwork 7' \
        "$QUERY/ingest?name=new-$RUN&format=folded&from=$((NOW_S - 10))&until=$NOW_S")" 200
check "with retention 0 both traces are found by ID" \
    wait_for 20 eval "trace_there $TID_OLD && trace_there $TID_NEW"
check "with retention 0 search finds both" wait_for 20 search_is "$both"
check "with retention 0 both profiles are stored" wait_for 20 apps_is "new-$RUN,old-$RUN"
check "retention 0 starts no retention thread" grep -q 'kept forever' "$TRACED_LOG"
check "traced stops cleanly" traced_stop

# ---- retention 10m, a pass every second ----
start_or_bail --retention 10m --retention-interval 1s
check "the old trace disappears from /api/v2/traces/{id} (empty) and /api/traces/{id} (404)" \
    wait_for 20 trace_gone "$TID_OLD"
check "the new trace stays" eval "trace_there $TID_NEW"
check "search finds only the new trace" wait_for 10 search_is "$TID_NEW"
check "the old profile's series disappears, the new one stays" wait_for 20 apps_is "new-$RUN"
check "deletions are counted (traces)" \
    awk -v v="$(metric 'traced_retention_deleted_total{store="traces",kind="fragment"}')" \
    'BEGIN { exit !(v >= 1) }'
check "deletions are counted (profiles)" \
    awk -v v="$(metric 'traced_retention_deleted_total{store="profiles",kind="profile"}')" \
    'BEGIN { exit !(v >= 1) }'
check "the last pass duration is exported" \
    eval "curl -sf --max-time 5 '$QUERY/metrics' | grep -q '^traced_retention_last_pass_seconds '"
# passes keep running and the daemon keeps serving: a second new span is stored and kept
TID_NEW2=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
span "$E2E_TMP/new2.json" "$TID_NEW2" "$(date +%s%N)"
expect_eq "ingest during retention passes -> 200" \
    "$(http post2 -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/new2.json" \
        "$OTLP_HTTP/v1/traces")" 200
check "the span ingested during passes is found" wait_for 20 eval "trace_there $TID_NEW2"
# an old span ingested now goes with one of the next passes; the new data stays through them
TID_OLD2=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
span "$E2E_TMP/old2.json" "$TID_OLD2" "$OLD"
DELETED='traced_retention_deleted_total{store="traces",kind="fragment"}'
written0=$(metric traced_spans_written_total)
deleted0=$(metric "$DELETED")
at_least() { awk -v a="$(metric "$1")" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
expect_eq "ingest of another old span -> 200" \
    "$(http post3 -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/old2.json" \
        "$OTLP_HTTP/v1/traces")" 200
check "... it is written" wait_for 20 at_least traced_spans_written_total $((written0 + 1))
check "... and a later pass deletes it" \
    wait_for 20 eval "at_least '$DELETED' $((deleted0 + 1)) && trace_gone $TID_OLD2"
check "after more passes the new traces and profile are still there" \
    eval "trace_there $TID_NEW && trace_there $TID_NEW2 && apps_is new-$RUN"
check "ready" eval "curl -sf --max-time 5 '$QUERY/ready' >/dev/null"
check "traced stops cleanly (the retention thread joins)" traced_stop
finish
