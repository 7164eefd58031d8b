/*
 * tempo.h - internals of the api module shared by server.c, tempo_trace.c and
 * tests/unit/test_api.c (td__ prefix: not a public interface).
 *
 * Request parsing helpers (trace ID, start/end, tenants, Accept) are pure
 * functions of their inputs. Trace assembly collects the stored fragments of one
 * trace into a per-request arena, merges and de-duplicates them, and encodes the
 * result as Tempo protobuf or Tempo JSON (API-CONTRACT §3.0, §3.3, §3.4).
 *
 * Thread-safety: everything is reentrant; a td__trace belongs to one thread.
 */
#ifndef TD_API_TEMPO_H
#define TD_API_TEMPO_H

#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"
#include "proto/proto.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- request parsing ---- */

/*
 * Tempo's trace-ID rules: 1-32 hex digits, any case; odd length gets a leading 0;
 * shorter IDs are left-padded with zero bytes to 16. Errors (TD_INVALID, message
 * exactly as Tempo's): "trace IDs can only contain hex characters: invalid
 * character 'x' at position N" (N counts characters from 1) and "trace IDs can't
 * be larger than 128 bits". s need not be NUL-terminated.
 */
td_status td__tempo_parse_trace_id(const char *s, size_t n, uint8_t out[16], td_err *err);

/*
 * Trace-by-ID `start`/`end` query parameters (unix seconds, int64; NULL or "" =
 * absent). On success (start_ns, end_ns) is the window for td_store_trace_get:
 * both 0 when no bound applies. Errors (TD_INVALID): "invalid start: ...",
 * "invalid end: ..." (Go strconv wording), and, when both are non-zero,
 * "http parameter start must be before end. received start=S end=E".
 */
td_status td__tempo_parse_range(const char *start, const char *end, uint64_t *start_ns,
                                uint64_t *end_ns, td_err *err);

/*
 * Go's time.ParseDuration: an optional sign, then one or more decimal numbers
 * (fractions allowed) each with a unit ns us µs ms s m h ("1h30m", "1.5s"),
 * or "0". Sets *out (nanoseconds) and returns true; false when s is malformed
 * or its magnitude is above ~9.2e18 ns. Pure; thread-safe.
 */
bool td__tempo_parse_go_duration(const char *s, int64_t *out);

typedef enum { TD_TEMPO_JSON, TD_TEMPO_PROTOBUF } td__tempo_format;

/*
 * Tempo's Accept negotiation: empty/NULL -> JSON; otherwise the first of
 * "application/protobuf", "application/json", "application/vnd.grafana.llm"
 * that occurs as a substring wins (llm is answered as JSON); none -> JSON.
 */
td__tempo_format td__tempo_negotiate(const char *accept);

/* The tenants a read request covers, sorted and de-duplicated. */
typedef struct td__tenants {
    size_t n;
    const char **names; /* arena strings */
} td__tenants;

/*
 * Tenants from an X-Scope-OrgID value (NULL = header absent). Multitenancy off:
 * always the single TD_DEFAULT_TENANT. On: missing/empty -> TD_UNAUTHENTICATED
 * "no org id"; `a|b` lists several (sorted, de-duplicated); an invalid ID ->
 * TD_INVALID with dskit's wording. Strings live in arena a.
 */
td_status td__tempo_tenants(const char *header, bool multitenancy, td_arena *a, td__tenants *out,
                            td_err *err);

/* ---- trace assembly ---- */

typedef struct td__rs_group td__rs_group;
typedef struct td__span_slot td__span_slot;

/*
 * One trace being assembled. Everything it points to lives in the arena given
 * to td__trace_init, which must outlive it; there is nothing else to free.
 */
typedef struct td__trace {
    td_arena *a;
    ProtobufCAllocator pa;    /* protobuf-c on top of inner, noting failures */
    ProtobufCAllocator inner; /* td_proto_allocator_init on a */
    bool oom;                 /* an allocation failed during the last unpack */
    uint64_t max_bytes;       /* 0 = unlimited */
    uint64_t inspected_bytes; /* fragment bytes read */
    uint64_t nfrags;          /* fragments merged */
    uint64_t nspans;          /* spans kept after de-duplication */
    bool partial;             /* stopped early at max_bytes */
    const char *tenant_attr;  /* when set, add resource attribute tenant=<this> */
    td__rs_group *groups;     /* distinct (resource, schema_url) */
    size_t ngroups, capgroups;
    td__span_slot *slots; /* open-addressing set of (span_id, kind) */
    size_t nslots, capslots;
    Tempopb__Trace out; /* filled by td__trace_finish */
} td__trace;

/* Set up t (which must not move afterwards: pa points at it). */
void td__trace_init(td__trace *t, td_arena *a, uint64_t max_bytes);

/*
 * Merge one stored fragment (a serialized ResourceSpans). When max_bytes would be
 * exceeded the fragment is not merged, t->partial is set and TD_TOO_LARGE is
 * returned (so it can end a store scan). Errors: TD_CORRUPT when the bytes do not
 * decode, TD_NOMEM when the arena is exhausted.
 */
td_status td__trace_add(td__trace *t, const uint8_t *data, size_t len, td_err *err);

/*
 * Read trace_id for every tenant in ts from the store and merge the fragments
 * (for several tenants each resource gets a `tenant` attribute, as Tempo's
 * cross-tenant queries do). Returns TD_OK (t->partial says whether the size limit
 * cut it short), TD_NOT_FOUND when no tenant has a fragment, or the store's error.
 */
td_status td__trace_fetch(td__trace *t, td_store *s, const td__tenants *ts,
                          const uint8_t trace_id[16], uint64_t start_ns, uint64_t end_ns,
                          td_err *err);

/* Drop empty groups, sort spans by start time, build t->out. Errors: TD_NOMEM. */
td_status td__trace_finish(td__trace *t, td_err *err);

/*
 * Encoders (after td__trace_finish). They append to out. v1 = tempopb.Trace
 * (protobuf) or {"batches":[...]} (JSON); v2 = tempopb.TraceByIDResponse, whose
 * field 1 is always present (`0a 00` for an empty trace), with metrics
 * inspectedBytes and, when t->partial, status PARTIAL and the Tempo message for
 * max_bytes. Errors: TD_NOMEM when the output cannot be allocated.
 */
td_status td__trace_pb_v1(const td__trace *t, td_buf *out, td_err *err);
td_status td__trace_pb_v2(const td__trace *t, td_buf *out, td_err *err);
void td__trace_json_v1(const td__trace *t, td_buf *out);
void td__trace_json_v2(const td__trace *t, td_buf *out);

/* AnyValue as OTLP JSON ({"stringValue":..} etc.), as in trace JSON. */
struct td_json;
void td__json_any(struct td_json *j, const td_otlp_any *v);

/* ---- search (tempo_search.c) ---- */

/* Raw /api/search query parameters; NULL or "" = absent. */
typedef struct td__search_args {
    const char *q, *tags, *limit, *spss, *start, *end, *min_duration, *max_duration;
} td__search_args;

#define TD__SEARCH_TAGS_Q_MAX 16384

typedef struct td__search_params {
    const char *q;             /* TraceQL; "{}" by default; may point at tags_q */
    uint64_t limit, spss;      /* defaults 20 and 3 */
    uint64_t start_ns, end_ns; /* inclusive window */
    uint64_t min_duration_ns;  /* 0 = none */
    uint64_t max_duration_ns;  /* 0 = none */
    uint64_t max_traces;       /* candidate traces inspected at most (0 = 20000) */
    uint64_t max_trace_bytes;  /* per trace loaded (0 = unlimited) */
    uint64_t max_bytes;        /* stored bytes read per search (0 = unlimited) */
    int64_t timeout_ms;        /* wall time per search (0 = unlimited) */
    bool pb;                   /* td__search writes protobuf instead of JSON (set by the caller) */
    char tags_q[TD__SEARCH_TAGS_Q_MAX]; /* legacy `tags` translated to TraceQL */
} td__search_params;

/*
 * Validate the parameters (TD_INVALID with Tempo-style messages → 400). Both
 * start and end absent = the last 24 hours before now_s; end absent = now_s;
 * start absent = end - 24 h. limit 0 or > 262144, spss > 100 → TD_INVALID.
 * Legacy `tags` (logfmt) is translated into TraceQL held in p->tags_q (so p must
 * outlive the search); tags together with q → TD_INVALID. max_traces and
 * max_trace_bytes are left 0 for the caller.
 */
td_status td__search_parse(const td__search_args *in, int64_t now_s, td__search_params *p,
                           td_err *err);

/*
 * Run the search and append the SearchResponse JSON to out, or with p->pb the
 * tempopb.SearchResponse protobuf: one field-1 entry per trace, in order, then
 * the field-2 metrics entry last (so a caller can split it). Errors: TD_INVALID
 * ("invalid TraceQL query: ..."), TD_IO / TD_CORRUPT from the store, TD_NOMEM.
 */
td_status td__search(td_store *s, const td__tenants *ts, const td__search_params *p, td_buf *out,
                     td_err *err);

/*
 * Candidates and trace loading, shared by search, tag values and metrics.
 *
 * A candidate is a trace ID that may match, with what the store's summaries
 * (or index) told about it. summarized: start_ns/end_ns/nerrors/root_* come
 * from the trace's summary records in the window; when false only id and
 * bucket are known and td__cand_skip never skips it.
 */
typedef struct td__cand {
    uint8_t id[16];
    uint64_t start_ns, end_ns;
    uint64_t bucket; /* minute of the first (newest) record seen */
    uint32_t nerrors;
    bool has_root;
    bool summarized;
    char *root_service, *root_name; /* arena, NUL-terminated (when has_root) */
} td__cand;

typedef struct td__cands {
    td__cand *c; /* newest bucket first; heap (td__cands_release) */
    size_t n;
    bool truncated;   /* stopped at max_traces or at the scan bound */
    uint64_t scanned; /* store records read */
} td__cands;

struct td_traceql_hint;
struct td_traceql_trace;

/*
 * Collect at most max_traces (0 = 20000) distinct candidate traces of every
 * tenant in ts whose data lies in [start_ns, end_ns], newest minute first.
 * hints (td_traceql_hints) may narrow them (through the index when it can
 * answer exactly); candidates are a superset of the matching traces in the
 * window. Small strings live in arena a. Errors: the store's, TD_NOMEM.
 */
td_status td__search_candidates(td_store *s, const td__tenants *ts,
                                const struct td_traceql_hint *hints, size_t nhints,
                                uint64_t start_ns, uint64_t end_ns, uint64_t max_traces,
                                td_arena *a, td__cands *out, td_err *err);
void td__cands_release(td__cands *cs);

/* Whether a summarized candidate provably cannot satisfy the hints. */
bool td__cand_skip(const td__cand *c, const struct td_traceql_hint *h, size_t nh);

/*
 * Load trace id (all tenants of ts) into arena a and prepare *tr for TraceQL
 * evaluation. *found false (TD_OK) when it has no spans. inspected_bytes grows
 * by the fragment bytes read. Errors: the store's, TD_NOMEM.
 */
td_status td__search_load(td_store *s, const td__tenants *ts, const uint8_t id[16],
                          uint64_t max_trace_bytes, td_arena *a, struct td_traceql_trace *tr,
                          bool *found, uint64_t *inspected_bytes, td_err *err);

/* Earliest span start of a loaded trace (0 without spans). */
uint64_t td__trace_start_ns(const struct td_traceql_trace *tr);

/* ---- gRPC Search (grpc_search.c) ---- */

/* What the Search handler needs from the api (must outlive the gRPC server). */
typedef struct td__grpc_search_ctx {
    td_store *store;          /* NULL: calls fail UNAVAILABLE */
    uint64_t max_traces;      /* as td__search_params */
    uint64_t max_trace_bytes; /* as td__search_params */
    uint64_t max_bytes;       /* as td__search_params */
    int64_t timeout_ms;       /* as td__search_params */
} td__grpc_search_ctx;

/* Register /tempopb.StreamingQuerier/Search on g (see td__query_grpc_register). */
struct td__query_grpc;
td_status td__grpc_search_register(struct td__query_grpc *g, const td__grpc_search_ctx *ctx,
                                   td_err *err);

#endif
