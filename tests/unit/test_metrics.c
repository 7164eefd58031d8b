/*
 * test_metrics.c - TraceQL metrics (api/tempo_metrics.c): Tempo's parameter
 * parsing (every time format, step and since forms, defaults, alignment and
 * the 400 errors), the default step, and every metrics function evaluated
 * over hand-built traces against hand-computed series, with by() grouping,
 * quantiles, histograms, the series limit, and the JSON and protobuf
 * encodings decoded back.
 */
#include "api/json.h"
#include "api/tempo_metrics.h"
#include "core/mem.h"
#include "proto/proto.h"
#include "td_test.h"
#include "tempopb/tempo_metrics.pb-c.h"

#include <math.h>
#include <stdlib.h>

#define S (1000000000ull) /* one second in ns */

/* ------------------------------------------------------------------------ */
/* parameters                                                               */
/* ------------------------------------------------------------------------ */

static int64_t time_ok(const char *s)
{
    td_err err;
    td_err_init(&err);
    int64_t ns = -1;
    td_status st = td__metrics_parse_time("start", s, &ns, &err);
    if (st != TD_OK) {
        fprintf(stderr, "  %s: %s\n", s, err.msg);
    }
    return st == TD_OK ? ns : -1;
}

static void test_parse_time(void)
{
    /* seconds (<= 10 characters) */
    TD_ASSERT_EQ_INT(time_ok("1700000000"), 1700000000 * (int64_t)S);
    TD_ASSERT_EQ_INT(time_ok("0"), 0);
    TD_ASSERT_EQ_INT(time_ok("42"), 42 * (int64_t)S);
    /* nanoseconds (more than 10 characters) */
    TD_ASSERT_EQ_INT(time_ok("1700000000123456789"), 1700000000123456789LL);
    TD_ASSERT_EQ_INT(time_ok("17000000001"), 17000000001LL);
    /* fractional seconds, the fraction rounded to the millisecond */
    TD_ASSERT_EQ_INT(time_ok("1700000000.5"), 1700000000500000000LL);
    TD_ASSERT_EQ_INT(time_ok("1700000000.1236"), 1700000000124000000LL);
    TD_ASSERT_EQ_INT(time_ok("12.25"), 12250000000LL);
    /* RFC3339 with and without a fraction, Z or an offset */
    TD_ASSERT_EQ_INT(time_ok("2023-11-14T22:13:20Z"), 1700000000 * (int64_t)S);
    TD_ASSERT_EQ_INT(time_ok("2023-11-14T23:13:20.25+01:00"), 1700000000250000000LL);
    TD_ASSERT_EQ_INT(time_ok("2023-11-14T22:13:20.000000001Z"), 1700000000000000001LL);
    TD_ASSERT_EQ_INT(time_ok("2023-11-14T20:43:20-01:30"), 1700000000 * (int64_t)S);

    static const char *const bad[] = {"abc",   "",      "2023-11-14", "2023-11-14T22:13:20",
                                      "1.5.5", "12abc", "-5",         "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        td_err err;
        td_err_init(&err);
        int64_t ns;
        TD_ASSERT_EQ_INT(td__metrics_parse_time("end", bad[i], &ns, &err), TD_INVALID);
        TD_CHECK(strncmp(err.msg, "could not parse 'end' parameter: ", 33) == 0);
    }
    td_err err;
    td_err_init(&err);
    int64_t ns;
    td__metrics_parse_time("start", "abc", &ns, &err);
    TD_ASSERT_EQ_STR(err.msg,
                     "could not parse 'start' parameter: strconv.ParseInt: parsing \"abc\": "
                     "invalid syntax");
}

static void test_default_step(void)
{
    /* Tempo's DefaultQueryRangeStep: range / 240, rounded down to a granularity */
    TD_ASSERT_EQ_U64(td__metrics_default_step(0, 3600 * S), 15 * S);
    TD_ASSERT_EQ_U64(td__metrics_default_step(0, 6 * 3600 * S), 60 * S);
    TD_ASSERT_EQ_U64(td__metrics_default_step(0, 24 * 3600 * S), 300 * S);
    TD_ASSERT_EQ_U64(td__metrics_default_step(0, 600 * S), 2 * S);
    TD_ASSERT_EQ_U64(td__metrics_default_step(0, 7 * 86400 * S), 2400 * S);
    TD_ASSERT_EQ_U64(td__metrics_default_step(0, 60 * S), S);
    TD_ASSERT_EQ_U64(td__metrics_default_step(0, 30 * S), 100000000ull);
    TD_ASSERT_EQ_U64(td__metrics_default_step(0, 5 * S), 50000000ull);
    TD_ASSERT_EQ_U64(td__metrics_default_step(5, 5 + 120 * 60 * S), 30 * S);
}

#define NOW (1700000007ull * S + 300000000ull) /* 1700000007.3 */

static td_status parse(const td__metrics_args *in, bool instant, td__metrics_params *p, td_err *err)
{
    td_err_init(err);
    return td__metrics_parse_http(in, instant, (int64_t)NOW, p, err);
}

static void expect_parse_error(const td__metrics_args *in, bool instant, const char *msg)
{
    td__metrics_params p;
    td_err err;
    TD_ASSERT_EQ_INT(parse(in, instant, &p, &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, msg);
}

static void test_parse_range(void)
{
    td__metrics_params p;
    td_err err;
    /* nothing given: the last hour before now, step 15s, aligned like Tempo's AlignRequest */
    td__metrics_args in = {.q = "{} | rate()"};
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_STR(p.q, "{} | rate()");
    TD_ASSERT_EQ_U64(p.step_ns, 15 * S);
    TD_ASSERT_EQ_U64(p.start_ns, 1699996380ull * S); /* floor15(now - 1h) - 15s */
    TD_ASSERT_EQ_U64(p.end_ns, 1699999995ull * S);   /* ceil15(now) > now: floor15(now) */
    TD_CHECK(!p.instant && !p.instant_response);

    /* `query` is an alias; q wins */
    in = (td__metrics_args){.query = "{} | count_over_time()"};
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_STR(p.q, "{} | count_over_time()");
    in.q = "{} | rate()";
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_STR(p.q, "{} | rate()");

    /* Grafana: start/end in seconds, step in seconds */
    in = (td__metrics_args){.q = "x", .start = "1699990000", .end = "1699993600", .step = "60"};
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_U64(p.step_ns, 60 * S);
    TD_ASSERT_EQ_U64(p.start_ns, 1699989960ull * S - 60 * S); /* floor60 - 60 */
    TD_ASSERT_EQ_U64(p.end_ns, 1699993620ull * S);            /* ceil60 */
    /* step as a Go duration, a float, nanosecond start/end */
    in = (td__metrics_args){
        .q = "x", .start = "1699990000000000000", .end = "1699993600000000000", .step = "1m30s"};
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_U64(p.step_ns, 90 * S);
    in.step = "2.5";
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_U64(p.step_ns, 2500000000ull);
    /* no step: derived from the range (1h -> 15s) */
    in.step = NULL;
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_U64(p.step_ns, 15 * S);
    /* since: start = end - since */
    in = (td__metrics_args){.q = "x", .since = "15m"};
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_U64(p.step_ns, 3 * S);              /* 15m / 240 = 3.75s -> 3s */
    TD_ASSERT_EQ_U64(p.start_ns, 1699999104ull * S); /* floor3(now - 15m) - 3s */
    in.since = "1h30m";
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_U64(p.step_ns, 15 * S); /* 90m / 240 = 22.5s -> 15s */
    /* an end in the future is pulled back to now */
    in = (td__metrics_args){.q = "x", .start = "1699999000", .end = "1700009000", .step = "10"};
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_U64(p.end_ns, 1700000000ull * S);
    TD_ASSERT_EQ_U64(p.start_ns, 1699998990ull * S);
    /* exemplars and maxSeries are read (unparsable ones ignored, like Tempo) */
    in = (td__metrics_args){.q = "x", .exemplars = "5", .max_series = "7"};
    TD_ASSERT_OK(parse(&in, false, &p, &err));
    TD_ASSERT_EQ_INT(p.exemplars, 5);
    TD_ASSERT_EQ_INT(p.max_series, 7);

    /* the 400s */
    in = (td__metrics_args){.q = "x", .start = "1699993600", .end = "1699990000"};
    expect_parse_error(&in, false, "end must be greater than start");
    in.end = in.start;
    expect_parse_error(&in, false, "end must be greater than start");
    in = (td__metrics_args){.q = "x", .start = "1699990000", .end = "1699993600", .step = "abc"};
    expect_parse_error(&in, false, "cannot parse \"abc\" to a valid duration");
    in.step = "-5";
    expect_parse_error(&in, false, "cannot parse \"-5\": step must be positive");
    in.step = "0";
    expect_parse_error(&in, false,
                       "step of 0s is too small, minimum step for given range is 360ms");
    in.step = "100ms"; /* 36000 intervals */
    expect_parse_error(&in, false,
                       "step of 100ms is too small, minimum step for given range is 360ms");
    in = (td__metrics_args){.q = "x", .start = "1699800000", .end = "1699990000"};
    expect_parse_error(&in, false,
                       "metrics query time range exceeds the maximum allowed duration of 24h0m0s");
    in = (td__metrics_args){.q = "x", .start = "yesterday"};
    expect_parse_error(&in, false,
                       "could not parse 'start' parameter: strconv.ParseInt: parsing "
                       "\"yesterday\": invalid syntax");
    in = (td__metrics_args){.q = "x", .since = "5 minutes"};
    expect_parse_error(&in, false,
                       "could not parse 'since' parameter: not a valid duration string: "
                       "\"5 minutes\"");
    in = (td__metrics_args){.q = "x", .start = "1700000100", .end = "1700000200"};
    expect_parse_error(&in, false, "query window falls entirely within query_end_cutoff");
}

static void test_parse_instant(void)
{
    td__metrics_params p;
    td_err err;
    td__metrics_args in = {.q = "{} | rate()", .start = "1699990000", .end = "1699993600"};
    TD_ASSERT_OK(parse(&in, true, &p, &err));
    TD_CHECK(p.instant && p.instant_response);
    TD_ASSERT_EQ_U64(p.start_ns, 1699990000ull * S); /* not aligned */
    TD_ASSERT_EQ_U64(p.end_ns, 1699993600ull * S);
    TD_ASSERT_EQ_U64(p.step_ns, 3600 * S);
    /* default: the last hour; the end is moved back by whole seconds to now */
    in = (td__metrics_args){.q = "x", .end = "1700000010.5"};
    TD_ASSERT_OK(parse(&in, true, &p, &err));
    TD_ASSERT_EQ_U64(p.end_ns, 1700000006ull * S + 500000000ull); /* 10.5 - ceil(3.2) s */
    TD_ASSERT_EQ_U64(p.start_ns, NOW - 3600 * S);
    TD_ASSERT_EQ_U64(p.step_ns, p.end_ns - p.start_ns);
    in = (td__metrics_args){.q = "x", .start = "1699993600", .end = "1699990000"};
    expect_parse_error(&in, true, "end must be greater than start");
}

/* ------------------------------------------------------------------------ */
/* evaluation over hand-built traces                                        */
/* ------------------------------------------------------------------------ */

typedef struct tspan {
    int svc;            /* 0 = "alpha", 1 = "beta" */
    uint64_t start_s10; /* start time in tenths of a second after T0 */
    uint64_t dur_ns;
    int status;
    int64_t n; /* span attribute n (int) when >= 0 */
} tspan;

#define MAXS 16
#define T0 (1000 * S)

typedef struct built {
    td_otlp_span sp[MAXS];
    td_otlp_status stt[MAXS];
    td_otlp_kv kv[MAXS];
    td_otlp_kv *kvp[MAXS];
    td_otlp_any av[MAXS];
    uint8_t sid[MAXS][8];
    uint8_t tid[16];
    td_otlp_resource res[2];
    td_otlp_kv rkv[2];
    td_otlp_kv *rkvp[2];
    td_otlp_any rav[2];
    td_traceql_span ts[MAXS];
    td_traceql_trace t;
} built;

static void build(built *b, const tspan *sp, size_t n, uint8_t tid, td_arena *a)
{
    static const char *const svcs[] = {"alpha", "beta"};
    TD_ASSERT(n <= MAXS);
    memset(b, 0, sizeof(*b));
    memset(b->tid, tid, 16);
    for (int r = 0; r < 2; r++) {
        opentelemetry__proto__resource__v1__resource__init(&b->res[r]);
        opentelemetry__proto__common__v1__key_value__init(&b->rkv[r]);
        opentelemetry__proto__common__v1__any_value__init(&b->rav[r]);
        b->rav[r].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        b->rav[r].string_value = (char *)svcs[r];
        b->rkv[r].key = (char *)"service.name";
        b->rkv[r].value = &b->rav[r];
        b->rkvp[r] = &b->rkv[r];
        b->res[r].attributes = &b->rkvp[r];
        b->res[r].n_attributes = 1;
    }
    for (size_t i = 0; i < n; i++) {
        td_otlp_span *s = &b->sp[i];
        opentelemetry__proto__trace__v1__span__init(s);
        opentelemetry__proto__trace__v1__status__init(&b->stt[i]);
        memset(b->sid[i], 0, 8);
        b->sid[i][7] = (uint8_t)(i + 1);
        s->span_id = (ProtobufCBinaryData){8, b->sid[i]};
        s->trace_id = (ProtobufCBinaryData){16, b->tid};
        s->name = (char *)(i == 0 ? "root" : "child");
        s->start_time_unix_nano = T0 + sp[i].start_s10 * (S / 10);
        s->end_time_unix_nano = s->start_time_unix_nano + sp[i].dur_ns;
        b->stt[i].code = sp[i].status;
        s->status = &b->stt[i];
        if (sp[i].n >= 0) {
            opentelemetry__proto__common__v1__key_value__init(&b->kv[i]);
            opentelemetry__proto__common__v1__any_value__init(&b->av[i]);
            b->av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
            b->av[i].int_value = sp[i].n;
            b->kv[i].key = (char *)"n";
            b->kv[i].value = &b->av[i];
            b->kvp[i] = &b->kv[i];
            s->attributes = &b->kvp[i];
            s->n_attributes = 1;
        }
        b->ts[i].span = s;
        b->ts[i].resource = &b->res[sp[i].svc];
        b->ts[i].parent = -1;
    }
    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_traceql_trace_init(&b->t, b->ts, n, a, &err), TD_OK);
}

/*
 * The corpus, window (1000 s, 1060 s] with a 10 s step = 6 intervals:
 *   trace 1: alpha 1001 s (100 ms), alpha 1005 s (300 ms, n=3), alpha 1010 s (1 s, on the
 *            boundary: interval 0), alpha 1015 s (2 ms, error)
 *   trace 2: beta 1000 s (on the start: outside), beta 1031 s (50 ms, n=10),
 *            beta 1060 s (4 ms, on the end: interval 5), beta 1061 s (outside)
 */
static const tspan trace1[] = {{0, 10, 100000000, 0, -1},
                               {0, 50, 300000000, 0, 3},
                               {0, 100, 1000000000, 1, -1},
                               {0, 150, 2000000, 2, -1}};
static const tspan trace2[] = {{1, 0, 7000000, 0, -1},
                               {1, 310, 50000000, 0, 10},
                               {1, 600, 4000000, 0, -1},
                               {1, 610, 9000000, 0, -1}};

static td__metrics_params range_params(const char *q)
{
    td__metrics_params p;
    memset(&p, 0, sizeof(p));
    p.q = q;
    p.start_ns = T0;
    p.end_ns = T0 + 60 * S;
    p.step_ns = 10 * S;
    return p;
}

static td__metrics_params instant_params(const char *q)
{
    td__metrics_params p = range_params(q);
    p.instant = p.instant_response = true;
    p.step_ns = 60 * S;
    return p;
}

/* Run p over the corpus (and extra traces) and decode the protobuf answer. */
static Tempopb__QueryRangeResponse *run_range(td__metrics_params p, const tspan *extra,
                                              size_t nextra)
{
    td_err err;
    td_err_init(&err);
    td__metrics *m;
    p.pb = true;
    TD_ASSERT_EQ_INT(td__metrics_new(&p, &m, &err), TD_OK);
    td_arena a;
    td_arena_init(&a, 4096, 0);
    built b;
    build(&b, trace1, 4, 1, &a);
    TD_ASSERT_EQ_INT(td__metrics_observe(m, &b.t, &a, &err), TD_OK);
    build(&b, trace2, 4, 2, &a);
    TD_ASSERT_EQ_INT(td__metrics_observe(m, &b.t, &a, &err), TD_OK);
    if (nextra) {
        build(&b, extra, nextra, 3, &a);
        TD_ASSERT_EQ_INT(td__metrics_observe(m, &b.t, &a, &err), TD_OK);
    }
    td_buf out = TD_BUF_INIT;
    TD_ASSERT_EQ_INT(td__metrics_encode(m, &out, &err), TD_OK);
    td__metrics_free(m);
    td_arena_release(&a);
    Tempopb__QueryRangeResponse *r =
        tempopb__query_range_response__unpack(NULL, out.len, (const uint8_t *)out.data);
    td_buf_release(&out);
    TD_CHECK(r != NULL);
    TD_CHECK(r->metrics != NULL);
    return r;
}

/* The series' samples as "v@ts_s,v@ts_s" (%g values, timestamps in seconds). */
static void samples_text(const Tempopb__TimeSeries *ts, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ts->n_samples && off < cap; i++) {
        off += (size_t)snprintf(buf + off, cap - off, "%s%.10g@%lld", i ? "," : "",
                                ts->samples[i]->value,
                                (long long)(ts->samples[i]->timestamp_ms / 1000));
    }
}

/* Labels as "k=v,k=v" (strings plain, ints as i:N, doubles as d:%g). */
static void labels_text(Opentelemetry__Proto__Common__V1__KeyValue **kv, size_t n, char *buf,
                        size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < cap; i++) {
        const td_otlp_any *v = kv[i]->value;
        const char *sep = i ? "," : "";
        switch (v->value_case) {
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
            off +=
                (size_t)snprintf(buf + off, cap - off, "%s%s=%s", sep, kv[i]->key, v->string_value);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
            off += (size_t)snprintf(buf + off, cap - off, "%s%s=i:%lld", sep, kv[i]->key,
                                    (long long)v->int_value);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
            off += (size_t)snprintf(buf + off, cap - off, "%s%s=d:%.10g", sep, kv[i]->key,
                                    v->double_value);
            break;
        default:
            off += (size_t)snprintf(buf + off, cap - off, "%s%s=?", sep, kv[i]->key);
            break;
        }
    }
}

static void expect_series(const Tempopb__QueryRangeResponse *r, size_t i, const char *labels,
                          const char *samples)
{
    char buf[1024];
    TD_CHECK(i < r->n_series);
    labels_text(r->series[i]->labels, r->series[i]->n_labels, buf, sizeof(buf));
    TD_ASSERT_EQ_STR(buf, labels);
    samples_text(r->series[i], buf, sizeof(buf));
    TD_ASSERT_EQ_STR(buf, samples);
}

/* timestamps of the 6 intervals: 1010 ... 1060 s */
static void test_count_and_rate(void)
{
    Tempopb__QueryRangeResponse *r =
        run_range(range_params("{} | count_over_time() by (resource.service.name)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 2);
    expect_series(r, 0, "resource.service.name=alpha", "3@1010,1@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 1, "resource.service.name=beta", "0@1010,0@1020,0@1030,1@1040,0@1050,1@1060");
    TD_ASSERT_EQ_INT(r->status, TEMPOPB__PARTIAL_STATUS__COMPLETE);
    tempopb__query_range_response__free_unpacked(r, NULL);

    r = run_range(range_params("{} | rate()"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 1);
    expect_series(r, 0, "__name__=rate", "0.3@1010,0.1@1020,0@1030,0.1@1040,0@1050,0.1@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* the spanset filter in front of the metrics function */
    r = run_range(range_params("{ status = error } | count_over_time()"), NULL, 0);
    expect_series(r, 0, "__name__=count_over_time", "0@1010,1@1020,0@1030,0@1040,0@1050,0@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* nothing matches: the ungrouped series is still there, all zero */
    r = run_range(range_params("{ name = \"nope\" } | rate()"), NULL, 0);
    expect_series(r, 0, "__name__=rate", "0@1010,0@1020,0@1030,0@1040,0@1050,0@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);
    /* ... but a grouped query has no series */
    r = run_range(range_params("{ name = \"nope\" } | rate() by (name)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 0);
    tempopb__query_range_response__free_unpacked(r, NULL);
}

static void test_over_time(void)
{
    Tempopb__QueryRangeResponse *r =
        run_range(range_params("{} | min_over_time(duration) by (resource.service.name)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 2);
    expect_series(r, 0, "resource.service.name=alpha", "0.1@1010,0.002@1020");
    expect_series(r, 1, "resource.service.name=beta", "0.05@1040,0.004@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);

    r = run_range(range_params("{} | max_over_time(duration) by (resource.service.name)"), NULL, 0);
    expect_series(r, 0, "resource.service.name=alpha", "1@1010,0.002@1020");
    expect_series(r, 1, "resource.service.name=beta", "0.05@1040,0.004@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);

    r = run_range(range_params("{} | avg_over_time(duration)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 1);
    expect_series(r, 0, "__name__=avg_over_time",
                  "0.4666666667@1010,0.002@1020,0.05@1040,0.004@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* a numeric attribute: only spans that have it count */
    r = run_range(range_params("{} | sum_over_time(span.n)"), NULL, 0);
    expect_series(r, 0, "__name__=sum_over_time", "3@1010,10@1040");
    tempopb__query_range_response__free_unpacked(r, NULL);
    r = run_range(range_params("{} | max_over_time(.n) by (name)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 1);
    expect_series(r, 0, "name=child", "3@1010,10@1040");
    tempopb__query_range_response__free_unpacked(r, NULL);
}

static void test_by_grouping(void)
{
    /* int values sort before strings, and as text ("10" < "3"); all-missing = "nil" */
    Tempopb__QueryRangeResponse *r =
        run_range(range_params("{} | count_over_time() by (span.n)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 3);
    expect_series(r, 0, "span.n=i:10", "0@1010,0@1020,0@1030,1@1040,0@1050,0@1060");
    expect_series(r, 1, "span.n=i:3", "1@1010,0@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 2, "span.n=nil", "2@1010,1@1020,0@1030,0@1040,0@1050,1@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* two fields: missing ones are left out of that series' labels */
    r = run_range(range_params("{} | count_over_time() by (resource.service.name, .n)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 4);
    expect_series(r, 0, "resource.service.name=alpha", "2@1010,1@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 1, "resource.service.name=beta", "0@1010,0@1020,0@1030,0@1040,0@1050,1@1060");
    expect_series(r, 2, "resource.service.name=alpha,.n=i:3",
                  "1@1010,0@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 3, "resource.service.name=beta,.n=i:10",
                  "0@1010,0@1020,0@1030,1@1040,0@1050,0@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* intrinsics: status as its name */
    r = run_range(range_params("{} | count_over_time() by (status)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 3);
    expect_series(r, 0, "status=error", "0@1010,1@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 1, "status=ok", "1@1010,0@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 2, "status=unset", "2@1010,0@1020,0@1030,1@1040,0@1050,1@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);
}

static void test_quantile(void)
{
    /*
     * Power-of-two buckets in seconds: 100 ms -> 2^27 ns, 300 ms -> 2^29, 1 s -> 2^30,
     * 2 ms -> 2^21, 50 ms -> 2^26, 4 ms -> 2^22. p50 of 3 spans = the 2nd one's bucket,
     * p99 = the 3rd; empty intervals are 0.
     */
    Tempopb__QueryRangeResponse *r =
        run_range(range_params("{} | quantile_over_time(duration, .5, .99)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 2);
    expect_series(r, 0, "p=d:0.5",
                  "0.536870912@1010,0.002097152@1020,0@1030,0.067108864@1040,0@1050,"
                  "0.004194304@1060");
    expect_series(r, 1, "p=d:0.99",
                  "1.073741824@1010,0.002097152@1020,0@1030,0.067108864@1040,0@1050,"
                  "0.004194304@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* interpolation: one span in the 2^30 bucket and three in 2^31, interval 3 (1030, 1040] */
    static const tspan extra[] = {{0, 320, 1000000000, 0, -1},
                                  {0, 330, 1500000000, 0, -1},
                                  {0, 340, 1500000000, 0, -1},
                                  {0, 335, 2000000000, 0, -1}};
    r = run_range(range_params("{ resource.service.name = \"alpha\" } | "
                               "quantile_over_time(duration, 0.5) by (resource.service.name)"),
                  extra, 4);
    TD_ASSERT_EQ_INT(r->n_series, 1);
    char buf[64];
    labels_text(r->series[0]->labels, r->series[0]->n_labels, buf, sizeof(buf));
    TD_ASSERT_EQ_STR(buf, "resource.service.name=alpha,p=d:0.5");
    TD_ASSERT_EQ_INT(r->series[0]->n_samples, 6);
    /* 4 samples, p50 -> 2 samples: 1 from the first bucket, then 1/3 into the next */
    double want = pow(2, log2(1.073741824) + (log2(2.147483648) - log2(1.073741824)) / 3);
    TD_CHECK(fabs(r->series[0]->samples[3]->value - want) < 1e-12);
    TD_CHECK(fabs(r->series[0]->samples[0]->value - 0.536870912) < 1e-12);
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* integer attributes bucket by value; values < 2 and non-integers are dropped */
    r = run_range(range_params("{} | quantile_over_time(span.n, 1)"), NULL, 0);
    expect_series(r, 0, "p=d:1", "4@1010,0@1020,0@1030,16@1040,0@1050,0@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);
}

static void test_histogram(void)
{
    Tempopb__QueryRangeResponse *r = run_range(
        range_params("{} | histogram_over_time(duration) by (resource.service.name)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 6);
    expect_series(r, 0, "resource.service.name=alpha,__bucket=d:0.002097152",
                  "0@1010,1@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 1, "resource.service.name=alpha,__bucket=d:0.134217728",
                  "1@1010,0@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 2, "resource.service.name=alpha,__bucket=d:0.536870912",
                  "1@1010,0@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 3, "resource.service.name=alpha,__bucket=d:1.073741824",
                  "1@1010,0@1020,0@1030,0@1040,0@1050,0@1060");
    expect_series(r, 4, "resource.service.name=beta,__bucket=d:0.004194304",
                  "0@1010,0@1020,0@1030,0@1040,0@1050,1@1060");
    expect_series(r, 5, "resource.service.name=beta,__bucket=d:0.067108864",
                  "0@1010,0@1020,0@1030,1@1040,0@1050,0@1060");
    tempopb__query_range_response__free_unpacked(r, NULL);
}

static void test_series_limit(void)
{
    td__metrics_params p = range_params("{} | count_over_time() by (resource.service.name)");
    p.max_series = 1;
    Tempopb__QueryRangeResponse *r = run_range(p, NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 1);
    TD_ASSERT_EQ_INT(r->status, TEMPOPB__PARTIAL_STATUS__PARTIAL);
    TD_ASSERT_EQ_STR(r->message,
                     "Response exceeds maximum series limit of 1, a partial response is "
                     "returned. Warning: the accuracy of each individual value is not "
                     "guaranteed.");
    tempopb__query_range_response__free_unpacked(r, NULL);
}

/* The JSON (or protobuf) body of p over the corpus. */
static void run_body(td__metrics_params p, td_buf *out)
{
    td_err err;
    td_err_init(&err);
    td__metrics *m;
    TD_ASSERT_EQ_INT(td__metrics_new(&p, &m, &err), TD_OK);
    td_arena a;
    td_arena_init(&a, 4096, 0);
    built b;
    build(&b, trace1, 4, 1, &a);
    TD_ASSERT_EQ_INT(td__metrics_observe(m, &b.t, &a, &err), TD_OK);
    build(&b, trace2, 4, 2, &a);
    TD_ASSERT_EQ_INT(td__metrics_observe(m, &b.t, &a, &err), TD_OK);
    td__metrics_add_inspected(m, 2, 1234);
    TD_ASSERT_EQ_INT(td__metrics_encode(m, out, &err), TD_OK);
    td__metrics_free(m);
    td_arena_release(&a);
}

static void test_json(void)
{
    td_buf out = TD_BUF_INIT;
    run_body(range_params("{ status = error } | count_over_time() by (resource.service.name)"),
             &out);
    TD_ASSERT_EQ_STR(
        out.data,
        "{\"series\":[{\"labels\":[{\"key\":\"resource.service.name\",\"value\":{\"stringValue\":"
        "\"alpha\"}}],\"samples\":[{\"timestampMs\":\"1010000\"},{\"timestampMs\":\"1020000\","
        "\"value\":1},{\"timestampMs\":\"1030000\"},{\"timestampMs\":\"1040000\"},"
        "{\"timestampMs\":\"1050000\"},{\"timestampMs\":\"1060000\"}],"
        /* the error span's trace as exemplar; a count's exemplar shows the sample value */
        "\"exemplars\":[{\"labels\":[{\"key\":\"trace:id\",\"value\":{\"stringValue\":"
        "\"01010101010101010101010101010101\"}},{\"key\":\"resource.service.name\",\"value\":"
        "{\"stringValue\":\"alpha\"}}],\"value\":1,\"timestampMs\":\"1015000\"}]}],"
        "\"metrics\":{\"inspectedTraces\":2,\"inspectedBytes\":\"1234\",\"completedJobs\":1,"
        "\"totalJobs\":1}}");
    td_buf_reset(&out);
    td__metrics_params px = range_params("{} | max_over_time(duration)");
    px.exemplars = 1; /* one exemplar: the first span of the first trace */
    run_body(px, &out);
    TD_ASSERT_EQ_STR(out.data,
                     "{\"series\":[{\"labels\":[{\"key\":\"__name__\",\"value\":{\"stringValue\":"
                     "\"max_over_time\"}}],\"samples\":[{\"timestampMs\":\"1010000\",\"value\":1},"
                     "{\"timestampMs\":\"1020000\",\"value\":0.002},{\"timestampMs\":\"1040000\","
                     "\"value\":0.05},{\"timestampMs\":\"1060000\",\"value\":0.004}],"
                     "\"exemplars\":[{\"labels\":[{\"key\":\"trace:id\",\"value\":"
                     "{\"stringValue\":\"01010101010101010101010101010101\"}}],\"value\":0.1,"
                     "\"timestampMs\":\"1001000\"}]}],"
                     "\"metrics\":{\"inspectedTraces\":2,\"inspectedBytes\":\"1234\","
                     "\"completedJobs\":1,\"totalJobs\":1}}");
    /* quantile and bucket labels are doubles */
    td_buf_reset(&out);
    run_body(instant_params("{ status = error } | quantile_over_time(duration, 0.9)"), &out);
    TD_ASSERT_EQ_STR(out.data,
                     "{\"series\":[{\"labels\":[{\"key\":\"p\",\"value\":{\"doubleValue\":0.9}}],"
                     "\"value\":0.002097152}],\"metrics\":{\"inspectedTraces\":2,"
                     "\"inspectedBytes\":\"1234\",\"completedJobs\":1,\"totalJobs\":1}}");
    /* no series: Tempo's range answer keeps an empty list, its instant answer has none */
    td_buf_reset(&out);
    run_body(range_params("{ name = \"x\" } | rate() by (name)"), &out);
    TD_ASSERT_EQ_STR(out.data,
                     "{\"series\":[],\"metrics\":{\"inspectedTraces\":2,\"inspectedBytes\":"
                     "\"1234\",\"completedJobs\":1,\"totalJobs\":1}}");
    td_buf_reset(&out);
    run_body(instant_params("{ name = \"x\" } | rate() by (name)"), &out);
    TD_ASSERT_EQ_STR(out.data, "{\"metrics\":{\"inspectedTraces\":2,\"inspectedBytes\":\"1234\","
                               "\"completedJobs\":1,\"totalJobs\":1}}");
    /* PARTIAL: status and message */
    td_buf_reset(&out);
    td__metrics_params p = range_params("{} | rate() by (name)");
    p.max_series = 1;
    run_body(p, &out);
    TD_CHECK(strstr(out.data, "\"status\":\"PARTIAL\",\"message\":\"Response exceeds maximum "
                              "series limit of 1") != NULL);
    td_buf_release(&out);
}

static void test_instant(void)
{
    td_buf out = TD_BUF_INIT;
    td__metrics_params p = instant_params("{} | count_over_time() by (resource.service.name)");
    p.pb = true;
    run_body(p, &out);
    Tempopb__QueryInstantResponse *r =
        tempopb__query_instant_response__unpack(NULL, out.len, (const uint8_t *)out.data);
    TD_CHECK(r != NULL);
    /* [1000 s, 1060 s]: both ends included, 1061 s not */
    TD_ASSERT_EQ_INT(r->n_series, 2);
    char buf[128];
    labels_text(r->series[0]->labels, r->series[0]->n_labels, buf, sizeof(buf));
    TD_ASSERT_EQ_STR(buf, "resource.service.name=alpha");
    TD_CHECK(r->series[0]->value == 4);
    labels_text(r->series[1]->labels, r->series[1]->n_labels, buf, sizeof(buf));
    TD_ASSERT_EQ_STR(buf, "resource.service.name=beta");
    TD_CHECK(r->series[1]->value == 3);
    TD_CHECK(r->metrics && r->metrics->inspectedtraces == 2 && r->metrics->inspectedbytes == 1234);
    tempopb__query_instant_response__free_unpacked(r, NULL);

    /* rate over an instant window: count / window seconds */
    td_buf_reset(&out);
    run_body(instant_params("{} | rate()"), &out);
    td_buf want = TD_BUF_INIT;
    td_buf_addstr(&want, "{\"series\":[{\"labels\":[{\"key\":\"__name__\",\"value\":"
                         "{\"stringValue\":\"rate\"}}],\"value\":");
    td_json_append_double(&want, 7 * (1.0 / 60)); /* 7 spans, 60 s: Tempo's count * (1/step) */
    td_buf_addstr(&want, "}],\"metrics\":{\"inspectedTraces\":2,\"inspectedBytes\":\"1234\","
                         "\"completedJobs\":1,\"totalJobs\":1}}");
    TD_ASSERT_EQ_STR(out.data, want.data);
    td_buf_release(&want);
    td_buf_release(&out);

    /* a range response over one interval (gRPC QueryRangeRequest.instant) */
    p = instant_params("{} | rate()");
    p.instant_response = false;
    Tempopb__QueryRangeResponse *rr = run_range(p, NULL, 0);
    expect_series(rr, 0, "__name__=rate", "0.1166666667@1060");
    tempopb__query_range_response__free_unpacked(rr, NULL);
}

static void test_exemplars(void)
{
    /*
     * One span per trace (the first one counted): trace 1 -> 1001 s (100 ms), trace 2 ->
     * 1031 s (50 ms). Quantiles over everything: p50 = 0.067108864, p99 = 1.073741824, so
     * both exemplars belong to the p50 series (closest value).
     */
    Tempopb__QueryRangeResponse *r =
        run_range(range_params("{} | quantile_over_time(duration, .5, .99)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 2);
    TD_ASSERT_EQ_INT(r->series[0]->n_exemplars, 2);
    TD_ASSERT_EQ_INT(r->series[1]->n_exemplars, 0);
    const Tempopb__Exemplar *e = r->series[0]->exemplars[0];
    TD_CHECK(e->value == 0.1 && e->timestamp_ms == 1001000);
    TD_ASSERT_EQ_INT(e->n_labels, 1);
    TD_ASSERT_EQ_STR(e->labels[0]->key, "trace:id");
    TD_ASSERT_EQ_STR(e->labels[0]->value->string_value, "01010101010101010101010101010101");
    e = r->series[0]->exemplars[1];
    TD_CHECK(e->value == 0.05 && e->timestamp_ms == 1031000);
    TD_ASSERT_EQ_STR(e->labels[0]->value->string_value, "02020202020202020202020202020202");
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* counts: the exemplar carries its interval's value; by() values join trace:id */
    r = run_range(range_params("{} | rate() by (resource.service.name)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 2);
    TD_ASSERT_EQ_INT(r->series[0]->n_exemplars, 1);
    e = r->series[0]->exemplars[0];
    TD_CHECK(fabs(e->value - 0.3) < 1e-12 && e->timestamp_ms == 1001000);
    TD_ASSERT_EQ_INT(e->n_labels, 2);
    TD_ASSERT_EQ_STR(e->labels[1]->key, "resource.service.name");
    TD_ASSERT_EQ_STR(e->labels[1]->value->string_value, "alpha");
    TD_ASSERT_EQ_INT(r->series[1]->n_exemplars, 1);
    TD_CHECK(fabs(r->series[1]->exemplars[0]->value - 0.1) < 1e-12);
    tempopb__query_range_response__free_unpacked(r, NULL);

    /* the with() hint turns them off; so does the exemplars limit of the request */
    r = run_range(range_params("{} | rate() with(exemplars=false)"), NULL, 0);
    TD_ASSERT_EQ_INT(r->n_series, 1);
    TD_ASSERT_EQ_INT(r->series[0]->n_exemplars, 0);
    tempopb__query_range_response__free_unpacked(r, NULL);
    td__metrics_params p = range_params("{} | rate()");
    p.exemplars = 1;
    r = run_range(p, NULL, 0);
    TD_ASSERT_EQ_INT(r->series[0]->n_exemplars, 1);
    tempopb__query_range_response__free_unpacked(r, NULL);
    /* instant queries have none */
    p = instant_params("{} | rate()");
    p.instant_response = false;
    r = run_range(p, NULL, 0);
    TD_ASSERT_EQ_INT(r->series[0]->n_exemplars, 0);
    tempopb__query_range_response__free_unpacked(r, NULL);
}

static void expect_new_error(const char *q, const char *msg)
{
    td__metrics_params p = range_params(q);
    td__metrics *m = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td__metrics_new(&p, &m, &err), TD_INVALID);
    TD_CHECK(m == NULL);
    if (strncmp(err.msg, msg, strlen(msg)) != 0) {
        TD_ASSERT_EQ_STR(err.msg, msg);
    }
}

static void test_query_errors(void)
{
    expect_new_error("{ status = error }", "invalid TraceQL query: not a metrics query");
    expect_new_error("", "invalid TraceQL query: empty query");
    expect_new_error("{ status = } | rate()", "invalid TraceQL query: parse error at line 1, col");
    expect_new_error("{} | quantile_over_time(duration, 1.5)",
                     "invalid TraceQL query: quantile must be between 0 and 1: 1.5");
    expect_new_error("{} | rate() by (.a, .b, .c, .d, .e, .f)",
                     "invalid TraceQL query: unsupported: metrics group by 6 values");
    expect_new_error("{} | histogram_over_time(duration) by (.a, .b, .c, .d, .e)",
                     "invalid TraceQL query: unsupported: metrics group by 5 values");
    expect_new_error("{} | compare({status = error})", "invalid TraceQL query: unsupported");
}

TEST_LIST = {
    {"parse_time", test_parse_time},
    {"default_step", test_default_step},
    {"parse_range", test_parse_range},
    {"parse_instant", test_parse_instant},
    {"count_and_rate", test_count_and_rate},
    {"over_time", test_over_time},
    {"by_grouping", test_by_grouping},
    {"quantile", test_quantile},
    {"histogram", test_histogram},
    {"series_limit", test_series_limit},
    {"json", test_json},
    {"instant", test_instant},
    {"exemplars", test_exemplars},
    {"query_errors", test_query_errors},
    {NULL, NULL},
};
