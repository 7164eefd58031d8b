#!/usr/bin/env bash
# tags: tag names and values (API-CONTRACT §3.6, §3.7, §3.9) against the real traced. A trace goes in
# through the OpenTelemetry JS SDK (otel_export.mjs: two services, typed span/resource/event/link
# attributes) plus one OTLP JSON span whose attribute key holds a '/'. Then every route is asked
# exactly what Grafana asks (§3.11), with and without q=, in JSON and protobuf; the StreamingQuerier
# tag methods over h2c (@grpc/grpc-js) must answer the same as HTTP; bad input gets the documented
# 4xx and the daemon stays up; `tracectl tags` reads the same answers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init tags
T=$E2E_TMP
start_or_bail
TARGET=127.0.0.1:$QUERY_PORT

TAG=tags$RANDOM$RANDOM
FE=frontend-$TAG
BE=backend-$TAG
check "export a trace with the OpenTelemetry JS SDK (OTLP/HTTP protobuf)" \
    quiet node_run 40 otel_export.mjs --protocol proto --endpoint "$OTLP_HTTP/v1/traces" \
    --out "$T/expected.json" --tag "$TAG"
NOW=$(date +%s%N)
cat >"$T/slash.json" <<EOF
{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"slash-$TAG"}}]},
 "scopeSpans":[{"spans":[{"traceId":"$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')","spanId":"1000000000000001",
  "name":"slashy","kind":1,"startTimeUnixNano":"$NOW","endTimeUnixNano":"$((NOW + 1000000))",
  "attributes":[{"key":"encoded/tagName","value":{"stringValue":"v-$TAG"}}]}]}]}]}
EOF
code=$(http slash -H 'Content-Type: application/json' --data-binary "@$T/slash.json" "$OTLP_HTTP/v1/traces")
expect_eq "OTLP/HTTP JSON span with a '/' in an attribute key -> 200" "$code" 200

# get NAME PATH [curl args]: GET on the query port; status code printed, body in $T/NAME.body
get() {
    local name=$1 path=$2
    shift 2
    http "$name" "$@" "$QUERY$path"
}
enc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1"; }

indexed() {
    get svc '/api/v2/search/tag/resource.service.name/values?limit=5000' >/dev/null &&
        grep -q "\"$BE\"" "$T/svc.body" && grep -q "\"slash-$TAG\"" "$T/svc.body"
}
check "the services show up in the tag values" wait_for 30 indexed

# --- 1. what Grafana sends -------------------------------------------------------------------------
code=$(get tags '/api/v2/search/tags?limit=5000')
expect_eq "GET /api/v2/search/tags?limit=5000 -> 200" "$code" 200
expect_eq "... Content-Type application/json" "$(hdr tags Content-Type)" application/json
scope() { jsv "$T/tags.body" "JSON.stringify((j.scopes.find((s) => s.name === '$1') || {tags: null}).tags)"; }
check "... resource scope: service.name, e2e.tag, host.name ($(scope resource | head -c 300))" \
    jsv "$T/tags.body" "['service.name', 'e2e.tag', 'host.name'].every((k) => j.scopes.find((s) => s.name === 'resource').tags.includes(k)) || process.exit(1)"
check "... span scope: http.request.method, e2e.int, e2e.doubles, encoded/tagName" \
    jsv "$T/tags.body" "['http.request.method', 'e2e.int', 'e2e.doubles', 'encoded/tagName'].every((k) => j.scopes.find((s) => s.name === 'span').tags.includes(k)) || process.exit(1)"
check "... intrinsic scope: name, status, kind, duration, rootServiceName" \
    jsv "$T/tags.body" "['name', 'status', 'kind', 'duration', 'rootServiceName'].every((k) => j.scopes.find((s) => s.name === 'intrinsic').tags.includes(k)) || process.exit(1)"
expect_eq "... tags sorted in every scope" \
    "$(jsv "$T/tags.body" 'j.scopes.filter((s) => s.name !== "intrinsic").every((s) => s.tags.every((t, i) => i === 0 || s.tags[i - 1] < t))')" true
expect_eq "... only documented keys, inspectedBytes a string" \
    "$(jsv "$T/tags.body" 'Object.keys(j).join(",") + ":" + typeof j.metrics.inspectedBytes')" "scopes,metrics:string"

code=$(get svc '/api/v2/search/tag/resource.service.name/values?limit=5000')
expect_eq "GET .../tag/resource.service.name/values?limit=5000 -> 200" "$code" 200
check "... both services as strings" jsv "$T/svc.body" \
    "['$FE', '$BE'].every((v) => j.tagValues.some((x) => x.type === 'string' && x.value === v)) || process.exit(1)"

code=$(get names '/api/v2/search/tag/name/values?limit=5000')
expect_eq "GET .../tag/name/values -> 200" "$code" 200
check "... every span name of the trace" jsv "$T/names.body" \
    "['GET /checkout', 'POST /api/order', 'validate order', 'publish order.created', 'process order.created'].every((v) => j.tagValues.some((x) => x.type === 'string' && x.value === v)) || process.exit(1)"

code=$(get status '/api/v2/search/tag/status/values?limit=5000')
expect_eq "GET .../tag/status/values -> 200" "$code" 200
expect_eq "... the keywords ok, error, unset" \
    "$(jsv "$T/status.body" 'j.tagValues.map((x) => x.type + ":" + x.value).join(",")')" \
    "keyword:ok,keyword:error,keyword:unset"

Q="{resource.service.name=\"$BE\"}"
code=$(get nameq "/api/v2/search/tag/name/values?limit=5000&q=$(enc "$Q")")
expect_eq "GET .../tag/name/values?q=$Q -> 200" "$code" 200
expect_eq "... only the backend span names" \
    "$(jsv "$T/nameq.body" 'j.tagValues.map((x) => x.value).sort().join("|")')" \
    "POST /api/order|process order.created|publish order.created|validate order"
code=$(get nameinc "/api/v2/search/tag/name/values?limit=5000&q=$(enc '{ resource.cluster = }')")
expect_eq "... an incomplete q is ignored (200)" "$code" 200
code=$(get tagsq "/api/v2/search/tags?limit=5000&scope=span&q=$(enc "{name=\"validate order\"}")")
expect_eq "GET /api/v2/search/tags?scope=span&q={name=\"validate order\"} -> 200" "$code" 200
expect_eq "... that span's keys only" "$(jsv "$T/tagsq.body" 'j.scopes.map((s) => s.name + "=" + s.tags.join(",")).join(";")')" \
    "span=e2e.items,e2e.total,e2e.valid"

# --- 2. typed values -------------------------------------------------------------------------------
Q="{resource.service.name=\"$FE\"}"
vals() { # vals NAME TAG: "type:value" list of TAG, narrowed to the frontend service
    get "$1" "/api/v2/search/tag/$2/values?q=$(enc "$Q")" >/dev/null
    jsv "$T/$1.body" 'j.tagValues.map((x) => x.type + ":" + x.value).join(",")'
}
expect_eq "span.e2e.int: ints in decimal" "$(vals int span.e2e.int)" "int:42"
expect_eq "span.e2e.double: floats as Go formats them" "$(vals dbl span.e2e.double)" "float:0.25,float:3.141592653589793"
expect_eq "span.e2e.double.small" "$(vals dbls span.e2e.double.small)" "float:1.5e-07"
expect_eq ".e2e.bool.true: bools" "$(vals bool .e2e.bool.true)" "bool:true"
expect_eq "span.e2e.ints: array elements, numerically sorted" "$(vals ints span.e2e.ints)" "int:-2,int:0,int:1,int:3000000000"
expect_eq "resource.e2e.role" "$(vals role resource.e2e.role)" "string:frontend"
expect_eq "event.e2e.event.str" "$(vals ev event.e2e.event.str)" "string:x"
code=$(get encoded "/api/v2/search/tag/span.encoded%2FtagName/values")
expect_eq "span.encoded%2FtagName (decoded once) -> 200" "$code" 200
expect_eq "... its value" "$(jsv "$T/encoded.body" 'j.tagValues.map((x) => x.value).join(",")')" "v-$TAG"
code=$(get encoded2 "/api/v2/search/tag/span.encoded/tagName/values")
expect_eq "span.encoded/tagName (raw '/', tag up to the last /values) -> same answer" \
    "$(jsv "$T/encoded2.body" 'j.tagValues.map((x) => x.value).join(",")')" "v-$TAG"

# --- 3. v1 routes, protobuf ------------------------------------------------------------------------
code=$(get v1tags '/api/search/tags')
expect_eq "GET /api/search/tags -> 200" "$code" 200
check "... tagNames holds span and resource keys" jsv "$T/v1tags.body" \
    "['service.name', 'http.request.method'].every((k) => j.tagNames.includes(k)) || process.exit(1)"
code=$(get v1vals '/api/search/tag/service.name/values')
expect_eq "GET /api/search/tag/service.name/values -> 200" "$code" 200
check "... plain strings" jsv "$T/v1vals.body" "j.tagValues.includes('$FE') && j.tagValues.includes('$BE') || process.exit(1)"
code=$(get v1st '/api/search/tag/status.code/values')
expect_eq "v1 virtual tag status.code" "$(jsv "$T/v1st.body" 'j.tagValues.join(",")')" "unset,ok,error"
code=$(get pb '/api/v2/search/tags?limit=5000' -H 'Accept: application/protobuf')
expect_eq "Accept: application/protobuf -> 200 application/protobuf" "$code $(hdr pb Content-Type)" "200 application/protobuf"
code=$(get xpb '/api/v2/search/tags?limit=5000' -H 'Accept: application/x-protobuf')
expect_eq "Accept: application/x-protobuf -> JSON (Tempo's substring rule)" "$(hdr xpb Content-Type)" application/json

# --- 4. gRPC: the same answers ---------------------------------------------------------------------
grpc_call() { # grpc_call NAME ARGS...
    local name=$1
    shift
    node_run 30 tags_grpc.mjs --target "$TARGET" "$@" >"$T/$name.json" 2>"$T/$name.err"
}
grpc_call g_tags --method SearchTagsV2 --limit 5000
expect_eq "gRPC SearchTagsV2 -> OK, one message with metrics" \
    "$(jsv "$T/g_tags.json" '[j.code, j.messages, j.metricsInEvery].join(":")' 2>&1)" "0:1:true"
get tags '/api/v2/search/tags?limit=5000' >/dev/null
expect_eq "... the same scopes and tags as HTTP" "$(jsv "$T/g_tags.json" 'JSON.stringify(j.response.scopes)')" \
    "$(jsv "$T/tags.body" 'JSON.stringify(j.scopes)')"
grpc_call g_svc --method SearchTagValuesV2 --tag resource.service.name --limit 5000
get svc '/api/v2/search/tag/resource.service.name/values?limit=5000' >/dev/null
expect_eq "gRPC SearchTagValuesV2 resource.service.name -> OK, same values as HTTP" \
    "$(jsv "$T/g_svc.json" 'j.code + ":" + JSON.stringify(j.response.tagValues)')" \
    "0:$(jsv "$T/svc.body" 'JSON.stringify(j.tagValues)')"
Q="{resource.service.name=\"$BE\"}"
grpc_call g_nameq --method SearchTagValuesV2 --tag name --query "$Q" --limit 5000
expect_eq "gRPC SearchTagValuesV2 name with a query -> same as HTTP" \
    "$(jsv "$T/g_nameq.json" 'JSON.stringify(j.response.tagValues)')" "$(jsv "$T/nameq.body" 'JSON.stringify(j.tagValues)')"
grpc_call g_v1 --method SearchTags
expect_eq "gRPC SearchTags -> OK, same as /api/search/tags" \
    "$(jsv "$T/g_v1.json" 'j.code + ":" + JSON.stringify(j.response.tagNames)')" \
    "0:$(jsv "$T/v1tags.body" 'JSON.stringify(j.tagNames)')"
grpc_call g_v1v --method SearchTagValues --tag service.name
expect_eq "gRPC SearchTagValues -> OK, same as /api/search/tag/service.name/values" \
    "$(jsv "$T/g_v1v.json" 'j.code + ":" + JSON.stringify(j.response.tagValues)')" \
    "0:$(jsv "$T/v1vals.body" 'JSON.stringify(j.tagValues)')"
grpc_call g_bad --method SearchTagValuesV2 --tag 'foo bar'
expect_eq "gRPC SearchTagValuesV2 with a bad tag -> INVALID_ARGUMENT (3)" "$(jsv "$T/g_bad.json" j.code)" 3
grpc_call g_badscope --method SearchTagsV2 --scope nope
expect_eq "gRPC SearchTagsV2 with a bad scope -> 3, Tempo's message" \
    "$(jsv "$T/g_badscope.json" 'j.code + ":" + j.details')" "3:invalid scope: nope"

# --- 5. bad input ----------------------------------------------------------------------------------
code=$(get bad1 '/api/v2/search/tags?scope=bogus')
expect_eq "bad scope -> 400" "$code" 400
check "... 'invalid scope: bogus' as text/plain" body_is bad1 "invalid scope: bogus"
code=$(get bad2 '/api/v2/search/tag/foo%20bar/values')
expect_eq "bad tag name -> 400" "$code" 400
check "... Tempo's message ($(show_body bad2))" body_is bad2 \
    "please provide a valid tagName: failed to parse identifier foo bar: parse error at line 1, col 2: unknown identifier: foo"
code=$(get bad3 '/api/v2/search/tag/service.name/values')
expect_eq "bare key on v2 -> 400" "$code" 400
code=$(get bad4 '/api/v2/search/tags?limit=99999999999999')
expect_eq "huge limit -> 400" "$code" 400
check "... 'invalid limit: ...' ($(show_body bad4))" grep -q '^invalid limit: ' "$T/bad4.body"
code=$(get bad5 '/api/v2/search/tags?start=abc')
expect_eq "start not a number -> 400" "$code" 400
code=$(get bad6 '/api/v2/search/tags?start=4294967296')
expect_eq "start beyond int32 -> 400" "$code" 400
code=$(get endbefore "/api/v2/search/tag/resource.service.name/values?start=$(($(date +%s) + 60))&end=$(($(date +%s) - 3600))")
expect_eq "end before start -> 200 with no values (tag endpoints do not check the order)" \
    "$code $(jsv "$T/endbefore.body" 'j.tagValues.length')" "200 0"
code=$(get big '/api/v2/search/tag/name/values?limit=4294967295')
expect_eq "largest limit -> 200" "$code" 200
code=$(get ready /ready)
expect_eq "the daemon is still up" "$code" 200

# --- 6. tracectl tags ------------------------------------------------------------------------------
tracectl tags --scope resource >"$T/ctl1" 2>"$T/ctl1.err"
expect_eq "tracectl tags --scope resource exits 0" "$?" 0
check "... a 'resource (N):' heading" grep -qE '^resource \([0-9]+\):$' "$T/ctl1"
check "... lists service.name" grep -qx '  service.name' "$T/ctl1"
tracectl tags >"$T/ctl2" 2>&1
check "tracectl tags groups by scope (resource, span, intrinsic)" \
    bash -c "grep -q '^resource (' '$T/ctl2' && grep -q '^span (' '$T/ctl2' && grep -q '^intrinsic (' '$T/ctl2'"
tracectl tags resource.service.name --since 1h >"$T/ctl3" 2>&1
expect_eq "tracectl tags resource.service.name exits 0" "$?" 0
check "... lists $BE as a string" grep -qE "^string +$BE\$" "$T/ctl3"
tracectl tags service.name >"$T/ctl4" 2>&1
expect_eq "tracectl tags service.name (a bare key) exits 0" "$?" 0
check "... same services" grep -qE "^string +$FE\$" "$T/ctl4"
tracectl tags service.name --scope span >/dev/null 2>&1
expect_eq "tracectl tags service.name --scope span: nothing there, exits 1" "$?" 1
tracectl tags span.e2e.int --json >"$T/ctl5" 2>&1
expect_eq "tracectl tags span.e2e.int --json exits 0" "$?" 0
check "... the server's JSON" jsv "$T/ctl5" "j.tagValues.some((x) => x.type === 'int' && x.value === '42') || process.exit(1)"
tracectl tags 'span.' >"$T/ctl6" 2>"$T/ctl6.err"
expect_eq "tracectl tags with a name the server rejects exits 4" "$?" 4
check "... the server's message on stderr" grep -q 'please provide a valid tagName' "$T/ctl6.err"
tracectl tags --scope bogus >/dev/null 2>&1
expect_eq "tracectl tags --scope bogus exits 2" "$?" 2

expect_eq "no warnings or errors logged" \
    "$(grep -E '"level":"(warn|error)"' "$TRACED_LOG" | head -n 1 | head -c 300)" ""
check "SIGTERM: exit 0" traced_stop

# --- 7. tenants: a|b merges and de-duplicates ------------------------------------------------------
start_or_bail --multitenancy
span_for() { # span_for TENANT SERVICE: one OTLP JSON span of SERVICE sent as TENANT
    local now
    now=$(date +%s%N)
    http "mt_$1_$2" -H 'Content-Type: application/json' -H "X-Scope-OrgID: $1" --data-binary \
        '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"'"$2"'"}}]},
 "scopeSpans":[{"spans":[{"traceId":"'"$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"'","spanId":"1000000000000001",
 "name":"op-'"$1"'","kind":2,"startTimeUnixNano":"'"$now"'","endTimeUnixNano":"'"$((now + 1000))"'"}]}]}]}' \
        "$OTLP_HTTP/v1/traces"
}
expect_eq "tenant-a and tenant-b spans accepted" \
    "$(span_for tenant-a "shared-$TAG")$(span_for tenant-a "a-$TAG")$(span_for tenant-b "shared-$TAG")$(span_for tenant-b "b-$TAG")" \
    200200200200
both() {
    get mt '/api/v2/search/tag/resource.service.name/values' -H 'X-Scope-OrgID: tenant-b|tenant-a' >/dev/null &&
        [ "$(jsv "$T/mt.body" 'j.tagValues.map((x) => x.value).join(",")')" = "a-$TAG,b-$TAG,shared-$TAG" ]
}
check "X-Scope-OrgID: tenant-b|tenant-a: both tenants' services, once each, sorted" \
    wait_for 20 both
get mta '/api/v2/search/tag/resource.service.name/values' -H 'X-Scope-OrgID: tenant-a' >/dev/null
expect_eq "tenant-a alone: its own services" "$(jsv "$T/mta.body" 'j.tagValues.map((x) => x.value).join(",")')" \
    "a-$TAG,shared-$TAG"
code=$(get mtnone '/api/v2/search/tags')
expect_eq "no X-Scope-OrgID with multitenancy -> 401" "$code" 401
node_run 30 tags_grpc.mjs --target "127.0.0.1:$QUERY_PORT" --method SearchTagValuesV2 \
    --tag resource.service.name --header 'x-scope-orgid: tenant-a|tenant-b' >"$T/g_mt.json" 2>&1
expect_eq "gRPC with x-scope-orgid tenant-a|tenant-b: the same merged values" \
    "$(jsv "$T/g_mt.json" 'j.code + ":" + j.response.tagValues.map((x) => x.value).join(",")')" \
    "0:a-$TAG,b-$TAG,shared-$TAG"
node_run 30 tags_grpc.mjs --target "127.0.0.1:$QUERY_PORT" --method SearchTagsV2 >"$T/g_mtnone.json" 2>&1
expect_eq "gRPC without x-scope-orgid -> UNAUTHENTICATED (16)" "$(jsv "$T/g_mtnone.json" j.code)" 16
check "SIGTERM: exit 0" traced_stop
finish
