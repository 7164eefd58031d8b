/*
 * tempo_tags.c - tag names and tag values (API-CONTRACT §3.6, §3.7, corrections).
 *
 * Two sources. Without a filter query the answer comes from the store's
 * secondary index: td_store_tag_names lists the keys of one scope, and
 * td_store_tag_values the typed values of one (scope, key), both in byte order
 * and bounded by the limit, per tenant. With a filter (a TraceQL query that
 * parses and is more than `{}`) the candidate traces of the window are loaded
 * and evaluated exactly as /api/search does (td__search_candidates,
 * td__search_load, the TraceQL evaluator), and keys or values are taken from
 * the spans that matched; max_traces bounds that work. An invalid or
 * incomplete filter is ignored, as Tempo does for autocomplete.
 *
 * Either way entries go through one de-duplicating set keyed by (type, bytes),
 * the same bytes the index stores (store.h td_idx_type), so ints and floats
 * sort numerically and tenants and scopes merge for free; the set is sorted
 * at the end and cut to the limit. Fixed answers (the intrinsic list, status
 * and kind keywords, the v1 virtual tags) keep Tempo's order.
 */
#include "api/tempo_tags.h"

#include "api/json.h"
#include "core/mem.h"
#include "tempopb/tempo_tags.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- fixed answers ---- */

/* The intrinsic scope of tag names (API-CONTRACT §3.6), Tempo's spelling and order. */
static const char *const intrinsic_names[] = {"duration",
                                              "event:name",
                                              "instrumentation:name",
                                              "kind",
                                              "name",
                                              "rootName",
                                              "rootServiceName",
                                              "span:duration",
                                              "span:kind",
                                              "span:name",
                                              "span:status",
                                              "span:statusMessage",
                                              "status",
                                              "statusMessage",
                                              "trace:duration",
                                              "trace:rootName",
                                              "trace:rootService",
                                              "traceDuration"};
#define N_INTRINSIC (sizeof(intrinsic_names) / sizeof(intrinsic_names[0]))

static const char *const status_values[] = {"ok", "error", "unset"};
static const char *const kind_values[] = {"client",   "server",   "producer",
                                          "consumer", "internal", "unspecified"};
static const char *const v1_status_code[] = {"unset", "ok", "error"};

/* Attribute scopes of tag names, in response order; intrinsic is static, trace empty. */
typedef enum {
    SC_RESOURCE,
    SC_SPAN,
    SC_EVENT,
    SC_LINK,
    SC_INSTR,
    SC_INTRINSIC,
    SC_TRACE,
    SC_N
} scope_id;

static const char *const scope_names[SC_N] = {"resource",        "span",      "event", "link",
                                              "instrumentation", "intrinsic", "trace"};
static const uint8_t scope_idx[SC_N] = {
    TD_IDX_RESOURCE, TD_IDX_SPAN, TD_IDX_EVENT, TD_IDX_LINK, TD_IDX_SCOPE, 0, 0};

#define ALL_ATTR_SCOPES                                                                            \
    ((1u << SC_RESOURCE) | (1u << SC_SPAN) | (1u << SC_EVENT) | (1u << SC_LINK) | (1u << SC_INSTR))

/* ---- parameters ---- */

static bool absent(const char *s)
{
    return !s || !*s;
}

/* Go's strconv.ParseInt(s, 10, bits) / ParseUint wording in "invalid <name>: ..." errors. */
static td_status parse_num(const char *name, const char *s, bool is_signed, int64_t lo, int64_t hi,
                           int64_t *out, td_err *err)
{
    const char *p = s;
    bool neg = false;
    if (is_signed && (*p == '+' || *p == '-')) {
        neg = *p == '-';
        p++;
    }
    bool syntax = *p != '\0';
    for (const char *c = p; *c; c++) {
        if (*c < '0' || *c > '9') {
            syntax = false;
        }
    }
    const char *fn = is_signed ? "ParseInt" : "ParseUint";
    if (!syntax) {
        return td_err_set(err, TD_INVALID,
                          "invalid %s: strconv.%s: parsing \"%.64s\": invalid syntax", name, fn, s);
    }
    errno = 0;
    unsigned long long v = strtoull(p, NULL, 10);
    bool range = errno != ERANGE && v <= (unsigned long long)INT64_MAX;
    int64_t x = range ? (neg ? -(int64_t)v : (int64_t)v) : 0;
    if (!range || x < lo || x > hi) {
        return td_err_set(err, TD_INVALID,
                          "invalid %s: strconv.%s: parsing \"%.64s\": value out of range", name, fn,
                          s);
    }
    *out = x;
    return TD_OK;
}

td_status td__tags_http_args(td__tags_kind kind, const char *scope, const char *tag, const char *q,
                             const char *start, const char *end, const char *limit, td__tags_req *r,
                             td_err *err)
{
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->scope = scope;
    r->tag = tag;
    r->q = q;
    int64_t v;
    td_status st;
    if (!absent(start)) {
        if ((st = parse_num("start", start, true, INT32_MIN, INT32_MAX, &v, err)) != TD_OK) {
            return st;
        }
        r->start = (uint32_t)v; /* Tempo: uint32(start), negative values wrap */
    }
    if (!absent(end)) {
        if ((st = parse_num("end", end, true, INT32_MIN, INT32_MAX, &v, err)) != TD_OK) {
            return st;
        }
        r->end = (uint32_t)v;
    }
    if (!absent(limit)) {
        if ((st = parse_num("limit", limit, false, 0, UINT32_MAX, &v, err)) != TD_OK) {
            return st;
        }
        r->limit = (uint32_t)v;
    }
    return TD_OK;
}

bool td__tags_path_tag(const char *rest, const char **tag, size_t *len)
{
    static const char suffix[] = "/values";
    size_t n = strlen(rest), k = sizeof(suffix) - 1;
    if (n < k || memcmp(rest + n - k, suffix, k) != 0) {
        return false;
    }
    *tag = rest;
    *len = n - k;
    return true;
}

/* ---- value text ---- */

void td__tags_format_float(double v, td_buf *out)
{
    if (isnan(v)) {
        td_buf_addstr(out, "NaN");
        return;
    }
    if (isinf(v)) {
        td_buf_addstr(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        td_buf_addstr(out, signbit(v) ? "-0" : "0");
        return;
    }
    /* the fewest significant digits that read back as v (Go's shortest) */
    char e[48];
    int nd;
    for (nd = 1; nd <= 17; nd++) {
        snprintf(e, sizeof(e), "%.*e", nd - 1, v);
        if (strtod(e, NULL) == v) {
            break;
        }
    }
    if (nd > 17) {
        nd = 17;
    }
    const char *ep = strchr(e, 'e');
    int exp = ep ? atoi(ep + 1) : 0;
    /* Go's 'g' with shortest precision: %e when exp < -4 || exp >= 6 ("eprec = 6") */
    if (exp < -4 || exp >= 6) {
        td_buf_addstr(out, e);
        return;
    }
    int frac = nd - 1 - exp;
    td_buf_addf(out, "%.*f", frac > 0 ? frac : 0, v);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static double float_of(const uint8_t raw[8])
{
    uint64_t u = be64(raw);
    u = (u & (1ull << 63)) ? u & ~(1ull << 63) : ~u;
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void float_raw(double d, uint8_t raw[8])
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    u = (u & (1ull << 63)) ? ~u : u | (1ull << 63);
    put_be64(raw, u);
}

bool td__tags_value_text(uint8_t t, const uint8_t *raw, size_t len, const char **type, td_buf *out)
{
    switch (t) {
    case TD_IDX_STRING:
        *type = "string";
        td_buf_add(out, raw, len);
        return true;
    case TD_IDX_KEYWORD:
        *type = "keyword";
        td_buf_add(out, raw, len);
        return true;
    case TD_IDX_INT:
        if (len != 8) {
            return false;
        }
        *type = "int";
        td_buf_addf(out, "%lld", (long long)(int64_t)(be64(raw) ^ (1ull << 63)));
        return true;
    case TD_IDX_FLOAT:
        if (len != 8) {
            return false;
        }
        *type = "float";
        td__tags_format_float(float_of(raw), out);
        return true;
    case TD_IDX_BOOL:
        if (len != 1) {
            return false;
        }
        *type = "bool";
        td_buf_addstr(out, raw[0] ? "true" : "false");
        return true;
    default:
        return false;
    }
}

/* ---- a de-duplicating set of (type, bytes) ---- */

typedef struct bent {
    uint64_t h;
    const uint8_t *p; /* arena; NULL = empty slot */
    uint32_t len;
    uint8_t t;
} bent;

typedef struct bset {
    bent *e;
    size_t n, cap; /* cap: slots, a power of two */
    size_t max;    /* entries kept at most */
    td_arena *a;
    bool oom;
} bset;

static uint64_t bhash(uint8_t t, const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ t;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h | 1;
}

static void bset_init(bset *s, td_arena *a, size_t max)
{
    memset(s, 0, sizeof(*s));
    s->a = a;
    s->max = max;
}

static void bset_release(bset *s)
{
    td_free(s->e);
    memset(s, 0, sizeof(*s));
}

static void bset_grow(bset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 256;
    bent *e = td_xcalloc(cap, sizeof(*e));
    for (size_t i = 0; i < s->cap; i++) {
        if (s->e[i].p) {
            size_t j = s->e[i].h & (cap - 1);
            while (e[j].p) {
                j = (j + 1) & (cap - 1);
            }
            e[j] = s->e[i];
        }
    }
    td_free(s->e);
    s->e = e;
    s->cap = cap;
}

/* Add (t, p[0..n)) unless present or the set is full; false only when out of memory. */
static bool bset_add(bset *s, uint8_t t, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        return true; /* not representable: skip */
    }
    if ((s->n + 1) * 2 > s->cap) {
        bset_grow(s);
    }
    uint64_t h = bhash(t, p, n);
    size_t j = h & (s->cap - 1);
    while (s->e[j].p) {
        bent *x = &s->e[j];
        if (x->h == h && x->t == t && x->len == n && memcmp(x->p, p, n) == 0) {
            return true;
        }
        j = (j + 1) & (s->cap - 1);
    }
    if (s->n >= s->max) {
        return true;
    }
    /* +1: a NUL after the bytes, so strings can be used as they are */
    uint8_t *c = td_arena_alloc(s->a, n + 1);
    if (!c) {
        s->oom = true;
        return false;
    }
    if (n) {
        memcpy(c, p, n);
    }
    c[n] = 0;
    s->e[j] = (bent){.h = h, .p = c, .len = (uint32_t)n, .t = t};
    s->n++;
    return true;
}

static int bent_cmp(const void *x, const void *y)
{
    const bent *a = x, *b = y;
    if (a->t != b->t) {
        return a->t < b->t ? -1 : 1;
    }
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->p, b->p, n) : 0;
    if (c) {
        return c;
    }
    return a->len < b->len ? -1 : a->len > b->len;
}

/* The entries, sorted, in a heap array (td_free); *n set. */
static bent *bset_sorted(const bset *s, size_t *n)
{
    bent *v = td_xmalloc((s->n ? s->n : 1) * sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->e[i].p) {
            v[k++] = s->e[i];
        }
    }
    qsort(v, k, sizeof(*v), bent_cmp);
    *n = k;
    return v;
}

/* ---- the window ---- */

typedef struct window {
    uint64_t start_ns, end_ns; /* end_ns 0: no bound (index calls) */
    bool empty;                /* end before start: nothing can match */
} window;

static window make_window(const td__tags_req *r)
{
    window w = {0};
    if (!r->start && !r->end) {
        return w;
    }
    uint64_t end = r->end;
    if (!end) {
        time_t now = time(NULL);
        end = now > 0 ? (uint64_t)now : 0;
    }
    if (end < r->start) {
        w.empty = true;
        return w;
    }
    w.start_ns = (uint64_t)r->start * 1000000000ull;
    w.end_ns = end * 1000000000ull + 999999999ull;
    return w;
}

/* ---- index callbacks ---- */

static bool on_name(void *ud, uint8_t scope, const char *key, size_t len)
{
    (void)scope;
    return bset_add(ud, 0, key, len);
}

static bool on_value(void *ud, uint8_t type, const uint8_t *val, size_t len)
{
    return bset_add(ud, type, val, len);
}

static td_status index_names(td_store *s, const td__tenants *ts, uint8_t scope, const window *w,
                             size_t max, bset *set, uint64_t *inspected, td_err *err)
{
    for (size_t i = 0; i < ts->n; i++) {
        td_status st = td_store_tag_names(s, ts->names[i], scope, w->start_ns, w->end_ns, max,
                                          on_name, set, inspected, err);
        if (st) {
            return st;
        }
        if (set->oom) {
            return td_err_set(err, TD_NOMEM, "out of memory listing tag names");
        }
    }
    return TD_OK;
}

static td_status index_values(td_store *s, const td__tenants *ts, uint8_t scope, const char *key,
                              size_t key_len, const window *w, size_t max, bset *set,
                              uint64_t *inspected, td_err *err)
{
    for (size_t i = 0; i < ts->n; i++) {
        td_status st = td_store_tag_values(s, ts->names[i], scope, key, key_len, w->start_ns,
                                           w->end_ns, max, on_value, set, inspected, err);
        if (st) {
            return st;
        }
        if (set->oom) {
            return td_err_set(err, TD_NOMEM, "out of memory listing tag values");
        }
    }
    return TD_OK;
}

/* ---- the filter query ---- */

/* q when it is valid TraceQL that selects something narrower than every span; else NULL. */
static const td_traceql_query *filter_query(const char *q, td_arena *a)
{
    if (absent(q)) {
        return NULL;
    }
    td_traceql_query *pq = NULL;
    td_err e;
    td_err_init(&e);
    if (td_traceql_parse(q, strlen(q), a, &pq, &e) != TD_OK || pq->metrics) {
        return NULL; /* invalid or incomplete (autocomplete while typing): ignored */
    }
    const td_traceql_pipeline *p = &pq->pipeline;
    if (p->nstages == 1 && p->stages[0].kind == TD_TRACEQL_STAGE_SPANSET &&
        p->stages[0].ss->kind == TD_TRACEQL_SSE_FILTER && p->stages[0].ss->filter == NULL) {
        return NULL; /* {} */
    }
    return pq;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Collect from one span; false once nothing more can be added (every set full). */
typedef bool (*span_fn)(void *ud, const td_traceql_trace *tr, size_t span);

/*
 * Call fn for every span matching q (every span when q is NULL) in the
 * candidate traces of the window, at most lim->max_traces of them, until fn
 * says it is full.
 */
static td_status scan_spans(td_store *s, const td__tenants *ts, const td_traceql_query *q,
                            const window *w, const td__tags_limits *lim, td_arena *a, span_fn fn,
                            void *ud, uint64_t *inspected, td_err *err)
{
    td_traceql_eval *ev = NULL;
    td_traceql_hint *hints = NULL;
    size_t nhints = 0;
    td__cands cs = {0};
    td_status st = TD_OK;
    if (q) {
        if ((st = td_traceql_hints(q, a, &hints, &nhints, err)) != TD_OK ||
            (st = td_traceql_eval_new(q, &ev, err)) != TD_OK) {
            goto out;
        }
    }
    uint64_t start_ns = w->start_ns, end_ns = w->end_ns;
    if (!end_ns) {
        time_t now = time(NULL);
        end_ns = ((now > 0 ? (uint64_t)now : 0) + 86400) * 1000000000ull;
    }
    if ((st = td__search_candidates(s, ts, hints, nhints, start_ns, end_ns, lim->max_traces, a, &cs,
                                    err)) != TD_OK) {
        goto out;
    }
    bool more = true;
    int64_t deadline = lim->timeout_ms > 0 ? now_ms() + lim->timeout_ms : 0;
    for (size_t i = 0; i < cs.n && more; i++) {
        if (td__cand_skip(&cs.c[i], hints, nhints)) {
            continue;
        }
        /* over budget: answer with what was found so far, as a search would */
        if ((lim->max_bytes && *inspected >= lim->max_bytes) ||
            (deadline && now_ms() >= deadline)) {
            break;
        }
        td_arena ta;
        td_arena_init(&ta, 64 * 1024, 0);
        td_traceql_trace tr;
        bool found = false;
        st = td__search_load(s, ts, cs.c[i].id, lim->max_trace_bytes, &ta, &tr, &found, inspected,
                             err);
        if (st == TD_OK && found) {
            if (!ev) {
                for (size_t k = 0; k < tr.nspans && more; k++) {
                    more = fn(ud, &tr, k);
                }
            } else {
                td_traceql_result res;
                st = td_traceql_eval_trace(ev, &tr, &ta, &res, err);
                if (st == TD_INVALID) {
                    st = TD_OK; /* e.g. a structural operator over several spansets: no match */
                    res.nsets = 0;
                }
                for (size_t k = 0; st == TD_OK && more && k < res.nsets; k++) {
                    for (size_t m = 0; m < res.sets[k].matched && more; m++) {
                        more = fn(ud, &tr, res.sets[k].spans[m]);
                    }
                }
            }
        }
        td_arena_release(&ta);
        if (st) {
            goto out;
        }
    }
out:
    td__cands_release(&cs);
    td_traceql_eval_free(ev);
    return st;
}

/* Names: one set per scope. */
typedef struct names_ud {
    bset *sets; /* [SC_N] */
    unsigned mask;
} names_ud;

static void add_keys(bset *set, td_otlp_kv *const *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (kvs[i]->key && kvs[i]->key[0]) {
            bset_add(set, 0, kvs[i]->key, strlen(kvs[i]->key));
        }
    }
}

static bool names_of_span(void *p, const td_traceql_trace *tr, size_t i)
{
    names_ud *u = p;
    const td_traceql_span *ts = &tr->spans[i];
    const td_otlp_span *sp = ts->span;
    if (u->mask & (1u << SC_SPAN)) {
        add_keys(&u->sets[SC_SPAN], sp->attributes, sp->n_attributes);
    }
    if ((u->mask & (1u << SC_RESOURCE)) && ts->resource) {
        add_keys(&u->sets[SC_RESOURCE], ts->resource->attributes, ts->resource->n_attributes);
    }
    if (u->mask & (1u << SC_EVENT)) {
        for (size_t k = 0; k < sp->n_events; k++) {
            add_keys(&u->sets[SC_EVENT], sp->events[k]->attributes, sp->events[k]->n_attributes);
        }
    }
    if (u->mask & (1u << SC_LINK)) {
        for (size_t k = 0; k < sp->n_links; k++) {
            add_keys(&u->sets[SC_LINK], sp->links[k]->attributes, sp->links[k]->n_attributes);
        }
    }
    if ((u->mask & (1u << SC_INSTR)) && ts->scope) {
        add_keys(&u->sets[SC_INSTR], ts->scope->attributes, ts->scope->n_attributes);
    }
    for (int k = 0; k < SC_N; k++) {
        if ((u->mask & (1u << k)) && u->sets[k].n < u->sets[k].max && !u->sets[k].oom) {
            return true;
        }
    }
    return false;
}

/* Values of one tag from matching spans. */
typedef struct values_ud {
    bset *set;
    const td_traceql_attr *attr;
} values_ud;

static void add_any(bset *set, const td_otlp_any *v, int depth)
{
    uint8_t raw[8];
    if (!v) {
        return;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        if (v->string_value) {
            bset_add(set, TD_IDX_STRING, v->string_value, strlen(v->string_value));
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        put_be64(raw, (uint64_t)v->int_value ^ (1ull << 63));
        bset_add(set, TD_IDX_INT, raw, 8);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        float_raw(v->double_value, raw);
        bset_add(set, TD_IDX_FLOAT, raw, 8);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        raw[0] = v->bool_value ? 1 : 0;
        bset_add(set, TD_IDX_BOOL, raw, 1);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        /* one value per scalar element, as the index does */
        for (size_t i = 0; depth == 0 && v->array_value && i < v->array_value->n_values; i++) {
            add_any(set, v->array_value->values[i], depth + 1);
        }
        break;
    default:
        break;
    }
}

/* Add the values of key in kvs; true when the key was there. */
static bool add_values(bset *set, const char *key, td_otlp_kv *const *kvs, size_t n)
{
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        if (kvs[i]->key && strcmp(kvs[i]->key, key) == 0) {
            add_any(set, kvs[i]->value, 0);
            seen = true;
        }
    }
    return seen;
}

static void add_str(bset *set, const char *s)
{
    if (s && *s) {
        bset_add(set, TD_IDX_STRING, s, strlen(s));
    }
}

static bool values_of_span(void *p, const td_traceql_trace *tr, size_t i)
{
    values_ud *u = p;
    const td_traceql_attr *at = u->attr;
    const td_traceql_span *ts = &tr->spans[i];
    const td_otlp_span *sp = ts->span;
    const td_otlp_resource *res = ts->resource;
    switch (at->scope) {
    case TD_TRACEQL_SCOPE_NONE: /* span attribute, else the resource's */
        if (!add_values(u->set, at->name, sp->attributes, sp->n_attributes) && res) {
            add_values(u->set, at->name, res->attributes, res->n_attributes);
        }
        break;
    case TD_TRACEQL_SCOPE_SPAN:
        add_values(u->set, at->name, sp->attributes, sp->n_attributes);
        break;
    case TD_TRACEQL_SCOPE_RESOURCE:
        if (res) {
            add_values(u->set, at->name, res->attributes, res->n_attributes);
        }
        break;
    case TD_TRACEQL_SCOPE_EVENT:
        for (size_t k = 0; k < sp->n_events; k++) {
            add_values(u->set, at->name, sp->events[k]->attributes, sp->events[k]->n_attributes);
        }
        break;
    case TD_TRACEQL_SCOPE_LINK:
        for (size_t k = 0; k < sp->n_links; k++) {
            add_values(u->set, at->name, sp->links[k]->attributes, sp->links[k]->n_attributes);
        }
        break;
    case TD_TRACEQL_SCOPE_INSTRUMENTATION:
        if (ts->scope) {
            add_values(u->set, at->name, ts->scope->attributes, ts->scope->n_attributes);
        }
        break;
    case TD_TRACEQL_SCOPE_INTRINSIC:
        switch (at->intrinsic) {
        case TD_TRACEQL_I_NAME:
            add_str(u->set, sp->name);
            break;
        case TD_TRACEQL_I_STATUS_MESSAGE:
            add_str(u->set, sp->status ? sp->status->message : NULL);
            break;
        case TD_TRACEQL_I_ROOT_NAME:
            add_str(u->set, tr->root_name);
            break;
        case TD_TRACEQL_I_ROOT_SERVICE:
            add_str(u->set, tr->root_service);
            break;
        case TD_TRACEQL_I_EVENT_NAME:
            for (size_t k = 0; k < sp->n_events; k++) {
                add_str(u->set, sp->events[k]->name);
            }
            break;
        case TD_TRACEQL_I_INSTR_NAME:
            add_str(u->set, ts->scope ? ts->scope->name : NULL);
            break;
        case TD_TRACEQL_I_INSTR_VERSION:
            add_str(u->set, ts->scope ? ts->scope->version : NULL);
            break;
        default:
            break;
        }
        break;
    }
    return u->set->n < u->set->max && !u->set->oom;
}

/* ---- results ---- */

static const char **fixed_list(td_arena *a, const char *const *v, size_t n, size_t limit,
                               size_t *out_n)
{
    size_t k = n < limit ? n : limit;
    const char **l = td_arena_calloc(a, k ? k : 1, sizeof(*l));
    if (l) {
        for (size_t i = 0; i < k; i++) {
            l[i] = v[i];
        }
    }
    *out_n = k;
    return l;
}

/* Sorted names of a set (first limit), as arena strings. */
static td_status set_names(const bset *set, size_t limit, td_arena *a, const char ***out, size_t *n,
                           td_err *err)
{
    size_t k;
    bent *v = bset_sorted(set, &k);
    if (k > limit) {
        k = limit;
    }
    const char **l = td_arena_calloc(a, k ? k : 1, sizeof(*l));
    if (!l) {
        td_free(v);
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < k; i++) {
        l[i] = (const char *)v[i].p;
    }
    td_free(v);
    *out = l;
    *n = k;
    return TD_OK;
}

static uint8_t idx_scope_of(td_traceql_scope s)
{
    switch (s) {
    case TD_TRACEQL_SCOPE_SPAN:
        return TD_IDX_SPAN;
    case TD_TRACEQL_SCOPE_RESOURCE:
        return TD_IDX_RESOURCE;
    case TD_TRACEQL_SCOPE_EVENT:
        return TD_IDX_EVENT;
    case TD_TRACEQL_SCOPE_LINK:
        return TD_IDX_LINK;
    case TD_TRACEQL_SCOPE_INSTRUMENTATION:
        return TD_IDX_SCOPE;
    default:
        return 0;
    }
}

/* Scope parameter -> bit mask of scope_id. */
static td_status parse_scope(const char *scope, bool v1, unsigned *mask, td_err *err)
{
    if (absent(scope) || strcmp(scope, "none") == 0) {
        *mask = v1 ? (1u << SC_RESOURCE) | (1u << SC_SPAN) : ALL_ATTR_SCOPES | (1u << SC_INTRINSIC);
        return TD_OK;
    }
    for (int i = 0; i < SC_N; i++) {
        if (strcmp(scope, scope_names[i]) == 0) {
            *mask = 1u << i;
            return TD_OK;
        }
    }
    return td_err_set(err, TD_INVALID, "invalid scope: %.200s", scope);
}

static td_status run_names(td_store *s, const td__tenants *ts, const td__tags_req *r,
                           const td__tags_limits *lim, td_arena *a, td__tags_result *out,
                           td_err *err)
{
    bool v1 = r->kind == TD__TAGS_V1;
    unsigned mask = 0;
    td_status st = parse_scope(r->scope, v1, &mask, err);
    if (st) {
        return st;
    }
    size_t limit = r->limit ? r->limit : TD__TAGS_DEFAULT_LIMIT;
    if (limit > TD__TAGS_DEFAULT_LIMIT) {
        limit = TD__TAGS_DEFAULT_LIMIT;
    }
    window w = make_window(r);
    bset sets[SC_N];
    for (int i = 0; i < SC_N; i++) {
        /* v1 merges its scopes into sets[0] */
        bset_init(&sets[i], a, v1 ? TD__TAGS_DEFAULT_LIMIT : limit);
    }
    const td_traceql_query *q = v1 ? NULL : filter_query(r->q, a);
    unsigned attr_mask = mask & ALL_ATTR_SCOPES;
    if (attr_mask && !w.empty) {
        if (q) {
            names_ud u = {.sets = sets, .mask = attr_mask};
            st = scan_spans(s, ts, q, &w, lim, a, names_of_span, &u, &out->inspected_bytes, err);
        } else {
            for (int i = 0; st == TD_OK && i < SC_N; i++) {
                if (attr_mask & (1u << i)) {
                    st = index_names(s, ts, scope_idx[i], &w, limit, &sets[v1 ? 0 : i],
                                     &out->inspected_bytes, err);
                }
            }
        }
    }
    for (int i = 0; st == TD_OK && i < SC_N; i++) {
        if (sets[i].oom) {
            st = td_err_set(err, TD_NOMEM, "out of memory listing tag names");
        }
    }
    if (st == TD_OK && v1) {
        if (mask == (1u << SC_INTRINSIC)) {
            out->strings = fixed_list(a, intrinsic_names, N_INTRINSIC, limit, &out->nstrings);
        } else {
            st = set_names(&sets[0], limit, a, &out->strings, &out->nstrings, err);
        }
    }
    for (int i = 0; st == TD_OK && !v1 && i < SC_N; i++) {
        if (!(mask & (1u << i))) {
            continue;
        }
        td__tags_scope_out *so = &out->scopes[out->nscopes];
        so->name = scope_names[i];
        if (i == SC_INTRINSIC) {
            so->tags = fixed_list(a, intrinsic_names, N_INTRINSIC, limit, &so->n);
        } else if (i == SC_TRACE) {
            so->n = 0; /* no trace-level attributes in this store */
        } else {
            st = set_names(&sets[i], limit, a, &so->tags, &so->n, err);
        }
        /* all scopes asked: resource, span and intrinsic always, the others when they have tags */
        if (mask != (1u << i) && so->n == 0 && i != SC_INTRINSIC && i != SC_RESOURCE &&
            i != SC_SPAN) {
            continue;
        }
        out->nscopes++;
    }
    for (int i = 0; i < SC_N; i++) {
        bset_release(&sets[i]);
    }
    return st;
}

/* Fixed keyword answers of v2 values. */
static td_status fixed_values(td_arena *a, const char *const *v, size_t n, size_t limit,
                              td__tags_result *out, td_err *err)
{
    size_t k = n < limit ? n : limit;
    out->values = td_arena_calloc(a, k ? k : 1, sizeof(*out->values));
    if (!out->values) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < k; i++) {
        out->values[i] = (td__tags_value_out){"keyword", v[i]};
    }
    out->nvalues = k;
    return TD_OK;
}

static td_status run_values_v2(td_store *s, const td__tenants *ts, const td__tags_req *r,
                               const td__tags_limits *lim, td_arena *a, td__tags_result *out,
                               td_err *err)
{
    if (!r->tag || !*r->tag) {
        return td_err_set(err, TD_INVALID, "please provide a non-empty tagName");
    }
    td_traceql_attr at;
    td_err perr;
    td_err_init(&perr);
    td_status st = td_traceql_parse_attr(r->tag, strlen(r->tag), a, &at, &perr);
    if (st == TD_NOMEM) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    if (st) {
        return td_err_set(err, TD_INVALID,
                          "please provide a valid tagName: failed to parse identifier %.200s: %s",
                          r->tag, perr.msg);
    }
    size_t limit = r->limit ? r->limit : TD__TAGS_DEFAULT_LIMIT;
    if (limit > TD__TAGS_DEFAULT_LIMIT) {
        limit = TD__TAGS_DEFAULT_LIMIT;
    }
    if (at.scope == TD_TRACEQL_SCOPE_INTRINSIC) {
        if (at.intrinsic == TD_TRACEQL_I_STATUS) {
            return fixed_values(a, status_values, 3, limit, out, err);
        }
        if (at.intrinsic == TD_TRACEQL_I_KIND) {
            return fixed_values(a, kind_values, 6, limit, out, err);
        }
    }
    window w = make_window(r);
    bset set;
    bset_init(&set, a, limit);
    const td_traceql_query *q = filter_query(r->q, a);
    const char *ikey = NULL; /* intrinsic as indexed */
    bool scan = false;       /* not in the index: scan spans even without q */
    if (at.scope == TD_TRACEQL_SCOPE_INTRINSIC) {
        switch (at.intrinsic) {
        case TD_TRACEQL_I_NAME:
            ikey = "name";
            break;
        case TD_TRACEQL_I_STATUS_MESSAGE:
            ikey = "statusMessage";
            break;
        case TD_TRACEQL_I_ROOT_NAME:
            ikey = "rootName";
            break;
        case TD_TRACEQL_I_ROOT_SERVICE:
            ikey = "rootServiceName";
            break;
        case TD_TRACEQL_I_EVENT_NAME:
        case TD_TRACEQL_I_INSTR_NAME:
        case TD_TRACEQL_I_INSTR_VERSION:
            scan = true;
            break;
        default:
            /* durations, IDs, childCount: no value list (Tempo answers none either) */
            w.empty = true;
            break;
        }
    }
    if (!w.empty) {
        if (q || scan) {
            values_ud u = {.set = &set, .attr = &at};
            st = scan_spans(s, ts, q, &w, lim, a, values_of_span, &u, &out->inspected_bytes, err);
        } else if (ikey) {
            st = index_values(s, ts, TD_IDX_INTRINSIC, ikey, strlen(ikey), &w, limit, &set,
                              &out->inspected_bytes, err);
        } else if (at.scope == TD_TRACEQL_SCOPE_NONE) {
            st = index_values(s, ts, TD_IDX_SPAN, at.name, at.name_len, &w, limit, &set,
                              &out->inspected_bytes, err);
            if (!st) {
                st = index_values(s, ts, TD_IDX_RESOURCE, at.name, at.name_len, &w, limit, &set,
                                  &out->inspected_bytes, err);
            }
        } else {
            st = index_values(s, ts, idx_scope_of(at.scope), at.name, at.name_len, &w, limit, &set,
                              &out->inspected_bytes, err);
        }
    }
    if (!st && set.oom) {
        st = td_err_set(err, TD_NOMEM, "out of memory listing tag values");
    }
    if (!st) {
        size_t k;
        bent *v = bset_sorted(&set, &k);
        out->values = td_arena_calloc(a, k ? k : 1, sizeof(*out->values));
        td_buf t = TD_BUF_INIT;
        for (size_t i = 0; out->values && i < k && out->nvalues < limit; i++) {
            const char *type;
            td_buf_reset(&t);
            if (!td__tags_value_text(v[i].t, v[i].p, v[i].len, &type, &t)) {
                continue;
            }
            const char *val = td_arena_strndup(a, t.data, t.len);
            if (!val) {
                break;
            }
            out->values[out->nvalues++] = (td__tags_value_out){type, val};
        }
        td_buf_release(&t);
        td_free(v);
        if (!out->values) {
            st = td_err_set(err, TD_NOMEM, "out of memory");
        }
    }
    bset_release(&set);
    return st;
}

static td_status run_values_v1(td_store *s, const td__tenants *ts, const td__tags_req *r,
                               td_arena *a, td__tags_result *out, td_err *err)
{
    if (!r->tag || !*r->tag) {
        return td_err_set(err, TD_INVALID, "please provide a non-empty tagName");
    }
    size_t limit = r->limit ? r->limit : TD__TAGS_DEFAULT_LIMIT;
    if (limit > TD__TAGS_DEFAULT_LIMIT) {
        limit = TD__TAGS_DEFAULT_LIMIT;
    }
    if (strcmp(r->tag, "status.code") == 0) {
        out->strings = fixed_list(a, v1_status_code, 3, limit, &out->nstrings);
        return TD_OK;
    }
    if (strcmp(r->tag, "error") == 0) {
        static const char *const t[] = {"true"};
        out->strings = fixed_list(a, t, 1, limit, &out->nstrings);
        return TD_OK;
    }
    window w = make_window(r);
    bset set, text;
    bset_init(&set, a, TD__TAGS_DEFAULT_LIMIT);
    bset_init(&text, a, TD__TAGS_DEFAULT_LIMIT);
    size_t klen = strlen(r->tag);
    td_status st = TD_OK;
    if (!w.empty) {
        st = index_values(s, ts, TD_IDX_SPAN, r->tag, klen, &w, limit, &set, &out->inspected_bytes,
                          err);
        if (!st) {
            st = index_values(s, ts, TD_IDX_RESOURCE, r->tag, klen, &w, limit, &set,
                              &out->inspected_bytes, err);
        }
    }
    /* v1 values are plain strings: int 5 and string "5" are one value */
    td_buf t = TD_BUF_INIT;
    for (size_t i = 0; !st && i < set.cap; i++) {
        const char *type;
        td_buf_reset(&t);
        if (set.e[i].p && td__tags_value_text(set.e[i].t, set.e[i].p, set.e[i].len, &type, &t)) {
            bset_add(&text, 0, t.data, t.len);
        }
    }
    td_buf_release(&t);
    if (!st && (set.oom || text.oom)) {
        st = td_err_set(err, TD_NOMEM, "out of memory listing tag values");
    }
    if (!st) {
        st = set_names(&text, limit, a, &out->strings, &out->nstrings, err);
    }
    bset_release(&set);
    bset_release(&text);
    return st;
}

td_status td__tags_run(td_store *s, const td__tenants *ts, const td__tags_req *r,
                       const td__tags_limits *lim, td_arena *a, td__tags_result *out, td_err *err)
{
    memset(out, 0, sizeof(*out));
    out->kind = r->kind;
    switch (r->kind) {
    case TD__TAGS_V1:
    case TD__TAGS_V2:
        return run_names(s, ts, r, lim, a, out, err);
    case TD__TAG_VALUES_V1:
        return run_values_v1(s, ts, r, a, out, err);
    case TD__TAG_VALUES_V2:
        return run_values_v2(s, ts, r, lim, a, out, err);
    }
    return td_err_set(err, TD_INTERNAL, "unknown tags request");
}

/* ---- encoders ---- */

static void j_metrics(td_json *j, const td__tags_result *res)
{
    td_json_key(j, "metrics");
    td_json_begin_object(j);
    if (res->inspected_bytes) {
        td_json_key(j, "inspectedBytes");
        td_json_uint64_str(j, res->inspected_bytes);
    }
    td_json_end_object(j);
}

static void j_strings(td_json *j, const char *key, const char *const *v, size_t n)
{
    td_json_key(j, key);
    td_json_begin_array(j);
    for (size_t i = 0; i < n; i++) {
        td_json_string(j, v[i]);
    }
    td_json_end_array(j);
}

void td__tags_json(const td__tags_result *res, td_buf *out)
{
    td_json j;
    td_json_init(&j, out);
    td_json_begin_object(&j);
    switch (res->kind) {
    case TD__TAGS_V1:
        j_strings(&j, "tagNames", res->strings, res->nstrings);
        break;
    case TD__TAG_VALUES_V1:
        j_strings(&j, "tagValues", res->strings, res->nstrings);
        break;
    case TD__TAGS_V2:
        td_json_key(&j, "scopes");
        td_json_begin_array(&j);
        for (size_t i = 0; i < res->nscopes; i++) {
            td_json_begin_object(&j);
            td_json_key(&j, "name");
            td_json_string(&j, res->scopes[i].name);
            j_strings(&j, "tags", res->scopes[i].tags, res->scopes[i].n);
            td_json_end_object(&j);
        }
        td_json_end_array(&j);
        break;
    case TD__TAG_VALUES_V2:
        td_json_key(&j, "tagValues");
        td_json_begin_array(&j);
        for (size_t i = 0; i < res->nvalues; i++) {
            td_json_begin_object(&j);
            td_json_key(&j, "type");
            td_json_string(&j, res->values[i].type);
            td_json_key(&j, "value");
            td_json_string(&j, res->values[i].value);
            td_json_end_object(&j);
        }
        td_json_end_array(&j);
        break;
    }
    j_metrics(&j, res);
    td_json_end_object(&j);
}

/* Pack msg (get_packed_size / pack of its type) onto out. */
#define PACK_ONTO(out, fn, msg, err)                                                               \
    do {                                                                                           \
        size_t n_ = fn##__get_packed_size(msg);                                                    \
        if (!td_buf_try_grow((out), n_ + 1)) {                                                     \
            return td_err_set((err), TD_NOMEM, "out of memory encoding a tags response");          \
        }                                                                                          \
        fn##__pack((msg), (uint8_t *)(out)->data + (out)->len);                                    \
        td_buf_setlen((out), (out)->len + n_);                                                     \
    } while (0)

td_status td__tags_pb(const td__tags_result *res, td_buf *out, td_err *err)
{
    Tempopb__MetadataMetrics m = TEMPOPB__METADATA_METRICS__INIT;
    m.inspectedbytes = res->inspected_bytes;
    switch (res->kind) {
    case TD__TAGS_V1: {
        Tempopb__SearchTagsResponse r = TEMPOPB__SEARCH_TAGS_RESPONSE__INIT;
        r.n_tagnames = res->nstrings;
        r.tagnames = (char **)res->strings;
        r.metrics = &m;
        PACK_ONTO(out, tempopb__search_tags_response, &r, err);
        return TD_OK;
    }
    case TD__TAG_VALUES_V1: {
        Tempopb__SearchTagValuesResponse r = TEMPOPB__SEARCH_TAG_VALUES_RESPONSE__INIT;
        r.n_tagvalues = res->nstrings;
        r.tagvalues = (char **)res->strings;
        r.metrics = &m;
        PACK_ONTO(out, tempopb__search_tag_values_response, &r, err);
        return TD_OK;
    }
    case TD__TAGS_V2: {
        Tempopb__SearchTagsV2Scope sc[TD__TAGS_MAX_SCOPES];
        Tempopb__SearchTagsV2Scope *scp[TD__TAGS_MAX_SCOPES];
        for (size_t i = 0; i < res->nscopes; i++) {
            tempopb__search_tags_v2_scope__init(&sc[i]);
            sc[i].name = (char *)res->scopes[i].name;
            sc[i].n_tags = res->scopes[i].n;
            sc[i].tags = (char **)res->scopes[i].tags;
            scp[i] = &sc[i];
        }
        Tempopb__SearchTagsV2Response r = TEMPOPB__SEARCH_TAGS_V2_RESPONSE__INIT;
        r.n_scopes = res->nscopes;
        r.scopes = scp;
        r.metrics = &m;
        PACK_ONTO(out, tempopb__search_tags_v2_response, &r, err);
        return TD_OK;
    }
    case TD__TAG_VALUES_V2: {
        size_t n = res->nvalues;
        Tempopb__TagValue *tv = td_calloc(n ? n : 1, sizeof(*tv));
        Tempopb__TagValue **tvp = td_calloc(n ? n : 1, sizeof(*tvp));
        if (!tv || !tvp) {
            td_free(tv);
            td_free(tvp);
            return td_err_set(err, TD_NOMEM, "out of memory encoding a tags response");
        }
        for (size_t i = 0; i < n; i++) {
            tempopb__tag_value__init(&tv[i]);
            tv[i].type = (char *)res->values[i].type;
            tv[i].value = (char *)res->values[i].value;
            tvp[i] = &tv[i];
        }
        Tempopb__SearchTagValuesV2Response r = TEMPOPB__SEARCH_TAG_VALUES_V2_RESPONSE__INIT;
        r.n_tagvalues = n;
        r.tagvalues = tvp;
        r.metrics = &m;
        td_status st = TD_OK;
        size_t len = tempopb__search_tag_values_v2_response__get_packed_size(&r);
        if (!td_buf_try_grow(out, len + 1)) {
            st = td_err_set(err, TD_NOMEM, "out of memory encoding a tags response");
        } else {
            tempopb__search_tag_values_v2_response__pack(&r, (uint8_t *)out->data + out->len);
            td_buf_setlen(out, out->len + len);
        }
        td_free(tv);
        td_free(tvp);
        return st;
    }
    }
    return td_err_set(err, TD_INTERNAL, "unknown tags response");
}
