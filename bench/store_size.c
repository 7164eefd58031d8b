/*
 * store_size.c - bench_store_size: how many bytes a stopped traced's store takes,
 * in total and per record type (store/FORMAT.md).
 *
 *   bench_store_size --data-dir DIR [--spans N]
 *
 * Opens DIR/traces with td_store_open (the daemon must be stopped: LevelDB locks
 * the directory), with the store module's default options. Opening replays the
 * write-ahead log into a table, so the estimates cover everything written.
 * Prints key=value lines on stdout:
 *
 *   disk_bytes      sum of the file sizes under DIR/traces (.ldb, .log, MANIFEST...)
 *   approx_bytes    td_store_approx_size: LevelDB's estimate over the whole key space
 *   type_X_bytes    td_store_approx_size_type for X in T R S I K W M
 *   *_per_span      the same divided by --spans
 *   index_overhead  (I + K + W + S) / (T + R)
 *
 * LevelDB's estimates come from table file offsets, so they count compressed
 * bytes as stored, and include overwritten or deleted records that compaction has
 * not yet dropped. Nothing is compacted or written besides the log replay.
 */
#include "core/config.h"
#include "core/mem.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return 0;
    }
    uint64_t sum = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            sum += (uint64_t)st.st_size;
        }
    }
    closedir(d);
    return sum;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_store_size --data-dir DIR [--spans N]\n");
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t spans = 0;
    static const struct option lopts[] = {{"data-dir", required_argument, NULL, 'd'},
                                          {"spans", required_argument, NULL, 's'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            dir = optarg;
            break;
        case 's':
            spans = strtoull(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!dir || optind != argc) {
        usage(stderr);
        return 2;
    }
    td_err err = {0};
    td_store_opts so;
    memset(&so, 0, sizeof(so));
    td_opt_table tabs[] = {{"store", td_store_opt_rows, td_store_nopt_rows, &so}};
    if (td_config_defaults(tabs, 1, &err) != TD_OK) {
        fprintf(stderr, "bench_store_size: %s\n", err.msg);
        return 1;
    }
    char tdir[4096];
    snprintf(tdir, sizeof(tdir), "%s/traces", dir);
    struct stat st;
    if (stat(tdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "bench_store_size: %s is not a traced data dir (no traces/)\n", dir);
        td_config_release(tabs, 1);
        return 1;
    }
    uint64_t disk_before = dir_bytes(tdir);
    td_free(so.dir);
    so.dir = td_xstrdup(dir);
    td_store *s = NULL;
    if (td_store_open(&so, &s, &err) != TD_OK) {
        fprintf(stderr, "bench_store_size: %s\n", err.msg);
        td_config_release(tabs, 1);
        return 1;
    }
    static const char types[] = "TRSIKWM";
    uint64_t by[sizeof(types)] = {0};
    for (size_t i = 0; types[i]; i++) {
        by[i] = td_store_approx_size_type(s, (uint8_t)types[i]);
    }
    uint64_t approx = td_store_approx_size(s);
    td_store_close(s);
    uint64_t disk = dir_bytes(tdir);

    printf("disk_bytes_before_open=%" PRIu64 "\n", disk_before);
    printf("disk_bytes=%" PRIu64 "\n", disk);
    printf("approx_bytes=%" PRIu64 "\n", approx);
    printf("per_type=yes\n");
    for (size_t i = 0; types[i]; i++) {
        printf("type_%c_bytes=%" PRIu64 "\n", types[i], by[i]);
    }
    if (spans > 0) {
        printf("spans=%" PRIu64 "\n", spans);
        printf("disk_per_span=%.1f\n", (double)disk / (double)spans);
        printf("approx_per_span=%.1f\n", (double)approx / (double)spans);
        for (size_t i = 0; types[i]; i++) {
            printf("type_%c_per_span=%.1f\n", types[i], (double)by[i] / (double)spans);
        }
    }
    uint64_t data = by[0] + by[1], idx = by[2] + by[3] + by[4] + by[5];
    if (data > 0) {
        printf("index_overhead=%.3f\n", (double)idx / (double)data);
    }
    td_config_release(tabs, 1);
    return 0;
}
