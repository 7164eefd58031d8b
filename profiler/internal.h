/*
 * internal.h - cross-file helpers of td_profiler (td__ prefix; not installed).
 * Thread-safety: reentrant.
 */
#ifndef TD_PROFILER_INTERNAL_H
#define TD_PROFILER_INTERNAL_H

#include "profiler/profiler.h"

/* uint64 ID -> uint32 index, in an arena. IDs must be non-zero. */
typedef struct td__idmap {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap;
    /*
     * While every put so far was (id k + 1 -> value k) in order, as Go and most
     * pprof writers number things, the table stays empty and a lookup is an
     * index check; the first other put moves those entries into the table.
     */
    bool dense;
    uint32_t ndense;
} td__idmap;

td_status td__idmap_init(td__idmap *m, size_t n, td_arena *a, td_err *err);
/* False when id is already present. */
bool td__idmap_put(td__idmap *m, uint64_t id, uint32_t v);
bool td__idmap_get(const td__idmap *m, uint64_t id, uint32_t *v);

/* Open-addressing set of byte strings (keys borrowed); values are insertion indices. */
typedef struct td__dedup {
    uint32_t *slot; /* index + 1; 0 = empty */
    size_t cap;
    const void **key;
    size_t *klen;
    size_t n, max; /* at most max distinct keys */
} td__dedup;

bool td__dedup_init(td__dedup *d, size_t max, td_arena *a);
/* Index of (k, n); a new key is added (k must stay valid); *fresh says which. */
uint32_t td__dedup_get(td__dedup *d, const void *k, size_t n, bool *fresh);

/* A growable label list in an arena. */
typedef struct td__labels {
    td_plabel *v;
    size_t n, cap;
    td_arena *a;
} td__labels;

void td__labels_init(td__labels *l, td_arena *a);
/* Append (name, value) as given (strings are not copied). False on NOMEM. */
bool td__labels_add(td__labels *l, const char *name, const char *value);
/* Value of name, or NULL. */
const char *td__labels_get(const td__labels *l, const char *name);

/*
 * Sort by name; for a name given several times keep the earliest entry (callers
 * add in priority order); drop empty values. Result in place.
 */
void td__labels_finish(td__labels *l);

/* Strict UTF-8 check. */
bool td__utf8_valid(const char *s, size_t n);

/* Shared by /ingest folded and tests: the series of a legacy profile. */
td_status td__folded_to_write(const td_pfolded_line *lines, size_t n, const char *tenant,
                              const td_plabel *labels, size_t nlabels, const td_plegacy *lt,
                              uint32_t sample_rate, int64_t time_ns, int64_t duration_ns,
                              td_arena *a, td_pwrite *out, size_t *nsamples, td_err *err);

#endif
