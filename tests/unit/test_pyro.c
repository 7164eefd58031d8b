/*
 * test_pyro.c - the Pyroscope query side: protojson (api/connect.c), Connect unary
 * calls and their error mapping, the flame graph builder (api/flamegraph.c: the
 * API-CONTRACT §6.3 example, truncation into `other`, diff encoding), SelectSeries
 * step arithmetic, and the querier.v1 methods (api/pyro_query.c) end to end over a
 * real profile store in a temporary directory.
 */
#include "api/connect.h"
#include "api/pyro.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/gzip.h"
#include "core/mem.h"
#include "proto/proto.h"
#include "store/pstore.h"
#include "td_test.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- protojson ---- */

static void test_protojson_decode(void)
{
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td_err err;
    td_err_init(&err);
    const char *js = "{\"profileTypeID\":\"a:b:c:d:e\",\"labelSelector\":\"{x=\\\"1\\\"}\","
                     "\"start\":\"1000\",\"end\":2000,\"maxNodes\":\"16\","
                     "\"format\":\"PROFILE_FORMAT_SANDWICH\",\"sandwichFunction\":\"f\","
                     "\"frameFilter\":{\"x\":[1,2]},\"spanSelector\":[\"00000000000000aa\"],"
                     "\"stackTraceSelector\":null}";
    ProtobufCMessage *m = NULL;
    TD_ASSERT_OK(td_protojson_decode(&querier__v1__select_merge_stacktraces_request__descriptor, js,
                                     strlen(js), &a, &m, &err));
    const Querier__V1__SelectMergeStacktracesRequest *r = (const void *)m;
    TD_ASSERT_EQ_STR(r->profile_typeid, "a:b:c:d:e");
    TD_ASSERT_EQ_STR(r->label_selector, "{x=\"1\"}");
    TD_ASSERT_EQ_INT(r->start, 1000);
    TD_ASSERT_EQ_INT(r->end, 2000);
    TD_ASSERT_EQ_INT(r->max_nodes, 16);
    TD_ASSERT_EQ_INT(r->format, 0); /* unknown enum name ignored */
    TD_ASSERT_EQ_INT(r->n_span_selector, 1);
    TD_ASSERT_EQ_STR(r->span_selector[0], "00000000000000aa");
    TD_CHECK(r->stack_trace_selector == NULL);

    /* the proto field name works too; enums by name or number */
    js = "{\"profile_typeID\":\"p\",\"format\":\"PROFILE_FORMAT_TREE\"}";
    TD_ASSERT_OK(td_protojson_decode(&querier__v1__select_merge_stacktraces_request__descriptor, js,
                                     strlen(js), &a, &m, &err));
    r = (const void *)m;
    TD_ASSERT_EQ_STR(r->profile_typeid, "p");
    TD_ASSERT_EQ_INT(r->format, 2);
    js = "{\"format\":3,\"end\":\"-5\"}";
    TD_ASSERT_OK(td_protojson_decode(&querier__v1__select_merge_stacktraces_request__descriptor, js,
                                     strlen(js), &a, &m, &err));
    r = (const void *)m;
    TD_ASSERT_EQ_INT(r->format, 3);
    TD_ASSERT_EQ_INT(r->end, -5);

    /* bytes: standard and URL-safe base64, padding optional */
    js = "{\"tree\":\"AQL/\"}";
    TD_ASSERT_OK(td_protojson_decode(&querier__v1__select_merge_stacktraces_response__descriptor,
                                     js, strlen(js), &a, &m, &err));
    const Querier__V1__SelectMergeStacktracesResponse *resp = (const void *)m;
    TD_ASSERT_EQ_INT(resp->tree.len, 3);
    TD_ASSERT_EQ_MEM(resp->tree.data, "\x01\x02\xff", 3);
    js = "{\"tree\":\"AQL_AA\"}";
    TD_ASSERT_OK(td_protojson_decode(&querier__v1__select_merge_stacktraces_response__descriptor,
                                     js, strlen(js), &a, &m, &err));
    resp = (const void *)m;
    TD_ASSERT_EQ_INT(resp->tree.len, 4);
    TD_ASSERT_EQ_MEM(resp->tree.data, "\x01\x02\xff\x00", 4);

    /* errors name the field */
    static const char *const bad[] = {
        "{\"start\":\"12x\"}",
        "{\"start\":\"99999999999999999999\"}",
        "{\"start\":1.5}",
        "{\"labelSelector\":5}",
        "{\"spanSelector\":\"x\"}",
        "[]",
        "{\"start\":",
        "{\"stackTraceSelector\":5}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        td_err_init(&err);
        TD_ASSERT_EQ_INT(
            td_protojson_decode(&querier__v1__select_merge_stacktraces_request__descriptor, bad[i],
                                strlen(bad[i]), &a, &m, &err),
            TD_INVALID);
        TD_CHECK(err.msg[0] != '\0');
    }
    TD_CHECK(strstr(err.msg, "stack_trace_selector") != NULL);
    td_arena_release(&a);
}

static void test_protojson_encode(void)
{
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td_err err;
    td_err_init(&err);
    td_buf b = TD_BUF_INIT;

    /* int64 as strings, zero fields omitted, lowerCamel names */
    int64_t vals[] = {0, 6, 0, 0};
    Querier__V1__Level lv = QUERIER__V1__LEVEL__INIT;
    lv.values = vals;
    lv.n_values = 4;
    Querier__V1__Level *lvs[] = {&lv};
    char *names[] = {"total"};
    Querier__V1__FlameGraph fg = QUERIER__V1__FLAME_GRAPH__INIT;
    fg.names = names;
    fg.n_names = 1;
    fg.levels = lvs;
    fg.n_levels = 1;
    fg.total = 6;
    fg.max_self = 3;
    Querier__V1__SelectMergeStacktracesResponse r =
        QUERIER__V1__SELECT_MERGE_STACKTRACES_RESPONSE__INIT;
    r.flamegraph = &fg;
    TD_ASSERT_OK(td_protojson_encode(&r.base, &b, &err));
    TD_ASSERT_EQ_STR(b.data,
                     "{\"flamegraph\":{\"names\":[\"total\"],\"levels\":[{\"values\":[\"0\","
                     "\"6\",\"0\",\"0\"]}],\"total\":\"6\",\"maxSelf\":\"3\"}}");

    /* ID stays ID; bytes as base64; bools; doubles as numbers; uint64 strings */
    td_buf_reset(&b);
    Types__V1__ProfileType pt = TYPES__V1__PROFILE_TYPE__INIT;
    pt.id = "a:b:c:d:e";
    pt.sample_type = "cpu";
    TD_ASSERT_OK(td_protojson_encode(&pt.base, &b, &err));
    TD_ASSERT_EQ_STR(b.data, "{\"ID\":\"a:b:c:d:e\",\"sampleType\":\"cpu\"}");
    td_buf_reset(&b);
    r.flamegraph = NULL;
    r.tree.data = (uint8_t *)"\x01\x02\xff";
    r.tree.len = 3;
    TD_ASSERT_OK(td_protojson_encode(&r.base, &b, &err));
    TD_ASSERT_EQ_STR(b.data, "{\"tree\":\"AQL/\"}");
    td_buf_reset(&b);
    Types__V1__GetProfileStatsResponse st = TYPES__V1__GET_PROFILE_STATS_RESPONSE__INIT;
    st.data_ingested = 1;
    st.newest_profile_time = -2;
    TD_ASSERT_OK(td_protojson_encode(&st.base, &b, &err));
    TD_ASSERT_EQ_STR(b.data, "{\"dataIngested\":true,\"newestProfileTime\":\"-2\"}");
    td_buf_reset(&b);
    Types__V1__Point p = TYPES__V1__POINT__INIT;
    p.value = 1.5;
    p.timestamp = 1700000000000;
    TD_ASSERT_OK(td_protojson_encode(&p.base, &b, &err));
    TD_ASSERT_EQ_STR(b.data, "{\"value\":1.5,\"timestamp\":\"1700000000000\"}");
    td_buf_reset(&b);
    Google__V1__Mapping mp = GOOGLE__V1__MAPPING__INIT;
    mp.memory_limit = UINT64_MAX;
    TD_ASSERT_OK(td_protojson_encode(&mp.base, &b, &err));
    TD_ASSERT_EQ_STR(b.data, "{\"memoryLimit\":\"18446744073709551615\"}");

    /* enums by name; round trip of a whole request */
    td_buf_reset(&b);
    Querier__V1__SelectSeriesRequest ss = QUERIER__V1__SELECT_SERIES_REQUEST__INIT;
    char *gb[] = {"service_name"};
    ss.profile_typeid = "x:y:z:u:v";
    ss.group_by = gb;
    ss.n_group_by = 1;
    ss.step = 15;
    ss.aggregation = TYPES__V1__TIME_SERIES_AGGREGATION_TYPE__TIME_SERIES_AGGREGATION_TYPE_AVERAGE;
    ss.exemplar_type = TYPES__V1__EXEMPLAR_TYPE__EXEMPLAR_TYPE_NONE;
    ss.end = INT64_MAX;
    TD_ASSERT_OK(td_protojson_encode(&ss.base, &b, &err));
    TD_ASSERT_EQ_STR(b.data, "{\"profileTypeID\":\"x:y:z:u:v\",\"end\":\"9223372036854775807\","
                             "\"groupBy\":[\"service_name\"],\"step\":15,"
                             "\"aggregation\":\"TIME_SERIES_AGGREGATION_TYPE_AVERAGE\","
                             "\"exemplarType\":\"EXEMPLAR_TYPE_NONE\"}");
    ProtobufCMessage *m;
    TD_ASSERT_OK(td_protojson_decode(&querier__v1__select_series_request__descriptor, b.data, b.len,
                                     &a, &m, &err));
    const Querier__V1__SelectSeriesRequest *back = (const void *)m;
    TD_ASSERT_EQ_STR(back->profile_typeid, "x:y:z:u:v");
    TD_ASSERT_EQ_INT(back->end, INT64_MAX);
    TD_ASSERT_EQ_STR(back->group_by[0], "service_name");
    TD_ASSERT_EQ_INT(back->aggregation, 1);
    TD_ASSERT_EQ_INT(back->exemplar_type, 1);
    TD_CHECK(back->step == 15.0);
    td_buf_release(&b);
    td_arena_release(&a);
}

/* ---- Connect calls ---- */

static td_status echo_handler(void *ud, td_connect_call *call, const ProtobufCMessage *in,
                              ProtobufCMessage **out, td_err *err)
{
    (void)ud;
    const Types__V1__LabelValuesRequest *r = (const void *)in;
    if (strcmp(r->name, "bad") == 0) {
        return td_err_set(err, TD_INVALID, "bad name");
    }
    if (strcmp(r->name, "unimpl") == 0) {
        call->code = TD_CONNECT_UNIMPLEMENTED;
        return td_err_set(err, TD_INVALID, "not here");
    }
    Types__V1__LabelValuesResponse *o = td_arena_alloc(call->arena, sizeof(*o));
    types__v1__label_values_response__init(o);
    if (r->name[0]) {
        char **v = td_arena_alloc(call->arena, sizeof(char *));
        v[0] = r->name;
        o->names = v;
        o->n_names = 1;
    }
    *out = &o->base;
    return TD_OK;
}

static const td_connect_method echo_methods[] = {
    {"/types.v1.Test/Echo", &types__v1__label_values_request__descriptor,
     &types__v1__label_values_response__descriptor, echo_handler},
    {"/types.v1.Test/Nope", &types__v1__label_values_request__descriptor,
     &types__v1__label_values_response__descriptor, NULL},
};

static int serve(const char *url, const char *method, const char *ctype, const char *enc,
                 const void *body, size_t len, td_buf *out, const char **ctype_out)
{
    td_arena a;
    td_arena_init(&a, 4096, 0);
    const td_connect_method *m = td_connect_find(echo_methods, 2, url);
    td_connect_req rq = {
        .method = method, .content_type = ctype, .content_encoding = enc, .body = body, .len = len};
    td_connect_reply rp = {.body = *out};
    td_connect_serve(m, NULL, &rq, &a, &rp);
    *out = rp.body;
    if (ctype_out) {
        *ctype_out = rp.ctype;
    }
    td_arena_release(&a);
    return rp.status;
}

static void test_connect_calls(void)
{
    td_buf b = TD_BUF_INIT;
    const char *ct;
    /* JSON in, JSON out; routing prefix before the method path */
    const char *js = "{\"name\":\"x\",\"unknown\":1}";
    TD_ASSERT_EQ_INT(serve("/pfx/types.v1.Test/Echo", "POST", "Application/JSON; charset=utf-8",
                           NULL, js, strlen(js), &b, &ct),
                     200);
    TD_ASSERT_EQ_STR(ct, "application/json");
    TD_ASSERT_EQ_STR(b.data, "{\"names\":[\"x\"]}");
    /* proto: empty body = empty message, empty reply = 0 bytes */
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Echo", "POST", "application/proto", NULL, "", 0, &b, &ct), 200);
    TD_ASSERT_EQ_STR(ct, "application/proto");
    TD_ASSERT_EQ_INT(b.len, 0);
    /* proto with a gzip body */
    uint8_t pb[] = {0x0a, 0x02, 'h', 'i'};
    td_buf gz = TD_BUF_INIT;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_gzip(pb, sizeof(pb), &gz, &err));
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Echo", "POST", "application/proto", "gzip", gz.data, gz.len, &b, &ct),
        200);
    TD_ASSERT_EQ_INT(b.len, 4);
    TD_ASSERT_EQ_MEM(b.data, "\x0a\x02hi", 4);
    td_buf_release(&gz);
    /* errors */
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Echo", "GET", "application/json", NULL, "{}", 2, &b, NULL), 405);
    TD_ASSERT_EQ_INT(serve("/types.v1.Test/Echo", "POST", NULL, NULL, "{}", 2, &b, NULL), 415);
    TD_ASSERT_EQ_INT(serve("/types.v1.Test/Echo", "POST", "text/plain", NULL, "{}", 2, &b, NULL),
                     415);
    TD_ASSERT_EQ_INT(serve("/types.v1.Test/Echo", "POST", "application/json", NULL, "", 0, &b, &ct),
                     400);
    TD_ASSERT_EQ_STR(ct, "application/json");
    TD_CHECK(strncmp(b.data, "{\"code\":\"invalid_argument\"", 26) == 0);
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Echo", "POST", "application/json", "br", "{}", 2, &b, NULL), 501);
    TD_CHECK(strstr(b.data, "\"unimplemented\"") != NULL);
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Echo", "POST", "application/json", "gzip", "xx", 2, &b, NULL), 400);
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Echo", "POST", "application/proto", NULL, "\xff", 1, &b, NULL), 400);
    js = "{\"name\":\"bad\"}";
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Echo", "POST", "application/json", NULL, js, strlen(js), &b, NULL),
        400);
    TD_ASSERT_EQ_STR(b.data, "{\"code\":\"invalid_argument\",\"message\":\"bad name\"}");
    js = "{\"name\":\"unimpl\"}";
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Echo", "POST", "application/json", NULL, js, strlen(js), &b, NULL),
        501);
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Nope", "POST", "application/json", NULL, "{}", 2, &b, NULL), 501);
    TD_ASSERT_EQ_INT(
        serve("/types.v1.Test/Other", "POST", "application/json", NULL, "{}", 2, &b, NULL), 501);
    td_buf_release(&b);
}

static void test_connect_codes(void)
{
    static const struct {
        td_connect_code c;
        const char *name;
        int http;
    } rows[] = {
        {TD_CONNECT_CANCELED, "canceled", 499},
        {TD_CONNECT_UNKNOWN, "unknown", 500},
        {TD_CONNECT_INVALID_ARGUMENT, "invalid_argument", 400},
        {TD_CONNECT_DEADLINE_EXCEEDED, "deadline_exceeded", 504},
        {TD_CONNECT_NOT_FOUND, "not_found", 404},
        {TD_CONNECT_ALREADY_EXISTS, "already_exists", 409},
        {TD_CONNECT_PERMISSION_DENIED, "permission_denied", 403},
        {TD_CONNECT_RESOURCE_EXHAUSTED, "resource_exhausted", 429},
        {TD_CONNECT_FAILED_PRECONDITION, "failed_precondition", 400},
        {TD_CONNECT_ABORTED, "aborted", 409},
        {TD_CONNECT_OUT_OF_RANGE, "out_of_range", 400},
        {TD_CONNECT_UNIMPLEMENTED, "unimplemented", 501},
        {TD_CONNECT_INTERNAL, "internal", 500},
        {TD_CONNECT_UNAVAILABLE, "unavailable", 503},
        {TD_CONNECT_DATA_LOSS, "data_loss", 500},
        {TD_CONNECT_UNAUTHENTICATED, "unauthenticated", 401},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        TD_ASSERT_EQ_STR(td_connect_code_name(rows[i].c), rows[i].name);
        TD_ASSERT_EQ_INT(td_connect_code_http(rows[i].c), rows[i].http);
    }
    TD_ASSERT_EQ_INT(td_connect_code_of(TD_INVALID), TD_CONNECT_INVALID_ARGUMENT);
    TD_ASSERT_EQ_INT(td_connect_code_of(TD_UNAUTHENTICATED), TD_CONNECT_UNAUTHENTICATED);
    TD_ASSERT_EQ_INT(td_connect_code_of(TD_UNSUPPORTED), TD_CONNECT_UNIMPLEMENTED);
    TD_ASSERT_EQ_INT(td_connect_code_of(TD_LIMITED), TD_CONNECT_RESOURCE_EXHAUSTED);
    TD_ASSERT_EQ_INT(td_connect_code_of(TD_OVERLOADED), TD_CONNECT_UNAVAILABLE);
    TD_ASSERT_EQ_INT(td_connect_code_of(TD_CORRUPT), TD_CONNECT_DATA_LOSS);
    TD_ASSERT_EQ_INT(td_connect_code_of(TD_IO), TD_CONNECT_INTERNAL);
    td_buf b = TD_BUF_INIT;
    td_connect_error_json(&b, TD_CONNECT_UNAUTHENTICATED, "");
    TD_ASSERT_EQ_STR(b.data, "{\"code\":\"unauthenticated\"}");
    td_buf_release(&b);
}

/* ---- flame graphs ---- */

/* "a;b;c" -> names in arena, added with value. */
static void add_stack(td__fg *t, int side, const char *folded, int64_t v, td_arena *a)
{
    const char *names[32];
    size_t n = 0;
    char *s = td_arena_strndup(a, folded, strlen(folded));
    for (char *tok = strtok(s, ";"); tok; tok = strtok(NULL, ";")) {
        names[n++] = tok;
    }
    td_err err;
    TD_ASSERT_OK(td__fg_add(t, side, names, n, v, &err));
}

/* The flame graph as compact text: names|level;level|total|max_self. */
static void fg_text(const Querier__V1__FlameGraph *fg, td_buf *b)
{
    td_buf_reset(b);
    for (size_t i = 0; i < fg->n_names; i++) {
        td_buf_addf(b, "%s%s", i ? "," : "", fg->names[i]);
    }
    td_buf_addch(b, '|');
    for (size_t i = 0; i < fg->n_levels; i++) {
        td_buf_addch(b, '[');
        for (size_t k = 0; k < fg->levels[i]->n_values; k++) {
            td_buf_addf(b, "%s%" PRId64, k ? "," : "", fg->levels[i]->values[k]);
        }
        td_buf_addch(b, ']');
    }
    td_buf_addf(b, "|%" PRId64 "|%" PRId64, fg->total, fg->max_self);
}

static void test_flamegraph_contract_example(void)
{
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td_err err;
    td_buf b = TD_BUF_INIT;
    td__fg *t = td__fg_new(&a);
    add_stack(t, 0, "main;a;b", 3, &a);
    add_stack(t, 0, "main;a", 1, &a);
    add_stack(t, 0, "main;c", 2, &a);
    Querier__V1__FlameGraph *fg;
    TD_ASSERT_OK(td__fg_flamegraph(t, 8192, &a, &fg, &err));
    fg_text(fg, &b);
    TD_ASSERT_EQ_STR(b.data, "total,main,c,a,b|[0,6,0,0][0,6,0,1][0,4,1,3,0,2,2,2][1,3,3,4]|6|3");

    /* max_nodes 3: the 3rd largest total is 3, so c (2) folds into `other` */
    TD_ASSERT_OK(td__fg_flamegraph(t, 3, &a, &fg, &err));
    fg_text(fg, &b);
    TD_ASSERT_EQ_STR(b.data,
                     "total,main,other,a,b|[0,6,0,0][0,6,0,1][0,4,1,3,0,2,2,2][1,3,3,4]|6|3");
    /* max_nodes 1: only main; both children fold */
    TD_ASSERT_OK(td__fg_flamegraph(t, 1, &a, &fg, &err));
    fg_text(fg, &b);
    TD_ASSERT_EQ_STR(b.data, "total,main,other|[0,6,0,0][0,6,0,1][0,6,6,2]|6|6");
    /* exactly as many nodes as max_nodes: nothing folds */
    TD_ASSERT_OK(td__fg_flamegraph(t, 4, &a, &fg, &err));
    fg_text(fg, &b);
    TD_ASSERT_EQ_STR(b.data, "total,main,c,a,b|[0,6,0,0][0,6,0,1][0,4,1,3,0,2,2,2][1,3,3,4]|6|3");

    /* an existing frame named `other` joins the synthetic one */
    td__fg *t2 = td__fg_new(&a);
    add_stack(t2, 0, "main;other", 2, &a);
    add_stack(t2, 0, "main;x", 1, &a);
    add_stack(t2, 0, "main;y", 5, &a);
    TD_ASSERT_OK(td__fg_flamegraph(t2, 3, &a, &fg, &err));
    fg_text(fg, &b);
    /* nodes main 8, y 5, other 2, x 1 -> min 2; x (1) and the real other (2) fold: 3 */
    TD_ASSERT_EQ_STR(b.data, "total,main,other,y|[0,8,0,0][0,8,0,1][0,5,5,3,0,3,3,2]|8|5");

    /* several roots, repeated names, self on inner nodes */
    td__fg *t3 = td__fg_new(&a);
    add_stack(t3, 0, "b;b", 2, &a);
    add_stack(t3, 0, "a", 1, &a);
    add_stack(t3, 0, "b", 4, &a);
    TD_ASSERT_OK(td__fg_flamegraph(t3, 8192, &a, &fg, &err));
    fg_text(fg, &b);
    /* visit: total, b (x=1), b's child b, a (x=0) */
    TD_ASSERT_EQ_STR(b.data, "total,b,a|[0,7,0,0][0,1,1,2,0,6,4,1][5,2,2,1]|7|4");

    /* no data: one root node */
    td__fg *t4 = td__fg_new(&a);
    TD_ASSERT_OK(td__fg_flamegraph(t4, 8192, &a, &fg, &err));
    fg_text(fg, &b);
    TD_ASSERT_EQ_STR(b.data, "total|[0,0,0,0]|0|0");
    td_buf_release(&b);
    td_arena_release(&a);
}

static void test_flamegraph_dot(void)
{
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td_err err;
    td_buf b = TD_BUF_INIT;
    td__fg *t = td__fg_new(&a);
    add_stack(t, 0, "main;a;b", 3, &a);
    add_stack(t, 0, "main;a", 1, &a);
    add_stack(t, 0, "main;c", 2, &a);
    add_stack(t, 0, "main;a;main", 1, &a); /* recursion: main's cumulative stays 7 */
    TD_ASSERT_OK(td__fg_dot(t, 100, "x:cpu:ns:cpu:ns", &a, &b, &err));
    TD_CHECK(strncmp(b.data, "digraph \"unnamed\" {", 19) == 0);
    TD_CHECK(strstr(b.data, "N1 [label=\"main\\n1 (14.29%)\\nof 7 (100.00%)\" shape=box]") != NULL);
    TD_CHECK(strstr(b.data, "N2 [label=\"a\\n1 (14.29%)\\nof 5 (71.43%)\" shape=box]") != NULL);
    TD_CHECK(strstr(b.data,
                    "N1 -> N2 [label=\" 5\"]\nN1 -> N4 [label=\" 2\"]\nN2 -> N1 [label=\" 1\"]\n"
                    "N2 -> N3 [label=\" 3\"]\n}\n") != NULL);
    td_buf_reset(&b);
    TD_ASSERT_OK(td__fg_dot(t, 2, "x:cpu:ns:cpu:ns", &a, &b, &err));
    TD_CHECK(strstr(b.data, "N3 [") == NULL && strstr(b.data, "N4 [") == NULL);
    TD_CHECK(strstr(b.data, "N1 -> N2 [label=\" 5\"]\nN2 -> N1 [label=\" 1\"]\n}\n") != NULL);
    td_buf_release(&b);
    td_arena_release(&a);
}

static void test_flamegraph_diff(void)
{
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td_err err;
    td__fg *t = td__fg_new(&a);
    add_stack(t, 0, "main;a", 2, &a);
    add_stack(t, 1, "main;a", 1, &a);
    add_stack(t, 1, "main;b", 3, &a);
    Querier__V1__FlameGraphDiff *d;
    TD_ASSERT_OK(td__fg_diff(t, 8192, &a, &d, &err));
    TD_ASSERT_EQ_INT(d->n_names, 4);
    TD_ASSERT_EQ_STR(d->names[0], "total");
    TD_ASSERT_EQ_STR(d->names[1], "main");
    TD_ASSERT_EQ_STR(d->names[2], "b");
    TD_ASSERT_EQ_STR(d->names[3], "a");
    TD_ASSERT_EQ_INT(d->n_levels, 3);
    static const int64_t l0[] = {0, 2, 0, 0, 4, 0, 0};
    static const int64_t l1[] = {0, 2, 0, 0, 4, 0, 1};
    static const int64_t l2[] = {0, 2, 2, 0, 1, 1, 3, 0, 0, 0, 0, 3, 3, 2};
    TD_ASSERT_EQ_INT(d->levels[0]->n_values, 7);
    TD_ASSERT_EQ_MEM(d->levels[0]->values, l0, sizeof(l0));
    TD_ASSERT_EQ_MEM(d->levels[1]->values, l1, sizeof(l1));
    TD_ASSERT_EQ_INT(d->levels[2]->n_values, 14);
    TD_ASSERT_EQ_MEM(d->levels[2]->values, l2, sizeof(l2));
    TD_ASSERT_EQ_INT(d->total, 6);
    TD_ASSERT_EQ_INT(d->leftticks, 2);
    TD_ASSERT_EQ_INT(d->rightticks, 4);
    TD_ASSERT_EQ_INT(d->max_self, 3);
    td_arena_release(&a);
}

static void test_series_steps(void)
{
    /* boundaries start + k*step; (t - step, t] goes to t; nothing past the last one <= end */
    TD_ASSERT_EQ_INT(td__pyro_step_index(1000, 2000, 100, 1000), 0);
    TD_ASSERT_EQ_INT(td__pyro_step_index(1000, 2000, 100, 950), 0);
    TD_ASSERT_EQ_INT(td__pyro_step_index(1000, 2000, 100, 900), -1);
    TD_ASSERT_EQ_INT(td__pyro_step_index(1000, 2000, 100, 1001), 1);
    TD_ASSERT_EQ_INT(td__pyro_step_index(1000, 2000, 100, 1100), 1);
    TD_ASSERT_EQ_INT(td__pyro_step_index(1000, 2000, 100, 2000), 10);
    TD_ASSERT_EQ_INT(td__pyro_step_index(1000, 2050, 100, 2030), -1);
    TD_ASSERT_EQ_INT(td__pyro_step_index(1000, 2000, 0, 1500), -1);
}

/* ---- the querier methods over a real store ---- */

static char tmpdir[4096];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static td_pstore *store_with_data(void)
{
    const char *base = getenv("TD_TEST_TMP");
    if (!base || !*base) {
        base = "/tmp";
    }
    mkdir(base, 0755);
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_pyro-XXXXXX", base);
    TD_CHECK(mkdtemp(tmpdir) != NULL);
    td_store_opts o = {.dir = tmpdir, .cache_bytes = 1 << 20, .write_buffer_bytes = 1 << 20};
    td_pstore *ps = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_pstore_open(&o, &ps, &err));

    static const td_ploc locs[] = {
        {"main", "main", "main.go", 10, "/bin/app"},
        {"a", "a", "a.go", 20, "/bin/app"},
        {"b", "b", "b.go", 30, "/bin/app"},
        {"c", "c", "c.go", 40, ""},
    };
    static const uint32_t f0[] = {2, 1, 0}, f1[] = {1, 0}, f2[] = {3, 0};
    static const td_pstack stacks[] = {{f0, 3}, {f1, 2}, {f2, 2}};
    static const td_plabel labels[] = {
        {"__name__", "process_cpu"},
        {"__period_type__", "cpu"},
        {"__period_unit__", "nanoseconds"},
        {"__profile_type__", "process_cpu:cpu:nanoseconds:cpu:nanoseconds"},
        {"__type__", "cpu"},
        {"__unit__", "nanoseconds"},
        {"service.namespace", "prod"},
        {"service_name", "shop"},
    };
    static const td_psample s1[] = {
        {.stack = 0, .value = 3, .span_id = 0x1111},
        {.stack = 1, .value = 1},
        {.stack = 2, .value = 2, .span_id = 0x2222},
    };
    static const td_psample s2[] = {{.stack = 1, .value = 4}};
    td_pseries_in in1 = {labels, 8, s1, 3}, in2 = {labels, 8, s2, 1};
    td_pwrite w = {.tenant = TD_DEFAULT_TENANT,
                   .time_ns = 1000000LL * 1000000,
                   .locs = locs,
                   .nlocs = 4,
                   .stacks = stacks,
                   .nstacks = 3,
                   .series = &in1,
                   .nseries = 1};
    TD_ASSERT_OK(td_pstore_write(ps, &w, &err));
    w.time_ns = 1000015LL * 1000000;
    w.series = &in2;
    TD_ASSERT_OK(td_pstore_write(ps, &w, &err));
    /* another service with a memory profile */
    static const td_plabel mlabels[] = {
        {"__name__", "memory"},       {"__period_type__", "space"},
        {"__period_unit__", "bytes"}, {"__profile_type__", "memory:alloc_space:bytes:space:bytes"},
        {"__type__", "alloc_space"},  {"__unit__", "bytes"},
        {"service_name", "cart"},
    };
    static const td_psample s3[] = {{.stack = 2, .value = 100}};
    td_pseries_in in3 = {mlabels, 7, s3, 1};
    w.time_ns = 1000005LL * 1000000;
    w.series = &in3;
    TD_ASSERT_OK(td_pstore_write(ps, &w, &err));
    return ps;
}

static void store_remove(td_pstore *ps)
{
    td_pstore_close(ps);
    if (tmpdir[0]) {
        TD_ASSERT_EQ_INT(nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
        tmpdir[0] = '\0';
    }
}

/* Call method (JSON body) and return the status; the reply body in *out. */
static int q(td__pyro *p, const char *method, const char *json, const char *accept, td_buf *out)
{
    char path[128];
    snprintf(path, sizeof(path), "/querier.v1.QuerierService/%s", method);
    const td_connect_method *m = td_connect_find(td__pyro_methods, td__pyro_nmethods, path);
    TD_CHECK(m != NULL);
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td_connect_req rq = {.method = "POST",
                         .content_type = "application/json",
                         .accept = accept,
                         .body = json,
                         .len = strlen(json)};
    td_buf_reset(out);
    td_connect_reply rp = {.body = *out};
    td_connect_serve(m, p, &rq, &a, &rp);
    *out = rp.body;
    td_arena_release(&a);
    return rp.status;
}

#define CPU "\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\""

static void test_querier_methods(void)
{
    td_pstore *ps = store_with_data();
    td__pyro p = {.ps = ps};
    td_buf b = TD_BUF_INIT;

    TD_ASSERT_EQ_INT(q(&p, "ProfileTypes", "{\"start\":\"1000\",\"end\":\"4000\"}", NULL, &b), 200);
    TD_ASSERT_EQ_STR(b.data, "{}");
    TD_ASSERT_EQ_INT(q(&p, "ProfileTypes", "{\"start\":\"999000\",\"end\":\"1001000\"}", NULL, &b),
                     200);
    TD_ASSERT_EQ_STR(b.data,
                     "{\"profileTypes\":[{\"ID\":\"memory:alloc_space:bytes:space:bytes\","
                     "\"name\":\"memory\",\"sampleType\":\"alloc_space\",\"sampleUnit\":\"bytes\","
                     "\"periodType\":\"space\",\"periodUnit\":\"bytes\"},"
                     "{\"ID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"name\":"
                     "\"process_cpu\",\"sampleType\":\"cpu\",\"sampleUnit\":\"nanoseconds\","
                     "\"periodType\":\"cpu\",\"periodUnit\":\"nanoseconds\"}]}");

    /* LabelNames hides dotted names unless the client allows UTF-8 names */
    TD_ASSERT_EQ_INT(
        q(&p, "LabelNames", "{\"matchers\":[\"{service_name=\\\"shop\\\"}\"]}", NULL, &b), 200);
    TD_ASSERT_EQ_STR(b.data, "{\"names\":[\"__name__\",\"__period_type__\",\"__period_unit__\","
                             "\"__profile_type__\",\"__type__\",\"__unit__\",\"service_name\"]}");
    TD_ASSERT_EQ_INT(q(&p, "LabelNames", "{\"matchers\":[\"{service_name=\\\"shop\\\"}\"]}",
                       "application/json; allow-utf8-labelnames=true", &b),
                     200);
    TD_CHECK(strstr(b.data, "\"service.namespace\"") != NULL);
    TD_ASSERT_EQ_INT(
        q(&p, "LabelValues", "{\"name\":\"service_name\",\"matchers\":[\"\"]}", NULL, &b), 200);
    TD_ASSERT_EQ_STR(b.data, "{\"names\":[\"cart\",\"shop\"]}");
    TD_ASSERT_EQ_INT(
        q(&p, "LabelValues", "{\"name\":\"__profile_type__\",\"matchers\":[\"{}\"]}", NULL, &b),
        200);
    TD_ASSERT_EQ_STR(b.data, "{\"names\":[\"memory:alloc_space:bytes:space:bytes\","
                             "\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\"]}");
    TD_ASSERT_EQ_INT(
        q(&p, "Series",
          "{\"matchers\":[\"{service_name=~\\\"s.*\\\"}\",\"{service_name=\\\"cart\\\"}\"],"
          "\"labelNames\":[\"service_name\",\"__name__\"]}",
          NULL, &b),
        200);
    TD_ASSERT_EQ_STR(b.data, "{\"labelsSet\":[{\"labels\":[{\"name\":\"__name__\",\"value\":"
                             "\"memory\"},{\"name\":\"service_name\",\"value\":\"cart\"}]},"
                             "{\"labels\":[{\"name\":\"__name__\",\"value\":\"process_cpu\"},"
                             "{\"name\":\"service_name\",\"value\":\"shop\"}]}]}");

    /* the §6.3 example, straight from the store */
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces",
                       "{" CPU ",\"labelSelector\":\"{service_name=\\\"shop\\\"}\","
                       "\"start\":\"999000\",\"end\":\"1000005\"}",
                       NULL, &b),
                     200);
    TD_ASSERT_EQ_STR(
        b.data, "{\"flamegraph\":{\"names\":[\"total\",\"main\",\"c\",\"a\",\"b\"],\"levels\":["
                "{\"values\":[\"0\",\"6\",\"0\",\"0\"]},{\"values\":[\"0\",\"6\",\"0\",\"1\"]},"
                "{\"values\":[\"0\",\"4\",\"1\",\"3\",\"0\",\"2\",\"2\",\"2\"]},"
                "{\"values\":[\"1\",\"3\",\"3\",\"4\"]}],\"total\":\"6\",\"maxSelf\":\"3\"}}");
    /* no data: the single root node */
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces",
                       "{" CPU ",\"labelSelector\":\"{service_name=\\\"none\\\"}\","
                       "\"start\":\"999000\",\"end\":\"1000005\"}",
                       NULL, &b),
                     200);
    TD_ASSERT_EQ_STR(b.data,
                     "{\"flamegraph\":{\"names\":[\"total\"],\"levels\":[{\"values\":[\"0\","
                     "\"0\",\"0\",\"0\"]}]}}");
    /* span profile: only the samples of span 0x1111 */
    const char *span = "{" CPU ",\"labelSelector\":\"{}\",\"spanSelector\":[\"0000000000001111\"],"
                       "\"start\":\"999000\",\"end\":\"1000005\"}";
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeSpanProfile", span, NULL, &b), 200);
    TD_ASSERT_EQ_STR(
        b.data, "{\"flamegraph\":{\"names\":[\"total\",\"main\",\"a\",\"b\"],\"levels\":["
                "{\"values\":[\"0\",\"3\",\"0\",\"0\"]},{\"values\":[\"0\",\"3\",\"0\",\"1\"]},"
                "{\"values\":[\"0\",\"3\",\"0\",\"2\"]},{\"values\":[\"0\",\"3\",\"3\",\"3\"]}],"
                "\"total\":\"3\",\"maxSelf\":\"3\"}}");
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces", span, NULL, &b), 200);
    TD_CHECK(strstr(b.data, "\"total\":\"3\"") != NULL);

    /* format DOT: the Graphviz text instead of the flame graph */
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces",
                       "{" CPU ",\"start\":\"999000\",\"end\":\"1000005\",\"format\":"
                       "\"PROFILE_FORMAT_DOT\"}",
                       NULL, &b),
                     200);
    TD_CHECK(strncmp(b.data, "{\"dot\":\"digraph \\\"unnamed\\\" {", 28) == 0);

    /* stack_trace_selector: only stacks starting (root first) with main;a */
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces",
                       "{" CPU ",\"start\":\"999000\",\"end\":\"1000005\",\"stackTraceSelector\":"
                       "{\"callSite\":[{\"name\":\"main\"},{\"name\":\"a\"}]}}",
                       NULL, &b),
                     200);
    TD_CHECK(strstr(b.data, "\"names\":[\"total\",\"main\",\"a\",\"b\"]") != NULL);
    TD_CHECK(strstr(b.data, "\"total\":\"4\"") != NULL);
    TD_ASSERT_EQ_INT(
        q(&p, "SelectSeries",
          "{" CPU ",\"start\":\"999990\",\"end\":\"1000030\",\"step\":0.01,"
          "\"stackTraceSelector\":{\"callSite\":[{\"name\":\"main\"},{\"name\":\"c\"}]}}",
          NULL, &b),
        200);
    TD_ASSERT_EQ_STR(b.data,
                     "{\"series\":[{\"points\":[{\"value\":2,\"timestamp\":\"1000000\"}]}]}");

    /* SelectSeries: points at start + k*step for (t - step, t] */
    TD_ASSERT_EQ_INT(q(&p, "SelectSeries",
                       "{" CPU ",\"labelSelector\":\"{}\",\"start\":\"999990\",\"end\":\"1000030\","
                       "\"step\":0.01,\"groupBy\":[\"service_name\"]}",
                       NULL, &b),
                     200);
    TD_ASSERT_EQ_STR(b.data, "{\"series\":[{\"labels\":[{\"name\":\"service_name\",\"value\":"
                             "\"shop\"}],\"points\":[{\"value\":6,\"timestamp\":\"1000000\"},"
                             "{\"value\":4,\"timestamp\":\"1000020\"}]}]}");
    TD_ASSERT_EQ_INT(q(&p, "SelectSeries",
                       "{" CPU ",\"start\":\"999000\",\"end\":\"1002000\",\"step\":2}", NULL, &b),
                     200);
    TD_ASSERT_EQ_STR(b.data,
                     "{\"series\":[{\"points\":[{\"value\":10,\"timestamp\":\"1001000\"}]}]}");

    /* Diff between the two cpu profiles */
    TD_ASSERT_EQ_INT(q(&p, "Diff",
                       "{\"left\":{" CPU ",\"start\":\"999000\",\"end\":\"1000005\"},"
                       "\"right\":{" CPU ",\"start\":\"1000010\",\"end\":\"1000020\"}}",
                       NULL, &b),
                     200);
    TD_CHECK(strstr(b.data, "\"leftTicks\":\"6\",\"rightTicks\":\"4\"") != NULL);

    TD_ASSERT_EQ_INT(q(&p, "GetProfileStats", "{}", NULL, &b), 200);
    TD_ASSERT_EQ_STR(b.data, "{\"dataIngested\":true,\"oldestProfileTime\":\"1000000\","
                             "\"newestProfileTime\":\"1000015\"}");

    /* bad input -> invalid_argument (400) with the reason */
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces",
                       "{\"profileTypeID\":\"cpu\",\"start\":\"1\",\"end\":\"2\"}", NULL, &b),
                     400);
    TD_CHECK(strstr(b.data, "profile-type selection") != NULL);
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces",
                       "{" CPU ",\"labelSelector\":\"{a=}\",\"start\":\"1\",\"end\":\"2\"}", NULL,
                       &b),
                     400);
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces",
                       "{" CPU ",\"maxNodes\":\"2000000\",\"start\":\"1\",\"end\":\"2\"}", NULL,
                       &b),
                     400);
    TD_ASSERT_EQ_INT(q(&p, "SelectMergeStacktraces",
                       "{" CPU ",\"spanSelector\":[\"xyz\"],\"start\":\"1\",\"end\":\"2\"}", NULL,
                       &b),
                     400);
    TD_ASSERT_EQ_INT(q(&p, "SelectSeries", "{" CPU ",\"step\":0.0001}", NULL, &b), 400);
    TD_ASSERT_EQ_INT(
        q(&p, "LabelNames", "{\"matchers\":[\"{service_name=~\\\"(\\\"}\"]}", NULL, &b), 400);
    TD_ASSERT_EQ_INT(q(&p, "SelectHeatmap", "{}", NULL, &b), 501);

    /* SelectMergeProfile: a pprof with the one sample type */
    td_arena a;
    td_arena_init(&a, 4096, 0);
    const td_connect_method *m = td_connect_find(td__pyro_methods, td__pyro_nmethods,
                                                 "/querier.v1.QuerierService/SelectMergeProfile");
    Querier__V1__SelectMergeProfileRequest req = QUERIER__V1__SELECT_MERGE_PROFILE_REQUEST__INIT;
    req.profile_typeid = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    req.start = 999000;
    req.end = 1000005;
    uint8_t pb[256];
    size_t pbn = protobuf_c_message_pack(&req.base, pb);
    td_connect_req rq = {
        .method = "POST", .content_type = "application/proto", .body = pb, .len = pbn};
    td_buf_reset(&b);
    td_connect_reply rp = {.body = b};
    td_connect_serve(m, &p, &rq, &a, &rp);
    b = rp.body;
    TD_ASSERT_EQ_INT(rp.status, 200);
    Google__V1__Profile *prof = google__v1__profile__unpack(NULL, b.len, (const uint8_t *)b.data);
    TD_CHECK(prof != NULL);
    TD_ASSERT_EQ_INT(prof->n_sample_type, 1);
    TD_ASSERT_EQ_STR(prof->string_table[0], "");
    TD_ASSERT_EQ_STR(prof->string_table[prof->sample_type[0]->type], "cpu");
    TD_ASSERT_EQ_STR(prof->string_table[prof->sample_type[0]->unit], "nanoseconds");
    TD_ASSERT_EQ_INT(prof->n_sample, 3);
    TD_ASSERT_EQ_INT(prof->n_location, 4);
    TD_ASSERT_EQ_INT(prof->n_function, 4);
    TD_ASSERT_EQ_INT(prof->n_mapping, 1);
    int64_t sum = 0;
    for (size_t i = 0; i < prof->n_sample; i++) {
        sum += prof->sample[i]->value[0];
        /* leaf first: the last location is main */
        const Google__V1__Sample *s = prof->sample[i];
        uint64_t root = s->location_id[s->n_location_id - 1];
        const Google__V1__Function *f =
            prof->function[prof->location[root - 1]->line[0]->function_id - 1];
        TD_ASSERT_EQ_STR(prof->string_table[f->name], "main");
    }
    TD_ASSERT_EQ_INT(sum, 6);
    google__v1__profile__free_unpacked(prof, NULL);
    td_arena_release(&a);

    /* SelectSeries limit: the top series by total */
    {
        static const td_ploc locs[] = {{"main", "main", "main.go", 1, ""}};
        static const uint32_t fr[] = {0};
        static const td_pstack stacks[] = {{fr, 1}};
        static const td_plabel labels[] = {
            {"__name__", "process_cpu"},
            {"__period_type__", "cpu"},
            {"__period_unit__", "nanoseconds"},
            {"__profile_type__", "process_cpu:cpu:nanoseconds:cpu:nanoseconds"},
            {"__type__", "cpu"},
            {"__unit__", "nanoseconds"},
            {"service_name", "api"},
        };
        static const td_psample smp[] = {{.stack = 0, .value = 100}};
        td_pseries_in in = {labels, 7, smp, 1};
        td_pwrite w = {.tenant = TD_DEFAULT_TENANT,
                       .time_ns = 1000000LL * 1000000,
                       .locs = locs,
                       .nlocs = 1,
                       .stacks = stacks,
                       .nstacks = 1,
                       .series = &in,
                       .nseries = 1};
        td_err err;
        TD_ASSERT_OK(td_pstore_write(ps, &w, &err));
    }
#define SERIES_LIMIT_REQ(extra)                                                                    \
    "{" CPU                                                                                        \
    ",\"start\":\"999000\",\"end\":\"1002000\",\"step\":2,\"groupBy\":[\"service_name\"]" extra    \
    "}"
    TD_ASSERT_EQ_INT(q(&p, "SelectSeries", SERIES_LIMIT_REQ(""), NULL, &b), 200);
    TD_ASSERT_EQ_STR(b.data, "{\"series\":[{\"labels\":[{\"name\":\"service_name\",\"value\":"
                             "\"api\"}],\"points\":[{\"value\":100,\"timestamp\":\"1001000\"}]},"
                             "{\"labels\":[{\"name\":\"service_name\",\"value\":\"shop\"}],"
                             "\"points\":[{\"value\":10,\"timestamp\":\"1001000\"}]}]}");
    TD_ASSERT_EQ_INT(q(&p, "SelectSeries", SERIES_LIMIT_REQ(",\"limit\":\"1\""), NULL, &b), 200);
    TD_ASSERT_EQ_STR(b.data, "{\"series\":[{\"labels\":[{\"name\":\"service_name\",\"value\":"
                             "\"api\"}],\"points\":[{\"value\":100,\"timestamp\":\"1001000\"}]}]}");

    /* no store: unavailable */
    td__pyro none = {0};
    TD_ASSERT_EQ_INT(q(&none, "ProfileTypes", "{}", NULL, &b), 503);
    /* multitenancy without a tenant: unauthenticated */
    td__pyro mt = {.ps = ps, .multitenancy = true};
    TD_ASSERT_EQ_INT(q(&mt, "ProfileTypes", "{}", NULL, &b), 401);

    td_buf_release(&b);
    store_remove(ps);
}

/* Legacy routes read their parameters through a callback. */
typedef struct kv {
    const char *k, *v;
} kv;

static const char *kv_arg(void *cookie, const char *name)
{
    for (const kv *p = cookie; p->k; p++) {
        if (strcmp(p->k, name) == 0) {
            return p->v;
        }
    }
    return NULL;
}

static void test_legacy_render(void)
{
    td_pstore *ps = store_with_data();
    td__pyro p = {.ps = ps};
    td_buf b = TD_BUF_INIT;
    td__pyro_reply rp = {.body = &b};
    kv args[] = {{"query", "process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name=\"shop\"}"},
                 {"from", "999"},
                 {"until", "1000005"},
                 {NULL, NULL}};
    /* 3 and 7 digits are seconds: the data (1000 s) lies inside [999 s, 1000005 s] */
    td__pyro_render(&p, NULL, kv_arg, args, &rp);
    TD_ASSERT_EQ_INT(rp.status, 200);
    TD_CHECK(strstr(b.data, "{\"version\":1,\"flamebearer\":{\"names\":[\"total\",\"main\",\"c\","
                            "\"a\",\"b\"],\"levels\":[[0,10,0,0],[0,10,0,1],[0,8,5,3,0,2,2,2],"
                            "[5,3,3,4]],\"numTicks\":10,\"maxSelf\":5}") == b.data);
    TD_CHECK(strstr(b.data, "\"metadata\":{\"format\":\"single\",\"spyName\":\"\",\"sampleRate\":"
                            "1000000000,\"units\":\"samples\",\"name\":\"cpu\"}") != NULL);
    TD_CHECK(strstr(b.data, "\"groups\":null,\"heatmap\":null}") != NULL);
    kv noq[] = {{NULL, NULL}};
    td__pyro_render(&p, NULL, kv_arg, noq, &rp);
    TD_ASSERT_EQ_INT(rp.status, 400);
    TD_CHECK(strstr(b.data, "\\\"query\\\" is required") != NULL);
    kv notype[] = {{"query", "{service_name=\"shop\"}"}, {NULL, NULL}};
    td__pyro_render(&p, NULL, kv_arg, notype, &rp);
    TD_ASSERT_EQ_INT(rp.status, 400);
    TD_CHECK(strstr(b.data, "profile-type selection") != NULL);

    kv lv[] = {{"label", "__name__"}, {NULL, NULL}};
    td__pyro_label_values(&p, NULL, kv_arg, lv, &rp);
    TD_ASSERT_EQ_INT(rp.status, 200);
    TD_ASSERT_EQ_STR(b.data, "[\"memory:alloc_space:bytes:space:bytes\","
                             "\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\"]");
    kv lv2[] = {{"label", "service_name"}, {NULL, NULL}};
    td__pyro_label_values(&p, NULL, kv_arg, lv2, &rp);
    TD_ASSERT_EQ_INT(rp.status, 400);

    kv diff[] = {{"leftQuery", "process_cpu:cpu:nanoseconds:cpu:nanoseconds{}"},
                 {"leftFrom", "1000000000"},
                 {"leftUntil", "1000005000"},
                 {"rightQuery", "process_cpu:cpu:nanoseconds:cpu:nanoseconds{}"},
                 {"rightFrom", "1000010000"},
                 {"rightUntil", "1000020000"},
                 {NULL, NULL}};
    /* 10 digits: seconds, i.e. far from the data: both sides empty */
    td__pyro_render_diff(&p, NULL, kv_arg, diff, &rp);
    TD_ASSERT_EQ_INT(rp.status, 200);
    TD_CHECK(strstr(b.data, "\"format\":\"double\"") != NULL);
    diff[0].v = "memory:alloc_space:bytes:space:bytes{}";
    td__pyro_render_diff(&p, NULL, kv_arg, diff, &rp);
    TD_ASSERT_EQ_INT(rp.status, 400);
    td_buf_release(&b);
    store_remove(ps);
}

TEST_LIST = {
    {"protojson_decode", test_protojson_decode},
    {"protojson_encode", test_protojson_encode},
    {"connect_calls", test_connect_calls},
    {"connect_codes", test_connect_codes},
    {"flamegraph_contract_example", test_flamegraph_contract_example},
    {"flamegraph_diff", test_flamegraph_diff},
    {"flamegraph_dot", test_flamegraph_dot},
    {"series_steps", test_series_steps},
    {"querier_methods", test_querier_methods},
    {"legacy_render", test_legacy_render},
    {NULL, NULL},
};
