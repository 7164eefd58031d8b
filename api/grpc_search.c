/*
 * grpc_search.c - /tempopb.StreamingQuerier/Search (API-CONTRACT §3.9): the
 * SearchRequest is mapped onto the /api/search parameters (same defaults and
 * validation, td__search_parse) and the result is streamed as tempopb
 * SearchResponse messages: normally one with every trace; when that would
 * exceed TD_QUERY_GRPC_MAX_MSG the traces are split across several messages.
 * Every message carries the metrics (completedJobs = totalJobs = 1).
 */
#include "api/grpc_query.h"
#include "api/tempo.h"

#include "tempopb/tempo.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Read a varint at *p (bounded by end); false when malformed. */
static bool rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            return true;
        }
    }
    return false;
}

/*
 * Send body (a SearchResponse from td__search: field-1 entries, then the field-2
 * metrics entry) as one message, or split into several that each end with the
 * metrics entry.
 */
static td_status send_split(td__query_grpc_call *call, const uint8_t *body, size_t len,
                            td_err *err)
{
    if (len <= TD_QUERY_GRPC_MAX_MSG) {
        return td__query_grpc_send(call, body, len, err);
    }
    /* locate the entries */
    const uint8_t *p = body, *end = body + len, *metrics = NULL;
    size_t nmetrics = 0;
    while (p < end) {
        const uint8_t *e0 = p;
        uint64_t key, n;
        if (!rd_varint(&p, end, &key) || (key & 7) != 2 || !rd_varint(&p, end, &n) ||
            n > (uint64_t)(end - p)) {
            return td_err_set(err, TD_INTERNAL, "malformed search response");
        }
        p += n;
        if ((key >> 3) == 2) {
            metrics = e0;
            nmetrics = (size_t)(p - e0);
        }
    }
    td_buf msg = TD_BUF_INIT;
    td_status st = TD_OK;
    bool sent = false;
    p = body;
    while (p < end) {
        const uint8_t *e0 = p;
        uint64_t key, n;
        rd_varint(&p, end, &key);
        rd_varint(&p, end, &n);
        p += n;
        if ((key >> 3) != 1) {
            continue;
        }
        size_t elen = (size_t)(p - e0);
        if (elen + nmetrics > TD_QUERY_GRPC_MAX_MSG) {
            st = td_err_set(err, TD_TOO_LARGE, "a search result trace exceeds the message limit");
            goto out;
        }
        if (msg.len && msg.len + elen + nmetrics > TD_QUERY_GRPC_MAX_MSG) {
            td_buf_add(&msg, metrics, nmetrics);
            if ((st = td__query_grpc_send(call, msg.data, msg.len, err)) != TD_OK) {
                goto out;
            }
            sent = true;
            td_buf_reset(&msg);
        }
        td_buf_add(&msg, e0, elen);
    }
    if (msg.len || !sent) {
        td_buf_add(&msg, metrics, nmetrics);
        st = td__query_grpc_send(call, msg.data, msg.len, err);
    }
out:
    td_buf_release(&msg);
    return st;
}

static td_status h_search(td__query_grpc_call *call, void *cls, td_err *err)
{
    const td__grpc_search_ctx *ctx = cls;
    td_store *store = ctx->store;
    if (!store) {
        return td_err_set(err, TD_OVERLOADED, "no trace store configured");
    }
    td_slice req = td__query_grpc_request(call);
    Tempopb__SearchRequest *sr =
        tempopb__search_request__unpack(NULL, req.len, (const uint8_t *)req.ptr);
    if (!sr) {
        return td_err_set(err, TD_INVALID, "invalid request: cannot decode SearchRequest");
    }
    char limit[16], spss[16], start[16], end[16], mind[24], maxd[24];
    td__search_args in = {.q = sr->query};
    if (sr->n_tags) {
        in.tags = "tags";
    }
    if (sr->limit) {
        snprintf(limit, sizeof(limit), "%" PRIu32, sr->limit);
        in.limit = limit;
    }
    if (sr->spansperspanset) {
        snprintf(spss, sizeof(spss), "%" PRIu32, sr->spansperspanset);
        in.spss = spss;
    }
    if (sr->start) {
        snprintf(start, sizeof(start), "%" PRIu32, sr->start);
        in.start = start;
    }
    if (sr->end) {
        snprintf(end, sizeof(end), "%" PRIu32, sr->end);
        in.end = end;
    }
    if (sr->mindurationms) {
        snprintf(mind, sizeof(mind), "%" PRIu32 "ms", sr->mindurationms);
        in.min_duration = mind;
    }
    if (sr->maxdurationms) {
        snprintf(maxd, sizeof(maxd), "%" PRIu32 "ms", sr->maxdurationms);
        in.max_duration = maxd;
    }
    td__search_params p;
    td_buf out = TD_BUF_INIT;
    td_status st = td__search_parse(&in, (int64_t)time(NULL), &p, err);
    if (!st) {
        p.pb = true;
        p.max_traces = ctx->max_traces;
        p.max_trace_bytes = ctx->max_trace_bytes;
        p.max_bytes = ctx->max_bytes;
        p.timeout_ms = ctx->timeout_ms;
        st = td__search(store, td__query_grpc_tenants(call), &p, &out, err);
    }
    tempopb__search_request__free_unpacked(sr, NULL);
    if (!st) {
        st = send_split(call, (const uint8_t *)out.data, out.len, err);
    }
    td_buf_release(&out);
    return st;
}

td_status td__grpc_search_register(struct td__query_grpc *g, const td__grpc_search_ctx *ctx,
                                   td_err *err)
{
    return td__query_grpc_register(g, "/tempopb.StreamingQuerier/Search", h_search, (void *)ctx,
                                   err);
}
