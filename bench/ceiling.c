/*
 * ceiling.c - bench_ceiling: the in-process ingest ceiling of traced.
 *
 *   bench_ceiling --payload FILE.pb [--duration S (10)] [--phase-duration S (3)]
 *                 [--dir BASE] [--keep] [--write-batch-bytes N] [--json-out FILE]
 *                 [--interval S] [--requests N]
 *
 * One thread, no network, no queue: the same work the daemon does per request,
 * on the same payload with IDs rewritten per iteration (payload.h):
 *   phase 1 "decode":  td_otlp_decode_pb
 *   phase 2 "build":   td_otlp_decode_pb -> td_batch_build
 *   phase 3 "store":   td_otlp_decode_pb -> td_batch_build -> td_store_write
 * Phase 3 writes into a fresh store under mkdtemp(BASE/traced-ceiling-XXXXXX)
 * and groups batches per td_store_write the way the daemon's writer does, up to
 * the collector's write-batch-bytes default (override with --write-batch-bytes;
 * 0 = one request per write). Each request uses its own arena, released after
 * the batch is built, as the daemon does. The directory is removed at the end
 * unless --keep. Phase 3 also prints spans/s every --interval seconds (5) to
 * stderr: LevelDB slows down once compaction falls behind, so the first seconds
 * overstate what is sustainable; run it as long as the end-to-end test.
 * --requests N makes phase 3 a fixed amount of work (N requests, whatever the
 * time) instead of a fixed time, so that two builds can be compared by the CPU
 * and wall time of the whole process (with --phase-duration 0).
 *
 * The end-to-end figure from bench_ingest divided by phase 3 says how much the
 * transports, the queue hand-off and the threads cost. On a 2-core machine the
 * daemon's network threads and its writer run concurrently, so end-to-end can
 * in principle exceed this single-threaded figure.
 */
#include "payload.h"

#include "collector/collector.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/mem.h"
#include "store/store.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_GROUP 1024

#define MAX_IVALS 4096

typedef struct phase {
    const char *name;
    uint64_t requests;
    double seconds;
    /* store phase only: spans/s over consecutive intervals (LevelDB slows down as
     * compaction falls behind, so a short run overstates what is sustainable) */
    double ival_sps[MAX_IVALS];
    size_t nival;
} phase;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const td_err *err)
{
    fprintf(stderr, "bench_ceiling: %s: %s (%s)\n", what, err->msg, td_status_name(err->code));
    exit(1);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static long self_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = atol(line + kl + 1);
            break;
        }
    }
    fclose(f);
    return v;
}

typedef struct ctx {
    td_bench_payload pl;
    uint8_t *buf; /* the request bytes, IDs rewritten per iteration */
    uint64_t seed;
    uint64_t seq;
    uint64_t spans_accepted;
} ctx;

static void next_request(ctx *c)
{
    td_bench_ids ids;
    td_bench_ids_make(c->seed + c->seq++, &ids);
    td_bench_patch(&c->pl, c->buf, NULL, NULL, &ids);
}

/* Decode (and build when want_batch) one request; the batch, if any, goes to *out. */
static void one_request(ctx *c, td_arena *a, bool want_batch, td_batch **out)
{
    td_err err;
    td_err_init(&err);
    td_otlp_request *req = NULL;
    next_request(c);
    if (td_otlp_decode_pb(c->buf, c->pl.len, a, &req, &err) != TD_OK) {
        die("decode", &err);
    }
    if (want_batch) {
        td_ingest_result res;
        memset(&res, 0, sizeof(res));
        if (td_batch_build(req, TD_DEFAULT_TENANT, a, out, &res, &err) != TD_OK) {
            die("batch build", &err);
        }
        c->spans_accepted += res.accepted_spans;
    }
    td_arena_release(a);
}

/* Run a phase for seconds, or for max_req requests when max_req > 0. */
static void run_phase(phase *ph, ctx *c, const char *name, double seconds, uint64_t max_req,
                      int level, td_store *st, uint64_t group_bytes, double ival_s)
{
    memset(ph, 0, sizeof(*ph));
    ph->name = name;
    td_arena a;
    td_arena_init(&a, 64 * 1024, 0);
    td_batch *group[MAX_GROUP];
    size_t ngroup = 0;
    uint64_t gbytes = 0;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    uint64_t ival = (uint64_t)(ival_s * 1e9), ival_next = t0 + ival, ival_req = 0;
    td_err err;
    td_err_init(&err);
    do {
        td_batch *b = NULL;
        one_request(c, &a, level >= 2, &b);
        ph->requests++;
        if (!b) {
            continue;
        }
        if (level < 3) {
            td_batch_free(b);
            continue;
        }
        group[ngroup++] = b;
        gbytes += b->q.bytes;
        if (gbytes >= group_bytes || ngroup == MAX_GROUP) {
            if (td_store_write(st, group, ngroup, &err) != TD_OK) {
                die("store write", &err);
            }
            for (size_t i = 0; i < ngroup; i++) {
                td_batch_free(group[i]);
            }
            ngroup = 0;
            gbytes = 0;
        }
        if (ival && level == 3) {
            uint64_t now = now_ns();
            if (now >= ival_next) {
                double sps = (double)(ph->requests - ival_req) * (double)c->pl.nspans /
                             ((double)(now - (ival_next - ival)) / 1e9);
                if (ph->nival < MAX_IVALS) {
                    ph->ival_sps[ph->nival++] = sps;
                }
                fprintf(stderr, "  [%6.1f s] %8.0f spans/s\n", (double)(now - t0) / 1e9, sps);
                ival_req = ph->requests;
                ival_next = now + ival;
            }
        }
    } while (max_req ? ph->requests < max_req : now_ns() < end);
    if (ival && level == 3) {
        /* the last, possibly shorter, interval (ignored when under a tenth of one) */
        uint64_t now = now_ns(), from = ival_next - ival;
        if (now - from > ival / 10 && ph->nival < MAX_IVALS) {
            double sps = (double)(ph->requests - ival_req) * (double)c->pl.nspans /
                         ((double)(now - from) / 1e9);
            ph->ival_sps[ph->nival++] = sps;
            fprintf(stderr, "  [%6.1f s] %8.0f spans/s\n", (double)(now - t0) / 1e9, sps);
        }
    }
    if (ngroup) {
        if (td_store_write(st, group, ngroup, &err) != TD_OK) {
            die("store write", &err);
        }
        for (size_t i = 0; i < ngroup; i++) {
            td_batch_free(group[i]);
        }
    }
    ph->seconds = (double)(now_ns() - t0) / 1e9;
    td_arena_release(&a);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_ceiling --payload FILE.pb [--duration S] [--phase-duration S]\n"
               "                     [--dir BASE] [--keep] [--write-batch-bytes N]\n"
               "                     [--json-out FILE] [--interval S (5; 0 = off)]\n"
               "                     [--requests N (store phase: N requests, not --duration)]\n");
}

static double num(const char *name, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "bench_ceiling: --%s wants a number in [%g, %g]\n", name, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *payload = NULL, *base = NULL, *json_out = NULL;
    double duration = 10, phase_dur = 3, ival_s = 5;
    bool keep = false;
    int64_t group_override = -1;
    uint64_t max_req = 0;
    static const struct option lopts[] = {{"payload", required_argument, NULL, 'p'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"phase-duration", required_argument, NULL, 'D'},
                                          {"dir", required_argument, NULL, 'b'},
                                          {"keep", no_argument, NULL, 'k'},
                                          {"write-batch-bytes", required_argument, NULL, 'w'},
                                          {"json-out", required_argument, NULL, 'j'},
                                          {"interval", required_argument, NULL, 'i'},
                                          {"requests", required_argument, NULL, 'n'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            payload = optarg;
            break;
        case 'd':
            duration = num("duration", optarg, 0.1, 86400);
            break;
        case 'D':
            phase_dur = num("phase-duration", optarg, 0, 3600);
            break;
        case 'b':
            base = optarg;
            break;
        case 'k':
            keep = true;
            break;
        case 'w':
            group_override = (int64_t)num("write-batch-bytes", optarg, 0, 1e12);
            break;
        case 'j':
            json_out = optarg;
            break;
        case 'i':
            ival_s = num("interval", optarg, 0, 3600);
            break;
        case 'n':
            max_req = (uint64_t)num("requests", optarg, 1, 1e12);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!payload || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!base) {
        base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    }

    td_err err;
    td_err_init(&err);
    ctx c;
    memset(&c, 0, sizeof(c));
    if (td_bench_payload_load(payload, &c.pl, &err) != TD_OK) {
        die("payload", &err);
    }
    c.buf = td_xmalloc(c.pl.len);
    memcpy(c.buf, c.pl.data, c.pl.len);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    c.seed =
        td_bench_mix64((uint64_t)rt.tv_nsec ^ ((uint64_t)rt.tv_sec << 20) ^ (uint64_t)getpid());

    /* the daemon's defaults, from the modules' own option tables */
    td_collector_opts copts;
    td_store_opts sopts;
    memset(&copts, 0, sizeof(copts));
    memset(&sopts, 0, sizeof(sopts));
    td_opt_table tabs[2] = {
        {"collector", td_collector_opt_rows, td_collector_nopt_rows, &copts},
        {"store", td_store_opt_rows, td_store_nopt_rows, &sopts},
    };
    if (td_config_defaults(tabs, 2, &err) != TD_OK) {
        die("config defaults", &err);
    }
    uint64_t group_bytes = group_override >= 0 ? (uint64_t)group_override : copts.write_batch_bytes;

    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/traced-ceiling-XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_ceiling: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    td_free(sopts.dir);
    sopts.dir = td_xstrdup(dir);
    td_store *st = NULL;
    if (td_store_open(&sopts, &st, &err) != TD_OK) {
        die("store open", &err);
    }

    static phase ph[3];
    int nph = 0;
    if (phase_dur > 0) {
        run_phase(&ph[nph++], &c, "decode", phase_dur, 0, 1, NULL, 0, 0);
        run_phase(&ph[nph++], &c, "decode+build", phase_dur, 0, 2, NULL, 0, 0);
    }
    c.spans_accepted = 0;
    run_phase(&ph[nph++], &c, "decode+build+store", duration, max_req, 3, st, group_bytes, ival_s);
    uint64_t stored_spans = c.spans_accepted;
    uint64_t disk = td_store_approx_size(st);
    td_store_close(st);

    printf("bench_ceiling: payload %s, %zu B, %zu spans/request; store %s (write batch %" PRIu64
           " B, sync %s)\n",
           payload, c.pl.len, c.pl.nspans, dir, group_bytes, sopts.sync ? "on" : "off");
    printf("  %-20s %10s %12s %10s %10s\n", "phase", "requests", "spans/s", "MB/s", "us/req");
    for (int i = 0; i < nph; i++) {
        double rps = (double)ph[i].requests / ph[i].seconds;
        printf("  %-20s %10" PRIu64 " %12.0f %10.1f %10.1f\n", ph[i].name, ph[i].requests,
               rps * (double)c.pl.nspans, rps * (double)c.pl.len / 1e6, 1e6 / rps);
    }
    const phase *full = &ph[nph - 1];
    double full_sps = (double)stored_spans / full->seconds;
    printf("  spans stored %" PRIu64 " (%.0f spans/s), store approx %.1f MB, VmHWM %.1f MB\n",
           stored_spans, full_sps, (double)disk / 1e6, (double)self_status_kb("VmHWM") / 1024.0);

    int rc = 0;
    if (json_out) {
        FILE *f = fopen(json_out, "w");
        if (!f) {
            fprintf(stderr, "bench_ceiling: cannot write %s\n", json_out);
            rc = 1;
        } else {
            fprintf(f, "{\n  \"payload_bytes\": %zu,\n  \"spans_per_request\": %zu,\n", c.pl.len,
                    c.pl.nspans);
            fprintf(f, "  \"write_batch_bytes\": %" PRIu64 ",\n  \"phases\": [", group_bytes);
            for (int i = 0; i < nph; i++) {
                double rps = (double)ph[i].requests / ph[i].seconds;
                fprintf(f,
                        "%s\n    {\"name\": \"%s\", \"requests\": %" PRIu64
                        ", \"seconds\": %.3f, \"spans_per_s\": %.0f, \"mb_per_s\": %.2f}",
                        i ? "," : "", ph[i].name, ph[i].requests, ph[i].seconds,
                        rps * (double)c.pl.nspans, rps * (double)c.pl.len / 1e6);
            }
            fprintf(
                f, "\n  ],\n  \"spans_per_s\": %.0f,\n  \"decode_spans_per_s\": %.0f,\n", full_sps,
                phase_dur > 0 ? (double)ph[0].requests / ph[0].seconds * (double)c.pl.nspans : 0.0);
            fprintf(f, "  \"interval_spans_per_s\": [");
            for (size_t i = 0; i < full->nival; i++) {
                fprintf(f, "%s%.0f", i ? ", " : "", full->ival_sps[i]);
            }
            fprintf(f, "],\n");
            fprintf(f, "  \"mb_per_s\": %.2f,\n  \"store_bytes\": %" PRIu64 ",\n",
                    (double)full->requests / full->seconds * (double)c.pl.len / 1e6, disk);
            fprintf(f, "  \"vmhwm_kb\": %ld\n}\n", self_status_kb("VmHWM"));
            if (fclose(f) != 0) {
                rc = 1;
            }
        }
    }

    if (!keep) {
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    td_config_release(tabs, 2);
    td_free(c.buf);
    td_bench_payload_release(&c.pl);
    return rc;
}
