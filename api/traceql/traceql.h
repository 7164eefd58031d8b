/*
 * traceql.h - TraceQL: parser, evaluator over one in-memory trace, and the index
 * planner hook (API-CONTRACT §4, corrections at its top).
 *
 *   td_traceql_query *q;
 *   td_traceql_parse(text, len, &req_arena, &q, &err);     -- pure: bytes + arena -> AST
 *   td_traceql_eval *ev;
 *   td_traceql_eval_new(q, &ev, &err);                      -- compiles regexes once
 *   for each candidate trace:
 *       td_traceql_span spans[n] = {{span, resource, scope, -1}, ...};
 *       td_traceql_trace t;
 *       td_traceql_trace_init(&t, spans, n, &trace_arena, &err);   -- parents, root, duration
 *       td_traceql_result r;
 *       td_traceql_eval_trace(ev, &t, &trace_arena, &r, &err);     -- r.nsets > 0: trace matches
 *   td_traceql_eval_free(ev);
 *
 * Memory (STYLE rule 5): the AST, every string in it, hints and results live in
 * the td_arena passed in; nothing returned here is freed on its own. Result
 * values may also point into the caller's OTLP span data (attribute strings),
 * so they stay valid while both that data and the arena live. The only heap
 * object is td_traceql_eval (compiled regexes and per-trace scratch memory that
 * is reused from one trace to the next), released with td_traceql_eval_free.
 *
 * Errors: TD_INVALID with a message safe to show a client (the HTTP layer
 * prefixes "invalid TraceQL query: "):
 *   - syntax and type errors: "parse error at line L, col C: <detail>"
 *     (L and C are 1-based; C counts characters, as Tempo's scanner does);
 *   - constructs this engine does not implement:
 *     "unsupported TraceQL construct: <what> at line L, col C" - never a
 *     silently different answer;
 *   - evaluation: "spanset operators are not supported for multiple spansets
 *     per trace. consider using coalesce()" (Tempo's wording).
 * TD_NOMEM when the arena (or the heap, for td_traceql_eval) is exhausted.
 *
 * Limits: queries longer than TD_TRACEQL_MAX_QUERY bytes, nesting (parentheses,
 * braces, prefix operators, nested pipelines) deeper than TD_TRACEQL_MAX_NESTING,
 * expression trees deeper than TD_TRACEQL_MAX_DEPTH, more than
 * TD_TRACEQL_MAX_REGEXES regexes, or a regex longer than TD_TRACEQL_MAX_REGEX
 * bytes or whose compiled size estimate exceeds an internal bound are rejected
 * with TD_INVALID. Evaluation recursion is bounded by the same depth limit.
 *
 * Regexes (=~, !~) use RE2 syntax in the query and are fully anchored, with `.`
 * matching newlines (Tempo: "^(?s:" pattern ")$"). They are translated to POSIX
 * extended regexes and run with regexec(3). Supported: literals, `.`, classes
 * `[...]` with ranges, `[:alpha:]`-style names and \d \w \s (and negations),
 * escapes \t \n \r \f \v \a \x41 \x{263a} \123 \Q...\E, groups (...), (?:...),
 * (?P<name>...), (?<name>...), flags (?i) (?s) (?U) (?-i) (?-s) and (?i:...),
 * alternation, * + ? {n} {n,} {n,m} (lazy variants: same match/no-match), ^ $
 * \A \z \b \B. Rejected with TD_INVALID ("invalid regex ..."): \p{..} Unicode
 * classes, (?m), backreferences, and classes mixing negation with non-ASCII
 * members. Case-insensitive matching folds ASCII letters only. `.` and negated
 * classes match one UTF-8 character (a lead byte and its continuation bytes).
 *
 * Thread-safety: td_traceql_parse, td_traceql_format*, td_traceql_trace_init,
 * td_traceql_span_attrs and td_traceql_hints are reentrant. A parsed query is
 * immutable and may be shared by threads (its arena must outlive them). A
 * td_traceql_eval belongs to one thread at a time: create one per worker.
 */
#ifndef TD_API_TRACEQL_H
#define TD_API_TRACEQL_H

#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"
#include "proto/proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_TRACEQL_MAX_QUERY (256 * 1024)
#define TD_TRACEQL_MAX_NESTING 64
#define TD_TRACEQL_MAX_DEPTH 256
#define TD_TRACEQL_MAX_REGEX 4096
#define TD_TRACEQL_MAX_REGEXES 256

/* ------------------------------------------------------------------------ */
/* values                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum td_traceql_type {
    TD_TRACEQL_NIL = 0,
    TD_TRACEQL_INT,      /* i */
    TD_TRACEQL_FLOAT,    /* f */
    TD_TRACEQL_STRING,   /* s (also NUL-terminated at s.ptr[s.len]) */
    TD_TRACEQL_BOOL,     /* b */
    TD_TRACEQL_DURATION, /* i = nanoseconds */
    TD_TRACEQL_STATUS,   /* i = OTLP status code: 0 unset, 1 ok, 2 error */
    TD_TRACEQL_KIND, /* i = OTLP span kind: 0 unspecified, 1 internal, 2 server, ... 5 consumer */
    TD_TRACEQL_OTLP, /* otlp = a stored AnyValue that is no scalar (array, kvlist, bytes) */
} td_traceql_type;

typedef struct td_traceql_value {
    td_traceql_type type;
    union {
        int64_t i;
        double f;
        bool b;
        struct {
            const char *ptr;
            size_t len;
        } s;
        const td_otlp_any *otlp;
    };
} td_traceql_value;

/* A key and a typed value: aggregate/group results and per-span attributes. */
typedef struct td_traceql_kv {
    const char *key;
    td_traceql_value value;
} td_traceql_kv;

/* ------------------------------------------------------------------------ */
/* AST                                                                      */
/* ------------------------------------------------------------------------ */

typedef enum td_traceql_scope {
    TD_TRACEQL_SCOPE_NONE = 0, /* `.key`: span attribute, else resource attribute */
    TD_TRACEQL_SCOPE_SPAN,
    TD_TRACEQL_SCOPE_RESOURCE,
    TD_TRACEQL_SCOPE_EVENT, /* any event of the span */
    TD_TRACEQL_SCOPE_LINK,  /* any link of the span */
    TD_TRACEQL_SCOPE_INSTRUMENTATION,
    TD_TRACEQL_SCOPE_INTRINSIC,
} td_traceql_scope;

typedef enum td_traceql_intrinsic {
    TD_TRACEQL_I_NONE = 0,
    TD_TRACEQL_I_NAME,           /* name, span:name: string */
    TD_TRACEQL_I_STATUS,         /* status, span:status: status */
    TD_TRACEQL_I_STATUS_MESSAGE, /* statusMessage, span:statusMessage: string */
    TD_TRACEQL_I_KIND,           /* kind, span:kind: kind */
    TD_TRACEQL_I_DURATION,       /* duration, span:duration: end - start */
    TD_TRACEQL_I_TRACE_DURATION, /* traceDuration, trace:duration */
    TD_TRACEQL_I_ROOT_NAME,      /* rootName, trace:rootName */
    TD_TRACEQL_I_ROOT_SERVICE,   /* rootServiceName, trace:rootService */
    TD_TRACEQL_I_SPAN_ID,        /* span:id: hex string */
    TD_TRACEQL_I_PARENT_ID,      /* span:parentID: hex string */
    TD_TRACEQL_I_TRACE_ID,       /* trace:id: hex string, leading zeros ignored */
    TD_TRACEQL_I_CHILD_COUNT,    /* span:childCount: int */
    TD_TRACEQL_I_EVENT_NAME,     /* event:name: string, any event */
    TD_TRACEQL_I_EVENT_TIME,     /* event:timeSinceStart: duration, any event */
    TD_TRACEQL_I_LINK_TRACE_ID,  /* link:traceID: hex string, any link */
    TD_TRACEQL_I_LINK_SPAN_ID,   /* link:spanID: hex string, any link */
    TD_TRACEQL_I_INSTR_NAME,     /* instrumentation:name: string */
    TD_TRACEQL_I_INSTR_VERSION,  /* instrumentation:version: string */
} td_traceql_intrinsic;

/* An attribute reference or an intrinsic. */
typedef struct td_traceql_attr {
    td_traceql_scope scope;
    td_traceql_intrinsic intrinsic; /* != NONE iff scope == INTRINSIC */
    const char *name; /* the key without scope ("http.status_code"); for intrinsics the
                         canonical spelling ("status", "trace:id"); NUL-terminated */
    size_t name_len;
} td_traceql_attr;

typedef enum td_traceql_op {
    /* comparisons (binary) */
    TD_TRACEQL_OP_EQ = 0,
    TD_TRACEQL_OP_NEQ,
    TD_TRACEQL_OP_LT,
    TD_TRACEQL_OP_LTE,
    TD_TRACEQL_OP_GT,
    TD_TRACEQL_OP_GTE,
    TD_TRACEQL_OP_RE,
    TD_TRACEQL_OP_NRE,
    /* arithmetic (binary) */
    TD_TRACEQL_OP_ADD,
    TD_TRACEQL_OP_SUB,
    TD_TRACEQL_OP_MUL,
    TD_TRACEQL_OP_DIV,
    TD_TRACEQL_OP_MOD,
    TD_TRACEQL_OP_POW,
    /* logic (n-ary: a && b && c is one node) */
    TD_TRACEQL_OP_AND,
    TD_TRACEQL_OP_OR,
    /* unary */
    TD_TRACEQL_OP_NOT,
    TD_TRACEQL_OP_NEG,
    TD_TRACEQL_OP_EXISTS,     /* x != nil */
    TD_TRACEQL_OP_NOT_EXISTS, /* x = nil */
} td_traceql_op;

typedef enum td_traceql_expr_kind {
    TD_TRACEQL_E_LITERAL,
    TD_TRACEQL_E_ATTR,
    TD_TRACEQL_E_UNARY,  /* op NOT, NEG, EXISTS, NOT_EXISTS; operand in lhs */
    TD_TRACEQL_E_BINARY, /* comparison or arithmetic: lhs op rhs */
    TD_TRACEQL_E_LOGIC,  /* AND / OR over args[0..nargs) */
} td_traceql_expr_kind;

/* A field expression (inside `{ }`, by(), avg() ...). */
typedef struct td_traceql_expr td_traceql_expr;
struct td_traceql_expr {
    td_traceql_expr_kind kind;
    td_traceql_op op;
    size_t offset;        /* byte offset in the query where it starts */
    td_traceql_value lit; /* LITERAL (strings point into the arena) */
    td_traceql_attr attr; /* ATTR */
    td_traceql_expr *lhs, *rhs;
    td_traceql_expr **args; /* LOGIC */
    size_t nargs;
    int regex;       /* RE/NRE: index into td_traceql_query.regexes; else -1 */
    unsigned height; /* height of this subtree (1 for a leaf) */
};

typedef enum td_traceql_ssop {
    TD_TRACEQL_SS_AND = 0, /* {A} && {B} */
    TD_TRACEQL_SS_OR,      /* {A} || {B} */
    TD_TRACEQL_SS_CHILD,   /* >   spans of B whose parent is in A */
    TD_TRACEQL_SS_PARENT,  /* <   spans of B that are the parent of a span in A */
    TD_TRACEQL_SS_DESC,    /* >>  spans of B with an ancestor in A */
    TD_TRACEQL_SS_ANCE,    /* <<  spans of B that are an ancestor of a span in A */
    TD_TRACEQL_SS_SIBL,    /* ~   spans of B sharing a parent with another span in A */
    TD_TRACEQL_SS_NOT_CHILD,
    TD_TRACEQL_SS_NOT_PARENT,
    TD_TRACEQL_SS_NOT_DESC,
    TD_TRACEQL_SS_NOT_ANCE,
    TD_TRACEQL_SS_NOT_SIBL, /* !~ between spansets */
    TD_TRACEQL_SS_UNION_CHILD,
    TD_TRACEQL_SS_UNION_PARENT,
    TD_TRACEQL_SS_UNION_DESC,
    TD_TRACEQL_SS_UNION_ANCE,
    TD_TRACEQL_SS_UNION_SIBL,
} td_traceql_ssop;

typedef enum td_traceql_ss_kind {
    TD_TRACEQL_SSE_FILTER,   /* { filter } (filter NULL: `{}`, every span) */
    TD_TRACEQL_SSE_OP,       /* lhs ssop rhs */
    TD_TRACEQL_SSE_PIPELINE, /* ( pipeline ) */
} td_traceql_ss_kind;

typedef struct td_traceql_pipeline td_traceql_pipeline;
typedef struct td_traceql_ssexpr td_traceql_ssexpr;
struct td_traceql_ssexpr {
    td_traceql_ss_kind kind;
    size_t offset;
    td_traceql_expr *filter;       /* FILTER */
    td_traceql_ssop op;            /* OP */
    td_traceql_ssexpr *lhs, *rhs;  /* OP */
    td_traceql_pipeline *pipeline; /* PIPELINE */
    unsigned height;
};

typedef enum td_traceql_agg {
    TD_TRACEQL_AGG_COUNT = 0,
    TD_TRACEQL_AGG_AVG,
    TD_TRACEQL_AGG_MIN,
    TD_TRACEQL_AGG_MAX,
    TD_TRACEQL_AGG_SUM,
} td_traceql_agg;

typedef enum td_traceql_stage_kind {
    TD_TRACEQL_STAGE_SPANSET,  /* a spanset expression applied to each spanset */
    TD_TRACEQL_STAGE_SCALAR,   /* agg(arg) cmp value: drops spansets failing it */
    TD_TRACEQL_STAGE_BY,       /* by(field, ...) */
    TD_TRACEQL_STAGE_SELECT,   /* select(attr, ...) */
    TD_TRACEQL_STAGE_COALESCE, /* coalesce() */
} td_traceql_stage_kind;

typedef struct td_traceql_stage {
    td_traceql_stage_kind kind;
    size_t offset;
    td_traceql_ssexpr *ss; /* SPANSET */
    /* SCALAR: `agg(agg_arg) cmp value`; `value cmp agg()` is stored flipped */
    td_traceql_agg agg;
    td_traceql_expr *agg_arg; /* NULL for count() */
    td_traceql_op cmp;        /* EQ NEQ LT LTE GT GTE */
    td_traceql_value value;   /* INT, FLOAT or DURATION */
    const char *key;          /* "count()", "avg(duration)": the spanset attribute key */
    /* BY: fields[i] with keys[i] = "by(<field>)"; SELECT: fields are E_ATTR */
    td_traceql_expr **fields;
    const char **keys;
    size_t nfields;
} td_traceql_stage;

struct td_traceql_pipeline {
    td_traceql_stage *stages;
    size_t nstages;
};

typedef enum td_traceql_metrics_fn {
    TD_TRACEQL_M_RATE = 0,
    TD_TRACEQL_M_COUNT_OVER_TIME,
    TD_TRACEQL_M_MIN_OVER_TIME,
    TD_TRACEQL_M_MAX_OVER_TIME,
    TD_TRACEQL_M_AVG_OVER_TIME,
    TD_TRACEQL_M_SUM_OVER_TIME,
    TD_TRACEQL_M_QUANTILE_OVER_TIME,
    TD_TRACEQL_M_HISTOGRAM_OVER_TIME,
} td_traceql_metrics_fn;

/* `<pipeline> | fn(attr, q...) by(a, b)`: parsed here, evaluated by the metrics module. */
typedef struct td_traceql_metrics {
    td_traceql_metrics_fn fn;
    size_t offset;
    bool has_attr; /* *_over_time(attr) */
    td_traceql_attr attr;
    double *quantiles; /* quantile_over_time: 1 or more, as written */
    size_t nquantiles;
    td_traceql_attr *by;
    size_t nby;
} td_traceql_metrics;

/* `with(name = value, ...)` query hints: parsed and kept, never change results here. */
typedef struct td_traceql_option {
    const char *name;
    td_traceql_value value;
} td_traceql_option;

typedef struct td_traceql_query {
    const char *text; /* arena copy of the query (NUL-terminated) */
    size_t text_len;
    td_traceql_pipeline pipeline; /* what td_traceql_eval_trace evaluates */
    td_traceql_metrics *metrics;  /* NULL unless a metrics query: /api/search must reject those */
    td_traceql_option *options;
    size_t noptions;
    /*
     * Attributes the query references (conditions and select() fields),
     * de-duplicated, excluding name, duration, traceDuration, rootName,
     * rootServiceName and IDs (API-CONTRACT §3.5). td_traceql_span_attrs
     * resolves them for one span.
     */
    td_traceql_attr *refs;
    size_t nrefs;
    /* RE2 patterns as written, and their POSIX ERE translations (anchored). */
    const char **regex_src;
    const char **regexes;
    size_t nregexes;
    bool needs_tree; /* structural operators or span:childCount: the evaluator builds the tree */
} td_traceql_query;

/*
 * Parse q[0..len) (need not be NUL-terminated) into *out; everything is
 * allocated from arena a. Performs Tempo's static checks (operand types,
 * regexes, `intrinsic = nil`, ...) and folds constant sub-expressions
 * (`-5s`, `1 = 1`). Errors: TD_INVALID as described at the top, TD_NOMEM.
 */
td_status td_traceql_parse(const char *q, size_t len, td_arena *a, td_traceql_query **out,
                           td_err *err);

/*
 * Parse a tag name as Tempo's tag endpoints do: the text of `{<s>}` must be a
 * bare attribute or intrinsic ("resource.service.name", ".foo", "name",
 * "span:status"). Positions in errors refer to the wrapped text, as Tempo's.
 * *out's name lives in arena a.
 */
td_status td_traceql_parse_attr(const char *s, size_t len, td_arena *a, td_traceql_attr *out,
                                td_err *err);

/*
 * Append the canonical text of the query to out: operands of non-trivial
 * sub-expressions in parentheses, strings double-quoted with Go escapes,
 * durations in Go's time.Duration format, pipeline stages joined by " | ".
 * Parsing the canonical text yields the same canonical text (its extra
 * parentheses may exceed TD_TRACEQL_MAX_NESTING for queries near the limit).
 *   `{ resource.service.name = "frontend" && name = "GET /cart" }`
 *      -> `{ (resource.service.name = "frontend") && (name = "GET /cart") }`
 */
void td_traceql_format(const td_traceql_query *q, td_buf *out);
void td_traceql_format_expr(const td_traceql_expr *e, td_buf *out);
void td_traceql_format_attr(const td_traceql_attr *a, td_buf *out);

/* Go's time.Duration.String(): "1.5s", "25ms", "1h0m0s", "0s". Returns the length. */
size_t td_traceql_format_duration(int64_t ns, char buf[40]);

/* ------------------------------------------------------------------------ */
/* evaluation                                                               */
/* ------------------------------------------------------------------------ */

/* One span of the trace being evaluated: borrowed views into decoded OTLP data. */
typedef struct td_traceql_span {
    const td_otlp_span *span;         /* never NULL */
    const td_otlp_resource *resource; /* may be NULL */
    const td_otlp_scope *scope;       /* may be NULL */
    int32_t parent;                   /* index of the parent span in the array, or -1 */
} td_traceql_span;

/* One trace: its spans plus the trace-level intrinsics. */
typedef struct td_traceql_trace {
    const td_traceql_span *spans;
    size_t nspans;
    const char *root_name;    /* NULL: no root span seen (comparisons are false) */
    const char *root_service; /* NULL: unknown */
    uint64_t duration_ns;     /* max(end) - min(start) */
    const uint8_t *trace_id;  /* may be NULL */
    size_t trace_id_len;
} td_traceql_trace;

/*
 * Fill t for spans[0..n): sets every spans[i].parent from parent_span_id /
 * span_id (a parent that is missing, itself, or an empty ID gives -1; with
 * duplicate span IDs the first wins), picks the root (a span without
 * parent_span_id, the earliest-starting one if several; else none) for
 * root_name and root_service (its resource's service.name), and computes the
 * duration and trace ID. Scratch memory comes from arena a. t keeps pointing at
 * spans. Errors: TD_NOMEM, TD_TOO_LARGE (more than 2^31 spans).
 */
td_status td_traceql_trace_init(td_traceql_trace *t, td_traceql_span *spans, size_t n, td_arena *a,
                                td_err *err);

/* A spanset of a matching trace. */
typedef struct td_traceql_spanset {
    uint32_t *spans;      /* indices into the trace's spans, by start time then index */
    size_t matched;       /* number of indices (before any spss truncation by the caller) */
    td_traceql_kv *attrs; /* aggregate and by() values in pipeline order, keys like
                             "count()", "by(resource.service.name)"; values may be NIL */
    size_t nattrs;
} td_traceql_spanset;

typedef struct td_traceql_result {
    td_traceql_spanset *sets; /* the trace matches iff nsets > 0 */
    size_t nsets;
} td_traceql_result;

typedef struct td_traceql_eval td_traceql_eval;

/*
 * Prepare q for evaluation: compiles its regexes. q (and its arena) must
 * outlive *out. Free with td_traceql_eval_free. Errors: TD_INVALID if a regex
 * does not compile, TD_NOMEM.
 */
td_status td_traceql_eval_new(const td_traceql_query *q, td_traceql_eval **out, td_err *err);
void td_traceql_eval_free(td_traceql_eval *ev);

/*
 * Evaluate the query's spanset pipeline (not its metrics stage) over trace t;
 * *out (arrays in arena a) lists the resulting non-empty spansets. Scratch
 * memory is kept in ev and reused: no allocation per span. Errors: TD_INVALID
 * (structural operator over several spansets), TD_NOMEM, TD_TOO_LARGE (trace
 * of more than 2^31 spans).
 */
td_status td_traceql_eval_trace(td_traceql_eval *ev, const td_traceql_trace *t, td_arena *a,
                                td_traceql_result *out, td_err *err);

/*
 * The value of attribute or intrinsic a for span `span` of the trace last given
 * to td_traceql_eval_trace(ev, ...) (the metrics stage reads by() fields and
 * *_over_time() arguments with it). Valid until the next td_traceql_eval_trace;
 * strings point into the span data or arena ar. Event and link fields give the
 * first event's/link's value; a missing value is TD_TRACEQL_NIL.
 */
td_traceql_value td_traceql_eval_attr(const td_traceql_eval *ev, size_t span,
                                      const td_traceql_attr *a, td_arena *ar);

/*
 * The attributes a search response shows for span `span` (API-CONTRACT §3.5):
 * for each of q->refs present on the span, key = unscoped name ("service.name",
 * "http.url"), value as stored (arrays as TD_TRACEQL_OTLP); status and kind as
 * strings ("error", "server") under "status"/"kind", statusMessage when
 * non-empty, "childCount" as an int, other intrinsics under their canonical
 * spelling ("event:name", "instrumentation:name"); event/link attributes from
 * the first event/link carrying them. name, durations, rootName,
 * rootServiceName and IDs are never included (they are span/trace fields).
 * First occurrence of a key wins. Arrays in arena a; values may point into
 * the span data.
 */
td_status td_traceql_span_attrs(const td_traceql_query *q, const td_traceql_trace *t, size_t span,
                                td_arena *a, td_traceql_kv **out, size_t *n, td_err *err);

/* ------------------------------------------------------------------------ */
/* index planner hook                                                       */
/* ------------------------------------------------------------------------ */

typedef enum td_traceql_hint_field {
    TD_TRACEQL_HINT_SERVICE = 0,    /* resource.service.name = STRING */
    TD_TRACEQL_HINT_SPAN_NAME,      /* name = STRING */
    TD_TRACEQL_HINT_STATUS,         /* status = STATUS */
    TD_TRACEQL_HINT_KIND,           /* kind = KIND */
    TD_TRACEQL_HINT_DURATION,       /* span duration op DURATION (EQ, LT, LTE, GT, GTE) */
    TD_TRACEQL_HINT_TRACE_DURATION, /* trace duration op DURATION */
    TD_TRACEQL_HINT_ROOT_NAME,      /* rootName = STRING */
    TD_TRACEQL_HINT_ROOT_SERVICE,   /* rootServiceName = STRING */
    TD_TRACEQL_HINT_ATTR,           /* scope.attr op value */
} td_traceql_hint_field;

/*
 * A condition that every matching trace satisfies: some span of the trace (for
 * trace-level fields: the trace itself) has `field op value`.
 *   ATTR: scope is SPAN, RESOURCE or NONE (span or resource attribute); op EQ with
 *   a STRING, INT, FLOAT or BOOL value, or LT/LTE/GT/GTE with INT or FLOAT. An
 *   INT or FLOAT value also matches a stored int or double numerically; a STRING
 *   matches only strings; an array attribute matches if any element does.
 */
typedef struct td_traceql_hint {
    td_traceql_hint_field field;
    td_traceql_scope scope; /* ATTR only */
    const char *attr;       /* ATTR only: the key */
    td_traceql_op op;
    td_traceql_value value;
} td_traceql_hint;

/*
 * Conditions an index can use to narrow the candidate traces. Only conditions
 * that must hold for every match are returned: the top-level AND-ed
 * comparisons of spanset filters that the result depends on (both sides of
 * `&&` and of structural operators, the right side of negated structural
 * operators, later `| { }` stages; nothing under `||`, `!` or negations).
 * An empty list means "scan everything in the time range". Arrays in arena a.
 */
td_status td_traceql_hints(const td_traceql_query *q, td_arena *a, td_traceql_hint **out, size_t *n,
                           td_err *err);

#endif
