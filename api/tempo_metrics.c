/*
 * tempo_metrics.c - TraceQL metrics: /api/metrics/query_range and
 * /api/metrics/query (API-CONTRACT §3.8), shared with the gRPC methods.
 *
 * Tempo evaluates metrics in three layers (queriers, then a sum over jobs, then
 * a final combiner); here everything happens in one pass over the candidate
 * traces of the window, so the layers collapse into one: the final values are
 * what Tempo's final layer would compute from one job. Series are kept in an
 * open-addressing table keyed by the encoded by() values (plus the histogram
 * bucket for histogram_over_time and quantile_over_time, which like Tempo are
 * counted per power-of-two bucket and turned into quantiles at the end).
 *
 * Memory: one arena per query holds the parsed query, the series labels and
 * the value arrays; it is bounded by the series and point limits, which turn a
 * too-large result into a PARTIAL answer instead of unbounded growth.
 */
#include "api/tempo_metrics.h"

#include "api/json.h"
#include "core/mem.h"

#include "opentelemetry/proto/common/v1/common.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_S 1000000000ull
#define DEFAULT_SINCE_NS (3600ull * NS_PER_S)

static const char *const fn_names[] = {
    "rate",          "count_over_time", "min_over_time",      "max_over_time",
    "avg_over_time", "sum_over_time",   "quantile_over_time", "histogram_over_time"};
static const char *const status_names[] = {"unset", "ok", "error"};
static const char *const kind_names[] = {"unspecified", "internal", "server",
                                         "client",      "producer", "consumer"};

static bool absent(const char *s)
{
    return !s || !*s;
}

/* ------------------------------------------------------------------------ */
/* parameters                                                               */
/* ------------------------------------------------------------------------ */

/* "2006-01-02T15:04:05[.999999999](Z|+07:00)" -> unix ns; false when malformed. */
static bool parse_rfc3339(const char *s, int64_t *ns)
{
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19) {
        return false;
    }
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 9) {
                frac = frac * 10 + (*p - '0');
            }
        }
        if (digits == 0) {
            return false;
        }
        for (; digits < 9; digits++) {
            frac *= 10;
        }
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59) {
            return false;
        }
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 59) {
        return false;
    }
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = h,
                    .tm_min = m,
                    .tm_sec = sec};
    int64_t secs = (int64_t)timegm(&tm) - off;
    if (secs < 0 || secs > INT64_MAX / (int64_t)NS_PER_S - 1) {
        return false;
    }
    *ns = secs * (int64_t)NS_PER_S + frac;
    return true;
}

td_status td__metrics_parse_time(const char *name, const char *s, int64_t *ns, td_err *err)
{
    char *e;
    if (strchr(s, '.')) {
        errno = 0;
        double t = strtod(s, &e);
        if (e != s && *e == '\0' && errno == 0 && isfinite(t)) {
            if (t < 0 || t >= 9.2e9) {
                return td_err_set(err, TD_INVALID,
                                  "could not parse '%s' parameter: %.64s is out of range", name, s);
            }
            double ip;
            double fr = modf(t, &ip);
            fr = round(fr * 1000) / 1000;
            *ns = (int64_t)ip * (int64_t)NS_PER_S + (int64_t)(fr * 1e9);
            return TD_OK;
        }
    }
    errno = 0;
    long long v = strtoll(s, &e, 10);
    bool is_int =
        e != s && *e == '\0' && (s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9'));
    if (is_int && errno == 0) {
        if (v < 0) {
            return td_err_set(err, TD_INVALID,
                              "could not parse '%s' parameter: %.64s is before 1970", name, s);
        }
        if (strlen(s) <= 10) {
            if (v > INT64_MAX / (long long)NS_PER_S) {
                return td_err_set(err, TD_INVALID,
                                  "could not parse '%s' parameter: %.64s is out of range", name, s);
            }
            *ns = (int64_t)v * (int64_t)NS_PER_S;
        } else {
            *ns = (int64_t)v;
        }
        return TD_OK;
    }
    if (parse_rfc3339(s, ns)) {
        return TD_OK;
    }
    return td_err_set(err, TD_INVALID,
                      "could not parse '%s' parameter: strconv.ParseInt: parsing \"%.64s\": %s",
                      name, s, is_int ? "value out of range" : "invalid syntax");
}

/* Prometheus model.ParseDuration: [0-9]+ units y w d h m s ms, in that order. */
static bool parse_prom_duration(const char *s, uint64_t *out)
{
    static const struct {
        const char *u;
        uint64_t ns;
    } units[] = {{"y", 365ull * 86400 * NS_PER_S},
                 {"w", 7ull * 86400 * NS_PER_S},
                 {"d", 86400ull * NS_PER_S},
                 {"h", 3600ull * NS_PER_S},
                 {"m", 60ull * NS_PER_S},
                 {"s", NS_PER_S},
                 {"ms", 1000000ull}};
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return true;
    }
    if (!*s) {
        return false;
    }
    uint64_t total = 0;
    size_t next = 0;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > UINT64_MAX / 10) {
                return false;
            }
            v = v * 10 + (uint64_t)(*p - '0');
        }
        size_t k = next;
        /* "ms" before "m": try the longest unit that matches at this position */
        size_t found = SIZE_MAX;
        for (; k < sizeof(units) / sizeof(units[0]); k++) {
            size_t ul = strlen(units[k].u);
            if (strncmp(p, units[k].u, ul) == 0 && !(p[ul] >= 'a' && p[ul] <= 'z')) {
                found = k;
                break;
            }
        }
        if (found == SIZE_MAX || v > (UINT64_MAX - total) / units[found].ns) {
            return false;
        }
        total += v * units[found].ns;
        p += strlen(units[found].u);
        next = found + 1;
    }
    if (total > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = total;
    return true;
}

/* Tempo's parseSecondsOrDuration + step(): seconds as a float, else a Go duration. */
static td_status parse_step(const char *s, uint64_t *out, td_err *err)
{
    char *e;
    errno = 0;
    double d = strtod(s, &e);
    int64_t ns;
    if (e != s && *e == '\0' && !isnan(d)) {
        double t = d * 1e9;
        if (t > 9.2e18 || t < -9.2e18) {
            return td_err_set(err, TD_INVALID,
                              "cannot parse \"%.64s\" to a valid duration. It overflows int64", s);
        }
        ns = (int64_t)t;
    } else if (!td__tempo_parse_go_duration(s, &ns)) {
        return td_err_set(err, TD_INVALID, "cannot parse \"%.64s\" to a valid duration", s);
    }
    if (ns < 0) {
        return td_err_set(err, TD_INVALID, "cannot parse \"%.64s\": step must be positive", s);
    }
    *out = (uint64_t)ns;
    return TD_OK;
}

uint64_t td__metrics_default_step(uint64_t start_ns, uint64_t end_ns)
{
    uint64_t delta = end_ns - start_ns;
    uint64_t baseline = delta / 240;
    if (delta < 60 * NS_PER_S) {
        uint64_t g = 50000000ull; /* 50ms: Grafana shows milliseconds below a minute */
        return baseline > g ? baseline / g * g : g;
    }
    static const uint64_t gran[] = {3600 * NS_PER_S, 300 * NS_PER_S, 60 * NS_PER_S,
                                    15 * NS_PER_S,   5 * NS_PER_S,   NS_PER_S};
    for (size_t i = 0; i < sizeof(gran) / sizeof(gran[0]); i++) {
        if (baseline > gran[i]) {
            return baseline / gran[i] * gran[i];
        }
    }
    return NS_PER_S;
}

static td_status err_end_before_start(td_err *err)
{
    return td_err_set(err, TD_INVALID, "end must be greater than start");
}

/*
 * Tempo splits this over its frontend handlers: clampQueryEndForValidation,
 * validateQueryRangeReq, AlignRequest and clampQueryEnd for ranges,
 * clampInstantQueryEnd for instants. Our cutoff is 0 (Tempo's default is 30s):
 * spans are queryable as soon as they are stored, so only "never after now"
 * remains. The order matters: validation sees the range the user asked for,
 * alignment may then add up to two steps.
 */
td_status td__metrics_prepare(td__metrics_params *p, int64_t now_ns, td_err *err)
{
    uint64_t now = now_ns > 0 ? (uint64_t)now_ns : 0;
    char a[40], b[40];
    if (p->start_ns >= p->end_ns) {
        return err_end_before_start(err);
    }
    if (p->instant) {
        /* clampInstantQueryEnd: whole seconds off the end until it is not after now */
        if (p->end_ns >= now) {
            uint64_t reduce = (p->end_ns - now + NS_PER_S - 1) / NS_PER_S * NS_PER_S;
            p->end_ns = reduce > p->end_ns ? 0 : p->end_ns - reduce;
            if (p->end_ns <= p->start_ns) {
                return td_err_set(err, TD_INVALID,
                                  "query window falls entirely within query_end_cutoff");
            }
        }
        p->step_ns = p->end_ns - p->start_ns;
    } else if (p->end_ns > now) {
        p->end_ns = now;
        if (p->start_ns >= p->end_ns) {
            return td_err_set(err, TD_INVALID,
                              "query window falls entirely within query_end_cutoff");
        }
    }
    if (p->end_ns - p->start_ns > TD__METRICS_MAX_RANGE_NS) {
        td_traceql_format_duration((int64_t)TD__METRICS_MAX_RANGE_NS, a);
        return td_err_set(err, TD_INVALID,
                          "metrics query time range exceeds the maximum allowed duration of %s", a);
    }
    if (p->step_ns == 0 || (p->end_ns - p->start_ns) / p->step_ns > TD__METRICS_MAX_INTERVALS) {
        td_traceql_format_duration((int64_t)p->step_ns, a);
        td_traceql_format_duration((int64_t)((p->end_ns - p->start_ns) / TD__METRICS_MAX_INTERVALS),
                                   b);
        return td_err_set(err, TD_INVALID,
                          "step of %s is too small, minimum step for given range is %s", a, b);
    }
    if (p->instant) {
        return TD_OK;
    }
    /* AlignRequest: start down, end up, one extra bucket in front */
    uint64_t step = p->step_ns;
    p->start_ns -= p->start_ns % step;
    if (p->end_ns % step) {
        p->end_ns += step - p->end_ns % step;
    }
    if (p->start_ns > step) {
        p->start_ns -= step;
    }
    /* clampQueryEnd: never after now, and back on a step boundary */
    if (p->end_ns > now) {
        p->end_ns = now - now % step;
    }
    /* a step longer than the time since start: keep one interval rather than none */
    if (p->end_ns <= p->start_ns) {
        p->end_ns = p->start_ns + step;
    }
    return TD_OK;
}

/*
 * Tempo's ParseQueryRangeRequest / ParseQueryInstantRequest (bounds(), step())
 * then the frontend checks (td__metrics_prepare). The default step is derived
 * from the range before it is clamped, as Tempo does.
 */
td_status td__metrics_parse_http(const td__metrics_args *in, bool instant, int64_t now_ns,
                                 td__metrics_params *p, td_err *err)
{
    memset(p, 0, sizeof(*p));
    p->instant = instant;
    p->instant_response = instant;
    p->q = !absent(in->q) ? in->q : !absent(in->query) ? in->query : "";
    uint64_t since = DEFAULT_SINCE_NS;
    if (!absent(in->since) && !parse_prom_duration(in->since, &since)) {
        return td_err_set(err, TD_INVALID,
                          "could not parse 'since' parameter: not a valid duration string: "
                          "\"%.64s\"",
                          in->since);
    }
    int64_t end = now_ns, start;
    td_status st;
    if (!absent(in->end) && (st = td__metrics_parse_time("end", in->end, &end, err)) != TD_OK) {
        return st;
    }
    int64_t end_or_now = end > now_ns ? now_ns : end;
    start = end_or_now - (int64_t)since;
    if (!absent(in->start) &&
        (st = td__metrics_parse_time("start", in->start, &start, err)) != TD_OK) {
        return st;
    }
    if (start < 0) {
        start = 0;
    }
    p->start_ns = (uint64_t)start;
    p->end_ns = (uint64_t)end;
    if (!instant) {
        if (!absent(in->step)) {
            if ((st = parse_step(in->step, &p->step_ns, err)) != TD_OK) {
                return st;
            }
        } else if (p->end_ns > p->start_ns) {
            p->step_ns = td__metrics_default_step(p->start_ns, p->end_ns);
        }
    }
    /* like Tempo: unparsable numbers are ignored */
    if (!absent(in->exemplars)) {
        unsigned long v = strtoul(in->exemplars, NULL, 10);
        p->exemplars = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    }
    if (!absent(in->max_series)) {
        unsigned long v = strtoul(in->max_series, NULL, 10);
        p->max_series = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    }
    return td__metrics_prepare(p, now_ns, err);
}

/* ------------------------------------------------------------------------ */
/* series                                                                   */
/* ------------------------------------------------------------------------ */

/* A label value in its AnyValue form (Tempo's Static.AsAnyValue). */
enum { LV_NIL = 0, LV_STR, LV_INT, LV_DBL, LV_BOOL, LV_RAW /* packed AnyValue */ };

typedef struct lval {
    uint8_t tag;
    int64_t i;
    double f;
    const char *s; /* LV_STR, LV_RAW: n bytes in the arena */
    size_t n;
} lval;

typedef struct series {
    const uint8_t *key; /* encoded by() values + bucket (arena) */
    size_t keylen;
    size_t bylen; /* bytes of key that hold the by() values */
    lval *vals;   /* nby values */
    bool has_bucket;
    double bucket;
    double *v; /* per interval: count, min/max/sum (NaN = none), or avg sum */
    double *w; /* avg: values per interval */
} series;

typedef struct olabel {
    const char *key;
    lval v;
} olabel;

/* One output series (several per internal series for quantiles). */
typedef struct oseries {
    olabel *labels;
    size_t nlabels;
    double *vals;      /* nint; NaN = no sample */
    const series *src; /* the internal series (quantiles: the first of its group) */
    size_t quantile;   /* quantiles: index into the query's quantiles */
} oseries;

/*
 * An exemplar (Tempo's exemplars, range queries only): one span per sampled
 * trace, at most `exemplars` traces and 2 exemplars per time bucket of the
 * window (Tempo's bucketSet); the value is the span's own (duration or
 * attribute) or, for counts, the value of its series at its interval.
 */
typedef struct exemplar {
    const uint8_t *key; /* series key (arena) */
    size_t bylen;
    double value; /* NaN: take the series' value at ts_ms */
    int64_t ts_ms;
    char trace_id[33];
} exemplar;

#define EXEMPLARS_PER_BUCKET 2
#define EXEMPLARS_MAX 100 /* Tempo's max_exemplars default */

struct td__metrics {
    td__metrics_params p;
    td_arena a;
    td_traceql_query *q;
    const td_traceql_metrics *m;
    td_traceql_eval *ev;
    const char **by_names; /* TraceQL spelling of each by() field */
    size_t nint;
    double rate_mult;
    series *s;
    size_t ns, caps;
    int32_t *slots;
    size_t nslots;
    size_t max_series;
    bool limited;
    bool partial;
    char msg[TD_ERR_MSG_MAX];
    uint64_t inspected_traces, inspected_bytes;
    uint64_t done_jobs, total_jobs; /* 0/0: one job, done */
    td_buf key;
    exemplar *ex; /* exemplars kept (at most max_ex) */
    size_t nex, max_ex, ex_traces;
    size_t ex_nbuckets;
    uint64_t ex_start_ms, ex_end_ms, ex_width;
    uint8_t *ex_bucket; /* exemplars per time bucket */
    double *qvals;      /* quantiles over every series and interval (exemplar assignment) */
    td_buf *parts;      /* td__metrics_encode_parts */
    size_t nparts;
    td_buf trailer;
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

static bool is_fn(const td__metrics *m, td_traceql_metrics_fn fn)
{
    return m->m->fn == fn;
}

static bool bucketed(const td__metrics *m)
{
    return is_fn(m, TD_TRACEQL_M_HISTOGRAM_OVER_TIME) || is_fn(m, TD_TRACEQL_M_QUANTILE_OVER_TIME);
}

/* Everything but the series arrays, slots and output parts lives in m->a. */
void td__metrics_free(td__metrics *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->nparts; i++) {
        td_buf_release(&m->parts[i]);
    }
    td_free(m->parts);
    td_buf_release(&m->trailer);
    td_buf_release(&m->key);
    td_free(m->slots);
    td_free(m->s);
    td_traceql_eval_free(m->ev);
    td_arena_release(&m->a);
    td_free(m);
}

static td_status add_series(td__metrics *m, const uint8_t *key, size_t keylen, uint64_t h,
                            series **out, td_err *err);

/*
 * Parse and validate once per query; the per-trace work (td__metrics_observe)
 * then only evaluates and buckets. Limits are fixed here: the series cap is
 * the lower of maxSeries and the point budget divided by the interval count.
 */
td_status td__metrics_new(const td__metrics_params *p, td__metrics **out, td_err *err)
{
    *out = NULL;
    td__metrics *m = td_xcalloc(1, sizeof(*m));
    m->p = *p;
    td_arena_init(&m->a, 64 * 1024, 0);
    td_buf_init(&m->key, 64);
    td_buf_init(&m->trailer, 0);
    td_status st;
    const char *q = p->q ? p->q : "";
    if (!*q) {
        st = td_err_set(err, TD_INVALID, "invalid TraceQL query: empty query");
        goto fail;
    }
    if ((st = td_traceql_parse(q, strlen(q), &m->a, &m->q, err)) != TD_OK) {
        goto fail_q;
    }
    if (!m->q->metrics) {
        st = td_err_set(err, TD_INVALID,
                        "invalid TraceQL query: not a metrics query: add a metrics function such "
                        "as `| rate()` (TraceQL searches are served by /api/search)");
        goto fail;
    }
    m->m = m->q->metrics;
    /* Tempo's MetricsAggregate.validate */
    size_t maxby = bucketed(m) ? 4 : 5;
    if (m->m->nby > maxby) {
        st = td_err_set(err, TD_INVALID,
                        "invalid TraceQL query: unsupported: metrics group by %zu values",
                        m->m->nby);
        goto fail;
    }
    for (size_t i = 0; i < m->m->nquantiles; i++) {
        double v = m->m->quantiles[i];
        if (!(v >= 0 && v <= 1)) {
            st = td_err_set(err, TD_INVALID,
                            "invalid TraceQL query: quantile must be between 0 and 1: %g", v);
            goto fail;
        }
    }
    if ((st = td_traceql_eval_new(m->q, &m->ev, err)) != TD_OK) {
        goto fail_q;
    }
    m->by_names = td_arena_calloc(&m->a, m->m->nby + 1, sizeof(*m->by_names));
    if (!m->by_names) {
        st = td_err_set(err, TD_NOMEM, "out of memory preparing the metrics query");
        goto fail;
    }
    for (size_t i = 0; i < m->m->nby; i++) {
        td_buf b = TD_BUF_INIT;
        td_traceql_format_attr(&m->m->by[i], &b);
        m->by_names[i] = td_arena_strndup(&m->a, b.data, b.len);
        td_buf_release(&b);
        if (!m->by_names[i]) {
            st = td_err_set(err, TD_NOMEM, "out of memory preparing the metrics query");
            goto fail;
        }
    }
    m->nint = p->instant ? 1 : (size_t)((p->end_ns - p->start_ns) / p->step_ns);
    if (m->nint == 0) {
        m->nint = 1;
    }
    /* Tempo: rateMult = 1.0 / time.Duration(step).Seconds() */
    double step_s = (double)(p->step_ns / NS_PER_S) + (double)(p->step_ns % NS_PER_S) / 1e9;
    m->rate_mult = 1.0 / step_s;
    size_t lim = p->max_series && p->max_series < TD__METRICS_MAX_SERIES ? p->max_series
                                                                         : TD__METRICS_MAX_SERIES;
    size_t by_points = TD__METRICS_MAX_POINTS / m->nint;
    m->max_series = lim < by_points ? lim : (by_points ? by_points : 1);
    /* exemplars (range queries): Tempo's default and cap is 100; 2 per time bucket */
    if (!p->instant) {
        m->max_ex = p->exemplars && p->exemplars < EXEMPLARS_MAX ? p->exemplars : EXEMPLARS_MAX;
        /* the with(exemplars = N | false) hint wins, like Tempo's normalizeRequestExemplars */
        for (size_t i = 0; i < m->q->noptions; i++) {
            const td_traceql_option *o = &m->q->options[i];
            if (strcmp(o->name, "exemplars") != 0) {
                continue;
            }
            if (o->value.type == TD_TRACEQL_INT) {
                m->max_ex = o->value.i <= 0              ? 0
                            : o->value.i < EXEMPLARS_MAX ? (size_t)o->value.i
                                                         : EXEMPLARS_MAX;
            } else if (o->value.type == TD_TRACEQL_BOOL && !o->value.b) {
                m->max_ex = 0;
            }
        }
        m->ex_nbuckets = m->max_ex / EXEMPLARS_PER_BUCKET ? m->max_ex / EXEMPLARS_PER_BUCKET : 1;
        m->ex_start_ms = p->start_ns / 1000000;
        m->ex_end_ms = p->end_ns / 1000000;
        uint64_t w = (m->ex_end_ms - m->ex_start_ms) / m->ex_nbuckets;
        m->ex_width = w ? w : 1;
        m->ex_bucket = td_arena_calloc(&m->a, m->ex_nbuckets, 1);
        if (!m->ex_bucket) {
            st = td_err_set(err, TD_NOMEM, "out of memory preparing the metrics query");
            goto fail;
        }
    }
    /* the ungrouped count/rate series exists even when nothing matches (as a querier's) */
    if (m->m->nby == 0 && (is_fn(m, TD_TRACEQL_M_RATE) || is_fn(m, TD_TRACEQL_M_COUNT_OVER_TIME))) {
        series *s;
        uint8_t nobucket = 0;
        if ((st = add_series(m, &nobucket, 1, fnv(&nobucket, 1), &s, err)) != TD_OK) {
            goto fail;
        }
    }
    *out = m;
    return TD_OK;
fail_q:
    if (st == TD_INVALID) {
        char msg[TD_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        td_err_set(err, TD_INVALID, "invalid TraceQL query: %s", msg);
    }
fail:
    td__metrics_free(m);
    return st;
}

void td__metrics_set_partial(td__metrics *m, const char *why)
{
    if (!m->partial) {
        m->partial = true;
        snprintf(m->msg, sizeof(m->msg), "%s", why);
    }
}

void td__metrics_add_inspected(td__metrics *m, uint64_t traces, uint64_t bytes)
{
    m->inspected_traces += traces;
    m->inspected_bytes += bytes;
}

/* Interval of a span start time, or -1 outside the window (Tempo's IntervalMapper). */
static long interval_of(const td__metrics *m, uint64_t ts)
{
    const td__metrics_params *p = &m->p;
    if (p->instant) {
        return ts >= p->start_ns && ts <= p->end_ns ? 0 : -1;
    }
    if (ts <= p->start_ns || ts > p->end_ns) {
        return -1;
    }
    uint64_t i = (ts - p->start_ns - 1) / p->step_ns; /* right-closed (start + i*step, ...] */
    return i < m->nint ? (long)i : -1;
}

/* Log2Bucketize: the next power of two >= v (v >= 2). */
static double log2_bucket(uint64_t v)
{
    if (v > (1ull << 63)) {
        return 18446744073709551616.0;
    }
    uint64_t b = 1;
    while (b < v) {
        b <<= 1;
    }
    return (double)b;
}

static bool is_duration_intrinsic(const td_traceql_attr *a)
{
    return a->scope == TD_TRACEQL_SCOPE_INTRINSIC && a->intrinsic == TD_TRACEQL_I_DURATION;
}

/* FloatizeAttribute (duration intrinsic in seconds): NaN when not numeric. */
static double numeric(const td_traceql_value *v, bool dur_seconds)
{
    switch (v->type) {
    case TD_TRACEQL_INT:
        return (double)v->i;
    case TD_TRACEQL_FLOAT:
        return v->f;
    case TD_TRACEQL_DURATION:
        return dur_seconds ? (double)v->i / 1e9 : (double)v->i;
    default:
        return NAN;
    }
}

/* bucketizeDuration / bucketizeAttribute: false when the span is dropped. */
static bool bucketize(const td_traceql_value *v, double *out)
{
    if (v->type == TD_TRACEQL_INT) {
        if (v->i < 2) {
            return false;
        }
        *out = log2_bucket((uint64_t)v->i);
        return true;
    }
    if (v->type == TD_TRACEQL_DURATION) {
        if (v->i < 2) {
            return false;
        }
        *out = log2_bucket((uint64_t)v->i) / 1e9;
        return true;
    }
    return false;
}

static void key_u64(td_buf *b, uint64_t v)
{
    td_buf_add(b, &v, sizeof(v));
}

/* Append the AnyValue form of v to the series key. */
static td_status key_value(td_buf *b, const td_traceql_value *v, td_err *err)
{
    char tmp[40];
    const char *s = NULL;
    size_t n = 0;
    switch (v->type) {
    case TD_TRACEQL_NIL:
        td_buf_addch(b, LV_NIL);
        return TD_OK;
    case TD_TRACEQL_INT:
        td_buf_addch(b, LV_INT);
        key_u64(b, (uint64_t)v->i);
        return TD_OK;
    case TD_TRACEQL_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->f, 8);
        td_buf_addch(b, LV_DBL);
        key_u64(b, bits);
        return TD_OK;
    }
    case TD_TRACEQL_BOOL:
        td_buf_addch(b, LV_BOOL);
        td_buf_addch(b, v->b ? 1 : 0);
        return TD_OK;
    case TD_TRACEQL_STRING:
        s = v->s.ptr, n = v->s.len;
        break;
    case TD_TRACEQL_DURATION:
        n = td_traceql_format_duration(v->i, tmp);
        s = tmp;
        break;
    case TD_TRACEQL_STATUS:
        s = v->i >= 0 && v->i <= 2 ? status_names[v->i] : "unset";
        n = strlen(s);
        break;
    case TD_TRACEQL_KIND:
        s = v->i >= 0 && v->i <= 5 ? kind_names[v->i] : "unspecified";
        n = strlen(s);
        break;
    case TD_TRACEQL_OTLP: {
        size_t len = opentelemetry__proto__common__v1__any_value__get_packed_size(v->otlp);
        if (len > UINT32_MAX) {
            return td_err_set(err, TD_TOO_LARGE, "attribute value too large for a label");
        }
        td_buf_addch(b, LV_RAW);
        uint32_t l32 = (uint32_t)len;
        td_buf_add(b, &l32, 4);
        td_buf_grow(b, len);
        opentelemetry__proto__common__v1__any_value__pack(v->otlp, (uint8_t *)b->data + b->len);
        td_buf_setlen(b, b->len + len);
        return TD_OK;
    }
    }
    if (n > UINT32_MAX) {
        return td_err_set(err, TD_TOO_LARGE, "attribute value too large for a label");
    }
    td_buf_addch(b, LV_STR);
    uint32_t l32 = (uint32_t)n;
    td_buf_add(b, &l32, 4);
    td_buf_add(b, s, n);
    return TD_OK;
}

/* Decode the by() values of an (arena) key into lvals; returns the bytes used. */
static size_t key_decode(const uint8_t *k, size_t nby, lval *out)
{
    size_t off = 0;
    for (size_t i = 0; i < nby; i++) {
        lval *v = &out[i];
        memset(v, 0, sizeof(*v));
        v->tag = k[off++];
        switch (v->tag) {
        case LV_INT:
            memcpy(&v->i, k + off, 8);
            off += 8;
            break;
        case LV_DBL:
            memcpy(&v->f, k + off, 8);
            off += 8;
            break;
        case LV_BOOL:
            v->i = k[off++];
            break;
        case LV_STR:
        case LV_RAW: {
            uint32_t l32;
            memcpy(&l32, k + off, 4);
            off += 4;
            v->s = (const char *)k + off;
            v->n = l32;
            off += l32;
            break;
        }
        default:
            break;
        }
    }
    return off;
}

/* Re-index every series (open addressing, load factor <= 1/2; nslots a power of two). */
static void slots_rebuild(td__metrics *m, size_t nslots)
{
    td_free(m->slots);
    m->slots = td_xmalloc(nslots * sizeof(*m->slots));
    memset(m->slots, 0xff, nslots * sizeof(*m->slots));
    m->nslots = nslots;
    for (size_t i = 0; i < m->ns; i++) {
        size_t j = fnv(m->s[i].key, m->s[i].keylen) & (nslots - 1);
        while (m->slots[j] >= 0) {
            j = (j + 1) & (nslots - 1);
        }
        m->slots[j] = (int32_t)i;
    }
}

static td_status add_series(td__metrics *m, const uint8_t *key, size_t keylen, uint64_t h,
                            series **out, td_err *err)
{
    if (m->ns == m->caps) {
        m->caps = m->caps ? m->caps * 2 : 16;
        m->s = td_xrealloc(m->s, m->caps * sizeof(*m->s));
    }
    series *s = &m->s[m->ns];
    memset(s, 0, sizeof(*s));
    s->key = td_arena_memdup(&m->a, key, keylen);
    s->keylen = keylen;
    s->vals = td_arena_calloc(&m->a, m->m->nby + 1, sizeof(lval));
    s->v = td_arena_alloc(&m->a, m->nint * sizeof(double));
    bool avg = is_fn(m, TD_TRACEQL_M_AVG_OVER_TIME);
    s->w = avg ? td_arena_calloc(&m->a, m->nint, sizeof(double)) : NULL;
    if (!s->key || !s->vals || !s->v || (avg && !s->w)) {
        return td_err_set(err, TD_NOMEM, "out of memory collecting metrics series");
    }
    s->bylen = key_decode(s->key, m->m->nby, s->vals);
    s->has_bucket = s->key[s->bylen] != 0;
    if (s->has_bucket) {
        memcpy(&s->bucket, s->key + s->bylen + 1, 8);
    }
    bool nan_init = is_fn(m, TD_TRACEQL_M_MIN_OVER_TIME) || is_fn(m, TD_TRACEQL_M_MAX_OVER_TIME) ||
                    is_fn(m, TD_TRACEQL_M_SUM_OVER_TIME);
    for (size_t i = 0; i < m->nint; i++) {
        s->v[i] = nan_init ? NAN : 0;
    }
    if ((m->ns + 1) * 2 > m->nslots) {
        m->ns++;
        slots_rebuild(m, m->nslots ? m->nslots * 2 : 64);
    } else {
        size_t j = h & (m->nslots - 1);
        while (m->slots[j] >= 0) {
            j = (j + 1) & (m->nslots - 1);
        }
        m->slots[j] = (int32_t)m->ns++;
    }
    *out = s;
    return TD_OK;
}

/* The series of the key in m->key, created when new; *out NULL when the limit says no. */
static td_status find_series(td__metrics *m, series **out, td_err *err)
{
    const uint8_t *k = (const uint8_t *)m->key.data;
    size_t n = m->key.len;
    uint64_t h = fnv(k, n);
    if (m->nslots) {
        size_t j = h & (m->nslots - 1);
        while (m->slots[j] >= 0) {
            series *s = &m->s[m->slots[j]];
            if (s->keylen == n && memcmp(s->key, k, n) == 0) {
                *out = s;
                return TD_OK;
            }
            j = (j + 1) & (m->nslots - 1);
        }
    }
    if (m->ns >= m->max_series) {
        m->limited = true;
        *out = NULL;
        return TD_OK;
    }
    return add_series(m, k, n, h, out, err);
}

/*
 * Add one span of the trace ev last evaluated. *rec (may be NULL) gets the
 * series it went to, or NULL when the span was not counted; *xval the span's
 * value for an exemplar (NaN for counting functions).
 */
static td_status observe_span(td__metrics *m, const td_traceql_trace *t, uint32_t si, td_arena *a,
                              series **rec, double *xval, td_err *err)
{
    *rec = NULL;
    const td_otlp_span *sp = t->spans[si].span;
    long iv = interval_of(m, sp->start_time_unix_nano);
    if (iv < 0) {
        return TD_OK;
    }
    double x = 1;
    double bucket = 0;
    const td_traceql_metrics *mm = m->m;
    *xval = NAN;
    if (mm->has_attr) {
        if (is_duration_intrinsic(&mm->attr)) {
            uint64_t d = sp->end_time_unix_nano >= sp->start_time_unix_nano
                             ? sp->end_time_unix_nano - sp->start_time_unix_nano
                             : 0;
            if (bucketed(m)) {
                if (d < 2) {
                    return TD_OK;
                }
                bucket = log2_bucket(d) / 1e9;
            }
            x = (double)d / 1e9;
        } else {
            td_traceql_value v = td_traceql_eval_attr(m->ev, si, &mm->attr, a);
            if (bucketed(m) && !bucketize(&v, &bucket)) {
                return TD_OK;
            }
            x = numeric(&v, false);
            if (!bucketed(m) && isnan(x)) {
                return TD_OK;
            }
        }
        /* Tempo: histogram exemplars are placeholders like count's */
        if (!is_fn(m, TD_TRACEQL_M_HISTOGRAM_OVER_TIME)) {
            *xval = x;
        }
    }
    td_buf_reset(&m->key);
    for (size_t i = 0; i < mm->nby; i++) {
        td_traceql_value v = td_traceql_eval_attr(m->ev, si, &mm->by[i], a);
        td_status st = key_value(&m->key, &v, err);
        if (st) {
            return st;
        }
    }
    td_buf_addch(&m->key, bucketed(m) ? 1 : 0);
    if (bucketed(m)) {
        uint64_t bits;
        memcpy(&bits, &bucket, 8);
        key_u64(&m->key, bits);
    }
    series *s;
    td_status st = find_series(m, &s, err);
    if (st || !s) {
        return st;
    }
    double *v = &s->v[iv];
    switch (mm->fn) {
    case TD_TRACEQL_M_MIN_OVER_TIME:
        if (isnan(*v) || x < *v) {
            *v = x;
        }
        break;
    case TD_TRACEQL_M_MAX_OVER_TIME:
        if (isnan(*v) || x > *v) {
            *v = x;
        }
        break;
    case TD_TRACEQL_M_SUM_OVER_TIME:
        *v = isnan(*v) ? x : *v + x;
        break;
    case TD_TRACEQL_M_AVG_OVER_TIME:
        *v += x;
        s->w[iv] += 1;
        break;
    default: /* rate, count, histogram and quantile buckets: counts */
        *v += 1;
        break;
    }
    *rec = s;
    return TD_OK;
}

/* Keep an exemplar for span si (in series s) when the time buckets have room. */
static td_status add_exemplar(td__metrics *m, const td_traceql_trace *t, uint32_t si,
                              const series *s, double xval, td_err *err)
{
    uint64_t ts = t->spans[si].span->start_time_unix_nano / 1000000;
    if (m->nex >= m->max_ex || ts < m->ex_start_ms || ts > m->ex_end_ms) {
        return TD_OK;
    }
    size_t b = m->ex_start_ms == m->ex_end_ms ? 0 : (size_t)((ts - m->ex_start_ms) / m->ex_width);
    if (b >= m->ex_nbuckets) {
        b = m->ex_nbuckets - 1;
    }
    if (m->ex_bucket[b] >= EXEMPLARS_PER_BUCKET) {
        return TD_OK;
    }
    if (!m->ex) {
        m->ex = td_arena_calloc(&m->a, m->max_ex, sizeof(*m->ex));
        if (!m->ex) {
            return td_err_set(err, TD_NOMEM, "out of memory keeping exemplars");
        }
    }
    m->ex_bucket[b]++;
    exemplar *e = &m->ex[m->nex++];
    e->key = s->key;
    e->bylen = s->bylen;
    e->value = xval;
    e->ts_ms = (int64_t)ts;
    static const char hx[] = "0123456789abcdef";
    size_t n = t->trace_id_len > 16 ? 16 : t->trace_id_len;
    for (size_t i = 0; i < n; i++) {
        e->trace_id[2 * i] = hx[t->trace_id[i] >> 4];
        e->trace_id[2 * i + 1] = hx[t->trace_id[i] & 15];
    }
    e->trace_id[2 * n] = '\0';
    return TD_OK;
}

td_status td__metrics_observe(td__metrics *m, const td_traceql_trace *t, td_arena *a, td_err *err)
{
    td_traceql_result r;
    td_status st = td_traceql_eval_trace(m->ev, t, a, &r, err);
    if (st) {
        return st;
    }
    /* Tempo samples one span of a trace (never the same trace twice) while room is left */
    bool want_ex = m->ex_traces < m->max_ex && t->trace_id && t->trace_id_len > 0;
    const series *ex_s = NULL;
    uint32_t ex_span = 0;
    double ex_val = NAN;
    for (size_t i = 0; i < r.nsets; i++) {
        const td_traceql_spanset *set = &r.sets[i];
        for (size_t k = 0; k < set->matched; k++) {
            series *rec;
            double xval;
            if ((st = observe_span(m, t, set->spans[k], a, &rec, &xval, err)) != TD_OK) {
                return st;
            }
            if (want_ex && rec && !ex_s) {
                ex_s = rec;
                ex_span = set->spans[k];
                ex_val = xval;
            }
        }
    }
    if (ex_s) {
        m->ex_traces++;
        return add_exemplar(m, t, ex_span, ex_s, ex_val, err);
    }
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* output series                                                            */
/* ------------------------------------------------------------------------ */

/* Log2Quantile over buckets sorted by upper bound (Tempo's exponential interpolation). */
static double log2_quantile(double p, const double *max, const double *cnt, size_t n)
{
    if (isnan(p) || p < 0 || p > 1 || n == 0) {
        return 0;
    }
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        total += cnt[i];
    }
    if (total == 0) {
        return 0;
    }
    double max_samples = ceil(p * total);
    if (max_samples == 0) {
        max_samples = 1;
    }
    double acc = 0;
    size_t b = 0;
    for (size_t i = 0; i < n; i++) {
        b = i;
        if (acc + cnt[i] > max_samples) {
            break;
        }
        acc += cnt[i];
        if (acc == max_samples) {
            return max[i];
        }
    }
    double interp = (max_samples - acc) / cnt[b];
    double maxv = log2(max[b]);
    double minv = b > 0 ? log2(max[b - 1]) : maxv - 1;
    return pow(2, minv + (maxv - minv) * interp);
}

/*
 * Tempo's labelsFor / UngroupedAggregator.Series: by() values that are present
 * in query order, __name__ for an ungrouped function, __bucket last when asked
 * (the quantile path leaves it out and appends `p` itself).
 */
static td_status labels_for(td__metrics *m, const series *s, bool with_bucket, oseries *o,
                            td_err *err)
{
    size_t nby = m->m->nby;
    o->labels = td_arena_calloc(&m->a, nby + 2, sizeof(olabel));
    if (!o->labels) {
        return td_err_set(err, TD_NOMEM, "out of memory building metrics series");
    }
    size_t n = 0;
    for (size_t i = 0; i < nby; i++) {
        if (s->vals[i].tag != LV_NIL) {
            o->labels[n].key = m->by_names[i];
            o->labels[n++].v = s->vals[i];
        }
    }
    if (nby == 0 && !bucketed(m)) {
        o->labels[n].key = "__name__";
        o->labels[n].v.tag = LV_STR;
        o->labels[n].v.s = fn_names[m->m->fn];
        o->labels[n++].v.n = strlen(fn_names[m->m->fn]);
    } else if (n == 0 && nby > 0 && !bucketed(m)) {
        /* every by() value missing: Prometheus-style series need one label */
        o->labels[n].key = m->by_names[0];
        o->labels[n].v.tag = LV_STR;
        o->labels[n].v.s = "nil";
        o->labels[n++].v.n = 3;
    }
    if (with_bucket && s->has_bucket) {
        o->labels[n].key = "__bucket";
        o->labels[n].v.tag = LV_DBL;
        o->labels[n++].v.f = s->bucket;
    }
    o->nlabels = n;
    return TD_OK;
}

/* Text of a label value for ordering (approximates Go's AnyValue.String()). */
static void lval_text(const lval *v, char *buf, size_t cap, const char **s, size_t *n)
{
    switch (v->tag) {
    case LV_STR:
    case LV_RAW:
        *s = v->s;
        *n = v->n;
        return;
    case LV_INT:
        *n = (size_t)snprintf(buf, cap, "%" PRId64, v->i);
        break;
    case LV_DBL:
        /* shortest text that reads back as the same double, like Go's */
        for (int prec = 1; prec <= 17; prec++) {
            *n = (size_t)snprintf(buf, cap, "%.*g", prec, v->f);
            if (strtod(buf, NULL) == v->f) {
                break;
            }
        }
        break;
    case LV_BOOL:
        *n = (size_t)snprintf(buf, cap, "%s", v->i ? "true" : "false");
        break;
    default:
        *n = 0;
        break;
    }
    *s = buf;
}

/* Tempo's sortResponse: fewer labels first, then label by label (key, then value). */
static int cmp_oseries(const void *pa, const void *pb)
{
    const oseries *a = pa, *b = pb;
    if (a->nlabels != b->nlabels) {
        return a->nlabels < b->nlabels ? -1 : 1;
    }
    for (size_t k = 0; k < a->nlabels; k++) {
        int c = strcmp(a->labels[k].key, b->labels[k].key);
        if (c) {
            return c;
        }
        /* Go compares AnyValue.String(): by value type name, then the value text */
        static const char order[] = {0, 4, 3, 2, 1, 5}; /* nil str int dbl bool raw */
        const lval *x = &a->labels[k].v, *y = &b->labels[k].v;
        if (x->tag != y->tag) {
            return order[x->tag] < order[y->tag] ? -1 : 1;
        }
        char bx[48], by[48];
        const char *sx, *sy;
        size_t nx, ny;
        lval_text(x, bx, sizeof(bx), &sx, &nx);
        lval_text(y, by, sizeof(by), &sy, &ny);
        c = memcmp(sx, sy, nx < ny ? nx : ny);
        if (c) {
            return c;
        }
        if (nx != ny) {
            return nx < ny ? -1 : 1;
        }
    }
    return 0;
}

static int cmp_series_by(const void *pa, const void *pb)
{
    const series *a = pa, *b = pb;
    if (a->bylen != b->bylen) {
        return a->bylen < b->bylen ? -1 : 1;
    }
    int c = memcmp(a->key, b->key, a->bylen);
    if (c) {
        return c;
    }
    return a->bucket < b->bucket ? -1 : a->bucket > b->bucket ? 1 : 0;
}

/* Quantile series: internal series grouped by their by() values, buckets ascending. */
static td_status quantile_series(td__metrics *m, oseries **out, size_t *nout, td_err *err)
{
    size_t nq = m->m->nquantiles;
    if (m->ns) {
        qsort(m->s, m->ns, sizeof(*m->s), cmp_series_by);
    }
    /* slots index the old order: rebuild (observe may not run after this, but stay safe) */
    if (m->nslots) {
        slots_rebuild(m, m->nslots);
    }
    size_t ngroups = 0;
    for (size_t i = 0; i < m->ns; i++) {
        ngroups += i == 0 || cmp_series_by(&(series){.key = m->s[i].key, .bylen = m->s[i].bylen},
                                           &(series){.key = m->s[i - 1].key,
                                                     .bylen = m->s[i - 1].bylen}) != 0;
    }
    oseries *o = td_arena_calloc(&m->a, ngroups * nq + 1, sizeof(*o));
    double *mx = td_arena_alloc(&m->a, (m->ns + 1) * sizeof(double));
    double *ct = td_arena_alloc(&m->a, (m->ns + 1) * sizeof(double));
    if (!o || !mx || !ct) {
        return td_err_set(err, TD_NOMEM, "out of memory building metrics series");
    }
    size_t no = 0;
    for (size_t g0 = 0; g0 < m->ns;) {
        size_t g1 = g0 + 1;
        while (g1 < m->ns && m->s[g1].bylen == m->s[g0].bylen &&
               memcmp(m->s[g1].key, m->s[g0].key, m->s[g0].bylen) == 0) {
            g1++;
        }
        for (size_t qi = 0; qi < nq; qi++) {
            oseries *os = &o[no++];
            os->src = &m->s[g0];
            os->quantile = qi;
            td_status st = labels_for(m, &m->s[g0], false, os, err);
            os->vals = td_arena_alloc(&m->a, m->nint * sizeof(double));
            if (st || !os->vals) {
                return st ? st : td_err_set(err, TD_NOMEM, "out of memory building series");
            }
            os->labels[os->nlabels].key = "p";
            os->labels[os->nlabels].v.tag = LV_DBL;
            os->labels[os->nlabels++].v.f = m->m->quantiles[qi];
            for (size_t iv = 0; iv < m->nint; iv++) {
                size_t nb = 0;
                for (size_t k = g0; k < g1; k++) {
                    if (m->s[k].v[iv] != 0) {
                        mx[nb] = m->s[k].bucket;
                        ct[nb++] = m->s[k].v[iv];
                    }
                }
                os->vals[iv] = nb ? log2_quantile(m->m->quantiles[qi], mx, ct, nb) : 0;
            }
        }
        g0 = g1;
    }
    /* Tempo assigns each exemplar to the quantile closest to its value, over all series */
    m->qvals = td_arena_alloc(&m->a, nq * sizeof(double));
    if (!m->qvals) {
        return td_err_set(err, TD_NOMEM, "out of memory building metrics series");
    }
    size_t nb = 0;
    for (size_t k = 0; k < m->ns; k++) {
        double c = 0;
        for (size_t iv = 0; iv < m->nint; iv++) {
            c += m->s[k].v[iv];
        }
        if (nb && mx[nb - 1] == m->s[k].bucket) {
            ct[nb - 1] += c;
        } else if (c > 0) {
            mx[nb] = m->s[k].bucket;
            ct[nb++] = c;
        }
    }
    /* series are sorted by by() values first: merge equal buckets across groups */
    for (size_t i = 1; i < nb; i++) {
        for (size_t k = i; k > 0 && mx[k - 1] > mx[k]; k--) {
            double t = mx[k];
            mx[k] = mx[k - 1];
            mx[k - 1] = t;
            t = ct[k];
            ct[k] = ct[k - 1];
            ct[k - 1] = t;
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < nb; i++) {
        if (w && mx[w - 1] == mx[i]) {
            ct[w - 1] += ct[i];
        } else {
            mx[w] = mx[i];
            ct[w++] = ct[i];
        }
    }
    for (size_t qi = 0; qi < nq; qi++) {
        m->qvals[qi] = log2_quantile(m->m->quantiles[qi], mx, ct, w);
    }
    *out = o;
    *nout = no;
    return TD_OK;
}

static int cmp_exemplar(const void *pa, const void *pb)
{
    const exemplar *a = pa, *b = pb;
    return a->ts_ms < b->ts_ms ? -1 : a->ts_ms > b->ts_ms ? 1 : 0;
}

/* The value exemplar e shows on output series o, or NaN when it is not o's. */
static double exemplar_value(const td__metrics *m, const oseries *o, const exemplar *e)
{
    if (is_fn(m, TD_TRACEQL_M_QUANTILE_OVER_TIME)) {
        if (e->bylen != o->src->bylen || memcmp(e->key, o->src->key, e->bylen) != 0 ||
            isnan(e->value) || !m->qvals) {
            return NAN;
        }
        size_t best = 0;
        for (size_t qi = 1; qi < m->m->nquantiles; qi++) {
            if (fabs(e->value - m->qvals[qi]) < fabs(e->value - m->qvals[best])) {
                best = qi;
            }
        }
        if (best != o->quantile) {
            return NAN;
        }
    } else if (e->key != o->src->key) {
        return NAN;
    }
    /* Tempo drops exemplars whose interval has no value; NaN ones take the series' value */
    long iv = interval_of(m, (uint64_t)e->ts_ms * 1000000);
    if (iv < 0 || isnan(o->vals[iv])) {
        return NAN;
    }
    return isnan(e->value) ? o->vals[iv] : e->value;
}

/*
 * The final series, sorted, in the arena: values already scaled (rate) or
 * divided (avg), NaN where Tempo has no sample. Also decides PARTIAL for the
 * series cap (the candidate cuts are decided by td__metrics_run).
 */
static td_status build_output(td__metrics *m, oseries **out, size_t *nout, td_err *err)
{
    if (m->nex) {
        qsort(m->ex, m->nex, sizeof(*m->ex), cmp_exemplar);
    }
    *out = NULL;
    *nout = 0;
    if (is_fn(m, TD_TRACEQL_M_QUANTILE_OVER_TIME)) {
        if (m->m->nquantiles == 0) {
            return TD_OK;
        }
        td_status st = quantile_series(m, out, nout, err);
        if (st) {
            return st;
        }
    } else {
        oseries *o = td_arena_calloc(&m->a, m->ns + 1, sizeof(*o));
        if (!o) {
            return td_err_set(err, TD_NOMEM, "out of memory building metrics series");
        }
        size_t no = 0;
        for (size_t i = 0; i < m->ns; i++) {
            const series *s = &m->s[i];
            oseries *os = &o[no];
            os->src = s;
            td_status st = labels_for(m, s, true, os, err);
            os->vals = td_arena_alloc(&m->a, m->nint * sizeof(double));
            if (st || !os->vals) {
                return st ? st : td_err_set(err, TD_NOMEM, "out of memory building series");
            }
            bool any = false;
            for (size_t iv = 0; iv < m->nint; iv++) {
                double v = s->v[iv];
                if (is_fn(m, TD_TRACEQL_M_RATE)) {
                    v *= m->rate_mult;
                } else if (is_fn(m, TD_TRACEQL_M_AVG_OVER_TIME)) {
                    v = s->w[iv] > 0 ? v / s->w[iv] : NAN;
                }
                os->vals[iv] = v;
                any |= !isnan(v);
            }
            no += any; /* like Tempo: a series without samples is left out */
        }
        *out = o;
        *nout = no;
    }
    qsort(*out, *nout, sizeof(**out), cmp_oseries);
    if (m->limited) {
        char why[TD_ERR_MSG_MAX];
        snprintf(why, sizeof(why),
                 "Response exceeds maximum series limit of %zu, a partial response is returned. "
                 "Warning: the accuracy of each individual value is not guaranteed.",
                 m->max_series);
        td__metrics_set_partial(m, why);
    }
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* encoding                                                                 */
/* ------------------------------------------------------------------------ */

static int64_t ts_ms(const td__metrics *m, size_t iv)
{
    if (m->p.instant) {
        return (int64_t)(m->p.end_ns / 1000000);
    }
    return (int64_t)((m->p.start_ns + (iv + 1) * m->p.step_ns) / 1000000);
}

/* Tempo JSON (gogo jsonpb) and proto3 leave out a double that == 0 (also -0). */
static bool is_zero(double v)
{
    return v == 0;
}

static void j_lval(td_json *j, const lval *v)
{
    switch (v->tag) {
    case LV_RAW: {
        td_otlp_any *any =
            opentelemetry__proto__common__v1__any_value__unpack(NULL, v->n, (const uint8_t *)v->s);
        if (any) {
            td__json_any(j, any);
            opentelemetry__proto__common__v1__any_value__free_unpacked(any, NULL);
            return;
        }
        td_json_begin_object(j);
        td_json_end_object(j);
        return;
    }
    default:
        break;
    }
    td_json_begin_object(j);
    switch (v->tag) {
    case LV_INT:
        td_json_key(j, "intValue");
        td_json_int64_str(j, v->i);
        break;
    case LV_DBL:
        td_json_key(j, "doubleValue");
        td_json_double(j, v->f);
        break;
    case LV_BOOL:
        td_json_key(j, "boolValue");
        td_json_bool(j, v->i != 0);
        break;
    case LV_STR:
        td_json_key(j, "stringValue");
        td_json_string_n(j, v->s, v->n);
        break;
    default:
        td_json_key(j, "stringValue");
        td_json_string(j, "nil");
        break;
    }
    td_json_end_object(j);
}

static void j_labels(td_json *j, const oseries *o)
{
    td_json_key(j, "labels");
    td_json_begin_array(j);
    for (size_t k = 0; k < o->nlabels; k++) {
        td_json_begin_object(j);
        td_json_key(j, "key");
        td_json_string(j, o->labels[k].key);
        td_json_key(j, "value");
        j_lval(j, &o->labels[k].v);
        td_json_end_object(j);
    }
    td_json_end_array(j);
}

/* trace:id, then the series' by() values, as exemplar labels. */
static void j_exemplar_labels(td_json *j, const td__metrics *m, const oseries *o, const exemplar *e)
{
    td_json_key(j, "labels");
    td_json_begin_array(j);
    td_json_begin_object(j);
    td_json_key(j, "key");
    td_json_string(j, "trace:id");
    td_json_key(j, "value");
    td_json_begin_object(j);
    td_json_key(j, "stringValue");
    td_json_string(j, e->trace_id);
    td_json_end_object(j);
    td_json_end_object(j);
    for (size_t i = 0; i < m->m->nby; i++) {
        if (o->src->vals[i].tag == LV_NIL) {
            continue;
        }
        td_json_begin_object(j);
        td_json_key(j, "key");
        td_json_string(j, m->by_names[i]);
        td_json_key(j, "value");
        j_lval(j, &o->src->vals[i]);
        td_json_end_object(j);
    }
    td_json_end_array(j);
}

static void j_exemplars(td_json *j, const td__metrics *m, const oseries *o)
{
    bool any = false;
    for (size_t k = 0; k < m->nex; k++) {
        const exemplar *e = &m->ex[k];
        double v = exemplar_value(m, o, e);
        if (isnan(v)) {
            continue;
        }
        if (!any) {
            td_json_key(j, "exemplars");
            td_json_begin_array(j);
            any = true;
        }
        td_json_begin_object(j);
        j_exemplar_labels(j, m, o, e);
        if (!is_zero(v)) {
            td_json_key(j, "value");
            td_json_double(j, v);
        }
        td_json_key(j, "timestampMs");
        td_json_int64_str(j, e->ts_ms);
        td_json_end_object(j);
    }
    if (any) {
        td_json_end_array(j);
    }
}

/* QueryRangeResponse / QueryInstantResponse in Tempo JSON (gogo jsonpb: zeros left out). */
static void j_response(td__metrics *m, const oseries *o, size_t no, td_buf *out)
{
    td_json j;
    td_json_init(&j, out);
    td_json_begin_object(&j);
    /* Tempo: a range answer always has its (possibly empty) series list, an instant one not */
    if (no || !m->p.instant_response) {
        td_json_key(&j, "series");
        td_json_begin_array(&j);
        for (size_t i = 0; i < no; i++) {
            td_json_begin_object(&j);
            j_labels(&j, &o[i]);
            if (m->p.instant_response) {
                if (!is_zero(o[i].vals[0])) {
                    td_json_key(&j, "value");
                    td_json_double(&j, o[i].vals[0]);
                }
            } else {
                td_json_key(&j, "samples");
                td_json_begin_array(&j);
                for (size_t iv = 0; iv < m->nint; iv++) {
                    if (isnan(o[i].vals[iv])) {
                        continue;
                    }
                    td_json_begin_object(&j);
                    td_json_key(&j, "timestampMs");
                    td_json_int64_str(&j, ts_ms(m, iv));
                    if (!is_zero(o[i].vals[iv])) {
                        td_json_key(&j, "value");
                        td_json_double(&j, o[i].vals[iv]);
                    }
                    td_json_end_object(&j);
                }
                td_json_end_array(&j);
                j_exemplars(&j, m, &o[i]);
            }
            td_json_end_object(&j);
        }
        td_json_end_array(&j);
    }
    td_json_key(&j, "metrics");
    td_json_begin_object(&j);
    if (m->inspected_traces) {
        td_json_key(&j, "inspectedTraces");
        td_json_int(&j,
                    (int64_t)(m->inspected_traces > UINT32_MAX ? UINT32_MAX : m->inspected_traces));
    }
    if (m->inspected_bytes) {
        td_json_key(&j, "inspectedBytes");
        td_json_uint64_str(&j, m->inspected_bytes);
    }
    td_json_key(&j, "completedJobs");
    td_json_int(&j, (int64_t)(m->total_jobs ? m->done_jobs : 1));
    td_json_key(&j, "totalJobs");
    td_json_int(&j, (int64_t)(m->total_jobs ? m->total_jobs : 1));
    td_json_end_object(&j);
    if (m->partial) {
        td_json_key(&j, "status");
        td_json_string(&j, "PARTIAL");
        td_json_key(&j, "message");
        td_json_string(&j, m->msg);
    }
    td_json_end_object(&j);
}

/* ---- protobuf, written by hand (field numbers: tempo_metrics.proto) ---- */

static void pb_varint(td_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    td_buf_add(b, tmp, n);
}

static void pb_key(td_buf *b, uint32_t field, uint32_t wt)
{
    pb_varint(b, (uint64_t)field << 3 | wt);
}

static void pb_bytes(td_buf *b, uint32_t field, const void *p, size_t n)
{
    pb_key(b, field, 2);
    pb_varint(b, n);
    td_buf_add(b, p, n);
}

static void pb_double(td_buf *b, uint32_t field, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    pb_key(b, field, 1);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(bits >> (8 * i));
    }
    td_buf_add(b, le, 8);
}

static void pb_uint(td_buf *b, uint32_t field, uint64_t v)
{
    if (v) {
        pb_key(b, field, 0);
        pb_varint(b, v);
    }
}

static void pb_sub(td_buf *b, uint32_t field, const td_buf *sub)
{
    pb_bytes(b, field, sub->data, sub->len);
}

static void p_lval(td_buf *b, const lval *v)
{
    td_buf any = TD_BUF_INIT;
    switch (v->tag) {
    case LV_RAW:
        td_buf_add(&any, v->s, v->n);
        break;
    case LV_INT:
        pb_key(&any, 3, 0);
        pb_varint(&any, (uint64_t)v->i);
        break;
    case LV_DBL:
        pb_double(&any, 4, v->f);
        break;
    case LV_BOOL:
        pb_key(&any, 2, 0);
        pb_varint(&any, v->i ? 1 : 0);
        break;
    case LV_STR:
        pb_bytes(&any, 1, v->s, v->n);
        break;
    default:
        pb_bytes(&any, 1, "nil", 3);
        break;
    }
    pb_sub(b, 2, &any);
    td_buf_release(&any);
}

/* One TimeSeries / InstantSeries message (without its field key). */
static void p_series(const td__metrics *m, const oseries *o, td_buf *out)
{
    td_buf kv = TD_BUF_INIT, smp = TD_BUF_INIT;
    for (size_t k = 0; k < o->nlabels; k++) {
        td_buf_reset(&kv);
        pb_bytes(&kv, 1, o->labels[k].key, strlen(o->labels[k].key));
        p_lval(&kv, &o->labels[k].v);
        pb_sub(out, 1, &kv);
    }
    if (m->p.instant_response) {
        if (!is_zero(o->vals[0])) {
            pb_double(out, 2, o->vals[0]);
        }
    } else {
        for (size_t iv = 0; iv < m->nint; iv++) {
            if (isnan(o->vals[iv])) {
                continue;
            }
            td_buf_reset(&smp);
            if (!is_zero(o->vals[iv])) {
                pb_double(&smp, 1, o->vals[iv]);
            }
            pb_uint(&smp, 2, (uint64_t)ts_ms(m, iv));
            pb_sub(out, 2, &smp);
        }
        for (size_t k = 0; k < m->nex; k++) {
            const exemplar *e = &m->ex[k];
            double v = exemplar_value(m, o, e);
            if (isnan(v)) {
                continue;
            }
            td_buf_reset(&smp);
            td_buf_reset(&kv);
            pb_bytes(&kv, 1, "trace:id", 8);
            lval tid = {.tag = LV_STR, .s = e->trace_id, .n = strlen(e->trace_id)};
            p_lval(&kv, &tid);
            pb_sub(&smp, 1, &kv);
            for (size_t i = 0; i < m->m->nby; i++) {
                if (o->src->vals[i].tag == LV_NIL) {
                    continue;
                }
                td_buf_reset(&kv);
                pb_bytes(&kv, 1, m->by_names[i], strlen(m->by_names[i]));
                p_lval(&kv, &o->src->vals[i]);
                pb_sub(&smp, 1, &kv);
            }
            if (!is_zero(v)) {
                pb_double(&smp, 2, v);
            }
            pb_uint(&smp, 3, (uint64_t)e->ts_ms);
            pb_sub(out, 4, &smp);
        }
    }
    td_buf_release(&kv);
    td_buf_release(&smp);
}

/* Fields 2-4 of either response: metrics, then status and message when PARTIAL. */
static void p_trailer(const td__metrics *m, td_buf *out)
{
    td_buf met = TD_BUF_INIT;
    pb_uint(&met, 1, m->inspected_traces > UINT32_MAX ? UINT32_MAX : m->inspected_traces);
    pb_uint(&met, 2, m->inspected_bytes);
    pb_uint(&met, 4, m->total_jobs ? m->done_jobs : 1);
    pb_uint(&met, 5, m->total_jobs ? m->total_jobs : 1);
    pb_sub(out, 2, &met);
    td_buf_release(&met);
    if (m->partial) {
        pb_uint(out, 3, 1);
        pb_bytes(out, 4, m->msg, strlen(m->msg));
    }
}

td_status td__metrics_encode_parts(td__metrics *m, td_buf **series_out, size_t *nseries,
                                   td_buf *trailer, td_err *err)
{
    oseries *o;
    size_t no;
    td_status st = build_output(m, &o, &no, err);
    if (st) {
        return st;
    }
    m->parts = td_xcalloc(no + 1, sizeof(*m->parts));
    for (size_t i = 0; i < no; i++) {
        td_buf body = TD_BUF_INIT;
        p_series(m, &o[i], &body);
        td_buf_init(&m->parts[i], 0);
        pb_sub(&m->parts[i], 1, &body);
        td_buf_release(&body);
    }
    m->nparts = no;
    td_buf_reset(&m->trailer);
    p_trailer(m, &m->trailer);
    *series_out = m->parts;
    *nseries = no;
    *trailer = m->trailer;
    return TD_OK;
}

td_status td__metrics_encode(td__metrics *m, td_buf *out, td_err *err)
{
    if (m->p.pb) {
        td_buf *parts, trailer;
        size_t n;
        td_status st = td__metrics_encode_parts(m, &parts, &n, &trailer, err);
        if (st) {
            return st;
        }
        for (size_t i = 0; i < n; i++) {
            td_buf_add(out, parts[i].data, parts[i].len);
        }
        td_buf_add(out, trailer.data, trailer.len);
        return TD_OK;
    }
    oseries *o;
    size_t no;
    td_status st = build_output(m, &o, &no, err);
    if (st) {
        return st;
    }
    j_response(m, o, no, out);
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* the query                                                                */
/* ------------------------------------------------------------------------ */

td_status td__metrics_run(td_store *s, const td__tenants *ts, const td__metrics_params *p,
                          td_buf *out, td__metrics **parts, td_err *err)
{
    if (parts) {
        *parts = NULL;
    }
    td__metrics *m;
    td_status st = td__metrics_new(p, &m, err);
    if (st) {
        return st;
    }
    td__cands cs = {0};
    td_traceql_hint *hints = NULL;
    size_t nhints = 0;
    if ((st = td_traceql_hints(m->q, &m->a, &hints, &nhints, err)) != TD_OK ||
        (st = td__search_candidates(s, ts, hints, nhints, m->p.start_ns, m->p.end_ns, p->max_traces,
                                    &m->a, &cs, err)) != TD_OK) {
        goto out;
    }
    td_arena ta;
    td_arena_init(&ta, 64 * 1024, 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *cut = NULL;
    size_t i;
    for (i = 0; i < cs.n && st == TD_OK; i++) {
        if (p->max_bytes && m->inspected_bytes >= p->max_bytes) {
            cut = "search-max-bytes";
            break;
        }
        if (p->timeout_ms > 0) {
            struct timespec t1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            int64_t ms =
                (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (ms >= p->timeout_ms) {
                cut = "search-timeout";
                break;
            }
        }
        if (p->cancelled && p->cancelled(p->cancel_cls)) {
            st = td_err_set(err, TD_IO, "query cancelled");
            break;
        }
        if (td__cand_skip(&cs.c[i], hints, nhints)) {
            continue;
        }
        td_traceql_trace tr;
        bool found;
        uint64_t bytes = 0;
        st = td__search_load(s, ts, cs.c[i].id, p->max_trace_bytes, &ta, &tr, &found, &bytes, err);
        td__metrics_add_inspected(m, 1, bytes);
        if (st == TD_OK && found) {
            st = td__metrics_observe(m, &tr, &ta, err);
        }
        td_arena_release(&ta);
    }
    if (st) {
        goto out;
    }
    /* jobs as /api/search counts them: one per candidate, one more for a cut candidate list */
    m->total_jobs = cs.n + (cs.truncated ? 1 : 0);
    m->done_jobs = cut ? i : cs.n;
    if (m->total_jobs > UINT32_MAX) {
        m->done_jobs = m->done_jobs * (UINT32_MAX / 2) / (m->total_jobs / 2);
        m->total_jobs = UINT32_MAX;
    }
    if (cut) {
        char why[TD_ERR_MSG_MAX];
        snprintf(why, sizeof(why),
                 "the query stopped at the %s bound after %zu of %zu candidate traces; a partial "
                 "response is returned",
                 cut, i, cs.n);
        td__metrics_set_partial(m, why);
    }
    if (cs.truncated) {
        char why[TD_ERR_MSG_MAX];
        snprintf(why, sizeof(why),
                 "the query inspected only the newest %zu traces of the time range "
                 "(search-max-traces); older traces were not evaluated, a partial response is "
                 "returned",
                 cs.n);
        td__metrics_set_partial(m, why);
    }
    if (parts) {
        *parts = m;
        m = NULL;
    } else {
        st = td__metrics_encode(m, out, err);
    }
out:
    td__cands_release(&cs);
    td__metrics_free(m);
    return st;
}
