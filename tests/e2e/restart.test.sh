#!/usr/bin/env bash
# restart: traces written over all three protocols survive a clean restart (SIGTERM, exit 0)
# byte for byte, accepted-but-unwritten spans are drained on SIGTERM, and spans that were
# written (traced_spans_written_total == accepted) survive kill -9.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init restart

RUN=$RANDOM$RANDOM
TRACES=()

accepted() {
    local g h
    g=$(metric 'traced_spans_accepted_total{protocol="grpc"}')
    h=$(metric 'traced_spans_accepted_total{protocol="http"}')
    awk -v a="$g" -v b="$h" 'BEGIN { print a + b }'
}
written_is() { metric_eq traced_spans_written_total "$1"; }

# export LABEL PROTOCOL [flags]: one 6-span trace; remembers the expected file.
export_one() {
    local label=$1 proto=$2 ep
    shift 2
    if [ "$proto" = grpc ]; then ep="http://$OTLP_GRPC"; else ep="$OTLP_HTTP/v1/traces"; fi
    if quiet node_run 40 otel_export.mjs --protocol "$proto" --endpoint "$ep" --out "$E2E_TMP/$label.json" \
        --tag "$label-$RUN" "$@"; then
        pass "export $label"
        TRACES+=("$label")
    else
        fail "export $label"
    fi
}

read_back_all() {
    local when=$1 t
    for t in "${TRACES[@]}"; do
        check "$when: $t reads back" quiet node_run 40 check_trace.mjs --base "$QUERY" --expected "$E2E_TMP/$t.json" \
            --v1-proto --timeout-ms 10000
    done
}

# save_proto SUFFIX: v1 protobuf bytes of every trace, for a byte-for-byte comparison.
save_proto() {
    local t tid
    for t in "${TRACES[@]}"; do
        tid=$(jsv "$E2E_TMP/$t.json" j.traceId)
        curl -sf --max-time 10 -H 'Accept: application/protobuf' "$QUERY/api/traces/$tid" >"$E2E_TMP/$t.$1.pb" ||
            echo "could not fetch $t ($tid) as protobuf"
    done
}

wait_written() {
    local want=$1
    if wait_for 30 written_is "$want"; then
        pass "traced_spans_written_total reaches $want (== accepted)"
    else
        fail "traced_spans_written_total reaches $want: written=$(metric traced_spans_written_total) accepted=$(accepted)"
    fi
}

# --- 1. clean restart ----------------------------------------------------------------------
start_or_bail
export_one r-grpc grpc
export_one r-proto-gzip proto --gzip
export_one r-json json
expect_eq "spans accepted over grpc + http" "$(accepted)" 18
wait_written 18
read_back_all "before restart"
save_proto before

check "SIGTERM: traced exits 0" traced_stop
start_or_bail
read_back_all "after SIGTERM + restart"
save_proto after
for t in "${TRACES[@]}"; do
    check "after restart: $t v1 protobuf is byte-identical" cmp -s "$E2E_TMP/$t.before.pb" "$E2E_TMP/$t.after.pb"
done

# --- 2. SIGINT right after the export answered: accepted spans are drained to disk ------------
export_one r-drain-json json
export_one r-drain-grpc grpc --processor simple
check "SIGINT right after export: traced exits 0" traced_stop INT
start_or_bail
read_back_all "after drain-on-SIGINT restart"

# --- 3. kill -9 after the spans were written ------------------------------------------------
export_one k-grpc-gzip grpc --gzip
export_one k-proto proto
export_one k-json-gzip json --gzip
expect_eq "spans accepted since the last restart" "$(accepted)" 18
wait_written 18
traced_kill9
start_or_bail
read_back_all "after kill -9 + restart"
save_proto final
for t in r-grpc r-proto-gzip r-json; do
    check "after kill -9: $t v1 protobuf still byte-identical" cmp -s "$E2E_TMP/$t.before.pb" "$E2E_TMP/$t.final.pb"
done

check "final SIGTERM: traced exits 0" traced_stop
finish
