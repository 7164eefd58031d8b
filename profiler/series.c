/*
 * series.c - a decoded pprof -> the series, stacks and locations of one td_pwrite
 * (API-CONTRACT §5.3, with the §5.0 corrections), and the profile-name rules.
 *
 * Shape of the work: every pprof Location becomes one frame per Line entry
 * (line[0] is the innermost, inlined callee, so the expansion keeps pprof's
 * leaf-first order); a Location without lines gives no frame (§5.0). Stacks
 * are de-duplicated by content. Samples are grouped by their promoted string
 * labels; each (group, sample type) pair is one series. Everything lives in the
 * request arena; the hash tables are sized once from counts the decoder bounded.
 */
#include "profiler/internal.h"

#include "core/hex.h"
#include "core/mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- label lists ---- */

void td__labels_init(td__labels *l, td_arena *a)
{
    l->v = NULL;
    l->n = l->cap = 0;
    l->a = a;
}

bool td__labels_add(td__labels *l, const char *name, const char *value)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        td_plabel *v = td_arena_alloc(l->a, cap * sizeof(*v));
        if (!v) {
            return false;
        }
        if (l->n) {
            memcpy(v, l->v, l->n * sizeof(*v));
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].name = name;
    l->v[l->n].value = value;
    l->n++;
    return true;
}

const char *td__labels_get(const td__labels *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].name, name) == 0) {
            return l->v[i].value;
        }
    }
    return NULL;
}

/* Sort key: name, then position (so the earliest of equal names comes first). */
typedef struct prio_label {
    td_plabel l;
    size_t pos;
} prio_label;

static int cmp_prio(const void *x, const void *y)
{
    const prio_label *a = x, *b = y;
    int c = strcmp(a->l.name, b->l.name);
    if (c) {
        return c;
    }
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

void td__labels_finish(td__labels *l)
{
    if (l->n == 0) {
        return;
    }
    prio_label tmp[64];
    prio_label *t = l->n > 64 ? td_arena_alloc(l->a, l->n * sizeof(*t)) : tmp;
    if (!t) {
        /* fall back to an insertion sort without the scratch array */
        for (size_t i = 1; i < l->n; i++) {
            for (size_t j = i; j > 0 && strcmp(l->v[j - 1].name, l->v[j].name) > 0; j--) {
                td_plabel x = l->v[j];
                l->v[j] = l->v[j - 1];
                l->v[j - 1] = x;
            }
        }
    } else {
        for (size_t i = 0; i < l->n; i++) {
            t[i].l = l->v[i];
            t[i].pos = i;
        }
        qsort(t, l->n, sizeof(*t), cmp_prio);
        for (size_t i = 0; i < l->n; i++) {
            l->v[i] = t[i].l;
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (w && strcmp(l->v[w - 1].name, l->v[i].name) == 0) {
            continue; /* the earlier (higher priority) entry stays */
        }
        l->v[w++] = l->v[i];
    }
    /* drop empty values (a label with an empty value does not exist) */
    size_t k = 0;
    for (size_t i = 0; i < w; i++) {
        if (l->v[i].value && l->v[i].value[0]) {
            l->v[k++] = l->v[i];
        }
    }
    l->n = k;
}

bool td__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            min = 0x80;
            c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            min = 0x800;
            c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            min = 0x10000;
            c &= 0x07;
        } else {
            return false;
        }
        if (n - i < len) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return false;
            }
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

bool td_profiler_label_allowed(const char *name)
{
    if (!name || !name[0]) {
        return false;
    }
    if (name[0] == '_' && name[1] == '_') {
        return strcmp(name, "__session_id__") == 0;
    }
    return true;
}

/* ---- the profile name (§5.3 step 2) ---- */

static const char *default_display(const char *type)
{
    static const char *const map[][2] = {
        {"samples", "cpu"},
        {"goroutine", "goroutines"},
        {"contentions", "mutex_count"},
        {"delay", "mutex_duration"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(type, map[i][0]) == 0) {
            return map[i][1];
        }
    }
    return NULL;
}

const char *td_profiler_metric_name(const td_pprof_profile *p, const td_pstc_set *stc)
{
    for (size_t i = 0; i < p->n_sample_type; i++) {
        if (strcmp(p->string_table[p->sample_type[i]->type], "wall") == 0) {
            return "wall";
        }
    }
    const char *st = "";
    for (size_t i = 0; i < p->n_sample_type; i++) {
        st = p->string_table[p->sample_type[i]->type];
        const char *disp = NULL;
        if (stc && stc->present) {
            for (size_t k = 0; k < stc->n; k++) {
                if (strcmp(stc->v[k].type, st) == 0) {
                    disp = stc->v[k].display_name;
                    break;
                }
            }
        } else {
            disp = default_display(st);
        }
        if (disp && disp[0]) {
            st = disp;
        }
        if (strstr(st, "cpu")) {
            return "process_cpu";
        }
        if (strstr(st, "alloc_") || strstr(st, "inuse_") || strcmp(st, "space") == 0 ||
            strcmp(st, "objects") == 0) {
            return "memory";
        }
        if (strstr(st, "mutex_")) {
            return "mutex";
        }
        if (strstr(st, "block_")) {
            return "block";
        }
        if (strstr(st, "goroutines")) {
            return "goroutines";
        }
    }
    return st;
}

/* ---- string-keyed and stack-keyed de-duplication ---- */

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}
#define FNV0 14695981039346656037ull

bool td__dedup_init(td__dedup *d, size_t max, td_arena *a)
{
    size_t cap = 16;
    while (cap < 2 * max + 1) {
        cap *= 2;
    }
    d->cap = cap;
    d->max = max;
    d->n = 0;
    d->slot = td_arena_calloc(a, cap, sizeof(*d->slot));
    d->key = td_arena_calloc(a, max ? max : 1, sizeof(*d->key));
    d->klen = td_arena_calloc(a, max ? max : 1, sizeof(*d->klen));
    return d->slot && d->key && d->klen;
}

uint32_t td__dedup_get(td__dedup *d, const void *k, size_t n, bool *fresh)
{
    size_t i = (size_t)fnv(k, n, FNV0) & (d->cap - 1);
    while (d->slot[i]) {
        uint32_t v = d->slot[i] - 1;
        if (d->klen[v] == n && memcmp(d->key[v], k, n) == 0) {
            *fresh = false;
            return v;
        }
        i = (i + 1) & (d->cap - 1);
    }
    TD_ASSERT(d->n < d->max);
    uint32_t v = (uint32_t)d->n++;
    d->key[v] = k;
    d->klen[v] = n;
    d->slot[i] = v + 1;
    *fresh = true;
    return v;
}

/* ---- normalisation ---- */

typedef struct plab {
    const char *k, *v;
} plab;

static int cmp_plab(const void *x, const void *y)
{
    return strcmp(((const plab *)x)->k, ((const plab *)y)->k);
}

static bool base_has(const td_pnorm *in, const char *name)
{
    for (size_t i = 0; i < in->nlabels; i++) {
        if (strcmp(in->labels[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static td_status nomem(td_err *err)
{
    return td_err_set(err, TD_NOMEM, "out of memory normalising the profile");
}

td_status td_profiler_pprof_to_write(const td_pnorm *in, td_arena *a, td_pwrite *out,
                                     size_t *nsamples, td_err *err)
{
    const td_pprof_profile *p = in->p;
    char *const *S = p->string_table;
    memset(out, 0, sizeof(*out));
    *nsamples = 0;
    out->tenant = in->tenant;
    out->time_ns = in->time_ns;
    out->duration_ns = in->duration_ns;

    /* IDs -> indices (the decoder checked them) */
    td__idmap fm, lm, mm;
    if (td__idmap_init(&fm, p->n_function, a, err) != TD_OK ||
        td__idmap_init(&lm, p->n_location, a, err) != TD_OK ||
        td__idmap_init(&mm, p->n_mapping, a, err) != TD_OK) {
        return err->code;
    }
    for (size_t i = 0; i < p->n_function; i++) {
        (void)td__idmap_put(&fm, p->function[i]->id, (uint32_t)i);
    }
    for (size_t i = 0; i < p->n_mapping; i++) {
        if (p->mapping[i]->id) {
            (void)td__idmap_put(&mm, p->mapping[i]->id, (uint32_t)i);
        }
    }

    /* locations -> frames, one per Line, callee first */
    size_t nframes_total = 0;
    for (size_t i = 0; i < p->n_location; i++) {
        (void)td__idmap_put(&lm, p->location[i]->id, (uint32_t)i);
        nframes_total += p->location[i]->n_line;
    }
    uint32_t *loc_first = td_arena_calloc(a, p->n_location + 1, sizeof(uint32_t));
    td_ploc *locs = td_arena_calloc(a, nframes_total + 1, sizeof(td_ploc));
    if (!loc_first || !locs || nframes_total > UINT32_MAX) {
        return nomem(err);
    }
    size_t nl = 0;
    for (size_t i = 0; i < p->n_location; i++) {
        const td_pprof_location *l = p->location[i];
        loc_first[i] = (uint32_t)nl;
        const char *mapping = "";
        uint32_t mi;
        if (l->mapping_id && td__idmap_get(&mm, l->mapping_id, &mi)) {
            mapping = S[p->mapping[mi]->filename];
        }
        for (size_t k = 0; k < l->n_line; k++) {
            uint32_t fi = 0;
            (void)td__idmap_get(&fm, l->line[k]->function_id, &fi);
            const td_pprof_function *f = p->function[fi];
            locs[nl++] =
                (td_ploc){S[f->name], S[f->system_name], S[f->filename], l->line[k]->line, mapping};
        }
    }
    loc_first[p->n_location] = (uint32_t)nl;
    out->locs = locs;
    out->nlocs = nl;

    /* samples -> stacks (de-duplicated), groups of promoted labels, span/trace IDs */
    size_t ns = p->n_sample;
    uint32_t *s_stack = td_arena_calloc(a, ns + 1, sizeof(uint32_t));
    uint32_t *s_group = td_arena_calloc(a, ns + 1, sizeof(uint32_t));
    uint64_t *s_span = td_arena_calloc(a, ns + 1, sizeof(uint64_t));
    uint8_t(*s_trace)[16] = td_arena_calloc(a, ns + 1, 16);
    td_pstack *stacks = td_arena_calloc(a, ns + 1, sizeof(td_pstack));
    plab **g_labels = td_arena_calloc(a, ns + 1, sizeof(plab *));
    size_t *g_nlabels = td_arena_calloc(a, ns + 1, sizeof(size_t));
    td__dedup sd, gd;
    if (!s_stack || !s_group || !s_span || !s_trace || !stacks || !g_labels || !g_nlabels ||
        !td__dedup_init(&sd, ns, a) || !td__dedup_init(&gd, ns, a)) {
        return nomem(err);
    }
    td_buf key = TD_BUF_INIT;
    for (size_t i = 0; i < ns; i++) {
        const td_pprof_sample *s = p->sample[i];
        size_t nf = 0;
        for (size_t k = 0; k < s->n_location_id; k++) {
            uint32_t li = 0;
            (void)td__idmap_get(&lm, s->location_id[k], &li);
            nf += loc_first[li + 1] - loc_first[li];
        }
        uint32_t *fr = td_arena_alloc(a, (nf ? nf : 1) * sizeof(uint32_t));
        if (!fr) {
            td_buf_release(&key);
            return nomem(err);
        }
        size_t w = 0;
        for (size_t k = 0; k < s->n_location_id; k++) {
            uint32_t li = 0;
            (void)td__idmap_get(&lm, s->location_id[k], &li);
            for (uint32_t f = loc_first[li]; f < loc_first[li + 1]; f++) {
                fr[w++] = f;
            }
        }
        bool fresh;
        uint32_t si = td__dedup_get(&sd, fr, nf * sizeof(uint32_t), &fresh);
        if (fresh) {
            stacks[si] = (td_pstack){fr, (uint32_t)nf};
        }
        s_stack[i] = si;

        /* labels: span_id/trace_id (profile_id = legacy span_id) per sample, the rest promoted */
        plab tmp[16];
        plab *pl = s->n_label <= 16 ? tmp : td_arena_alloc(a, s->n_label * sizeof(plab));
        if (!pl) {
            td_buf_release(&key);
            return nomem(err);
        }
        size_t np = 0;
        for (size_t k = 0; k < s->n_label; k++) {
            const td_pprof_label *lb = s->label[k];
            const char *lk = S[lb->key], *lv = S[lb->str];
            if (!lb->str || !lv[0] || strncmp(lk, "pprof::", 7) == 0) {
                continue; /* numeric labels (no str) do not identify series; "" = no label */
            }
            /*
             * Pyroscope validates labels that become series labels: a name must be
             * non-empty and, like every value, valid UTF-8. Such a profile is refused
             * whole rather than stored with a mangled label.
             */
            if (!lk[0]) {
                td_buf_release(&key);
                return td_err_set(err, TD_INVALID, "sample %zu has a label with an empty name", i);
            }
            if (!td__utf8_valid(lk, strlen(lk)) || !td__utf8_valid(lv, strlen(lv))) {
                td_buf_release(&key);
                return td_err_set(err, TD_INVALID,
                                  "sample %zu has a label whose name or value is not valid UTF-8",
                                  i);
            }
            if (strcmp(lk, "span_id") == 0 || strcmp(lk, "profile_id") == 0) {
                uint8_t id[8];
                if (td_hex_decode(lv, id, 8)) {
                    uint64_t v = 0;
                    for (int b = 0; b < 8; b++) {
                        v = v << 8 | id[b];
                    }
                    s_span[i] = v;
                }
                continue;
            }
            if (strcmp(lk, "trace_id") == 0) {
                if (!td_hex_decode(lv, s_trace[i], 16)) {
                    memset(s_trace[i], 0, 16);
                }
                continue;
            }
            if (!td_profiler_label_allowed(lk) || base_has(in, lk)) {
                continue; /* series labels win; grouping on them would split equal series */
            }
            pl[np++] = (plab){lk, lv};
        }
        qsort(pl, np, sizeof(plab), cmp_plab);
        /* the first of duplicate keys wins */
        size_t u = 0;
        for (size_t k = 0; k < np; k++) {
            if (u && strcmp(pl[u - 1].k, pl[k].k) == 0) {
                continue;
            }
            pl[u++] = pl[k];
        }
        td_buf_reset(&key);
        for (size_t k = 0; k < u; k++) {
            td_buf_add(&key, pl[k].k, strlen(pl[k].k) + 1);
            td_buf_add(&key, pl[k].v, strlen(pl[k].v) + 1);
        }
        char *kcopy = td_arena_memdup(a, key.data, key.len + 1);
        if (!kcopy) {
            td_buf_release(&key);
            return nomem(err);
        }
        uint32_t gi = td__dedup_get(&gd, kcopy, key.len, &fresh);
        if (fresh) {
            g_labels[gi] = u ? td_arena_memdup(a, pl, u * sizeof(plab)) : NULL;
            g_nlabels[gi] = u;
            if (u && !g_labels[gi]) {
                td_buf_release(&key);
                return nomem(err);
            }
        }
        s_group[i] = gi;
    }
    td_buf_release(&key);
    out->stacks = stacks;
    out->nstacks = sd.n;

    /* series: (group, sample type) with at least one non-zero value */
    size_t ng = gd.n, nt = p->n_sample_type;
    size_t ncells;
    if (!td_size_mul(ng ? ng : 1, nt ? nt : 1, &ncells)) {
        return nomem(err);
    }
    size_t *cnt = td_arena_calloc(a, ncells, sizeof(size_t));
    if (!cnt) {
        return nomem(err);
    }
    for (size_t i = 0; i < ns; i++) {
        for (size_t t = 0; t < nt; t++) {
            if (p->sample[i]->value[t] != 0) {
                cnt[s_group[i] * nt + t]++;
            }
        }
    }
    size_t nseries = 0;
    for (size_t c = 0; c < ng * nt; c++) {
        nseries += cnt[c] != 0;
    }
    td_pseries_in *series = td_arena_calloc(a, nseries + 1, sizeof(td_pseries_in));
    td_psample **cell_samples = td_arena_calloc(a, ncells, sizeof(td_psample *));
    size_t *fill = td_arena_calloc(a, ncells, sizeof(size_t));
    if (!series || !cell_samples || !fill) {
        return nomem(err);
    }
    for (size_t c = 0; c < ng * nt; c++) {
        if (cnt[c]) {
            cell_samples[c] = td_arena_alloc(a, cnt[c] * sizeof(td_psample));
            if (!cell_samples[c]) {
                return nomem(err);
            }
        }
    }
    for (size_t i = 0; i < ns; i++) {
        for (size_t t = 0; t < nt; t++) {
            int64_t v = p->sample[i]->value[t];
            if (v == 0) {
                continue;
            }
            size_t c = s_group[i] * nt + t;
            td_psample *o = &cell_samples[c][fill[c]++];
            o->stack = s_stack[i];
            o->value = v;
            o->span_id = s_span[i];
            memcpy(o->trace_id, s_trace[i], 16);
        }
    }

    /* labels of each series */
    const char *svc = NULL;
    for (size_t i = 0; i < in->nlabels; i++) {
        if (strcmp(in->labels[i].name, "service_name") == 0) {
            svc = in->labels[i].value;
            break;
        }
    }
    const char *pt = "", *pu = "";
    if (p->period_type) {
        pt = S[p->period_type->type];
        pu = S[p->period_type->unit];
    }
    size_t si = 0;
    for (size_t g = 0; g < ng; g++) {
        for (size_t t = 0; t < nt; t++) {
            size_t c = g * nt + t;
            if (!cnt[c]) {
                continue;
            }
            const char *ty = S[p->sample_type[t]->type], *un = S[p->sample_type[t]->unit];
            size_t idlen =
                strlen(in->metric) + strlen(ty) + strlen(un) + strlen(pt) + strlen(pu) + 5;
            char *ptid = td_arena_alloc(a, idlen);
            if (!ptid) {
                return nomem(err);
            }
            snprintf(ptid, idlen, "%s:%s:%s:%s:%s", in->metric, ty, un, pt, pu);
            td__labels l;
            td__labels_init(&l, a);
            bool ok = td__labels_add(&l, "__name__", in->metric) &&
                      td__labels_add(&l, "__profile_type__", ptid) &&
                      td__labels_add(&l, "__type__", ty) && td__labels_add(&l, "__unit__", un) &&
                      td__labels_add(&l, "__period_type__", pt) &&
                      td__labels_add(&l, "__period_unit__", pu) &&
                      td__labels_add(&l, "__service_name__", svc ? svc : "");
            for (size_t k = 0; ok && k < in->nlabels; k++) {
                ok = td__labels_add(&l, in->labels[k].name, in->labels[k].value);
            }
            for (size_t k = 0; ok && k < g_nlabels[g]; k++) {
                ok = td__labels_add(&l, g_labels[g][k].k, g_labels[g][k].v);
            }
            if (!ok) {
                return nomem(err);
            }
            td__labels_finish(&l);
            series[si].labels = l.v;
            series[si].nlabels = l.n;
            series[si].samples = cell_samples[c];
            series[si].nsamples = cnt[c];
            *nsamples += cnt[c];
            si++;
        }
    }
    out->series = series;
    out->nseries = si;
    return TD_OK;
}
