/*
 * traceql_fuzz.c - libFuzzer entry for the TraceQL parser and evaluator
 * (STYLE rule 12). With gcc it links replay_main.c and replays
 * tests/fuzz/corpus/traceql/ under ctest.
 *
 * Each input is parsed with a bounded arena (as a request would be). When it
 * parses, the target also checks properties that must hold for every query:
 *   - the canonical text parses again and prints identically (unless the added
 *     parentheses push it past the nesting limit, which is then the error);
 *   - evaluation over a fixed small trace (two services, nested spans, every
 *     attribute type, events, links, an error span) succeeds or fails with
 *     TD_INVALID, and every returned span index is in range;
 *   - hints and per-span attributes can be computed.
 * About one input in eight runs with an allocation failure injected (derived
 * from the input's hash, so a replay fails the same allocation): then only
 * TD_NOMEM may come back, and nothing may leak.
 */
#include "api/traceql/traceql.h"
#include "core/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the fixed trace, in static storage (nothing to free) ---- */

#define NSPANS 5

static td_otlp_span spans[NSPANS];
static td_traceql_span views[NSPANS];
static td_traceql_trace trace;
static td_otlp_resource res[2];
static td_otlp_scope scope;
static td_otlp_kv kv[32];
static td_otlp_kv *kvp[32];
static td_otlp_any val[40];
static td_otlp_any *arrp[4];
static td_otlp_array arr;
static td_otlp_event event;
static td_otlp_event *evp[1];
static td_otlp_link lk;
static td_otlp_link *lkp[1];
static td_otlp_status st_err;
static uint8_t ids[NSPANS][8];
static uint8_t tid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34};
static size_t nkv, nval;

static td_otlp_any *sval(const char *s)
{
    td_otlp_any *v = &val[nval++];
    opentelemetry__proto__common__v1__any_value__init(v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)s;
    return v;
}

static td_otlp_any *ival(int64_t i)
{
    td_otlp_any *v = &val[nval++];
    opentelemetry__proto__common__v1__any_value__init(v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
    return v;
}

static td_otlp_any *dval(double d)
{
    td_otlp_any *v = &val[nval++];
    opentelemetry__proto__common__v1__any_value__init(v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = d;
    return v;
}

static td_otlp_any *bval(bool b)
{
    td_otlp_any *v = &val[nval++];
    opentelemetry__proto__common__v1__any_value__init(v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = b;
    return v;
}

/* Append key=v to the kv pool; returns the address of the first of a run. */
static td_otlp_kv **add_kv(const char *key, td_otlp_any *v)
{
    td_otlp_kv *k = &kv[nkv];
    opentelemetry__proto__common__v1__key_value__init(k);
    k->key = (char *)key;
    k->value = v;
    kvp[nkv] = k;
    return &kvp[nkv++];
}

static void trace_init_once(void)
{
    static bool done;
    if (done) {
        return;
    }
    done = true;
    opentelemetry__proto__resource__v1__resource__init(&res[0]);
    opentelemetry__proto__resource__v1__resource__init(&res[1]);
    res[0].attributes = add_kv("service.name", sval("frontend"));
    add_kv("cloud.region", sval("us-east-1"));
    res[0].n_attributes = 2;
    res[1].attributes = add_kv("service.name", sval("api"));
    res[1].n_attributes = 1;
    opentelemetry__proto__common__v1__instrumentation_scope__init(&scope);
    scope.name = "lib";
    scope.version = "1.0";

    opentelemetry__proto__common__v1__array_value__init(&arr);
    arrp[0] = sval("a");
    arrp[1] = sval("b");
    arr.values = arrp;
    arr.n_values = 2;
    td_otlp_any *tags = &val[nval++];
    opentelemetry__proto__common__v1__any_value__init(tags);
    tags->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    tags->array_value = &arr;

    static const char *const names[NSPANS] = {"GET /", "call", "handle", "query", "render"};
    static const int parents[NSPANS] = {-1, 0, 1, 2, 0};
    static const int kinds[NSPANS] = {2, 3, 2, 3, 1};
    for (int i = 0; i < NSPANS; i++) {
        td_otlp_span *s = &spans[i];
        opentelemetry__proto__trace__v1__span__init(s);
        ids[i][7] = (uint8_t)(i + 1);
        s->trace_id = (ProtobufCBinaryData){16, tid};
        s->span_id = (ProtobufCBinaryData){8, ids[i]};
        if (parents[i] >= 0) {
            s->parent_span_id = (ProtobufCBinaryData){8, ids[parents[i]]};
        }
        s->name = (char *)names[i];
        s->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)kinds[i];
        s->start_time_unix_nano = 1700000000000000000ull + (uint64_t)i * 10000000ull;
        s->end_time_unix_nano = s->start_time_unix_nano + (uint64_t)(i + 1) * 100000000ull;
    }
    spans[0].attributes = add_kv("http.status_code", ival(200));
    add_kv("http.url", sval("http://x/"));
    add_kv("tags", tags);
    add_kv("ratio", dval(0.5));
    add_kv("cache_hit", bval(true));
    spans[0].n_attributes = 5;
    spans[2].attributes = add_kv("http.status_code", ival(500));
    add_kv("note", sval("a\nb"));
    spans[2].n_attributes = 2;
    spans[3].attributes = add_kv("db.system", sval("postgresql"));
    add_kv("http.status_code", sval("404"));
    spans[3].n_attributes = 2;
    opentelemetry__proto__trace__v1__status__init(&st_err);
    st_err.code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    st_err.message = "boom";
    spans[2].status = &st_err;
    opentelemetry__proto__trace__v1__span__event__init(&event);
    event.name = "exception";
    event.time_unix_nano = spans[2].start_time_unix_nano + 1000;
    event.attributes = add_kv("exception.message", sval("boom"));
    event.n_attributes = 1;
    evp[0] = &event;
    spans[2].events = evp;
    spans[2].n_events = 1;
    opentelemetry__proto__trace__v1__span__link__init(&lk);
    lk.trace_id = (ProtobufCBinaryData){16, tid};
    lk.span_id = (ProtobufCBinaryData){8, ids[0]};
    lk.attributes = add_kv("link.kind", sval("follows"));
    lk.n_attributes = 1;
    lkp[0] = &lk;
    spans[3].links = lkp;
    spans[3].n_links = 1;
    for (int i = 0; i < NSPANS; i++) {
        views[i] =
            (td_traceql_span){&spans[i], &res[i == 0 || i == 1 || i == 4 ? 0 : 1], &scope, -1};
    }
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_err err;
    TD_ASSERT(td_traceql_trace_init(&trace, views, NSPANS, &a, &err) == TD_OK);
    td_arena_release(&a); /* only scratch came from it */
}

/* FNV-1a over the input: picks which inputs get an injected allocation failure. */
static uint64_t input_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

static void exercise(const td_traceql_query *q, td_arena *a)
{
    td_err err;
    td_traceql_hint *h;
    size_t nh;
    td_status st = td_traceql_hints(q, a, &h, &nh, &err);
    TD_ASSERT(st == TD_OK || st == TD_NOMEM);
    td_traceql_eval *ev = NULL;
    st = td_traceql_eval_new(q, &ev, &err);
    TD_ASSERT(st == TD_OK || st == TD_NOMEM || st == TD_INVALID);
    if (st != TD_OK) {
        return;
    }
    for (int round = 0; round < 2; round++) { /* twice: scratch reuse */
        td_traceql_result r;
        st = td_traceql_eval_trace(ev, &trace, a, &r, &err);
        TD_ASSERT(st == TD_OK || st == TD_NOMEM || st == TD_INVALID);
        TD_ASSERT(st == TD_OK || err.code == st);
        for (size_t i = 0; st == TD_OK && i < r.nsets; i++) {
            TD_ASSERT(r.sets[i].matched > 0 && r.sets[i].matched <= NSPANS);
            for (size_t k = 0; k < r.sets[i].matched; k++) {
                uint32_t s = r.sets[i].spans[k];
                TD_ASSERT(s < NSPANS);
                td_traceql_kv *kv_out;
                size_t n;
                td_status as = td_traceql_span_attrs(q, &trace, s, a, &kv_out, &n, &err);
                TD_ASSERT(as == TD_OK || as == TD_NOMEM);
            }
        }
    }
    td_traceql_eval_free(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trace_init_once();
    uint64_t h = input_hash(data, size);
    bool inject = (h & 7) == 0;
    td_arena a;
    td_arena_init(&a, 16 * 1024, 16u * 1024 * 1024);
    td_err err;
    td_err_init(&err);
    if (inject) {
        td_mem_fail_after((long)(1 + (h >> 3) % 32));
    }
    td_traceql_query *q = NULL;
    td_status st = td_traceql_parse((const char *)data, size, &a, &q, &err);
    TD_ASSERT(st == TD_OK || st == TD_INVALID || st == TD_NOMEM);
    TD_ASSERT(st == TD_OK || (err.code == st && err.msg[0]));
    if (st == TD_OK) {
        exercise(q, &a);
    }
    bool injected = td_mem_fail_after(0);
    if (st == TD_OK && !injected) {
        /* the canonical form is a fixed point */
        td_buf c1 = TD_BUF_INIT, c2 = TD_BUF_INIT;
        td_traceql_format(q, &c1);
        td_arena b;
        td_arena_init(&b, 16 * 1024, 64u * 1024 * 1024);
        td_traceql_query *q2;
        td_status st2 = td_traceql_parse(c1.data, c1.len, &b, &q2, &err);
        if (st2 != TD_OK && c1.len <= TD_TRACEQL_MAX_QUERY && !strstr(err.msg, "too deeply")) {
            fprintf(stderr, "canonical form does not parse: %s\n  %s\n", c1.data, err.msg);
            abort();
        }
        if (st2 == TD_OK) {
            td_traceql_format(q2, &c2);
            if (strcmp(c1.data, c2.data) != 0) {
                fprintf(stderr, "canonical form is not stable:\n  %s\n  %s\n", c1.data, c2.data);
                abort();
            }
        }
        td_buf_release(&c1);
        td_buf_release(&c2);
        td_arena_release(&b);
    }
    td_arena_release(&a);
    return 0;
}
