/*
 * test_tags.c - tag names and values (api/tempo_tags.c): parameter and path
 * parsing, identifier validation and its error texts, value rendering, the
 * fixed intrinsic answers, scopes, index and q-filtered answers over a real
 * store, JSON and protobuf encodings (decoded back with protobuf-c), and the
 * four HTTP routes on a running query port.
 */
#include "api/api.h"
#include "api/tempo.h"
#include "api/tempo_tags.h"
#include "core/log.h"
#include "core/mem.h"
#include "proto/proto.h"
#include "store/store.h"
#include "td_test.h"
#include "tempopb/tempo_tags.pb-c.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* pure parts                                                               */
/* ------------------------------------------------------------------------ */

static void test_http_args(void)
{
    td__tags_req r;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__tags_http_args(TD__TAGS_V2, "span", NULL, "{}", "1700000000", "1700003600",
                                    "5000", &r, &err));
    TD_ASSERT_EQ_U64(r.start, 1700000000);
    TD_ASSERT_EQ_U64(r.end, 1700003600);
    TD_ASSERT_EQ_U64(r.limit, 5000);
    TD_ASSERT_EQ_STR(r.scope, "span");
    /* absent and empty are the same */
    TD_ASSERT_OK(td__tags_http_args(TD__TAGS_V2, NULL, NULL, NULL, "", NULL, "", &r, &err));
    TD_ASSERT_EQ_U64(r.start + r.end + r.limit, 0);
    /* signed int32, used as uint32; end before start is not an error */
    TD_ASSERT_OK(td__tags_http_args(TD__TAGS_V2, NULL, NULL, NULL, "-1", "+5", NULL, &r, &err));
    TD_ASSERT_EQ_U64(r.start, 4294967295u);
    TD_ASSERT_EQ_U64(r.end, 5);
    TD_ASSERT_OK(td__tags_http_args(TD__TAGS_V1, NULL, NULL, NULL, "2147483647", "-2147483648",
                                    NULL, &r, &err));
    TD_ASSERT_EQ_INT(
        td__tags_http_args(TD__TAGS_V2, NULL, NULL, NULL, "2147483648", NULL, NULL, &r, &err),
        TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg,
                     "invalid start: strconv.ParseInt: parsing \"2147483648\": value out of range");
    TD_ASSERT_EQ_INT(td__tags_http_args(TD__TAGS_V2, NULL, NULL, NULL, NULL, "1h", NULL, &r, &err),
                     TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "invalid end: strconv.ParseInt: parsing \"1h\": invalid syntax");
    TD_ASSERT_EQ_INT(td__tags_http_args(TD__TAGS_V2, NULL, NULL, NULL, NULL, NULL, "-1", &r, &err),
                     TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "invalid limit: strconv.ParseUint: parsing \"-1\": invalid syntax");
    TD_ASSERT_EQ_INT(td__tags_http_args(TD__TAG_VALUES_V2, NULL, NULL, NULL, NULL, NULL,
                                        "99999999999999999999999", &r, &err),
                     TD_INVALID);
    TD_CHECK(strstr(err.msg, "invalid limit: ") == err.msg);
    TD_CHECK(strstr(err.msg, "value out of range") != NULL);
    TD_ASSERT_OK(td__tags_http_args(TD__TAG_VALUES_V2, NULL, NULL, NULL, NULL, NULL, "4294967295",
                                    &r, &err));
    TD_ASSERT_EQ_U64(r.limit, 4294967295u);
}

static void test_path_tag(void)
{
    const char *t;
    size_t n;
    TD_CHECK(td__tags_path_tag("resource.service.name/values", &t, &n));
    TD_ASSERT_EQ_U64(n, strlen("resource.service.name"));
    /* the tag runs to the LAST /values: slashes stay in it */
    TD_CHECK(td__tags_path_tag("span.a/values/b/values", &t, &n));
    TD_ASSERT_EQ_MEM(t, "span.a/values/b", n);
    TD_ASSERT_EQ_U64(n, 15);
    TD_CHECK(td__tags_path_tag("span.encoded/tagName/values", &t, &n));
    TD_ASSERT_EQ_MEM(t, "span.encoded/tagName", n);
    TD_CHECK(td__tags_path_tag("/values", &t, &n));
    TD_ASSERT_EQ_U64(n, 0);
    TD_CHECK(!td__tags_path_tag("name/value", &t, &n));
    TD_CHECK(!td__tags_path_tag("name/values/", &t, &n));
    TD_CHECK(!td__tags_path_tag("", &t, &n));
}

static void expect_float(double v, const char *want)
{
    td_buf b = TD_BUF_INIT;
    td__tags_format_float(v, &b);
    if (strcmp(b.data, want) != 0) {
        fprintf(stderr, "  %.17g -> %s, want %s\n", v, b.data, want);
    }
    TD_ASSERT_EQ_STR(b.data, want);
    td_buf_release(&b);
}

static void test_float_format(void)
{
    /* strconv.FormatFloat(v, 'g', -1, 64) */
    expect_float(0.25, "0.25");
    expect_float(3.141592653589793, "3.141592653589793");
    expect_float(1, "1");
    expect_float(-0.5, "-0.5");
    expect_float(123456, "123456");
    expect_float(1000000, "1e+06");
    expect_float(1234567, "1.234567e+06");
    expect_float(1.5e-7, "1.5e-07");
    expect_float(0.0001, "0.0001");
    expect_float(0.00001, "1e-05");
    expect_float(1e300, "1e+300");
    expect_float(1e-300, "1e-300");
    expect_float(0.1 + 0.2, "0.30000000000000004");
    expect_float(6.02214076e-23, "6.02214076e-23");
    expect_float(0, "0");
    expect_float(-0.0, "-0");
    expect_float(INFINITY, "+Inf");
    expect_float(-INFINITY, "-Inf");
    expect_float(NAN, "NaN");
}

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void expect_value(uint8_t t, const void *raw, size_t len, const char *type, const char *v)
{
    td_buf b = TD_BUF_INIT;
    const char *got_type = NULL;
    TD_CHECK(td__tags_value_text(t, raw, len, &got_type, &b));
    TD_ASSERT_EQ_STR(got_type, type);
    TD_ASSERT_EQ_STR(b.data, v);
    td_buf_release(&b);
}

static void test_value_text(void)
{
    uint8_t raw[8];
    expect_value(TD_IDX_STRING, "cart", 4, "string", "cart");
    expect_value(TD_IDX_KEYWORD, "error", 5, "keyword", "error");
    be64(raw, (uint64_t)500 ^ (1ull << 63));
    expect_value(TD_IDX_INT, raw, 8, "int", "500");
    be64(raw, (uint64_t)(int64_t)-17 ^ (1ull << 63));
    expect_value(TD_IDX_INT, raw, 8, "int", "-17");
    be64(raw, (uint64_t)INT64_MIN ^ (1ull << 63));
    expect_value(TD_IDX_INT, raw, 8, "int", "-9223372036854775808");
    double d = 0.25;
    uint64_t u;
    memcpy(&u, &d, 8);
    be64(raw, u | (1ull << 63)); /* positive: sign bit flipped */
    expect_value(TD_IDX_FLOAT, raw, 8, "float", "0.25");
    d = -2.25;
    memcpy(&u, &d, 8);
    be64(raw, ~u); /* negative: every bit flipped */
    expect_value(TD_IDX_FLOAT, raw, 8, "float", "-2.25");
    expect_value(TD_IDX_BOOL, "\1", 1, "bool", "true");
    expect_value(TD_IDX_BOOL, "\0", 1, "bool", "false");
    td_buf b = TD_BUF_INIT;
    const char *t;
    TD_CHECK(!td__tags_value_text(TD_IDX_DURCLASS, (const uint8_t *)"\5", 1, &t, &b));
    TD_CHECK(!td__tags_value_text(TD_IDX_INT, raw, 7, &t, &b));
    TD_CHECK(!td__tags_value_text(TD_IDX_BOOL, (const uint8_t *)"ab", 2, &t, &b));
    td_buf_release(&b);
}

/* ------------------------------------------------------------------------ */
/* a store with fragments and index entries                                 */
/* ------------------------------------------------------------------------ */

typedef struct tattr {
    const char *key;
    char type; /* s i f b */
    const char *s;
    int64_t i;
    double f;
} tattr;

typedef struct tspan {
    const char *id;     /* 16 hex */
    const char *parent; /* 16 hex or NULL */
    const char *name;
    int kind;   /* OTLP */
    int status; /* OTLP */
    uint64_t start_ns, end_ns;
    tattr attrs[4];
    const char *event; /* an event name, or NULL */
} tspan;

static void unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void any_of(const tattr *a, td_otlp_any *v)
{
    opentelemetry__proto__common__v1__any_value__init(v);
    switch (a->type) {
    case 's':
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = (char *)a->s;
        break;
    case 'i':
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        v->int_value = a->i;
        break;
    case 'f':
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        v->double_value = a->f;
        break;
    default:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        v->bool_value = a->i != 0;
        break;
    }
}

static size_t nattrs(const tattr *a)
{
    size_t n = 0;
    while (n < 4 && a[n].key) {
        n++;
    }
    return n;
}

/* The index value bytes of a (what the collector writes, store.h td_idx_type). */
static size_t idx_val(const tattr *a, uint8_t *type, uint8_t out[8], const char **str)
{
    *str = NULL;
    switch (a->type) {
    case 's':
        *type = TD_IDX_STRING;
        *str = a->s;
        return strlen(a->s);
    case 'i':
        *type = TD_IDX_INT;
        be64(out, (uint64_t)a->i ^ (1ull << 63));
        return 8;
    case 'f': {
        uint64_t u;
        memcpy(&u, &a->f, 8);
        *type = TD_IDX_FLOAT;
        be64(out, (u & (1ull << 63)) ? ~u : u | (1ull << 63));
        return 8;
    }
    default:
        *type = TD_IDX_BOOL;
        out[0] = a->i != 0;
        return 1;
    }
}

typedef struct ientry {
    uint8_t scope, type;
    const char *key;
    uint8_t raw[8];
    const char *str;
    size_t len;
} ientry;

static const char *const kind_kw[] = {"unspecified", "internal", "server",
                                      "client",      "producer", "consumer"};
static const char *const status_kw[] = {"unset", "ok", "error"};

/* Write one fragment (one resource, spans of one trace) with its index entries. */
static void write_trace(td_store *s, const char *tenant, const char *tid, const tattr *res_attrs,
                        const tspan *spans, size_t nspans)
{
    /* the fragment */
    td_otlp_kv rkv[4], skv[8][4], *rkvp[4], *skvp[8][4];
    td_otlp_any rv[4], sv[8][4];
    size_t nr = nattrs(res_attrs);
    for (size_t i = 0; i < nr; i++) {
        opentelemetry__proto__common__v1__key_value__init(&rkv[i]);
        rkv[i].key = (char *)res_attrs[i].key;
        any_of(&res_attrs[i], &rv[i]);
        rkv[i].value = &rv[i];
        rkvp[i] = &rkv[i];
    }
    td_otlp_resource res;
    opentelemetry__proto__resource__v1__resource__init(&res);
    res.n_attributes = nr;
    res.attributes = rkvp;
    td_otlp_span sp[8], *spp[8];
    td_otlp_status stt[8];
    td_otlp_event ev[8], *evp[8];
    uint8_t ids[8][8], pids[8][8], trace[16];
    unhex(tid, trace);
    TD_CHECK(nspans <= 8);
    for (size_t k = 0; k < nspans; k++) {
        const tspan *x = &spans[k];
        opentelemetry__proto__trace__v1__span__init(&sp[k]);
        unhex(x->id, ids[k]);
        sp[k].trace_id = (ProtobufCBinaryData){16, trace};
        sp[k].span_id = (ProtobufCBinaryData){8, ids[k]};
        if (x->parent) {
            unhex(x->parent, pids[k]);
            sp[k].parent_span_id = (ProtobufCBinaryData){8, pids[k]};
        }
        sp[k].name = (char *)x->name;
        sp[k].kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)x->kind;
        sp[k].start_time_unix_nano = x->start_ns;
        sp[k].end_time_unix_nano = x->end_ns;
        opentelemetry__proto__trace__v1__status__init(&stt[k]);
        stt[k].code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)x->status;
        sp[k].status = &stt[k];
        size_t na = nattrs(x->attrs);
        for (size_t i = 0; i < na; i++) {
            opentelemetry__proto__common__v1__key_value__init(&skv[k][i]);
            skv[k][i].key = (char *)x->attrs[i].key;
            any_of(&x->attrs[i], &sv[k][i]);
            skv[k][i].value = &sv[k][i];
            skvp[k][i] = &skv[k][i];
        }
        sp[k].n_attributes = na;
        sp[k].attributes = skvp[k];
        if (x->event) {
            opentelemetry__proto__trace__v1__span__event__init(&ev[k]);
            ev[k].name = (char *)x->event;
            evp[k] = &ev[k];
            sp[k].n_events = 1;
            sp[k].events = &evp[k];
        }
        spp[k] = &sp[k];
    }
    td_otlp_scope_spans ss;
    opentelemetry__proto__trace__v1__scope_spans__init(&ss);
    ss.n_spans = nspans;
    ss.spans = spp;
    td_otlp_scope_spans *ssp = &ss;
    td_otlp_resource_spans rs;
    opentelemetry__proto__trace__v1__resource_spans__init(&rs);
    rs.resource = &res;
    rs.n_scope_spans = 1;
    rs.scope_spans = &ssp;
    size_t flen = opentelemetry__proto__trace__v1__resource_spans__get_packed_size(&rs);

    /* its index entries */
    ientry e[64];
    size_t ne = 0;
    for (size_t i = 0; i < nr; i++) {
        e[ne].scope = TD_IDX_RESOURCE;
        e[ne].key = res_attrs[i].key;
        e[ne].len = idx_val(&res_attrs[i], &e[ne].type, e[ne].raw, &e[ne].str);
        ne++;
    }
    for (size_t k = 0; k < nspans; k++) {
        for (size_t i = 0; i < nattrs(spans[k].attrs); i++) {
            e[ne].scope = TD_IDX_SPAN;
            e[ne].key = spans[k].attrs[i].key;
            e[ne].len = idx_val(&spans[k].attrs[i], &e[ne].type, e[ne].raw, &e[ne].str);
            ne++;
        }
        e[ne++] = (ientry){TD_IDX_INTRINSIC, TD_IDX_STRING,        "name", {0},
                           spans[k].name,    strlen(spans[k].name)};
        e[ne].scope = TD_IDX_INTRINSIC;
        e[ne].type = TD_IDX_KEYWORD;
        e[ne].key = "status";
        e[ne].str = status_kw[spans[k].status];
        e[ne].len = strlen(e[ne].str);
        ne++;
        e[ne].scope = TD_IDX_INTRINSIC;
        e[ne].type = TD_IDX_KEYWORD;
        e[ne].key = "kind";
        e[ne].str = kind_kw[spans[k].kind];
        e[ne].len = strlen(e[ne].str);
        ne++;
    }
    size_t cap = flen;
    for (size_t i = 0; i < ne; i++) {
        cap += strlen(e[i].key) + e[i].len;
    }
    td_batch *b = td_batch_new_idx(tenant, 1, 0, ne, cap);
    TD_CHECK(b != NULL);
    td_frag *f = &b->frags[0];
    memcpy(f->trace_id, trace, 16);
    f->start_ns = UINT64_MAX;
    f->end_ns = 0;
    for (size_t k = 0; k < nspans; k++) {
        f->start_ns = spans[k].start_ns < f->start_ns ? spans[k].start_ns : f->start_ns;
        f->end_ns = spans[k].end_ns > f->end_ns ? spans[k].end_ns : f->end_ns;
        f->nerrors += spans[k].status == 2;
        if (!spans[k].parent) {
            f->has_root = true;
        }
    }
    f->nspans = (uint32_t)nspans;
    f->len = (uint32_t)flen;
    opentelemetry__proto__trace__v1__resource_spans__pack(&rs, b->data);
    f->data = b->data;
    size_t off = flen;
    for (size_t i = 0; i < ne; i++) {
        td_idx_entry *x = &b->idx[i];
        x->frag = 0;
        x->scope = e[i].scope;
        x->type = e[i].type;
        x->key_len = (uint16_t)strlen(e[i].key);
        memcpy(b->data + off, e[i].key, x->key_len);
        x->key = b->data + off;
        off += x->key_len;
        x->val_len = (uint32_t)e[i].len;
        memcpy(b->data + off, e[i].str ? (const uint8_t *)e[i].str : e[i].raw, e[i].len);
        x->val = b->data + off;
        off += e[i].len;
    }
    b->q.spans = nspans;
    b->q.bytes = cap;
    td_err err;
    td_err_init(&err);
    td_status st = td_store_write(s, &b, 1, &err);
    if (st) {
        fprintf(stderr, "  write: %s\n", err.msg);
    }
    td_batch_free(b);
    TD_ASSERT_EQ_INT(st, TD_OK);
}

#define AS(k, v)                                                                                   \
    {                                                                                              \
        k, 's', v, 0, 0                                                                            \
    }
#define AI(k, v)                                                                                   \
    {                                                                                              \
        k, 'i', NULL, v, 0                                                                         \
    }
#define AF(k, v)                                                                                   \
    {                                                                                              \
        k, 'f', NULL, 0, v                                                                         \
    }
#define AB(k, v)                                                                                   \
    {                                                                                              \
        k, 'b', NULL, v, 0                                                                         \
    }

#define T1 "11111111111111111111111111111111"
#define T2 "22222222222222222222222222222222"
#define T3 "33333333333333333333333333333333"
#define SEC 1700000000ull
#define NS(s) ((SEC + (s)) * 1000000000ull)

static void load(td_store *s)
{
    const tattr shop[] = {AS("service.name", "shop"), AS("host.name", "web-1"), {0}};
    const tspan t1[] = {
        {"00000000000000a1",
         NULL,
         "GET /",
         2,
         2,
         NS(10),
         NS(12),
         {AI("http.status_code", 500), AF("ratio", 0.25), AB("cache.hit", 1),
          AS("path/with/slash", "x")},
         "exception"},
        {"00000000000000a2",
         "00000000000000a1",
         "db",
         3,
         1,
         NS(10),
         NS(11),
         {AI("http.status_code", 200), AS("db.system", "pg"), {0}, {0}},
         NULL},
    };
    write_trace(s, TD_DEFAULT_TENANT, T1, shop, t1, 2);
    /* http.status_code as a string this time */
    const tattr cart[] = {AS("service.name", "cart"), AS("region", "eu"), {0}};
    const tspan t2[] = {{"00000000000000b1",
                         NULL,
                         "checkout",
                         2,
                         0,
                         NS(20),
                         NS(21),
                         {AS("http.status_code", "200"), AS("region", "us"), {0}, {0}},
                         NULL}};
    write_trace(s, TD_DEFAULT_TENANT, T2, cart, t2, 1);
    /* another tenant */
    const tattr other[] = {AS("service.name", "other"), {0}};
    const tspan t3[] = {{"00000000000000c1",
                         NULL,
                         "work",
                         1,
                         0,
                         NS(30),
                         NS(31),
                         {AI("tenant.only", -3), {0}, {0}, {0}},
                         NULL}};
    write_trace(s, "t2", T3, other, t3, 1);
}

/* Bounds of q-filtered answers in run_json. */
static td__tags_limits run_limits = {.max_traces = 1000};

/* Run one request; JSON text into out (reset first). */
static td_status run_json(td_store *s, const char *tenants, td__tags_kind kind, const char *scope,
                          const char *tag, const char *q, const char *start, const char *end,
                          const char *limit, td_buf *out, td_err *err)
{
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td__tenants ts;
    td__tags_req r;
    td__tags_result res;
    td__tags_limits lim = run_limits;
    td_buf_reset(out);
    td_status st = td__tempo_tenants(tenants, tenants != NULL, &a, &ts, err);
    if (!st) {
        st = td__tags_http_args(kind, scope, tag, q, start, end, limit, &r, err);
    }
    if (!st) {
        st = td__tags_run(s, &ts, &r, &lim, &a, &res, err);
    }
    if (!st) {
        td__tags_json(&res, out);
    }
    td_arena_release(&a);
    return st;
}

/* The JSON answer without its metrics (which count bytes). */
static const char *strip_metrics(td_buf *b)
{
    char *m = strstr(b->data, ",\"metrics\":");
    if (m) {
        m[0] = '}';
        td_buf_setlen(b, (size_t)(m - b->data) + 1);
    }
    return b->data;
}

#define INTRINSICS                                                                                 \
    "\"duration\",\"event:name\",\"instrumentation:name\",\"kind\",\"name\",\"rootName\","         \
    "\"rootServiceName\",\"span:duration\",\"span:kind\",\"span:name\",\"span:status\","           \
    "\"span:statusMessage\",\"status\",\"statusMessage\",\"trace:duration\",\"trace:rootName\","   \
    "\"trace:rootService\",\"traceDuration\""

#define EXPECT(kind, scope, tag, q, start, end, limit, want)                                       \
    do {                                                                                           \
        td_err e_;                                                                                 \
        td_err_init(&e_);                                                                          \
        td_status st_ = run_json(s, NULL, kind, scope, tag, q, start, end, limit, &b, &e_);        \
        if (st_) {                                                                                 \
            fprintf(stderr, "  error: %s\n", e_.msg);                                              \
        }                                                                                          \
        TD_ASSERT_EQ_INT(st_, TD_OK);                                                              \
        TD_ASSERT_EQ_STR(strip_metrics(&b), want);                                                 \
    } while (0)

#define EXPECT_ERR(kind, scope, tag, want_msg)                                                     \
    do {                                                                                           \
        td_err e_;                                                                                 \
        td_err_init(&e_);                                                                          \
        TD_ASSERT_EQ_INT(run_json(s, NULL, kind, scope, tag, NULL, NULL, NULL, NULL, &b, &e_),     \
                         TD_INVALID);                                                              \
        TD_ASSERT_EQ_STR(e_.msg, want_msg);                                                        \
    } while (0)

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static td_store *open_store(char *dir, size_t cap, const char *name)
{
    const char *tmp = getenv("TD_TEST_TMP");
    snprintf(dir, cap, "%s/%s.%d", tmp && *tmp ? tmp : "/tmp", name, (int)getpid());
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(dir, 0755);
    td_store_opts so = {.dir = dir,
                        .cache_bytes = 1 << 20,
                        .write_buffer_bytes = 1 << 20,
                        .index_max_value_len = 1024,
                        .index_max_values = 1000};
    td_store *s = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_open(&so, &s, &err));
    return s;
}

static void test_names(void)
{
    td_log_set_level(TD_LOG_ERROR);
    char dir[512];
    td_store *s = open_store(dir, sizeof(dir), "test_tags_names");
    load(s);
    td_buf b = TD_BUF_INIT;

    /* what Grafana asks: every scope with tags, intrinsic always */
    EXPECT(TD__TAGS_V2, NULL, NULL, NULL, NULL, NULL, "5000",
           "{\"scopes\":[{\"name\":\"resource\",\"tags\":[\"host.name\",\"region\","
           "\"service.name\"]},{\"name\":\"span\",\"tags\":[\"cache.hit\",\"db.system\","
           "\"http.status_code\",\"path/with/slash\",\"ratio\",\"region\"]},{\"name\":"
           "\"intrinsic\",\"tags\":[" INTRINSICS "]}]}");
    EXPECT(TD__TAGS_V2, "none", NULL, NULL, NULL, NULL, NULL,
           "{\"scopes\":[{\"name\":\"resource\",\"tags\":[\"host.name\",\"region\","
           "\"service.name\"]},{\"name\":\"span\",\"tags\":[\"cache.hit\",\"db.system\","
           "\"http.status_code\",\"path/with/slash\",\"ratio\",\"region\"]},{\"name\":"
           "\"intrinsic\",\"tags\":[" INTRINSICS "]}]}");
    /* one scope; limit per scope */
    EXPECT(TD__TAGS_V2, "resource", NULL, NULL, NULL, NULL, "2",
           "{\"scopes\":[{\"name\":\"resource\",\"tags\":[\"host.name\",\"region\"]}]}");
    EXPECT(TD__TAGS_V2, "intrinsic", NULL, NULL, NULL, NULL, "3",
           "{\"scopes\":[{\"name\":\"intrinsic\",\"tags\":[\"duration\",\"event:name\","
           "\"instrumentation:name\"]}]}");
    EXPECT(TD__TAGS_V2, "event", NULL, NULL, NULL, NULL, NULL,
           "{\"scopes\":[{\"name\":\"event\",\"tags\":[]}]}");
    EXPECT(TD__TAGS_V2, "trace", NULL, NULL, NULL, NULL, NULL,
           "{\"scopes\":[{\"name\":\"trace\",\"tags\":[]}]}");
    EXPECT_ERR(TD__TAGS_V2, "spans", NULL, "invalid scope: spans");
    EXPECT_ERR(TD__TAGS_V1, "x", NULL, "invalid scope: x");
    /* v1: span and resource keys merged */
    EXPECT(TD__TAGS_V1, NULL, NULL, NULL, NULL, NULL, NULL,
           "{\"tagNames\":[\"cache.hit\",\"db.system\",\"host.name\",\"http.status_code\","
           "\"path/with/slash\",\"ratio\",\"region\",\"service.name\"]}");
    EXPECT(TD__TAGS_V1, "span", NULL, NULL, NULL, NULL, "2",
           "{\"tagNames\":[\"cache.hit\",\"db.system\"]}");
    /* windows: start/end in seconds; end before start finds nothing but is no error */
    EXPECT(TD__TAGS_V2, "resource", NULL, NULL, "1600000000", "1600003600", NULL,
           "{\"scopes\":[{\"name\":\"resource\",\"tags\":[]}]}");
    EXPECT(TD__TAGS_V2, "resource", NULL, NULL, "1700000000", "1600000000", NULL,
           "{\"scopes\":[{\"name\":\"resource\",\"tags\":[]}]}");
    EXPECT(TD__TAGS_V2, "resource", NULL, NULL, "1699990000", "1700003600", NULL,
           "{\"scopes\":[{\"name\":\"resource\",\"tags\":[\"host.name\",\"region\","
           "\"service.name\"]}]}");
    /* nothing in the window: resource and span stay, empty, next to the intrinsics */
    EXPECT(TD__TAGS_V2, NULL, NULL, NULL, "1600000000", "1600003600", NULL,
           "{\"scopes\":[{\"name\":\"resource\",\"tags\":[]},{\"name\":\"span\",\"tags\":[]},"
           "{\"name\":\"intrinsic\",\"tags\":[" INTRINSICS "]}]}");
    /* q narrows to the spans that match it */
    EXPECT(TD__TAGS_V2, NULL, NULL, "{ name = \"db\" }", NULL, NULL, NULL,
           "{\"scopes\":[{\"name\":\"resource\",\"tags\":[\"host.name\",\"service.name\"]},"
           "{\"name\":\"span\",\"tags\":[\"db.system\",\"http.status_code\"]},{\"name\":"
           "\"intrinsic\",\"tags\":[" INTRINSICS "]}]}");
    EXPECT(TD__TAGS_V2, "span", NULL, "{ resource.service.name = \"cart\" }", NULL, NULL, NULL,
           "{\"scopes\":[{\"name\":\"span\",\"tags\":[\"http.status_code\",\"region\"]}]}");
    /* a trivial or invalid q is the index answer */
    EXPECT(TD__TAGS_V2, "span", NULL, "{ name = ", NULL, NULL, "1",
           "{\"scopes\":[{\"name\":\"span\",\"tags\":[\"cache.hit\"]}]}");
    EXPECT(TD__TAGS_V2, "span", NULL, "{}", NULL, NULL, "1",
           "{\"scopes\":[{\"name\":\"span\",\"tags\":[\"cache.hit\"]}]}");
    /* several tenants merge and de-duplicate */
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(run_json(s, "t2|single-tenant", TD__TAGS_V2, "resource", NULL, NULL, NULL, NULL,
                          NULL, &b, &err));
    TD_ASSERT_EQ_STR(strip_metrics(&b), "{\"scopes\":[{\"name\":\"resource\",\"tags\":["
                                        "\"host.name\",\"region\",\"service.name\"]}]}");
    TD_ASSERT_OK(run_json(s, "t2", TD__TAGS_V1, NULL, NULL, NULL, NULL, NULL, NULL, &b, &err));
    TD_ASSERT_EQ_STR(strip_metrics(&b), "{\"tagNames\":[\"service.name\",\"tenant.only\"]}");
    /* metrics: inspectedBytes as a string */
    TD_ASSERT_OK(run_json(s, NULL, TD__TAGS_V1, NULL, NULL, NULL, NULL, NULL, NULL, &b, &err));
    TD_CHECK(strstr(b.data, ",\"metrics\":{\"inspectedBytes\":\"") != NULL);

    td_buf_release(&b);
    td_store_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_values(void)
{
    td_log_set_level(TD_LOG_ERROR);
    char dir[512];
    td_store *s = open_store(dir, sizeof(dir), "test_tags_values");
    load(s);
    td_buf b = TD_BUF_INIT;

    EXPECT(TD__TAG_VALUES_V2, NULL, "resource.service.name", NULL, NULL, NULL, "5000",
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"cart\"},{\"type\":\"string\","
           "\"value\":\"shop\"}]}");
    /* typed values: ints numerically, then strings; floats and bools */
    EXPECT(TD__TAG_VALUES_V2, NULL, "span.http.status_code", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"int\",\"value\":\"200\"},{\"type\":\"int\",\"value\":"
           "\"500\"},{\"type\":\"string\",\"value\":\"200\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "span.ratio", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"float\",\"value\":\"0.25\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, ".cache.hit", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"bool\",\"value\":\"true\"}]}");
    /* unscoped: span and resource values */
    EXPECT(TD__TAG_VALUES_V2, NULL, ".region", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"eu\"},{\"type\":\"string\","
           "\"value\":\"us\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "span.path/with/slash", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"x\"}]}");
    /* intrinsics */
    EXPECT(TD__TAG_VALUES_V2, NULL, "name", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"GET /\"},{\"type\":\"string\","
           "\"value\":\"checkout\"},{\"type\":\"string\",\"value\":\"db\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "span:name", NULL, NULL, NULL, "1",
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"GET /\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "status", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"keyword\",\"value\":\"ok\"},{\"type\":\"keyword\","
           "\"value\":\"error\"},{\"type\":\"keyword\",\"value\":\"unset\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "span:status", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"keyword\",\"value\":\"ok\"},{\"type\":\"keyword\","
           "\"value\":\"error\"},{\"type\":\"keyword\",\"value\":\"unset\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "kind", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"keyword\",\"value\":\"client\"},{\"type\":\"keyword\","
           "\"value\":\"server\"},{\"type\":\"keyword\",\"value\":\"producer\"},{\"type\":"
           "\"keyword\",\"value\":\"consumer\"},{\"type\":\"keyword\",\"value\":\"internal\"},"
           "{\"type\":\"keyword\",\"value\":\"unspecified\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "duration", NULL, NULL, NULL, NULL, "{\"tagValues\":[]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "traceDuration", NULL, NULL, NULL, NULL, "{\"tagValues\":[]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "span:duration", NULL, NULL, NULL, NULL, "{\"tagValues\":[]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "event:name", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"exception\"}]}");
    /* q narrows; an incomplete q is ignored */
    EXPECT(TD__TAG_VALUES_V2, NULL, "name", "{ resource.service.name = \"shop\" }", NULL, NULL,
           NULL,
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"GET /\"},{\"type\":\"string\","
           "\"value\":\"db\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "span.http.status_code", "{ status = error }", NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"int\",\"value\":\"500\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "name", "{ resource.cluster = }", NULL, NULL, "1",
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"GET /\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "resource.service.name", "{ name = \"nothing\" }", NULL, NULL,
           NULL, "{\"tagValues\":[]}");
    /* with q, the scan stops at search-max-bytes (after the first, newest trace) */
    run_limits.max_bytes = 1;
    EXPECT(TD__TAG_VALUES_V2, NULL, "name", "{ kind = server }", NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"checkout\"}]}");
    run_limits.max_bytes = 0;
    EXPECT(TD__TAG_VALUES_V2, NULL, "name", "{ kind = server }", NULL, NULL, NULL,
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"GET /\"},{\"type\":\"string\","
           "\"value\":\"checkout\"}]}");
    {
        /* with q, the scan stops once limit values are in */
        td_err e;
        td_err_init(&e);
        TD_ASSERT_OK(run_json(s, NULL, TD__TAG_VALUES_V2, NULL, "name", "{ status != error }", NULL,
                              NULL, "1", &b, &e));
        TD_CHECK(strstr(strip_metrics(&b), "{\"tagValues\":[{\"type\":\"string\",\"value\":\"") ==
                 b.data);
        TD_CHECK(strstr(b.data, "},{") == NULL);
    }
    /* windows (the index has minute granularity: both traces share one minute) */
    EXPECT(TD__TAG_VALUES_V2, NULL, "resource.service.name", NULL, "1700000015", "1700000025", NULL,
           "{\"tagValues\":[{\"type\":\"string\",\"value\":\"cart\"},{\"type\":\"string\","
           "\"value\":\"shop\"}]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "resource.service.name", NULL, "1700000600", "1700003600", NULL,
           "{\"tagValues\":[]}");
    EXPECT(TD__TAG_VALUES_V2, NULL, "resource.service.name", NULL, "1700000025", "1700000015", NULL,
           "{\"tagValues\":[]}");

    /* identifier validation: Tempo's texts */
    EXPECT_ERR(TD__TAG_VALUES_V2, NULL, "foo bar",
               "please provide a valid tagName: failed to parse identifier foo bar: parse error "
               "at line 1, col 2: unknown identifier: foo");
    EXPECT_ERR(TD__TAG_VALUES_V2, NULL, "service.name",
               "please provide a valid tagName: failed to parse identifier service.name: parse "
               "error at line 1, col 2: unknown identifier: service");
    EXPECT_ERR(TD__TAG_VALUES_V2, NULL, ".a = 1",
               "please provide a valid tagName: failed to parse identifier .a = 1: parse error at "
               "line 1, col 5: syntax error: unexpected =, expecting }");
    EXPECT_ERR(TD__TAG_VALUES_V2, NULL, "", "please provide a non-empty tagName");
    EXPECT_ERR(TD__TAG_VALUES_V1, NULL, "", "please provide a non-empty tagName");

    /* v1: bare keys, span and resource, plain strings (int 200 and "200" are one) */
    EXPECT(TD__TAG_VALUES_V1, NULL, "service.name", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[\"cart\",\"shop\"]}");
    EXPECT(TD__TAG_VALUES_V1, NULL, "http.status_code", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[\"200\",\"500\"]}");
    EXPECT(TD__TAG_VALUES_V1, NULL, "region", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[\"eu\",\"us\"]}");
    EXPECT(TD__TAG_VALUES_V1, NULL, "status.code", NULL, NULL, NULL, NULL,
           "{\"tagValues\":[\"unset\",\"ok\",\"error\"]}");
    EXPECT(TD__TAG_VALUES_V1, NULL, "error", NULL, NULL, NULL, NULL, "{\"tagValues\":[\"true\"]}");
    EXPECT(TD__TAG_VALUES_V1, NULL, "nope", NULL, NULL, NULL, NULL, "{\"tagValues\":[]}");

    /* tenants */
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(run_json(s, "t2|single-tenant", TD__TAG_VALUES_V2, NULL, "resource.service.name",
                          NULL, NULL, NULL, NULL, &b, &err));
    TD_ASSERT_EQ_STR(strip_metrics(&b),
                     "{\"tagValues\":[{\"type\":\"string\",\"value\":\"cart\"},{\"type\":"
                     "\"string\",\"value\":\"other\"},{\"type\":\"string\",\"value\":\"shop\"}]}");
    TD_ASSERT_OK(run_json(s, "t2", TD__TAG_VALUES_V2, NULL, "span.tenant.only", NULL, NULL, NULL,
                          NULL, &b, &err));
    TD_ASSERT_EQ_STR(strip_metrics(&b), "{\"tagValues\":[{\"type\":\"int\",\"value\":\"-3\"}]}");

    td_buf_release(&b);
    td_store_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------------ */
/* protobuf encodings                                                       */
/* ------------------------------------------------------------------------ */

static void test_protobuf(void)
{
    const char *names[] = {"a", "b"};
    td__tags_result r = {
        .kind = TD__TAGS_V1, .strings = names, .nstrings = 2, .inspected_bytes = 77};
    td_buf b = TD_BUF_INIT;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__tags_pb(&r, &b, &err));
    Tempopb__SearchTagsResponse *t1 =
        tempopb__search_tags_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    TD_CHECK(t1 != NULL);
    TD_ASSERT_EQ_U64(t1->n_tagnames, 2);
    TD_ASSERT_EQ_STR(t1->tagnames[1], "b");
    TD_ASSERT_EQ_U64(t1->metrics->inspectedbytes, 77);
    tempopb__search_tags_response__free_unpacked(t1, NULL);

    td_buf_reset(&b);
    r.kind = TD__TAG_VALUES_V1;
    TD_ASSERT_OK(td__tags_pb(&r, &b, &err));
    Tempopb__SearchTagValuesResponse *v1 =
        tempopb__search_tag_values_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    TD_CHECK(v1 != NULL);
    TD_ASSERT_EQ_U64(v1->n_tagvalues, 2);
    TD_ASSERT_EQ_STR(v1->tagvalues[0], "a");
    tempopb__search_tag_values_response__free_unpacked(v1, NULL);

    td_buf_reset(&b);
    r = (td__tags_result){.kind = TD__TAGS_V2, .nscopes = 2};
    r.scopes[0] = (td__tags_scope_out){"resource", names, 2};
    r.scopes[1] = (td__tags_scope_out){"intrinsic", names, 1};
    TD_ASSERT_OK(td__tags_pb(&r, &b, &err));
    Tempopb__SearchTagsV2Response *t2 =
        tempopb__search_tags_v2_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    TD_CHECK(t2 != NULL);
    TD_ASSERT_EQ_U64(t2->n_scopes, 2);
    TD_ASSERT_EQ_STR(t2->scopes[0]->name, "resource");
    TD_ASSERT_EQ_U64(t2->scopes[0]->n_tags, 2);
    TD_ASSERT_EQ_STR(t2->scopes[1]->name, "intrinsic");
    TD_ASSERT_EQ_STR(t2->scopes[1]->tags[0], "a");
    TD_CHECK(t2->metrics != NULL); /* always there, even when empty */
    tempopb__search_tags_v2_response__free_unpacked(t2, NULL);
    /* field numbers: scopes = 1 (0x0a), name = 1, tags = 2 */
    TD_ASSERT_EQ_INT((uint8_t)b.data[0], 0x0a);

    td_buf_reset(&b);
    td__tags_value_out vals[] = {{"int", "200"}, {"keyword", "error"}};
    r = (td__tags_result){
        .kind = TD__TAG_VALUES_V2, .values = vals, .nvalues = 2, .inspected_bytes = 5};
    TD_ASSERT_OK(td__tags_pb(&r, &b, &err));
    Tempopb__SearchTagValuesV2Response *v2 =
        tempopb__search_tag_values_v2_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    TD_CHECK(v2 != NULL);
    TD_ASSERT_EQ_U64(v2->n_tagvalues, 2);
    TD_ASSERT_EQ_STR(v2->tagvalues[0]->type, "int");
    TD_ASSERT_EQ_STR(v2->tagvalues[0]->value, "200");
    TD_ASSERT_EQ_STR(v2->tagvalues[1]->type, "keyword");
    TD_ASSERT_EQ_U64(v2->metrics->inspectedbytes, 5);
    tempopb__search_tag_values_v2_response__free_unpacked(v2, NULL);

    /* request messages: Tempo's field numbers (SearchTagValuesRequest has no field 3) */
    static const uint8_t req[] = {0x0a, 0x04, 'n',  'a',  'm',  'e',  0x12, 0x02,
                                  '{',  '}',  0x20, 0x05, 0x28, 0x06, 0x30, 0x07};
    Tempopb__SearchTagValuesRequest *q =
        tempopb__search_tag_values_request__unpack(NULL, sizeof(req), req);
    TD_CHECK(q != NULL);
    TD_ASSERT_EQ_STR(q->tagname, "name");
    TD_ASSERT_EQ_STR(q->query, "{}");
    TD_ASSERT_EQ_U64(q->start, 5);
    TD_ASSERT_EQ_U64(q->end, 6);
    TD_ASSERT_EQ_U64(q->maxtagvalues, 7);
    tempopb__search_tag_values_request__free_unpacked(q, NULL);
    static const uint8_t treq[] = {0x0a, 0x04, 's',  'p',  'a',  'n',
                                   0x18, 0x01, 0x20, 0x02, 0x28, 0x03};
    Tempopb__SearchTagsRequest *tq = tempopb__search_tags_request__unpack(NULL, sizeof(treq), treq);
    TD_CHECK(tq != NULL);
    TD_ASSERT_EQ_STR(tq->scope, "span");
    TD_ASSERT_EQ_U64(tq->start, 1);
    TD_ASSERT_EQ_U64(tq->end, 2);
    TD_ASSERT_EQ_U64(tq->maxtagsperscope, 3);
    tempopb__search_tags_request__free_unpacked(tq, NULL);
    td_buf_release(&b);
}

/* ------------------------------------------------------------------------ */
/* the HTTP routes                                                          */
/* ------------------------------------------------------------------------ */

/* GET path on a fresh connection ("Connection: close"); status, body. */
static int http_get(int port, const char *path, const char *accept, td_buf *body)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    td_buf_reset(body);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    td_buf rq = TD_BUF_INIT;
    td_buf_addf(&rq, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s\r\n", path,
                accept ? "Accept: " : "", accept ? accept : "", accept ? "\r\n" : "");
    ssize_t w = write(fd, rq.data, rq.len);
    td_buf_release(&rq);
    td_buf all = TD_BUF_INIT;
    char tmp[4096];
    ssize_t n;
    while (w > 0 && (n = read(fd, tmp, sizeof(tmp))) > 0) {
        td_buf_add(&all, tmp, (size_t)n);
    }
    close(fd);
    int status = -1;
    const char *sep = strstr(all.data, "\r\n\r\n");
    if (sep && sscanf(all.data, "HTTP/1.1 %d", &status) == 1) {
        size_t off = (size_t)(sep + 4 - all.data);
        td_buf_add(body, all.data + off, all.len - off);
    }
    td_buf_release(&all);
    return status;
}

static void test_routes(void)
{
    td_log_set_level(TD_LOG_ERROR);
    char dir[512];
    td_store *s = open_store(dir, sizeof(dir), "test_tags_routes");
    load(s);
    td_api_opts o = {.listen = (char *)"127.0.0.1:0", .threads = 2, .search_max_traces = 1000};
    td_api *api = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_api_new(&o, s, &api, &err));
    TD_ASSERT_OK(td_api_start(api, &err));
    int port = td_api_port(api);
    td_buf b = TD_BUF_INIT;

    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tags?limit=5000", NULL, &b), 200);
    TD_CHECK(strstr(b.data, "{\"scopes\":[{\"name\":\"resource\",\"tags\":[\"host.name\"") ==
             b.data);
    TD_ASSERT_EQ_INT(http_get(port, "/api/search/tags", NULL, &b), 200);
    TD_CHECK(strstr(b.data, "{\"tagNames\":[\"cache.hit\"") == b.data);
    TD_ASSERT_EQ_INT(
        http_get(port, "/api/v2/search/tag/resource.service.name/values?limit=5000", NULL, &b),
        200);
    TD_CHECK(strstr(b.data, "{\"tagValues\":[{\"type\":\"string\",\"value\":\"cart\"},") == b.data);
    TD_ASSERT_EQ_INT(http_get(port, "/api/search/tag/service.name/values", NULL, &b), 200);
    TD_CHECK(strstr(b.data, "{\"tagValues\":[\"cart\",\"shop\"]") == b.data);
    /* the path is decoded once; the tag runs to the last /values */
    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tag/span.path%2Fwith%2Fslash/values", NULL, &b),
                     200);
    TD_CHECK(strstr(b.data, "{\"tagValues\":[{\"type\":\"string\",\"value\":\"x\"}]") == b.data);
    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tag/span.path/with/slash/values", NULL, &b),
                     200);
    TD_CHECK(strstr(b.data, "{\"tagValues\":[{\"type\":\"string\",\"value\":\"x\"}]") == b.data);
    TD_ASSERT_EQ_INT(
        http_get(port, "/api/v2/search/tag/name/values?q=%7Bstatus%3Derror%7D", NULL, &b), 200);
    TD_CHECK(strstr(b.data, "{\"tagValues\":[{\"type\":\"string\",\"value\":\"GET /\"}]") ==
             b.data);
    /* errors: text/plain, Tempo's texts */
    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tags?scope=bogus", NULL, &b), 400);
    TD_ASSERT_EQ_STR(b.data, "invalid scope: bogus\n");
    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tag/foo%20bar/values", NULL, &b), 400);
    TD_ASSERT_EQ_STR(b.data, "please provide a valid tagName: failed to parse identifier foo bar: "
                             "parse error at line 1, col 2: unknown identifier: foo\n");
    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tags?start=x", NULL, &b), 400);
    TD_ASSERT_EQ_STR(b.data, "invalid start: strconv.ParseInt: parsing \"x\": invalid syntax\n");
    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tag/name/value", NULL, &b), 404);
    /* protobuf when Accept asks for it */
    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tag/status/values", "application/protobuf", &b),
                     200);
    Tempopb__SearchTagValuesV2Response *v2 =
        tempopb__search_tag_values_v2_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    TD_CHECK(v2 != NULL);
    TD_ASSERT_EQ_U64(v2->n_tagvalues, 3);
    TD_ASSERT_EQ_STR(v2->tagvalues[2]->value, "unset");
    tempopb__search_tag_values_v2_response__free_unpacked(v2, NULL);
    TD_ASSERT_EQ_INT(http_get(port, "/api/v2/search/tags?scope=span", "application/protobuf", &b),
                     200);
    Tempopb__SearchTagsV2Response *t2 =
        tempopb__search_tags_v2_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    TD_CHECK(t2 != NULL);
    TD_ASSERT_EQ_U64(t2->n_scopes, 1);
    TD_ASSERT_EQ_U64(t2->scopes[0]->n_tags, 6);
    tempopb__search_tags_v2_response__free_unpacked(t2, NULL);
    /* the daemon is still fine */
    TD_ASSERT_EQ_INT(http_get(port, "/api/echo", NULL, &b), 200);

    td_buf_release(&b);
    td_api_free(api);
    td_store_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------------ */
/* the StreamingQuerier methods over h2c (gRPC C core client)               */
/* ------------------------------------------------------------------------ */

/* One call: request bytes in, first response message and status out. */
static bool grpc_call1(grpc_channel *ch, const char *method, const void *req, size_t len,
                       td_buf *msg, grpc_status_code *code, char *details, size_t dcap)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice m = grpc_slice_from_static_string(method);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(10, GPR_TIMESPAN));
    grpc_call *call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL, deadline, NULL);
    grpc_slice rs = grpc_slice_from_copied_buffer(req, len);
    grpc_byte_buffer *out = grpc_raw_byte_buffer_create(&rs, 1);
    grpc_slice_unref(rs);
    grpc_byte_buffer *in = NULL;
    grpc_metadata_array imd, tmd;
    grpc_metadata_array_init(&imd);
    grpc_metadata_array_init(&tmd);
    grpc_slice sd = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = out;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &in;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
    ops[5].data.recv_status_on_client.status = code;
    ops[5].data.recv_status_on_client.status_details = &sd;
    bool ok = grpc_call_start_batch(call, ops, 6, (void *)1, NULL) == GRPC_CALL_OK;
    if (ok) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        ok = ev.type == GRPC_OP_COMPLETE && ev.success;
    }
    td_buf_reset(msg);
    if (ok && in) {
        grpc_byte_buffer_reader rd;
        grpc_byte_buffer_reader_init(&rd, in);
        grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
        td_buf_add(msg, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
        grpc_slice_unref(all);
        grpc_byte_buffer_reader_destroy(&rd);
    }
    snprintf(details, dcap, "%.*s", (int)GRPC_SLICE_LENGTH(sd),
             (const char *)GRPC_SLICE_START_PTR(sd));
    grpc_byte_buffer_destroy(out);
    if (in) {
        grpc_byte_buffer_destroy(in);
    }
    grpc_slice_unref(sd);
    grpc_metadata_array_destroy(&imd);
    grpc_metadata_array_destroy(&tmd);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return ok;
}

static void test_grpc(void)
{
    td_log_set_level(TD_LOG_ERROR);
    char dir[512];
    td_store *s = open_store(dir, sizeof(dir), "test_tags_grpc");
    load(s);
    grpc_init();
    td_api_opts o = {.listen = (char *)"127.0.0.1:0", .threads = 2, .search_max_traces = 1000};
    td_api *api = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_api_new(&o, s, &api, &err));
    TD_ASSERT_OK(td_api_start(api, &err));
    char target[64];
    snprintf(target, sizeof(target), "ipv4:127.0.0.1:%d", td_api_port(api));
    grpc_channel_credentials *cc = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, cc, NULL);
    grpc_channel_credentials_release(cc);
    td_buf m = TD_BUF_INIT;
    grpc_status_code code;
    char details[512];

    /* SearchTagsV2 {scope: "resource"} */
    static const uint8_t tags_req[] = {0x0a, 0x08, 'r', 'e', 's', 'o', 'u', 'r', 'c', 'e'};
    TD_CHECK(grpc_call1(ch, "/tempopb.StreamingQuerier/SearchTagsV2", tags_req, sizeof(tags_req),
                        &m, &code, details, sizeof(details)));
    TD_ASSERT_EQ_INT(code, GRPC_STATUS_OK);
    Tempopb__SearchTagsV2Response *t2 =
        tempopb__search_tags_v2_response__unpack(NULL, m.len, (const uint8_t *)m.data);
    TD_CHECK(t2 != NULL);
    TD_ASSERT_EQ_U64(t2->n_scopes, 1);
    TD_ASSERT_EQ_STR(t2->scopes[0]->name, "resource");
    TD_ASSERT_EQ_U64(t2->scopes[0]->n_tags, 3);
    TD_ASSERT_EQ_STR(t2->scopes[0]->tags[2], "service.name");
    TD_CHECK(t2->metrics != NULL);
    tempopb__search_tags_v2_response__free_unpacked(t2, NULL);

    /* SearchTagValuesV2 {tagName: "span.http.status_code", maxTagValues: 2} */
    Tempopb__SearchTagValuesRequest vr = TEMPOPB__SEARCH_TAG_VALUES_REQUEST__INIT;
    vr.tagname = (char *)"span.http.status_code";
    vr.maxtagvalues = 2;
    uint8_t buf[256];
    size_t n = tempopb__search_tag_values_request__pack(&vr, buf);
    TD_CHECK(grpc_call1(ch, "/tempopb.StreamingQuerier/SearchTagValuesV2", buf, n, &m, &code,
                        details, sizeof(details)));
    TD_ASSERT_EQ_INT(code, GRPC_STATUS_OK);
    Tempopb__SearchTagValuesV2Response *v2 =
        tempopb__search_tag_values_v2_response__unpack(NULL, m.len, (const uint8_t *)m.data);
    TD_CHECK(v2 != NULL);
    TD_ASSERT_EQ_U64(v2->n_tagvalues, 2);
    TD_ASSERT_EQ_STR(v2->tagvalues[0]->type, "int");
    TD_ASSERT_EQ_STR(v2->tagvalues[0]->value, "200");
    TD_ASSERT_EQ_STR(v2->tagvalues[1]->value, "500");
    tempopb__search_tag_values_v2_response__free_unpacked(v2, NULL);

    /* SearchTagValues (v1) {tagName: "status.code"} */
    vr.tagname = (char *)"status.code";
    vr.maxtagvalues = 0;
    n = tempopb__search_tag_values_request__pack(&vr, buf);
    TD_CHECK(grpc_call1(ch, "/tempopb.StreamingQuerier/SearchTagValues", buf, n, &m, &code, details,
                        sizeof(details)));
    TD_ASSERT_EQ_INT(code, GRPC_STATUS_OK);
    Tempopb__SearchTagValuesResponse *v1 =
        tempopb__search_tag_values_response__unpack(NULL, m.len, (const uint8_t *)m.data);
    TD_CHECK(v1 != NULL);
    TD_ASSERT_EQ_U64(v1->n_tagvalues, 3);
    TD_ASSERT_EQ_STR(v1->tagvalues[0], "unset");
    tempopb__search_tag_values_response__free_unpacked(v1, NULL);

    /* SearchTags (v1), empty request */
    TD_CHECK(grpc_call1(ch, "/tempopb.StreamingQuerier/SearchTags", "", 0, &m, &code, details,
                        sizeof(details)));
    TD_ASSERT_EQ_INT(code, GRPC_STATUS_OK);
    Tempopb__SearchTagsResponse *t1 =
        tempopb__search_tags_response__unpack(NULL, m.len, (const uint8_t *)m.data);
    TD_CHECK(t1 != NULL);
    TD_ASSERT_EQ_U64(t1->n_tagnames, 8);
    tempopb__search_tags_response__free_unpacked(t1, NULL);

    /* errors: INVALID_ARGUMENT with the HTTP message */
    vr.tagname = (char *)"foo bar";
    n = tempopb__search_tag_values_request__pack(&vr, buf);
    TD_CHECK(grpc_call1(ch, "/tempopb.StreamingQuerier/SearchTagValuesV2", buf, n, &m, &code,
                        details, sizeof(details)));
    TD_ASSERT_EQ_INT(code, GRPC_STATUS_INVALID_ARGUMENT);
    TD_ASSERT_EQ_STR(details, "please provide a valid tagName: failed to parse identifier foo bar: "
                              "parse error at line 1, col 2: unknown identifier: foo");
    static const uint8_t bad_scope[] = {0x0a, 0x01, 'x'};
    TD_CHECK(grpc_call1(ch, "/tempopb.StreamingQuerier/SearchTagsV2", bad_scope, sizeof(bad_scope),
                        &m, &code, details, sizeof(details)));
    TD_ASSERT_EQ_INT(code, GRPC_STATUS_INVALID_ARGUMENT);
    TD_ASSERT_EQ_STR(details, "invalid scope: x");
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    TD_CHECK(grpc_call1(ch, "/tempopb.StreamingQuerier/SearchTagsV2", junk, sizeof(junk), &m, &code,
                        details, sizeof(details)));
    TD_ASSERT_EQ_INT(code, GRPC_STATUS_INVALID_ARGUMENT);

    td_buf_release(&m);
    grpc_channel_destroy(ch);
    td_api_free(api);
    grpc_shutdown();
    td_store_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TEST_LIST = {
    {"http_args", test_http_args},
    {"path_tag", test_path_tag},
    {"float_format", test_float_format},
    {"value_text", test_value_text},
    {"names", test_names},
    {"values", test_values},
    {"protobuf", test_protobuf},
    {"routes", test_routes},
    {"grpc", test_grpc},
    {NULL, NULL},
};
