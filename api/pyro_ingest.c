/*
 * pyro_ingest.c - the Pyroscope ingest routes: POST /ingest (= /pyroscope/ingest)
 * and POST /push.v1.PusherService/Push.
 *
 * The order of checks follows Pyroscope: method, tenant, store availability,
 * then the profile work (td_profiler_ingest / td_profiler_push), whose result
 * carries the HTTP status Pyroscope v2 would answer (§5.0: 400 bad metadata,
 * 413 over a limit, 422 a problem inside the profile). Every answer that is not
 * a success is counted in traced_profiles_rejected_total{path,reason} where it is
 * produced (STYLE rule 10), successes in traced_profiles_ingested_total and
 * traced_profile_samples_ingested_total.
 *
 * Errors are JSON `{"code":"invalid_argument","message":"..."}` on both routes;
 * on Push they are Connect errors (same shape, status from the Connect code).
 */
#include "api/pyro_ingest.h"

#include "api/connect.h"
#include "api/json.h"
#include "api/tempo.h"
#include "core/gzip.h"
#include "core/log.h"
#include "core/metrics.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MOD "pyro_ingest"
#define CT_JSON "application/json"
#define CT_PROTO "application/proto"
#define CT_TEXT "text/plain; charset=utf-8"
#define ARENA_CHUNK (64 * 1024)
#define PUSH_BODY_MAX ((size_t)256 << 20) /* a gzipped PushRequest after inflating */

/* The Connect code name for an HTTP status (§6.1 table, inverted for what we send). */
static const char *code_of_http(int status)
{
    switch (status) {
    case 400:
    case 422:
        return "invalid_argument";
    case 401:
        return "unauthenticated";
    case 404:
        return "not_found";
    case 405:
    case 501:
        return "unimplemented";
    case 413:
    case 429:
        return "resource_exhausted";
    case 415:
        return "invalid_argument";
    case 503:
        return "unavailable";
    default:
        return status >= 500 ? "internal" : "unknown";
    }
}

static void reject(const td__pyro_ingest_req *in, td__pyro_ingest_reply *out, const char *path,
                   int status, const char *code, const char *msg)
{
    char reason[8];
    snprintf(reason, sizeof(reason), "%d", status);
    td_metric_add(td_metric_series(TD_M_PROFILES_REJECTED, path, reason, NULL), 1);
    if (status >= 500) {
        TD_LOG_THROTTLED(TD_LOG_WARN, MOD, "%s answered %d: %s", path, status, msg);
    } else {
        TD_LOG_THROTTLED(TD_LOG_INFO, MOD, "%s answered %d: %s", path, status, msg);
    }
    out->status = status;
    out->ctype = CT_JSON;
    td_buf_reset(out->body);
    td_json j;
    td_json_init(&j, out->body);
    td_json_begin_object(&j);
    td_json_key(&j, "code");
    td_json_string(&j, code ? code : code_of_http(status));
    if (msg && msg[0]) {
        td_json_key(&j, "message");
        td_json_string(&j, msg);
    }
    td_json_end_object(&j);
    (void)in;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The one tenant of a write (§9): `a|b` is refused. */
static td_status write_tenant(const td__pyro_ingest_req *in, td_arena *a, const char **tenant,
                              td_err *err)
{
    td__tenants ts;
    if (td__tempo_tenants(in->header(in->cookie, "X-Scope-OrgID"), in->multitenancy, a, &ts, err) !=
        TD_OK) {
        return err->code;
    }
    if (ts.n != 1) {
        return td_err_set(err, TD_INVALID,
                          "multiple org IDs present: writes take exactly one tenant");
    }
    *tenant = ts.names[0];
    return TD_OK;
}

static td_status store_write(void *ud, const td_pwrite *w, td_err *err)
{
    return td_pstore_write(ud, w, err);
}

static void count_ok(const char *path, const td_pingest_result *res)
{
    td_metric_add(td_metric_series(TD_M_PROFILES_INGESTED, path, NULL, NULL), res->profiles);
    td_metric_add(td_metric_series(TD_M_PROFILE_SAMPLES_INGESTED, path, NULL, NULL), res->samples);
}

void td__pyro_ingest(const td__pyro_ingest_req *in, td__pyro_ingest_reply *out)
{
    const char *path = "ingest";
    if (strcmp(in->method, "POST") != 0) {
        out->allow = "POST";
        reject(in, out, path, 405, NULL, "method not allowed");
        return;
    }
    td_arena a;
    td_arena_init(&a, ARENA_CHUNK, 0);
    td_err err;
    td_err_init(&err);
    const char *tenant = NULL;
    if (write_tenant(in, &a, &tenant, &err) != TD_OK) {
        reject(in, out, path, td_status_http(err.code), NULL, err.msg);
        goto done;
    }
    if (!in->ps) {
        reject(in, out, path, 503, NULL, "no profile store configured");
        goto done;
    }
    td_pingest_req r = {.tenant = tenant,
                        .name = in->arg(in->cookie, "name"),
                        .from = in->arg(in->cookie, "from"),
                        .until = in->arg(in->cookie, "until"),
                        .sample_rate = in->arg(in->cookie, "sampleRate"),
                        .spy_name = in->arg(in->cookie, "spyName"),
                        .units = in->arg(in->cookie, "units"),
                        .aggregation = in->arg(in->cookie, "aggregationType"),
                        .format = in->arg(in->cookie, "format"),
                        .content_type = in->header(in->cookie, "Content-Type"),
                        .body = in->body.ptr ? in->body.ptr : "",
                        .len = in->body.len,
                        .now_ns = now_ns()};
    td_pingest_result res;
    if (td_profiler_ingest(in->opts, &r, &a, store_write, in->ps, &res, &err) != TD_OK) {
        reject(in, out, path, res.http >= 400 ? res.http : 500, NULL, err.msg);
        goto done;
    }
    count_ok(path, &res);
    out->status = 200;
    out->ctype = CT_TEXT;
    td_buf_reset(out->body);
done:
    td_arena_release(&a);
}

/* ---- push.v1 over Connect (api/connect.c does the protocol) ---- */

/* What h_push sees of the request; reached tells the caller who counted a refusal. */
typedef struct push_ctx {
    const td__pyro_ingest_req *rq;
    bool reached;
} push_ctx;

static td_status h_push(void *ud, td_connect_call *call, const ProtobufCMessage *in,
                        ProtobufCMessage **out, td_err *err)
{
    push_ctx *pc = ud;
    const td__pyro_ingest_req *rq = pc->rq;
    pc->reached = true;
    const Push__V1__PushRequest *msg = (const Push__V1__PushRequest *)in;
    *out = NULL; /* the empty PushResponse */
    const char *tenant = NULL;
    td_status st;
    td_push_series *series = NULL;
    td_pingest_result res = {.http = 400};
    if ((st = write_tenant(rq, call->arena, &tenant, err)) != TD_OK) {
        goto fail;
    }
    if (!rq->ps) {
        st = td_err_set(err, TD_OVERLOADED, "no profile store configured");
        goto fail;
    }
    size_t nseries;
    if ((st = td_profiler_push_series(msg, call->arena, &series, &nseries, err)) != TD_OK ||
        (st = td_profiler_push(rq->opts, tenant, series, nseries, now_ns(), call->arena,
                               store_write, rq->ps, &res, err)) != TD_OK) {
        goto fail;
    }
    count_ok("push", &res);
    return TD_OK;
fail:;
    char reason[8];
    snprintf(reason, sizeof(reason), "%d", td_connect_code_http(td_connect_code_of(st)));
    td_metric_add(td_metric_series(TD_M_PROFILES_REJECTED, "push", reason, NULL), 1);
    TD_LOG_THROTTLED(st == TD_INVALID ? TD_LOG_INFO : TD_LOG_WARN, MOD, "push refused: %s",
                     err->msg);
    return st;
}

static const td_connect_method push_methods[] = {
    {"/push.v1.PusherService/Push", &push__v1__push_request__descriptor,
     &push__v1__push_response__descriptor, h_push},
};

void td__pyro_push(const td__pyro_ingest_req *in, td__pyro_ingest_reply *out)
{
    td_arena a;
    td_arena_init(&a, ARENA_CHUNK, 0);
    td_connect_req rq = {.method = in->method,
                         .content_type = in->header(in->cookie, "Content-Type"),
                         .content_encoding = in->header(in->cookie, "Content-Encoding"),
                         .accept = in->header(in->cookie, "Accept"),
                         .org_id = in->header(in->cookie, "X-Scope-OrgID"),
                         .body = in->body.ptr,
                         .len = in->body.len,
                         .max_body = PUSH_BODY_MAX};
    td_connect_reply rp = {.body = *out->body};
    push_ctx pc = {.rq = in};
    const td_connect_method *m = td_connect_find(
        push_methods, sizeof(push_methods) / sizeof(push_methods[0]), in->url ? in->url : "");
    td_connect_serve(m, &pc, &rq, &a, &rp);
    *out->body = rp.body;
    out->status = rp.status;
    out->ctype = rp.ctype;
    out->allow = rp.allow_post ? "POST" : NULL;
    if (rp.code != TD_CONNECT_OK && !pc.reached) {
        /* refusals of the protocol layer (405, 415, bad encoding, undecodable body) */
        char reason[8];
        snprintf(reason, sizeof(reason), "%d", rp.status);
        td_metric_add(td_metric_series(TD_M_PROFILES_REJECTED, "push", reason, NULL), 1);
    }
    td_arena_release(&a);
}
