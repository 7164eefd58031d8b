/*
 * pstore_dump - print what the profile store under DATA_DIR holds for TENANT, for
 * the end-to-end tests (run after traced has stopped: LevelDB allows one opener).
 *
 *   pstore_dump DATA_DIR TENANT
 *
 * One line per series, labels sorted:  series {k="v",...} profiles=N total=T
 * then, per series, the cumulative value of every function on its stacks:
 *   cum <function> <value>
 * Exit codes: 0 ok, 1 store error, 2 usage.
 */
#include "store/pstore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXF 512
#define MAXFRAMES 1024

typedef struct fn_sum {
    char name[256];
    int64_t cum;
} fn_sum;

typedef struct dump {
    td_pstore *ps;
    const char *tenant;
    uint64_t profiles;
    int64_t total;
    fn_sum f[MAXF];
    size_t nf;
} dump;

static bool on_profile(void *ud, uint64_t series, int64_t time_ns, int64_t total)
{
    dump *d = ud;
    (void)series;
    (void)time_ns;
    d->profiles++;
    d->total += total;
    return true;
}

static void add_fn(dump *d, const char *name, int64_t v)
{
    for (size_t i = 0; i < d->nf; i++) {
        if (strcmp(d->f[i].name, name) == 0) {
            d->f[i].cum += v;
            return;
        }
    }
    if (d->nf < MAXF) {
        snprintf(d->f[d->nf].name, sizeof(d->f[d->nf].name), "%s", name);
        d->f[d->nf++].cum = v;
    }
}

static bool on_sample(void *ud, const td_psample_out *s)
{
    dump *d = ud;
    uint64_t locs[MAXFRAMES];
    size_t n = 0;
    td_err err;
    if (td_pstore_stack(d->ps, d->tenant, s->stack, locs, MAXFRAMES, &n, &err) != TD_OK) {
        fprintf(stderr, "pstore_dump: stack: %s\n", err.msg);
        return false;
    }
    if (n > MAXFRAMES) {
        n = MAXFRAMES;
    }
    /* each function counted once per stack (recursion) */
    const char *seen[MAXFRAMES];
    size_t nseen = 0;
    td_arena a;
    td_arena_init(&a, 4096, 0);
    for (size_t i = 0; i < n; i++) {
        td_ploc l;
        if (td_pstore_location(d->ps, d->tenant, locs[i], &a, &l, &err) != TD_OK) {
            fprintf(stderr, "pstore_dump: location: %s\n", err.msg);
            td_arena_release(&a);
            return false;
        }
        bool dup = false;
        for (size_t k = 0; k < nseen; k++) {
            dup = dup || strcmp(seen[k], l.function) == 0;
        }
        if (!dup) {
            seen[nseen++] = l.function;
            add_fn(d, l.function, s->value);
        }
    }
    td_arena_release(&a);
    return true;
}

typedef struct series_list {
    uint64_t id[4096];
    char *text[4096];
    size_t n;
} series_list;

static bool on_series(void *ud, const td_pseries *s)
{
    series_list *l = ud;
    if (l->n == 4096) {
        return false;
    }
    size_t cap = 16;
    for (size_t i = 0; i < s->nlabels; i++) {
        cap += strlen(s->labels[i].name) + strlen(s->labels[i].value) + 6;
    }
    char *t = malloc(cap), *p = t;
    p += sprintf(p, "{");
    for (size_t i = 0; i < s->nlabels; i++) {
        p += sprintf(p, "%s%s=\"%s\"", i ? "," : "", s->labels[i].name, s->labels[i].value);
    }
    sprintf(p, "}");
    l->id[l->n] = s->id;
    l->text[l->n++] = t;
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: pstore_dump DATA_DIR TENANT\n");
        return 2;
    }
    td_store_opts o = {.dir = argv[1], .cache_bytes = 8u << 20, .write_buffer_bytes = 4u << 20};
    td_pstore *ps;
    td_err err;
    if (td_pstore_open(&o, &ps, &err) != TD_OK) {
        fprintf(stderr, "pstore_dump: %s\n", err.msg);
        return 1;
    }
    static series_list sl;
    int rc = 0;
    if (td_pstore_series(ps, argv[2], NULL, 0, 0, 0, on_series, &sl, &err) != TD_OK) {
        fprintf(stderr, "pstore_dump: series: %s\n", err.msg);
        rc = 1;
    }
    static dump d;
    for (size_t i = 0; rc == 0 && i < sl.n; i++) {
        memset(&d, 0, sizeof(d));
        d.ps = ps;
        d.tenant = argv[2];
        td_pvisit v = {.profile = on_profile, .sample = on_sample, .ud = &d};
        if (td_pstore_select(ps, argv[2], &sl.id[i], 1, 0, INT64_MAX / 1000000, &v, &err) !=
            TD_OK) {
            fprintf(stderr, "pstore_dump: select: %s\n", err.msg);
            rc = 1;
            break;
        }
        printf("series %s profiles=%" PRIu64 " total=%" PRId64 "\n", sl.text[i], d.profiles,
               d.total);
        for (size_t k = 0; k < d.nf; k++) {
            printf("  cum %s %" PRId64 "\n", d.f[k].name, d.f[k].cum);
        }
    }
    for (size_t i = 0; i < sl.n; i++) {
        free(sl.text[i]);
    }
    td_pstore_close(ps);
    return rc;
}
