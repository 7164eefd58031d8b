/*
 * test_pstore.c - the profile store (store/pstore.c) and its label selectors
 * (store/pselector.c): selector syntax and errors, matching, write/read round
 * trips, symbol and stack de-duplication (across writes and a reopen), time
 * windows, OR-ed selectors, the encoded size of a realistic profile series, and
 * damaged records. Every store test works in a fresh directory under
 * $TD_TEST_TMP and removes it.
 *
 * A few tests open <dir>/profiles with LevelDB's C API directly (with the store
 * closed) to count or damage raw records.
 */
#include "core/arena.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/pkeys.h"
#include "store/pstore.h"
#include "td_test.h"

#include <ftw.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- fixtures ---- */

static char tmpdir[4096];

static void tmp_make(void)
{
    const char *base = getenv("TD_TEST_TMP");
    if (!base || !*base) {
        base = "/tmp";
    }
    mkdir(base, 0755);
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_pstore-XXXXXX", base);
    TD_CHECK(mkdtemp(tmpdir) != NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmp_remove(void)
{
    if (tmpdir[0]) {
        TD_ASSERT_EQ_INT(nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
        tmpdir[0] = '\0';
    }
}

static td_store_opts opts(void)
{
    td_store_opts o = {0};
    o.dir = tmpdir;
    o.cache_bytes = 8 << 20;
    o.write_buffer_bytes = 4 << 20;
    return o;
}

static td_pstore *open_ps(void)
{
    td_store_opts o = opts();
    td_pstore *s = NULL;
    td_err err;
    td_err_init(&err);
    td_status st = td_pstore_open(&o, &s, &err);
    if (st) {
        fprintf(stderr, "  open: %s\n", err.msg);
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    return s;
}

/* The raw database (store closed). */
static leveldb_t *open_raw(leveldb_options_t **lo)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/profiles", tmpdir);
    *lo = leveldb_options_create();
    char *lerr = NULL;
    leveldb_t *db = leveldb_open(*lo, path, &lerr);
    TD_CHECK(lerr == NULL);
    return db;
}

static void close_raw(leveldb_t *db, leveldb_options_t *lo)
{
    leveldb_close(db);
    leveldb_options_destroy(lo);
}

/* Number of raw records with leading byte type, and their key+value bytes. */
static size_t count_type(uint8_t type, uint64_t *bytes)
{
    leveldb_options_t *lo;
    leveldb_t *db = open_raw(&lo);
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
    size_t n = 0;
    uint64_t b = 0;
    char t = (char)type;
    for (leveldb_iter_seek(it, &t, 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (k[0] != t) {
            break;
        }
        leveldb_iter_value(it, &vl);
        b += kl + vl;
        n++;
    }
    leveldb_iter_destroy(it);
    leveldb_readoptions_destroy(ro);
    close_raw(db, lo);
    if (bytes) {
        *bytes = b;
    }
    return n;
}

/* ---- selectors ---- */

/* Text form of a parsed selector: "pt|name op value;..." */
static void sel_text(const td_pselector *sel, td_buf *out)
{
    static const char *const ops[] = {"=", "!=", "=~", "!~"};
    td_buf_reset(out);
    td_buf_addstr(out, sel->profile_type ? sel->profile_type : "-");
    td_buf_addch(out, '|');
    for (size_t i = 0; i < sel->n; i++) {
        td_buf_addf(out, "%s%s%s%s<%s>", i ? ";" : "", sel->m[i].name, ops[sel->m[i].op],
                    sel->m[i].re ? "re" : "", sel->m[i].value);
    }
}

static void test_selector_parse(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", "-|"},
        {"  \t\n", "-|"},
        {"{}", "-|"},
        {" { } ", "-|"},
        {"{a=\"x\"}", "-|a=<x>"},
        {"{a = \"x\" , b!=\"y\",c=~\"r.*\", d!~'q'}", "-|a=<x>;b!=<y>;c=~re<r.*>;d!~re<q>"},
        {"{a=\"x\",}", "-|a=<x>"},
        {"{a=\"x\" , }", "-|a=<x>"},
        {"{otel.scope.name=\"x\",_b1=\"\"}", "-|otel.scope.name=<x>;_b1=<>"},
        {"{a=`x\\n\"y`}", "-|a=<x\\n\"y>"},
        {"{a=\"\\t\\\"\\\\\\u00e9\\x41\\101\\U0001F600\\a\\b\\f\\n\\r\\v\"}",
         "-|a=<\t\"\\\xc3\xa9"
         "AA\xf0\x9f\x98\x80\a\b\f\n\r\v>"},
        {"{a='it\\'s \"q\"'}", "-|a=<it's \"q\">"},
        {"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name=\"shop\"}",
         "process_cpu:cpu:nanoseconds:cpu:nanoseconds|service_name=<shop>"},
        {" memory:alloc_space:bytes:space:bytes ", "memory:alloc_space:bytes:space:bytes|"},
        {"x:y {}", "x:y|"},
        {"{\"service.name\"=\"x\"}", "-|service.name=<x>"},
        {"{\n a=\"x\"\r\n}\n", "-|a=<x>"},
        {"{a=\"\xc3\xa9\"}", "-|a=<\xc3\xa9>"},
        {"{a=\"x\",a!=\"y\"}", "-|a=<x>;a!=<y>"},
    };
    td_buf b = TD_BUF_INIT;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        td_arena a;
        td_arena_init(&a, 0, 0);
        td_pselector sel;
        td_err err;
        td_err_init(&err);
        td_status st = td_pselector_parse(cases[i].in, strlen(cases[i].in), &a, &sel, &err);
        if (st) {
            fprintf(stderr, "  case %zu: %s\n", i, err.msg);
        }
        TD_ASSERT_EQ_INT(st, TD_OK);
        sel_text(&sel, &b);
        TD_ASSERT_EQ_STR(b.data, cases[i].want);
        td_pselector_release(&sel);
        td_arena_release(&a);
    }
    td_buf_release(&b);
    /* NULL input is the empty selector */
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_pselector sel;
    td_err err;
    TD_ASSERT_EQ_INT(td_pselector_parse(NULL, 0, &a, &sel, &err), TD_OK);
    TD_ASSERT_EQ_INT(sel.n, 0);
    td_arena_release(&a);
}

static void test_selector_errors(void)
{
    static const struct {
        const char *in, *msg;
    } cases[] = {
        {"{", "parse error at char 1: missing closing '}'"},
        {"{a=\"x\"", "parse error at char 1: missing closing '}'"},
        {"{a=\"x\",", "parse error at char 1: missing closing '}'"},
        {"{a}", "parse error at char 3: unexpected '}', expected one of =, !=, =~, !~ after the "
                "label name"},
        {"{a==\"x\"}", "parse error at char 4: unexpected '=', expected a quoted string"},
        {"{a=}", "parse error at char 4: unexpected '}', expected a quoted string"},
        {"{a=x}", "parse error at char 4: unexpected 'x', expected a quoted string"},
        {"{a=\"x}", "parse error at char 4: unterminated string"},
        {"{a=\"x\"b=\"y\"}",
         "parse error at char 7: unexpected 'b', expected ',' or '}' after a matcher"},
        {"{,}", "parse error at char 2: unexpected ',', expected a label name"},
        {"{a=\"x\",,}", "parse error at char 8: unexpected ',', expected a label name"},
        {"{1a=\"x\"}", "parse error at char 2: label name must not start with a digit"},
        {"{a=\"\\q\"}", "parse error at char 5: unknown escape sequence \\q"},
        {"{a=\"\\x4\"}", "parse error at char 5: invalid escape sequence \\x: expected 2 hex "
                         "digits"},
        {"{a=\"\\uD800\"}", "parse error at char 5: invalid escape sequence \\u: not a Unicode "
                            "character"},
        {"{a=\"\\U00110000\"}", "parse error at char 5: invalid escape sequence \\U: not a "
                                "Unicode character"},
        {"{a=\"\\'\"}", "parse error at char 5: invalid escape sequence \\' in a \"-quoted "
                        "string"},
        {"{a=\"\\18\"}", "parse error at char 5: invalid escape sequence: octal needs 3 digits"},
        {"{a=\"\\400\"}", "parse error at char 5: invalid escape sequence: octal value over 255"},
        {"{a=\"\\x00\"}", "parse error at char 5: NUL character in string"},
        {"{a=\"x\ny\"}", "parse error at char 4: unterminated string (newline inside quotes)"},
        {"{a=~\"(\"}", "parse error at char 5: invalid regex \"(\": missing closing )"},
        {"{a!~\"\\\\pL\"}", "parse error at char 5: invalid regex \"\\pL\": unsupported regex "
                            "syntax: \\p (Unicode classes)"},
        {"{a=~\"x{2000}\"}", "parse error at char 5: invalid regex \"x{2000}\": invalid repeat "
                             "count: {2000}"},
        {"{a=\"x\"} extra", "parse error at char 9: unexpected 'e', expected end of input after "
                            "'}'"},
        {"{a=\"\xc3\xa9\"} x", "parse error at char 9: unexpected 'x', expected end of input "
                               "after '}'"},
        {"foo bar", "parse error at char 5: unexpected 'b', expected '{' or end of input"},
        {"=", "parse error at char 1: unexpected '=', expected '{'"},
        {"{\"\"=\"x\"}", "parse error at char 2: empty label name"},
        {"{\xc3\xa9=\"x\"}",
         "parse error at char 2: unexpected character U+00E9, expected a label name"},
        {"{a=\"\xff\"}", "parse error at char 5: invalid UTF-8"},
        {"{a=\"x\"}}", "parse error at char 8: unexpected '}', expected end of input after '}'"},
        {"{a=\"x\" b}", "parse error at char 8: unexpected 'b', expected ',' or '}' after a "
                        "matcher"},
        {"{a=\"\\", "parse error at char 4: unterminated string"},
        {"{a=`x", "parse error at char 4: unterminated string"},
        {"{a\t!}", "parse error at char 4: unexpected '!', expected one of =, !=, =~, !~ after "
                   "the label name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        td_arena a;
        td_arena_init(&a, 0, 0);
        td_pselector sel;
        td_err err;
        td_err_init(&err);
        td_status st = td_pselector_parse(cases[i].in, strlen(cases[i].in), &a, &sel, &err);
        if (st != TD_INVALID || strcmp(err.msg, cases[i].msg) != 0) {
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].in);
        }
        TD_ASSERT_EQ_INT(st, TD_INVALID);
        TD_ASSERT_EQ_STR(err.msg, cases[i].msg);
        TD_ASSERT_EQ_INT(sel.n, 0);
        td_arena_release(&a);
    }
    /* NUL inside the given length */
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_pselector sel;
    td_err err;
    TD_ASSERT_EQ_INT(td_pselector_parse("{a=\"x\0\"}", 8, &a, &sel, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "parse error at char 6: NUL character");
    /* more than 1024 matchers */
    td_buf b = TD_BUF_INIT;
    td_buf_addch(&b, '{');
    for (int i = 0; i < 1025; i++) {
        td_buf_addf(&b, "a%d=~\"x\",", i);
    }
    td_buf_addch(&b, '}');
    TD_ASSERT_EQ_INT(td_pselector_parse(b.data, b.len, &a, &sel, &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "too many matchers (limit 1024)") != NULL);
    td_buf_release(&b);
    td_arena_release(&a);
}

static bool match_text(const char *selector, const td_plabel *l, size_t n)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_pselector sel;
    td_err err;
    td_err_init(&err);
    td_status st = td_pselector_parse(selector, strlen(selector), &a, &sel, &err);
    if (st) {
        fprintf(stderr, "  %s: %s\n", selector, err.msg);
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    bool m = td_pselector_match(&sel, l, n);
    td_pselector_release(&sel);
    td_arena_release(&a);
    return m;
}

static void test_selector_match(void)
{
    static const td_plabel l[] = {
        {"__profile_type__", "process_cpu:cpu:nanoseconds:cpu:nanoseconds"},
        {"a", "x"},
        {"b", ""},
        {"c", "foo"},
        {"d", "line1\nline2"},
        {"service_name", "sh\xc3\xa9p"},
    };
    size_t n = sizeof(l) / sizeof(l[0]);
    static const struct {
        const char *sel;
        bool want;
    } cases[] = {
        {"", true},
        {"{}", true},
        {"{a=\"x\"}", true},
        {"{a=\"y\"}", false},
        {"{a!=\"x\"}", false},
        {"{a!=\"y\"}", true},
        {"{missing=\"\"}", true},
        {"{missing!=\"\"}", false},
        {"{missing=\"x\"}", false},
        {"{missing!=\"x\"}", true},
        {"{b=\"\"}", true},
        {"{a=~\"x|y\"}", true},
        {"{a=~\"x.\"}", false},
        {"{a!~\"x\"}", false},
        {"{a!~\"y\"}", true},
        {"{missing=~\".*\"}", true},
        {"{missing=~\".+\"}", false},
        {"{missing!~\".+\"}", true},
        {"{c=~\"fo\"}", false}, /* anchored at the end */
        {"{c=~\"oo\"}", false}, /* anchored at the start */
        {"{c=~\"f.*\"}", true},
        {"{c=~\"(?i)FOO\"}", true},
        {"{c=~\"FOO\"}", false},
        {"{d=~\"line1.line2\"}", true},     /* . matches newline */
        {"{service_name=~\"sh.p\"}", true}, /* . is one UTF-8 character */
        {"{service_name=~\"sh..p\"}", false},
        {"{a=\"x\",c=\"foo\"}", true},
        {"{a=\"x\",c=\"bar\"}", false},
        {"{a=\"x\",a!=\"x\"}", false},
        {"process_cpu:cpu:nanoseconds:cpu:nanoseconds", true},
        {"process_cpu:cpu:nanoseconds:cpu:nanoseconds{a=\"x\"}", true},
        {"process_cpu:cpu:nanoseconds:cpu:nanoseconds{a=\"y\"}", false},
        {"memory:alloc_space:bytes:space:bytes{}", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = match_text(cases[i].sel, l, n);
        if (got != cases[i].want) {
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].sel);
        }
        TD_ASSERT_EQ_INT(got, cases[i].want);
    }
    /* a label set without the profile type never matches a selector naming one */
    TD_CHECK(!match_text("x:y{}", l + 1, n - 1));
}

/* ---- a small profile model for the store tests ---- */

static const td_ploc locs[] = {
    {"main", "main", "main.go", 10, "/bin/app"},
    {"handler", "pkg.handler", "h.go", 20, "/bin/app"},
    {"query", "pkg.query", "q.go", 30, "/bin/app"},
    {"render", "", "", 0, ""},
    {"memcpy", "__memcpy_avx", "", 0, "libc.so.6"},
};
static const uint32_t st0[] = {2, 1, 0};    /* main;handler;query */
static const uint32_t st1[] = {1, 0};       /* main;handler */
static const uint32_t st2[] = {4, 3, 0};    /* main;render;memcpy */
static const uint32_t st3[] = {4, 2, 1, 0}; /* main;handler;query;memcpy */
static const td_pstack stacks[] = {{st0, 3}, {st1, 2}, {st2, 3}, {st3, 4}};

#define PT_CPU "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
#define PT_ALLOC "memory:alloc_space:bytes:space:bytes"

static const td_plabel lab_a_cpu[] = {
    {"__name__", "process_cpu"}, {"__profile_type__", PT_CPU}, {"service_name", "a"}};
static const td_plabel lab_b_cpu[] = {{"__name__", "process_cpu"},
                                      {"__profile_type__", PT_CPU},
                                      {"service_name", "b"},
                                      {"span_name", "GET /cart"}};
static const td_plabel lab_a_alloc[] = {
    {"__name__", "memory"}, {"__profile_type__", PT_ALLOC}, {"service_name", "a"}};

#define T0 INT64_C(1700000000000) /* ms */

/* Write one profile at t_ms: series a/cpu, b/cpu and a/alloc with values scaled by k. */
static void write_three(td_pstore *s, const char *tenant, int64_t t_ms, int64_t k)
{
    td_psample sa[] = {
        {0, 10 * k, 0, {0}}, {1, 20 * k, 0, {0}}, {2, 0, 0, {0}}, {0, 5 * k, 0, {0}}};
    td_psample sb[] = {{3, 7 * k, 0x1122334455667788ull, {0}},
                       {3, 3 * k, 0, {0}},
                       {2, 1 * k, 0x1122334455667788ull, {[0] = 0xab, [15] = 0xcd}}};
    td_psample sc[] = {{2, 4096 * k, 0, {0}}};
    td_pseries_in series[] = {
        {lab_a_cpu, 3, sa, 4},
        {lab_b_cpu, 4, sb, 3},
        {lab_a_alloc, 3, sc, 1},
    };
    td_pwrite w = {tenant, t_ms * 1000000, 10000000000, locs, 5, stacks, 4, series, 3};
    td_err err;
    td_err_init(&err);
    td_status st = td_pstore_write(s, &w, &err);
    if (st) {
        fprintf(stderr, "  write: %s\n", err.msg);
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
}

/* ---- collecting reads ---- */

typedef struct got_series {
    uint64_t id[16];
    char labels[16][200];
    size_t n;
} got_series;

static bool on_series(void *ud, const td_pseries *s)
{
    got_series *g = ud;
    TD_CHECK(g->n < 16);
    g->id[g->n] = s->id;
    char *o = g->labels[g->n];
    o[0] = 0;
    for (size_t i = 0; i < s->nlabels; i++) {
        if (strncmp(s->labels[i].name, "__", 2) == 0) {
            continue;
        }
        size_t len = strlen(o);
        snprintf(o + len, 200 - len, "%s%s=%s", len ? "," : "", s->labels[i].name,
                 s->labels[i].value);
    }
    g->n++;
    return true;
}

static got_series series_of(td_pstore *s, const char *tenant, const char *const *sels, size_t nsels,
                            int64_t start, int64_t end)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_pselector ps[8];
    td_err err;
    td_err_init(&err);
    for (size_t i = 0; i < nsels; i++) {
        TD_ASSERT_EQ_INT(td_pselector_parse(sels[i], strlen(sels[i]), &a, &ps[i], &err), TD_OK);
    }
    got_series g;
    memset(&g, 0, sizeof(g));
    td_status st = td_pstore_series(s, tenant, ps, nsels, start, end, on_series, &g, &err);
    if (st) {
        fprintf(stderr, "  series: %s\n", err.msg);
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    for (size_t i = 0; i < nsels; i++) {
        td_pselector_release(&ps[i]);
    }
    td_arena_release(&a);
    return g;
}

typedef struct got_prof {
    uint64_t series[64];
    int64_t time[64], total[64], sum[64];
    size_t nsamples[64];
    size_t n;
    uint64_t stacks[64];
    size_t nstacks;
    uint64_t spans;    /* samples with a span ID */
    uint64_t traces;   /* samples with a trace ID */
    size_t stop_after; /* 0: never */
} got_prof;

static bool on_profile(void *ud, uint64_t series, int64_t time_ns, int64_t total)
{
    got_prof *g = ud;
    TD_CHECK(g->n < 64);
    g->series[g->n] = series;
    g->time[g->n] = time_ns;
    g->total[g->n] = total;
    g->n++;
    return !(g->stop_after && g->n >= g->stop_after);
}

static bool on_sample(void *ud, const td_psample_out *smp)
{
    got_prof *g = ud;
    size_t p = g->n - 1;
    TD_ASSERT_EQ_U64(smp->series, g->series[p]);
    TD_ASSERT_EQ_INT(smp->time_ns, g->time[p]);
    g->sum[p] += smp->value;
    g->nsamples[p]++;
    if (smp->span_id) {
        TD_ASSERT_EQ_U64(smp->span_id, 0x1122334455667788ull);
        g->spans++;
    }
    if (smp->trace_id) {
        TD_ASSERT_EQ_INT(smp->trace_id[0], 0xab);
        TD_ASSERT_EQ_INT(smp->trace_id[15], 0xcd);
        g->traces++;
    }
    bool known = false;
    for (size_t i = 0; i < g->nstacks; i++) {
        known |= g->stacks[i] == smp->stack;
    }
    if (!known && g->nstacks < 64) {
        g->stacks[g->nstacks++] = smp->stack;
    }
    return true;
}

static got_prof select_of(td_pstore *s, const char *tenant, const uint64_t *ids, size_t n,
                          int64_t start, int64_t end, bool samples)
{
    got_prof g;
    memset(&g, 0, sizeof(g));
    td_pvisit v = {on_profile, samples ? on_sample : NULL, &g};
    td_err err;
    td_err_init(&err);
    td_status st = td_pstore_select(s, tenant, ids, n, start, end, &v, &err);
    if (st) {
        fprintf(stderr, "  select: %s\n", err.msg);
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    return g;
}

/* "main;handler;query" from a stored stack ID (root first, as folded text). */
static void stack_text(td_pstore *s, const char *tenant, uint64_t id, td_buf *out)
{
    uint64_t ids[16];
    size_t n;
    td_err err;
    TD_ASSERT_EQ_INT(td_pstore_stack(s, tenant, id, ids, 16, &n, &err), TD_OK);
    TD_CHECK(n <= 16);
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_buf_reset(out);
    for (size_t i = n; i-- > 0;) {
        td_ploc l;
        TD_ASSERT_EQ_INT(td_pstore_location(s, tenant, ids[i], &a, &l, &err), TD_OK);
        td_buf_addf(out, "%s%s", i + 1 < n ? ";" : "", l.function);
    }
    td_arena_release(&a);
}

/* ---- store tests ---- */

static void test_roundtrip(void)
{
    tmp_make();
    td_pstore *s = open_ps();
    for (int i = 0; i < 3; i++) {
        write_three(s, "t1", T0 + i * 10000, i + 1);
    }
    /* all series, sorted by ID */
    got_series g = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 3);
    TD_ASSERT_EQ_STR(g.labels[0], "service_name=a");
    TD_ASSERT_EQ_STR(g.labels[1], "service_name=b,span_name=GET /cart");
    TD_ASSERT_EQ_STR(g.labels[2], "service_name=a");
    uint64_t a_cpu = g.id[0], b_cpu = g.id[1], a_alloc = g.id[2];
    TD_CHECK(a_cpu < b_cpu && b_cpu < a_alloc);

    /* selectors through postings: =, =~, profile type, and filters */
    const char *q1[] = {PT_CPU "{service_name=\"a\"}"};
    g = series_of(s, "t1", q1, 1, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 1);
    TD_ASSERT_EQ_U64(g.id[0], a_cpu);
    const char *q2[] = {"{service_name=~\"a|b\", __name__=\"process_cpu\"}"};
    g = series_of(s, "t1", q2, 1, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 2);
    const char *q3[] = {"{span_name!=\"GET /cart\"}"};
    g = series_of(s, "t1", q3, 1, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 2);
    const char *q4[] = {"{service_name!~\"a\"}"};
    g = series_of(s, "t1", q4, 1, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 1);
    TD_ASSERT_EQ_U64(g.id[0], b_cpu);
    const char *q5[] = {"{service_name=\"nope\"}"};
    TD_ASSERT_EQ_INT(series_of(s, "t1", q5, 1, 0, 0).n, 0);
    const char *q6[] = {"{span_name=~\".*\"}"};
    TD_ASSERT_EQ_INT(series_of(s, "t1", q6, 1, 0, 0).n, 3);
    /* other tenants see nothing */
    TD_ASSERT_EQ_INT(series_of(s, "t2", NULL, 0, 0, 0).n, 0);
    TD_ASSERT_EQ_INT(series_of(s, "t", NULL, 0, 0, 0).n, 0);

    /* profiles: by series then time, totals and samples */
    uint64_t ids[] = {a_alloc, b_cpu, a_cpu, a_cpu};
    got_prof p = select_of(s, "t1", ids, 4, T0, T0 + 20000, true);
    TD_ASSERT_EQ_INT(p.n, 9);
    for (size_t i = 0; i < 9; i++) {
        int64_t k = (int64_t)(i % 3) + 1;
        TD_ASSERT_EQ_U64(p.series[i], i < 3 ? a_cpu : i < 6 ? b_cpu : a_alloc);
        TD_ASSERT_EQ_INT(p.time[i], (T0 + (int64_t)(i % 3) * 10000) * 1000000);
        int64_t want = i < 3 ? 35 * k : i < 6 ? 11 * k : 4096 * k;
        TD_ASSERT_EQ_INT(p.total[i], want);
        TD_ASSERT_EQ_INT(p.sum[i], want);
    }
    /* a/cpu: two samples of stack 0 merged, the zero value dropped */
    TD_ASSERT_EQ_INT(p.nsamples[0], 2);
    TD_ASSERT_EQ_INT(p.nsamples[3], 3);
    TD_ASSERT_EQ_U64(p.spans, 6);  /* two per b/cpu profile */
    TD_ASSERT_EQ_U64(p.traces, 3); /* one per b/cpu profile */
    TD_ASSERT_EQ_INT(p.nstacks, 4);

    /* stacks resolve to their frames */
    td_buf b = TD_BUF_INIT;
    int seen = 0;
    for (size_t i = 0; i < p.nstacks; i++) {
        stack_text(s, "t1", p.stacks[i], &b);
        if (strcmp(b.data, "main;handler;query") == 0 || strcmp(b.data, "main;handler") == 0 ||
            strcmp(b.data, "main;render;memcpy") == 0 ||
            strcmp(b.data, "main;handler;query;memcpy") == 0) {
            seen++;
        }
    }
    TD_ASSERT_EQ_INT(seen, 4);
    td_buf_release(&b);
    /* a location keeps every field */
    uint64_t fr[8];
    size_t nf;
    td_err err;
    td_arena a;
    td_arena_init(&a, 0, 0);
    for (size_t i = 0; i < p.nstacks; i++) {
        TD_ASSERT_EQ_INT(td_pstore_stack(s, "t1", p.stacks[i], fr, 1, &nf, &err), TD_OK);
        td_ploc l;
        TD_ASSERT_EQ_INT(td_pstore_location(s, "t1", fr[0], &a, &l, &err), TD_OK);
        if (strcmp(l.function, "memcpy") == 0) {
            TD_ASSERT_EQ_STR(l.system_name, "__memcpy_avx");
            TD_ASSERT_EQ_STR(l.mapping, "libc.so.6");
            TD_ASSERT_EQ_STR(l.file, "");
            TD_ASSERT_EQ_INT(l.line, 0);
        } else if (strcmp(l.function, "query") == 0) {
            TD_ASSERT_EQ_STR(l.system_name, "pkg.query");
            TD_ASSERT_EQ_STR(l.file, "q.go");
            TD_ASSERT_EQ_INT(l.line, 30);
            TD_ASSERT_EQ_STR(l.mapping, "/bin/app");
        }
    }
    td_arena_release(&a);
    TD_ASSERT_EQ_INT(td_pstore_stack(s, "t1", 999999, fr, 8, &nf, &err), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(td_pstore_stack(s, "t2", p.stacks[0], fr, 8, &nf, &err), TD_NOT_FOUND);

    /* profiles only (no sample callback), and stopping early */
    p = select_of(s, "t1", ids, 4, T0, 0, false);
    TD_ASSERT_EQ_INT(p.n, 9);
    TD_ASSERT_EQ_INT(p.nsamples[0], 0);
    got_prof stop;
    memset(&stop, 0, sizeof(stop));
    stop.stop_after = 2;
    td_pvisit v = {on_profile, on_sample, &stop};
    TD_ASSERT_EQ_INT(td_pstore_select(s, "t1", ids, 4, T0, 0, &v, &err), TD_OK);
    TD_ASSERT_EQ_INT(stop.n, 2);

    /* stats */
    bool any;
    int64_t oldest, newest;
    TD_ASSERT_EQ_INT(td_pstore_stats(s, "t1", &any, &oldest, &newest, &err), TD_OK);
    TD_CHECK(any);
    TD_ASSERT_EQ_INT(oldest, T0);
    TD_ASSERT_EQ_INT(newest, T0 + 20000);
    TD_ASSERT_EQ_INT(td_pstore_stats(s, "t2", &any, &oldest, &newest, &err), TD_OK);
    TD_CHECK(!any);
    TD_CHECK(td_pstore_approx_size(s) < (1u << 20));

    td_pstore_close(s);
    tmp_remove();
}

static uint64_t sym_metric(const char *kind, const char *outcome)
{
    return td_metric_get(td_metric_series(TD_M_PROFILE_SYMBOLS, kind, outcome, NULL));
}

static void test_dedup_and_reopen(void)
{
    tmp_make();
    uint64_t st_written = sym_metric("stack", "written"), st_cached = sym_metric("stack", "cached");
    uint64_t st_found = sym_metric("stack", "found");
    uint64_t profiles = td_metric_get(td_metric_series(TD_M_PROFILES_WRITTEN, NULL, NULL, NULL));
    td_pstore *s = open_ps();
    write_three(s, "t1", T0, 1);
    write_three(s, "t1", T0 + 10000, 2);
    write_three(s, "t2", T0, 1); /* same symbols, other tenant: interned again */
    td_pstore_close(s);
    TD_ASSERT_EQ_U64(sym_metric("stack", "written") - st_written, 8);
    TD_ASSERT_EQ_U64(sym_metric("stack", "cached") - st_cached, 4);
    TD_ASSERT_EQ_U64(
        td_metric_get(td_metric_series(TD_M_PROFILES_WRITTEN, NULL, NULL, NULL)) - profiles, 9);
    TD_ASSERT_EQ_INT(count_type(TD__PK_LOC, NULL), 10);
    TD_ASSERT_EQ_INT(count_type(TD__PK_LOC_HASH, NULL), 10);
    TD_ASSERT_EQ_INT(count_type(TD__PK_STACK, NULL), 8);
    TD_ASSERT_EQ_INT(count_type(TD__PK_STACK_HASH, NULL), 8);
    TD_ASSERT_EQ_INT(count_type(TD__PK_SERIES, NULL), 6);
    TD_ASSERT_EQ_INT(count_type(TD__PK_PROFILE, NULL), 9);

    /* a new process finds the symbols in the store instead of writing new ones */
    s = open_ps();
    write_three(s, "t1", T0 + 20000, 3);
    TD_ASSERT_EQ_U64(sym_metric("stack", "found") - st_found, 4);
    TD_ASSERT_EQ_U64(sym_metric("stack", "written") - st_written, 8);
    got_series g = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 3);
    got_prof p = select_of(s, "t1", g.id, g.n, T0, T0 + 20000, true);
    TD_ASSERT_EQ_INT(p.n, 9);
    TD_ASSERT_EQ_INT(p.nstacks, 4);
    for (size_t i = 0; i < p.nstacks; i++) {
        TD_CHECK(p.stacks[i] >= 1 && p.stacks[i] <= 4); /* small per-tenant IDs */
    }
    td_pstore_close(s);
    TD_ASSERT_EQ_INT(count_type(TD__PK_LOC, NULL), 10);
    TD_ASSERT_EQ_INT(count_type(TD__PK_STACK, NULL), 8);
    TD_ASSERT_EQ_INT(count_type(TD__PK_SERIES, NULL), 6);
    TD_ASSERT_EQ_INT(count_type(TD__PK_PROFILE, NULL), 12);
    TD_ASSERT_EQ_INT(count_type(TD__PK_POSTING, NULL), 20);
    /* counters survived: a new stack gets the next ID */
    s = open_ps();
    static const uint32_t fr[] = {3};
    td_pstack k = {fr, 1};
    td_psample smp = {0, 1, 0, {0}};
    td_pseries_in se = {lab_a_cpu, 3, &smp, 1};
    td_pwrite w = {"t1", (T0 + 30000) * 1000000, 0, locs, 5, &k, 1, &se, 1};
    td_err err;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);
    p = select_of(s, "t1", g.id, 1, T0 + 30000, T0 + 30000, true);
    TD_ASSERT_EQ_INT(p.n, 1);
    TD_ASSERT_EQ_U64(p.stacks[0], 5);
    td_pstore_close(s);
    TD_ASSERT_EQ_INT(count_type(TD__PK_LOC, NULL), 10);
    TD_ASSERT_EQ_INT(count_type(TD__PK_STACK, NULL), 9);
    tmp_remove();
}

/* ---- the symbol cache ---- */

#define SC_LOCS 64
#define SC_STACKS 40
#define SC_USED_LOCS 61 /* distinct locations the stacks below use */

typedef struct sc_got {
    uint64_t stack[SC_STACKS]; /* by value - 1 */
    size_t n;
} sc_got;

static bool sc_sample(void *ud, const td_psample_out *smp)
{
    sc_got *g = ud;
    TD_CHECK(smp->value >= 1 && smp->value <= SC_STACKS);
    g->stack[smp->value - 1] = smp->stack;
    g->n++;
    return true;
}

static td_pstore *open_sc(uint64_t cache_bytes)
{
    td_store_opts o = opts();
    o.profile_symbol_cache_bytes = cache_bytes;
    td_pstore *s = NULL;
    td_err err;
    TD_ASSERT_EQ_INT(td_pstore_open(&o, &s, &err), TD_OK);
    return s;
}

/*
 * One profile of SC_STACKS stacks over SC_LOCS locations (plus one location
 * equal in content to location 0 but with its own string copies) at t_ms;
 * stack i has value i + 1. Returns the stack IDs read back by value, and
 * checks each stack's frames by name.
 */
static void sc_write_check(td_pstore *s, int64_t t_ms, sc_got *g)
{
    char names[SC_LOCS + 1][16];
    td_ploc l[SC_LOCS + 1];
    for (int i = 0; i < SC_LOCS; i++) {
        snprintf(names[i], sizeof(names[i]), "fn%d", i);
        l[i] = (td_ploc){names[i], names[i], "f.go", i, "/bin/app"};
    }
    char *dup[3] = {td_xstrdup("fn0"), td_xstrdup("f.go"), td_xstrdup("/bin/app")};
    l[SC_LOCS] = (td_ploc){dup[0], dup[0], dup[1], 0, dup[2]};
    uint32_t fr[SC_STACKS][4];
    td_pstack k[SC_STACKS];
    td_psample smp[SC_STACKS];
    for (int i = 0; i < SC_STACKS; i++) {
        uint32_t d = 1 + (uint32_t)i % 4;
        for (uint32_t j = 0; j < d; j++) {
            fr[i][j] = (uint32_t)(i * 3 + (int)j * 11) % SC_LOCS;
        }
        if (i % 5 == 0 && d > 1) {
            fr[i][d - 1] = SC_LOCS; /* the copy of location 0 as the root */
        }
        k[i] = (td_pstack){fr[i], d};
        smp[i] = (td_psample){(uint32_t)i, i + 1, 0, {0}};
    }
    td_pseries_in se = {lab_a_cpu, 3, smp, SC_STACKS};
    td_pwrite w = {"t1", t_ms * 1000000, 0, l, SC_LOCS + 1, k, SC_STACKS, &se, 1};
    td_err err;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);
    for (int i = 0; i < 3; i++) {
        td_free(dup[i]);
    }

    memset(g, 0, sizeof(*g));
    got_series gs = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(gs.n, 1);
    td_pvisit v = {NULL, sc_sample, g};
    TD_ASSERT_EQ_INT(td_pstore_select(s, "t1", gs.id, 1, t_ms, t_ms, &v, &err), TD_OK);
    TD_ASSERT_EQ_INT(g->n, SC_STACKS);
    td_buf got = TD_BUF_INIT, want = TD_BUF_INIT;
    for (int i = 0; i < SC_STACKS; i++) {
        stack_text(s, "t1", g->stack[i], &got);
        td_buf_reset(&want);
        for (uint32_t j = k[i].nframes; j-- > 0;) {
            uint32_t li = fr[i][j];
            td_buf_addf(&want, "%s%s", j + 1 < k[i].nframes ? ";" : "",
                        li == SC_LOCS ? "fn0" : names[li]);
        }
        TD_ASSERT_EQ_STR(got.data, want.data);
    }
    td_buf_release(&got);
    td_buf_release(&want);
}

static void test_symbol_cache(void)
{
    tmp_make();
    /* a tiny cache (one set of 4 ways per kind) still writes the right data */
    td_pstore *s = open_sc(1);
    sc_got a, b, c, d;
    sc_write_check(s, T0, &a);
    sc_write_check(s, T0 + 10000, &b);
    td_pstore_close(s);
    TD_ASSERT_EQ_INT(memcmp(a.stack, b.stack, sizeof(a.stack)), 0);
    /* 61 locations (the copy is location 0), 40 distinct stacks, each stored once */
    TD_ASSERT_EQ_INT(count_type(TD__PK_LOC, NULL), SC_USED_LOCS);
    TD_ASSERT_EQ_INT(count_type(TD__PK_STACK, NULL), SC_STACKS);

    /* after a restart a cold cache resolves to the same IDs, then hits */
    uint64_t cached = sym_metric("stack", "cached"), found = sym_metric("stack", "found");
    uint64_t written = sym_metric("stack", "written");
    s = open_sc(0);
    sc_write_check(s, T0 + 20000, &c);
    TD_ASSERT_EQ_U64(sym_metric("stack", "found") - found, SC_STACKS);
    sc_write_check(s, T0 + 30000, &d);
    TD_ASSERT_EQ_U64(sym_metric("stack", "cached") - cached, SC_STACKS);
    TD_ASSERT_EQ_U64(sym_metric("stack", "written") - written, 0);
    td_pstore_close(s);
    TD_ASSERT_EQ_INT(memcmp(a.stack, c.stack, sizeof(a.stack)), 0);
    TD_ASSERT_EQ_INT(memcmp(a.stack, d.stack, sizeof(a.stack)), 0);
    TD_ASSERT_EQ_INT(count_type(TD__PK_LOC, NULL), SC_USED_LOCS);
    TD_ASSERT_EQ_INT(count_type(TD__PK_STACK, NULL), SC_STACKS);
    tmp_remove();
}

#define SG_N 5000

typedef struct sg_got {
    uint64_t stack[SG_N]; /* by value - 1 */
    size_t n;
} sg_got;

static bool sg_sample(void *ud, const td_psample_out *smp)
{
    sg_got *g = ud;
    TD_CHECK(smp->value >= 1 && smp->value <= SG_N);
    g->stack[smp->value - 1] = smp->stack;
    g->n++;
    return true;
}

/* SG_N one-frame stacks of distinct locations, stack i with value i + 1. */
static void sg_write(td_pstore *s, int64_t t_ms, sg_got *g)
{
    static char names[SG_N][16];
    static td_ploc l[SG_N];
    static uint32_t fr[SG_N];
    static td_pstack k[SG_N];
    static td_psample smp[SG_N];
    for (uint32_t i = 0; i < SG_N; i++) {
        snprintf(names[i], sizeof(names[i]), "g%u", i);
        l[i] = (td_ploc){names[i], names[i], "g.go", 1, ""};
        fr[i] = i;
        k[i] = (td_pstack){&fr[i], 1};
        smp[i] = (td_psample){i, (int64_t)i + 1, 0, {0}};
    }
    td_pseries_in se = {lab_a_cpu, 3, smp, SG_N};
    td_pwrite w = {"t1", t_ms * 1000000, 0, l, SG_N, k, SG_N, &se, 1};
    td_err err;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);
    memset(g, 0, sizeof(*g));
    got_series gs = series_of(s, "t1", NULL, 0, 0, 0);
    td_pvisit v = {NULL, sg_sample, g};
    TD_ASSERT_EQ_INT(td_pstore_select(s, "t1", gs.id, 1, t_ms, t_ms, &v, &err), TD_OK);
    TD_ASSERT_EQ_INT(g->n, SG_N);
}

/* The cache grows past its first size and keeps every entry it had. */
static void test_symbol_cache_grow(void)
{
    tmp_make();
    static sg_got a, b;
    td_pstore *s = open_sc(0);
    sg_write(s, T0, &a);
    uint64_t cached = sym_metric("stack", "cached"), lcached = sym_metric("location", "cached");
    uint64_t written = sym_metric("stack", "written"), found = sym_metric("stack", "found");
    sg_write(s, T0 + 10000, &b);
    /* a few evicted while the table was small are found in the store */
    uint64_t hits = sym_metric("stack", "cached") - cached;
    TD_CHECK(hits >= SG_N * 98 / 100);
    TD_ASSERT_EQ_U64(hits + sym_metric("stack", "found") - found, SG_N);
    /* a cached stack needs no location lookups */
    TD_CHECK(sym_metric("location", "cached") - lcached <= SG_N - hits);
    TD_ASSERT_EQ_U64(sym_metric("stack", "written") - written, 0);
    TD_ASSERT_EQ_INT(memcmp(a.stack, b.stack, sizeof(a.stack)), 0);
    td_buf txt = TD_BUF_INIT;
    stack_text(s, "t1", a.stack[SG_N - 1], &txt);
    TD_ASSERT_EQ_STR(txt.data, "g4999");
    td_buf_release(&txt);
    td_pstore_close(s);
    TD_ASSERT_EQ_INT(count_type(TD__PK_STACK, NULL), SG_N);
    tmp_remove();
}

static void test_time_windows(void)
{
    tmp_make();
    td_pstore *s = open_ps();
    /* a/cpu etc. at T0, T0+10s, T0+20s; then only a/cpu at T0+1h */
    for (int i = 0; i < 3; i++) {
        write_three(s, "t1", T0 + i * 10000, 1);
    }
    td_psample smp = {0, 1, 0, {0}};
    td_pseries_in se = {lab_a_cpu, 3, &smp, 1};
    td_pwrite w = {"t1", (T0 + 3600000) * 1000000 + 999999, 0, locs, 5, stacks, 4, &se, 1};
    td_err err;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);

    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, T0, T0).n, 3);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, T0 + 1, T0 + 9999).n, 0);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, T0 + 20000, T0 + 20000).n, 3);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, T0 + 20001, T0 + 3600000).n, 1);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, T0 + 3600001, T0 + 7200000).n, 0);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, T0 - 100000, T0 - 1).n, 0);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, 0, 0).n, 3);

    got_series g = series_of(s, "t1", NULL, 0, 0, 0);
    got_prof p = select_of(s, "t1", g.id, g.n, T0 + 1, T0 + 20000, false);
    TD_ASSERT_EQ_INT(p.n, 6);
    p = select_of(s, "t1", g.id, g.n, T0, T0 + 9999, false);
    TD_ASSERT_EQ_INT(p.n, 3);
    /* end_ms covers its whole millisecond */
    p = select_of(s, "t1", g.id, 1, T0 + 3600000, T0 + 3600000, false);
    TD_ASSERT_EQ_INT(p.n, 1);
    TD_ASSERT_EQ_INT(p.time[0], (T0 + 3600000) * 1000000 + 999999);
    p = select_of(s, "t1", g.id, g.n, T0 + 3600001, 0, false);
    TD_ASSERT_EQ_INT(p.n, 0);
    p = select_of(s, "t1", g.id, g.n, 0, 0, false);
    TD_ASSERT_EQ_INT(p.n, 10);
    bool any;
    int64_t oldest, newest;
    TD_ASSERT_EQ_INT(td_pstore_stats(s, "t1", &any, &oldest, &newest, &err), TD_OK);
    TD_ASSERT_EQ_INT(oldest, T0);
    TD_ASSERT_EQ_INT(newest, T0 + 3600000);
    td_pstore_close(s);
    tmp_remove();
}

static void test_or_selectors(void)
{
    tmp_make();
    td_pstore *s = open_ps();
    write_three(s, "t1", T0, 1);
    const char *q1[] = {"{service_name=\"b\"}", PT_ALLOC};
    got_series g = series_of(s, "t1", q1, 2, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 2);
    TD_ASSERT_EQ_STR(g.labels[0], "service_name=b,span_name=GET /cart");
    TD_ASSERT_EQ_STR(g.labels[1], "service_name=a");
    /* overlapping selectors visit a series once */
    const char *q2[] = {"{service_name=\"a\"}", "{__name__=~\"mem.*\"}", "{service_name!=\"x\"}"};
    TD_ASSERT_EQ_INT(series_of(s, "t1", q2, 3, 0, 0).n, 3);
    const char *q3[] = {"{service_name=\"zz\"}", "{span_name=\"GET /cart\"}"};
    TD_ASSERT_EQ_INT(series_of(s, "t1", q3, 2, 0, 0).n, 1);
    const char *q4[] = {"{service_name=\"zz\"}", "{}"};
    TD_ASSERT_EQ_INT(series_of(s, "t1", q4, 2, 0, 0).n, 3);
    const char *q5[] = {"{service_name=\"zz\"}", "{span_name=\"zz\"}"};
    TD_ASSERT_EQ_INT(series_of(s, "t1", q5, 2, 0, 0).n, 0);
    td_pstore_close(s);
    tmp_remove();
}

static void test_invalid_writes(void)
{
    tmp_make();
    td_pstore *s = open_ps();
    td_err err;
    td_psample smp = {0, 1, 0, {0}};
    static const td_plabel no_type[] = {{"__name__", "x"}, {"service_name", "a"}};
    td_pseries_in se = {no_type, 2, &smp, 1};
    td_pwrite w = {"t1", T0 * 1000000, 0, locs, 5, stacks, 4, &se, 1};
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "__profile_type__") != NULL);
    static const td_plabel unsorted[] = {{"service_name", "a"}, {"__profile_type__", "x:y"}};
    se.labels = unsorted;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_INVALID);
    se.labels = lab_a_cpu;
    se.nlabels = 3;
    td_psample bad = {4, 1, 0, {0}};
    se.samples = &bad;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_INVALID);
    static const uint32_t badfr[] = {5};
    td_pstack bk = {badfr, 1};
    se.samples = &smp;
    w.stacks = &bk;
    w.nstacks = 1;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_INVALID);
    char longt[TD_TENANT_MAX + 2];
    memset(longt, 'x', sizeof(longt) - 1);
    longt[sizeof(longt) - 1] = 0;
    w.tenant = longt;
    w.stacks = stacks;
    w.nstacks = 4;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_INVALID);
    /* over-long label values */
    char *big = td_xmalloc(65538);
    memset(big, 'v', 65537);
    big[65537] = 0;
    td_plabel biglab[] = {{"__profile_type__", "x:y"}, {"a", big}};
    se.labels = biglab;
    se.nlabels = 2;
    w.tenant = "t1";
    w.stacks = stacks;
    w.nstacks = 4;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_INVALID);
    big[65536] = 0;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);
    td_free(big);
    se.labels = lab_a_cpu;
    se.nlabels = 3;
    td_pstore_close(s);
    tmp_remove();
    tmp_make();
    s = open_ps();
    /* no samples, and all-zero samples: accepted, nothing stored */
    se.nsamples = 0;
    w.tenant = "t1";
    w.stacks = stacks;
    w.nstacks = 4;
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);
    se.nsamples = 1;
    td_psample zero = {0, 0, 0, {0}};
    se.samples = &zero;
    w.tenant = "t1";
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, 0, 0).n, 0);
    td_pstore_close(s);
    tmp_remove();
}

/* Overwrite every record of a type with value v (store closed). */
static void damage(uint8_t type, const char *v, size_t vlen)
{
    leveldb_options_t *lo;
    leveldb_t *db = open_raw(&lo);
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
    char t = (char)type;
    for (leveldb_iter_seek(it, &t, 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl;
        const char *k = leveldb_iter_key(it, &kl);
        if (k[0] != t) {
            break;
        }
        leveldb_writebatch_put(wb, k, kl, v, vlen);
    }
    leveldb_iter_destroy(it);
    char *lerr = NULL;
    leveldb_write(db, wo, wb, &lerr);
    TD_CHECK(lerr == NULL);
    leveldb_writebatch_destroy(wb);
    leveldb_writeoptions_destroy(wo);
    leveldb_readoptions_destroy(ro);
    close_raw(db, lo);
}

static void test_corrupt(void)
{
    static const struct {
        uint8_t type;
        const char *v;
        size_t len;
    } cases[] = {
        {TD__PK_PROFILE, "\x02\x00\x00\x00\x01\x01", 6},                  /* unknown version */
        {TD__PK_PROFILE, "\x01\x80\x00\x00\x01\x01", 6},                  /* unknown flag */
        {TD__PK_PROFILE, "\x01\x00\x00\x02\x02\x01\x05\x02", 8},          /* says two, has one */
        {TD__PK_PROFILE, "\x01\x00\x00\x02\x01\x01\x05\x02\x00", 9},      /* trailing byte */
        {TD__PK_PROFILE, "\x01\x00\x00\x02\x01\x01\x05", 7},              /* cut short */
        {TD__PK_PROFILE, "\x01\x00\x00\x02\x01\x00\x05\x02", 8},          /* gcd 0 */
        {TD__PK_PROFILE, "\x01\x01\x00\x02\x01\x01\x00\x05\x02\x01", 10}, /* span ix > table */
        {TD__PK_PROFILE, "", 0},
        {TD__PK_SERIES, "\x01\x05\x01", 3},
        {TD__PK_STACK, "\x01\x03\x01", 3},
        {TD__PK_LOC, "\x01\x00\x01", 3},
        {TD__PK_COUNTER, "\x01", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tmp_make();
        td_pstore *s = open_ps();
        write_three(s, "t1", T0, 1);
        got_series g = series_of(s, "t1", NULL, 0, 0, 0);
        got_prof p = select_of(s, "t1", g.id, g.n, 0, 0, true);
        uint64_t stack = p.stacks[0];
        td_pstore_close(s);
        damage(cases[i].type, cases[i].v, cases[i].len);
        s = open_ps();
        td_err err;
        td_err_init(&err);
        td_status st = TD_OK;
        got_prof q;
        memset(&q, 0, sizeof(q));
        td_pvisit v = {on_profile, on_sample, &q};
        uint64_t fr[8];
        size_t nf;
        td_arena a;
        td_arena_init(&a, 0, 0);
        td_ploc l;
        switch (cases[i].type) {
        case TD__PK_PROFILE:
            st = td_pstore_select(s, "t1", g.id, g.n, 0, 0, &v, &err);
            break;
        case TD__PK_SERIES:
            st = td_pstore_series(s, "t1", NULL, 0, 0, 0, on_series, &g, &err);
            break;
        case TD__PK_STACK:
            st = td_pstore_stack(s, "t1", stack, fr, 8, &nf, &err);
            break;
        case TD__PK_LOC:
            st = td_pstore_location(s, "t1", 1, &a, &l, &err);
            break;
        case TD__PK_COUNTER: {
            td_psample smp = {0, 1, 0, {0}};
            td_pseries_in se = {lab_a_cpu, 3, &smp, 1};
            td_pwrite w = {"t1", T0 * 1000000, 0, locs, 5, stacks, 4, &se, 1};
            st = td_pstore_write(s, &w, &err);
            break;
        }
        }
        td_arena_release(&a);
        if (st != TD_CORRUPT) {
            fprintf(stderr, "  case %zu: status %d (%s)\n", i, st, err.msg);
        }
        TD_ASSERT_EQ_INT(st, TD_CORRUPT);
        TD_CHECK(err.msg[0] != 0);
        td_pstore_close(s);
        tmp_remove();
    }
}

static bool count_entry(void *ud, const td_psample_out *smp)
{
    (void)smp;
    (*(uint64_t *)ud)++;
    return true;
}

/*
 * The encoded size of a realistic series: 360 CPU profiles 10 s apart (one
 * hour), 2000 samples each drawn from ~500 distinct stacks (depth 8-40 over a
 * pool of 300 functions), values in 10 ms units, a third of the samples
 * carrying one of 16 span IDs. Prints bytes per sample of the profile values
 * and on disk after compaction (symbols excluded, they are written once).
 */
static void test_bytes_per_sample(void)
{
    tmp_make();
    td_pstore *s = open_ps();
    enum { NLOCS = 300, NSTACKS = 500, NSAMPLES = 2000, NPROFILES = 360 };
    static td_ploc pl[NLOCS];
    static char names[NLOCS][32];
    static uint32_t frames[NSTACKS][40];
    static td_pstack ps[NSTACKS];
    static td_psample smp[NSAMPLES];
    uint64_t rng = 88172645463325252ull;
#define RND() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    for (int i = 0; i < NLOCS; i++) {
        snprintf(names[i], sizeof(names[i]), "pkg%d.func%d", i % 17, i);
        pl[i] = (td_ploc){names[i], names[i], "file.go", i + 1, "/bin/app"};
    }
    for (int i = 0; i < NSTACKS; i++) {
        uint32_t depth = 8 + (uint32_t)(RND() % 33);
        for (uint32_t d = 0; d < depth; d++) {
            frames[i][d] = (uint32_t)(RND() % NLOCS);
        }
        ps[i] = (td_pstack){frames[i], depth};
    }
    td_pseries_in se = {lab_a_cpu, 3, smp, NSAMPLES};
    td_pwrite w = {"t1", 0, 10000000000, pl, NLOCS, ps, NSTACKS, &se, 1};
    td_err err;
    uint64_t nsamples = 0;
    for (int p = 0; p < NPROFILES; p++) {
        for (int i = 0; i < NSAMPLES; i++) {
            /* skewed: low stack indices are hot */
            uint32_t a = (uint32_t)(RND() % NSTACKS), b = (uint32_t)(RND() % NSTACKS);
            smp[i].stack = a < b ? a : b;
            smp[i].value = (int64_t)(1 + RND() % 20) * 10000000;
            smp[i].span_id = RND() % 3 == 0 ? 0x1000 + RND() % 16 : 0;
            memset(smp[i].trace_id, 0, 16);
        }
        nsamples += NSAMPLES;
        w.time_ns = (T0 + p * 10000) * 1000000;
        TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);
    }
    got_series g = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 1);
    /* stored entries: samples after merging equal (stack, span) pairs */
    uint64_t entries = 0;
    td_pvisit v = {NULL, count_entry, &entries};
    TD_ASSERT_EQ_INT(td_pstore_select(s, "t1", g.id, 1, 0, 0, &v, &err), TD_OK);
    td_pstore_close(s);

    uint64_t pbytes, sbytes, lbytes;
    size_t nprof = count_type(TD__PK_PROFILE, &pbytes);
    count_type(TD__PK_STACK, &sbytes);
    count_type(TD__PK_LOC, &lbytes);
    TD_ASSERT_EQ_INT(nprof, NPROFILES);
    /* on disk: compact, then LevelDB's estimate of the profile key range */
    leveldb_options_t *lo;
    leveldb_t *db = open_raw(&lo);
    leveldb_compact_range(db, NULL, 0, NULL, 0);
    const char *start = "X", *limit = "Y";
    size_t sl = 1, ll = 1;
    uint64_t disk = 0;
    leveldb_approximate_sizes(db, 1, &start, &sl, &limit, &ll, &disk);
    close_raw(db, lo);
    double per = (double)pbytes / (double)nsamples;
    printf("  bytes/sample: %.2f encoded (%llu bytes of profile records for %llu samples in %zu "
           "profiles; %.2f per stored (stack, span) entry, %llu entries), %.2f on disk after "
           "compaction; symbols: %llu bytes of stacks, %llu of locations\n",
           per, (unsigned long long)pbytes, (unsigned long long)nsamples, nprof,
           (double)pbytes / (double)entries, (unsigned long long)entries,
           (double)disk / (double)nsamples, (unsigned long long)sbytes, (unsigned long long)lbytes);
    TD_CHECK(per <= 8.0);
    tmp_remove();
}

typedef struct conc_arg {
    td_pstore *s;
    int64_t base;
    int ok;
} conc_arg;

static void *conc_writer(void *p)
{
    conc_arg *c = p;
    for (int i = 0; i < 50; i++) {
        td_psample sa[] = {{0, 10, 0, {0}}, {1, 20, 0, {0}}, {3, 5, 7, {0}}};
        td_pseries_in series[] = {{lab_a_cpu, 3, sa, 3}, {lab_b_cpu, 4, sa, 2}};
        td_pwrite w = {"t1", (c->base + i) * 1000000, 0, locs, 5, stacks, 4, series, 2};
        td_err err;
        c->ok += td_pstore_write(c->s, &w, &err) == TD_OK;
    }
    return NULL;
}

static bool conc_series(void *ud, const td_pseries *s)
{
    (*(int *)ud)++;
    return s->nlabels > 0;
}

static bool conc_profile(void *ud, uint64_t series, int64_t time_ns, int64_t total)
{
    (void)series;
    (void)time_ns;
    *(int *)ud += total == 35 || total == 30;
    return true;
}

static void *conc_reader(void *p)
{
    conc_arg *c = p;
    for (int i = 0; i < 50; i++) {
        int n = 0, good = 0;
        td_err err;
        if (td_pstore_series(c->s, "t1", NULL, 0, 0, 0, conc_series, &n, &err) != TD_OK) {
            return NULL;
        }
        uint64_t ids[] = {1, 2};
        td_pvisit v = {conc_profile, NULL, &good};
        if (td_pstore_select(c->s, "t1", ids, 2, 0, 0, &v, &err) != TD_OK) {
            return NULL;
        }
        c->ok += n <= 2;
    }
    return NULL;
}

/* Two writers and a reader at once: symbols are interned once, nothing is lost. */
static void test_concurrent(void)
{
    tmp_make();
    td_pstore *s = open_ps();
    conc_arg w1 = {s, T0, 0}, w2 = {s, T0 + 100000, 0}, r = {s, 0, 0};
    pthread_t t[3];
    TD_ASSERT_EQ_INT(pthread_create(&t[0], NULL, conc_writer, &w1), 0);
    TD_ASSERT_EQ_INT(pthread_create(&t[1], NULL, conc_writer, &w2), 0);
    TD_ASSERT_EQ_INT(pthread_create(&t[2], NULL, conc_reader, &r), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
    }
    TD_ASSERT_EQ_INT(w1.ok, 50);
    TD_ASSERT_EQ_INT(w2.ok, 50);
    TD_ASSERT_EQ_INT(r.ok, 50);
    td_pstore_close(s);
    TD_ASSERT_EQ_INT(count_type(TD__PK_PROFILE, NULL), 200);
    TD_ASSERT_EQ_INT(count_type(TD__PK_SERIES, NULL), 2);
    TD_ASSERT_EQ_INT(count_type(TD__PK_STACK, NULL), 3);
    TD_ASSERT_EQ_INT(count_type(TD__PK_LOC, NULL), 4); /* stack 2's render and memcpy unused */
    tmp_remove();
}

/* Every allocation of a parse may fail: TD_NOMEM, nothing leaks (ASan checks that). */
static void test_selector_nomem(void)
{
    const char *q = PT_CPU "{a=\"x\", b=~\"(?i)fo+|ba[rz]\", c!~\"\\\\d+\", d!=\"\\u00e9\"}";
    bool done = false;
    for (long n = 1; n < 1000 && !done; n++) {
        td_arena a;
        td_arena_init(&a, 256, 0);
        td_pselector sel;
        td_err err;
        td_mem_fail_after(n);
        td_status st = td_pselector_parse(q, strlen(q), &a, &sel, &err);
        bool injected = td_mem_fail_after(0);
        if (injected) {
            TD_ASSERT_EQ_INT(st, TD_NOMEM);
        } else {
            TD_ASSERT_EQ_INT(st, TD_OK);
            TD_ASSERT_EQ_INT(sel.n, 4);
            td_pselector_release(&sel);
            done = true;
        }
        td_arena_release(&a);
    }
    TD_CHECK(done);
}

/* Every allocation of a write may fail: TD_NOMEM and a later write still succeeds. */
static void test_write_nomem(void)
{
    tmp_make();
    td_pstore *s = open_ps();
    bool done = false;
    for (long n = 1; n < 1000 && !done; n++) {
        td_psample sb[] = {{3, 7, 0x1122334455667788ull, {0}},
                           {3, 3, 0, {0}},
                           {2, 1, 0x1122334455667788ull, {[0] = 0xab, [15] = 0xcd}}};
        td_pseries_in se = {lab_b_cpu, 4, sb, 3};
        td_pwrite w = {"t1", T0 * 1000000, 0, locs, 5, stacks, 4, &se, 1};
        td_err err;
        td_mem_fail_after(n);
        td_status st = td_pstore_write(s, &w, &err);
        bool injected = td_mem_fail_after(0);
        if (injected) {
            TD_ASSERT_EQ_INT(st, TD_NOMEM);
        } else {
            TD_ASSERT_EQ_INT(st, TD_OK);
            done = true;
        }
    }
    TD_CHECK(done);
    write_three(s, "t1", T0 + 1000, 1);
    got_series g = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 3);
    td_pstore_close(s);
    tmp_remove();
}

/* ---- retention ---- */

static td_pstore_retained retain_ps(td_pstore *s, int64_t cutoff_ns)
{
    td_pstore_retained r;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_pstore_retain(s, cutoff_ns, NULL, &r, &err), TD_OK);
    return r;
}

/*
 * Old profiles go, with their time keys; a series left without profiles goes
 * with its postings (selectors no longer find it) and comes back under a new
 * ID when written again. Passes are idempotent; cutoff 0 deletes nothing.
 */
static void test_retention(void)
{
    tmp_make();
    td_pstore *s = open_ps();
    for (int i = 0; i < 3; i++) {
        write_three(s, "t1", T0 + i * 10000, 1);
    }
    write_three(s, "t2", T0, 1);
    td_psample smp = {0, 1, 0, {0}};
    td_pseries_in se = {lab_a_cpu, 3, &smp, 1};
    td_pwrite w = {"t1", (T0 + 3600000) * 1000000, 0, locs, 5, stacks, 4, &se, 1};
    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_pstore_write(s, &w, &err), TD_OK);
    got_series g0 = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g0.n, 3);

    td_pstore_retained r = retain_ps(s, 0);
    TD_ASSERT_EQ_U64(r.profiles + r.time_keys + r.series + r.postings, 0);
    uint64_t before =
        td_metric_get(td_metric_series(TD_M_RETENTION_DELETED, "profiles", "profile", NULL));

    /* cutoff between the second and third profile: T0 and T0+10s go */
    r = retain_ps(s, (T0 + 15000) * 1000000 + 500);
    TD_ASSERT_EQ_U64(r.profiles, 9); /* 6 of t1, 3 of t2 */
    TD_ASSERT_EQ_U64(r.time_keys, 9);
    TD_ASSERT_EQ_U64(r.series, 3); /* t2's */
    TD_ASSERT_EQ_U64(r.postings, 10);
    TD_ASSERT_EQ_U64(
        td_metric_get(td_metric_series(TD_M_RETENTION_DELETED, "profiles", "profile", NULL)),
        before + 9);
    got_series g = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 3);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, T0, T0 + 10000).n, 0);
    TD_ASSERT_EQ_INT(series_of(s, "t1", NULL, 0, T0 + 20000, T0 + 20000).n, 3);
    TD_ASSERT_EQ_INT(series_of(s, "t2", NULL, 0, 0, 0).n, 0);
    got_prof p = select_of(s, "t1", g.id, g.n, 0, 0, true);
    TD_ASSERT_EQ_INT(p.n, 4);
    for (size_t i = 0; i < p.n; i++) {
        TD_CHECK(p.time[i] >= (T0 + 20000) * 1000000);
    }
    bool any;
    int64_t oldest, newest;
    TD_ASSERT_EQ_INT(td_pstore_stats(s, "t1", &any, &oldest, &newest, &err), TD_OK);
    TD_CHECK(any);
    TD_ASSERT_EQ_INT(oldest, T0 + 20000);
    TD_ASSERT_EQ_INT(td_pstore_stats(s, "t2", &any, &oldest, &newest, &err), TD_OK);
    TD_CHECK(!any);

    /* past the third: b/cpu and a/alloc are left empty and disappear */
    r = retain_ps(s, (T0 + 30000) * 1000000);
    TD_ASSERT_EQ_U64(r.profiles, 3);
    TD_ASSERT_EQ_U64(r.series, 2);
    TD_ASSERT_EQ_U64(r.postings, 7);
    g = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 1);
    TD_ASSERT_EQ_STR(g.labels[0], "service_name=a");
    TD_ASSERT_EQ_INT(series_of(s, "t1", (const char *const[]){"{service_name=\"b\"}"}, 1, 0, 0).n,
                     0);
    TD_ASSERT_EQ_INT(
        series_of(s, "t1", (const char *const[]){PT_ALLOC "{service_name=\"a\"}"}, 1, 0, 0).n, 0);
    p = select_of(s, "t1", g0.id, g0.n, 0, 0, true);
    TD_ASSERT_EQ_INT(p.n, 1);
    TD_ASSERT_EQ_INT(p.sum[0], 1);

    /* idempotent */
    r = retain_ps(s, (T0 + 30000) * 1000000);
    TD_ASSERT_EQ_U64(r.profiles + r.time_keys + r.series + r.postings, 0);

    /* written again, the emptied series come back (new IDs, symbols reused) */
    write_three(s, "t1", T0 + 7200000, 1);
    g = series_of(s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 3);
    TD_ASSERT_EQ_INT(series_of(s, "t1", (const char *const[]){"{service_name=\"b\"}"}, 1, 0, 0).n,
                     1);
    p = select_of(s, "t1", g.id, g.n, T0 + 7200000, 0, true);
    TD_ASSERT_EQ_INT(p.n, 3);
    TD_ASSERT_EQ_INT(p.sum[0] + p.sum[1] + p.sum[2], 35 + 11 + 4096);
    td_pstore_close(s);
    TD_ASSERT_EQ_U64(count_type('S', NULL), 3);
    TD_ASSERT_EQ_U64(count_type('s', NULL), 3);
    TD_ASSERT_EQ_U64(count_type('N', NULL), 10);
    TD_ASSERT_EQ_U64(count_type('X', NULL), 4);
    TD_ASSERT_EQ_U64(count_type('I', NULL), 4);
    tmp_remove();
}

/*
 * Retention passes racing a writer: new profiles of a/cpu, b/cpu and
 * a/alloc, and old-only profiles of series x, which passes keep emptying
 * (deleting the series) while the writer keeps creating it again. No write
 * or pass fails, and a last pass leaves exactly the new profiles.
 */
static const td_plabel lab_x_cpu[] = {
    {"__name__", "process_cpu"}, {"__profile_type__", PT_CPU}, {"service_name", "x"}};

typedef struct ret_race {
    td_pstore *s;
    atomic_bool done;
    int failures;
} ret_race;

enum { RRACE_N = 150 };

static void *ret_race_writer(void *p)
{
    ret_race *c = p;
    for (int i = 0; i < RRACE_N; i++) {
        write_three(c->s, "t1", T0 + 3600000 + i, 1);
        td_psample smp = {0, 1, 0, {0}};
        td_pseries_in se = {lab_x_cpu, 3, &smp, 1};
        td_pwrite w = {"t1", (T0 + i) * 1000000, 0, locs, 5, stacks, 4, &se, 1};
        td_err err;
        td_err_init(&err);
        if (td_pstore_write(c->s, &w, &err) != TD_OK) {
            c->failures++;
        }
    }
    atomic_store(&c->done, true);
    return NULL;
}

static void test_retention_race(void)
{
    tmp_make();
    ret_race c = {.s = open_ps()};
    atomic_init(&c.done, false);
    pthread_t w;
    TD_ASSERT_EQ_INT(pthread_create(&w, NULL, ret_race_writer, &c), 0);
    int passes = 0;
    while (!atomic_load(&c.done)) {
        retain_ps(c.s, (T0 + 1800000) * 1000000);
        passes++;
    }
    pthread_join(w, NULL);
    TD_ASSERT_EQ_INT(c.failures, 0);
    TD_CHECK(passes > 0);
    retain_ps(c.s, (T0 + 1800000) * 1000000);
    got_series g = series_of(c.s, "t1", NULL, 0, 0, 0);
    TD_ASSERT_EQ_INT(g.n, 3);
    TD_ASSERT_EQ_INT(series_of(c.s, "t1", (const char *const[]){"{service_name=\"x\"}"}, 1, 0, 0).n,
                     0);
    td_pstore_retained r = retain_ps(c.s, (T0 + 1800000) * 1000000);
    TD_ASSERT_EQ_U64(r.profiles + r.time_keys + r.series + r.postings, 0);
    td_pstore_close(c.s);
    TD_ASSERT_EQ_U64(count_type('X', NULL), 3 * RRACE_N);
    TD_ASSERT_EQ_U64(count_type('I', NULL), 3 * RRACE_N);
    TD_ASSERT_EQ_U64(count_type('S', NULL), 3);
    TD_ASSERT_EQ_U64(count_type('s', NULL), 3);
    TD_ASSERT_EQ_U64(count_type('N', NULL), 10);
    tmp_remove();
}

TEST_LIST = {
    {"retention_race", test_retention_race},
    {"retention", test_retention},
    {"selector_parse", test_selector_parse},
    {"selector_errors", test_selector_errors},
    {"selector_match", test_selector_match},
    {"roundtrip", test_roundtrip},
    {"dedup_and_reopen", test_dedup_and_reopen},
    {"symbol_cache", test_symbol_cache},
    {"symbol_cache_grow", test_symbol_cache_grow},
    {"time_windows", test_time_windows},
    {"or_selectors", test_or_selectors},
    {"invalid_writes", test_invalid_writes},
    {"corrupt", test_corrupt},
    {"concurrent", test_concurrent},
    {"selector_nomem", test_selector_nomem},
    {"write_nomem", test_write_nomem},
    {"bytes_per_sample", test_bytes_per_sample},
    {NULL, NULL},
};
