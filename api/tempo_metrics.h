/*
 * tempo_metrics.h - TraceQL metrics (API-CONTRACT §3.8, §3.9): internals of the
 * api module shared by server.c, grpc_metrics.c and tests/unit/test_metrics.c
 * (td__ prefix: not a public interface).
 *
 *   td__metrics_args in = {.q = ..., .start = ..., ...};      -- raw HTTP parameters
 *   td__metrics_params p;
 *   td__metrics_parse_http(&in, instant, now_ns, &p, &err);   -- Tempo's parsing + checks
 *   td__metrics_run(store, &tenants, &p, &body, &err);        -- JSON or protobuf body
 *
 * or, step by step (what the unit tests do with hand-built traces):
 *
 *   td__metrics *m;
 *   td__metrics_new(&p, &m, &err);            -- parses the query (400 errors)
 *   td__metrics_observe(m, &trace, &arena, &err);   -- once per trace
 *   td__metrics_encode(m, &body, &err);       -- the response
 *   td__metrics_free(m);
 *
 * Semantics copied from Tempo (pkg/api/http.go, pkg/traceql/engine_metrics.go,
 * modules/frontend/metrics_query_*.go):
 *   - range: start aligned down to the step and moved one step earlier, end
 *     aligned up (then clamped to now and aligned down again); interval i is
 *     (start + i*step, start + (i+1)*step] and its sample carries the
 *     timestamp start + (i+1)*step; a span belongs to the interval of its start
 *     time;
 *   - instant: one interval [start, end], sample value = the query's value;
 *   - rate = spans in the interval / step seconds; count, rate, histogram and
 *     quantile series carry every interval (0 when empty), min/max/sum/avg
 *     only intervals with a value;
 *   - labels: `__name__` = function name for ungrouped results; by() fields
 *     keyed by their TraceQL spelling (`resource.service.name`, `.foo`, `name`),
 *     missing values left out (all missing: the first field with "nil");
 *     histogram_over_time adds `__bucket` (power-of-two upper bound, seconds
 *     for durations), quantile_over_time adds `p` (the quantile) per series;
 *   - exemplars (range only): one span of each of the first `exemplars` traces
 *     (default and cap 100, at most 2 per 1/50 of the window), labelled
 *     `trace:id` plus the series' by() values; counts show their interval's
 *     value, the others the span's own; quantile exemplars go to the quantile
 *     closest to their value. The `with(exemplars = N|false)` hint wins.
 *
 * Thread-safety: everything is reentrant; a td__metrics belongs to one thread.
 */
#ifndef TD_API_TEMPO_METRICS_H
#define TD_API_TEMPO_METRICS_H

#include "api/tempo.h"
#include "api/traceql/traceql.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"

#include <stdbool.h>
#include <stdint.h>

#define TD__METRICS_MAX_INTERVALS 10000                  /* Tempo's max_intervals */
#define TD__METRICS_MAX_RANGE_NS (24ull * 3600000000000) /* Tempo's max_duration: 24h */
#define TD__METRICS_MAX_SERIES 1000       /* series kept at most (maxSeries may lower it) */
#define TD__METRICS_MAX_POINTS (4u << 20) /* series x intervals kept at most */

/* Raw query parameters; NULL or "" = absent. */
typedef struct td__metrics_args {
    const char *q, *query, *start, *end, *since, *step, *exemplars, *max_series;
} td__metrics_args;

typedef struct td__metrics_params {
    const char *q;             /* the TraceQL metrics query (not copied) */
    uint64_t start_ns, end_ns; /* after alignment / clamping */
    uint64_t step_ns;          /* range: the step; instant: end - start */
    bool instant;              /* one interval [start, end] */
    bool instant_response;     /* answer QueryInstantResponse (else QueryRangeResponse) */
    uint32_t exemplars;        /* range queries: traces sampled as exemplars (0 or > 100: 100) */
    uint32_t max_series;       /* 0 = TD__METRICS_MAX_SERIES */
    uint64_t max_traces;       /* candidate traces inspected at most (0 = 20000) */
    uint64_t max_trace_bytes;  /* per trace loaded (0 = unlimited) */
    uint64_t max_bytes;        /* stored bytes read per query (0 = unlimited) */
    int64_t timeout_ms;        /* wall time per query (0 = unlimited) */
    bool pb;                   /* encode protobuf instead of Tempo JSON */
    /* optional: polled between traces; true ends the query with TD_IO (client gone) */
    bool (*cancelled)(void *cls);
    void *cancel_cls;
} td__metrics_params;

/*
 * Tempo's parseTimestamp: unix seconds (<= 10 characters), nanoseconds (more),
 * fractional seconds (rounded to the millisecond) or RFC3339 with optional
 * fraction. Errors: TD_INVALID "could not parse '<name>' parameter: ...".
 */
td_status td__metrics_parse_time(const char *name, const char *s, int64_t *ns, td_err *err);

/* Tempo's DefaultQueryRangeStep(start, end): about 240 points on round steps. */
uint64_t td__metrics_default_step(uint64_t start_ns, uint64_t end_ns);

/*
 * HTTP parameters of /api/metrics/query_range (instant false) or
 * /api/metrics/query (instant true) into *p, as Tempo parses, clamps (end
 * never after now_ns), validates and aligns them. q wins over query. Default
 * window: `since` (Prometheus duration, default 1h) before end (default now).
 * step: seconds (float) or a Go duration; default td__metrics_default_step.
 * Errors (TD_INVALID, Tempo's wording): bad times or step, end not after start,
 * a range over 24h, more than TD__METRICS_MAX_INTERVALS intervals
 * ("step of 1s is too small, minimum step for given range is 1.2s"). The
 * query itself is checked by td__metrics_new.
 */
td_status td__metrics_parse_http(const td__metrics_args *in, bool instant, int64_t now_ns,
                                 td__metrics_params *p, td_err *err);

/*
 * The same checks for the gRPC requests (nanosecond start/end/step; step 0 =
 * default): p->q, start_ns, end_ns, step_ns and instant are set by the caller;
 * this clamps, validates and aligns them in place.
 */
td_status td__metrics_prepare(td__metrics_params *p, int64_t now_ns, td_err *err);

typedef struct td__metrics td__metrics;

/*
 * Parse p->q (it must be a metrics query) and set up the series. p is copied.
 * Errors: TD_INVALID "invalid TraceQL query: ..." (parse errors, quantiles
 * outside [0, 1], too many by() fields, not a metrics query), TD_NOMEM.
 */
td_status td__metrics_new(const td__metrics_params *p, td__metrics **out, td_err *err);
void td__metrics_free(td__metrics *m);

/*
 * Evaluate the query's spanset filter over trace t and add its matching spans
 * to the series. a holds the per-trace results (the caller may reset it after
 * the call). Errors: TD_INVALID from the evaluator, TD_NOMEM.
 */
td_status td__metrics_observe(td__metrics *m, const td_traceql_trace *t, td_arena *a, td_err *err);

/* Tell the response that not every candidate was inspected (status PARTIAL). */
void td__metrics_set_partial(td__metrics *m, const char *why);

/* Count what td__search_load read, for the response metrics. */
void td__metrics_add_inspected(td__metrics *m, uint64_t traces, uint64_t bytes);

/*
 * Append the response: QueryRangeResponse or (p->instant) QueryInstantResponse,
 * Tempo JSON or (p->pb) protobuf. Series are sorted like Tempo's (by label
 * count, then keys and values). For protobuf every series is one field-1
 * entry and metrics/status/message come last (a caller may split the series
 * across several messages). Errors: TD_NOMEM.
 */
td_status td__metrics_encode(td__metrics *m, td_buf *out, td_err *err);

/*
 * The protobuf response split into pieces for a stream: the encoded series
 * entries (field 1 each) and the trailer (fields 2-4), owned by m.
 */
td_status td__metrics_encode_parts(td__metrics *m, td_buf **series, size_t *nseries,
                                   td_buf *trailer, td_err *err);

/*
 * The whole query: candidates of the window (td__search_candidates, bounded
 * by p->max_traces), each loaded (td__search_load) and observed until
 * p->max_bytes or p->timeout_ms stop it; a cut scan makes the response PARTIAL
 * with a message and completedJobs < totalJobs (one job per candidate, plus
 * one for what the candidate bound left out), as /api/search does. On success out holds the body
 * (or, with parts != NULL, nothing: *parts is the prepared td__metrics for
 * td__metrics_encode_parts, to be freed by the caller).
 * Errors: as td__metrics_new, the store's, TD_NOMEM.
 */
td_status td__metrics_run(td_store *s, const td__tenants *ts, const td__metrics_params *p,
                          td_buf *out, td__metrics **parts, td_err *err);

/* Register StreamingQuerier/MetricsQueryRange and /MetricsQueryInstant (grpc_metrics.c). */
struct td__query_grpc;
td_status td__grpc_metrics_register(struct td__query_grpc *g, const td__grpc_search_ctx *ctx,
                                    td_err *err);

#endif
