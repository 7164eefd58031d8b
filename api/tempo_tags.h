/*
 * tempo_tags.h - tag names and tag values (API-CONTRACT §3.6, §3.7, §3.9 and the
 * corrections at its top): internals of the api module shared by server.c,
 * grpc_tags.c and tests/unit/test_tags.c (td__ prefix: not a public interface).
 *
 * One request shape serves the four HTTP routes and the four StreamingQuerier
 * methods:
 *
 *   td__tags_req r;
 *   td__tags_http_args(kind, scope, tag, q, start, end, limit, &r, &err);  -- HTTP only
 *   td__tags_result res;
 *   td__tags_run(store, &tenants, &r, &limits, &arena, &res, &err);
 *   td__tags_json(&res, &out) or td__tags_pb(&res, &out, &err);
 *
 * Without a (non-trivial, valid) TraceQL filter q the answers come from the
 * store's secondary index (td_store_tag_names / td_store_tag_values); with one,
 * from the spans that match q in at most max_traces candidate traces.
 *
 * Memory: everything a result points to lives in the arena given to
 * td__tags_run. Thread-safety: reentrant.
 */
#ifndef TD_API_TEMPO_TAGS_H
#define TD_API_TEMPO_TAGS_H

#include "api/tempo.h"
#include "api/traceql/traceql.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum td__tags_kind {
    TD__TAGS_V1,       /* GET /api/search/tags, SearchTags */
    TD__TAGS_V2,       /* GET /api/v2/search/tags, SearchTagsV2 */
    TD__TAG_VALUES_V1, /* GET /api/search/tag/{tag}/values, SearchTagValues */
    TD__TAG_VALUES_V2, /* GET /api/v2/search/tag/{tag}/values, SearchTagValuesV2 */
} td__tags_kind;

/* Values per scope (or per answer) when the request gives no limit, and the most it may ask. */
#define TD__TAGS_DEFAULT_LIMIT 100000u

/* A request after its numbers are parsed; strings are borrowed. */
typedef struct td__tags_req {
    td__tags_kind kind;
    const char *scope; /* tag names: scope parameter; NULL/"" = all */
    const char *tag;   /* tag values: the tag, percent-decoded once (NULL = missing) */
    const char *q;     /* optional TraceQL filter; NULL/"" = none */
    uint32_t start;    /* unix seconds, 0 = absent */
    uint32_t end;      /* unix seconds, 0 = absent */
    uint32_t limit;    /* per scope (names) or in all (values); 0 = default */
} td__tags_req;

/*
 * Parse the HTTP query parameters (NULL = absent) into r, Tempo-style:
 * start/end are signed 32-bit integers (Go strconv.ParseInt(s, 10, 32); the
 * value is then used as uint32, end is not checked against start); limit is
 * 0..4294967295. Errors (TD_INVALID): "invalid start: strconv.ParseInt:
 * parsing \"x\": invalid syntax" (or "value out of range"), the same for end,
 * "invalid limit: ...". Scope and tag are checked by td__tags_run.
 */
td_status td__tags_http_args(td__tags_kind kind, const char *scope, const char *tag, const char *q,
                             const char *start, const char *end, const char *limit, td__tags_req *r,
                             td_err *err);

/*
 * The tag of a tag-values path: the text after "/tag/" up to the LAST "/values",
 * which must end the path. rest is the path after the route's ".../tag/" prefix.
 * Returns false when rest does not end in "/values" (the route does not match).
 */
bool td__tags_path_tag(const char *rest, const char **tag, size_t *len);

/* Bounds of a q-filtered answer (search-max-traces, -max-bytes, -timeout); it stops early. */
typedef struct td__tags_limits {
    uint64_t max_traces;      /* candidate traces a q filter inspects at most (0 = 20000) */
    uint64_t max_trace_bytes; /* per trace loaded (0 = unlimited) */
    uint64_t max_bytes;       /* stored bytes read in all (0 = unlimited) */
    int64_t timeout_ms;       /* wall time (0 = unlimited) */
} td__tags_limits;

typedef struct td__tags_scope_out {
    const char *name; /* "resource", "span", "intrinsic", ... */
    const char **tags;
    size_t n;
} td__tags_scope_out;

typedef struct td__tags_value_out {
    const char *type; /* "string", "int", "float", "bool", "duration", "keyword" */
    const char *value;
} td__tags_value_out;

#define TD__TAGS_MAX_SCOPES 7

typedef struct td__tags_result {
    td__tags_kind kind;
    td__tags_scope_out scopes[TD__TAGS_MAX_SCOPES]; /* V2 names, in response order */
    size_t nscopes;
    const char **strings; /* V1 names, V1 values */
    size_t nstrings;
    td__tags_value_out *values; /* V2 values */
    size_t nvalues;
    uint64_t inspected_bytes;
} td__tags_result;

/*
 * Answer r for the tenants ts. Errors: TD_INVALID "invalid scope: x" (tag
 * names), "please provide a non-empty tagName", "please provide a valid
 * tagName: failed to parse identifier <tag>: parse error at line 1, col N:
 * ..." (v2 tag values); an invalid or incomplete q is ignored, never an error.
 * The store's errors, TD_NOMEM. Everything in *out lives in arena a.
 */
td_status td__tags_run(td_store *s, const td__tenants *ts, const td__tags_req *r,
                       const td__tags_limits *lim, td_arena *a, td__tags_result *out, td_err *err);

/* Tempo JSON of the result (SearchTags[V2]Response, SearchTagValues[V2]Response). */
void td__tags_json(const td__tags_result *res, td_buf *out);

/* The same as tempopb protobuf (tempo_tags.proto). Errors: TD_NOMEM. */
td_status td__tags_pb(const td__tags_result *res, td_buf *out, td_err *err);

/*
 * Text of an index value (td_idx_type t, raw bytes) as a TagValue: *type gets
 * "string", "int", "float", "bool" or "keyword"; out gets the value (ints in
 * decimal, floats like Go's strconv.FormatFloat(f, 'g', -1, 64), bools
 * true/false). Returns false for a type without a text form (duration classes)
 * or a malformed value.
 */
bool td__tags_value_text(uint8_t t, const uint8_t *raw, size_t len, const char **type, td_buf *out);

/* Go's strconv.FormatFloat(v, 'g', -1, 64) ("1e+06", "0.25", "1.5e-07", "+Inf", "NaN"). */
void td__tags_format_float(double v, td_buf *out);

/* Register SearchTags, SearchTagsV2, SearchTagValues and SearchTagValuesV2 (grpc_tags.c). */
typedef struct td__grpc_tags_ctx {
    td_store *store; /* NULL: calls fail UNAVAILABLE */
    td__tags_limits limits;
} td__grpc_tags_ctx;

struct td__query_grpc;
td_status td__grpc_tags_register(struct td__query_grpc *g, const td__grpc_tags_ctx *ctx,
                                 td_err *err);

#endif
