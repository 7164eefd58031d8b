/*
 * grpc_tags.c - /tempopb.StreamingQuerier/SearchTags, SearchTagsV2, SearchTagValues
 * and SearchTagValuesV2 (API-CONTRACT §3.9): the request message is mapped onto
 * the same td__tags_req the HTTP routes build, so both answer the same; the
 * result goes out as one protobuf message (metrics inside), then status OK.
 *
 * A result larger than one gRPC message may be (TD_QUERY_GRPC_MAX_MSG) is cut:
 * every list is halved until it fits. Tag lists that large only come from
 * requests without a limit; Grafana always sends one.
 */
#include "api/grpc_query.h"
#include "api/tempo_tags.h"

#include "tempopb/tempo_tags.pb-c.h"

#include <string.h>

static void halve(td__tags_result *res)
{
    res->nstrings /= 2;
    res->nvalues /= 2;
    for (size_t i = 0; i < res->nscopes; i++) {
        res->scopes[i].n /= 2;
    }
}

static td_status run(td__query_grpc_call *call, const td__grpc_tags_ctx *ctx, td__tags_req *r,
                     td_err *err)
{
    if (!ctx->store) {
        return td_err_set(err, TD_OVERLOADED, "no trace store configured");
    }
    td_arena *a = td__query_grpc_arena(call);
    td__tags_result res;
    td_status st =
        td__tags_run(ctx->store, td__query_grpc_tenants(call), r, &ctx->limits, a, &res, err);
    if (st) {
        return st;
    }
    td_buf out = TD_BUF_INIT;
    for (;;) {
        td_buf_reset(&out);
        if ((st = td__tags_pb(&res, &out, err)) != TD_OK || out.len <= TD_QUERY_GRPC_MAX_MSG) {
            break;
        }
        halve(&res);
    }
    if (!st) {
        st = td__query_grpc_send(call, out.data, out.len, err);
    }
    td_buf_release(&out);
    return st;
}

static td_status tags(td__query_grpc_call *call, const td__grpc_tags_ctx *ctx, td__tags_kind kind,
                      td_err *err)
{
    td_slice req = td__query_grpc_request(call);
    Tempopb__SearchTagsRequest *m =
        tempopb__search_tags_request__unpack(NULL, req.len, (const uint8_t *)req.ptr);
    if (!m) {
        return td_err_set(err, TD_INVALID, "invalid request: cannot decode SearchTagsRequest");
    }
    td__tags_req r = {.kind = kind,
                      .scope = m->scope,
                      .q = m->query,
                      .start = m->start,
                      .end = m->end,
                      .limit = m->maxtagsperscope};
    td_status st = run(call, ctx, &r, err);
    tempopb__search_tags_request__free_unpacked(m, NULL);
    return st;
}

static td_status values(td__query_grpc_call *call, const td__grpc_tags_ctx *ctx, td__tags_kind kind,
                        td_err *err)
{
    td_slice req = td__query_grpc_request(call);
    Tempopb__SearchTagValuesRequest *m =
        tempopb__search_tag_values_request__unpack(NULL, req.len, (const uint8_t *)req.ptr);
    if (!m) {
        return td_err_set(err, TD_INVALID, "invalid request: cannot decode SearchTagValuesRequest");
    }
    td__tags_req r = {.kind = kind,
                      .tag = m->tagname,
                      .q = m->query,
                      .start = m->start,
                      .end = m->end,
                      .limit = m->maxtagvalues};
    td_status st = run(call, ctx, &r, err);
    tempopb__search_tag_values_request__free_unpacked(m, NULL);
    return st;
}

static td_status h_tags(td__query_grpc_call *call, void *cls, td_err *err)
{
    return tags(call, cls, TD__TAGS_V1, err);
}

static td_status h_tags_v2(td__query_grpc_call *call, void *cls, td_err *err)
{
    return tags(call, cls, TD__TAGS_V2, err);
}

static td_status h_values(td__query_grpc_call *call, void *cls, td_err *err)
{
    return values(call, cls, TD__TAG_VALUES_V1, err);
}

static td_status h_values_v2(td__query_grpc_call *call, void *cls, td_err *err)
{
    return values(call, cls, TD__TAG_VALUES_V2, err);
}

td_status td__grpc_tags_register(struct td__query_grpc *g, const td__grpc_tags_ctx *ctx,
                                 td_err *err)
{
    static const struct {
        const char *path;
        td__query_grpc_handler fn;
    } rows[] = {
        {"/tempopb.StreamingQuerier/SearchTags", h_tags},
        {"/tempopb.StreamingQuerier/SearchTagsV2", h_tags_v2},
        {"/tempopb.StreamingQuerier/SearchTagValues", h_values},
        {"/tempopb.StreamingQuerier/SearchTagValuesV2", h_values_v2},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        td_status st = td__query_grpc_register(g, rows[i].path, rows[i].fn, (void *)ctx, err);
        if (st) {
            return st;
        }
    }
    return TD_OK;
}
