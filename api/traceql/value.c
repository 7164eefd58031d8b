/*
 * value.c - TraceQL runtime values: conversion from stored OTLP values,
 * comparison (API-CONTRACT §4.4 and its corrections), arithmetic, grouping
 * order. Shared by the evaluator and by the parser's constant folding.
 *
 * Comparison rules, after Tempo's BinaryOperation.execute:
 *   - nil on either side, or types that do not match -> false, for != too;
 *   - int, float and duration compare numerically (int/duration exactly,
 *     anything with a float as doubles); strings compare bytewise;
 *   - bool, status and kind support only = and !=;
 *   - arrays and event/link values: true if any element satisfies the
 *     comparison, for != and !~ only if every element does.
 * Arithmetic: int with int stays int (wrapping, as Go; / and % by zero give
 * nil instead of Tempo's query error); every other numeric mix is float (Tempo
 * computes duration arithmetic in floats too); anything else is nil.
 */
#include "api/traceql/tql_int.h"

#include <math.h>
#include <regex.h>
#include <string.h>

const td_otlp_any *td__tql_find_kv(td_otlp_kv *const *kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        const td_otlp_kv *kv = kvs[i];
        if (kv && kv->key && kv->key[0] == key[0] && strcmp(kv->key, key) == 0) {
            return kv->value;
        }
    }
    return NULL;
}

td__tql_val td__tql_val_of_any(const td_otlp_any *v)
{
    td__tql_val r;
    memset(&r, 0, sizeof(r));
    if (!v) {
        return r;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        r.t = TV_STR;
        r.s.p = v->string_value ? v->string_value : "";
        r.s.n = strlen(r.s.p);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        r.t = TV_BOOL;
        r.b = v->bool_value != 0;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        r.t = TV_INT;
        r.i = v->int_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        r.t = TV_FLOAT;
        r.f = v->double_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        r.t = TV_ARRAY;
        r.any = v;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET:
        break;
    default:
        r.t = TV_OTHER; /* kvlist, bytes, string index */
        r.any = v;
        break;
    }
    return r;
}

td__tql_val td__tql_val_of_lit(const td_traceql_value *v)
{
    td__tql_val r;
    memset(&r, 0, sizeof(r));
    switch (v->type) {
    case TD_TRACEQL_NIL:
        break;
    case TD_TRACEQL_INT:
        r.t = TV_INT, r.i = v->i;
        break;
    case TD_TRACEQL_FLOAT:
        r.t = TV_FLOAT, r.f = v->f;
        break;
    case TD_TRACEQL_STRING:
        r.t = TV_STR, r.s.p = v->s.ptr, r.s.n = v->s.len;
        break;
    case TD_TRACEQL_BOOL:
        r.t = TV_BOOL, r.b = v->b;
        break;
    case TD_TRACEQL_DURATION:
        r.t = TV_DUR, r.i = v->i;
        break;
    case TD_TRACEQL_STATUS:
        r.t = TV_STATUS, r.i = v->i;
        break;
    case TD_TRACEQL_KIND:
        r.t = TV_KIND, r.i = v->i;
        break;
    case TD_TRACEQL_OTLP:
        return td__tql_val_of_any(v->otlp);
    }
    return r;
}

size_t td__tql_hex(const uint8_t *p, size_t n, char *buf)
{
    static const char digits[] = "0123456789abcdef";
    if (n > 32) {
        n = 32;
    }
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = digits[p[i] >> 4];
        buf[2 * i + 1] = digits[p[i] & 15];
    }
    buf[2 * n] = '\0';
    return 2 * n;
}

td_traceql_value td__tql_val_public(const td__tql_val *v, td_arena *a)
{
    td_traceql_value r;
    memset(&r, 0, sizeof(r));
    switch (v->t) {
    case TV_INT:
        r.type = TD_TRACEQL_INT, r.i = v->i;
        break;
    case TV_FLOAT:
        r.type = TD_TRACEQL_FLOAT, r.f = v->f;
        break;
    case TV_STR:
        r.type = TD_TRACEQL_STRING, r.s.ptr = v->s.p, r.s.len = v->s.n;
        break;
    case TV_BOOL:
        r.type = TD_TRACEQL_BOOL, r.b = v->b;
        break;
    case TV_DUR:
        r.type = TD_TRACEQL_DURATION, r.i = v->i;
        break;
    case TV_STATUS:
        r.type = TD_TRACEQL_STATUS, r.i = v->i;
        break;
    case TV_KIND:
        r.type = TD_TRACEQL_KIND, r.i = v->i;
        break;
    case TV_ARRAY:
    case TV_OTHER:
        r.type = TD_TRACEQL_OTLP, r.otlp = v->any;
        break;
    case TV_HEX: {
        char buf[65];
        size_t n = td__tql_hex(v->hex.p, v->hex.n, buf);
        char *s = td_arena_strndup(a, buf, n);
        if (s) {
            r.type = TD_TRACEQL_STRING, r.s.ptr = s, r.s.len = n;
        }
        break;
    }
    case TV_NIL:
    case TV_MULTI:
        break;
    }
    return r;
}

/* ---- elements of arrays and of event/link values ---- */

typedef struct {
    const td__tql_val *v;
    size_t i;
} elem_iter;

static bool is_collection(const td__tql_val *v)
{
    return v->t == TV_ARRAY || v->t == TV_MULTI;
}

static bool iter_next(elem_iter *it, td__tql_val *e)
{
    const td__tql_val *v = it->v;
    memset(e, 0, sizeof(*e));
    if (v->t == TV_ARRAY) {
        const td_otlp_array *arr = v->any->array_value;
        if (!arr || it->i >= arr->n_values) {
            return false;
        }
        *e = td__tql_val_of_any(arr->values[it->i++]);
        return true;
    }
    const td_otlp_span *sp = v->m.span;
    switch (v->m.kind) {
    case TM_EVENT_ATTR:
        while (it->i < sp->n_events) {
            const td_otlp_event *ev = sp->events[it->i++];
            if (!ev) {
                continue;
            }
            *e = td__tql_val_of_any(td__tql_find_kv(ev->attributes, ev->n_attributes, v->m.key));
            if (e->t != TV_NIL) {
                return true;
            }
        }
        return false;
    case TM_LINK_ATTR:
        while (it->i < sp->n_links) {
            const td_otlp_link *lk = sp->links[it->i++];
            if (!lk) {
                continue;
            }
            *e = td__tql_val_of_any(td__tql_find_kv(lk->attributes, lk->n_attributes, v->m.key));
            if (e->t != TV_NIL) {
                return true;
            }
        }
        return false;
    case TM_EVENT_NAME:
    case TM_EVENT_TIME:
        while (it->i < sp->n_events) {
            const td_otlp_event *ev = sp->events[it->i++];
            if (!ev) {
                continue;
            }
            if (v->m.kind == TM_EVENT_NAME) {
                e->t = TV_STR;
                e->s.p = ev->name ? ev->name : "";
                e->s.n = strlen(e->s.p);
            } else {
                e->t = TV_DUR;
                e->i = (int64_t)(ev->time_unix_nano - sp->start_time_unix_nano);
            }
            return true;
        }
        return false;
    case TM_LINK_TRACE_ID:
    case TM_LINK_SPAN_ID:
        while (it->i < sp->n_links) {
            const td_otlp_link *lk = sp->links[it->i++];
            if (!lk) {
                continue;
            }
            const ProtobufCBinaryData *id =
                v->m.kind == TM_LINK_TRACE_ID ? &lk->trace_id : &lk->span_id;
            e->t = TV_HEX;
            e->trim = v->m.kind == TM_LINK_TRACE_ID;
            e->hex.p = id->data;
            e->hex.n = id->len;
            return true;
        }
        return false;
    }
    return false;
}

td__tql_val td__tql_val_first(const td__tql_val *v)
{
    td__tql_val e;
    elem_iter it = {v, 0};
    if (v->t != TV_MULTI || !iter_next(&it, &e)) {
        memset(&e, 0, sizeof(e));
        return v->t == TV_MULTI ? e : *v;
    }
    return e;
}

bool td__tql_val_present(const td__tql_val *v)
{
    if (v->t == TV_MULTI) {
        elem_iter it = {v, 0};
        td__tql_val e;
        return iter_next(&it, &e);
    }
    return v->t != TV_NIL;
}

bool td__tql_val_truthy(const td__tql_val *v)
{
    if (v->t == TV_BOOL) {
        return v->b;
    }
    if (is_collection(v)) {
        elem_iter it = {v, 0};
        td__tql_val e;
        while (iter_next(&it, &e)) {
            if (e.t == TV_BOOL && e.b) {
                return true;
            }
        }
    }
    return false;
}

/* ---- comparison ---- */

static bool is_num(td__tql_vt t)
{
    return t == TV_INT || t == TV_FLOAT || t == TV_DUR;
}

/* A TV_HEX value as a string in buf (65 bytes); other values unchanged. */
static td__tql_val hex_as_str(const td__tql_val *v, char *buf)
{
    if (v->t != TV_HEX) {
        return *v;
    }
    td__tql_val r;
    memset(&r, 0, sizeof(r));
    r.t = TV_STR;
    r.trim = v->trim;
    r.s.n = td__tql_hex(v->hex.p, v->hex.n, buf);
    r.s.p = buf;
    return r;
}

static void trim_zeros(td__tql_val *v)
{
    while (v->s.n > 0 && v->s.p[0] == '0') {
        v->s.p++, v->s.n--;
    }
}

static bool cmp_result(td_traceql_op op, int c)
{
    switch (op) {
    case TD_TRACEQL_OP_EQ:
        return c == 0;
    case TD_TRACEQL_OP_NEQ:
        return c != 0;
    case TD_TRACEQL_OP_LT:
        return c < 0;
    case TD_TRACEQL_OP_LTE:
        return c <= 0;
    case TD_TRACEQL_OP_GT:
        return c > 0;
    case TD_TRACEQL_OP_GTE:
        return c >= 0;
    default:
        return false;
    }
}

static bool scalar_cmp(td_traceql_op op, const td__tql_val *l0, const td__tql_val *r0,
                       const void *re)
{
    char lb[65], rb[65];
    td__tql_val l = hex_as_str(l0, lb), r = hex_as_str(r0, rb);
    if (l.t == TV_NIL || r.t == TV_NIL) {
        return false;
    }
    if (l.t == TV_STR && r.t == TV_STR) {
        if (op == TD_TRACEQL_OP_RE || op == TD_TRACEQL_OP_NRE) {
            if (!re) {
                return false;
            }
            bool m = regexec((const regex_t *)re, l.s.p, 0, NULL, 0) == 0;
            return op == TD_TRACEQL_OP_RE ? m : !m;
        }
        if (l.trim || r.trim) {
            /* trace:id: leading zeros are not significant (Tempo trims both sides) */
            trim_zeros(&l);
            trim_zeros(&r);
        }
        size_t n = l.s.n < r.s.n ? l.s.n : r.s.n;
        int c = n ? memcmp(l.s.p, r.s.p, n) : 0;
        if (c == 0) {
            c = l.s.n < r.s.n ? -1 : l.s.n > r.s.n ? 1 : 0;
        }
        return cmp_result(op, c);
    }
    if (op == TD_TRACEQL_OP_RE || op == TD_TRACEQL_OP_NRE) {
        return false;
    }
    if (is_num(l.t) && is_num(r.t)) {
        if (l.t != TV_FLOAT && r.t != TV_FLOAT) {
            return cmp_result(op, l.i < r.i ? -1 : l.i > r.i ? 1 : 0);
        }
        double x = l.t == TV_FLOAT ? l.f : (double)l.i;
        double y = r.t == TV_FLOAT ? r.f : (double)r.i;
        switch (op) {
        case TD_TRACEQL_OP_EQ:
            return x == y;
        case TD_TRACEQL_OP_NEQ:
            return x != y;
        case TD_TRACEQL_OP_LT:
            return x < y;
        case TD_TRACEQL_OP_LTE:
            return x <= y;
        case TD_TRACEQL_OP_GT:
            return x > y;
        case TD_TRACEQL_OP_GTE:
            return x >= y;
        default:
            return false;
        }
    }
    if (l.t != r.t || (op != TD_TRACEQL_OP_EQ && op != TD_TRACEQL_OP_NEQ)) {
        return false;
    }
    switch (l.t) {
    case TV_BOOL:
        return (l.b == r.b) == (op == TD_TRACEQL_OP_EQ);
    case TV_STATUS:
    case TV_KIND:
        return (l.i == r.i) == (op == TD_TRACEQL_OP_EQ);
    default:
        return false; /* kvlist, bytes: never equal to anything */
    }
}

bool td__tql_compare(td_traceql_op op, const td__tql_val *l, const td__tql_val *r, const void *re)
{
    if (l->t == TV_NIL || r->t == TV_NIL) {
        return false;
    }
    bool lc = is_collection(l), rc = is_collection(r);
    if (!lc && !rc) {
        return scalar_cmp(op, l, r, re);
    }
    if (lc && rc) {
        return false; /* Tempo: "array operators must consist of a scalar and an array operand" */
    }
    bool all = op == TD_TRACEQL_OP_NEQ || op == TD_TRACEQL_OP_NRE;
    elem_iter it = {lc ? l : r, 0};
    td__tql_val e;
    size_t n = 0, hits = 0;
    while (iter_next(&it, &e)) {
        n++;
        bool res = lc ? scalar_cmp(op, &e, r, re) : scalar_cmp(op, l, &e, re);
        if (res) {
            hits++;
            if (!all) {
                return true;
            }
        } else if (all) {
            return false;
        }
    }
    if (n == 0 && (l->t == TV_MULTI || r->t == TV_MULTI)) {
        return false; /* no event/link carries the attribute: it is missing */
    }
    return all ? hits == n : hits > 0;
}

/* ---- arithmetic ---- */

td__tql_val td__tql_arith(td_traceql_op op, const td__tql_val *l, const td__tql_val *r)
{
    td__tql_val v;
    memset(&v, 0, sizeof(v));
    if (!is_num(l->t) || !is_num(r->t)) {
        return v;
    }
    if (l->t == TV_INT && r->t == TV_INT) {
        uint64_t a = (uint64_t)l->i, b = (uint64_t)r->i;
        v.t = TV_INT;
        switch (op) {
        case TD_TRACEQL_OP_ADD:
            v.i = (int64_t)(a + b);
            return v;
        case TD_TRACEQL_OP_SUB:
            v.i = (int64_t)(a - b);
            return v;
        case TD_TRACEQL_OP_MUL:
            v.i = (int64_t)(a * b);
            return v;
        case TD_TRACEQL_OP_DIV:
        case TD_TRACEQL_OP_MOD:
            if (r->i == 0) {
                v.t = TV_NIL;
            } else if (r->i == -1) {
                /* avoid INT64_MIN / -1; Go wraps to INT64_MIN and gives 0 for % */
                v.i = op == TD_TRACEQL_OP_DIV ? (int64_t)(0 - a) : 0;
            } else {
                v.i = op == TD_TRACEQL_OP_DIV ? l->i / r->i : l->i % r->i;
            }
            return v;
        case TD_TRACEQL_OP_POW: {
            double p = pow((double)l->i, (double)r->i);
            if (r->i >= 0 && p >= -9.2e18 && p <= 9.2e18) {
                v.i = (int64_t)p;
            } else {
                v.t = TV_FLOAT;
                v.f = p;
            }
            return v;
        }
        default:
            v.t = TV_NIL;
            return v;
        }
    }
    double x = l->t == TV_FLOAT ? l->f : (double)l->i;
    double y = r->t == TV_FLOAT ? r->f : (double)r->i;
    v.t = TV_FLOAT;
    switch (op) {
    case TD_TRACEQL_OP_ADD:
        v.f = x + y;
        break;
    case TD_TRACEQL_OP_SUB:
        v.f = x - y;
        break;
    case TD_TRACEQL_OP_MUL:
        v.f = x * y;
        break;
    case TD_TRACEQL_OP_DIV:
        v.f = x / y;
        break;
    case TD_TRACEQL_OP_MOD:
        v.f = fmod(x, y);
        break;
    case TD_TRACEQL_OP_POW:
        v.f = pow(x, y);
        break;
    default:
        v.t = TV_NIL;
        break;
    }
    return v;
}

td__tql_val td__tql_negate(const td__tql_val *v)
{
    td__tql_val r = *v;
    switch (v->t) {
    case TV_INT:
    case TV_DUR:
        r.i = (int64_t)(0 - (uint64_t)v->i);
        return r;
    case TV_FLOAT:
        r.f = -v->f;
        return r;
    default:
        memset(&r, 0, sizeof(r));
        return r;
    }
}

/* ---- grouping order ---- */

static int order_depth(const td__tql_val *a, const td__tql_val *b, int depth)
{
    if (a->t != b->t) {
        return a->t < b->t ? -1 : 1;
    }
    switch (a->t) {
    case TV_INT:
    case TV_DUR:
    case TV_STATUS:
    case TV_KIND:
        return a->i < b->i ? -1 : a->i > b->i ? 1 : 0;
    case TV_FLOAT:
        if (isnan(a->f) || isnan(b->f)) {
            return isnan(a->f) - isnan(b->f);
        }
        return a->f < b->f ? -1 : a->f > b->f ? 1 : 0;
    case TV_BOOL:
        return (int)a->b - (int)b->b;
    case TV_STR: {
        size_t n = a->s.n < b->s.n ? a->s.n : b->s.n;
        int c = n ? memcmp(a->s.p, b->s.p, n) : 0;
        return c ? c : a->s.n < b->s.n ? -1 : a->s.n > b->s.n ? 1 : 0;
    }
    case TV_HEX: {
        size_t n = a->hex.n < b->hex.n ? a->hex.n : b->hex.n;
        int c = n ? memcmp(a->hex.p, b->hex.p, n) : 0;
        return c ? c : a->hex.n < b->hex.n ? -1 : a->hex.n > b->hex.n ? 1 : 0;
    }
    case TV_ARRAY: {
        if (depth > 16) {
            return 0;
        }
        elem_iter ia = {a, 0}, ib = {b, 0};
        td__tql_val ea, eb;
        for (;;) {
            bool ha = iter_next(&ia, &ea), hb = iter_next(&ib, &eb);
            if (!ha || !hb) {
                return ha ? 1 : hb ? -1 : 0;
            }
            int c = order_depth(&ea, &eb, depth + 1);
            if (c) {
                return c;
            }
        }
    }
    default:
        return 0;
    }
}

int td__tql_val_order(const td__tql_val *a, const td__tql_val *b)
{
    return order_depth(a, b, 0);
}
