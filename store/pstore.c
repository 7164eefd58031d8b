/*
 * pstore.c - the profile store on LevelDB's C API: <data-dir>/profiles.
 *
 * Keys and values are specified in store/FORMAT-PROFILES.md and encoded with
 * store/pkeys.h. In short: series, locations and stacks get small per-tenant
 * IDs from counters (so a profile's sorted stack IDs delta-encode into a byte
 * or two), found again through a hash -> ID record; a profile is one value of
 * (stack delta, value / gcd[, span, trace]) varints under (series, time).
 *
 * A write hashes its series, locations and stacks before taking write_lock
 * (so concurrent writers do that in parallel); under it, only the symbol
 * cache probes, the LevelDB lookups and new IDs for cache misses, the
 * profile's encoding and the one LevelDB write remain. write_lock guards the
 * symbol cache and the tenants' counters; reads take no lock (LevelDB is
 * thread-safe).
 * Every buffer LevelDB hands back is released with leveldb_free where it is
 * consumed.
 */
#include "store/pstore.h"
#include "store/ldb.h"

#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/pkeys.h"

#include <leveldb/c.h>

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MODULE "pstore"

/* Longest label name and value a series may have (they are part of posting keys). */
#define LABEL_NAME_MAX 1024
#define LABEL_VALUE_MAX 65536

/*
 * The symbol cache: interned records (series, locations, stacks) seen
 * recently, one table per kind, so that the symbols of a repeated profile are
 * neither looked up in LevelDB nor put again. A key is 128 bits: the record's
 * content hash mixed with the tenant's hash (for a stack, the hash of its
 * locations' content hashes, so a hit needs no location IDs). 4-way
 * set-associative, LRU per set; {0,0} marks an empty way. Its memory bound is
 * td_store_opts.profile_symbol_cache_bytes, shared out by SYM_SHARE.
 */
#define SYM_WAYS 4
#define SYM_CACHE_DEFAULT (64u << 20)

typedef struct sym_ent {
    uint64_t a, b;
    uint64_t id;
} sym_ent;

/*
 * A table starts at SYM_SETS_MIN sets (or its bound) and doubles when a
 * quarter of its ways are used (few sets overflow then), up to its share of
 * the bound: a small working set stays compact (in the CPU caches) however
 * large the bound. Growing briefly holds the old and the new table.
 */
#define SYM_SETS_MIN 1024

typedef struct sym_tab {
    sym_ent *e;      /* nsets x SYM_WAYS */
    size_t mask;     /* nsets - 1 (a power of two) */
    size_t max_sets; /* the bound (a power of two) */
    size_t used;     /* ways filled (not lowered by eviction) */
} sym_tab;

/* sixteenths of the bound by counter index: series, locations, stacks */
static const unsigned sym_share[3] = {1, 10, 5};

/* Next free IDs of one tenant, loaded from its 'C' records on first use. */
typedef struct tenant_ids {
    char tenant[TD_TENANT_MAX + 1];
    uint64_t next[3]; /* by counter index: series, loc, stack */
    bool dirty[3];    /* changed by the write in progress */
} tenant_ids;

enum { CNT_SERIES, CNT_LOC, CNT_STACK };
/* How a symbol was interned (traced_profile_symbols_total's outcome). */
enum { SYM_CACHED, SYM_FOUND, SYM_WRITTEN };
static const char *const sym_kind[3] = {"series", "location", "stack"};
static const char *const sym_outcome[3] = {"cached", "found", "written"};
static const uint8_t cnt_kind[3] = {TD__PK_CNT_SERIES, TD__PK_CNT_LOC, TD__PK_CNT_STACK};

struct td_pstore {
    td__ldb l; /* the database and its options (store/ldb.h) */
    char *path;
    pthread_mutex_t write_lock;
    /* guarded by write_lock: */
    sym_tab sym[3]; /* by counter index */
    tenant_ids *tenants;
    size_t ntenants, tenants_cap;
    uint32_t nonce;                                  /* next profile key nonce */
    td_metric *m_profiles, *m_samples, *m_sym[3][3]; /* [counter index][SYM_*] */
};

/* ---- small helpers ---- */

static uint64_t load_le64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8); /* one load (hot in the symbol cache keys) */
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
#endif
}

static td_status check_tenant(const char **tenant, size_t *tlen, td_err *err)
{
    if (!*tenant) {
        *tenant = TD_DEFAULT_TENANT;
    }
    *tlen = strlen(*tenant);
    if (*tlen > TD_TENANT_MAX) {
        return td_err_set(err, TD_INVALID, "tenant ID is longer than %d bytes", TD_TENANT_MAX);
    }
    return TD_OK;
}

static td_status io_err(td_err *err, char *lerr)
{
    td_status st = td_err_set(err, TD_IO, "profile store read failed: %s", lerr);
    leveldb_free(lerr);
    return st;
}

/* leveldb_get: *v (leveldb_free) or NULL when absent. */
static td_status db_get(td_pstore *s, const uint8_t *k, size_t klen, char **v, size_t *vlen,
                        td_err *err)
{
    char *lerr = NULL;
    *v = leveldb_get(s->l.db, s->l.ropts, (const char *)k, klen, vlen, &lerr);
    if (lerr) {
        return io_err(err, lerr);
    }
    return TD_OK;
}

static td_status iter_status(leveldb_iterator_t *it, td_err *err)
{
    char *lerr = NULL;
    leveldb_iter_get_error(it, &lerr);
    return lerr ? io_err(err, lerr) : TD_OK;
}

static int64_t ms_to_ns_floor(int64_t ms)
{
    int64_t r;
    if (__builtin_mul_overflow(ms, (int64_t)1000000, &r)) {
        return ms < 0 ? INT64_MIN : INT64_MAX;
    }
    return r;
}

static int64_t ms_to_ns_ceil(int64_t ms)
{
    int64_t r = ms_to_ns_floor(ms);
    if (r == INT64_MAX || __builtin_add_overflow(r, (int64_t)999999, &r)) {
        return INT64_MAX;
    }
    return r;
}

/* floor(ns / 1e6) for negative times too */
static int64_t ns_to_ms(int64_t ns)
{
    int64_t q = ns / 1000000;
    return (ns % 1000000 < 0) ? q - 1 : q;
}

/* ---- open / close ---- */

static int64_t size_gauge(void *ud)
{
    uint64_t n = td_pstore_approx_size(ud);
    return n > INT64_MAX ? INT64_MAX : (int64_t)n;
}

static void pstore_free(td_pstore *s)
{
    td__ldb_close(&s->l);
    pthread_mutex_destroy(&s->write_lock);
    for (int k = 0; k < 3; k++) {
        td_free(s->sym[k].e);
    }
    td_free(s->tenants);
    td_free(s->path);
    td_free(s);
}

td_status td_pstore_open(const td_store_opts *o, td_pstore **out, td_err *err)
{
    *out = NULL;
    if (!o->dir || !o->dir[0]) {
        return td_err_set(err, TD_INVALID, "data-dir is empty");
    }
    td_status st = td__mkdir_p(o->dir, err);
    if (st) {
        return st;
    }
    td_pstore *s = td_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->write_lock, NULL);
    td_buf path = TD_BUF_INIT;
    td_buf_addf(&path, "%s/profiles", o->dir);
    s->path = td_buf_detach(&path, NULL);

    /* the profile database is smaller than the span store: a quarter of its cache */
    uint64_t cache = o->cache_bytes / 4 < (1u << 20) ? (1u << 20) : o->cache_bytes / 4;
    uint64_t symb =
        o->profile_symbol_cache_bytes ? o->profile_symbol_cache_bytes : SYM_CACHE_DEFAULT;
    for (int k = 0; k < 3; k++) {
        /* the largest power of two of sets within this kind's share, at least one */
        uint64_t sets = symb / 16 * sym_share[k] / (SYM_WAYS * sizeof(sym_ent));
        size_t n = 1;
        while ((uint64_t)n * 2 <= sets && n < ((size_t)1 << 40)) {
            n *= 2;
        }
        size_t first = n < SYM_SETS_MIN ? n : SYM_SETS_MIN;
        s->sym[k].e = td_xcalloc(first * SYM_WAYS, sizeof(sym_ent));
        s->sym[k].mask = first - 1;
        s->sym[k].max_sets = n;
    }
    if ((st = td__ldb_open(&s->l, s->path, "profile store", cache,
                           o->write_buffer_bytes ? o->write_buffer_bytes : 4u << 20, 256, o->sync,
                           err)) != TD_OK) {
        pstore_free(s);
        return st;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->nonce = (uint32_t)((uint64_t)ts.tv_sec * 1000003u + (uint64_t)ts.tv_nsec);
    s->m_profiles = td_metric_series(TD_M_PROFILES_WRITTEN, NULL, NULL, NULL);
    s->m_samples = td_metric_series(TD_M_PROFILE_SAMPLES_WRITTEN, NULL, NULL, NULL);
    for (int k = 0; k < 3; k++) {
        for (int h = 0; h < 3; h++) {
            s->m_sym[k][h] =
                td_metric_series(TD_M_PROFILE_SYMBOLS, sym_kind[k], sym_outcome[h], NULL);
        }
    }
    td_metric_gauge_fn(TD_M_PROFILE_STORE_SIZE, size_gauge, s);
    td_log(TD_LOG_INFO, MODULE, "opened profile store %s", s->path);
    *out = s;
    return TD_OK;
}

void td_pstore_close(td_pstore *s)
{
    if (s) {
        /* after this returns no scrape can be inside size_gauge with s */
        td_metric_gauge_fn(TD_M_PROFILE_STORE_SIZE, NULL, s);
        pstore_free(s);
    }
}

/* ---- interning (caller holds write_lock) ---- */

static bool sym_get(td_pstore *s, int kind, const uint64_t key[2], uint64_t *id)
{
    sym_tab *t = &s->sym[kind];
    sym_ent *set = t->e + (key[0] & t->mask) * SYM_WAYS;
    for (int w = 0; w < SYM_WAYS; w++) {
        if (set[w].a == key[0] && set[w].b == key[1]) {
            sym_ent e = set[w];
            memmove(set + 1, set, (size_t)w * sizeof(*set));
            set[0] = e;
            *id = e.id;
            return true;
        }
    }
    return false;
}

static void sym_insert(sym_tab *t, const sym_ent *e)
{
    sym_ent *set = t->e + (e->a & t->mask) * SYM_WAYS;
    if (set[SYM_WAYS - 1].a == 0 && set[SYM_WAYS - 1].b == 0) {
        t->used++;
    }
    memmove(set + 1, set, (SYM_WAYS - 1) * sizeof(*set));
    set[0] = *e;
}

/* Double t's sets (keeping its entries, most recent first); unchanged on OOM. */
static void sym_grow(sym_tab *t)
{
    size_t nsets = t->mask + 1;
    sym_ent *ne = td_calloc(nsets * 2 * SYM_WAYS, sizeof(sym_ent));
    if (!ne) {
        return;
    }
    sym_tab n = {ne, nsets * 2 - 1, t->max_sets, 0};
    for (size_t i = 0; i < nsets; i++) {
        for (int w = SYM_WAYS - 1; w >= 0; w--) {
            const sym_ent *e = &t->e[i * SYM_WAYS + (size_t)w];
            if (e->a || e->b) {
                sym_insert(&n, e);
            }
        }
    }
    td_free(t->e);
    *t = n;
}

static void sym_put(td_pstore *s, int kind, const uint64_t key[2], uint64_t id)
{
    sym_tab *t = &s->sym[kind];
    if (t->used >= (t->mask + 1) * SYM_WAYS / 4 && t->mask + 1 < t->max_sets) {
        sym_grow(t);
    }
    sym_ent e = {key[0], key[1], id};
    sym_insert(t, &e);
}

/* Forget every cached symbol. */
static void sym_clear(td_pstore *s)
{
    for (int k = 0; k < 3; k++) {
        memset(s->sym[k].e, 0, (s->sym[k].mask + 1) * SYM_WAYS * sizeof(sym_ent));
        s->sym[k].used = 0;
    }
}

/* The tenant's hash, mixed into its cache keys. */
static void tenant_mix(const char *tenant, size_t tlen, uint64_t tm[2])
{
    uint8_t th[16];
    td_hash128_seeded(tenant, tlen, 2, th);
    tm[0] = load_le64(th);
    tm[1] = load_le64(th + 8);
}

/* The cache key of content hash h for the tenant whose hash is tm. */
static void sym_key(const uint8_t h[16], const uint64_t tm[2], uint64_t key[2])
{
    key[0] = load_le64(h) ^ tm[0];
    key[1] = load_le64(h + 8) ^ tm[1];
    if (key[0] == 0 && key[1] == 0) {
        key[0] = 1; /* keep clear of the empty marker */
    }
}

/* The tenant's counters, loaded from the store on first use. */
static td_status tenant_get(td_pstore *s, const char *tenant, size_t tlen, tenant_ids **out,
                            td_err *err)
{
    for (size_t i = 0; i < s->ntenants; i++) {
        if (strcmp(s->tenants[i].tenant, tenant) == 0) {
            *out = &s->tenants[i];
            return TD_OK;
        }
    }
    if (s->ntenants == s->tenants_cap) {
        size_t ncap = s->tenants_cap ? s->tenants_cap * 2 : 4;
        tenant_ids *nt = td_realloc(s->tenants, ncap * sizeof(*nt));
        if (!nt) {
            return td_err_set(err, TD_NOMEM, "out of memory writing a profile");
        }
        s->tenants = nt;
        s->tenants_cap = ncap;
    }
    tenant_ids t;
    memset(&t, 0, sizeof(t));
    memcpy(t.tenant, tenant, tlen + 1);
    for (int c = 0; c < 3; c++) {
        uint8_t k[TD__PK_TENANT_MAX + 1];
        size_t klen = td__pk_prefix(k, TD__PK_COUNTER, tenant, tlen);
        k[klen++] = cnt_kind[c];
        char *v;
        size_t vlen;
        td_status st = db_get(s, k, klen, &v, &vlen, err);
        if (st) {
            return st;
        }
        t.next[c] = 1; /* ID 0 is never used */
        if (v) {
            bool ok = vlen == 8;
            if (ok) {
                t.next[c] = td__pk_get_be64((const uint8_t *)v);
            }
            leveldb_free(v);
            if (!ok || t.next[c] == 0) {
                return td_err_set(err, TD_CORRUPT, "malformed profile ID counter (%zu bytes)",
                                  vlen);
            }
        }
    }
    s->tenants[s->ntenants] = t;
    *out = &s->tenants[s->ntenants++];
    return TD_OK;
}

/*
 * The ID of the record whose content hashes to h (kind: counter index; hkey
 * and rkey types: the hash -> ID and ID -> content record types; key: its
 * symbol cache key). If it is neither in the symbol cache nor in the store, a
 * new ID is taken from the tenant's counter and both records are put into wb
 * (content: rec, rlen). *how is SYM_CACHED, SYM_FOUND or SYM_WRITTEN.
 */
static td_status intern(td_pstore *s, leveldb_writebatch_t *wb, tenant_ids *t, int kind,
                        uint8_t htype, uint8_t rtype, const uint8_t h[16], const uint64_t key[2],
                        const uint8_t *rec, size_t rlen, uint64_t *id, int *how, td_err *err)
{
    *how = SYM_CACHED;
    if (sym_get(s, kind, key, id)) {
        return TD_OK;
    }
    size_t tlen = strlen(t->tenant);
    uint8_t hk[TD__PK_KEY_MAX];
    size_t hklen = td__pk_hash_key(hk, htype, t->tenant, tlen, h);
    char *v;
    size_t vlen;
    td_status st = db_get(s, hk, hklen, &v, &vlen, err);
    if (st) {
        return st;
    }
    if (v) {
        bool ok = vlen == 8;
        if (ok) {
            *id = td__pk_get_be64((const uint8_t *)v);
        }
        leveldb_free(v);
        if (!ok || *id == 0) {
            return td_err_set(err, TD_CORRUPT, "malformed profile hash record (%zu bytes)", vlen);
        }
        sym_put(s, kind, key, *id);
        *how = SYM_FOUND;
        return TD_OK;
    }
    *id = t->next[kind]++;
    t->dirty[kind] = true;
    *how = SYM_WRITTEN;
    uint8_t idv[8];
    td__pk_put_be64(idv, *id);
    uint8_t rk[TD__PK_KEY_MAX];
    size_t rklen = td__pk_id_key(rk, rtype, t->tenant, tlen, *id);
    /* the content first, then the hash record naming it */
    leveldb_writebatch_put(wb, (const char *)rk, rklen, (const char *)rec, rlen);
    leveldb_writebatch_put(wb, (const char *)hk, hklen, (const char *)idv, 8);
    sym_put(s, kind, key, *id);
    return TD_OK;
}

static void add_varint(td_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    td_buf_add(b, tmp, td__pk_put_varint(tmp, v));
}

static void add_lstr(td_buf *b, const char *str)
{
    size_t n = str ? strlen(str) : 0;
    add_varint(b, n);
    if (n) {
        td_buf_add(b, str, n);
    }
}

/* ---- write ---- */

/* One sample being encoded: stack ID, span/trace table index + 1 (0 = none). */
typedef struct wsample {
    uint64_t stack;
    uint64_t span;
    const uint8_t *trace; /* NULL = none */
    uint32_t span_ix, trace_ix;
    int64_t value;
} wsample;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_trace(const void *a, const void *b)
{
    return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, 16);
}

static int cmp_wsample(const void *a, const void *b)
{
    const wsample *x = a, *y = b;
    if (x->stack != y->stack) {
        return x->stack < y->stack ? -1 : 1;
    }
    if (x->span_ix != y->span_ix) {
        return x->span_ix < y->span_ix ? -1 : 1;
    }
    return x->trace_ix < y->trace_ix ? -1 : x->trace_ix > y->trace_ix;
}

static bool trace_zero(const uint8_t t[16])
{
    for (int i = 0; i < 16; i++) {
        if (t[i]) {
            return false;
        }
    }
    return true;
}

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Index of v in the sorted unique array, + 1. */
static uint32_t span_index(const uint64_t *tab, size_t n, uint64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tab[mid] < v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return (uint32_t)lo + 1;
}

static uint32_t trace_index(const uint8_t *const *tab, size_t n, const uint8_t *v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(tab[mid], v, 16) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return (uint32_t)lo + 1;
}

/*
 * Encode one series' samples (stack IDs already resolved into ws) as a v1
 * profile value into out. ws is sorted and merged in place. *stored is the
 * number of samples encoded: 0 (nothing to store) when every value is zero.
 */
static td_status encode_profile(wsample *ws, size_t n, int64_t duration_ns, td_buf *out,
                                size_t *stored, td_err *err)
{
    td_status st = TD_OK;
    uint64_t *spans = NULL;
    const uint8_t **traces = NULL;
    size_t nspans = 0, ntraces = 0;
    *stored = 0;
    if (n == 0) {
        return TD_OK; /* (ws may be NULL: qsort must not see it) */
    }
    spans = td_malloc((n ? n : 1) * sizeof(*spans));
    traces = td_malloc((n ? n : 1) * sizeof(*traces));
    if (!spans || !traces) {
        st = td_err_set(err, TD_NOMEM, "out of memory writing a profile");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (ws[i].span) {
            spans[nspans++] = ws[i].span;
        }
        if (ws[i].trace) {
            traces[ntraces++] = ws[i].trace;
        }
    }
    qsort(spans, nspans, sizeof(*spans), cmp_u64);
    qsort(traces, ntraces, sizeof(*traces), cmp_trace);
    size_t k = 0;
    for (size_t i = 0; i < nspans; i++) {
        if (k == 0 || spans[k - 1] != spans[i]) {
            spans[k++] = spans[i];
        }
    }
    nspans = k;
    k = 0;
    for (size_t i = 0; i < ntraces; i++) {
        if (k == 0 || memcmp(traces[k - 1], traces[i], 16) != 0) {
            traces[k++] = traces[i];
        }
    }
    ntraces = k;
    for (size_t i = 0; i < n; i++) {
        ws[i].span_ix = ws[i].span ? span_index(spans, nspans, ws[i].span) : 0;
        ws[i].trace_ix = ws[i].trace ? trace_index(traces, ntraces, ws[i].trace) : 0;
    }
    qsort(ws, n, sizeof(*ws), cmp_wsample);
    /* merge equal (stack, span, trace) by summing (mod 2^64), drop zeros */
    uint64_t total = 0, g = 0;
    k = 0;
    for (size_t i = 0; i < n; i++) {
        total += (uint64_t)ws[i].value;
        if (k && cmp_wsample(&ws[k - 1], &ws[i]) == 0) {
            ws[k - 1].value = (int64_t)((uint64_t)ws[k - 1].value + (uint64_t)ws[i].value);
        } else {
            ws[k++] = ws[i];
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (ws[i].value != 0) {
            ws[m++] = ws[i];
            uint64_t a = ws[i].value < 0 ? -(uint64_t)ws[i].value : (uint64_t)ws[i].value;
            g = gcd_u64(g, a);
        }
    }
    n = m;
    if (n == 0) {
        goto done;
    }
    if (g == 0 || g > (uint64_t)INT64_MAX) {
        g = 1;
    }
    /* tables are kept only when a remaining sample refers to them */
    bool has_spans = false, has_traces = false;
    for (size_t i = 0; i < n; i++) {
        has_spans |= ws[i].span_ix != 0;
        has_traces |= ws[i].trace_ix != 0;
    }
    /* the value's size comes from the wire: reserve its bound with a checked grow */
    size_t bound, per = 40; /* four varints per sample at most */
    if (!td_size_mul(n, per, &bound) ||
        !td_size_add(bound, 64 + nspans * 8 + ntraces * 16, &bound)) {
        st = td_err_set(err, TD_NOMEM, "profile too large to encode");
        goto done;
    }
    td_buf_reset(out);
    if (!td_buf_try_grow(out, bound)) {
        st = td_err_set(err, TD_NOMEM, "out of memory writing a profile");
        goto done;
    }
    *stored = n;
    uint8_t hdr[2] = {TD__PK_V1, (uint8_t)((has_spans ? TD__PK_F_SPANS : 0) |
                                           (has_traces ? TD__PK_F_TRACES : 0))};
    td_buf_add(out, hdr, 2);
    add_varint(out, duration_ns > 0 ? (uint64_t)duration_ns : 0);
    add_varint(out, td__pk_zigzag((int64_t)total));
    add_varint(out, n);
    add_varint(out, g);
    if (has_spans) {
        add_varint(out, nspans);
        for (size_t i = 0; i < nspans; i++) {
            uint8_t b[8];
            td__pk_put_be64(b, spans[i]);
            td_buf_add(out, b, 8);
        }
    }
    if (has_traces) {
        add_varint(out, ntraces);
        for (size_t i = 0; i < ntraces; i++) {
            td_buf_add(out, traces[i], 16);
        }
    }
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        add_varint(out, ws[i].stack - prev);
        prev = ws[i].stack;
        add_varint(out, td__pk_zigzag(ws[i].value / (int64_t)g));
        if (has_spans) {
            add_varint(out, ws[i].span_ix);
        }
        if (has_traces) {
            add_varint(out, ws[i].trace_ix);
        }
    }
done:
    td_free(spans);
    td_free(traces);
    return st;
}

static td_status check_write(const td_pwrite *w, td_err *err)
{
    for (size_t i = 0; i < w->nstacks; i++) {
        const td_pstack *k = &w->stacks[i];
        for (uint32_t j = 0; j < k->nframes; j++) {
            if (k->frames[j] >= w->nlocs) {
                return td_err_set(err, TD_INVALID, "stack %zu refers to location %u of %zu", i,
                                  k->frames[j], w->nlocs);
            }
        }
    }
    for (size_t i = 0; i < w->nseries; i++) {
        const td_pseries_in *se = &w->series[i];
        bool has_type = false;
        for (size_t j = 0; j < se->nlabels; j++) {
            const td_plabel *l = &se->labels[j];
            if (!l->name || !l->value || !l->name[0]) {
                return td_err_set(err, TD_INVALID, "series %zu has an empty label name", i);
            }
            /* both go into posting keys: keep keys reasonable */
            if (strlen(l->name) > LABEL_NAME_MAX || strlen(l->value) > LABEL_VALUE_MAX) {
                return td_err_set(err, TD_INVALID,
                                  "series %zu: label %.40s: name longer than %d or value longer "
                                  "than %d bytes",
                                  i, l->name, LABEL_NAME_MAX, LABEL_VALUE_MAX);
            }
            if (j && strcmp(se->labels[j - 1].name, l->name) >= 0) {
                return td_err_set(err, TD_INVALID,
                                  "series %zu: labels are not sorted by name or not unique", i);
            }
            has_type |= strcmp(l->name, "__profile_type__") == 0 && l->value[0];
        }
        if (!has_type) {
            return td_err_set(err, TD_INVALID, "series %zu has no __profile_type__ label", i);
        }
        for (size_t j = 0; j < se->nsamples; j++) {
            if (se->samples[j].stack >= w->nstacks) {
                return td_err_set(err, TD_INVALID, "series %zu: sample refers to stack %u of %zu",
                                  i, se->samples[j].stack, w->nstacks);
            }
        }
    }
    return TD_OK;
}

/* Location v1 value: version | zigzag line | function | system_name | file | mapping. */
static void encode_loc(td_buf *b, const td_ploc *l)
{
    td_buf_reset(b);
    td_buf_addch(b, TD__PK_V1);
    add_varint(b, td__pk_zigzag(l->line));
    add_lstr(b, l->function);
    add_lstr(b, l->system_name);
    add_lstr(b, l->file);
    add_lstr(b, l->mapping);
}

/* Series v1 value: version | count | (name, value)* as length-prefixed strings. */
static void encode_labels(td_buf *b, const td_plabel *labels, size_t n)
{
    td_buf_reset(b);
    td_buf_addch(b, TD__PK_V1);
    add_varint(b, n);
    for (size_t i = 0; i < n; i++) {
        add_lstr(b, labels[i].name);
        add_lstr(b, labels[i].value);
    }
}

typedef struct wstate {
    td_pstore *s;
    leveldb_writebatch_t *wb;
    tenant_ids *t;
    const td_pwrite *w;
    uint64_t tm[2];          /* the tenant's hash (symbol cache keys) */
    uint8_t (*loc_h)[16];    /* cache hash by location (of the ones stacks need) */
    uint8_t *loc_hashed;     /* whether loc_h is set */
    uint64_t (*stack_k)[2];  /* symbol cache key by stack (of the ones samples need) */
    uint32_t *loc_canon;     /* the first location of the write with equal content */
    uint32_t *stack_canon;   /* the first stack of the write with equal content */
    uint8_t (*series_h)[16]; /* content hash by series */
    uint64_t *loc_ids;       /* 0 = not interned yet */
    uint64_t *stack_ids;     /* 0 = not interned yet */
    td_buf rec, rec2;
    uint64_t sym[3][3];           /* symbols by counter index and SYM_* (metrics) */
    uint64_t nprofiles, nsamples; /* stored (metrics) */
} wstate;

/*
 * Per-write memo of string hashes by pointer: a profile's locations share a
 * few hundred strings (its pprof string table), so each is hashed once.
 */
typedef struct strmemo {
    const char **key; /* NULL = empty slot */
    uint8_t (*h)[16];
    size_t cap, n;
    /* the last string per field (file, mapping): mostly the same as before */
    const char *last[2];
    uint8_t last_h[2][16];
} strmemo;

static size_t ptr_slot(const void *p, size_t cap)
{
    uint64_t v = (uint64_t)(uintptr_t)p;
    v ^= v >> 29;
    v *= 0x9e3779b97f4a7c15ull;
    return (size_t)(v >> 32) & (cap - 1);
}

static bool strmemo_grow(strmemo *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    const char **nk = td_calloc(ncap, sizeof(*nk));
    uint8_t(*nh)[16] = td_malloc(ncap * sizeof(*nh));
    if (!nk || !nh) {
        td_free(nk);
        td_free(nh);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->key[i]) {
            size_t j = ptr_slot(m->key[i], ncap);
            while (nk[j]) {
                j = (j + 1) & (ncap - 1);
            }
            nk[j] = m->key[i];
            memcpy(nh[j], m->h[i], 16);
        }
    }
    td_free(m->key);
    td_free(m->h);
    m->key = nk;
    m->h = nh;
    m->cap = ncap;
    return true;
}

/* The 128-bit hash of str (NULL = ""), memoised by pointer; false on OOM. */
static bool strmemo_hash(strmemo *m, const char *str, uint8_t out[16])
{
    if (!str) {
        str = "";
    }
    if (m->n * 2 >= m->cap && !strmemo_grow(m)) {
        return false;
    }
    size_t i = ptr_slot(str, m->cap);
    while (m->key[i]) {
        if (m->key[i] == str) {
            memcpy(out, m->h[i], 16);
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    td_hash128(str, strlen(str), out);
    m->key[i] = str;
    memcpy(m->h[i], out, 16);
    m->n++;
    return true;
}

/* strmemo_hash, first checking the string that field f had last time. */
static bool strmemo_hash_field(strmemo *m, int f, const char *str, uint8_t out[16])
{
    if (str && str == m->last[f]) {
        memcpy(out, m->last_h[f], 16);
        return true;
    }
    if (!strmemo_hash(m, str, out)) {
        return false;
    }
    m->last[f] = str;
    memcpy(m->last_h[f], out, 16);
    return true;
}

/*
 * A location's cache hash: over its strings' hashes and its line, so equal
 * content gives equal hashes (not the store's content hash, which is over the
 * encoded record and computed only for a location missing from the cache).
 */
static bool loc_cache_hash(strmemo *m, const td_ploc *l, uint8_t out[16])
{
    uint8_t t[4 * 16];
    if (!strmemo_hash(m, l->function, t) || !strmemo_hash_field(m, 0, l->file, t + 32) ||
        !strmemo_hash_field(m, 1, l->mapping, t + 48)) {
        return false;
    }
    /* pprof writers mostly give the system name the function name's string */
    if (l->system_name == l->function) {
        memcpy(t + 16, t, 16);
    } else if (!strmemo_hash(m, l->system_name, t + 16)) {
        return false;
    }
    /*
     * Each half a multiply-xor chain over the strings' (uniform) hash halves
     * and the line, with distinct odd constants per position and half: cheaper
     * than hashing the 72 bytes again, and as good for a cache key.
     */
    static const uint64_t K[2][5] = {
        {0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull, 0x94d049bb133111ebull, 0xff51afd7ed558ccdull,
         0xc4ceb9fe1a85ec53ull},
        {0xd6e8feb86659fd93ull, 0xa0761d6478bd642full, 0xe7037ed1a0b428dbull, 0x8ebc6af09c88c6e3ull,
         0x589965cc75374cc3ull}};
    for (int half = 0; half < 2; half++) {
        uint64_t acc = (uint64_t)l->line * K[half][4] + 0x2545f4914f6cdd1dull;
        for (int f = 0; f < 4; f++) {
            acc = (acc ^ load_le64(t + f * 16 + half * 8)) * K[half][f];
            acc ^= acc >> 31;
        }
        acc *= K[half][4];
        acc ^= acc >> 29;
        for (int i = 0; i < 8; i++) {
            out[half * 8 + i] = (uint8_t)(acc >> (8 * i));
        }
    }
    return true;
}

/*
 * Per-write map of cache keys to the first index that had it, so equal
 * locations or stacks of one write share one ID even when the symbol cache is
 * too small to remember it until the write's batch is applied.
 */
typedef struct keymap {
    uint32_t *slot; /* index + 1; 0 = empty */
    size_t cap;
} keymap;

static bool keymap_init(keymap *m, size_t n)
{
    m->cap = 16;
    while (m->cap < 2 * n + 1) {
        m->cap *= 2;
    }
    m->slot = td_calloc(m->cap, sizeof(*m->slot));
    return m->slot != NULL;
}

/* The first index whose key (16 bytes in keys[]) equals keys[i]'s; i when new. */
static uint32_t keymap_canon(keymap *m, const uint8_t (*keys)[16], uint32_t i)
{
    size_t j = (size_t)load_le64(keys[i]) & (m->cap - 1);
    while (m->slot[j]) {
        uint32_t o = m->slot[j] - 1;
        if (memcmp(keys[o], keys[i], 16) == 0) {
            return o;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slot[j] = i + 1;
    return i;
}

/*
 * Before the write lock: the content hashes of the series, the cache hashes
 * of the locations and the cache keys of the stacks that nonzero samples use,
 * each computed once per write. Pure CPU work on the request's own data, so
 * concurrent writers do it in parallel.
 */
static td_status hash_write(wstate *x, td_err *err)
{
    const td_pwrite *w = x->w;
    strmemo memo = {0};
    keymap lm = {0}, km = {0};
    td_status st = TD_OK;
    uint8_t *need = td_calloc(w->nstacks ? w->nstacks : 1, 1);
    if (!need || !keymap_init(&lm, w->nlocs) || !keymap_init(&km, w->nstacks)) {
        td_free(need);
        td_free(lm.slot);
        return td_err_set(err, TD_NOMEM, "out of memory writing a profile");
    }
    for (size_t i = 0; i < w->nseries; i++) {
        const td_pseries_in *se = &w->series[i];
        for (size_t j = 0; j < se->nsamples; j++) {
            if (se->samples[j].value != 0) {
                need[se->samples[j].stack] = 1;
            }
        }
        encode_labels(&x->rec, se->labels, se->nlabels);
        td_hash128(x->rec.data, x->rec.len, x->series_h[i]);
    }
    for (size_t si = 0; si < w->nstacks && !st; si++) {
        if (!need[si]) {
            continue;
        }
        const td_pstack *k = &w->stacks[si];
        /* a multiply-xor chain per half over the frames' hashes (see loc_cache_hash) */
        uint64_t acc[2] = {k->nframes * 0x9e3779b97f4a7c15ull + 1,
                           k->nframes * 0xd6e8feb86659fd93ull + 2};
        for (uint32_t j = 0; j < k->nframes; j++) {
            uint32_t li = k->frames[j];
            if (!x->loc_hashed[li]) {
                if (!loc_cache_hash(&memo, &w->locs[li], x->loc_h[li])) {
                    st = td_err_set(err, TD_NOMEM, "out of memory writing a profile");
                    break;
                }
                x->loc_hashed[li] = 1;
                x->loc_canon[li] = keymap_canon(&lm, (const uint8_t(*)[16])x->loc_h, li);
            }
            acc[0] = (acc[0] ^ load_le64(x->loc_h[li])) * 0xbf58476d1ce4e5b9ull;
            acc[0] ^= acc[0] >> 31;
            acc[1] = (acc[1] ^ load_le64(x->loc_h[li] + 8)) * 0xa0761d6478bd642full;
            acc[1] ^= acc[1] >> 31;
        }
        /* finalise each half */
        uint8_t h[16];
        for (int half = 0; half < 2; half++) {
            uint64_t v = acc[half] * 0x94d049bb133111ebull;
            v ^= v >> 32;
            for (int i = 0; i < 8; i++) {
                h[half * 8 + i] = (uint8_t)(v >> (8 * i));
            }
        }
        sym_key(h, x->tm, x->stack_k[si]);
        x->stack_canon[si] = keymap_canon(&km, (const uint8_t(*)[16])x->stack_k, (uint32_t)si);
    }
    td_free(lm.slot);
    td_free(km.slot);
    td_free(memo.key);
    td_free(memo.h);
    td_free(need);
    return st;
}

static td_status intern_stack(wstate *x, uint32_t si, td_err *err)
{
    if (sym_get(x->s, CNT_STACK, x->stack_k[si], &x->stack_ids[si])) {
        x->sym[CNT_STACK][SYM_CACHED]++;
        return TD_OK;
    }
    const td_pstack *k = &x->w->stacks[si];
    /* its locations first */
    for (uint32_t j = 0; j < k->nframes; j++) {
        uint32_t li = x->loc_canon[k->frames[j]];
        if (x->loc_ids[li]) {
            continue;
        }
        uint64_t key[2];
        sym_key(x->loc_h[li], x->tm, key);
        int how = SYM_CACHED;
        td_status st = TD_OK;
        if (!sym_get(x->s, CNT_LOC, key, &x->loc_ids[li])) {
            encode_loc(&x->rec, &x->w->locs[li]);
            uint8_t h[16];
            td_hash128(x->rec.data, x->rec.len, h);
            st = intern(x->s, x->wb, x->t, CNT_LOC, TD__PK_LOC_HASH, TD__PK_LOC, h, key,
                        (const uint8_t *)x->rec.data, x->rec.len, &x->loc_ids[li], &how, err);
        }
        if (st) {
            return st;
        }
        x->sym[CNT_LOC][how]++;
    }
    /* hash over the fixed-width IDs; the record holds them as varints */
    td_buf_reset(&x->rec);
    td_buf_reset(&x->rec2);
    td_buf_addch(&x->rec2, TD__PK_V1);
    add_varint(&x->rec2, k->nframes);
    for (uint32_t j = 0; j < k->nframes; j++) {
        uint8_t b[8];
        uint64_t id = x->loc_ids[x->loc_canon[k->frames[j]]];
        td__pk_put_be64(b, id);
        td_buf_add(&x->rec, b, 8);
        add_varint(&x->rec2, id);
    }
    uint8_t h[16];
    td_hash128(x->rec.data, x->rec.len, h);
    int how;
    td_status st =
        intern(x->s, x->wb, x->t, CNT_STACK, TD__PK_STACK_HASH, TD__PK_STACK, h, x->stack_k[si],
               (const uint8_t *)x->rec2.data, x->rec2.len, &x->stack_ids[si], &how, err);
    if (!st) {
        x->sym[CNT_STACK][how]++;
    }
    return st;
}

/* Series ID of series i; a new series also gets its postings. */
static td_status intern_series(wstate *x, size_t i, uint64_t *id, td_err *err)
{
    const td_pseries_in *se = &x->w->series[i];
    uint64_t key[2];
    sym_key(x->series_h[i], x->tm, key);
    int how = SYM_CACHED;
    td_status st = TD_OK;
    if (!sym_get(x->s, CNT_SERIES, key, id)) {
        encode_labels(&x->rec, se->labels, se->nlabels);
        st = intern(x->s, x->wb, x->t, CNT_SERIES, TD__PK_SERIES_HASH, TD__PK_SERIES,
                    x->series_h[i], key, (const uint8_t *)x->rec.data, x->rec.len, id, &how, err);
    }
    if (st) {
        return st;
    }
    x->sym[CNT_SERIES][how]++;
    if (how != SYM_WRITTEN) {
        return TD_OK;
    }
    size_t tlen = strlen(x->t->tenant);
    for (size_t j = 0; j < se->nlabels; j++) {
        td_buf_reset(&x->rec2);
        uint8_t p[TD__PK_TENANT_MAX];
        td_buf_add(&x->rec2, p, td__pk_prefix(p, TD__PK_POSTING, x->t->tenant, tlen));
        td_buf_add(&x->rec2, se->labels[j].name, strlen(se->labels[j].name) + 1);
        td_buf_add(&x->rec2, se->labels[j].value, strlen(se->labels[j].value) + 1);
        uint8_t b[8];
        td__pk_put_be64(b, *id);
        td_buf_add(&x->rec2, b, 8);
        leveldb_writebatch_put(x->wb, x->rec2.data, x->rec2.len, "", 0);
    }
    return TD_OK;
}

static td_status write_locked(wstate *x, td_err *err)
{
    td_pstore *s = x->s;
    const td_pwrite *w = x->w;
    size_t tlen = strlen(x->t->tenant);
    td_buf val = TD_BUF_INIT;
    wsample *ws = NULL;
    size_t ws_cap = 0;
    td_status st = TD_OK;
    for (size_t i = 0; i < w->nseries && !st; i++) {
        const td_pseries_in *se = &w->series[i];
        if (se->nsamples > ws_cap) {
            size_t bytes;
            wsample *n = NULL;
            if (td_size_mul(se->nsamples, sizeof(*ws), &bytes)) {
                n = td_realloc(ws, bytes);
            }
            if (!n) {
                st = td_err_set(err, TD_NOMEM, "out of memory writing a profile");
                break;
            }
            ws = n;
            ws_cap = se->nsamples;
        }
        size_t n = 0;
        for (size_t j = 0; j < se->nsamples && !st; j++) {
            const td_psample *p = &se->samples[j];
            if (p->value == 0) {
                continue;
            }
            uint32_t si = x->stack_canon[p->stack];
            if (!x->stack_ids[si]) {
                st = intern_stack(x, si, err);
            }
            ws[n++] = (wsample){
                x->stack_ids[si], p->span_id, trace_zero(p->trace_id) ? NULL : p->trace_id, 0, 0,
                p->value};
        }
        if (st) {
            break;
        }
        size_t stored;
        st = encode_profile(ws, n, w->duration_ns, &val, &stored, err);
        if (st || !stored) {
            continue;
        }
        uint64_t sid;
        st = intern_series(x, i, &sid, err);
        if (st) {
            break;
        }
        uint8_t k[TD__PK_KEY_MAX];
        size_t klen = td__pk_time_key(k, x->t->tenant, tlen, sid, ns_to_ms(w->time_ns));
        leveldb_writebatch_put(x->wb, (const char *)k, klen, "", 0);
        klen = td__pk_profile_key(k, x->t->tenant, tlen, sid, w->time_ns, s->nonce++);
        leveldb_writebatch_put(x->wb, (const char *)k, klen, val.data, val.len);
        x->nprofiles++;
        x->nsamples += stored;
    }
    td_free(ws);
    td_buf_release(&val);
    return st;
}

td_status td_pstore_write(td_pstore *s, const td_pwrite *w, td_err *err)
{
    const char *tenant = w->tenant;
    size_t tlen;
    td_status st = check_tenant(&tenant, &tlen, err);
    if (!st) {
        st = check_write(w, err);
    }
    if (st) {
        return st;
    }
    wstate x = {.s = s, .w = w, .rec = TD_BUF_INIT, .rec2 = TD_BUF_INIT};
    size_t nl = w->nlocs ? w->nlocs : 1, nk = w->nstacks ? w->nstacks : 1;
    x.loc_ids = td_calloc(nl, sizeof(uint64_t));
    x.stack_ids = td_calloc(nk, sizeof(uint64_t));
    x.loc_h = td_malloc(nl * sizeof(*x.loc_h)); /* set where loc_hashed says */
    x.loc_hashed = td_calloc(nl, 1);
    x.stack_k = td_malloc(nk * sizeof(*x.stack_k)); /* set for the stacks samples use */
    x.series_h = td_calloc(w->nseries ? w->nseries : 1, sizeof(*x.series_h));
    x.loc_canon = td_malloc(nl * sizeof(uint32_t));
    x.stack_canon = td_malloc(nk * sizeof(uint32_t));
    if (!x.loc_ids || !x.stack_ids || !x.loc_h || !x.loc_hashed || !x.stack_k || !x.series_h ||
        !x.loc_canon || !x.stack_canon) {
        st = td_err_set(err, TD_NOMEM, "out of memory writing a profile");
        goto out;
    }
    tenant_mix(tenant, tlen, x.tm);
    st = hash_write(&x, err);
    if (st) {
        goto out;
    }
    x.wb = leveldb_writebatch_create();
    pthread_mutex_lock(&s->write_lock);
    st = tenant_get(s, tenant, tlen, &x.t, err);
    if (!st) {
        memset(x.t->dirty, 0, sizeof(x.t->dirty));
        st = write_locked(&x, err);
    }
    if (!st) {
        for (int c = 0; c < 3; c++) {
            if (!x.t->dirty[c]) {
                continue;
            }
            uint8_t k[TD__PK_TENANT_MAX + 1], v[8];
            size_t klen = td__pk_prefix(k, TD__PK_COUNTER, tenant, tlen);
            k[klen++] = cnt_kind[c];
            td__pk_put_be64(v, x.t->next[c]);
            leveldb_writebatch_put(x.wb, (const char *)k, klen, (const char *)v, 8);
        }
        char *lerr = NULL;
        leveldb_write(s->l.db, s->l.wopts, x.wb, &lerr);
        if (lerr) {
            st = td_err_set(err, TD_IO, "profile store write failed: %s", lerr);
            leveldb_free(lerr);
        }
    }
    if (st) {
        /*
         * IDs noted as interned may not have been written: forget them all (a
         * rare path). Counters stay advanced: IDs only have to be unique.
         */
        sym_clear(s);
    }
    pthread_mutex_unlock(&s->write_lock);
    if (!st) {
        td_metric_add(s->m_profiles, x.nprofiles);
        td_metric_add(s->m_samples, x.nsamples);
        for (int k = 0; k < 3; k++) {
            for (int o = 0; o < 3; o++) {
                td_metric_add(s->m_sym[k][o], x.sym[k][o]);
            }
        }
    }
    leveldb_writebatch_destroy(x.wb);
out:
    td_buf_release(&x.rec);
    td_buf_release(&x.rec2);
    td_free(x.loc_ids);
    td_free(x.stack_ids);
    td_free(x.loc_h);
    td_free(x.loc_hashed);
    td_free(x.stack_k);
    td_free(x.series_h);
    td_free(x.loc_canon);
    td_free(x.stack_canon);
    return st;
}

/* ---- reading series ---- */

/* A growable sorted set of IDs. */
typedef struct idset {
    uint64_t *v;
    size_t n, cap;
} idset;

static bool idset_add(idset *s, uint64_t id)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        uint64_t *nv = td_realloc(s->v, ncap * sizeof(*nv));
        if (!nv) {
            return false;
        }
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = id;
    return true;
}

static void idset_sort(idset *s)
{
    if (s->n < 2) {
        return; /* (and s->v may be NULL: qsort must not see it) */
    }
    qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (k == 0 || s->v[k - 1] != s->v[i]) {
            s->v[k++] = s->v[i];
        }
    }
    s->n = k;
}

/* a := a ∩ b (both sorted, unique) */
static void idset_intersect(idset *a, const idset *b)
{
    size_t i = 0, j = 0, k = 0;
    while (i < a->n && j < b->n) {
        if (a->v[i] < b->v[j]) {
            i++;
        } else if (a->v[i] > b->v[j]) {
            j++;
        } else {
            a->v[k++] = a->v[i];
            i++;
            j++;
        }
    }
    a->n = k;
}

static void idset_release(idset *s)
{
    td_free(s->v);
    memset(s, 0, sizeof(*s));
}

static td_status nomem_read(td_err *err)
{
    return td_err_set(err, TD_NOMEM, "out of memory reading profiles");
}

/*
 * Series IDs from the postings of name: with value, those with exactly that
 * value; with re, those whose value matches it.
 */
static td_status postings(td_pstore *s, const char *tenant, size_t tlen, const char *name,
                          const char *value, const regex_t *re, idset *out, td_err *err)
{
    td_buf pre = TD_BUF_INIT, last = TD_BUF_INIT;
    uint8_t p[TD__PK_TENANT_MAX];
    td_buf_add(&pre, p, td__pk_prefix(p, TD__PK_POSTING, tenant, tlen));
    td_buf_add(&pre, name, strlen(name) + 1);
    if (value) {
        td_buf_add(&pre, value, strlen(value) + 1);
    }
    td_status st = TD_OK;
    bool last_ok = false, have_last = false;
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    for (leveldb_iter_seek(it, pre.data, pre.len); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t klen;
        const char *k = leveldb_iter_key(it, &klen);
        if (klen < pre.len || memcmp(k, pre.data, pre.len) != 0) {
            break;
        }
        const char *rest = k + pre.len;
        size_t rlen = klen - pre.len;
        /* rest: [value NUL] id (8) */
        if (rlen < 8 || (!value && (rlen < 9 || rest[rlen - 9] != '\0'))) {
            st = td_err_set(err, TD_CORRUPT, "malformed posting key (%zu bytes)", klen);
            break;
        }
        if (value && rlen != 8) {
            st = td_err_set(err, TD_CORRUPT, "malformed posting key (%zu bytes)", klen);
            break;
        }
        if (re) {
            size_t vlen = rlen - 9;
            if (!have_last || last.len != vlen || memcmp(last.data, rest, vlen) != 0) {
                td_buf_reset(&last);
                td_buf_add(&last, rest, vlen);
                last_ok = regexec(re, last.data, 0, NULL, 0) == 0;
                have_last = true;
            }
            if (!last_ok) {
                continue;
            }
        }
        if (!idset_add(out, td__pk_get_be64((const uint8_t *)rest + rlen - 8))) {
            st = nomem_read(err);
            break;
        }
    }
    if (!st) {
        st = iter_status(it, err);
    }
    leveldb_iter_destroy(it);
    td_buf_release(&pre);
    td_buf_release(&last);
    idset_sort(out);
    return st;
}

/* Every series ID of the tenant. */
static td_status all_series(td_pstore *s, const char *tenant, size_t tlen, idset *out, td_err *err)
{
    uint8_t p[TD__PK_TENANT_MAX];
    size_t plen = td__pk_prefix(p, TD__PK_SERIES, tenant, tlen);
    td_status st = TD_OK;
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    for (leveldb_iter_seek(it, (const char *)p, plen); leveldb_iter_valid(it);
         leveldb_iter_next(it)) {
        size_t klen;
        const char *k = leveldb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, p, plen) != 0) {
            break;
        }
        if (klen != plen + 8) {
            st = td_err_set(err, TD_CORRUPT, "malformed series key (%zu bytes)", klen);
            break;
        }
        if (!idset_add(out, td__pk_get_be64((const uint8_t *)k + plen))) {
            st = nomem_read(err);
            break;
        }
    }
    if (!st) {
        st = iter_status(it, err);
    }
    leveldb_iter_destroy(it);
    return st;
}

/* Candidate series of one selector; *all when no matcher narrows it through postings. */
static td_status candidates(td_pstore *s, const char *tenant, size_t tlen, const td_pselector *sel,
                            idset *out, bool *all, td_err *err)
{
    *all = true;
    td_status st = TD_OK;
    size_t nm = sel->n + (sel->profile_type ? 1 : 0);
    for (size_t i = 0; i < nm && !st; i++) {
        const char *name, *value = NULL;
        const regex_t *re = NULL;
        if (i == sel->n) {
            name = "__profile_type__";
            value = sel->profile_type;
        } else {
            const td_pmatcher *m = &sel->m[i];
            name = m->name;
            if (m->op == TD_PM_EQ && m->value[0]) {
                value = m->value;
            } else if (m->op == TD_PM_RE && regexec(m->re, "", 0, NULL, 0) != 0) {
                re = m->re;
            } else {
                continue; /* matches series without the label: not narrowed by postings */
            }
        }
        idset one = {0};
        st = postings(s, tenant, tlen, name, value, re, &one, err);
        if (!st) {
            if (*all) {
                idset_release(out);
                *out = one;
                one = (idset){0};
                *all = false;
            } else {
                idset_intersect(out, &one);
            }
        }
        idset_release(&one);
        if (!*all && out->n == 0) {
            break;
        }
    }
    return st;
}

/* A series record decoded: labels point into strs. */
typedef struct series_rec {
    td_buf strs;
    td_plabel *labels;
    size_t n, cap;
} series_rec;

static td_status decode_series(const uint8_t *v, size_t vlen, series_rec *r, td_err *err)
{
    const uint8_t *p = v, *end = v + vlen;
    uint64_t n;
    if (vlen < 1 || *p++ != TD__PK_V1 || !td__pk_get_varint(&p, end, &n) || n > vlen) {
        return td_err_set(err, TD_CORRUPT, "malformed series record (%zu bytes)", vlen);
    }
    td_buf_reset(&r->strs);
    if (!td_buf_try_grow(&r->strs, vlen + 2 * n)) {
        return nomem_read(err);
    }
    if (n > r->cap) {
        td_plabel *nl = td_realloc(r->labels, n * sizeof(*nl));
        if (!nl) {
            return nomem_read(err);
        }
        r->labels = nl;
        r->cap = n;
    }
    /* two passes: copy strings (no regrowth: room was made above), then point at them */
    size_t offs[2];
    for (uint64_t i = 0; i < n; i++) {
        for (int j = 0; j < 2; j++) {
            uint64_t len;
            if (!td__pk_get_varint(&p, end, &len) || len > (uint64_t)(end - p) ||
                memchr(p, 0, len)) {
                return td_err_set(err, TD_CORRUPT, "malformed series record (%zu bytes)", vlen);
            }
            offs[j] = r->strs.len;
            td_buf_add(&r->strs, p, len);
            td_buf_addch(&r->strs, '\0');
            p += len;
        }
        r->labels[i].name = (const char *)(uintptr_t)offs[0];
        r->labels[i].value = (const char *)(uintptr_t)offs[1];
    }
    if (p != end) {
        return td_err_set(err, TD_CORRUPT, "malformed series record (%zu bytes)", vlen);
    }
    for (uint64_t i = 0; i < n; i++) {
        r->labels[i].name = r->strs.data + (uintptr_t)r->labels[i].name;
        r->labels[i].value = r->strs.data + (uintptr_t)r->labels[i].value;
    }
    r->n = n;
    return TD_OK;
}

/* Whether series id has a profile with a time (ms) in [start_ms, end_ms]. */
static td_status has_time(leveldb_iterator_t *it, const char *tenant, size_t tlen, uint64_t id,
                          int64_t start_ms, int64_t end_ms, bool *yes, td_err *err)
{
    uint8_t k[TD__PK_KEY_MAX];
    size_t klen = td__pk_time_key(k, tenant, tlen, id, start_ms);
    size_t plen = klen - 8;
    *yes = false;
    leveldb_iter_seek(it, (const char *)k, klen);
    if (leveldb_iter_valid(it)) {
        size_t fl;
        const uint8_t *f = (const uint8_t *)leveldb_iter_key(it, &fl);
        if (fl >= plen && memcmp(f, k, plen) == 0) {
            if (fl != klen) {
                return td_err_set(err, TD_CORRUPT, "malformed time index key (%zu bytes)", fl);
            }
            *yes = td__pk_get_time(f + plen) <= end_ms;
        }
    }
    return iter_status(it, err);
}

td_status td_pstore_series(td_pstore *s, const char *tenant, const td_pselector *sels, size_t nsels,
                           int64_t start_ms, int64_t end_ms, td_pseries_cb cb, void *ud,
                           td_err *err)
{
    size_t tlen;
    td_status st = check_tenant(&tenant, &tlen, err);
    if (st) {
        return st;
    }
    idset ids = {0};
    bool all = nsels == 0;
    for (size_t i = 0; i < nsels && !all && !st; i++) {
        idset c = {0};
        st = candidates(s, tenant, tlen, &sels[i], &c, &all, err);
        for (size_t j = 0; !st && !all && j < c.n; j++) {
            if (!idset_add(&ids, c.v[j])) {
                st = nomem_read(err);
            }
        }
        idset_release(&c);
    }
    if (!st && all) {
        ids.n = 0;
        st = all_series(s, tenant, tlen, &ids, err);
    }
    idset_sort(&ids);
    series_rec r = {.strs = TD_BUF_INIT};
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    for (size_t i = 0; i < ids.n && !st; i++) {
        if (end_ms != 0) {
            bool yes;
            st = has_time(it, tenant, tlen, ids.v[i], start_ms, end_ms, &yes, err);
            if (st || !yes) {
                continue;
            }
        }
        uint8_t k[TD__PK_KEY_MAX];
        size_t klen = td__pk_id_key(k, TD__PK_SERIES, tenant, tlen, ids.v[i]);
        char *v;
        size_t vlen;
        st = db_get(s, k, klen, &v, &vlen, err);
        if (st) {
            break;
        }
        if (!v) {
            st = td_err_set(err, TD_CORRUPT, "a posting names a missing series record");
            break;
        }
        st = decode_series((const uint8_t *)v, vlen, &r, err);
        leveldb_free(v);
        if (st) {
            break;
        }
        bool match = nsels == 0;
        for (size_t j = 0; j < nsels && !match; j++) {
            match = td_pselector_match(&sels[j], r.labels, r.n);
        }
        if (!match) {
            continue;
        }
        td_pseries out = {ids.v[i], r.labels, r.n};
        if (!cb(ud, &out)) {
            break;
        }
    }
    leveldb_iter_destroy(it);
    td_buf_release(&r.strs);
    td_free(r.labels);
    idset_release(&ids);
    return st;
}

/* ---- reading profiles ---- */

typedef struct profile_hdr {
    uint8_t flags;
    uint64_t duration_ns;
    int64_t total;
    uint64_t nsamples, gcd;
    uint64_t nspans, ntraces;
    const uint8_t *spans, *traces; /* tables */
    const uint8_t *p, *end;        /* the samples */
} profile_hdr;

static bool parse_profile_hdr(const uint8_t *v, size_t vlen, profile_hdr *h)
{
    memset(h, 0, sizeof(*h));
    const uint8_t *p = v, *end = v + vlen;
    uint64_t tot;
    if (vlen < 2 || p[0] != TD__PK_V1 || (p[1] & ~(TD__PK_F_SPANS | TD__PK_F_TRACES))) {
        return false;
    }
    h->flags = p[1];
    p += 2;
    if (!td__pk_get_varint(&p, end, &h->duration_ns) || !td__pk_get_varint(&p, end, &tot) ||
        !td__pk_get_varint(&p, end, &h->nsamples) || !td__pk_get_varint(&p, end, &h->gcd) ||
        h->gcd == 0 || h->gcd > (uint64_t)INT64_MAX || h->nsamples > vlen) {
        return false;
    }
    h->total = td__pk_unzigzag(tot);
    if (h->flags & TD__PK_F_SPANS) {
        if (!td__pk_get_varint(&p, end, &h->nspans) || h->nspans > (uint64_t)(end - p) / 8) {
            return false;
        }
        h->spans = p;
        p += h->nspans * 8;
    }
    if (h->flags & TD__PK_F_TRACES) {
        if (!td__pk_get_varint(&p, end, &h->ntraces) || h->ntraces > (uint64_t)(end - p) / 16) {
            return false;
        }
        h->traces = p;
        p += h->ntraces * 16;
    }
    h->p = p;
    h->end = end;
    return true;
}

/* Decode and visit the samples; *stop when the callback said so. */
static td_status visit_samples(profile_hdr *h, uint64_t series, int64_t time_ns, const td_pvisit *v,
                               bool *stop, td_err *err)
{
    uint64_t stack = 0;
    for (uint64_t i = 0; i < h->nsamples; i++) {
        uint64_t d, zv, si = 0, ti = 0;
        int64_t val;
        if (!td__pk_get_varint(&h->p, h->end, &d) || !td__pk_get_varint(&h->p, h->end, &zv) ||
            ((h->flags & TD__PK_F_SPANS) && !td__pk_get_varint(&h->p, h->end, &si)) ||
            ((h->flags & TD__PK_F_TRACES) && !td__pk_get_varint(&h->p, h->end, &ti)) ||
            si > h->nspans || ti > h->ntraces || __builtin_add_overflow(stack, d, &stack) ||
            __builtin_mul_overflow(td__pk_unzigzag(zv), (int64_t)h->gcd, &val)) {
            return td_err_set(err, TD_CORRUPT, "malformed stored profile");
        }
        td_psample_out o = {series, time_ns, stack, val, 0, NULL};
        if (si) {
            o.span_id = td__pk_get_be64(h->spans + (si - 1) * 8);
        }
        if (ti) {
            o.trace_id = h->traces + (ti - 1) * 16;
        }
        if (!v->sample(v->ud, &o)) {
            *stop = true;
            return TD_OK;
        }
    }
    if (h->p != h->end) {
        return td_err_set(err, TD_CORRUPT, "malformed stored profile");
    }
    return TD_OK;
}

td_status td_pstore_select(td_pstore *s, const char *tenant, const uint64_t *series, size_t nseries,
                           int64_t start_ms, int64_t end_ms, const td_pvisit *v, td_err *err)
{
    size_t tlen;
    td_status st = check_tenant(&tenant, &tlen, err);
    if (st) {
        return st;
    }
    idset ids = {0};
    for (size_t i = 0; i < nseries; i++) {
        if (!idset_add(&ids, series[i])) {
            idset_release(&ids);
            return nomem_read(err);
        }
    }
    idset_sort(&ids);
    int64_t lo = ms_to_ns_floor(start_ms);
    int64_t hi = end_ms == 0 ? INT64_MAX : ms_to_ns_ceil(end_ms);
    bool stop = false;
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    for (size_t i = 0; i < ids.n && !st && !stop; i++) {
        uint8_t k[TD__PK_KEY_MAX];
        size_t klen = td__pk_profile_key(k, tenant, tlen, ids.v[i], lo, 0);
        size_t plen = klen - 12;
        for (leveldb_iter_seek(it, (const char *)k, klen); leveldb_iter_valid(it);
             leveldb_iter_next(it)) {
            size_t fl, vlen;
            const uint8_t *f = (const uint8_t *)leveldb_iter_key(it, &fl);
            if (fl < plen || memcmp(f, k, plen) != 0) {
                break;
            }
            if (fl != plen + 12) {
                st = td_err_set(err, TD_CORRUPT, "malformed profile key (%zu bytes)", fl);
                break;
            }
            int64_t t = td__pk_get_time(f + plen);
            if (t > hi) {
                break;
            }
            const uint8_t *val = (const uint8_t *)leveldb_iter_value(it, &vlen);
            profile_hdr h;
            if (!parse_profile_hdr(val, vlen, &h)) {
                st = td_err_set(err, TD_CORRUPT, "malformed stored profile (%zu bytes)", vlen);
                break;
            }
            if (v->profile && !v->profile(v->ud, ids.v[i], t, h.total)) {
                stop = true;
                break;
            }
            if (v->sample) {
                st = visit_samples(&h, ids.v[i], t, v, &stop, err);
                if (st || stop) {
                    break;
                }
            }
        }
        if (!st) {
            st = iter_status(it, err);
        }
    }
    leveldb_iter_destroy(it);
    idset_release(&ids);
    return st;
}

td_status td_pstore_stack(td_pstore *s, const char *tenant, uint64_t id, uint64_t *locs, size_t max,
                          size_t *n, td_err *err)
{
    size_t tlen;
    td_status st = check_tenant(&tenant, &tlen, err);
    if (st) {
        return st;
    }
    *n = 0;
    uint8_t k[TD__PK_KEY_MAX];
    size_t klen = td__pk_id_key(k, TD__PK_STACK, tenant, tlen, id);
    char *v;
    size_t vlen;
    st = db_get(s, k, klen, &v, &vlen, err);
    if (st) {
        return st;
    }
    if (!v) {
        return td_err_set(err, TD_NOT_FOUND, "stack %llu not found", (unsigned long long)id);
    }
    const uint8_t *p = (const uint8_t *)v, *end = p + vlen;
    uint64_t nf = 0;
    if (vlen < 1 || *p++ != TD__PK_V1 || !td__pk_get_varint(&p, end, &nf) || nf > vlen) {
        st = td_err_set(err, TD_CORRUPT, "malformed stack record (%zu bytes)", vlen);
    }
    for (uint64_t i = 0; !st && i < nf; i++) {
        uint64_t loc;
        if (!td__pk_get_varint(&p, end, &loc)) {
            st = td_err_set(err, TD_CORRUPT, "malformed stack record (%zu bytes)", vlen);
            break;
        }
        if (i < max) {
            locs[i] = loc;
        }
    }
    if (!st && p != end) {
        st = td_err_set(err, TD_CORRUPT, "malformed stack record (%zu bytes)", vlen);
    }
    if (!st) {
        *n = (size_t)nf;
    }
    leveldb_free(v);
    return st;
}

td_status td_pstore_location(td_pstore *s, const char *tenant, uint64_t id, td_arena *a,
                             td_ploc *out, td_err *err)
{
    size_t tlen;
    td_status st = check_tenant(&tenant, &tlen, err);
    if (st) {
        return st;
    }
    uint8_t k[TD__PK_KEY_MAX];
    size_t klen = td__pk_id_key(k, TD__PK_LOC, tenant, tlen, id);
    char *v;
    size_t vlen;
    st = db_get(s, k, klen, &v, &vlen, err);
    if (st) {
        return st;
    }
    if (!v) {
        return td_err_set(err, TD_NOT_FOUND, "location %llu not found", (unsigned long long)id);
    }
    const uint8_t *p = (const uint8_t *)v, *end = p + vlen;
    uint64_t line = 0;
    const char *strs[4] = {0};
    if (vlen < 1 || *p++ != TD__PK_V1 || !td__pk_get_varint(&p, end, &line)) {
        st = td_err_set(err, TD_CORRUPT, "malformed location record (%zu bytes)", vlen);
    }
    for (int i = 0; i < 4 && !st; i++) {
        uint64_t len;
        if (!td__pk_get_varint(&p, end, &len) || len > (uint64_t)(end - p) || memchr(p, 0, len)) {
            st = td_err_set(err, TD_CORRUPT, "malformed location record (%zu bytes)", vlen);
            break;
        }
        strs[i] = td_arena_strndup(a, (const char *)p, len);
        if (!strs[i]) {
            st = nomem_read(err);
        }
        p += len;
    }
    if (!st && p != end) {
        st = td_err_set(err, TD_CORRUPT, "malformed location record (%zu bytes)", vlen);
    }
    if (!st) {
        out->line = td__pk_unzigzag(line);
        out->function = strs[0];
        out->system_name = strs[1];
        out->file = strs[2];
        out->mapping = strs[3];
    }
    leveldb_free(v);
    return st;
}

td_status td_pstore_stats(td_pstore *s, const char *tenant, bool *any, int64_t *oldest_ms,
                          int64_t *newest_ms, td_err *err)
{
    size_t tlen;
    td_status st = check_tenant(&tenant, &tlen, err);
    *any = false;
    *oldest_ms = *newest_ms = 0;
    if (st) {
        return st;
    }
    /*
     * The time index is ordered by series, then time: per series, its first
     * key is its oldest profile and the key before the next series its newest.
     */
    uint8_t p[TD__PK_TENANT_MAX];
    size_t plen = td__pk_prefix(p, TD__PK_TIME, tenant, tlen);
    leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
    leveldb_iter_seek(it, (const char *)p, plen);
    while (leveldb_iter_valid(it)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, p, plen) != 0) {
            break;
        }
        if (klen != plen + 16) {
            st = td_err_set(err, TD_CORRUPT, "malformed time index key (%zu bytes)", klen);
            break;
        }
        uint64_t id = td__pk_get_be64(k + plen);
        int64_t first = td__pk_get_time(k + plen + 8);
        if (!*any || first < *oldest_ms) {
            *oldest_ms = first;
        }
        if (!*any || first > *newest_ms) {
            *newest_ms = first;
        }
        *any = true;
        if (id == UINT64_MAX) {
            break; /* cannot seek past it; its first key is all we know cheaply */
        }
        uint8_t nk[TD__PK_KEY_MAX];
        size_t nklen = td__pk_id_key(nk, TD__PK_TIME, tenant, tlen, id + 1);
        leveldb_iter_seek(it, (const char *)nk, nklen);
        if (leveldb_iter_valid(it)) {
            leveldb_iter_prev(it);
        } else {
            leveldb_iter_seek_to_last(it);
        }
        if (leveldb_iter_valid(it)) {
            k = (const uint8_t *)leveldb_iter_key(it, &klen);
            if (klen == plen + 16 && memcmp(k, p, plen) == 0 && td__pk_get_be64(k + plen) == id) {
                int64_t last = td__pk_get_time(k + plen + 8);
                if (last > *newest_ms) {
                    *newest_ms = last;
                }
            }
        }
        leveldb_iter_seek(it, (const char *)nk, nklen);
    }
    if (!st) {
        st = iter_status(it, err);
    }
    leveldb_iter_destroy(it);
    return st;
}

uint64_t td_pstore_approx_size(td_pstore *s)
{
    static const char limit[8] = {'\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff'};
    const char *start_key = "";
    const char *limit_key = limit;
    size_t start_len = 0, limit_len = sizeof(limit);
    uint64_t size = 0;
    leveldb_approximate_sizes(s->l.db, 1, &start_key, &start_len, &limit_key, &limit_len, &size);
    return size;
}

/* ---- retention (FORMAT-PROFILES.md, "Retention") ---- */

#define RETAIN_BATCH_BYTES (4u << 20)

/* Forget the cached ID of the series whose content hash is h (caller holds write_lock). */
static void sym_drop_series(td_pstore *s, const char *tenant, size_t tlen, const uint8_t h[16])
{
    uint64_t tm[2], key[2];
    tenant_mix(tenant, tlen, tm);
    sym_key(h, tm, key);
    sym_tab *t = &s->sym[CNT_SERIES];
    sym_ent *set = t->e + (key[0] & t->mask) * SYM_WAYS;
    for (int w = 0; w < SYM_WAYS; w++) {
        if (set[w].a == key[0] && set[w].b == key[1]) {
            memmove(set + w, set + w + 1, (size_t)(SYM_WAYS - 1 - w) * sizeof(*set));
            set[SYM_WAYS - 1] = (sym_ent){0, 0, 0};
            break; /* a key is in a set once */
        }
    }
}

/*
 * The labels' postings, its label-set hash record and the series record of
 * series id, into wb (caller holds write_lock). *nposts counts the postings.
 */
static td_status drop_series(td_pstore *s, leveldb_writebatch_t *wb, const char *tenant,
                             size_t tlen, uint64_t id, series_rec *r, uint64_t *nposts, td_err *err)
{
    uint8_t k[TD__PK_KEY_MAX];
    size_t klen = td__pk_id_key(k, TD__PK_SERIES, tenant, tlen, id);
    char *v;
    size_t vlen;
    td_status st = db_get(s, k, klen, &v, &vlen, err);
    if (st || !v) {
        return st;
    }
    st = decode_series((const uint8_t *)v, vlen, r, err);
    if (!st) {
        uint8_t h[16], hk[TD__PK_KEY_MAX];
        td_hash128(v, vlen, h);
        size_t hkl = td__pk_hash_key(hk, TD__PK_SERIES_HASH, tenant, tlen, h);
        leveldb_writebatch_delete(wb, (const char *)hk, hkl);
        sym_drop_series(s, tenant, tlen, h);
        td_buf pk = TD_BUF_INIT;
        for (size_t i = 0; i < r->n; i++) {
            uint8_t p[TD__PK_TENANT_MAX], b[8];
            td_buf_reset(&pk);
            td_buf_add(&pk, p, td__pk_prefix(p, TD__PK_POSTING, tenant, tlen));
            td_buf_add(&pk, r->labels[i].name, strlen(r->labels[i].name) + 1);
            td_buf_add(&pk, r->labels[i].value, strlen(r->labels[i].value) + 1);
            td__pk_put_be64(b, id);
            td_buf_add(&pk, b, 8);
            leveldb_writebatch_delete(wb, pk.data, pk.len);
            (*nposts)++;
        }
        td_buf_release(&pk);
        leveldb_writebatch_delete(wb, (const char *)k, klen);
    }
    leveldb_free(v);
    return st;
}

/*
 * One series: its profiles before cut_ns and their time index keys, in
 * batches of at most RETAIN_BATCH_BYTES, each read from an iterator created
 * under the write lock and committed before it is released, so no write
 * interleaves with a batch. The series itself (with its postings and hash
 * record) goes in the batch that finds it has no profile left.
 */
static td_status retain_series(td_pstore *s, const char *tenant, size_t tlen, uint64_t id,
                               int64_t cut_ms, const atomic_bool *stop, series_rec *r,
                               td_pstore_retained *out, td_err *err)
{
    int64_t cut_ns = cut_ms * 1000000;
    td_status st = TD_OK;
    bool more = true;
    while (more && !st && !(stop && atomic_load_explicit(stop, memory_order_relaxed))) {
        more = false;
        bool remaining = false;
        int64_t next_ns = 0;
        uint64_t nprof = 0, ntime = 0, nser = 0, npost = 0;
        size_t bytes = 0;
        uint8_t k[TD__PK_KEY_MAX];
        pthread_mutex_lock(&s->write_lock);
        leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
        leveldb_writebatch_t *wb = leveldb_writebatch_create();
        size_t klen = td__pk_profile_key(k, tenant, tlen, id, INT64_MIN, 0);
        size_t plen = klen - 12;
        for (leveldb_iter_seek(it, (const char *)k, klen); leveldb_iter_valid(it);
             leveldb_iter_next(it)) {
            size_t fl;
            const uint8_t *f = (const uint8_t *)leveldb_iter_key(it, &fl);
            if (fl < plen || memcmp(f, k, plen) != 0) {
                break;
            }
            if (fl != klen) {
                st = td_err_set(err, TD_CORRUPT, "malformed profile key (%zu bytes)", fl);
                break;
            }
            int64_t t = td__pk_get_time(f + plen);
            if (t >= cut_ns) {
                remaining = true;
                break;
            }
            if (bytes >= RETAIN_BATCH_BYTES) {
                more = true;
                next_ns = t;
                break;
            }
            leveldb_writebatch_delete(wb, (const char *)f, fl);
            bytes += fl + 8;
            nprof++;
        }
        /*
         * Time keys of the milliseconds no profile is left in: below the next
         * kept profile's (a full batch), the cutoff (profiles remain after
         * it), or all of them (none remains).
         */
        int64_t ibound = more ? ns_to_ms(next_ns) : remaining ? cut_ms : INT64_MAX;
        klen = td__pk_time_key(k, tenant, tlen, id, INT64_MIN);
        plen = klen - 8;
        for (leveldb_iter_seek(it, (const char *)k, klen); !st && leveldb_iter_valid(it);
             leveldb_iter_next(it)) {
            size_t fl;
            const uint8_t *f = (const uint8_t *)leveldb_iter_key(it, &fl);
            if (fl != klen || memcmp(f, k, plen) != 0 || td__pk_get_time(f + plen) >= ibound) {
                break;
            }
            leveldb_writebatch_delete(wb, (const char *)f, fl);
            ntime++;
        }
        if (!st) {
            st = iter_status(it, err);
        }
        if (!st && !more && !remaining) {
            nser = 1;
            st = drop_series(s, wb, tenant, tlen, id, r, &npost, err);
        }
        if (!st && (nprof || ntime || nser)) {
            char *lerr = NULL;
            leveldb_write(s->l.db, s->l.wopts, wb, &lerr);
            if (lerr) {
                st = td_err_set(err, TD_IO, "retention delete failed: %s", lerr);
                leveldb_free(lerr);
            }
        }
        pthread_mutex_unlock(&s->write_lock);
        leveldb_writebatch_destroy(wb);
        leveldb_iter_destroy(it);
        if (!st) {
            out->profiles += nprof;
            out->time_keys += ntime;
            out->series += nser;
            out->postings += npost;
        }
    }
    return st;
}

td_status td_pstore_retain(td_pstore *s, int64_t cutoff_ns, const atomic_bool *stop,
                           td_pstore_retained *out, td_err *err)
{
    td_pstore_retained r = {0};
    td_status st = TD_OK;
    int64_t cut_ms = ns_to_ms(cutoff_ns);
    if (cutoff_ns > 0) {
        series_rec rec = {.strs = TD_BUF_INIT};
        leveldb_iterator_t *it = leveldb_create_iterator(s->l.db, s->l.ropts);
        char c = TD__PK_SERIES;
        for (leveldb_iter_seek(it, &c, 1); !st && leveldb_iter_valid(it); leveldb_iter_next(it)) {
            if (stop && atomic_load_explicit(stop, memory_order_relaxed)) {
                break;
            }
            size_t klen;
            const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &klen);
            if (klen == 0 || k[0] != TD__PK_SERIES) {
                break;
            }
            size_t tl = klen > 1 ? k[1] : 0;
            if (klen != 2 + tl + 8) {
                st = td_err_set(err, TD_CORRUPT, "malformed series key (%zu bytes)", klen);
                break;
            }
            char tenant[TD_TENANT_MAX + 1];
            memcpy(tenant, k + 2, tl);
            tenant[tl] = '\0';
            st = retain_series(s, tenant, tl, td__pk_get_be64(k + 2 + tl), cut_ms, stop, &rec, &r,
                               err);
        }
        if (!st) {
            st = iter_status(it, err);
        }
        leveldb_iter_destroy(it);
        td_buf_release(&rec.strs);
        td_free(rec.labels);
    }
    td_count(TD_M_RETENTION_DELETED, r.profiles, "profiles", "profile");
    td_count(TD_M_RETENTION_DELETED, r.time_keys, "profiles", "time_index");
    td_count(TD_M_RETENTION_DELETED, r.series, "profiles", "series");
    td_count(TD_M_RETENTION_DELETED, r.postings, "profiles", "posting");
    if (out) {
        *out = r;
    }
    return st;
}
