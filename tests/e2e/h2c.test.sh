#!/usr/bin/env bash
# h2c: the query port speaks HTTP/1.1 and h2c gRPC on the same socket (API-CONTRACT §1, §3.9).
# curl HTTP/1.1 routes keep working next to a real @grpc/grpc-js streaming client (what Grafana's
# Tempo streaming uses), `curl --http2-prior-knowledge` gets a gRPC-style answer instead of a hang,
# a silent connection blocks nobody, and SIGTERM with an open h2c connection exits promptly.
# StreamingQuerier/Search streams the same traces as /api/search (one message with metrics, then OK);
# the tag methods are covered by tags.test.sh, the metrics methods by metrics.test.sh; an unknown
# method ends UNIMPLEMENTED (12).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init h2c

T=$E2E_TMP
start_or_bail
TARGET=127.0.0.1:$QUERY_PORT

# --- 1. HTTP/1.1 as before ---------------------------------------------------------------------------
code=$(http ready "$QUERY/ready")
expect_eq "/ready -> 200" "$code" 200
code=$(http echo -H 'X-Request-Id: h2c-e2e-1' "$QUERY/api/echo")
expect_eq "/api/echo -> 200" "$code" 200
check "/api/echo body is 'echo' (got: $(show_body echo))" body_is echo echo
expect_eq "X-Request-Id echoed" "$(hdr echo X-Request-Id)" h2c-e2e-1
code=$(http bi "$QUERY/api/status/buildinfo")
expect_eq "/api/status/buildinfo -> 200" "$code" 200
code=$(http nf "$QUERY/api/traces/0123456789abcdef0123456789abcdef")
expect_eq "/api/traces/{unknown id} -> 404" "$code" 404
check "HTTP/1.1 response (not HTTP/2)" grep -q '^HTTP/1.1 200' "$T/echo.hdr"

# --- 2. a real gRPC streaming client on the same port ---------------------------------------------
# grpc_stream.mjs exits 0 whenever a status arrived; codes are checked from its JSON.
stream() { # stream NAME ARGS...: one call to the query port, result in $T/NAME.json
    local name=$1
    shift
    node_run 30 grpc_stream.mjs --target "$TARGET" --timeout-ms 10000 --out "$T/$name.json" "$@" \
        >/dev/null 2>"$T/$name.err"
}
check "grpc-js Search call ends with a status (no local failure: $(head -c 200 "$T/search.err" 2>/dev/null))" \
    stream search --path /tempopb.StreamingQuerier/Search
expect_eq "StreamingQuerier/Search (empty request) -> OK (0), not a connection error ($(head -c 300 "$T/search.json"))" \
    "$(jsv "$T/search.json" 'j.code + ":" + j.connectError' 2>&1)" "0:false"
check "... quickly ($(jsv "$T/search.json" j.elapsedMs 2>&1) ms)" \
    test "$(jsv "$T/search.json" 'j.elapsedMs < 3000' 2>&1)" = true
check "... with an x-request-id in the response metadata" \
    test -n "$(jsv "$T/search.json" 'j.metadata["x-request-id"] || ""' 2>&1)"

# Grafana's request shape: SearchRequest{Query="{}" (8), Limit=1 (4), SpansPerSpanSet=3 (9)}, tenant header
stream search2 --path /tempopb.StreamingQuerier/Search --hex 42027b7d20014803 \
    --header 'X-Scope-OrgID: tenant-a' --header 'x-request-id: h2c-e2e-2'
expect_eq "Search with a request and metadata -> 0" "$(jsv "$T/search2.json" j.code 2>&1)" 0
expect_eq "... our x-request-id is echoed" "$(jsv "$T/search2.json" 'j.metadata["x-request-id"]' 2>&1)" h2c-e2e-2

# a trace ingested now: gRPC Search returns the same traces as /api/search
SVC=h2c-e2e-$RANDOM
TID=$(node_run 10 mkreq.mjs --spans 3 --out "$T/req.json" --service "$SVC")
code=$(http ingest -X POST -H 'Content-Type: application/json' --data-binary "@$T/req.json" \
    "http://127.0.0.1:$HTTP_PORT/v1/traces")
expect_eq "ingest a trace (OTLP/HTTP) -> 200" "$code" 200
Q="{resource.service.name=\"$SVC\"}"
QENC=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$Q")
searched() {
    http s_http "$QUERY/api/search?q=$QENC&limit=20&spss=3" >/dev/null &&
        grep -q "\"$TID\"" "$T/s_http.body"
}
check "/api/search finds trace $TID" wait_for 20 searched
stream s_grpc --path /tempopb.StreamingQuerier/Search --search-query "$Q" --decode-search
expect_eq "gRPC Search -> OK (0) ($(head -c 300 "$T/s_grpc.json"))" "$(jsv "$T/s_grpc.json" j.code 2>&1)" 0
expect_eq "... the same traceIDs as /api/search" \
    "$(jsv "$T/s_grpc.json" 'j.search.traceIDs.join(",")' 2>&1)" \
    "$(jsv "$T/s_http.body" 'j.traces.map((t) => t.traceID).join(",")' 2>&1)"
expect_eq "... which is the ingested trace" "$(jsv "$T/s_grpc.json" 'j.search.traceIDs.join(",")' 2>&1)" "$TID"
expect_eq "... in one message, metrics in every message, all jobs completed" \
    "$(jsv "$T/s_grpc.json" '[j.messages.length, j.search.metricsInEvery, j.search.totalJobs > 0 && j.search.completedJobs === j.search.totalJobs].join(":")' 2>&1)" \
    "1:true:true"
stream s_bad --path /tempopb.StreamingQuerier/Search --search-query '{ name = }' --decode-search
expect_eq "gRPC Search with bad TraceQL -> INVALID_ARGUMENT (3)" "$(jsv "$T/s_bad.json" j.code 2>&1)" 3
http s_bad_http "$QUERY/api/search?q=%7B%20name%20%3D%20%7D" >/dev/null
expect_eq "... with the /api/search message" "$(jsv "$T/s_bad.json" j.details 2>&1)" \
    "$(head -n 1 "$T/s_bad_http.body")"

stream m_unknown --path /tempopb.StreamingQuerier/NoSuchMethod
expect_eq "an unknown StreamingQuerier method -> UNIMPLEMENTED (12)" "$(jsv "$T/m_unknown.json" j.code 2>&1)" 12

# --- 3. HTTP/2 prior knowledge that is not gRPC gets a gRPC-style answer, not a hang ----------------
t0=$(now_ms)
out=$(curl -sS --max-time 10 --http2-prior-knowledge -o "$T/h2.body" -D "$T/h2.hdr" \
    -w '%{http_version} %{http_code}' "$QUERY/api/echo" 2>"$T/h2.err")
t1=$(now_ms)
expect_eq "curl --http2-prior-knowledge -> an HTTP/2 answer ($(head -c 200 "$T/h2.err"))" "$out" "2 200"
check "... carrying a grpc-status ($(tr -d '\r' <"$T/h2.hdr" | tr '\n' ' ' | head -c 300))" \
    grep -qi '^grpc-status:' "$T/h2.hdr"
check "... within 5 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 5000

# --- 4. a silent connection blocks nobody --------------------------------------------------------
exec 3<>"/dev/tcp/127.0.0.1/$QUERY_PORT"
exec 4<>"/dev/tcp/127.0.0.1/$QUERY_PORT"
printf 'PRI * HTTP/2.0\r\n' >&4 # part of the preface only
t0=$(now_ms)
code=$(http echo2 "$QUERY/api/echo")
stream search3 --path /tempopb.StreamingQuerier/Search
t1=$(now_ms)
expect_eq "HTTP/1.1 next to silent connections -> 200" "$code" 200
expect_eq "gRPC next to silent connections -> 0" "$(jsv "$T/search3.json" j.code 2>&1)" 0
check "... both within 5 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 5000
printf 'GET /api/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
reply=$(timeout 10 cat <&3 | tr -d '\r')
check "the silent connection is served once it speaks ($(head -n 1 <<<"$reply"))" \
    grep -q '^HTTP/1.1 200' <<<"$reply"
exec 3>&- 4>&-

# --- 5. keep-alive still works, and both protocols are counted -----------------------------------
curl -sv --max-time 10 "$QUERY/api/echo" "$QUERY/ready" -o /dev/null -o /dev/null 2>"$T/ka.err"
check "HTTP/1.1 keep-alive (curl re-used the connection)" grep -q 'Re-using existing connection' "$T/ka.err"
http metrics "$QUERY/metrics" >/dev/null
check "/metrics counts the gRPC calls" \
    grep -qE '^traced_query_requests_total\{route="grpc:other",status="grpc:12"\} [0-9]+' "$T/metrics.body"
check "/metrics counts the HTTP requests" \
    grep -qE '^traced_query_requests_total\{route="/api/echo",status="200"\} [0-9]+' "$T/metrics.body"

# --- 6. SIGTERM with an open (idle) h2c connection -----------------------------------------------
timeout -k 5 60 node "$TD_E2E_DIR/grpc_stream.mjs" --target "$TARGET" --hold-ms 30000 \
    --out "$T/hold.json" >/dev/null 2>&1 &
holder=$!
wait_for 20 test -s "$T/hold.json" || echo "  (holding client never got its status)"
expect_eq "holding client got its status" "$(jsv "$T/hold.json" j.code 2>&1)" 0
expect_eq "start-up and traffic logged no warnings or errors" \
    "$(grep -E '"level":"(warn|error)"' "$TRACED_LOG" | head -n 1 | head -c 300)" ""
t0=$(now_ms)
check "SIGTERM with an open h2c connection: exit 0" traced_stop
t1=$(now_ms)
check "... within 5 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 5000
kill -TERM "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
finish
