/*
 * eval.c - evaluate a parsed TraceQL query over one trace held in memory
 * (API-CONTRACT §4.4-§4.6), following Tempo's engine (ast_execute.go):
 *
 *   - a pipeline maps a list of spansets to a list of spansets; its input is
 *     one spanset holding every span of the trace;
 *   - `{ cond }` keeps, in each spanset, the spans for which cond is true and
 *     drops spansets left empty;
 *   - `A && B` / `A || B` evaluate both sides on each input spanset and yield
 *     the union of their spans (AND: both sides non-empty; OR: either);
 *   - structural operators return spans of the right side related to the left
 *     side (union forms: of both sides; negated forms: the right-side spans
 *     without the relation); several spansets on one side is an error;
 *   - aggregates filter spansets and attach their value ("count()" = 5);
 *     by() splits spansets and attaches the group value; coalesce() merges.
 *
 * Memory: everything per trace comes from a scratch allocator inside the
 * evaluator whose blocks are kept from one trace to the next, so steady-state
 * evaluation allocates nothing; only the result is copied into the caller's
 * arena. Structural operators use a nested-set numbering of the span tree
 * (pre-order number and end of subtree), built once per trace when the query
 * needs it, so each operator is O((|A| + |B|) log |A|).
 */
#include "api/traceql/tql_int.h"
#include "core/mem.h"

#include <regex.h>
#include <string.h>

typedef struct blk {
    struct blk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} blk;

typedef struct sattr {
    const char *key;
    td__tql_val v;
    struct sattr *next;
} sattr;

typedef struct {
    uint32_t *idx; /* span indices, ascending */
    uint32_t n;
    sattr *attrs; /* newest first */
} sset;

typedef struct {
    sset *v;
    size_t n, cap;
} slist;

struct td_traceql_eval {
    const td_traceql_query *q;
    regex_t *re;
    size_t nre;
    blk *head, *cur;
    /* per trace */
    const td_traceql_trace *t;
    uint32_t n;
    bool tree;
    int32_t *par;        /* effective parent (cycles cut) */
    uint32_t *pre, *end; /* nested set: pre-order number, last number in the subtree */
    uint32_t *nchild;
    uint32_t *stamp_a, *stamp_p, *cnt;
    uint32_t gen;
    td_err *err;
};

#define SCRATCH_BLOCK (64 * 1024)

/* ------------------------------------------------------------------------ */
/* scratch memory                                                           */
/* ------------------------------------------------------------------------ */

static void scratch_reset(td_traceql_eval *ev)
{
    ev->cur = ev->head;
    if (ev->head) {
        ev->head->used = 0;
    }
}

static void *scratch(td_traceql_eval *ev, size_t n)
{
    size_t need;
    if (!td_size_add(n, 15, &need)) {
        return NULL;
    }
    need &= ~(size_t)15;
    if (need == 0) {
        need = 16;
    }
    blk *b = ev->cur;
    while (b && b->cap - b->used < need) {
        b = b->next;
        if (b) {
            b->used = 0; /* blocks after cur are unused in this trace */
        }
    }
    if (!b) {
        size_t cap = need > SCRATCH_BLOCK ? need : SCRATCH_BLOCK, total;
        if (!td_size_add(cap, sizeof(blk), &total)) {
            return NULL;
        }
        b = td_malloc(total);
        if (!b) {
            return NULL;
        }
        b->next = NULL;
        b->cap = cap;
        b->used = 0;
        if (!ev->head) {
            ev->head = b;
        } else {
            blk *tail = ev->cur ? ev->cur : ev->head;
            while (tail->next) {
                tail = tail->next;
            }
            tail->next = b;
        }
    }
    ev->cur = b;
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

static td_status nomem(td_traceql_eval *ev)
{
    return td_err_set(ev->err, TD_NOMEM, "out of memory evaluating the query");
}

static void *scratch_array(td_traceql_eval *ev, size_t count, size_t size)
{
    size_t n;
    if (!td_size_mul(count, size, &n)) {
        return NULL;
    }
    return scratch(ev, n ? n : 1);
}

static td_status slist_push(td_traceql_eval *ev, slist *l, sset s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        sset *nv = scratch_array(ev, cap, sizeof(sset));
        if (!nv) {
            return nomem(ev);
        }
        if (l->n) {
            memcpy(nv, l->v, l->n * sizeof(sset));
        }
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* lifecycle                                                                */
/* ------------------------------------------------------------------------ */

td_status td_traceql_eval_new(const td_traceql_query *q, td_traceql_eval **out, td_err *err)
{
    td_traceql_eval *ev = td_calloc(1, sizeof(*ev));
    if (!ev) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    ev->q = q;
    if (q->nregexes) {
        ev->re = td_calloc(q->nregexes, sizeof(regex_t));
        if (!ev->re) {
            td_free(ev);
            return td_err_set(err, TD_NOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < q->nregexes; i++) {
        int rc = regcomp(&ev->re[i], q->regexes[i], REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char buf[96];
            regerror(rc, &ev->re[i], buf, sizeof(buf));
            td_traceql_eval_free(ev);
            return td_err_set(err, rc == REG_ESPACE ? TD_NOMEM : TD_INVALID,
                              "invalid regex \"%.60s\": %s", q->regex_src[i], buf);
        }
        ev->nre++;
    }
    *out = ev;
    return TD_OK;
}

void td_traceql_eval_free(td_traceql_eval *ev)
{
    if (!ev) {
        return;
    }
    for (size_t i = 0; i < ev->nre; i++) {
        regfree(&ev->re[i]);
    }
    td_free(ev->re);
    blk *b = ev->head;
    while (b) {
        blk *next = b->next;
        td_free(b);
        b = next;
    }
    td_free(ev);
}

/* ------------------------------------------------------------------------ */
/* the span tree                                                            */
/* ------------------------------------------------------------------------ */

static td_status build_tree(td_traceql_eval *ev)
{
    uint32_t n = ev->n;
    const td_traceql_span *sp = ev->t->spans;
    ev->par = scratch_array(ev, n, sizeof(int32_t));
    ev->pre = scratch_array(ev, n, sizeof(uint32_t));
    ev->end = scratch_array(ev, n, sizeof(uint32_t));
    ev->nchild = scratch_array(ev, n, sizeof(uint32_t));
    uint32_t *first = scratch_array(ev, (size_t)n + 1, sizeof(uint32_t));
    uint32_t *kids = scratch_array(ev, n, sizeof(uint32_t));
    uint32_t *stk = scratch_array(ev, n, sizeof(uint32_t));
    uint32_t *it = scratch_array(ev, n, sizeof(uint32_t));
    uint32_t *walk = scratch_array(ev, n, sizeof(uint32_t));
    if (!ev->par || !ev->pre || !ev->end || !ev->nchild || !first || !kids || !stk || !it ||
        !walk) {
        return nomem(ev);
    }
    memset(first, 0, ((size_t)n + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        int32_t p = sp[i].parent;
        ev->par[i] = (p < 0 || (uint32_t)p >= n || (uint32_t)p == i) ? -1 : p;
        if (ev->par[i] >= 0) {
            first[ev->par[i] + 1]++;
        }
        ev->pre[i] = UINT32_MAX;
        walk[i] = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        first[i + 1] += first[i];
    }
    memset(it, 0, n * sizeof(uint32_t)); /* fill position per parent */
    for (uint32_t i = 0; i < n; i++) {
        if (ev->par[i] >= 0) {
            uint32_t p = (uint32_t)ev->par[i];
            kids[first[p] + it[p]++] = i;
        }
    }
    uint32_t counter = 0, walk_id = 0;
    for (uint32_t pass = 0; pass < 2; pass++) {
        for (uint32_t r = 0; r < n; r++) {
            if (ev->pre[r] != UINT32_MAX) {
                continue;
            }
            uint32_t root = r;
            if (pass == 0) {
                if (ev->par[r] >= 0) {
                    continue;
                }
            } else {
                /*
                 * Not reachable from any root: r leads into a parent cycle. Walk up
                 * to the first node seen twice and cut the cycle there, so r and
                 * the rest of the cycle hang below it.
                 */
                walk_id++;
                uint32_t x = r;
                while (walk[x] != walk_id) {
                    walk[x] = walk_id;
                    x = (uint32_t)ev->par[x]; /* unvisited nodes always have a parent here */
                }
                root = x;
                ev->par[root] = -1;
            }
            size_t top = 0;
            stk[top] = root;
            it[top] = first[root];
            ev->pre[root] = counter++;
            top++;
            while (top > 0) {
                uint32_t u = stk[top - 1];
                if (it[top - 1] < first[u + 1]) {
                    uint32_t c = kids[it[top - 1]++];
                    if (ev->pre[c] != UINT32_MAX || ev->par[c] != (int32_t)u) {
                        continue; /* a cut node listed under its old parent */
                    }
                    ev->pre[c] = counter++;
                    stk[top] = c;
                    it[top] = first[c];
                    top++;
                } else {
                    ev->end[u] = counter - 1;
                    top--;
                }
            }
        }
    }
    memset(ev->nchild, 0, n * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        if (ev->par[i] >= 0) {
            ev->nchild[ev->par[i]]++;
        }
    }
    ev->tree = true;
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* field expressions                                                        */
/* ------------------------------------------------------------------------ */

static td__tql_val str_val(const char *s)
{
    td__tql_val v = {.t = TV_STR};
    v.s.p = s ? s : "";
    v.s.n = strlen(v.s.p);
    return v;
}

static td__tql_val multi(td__tql_multi kind, const td_otlp_span *span, const char *key)
{
    td__tql_val v = {.t = TV_MULTI};
    v.m.kind = kind;
    v.m.span = span;
    v.m.key = key;
    return v;
}

static td__tql_val hex_val(const ProtobufCBinaryData *b, bool trim)
{
    td__tql_val v = {.t = TV_HEX, .trim = trim};
    v.hex.p = b->data;
    v.hex.n = b->len;
    return v;
}

static td__tql_val intrinsic(const td_traceql_eval *ev, td_traceql_intrinsic id, uint32_t si)
{
    const td_traceql_span *s = &ev->t->spans[si];
    const td_otlp_span *sp = s->span;
    td__tql_val v;
    memset(&v, 0, sizeof(v));
    switch (id) {
    case TD_TRACEQL_I_NAME:
        return str_val(sp->name);
    case TD_TRACEQL_I_STATUS:
        v.t = TV_STATUS;
        v.i = sp->status ? (int64_t)sp->status->code : 0;
        return v;
    case TD_TRACEQL_I_STATUS_MESSAGE:
        return str_val(sp->status ? sp->status->message : "");
    case TD_TRACEQL_I_KIND:
        v.t = TV_KIND;
        v.i = (int64_t)sp->kind;
        return v;
    case TD_TRACEQL_I_DURATION: {
        uint64_t d = sp->end_time_unix_nano >= sp->start_time_unix_nano
                         ? sp->end_time_unix_nano - sp->start_time_unix_nano
                         : 0;
        v.t = TV_DUR;
        v.i = d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
        return v;
    }
    case TD_TRACEQL_I_TRACE_DURATION:
        v.t = TV_DUR;
        v.i = ev->t->duration_ns > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)ev->t->duration_ns;
        return v;
    case TD_TRACEQL_I_ROOT_NAME:
        return ev->t->root_name ? str_val(ev->t->root_name) : v;
    case TD_TRACEQL_I_ROOT_SERVICE:
        return ev->t->root_service ? str_val(ev->t->root_service) : v;
    case TD_TRACEQL_I_SPAN_ID:
        return hex_val(&sp->span_id, false);
    case TD_TRACEQL_I_PARENT_ID:
        return hex_val(&sp->parent_span_id, false);
    case TD_TRACEQL_I_TRACE_ID:
        if (ev->t->trace_id) {
            v.t = TV_HEX;
            v.trim = true;
            v.hex.p = ev->t->trace_id;
            v.hex.n = ev->t->trace_id_len;
        }
        return v;
    case TD_TRACEQL_I_CHILD_COUNT:
        v.t = TV_INT;
        v.i = ev->tree ? ev->nchild[si] : 0;
        return v;
    case TD_TRACEQL_I_EVENT_NAME:
        return multi(TM_EVENT_NAME, sp, NULL);
    case TD_TRACEQL_I_EVENT_TIME:
        return multi(TM_EVENT_TIME, sp, NULL);
    case TD_TRACEQL_I_LINK_TRACE_ID:
        return multi(TM_LINK_TRACE_ID, sp, NULL);
    case TD_TRACEQL_I_LINK_SPAN_ID:
        return multi(TM_LINK_SPAN_ID, sp, NULL);
    case TD_TRACEQL_I_INSTR_NAME:
        return s->scope ? str_val(s->scope->name) : v;
    case TD_TRACEQL_I_INSTR_VERSION:
        return s->scope ? str_val(s->scope->version) : v;
    case TD_TRACEQL_I_NONE:
        break;
    }
    return v;
}

static td__tql_val lookup(const td_traceql_eval *ev, const td_traceql_attr *a, uint32_t si)
{
    const td_traceql_span *s = &ev->t->spans[si];
    const td_otlp_span *sp = s->span;
    switch (a->scope) {
    case TD_TRACEQL_SCOPE_SPAN:
        return td__tql_val_of_any(td__tql_find_kv(sp->attributes, sp->n_attributes, a->name));
    case TD_TRACEQL_SCOPE_RESOURCE:
        return td__tql_val_of_any(s->resource ? td__tql_find_kv(s->resource->attributes,
                                                                s->resource->n_attributes, a->name)
                                              : NULL);
    case TD_TRACEQL_SCOPE_NONE: {
        /* corrections: span attribute first, then resource (not events or links) */
        td__tql_val v =
            td__tql_val_of_any(td__tql_find_kv(sp->attributes, sp->n_attributes, a->name));
        if (v.t == TV_NIL && s->resource) {
            v = td__tql_val_of_any(
                td__tql_find_kv(s->resource->attributes, s->resource->n_attributes, a->name));
        }
        return v;
    }
    case TD_TRACEQL_SCOPE_INSTRUMENTATION:
        return td__tql_val_of_any(
            s->scope ? td__tql_find_kv(s->scope->attributes, s->scope->n_attributes, a->name)
                     : NULL);
    case TD_TRACEQL_SCOPE_EVENT:
        return multi(TM_EVENT_ATTR, sp, a->name);
    case TD_TRACEQL_SCOPE_LINK:
        return multi(TM_LINK_ATTR, sp, a->name);
    case TD_TRACEQL_SCOPE_INTRINSIC:
        return intrinsic(ev, a->intrinsic, si);
    }
    td__tql_val nil;
    memset(&nil, 0, sizeof(nil));
    return nil;
}

static td__tql_val eval_expr(const td_traceql_eval *ev, const td_traceql_expr *e, uint32_t si)
{
    td__tql_val v;
    memset(&v, 0, sizeof(v));
    switch (e->kind) {
    case TD_TRACEQL_E_LITERAL:
        return td__tql_val_of_lit(&e->lit);
    case TD_TRACEQL_E_ATTR:
        return lookup(ev, &e->attr, si);
    case TD_TRACEQL_E_UNARY: {
        td__tql_val x = eval_expr(ev, e->lhs, si);
        switch (e->op) {
        case TD_TRACEQL_OP_NOT:
            if (x.t == TV_BOOL) {
                v.t = TV_BOOL;
                v.b = !x.b;
            }
            return v;
        case TD_TRACEQL_OP_NEG:
            return td__tql_negate(&x);
        case TD_TRACEQL_OP_EXISTS:
            v.t = TV_BOOL;
            v.b = td__tql_val_present(&x);
            return v;
        default:
            v.t = TV_BOOL;
            v.b = !td__tql_val_present(&x);
            return v;
        }
    }
    case TD_TRACEQL_E_BINARY: {
        td__tql_val l = eval_expr(ev, e->lhs, si);
        td__tql_val r = eval_expr(ev, e->rhs, si);
        if (e->op <= TD_TRACEQL_OP_NRE) {
            v.t = TV_BOOL;
            v.b = td__tql_compare(e->op, &l, &r, e->regex >= 0 ? &ev->re[e->regex] : NULL);
            return v;
        }
        return td__tql_arith(e->op, &l, &r);
    }
    case TD_TRACEQL_E_LOGIC: {
        /* short-circuit: AND stops at the first false operand, OR at the first true */
        bool is_and = e->op == TD_TRACEQL_OP_AND;
        v.t = TV_BOOL;
        v.b = is_and;
        for (size_t i = 0; i < e->nargs; i++) {
            td__tql_val x = eval_expr(ev, e->args[i], si);
            if (td__tql_val_truthy(&x) != is_and) {
                v.b = !is_and;
                break;
            }
        }
        return v;
    }
    }
    return v;
}

static bool span_matches(const td_traceql_eval *ev, const td_traceql_expr *filter, uint32_t si)
{
    if (!filter) {
        return true;
    }
    td__tql_val v = eval_expr(ev, filter, si);
    return td__tql_val_truthy(&v);
}

/* ------------------------------------------------------------------------ */
/* set helpers                                                              */
/* ------------------------------------------------------------------------ */

typedef int (*cmp_fn)(const void *ctx, uint32_t a, uint32_t b);

/* Stable merge sort of v[0..n) with tmp[0..n). */
static void msort(uint32_t *v, uint32_t *tmp, size_t n, cmp_fn cmp, const void *ctx)
{
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                tmp[k++] = cmp(ctx, v[j], v[i]) < 0 ? v[j++] : v[i++];
            }
            while (i < mid) {
                tmp[k++] = v[i++];
            }
            while (j < hi) {
                tmp[k++] = v[j++];
            }
        }
        memcpy(v, tmp, n * sizeof(uint32_t));
    }
}

static int cmp_index(const void *ctx, uint32_t a, uint32_t b)
{
    (void)ctx;
    return a < b ? -1 : a > b;
}

/* Union of the spans of all spansets in lists[0..nl), sorted and unique. */
static td_status union_of(td_traceql_eval *ev, const slist *lists, size_t nl, sset *out)
{
    size_t total = 0;
    for (size_t k = 0; k < nl; k++) {
        for (size_t i = 0; i < lists[k].n; i++) {
            total += lists[k].v[i].n;
        }
    }
    uint32_t *v = scratch_array(ev, total, sizeof(uint32_t));
    uint32_t *tmp = scratch_array(ev, total, sizeof(uint32_t));
    if (!v || !tmp) {
        return nomem(ev);
    }
    size_t m = 0;
    for (size_t k = 0; k < nl; k++) {
        for (size_t i = 0; i < lists[k].n; i++) {
            if (lists[k].v[i].n) {
                memcpy(v + m, lists[k].v[i].idx, lists[k].v[i].n * sizeof(uint32_t));
            }
            m += lists[k].v[i].n;
        }
    }
    msort(v, tmp, m, cmp_index, NULL);
    size_t u = 0;
    for (size_t i = 0; i < m; i++) {
        if (u == 0 || v[u - 1] != v[i]) {
            v[u++] = v[i];
        }
    }
    out->idx = v;
    out->n = (uint32_t)u;
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* structural relations                                                     */
/* ------------------------------------------------------------------------ */

typedef enum { REL_CHILD, REL_PARENT, REL_DESC, REL_ANCE, REL_SIBL } rel_kind;

typedef struct {
    rel_kind kind;
    uint32_t *pre_sorted; /* DESC/ANCE: pre numbers of A, ascending */
    uint32_t *max_end;    /* DESC: running max of end over pre_sorted order */
    size_t na;
} rel;

static int cmp_pre(const void *ctx, uint32_t a, uint32_t b)
{
    const td_traceql_eval *ev = ctx;
    return ev->pre[a] < ev->pre[b] ? -1 : ev->pre[a] > ev->pre[b];
}

static void next_gen(td_traceql_eval *ev)
{
    if (++ev->gen == 0) {
        memset(ev->stamp_a, 0, ev->n * sizeof(uint32_t));
        memset(ev->stamp_p, 0, ev->n * sizeof(uint32_t));
        ev->gen = 1;
    }
}

/* Prepare the relation "x is <kind> of A" for testing. */
static td_status rel_prepare(td_traceql_eval *ev, rel *r, rel_kind kind, const sset *a)
{
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->na = a->n;
    next_gen(ev);
    switch (kind) {
    case REL_CHILD:
        for (uint32_t i = 0; i < a->n; i++) {
            ev->stamp_a[a->idx[i]] = ev->gen;
        }
        return TD_OK;
    case REL_PARENT:
        for (uint32_t i = 0; i < a->n; i++) {
            int32_t p = ev->par[a->idx[i]];
            if (p >= 0) {
                ev->stamp_p[p] = ev->gen;
            }
        }
        return TD_OK;
    case REL_SIBL:
        for (uint32_t i = 0; i < a->n; i++) {
            uint32_t s = a->idx[i];
            int32_t p = ev->par[s];
            ev->stamp_a[s] = ev->gen;
            if (p >= 0) {
                if (ev->stamp_p[p] != ev->gen) {
                    ev->stamp_p[p] = ev->gen;
                    ev->cnt[p] = 0;
                }
                ev->cnt[p]++;
            }
        }
        return TD_OK;
    case REL_DESC:
    case REL_ANCE: {
        uint32_t *order = scratch_array(ev, a->n, sizeof(uint32_t));
        uint32_t *tmp = scratch_array(ev, a->n, sizeof(uint32_t));
        r->pre_sorted = scratch_array(ev, a->n, sizeof(uint32_t));
        r->max_end = scratch_array(ev, a->n, sizeof(uint32_t));
        if (!order || !tmp || !r->pre_sorted || !r->max_end) {
            return nomem(ev);
        }
        if (a->n) {
            memcpy(order, a->idx, a->n * sizeof(uint32_t));
        }
        msort(order, tmp, a->n, cmp_pre, ev);
        uint32_t m = 0;
        for (uint32_t i = 0; i < a->n; i++) {
            r->pre_sorted[i] = ev->pre[order[i]];
            if (i == 0 || ev->end[order[i]] > m) {
                m = ev->end[order[i]];
            }
            r->max_end[i] = m;
        }
        return TD_OK;
    }
    }
    return TD_OK;
}

/* Number of entries of sorted v[0..n) that are < x. */
static size_t lower_bound(const uint32_t *v, size_t n, uint32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static bool rel_test(const td_traceql_eval *ev, const rel *r, uint32_t b)
{
    switch (r->kind) {
    case REL_CHILD: /* b's parent is in A */
        return ev->par[b] >= 0 && ev->stamp_a[ev->par[b]] == ev->gen;
    case REL_PARENT: /* b is the parent of a span in A */
        return ev->stamp_p[b] == ev->gen;
    case REL_SIBL: { /* b shares its parent with another span of A */
        int32_t p = ev->par[b];
        if (p < 0 || ev->stamp_p[p] != ev->gen) {
            return false;
        }
        uint32_t c = ev->cnt[p] - (ev->stamp_a[b] == ev->gen ? 1 : 0);
        return c > 0;
    }
    case REL_DESC: { /* some a in A has pre[a] < pre[b] <= end[a] */
        size_t k = lower_bound(r->pre_sorted, r->na, ev->pre[b]);
        return k > 0 && r->max_end[k - 1] >= ev->pre[b];
    }
    case REL_ANCE: { /* some a in A has pre[b] < pre[a] <= end[b] */
        size_t k = lower_bound(r->pre_sorted, r->na, ev->pre[b] + 1);
        return k < r->na && r->pre_sorted[k] <= ev->end[b];
    }
    }
    return false;
}

/* B filtered by the relation to A (negate: without it). */
static td_status rel_filter(td_traceql_eval *ev, rel_kind kind, const sset *a, const sset *b,
                            bool negate, sset *out)
{
    rel r;
    td_status st = rel_prepare(ev, &r, kind, a);
    if (st != TD_OK) {
        return st;
    }
    out->idx = scratch_array(ev, b->n, sizeof(uint32_t));
    if (!out->idx) {
        return nomem(ev);
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        if (rel_test(ev, &r, b->idx[i]) != negate) {
            out->idx[k++] = b->idx[i];
        }
    }
    out->n = k;
    return TD_OK;
}

static td_status structural(td_traceql_eval *ev, td_traceql_ssop op, const sset *a, const sset *b,
                            sset *out)
{
    static const struct {
        rel_kind kind, inverse;
        int mode; /* 0 plain, 1 negated, 2 union */
    } ops[] = {
        [TD_TRACEQL_SS_CHILD] = {REL_CHILD, REL_PARENT, 0},
        [TD_TRACEQL_SS_PARENT] = {REL_PARENT, REL_CHILD, 0},
        [TD_TRACEQL_SS_DESC] = {REL_DESC, REL_ANCE, 0},
        [TD_TRACEQL_SS_ANCE] = {REL_ANCE, REL_DESC, 0},
        [TD_TRACEQL_SS_SIBL] = {REL_SIBL, REL_SIBL, 0},
        [TD_TRACEQL_SS_NOT_CHILD] = {REL_CHILD, REL_PARENT, 1},
        [TD_TRACEQL_SS_NOT_PARENT] = {REL_PARENT, REL_CHILD, 1},
        [TD_TRACEQL_SS_NOT_DESC] = {REL_DESC, REL_ANCE, 1},
        [TD_TRACEQL_SS_NOT_ANCE] = {REL_ANCE, REL_DESC, 1},
        [TD_TRACEQL_SS_NOT_SIBL] = {REL_SIBL, REL_SIBL, 1},
        [TD_TRACEQL_SS_UNION_CHILD] = {REL_CHILD, REL_PARENT, 2},
        [TD_TRACEQL_SS_UNION_PARENT] = {REL_PARENT, REL_CHILD, 2},
        [TD_TRACEQL_SS_UNION_DESC] = {REL_DESC, REL_ANCE, 2},
        [TD_TRACEQL_SS_UNION_ANCE] = {REL_ANCE, REL_DESC, 2},
        [TD_TRACEQL_SS_UNION_SIBL] = {REL_SIBL, REL_SIBL, 2},
    };
    if (!ev->tree) {
        td_status st = build_tree(ev);
        if (st != TD_OK) {
            return st;
        }
    }
    td_status st = rel_filter(ev, ops[op].kind, a, b, ops[op].mode == 1, out);
    if (st != TD_OK || ops[op].mode != 2) {
        return st;
    }
    /* union: also the spans of A related the other way round to B */
    sset left;
    st = rel_filter(ev, ops[op].inverse, b, a, false, &left);
    if (st != TD_OK) {
        return st;
    }
    if (left.n == 0) {
        return TD_OK;
    }
    slist parts[2] = {{&left, 1, 1}, {out, 1, 1}};
    sset merged = {0};
    st = union_of(ev, parts, 2, &merged);
    if (st == TD_OK) {
        out->idx = merged.idx;
        out->n = merged.n;
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* pipelines                                                                */
/* ------------------------------------------------------------------------ */

static td_status eval_pipeline(td_traceql_eval *ev, const td_traceql_pipeline *pl, slist in,
                               slist *out);

static td_status eval_ss(td_traceql_eval *ev, const td_traceql_ssexpr *s, const sset *in,
                         slist *out)
{
    switch (s->kind) {
    case TD_TRACEQL_SSE_FILTER: {
        uint32_t *idx = scratch_array(ev, in->n, sizeof(uint32_t));
        if (!idx) {
            return nomem(ev);
        }
        uint32_t k = 0;
        for (uint32_t i = 0; i < in->n; i++) {
            if (span_matches(ev, s->filter, in->idx[i])) {
                idx[k++] = in->idx[i];
            }
        }
        if (k == 0) {
            return TD_OK;
        }
        return slist_push(ev, out, (sset){idx, k, in->attrs});
    }
    case TD_TRACEQL_SSE_PIPELINE: {
        slist one = {0}, res = {0};
        td_status st = slist_push(ev, &one, *in);
        if (st == TD_OK) {
            st = eval_pipeline(ev, s->pipeline, one, &res);
        }
        for (size_t i = 0; st == TD_OK && i < res.n; i++) {
            st = slist_push(ev, out, res.v[i]);
        }
        return st;
    }
    case TD_TRACEQL_SSE_OP:
        break;
    }
    slist l = {0}, r = {0};
    td_status st = eval_ss(ev, s->lhs, in, &l);
    if (st == TD_OK) {
        st = eval_ss(ev, s->rhs, in, &r);
    }
    if (st != TD_OK) {
        return st;
    }
    if (s->op == TD_TRACEQL_SS_AND || s->op == TD_TRACEQL_SS_OR) {
        bool keep = s->op == TD_TRACEQL_SS_AND ? (l.n > 0 && r.n > 0) : (l.n > 0 || r.n > 0);
        if (!keep) {
            return TD_OK;
        }
        slist parts[2] = {l, r};
        sset u = {.attrs = in->attrs};
        st = union_of(ev, parts, 2, &u);
        return st == TD_OK ? slist_push(ev, out, u) : st;
    }
    if (l.n > 1 || r.n > 1) {
        return td_err_set(ev->err, TD_INVALID,
                          "spanset operators are not supported for multiple spansets per trace. "
                          "consider using coalesce()");
    }
    if (r.n == 0) {
        return TD_OK;
    }
    sset empty = {NULL, 0, NULL};
    sset res = {.attrs = in->attrs};
    st = structural(ev, s->op, l.n ? &l.v[0] : &empty, &r.v[0], &res);
    if (st != TD_OK || res.n == 0) {
        return st;
    }
    return slist_push(ev, out, res);
}

static bool is_num(const td__tql_val *v)
{
    return v->t == TV_INT || v->t == TV_FLOAT || v->t == TV_DUR;
}

static double as_double(const td__tql_val *v)
{
    return v->t == TV_FLOAT ? v->f : (double)v->i;
}

/*
 * count() or sum/avg/min/max(arg) over the spans of s: NIL when no span has a
 * numeric value. Types: all int -> int (avg: float), all duration -> duration,
 * any mix -> float.
 */
static td__tql_val aggregate(const td_traceql_eval *ev, const td_traceql_stage *st, const sset *s)
{
    td__tql_val r;
    memset(&r, 0, sizeof(r));
    if (st->agg == TD_TRACEQL_AGG_COUNT) {
        r.t = TV_INT;
        r.i = s->n;
        return r;
    }
    size_t n = 0;
    td__tql_vt type = TV_NIL;
    uint64_t isum = 0;
    double fsum = 0;
    td__tql_val best;
    memset(&best, 0, sizeof(best));
    for (uint32_t i = 0; i < s->n; i++) {
        td__tql_val v = eval_expr(ev, st->agg_arg, s->idx[i]);
        if (!is_num(&v)) {
            continue;
        }
        type = n == 0 ? v.t : (type == v.t ? type : TV_FLOAT);
        n++;
        isum += (uint64_t)(v.t == TV_FLOAT ? 0 : v.i);
        fsum += as_double(&v);
        if (st->agg == TD_TRACEQL_AGG_MIN || st->agg == TD_TRACEQL_AGG_MAX) {
            double x = as_double(&v), y = as_double(&best);
            bool better = best.t == TV_NIL ||
                          (best.t != TV_FLOAT && v.t != TV_FLOAT
                               ? (st->agg == TD_TRACEQL_AGG_MIN ? v.i < best.i : v.i > best.i)
                               : (st->agg == TD_TRACEQL_AGG_MIN ? x < y : x > y));
            if (better) {
                best = v;
            }
        }
    }
    if (n == 0) {
        return r;
    }
    switch (st->agg) {
    case TD_TRACEQL_AGG_MIN:
    case TD_TRACEQL_AGG_MAX:
        return best;
    case TD_TRACEQL_AGG_SUM:
        r.t = type;
        if (type == TV_FLOAT) {
            r.f = fsum;
        } else {
            r.i = (int64_t)isum;
        }
        return r;
    default: /* avg */
        if (type == TV_DUR) {
            r.t = TV_DUR;
            r.i = (int64_t)(fsum / (double)n);
        } else {
            r.t = TV_FLOAT;
            r.f = fsum / (double)n;
        }
        return r;
    }
}

static td_status add_attr(td_traceql_eval *ev, sset *s, const char *key, const td__tql_val *v)
{
    sattr *a = scratch(ev, sizeof(*a));
    if (!a) {
        return nomem(ev);
    }
    a->key = key;
    a->v = *v;
    a->next = s->attrs;
    s->attrs = a;
    return TD_OK;
}

typedef struct {
    const td__tql_val *keys; /* per position in the spanset: nf values */
    size_t nf;
} group_ctx;

static int cmp_group(const void *ctx, uint32_t a, uint32_t b)
{
    const group_ctx *g = ctx;
    for (size_t f = 0; f < g->nf; f++) {
        int c = td__tql_val_order(&g->keys[a * g->nf + f], &g->keys[b * g->nf + f]);
        if (c) {
            return c;
        }
    }
    return 0;
}

/* by(): split s into groups of equal field values, in value order. */
static td_status group_by(td_traceql_eval *ev, const td_traceql_stage *st, const sset *s,
                          slist *out)
{
    size_t nf = st->nfields;
    td__tql_val *keys = scratch_array(ev, (size_t)s->n * nf, sizeof(td__tql_val));
    uint32_t *order = scratch_array(ev, s->n, sizeof(uint32_t));
    uint32_t *tmp = scratch_array(ev, s->n, sizeof(uint32_t));
    if (!keys || !order || !tmp) {
        return nomem(ev);
    }
    for (uint32_t i = 0; i < s->n; i++) {
        for (size_t f = 0; f < nf; f++) {
            td__tql_val v = eval_expr(ev, st->fields[f], s->idx[i]);
            if (v.t == TV_MULTI) {
                v = td__tql_val_first(&v); /* an event/link field groups by its first value */
            }
            keys[(size_t)i * nf + f] = v;
        }
        order[i] = i;
    }
    group_ctx g = {keys, nf};
    msort(order, tmp, s->n, cmp_group, &g);
    for (uint32_t lo = 0; lo < s->n;) {
        uint32_t hi = lo + 1;
        while (hi < s->n && cmp_group(&g, order[lo], order[hi]) == 0) {
            hi++;
        }
        sset grp = {scratch_array(ev, hi - lo, sizeof(uint32_t)), hi - lo, s->attrs};
        if (!grp.idx) {
            return nomem(ev);
        }
        for (uint32_t k = lo; k < hi; k++) {
            grp.idx[k - lo] = s->idx[order[k]]; /* stable sort: still ascending */
        }
        for (size_t f = 0; f < nf; f++) {
            td_status rc = add_attr(ev, &grp, st->keys[f], &keys[(size_t)order[lo] * nf + f]);
            if (rc != TD_OK) {
                return rc;
            }
        }
        td_status rc = slist_push(ev, out, grp);
        if (rc != TD_OK) {
            return rc;
        }
        lo = hi;
    }
    return TD_OK;
}

static td_status eval_pipeline(td_traceql_eval *ev, const td_traceql_pipeline *pl, slist in,
                               slist *out)
{
    slist cur = in;
    for (size_t k = 0; k < pl->nstages; k++) {
        const td_traceql_stage *st = &pl->stages[k];
        slist next = {0};
        td_status rc = TD_OK;
        switch (st->kind) {
        case TD_TRACEQL_STAGE_SPANSET:
            for (size_t i = 0; rc == TD_OK && i < cur.n; i++) {
                rc = eval_ss(ev, st->ss, &cur.v[i], &next);
            }
            break;
        case TD_TRACEQL_STAGE_SCALAR: {
            td__tql_val lit = td__tql_val_of_lit(&st->value);
            for (size_t i = 0; rc == TD_OK && i < cur.n; i++) {
                td__tql_val v = aggregate(ev, st, &cur.v[i]);
                if (v.t == TV_NIL || !td__tql_compare(st->cmp, &v, &lit, NULL)) {
                    continue;
                }
                sset s = cur.v[i];
                rc = add_attr(ev, &s, st->key, &v);
                if (rc == TD_OK) {
                    rc = slist_push(ev, &next, s);
                }
            }
            break;
        }
        case TD_TRACEQL_STAGE_BY:
            for (size_t i = 0; rc == TD_OK && i < cur.n; i++) {
                rc = group_by(ev, st, &cur.v[i], &next);
            }
            break;
        case TD_TRACEQL_STAGE_SELECT:
            next = cur; /* select() only decides which attributes are shown */
            break;
        case TD_TRACEQL_STAGE_COALESCE:
            if (cur.n > 0) {
                sset u = {NULL, 0, NULL};
                rc = union_of(ev, &cur, 1, &u);
                if (rc == TD_OK && u.n > 0) {
                    rc = slist_push(ev, &next, u);
                }
            }
            break;
        }
        if (rc != TD_OK) {
            return rc;
        }
        cur = next;
    }
    *out = cur;
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* entry point                                                              */
/* ------------------------------------------------------------------------ */

static int cmp_start(const void *ctx, uint32_t a, uint32_t b)
{
    const td_traceql_trace *t = ctx;
    uint64_t x = t->spans[a].span->start_time_unix_nano, y = t->spans[b].span->start_time_unix_nano;
    if (x != y) {
        return x < y ? -1 : 1;
    }
    return a < b ? -1 : a > b;
}

td_status td_traceql_eval_trace(td_traceql_eval *ev, const td_traceql_trace *t, td_arena *a,
                                td_traceql_result *out, td_err *err)
{
    out->sets = NULL;
    out->nsets = 0;
    if (t->nspans > (size_t)INT32_MAX) {
        return td_err_set(err, TD_TOO_LARGE, "trace has too many spans to evaluate");
    }
    if (t->nspans == 0) {
        return TD_OK;
    }
    scratch_reset(ev);
    ev->t = t;
    ev->n = (uint32_t)t->nspans;
    ev->tree = false;
    ev->err = err;
    ev->gen = 0;
    ev->stamp_a = scratch_array(ev, ev->n, sizeof(uint32_t));
    ev->stamp_p = scratch_array(ev, ev->n, sizeof(uint32_t));
    ev->cnt = scratch_array(ev, ev->n, sizeof(uint32_t));
    sset all = {scratch_array(ev, ev->n, sizeof(uint32_t)), ev->n, NULL};
    if (!ev->stamp_a || !ev->stamp_p || !ev->cnt || !all.idx) {
        return nomem(ev);
    }
    memset(ev->stamp_a, 0, ev->n * sizeof(uint32_t));
    memset(ev->stamp_p, 0, ev->n * sizeof(uint32_t));
    for (uint32_t i = 0; i < ev->n; i++) {
        all.idx[i] = i;
    }
    td_status st = TD_OK;
    if (ev->q->needs_tree) {
        st = build_tree(ev); /* span:childCount reads it even without structural operators */
    }
    slist in = {0}, res = {0};
    if (st == TD_OK) {
        st = slist_push(ev, &in, all);
    }
    if (st == TD_OK) {
        st = eval_pipeline(ev, &ev->q->pipeline, in, &res);
    }
    if (st != TD_OK) {
        return st;
    }
    size_t nsets = 0;
    for (size_t i = 0; i < res.n; i++) {
        nsets += res.v[i].n > 0;
    }
    if (nsets == 0) {
        return TD_OK;
    }
    td_traceql_spanset *sets = td_arena_calloc(a, nsets, sizeof(*sets));
    uint32_t *tmp = scratch_array(ev, ev->n, sizeof(uint32_t));
    if (!sets || !tmp) {
        return td_err_set(err, TD_NOMEM, "out of memory evaluating the query");
    }
    size_t k = 0;
    for (size_t i = 0; i < res.n; i++) {
        const sset *s = &res.v[i];
        if (s->n == 0) {
            continue;
        }
        td_traceql_spanset *o = &sets[k++];
        o->spans = td_arena_alloc(a, s->n * sizeof(uint32_t));
        size_t na = 0;
        for (const sattr *x = s->attrs; x; x = x->next) {
            na++;
        }
        o->attrs = na ? td_arena_calloc(a, na, sizeof(td_traceql_kv)) : NULL;
        if (!o->spans || (na && !o->attrs)) {
            return td_err_set(err, TD_NOMEM, "out of memory evaluating the query");
        }
        memcpy(o->spans, s->idx, s->n * sizeof(uint32_t));
        msort(o->spans, tmp, s->n, cmp_start, t);
        o->matched = s->n;
        o->nattrs = na;
        size_t j = na;
        for (const sattr *x = s->attrs; x; x = x->next) {
            td_traceql_kv *kv = &o->attrs[--j]; /* the list is newest first */
            kv->key = x->key;
            kv->value = td__tql_val_public(&x->v, a);
        }
    }
    out->sets = sets;
    out->nsets = nsets;
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* trace preparation                                                        */
/* ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

static bool same_id(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

td_status td_traceql_trace_init(td_traceql_trace *t, td_traceql_span *spans, size_t n, td_arena *a,
                                td_err *err)
{
    memset(t, 0, sizeof(*t));
    t->spans = spans;
    t->nspans = n;
    if (n > (size_t)INT32_MAX) {
        return td_err_set(err, TD_TOO_LARGE, "trace has too many spans");
    }
    if (n == 0) {
        return TD_OK;
    }
    size_t cap = 16;
    while (cap < 2 * n) {
        cap *= 2;
    }
    int32_t *slot = td_arena_alloc(a, cap * sizeof(int32_t));
    if (!slot) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    memset(slot, 0xff, cap * sizeof(int32_t)); /* -1: empty */
    for (size_t i = 0; i < n; i++) {
        const ProtobufCBinaryData *id = &spans[i].span->span_id;
        if (id->len == 0) {
            continue;
        }
        size_t h = (size_t)hash_bytes(id->data, id->len) & (cap - 1);
        while (slot[h] >= 0 && !same_id(&spans[slot[h]].span->span_id, id)) {
            h = (h + 1) & (cap - 1);
        }
        if (slot[h] < 0) {
            slot[h] = (int32_t)i; /* duplicates: the first one wins */
        }
    }
    uint64_t min_start = UINT64_MAX, max_end = 0;
    int32_t root = -1;
    for (size_t i = 0; i < n; i++) {
        const td_otlp_span *sp = spans[i].span;
        const ProtobufCBinaryData *pid = &sp->parent_span_id;
        spans[i].parent = -1;
        if (pid->len > 0) {
            size_t h = (size_t)hash_bytes(pid->data, pid->len) & (cap - 1);
            while (slot[h] >= 0) {
                if (same_id(&spans[slot[h]].span->span_id, pid)) {
                    if ((size_t)slot[h] != i) {
                        spans[i].parent = slot[h];
                    }
                    break;
                }
                h = (h + 1) & (cap - 1);
            }
        } else if (root < 0 || sp->start_time_unix_nano < spans[root].span->start_time_unix_nano) {
            root = (int32_t)i;
        }
        if (sp->start_time_unix_nano < min_start) {
            min_start = sp->start_time_unix_nano;
        }
        if (sp->end_time_unix_nano > max_end) {
            max_end = sp->end_time_unix_nano;
        }
        if (!t->trace_id && sp->trace_id.len > 0) {
            t->trace_id = sp->trace_id.data;
            t->trace_id_len = sp->trace_id.len;
        }
    }
    t->duration_ns = max_end > min_start ? max_end - min_start : 0;
    if (root >= 0) {
        const td_traceql_span *r = &spans[root];
        t->root_name = r->span->name ? r->span->name : "";
        if (r->resource) {
            const td_otlp_any *v =
                td__tql_find_kv(r->resource->attributes, r->resource->n_attributes, "service.name");
            if (v &&
                v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
                t->root_service = v->string_value ? v->string_value : "";
            }
        }
    }
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* attributes shown for a span                                              */
/* ------------------------------------------------------------------------ */

td_status td_traceql_span_attrs(const td_traceql_query *q, const td_traceql_trace *t, size_t span,
                                td_arena *a, td_traceql_kv **out, size_t *n, td_err *err)
{
    *out = NULL;
    *n = 0;
    if (q->nrefs == 0 || span >= t->nspans) {
        return TD_OK;
    }
    td_traceql_kv *kv = td_arena_calloc(a, q->nrefs, sizeof(*kv));
    if (!kv) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    /* a throwaway evaluator view: lookups need only the trace */
    td_traceql_eval view;
    memset(&view, 0, sizeof(view));
    view.t = t;
    size_t k = 0;
    const td_otlp_span *sp = t->spans[span].span;
    for (size_t i = 0; i < q->nrefs; i++) {
        const td_traceql_attr *ref = &q->refs[i];
        const char *key = ref->name;
        td_traceql_value val;
        memset(&val, 0, sizeof(val));
        if (ref->scope == TD_TRACEQL_SCOPE_INTRINSIC) {
            switch (ref->intrinsic) {
            case TD_TRACEQL_I_STATUS:
                val.type = TD_TRACEQL_STRING;
                val.s.ptr = td__tql_status_name(sp->status ? (int64_t)sp->status->code : 0);
                break;
            case TD_TRACEQL_I_KIND:
                val.type = TD_TRACEQL_STRING;
                val.s.ptr = td__tql_kind_name((int64_t)sp->kind);
                break;
            case TD_TRACEQL_I_CHILD_COUNT: {
                int64_t c = 0;
                for (size_t j = 0; j < t->nspans; j++) {
                    c += t->spans[j].parent == (int32_t)span;
                }
                key = "childCount";
                val.type = TD_TRACEQL_INT;
                val.i = c;
                break;
            }
            default: {
                td__tql_val v = intrinsic(&view, ref->intrinsic, (uint32_t)span);
                if (v.t == TV_MULTI) {
                    v = td__tql_val_first(&v);
                }
                if (ref->intrinsic == TD_TRACEQL_I_STATUS_MESSAGE && v.t == TV_STR && v.s.n == 0) {
                    continue; /* only a non-empty message is worth showing */
                }
                val = td__tql_val_public(&v, a);
                break;
            }
            }
            if (val.type == TD_TRACEQL_STRING && !val.s.len && val.s.ptr) {
                val.s.len = strlen(val.s.ptr);
            }
        } else {
            td__tql_val v = lookup(&view, ref, (uint32_t)span);
            if (v.t == TV_MULTI) {
                v = td__tql_val_first(&v); /* event./link.: the first one carrying it */
            }
            val = td__tql_val_public(&v, a);
        }
        if (val.type == TD_TRACEQL_NIL) {
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++) {
            dup = strcmp(kv[j].key, key) == 0;
        }
        if (dup) {
            continue;
        }
        kv[k].key = key;
        kv[k].value = val;
        k++;
    }
    *out = kv;
    *n = k;
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* attribute values for the metrics stage                                   */
/* ------------------------------------------------------------------------ */

td_traceql_value td_traceql_eval_attr(const td_traceql_eval *ev, size_t span,
                                      const td_traceql_attr *a, td_arena *ar)
{
    td_traceql_value nil;
    memset(&nil, 0, sizeof(nil));
    if (!ev->t || span >= ev->t->nspans) {
        return nil;
    }
    td__tql_val v = lookup(ev, a, (uint32_t)span);
    /* event/link values: the first element, as the search attributes do */
    td__tql_val f = td__tql_val_first(&v);
    return td__tql_val_public(&f, ar);
}
