/*
 * test_api.c - the query API: JSON writer, Tempo request parsing, trace assembly
 * and encoders, and the HTTP server driven over real sockets by a tiny blocking
 * HTTP/1.1 client; h2c gRPC on the same port driven by the gRPC C core client.
 */
#include "api/api.h"
#include "api/grpc_query.h"
#include "api/json.h"
#include "api/logfmt.h"
#include "api/tempo.h"
#include "api/traceql/traceql.h"
#include "collector/collector.h"
#include "core/log.h"
#include "core/mem.h"
#include "proto/proto.h"
#include "store/store.h"
#include "td_test.h"
#include "tempopb/tempo.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <float.h>
#include <ftw.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* Run stmt (which writes through `j`) on a fresh buffer and compare the text. */
#define ASSERT_JSON(stmt, expected)                                                                \
    do {                                                                                           \
        td_buf b_ = TD_BUF_INIT;                                                                   \
        td_json j_;                                                                                \
        td_json_init(&j_, &b_);                                                                    \
        td_json *j = &j_;                                                                          \
        stmt;                                                                                      \
        int eq_ = strcmp(b_.data, (expected)) == 0;                                                \
        if (!eq_) {                                                                                \
            fprintf(stderr, "  got      %s\n  expected %s\n", b_.data, (expected));                \
        }                                                                                          \
        td_buf_release(&b_);                                                                       \
        TD_CHECK(eq_);                                                                             \
    } while (0)

#define TID_HEX "5B8EFFF798038103D269B633813FC60C"

/* ------------------------------------------------------------------------ */
/* JSON writer                                                              */
/* ------------------------------------------------------------------------ */

static void test_json_escape(void)
{
    ASSERT_JSON(td_json_string(j, "plain"), "\"plain\"");
    ASSERT_JSON(td_json_string(j, "a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
    ASSERT_JSON(td_json_string(j, "\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
    ASSERT_JSON(td_json_string(j, "\x01\x1f\x7f"), "\"\\u0001\\u001f\x7f\"");
    ASSERT_JSON(td_json_string_n(j, "a\0b", 3), "\"a\\u0000b\"");
    /* valid multi-byte UTF-8 is copied: 2, 3 and 4 bytes */
    ASSERT_JSON(td_json_string(j, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"),
                "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"");
    /* each invalid byte becomes one U+FFFD */
    ASSERT_JSON(td_json_string(j, "a\xFFz"), "\"a\xEF\xBF\xBDz\"");
    ASSERT_JSON(td_json_string(j, "\xE2\x82"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\""); /* truncated */
    ASSERT_JSON(td_json_string(j, "\xC0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\""); /* overlong */
    ASSERT_JSON(td_json_string(j, "\xED\xA0\x80"),                              /* surrogate */
                "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
    ASSERT_JSON(td_json_string(j, "\xF4\x90\x80\x80"), /* > U+10FFFF */
                "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
    ASSERT_JSON(td_json_string(j, "\x80"), "\"\xEF\xBF\xBD\"");
    ASSERT_JSON(td_json_string(j, ""), "\"\"");
    /* keys are escaped the same way */
    ASSERT_JSON(
        (td_json_begin_object(j), td_json_key(j, "k\"\n"), td_json_null(j), td_json_end_object(j)),
        "{\"k\\\"\\n\":null}");
}

static void test_json_structure(void)
{
    ASSERT_JSON((td_json_begin_object(j), td_json_end_object(j)), "{}");
    ASSERT_JSON((td_json_begin_array(j), td_json_end_array(j)), "[]");
    ASSERT_JSON((td_json_begin_object(j), td_json_key(j, "a"), td_json_int(j, 1),
                 td_json_key(j, "b"), td_json_begin_array(j), td_json_bool(j, true),
                 td_json_bool(j, false), td_json_null(j), td_json_begin_object(j),
                 td_json_end_object(j), td_json_begin_array(j), td_json_end_array(j),
                 td_json_end_array(j), td_json_key(j, "c"), td_json_raw(j, "[1,2]", 5),
                 td_json_key(j, "d"), td_json_string(j, "x"), td_json_end_object(j)),
                "{\"a\":1,\"b\":[true,false,null,{},[]],\"c\":[1,2],\"d\":\"x\"}");
    ASSERT_JSON((td_json_begin_array(j), td_json_int64_str(j, INT64_MIN), td_json_int64_str(j, -1),
                 td_json_uint64_str(j, UINT64_MAX), td_json_uint64_str(j, 0), td_json_int(j, -42),
                 td_json_int(j, 4294967295), td_json_end_array(j)),
                "[\"-9223372036854775808\",\"-1\",\"18446744073709551615\",\"0\",-42,4294967295]");
}

static void test_json_double(void)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0"},
        {-0.0, "-0"},
        {1, "1"},
        {-2.5, "-2.5"},
        {100, "100"},
        {0.1, "0.1"},
        {0.25, "0.25"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456789.123, "123456789.123"},
        {1e20, "100000000000000000000"},
        {1e21, "1e+21"},
        {1.5e300, "1.5e+300"},
        {0.000001, "0.000001"},
        {1e-7, "1e-7"},
        {-1.5e-7, "-1.5e-7"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {5e-324, "5e-324"},
        {9007199254740993.0, "9007199254740992"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ASSERT_JSON(td_json_double(j, cases[i].v), cases[i].want);
    }
    ASSERT_JSON(td_json_double(j, NAN), "\"NaN\"");
    ASSERT_JSON(td_json_double(j, INFINITY), "\"Infinity\"");
    ASSERT_JSON(td_json_double(j, -INFINITY), "\"-Infinity\"");
    ASSERT_JSON((td_json_begin_array(j), td_json_double(j, 1.5), td_json_double(j, NAN),
                 td_json_end_array(j)),
                "[1.5,\"NaN\"]");
}

static void test_json_base64(void)
{
    static const char *const want[] = {"\"\"",         "\"Zg==\"",     "\"Zm8=\"",    "\"Zm9v\"",
                                       "\"Zm9vYg==\"", "\"Zm9vYmE=\"", "\"Zm9vYmFy\""};
    for (size_t n = 0; n <= 6; n++) {
        ASSERT_JSON(td_json_base64(j, (const uint8_t *)"foobar", n), want[n]);
    }
    uint8_t tid[16];
    unhex(TID_HEX, tid);
    ASSERT_JSON(td_json_base64(j, tid, 16), "\"W47/95gDgQPSabYzgT/GDA==\"");
    uint8_t all[3] = {0xFB, 0xFF, 0xBF};
    ASSERT_JSON(td_json_base64(j, all, 3), "\"+/+/\"");
}

/* ------------------------------------------------------------------------ */
/* request parsing                                                          */
/* ------------------------------------------------------------------------ */

static void test_trace_id_parse(void)
{
    static const struct {
        const char *in;
        const char *want_hex; /* 32 hex chars, or NULL for an error */
        const char *want_err;
    } cases[] = {
        {TID_HEX, "5b8efff798038103d269b633813fc60c", NULL},
        {"5b8efff798038103d269b633813fc60c", "5b8efff798038103d269b633813fc60c", NULL},
        {"1", "00000000000000000000000000000001", NULL},
        {"abc", "00000000000000000000000000000abc", NULL},
        {"0ABC", "00000000000000000000000000000abc", NULL},
        {"1234567890abcdef", "00000000000000001234567890abcdef", NULL},
        {"f234567890abcdef1", "000000000000000f234567890abcdef1", NULL},
        {"00000000000000000000000000000000", "00000000000000000000000000000000", NULL},
        {"1" TID_HEX, NULL, "trace IDs can't be larger than 128 bits"},
        {"12" TID_HEX, NULL, "trace IDs can't be larger than 128 bits"},
        {"xyz", NULL,
         "trace IDs can only contain hex characters: invalid character 'x' at position 1"},
        {"12g4", NULL,
         "trace IDs can only contain hex characters: invalid character 'g' at position 3"},
        {"12\xC3\xA9", NULL,
         "trace IDs can only contain hex characters: invalid character '\xC3\xA9' at position 3"},
        {"1\xFF", NULL,
         "trace IDs can only contain hex characters: invalid character '\xEF\xBF\xBD' at position "
         "2"},
        {"ab-cd", NULL,
         "trace IDs can only contain hex characters: invalid character '-' at position 3"},
        /* the character check comes before the length check, as in Tempo */
        {TID_HEX "0123456z", NULL,
         "trace IDs can only contain hex characters: invalid character 'z' at position 40"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t id[16];
        td_err err;
        td_err_init(&err);
        td_status st = td__tempo_parse_trace_id(cases[i].in, strlen(cases[i].in), id, &err);
        if (cases[i].want_hex) {
            TD_ASSERT_EQ_INT(st, TD_OK);
            td_buf hex = TD_BUF_INIT;
            td_buf_addhex(&hex, id, 16);
            char got[33];
            snprintf(got, sizeof(got), "%s", hex.data);
            td_buf_release(&hex);
            TD_ASSERT_EQ_STR(got, cases[i].want_hex);
        } else {
            TD_ASSERT_EQ_INT(st, TD_INVALID);
            TD_ASSERT_EQ_STR(err.msg, cases[i].want_err);
        }
    }
}

static void test_range_parse(void)
{
    uint64_t s, e;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__tempo_parse_range(NULL, NULL, &s, &e, &err));
    TD_ASSERT_EQ_U64(s, 0);
    TD_ASSERT_EQ_U64(e, 0);
    TD_ASSERT_OK(td__tempo_parse_range("", "", &s, &e, &err));
    TD_ASSERT_EQ_U64(e, 0);
    TD_ASSERT_OK(td__tempo_parse_range("10", NULL, &s, &e, &err));
    TD_ASSERT_EQ_U64(s, 10000000000ull);
    TD_ASSERT_EQ_U64(e, UINT64_MAX);
    TD_ASSERT_OK(td__tempo_parse_range(NULL, "20", &s, &e, &err));
    TD_ASSERT_EQ_U64(s, 0);
    TD_ASSERT_EQ_U64(e, 20999999999ull);
    TD_ASSERT_OK(td__tempo_parse_range("+10", "20", &s, &e, &err));
    TD_ASSERT_EQ_U64(s, 10000000000ull);
    TD_ASSERT_OK(td__tempo_parse_range("-5", "20", &s, &e, &err));
    TD_ASSERT_EQ_U64(s, 0);
    TD_ASSERT_OK(td__tempo_parse_range("9223372036854775807", NULL, &s, &e, &err));
    TD_ASSERT_EQ_U64(s, UINT64_MAX);

    static const struct {
        const char *start, *end, *msg;
    } bad[] = {
        {"abc", NULL, "invalid start: strconv.ParseInt: parsing \"abc\": invalid syntax"},
        {"1.5", NULL, "invalid start: strconv.ParseInt: parsing \"1.5\": invalid syntax"},
        {"+", NULL, "invalid start: strconv.ParseInt: parsing \"+\": invalid syntax"},
        {"10", "x\"y", "invalid end: strconv.ParseInt: parsing \"x\\\"y\": invalid syntax"},
        {"99999999999999999999", NULL,
         "invalid start: strconv.ParseInt: parsing \"99999999999999999999\": value out of range"},
        {"20", "10", "http parameter start must be before end. received start=20 end=10"},
        {"10", "10", "http parameter start must be before end. received start=10 end=10"},
        {"10", "-1", "http parameter start must be before end. received start=10 end=-1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        td_err_init(&err);
        TD_ASSERT_EQ_INT(td__tempo_parse_range(bad[i].start, bad[i].end, &s, &e, &err), TD_INVALID);
        TD_ASSERT_EQ_STR(err.msg, bad[i].msg);
    }
}

static void test_accept_negotiation(void)
{
    static const struct {
        const char *accept;
        td__tempo_format want;
    } cases[] = {
        {NULL, TD_TEMPO_JSON},
        {"", TD_TEMPO_JSON},
        {"application/protobuf", TD_TEMPO_PROTOBUF},
        {"application/json", TD_TEMPO_JSON},
        {"application/x-protobuf", TD_TEMPO_JSON},
        {"application/json, application/protobuf", TD_TEMPO_PROTOBUF},
        {"application/protobuf;q=0.1, application/json", TD_TEMPO_PROTOBUF},
        {"application/vnd.grafana.llm", TD_TEMPO_JSON},
        {"*/*", TD_TEMPO_JSON},
        {"text/html", TD_TEMPO_JSON},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TD_ASSERT_EQ_INT(td__tempo_negotiate(cases[i].accept), cases[i].want);
    }
}

static void test_tenants(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td__tenants ts;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__tempo_tenants("whatever", false, &a, &ts, &err));
    TD_ASSERT_EQ_INT(ts.n, 1);
    TD_ASSERT_EQ_STR(ts.names[0], "single-tenant");
    TD_ASSERT_OK(td__tempo_tenants(NULL, false, &a, &ts, &err));
    TD_ASSERT_EQ_STR(ts.names[0], "single-tenant");

    TD_ASSERT_EQ_INT(td__tempo_tenants(NULL, true, &a, &ts, &err), TD_UNAUTHENTICATED);
    TD_ASSERT_EQ_STR(err.msg, "no org id");
    TD_ASSERT_EQ_INT(td__tempo_tenants("", true, &a, &ts, &err), TD_UNAUTHENTICATED);

    TD_ASSERT_OK(td__tempo_tenants("team-A_1.x*'()!", true, &a, &ts, &err));
    TD_ASSERT_EQ_INT(ts.n, 1);
    TD_ASSERT_EQ_STR(ts.names[0], "team-A_1.x*'()!");
    TD_ASSERT_OK(td__tempo_tenants("b|a|b", true, &a, &ts, &err));
    TD_ASSERT_EQ_INT(ts.n, 2);
    TD_ASSERT_EQ_STR(ts.names[0], "a");
    TD_ASSERT_EQ_STR(ts.names[1], "b");

    TD_ASSERT_EQ_INT(td__tempo_tenants("a b", true, &a, &ts, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "tenant ID 'a b' contains unsupported character ' '");
    TD_ASSERT_EQ_INT(td__tempo_tenants("ok|x/y", true, &a, &ts, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "tenant ID 'x/y' contains unsupported character '/'");
    TD_ASSERT_EQ_INT(td__tempo_tenants("..", true, &a, &ts, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "tenant ID is '.' or '..'");
    TD_ASSERT_EQ_INT(td__tempo_tenants("a||b", true, &a, &ts, &err), TD_INVALID);
    char longid[160];
    memset(longid, 'x', 151);
    longid[151] = '\0';
    TD_ASSERT_EQ_INT(td__tempo_tenants(longid, true, &a, &ts, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "tenant ID is too long: max 150 characters");
    longid[150] = '\0';
    TD_ASSERT_OK(td__tempo_tenants(longid, true, &a, &ts, &err));
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

static void test_options(void)
{
    td_api_opts o;
    memset(&o, 0, sizeof(o));
    td_opt_table t = {"api", td_api_opt_rows, td_api_nopt_rows, &o};
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_config_defaults(&t, 1, &err));
    TD_ASSERT_EQ_STR(o.listen, "0.0.0.0:3200");
    TD_ASSERT_EQ_INT(o.threads, 4);
    TD_ASSERT_EQ_U64(o.max_trace_bytes, 50ull << 20);
    TD_CHECK(!o.multitenancy);
    TD_ASSERT_OK(td_config_set(&t, 1, "multitenancy", "true", "test", &err));
    TD_CHECK(o.multitenancy);
    TD_ASSERT_EQ_INT(td_config_set(&t, 1, "query-threads", "0", "test", &err), TD_INVALID);
    td_config_release(&t, 1);
    TD_CHECK(o.listen == NULL || o.listen[0] == '\0');
}

/* ------------------------------------------------------------------------ */
/* fragments built by hand                                                  */
/* ------------------------------------------------------------------------ */

typedef struct fspan {
    const char *span_hex;
    int kind;
    uint64_t start, end;
    const char *name;
} fspan;

/* Pack a ResourceSpans {service.name=svc; scope; spans of trace tid} into b. */
static void pack_frag(td_buf *b, const char *tid_hex, const char *svc, const char *scope,
                      const fspan *spans, size_t n)
{
    uint8_t tid[16];
    unhex(tid_hex, tid);
    td_otlp_any v = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    v.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v.string_value = (char *)svc;
    td_otlp_kv kv = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
    kv.key = (char *)"service.name";
    kv.value = &v;
    td_otlp_kv *kvs[1] = {&kv};
    td_otlp_resource res = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    res.n_attributes = 1;
    res.attributes = kvs;
    td_otlp_scope sc = OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    sc.name = (char *)scope;
    td_otlp_span sp[8];
    td_otlp_span *spp[8];
    uint8_t sid[8][8];
    TD_ASSERT(n <= 8);
    for (size_t i = 0; i < n; i++) {
        opentelemetry__proto__trace__v1__span__init(&sp[i]);
        unhex(spans[i].span_hex, sid[i]);
        sp[i].trace_id = (ProtobufCBinaryData){16, tid};
        sp[i].span_id = (ProtobufCBinaryData){8, sid[i]};
        sp[i].kind = spans[i].kind;
        sp[i].start_time_unix_nano = spans[i].start;
        sp[i].end_time_unix_nano = spans[i].end;
        sp[i].name = (char *)spans[i].name;
        spp[i] = &sp[i];
    }
    td_otlp_scope_spans ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.scope = &sc;
    ss.n_spans = n;
    ss.spans = spp;
    td_otlp_scope_spans *ssp[1] = {&ss};
    td_otlp_resource_spans rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    rs.resource = &res;
    rs.n_scope_spans = 1;
    rs.scope_spans = ssp;
    size_t len = opentelemetry__proto__trace__v1__resource_spans__get_packed_size(&rs);
    td_buf_reset(b);
    td_buf_grow(b, len);
    opentelemetry__proto__trace__v1__resource_spans__pack(&rs, (uint8_t *)b->data);
    td_buf_setlen(b, len);
}

static void add_frag(td__trace *t, const char *svc, const char *scope, const fspan *spans, size_t n)
{
    td_buf b = TD_BUF_INIT;
    pack_frag(&b, TID_HEX, svc, scope, spans, n);
    td_err err;
    td_err_init(&err);
    td_status st = td__trace_add(t, (const uint8_t *)b.data, b.len, &err);
    td_buf_release(&b);
    TD_ASSERT_EQ_INT(st, TD_OK);
}

static const char *rs_service(const td_otlp_resource_spans *rs)
{
    return rs->resource->attributes[0]->value->string_value;
}

static void test_merge_same_resource(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td__trace t;
    td__trace_init(&t, &a, 0);
    fspan f1[] = {{"0000000000000002", 2, 200, 300, "b"}};
    fspan f2[] = {{"0000000000000001", 2, 100, 400, "a"}, {"0000000000000003", 3, 250, 260, "c"}};
    add_frag(&t, "shop", "lib", f1, 1);
    add_frag(&t, "shop", "lib", f2, 2);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__trace_finish(&t, &err));
    TD_ASSERT_EQ_INT(t.out.n_resourcespans, 1);
    td_otlp_resource_spans *rs = t.out.resourcespans[0];
    TD_ASSERT_EQ_INT(rs->n_scope_spans, 1);
    TD_ASSERT_EQ_INT(rs->scope_spans[0]->n_spans, 3);
    /* sorted by start time */
    TD_ASSERT_EQ_STR(rs->scope_spans[0]->spans[0]->name, "a");
    TD_ASSERT_EQ_STR(rs->scope_spans[0]->spans[1]->name, "b");
    TD_ASSERT_EQ_STR(rs->scope_spans[0]->spans[2]->name, "c");
    TD_ASSERT_EQ_U64(t.nfrags, 2);
    TD_ASSERT_EQ_U64(t.nspans, 3);
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

static void test_merge_different_resources(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td__trace t;
    td__trace_init(&t, &a, 0);
    fspan f1[] = {{"0000000000000001", 2, 100, 400, "a"}};
    fspan f2[] = {{"0000000000000002", 3, 150, 200, "b"}};
    fspan f3[] = {{"0000000000000003", 3, 160, 200, "c"}};
    fspan f4[] = {{"0000000000000004", 3, 170, 200, "d"}};
    add_frag(&t, "shop", "lib", f1, 1);
    add_frag(&t, "cart", "lib", f2, 1);
    add_frag(&t, "shop", "other", f3, 1); /* same resource, another scope */
    add_frag(&t, "cart", "lib", f4, 1);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__trace_finish(&t, &err));
    TD_ASSERT_EQ_INT(t.out.n_resourcespans, 2);
    TD_ASSERT_EQ_STR(rs_service(t.out.resourcespans[0]), "shop");
    TD_ASSERT_EQ_STR(rs_service(t.out.resourcespans[1]), "cart");
    TD_ASSERT_EQ_INT(t.out.resourcespans[0]->n_scope_spans, 2);
    TD_ASSERT_EQ_STR(t.out.resourcespans[0]->scope_spans[1]->scope->name, "other");
    TD_ASSERT_EQ_INT(t.out.resourcespans[1]->n_scope_spans, 1);
    TD_ASSERT_EQ_INT(t.out.resourcespans[1]->scope_spans[0]->n_spans, 2);
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

static void test_dedupe(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td__trace t;
    td__trace_init(&t, &a, 0);
    fspan f1[] = {{"0000000000000001", 2, 100, 400, "first"}};
    fspan f2[] = {{"0000000000000001", 2, 100, 400, "retry"},   /* same id + kind: dropped */
                  {"0000000000000001", 3, 100, 400, "client"}}; /* zipkin shared id: kept */
    add_frag(&t, "shop", "lib", f1, 1);
    add_frag(&t, "shop", "lib", f2, 2);
    add_frag(&t, "shop", "lib", f1, 1); /* a whole duplicate fragment */
    fspan f3[] = {{"0000000000000001", 2, 100, 400, "elsewhere"}};
    add_frag(&t, "other", "lib", f3, 1); /* only duplicates: no empty group is emitted */
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__trace_finish(&t, &err));
    TD_ASSERT_EQ_INT(t.out.n_resourcespans, 1);
    td_otlp_scope_spans *ss = t.out.resourcespans[0]->scope_spans[0];
    TD_ASSERT_EQ_INT(ss->n_spans, 2);
    TD_ASSERT_EQ_STR(ss->spans[0]->name, "first");
    TD_ASSERT_EQ_STR(ss->spans[1]->name, "client");
    TD_ASSERT_EQ_U64(t.nspans, 2);
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

static void test_corrupt_fragment(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td__trace t;
    td__trace_init(&t, &a, 0);
    td_err err;
    td_err_init(&err);
    const uint8_t junk[] = {0x0a, 0x7f, 0x01};
    TD_ASSERT_EQ_INT(td__trace_add(&t, junk, sizeof(junk), &err), TD_CORRUPT);
    /* out of memory while decoding is reported as such */
    td_arena_release(&a);
    td_arena_init(&a, 0, 1);
    td__trace_init(&t, &a, 0);
    td_buf b = TD_BUF_INIT;
    fspan f1[] = {{"0000000000000001", 2, 100, 400, "a"}};
    pack_frag(&b, TID_HEX, "shop", "lib", f1, 1);
    TD_ASSERT_EQ_INT(td__trace_add(&t, (const uint8_t *)b.data, b.len, &err), TD_NOMEM);
    td_buf_release(&b);
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

/* The rich span of the golden test, and an early minimal one. */
static void golden_fragment(td_buf *out)
{
    uint8_t tid[16], sid[8], parent[8], early[8];
    unhex(TID_HEX, tid);
    unhex("EEE19B7EC3C1B174", sid);
    unhex("0102030405060708", parent);
    unhex("1111111111111111", early);

#define ANY_INIT OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT
#define KV_INIT OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT
#define VC(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x
    td_otlp_any vsvc = ANY_INIT, vint = ANY_INIT, vdbl = ANY_INIT, vbool = ANY_INIT,
                varr = ANY_INIT, vkvl = ANY_INIT, vbytes = ANY_INIT, va = ANY_INIT, v1 = ANY_INIT,
                vy = ANY_INIT, vev = ANY_INIT;
    vsvc.value_case = VC(STRING_VALUE);
    vsvc.string_value = (char *)"shop";
    vint.value_case = VC(INT_VALUE);
    vint.int_value = 500;
    vdbl.value_case = VC(DOUBLE_VALUE);
    vdbl.double_value = 0.25;
    vbool.value_case = VC(BOOL_VALUE);
    vbool.bool_value = 1;
    va.value_case = VC(STRING_VALUE);
    va.string_value = (char *)"a";
    v1.value_case = VC(INT_VALUE);
    v1.int_value = 1;
    td_otlp_any *arrv[2] = {&va, &v1};
    td_otlp_array arr = OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    arr.n_values = 2;
    arr.values = arrv;
    varr.value_case = VC(ARRAY_VALUE);
    varr.array_value = &arr;
    vy.value_case = VC(STRING_VALUE);
    vy.string_value = (char *)"y";
    td_otlp_kv kx = KV_INIT;
    kx.key = (char *)"x";
    kx.value = &vy;
    td_otlp_kv *kvlv[1] = {&kx};
    td_otlp_kvlist kvl = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
    kvl.n_values = 1;
    kvl.values = kvlv;
    vkvl.value_case = VC(KVLIST_VALUE);
    vkvl.kvlist_value = &kvl;
    vbytes.value_case = VC(BYTES_VALUE);
    vbytes.bytes_value = (ProtobufCBinaryData){3, (uint8_t *)"\x01\x02\x03"};
    vev.value_case = VC(STRING_VALUE);
    vev.string_value = (char *)"v";

    td_otlp_kv ksvc = KV_INIT, kint = KV_INIT, kdbl = KV_INIT, kbool = KV_INIT, karr = KV_INIT,
               kkvl = KV_INIT, kbytes = KV_INIT, kempty = KV_INIT, kev = KV_INIT;
    ksvc.key = (char *)"service.name";
    ksvc.value = &vsvc;
    kint.key = (char *)"http.status_code";
    kint.value = &vint;
    kdbl.key = (char *)"ratio";
    kdbl.value = &vdbl;
    kbool.key = (char *)"ok";
    kbool.value = &vbool;
    karr.key = (char *)"tags";
    karr.value = &varr;
    kkvl.key = (char *)"m";
    kkvl.value = &vkvl;
    kbytes.key = (char *)"raw";
    kbytes.value = &vbytes;
    kempty.key = (char *)"empty";
    kev.key = (char *)"k";
    kev.value = &vev;

    td_otlp_kv *resattrs[1] = {&ksvc};
    td_otlp_resource res = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    res.n_attributes = 1;
    res.attributes = resattrs;
    td_otlp_scope sc = OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    sc.name = (char *)"manual";
    sc.version = (char *)"1.0.0";

    td_otlp_kv *evattrs[1] = {&kev};
    td_otlp_event ev = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
    ev.time_unix_nano = 1544712660500000000ull;
    ev.name = (char *)"ev";
    ev.n_attributes = 1;
    ev.attributes = evattrs;
    td_otlp_event *evs[1] = {&ev};
    td_otlp_link ln = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__LINK__INIT;
    ln.trace_id = (ProtobufCBinaryData){16, tid};
    ln.span_id = (ProtobufCBinaryData){8, parent};
    ln.flags = 1;
    td_otlp_link *lns[1] = {&ln};
    td_otlp_status stt = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    stt.code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    stt.message = (char *)"boom";

    td_otlp_kv *spattrs[7] = {&kint, &kdbl, &kbool, &karr, &kkvl, &kbytes, &kempty};
    td_otlp_span sp = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
    sp.trace_id = (ProtobufCBinaryData){16, tid};
    sp.span_id = (ProtobufCBinaryData){8, sid};
    sp.trace_state = (char *)"k=v";
    sp.parent_span_id = (ProtobufCBinaryData){8, parent};
    sp.flags = 0x301;
    sp.name = (char *)"GET /cart";
    sp.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
    sp.start_time_unix_nano = 1544712660000000000ull;
    sp.end_time_unix_nano = 1544712661000000000ull;
    sp.n_attributes = 7;
    sp.attributes = spattrs;
    sp.dropped_attributes_count = 2;
    sp.n_events = 1;
    sp.events = evs;
    sp.n_links = 1;
    sp.links = lns;
    sp.status = &stt;

    td_otlp_span sp0 = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
    sp0.trace_id = (ProtobufCBinaryData){16, tid};
    sp0.span_id = (ProtobufCBinaryData){8, early};
    sp0.name = (char *)"early";
    sp0.start_time_unix_nano = 1544712659000000000ull;
    sp0.end_time_unix_nano = 1544712659500000000ull;

    td_otlp_span *spans[2] = {&sp, &sp0};
    td_otlp_scope_spans ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.scope = &sc;
    ss.n_spans = 2;
    ss.spans = spans;
    td_otlp_scope_spans *ssp[1] = {&ss};
    td_otlp_resource_spans rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    rs.resource = &res;
    rs.n_scope_spans = 1;
    rs.scope_spans = ssp;
    rs.schema_url = (char *)"https://opentelemetry.io/schemas/1.21.0";
    size_t len = opentelemetry__proto__trace__v1__resource_spans__get_packed_size(&rs);
    td_buf_grow(out, len);
    opentelemetry__proto__trace__v1__resource_spans__pack(&rs, (uint8_t *)out->data);
    td_buf_setlen(out, len);
#undef ANY_INIT
#undef KV_INIT
#undef VC
}

#define GOLDEN_BATCH                                                                               \
    "{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":"         \
    "\"shop\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"manual\",\"version\":\"1.0.0\"},"         \
    "\"spans\":[{\"traceId\":\"W47/95gDgQPSabYzgT/GDA==\",\"spanId\":\"ERERERERERE=\","            \
    "\"name\":\"early\",\"startTimeUnixNano\":\"1544712659000000000\",\"endTimeUnixNano\":"        \
    "\"1544712659500000000\",\"status\":{}},{\"traceId\":\"W47/95gDgQPSabYzgT/GDA==\","            \
    "\"spanId\":\"7uGbfsPBsXQ=\",\"traceState\":\"k=v\",\"parentSpanId\":\"AQIDBAUGBwg=\","        \
    "\"flags\":769,\"name\":\"GET /cart\",\"kind\":\"SPAN_KIND_SERVER\",\"startTimeUnixNano\":"    \
    "\"1544712660000000000\",\"endTimeUnixNano\":\"1544712661000000000\",\"attributes\":["         \
    "{\"key\":\"http.status_code\",\"value\":{\"intValue\":\"500\"}},"                             \
    "{\"key\":\"ratio\",\"value\":{\"doubleValue\":0.25}},"                                        \
    "{\"key\":\"ok\",\"value\":{\"boolValue\":true}},"                                             \
    "{\"key\":\"tags\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\"},"            \
    "{\"intValue\":\"1\"}]}}},"                                                                    \
    "{\"key\":\"m\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"x\",\"value\":"             \
    "{\"stringValue\":\"y\"}}]}}},"                                                                \
    "{\"key\":\"raw\",\"value\":{\"bytesValue\":\"AQID\"}},"                                       \
    "{\"key\":\"empty\",\"value\":{}}],\"droppedAttributesCount\":2,\"events\":["                  \
    "{\"timeUnixNano\":\"1544712660500000000\",\"name\":\"ev\",\"attributes\":[{\"key\":\"k\","    \
    "\"value\":{\"stringValue\":\"v\"}}]}],\"links\":[{\"traceId\":\"W47/95gDgQPSabYzgT/GDA==\","  \
    "\"spanId\":\"AQIDBAUGBwg=\",\"flags\":1}],\"status\":{\"message\":\"boom\",\"code\":"         \
    "\"STATUS_CODE_ERROR\"}}]}],\"schemaUrl\":\"https://opentelemetry.io/schemas/1.21.0\"}"

static void test_json_golden(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td__trace t;
    td__trace_init(&t, &a, 0);
    td_buf frag = TD_BUF_INIT;
    golden_fragment(&frag);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__trace_add(&t, (const uint8_t *)frag.data, frag.len, &err));
    TD_ASSERT_OK(td__trace_finish(&t, &err));

    td_buf out = TD_BUF_INIT;
    td__trace_json_v1(&t, &out);
    TD_ASSERT_EQ_STR(out.data, "{\"batches\":[" GOLDEN_BATCH "]}");
    td_buf_reset(&out);
    td__trace_json_v2(&t, &out);
    char want[8192];
    snprintf(want, sizeof(want),
             "{\"trace\":{\"resourceSpans\":[" GOLDEN_BATCH "]},\"metrics\":{\"inspectedBytes\":"
             "\"%zu\"}}",
             frag.len);
    TD_ASSERT_EQ_STR(out.data, want);

    /* protobuf v1 is tempopb.Trace: repacking gives the fragment back, field 1-wrapped */
    td_buf_reset(&out);
    TD_ASSERT_OK(td__trace_pb_v1(&t, &out, &err));
    Tempopb__Trace *tr = tempopb__trace__unpack(NULL, out.len, (const uint8_t *)out.data);
    TD_CHECK(tr != NULL);
    TD_ASSERT_EQ_INT(tr->n_resourcespans, 1);
    TD_ASSERT_EQ_INT(tr->resourcespans[0]->scope_spans[0]->n_spans, 2);
    TD_ASSERT_EQ_STR(tr->resourcespans[0]->scope_spans[0]->spans[1]->name, "GET /cart");
    tempopb__trace__free_unpacked(tr, NULL);

    td_buf_release(&out);
    td_buf_release(&frag);
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

static void test_not_found_encodings(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td__trace t;
    td__trace_init(&t, &a, 0);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__trace_finish(&t, &err));
    td_buf out = TD_BUF_INIT;
    TD_ASSERT_OK(td__trace_pb_v2(&t, &out, &err));
    /* field 1 (empty Trace) must be there; field 2 (empty metrics) follows */
    TD_ASSERT_EQ_INT(out.len, 4);
    TD_ASSERT_EQ_MEM(out.data, "\x0a\x00\x12\x00", 4);
    td_buf_reset(&out);
    td__trace_json_v2(&t, &out);
    TD_ASSERT_EQ_STR(out.data, "{\"trace\":{},\"metrics\":{}}");
    td_buf_reset(&out);
    TD_ASSERT_OK(td__trace_pb_v1(&t, &out, &err));
    TD_ASSERT_EQ_INT(out.len, 0);
    td_buf_release(&out);
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

static void test_partial(void)
{
    td_buf b = TD_BUF_INIT;
    fspan f1[] = {{"0000000000000001", 2, 100, 400, "a"}};
    pack_frag(&b, TID_HEX, "shop", "lib", f1, 1);
    uint64_t max = b.len + 1; /* the first fragment fits, the second does not */

    td_arena a;
    td_arena_init(&a, 0, 0);
    td__trace t;
    td__trace_init(&t, &a, max);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__trace_add(&t, (const uint8_t *)b.data, b.len, &err));
    TD_ASSERT_EQ_INT(td__trace_add(&t, (const uint8_t *)b.data, b.len, &err), TD_TOO_LARGE);
    TD_CHECK(t.partial);
    TD_ASSERT_OK(td__trace_finish(&t, &err));
    TD_ASSERT_EQ_U64(t.nspans, 1);

    td_buf out = TD_BUF_INIT;
    TD_ASSERT_OK(td__trace_pb_v2(&t, &out, &err));
    Tempopb__TraceByIDResponse *r =
        tempopb__trace_by_idresponse__unpack(NULL, out.len, (const uint8_t *)out.data);
    TD_CHECK(r != NULL);
    TD_ASSERT_EQ_INT(r->status, TEMPOPB__PARTIAL_STATUS__PARTIAL);
    char msg[128];
    snprintf(msg, sizeof(msg),
             "Trace exceeds maximum size of %llu bytes, a partial trace is returned",
             (unsigned long long)max);
    TD_ASSERT_EQ_STR(r->message, msg);
    TD_ASSERT_EQ_INT(r->trace->n_resourcespans, 1);
    TD_ASSERT_EQ_U64(r->metrics->inspectedbytes, 2 * b.len);
    tempopb__trace_by_idresponse__free_unpacked(r, NULL);

    td_buf_reset(&out);
    td__trace_json_v2(&t, &out);
    char tail[256];
    snprintf(tail, sizeof(tail), "},\"status\":\"PARTIAL\",\"message\":\"%s\"}", msg);
    TD_CHECK(out.len > strlen(tail));
    TD_ASSERT_EQ_STR(out.data + out.len - strlen(tail), tail);
    td_buf_release(&out);
    td_buf_release(&b);
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
}

/* Fail the Nth allocation, N = 1, 2, ...: every failure must surface as TD_NOMEM. */
static void test_assembly_nomem_countdown(void)
{
    td_buf f1 = TD_BUF_INIT, f2 = TD_BUF_INIT;
    golden_fragment(&f1);
    fspan s2[] = {{"0000000000000001", 2, 100, 400, "a"}, {"0000000000000002", 2, 50, 60, "b"}};
    pack_frag(&f2, TID_HEX, "cart", "lib", s2, 2);
    bool finished = false;
    for (long n = 1; n < 100000 && !finished; n++) {
        td_arena a;
        td_arena_init(&a, 1024, 0); /* small chunks: many allocations to fail */
        td__trace t;
        td__trace_init(&t, &a, 0);
        td_buf out = TD_BUF_INIT;
        td_err err;
        td_err_init(&err);
        td_mem_fail_after(n);
        td_status st = td__trace_add(&t, (const uint8_t *)f1.data, f1.len, &err);
        if (st == TD_OK) {
            st = td__trace_add(&t, (const uint8_t *)f2.data, f2.len, &err);
        }
        if (st == TD_OK) {
            st = td__trace_add(&t, (const uint8_t *)f1.data, f1.len, &err);
        }
        if (st == TD_OK) {
            st = td__trace_finish(&t, &err);
        }
        if (st == TD_OK) {
            st = td__trace_pb_v2(&t, &out, &err);
        }
        bool injected = td_mem_fail_after(0);
        if (!injected) {
            TD_ASSERT_EQ_INT(st, TD_OK);
            TD_ASSERT_EQ_U64(t.nspans, 4);
            finished = true;
        } else if (st != TD_OK) {
            TD_ASSERT_EQ_INT(st, TD_NOMEM);
        }
        td_buf_release(&out);
        td_arena_release(&a);
        TD_CHECK(a.head == NULL);
    }
    TD_CHECK(finished);
    td_buf_release(&f1);
    td_buf_release(&f2);
}

/* ------------------------------------------------------------------------ */
/* in-process server                                                        */
/* ------------------------------------------------------------------------ */

/* A tiny blocking HTTP/1.1 client over one connection. */
typedef struct conn {
    int fd;
    char in[1 << 16];
    size_t inlen;
} conn;

typedef struct resp {
    int status;
    char head[4096]; /* status line + headers, NUL-terminated */
    td_buf body;
} resp;

static bool conn_open(conn *c, int family, int port)
{
    c->inlen = 0;
    c->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return false;
    }
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
        sa.sin6_addr = in6addr_loopback;
        rc = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (rc != 0) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    return true;
}

static void conn_close(conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* Read more bytes into c->in; false on EOF/error. */
static bool conn_fill(conn *c)
{
    if (c->inlen == sizeof(c->in)) {
        return false;
    }
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
    if (n <= 0) {
        return false;
    }
    c->inlen += (size_t)n;
    return true;
}

/* Value of header name in r->head (case-insensitive), copied into out. */
static bool resp_header(const resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *h = p + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= cap) {
                n = cap - 1;
            }
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

/* The text of one request. */
static int http_format(char *req, size_t cap, const char *method, const char *path,
                       const char *headers)
{
    return snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: test\r\n%s%s\r\n", method, path,
                    headers ? headers : "",
                    strcmp(method, "POST") == 0 ? "Content-Length: 0\r\n" : "");
}

static bool http_read(conn *c, const char *method, resp *r);

/* Send one request and read its response. false on any transport failure. */
static bool http_do(conn *c, const char *method, const char *path, const char *headers, resp *r)
{
    char req[2048];
    int n = http_format(req, sizeof(req), method, path, headers);
    if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        return false;
    }
    return http_read(c, method, r);
}

/* Read the response to a request made with method. */
static bool http_read(conn *c, const char *method, resp *r)
{
    char *end;
    while (!(end = memmem(c->in, c->inlen, "\r\n\r\n", 4))) {
        if (!conn_fill(c)) {
            return false;
        }
    }
    size_t hlen = (size_t)(end - c->in) + 4;
    if (hlen >= sizeof(r->head)) {
        return false;
    }
    memcpy(r->head, c->in, hlen - 2);
    r->head[hlen - 2] = '\0';
    r->status = atoi(r->head + 9);
    td_buf_init(&r->body, 0);
    char cl[32];
    size_t blen = 0;
    if (strcmp(method, "HEAD") != 0 && resp_header(r, "Content-Length", cl, sizeof(cl))) {
        blen = (size_t)strtoull(cl, NULL, 10);
    }
    memmove(c->in, c->in + hlen, c->inlen - hlen);
    c->inlen -= hlen;
    while (c->inlen < blen) {
        size_t take = c->inlen;
        td_buf_add(&r->body, c->in, take);
        blen -= take;
        c->inlen = 0;
        if (!conn_fill(c)) {
            return false;
        }
    }
    td_buf_add(&r->body, c->in, blen);
    memmove(c->in, c->in + blen, c->inlen - blen);
    c->inlen -= blen;
    return true;
}

/* One request on a fresh connection. */
static bool http_get1(int port, const char *path, const char *headers, resp *r)
{
    conn *c = td_xmalloc(sizeof(*c));
    bool ok = conn_open(c, AF_INET, port) && http_do(c, "GET", path, headers, r);
    conn_close(c);
    td_free(c);
    return ok;
}

#define GET_OK(port, path, headers, r) TD_CHECK(http_get1((port), (path), (headers), (r)))

static void expect_text(int port, const char *path, const char *headers, int status,
                        const char *body)
{
    resp r;
    GET_OK(port, path, headers, &r);
    char ct[128] = "";
    resp_header(&r, "Content-Type", ct, sizeof(ct));
    int st = r.status;
    char *got = td_buf_detach(&r.body, NULL);
    if (st != status || strcmp(got, body) != 0) {
        fprintf(stderr, "  GET %s: %d %s\n", path, st, got);
    }
    bool ok = st == status && strcmp(got, body) == 0 && strncmp(ct, "text/plain", 10) == 0;
    td_free(got);
    TD_CHECK(ok);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void write_frags(td_store *s, const char *tenant, const char *tid_hex, td_buf *frags,
                        const uint64_t *starts, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += frags[i].len;
    }
    td_batch *b = td_batch_new(tenant, n, total);
    TD_CHECK(b != NULL);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        td_frag *f = &b->frags[i];
        unhex(tid_hex, f->trace_id);
        f->start_ns = starts[i];
        f->end_ns = starts[i] + 1000;
        f->nspans = 1;
        f->len = (uint32_t)frags[i].len;
        memcpy(b->data + off, frags[i].data, frags[i].len);
        f->data = b->data + off;
        off += frags[i].len;
    }
    b->q.spans = n;
    b->q.bytes = total;
    td_err err;
    td_err_init(&err);
    td_status st = td_store_write(s, &b, 1, &err);
    td_batch_free(b);
    TD_ASSERT_EQ_INT(st, TD_OK);
}

#define TA "5B8EFFF798038103D269B633813FC60C" /* two fragments, one resource */
#define TB "000000000000000000000000000000BB" /* in tenants t1 and t2 */
#define TC "00000000000000000123456789ABCDEF" /* a 64-bit ID */
#define T_SEC 1544712660ull

static td_api *start_api(td_store *s, const char *addr, uint64_t max, bool mt)
{
    td_api_opts o = {
        .listen = (char *)addr, .threads = 2, .max_trace_bytes = max, .multitenancy = mt};
    td_api *api = NULL;
    td_err err;
    td_err_init(&err);
    if (td_api_new(&o, s, &api, &err) != TD_OK) {
        return NULL;
    }
    if (td_api_start(api, &err) != TD_OK) {
        fprintf(stderr, "  start %s: %s\n", addr, err.msg);
        td_api_free(api);
        return NULL;
    }
    return api;
}

static size_t count_substr(const char *s, const char *sub)
{
    size_t n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) {
        n++;
    }
    return n;
}

static void server_basic_routes(td_api *api, int port)
{
    expect_text(port, "/ready", NULL, 503, "not ready: starting up\n");
    td_api_set_ready(api, true);
    expect_text(port, "/ready", NULL, 200, "ready\n");
    expect_text(port, "/api/echo", NULL, 200, "echo");
    expect_text(port, "/nope", NULL, 404, "404 page not found\n");
    expect_text(port, "/api/traces/", NULL, 404, "404 page not found\n");
    expect_text(port, "/api/traces/abc/def", NULL, 404, "404 page not found\n");

    resp r;
    char ct[128], rid[128];
    GET_OK(port, "/health", NULL, &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_STR(r.body.data, "{\"status\":\"healthy\",\"version\":\"" TD_VERSION "\"}");
    TD_CHECK(resp_header(&r, "Content-Type", ct, sizeof(ct)));
    TD_ASSERT_EQ_STR(ct, "application/json");
    /* a fresh request id when none is sent */
    TD_CHECK(resp_header(&r, "X-Request-Id", rid, sizeof(rid)));
    TD_ASSERT_EQ_INT(strlen(rid), 16);
    td_buf_release(&r.body);

    GET_OK(port, "/api/status/buildinfo", "X-Request-Id: my-req-1\r\n", &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_CHECK(strncmp(r.body.data,
                     "{\"version\":\"2.9.0\",\"revision\":\"" TD_VERSION
                     "\",\"branch\":\"main\",\"buildUser\":\"\",\"buildDate\":\"",
                     strlen("{\"version\":\"2.9.0\",\"revision\":\"" TD_VERSION
                            "\",\"branch\":\"main\",\"buildUser\":\"\",\"buildDate\":\"")) == 0);
    TD_CHECK(strstr(r.body.data, "\",\"goVersion\":\"\"}") != NULL);
    TD_CHECK(resp_header(&r, "X-Request-Id", rid, sizeof(rid)));
    TD_ASSERT_EQ_STR(rid, "my-req-1");
    td_buf_release(&r.body);

    /* a request id with a space is not echoed */
    GET_OK(port, "/api/echo", "X-Request-Id: bad id\r\n", &r);
    TD_CHECK(resp_header(&r, "X-Request-Id", rid, sizeof(rid)));
    TD_ASSERT_EQ_INT(strlen(rid), 16);
    td_buf_release(&r.body);

    GET_OK(port, "/metrics", NULL, &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_CHECK(resp_header(&r, "Content-Type", ct, sizeof(ct)));
    TD_ASSERT_EQ_STR(ct, "text/plain; version=0.0.4; charset=utf-8");
    TD_CHECK(strstr(r.body.data,
                    "traced_query_requests_total{route=\"/api/echo\",status=\"200\"}") != NULL);
    TD_CHECK(strstr(r.body.data, "traced_query_requests_total{route=\"other\",status=\"404\"}") !=
             NULL);
    TD_CHECK(strstr(r.body.data, "traced_query_duration_seconds_bucket{route=\"/ready\",le=") !=
             NULL);
    td_buf_release(&r.body);

    /* methods: POST -> 405, HEAD works without a body */
    conn *c = td_xmalloc(sizeof(*c));
    TD_CHECK(conn_open(c, AF_INET, port));
    TD_CHECK(http_do(c, "POST", "/api/echo", NULL, &r));
    TD_ASSERT_EQ_INT(r.status, 405);
    TD_CHECK(resp_header(&r, "Allow", ct, sizeof(ct)));
    TD_ASSERT_EQ_STR(ct, "GET, HEAD");
    td_buf_release(&r.body);
    conn_close(c);
    TD_CHECK(conn_open(c, AF_INET, port));
    TD_CHECK(http_do(c, "DELETE", "/api/traces/" TA, NULL, &r));
    TD_ASSERT_EQ_INT(r.status, 405);
    td_buf_release(&r.body);
    TD_CHECK(http_do(c, "HEAD", "/api/echo", NULL, &r));
    TD_ASSERT_EQ_INT(r.status, 200);
    td_buf_release(&r.body);
    /* keep-alive: two more requests on the same connection */
    TD_CHECK(http_do(c, "GET", "/api/echo", NULL, &r));
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_STR(r.body.data, "echo");
    td_buf_release(&r.body);
    TD_CHECK(http_do(c, "GET", "/ready", NULL, &r));
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_STR(r.body.data, "ready\n");
    td_buf_release(&r.body);
    conn_close(c);
    td_free(c);
}

static void server_trace_routes(int port)
{
    resp r;
    char ct[128];
    /* v1 JSON: both fragments merged into one batch */
    GET_OK(port, "/api/traces/" TA, NULL, &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_CHECK(resp_header(&r, "Content-Type", ct, sizeof(ct)));
    TD_ASSERT_EQ_STR(ct, "application/json");
    TD_CHECK(strncmp(r.body.data, "{\"batches\":[{\"resource\":", 24) == 0);
    TD_ASSERT_EQ_INT(count_substr(r.body.data, "\"resource\""), 1);
    TD_ASSERT_EQ_INT(count_substr(r.body.data, "\"spanId\""), 2);
    td_buf_release(&r.body);

    /* v1 protobuf, lower-case ID */
    GET_OK(port, "/api/traces/5b8efff798038103d269b633813fc60c", "Accept: application/protobuf\r\n",
           &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_CHECK(resp_header(&r, "Content-Type", ct, sizeof(ct)));
    TD_ASSERT_EQ_STR(ct, "application/protobuf");
    Tempopb__Trace *tr = tempopb__trace__unpack(NULL, r.body.len, (const uint8_t *)r.body.data);
    TD_CHECK(tr != NULL);
    TD_ASSERT_EQ_INT(tr->n_resourcespans, 1);
    TD_ASSERT_EQ_INT(tr->resourcespans[0]->scope_spans[0]->n_spans, 2);
    tempopb__trace__free_unpacked(tr, NULL);
    td_buf_release(&r.body);

    /* x-protobuf is not protobuf to Tempo */
    GET_OK(port, "/api/traces/" TA, "Accept: application/x-protobuf\r\n", &r);
    TD_CHECK(resp_header(&r, "Content-Type", ct, sizeof(ct)));
    TD_ASSERT_EQ_STR(ct, "application/json");
    td_buf_release(&r.body);

    /* v2 protobuf and JSON */
    GET_OK(port, "/api/v2/traces/" TA, "Accept: application/protobuf\r\n", &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    Tempopb__TraceByIDResponse *br =
        tempopb__trace_by_idresponse__unpack(NULL, r.body.len, (const uint8_t *)r.body.data);
    TD_CHECK(br != NULL && br->trace != NULL);
    TD_ASSERT_EQ_INT(br->trace->n_resourcespans, 1);
    TD_ASSERT_EQ_INT(br->status, TEMPOPB__PARTIAL_STATUS__COMPLETE);
    TD_CHECK(br->metrics && br->metrics->inspectedbytes > 0);
    tempopb__trace_by_idresponse__free_unpacked(br, NULL);
    td_buf_release(&r.body);
    GET_OK(port, "/api/v2/traces/" TA, "Accept: application/json\r\n", &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_CHECK(strncmp(r.body.data, "{\"trace\":{\"resourceSpans\":[{", 28) == 0);
    TD_CHECK(strstr(r.body.data, "},\"metrics\":{\"inspectedBytes\":\"") != NULL);
    td_buf_release(&r.body);

    /* a 64-bit ID, odd length, without its leading zeros; tenant header ignored */
    GET_OK(port, "/api/traces/123456789abcdef", "X-Scope-OrgID: t1\r\n", &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    td_buf_release(&r.body);

    /* time window */
    char path[256];
    snprintf(path, sizeof(path), "/api/traces/" TA "?start=%llu&end=%llu", T_SEC - 10, T_SEC + 10);
    GET_OK(port, path, NULL, &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    td_buf_release(&r.body);
    snprintf(path, sizeof(path), "/api/traces/" TA "?start=%llu&end=%llu", T_SEC + 100,
             T_SEC + 200);
    expect_text(port, path, NULL, 404, "trace not found\n");

    /* not found */
    expect_text(port, "/api/traces/0123", NULL, 404, "trace not found\n");
    GET_OK(port, "/api/v2/traces/0123", "Accept: application/protobuf\r\n", &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_INT(r.body.len, 4);
    TD_ASSERT_EQ_MEM(r.body.data, "\x0a\x00\x12\x00", 4);
    td_buf_release(&r.body);
    GET_OK(port, "/api/v2/traces/0123", NULL, &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_STR(r.body.data, "{\"trace\":{},\"metrics\":{}}");
    td_buf_release(&r.body);

    /* bad requests, with Tempo's texts */
    expect_text(port, "/api/traces/xyz", NULL, 400,
                "trace IDs can only contain hex characters: invalid character 'x' at position 1\n");
    expect_text(port, "/api/v2/traces/1" TA, NULL, 400,
                "trace IDs can't be larger than 128 bits\n");
    expect_text(port, "/api/traces/" TA "?start=abc", NULL, 400,
                "invalid start: strconv.ParseInt: parsing \"abc\": invalid syntax\n");
    expect_text(port, "/api/traces/" TA "?end=1e3", NULL, 400,
                "invalid end: strconv.ParseInt: parsing \"1e3\": invalid syntax\n");
    expect_text(port, "/api/v2/traces/" TA "?start=20&end=10", NULL, 400,
                "http parameter start must be before end. received start=20 end=10\n");
}

static void server_multitenant(td_store *s)
{
    td_api *api = start_api(s, "127.0.0.1:0", 50u << 20, true);
    TD_CHECK(api != NULL);
    int port = td_api_port(api);
    expect_text(port, "/api/traces/" TB, NULL, 401, "no org id\n");
    expect_text(port, "/api/traces/" TB, "X-Scope-OrgID: a/b\r\n", 400,
                "tenant ID 'a/b' contains unsupported character '/'\n");
    expect_text(port, "/api/traces/" TA, "X-Scope-OrgID: t1\r\n", 404, "trace not found\n");

    resp r;
    GET_OK(port, "/api/traces/" TB, "X-Scope-OrgID: t1\r\n", &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_INT(count_substr(r.body.data, "\"resource\""), 1);
    TD_ASSERT_EQ_INT(count_substr(r.body.data, "\"tenant\""), 0);
    td_buf_release(&r.body);
    /* both tenants: merged, each batch marked with its tenant */
    GET_OK(port, "/api/traces/" TB, "X-Scope-OrgID: t2|t1\r\n", &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_INT(count_substr(r.body.data, "\"resource\""), 2);
    TD_CHECK(strstr(r.body.data, "{\"key\":\"tenant\",\"value\":{\"stringValue\":\"t1\"}}") !=
             NULL);
    TD_CHECK(strstr(r.body.data, "{\"key\":\"tenant\",\"value\":{\"stringValue\":\"t2\"}}") !=
             NULL);
    td_buf_release(&r.body);
    td_api_free(api);
}

static void server_size_limit(td_store *s, size_t first_frag_len)
{
    uint64_t max = first_frag_len + 1;
    td_api *api = start_api(s, "127.0.0.1:0", max, false);
    TD_CHECK(api != NULL);
    int port = td_api_port(api);
    char msg[128];
    snprintf(msg, sizeof(msg), "trace exceeds max size (max bytes: %llu)\n",
             (unsigned long long)max);
    expect_text(port, "/api/traces/" TA, NULL, 422, msg);
    resp r;
    GET_OK(port, "/api/v2/traces/" TA, "Accept: application/protobuf\r\n", &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    Tempopb__TraceByIDResponse *br =
        tempopb__trace_by_idresponse__unpack(NULL, r.body.len, (const uint8_t *)r.body.data);
    TD_CHECK(br != NULL);
    TD_ASSERT_EQ_INT(br->status, TEMPOPB__PARTIAL_STATUS__PARTIAL);
    TD_ASSERT_EQ_INT(br->trace->n_resourcespans, 1);
    TD_ASSERT_EQ_INT(br->trace->resourcespans[0]->scope_spans[0]->n_spans, 1);
    snprintf(msg, sizeof(msg),
             "Trace exceeds maximum size of %llu bytes, a partial trace is returned",
             (unsigned long long)max);
    TD_ASSERT_EQ_STR(br->message, msg);
    tempopb__trace_by_idresponse__free_unpacked(br, NULL);
    td_buf_release(&r.body);
    td_api_free(api);
}

static void server_listen_errors(int busy_port)
{
    td_api_opts o = {.listen = (char *)"127.0.0.1:http", .threads = 1};
    td_api *api = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_api_new(&o, NULL, &api, &err));
    TD_ASSERT_EQ_INT(td_api_start(api, &err), TD_INVALID);
    td_api_free(api);

    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", busy_port);
    o.listen = addr;
    TD_ASSERT_OK(td_api_new(&o, NULL, &api, &err));
    TD_ASSERT_EQ_INT(td_api_start(api, &err), TD_IO);
    TD_CHECK(strstr(err.msg, "Address already in use") != NULL);
    td_api_free(api);

    o.threads = 0;
    TD_ASSERT_EQ_INT(td_api_new(&o, NULL, &api, &err), TD_INVALID);
    TD_CHECK(api == NULL);
}

static void server_ipv6(td_store *s)
{
    td_api *api = start_api(s, "[::1]:0", 0, false);
    if (!api) {
        fprintf(stderr, "  (no IPv6 loopback here; skipped)\n");
        return;
    }
    int port = td_api_port(api);
    TD_CHECK(port > 0);
    conn *c = td_xmalloc(sizeof(*c));
    TD_CHECK(conn_open(c, AF_INET6, port));
    resp r;
    TD_CHECK(http_do(c, "GET", "/api/echo", NULL, &r));
    TD_ASSERT_EQ_INT(r.status, 200);
    td_buf_release(&r.body);
    conn_close(c);
    td_free(c);
    td_api_free(api);
}

static void test_server(void)
{
    td_log_set_level(TD_LOG_ERROR);
    const char *tmp = getenv("TD_TEST_TMP");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/test_api.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(dir, 0755);

    td_store_opts so = {.dir = dir, .cache_bytes = 1 << 20, .write_buffer_bytes = 1 << 20};
    td_store *s = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_open(&so, &s, &err));

    td_buf fr[2] = {TD_BUF_INIT, TD_BUF_INIT};
    uint64_t st[2] = {T_SEC * 1000000000ull, T_SEC * 1000000000ull + 500};
    fspan a1[] = {{"00000000000000A1", 2, st[0], st[0] + 1000, "root"}};
    fspan a2[] = {{"00000000000000A2", 3, st[1], st[1] + 100, "child"}};
    pack_frag(&fr[0], TA, "shop", "lib", a1, 1);
    pack_frag(&fr[1], TA, "shop", "lib", a2, 1);
    write_frags(s, TD_DEFAULT_TENANT, TA, fr, st, 2);
    size_t first_len = fr[0].len;
    pack_frag(&fr[0], TC, "svc", "lib", a1, 1);
    write_frags(s, TD_DEFAULT_TENANT, TC, fr, st, 1);
    pack_frag(&fr[0], TB, "svc", "lib", a1, 1);
    write_frags(s, "t1", TB, fr, st, 1);
    pack_frag(&fr[0], TB, "svc", "lib", a2, 1);
    write_frags(s, "t2", TB, fr, st, 1);
    td_buf_release(&fr[0]);
    td_buf_release(&fr[1]);

    td_api *api = start_api(s, "127.0.0.1:0", 50u << 20, false);
    TD_CHECK(api != NULL);
    int port = td_api_port(api);
    TD_CHECK(port > 0);

    server_basic_routes(api, port);
    server_trace_routes(port);
    server_multitenant(s);
    server_size_limit(s, first_len);
    server_listen_errors(port);
    server_ipv6(s);

    td_api_set_ready(api, false);
    expect_text(port, "/ready", NULL, 503, "not ready: shutting down\n");
    td_api_stop(api);
    TD_ASSERT_EQ_INT(td_api_port(api), 0);
    td_api_free(api);
    td_store_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    /* closed cleanly: the port no longer accepts connections */
    conn *c = td_xmalloc(sizeof(*c));
    bool connected = conn_open(c, AF_INET, port);
    conn_close(c);
    td_free(c);
    TD_CHECK(!connected);
}

/* ------------------------------------------------------------------------ */
/* one port, two protocols: classification, HTTP/1.1 and h2c gRPC          */
/* ------------------------------------------------------------------------ */

static void test_classify(void)
{
    TD_ASSERT_EQ_INT(td__query_classify("", 0), TD_CONN_UNDECIDED);
    TD_ASSERT_EQ_INT(td__query_classify("P", 1), TD_CONN_UNDECIDED);
    TD_ASSERT_EQ_INT(td__query_classify("PRI * HTTP/2.0\r\n", 16), TD_CONN_UNDECIDED);
    TD_ASSERT_EQ_INT(td__query_classify(TD_H2_PREFACE, 23), TD_CONN_UNDECIDED);
    TD_ASSERT_EQ_INT(td__query_classify(TD_H2_PREFACE, TD_H2_PREFACE_LEN), TD_CONN_H2);
    /* the preface followed by the client's SETTINGS frame */
    TD_ASSERT_EQ_INT(td__query_classify(TD_H2_PREFACE "\0\0\0\x04\0\0\0\0\0", 33), TD_CONN_H2);
    /* HTTP/1 is known at the first byte that differs */
    TD_ASSERT_EQ_INT(td__query_classify("POST / HTTP/1.1\r\n", 2), TD_CONN_HTTP1);
    TD_ASSERT_EQ_INT(td__query_classify("GET / HTTP/1.1\r\n", 1), TD_CONN_HTTP1);
    TD_ASSERT_EQ_INT(td__query_classify("PRI * HTTP/1.1\r\n", 16), TD_CONN_HTTP1);
    TD_ASSERT_EQ_INT(td__query_classify("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r", 24), TD_CONN_HTTP1);
    TD_ASSERT_EQ_INT(td__query_classify("\x16\x03\x01\x02", 4), TD_CONN_HTTP1); /* TLS */
}

/* ---- test methods ---- */

/* Message 0 echoes the request, 1 lists the tenants, 2 is the x-test metadata ("-" if absent). */
static td_status h_three(td__query_grpc_call *call, void *cls, td_err *err)
{
    (void)cls;
    td_slice req = td__query_grpc_request(call);
    td_status st = td__query_grpc_send(call, req.ptr, req.len, err);
    const td__tenants *ts = td__query_grpc_tenants(call);
    td_buf b = TD_BUF_INIT;
    for (size_t i = 0; i < ts->n; i++) {
        td_buf_addstr(&b, i ? "|" : "");
        td_buf_addstr(&b, ts->names[i]);
    }
    if (st == TD_OK) {
        st = td__query_grpc_send(call, b.data, b.len, err);
    }
    td_buf_release(&b);
    size_t n = 0;
    const char *v = td__query_grpc_metadata(call, "x-test", &n);
    if (st == TD_OK) {
        st = td__query_grpc_send(call, v ? v : "-", v ? n : 1, err);
    }
    return st;
}

static td_status h_fail(td__query_grpc_call *call, void *cls, td_err *err)
{
    (void)cls;
    td_slice req = td__query_grpc_request(call);
    return td_err_set(err, TD_INVALID, "bad request: %.*s", (int)req.len, req.ptr);
}

static td_status h_too_big(td__query_grpc_call *call, void *cls, td_err *err)
{
    (void)cls;
    /* refused on its length alone, before a byte is read */
    td_status st = td__query_grpc_send(call, "", TD_QUERY_GRPC_MAX_MSG + 1, err);
    return st == TD_TOO_LARGE ? st : td_err_set(err, TD_INTERNAL, "expected TD_TOO_LARGE");
}

/* Streams until the call ends; *state: 1 running, 2 saw the client's cancel, 3 something else. */
static td_status h_endless(td__query_grpc_call *call, void *cls, td_err *err)
{
    atomic_int *state = cls;
    atomic_store(state, 1);
    char msg[1024];
    memset(msg, 'x', sizeof(msg));
    td_status st;
    for (int i = 0; (st = td__query_grpc_send(call, msg, sizeof(msg), err)) == TD_OK; i++) {
        if (i > 1000000) {
            break;
        }
    }
    atomic_store(state, st == TD_IO && td__query_grpc_cancelled(call) ? 2 : 3);
    return st;
}

/* Sends one message, then waits until the call is cancelled; *state as above. */
static td_status h_block(td__query_grpc_call *call, void *cls, td_err *err)
{
    atomic_int *state = cls;
    atomic_store(state, 1);
    td_status st = td__query_grpc_send(call, "started", 7, err);
    while (st == TD_OK && !td__query_grpc_cancelled(call)) {
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    atomic_store(state, td__query_grpc_cancelled(call) ? 2 : 3);
    return td_err_set(err, TD_IO, "stopped");
}

static td_status h_unused(td__query_grpc_call *call, void *cls, td_err *err)
{
    (void)call;
    (void)cls;
    (void)err;
    return TD_OK;
}

static void test_grpc_register(void)
{
    td__query_grpc_opts o = {.handler_threads = 1};
    td__query_grpc *g = td__query_grpc_new(&o);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td__query_grpc_register(g, "/a.B/C", h_unused, NULL, &err));
    TD_ASSERT_EQ_INT(td__query_grpc_register(g, "/a.B/C", h_unused, NULL, &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "twice") != NULL);
    static const char *const bad[] = {"a.B/C", "/a.B", "/a.B/", "//C", "/a/B/C", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        TD_ASSERT_EQ_INT(td__query_grpc_register(g, bad[i], h_unused, NULL, &err), TD_INVALID);
    }
    TD_ASSERT_EQ_INT(td__query_grpc_register(g, "/a.B/D", NULL, NULL, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(td__query_grpc_nmethods(g), 1);
    /* start, no registration while running, stop; a second start works too */
    for (int round = 0; round < 2; round++) {
        TD_ASSERT_OK(td__query_grpc_start(g, &err));
        TD_ASSERT_EQ_INT(td__query_grpc_register(g, "/a.B/E", h_unused, NULL, &err), TD_INVALID);
        td__query_grpc_stop(g);
    }
    td__query_grpc_stop(g); /* no-op */
    TD_ASSERT_OK(td__query_grpc_register(g, "/a.B/E", h_unused, NULL, &err));
    TD_ASSERT_EQ_INT(td__query_grpc_nmethods(g), 2);
    td__query_grpc_free(g);
}

/* ---- a gRPC C core client: one server-streaming call ---- */

static gpr_timespec in_ms(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static double mono_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum { TAG_START = 1, TAG_STATUS = 2, TAG_MSG = 4 };

typedef struct gclient {
    grpc_completion_queue *cq;
    grpc_call *call;
    unsigned done, ok; /* TAG_* bits */
    grpc_metadata md[2];
    size_t nmd;
    grpc_byte_buffer *req;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code code;
    grpc_slice details;
} gclient;

typedef struct gres {
    grpc_status_code code;
    char details[256];
    char request_id[80];
    size_t nmsgs;
    td_buf msgs[4]; /* the first four messages */
} gres;

static void gres_release(gres *r)
{
    for (size_t i = 0; i < 4; i++) {
        td_buf_release(&r->msgs[i]);
    }
}

/* Wait for the batches with tags t (others completing meanwhile are recorded). */
static bool gclient_wait(gclient *g, unsigned t)
{
    while ((g->done & t) != t) {
        grpc_event ev = grpc_completion_queue_next(g->cq, in_ms(15000), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            return false;
        }
        unsigned bit = (unsigned)(uintptr_t)ev.tag;
        g->done |= bit;
        if (ev.success) {
            g->ok |= bit;
        }
    }
    return true;
}

/* Start the call: metadata (x-scope-orgid when tenant, x-test: hello), request, half-close. */
static bool gclient_start(gclient *g, grpc_channel *ch, const char *method, const char *tenant,
                          const char *req)
{
    memset(g, 0, sizeof(*g));
    g->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice path = grpc_slice_from_copied_string(method);
    g->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, g->cq, path, NULL,
                                       in_ms(10000), NULL);
    grpc_slice_unref(path);
    g->md[g->nmd].key = grpc_slice_from_static_string("x-test");
    g->md[g->nmd++].value = grpc_slice_from_static_string("hello");
    if (tenant) {
        g->md[g->nmd].key = grpc_slice_from_static_string("x-scope-orgid");
        g->md[g->nmd++].value = grpc_slice_from_copied_string(tenant);
    }
    grpc_slice rs = grpc_slice_from_copied_string(req);
    g->req = grpc_raw_byte_buffer_create(&rs, 1);
    grpc_slice_unref(rs);
    grpc_metadata_array_init(&g->init_md);
    grpc_metadata_array_init(&g->trail_md);
    g->details = grpc_empty_slice();

    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = g->nmd;
    ops[0].data.send_initial_metadata.metadata = g->md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = g->req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &g->init_md;
    if (grpc_call_start_batch(g->call, ops, 4, (void *)(uintptr_t)TAG_START, NULL) !=
        GRPC_CALL_OK) {
        return false;
    }
    grpc_op st;
    memset(&st, 0, sizeof(st));
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.trailing_metadata = &g->trail_md;
    st.data.recv_status_on_client.status = &g->code;
    st.data.recv_status_on_client.status_details = &g->details;
    return grpc_call_start_batch(g->call, &st, 1, (void *)(uintptr_t)TAG_STATUS, NULL) ==
           GRPC_CALL_OK;
}

/* The next message into out; *end is set when the stream has none left. */
static bool gclient_read(gclient *g, td_buf *out, bool *end)
{
    grpc_byte_buffer *m = NULL;
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &m;
    g->done &= ~(unsigned)TAG_MSG;
    g->ok &= ~(unsigned)TAG_MSG;
    if (grpc_call_start_batch(g->call, &op, 1, (void *)(uintptr_t)TAG_MSG, NULL) != GRPC_CALL_OK ||
        !gclient_wait(g, TAG_MSG)) {
        return false;
    }
    *end = m == NULL;
    if (m) {
        grpc_byte_buffer_reader rd;
        grpc_byte_buffer_reader_init(&rd, m);
        grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
        td_buf_reset(out);
        td_buf_add(out, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
        grpc_slice_unref(s);
        grpc_byte_buffer_reader_destroy(&rd);
        grpc_byte_buffer_destroy(m);
    }
    return true;
}

/* Wait for the status into r (code, details, x-request-id) and free everything. */
static bool gclient_finish(gclient *g, gres *r)
{
    bool ok = gclient_wait(g, TAG_START | TAG_STATUS);
    r->code = g->code;
    snprintf(r->details, sizeof(r->details), "%.*s", (int)GRPC_SLICE_LENGTH(g->details),
             (const char *)GRPC_SLICE_START_PTR(g->details));
    for (size_t i = 0; i < g->init_md.count; i++) {
        const grpc_metadata *m = &g->init_md.metadata[i];
        if (grpc_slice_str_cmp(m->key, "x-request-id") == 0) {
            snprintf(r->request_id, sizeof(r->request_id), "%.*s", (int)GRPC_SLICE_LENGTH(m->value),
                     (const char *)GRPC_SLICE_START_PTR(m->value));
        }
    }
    grpc_slice_unref(g->details);
    for (size_t i = 0; i < g->nmd; i++) {
        grpc_slice_unref(g->md[i].key);
        grpc_slice_unref(g->md[i].value);
    }
    grpc_metadata_array_destroy(&g->init_md);
    grpc_metadata_array_destroy(&g->trail_md);
    grpc_byte_buffer_destroy(g->req);
    grpc_call_unref(g->call);
    grpc_completion_queue_shutdown(g->cq);
    while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(g->cq);
    return ok;
}

/* One whole call; cancels after cancel_after messages when that is > 0. */
static bool grpc_stream(grpc_channel *ch, const char *method, const char *tenant, const char *req,
                        size_t cancel_after, gres *r)
{
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < 4; i++) {
        td_buf_init(&r->msgs[i], 0);
    }
    gclient g;
    bool ok = gclient_start(&g, ch, method, tenant, req);
    td_buf scratch = TD_BUF_INIT;
    bool end = false;
    while (ok && !end) {
        ok = gclient_read(&g, r->nmsgs < 4 ? &r->msgs[r->nmsgs] : &scratch, &end);
        if (ok && !end && ++r->nmsgs == cancel_after) {
            grpc_call_cancel(g.call, NULL);
        }
    }
    td_buf_release(&scratch);
    return gclient_finish(&g, r) && ok;
}

static grpc_channel *channel_to(int port)
{
    char target[64];
    snprintf(target, sizeof(target), "ipv4:127.0.0.1:%d", port);
    grpc_channel_credentials *cc = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, cc, NULL);
    grpc_channel_credentials_release(cc);
    return ch;
}

/* Wait up to secs for *v == want. */
static bool wait_int(atomic_int *v, int want, double secs)
{
    double until = mono_sec() + secs;
    while (atomic_load(v) != want) {
        if (mono_sec() > until) {
            return false;
        }
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    return true;
}

static atomic_int endless_state, block_state;

static td_api *start_api_grpc(bool mt)
{
    td_api_opts o = {.listen = (char *)"127.0.0.1:0", .threads = 2, .multitenancy = mt};
    td_api *api = NULL;
    td_err err;
    td_err_init(&err);
    if (td_api_new(&o, NULL, &api, &err) != TD_OK) {
        return NULL;
    }
    td__query_grpc *g = td__api_query_grpc(api);
    if (td__query_grpc_register(g, "/td.test.Stream/Three", h_three, NULL, &err) != TD_OK ||
        td__query_grpc_register(g, "/td.test.Stream/Fail", h_fail, NULL, &err) != TD_OK ||
        td__query_grpc_register(g, "/td.test.Stream/TooBig", h_too_big, NULL, &err) != TD_OK ||
        td__query_grpc_register(g, "/td.test.Stream/Endless", h_endless, &endless_state, &err) !=
            TD_OK ||
        td__query_grpc_register(g, "/td.test.Stream/Block", h_block, &block_state, &err) != TD_OK ||
        td_api_start(api, &err) != TD_OK) {
        fprintf(stderr, "  start: %s\n", err.msg);
        td_api_free(api);
        return NULL;
    }
    return api;
}

/* Two requests in one write on one connection: two answers, in order. */
static void h2c_http_pipelined(int port)
{
    conn *c = td_xmalloc(sizeof(*c));
    TD_CHECK(conn_open(c, AF_INET, port));
    char req[1024];
    int n = http_format(req, sizeof(req), "GET", "/api/echo", "X-Request-Id: pipe-1\r\n");
    n += http_format(req + n, sizeof(req) - (size_t)n, "GET", "/ready", "X-Request-Id: pipe-2\r\n");
    TD_ASSERT_EQ_INT(send(c->fd, req, (size_t)n, MSG_NOSIGNAL), n);
    resp r;
    char rid[64];
    TD_CHECK(http_read(c, "GET", &r));
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_STR(r.body.data, "echo");
    TD_CHECK(resp_header(&r, "X-Request-Id", rid, sizeof(rid)));
    TD_ASSERT_EQ_STR(rid, "pipe-1");
    td_buf_release(&r.body);
    TD_CHECK(http_read(c, "GET", &r));
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_STR(r.body.data, "ready\n");
    TD_CHECK(resp_header(&r, "X-Request-Id", rid, sizeof(rid)));
    TD_ASSERT_EQ_STR(rid, "pipe-2");
    td_buf_release(&r.body);
    /* and the connection stays usable */
    TD_CHECK(http_do(c, "GET", "/api/echo", NULL, &r));
    TD_ASSERT_EQ_INT(r.status, 200);
    td_buf_release(&r.body);
    conn_close(c);
    td_free(c);
}

/*
 * Connections that say nothing, or only part of the preface, delay nobody; each
 * is served once it speaks (a split preface is still h2c).
 */
static void h2c_silent_clients(int port, grpc_channel *ch)
{
    conn *silent = td_xmalloc(sizeof(*silent));
    conn *partial = td_xmalloc(sizeof(*partial));
    conn *idle[8];
    for (size_t i = 0; i < 8; i++) {
        idle[i] = td_xmalloc(sizeof(conn));
        TD_CHECK(conn_open(idle[i], AF_INET, port));
    }
    TD_CHECK(conn_open(silent, AF_INET, port));
    TD_CHECK(conn_open(partial, AF_INET, port));
    TD_ASSERT_EQ_INT(send(partial->fd, TD_H2_PREFACE, 16, MSG_NOSIGNAL), 16);

    double t0 = mono_sec();
    resp r;
    GET_OK(port, "/api/echo", NULL, &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    td_buf_release(&r.body);
    gres g;
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Three", NULL, "q", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_OK);
    TD_ASSERT_EQ_INT(g.nmsgs, 3);
    gres_release(&g);
    double took = mono_sec() - t0;
    if (took >= 2.0) {
        fprintf(stderr, "  served in %.3f s next to silent connections\n", took);
    }
    TD_CHECK(took < 2.0);

    /* the silent one speaks HTTP/1.1 late: still served */
    TD_CHECK(http_do(silent, "GET", "/api/echo", NULL, &r));
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_ASSERT_EQ_STR(r.body.data, "echo");
    td_buf_release(&r.body);

    /* the rest of the preface and an empty SETTINGS frame: the server answers in HTTP/2 */
    static const char rest[] = "\r\nSM\r\n\r\n" /* preface bytes 16..23 */
                               "\0\0\0\x04\0\0\0\0\0";
    TD_ASSERT_EQ_INT(send(partial->fd, rest, 17, MSG_NOSIGNAL), 17);
    while (partial->inlen < 9 && conn_fill(partial)) {
    }
    TD_CHECK(partial->inlen >= 9);
    TD_ASSERT_EQ_INT((uint8_t)partial->in[3], 0x04); /* a SETTINGS frame */

    conn_close(silent);
    conn_close(partial);
    td_free(silent);
    td_free(partial);
    for (size_t i = 0; i < 8; i++) {
        conn_close(idle[i]);
        td_free(idle[i]);
    }
}

static void h2c_calls(int port, grpc_channel *ch)
{
    gres g;
    /* a registered streaming method: three messages, then OK */
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Three", NULL, "hello stream", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_OK);
    TD_ASSERT_EQ_INT(g.nmsgs, 3);
    TD_ASSERT_EQ_STR(g.msgs[0].data, "hello stream");
    TD_ASSERT_EQ_STR(g.msgs[1].data, TD_DEFAULT_TENANT); /* multitenancy off: header ignored */
    TD_ASSERT_EQ_STR(g.msgs[2].data, "hello");
    TD_ASSERT_EQ_INT(strlen(g.request_id), 16);
    gres_release(&g);
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Three", "t1", "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_OK);
    TD_ASSERT_EQ_INT(g.nmsgs, 3);
    TD_ASSERT_EQ_INT(g.msgs[0].len, 0); /* an empty request message */
    TD_ASSERT_EQ_STR(g.msgs[1].data, TD_DEFAULT_TENANT);
    gres_release(&g);

    /* unknown methods: UNIMPLEMENTED at once, never a hang */
    double t0 = mono_sec();
    TD_CHECK(grpc_stream(ch, "/tempopb.StreamingQuerier/NoSuchMethod", NULL, "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_UNIMPLEMENTED);
    TD_ASSERT_EQ_STR(g.details, "unknown method /tempopb.StreamingQuerier/NoSuchMethod");
    gres_release(&g);
    /* Search is registered; without a store it is UNAVAILABLE */
    TD_CHECK(grpc_stream(ch, "/tempopb.StreamingQuerier/Search", NULL, "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_UNAVAILABLE);
    TD_ASSERT_EQ_STR(g.details, "no trace store configured");
    TD_ASSERT_EQ_INT(g.nmsgs, 0);
    gres_release(&g);
    TD_CHECK(mono_sec() - t0 < 2.0);
    TD_CHECK(grpc_stream(ch, "/nope.Nope/Nope", NULL, "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_UNIMPLEMENTED);
    gres_release(&g);

    /* a handler's error status and message reach the client */
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Fail", NULL, "{oops", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_INVALID_ARGUMENT);
    TD_ASSERT_EQ_STR(g.details, "bad request: {oops");
    gres_release(&g);
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/TooBig", NULL, "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
    TD_CHECK(strstr(g.details, "exceeds") != NULL);
    gres_release(&g);

    /* the client cancels mid-stream: the handler's next send fails and it stops */
    atomic_store(&endless_state, 0);
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Endless", NULL, "", 2, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_CANCELLED);
    TD_CHECK(g.nmsgs >= 2);
    gres_release(&g);
    TD_CHECK(wait_int(&endless_state, 2, 10.0));

    /* counted per method, with the gRPC status */
    resp r;
    GET_OK(port, "/metrics", NULL, &r);
    TD_CHECK(strstr(r.body.data, "traced_query_requests_total{route=\"/td.test.Stream/Three\","
                                 "status=\"grpc:0\"} 2") != NULL);
    TD_CHECK(strstr(r.body.data, "traced_query_requests_total{route=\"grpc:other\","
                                 "status=\"grpc:12\"}") != NULL);
    TD_CHECK(strstr(r.body.data, "traced_query_requests_total{route=\"/td.test.Stream/Fail\","
                                 "status=\"grpc:3\"} 1") != NULL);
    td_buf_release(&r.body);
}

/* Multitenancy on: x-scope-orgid follows the X-Scope-OrgID rules. */
static void h2c_tenants(grpc_channel *ch)
{
    gres g;
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Three", NULL, "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_UNAUTHENTICATED);
    TD_ASSERT_EQ_STR(g.details, "no org id");
    TD_ASSERT_EQ_INT(g.nmsgs, 0);
    gres_release(&g);
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Three", "a/b", "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_INVALID_ARGUMENT);
    TD_ASSERT_EQ_STR(g.details, "tenant ID 'a/b' contains unsupported character '/'");
    gres_release(&g);
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Three", "t2|t1|t2", "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_OK);
    TD_ASSERT_EQ_INT(g.nmsgs, 3);
    TD_ASSERT_EQ_STR(g.msgs[1].data, "t1|t2");
    gres_release(&g);
}

static void test_server_h2c(void)
{
    td_log_set_level(TD_LOG_ERROR);
    grpc_init();
    td_api *api = start_api_grpc(false);
    TD_CHECK(api != NULL);
    int port = td_api_port(api);
    TD_CHECK(port > 0);
    td_api_set_ready(api, true);
    grpc_channel *ch = channel_to(port);

    expect_text(port, "/api/echo", NULL, 200, "echo");
    h2c_http_pipelined(port);
    h2c_calls(port, ch);
    h2c_silent_clients(port, ch);

    /*
     * Stop with a call in flight and the connection open: the call gets the grace
     * period, then is cancelled (the client sees an error, not a hang).
     */
    gclient gc;
    atomic_store(&block_state, 0);
    TD_CHECK(gclient_start(&gc, ch, "/td.test.Stream/Block", NULL, ""));
    td_buf first = TD_BUF_INIT;
    bool end = true;
    TD_CHECK(gclient_read(&gc, &first, &end));
    TD_CHECK(!end);
    TD_ASSERT_EQ_STR(first.data, "started");
    td_buf_release(&first);
    double t0 = mono_sec();
    td_api_stop(api);
    double took = mono_sec() - t0;
    TD_CHECK(took < 6.0);
    TD_ASSERT_EQ_INT(atomic_load(&block_state), 2);
    gres g;
    memset(&g, 0, sizeof(g));
    TD_CHECK(gclient_finish(&gc, &g));
    TD_CHECK(g.code != GRPC_STATUS_OK);
    TD_ASSERT_EQ_INT(td_api_port(api), 0);
    td_api_free(api);

    /* closed: the port refuses connections and the channel fails fast */
    conn *c = td_xmalloc(sizeof(*c));
    bool connected = conn_open(c, AF_INET, port);
    conn_close(c);
    td_free(c);
    TD_CHECK(!connected);
    TD_CHECK(grpc_stream(ch, "/td.test.Stream/Three", NULL, "", 0, &g));
    TD_ASSERT_EQ_INT(g.code, GRPC_STATUS_UNAVAILABLE);
    gres_release(&g);
    grpc_channel_destroy(ch);

    /* multitenancy, then a stop with only an idle h2c connection open: no grace wait */
    api = start_api_grpc(true);
    TD_CHECK(api != NULL);
    ch = channel_to(td_api_port(api));
    h2c_tenants(ch);
    t0 = mono_sec();
    td_api_stop(api);
    took = mono_sec() - t0;
    if (took >= 1.0) {
        fprintf(stderr, "  stop with an idle h2c connection took %.3f s\n", took);
    }
    TD_CHECK(took < 1.0);
    td_api_free(api);
    grpc_channel_destroy(ch);
    grpc_shutdown();
}

/* ------------------------------------------------------------------------ */
/* /api/search                                                              */
/* ------------------------------------------------------------------------ */

#define S_T0 1700000000ull
#define S_ID1 "10000000000000000000000000000001" /* largest ID, oldest start */
#define S_ID2 "00000000000000000000000000000002"
#define S_ID3 "00000000000000000000000000000003"

/* One ResourceSpans of OTLP JSON: service svc, spans as "...}" objects joined by commas. */
static void otlp_json_rs(td_buf *b, const char *svc, const char *spans)
{
    td_buf_addf(b,
                "%s{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
                "{\"stringValue\":\"%s\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"lib\"},"
                "\"spans\":[%s]}]}",
                b->len > 20 ? "," : "", svc, spans);
}

static void span_json(char *out, size_t cap, const char *tid, const char *sid, const char *parent,
                      const char *name, uint64_t start_ms, uint64_t dur_ms, int status)
{
    uint64_t st = S_T0 * 1000000000ull + start_ms * 1000000ull;
    snprintf(out, cap,
             "{\"traceId\":\"%s\",\"spanId\":\"%s\",\"parentSpanId\":\"%s\",\"name\":\"%s\","
             "\"kind\":2,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\","
             "\"status\":{\"code\":%d}}",
             tid, sid, parent, name, (unsigned long long)st,
             (unsigned long long)(st + dur_ms * 1000000ull), status);
}

static void search_store_load(td_store *s)
{
    char sp[6][512];
    /* trace 1: shop, GET / (2 s) > a > b (error); 3 spans, root */
    span_json(sp[0], 512, S_ID1, "00000000000000a1", "", "GET /", 10000, 2000, 0);
    span_json(sp[1], 512, S_ID1, "00000000000000a2", "00000000000000a1", "a", 10100, 500, 0);
    span_json(sp[2], 512, S_ID1, "00000000000000a3", "00000000000000a2", "b", 10200, 100, 2);
    /* trace 2: cart, checkout (100 ms), root */
    span_json(sp[3], 512, S_ID2, "00000000000000b1", "", "checkout", 20000, 100, 1);
    /* trace 3: shop, one span "a" whose parent never arrived */
    span_json(sp[4], 512, S_ID3, "00000000000000c1", "00000000000000ff", "a", 30000, 500, 0);
    char joined[2048];
    td_buf b = TD_BUF_INIT;
    td_buf_addstr(&b, "{\"resourceSpans\":[");
    snprintf(joined, sizeof(joined), "%s,%s", sp[0], sp[1]);
    otlp_json_rs(&b, "shop", joined);
    otlp_json_rs(&b, "cart", sp[3]);
    otlp_json_rs(&b, "shop", sp[4]);
    td_buf_addstr(&b, "]}");
    /* b of trace 1 arrives in a second request */
    td_buf b2 = TD_BUF_INIT;
    td_buf_addstr(&b2, "{\"resourceSpans\":[");
    otlp_json_rs(&b2, "shop", sp[2]);
    td_buf_addstr(&b2, "]}");
    td_buf *reqs[2] = {&b, &b2};
    for (int i = 0; i < 2; i++) {
        td_arena a;
        td_arena_init(&a, 64 * 1024, 0);
        td_err err;
        td_err_init(&err);
        td_otlp_request *req = NULL;
        td_status st = td_otlp_decode_json(reqs[i]->data, reqs[i]->len, &a, &req, &err);
        if (st) {
            fprintf(stderr, "  decode: %s\n", err.msg);
        }
        TD_ASSERT_EQ_INT(st, TD_OK);
        td_batch *batch = NULL;
        TD_ASSERT_OK(td_batch_build(req, TD_DEFAULT_TENANT, &a, &batch, NULL, &err));
        TD_CHECK(batch != NULL);
        TD_ASSERT_OK(td_store_write(s, &batch, 1, &err));
        td_batch_free(batch);
        td_arena_release(&a);
        td_buf_release(reqs[i]);
    }
}

/* Run a search in process; returns the status, body (JSON or error message) in out. */
/* search-max-bytes for search_run (0 = unlimited) */
static uint64_t search_max_bytes;

static td_status search_run(td_store *s, const td__search_args *in, td_buf *out)
{
    td_err err;
    td_err_init(&err);
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td__tenants ts;
    TD_ASSERT_OK(td__tempo_tenants(NULL, false, &a, &ts, &err));
    td__search_params p;
    td_buf_reset(out);
    td_status st = td__search_parse(in, (int64_t)S_T0 + 3600, &p, &err);
    if (!st) {
        p.max_bytes = search_max_bytes;
        st = td__search(s, &ts, &p, out, &err);
    }
    if (st) {
        td_buf_reset(out);
        td_buf_addstr(out, err.msg);
    }
    td_buf_addch(out, '\0');
    out->len--;
    td_arena_release(&a);
    return st;
}

static void search_expect(td_store *s, const char *q, const char *limit, const char *spss,
                          const char *min_dur, const char *const *want, size_t nwant)
{
    td_buf out = TD_BUF_INIT;
    td__search_args in = {.q = q, .limit = limit, .spss = spss, .min_duration = min_dur};
    td_status st = search_run(s, &in, &out);
    if (st) {
        fprintf(stderr, "  q=%s: %s\n", q, out.data);
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    for (size_t i = 0; i < nwant; i++) {
        if (!strstr(out.data, want[i])) {
            fprintf(stderr, "  q=%s: want %s in %s\n", q, want[i], out.data);
            TD_CHECK(false);
        }
    }
    td_buf_release(&out);
}

static size_t search_count(td_store *s, const char *q, const char *key)
{
    td_buf out = TD_BUF_INIT;
    td__search_args in = {.q = q};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    size_t n = count_substr(out.data, key);
    td_buf_release(&out);
    return n;
}

static void search_bad(td_store *s, const td__search_args *in, const char *want)
{
    td_buf out = TD_BUF_INIT;
    TD_ASSERT_EQ_INT(search_run(s, in, &out), TD_INVALID);
    if (!strstr(out.data, want)) {
        fprintf(stderr, "  want %s in %s\n", want, out.data);
        TD_CHECK(false);
    }
    td_buf_release(&out);
}

static void pbv(td_buf *b, uint64_t v)
{
    do {
        td_buf_addch(b, (char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
        v >>= 7;
    } while (v);
}

/*
 * A SearchRequest {start, end, Query (8), SpansPerSpanSet (9) when spss} as a
 * NUL-terminated string (gclient_start sends C strings: no field may encode a 0 byte).
 */
static void search_req(td_buf *b, const char *q, uint32_t spss)
{
    td_buf_reset(b);
    td_buf_addch(b, 0x28);
    pbv(b, S_T0);
    td_buf_addch(b, 0x30);
    pbv(b, S_T0 + 3600);
    td_buf_addch(b, 0x42);
    pbv(b, strlen(q));
    td_buf_addstr(b, q);
    if (spss) {
        td_buf_addch(b, 0x48);
        pbv(b, spss);
    }
    td_buf_addch(b, '\0');
}

/* Search over gRPC; every message must decode and carry metrics; returns the first. */
static Tempopb__SearchResponse *grpc_search(grpc_channel *ch, const char *q, uint32_t spss, gres *r)
{
    td_buf req = TD_BUF_INIT;
    search_req(&req, q, spss);
    TD_CHECK(grpc_stream(ch, "/tempopb.StreamingQuerier/Search", NULL, req.data, 0, r));
    td_buf_release(&req);
    Tempopb__SearchResponse *first = NULL;
    for (size_t i = 0; i < r->nmsgs && i < 4; i++) {
        Tempopb__SearchResponse *m = tempopb__search_response__unpack(
            NULL, r->msgs[i].len, (const uint8_t *)r->msgs[i].data);
        TD_CHECK(m != NULL);
        TD_CHECK(m->metrics != NULL);
        TD_CHECK(m->metrics->totaljobs >= 1);
        TD_ASSERT_EQ_INT(m->metrics->completedjobs, m->metrics->totaljobs);
        if (i == 0) {
            first = m;
        } else {
            tempopb__search_response__free_unpacked(m, NULL);
        }
    }
    return first;
}

static void search_grpc(td_store *s, int port)
{
    grpc_channel *ch = channel_to(port);
    gres r;
    /* {}: the same three traces as /api/search, newest first, in one message */
    Tempopb__SearchResponse *m = grpc_search(ch, "{}", 1, &r);
    TD_ASSERT_EQ_INT(r.code, GRPC_STATUS_OK);
    TD_ASSERT_EQ_U64(r.nmsgs, 1);
    TD_CHECK(m != NULL);
    TD_ASSERT_EQ_U64(m->n_traces, 3);
    TD_ASSERT_EQ_STR(m->traces[0]->traceid, S_ID3);
    TD_ASSERT_EQ_STR(m->traces[0]->rootservicename, "<root span not yet received>");
    TD_ASSERT_EQ_STR(m->traces[1]->traceid, S_ID2);
    const Tempopb__TraceSearchMetadata *t1 = m->traces[2];
    TD_ASSERT_EQ_STR(t1->traceid, S_ID1);
    TD_ASSERT_EQ_STR(t1->rootservicename, "shop");
    TD_ASSERT_EQ_STR(t1->roottracename, "GET /");
    TD_ASSERT_EQ_U64(t1->starttimeunixnano, 1700000010000000000ull);
    TD_ASSERT_EQ_INT(t1->durationms, 2000);
    TD_CHECK(t1->spanset != NULL);
    TD_ASSERT_EQ_U64(t1->n_spansets, 1);
    TD_ASSERT_EQ_INT(t1->spanset->matched, 3);
    TD_ASSERT_EQ_U64(t1->spanset->n_spans, 1); /* SpansPerSpanSet = 1 */
    TD_ASSERT_EQ_U64(t1->n_servicestats, 1);
    TD_ASSERT_EQ_STR(t1->servicestats[0]->key, "shop");
    TD_ASSERT_EQ_INT(t1->servicestats[0]->value->spancount, 3);
    TD_ASSERT_EQ_INT(t1->servicestats[0]->value->errorcount, 1);
    TD_ASSERT_EQ_INT(m->metrics->inspectedtraces, 3);
    tempopb__search_response__free_unpacked(m, NULL);
    gres_release(&r);

    /* {status=error}: trace 1, span b with the status attribute */
    m = grpc_search(ch, "{status=error}", 0, &r);
    TD_ASSERT_EQ_INT(r.code, GRPC_STATUS_OK);
    TD_CHECK(m != NULL);
    TD_ASSERT_EQ_U64(m->n_traces, 1);
    TD_ASSERT_EQ_STR(m->traces[0]->traceid, S_ID1);
    const Tempopb__SpanSet *ss = m->traces[0]->spansets[0];
    TD_ASSERT_EQ_U64(ss->n_spans, 1);
    TD_ASSERT_EQ_STR(ss->spans[0]->spanid, "00000000000000a3");
    TD_ASSERT_EQ_STR(ss->spans[0]->name, "b");
    TD_ASSERT_EQ_U64(ss->spans[0]->durationnanos, 100000000ull);
    TD_ASSERT_EQ_U64(ss->spans[0]->n_attributes, 1);
    TD_ASSERT_EQ_STR(ss->spans[0]->attributes[0]->key, "status");
    TD_ASSERT_EQ_STR(ss->spans[0]->attributes[0]->value->string_value, "error");
    tempopb__search_response__free_unpacked(m, NULL);
    gres_release(&r);

    /* nothing matches: still one message with metrics */
    m = grpc_search(ch, "{name=\"nope\"}", 0, &r);
    TD_ASSERT_EQ_INT(r.code, GRPC_STATUS_OK);
    TD_ASSERT_EQ_U64(r.nmsgs, 1);
    TD_CHECK(m != NULL);
    TD_ASSERT_EQ_U64(m->n_traces, 0);
    tempopb__search_response__free_unpacked(m, NULL);
    gres_release(&r);

    /* an invalid query: INVALID_ARGUMENT with the /api/search message, no messages */
    td_buf want = TD_BUF_INIT;
    td__search_args in = {.q = "{ name = }"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &want), TD_INVALID);
    m = grpc_search(ch, "{ name = }", 0, &r);
    TD_CHECK(m == NULL);
    TD_ASSERT_EQ_INT(r.code, GRPC_STATUS_INVALID_ARGUMENT);
    TD_ASSERT_EQ_STR(r.details, want.data);
    gres_release(&r);
    td_buf_release(&want);
    /* spss above 100 is refused like spss=101 */
    m = grpc_search(ch, "{}", 101, &r);
    TD_CHECK(m == NULL);
    TD_ASSERT_EQ_INT(r.code, GRPC_STATUS_INVALID_ARGUMENT);
    TD_CHECK(strstr(r.details, "invalid spss: ") == r.details);
    gres_release(&r);
    grpc_channel_destroy(ch);
}

static void test_logfmt(void)
{
    td_arena a;
    td_arena_init(&a, 1024, 0);
    td_err err;
    td_err_init(&err);
    td_logfmt_pair *p;
    size_t n;
    const char *in = "k=v k2=\"v with space\"  flag e= q=\"a\\\"b\\\\c\\n\\u00e9\"";
    TD_ASSERT_OK(td_logfmt_parse(in, strlen(in), &a, &p, &n, &err));
    TD_ASSERT_EQ_U64(n, 5);
    TD_ASSERT_EQ_STR(p[0].key, "k");
    TD_ASSERT_EQ_STR(p[0].val, "v");
    TD_ASSERT_EQ_STR(p[1].key, "k2");
    TD_ASSERT_EQ_STR(p[1].val, "v with space");
    TD_ASSERT_EQ_STR(p[2].key, "flag");
    TD_ASSERT_EQ_STR(p[2].val, "");
    TD_ASSERT_EQ_STR(p[3].key, "e");
    TD_ASSERT_EQ_U64(p[3].val_len, 0);
    TD_ASSERT_EQ_STR(p[4].key, "q");
    TD_ASSERT_EQ_STR(p[4].val, "a\"b\\c\n\xc3\xa9");
    TD_ASSERT_OK(td_logfmt_parse("", 0, &a, &p, &n, &err));
    TD_ASSERT_EQ_U64(n, 0);
    TD_ASSERT_OK(td_logfmt_parse(" \t ", 3, &a, &p, &n, &err));
    TD_ASSERT_EQ_U64(n, 0);
    static const char *const bad[][2] = {
        {"a=1 b=2 a=3", "invalid tags: tag a has been set twice"},
        {"a=\"x", "invalid tags: unterminated quoted value"},
        {"a=\"x\\", "invalid tags: unterminated quoted value"},
        {"a=\"\\q\"", "invalid tags: invalid escape sequence at offset 3"},
        {"a=\"\\u12\"", "invalid tags: invalid \\u escape at offset 3"},
        {"=v", "invalid tags: unexpected '=' at offset 0"},
        {"a=b=c", "invalid tags: unexpected '=' at offset 3"},
        {"a=\"x\"y", "invalid tags: unexpected 'y' at offset 5"},
        {"a\"b=1", "invalid tags: unexpected '\"' at offset 1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        td_err_init(&err);
        TD_ASSERT_EQ_INT(td_logfmt_parse(bad[i][0], strlen(bad[i][0]), &a, &p, &n, &err),
                         TD_INVALID);
        TD_ASSERT_EQ_STR(err.msg, bad[i][1]);
    }
    td_arena_release(&a);
}

/*
 * A trace whose root arrives after its children (another service, a later
 * request, an earlier start): the answer merges every fragment's summary, so
 * the root service and name, the start and the duration are the whole trace's,
 * whichever query finds it.
 */
static void test_search_late_root(void)
{
    td_log_set_level(TD_LOG_ERROR);
    const char *tmp = getenv("TD_TEST_TMP");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/test_api_late.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(dir, 0755);
    td_store_opts so = {.dir = dir, .cache_bytes = 1 << 20, .write_buffer_bytes = 1 << 20};
    td_store *s = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_open(&so, &s, &err));
    const char *tid = "0000000000000000000000000000000d";
    char child[512], child2[512], root[512];
    /* children first: pay at +45 s (500 ms), then cart at +100 s (another minute) */
    span_json(child, sizeof(child), tid, "00000000000000d2", "00000000000000d1", "charge", 45000,
              500, 2);
    span_json(child2, sizeof(child2), tid, "00000000000000d3", "00000000000000d1", "reserve",
              100000, 200, 0);
    /* the root last, starting first: edge, GET /late at +39 s, until +100.2 s */
    span_json(root, sizeof(root), tid, "00000000000000d1", "", "GET /late", 39000, 61200, 0);
    const char *order[][2] = {{"pay", child}, {"cart", child2}, {"edge", root}};
    for (size_t i = 0; i < 3; i++) {
        td_buf b = TD_BUF_INIT;
        td_buf_addstr(&b, "{\"resourceSpans\":[");
        otlp_json_rs(&b, order[i][0], order[i][1]);
        td_buf_addstr(&b, "]}");
        td_arena a;
        td_arena_init(&a, 64 * 1024, 0);
        td_otlp_request *req = NULL;
        TD_ASSERT_OK(td_otlp_decode_json(b.data, b.len, &a, &req, &err));
        td_batch *batch = NULL;
        TD_ASSERT_OK(td_batch_build(req, TD_DEFAULT_TENANT, &a, &batch, NULL, &err));
        TD_ASSERT_OK(td_store_write(s, &batch, 1, &err));
        td_batch_free(batch);
        td_arena_release(&a);
        td_buf_release(&b);
    }
    const char *whole[] = {"\"traceID\":\"0000000000000000000000000000000d\",\"rootServiceName\":"
                           "\"edge\",\"rootTraceName\":\"GET /late\",\"startTimeUnixNano\":"
                           "\"1700000039000000000\",\"durationMs\":61200"};
    const char *const queries[] = {"{resource.service.name=\"pay\" && status=error}",
                                   "{name=\"reserve\"}",
                                   "{rootServiceName=\"edge\"}",
                                   "{rootName=\"GET /late\"}",
                                   "{traceDuration > 1m}",
                                   "{}"};
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        search_expect(s, queries[i], NULL, NULL, NULL, whole, 1);
    }
    /* a window holding only the root's minute still finds the trace, whole */
    td_buf out = TD_BUF_INIT;
    td__search_args in = {
        .q = "{rootServiceName=\"edge\"}", .start = "1700000030", .end = "1700000050"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    TD_CHECK(strstr(out.data, whole[0]) != NULL);
    td_buf_release(&out);
    td_store_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- search through the index equals search over the summaries ---- */

/*
 * Decode OTLP JSON and write it to both stores: to idx as built (with index
 * entries), to scan without them (nidx = 0), which marks its time range
 * unindexed, so every search over it takes the summary path.
 */
static void eq_write(td_store *idx, td_store *scan, const char *json)
{
    td_arena a;
    td_arena_init(&a, 64 * 1024, 0);
    td_err err;
    td_err_init(&err);
    td_otlp_request *req = NULL;
    td_status st = td_otlp_decode_json(json, strlen(json), &a, &req, &err);
    if (st) {
        fprintf(stderr, "  decode: %s\n", err.msg);
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    td_batch *b = NULL;
    TD_ASSERT_OK(td_batch_build(req, TD_DEFAULT_TENANT, &a, &b, NULL, &err));
    TD_CHECK(b != NULL && b->nidx > 0);
    TD_ASSERT_OK(td_store_write(idx, &b, 1, &err));
    b->nidx = 0;
    TD_ASSERT_OK(td_store_write(scan, &b, 1, &err));
    td_batch_free(b);
    td_arena_release(&a);
}

/* The "traces" part of a search response (metrics differ: fewer traces inspected). */
static void eq_search(td_store *s, const char *q, const char *limit, td_buf *out)
{
    char start[32], end[32];
    snprintf(start, sizeof(start), "%llu", (unsigned long long)S_T0);
    snprintf(end, sizeof(end), "%llu", (unsigned long long)(S_T0 + 1800));
    td__search_args in = {.q = q, .limit = limit, .spss = "5", .start = start, .end = end};
    TD_ASSERT_EQ_INT(search_run(s, &in, out), TD_OK);
    char *m = strstr(out->data, "\"metrics\"");
    TD_CHECK(m != NULL);
    td_buf_setlen(out, (size_t)(m - out->data));
}

/* inspectedTraces of a search, to see which path served it. */
static long eq_inspected(td_store *s, const char *q)
{
    char start[32], end[32];
    snprintf(start, sizeof(start), "%llu", (unsigned long long)S_T0);
    snprintf(end, sizeof(end), "%llu", (unsigned long long)(S_T0 + 1800));
    td__search_args in = {.q = q, .limit = "1000", .start = start, .end = end};
    td_buf out = TD_BUF_INIT;
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    const char *m = strstr(out.data, "\"inspectedTraces\":");
    TD_CHECK(m != NULL);
    long n = strtol(m + strlen("\"inspectedTraces\":"), NULL, 10);
    td_buf_release(&out);
    return n;
}

static void test_search_index_equivalence(void)
{
    td_log_set_level(TD_LOG_ERROR);
    const char *tmp = getenv("TD_TEST_TMP");
    char dir[2][512];
    td_store *st[2];
    td_err err;
    td_err_init(&err);
    for (int i = 0; i < 2; i++) {
        snprintf(dir[i], sizeof(dir[i]), "%s/test_api_sieq%d.%d", tmp && *tmp ? tmp : "/tmp", i,
                 (int)getpid());
        nftw(dir[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        mkdir(dir[i], 0755);
        td_store_opts so = {.dir = dir[i], .cache_bytes = 1 << 20, .write_buffer_bytes = 1 << 20};
        TD_ASSERT_OK(td_store_open(&so, &st[i], &err));
    }
    /*
     * 48 traces over 12 minutes: a root span per trace in one request (service
     * svc<t%4>), and for every third trace a child span from another service in a
     * later request (same minute). Attributes vary by trace: int, double, bool,
     * string array; names, statuses, kinds and durations too.
     */
    static const char *const tags[] = {"a", "b", "c"};
    for (int t = 0; t < 48; t++) {
        char tid[33], span[1024], body[2048];
        snprintf(tid, sizeof(tid), "%032x", 0x1000 + t * 7919);
        uint64_t st_ns = (S_T0 + 60 + (uint64_t)(t / 4) * 60 + (uint64_t)t % 4) * 1000000000ull;
        uint64_t dur = (uint64_t)(t % 5 + 1) * 20000000ull; /* 20..100 ms */
        snprintf(span, sizeof(span),
                 "{\"traceId\":\"%s\",\"spanId\":\"00000000000000a1\",\"name\":\"op%d\","
                 "\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\","
                 "\"status\":{\"code\":%d},\"attributes\":["
                 "{\"key\":\"http.status\",\"value\":{\"intValue\":\"%d\"}},"
                 "{\"key\":\"ratio\",\"value\":{\"doubleValue\":%s}},"
                 "{\"key\":\"flag\",\"value\":{\"boolValue\":%s}},"
                 "{\"key\":\"tags\",\"value\":{\"arrayValue\":{\"values\":["
                 "{\"stringValue\":\"%s\"},{\"stringValue\":\"%s\"}]}}}]}",
                 tid, t % 5, t % 3 + 1, (unsigned long long)st_ns,
                 (unsigned long long)(st_ns + dur), t % 7 == 0 ? 2 : t % 2, t % 6 == 0 ? 500 : 200,
                 t % 4 == 0 ? "0.5" : "2", t % 2 ? "true" : "false", tags[t % 3],
                 tags[(t + 1) % 3]);
        snprintf(body, sizeof(body),
                 "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                 "\"value\":{\"stringValue\":\"svc%d\"}},{\"key\":\"http.status\","
                 "\"value\":{\"intValue\":\"%d\"}}]},\"scopeSpans\":[{\"spans\":[%s]}]}]}",
                 t % 4, t % 8 == 0 ? 500 : 1, span);
        eq_write(st[0], st[1], body);
        if (t % 3 == 0) {
            snprintf(body, sizeof(body),
                     "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
                     "\"service.name\",\"value\":{\"stringValue\":\"db\"}}]},\"scopeSpans\":[{"
                     "\"spans\":[{\"traceId\":\"%s\",\"spanId\":\"00000000000000b1\","
                     "\"parentSpanId\":\"00000000000000a1\",\"name\":\"query\",\"kind\":3,"
                     "\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\","
                     "\"status\":{\"code\":%d}}]}]}]}",
                     tid, (unsigned long long)(st_ns + 1000000),
                     (unsigned long long)(st_ns + 1000000 + dur * 3), t % 2 ? 2 : 0);
            eq_write(st[0], st[1], body);
        }
    }
    static const char *const queries[] = {
        "{resource.service.name = \"svc1\"}",
        "{resource.service.name = \"db\"}",
        "{resource.service.name = \"nope\"}",
        "{name = \"op2\"}",
        "{name = \"query\" && status = error}",
        "{status = error}",
        "{status = ok}",
        "{kind = client}",
        "{kind = server}",
        "{span.http.status = 500}",
        "{.http.status = 500}",
        "{.http.status = 500.0}",
        "{resource.http.status = 500}",
        "{span.ratio = 0.5}",
        "{span.ratio = 2}",
        "{.flag = true}",
        "{.tags = \"b\"}",
        "{rootServiceName = \"svc2\"}",
        "{rootName = \"op0\"}",
        "{duration > 150ms}",
        "{duration >= 60ms && resource.service.name = \"svc3\"}",
        "{resource.service.name = \"svc0\"} >> {name = \"query\"}",
        "{resource.service.name = \"svc1\"} && {.flag = false}",
        "{name = \"op1\"} | count() > 0",
        "{span.http.status = 200 && .ratio = 2}",
        "{}",
    };
    td_buf a = TD_BUF_INIT, b = TD_BUF_INIT;
    /* all matches, then a limit that cuts inside a minute (candidates come in the same order) */
    static const char *const limits[] = {"1000", "3"};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
            eq_search(st[0], queries[i], limits[l], &a);
            eq_search(st[1], queries[i], limits[l], &b);
            if (getenv("EQ_DEBUG")) {
                fprintf(stderr, "%s limit %s: %zu traces\n", queries[i], limits[l],
                        count_substr(a.data, "traceID"));
            }
            if (strcmp(a.data, b.data) != 0) {
                fprintf(stderr, "  q=%s limit=%s\n  index:     %s\n  summaries: %s\n", queries[i],
                        limits[l], a.data, b.data);
                TD_CHECK(false);
            }
        }
    }
    /*
     * Candidates with a small bound (20 traces, 320 entries; probes of 5): each
     * hint's probe stops early, then the first one is looked up in full.
     */
    {
        td_arena ar;
        td_arena_init(&ar, 4096, 0);
        td__tenants ts;
        TD_ASSERT_OK(td__tempo_tenants(NULL, false, &ar, &ts, &err));
        static const struct {
            const char *q;
            size_t n;
            bool summarized;
        } cq[] = {
            {"{resource.service.name = \"svc1\" && kind = client}", 12, false}, /* retried */
            {"{kind = client}", 20, true},                    /* 32 traces > 20: summaries */
            {"{resource.service.name = \"nope\"}", 0, false}, /* exact and empty */
            {"{.flag = true && resource.service.name = \"svc1\"}", 12, false},
        };
        for (size_t i = 0; i < sizeof(cq) / sizeof(cq[0]); i++) {
            td_traceql_query *q = NULL;
            td_traceql_hint *h = NULL;
            size_t nh = 0;
            TD_ASSERT_OK(td_traceql_parse(cq[i].q, strlen(cq[i].q), &ar, &q, &err));
            TD_ASSERT_OK(td_traceql_hints(q, &ar, &h, &nh, &err));
            td__cands cs;
            TD_ASSERT_OK(td__search_candidates(st[0], &ts, h, nh, S_T0 * 1000000000ull,
                                               (S_T0 + 1800) * 1000000000ull, 20, &ar, &cs, &err));
            if (cs.n != cq[i].n) {
                fprintf(stderr, "  %s: %zu candidates\n", cq[i].q, cs.n);
            }
            TD_ASSERT_EQ_U64(cs.n, cq[i].n);
            for (size_t k = 0; k < cs.n; k++) {
                TD_CHECK(cs.c[k].summarized == cq[i].summarized);
                TD_CHECK(k == 0 || cs.c[k - 1].bucket >= cs.c[k].bucket);
            }
            td__cands_release(&cs);
        }
        td_arena_release(&ar);
    }
    /* and the index did serve the selective ones: fewer traces inspected */
    TD_ASSERT_EQ_INT(eq_inspected(st[1], "{resource.service.name = \"svc1\"}"), 48);
    TD_ASSERT_EQ_INT(eq_inspected(st[0], "{resource.service.name = \"svc1\"}"), 12);
    TD_ASSERT_EQ_INT(eq_inspected(st[0], "{resource.service.name = \"nope\"}"), 0);
    TD_ASSERT_EQ_INT(eq_inspected(st[0], "{name = \"query\" && kind = client}"), 16);
    TD_ASSERT_EQ_INT(eq_inspected(st[0], "{}"), 48);
    td_buf_release(&a);
    td_buf_release(&b);
    for (int i = 0; i < 2; i++) {
        td_store_close(st[i]);
        nftw(dir[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static void test_search(void)
{
    td_log_set_level(TD_LOG_ERROR);
    const char *tmp = getenv("TD_TEST_TMP");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/test_api_search.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(dir, 0755);
    td_store_opts so = {.dir = dir, .cache_bytes = 1 << 20, .write_buffer_bytes = 1 << 20};
    td_store *s = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_open(&so, &s, &err));
    search_store_load(s);

    /* {}: every trace, newest first, with the documented keys */
    const char *all[] = {
        "{\"traces\":[{\"traceID\":\"" S_ID3 "\",\"rootServiceName\":\"<root span not yet "
        "received>\",\"startTimeUnixNano\":\"1700000030000000000\",\"durationMs\":500,"
        "\"spanSet\":{\"spans\":[{\"spanID\":\"00000000000000c1\",\"name\":\"a\","
        "\"startTimeUnixNano\":\"1700000030000000000\",\"durationNanos\":\"500000000\"}],"
        "\"matched\":1},\"spanSets\":[{\"spans\":[{\"spanID\":\"00000000000000c1\",\"name\":\"a\","
        "\"startTimeUnixNano\":\"1700000030000000000\",\"durationNanos\":\"500000000\"}],"
        "\"matched\":1}],\"serviceStats\":{\"shop\":{\"spanCount\":1}}},{\"traceID\":\"" S_ID2 "\"",
        "\"traceID\":\"" S_ID1 "\",\"rootServiceName\":\"shop\",\"rootTraceName\":\"GET /\","
        "\"startTimeUnixNano\":\"1700000010000000000\",\"durationMs\":2000",
        "\"serviceStats\":{\"shop\":{\"spanCount\":3,\"errorCount\":1}}}],\"metrics\":{"
        "\"inspectedTraces\":3,\"inspectedBytes\":\"",
        "\",\"completedJobs\":3,\"totalJobs\":3}}"};
    search_expect(s, NULL, NULL, NULL, NULL, all, 4);
    TD_ASSERT_EQ_U64(search_count(s, "{}", "\"traceID\""), 3);
    TD_ASSERT_EQ_U64(search_count(s, "{resource.service.name=\"cart\"}", "\"traceID\""), 1);
    const char *cart[] = {"\"traceID\":\"" S_ID2 "\",\"rootServiceName\":\"cart\","
                          "\"rootTraceName\":\"checkout\"",
                          "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"cart\"}}"};
    search_expect(s, "{resource.service.name=\"cart\"}", NULL, NULL, NULL, cart, 2);
    /* status=error: trace 1, span b only; the summary skips the others unloaded */
    const char *err1[] = {
        "\"traceID\":\"" S_ID1 "\"", "\"spanID\":\"00000000000000a3\",\"name\":\"b\"",
        "{\"key\":\"status\",\"value\":{\"stringValue\":\"error\"}}", "\"inspectedTraces\":1,"};
    search_expect(s, "{status=error}", NULL, NULL, NULL, err1, 4);
    TD_ASSERT_EQ_U64(search_count(s, "{status=error}", "\"traceID\""), 1);
    TD_ASSERT_EQ_U64(search_count(s, "{duration > 1s}", "\"traceID\""), 1);
    TD_ASSERT_EQ_U64(search_count(s, "{duration > 1s}", "\"name\":\"GET /\""), 2);
    TD_ASSERT_EQ_U64(search_count(s, "{duration > 300ms}", "\"traceID\""), 2);
    const char *cnt[] = {"\"traceID\":\"" S_ID1 "\"",
                         "\"matched\":3,\"attributes\":[{\"key\":\"count()\",\"value\":{"
                         "\"intValue\":\"3\"}}]"};
    search_expect(s, "{} | count() > 2", NULL, NULL, NULL, cnt, 2);
    TD_ASSERT_EQ_U64(search_count(s, "{} | count() > 2", "\"traceID\""), 1);
    const char *desc[] = {"\"traceID\":\"" S_ID1 "\"", "\"name\":\"b\""};
    search_expect(s, "{name=\"a\"} >> {name=\"b\"}", NULL, NULL, NULL, desc, 2);
    TD_ASSERT_EQ_U64(search_count(s, "{name=\"a\"} >> {name=\"b\"}", "\"traceID\""), 1);
    TD_ASSERT_EQ_U64(search_count(s, "{name=\"b\"} >> {name=\"a\"}", "\"traceID\""), 0);
    TD_ASSERT_EQ_U64(search_count(s, "{rootServiceName=\"cart\"}", "\"traceID\""), 1);
    /* limit, spss, minDuration */
    const char *lim[] = {"\"traceID\":\"" S_ID3 "\""};
    search_expect(s, "{}", "1", NULL, NULL, lim, 1);
    td_buf out = TD_BUF_INIT;
    td__search_args in = {.q = "{}", .limit = "1"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    TD_ASSERT_EQ_U64(count_substr(out.data, "\"traceID\""), 1);
    /* limit 2: the two newest by start, though trace IDs order them the other way in a minute */
    in = (td__search_args){.limit = "2"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    TD_ASSERT_EQ_U64(count_substr(out.data, "\"traceID\""), 2);
    TD_CHECK(strstr(out.data, S_ID3) && strstr(out.data, S_ID2) && !strstr(out.data, S_ID1));
    in = (td__search_args){.q = "{resource.service.name=\"shop\"}", .spss = "1"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    TD_CHECK(strstr(out.data, "\"matched\":3") != NULL);
    TD_ASSERT_EQ_U64(count_substr(out.data, "\"spanID\""), 4); /* 1 per spanset: T1, T3 */
    in = (td__search_args){.min_duration = "1.5s"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    TD_ASSERT_EQ_U64(count_substr(out.data, "\"traceID\""), 1);
    in = (td__search_args){.max_duration = "200ms"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    TD_ASSERT_EQ_U64(count_substr(out.data, "\"traceID\""), 1);
    TD_CHECK(strstr(out.data, S_ID2) != NULL);
    /* a window without data */
    in = (td__search_args){.start = "1600000000", .end = "1600003600"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    TD_ASSERT_EQ_STR(out.data, "{\"traces\":[],\"metrics\":{\"inspectedTraces\":0,"
                               "\"inspectedBytes\":\"0\",\"completedJobs\":1,\"totalJobs\":1}}");
    /* search-max-bytes reached after the first trace: what was found, 1 of 3 jobs done */
    search_max_bytes = 1;
    in = (td__search_args){.q = "{}"};
    TD_ASSERT_EQ_INT(search_run(s, &in, &out), TD_OK);
    TD_ASSERT_EQ_U64(count_substr(out.data, "\"traceID\""), 1);
    TD_CHECK(strstr(out.data, "\"inspectedTraces\":1,") != NULL);
    TD_CHECK(strstr(out.data, "\"completedJobs\":1,\"totalJobs\":3}") != NULL);
    search_max_bytes = 0;
    td_buf_release(&out);

    /* bad requests */
    search_bad(s, &(td__search_args){.q = "{ name = }"}, "invalid TraceQL query: ");
    search_bad(s, &(td__search_args){.q = "{ name = }"}, "line 1");
    search_bad(s, &(td__search_args){.q = "{} | rate()"},
               "invalid TraceQL query: metrics queries are served by /api/metrics/query_range");
    search_bad(s, &(td__search_args){.limit = "0"}, "invalid limit: must be a positive number");
    search_bad(s, &(td__search_args){.limit = "262145"}, "invalid limit: ");
    search_bad(s, &(td__search_args){.limit = "x"}, "invalid limit: ");
    search_bad(s, &(td__search_args){.spss = "101"}, "invalid spss: ");
    search_bad(s, &(td__search_args){.q = "{}", .tags = "a=b"},
               "invalid request: can't specify tags and q in the same query");
    /* legacy tags (logfmt) */
    {
        td__search_args ta = {.tags = "service.name=car"};
        td_buf o = TD_BUF_INIT;
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 1);
        TD_CHECK(strstr(o.data, S_ID2) != NULL);
        ta = (td__search_args){.tags = "name=a"}; /* substring of a span name */
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 2); /* T1 (a), T3 (a) */
        ta = (td__search_args){.tags = "name=\"GET /\" status.code=error"};
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 1);
        TD_CHECK(strstr(o.data, S_ID1) != NULL);
        ta = (td__search_args){.tags = "status.code=ok"};
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 1);
        TD_CHECK(strstr(o.data, S_ID2) != NULL);
        ta = (td__search_args){.tags = "root.service.name=sho root.name=GET"};
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 1);
        TD_CHECK(strstr(o.data, S_ID1) != NULL);
        ta = (td__search_args){.tags = "name=.*"}; /* metacharacters match literally */
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 0);
        ta = (td__search_args){.tags = "name=\"(\\\"[\""};
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 0);
        ta = (td__search_args){.tags = "http.status_code=200"}; /* no such attribute */
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 0);
        ta.tags = "weird\\key=\"a\\\"b\"";
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 0);
        ta = (td__search_args){.tags = "service.name=shop name=checkout"}; /* AND-ed */
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 0);
        ta = (td__search_args){.tags = "  "};
        TD_ASSERT_EQ_INT(search_run(s, &ta, &o), TD_OK);
        TD_ASSERT_EQ_U64(count_substr(o.data, "\"traceID\""), 3);
        td_buf_release(&o);
    }
    search_bad(s, &(td__search_args){.tags = "a=b a=c"}, "invalid tags: tag a has been set twice");
    search_bad(s, &(td__search_args){.tags = "status.code=bad"}, "invalid tags: ");
    search_bad(s, &(td__search_args){.tags = "a=\"open"}, "invalid tags: ");
    search_bad(s, &(td__search_args){.tags = "a=\xff"}, "invalid tags: invalid UTF-8");
    search_bad(s, &(td__search_args){.start = "20", .end = "10"},
               "http parameter start must be before end. received start=20 end=10");
    search_bad(s, &(td__search_args){.start = "4294967296"}, "invalid start: ");
    search_bad(s, &(td__search_args){.min_duration = "5x"}, "invalid minDuration: ");
    search_bad(s, &(td__search_args){.min_duration = "2s", .max_duration = "1s"},
               "invalid maxDuration: ");

    /* through the HTTP route */
    td_api *api = start_api(s, "127.0.0.1:0", 50u << 20, false);
    TD_CHECK(api != NULL);
    int port = td_api_port(api);
    resp r = {0};
    GET_OK(port, "/api/search?q=%7Bstatus%3Derror%7D&start=1700000000&end=1700003600", NULL, &r);
    TD_ASSERT_EQ_INT(r.status, 200);
    TD_CHECK(strstr(r.body.data, "\"traceID\":\"" S_ID1 "\"") != NULL);
    td_buf_release(&r.body);
    expect_text(port, "/api/search?limit=0", NULL, 400,
                "invalid limit: must be a positive number\n");
    /* through gRPC: /tempopb.StreamingQuerier/Search */
    grpc_init();
    search_grpc(s, port);
    td_api_stop(api);
    td_api_free(api);
    grpc_shutdown();
    td_store_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TEST_LIST = {
    {"json_escape", test_json_escape},
    {"json_structure", test_json_structure},
    {"json_double", test_json_double},
    {"json_base64", test_json_base64},
    {"trace_id_parse", test_trace_id_parse},
    {"range_parse", test_range_parse},
    {"accept_negotiation", test_accept_negotiation},
    {"tenants", test_tenants},
    {"options", test_options},
    {"merge_same_resource", test_merge_same_resource},
    {"merge_different_resources", test_merge_different_resources},
    {"dedupe", test_dedupe},
    {"corrupt_fragment", test_corrupt_fragment},
    {"json_golden", test_json_golden},
    {"not_found_encodings", test_not_found_encodings},
    {"partial", test_partial},
    {"assembly_nomem_countdown", test_assembly_nomem_countdown},
    {"server", test_server},
    {"classify", test_classify},
    {"grpc_register", test_grpc_register},
    {"server_h2c", test_server_h2c},
    {"logfmt", test_logfmt},
    {"search", test_search},
    {"search_late_root", test_search_late_root},
    {"search_index_equivalence", test_search_index_equivalence},
    {NULL, NULL},
};
