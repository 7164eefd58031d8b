/*
 * parser.c - recursive-descent TraceQL parser (API-CONTRACT §4.2) with Tempo's
 * static checks (ast_validate.go) and constant folding, building the AST of
 * traceql.h in the request arena.
 *
 * Grammar (Tempo's expr.y, rewritten for recursive descent):
 *
 *   query     := pipeline [ '|' metrics ] [ with ] EOF
 *   pipeline  := stage ( '|' stage )*
 *   stage     := ssExpr | scalarFilter | by(fields) | select(attrs) | coalesce()
 *   ssExpr    := ssStruct ( ('&&' | '||') ssStruct )*          -- one level, left-assoc
 *   ssStruct  := ssPrimary ( structOp ssPrimary )*             -- binds tighter
 *   ssPrimary := '{' [ fieldExpr ] '}' | '(' pipeline ')'
 *   scalarFilter := aggregate cmpOp scalar | scalar cmpOp aggregate
 *   fieldExpr := Pratt parser over Tempo's precedence table, lowest first:
 *                && || (1, left) ; = != < <= > >= =~ !~ (2, left) ; + - (3, left) ;
 *                prefix ! (4) ; * / % (5, left) ; ^ (6, right) ; prefix - binds
 *                like binary - (yacc gives `SUB fieldExpression` the precedence
 *                of SUB, so -a*b is -(a*b) and -a+b is (-a)+b).
 *
 * Nesting of parentheses, braces, prefix operators and sub-pipelines is
 * bounded by TD_TRACEQL_MAX_NESTING (the parser's recursion), the height of
 * any expression tree by TD_TRACEQL_MAX_DEPTH (the evaluator's recursion);
 * chains of && / || are flattened into one n-ary node so long Grafana builder
 * queries stay shallow.
 */
#include "api/traceql/tql_int.h"
#include "core/buf.h"
#include "core/mem.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

/* Static types, as Tempo's StaticType (TypeAttribute = known only at run time). */
typedef enum {
    ST_NIL,
    ST_ATTR,
    ST_INT,
    ST_FLOAT,
    ST_STRING,
    ST_BOOL,
    ST_DURATION,
    ST_STATUS,
    ST_KIND,
} stype;

typedef struct {
    const char **v;
    size_t n, cap;
} strvec;

typedef struct parser {
    td__tql_lexer lx;
    td__tql_tok tok;
    td_arena *a;
    td_err *err;
    const char *q;
    size_t len;
    int nest;
    bool failed;
    td_traceql_query *query;
    strvec re_src, re_posix;
    td_traceql_attr *refs;
    size_t nrefs, refs_cap;
} parser;

/* ------------------------------------------------------------------------ */
/* plumbing                                                                 */
/* ------------------------------------------------------------------------ */

static bool nomem(parser *p);

static void *palloc(parser *p, size_t n)
{
    void *v = td_arena_calloc(p->a, 1, n);
    if (!v) {
        nomem(p);
    }
    return v;
}

static bool nomem(parser *p)
{
    if (!p->failed) {
        p->failed = true;
        td_err_set(p->err, TD_NOMEM, "out of memory parsing the query");
    }
    return false;
}

static bool perr(parser *p, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool perr(parser *p, size_t off, const char *fmt, ...)
{
    if (p->failed) {
        return false;
    }
    char msg[TD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->failed = true;
    td__tql_parse_error(p->err, p->q, p->len, off, "%s", msg);
    return false;
}

static bool unsupported(parser *p, size_t off, const char *what)
{
    if (!p->failed) {
        p->failed = true;
        td__tql_unsupported(p->err, p->q, p->len, off, what);
    }
    return false;
}

static bool advance(parser *p)
{
    if (p->failed) {
        return false;
    }
    if (td__tql_lex(&p->lx, &p->tok) != TD_OK) {
        p->failed = true;
        return false;
    }
    return true;
}

/* A short description of the current token for "unexpected ..." messages. */
static void tok_desc(parser *p, char *buf, size_t cap)
{
    const td__tql_tok *t = &p->tok;
    if (t->kind == TQ_EOF) {
        snprintf(buf, cap, "end of input");
        return;
    }
    size_t n = t->len > 40 ? 40 : t->len;
    snprintf(buf, cap, "%.*s%s", (int)n, p->q + t->off, t->len > 40 ? "..." : "");
}

static bool syntax(parser *p, const char *expecting)
{
    char d[64];
    tok_desc(p, d, sizeof(d));
    if (expecting) {
        return perr(p, p->tok.off, "syntax error: unexpected %s, expecting %s", d, expecting);
    }
    return perr(p, p->tok.off, "syntax error: unexpected %s", d);
}

static bool expect(parser *p, td__tql_tok_kind k, const char *what)
{
    if (p->failed) {
        return false;
    }
    if (p->tok.kind != k) {
        return syntax(p, what);
    }
    return advance(p);
}

static bool is_kw(const parser *p, td__tql_kw kw)
{
    return p->tok.kind == TQ_KEYWORD && p->tok.kw == kw;
}

static bool enter(parser *p, size_t off)
{
    if (++p->nest > TD_TRACEQL_MAX_NESTING) {
        return perr(p, off, "query nested too deeply (limit %d)", TD_TRACEQL_MAX_NESTING);
    }
    return true;
}

static bool push_str(parser *p, strvec *v, const char *s)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        const char **nv = palloc(p, cap * sizeof(*nv));
        if (!nv) {
            return false;
        }
        if (v->n) {
            memcpy(nv, v->v, v->n * sizeof(*nv));
        }
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = s;
    return true;
}

/* Canonical text of e for error messages, truncated. */
static void expr_msg(const td_traceql_expr *e, char *buf, size_t cap)
{
    td_buf b = TD_BUF_INIT;
    td_traceql_format_expr(e, &b);
    snprintf(buf, cap, "%.*s%s", (int)(b.len > 120 ? 120 : b.len), b.data,
             b.len > 120 ? "..." : "");
    td_buf_release(&b);
}

/* ------------------------------------------------------------------------ */
/* types                                                                    */
/* ------------------------------------------------------------------------ */

static stype lit_type(const td_traceql_value *v)
{
    switch (v->type) {
    case TD_TRACEQL_INT:
        return ST_INT;
    case TD_TRACEQL_FLOAT:
        return ST_FLOAT;
    case TD_TRACEQL_STRING:
        return ST_STRING;
    case TD_TRACEQL_BOOL:
        return ST_BOOL;
    case TD_TRACEQL_DURATION:
        return ST_DURATION;
    case TD_TRACEQL_STATUS:
        return ST_STATUS;
    case TD_TRACEQL_KIND:
        return ST_KIND;
    default:
        return ST_NIL;
    }
}

static stype intrinsic_type(td_traceql_intrinsic i)
{
    switch (i) {
    case TD_TRACEQL_I_STATUS:
        return ST_STATUS;
    case TD_TRACEQL_I_KIND:
        return ST_KIND;
    case TD_TRACEQL_I_DURATION:
    case TD_TRACEQL_I_TRACE_DURATION:
    case TD_TRACEQL_I_EVENT_TIME:
        return ST_DURATION;
    case TD_TRACEQL_I_CHILD_COUNT:
        return ST_INT;
    case TD_TRACEQL_I_NONE:
        return ST_ATTR;
    default:
        return ST_STRING;
    }
}

static bool is_cmp(td_traceql_op op)
{
    return op <= TD_TRACEQL_OP_NRE;
}

static stype itype(const td_traceql_expr *e)
{
    switch (e->kind) {
    case TD_TRACEQL_E_LITERAL:
        return lit_type(&e->lit);
    case TD_TRACEQL_E_ATTR:
        return intrinsic_type(e->attr.intrinsic);
    case TD_TRACEQL_E_UNARY:
        if (e->op == TD_TRACEQL_OP_EXISTS || e->op == TD_TRACEQL_OP_NOT_EXISTS) {
            return ST_BOOL;
        }
        return itype(e->lhs);
    case TD_TRACEQL_E_BINARY: {
        if (is_cmp(e->op)) {
            return ST_BOOL;
        }
        stype t = itype(e->lhs);
        return t != ST_ATTR ? t : itype(e->rhs);
    }
    case TD_TRACEQL_E_LOGIC:
        return ST_BOOL;
    }
    return ST_ATTR;
}

static bool is_numeric(stype t)
{
    return t == ST_INT || t == ST_FLOAT || t == ST_DURATION;
}

static bool matching(stype a, stype b)
{
    return a == ST_ATTR || b == ST_ATTR || a == b || (is_numeric(a) && is_numeric(b)) ||
           a == ST_NIL || b == ST_NIL;
}

static bool type_valid(td_traceql_op op, stype t)
{
    switch (t) {
    case ST_ATTR:
        return true;
    case ST_BOOL:
        return op == TD_TRACEQL_OP_AND || op == TD_TRACEQL_OP_OR || op == TD_TRACEQL_OP_EQ ||
               op == TD_TRACEQL_OP_NEQ;
    case ST_INT:
    case ST_FLOAT:
    case ST_DURATION:
        return (op >= TD_TRACEQL_OP_ADD && op <= TD_TRACEQL_OP_POW) ||
               (is_cmp(op) && op != TD_TRACEQL_OP_RE && op != TD_TRACEQL_OP_NRE);
    case ST_STRING:
        return is_cmp(op);
    default: /* nil, status, kind */
        return op == TD_TRACEQL_OP_EQ || op == TD_TRACEQL_OP_NEQ;
    }
}

/* Does the expression read the span (any attribute or intrinsic)? */
static bool refs_span(const td_traceql_expr *e)
{
    switch (e->kind) {
    case TD_TRACEQL_E_LITERAL:
        return false;
    case TD_TRACEQL_E_ATTR:
        return true;
    case TD_TRACEQL_E_UNARY:
        return refs_span(e->lhs);
    case TD_TRACEQL_E_BINARY:
        return refs_span(e->lhs) || refs_span(e->rhs);
    case TD_TRACEQL_E_LOGIC:
        for (size_t i = 0; i < e->nargs; i++) {
            if (refs_span(e->args[i])) {
                return true;
            }
        }
        return false;
    }
    return true;
}

static bool is_nil_lit(const td_traceql_expr *e)
{
    return e->kind == TD_TRACEQL_E_LITERAL && e->lit.type == TD_TRACEQL_NIL;
}

/* ------------------------------------------------------------------------ */
/* expression nodes                                                         */
/* ------------------------------------------------------------------------ */

static td_traceql_expr *new_expr(parser *p, td_traceql_expr_kind kind, size_t off)
{
    td_traceql_expr *e = palloc(p, sizeof(*e));
    if (e) {
        e->kind = kind;
        e->offset = off;
        e->regex = -1;
        e->height = 1;
    }
    return e;
}

static bool set_height(parser *p, td_traceql_expr *e, unsigned h)
{
    e->height = h;
    if (h > TD_TRACEQL_MAX_DEPTH) {
        return perr(p, e->offset, "expression nested too deeply (limit %d)", TD_TRACEQL_MAX_DEPTH);
    }
    return true;
}

static unsigned umax(unsigned a, unsigned b)
{
    return a > b ? a : b;
}

/* Replace e by a literal with the folded value v (e keeps its position). */
static td_traceql_expr *fold_to(td_traceql_expr *e, const td__tql_val *v)
{
    td_traceql_value lit;
    memset(&lit, 0, sizeof(lit));
    switch (v->t) {
    case TV_INT:
        lit.type = TD_TRACEQL_INT, lit.i = v->i;
        break;
    case TV_DUR:
        lit.type = TD_TRACEQL_DURATION, lit.i = v->i;
        break;
    case TV_FLOAT:
        if (!isfinite(v->f)) {
            return e; /* +Inf/NaN have no literal spelling: keep the expression */
        }
        lit.type = TD_TRACEQL_FLOAT, lit.f = v->f;
        break;
    case TV_BOOL:
        lit.type = TD_TRACEQL_BOOL, lit.b = v->b;
        break;
    default:
        return e;
    }
    e->kind = TD_TRACEQL_E_LITERAL;
    e->lit = lit;
    e->lhs = e->rhs = NULL;
    e->args = NULL;
    e->nargs = 0;
    e->height = 1;
    return e;
}

static td_traceql_expr *make_unary(parser *p, td_traceql_op op, td_traceql_expr *x, size_t off)
{
    if (!x) {
        return NULL;
    }
    if (is_nil_lit(x)) {
        perr(p, x->offset, "syntax error: unexpected nil");
        return NULL;
    }
    stype t = itype(x);
    char m[160];
    if ((op == TD_TRACEQL_OP_NOT && t != ST_ATTR && t != ST_BOOL) ||
        (op == TD_TRACEQL_OP_NEG && t != ST_ATTR && !is_numeric(t))) {
        td_traceql_expr tmp = {.kind = TD_TRACEQL_E_UNARY, .op = op, .lhs = x};
        expr_msg(&tmp, m, sizeof(m));
        perr(p, off, "illegal operation for the given type: %s", m);
        return NULL;
    }
    if (op == TD_TRACEQL_OP_NOT_EXISTS && x->kind == TD_TRACEQL_E_ATTR) {
        if (x->attr.scope == TD_TRACEQL_SCOPE_INTRINSIC) {
            perr(p, x->offset, "%s=nil is not valid because intrinsics cannot be nil",
                 x->attr.name);
            return NULL;
        }
        if (x->attr.scope == TD_TRACEQL_SCOPE_RESOURCE &&
            strcmp(x->attr.name, "service.name") == 0) {
            perr(p, x->offset,
                 "resource.service.name=nil is not valid because resource.service.name cannot be "
                 "nil");
            return NULL;
        }
    }
    td_traceql_expr *e = new_expr(p, TD_TRACEQL_E_UNARY, off);
    if (!e) {
        return NULL;
    }
    e->op = op;
    e->lhs = x;
    if (!set_height(p, e, x->height + 1)) {
        return NULL;
    }
    if (x->kind == TD_TRACEQL_E_LITERAL) {
        td__tql_val v = td__tql_val_of_lit(&x->lit), r;
        memset(&r, 0, sizeof(r));
        switch (op) {
        case TD_TRACEQL_OP_NEG:
            r = td__tql_negate(&v);
            break;
        case TD_TRACEQL_OP_NOT:
            r.t = TV_BOOL, r.b = !v.b;
            break;
        case TD_TRACEQL_OP_EXISTS:
            r.t = TV_BOOL, r.b = true;
            break;
        default:
            r.t = TV_BOOL, r.b = false;
            break;
        }
        if (x->lit.type == TD_TRACEQL_DURATION && r.t == TV_INT) {
            r.t = TV_DUR;
        }
        return fold_to(e, &r);
    }
    return e;
}

static bool add_regex(parser *p, td_traceql_expr *e);

static td_traceql_expr *make_binary(parser *p, td_traceql_op op, td_traceql_expr *l,
                                    td_traceql_expr *r)
{
    if (!l || !r) {
        return NULL;
    }
    /* `x = nil`, `x != nil` (and mirrored) are existence tests */
    if ((op == TD_TRACEQL_OP_EQ || op == TD_TRACEQL_OP_NEQ) && (is_nil_lit(l) || is_nil_lit(r))) {
        if (is_nil_lit(l) && is_nil_lit(r)) {
            td__tql_val f = {.t = TV_BOOL, .b = false};
            return fold_to(l, &f); /* Tempo: nil = nil and nil != nil are false */
        }
        td_traceql_expr *x = is_nil_lit(l) ? r : l;
        return make_unary(p,
                          op == TD_TRACEQL_OP_EQ ? TD_TRACEQL_OP_NOT_EXISTS : TD_TRACEQL_OP_EXISTS,
                          x, l->offset);
    }
    if (is_nil_lit(l) || is_nil_lit(r)) {
        perr(p, is_nil_lit(l) ? l->offset : r->offset, "syntax error: unexpected nil");
        return NULL;
    }
    if (op == TD_TRACEQL_OP_AND || op == TD_TRACEQL_OP_OR) {
        stype lt = itype(l), rt = itype(r);
        char m[160];
        if (!type_valid(op, lt) || !type_valid(op, rt) || !matching(lt, rt)) {
            td_traceql_expr tmp = {.kind = TD_TRACEQL_E_LOGIC, .op = op};
            td_traceql_expr *args[2] = {l, r};
            tmp.args = args;
            tmp.nargs = 2;
            expr_msg(&tmp, m, sizeof(m));
            perr(p, l->offset, "%s: %s",
                 matching(lt, rt) ? "illegal operation for the given types"
                                  : "binary operations must operate on the same type",
                 m);
            return NULL;
        }
        /* constant folding of all-literal chains */
        if (l->kind == TD_TRACEQL_E_LITERAL && r->kind == TD_TRACEQL_E_LITERAL) {
            td__tql_val lv = td__tql_val_of_lit(&l->lit), rv = td__tql_val_of_lit(&r->lit);
            td__tql_val v = {.t = TV_BOOL};
            v.b = op == TD_TRACEQL_OP_AND ? (td__tql_val_truthy(&lv) && td__tql_val_truthy(&rv))
                                          : (td__tql_val_truthy(&lv) || td__tql_val_truthy(&rv));
            return fold_to(l, &v);
        }
        if (l->kind == TD_TRACEQL_E_LOGIC && l->op == op) {
            /* flatten: a && b && c is one node; grow args by doubling */
            size_t n = l->nargs;
            if ((n & (n - 1)) == 0) {
                td_traceql_expr **na = palloc(p, 2 * n * sizeof(*na));
                if (!na) {
                    return NULL;
                }
                memcpy(na, l->args, n * sizeof(*na));
                l->args = na;
            }
            l->args[l->nargs++] = r;
            if (!set_height(p, l, umax(l->height, r->height + 1))) {
                return NULL;
            }
            return l;
        }
        td_traceql_expr *e = new_expr(p, TD_TRACEQL_E_LOGIC, l->offset);
        td_traceql_expr **args = palloc(p, 2 * sizeof(*args));
        if (!e || !args) {
            return NULL;
        }
        e->op = op;
        e->args = args;
        e->args[0] = l;
        e->args[1] = r;
        e->nargs = 2;
        if (!set_height(p, e, umax(l->height, r->height) + 1)) {
            return NULL;
        }
        return e;
    }

    td_traceql_expr *e = new_expr(p, TD_TRACEQL_E_BINARY, l->offset);
    if (!e) {
        return NULL;
    }
    e->op = op;
    e->lhs = l;
    e->rhs = r;
    if (!set_height(p, e, umax(l->height, r->height) + 1)) {
        return NULL;
    }
    stype lt = itype(l), rt = itype(r);
    char m[160];
    if (!matching(lt, rt)) {
        expr_msg(e, m, sizeof(m));
        perr(p, e->offset, "binary operations must operate on the same type: %s", m);
        return NULL;
    }
    if (!type_valid(op, lt) || !type_valid(op, rt)) {
        expr_msg(e, m, sizeof(m));
        perr(p, e->offset, "illegal operation for the given types: %s", m);
        return NULL;
    }
    if (op == TD_TRACEQL_OP_RE || op == TD_TRACEQL_OP_NRE) {
        if (r->kind != TD_TRACEQL_E_LITERAL || r->lit.type != TD_TRACEQL_STRING) {
            expr_msg(r, m, sizeof(m));
            perr(p, r->offset, "invalid type for =~ or !~: %s", m);
            return NULL;
        }
        return add_regex(p, e) ? e : NULL;
    }
    if (l->kind == TD_TRACEQL_E_LITERAL && r->kind == TD_TRACEQL_E_LITERAL) {
        td__tql_val lv = td__tql_val_of_lit(&l->lit), rv = td__tql_val_of_lit(&r->lit), v;
        if (is_cmp(op)) {
            v.t = TV_BOOL;
            v.b = td__tql_compare(op, &lv, &rv, NULL);
        } else {
            v = td__tql_arith(op, &lv, &rv);
        }
        return fold_to(e, &v);
    }
    return e;
}

/* Translate and test-compile the regex of e (RE/NRE with a literal pattern). */
static bool add_regex(parser *p, td_traceql_expr *e)
{
    const td_traceql_value *pat = &e->rhs->lit;
    if (p->re_src.n >= TD_TRACEQL_MAX_REGEXES) {
        return perr(p, e->rhs->offset, "too many regexes (limit %d)", TD_TRACEQL_MAX_REGEXES);
    }
    char why[160];
    const char *posix = NULL;
    td_status st = td_regex_translate(pat->s.ptr, pat->s.len, p->a, &posix, why, sizeof(why));
    if (st == TD_NOMEM) {
        return nomem(p);
    }
    if (st != TD_OK) {
        return perr(p, e->rhs->offset, "invalid regex \"%.*s\": %s",
                    (int)(pat->s.len > 60 ? 60 : pat->s.len), pat->s.ptr, why);
    }
    /* glibc must accept the translation; reject here, with a position, if not */
    regex_t re;
    int rc = regcomp(&re, posix, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char buf[96];
        regerror(rc, &re, buf, sizeof(buf));
        return perr(p, e->rhs->offset, "invalid regex \"%.*s\": %s",
                    (int)(pat->s.len > 60 ? 60 : pat->s.len), pat->s.ptr, buf);
    }
    regfree(&re);
    e->regex = (int)p->re_src.n;
    return push_str(p, &p->re_src, pat->s.ptr) && push_str(p, &p->re_posix, posix);
}

/* ------------------------------------------------------------------------ */
/* field expressions                                                        */
/* ------------------------------------------------------------------------ */

static td_traceql_expr *parse_expr(parser *p, int min_prec);

static td_traceql_expr *literal(parser *p, td_traceql_type type, size_t off)
{
    td_traceql_expr *e = new_expr(p, TD_TRACEQL_E_LITERAL, off);
    if (e) {
        e->lit.type = type;
    }
    return e;
}

static td_traceql_expr *attr_expr(parser *p)
{
    if (p->tok.unsupported) {
        char what[96];
        snprintf(what, sizeof(what), "%s%s", p->tok.kind == TQ_INTRINSIC ? "intrinsic " : "",
                 p->tok.unsupported);
        unsupported(p, p->tok.off, what);
        return NULL;
    }
    td_traceql_expr *e = new_expr(p, TD_TRACEQL_E_ATTR, p->tok.off);
    if (e) {
        e->attr = p->tok.attr;
    }
    return advance(p) ? e : NULL;
}

static td_traceql_expr *parse_prefix(parser *p)
{
    size_t off = p->tok.off;
    td_traceql_expr *e = NULL;
    switch (p->tok.kind) {
    case TQ_NOT:
        if (!advance(p)) {
            return NULL;
        }
        return make_unary(p, TD_TRACEQL_OP_NOT, parse_expr(p, 4), off);
    case TQ_SUB:
        if (!advance(p)) {
            return NULL;
        }
        return make_unary(p, TD_TRACEQL_OP_NEG, parse_expr(p, 3), off);
    case TQ_LPAREN:
        if (!advance(p)) {
            return NULL;
        }
        e = parse_expr(p, 0);
        if (!e || !expect(p, TQ_RPAREN, ")")) {
            return NULL;
        }
        return e;
    case TQ_STRING:
        e = literal(p, TD_TRACEQL_STRING, off);
        if (e) {
            e->lit.s.ptr = p->tok.s;
            e->lit.s.len = p->tok.slen;
        }
        break;
    case TQ_INT:
        e = literal(p, TD_TRACEQL_INT, off);
        if (e) {
            e->lit.i = p->tok.i;
        }
        break;
    case TQ_FLOAT:
        e = literal(p, TD_TRACEQL_FLOAT, off);
        if (e) {
            e->lit.f = p->tok.f;
        }
        break;
    case TQ_DURATION:
        e = literal(p, TD_TRACEQL_DURATION, off);
        if (e) {
            e->lit.i = p->tok.i;
        }
        break;
    case TQ_ATTR:
    case TQ_INTRINSIC:
        return attr_expr(p);
    case TQ_IDENT: {
        char d[64];
        tok_desc(p, d, sizeof(d));
        perr(p, off, "unknown identifier: %s", d);
        return NULL;
    }
    case TQ_KEYWORD:
        switch (p->tok.kw) {
        case KW_TRUE:
        case KW_FALSE:
            e = literal(p, TD_TRACEQL_BOOL, off);
            if (e) {
                e->lit.b = p->tok.kw == KW_TRUE;
            }
            break;
        case KW_NIL:
            e = literal(p, TD_TRACEQL_NIL, off);
            break;
        case KW_OK:
        case KW_ERROR:
        case KW_UNSET:
            e = literal(p, TD_TRACEQL_STATUS, off);
            if (e) {
                e->lit.i = p->tok.kw == KW_OK ? 1 : p->tok.kw == KW_ERROR ? 2 : 0;
            }
            break;
        case KW_UNSPECIFIED:
        case KW_INTERNAL:
        case KW_SERVER:
        case KW_CLIENT:
        case KW_PRODUCER:
        case KW_CONSUMER:
            e = literal(p, TD_TRACEQL_KIND, off);
            if (e) {
                e->lit.i = (int64_t)(p->tok.kw - KW_UNSPECIFIED);
            }
            break;
        case KW_MININT:
        case KW_MAXINT:
            e = literal(p, TD_TRACEQL_INT, off);
            if (e) {
                e->lit.i = p->tok.kw == KW_MININT ? INT64_MIN : INT64_MAX;
            }
            break;
        default:
            syntax(p, "field expression");
            return NULL;
        }
        break;
    default:
        syntax(p, "field expression");
        return NULL;
    }
    if (!e || !advance(p)) {
        return NULL;
    }
    return e;
}

/* Binary operator of the current token and its precedence (0: none). */
static int binop(const parser *p, td_traceql_op *op)
{
    switch (p->tok.kind) {
    case TQ_AND:
        *op = TD_TRACEQL_OP_AND;
        return 1;
    case TQ_OR:
        *op = TD_TRACEQL_OP_OR;
        return 1;
    case TQ_EQ:
        *op = TD_TRACEQL_OP_EQ;
        return 2;
    case TQ_NEQ:
        *op = TD_TRACEQL_OP_NEQ;
        return 2;
    case TQ_LT:
        *op = TD_TRACEQL_OP_LT;
        return 2;
    case TQ_LTE:
        *op = TD_TRACEQL_OP_LTE;
        return 2;
    case TQ_GT:
        *op = TD_TRACEQL_OP_GT;
        return 2;
    case TQ_GTE:
        *op = TD_TRACEQL_OP_GTE;
        return 2;
    case TQ_RE:
        *op = TD_TRACEQL_OP_RE;
        return 2;
    case TQ_NRE:
        *op = TD_TRACEQL_OP_NRE;
        return 2;
    case TQ_ADD:
        *op = TD_TRACEQL_OP_ADD;
        return 3;
    case TQ_SUB:
        *op = TD_TRACEQL_OP_SUB;
        return 3;
    case TQ_MUL:
        *op = TD_TRACEQL_OP_MUL;
        return 5;
    case TQ_DIV:
        *op = TD_TRACEQL_OP_DIV;
        return 5;
    case TQ_MOD:
        *op = TD_TRACEQL_OP_MOD;
        return 5;
    case TQ_POW:
        *op = TD_TRACEQL_OP_POW;
        return 6;
    default:
        return 0;
    }
}

static td_traceql_expr *parse_expr(parser *p, int min_prec)
{
    if (!enter(p, p->tok.off)) {
        return NULL;
    }
    td_traceql_expr *lhs = parse_prefix(p);
    for (;;) {
        td_traceql_op op;
        int prec = lhs ? binop(p, &op) : 0;
        if (prec == 0 || prec <= min_prec) {
            break;
        }
        if (!advance(p)) {
            lhs = NULL;
            break;
        }
        /* left-associative: the right operand takes only tighter operators; ^ is right-assoc */
        td_traceql_expr *rhs = parse_expr(p, op == TD_TRACEQL_OP_POW ? prec - 1 : prec);
        lhs = make_binary(p, op, lhs, rhs);
    }
    p->nest--;
    return p->failed ? NULL : lhs;
}

/* A complete field expression used as a value (by(), avg(), select values). */
static td_traceql_expr *parse_field(parser *p)
{
    td_traceql_expr *e = parse_expr(p, 0);
    if (e && is_nil_lit(e)) {
        perr(p, e->offset, "syntax error: unexpected nil");
        return NULL;
    }
    return e;
}

/* ------------------------------------------------------------------------ */
/* spanset expressions and pipelines                                        */
/* ------------------------------------------------------------------------ */

static td_traceql_pipeline *parse_pipeline(parser *p, bool top);

static td_traceql_ssexpr *new_ss(parser *p, td_traceql_ss_kind kind, size_t off)
{
    td_traceql_ssexpr *s = palloc(p, sizeof(*s));
    if (s) {
        s->kind = kind;
        s->offset = off;
        s->height = 1;
    }
    return s;
}

static td_traceql_ssexpr *parse_ss(parser *p);

static td_traceql_ssexpr *parse_ss_primary(parser *p)
{
    size_t off = p->tok.off;
    if (!enter(p, off)) {
        return NULL;
    }
    td_traceql_ssexpr *s = NULL;
    if (p->tok.kind == TQ_LBRACE) {
        if (!advance(p)) {
            goto out;
        }
        s = new_ss(p, TD_TRACEQL_SSE_FILTER, off);
        if (!s) {
            goto out;
        }
        if (p->tok.kind != TQ_RBRACE) {
            td_traceql_expr *e = parse_expr(p, 0);
            if (!e) {
                s = NULL;
                goto out;
            }
            if (is_nil_lit(e)) {
                perr(p, e->offset, "syntax error: unexpected nil");
                s = NULL;
                goto out;
            }
            stype t = itype(e);
            if (t != ST_ATTR && t != ST_BOOL) {
                char m[160];
                expr_msg(e, m, sizeof(m));
                perr(p, off, "span filter field expressions must resolve to a boolean: { %s }", m);
                s = NULL;
                goto out;
            }
            s->filter = e;
            s->height = e->height + 1;
        }
        if (!expect(p, TQ_RBRACE, "}")) {
            s = NULL;
        }
    } else if (p->tok.kind == TQ_LPAREN) {
        if (!advance(p)) {
            goto out;
        }
        td_traceql_pipeline *pl = parse_pipeline(p, false);
        if (!pl || !expect(p, TQ_RPAREN, ")")) {
            goto out;
        }
        if (pl->nstages == 1 && pl->stages[0].kind == TD_TRACEQL_STAGE_SPANSET) {
            s = pl->stages[0].ss; /* ( {a} && {b} ): just grouping */
        } else {
            s = new_ss(p, TD_TRACEQL_SSE_PIPELINE, off);
            if (s) {
                s->pipeline = pl;
                unsigned h = 1;
                for (size_t i = 0; i < pl->nstages; i++) {
                    if (pl->stages[i].ss) {
                        h = umax(h, pl->stages[i].ss->height);
                    }
                }
                s->height = h + 1;
            }
        }
    } else {
        syntax(p, "{");
    }
out:
    p->nest--;
    return p->failed ? NULL : s;
}

static bool struct_op(const parser *p, td_traceql_ssop *op)
{
    static const struct {
        td__tql_tok_kind tok;
        td_traceql_ssop op;
    } map[] = {
        {TQ_GT, TD_TRACEQL_SS_CHILD},
        {TQ_LT, TD_TRACEQL_SS_PARENT},
        {TQ_DESC, TD_TRACEQL_SS_DESC},
        {TQ_ANCE, TD_TRACEQL_SS_ANCE},
        {TQ_TILDE, TD_TRACEQL_SS_SIBL},
        {TQ_NOT_CHILD, TD_TRACEQL_SS_NOT_CHILD},
        {TQ_NOT_PARENT, TD_TRACEQL_SS_NOT_PARENT},
        {TQ_NOT_DESC, TD_TRACEQL_SS_NOT_DESC},
        {TQ_NOT_ANCE, TD_TRACEQL_SS_NOT_ANCE},
        {TQ_NRE, TD_TRACEQL_SS_NOT_SIBL},
        {TQ_UNION_CHILD, TD_TRACEQL_SS_UNION_CHILD},
        {TQ_UNION_PARENT, TD_TRACEQL_SS_UNION_PARENT},
        {TQ_UNION_DESC, TD_TRACEQL_SS_UNION_DESC},
        {TQ_UNION_ANCE, TD_TRACEQL_SS_UNION_ANCE},
        {TQ_UNION_SIBL, TD_TRACEQL_SS_UNION_SIBL},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (p->tok.kind == map[i].tok) {
            *op = map[i].op;
            return true;
        }
    }
    return false;
}

static td_traceql_ssexpr *make_ssop(parser *p, td_traceql_ssop op, td_traceql_ssexpr *l,
                                    td_traceql_ssexpr *r, size_t off)
{
    if (!l || !r) {
        return NULL;
    }
    td_traceql_ssexpr *s = new_ss(p, TD_TRACEQL_SSE_OP, l->offset);
    if (!s) {
        return NULL;
    }
    s->op = op;
    s->lhs = l;
    s->rhs = r;
    s->height = umax(l->height, r->height) + 1;
    if (s->height > TD_TRACEQL_MAX_DEPTH) {
        perr(p, off, "expression nested too deeply (limit %d)", TD_TRACEQL_MAX_DEPTH);
        return NULL;
    }
    if (op != TD_TRACEQL_SS_AND && op != TD_TRACEQL_SS_OR) {
        p->query->needs_tree = true;
    }
    return s;
}

static td_traceql_ssexpr *parse_ss_struct(parser *p)
{
    td_traceql_ssexpr *l = parse_ss_primary(p);
    td_traceql_ssop op;
    while (l && struct_op(p, &op)) {
        size_t off = p->tok.off;
        if (!advance(p)) {
            return NULL;
        }
        l = make_ssop(p, op, l, parse_ss_primary(p), off);
    }
    return l;
}

static td_traceql_ssexpr *parse_ss(parser *p)
{
    td_traceql_ssexpr *l = parse_ss_struct(p);
    while (l && (p->tok.kind == TQ_AND || p->tok.kind == TQ_OR)) {
        td_traceql_ssop op = p->tok.kind == TQ_AND ? TD_TRACEQL_SS_AND : TD_TRACEQL_SS_OR;
        size_t off = p->tok.off;
        if (!advance(p)) {
            return NULL;
        }
        l = make_ssop(p, op, l, parse_ss_struct(p), off);
    }
    return l;
}

static bool is_agg_kw(const parser *p)
{
    return p->tok.kind == TQ_KEYWORD &&
           (p->tok.kw == KW_COUNT || p->tok.kw == KW_AVG || p->tok.kw == KW_MIN ||
            p->tok.kw == KW_MAX || p->tok.kw == KW_SUM);
}

static bool is_metrics_kw(const parser *p)
{
    return p->tok.kind == TQ_KEYWORD && p->tok.kw >= KW_RATE && p->tok.kw <= KW_BOTTOMK;
}

/* count() / avg(expr) ...: fills agg, agg_arg and key of st. */
static bool parse_aggregate(parser *p, td_traceql_stage *st)
{
    static const td_traceql_agg aggs[] = {TD_TRACEQL_AGG_COUNT, TD_TRACEQL_AGG_AVG,
                                          TD_TRACEQL_AGG_MIN, TD_TRACEQL_AGG_MAX,
                                          TD_TRACEQL_AGG_SUM};
    st->agg = aggs[p->tok.kw - KW_COUNT];
    size_t off = p->tok.off;
    if (!advance(p) || !expect(p, TQ_LPAREN, "(")) {
        return false;
    }
    if (st->agg == TD_TRACEQL_AGG_COUNT) {
        if (!expect(p, TQ_RPAREN, ")")) {
            return false;
        }
        st->key = "count()";
        return true;
    }
    td_traceql_expr *e = parse_field(p);
    if (!e || !expect(p, TQ_RPAREN, ")")) {
        return false;
    }
    char prefix[8];
    snprintf(prefix, sizeof(prefix), "%s(", td__tql_agg_name(st->agg));
    st->key = td__tql_expr_key(e, prefix, p->a);
    if (!st->key) {
        return nomem(p);
    }
    stype t = itype(e);
    if (t != ST_ATTR && !is_numeric(t)) {
        return perr(p, off, "aggregate field expressions must resolve to a number type: %s",
                    st->key);
    }
    if (!refs_span(e)) {
        return perr(p, off, "aggregate field expressions must reference the span: %s", st->key);
    }
    st->agg_arg = e;
    return true;
}

static bool scalar_cmp_op(const parser *p, td_traceql_op *op)
{
    td_traceql_op o;
    int prec = binop(p, &o);
    if (prec != 2 || o == TD_TRACEQL_OP_RE || o == TD_TRACEQL_OP_NRE) {
        return false;
    }
    *op = o;
    return true;
}

/* A constant number or duration on the other side of a scalar filter. */
static bool parse_scalar_value(parser *p, td_traceql_value *v)
{
    size_t off = p->tok.off;
    td_traceql_expr *e = parse_expr(p, 2);
    if (!e) {
        return false;
    }
    if (e->kind != TD_TRACEQL_E_LITERAL) {
        return unsupported(p, off, "scalar filter with a non-constant operand");
    }
    if (e->lit.type != TD_TRACEQL_INT && e->lit.type != TD_TRACEQL_FLOAT &&
        e->lit.type != TD_TRACEQL_DURATION) {
        char m[160];
        expr_msg(e, m, sizeof(m));
        return perr(p, off, "binary operations must operate on the same type: %s", m);
    }
    *v = e->lit;
    return true;
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

static bool parse_scalar_filter(parser *p, td_traceql_stage *st)
{
    st->kind = TD_TRACEQL_STAGE_SCALAR;
    if (is_agg_kw(p)) {
        if (!parse_aggregate(p, st)) {
            return false;
        }
        if (p->tok.kind == TQ_ADD || p->tok.kind == TQ_SUB || p->tok.kind == TQ_MUL ||
            p->tok.kind == TQ_DIV || p->tok.kind == TQ_MOD || p->tok.kind == TQ_POW) {
            return unsupported(p, p->tok.off, "arithmetic on aggregates");
        }
        if (!scalar_cmp_op(p, &st->cmp)) {
            return syntax(p, "comparison operator");
        }
        return advance(p) && parse_scalar_value(p, &st->value);
    }
    /* `2 < count()`: stored flipped as `count() > 2` */
    if (!parse_scalar_value(p, &st->value)) {
        return false;
    }
    td_traceql_op op;
    if (!scalar_cmp_op(p, &op)) {
        return syntax(p, "comparison operator");
    }
    if (!advance(p)) {
        return false;
    }
    if (!is_agg_kw(p)) {
        return syntax(p, "aggregate");
    }
    st->cmp = flip(op);
    return parse_aggregate(p, st);
}

/* An attribute or intrinsic token (select(), metrics arguments, by() of metrics). */
static bool parse_attr_tok(parser *p, td_traceql_attr *out)
{
    if (p->tok.kind != TQ_ATTR && p->tok.kind != TQ_INTRINSIC) {
        return syntax(p, "attribute");
    }
    td_traceql_expr *e = attr_expr(p);
    if (!e) {
        return false;
    }
    *out = e->attr;
    return true;
}

/* by(f, ...) or select(a, ...) */
static bool parse_fields(parser *p, td_traceql_stage *st, bool by)
{
    if (!advance(p) || !expect(p, TQ_LPAREN, "(")) {
        return false;
    }
    size_t cap = 4;
    st->fields = palloc(p, cap * sizeof(*st->fields));
    st->keys = palloc(p, cap * sizeof(*st->keys));
    if (!st->fields || !st->keys) {
        return false;
    }
    for (;;) {
        size_t off = p->tok.off;
        td_traceql_expr *e;
        if (by) {
            e = parse_field(p);
            if (!e) {
                return false;
            }
            if (!refs_span(e)) {
                char m[160];
                expr_msg(e, m, sizeof(m));
                return perr(p, off, "grouping field expressions must reference the span: by(%s)",
                            m);
            }
        } else {
            if (p->tok.kind != TQ_ATTR && p->tok.kind != TQ_INTRINSIC) {
                return syntax(p, "attribute");
            }
            e = attr_expr(p);
            if (!e) {
                return false;
            }
        }
        if (st->nfields == cap) {
            td_traceql_expr **nf = palloc(p, 2 * cap * sizeof(*nf));
            const char **nk = palloc(p, 2 * cap * sizeof(*nk));
            if (!nf || !nk) {
                return false;
            }
            memcpy(nf, st->fields, cap * sizeof(*nf));
            memcpy(nk, st->keys, cap * sizeof(*nk));
            st->fields = nf;
            st->keys = nk;
            cap *= 2;
        }
        st->fields[st->nfields] = e;
        if (by) {
            st->keys[st->nfields] = td__tql_expr_key(e, "by(", p->a);
            if (!st->keys[st->nfields]) {
                return nomem(p);
            }
        }
        st->nfields++;
        if (p->tok.kind != TQ_COMMA) {
            break;
        }
        if (!advance(p)) {
            return false;
        }
    }
    return expect(p, TQ_RPAREN, ")");
}

static bool parse_stage(parser *p, td_traceql_stage *st)
{
    st->offset = p->tok.off;
    if (is_kw(p, KW_BY)) {
        st->kind = TD_TRACEQL_STAGE_BY;
        return parse_fields(p, st, true);
    }
    if (is_kw(p, KW_SELECT)) {
        st->kind = TD_TRACEQL_STAGE_SELECT;
        return parse_fields(p, st, false);
    }
    if (is_kw(p, KW_COALESCE)) {
        st->kind = TD_TRACEQL_STAGE_COALESCE;
        return advance(p) && expect(p, TQ_LPAREN, "(") && expect(p, TQ_RPAREN, ")");
    }
    if (is_agg_kw(p) || p->tok.kind == TQ_INT || p->tok.kind == TQ_FLOAT ||
        p->tok.kind == TQ_DURATION || p->tok.kind == TQ_SUB) {
        return parse_scalar_filter(p, st);
    }
    if (p->tok.kind == TQ_LBRACE || p->tok.kind == TQ_LPAREN) {
        st->kind = TD_TRACEQL_STAGE_SPANSET;
        st->ss = parse_ss(p);
        return st->ss != NULL;
    }
    if (is_metrics_kw(p)) {
        return syntax(p, "| before the metrics function");
    }
    return syntax(p, "spanset filter");
}

static bool parse_metrics(parser *p);

static td_traceql_pipeline *parse_pipeline(parser *p, bool top)
{
    if (!enter(p, p->tok.off)) {
        return NULL;
    }
    td_traceql_pipeline *pl = palloc(p, sizeof(*pl));
    size_t cap = 4;
    if (!pl || !(pl->stages = palloc(p, cap * sizeof(td_traceql_stage)))) {
        goto fail;
    }
    for (;;) {
        if (pl->nstages == cap) {
            td_traceql_stage *ns = palloc(p, 2 * cap * sizeof(*ns));
            if (!ns) {
                goto fail;
            }
            memcpy(ns, pl->stages, cap * sizeof(*ns));
            pl->stages = ns;
            cap *= 2;
        }
        if (!parse_stage(p, &pl->stages[pl->nstages])) {
            goto fail;
        }
        pl->nstages++;
        if (p->tok.kind != TQ_PIPE) {
            break;
        }
        size_t pipe_off = p->tok.off;
        if (!advance(p)) {
            goto fail;
        }
        if (is_metrics_kw(p)) {
            if (!top) {
                unsupported(p, pipe_off, "metrics function inside parentheses (metrics math)");
                goto fail;
            }
            if (!parse_metrics(p)) {
                goto fail;
            }
            break;
        }
    }
    p->nest--;
    return pl;
fail:
    p->nest--;
    return NULL;
}

/* rate() / *_over_time(attr [, q...]) [by(attr, ...)] after the final '|'. */
static bool parse_metrics(parser *p)
{
    size_t off = p->tok.off;
    switch (p->tok.kw) {
    case KW_COMPARE:
        return unsupported(p, off, "compare()");
    case KW_TOPK:
    case KW_BOTTOMK:
        return unsupported(p, off, "topk()/bottomk()");
    default:
        break;
    }
    td_traceql_metrics *m = palloc(p, sizeof(*m));
    if (!m) {
        return false;
    }
    m->offset = off;
    m->fn = (td_traceql_metrics_fn)(p->tok.kw - KW_RATE);
    if (!advance(p) || !expect(p, TQ_LPAREN, "(")) {
        return false;
    }
    if (m->fn != TD_TRACEQL_M_RATE && m->fn != TD_TRACEQL_M_COUNT_OVER_TIME) {
        if (!parse_attr_tok(p, &m->attr)) {
            return false;
        }
        m->has_attr = true;
    }
    if (m->fn == TD_TRACEQL_M_QUANTILE_OVER_TIME) {
        size_t cap = 0;
        do {
            if (!expect(p, TQ_COMMA, ",")) {
                return false;
            }
            if (p->tok.kind != TQ_INT && p->tok.kind != TQ_FLOAT) {
                return syntax(p, "number");
            }
            if (m->nquantiles == cap) {
                cap = cap ? cap * 2 : 4;
                double *nq = palloc(p, cap * sizeof(double));
                if (!nq) {
                    return false;
                }
                if (m->nquantiles) {
                    memcpy(nq, m->quantiles, m->nquantiles * sizeof(double));
                }
                m->quantiles = nq;
            }
            m->quantiles[m->nquantiles++] = p->tok.kind == TQ_INT ? (double)p->tok.i : p->tok.f;
            if (!advance(p)) {
                return false;
            }
        } while (p->tok.kind == TQ_COMMA);
    }
    if (!expect(p, TQ_RPAREN, ")")) {
        return false;
    }
    if (is_kw(p, KW_BY)) {
        if (!advance(p) || !expect(p, TQ_LPAREN, "(")) {
            return false;
        }
        size_t cap = 0;
        for (;;) {
            if (m->nby == cap) {
                cap = cap ? cap * 2 : 4;
                td_traceql_attr *nb = palloc(p, cap * sizeof(*nb));
                if (!nb) {
                    return false;
                }
                if (m->nby) {
                    memcpy(nb, m->by, m->nby * sizeof(*nb));
                }
                m->by = nb;
            }
            if (!parse_attr_tok(p, &m->by[m->nby])) {
                return false;
            }
            m->nby++;
            if (p->tok.kind != TQ_COMMA) {
                break;
            }
            if (!advance(p)) {
                return false;
            }
        }
        if (!expect(p, TQ_RPAREN, ")")) {
            return false;
        }
    }
    if (p->tok.kind == TQ_PIPE) {
        if (!advance(p)) {
            return false;
        }
        if (is_kw(p, KW_TOPK) || is_kw(p, KW_BOTTOMK)) {
            return unsupported(p, p->tok.off, "second-stage metrics functions (topk/bottomk)");
        }
        return syntax(p, "topk or bottomk");
    }
    td_traceql_op op;
    if (scalar_cmp_op(p, &op)) {
        return unsupported(p, p->tok.off, "metrics filter");
    }
    p->query->metrics = m;
    return true;
}

/* with(name=value, ...) */
static bool parse_options(parser *p)
{
    if (!advance(p) || !expect(p, TQ_LPAREN, "(")) {
        return false;
    }
    size_t cap = 0;
    td_traceql_query *q = p->query;
    for (;;) {
        if (p->tok.kind != TQ_IDENT && p->tok.kind != TQ_KEYWORD) {
            return syntax(p, "hint name");
        }
        const char *name = td_arena_strndup(p->a, p->q + p->tok.off, p->tok.len);
        if (!name || !advance(p) || !expect(p, TQ_EQ, "=")) {
            return name ? false : nomem(p);
        }
        size_t voff = p->tok.off;
        td_traceql_expr *v = parse_expr(p, 2);
        if (!v) {
            return false;
        }
        if (v->kind != TD_TRACEQL_E_LITERAL || v->lit.type == TD_TRACEQL_NIL) {
            return perr(p, voff, "syntax error: hint values must be literals");
        }
        if (q->noptions == cap) {
            cap = cap ? cap * 2 : 4;
            td_traceql_option *no = palloc(p, cap * sizeof(*no));
            if (!no) {
                return false;
            }
            if (q->noptions) {
                memcpy(no, q->options, q->noptions * sizeof(*no));
            }
            q->options = no;
        }
        q->options[q->noptions].name = name;
        q->options[q->noptions].value = v->lit;
        q->noptions++;
        if (p->tok.kind != TQ_COMMA) {
            break;
        }
        if (!advance(p)) {
            return false;
        }
    }
    return expect(p, TQ_RPAREN, ")");
}

/* ------------------------------------------------------------------------ */
/* referenced attributes                                                    */
/* ------------------------------------------------------------------------ */

static bool add_ref(parser *p, const td_traceql_attr *a)
{
    if (a->scope == TD_TRACEQL_SCOPE_INTRINSIC) {
        switch (a->intrinsic) {
        case TD_TRACEQL_I_STATUS:
        case TD_TRACEQL_I_STATUS_MESSAGE:
        case TD_TRACEQL_I_KIND:
        case TD_TRACEQL_I_CHILD_COUNT:
        case TD_TRACEQL_I_EVENT_NAME:
        case TD_TRACEQL_I_INSTR_NAME:
        case TD_TRACEQL_I_INSTR_VERSION:
            break;
        default:
            return true; /* name, durations, root*, IDs: fields, not attributes */
        }
        if (a->intrinsic == TD_TRACEQL_I_CHILD_COUNT) {
            p->query->needs_tree = true;
        }
    }
    for (size_t i = 0; i < p->nrefs; i++) {
        const td_traceql_attr *r = &p->refs[i];
        if (r->scope == a->scope && r->intrinsic == a->intrinsic && r->name_len == a->name_len &&
            memcmp(r->name, a->name, a->name_len) == 0) {
            return true;
        }
    }
    if (p->nrefs == p->refs_cap) {
        size_t cap = p->refs_cap ? p->refs_cap * 2 : 8;
        td_traceql_attr *nr = palloc(p, cap * sizeof(*nr));
        if (!nr) {
            return false;
        }
        if (p->nrefs) {
            memcpy(nr, p->refs, p->nrefs * sizeof(*nr));
        }
        p->refs = nr;
        p->refs_cap = cap;
    }
    p->refs[p->nrefs++] = *a;
    return true;
}

static bool refs_expr(parser *p, const td_traceql_expr *e)
{
    switch (e->kind) {
    case TD_TRACEQL_E_LITERAL:
        return true;
    case TD_TRACEQL_E_ATTR:
        return add_ref(p, &e->attr);
    case TD_TRACEQL_E_UNARY:
        return refs_expr(p, e->lhs);
    case TD_TRACEQL_E_BINARY:
        return refs_expr(p, e->lhs) && refs_expr(p, e->rhs);
    case TD_TRACEQL_E_LOGIC:
        for (size_t i = 0; i < e->nargs; i++) {
            if (!refs_expr(p, e->args[i])) {
                return false;
            }
        }
        return true;
    }
    return true;
}

static bool refs_pipeline(parser *p, const td_traceql_pipeline *pl);

static bool refs_ss(parser *p, const td_traceql_ssexpr *s)
{
    switch (s->kind) {
    case TD_TRACEQL_SSE_FILTER:
        return !s->filter || refs_expr(p, s->filter);
    case TD_TRACEQL_SSE_OP:
        return refs_ss(p, s->lhs) && refs_ss(p, s->rhs);
    case TD_TRACEQL_SSE_PIPELINE:
        return refs_pipeline(p, s->pipeline);
    }
    return true;
}

static bool refs_pipeline(parser *p, const td_traceql_pipeline *pl)
{
    for (size_t i = 0; i < pl->nstages; i++) {
        const td_traceql_stage *st = &pl->stages[i];
        bool ok = true;
        switch (st->kind) {
        case TD_TRACEQL_STAGE_SPANSET:
            ok = refs_ss(p, st->ss);
            break;
        case TD_TRACEQL_STAGE_SCALAR:
            ok = !st->agg_arg || refs_expr(p, st->agg_arg);
            break;
        case TD_TRACEQL_STAGE_BY:
        case TD_TRACEQL_STAGE_SELECT:
            for (size_t k = 0; ok && k < st->nfields; k++) {
                ok = refs_expr(p, st->fields[k]);
            }
            break;
        case TD_TRACEQL_STAGE_COALESCE:
            break;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* entry points                                                             */
/* ------------------------------------------------------------------------ */

td_status td_traceql_parse(const char *q, size_t len, td_arena *a, td_traceql_query **out,
                           td_err *err)
{
    if (len > TD_TRACEQL_MAX_QUERY) {
        return td_err_set(err, TD_INVALID, "query too long: %zu bytes (limit %d)", len,
                          TD_TRACEQL_MAX_QUERY);
    }
    if (len == 0) {
        q = ""; /* callers may pass (NULL, 0) */
    }
    td_status st = td__tql_lex_check(q, len, err);
    if (st != TD_OK) {
        return st;
    }
    parser p;
    memset(&p, 0, sizeof(p));
    p.a = a;
    p.err = err;
    p.q = td_arena_strndup(a, q, len); /* AST strings and positions refer to this copy */
    p.len = len;
    if (!p.q) {
        return td_err_set(err, TD_NOMEM, "out of memory parsing the query");
    }
    p.lx.q = p.q;
    p.lx.len = len;
    p.lx.a = a;
    p.lx.err = err;
    p.query = palloc(&p, sizeof(*p.query));
    if (!p.query) {
        return TD_NOMEM;
    }
    p.query->text = p.q;
    p.query->text_len = len;
    if (advance(&p)) {
        td_traceql_pipeline *pl = parse_pipeline(&p, true);
        if (pl) {
            p.query->pipeline = *pl;
            if (is_kw(&p, KW_WITH)) {
                parse_options(&p);
            }
            if (!p.failed && p.tok.kind != TQ_EOF) {
                syntax(&p, NULL);
            }
        }
    }
    if (!p.failed && refs_pipeline(&p, &p.query->pipeline)) {
        p.query->refs = p.refs;
        p.query->nrefs = p.nrefs;
        p.query->regex_src = p.re_src.v;
        p.query->regexes = p.re_posix.v;
        p.query->nregexes = p.re_src.n;
        *out = p.query;
        return TD_OK;
    }
    if (err && err->code == TD_OK) {
        td_err_set(err, TD_INTERNAL, "TraceQL parser failed without an error");
    }
    return err ? err->code : TD_INVALID;
}

td_status td_traceql_parse_attr(const char *s, size_t len, td_arena *a, td_traceql_attr *out,
                                td_err *err)
{
    /*
     * Tempo parses "{" + tag + "}" (ParseIdentifier) without type checks: so do
     * we, token by token, so that positions in errors match Tempo's.
     */
    size_t n;
    if (!td_size_add(len, 2, &n) || n > TD_TRACEQL_MAX_QUERY) {
        return td_err_set(err, TD_INVALID, "tag name too long");
    }
    char *w = td_arena_alloc(a, n + 1);
    if (!w) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    w[0] = '{';
    if (len) {
        memcpy(w + 1, s, len);
    }
    w[len + 1] = '}';
    w[n] = '\0';
    td_status st = td__tql_lex_check(w, n, err);
    if (st != TD_OK) {
        return st;
    }
    parser p;
    memset(&p, 0, sizeof(p));
    p.a = a;
    p.err = err;
    p.q = w;
    p.len = n;
    p.lx = (td__tql_lexer){w, n, 0, a, err};
    if (advance(&p) && advance(&p)) { /* past '{' */
        if (p.tok.kind == TQ_IDENT) {
            char d[64];
            tok_desc(&p, d, sizeof(d));
            perr(&p, p.tok.off, "unknown identifier: %s", d);
        } else if (p.tok.kind != TQ_ATTR && p.tok.kind != TQ_INTRINSIC) {
            syntax(&p, "attribute");
        } else {
            td_traceql_expr *e = attr_expr(&p);
            if (e && expect(&p, TQ_RBRACE, "}") && p.tok.kind != TQ_EOF) {
                syntax(&p, NULL);
            }
            if (e && !p.failed) {
                *out = e->attr;
                return TD_OK;
            }
        }
    }
    return err && err->code != TD_OK ? err->code : TD_INVALID;
}
