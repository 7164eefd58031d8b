/*
 * load.c - bench_load: generate a day of realistic traces and send them to traced
 * over OTLP/HTTP protobuf, for the search benchmark (bench/run-search.sh).
 *
 *   bench_load --target 127.0.0.1:PORT [--spans 10000000] [--traces-per-request 50]
 *              [--services 20] [--seed 1] [--end-s UNIX_S] [--window-s 86400]
 *              [--error-pct 2] [--slow-pct 3] [--connections 2] [--ids-out FILE]
 *              [--ids 1000] [--tenant ID] [--dry-run] [--progress S]
 *
 * Data model (deterministic for a given --seed, --end-s and --spans):
 * - spans/10 traces, trace t starting at end - window + t * window / ntraces
 *   (plus jitter), so the traces fill [end - window, end) evenly and are all in the
 *   past when --end-s is now;
 * - 20 services; a trace starts at an edge service (frontend, api-gateway,
 *   mobile-bff) and calls 1-3 others, 6-14 spans (about 10 on average): the root
 *   SERVER span, a CLIENT + SERVER pair per downstream call, and database CLIENT
 *   and INTERNAL spans under the services' SERVER spans;
 * - resources: service.name, service.version, k8s.pod.name (8 replicas per
 *   service, renamed by a deployment every 6 hours: ~640 pod names a day),
 *   k8s.node.name (12 nodes), k8s.namespace.name, cloud.region and SDK attributes;
 * - span attributes: http.method, http.route (40 routes), http.status_code,
 *   enduser.id (2M possible users, one per trace), user_agent.original,
 *   net.peer.name, db.system / db.name / db.operation / db.statement,
 *   code.function;
 * - --error-pct of the spans (default 2 %) have status ERROR (HTTP 500/503 for
 *   HTTP spans) and an "exception" event;
 * - --slow-pct of the traces (default 3 %) have a root lasting 1.2-6 s (and
 *   usually some children over 1 s); every other span lasts under 1 s.
 *
 * Sending: request r carries traces [r * tpr, (r + 1) * tpr), every span of a
 * trace in the same request (one ResourceSpans per service and pod), built with
 * protobuf-c. --connections threads take requests in increasing order over
 * keep-alive HTTP/1.1 connections. A 503/429 is retried (same bytes) after the
 * server's Retry-After (1 s when absent), so the load saturates the daemon's queue
 * without losing data; refusals are counted. Transport errors are retried up to
 * 10 times, other answers are failures. Output: key=value lines on stdout.
 *
 * --ids-out writes every (ntraces / --ids)-th trace ID with its start time, one
 * "HEX32 START_NS" per line, for bench_query's trace-by-ID requests.
 */
#include "httpc.h"

#include "core/arena.h"
#include "core/buf.h"
#include "core/mem.h"
#include "proto/proto.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000ull
#define MS 1000000ull
#define MAX_SVC 20
#define REPLICAS 8
#define DEPLOY_EVERY_S (6 * 3600)

typedef Opentelemetry__Proto__Trace__V1__Span__SpanKind span_kind;
#define KIND_SERVER OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER
#define KIND_CLIENT OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT
#define KIND_INTERNAL OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL

/* ---- vocabularies ---- */

typedef struct svc_def {
    const char *name;
    const char *lang;
    const char *db; /* db.system used by this service, NULL = none */
    const char *dbname;
    uint8_t routes[4]; /* indexes into route_names */
} svc_def;

static const char *const route_names[40] = {
    "/",
    "/product/{id}",
    "/cart",
    "/checkout",
    "/api/v1/login",
    "/api/v1/logout",
    "/api/v1/token/refresh",
    "/api/v1/users/{id}",
    "/api/v1/users/{id}/prefs",
    "/api/v1/cart",
    "/api/v1/cart/items",
    "/api/v1/cart/items/{id}",
    "/api/v1/checkout",
    "/api/v1/checkout/{id}",
    "/api/v1/payments",
    "/api/v1/payments/{id}",
    "/api/v1/shipping/quote",
    "/api/v1/shipping/{id}",
    "/api/v1/inventory/{sku}",
    "/api/v1/inventory/reserve",
    "/api/v1/catalog",
    "/api/v1/catalog/{id}",
    "/api/v1/search",
    "/api/v1/search/suggest",
    "/api/v1/recommendations",
    "/api/v1/recommendations/{id}",
    "/api/v1/prices/{sku}",
    "/api/v1/prices/batch",
    "/api/v1/currency/convert",
    "/api/v1/currency/rates",
    "/api/v1/notifications",
    "/api/v1/notifications/{id}",
    "/api/v1/email/send",
    "/api/v1/email/templates",
    "/api/v1/fraud/score",
    "/api/v1/fraud/report",
    "/api/v1/ads",
    "/api/v1/ads/{slot}",
    "/api/v1/reviews/{product}",
    "/api/v1/reviews",
};

static const svc_def services[MAX_SVC] = {
    {"frontend", "nodejs", NULL, NULL, {0, 1, 2, 3}},
    {"api-gateway", "go", "redis", "sessions", {4, 9, 12, 22}},
    {"mobile-bff", "kotlin", NULL, NULL, {7, 10, 21, 24}},
    {"auth", "go", "redis", "tokens", {4, 5, 6, 7}},
    {"user", "java", "postgresql", "users", {7, 8, 4, 5}},
    {"cart", "dotnet", "redis", "carts", {9, 10, 11, 9}},
    {"checkout", "go", "postgresql", "orders", {12, 13, 12, 13}},
    {"payment", "nodejs", "postgresql", "payments", {14, 15, 14, 15}},
    {"shipping", "rust", "mysql", "shipping", {16, 17, 16, 17}},
    {"inventory", "java", "postgresql", "inventory", {18, 19, 18, 19}},
    {"catalog", "go", "mongodb", "catalog", {20, 21, 20, 21}},
    {"search", "java", "elasticsearch", "products", {22, 23, 22, 23}},
    {"recommendation", "python", "redis", "recs", {24, 25, 24, 25}},
    {"pricing", "go", "postgresql", "prices", {26, 27, 26, 27}},
    {"currency", "cpp", NULL, NULL, {28, 29, 28, 29}},
    {"notification", "python", "mongodb", "notifications", {30, 31, 30, 31}},
    {"email", "ruby", NULL, NULL, {32, 33, 32, 33}},
    {"fraud", "python", "postgresql", "fraud", {34, 35, 34, 35}},
    {"ad", "java", "redis", "ads", {36, 37, 36, 37}},
    {"review", "php", "mysql", "reviews", {38, 39, 38, 39}},
};
#define NEDGE 3 /* services[0..2] are entry points */

static const char *const methods[] = {"GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"};
static const char *const user_agents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "shop-android/5.2.1",
    "python-requests/2.32.3"};
static const char *const regions[] = {"eu-west-1", "us-east-1"};
static const char *const functions[] = {"validateRequest",  "loadFeatureFlags",  "renderTemplate",
                                        "computeTotals",    "serializeResponse", "applyDiscounts",
                                        "checkPermissions", "mapToDto"};

typedef struct db_ops {
    const char *system;
    const char *ops[4];
    const char *stmts[4];
} db_ops;

static const db_ops dbs[] = {
    {"postgresql",
     {"SELECT", "SELECT", "INSERT", "UPDATE"},
     {"SELECT * FROM t WHERE id = $1", "SELECT id, total FROM t WHERE user_id = $1 LIMIT 20",
      "INSERT INTO t (id, payload) VALUES ($1, $2)", "UPDATE t SET state = $1 WHERE id = $2"}},
    {"mysql",
     {"SELECT", "SELECT", "INSERT", "UPDATE"},
     {"SELECT * FROM t WHERE id = ?", "SELECT id, status FROM t WHERE order_id = ?",
      "INSERT INTO t (id, payload) VALUES (?, ?)", "UPDATE t SET status = ? WHERE id = ?"}},
    {"redis",
     {"GET", "SET", "HGETALL", "EXPIRE"},
     {"GET key", "SET key ?", "HGETALL key", "EXPIRE key ?"}},
    {"mongodb",
     {"find", "find", "insert", "update"},
     {"{\"find\":\"c\",\"filter\":{\"_id\":\"?\"}}", "{\"find\":\"c\",\"filter\":{\"user\":\"?\"}}",
      "{\"insert\":\"c\"}", "{\"update\":\"c\",\"filter\":{\"_id\":\"?\"}}"}},
    {"elasticsearch",
     {"search", "search", "get", "index"},
     {"GET /products/_search", "GET /products/_search?q=?", "GET /products/_doc/?",
      "PUT /products/_doc/?"}},
};

/* ---- random numbers ---- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnd(rng *r)
{
    return mix64(r->s += 0x9e3779b97f4a7c15ull);
}

static uint64_t below(rng *r, uint64_t n)
{
    return n ? rnd(r) % n : 0;
}

#define PICK(r, arr) ((arr)[below((r), sizeof(arr) / sizeof((arr)[0]))])

/* ---- run state ---- */

typedef struct cfg {
    const char *target;
    const char *tenant;
    const char *ids_out;
    uint64_t spans, tpr, nsvc, seed, end_s, window_s, nids;
    uint64_t ntraces, nreq;
    double error_pct, slow_pct;
    int conns;
    bool dry_run;
    int progress_s;
} cfg;

typedef struct stats {
    _Atomic uint64_t next_req;
    _Atomic uint64_t reqs_done;
    _Atomic uint64_t spans_gen, spans_sent, spans_ok, spans_rejected, error_spans, slow_traces,
        bytes;
    _Atomic uint64_t refused, failed, transport_retries;
    _Atomic int fatal;
} stats;

typedef struct run {
    cfg c;
    stats st;
    uint8_t (*ids)[16]; /* sampled trace IDs */
    uint64_t *id_start;
    uint64_t id_every;
} run;

/* ---- protobuf building ---- */

typedef struct bld {
    td_arena a;
} bld;

static void *zalloc(bld *b, size_t n)
{
    void *p = td_arena_calloc(&b->a, 1, n);
    TD_ASSERT(p != NULL);
    return p;
}

static char *sdup(bld *b, const char *s)
{
    char *p = td_arena_strndup(&b->a, s, strlen(s));
    TD_ASSERT(p != NULL);
    return p;
}

static td_otlp_kv *kv_new(bld *b, const char *key)
{
    td_otlp_kv *kv = zalloc(b, sizeof(*kv));
    opentelemetry__proto__common__v1__key_value__init(kv);
    kv->key = (char *)key; /* keys are static strings */
    kv->value = zalloc(b, sizeof(*kv->value));
    opentelemetry__proto__common__v1__any_value__init(kv->value);
    return kv;
}

static td_otlp_kv *kv_str(bld *b, const char *key, const char *val)
{
    td_otlp_kv *kv = kv_new(b, key);
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    kv->value->string_value = (char *)val; /* static or arena-owned */
    return kv;
}

static td_otlp_kv *kv_int(bld *b, const char *key, int64_t val)
{
    td_otlp_kv *kv = kv_new(b, key);
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    kv->value->int_value = val;
    return kv;
}

static td_otlp_kv *kv_bool(bld *b, const char *key, bool val)
{
    td_otlp_kv *kv = kv_new(b, key);
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    kv->value->bool_value = val;
    return kv;
}

/* A generated span before it is turned into protobuf. */
typedef struct gspan {
    uint8_t span_id[8];
    int parent; /* index in the trace, -1 = root */
    uint32_t svc;
    uint32_t res; /* resource slot in the request */
    uint64_t start, end;
    span_kind kind;
    int what; /* 0 server, 1 http client, 2 db client, 3 internal */
    uint32_t route;
    uint32_t callee; /* for http clients */
    bool error;
} gspan;

/* A (service, replica, deployment) resource of one request. */
typedef struct rslot {
    uint32_t svc, replica;
    uint64_t deploy;
    size_t nspans, fill;
    td_otlp_span **spans;
} rslot;

#define MAX_SPANS_PER_TRACE 16

typedef struct reqgen {
    bld b;
    gspan *gs; /* all spans of the request */
    size_t ngs, capgs;
    uint8_t (*tids)[16];
    uint32_t *span_trace; /* trace slot of each span */
    rslot slots[MAX_SVC * REPLICAS * 2];
    size_t nslots;
} reqgen;

static uint32_t slot_of(reqgen *g, uint32_t svc, uint32_t replica, uint64_t deploy)
{
    for (size_t i = 0; i < g->nslots; i++) {
        rslot *s = &g->slots[i];
        if (s->svc == svc && s->replica == replica && s->deploy == deploy) {
            return (uint32_t)i;
        }
    }
    TD_ASSERT(g->nslots < sizeof(g->slots) / sizeof(g->slots[0]));
    rslot *s = &g->slots[g->nslots];
    memset(s, 0, sizeof(*s));
    s->svc = svc;
    s->replica = replica;
    s->deploy = deploy;
    return (uint32_t)g->nslots++;
}

static void trace_id_of(const cfg *c, uint64_t t, uint8_t id[16])
{
    uint64_t a = mix64(c->seed * 0x2545f4914f6cdd1dull + t * 2 + 1);
    uint64_t b = mix64(a ^ (t + 0x632be59bd9b4e019ull));
    memcpy(id, &a, 8);
    memcpy(id + 8, &b, 8);
}

static uint64_t trace_start_ns(const cfg *c, uint64_t t, rng *r)
{
    uint64_t w = c->window_s * NS;
    uint64_t base = (c->end_s - c->window_s) * NS;
    uint64_t step = w / c->ntraces;
    return base + t * step + below(r, step ? step : 1);
}

/* Child timing: starts in the first quarter of the parent, lasts 30-90 % of what is left. */
static void nest(rng *r, const gspan *p, gspan *s)
{
    uint64_t pd = p->end - p->start;
    s->start = p->start + below(r, pd / 4 + 1);
    uint64_t left = p->end - s->start;
    uint64_t d = left * (30 + below(r, 61)) / 100;
    s->end = s->start + (d > 20000 ? d : 20000);
    if (s->end > p->end) {
        s->end = p->end;
    }
}

/* Generate trace t's spans into g (appending). Returns the number of spans. */
static size_t gen_trace(run *R, reqgen *g, uint64_t t, uint32_t tslot, uint64_t *nerr, bool *slow)
{
    const cfg *c = &R->c;
    rng r = {mix64(c->seed ^ (t * 0xd1342543de82ef95ull))};
    uint32_t nsvc = (uint32_t)c->nsvc;
    uint64_t start = trace_start_ns(c, t, &r);
    uint64_t deploy = start / NS / DEPLOY_EVERY_S;

    /* services: an edge service, then 1-3 distinct others */
    uint32_t svcs[4];
    uint64_t e = below(&r, 10);
    svcs[0] = e < 5 ? 0 : e < 8 ? 1 : 2;
    if (svcs[0] >= nsvc) {
        svcs[0] = 0;
    }
    uint32_t m = 1 + (uint32_t)below(&r, 3);
    if (nsvc - 1 < m) {
        m = nsvc - 1;
    }
    for (uint32_t i = 1; i <= m; i++) {
        for (;;) {
            uint32_t s = NEDGE + (uint32_t)below(&r, nsvc > NEDGE ? nsvc - NEDGE : 1);
            if (s >= nsvc) {
                s = (uint32_t)below(&r, nsvc);
            }
            bool dup = false;
            for (uint32_t j = 0; j < i; j++) {
                dup |= svcs[j] == s;
            }
            if (!dup) {
                svcs[i] = s;
                break;
            }
        }
    }
    uint32_t replica[4];
    for (uint32_t i = 0; i <= m; i++) {
        replica[i] = (uint32_t)below(&r, REPLICAS);
    }

    size_t want = 6 + below(&r, 9); /* 6..14 */
    if (want < 1 + 2 * (size_t)m) {
        want = 1 + 2 * (size_t)m;
    }
    if (g->ngs + want > g->capgs) {
        g->capgs = (g->ngs + want) * 2;
        g->gs = td_xrealloc(g->gs, g->capgs * sizeof(*g->gs));
        g->span_trace = td_xrealloc(g->span_trace, g->capgs * sizeof(*g->span_trace));
    }
    gspan *s0 = &g->gs[g->ngs];
    memset(s0, 0, want * sizeof(*s0));

    *slow = (double)below(&r, 1000000) < c->slow_pct * 10000.0;
    uint64_t dur;
    if (*slow) {
        dur = 1200 * MS + below(&r, 4800 * MS);
    } else if (below(&r, 100) < 3) {
        dur = 300 * MS + below(&r, 650 * MS); /* slow-ish tail, still < 1 s */
    } else {
        dur = 4 * MS + below(&r, 60 * MS) + below(&r, 60 * MS) + below(&r, 120 * MS);
    }

    int server_of[4]; /* index of each trace service's SERVER span */
    size_t n = 0;
    /* root */
    s0[0].parent = -1;
    s0[0].svc = svcs[0];
    s0[0].kind = KIND_SERVER;
    s0[0].what = 0;
    s0[0].route = services[svcs[0]].routes[below(&r, 4)];
    s0[0].start = start;
    s0[0].end = start + dur;
    server_of[0] = 0;
    n = 1;
    /* calls: service i is called by a service already in the trace */
    for (uint32_t i = 1; i <= m; i++) {
        uint32_t caller = (uint32_t)below(&r, i);
        gspan *cl = &s0[n];
        cl->parent = server_of[caller];
        cl->svc = svcs[caller];
        cl->kind = KIND_CLIENT;
        cl->what = 1;
        cl->callee = svcs[i];
        cl->route = services[svcs[i]].routes[below(&r, 4)];
        nest(&r, &s0[cl->parent], cl);
        n++;
        gspan *sv = &s0[n];
        sv->parent = (int)(n - 1);
        sv->svc = svcs[i];
        sv->kind = KIND_SERVER;
        sv->what = 0;
        sv->route = cl->route;
        /* the server sits inside its client span, minus network time */
        uint64_t cd = cl->end - cl->start;
        sv->start = cl->start + cd / 20;
        sv->end = cl->end - cd / 20;
        server_of[i] = (int)n;
        n++;
    }
    /* the rest: database calls and internal work under a service's SERVER span */
    while (n < want) {
        uint32_t i = (uint32_t)below(&r, m + 1);
        gspan *sp = &s0[n];
        sp->parent = server_of[i];
        sp->svc = svcs[i];
        if (services[svcs[i]].db && below(&r, 3) < 2) {
            sp->kind = KIND_CLIENT;
            sp->what = 2;
        } else {
            sp->kind = KIND_INTERNAL;
            sp->what = 3;
        }
        nest(&r, &s0[sp->parent], sp);
        n++;
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t id = rnd(&r) | 1; /* never all-zero */
        memcpy(s0[k].span_id, &id, 8);
        s0[k].error = (double)below(&r, 1000000) < c->error_pct * 10000.0;
        *nerr += s0[k].error;
        uint32_t ti = 0;
        for (uint32_t i = 0; i <= m; i++) {
            if (svcs[i] == s0[k].svc) {
                ti = i;
            }
        }
        s0[k].res = slot_of(g, s0[k].svc, replica[ti], deploy);
        g->span_trace[g->ngs + k] = tslot;
    }
    g->ngs += n;
    return n;
}

static td_otlp_resource_spans *resource_spans(bld *b, const rslot *s)
{
    const svc_def *d = &services[s->svc];
    char pod[96], node[32], ver[32];
    uint64_t h = mix64(s->svc * 131 + s->deploy * 7919);
    snprintf(pod, sizeof(pod), "%s-%05" PRIx64 "-%c%c%c%c%c", d->name, h & 0xfffff,
             'a' + (int)((h >> 20) % 26), 'a' + (int)((h >> 25) % 26), 'a' + (int)((h >> 30) % 26),
             'a' + (int)(s->replica % 26), '0' + (int)(s->replica % 10));
    snprintf(node, sizeof(node), "node-%02" PRIu64, mix64(h + s->replica) % 12);
    snprintf(ver, sizeof(ver), "2.%u.%" PRIu64, s->svc, s->deploy % 40);
    td_otlp_kv *ra[] = {
        kv_str(b, "service.name", d->name),
        kv_str(b, "service.namespace", "shop"),
        kv_str(b, "service.version", sdup(b, ver)),
        kv_str(b, "deployment.environment", "production"),
        kv_str(b, "k8s.namespace.name", "shop"),
        kv_str(b, "k8s.pod.name", sdup(b, pod)),
        kv_str(b, "k8s.node.name", sdup(b, node)),
        kv_str(b, "host.name", sdup(b, pod)),
        kv_str(b, "cloud.region", regions[s->svc % 2]),
        kv_str(b, "telemetry.sdk.name", "opentelemetry"),
        kv_str(b, "telemetry.sdk.language", d->lang),
        kv_str(b, "telemetry.sdk.version", "1.27.0"),
    };
    td_otlp_resource *res = zalloc(b, sizeof(*res));
    opentelemetry__proto__resource__v1__resource__init(res);
    res->n_attributes = sizeof(ra) / sizeof(ra[0]);
    res->attributes = zalloc(b, sizeof(ra));
    memcpy(res->attributes, ra, sizeof(ra));

    td_otlp_scope *sc = zalloc(b, sizeof(*sc));
    opentelemetry__proto__common__v1__instrumentation_scope__init(sc);
    sc->name = (char *)"io.opentelemetry.auto";
    sc->version = (char *)"2.6.0";
    td_otlp_scope_spans *ss = zalloc(b, sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->scope = sc;
    ss->n_spans = s->nspans;
    ss->spans = s->spans;
    td_otlp_resource_spans *rs = zalloc(b, sizeof(*rs));
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    rs->resource = res;
    rs->n_scope_spans = 1;
    rs->scope_spans = zalloc(b, sizeof(*rs->scope_spans));
    rs->scope_spans[0] = ss;
    return rs;
}

static td_otlp_span *make_span(bld *b, rng *r, const uint8_t tid[16], const gspan *all,
                               const gspan *gs, uint64_t user)
{
    td_otlp_span *sp = zalloc(b, sizeof(*sp));
    opentelemetry__proto__trace__v1__span__init(sp);
    sp->trace_id = (ProtobufCBinaryData){16, (uint8_t *)tid};
    sp->span_id = (ProtobufCBinaryData){8, (uint8_t *)gs->span_id};
    if (gs->parent >= 0) {
        sp->parent_span_id = (ProtobufCBinaryData){8, (uint8_t *)all[gs->parent].span_id};
    }
    sp->kind = gs->kind;
    sp->start_time_unix_nano = gs->start;
    sp->end_time_unix_nano = gs->end;
    sp->flags = 0x101;
    const svc_def *d = &services[gs->svc];
    td_otlp_kv *kv[10];
    size_t n = 0;
    const char *method = methods[(gs->route * 7 + gs->svc) % 8];
    int64_t code = gs->error ? (below(r, 4) ? 500 : 503) : (below(r, 50) ? 200 : 404);
    char tmp[160];
    switch (gs->what) {
    case 0: /* HTTP server */
        snprintf(tmp, sizeof(tmp), "%s %s", method, route_names[gs->route]);
        sp->name = sdup(b, tmp);
        kv[n++] = kv_str(b, "http.method", method);
        kv[n++] = kv_str(b, "http.route", route_names[gs->route]);
        kv[n++] = kv_int(b, "http.status_code", code);
        kv[n++] = kv_str(b, "http.scheme", "http");
        kv[n++] = kv_int(b, "net.host.port", 8080);
        snprintf(tmp, sizeof(tmp), "user-%07" PRIu64, user);
        kv[n++] = kv_str(b, "enduser.id", sdup(b, tmp));
        if (gs->parent < 0) {
            kv[n++] = kv_str(b, "user_agent.original", PICK(r, user_agents));
        }
        break;
    case 1: /* HTTP client */
        snprintf(tmp, sizeof(tmp), "%s", method);
        sp->name = sdup(b, tmp);
        kv[n++] = kv_str(b, "http.method", method);
        snprintf(tmp, sizeof(tmp), "http://%s:8080%s", services[gs->callee].name,
                 route_names[gs->route]);
        kv[n++] = kv_str(b, "http.url", sdup(b, tmp));
        kv[n++] = kv_int(b, "http.status_code", code);
        kv[n++] = kv_str(b, "net.peer.name", services[gs->callee].name);
        break;
    case 2: { /* database client */
        const db_ops *db = NULL;
        for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
            if (!strcmp(dbs[i].system, d->db)) {
                db = &dbs[i];
            }
        }
        TD_ASSERT(db != NULL);
        size_t op = below(r, 4);
        snprintf(tmp, sizeof(tmp), "%s %s", db->ops[op], d->dbname);
        sp->name = sdup(b, tmp);
        kv[n++] = kv_str(b, "db.system", db->system);
        kv[n++] = kv_str(b, "db.name", d->dbname);
        kv[n++] = kv_str(b, "db.operation", db->ops[op]);
        kv[n++] = kv_str(b, "db.statement", db->stmts[op]);
        snprintf(tmp, sizeof(tmp), "%s-%s.db", d->dbname, db->system);
        kv[n++] = kv_str(b, "net.peer.name", sdup(b, tmp));
        break;
    }
    default: /* internal */
        sp->name = (char *)PICK(r, functions);
        kv[n++] = kv_str(b, "code.function", sp->name);
        kv[n++] = kv_str(b, "code.namespace", d->name);
        kv[n++] = kv_bool(b, "app.cache_hit", below(r, 2) == 0);
        break;
    }
    sp->n_attributes = n;
    sp->attributes = zalloc(b, n * sizeof(*sp->attributes));
    memcpy(sp->attributes, kv, n * sizeof(*kv));

    td_otlp_status *st = zalloc(b, sizeof(*st));
    opentelemetry__proto__trace__v1__status__init(st);
    if (gs->error) {
        st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
        st->message = gs->what == 2 ? (char *)"connection reset by peer"
                                    : (char *)"upstream returned 503 Service Unavailable";
        td_otlp_event *ev = zalloc(b, sizeof(*ev));
        opentelemetry__proto__trace__v1__span__event__init(ev);
        ev->time_unix_nano = gs->end;
        ev->name = (char *)"exception";
        ev->n_attributes = 2;
        ev->attributes = zalloc(b, 2 * sizeof(*ev->attributes));
        ev->attributes[0] = kv_str(b, "exception.type", gs->what == 2 ? "IOError" : "HttpError");
        ev->attributes[1] = kv_str(b, "exception.message", st->message);
        sp->n_events = 1;
        sp->events = zalloc(b, sizeof(*sp->events));
        sp->events[0] = ev;
    }
    sp->status = st;
    return sp;
}

/*
 * Build request req into out (packed protobuf). Returns the number of spans;
 * *nerr / *nslow count error spans and slow traces; sampled trace IDs are
 * recorded in R.
 */
static size_t build_request(run *R, reqgen *g, uint64_t req, td_buf *out, uint64_t *nerr,
                            uint64_t *nslow)
{
    const cfg *c = &R->c;
    td_arena_init(&g->b.a, 1 << 20, 0);
    g->ngs = 0;
    g->nslots = 0;
    uint64_t t0 = req * c->tpr;
    uint64_t t1 = t0 + c->tpr < c->ntraces ? t0 + c->tpr : c->ntraces;
    g->tids = zalloc(&g->b, (size_t)(t1 - t0) * 16);
    uint64_t *users = zalloc(&g->b, (size_t)(t1 - t0) * sizeof(uint64_t));
    size_t *first = zalloc(&g->b, (size_t)(t1 - t0 + 1) * sizeof(size_t));
    for (uint64_t t = t0; t < t1; t++) {
        uint32_t ts = (uint32_t)(t - t0);
        trace_id_of(c, t, g->tids[ts]);
        first[ts] = g->ngs;
        bool slow = false;
        gen_trace(R, g, t, ts, nerr, &slow);
        *nslow += slow;
        users[ts] = mix64(c->seed + t * 0x9e3779b97f4a7c15ull) % 2000000;
        if (R->ids && t % R->id_every == 0 && t / R->id_every < c->nids) {
            memcpy(R->ids[t / R->id_every], g->tids[ts], 16);
            R->id_start[t / R->id_every] = g->gs[first[ts]].start;
        }
    }
    first[t1 - t0] = g->ngs;
    /* per-resource span arrays */
    for (size_t i = 0; i < g->ngs; i++) {
        g->slots[g->gs[i].res].nspans++;
    }
    for (size_t i = 0; i < g->nslots; i++) {
        g->slots[i].spans = zalloc(&g->b, g->slots[i].nspans * sizeof(td_otlp_span *));
        g->slots[i].fill = 0;
    }
    rng r = {mix64(c->seed * 31 + req)};
    for (size_t i = 0; i < g->ngs; i++) {
        uint32_t ts = g->span_trace[i];
        const gspan *tr = &g->gs[first[ts]];
        td_otlp_span *sp = make_span(&g->b, &r, g->tids[ts], tr, &g->gs[i], users[ts]);
        rslot *s = &g->slots[g->gs[i].res];
        s->spans[s->fill++] = sp;
    }
    td_otlp_request rq;
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(&rq);
    rq.n_resource_spans = g->nslots;
    rq.resource_spans = zalloc(&g->b, (g->nslots ? g->nslots : 1) * sizeof(*rq.resource_spans));
    for (size_t i = 0; i < g->nslots; i++) {
        rq.resource_spans[i] = resource_spans(&g->b, &g->slots[i]);
    }
    size_t len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &rq);
    td_buf_reset(out);
    td_buf_grow(out, len + 1);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(
        &rq, (uint8_t *)out->data);
    td_buf_setlen(out, len);
    size_t n = g->ngs;
    td_arena_release(&g->b.a);
    return n;
}

/* spans the server reported as rejected in partial_success (0 when none or undecodable) */
static uint64_t rejected_of(const td_buf *body)
{
    if (body->len == 0) {
        return 0;
    }
    td_otlp_response *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, body->len, (const uint8_t *)body->data);
    if (!resp) {
        return 0;
    }
    uint64_t n = 0;
    if (resp->partial_success && resp->partial_success->rejected_spans > 0) {
        n = (uint64_t)resp->partial_success->rejected_spans;
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(resp,
                                                                                             NULL);
    return n;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *worker(void *arg)
{
    run *R = arg;
    const cfg *c = &R->c;
    reqgen *g = td_xcalloc(1, sizeof(*g));
    td_buf body = TD_BUF_INIT;
    td_bench_http h;
    td_bench_http_resp resp;
    td_bench_http_resp_init(&resp);
    td_err err = {0};
    char headers[256];
    snprintf(headers, sizeof(headers), "Content-Type: application/x-protobuf\r\n%s%s%s",
             c->tenant ? "X-Scope-OrgID: " : "", c->tenant ? c->tenant : "",
             c->tenant ? "\r\n" : "");
    if (!c->dry_run && td_bench_http_init(&h, c->target, 60000, &err) != TD_OK) {
        fprintf(stderr, "bench_load: %s\n", err.msg);
        atomic_store(&R->st.fatal, 1);
        goto out;
    }
    for (;;) {
        if (atomic_load(&R->st.fatal)) {
            break;
        }
        uint64_t req = atomic_fetch_add(&R->st.next_req, 1);
        if (req >= c->nreq) {
            break;
        }
        uint64_t nerr = 0, nslow = 0;
        size_t n = build_request(R, g, req, &body, &nerr, &nslow);
        atomic_fetch_add(&R->st.spans_gen, n);
        atomic_fetch_add(&R->st.error_spans, nerr);
        atomic_fetch_add(&R->st.slow_traces, nslow);
        atomic_fetch_add(&R->st.bytes, body.len);
        if (c->dry_run) {
            atomic_fetch_add(&R->st.reqs_done, 1);
            continue;
        }
        int transport_errs = 0;
        for (;;) {
            atomic_fetch_add(&R->st.spans_sent, n);
            td_status st = td_bench_http_do(&h, "POST", "/v1/traces", headers, body.data, body.len,
                                            &resp, &err);
            if (st != TD_OK) {
                if (++transport_errs > 10) {
                    fprintf(stderr, "bench_load: request %" PRIu64 ": %s (giving up)\n", req,
                            err.msg);
                    atomic_fetch_add(&R->st.failed, 1);
                    break;
                }
                atomic_fetch_add(&R->st.transport_retries, 1);
                sleep_ms(1000);
                continue;
            }
            if (resp.status == 503 || resp.status == 429) {
                atomic_fetch_add(&R->st.refused, 1);
                int ra = resp.retry_after > 0 ? resp.retry_after : 1;
                sleep_ms((uint64_t)(ra > 10 ? 10 : ra) * 1000);
                continue;
            }
            if (resp.status / 100 == 2) {
                uint64_t rej = rejected_of(&resp.body);
                atomic_fetch_add(&R->st.spans_rejected, rej);
                atomic_fetch_add(&R->st.spans_ok, n - (rej < n ? rej : n));
            } else {
                fprintf(stderr, "bench_load: request %" PRIu64 ": HTTP %d: %.200s\n", req,
                        resp.status, resp.body.data);
                atomic_fetch_add(&R->st.failed, 1);
            }
            break;
        }
        atomic_fetch_add(&R->st.reqs_done, 1);
    }
    if (!c->dry_run) {
        td_bench_http_release(&h);
    }
out:
    td_bench_http_resp_release(&resp);
    td_buf_release(&body);
    td_free(g->gs);
    td_free(g->span_trace);
    td_free(g);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench_load --target HOST:PORT [--spans N] [--traces-per-request N]\n"
        "                  [--services N] [--seed N] [--end-s UNIX_S] [--window-s S]\n"
        "                  [--error-pct P] [--slow-pct P] [--connections N]\n"
        "                  [--ids-out FILE] [--ids N] [--tenant ID] [--dry-run] [--progress S]\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    run R;
    memset(&R, 0, sizeof(R));
    cfg *c = &R.c;
    c->spans = 10000000;
    c->tpr = 50;
    c->nsvc = MAX_SVC;
    c->seed = 1;
    c->window_s = 86400;
    c->nids = 1000;
    c->error_pct = 2.0;
    c->slow_pct = 3.0;
    c->conns = 2;
    c->progress_s = 10;
    uint64_t conns = 2, progress = 10;
    static const struct option lopts[] = {{"target", required_argument, NULL, 'T'},
                                          {"spans", required_argument, NULL, 's'},
                                          {"traces-per-request", required_argument, NULL, 'q'},
                                          {"services", required_argument, NULL, 'v'},
                                          {"seed", required_argument, NULL, 'S'},
                                          {"end-s", required_argument, NULL, 'e'},
                                          {"window-s", required_argument, NULL, 'w'},
                                          {"error-pct", required_argument, NULL, 'E'},
                                          {"slow-pct", required_argument, NULL, 'L'},
                                          {"connections", required_argument, NULL, 'c'},
                                          {"ids-out", required_argument, NULL, 'o'},
                                          {"ids", required_argument, NULL, 'i'},
                                          {"tenant", required_argument, NULL, 't'},
                                          {"dry-run", no_argument, NULL, 'd'},
                                          {"progress", required_argument, NULL, 'p'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int ch, li = 0;
    while ((ch = getopt_long(argc, argv, "", lopts, &li)) != -1) {
        uint64_t *dst = NULL;
        switch (ch) {
        case 'T':
            c->target = optarg;
            break;
        case 's':
            dst = &c->spans;
            break;
        case 'q':
            dst = &c->tpr;
            break;
        case 'v':
            dst = &c->nsvc;
            break;
        case 'S':
            dst = &c->seed;
            break;
        case 'e':
            dst = &c->end_s;
            break;
        case 'w':
            dst = &c->window_s;
            break;
        case 'E':
            c->error_pct = atof(optarg);
            break;
        case 'L':
            c->slow_pct = atof(optarg);
            break;
        case 'c':
            dst = &conns;
            break;
        case 'o':
            c->ids_out = optarg;
            break;
        case 'i':
            dst = &c->nids;
            break;
        case 't':
            c->tenant = optarg;
            break;
        case 'd':
            c->dry_run = true;
            break;
        case 'p':
            dst = &progress;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (dst && parse_u64(optarg, dst) != 0) {
            fprintf(stderr, "bench_load: bad number for --%s: %s\n", lopts[li].name, optarg);
            return 2;
        }
    }
    if (optind != argc || (!c->target && !c->dry_run) || c->spans < 10 || c->tpr == 0 ||
        c->tpr > 1000 || c->nsvc < 2 || c->nsvc > MAX_SVC || conns == 0 || conns > 64 ||
        c->window_s == 0) {
        usage(stderr);
        return 2;
    }
    c->conns = (int)conns;
    c->progress_s = (int)progress;
    if (c->end_s == 0) {
        c->end_s = (uint64_t)time(NULL);
    }
    if (c->window_s > c->end_s) {
        fprintf(stderr, "bench_load: --window-s reaches before 1970\n");
        return 2;
    }
    c->ntraces = c->spans / 10;
    c->nreq = (c->ntraces + c->tpr - 1) / c->tpr;
    if (c->ids_out && c->nids > 0) {
        if (c->nids > c->ntraces) {
            c->nids = c->ntraces;
        }
        R.id_every = c->ntraces / c->nids;
        R.ids = td_xcalloc(c->nids, 16);
        R.id_start = td_xcalloc(c->nids, sizeof(uint64_t));
    }
    fprintf(stderr,
            "bench_load: %" PRIu64 " traces (~%" PRIu64 " spans) in %" PRIu64
            " requests over [%" PRIu64 ", %" PRIu64 "), %" PRIu64 " services, %d connection(s)\n",
            c->ntraces, c->spans, c->nreq, c->end_s - c->window_s, c->end_s, c->nsvc, c->conns);

    pthread_t *th = td_xcalloc((size_t)c->conns, sizeof(*th));
    double t0 = now_s();
    for (int i = 0; i < c->conns; i++) {
        if (pthread_create(&th[i], NULL, worker, &R) != 0) {
            fprintf(stderr, "bench_load: pthread_create failed\n");
            return 1;
        }
    }
    /* progress until every request is done */
    double last = t0;
    uint64_t last_ok = 0;
    while (atomic_load(&R.st.reqs_done) < c->nreq && !atomic_load(&R.st.fatal)) {
        sleep_ms(200);
        double t = now_s();
        if (c->progress_s > 0 && t - last >= c->progress_s) {
            uint64_t ok = atomic_load(&R.st.spans_ok);
            fprintf(stderr,
                    "bench_load: %.0f s: %" PRIu64 "/%" PRIu64 " requests, %" PRIu64
                    " spans accepted (%.0f/s now), %" PRIu64 " refused\n",
                    t - t0, atomic_load(&R.st.reqs_done), c->nreq, ok,
                    (double)(ok - last_ok) / (t - last), atomic_load(&R.st.refused));
            last = t;
            last_ok = ok;
        }
        /* a worker that hit a setup error sets fatal; the others then stop */
    }
    for (int i = 0; i < c->conns; i++) {
        pthread_join(th[i], NULL);
    }
    double secs = now_s() - t0;
    td_free(th);

    int rc = 0;
    if (R.ids) {
        FILE *f = fopen(c->ids_out, "w");
        if (!f) {
            fprintf(stderr, "bench_load: cannot write %s: %s\n", c->ids_out, strerror(errno));
            rc = 1;
        } else {
            fprintf(f, "# bench_load seed=%" PRIu64 " end_s=%" PRIu64 " window_s=%" PRIu64 "\n",
                    c->seed, c->end_s, c->window_s);
            for (uint64_t i = 0; i < c->nids; i++) {
                for (int k = 0; k < 16; k++) {
                    fprintf(f, "%02x", R.ids[i][k]);
                }
                fprintf(f, " %" PRIu64 "\n", R.id_start[i]);
            }
            if (fclose(f) != 0) {
                rc = 1;
            }
        }
    }
    uint64_t gen = atomic_load(&R.st.spans_gen), ok = atomic_load(&R.st.spans_ok);
    printf("traces=%" PRIu64 "\n", c->ntraces);
    printf("requests=%" PRIu64 "\n", c->nreq);
    printf("spans_generated=%" PRIu64 "\n", gen);
    printf("spans_sent=%" PRIu64 "\n", atomic_load(&R.st.spans_sent));
    printf("spans_accepted=%" PRIu64 "\n", ok);
    printf("spans_rejected=%" PRIu64 "\n", atomic_load(&R.st.spans_rejected));
    printf("error_spans=%" PRIu64 "\n", atomic_load(&R.st.error_spans));
    printf("slow_traces=%" PRIu64 "\n", atomic_load(&R.st.slow_traces));
    printf("request_bytes=%" PRIu64 "\n", atomic_load(&R.st.bytes));
    printf("requests_refused=%" PRIu64 "\n", atomic_load(&R.st.refused));
    printf("requests_failed=%" PRIu64 "\n", atomic_load(&R.st.failed));
    printf("transport_retries=%" PRIu64 "\n", atomic_load(&R.st.transport_retries));
    printf("seconds=%.1f\n", secs);
    printf("spans_per_s=%.0f\n", secs > 0 ? (double)(c->dry_run ? gen : ok) / secs : 0.0);
    printf("data_start_s=%" PRIu64 "\n", c->end_s - c->window_s);
    printf("data_end_s=%" PRIu64 "\n", c->end_s);
    td_free(R.ids);
    td_free(R.id_start);
    if (atomic_load(&R.st.fatal) || atomic_load(&R.st.failed) > 0) {
        rc = rc ? rc : 3;
    }
    return rc;
}
