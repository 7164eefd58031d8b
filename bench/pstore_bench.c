/*
 * pstore_bench.c - the profile store in one process, no network: write
 * throughput, read (decode) throughput and bytes per sample of a realistic CPU
 * profile load.
 *
 *   bench_pstore [--dir DIR] [--services N] [--profiles N] [--samples N] [--stacks N]
 *
 * Each of --services series (process_cpu, one service each) gets --profiles
 * profiles 10 s apart, each with --samples samples drawn (skewed towards hot
 * stacks) from --stacks distinct stacks of depth 8-40 over 300 functions per
 * service, values in 10 ms units, a third of them with one of 16 span IDs.
 * DIR (default: a fresh directory under /tmp) is removed at the end unless
 * given. Prints one line per phase.
 */
#include "core/arena.h"
#include "core/mem.h"
#include "store/pstore.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NLOCS 300

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

typedef struct counts {
    uint64_t profiles, samples;
    int64_t sum;
} counts;

static bool on_profile(void *ud, uint64_t series, int64_t time_ns, int64_t total)
{
    (void)series;
    (void)time_ns;
    counts *c = ud;
    c->profiles++;
    c->sum += total;
    return true;
}

static bool on_sample(void *ud, const td_psample_out *smp)
{
    counts *c = ud;
    c->samples++;
    c->sum -= smp->value;
    return true;
}

static bool on_series(void *ud, const td_pseries *s)
{
    uint64_t **p = ud;
    *(*p)++ = s->id;
    return true;
}

static void die(const char *what, const td_err *err)
{
    fprintf(stderr, "bench_pstore: %s: %s\n", what, err->msg);
    exit(1);
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int services = 10, profiles = 360, nsamples = 2000, nstacks = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dir") == 0) {
            dir = argv[i + 1];
        } else if (strcmp(argv[i], "--services") == 0) {
            services = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--profiles") == 0) {
            profiles = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--samples") == 0) {
            nsamples = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--stacks") == 0) {
            nstacks = atoi(argv[i + 1]);
        } else {
            fprintf(stderr, "usage: bench_pstore [--dir DIR] [--services N] [--profiles N] "
                            "[--samples N] [--stacks N]\n");
            return 2;
        }
    }
    if (services < 1 || profiles < 1 || nsamples < 1 || nstacks < 1) {
        fprintf(stderr, "bench_pstore: counts must be positive\n");
        return 2;
    }
    char tmp[] = "/tmp/bench_pstore-XXXXXX";
    bool own = !dir;
    if (own && !(dir = mkdtemp(tmp))) {
        perror("mkdtemp");
        return 1;
    }
    td_store_opts o = {
        .dir = (char *)dir, .cache_bytes = 256u << 20, .write_buffer_bytes = 16u << 20};
    td_pstore *s;
    td_err err;
    td_err_init(&err);
    if (td_pstore_open(&o, &s, &err)) {
        die("open", &err);
    }

    /* symbols: per service NLOCS functions and nstacks stacks */
    td_ploc *locs = td_xcalloc(NLOCS, sizeof(*locs));
    char(*names)[40] = td_xcalloc(NLOCS, 40);
    td_pstack *stacks = td_xcalloc((size_t)nstacks, sizeof(*stacks));
    uint32_t *frames = td_xcalloc((size_t)nstacks * 40, sizeof(*frames));
    td_psample *smp = td_xcalloc((size_t)nsamples, sizeof(*smp));
    for (int i = 0; i < nstacks; i++) {
        uint32_t depth = 8 + (uint32_t)(rnd() % 33);
        for (uint32_t d = 0; d < depth; d++) {
            frames[(size_t)i * 40 + d] = (uint32_t)(rnd() % NLOCS);
        }
        stacks[i] = (td_pstack){frames + (size_t)i * 40, depth};
    }
    char svc[32];
    td_plabel labels[] = {{"__name__", "process_cpu"},
                          {"__profile_type__", "process_cpu:cpu:nanoseconds:cpu:nanoseconds"},
                          {"service_name", svc}};
    td_pseries_in se = {labels, 3, smp, (size_t)nsamples};
    const int64_t t0 = INT64_C(1700000000000);
    double w0 = now_s();
    uint64_t written = 0;
    for (int p = 0; p < profiles; p++) {
        for (int v = 0; v < services; v++) {
            snprintf(svc, sizeof(svc), "svc-%d", v);
            for (int i = 0; i < NLOCS; i++) {
                snprintf(names[i], 40, "svc%d/pkg%d.func%d", v, i % 17, i);
                locs[i] = (td_ploc){names[i], names[i], "file.go", i + 1, "/bin/app"};
            }
            for (int i = 0; i < nsamples; i++) {
                uint32_t a = (uint32_t)(rnd() % (uint64_t)nstacks);
                uint32_t b = (uint32_t)(rnd() % (uint64_t)nstacks);
                smp[i].stack = a < b ? a : b;
                smp[i].value = (int64_t)(1 + rnd() % 20) * 10000000;
                smp[i].span_id = rnd() % 3 == 0 ? 0x1000 + rnd() % 16 : 0;
            }
            td_pwrite w = {"bench",
                           (t0 + p * 10000) * 1000000,
                           10000000000,
                           locs,
                           NLOCS,
                           stacks,
                           (size_t)nstacks,
                           &se,
                           1};
            if (td_pstore_write(s, &w, &err)) {
                die("write", &err);
            }
            written += (uint64_t)nsamples;
        }
    }
    double wt = now_s() - w0;
    printf("write:  %d profiles x %d series in %.2f s: %.0f profiles/s, %.2f M samples/s\n",
           profiles, services, wt, profiles * services / wt, (double)written / wt / 1e6);

    /* reads: list the series, then decode every profile of every series */
    uint64_t *ids = td_xcalloc((size_t)services, sizeof(*ids)), *ip = ids;
    double r0 = now_s();
    if (td_pstore_series(s, "bench", NULL, 0, t0, t0 + profiles * 10000, on_series, &ip, &err)) {
        die("series", &err);
    }
    double st = now_s() - r0;
    counts c = {0};
    td_pvisit vis = {on_profile, on_sample, &c};
    r0 = now_s();
    if (td_pstore_select(s, "bench", ids, (size_t)(ip - ids), t0, t0 + profiles * 10000, &vis,
                         &err)) {
        die("select", &err);
    }
    double rt = now_s() - r0;
    printf("read:   %zu series listed in %.2f ms; %llu profiles, %llu stored samples decoded in "
           "%.2f s: %.2f M samples/s (totals %s)\n",
           (size_t)(ip - ids), st * 1e3, (unsigned long long)c.profiles,
           (unsigned long long)c.samples, rt, (double)c.samples / rt / 1e6,
           c.sum == 0 ? "match" : "DIFFER");
    /* reopening moves the memtable into a table file, which the estimate counts */
    td_pstore_close(s);
    if (td_pstore_open(&o, &s, &err)) {
        die("reopen", &err);
    }
    uint64_t size = td_pstore_approx_size(s);
    printf("size:   %.2f bytes per ingested sample on disk, symbols included (%llu bytes, "
           "LevelDB estimate, before compaction)\n",
           (double)size / (double)written, (unsigned long long)size);
    td_pstore_close(s);
    td_free(ids);
    td_free(locs);
    td_free(names);
    td_free(stacks);
    td_free(frames);
    td_free(smp);
    if (own) {
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    return c.sum == 0 ? 0 : 1;
}
