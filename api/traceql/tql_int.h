/*
 * tql_int.h - internals shared by the TraceQL sources (lexer.c, parser.c,
 * value.c, format.c, eval.c, plan.c). Not a public interface: the td__
 * prefix marks every symbol (STYLE rule 1); tests may use it.
 *
 * Thread-safety: everything is reentrant.
 */
#ifndef TD_API_TRACEQL_INT_H
#define TD_API_TRACEQL_INT_H

#include "api/traceql/traceql.h"
#include "core/regex.h"
#include "core/utf8.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- positions and errors ---- */

/* 1-based line and column (in characters) of byte offset off in q. */
void td__tql_linecol(const char *q, size_t len, size_t off, unsigned *line, unsigned *col);

/* TD_INVALID "parse error at line L, col C: <fmt>". Returns TD_INVALID. */
td_status td__tql_parse_error(td_err *err, const char *q, size_t len, size_t off, const char *fmt,
                              ...) __attribute__((format(printf, 5, 6)));

/* TD_INVALID "unsupported TraceQL construct: <what> at line L, col C". */
td_status td__tql_unsupported(td_err *err, const char *q, size_t len, size_t off, const char *what);

/* ---- lexer ---- */

typedef enum td__tql_tok_kind {
    TQ_EOF = 0,
    TQ_LBRACE,
    TQ_RBRACE,
    TQ_LPAREN,
    TQ_RPAREN,
    TQ_COMMA,
    TQ_EQ,
    TQ_NEQ,
    TQ_RE,
    TQ_NRE, /* also "not sibling" between spansets */
    TQ_GT,
    TQ_GTE,
    TQ_LT,
    TQ_LTE,
    TQ_ADD,
    TQ_SUB,
    TQ_MUL,
    TQ_DIV,
    TQ_MOD,
    TQ_POW,
    TQ_AND,
    TQ_OR,
    TQ_NOT,
    TQ_PIPE,
    TQ_DESC,         /* >> */
    TQ_ANCE,         /* << */
    TQ_TILDE,        /* ~ */
    TQ_NOT_CHILD,    /* !> */
    TQ_NOT_PARENT,   /* !< */
    TQ_NOT_DESC,     /* !>> */
    TQ_NOT_ANCE,     /* !<< */
    TQ_UNION_SIBL,   /* &~ */
    TQ_UNION_CHILD,  /* &> */
    TQ_UNION_PARENT, /* &< */
    TQ_UNION_DESC,   /* &>> */
    TQ_UNION_ANCE,   /* &<< */
    TQ_STRING,
    TQ_INT,
    TQ_FLOAT,
    TQ_DURATION,
    TQ_ATTR,      /* scoped or unscoped attribute: attr */
    TQ_INTRINSIC, /* intrinsic (bare word or scope:name): attr / unsupported_intrinsic */
    TQ_KEYWORD,   /* kw */
    TQ_IDENT,     /* any other word: text */
} td__tql_tok_kind;

typedef enum td__tql_kw {
    KW_TRUE = 1,
    KW_FALSE,
    KW_NIL,
    KW_OK,
    KW_ERROR,
    KW_UNSET,
    KW_UNSPECIFIED,
    KW_INTERNAL,
    KW_SERVER,
    KW_CLIENT,
    KW_PRODUCER,
    KW_CONSUMER,
    KW_MININT,
    KW_MAXINT,
    KW_COUNT,
    KW_AVG,
    KW_MIN,
    KW_MAX,
    KW_SUM,
    KW_BY,
    KW_COALESCE,
    KW_SELECT,
    KW_WITH,
    KW_RATE,
    KW_COUNT_OVER_TIME,
    KW_MIN_OVER_TIME,
    KW_MAX_OVER_TIME,
    KW_AVG_OVER_TIME,
    KW_SUM_OVER_TIME,
    KW_QUANTILE_OVER_TIME,
    KW_HISTOGRAM_OVER_TIME,
    KW_COMPARE,
    KW_TOPK,
    KW_BOTTOMK,
} td__tql_kw;

typedef struct td__tql_tok {
    td__tql_tok_kind kind;
    size_t off, len; /* source text */
    int64_t i;       /* INT, DURATION (ns) */
    double f;        /* FLOAT */
    const char *s;   /* STRING (unescaped, arena, NUL-terminated), IDENT text */
    size_t slen;
    td_traceql_attr attr;    /* ATTR, INTRINSIC */
    const char *unsupported; /* INTRINSIC/ATTR we know but do not implement: its name */
    td__tql_kw kw;           /* KEYWORD */
} td__tql_tok;

typedef struct td__tql_lexer {
    const char *q;
    size_t len;
    size_t pos;
    td_arena *a;
    td_err *err;
} td__tql_lexer;

/* Check the whole query once: UTF-8 validity and no NUL byte. */
td_status td__tql_lex_check(const char *q, size_t len, td_err *err);
/* Next token into *t. Errors: TD_INVALID (with position), TD_NOMEM. */
td_status td__tql_lex(td__tql_lexer *l, td__tql_tok *t);

/*
 * Parse a Go or Prometheus duration ("1h30m", "1.5s", "250ms", "3d", "1w2d",
 * "10µs"): true with *ns on success, false on syntax error or overflow.
 */
bool td__tql_parse_duration(const char *s, size_t n, int64_t *ns);

/* ---- regex translation: td_regex_translate (core/regex.h) ---- */

/* ---- runtime values (value.c) ---- */

typedef enum td__tql_vt {
    TV_NIL = 0,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_BOOL,
    TV_DUR,
    TV_STATUS,
    TV_KIND,
    TV_ARRAY, /* any->array_value: compared element-wise */
    TV_OTHER, /* kvlist, bytes: present but never equal to anything */
    TV_HEX,   /* raw ID bytes, compared as lowercase hex */
    TV_MULTI, /* event/link values of one span: compared element-wise */
} td__tql_vt;

typedef enum td__tql_multi {
    TM_EVENT_ATTR,
    TM_EVENT_NAME,
    TM_EVENT_TIME,
    TM_LINK_ATTR,
    TM_LINK_TRACE_ID,
    TM_LINK_SPAN_ID,
} td__tql_multi;

typedef struct td__tql_val {
    td__tql_vt t;
    bool trim; /* TV_HEX: ignore leading zeros (trace:id) */
    union {
        int64_t i;
        double f;
        bool b;
        struct {
            const char *p;
            size_t n;
        } s;
        const td_otlp_any *any; /* TV_ARRAY, TV_OTHER */
        struct {
            const uint8_t *p;
            size_t n;
        } hex;
        struct {
            td__tql_multi kind;
            const td_otlp_span *span;
            const char *key;
        } m;
    };
} td__tql_val;

/* The value of key in kvs[0..n) (first match), or NULL. */
const td_otlp_any *td__tql_find_kv(td_otlp_kv *const *kvs, size_t n, const char *key);

/* Value of a stored attribute (NULL or unset: TV_NIL). */
td__tql_val td__tql_val_of_any(const td_otlp_any *v);
td__tql_val td__tql_val_of_lit(const td_traceql_value *v);
/* Public form of a scalar value; TV_HEX is rendered into arena a (NULL on OOM: NIL). */
td_traceql_value td__tql_val_public(const td__tql_val *v, td_arena *a);

/* The first element of an event/link value (NIL if none); other values unchanged. */
td__tql_val td__tql_val_first(const td__tql_val *v);
/* Is the value present (for `!= nil`)? */
bool td__tql_val_present(const td__tql_val *v);
/* True, or an array/multi with a true element (a bare boolean operand: `= true`). */
bool td__tql_val_truthy(const td__tql_val *v);

/*
 * Comparison with API-CONTRACT §4.4 semantics: NIL or mismatched types -> false
 * (also for !=); int/float/duration compare numerically; arrays and event/link
 * values: true if any element matches, for != and !~ if every element does.
 * re is the compiled regex of RE/NRE (opaque regex_t *), unused otherwise.
 */
bool td__tql_compare(td_traceql_op op, const td__tql_val *l, const td__tql_val *r, const void *re);
/* Arithmetic: int op int -> int (wrapping; /0 and %0 -> NIL); other numbers -> float. */
td__tql_val td__tql_arith(td_traceql_op op, const td__tql_val *l, const td__tql_val *r);
td__tql_val td__tql_negate(const td__tql_val *v);
/* Total order used for grouping: by type, then value (arrays element-wise). */
int td__tql_val_order(const td__tql_val *a, const td__tql_val *b);

/* Lowercase hex of p[0..n) into buf (at most 2*n+1 bytes, n capped at 32); returns len. */
size_t td__tql_hex(const uint8_t *p, size_t n, char *buf);

/* ---- formatting (format.c) ---- */

void td__tql_format_value(const td_traceql_value *v, td_buf *out);
/* prefix + canonical text of e + ")" in arena a ("by(" -> "by(span.x)"); NULL on OOM. */
const char *td__tql_expr_key(const td_traceql_expr *e, const char *prefix, td_arena *a);

/* Names of enum values for formatting and attribute output. */
const char *td__tql_status_name(int64_t code);
const char *td__tql_kind_name(int64_t kind);
const char *td__tql_agg_name(td_traceql_agg agg);
const char *td__tql_op_text(td_traceql_op op);

#endif
