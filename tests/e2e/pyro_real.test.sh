#!/usr/bin/env bash
# pyro_real: the Pyroscope path end to end with REAL producers and consumers.
#
# Producers: goprof/main.go -real (standard library only: runtime/pprof CPU with a dominant
# leaf main.hotLeafE2E and pprof labels span_id/worker set with pprof.Do, heap with alloc_*/
# inuse_*, mutex, block; posted like pyroscope-go: multipart + sample_type_config), run twice
# (team=a, team=b), and nodeprof.mjs (@pyroscope/nodejs, hot function hotNodeE2E).
# Consumers: the querier.v1 API called like Grafana's datasource (Connect, application/proto)
# and like the Drilldown app (JSON), `go tool pprof` on SelectMergeProfile and on
# `tracectl profiles export`, and `tracectl profiles types|labels|top`.
# Every expected number comes from the bytes the Go program posted (it writes them to disk),
# read with `go tool pprof -raw/-top`, never from traced. Queries go through pyro_real.mjs (the
# pyro_tool.mjs codec; one node process per call or per batch of calls). Bad input (corrupt, truncated,
# gzip bomb, out-of-range index, invalid label names, huge maxNodes) must get the documented
# 4xx while the data already there stays exactly the same and the daemon stays up.
source "$(dirname "$0")/lib.sh"
e2e_init pyro_real

CPU=process_cpu:cpu:nanoseconds:cpu:nanoseconds
GO_TYPES="process_cpu:samples:count:cpu:nanoseconds $CPU
memory:alloc_objects:count:space:bytes memory:alloc_space:bytes:space:bytes
memory:inuse_objects:count:space:bytes memory:inuse_space:bytes:space:bytes
mutex:contentions:count:contentions:count mutex:delay:nanoseconds:contentions:count
block:contentions:count:contentions:count block:delay:nanoseconds:contentions:count"
gopprof() { timeout -k 2 60 go tool pprof "$@" 2>/dev/null; }

if ! command -v go >/dev/null; then
    fail "go is not installed (scripts/setup-debian.sh installs golang-go)"
    finish
    exit 1
fi
start_or_bail

# ---- helpers ----
# pcall METHOD REQMSG JSON NAME: proto, as Grafana's Go client; jcall METHOD JSON NAME: JSON, as
# the Drilldown app. Both print the HTTP status and leave $E2E_TMP/NAME.{body,hdr,json,names,
# stats,ssum,series} (pyro_real.mjs: one node process per call).
RESP_OF() {
    case $1 in
    ProfileTypes) echo ProfileTypesResponse ;; LabelNames | LabelValues) echo NamesResponse ;;
    SelectSeries) echo SelectSeriesResponse ;; Series) echo SeriesResponse ;;
    SelectMergeStacktraces | SelectMergeSpanProfile) echo SelectMergeStacktracesResponse ;;
    *) echo - ;;
    esac
}
pcall() {
    timeout -k 2 30 node "$TD_E2E_DIR/pyro_real.mjs" "$QUERY" "$1" "$2" "$(RESP_OF "$1")" "$3" "$E2E_TMP/$4"
}
jcall() {
    timeout -k 2 30 node "$TD_E2E_DIR/pyro_real.mjs" "$QUERY" "$1" json - "$2" "$E2E_TMP/$3"
}
# batch: the calls given on stdin as "METHOD<TAB>REQMSG<TAB>JSON<TAB>NAME" lines (proto), made by
# one node process; the answers land in the same files as pcall's
batch() {
    local f=$E2E_TMP/batch.$RANDOM m r j n
    while IFS=$'\t' read -r m r j n; do
        printf '%s\t%s\t%s\t%s\t%s\n' "$m" "$r" "$(RESP_OF "$m")" "$j" "$E2E_TMP/$n"
    done >"$f"
    timeout -k 2 60 node "$TD_E2E_DIR/pyro_real.mjs" "$QUERY" --batch "$f" >"$f.out"
}
dec() { cat "$E2E_TMP/$2.json"; }
fgstats() { cat "$E2E_TMP/$1.stats"; }
rawtxt() { # FILE: `go tool pprof -raw FILE`, computed once
    [ -s "$1.raw" ] || gopprof -raw "$1" >"$1.raw"
    cat "$1.raw"
}
# raw_sum TYPE FILTER FILE...: sum of the TYPE column over the samples of the pprof FILEs
# (go tool pprof -raw); FILTER "k=v" keeps samples carrying that string label, "-" all.
raw_sum() {
    local t=$1 f=$2 file
    shift 2
    for file; do rawtxt "$file"; done | awk -v t="$t" -v f="$f" '
        function flush() { if (have && (f == "-" || hit)) sum += val; have = 0; hit = 0 }
        BEGIN { split(f, kv, "="); want = kv[1] ":[" kv[2] "]" }
        /^Samples:/ { flush(); ins = 1; hdr = 1; next }
        /^Locations/ { flush(); ins = 0; next }
        ins && hdr { col = 0; for (i = 1; i <= NF; i++) { split($i, a, "/"); if (a[1] == t) col = i } hdr = 0; next }
        ins && /^ *-?[0-9]+ .*:/ { flush(); v = $col; sub(/:$/, "", v); val = v + 0; have = 1; next }
        ins { for (i = 1; i <= NF; i++) if ($i == want) hit = 1 }
        END { flush(); printf "%.0f\n", sum }'
}
# top_rows ARGS...: `go tool pprof -top` data rows "flat cum name" (all nodes, no dropping)
top_rows() {
    gopprof -top -nodecount=100000 -nodefraction=0 -edgefraction=0 "$@" |
        awk 'f { print $1, $4, $6 } /^ *flat  flat%/ { f = 1 }'
}
series_sum() { local f=${1%.json}; cat "${f%.body}.ssum"; }
fg_names() { local f=${1%.json}; cat "${f%.body}.names"; }
wsum() { awk -F'\t' -v l="worker=$2" '$1 == l { print $2 }' "$E2E_TMP/$1.series"; }

# ---- producers: the Go program (twice, team=a and team=b) and @pyroscope/nodejs ----
GOPROF=$E2E_TMP/goprof
if ! quiet env GOFLAGS= GOCACHE="$E2E_TMP/gocache" timeout 240 go build -o "$GOPROF" \
    "$TD_E2E_DIR/goprof/main.go"; then
    fail "go build goprof"
    finish
    exit 1
fi
mkdir -p "$E2E_TMP/a" "$E2E_TMP/b"
# the Node program runs meanwhile (both run for a fixed wall time). Go's asynchronous preemption
# is off for the Go program: on a loaded machine its signal handler (runtime.asyncPreempt) would
# otherwise show up as a leaf of the hot and cold loops and could outweigh them.
node_run 60 nodeprof.mjs "$QUERY" nodereal >"$E2E_TMP/nodeprof.out" 2>&1 &
NODE_JOB=$!
check "goprof -real posts cpu, heap, mutex, block (team=a)" \
    quiet env GODEBUG=asyncpreemptoff=1 timeout 60 "$GOPROF" -url "$QUERY" -app goreal -tags "env=e2e,team=a" -real "$E2E_TMP/a"
check "goprof -real posts cpu, heap, mutex, block (team=b)" \
    quiet env GODEBUG=asyncpreemptoff=1 timeout 60 "$GOPROF" -url "$QUERY" -app goreal -tags "env=e2e,team=b" -real "$E2E_TMP/b"
A=$E2E_TMP/a
B=$E2E_TMP/b
NODE_OK=0
if wait "$NODE_JOB"; then
    NODE_OK=1
    pass "@pyroscope/nodejs profiled a Node program and pushed"
else
    fail "@pyroscope/nodejs profiled a Node program and pushed (npm ci in tests/e2e?): $(tail -c 300 "$E2E_TMP/nodeprof.out")"
fi

now=$(date +%s)
RANGE='"start":"'$(((now - 3600) * 1000))'","end":"'$(((now + 60) * 1000))'"'
GOSEL='{service_name=\"goreal\"}'
file_of() { # PROFILE_TYPE -> the kind file name
    case $1 in process_cpu:*) echo cpu ;; memory:*) echo heap ;; mutex:*) echo mutex ;; block:*) echo block ;; esac
}

# ---- Grafana datasource (proto): Save & test, type picker, autocomplete ----
expect_eq "Save & test: ProfileTypes(start=1000,end=4000) proto -> 200" \
    "$(pcall ProfileTypes ProfileTypesRequest '{"start":1000,"end":4000}' health)" 200
expect_eq "Save & test answers application/proto" "$(hdr health Content-Type)" application/proto
expect_eq "ProfileTypes over the data (proto) -> 200" "$(pcall ProfileTypes ProfileTypesRequest "{$RANGE}" types)" 200
types=$(dec ProfileTypesResponse types)
for t in $GO_TYPES; do
    check "ProfileTypes lists Go type $t" grep -q "\"ID\":\"$t\"" <<<"$types"
done
if [ "$NODE_OK" = 1 ]; then
    for t in wall:wall:nanoseconds:wall:nanoseconds wall:cpu:nanoseconds:wall:nanoseconds \
        memory:inuse_space:bytes:inuse_space:bytes; do
        check "ProfileTypes lists Node type $t" grep -q "\"ID\":\"$t\"" <<<"$types"
    done
fi
expect_eq "LabelNames (proto, matcher as Grafana's editor)" \
    "$(pcall LabelNames LabelNamesRequest '{"matchers":["'"$GOSEL"'"],'"$RANGE"'}' names)" 200
names=$(dec NamesResponse names)
for n in service_name env team worker pyroscope_spy; do
    check "LabelNames has $n" grep -q "\"$n\"" <<<"$names"
done
check "LabelNames: span_id is not a series label" bash -c "! grep -q '\"span_id\"' <<<'$names'"
expect_eq "LabelValues worker (proto)" \
    "$(pcall LabelValues LabelValuesRequest '{"name":"worker","matchers":["'"$GOSEL"'"],'"$RANGE"'}' vworker)" 200
expect_eq "LabelValues worker = the pprof.Do labels" "$(dec NamesResponse vworker)" '{"names":["cold","hot"]}'
expect_eq "LabelValues team (proto)" \
    "$(pcall LabelValues LabelValuesRequest '{"name":"team","matchers":["'"$GOSEL"'"],'"$RANGE"'}' vteam)" 200
expect_eq "LabelValues team" "$(dec NamesResponse vteam)" '{"names":["a","b"]}'
expect_eq "LabelValues team narrowed by {team=\"a\"}" \
    "$(pcall LabelValues LabelValuesRequest '{"name":"team","matchers":["{service_name=\"goreal\",team=\"a\"}"],'"$RANGE"'}' vteama)" 200
expect_eq "LabelValues team narrowed" "$(dec NamesResponse vteama)" '{"names":["a"]}'

# ---- SelectSeries sums = the totals in the posted pprofs, for every Go type ----
declare -A TOT
for t in $GO_TYPES; do
    st=$(cut -d: -f2 <<<"$t")
    printf 'SelectSeries\tSelectSeriesRequest\t%s\tss_%s\n' \
        '{"profileTypeID":"'$t'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"groupBy":["service_name"],"step":15,"exemplarType":1}' "${t//:/_}"
    printf 'SelectSeries\tSelectSeriesRequest\t%s\tssa_%s\n' \
        '{"profileTypeID":"'$t'","labelSelector":"{service_name=\"goreal\",team=\"a\"}",'"$RANGE"',"step":15}' "${t//:/_}"
done | batch
for t in $GO_TYPES; do
    st=$(cut -d: -f2 <<<"$t")
    k=$(file_of "$t")
    TOT[$t]=$(raw_sum "$st" - "$A/$k.pb.gz" "$B/$k.pb.gz")
    ta=$(raw_sum "$st" - "$A/$k.pb.gz")
    expect_eq "SelectSeries $t sum = posted total" "$(series_sum "$E2E_TMP/ss_${t//:/_}.json")" "${TOT[$t]}"
    expect_eq "SelectSeries $t {team=\"a\"} narrows to team a's total" "$(series_sum "$E2E_TMP/ssa_${t//:/_}.json")" "$ta"
done
check "cpu total is non-zero" test "${TOT[$CPU]:-0}" -gt 0

# group_by worker (+ limit, as Grafana's "metrics" query) against the label totals
HOT=$(raw_sum cpu worker=hot "$A/cpu.pb.gz" "$B/cpu.pb.gz")
COLD=$(raw_sum cpu worker=cold "$A/cpu.pb.gz" "$B/cpu.pb.gz")
check "the Go program's hot part dominates (hot $HOT > 2 x cold $COLD)" test "$HOT" -gt $((2 * COLD))
expect_eq "SelectSeries group_by worker (proto)" \
    "$(pcall SelectSeries SelectSeriesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"groupBy":["worker"],"step":15}' ssw)" 200
expect_eq "group_by worker: hot series sum" "$(wsum ssw hot)" "$HOT"
expect_eq "group_by worker: cold series sum" "$(wsum ssw cold)" "$COLD"
expect_eq "SelectSeries group_by worker limit 1 (proto)" \
    "$(pcall SelectSeries SelectSeriesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"groupBy":["worker"],"step":15,"limit":1}' ssl)" 200
expect_eq "limit 1 keeps one series" "$(wc -l <"$E2E_TMP/ssl.series")" 1
expect_eq "limit 1 keeps the top series (worker=hot) with its sum" "$(wsum ssl hot)" "$HOT"
expect_eq "SelectSeries step 60 (proto) -> 200" \
    "$(pcall SelectSeries SelectSeriesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"step":60}' ss60)" 200
expect_eq "step 60: the same sum" "$(series_sum "$E2E_TMP/ss60.json")" "${TOT[$CPU]}"
check "step 60: point timestamps are multiples of 60 s from start" \
    awk -F'\t' -v s=$(((now - 3600) * 1000)) '{ n = split($3, p, ";"); for (i = 1; i <= n; i++) { split(p[i], tv, "="); if ((tv[1] - s) % 60000) bad = 1 } } END { exit bad + (NR == 0) }' "$E2E_TMP/ss60.series"

# ---- time: each posted profile lands on the step boundary its own time_nanos gives ----
ptime_ns() { # FILE: the profile's time_nanos as go tool pprof prints it
    date -d "$(rawtxt "$1" | sed -n 's/^Time: \(.*\) UTC$/\1/p' | head -1)" +%s%N
}
START_MS=$(((now - 3600) * 1000))
for k in cpu heap; do
    case $k in cpu) t=$CPU st=cpu ;; heap) t=memory:alloc_space:bytes:space:bytes st=alloc_space ;; esac
    for team in a b; do
        f=$E2E_TMP/$team/$k.pb.gz
        ts=$(ptime_ns "$f")
        # first boundary start + n*15 s at or after ts (in ms)
        want_ts=$(awk -v s="$START_MS" -v t="$ts" 'BEGIN { d = t / 1e6 - s; n = int(d / 15000); if (n * 15000 < d) n++; printf "%.0f", s + n * 15000 }')
        pcall SelectSeries SelectSeriesRequest '{"profileTypeID":"'$t'","labelSelector":"{service_name=\"goreal\",team=\"'$team'\"}",'"$RANGE"',"step":15}' "pt_$k$team" >/dev/null
        expect_eq "SelectSeries $st team $team: one point at the step boundary after time_nanos, value = total" \
            "$(cut -f3 "$E2E_TMP/pt_$k$team.series" | paste -sd';')" \
            "$want_ts=$(raw_sum "$st" - "$f")"
    done
done
# a range that starts after team a's profiles and before team b's selects team b only
tsa=$(ptime_ns "$A/heap.pb.gz")
tsb=$(ptime_ns "$B/cpu.pb.gz")
mid_ms=$(awk -v a="$tsa" -v b="$tsb" 'BEGIN { printf "%.0f", (a + b) / 2e6 }')
check "the two runs are apart in time (team a heap $tsa < team b cpu $tsb)" test "$tsa" -lt "$tsb"
expect_eq "SelectMergeStacktraces over [between the runs, now] (proto)" \
    "$(pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'","start":"'$mid_ms'","end":"'$(((now + 60) * 1000))'"}' fgtime)" 200
read -r gtotal _ _ <<<"$(fgstats fgtime)"
expect_eq "time range after run a: total = team b's cpu total" "$gtotal" "$(raw_sum cpu - "$B/cpu.pb.gz")"
expect_eq "SelectMergeStacktraces over [start, between the runs] (proto)" \
    "$(pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'","start":"'$START_MS'","end":"'$mid_ms'"}' fgtime2)" 200
read -r gtotal _ _ <<<"$(fgstats fgtime2)"
expect_eq "time range before run b: total = team a's cpu total" "$gtotal" "$(raw_sum cpu - "$A/cpu.pb.gz")"

# ---- Diff team a vs team b (JSON, Drilldown's comparison view) ----
expect_eq "Diff team a vs team b (JSON)" "$(jcall Diff '{"left":{"profileTypeID":"'$CPU'","labelSelector":"{service_name=\"goreal\",team=\"a\"}",'"$RANGE"'},"right":{"profileTypeID":"'$CPU'","labelSelector":"{service_name=\"goreal\",team=\"b\"}",'"$RANGE"'}}' diff)" 200
expect_eq "Diff ticks = the two runs' posted totals" \
    "$(jsv "$E2E_TMP/diff.body" 'j.flamegraph.leftTicks + " " + j.flamegraph.rightTicks')" \
    "$(raw_sum cpu - "$A/cpu.pb.gz") $(raw_sum cpu - "$B/cpu.pb.gz")"

# ---- flame graphs: the hot function is the heaviest leaf, label filters narrow ----
# heaviest leaf by go tool pprof over the posted files (flat, merged over both runs)
heaviest() { # SAMPLE_INDEX KIND -> "name flat"
    top_rows -sample_index="$1" -unit=minimum "$A/$2.pb.gz" "$B/$2.pb.gz" | head -1 | awk '{ print $3 }'
}
FG_SPECS=("$CPU cpu cpu" "memory:alloc_space:bytes:space:bytes alloc_space heap"
    "mutex:delay:nanoseconds:contentions:count delay mutex" "block:delay:nanoseconds:contentions:count delay block")
for spec in "${FG_SPECS[@]}"; do
    read -r t si k <<<"$spec"
    printf 'SelectMergeStacktraces\tSelectMergeStacktracesRequest\t%s\tfg_%s\n' \
        '{"profileTypeID":"'$t'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"maxNodes":16384}' "$si$k"
done | batch
for spec in "${FG_SPECS[@]}"; do
    read -r t si k <<<"$spec"
    want=$(heaviest "$si" "$k")
    read -r gtotal gname gself <<<"$(fgstats fg_$si$k)"
    expect_eq "$t flame graph total = posted total" "$gtotal" "${TOT[$t]}"
    # ties in flat are possible for mutex/block: compare flat values, as go tool pprof shows them
    rows=$(top_rows -sample_index="$si" -unit=minimum "$A/$k.pb.gz" "$B/$k.pb.gz")
    gflat=$(awk -v n="$gname" '$3 == n { print $1 }' <<<"$rows")
    wflat=$(head -1 <<<"$rows" | awk '{ print $1 }')
    expect_eq "$t heaviest leaf ($gname) has go tool pprof's top flat ($want)" "$gflat" "$wflat"
done
read -r gtotal gname gself <<<"$(fgstats fg_cpucpu)"
expect_eq "cpu: the known hot function main.hotLeafE2E is the heaviest leaf" "$gname" main.hotLeafE2E
want_flat=$(top_rows -sample_index=cpu -unit=ns "$A/cpu.pb.gz" "$B/cpu.pb.gz" | awk '$3 == "main.hotLeafE2E" { sub(/ns$/, "", $1); print $1 }')
expect_eq "cpu: main.hotLeafE2E self = its flat in the posted pprofs" "$gself" "$want_flat"
read -r _ hname _ <<<"$(fgstats fg_alloc_spaceheap)"
expect_eq "alloc_space: the known allocator main.allocHeavyE2E is the heaviest leaf" "$hname" main.allocHeavyE2E

expect_eq "label filter {worker=\"cold\"} (proto)" \
    "$(pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$CPU'","labelSelector":"{service_name=\"goreal\",worker=\"cold\"}",'"$RANGE"',"maxNodes":16384}' fgcold)" 200
read -r gtotal gname _ <<<"$(fgstats fgcold)"
expect_eq "worker=cold: total = the cold samples' sum" "$gtotal" "$COLD"
expect_eq "worker=cold: heaviest leaf main.coldLeafE2E" "$gname" main.coldLeafE2E
check "worker=cold: no main.hotLeafE2E" bash -c "! grep -qx main.hotLeafE2E <<<\"\$(cat)\"" < <(fg_names "$E2E_TMP/fgcold.json")
expect_eq "label filter {team=\"b\"} (JSON, as Drilldown)" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$CPU'","labelSelector":"{service_name=\"goreal\",team=\"b\"}",'"$RANGE"'}' fgteamb)" 200
read -r gtotal _ _ <<<"$(fgstats fgteamb)"
expect_eq "team=b: total = team b's posted total" "$gtotal" "$(raw_sum cpu - "$B/cpu.pb.gz")"
expect_eq "label filter with regex {worker=~\"h.*\"}" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$CPU'","labelSelector":"{service_name=\"goreal\",worker=~\"h.*\"}",'"$RANGE"'}' fgre)" 200
read -r gtotal _ _ <<<"$(fgstats fgre)"
expect_eq "worker=~h.*: total = the hot samples' sum" "$gtotal" "$HOT"

# maxNodes as Grafana sends it: truncation keeps the total
expect_eq "SelectMergeStacktraces maxNodes=4 (proto)" \
    "$(pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"maxNodes":4}' fg4)" 200
read -r gtotal _ _ <<<"$(fgstats fg4)"
expect_eq "maxNodes=4: total unchanged" "$gtotal" "${TOT[$CPU]}"
check "maxNodes=4: fewer names than the full graph" \
    test "$(fg_names "$E2E_TMP/fg4.json" | wc -l)" -lt "$(fg_names "$E2E_TMP/fg_cpucpu.json" | wc -l)"

# ---- span profiles: samples labelled span_id by pprof.Do ----
SPAN_A=00000000000000a1
SPAN_B=00000000000000b2
SA=$(raw_sum cpu span_id=$SPAN_A "$A/cpu.pb.gz" "$B/cpu.pb.gz")
SB=$(raw_sum cpu span_id=$SPAN_B "$A/cpu.pb.gz" "$B/cpu.pb.gz")
expect_eq "SelectMergeSpanProfile span a1 (proto, as Grafana)" \
    "$(pcall SelectMergeSpanProfile SelectMergeSpanProfileRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'","spanSelector":["'$SPAN_A'"],'"$RANGE"',"maxNodes":16384}' spa)" 200
read -r gtotal gname _ <<<"$(fgstats spa)"
expect_eq "span a1: total = the span's samples in the posted pprofs" "$gtotal" "$SA"
expect_eq "span a1: heaviest leaf main.hotLeafE2E" "$gname" main.hotLeafE2E
check "span a1: none of span b2's stacks (no main.coldLeafE2E)" \
    bash -c "! grep -qx main.coldLeafE2E" < <(fg_names "$E2E_TMP/spa.json")
expect_eq "SelectMergeSpanProfile span b2 upper-case hex (proto)" \
    "$(pcall SelectMergeSpanProfile SelectMergeSpanProfileRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'","spanSelector":["00000000000000B2"],'"$RANGE"'}' spb)" 200
read -r gtotal gname _ <<<"$(fgstats spb)"
expect_eq "span b2: total" "$gtotal" "$SB"
check "span b2: no main.hotLeafE2E" bash -c "! grep -qx main.hotLeafE2E" < <(fg_names "$E2E_TMP/spb.json")
expect_eq "SelectMergeSpanProfile both spans (JSON)" \
    "$(jcall SelectMergeSpanProfile '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'","spanSelector":["'$SPAN_A'","'$SPAN_B'"],'"$RANGE"'}' spab)" 200
read -r gtotal _ _ <<<"$(fgstats spab)"
expect_eq "both spans: total = a1 + b2" "$gtotal" "$((SA + SB))"
expect_eq "SelectMergeStacktraces span_selector field (proto)" \
    "$(pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'","spanSelector":["'$SPAN_A'"],'"$RANGE"'}' spsel)" 200
read -r gtotal _ _ <<<"$(fgstats spsel)"
expect_eq "span_selector on SelectMergeStacktraces: total = a1" "$gtotal" "$SA"
expect_eq "unknown span (proto) -> 200" \
    "$(pcall SelectMergeSpanProfile SelectMergeSpanProfileRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'","spanSelector":["00000000000000ff"],'"$RANGE"'}' spnone)" 200
read -r gtotal _ _ <<<"$(fgstats spnone)"
expect_eq "unknown span: empty flame graph (total 0)" "$gtotal" 0

# legacy profile_id label (older Go SDKs): renamed to span_id on ingest (API-CONTRACT §5.3, §8)
SPAN_C=00000000000000c3
quiet timeout 30 "$GOPROF" -labeled "$E2E_TMP/pid.pb.gz" -lk profile_id -lv $SPAN_C
expect_eq "pprof with a profile_id label posted (multipart) -> 200" "$(http pidpost -X POST \
    -F "profile=@$E2E_TMP/pid.pb.gz;filename=profile.pprof" "$QUERY/ingest?name=gospan&spyName=gospy")" 200
expect_eq "SelectMergeSpanProfile on the profile_id value (proto)" \
    "$(pcall SelectMergeSpanProfile SelectMergeSpanProfileRequest '{"profileTypeID":"'$CPU'","labelSelector":"{service_name=\"gospan\"}","spanSelector":["'$SPAN_C'"],'"$RANGE"'}' spc)" 200
read -r gtotal _ _ <<<"$(fgstats spc)"
want=$(raw_sum cpu profile_id=$SPAN_C "$E2E_TMP/pid.pb.gz")
check "the profile_id profile has samples ($want ns)" test "$want" -gt 0
expect_eq "profile_id samples are span c3's (total = the file's profile_id=c3 sum)" "$gtotal" "$want"
check "profile_id is not a series label" bash -c "[ \"\$(cat)\" = '{}' ]" < <(pcall LabelValues LabelValuesRequest \
    '{"name":"profile_id","matchers":["{service_name=\"gospan\"}"],'"$RANGE"'}' pidv >/dev/null; cat "$E2E_TMP/pidv.json")

# ---- SelectMergeProfile read by go tool pprof: same functions/values as the posted pprofs ----
for spec in "$CPU cpu cpu" "memory:alloc_space:bytes:space:bytes alloc_space heap" \
    "mutex:delay:nanoseconds:contentions:count delay mutex"; do
    read -r t si k <<<"$spec"
    expect_eq "SelectMergeProfile $t (proto) -> 200" \
        "$(pcall SelectMergeProfile SelectMergeProfileRequest '{"profileTypeID":"'$t'","labelSelector":"'"$GOSEL"'",'"$RANGE"'}' "mp_$si$k")" 200
    gzip -c "$E2E_TMP/mp_$si$k.body" >"$E2E_TMP/mp_$si$k.pb.gz"
    top_rows -unit=minimum "$E2E_TMP/mp_$si$k.pb.gz" | sort >"$E2E_TMP/mp_$si$k.top"
    top_rows -sample_index="$si" -unit=minimum "$A/$k.pb.gz" "$B/$k.pb.gz" | sort >"$E2E_TMP/want_$si$k.top"
    check "go tool pprof -top reads SelectMergeProfile $t" test -s "$E2E_TMP/mp_$si$k.top"
    if diff "$E2E_TMP/want_$si$k.top" "$E2E_TMP/mp_$si$k.top" >"$E2E_TMP/mp_$si$k.diff"; then
        pass "SelectMergeProfile $t: every function's flat and cum = go tool pprof on the posted files"
    else
        fail "SelectMergeProfile $t: go tool pprof -top differs from the posted files (want < > got):"
        head -20 "$E2E_TMP/mp_$si$k.diff" | sed 's/^/    | /'
    fi
done
first=$(top_rows -unit=ns "$E2E_TMP/mp_cpucpu.pb.gz" | head -1)
check "go tool pprof -top on SelectMergeProfile: main.hotLeafE2E first ($first)" \
    test "$(awk '{ print $3 }' <<<"$first")" = main.hotLeafE2E

# ---- the Drilldown app's JSON calls ----
expect_eq "SelectSeries (JSON, Drilldown)" "$(jcall SelectSeries '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"step":15,"groupBy":["team"],"aggregation":"TIME_SERIES_AGGREGATION_TYPE_SUM"}' serj)" 200
expect_eq "SelectSeries JSON sum" "$(series_sum "$E2E_TMP/serj.body")" "${TOT[$CPU]}"
expect_eq "LabelNames (JSON, allow-utf8-labelnames)" \
    "$(http namesj -X POST -H 'Content-Type: application/json' -H 'Accept: application/json; allow-utf8-labelnames=true' \
        -d '{"matchers":["'"$GOSEL"'"],'"$RANGE"'}' "$QUERY/querier.v1.QuerierService/LabelNames")" 200
check "LabelNames JSON lists worker" grep -q '"worker"' "$E2E_TMP/namesj.body"
expect_eq "SelectMergeStacktraces (JSON, sandwich format ignored)" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"format":"PROFILE_FORMAT_SANDWICH","sandwichFunction":"main.hotLeafE2E"}' fgj)" 200
read -r gtotal gname _ <<<"$(fgstats fgj)"
expect_eq "JSON flame graph: total and heaviest leaf" "$gtotal $gname" "${TOT[$CPU]} main.hotLeafE2E"
expect_eq "GetProfileStats (JSON)" "$(jcall GetProfileStats '{}' stats)" 200
check "GetProfileStats: dataIngested" grep -q '"dataIngested":true' "$E2E_TMP/stats.body"
expect_eq "/pyroscope/render (ms timestamps, format=json)" "$(http render -G "$QUERY/pyroscope/render" \
    --data-urlencode "query=$CPU{service_name=\"goreal\"}" --data-urlencode "from=$(((now - 3600) * 1000))" \
    --data-urlencode "until=$(((now + 60) * 1000))" --data-urlencode "format=json")" 200
expect_eq "render numTicks = posted total" "$(jsv "$E2E_TMP/render.body" 'j.flamebearer.numTicks')" "${TOT[$CPU]}"
expect_eq "render timeline sums to the posted total" \
    "$(jsv "$E2E_TMP/render.body" 'j.timeline.samples.reduce((a, b) => a + b, 0)')" "${TOT[$CPU]}"

expect_eq "/pyroscope/render groupBy=worker" "$(http rgroup -G "$QUERY/pyroscope/render" \
    --data-urlencode "query=$CPU{service_name=\"goreal\"}" --data-urlencode "from=now-1h" --data-urlencode "until=now" \
    --data-urlencode "groupBy=worker")" 200
expect_eq "render groups: hot and cold timelines sum to the label totals" \
    "$(jsv "$E2E_TMP/rgroup.body" '["hot", "cold"].map(k => j.groups && j.groups[k] ? j.groups[k].samples.reduce((a, b) => a + b, 0) : "none").join(" ")')" \
    "$HOT $COLD"

# ---- @pyroscope/nodejs: the known hot function is the heaviest leaf ----
if [ "$NODE_OK" = 1 ]; then
    for t in wall:cpu:nanoseconds:wall:nanoseconds wall:wall:nanoseconds:wall:nanoseconds; do
        pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$t'","labelSelector":"{service_name=\"nodereal\"}",'"$RANGE"',"maxNodes":16384}' "nfg" >/dev/null
        read -r gtotal gname _ <<<"$(fgstats nfg)"
        check "Node $t: heaviest leaf is hotNodeE2E (got '$gname', total $gtotal)" \
            bash -c "[[ '$gname' == hotNodeE2E* || '$gname' == *:hotNodeE2E* ]]"
    done
    pcall LabelNames LabelNamesRequest '{"matchers":["{service_name=\"nodereal\"}"],'"$RANGE"'}' nnames >/dev/null
    nn=$(dec NamesResponse nnames)
    check "Node LabelNames (proto, Grafana's client): env listed" grep -q '"env"' <<<"$nn"
    check "Node LabelNames (proto, no allow-utf8-labelnames): dotted otel.scope.name hidden" \
        bash -c "! grep -q 'otel.scope.name' <<<'$nn'"
    http nnamesj -X POST -H 'Content-Type: application/json' -H 'Accept: application/json; allow-utf8-labelnames=true' \
        -d '{"matchers":["{service_name=\"nodereal\"}"],'"$RANGE"'}' "$QUERY/querier.v1.QuerierService/LabelNames" >/dev/null
    check "Node LabelNames (JSON, allow-utf8-labelnames): otel.scope.name listed" grep -q '"otel.scope.name"' "$E2E_TMP/nnamesj.body"
    expect_eq "Node: label filter {env=\"nope\"} narrows to nothing" \
        "$(jcall SelectMergeStacktraces '{"profileTypeID":"wall:cpu:nanoseconds:wall:nanoseconds","labelSelector":"{service_name=\"nodereal\",env=\"nope\"}",'"$RANGE"'}' nfgnone)" 200
    read -r gtotal _ _ <<<"$(fgstats nfgnone)"
    expect_eq "Node: {env=\"nope\"} total 0" "$gtotal" 0
fi

# ---- tracectl profiles against the real daemon ----
out=$(tracectl profiles types 2>&1)
for t in $CPU memory:alloc_space:bytes:space:bytes mutex:delay:nanoseconds:contentions:count block:delay:nanoseconds:contentions:count; do
    check "tracectl profiles types lists $t" grep -q "^$t" <<<"$out"
done
expect_eq "tracectl profiles labels worker" "$(tracectl profiles labels worker 2>&1 | tr '\n' ' ')" "cold hot "
check "tracectl profiles labels lists team" grep -qx team <<<"$(tracectl profiles labels 2>&1)"
out=$(tracectl profiles top --type "$CPU" --query '{service_name="goreal"}' 2>&1)
row=$(awk '/^ *flat  flat%/ { f = 1; next } f { print; exit }' <<<"$out")
check "tracectl profiles top: heaviest function main.hotLeafE2E with flat $want_flat ($row)" \
    bash -c "[[ \$(awk '{print \$1, \$6}' <<<'$row') == '$want_flat main.hotLeafE2E' ]]"
out=$(tracectl profiles top --type "$CPU" --query '{service_name="goreal"}' --span-id $SPAN_B 2>&1)
row=$(awk '/^ *flat  flat%/ { f = 1; next } f { print; exit }' <<<"$out")
check "tracectl profiles top --span-id b2: main.coldLeafE2E first ($row)" bash -c "[[ '$row' == *' main.coldLeafE2E' ]]"
check "tracectl profiles top --span-id b2: no main.hotLeafE2E" bash -c "! grep -q 'main.hotLeafE2E' <<<'$out'"
tracectl profiles export --type "$CPU" --query '{service_name="goreal"}' -o "$E2E_TMP/export.pb.gz" >/dev/null 2>&1
check "tracectl profiles export wrote a gzipped pprof" gzip -t "$E2E_TMP/export.pb.gz"
top_rows -unit=minimum "$E2E_TMP/export.pb.gz" | sort >"$E2E_TMP/export.top"
if diff "$E2E_TMP/want_cpucpu.top" "$E2E_TMP/export.top" >"$E2E_TMP/export.diff"; then
    pass "go tool pprof -top on tracectl's export = the posted cpu profiles"
else
    fail "go tool pprof -top on tracectl's export differs from the posted cpu profiles (want < > got):"
    head -20 "$E2E_TMP/export.diff" | sed 's/^/    | /'
fi

# ---- bad input: documented 4xx, nothing else lost, daemon up ----
is_json_error() { # NAME CODE
    grep -qi '^content-type: application/json' "$E2E_TMP/$1.hdr" && grep -q "\"code\":\"$2\"" "$E2E_TMP/$1.body"
}
stc=$E2E_TMP/stc.json
printf '{"cpu":{"units":"samples","sampled":true}}' >"$stc"
mp() { # NAME PROFILE_FILE: multipart like pyroscope-go
    http "$1" -X POST -F "profile=@$2;filename=profile.pprof" -F "sample_type_config=@$stc;filename=sample_type_config.json" \
        "$QUERY/ingest?name=goreal%7Benv%3De2e%2Cteam%3Da%7D&spyName=gospy&from=$((now - 5))&until=$now"
}
printf 'definitely not a pprof' >"$E2E_TMP/corrupt.pb"
expect_eq "multipart: corrupt pprof -> 422" "$(mp corrupt "$E2E_TMP/corrupt.pb")" 422
check "corrupt: JSON invalid_argument" is_json_error corrupt invalid_argument
gunzip -c "$A/cpu.pb.gz" >"$E2E_TMP/cpu.pb"
sz=$(stat -c %s "$E2E_TMP/cpu.pb")
head -c $((sz - 7)) "$E2E_TMP/cpu.pb" >"$E2E_TMP/trunc.pb"
expect_eq "multipart: real Go cpu pprof truncated by 7 bytes -> 422" "$(mp trunc "$E2E_TMP/trunc.pb")" 422
head -c $((sz / 2)) "$E2E_TMP/cpu.pb" | gzip -c >"$E2E_TMP/trunc2.pb.gz"
expect_eq "multipart: real Go cpu pprof cut in half, gzipped -> 422" "$(mp trunc2 "$E2E_TMP/trunc2.pb.gz")" 422
head -c 100 "$A/cpu.pb.gz" >"$E2E_TMP/truncgz.pb.gz"
expect_eq "multipart: truncated gzip stream -> 422" "$(mp truncgz "$E2E_TMP/truncgz.pb.gz")" 422
# a sample appended to the real profile: location 1, values (1, 10ms), label key string index 99999
printf '\x12\x12\x0a\x01\x01\x12\x05\x01\x80\xad\xe2\x04\x1a\x06\x08\x9f\x8d\x06\x10\x01' >"$E2E_TMP/badlab.bin"
cat "$E2E_TMP/cpu.pb" "$E2E_TMP/badlab.bin" >"$E2E_TMP/badidx.pb"
expect_eq "real Go cpu pprof + a sample whose label key index is out of range -> 422" "$(mp badidx "$E2E_TMP/badidx.pb")" 422
check "out-of-range index: invalid_argument" is_json_error badidx invalid_argument
# the same profile with an appended function whose name index is out of range, referenced by nothing
printf '\x2a\x07\x08\xe7\x07\x10\x9f\x8d\x06' >"$E2E_TMP/badfn.bin"
cat "$E2E_TMP/cpu.pb" "$E2E_TMP/badfn.bin" >"$E2E_TMP/badfn.pb"
expect_eq "real Go cpu pprof + a function with an out-of-range name index -> 422" "$(mp badfn "$E2E_TMP/badfn.pb")" 422
head -c $((70 * 1024 * 1024)) /dev/zero | gzip -1 >"$E2E_TMP/bomb.gz"
expect_eq "multipart: gzip bomb (70 MiB > profile-max-size 64MiB) -> 413" "$(mp bomb "$E2E_TMP/bomb.gz")" 413
check "gzip bomb: JSON error body" grep -q '"code":' "$E2E_TMP/bomb.body"
# invalid label names go to another service, so an accepted one cannot disturb goreal's sums
badname() { # NAME LABELS(url-encoded inside the braces)
    http "$1" -X POST -F "profile=@$A/cpu.pb.gz;filename=profile.pprof" \
        -F "sample_type_config=@$stc;filename=sample_type_config.json" \
        "$QUERY/ingest?name=badsvc%7B$2%7D&spyName=gospy"
}
expect_eq "invalid label name in name= (team-x) -> 400" "$(badname badname 'team-x%3Da')" 400
check "invalid label name: invalid_argument, message name: ..." \
    bash -c "grep -qi '^content-type: application/json' '$E2E_TMP/badname.hdr' && grep -q '\"message\":\"name: ' '$E2E_TMP/badname.body'"
expect_eq "invalid label name in name= (te@m) -> 400" "$(badname badname2 'te%40m%3Da')" 400
expect_eq "invalid label name in name= (te\"am) -> 400" "$(badname badname3 'te%22am%3Da')" 400
expect_eq "empty label name in name= ({=a}) -> 400" "$(badname badname4 '%3Da')" 400
expect_eq "LabelValues service_name after the invalid names (proto)" \
    "$(pcall LabelValues LabelValuesRequest '{"name":"service_name","matchers":["{}"],'"$RANGE"'}' svcs)" 200
check "nothing stored for the invalid label names (no badsvc)" bash -c "! grep -q badsvc '$E2E_TMP/svcs.body'"
# label names/values inside the pprof (pprof.Do labels promoted to series labels): Pyroscope's
# ValidateLabels refuses names that are not valid (empty, not UTF-8) and values that are not
# UTF-8 (invalid_labels -> invalid_argument); they must not be stored under another name
lab() { # NAME KEY VALUE: a Go profile labelled KEY=VALUE, posted as pprof for service badlab
    quiet timeout 30 "$GOPROF" -labeled "$E2E_TMP/$1.pb.gz" -lk "$2" -lv "$3" || return 1
    http "$1" -X POST --data-binary "@$E2E_TMP/$1.pb.gz" "$QUERY/ingest?name=badlab&format=pprof&spyName=gospy"
}
is_4xx_invalid() { # NAME
    local c
    c=$(cat "$E2E_TMP/$1.code")
    [[ $c == 400 || $c == 422 ]] && grep -q '"code":"invalid_argument"' "$E2E_TMP/$1.body"
}
lab goodlab ok_name fine >"$E2E_TMP/goodlab.code"
expect_eq "control: pprof label ok_name=fine -> 200" "$(cat "$E2E_TMP/goodlab.code")" 200
lab labkey $'bad\xffkey' x >"$E2E_TMP/labkey.code"
check "pprof label name that is not UTF-8 (bad\\xffkey) -> 400/422 invalid_argument (got $(cat "$E2E_TMP/labkey.code"): $(show_body labkey))" \
    is_4xx_invalid labkey
lab labval k $'v\xff' >"$E2E_TMP/labval.code"
check "pprof label value that is not UTF-8 (v\\xff) -> 400/422 invalid_argument (got $(cat "$E2E_TMP/labval.code"): $(show_body labval))" \
    is_4xx_invalid labval
lab labempty '' x >"$E2E_TMP/labempty.code"
check "pprof label with an empty name -> 400/422 invalid_argument (got $(cat "$E2E_TMP/labempty.code"): $(show_body labempty))" \
    is_4xx_invalid labempty
http badlabnames -X POST -H 'Content-Type: application/json' -H 'Accept: application/json; allow-utf8-labelnames=true' \
    -d '{"matchers":["{service_name=\"badlab\"}"],'"$RANGE"'}' "$QUERY/querier.v1.QuerierService/LabelNames" >/dev/null
check "the control label ok_name is stored" grep -q '"ok_name"' "$E2E_TMP/badlabnames.body"
check "no label name with a replacement character stored (got $(show_body badlabnames))" \
    bash -c "! grep -q \$'\\xef\\xbf\\xbd' '$E2E_TMP/badlabnames.body' && ! grep -q 'bad.*key' '$E2E_TMP/badlabnames.body'"
http badlabk -X POST -H 'Content-Type: application/json' -d '{"name":"k","matchers":["{service_name=\"badlab\"}"],'"$RANGE"'}' \
    "$QUERY/querier.v1.QuerierService/LabelValues" >/dev/null
check "no label value from the non-UTF-8 profile stored (got $(show_body badlabk))" \
    bash -c "! grep -q '\"names\"' '$E2E_TMP/badlabk.body'"

# push.v1 (Connect JSON): a gzip bomb and a corrupt pprof as raw_profile
push_raw() { # NAME FILE
    printf '{"series":[{"labels":[{"name":"__name__","value":"process_cpu"},{"name":"service_name","value":"goreal"},{"name":"team","value":"a"}],"samples":[{"rawProfile":"%s"}]}]}' \
        "$(base64 -w0 "$2")" >"$E2E_TMP/$1.json"
    http "$1" -X POST -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/$1.json" "$QUERY/push.v1.PusherService/Push"
}
expect_eq "push.v1: gzip bomb raw_profile -> 400 invalid_argument (README: 413 / invalid_argument)" "$(push_raw pushbomb "$E2E_TMP/bomb.gz")" 400
check "push.v1 gzip bomb: message names profile-max-size" grep -q 'profile-max-size' "$E2E_TMP/pushbomb.body"
expect_eq "push.v1: truncated real pprof -> 400" "$(push_raw pushtrunc "$E2E_TMP/trunc.pb")" 400
check "push.v1 truncated: invalid_argument" grep -q '"code":"invalid_argument"' "$E2E_TMP/pushtrunc.body"
expect_eq "push.v1: real pprof + out-of-range label key -> 400" "$(push_raw pushidx "$E2E_TMP/badidx.pb")" 400

expect_eq "maxNodes 1048577 (proto) -> 400" \
    "$(pcall SelectMergeStacktraces SelectMergeStacktracesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"maxNodes":1048577}' bigmax)" 400
check "maxNodes too big: invalid_argument" is_json_error bigmax invalid_argument
expect_eq "maxNodes 9223372036854775807 (JSON) -> 400" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$CPU'","labelSelector":"{}",'"$RANGE"',"maxNodes":"9223372036854775807"}' hugemax)" 400
expect_eq "maxNodes 1048576 (the cap) -> 200" \
    "$(jcall SelectMergeStacktraces '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"maxNodes":"1048576"}' capmax)" 200
read -r gtotal _ _ <<<"$(fgstats capmax)"
expect_eq "maxNodes at the cap: full total" "$gtotal" "${TOT[$CPU]}"
expect_eq "span selector not 16 hex -> 400" \
    "$(pcall SelectMergeSpanProfile SelectMergeSpanProfileRequest '{"profileTypeID":"'$CPU'","spanSelector":["a1"],'"$RANGE"'}' badspan)" 400

check "daemon still ready" curl -sf -o /dev/null --max-time 5 "$QUERY/ready"
check "daemon process alive" kill -0 "$TRACED_PID"
# nothing lost, nothing added: every sum as before
for t in $GO_TYPES; do
    printf 'SelectSeries\tSelectSeriesRequest\t%s\tafter_%s\n' \
        '{"profileTypeID":"'$t'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"step":15}' "${t//:/_}"
done | batch
for t in $GO_TYPES; do
    st=$(cut -d: -f2 <<<"$t")
    expect_eq "after bad input: $t sum unchanged" "$(series_sum "$E2E_TMP/after_${t//:/_}.json")" "${TOT[$t]}"
done
check "rejects counted" test "$(metric 'traced_profiles_rejected_total{path="ingest",reason="422"}')" -ge 5
check "traced stops cleanly" traced_stop

# ---- restart: the same answers from the store on disk ----
start_or_bail
pcall SelectSeries SelectSeriesRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'",'"$RANGE"',"step":15}' rs >/dev/null
expect_eq "after restart: cpu SelectSeries sum" "$(series_sum "$E2E_TMP/rs.json")" "${TOT[$CPU]}"
pcall SelectMergeSpanProfile SelectMergeSpanProfileRequest '{"profileTypeID":"'$CPU'","labelSelector":"'"$GOSEL"'","spanSelector":["'$SPAN_A'"],'"$RANGE"'}' rspa >/dev/null
read -r gtotal gname _ <<<"$(fgstats rspa)"
expect_eq "after restart: span a1 profile" "$gtotal $gname" "$SA main.hotLeafE2E"
pcall SelectMergeProfile SelectMergeProfileRequest '{"profileTypeID":"memory:alloc_space:bytes:space:bytes","labelSelector":"'"$GOSEL"'",'"$RANGE"'}' rsmp >/dev/null
gzip -c "$E2E_TMP/rsmp.body" >"$E2E_TMP/rsmp.pb.gz"
top_rows -unit=minimum "$E2E_TMP/rsmp.pb.gz" | sort >"$E2E_TMP/rsmp.top"
check "after restart: SelectMergeProfile alloc_space = the posted heap profiles (go tool pprof -top)" \
    diff -q "$E2E_TMP/want_alloc_spaceheap.top" "$E2E_TMP/rsmp.top"
check "traced stops cleanly (after restart)" traced_stop
finish
