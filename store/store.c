/*
 * store.c - the span store on LevelDB's C API (the only file that includes it).
 *
 * Keys and values are encoded by store/keys.h as specified in store/FORMAT.md.
 * Every LevelDB buffer handed to us (error strings, leveldb_get results) is
 * released with leveldb_free right where it is consumed, except resource
 * records, which a trace read keeps until it ends (res_cache).
 */
#include "store/store.h"
#include "store/ldb.h"

#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/keys.h"

#include <leveldb/c.h>

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define MODULE "store"

/* td_batch_new lays out header, td_frag array, td_res array and data in one block. */
_Static_assert(sizeof(td_batch) % alignof(td_frag) == 0, "td_frag array must follow td_batch");
_Static_assert(sizeof(td_frag) % alignof(td_res) == 0, "td_res array must follow td_frag");
_Static_assert(sizeof(td_res) % alignof(td_idx_entry) == 0,
               "td_idx_entry array must follow td_res");
_Static_assert(sizeof(td_frag) % alignof(td_idx_entry) == 0, "td_idx_entry may follow td_frag");
_Static_assert(TD_TENANT_MAX <= 255, "tenant length must fit the key's length byte");

/*
 * Resource records written recently, so that a resource seen in every request is
 * put once rather than once per write (a redundant put is harmless, only wasted
 * bytes). Entries are the 128-bit hash of the record's key (tenant and resource
 * hash), in a 2-way set-associative table: a hit in the second way moves the
 * entry to the first, a new entry pushes the first way's into the second, so
 * each set drops its least recently used entry. {0,0} marks an empty way.
 */
#define RES_SEEN_SETS 4096 /* x 2 ways x 16 bytes = 128 KiB per store */

typedef struct res_seen_ent {
    uint64_t a, b;
} res_seen_ent;

/*
 * 'K' records written recently: the same kind of table as res_seen, so that a
 * tag name seen in every request is put once per hour bucket, not once per write.
 */
#define TAG_SEEN_SETS 4096

/*
 * The distinct values of one (tenant, scope, key) indexed so far, for the
 * index-max-values limit. Known from this process's writes and, after a start
 * or after the table was dropped, from the index itself (idx_key_load). vals is
 * an open-addressing set of 64-bit value hashes (0 = empty slot).
 */
typedef struct idx_key {
    uint64_t a, b;   /* 128-bit hash of the 'I' prefix (tenant, scope, key); {0,0} = free */
    uint32_t n;      /* distinct values */
    uint32_t nslots; /* power of two, at least 2n + 2 */
    uint64_t *vals;
} idx_key;

/*
 * Bounds of the distinct-value tracking: when a write begins with more than
 * IDX_KEYS keys or IDX_VAL_SLOTS value slots (8 bytes each, 16 MiB) tracked, the
 * whole table is dropped and rebuilt key by key from the index (at most
 * index-max-values + 1 seeks per key), which is always correct, only slower; a
 * workload with fewer keys never pays it. Within one write the table only grows
 * (dropping it there would forget values put into the pending write batch, which
 * the index does not show yet), so one write may take it past the bounds.
 */
#define IDX_KEYS 4096
#define IDX_VAL_SLOTS (2u * 1024 * 1024)

struct td_store {
    td__ldb l; /* the database and its options (store/ldb.h) */
    /*
     * Held across a whole td_store_write: seq numbers are handed out and the
     * persisted high-water mark (TD__KEY_META_SEQ) is written in the same order,
     * so the stored mark never goes backwards. There is one writer thread, so
     * the lock costs nothing that LevelDB's own writer queue would not.
     */
    pthread_mutex_t write_lock;
    uint64_t next_seq; /* guarded by write_lock */
    char *path;        /* <dir>/traces */
    /* resource records written recently (see res_seen_ent); guarded by write_lock */
    res_seen_ent res_seen[RES_SEEN_SETS][2];
    /* traced_store_resources_total{outcome="written"|"cached"} */
    td_metric *m_res_written, *m_res_cached;
    /* ---- secondary index ---- */
    uint64_t idx_max_value_len, idx_max_values;
    uint64_t idx_since;   /* TD__KEY_META_IDX_SINCE, read at open */
    uint64_t idx_fmt_seq; /* TD__KEY_META_IDX_FMT: 'I' records below this seq are unreadable */
    /*
     * TD__KEY_META_IDX_HOLE in memory (empty when lo > hi). Guarded by hole_lock,
     * not write_lock, so that lookups never wait for a write to reach the disk;
     * the writer widens it before the write that needs it becomes visible.
     */
    pthread_mutex_t hole_lock;
    uint64_t hole_lo, hole_hi;
    res_seen_ent tag_seen[TAG_SEEN_SETS][2]; /* guarded by write_lock */
    idx_key *idx_keys;                       /* [idx_cap], guarded by write_lock */
    size_t idx_cap, idx_nkeys, idx_nslots;   /* table size, keys tracked, value slots */
    td_metric *m_idx_entries, *m_idx_too_long, *m_idx_too_many;
};

/* ---- batches ---- */

td_batch *td_batch_new_idx(const char *tenant, size_t nfrags, size_t nres, size_t nidx,
                           size_t data_cap)
{
    if (!tenant) {
        tenant = TD_DEFAULT_TENANT;
    }
    size_t tlen = strlen(tenant);
    TD_ASSERT(tlen <= TD_TENANT_MAX); /* tenants are validated before a batch is built */
    size_t frag_bytes, res_bytes, idx_bytes, total;
    if (!td_size_mul(nfrags, sizeof(td_frag), &frag_bytes) ||
        !td_size_mul(nres, sizeof(td_res), &res_bytes) ||
        !td_size_mul(nidx, sizeof(td_idx_entry), &idx_bytes) ||
        !td_size_add(sizeof(td_batch), frag_bytes, &total) ||
        !td_size_add(total, res_bytes, &total) || !td_size_add(total, idx_bytes, &total) ||
        !td_size_add(total, data_cap, &total)) {
        return NULL;
    }
    td_batch *b = td_malloc(total);
    if (!b) {
        return NULL;
    }
    /* zero header and the three arrays; the data area is filled by the builder */
    memset(b, 0, sizeof(*b) + frag_bytes + res_bytes + idx_bytes);
    memcpy(b->tenant, tenant, tlen + 1);
    b->nfrags = nfrags;
    b->frags = (td_frag *)(b + 1);
    for (size_t i = 0; i < nfrags; i++) {
        b->frags[i].res_index = -1;
    }
    b->nres = nres;
    b->res = (td_res *)(b->frags + nfrags);
    b->nidx = nidx;
    b->idx = (td_idx_entry *)(b->res + nres);
    b->data = (uint8_t *)(b->idx + nidx);
    b->data_cap = data_cap;
    return b;
}

td_batch *td_batch_new_res(const char *tenant, size_t nfrags, size_t nres, size_t data_cap)
{
    return td_batch_new_idx(tenant, nfrags, nres, 0, data_cap);
}

td_batch *td_batch_new(const char *tenant, size_t nfrags, size_t data_cap)
{
    return td_batch_new_res(tenant, nfrags, 0, data_cap);
}

void td_batch_free(td_batch *b)
{
    td_free(b);
}

/* ---- options ---- */

#define KiB (1024LL)
#define MiB (1024LL * KiB)
#define GiB (1024LL * MiB)

const td_opt td_store_opt_rows[] = {
    {"data-dir", TD_OPT_STRING, "./data", offsetof(td_store_opts, dir),
     "Directory where traced keeps its data; created if missing. Traces are stored in "
     "<data-dir>/traces (a LevelDB database). Use a local disk.",
     0, 0},
    {"store-cache-size", TD_OPT_SIZE, "64MiB", offsetof(td_store_opts, cache_bytes),
     "Memory used to cache recently read parts of the store. More makes repeated trace "
     "lookups faster; it does not limit what can be stored.",
     1 * MiB, 1024 * GiB},
    {"store-write-buffer", TD_OPT_SIZE, "16MiB", offsetof(td_store_opts, write_buffer_bytes),
     "Memory that collects new writes before they are sorted into a file on disk. More "
     "means faster ingest and fewer files, but more memory and a longer start-up after "
     "a crash.",
     64 * KiB, 1 * GiB},
    {"profile-symbol-cache", TD_OPT_SIZE, "64MiB",
     offsetof(td_store_opts, profile_symbol_cache_bytes),
     "Memory that remembers the IDs of recently stored profile symbols, stacks and "
     "series, so that ingesting a profile seldom has to look them up on disk. Size it "
     "for the number of services: about 1 MiB per 10,000 distinct stack frames and "
     "stacks; too small slows profile ingest down, it never loses data.",
     64 * KiB, 64 * GiB},
    {"store-sync", TD_OPT_BOOL, "false", offsetof(td_store_opts, sync),
     "Flush every store write to disk (fsync) before it counts as written. Off, a crash "
     "of the process loses nothing already written, but a power loss or kernel crash can "
     "lose the last few seconds. On is safer and slower.",
     0, 0},
    {"store-max-open-files", TD_OPT_INT, "128", offsetof(td_store_opts, max_open_files),
     "Store files kept open for reading (at least 74, at most a quarter of the process's "
     "file descriptor limit). Each open file is memory-mapped, and the parts read count in "
     "traced's resident memory, so this bounds the memory reads use at about 2 MiB per file "
     "whatever the size of the store; more makes reads over large stores faster.",
     74, 50000},
    {"index-max-value-len", TD_OPT_SIZE, "256", offsetof(td_store_opts, index_max_value_len),
     "Longest attribute value (in bytes) put into the search index. Longer values are "
     "still stored and searchable, only more slowly, and are counted in "
     "traced_index_skipped_total{reason=\"value_too_long\"}.",
     16, 4096},
    {"index-max-values", TD_OPT_INT, "5000", offsetof(td_store_opts, index_max_values),
     "Distinct values indexed per tenant and attribute name. Values first seen after "
     "the limit are not indexed (counted in traced_index_skipped_total"
     "{reason=\"too_many_values\"}); searches on that attribute then read more data. "
     "Do not lower it on an existing store.",
     1, 10000000},
    {"retention", TD_OPT_DURATION, "336h", offsetof(td_store_opts, retention_ms),
     "How long traces and profiles are kept. Spans and profiles older than this (by their "
     "own timestamps, to the minute) are deleted by a background pass; 0 keeps everything "
     "forever.",
     0, 3650LL * 24 * 3600 * 1000},
    {"retention-interval", TD_OPT_DURATION, "10m", offsetof(td_store_opts, retention_interval_ms),
     "Time between two retention passes; the first runs shortly after start.", 100,
     7LL * 24 * 3600 * 1000},
};
const size_t td_store_nopt_rows = sizeof(td_store_opt_rows) / sizeof(td_store_opt_rows[0]);

/* ---- open / close ---- */

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * LevelDB keeps up to max_open_files - 10 table files open in its table cache,
 * each memory-mapped (its first 1000) with its index block on the heap. The
 * pages a read or a compaction touches stay in traced's resident set until the
 * table leaves the cache, so an unbounded cache makes RSS grow with the store
 * (about 1 GB after 10M spans, 2.6 GB of tables); store-max-open-files bounds
 * it (default 128: at most 118 tables, about 236 MiB at 2 MiB per table). It
 * never takes more than a quarter of the descriptor limit (the rest is for
 * sockets), nor less than LevelDB's minimum of 74.
 */
static int pick_max_open_files(uint64_t want)
{
    struct rlimit rl;
    rlim_t n = want ? (rlim_t)want : 128;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < n) {
        n = rl.rlim_cur / 4;
    }
    if (n < 74) {
        n = 74;
    }
    if (n > 50000) {
        n = 50000;
    }
    return (int)n;
}

/*
 * First seq of this process: the wall clock in ns, but never below the
 * high-water mark persisted by earlier runs, so keys stay unique even if the
 * clock was set back between runs.
 */
static void load_next_seq(td_store *s)
{
    uint64_t seq = wall_ns();
    char *lerr = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(s->l.db, s->l.ropts, TD__KEY_META_SEQ, sizeof(TD__KEY_META_SEQ) - 1,
                          &vlen, &lerr);
    if (lerr) {
        td_log(TD_LOG_WARN, MODULE, "cannot read the stored sequence mark: %s", lerr);
        leveldb_free(lerr);
    } else if (v && vlen == 8) {
        uint64_t mark = td__get_be64((const uint8_t *)v);
        if (mark > seq) {
            td_log(TD_LOG_WARN, MODULE,
                   "wall clock is behind the stored sequence mark; continuing from the mark");
            seq = mark;
        }
    } else if (v) {
        td_log(TD_LOG_WARN, MODULE, "ignoring a malformed stored sequence mark (%zu bytes)", vlen);
    }
    if (v) {
        leveldb_free(v);
    }
    s->next_seq = seq;
}

/*
 * When indexing began (FORMAT.md, TD__KEY_META_IDX_SINCE). A store opened for
 * the first time by an indexing version records 0 when it holds no fragment yet
 * (everything it will ever hold is indexed) and the current time otherwise
 * (older fragments have no index entries, so earlier windows are inexact).
 */
static td_status load_idx_since(td_store *s, bool *had, td_err *err)
{
    *had = false;
    char *lerr = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(s->l.db, s->l.ropts, TD__KEY_META_IDX_SINCE,
                          sizeof(TD__KEY_META_IDX_SINCE) - 1, &vlen, &lerr);
    if (lerr) {
        td_status st = td_err_set(err, TD_IO, "cannot read the index start mark: %s", lerr);
        leveldb_free(lerr);
        return st;
    }
    if (v) {
        bool ok = vlen == 8;
        *had = true;
        if (ok) {
            s->idx_since = td__get_be64((const uint8_t *)v);
        }
        leveldb_free(v);
        if (!ok) {
            return td_err_set(err, TD_CORRUPT, "malformed index start mark (%zu bytes)", vlen);
        }
        return TD_OK;
    }
    /* absent: is there any fragment from before indexing? */
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    char t = TD__REC_TRACE;
    leveldb_iter_seek(it, &t, 1);
    bool old = false;
    if (leveldb_iter_valid(it)) {
        size_t klen;
        const char *k = leveldb_iter_key(it, &klen);
        old = klen > 0 && k[0] == TD__REC_TRACE;
    }
    leveldb_iter_destroy(it);
    s->idx_since = old ? wall_ns() : 0;
    uint8_t mark[8];
    td__put_be64(mark, s->idx_since);
    leveldb_put(s->l.db, s->l.wopts, TD__KEY_META_IDX_SINCE, sizeof(TD__KEY_META_IDX_SINCE) - 1,
                (const char *)mark, sizeof(mark), &lerr);
    if (lerr) {
        td_status st = td_err_set(err, TD_IO, "cannot write the index start mark: %s", lerr);
        leveldb_free(lerr);
        return st;
    }
    if (old) {
        td_log(TD_LOG_INFO, MODULE,
               "indexing an existing store from now on; searches over older data scan it");
    }
    return TD_OK;
}

/*
 * The index value format (TD__KEY_META_IDX_FMT). Absent in a store that had
 * an index before (had_since: Midxsince was there): its 'I' records hold raw
 * trace IDs (format 1), which this version does not read. They stay where they
 * are, the seq boundary marks them (every one of their keys has a seq below
 * next_seq), and Midxsince moves to now, so lookups of older windows fall back
 * to the summaries and any lookup meeting an old record is inexact.
 */
static td_status load_idx_fmt(td_store *s, bool had_since, td_err *err)
{
    char *lerr = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(s->l.db, s->l.ropts, TD__KEY_META_IDX_FMT,
                          sizeof(TD__KEY_META_IDX_FMT) - 1, &vlen, &lerr);
    if (lerr) {
        td_status st = td_err_set(err, TD_IO, "cannot read the index format mark: %s", lerr);
        leveldb_free(lerr);
        return st;
    }
    if (v) {
        bool ok = vlen == 9 && (uint8_t)v[0] == TD__IDX_FMT;
        if (ok) {
            s->idx_fmt_seq = td__get_be64((const uint8_t *)v + 1);
        }
        leveldb_free(v);
        return ok ? TD_OK
                  : td_err_set(err, TD_CORRUPT, "unknown index format mark (%zu bytes)", vlen);
    }
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    s->idx_fmt_seq = 0;
    if (had_since) {
        s->idx_fmt_seq = s->next_seq;
        uint64_t now = wall_ns();
        if (now > s->idx_since) {
            s->idx_since = now;
        }
        uint8_t mark[8];
        td__put_be64(mark, s->idx_since);
        leveldb_writebatch_put(wb, TD__KEY_META_IDX_SINCE, sizeof(TD__KEY_META_IDX_SINCE) - 1,
                               (const char *)mark, sizeof(mark));
        td_log(TD_LOG_INFO, MODULE,
               "the store's index has an older format: searches over data written before now "
               "scan it");
    }
    uint8_t fv[9];
    fv[0] = TD__IDX_FMT;
    td__put_be64(fv + 1, s->idx_fmt_seq);
    leveldb_writebatch_put(wb, TD__KEY_META_IDX_FMT, sizeof(TD__KEY_META_IDX_FMT) - 1,
                           (const char *)fv, sizeof(fv));
    leveldb_write(s->l.db, s->l.wopts, wb, &lerr);
    leveldb_writebatch_destroy(wb);
    if (lerr) {
        td_status st = td_err_set(err, TD_IO, "cannot write the index format mark: %s", lerr);
        leveldb_free(lerr);
        return st;
    }
    return TD_OK;
}

/* The unindexed range (TD__KEY_META_IDX_HOLE); absent means none. */
static td_status load_idx_hole(td_store *s, td_err *err)
{
    s->hole_lo = UINT64_MAX;
    s->hole_hi = 0;
    char *lerr = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(s->l.db, s->l.ropts, TD__KEY_META_IDX_HOLE,
                          sizeof(TD__KEY_META_IDX_HOLE) - 1, &vlen, &lerr);
    if (lerr) {
        td_status st = td_err_set(err, TD_IO, "cannot read the unindexed range: %s", lerr);
        leveldb_free(lerr);
        return st;
    }
    if (!v) {
        return TD_OK;
    }
    bool ok = vlen == 16;
    if (ok) {
        s->hole_lo = td__get_be64((const uint8_t *)v);
        s->hole_hi = td__get_be64((const uint8_t *)v + 8);
    }
    leveldb_free(v);
    return ok ? TD_OK : td_err_set(err, TD_CORRUPT, "malformed unindexed range (%zu bytes)", vlen);
}

static void idx_keys_clear(td_store *s)
{
    for (size_t i = 0; i < s->idx_cap; i++) {
        td_free(s->idx_keys[i].vals);
    }
    td_free(s->idx_keys);
    s->idx_keys = NULL;
    s->idx_cap = 0;
    s->idx_nkeys = 0;
    s->idx_nslots = 0;
}

static int64_t size_gauge(void *ud)
{
    uint64_t n = td_store_approx_size(ud);
    return n > INT64_MAX ? INT64_MAX : (int64_t)n;
}

static void store_free(td_store *s)
{
    td__ldb_close(&s->l);
    idx_keys_clear(s);
    pthread_mutex_destroy(&s->write_lock);
    pthread_mutex_destroy(&s->hole_lock);
    td_free(s->path);
    td_free(s);
}

td_status td_store_open(const td_store_opts *o, td_store **out, td_err *err)
{
    *out = NULL;
    if (!o->dir || !o->dir[0]) {
        return td_err_set(err, TD_INVALID, "data-dir is empty");
    }
    td_status st = td__mkdir_p(o->dir, err);
    if (st) {
        return st;
    }
    td_store *s = td_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->write_lock, NULL);
    pthread_mutex_init(&s->hole_lock, NULL);
    td_buf path = TD_BUF_INIT;
    td_buf_addf(&path, "%s/traces", o->dir);
    s->path = td_buf_detach(&path, NULL);

    if ((st = td__ldb_open(&s->l, s->path, "store", o->cache_bytes, o->write_buffer_bytes,
                           pick_max_open_files(o->max_open_files), o->sync, err)) != TD_OK) {
        store_free(s);
        return st;
    }
    load_next_seq(s);
    bool had_since = false;
    if ((st = load_idx_since(s, &had_since, err)) != TD_OK ||
        (st = load_idx_fmt(s, had_since, err)) != TD_OK || (st = load_idx_hole(s, err)) != TD_OK) {
        store_free(s);
        return st;
    }
    /* 0 (a hand-made td_store_opts) means the documented default */
    s->idx_max_value_len = o->index_max_value_len ? o->index_max_value_len : 256;
    if (s->idx_max_value_len > TD__IDX_VAL_MAX) {
        s->idx_max_value_len = TD__IDX_VAL_MAX;
    }
    s->idx_max_values = o->index_max_values ? o->index_max_values : 5000;
    if (s->idx_max_values > UINT32_MAX / 4) {
        s->idx_max_values = UINT32_MAX / 4;
    }
    s->m_idx_entries = td_metric_series(TD_M_INDEX_ENTRIES, NULL, NULL, NULL);
    s->m_idx_too_long = td_metric_series(TD_M_INDEX_SKIPPED, "value_too_long", NULL, NULL);
    s->m_idx_too_many = td_metric_series(TD_M_INDEX_SKIPPED, "too_many_values", NULL, NULL);
    s->m_res_written = td_metric_series(TD_M_STORE_RESOURCES, "written", NULL, NULL);
    s->m_res_cached = td_metric_series(TD_M_STORE_RESOURCES, "cached", NULL, NULL);
    td_metric_gauge_fn(TD_M_STORE_SIZE, size_gauge, s);
    td_log(TD_LOG_INFO, MODULE, "opened store %s", s->path);
    *out = s;
    return TD_OK;
}

void td_store_close(td_store *s)
{
    if (!s) {
        return;
    }
    /* after this returns no scrape can be inside size_gauge with s */
    td_metric_gauge_fn(TD_M_STORE_SIZE, NULL, s);
    store_free(s);
}

/* ---- write ---- */

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/*
 * Whether the record with this key was written recently according to tab (a
 * res_seen-style table of nsets x 2 ways); if not, it is noted as written (the
 * caller puts it into the write batch, and clears the table if that write then
 * fails). Caller holds write_lock.
 */
static bool seen_test_and_set(res_seen_ent (*tab)[2], size_t nsets, const uint8_t *key, size_t klen)
{
    uint8_t d[TD_HASH128_LEN];
    td_hash128(key, klen, d);
    res_seen_ent e = {load_le64(d), load_le64(d + 8)};
    if (e.a == 0 && e.b == 0) {
        return false; /* the empty marker: never cached (probability 2^-128) */
    }
    res_seen_ent *set = tab[e.a & (nsets - 1)];
    if (set[0].a == e.a && set[0].b == e.b) {
        return true;
    }
    if (set[1].a == e.a && set[1].b == e.b) {
        set[1] = set[0];
        set[0] = e;
        return true;
    }
    set[1] = set[0];
    set[0] = e;
    return false;
}

/* ---- distinct strings under a prefix (tag names, tag values, key loading) ---- */

/* Called per distinct element; type is 0 for untyped ('K') elements. false stops. */
typedef bool (*distinct_fn)(void *ud, uint8_t type, const uint8_t *v, size_t len);

typedef struct distinct_scan {
    const uint8_t *prefix; /* every visited key starts with it */
    size_t plen;
    bool typed;          /* a type byte precedes the escaped element ('I') */
    size_t tail;         /* fixed bytes after the element: TD__IDX_TAIL or TD__TAG_TAIL */
    bool windowed;       /* only elements with a bucket in [lo, hi] */
    uint32_t lo, hi;     /* the bucket comes first in the tail */
    size_t max;          /* stop after this many elements (0 = no bound) */
    uint64_t *inspected; /* may be NULL */
    distinct_fn fn;
    void *ud;
} distinct_scan;

static td_status iter_status(leveldb_iterator_t *it, td_status st, td_err *err)
{
    if (st) {
        return st;
    }
    char *lerr = NULL;
    leveldb_iter_get_error(it, &lerr);
    if (lerr) {
        st = td_err_set(err, TD_IO, "store read failed: %s", lerr);
        leveldb_free(lerr);
    }
    return st;
}

/*
 * Visit each distinct element (escaped string, with its type byte when typed)
 * that follows d->prefix, in byte order, with one seek per element: after an
 * element is seen, the iterator jumps past every record of it
 * (td__esc_successor). With a window, an element whose first bucket is below lo
 * costs one more seek (to element | lo). Reads never walk the records of one
 * element, so the cost is bounded by the number of distinct elements.
 */
static td_status distinct_run(td_store *s, const distinct_scan *d, td_err *err)
{
    uint8_t *seek = td_malloc(TD__KEY_IDX_MAX);
    uint8_t *val = td_malloc(TD__IDX_VAL_MAX);
    if (!seek || !val) {
        td_free(seek);
        td_free(val);
        return td_err_set(err, TD_NOMEM, "out of memory reading the index");
    }
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    td_status st = TD_OK;
    size_t count = 0;
    leveldb_iter_seek(it, (const char *)d->prefix, d->plen);
    while (leveldb_iter_valid(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
        (void)leveldb_iter_value(it, &vlen);
        if (d->inspected) {
            *d->inspected += klen + vlen;
        }
        if (klen < d->plen || memcmp(k, d->prefix, d->plen) != 0) {
            break;
        }
        size_t pos = d->plen, n = 0;
        uint8_t type = 0;
        if (d->typed) {
            if (pos >= klen) {
                st = td_err_set(err, TD_CORRUPT, "malformed index key (%zu bytes)", klen);
                break;
            }
            type = k[pos++];
        }
        if (!td__esc_get(k, klen, &pos, val, TD__IDX_VAL_MAX, &n) || klen != pos + d->tail ||
            pos + 4 > TD__KEY_IDX_MAX) {
            st = td_err_set(err, TD_CORRUPT, "malformed index key (%zu bytes)", klen);
            break;
        }
        size_t end = pos;
        uint32_t bucket = td__get_be32(k + end);
        memcpy(seek, k, end); /* k is invalid after the next seek */
        bool in = true;
        if (d->windowed && bucket < d->lo) {
            /* the element's records are in bucket order: look at its first one >= lo */
            td__put_be32(seek + end, d->lo);
            leveldb_iter_seek(it, (const char *)seek, end + 4);
            if (!leveldb_iter_valid(it)) {
                break;
            }
            k = (const uint8_t *)leveldb_iter_key(it, &klen);
            if (klen != end + d->tail || memcmp(k, seek, end) != 0) {
                continue; /* no record in or after the window: k is already the next element */
            }
            bucket = td__get_be32(k + end);
        }
        if (d->windowed && bucket > d->hi) {
            in = false;
        }
        if (in) {
            count++;
            if (!d->fn(d->ud, type, val, n) || (d->max && count >= d->max)) {
                break;
            }
        }
        size_t slen = td__esc_successor(seek, end);
        leveldb_iter_seek(it, (const char *)seek, slen);
    }
    st = iter_status(it, st, err);
    leveldb_iter_destroy(it);
    td_free(seek);
    td_free(val);
    return st;
}

/* ---- distinct values per key, for index-max-values (write side) ---- */

static uint64_t idx_val_hash(uint8_t type, const uint8_t *v, size_t len)
{
    /* the type byte is hashed in front of the value: "1" the string and 1 the int differ */
    uint8_t d[TD_HASH128_LEN];
    uint8_t buf[1 + 64];
    if (len <= 64) {
        buf[0] = type;
        memcpy(buf + 1, v, len);
        td_hash128(buf, len + 1, d);
    } else {
        td_hash128_seeded(v, len, type, d);
    }
    uint64_t h = load_le64(d);
    return h ? h : 1; /* 0 marks an empty slot */
}

/* Add h to k's set (unless present); *added says whether it was new. false on OOM. */
static bool idx_key_add(td_store *s, idx_key *k, uint64_t h, bool *added)
{
    *added = false;
    if (k->nslots) {
        for (size_t j = h & (k->nslots - 1);; j = (j + 1) & (k->nslots - 1)) {
            if (k->vals[j] == h) {
                return true;
            }
            if (k->vals[j] == 0) {
                break;
            }
        }
    }
    if (2 * ((size_t)k->n + 1) >= k->nslots) {
        size_t ns = k->nslots ? (size_t)k->nslots * 2 : 16;
        uint64_t *nv = td_calloc(ns, sizeof(*nv));
        if (!nv) {
            return false;
        }
        for (size_t i = 0; i < k->nslots; i++) {
            if (k->vals[i]) {
                size_t j = k->vals[i] & (ns - 1);
                while (nv[j]) {
                    j = (j + 1) & (ns - 1);
                }
                nv[j] = k->vals[i];
            }
        }
        s->idx_nslots += ns - k->nslots;
        td_free(k->vals);
        k->vals = nv;
        k->nslots = (uint32_t)ns;
    }
    size_t j = h & (k->nslots - 1);
    while (k->vals[j]) {
        j = (j + 1) & (k->nslots - 1);
    }
    k->vals[j] = h;
    k->n++;
    *added = true;
    return true;
}

typedef struct idx_load {
    td_store *s;
    idx_key *k;
    bool oom;
} idx_load;

static bool idx_load_one(void *ud, uint8_t type, const uint8_t *v, size_t len)
{
    idx_load *l = ud;
    bool added;
    if (!idx_key_add(l->s, l->k, idx_val_hash(type, v, len), &added)) {
        l->oom = true;
        return false;
    }
    return true;
}

/*
 * The tracking entry of the 'I' prefix p (tenant, scope, key), created and
 * filled from the index when missing: at most index-max-values + 1 distinct
 * values are read (a key that reached its limit before keeps it, since the
 * index then holds index-max-values of them). Caller holds write_lock.
 */
static td_status idx_key_get(td_store *s, const uint8_t *p, size_t plen, idx_key **out, td_err *err)
{
    uint8_t d[TD_HASH128_LEN];
    td_hash128(p, plen, d);
    uint64_t a = load_le64(d), b = load_le64(d + 8);
    if (a == 0 && b == 0) {
        a = 1;
    }
    size_t j = 0;
    for (j = a & (s->idx_cap - 1); s->idx_cap; j = (j + 1) & (s->idx_cap - 1)) {
        idx_key *k = &s->idx_keys[j];
        if (k->a == a && k->b == b) {
            *out = k;
            return TD_OK;
        }
        if (k->a == 0 && k->b == 0) {
            break;
        }
    }
    if (2 * (s->idx_nkeys + 1) > s->idx_cap) {
        /* grow (rehash) to keep probes short */
        size_t ncap = s->idx_cap ? s->idx_cap * 2 : 256;
        idx_key *nk = td_calloc(ncap, sizeof(*nk));
        if (!nk) {
            idx_keys_clear(s);
            return td_err_set(err, TD_NOMEM, "out of memory tracking index values");
        }
        for (size_t i = 0; i < s->idx_cap; i++) {
            idx_key *o = &s->idx_keys[i];
            if (o->a || o->b) {
                size_t x = o->a & (ncap - 1);
                while (nk[x].a || nk[x].b) {
                    x = (x + 1) & (ncap - 1);
                }
                nk[x] = *o;
            }
        }
        td_free(s->idx_keys);
        s->idx_keys = nk;
        s->idx_cap = ncap;
        for (j = a & (ncap - 1); nk[j].a || nk[j].b; j = (j + 1) & (ncap - 1)) {
        }
    }
    idx_key *k = &s->idx_keys[j];
    k->a = a;
    k->b = b;
    s->idx_nkeys++;
    idx_load l = {.s = s, .k = k};
    distinct_scan ds = {.prefix = p,
                        .plen = plen,
                        .typed = true,
                        .tail = TD__IDX_TAIL,
                        .max = (size_t)s->idx_max_values + 1,
                        .fn = idx_load_one,
                        .ud = &l};
    td_status st = distinct_run(s, &ds, err);
    if (!st && l.oom) {
        st = td_err_set(err, TD_NOMEM, "out of memory tracking index values");
    }
    if (st) {
        /* a half-loaded entry would under-count: drop them all */
        idx_keys_clear(s);
        return st;
    }
    *out = k;
    return TD_OK;
}

/* Per-write index counters, added to the metrics once the write succeeded. */
typedef struct idx_counts {
    uint64_t entries, too_long, too_many;
} idx_counts;

/* One index entry of a write, for grouping (put_index). */
typedef struct idx_ref {
    const td_batch *b;
    const td_idx_entry *e;
    uint32_t tix; /* the trace's position in the write's 'W' table of its tenant */
    uint32_t bucket;
    uint32_t tlen;
    uint32_t vid; /* same number for the same (tenant, scope, key, type, value) */
    uint32_t bi;  /* index of the batch */
} idx_ref;

/* (tenant, scope, key, type, value): the record's identity without bucket and trace. */
static int cmp_ref_value(const idx_ref *x, const idx_ref *y)
{
    if (x->b != y->b) {
        if (x->tlen != y->tlen) {
            return x->tlen < y->tlen ? -1 : 1;
        }
        int c = memcmp(x->b->tenant, y->b->tenant, x->tlen);
        if (c) {
            return c;
        }
    }
    const td_idx_entry *a = x->e, *b = y->e;
    if (a == b) {
        return 0;
    }
    if (a->scope != b->scope) {
        return a->scope < b->scope ? -1 : 1;
    }
    if (a->key_len != b->key_len) {
        return a->key_len < b->key_len ? -1 : 1;
    }
    /* the batch builder shares one copy of equal strings: pointers often decide */
    int c = a->key == b->key ? 0 : memcmp(a->key, b->key, a->key_len);
    if (c) {
        return c;
    }
    if (a->type != b->type) {
        return a->type < b->type ? -1 : 1;
    }
    if (a->val_len != b->val_len) {
        return a->val_len < b->val_len ? -1 : 1;
    }
    return a->val_len && a->val != b->val ? memcmp(a->val, b->val, a->val_len) : 0;
}

/*
 * The n < 8 bytes at p as a little-endian word, the value memcpy gave on the
 * little-endian hosts we run on, without a variable-length memcpy call (that
 * call was a large share of the hashing in the write profile): two overlapping
 * loads, whose shared bytes are equal, so OR-ing them is exact.
 */
static inline uint64_t load_tail(const uint8_t *p, size_t n)
{
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return (uint64_t)lo | (uint64_t)hi << (8 * (n - 4));
    }
    if (n == 0) {
        return 0;
    }
    return (uint64_t)p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) |
           (uint64_t)p[n - 1] << (8 * (n - 1));
}

/* Mix len bytes at p into h, 8 at a time (a cheap 64-bit multiply-xor hash). */
static uint64_t mix_bytes(uint64_t h, const uint8_t *p, size_t len)
{
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * m;
        h ^= h >> 29;
    }
    uint64_t w = load_tail(p + i, len - i);
    h = (h ^ w ^ (uint64_t)len << 56) * m; /* the length separates ("ab","c") and ("a","bc") */
    return h ^ (h >> 32);
}

static uint64_t ref_hash(const idx_ref *r)
{
    uint64_t h = (uint64_t)r->e->scope << 8 | r->e->type;
    h = mix_bytes(h, (const uint8_t *)r->b->tenant, r->tlen);
    h = mix_bytes(h, r->e->key, r->e->key_len);
    return mix_bytes(h, r->e->val, r->e->val_len);
}

/*
 * Number the distinct values of refs (vid) with a hash table, so that the sort
 * compares integers instead of strings. A batch whose builder numbered its
 * values (nvids) costs one hash lookup per distinct value instead of per
 * entry: its numbers map to the write's through map. false on OOM.
 */
static bool number_values(idx_ref *refs, size_t n, td_batch *const *batches, size_t nb)
{
    size_t nmap = 0, bound = 0;
    size_t *mbase = td_malloc((nb ? nb : 1) * sizeof(*mbase));
    if (!mbase) {
        return false;
    }
    for (size_t i = 0; i < nb; i++) {
        mbase[i] = nmap;
        size_t nv = batches[i]->nvids;
        if (nv > SIZE_MAX / 8 - nmap) {
            td_free(mbase);
            return false;
        }
        nmap += nv;
        bound += nv ? (nv < batches[i]->nidx ? nv : batches[i]->nidx) : batches[i]->nidx;
    }
    bound = bound < n ? bound : n;
    uint32_t *map = nmap ? td_malloc(nmap * sizeof(*map)) : NULL;
    size_t ns = 16;
    while (ns < 2 * bound) {
        ns *= 2;
    }
    uint32_t *slots = td_malloc(ns * sizeof(*slots)); /* ref index + 1, 0 = empty */
    if (!slots || (nmap && !map)) {
        td_free(slots);
        td_free(map);
        td_free(mbase);
        return false;
    }
    if (nmap) {
        memset(map, 0xff, nmap * sizeof(*map));
    }
    memset(slots, 0, ns * sizeof(*slots));
    uint32_t next = 0;
    for (size_t i = 0; i < n; i++) {
        const td_batch *b = batches[refs[i].bi];
        uint32_t *m = NULL;
        if (refs[i].e->vid < b->nvids) {
            m = &map[mbase[refs[i].bi] + refs[i].e->vid];
            if (*m != UINT32_MAX) {
                refs[i].vid = *m;
                continue;
            }
        }
        for (size_t j = ref_hash(&refs[i]) & (ns - 1);; j = (j + 1) & (ns - 1)) {
            if (slots[j] == 0) {
                slots[j] = (uint32_t)i + 1;
                refs[i].vid = next++;
                break;
            }
            const idx_ref *rep = &refs[slots[j] - 1];
            if (cmp_ref_value(rep, &refs[i]) == 0) {
                refs[i].vid = rep->vid;
                break;
            }
        }
        if (m) {
            *m = refs[i].vid;
        }
    }
    td_free(slots);
    td_free(map);
    td_free(mbase);
    return true;
}

/* Sort key of a ref: its value number, then its minute; i is the ref's index. */
typedef struct idx_sort {
    uint64_t k;   /* vid << 32 | bucket */
    uint32_t i;   /* the ref (nr < 2^32) */
    uint32_t tix; /* the ref's table position, here so records need not gather refs */
} idx_sort;

static int cmp_sort(const void *pa, const void *pb)
{
    const idx_sort *x = pa, *y = pb;
    return x->k < y->k ? -1 : x->k > y->k;
}

/* Whether x and y name the same (tenant, scope, key). */
static bool same_key(const idx_ref *x, const idx_ref *y)
{
    return x->tlen == y->tlen && memcmp(x->b->tenant, y->b->tenant, x->tlen) == 0 &&
           x->e->scope == y->e->scope && x->e->key_len == y->e->key_len &&
           memcmp(x->e->key, y->e->key, x->e->key_len) == 0;
}

/*
 * Put one 'W' record per tenant of the write: its distinct trace IDs in the
 * order the write's fragments first name them (FORMAT.md), and note each
 * fragment's position in it (tix[base of its batch + fragment]). Fragments of
 * a batch come in trace ID order and batches in write order, so the
 * positions of one value's traces mostly come out ascending already. Only
 * batches with index entries count. Caller holds write_lock.
 */
static td_status put_wtabs(leveldb_writebatch_t *wb, td_batch *const *batches, size_t n,
                           const size_t *base, uint32_t *tix, uint64_t seq, td_err *err)
{
    size_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        nf += batches[i]->nidx ? batches[i]->nfrags : 0;
    }
    if (nf == 0) {
        return TD_OK;
    }
    if (nf > UINT32_MAX / 4) {
        return td_err_set(err, TD_NOMEM, "too many fragments in one store write");
    }
    size_t ns = 16;
    while (ns < 2 * nf) {
        ns *= 2;
    }
    uint32_t *first = td_malloc(n * sizeof(*first)); /* tenant number -> a batch of it */
    uint32_t *npos = td_calloc(n, sizeof(*npos));    /* tenant number -> table length */
    uint32_t *slots = td_calloc(ns, sizeof(*slots)); /* distinct trace + 1, 0 = empty */
    uint32_t *dt = td_malloc(nf * sizeof(*dt));      /* distinct trace -> tenant number */
    uint8_t *ids = td_malloc(nf * 16);               /* distinct traces, first-seen order */
    uint8_t *tab = td_malloc(nf * 16);
    uint32_t *dpos = td_malloc(nf * sizeof(*dpos)); /* distinct trace -> its position */
    td_status st = TD_OK;
    if (!first || !npos || !slots || !dt || !ids || !tab || !dpos) {
        st = td_err_set(err, TD_NOMEM, "out of memory preparing a store write");
        goto out;
    }
    uint32_t ntenants = 0, nd = 0;
    for (size_t i = 0; i < n; i++) {
        const td_batch *b = batches[i];
        if (!b->nidx) {
            continue;
        }
        uint32_t t = 0;
        while (t < ntenants && strcmp(batches[first[t]]->tenant, b->tenant) != 0) {
            t++;
        }
        if (t == ntenants) {
            first[ntenants++] = (uint32_t)i;
        }
        for (size_t j = 0; j < b->nfrags; j++) {
            const uint8_t *id = b->frags[j].trace_id;
            uint64_t h = (load_le64(id) ^ load_le64(id + 8)) + t * 0x9e3779b97f4a7c15ull;
            h ^= h >> 29;
            size_t x = h & (ns - 1);
            for (; slots[x]; x = (x + 1) & (ns - 1)) {
                uint32_t d = slots[x] - 1;
                if (dt[d] == t && memcmp(ids + 16 * (size_t)d, id, 16) == 0) {
                    break;
                }
            }
            if (!slots[x]) {
                memcpy(ids + 16 * (size_t)nd, id, 16);
                dt[nd] = t;
                dpos[nd] = npos[t]++;
                slots[x] = ++nd;
            }
            /* a repeated trace gets the position of its first fragment */
            tix[base[i] + j] = dpos[slots[x] - 1];
        }
    }
    uint8_t key[TD__KEY_WTAB_MAX];
    for (uint32_t t = 0; t < ntenants; t++) {
        const char *tenant = batches[first[t]]->tenant;
        const uint8_t *val = ids;
        if (ntenants > 1) {
            size_t k = 0;
            for (uint32_t d = 0; d < nd; d++) {
                if (dt[d] == t) {
                    memcpy(tab + 16 * k++, ids + 16 * (size_t)d, 16);
                }
            }
            val = tab;
        }
        size_t tl = strlen(tenant);
        for (uint32_t c = 0; (size_t)c * TD__WTAB_CHUNK < npos[t]; c++) {
            size_t at = (size_t)c * TD__WTAB_CHUNK;
            size_t cn = npos[t] - at < TD__WTAB_CHUNK ? npos[t] - at : TD__WTAB_CHUNK;
            size_t kl = td__key_wtab(key, tenant, tl, seq, c);
            leveldb_writebatch_put(wb, (const char *)key, kl, (const char *)val + 16 * at, 16 * cn);
        }
    }
out:
    td_free(first);
    td_free(npos);
    td_free(slots);
    td_free(dt);
    td_free(ids);
    td_free(tab);
    td_free(dpos);
    return st;
}

/*
 * Sort p[0..n) ascending; tmp has room for n. Insertion sort for short lists,
 * else LSD radix sort with 8-bit digits, only as many passes as the largest
 * value needs (positions in a write table: usually two).
 */
static void sort_pos(uint32_t *p, uint32_t *tmp, size_t n)
{
    if (n < 32) {
        for (size_t i = 1; i < n; i++) {
            uint32_t v = p[i];
            size_t j = i;
            for (; j > 0 && p[j - 1] > v; j--) {
                p[j] = p[j - 1];
            }
            p[j] = v;
        }
        return;
    }
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++) {
        max |= p[i];
    }
    uint32_t *src = p, *dst = tmp;
    for (unsigned sh = 0; sh < 32 && (max >> sh); sh += 8) {
        size_t cnt[257] = {0};
        for (size_t i = 0; i < n; i++) {
            cnt[((src[i] >> sh) & 0xff) + 1]++;
        }
        for (size_t d = 0; d < 256; d++) {
            cnt[d + 1] += cnt[d];
        }
        for (size_t i = 0; i < n; i++) {
            dst[cnt[(src[i] >> sh) & 0xff]++] = src[i];
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != p) {
        memcpy(p, src, n * sizeof(*p));
    }
}

/*
 * Put the index records of a write into wb. Entries of all batches are grouped:
 * one 'I' record per (tenant, scope, key, type, value, minute) holding the
 * trace IDs of this write (FORMAT.md; a trace in several fragments of the
 * write may repeat, readers drop repeats), so a value shared
 * by many traces costs one LevelDB insert per write rather than one per trace;
 * a 'K' record per (scope, key, hour) not written recently. The limits are
 * applied per value group. seq makes the keys of this write unique. Caller
 * holds write_lock.
 */
static td_status put_index(td_store *s, leveldb_writebatch_t *wb, td_batch *const *batches,
                           size_t n, uint64_t seq, idx_counts *c, td_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += batches[i]->nidx;
    }
    if (total == 0) {
        return TD_OK;
    }
    size_t bytes, nfrags = 0;
    if (!td_size_mul(total, sizeof(idx_ref), &bytes) || n > SIZE_MAX / sizeof(size_t)) {
        return td_err_set(err, TD_NOMEM, "out of memory preparing a store write");
    }
    size_t *base = td_malloc(n * sizeof(*base));
    for (size_t i = 0; base && i < n; i++) {
        base[i] = nfrags;
        nfrags += batches[i]->nfrags;
    }
    uint32_t *tix = base ? td_malloc((nfrags ? nfrags : 1) * sizeof(*tix)) : NULL;
    idx_ref *refs = td_malloc(bytes);
    /* an 'I' key, and after it room for the 'K' key of the same (scope, key) */
    uint8_t *key = td_malloc(TD__KEY_IDX_MAX + TD__KEY_IDX_PREFIX_MAX + 4);
    td_buf ids = TD_BUF_INIT;
    if (!refs || !key || !tix) {
        td_free(base);
        td_free(tix);
        td_free(refs);
        td_free(key);
        return td_err_set(err, TD_NOMEM, "out of memory preparing a store write");
    }
    td_status wst = put_wtabs(wb, batches, n, base, tix, seq, err);
    if (wst) {
        td_free(base);
        td_free(tix);
        td_free(refs);
        td_free(key);
        return wst;
    }
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        const td_batch *b = batches[i];
        const uint32_t *btix = tix + base[i];
        uint32_t tlen = (uint32_t)strlen(b->tenant);
        for (size_t j = 0; j < b->nidx; j++) {
            const td_idx_entry *e = &b->idx[j];
            TD_ASSERT(e->frag < b->nfrags);
            if (e->key_len == 0 || e->key_len > TD__IDX_KEY_MAX) {
                continue; /* the builder does not emit these */
            }
            if (e->val_len > s->idx_max_value_len) {
                c->too_long++;
                continue;
            }
            const td_frag *f = &b->frags[e->frag];
            refs[nr++] =
                (idx_ref){b, e, btix[e->frag], td__sum_bucket(f->start_ns), tlen, 0, (uint32_t)i};
        }
    }
    td_free(base);
    /* number the values, so that grouping works on integers, not strings */
    idx_sort *order = nr ? td_malloc(nr * sizeof(*order)) : NULL;
    /* table positions of one record, and sort scratch after them */
    uint32_t *pos = nr ? td_malloc(2 * nr * sizeof(*pos)) : NULL;
    if (nr > UINT32_MAX - 1 || (nr && (!order || !pos)) || !number_values(refs, nr, batches, n)) {
        td_free(order);
        td_free(pos);
        td_free(tix);
        td_free(refs);
        td_free(key);
        return td_err_set(err, TD_NOMEM, "out of memory preparing a store write");
    }
    /*
     * Group by value with a counting sort (values are numbered 0..nv-1), then
     * order each group by minute; a group usually has one minute (data arrives
     * close to its time), which the check below finds without sorting.
     */
    uint32_t nv = 0;
    for (size_t i = 0; i < nr; i++) {
        nv = refs[i].vid + 1 > nv ? refs[i].vid + 1 : nv;
    }
    size_t *start = nr ? td_calloc((size_t)nv + 1, sizeof(*start)) : NULL;
    if (nr && !start) {
        td_free(order);
        td_free(pos);
        td_free(tix);
        td_free(refs);
        td_free(key);
        return td_err_set(err, TD_NOMEM, "out of memory preparing a store write");
    }
    for (size_t i = 0; i < nr; i++) {
        start[refs[i].vid + 1]++;
    }
    for (uint32_t v = 0; v < nv; v++) {
        start[v + 1] += start[v];
    }
    for (size_t i = 0; i < nr; i++) {
        size_t at = start[refs[i].vid]++;
        order[at] =
            (idx_sort){(uint64_t)refs[i].vid << 32 | refs[i].bucket, (uint32_t)i, refs[i].tix};
    }
    td_free(start);
    for (size_t i = 0; i < nr;) {
        size_t j = i + 1;
        bool one_minute = true;
        while (j < nr && order[j].k >> 32 == order[i].k >> 32) {
            one_minute = one_minute && order[j].k == order[i].k;
            j++;
        }
        if (!one_minute) {
            qsort(order + i, j - i, sizeof(*order), cmp_sort);
        }
        i = j;
    }
    td_status st = TD_OK;
    idx_key *k = NULL;
    const idx_ref *kref = NULL; /* the entry k was looked up for */
    for (size_t i = 0; i < nr && !st;) {
        /* one value group: order[i..j) */
        size_t j = i + 1;
        while (j < nr && order[j].k >> 32 == order[i].k >> 32) {
            j++;
        }
        const idx_ref *r = &refs[order[i].i];
        const td_idx_entry *e = r->e;
        size_t plen = td__key_idx_prefix(key, r->b->tenant, r->tlen, e->scope, e->key, e->key_len);
        if (!kref || !same_key(kref, r)) {
            if ((st = idx_key_get(s, key, plen, &k, err)) != TD_OK) {
                break;
            }
            kref = r;
        }
        uint64_t h = idx_val_hash(e->type, e->val, e->val_len);
        /* a known value is always indexed, so its entries stay complete after the cap */
        bool known = false;
        for (size_t x = h & (k->nslots ? k->nslots - 1 : 0); k->nslots;
             x = (x + 1) & (k->nslots - 1)) {
            if (k->vals[x] == h) {
                known = true;
                break;
            }
            if (k->vals[x] == 0) {
                break;
            }
        }
        if (!known && k->n >= s->idx_max_values) {
            c->too_many += j - i;
            i = j;
            continue;
        }
        bool added;
        if (!known && !idx_key_add(s, k, h, &added)) {
            st = td_err_set(err, TD_NOMEM, "out of memory tracking index values");
            break;
        }
        key[plen] = e->type;
        size_t vend = plen + 1 + td__esc_put(key + plen + 1, e->val, e->val_len);
        uint32_t last_hour = UINT32_MAX;
        for (size_t x = i; x < j;) {
            /* one minute: order[x..y) */
            size_t y = x;
            uint32_t bucket = (uint32_t)order[x].k;
            td_buf_reset(&ids);
            if (!td_buf_try_grow(&ids, 5 * (j - x))) {
                st = td_err_set(err, TD_NOMEM, "out of memory preparing a store write");
                break;
            }
            /* the traces' table positions, ascending and distinct, gap-coded */
            bool asc = true;
            while (y < j && (uint32_t)order[y].k == bucket) {
                pos[y - x] = order[y].tix;
                asc = asc && (y == x || pos[y - x] > pos[y - x - 1]);
                y++;
            }
            size_t np = y - x;
            if (!asc) {
                sort_pos(pos, pos + nr, np);
            }
            uint8_t *out = (uint8_t *)ids.data;
            size_t olen = td__varint_put(out, pos[0]);
            for (size_t z = 1; z < np; z++) {
                if (pos[z] != pos[z - 1]) {
                    olen += td__varint_put(out + olen, pos[z] - pos[z - 1] - 1);
                }
            }
            td_buf_setlen(&ids, olen);
            c->entries += np;
            td__put_be32(key + vend, bucket);
            td__put_be64(key + vend + 4, seq);
            leveldb_writebatch_put(wb, (const char *)key, vend + TD__IDX_TAIL, ids.data, ids.len);
            /* the tag name of this hour, unless written recently */
            uint32_t hour = bucket / 60;
            if (hour != last_hour) {
                uint8_t *tk = key + vend + TD__IDX_TAIL; /* scratch after the 'I' key */
                size_t tkl =
                    td__key_tag(tk, r->b->tenant, r->tlen, e->scope, e->key, e->key_len, hour);
                if (!seen_test_and_set(s->tag_seen, TAG_SEEN_SETS, tk, tkl)) {
                    leveldb_writebatch_put(wb, (const char *)tk, tkl, "", 0);
                }
                last_hour = hour;
            }
            x = y;
        }
        i = j;
    }
    td_buf_release(&ids);
    td_free(order);
    td_free(pos);
    td_free(tix);
    td_free(refs);
    td_free(key);
    return st;
}

td_status td_store_write(td_store *s, td_batch *const *batches, size_t n, td_err *err)
{
    size_t nfrags = 0;
    for (size_t i = 0; i < n; i++) {
        nfrags += batches[i]->nfrags;
    }
    if (nfrags == 0) {
        return TD_OK;
    }
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    td_buf val = TD_BUF_INIT;
    uint8_t key[TD__KEY_TRACE_MAX > TD__KEY_RES_MAX ? TD__KEY_TRACE_MAX : TD__KEY_RES_MAX];
    td_status st = TD_OK;

    uint64_t res_put = 0, res_cached = 0;
    idx_counts ic = {0};
    pthread_mutex_lock(&s->write_lock);
    if (s->idx_nkeys > IDX_KEYS || s->idx_nslots > IDX_VAL_SLOTS) {
        /* over the bounds: start over; keys are rebuilt from the index when next written */
        idx_keys_clear(s);
    }
    uint64_t seq = s->next_seq;
    for (size_t i = 0; i < n && !st; i++) {
        const td_batch *b = batches[i];
        size_t tlen = strlen(b->tenant);
        TD_ASSERT(tlen <= TD_TENANT_MAX);
        /*
         * Resource records first. Putting one again is idempotent (same key, same
         * bytes), so the recently-written table only saves bytes; being in the
         * same write batch as the fragments, a record is durable before or with
         * every fragment that names it.
         */
        for (size_t j = 0; j < b->nres; j++) {
            const td_res *r = &b->res[j];
            size_t klen = td__key_res(key, b->tenant, tlen, r->hash);
            if (seen_test_and_set(s->res_seen, RES_SEEN_SETS, key, klen)) {
                res_cached++;
            } else {
                leveldb_writebatch_put(wb, (const char *)key, klen, (const char *)r->data, r->len);
                res_put++;
            }
        }
        for (size_t j = 0; j < b->nfrags; j++) {
            const td_frag *f = &b->frags[j];
            const uint8_t *res_hash = NULL;
            if (f->res_index >= 0) {
                TD_ASSERT((size_t)f->res_index < b->nres);
                res_hash = b->res[f->res_index].hash;
            }
            size_t klen = td__key_trace(key, b->tenant, tlen, f->trace_id, f->start_ns, seq++);
            /* LevelDB copies key and value into the batch, so one scratch buffer serves all */
            td_buf_reset(&val);
            if (!td_buf_try_grow(&val, (size_t)TD__VAL_V2_HDR_MAX + f->len)) {
                st = td_err_set(err, TD_NOMEM, "out of memory preparing a store write");
                break;
            }
            size_t hlen = td__val_header_v2((uint8_t *)val.data, f->end_ns, f->nspans, res_hash);
            if (f->len) {
                memcpy(val.data + hlen, f->data, f->len);
            }
            leveldb_writebatch_put(wb, (const char *)key, klen, val.data, hlen + f->len);
            /* its search summary, same seq, same atomic write */
            uint8_t skey[TD__KEY_SUM_MAX], sval[TD__SUM_VAL_MAX];
            size_t sklen = td__key_sum(skey, b->tenant, tlen, td__sum_bucket(f->start_ns),
                                       f->trace_id, seq - 1);
            size_t svlen = td__val_sum(sval, f);
            leveldb_writebatch_put(wb, (const char *)skey, sklen, (const char *)sval, svlen);
        }
    }
    if (!st) {
        /* the first seq of this write: unique to it, so its index keys are too */
        st = put_index(s, wb, batches, n, s->next_seq, &ic, err);
    }
    if (!st) {
        /*
         * Fragments without index entries (batches not built by td_batch_build,
         * e.g. tests or imports) leave the index incomplete for their time range:
         * widen the recorded hole, in this same write, and in memory before the
         * write is visible, so no lookup can see the fragments but not the hole.
         */
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t i = 0; i < n; i++) {
            const td_batch *b = batches[i];
            for (size_t j = 0; b->nidx == 0 && j < b->nfrags; j++) {
                lo = b->frags[j].start_ns < lo ? b->frags[j].start_ns : lo;
                hi = b->frags[j].end_ns > hi ? b->frags[j].end_ns : hi;
                hi = b->frags[j].start_ns > hi ? b->frags[j].start_ns : hi;
            }
        }
        pthread_mutex_lock(&s->hole_lock);
        if (lo <= hi && (lo < s->hole_lo || hi > s->hole_hi)) {
            s->hole_lo = lo < s->hole_lo ? lo : s->hole_lo;
            s->hole_hi = hi > s->hole_hi ? hi : s->hole_hi;
            uint8_t hv[16];
            td__put_be64(hv, s->hole_lo);
            td__put_be64(hv + 8, s->hole_hi);
            leveldb_writebatch_put(wb, TD__KEY_META_IDX_HOLE, sizeof(TD__KEY_META_IDX_HOLE) - 1,
                                   (const char *)hv, sizeof(hv));
        }
        pthread_mutex_unlock(&s->hole_lock);
        uint8_t mark[8];
        td__put_be64(mark, seq);
        leveldb_writebatch_put(wb, TD__KEY_META_SEQ, sizeof(TD__KEY_META_SEQ) - 1,
                               (const char *)mark, sizeof(mark));
        char *lerr = NULL;
        leveldb_write(s->l.db, s->l.wopts, wb, &lerr);
        if (lerr) {
            st = td_err_set(err, TD_IO, "store write failed: %s", lerr);
            leveldb_free(lerr);
        }
    }
    /* numbers handed out stay used even when the write failed: uniqueness is all we need */
    s->next_seq = seq;
    if (st) {
        /* resources noted as written above were not: forget them all (a rare path) */
        memset(s->res_seen, 0, sizeof(s->res_seen));
        /* likewise tag names and the distinct values counted for entries not written */
        memset(s->tag_seen, 0, sizeof(s->tag_seen));
        idx_keys_clear(s);
    }
    pthread_mutex_unlock(&s->write_lock);

    td_buf_release(&val);
    leveldb_writebatch_destroy(wb);
    if (!st) {
        td_metric_add(s->m_res_written, res_put);
        td_metric_add(s->m_res_cached, res_cached);
        td_metric_add(s->m_idx_entries, ic.entries);
        td_metric_add(s->m_idx_too_long, ic.too_long);
        td_metric_add(s->m_idx_too_many, ic.too_many);
    }
    return st;
}

/* ---- read ---- */

/* Resources fetched during one td_store_trace_get (a trace has few services). */
typedef struct res_cache_ent {
    uint8_t hash[16];
    char *data; /* from leveldb_get: leveldb_free */
    size_t len;
} res_cache_ent;

typedef struct res_cache {
    res_cache_ent *e;
    size_t n, cap;
} res_cache;

static void res_cache_release(res_cache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        leveldb_free(c->e[i].data);
    }
    td_free(c->e);
}

/* The resource record named by hash, from the cache or the store. */
static td_status res_lookup(td_store *s, res_cache *c, const char *tenant, size_t tlen,
                            const uint8_t hash[16], const res_cache_ent **out, td_err *err)
{
    for (size_t i = 0; i < c->n; i++) {
        if (memcmp(c->e[i].hash, hash, 16) == 0) {
            *out = &c->e[i];
            return TD_OK;
        }
    }
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 4;
        res_cache_ent *ne = td_realloc(c->e, ncap * sizeof(*ne));
        if (!ne) {
            return td_err_set(err, TD_NOMEM, "out of memory reading a trace");
        }
        c->e = ne;
        c->cap = ncap;
    }
    uint8_t key[TD__KEY_RES_MAX];
    size_t klen = td__key_res(key, tenant, tlen, hash);
    char *lerr = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(s->l.db, s->l.ropts, (const char *)key, klen, &vlen, &lerr);
    if (lerr) {
        td_status st = td_err_set(err, TD_IO, "store read failed: %s", lerr);
        leveldb_free(lerr);
        return st;
    }
    if (!v) {
        /* (LevelDB copies a found value with malloc, non-NULL on glibc even when empty) */
        return td_err_set(err, TD_CORRUPT, "a stored fragment names a missing resource record");
    }
    res_cache_ent *e = &c->e[c->n++];
    memcpy(e->hash, hash, 16);
    e->data = v;
    e->len = vlen;
    *out = e;
    return TD_OK;
}

/* Protobuf varint of v into p (at most 10 bytes); returns its length. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/*
 * A whole ResourceSpans from a fragment stored without its resource: field 1
 * (tag 0x0a, length, Resource bytes) followed by the fragment. Protobuf parsers
 * accept fields in any order, so this decodes exactly as the original did.
 */
static td_status join_resource(td_buf *out, const res_cache_ent *r, const td__val *v, td_err *err)
{
    size_t need;
    if (!td_size_add(r->len, v->frag_len, &need) || !td_size_add(need, 11, &need)) {
        return td_err_set(err, TD_CORRUPT, "a stored fragment is too large");
    }
    td_buf_reset(out);
    if (!td_buf_try_grow(out, need)) {
        return td_err_set(err, TD_NOMEM, "out of memory reading a trace");
    }
    uint8_t *p = (uint8_t *)out->data;
    size_t n = 0;
    p[n++] = 0x0a; /* field 1, length-delimited */
    n += put_varint(p + n, r->len);
    if (r->len) {
        memcpy(p + n, r->data, r->len);
        n += r->len;
    }
    if (v->frag_len) {
        memcpy(p + n, v->frag, v->frag_len);
        n += v->frag_len;
    }
    td_buf_setlen(out, n);
    return TD_OK;
}

td_status td_store_trace_get(td_store *s, const char *tenant, const uint8_t trace_id[16],
                             uint64_t start_ns, uint64_t end_ns, td_frag_cb cb, void *ud,
                             td_err *err)
{
    size_t tlen = strlen(tenant);
    if (tlen > TD_TENANT_MAX) {
        return td_err_set(err, TD_INVALID, "tenant ID is longer than %d bytes", TD_TENANT_MAX);
    }
    uint8_t prefix[TD__KEY_TRACE_PREFIX_MAX];
    size_t plen = td__key_trace_prefix(prefix, tenant, tlen, trace_id);

    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    size_t visited = 0;
    td_status st = TD_OK;
    res_cache rc = {0};
    td_buf joined = TD_BUF_INIT;
    for (leveldb_iter_seek(it, (const char *)prefix, plen); leveldb_iter_valid(it);
         leveldb_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0) {
            break; /* past the last fragment of this trace */
        }
        uint64_t frag_start, seq;
        td__val val;
        if (!td__key_trace_tail(k, klen, plen, &frag_start, &seq)) {
            st = td_err_set(err, TD_CORRUPT, "malformed store key (%zu bytes) in a trace", klen);
            break;
        }
        if (end_ns && frag_start > end_ns) {
            break; /* keys are in start order: no later fragment can overlap */
        }
        const uint8_t *v = (const uint8_t *)leveldb_iter_value(it, &vlen);
        if (!td__val_parse(v, vlen, &val)) {
            st = td_err_set(err, TD_CORRUPT, "malformed stored fragment (%zu bytes)", vlen);
            break;
        }
        if (end_ns && val.end_ns < start_ns) {
            continue;
        }
        const uint8_t *data = val.frag;
        size_t len = val.frag_len;
        if (val.res_hash) {
            const res_cache_ent *r = NULL;
            st = res_lookup(s, &rc, tenant, tlen, val.res_hash, &r, err);
            if (!st) {
                st = join_resource(&joined, r, &val, err);
            }
            if (st) {
                break;
            }
            data = (const uint8_t *)joined.data;
            len = joined.len;
        }
        visited++;
        st = cb(ud, data, len, err);
        if (st) {
            break;
        }
    }
    if (!st) {
        char *lerr = NULL;
        leveldb_iter_get_error(it, &lerr);
        if (lerr) {
            st = td_err_set(err, TD_IO, "store read failed: %s", lerr);
            leveldb_free(lerr);
        }
    }
    leveldb_iter_destroy(it);
    res_cache_release(&rc);
    td_buf_release(&joined);
    if (!st && !visited) {
        st = td_err_set(err, TD_NOT_FOUND, "trace not found");
    }
    return st;
}

td_status td_store_summaries(td_store *s, const char *tenant, uint64_t start_ns, uint64_t end_ns,
                             uint64_t max_scan, td_summary_cb cb, void *ud, uint64_t *scanned,
                             bool *truncated, td_err *err)
{
    *scanned = 0;
    *truncated = false;
    size_t tlen = strlen(tenant);
    if (tlen > TD_TENANT_MAX) {
        return td_err_set(err, TD_INVALID, "tenant ID is longer than %d bytes", TD_TENANT_MAX);
    }
    if (end_ns < start_ns) {
        return TD_OK;
    }
    uint32_t b_lo = td__sum_bucket(start_ns), b_hi = td__sum_bucket(end_ns);
    uint8_t key[TD__KEY_SUM_PREFIX_MAX + 4];
    size_t plen = td__key_sum_prefix(key, tenant, tlen);
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    /* position on the last key < (prefix | b_hi + 1): the newest record of the range */
    /* buckets are at most UINT64_MAX / 60e9 (about 3.1e8): b_hi + 1 cannot wrap */
    td__put_be32(key + plen, b_hi + 1);
    leveldb_iter_seek(it, (const char *)key, plen + 4);
    if (leveldb_iter_valid(it)) {
        leveldb_iter_prev(it);
    } else {
        leveldb_iter_seek_to_last(it);
    }
    td_status st = TD_OK;
    for (; leveldb_iter_valid(it); leveldb_iter_prev(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, key, plen) != 0) {
            break; /* left this tenant's summaries */
        }
        if (klen != plen + 28) {
            st = td_err_set(err, TD_CORRUPT, "malformed summary key (%zu bytes)", klen);
            break;
        }
        uint32_t bucket = td__get_be32(k + plen);
        if (bucket < b_lo) {
            break;
        }
        if (max_scan && *scanned >= max_scan) {
            *truncated = true;
            break;
        }
        (*scanned)++;
        td_store_summary sum;
        const uint8_t *v = (const uint8_t *)leveldb_iter_value(it, &vlen);
        if (!td__val_sum_parse(v, vlen, &sum)) {
            st = td_err_set(err, TD_CORRUPT, "malformed summary value (%zu bytes)", vlen);
            break;
        }
        if (sum.start_ns > end_ns || sum.end_ns < start_ns) {
            continue;
        }
        memcpy(sum.trace_id, k + plen + 4, 16);
        if (!cb(ud, &sum)) {
            break;
        }
    }
    if (!st) {
        char *lerr = NULL;
        leveldb_iter_get_error(it, &lerr);
        if (lerr) {
            st = td_err_set(err, TD_IO, "store read failed: %s", lerr);
            leveldb_free(lerr);
        }
    }
    leveldb_iter_destroy(it);
    return st;
}

uint64_t td_store_approx_size(td_store *s)
{
    /* every key starts with a record type below 0xff, so this range covers them all */
    static const char limit[8] = {'\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff'};
    const char *start_key = "";
    const char *limit_key = limit;
    size_t start_len = 0, limit_len = sizeof(limit);
    uint64_t size = 0;
    leveldb_approximate_sizes(s->l.db, 1, &start_key, &start_len, &limit_key, &limit_len, &size);
    return size;
}

/* ---- secondary index reads ---- */

typedef struct name_visit {
    uint8_t scope;
    td_tag_name_cb cb;
    void *ud;
} name_visit;

static bool name_visit_one(void *ud, uint8_t type, const uint8_t *v, size_t len)
{
    (void)type;
    name_visit *n = ud;
    return n->cb(n->ud, n->scope, (const char *)v, len);
}

td_status td_store_tag_names(td_store *s, const char *tenant, uint8_t scope, uint64_t start_ns,
                             uint64_t end_ns, size_t max, td_tag_name_cb cb, void *ud,
                             uint64_t *inspected, td_err *err)
{
    size_t tlen = strlen(tenant);
    if (tlen > TD_TENANT_MAX) {
        return td_err_set(err, TD_INVALID, "tenant ID is longer than %d bytes", TD_TENANT_MAX);
    }
    if (end_ns && end_ns < start_ns) {
        return TD_OK;
    }
    uint8_t prefix[3 + TD_TENANT_MAX];
    name_visit nv = {scope, cb, ud};
    distinct_scan ds = {.prefix = prefix,
                        .plen = td__key_tag_prefix(prefix, tenant, tlen, scope),
                        .tail = TD__TAG_TAIL,
                        .windowed = end_ns > 0,
                        .lo = td__tag_bucket(start_ns),
                        .hi = td__tag_bucket(end_ns),
                        .max = max,
                        .inspected = inspected,
                        .fn = name_visit_one,
                        .ud = &nv};
    return distinct_run(s, &ds, err);
}

typedef struct value_visit {
    td_tag_value_cb cb;
    void *ud;
} value_visit;

static bool value_visit_one(void *ud, uint8_t type, const uint8_t *v, size_t len)
{
    value_visit *x = ud;
    return x->cb(x->ud, type, v, len);
}

/* Validate tenant and key of an index read; TD_INVALID with a message otherwise. */
static td_status idx_args(const char *tenant, size_t *tlen, size_t key_len, td_err *err)
{
    *tlen = strlen(tenant);
    if (*tlen > TD_TENANT_MAX) {
        return td_err_set(err, TD_INVALID, "tenant ID is longer than %d bytes", TD_TENANT_MAX);
    }
    if (key_len > TD__IDX_KEY_MAX) {
        return td_err_set(err, TD_INVALID, "tag name is longer than %d bytes", TD__IDX_KEY_MAX);
    }
    return TD_OK;
}

td_status td_store_tag_values(td_store *s, const char *tenant, uint8_t scope, const char *key,
                              size_t key_len, uint64_t start_ns, uint64_t end_ns, size_t max,
                              td_tag_value_cb cb, void *ud, uint64_t *inspected, td_err *err)
{
    size_t tlen;
    td_status st = idx_args(tenant, &tlen, key_len, err);
    if (st) {
        return st;
    }
    if (key_len == 0 || (end_ns && end_ns < start_ns)) {
        return TD_OK; /* empty keys are never indexed */
    }
    uint8_t prefix[TD__KEY_IDX_PREFIX_MAX];
    value_visit vv = {cb, ud};
    distinct_scan ds = {
        .prefix = prefix,
        .plen = td__key_idx_prefix(prefix, tenant, tlen, scope, (const uint8_t *)key, key_len),
        .typed = true,
        .tail = TD__IDX_TAIL,
        .windowed = end_ns > 0,
        .lo = td__sum_bucket(start_ns),
        .hi = td__sum_bucket(end_ns),
        .max = max,
        .inspected = inspected,
        .fn = value_visit_one,
        .ud = &vv};
    return distinct_run(s, &ds, err);
}

static bool count_one(void *ud, uint8_t type, const uint8_t *v, size_t len)
{
    (void)type;
    (void)v;
    (void)len;
    (*(size_t *)ud)++;
    return true;
}

/* One index hit collected by td_store_index_traces before sorting. */
typedef struct idx_hit {
    uint32_t bucket;
    uint32_t tix; /* position in the 'W' table of write seq */
    uint64_t seq;
    uint8_t id[16]; /* filled from the table */
} idx_hit;

static int cmp_hit_table(const void *pa, const void *pb)
{
    const idx_hit *a = pa, *b = pb;
    if (a->seq != b->seq) {
        return a->seq < b->seq ? -1 : 1;
    }
    return a->tix < b->tix ? -1 : a->tix > b->tix;
}

/*
 * Fill the trace IDs of hits[0..n) from the writes' 'W' tables: sorted by
 * write and position, each chunk of a table that holds a hit is read once (one
 * leveldb_get of at most 1 KiB) and released before the next.
 */
static td_status resolve_hits(td_store *s, const char *tenant, size_t tlen, idx_hit *hits, size_t n,
                              td_err *err)
{
    if (n > 1) {
        qsort(hits, n, sizeof(*hits), cmp_hit_table);
    }
    uint8_t key[TD__KEY_WTAB_MAX];
    for (size_t i = 0; i < n;) {
        uint32_t chunk = hits[i].tix / TD__WTAB_CHUNK;
        size_t kl = td__key_wtab(key, tenant, tlen, hits[i].seq, chunk);
        char *lerr = NULL;
        size_t vlen = 0;
        char *v = leveldb_get(s->l.db, s->l.ropts, (const char *)key, kl, &vlen, &lerr);
        if (lerr) {
            td_status st = td_err_set(err, TD_IO, "store read failed: %s", lerr);
            leveldb_free(lerr);
            return st;
        }
        if (!v || vlen % 16 != 0) {
            if (v) {
                leveldb_free(v);
            }
            return td_err_set(err, TD_CORRUPT, "index names a missing or malformed write table");
        }
        size_t ntab = vlen / 16;
        uint64_t seq = hits[i].seq;
        for (; i < n && hits[i].seq == seq && hits[i].tix / TD__WTAB_CHUNK == chunk; i++) {
            uint32_t off = hits[i].tix % TD__WTAB_CHUNK;
            if (off >= ntab) {
                leveldb_free(v);
                return td_err_set(err, TD_CORRUPT, "index position beyond its write table");
            }
            memcpy(hits[i].id, v + 16 * (size_t)off, 16);
        }
        leveldb_free(v);
    }
    return TD_OK;
}

static int cmp_hit_desc(const void *pa, const void *pb)
{
    const idx_hit *a = pa, *b = pb;
    if (a->bucket != b->bucket) {
        return a->bucket < b->bucket ? 1 : -1;
    }
    return -memcmp(a->id, b->id, 16);
}

/* Compare a value with a bound, bytewise with the shorter one first on a tie. */
static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) {
        return c;
    }
    return alen < blen ? -1 : alen > blen;
}

td_status td_store_index_traces(td_store *s, const char *tenant, uint8_t scope, const char *key,
                                size_t key_len, uint8_t type, const uint8_t *lo, size_t lo_len,
                                const uint8_t *hi, size_t hi_len, uint64_t start_ns,
                                uint64_t end_ns, uint64_t max_scan, td_index_trace_cb cb, void *ud,
                                bool *exact, bool *truncated, td_err *err)
{
    *exact = false;
    *truncated = false;
    size_t tlen;
    td_status st = idx_args(tenant, &tlen, key_len, err);
    if (st) {
        return st;
    }
    if (lo_len > TD__IDX_VAL_MAX || hi_len > TD__IDX_VAL_MAX) {
        return TD_OK; /* never indexed: inexact */
    }
    pthread_mutex_lock(&s->hole_lock);
    bool hole = s->hole_lo <= s->hole_hi && start_ns <= s->hole_hi && end_ns >= s->hole_lo;
    pthread_mutex_unlock(&s->hole_lock);
    if (start_ns < s->idx_since || hole || key_len == 0) {
        /* the window reaches back before indexing began, or holds unindexed fragments */
        return TD_OK;
    }
    bool eq = lo_len == hi_len && (lo_len == 0 || memcmp(lo, hi, lo_len) == 0);
    bool fixed = type == TD_IDX_INT || type == TD_IDX_FLOAT || type == TD_IDX_BOOL ||
                 type == TD_IDX_DURCLASS;
    if ((eq && lo_len > s->idx_max_value_len) || (!eq && !fixed)) {
        /* a too-long value, or a string range that may hold one */
        return TD_OK;
    }
    if (end_ns < start_ns || cmp_bytes(lo, lo_len, hi, hi_len) > 0) {
        *exact = true;
        return TD_OK;
    }
    uint8_t *k0 = td_malloc(TD__KEY_IDX_MAX);
    uint8_t *val = td_malloc(TD__IDX_VAL_MAX);
    idx_hit *hits = NULL;
    size_t nhits = 0, cap = 0;
    if (!k0 || !val) {
        td_free(k0);
        td_free(val);
        return td_err_set(err, TD_NOMEM, "out of memory reading the index");
    }
    size_t plen = td__key_idx_prefix(k0, tenant, tlen, scope, (const uint8_t *)key, key_len);

    /*
     * Exactness against index-max-values: a value present in the index was
     * admitted on first sight, and admitted values are always indexed, so its
     * entries are complete. Otherwise (absent value, or a range) the key must be
     * below its limit, counted with at most index-max-values seeks.
     */
    bool need_count = !eq;
    if (eq) {
        size_t n = plen;
        k0[n++] = type;
        n += td__esc_put(k0 + n, lo, lo_len);
        leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
        leveldb_iter_seek(it, (const char *)k0, n);
        bool present = false;
        if (leveldb_iter_valid(it)) {
            size_t klen;
            const char *k = leveldb_iter_key(it, &klen);
            present = klen == n + TD__IDX_TAIL && memcmp(k, k0, n) == 0;
        }
        st = iter_status(it, TD_OK, err);
        leveldb_iter_destroy(it);
        need_count = !st && !present;
    }
    if (!st && need_count) {
        size_t count = 0;
        distinct_scan ds = {.prefix = k0,
                            .plen = plen,
                            .typed = true,
                            .tail = TD__IDX_TAIL,
                            .max = (size_t)s->idx_max_values,
                            .fn = count_one,
                            .ud = &count};
        st = distinct_run(s, &ds, err);
        if (!st && count >= s->idx_max_values) {
            goto done; /* the key is at its limit: values may be missing */
        }
    }
    if (st) {
        goto done;
    }
    *exact = true;

    /*
     * Walk the distinct values from lo to hi (one seek each) and, per value, its
     * entries in the window's buckets backwards; then order all hits newest
     * bucket first. For lo == hi this is one backward range scan.
     */
    uint32_t b_lo = td__sum_bucket(start_ns), b_hi = td__sum_bucket(end_ns);
    uint8_t *k1 = td_malloc(TD__KEY_IDX_MAX);
    if (!k1) {
        st = td_err_set(err, TD_NOMEM, "out of memory reading the index");
        goto done;
    }
    leveldb_iterator_t *vit = leveldb_create_iterator(s->l.db, s->l.ropts);
    leveldb_iterator_t *eit = leveldb_create_iterator(s->l.db, s->l.ropts);
    uint64_t nread = 0;
    bool old_fmt = false;
    size_t n = plen;
    k0[n++] = type;
    n += td__esc_put(k0 + n, lo, lo_len);
    leveldb_iter_seek(vit, (const char *)k0, n);
    bool stop = false;
    while (!stop && !st && leveldb_iter_valid(vit)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(vit, &klen);
        if (klen <= plen || memcmp(k, k0, plen) != 0 || k[plen] != type) {
            break;
        }
        size_t pos = plen + 1, vlen;
        if (!td__esc_get(k, klen, &pos, val, TD__IDX_VAL_MAX, &vlen) ||
            klen != pos + TD__IDX_TAIL) {
            st = td_err_set(err, TD_CORRUPT, "malformed index key (%zu bytes)", klen);
            break;
        }
        if (cmp_bytes(val, vlen, hi, hi_len) > 0) {
            break;
        }
        size_t end = pos;
        memcpy(k1, k, end);
        /* newest entry of this value in the window: the last key < value | b_hi + 1 */
        td__put_be32(k1 + end, b_hi + 1);
        leveldb_iter_seek(eit, (const char *)k1, end + 4);
        if (leveldb_iter_valid(eit)) {
            leveldb_iter_prev(eit);
        } else {
            leveldb_iter_seek_to_last(eit);
        }
        for (; leveldb_iter_valid(eit) && !stop && !st; leveldb_iter_prev(eit)) {
            size_t elen, vlen2;
            const uint8_t *e = (const uint8_t *)leveldb_iter_key(eit, &elen);
            if (elen != end + TD__IDX_TAIL || memcmp(e, k1, end) != 0) {
                break;
            }
            uint32_t bucket = td__get_be32(e + end);
            if (bucket < b_lo) {
                break;
            }
            uint64_t wseq = td__get_be64(e + end + 4);
            if (wseq < s->idx_fmt_seq) {
                old_fmt = true; /* an older index format (FORMAT.md, Midxfmt) */
                stop = true;
                break;
            }
            const uint8_t *ids = (const uint8_t *)leveldb_iter_value(eit, &vlen2);
            if (vlen2 == 0) {
                st = td_err_set(err, TD_CORRUPT, "malformed index value (%zu bytes)", vlen2);
                break;
            }
            size_t vpos = 0;
            uint32_t tix = 0;
            for (size_t x = 0; vpos < vlen2; x++) {
                uint32_t g;
                if (!td__varint_get(ids, vlen2, &vpos, &g) ||
                    (x && (uint64_t)tix + 1 + g > UINT32_MAX)) {
                    st = td_err_set(err, TD_CORRUPT, "malformed index value (%zu bytes)", vlen2);
                    break;
                }
                tix = x ? tix + 1 + g : g;
                if (max_scan && nread >= max_scan) {
                    *truncated = true;
                    stop = true;
                    break;
                }
                nread++;
                if (nhits == cap) {
                    size_t ncap = cap ? cap * 2 : 64;
                    idx_hit *nh = td_realloc(hits, ncap * sizeof(*nh));
                    if (!nh) {
                        st = td_err_set(err, TD_NOMEM, "out of memory reading the index");
                        break;
                    }
                    hits = nh;
                    cap = ncap;
                }
                hits[nhits].bucket = bucket;
                hits[nhits].tix = tix;
                hits[nhits].seq = wseq;
                nhits++;
            }
        }
        st = iter_status(eit, st, err);
        if (stop || st || eq) {
            break;
        }
        size_t slen = td__esc_successor(k1, end);
        leveldb_iter_seek(vit, (const char *)k1, slen);
    }
    st = iter_status(vit, st, err);
    leveldb_iter_destroy(vit);
    leveldb_iter_destroy(eit);
    td_free(k1);
    if (!st && old_fmt) {
        *exact = false;
        goto done;
    }
    if (!st && *truncated) {
        /* an incomplete answer is of no use to the planner: skip reading its tables */
        goto done;
    }
    if (!st) {
        st = resolve_hits(s, tenant, tlen, hits, nhits, err);
    }
    if (!st) {
        if (nhits > 1) {
            qsort(hits, nhits, sizeof(*hits), cmp_hit_desc);
        }
        for (size_t i = 0; i < nhits; i++) {
            if (i > 0 && hits[i].bucket == hits[i - 1].bucket &&
                memcmp(hits[i].id, hits[i - 1].id, 16) == 0) {
                continue; /* the same trace and minute from two writes */
            }
            if (!cb(ud, hits[i].id, hits[i].bucket)) {
                break;
            }
        }
    }
done:
    if (st) {
        *exact = false;
    }
    td_free(hits);
    td_free(k0);
    td_free(val);
    return st;
}

uint64_t td_store_approx_size_type(td_store *s, uint8_t rec_type)
{
    char lo = (char)rec_type, hi = (char)(rec_type + 1);
    const char *start_key = &lo, *limit_key = &hi;
    size_t start_len = 1, limit_len = 1;
    uint64_t size = 0;
    if (rec_type == 0xff) {
        static const char ff[8] = {'\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff'};
        limit_key = ff;
        limit_len = sizeof(ff);
    }
    leveldb_approximate_sizes(s->l.db, 1, &start_key, &start_len, &limit_key, &limit_len, &size);
    return size;
}

/* ---- retention (store/FORMAT.md, "Retention") ---- */

/*
 * Deletes gathered into bounded LevelDB write batches. A batch holding 'I' or
 * 'K' deletes is committed under write_lock, and in the same critical section
 * (FORMAT.md: the writer must not trust a note that a delete made stale) the
 * recently-put 'K' table is cleared when the batch deletes 'K' records, and the
 * distinct-value table when the batch removes the last record of a value (a
 * key's count of distinct values drops). Deleting some records of a value that
 * stays in the index leaves the table right, so the writer does not have to
 * rebuild its value sets (up to index-max-values seeks per key) after most
 * batches.
 */
#define RETAIN_BATCH_BYTES (4u << 20)

enum {
    RB_LOCK = 1, /* an 'I' or 'K' delete: commit under write_lock */
    RB_TAGS = 2, /* a 'K' delete: clear tag_seen */
};

typedef struct rbatch {
    td_store *s;
    const atomic_bool *stop; /* may be NULL */
    leveldb_writebatch_t *wb;
    size_t bytes, n;
    unsigned flags;  /* RB_* of the deletes in the batch */
    bool clear_vals; /* the batch removes a value from the index */
    bool hold;       /* rb_del does not flush: the caller flushes at value boundaries */
} rbatch;

static td_status rb_flush(rbatch *b, td_err *err)
{
    if (b->n == 0) {
        return TD_OK;
    }
    char *lerr = NULL;
    if (b->flags & RB_LOCK) {
        pthread_mutex_lock(&b->s->write_lock);
        leveldb_write(b->s->l.db, b->s->l.wopts, b->wb, &lerr);
        if (b->clear_vals) {
            idx_keys_clear(b->s);
        }
        if (b->flags & RB_TAGS) {
            memset(b->s->tag_seen, 0, sizeof(b->s->tag_seen));
        }
        pthread_mutex_unlock(&b->s->write_lock);
    } else {
        leveldb_write(b->s->l.db, b->s->l.wopts, b->wb, &lerr);
    }
    leveldb_writebatch_clear(b->wb);
    b->bytes = b->n = 0;
    b->flags = 0;
    b->clear_vals = false;
    if (lerr) {
        td_status st = td_err_set(err, TD_IO, "retention delete failed: %s", lerr);
        leveldb_free(lerr);
        return st;
    }
    return TD_OK;
}

static bool rb_stopped(const rbatch *b)
{
    return b->stop && atomic_load_explicit(b->stop, memory_order_relaxed);
}

static td_status rb_del(rbatch *b, const void *k, size_t klen, unsigned flags, td_err *err)
{
    leveldb_writebatch_delete(b->wb, (const char *)k, klen);
    b->bytes += klen + 8;
    b->n++;
    b->flags |= flags;
    return b->bytes >= RETAIN_BATCH_BYTES && !b->hold ? rb_flush(b, err) : TD_OK;
}

/* Move *pos past the escaped string at k[*pos..klen); false when malformed. */
static bool esc_skip(const uint8_t *k, size_t klen, size_t *pos)
{
    size_t i = *pos;
    while (i + 1 < klen) {
        if (k[i] == 0) {
            if (k[i + 1] == 0) {
                *pos = i + 2;
                return true;
            }
            if (k[i + 1] != 0xff) {
                return false;
            }
            i += 2;
        } else {
            i++;
        }
    }
    return false;
}

/*
 * 'S' records of minutes before cb, and their fragments: per tenant one range
 * from the tenant's first key to its first kept minute, then one seek to the
 * next tenant. The 'T' key is rebuilt from the summary (trace ID, start, seq).
 */
static td_status retain_frags(td_store *s, leveldb_iterator_t *it, uint32_t cb, rbatch *b,
                              uint64_t *nfrags, td_err *err)
{
    uint8_t tk[TD__KEY_TRACE_MAX], seek[TD__KEY_SUM_PREFIX_MAX + 5];
    char c = TD__REC_SUM;
    td_status st = TD_OK;
    (void)s;
    leveldb_iter_seek(it, &c, 1);
    while (!st && leveldb_iter_valid(it) && !rb_stopped(b)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
        if (klen == 0 || k[0] != TD__REC_SUM) {
            break;
        }
        size_t tl = klen > 1 ? k[1] : 0;
        if (klen != 2 + tl + 28) {
            return td_err_set(err, TD_CORRUPT, "malformed summary key (%zu bytes)", klen);
        }
        if (td__get_be32(k + 2 + tl) >= cb) {
            /* the rest of this tenant is kept: skip to the next tenant */
            memcpy(seek, k, 2 + tl);
            memset(seek + 2 + tl, 0xff, 5);
            leveldb_iter_seek(it, (const char *)seek, 2 + tl + 5);
            continue;
        }
        const uint8_t *v = (const uint8_t *)leveldb_iter_value(it, &vlen);
        if (vlen < TD__SUM_HDR || v[0] != TD__SUM_V1) {
            return td_err_set(err, TD_CORRUPT, "malformed summary record (%zu bytes)", vlen);
        }
        size_t tkl = td__key_trace(tk, (const char *)k + 2, tl, k + 6 + tl, td__get_be64(v + 1),
                                   td__get_be64(k + 22 + tl));
        if ((st = rb_del(b, tk, tkl, 0, err)) == TD_OK &&
            (st = rb_del(b, k, klen, 0, err)) == TD_OK) {
            (*nfrags)++;
            leveldb_iter_next(it);
        }
    }
    return iter_status(it, st, err);
}

static int cmp_u64(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* Sort v[0..n) and drop repeats; returns the new length. */
static size_t sort_unique(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m == 0 || v[m - 1] != v[i]) {
            v[m++] = v[i];
        }
    }
    return m;
}

/*
 * The 'W' tables of one tenant whose 'I' records this pass deleted (seqs,
 * any order, may repeat). A table goes when no 'I' record of its write is
 * left: its write's index records are in the minutes of its fragments'
 * starts, so that is when no fragment of the write starting at or after the
 * cutoff exists. Such a fragment is one of the table's traces with a seq in
 * [seq, next write's seq); for each trace, one seek to its first kept fragment.
 * Fragments of a later write without index entries in that range only keep
 * a table that could go (harmless).
 */
static td_status retain_wtabs(td_store *s, leveldb_readoptions_t *ro, const uint8_t *tk, size_t tl,
                              uint64_t *seqs, size_t n, uint64_t cut_ns, uint64_t snap_seq,
                              rbatch *b, uint64_t *nwtabs, td_err *err)
{
    if (n == 0) {
        return TD_OK;
    }
    /* the 'I' deletes go first: a table must never go before its records */
    td_status st = rb_flush(b, err);
    if (st) {
        return st;
    }
    bool hold = b->hold;
    b->hold = false;
    n = sort_unique(seqs, n);
    /* it: next tables and fragments; wit: the chunks of the table at hand */
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, ro);
    leveldb_iterator_t *wit = leveldb_create_iterator(s->l.db, ro);
    uint8_t wk[TD__KEY_WTAB_MAX], nk[TD__KEY_WTAB_MAX], fk[TD__KEY_TRACE_MAX];
    const char *tenant = (const char *)tk;
    for (size_t i = 0; i < n && !st; i++) {
        size_t wkl = td__key_wtab(wk, tenant, tl, seqs[i], 0);
        size_t wpl = wkl - 4; /* 'W' | L | tenant | seq: every chunk of the table */
        uint64_t next = snap_seq;
        if (seqs[i] < UINT64_MAX) {
            size_t nkl = td__key_wtab(nk, tenant, tl, seqs[i] + 1, 0);
            leveldb_iter_seek(it, (const char *)nk, nkl);
            if (leveldb_iter_valid(it)) {
                size_t fl;
                const uint8_t *f = (const uint8_t *)leveldb_iter_key(it, &fl);
                if (fl == nkl && memcmp(f, nk, nkl - 12) == 0) {
                    next = td__get_be64(f + nkl - 12);
                }
            }
        }
        bool keep = false, any = false;
        for (leveldb_iter_seek(wit, (const char *)wk, wkl); !keep && leveldb_iter_valid(wit);
             leveldb_iter_next(wit)) {
            size_t fl, vlen;
            const uint8_t *f = (const uint8_t *)leveldb_iter_key(wit, &fl);
            if (fl != wkl || memcmp(f, wk, wpl) != 0) {
                break;
            }
            any = true;
            const uint8_t *v = (const uint8_t *)leveldb_iter_value(wit, &vlen);
            for (size_t p = 0; p + 16 <= vlen && !keep; p += 16) {
                size_t pl = td__key_trace_prefix(fk, tenant, tl, v + p);
                td__put_be64(fk + pl, cut_ns);
                leveldb_iter_seek(it, (const char *)fk, pl + 8);
                for (; leveldb_iter_valid(it); leveldb_iter_next(it)) {
                    size_t tl2;
                    const uint8_t *t = (const uint8_t *)leveldb_iter_key(it, &tl2);
                    if (tl2 != pl + 16 || memcmp(t, fk, pl) != 0) {
                        break;
                    }
                    uint64_t fseq = td__get_be64(t + pl + 8);
                    if (fseq >= seqs[i] && fseq < next) {
                        keep = true;
                        break;
                    }
                }
            }
        }
        if (!any || keep) {
            continue; /* an older-format record (no table), gone already, or still needed */
        }
        for (leveldb_iter_seek(wit, (const char *)wk, wkl); !st && leveldb_iter_valid(wit);
             leveldb_iter_next(wit)) {
            size_t fl;
            const uint8_t *f = (const uint8_t *)leveldb_iter_key(wit, &fl);
            if (fl != wkl || memcmp(f, wk, wpl) != 0) {
                break;
            }
            if ((st = rb_del(b, f, fl, 0, err)) == TD_OK) {
                (*nwtabs)++;
            }
        }
    }
    b->hold = hold;
    st = iter_status(wit, st, err);
    leveldb_iter_destroy(wit);
    st = iter_status(it, st, err);
    leveldb_iter_destroy(it);
    return st;
}

/*
 * 'I' records of minutes before cb, by seek-skip: the records of one (tenant,
 * scope, key, type, value) are in minute order, so the old ones are read and
 * deleted from the value's first key on, and the first kept one costs one seek
 * to the next distinct value. Cost: the deleted records plus one seek per
 * distinct value. The seqs of the deleted records name the 'W' tables that
 * may go with them (retain_wtabs, per tenant, when the walk leaves it).
 */
static td_status retain_index(td_store *s, leveldb_readoptions_t *ro, leveldb_iterator_t *it,
                              uint32_t cb, uint64_t cut_ns, uint64_t snap_seq, rbatch *b,
                              td_store_retained *r, td_err *err)
{
    uint8_t *seek = td_malloc(TD__KEY_IDX_MAX);
    uint8_t *cur = td_malloc(TD__KEY_IDX_MAX); /* the value at hand: its key up to the bucket */
    size_t curlen = 0;
    bool cur_kept = false;             /* a record of it is left */
    uint8_t tenant[TD_TENANT_MAX + 2]; /* L | tenant of the walk's current tenant */
    bool have_tenant = false;
    uint64_t *seqs = NULL;
    size_t nseqs = 0, cap = 0;
    td_status st = seek && cur ? TD_OK : td_err_set(err, TD_NOMEM, "out of memory in retention");
    /* flushes happen here, after the value boundary check, so a value's last delete and the
     * clearing of the distinct-value table land in the same batch */
    b->hold = true;
    char c = TD__REC_IDX;
    leveldb_iter_seek(it, &c, 1);
    while (!st && leveldb_iter_valid(it) && !rb_stopped(b)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
        if (klen == 0 || k[0] != TD__REC_IDX) {
            break;
        }
        size_t tl = klen > 1 ? k[1] : 0, pos = 3 + tl;
        if (klen < pos || !esc_skip(k, klen, &pos) || ++pos > klen || !esc_skip(k, klen, &pos) ||
            klen != pos + TD__IDX_TAIL || pos > TD__KEY_IDX_MAX) {
            st = td_err_set(err, TD_CORRUPT, "malformed index key (%zu bytes)", klen);
            break;
        }
        if (curlen != pos || memcmp(cur, k, pos) != 0) {
            if (curlen && !cur_kept) {
                b->clear_vals = true; /* the previous value has no record left */
            }
            memcpy(cur, k, pos);
            curlen = pos;
            cur_kept = false;
        }
        if (b->bytes >= RETAIN_BATCH_BYTES && (st = rb_flush(b, err)) != TD_OK) {
            break;
        }
        if (!have_tenant || tenant[0] != tl || memcmp(tenant + 1, k + 2, tl) != 0) {
            if (have_tenant) {
                st = retain_wtabs(s, ro, tenant + 1, tenant[0], seqs, nseqs, cut_ns, snap_seq, b,
                                  &r->write_tables, err);
                nseqs = 0;
                if (st) {
                    break;
                }
            }
            memcpy(tenant, k + 1, 1 + tl);
            have_tenant = true;
        }
        if (td__get_be32(k + pos) >= cb) {
            cur_kept = true;
            memcpy(seek, k, pos);
            leveldb_iter_seek(it, (const char *)seek, td__esc_successor(seek, pos));
            continue;
        }
        if (nseqs == cap) {
            /* records of one write repeat its seq: keep the distinct ones before growing */
            nseqs = cap ? sort_unique(seqs, nseqs) : 0;
            if (nseqs >= cap / 2 + cap / 4) {
                size_t ncap = cap ? 2 * cap : 1024;
                uint64_t *ns = td_realloc(seqs, ncap * sizeof(*ns));
                if (!ns) {
                    st = td_err_set(err, TD_NOMEM, "out of memory in retention");
                    break;
                }
                seqs = ns;
                cap = ncap;
            }
        }
        seqs[nseqs++] = td__get_be64(k + pos + 4);
        if ((st = rb_del(b, k, klen, RB_LOCK, err)) == TD_OK) {
            r->index_records++;
            leveldb_iter_next(it);
        }
    }
    if (curlen && !cur_kept) {
        b->clear_vals = true; /* the last value (or, when stopped, maybe) has no record left */
    }
    st = iter_status(it, st, err);
    if (!st && have_tenant) {
        st = retain_wtabs(s, ro, tenant + 1, tenant[0], seqs, nseqs, cut_ns, snap_seq, b,
                          &r->write_tables, err);
    }
    b->hold = false;
    td_free(seqs);
    td_free(cur);
    td_free(seek);
    return st;
}

/* 'K' records of hours before ch, by seek-skip per distinct (tenant, scope, key). */
static td_status retain_tags(leveldb_iterator_t *it, uint32_t ch, rbatch *b, uint64_t *ntags,
                             td_err *err)
{
    uint8_t seek[TD__KEY_IDX_PREFIX_MAX];
    td_status st = TD_OK;
    char c = TD__REC_TAG;
    leveldb_iter_seek(it, &c, 1);
    while (!st && leveldb_iter_valid(it) && !rb_stopped(b)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
        if (klen == 0 || k[0] != TD__REC_TAG) {
            break;
        }
        size_t tl = klen > 1 ? k[1] : 0, pos = 3 + tl;
        if (klen < pos || !esc_skip(k, klen, &pos) || klen != pos + TD__TAG_TAIL ||
            pos > sizeof(seek)) {
            return td_err_set(err, TD_CORRUPT, "malformed tag name key (%zu bytes)", klen);
        }
        if (td__get_be32(k + pos) >= ch) {
            memcpy(seek, k, pos);
            leveldb_iter_seek(it, (const char *)seek, td__esc_successor(seek, pos));
            continue;
        }
        if ((st = rb_del(b, k, klen, RB_LOCK | RB_TAGS, err)) == TD_OK) {
            (*ntags)++;
            leveldb_iter_next(it);
        }
    }
    return iter_status(it, st, err);
}

td_status td_store_retain(td_store *s, uint64_t cutoff_ns, const atomic_bool *stop,
                          td_store_retained *out, td_err *err)
{
    td_store_retained r = {0};
    uint32_t cb = td__sum_bucket(cutoff_ns);
    uint32_t ch = td__tag_bucket(cutoff_ns);
    uint64_t cut_ns = (uint64_t)cb * TD__SUM_BUCKET_NS; /* the cutoff, down to its minute */
    if (cb == 0) {
        if (out) {
            *out = r;
        }
        return TD_OK; /* nothing is older than minute 0 */
    }
    /*
     * Everything is read from one snapshot and only what it holds is deleted:
     * records a write adds during the pass (a late fragment of an old trace,
     * with its summary, index records and 'W' table, all keyed by its new seq)
     * are not in it and stay whole until the next pass. next_seq is read under
     * the write lock together with the snapshot: every seq it holds is below.
     */
    pthread_mutex_lock(&s->write_lock);
    const leveldb_snapshot_t *snap = leveldb_create_snapshot(s->l.db);
    uint64_t snap_seq = s->next_seq;
    pthread_mutex_unlock(&s->write_lock);
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_readoptions_set_snapshot(ro, snap);
    leveldb_readoptions_set_fill_cache(ro, 0);
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, ro);
    rbatch b = {s, stop, leveldb_writebatch_create(), 0, 0, 0, false, false};

    td_status st = retain_frags(s, it, cb, &b, &r.fragments, err);
    if (!st && !rb_stopped(&b)) {
        st = retain_index(s, ro, it, cb, cut_ns, snap_seq, &b, &r, err);
    }
    if (!st && !rb_stopped(&b)) {
        st = retain_tags(it, ch, &b, &r.tag_records, err);
    }
    if (!st) {
        st = rb_flush(&b, err);
    }
    leveldb_writebatch_destroy(b.wb);
    leveldb_iter_destroy(it);
    leveldb_readoptions_destroy(ro);
    leveldb_release_snapshot(s->l.db, snap);
    /* what was deleted before an error is gone all the same: count it */
    td_count(TD_M_RETENTION_DELETED, r.fragments, "traces", "fragment");
    td_count(TD_M_RETENTION_DELETED, r.index_records, "traces", "index");
    td_count(TD_M_RETENTION_DELETED, r.tag_records, "traces", "tag");
    td_count(TD_M_RETENTION_DELETED, r.write_tables, "traces", "write_table");
    if (out) {
        *out = r;
    }
    return st;
}
