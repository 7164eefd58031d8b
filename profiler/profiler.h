/*
 * profiler.h - td_profiler, the server side of profile ingest (API-CONTRACT §5, §7):
 * the pprof decoder, profile-type derivation, the legacy /ingest formats (folded
 * text, multipart), push.v1 series, and their normalisation into a td_pwrite for
 * the profile store (store/pstore.h).
 *
 * Everything here is a pure function of (bytes, options, arena) -> (result,
 * status): no I/O, no globals (STYLE rule 12). Strings and arrays returned live in
 * the caller's arena and are valid until it is released; nothing needs freeing
 * one by one. Writes go through a caller-supplied callback, so the module needs
 * only the store's types, not an open store.
 *
 * Thread-safety: reentrant; the option struct is read-only after start.
 */
#ifndef TD_PROFILER_H
#define TD_PROFILER_H

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/status.h"
#include "proto/proto.h"
#include "store/pstore.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- options (one table, STYLE rule 11) ---- */

typedef struct td_profiler_opts {
    uint64_t max_size;       /* profile-max-size: a pprof after decompression, bytes */
    int64_t max_samples;     /* profile-max-samples */
    int64_t max_locations;   /* profile-max-locations */
    int64_t max_functions;   /* profile-max-functions */
    int64_t max_strings;     /* profile-max-strings */
    int64_t reject_older_ms; /* profile-reject-older-than (push.v1; 0 = off) */
    int64_t reject_newer_ms; /* profile-reject-newer-than (push.v1; 0 = off) */
} td_profiler_opts;

extern const td_opt td_profiler_opt_rows[];
extern const size_t td_profiler_nopt_rows;

/* ---- the pprof decoder ---- */

/*
 * Decode one pprof (gzip detected by the magic 1f 8b, else raw protobuf) into
 * arena a and check it against o's limits: decompressed size, and the number of
 * samples, locations, functions and strings. It also checks every string index
 * (sample types, period type, functions, mappings, labels, comments...) and
 * every location and function ID a sample or line refers to, so that the result
 * can be walked without further checks. Duplicate location/function IDs and
 * ID 0 are rejected; a sample whose value count differs from the sample types
 * is rejected. A profile with no sample types is returned as is (the caller
 * answers 400), as is one with no samples.
 * Errors: TD_TOO_LARGE (a limit), TD_INVALID (corrupt, truncated, bad index),
 * TD_NOMEM. The message names the problem ("location 3 refers to unknown
 * function 7").
 */
td_status td_profiler_pprof_decode(const void *data, size_t len, const td_profiler_opts *o,
                                   td_arena *a, td_pprof_profile **out, td_err *err);

/* ---- sample_type_config (multipart part, §5.1) ---- */

typedef struct td_pstc {
    const char *type;         /* the pprof sample type it applies to */
    const char *display_name; /* "display-name", "" when absent */
    const char *units;
    const char *aggregation;
    bool cumulative, sampled;
} td_pstc;

typedef struct td_pstc_set {
    bool present; /* sent at all: then it replaces the default mapping entirely (§5.0) */
    const td_pstc *v;
    size_t n;
} td_pstc_set;

/* Parse the JSON object. Errors: TD_INVALID (not an object of objects), TD_NOMEM. */
td_status td_profiler_parse_stc(const char *json, size_t len, td_arena *a, td_pstc_set *out,
                                td_err *err);

/*
 * The profile name (__name__) of an /ingest pprof (§5.3 step 2): "wall" if any
 * type is wall, else the first rule matching a type's display name (stc when
 * present, else the defaults samples->cpu, goroutine->goroutines,
 * contentions->mutex_count, delay->mutex_duration), else the last type's
 * display name. p must come from td_profiler_pprof_decode. Never NULL.
 */
const char *td_profiler_metric_name(const td_pprof_profile *p, const td_pstc_set *stc);

/* ---- /ingest parameters ---- */

/*
 * Parse `name`: `app{k=v,k2=v2}` -> app (trimmed) and labels (trimmed, in order
 * of appearance; a later duplicate wins). Label names may contain letters,
 * digits, '_' and '.', the app name anything but braces, '=' and ',' and control
 * characters. Errors: TD_INVALID "name: ..." (empty app name, bad label name,
 * unterminated braces), TD_NOMEM.
 */
td_status td_profiler_parse_name(const char *s, td_arena *a, char **app, td_plabel **labels,
                                 size_t *nlabels, td_err *err);

/*
 * from/until (§5.0/§5.1, Pyroscope's attime): spaces, '_' and ',' removed; all
 * digits: 8 = YYYYMMDD (UTC), 13 ms, 16 µs, 19 ns, any other count seconds;
 * otherwise `now` with an optional offset like `-1h`, `+30m`, `-1h30m` (units s,
 * min/m, h, d, w, mon/M, y). NULL or anything unparseable -> now_ns. Returns ns.
 */
int64_t td_profiler_parse_time(const char *s, int64_t now_ns);

/* A legacy (non-pprof) profile type from the app name's suffix (§5.3 last paragraph). */
typedef struct td_plegacy {
    const char *app;    /* the app name without the suffix (arena) */
    const char *metric; /* __name__: process_cpu, memory, ... */
    const char *type;   /* __type__ before sampleRate scaling */
    const char *unit;
} td_plegacy;

/* Errors: TD_INVALID "unknown profile type: <suffix>", TD_NOMEM. */
td_status td_profiler_legacy_type(const char *app, td_arena *a, td_plegacy *out, td_err *err);

/* ---- folded text ---- */

/* One parsed line: frames root first, count. */
typedef struct td_pfolded_line {
    const char **frames;
    uint32_t nframes;
    int64_t value;
} td_pfolded_line;

/*
 * Parse folded/collapsed text (`a;b;c 12` per line). Lines without a space are
 * skipped (as upstream does); a count that is not an integer, or a NUL byte
 * (frame names are C strings), is an error.
 * max_lines bounds the number of stacks. Errors: TD_INVALID "line N: ...",
 * TD_TOO_LARGE, TD_NOMEM.
 */
td_status td_profiler_parse_folded(const char *text, size_t len, size_t max_lines, td_arena *a,
                                   td_pfolded_line **out, size_t *n, td_err *err);

/* ---- multipart/form-data ---- */

typedef struct td_mpart {
    const char *name;     /* form field name ("" when absent) */
    const char *filename; /* NULL for a plain (non-file) field */
    td_slice data;        /* borrowed from the body */
} td_mpart;

/*
 * Split a multipart/form-data body; the boundary comes from content_type.
 * Errors: TD_INVALID (no boundary, malformed headers, missing closing
 * delimiter), TD_NOMEM. At most 64 parts.
 */
td_status td_profiler_multipart(const char *content_type, const void *body, size_t len, td_arena *a,
                                td_mpart **parts, size_t *nparts, td_err *err);

/* ---- normalisation and ingest ---- */

/* Called once per profile to store; its error fails the request. */
typedef td_status (*td_pwrite_fn)(void *ud, const td_pwrite *w, td_err *err);

/* What a request did, and on failure the HTTP status to answer with. */
typedef struct td_pingest_result {
    uint64_t profiles; /* td_pwrite calls made */
    uint64_t series;
    uint64_t samples;
    int http; /* on error: the status (400, 401, 413, 422, 500...) */
} td_pingest_result;

/* The query parameters and body of one POST /ingest (§5.0, §5.1). NULL = absent. */
typedef struct td_pingest_req {
    const char *tenant;
    const char *name, *from, *until, *sample_rate, *spy_name, *units, *aggregation, *format;
    const char *content_type;
    const void *body;
    size_t len;
    int64_t now_ns;
} td_pingest_req;

/*
 * Handle one /ingest request: format selection, pprof/multipart/folded
 * conversion, labels, and one fn call per profile with samples. Errors: as
 * td_err codes plus res->http (400 bad metadata or unsupported format, 413
 * over a limit, 422 conversion error), or fn's own error.
 */
td_status td_profiler_ingest(const td_profiler_opts *o, const td_pingest_req *r, td_arena *a,
                             td_pwrite_fn fn, void *ud, td_pingest_result *res, td_err *err);

/* One RawProfileSeries of a push.v1 PushRequest (§5.2). */
typedef struct td_push_series {
    const td_plabel *labels;
    size_t nlabels;
    const td_slice *profiles; /* raw_profile of each RawSample (gzip optional) */
    size_t nprofiles;
} td_push_series;

/*
 * Handle one PushRequest: labels per §5.2/§5.0 (__name__ required, service_name
 * defaulted to unknown_service, client `__*` labels dropped except
 * __session_id__), time_nanos 0 -> now, too old/new -> rejected. Errors:
 * TD_INVALID (empty request, bad labels, malformed pprof), TD_TOO_LARGE, fn's.
 */
td_status td_profiler_push(const td_profiler_opts *o, const char *tenant, const td_push_series *s,
                           size_t n, int64_t now_ns, td_arena *a, td_pwrite_fn fn, void *ud,
                           td_pingest_result *res, td_err *err);

/*
 * The series of a decoded push.v1.PushRequest (proto/push/v1/push.proto) as
 * td_push_series: labels and raw profiles are borrowed from msg, the arrays
 * live in arena a; annotations (server-side only) are dropped. Errors: TD_NOMEM.
 */
td_status td_profiler_push_series(const Push__V1__PushRequest *msg, td_arena *a,
                                  td_push_series **out, size_t *n, td_err *err);

/* ---- lower level, for tests and the push path ---- */

/* Input of td_profiler_pprof_to_write. */
typedef struct td_pnorm {
    const char *tenant;
    const td_pprof_profile *p; /* from td_profiler_pprof_decode */
    const char *metric;        /* __name__ */
    const td_plabel *labels;   /* base series labels (service_name, pyroscope_spy, client ones) */
    size_t nlabels;
    int64_t time_ns;
    int64_t duration_ns;
} td_pnorm;

/*
 * Normalise a decoded pprof into *out (§5.3): locations expanded per Line
 * (callee first), stacks de-duplicated, samples split by promoted string
 * labels (span_id/trace_id/profile_id stay per sample), one series per sample
 * type and label set with __type__, __unit__, __period_type__,
 * __period_unit__, __profile_type__ and __service_name__; zero values dropped;
 * series without samples omitted. *nsamples counts the samples written.
 * Errors: TD_NOMEM.
 */
td_status td_profiler_pprof_to_write(const td_pnorm *in, td_arena *a, td_pwrite *out,
                                     size_t *nsamples, td_err *err);

/* Whether a client-sent label is kept: not `__*` except __session_id__, non-empty name. */
bool td_profiler_label_allowed(const char *name);

#endif
