#!/usr/bin/env bash
# otel_clients: the real OpenTelemetry JS exporters (gRPC, HTTP protobuf, HTTP JSON, each
# plain and gzip) write a 6-span, 2-service trace; every field reads back through Tempo v1/v2
# JSON and protobuf (check_trace.mjs), and through tracectl. Then one request per span
# (SimpleSpanProcessor) and multi-tenancy (X-Scope-OrgID).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init otel_clients

SPAN_NAMES=("GET /checkout" "POST /api/order" "validate order" "publish order.created" "process order.created")
RUN=$RANDOM$RANDOM

endpoint_for() {
    if [ "$1" = grpc ]; then echo "http://$OTLP_GRPC"; else echo "$OTLP_HTTP/v1/traces"; fi
}

# export_and_check LABEL PROTOCOL [otel_export flags...]: export one trace, read it back.
export_and_check() {
    local label=$1 proto=$2
    shift 2
    local tag="$label-$RUN" out
    out=$E2E_TMP/$label.json
    check "export $label" quiet node_run 40 otel_export.mjs --protocol "$proto" --endpoint "$(endpoint_for "$proto")" \
        --out "$out" --tag "$tag" "$@"
    check "read back $label (v1/v2 JSON, v2/v1 protobuf)" quiet node_run 40 check_trace.mjs --base "$QUERY" \
        --expected "$out" --v1-proto --timeout-ms 15000
}

start_or_bail

# --- 1. six client variants ----------------------------------------------------------------
export_and_check grpc grpc
export_and_check grpc-gzip grpc --gzip
export_and_check proto proto
export_and_check proto-gzip proto --gzip
export_and_check json json
export_and_check json-gzip json --gzip

# --- 2. tracectl ---------------------------------------------------------------------------
if [ -f "$E2E_TMP/grpc.json" ]; then
    TID=$(jsv "$E2E_TMP/grpc.json" j.traceId)
    TAG=grpc-$RUN
    out=$(tracectl find --trace-id "$TID" 2>"$E2E_TMP/tracectl.err")
    expect_eq "tracectl find exits 0" "$?" 0
    missing=
    for want in "frontend-$TAG" "backend-$TAG" "${SPAN_NAMES[@]}"; do
        grep -qF -- "$want" <<<"$out" || missing="$missing [$want]"
    done
    expect_eq "tracectl find mentions both services and every span name" "${missing:-none}" none

    tracectl find --trace-id "$TID" --json >"$E2E_TMP/tracectl.json" 2>>"$E2E_TMP/tracectl.err"
    expect_eq "tracectl find --json exits 0" "$?" 0
    n=$(jsv "$E2E_TMP/tracectl.json" \
        '(j.trace.resourceSpans || []).reduce((n, rs) => n + (rs.scopeSpans || []).reduce((m, ss) => m + (ss.spans || []).length, 0), 0)' 2>&1)
    expect_eq "tracectl find --json: trace.resourceSpans has 6 spans" "$n" 6

    tracectl find --trace-id 0123456789abcdef0123456789abcdef >"$E2E_TMP/tracectl.unknown" 2>&1
    expect_eq "tracectl find on an unknown trace id exits 1" "$?" 1
    tracectl find --trace-id xyz >/dev/null 2>&1
    expect_eq "tracectl find with a non-hex id exits 2 (usage)" "$?" 2
    timeout -k 2 30 "$TRACECTL_BIN" --server http://127.0.0.1:1 --timeout 5 find --trace-id "$TID" >/dev/null 2>&1
    expect_eq "tracectl find against a closed port exits 3 (unreachable)" "$?" 3
    # uppercase / short ids are normalised like Tempo does
    tracectl find --trace-id "${TID^^}" >/dev/null 2>&1
    expect_eq "tracectl find with an uppercase trace id exits 0" "$?" 0
else
    fail "tracectl checks skipped: the grpc export wrote no expected file"
fi

# --- 2b. multitenancy off: X-Scope-OrgID is ignored on writes and reads ---------------------------------
TIDS=$(node_run 10 mkreq.mjs --spans 1 --out "$E2E_TMP/st.json" --service single-tenant)
code=$(http stpost -H 'X-Scope-OrgID: someone' -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/st.json" "$OTLP_HTTP/v1/traces")
expect_eq "single-tenant: write with X-Scope-OrgID: someone -> 200" "$code" 200
wait_for 10 curl -sf --max-time 5 -o /dev/null "$QUERY/api/traces/$TIDS"
for h in "X-Scope-OrgID: someone-else" "X-Scope-OrgID: a|b" "Accept: */*"; do
    code=$(http stget -H "$h" "$QUERY/api/traces/$TIDS")
    expect_eq "single-tenant: read with '$h' finds it (header ignored)" "$code" 200
done

# --- 3. one request per span ---------------------------------------------------------------
export_and_check simple-json json --processor simple
export_and_check simple-grpc grpc --processor simple

# --- 4. tenants ----------------------------------------------------------------------------
check "stop single-tenant daemon (exit 0)" traced_stop
DATA_DIR=$E2E_TMP/data-mt
start_or_bail --multitenancy

A='X-Scope-OrgID: tenant-a'
B='X-Scope-OrgID: tenant-b'
check "export grpc as tenant-a" quiet node_run 40 otel_export.mjs --protocol grpc --endpoint "http://$OTLP_GRPC" \
    --out "$E2E_TMP/mt-grpc.json" --tag "mt-grpc-$RUN" --header "$A"
check "export json as tenant-a" quiet node_run 40 otel_export.mjs --protocol json --endpoint "$OTLP_HTTP/v1/traces" \
    --out "$E2E_TMP/mt-json.json" --tag "mt-json-$RUN" --header "$A"
for v in grpc json; do
    [ -f "$E2E_TMP/mt-$v.json" ] || { fail "tenant checks for $v skipped (no export)"; continue; }
    check "tenant-a reads its $v trace" quiet node_run 40 check_trace.mjs --base "$QUERY" \
        --expected "$E2E_TMP/mt-$v.json" --v1-proto --timeout-ms 15000 --header "$A"
    TID=$(jsv "$E2E_TMP/mt-$v.json" j.traceId)
    code=$(http mtb1 -H "$B" "$QUERY/api/traces/$TID")
    expect_eq "tenant-b: v1 trace by id of tenant-a's $v trace is 404" "$code" 404
    code=$(http mtb2 -H "$B" -H 'Accept: application/json' "$QUERY/api/v2/traces/$TID")
    expect_eq "tenant-b: v2 trace by id answers 200" "$code" 200
    expect_eq "tenant-b: v2 trace is empty" "$(jsv "$E2E_TMP/mtb2.body" \
        '(j.trace && j.trace.resourceSpans || []).length' 2>&1)" 0
    code=$(http mtn1 "$QUERY/api/traces/$TID")
    expect_eq "no X-Scope-OrgID: v1 trace by id is 401" "$code" 401
    code=$(http mtn2 "$QUERY/api/v2/traces/$TID")
    expect_eq "no X-Scope-OrgID: v2 trace by id is 401" "$code" 401
    code=$(http mtab -H 'X-Scope-OrgID: tenant-b|tenant-a' -H 'Accept: application/json' "$QUERY/api/v2/traces/$TID")
    expect_eq "cross-tenant read 'tenant-b|tenant-a' finds the $v trace" \
        "$code/$(jsv "$E2E_TMP/mtab.body" '(j.trace && j.trace.resourceSpans || []).length > 0' 2>&1)" 200/true
done
if [ -f "$E2E_TMP/mt-json.json" ]; then
    TID=$(jsv "$E2E_TMP/mt-json.json" j.traceId)
    out=$(tracectl --org-id tenant-a find --trace-id "$TID" 2>&1)
    expect_eq "tracectl --org-id tenant-a finds the trace" "$?" 0
    tracectl --org-id tenant-b find --trace-id "$TID" >/dev/null 2>&1
    expect_eq "tracectl --org-id tenant-b: not found (exit 1)" "$?" 1
fi
# ingest without a tenant is refused
code=$(http mtpost -H 'Content-Type: application/json' --data-binary '{"resourceSpans":[]}' "$OTLP_HTTP/v1/traces")
expect_eq "OTLP/HTTP without X-Scope-OrgID under --multitenancy is 401" "$code" 401
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --empty --out "$E2E_TMP/mtgrpc.json" >/dev/null
expect_eq "OTLP/gRPC without x-scope-orgid under --multitenancy is UNAUTHENTICATED (16)" \
    "$(jsv "$E2E_TMP/mtgrpc.json" j.code 2>&1)" 16

# tenant ids are validated (§9): one tenant per write, allowed characters, not . or ..
code=$(http mtpipe -H 'X-Scope-OrgID: tenant-a|tenant-b' -H 'Content-Type: application/json' --data-binary '{}' "$OTLP_HTTP/v1/traces")
expect_eq "OTLP/HTTP write as 'tenant-a|tenant-b' -> 400" "$code" 400
code=$(http mtslash -H 'X-Scope-OrgID: bad/tenant' -H 'Content-Type: application/json' --data-binary '{}' "$OTLP_HTTP/v1/traces")
expect_eq "OTLP/HTTP write as 'bad/tenant' -> 400" "$code" 400
code=$(http mtdots -H 'X-Scope-OrgID: ..' "$QUERY/api/traces/0123456789abcdef0123456789abcdef")
expect_eq "query as tenant '..' -> 400" "$code" 400
node_run 20 grpc_raw.mjs --target "$OTLP_GRPC" --empty --header 'x-scope-orgid: tenant-a|tenant-b' --out "$E2E_TMP/mtg2.json" >/dev/null
expect_eq "OTLP/gRPC write as 'tenant-a|tenant-b' -> INVALID_ARGUMENT (3)" "$(jsv "$E2E_TMP/mtg2.json" j.code 2>&1)" 3
check "query-port probes need no tenant: /ready /api/echo /api/status/buildinfo /metrics" eval \
    '( for p in ready api/echo api/status/buildinfo metrics; do curl -sf --max-time 5 -o /dev/null "$QUERY/$p" || exit 1; done )'

check "stop multi-tenant daemon (exit 0)" traced_stop
finish
