/*
 * store.h - the LevelDB-backed span store. store/ is the only module that
 * includes leveldb/c.h; the byte layout of keys and values is in store/FORMAT.md.
 *
 * What is stored: a td_batch holds fragments; a fragment is one serialized
 * opentelemetry.proto.trace.v1.ResourceSpans carrying one resource, its scope(s)
 * and only spans of one trace. Fragments are keyed by tenant and trace ID so that
 * all fragments of one trace are one prefix scan, whatever request, service or
 * order they arrived in.
 *
 * Resources are stored once: a fragment may leave its resource out (ResourceSpans
 * field 1 absent) and refer to an entry of its batch's resource table instead.
 * The store keeps each distinct resource in a record of its own, addressed by its
 * 128-bit hash, and puts it back in front of the fragment when reading, so
 * readers always see complete ResourceSpans.
 *
 * Thread-safety: a td_store may be used from any number of threads at once
 * (LevelDB serialises writers itself); td_store_close must not race with other calls.
 */
#ifndef TD_STORE_H
#define TD_STORE_H

#include "core/config.h"
#include "core/queue.h"
#include "core/status.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TD_TENANT_MAX 150
#define TD_DEFAULT_TENANT "single-tenant"

/* One trace's share of one resource in one request. data points into its batch. */
typedef struct td_frag {
    uint8_t trace_id[16];
    uint64_t start_ns; /* min start of its spans */
    uint64_t end_ns;   /* max end of its spans */
    uint32_t nspans;
    uint32_t len;
    const uint8_t *data; /* serialized ResourceSpans (without field 1 when res_index >= 0) */
    /*
     * -1: data is a complete ResourceSpans, resource included (or it has none).
     * >= 0: data leaves the resource out; it is the batch's res[res_index], and
     * readers get it back as field 1 in front of data.
     */
    int32_t res_index;
    /*
     * Search summary inputs (store/FORMAT.md, 'S' records); all zero is fine
     * (no root, no errors). has_root: the fragment holds a span with an empty
     * parent_span_id (the earliest such span gives root_name, and its resource's
     * service.name gives root_service). The slices point into the batch data.
     */
    bool has_root;
    uint32_t nerrors; /* spans with status code ERROR */
    const uint8_t *root_service;
    uint32_t root_service_len;
    const uint8_t *root_name;
    uint32_t root_name_len;
} td_frag;

/*
 * Secondary index (store/FORMAT.md, 'I' and 'K' records). Scopes and value
 * types are single bytes stored in keys; never renumber them.
 */
typedef enum td_idx_scope {
    TD_IDX_RESOURCE = 'r',  /* resource attribute (service.name is one) */
    TD_IDX_SPAN = 's',      /* span attribute */
    TD_IDX_INTRINSIC = 'i', /* name, status, kind, statusMessage, duration, rootName,
                               rootServiceName */
    TD_IDX_EVENT = 'e',     /* span event attribute (tag names/values only) */
    TD_IDX_LINK = 'l',      /* span link attribute (tag names/values only) */
    TD_IDX_SCOPE = 'n',     /* instrumentation scope attribute (tag names/values only) */
} td_idx_scope;

typedef enum td_idx_type {
    TD_IDX_STRING = 's',   /* UTF-8 bytes */
    TD_IDX_INT = 'i',      /* 8 bytes: int64 + 2^63, big-endian (memcmp order = numeric) */
    TD_IDX_FLOAT = 'f',    /* 8 bytes: IEEE double bits, big-endian; negatives all bits
                              flipped, others the sign bit (memcmp order = numeric) */
    TD_IDX_BOOL = 'b',     /* 1 byte: 0 or 1 */
    TD_IDX_KEYWORD = 'k',  /* text of a status or kind keyword ("error", "server") */
    TD_IDX_DURCLASS = 'd', /* 1 byte: floor(log2(duration ns)) + 1, 0 for 0 ns */
} td_idx_type;

/*
 * Value encodings of td_idx_type, shared by the batch builder, the search
 * planner and tag value readers (td_store_tag_values hands out encoded values).
 */
static inline void td_idx_put_int(uint8_t out[8], int64_t v)
{
    uint64_t u = (uint64_t)v ^ (1ull << 63); /* + 2^63: signed order as unsigned */
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)u;
        u >>= 8;
    }
}

static inline void td_idx_put_float(uint8_t out[8], double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    /* negatives: every bit flipped (bigger magnitude sorts lower); others: the sign bit */
    u = (u >> 63) ? ~u : u ^ (1ull << 63);
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)u;
        u >>= 8;
    }
}

static inline int64_t td_idx_get_int(const uint8_t in[8])
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) {
        u = (u << 8) | in[i];
    }
    return (int64_t)(u ^ (1ull << 63));
}

static inline double td_idx_get_float(const uint8_t in[8])
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) {
        u = (u << 8) | in[i];
    }
    u = (u >> 63) ? u ^ (1ull << 63) : ~u;
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

/* Duration class: floor(log2(ns)) + 1, 0 for 0 ns; class c holds [2^(c-1), 2^c). */
static inline uint8_t td_idx_durclass(uint64_t ns)
{
    uint8_t c = 0;
    while (ns) {
        c++;
        ns >>= 1;
    }
    return c;
}

/*
 * One distinct (scope, key, typed value) of one fragment. key and val point
 * into the batch's data. Array attributes give one entry per scalar element.
 */
typedef struct td_idx_entry {
    uint32_t frag; /* index into the batch's frags */
    uint8_t scope; /* td_idx_scope */
    uint8_t type;  /* td_idx_type */
    uint16_t key_len;
    uint32_t val_len;
    /*
     * With td_batch.nvids > 0: the entry's value number in its batch, < nvids;
     * two entries have the same number exactly when scope, key, type and value
     * are equal. Ignored when nvids is 0 (the store compares the strings).
     */
    uint32_t vid;
    const uint8_t *key;
    const uint8_t *val;
} td_idx_entry;

/* A distinct resource of a batch. data points into its batch. */
typedef struct td_res {
    uint8_t hash[16]; /* td_hash128 (core/hash.h) of the len bytes at data */
    uint32_t len;
    const uint8_t *data; /* serialized opentelemetry.proto.resource.v1.Resource */
} td_res;

/*
 * The unit that travels through the queue and is written atomically: a single
 * heap block (header, fragment array, resource table, data bytes). q.spans /
 * q.bytes are its queue accounting.
 */
typedef struct td_batch {
    td_qitem q;
    char tenant[TD_TENANT_MAX + 1];
    size_t nfrags;
    td_frag *frags;
    uint8_t *data;   /* data_cap bytes of storage; frags[i].data and res[i].data point in here */
    size_t data_cap;
    size_t nres;     /* distinct resources the fragments refer to; 0 for batches without */
    td_res *res;
    size_t nidx;     /* index entries (td_batch_new_idx); 0 for batches without */
    td_idx_entry *idx;
    size_t nvids;    /* > 0: the entries' vid numbers their distinct values (0..nvids-1) */
} td_batch;

/*
 * Allocate a batch for nfrags fragments and data_cap bytes of fragment data in one
 * block; frags/data are ready to fill, nfrags is set, every res_index is -1 (each
 * fragment carries its own resource), nres is 0, q.spans/q.bytes are 0 (the
 * builder sets them). NULL on OOM or overflow. Free with td_batch_free.
 */
td_batch *td_batch_new(const char *tenant, size_t nfrags, size_t data_cap);

/*
 * Same with a resource table of nres zeroed entries (b->res), filled by the
 * caller together with the fragments' res_index; data_cap covers fragment and
 * resource bytes. td_batch_new_res(t, n, 0, c) is td_batch_new(t, n, c).
 */
td_batch *td_batch_new_res(const char *tenant, size_t nfrags, size_t nres, size_t data_cap);

/*
 * Same with room for nidx zeroed index entries (b->idx), filled by the caller;
 * data_cap also covers their key and value bytes. A batch with entries must
 * carry every entry of each of its fragments (lookups trust them to be
 * complete); a batch without any marks its fragments' time range unindexed.
 */
td_batch *td_batch_new_idx(const char *tenant, size_t nfrags, size_t nres, size_t nidx,
                           size_t data_cap);
void td_batch_free(td_batch *b);

typedef struct td_store_opts {
    char *dir;                   /* data directory; created if missing */
    uint64_t cache_bytes;        /* LevelDB block cache */
    uint64_t write_buffer_bytes; /* LevelDB memtable size */
    bool sync;                   /* fsync every write batch */
    uint64_t max_open_files;     /* LevelDB table files kept open (0: the default, 128) */
    uint64_t index_max_value_len;   /* longer values are not indexed (counted) */
    uint64_t index_max_values;      /* distinct values indexed per tenant, scope and key */
    uint64_t profile_symbol_cache_bytes; /* profile store's symbol cache; 0 = 64 MiB */
    int64_t retention_ms;           /* data older than this is deleted; 0 = keep forever */
    int64_t retention_interval_ms;  /* time between retention passes */
} td_store_opts;

/* Option rows for td_config (TD_OPT_* rows pointing into a td_store_opts). */
extern const td_opt td_store_opt_rows[];
extern const size_t td_store_nopt_rows;

typedef struct td_store td_store;

/* Open (creating if needed) the store under o->dir. Errors: TD_IO with LevelDB's message. */
td_status td_store_open(const td_store_opts *o, td_store **out, td_err *err);
/* Close and free; NULL is fine. */
void td_store_close(td_store *s);

/*
 * Write every fragment of the n batches, and the resources they refer to, in one
 * atomic LevelDB write. The batches stay owned by the caller. A resource already
 * written recently (by this td_store, for the same tenant) is not written again.
 * A fragment's res_index must be < its batch's nres (a bug otherwise).
 * The batches' index entries become 'I', 'K' and 'W' records in the same write,
 * within the index-max-value-len / index-max-values limits (entries over them
 * are counted in traced_index_skipped_total and left out); an entry's frag must
 * be < its batch's nfrags (a bug otherwise). This may read the index (at most
 * index-max-values + 1 seeks per attribute key not tracked in memory yet).
 * Errors: TD_IO, TD_NOMEM (nothing of these batches is written).
 */
td_status td_store_write(td_store *s, td_batch *const *batches, size_t n, td_err *err);

/*
 * Called once per stored fragment of a trace, in key order, with a complete
 * serialized ResourceSpans (a fragment stored without its resource gets it back
 * as field 1, in front). Return TD_OK to go on; any other status stops the scan
 * and is returned by td_store_trace_get. data is valid only during the call.
 */
typedef td_status (*td_frag_cb)(void *ud, const uint8_t *data, size_t len, td_err *err);

/*
 * Visit the fragments of trace_id for tenant. When end_ns > 0, only fragments
 * overlapping [start_ns, end_ns] are visited. Returns TD_NOT_FOUND when none was
 * visited, TD_IO on read errors, TD_CORRUPT on a malformed stored value or a
 * fragment whose resource record is missing, TD_NOMEM when a fragment cannot be
 * put back together.
 */
td_status td_store_trace_get(td_store *s, const char *tenant, const uint8_t trace_id[16],
                             uint64_t start_ns, uint64_t end_ns, td_frag_cb cb, void *ud,
                             td_err *err);

/*
 * One search summary record: what a fragment says about its trace without
 * decoding it. root_* point into the stored value (valid during the callback).
 */
typedef struct td_store_summary {
    uint8_t trace_id[16];
    uint64_t start_ns, end_ns;
    uint32_t nspans, nerrors;
    bool has_root;
    const char *root_service; /* not NUL-terminated */
    size_t root_service_len;
    const char *root_name; /* not NUL-terminated */
    size_t root_name_len;
} td_store_summary;

/* Return true to go on, false to stop the scan (not an error). */
typedef bool (*td_summary_cb)(void *ud, const td_store_summary *sum);

/*
 * Visit the summary records of tenant whose minute bucket (start_ns / 60 s of
 * the fragment) lies in [bucket(start_ns), bucket(end_ns)] and whose fragment
 * overlaps [start_ns, end_ns], newest bucket first (within a bucket: descending
 * trace ID, then seq). At most max_scan records are read (0 = no bound); when
 * the bound stops the scan *truncated is set. *scanned counts records read.
 * Errors: TD_INVALID (tenant too long), TD_IO, TD_CORRUPT (malformed record).
 */
td_status td_store_summaries(td_store *s, const char *tenant, uint64_t start_ns, uint64_t end_ns,
                             uint64_t max_scan, td_summary_cb cb, void *ud, uint64_t *scanned,
                             bool *truncated, td_err *err);

/* ---- secondary index: tag names, tag values, candidate traces ---- */

/* Return true to go on, false to stop (not an error). Strings are not NUL-terminated. */
typedef bool (*td_tag_name_cb)(void *ud, uint8_t scope, const char *key, size_t len);
typedef bool (*td_tag_value_cb)(void *ud, uint8_t type, const uint8_t *val, size_t len);

/*
 * Visit the distinct keys of scope (a td_idx_scope) indexed for tenant, in
 * ascending byte order, each once, at most max (0 = no bound). With end_ns > 0
 * only keys with an entry in an hour overlapping [start_ns, end_ns] are
 * visited. *inspected (may be NULL) grows by the bytes of records read.
 * Errors: TD_INVALID (tenant too long), TD_IO, TD_CORRUPT.
 */
td_status td_store_tag_names(td_store *s, const char *tenant, uint8_t scope, uint64_t start_ns,
                             uint64_t end_ns, size_t max, td_tag_name_cb cb, void *ud,
                             uint64_t *inspected, td_err *err);

/*
 * Visit the distinct typed values indexed under (scope, key) for tenant, in
 * ascending (type, value) byte order, each once, at most max (0 = no bound).
 * With end_ns > 0 only values with an entry in a minute bucket overlapping
 * [start_ns, end_ns] are visited. Errors as td_store_tag_names, and
 * TD_INVALID for a key longer than 255 bytes (never indexed).
 */
td_status td_store_tag_values(td_store *s, const char *tenant, uint8_t scope, const char *key,
                              size_t key_len, uint64_t start_ns, uint64_t end_ns, size_t max,
                              td_tag_value_cb cb, void *ud, uint64_t *inspected, td_err *err);

/* Return true to go on, false to stop. bucket = minute of the entry. */
typedef bool (*td_index_trace_cb)(void *ud, const uint8_t trace_id[16], uint64_t bucket);

/*
 * Visit the traces with an index entry (scope, key, type, value) with value in
 * [lo, hi] (byte order within the type; lo == hi for equality) in a minute
 * bucket of [start_ns, end_ns], newest bucket first. A trace may be visited
 * more than once (one entry per bucket and per value). At most max_scan
 * entries are read (0 = no bound); *truncated says whether the bound stopped it,
 * and then nothing is visited (resolving positions to trace IDs costs a read
 * per write, and the search planner drops incomplete answers).
 *
 * *exact tells whether the index is complete for this lookup: false when a
 * value in [lo, hi] may have been left out (too long, or its key reached its
 * distinct-value limit before the value was first seen), the window starts
 * before this store began indexing, or it overlaps the time range of fragments
 * written without index entries (batches with nidx == 0; store/FORMAT.md). When *exact is false
 * nothing is visited and the caller must find candidates another way.
 * String and keyword ranges (lo != hi) are never exact. Entries are collected
 * (at most max_scan) and sorted before the first callback.
 * Cost: one seek per distinct value in [lo, hi], plus at most
 * index-max-values seeks to check the key's limit when lo is absent or for a
 * range, plus one read of a write's trace table ('W') per distinct write among
 * the entries read. Errors as td_store_tag_values, and TD_CORRUPT for a
 * missing or malformed trace table. Records of an older index format
 * (store/FORMAT.md, Midxfmt) make the lookup inexact.
 */
td_status td_store_index_traces(td_store *s, const char *tenant, uint8_t scope, const char *key,
                                size_t key_len, uint8_t type, const uint8_t *lo, size_t lo_len,
                                const uint8_t *hi, size_t hi_len, uint64_t start_ns,
                                uint64_t end_ns, uint64_t max_scan, td_index_trace_cb cb, void *ud,
                                bool *exact, bool *truncated, td_err *err);

/*
 * Approximate bytes on disk of one record type (a FORMAT.md leading byte);
 * LevelDB's estimate, which counts only data already flushed to table files.
 */
uint64_t td_store_approx_size_type(td_store *s, uint8_t rec_type);

/* Records deleted by one td_store_retain pass. */
typedef struct td_store_retained {
    uint64_t fragments;     /* 'T' records, each with its 'S' summary */
    uint64_t index_records; /* 'I' */
    uint64_t tag_records;   /* 'K' */
    uint64_t write_tables;  /* 'W' records (table chunks) */
} td_store_retained;

/*
 * One retention pass (store/FORMAT.md, "Retention"): delete every fragment
 * that starts before cutoff_ns rounded down to its minute, with its summary,
 * the index records of those minutes, the tag name records of the hours
 * before cutoff_ns and the write tables no index record needs any more.
 * Resource records are kept. Found through the summaries and by seek-skip over
 * the index (never a scan of the fragments); deletes go in write batches of at
 * most 4 MiB, so concurrent writes wait at most for one of them. Safe to run
 * concurrently with td_store_write and reads (one pass at a time); fragments
 * written during the pass stay whole. cutoff_ns == 0 deletes nothing; a second
 * pass with the same cutoff deletes nothing more. When *stop (stop may be
 * NULL) becomes true the pass ends early, after the current batch, with
 * TD_OK (a later pass finishes the work). Counts what it deleted in
 * traced_retention_deleted_total{store="traces"} and in *out (may be NULL),
 * also on error. Errors: TD_IO, TD_CORRUPT, TD_NOMEM (what was deleted stays
 * deleted; the next pass goes on).
 */
td_status td_store_retain(td_store *s, uint64_t cutoff_ns, const atomic_bool *stop,
                          td_store_retained *out, td_err *err);

/* Approximate bytes on disk (LevelDB's estimate over the whole key space). */
uint64_t td_store_approx_size(td_store *s);

#endif
