#!/usr/bin/env bash
# run-profiles.sh - reproducible profiling benchmark of traced (see bench/README.md).
#
#   bench/run-profiles.sh [--services N] [--hours H] [--first-h H] [--connections N]
#                         [--variants N] [--n N] [--seed N] [--saturate S] [--raw]
#                         [--settle-max S] [--build-dir DIR] [--no-build] [--work-dir DIR]
#                         [--out FILE.md] [--keep] [-- EXTRA TRACED FLAGS...]
#
# 1. builds Release into build-bench/ (tests off);
# 2. starts a fresh traced with an empty data dir on 127.0.0.1:33200 (query port,
#    which takes /ingest), gRPC off, and waits for /ready;
# 3. bench_pload posts the first --first-h hours (default 1) of --hours (default 24)
#    of 10 s Go CPU profiles of --services services (default 10) to /ingest,
#    unpaced, over --connections keep-alive connections (default 4);
# 4. waits until traced is idle, stops it (SIGTERM) and measures the profile store
#    (bench_psize, du);
# 5. restarts traced on the same data, posts the rest of the history, waits until
#    idle, runs bench_pquery (SelectMergeStacktraces, 1 h and 24 h windows of the
#    first service, --n requests each), stops traced and measures the store again;
# 6. saturation: a fresh traced with an empty data dir takes --saturate seconds
#    (default 30, 0 = skip) of the same load over twice the connections;
# 7. prints a markdown report (also to --out) and removes the work dir.
#
# Everything is bounded in time; only the traced this script started is ever
# signalled. Needs: cmake, a C compiler, curl, awk, du.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
SERVICES=10
HOURS=24
FIRST_H=1
CONNS=4
VARIANTS=64
NQ=20
SEED=1
SATURATE=30
RAW=
SETTLE_MAX=300
OUT=
KEEP=0
BUILD_IT=1
WORK_BASE=${TMPDIR:-/tmp}
HTTP_PORT=34318
QUERY_PORT=33200
EXTRA=()

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
    --services) SERVICES=$2; shift 2 ;;
    --hours) HOURS=$2; shift 2 ;;
    --first-h) FIRST_H=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --variants) VARIANTS=$2; shift 2 ;;
    --n) NQ=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --saturate) SATURATE=$2; shift 2 ;;
    --raw) RAW=--raw; shift ;;
    --settle-max) SETTLE_MAX=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --work-dir) WORK_BASE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --help | -h) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run-profiles.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

mkdir -p "$WORK_BASE"
WORK=$(mktemp -d "$WORK_BASE/traced-profiles.XXXXXX")
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
    cmake --build "$BUILD" -j"$(nproc)" --target traced bench_pload bench_pquery bench_psize \
        >>"$WORK/cmake.log" 2>&1 || { tail -50 "$WORK/cmake.log" >&2; exit 1; }
fi
TRACED=$BUILD/cmd/traced/traced
LOAD=$BUILD/bench/bench_pload
QUERY=$BUILD/bench/bench_pquery
SIZE=$BUILD/bench/bench_psize
for b in "$TRACED" "$LOAD" "$QUERY" "$SIZE"; do
    [ -x "$b" ] || { echo "run-profiles.sh: missing $b (build first)" >&2; exit 1; }
done

# cpu_ticks PID: utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

# start_traced DATA_DIR LOG
start_traced() {
    if curl -s -m 1 -o /dev/null "http://127.0.0.1:$QUERY_PORT/ready"; then
        echo "run-profiles.sh: something already listens on 127.0.0.1:$QUERY_PORT" >&2
        exit 1
    fi
    "$TRACED" --data-dir "$1" --grpc-listen "" --http-listen "127.0.0.1:$HTTP_PORT" \
        --query-listen "127.0.0.1:$QUERY_PORT" --log-level warn ${EXTRA[@]+"${EXTRA[@]}"} \
        >>"$2" 2>&1 &
    TRACED_PID=$!
    local deadline=$(($(now_ms) + 60000))
    until curl -sf -m 1 -o /dev/null "http://127.0.0.1:$QUERY_PORT/ready"; do
        if ! kill -0 "$TRACED_PID" 2>/dev/null || [ "$(now_ms)" -gt "$deadline" ]; then
            echo "run-profiles.sh: traced did not become ready; log:" >&2
            tail -20 "$2" >&2
            exit 1
        fi
        sleep 0.1
    done
    log "traced $TRACED_PID ready; data in $1"
}

# settle: wait until traced uses < 5 % of a core over 2 s (LevelDB compaction done).
settle() {
    local t0 c0 c1
    t0=$(now_ms)
    while :; do
        c0=$(cpu_ticks "$TRACED_PID")
        sleep 2
        c1=$(cpu_ticks "$TRACED_PID")
        [ $(((c1 - c0) * 100)) -lt $((HZ * 2 * 5)) ] && break
        if [ $(($(now_ms) - t0)) -gt $((SETTLE_MAX * 1000)) ]; then
            log "traced still busy after $SETTLE_MAX s; going on"
            break
        fi
    done
    log "settled in $((($(now_ms) - t0) / 1000)) s"
}

stop_traced() {
    kill -TERM "$TRACED_PID" 2>/dev/null || true
    local deadline=$(($(now_ms) + 120000))
    while kill -0 "$TRACED_PID" 2>/dev/null; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            echo "run-profiles.sh: traced did not stop in 120 s; killing" >&2
            kill -KILL "$TRACED_PID" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$TRACED_PID" 2>/dev/null || true
    TRACED_PID=
}

# load NAME ARGS...: bench_pload into $WORK/NAME.txt, server CPU into $WORK/NAME.cpu
load() {
    local name=$1 rc=0 c0 c1
    shift
    c0=$(cpu_ticks "$TRACED_PID")
    "$LOAD" --target "127.0.0.1:$QUERY_PORT" --services "$SERVICES" --hours "$HOURS" \
        --variants "$VARIANTS" --seed "$SEED" --end-s "$END_S" $RAW "$@" --progress 30 \
        >"$WORK/$name.txt" || rc=$?
    c1=$(cpu_ticks "$TRACED_PID")
    echo $((c1 - c0)) >"$WORK/$name.cpu"
    [ "$rc" = 0 ] || { echo "run-profiles.sh: bench_pload ($name) failed ($rc)" >&2; cat "$WORK/$name.txt" >&2; exit 1; }
    log "$name: $(kv "$WORK/$name.txt" profiles_ok) profiles in $(kv "$WORK/$name.txt" seconds) s ($(kv "$WORK/$name.txt" profiles_per_s)/s)"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
END_S=$(date +%s)
END_S=$((END_S - END_S % 10))
DATA=$WORK/data

# ---- first hour ----
start_traced "$DATA" "$WORK/traced.log"
log "first ${FIRST_H} h of ${HOURS} h, $SERVICES services, $CONNS connections"
load first --to-h "$FIRST_H" --connections "$CONNS"
settle
stop_traced
"$SIZE" --data-dir "$DATA" >"$WORK/size1.txt"
DU1=$(du -sb "$DATA/profiles" | cut -f1)

# ---- the rest, then queries ----
start_traced "$DATA" "$WORK/traced.log"
log "hours ${FIRST_H}..${HOURS}"
load rest --from-h "$FIRST_H" --connections "$CONNS"
settle
QS=$(kv "$WORK/rest.txt" query_service)
log "bench_pquery: $QS, 1 h and 24 h windows, 1 + $NQ requests each"
qrc=0
"$QUERY" --target "127.0.0.1:$QUERY_PORT" --service "$QS" --end-s "$END_S" \
    --windows 3600,86400 --n "$NQ" --tsv "$WORK/query.tsv" >"$WORK/query.md" 2>"$WORK/query.err" || qrc=$?
cat "$WORK/query.err" >&2
[ "$qrc" = 0 ] || [ "$qrc" = 3 ] || { echo "run-profiles.sh: bench_pquery failed ($qrc)" >&2; exit 1; }
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$TRACED_PID/status" 2>/dev/null || echo 0)
stop_traced
"$SIZE" --data-dir "$DATA" >"$WORK/size2.txt"
DU2=$(du -sb "$DATA/profiles" | cut -f1)

# ---- saturation on a fresh store ----
if [ "$SATURATE" != 0 ]; then
    rm -rf "$WORK/data-sat"
    start_traced "$WORK/data-sat" "$WORK/traced-sat.log"
    log "saturation: $SATURATE s over $((CONNS * 2)) connections"
    load sat --connections $((CONNS * 2)) --duration "$SATURATE"
    stop_traced
fi

# ---- report ----
A=$WORK/first.txt
B=$WORK/rest.txt
P1=$(kv "$A" profiles_ok); P2=$(kv "$B" profiles_ok)
T1=$(kv "$A" samples_ok); T2=$(kv "$B" samples_ok)
R1=$(kv "$A" records_ok); R2=$(kv "$B" records_ok)
D1=$(kv "$WORK/size1.txt" disk_bytes); D2=$(kv "$WORK/size2.txt" disk_bytes)
X1=$(kv "$WORK/size1.txt" approx_bytes); X2=$(kv "$WORK/size2.txt" approx_bytes)
f() { awk "BEGIN { printf \"$1\", $2 }"; }
q() { awk -F'\t' -v w="$1" -v c="$2" '$1 == w { print $c; exit }' "$WORK/query.tsv"; }
cores() { f "%.2f" "$(cat "$WORK/$1.cpu") / $HZ / $(kv "$WORK/$1.txt" seconds)"; }
{
    echo "## traced profiling benchmark"
    echo
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
    echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- data: $SERVICES services x $HOURS h of 10 s Go CPU profiles ending $(date -u -d "@$END_S" +%H:%MZ), seed $SEED, $VARIANTS pre-built variants per service; per profile $(kv "$B" ticks_per_profile) samples (10 ms CPU ticks, samples/count) in $(kv "$B" records_per_profile) pprof Sample records, $(kv "$B" bytes_per_request) bytes per request ($(kv "$B" format), gzipped pprof)"
    echo "- traced peak RSS $(f "%.0f" "$HWM / 1024") MB (second run)"
    echo
    echo "Ingest (POST /ingest, unpaced, keep-alive; samples = CPU ticks; server cores = traced CPU time / load time):"
    echo
    echo "| phase | connections | profiles | seconds | profiles/s | samples/s | records/s | p50 ms | p99 ms | refused | failed | server cores | client cores |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for ph in first rest sat; do
        [ -f "$WORK/$ph.txt" ] || continue
        F=$WORK/$ph.txt
        case $ph in first) d="first ${FIRST_H} h" ;; rest) d="hours ${FIRST_H}-${HOURS}" ;; sat) d="saturation, fresh store, ${SATURATE} s" ;; esac
        echo "| $d | $(kv "$F" connections) | $(kv "$F" profiles_ok) | $(kv "$F" seconds) | $(kv "$F" profiles_per_s) | $(kv "$F" samples_per_s) | $(kv "$F" records_per_s) | $(kv "$F" p50_ms) | $(kv "$F" p99_ms) | $(kv "$F" requests_refused) | $(kv "$F" requests_failed) | $(cores $ph) | $(kv "$F" client_cores) |"
    done
    echo
    echo "Store (<data-dir>/profiles after SIGTERM; bench_psize: files after the log replay, LevelDB estimate; du -sb before it):"
    echo
    echo "| after | profiles | samples | records | files MB | du MB | bytes/sample (files) | bytes/sample (estimate) | bytes/record (files) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    echo "| ${FIRST_H} h | $P1 | $T1 | $R1 | $(f "%.1f" "$D1 / 1e6") | $(f "%.1f" "$DU1 / 1e6") | $(f "%.2f" "$D1 / $T1") | $(f "%.2f" "$X1 / $T1") | $(f "%.2f" "$D1 / $R1") |"
    echo "| ${HOURS} h | $((P1 + P2)) | $((T1 + T2)) | $((R1 + R2)) | $(f "%.1f" "$D2 / 1e6") | $(f "%.1f" "$DU2 / 1e6") | $(f "%.2f" "$D2 / ($T1 + $T2)") | $(f "%.2f" "$X2 / ($T1 + $T2)") | $(f "%.2f" "$D2 / ($R1 + $R2)") |"
    echo "| marginal, hours ${FIRST_H}-${HOURS} | $P2 | $T2 | $R2 | $(f "%.1f" "($D2 - $D1) / 1e6") | $(f "%.1f" "($DU2 - $DU1) / 1e6") | $(f "%.2f" "($D2 - $D1) / $T2") | $(f "%.2f" "($X2 - $X1) / $T2") | $(f "%.2f" "($D2 - $D1) / $R2") |"
    echo
    echo "SelectMergeStacktraces (Connect, application/proto, max_nodes 8192, {service_name=\"$QS\"}, process_cpu:cpu:nanoseconds:cpu:nanoseconds; one connection, sequential; ok = 200 with > 1 name and total > 0):"
    echo
    cat "$WORK/query.md"
    echo
    TOT_S=$(awk -v a="$(kv "$A" seconds)" -v b="$(kv "$B" seconds)" 'BEGIN { print a + b }')
    RATE=$(f "%.0f" "($P1 + $P2) / $TOT_S")
    SATR=$( [ -f "$WORK/sat.txt" ] && kv "$WORK/sat.txt" profiles_per_s || echo "")
    MARG=$(f "%.2f" "($D2 - $D1) / $T2")
    Q1=$(q 3600 5); Q24=$(q 86400 5)
    echo "Targets (2 cores):"
    awk -v v="$RATE" -v s="$SATR" 'BEGIN { printf "- ingest %s profiles/s over the whole history%s >= 1000 [%s]\n", v, (s != "" ? sprintf(" (saturation run %s/s)", s) : ""), (v + 0 >= 1000 || s + 0 >= 1000) ? "ok" : "MISS" }'
    awk -v v="$MARG" 'BEGIN { printf "- %s bytes stored per sample after the first hour (marginal, files) <= 8 [%s]\n", v, (v + 0 <= 8) ? "ok" : "MISS" }'
    awk -v v="$Q1" 'BEGIN { printf "- 1 h merge p50 %s ms < 150 ms [%s]\n", v, (v != "" && v + 0 < 150) ? "ok" : "MISS" }'
    awk -v v="$Q24" 'BEGIN { printf "- 24 h merge p50 %s ms < 1500 ms [%s]\n", v, (v != "" && v + 0 < 1500) ? "ok" : "MISS" }'
    if [ "$qrc" = 3 ]; then
        echo
        echo "Some answers were not ok; bench_pquery printed:"
        echo
        echo '```'
        head -12 "$WORK/query.err"
        echo '```'
    fi
} | tee "${OUT:-/dev/null}"
