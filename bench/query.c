/*
 * query.c - bench_query: latency of traced's query API on data loaded by bench_load.
 *
 *   bench_query --target 127.0.0.1:PORT --ids FILE --data-start S --data-end S
 *               [--n 100] [--n-broad N] [--warmup 3] [--max-seconds 120] [--seed 1]
 *               [--services a,b,...] [--limit 20] [--kinds trace,selective,broad,tags,values]
 *               [--trace-proto] [--tenant ID] [--tsv FILE]
 *
 * One keep-alive HTTP/1.1 connection, one request at a time (latency, not
 * throughput), timed from the first byte sent to the last byte received. Each kind
 * runs --warmup unrecorded requests, then --n recorded ones (or fewer if a kind
 * takes longer than --max-seconds in all):
 *
 *   trace       GET /api/v2/traces/{id}, a random ID of the --ids file (bench_load
 *               --ids-out); JSON, or protobuf with --trace-proto
 *   selective   GET /api/search?q={resource.service.name="S" && status=error}
 *               over a random whole hour of [data-start, data-end), S a random
 *               service of --services (default: the 17 non-edge services)
 *   broad       GET /api/search?q={duration > 1s}&limit=L over [data-end - 24h, data-end]
 *   tags        GET /api/v2/search/tags?limit=5000
 *   values      GET /api/v2/search/tag/resource.service.name/values and
 *               GET /api/v2/search/tag/span.http.route/values (two rows)
 *
 * An answer counts as ok only when it is a 200 with a plausible body: the trace's
 * spans (JSON "spanId", or the raw trace ID bytes in protobuf), at least one trace
 * for searches (and for the selective search, the service name among the returned
 * span attributes), known tag names and values. Percentiles are over ok answers;
 * the first few bad answers are printed on stderr. Output: a markdown table on
 * stdout (and tab-separated rows with --tsv). Exit status 3 when any answer was bad.
 */
#include "httpc.h"

#include "core/buf.h"
#include "core/mem.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const default_services =
    "auth,user,cart,checkout,payment,shipping,inventory,catalog,search,recommendation,pricing,"
    "currency,notification,email,fraud,ad,review";

typedef struct opts {
    const char *target, *ids_path, *services, *kinds, *tenant, *tsv;
    uint64_t data_start, data_end, n, n_broad, warmup, max_seconds, seed, limit;
    bool trace_proto;
} opts;

typedef struct tid {
    uint8_t id[16];
    char hex[33];
} tid;

typedef struct kind_res {
    const char *name;
    const char *what;
    uint64_t n, ok;
    double *lat_ms; /* ok latencies */
    double results; /* sum of traces/values returned by ok answers */
    uint64_t bytes;
    double inspected; /* sum of metrics.inspectedTraces of ok answers that have it */
    uint64_t ninspected;
    int shown_bad;
} kind_res;

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t count_of(const td_buf *b, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    const char *p = b->data, *end = b->data + b->len;
    while (p < end && (p = memmem(p, (size_t)(end - p), needle, k)) != NULL) {
        n++;
        p += k;
    }
    return n;
}

static bool has(const td_buf *b, const char *needle)
{
    return memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of a sorted array */
static double pct(const double *v, size_t n, double p)
{
    if (n == 0) {
        return NAN;
    }
    size_t r = (size_t)ceil(p / 100.0 * (double)n);
    return v[r ? r - 1 : 0];
}

static tid *load_ids(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_query: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1024, k = 0;
    tid *v = td_xcalloc(cap, sizeof(*v));
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || strlen(line) < 32) {
            continue;
        }
        if (k == cap) {
            cap *= 2;
            v = td_xrealloc(v, cap * sizeof(*v));
        }
        memcpy(v[k].hex, line, 32);
        v[k].hex[32] = '\0';
        bool okhex = true;
        for (int i = 0; i < 16; i++) {
            unsigned x;
            okhex &= sscanf(v[k].hex + 2 * i, "%2x", &x) == 1;
            v[k].id[i] = (uint8_t)x;
        }
        if (okhex) {
            k++;
        }
    }
    fclose(f);
    *n = k;
    return v;
}

typedef struct ctx {
    opts o;
    td_bench_http h;
    td_bench_http_resp r;
    char headers[256];
    char *svc[64];
    size_t nsvc;
    tid *ids;
    size_t nids;
} ctx;

/* Build the request of one kind into path; *check names what a good body holds. */
typedef bool (*check_fn)(ctx *c, const void *arg, double *results);

static bool chk_trace_json(ctx *c, const void *arg, double *results)
{
    (void)arg;
    size_t n = count_of(&c->r.body, "\"spanId\"");
    *results = (double)n;
    return has(&c->r.body, "\"resourceSpans\"") && n > 0;
}

static bool chk_trace_pb(ctx *c, const void *arg, double *results)
{
    const tid *t = arg;
    *results = 1;
    return c->r.body.len > 0 && memmem(c->r.body.data, c->r.body.len, t->id, 16) != NULL;
}

static bool chk_selective(ctx *c, const void *arg, double *results)
{
    char q[96];
    snprintf(q, sizeof(q), "\"%s\"", (const char *)arg);
    size_t n = count_of(&c->r.body, "\"traceID\"");
    *results = (double)n;
    return n > 0 && has(&c->r.body, q);
}

static bool chk_broad(ctx *c, const void *arg, double *results)
{
    (void)arg;
    size_t n = count_of(&c->r.body, "\"traceID\"");
    *results = (double)n;
    return n > 0 && n <= c->o.limit;
}

static bool chk_tags(ctx *c, const void *arg, double *results)
{
    (void)arg;
    *results = (double)count_of(&c->r.body, "\",\"") + 1;
    return has(&c->r.body, "\"service.name\"") && has(&c->r.body, "\"http.route\"") &&
           has(&c->r.body, "\"k8s.pod.name\"");
}

static bool chk_values(ctx *c, const void *arg, double *results)
{
    *results = (double)count_of(&c->r.body, "\"value\"");
    return has(&c->r.body, "\"tagValues\"") && has(&c->r.body, (const char *)arg);
}

static void one(ctx *c, kind_res *k, const char *path, check_fn chk, const void *arg, bool record)
{
    td_err err = {0};
    double t0 = now_ms();
    td_status st = td_bench_http_do(&c->h, "GET", path, c->headers, NULL, 0, &c->r, &err);
    double dt = now_ms() - t0;
    if (!record) {
        return;
    }
    k->n++;
    double results = 0;
    bool ok = st == TD_OK && c->r.status == 200 && chk(c, arg, &results);
    if (ok) {
        k->lat_ms[k->ok++] = dt;
        k->results += results;
        k->bytes += c->r.body.len;
        const char *m = memmem(c->r.body.data, c->r.body.len, "\"inspectedTraces\":", 18);
        if (m) {
            k->inspected += strtod(m + 18, NULL);
            k->ninspected++;
        }
    } else if (k->shown_bad++ < 3) {
        if (st != TD_OK) {
            fprintf(stderr, "bench_query: %s: GET %s: %s\n", k->name, path, err.msg);
        } else {
            int blen = (int)(c->r.body.len < 300 ? c->r.body.len : 300);
            while (blen > 0 &&
                   (c->r.body.data[blen - 1] == '\n' || c->r.body.data[blen - 1] == '\r')) {
                blen--;
            }
            fprintf(stderr, "bench_query: %s: GET %s: HTTP %d, implausible body: %.*s\n", k->name,
                    path, c->r.status, blen, c->r.body.data);
        }
    }
}

typedef void (*make_fn)(ctx *c, td_buf *path, const void **arg, check_fn *chk);

static tid *cur_tid;
static char *cur_svc;

static void mk_trace(ctx *c, td_buf *path, const void **arg, check_fn *chk)
{
    cur_tid = &c->ids[rnd() % c->nids];
    td_buf_addf(path, "/api/v2/traces/%s", cur_tid->hex);
    *arg = cur_tid;
    *chk = c->o.trace_proto ? chk_trace_pb : chk_trace_json;
}

static void mk_selective(ctx *c, td_buf *path, const void **arg, check_fn *chk)
{
    cur_svc = c->svc[rnd() % c->nsvc];
    uint64_t span = c->o.data_end - c->o.data_start;
    uint64_t start = c->o.data_start + (span > 3600 ? rnd() % (span - 3600) : 0);
    char q[160];
    snprintf(q, sizeof(q), "{resource.service.name=\"%s\" && status=error}", cur_svc);
    td_buf_addstr(path, "/api/search?q=");
    td_bench_urlenc(path, q);
    td_buf_addf(path, "&start=%" PRIu64 "&end=%" PRIu64 "&limit=%" PRIu64, start, start + 3600,
                c->o.limit);
    *arg = cur_svc;
    *chk = chk_selective;
}

static void mk_broad(ctx *c, td_buf *path, const void **arg, check_fn *chk)
{
    td_buf_addstr(path, "/api/search?q=");
    td_bench_urlenc(path, "{duration > 1s}");
    uint64_t start = c->o.data_end > 86400 ? c->o.data_end - 86400 : 0;
    td_buf_addf(path, "&start=%" PRIu64 "&end=%" PRIu64 "&limit=%" PRIu64, start, c->o.data_end,
                c->o.limit);
    *arg = NULL;
    *chk = chk_broad;
}

static void mk_tags(ctx *c, td_buf *path, const void **arg, check_fn *chk)
{
    (void)c;
    td_buf_addstr(path, "/api/v2/search/tags?limit=5000");
    *arg = NULL;
    *chk = chk_tags;
}

static void mk_values_svc(ctx *c, td_buf *path, const void **arg, check_fn *chk)
{
    (void)c;
    td_buf_addstr(path, "/api/v2/search/tag/resource.service.name/values?limit=5000");
    *arg = "\"checkout\"";
    *chk = chk_values;
}

static void mk_values_route(ctx *c, td_buf *path, const void **arg, check_fn *chk)
{
    (void)c;
    td_buf_addstr(path, "/api/v2/search/tag/span.http.route/values?limit=5000");
    *arg = "\"/api/v1/";
    *chk = chk_values;
}

static void run_kind(ctx *c, kind_res *k, make_fn mk, uint64_t n)
{
    k->lat_ms = td_xcalloc(n ? n : 1, sizeof(double));
    td_buf path = TD_BUF_INIT;
    double t0 = now_ms();
    for (uint64_t i = 0; i < c->o.warmup + n; i++) {
        bool record = i >= c->o.warmup;
        if (record && c->o.max_seconds && now_ms() - t0 > (double)c->o.max_seconds * 1e3) {
            fprintf(stderr,
                    "bench_query: %s: stopped after %" PRIu64 " of %" PRIu64
                    " requests (--max-seconds)\n",
                    k->name, k->n, n);
            break;
        }
        const void *arg = NULL;
        check_fn chk = NULL;
        td_buf_reset(&path);
        mk(c, &path, &arg, &chk);
        one(c, k, path.data, chk, arg, record);
        if (k->n == 3 && k->ok == 0) {
            fprintf(stderr, "bench_query: %s: first 3 answers bad, skipping the rest\n", k->name);
            break;
        }
    }
    td_buf_release(&path);
    qsort(k->lat_ms, k->ok, sizeof(double), cmp_d);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_query --target HOST:PORT --ids FILE --data-start S --data-end S\n"
               "                   [--n 100] [--n-broad N] [--warmup 3] [--max-seconds 120]\n"
               "                   [--seed 1] [--services a,b,...] [--limit 20]\n"
               "                   [--kinds trace,selective,broad,tags,values] [--trace-proto]\n"
               "                   [--tenant ID] [--tsv FILE]\n");
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

static bool want(const opts *o, const char *kind)
{
    size_t k = strlen(kind);
    for (const char *p = o->kinds; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == k && !strncmp(p, kind, k)) {
            return true;
        }
        p = e ? e + 1 : p + n;
    }
    return false;
}

int main(int argc, char **argv)
{
    ctx c;
    memset(&c, 0, sizeof(c));
    opts *o = &c.o;
    o->n = 100;
    o->warmup = 3;
    o->max_seconds = 120;
    o->seed = 1;
    o->limit = 20;
    o->services = default_services;
    o->kinds = "trace,selective,broad,tags,values";
    static const struct option lopts[] = {{"target", required_argument, NULL, 'T'},
                                          {"ids", required_argument, NULL, 'i'},
                                          {"data-start", required_argument, NULL, 'a'},
                                          {"data-end", required_argument, NULL, 'b'},
                                          {"n", required_argument, NULL, 'n'},
                                          {"n-broad", required_argument, NULL, 'N'},
                                          {"warmup", required_argument, NULL, 'w'},
                                          {"max-seconds", required_argument, NULL, 'm'},
                                          {"seed", required_argument, NULL, 'S'},
                                          {"services", required_argument, NULL, 's'},
                                          {"limit", required_argument, NULL, 'l'},
                                          {"kinds", required_argument, NULL, 'k'},
                                          {"trace-proto", no_argument, NULL, 'p'},
                                          {"tenant", required_argument, NULL, 't'},
                                          {"tsv", required_argument, NULL, 'o'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int ch, li = 0;
    while ((ch = getopt_long(argc, argv, "", lopts, &li)) != -1) {
        uint64_t *dst = NULL;
        switch (ch) {
        case 'T':
            o->target = optarg;
            break;
        case 'i':
            o->ids_path = optarg;
            break;
        case 'a':
            dst = &o->data_start;
            break;
        case 'b':
            dst = &o->data_end;
            break;
        case 'n':
            dst = &o->n;
            break;
        case 'N':
            dst = &o->n_broad;
            break;
        case 'w':
            dst = &o->warmup;
            break;
        case 'm':
            dst = &o->max_seconds;
            break;
        case 'S':
            dst = &o->seed;
            break;
        case 's':
            o->services = optarg;
            break;
        case 'l':
            dst = &o->limit;
            break;
        case 'k':
            o->kinds = optarg;
            break;
        case 'p':
            o->trace_proto = true;
            break;
        case 't':
            o->tenant = optarg;
            break;
        case 'o':
            o->tsv = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (dst && parse_u64(optarg, dst) != 0) {
            fprintf(stderr, "bench_query: bad number for --%s: %s\n", lopts[li].name, optarg);
            return 2;
        }
    }
    if (optind != argc || !o->target || !o->data_end || o->data_start >= o->data_end ||
        o->limit == 0) {
        usage(stderr);
        return 2;
    }
    if (!o->n_broad) {
        o->n_broad = o->n;
    }
    rng_state = o->seed;
    char *svcs = td_xstrdup(o->services);
    for (char *s = strtok(svcs, ","); s && c.nsvc < 64; s = strtok(NULL, ",")) {
        c.svc[c.nsvc++] = s;
    }
    if (c.nsvc == 0) {
        fprintf(stderr, "bench_query: --services is empty\n");
        return 2;
    }
    if (want(o, "trace")) {
        if (!o->ids_path || !(c.ids = load_ids(o->ids_path, &c.nids)) || c.nids == 0) {
            fprintf(stderr, "bench_query: the trace kind needs --ids with at least one ID\n");
            return 2;
        }
    }
    snprintf(c.headers, sizeof(c.headers), "Accept: application/json\r\n%s%s%s",
             o->tenant ? "X-Scope-OrgID: " : "", o->tenant ? o->tenant : "",
             o->tenant ? "\r\n" : "");
    td_err err = {0};
    if (td_bench_http_init(&c.h, o->target, 120000, &err) != TD_OK) {
        fprintf(stderr, "bench_query: %s\n", err.msg);
        return 2;
    }
    td_bench_http_resp_init(&c.r);

    kind_res ks[6];
    size_t nk = 0;
    memset(ks, 0, sizeof(ks));
    if (want(o, "trace")) {
        char saved[256];
        snprintf(saved, sizeof(saved), "%s", c.headers);
        if (o->trace_proto) {
            snprintf(c.headers, sizeof(c.headers), "Accept: application/protobuf\r\n%s%s%s",
                     o->tenant ? "X-Scope-OrgID: " : "", o->tenant ? o->tenant : "",
                     o->tenant ? "\r\n" : "");
        }
        ks[nk] = (kind_res){.name = "trace by ID",
                            .what = o->trace_proto ? "/api/v2/traces/{id} (protobuf)"
                                                   : "/api/v2/traces/{id} (JSON)"};
        run_kind(&c, &ks[nk++], mk_trace, o->n);
        snprintf(c.headers, sizeof(c.headers), "%s", saved);
    }
    if (want(o, "selective")) {
        ks[nk] = (kind_res){.name = "selective search",
                            .what = "{resource.service.name=\"S\" && status=error}, 1 h"};
        run_kind(&c, &ks[nk++], mk_selective, o->n);
    }
    if (want(o, "broad")) {
        ks[nk] = (kind_res){.name = "broad search", .what = "{duration > 1s}, 24 h"};
        run_kind(&c, &ks[nk++], mk_broad, o->n_broad);
    }
    if (want(o, "tags")) {
        ks[nk] = (kind_res){.name = "tag names", .what = "/api/v2/search/tags?limit=5000"};
        run_kind(&c, &ks[nk++], mk_tags, o->n);
    }
    if (want(o, "values")) {
        ks[nk] = (kind_res){.name = "tag values", .what = "resource.service.name"};
        run_kind(&c, &ks[nk++], mk_values_svc, o->n);
        ks[nk] = (kind_res){.name = "tag values", .what = "span.http.route"};
        run_kind(&c, &ks[nk++], mk_values_route, o->n);
    }

    FILE *tsv = o->tsv ? fopen(o->tsv, "w") : NULL;
    if (o->tsv && !tsv) {
        fprintf(stderr, "bench_query: cannot write %s: %s\n", o->tsv, strerror(errno));
    }
    printf("| query | what | ok/n | p50 ms | p90 ms | p99 ms | max ms | avg results | avg body KB "
           "| avg inspected traces |\n|---|---|---|---|---|---|---|---|---|---|\n");
    int rc = 0;
    for (size_t i = 0; i < nk; i++) {
        kind_res *k = &ks[i];
        double *v = k->lat_ms;
        double p50 = pct(v, k->ok, 50), p90 = pct(v, k->ok, 90), p99 = pct(v, k->ok, 99);
        double mx = k->ok ? v[k->ok - 1] : NAN;
        double avg = k->ok ? k->results / (double)k->ok : 0;
        double kb = k->ok ? (double)k->bytes / (double)k->ok / 1024.0 : 0;
        char f[4][32];
        const double fv[4] = {p50, p90, p99, mx};
        for (int j = 0; j < 4; j++) {
            if (isnan(fv[j])) {
                snprintf(f[j], sizeof(f[j]), "-");
            } else {
                snprintf(f[j], sizeof(f[j]), "%.1f", fv[j]);
            }
        }
        char insp[32] = "-";
        if (k->ninspected) {
            snprintf(insp, sizeof(insp), "%.0f", k->inspected / (double)k->ninspected);
        }
        printf("| %s | `%s` | %" PRIu64 "/%" PRIu64 " | %s | %s | %s | %s | %.1f | %.1f | %s |\n",
               k->name, k->what, k->ok, k->n, f[0], f[1], f[2], f[3], avg, kb, insp);
        if (tsv) {
            fprintf(tsv, "%s\t%s\t%" PRIu64 "\t%" PRIu64 "\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\n",
                    k->name, k->what, k->ok, k->n, p50, p90, p99, mx, avg);
        }
        if (k->ok != k->n || k->n == 0) {
            rc = 3;
        }
        td_free(k->lat_ms);
    }
    if (tsv) {
        fclose(tsv);
    }
    td_bench_http_resp_release(&c.r);
    td_bench_http_release(&c.h);
    td_free(c.ids);
    td_free(svcs);
    return rc;
}
