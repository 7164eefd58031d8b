#!/usr/bin/env bash
# pyro_ingest: Pyroscope ingest on the query port (API-CONTRACT §5.0-§5.3, §9).
#
# A real Go program (goprof/main.go, runtime/pprof) posts CPU, heap, mutex, block
# and goroutine profiles exactly like pyroscope-go (multipart + sample_type_config);
# folded text, push.v1 Push (JSON) and, when @pyroscope/nodejs is installed, a
# Node program follow. Bad input (corrupt and truncated pprof, a gzip bomb,
# out-of-range indices, invalid label names, prev_profile, unsupported formats)
# must get the documented 4xx with a JSON body while the daemon stays up and the
# data already written stays intact. The profile store is read back with
# pstore_dump after a clean stop; a second run checks the tenant rules.
source "$(dirname "$0")/lib.sh"
e2e_init pyro_ingest
: "${PSTORE_DUMP_BIN:?PSTORE_DUMP_BIN must point at the pstore_dump tool}"

start_or_bail --pyroscope-listen 127.0.0.1:0
PYRO_PORT=$(_port_of pyroscope "$(_started_line)")

# ---- a Go program profiled with runtime/pprof, posted like pyroscope-go ----
GOPROF=$E2E_TMP/goprof
if ! quiet env GOFLAGS= GOCACHE="$E2E_TMP/gocache" timeout 240 go build -o "$GOPROF" \
    "$TD_E2E_DIR/goprof/main.go"; then
    fail "go build goprof"
    finish
    exit 1
fi
check "goprof posts 5 profiles (cpu, heap, mutex, block, goroutine)" \
    quiet timeout 120 "$GOPROF" -url "$QUERY" -app goapp -tags "env=e2e,region=eu"
# dumped once more, for the bad-input checks below
mkdir -p "$E2E_TMP/prof"
quiet timeout 120 "$GOPROF" -dump "$E2E_TMP/prof"

# ---- folded text with a legacy suffix ----
expect_eq "folded text: 200" "$(http folded -X POST --data-binary $'main;work;hotFoldedE2E 3\nmain;idle 1\n' \
    "$QUERY/ingest?name=folded.app.cpu%7Benv%3De2e%7D&sampleRate=100&spyName=pyspy&from=now-10s&until=now")" 200

# ---- Pyroscope's own port (pyroscope-listen, where SDKs point by default) takes /ingest too ----
expect_eq "folded text on pyroscope-listen: 200" "$(http folded4040 -X POST --data-binary 'main;port4040E2E 2' \
    "http://127.0.0.1:$PYRO_PORT/ingest?name=port4040app")" 200

# ---- push.v1 (Connect, JSON) with a Go CPU profile ----
raw=$(base64 -w0 "$E2E_TMP/prof/go_cpu.pb.gz")
printf '{"series":[{"labels":[{"name":"__name__","value":"process_cpu"},{"name":"service_name","value":"pushed"},{"name":"k8s.pod","value":"p-1"}],"samples":[{"rawProfile":"%s","ID":"00000000-0000-0000-0000-000000000001"}]}]}' \
    "$raw" >"$E2E_TMP/push.json"
expect_eq "push JSON: 200" "$(http push -X POST -H 'Content-Type: application/json' \
    --data-binary @"$E2E_TMP/push.json" "$QUERY/push.v1.PusherService/Push")" 200
check "push JSON: body {}" body_is push '{}'
check "push proto (gzip, like Alloy): 200 with an empty PushResponse" \
    quiet timeout 120 "$GOPROF" -url "$QUERY" -push gopush
expect_eq "push with a routing prefix: reaches Push (empty request 400)" "$(http push_prefix -X POST \
    -H 'Content-Type: application/proto' --data-binary '' "$QUERY/pyro/push.v1.PusherService/Push")" 400
expect_eq "push.v1 unknown method: 501" "$(http push_other -X POST -H 'Content-Type: application/proto' \
    --data-binary '' "$QUERY/push.v1.PusherService/Other")" 501
expect_eq "push proto: empty request 400" "$(http push_empty -X POST -H 'Content-Type: application/proto' \
    --data-binary '' "$QUERY/push.v1.PusherService/Push")" 400
expect_eq "push: text/plain 415" "$(http push_ct -X POST -H 'Content-Type: text/plain' \
    --data-binary 'x' "$QUERY/push.v1.PusherService/Push")" 415

# ---- a Node program profiled by @pyroscope/nodejs (wall + cpu time, heap) ----
NODE_OK=0
if node_run 120 nodeprof.mjs "$QUERY" nodeapp; then
    NODE_OK=1
    pass "@pyroscope/nodejs profiled a Node program and pushed without errors"
else
    fail "@pyroscope/nodejs profiled a Node program and pushed without errors (npm ci in tests/e2e?)"
fi

# ---- bad input: documented 4xx, JSON bodies ----
is_json_error() { # NAME CODE
    grep -qi '^content-type: application/json' "$E2E_TMP/$1.hdr" &&
        grep -q "\"code\":\"$2\"" "$E2E_TMP/$1.body" && grep -q '"message":' "$E2E_TMP/$1.body"
}
expect_eq "corrupt pprof: 422" "$(http corrupt -X POST --data-binary 'this is not a pprof' \
    "$QUERY/ingest?name=bad&format=pprof")" 422
check "corrupt pprof: JSON invalid_argument" is_json_error corrupt invalid_argument
head -c 300 "$E2E_TMP/prof/go_heap.pb.gz" >"$E2E_TMP/trunc.gz"
expect_eq "truncated gzip pprof: 422" "$(http trunc -X POST --data-binary @"$E2E_TMP/trunc.gz" \
    "$QUERY/ingest?name=bad&format=pprof")" 422
gunzip -c "$E2E_TMP/prof/go_heap.pb.gz" | head -c 200 >"$E2E_TMP/trunc.pb"
expect_eq "truncated raw pprof: 422" "$(http trunc_raw -X POST --data-binary @"$E2E_TMP/trunc.pb" \
    "$QUERY/ingest?name=bad&format=pprof")" 422
head -c $((80 * 1024 * 1024)) /dev/zero | gzip -1 >"$E2E_TMP/bomb.gz"
expect_eq "gzip bomb over profile-max-size: 413" "$(http bomb -X POST --data-binary @"$E2E_TMP/bomb.gz" \
    "$QUERY/ingest?name=bad&format=pprof")" 413
check "gzip bomb: JSON resource_exhausted" is_json_error bomb resource_exhausted
# sample_type {type: 1, unit: 2} with a string table of one entry: indices out of range
printf '\x0a\x04\x08\x01\x10\x02\x32\x00' >"$E2E_TMP/badidx.pb"
expect_eq "out-of-range string index: 422" "$(http badidx -X POST --data-binary @"$E2E_TMP/badidx.pb" \
    "$QUERY/ingest?name=bad&format=pprof")" 422
check "out-of-range index: message says so" grep -q 'out of range' "$E2E_TMP/badidx.body"
expect_eq "invalid label name: 400" "$(http badlabel -X POST --data-binary @"$E2E_TMP/prof/go_cpu.pb.gz" \
    "$QUERY/ingest?name=app%7Bbad-name%3D1%7D&format=pprof")" 400
check "invalid label name: name: ..." grep -q '"message":"name: ' "$E2E_TMP/badlabel.body"
expect_eq "missing name: 400" "$(http noname -X POST --data-binary 'a 1' "$QUERY/ingest")" 400
expect_eq "unknown legacy suffix: 400" "$(http suffix -X POST --data-binary 'a 1' \
    "$QUERY/ingest?name=my.app")" 400
expect_eq "format=trie: 400" "$(http trie -X POST --data-binary 'x' "$QUERY/ingest?name=a&format=trie")" 400
check "format=trie: unsupported format" grep -q 'unsupported format' "$E2E_TMP/trie.body"
expect_eq "multipart with prev_profile: 422" "$(http prev -X POST \
    -F "profile=@$E2E_TMP/prof/go_cpu.pb.gz" -F "prev_profile=@$E2E_TMP/prof/go_cpu.pb.gz" \
    "$QUERY/ingest?name=bad")" 422
expect_eq "GET /ingest: 405" "$(http get_ingest "$QUERY/ingest?name=a")" 405
check "GET /ingest: Allow: POST" test "$(hdr get_ingest Allow)" = "POST"
expect_eq "daemon still ready" "$(http ready "$QUERY/ready")" 200
check "profiles ingested are counted" test "$(metric 'traced_profiles_ingested_total{path="ingest"}')" -ge 6
check "rejects are counted" test "$(metric 'traced_profiles_rejected_total{path="ingest",reason="422"}')" -ge 4

# ---- read back through the Pyroscope query API (querier.v1, Connect JSON) ----
now=$(date +%s%3N)
range="\"start\":$((now - 3600000)),\"end\":$((now + 60000))"
expect_eq "ProfileTypes: 200" "$(http ptypes -X POST -H 'Content-Type: application/json' \
    -d "{$range}" "$QUERY/querier.v1.QuerierService/ProfileTypes")" 200
for t in process_cpu:cpu:nanoseconds:cpu:nanoseconds memory:alloc_space:bytes:space:bytes \
    mutex:delay:nanoseconds:contentions:count block:delay:nanoseconds:contentions:count \
    goroutines:goroutine:count:goroutine:count wall:wall:nanoseconds:wall:nanoseconds; do
    check "ProfileTypes lists $t" grep -q "\"ID\":\"$t\"" "$E2E_TMP/ptypes.body"
done
expect_eq "SelectMergeStacktraces goapp cpu: 200" "$(http fg -X POST -H 'Content-Type: application/json' \
    -d "{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{service_name=\\\"goapp\\\",env=\\\"e2e\\\"}\",$range}" \
    "$QUERY/querier.v1.QuerierService/SelectMergeStacktraces")" 200
check "flame graph of goapp names main.hotSpinE2E" grep -q '"main.hotSpinE2E"' "$E2E_TMP/fg.body"

# ---- read the store back ----
check "traced stops cleanly" traced_stop
"$PSTORE_DUMP_BIN" "$DATA_DIR" single-tenant >"$E2E_TMP/dump.txt" 2>"$E2E_TMP/dump.err"
has_type() { grep -q "__profile_type__=\"$1\"" "$E2E_TMP/dump.txt"; }
for t in process_cpu:samples:count:cpu:nanoseconds process_cpu:cpu:nanoseconds:cpu:nanoseconds \
    memory:alloc_objects:count:space:bytes memory:alloc_space:bytes:space:bytes \
    memory:inuse_objects:count:space:bytes memory:inuse_space:bytes:space:bytes \
    mutex:contentions:count:contentions:count mutex:delay:nanoseconds:contentions:count \
    block:contentions:count:contentions:count block:delay:nanoseconds:contentions:count \
    goroutines:goroutine:count:goroutine:count; do
    check "stored Go profile type $t" has_type "$t"
done
go_cpu_series() {
    awk '/^series /{on = /__profile_type__="process_cpu:cpu:nanoseconds:cpu:nanoseconds"/ && /service_name="goapp"/} on' \
        "$E2E_TMP/dump.txt"
}
check "Go CPU: the hot function main.hotSpinE2E is there" grep -q 'cum main.hotSpinE2E [1-9]' <(go_cpu_series)
check "Go series carry the client labels and spy" \
    grep -q 'env="e2e".*pyroscope_spy="gospy",region="eu",service_name="goapp"' "$E2E_TMP/dump.txt"
check "folded: process_cpu in ns, app name without the suffix" \
    grep -q '__profile_type__="process_cpu:cpu:nanoseconds:cpu:nanoseconds".*pyroscope_spy="pyspy",service_name="folded.app"} profiles=1 total=40000000' \
    "$E2E_TMP/dump.txt"
check "folded: frames stored" grep -q 'cum hotFoldedE2E 30000000' "$E2E_TMP/dump.txt"
check "pyroscope-listen ingest stored" grep -q 'cum port4040E2E 20000000' "$E2E_TMP/dump.txt"
check "push: series with its labels" grep -q 'k8s.pod="p-1",service_name="pushed"' "$E2E_TMP/dump.txt"
check "push proto: series stored" grep -q '__name__="process_cpu".*env="e2e",service_name="gopush"' "$E2E_TMP/dump.txt"
check "nothing from the rejected requests" bash -c "! grep -q 'service_name=\"bad\"' '$E2E_TMP/dump.txt'"
if [ "$NODE_OK" = 1 ]; then
    node_series() { # PROFILE_TYPE
        awk -v t="__profile_type__=\"$1\"" '/^series /{on = index($0, t) && /service_name="nodeapp"/} on' \
            "$E2E_TMP/dump.txt"
    }
    for t in wall:wall:nanoseconds:wall:nanoseconds wall:cpu:nanoseconds:wall:nanoseconds \
        memory:inuse_space:bytes:inuse_space:bytes; do
        check "@pyroscope/nodejs: $t stored" grep -q '^series' <(node_series "$t")
    done
    check "@pyroscope/nodejs: hot function hotNodeE2E in the wall profile" \
        grep -q 'cum .*hotNodeE2E[^ ]* [1-9]' <(node_series wall:wall:nanoseconds:wall:nanoseconds)
    check "@pyroscope/nodejs: dotted label names kept, spy nodespy" \
        grep -q 'otel.scope.name="nodeprof".*pyroscope_spy="nodespy",service_name="nodeapp"' \
        "$E2E_TMP/dump.txt"
fi

# ---- tenants (§9): one tenant per write ----
start_or_bail --multitenancy
expect_eq "multitenancy: no org id 401" "$(http mt_none -X POST --data-binary 'a 1' \
    "$QUERY/ingest?name=app")" 401
check "multitenancy: JSON unauthenticated" is_json_error mt_none unauthenticated
expect_eq "multitenancy: a|b on a write 400" "$(http mt_multi -X POST -H 'X-Scope-OrgID: a|b' \
    --data-binary 'a 1' "$QUERY/ingest?name=app")" 400
expect_eq "multitenancy: team-a 200" "$(http mt_a -X POST -H 'X-Scope-OrgID: team-a' \
    --data-binary 'tenantFn 5' "$QUERY/ingest?name=tapp.cpu")" 200
check "traced stops cleanly (2)" traced_stop
"$PSTORE_DUMP_BIN" "$DATA_DIR" team-a >"$E2E_TMP/dump_a.txt" 2>/dev/null
check "tenant team-a has its series" grep -q 'service_name="tapp"' "$E2E_TMP/dump_a.txt"
"$PSTORE_DUMP_BIN" "$DATA_DIR" single-tenant >"$E2E_TMP/dump_st.txt" 2>/dev/null
check "the single tenant does not see team-a's data" bash -c "! grep -q tapp '$E2E_TMP/dump_st.txt'"
check "earlier data intact after restart" grep -q 'cum main.hotSpinE2E' "$E2E_TMP/dump_st.txt"
finish
