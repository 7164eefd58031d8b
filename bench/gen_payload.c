/*
 * gen_payload.c - bench_gen_payload: write a realistic OTLP ExportTraceServiceRequest.
 *
 *   bench_gen_payload [--spans 512] [--traces 64] [--attrs 10] [--resources 2]
 *                     [--seed 1] [--start-ns NS] --out FILE.pb
 *
 * The shape follows the shared reference batch (64 traces x 8 spans, two services
 * "frontend" and "checkout", ten mixed-type attributes per span, events and
 * status): each trace has a SERVER root in the first resource and children spread
 * over the resources, nested in time; attribute values come from small
 * vocabularies, so the batch compresses like real telemetry; some spans carry an
 * error status with an "exception" event, and every 16th span links to the root of
 * the previous trace (so bench tools exercise link-ID rewriting).
 * Output is deterministic for a given --seed and --start-ns.
 */
#include "core/arena.h"
#include "core/mem.h"
#include "proto/proto.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef Opentelemetry__Proto__Trace__V1__Span__SpanKind span_kind;

typedef struct gen {
    td_arena a;
    uint64_t rng;
} gen;

static uint64_t rnd(gen *g)
{
    /* splitmix64 */
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rnd_below(gen *g, uint64_t n)
{
    return n ? rnd(g) % n : 0;
}

#define PICK(g, arr) ((arr)[rnd_below((g), sizeof(arr) / sizeof((arr)[0]))])

static void *alloc0(gen *g, size_t n)
{
    void *p = td_arena_calloc(&g->a, 1, n);
    TD_ASSERT(p != NULL);
    return p;
}

static char *sdup(gen *g, const char *s)
{
    char *p = td_arena_strndup(&g->a, s, strlen(s));
    TD_ASSERT(p != NULL);
    return p;
}

static ProtobufCBinaryData rand_bytes(gen *g, size_t n)
{
    uint8_t *p = alloc0(g, n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rnd(g);
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
    return (ProtobufCBinaryData){n, p};
}

/* ---- attribute constructors ---- */

static td_otlp_kv *kv_new(gen *g, const char *key)
{
    td_otlp_kv *kv = alloc0(g, sizeof(*kv));
    opentelemetry__proto__common__v1__key_value__init(kv);
    kv->key = sdup(g, key);
    kv->value = alloc0(g, sizeof(*kv->value));
    opentelemetry__proto__common__v1__any_value__init(kv->value);
    return kv;
}

static td_otlp_kv *kv_str(gen *g, const char *key, const char *val)
{
    td_otlp_kv *kv = kv_new(g, key);
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    kv->value->string_value = sdup(g, val);
    return kv;
}

static td_otlp_kv *kv_int(gen *g, const char *key, int64_t val)
{
    td_otlp_kv *kv = kv_new(g, key);
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    kv->value->int_value = val;
    return kv;
}

static td_otlp_kv *kv_dbl(gen *g, const char *key, double val)
{
    td_otlp_kv *kv = kv_new(g, key);
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    kv->value->double_value = val;
    return kv;
}

static td_otlp_kv *kv_bool(gen *g, const char *key, int val)
{
    td_otlp_kv *kv = kv_new(g, key);
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    kv->value->bool_value = val != 0;
    return kv;
}

static td_otlp_kv *kv_strs(gen *g, const char *key, const char *const *vals, size_t n)
{
    td_otlp_kv *kv = kv_new(g, key);
    td_otlp_array *arr = alloc0(g, sizeof(*arr));
    opentelemetry__proto__common__v1__array_value__init(arr);
    arr->n_values = n;
    arr->values = alloc0(g, n * sizeof(*arr->values));
    for (size_t i = 0; i < n; i++) {
        td_otlp_any *v = alloc0(g, sizeof(*v));
        opentelemetry__proto__common__v1__any_value__init(v);
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = sdup(g, vals[i]);
        arr->values[i] = v;
    }
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    kv->value->array_value = arr;
    return kv;
}

/* ---- vocabularies ---- */

static const char *const service_names[] = {"frontend", "checkout", "cart", "payment",
                                            "shipping", "currency", "ad",   "email"};
static const char *const server_routes[] = {"/api/cart",          "/api/checkout",
                                            "/api/products/{id}", "/api/recommendations",
                                            "/api/currency",      "/api/shipping/quote"};
static const char *const methods[] = {"GET", "GET", "GET", "POST", "PUT"};
static const char *const internal_names[] = {"render template", "validate order", "compute totals",
                                             "serialize response", "load feature flags"};
static const char *const db_statements[] = {
    "SELECT * FROM orders WHERE user_id = ?", "SELECT price, currency FROM products WHERE id = ?",
    "INSERT INTO cart_items (cart_id, product_id, qty) VALUES (?, ?, ?)",
    "UPDATE inventory SET reserved = reserved + ? WHERE sku = ?"};
static const char *const peers[] = {"cart:7070",     "payment:50051", "currency:7001",
                                    "postgres:5432", "redis:6379",    "shipping:50050"};
static const char *const user_agents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "python-requests/2.31.0", "okhttp/4.12.0"};
static const char *const tag_words[] = {"beta", "eu-west", "mobile", "returning", "promo", "vip"};
static const char *const regions[] = {"eu-west-1", "us-east-1", "ap-southeast-2"};

/* The span's mixed-type attributes: strings, ints, a double, a bool, a string array. */
static void span_attrs(gen *g, td_otlp_span *sp, size_t nattrs, int is_db)
{
    sp->n_attributes = nattrs;
    sp->attributes = alloc0(g, (nattrs ? nattrs : 1) * sizeof(*sp->attributes));
    for (size_t i = 0; i < nattrs; i++) {
        td_otlp_kv *kv;
        char tmp[96];
        switch (i) {
        case 0:
            kv = is_db ? kv_str(g, "db.system",
                                PICK(g, ((const char *const[]){"postgresql", "redis"})))
                       : kv_str(g, "http.method", PICK(g, methods));
            break;
        case 1:
            kv = is_db ? kv_str(g, "db.statement", PICK(g, db_statements))
                       : kv_str(g, "http.route", PICK(g, server_routes));
            break;
        case 2:
            kv = kv_int(g, "http.status_code", rnd_below(g, 20) == 0 ? 500 : 200);
            break;
        case 3:
            kv = kv_str(g, "net.peer.name", PICK(g, peers));
            break;
        case 4:
            kv = kv_int(g, "net.peer.port", 1024 + (int64_t)rnd_below(g, 60000));
            break;
        case 5:
            kv = kv_int(g, "http.response_content_length", (int64_t)rnd_below(g, 65536));
            break;
        case 6:
            kv = kv_dbl(g, "app.cart.total", (double)rnd_below(g, 100000) / 100.0);
            break;
        case 7:
            kv = kv_bool(g, "app.cache_hit", (int)rnd_below(g, 2));
            break;
        case 8:
            kv = kv_str(g, "http.user_agent", PICK(g, user_agents));
            break;
        case 9: {
            const char *tags[3] = {PICK(g, tag_words), PICK(g, tag_words), PICK(g, tag_words)};
            kv = kv_strs(g, "app.tags", tags, 1 + rnd_below(g, 3));
            break;
        }
        default:
            snprintf(tmp, sizeof(tmp), "user-%05" PRIu64, rnd_below(g, 20000));
            {
                char key[32];
                snprintf(key, sizeof(key), "app.attr_%zu", i);
                kv = kv_str(g, key, tmp);
            }
            break;
        }
        sp->attributes[i] = kv;
    }
}

static td_otlp_event *event_new(gen *g, uint64_t t, const char *name, size_t nattrs)
{
    td_otlp_event *ev = alloc0(g, sizeof(*ev));
    opentelemetry__proto__trace__v1__span__event__init(ev);
    ev->time_unix_nano = t;
    ev->name = sdup(g, name);
    ev->n_attributes = nattrs;
    ev->attributes = alloc0(g, (nattrs ? nattrs : 1) * sizeof(*ev->attributes));
    return ev;
}

/* ---- resources ---- */

static td_otlp_resource_spans *resource_new(gen *g, size_t idx, size_t span_cap)
{
    const char *svc = service_names[idx % (sizeof(service_names) / sizeof(service_names[0]))];
    char host[64], ver[32], scope[96];
    snprintf(host, sizeof(host), "%s-%04" PRIx64 "-node", svc, rnd(g) & 0xffff);
    snprintf(ver, sizeof(ver), "1.%zu.%" PRIu64, 4 + idx, rnd_below(g, 10));
    snprintf(scope, sizeof(scope), "io.opentelemetry.instrumentation.%s", svc);

    td_otlp_resource *res = alloc0(g, sizeof(*res));
    opentelemetry__proto__resource__v1__resource__init(res);
    td_otlp_kv *ra[] = {
        kv_str(g, "service.name", svc),
        kv_str(g, "service.namespace", "shop"),
        kv_str(g, "service.version", ver),
        kv_str(g, "deployment.environment", "production"),
        kv_str(g, "cloud.region", PICK(g, regions)),
        kv_str(g, "host.name", host),
        kv_str(g, "host.arch", "amd64"),
        kv_str(g, "os.type", "linux"),
        kv_int(g, "process.pid", 1000 + (int64_t)rnd_below(g, 30000)),
        kv_str(g, "telemetry.sdk.name", "opentelemetry"),
        kv_str(g, "telemetry.sdk.language", idx % 2 ? "go" : "nodejs"),
        kv_str(g, "telemetry.sdk.version", "1.24.0"),
    };
    res->n_attributes = sizeof(ra) / sizeof(ra[0]);
    res->attributes = alloc0(g, sizeof(ra));
    memcpy(res->attributes, ra, sizeof(ra));

    td_otlp_scope *sc = alloc0(g, sizeof(*sc));
    opentelemetry__proto__common__v1__instrumentation_scope__init(sc);
    sc->name = sdup(g, scope);
    sc->version = sdup(g, "0.49.1");

    td_otlp_scope_spans *ss = alloc0(g, sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->scope = sc;
    ss->spans = alloc0(g, (span_cap ? span_cap : 1) * sizeof(*ss->spans));
    ss->schema_url = sdup(g, "https://opentelemetry.io/schemas/1.24.0");

    td_otlp_resource_spans *rs = alloc0(g, sizeof(*rs));
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    rs->resource = res;
    rs->n_scope_spans = 1;
    rs->scope_spans = alloc0(g, sizeof(*rs->scope_spans));
    rs->scope_spans[0] = ss;
    rs->schema_url = sdup(g, "https://opentelemetry.io/schemas/1.24.0");
    return rs;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_gen_payload [--spans N] [--traces N] [--attrs N] [--resources N]\n"
               "                         [--seed N] [--start-ns NS] --out FILE.pb\n");
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
    uint64_t nspans = 512, ntraces = 64, nattrs = 10, nres = 2, seed = 1, start_ns = 0;
    const char *out = NULL;
    static const struct option lopts[] = {{"spans", required_argument, NULL, 's'},
                                          {"traces", required_argument, NULL, 't'},
                                          {"attrs", required_argument, NULL, 'a'},
                                          {"resources", required_argument, NULL, 'r'},
                                          {"seed", required_argument, NULL, 'S'},
                                          {"start-ns", required_argument, NULL, 'T'},
                                          {"out", required_argument, NULL, 'o'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int c, li = 0;
    while ((c = getopt_long(argc, argv, "", lopts, &li)) != -1) {
        uint64_t *dst = NULL;
        switch (c) {
        case 's':
            dst = &nspans;
            break;
        case 't':
            dst = &ntraces;
            break;
        case 'a':
            dst = &nattrs;
            break;
        case 'r':
            dst = &nres;
            break;
        case 'S':
            dst = &seed;
            break;
        case 'T':
            dst = &start_ns;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (dst && parse_u64(optarg, dst) != 0) {
            fprintf(stderr, "bench_gen_payload: bad number for --%s: %s\n", lopts[li].name, optarg);
            return 2;
        }
    }
    if (!out || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (nspans == 0 || nspans > 1000000 || ntraces == 0 || ntraces > nspans || nattrs > 64 ||
        nres == 0 || nres > 8) {
        fprintf(stderr, "bench_gen_payload: need 1 <= traces <= spans <= 1e6, attrs <= 64, "
                        "1 <= resources <= 8\n");
        return 2;
    }
    if (start_ns == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        start_ns = ((uint64_t)ts.tv_sec - 60) * 1000000000ull;
    }

    gen g = {.rng = seed};
    td_arena_init(&g.a, 1 << 20, 0);

    td_otlp_resource_spans **rss = alloc0(&g, nres * sizeof(*rss));
    for (size_t i = 0; i < nres; i++) {
        rss[i] = resource_new(&g, i, nspans);
    }

    uint8_t prev_root_trace[16] = {0}, prev_root_span[8] = {0};
    int have_prev = 0;
    size_t span_no = 0;
    td_otlp_span **tspans = alloc0(&g, nspans * sizeof(*tspans));
    for (uint64_t t = 0; t < ntraces; t++) {
        size_t per = nspans / ntraces + (t < nspans % ntraces ? 1 : 0);
        ProtobufCBinaryData tid = rand_bytes(&g, 16);
        uint64_t t0 = start_ns + t * 937000ull + rnd_below(&g, 500000);
        for (size_t k = 0; k < per; k++) {
            td_otlp_span *sp = alloc0(&g, sizeof(*sp));
            opentelemetry__proto__trace__v1__span__init(sp);
            sp->trace_id = tid;
            sp->span_id = rand_bytes(&g, 8);
            sp->flags = 0x101; /* sampled, parent-is-remote known */
            size_t res_idx;
            span_kind kind;
            const char *name;
            char nbuf[96];
            int is_db = 0;
            if (k == 0) {
                res_idx = 0;
                kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
                snprintf(nbuf, sizeof(nbuf), "%s %s", PICK(&g, methods), PICK(&g, server_routes));
                name = nbuf;
                sp->start_time_unix_nano = t0;
                sp->end_time_unix_nano = t0 + 20000000ull + rnd_below(&g, 180000000ull);
            } else {
                td_otlp_span *parent = tspans[rnd_below(&g, k)];
                sp->parent_span_id = parent->span_id;
                res_idx = 1 + rnd_below(&g, nres > 1 ? nres - 1 : 1);
                if (nres == 1) {
                    res_idx = 0;
                }
                switch (k % 4) {
                case 1:
                    kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
                    snprintf(nbuf, sizeof(nbuf), "%s %s", PICK(&g, methods),
                             PICK(&g, server_routes));
                    name = nbuf;
                    break;
                case 2:
                    kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
                    name = PICK(&g, ((const char *const[]){"SELECT orders", "SELECT products",
                                                           "INSERT cart_items", "GET", "HGETALL"}));
                    is_db = 1;
                    break;
                case 3:
                    kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
                    snprintf(nbuf, sizeof(nbuf), "oteldemo.%sService/%s",
                             PICK(&g, ((const char *const[]){"Cart", "Payment", "Currency"})),
                             PICK(&g, ((const char *const[]){"GetCart", "Charge", "Convert"})));
                    name = nbuf;
                    break;
                default:
                    kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
                    name = PICK(&g, internal_names);
                    break;
                }
                uint64_t ps = parent->start_time_unix_nano, pe = parent->end_time_unix_nano;
                uint64_t span = pe - ps;
                sp->start_time_unix_nano = ps + rnd_below(&g, span / 2 + 1);
                sp->end_time_unix_nano =
                    sp->start_time_unix_nano + 1 + rnd_below(&g, pe - sp->start_time_unix_nano);
            }
            sp->name = sdup(&g, name);
            sp->kind = kind;
            span_attrs(&g, sp, nattrs, is_db);

            /* status: mostly unset, some OK, ~5% errors with an exception event */
            td_otlp_status *st = alloc0(&g, sizeof(*st));
            opentelemetry__proto__trace__v1__status__init(st);
            uint64_t roll = rnd_below(&g, 100);
            int is_err = roll < 5;
            if (is_err) {
                st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
                st->message = sdup(&g, "upstream returned 503 Service Unavailable");
            } else if (roll < 15) {
                st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK;
            }
            sp->status = st;

            size_t nev = is_err ? 2 : 1;
            sp->n_events = nev;
            sp->events = alloc0(&g, nev * sizeof(*sp->events));
            uint64_t mid =
                sp->start_time_unix_nano + (sp->end_time_unix_nano - sp->start_time_unix_nano) / 2;
            td_otlp_event *ev = event_new(&g, mid, "log", 2);
            ev->attributes[0] = kv_str(&g, "log.severity", is_err ? "ERROR" : "INFO");
            ev->attributes[1] =
                kv_str(&g, "log.message",
                       PICK(&g, ((const char *const[]){"cache miss, loading from database",
                                                       "request validated", "retrying once",
                                                       "feature flag evaluated"})));
            sp->events[0] = ev;
            if (is_err) {
                ev = event_new(&g, sp->end_time_unix_nano, "exception", 3);
                ev->attributes[0] = kv_str(&g, "exception.type", "UpstreamUnavailable");
                ev->attributes[1] = kv_str(&g, "exception.message", "payment: connection refused");
                ev->attributes[2] =
                    kv_str(&g, "exception.stacktrace",
                           "at charge (payment.js:118)\nat process (checkout.js:52)");
                sp->events[1] = ev;
            }

            if (span_no % 16 == 15 && have_prev) {
                td_otlp_link *ln = alloc0(&g, sizeof(*ln));
                opentelemetry__proto__trace__v1__span__link__init(ln);
                ln->trace_id =
                    (ProtobufCBinaryData){16, td_arena_memdup(&g.a, prev_root_trace, 16)};
                ln->span_id = (ProtobufCBinaryData){8, td_arena_memdup(&g.a, prev_root_span, 8)};
                ln->n_attributes = 1;
                ln->attributes = alloc0(&g, sizeof(*ln->attributes));
                ln->attributes[0] = kv_str(&g, "link.reason", "follows-from");
                sp->n_links = 1;
                sp->links = alloc0(&g, sizeof(*sp->links));
                sp->links[0] = ln;
            }

            tspans[k] = sp;
            td_otlp_scope_spans *ss = rss[res_idx]->scope_spans[0];
            ss->spans[ss->n_spans++] = sp;
            span_no++;
        }
        memcpy(prev_root_trace, tid.data, 16);
        memcpy(prev_root_span, tspans[0]->span_id.data, 8);
        have_prev = 1;
    }

    td_otlp_request req;
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(&req);
    /* drop resources that got no span (possible with tiny --spans) */
    size_t used = 0;
    for (size_t i = 0; i < nres; i++) {
        if (rss[i]->scope_spans[0]->n_spans > 0) {
            rss[used++] = rss[i];
        }
    }
    req.n_resource_spans = used;
    req.resource_spans = rss;
    size_t len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &req);
    uint8_t *buf = td_xmalloc(len ? len : 1);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, buf);

    int rc = 0;
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "bench_gen_payload: cannot write %s\n", out);
        rc = 1;
    } else {
        printf("wrote %s: %zu bytes, %zu spans, %" PRIu64 " traces, %zu resources\n", out, len,
               span_no, ntraces, used);
    }
    td_free(buf);
    td_arena_release(&g.a);
    return rc;
}
