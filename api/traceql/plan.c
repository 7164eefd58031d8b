/*
 * plan.c - the index planner hook: conditions from a parsed query that every
 * matching trace must satisfy, for the store to narrow its candidates.
 *
 * Soundness argument. A trace matches when the pipeline yields a non-empty
 * spanset. Every span in a result went through each `{ cond }` stage of the
 * pipeline, and a non-empty result of `A && B` or of a structural operator
 * (plain or union form) needs both sides non-empty; a negated structural
 * operator needs only its right side. So for each such filter some span of
 * the trace satisfies cond, hence each of cond's top-level AND-ed comparisons.
 * Nothing under `||`, `!`, or a negated operator's left side is used, and any
 * comparison we cannot express exactly (regex, !=, nil tests, arithmetic,
 * attribute against attribute) is skipped: fewer hints is always safe.
 */
#include "api/traceql/tql_int.h"

#include <string.h>

typedef struct {
    td_arena *a;
    td_traceql_hint *v;
    size_t n, cap;
    bool oom;
} hints;

static void push(hints *h, const td_traceql_hint *x)
{
    if (h->oom) {
        return;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        td_traceql_hint *nv = td_arena_alloc(h->a, cap * sizeof(*nv));
        if (!nv) {
            h->oom = true;
            return;
        }
        if (h->n) {
            memcpy(nv, h->v, h->n * sizeof(*nv));
        }
        h->v = nv;
        h->cap = cap;
    }
    h->v[h->n++] = *x;
}

static td_traceql_op flip(td_traceql_op op)
{
    switch (op) {
    case TD_TRACEQL_OP_LT:
        return TD_TRACEQL_OP_GT;
    case TD_TRACEQL_OP_LTE:
        return TD_TRACEQL_OP_GTE;
    case TD_TRACEQL_OP_GT:
        return TD_TRACEQL_OP_LT;
    case TD_TRACEQL_OP_GTE:
        return TD_TRACEQL_OP_LTE;
    default:
        return op;
    }
}

static bool is_range(td_traceql_op op)
{
    return op == TD_TRACEQL_OP_LT || op == TD_TRACEQL_OP_LTE || op == TD_TRACEQL_OP_GT ||
           op == TD_TRACEQL_OP_GTE;
}

/* One comparison `attr op literal` (either order) as a hint, if expressible. */
static void from_cmp(hints *h, const td_traceql_expr *e)
{
    if (e->kind != TD_TRACEQL_E_BINARY || !(e->op == TD_TRACEQL_OP_EQ || is_range(e->op))) {
        return;
    }
    const td_traceql_expr *attr = e->lhs, *lit = e->rhs;
    td_traceql_op op = e->op;
    if (attr->kind == TD_TRACEQL_E_LITERAL && lit->kind == TD_TRACEQL_E_ATTR) {
        attr = e->rhs;
        lit = e->lhs;
        op = flip(op);
    }
    if (attr->kind != TD_TRACEQL_E_ATTR || lit->kind != TD_TRACEQL_E_LITERAL) {
        return;
    }
    const td_traceql_attr *at = &attr->attr;
    const td_traceql_value *v = &lit->lit;
    td_traceql_hint x;
    memset(&x, 0, sizeof(x));
    x.op = op;
    x.value = *v;
    bool eq = op == TD_TRACEQL_OP_EQ;
    bool str = v->type == TD_TRACEQL_STRING;
    bool num = v->type == TD_TRACEQL_INT || v->type == TD_TRACEQL_FLOAT;
    switch (at->scope) {
    case TD_TRACEQL_SCOPE_SPAN:
    case TD_TRACEQL_SCOPE_RESOURCE:
    case TD_TRACEQL_SCOPE_NONE:
        if (at->scope == TD_TRACEQL_SCOPE_RESOURCE && eq && str &&
            strcmp(at->name, "service.name") == 0) {
            x.field = TD_TRACEQL_HINT_SERVICE;
            push(h, &x);
            return;
        }
        if ((eq && (str || num || v->type == TD_TRACEQL_BOOL)) || (!eq && num)) {
            x.field = TD_TRACEQL_HINT_ATTR;
            x.scope = at->scope;
            x.attr = at->name;
            push(h, &x);
        }
        return;
    case TD_TRACEQL_SCOPE_INTRINSIC:
        break;
    default:
        return; /* event, link, instrumentation: not indexed */
    }
    switch (at->intrinsic) {
    case TD_TRACEQL_I_NAME:
    case TD_TRACEQL_I_ROOT_NAME:
    case TD_TRACEQL_I_ROOT_SERVICE:
        if (eq && str) {
            x.field = at->intrinsic == TD_TRACEQL_I_NAME        ? TD_TRACEQL_HINT_SPAN_NAME
                      : at->intrinsic == TD_TRACEQL_I_ROOT_NAME ? TD_TRACEQL_HINT_ROOT_NAME
                                                                : TD_TRACEQL_HINT_ROOT_SERVICE;
            push(h, &x);
        }
        return;
    case TD_TRACEQL_I_STATUS:
        if (eq && v->type == TD_TRACEQL_STATUS) {
            x.field = TD_TRACEQL_HINT_STATUS;
            push(h, &x);
        }
        return;
    case TD_TRACEQL_I_KIND:
        if (eq && v->type == TD_TRACEQL_KIND) {
            x.field = TD_TRACEQL_HINT_KIND;
            push(h, &x);
        }
        return;
    case TD_TRACEQL_I_DURATION:
    case TD_TRACEQL_I_TRACE_DURATION:
        /* durations compare with plain integers as nanoseconds; floats are skipped */
        if (v->type == TD_TRACEQL_DURATION || v->type == TD_TRACEQL_INT) {
            x.field = at->intrinsic == TD_TRACEQL_I_DURATION ? TD_TRACEQL_HINT_DURATION
                                                             : TD_TRACEQL_HINT_TRACE_DURATION;
            x.value.type = TD_TRACEQL_DURATION;
            push(h, &x);
        }
        return;
    default:
        return;
    }
}

static void from_filter(hints *h, const td_traceql_expr *e)
{
    if (!e) {
        return;
    }
    if (e->kind == TD_TRACEQL_E_LOGIC && e->op == TD_TRACEQL_OP_AND) {
        for (size_t i = 0; i < e->nargs; i++) {
            from_cmp(h, e->args[i]);
        }
        return;
    }
    from_cmp(h, e);
}

static void from_pipeline(hints *h, const td_traceql_pipeline *pl);

static void from_ss(hints *h, const td_traceql_ssexpr *s)
{
    switch (s->kind) {
    case TD_TRACEQL_SSE_FILTER:
        from_filter(h, s->filter);
        return;
    case TD_TRACEQL_SSE_PIPELINE:
        from_pipeline(h, s->pipeline);
        return;
    case TD_TRACEQL_SSE_OP:
        switch (s->op) {
        case TD_TRACEQL_SS_OR:
            return;
        case TD_TRACEQL_SS_NOT_CHILD:
        case TD_TRACEQL_SS_NOT_PARENT:
        case TD_TRACEQL_SS_NOT_DESC:
        case TD_TRACEQL_SS_NOT_ANCE:
        case TD_TRACEQL_SS_NOT_SIBL:
            from_ss(h, s->rhs); /* the left side may be empty */
            return;
        default:
            from_ss(h, s->lhs);
            from_ss(h, s->rhs);
            return;
        }
    }
}

static void from_pipeline(hints *h, const td_traceql_pipeline *pl)
{
    for (size_t i = 0; i < pl->nstages; i++) {
        if (pl->stages[i].kind == TD_TRACEQL_STAGE_SPANSET) {
            from_ss(h, pl->stages[i].ss);
        }
    }
}

td_status td_traceql_hints(const td_traceql_query *q, td_arena *a, td_traceql_hint **out, size_t *n,
                           td_err *err)
{
    hints h = {.a = a};
    from_pipeline(&h, &q->pipeline);
    if (h.oom) {
        return td_err_set(err, TD_NOMEM, "out of memory planning the query");
    }
    *out = h.v;
    *n = h.n;
    return TD_OK;
}
