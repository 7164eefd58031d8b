/*
 * psize.c - bench_psize: bytes of a stopped traced's profile store
 * (<data-dir>/profiles, store/FORMAT-PROFILES.md).
 *
 *   bench_psize --data-dir DIR
 *
 * Opens DIR/profiles with td_pstore_open (the daemon must be stopped: LevelDB
 * locks the directory) with the store module's default options. Opening
 * replays the write-ahead log into a table file, so the estimate covers
 * everything written. Prints key=value lines on stdout:
 *
 *   disk_bytes_before_open  sum of the file sizes under DIR/profiles before opening
 *   disk_bytes              the same after open + close (log replayed)
 *   approx_bytes            td_pstore_approx_size: LevelDB's estimate (table files)
 */
#include "core/config.h"
#include "core/mem.h"
#include "store/pstore.h"

#include <dirent.h>
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

int main(int argc, char **argv)
{
    const char *dir = NULL;
    static const struct option lo[] = {{"data-dir", required_argument, NULL, 'd'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'd') {
            dir = optarg;
        } else {
            fprintf(ch == 'h' ? stdout : stderr, "usage: bench_psize --data-dir DIR\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (!dir || optind != argc) {
        fprintf(stderr, "usage: bench_psize --data-dir DIR\n");
        return 2;
    }
    td_err err;
    td_err_init(&err);
    td_store_opts so;
    memset(&so, 0, sizeof(so));
    td_opt_table tabs[] = {{"store", td_store_opt_rows, td_store_nopt_rows, &so}};
    if (td_config_defaults(tabs, 1, &err) != TD_OK) {
        fprintf(stderr, "bench_psize: %s\n", err.msg);
        return 1;
    }
    char pdir[4096];
    snprintf(pdir, sizeof(pdir), "%s/profiles", dir);
    struct stat st;
    if (stat(pdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "bench_psize: %s has no profiles/ directory\n", dir);
        td_config_release(tabs, 1);
        return 1;
    }
    uint64_t before = dir_bytes(pdir);
    td_free(so.dir);
    so.dir = td_xstrdup(dir);
    td_pstore *s = NULL;
    if (td_pstore_open(&so, &s, &err) != TD_OK) {
        fprintf(stderr, "bench_psize: %s\n", err.msg);
        td_config_release(tabs, 1);
        return 1;
    }
    uint64_t approx = td_pstore_approx_size(s);
    td_pstore_close(s);
    printf("disk_bytes_before_open=%" PRIu64 "\n", before);
    printf("disk_bytes=%" PRIu64 "\n", dir_bytes(pdir));
    printf("approx_bytes=%" PRIu64 "\n", approx);
    td_config_release(tabs, 1);
    return 0;
}
