#!/usr/bin/env bash
# pyro_query: the Pyroscope query API against the real daemon. A hand-built pprof (the
# API-CONTRACT §6.3 stacks, with span_id labels) goes in through POST /ingest?format=pprof;
# then every querier.v1 method is called the way Grafana's datasource does (Connect,
# application/proto, decoded with pyro_tool.mjs) and the way the Drilldown app does
# (application/json), on the query port and on pyroscope-listen; SelectMergeProfile is
# read back by `go tool pprof -top`; the legacy /pyroscope routes, tracectl profiles, and
# bad input (documented 4xx, daemon still up) are checked too.
source "$(dirname "$0")/lib.sh"
e2e_init pyro_query

PT=process_cpu:cpu:nanoseconds:cpu:nanoseconds
tool() { timeout -k 2 30 node "$TD_E2E_DIR/pyro_tool.mjs" "$@"; }

start_or_bail --pyroscope-listen 127.0.0.1:0
PYRO_PORT=$(_port_of pyroscope "$(_started_line)")
check "pyroscope-listen reports its port" test -n "$PYRO_PORT"
PYRO=http://127.0.0.1:$PYRO_PORT

# connect BASE METHOD CTYPE BODYFILE NAME: POST a Connect unary call; prints the status
connect() {
    http "$5" -X POST -H "Content-Type: $3" --data-binary "@$4" \
        "$1/querier.v1.QuerierService/$2"
}
# pcall METHOD REQMSG JSON NAME [BASE]: proto call as Grafana makes it
pcall() {
    tool encode "$2" "$3" "$E2E_TMP/$4.req" || return 1
    connect "${5:-$QUERY}" "$1" application/proto "$E2E_TMP/$4.req" "$4"
}
# jcall METHOD JSON NAME [BASE]: JSON call as the Drilldown app makes it
jcall() {
    printf '%s' "$2" >"$E2E_TMP/$3.req"
    connect "${4:-$QUERY}" "$1" application/json "$E2E_TMP/$3.req" "$3"
}
dec() { tool decode "$1" "$E2E_TMP/$2.body"; }

# ---- empty store: Grafana's Save & test ----
expect_eq "ProfileTypes health check (proto, start=1000 end=4000) -> 200" \
    "$(pcall ProfileTypes ProfileTypesRequest '{"start":1000,"end":4000}' health)" 200
expect_eq "health check answers application/proto" "$(hdr health Content-Type)" application/proto
check "health check body is an empty message" test ! -s "$E2E_TMP/health.body"
expect_eq "no data: SelectMergeStacktraces -> single root node" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$PT'","labelSelector":"{}","start":"1","end":"2"}' empty)" 200
check "empty flame graph is [0,0,0,0] with total 0" body_is empty \
    '{"flamegraph":{"names":["total"],"levels":[{"values":["0","0","0","0"]}]}}'

# ---- ingest ----
now=$(date +%s)
tool pprof "$E2E_TMP/p.pb.gz" "${now}000000000"
expect_eq "POST /ingest?format=pprof -> 200" \
    "$(http ingest -X POST --data-binary "@$E2E_TMP/p.pb.gz" \
        "$QUERY/ingest?name=shop%7Benv%3Dprod%7D&format=pprof&from=$now&until=$((now + 10))")" 200
start_ms=$(((now - 3600) * 1000))
end_ms=$(((now + 60) * 1000))
RANGE='"start":"'$start_ms'","end":"'$end_ms'"'

# ---- discovery ----
expect_eq "ProfileTypes (proto)" "$(pcall ProfileTypes ProfileTypesRequest "{$RANGE}" types)" 200
expect_eq "ProfileTypes lists the cpu type" "$(dec ProfileTypesResponse types)" \
    '{"profileTypes":[{"ID":"'$PT'","name":"process_cpu","sampleType":"cpu","sampleUnit":"nanoseconds","periodType":"cpu","periodUnit":"nanoseconds"}]}'
expect_eq "ProfileTypes (JSON)" "$(jcall ProfileTypes "{$RANGE}" typesj)" 200
check "ProfileTypes JSON uses protojson names" body_is typesj \
    '{"profileTypes":[{"ID":"'$PT'","name":"process_cpu","sampleType":"cpu","sampleUnit":"nanoseconds","periodType":"cpu","periodUnit":"nanoseconds"}]}'
expect_eq "LabelNames (proto)" \
    "$(pcall LabelNames LabelNamesRequest '{"matchers":["{service_name=\"shop\"}"],'"$RANGE"'}' names)" 200
names=$(dec NamesResponse names)
check "LabelNames has service_name, env and __profile_type__" \
    bash -c "grep -q '\"service_name\"' <<<'$names' && grep -q '\"env\"' <<<'$names' && grep -q '\"__profile_type__\"' <<<'$names'"
expect_eq "LabelValues service_name (proto)" \
    "$(pcall LabelValues LabelValuesRequest '{"name":"service_name","matchers":["{}"],'"$RANGE"'}' vals)" 200
expect_eq "LabelValues answer" "$(dec NamesResponse vals)" '{"names":["shop"]}'
expect_eq "LabelValues __profile_type__ (JSON)" \
    "$(jcall LabelValues '{"name":"__profile_type__",'"$RANGE"'}' valsj)" 200
check "LabelValues __profile_type__ answer" body_is valsj '{"names":["'$PT'"]}'
expect_eq "Series with label_names (JSON)" \
    "$(jcall Series '{"matchers":["{service_name=\"shop\"}"],"labelNames":["service_name","env"],'"$RANGE"'}' series)" 200
check "Series answer" body_is series \
    '{"labelsSet":[{"labels":[{"name":"env","value":"prod"},{"name":"service_name","value":"shop"}]}]}'

# ---- flame graphs ----
FG_WANT='{"flamegraph":{"names":["total","main","c","a","b"],"levels":[{"values":["0","6","0","0"]},{"values":["0","6","0","1"]},{"values":["0","4","1","3","0","2","2","2"]},{"values":["1","3","3","4"]}],"total":"6","maxSelf":"3"}}'
expect_eq "SelectMergeStacktraces (proto, as Grafana)" \
    "$(pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$PT'","labelSelector":"{service_name=\"shop\"}",'"$RANGE"',"maxNodes":16384}' fg)" 200
expect_eq "flame graph is the §6.3 example exactly" "$(dec SelectMergeStacktracesResponse fg)" "$FG_WANT"
expect_eq "SelectMergeStacktraces (JSON, unknown fields and enum names ignored)" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$PT'","labelSelector":"{service_name=\"shop\"}",'"$RANGE"',"format":"PROFILE_FORMAT_SANDWICH","sandwichFunction":"a"}' fgj)" 200
check "JSON flame graph is the §6.3 example" body_is fgj "$FG_WANT"
expect_eq "SelectMergeStacktraces max_nodes=3 folds c into other" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$PT'","labelSelector":"{}",'"$RANGE"',"maxNodes":"3"}' fg3)" 200
check "truncated names" grep -q '"names":\["total","main","other","a","b"\]' "$E2E_TMP/fg3.body"
expect_eq "SelectMergeSpanProfile (proto, as Grafana's trace-to-profile link)" \
    "$(pcall SelectMergeSpanProfile SelectMergeSpanProfileRequest '{"profileTypeID":"'$PT'","labelSelector":"{service_name=\"shop\"}","spanSelector":["0000000000001111"],'"$RANGE"'}' span)" 200
expect_eq "span flame graph has only that span's samples" "$(dec SelectMergeStacktracesResponse span)" \
    '{"flamegraph":{"names":["total","main","a","b"],"levels":[{"values":["0","3","0","0"]},{"values":["0","3","0","1"]},{"values":["0","3","0","2"]},{"values":["0","3","3","3"]}],"total":"3","maxSelf":"3"}}'

# ---- time series ----
expect_eq "SelectSeries (proto, group by service_name)" \
    "$(pcall SelectSeries SelectSeriesRequest '{"profileTypeID":"'$PT'","labelSelector":"{}",'"$RANGE"',"groupBy":["service_name"],"step":15,"exemplarType":1}' ser)" 200
ser=$(dec SelectSeriesResponse ser)
check "one series labelled service_name=shop with total 6" \
    bash -c "grep -q '\"labels\":\[{\"name\":\"service_name\",\"value\":\"shop\"}\]' <<<'$ser' && grep -q '\"value\":6' <<<'$ser'"
expect_eq "SelectSeries with step under 1 ms -> 400" \
    "$(jcall SelectSeries '{"profileTypeID":"'$PT'",'"$RANGE"',"step":0.0001}' serbad)" 400

# ---- pprof export, read by go tool pprof ----
expect_eq "SelectMergeProfile (proto)" \
    "$(pcall SelectMergeProfile SelectMergeProfileRequest '{"profileTypeID":"'$PT'","labelSelector":"{}",'"$RANGE"'}' merged)" 200
if command -v go >/dev/null; then
    gzip -c "$E2E_TMP/merged.body" >"$E2E_TMP/merged.pb.gz"
    top=$(timeout -k 2 60 go tool pprof -top "$E2E_TMP/merged.pb.gz" 2>&1)
    check "go tool pprof -top reads the merged profile: b flat 3" \
        grep -qE '^ +3ns +50\.00% +50\.00% +3ns +50\.00%  b$' <<<"$top"
    check "go tool pprof -top: main cumulative 6" grep -qE '^ +0 +0% +100% +6ns +100%  main$' <<<"$top"
else
    fail "go is not installed (scripts/setup-debian.sh installs golang-go)"
fi

# ---- the remaining methods in JSON, as the Drilldown app sends them ----
expect_eq "SelectSeries (JSON)" "$(jcall SelectSeries '{"profileTypeID":"'$PT'","labelSelector":"{}",'"$RANGE"',"step":15,"aggregation":"TIME_SERIES_AGGREGATION_TYPE_SUM"}' serj)" 200
check "SelectSeries JSON point value 6" grep -q '"value":6,"timestamp":"' "$E2E_TMP/serj.body"
expect_eq "SelectMergeSpanProfile (JSON)" "$(jcall SelectMergeSpanProfile '{"profileTypeID":"'$PT'","labelSelector":"{}","spanSelector":["0000000000002222"],'"$RANGE"'}' spanj)" 200
check "span profile JSON has only c" grep -q '"names":\["total","main","c"\]' "$E2E_TMP/spanj.body"
expect_eq "SelectMergeProfile (JSON)" "$(jcall SelectMergeProfile '{"profileTypeID":"'$PT'",'"$RANGE"'}' mergedj)" 200
check "SelectMergeProfile JSON is a pprof in protojson" \
    grep -q '"sampleType":\[{"type":"[0-9]*","unit":"[0-9]*"}\]' "$E2E_TMP/mergedj.body"
expect_eq "LabelNames (JSON, Drilldown Accept)" \
    "$(http namesj -X POST -H 'Content-Type: application/json' -H 'Accept: application/json; allow-utf8-labelnames=true' \
        -d '{"matchers":["{}"],'"$RANGE"'}' "$QUERY/querier.v1.QuerierService/LabelNames")" 200
check "LabelNames JSON lists service_name" grep -q '"service_name"' "$E2E_TMP/namesj.body"

# ---- diff, stats ----
expect_eq "Diff (JSON)" "$(jcall Diff '{"left":{"profileTypeID":"'$PT'",'"$RANGE"'},"right":{"profileTypeID":"'$PT'","labelSelector":"{env=\"dev\"}",'"$RANGE"'}}' diff)" 200
check "Diff ticks" grep -q '"leftTicks":"6"' "$E2E_TMP/diff.body"
expect_eq "GetProfileStats (JSON)" "$(jcall GetProfileStats '{}' stats)" 200
check "GetProfileStats says data was ingested" grep -q '"dataIngested":true' "$E2E_TMP/stats.body"

# ---- the same on pyroscope-listen ----
expect_eq "pyroscope-listen serves SelectMergeStacktraces" \
    "$(pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$PT'","labelSelector":"{}",'"$RANGE"'}' fg4040 "$PYRO")" 200
expect_eq "pyroscope-listen flame graph" "$(dec SelectMergeStacktracesResponse fg4040)" "$FG_WANT"
expect_eq "pyroscope-listen serves /ready" "$(http ready4040 "$PYRO/ready")" 200

# ---- legacy routes ----
expect_eq "/pyroscope/render" "$(http render -G "$QUERY/pyroscope/render" \
    --data-urlencode "query=$PT{service_name=\"shop\"}" --data-urlencode "from=now-1h" --data-urlencode "until=now")" 200
check "render flamebearer" grep -q '"flamebearer":{"names":\["total","main","c","a","b"\],"levels":\[\[0,6,0,0\],\[0,6,0,1\],\[0,4,1,3,0,2,2,2\],\[1,3,3,4\]\],"numTicks":6,"maxSelf":3}' "$E2E_TMP/render.body"
check "render timeline sums to 6" bash -c "jq -e '[.timeline.samples[]] | add == 6' '$E2E_TMP/render.body' >/dev/null 2>&1 || node -e 'const j=JSON.parse(require(\"fs\").readFileSync(process.argv[1]));process.exit(j.timeline.samples.reduce((a,b)=>a+b,0)===6?0:1)' '$E2E_TMP/render.body'"
expect_eq "/pyroscope/render format=dot" "$(http rdot -G "$QUERY/pyroscope/render" \
    --data-urlencode "query=$PT{}" --data-urlencode "format=dot" --data-urlencode "from=now-1h")" 200
check "render format=dot is a Graphviz graph with main -> a" \
    bash -c "grep -q '^digraph' '$E2E_TMP/rdot.body' && grep -q '^N1 -> N2 \\[label=\" 4\"\\]' '$E2E_TMP/rdot.body'"
expect_eq "/pyroscope/render without query -> 400" "$(http render400 "$QUERY/pyroscope/render")" 400
expect_eq "/pyroscope/render-diff" "$(http rdiff -G "$QUERY/pyroscope/render-diff" \
    --data-urlencode "leftQuery=$PT{}" --data-urlencode "rightQuery=$PT{}" \
    --data-urlencode "leftFrom=now-1h" --data-urlencode "rightFrom=now-1h")" 200
check "render-diff is a double flamebearer" grep -q '"format":"double"' "$E2E_TMP/rdiff.body"
expect_eq "/pyroscope/label-values?label=__name__" \
    "$(http lv "$QUERY/pyroscope/label-values?label=__name__")" 200
check "label-values lists the profile type" body_is lv '["'$PT'"]'

# ---- tracectl profiles ----
out=$(tracectl profiles types 2>&1)
check "tracectl profiles types" grep -q "^$PT" <<<"$out"
out=$(tracectl profiles labels service_name 2>&1)
expect_eq "tracectl profiles labels service_name" "$out" "shop"
out=$(tracectl profiles top --type "$PT" --query '{service_name="shop"}' 2>&1)
check "tracectl profiles top: b flat 3 (50%)" grep -qE '^ *3 +50\.00% +50\.00% +3 +50\.00% +b$' <<<"$out"
out=$(tracectl profiles top --type "$PT" --span-id 0000000000002222 2>&1)
check "tracectl profiles top --span-id: only c" grep -qE '^ *2 +100\.00% +100\.00% +2 +100\.00% +c$' <<<"$out"
tracectl profiles export --type "$PT" -o "$E2E_TMP/export.pb.gz" >/dev/null 2>&1
check "tracectl profiles export writes a gzipped pprof" \
    bash -c "gzip -t '$E2E_TMP/export.pb.gz' && { ! command -v go >/dev/null || go tool pprof -top '$E2E_TMP/export.pb.gz' 2>&1 | grep -q ' main\$'; }"
tracectl profiles top --type nope >/dev/null 2>&1
expect_eq "tracectl profiles with a bad type exits 4 (server error 400)" "$?" 4

# ---- bad input: documented 4xx, daemon stays up ----
expect_eq "bad profile type -> 400" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"cpu",'"$RANGE"'}' bad1)" 400
check "bad profile type -> invalid_argument JSON" grep -q '"code":"invalid_argument"' "$E2E_TMP/bad1.body"
expect_eq "bad selector -> 400" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$PT'","labelSelector":"{a=",'"$RANGE"'}' bad2)" 400
expect_eq "span and trace selectors together -> 400" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$PT'","spanSelector":["0000000000001111"],"traceIdSelector":["00000000000000000000000000000001"],'"$RANGE"'}' bad3)" 400
expect_eq "max_nodes over 1048576 -> 400" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$PT'","maxNodes":"1048577",'"$RANGE"'}' bad4)" 400
expect_eq "not JSON -> 400" "$(jcall ProfileTypes '{' bad5)" 400
expect_eq "empty JSON body -> 400" "$(jcall ProfileTypes '' bad6)" 400
expect_eq "garbage proto -> 400" \
    "$(printf '\xff\xff' >"$E2E_TMP/bad7.req"; connect "$QUERY" ProfileTypes application/proto "$E2E_TMP/bad7.req" bad7)" 400
expect_eq "text/plain -> 415" "$(connect "$QUERY" ProfileTypes text/plain "$E2E_TMP/bad7.req" bad8)" 415
expect_eq "GET -> 405" "$(http bad9 "$QUERY/querier.v1.QuerierService/ProfileTypes")" 405
expect_eq "405 says Allow: POST" "$(hdr bad9 Allow)" POST
expect_eq "unknown method -> 501" "$(jcall NoSuchMethod '{}' bad10)" 501
expect_eq "SelectHeatmap -> 501 unimplemented" "$(jcall SelectHeatmap '{}' bad11)" 501
expect_eq "unknown Content-Encoding -> 501" \
    "$(http bad12 -X POST -H 'Content-Type: application/json' -H 'Content-Encoding: br' -d '{}' "$QUERY/querier.v1.QuerierService/ProfileTypes")" 501
printf '{}' | gzip -c >"$E2E_TMP/gz.req"
expect_eq "gzip request body -> 200" \
    "$(http gz -X POST -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data-binary "@$E2E_TMP/gz.req" "$QUERY/querier.v1.QuerierService/ProfileTypes")" 200
check "daemon still ready" curl -sf -o /dev/null --max-time 5 "$QUERY/ready"

check "traced stops cleanly" traced_stop

# ---- tenants (§9): the same data with --multitenancy ----
start_or_bail --multitenancy
types() {
    http "$1" -X POST -H 'Content-Type: application/json' ${2:+-H "X-Scope-OrgID: $2"} \
        -d "{$RANGE}" "$QUERY/querier.v1.QuerierService/ProfileTypes"
}
expect_eq "multitenancy: no X-Scope-OrgID -> 401" "$(types mt0)" 401
check "401 is Connect unauthenticated" grep -q '"code":"unauthenticated"' "$E2E_TMP/mt0.body"
expect_eq "another tenant sees nothing" "$(types mt1 other)" 200
check "another tenant: empty answer" body_is mt1 '{}'
expect_eq "the writing tenant sees its data" "$(types mt2 single-tenant)" 200
check "writing tenant: the cpu type" grep -q "\"ID\":\"$PT\"" "$E2E_TMP/mt2.body"
expect_eq "a|b reads the union" "$(types mt3 'other|single-tenant')" 200
check "union: the cpu type" grep -q "\"ID\":\"$PT\"" "$E2E_TMP/mt3.body"
check "traced stops cleanly (multitenancy)" traced_stop
finish
