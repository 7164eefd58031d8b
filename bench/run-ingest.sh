#!/usr/bin/env bash
# run-ingest.sh - reproducible ingest benchmark of traced (see bench/README.md).
#
#   bench/run-ingest.sh [--payload FILE.pb] [--duration S] [--connections N]
#                       [--build-dir DIR] [--no-build] [--out FILE.md] [--keep]
#                       [--skip-paced] [-- EXTRA TRACED FLAGS...]
#
# 1. builds Release into build-bench/ (tests off);
# 2. generates the payload with bench_gen_payload (512 spans, 64 traces, 10 attrs)
#    into a temp dir, unless --payload is given;
# 3. runs bench_ceiling (in-process decode -> batch -> store);
# 4. for each scenario (grpc, grpc+gzip, http, http+gzip; 16 connections, 15 s)
#    starts a fresh traced on 127.0.0.1:14317/14318/13200 with an empty data dir,
#    waits for /ready, runs bench_ingest with --pid, waits (bounded) until the
#    write queue has drained, reads /metrics, stops traced;
# 5. runs http again paced at 70% of the sustained http rate (below saturation:
#    there must be no refusals or drops);
# 6. prints a markdown table (also to --out) and removes the temp dir.
#
# "accepted" is what the server acknowledged while the load ran; "stored" is
# traced_spans_written_total divided by load time plus the time the queue took to
# drain afterwards, i.e. what traced can sustain, not only buffer.
#
# Everything is bounded in time; only the traced this script started is ever
# signalled. Needs: cmake, a C compiler, curl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
PAYLOAD=
DURATION=15
CONNS=16
OUT=
KEEP=0
BUILD_IT=1
PACED=1
GRPC_PORT=14317
HTTP_PORT=14318
QUERY_PORT=13200
EXTRA=()

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
    --payload) PAYLOAD=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --skip-paced) PACED=0; shift ;;
    --help | -h) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run-ingest.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/traced-bench.XXXXXX")
TRACED_PID=

cleanup() {
    if [ -n "$TRACED_PID" ] && kill -0 "$TRACED_PID" 2>/dev/null; then
        kill -KILL "$TRACED_PID" 2>/dev/null || true
        wait "$TRACED_PID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then
        echo "kept $BENCH_TMP"
    else
        rm -rf "$BENCH_TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
f1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }

# ---- build ----
if [ "$BUILD_IT" = 1 ]; then
    log "building Release in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTD_BUILD_TESTS=OFF >"$BENCH_TMP/cmake.log" 2>&1 ||
        { cat "$BENCH_TMP/cmake.log" >&2; exit 1; }
    cmake --build "$BUILD" -j"$(nproc)" --target traced bench_ingest bench_ceiling bench_gen_payload \
        >>"$BENCH_TMP/cmake.log" 2>&1 || { tail -50 "$BENCH_TMP/cmake.log" >&2; exit 1; }
fi
TRACED=$BUILD/cmd/traced/traced
INGEST=$BUILD/bench/bench_ingest
CEILING=$BUILD/bench/bench_ceiling
GEN=$BUILD/bench/bench_gen_payload
for b in "$TRACED" "$INGEST" "$CEILING" "$GEN"; do
    [ -x "$b" ] || { echo "run-ingest.sh: missing $b (build first)" >&2; exit 1; }
done

# ---- payload ----
if [ -z "$PAYLOAD" ]; then
    PAYLOAD=$BENCH_TMP/generated-512.pb
    "$GEN" --spans 512 --traces 64 --attrs 10 --seed 1 --out "$PAYLOAD" >&2
    PAYLOAD_DESC="generated (bench_gen_payload --spans 512 --traces 64 --attrs 10 --seed 1)"
fi
[ -r "$PAYLOAD" ] || { echo "run-ingest.sh: cannot read $PAYLOAD" >&2; exit 1; }

# ---- helpers ----

# jnum FILE KEY: a top-level numeric field of a JSON file written by the bench tools
# (one "key": value per line, two-space indent); jin FILE KEY: the first "KEY": N anywhere.
jnum() { sed -nE 's/^  "'"$2"'": (-?[0-9.]+).*/\1/p' "$1" | head -n1; }
jin() { sed -nE 's/.*"'"$2"'": (-?[0-9.]+).*/\1/p' "$1" | head -n1; }

# metric NAME: sum of all series of a metric family on /metrics (0 when absent).
metric() {
    { curl -sf -m 5 "http://127.0.0.1:$QUERY_PORT/metrics" || true; } |
        awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s + 0 }'
}

traced_start() { # NAME
    local name=$1
    if curl -s -m 1 -o /dev/null "http://127.0.0.1:$QUERY_PORT/ready"; then
        echo "run-ingest.sh: something already listens on 127.0.0.1:$QUERY_PORT" >&2
        exit 1
    fi
    mkdir -p "$BENCH_TMP/$name"
    "$TRACED" --data-dir "$BENCH_TMP/$name/data" \
        --grpc-listen "127.0.0.1:$GRPC_PORT" --http-listen "127.0.0.1:$HTTP_PORT" \
        --query-listen "127.0.0.1:$QUERY_PORT" --log-level warn ${EXTRA[@]+"${EXTRA[@]}"} \
        >"$BENCH_TMP/$name/traced.log" 2>&1 &
    TRACED_PID=$!
    local deadline=$(($(now_ms) + 20000))
    until curl -sf -m 1 -o /dev/null "http://127.0.0.1:$QUERY_PORT/ready"; do
        if ! kill -0 "$TRACED_PID" 2>/dev/null || [ "$(now_ms)" -gt "$deadline" ]; then
            echo "run-ingest.sh: traced did not become ready; log:" >&2
            tail -20 "$BENCH_TMP/$name/traced.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

traced_stop() {
    [ -n "$TRACED_PID" ] || return 0
    kill -TERM "$TRACED_PID" 2>/dev/null || true
    local deadline=$(($(now_ms) + 60000))
    while kill -0 "$TRACED_PID" 2>/dev/null; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            echo "run-ingest.sh: traced did not stop in 60 s; killing" >&2
            kill -KILL "$TRACED_PID" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$TRACED_PID" 2>/dev/null || true
    TRACED_PID=
}

# wait_drained SECS: until the write queue is empty; prints the milliseconds waited.
wait_drained() {
    local t0 deadline
    t0=$(now_ms)
    deadline=$((t0 + $1 * 1000))
    while [ "$(metric traced_queue_spans)" != 0 ]; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            echo "run-ingest.sh: queue not drained after $1 s" >&2
            break
        fi
        sleep 0.1
    done
    echo $(($(now_ms) - t0))
}

ROWS=()
CEIL_SPS=0

# scenario NAME PROTO GZIP(0/1) [RATE]
scenario() {
    local name=$1 proto=$2 gz=$3 rate=${4:-0}
    local port=$HTTP_PORT
    [ "$proto" = grpc ] && port=$GRPC_PORT
    local args=(--payload "$PAYLOAD" --proto "$proto" --target "127.0.0.1:$port"
        --connections "$CONNS" --duration "$DURATION" --json-out "$BENCH_TMP/$name.json"
        --progress 5)
    [ "$gz" = 1 ] && args+=(--gzip)
    [ "$rate" != 0 ] && args+=(--rate "$rate")
    log "scenario $name: ${args[*]}"
    traced_start "$name"
    local w0 t0 rc=0 drain_ms w1 dropped
    w0=$(metric traced_spans_written_total)
    t0=$(now_ms)
    "$INGEST" "${args[@]}" --pid "$TRACED_PID" >&2 || rc=$?
    local load_ms=$(($(now_ms) - t0))
    drain_ms=$(wait_drained 120)
    w1=$(metric traced_spans_written_total)
    dropped=$(metric traced_spans_dropped_total)
    # the daemon's peak memory including the drain
    local hwm
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$TRACED_PID/status" 2>/dev/null || echo 0)
    traced_stop
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "run-ingest.sh: bench_ingest failed ($rc)" >&2; exit 1; }
    local j=$BENCH_TMP/$name.json
    local stored_sps
    stored_sps=$(awk -v w=$((w1 - w0)) -v ms=$((load_ms + drain_ms)) 'BEGIN { printf "%.0f", w * 1000 / ms }')
    local pct
    pct=$(awk -v s="$stored_sps" -v c="$CEIL_SPS" 'BEGIN { if (c > 0) printf "%.0f%%", 100 * s / c; else print "-" }')
    ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %.0f | %s | %s |' \
        "$name" "$CONNS" "$(jnum "$j" spans_per_s)" "$stored_sps" "$pct" \
        "$(jnum "$j" wire_mb_per_s)" "$(f1 "$(jin "$j" p50)")" "$(f1 "$(jin "$j" p99)")" \
        "$(jin "$j" refused)" "$(jin "$j" failed)" "$dropped" \
        "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" "$(f1 "$(jin "$j" cpu_cores)")" \
        "$(awk -v d="$drain_ms" 'BEGIN { printf "%.1f", d / 1000 }')")")
    eval "SPS_$(echo "$name" | tr -c 'a-z0-9\n' '_')=$stored_sps"
    eval "REQ_$(echo "$name" | tr -c 'a-z0-9\n' '_')=$(jnum "$j" requests_per_s)"
    eval "DROP_$(echo "$name" | tr -c 'a-z0-9\n' '_')=$dropped"
    eval "REF_$(echo "$name" | tr -c 'a-z0-9\n' '_')=$(jin "$j" refused)"
    eval "HWM_$(echo "$name" | tr -c 'a-z0-9\n' '_')=$hwm"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- ceiling ----
log "bench_ceiling"
"$CEILING" --payload "$PAYLOAD" --duration "$DURATION" --phase-duration 3 --dir "$BENCH_TMP" \
    --json-out "$BENCH_TMP/ceiling.json" >&2
CEIL_SPS=$(jnum "$BENCH_TMP/ceiling.json" spans_per_s)
CEIL_DEC=$(jnum "$BENCH_TMP/ceiling.json" decode_spans_per_s)
CEIL_MB=$(jnum "$BENCH_TMP/ceiling.json" mb_per_s)
CEIL_IVALS=$(sed -nE 's/^  "interval_spans_per_s": \[(.*)\],?$/\1/p' "$BENCH_TMP/ceiling.json")

# ---- end to end ----
scenario grpc grpc 0
scenario grpc+gzip grpc 1
scenario http http 0
scenario http+gzip http 1
if [ "$PACED" = 1 ]; then
    # 70% of what http sustained, as requests/s
    PACE=$(awk -v s="${SPS_http:-0}" -v n="$(jnum "$BENCH_TMP/http.json" spans_per_request)" \
        'BEGIN { if (n > 0) printf "%.1f", 0.7 * s / n; else print 0 }')
    if [ "$PACE" != 0 ] && [ "$PACE" != 0.0 ]; then
        scenario http@70% http 0 "$PACE"
    fi
fi

# ---- report ----
{
    echo "## traced ingest benchmark"
    echo
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
    echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
    echo "- payload: ${PAYLOAD_DESC:-$PAYLOAD}, $(jnum "$BENCH_TMP/ceiling.json" payload_bytes) B, $(jnum "$BENCH_TMP/ceiling.json" spans_per_request) spans/request; IDs rewritten per request"
    echo "- load: $CONNS connections, ${DURATION} s per scenario (grpc: 4 calls in flight per connection); fresh traced + empty data dir per scenario"
    echo
    echo "In-process ceiling (bench_ceiling, 1 thread, ${DURATION} s): decode only $CEIL_DEC spans/s; decode -> batch -> store **$CEIL_SPS spans/s** ($CEIL_MB MB/s of protobuf); per 5 s: ${CEIL_IVALS:-n/a}."
    echo
    echo "| scenario | conns | accepted spans/s | stored spans/s | of ceiling | wire MB/s | p50 ms | p99 ms | refused/failed req | dropped spans | peak RSS MB | server cores | drain s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "accepted = acknowledged spans / load time (bench_ingest); stored = traced_spans_written_total / (load time + queue drain time); dropped = traced_spans_dropped_total (all reasons); peak RSS = VmHWM of traced after the drain."
    echo
    echo "Targets (stored, uncompressed scenarios): >= 60% of the ceiling and >= 100k spans/s; RSS < 256 MB; no drops below saturation (paced run)."
    for s in grpc http; do
        v=$(eval echo "\${SPS_$s:-0}")
        h=$(eval echo "\${HWM_$s:-0}")
        awk -v n="$s" -v v="$v" -v c="$CEIL_SPS" -v h="$h" 'BEGIN {
            pct = (c > 0) ? 100 * v / c : 0
            a = (c > 0 && v >= 0.6 * c) ? "ok" : "MISS"
            b = (v >= 100000) ? "ok" : "MISS"
            r = (h > 0 && h < 262144) ? "ok" : "MISS"
            printf("- %s: %.0f spans/s stored = %.0f%% of the ceiling [%s], vs 100k [%s], peak RSS %.0f MB [%s]\n",
                n, v, pct, a, b, h / 1024, r) }'
    done
    if [ "$PACED" = 1 ] && [ -n "${DROP_http_70_:-}" ]; then
        if [ "${DROP_http_70_}" = 0 ] && [ "${REF_http_70_:-0}" = 0 ]; then
            echo "- paced http at 70%: no refusals, no drops [ok]"
        else
            echo "- paced http at 70%: ${REF_http_70_:-?} refused requests, ${DROP_http_70_} dropped spans [MISS]"
        fi
    fi
} | tee "${OUT:-/dev/null}"
