/*
 * tempo_search.c - GET /api/search (API-CONTRACT §3.5), first slice.
 *
 * Candidates come from the store's per-fragment summary records ('S',
 * store/FORMAT.md) of the time window, newest minute bucket first, merged per
 * trace ID. Each candidate (at most max_traces of them) is skipped cheaply when
 * its summary contradicts a TraceQL hint (status = error without any error
 * span seen, a different root service or root name, a trace already longer than
 * a traceDuration upper bound), else loaded whole with the trace-by-ID assembly
 * and evaluated with the TraceQL engine. The scan stops once `limit` traces
 * matched; those are sorted by start time, newest first. The order is therefore
 * "newest bucket first", an approximation of Tempo's global newest-first.
 *
 * When the query has hints the secondary index can answer exactly (service,
 * span name, status, kind, root name/service, span or resource attribute
 * equality, span duration lower bounds), candidates come from the index
 * instead: each such hint is looked up (td_store_index_traces), the smallest
 * complete answer is kept and intersected with the other complete ones. Any
 * lookup that is inexact or hits its bound drops that hint; with none left the
 * summary scan runs as before.
 *
 * Known approximations of this slice: a trace is found only when one of its
 * fragments starts inside the window's minute buckets; the status=error skip
 * looks only at the summaries in the window. Through the index, the fragment
 * that has to start in the window is one holding the hinted value, and a
 * candidate's bucket is that fragment's minute: for a trace whose fragments
 * span several minutes at the window's edges, or when the limit cuts a minute,
 * the two paths can differ.
 */
#include "api/json.h"
#include "api/logfmt.h"
#include "api/tempo.h"
#include "api/traceql/traceql.h"
#include "core/mem.h"
#include "store/store.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEARCH_MAX_LIMIT 262144
#define SEARCH_MAX_SPSS 100
#define NO_ROOT_SERVICE "<root span not yet received>"

/* ---- parameters ---- */

static td_status parse_uint(const char *name, const char *s, uint64_t max, uint64_t *out,
                            td_err *err)
{
    const char *p = s;
    bool ok = *p != '\0';
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            ok = false;
        }
    }
    errno = 0;
    unsigned long long v = ok ? strtoull(s, NULL, 10) : 0;
    if (!ok || errno == ERANGE || v > max) {
        return td_err_set(err, TD_INVALID, "invalid %s: %.64s is not a number up to %llu", name, s,
                          (unsigned long long)max);
    }
    *out = v;
    return TD_OK;
}

/* Go's time.ParseDuration; a minimum/maximum duration is never negative, so '-' is refused. */
static td_status parse_go_duration(const char *name, const char *s, uint64_t *out, td_err *err)
{
    int64_t ns;
    if (*s == '-' || !td__tempo_parse_go_duration(s, &ns)) {
        return td_err_set(err, TD_INVALID, "invalid %s: time: invalid duration \"%.64s\"", name, s);
    }
    *out = (uint64_t)ns;
    return TD_OK;
}

static bool absent(const char *s)
{
    return !s || !*s;
}

/* ---- candidates ---- */

typedef struct cand_set {
    td__cand *c;
    size_t n, cap;
    int32_t *slots; /* indices into c, -1 empty */
    size_t nslots;
    size_t max;
    bool truncated; /* stopped at max */
    td_arena *a;
    bool oom;
} cand_set;

static uint64_t id_hash(const uint8_t id[16])
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++) {
        h = (h ^ id[i]) * 1099511628211ull;
    }
    return h;
}

static void slots_rebuild(cand_set *cs, size_t nslots)
{
    td_free(cs->slots);
    cs->slots = td_xmalloc(nslots * sizeof(*cs->slots));
    memset(cs->slots, 0xff, nslots * sizeof(*cs->slots));
    cs->nslots = nslots;
    for (size_t i = 0; i < cs->n; i++) {
        size_t j = id_hash(cs->c[i].id) & (nslots - 1);
        while (cs->slots[j] >= 0) {
            j = (j + 1) & (nslots - 1);
        }
        cs->slots[j] = (int32_t)i;
    }
}

static char *arena_strndup(td_arena *a, const char *s, size_t n)
{
    char *p = td_arena_alloc(a, n + 1);
    if (p) {
        if (n) {
            memcpy(p, s, n);
        }
        p[n] = '\0';
    }
    return p;
}

static bool on_summary(void *ud, const td_store_summary *sum)
{
    cand_set *cs = ud;
    if (cs->n * 2 >= cs->nslots) {
        slots_rebuild(cs, cs->nslots ? cs->nslots * 2 : 1024);
    }
    size_t j = id_hash(sum->trace_id) & (cs->nslots - 1);
    td__cand *c = NULL;
    while (cs->slots[j] >= 0) {
        td__cand *x = &cs->c[cs->slots[j]];
        if (memcmp(x->id, sum->trace_id, 16) == 0) {
            c = x;
            break;
        }
        j = (j + 1) & (cs->nslots - 1);
    }
    if (!c) {
        if (cs->n >= cs->max) {
            cs->truncated = true;
            return false;
        }
        if (cs->n == cs->cap) {
            cs->cap = cs->cap ? cs->cap * 2 : 256;
            cs->c = td_xrealloc(cs->c, cs->cap * sizeof(*cs->c));
        }
        c = &cs->c[cs->n];
        memset(c, 0, sizeof(*c));
        memcpy(c->id, sum->trace_id, 16);
        c->start_ns = sum->start_ns;
        c->end_ns = sum->end_ns;
        c->bucket = sum->start_ns / 60000000000ull;
        c->summarized = true;
        cs->slots[j] = (int32_t)cs->n++;
    }
    if (sum->start_ns < c->start_ns) {
        c->start_ns = sum->start_ns;
    }
    if (sum->end_ns > c->end_ns) {
        c->end_ns = sum->end_ns;
    }
    c->nerrors += sum->nerrors;
    if (sum->has_root && !c->has_root) {
        c->root_service = arena_strndup(cs->a, sum->root_service, sum->root_service_len);
        c->root_name = arena_strndup(cs->a, sum->root_name, sum->root_name_len);
        if (!c->root_service || !c->root_name) {
            cs->oom = true;
            return false;
        }
        c->has_root = true;
    }
    return true;
}

/* Whether the summary alone proves the trace cannot match (see the file comment). */
bool td__cand_skip(const td__cand *c, const td_traceql_hint *h, size_t nh)
{
    if (!c->summarized) {
        return false;
    }
    for (size_t i = 0; i < nh; i++) {
        const td_traceql_hint *x = &h[i];
        switch (x->field) {
        case TD_TRACEQL_HINT_STATUS:
            if (x->op == TD_TRACEQL_OP_EQ && x->value.type == TD_TRACEQL_STATUS &&
                x->value.i == 2 && c->nerrors == 0) {
                return true;
            }
            break;
        case TD_TRACEQL_HINT_ROOT_SERVICE:
        case TD_TRACEQL_HINT_ROOT_NAME:
            if (c->has_root && x->op == TD_TRACEQL_OP_EQ && x->value.type == TD_TRACEQL_STRING) {
                const char *have =
                    x->field == TD_TRACEQL_HINT_ROOT_NAME ? c->root_name : c->root_service;
                if (strlen(have) != x->value.s.len ||
                    memcmp(have, x->value.s.ptr, x->value.s.len) != 0) {
                    return true;
                }
            }
            break;
        case TD_TRACEQL_HINT_TRACE_DURATION: {
            /* the summaries give a lower bound of the trace duration */
            if (x->value.type != TD_TRACEQL_DURATION || x->value.i < 0) {
                break;
            }
            uint64_t lb = c->end_ns - c->start_ns, v = (uint64_t)x->value.i;
            if ((x->op == TD_TRACEQL_OP_LT && lb >= v) ||
                ((x->op == TD_TRACEQL_OP_LTE || x->op == TD_TRACEQL_OP_EQ) && lb > v)) {
                return true;
            }
            break;
        }
        default:
            break;
        }
    }
    return false;
}

/* ---- candidates from the secondary index ---- */

/* One td_store_index_traces call: key, type and the [lo, hi] value range. */
typedef struct idx_lookup {
    uint8_t scope, type;
    const char *key;
    size_t key_len;
    uint8_t lo[8], hi[8]; /* fixed-width bounds; strings use str/str_len */
    size_t lo_len, hi_len;
    const char *str;
} idx_lookup;

#define IDX_LOOKUPS_MAX 8
#define IDX_SETS_MAX 8
#define F64_EXACT_INT 9007199254740992.0 /* 2^53: doubles beyond it skip integers */

static void lk_str(idx_lookup *l, uint8_t scope, uint8_t type, const char *key, const char *v,
                   size_t len)
{
    memset(l, 0, sizeof(*l));
    l->scope = scope;
    l->type = type;
    l->key = key;
    l->key_len = strlen(key);
    l->str = v;
    l->lo_len = l->hi_len = len;
}

static void lk_int(idx_lookup *l, uint8_t scope, const char *key, int64_t lo, int64_t hi)
{
    memset(l, 0, sizeof(*l));
    l->scope = scope;
    l->type = TD_IDX_INT;
    l->key = key;
    l->key_len = strlen(key);
    td_idx_put_int(l->lo, lo);
    td_idx_put_int(l->hi, hi);
    l->lo_len = l->hi_len = 8;
}

static void lk_float(idx_lookup *l, uint8_t scope, const char *key, double lo, double hi)
{
    memset(l, 0, sizeof(*l));
    l->scope = scope;
    l->type = TD_IDX_FLOAT;
    l->key = key;
    l->key_len = strlen(key);
    td_idx_put_float(l->lo, lo);
    td_idx_put_float(l->hi, hi);
    l->lo_len = l->hi_len = 8;
}

/*
 * The lookups for an ATTR equality on one scope (FORMAT.md encodings). Numbers
 * follow the evaluator's comparison: int against int exactly, anything against
 * a double as doubles. So an int value v also looks for the double (double)v,
 * and a double value d for d and, when integral and within 2^53 (where one
 * integer maps to it), the int. 0 looks for both -0.0 and 0.0 (equal as
 * doubles, different bytes). Returns the number added, or -1 when the value
 * cannot be answered exactly (NaN, or an integral double beyond 2^53).
 */
static int attr_eq_lookups(idx_lookup *out, uint8_t scope, const td_traceql_hint *h)
{
    const td_traceql_value *v = &h->value;
    int n = 0;
    switch (v->type) {
    case TD_TRACEQL_STRING:
        lk_str(&out[n++], scope, TD_IDX_STRING, h->attr, v->s.ptr, v->s.len);
        return n;
    case TD_TRACEQL_BOOL:
        memset(&out[n], 0, sizeof(out[n]));
        out[n].scope = scope;
        out[n].type = TD_IDX_BOOL;
        out[n].key = h->attr;
        out[n].key_len = strlen(h->attr);
        out[n].lo[0] = out[n].hi[0] = v->b ? 1 : 0;
        out[n].lo_len = out[n].hi_len = 1;
        return n + 1;
    case TD_TRACEQL_INT: {
        lk_int(&out[n++], scope, h->attr, v->i, v->i);
        double d = (double)v->i;
        lk_float(&out[n++], scope, h->attr, d, d);
        if (v->i == 0) {
            lk_float(&out[n++], scope, h->attr, -0.0, -0.0);
        }
        return n;
    }
    case TD_TRACEQL_FLOAT: {
        double d = v->f;
        if (isnan(d)) {
            return -1;
        }
        lk_float(&out[n++], scope, h->attr, d, d);
        if (d == 0) {
            lk_float(&out[n++], scope, h->attr, -d, -d);
        }
        if (d == floor(d)) {
            if (fabs(d) > F64_EXACT_INT) {
                return -1;
            }
            lk_int(&out[n++], scope, h->attr, (int64_t)d, (int64_t)d);
        }
        return n;
    }
    default:
        return -1;
    }
}

/*
 * Expand one hint into the index lookups whose union holds every trace the
 * hint admits; 0 when the hint cannot be answered exactly by the index.
 */
static size_t hint_lookups(const td_traceql_hint *h, idx_lookup out[IDX_LOOKUPS_MAX])
{
    static const char *const status_kw[] = {"unset", "ok", "error"};
    static const char *const kind_kw[] = {"unspecified", "internal", "server",
                                          "client",      "producer", "consumer"};
    const td_traceql_value *v = &h->value;
    bool eq = h->op == TD_TRACEQL_OP_EQ;
    switch (h->field) {
    case TD_TRACEQL_HINT_SERVICE:
        if (!eq || v->type != TD_TRACEQL_STRING) {
            return 0;
        }
        lk_str(&out[0], TD_IDX_RESOURCE, TD_IDX_STRING, "service.name", v->s.ptr, v->s.len);
        return 1;
    case TD_TRACEQL_HINT_SPAN_NAME:
    case TD_TRACEQL_HINT_ROOT_NAME:
    case TD_TRACEQL_HINT_ROOT_SERVICE:
        if (!eq || v->type != TD_TRACEQL_STRING) {
            return 0;
        }
        lk_str(&out[0], TD_IDX_INTRINSIC, TD_IDX_STRING,
               h->field == TD_TRACEQL_HINT_SPAN_NAME   ? "name"
               : h->field == TD_TRACEQL_HINT_ROOT_NAME ? "rootName"
                                                       : "rootServiceName",
               v->s.ptr, v->s.len);
        return 1;
    case TD_TRACEQL_HINT_STATUS:
        if (!eq || v->type != TD_TRACEQL_STATUS || v->i < 0 || v->i > 2) {
            return 0;
        }
        lk_str(&out[0], TD_IDX_INTRINSIC, TD_IDX_KEYWORD, "status", status_kw[v->i],
               strlen(status_kw[v->i]));
        return 1;
    case TD_TRACEQL_HINT_KIND:
        if (!eq || v->type != TD_TRACEQL_KIND || v->i < 0 || v->i > 5) {
            return 0;
        }
        lk_str(&out[0], TD_IDX_INTRINSIC, TD_IDX_KEYWORD, "kind", kind_kw[v->i],
               strlen(kind_kw[v->i]));
        return 1;
    case TD_TRACEQL_HINT_DURATION: {
        /* duration > v or >= v: every such span is in v's class or above */
        if ((h->op != TD_TRACEQL_OP_GT && h->op != TD_TRACEQL_OP_GTE) ||
            v->type != TD_TRACEQL_DURATION || v->i < 0) {
            return 0;
        }
        memset(&out[0], 0, sizeof(out[0]));
        out[0].scope = TD_IDX_INTRINSIC;
        out[0].type = TD_IDX_DURCLASS;
        out[0].key = "duration";
        out[0].key_len = strlen("duration");
        out[0].lo[0] = td_idx_durclass((uint64_t)v->i);
        out[0].hi[0] = 64;
        out[0].lo_len = out[0].hi_len = 1;
        return 1;
    }
    case TD_TRACEQL_HINT_ATTR: {
        if (!eq || !h->attr) {
            return 0;
        }
        /* `.key` is the span attribute, else the resource one: look in both */
        bool span = h->scope == TD_TRACEQL_SCOPE_SPAN || h->scope == TD_TRACEQL_SCOPE_NONE;
        bool res = h->scope == TD_TRACEQL_SCOPE_RESOURCE || h->scope == TD_TRACEQL_SCOPE_NONE;
        if (!span && !res) {
            return 0;
        }
        int n = 0, k;
        if (span) {
            if ((k = attr_eq_lookups(out + n, TD_IDX_SPAN, h)) < 0) {
                return 0;
            }
            n += k;
        }
        if (res) {
            if ((k = attr_eq_lookups(out + n, TD_IDX_RESOURCE, h)) < 0) {
                return 0;
            }
            n += k;
        }
        return (size_t)n;
    }
    default:
        return 0;
    }
}

typedef struct idx_hits {
    cand_set *cs;
    uint64_t read;
} idx_hits;

/* A td_index_trace_cb: one candidate per trace, with its newest bucket. */
static bool on_index_hit(void *ud, const uint8_t id[16], uint64_t bucket)
{
    idx_hits *h = ud;
    cand_set *cs = h->cs;
    h->read++;
    if (cs->n * 2 >= cs->nslots) {
        slots_rebuild(cs, cs->nslots ? cs->nslots * 2 : 1024);
    }
    size_t j = id_hash(id) & (cs->nslots - 1);
    while (cs->slots[j] >= 0) {
        td__cand *x = &cs->c[cs->slots[j]];
        if (memcmp(x->id, id, 16) == 0) {
            if (bucket > x->bucket) {
                x->bucket = bucket;
            }
            return true;
        }
        j = (j + 1) & (cs->nslots - 1);
    }
    if (cs->n >= cs->max) {
        cs->truncated = true;
        return false;
    }
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 256;
        cs->c = td_xrealloc(cs->c, cs->cap * sizeof(*cs->c));
    }
    td__cand *c = &cs->c[cs->n];
    memset(c, 0, sizeof(*c));
    memcpy(c->id, id, 16);
    c->bucket = bucket;
    cs->slots[j] = (int32_t)cs->n++;
    return true;
}

static bool cand_set_has(const cand_set *cs, const uint8_t id[16])
{
    if (!cs->nslots) {
        return false;
    }
    for (size_t j = id_hash(id) & (cs->nslots - 1); cs->slots[j] >= 0;
         j = (j + 1) & (cs->nslots - 1)) {
        if (memcmp(cs->c[cs->slots[j]].id, id, 16) == 0) {
            return true;
        }
    }
    return false;
}

/* Newest bucket first; within a bucket descending trace ID, as the summary scan. */
static int cmp_cand_newest(const void *pa, const void *pb)
{
    const td__cand *a = pa, *b = pb;
    if (a->bucket != b->bucket) {
        return a->bucket < b->bucket ? 1 : -1;
    }
    return -memcmp(a->id, b->id, 16);
}

/*
 * Look up one hint's lookups for every tenant into *cs (a fresh cand_set of
 * bound max). *state: 0 complete, 1 stopped by max_scan or max (worth a retry
 * with a larger bound), 2 not answerable (inexact).
 */
static td_status hint_set(td_store *s, const td__tenants *ts, const idx_lookup *lk, size_t nlk,
                          uint64_t start_ns, uint64_t end_ns, uint64_t max, uint64_t max_scan,
                          cand_set *cs, int *state, uint64_t *read, td_err *err)
{
    memset(cs, 0, sizeof(*cs));
    cs->max = max;
    idx_hits hits = {.cs = cs};
    td_status st = TD_OK;
    *state = 0;
    for (size_t t = 0; t < ts->n && !*state && !st; t++) {
        for (size_t k = 0; k < nlk && !*state; k++) {
            const idx_lookup *l = &lk[k];
            const uint8_t *lo = l->str ? (const uint8_t *)l->str : l->lo;
            const uint8_t *hi = l->str ? (const uint8_t *)l->str : l->hi;
            bool exact, trunc;
            st = td_store_index_traces(s, ts->names[t], l->scope, l->key, l->key_len, l->type, lo,
                                       l->lo_len, hi, l->hi_len, start_ns, end_ns, max_scan,
                                       on_index_hit, &hits, &exact, &trunc, err);
            if (st == TD_INVALID) {
                st = TD_OK; /* a key the index cannot hold (too long): not answerable */
                *state = 2;
                break;
            }
            if (st) {
                break;
            }
            *state = !exact ? 2 : (trunc || cs->truncated) ? 1 : 0;
        }
    }
    *read += hits.read;
    if (st || *state) {
        td_free(cs->c);
        td_free(cs->slots);
        memset(cs, 0, sizeof(*cs));
    }
    return st;
}

/* Entries a first lookup of each hint reads at most (see index_candidates). */
#define IDX_PROBE 4096

/*
 * Candidates from the index. *used false (TD_OK) when no hint could be answered
 * completely: the caller then scans the summaries. A hint's answer is complete
 * when every lookup of every tenant is exact, within its entry bound and max
 * distinct traces. Each hint is first looked up with a small bound (1/64 of the
 * full one, at most IDX_PROBE entries), so an unselective hint (status = unset) costs little when a
 * selective one exists; only when none completes are the hints that hit the
 * bound looked up again, in turn, with the full bound (16 x max, as the summary
 * scan), until one completes.
 */
static td_status index_candidates(td_store *s, const td__tenants *ts, const td_traceql_hint *hints,
                                  size_t nhints, uint64_t start_ns, uint64_t end_ns,
                                  uint64_t max, td__cands *out, bool *used, td_err *err)
{
    *used = false;
    cand_set sets[IDX_SETS_MAX];
    size_t nsets = 0;
    uint64_t read = 0;
    uint64_t max_scan = max > UINT64_MAX / 16 ? 0 : max * 16;
    uint64_t probe = max_scan / 64 < IDX_PROBE ? max_scan / 64 : IDX_PROBE;
    probe = max_scan == 0 ? IDX_PROBE : probe ? probe : 1;
    td_status st = TD_OK;
    size_t retry[IDX_SETS_MAX], nretry = 0; /* hints stopped by the probe bound */
    for (size_t i = 0; i < nhints && nsets < IDX_SETS_MAX && !st; i++) {
        idx_lookup lk[IDX_LOOKUPS_MAX];
        size_t nlk = hint_lookups(&hints[i], lk);
        if (nlk == 0) {
            continue;
        }
        int state;
        st = hint_set(s, ts, lk, nlk, start_ns, end_ns, max, probe, &sets[nsets], &state, &read,
                      err);
        if (!st && state == 0) {
            nsets++;
        } else if (!st && state == 1 && nretry < IDX_SETS_MAX) {
            retry[nretry++] = i;
        }
    }
    for (size_t r = 0; !st && nsets == 0 && r < nretry && probe != max_scan; r++) {
        idx_lookup lk[IDX_LOOKUPS_MAX];
        size_t nlk = hint_lookups(&hints[retry[r]], lk);
        int state;
        st = hint_set(s, ts, lk, nlk, start_ns, end_ns, max, max_scan, &sets[0], &state, &read,
                      err);
        nsets = !st && state == 0;
    }
    if (!st && nsets > 0) {
        /* the smallest answer, less what another complete answer rules out */
        size_t best = 0;
        for (size_t i = 1; i < nsets; i++) {
            if (sets[i].n < sets[best].n) {
                best = i;
            }
        }
        cand_set *b = &sets[best];
        size_t w = 0;
        for (size_t i = 0; i < b->n; i++) {
            bool keep = true;
            for (size_t k = 0; k < nsets && keep; k++) {
                keep = k == best || cand_set_has(&sets[k], b->c[i].id);
            }
            if (keep) {
                b->c[w++] = b->c[i];
            }
        }
        if (w > 1) {
            qsort(b->c, w, sizeof(*b->c), cmp_cand_newest);
        }
        out->c = b->c;
        out->n = w;
        out->truncated = false;
        out->scanned = read;
        b->c = NULL;
        *used = true;
    }
    for (size_t i = 0; i < nsets; i++) {
        td_free(sets[i].c);
        td_free(sets[i].slots);
    }
    return st;
}

td_status td__search_candidates(td_store *s, const td__tenants *ts, const td_traceql_hint *hints,
                                size_t nhints, uint64_t start_ns, uint64_t end_ns,
                                uint64_t max_traces, td_arena *a, td__cands *out, td_err *err)
{
    memset(out, 0, sizeof(*out));
    cand_set cs = {.max = max_traces ? max_traces : 20000, .a = a};
    td_status st = TD_OK;
    if (nhints && end_ns >= start_ns) {
        bool used;
        st = index_candidates(s, ts, hints, nhints, start_ns, end_ns, cs.max, out, &used, err);
        if (st || used) {
            return st;
        }
    }
    for (size_t i = 0; i < ts->n && !cs.truncated; i++) {
        uint64_t scanned;
        bool trunc;
        uint64_t max_scan = cs.max > UINT64_MAX / 16 ? 0 : cs.max * 16;
        st = td_store_summaries(s, ts->names[i], start_ns, end_ns, max_scan, on_summary, &cs,
                                &scanned, &trunc, err);
        out->scanned += scanned;
        if (st) {
            break;
        }
        if (trunc) {
            cs.truncated = true;
        }
        if (cs.oom) {
            st = td_err_set(err, TD_NOMEM, "out of memory collecting search candidates");
            break;
        }
    }
    td_free(cs.slots);
    if (st) {
        td_free(cs.c);
        return st;
    }
    out->c = cs.c;
    out->n = cs.n;
    out->truncated = cs.truncated;
    return TD_OK;
}

void td__cands_release(td__cands *cs)
{
    td_free(cs->c);
    memset(cs, 0, sizeof(*cs));
}

/* ---- output ---- */

typedef struct result {
    uint64_t start_ns;
    td_buf json;
} result;

static const char *const status_str[] = {"unset", "ok", "error"};
static const char *const kind_str[] = {"unspecified", "internal", "server",
                                       "client",      "producer", "consumer"};

static void j_value(td_json *j, const td_traceql_value *v)
{
    td_json_begin_object(j);
    switch (v->type) {
    case TD_TRACEQL_STRING:
        td_json_key(j, "stringValue");
        td_json_string_n(j, v->s.ptr, v->s.len);
        break;
    case TD_TRACEQL_INT:
        td_json_key(j, "intValue");
        td_json_int64_str(j, v->i);
        break;
    case TD_TRACEQL_FLOAT:
        td_json_key(j, "doubleValue");
        td_json_double(j, v->f);
        break;
    case TD_TRACEQL_BOOL:
        td_json_key(j, "boolValue");
        td_json_bool(j, v->b);
        break;
    case TD_TRACEQL_DURATION: {
        char buf[40];
        size_t n = td_traceql_format_duration(v->i, buf);
        td_json_key(j, "stringValue");
        td_json_string_n(j, buf, n);
        break;
    }
    case TD_TRACEQL_STATUS:
        td_json_key(j, "stringValue");
        td_json_string(j, v->i >= 0 && v->i <= 2 ? status_str[v->i] : "unset");
        break;
    case TD_TRACEQL_KIND:
        td_json_key(j, "stringValue");
        td_json_string(j, v->i >= 0 && v->i <= 5 ? kind_str[v->i] : "unspecified");
        break;
    default: /* NIL (and OTLP, which j_kv renders itself): an empty value */
        break;
    }
    td_json_end_object(j);
}

static void j_kv(td_json *j, const td_traceql_kv *kv)
{
    td_json_begin_object(j);
    td_json_key(j, "key");
    td_json_string(j, kv->key);
    td_json_key(j, "value");
    if (kv->value.type == TD_TRACEQL_OTLP) {
        td__json_any(j, kv->value.otlp);
    } else {
        j_value(j, &kv->value);
    }
    td_json_end_object(j);
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static const char *span_service(const td_traceql_span *s)
{
    const td_otlp_resource *r = s->resource;
    for (size_t i = 0; r && i < r->n_attributes; i++) {
        const td_otlp_kv *kv = r->attributes[i];
        if (kv->key && strcmp(kv->key, "service.name") == 0 && kv->value &&
            kv->value->value_case ==
                OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
            return kv->value->string_value;
        }
    }
    return "";
}

static td_status j_spanset(td_json *j, const td_traceql_query *q, const td_traceql_trace *tr,
                           const td_traceql_spanset *ss, size_t spss, td_arena *a, td_err *err)
{
    td_json_begin_object(j);
    td_json_key(j, "spans");
    td_json_begin_array(j);
    for (size_t k = 0; k < ss->matched && k < spss; k++) {
        uint32_t idx = ss->spans[k];
        const td_otlp_span *s = tr->spans[idx].span;
        char sid[33];
        uint8_t raw[8] = {0};
        if (s->span_id.len == 8) {
            memcpy(raw, s->span_id.data, 8);
        }
        hex(sid, raw, 8);
        td_json_begin_object(j);
        td_json_key(j, "spanID");
        td_json_string(j, sid);
        td_json_key(j, "name");
        td_json_string(j, s->name ? s->name : "");
        td_json_key(j, "startTimeUnixNano");
        td_json_uint64_str(j, s->start_time_unix_nano);
        td_json_key(j, "durationNanos");
        td_json_uint64_str(j, s->end_time_unix_nano > s->start_time_unix_nano
                                  ? s->end_time_unix_nano - s->start_time_unix_nano
                                  : 0);
        td_traceql_kv *kvs = NULL;
        size_t nkv = 0;
        td_status st = td_traceql_span_attrs(q, tr, idx, a, &kvs, &nkv, err);
        if (st) {
            return st;
        }
        if (nkv) {
            td_json_key(j, "attributes");
            td_json_begin_array(j);
            for (size_t i = 0; i < nkv; i++) {
                j_kv(j, &kvs[i]);
            }
            td_json_end_array(j);
        }
        td_json_end_object(j);
    }
    td_json_end_array(j);
    td_json_key(j, "matched");
    td_json_int(j, (int64_t)ss->matched);
    if (ss->nattrs) {
        td_json_key(j, "attributes");
        td_json_begin_array(j);
        for (size_t i = 0; i < ss->nattrs; i++) {
            if (ss->attrs[i].value.type == TD_TRACEQL_NIL) {
                continue;
            }
            j_kv(j, &ss->attrs[i]);
        }
        td_json_end_array(j);
    }
    td_json_end_object(j);
    return TD_OK;
}

/* ---- protobuf output (tempopb.SearchResponse, API-CONTRACT §3.5) ---- */

static void pb_varint(td_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    td_buf_add(b, tmp, n);
}

static void pb_key(td_buf *b, uint32_t field, uint32_t wt)
{
    pb_varint(b, ((uint64_t)field << 3) | wt);
}

static void pb_bytes(td_buf *b, uint32_t field, const void *p, size_t n)
{
    pb_key(b, field, 2);
    pb_varint(b, n);
    td_buf_add(b, p, n);
}

static void pb_str(td_buf *b, uint32_t field, const char *s)
{
    if (s && *s) {
        pb_bytes(b, field, s, strlen(s));
    }
}

static void pb_uint(td_buf *b, uint32_t field, uint64_t v)
{
    if (v) {
        pb_key(b, field, 0);
        pb_varint(b, v);
    }
}

/* Append sub as a length-delimited field and reset it. */
static void pb_sub(td_buf *b, uint32_t field, td_buf *sub)
{
    pb_bytes(b, field, sub->data, sub->len);
    td_buf_reset(sub);
}

/* An AnyValue (OTLP common) for v. */
static void p_value(td_buf *b, const td_traceql_value *v)
{
    switch (v->type) {
    case TD_TRACEQL_STRING:
        pb_bytes(b, 1, v->s.ptr, v->s.len);
        break;
    case TD_TRACEQL_INT:
        pb_key(b, 3, 0);
        pb_varint(b, (uint64_t)v->i);
        break;
    case TD_TRACEQL_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->f, 8);
        uint8_t le[8];
        for (int i = 0; i < 8; i++) {
            le[i] = (uint8_t)(bits >> (8 * i));
        }
        pb_key(b, 4, 1);
        td_buf_add(b, le, 8);
        break;
    }
    case TD_TRACEQL_BOOL:
        pb_key(b, 2, 0);
        pb_varint(b, v->b ? 1 : 0);
        break;
    case TD_TRACEQL_DURATION: {
        char buf[40];
        size_t n = td_traceql_format_duration(v->i, buf);
        pb_bytes(b, 1, buf, n);
        break;
    }
    case TD_TRACEQL_STATUS: {
        const char *s = v->i >= 0 && v->i <= 2 ? status_str[v->i] : "unset";
        pb_bytes(b, 1, s, strlen(s));
        break;
    }
    case TD_TRACEQL_KIND: {
        const char *s = v->i >= 0 && v->i <= 5 ? kind_str[v->i] : "unspecified";
        pb_bytes(b, 1, s, strlen(s));
        break;
    }
    default:
        break;
    }
}

/* A KeyValue as field `field` of b. */
static void p_kv(td_buf *b, uint32_t field, const td_traceql_kv *kv)
{
    td_buf kvb = TD_BUF_INIT, vb = TD_BUF_INIT;
    if (kv->value.type == TD_TRACEQL_OTLP) {
        if (kv->value.otlp) {
            size_t n = opentelemetry__proto__common__v1__any_value__get_packed_size(kv->value.otlp);
            td_buf_grow(&vb, n);
            opentelemetry__proto__common__v1__any_value__pack(kv->value.otlp,
                                                              (uint8_t *)vb.data + vb.len);
            td_buf_setlen(&vb, vb.len + n);
        }
    } else {
        p_value(&vb, &kv->value);
    }
    pb_str(&kvb, 1, kv->key);
    pb_sub(&kvb, 2, &vb);
    pb_sub(b, field, &kvb);
    td_buf_release(&vb);
    td_buf_release(&kvb);
}

/* A SpanSet into out. */
static td_status p_spanset(td_buf *out, const td_traceql_query *q, const td_traceql_trace *tr,
                           const td_traceql_spanset *ss, size_t spss, td_arena *a, td_err *err)
{
    td_buf sp = TD_BUF_INIT;
    td_status st = TD_OK;
    for (size_t k = 0; k < ss->matched && k < spss; k++) {
        uint32_t idx = ss->spans[k];
        const td_otlp_span *s = tr->spans[idx].span;
        char sid[33];
        uint8_t raw[8] = {0};
        if (s->span_id.len == 8) {
            memcpy(raw, s->span_id.data, 8);
        }
        hex(sid, raw, 8);
        pb_str(&sp, 1, sid);
        pb_str(&sp, 2, s->name);
        pb_uint(&sp, 3, s->start_time_unix_nano);
        pb_uint(&sp, 4, s->end_time_unix_nano > s->start_time_unix_nano
                            ? s->end_time_unix_nano - s->start_time_unix_nano
                            : 0);
        td_traceql_kv *kvs = NULL;
        size_t nkv = 0;
        if ((st = td_traceql_span_attrs(q, tr, idx, a, &kvs, &nkv, err)) != TD_OK) {
            goto out;
        }
        for (size_t i = 0; i < nkv; i++) {
            p_kv(&sp, 5, &kvs[i]);
        }
        pb_sub(out, 1, &sp);
    }
    pb_uint(out, 2, ss->matched);
    for (size_t i = 0; i < ss->nattrs; i++) {
        if (ss->attrs[i].value.type != TD_TRACEQL_NIL) {
            p_kv(out, 3, &ss->attrs[i]);
        }
    }
out:
    td_buf_release(&sp);
    return st;
}

typedef struct svc_stat {
    const char *name;
    uint32_t spans, errors;
} svc_stat;

/* Span and error counts per service of tr (arena array). */
static td_status service_stats(const td_traceql_trace *tr, td_arena *a, svc_stat **out,
                               size_t *nout, td_err *err)
{
    svc_stat *stats = td_arena_calloc(a, tr->nspans ? tr->nspans : 1, sizeof(*stats));
    if (!stats) {
        return td_err_set(err, TD_NOMEM, "out of memory building a search result");
    }
    size_t nstats = 0;
    for (size_t i = 0; i < tr->nspans; i++) {
        const char *svc = span_service(&tr->spans[i]);
        size_t k = 0;
        while (k < nstats && strcmp(stats[k].name, svc) != 0) {
            k++;
        }
        if (k == nstats) {
            stats[nstats++].name = svc;
        }
        stats[k].spans++;
        const td_otlp_span *s = tr->spans[i].span;
        stats[k].errors +=
            s->status &&
            s->status->code ==
                OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    }
    *out = stats;
    *nout = nstats;
    return TD_OK;
}

/* One matching trace as a SearchResponse field-1 entry (TraceSearchMetadata). */
static td_status p_trace(td_buf *out, const uint8_t *id, const td_traceql_query *q,
                         const td_traceql_trace *tr, const td_traceql_result *res,
                         uint64_t start_ns, size_t spss, td_arena *a, td_err *err)
{
    td_buf m = TD_BUF_INIT, sub = TD_BUF_INIT;
    char tid[33];
    hex(tid, id, 16);
    pb_str(&m, 1, tid);
    pb_str(&m, 2, tr->root_name && tr->root_service && *tr->root_service ? tr->root_service
                                                                          : NO_ROOT_SERVICE);
    pb_str(&m, 3, tr->root_name);
    pb_uint(&m, 4, start_ns);
    uint64_t ms = tr->duration_ns / 1000000u;
    pb_uint(&m, 5, ms > UINT32_MAX ? UINT32_MAX : ms);
    svc_stat *stats;
    size_t nstats;
    td_status st = TD_OK;
    for (size_t i = 0; i < res->nsets; i++) {
        if ((st = p_spanset(&sub, q, tr, &res->sets[i], spss, a, err)) != TD_OK) {
            goto out;
        }
        if (i == 0) {
            pb_bytes(&m, 6, sub.data, sub.len);
        }
        pb_sub(&m, 7, &sub);
    }
    if ((st = service_stats(tr, a, &stats, &nstats, err)) != TD_OK) {
        goto out;
    }
    for (size_t k = 0; k < nstats; k++) {
        td_buf e = TD_BUF_INIT, v = TD_BUF_INIT;
        pb_uint(&v, 1, stats[k].spans);
        pb_uint(&v, 2, stats[k].errors);
        pb_bytes(&e, 1, stats[k].name, strlen(stats[k].name));
        pb_sub(&e, 2, &v);
        pb_sub(&m, 8, &e);
        td_buf_release(&e);
        td_buf_release(&v);
    }
    pb_sub(out, 1, &m);
out:
    td_buf_release(&m);
    td_buf_release(&sub);
    return st;
}

/* One matching trace as a TraceSearchMetadata object. */
static td_status j_trace(td_buf *out, const uint8_t *id, const td_traceql_query *q,
                         const td_traceql_trace *tr, const td_traceql_result *res,
                         uint64_t start_ns, size_t spss, td_arena *a, td_err *err)
{
    td_json jj, *j = &jj;
    td_json_init(j, out);
    td_json_begin_object(j);
    char tid[33];
    hex(tid, id, 16);
    td_json_key(j, "traceID");
    td_json_string(j, tid);
    td_json_key(j, "rootServiceName");
    td_json_string(j, tr->root_name && tr->root_service && *tr->root_service ? tr->root_service
                                                                             : NO_ROOT_SERVICE);
    if (tr->root_name && *tr->root_name) {
        td_json_key(j, "rootTraceName");
        td_json_string(j, tr->root_name);
    }
    td_json_key(j, "startTimeUnixNano");
    td_json_uint64_str(j, start_ns);
    uint64_t ms = tr->duration_ns / 1000000u;
    td_json_key(j, "durationMs");
    td_json_int(j, (int64_t)(ms > UINT32_MAX ? UINT32_MAX : ms));
    for (int pass = 0; pass < 2; pass++) {
        td_json_key(j, pass == 0 ? "spanSet" : "spanSets");
        if (pass == 1) {
            td_json_begin_array(j);
        }
        for (size_t i = 0; i < (pass == 0 ? 1 : res->nsets); i++) {
            td_status st = j_spanset(j, q, tr, &res->sets[i], spss, a, err);
            if (st) {
                return st;
            }
        }
        if (pass == 1) {
            td_json_end_array(j);
        }
    }
    /* serviceStats */
    svc_stat *stats;
    size_t nstats;
    td_status st = service_stats(tr, a, &stats, &nstats, err);
    if (st) {
        return st;
    }
    td_json_key(j, "serviceStats");
    td_json_begin_object(j);
    for (size_t k = 0; k < nstats; k++) {
        td_json_key(j, stats[k].name);
        td_json_begin_object(j);
        td_json_key(j, "spanCount");
        td_json_int(j, stats[k].spans);
        if (stats[k].errors) {
            td_json_key(j, "errorCount");
            td_json_int(j, stats[k].errors);
        }
        td_json_end_object(j);
    }
    td_json_end_object(j);
    td_json_end_object(j);
    return TD_OK;
}

static int cmp_result(const void *pa, const void *pb)
{
    const result *a = pa, *b = pb;
    return a->start_ns < b->start_ns ? 1 : a->start_ns > b->start_ns ? -1 : 0;
}

/* ---- the search ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

td_status td__search_load(td_store *s, const td__tenants *ts, const uint8_t id[16],
                          uint64_t max_trace_bytes, td_arena *a, td_traceql_trace *tr,
                          bool *found, uint64_t *inspected_bytes, td_err *err)
{
    *found = false;
    td__trace t;
    td__trace_init(&t, a, max_trace_bytes);
    td_status st = td__trace_fetch(&t, s, ts, id, 0, 0, err);
    *inspected_bytes += t.inspected_bytes;
    if (st == TD_NOT_FOUND) {
        return TD_OK;
    }
    if (st || (st = td__trace_finish(&t, err)) != TD_OK) {
        return st;
    }
    size_t n = 0;
    for (size_t i = 0; i < t.out.n_resourcespans; i++) {
        const td_otlp_resource_spans *rs = t.out.resourcespans[i];
        for (size_t k = 0; k < rs->n_scope_spans; k++) {
            n += rs->scope_spans[k]->n_spans;
        }
    }
    if (n == 0) {
        return TD_OK;
    }
    td_traceql_span *spans = td_arena_calloc(a, n, sizeof(*spans));
    if (!spans) {
        return td_err_set(err, TD_NOMEM, "out of memory evaluating a trace");
    }
    size_t m = 0;
    for (size_t i = 0; i < t.out.n_resourcespans; i++) {
        const td_otlp_resource_spans *rs = t.out.resourcespans[i];
        for (size_t k = 0; k < rs->n_scope_spans; k++) {
            const td_otlp_scope_spans *ss = rs->scope_spans[k];
            for (size_t x = 0; x < ss->n_spans; x++) {
                spans[m].span = ss->spans[x];
                spans[m].resource = rs->resource;
                spans[m].scope = ss->scope;
                m++;
            }
        }
    }
    if ((st = td_traceql_trace_init(tr, spans, n, a, err)) != TD_OK) {
        return st;
    }
    *found = true;
    return TD_OK;
}

uint64_t td__trace_start_ns(const td_traceql_trace *tr)
{
    uint64_t start = UINT64_MAX;
    for (size_t i = 0; i < tr->nspans; i++) {
        uint64_t v = tr->spans[i].span->start_time_unix_nano;
        if (v < start) {
            start = v;
        }
    }
    return tr->nspans ? start : 0;
}

/* Load, evaluate and (when it matches) render one candidate. *matched says whether it did. */
static td_status search_one(td_store *s, const td__tenants *ts, const td_traceql_query *q,
                            td_traceql_eval *ev, const td__cand *c, const td__search_params *p,
                            result *out, bool *matched, uint64_t *inspected_bytes, td_err *err)
{
    *matched = false;
    td_arena a;
    td_arena_init(&a, 64 * 1024, 0);
    td_traceql_trace tr;
    bool found;
    td_status st = td__search_load(s, ts, c->id, p->max_trace_bytes, &a, &tr, &found,
                                   inspected_bytes, err);
    if (st || !found) {
        goto done;
    }
    if (tr.duration_ns < p->min_duration_ns ||
        (p->max_duration_ns && tr.duration_ns > p->max_duration_ns)) {
        goto done;
    }
    td_traceql_result res;
    if ((st = td_traceql_eval_trace(ev, &tr, &a, &res, err)) != TD_OK) {
        goto done;
    }
    if (res.nsets == 0) {
        goto done;
    }
    uint64_t start = td__trace_start_ns(&tr);
    out->start_ns = start;
    out->json = (td_buf)TD_BUF_INIT;
    st = (p->pb ? p_trace : j_trace)(&out->json, c->id, q, &tr, &res, start, p->spss, &a, err);
    if (st) {
        td_buf_release(&out->json);
        goto done;
    }
    *matched = true;
done:
    td_arena_release(&a);
    return st;
}

/* ---- legacy `tags` (logfmt) → TraceQL ---- */

/* The translated query lives in td__search_params.tags_q; longer tags → TD_INVALID. */
#define TAGS_QUERY_MAX TD__SEARCH_TAGS_Q_MAX

/* Append a TraceQL double-quoted literal holding s[0..n). */
static void q_lit(td_buf *b, const char *s, size_t n)
{
    td_buf_addch(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            td_buf_addch(b, '\\');
            td_buf_addch(b, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            char x[5];
            snprintf(x, sizeof(x), "\\x%02x", c);
            td_buf_addstr(b, x);
        } else {
            td_buf_addch(b, (char)c);
        }
    }
    td_buf_addch(b, '"');
}

/* Append a literal holding the regex ".*<s with metacharacters escaped>.*". */
static void q_substr_re(td_buf *b, const char *s, size_t n, td_buf *tmp)
{
    td_buf_reset(tmp);
    td_buf_addstr(tmp, ".*");
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c && strchr("\\.+*?()|[]{}^$", c)) {
            td_buf_addch(tmp, '\\');
        }
        td_buf_addch(tmp, c);
    }
    td_buf_addstr(tmp, ".*");
    q_lit(b, tmp->data, tmp->len);
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

static bool key_is(const td_logfmt_pair *t, const char *k)
{
    return t->key_len == strlen(k) && !memcmp(t->key, k, t->key_len);
}

static td_status tags_to_traceql(const char *tags, char out[TAGS_QUERY_MAX], td_err *err)
{
    td_arena a;
    td_arena_init(&a, 4096, 64u * 1024 * 1024);
    td_buf b = TD_BUF_INIT, tmp = TD_BUF_INIT;
    td_logfmt_pair *t;
    size_t nt;
    td_status st = td_logfmt_parse(tags, strlen(tags), &a, &t, &nt, err);
    for (size_t i = 0; st == TD_OK && i < nt; i++) {
        if (!utf8_valid(t[i].key, t[i].key_len) || !utf8_valid(t[i].val, t[i].val_len)) {
            st = td_err_set(err, TD_INVALID, "invalid tags: invalid UTF-8");
            break;
        }
        if (i) {
            td_buf_addstr(&b, " && ");
        }
        if (key_is(&t[i], "name")) {
            td_buf_addstr(&b, "{ name =~ ");
            q_substr_re(&b, t[i].val, t[i].val_len, &tmp);
        } else if (key_is(&t[i], "service.name")) {
            td_buf_addstr(&b, "{ resource.service.name =~ ");
            q_substr_re(&b, t[i].val, t[i].val_len, &tmp);
        } else if (key_is(&t[i], "root.name")) {
            td_buf_addstr(&b, "{ rootName =~ ");
            q_substr_re(&b, t[i].val, t[i].val_len, &tmp);
        } else if (key_is(&t[i], "root.service.name")) {
            td_buf_addstr(&b, "{ rootServiceName =~ ");
            q_substr_re(&b, t[i].val, t[i].val_len, &tmp);
        } else if (key_is(&t[i], "status.code")) {
            const char *v = t[i].val;
            if (t[i].val_len != strlen(v) ||
                (strcmp(v, "unset") && strcmp(v, "ok") && strcmp(v, "error"))) {
                st = td_err_set(err, TD_INVALID,
                                "invalid tags: status.code must be unset, ok or error");
                break;
            }
            td_buf_addstr(&b, "{ status = ");
            td_buf_addstr(&b, v);
        } else {
            td_buf_addstr(&b, "{ span.");
            q_lit(&b, t[i].key, t[i].key_len);
            td_buf_addstr(&b, " = ");
            q_lit(&b, t[i].val, t[i].val_len);
            td_buf_addstr(&b, " || resource.");
            q_lit(&b, t[i].key, t[i].key_len);
            td_buf_addstr(&b, " = ");
            q_lit(&b, t[i].val, t[i].val_len);
        }
        td_buf_addstr(&b, " }");
    }
    if (st == TD_OK) {
        if (nt == 0) {
            td_buf_addstr(&b, "{}");
        }
        if (b.len >= TAGS_QUERY_MAX) {
            st = td_err_set(err, TD_INVALID, "invalid tags: too long");
        } else {
            memcpy(out, b.data, b.len);
            out[b.len] = '\0';
        }
    }
    td_buf_release(&b);
    td_buf_release(&tmp);
    td_arena_release(&a);
    return st;
}

td_status td__search_parse(const td__search_args *in, int64_t now_s, td__search_params *p,
                           td_err *err)
{
    memset(p, 0, sizeof(*p));
    p->limit = 20;
    p->spss = 3;
    if (!absent(in->tags) && !absent(in->q)) {
        return td_err_set(err, TD_INVALID,
                          "invalid request: can't specify tags and q in the same query");
    }
    td_status st;
    if (!absent(in->tags)) {
        if ((st = tags_to_traceql(in->tags, p->tags_q, err)) != TD_OK) {
            return st;
        }
        p->q = p->tags_q;
    } else {
        p->q = absent(in->q) ? "{}" : in->q;
    }
    if (!absent(in->limit)) {
        if ((st = parse_uint("limit", in->limit, UINT64_MAX, &p->limit, err)) != TD_OK) {
            return st;
        }
        if (p->limit == 0) {
            return td_err_set(err, TD_INVALID, "invalid limit: must be a positive number");
        }
        if (p->limit > SEARCH_MAX_LIMIT) {
            return td_err_set(err, TD_INVALID, "invalid limit: must be at most %d",
                              SEARCH_MAX_LIMIT);
        }
    }
    if (!absent(in->spss)) {
        if ((st = parse_uint("spss", in->spss, UINT64_MAX, &p->spss, err)) != TD_OK) {
            return st;
        }
        if (p->spss > SEARCH_MAX_SPSS) {
            return td_err_set(err, TD_INVALID, "invalid spss: must be at most %d", SEARCH_MAX_SPSS);
        }
    }
    uint64_t start = 0, end = 0;
    if (!absent(in->start) &&
        (st = parse_uint("start", in->start, UINT32_MAX, &start, err)) != TD_OK) {
        return st;
    }
    if (!absent(in->end) && (st = parse_uint("end", in->end, UINT32_MAX, &end, err)) != TD_OK) {
        return st;
    }
    if (absent(in->end)) {
        end = now_s > 0 ? (uint64_t)now_s : 0;
    }
    if (absent(in->start)) {
        start = end > 86400 ? end - 86400 : 0; /* default window: the last 24 hours */
    }
    if (!absent(in->start) && !absent(in->end) && start >= end) {
        return td_err_set(err, TD_INVALID,
                          "http parameter start must be before end. received start=%llu end=%llu",
                          (unsigned long long)start, (unsigned long long)end);
    }
    p->start_ns = start * 1000000000ull;
    p->end_ns = end * 1000000000ull + 999999999ull;
    if (!absent(in->min_duration) &&
        (st = parse_go_duration("minDuration", in->min_duration, &p->min_duration_ns, err))) {
        return st;
    }
    if (!absent(in->max_duration) &&
        (st = parse_go_duration("maxDuration", in->max_duration, &p->max_duration_ns, err))) {
        return st;
    }
    if (p->max_duration_ns && p->max_duration_ns < p->min_duration_ns) {
        return td_err_set(err, TD_INVALID, "invalid maxDuration: must be greater than minDuration");
    }
    return TD_OK;
}

td_status td__search(td_store *s, const td__tenants *ts, const td__search_params *p, td_buf *out,
                     td_err *err)
{
    td_arena a;
    td_arena_init(&a, 64 * 1024, 0);
    td_traceql_query *q = NULL;
    td_traceql_eval *ev = NULL;
    td__cands cs = {0};
    result *res = NULL;
    size_t nres = 0;
    uint64_t inspected_traces = 0, inspected_bytes = 0;
    td_status st = td_traceql_parse(p->q, strlen(p->q), &a, &q, err);
    if (st) {
        if (st == TD_INVALID) {
            char msg[TD_ERR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            td_err_set(err, TD_INVALID, "invalid TraceQL query: %s", msg);
        }
        goto out;
    }
    if (q->metrics) {
        st = td_err_set(err, TD_INVALID,
                        "invalid TraceQL query: metrics queries are served by "
                        "/api/metrics/query_range");
        goto out;
    }
    td_traceql_hint *hints = NULL;
    size_t nhints = 0;
    if ((st = td_traceql_hints(q, &a, &hints, &nhints, err)) != TD_OK ||
        (st = td_traceql_eval_new(q, &ev, err)) != TD_OK) {
        if (st == TD_INVALID) {
            char msg[TD_ERR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            td_err_set(err, TD_INVALID, "invalid TraceQL query: %s", msg);
        }
        goto out;
    }
    if ((st = td__search_candidates(s, ts, hints, nhints, p->start_ns, p->end_ns, p->max_traces,
                                    &a, &cs, err)) != TD_OK) {
        goto out;
    }
    /*
     * Candidates are in bucket order, newest first. Once `limit` traces matched,
     * the rest of that minute is still evaluated (keeping the newest `limit`),
     * so the answer is exact at minute granularity.
     */
    res = td_xcalloc(p->limit < cs.n ? p->limit + 1 : cs.n + 1, sizeof(*res));
    bool full = false, cut = false;
    uint64_t stop_bucket = 0;
    int64_t deadline = p->timeout_ms > 0 ? now_ms() + p->timeout_ms : 0;
    size_t ndone = 0;
    for (size_t i = 0; i < cs.n; i++, ndone++) {
        if (full && cs.c[i].bucket != stop_bucket) {
            ndone = cs.n; /* the rest cannot change the answer */
            break;
        }
        if ((p->max_bytes && inspected_bytes >= p->max_bytes) ||
            (deadline && now_ms() >= deadline)) {
            cut = true;
            break;
        }
        if (td__cand_skip(&cs.c[i], hints, nhints)) {
            continue;
        }
        bool matched;
        inspected_traces++;
        st = search_one(s, ts, q, ev, &cs.c[i], p, &res[nres], &matched, &inspected_bytes, err);
        if (st) {
            goto out;
        }
        if (!matched) {
            continue;
        }
        if (nres < p->limit) {
            nres++;
        } else {
            /* res[nres] is the extra slot: drop whichever of the limit + 1 is oldest */
            size_t oldest = nres;
            for (size_t k = 0; k < nres; k++) {
                if (res[k].start_ns < res[oldest].start_ns) {
                    oldest = k;
                }
            }
            td_buf_release(&res[oldest].json);
            res[oldest] = res[nres];
            memset(&res[nres], 0, sizeof(res[nres]));
        }
        if (nres == p->limit && !full) {
            full = true;
            stop_bucket = cs.c[i].bucket;
        }
    }
    qsort(res, nres, sizeof(*res), cmp_result);
    /*
     * Jobs: one per candidate trace, plus one for the rest of the window when
     * the candidate bound stopped collecting. completedJobs < totalJobs tells a
     * client the answer may be incomplete (a bound or the timeout stopped it).
     */
    uint64_t total_jobs = cs.n + (cs.truncated ? 1 : 0);
    uint64_t done_jobs = cut ? ndone : cs.n;
    if (total_jobs == 0) {
        total_jobs = done_jobs = 1;
    }
    if (total_jobs > UINT32_MAX) {
        done_jobs = done_jobs * (UINT32_MAX / 2) / (total_jobs / 2);
        total_jobs = UINT32_MAX;
    }

    if (p->pb) {
        td_buf m = TD_BUF_INIT;
        for (size_t i = 0; i < nres; i++) {
            td_buf_add(out, res[i].json.data, res[i].json.len);
        }
        pb_uint(&m, 1, inspected_traces > UINT32_MAX ? UINT32_MAX : inspected_traces);
        pb_uint(&m, 2, inspected_bytes);
        pb_uint(&m, 4, done_jobs);
        pb_uint(&m, 5, total_jobs);
        pb_sub(out, 2, &m);
        td_buf_release(&m);
        goto out;
    }
    td_json j;
    td_json_init(&j, out);
    td_json_begin_object(&j);
    td_json_key(&j, "traces");
    td_json_begin_array(&j);
    for (size_t i = 0; i < nres; i++) {
        td_json_raw(&j, res[i].json.data, res[i].json.len);
    }
    td_json_end_array(&j);
    td_json_key(&j, "metrics");
    td_json_begin_object(&j);
    td_json_key(&j, "inspectedTraces");
    td_json_int(&j, (int64_t)(inspected_traces > UINT32_MAX ? UINT32_MAX : inspected_traces));
    td_json_key(&j, "inspectedBytes");
    td_json_uint64_str(&j, inspected_bytes);
    td_json_key(&j, "completedJobs");
    td_json_int(&j, (int64_t)done_jobs);
    td_json_key(&j, "totalJobs");
    td_json_int(&j, (int64_t)total_jobs);
    td_json_end_object(&j);
    td_json_end_object(&j);
out:
    for (size_t i = 0; i < nres; i++) {
        td_buf_release(&res[i].json);
    }
    td_free(res);
    td__cands_release(&cs);
    td_traceql_eval_free(ev);
    td_arena_release(&a);
    return st;
}
