/*
 * grpc_metrics.c - /tempopb.StreamingQuerier/MetricsQueryRange and
 * /MetricsQueryInstant (API-CONTRACT §3.9): the QueryRangeRequest /
 * QueryInstantRequest (nanosecond start, end, step) goes through the same
 * checks and evaluation as the HTTP endpoints (tempo_metrics.c) and the result
 * is streamed as QueryRangeResponse / QueryInstantResponse messages: normally
 * one; when the series do not fit TD_QUERY_GRPC_MAX_MSG they are split across
 * several, each carrying the metrics (and status/message when PARTIAL).
 */
#include "api/grpc_query.h"
#include "api/tempo_metrics.h"

#include "tempopb/tempo_metrics.pb-c.h"

#include <string.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Send the series in as few messages as fit, each ending with the trailer. */
static td_status send_parts(td__query_grpc_call *call, const td_buf *parts, size_t n,
                            const td_buf *trailer, td_err *err)
{
    td_buf msg = TD_BUF_INIT;
    td_status st = TD_OK;
    bool sent = false;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len + trailer->len > TD_QUERY_GRPC_MAX_MSG) {
            st = td_err_set(err, TD_TOO_LARGE, "a metrics series exceeds the message limit");
            goto out;
        }
        if (msg.len && msg.len + parts[i].len + trailer->len > TD_QUERY_GRPC_MAX_MSG) {
            td_buf_add(&msg, trailer->data, trailer->len);
            if ((st = td__query_grpc_send(call, msg.data, msg.len, err)) != TD_OK) {
                goto out;
            }
            sent = true;
            td_buf_reset(&msg);
        }
        td_buf_add(&msg, parts[i].data, parts[i].len);
    }
    if (msg.len || !sent) {
        td_buf_add(&msg, trailer->data, trailer->len);
        st = td__query_grpc_send(call, msg.data, msg.len, err);
    }
out:
    td_buf_release(&msg);
    return st;
}

/* Stop evaluating once the client has gone (cancel, deadline, server stop). */
static bool call_cancelled(void *cls)
{
    return td__query_grpc_cancelled(cls);
}

static td_status run(td__query_grpc_call *call, const td__grpc_search_ctx *ctx,
                     td__metrics_params *p, td_err *err)
{
    p->pb = true;
    p->cancelled = call_cancelled;
    p->cancel_cls = call;
    p->max_traces = ctx->max_traces;
    p->max_trace_bytes = ctx->max_trace_bytes;
    p->max_bytes = ctx->max_bytes;
    p->timeout_ms = ctx->timeout_ms;
    td_status st = td__metrics_prepare(p, now_ns(), err);
    td__metrics *m = NULL;
    if (!st) {
        st = td__metrics_run(ctx->store, td__query_grpc_tenants(call), p, NULL, &m, err);
    }
    td_buf *parts, trailer;
    size_t n;
    if (!st) {
        st = td__metrics_encode_parts(m, &parts, &n, &trailer, err);
    }
    if (!st) {
        st = send_parts(call, parts, n, &trailer, err);
    }
    td__metrics_free(m);
    return st;
}

static td_status h_range(td__query_grpc_call *call, void *cls, td_err *err)
{
    const td__grpc_search_ctx *ctx = cls;
    if (!ctx->store) {
        return td_err_set(err, TD_OVERLOADED, "no trace store configured");
    }
    td_slice req = td__query_grpc_request(call);
    Tempopb__QueryRangeRequest *r =
        tempopb__query_range_request__unpack(NULL, req.len, (const uint8_t *)req.ptr);
    if (!r) {
        return td_err_set(err, TD_INVALID, "invalid request: cannot decode QueryRangeRequest");
    }
    td__metrics_params p;
    memset(&p, 0, sizeof(p));
    p.q = r->query;
    p.start_ns = r->start;
    p.end_ns = r->end;
    p.step_ns = r->step;
    p.instant = r->instant;
    p.exemplars = r->exemplars;
    p.max_series = r->maxseries;
    if (p.step_ns == 0 && p.end_ns > p.start_ns) {
        p.step_ns = td__metrics_default_step(p.start_ns, p.end_ns);
    }
    td_status st = run(call, ctx, &p, err);
    tempopb__query_range_request__free_unpacked(r, NULL);
    return st;
}

static td_status h_instant(td__query_grpc_call *call, void *cls, td_err *err)
{
    const td__grpc_search_ctx *ctx = cls;
    if (!ctx->store) {
        return td_err_set(err, TD_OVERLOADED, "no trace store configured");
    }
    td_slice req = td__query_grpc_request(call);
    Tempopb__QueryInstantRequest *r =
        tempopb__query_instant_request__unpack(NULL, req.len, (const uint8_t *)req.ptr);
    if (!r) {
        return td_err_set(err, TD_INVALID, "invalid request: cannot decode QueryInstantRequest");
    }
    td__metrics_params p;
    memset(&p, 0, sizeof(p));
    p.q = r->query;
    p.start_ns = r->start;
    p.end_ns = r->end;
    p.instant = true;
    p.instant_response = true;
    td_status st = run(call, ctx, &p, err);
    tempopb__query_instant_request__free_unpacked(r, NULL);
    return st;
}

td_status td__grpc_metrics_register(struct td__query_grpc *g, const td__grpc_search_ctx *ctx,
                                    td_err *err)
{
    td_status st = td__query_grpc_register(g, "/tempopb.StreamingQuerier/MetricsQueryRange",
                                           h_range, (void *)ctx, err);
    if (!st) {
        st = td__query_grpc_register(g, "/tempopb.StreamingQuerier/MetricsQueryInstant", h_instant,
                                     (void *)ctx, err);
    }
    return st;
}
