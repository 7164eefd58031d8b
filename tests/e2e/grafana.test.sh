#!/usr/bin/env bash
# grafana: the request set of Grafana's Tempo datasource (API-CONTRACT §3.11) against a corpus
# exported by the real OpenTelemetry JS SDK (otel_corpus.mjs: 36 traces, 3 services, errors,
# slow traces, typed attributes): Save & test with and without streaming, trace by ID (v2
# protobuf, v1 fallback), TraceQL and builder searches over HTTP and streaming gRPC, legacy
# tags, tag names and values for autocomplete, and TraceQL metrics over HTTP and gRPC. Every
# answer is checked against what grafana_check.mjs computes from the corpus description.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init grafana
start_or_bail

TAG=g$RANDOM$RANDOM
check "export the corpus with the OpenTelemetry JS SDK (OTLP/HTTP protobuf)" \
    quiet node_run 60 otel_corpus.mjs --endpoint "$OTLP_HTTP" --out "$E2E_TMP/corpus.json" --tag "$TAG"
NSPANS=$(jsv "$E2E_TMP/corpus.json" j.spans.length)
# Wait until the writer stored everything (traced_spans_written_total counts them).
check "all $NSPANS spans stored" wait_metric 30 traced_spans_written_total "$NSPANS"

node_run 120 grafana_check.mjs --base "$QUERY" --corpus "$E2E_TMP/corpus.json" ${GRAFANA_PARTS:+--only "$GRAFANA_PARTS"} \
    >"$E2E_TMP/check.out" 2>&1
while IFS= read -r line; do
    case "$line" in
    "ok   "*) pass "${line#ok   }" ;;
    "FAIL "*) fail "${line#FAIL }" ;;
    *) echo "    | $line" ;;
    esac
done <"$E2E_TMP/check.out"
check "grafana_check.mjs exits 0" grep -qx "all passed" "$E2E_TMP/check.out"

traced_stop
finish
