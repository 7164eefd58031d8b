/*
 * pstore.h - the profile store: continuous-profiling data in its own LevelDB
 * database, <data-dir>/profiles (layout in store/FORMAT-PROFILES.md). store/ is
 * the only module that includes leveldb/c.h.
 *
 * Model (API-CONTRACT §5.3). A *series* is tenant + a sorted label set that
 * includes __name__, __profile_type__ (the 5-part profile type ID), __type__,
 * __unit__, __period_type__, __period_unit__ and service_name. A *profile* is
 * one point of a series: a timestamp and samples (stack, value[, span ID]).
 * A *stack* is a list of locations, leaf first (pprof order). A *location*
 * here is one frame as flame graphs and pprof exports need it: function name,
 * system name, file name, line, and the mapping's file name (may be empty). An
 * inlined pprof location with several Line entries becomes several locations,
 * callee first, so a stack is always one frame per entry.
 * Symbols (locations) and stacks are interned per tenant: each distinct one is
 * stored once, whatever series or profile refers to it.
 *
 * Thread-safety: a td_pstore may be used from any number of threads at once;
 * td_pstore_close must not race with other calls.
 */
#ifndef TD_PSTORE_H
#define TD_PSTORE_H

#include "core/arena.h"
#include "core/status.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct td_pstore td_pstore;

/* One label; strings NUL-terminated. */
typedef struct td_plabel {
    const char *name;
    const char *value;
} td_plabel;

/* One frame. Empty strings for unknown parts; line 0 = unknown. */
typedef struct td_ploc {
    const char *function;    /* Function.name (the flame graph frame name) */
    const char *system_name; /* Function.system_name */
    const char *file;        /* Function.filename */
    int64_t line;
    const char *mapping; /* Mapping.filename ("" when none) */
} td_ploc;

/* A stack: nframes indices into the profile's locs, leaf first. */
typedef struct td_pstack {
    const uint32_t *frames;
    uint32_t nframes;
} td_pstack;

/* One sample of a series: a stack of the profile, a value, an optional span. */
typedef struct td_psample {
    uint32_t stack;    /* index into the profile's stacks */
    int64_t value;     /* as received (no server-side delta, §5.0) */
    uint64_t span_id;  /* pprof label span_id as 8 big-endian bytes read as a number; 0 = none */
    uint8_t trace_id[16]; /* pprof label trace_id; all zero = none */
} td_psample;

/* One series' share of an ingested profile. labels sorted by name, unique. */
typedef struct td_pseries_in {
    const td_plabel *labels;
    size_t nlabels;
    const td_psample *samples;
    size_t nsamples;
} td_pseries_in;

/*
 * What one ingest request writes: shared locations and stacks, then every
 * series (one per sample type and promoted label set, §5.3) at time_ns.
 */
typedef struct td_pwrite {
    const char *tenant;
    int64_t time_ns;
    int64_t duration_ns; /* Profile.duration_nanos or until - from; 0 = unknown */
    const td_ploc *locs;
    size_t nlocs;
    const td_pstack *stacks;
    size_t nstacks;
    const td_pseries_in *series;
    size_t nseries;
} td_pwrite;

/* Open <o->dir>/profiles (created if missing) with o's cache/buffer/sync settings. */
td_status td_pstore_open(const td_store_opts *o, td_pstore **out, td_err *err);
void td_pstore_close(td_pstore *s);

/*
 * Write one ingested profile atomically (one LevelDB write: new symbols,
 * stacks, series index and postings, the profile). Errors: TD_INVALID (a label
 * set without __profile_type__, not sorted or unique, a label name over 1024 or
 * value over 65536 bytes, indices out of range, tenant too long), TD_IO,
 * TD_NOMEM, TD_CORRUPT (a stored counter or hash record is damaged). Zero
 * values are dropped; a series left without samples stores nothing.
 */
td_status td_pstore_write(td_pstore *s, const td_pwrite *w, td_err *err);

/*
 * ---- label matchers (Prometheus selector syntax; store/pselector.c) ----
 * Regexes are RE2 syntax, translated to anchored POSIX ERE by the translator
 * shared with TraceQL (moved to core/ for that).
 */

typedef enum td_pmatch_op { TD_PM_EQ, TD_PM_NE, TD_PM_RE, TD_PM_NRE } td_pmatch_op;

typedef struct td_pmatcher {
    const char *name;
    const char *value;
    td_pmatch_op op;
    void *re; /* compiled, fully anchored (RE/NRE); owned by the selector */
} td_pmatcher;

typedef struct td_pselector {
    td_pmatcher *m;
    size_t n;
    const char *profile_type; /* the metric-name position (`ID{...}`), or NULL */
} td_pselector;

/*
 * Parse `{a="x", b!="y", c=~"re", d!~"re"}`, optionally preceded by a metric
 * name (a profile type ID like process_cpu:cpu:nanoseconds:cpu:nanoseconds,
 * kept in profile_type); "" and "{}" select everything. Strings live in arena
 * a; release compiled regexes with td_pselector_release (before releasing a:
 * the matcher array lives there). Errors: TD_INVALID with a message saying
 * what is wrong and where ("parse error at char N: ..."), TD_NOMEM; on error
 * *out is empty and nothing needs releasing. Syntax and limits: store/pselector.c.
 */
td_status td_pselector_parse(const char *s, size_t n, td_arena *a, td_pselector *out, td_err *err);
void td_pselector_release(td_pselector *sel);
/*
 * Whether the sorted label set matches every matcher (a missing label is "").
 * A profile_type, when set, is one more matcher: __profile_type__ = it (also
 * in td_pstore_series). Reentrant; regexec on the selector's compiled regexes.
 */
bool td_pselector_match(const td_pselector *sel, const td_plabel *labels, size_t n);

/* ---- reads ---- */

/* A series as read back: id unique per tenant; labels sorted, valid during the callback. */
typedef struct td_pseries {
    uint64_t id;
    const td_plabel *labels;
    size_t nlabels;
} td_pseries;

/* Return true to go on. */
typedef bool (*td_pseries_cb)(void *ud, const td_pseries *s);

/*
 * Visit each series of tenant that matches every selector in sels (nsels == 0:
 * all; several selectors are OR-ed, §6.2) and has a profile in
 * [start_ms, end_ms] (end_ms == 0: any time). Uses the label postings: never
 * reads profiles. Errors: TD_IO, TD_CORRUPT.
 */
td_status td_pstore_series(td_pstore *s, const char *tenant, const td_pselector *sels,
                           size_t nsels, int64_t start_ms, int64_t end_ms, td_pseries_cb cb,
                           void *ud, td_err *err);

/* One sample as read back. stack is a tenant-wide stack ID (td_pstore_stack). */
typedef struct td_psample_out {
    uint64_t series;
    int64_t time_ns;
    uint64_t stack;
    int64_t value;
    uint64_t span_id;       /* 0 = none */
    const uint8_t *trace_id; /* 16 bytes, or NULL = none */
} td_psample_out;

/* Called per profile (before its samples) and per sample; return true to go on. */
typedef struct td_pvisit {
    bool (*profile)(void *ud, uint64_t series, int64_t time_ns, int64_t total);
    bool (*sample)(void *ud, const td_psample_out *smp); /* NULL: profiles only (totals) */
    void *ud;
} td_pvisit;

/*
 * Visit the profiles of the given series (ids from td_pstore_series) with a
 * timestamp in [start_ms, end_ms] (end_ms == 0: no upper bound; end_ms covers
 * its whole millisecond), by ascending series ID then time, and their samples.
 * total is the sum of the profile's sample values. Errors: TD_IO, TD_CORRUPT.
 */
td_status td_pstore_select(td_pstore *s, const char *tenant, const uint64_t *series,
                           size_t nseries, int64_t start_ms, int64_t end_ms, const td_pvisit *v,
                           td_err *err);

/*
 * The frames (location IDs, leaf first) of stack id: at most max into locs,
 * *n = the stack's real length. Errors: TD_NOT_FOUND, TD_IO, TD_CORRUPT.
 */
td_status td_pstore_stack(td_pstore *s, const char *tenant, uint64_t id, uint64_t *locs,
                          size_t max, size_t *n, td_err *err);

/* Location id; strings copied into arena a. Errors: TD_NOT_FOUND, TD_IO, TD_CORRUPT, TD_NOMEM. */
td_status td_pstore_location(td_pstore *s, const char *tenant, uint64_t id, td_arena *a,
                             td_ploc *out, td_err *err);

/* Oldest and newest profile time (ms) of tenant; *any false when it has none. */
td_status td_pstore_stats(td_pstore *s, const char *tenant, bool *any, int64_t *oldest_ms,
                          int64_t *newest_ms, td_err *err);

/* Records deleted by one td_pstore_retain pass. */
typedef struct td_pstore_retained {
    uint64_t profiles;  /* 'X' */
    uint64_t time_keys; /* 'I' */
    uint64_t series;    /* 'S' (each with its 's' hash record) */
    uint64_t postings;  /* 'N' */
} td_pstore_retained;

/*
 * One retention pass (store/FORMAT-PROFILES.md, "Retention"): delete every
 * profile whose time is before cutoff_ns rounded down to its millisecond, the
 * time index keys of milliseconds left without a profile, and every series
 * left without a profile (its record, label-set hash record and postings).
 * Locations, stacks and counters are kept. Visits each series once (a few
 * seeks), deletes in write batches of at most 4 MiB, each read and committed
 * under the write lock so td_pstore_write never interleaves with one.
 * cutoff_ns <= 0 deletes nothing; passes are idempotent. *stop (stop may be
 * NULL) ends the pass early, between two batches, with TD_OK. Counts in
 * traced_retention_deleted_total{store="profiles"} and *out (may be NULL).
 * Thread-safe against writes and reads; one pass at a time.
 * Errors: TD_IO, TD_CORRUPT, TD_NOMEM.
 */
td_status td_pstore_retain(td_pstore *s, int64_t cutoff_ns, const atomic_bool *stop,
                           td_pstore_retained *out, td_err *err);

/* Approximate bytes on disk of the profile database. */
uint64_t td_pstore_approx_size(td_pstore *s);

#endif
