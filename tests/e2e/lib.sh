# lib.sh - shared helpers for the end-to-end tests (sourced, bash).
#
# Each test: source lib.sh; e2e_init NAME; traced_start [flags]; ...; finish.
# traced runs on 127.0.0.1 with ephemeral ports (":0"); the bound ports are read
# from its "traced started" log line into GRPC_PORT, HTTP_PORT and QUERY_PORT.
# Everything waits with deadlines (no fixed sleeps) and the daemon is always
# stopped by the EXIT trap.
set -uo pipefail

: "${TRACED_BIN:?TRACED_BIN must point at the traced binary}"
: "${TD_E2E_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
: "${TD_E2E_TMP:=${TMPDIR:-/tmp}/traced-e2e}"

E2E_PASSED=0
E2E_FAILED=0
TRACED_PID=
TRACED_LOG=

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

_started_line() { grep -m1 'traced started' "$TRACED_LOG"; }

# traced_start [flags...]: start traced on ephemeral loopback ports with DATA_DIR.
traced_start() {
    TRACED_LOG=$E2E_TMP/traced.$(now_ms).log
    "$TRACED_BIN" --data-dir "$DATA_DIR" --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
        --query-listen 127.0.0.1:0 "$@" 2>"$TRACED_LOG" &
    TRACED_PID=$!
    if ! wait_for 30 _started_line; then
        echo "traced did not start; log:"
        cat "$TRACED_LOG"
        return 1
    fi
    local line
    line=$(_started_line)
    GRPC_PORT=$(sed -E 's/.*grpc=[^ ",]*:([0-9]+).*/\1/' <<<"$line")
    HTTP_PORT=$(sed -E 's/.*http=[^ ",]*:([0-9]+).*/\1/' <<<"$line")
    QUERY_PORT=$(sed -E 's/.*query=[^ ",]*:([0-9]+).*/\1/' <<<"$line")
    QUERY=http://127.0.0.1:$QUERY_PORT
    OTLP_HTTP=http://127.0.0.1:$HTTP_PORT
    if ! wait_for 30 curl -sf "$QUERY/ready"; then
        echo "traced never became ready; log:"
        cat "$TRACED_LOG"
        return 1
    fi
}

# traced_stop: SIGTERM and wait (bounded); fails if it does not exit cleanly with 0.
traced_stop() {
    [ -n "$TRACED_PID" ] || return 0
    kill -TERM "$TRACED_PID"
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
    curl -sf "$QUERY/metrics" | awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }'
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
    echo "$E2E_PASSED passed, $E2E_FAILED failed"
    [ "$E2E_FAILED" -eq 0 ]
}
