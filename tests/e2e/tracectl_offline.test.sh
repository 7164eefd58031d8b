#!/usr/bin/env bash
# tracectl_offline.test.sh - tracectl against fake_tempo.mjs (no traced needed).
#
# Env: TRACECTL_BIN (the binary), TD_E2E_DIR (this directory), TD_E2E_TMP (scratch, optional).
# Checks output and exit codes (0 found, 1 not found, 2 usage, 3 unreachable, 4 server error).
# Prints "N passed, N failed"; exits non-zero when anything failed.
set -u

: "${TRACECTL_BIN:?set TRACECTL_BIN to the tracectl binary}"
E2E_DIR=${TD_E2E_DIR:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "${TD_E2E_TMP:-/tmp}"
TMP=$(mktemp -d "${TD_E2E_TMP:-/tmp}/tracectl_offline.XXXXXX")
unset TRACECTL_SERVER

KNOWN=5b8efff798038103d269b633813fc60c
PASSED=0
FAILED=0
FAKE_PID=

cleanup() {
    if [ -n "$FAKE_PID" ]; then
        kill "$FAKE_PID" 2>/dev/null
        wait "$FAKE_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   - $1"
}
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL - $1"
    if [ -s "$TMP/err" ]; then
        sed 's/^/       stderr: /' "$TMP/err" | head -20
    fi
}

# run ARGS...: tracectl with a hard time bound; sets RC, output in $TMP/out and $TMP/err.
run() {
    timeout 60 "$TRACECTL_BIN" "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
}

# expect_rc NAME CODE ARGS...
expect_rc() {
    local name=$1 want=$2
    shift 2
    run "$@"
    if [ "$RC" -eq "$want" ]; then
        pass "$name"
    else
        fail "$name: exit $RC, want $want"
    fi
}

# has_line NAME REGEX: some line of $TMP/out matches the extended regex.
has_line() {
    if grep -Eq -- "$2" "$TMP/out"; then
        pass "$1"
    else
        fail "$1: no line matching /$2/"
        sed 's/^/       stdout: /' "$TMP/out" | head -20
    fi
}

# Start the fake server and read its port with a deadline (no polling).
coproc FAKE { exec node "$E2E_DIR/fake_tempo.mjs"; }
FAKE_PID=$FAKE_PID
PORT=
read -r -t 10 -u "${FAKE[0]}" PORT
if ! [[ "$PORT" =~ ^[0-9]+$ ]]; then
    echo "FAIL - fake_tempo.mjs did not report a port"
    echo "0 passed, 1 failed"
    exit 1
fi
SERVER="http://127.0.0.1:$PORT"

# A port with nothing listening: bind an ephemeral one, then close it.
CLOSED_PORT=$(timeout 10 node -e '
const s = require("net").createServer();
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')

# --- help and version -------------------------------------------------------
expect_rc "--help exits 0" 0 --help
has_line "--help lists find" '^  find '
has_line "--help lists search" '^  search '
has_line "--help lists tags" '^  tags '
has_line "--help documents exit code 1 for tags" '^  1  not found .*tags: nothing listed'
has_line "--help documents exit code 3" '^  3  server unreachable'
expect_rc "find --help exits 0" 0 find --help
has_line "find --help shows usage" '^Usage: tracectl find --trace-id ID'
has_line "find --help documents exit codes" '^  4  server error'
expect_rc "--version exits 0" 0 --version
has_line "--version prints a version" '^tracectl [0-9]+\.[0-9]+\.[0-9]+'

# --- a known trace, human output ---------------------------------------------
expect_rc "find known trace exits 0" 0 --server "$SERVER" find --trace-id "$KNOWN"
cat >"$TMP/expected" <<'EOF'
Trace 5b8efff798038103d269b633813fc60c  6 spans  2 services  duration 1.3s
frontend  GET /cart  [server]  +0ns  1.25s  error: boom  http.request.method=GET http.route=/cart http.response.status_code=500
├─ frontend  cart.lookup  [internal]  +5ms  300µs  ok  http.route="AAEC/w==" db.system={k=v, n=1.5} rpc.method=[a, 2, false, 0.25, "x y"] error=true
└─ frontend  POST cart  [client]  +400ms  800ms  -  http.request.method=POST url.path=/items
   └─ cart  POST /items  [server]  +410ms  780ms  ok  http.method=POST http.route=/items http.status_code=201
      └─ cart  SELECT items  [client]  +420ms  50ms  error  db.system=postgresql exception.message="deadlock detected"
(missing parent 00f067aa0ba902b7)
└─ cart  flush queue  [producer]  +1.3s  2.5ms  -  messaging.system=kafka
EOF
if diff -u "$TMP/expected" "$TMP/out" >"$TMP/diff"; then
    pass "find known trace: whole tree as expected"
else
    fail "find known trace: tree differs"
    sed 's/^/       /' "$TMP/diff"
fi
has_line "header names trace, span and service counts" "^Trace $KNOWN  6 spans  2 services  duration "
has_line "root span at column 0 with kind and error status" '^frontend  GET /cart  \[server\]  \+0ns  1\.25s  error: boom'
has_line "child of another service indented one level" '^   └─ cart  POST /items  \[server\]'
has_line "grandchild indented two levels" '^      └─ cart  SELECT items  \[client\]'
has_line "orphan listed under its missing parent" '^\(missing parent 00f067aa0ba902b7\)$'
has_line "orphan span drawn below that line" '^└─ cart  flush queue  \[producer\]'
if [ "$(grep -n 'cart.lookup' "$TMP/out" | cut -d: -f1)" -lt "$(grep -n 'POST cart' "$TMP/out" | cut -d: -f1)" ]; then
    pass "children sorted by start time"
else
    fail "children sorted by start time"
fi
if ! grep -q 'user.note' "$TMP/out"; then
    pass "non-key attributes are not printed"
else
    fail "non-key attributes are not printed"
fi

# Global options also work after the command, and the server comes from the environment.
TRACECTL_SERVER="$SERVER/" expect_rc "TRACECTL_SERVER env and options after the command" 0 \
    find "$KNOWN" --timeout 5
has_line "positional ID gives the same header" "^Trace $KNOWN  6 spans"

# --- --json: the body exactly as served --------------------------------------
expect_rc "find --json exits 0" 0 --server "$SERVER" --json find --trace-id "$KNOWN"
if timeout 30 node -e '
const fs = require("fs"), assert = require("assert");
const out = fs.readFileSync(process.argv[1], "utf8");
fetch(process.argv[2]).then((r) => r.text()).then((body) => {
  assert.deepStrictEqual(JSON.parse(out), JSON.parse(body));
  assert.strictEqual(out, body.endsWith("\n") ? body : body + "\n");
}).catch((e) => { console.error(e.message); process.exit(1); });
' "$TMP/out" "$SERVER/canned/$KNOWN" 2>"$TMP/err"; then
    pass "--json output is the served body, newline-terminated"
else
    fail "--json output is the served body, newline-terminated"
fi

# --- not found, usage, server errors, unreachable ----------------------------
expect_rc "unknown trace (200, empty trace) exits 1" 1 --server "$SERVER" find --trace-id 0123456789abcdef
expect_rc "unknown trace with --json exits 1" 1 --server "$SERVER" find --json --trace-id ffff
if [ ! -s "$TMP/out" ] && grep -q 'not found' "$TMP/err"; then
    pass "not found: nothing on stdout, a message on stderr"
else
    fail "not found: nothing on stdout, a message on stderr"
fi
expect_rc "404 exits 1" 1 --server "$SERVER" find --trace-id 4040
expect_rc "bad trace ID xyz exits 2" 2 --server "$SERVER" find --trace-id xyz
expect_rc "33 hex digits exits 2" 2 --server "$SERVER" find --trace-id 0123456789abcdef0123456789abcdef0
expect_rc "missing --trace-id exits 2" 2 --server "$SERVER" find
expect_rc "unknown option exits 2" 2 --server "$SERVER" find --trace-id "$KNOWN" --bogus
expect_rc "unknown command exits 2" 2 --server "$SERVER" frobnicate
expect_rc "end before start exits 2" 2 --server "$SERVER" find --trace-id "$KNOWN" --start 20 --end 10
expect_rc "bad --timeout exits 2" 2 --server "$SERVER" --timeout -1 find --trace-id "$KNOWN"
expect_rc "server error 500 exits 4" 4 --server "$SERVER" find --trace-id 5000
if grep -q 'HTTP 500: boom' "$TMP/err"; then
    pass "server error body printed on stderr"
else
    fail "server error body printed on stderr"
fi
expect_rc "invalid JSON from the server exits 4" 4 --server "$SERVER" find --trace-id bad0
expect_rc "unreachable server (closed port) exits 3" 3 --server "http://127.0.0.1:$CLOSED_PORT" \
    find --trace-id "$KNOWN"
expect_rc "server that never answers: --timeout exits 3" 3 --server "$SERVER" --timeout 1 \
    find --trace-id 5105

# --- request details: tenant header, Accept, start/end -----------------------
expect_rc "--org-id request exits 0" 0 --server "$SERVER" find 0e0e --org-id tenant-a \
    --start 100 --end 200
has_line "X-Scope-OrgID, Accept and start/end are sent" \
    'org=tenant-a accept=application/json query=\?start=100&end=200'

# --- hostile input: loops, junk entries, terminal escapes, huge numbers --------
expect_rc "malformed trace still prints (exit 0)" 0 --server "$SERVER" find bee5
has_line "junk span entries are skipped" "^Trace $KNOWN  6 spans  1 service  "
has_line "a parent loop is cut and shown" '^\(parent cycle 00000000000000c2\)$'
has_line "a self-parent is shown as a loop" '^\(parent cycle 00000000000000c3\)$'
has_line "numeric kind and status after an int64 overflow" '\[client\]  .*error: line1\\nline2'
if ! LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$TMP/out" && ! grep -q $'\xc2\x9b' "$TMP/out"; then
    pass "control characters are escaped, not sent to the terminal"
else
    fail "control characters are escaped, not sent to the terminal"
fi

# --- big traces: no recursion limits ------------------------------------------
expect_rc "10k-deep span chain exits 0" 0 --server "$SERVER" find dee9
if [ "$(wc -l <"$TMP/out")" -eq 10001 ] && grep -q 'op-9999' "$TMP/out"; then
    pass "10k-deep chain prints every span"
else
    fail "10k-deep chain prints every span"
fi
expect_rc "10k-wide trace exits 0" 0 --server "$SERVER" find a1de
if [ "$(grep -c '^├─ big  op-' "$TMP/out")" -eq 9998 ] && grep -q '^└─ big  op-9999 ' "$TMP/out"; then
    pass "10k-wide trace prints every child, last one with └─"
else
    fail "10k-wide trace prints every child, last one with └─"
fi

# --- search -------------------------------------------------------------------
# Start times print in local time: pin the zone so the table is deterministic.
export TZ=UTC
expect_rc "search --help exits 0" 0 search --help
has_line "search --help shows usage" "^Usage: tracectl search 'TRACEQL' \[--since DURATION \| --start S --end S\]"
has_line "search --help documents --limit" '^  --limit N '
has_line "search --help documents --spss" '^  --spss N '
has_line "search --help documents the columns" 'TRACE ID  ROOT SERVICE  ROOT NAME  START  DURATION  MATCHED'
has_line "search --help documents exit codes" '^  1  not found .*search: no trace matched'
expect_rc "tracectl help search exits 0" 0 help search
has_line "tracectl help search shows usage" '^Usage: tracectl search '

expect_rc "search with matches exits 0" 0 --server "$SERVER" search '{ status = error }'
cat >"$TMP/expected" <<'END'
TRACE ID                          ROOT SERVICE              ROOT NAME                                 START                DURATION  MATCHED
2f3e0cee77ae5dc9c17ade3689eb2e54  shop-backend              update-billing                            2023-11-14 22:13:27  557ms     2
a1b2c3d4e5f60718293a4b5c6d7e8f90  a-very-long-service-nam…  GET /api/v1/some/really/long/route/that…  2023-11-14 22:13:25  61.2s     12
c0ffee00c0ffee00c0ffee00c0ffee00  légacy-svc                only spanSet                              2023-11-14 22:13:23  1.5s      7
00000000000000000000000000abc123  \x1b[2Jevil\u009b1m       tab\there                                 2023-11-14 22:13:21  <1ms      1
00000000000000000000000000000def  -                         no service, no span sets                  2023-11-14 22:13:20  3ms       -
5 traces
END
if diff -u "$TMP/expected" "$TMP/out" >"$TMP/diff"; then
    pass "search: whole table as expected"
else
    fail "search: table differs"
    sed 's/^/       /' "$TMP/diff"
fi
has_line "search: 32-digit lowercase trace IDs, zero-padded" '^00000000000000000000000000abc123  '
has_line "search: long names cut with an ellipsis" '  a-very-long-service-nam…  GET /api/v1/'
has_line "search: MATCHED sums spanSets[].matched" '  61\.2s +12$'
has_line "search: MATCHED falls back to spanSet.matched" '^c0ffee00.*  1\.5s +7$'
has_line "search: final line counts the traces" '^5 traces$'
if ! LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$TMP/out" && ! grep -q $'\xc2\x9b' "$TMP/out"; then
    pass "search: control characters are escaped"
else
    fail "search: control characters are escaped"
fi
# Every row's START cell begins at the header's START column, counted in characters.
if timeout 30 node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").slice(0, 6);
const chars = (l) => [...l];
const want = chars(lines[0]).join("").indexOf("START");
for (const l of lines.slice(1)) {
  const c = chars(l);
  const at = c.findIndex((_, i) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(c.slice(i, i + 19).join("")));
  if (at !== want) { console.error(`row ${l}: START at ${at}, want ${want}`); process.exit(1); }
}
' "$TMP/out" 2>"$TMP/err"; then
    pass "search: START column aligned in characters on every row"
else
    fail "search: START column aligned in characters on every row"
fi

expect_rc "search --json exits 0" 0 --server "$SERVER" search '{ status = error }' --json
if timeout 30 node -e '
const fs = require("fs"), assert = require("assert");
const out = fs.readFileSync(process.argv[1], "utf8");
fetch(process.argv[2]).then((r) => r.text()).then((body) => {
  assert.strictEqual(out, body.endsWith("\n") ? body : body + "\n");
}).catch((e) => { console.error(e.message); process.exit(1); });
' "$TMP/out" "$SERVER/canned-search" 2>"$TMP/err"; then
    pass "search --json output is the served body, newline-terminated"
else
    fail "search --json output is the served body, newline-terminated"
fi

# The request: q url-encoded, limit, start/end, spss, headers.
expect_rc "search echo with --start/--end exits 0" 0 --server "$SERVER" --org-id tenant-b \
    search '{ span.echo = "a b&c" || name =~ "x+/y%" }' --json --limit 5 --spss 4 --start 100 --end 200
if timeout 30 node -e '
const assert = require("assert");
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).request;
assert.strictEqual(r.raw, "?q=%7B%20span.echo%20%3D%20%22a%20b%26c%22%20%7C%7C%20name%20%3D~%20%22x%2B%2Fy%25%22%20%7D&limit=5&start=100&end=200&spss=4");
assert.strictEqual(r.params.q, "{ span.echo = \"a b&c\" || name =~ \"x+/y%\" }");
assert.strictEqual(r.org, "tenant-b");
assert.strictEqual(r.accept, "application/json");
' "$TMP/out" 2>"$TMP/err"; then
    pass "search sends q url-encoded, limit, start, end, spss, org and Accept"
else
    fail "search sends q url-encoded, limit, start, end, spss, org and Accept"
fi

# Defaults: limit 20, no spss, end = now, start = end - 1h; --since moves start.
# check_window SECONDS LIMIT: the echoed start/end are SECONDS apart, end is about now.
check_window() {
    timeout 30 node -e '
const assert = require("assert");
const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).request.params;
const want = Number(process.argv[2]), limit = process.argv[3], now = Date.now() / 1000;
assert.strictEqual(p.limit, limit);
assert.ok(!("spss" in p), "spss sent without --spss");
assert.ok(/^\d+$/.test(p.start) && /^\d+$/.test(p.end), "start/end not unix seconds");
assert.strictEqual(Number(p.end) - Number(p.start), want);
assert.ok(Math.abs(Number(p.end) - now) < 60, "end is not now");
' "$TMP/out" "$1" "$2" 2>"$TMP/err"
}
expect_rc "search with defaults exits 0" 0 --server "$SERVER" --json search '{ echo }'
if check_window 3600 20; then
    pass "search defaults: limit=20, the last hour"
else
    fail "search defaults: limit=20, the last hour"
fi
for spec in 30s:30 15m:900 1h:3600 2d:172800 1h30m:5400; do
    expect_rc "search --since ${spec%%:*} exits 0" 0 --server "$SERVER" --json search '{ echo }' \
        --since "${spec%%:*}" --limit 7
    if check_window "${spec##*:}" 7; then
        pass "search --since ${spec%%:*} asks for ${spec##*:}s"
    else
        fail "search --since ${spec%%:*} asks for ${spec##*:}s"
    fi
done

# Exit codes.
expect_rc "search with no traces (key omitted) exits 1" 1 --server "$SERVER" search '{ none }'
has_line "search with no traces prints 0 traces" '^0 traces$'
expect_rc "search with traces: [] exits 1" 1 --server "$SERVER" search '{ empty }'
expect_rc "search --json with no traces exits 1" 1 --server "$SERVER" search '{ none }' --json
has_line "search --json with no traces still prints the body" '"inspectedTraces":3'
expect_rc "search bad query (HTTP 400) exits 4" 4 --server "$SERVER" search '{ bad }'
if grep -q 'HTTP 400: invalid TraceQL query: parse error at line 1, col 3' "$TMP/err" && [ ! -s "$TMP/out" ]; then
    pass "search bad query: the server's message on stderr, nothing on stdout"
else
    fail "search bad query: the server's message on stderr, nothing on stdout"
fi
expect_rc "search server error 500 exits 4" 4 --server "$SERVER" search '{ boom }'
expect_rc "search invalid JSON exits 4" 4 --server "$SERVER" search '{ junk }'
expect_rc "search unreachable server exits 3" 3 --server "http://127.0.0.1:$CLOSED_PORT" search '{ }'
expect_rc "search server that never answers: --timeout exits 3" 3 --server "$SERVER" --timeout 1 \
    search '{ slow }'
expect_rc "search without a query exits 2" 2 --server "$SERVER" search
expect_rc "search with an empty query exits 2" 2 --server "$SERVER" search ''
expect_rc "search with two queries exits 2" 2 --server "$SERVER" search '{ a }' '{ b }'
expect_rc "search bad --since exits 2" 2 --server "$SERVER" search '{ }' --since 5x
expect_rc "search --since 0s exits 2" 2 --server "$SERVER" search '{ }' --since 0s
expect_rc "search --since without a unit exits 2" 2 --server "$SERVER" search '{ }' --since 10
expect_rc "search --since with --start exits 2" 2 --server "$SERVER" search '{ }' --since 1h \
    --start 100 --end 200
expect_rc "search --start without --end exits 2" 2 --server "$SERVER" search '{ }' --start 100
expect_rc "search end before start exits 2" 2 --server "$SERVER" search '{ }' --start 200 --end 100
expect_rc "search non-numeric --start exits 2" 2 --server "$SERVER" search '{ }' --start x --end 100
expect_rc "search non-numeric --limit exits 2" 2 --server "$SERVER" search '{ }' --limit ten
expect_rc "search --limit 0 exits 2" 2 --server "$SERVER" search '{ }' --limit 0
expect_rc "search --limit above 262144 exits 2" 2 --server "$SERVER" search '{ }' --limit 262145
expect_rc "search --spss 101 exits 2" 2 --server "$SERVER" search '{ }' --spss 101
expect_rc "search unknown option exits 2" 2 --server "$SERVER" search '{ }' --bogus
unset TZ

# --- tags ---------------------------------------------------------------------
expect_rc "tags --help exits 0" 0 tags --help
has_line "tags --help shows usage" '^Usage: tracectl tags \[NAME\] \[--scope SCOPE\]'
has_line "tags --help documents --limit" '^  --limit N '
expect_rc "tags lists names exits 0" 0 --server "$SERVER" tags
cat >"$TMP/expected" <<'EOF'
resource (2):
  host.name
  service.name
span (2):
  http.method
  evil\x1b[2Jname
intrinsic (4):
  duration
  kind
  name
  status
EOF
if diff "$TMP/expected" "$TMP/out" >"$TMP/diff"; then
    pass "tags: names grouped by scope, control characters escaped"
else
    fail "tags: names grouped by scope, control characters escaped"
    sed 's/^/       /' "$TMP/diff" | head -20
fi
expect_rc "tags NAME lists values exits 0" 0 --server "$SERVER" tags resource.service.name
cat >"$TMP/expected" <<'EOF'
int      200
float    0.25
bool     true
string   cart
string   "with space"
string   "\x1b]0;pwned\x07"
keyword  error
EOF
if diff "$TMP/expected" "$TMP/out" >"$TMP/diff"; then
    pass "tags NAME: TYPE VALUE lines, quoted and escaped where needed"
else
    fail "tags NAME: TYPE VALUE lines, quoted and escaped where needed"
    sed 's/^/       /' "$TMP/diff" | head -20
fi
expect_rc "tags --json exits 0" 0 --server "$SERVER" tags --json
if node -e '
const fs = require("fs");
const got = fs.readFileSync(process.argv[1], "utf8");
import(process.argv[2]).then((m) => process.exit(got === m.TAGS_BODY + "\n" ? 0 : 1));
' "$TMP/out" "$E2E_DIR/fake_tempo.mjs" 2>"$TMP/err"; then
    pass "tags --json output is the served body"
else
    fail "tags --json output is the served body"
fi
expect_rc "tags with the request echoed exits 0" 0 --server "$SERVER" --org-id tenant-t tags --scope trace \
    --limit 9 --start 100 --end 200
has_line "tags sends scope, limit, start, end" '^  \?scope=trace&limit=9&start=100&end=200$'
has_line "tags sends X-Scope-OrgID" '^  tenant-t$'
has_line "tags asks for JSON" '^  application/json$'
expect_rc "tags with a bare key exits 0" 0 --server "$SERVER" tags echo.key
has_line "a bare key is asked for unscoped (.key)" '^string +/api/v2/search/tag/\.echo\.key/values$'
expect_rc "tags with a scoped bare key exits 0" 0 --server "$SERVER" tags 'a b/echo' --scope resource
has_line "... quoted and percent-encoded in the path" \
    '^string +/api/v2/search/tag/resource\.%22a%20b%2Fecho%22/values$'
expect_rc "tags with an identifier exits 0" 0 --server "$SERVER" tags 'span.echo' --scope resource --since 2h
has_line "... kept as written, --since sends a window" \
    '^string +"/api/v2/search/tag/span\.echo/values\?start=[0-9]+&end=[0-9]+"$'
start=$(sed -nE 's/.*start=([0-9]+)&end=([0-9]+).*/\1/p' "$TMP/out")
end=$(sed -nE 's/.*start=([0-9]+)&end=([0-9]+).*/\2/p' "$TMP/out")
if [ -n "$start" ] && [ $((end - start)) -eq 7200 ]; then
    pass "tags --since 2h asks for 7200 s"
else
    fail "tags --since 2h asks for 7200 s"
fi
expect_rc "tags with --scope intrinsic exits 0" 0 --server "$SERVER" tags status-echo --scope intrinsic
has_line "... a bare key stays unscoped" '^string +/api/v2/search/tag/\.status-echo/values$'
expect_rc "tags with nothing listed exits 1" 1 --server "$SERVER" tags --scope link
expect_rc "tags values: none exits 1" 1 --server "$SERVER" tags span.none
expect_rc "tags --json with none exits 1" 1 --server "$SERVER" tags span.none --json
has_line "tags --json with none still prints the body" '^\{"tagValues":\[\],'
expect_rc "tags rejected name (HTTP 400) exits 4" 4 --server "$SERVER" tags span.bad
if grep -q 'HTTP 400: please provide a valid tagName' "$TMP/err" && [ ! -s "$TMP/out" ]; then
    pass "tags rejected name: the server's message on stderr, nothing on stdout"
else
    fail "tags rejected name: the server's message on stderr, nothing on stdout"
fi
expect_rc "tags rejected scope (HTTP 400) exits 4" 4 --server "$SERVER" tags --scope event
expect_rc "tags server error 500 exits 4" 4 --server "$SERVER" tags span.boom
expect_rc "tags unreachable server exits 3" 3 --server "http://127.0.0.1:$CLOSED_PORT" tags
expect_rc "tags bad --scope exits 2" 2 --server "$SERVER" tags --scope spans
expect_rc "tags two names exits 2" 2 --server "$SERVER" tags a b
expect_rc "tags empty name exits 2" 2 --server "$SERVER" tags ''
expect_rc "tags --limit 0 exits 2" 2 --server "$SERVER" tags --limit 0
expect_rc "tags --limit above 100000 exits 2" 2 --server "$SERVER" tags --limit 100001
expect_rc "tags --start without --end exits 2" 2 --server "$SERVER" tags --start 100
expect_rc "tags end before start exits 2" 2 --server "$SERVER" tags --start 200 --end 100
expect_rc "tags --start beyond int32 exits 2" 2 --server "$SERVER" tags --start 2147483648 --end 2147483649
expect_rc "tags --since with --start exits 2" 2 --server "$SERVER" tags --since 1h --start 1 --end 2
expect_rc "tags unknown option exits 2" 2 --server "$SERVER" tags --bogus

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
