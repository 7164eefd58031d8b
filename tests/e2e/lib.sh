# lib.sh - shared helpers for the end-to-end tests (sourced, bash).
#
# Each test: source lib.sh; e2e_init NAME; traced_start [flags]; ...; finish.
# traced runs on 127.0.0.1 with ephemeral ports (":0"); the bound ports are read
# from its "traced started" log line into GRPC_PORT, HTTP_PORT and QUERY_PORT.
# Everything waits with deadlines (no fixed sleeps) and the daemon is always
# stopped by the EXIT trap.
#
# Helpers (all bounded):
#   traced_start [flags]  start + wait for /ready      traced_stop [SIG] / traced_kill9
#   start_or_bail [flags] traced_start or record a failure and exit the test
#   node_run SECS SCRIPT ARGS...   run tests/e2e/SCRIPT under node with a timeout
#   jsv FILE EXPR         evaluate a JS expression over the JSON in FILE (bound to j)
#   http NAME CURL_ARGS...  curl with a timeout; prints the status code, keeps
#                           $E2E_TMP/NAME.body and $E2E_TMP/NAME.hdr
#   hdr NAME HEADER       value of a response header saved by `http`
#   body_is NAME TEXT     body saved by `http` equals TEXT (one trailing newline tolerated)
#   metric NAME{labels}   one series from /metrics;  wait_metric SECS NAME WANT
#   tracectl ARGS...      run $TRACECTL_BIN against this daemon (--server $QUERY)
#   quiet CMD...          run CMD silently, showing its output only when it fails
#   check / expect_eq / pass / fail / finish
set -uo pipefail

: "${TRACED_BIN:?TRACED_BIN must point at the traced binary}"
: "${TD_E2E_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
: "${TD_E2E_TMP:=${TMPDIR:-/tmp}/traced-e2e}"
: "${TD_TEST_DATA:=$(cd "$TD_E2E_DIR/../data" 2>/dev/null && pwd)}"

E2E_PASSED=0
E2E_FAILED=0
TRACED_PID=
TRACED_LOG=
E2E_START_MS=$(date +%s%3N)

e2e_init() {
    E2E_NAME=$1
    mkdir -p "$TD_E2E_TMP"
    E2E_TMP=$(mktemp -d "$TD_E2E_TMP/$E2E_NAME.XXXXXX")
    DATA_DIR=$E2E_TMP/data
    trap e2e_cleanup EXIT
}

e2e_cleanup() {
    if [ -n "$TRACED_PID" ] && kill -0 "$TRACED_PID" 2>/dev/null; then
        kill -KILL "$TRACED_PID" 2>/dev/null
        wait "$TRACED_PID" 2>/dev/null
    fi
    # background helpers this test started (never anything else): TERM their direct children
    # first (`timeout` forwards it to node), then the job itself
    local p
    for p in $(jobs -p); do
        pkill -TERM -P "$p" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
    done
    if [ "$E2E_FAILED" -eq 0 ]; then
        rm -rf "$E2E_TMP"
    else
        echo "kept $E2E_TMP for inspection"
    fi
}

# now_ms: monotonic-enough milliseconds for deadlines
now_ms() { date +%s%3N; }

# wait_for SECONDS CMD...: retry CMD every 50 ms until it succeeds or time runs out.
wait_for() {
    local secs=$1
    shift
    local deadline=$(($(now_ms) + secs * 1000))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            return 1
        fi
        sleep 0.05
    done
}

_started_line() { grep -a -m1 'traced started' "$TRACED_LOG"; }
_started_or_dead() { _started_line || ! kill -0 "$TRACED_PID" 2>/dev/null; }

# _port_of KEY LINE: the port of "KEY":"host:port" (JSON log) or KEY=host:port (logfmt).
_port_of() {
    sed -nE 's/.*[" ]'"$1"'"?[=:] *"?[^ ",]*:([0-9]+).*/\1/p' <<<"$2" | head -n1
}

# traced_start [flags...]: start traced on ephemeral loopback ports with DATA_DIR.
traced_start() {
    TRACED_LOG=$E2E_TMP/traced.$(now_ms).log
    "$TRACED_BIN" --data-dir "$DATA_DIR" --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
        --query-listen 127.0.0.1:0 "$@" 2>"$TRACED_LOG" &
    TRACED_PID=$!
    if ! wait_for 30 _started_or_dead || ! _started_line >/dev/null; then
        echo "traced did not start; log:"
        cat "$TRACED_LOG"
        return 1
    fi
    local line
    line=$(_started_line)
    GRPC_PORT=$(_port_of grpc "$line")
    HTTP_PORT=$(_port_of http "$line")
    QUERY_PORT=$(_port_of query "$line")
    if ! [[ "$GRPC_PORT" =~ ^[0-9]+$ && "$HTTP_PORT" =~ ^[0-9]+$ && "$QUERY_PORT" =~ ^[0-9]+$ ]]; then
        echo "cannot parse the ports from the start line (adjust _port_of in lib.sh): $line"
        return 1
    fi
    QUERY=http://127.0.0.1:$QUERY_PORT
    OTLP_HTTP=http://127.0.0.1:$HTTP_PORT
    OTLP_GRPC=127.0.0.1:$GRPC_PORT
    if ! wait_for 30 curl -sf --max-time 2 "$QUERY/ready"; then
        echo "traced never became ready; log:"
        cat "$TRACED_LOG"
        return 1
    fi
}

# start_or_bail [flags...]: traced_start, or count a failure and end the test now.
start_or_bail() {
    if traced_start "$@"; then
        return 0
    fi
    fail "traced_start $*"
    finish
    exit 1
}

# traced_stop [SIGNAL]: SIGTERM (or SIGNAL) and wait (bounded); fails unless it exits with 0.
traced_stop() {
    [ -n "$TRACED_PID" ] || return 0
    kill -"${1:-TERM}" "$TRACED_PID"
    local deadline=$(($(now_ms) + 60000)) rc
    while kill -0 "$TRACED_PID" 2>/dev/null; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            echo "traced did not stop within 60 s"
            kill -KILL "$TRACED_PID"
            break
        fi
        sleep 0.05
    done
    wait "$TRACED_PID"
    rc=$?
    TRACED_PID=
    return $rc
}

traced_kill9() {
    kill -KILL "$TRACED_PID"
    wait "$TRACED_PID" 2>/dev/null
    TRACED_PID=
}

# metric NAME_WITH_LABELS: value of one series from /metrics (0 if absent).
metric() {
    curl -sf --max-time 5 "$QUERY/metrics" | awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }'
}

# metric_eq NAME WANT: the series equals WANT right now (numerically).
metric_eq() {
    local got
    got=$(metric "$1")
    awk -v a="$got" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0) }'
}

# wait_metric SECS NAME WANT: wait until the series equals WANT.
wait_metric() {
    wait_for "$1" metric_eq "$2" "$3"
}

# node_run SECS SCRIPT ARGS...: a node helper from tests/e2e, killed after SECS.
node_run() {
    local secs=$1 script=$2
    shift 2
    timeout -k 5 "$secs" node "$TD_E2E_DIR/$script" "$@"
}

# jsv FILE EXPR: print the value of the JS expression EXPR, where j is the parsed JSON
# of FILE ("-" = stdin); objects are printed as JSON. Exit 1 if the file is not JSON.
jsv() {
    timeout -k 2 20 node -e '
const fs = require("fs");
const src = process.argv[1] === "-" ? fs.readFileSync(0, "utf8") : fs.readFileSync(process.argv[1], "utf8");
let j;
try { j = JSON.parse(src); } catch (e) { console.error("jsv: not JSON: " + e.message + ": " + src.slice(0, 200)); process.exit(1); }
const r = (new Function("j", "return (" + process.argv[2] + ");"))(j);
console.log(r !== null && typeof r === "object" ? JSON.stringify(r) : String(r));
' "$1" "$2"
}

# http NAME CURL_ARGS...: print the HTTP status (000 on transport failure); the body is kept
# in $E2E_TMP/NAME.body and the response headers in $E2E_TMP/NAME.hdr.
http() {
    local name=$1
    shift
    curl -sS --max-time 20 -o "$E2E_TMP/$name.body" -D "$E2E_TMP/$name.hdr" -w '%{http_code}' "$@" \
        2>"$E2E_TMP/$name.curlerr"
}

# hdr NAME HEADER: value of the (last) response header HEADER, without the CR.
hdr() {
    awk -v h="$2" 'BEGIN { h = tolower(h) }
        { sub(/\r$/, "") }
        index($0, ":") { n = tolower(substr($0, 1, index($0, ":") - 1)); if (n == h) { v = substr($0, index($0, ":") + 1); sub(/^[ \t]+/, "", v); val = v } }
        END { print val }' "$E2E_TMP/$1.hdr"
}

# body_is NAME TEXT: the saved body equals TEXT, or TEXT plus one "\n" (Go's http.Error adds it).
body_is() {
    local f=$E2E_TMP/$1.body
    [ "$(cat "$f"; echo x)" = "$2"$'\nx' ] || [ "$(cat "$f"; echo x)" = "$2x" ]
}

# show_body NAME: the saved body for a failure message (first 300 bytes, printable).
show_body() {
    head -c 300 "$E2E_TMP/$1.body" | tr -c '[:print:]\n' '?'
}

# quiet CMD...: run CMD with its output captured; show the output (last 40 lines) only on failure.
quiet() {
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        tail -n 40 <<<"$out" | sed 's/^/    | /'
    fi
    return $rc
}

# tracectl ARGS...: the CLI against this daemon.
tracectl() {
    timeout -k 2 30 "${TRACECTL_BIN:?TRACECTL_BIN must point at tracectl}" --server "$QUERY" "$@"
}

# check DESCRIPTION CMD...: run CMD, record pass/fail.
check() {
    local desc=$1
    shift
    if "$@"; then
        E2E_PASSED=$((E2E_PASSED + 1))
        echo "ok   $desc"
    else
        E2E_FAILED=$((E2E_FAILED + 1))
        echo "FAIL $desc"
    fi
}

pass() {
    E2E_PASSED=$((E2E_PASSED + 1))
    echo "ok   $1"
}

fail() {
    E2E_FAILED=$((E2E_FAILED + 1))
    echo "FAIL $1"
}

# expect_eq DESCRIPTION GOT WANT
expect_eq() {
    if [ "$2" = "$3" ]; then
        E2E_PASSED=$((E2E_PASSED + 1))
        echo "ok   $1"
    else
        E2E_FAILED=$((E2E_FAILED + 1))
        echo "FAIL $1: got '$2', want '$3'"
    fi
}

finish() {
    if [ "$E2E_FAILED" -ne 0 ] && [ -n "$TRACED_LOG" ] && [ -f "$TRACED_LOG" ]; then
        echo "--- last traced log lines ---"
        tail -n 30 "$TRACED_LOG"
    fi
    echo "($(( ($(now_ms) - E2E_START_MS) / 1000 )) s)"
    echo "$E2E_PASSED passed, $E2E_FAILED failed"
    [ "$E2E_FAILED" -eq 0 ]
}
