/*
 * pload.c - bench_pload: history of Go CPU profiles for N services, posted to a
 * running traced the way pyroscope-go does (legacy /ingest), as fast as the
 * server takes them (see bench/README.md, "Profiling benchmark").
 *
 *   bench_pload --target 127.0.0.1:PORT [--services 10] [--hours 24] [--interval-s 10]
 *               [--from-h 0] [--to-h HOURS] [--end-s UNIX_S] [--connections 4]
 *               [--variants 64] [--ticks 2000] [--stacks 0] [--seed 1] [--raw]
 *               [--duration S] [--tenant ID] [--progress S] [--dump FILE]
 *
 * The window is [end - hours, end), end aligned down to the interval. Profile k
 * of service v is the 10 s CPU profile starting at window start + k * interval;
 * --from-h/--to-h send only the profiles starting in that part of the window
 * (hours from its start), so a run can be split to measure the store in
 * between. Profiles go out in time order, all services of one instant before
 * the next, spread over --connections keep-alive HTTP/1.1 connections (one
 * thread each).
 *
 * Each service has its own call tree (pgen.c; --stacks 0 = 500..1500 stacks
 * by service). Generating and compressing every profile would cost the client
 * about as much CPU as the server spends on it, so --variants profiles per
 * service are generated and gzipped up front (different stack weights and
 * rare stacks each), and each request patches the timestamp (time_nanos, kept
 * in the last deflate stored block) and the gzip CRC of one of them.
 *
 * Body: multipart/form-data with a `profile` file part (gzipped pprof) and a
 * `sample_type_config` file part, as pyroscope-go's uploader sends it; --raw
 * sends the gzipped pprof as the whole body with format=pprof, as
 * @pyroscope/nodejs does. URL: /ingest?name=<service>{env=prod,region=eu-west-1,
 * version=1.4.2}&from=<ns>&until=<ns>&spyName=gospy&sampleRate=100&units=samples&
 * aggregationType=sum, the parameters of pyroscope-go's upstream/remote.
 *
 * --duration S stops after S seconds even if profiles are left (saturation
 * runs). A 429/503 is retried after Retry-After (1 s if absent).
 *
 * Output: key=value lines on stdout (profiles, samples = CPU ticks of 10 ms,
 * records = pprof Sample messages, rates, latency, window).
 */
#include "httpc.h"
#include "pgen.h"

#include "core/buf.h"
#include "core/mem.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BOUNDARY "----pyroscopebenchboundary7d1f"

typedef struct variant {
    td_buf body; /* whole request body */
    td_bench_pgz z;
    size_t gz_off; /* offset of the gzip member in body */
    uint64_t records, ticks;
} variant;

typedef struct service {
    char name[64];
    char path_prefix[256]; /* /ingest?name=... */
    variant *v;
} service;

typedef struct cfg {
    const char *target, *tenant;
    int services, connections, variants, ticks, stacks, progress;
    double hours, from_h, to_h, duration;
    int64_t interval_s, end_s;
    uint64_t seed;
    bool raw;
} cfg;

static cfg C;
static service *S;
static uint64_t nsteps, step0, nitems;
static atomic_uint_fast64_t next_item;
static atomic_uint_fast64_t ok_profiles, ok_ticks, ok_records, refused, failed, wire;
static atomic_bool stop;
static atomic_int running; /* workers not yet finished */
static double t_start;

static const char *const names[] = {
    "checkout", "cart",      "payment", "catalog", "search",  "shipping", "users",   "auth",
    "pricing",  "inventory", "orders",  "notify",  "reviews", "ads",      "gateway", "billing"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct worker {
    pthread_t th;
    int id;
    double *lat;
    size_t nlat, caplat;
} worker;

static void *run(void *arg)
{
    worker *w = arg;
    td_err err;
    td_err_init(&err);
    td_bench_http h;
    if (td_bench_http_init(&h, C.target, 60000, &err) != TD_OK) {
        fprintf(stderr, "bench_pload: %s\n", err.msg);
        atomic_store(&stop, true);
        return NULL;
    }
    td_bench_http_resp r;
    td_bench_http_resp_init(&r);
    td_buf body, path, hdr;
    td_buf_init(&body, 1 << 16);
    td_buf_init(&path, 512);
    td_buf_init(&hdr, 256);
    int shown = 0;
    for (;;) {
        if (atomic_load(&stop)) {
            break;
        }
        if (C.duration > 0 && now_s() - t_start >= C.duration) {
            break;
        }
        uint64_t k = atomic_fetch_add(&next_item, 1);
        if (k >= nitems) {
            break;
        }
        uint64_t step = step0 + k / (uint64_t)C.services;
        int sv = (int)(k % (uint64_t)C.services);
        const service *s = &S[sv];
        /* variants in a scrambled order, so neighbours in time differ */
        const variant *v = &s->v[(step * 37 + (uint64_t)sv * 11) % (uint64_t)C.variants];
        int64_t from_s = C.end_s - (int64_t)(C.hours * 3600) + (int64_t)step * C.interval_s;
        int64_t t_ns = from_s * 1000000000LL;
        td_buf_reset(&body);
        td_buf_add(&body, v->body.data, v->body.len);
        uint8_t tail[TD_BENCH_PGEN_TAIL];
        td_bench_pgen_time_tail(t_ns, tail);
        td_bench_pgz_patch(&v->z, (uint8_t *)body.data + v->gz_off, tail);
        td_buf_reset(&path);
        td_buf_addf(&path, "%s&from=%" PRId64 "&until=%" PRId64, s->path_prefix, t_ns,
                    (int64_t)(t_ns + C.interval_s * 1000000000LL));
        td_buf_reset(&hdr);
        if (C.raw) {
            td_buf_addstr(&hdr, "Content-Type: application/octet-stream\r\n");
        } else {
            td_buf_addstr(&hdr, "Content-Type: multipart/form-data; boundary=" BOUNDARY "\r\n");
        }
        if (C.tenant) {
            td_buf_addf(&hdr, "X-Scope-OrgID: %s\r\n", C.tenant);
        }
        for (int attempt = 0;; attempt++) {
            double t0 = now_s();
            if (td_bench_http_do(&h, "POST", path.data, hdr.data, body.data, body.len, &r, &err) !=
                TD_OK) {
                atomic_fetch_add(&failed, 1);
                if (shown++ < 5) {
                    fprintf(stderr, "bench_pload: %s\n", err.msg);
                }
                usleep(100000);
                break;
            }
            double dt = now_s() - t0;
            atomic_fetch_add(&wire, body.len + path.len + hdr.len + 64);
            if (r.status == 200) {
                atomic_fetch_add(&ok_profiles, 1);
                atomic_fetch_add(&ok_ticks, v->ticks);
                atomic_fetch_add(&ok_records, v->records);
                if (w->nlat == w->caplat) {
                    w->caplat = w->caplat ? w->caplat * 2 : 4096;
                    w->lat = td_xrealloc(w->lat, w->caplat * sizeof(double));
                }
                w->lat[w->nlat++] = dt;
                break;
            }
            if ((r.status == 429 || r.status == 503) && attempt < 20) {
                atomic_fetch_add(&refused, 1);
                sleep((unsigned)(r.retry_after > 0 ? r.retry_after : 1));
                continue;
            }
            atomic_fetch_add(&failed, 1);
            if (shown++ < 5) {
                fprintf(stderr, "bench_pload: HTTP %d: %.*s\n", r.status,
                        (int)(r.body.len < 300 ? r.body.len : 300), r.body.data);
            }
            break;
        }
    }
    td_buf_release(&body);
    td_buf_release(&path);
    td_buf_release(&hdr);
    td_bench_http_resp_release(&r);
    td_bench_http_release(&h);
    atomic_fetch_sub(&running, 1);
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_pload --target HOST:PORT [--services 10] [--hours 24] [--interval-s 10]\n"
            "                   [--from-h 0] [--to-h HOURS] [--end-s UNIX_S] [--connections 4]\n"
            "                   [--variants 64] [--ticks 2000] [--stacks 0] [--seed 1] [--raw]\n"
            "                   [--duration S] [--tenant ID] [--progress S] [--dump FILE]\n");
}

static void build_service(int i, const char *dump)
{
    service *s = &S[i];
    if (i < (int)(sizeof(names) / sizeof(names[0]))) {
        snprintf(s->name, sizeof(s->name), "%s", names[i]);
    } else {
        snprintf(s->name, sizeof(s->name), "svc-%d", i);
    }
    int nst = C.stacks > 0 ? C.stacks : 500 + (int)((C.seed * 7919 + (uint64_t)i * 104729) % 1001);
    if (i == 0 && C.stacks <= 0) {
        nst = 1000; /* the queried service: the middle of the range */
    }
    td_bench_pgen *g = td_bench_pgen_new(s->name, C.seed, nst);
    td_buf lbl;
    td_buf_init(&lbl, 128);
    td_buf_addf(&lbl, "%s{env=prod,region=eu-west-1,version=1.4.2}", s->name);
    td_buf p;
    td_buf_init(&p, 256);
    td_buf_addstr(&p, "/ingest?name=");
    td_bench_urlenc(&p, lbl.data);
    td_buf_addstr(&p, "&spyName=gospy&sampleRate=100&units=samples&aggregationType=sum");
    if (C.raw) {
        td_buf_addstr(&p, "&format=pprof");
    }
    TD_ASSERT(p.len < sizeof(s->path_prefix));
    memcpy(s->path_prefix, p.data, p.len + 1);
    td_buf_release(&p);
    td_buf_release(&lbl);
    s->v = td_xcalloc((size_t)C.variants, sizeof(variant));
    td_buf raw;
    td_buf_init(&raw, 1 << 17);
    for (int k = 0; k < C.variants; k++) {
        variant *v = &s->v[k];
        td_buf_reset(&raw);
        td_bench_pgen_info info;
        td_bench_pgen_profile(g, C.seed * 1000003 + (uint64_t)i * 4099 + (uint64_t)k, C.ticks,
                              C.end_s * 1000000000LL, &raw, &info);
        if (dump && i == 0 && k == 0) {
            FILE *f = fopen(dump, "wb");
            if (!f || fwrite(raw.data, 1, raw.len, f) != raw.len || fclose(f) != 0) {
                perror(dump);
                exit(1);
            }
            fprintf(stderr,
                    "bench_pload: wrote %s: %zu bytes, %" PRIu64 " samples (records), %" PRIu64
                    " ticks, %" PRIu64 " locations, %" PRIu64 " functions\n",
                    dump, raw.len, info.records, info.ticks, info.locations, info.functions);
        }
        v->records = info.records;
        v->ticks = info.ticks;
        td_buf_init(&v->body, raw.len / 3 + 1024);
        if (!C.raw) {
            td_buf_addstr(&v->body, "--" BOUNDARY "\r\nContent-Disposition: form-data; "
                                    "name=\"profile\"; filename=\"profile.pprof\"\r\n"
                                    "Content-Type: application/octet-stream\r\n\r\n");
        }
        v->gz_off = v->body.len;
        if (td_bench_pgz_build((const uint8_t *)raw.data, raw.len, &v->body, &v->z) != 0) {
            fprintf(stderr, "bench_pload: deflate failed\n");
            exit(1);
        }
        if (!C.raw) {
            td_buf_addstr(&v->body,
                          "\r\n--" BOUNDARY "\r\nContent-Disposition: form-data; "
                          "name=\"sample_type_config\"; filename=\"sample_type_config.json\"\r\n"
                          "Content-Type: application/octet-stream\r\n\r\n"
                          "{\"samples\":{\"units\":\"samples\",\"display-name\":\"cpu\","
                          "\"sampled\":true},\"cpu\":{\"units\":\"nanoseconds\","
                          "\"sampled\":true}}\r\n--" BOUNDARY "--\r\n");
        }
    }
    td_buf_release(&raw);
    td_bench_pgen_free(g);
}

int main(int argc, char **argv)
{
    C = (cfg){.services = 10,
              .connections = 4,
              .variants = 64,
              .ticks = 2000,
              .hours = 24,
              .from_h = 0,
              .to_h = -1,
              .interval_s = 10,
              .seed = 1};
    const char *dump = NULL;
    static const struct option lo[] = {{"target", required_argument, NULL, 't'},
                                       {"services", required_argument, NULL, 's'},
                                       {"hours", required_argument, NULL, 'H'},
                                       {"interval-s", required_argument, NULL, 'i'},
                                       {"from-h", required_argument, NULL, 'f'},
                                       {"to-h", required_argument, NULL, 'T'},
                                       {"end-s", required_argument, NULL, 'e'},
                                       {"connections", required_argument, NULL, 'c'},
                                       {"variants", required_argument, NULL, 'v'},
                                       {"ticks", required_argument, NULL, 'k'},
                                       {"stacks", required_argument, NULL, 'S'},
                                       {"seed", required_argument, NULL, 'r'},
                                       {"raw", no_argument, NULL, 'R'},
                                       {"duration", required_argument, NULL, 'd'},
                                       {"tenant", required_argument, NULL, 'o'},
                                       {"progress", required_argument, NULL, 'p'},
                                       {"dump", required_argument, NULL, 'D'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 't':
            C.target = optarg;
            break;
        case 's':
            C.services = atoi(optarg);
            break;
        case 'H':
            C.hours = atof(optarg);
            break;
        case 'i':
            C.interval_s = atoll(optarg);
            break;
        case 'f':
            C.from_h = atof(optarg);
            break;
        case 'T':
            C.to_h = atof(optarg);
            break;
        case 'e':
            C.end_s = atoll(optarg);
            break;
        case 'c':
            C.connections = atoi(optarg);
            break;
        case 'v':
            C.variants = atoi(optarg);
            break;
        case 'k':
            C.ticks = atoi(optarg);
            break;
        case 'S':
            C.stacks = atoi(optarg);
            break;
        case 'r':
            C.seed = strtoull(optarg, NULL, 10);
            break;
        case 'R':
            C.raw = true;
            break;
        case 'd':
            C.duration = atof(optarg);
            break;
        case 'o':
            C.tenant = optarg;
            break;
        case 'p':
            C.progress = atoi(optarg);
            break;
        case 'D':
            dump = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if ((!C.target && !dump) || optind != argc || C.services < 1 || C.connections < 1 ||
        C.variants < 1 || C.ticks < 10 || C.interval_s < 1 || C.hours <= 0 ||
        (C.stacks != 0 && C.stacks < 50)) {
        usage(stderr);
        return 2;
    }
    if (C.to_h < 0) {
        C.to_h = C.hours;
    }
    if (!C.end_s) {
        C.end_s = (int64_t)time(NULL);
    }
    C.end_s -= C.end_s % C.interval_s;
    uint64_t total_steps = (uint64_t)(C.hours * 3600) / (uint64_t)C.interval_s;
    step0 = (uint64_t)(C.from_h * 3600) / (uint64_t)C.interval_s;
    uint64_t step1 = (uint64_t)(C.to_h * 3600) / (uint64_t)C.interval_s;
    if (step1 > total_steps) {
        step1 = total_steps;
    }
    nsteps = step1 > step0 ? step1 - step0 : 0;
    nitems = nsteps * (uint64_t)C.services;

    double g0 = now_s();
    S = td_xcalloc((size_t)C.services, sizeof(*S));
    for (int i = 0; i < C.services; i++) {
        build_service(i, dump);
        if (dump) {
            return 0;
        }
    }
    double gen_s = now_s() - g0;
    uint64_t body_bytes = 0, v_ticks = 0, v_records = 0;
    for (int i = 0; i < C.services; i++) {
        for (int k = 0; k < C.variants; k++) {
            body_bytes += S[i].v[k].body.len;
            v_ticks += S[i].v[k].ticks;
            v_records += S[i].v[k].records;
        }
    }
    double nv = (double)C.services * C.variants;
    fprintf(stderr,
            "bench_pload: %d services x %d variants generated in %.1f s: %.0f bytes/request, "
            "%.0f samples (ticks), %.0f records per profile; %" PRIu64 " profiles to send\n",
            C.services, C.variants, gen_s, (double)body_bytes / nv, (double)v_ticks / nv,
            (double)v_records / nv, nitems);

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    worker *ws = td_xcalloc((size_t)C.connections, sizeof(*ws));
    t_start = now_s();
    atomic_store(&running, C.connections);
    for (int i = 0; i < C.connections; i++) {
        ws[i].id = i;
        if (pthread_create(&ws[i].th, NULL, run, &ws[i]) != 0) {
            fprintf(stderr, "bench_pload: pthread_create failed\n");
            return 1;
        }
    }
    if (C.progress > 0) {
        uint64_t last = 0;
        double tl = t_start;
        while (atomic_load(&running) > 0) {
            usleep(100000);
            double t = now_s();
            if (t - tl < C.progress) {
                continue;
            }
            uint64_t n = atomic_load(&ok_profiles);
            fprintf(stderr, "bench_pload: %.0f s: %" PRIu64 "/%" PRIu64 " profiles, %.0f/s\n",
                    t - t_start, n, nitems, (double)(n - last) / (t - tl));
            last = n;
            tl = t;
        }
    }
    for (int i = 0; i < C.connections; i++) {
        pthread_join(ws[i].th, NULL);
    }
    double secs = now_s() - t_start;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    size_t nl = 0;
    for (int i = 0; i < C.connections; i++) {
        nl += ws[i].nlat;
    }
    double *all = td_xcalloc(nl + 1, sizeof(double));
    size_t p = 0;
    for (int i = 0; i < C.connections; i++) {
        memcpy(all + p, ws[i].lat, ws[i].nlat * sizeof(double));
        p += ws[i].nlat;
        td_free(ws[i].lat);
    }
    qsort(all, nl, sizeof(double), cmp_double);
    uint64_t okp = atomic_load(&ok_profiles);
    printf("services=%d\n", C.services);
    printf("query_service=%s\n", S[0].name);
    printf("connections=%d\n", C.connections);
    printf("format=%s\n", C.raw ? "raw" : "multipart");
    printf("bytes_per_request=%.0f\n", (double)body_bytes / nv);
    printf("ticks_per_profile=%.0f\n", (double)v_ticks / nv);
    printf("records_per_profile=%.0f\n", (double)v_records / nv);
    printf("profiles_planned=%" PRIu64 "\n", nitems);
    printf("profiles_ok=%" PRIu64 "\n", okp);
    printf("samples_ok=%" PRIu64 "\n", (uint64_t)atomic_load(&ok_ticks));
    printf("records_ok=%" PRIu64 "\n", (uint64_t)atomic_load(&ok_records));
    printf("requests_refused=%" PRIu64 "\n", (uint64_t)atomic_load(&refused));
    printf("requests_failed=%" PRIu64 "\n", (uint64_t)atomic_load(&failed));
    printf("wire_bytes=%" PRIu64 "\n", (uint64_t)atomic_load(&wire));
    printf("seconds=%.2f\n", secs);
    printf("profiles_per_s=%.0f\n", secs > 0 ? (double)okp / secs : 0.0);
    printf("samples_per_s=%.0f\n", secs > 0 ? (double)atomic_load(&ok_ticks) / secs : 0.0);
    printf("records_per_s=%.0f\n", secs > 0 ? (double)atomic_load(&ok_records) / secs : 0.0);
    printf("p50_ms=%.2f\n", nl ? all[nl / 2] * 1e3 : 0.0);
    printf("p99_ms=%.2f\n", nl ? all[(nl * 99) / 100] * 1e3 : 0.0);
    printf("client_cores=%.2f\n", secs > 0 ? cpu / secs : 0.0);
    printf("window_start_s=%" PRId64 "\n", C.end_s - (int64_t)(C.hours * 3600));
    printf("window_end_s=%" PRId64 "\n", C.end_s);
    printf("sent_start_s=%" PRId64 "\n",
           C.end_s - (int64_t)(C.hours * 3600) + (int64_t)step0 * C.interval_s);
    printf("sent_end_s=%" PRId64 "\n",
           C.end_s - (int64_t)(C.hours * 3600) + (int64_t)(step0 + nsteps) * C.interval_s);
    td_free(all);
    td_free(ws);
    for (int i = 0; i < C.services; i++) {
        for (int k = 0; k < C.variants; k++) {
            td_buf_release(&S[i].v[k].body);
        }
        td_free(S[i].v);
    }
    td_free(S);
    return atomic_load(&failed) > 0 || okp == 0 ? 3 : 0;
}
