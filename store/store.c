/*
 * store.c - the span store on LevelDB's C API (the only file that includes it).
 *
 * Keys and values are encoded by store/keys.h as specified in store/FORMAT.md.
 * Every LevelDB buffer handed to us (error strings, leveldb_get results) is
 * released with leveldb_free right where it is consumed.
 */
#include "store/store.h"

#include "core/buf.h"
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

/* td_batch_new lays out header, td_frag array and data in one block. */
_Static_assert(sizeof(td_batch) % alignof(td_frag) == 0, "td_frag array must follow td_batch");
_Static_assert(TD_TENANT_MAX <= 255, "tenant length must fit the key's length byte");

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
};

/* ---- batches ---- */

td_batch *td_batch_new(const char *tenant, size_t nfrags, size_t data_cap)
{
    if (!tenant) {
        tenant = TD_DEFAULT_TENANT;
    }
    size_t tlen = strlen(tenant);
    TD_ASSERT(tlen <= TD_TENANT_MAX); /* tenants are validated before a batch is built */
    size_t frag_bytes, total;
    if (!td_size_mul(nfrags, sizeof(td_frag), &frag_bytes) ||
        !td_size_add(sizeof(td_batch), frag_bytes, &total) ||
        !td_size_add(total, data_cap, &total)) {
        return NULL;
    }
    td_batch *b = td_malloc(total);
    if (!b) {
        return NULL;
    }
    /* zero header and fragment array; the data area is filled by the builder */
    memset(b, 0, sizeof(*b) + frag_bytes);
    memcpy(b->tenant, tenant, tlen + 1);
    b->nfrags = nfrags;
    b->frags = (td_frag *)(b + 1);
    b->data = (uint8_t *)(b->frags + nfrags);
    b->data_cap = data_cap;
    return b;
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
    uint8_t key[TD__KEY_TRACE_MAX];
    td_status st = TD_OK;

    pthread_mutex_lock(&s->write_lock);
    uint64_t seq = s->next_seq;
    for (size_t i = 0; i < n && !st; i++) {
        const td_batch *b = batches[i];
        size_t tlen = strlen(b->tenant);
        TD_ASSERT(tlen <= TD_TENANT_MAX);
        for (size_t j = 0; j < b->nfrags; j++) {
            const td_frag *f = &b->frags[j];
            size_t klen = td__key_trace(key, b->tenant, tlen, f->trace_id, f->start_ns, seq++);
            /* LevelDB copies key and value into the batch, so one scratch buffer serves all */
            td_buf_reset(&val);
            if (!td_buf_try_grow(&val, (size_t)TD__VAL_HDR + f->len)) {
                st = td_err_set(err, TD_NOMEM, "out of memory preparing a store write");
                break;
            }
            td__val_header((uint8_t *)val.data, f->end_ns, f->nspans);
            if (f->len) {
                memcpy(val.data + TD__VAL_HDR, f->data, f->len);
            }
            leveldb_writebatch_put(wb, (const char *)key, klen, val.data,
                                   (size_t)TD__VAL_HDR + f->len);
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
    pthread_mutex_unlock(&s->write_lock);

    td_buf_release(&val);
    leveldb_writebatch_destroy(wb);
    return st;
}

/* ---- read ---- */

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
    for (leveldb_iter_seek(it, (const char *)prefix, plen); leveldb_iter_valid(it);
         leveldb_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0) {
            break; /* past the last fragment of this trace */
        }
        uint64_t frag_start, seq, frag_end;
        uint32_t nspans;
        if (!td__key_trace_tail(k, klen, plen, &frag_start, &seq)) {
            st = td_err_set(err, TD_CORRUPT, "malformed store key (%zu bytes) in a trace", klen);
            break;
        }
        if (end_ns && frag_start > end_ns) {
            break; /* keys are in start order: no later fragment can overlap */
        }
        const uint8_t *v = (const uint8_t *)leveldb_iter_value(it, &vlen);
        if (!td__val_parse(v, vlen, &frag_end, &nspans)) {
            st = td_err_set(err, TD_CORRUPT, "malformed stored fragment (%zu bytes)", vlen);
            break;
        }
        if (end_ns && frag_end < start_ns) {
            continue;
        }
        visited++;
        st = cb(ud, v + TD__VAL_HDR, vlen - TD__VAL_HDR, err);
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
    if (!st && !visited) {
        st = td_err_set(err, TD_NOT_FOUND, "trace not found");
    }
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
