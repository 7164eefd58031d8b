/*
 * pyro_query.c - querier.v1.QuerierService over Connect (API-CONTRACT §6.2, §5.0, §8)
 * and the legacy /pyroscope/render, /pyroscope/render-diff and
 * /pyroscope/label-values routes (§6.5), on top of the profile store.
 *
 * Every query has the same shape: resolve tenants (X-Scope-OrgID, §9), parse the
 * profile type ID and the label selectors (an invalid one is invalid_argument with
 * the parser's reason), list the matching series with td_pstore_series (postings
 * only), then read profiles with td_pstore_select. Merges aggregate sample values
 * per stack ID first, so every distinct stack is resolved once with
 * td_pstore_stack and every distinct location once with td_pstore_location (both
 * cached per query and tenant: stack and location IDs are tenant-wide).
 *
 * Everything a query allocates lives in its request arena, except the hash maps,
 * which use td_malloc and are freed before returning.
 */
#include "api/api.h"
#include "api/json.h"
#include "api/pyro.h"
#include "api/tempo.h"
#include "core/mem.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_MS (24LL * 3600 * 1000)

/* ---- small containers ---- */

/* Grow *v (elements of size sz, capacity *cap) in the arena to hold need elements. */
static bool agrow(td_arena *a, void **v, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap) {
        return true;
    }
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) {
        nc *= 2;
    }
    void *nv = td_arena_alloc(a, nc * sz);
    if (!nv) {
        return false;
    }
    if (*cap) {
        memcpy(nv, *v, *cap * sz);
    }
    *v = nv;
    *cap = nc;
    return true;
}

/* uint64 -> int64 open-addressing map (td_malloc memory; u64map_free). */
typedef struct u64map {
    uint64_t *k;
    int64_t *v;
    uint8_t *used;
    size_t n, cap;
} u64map;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static void u64map_free(u64map *m)
{
    td_free(m->k);
    td_free(m->v);
    td_free(m->used);
    memset(m, 0, sizeof(*m));
}

static bool u64map_rehash(u64map *m, size_t cap)
{
    u64map n = {.k = td_malloc(cap * sizeof(uint64_t)),
                .v = td_malloc(cap * sizeof(int64_t)),
                .used = td_calloc(cap, 1),
                .cap = cap};
    if (!n.k || !n.v || !n.used) {
        u64map_free(&n);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i]) {
            continue;
        }
        size_t h = mix64(m->k[i]) & (cap - 1);
        while (n.used[h]) {
            h = (h + 1) & (cap - 1);
        }
        n.used[h] = 1;
        n.k[h] = m->k[i];
        n.v[h] = m->v[i];
    }
    n.n = m->n;
    u64map_free(m);
    *m = n;
    return true;
}

/* The value slot of key, inserted as 0 when missing (*isnew says so); NULL on NOMEM. */
static int64_t *u64map_slot(u64map *m, uint64_t key, bool *isnew)
{
    if ((m->n + 1) * 2 > m->cap && !u64map_rehash(m, m->cap ? m->cap * 2 : 64)) {
        return NULL;
    }
    size_t h = mix64(key) & (m->cap - 1);
    while (m->used[h]) {
        if (m->k[h] == key) {
            if (isnew) {
                *isnew = false;
            }
            return &m->v[h];
        }
        h = (h + 1) & (m->cap - 1);
    }
    m->used[h] = 1;
    m->k[h] = key;
    m->v[h] = 0;
    m->n++;
    if (isnew) {
        *isnew = true;
    }
    return &m->v[h];
}

static const int64_t *u64map_get(const u64map *m, uint64_t key)
{
    if (!m->cap) {
        return NULL;
    }
    size_t h = mix64(key) & (m->cap - 1);
    while (m->used[h]) {
        if (m->k[h] == key) {
            return &m->v[h];
        }
        h = (h + 1) & (m->cap - 1);
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- request context ---- */

typedef struct qctx {
    td__pyro *p;
    td_arena *a;
    td__tenants ts;
} qctx;

static td_status qctx_init(qctx *q, td__pyro *p, const char *org, td_arena *a, td_err *err)
{
    q->p = p;
    q->a = a;
    if (!p || !p->ps) {
        return td_err_set(err, TD_OVERLOADED, "no profile store configured");
    }
    return td__tempo_tenants(org, p->multitenancy, a, &q->ts, err);
}

static td_status nomem(td_err *err)
{
    return td_err_set(err, TD_NOMEM, "query result too large");
}

/* ---- profile type IDs ---- */

typedef struct ptype {
    const char *id;      /* the 5-part ID */
    const char *part[5]; /* name, sample type, sample unit, period type, period unit */
} ptype;

/*
 * <name>:<sample-type>:<sample-unit>:<period-type>:<period-unit>, optionally
 * followed by :delta (tolerated, as Pyroscope does). Strings in arena a.
 */
static td_status ptype_parse(const char *s, td_arena *a, ptype *out, td_err *err)
{
    const char *parts[7];
    size_t lens[7], n = 0;
    const char *p = s;
    while (n < 7) {
        const char *c = strchr(p, ':');
        parts[n] = p;
        lens[n] = c ? (size_t)(c - p) : strlen(p);
        n++;
        if (!c) {
            break;
        }
        p = c + 1;
    }
    bool ok = n == 5 || (n == 6 && lens[5] == 5 && strncmp(parts[5], "delta", 5) == 0);
    for (size_t i = 0; ok && i < 5; i++) {
        ok = lens[i] > 0;
    }
    if (!ok) {
        return td_err_set(err, TD_INVALID,
                          "profile-type selection must be of the form "
                          "<name>:<sample-type>:<sample-unit>:<period-type>:<period-unit>(:delta), "
                          "got(%zu): \"%.120s\"",
                          n, s);
    }
    for (size_t i = 0; i < 5; i++) {
        out->part[i] = td_arena_strndup(a, parts[i], lens[i]);
        if (!out->part[i]) {
            return nomem(err);
        }
    }
    size_t idlen = (size_t)(parts[4] + lens[4] - s);
    out->id = td_arena_strndup(a, s, idlen);
    return out->id ? TD_OK : nomem(err);
}

/* ---- selectors ---- */

typedef struct sels {
    td_pselector *orig; /* as parsed (owns the compiled regexes) */
    td_pselector *v;    /* what queries use: orig plus the __profile_type__ matcher */
    size_t n;
} sels;

static void sels_release(sels *s)
{
    for (size_t i = 0; s->orig && i < s->n; i++) {
        td_pselector_release(&s->orig[i]);
    }
    s->n = 0;
}

/*
 * Parse the matchers (several are OR-ed; none = everything). With ptype_id, every
 * selector also requires __profile_type__ = ptype_id. A selector that names a
 * profile type in the metric position (`ID{...}`) requires that type too.
 */
static td_status sels_parse(td_arena *a, char *const *matchers, size_t nm, const char *ptype_id,
                            sels *out, td_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t n = nm ? nm : (ptype_id ? 1 : 0);
    if (!n) {
        return TD_OK;
    }
    out->orig = td_arena_calloc(a, n, sizeof(*out->orig));
    out->v = td_arena_calloc(a, n, sizeof(*out->v));
    if (!out->orig || !out->v) {
        return nomem(err);
    }
    for (size_t i = 0; i < n; i++) {
        const char *m = nm ? matchers[i] : "";
        if (td_pselector_parse(m, strlen(m), a, &out->orig[i], err) != TD_OK) {
            sels_release(out);
            return err->code;
        }
        out->n = i + 1;
        const td_pselector *o = &out->orig[i];
        const char *types[2] = {ptype_id, o->profile_type};
        size_t extra = (types[0] != NULL) + (types[1] != NULL);
        td_pmatcher *mm = td_arena_calloc(a, o->n + extra + 1, sizeof(*mm));
        if (!mm) {
            sels_release(out);
            return nomem(err);
        }
        if (o->n) {
            memcpy(mm, o->m, o->n * sizeof(*mm));
        }
        size_t k = o->n;
        for (int t = 0; t < 2; t++) {
            if (types[t]) {
                mm[k++] =
                    (td_pmatcher){.name = "__profile_type__", .value = types[t], .op = TD_PM_EQ};
            }
        }
        out->v[i] = (td_pselector){.m = mm, .n = k, .profile_type = o->profile_type};
    }
    return TD_OK;
}

/* ---- series ---- */

typedef struct sitem {
    size_t tenant;
    uint64_t id;
    const td_plabel *labels;
    size_t nlabels;
} sitem;

typedef struct slist {
    td_arena *a;
    size_t tenant;
    sitem *v;
    size_t n, cap;
    bool nomem;
} slist;

static bool on_series(void *ud, const td_pseries *s)
{
    slist *l = ud;
    if (!agrow(l->a, (void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v))) {
        l->nomem = true;
        return false;
    }
    td_plabel *lb = td_arena_calloc(l->a, s->nlabels ? s->nlabels : 1, sizeof(*lb));
    if (!lb) {
        l->nomem = true;
        return false;
    }
    for (size_t i = 0; i < s->nlabels; i++) {
        lb[i].name = td_arena_strndup(l->a, s->labels[i].name, strlen(s->labels[i].name));
        lb[i].value = td_arena_strndup(l->a, s->labels[i].value, strlen(s->labels[i].value));
        if (!lb[i].name || !lb[i].value) {
            l->nomem = true;
            return false;
        }
    }
    l->v[l->n++] = (sitem){.tenant = l->tenant, .id = s->id, .labels = lb, .nlabels = s->nlabels};
    return true;
}

/* Every series of every tenant of q matching sels with a profile in [start, end]. */
static td_status list_series(qctx *q, const sels *s, int64_t start, int64_t end, slist *out,
                             td_err *err)
{
    memset(out, 0, sizeof(*out));
    out->a = q->a;
    for (size_t t = 0; t < q->ts.n; t++) {
        out->tenant = t;
        if (td_pstore_series(q->p->ps, q->ts.names[t], s->v, s->n, start, end, on_series, out,
                             err) != TD_OK) {
            return err->code;
        }
        if (out->nomem) {
            return nomem(err);
        }
    }
    return TD_OK;
}

static const char *label_get(const sitem *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++) {
        if (strcmp(s->labels[i].name, name) == 0) {
            return s->labels[i].value;
        }
    }
    return NULL;
}

/* Distinct sorted strings: sort v[0..n) and drop duplicates; returns the new count. */
static size_t uniq_sorted(const char **v, size_t n)
{
    if (!n) {
        return 0;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i], v[k - 1]) != 0) {
            v[k++] = v[i];
        }
    }
    return k;
}

/* ---- time ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Merge and series ranges: end <= 0 means now; a negative start means 0. */
static void range_fix(int64_t *start, int64_t *end)
{
    if (*end <= 0) {
        *end = now_ms();
    }
    if (*start < 0) {
        *start = 0;
    }
}

int64_t td__pyro_step_index(int64_t start_ms, int64_t end_ms, int64_t step_ms, int64_t ts_ms)
{
    if (step_ms <= 0 || ts_ms <= start_ms - step_ms || ts_ms > end_ms) {
        return -1;
    }
    int64_t k = ts_ms <= start_ms ? 0 : (ts_ms - start_ms + step_ms - 1) / step_ms;
    if (start_ms + k * step_ms > end_ms) {
        return -1;
    }
    return k;
}

/* ---- span and trace selectors (§8) ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static bool hex_decode(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

typedef struct filt {
    uint64_t *spans; /* sorted */
    size_t nspans;
    uint8_t (*traces)[16];
    size_t ntraces;
} filt;

static td_status filt_parse(td_arena *a, char *const *spans, size_t nspans, char *const *traces,
                            size_t ntraces, filt *f, td_err *err)
{
    memset(f, 0, sizeof(*f));
    if (nspans && ntraces) {
        return td_err_set(err, TD_INVALID,
                          "span_selector and trace_id_selector cannot be used together");
    }
    if (nspans) {
        f->spans = td_arena_alloc(a, nspans * sizeof(*f->spans));
        if (!f->spans) {
            return nomem(err);
        }
        for (size_t i = 0; i < nspans; i++) {
            uint8_t b[8];
            if (!hex_decode(spans[i], b, 8)) {
                return td_err_set(err, TD_INVALID,
                                  "invalid span id \"%.64s\": expected 16 hex characters",
                                  spans[i]);
            }
            uint64_t v = 0;
            for (int k = 0; k < 8; k++) {
                v = v << 8 | b[k];
            }
            f->spans[i] = v;
        }
        qsort(f->spans, nspans, sizeof(*f->spans), cmp_u64);
        f->nspans = nspans;
    }
    if (ntraces) {
        f->traces = td_arena_alloc(a, ntraces * 16);
        if (!f->traces) {
            return nomem(err);
        }
        for (size_t i = 0; i < ntraces; i++) {
            if (!hex_decode(traces[i], f->traces[i], 16)) {
                return td_err_set(err, TD_INVALID,
                                  "invalid trace id \"%.64s\": expected 32 hex characters",
                                  traces[i]);
            }
        }
        f->ntraces = ntraces;
    }
    return TD_OK;
}

static bool filt_pass(const filt *f, const td_psample_out *s)
{
    if (f->nspans) {
        if (!s->span_id || !bsearch(&s->span_id, f->spans, f->nspans, sizeof(*f->spans), cmp_u64)) {
            return false;
        }
    }
    if (f->ntraces) {
        if (!s->trace_id) {
            return false;
        }
        for (size_t i = 0; i < f->ntraces; i++) {
            if (memcmp(f->traces[i], s->trace_id, 16) == 0) {
                return true;
            }
        }
        return false;
    }
    return true;
}

/* ---- merging samples ---- */

/* What one merge selects. */
typedef struct mq {
    ptype pt;
    const char *selector;
    int64_t start, end;
    filt f;
    /* stack_trace_selector.call_site: keep stacks starting (root first) with these frames */
    const char *const *call_site;
    size_t ncall_site;
} mq;

/* Take the call-site prefix of a StackTraceSelector (go_pgo is not supported: ignored). */
static void mq_call_site(td_arena *a, mq *m, const Types__V1__StackTraceSelector *sel)
{
    if (!sel || !sel->n_call_site) {
        return;
    }
    const char **cs = td_arena_alloc(a, sel->n_call_site * sizeof(*cs));
    if (!cs) {
        return; /* the arena is exhausted: the query fails right after */
    }
    for (size_t i = 0; i < sel->n_call_site; i++) {
        cs[i] = sel->call_site[i]->name ? sel->call_site[i]->name : "";
    }
    m->call_site = cs;
    m->ncall_site = sel->n_call_site;
}

typedef struct stack_acc {
    u64map m; /* stack id -> summed value */
    const filt *f;
    bool nomem;
} stack_acc;

static bool on_sample(void *ud, const td_psample_out *s)
{
    stack_acc *acc = ud;
    if (!filt_pass(acc->f, s)) {
        return true;
    }
    int64_t *v = u64map_slot(&acc->m, s->stack, NULL);
    if (!v) {
        acc->nomem = true;
        return false;
    }
    *v += s->value;
    return true;
}

static bool on_profile_any(void *ud, uint64_t series, int64_t time_ns, int64_t total)
{
    (void)ud;
    (void)series;
    (void)time_ns;
    (void)total;
    return true;
}

/* Per-tenant resolution caches: stack frames and locations. */
typedef struct resolver {
    qctx *q;
    size_t tenant;
    u64map locs; /* location id -> index into ploc + 1 */
    td_ploc *ploc;
    size_t nploc, capploc;
    uint64_t *buf;
    size_t bufcap;
} resolver;

static void resolver_release(resolver *r)
{
    u64map_free(&r->locs);
    td_free(r->buf);
    r->buf = NULL;
}

/* The frames of stack id (leaf first) into r->buf; *n frames. */
static td_status resolve_stack(resolver *r, uint64_t id, size_t *n, td_err *err)
{
    if (!r->buf) {
        r->bufcap = 256;
        r->buf = td_malloc(r->bufcap * sizeof(*r->buf));
        if (!r->buf) {
            return nomem(err);
        }
    }
    const char *tenant = r->q->ts.names[r->tenant];
    if (td_pstore_stack(r->q->p->ps, tenant, id, r->buf, r->bufcap, n, err) != TD_OK) {
        return err->code;
    }
    if (*n > r->bufcap) {
        uint64_t *nb = td_realloc(r->buf, *n * sizeof(*nb));
        if (!nb) {
            return nomem(err);
        }
        r->buf = nb;
        r->bufcap = *n;
        if (td_pstore_stack(r->q->p->ps, tenant, id, r->buf, r->bufcap, n, err) != TD_OK) {
            return err->code;
        }
    }
    return TD_OK;
}

/* Location id, cached; *idx is its index into r->ploc. */
static td_status resolve_loc(resolver *r, uint64_t id, size_t *idx, td_err *err)
{
    bool isnew;
    int64_t *slot = u64map_slot(&r->locs, id, &isnew);
    if (!slot) {
        return nomem(err);
    }
    if (!isnew) {
        *idx = (size_t)*slot - 1;
        return TD_OK;
    }
    if (!agrow(r->q->a, (void **)&r->ploc, &r->capploc, r->nploc + 1, sizeof(*r->ploc))) {
        return nomem(err);
    }
    td_ploc *l = &r->ploc[r->nploc];
    if (td_pstore_location(r->q->p->ps, r->q->ts.names[r->tenant], id, r->q->a, l, err) != TD_OK) {
        return err->code;
    }
    *slot = (int64_t)++r->nploc;
    *idx = r->nploc - 1;
    return TD_OK;
}

/*
 * The flame graph frame name of a location: Function.name, else the system name,
 * else (our extension for unsymbolized native frames, §5.0) the mapping's base
 * name, else "unknown".
 */
static const char *frame_name(const td_ploc *l)
{
    if (l->function && *l->function) {
        return l->function;
    }
    if (l->system_name && *l->system_name) {
        return l->system_name;
    }
    if (l->mapping && *l->mapping) {
        const char *b = strrchr(l->mapping, '/');
        return b ? b + 1 : l->mapping;
    }
    return "unknown";
}

/* Does the stack (frames leaf first) start, root first, with m's call site? */
static td_status call_site_match(resolver *r, const uint64_t *locs, size_t n, const mq *m,
                                 bool *match, td_err *err)
{
    *match = false;
    if (n < m->ncall_site) {
        return TD_OK;
    }
    for (size_t i = 0; i < m->ncall_site; i++) {
        size_t idx = 0;
        if (resolve_loc(r, locs[n - 1 - i], &idx, err) != TD_OK) {
            return err->code == TD_NOT_FOUND
                       ? td_err_set(err, TD_CORRUPT, "location %" PRIu64 " is missing",
                                    locs[n - 1 - i])
                       : err->code;
        }
        if (strcmp(frame_name(&r->ploc[idx]), m->call_site[i]) != 0) {
            return TD_OK;
        }
    }
    *match = true;
    return TD_OK;
}

/* Callback per distinct stack of a merge: frames are location indices (leaf first). */
typedef td_status (*stack_fn)(void *ud, resolver *r, const uint64_t *locs, size_t n, int64_t value,
                              td_err *err);

/*
 * Run merge query m: series, samples aggregated per stack, then fn once per
 * distinct stack with its frames, per tenant.
 */
static td_status merge(qctx *q, const mq *m, stack_fn fn, void *ud, td_err *err)
{
    sels s;
    if (sels_parse(q->a, (char *const *)&m->selector, 1, m->pt.id, &s, err) != TD_OK) {
        return err->code;
    }
    slist l;
    td_status st = list_series(q, &s, m->start, m->end, &l, err);
    sels_release(&s);
    if (st != TD_OK) {
        return st;
    }
    for (size_t t = 0; t < q->ts.n && st == TD_OK; t++) {
        size_t nids = 0;
        uint64_t *ids = td_arena_alloc(q->a, (l.n ? l.n : 1) * sizeof(*ids));
        if (!ids) {
            return nomem(err);
        }
        for (size_t i = 0; i < l.n; i++) {
            if (l.v[i].tenant == t) {
                ids[nids++] = l.v[i].id;
            }
        }
        if (!nids) {
            continue;
        }
        stack_acc acc = {.f = &m->f};
        td_pvisit v = {.profile = on_profile_any, .sample = on_sample, .ud = &acc};
        st = td_pstore_select(q->p->ps, q->ts.names[t], ids, nids, m->start, m->end, &v, err);
        if (st == TD_OK && acc.nomem) {
            st = nomem(err);
        }
        resolver r = {.q = q, .tenant = t};
        for (size_t i = 0; st == TD_OK && i < acc.m.cap; i++) {
            if (!acc.m.used[i]) {
                continue;
            }
            size_t n;
            st = resolve_stack(&r, acc.m.k[i], &n, err);
            if (st == TD_NOT_FOUND) {
                st = td_err_set(err, TD_CORRUPT, "stack %" PRIu64 " is missing", acc.m.k[i]);
            }
            bool keep = true;
            if (st == TD_OK && m->ncall_site) {
                st = call_site_match(&r, r.buf, n, m, &keep, err);
            }
            if (st == TD_OK && keep) {
                st = fn(ud, &r, r.buf, n, acc.m.v[i], err);
            }
        }
        resolver_release(&r);
        u64map_free(&acc.m);
    }
    return st;
}

/* Flame graph consumer: frame names root first into the tree. */
typedef struct fg_ud {
    td__fg *t;
    int side;
    const char **names;
    size_t cap;
} fg_ud;

static td_status fg_stack(void *ud, resolver *r, const uint64_t *locs, size_t n, int64_t value,
                          td_err *err)
{
    fg_ud *f = ud;
    if (n > f->cap) {
        size_t cap = n * 2;
        const char **nn = td_arena_alloc(r->q->a, cap * sizeof(*nn));
        if (!nn) {
            return nomem(err);
        }
        f->names = nn;
        f->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        size_t idx = 0;
        if (resolve_loc(r, locs[i], &idx, err) != TD_OK) {
            return err->code == TD_NOT_FOUND
                       ? td_err_set(err, TD_CORRUPT, "location %" PRIu64 " is missing", locs[i])
                       : err->code;
        }
        f->names[n - 1 - i] = frame_name(&r->ploc[idx]);
    }
    return td__fg_add(f->t, f->side, f->names, n, value, err);
}

static td_status max_nodes_of(int64_t v, int64_t *out, td_err *err)
{
    if (v < 0 || v > TD_FG_MAX_MAX_NODES) {
        return td_err_set(err, TD_INVALID, "max_nodes must be between 0 and %d, got %" PRId64,
                          TD_FG_MAX_MAX_NODES, v);
    }
    *out = v ? v : TD_FG_DEFAULT_MAX_NODES;
    return TD_OK;
}

static td_status mq_init(qctx *q, mq *m, const char *ptype_id, const char *selector, int64_t start,
                         int64_t end, td_err *err)
{
    memset(m, 0, sizeof(*m));
    if (ptype_parse(ptype_id ? ptype_id : "", q->a, &m->pt, err) != TD_OK) {
        return err->code;
    }
    m->selector = selector ? selector : "";
    m->start = start;
    m->end = end;
    range_fix(&m->start, &m->end);
    if (m->end < m->start) {
        return td_err_set(err, TD_INVALID, "end must not be before start");
    }
    return TD_OK;
}

static td_status merge_fg(qctx *q, const mq *m, td__fg *t, int side, td_err *err)
{
    fg_ud f = {.t = t, .side = side};
    return merge(q, m, fg_stack, &f, err);
}

/* ---- handlers ---- */

#define H(name)                                                                                    \
    static td_status name(void *ud, td_connect_call *call, const ProtobufCMessage *in_,            \
                          ProtobufCMessage **out_, td_err *err)

#define NEW(type, init, var)                                                                       \
    type *var = td_arena_alloc(call->arena, sizeof(type));                                         \
    if (!var) {                                                                                    \
        return nomem(err);                                                                         \
    }                                                                                              \
    init(var)

/* ProfileTypes: the distinct __profile_type__ of the series in range, sorted by ID. */
H(h_profile_types)
{
    const Querier__V1__ProfileTypesRequest *in = (const void *)in_;
    qctx q;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK) {
        return err->code;
    }
    sels s = {0};
    slist l;
    int64_t start = in->start, end = in->end;
    if (end <= 0) {
        start = 0; /* recent data: everything we have */
        end = 0;
    }
    if (list_series(&q, &s, start, end, &l, err) != TD_OK) {
        return err->code;
    }
    const char **ids = td_arena_alloc(q.a, (l.n ? l.n : 1) * sizeof(*ids));
    if (!ids) {
        return nomem(err);
    }
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++) {
        const char *v = label_get(&l.v[i], "__profile_type__");
        if (v && *v) {
            ids[n++] = v;
        }
    }
    n = uniq_sorted(ids, n);
    NEW(Querier__V1__ProfileTypesResponse, querier__v1__profile_types_response__init, out);
    out->profile_types = td_arena_alloc(q.a, (n ? n : 1) * sizeof(*out->profile_types));
    if (!out->profile_types) {
        return nomem(err);
    }
    for (size_t i = 0; i < n; i++) {
        ptype pt;
        td_err e2;
        if (ptype_parse(ids[i], q.a, &pt, &e2) != TD_OK) {
            continue; /* not a valid ID: not listed */
        }
        NEW(Types__V1__ProfileType, types__v1__profile_type__init, t);
        t->id = (char *)ids[i];
        t->name = (char *)pt.part[0];
        t->sample_type = (char *)pt.part[1];
        t->sample_unit = (char *)pt.part[2];
        t->period_type = (char *)pt.part[3];
        t->period_unit = (char *)pt.part[4];
        out->profile_types[out->n_profile_types++] = t;
    }
    *out_ = &out->base;
    return TD_OK;
}

/* Prometheus' legacy label name rule: [a-zA-Z_][a-zA-Z0-9_]*. */
static bool legacy_name(const char *s)
{
    if (!*s) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                  (p != s && *p >= '0' && *p <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool allow_utf8_names(const char *accept)
{
    return accept && strstr(accept, "allow-utf8-labelnames=true") != NULL;
}

H(h_label_names)
{
    const Types__V1__LabelNamesRequest *in = (const void *)in_;
    qctx q;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK) {
        return err->code;
    }
    sels s;
    if (sels_parse(q.a, in->matchers, in->n_matchers, NULL, &s, err) != TD_OK) {
        return err->code;
    }
    slist l;
    td_status st = list_series(&q, &s, in->start, in->end, &l, err);
    sels_release(&s);
    if (st != TD_OK) {
        return st;
    }
    size_t total = 0;
    for (size_t i = 0; i < l.n; i++) {
        total += l.v[i].nlabels;
    }
    const char **names = td_arena_alloc(q.a, (total ? total : 1) * sizeof(*names));
    if (!names) {
        return nomem(err);
    }
    bool utf8 = allow_utf8_names(call->req->accept);
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++) {
        for (size_t k = 0; k < l.v[i].nlabels; k++) {
            const char *nm = l.v[i].labels[k].name;
            if (utf8 || legacy_name(nm)) {
                names[n++] = nm;
            }
        }
    }
    n = uniq_sorted(names, n);
    NEW(Types__V1__LabelNamesResponse, types__v1__label_names_response__init, out);
    out->names = (char **)names;
    out->n_names = n;
    *out_ = &out->base;
    return TD_OK;
}

H(h_label_values)
{
    const Types__V1__LabelValuesRequest *in = (const void *)in_;
    qctx q;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK) {
        return err->code;
    }
    if (!in->name || !*in->name) {
        return td_err_set(err, TD_INVALID, "name is required");
    }
    sels s;
    if (sels_parse(q.a, in->matchers, in->n_matchers, NULL, &s, err) != TD_OK) {
        return err->code;
    }
    slist l;
    td_status st = list_series(&q, &s, in->start, in->end, &l, err);
    sels_release(&s);
    if (st != TD_OK) {
        return st;
    }
    const char **vals = td_arena_alloc(q.a, (l.n ? l.n : 1) * sizeof(*vals));
    if (!vals) {
        return nomem(err);
    }
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++) {
        const char *v = label_get(&l.v[i], in->name);
        if (v && *v) {
            vals[n++] = v;
        }
    }
    n = uniq_sorted(vals, n);
    NEW(Types__V1__LabelValuesResponse, types__v1__label_values_response__init, out);
    out->names = (char **)vals;
    out->n_names = n;
    *out_ = &out->base;
    return TD_OK;
}

static int cmp_labelsets(const void *a, const void *b)
{
    const Types__V1__Labels *x = *(Types__V1__Labels *const *)a;
    const Types__V1__Labels *y = *(Types__V1__Labels *const *)b;
    size_t n = x->n_labels < y->n_labels ? x->n_labels : y->n_labels;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(x->labels[i]->name, y->labels[i]->name);
        if (!c) {
            c = strcmp(x->labels[i]->value, y->labels[i]->value);
        }
        if (c) {
            return c;
        }
    }
    return x->n_labels < y->n_labels ? -1 : x->n_labels > y->n_labels;
}

H(h_series)
{
    const Querier__V1__SeriesRequest *in = (const void *)in_;
    qctx q;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK) {
        return err->code;
    }
    sels s;
    if (sels_parse(q.a, in->matchers, in->n_matchers, NULL, &s, err) != TD_OK) {
        return err->code;
    }
    slist l;
    td_status st = list_series(&q, &s, in->start, in->end, &l, err);
    sels_release(&s);
    if (st != TD_OK) {
        return st;
    }
    NEW(Querier__V1__SeriesResponse, querier__v1__series_response__init, out);
    out->labels_set = td_arena_alloc(q.a, (l.n ? l.n : 1) * sizeof(*out->labels_set));
    if (!out->labels_set) {
        return nomem(err);
    }
    for (size_t i = 0; i < l.n; i++) {
        NEW(Types__V1__Labels, types__v1__labels__init, ls);
        ls->labels = td_arena_alloc(q.a, (l.v[i].nlabels + 1) * sizeof(*ls->labels));
        if (!ls->labels) {
            return nomem(err);
        }
        for (size_t k = 0; k < l.v[i].nlabels; k++) {
            const td_plabel *lb = &l.v[i].labels[k];
            bool want = in->n_label_names == 0;
            for (size_t j = 0; !want && j < in->n_label_names; j++) {
                want = strcmp(in->label_names[j], lb->name) == 0;
            }
            if (!want) {
                continue;
            }
            NEW(Types__V1__LabelPair, types__v1__label_pair__init, lp);
            lp->name = (char *)lb->name;
            lp->value = (char *)lb->value;
            ls->labels[ls->n_labels++] = lp;
        }
        out->labels_set[out->n_labels_set++] = ls;
    }
    /* sorted, distinct (projections onto label_names collapse) */
    qsort(out->labels_set, out->n_labels_set, sizeof(*out->labels_set), cmp_labelsets);
    size_t k = 0;
    for (size_t i = 0; i < out->n_labels_set; i++) {
        if (k && cmp_labelsets(&out->labels_set[k - 1], &out->labels_set[i]) == 0) {
            continue;
        }
        out->labels_set[k++] = out->labels_set[i];
    }
    out->n_labels_set = k;
    *out_ = &out->base;
    return TD_OK;
}

H(h_select_merge_stacktraces)
{
    const Querier__V1__SelectMergeStacktracesRequest *in = (const void *)in_;
    qctx q;
    mq m;
    int64_t maxn = TD_FG_DEFAULT_MAX_NODES;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK ||
        mq_init(&q, &m, in->profile_typeid, in->label_selector, in->start, in->end, err) != TD_OK ||
        max_nodes_of(in->max_nodes, &maxn, err) != TD_OK ||
        filt_parse(q.a, in->span_selector, in->n_span_selector, in->trace_id_selector,
                   in->n_trace_id_selector, &m.f, err) != TD_OK) {
        return err->code;
    }
    mq_call_site(q.a, &m, in->stack_trace_selector);
    td__fg *t = td__fg_new(q.a);
    if (!t) {
        return nomem(err);
    }
    NEW(Querier__V1__SelectMergeStacktracesResponse,
        querier__v1__select_merge_stacktraces_response__init, out);
    if (merge_fg(&q, &m, t, 0, err) != TD_OK) {
        return err->code;
    }
    if (in->format == QUERIER__V1__PROFILE_FORMAT__PROFILE_FORMAT_DOT) {
        /* Graphviz text only; every other format gets the flame graph (TREE clients fall back) */
        td_buf dot = TD_BUF_INIT;
        td_status st = td__fg_dot(t, maxn, m.pt.id, q.a, &dot, err);
        out->dot = st == TD_OK ? td_arena_strndup(q.a, dot.data, dot.len) : NULL;
        td_buf_release(&dot);
        if (st != TD_OK) {
            return st;
        }
        if (!out->dot) {
            return nomem(err);
        }
    } else if (td__fg_flamegraph(t, maxn, q.a, &out->flamegraph, err) != TD_OK) {
        return err->code;
    }
    *out_ = &out->base;
    return TD_OK;
}

H(h_select_merge_span_profile)
{
    const Querier__V1__SelectMergeSpanProfileRequest *in = (const void *)in_;
    qctx q;
    mq m;
    int64_t maxn = TD_FG_DEFAULT_MAX_NODES;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK ||
        mq_init(&q, &m, in->profile_typeid, in->label_selector, in->start, in->end, err) != TD_OK ||
        max_nodes_of(in->max_nodes, &maxn, err) != TD_OK ||
        filt_parse(q.a, in->span_selector, in->n_span_selector, NULL, 0, &m.f, err) != TD_OK) {
        return err->code;
    }
    td__fg *t = td__fg_new(q.a);
    if (!t) {
        return nomem(err);
    }
    NEW(Querier__V1__SelectMergeSpanProfileResponse,
        querier__v1__select_merge_span_profile_response__init, out);
    /* no span selected: no samples (Pyroscope selects nothing rather than everything) */
    if (m.f.nspans && merge_fg(&q, &m, t, 0, err) != TD_OK) {
        return err->code;
    }
    if (td__fg_flamegraph(t, maxn, q.a, &out->flamegraph, err) != TD_OK) {
        return err->code;
    }
    *out_ = &out->base;
    return TD_OK;
}

/* Validate one side of a Diff and merge it into side of t. */
static td_status diff_side(qctx *q, const Querier__V1__SelectMergeStacktracesRequest *r,
                           const char *which, td__fg *t, int side, td_err *err)
{
    if (!r) {
        return td_err_set(err, TD_INVALID, "%s profile is required", which);
    }
    mq m;
    if (mq_init(q, &m, r->profile_typeid, r->label_selector, r->start, r->end, err) != TD_OK ||
        filt_parse(q->a, r->span_selector, r->n_span_selector, r->trace_id_selector,
                   r->n_trace_id_selector, &m.f, err) != TD_OK) {
        return err->code;
    }
    mq_call_site(q->a, &m, r->stack_trace_selector);
    return merge_fg(q, &m, t, side, err);
}

H(h_diff)
{
    const Querier__V1__DiffRequest *in = (const void *)in_;
    qctx q;
    int64_t maxn = TD_FG_DEFAULT_MAX_NODES;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK) {
        return err->code;
    }
    if (!in->left || !in->right) {
        return td_err_set(err, TD_INVALID, "left and right profiles are required");
    }
    if (max_nodes_of(in->left->max_nodes, &maxn, err) != TD_OK) {
        return err->code;
    }
    td__fg *t = td__fg_new(q.a);
    if (!t) {
        return nomem(err);
    }
    NEW(Querier__V1__DiffResponse, querier__v1__diff_response__init, out);
    if (diff_side(&q, in->left, "left", t, 0, err) != TD_OK ||
        diff_side(&q, in->right, "right", t, 1, err) != TD_OK ||
        td__fg_diff(t, maxn, q.a, &out->flamegraph, err) != TD_OK) {
        return err->code;
    }
    *out_ = &out->base;
    return TD_OK;
}

/* ---- SelectSeries ---- */

/* A sample kept for a call-site filtered SelectSeries: resolved after the read. */
typedef struct sentry {
    uint64_t stack;
    int64_t group, k, value;
} sentry;

typedef struct series_acc {
    u64map group;   /* series id -> group index (per tenant, reset between tenants) */
    u64map *points; /* per group: step index -> summed value */
    int64_t start, end, step;
    sentry *ents; /* call-site filter: samples to check once the read is over */
    size_t nents, capents;
    bool nomem;
} series_acc;

/* Step index of a profile of series at time_ns, or -1; *g its group. */
static int64_t series_step(series_acc *s, uint64_t series, int64_t time_ns, int64_t *g)
{
    const int64_t *gp = u64map_get(&s->group, series);
    int64_t ts = time_ns / 1000000;
    if (!gp || ts >= s->end) { /* end excluded */
        return -1;
    }
    *g = *gp;
    return td__pyro_step_index(s->start, s->end, s->step, ts);
}

static bool on_series_sample(void *ud, const td_psample_out *smp)
{
    series_acc *s = ud;
    int64_t g;
    int64_t k = series_step(s, smp->series, smp->time_ns, &g);
    if (k < 0) {
        return true;
    }
    if (s->nents == s->capents) {
        size_t cap = s->capents ? s->capents * 2 : 1024;
        sentry *ne = td_realloc(s->ents, cap * sizeof(*ne));
        if (!ne) {
            s->nomem = true;
            return false;
        }
        s->ents = ne;
        s->capents = cap;
    }
    s->ents[s->nents++] = (sentry){.stack = smp->stack, .group = g, .k = k, .value = smp->value};
    return true;
}

static bool on_series_profile(void *ud, uint64_t series, int64_t time_ns, int64_t total)
{
    series_acc *s = ud;
    int64_t g;
    int64_t k = series_step(s, series, time_ns, &g);
    if (k < 0) {
        return true;
    }
    int64_t *v = u64map_slot(&s->points[g], (uint64_t)k, NULL);
    if (!v) {
        s->nomem = true;
        return false;
    }
    *v += total;
    return true;
}

/* Add the kept samples of tenant t whose stack starts with m's call site to their points. */
static td_status series_call_site(qctx *q, const mq *m, size_t t, series_acc *acc, td_err *err)
{
    resolver r = {.q = q, .tenant = t};
    u64map verdict = {0}; /* stack -> 1 match, 2 no match */
    td_status st = TD_OK;
    for (size_t i = 0; st == TD_OK && i < acc->nents; i++) {
        const sentry *e = &acc->ents[i];
        bool isnew;
        int64_t *vd = u64map_slot(&verdict, e->stack, &isnew);
        if (!vd) {
            st = nomem(err);
            break;
        }
        if (isnew) {
            size_t n;
            bool keep = false;
            st = resolve_stack(&r, e->stack, &n, err);
            if (st == TD_OK) {
                st = call_site_match(&r, r.buf, n, m, &keep, err);
            }
            *vd = keep ? 1 : 2;
        }
        if (st == TD_OK && *vd == 1) {
            int64_t *v = u64map_slot(&acc->points[e->group], (uint64_t)e->k, NULL);
            if (!v) {
                st = nomem(err);
                break;
            }
            *v += e->value;
        }
    }
    u64map_free(&verdict);
    resolver_release(&r);
    return st;
}

typedef struct group {
    Types__V1__Series *s;
    double total;
} group;

static int cmp_group_total(const void *a, const void *b)
{
    double x = ((const group *)a)->total, y = ((const group *)b)->total;
    return x > y ? -1 : x < y;
}

static int cmp_series(const void *a, const void *b)
{
    const Types__V1__Series *x = *(Types__V1__Series *const *)a;
    const Types__V1__Series *y = *(Types__V1__Series *const *)b;
    Types__V1__Labels lx = {.n_labels = x->n_labels, .labels = x->labels};
    Types__V1__Labels ly = {.n_labels = y->n_labels, .labels = y->labels};
    const Types__V1__Labels *px = &lx, *py = &ly;
    return cmp_labelsets(&px, &py);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * The series of query m grouped by group_by, one point per step with data.
 * Fills *out (sorted by labels; top `limit` by total when limit > 0).
 */
static td_status select_series(qctx *q, const mq *m, char *const *group_by, size_t ngroup,
                               double step_s, int64_t limit, Types__V1__Series ***out, size_t *nout,
                               td_err *err)
{
    if (!(step_s >= 0.001) || step_s > 1e12) {
        return td_err_set(err, TD_INVALID, "step must be at least 1ms, got %g seconds", step_s);
    }
    int64_t step = (int64_t)llround(step_s * 1000);
    sels s;
    if (sels_parse(q->a, (char *const *)&m->selector, 1, m->pt.id, &s, err) != TD_OK) {
        return err->code;
    }
    slist l;
    td_status st = list_series(q, &s, m->start, m->end, &l, err);
    sels_release(&s);
    if (st != TD_OK) {
        return st;
    }
    /* groups: distinct tuples of the group_by label values (missing labels left out) */
    Types__V1__Series **groups = td_arena_alloc(q->a, (l.n ? l.n : 1) * sizeof(*groups));
    size_t *gidx = td_arena_alloc(q->a, (l.n ? l.n : 1) * sizeof(*gidx));
    if (!groups || !gidx) {
        return nomem(err);
    }
    size_t ng = 0;
    for (size_t i = 0; i < l.n; i++) {
        Types__V1__Series *sr = td_arena_alloc(q->a, sizeof(*sr));
        Types__V1__LabelPair **lp = td_arena_alloc(q->a, (ngroup + 1) * sizeof(*lp));
        if (!sr || !lp) {
            return nomem(err);
        }
        types__v1__series__init(sr);
        sr->labels = lp;
        for (size_t k = 0; k < ngroup; k++) {
            const char *v = label_get(&l.v[i], group_by[k]);
            if (!v) {
                continue;
            }
            Types__V1__LabelPair *p = td_arena_alloc(q->a, sizeof(*p));
            if (!p) {
                return nomem(err);
            }
            types__v1__label_pair__init(p);
            p->name = group_by[k];
            p->value = (char *)v;
            sr->labels[sr->n_labels++] = p;
        }
        size_t g = ng;
        for (size_t k = 0; k < ng; k++) {
            if (cmp_series(&groups[k], &sr) == 0) {
                g = k;
                break;
            }
        }
        if (g == ng) {
            groups[ng++] = sr;
        }
        gidx[i] = g;
    }
    series_acc acc = {.start = m->start, .end = m->end, .step = step};
    acc.points = td_calloc(ng ? ng : 1, sizeof(*acc.points));
    if (!acc.points) {
        return nomem(err);
    }
    for (size_t t = 0; t < q->ts.n && st == TD_OK; t++) {
        u64map_free(&acc.group);
        size_t nids = 0;
        uint64_t *ids = td_arena_alloc(q->a, (l.n ? l.n : 1) * sizeof(*ids));
        if (!ids) {
            st = nomem(err);
            break;
        }
        for (size_t i = 0; i < l.n; i++) {
            if (l.v[i].tenant != t) {
                continue;
            }
            ids[nids++] = l.v[i].id;
            int64_t *g = u64map_slot(&acc.group, l.v[i].id, NULL);
            if (!g) {
                st = nomem(err);
                break;
            }
            *g = (int64_t)gidx[i];
        }
        if (st != TD_OK || !nids) {
            continue;
        }
        td_pvisit v = {.profile = m->ncall_site ? on_profile_any : on_series_profile,
                       .sample = m->ncall_site ? on_series_sample : NULL,
                       .ud = &acc};
        acc.nents = 0;
        st = td_pstore_select(q->p->ps, q->ts.names[t], ids, nids, m->start, m->end, &v, err);
        if (st == TD_OK && acc.nomem) {
            st = nomem(err);
        }
        if (st == TD_OK && m->ncall_site) {
            st = series_call_site(q, m, t, &acc, err);
        }
    }
    td_free(acc.ents);
    u64map_free(&acc.group);
    group *gs = st == TD_OK ? td_arena_alloc(q->a, (ng ? ng : 1) * sizeof(*gs)) : NULL;
    if (st == TD_OK && !gs) {
        st = nomem(err);
    }
    size_t nkept = 0;
    for (size_t g = 0; st == TD_OK && g < ng; g++) {
        u64map *pm = &acc.points[g];
        if (!pm->n) {
            continue; /* no profile in range */
        }
        int64_t *ks = td_arena_alloc(q->a, pm->n * sizeof(*ks));
        Types__V1__Point **pts = td_arena_alloc(q->a, pm->n * sizeof(*pts));
        if (!ks || !pts) {
            st = nomem(err);
            break;
        }
        size_t nk = 0;
        for (size_t i = 0; i < pm->cap; i++) {
            if (pm->used[i]) {
                ks[nk++] = (int64_t)pm->k[i];
            }
        }
        qsort(ks, nk, sizeof(*ks), cmp_i64);
        double total = 0;
        for (size_t i = 0; i < nk; i++) {
            Types__V1__Point *p = td_arena_alloc(q->a, sizeof(*p));
            if (!p) {
                st = nomem(err);
                break;
            }
            types__v1__point__init(p);
            p->timestamp = m->start + ks[i] * step;
            p->value = (double)*u64map_get(pm, (uint64_t)ks[i]);
            total += p->value;
            pts[i] = p;
        }
        groups[g]->points = pts;
        groups[g]->n_points = nk;
        gs[nkept++] = (group){.s = groups[g], .total = total};
    }
    for (size_t g = 0; g < ng; g++) {
        u64map_free(&acc.points[g]);
    }
    td_free(acc.points);
    if (st != TD_OK) {
        return st;
    }
    if (limit > 0 && (size_t)limit < nkept) {
        qsort(gs, nkept, sizeof(*gs), cmp_group_total);
        nkept = (size_t)limit;
    }
    Types__V1__Series **res = td_arena_alloc(q->a, (nkept ? nkept : 1) * sizeof(*res));
    if (!res) {
        return nomem(err);
    }
    for (size_t i = 0; i < nkept; i++) {
        res[i] = gs[i].s;
    }
    qsort(res, nkept, sizeof(*res), cmp_series);
    *out = res;
    *nout = nkept;
    return TD_OK;
}

H(h_select_series)
{
    const Querier__V1__SelectSeriesRequest *in = (const void *)in_;
    qctx q;
    mq m;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK ||
        mq_init(&q, &m, in->profile_typeid, in->label_selector, in->start, in->end, err) != TD_OK) {
        return err->code;
    }
    mq_call_site(q.a, &m, in->stack_trace_selector);
    NEW(Querier__V1__SelectSeriesResponse, querier__v1__select_series_response__init, out);
    if (select_series(&q, &m, in->group_by, in->n_group_by, in->step, in->limit, &out->series,
                      &out->n_series, err) != TD_OK) {
        return err->code;
    }
    *out_ = &out->base;
    return TD_OK;
}

/* ---- SelectMergeProfile: a pprof of the selected sample type ---- */

typedef struct pp {
    td_arena *a;
    Google__V1__Profile *p;
    size_t cap_sample, cap_loc, cap_fn, cap_str, cap_map;
    u64map strs; /* string hash -> index + 1 (collisions resolved by scanning) */
    u64map locs; /* (tenant << 48 ^ location id) -> pprof location id */
    u64map fns;  /* hash of (name, system name, file) -> function id */
    u64map maps; /* hash of the mapping file name -> mapping id */
} pp;

static uint64_t hash_str(const char *s, uint64_t h)
{
    h = h ? h : 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return (h ^ 0xff) * 1099511628211ull;
}

/* string_table index of s (interned; collisions of the 64-bit hash probe onward). */
static int64_t pp_str(pp *x, const char *s, td_err *err)
{
    uint64_t h = hash_str(s, 0);
    for (;; h++) {
        bool isnew;
        int64_t *slot = u64map_slot(&x->strs, h, &isnew);
        if (!slot) {
            nomem(err);
            return -1;
        }
        if (!isnew) {
            if (strcmp(x->p->string_table[*slot - 1], s) == 0) {
                return *slot - 1;
            }
            continue;
        }
        if (!agrow(x->a, (void **)&x->p->string_table, &x->cap_str, x->p->n_string_table + 1,
                   sizeof(char *))) {
            nomem(err);
            return -1;
        }
        x->p->string_table[x->p->n_string_table] = (char *)s;
        *slot = (int64_t)++x->p->n_string_table;
        return *slot - 1;
    }
}

static int64_t pp_mapping(pp *x, const char *file, td_err *err)
{
    if (!file || !*file) {
        return 0;
    }
    bool isnew;
    int64_t *slot = u64map_slot(&x->maps, hash_str(file, 7), &isnew);
    if (!slot) {
        nomem(err);
        return -1;
    }
    if (!isnew) {
        return *slot;
    }
    Google__V1__Mapping *mp = td_arena_alloc(x->a, sizeof(*mp));
    int64_t fi = pp_str(x, file, err);
    if (!mp || fi < 0 ||
        !agrow(x->a, (void **)&x->p->mapping, &x->cap_map, x->p->n_mapping + 1, sizeof(mp))) {
        nomem(err);
        return -1;
    }
    google__v1__mapping__init(mp);
    mp->id = x->p->n_mapping + 1;
    mp->filename = fi;
    mp->has_functions = 1;
    x->p->mapping[x->p->n_mapping++] = mp;
    *slot = (int64_t)mp->id;
    return *slot;
}

static int64_t pp_function(pp *x, const td_ploc *l, td_err *err)
{
    const char *name = frame_name(l);
    uint64_t h = hash_str(l->file ? l->file : "",
                          hash_str(l->system_name ? l->system_name : "", hash_str(name, 0)));
    bool isnew;
    int64_t *slot = u64map_slot(&x->fns, h, &isnew);
    if (!slot) {
        nomem(err);
        return -1;
    }
    if (!isnew) {
        return *slot;
    }
    Google__V1__Function *f = td_arena_alloc(x->a, sizeof(*f));
    if (!f || !agrow(x->a, (void **)&x->p->function, &x->cap_fn, x->p->n_function + 1, sizeof(f))) {
        nomem(err);
        return -1;
    }
    google__v1__function__init(f);
    f->id = x->p->n_function + 1;
    f->name = pp_str(x, name, err);
    f->system_name = pp_str(x, l->system_name && *l->system_name ? l->system_name : name, err);
    f->filename = pp_str(x, l->file ? l->file : "", err);
    if (f->name < 0 || f->system_name < 0 || f->filename < 0) {
        return -1;
    }
    x->p->function[x->p->n_function++] = f;
    *slot = (int64_t)f->id;
    return *slot;
}

static td_status pp_stack(void *ud, resolver *r, const uint64_t *locs, size_t n, int64_t value,
                          td_err *err)
{
    pp *x = ud;
    if (!value) {
        return TD_OK;
    }
    Google__V1__Sample *s = td_arena_alloc(x->a, sizeof(*s));
    uint64_t *ids = td_arena_alloc(x->a, (n ? n : 1) * sizeof(*ids));
    int64_t *vals = td_arena_alloc(x->a, sizeof(*vals));
    if (!s || !ids || !vals ||
        !agrow(x->a, (void **)&x->p->sample, &x->cap_sample, x->p->n_sample + 1, sizeof(s))) {
        return nomem(err);
    }
    google__v1__sample__init(s);
    for (size_t i = 0; i < n; i++) {
        bool isnew;
        int64_t *slot = u64map_slot(&x->locs, (uint64_t)r->tenant << 48 ^ locs[i], &isnew);
        if (!slot) {
            return nomem(err);
        }
        if (isnew) {
            size_t idx = 0;
            if (resolve_loc(r, locs[i], &idx, err) != TD_OK) {
                return err->code == TD_NOT_FOUND
                           ? td_err_set(err, TD_CORRUPT, "location %" PRIu64 " is missing", locs[i])
                           : err->code;
            }
            const td_ploc *pl = &r->ploc[idx];
            Google__V1__Location *loc = td_arena_alloc(x->a, sizeof(*loc));
            Google__V1__Line *line = td_arena_alloc(x->a, sizeof(*line));
            Google__V1__Line **lines = td_arena_alloc(x->a, sizeof(*lines));
            if (!loc || !line || !lines ||
                !agrow(x->a, (void **)&x->p->location, &x->cap_loc, x->p->n_location + 1,
                       sizeof(loc))) {
                return nomem(err);
            }
            google__v1__location__init(loc);
            google__v1__line__init(line);
            int64_t fid = pp_function(x, pl, err);
            int64_t mid = pp_mapping(x, pl->mapping, err);
            if (fid < 0 || mid < 0) {
                return err->code;
            }
            line->function_id = (uint64_t)fid;
            line->line = pl->line;
            lines[0] = line;
            loc->id = x->p->n_location + 1;
            loc->mapping_id = (uint64_t)mid;
            loc->n_line = 1;
            loc->line = lines;
            x->p->location[x->p->n_location++] = loc;
            *slot = (int64_t)loc->id;
        }
        ids[i] = (uint64_t)*slot;
    }
    s->location_id = ids;
    s->n_location_id = n;
    vals[0] = value;
    s->value = vals;
    s->n_value = 1;
    x->p->sample[x->p->n_sample++] = s;
    return TD_OK;
}

static Google__V1__ValueType *pp_vt(pp *x, const char *type, const char *unit, td_err *err)
{
    Google__V1__ValueType *vt = td_arena_alloc(x->a, sizeof(*vt));
    if (!vt) {
        nomem(err);
        return NULL;
    }
    google__v1__value_type__init(vt);
    vt->type = pp_str(x, type, err);
    vt->unit = pp_str(x, unit, err);
    return vt->type < 0 || vt->unit < 0 ? NULL : vt;
}

static void pp_release(pp *x)
{
    u64map_free(&x->strs);
    u64map_free(&x->locs);
    u64map_free(&x->fns);
    u64map_free(&x->maps);
}

/* Build the merged pprof of m (exported for tracectl through SelectMergeProfile). */
static td_status merge_pprof(qctx *q, const mq *m, Google__V1__Profile **out, td_err *err)
{
    pp x = {.a = q->a};
    x.p = td_arena_alloc(q->a, sizeof(*x.p));
    if (!x.p) {
        return nomem(err);
    }
    google__v1__profile__init(x.p);
    td_status st = TD_OK;
    Google__V1__ValueType **sts = td_arena_alloc(q->a, sizeof(*sts));
    if (!sts || pp_str(&x, "", err) != 0) {
        st = err->code ? err->code : nomem(err);
        goto out;
    }
    sts[0] = pp_vt(&x, m->pt.part[1], m->pt.part[2], err);
    x.p->period_type = pp_vt(&x, m->pt.part[3], m->pt.part[4], err);
    if (!sts[0] || !x.p->period_type) {
        st = err->code;
        goto out;
    }
    x.p->sample_type = sts;
    x.p->n_sample_type = 1;
    x.p->time_nanos = m->start * 1000000;
    x.p->duration_nanos = (m->end - m->start) * 1000000;
    st = merge(q, m, pp_stack, &x, err);
out:
    pp_release(&x);
    if (st == TD_OK) {
        *out = x.p;
    }
    return st;
}

H(h_select_merge_profile)
{
    const Querier__V1__SelectMergeProfileRequest *in = (const void *)in_;
    qctx q;
    mq m;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK ||
        mq_init(&q, &m, in->profile_typeid, in->label_selector, in->start, in->end, err) != TD_OK ||
        filt_parse(q.a, NULL, 0, in->trace_id_selector, in->n_trace_id_selector, &m.f, err) !=
            TD_OK) {
        return err->code;
    }
    if (in->max_nodes < 0 || in->max_nodes > TD_FG_MAX_MAX_NODES) {
        int64_t dummy;
        return max_nodes_of(in->max_nodes, &dummy, err);
    }
    mq_call_site(q.a, &m, in->stack_trace_selector);
    Google__V1__Profile *p = NULL;
    if (merge_pprof(&q, &m, &p, err) != TD_OK) {
        return err->code;
    }
    *out_ = &p->base;
    return TD_OK;
}

H(h_profile_stats)
{
    (void)in_;
    qctx q;
    if (qctx_init(&q, ud, call->req->org_id, call->arena, err) != TD_OK) {
        return err->code;
    }
    NEW(Types__V1__GetProfileStatsResponse, types__v1__get_profile_stats_response__init, out);
    for (size_t t = 0; t < q.ts.n; t++) {
        bool any;
        int64_t lo, hi;
        if (td_pstore_stats(q.p->ps, q.ts.names[t], &any, &lo, &hi, err) != TD_OK) {
            return err->code;
        }
        if (!any) {
            continue;
        }
        if (!out->data_ingested || lo < out->oldest_profile_time) {
            out->oldest_profile_time = lo;
        }
        if (!out->data_ingested || hi > out->newest_profile_time) {
            out->newest_profile_time = hi;
        }
        out->data_ingested = 1;
    }
    *out_ = &out->base;
    return TD_OK;
}

#define QS "/querier.v1.QuerierService/"
const td_connect_method td__pyro_methods[] = {
    {QS "ProfileTypes", &querier__v1__profile_types_request__descriptor,
     &querier__v1__profile_types_response__descriptor, h_profile_types},
    {QS "LabelNames", &types__v1__label_names_request__descriptor,
     &types__v1__label_names_response__descriptor, h_label_names},
    {QS "LabelValues", &types__v1__label_values_request__descriptor,
     &types__v1__label_values_response__descriptor, h_label_values},
    {QS "Series", &querier__v1__series_request__descriptor,
     &querier__v1__series_response__descriptor, h_series},
    {QS "SelectMergeStacktraces", &querier__v1__select_merge_stacktraces_request__descriptor,
     &querier__v1__select_merge_stacktraces_response__descriptor, h_select_merge_stacktraces},
    {QS "SelectMergeSpanProfile", &querier__v1__select_merge_span_profile_request__descriptor,
     &querier__v1__select_merge_span_profile_response__descriptor, h_select_merge_span_profile},
    {QS "SelectMergeProfile", &querier__v1__select_merge_profile_request__descriptor,
     &google__v1__profile__descriptor, h_select_merge_profile},
    {QS "SelectSeries", &querier__v1__select_series_request__descriptor,
     &querier__v1__select_series_response__descriptor, h_select_series},
    {QS "Diff", &querier__v1__diff_request__descriptor, &querier__v1__diff_response__descriptor,
     h_diff},
    {QS "GetProfileStats", &types__v1__get_profile_stats_request__descriptor,
     &types__v1__get_profile_stats_response__descriptor, h_profile_stats},
    {QS "SelectHeatmap", &types__v1__get_profile_stats_request__descriptor,
     &types__v1__get_profile_stats_response__descriptor, NULL},
    {QS "AnalyzeQuery", &querier__v1__analyze_query_request__descriptor,
     &types__v1__get_profile_stats_response__descriptor, NULL},
};
const size_t td__pyro_nmethods = sizeof(td__pyro_methods) / sizeof(td__pyro_methods[0]);

/* ---- legacy HTTP routes (§6.5) ---- */

static void legacy_error(td__pyro_reply *rp, td_status st, const char *msg)
{
    td_connect_code c = td_connect_code_of(st);
    rp->status = td_connect_code_http(c);
    rp->ctype = "application/json";
    td_buf_reset(rp->body);
    td_connect_error_json(rp->body, c, msg);
}

/*
 * Pyroscope's attime: "now", "now-1h" (s, m, h, d, w), or digits (after dropping
 * '_', ',' and spaces) whose count says the unit: 13 ms, 16 µs, 19 ns, 8 = YYYYMMDD,
 * anything else seconds. Milliseconds; false when unparsable.
 */
static bool parse_attime(const char *s, int64_t now, int64_t *out)
{
    char d[40];
    size_t n = 0;
    for (; *s && n + 1 < sizeof(d); s++) {
        if (*s != '_' && *s != ',' && *s != ' ') {
            d[n++] = *s;
        }
    }
    d[n] = '\0';
    if (n >= 3 && d[0] == 'n' && d[1] == 'o' && d[2] == 'w') {
        if (!d[3]) {
            *out = now;
            return true;
        }
        if (d[3] != '-' && d[3] != '+') {
            return false;
        }
        char *end;
        long long v = strtoll(d + 4, &end, 10);
        int64_t mul = 0;
        if (end == d + 4 || v < 0 || end[0] == '\0' || end[1] != '\0') {
            return false;
        }
        switch (*end) {
        case 's':
            mul = 1000;
            break;
        case 'm':
            mul = 60 * 1000;
            break;
        case 'h':
            mul = 3600 * 1000;
            break;
        case 'd':
            mul = DAY_MS;
            break;
        case 'w':
            mul = 7 * DAY_MS;
            break;
        default:
            return false;
        }
        if (v > 1000000000LL) {
            return false;
        }
        *out = d[3] == '-' ? now - v * mul : now + v * mul;
        return true;
    }
    if (!n || n > 19) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9') {
            return false;
        }
    }
    long long v = strtoll(d, NULL, 10);
    switch (n) {
    case 8: {
        struct tm tm = {0};
        tm.tm_year = (int)(v / 10000) - 1900;
        tm.tm_mon = (int)(v / 100 % 100) - 1;
        tm.tm_mday = (int)(v % 100);
        *out = (int64_t)timegm(&tm) * 1000;
        return true;
    }
    case 13:
        *out = v;
        return true;
    case 16:
        *out = v / 1000;
        return true;
    case 19:
        *out = v / 1000000;
        return true;
    default:
        *out = v * 1000;
        return true;
    }
}

static td_status legacy_range(td__pyro_arg_fn arg, void *ck, const char *from_k,
                              const char *until_k, int64_t *from, int64_t *until, td_err *err)
{
    int64_t now = now_ms();
    const char *f = arg(ck, from_k), *u = arg(ck, until_k);
    if (!f || !*f) {
        *from = now - 3600 * 1000;
    } else if (!parse_attime(f, now, from)) {
        return td_err_set(err, TD_INVALID, "%s: cannot parse \"%.64s\"", from_k, f);
    }
    if (!u || !*u) {
        *until = now;
    } else if (!parse_attime(u, now, until)) {
        return td_err_set(err, TD_INVALID, "%s: cannot parse \"%.64s\"", until_k, u);
    }
    if (*until < *from) {
        return td_err_set(err, TD_INVALID, "%s must not be before %s", until_k, from_k);
    }
    return TD_OK;
}

/* The profile type named in the metric position of a render query. */
static td_status legacy_query(qctx *q, const char *query, mq *m, int64_t from, int64_t until,
                              td_err *err)
{
    if (!query || !*query) {
        return td_err_set(err, TD_INVALID, "\"query\" is required");
    }
    td_pselector sel;
    if (td_pselector_parse(query, strlen(query), q->a, &sel, err) != TD_OK) {
        return err->code;
    }
    const char *pt = sel.profile_type;
    td_pselector_release(&sel);
    if (!pt || !*pt) {
        return td_err_set(err, TD_INVALID, "\"query\" must contain a profile-type selection");
    }
    if (mq_init(q, m, pt, query, from, until, err) != TD_OK) {
        return err->code;
    }
    return TD_OK;
}

static void fb_levels(td_json *j, Querier__V1__Level *const *lv, size_t n)
{
    td_json_begin_array(j);
    for (size_t i = 0; i < n; i++) {
        td_json_begin_array(j);
        for (size_t k = 0; k < lv[i]->n_values; k++) {
            td_json_int(j, lv[i]->values[k]);
        }
        td_json_end_array(j);
    }
    td_json_end_array(j);
}

static void fb_names(td_json *j, char *const *names, size_t n)
{
    td_json_begin_array(j);
    for (size_t i = 0; i < n; i++) {
        td_json_string(j, names[i]);
    }
    td_json_end_array(j);
}

static void fb_metadata(td_json *j, const ptype *pt, const char *format)
{
    const char *st = pt->part[1], *units = pt->part[2];
    int64_t rate = 100;
    if (!strcmp(st, "inuse_objects") || !strcmp(st, "alloc_objects") || !strcmp(st, "goroutine") ||
        !strcmp(st, "samples")) {
        units = "objects";
    } else if (!strcmp(st, "cpu")) {
        units = "samples";
        rate = 1000000000;
    }
    td_json_key(j, "metadata");
    td_json_begin_object(j);
    td_json_key(j, "format");
    td_json_string(j, format);
    td_json_key(j, "spyName");
    td_json_string(j, "");
    td_json_key(j, "sampleRate");
    td_json_int(j, rate);
    td_json_key(j, "units");
    td_json_string(j, units);
    td_json_key(j, "name");
    td_json_string(j, st);
    td_json_end_object(j);
}

/* Timeline step: (until - from) / 1500 rounded up to whole seconds, at least 15 s. */
static int64_t timeline_step_s(int64_t from, int64_t until)
{
    int64_t s = ((until - from) / 1500 + 999) / 1000;
    return s < 15 ? 15 : s;
}

void td__pyro_render(td__pyro *p, const char *org_id, td__pyro_arg_fn arg, void *cookie,
                     td__pyro_reply *rp)
{
    td_arena a;
    td_arena_init(&a, 64 * 1024, (size_t)1 << 30);
    td_err err;
    td_err_init(&err);
    qctx q;
    mq m;
    int64_t from, until, maxn = TD_FG_DEFAULT_MAX_NODES;
    const char *mn = arg(cookie, "max-nodes");
    if (!mn) {
        mn = arg(cookie, "maxNodes");
    }
    const char *fmt = arg(cookie, "format");
    const char *group_by = arg(cookie, "groupBy");
    if (qctx_init(&q, p, org_id, &a, &err) != TD_OK ||
        legacy_range(arg, cookie, "from", "until", &from, &until, &err) != TD_OK ||
        legacy_query(&q, arg(cookie, "query"), &m, from, until, &err) != TD_OK) {
        legacy_error(rp, err.code, err.msg);
        goto out;
    }
    if (mn && *mn) {
        char *end;
        long long v = strtoll(mn, &end, 10);
        if (*end || max_nodes_of(v, &maxn, &err) != TD_OK) {
            legacy_error(rp, TD_INVALID, err.msg[0] ? err.msg : "maxNodes: not a number");
            goto out;
        }
    }
    bool dot = fmt && strcmp(fmt, "dot") == 0;
    if (fmt && *fmt && !dot && strcmp(fmt, "json") != 0) {
        legacy_error(rp, TD_INVALID, "unsupported format (json or dot)");
        goto out;
    }
    td__fg *t = td__fg_new(q.a);
    Querier__V1__FlameGraph *fg = NULL;
    if (!t) {
        legacy_error(rp, TD_NOMEM, "query too large");
        goto out;
    }
    if (merge_fg(&q, &m, t, 0, &err) != TD_OK) {
        legacy_error(rp, err.code, err.msg);
        goto out;
    }
    if (dot) {
        td_buf_reset(rp->body);
        if (td__fg_dot(t, mn && *mn ? maxn : 100, m.pt.id, q.a, rp->body, &err) != TD_OK) {
            legacy_error(rp, err.code, err.msg);
            goto out;
        }
        rp->status = 200;
        rp->ctype = "text/plain; charset=utf-8";
        goto out;
    }
    if (td__fg_flamegraph(t, maxn, q.a, &fg, &err) != TD_OK) {
        legacy_error(rp, err.code, err.msg);
        goto out;
    }
    int64_t step = timeline_step_s(from, until);
    char *gb = group_by && *group_by ? (char *)group_by : NULL;
    Types__V1__Series **ser = NULL;
    size_t nser = 0;
    if (select_series(&q, &m, gb ? &gb : NULL, gb ? 1 : 0, (double)step, 0, &ser, &nser, &err) !=
        TD_OK) {
        legacy_error(rp, err.code, err.msg);
        goto out;
    }
    int64_t start_s = (from / 1000) - (from / 1000) % step;
    int64_t nsamples = ((until / 1000) - start_s + step - 1) / step;
    if (nsamples < 1) {
        nsamples = 1;
    }
    if (nsamples > 100000) {
        nsamples = 100000;
    }
    double *tl = td_arena_calloc(q.a, (size_t)nsamples * (nser + 1), sizeof(double));
    if (!tl) {
        legacy_error(rp, TD_NOMEM, "query too large");
        goto out;
    }
    /* row 0: all series; row 1 + i: series i (groups) */
    for (size_t i = 0; i < nser; i++) {
        for (size_t k = 0; k < ser[i]->n_points; k++) {
            /* a point at t covers (t - step, t]: it belongs to the bucket holding t - 1 ms */
            int64_t idx = ((ser[i]->points[k]->timestamp - 1) / 1000 - start_s) / step;
            if (idx >= nsamples) {
                idx = nsamples - 1;
            }
            if (idx >= 0) {
                tl[idx] += ser[i]->points[k]->value;
                tl[(size_t)nsamples * (i + 1) + (size_t)idx] += ser[i]->points[k]->value;
            }
        }
    }
    rp->status = 200;
    rp->ctype = "application/json";
    td_buf_reset(rp->body);
    td_json j;
    td_json_init(&j, rp->body);
    td_json_begin_object(&j);
    td_json_key(&j, "version");
    td_json_int(&j, 1);
    td_json_key(&j, "flamebearer");
    td_json_begin_object(&j);
    td_json_key(&j, "names");
    fb_names(&j, fg->names, fg->n_names);
    td_json_key(&j, "levels");
    fb_levels(&j, fg->levels, fg->n_levels);
    td_json_key(&j, "numTicks");
    td_json_int(&j, fg->total);
    td_json_key(&j, "maxSelf");
    td_json_int(&j, fg->max_self);
    td_json_end_object(&j);
    fb_metadata(&j, &m.pt, "single");
    for (size_t row = 0; row <= (gb ? nser : 0); row++) {
        if (row == 1) {
            td_json_key(&j, "groups");
            td_json_begin_object(&j);
        }
        if (row >= 1) {
            const char *v = ser[row - 1]->n_labels ? ser[row - 1]->labels[0]->value : "*";
            td_json_key(&j, v);
        } else {
            td_json_key(&j, "timeline");
        }
        td_json_begin_object(&j);
        td_json_key(&j, "startTime");
        td_json_int(&j, start_s);
        td_json_key(&j, "samples");
        td_json_begin_array(&j);
        for (int64_t k = 0; k < nsamples; k++) {
            td_json_int(&j, (int64_t)llround(tl[(size_t)nsamples * row + (size_t)k]));
        }
        td_json_end_array(&j);
        td_json_key(&j, "durationDelta");
        td_json_int(&j, step);
        td_json_key(&j, "watermarks");
        td_json_null(&j);
        td_json_end_object(&j);
    }
    if (gb && nser) {
        td_json_end_object(&j);
    } else {
        td_json_key(&j, "groups");
        td_json_null(&j);
    }
    td_json_key(&j, "heatmap");
    td_json_null(&j);
    td_json_end_object(&j);
out:
    td_arena_release(&a);
}

void td__pyro_render_diff(td__pyro *p, const char *org_id, td__pyro_arg_fn arg, void *cookie,
                          td__pyro_reply *rp)
{
    td_arena a;
    td_arena_init(&a, 64 * 1024, (size_t)1 << 30);
    td_err err;
    td_err_init(&err);
    qctx q;
    mq l, r;
    int64_t lf, lu, rf, ru;
    if (qctx_init(&q, p, org_id, &a, &err) != TD_OK ||
        legacy_range(arg, cookie, "leftFrom", "leftUntil", &lf, &lu, &err) != TD_OK ||
        legacy_range(arg, cookie, "rightFrom", "rightUntil", &rf, &ru, &err) != TD_OK ||
        legacy_query(&q, arg(cookie, "leftQuery"), &l, lf, lu, &err) != TD_OK ||
        legacy_query(&q, arg(cookie, "rightQuery"), &r, rf, ru, &err) != TD_OK) {
        legacy_error(rp, err.code, err.msg);
        goto out;
    }
    if (strcmp(l.pt.id, r.pt.id) != 0) {
        legacy_error(rp, TD_INVALID, "left and right queries must have the same profile type");
        goto out;
    }
    td__fg *t = td__fg_new(q.a);
    Querier__V1__FlameGraphDiff *fg = NULL;
    if (!t) {
        legacy_error(rp, TD_NOMEM, "query too large");
        goto out;
    }
    if (merge_fg(&q, &l, t, 0, &err) != TD_OK || merge_fg(&q, &r, t, 1, &err) != TD_OK ||
        td__fg_diff(t, TD_FG_DEFAULT_MAX_NODES, q.a, &fg, &err) != TD_OK) {
        legacy_error(rp, err.code, err.msg);
        goto out;
    }
    rp->status = 200;
    rp->ctype = "application/json";
    td_buf_reset(rp->body);
    td_json j;
    td_json_init(&j, rp->body);
    td_json_begin_object(&j);
    td_json_key(&j, "version");
    td_json_int(&j, 1);
    td_json_key(&j, "flamebearer");
    td_json_begin_object(&j);
    td_json_key(&j, "names");
    fb_names(&j, fg->names, fg->n_names);
    td_json_key(&j, "levels");
    fb_levels(&j, fg->levels, fg->n_levels);
    td_json_key(&j, "numTicks");
    td_json_int(&j, fg->total);
    td_json_key(&j, "maxSelf");
    td_json_int(&j, fg->max_self);
    td_json_end_object(&j);
    fb_metadata(&j, &l.pt, "double");
    td_json_key(&j, "leftTicks");
    td_json_int(&j, fg->leftticks);
    td_json_key(&j, "rightTicks");
    td_json_int(&j, fg->rightticks);
    td_json_key(&j, "timeline");
    td_json_null(&j);
    td_json_key(&j, "groups");
    td_json_null(&j);
    td_json_key(&j, "heatmap");
    td_json_null(&j);
    td_json_end_object(&j);
out:
    td_arena_release(&a);
}

void td__pyro_label_values(td__pyro *p, const char *org_id, td__pyro_arg_fn arg, void *cookie,
                           td__pyro_reply *rp)
{
    td_arena a;
    td_arena_init(&a, 64 * 1024, (size_t)1 << 30);
    td_err err;
    td_err_init(&err);
    qctx q;
    const char *label = arg(cookie, "label");
    if (qctx_init(&q, p, org_id, &a, &err) != TD_OK) {
        legacy_error(rp, err.code, err.msg);
        goto out;
    }
    if (!label || strcmp(label, "__name__") != 0) {
        legacy_error(rp, TD_INVALID, "only label=__name__ is supported");
        goto out;
    }
    sels s = {0};
    slist l;
    if (list_series(&q, &s, 0, 0, &l, &err) != TD_OK) {
        legacy_error(rp, err.code, err.msg);
        goto out;
    }
    const char **ids = td_arena_alloc(q.a, (l.n ? l.n : 1) * sizeof(*ids));
    if (!ids) {
        legacy_error(rp, TD_NOMEM, "query too large");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++) {
        const char *v = label_get(&l.v[i], "__profile_type__");
        if (v && *v) {
            ids[n++] = v;
        }
    }
    n = uniq_sorted(ids, n);
    rp->status = 200;
    rp->ctype = "application/json";
    td_buf_reset(rp->body);
    td_json j;
    td_json_init(&j, rp->body);
    fb_names(&j, (char *const *)ids, n);
out:
    td_arena_release(&a);
}
