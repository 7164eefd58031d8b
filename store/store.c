/*
 * store.c - the span store on LevelDB's C API (the only file that includes it).
 *
 * Keys and values are encoded by store/keys.h as specified in store/FORMAT.md.
 * Every LevelDB buffer handed to us (error strings, leveldb_get results) is
 * released with leveldb_free right where it is consumed, except resource
 * records, which a trace read keeps until it ends (res_cache).
 */
#include "store/store.h"

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
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define MODULE "store"

/* td_batch_new lays out header, td_frag array, td_res array and data in one block. */
_Static_assert(sizeof(td_batch) % alignof(td_frag) == 0, "td_frag array must follow td_batch");
_Static_assert(sizeof(td_frag) % alignof(td_res) == 0, "td_res array must follow td_frag");
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

struct td_store {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wopts;
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
};

/* ---- batches ---- */

td_batch *td_batch_new_res(const char *tenant, size_t nfrags, size_t nres, size_t data_cap)
{
    if (!tenant) {
        tenant = TD_DEFAULT_TENANT;
    }
    size_t tlen = strlen(tenant);
    TD_ASSERT(tlen <= TD_TENANT_MAX); /* tenants are validated before a batch is built */
    size_t frag_bytes, res_bytes, total;
    if (!td_size_mul(nfrags, sizeof(td_frag), &frag_bytes) ||
        !td_size_mul(nres, sizeof(td_res), &res_bytes) ||
        !td_size_add(sizeof(td_batch), frag_bytes, &total) ||
        !td_size_add(total, res_bytes, &total) || !td_size_add(total, data_cap, &total)) {
        return NULL;
    }
    td_batch *b = td_malloc(total);
    if (!b) {
        return NULL;
    }
    /* zero header, fragment and resource arrays; the data area is filled by the builder */
    memset(b, 0, sizeof(*b) + frag_bytes + res_bytes);
    memcpy(b->tenant, tenant, tlen + 1);
    b->nfrags = nfrags;
    b->frags = (td_frag *)(b + 1);
    for (size_t i = 0; i < nfrags; i++) {
        b->frags[i].res_index = -1;
    }
    b->nres = nres;
    b->res = (td_res *)(b->frags + nfrags);
    b->data = (uint8_t *)(b->res + nres);
    b->data_cap = data_cap;
    return b;
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
    {"store-sync", TD_OPT_BOOL, "false", offsetof(td_store_opts, sync),
     "Flush every store write to disk (fsync) before it counts as written. Off, a crash "
     "of the process loses nothing already written, but a power loss or kernel crash can "
     "lose the last few seconds. On is safer and slower.",
     0, 0},
};
const size_t td_store_nopt_rows = sizeof(td_store_opt_rows) / sizeof(td_store_opt_rows[0]);

/* ---- open / close ---- */

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* mkdir -p: create dir and its missing parents. */
static td_status mkdir_p(const char *dir, td_err *err)
{
    char *p = td_xstrdup(dir);
    td_status st = TD_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') {
            continue;
        }
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            st = td_err_set(err, TD_IO, "cannot create directory %s: %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (c == '\0') {
            break;
        }
    }
    struct stat sb;
    if (!st && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
        st = td_err_set(err, TD_IO, "data directory %s is not a directory", dir);
    }
    td_free(p);
    return st;
}

/*
 * LevelDB keeps up to max_open_files table files open (default 1000). Leave most
 * of the process's descriptor limit to sockets: use a quarter of it, within the
 * range LevelDB itself accepts.
 */
static int pick_max_open_files(void)
{
    struct rlimit rl;
    rlim_t n = 1000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        n = rl.rlim_cur / 4;
    }
    if (n < 74) {
        n = 74;
    }
    if (n > 5000) {
        n = 5000;
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
    char *v =
        leveldb_get(s->db, s->ropts, TD__KEY_META_SEQ, sizeof(TD__KEY_META_SEQ) - 1, &vlen, &lerr);
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

static int64_t size_gauge(void *ud)
{
    uint64_t n = td_store_approx_size(ud);
    return n > INT64_MAX ? INT64_MAX : (int64_t)n;
}

static void store_free(td_store *s)
{
    if (s->db) {
        leveldb_close(s->db);
    }
    /* the cache is referenced by the options and the db: destroy it last */
    if (s->opts) {
        leveldb_options_destroy(s->opts);
    }
    if (s->cache) {
        leveldb_cache_destroy(s->cache);
    }
    if (s->ropts) {
        leveldb_readoptions_destroy(s->ropts);
    }
    if (s->wopts) {
        leveldb_writeoptions_destroy(s->wopts);
    }
    pthread_mutex_destroy(&s->write_lock);
    td_free(s->path);
    td_free(s);
}

td_status td_store_open(const td_store_opts *o, td_store **out, td_err *err)
{
    *out = NULL;
    if (!o->dir || !o->dir[0]) {
        return td_err_set(err, TD_INVALID, "data-dir is empty");
    }
    td_status st = mkdir_p(o->dir, err);
    if (st) {
        return st;
    }
    td_store *s = td_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->write_lock, NULL);
    td_buf path = TD_BUF_INIT;
    td_buf_addf(&path, "%s/traces", o->dir);
    s->path = td_buf_detach(&path, NULL);

    s->cache = leveldb_cache_create_lru((size_t)o->cache_bytes);
    s->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(s->opts, 1);
    leveldb_options_set_cache(s->opts, s->cache);
    leveldb_options_set_write_buffer_size(s->opts, (size_t)o->write_buffer_bytes);
    /* snappy is LevelDB's default; it silently stores blocks raw if built without it */
    leveldb_options_set_compression(s->opts, leveldb_snappy_compression);
    leveldb_options_set_max_open_files(s->opts, pick_max_open_files());

    s->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_fill_cache(s->ropts, 1);
    s->wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wopts, o->sync);

    char *lerr = NULL;
    s->db = leveldb_open(s->opts, s->path, &lerr);
    if (lerr) {
        st = td_err_set(err, TD_IO, "cannot open store %s: %s", s->path, lerr);
        leveldb_free(lerr);
        s->db = NULL;
        store_free(s);
        return st;
    }
    load_next_seq(s);
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
 * Whether the resource record with this key was written recently; if not, it is
 * noted as written (the caller puts it into the write batch, and clears the
 * table if that write then fails). Caller holds write_lock.
 */
static bool res_seen_test_and_set(td_store *s, const uint8_t *key, size_t klen)
{
    uint8_t d[TD_HASH128_LEN];
    td_hash128(key, klen, d);
    res_seen_ent e = {load_le64(d), load_le64(d + 8)};
    if (e.a == 0 && e.b == 0) {
        return false; /* the empty marker: never cached (probability 2^-128) */
    }
    res_seen_ent *set = s->res_seen[e.a & (RES_SEEN_SETS - 1)];
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
    pthread_mutex_lock(&s->write_lock);
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
            if (res_seen_test_and_set(s, key, klen)) {
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
        uint8_t mark[8];
        td__put_be64(mark, seq);
        leveldb_writebatch_put(wb, TD__KEY_META_SEQ, sizeof(TD__KEY_META_SEQ) - 1,
                               (const char *)mark, sizeof(mark));
        char *lerr = NULL;
        leveldb_write(s->db, s->wopts, wb, &lerr);
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
    }
    pthread_mutex_unlock(&s->write_lock);

    td_buf_release(&val);
    leveldb_writebatch_destroy(wb);
    if (!st) {
        td_metric_add(s->m_res_written, res_put);
        td_metric_add(s->m_res_cached, res_cached);
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
    char *v = leveldb_get(s->db, s->ropts, (const char *)key, klen, &vlen, &lerr);
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

    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
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
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
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
    leveldb_approximate_sizes(s->db, 1, &start_key, &start_len, &limit_key, &limit_len, &size);
    return size;
}
