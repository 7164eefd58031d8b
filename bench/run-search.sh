#!/usr/bin/env bash
# run-search.sh - reproducible search benchmark of traced (see bench/README.md).
#
#   bench/run-search.sh [--spans N] [--connections N] [--n N] [--n-broad N]
#                       [--seed N] [--settle-max S] [--max-seconds S]
#                       [--build-dir DIR] [--no-build] [--work-dir DIR]
#                       [--out FILE.md] [--keep] [-- EXTRA TRACED FLAGS...]
#
# 1. builds Release into build-bench/ (tests off);
# 2. starts a fresh traced with an empty data dir on 127.0.0.1:24318 (OTLP/HTTP)
#    and :23200 (query), gRPC off, and waits for /ready;
# 3. bench_load sends --spans spans (default 10,000,000: ~1M traces, 20 services)
#    spread over the 24 hours before now, retrying 503s after Retry-After;
# 4. waits until traced_queue_spans is 0, then until traced is idle (LevelDB's
#    background compaction done: < 5 % of a core over 2 s, at most --settle-max
#    seconds). No manual compaction is asked for;
# 5. bench_query measures trace by ID, the selective and the broad search, tag
#    names and tag values (--n requests each, one connection);
# 6. stops traced (SIGTERM) and measures the store with bench_store_size;
# 7. prints a markdown report (also to --out) and removes the work dir.
#
# Everything is bounded in time; only the traced this script started is ever
# signalled. Needs: cmake, a C compiler, curl, awk.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
SPANS=10000000
CONNS=2
NQ=100
NBROAD=
SEED=1
SETTLE_MAX=300
MAX_SECONDS=120
OUT=
KEEP=0
BUILD_IT=1
WORK_BASE=${TMPDIR:-/tmp}
HTTP_PORT=24318
QUERY_PORT=23200
EXTRA=()

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
    --spans) SPANS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --n) NQ=$2; shift 2 ;;
    --n-broad) NBROAD=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --settle-max) SETTLE_MAX=$2; shift 2 ;;
    --max-seconds) MAX_SECONDS=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --work-dir) WORK_BASE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --help | -h) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run-search.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
NBROAD=${NBROAD:-$NQ}

mkdir -p "$WORK_BASE"
WORK=$(mktemp -d "$WORK_BASE/traced-search.XXXXXX")
TRACED_PID=

cleanup() {
    if [ -n "$TRACED_PID" ] && kill -0 "$TRACED_PID" 2>/dev/null; then
        kill -KILL "$TRACED_PID" 2>/dev/null || true
        wait "$TRACED_PID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
now_ms() { date +%s%3N; }
kv() { sed -n "s/^$2=//p" "$1" | head -n1; }

# ---- build ----
if [ "$BUILD_IT" = 1 ]; then
    log "building Release in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTD_BUILD_TESTS=OFF >"$WORK/cmake.log" 2>&1 ||
        { cat "$WORK/cmake.log" >&2; exit 1; }
    cmake --build "$BUILD" -j"$(nproc)" --target traced bench_load bench_query bench_store_size \
        >>"$WORK/cmake.log" 2>&1 || { tail -50 "$WORK/cmake.log" >&2; exit 1; }
fi
TRACED=$BUILD/cmd/traced/traced
LOAD=$BUILD/bench/bench_load
QUERY=$BUILD/bench/bench_query
SIZE=$BUILD/bench/bench_store_size
for b in "$TRACED" "$LOAD" "$QUERY" "$SIZE"; do
    [ -x "$b" ] || { echo "run-search.sh: missing $b (build first)" >&2; exit 1; }
done

# metric NAME: sum of all series of a metric family on /metrics (0 when absent).
metric() {
    { curl -sf -m 5 "http://127.0.0.1:$QUERY_PORT/metrics" || true; } |
        awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s + 0 }'
}

# cpu_ticks PID: utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# ---- start traced ----
if curl -s -m 1 -o /dev/null "http://127.0.0.1:$QUERY_PORT/ready"; then
    echo "run-search.sh: something already listens on 127.0.0.1:$QUERY_PORT" >&2
    exit 1
fi
DATA=$WORK/data
"$TRACED" --data-dir "$DATA" --grpc-listen "" --http-listen "127.0.0.1:$HTTP_PORT" \
    --query-listen "127.0.0.1:$QUERY_PORT" --log-level warn ${EXTRA[@]+"${EXTRA[@]}"} \
    >"$WORK/traced.log" 2>&1 &
TRACED_PID=$!
deadline=$(($(now_ms) + 20000))
until curl -sf -m 1 -o /dev/null "http://127.0.0.1:$QUERY_PORT/ready"; do
    if ! kill -0 "$TRACED_PID" 2>/dev/null || [ "$(now_ms)" -gt "$deadline" ]; then
        echo "run-search.sh: traced did not become ready; log:" >&2
        tail -20 "$WORK/traced.log" >&2
        exit 1
    fi
    sleep 0.1
done
log "traced $TRACED_PID ready; data in $DATA"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- load ----
END_S=$(date +%s)
log "bench_load: $SPANS spans, end $END_S, $CONNS connection(s)"
rc=0
"$LOAD" --target "127.0.0.1:$HTTP_PORT" --spans "$SPANS" --seed "$SEED" --end-s "$END_S" \
    --connections "$CONNS" --ids-out "$WORK/ids.txt" --progress 30 >"$WORK/load.txt" || rc=$?
[ "$rc" = 0 ] || { echo "run-search.sh: bench_load failed ($rc)" >&2; cat "$WORK/load.txt" >&2; exit 1; }
t0=$(now_ms)
drain_limit=$((600 + SPANS / 20000))
while [ "$(metric traced_queue_spans)" != 0 ]; do
    if [ $(($(now_ms) - t0)) -gt $((drain_limit * 1000)) ]; then
        echo "run-search.sh: queue not drained after $drain_limit s" >&2
        exit 1
    fi
    sleep 0.5
done
DRAIN_MS=$(($(now_ms) - t0))
WRITTEN=$(metric traced_spans_written_total)
DROPPED=$(metric traced_spans_dropped_total)
log "drained in $((DRAIN_MS / 1000)) s; $WRITTEN spans written, $DROPPED dropped"

# ---- settle: wait for background compaction to go quiet ----
t0=$(now_ms)
hz=$(getconf CLK_TCK)
while :; do
    c0=$(cpu_ticks "$TRACED_PID")
    sleep 2
    c1=$(cpu_ticks "$TRACED_PID")
    # < 5 % of one core over 2 s
    [ $(((c1 - c0) * 100)) -lt $((hz * 2 * 5)) ] && break
    if [ $(($(now_ms) - t0)) -gt $((SETTLE_MAX * 1000)) ]; then
        log "traced still busy after $SETTLE_MAX s; measuring anyway"
        break
    fi
done
SETTLE_MS=$(($(now_ms) - t0))
log "settled in $((SETTLE_MS / 1000)) s"

# ---- queries ----
DS=$(kv "$WORK/load.txt" data_start_s)
DE=$(kv "$WORK/load.txt" data_end_s)
log "bench_query: $NQ requests per kind ($NBROAD broad)"
qrc=0
"$QUERY" --target "127.0.0.1:$QUERY_PORT" --ids "$WORK/ids.txt" --data-start "$DS" --data-end "$DE" \
    --n "$NQ" --n-broad "$NBROAD" --seed "$SEED" --max-seconds "$MAX_SECONDS" \
    --tsv "$WORK/query.tsv" >"$WORK/query.md" 2>"$WORK/query.err" || qrc=$?
cat "$WORK/query.err" >&2
[ "$qrc" = 0 ] || [ "$qrc" = 3 ] || { echo "run-search.sh: bench_query failed ($qrc)" >&2; exit 1; }
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$TRACED_PID/status" 2>/dev/null || echo 0)
RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$TRACED_PID/status" 2>/dev/null || echo 0)
# file-backed: pages of LevelDB's memory-mapped table files (store-max-open-files bounds them)
RSS_FILE=$(awk '/^RssFile:/ { print $2 }' "/proc/$TRACED_PID/status" 2>/dev/null || echo 0)

# ---- stop, measure the store ----
kill -TERM "$TRACED_PID" 2>/dev/null || true
deadline=$(($(now_ms) + 120000))
while kill -0 "$TRACED_PID" 2>/dev/null; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
        echo "run-search.sh: traced did not stop in 120 s; killing" >&2
        kill -KILL "$TRACED_PID" 2>/dev/null || true
        break
    fi
    sleep 0.2
done
wait "$TRACED_PID" 2>/dev/null || true
TRACED_PID=
"$SIZE" --data-dir "$DATA" --spans "$WRITTEN" >"$WORK/size.txt" 2>"$WORK/size.log" ||
    { cat "$WORK/size.log" >&2; exit 1; }

# ---- report ----
L=$WORK/load.txt
Z=$WORK/size.txt
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
per() { awk -v b="$1" -v n="$WRITTEN" 'BEGIN { if (n > 0) printf "%.1f", b / n; else print "-" }'; }
q() { awk -F'\t' -v k="$1" -v w="$2" -v c="$3" '$1 == k && (w == "" || $2 == w) { print $c; exit }' "$WORK/query.tsv"; }
{
    echo "## traced search benchmark"
    echo
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
    echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- data: bench_load --spans $SPANS --seed $SEED: $(kv "$L" traces) traces, $(kv "$L" spans_generated) spans, 20 services, over the 24 h before $(date -u -d "@$DE" +%H:%MZ); $(kv "$L" error_spans) error spans, $(kv "$L" slow_traces) traces with a span > 1 s; $(mb "$(kv "$L" request_bytes)") MB of OTLP protobuf"
    echo "- load: $(kv "$L" spans_sent) spans sent, $(kv "$L" spans_accepted) accepted in $(kv "$L" seconds) s ($(kv "$L" spans_per_s) spans/s) over $CONNS connection(s), $(kv "$L" requests_refused) requests refused (503, retried after Retry-After), $(kv "$L" requests_failed) failed; queue drained $(awk -v d="$DRAIN_MS" 'BEGIN { printf "%.0f", d / 1000 }') s later; $WRITTEN spans written (traced_spans_dropped_total $DROPPED: the spans of the refused requests, which bench_load resent)"
    echo "- store: no manual compaction; queries started once traced had been idle for 2 s (waited $(awk -v d="$SETTLE_MS" 'BEGIN { printf "%.0f", d / 1000 }') s); traced RSS $(awk -v k="$RSS" 'BEGIN { printf "%.0f", k / 1024 }') MB after the queries, of which $(awk -v k="$RSS_FILE" 'BEGIN { printf "%.0f", k / 1024 }') MB file-backed (mapped table files) (peak $(awk -v k="$HWM" 'BEGIN { printf "%.0f", k / 1024 }') MB)"
    echo
    echo "Queries (one keep-alive connection, sequential; latency = first byte sent to last byte received; ok = 200 with a plausible body):"
    echo
    cat "$WORK/query.md"
    echo
    echo "Store (bench_store_size after SIGTERM; bytes per written span):"
    echo
    echo "| what | MB | bytes/span |"
    echo "|---|---|---|"
    echo "| files under traces/ | $(mb "$(kv "$Z" disk_bytes)") | $(per "$(kv "$Z" disk_bytes)") |"
    echo "| LevelDB estimate, all keys | $(mb "$(kv "$Z" approx_bytes)") | $(per "$(kv "$Z" approx_bytes)") |"
    if [ "$(kv "$Z" per_type)" = yes ]; then
        for t in T R S I K W M; do
            case $t in
            T) d="'T' trace fragments" ;; R) d="'R' resources" ;; S) d="'S' search summaries" ;;
            I) d="'I' index entries" ;; K) d="'K' tag names" ;; W) d="'W' write trace tables" ;;
            M) d="'M' metadata" ;;
            esac
            echo "| $d | $(mb "$(kv "$Z" "type_${t}_bytes")") | $(per "$(kv "$Z" "type_${t}_bytes")") |"
        done
    fi
    echo
    if [ "$(kv "$Z" per_type)" = yes ]; then
        echo "Index overhead ('I' + 'K' + 'W' + 'S') / ('T' + 'R') = $(awk -v x="$(kv "$Z" index_overhead)" 'BEGIN { printf "%.1f%%", 100 * x }')."
    else
        echo "Per-type sizes unavailable: this build's store has no td_store_approx_size_type."
    fi
    echo
    echo "Targets:"
    awk -v v="$(q 'trace by ID' '' 7)" 'BEGIN { printf "- trace by ID p99 %s ms < 5 ms [%s]\n", v, (v != "" && v != "nan" && v + 0 < 5) ? "ok" : "MISS" }'
    awk -v v="$(q 'selective search' '' 5)" 'BEGIN { printf "- selective search p50 %s ms < 100 ms [%s]\n", v, (v != "" && v != "nan" && v + 0 < 100) ? "ok" : "MISS" }'
    awk -v v="$(q 'broad search' '' 5)" 'BEGIN { printf "- broad search p50 %s ms < 1000 ms (limit 20) [%s]\n", v, (v != "" && v != "nan" && v + 0 < 1000) ? "ok" : "MISS" }'
    if [ "$(kv "$Z" per_type)" = yes ]; then
        awk -v x="$(kv "$Z" index_overhead)" 'BEGIN { printf "- index overhead %.1f%% < 50%% [%s]\n", 100 * x, (x < 0.5) ? "ok" : "MISS" }'
    else
        echo "- index overhead: not measured (no per-type sizes)"
    fi
    if [ "$qrc" = 3 ]; then
        echo
        echo "Some answers were not ok (see the ok/n column); bench_query printed the first ones:"
        echo
        echo '```'
        grep 'bench_query:' "$WORK/query.err" 2>/dev/null | head -12 || true
        echo '```'
    fi
} | tee "${OUT:-/dev/null}"
