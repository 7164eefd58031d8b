/*
 * format.c - canonical text of a parsed TraceQL query, and Go's duration
 * format. The canonical form parenthesises every operand that is not a literal
 * or an attribute, so it can be compared in tests and re-parsed to itself
 * (the fuzz target checks that round trip). Aggregate and by() keys in search
 * results ("count()", "avg(duration)", "by(resource.service.name)") come from
 * here too, matching Tempo's String() for the common cases.
 */
#include "api/traceql/tql_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *td__tql_status_name(int64_t code)
{
    switch (code) {
    case 0:
        return "unset";
    case 1:
        return "ok";
    case 2:
        return "error";
    default:
        return "unset";
    }
}

const char *td__tql_kind_name(int64_t kind)
{
    static const char *const names[] = {"unspecified", "internal", "server",
                                        "client",      "producer", "consumer"};
    return kind >= 0 && kind < 6 ? names[kind] : "unspecified";
}

const char *td__tql_agg_name(td_traceql_agg agg)
{
    static const char *const names[] = {"count", "avg", "min", "max", "sum"};
    return (unsigned)agg < 5 ? names[agg] : "?";
}

const char *td__tql_op_text(td_traceql_op op)
{
    static const char *const names[] = {"=",  "!=", "<", "<=", ">",      ">=",   "=~",
                                        "!~", "+",  "-", "*",  "/",      "%",    "^",
                                        "&&", "||", "!", "-",  "!= nil", "= nil"};
    return (unsigned)op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

/* ---- durations: Go's time.Duration.String ---- */

/* Fraction of v / 10^prec into the end of buf (written backwards); trailing zeros dropped. */
static size_t fmt_frac(char *buf, size_t w, uint64_t *v, int prec)
{
    bool print = false;
    for (int i = 0; i < prec; i++) {
        int digit = (int)(*v % 10);
        print = print || digit != 0;
        if (print) {
            buf[--w] = (char)('0' + digit);
        }
        *v /= 10;
    }
    if (print) {
        buf[--w] = '.';
    }
    return w;
}

static size_t fmt_int(char *buf, size_t w, uint64_t v)
{
    if (v == 0) {
        buf[--w] = '0';
        return w;
    }
    while (v > 0) {
        buf[--w] = (char)('0' + v % 10);
        v /= 10;
    }
    return w;
}

size_t td_traceql_format_duration(int64_t ns, char out[40])
{
    char buf[40];
    size_t w = sizeof(buf);
    uint64_t u = (uint64_t)ns;
    bool neg = ns < 0;
    if (neg) {
        u = 0 - u;
    }
    if (u < 1000000000ull) {
        int prec = 0;
        buf[--w] = 's';
        if (u == 0) {
            buf[--w] = '0';
            memcpy(out, buf + w, sizeof(buf) - w);
            out[sizeof(buf) - w] = '\0';
            return sizeof(buf) - w;
        } else if (u < 1000) {
            buf[--w] = 'n';
        } else if (u < 1000000) {
            prec = 3;
            buf[--w] = (char)0xB5; /* µ, U+00B5 */
            buf[--w] = (char)0xC2;
        } else {
            prec = 6;
            buf[--w] = 'm';
        }
        w = fmt_frac(buf, w, &u, prec);
        w = fmt_int(buf, w, u);
    } else {
        buf[--w] = 's';
        w = fmt_frac(buf, w, &u, 9);
        w = fmt_int(buf, w, u % 60);
        u /= 60;
        if (u > 0) {
            buf[--w] = 'm';
            w = fmt_int(buf, w, u % 60);
            u /= 60;
            if (u > 0) {
                buf[--w] = 'h';
                w = fmt_int(buf, w, u);
            }
        }
    }
    if (neg) {
        buf[--w] = '-';
    }
    size_t n = sizeof(buf) - w;
    memcpy(out, buf + w, n);
    out[n] = '\0';
    return n;
}

/* ---- values ---- */

/*
 * Shortest text that parses back to f, laid out as Go's strconv 'g' with
 * precision -1 (exponent form below 1e-4 and from 1e6),
 * plus ".0" when it would otherwise read as an integer (Tempo's Static.String).
 */
static void format_float(double f, td_buf *out)
{
    char buf[48];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) {
            break;
        }
    }
    snprintf(buf, sizeof(buf), "%.*e", prec - 1, f);
    const char *e = strchr(buf, 'e');
    int exp = e ? atoi(e + 1) : 0;
    if (exp < -4 || exp >= 6) {
        td_buf_addstr(out, buf);
    } else {
        int decimals = prec - 1 - exp;
        snprintf(buf, sizeof(buf), "%.*f", decimals > 0 ? decimals : 0, f);
        td_buf_addstr(out, buf);
    }
    if (!strpbrk(buf, ".eEn")) {
        td_buf_addstr(out, ".0"); /* keep it a float when parsed back */
    }
}

static void format_string(const char *s, size_t n, td_buf *out)
{
    td_buf_addch(out, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t k;
        switch (c) {
        case '"':
            td_buf_addstr(out, "\\\"");
            break;
        case '\\':
            td_buf_addstr(out, "\\\\");
            break;
        case '\n':
            td_buf_addstr(out, "\\n");
            break;
        case '\r':
            td_buf_addstr(out, "\\r");
            break;
        case '\t':
            td_buf_addstr(out, "\\t");
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                td_buf_addf(out, "\\x%02x", c);
            } else if (c < 0x80) {
                td_buf_addch(out, (char)c);
            } else if ((k = td_utf8_decode((const unsigned char *)s + i, n - i, &cp)) != 0) {
                td_buf_add(out, s + i, k);
                i += k;
                continue;
            } else {
                td_buf_addf(out, "\\x%02x", c);
            }
            break;
        }
        i++;
    }
    td_buf_addch(out, '"');
}

void td__tql_format_value(const td_traceql_value *v, td_buf *out)
{
    char buf[40];
    switch (v->type) {
    case TD_TRACEQL_NIL:
        td_buf_addstr(out, "nil");
        break;
    case TD_TRACEQL_INT:
        if (v->i == INT64_MIN) {
            td_buf_addstr(out, "minInt");
        } else {
            td_buf_addf(out, "%lld", (long long)v->i);
        }
        break;
    case TD_TRACEQL_FLOAT:
        format_float(v->f, out);
        break;
    case TD_TRACEQL_STRING:
        format_string(v->s.ptr, v->s.len, out);
        break;
    case TD_TRACEQL_BOOL:
        td_buf_addstr(out, v->b ? "true" : "false");
        break;
    case TD_TRACEQL_DURATION:
        td_traceql_format_duration(v->i, buf);
        td_buf_addstr(out, buf);
        break;
    case TD_TRACEQL_STATUS:
        td_buf_addstr(out, td__tql_status_name(v->i));
        break;
    case TD_TRACEQL_KIND:
        td_buf_addstr(out, td__tql_kind_name(v->i));
        break;
    case TD_TRACEQL_OTLP:
        td_buf_addstr(out, "<value>");
        break;
    }
}

/* ---- attributes ---- */

/* Can name be written unquoted after its scope? (mirrors the lexer's attribute runes) */
static bool bare_name_ok(const td_traceql_attr *a)
{
    const unsigned char *p = (const unsigned char *)a->name;
    size_t n = a->name_len;
    if (n == 0) {
        return false;
    }
    if (a->scope == TD_TRACEQL_SCOPE_NONE && p[0] >= '0' && p[0] <= '9') {
        return false; /* ".5x" would lex as a number */
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = td_utf8_decode(p + i, n - i, &cp);
        if (k == 0) {
            return false;
        }
        if (cp < 0x80 && (cp <= ' ' || cp == 0x7f || strchr("{}()=~!<>&|^,\"\\", (int)cp))) {
            return false;
        }
        /* Unicode spaces end an attribute too */
        if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
            cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000) {
            return false;
        }
        i += k;
    }
    return true;
}

void td_traceql_format_attr(const td_traceql_attr *a, td_buf *out)
{
    static const char *const prefix[] = {
        ".", "span.", "resource.", "event.", "link.", "instrumentation.", ""};
    if (a->scope == TD_TRACEQL_SCOPE_INTRINSIC) {
        td_buf_add(out, a->name, a->name_len);
        return;
    }
    td_buf_addstr(out, prefix[a->scope]);
    if (bare_name_ok(a)) {
        td_buf_add(out, a->name, a->name_len);
        return;
    }
    td_buf_addch(out, '"');
    for (size_t i = 0; i < a->name_len; i++) {
        if (a->name[i] == '"' || a->name[i] == '\\') {
            td_buf_addch(out, '\\');
        }
        td_buf_addch(out, a->name[i]);
    }
    td_buf_addch(out, '"');
}

/* ---- expressions ---- */

/*
 * An operand: bare when it is a literal or an attribute, else in parentheses.
 * A negative literal on the left of * / % ^ also needs them: "-5 ^ x" would
 * parse back as -(5 ^ x), since prefix minus binds like binary minus.
 */
static void format_operand(const td_traceql_expr *e, td_buf *out, bool left_of_mul)
{
    bool bare = e->kind == TD_TRACEQL_E_ATTR || e->kind == TD_TRACEQL_E_LITERAL;
    if (e->kind == TD_TRACEQL_E_LITERAL && left_of_mul) {
        const td_traceql_value *v = &e->lit;
        if (((v->type == TD_TRACEQL_INT || v->type == TD_TRACEQL_DURATION) && v->i < 0 &&
             v->i != INT64_MIN) ||
            (v->type == TD_TRACEQL_FLOAT && signbit(v->f))) {
            bare = false;
        }
    }
    if (bare) {
        td_traceql_format_expr(e, out);
        return;
    }
    td_buf_addch(out, '(');
    td_traceql_format_expr(e, out);
    td_buf_addch(out, ')');
}

void td_traceql_format_expr(const td_traceql_expr *e, td_buf *out)
{
    switch (e->kind) {
    case TD_TRACEQL_E_LITERAL:
        td__tql_format_value(&e->lit, out);
        break;
    case TD_TRACEQL_E_ATTR:
        td_traceql_format_attr(&e->attr, out);
        break;
    case TD_TRACEQL_E_UNARY:
        if (e->op == TD_TRACEQL_OP_EXISTS || e->op == TD_TRACEQL_OP_NOT_EXISTS) {
            format_operand(e->lhs, out, false);
            td_buf_addstr(out, e->op == TD_TRACEQL_OP_EXISTS ? " != nil" : " = nil");
        } else {
            td_buf_addstr(out, e->op == TD_TRACEQL_OP_NOT ? "!" : "-");
            format_operand(e->lhs, out, false);
        }
        break;
    case TD_TRACEQL_E_BINARY:
        format_operand(e->lhs, out, e->op >= TD_TRACEQL_OP_MUL && e->op <= TD_TRACEQL_OP_POW);
        td_buf_addch(out, ' ');
        td_buf_addstr(out, td__tql_op_text(e->op));
        td_buf_addch(out, ' ');
        format_operand(e->rhs, out, false);
        break;
    case TD_TRACEQL_E_LOGIC:
        for (size_t i = 0; i < e->nargs; i++) {
            if (i) {
                td_buf_addstr(out, e->op == TD_TRACEQL_OP_AND ? " && " : " || ");
            }
            format_operand(e->args[i], out, false);
        }
        break;
    }
}

const char *td__tql_expr_key(const td_traceql_expr *e, const char *prefix, td_arena *a)
{
    td_buf b = TD_BUF_INIT;
    td_buf_addstr(&b, prefix);
    if (e) {
        td_traceql_format_expr(e, &b);
    }
    td_buf_addch(&b, ')');
    const char *s = td_arena_strndup(a, b.data, b.len);
    td_buf_release(&b);
    return s;
}

/* ---- spansets and pipelines ---- */

static void format_pipeline(const td_traceql_pipeline *p, td_buf *out);

static const char *ssop_text(td_traceql_ssop op)
{
    static const char *const names[] = {"&&",  "||",  ">",  "<",  ">>", "<<",  "~",   "!>", "!<",
                                        "!>>", "!<<", "!~", "&>", "&<", "&>>", "&<<", "&~"};
    return (unsigned)op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

static void format_ss(const td_traceql_ssexpr *s, td_buf *out, bool wrap)
{
    switch (s->kind) {
    case TD_TRACEQL_SSE_FILTER:
        if (s->filter) {
            td_buf_addstr(out, "{ ");
            td_traceql_format_expr(s->filter, out);
            td_buf_addstr(out, " }");
        } else {
            td_buf_addstr(out, "{ }");
        }
        break;
    case TD_TRACEQL_SSE_OP:
        if (wrap) {
            td_buf_addch(out, '(');
        }
        format_ss(s->lhs, out, true);
        td_buf_addch(out, ' ');
        td_buf_addstr(out, ssop_text(s->op));
        td_buf_addch(out, ' ');
        format_ss(s->rhs, out, true);
        if (wrap) {
            td_buf_addch(out, ')');
        }
        break;
    case TD_TRACEQL_SSE_PIPELINE:
        td_buf_addch(out, '(');
        format_pipeline(s->pipeline, out);
        td_buf_addch(out, ')');
        break;
    }
}

static void format_fields(const char *name, const td_traceql_stage *st, td_buf *out)
{
    td_buf_addstr(out, name);
    td_buf_addch(out, '(');
    for (size_t i = 0; i < st->nfields; i++) {
        if (i) {
            td_buf_addstr(out, ", ");
        }
        td_traceql_format_expr(st->fields[i], out);
    }
    td_buf_addch(out, ')');
}

static void format_pipeline(const td_traceql_pipeline *p, td_buf *out)
{
    for (size_t i = 0; i < p->nstages; i++) {
        const td_traceql_stage *st = &p->stages[i];
        if (i) {
            td_buf_addstr(out, " | ");
        }
        switch (st->kind) {
        case TD_TRACEQL_STAGE_SPANSET:
            format_ss(st->ss, out, false);
            break;
        case TD_TRACEQL_STAGE_SCALAR:
            td_buf_addstr(out, st->key);
            td_buf_addch(out, ' ');
            td_buf_addstr(out, td__tql_op_text(st->cmp));
            td_buf_addch(out, ' ');
            td__tql_format_value(&st->value, out);
            break;
        case TD_TRACEQL_STAGE_BY:
            format_fields("by", st, out);
            break;
        case TD_TRACEQL_STAGE_SELECT:
            format_fields("select", st, out);
            break;
        case TD_TRACEQL_STAGE_COALESCE:
            td_buf_addstr(out, "coalesce()");
            break;
        }
    }
}

static void format_metrics(const td_traceql_metrics *m, td_buf *out)
{
    static const char *const names[] = {
        "rate",          "count_over_time", "min_over_time",      "max_over_time",
        "avg_over_time", "sum_over_time",   "quantile_over_time", "histogram_over_time"};
    td_buf_addstr(out, names[m->fn]);
    td_buf_addch(out, '(');
    if (m->has_attr) {
        td_traceql_format_attr(&m->attr, out);
    }
    for (size_t i = 0; i < m->nquantiles; i++) {
        td_buf_addstr(out, ", ");
        format_float(m->quantiles[i], out);
    }
    td_buf_addch(out, ')');
    if (m->nby) {
        td_buf_addstr(out, " by(");
        for (size_t i = 0; i < m->nby; i++) {
            if (i) {
                td_buf_addstr(out, ", ");
            }
            td_traceql_format_attr(&m->by[i], out);
        }
        td_buf_addch(out, ')');
    }
}

void td_traceql_format(const td_traceql_query *q, td_buf *out)
{
    format_pipeline(&q->pipeline, out);
    if (q->metrics) {
        td_buf_addstr(out, " | ");
        format_metrics(q->metrics, out);
    }
    if (q->noptions) {
        td_buf_addstr(out, " with(");
        for (size_t i = 0; i < q->noptions; i++) {
            if (i) {
                td_buf_addstr(out, ", ");
            }
            td_buf_addstr(out, q->options[i].name);
            td_buf_addch(out, '=');
            td__tql_format_value(&q->options[i].value, out);
        }
        td_buf_addch(out, ')');
    }
}
