#!/usr/bin/env bash
# ops: operational endpoints (/health, /ready, /api/echo, buildinfo, /metrics), request ids,
# the command line (--help, bad flags, port and data-dir conflicts) and HTTP/1.1 pipelining.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init ops

T=$E2E_TMP
start_or_bail

STARTLOG=$TRACED_LOG
expect_eq "start-up logs no warnings or errors" \
    "$(grep -E '"level":"(warn|error)"' "$STARTLOG" | head -n 1 | head -c 300)" ""

# --- 1. probes ------------------------------------------------------------------------------------
code=$(http health "$QUERY/health")
expect_eq "/health -> 200" "$code" 200
expect_eq "/health JSON status is healthy (body $(show_body health))" "$(jsv "$T/health.body" j.status 2>&1)" healthy
check "/health JSON has a version ($(jsv "$T/health.body" j.version 2>&1))" \
    test "$(jsv "$T/health.body" 'typeof j.version === "string" && j.version.length > 0' 2>&1)" = true
code=$(http ready "$QUERY/ready")
expect_eq "/ready -> 200" "$code" 200
check "/ready body is 'ready' (got: $(show_body ready))" body_is ready ready
code=$(http echo "$QUERY/api/echo")
expect_eq "/api/echo -> 200" "$code" 200
check "/api/echo body is 'echo' (got: $(show_body echo))" body_is echo echo
check "/api/echo is text/plain ($(hdr echo Content-Type))" grep -qi '^text/plain' <<<"$(hdr echo Content-Type)"

code=$(http bi "$QUERY/api/status/buildinfo")
expect_eq "/api/status/buildinfo -> 200" "$code" 200
check "/api/status/buildinfo is application/json ($(hdr bi Content-Type))" grep -qi '^application/json' <<<"$(hdr bi Content-Type)"
expect_eq "buildinfo keys are exactly version/revision/branch/buildUser/buildDate/goVersion" \
    "$(jsv "$T/bi.body" 'Object.keys(j).sort().join(",")' 2>&1)" "branch,buildDate,buildUser,goVersion,revision,version"
expect_eq "buildinfo values are all strings" \
    "$(jsv "$T/bi.body" 'Object.values(j).every((v) => typeof v === "string")' 2>&1)" true
expect_eq "buildinfo version is semver >= 2.7.0 ($(jsv "$T/bi.body" j.version 2>&1))" \
    "$(jsv "$T/bi.body" '((m) => !!m && (Number(m[1]) > 2 || (Number(m[1]) === 2 && Number(m[2]) >= 7)))(/^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(j.version))' 2>&1)" true

# --- 2. metrics -------------------------------------------------------------------------------------
node_run 10 mkreq.mjs --spans 2 --out "$T/m.json" --service ops >/dev/null
code=$(http mpost -H 'Content-Type: application/json' --data-binary "@$T/m.json" "$OTLP_HTTP/v1/traces")
expect_eq "traffic: one OTLP/HTTP request -> 200" "$code" 200
http mq "$QUERY/api/traces/0123456789abcdef0123456789abcdef" >/dev/null
wait_metric 10 traced_spans_written_total 2 || echo "  (spans not written within 10 s)"
code=$(http metrics "$QUERY/metrics")
expect_eq "/metrics -> 200" "$code" 200
check "/metrics Content-Type is Prometheus text ($(hdr metrics Content-Type))" grep -qi '^text/plain' <<<"$(hdr metrics Content-Type)"
badlines=$(grep -vE '^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*,?)?\})? [-+]?([0-9.eE+-]+|NaN|Inf|\+Inf|-Inf)( -?[0-9]+)?$' \
    "$T/metrics.body" | head -n 5)
expect_eq "/metrics: every line is # HELP, # TYPE or name{labels} value" "${badlines:-none}" none
for m in traced_ingest_requests_total traced_queue_capacity_spans traced_write_batch_seconds_bucket \
    traced_query_requests_total traced_spans_accepted_total traced_spans_written_total; do
    check "/metrics has $m" grep -qE "^$m(\{| )" "$T/metrics.body"
done
check "/metrics: histogram has an le=\"+Inf\" bucket" grep -qE '^traced_write_batch_seconds_bucket\{.*le="\+Inf"' "$T/metrics.body"
check "/metrics: every family has one # TYPE line" test \
    "$(grep -c '^# TYPE ' "$T/metrics.body")" = "$(grep '^# TYPE ' "$T/metrics.body" | awk '{print $3}' | sort -u | wc -l)"
expect_eq 'traced_spans_accepted_total{protocol="http"} counts the request' \
    "$(metric 'traced_spans_accepted_total{protocol="http"}')" 2

# --- 3. request ids --------------------------------------------------------------------------------
http rid1 -H 'X-Request-Id: e2e-rid-12345' "$QUERY/api/echo" >/dev/null
expect_eq "query port echoes X-Request-Id" "$(hdr rid1 X-Request-Id)" e2e-rid-12345
http rid2 "$QUERY/api/echo" >/dev/null
check "query port generates an X-Request-Id when none was sent ($(hdr rid2 X-Request-Id))" test -n "$(hdr rid2 X-Request-Id)"
http rid3 "$QUERY/api/echo" >/dev/null
check "generated X-Request-Ids differ" test "$(hdr rid2 X-Request-Id)" != "$(hdr rid3 X-Request-Id)"
http rid4 -H 'X-Request-Id: e2e-rid-otlp' -H 'Content-Type: application/json' --data-binary '{}' "$OTLP_HTTP/v1/traces" >/dev/null
expect_eq "OTLP/HTTP port echoes X-Request-Id" "$(hdr rid4 X-Request-Id)" e2e-rid-otlp
http rid5 -H 'Content-Type: application/json' --data-binary '{}' "$OTLP_HTTP/v1/traces" >/dev/null
check "OTLP/HTTP port generates an X-Request-Id ($(hdr rid5 X-Request-Id))" test -n "$(hdr rid5 X-Request-Id)"

# --- 4. command line -----------------------------------------------------------------------------
timeout 10 "$TRACED_BIN" --help >"$T/help.out" 2>&1
expect_eq "traced --help exits 0" "$?" 0
missing=
for opt in --data-dir --grpc-listen --http-listen --query-listen --max-recv-size --queue-max-spans \
    --queue-max-bytes --retry-after --multitenancy --log-level; do
    grep -qF -- "$opt" "$T/help.out" || missing="$missing $opt"
done
expect_eq "traced --help lists the options" "${missing:-none}" none
timeout 10 "$TRACED_BIN" --bogus >"$T/bogus.out" 2>&1
expect_eq "traced --bogus exits 2" "$?" 2
check "traced --bogus names the option ($(head -c 200 "$T/bogus.out"))" grep -q -- bogus "$T/bogus.out"
timeout 10 "$TRACED_BIN" --max-recv-size lots --data-dir "$T/never" >"$T/badval.out" 2>&1
expect_eq "traced --max-recv-size lots exits 2" "$?" 2

# second_traced NAME FLAGS...: run another traced that must fail fast; prints its exit code.
second_traced() {
    local name=$1
    shift
    timeout -k 2 20 "$TRACED_BIN" "$@" >"$T/$name.log" 2>&1
    echo $?
}
rc=$(second_traced dupgrpc --data-dir "$T/data2" --grpc-listen "127.0.0.1:$GRPC_PORT" \
    --http-listen 127.0.0.1:0 --query-listen 127.0.0.1:0)
expect_eq "second traced on the same gRPC port exits 1" "$rc" 1
check "... and logs an error naming the port ($(grep '"level":"error"' "$T/dupgrpc.log" | head -n 1 | head -c 200))" \
    grep -qiE "\"level\":\"error\".*(in use|bind|listen).*$GRPC_PORT|\"level\":\"error\".*$GRPC_PORT.*(in use|bind|listen)" "$T/dupgrpc.log"
rc=$(second_traced duphttp --data-dir "$T/data3" --grpc-listen 127.0.0.1:0 \
    --http-listen "127.0.0.1:$HTTP_PORT" --query-listen 127.0.0.1:0)
expect_eq "second traced on the same HTTP port exits 1" "$rc" 1
check "... and logs an error naming the port" grep -qiE "\"level\":\"error\".*$HTTP_PORT" "$T/duphttp.log"
rc=$(second_traced dupquery --data-dir "$T/data4" --grpc-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --query-listen "127.0.0.1:$QUERY_PORT")
expect_eq "second traced on the same query port exits 1" "$rc" 1
check "... and logs an error naming the port" grep -qiE "\"level\":\"error\".*$QUERY_PORT" "$T/dupquery.log"
rc=$(second_traced dupdata --data-dir "$DATA_DIR" --grpc-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 --query-listen 127.0.0.1:0)
expect_eq "second traced on the same data dir exits 1" "$rc" 1
check "... and logs an error about the data dir ($(grep '"level":"error"' "$T/dupdata.log" | head -n 1 | head -c 200))" \
    grep -qiE '"level":"error".*(lock|in use)' "$T/dupdata.log"
check "first traced still ready after the conflicts" curl -sf --max-time 5 "$QUERY/ready" -o /dev/null

# --- 5. pipelining -------------------------------------------------------------------------------
node_run 10 mkreq.mjs --spans 1 --out "$T/p1.json" --expected "$T/p1.exp.json" --service pipe1 >/dev/null
node_run 10 mkreq.mjs --spans 2 --out "$T/p2.json" --expected "$T/p2.exp.json" --service pipe2 >/dev/null
node_run 20 http_pipeline.mjs --port "$HTTP_PORT" --expect 2 \
    --request "POST /v1/traces application/json $T/p1.json" \
    --request "POST /v1/traces application/json $T/p2.json" >"$T/pipe.json"
expect_eq "OTLP/HTTP: two pipelined POSTs in one write -> two 200s" "$(jsv "$T/pipe.json" 'j.map((r) => r.status).join(",")' 2>&1)" 200,200
check "pipelined trace 1 reads back" quiet node_run 30 check_trace.mjs --base "$QUERY" --expected "$T/p1.exp.json" --timeout-ms 10000
check "pipelined trace 2 reads back" quiet node_run 30 check_trace.mjs --base "$QUERY" --expected "$T/p2.exp.json" --timeout-ms 10000
# keep-alive: curl sends two requests; the second must reuse the connection
curl -sv --max-time 10 "$QUERY/api/echo" "$QUERY/ready" -o /dev/null -o /dev/null 2>"$T/ka.err"
check "query port keeps HTTP/1.1 connections alive (curl re-used the connection)" grep -q 'Re-using existing connection' "$T/ka.err"
curl -sv --max-time 10 -H 'Content-Type: application/json' -d '{}' "$OTLP_HTTP/v1/traces" -o /dev/null \
    --next -H 'Content-Type: application/json' -d '{}' "$OTLP_HTTP/v1/traces" -o /dev/null 2>"$T/ka2.err"
check "OTLP/HTTP port keeps HTTP/1.1 connections alive" grep -q 'Re-using existing connection' "$T/ka2.err"
node_run 20 http_pipeline.mjs --port "$QUERY_PORT" --expect 3 \
    --request "GET /api/echo" --request "GET /ready" --request "GET /api/status/buildinfo" >"$T/qpipe.json"
expect_eq "query port: three pipelined GETs -> answered in order" \
    "$(jsv "$T/qpipe.json" 'j.map((r, i) => r.status + ":" + (i < 2 ? r.body.trim() : typeof JSON.parse(r.body).version)).join(",")' 2>&1)" \
    200:echo,200:ready,200:string

check "SIGTERM: exit 0" traced_stop
finish
