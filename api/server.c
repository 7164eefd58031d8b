/*
 * server.c - the query port: one listening socket shared by HTTP/1.1 and h2c gRPC,
 * a libmicrohttpd daemon and a small route table.
 *
 * Connections. We listen and accept ourselves (accept4 on one acceptor thread) and
 * classify each connection by peeking (MSG_PEEK, never reading) at its first
 * bytes: the HTTP/2 client preface goes to the gRPC server in grpc_query.c
 * (API-CONTRACT §1 rule 5), anything else to libmicrohttpd with
 * MHD_add_connection (its daemon runs without a listening socket of its own).
 * Classification is non-blocking (epoll, edge-triggered for the connections
 * being classified), so a client that connects and says nothing delays nobody;
 * after CLASSIFY_TIMEOUT_MS it is treated as HTTP/1.1 and libmicrohttpd's idle
 * timeout applies, as before.
 *
 * Requests. Every request is answered from the first access-handler call (no
 * route takes a body), so a handler is a plain function that fills a `req`
 * (status, content type, body) and the dispatcher does the common work once:
 * request id, log context, response headers, and the two metrics (STYLE rule 10:
 * the dispatcher that sends a status is where it is counted). The trace work
 * itself is in tempo_trace.c.
 */
#include "api/api.h"
#include "api/connect.h"
#include "api/grpc_query.h"
#include "api/json.h"
#include "api/pyro.h"
#include "api/pyro_ingest.h"
#include "api/tempo.h"
#include "api/tempo_metrics.h"
#include "api/tempo_tags.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MOD "api"

/* The Tempo version we claim in /api/status/buildinfo (Grafana gates features on >= 2.7.0). */
#define TEMPO_COMPAT_VERSION "2.9.0"
#define REQUEST_ID_MAX 64
#define CLASSIFY_TIMEOUT_MS 10000 /* silent longer: treated as HTTP/1.1 */
#define MAX_PENDING 1024          /* connections being classified; beyond: oldest -> HTTP/1.1 */
#define ACCEPT_BURST 64           /* accepts per wake-up, so classification keeps up */
#define ACCEPT_PAUSE_MS 100       /* after EMFILE and the like */
#define BODY_MAX ((size_t)64 << 20) /* request bodies of body routes (Connect), before gunzip */
#define PYRO_ARENA_LIMIT ((size_t)1 << 30) /* one Pyroscope query's memory */

const td_opt td_api_opt_rows[] = {
    {"query-listen", TD_OPT_STRING, "0.0.0.0:3200", offsetof(td_api_opts, listen),
     "Address of the query port (Tempo API, /ready, /metrics): host:port, [v6addr]:port; "
     "port 0 picks a free port.",
     0, 0},
    {"query-threads", TD_OPT_INT, "4", offsetof(td_api_opts, threads),
     "HTTP worker threads serving the query port.", 1, 1024},
    {"max-trace-size", TD_OPT_SIZE, "50MiB", offsetof(td_api_opts, max_trace_bytes),
     "Largest trace returned by trace-by-ID (stored bytes): /api/traces answers 422 beyond it, "
     "/api/v2/traces a partial trace. 0 = unlimited.",
     0, 0},
    {"multitenancy", TD_OPT_BOOL, "false", offsetof(td_api_opts, multitenancy),
     "Require the X-Scope-OrgID header (tenant ID; `a|b` reads several tenants) on queries "
     "and ingest; off = one implicit tenant.",
     0, 0},
    {"search-max-traces", TD_OPT_INT, "20000", offsetof(td_api_opts, search_max_traces),
     "Candidate traces one search, TraceQL metrics query or filtered tag lookup loads and "
     "evaluates at most (newest minute buckets first); the response metrics count what was "
     "inspected.",
     1, 100000000},
    {"search-max-bytes", TD_OPT_SIZE, "1GiB", offsetof(td_api_opts, search_max_bytes),
     "Stored trace bytes one search, metrics query or filtered tag lookup reads at most. A "
     "query that reaches it stops and answers with what it found so far (completedJobs < "
     "totalJobs in its metrics; metrics queries answer PARTIAL). 0 = unlimited.",
     0, 0},
    {"search-timeout", TD_OPT_DURATION, "30s", offsetof(td_api_opts, search_timeout_ms),
     "Time one search, metrics query or filtered tag lookup may run. A query that reaches it "
     "stops and answers with what it found so far (completedJobs < totalJobs in its "
     "metrics; metrics queries answer PARTIAL). 0 = unlimited.",
     0, 3600 * 1000},
    {"pyroscope-listen", TD_OPT_STRING, "", offsetof(td_api_opts, pyroscope_listen),
     "Optional second listener (Pyroscope's port, e.g. 0.0.0.0:4040) serving the same HTTP "
     "routes as the query port (Pyroscope query API, /ready...); empty disables.",
     0, 0},
};
const size_t td_api_nopt_rows = sizeof(td_api_opt_rows) / sizeof(td_api_opt_rows[0]);

/* An accepted connection whose protocol is not known yet (acceptor thread only). */
typedef struct pending {
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t deadline_ms;
    struct pending *prev, *next; /* in accept order, which is deadline order */
} pending;

struct td_api {
    td_api_opts o; /* copy; o.listen and o.pyroscope_listen are owned */
    td_store *store;
    td__pyro pyro;     /* the Pyroscope routes' view of the api (pyro.ps = the profile store) */
    td_pstore *pstore; /* profile store of the ingest routes (not owned); NULL: 503 */
    struct MHD_Daemon *d;
    struct MHD_Daemon *d_pyro; /* pyroscope-listen, NULL when off */
    atomic_int pyro_port;
    td__query_grpc *grpc;
    td__grpc_search_ctx search_ctx; /* the Search method's view of the api */
    td__grpc_tags_ctx tags_ctx;     /* the SearchTag* methods' view */
    atomic_bool ready;
    atomic_bool was_ready; /* tells "starting up" from "shutting down" in /ready */
    atomic_int port;

    /* the acceptor: listening socket, epoll set, stop signal, connections being classified */
    int lfd, epfd, wakefd;
    pthread_t acceptor;
    bool acceptor_running;
    pending *head, *tail;
    size_t npending;
    int64_t paused_until_ms; /* accept paused after EMFILE & co; 0 = not paused */
};

/* One request being answered. Handlers fill status, ctype and body. */
typedef struct req {
    td_api *api;
    struct MHD_Connection *c;
    const char *arg; /* path remainder after a prefix route */
    const char *url;
    const char *method;
    td_slice in;       /* request body (body routes only) */
    const char *allow; /* Allow header of a 405 (NULL = "GET, HEAD") */
    const char *reqid;
    int status;
    const char *ctype;
    td_buf body;
} req;

typedef void (*handler_fn)(req *r);

/*
 * How a route's path matches (false/true keep meaning exact/prefix), plus the
 * R_BODY flag: the route takes a request body, which the dispatcher collects
 * (up to BODY_MAX) into req.in, and accepts any method (its handler checks).
 */
enum {
    R_EXACT = 0,
    R_PREFIX = 1,  /* a non-empty remainder without '/' follows */
    R_SERVICE = 2, /* "/pkg.Svc/" anywhere in the path (routing prefix), then a method */
    R_MATCH = 3,   /* mask of the match kind */
    R_BODY = 8,
};

typedef struct route {
    const char *path; /* exact path, or the prefix before {id} */
    int prefix;       /* R_EXACT / R_PREFIX / R_SERVICE, optionally | R_BODY */
    const char *name; /* route label in metrics */
    handler_fn fn;
} route;

static bool takes_body(const route *rt)
{
    return (rt->prefix & R_BODY) != 0;
}

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_JSON "application/json"
#define CT_PROTOBUF "application/protobuf"

/* ---- small reply helpers ---- */

static void reply(req *r, int status, const char *ctype, const char *body)
{
    r->status = status;
    r->ctype = ctype;
    td_buf_reset(&r->body);
    td_buf_addstr(&r->body, body);
}

/* An error the way Go's http.Error writes it: text/plain, message + "\n". */
static void reply_error(req *r, int status, const char *msg)
{
    reply(r, status, CT_TEXT, msg);
    td_buf_addch(&r->body, '\n');
}

static void reply_err(req *r, const td_err *err)
{
    int status = td_status_http(err->code);
    if (status >= 500) {
        TD_LOG_THROTTLED(TD_LOG_ERROR, MOD, "query failed: %s: %s", td_status_name(err->code),
                         err->msg);
    }
    reply_error(r, status, err->msg[0] ? err->msg : td_status_name(err->code));
}

static const char *header(req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

static const char *query_arg(req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- handlers ---- */

static void h_ready(req *r)
{
    if (atomic_load(&r->api->ready)) {
        reply(r, 200, CT_TEXT, "ready\n");
    } else if (atomic_load(&r->api->was_ready)) {
        reply(r, 503, CT_TEXT, "not ready: shutting down\n");
    } else {
        reply(r, 503, CT_TEXT, "not ready: starting up\n");
    }
}

static void h_health(req *r)
{
    r->status = 200;
    r->ctype = CT_JSON;
    td_json j;
    td_json_init(&j, &r->body);
    td_json_begin_object(&j);
    td_json_key(&j, "status");
    td_json_string(&j, "healthy");
    td_json_key(&j, "version");
    td_json_string(&j, TD_VERSION);
    td_json_end_object(&j);
}

static void h_metrics(req *r)
{
    r->status = 200;
    r->ctype = "text/plain; version=0.0.4; charset=utf-8";
    td_metrics_write(&r->body);
}

static void h_echo(req *r)
{
    reply(r, 200, CT_TEXT, "echo");
}

/* YYYY-MM-DD of the build (TD_BUILD_DATE if the build defines it, else __DATE__). */
static void build_date(char out[32])
{
#ifdef TD_BUILD_DATE
    snprintf(out, 32, "%s", TD_BUILD_DATE);
#else
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    const char *d = __DATE__; /* "Mmm dd yyyy" */
    const char *m = strstr(months, (char[]){d[0], d[1], d[2], 0});
    unsigned mon = m ? (unsigned)(m - months) / 3 + 1 : 1;
    unsigned day = (unsigned)atoi(d + 4) % 100;
    unsigned year = (unsigned)atoi(d + 7) % 10000;
    snprintf(out, 32, "%04u-%02u-%02u", year, mon, day);
#endif
}

static void h_buildinfo(req *r)
{
    char date[32];
    build_date(date);
    r->status = 200;
    r->ctype = CT_JSON;
    td_json j;
    td_json_init(&j, &r->body);
    td_json_begin_object(&j);
    td_json_key(&j, "version");
    td_json_string(&j, TEMPO_COMPAT_VERSION);
    td_json_key(&j, "revision");
    td_json_string(&j, TD_VERSION);
    td_json_key(&j, "branch");
    td_json_string(&j, "main");
    td_json_key(&j, "buildUser");
    td_json_string(&j, "");
    td_json_key(&j, "buildDate");
    td_json_string(&j, date);
    td_json_key(&j, "goVersion");
    td_json_string(&j, "");
    td_json_end_object(&j);
}

/* Arena cap for one trace request: decoded protobuf is a few times its packed size. */
static size_t trace_arena_limit(uint64_t max_trace)
{
    if (!max_trace) {
        return 0;
    }
    uint64_t lim = max_trace > UINT64_MAX / 16 ? UINT64_MAX : max_trace * 16;
    if (lim < 64u << 20) {
        lim = 64u << 20;
    }
    return lim > SIZE_MAX ? SIZE_MAX : (size_t)lim;
}

/*
 * What every trace-store handler does first: 503 without a store, the tenants
 * named by X-Scope-OrgID (resolved in a), and the tenant pushed into the log
 * context. Returns false when an error reply has been sent.
 */
static bool store_tenants(req *r, td_arena *a, td__tenants *ts)
{
    td_api *api = r->api;
    td_err err;
    td_err_init(&err);
    if (!api->store) {
        reply_error(r, 503, "no trace store configured");
        return false;
    }
    const char *org = header(r, "X-Scope-OrgID");
    if (td__tempo_tenants(org, api->o.multitenancy, a, ts, &err) != TD_OK) {
        reply_err(r, &err);
        return false;
    }
    td_log_ctx_push(r->reqid, api->o.multitenancy ? org : TD_DEFAULT_TENANT);
    return true;
}

/*
 * GET /api/traces/{id} (v1) and /api/v2/traces/{id} (v2), API-CONTRACT §3.3/3.4.
 * Order of checks follows Tempo: tenant, trace ID, start/end.
 */
static void h_trace(req *r, bool v2)
{
    td_api *api = r->api;
    td_err err;
    td_err_init(&err);
    td_arena a;
    td_arena_init(&a, 64 * 1024, trace_arena_limit(api->o.max_trace_bytes));

    uint8_t id[16];
    uint64_t start_ns, end_ns;
    td__tenants ts;
    if (!store_tenants(r, &a, &ts)) {
        goto out;
    }
    if (td__tempo_parse_trace_id(r->arg, strlen(r->arg), id, &err) != TD_OK ||
        td__tempo_parse_range(query_arg(r, "start"), query_arg(r, "end"), &start_ns, &end_ns,
                              &err) != TD_OK) {
        reply_err(r, &err);
        goto out;
    }
    td__tempo_format fmt = td__tempo_negotiate(header(r, MHD_HTTP_HEADER_ACCEPT));

    td__trace t;
    td__trace_init(&t, &a, api->o.max_trace_bytes);
    td_status st = td__trace_fetch(&t, api->store, &ts, id, start_ns, end_ns, &err);
    if (st == TD_NOT_FOUND && !v2) {
        reply_error(r, 404, "trace not found");
        goto out;
    }
    if (st != TD_OK && st != TD_NOT_FOUND) {
        reply_err(r, &err);
        goto out;
    }
    if (t.partial && !v2) {
        /* v1 has no partial answer: Tempo refuses with 422 */
        char msg[96];
        snprintf(msg, sizeof(msg), "trace exceeds max size (max bytes: %" PRIu64 ")",
                 api->o.max_trace_bytes);
        reply_error(r, 422, msg);
        goto out;
    }
    /* v2 not found is a 200 with an empty trace (Grafana shows "trace not found") */
    if (td__trace_finish(&t, &err) != TD_OK) {
        reply_err(r, &err);
        goto out;
    }
    r->status = 200;
    if (fmt == TD_TEMPO_PROTOBUF) {
        r->ctype = CT_PROTOBUF;
        st = v2 ? td__trace_pb_v2(&t, &r->body, &err) : td__trace_pb_v1(&t, &r->body, &err);
        if (st != TD_OK) {
            reply_err(r, &err);
        }
    } else {
        r->ctype = CT_JSON;
        if (v2) {
            td__trace_json_v2(&t, &r->body);
        } else {
            td__trace_json_v1(&t, &r->body);
        }
    }
out:
    td_arena_release(&a);
}

static void h_trace_v1(req *r)
{
    h_trace(r, false);
}

static void h_trace_v2(req *r)
{
    h_trace(r, true);
}

/*
 * Very old Grafana sent legacy tags as bare query parameters (`?service.name=x`).
 * When none of q, tags, start, end is present, every parameter that is not one
 * of the search parameters becomes a logfmt pair of the legacy `tags` string.
 */
typedef struct bare_tags {
    td_buf b;
    bool bad; /* a key logfmt cannot carry */
} bare_tags;

static bool search_param(const char *k)
{
    static const char *const known[] = {"q",    "tags",  "limit",       "spss",
                                        "start", "end",  "minDuration", "maxDuration"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(k, known[i]) == 0) {
            return true;
        }
    }
    return false;
}

static enum MHD_Result on_bare_tag(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    bare_tags *t = cls;
    if (!key || !*key || search_param(key)) {
        return MHD_YES;
    }
    for (const char *k = key; *k; k++) {
        if (*k == ' ' || *k == '=' || *k == '"' || (unsigned char)*k < 0x20) {
            t->bad = true;
            return MHD_NO;
        }
    }
    if (t->b.len) {
        td_buf_add(&t->b, " ", 1);
    }
    td_buf_add(&t->b, key, strlen(key));
    td_buf_add(&t->b, "=\"", 2);
    for (const char *v = value ? value : ""; *v; v++) {
        if (*v == '"' || *v == '\\') {
            td_buf_add(&t->b, "\\", 1);
        }
        td_buf_add(&t->b, v, 1);
    }
    td_buf_add(&t->b, "\"", 1);
    return MHD_YES;
}

/* GET /api/search (API-CONTRACT §3.5): tempo_search.c does the work. */
static void h_search(req *r)
{
    td_api *api = r->api;
    bare_tags bt = {.b = TD_BUF_INIT};
    td_err err;
    td_err_init(&err);
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td__tenants ts;
    if (!store_tenants(r, &a, &ts)) {
        goto out;
    }
    td__search_args in = {.q = query_arg(r, "q"),
                          .tags = query_arg(r, "tags"),
                          .limit = query_arg(r, "limit"),
                          .spss = query_arg(r, "spss"),
                          .start = query_arg(r, "start"),
                          .end = query_arg(r, "end"),
                          .min_duration = query_arg(r, "minDuration"),
                          .max_duration = query_arg(r, "maxDuration")};
    if (!in.q && !in.tags && !in.start && !in.end) {
        MHD_get_connection_values(r->c, MHD_GET_ARGUMENT_KIND, on_bare_tag, &bt);
        if (bt.bad) {
            reply_error(r, 400, "invalid tags: a tag name may not contain spaces, '=' or quotes");
            goto out;
        }
        if (bt.b.len) {
            td_buf_add(&bt.b, "", 1); /* NUL */
            in.tags = (const char *)bt.b.data;
        }
    }
    td__search_params *p = td_xmalloc(sizeof(*p)); /* large (holds the translated tags) */
    if (td__search_parse(&in, (int64_t)time(NULL), p, &err) != TD_OK) {
        td_free(p);
        reply_err(r, &err);
        goto out;
    }
    p->max_traces = api->o.search_max_traces > 0 ? (uint64_t)api->o.search_max_traces : 20000;
    p->max_trace_bytes = api->o.max_trace_bytes;
    p->max_bytes = api->o.search_max_bytes;
    p->timeout_ms = api->o.search_timeout_ms;
    p->pb = td__tempo_negotiate(header(r, MHD_HTTP_HEADER_ACCEPT)) == TD_TEMPO_PROTOBUF;
    td_buf_reset(&r->body);
    td_status st = td__search(api->store, &ts, p, &r->body, &err);
    bool pb = p->pb;
    td_free(p);
    if (st != TD_OK) {
        reply_err(r, &err);
        goto out;
    }
    r->status = 200;
    r->ctype = pb ? CT_PROTOBUF : CT_JSON;
out:
    td_buf_release(&bt.b);
    td_arena_release(&a);
}

/* ---- Pyroscope (pyro_query.c does the work) ---- */

/* POST /querier.v1.QuerierService/<Method> (Connect unary, API-CONTRACT §6.1). */
static void h_connect(req *r)
{
    td_arena a;
    td_arena_init(&a, 64 * 1024, PYRO_ARENA_LIMIT);
    td_connect_req rq = {.method = r->method,
                         .content_type = header(r, MHD_HTTP_HEADER_CONTENT_TYPE),
                         .content_encoding = header(r, MHD_HTTP_HEADER_CONTENT_ENCODING),
                         .accept = header(r, MHD_HTTP_HEADER_ACCEPT),
                         .org_id = header(r, "X-Scope-OrgID"),
                         .body = r->in.ptr,
                         .len = r->in.len};
    const td_connect_method *m = td_connect_find(td__pyro_methods, td__pyro_nmethods, r->url);
    td_connect_reply rp = {.body = r->body};
    td_connect_serve(m, &r->api->pyro, &rq, &a, &rp);
    r->body = rp.body;
    r->status = rp.status;
    r->ctype = rp.ctype;
    if (rp.allow_post) {
        r->allow = "POST";
    }
    if (rp.status >= 500 && rp.status != 501) {
        TD_LOG_THROTTLED(TD_LOG_ERROR, MOD, "%s failed: %s", r->url, td_connect_code_name(rp.code));
    }
    td_arena_release(&a);
}

static const char *pyro_arg(void *cookie, const char *name)
{
    return query_arg(cookie, name);
}

/* ---- Pyroscope ingest (pyro_ingest.c does the work) ---- */

static const char *ingest_arg(void *cookie, const char *name)
{
    return query_arg(cookie, name);
}

static void h_pyro_legacy(req *r, void (*fn)(td__pyro *, const char *, td__pyro_arg_fn, void *,
                                             td__pyro_reply *))
{
    td__pyro_reply rp = {.status = 500, .ctype = CT_JSON, .body = &r->body};
    fn(&r->api->pyro, header(r, "X-Scope-OrgID"), pyro_arg, r, &rp);
    r->status = rp.status;
    r->ctype = rp.ctype;
}

static void h_render(req *r)
{
    h_pyro_legacy(r, td__pyro_render);
}

static void h_render_diff(req *r)
{
    h_pyro_legacy(r, td__pyro_render_diff);
}

static void h_label_values(req *r)
{
    h_pyro_legacy(r, td__pyro_label_values);
}

static const char *ingest_header(void *cookie, const char *name)
{
    return header(cookie, name);
}

static void h_ingest_common(req *r, bool push)
{
    td__pyro_ingest_req in = {.ps = r->api->pstore,
                              .opts = &r->api->o.profiler,
                              .multitenancy = r->api->o.multitenancy,
                              .method = r->method,
                              .url = r->url,
                              .body = r->in,
                              .arg = ingest_arg,
                              .header = ingest_header,
                              .cookie = r};
    td__pyro_ingest_reply out = {.status = 500, .ctype = CT_JSON, .body = &r->body};
    if (push) {
        td__pyro_push(&in, &out);
    } else {
        td__pyro_ingest(&in, &out);
    }
    r->status = out.status;
    r->ctype = out.ctype;
    r->allow = out.allow;
}

/* POST /ingest and /pyroscope/ingest (API-CONTRACT §5.0, §5.1). */
static void h_ingest(req *r)
{
    h_ingest_common(r, false);
}

/* POST /push.v1.PusherService/Push (Connect unary, §5.2). */
static void h_push(req *r)
{
    h_ingest_common(r, true);
}

/*
 * Tag names and values (API-CONTRACT §3.6, §3.7): tempo_tags.c does the work.
 * libmicrohttpd has percent-decoded the path once already, so the tag is the
 * text between ".../tag/" and the last "/values" as it stands (r->arg).
 */
static void h_tags(req *r, td__tags_kind kind)
{
    td_api *api = r->api;
    td_err err;
    td_err_init(&err);
    td_arena a;
    td_arena_init(&a, 16 * 1024, 0);
    td__tenants ts;
    if (!store_tenants(r, &a, &ts)) {
        goto out;
    }
    const char *tag = NULL;
    size_t tlen;
    if ((kind == TD__TAG_VALUES_V1 || kind == TD__TAG_VALUES_V2) &&
        td__tags_path_tag(r->arg, &tag, &tlen)) {
        tag = td_arena_strndup(&a, tag, tlen);
    }
    td__tags_req tr;
    td__tags_result res;
    td__tags_limits lim = api->tags_ctx.limits;
    if (td__tags_http_args(kind, query_arg(r, "scope"), tag, query_arg(r, "q"),
                           query_arg(r, "start"), query_arg(r, "end"), query_arg(r, "limit"), &tr,
                           &err) != TD_OK ||
        td__tags_run(api->store, &ts, &tr, &lim, &a, &res, &err) != TD_OK) {
        reply_err(r, &err);
        goto out;
    }
    td_buf_reset(&r->body);
    r->status = 200;
    if (td__tempo_negotiate(header(r, MHD_HTTP_HEADER_ACCEPT)) == TD_TEMPO_PROTOBUF) {
        r->ctype = CT_PROTOBUF;
        if (td__tags_pb(&res, &r->body, &err) != TD_OK) {
            reply_err(r, &err);
        }
    } else {
        r->ctype = CT_JSON;
        td__tags_json(&res, &r->body);
    }
out:
    td_arena_release(&a);
}

static void h_tags_v1(req *r)
{
    h_tags(r, TD__TAGS_V1);
}

static void h_tags_v2(req *r)
{
    h_tags(r, TD__TAGS_V2);
}

static void h_tag_values_v1(req *r)
{
    h_tags(r, TD__TAG_VALUES_V1);
}

static void h_tag_values_v2(req *r)
{
    h_tags(r, TD__TAG_VALUES_V2);
}

/* GET /api/metrics/query_range and /api/metrics/query (API-CONTRACT §3.8): tempo_metrics.c. */
static void h_metrics_query(req *r, bool instant)
{
    td_api *api = r->api;
    td_err err;
    td_err_init(&err);
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td__tenants ts;
    if (!store_tenants(r, &a, &ts)) {
        goto out;
    }
    td__metrics_args in = {.q = query_arg(r, "q"),
                           .query = query_arg(r, "query"),
                           .start = query_arg(r, "start"),
                           .end = query_arg(r, "end"),
                           .since = query_arg(r, "since"),
                           .step = query_arg(r, "step"),
                           .exemplars = query_arg(r, "exemplars"),
                           .max_series = query_arg(r, "maxSeries")};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    td__metrics_params p;
    if (td__metrics_parse_http(&in, instant, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec, &p,
                               &err) != TD_OK) {
        reply_err(r, &err);
        goto out;
    }
    p.max_traces = api->o.search_max_traces > 0 ? (uint64_t)api->o.search_max_traces : 20000;
    p.max_trace_bytes = api->o.max_trace_bytes;
    p.max_bytes = api->o.search_max_bytes;
    p.timeout_ms = api->o.search_timeout_ms;
    p.pb = td__tempo_negotiate(header(r, MHD_HTTP_HEADER_ACCEPT)) == TD_TEMPO_PROTOBUF;
    td_buf_reset(&r->body);
    if (td__metrics_run(api->store, &ts, &p, &r->body, NULL, &err) != TD_OK) {
        reply_err(r, &err);
        goto out;
    }
    r->status = 200;
    r->ctype = p.pb ? CT_PROTOBUF : CT_JSON;
out:
    td_arena_release(&a);
}

static void h_metrics_range(req *r)
{
    h_metrics_query(r, false);
}

static void h_metrics_instant(req *r)
{
    h_metrics_query(r, true);
}


static const route routes[] = {
    {"/ready", false, "/ready", h_ready},
    {"/health", false, "/health", h_health},
    {"/metrics", false, "/metrics", h_metrics},
    {"/api/echo", false, "/api/echo", h_echo},
    {"/api/status/buildinfo", false, "/api/status/buildinfo", h_buildinfo},
    {"/api/traces/", true, "/api/traces/{id}", h_trace_v1},
    {"/api/v2/traces/", true, "/api/v2/traces/{id}", h_trace_v2},
    {"/api/search", false, "/api/search", h_search},
    {"/ingest", R_EXACT | R_BODY, "/ingest", h_ingest},
    {"/pyroscope/ingest", R_EXACT | R_BODY, "/pyroscope/ingest", h_ingest},
    {"/push.v1.PusherService/", R_SERVICE | R_BODY, "/push.v1.PusherService", h_push},
    {"/querier.v1.QuerierService/", R_SERVICE | R_BODY, "/querier.v1.QuerierService", h_connect},
    /* services Pyroscope also exposes and clients may probe: unimplemented (501) */
    {"/version.v1.Version/", R_SERVICE | R_BODY, "/version.v1.Version", h_connect},
    {"/capabilities.v1.FeatureFlagsService/", R_SERVICE | R_BODY, "/capabilities.v1", h_connect},
    {"/settings.v1.SettingsService/", R_SERVICE | R_BODY, "/settings.v1", h_connect},
    {"/pyroscope/render", false, "/pyroscope/render", h_render},
    {"/pyroscope/render-diff", false, "/pyroscope/render-diff", h_render_diff},
    {"/pyroscope/label-values", false, "/pyroscope/label-values", h_label_values},
    {"/api/search/tags", false, "/api/search/tags", h_tags_v1},
    {"/api/v2/search/tags", false, "/api/v2/search/tags", h_tags_v2},
    {"/api/metrics/query_range", false, "/api/metrics/query_range", h_metrics_range},
    {"/api/metrics/query", false, "/api/metrics/query", h_metrics_instant},
};

/* Prefix routes whose remainder is a tag (any text, '/' included) and "/values". */
static const route values_routes[] = {
    {"/api/search/tag/", true, "/api/search/tag/{tag}/values", h_tag_values_v1},
    {"/api/v2/search/tag/", true, "/api/v2/search/tag/{tag}/values", h_tag_values_v2},
};

static const route *find_route(const char *url, const char **arg)
{
    for (size_t i = 0; i < sizeof(values_routes) / sizeof(values_routes[0]); i++) {
        const route *rt = &values_routes[i];
        size_t n = strlen(rt->path);
        const char *tag;
        size_t tlen;
        if (strncmp(url, rt->path, n) == 0 && td__tags_path_tag(url + n, &tag, &tlen)) {
            *arg = url + n;
            return rt;
        }
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const route *rt = &routes[i];
        int kind = rt->prefix & R_MATCH;
        if (kind == R_SERVICE) {
            /* Connect allows a routing prefix before /pkg.Service/Method */
            const char *at = strstr(url, rt->path);
            size_t n = strlen(rt->path);
            if (at && at[n] && !strchr(at + n, '/')) {
                *arg = at + n;
                return rt;
            }
            continue;
        }
        if (kind == R_EXACT) {
            if (strcmp(url, rt->path) == 0) {
                *arg = "";
                return rt;
            }
            continue;
        }
        size_t n = strlen(rt->path);
        if (strncmp(url, rt->path, n) == 0 && url[n] && !strchr(url + n, '/')) {
            *arg = url + n;
            return rt;
        }
    }
    return NULL;
}

/* ---- dispatch ---- */

/* X-Request-Id from the client when it is short and printable, else a fresh one. */
static const char *request_id(struct MHD_Connection *c, char fresh[17])
{
    const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (id) {
        size_t n = strlen(id);
        bool ok = n > 0 && n <= REQUEST_ID_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            ok = id[i] > 0x20 && id[i] < 0x7F;
        }
        if (ok) {
            return id;
        }
    }
    td_log_new_request_id(fresh);
    return fresh;
}

static void free_body(void *p)
{
    td_free(p);
}

/* The request body of a body route, collected across access-handler calls. */
typedef struct body_state {
    td_buf b;
    bool too_large;
} body_state;

static int seen; /* address used as the "headers seen" marker of bodiless requests */

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    if (*con_cls && *con_cls != &seen) {
        body_state *bs = *con_cls;
        td_buf_release(&bs->b);
        td_free(bs);
    }
    *con_cls = NULL;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Does the request announce a body? (None of our routes takes one.) */
static bool has_body(struct MHD_Connection *c)
{
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
           (cl && strcmp(cl, "0") != 0);
}

/*
 * MHD calls this once when the headers are in, then once per body chunk, then
 * once more with no data. Bodiless requests are answered on the last call, which
 * keeps the connection alive; a request with a body is answered at once (an
 * "early" response: MHD then closes the connection instead of reading a body
 * nobody wants).
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    const char *arg0;
    if (*con_cls == NULL) {
        const route *brt = find_route(url, &arg0);
        if (brt && takes_body(brt) && has_body(c)) {
            body_state *bs = td_xcalloc(1, sizeof(*bs));
            td_buf_init(&bs->b, 0);
            *con_cls = bs; /* freed by on_completed */
            return MHD_YES;
        }
        *con_cls = &seen;
        if (!has_body(c)) {
            return MHD_YES;
        }
    } else if (*con_cls != &seen && *upload_data_size) {
        body_state *bs = *con_cls;
        if (bs->too_large || bs->b.len + *upload_data_size > BODY_MAX) {
            bs->too_large = true;
        } else {
            td_buf_add(&bs->b, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    } else if (*upload_data_size) {
        *upload_data_size = 0; /* not reached for early answers; drop stray data */
        return MHD_YES;
    }
    double t0 = now_sec();
    char fresh[17];
    req r = {.api = cls, .c = c, .arg = "", .url = url, .method = method, .status = 500,
             .ctype = CT_TEXT};
    body_state *bs = *con_cls != &seen ? *con_cls : NULL;
    td_buf_init(&r.body, 0);
    r.reqid = request_id(c, fresh);
    td_log_ctx_push(r.reqid, NULL);

    const route *rt = find_route(url, &r.arg);
    const char *rname = rt ? rt->name : "other";
    bool get =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!rt) {
        reply_error(&r, 404, "404 page not found");
    } else if (takes_body(rt) && bs && bs->too_large) {
        reply(&r, 413, CT_JSON,
              "{\"code\":\"resource_exhausted\",\"message\":\"request body too large\"}");
    } else if (takes_body(rt)) {
        if (bs) {
            r.in = td_buf_slice(&bs->b);
        }
        rt->fn(&r);
    } else if (!get) {
        reply_error(&r, 405, "405 method not allowed");
    } else {
        rt->fn(&r);
    }

    size_t len;
    char *body = td_buf_detach(&r.body, &len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, body, free_body);
    if (!resp) {
        td_free(body);
        td_log_ctx_pop();
        return MHD_NO; /* MHD closes the connection */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.ctype);
    MHD_add_response_header(resp, "X-Request-Id", r.reqid);
    if (strncmp(r.ctype, "text/plain; charset", 19) == 0 && r.status >= 400) {
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    }
    if (r.status == 405) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r.allow ? r.allow : "GET, HEAD");
    }
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);

    char code[8];
    snprintf(code, sizeof(code), "%d", r.status);
    double secs = now_sec() - t0;
    td_metric_add(td_metric_series(TD_M_QUERY_REQUESTS, rname, code, NULL), 1);
    td_metric_observe(td_metric_series(TD_M_QUERY_SECONDS, rname, NULL, NULL), secs);
    td_log(TD_LOG_DEBUG, MOD, "%s %s -> %d (%zu bytes, %.3f ms)", method, url, r.status, len,
           secs * 1e3);
    td_log_ctx_pop();
    return ok;
}

/* The format comes from libmicrohttpd itself (its external-logger contract). */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt,
                                                          va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    TD_LOG_THROTTLED(TD_LOG_WARN, MOD, "libmicrohttpd: %s", msg);
}

/* ---- lifecycle ---- */

td_status td_api_new(const td_api_opts *o, td_store *store, td_api **out, td_err *err)
{
    *out = NULL;
    if (!o->listen || !*o->listen) {
        return td_err_set(err, TD_INVALID, "query-listen: empty address");
    }
    if (o->threads < 1 || o->threads > 1024) {
        return td_err_set(err, TD_INVALID, "query-threads: %" PRId64 " is out of range [1, 1024]",
                          o->threads);
    }
    td_api *api = td_xcalloc(1, sizeof(*api));
    api->o = *o;
    api->o.listen = td_xstrdup(o->listen);
    api->o.pyroscope_listen = td_xstrdup(o->pyroscope_listen ? o->pyroscope_listen : "");
    api->store = store;
    api->pyro.multitenancy = o->multitenancy;
    api->lfd = api->epfd = api->wakefd = -1;
    /*
     * gRPC methods of the query port (tempopb.StreamingQuerier, API-CONTRACT §3.9)
     * are registered here with td__query_grpc_register: Search (grpc_search.c),
     * SearchTags, SearchTagsV2, SearchTagValues, SearchTagValuesV2 (grpc_tags.c),
     * MetricsQueryRange and MetricsQueryInstant (grpc_metrics.c).
     * Handlers run on their own pool, sized like the HTTP one.
     */
    td__query_grpc_opts go = {.multitenancy = o->multitenancy,
                              .handler_threads = (size_t)o->threads};
    api->grpc = td__query_grpc_new(&go);
    api->search_ctx = (td__grpc_search_ctx){
        .store = store,
        .max_traces = o->search_max_traces > 0 ? (uint64_t)o->search_max_traces : 20000,
        .max_bytes = o->search_max_bytes,
        .timeout_ms = o->search_timeout_ms,
        .max_trace_bytes = o->max_trace_bytes};
    api->tags_ctx = (td__grpc_tags_ctx){.store = store,
                                        .limits = {.max_traces = api->search_ctx.max_traces,
                                                   .max_trace_bytes = o->max_trace_bytes,
                                                   .max_bytes = o->search_max_bytes,
                                                   .timeout_ms = o->search_timeout_ms}};
    if (td__grpc_search_register(api->grpc, &api->search_ctx, err) != TD_OK ||
        td__grpc_tags_register(api->grpc, &api->tags_ctx, err) != TD_OK ||
        td__grpc_metrics_register(api->grpc, &api->search_ctx, err) != TD_OK) {
        td_api_free(api);
        return err->code;
    }
    *out = api;
    return TD_OK;
}

td__query_grpc *td__api_query_grpc(td_api *api)
{
    return api->grpc;
}

/* Split "host:port" / "[v6]:port" / ":port" into host and port text. */
static td_status split_listen(const char *s, char *host, size_t hostcap, char *port, size_t portcap,
                              td_err *err)
{
    const char *colon;
    const char *h = s;
    size_t hn;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') {
            return td_err_set(err, TD_INVALID, "query-listen: bad address '%s'", s);
        }
        h = s + 1;
        hn = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            return td_err_set(err, TD_INVALID, "query-listen: '%s' has no port (host:port)", s);
        }
        hn = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    size_t pn = strlen(p);
    bool digits = pn > 0 && pn < portcap;
    for (size_t i = 0; digits && i < pn; i++) {
        digits = p[i] >= '0' && p[i] <= '9';
    }
    if (!digits || atoi(p) > 65535 || hn >= hostcap) {
        return td_err_set(err, TD_INVALID, "query-listen: bad address '%s'", s);
    }
    if (hn == 0) {
        snprintf(host, hostcap, "0.0.0.0");
    } else {
        memcpy(host, h, hn);
        host[hn] = '\0';
    }
    memcpy(port, p, pn + 1);
    return TD_OK;
}

/*
 * Bind the listening socket ourselves (instead of letting MHD do it) so that a
 * failure reports the real errno, e.g. "Address already in use".
 */
static td_status open_listener(const char *addr, int *fd_out, td_err *err)
{
    char host[256], port[8];
    if (split_listen(addr, host, sizeof(host), port, sizeof(port), err) != TD_OK) {
        return err->code;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        return td_err_set(err, TD_IO, "cannot listen on %s: %s", addr, gai_strerror(gai));
    }
    int last_errno = 0;
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
            break;
        }
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return td_err_set(err, TD_IO, "cannot listen on %s: %s", addr, strerror(last_errno));
    }
    *fd_out = fd;
    return TD_OK;
}

/* ---- the acceptor: accept, classify, hand over ---- */

/* epoll cookies (only their addresses matter) of the two fds that are not connections */
static const char ev_listen, ev_wake;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Unlink p from the pending list and the epoll set; the fd stays open. */
static void pending_remove(td_api *api, pending *p)
{
    epoll_ctl(api->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    if (p->prev) {
        p->prev->next = p->next;
    } else {
        api->head = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    } else {
        api->tail = p->prev;
    }
    api->npending--;
}

static void hand_to_http(td_api *api, pending *p)
{
    pending_remove(api, p);
    /* MHD owns (and on failure has closed) the socket from here on */
    if (MHD_add_connection(api->d, p->fd, (const struct sockaddr *)&p->addr, p->addrlen) !=
        MHD_YES) {
        TD_LOG_THROTTLED(TD_LOG_WARN, MOD, "HTTP server refused a connection: %s", strerror(errno));
    }
    td_free(p);
}

static void hand_to_grpc(td_api *api, pending *p)
{
    pending_remove(api, p);
    td__query_grpc_take_fd(api->grpc, p->fd);
    td_free(p);
}

static void drop(td_api *api, pending *p)
{
    pending_remove(api, p);
    close(p->fd);
    td_free(p);
}

/*
 * Data (or a hang-up) on a connection being classified. Peek, never read: the
 * server that gets the connection must see every byte.
 */
static void classify(td_api *api, pending *p, uint32_t events)
{
    char buf[TD_H2_PREFACE_LEN];
    ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            drop(api, p);
        }
        return;
    }
    if (n <= 0) {
        drop(api, p); /* closed (or failed) before saying anything */
        return;
    }
    switch (td__query_classify(buf, (size_t)n)) {
    case TD_CONN_HTTP1:
        hand_to_http(api, p);
        break;
    case TD_CONN_H2:
        hand_to_grpc(api, p);
        break;
    case TD_CONN_UNDECIDED:
        /* part of the preface: edge-triggered epoll wakes us when more arrives */
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            drop(api, p); /* ...and it never will */
        }
        break;
    }
}

static void set_listening(td_api *api, bool on)
{
    if (on) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)&ev_listen};
        epoll_ctl(api->epfd, EPOLL_CTL_ADD, api->lfd, &ev);
        api->paused_until_ms = 0;
    } else {
        epoll_ctl(api->epfd, EPOLL_CTL_DEL, api->lfd, NULL);
        api->paused_until_ms = now_ms() + ACCEPT_PAUSE_MS;
    }
}

static void accept_some(td_api *api)
{
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(api->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
            case ENETDOWN:
            case ENOPROTOOPT:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
                continue; /* that connection's problem, not ours (accept(2)) */
            default:
                /* EMFILE, ENFILE, ENOBUFS, ENOMEM: back off instead of spinning */
                TD_LOG_THROTTLED(TD_LOG_ERROR, MOD, "accept on the query port: %s",
                                 strerror(errno));
                set_listening(api, false);
                return;
            }
        }
        if (api->npending >= MAX_PENDING) {
            hand_to_http(api, api->head);
        }
        pending *p = td_xcalloc(1, sizeof(*p));
        p->fd = fd;
        p->addr = ss;
        p->addrlen = sl;
        p->deadline_ms = now_ms() + CLASSIFY_TIMEOUT_MS;
        /* edge-triggered: a partial preface must not wake us again until more arrives */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p};
        if (epoll_ctl(api->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            TD_LOG_THROTTLED(TD_LOG_ERROR, MOD, "epoll_ctl: %s", strerror(errno));
            close(fd);
            td_free(p);
            continue;
        }
        p->prev = api->tail;
        if (api->tail) {
            api->tail->next = p;
        } else {
            api->head = p;
        }
        api->tail = p;
        api->npending++;
    }
}

/* epoll_wait timeout: until the oldest classification deadline or the end of a pause. */
static int next_timeout(const td_api *api, int64_t now)
{
    int64_t t = -1;
    if (api->head) {
        t = api->head->deadline_ms - now;
    }
    if (api->paused_until_ms && (t < 0 || api->paused_until_ms - now < t)) {
        t = api->paused_until_ms - now;
    }
    return t < 0 ? (api->head || api->paused_until_ms ? 0 : -1) : (int)t;
}

static void *acceptor_main(void *arg)
{
    td_api *api = arg;
    struct epoll_event evs[64];
    bool stop = false;
    while (!stop) {
        int n = epoll_wait(api->epfd, evs, 64, next_timeout(api, now_ms()));
        if (n < 0 && errno != EINTR) {
            TD_LOG_THROTTLED(TD_LOG_ERROR, MOD, "epoll_wait: %s", strerror(errno));
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        }
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &ev_wake) {
                stop = true;
            } else if (ptr == &ev_listen) {
                accept_some(api);
            } else {
                classify(api, ptr, evs[i].events);
            }
        }
        int64_t now = now_ms();
        /* silent for too long: HTTP/1.1 (libmicrohttpd's idle timeout takes over) */
        while (api->head && api->head->deadline_ms <= now) {
            hand_to_http(api, api->head);
        }
        if (api->paused_until_ms && api->paused_until_ms <= now) {
            set_listening(api, true);
        }
    }
    while (api->head) {
        drop(api, api->head);
    }
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void acceptor_stop(td_api *api)
{
    if (api->acceptor_running) {
        uint64_t one = 1;
        ssize_t w = write(api->wakefd, &one, sizeof(one));
        (void)w; /* an eventfd write only fails when the counter would overflow */
        pthread_join(api->acceptor, NULL);
        api->acceptor_running = false;
    }
    close_fd(&api->epfd);
    close_fd(&api->wakefd);
    close_fd(&api->lfd); /* new connections are refused from here on */
}

static td_status acceptor_start(td_api *api, td_err *err)
{
    api->epfd = epoll_create1(EPOLL_CLOEXEC);
    api->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)&ev_wake};
    if (api->epfd < 0 || api->wakefd < 0 ||
        epoll_ctl(api->epfd, EPOLL_CTL_ADD, api->wakefd, &ev) != 0) {
        return td_err_set(err, TD_IO, "query port: epoll: %s", strerror(errno));
    }
    set_listening(api, true);
    if (pthread_create(&api->acceptor, NULL, acceptor_main, api) != 0) {
        return td_err_set(err, TD_INTERNAL, "query port: cannot create the acceptor thread");
    }
    api->acceptor_running = true;
    return TD_OK;
}

/* ---- lifecycle ---- */

/*
 * pyroscope-listen: a plain libmicrohttpd daemon on its own socket (no h2c there:
 * Pyroscope's port speaks HTTP/1.1 Connect), same route table and handlers.
 */
static td_status pyro_listener_start(td_api *api, unsigned pool, td_err *err)
{
    if (!api->o.pyroscope_listen[0]) {
        return TD_OK;
    }
    int fd;
    if (open_listener(api->o.pyroscope_listen, &fd, err) != TD_OK) {
        return err->code;
    }
    /* MHD wants a blocking listening socket with its internal threads */
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    api->d_pyro =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                         (void *)api, MHD_OPTION_THREAD_POOL_SIZE, pool > 1 ? pool : 0u,
                         MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_END);
    if (!api->d_pyro) {
        close(fd);
        return td_err_set(err, TD_IO, "cannot start the HTTP server on %s",
                          api->o.pyroscope_listen);
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    }
    atomic_store(&api->pyro_port, port);
    td_log(TD_LOG_INFO, MOD, "pyroscope port listening on %s (port %d)", api->o.pyroscope_listen,
           port);
    return TD_OK;
}

int td_api_pyroscope_port(const td_api *api)
{
    return atomic_load(&api->pyro_port);
}

/*
 * Order: listening socket (bind errors first), libmicrohttpd, gRPC, and only then
 * the acceptor that feeds both. td_api_stop undoes it in reverse.
 */
td_status td_api_start(td_api *api, td_err *err)
{
    TD_ASSERT(!api->d);
    if (open_listener(api->o.listen, &api->lfd, err) != TD_OK) {
        return err->code;
    }
    /*
     * No listening socket of its own: connections arrive by MHD_add_connection from
     * the acceptor thread, which MHD_USE_ITC makes safe with internal threads (the
     * connection is queued under a mutex and the worker woken). With a thread pool
     * MHD spreads added connections over its workers.
     */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    unsigned pool = (unsigned)api->o.threads;
    /* the logger goes first so that MHD reports option errors through it too */
    api->d =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                         (void *)api, MHD_OPTION_THREAD_POOL_SIZE, pool > 1 ? pool : 0u,
                         MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, NULL, MHD_OPTION_END);
    if (!api->d) {
        close_fd(&api->lfd);
        return td_err_set(err, TD_IO, "cannot start the HTTP server on %s", api->o.listen);
    }
    if (pyro_listener_start(api, pool, err) != TD_OK) {
        MHD_stop_daemon(api->d);
        api->d = NULL;
        close_fd(&api->lfd);
        return err->code;
    }
    if (td__query_grpc_start(api->grpc, err) != TD_OK || acceptor_start(api, err) != TD_OK) {
        acceptor_stop(api);
        td__query_grpc_stop(api->grpc);
        MHD_stop_daemon(api->d);
        api->d = NULL;
        return err->code;
    }
    int port = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(api->lfd, (struct sockaddr *)&ss, &sl) == 0) {
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    }
    atomic_store(&api->port, port);
    td_log(TD_LOG_INFO, MOD,
           "query port listening on %s (port %d, %u threads; HTTP/1.1 and h2c gRPC, %zu methods)",
           api->o.listen, port, pool, td__query_grpc_nmethods(api->grpc));
    return TD_OK;
}

void td_api_set_pstore(td_api *api, td_pstore *ps)
{
    api->pstore = ps;
    api->pyro.ps = ps;
}

void td_api_set_ready(td_api *api, bool ready)
{
    if (ready) {
        atomic_store(&api->was_ready, true);
    }
    atomic_store(&api->ready, ready);
}

void td_api_stop(td_api *api)
{
    if (!api || !api->d) {
        return;
    }
    atomic_store(&api->ready, false);
    /* 1. no new connections, and none half-classified, so nothing reaches a stopping server */
    acceptor_stop(api);
    /* 2. gRPC: grace for running calls, then cancel; closes every h2c connection */
    td__query_grpc_stop(api->grpc);
    /* 3. stops the HTTP threads and closes every HTTP connection */
    MHD_stop_daemon(api->d);
    api->d = NULL;
    if (api->d_pyro) {
        /* with MHD_OPTION_LISTEN_SOCKET the socket stays ours to close */
        MHD_socket lfd = MHD_quiesce_daemon(api->d_pyro);
        MHD_stop_daemon(api->d_pyro);
        if (lfd != MHD_INVALID_SOCKET) {
            close(lfd);
        }
        api->d_pyro = NULL;
        atomic_store(&api->pyro_port, 0);
    }
    atomic_store(&api->port, 0);
}

void td_api_free(td_api *api)
{
    if (!api) {
        return;
    }
    td_api_stop(api);
    td__query_grpc_free(api->grpc);
    td_free(api->o.listen);
    td_free(api->o.pyroscope_listen);
    td_free(api);
}

int td_api_port(const td_api *api)
{
    return atomic_load(&api->port);
}
