/*
 * test_store.c - the LevelDB store: key layout, write/read, time windows,
 * tenants, durability across reopen, td_batch allocation and OOM paths,
 * resource records (de-duplicated resources) and reading older value versions.
 * Every test works in a fresh directory under $TD_TEST_TMP and removes it.
 *
 * A few tests open the database with LevelDB's C API directly (with the store
 * closed) to plant or remove raw records, as a store written by an older
 * version or damaged on disk would have them.
 */
#include "core/buf.h"
#include "core/hash.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/keys.h"
#include "store/store.h"
#include "td_test.h"

#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <leveldb/c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- fixtures ---- */

static char tmpdir[4096];

static void tmp_make(void)
{
    const char *base = getenv("TD_TEST_TMP");
    if (!base || !*base) {
        base = "/tmp";
    }
    mkdir(base, 0755);
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_store-XXXXXX", base);
    TD_CHECK(mkdtemp(tmpdir) != NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmp_remove(void)
{
    if (tmpdir[0]) {
        TD_ASSERT_EQ_INT(nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
        tmpdir[0] = '\0';
    }
}

/* Options for a store at <tmpdir>/<sub>. dir is heap; free with opts_release. */
static td_store_opts opts_for(const char *sub)
{
    td_store_opts o = {0};
    td_buf b = TD_BUF_INIT;
    td_buf_addf(&b, "%s/%s", tmpdir, sub);
    o.dir = td_buf_detach(&b, NULL);
    o.cache_bytes = 8 << 20;
    o.write_buffer_bytes = 4 << 20;
    o.sync = false;
    return o;
}

static void opts_release(td_store_opts *o)
{
    td_free(o->dir);
    o->dir = NULL;
}

static td_store *open_store(const td_store_opts *o)
{
    td_store *s = NULL;
    td_err err;
    td_err_init(&err);
    td_status st = td_store_open(o, &s, &err);
    if (st) {
        fprintf(stderr, "  open: %s\n", err.msg);
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    TD_CHECK(s != NULL);
    return s;
}

static void tid_of(uint8_t out[16], unsigned x)
{
    memset(out, 0, 16);
    out[0] = (uint8_t)(x >> 8);
    out[15] = (uint8_t)x;
}

/* One fragment to write: its payload is the text, so reads can be checked by content. */
typedef struct fspec {
    unsigned tid;
    uint64_t start, end;
    uint32_t nspans;
    char text[48];
} fspec;

static td_batch *make_batch(const char *tenant, const fspec *f, size_t n)
{
    size_t data = 0;
    for (size_t i = 0; i < n; i++) {
        data += strlen(f[i].text);
    }
    td_batch *b = td_batch_new(tenant, n, data);
    TD_CHECK(b != NULL);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        td_frag *fr = &b->frags[i];
        tid_of(fr->trace_id, f[i].tid);
        fr->start_ns = f[i].start;
        fr->end_ns = f[i].end;
        fr->nspans = f[i].nspans;
        fr->len = (uint32_t)strlen(f[i].text);
        memcpy(b->data + off, f[i].text, fr->len);
        fr->data = b->data + off;
        off += fr->len;
        b->q.spans += f[i].nspans;
    }
    b->q.bytes = sizeof(*b) + data;
    return b;
}

static void write_one(td_store *s, const char *tenant, const fspec *f, size_t n)
{
    td_batch *b = make_batch(tenant, f, n);
    td_err err;
    td_err_init(&err);
    td_status st = td_store_write(s, &b, 1, &err);
    td_batch_free(b);
    TD_ASSERT_EQ_INT(st, TD_OK);
}

/* Collects visited fragments as "text;text;..." */
static td_status collect(void *ud, const uint8_t *data, size_t len, td_err *err)
{
    (void)err;
    td_buf *b = ud;
    td_buf_add(b, data, len);
    td_buf_addch(b, ';');
    return TD_OK;
}

/* Read trace tid of tenant into out (reset first); returns the status. */
static td_status read_trace(td_store *s, const char *tenant, unsigned tid, uint64_t start,
                            uint64_t end, td_buf *out)
{
    uint8_t id[16];
    tid_of(id, tid);
    td_buf_reset(out);
    td_err err;
    td_err_init(&err);
    return td_store_trace_get(s, tenant, id, start, end, collect, out, &err);
}

/* n fragments of 2 KiB of poorly compressible bytes, trace IDs 0x8000.. */
static void write_big(td_store *s, const char *tenant, unsigned n)
{
    enum { LEN = 2048 };
    for (unsigned i = 0; i < n; i++) {
        td_batch *b = td_batch_new(tenant, 1, LEN);
        TD_CHECK(b != NULL);
        tid_of(b->frags[0].trace_id, 0x8000 + i);
        for (size_t j = 0; j < LEN; j++) {
            b->data[j] = (uint8_t)(j * 7919u + i * 31u + (j >> 3) * 13u);
        }
        b->frags[0].data = b->data;
        b->frags[0].len = LEN;
        td_err err;
        td_err_init(&err);
        TD_ASSERT_OK(td_store_write(s, &b, 1, &err));
        td_batch_free(b);
    }
}

/* ---- keys ---- */

static void key_for(uint8_t *k, size_t *klen, const char *tenant, unsigned tid, uint64_t start,
                    uint64_t seq)
{
    uint8_t id[16];
    tid_of(id, tid);
    *klen = td__key_trace(k, tenant, strlen(tenant), id, start, seq);
}

/* memcmp order as LevelDB's bytewise comparator sees it. */
static int keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static void test_key_layout(void)
{
    uint8_t k[TD__KEY_TRACE_MAX];
    uint8_t id[16];
    tid_of(id, 0x0102);
    size_t n = td__key_trace(k, "ab", 2, id, 0x1122334455667788ULL, 0x99ULL);
    TD_ASSERT_EQ_U64(n, 34 + 2);
    TD_ASSERT_EQ_INT(k[0], 'T');
    TD_ASSERT_EQ_INT(k[1], 2);
    TD_ASSERT_EQ_MEM(k + 2, "ab", 2);
    TD_ASSERT_EQ_MEM(k + 4, id, 16);
    static const uint8_t start_be[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    static const uint8_t seq_be[8] = {0, 0, 0, 0, 0, 0, 0, 0x99};
    TD_ASSERT_EQ_MEM(k + 20, start_be, 8);
    TD_ASSERT_EQ_MEM(k + 28, seq_be, 8);

    uint64_t start, seq;
    TD_CHECK(td__key_trace_tail(k, n, 20, &start, &seq));
    TD_ASSERT_EQ_U64(start, 0x1122334455667788ULL);
    TD_ASSERT_EQ_U64(seq, 0x99);
    TD_CHECK(!td__key_trace_tail(k, n - 1, 20, &start, &seq));

    /* the longest tenant still fits */
    char big[TD_TENANT_MAX + 1];
    memset(big, 'x', TD_TENANT_MAX);
    big[TD_TENANT_MAX] = '\0';
    TD_ASSERT_EQ_U64(td__key_trace(k, big, TD_TENANT_MAX, id, 1, 2), TD__KEY_TRACE_MAX);

    /* v1 value header */
    uint8_t v[TD__VAL_V1_HDR + 3];
    td__val_header_v1(v, 0xAABBCCDDEEFF0011ULL, 70000);
    memcpy(v + TD__VAL_V1_HDR, "abc", 3);
    static const uint8_t v1_hdr[13] = {1,    0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
                                       0x00, 0x11, 0,    1,    0x11, 0x70};
    TD_ASSERT_EQ_MEM(v, v1_hdr, 13);
    td__val pv;
    TD_CHECK(td__val_parse(v, sizeof(v), &pv));
    TD_ASSERT_EQ_U64(pv.end_ns, 0xAABBCCDDEEFF0011ULL);
    TD_ASSERT_EQ_U64(pv.nspans, 70000);
    TD_CHECK(pv.res_hash == NULL);
    TD_CHECK(pv.frag == v + 13 && pv.frag_len == 3);
    TD_CHECK(td__val_parse(v, TD__VAL_V1_HDR, &pv)); /* empty fragment is fine */
    TD_ASSERT_EQ_U64(pv.frag_len, 0);
    TD_CHECK(!td__val_parse(v, TD__VAL_V1_HDR - 1, &pv));
    v[0] = 3; /* unknown version */
    TD_CHECK(!td__val_parse(v, sizeof(v), &pv));
    v[0] = 0;
    TD_CHECK(!td__val_parse(v, sizeof(v), &pv));

    /* v2 without and with a resource hash */
    uint8_t w[TD__VAL_V2_HDR_MAX + 2];
    TD_ASSERT_EQ_U64(td__val_header_v2(w, 5, 6, NULL), 14);
    static const uint8_t v2_hdr[14] = {2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 6, 0};
    TD_ASSERT_EQ_MEM(w, v2_hdr, 14);
    memcpy(w + 14, "xy", 2);
    TD_CHECK(td__val_parse(w, 16, &pv));
    TD_CHECK(pv.res_hash == NULL && pv.frag == w + 14 && pv.frag_len == 2);
    TD_ASSERT_EQ_U64(pv.end_ns, 5);
    TD_ASSERT_EQ_U64(pv.nspans, 6);
    TD_CHECK(td__val_parse(w, 14, &pv));
    TD_CHECK(!td__val_parse(w, 13, &pv)); /* no flags byte */
    uint8_t h[16];
    for (int i = 0; i < 16; i++) {
        h[i] = (uint8_t)(0xA0 + i);
    }
    TD_ASSERT_EQ_U64(td__val_header_v2(w, 7, 8, h), 30);
    TD_ASSERT_EQ_INT(w[13], TD__VAL_F_RES);
    TD_ASSERT_EQ_MEM(w + 14, h, 16);
    memcpy(w + 30, "xy", 2);
    TD_CHECK(td__val_parse(w, 32, &pv));
    TD_CHECK(pv.res_hash == w + 14 && pv.frag == w + 30 && pv.frag_len == 2);
    TD_CHECK(td__val_parse(w, 30, &pv));
    TD_CHECK(!td__val_parse(w, 29, &pv)); /* flag set, hash cut short */
    w[13] = 0x02;                         /* a flag this version does not know */
    TD_CHECK(!td__val_parse(w, 32, &pv));

    /* resource key: 'R' | len | tenant | hash */
    uint8_t rk[TD__KEY_RES_MAX];
    TD_ASSERT_EQ_U64(td__key_res(rk, "ab", 2, h), 20);
    TD_ASSERT_EQ_INT(rk[0], 'R');
    TD_ASSERT_EQ_INT(rk[1], 2);
    TD_ASSERT_EQ_MEM(rk + 2, "ab", 2);
    TD_ASSERT_EQ_MEM(rk + 4, h, 16);
    TD_ASSERT_EQ_U64(td__key_res(rk, big, TD_TENANT_MAX, h), TD__KEY_RES_MAX);
}

static void test_key_order(void)
{
    uint8_t a[TD__KEY_TRACE_MAX], b[TD__KEY_TRACE_MAX];
    size_t al, bl;

    /* tenant isolation: the prefix of "a" is not a prefix of any "ab" key */
    uint8_t pa[TD__KEY_TRACE_PREFIX_MAX];
    uint8_t id[16];
    tid_of(id, 7);
    size_t pal = td__key_trace_prefix(pa, "a", 1, id);
    key_for(b, &bl, "ab", 7, 5, 5);
    TD_CHECK(memcmp(pa, b, pal) != 0);
    /* ... even when the "ab" trace id starts with the byte 'b' */
    uint8_t idb[16];
    memset(idb, 'b', 16);
    pal = td__key_trace_prefix(pa, "a", 1, id);
    bl = td__key_trace(b, "ab", 2, idb, 0, 0);
    TD_CHECK(memcmp(pa, b, pal) != 0);
    uint8_t pa_b[TD__KEY_TRACE_PREFIX_MAX];
    size_t pab = td__key_trace_prefix(pa_b, "a", 1, idb);
    TD_CHECK(memcmp(pa_b, b, pab) != 0);

    /* every key of one tenant sorts before every key of a longer-named tenant */
    key_for(a, &al, "a", 0xffff, UINT64_MAX, UINT64_MAX);
    key_for(b, &bl, "ab", 0, 0, 0);
    TD_CHECK(keycmp(a, al, b, bl) < 0);
    /* same length: by tenant bytes */
    key_for(a, &al, "ab", 0xffff, 9, 9);
    key_for(b, &bl, "ac", 0, 0, 0);
    TD_CHECK(keycmp(a, al, b, bl) < 0);

    /* trace ids: bytewise */
    key_for(a, &al, "t", 0x00ff, UINT64_MAX, 0);
    key_for(b, &bl, "t", 0x0100, 0, 0);
    TD_CHECK(keycmp(a, al, b, bl) < 0);

    /* start time: numeric order (big-endian), not byte-swapped */
    static const uint64_t starts[] = {
        0, 1, 255, 256, 65535, 65536, 1700000000000000000ULL, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i + 1 < sizeof(starts) / sizeof(starts[0]); i++) {
        key_for(a, &al, "t", 3, starts[i], UINT64_MAX);
        key_for(b, &bl, "t", 3, starts[i + 1], 0);
        TD_CHECK(keycmp(a, al, b, bl) < 0);
    }
    /* same start: seq decides */
    key_for(a, &al, "t", 3, 100, 255);
    key_for(b, &bl, "t", 3, 100, 256);
    TD_CHECK(keycmp(a, al, b, bl) < 0);

    /* every fragment key of a trace starts with its prefix; metadata keys never do */
    uint8_t p[TD__KEY_TRACE_PREFIX_MAX];
    tid_of(id, 3);
    size_t pl = td__key_trace_prefix(p, "t", 1, id);
    TD_ASSERT_EQ_MEM(a, p, pl);
    TD_CHECK(memcmp(TD__KEY_META_SEQ, p, 1) != 0);
}

/* ---- batches ---- */

static void test_batch_new(void)
{
    td_batch *b = td_batch_new("tenant-1", 3, 100);
    TD_CHECK(b != NULL);
    TD_ASSERT_EQ_STR(b->tenant, "tenant-1");
    TD_ASSERT_EQ_U64(b->nfrags, 3);
    TD_ASSERT_EQ_U64(b->data_cap, 100);
    TD_ASSERT_EQ_U64(b->q.spans, 0);
    TD_ASSERT_EQ_U64(b->q.bytes, 0);
    TD_CHECK(b->q.next == NULL);
    TD_CHECK((void *)b == (void *)&b->q); /* the queue item is the first member */
    TD_ASSERT_EQ_U64((uintptr_t)b->frags % _Alignof(td_frag), 0);
    TD_CHECK((uint8_t *)b->frags >= (uint8_t *)(b + 1));
    TD_CHECK(b->data >= (uint8_t *)(b->frags + 3));
    for (int i = 0; i < 3; i++) {
        TD_ASSERT_EQ_U64(b->frags[i].len, 0);
        TD_CHECK(b->frags[i].data == NULL);
    }
    memset(b->data, 0xab, 100); /* ASan checks the whole area is ours */
    td_batch_free(b);

    b = td_batch_new(NULL, 0, 0);
    TD_CHECK(b != NULL);
    TD_ASSERT_EQ_STR(b->tenant, TD_DEFAULT_TENANT);
    td_batch_free(b);
    td_batch_free(NULL);

    /* overflow in either dimension is refused before allocating */
    TD_CHECK(td_batch_new("t", SIZE_MAX / 2, 0) == NULL);
    TD_CHECK(td_batch_new("t", SIZE_MAX / sizeof(td_frag), 1) == NULL);
    TD_CHECK(td_batch_new("t", 1, SIZE_MAX) == NULL);
    TD_CHECK(td_batch_new("t", 0, SIZE_MAX - 8) == NULL);

    /* OOM */
    td_mem_fail_after(1);
    b = td_batch_new("t", 2, 10);
    TD_CHECK(td_mem_fail_after(0));
    TD_CHECK(b == NULL);
}

/* ---- options ---- */

static void test_options(void)
{
    td_store_opts o = {0};
    td_opt_table t = {"store", td_store_opt_rows, td_store_nopt_rows, &o};
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_config_defaults(&t, 1, &err));
    TD_ASSERT_EQ_STR(o.dir, "./data");
    TD_ASSERT_EQ_U64(o.cache_bytes, 64ULL << 20);
    TD_ASSERT_EQ_U64(o.write_buffer_bytes, 16ULL << 20);
    TD_CHECK(!o.sync);
    TD_ASSERT_EQ_U64(o.index_max_value_len, 256);
    TD_ASSERT_EQ_U64(o.index_max_values, 5000);
    TD_ASSERT_EQ_INT(td_config_set(&t, 1, "index-max-values", "0", "test", &err), TD_INVALID);
    TD_ASSERT_EQ_INT(td_config_set(&t, 1, "index-max-value-len", "8KiB", "test", &err),
                     TD_INVALID);
    TD_ASSERT_OK(td_config_set(&t, 1, "store-sync", "on", "test", &err));
    TD_CHECK(o.sync);
    TD_ASSERT_OK(td_config_set(&t, 1, "store-cache-size", "1GiB", "test", &err));
    TD_ASSERT_EQ_U64(o.cache_bytes, 1ULL << 30);
    TD_ASSERT_EQ_INT(td_config_set(&t, 1, "store-write-buffer", "1k", "test", &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "store-write-buffer") != NULL);
    for (size_t i = 0; i < td_store_nopt_rows; i++) {
        TD_CHECK(strlen(td_store_opt_rows[i].help) > 20);
    }
    td_config_release(&t, 1);
    TD_CHECK(o.dir == NULL);
}

/* ---- open errors ---- */

static void test_open_errors(void)
{
    tmp_make();
    td_err err;
    td_err_init(&err);
    td_store *s = NULL;

    td_store_opts o = {0};
    o.dir = td_xstrdup("");
    TD_ASSERT_EQ_INT(td_store_open(&o, &s, &err), TD_INVALID);
    TD_CHECK(s == NULL);
    opts_release(&o);

    /* a file where the directory should be */
    o = opts_for("file");
    FILE *f = fopen(o.dir, "w");
    TD_CHECK(f != NULL);
    fclose(f);
    TD_ASSERT_EQ_INT(td_store_open(&o, &s, &err), TD_IO);
    TD_CHECK(s == NULL);
    opts_release(&o);

    /* nested directories are created; a second open of the same store is refused by the lock */
    o = opts_for("x/y/z");
    td_store *s1 = open_store(&o);
    struct stat sb;
    char path[4200];
    snprintf(path, sizeof(path), "%s/traces/CURRENT", o.dir);
    TD_ASSERT_EQ_INT(stat(path, &sb), 0);
    TD_ASSERT_EQ_INT(td_store_open(&o, &s, &err), TD_IO);
    TD_CHECK(s == NULL);
    TD_CHECK(strstr(err.msg, "lock") != NULL || strstr(err.msg, "LOCK") != NULL);
    td_store_close(s1);
    td_store_close(NULL);
    opts_release(&o);
    tmp_remove();
}

/* ---- write and read ---- */

static void test_write_read_many(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    static const char *tenants[] = {"a", "ab", "b", TD_DEFAULT_TENANT};
    enum { NT = 4, NTRACE = 20, NFRAG = 5 };

    /* one td_store_write per tenant, several fragments per trace */
    for (int t = 0; t < NT; t++) {
        fspec f[NTRACE * NFRAG];
        size_t n = 0;
        for (unsigned tr = 0; tr < NTRACE; tr++) {
            for (unsigned k = 0; k < NFRAG; k++, n++) {
                f[n].tid = 0x100 + tr;
                f[n].start = 1000 + k * 10;
                f[n].end = 1000 + k * 10 + 5;
                f[n].nspans = k + 1;
                snprintf(f[n].text, sizeof(f[n].text), "%s/%u/%u", tenants[t], tr, k);
            }
        }
        write_one(s, tenants[t], f, n);
    }

    td_buf got = TD_BUF_INIT, want = TD_BUF_INIT;
    for (int t = 0; t < NT; t++) {
        for (unsigned tr = 0; tr < NTRACE; tr++) {
            td_buf_reset(&want);
            for (unsigned k = 0; k < NFRAG; k++) {
                td_buf_addf(&want, "%s/%u/%u;", tenants[t], tr, k);
            }
            TD_ASSERT_EQ_INT(read_trace(s, tenants[t], 0x100 + tr, 0, 0, &got), TD_OK);
            TD_ASSERT_EQ_STR(got.data, want.data);
        }
    }
    td_buf_release(&got);
    td_buf_release(&want);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

static void test_batches_and_orders(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    td_err err;
    td_err_init(&err);

    /* trace 1 arrives in three writes, out of time order, mixed with trace 2 */
    fspec w1[] = {{1, 300, 310, 1, "t1@300"}, {2, 50, 60, 1, "t2@50"}};
    fspec w2a[] = {{1, 100, 110, 2, "t1@100"}};
    fspec w2b[] = {{2, 10, 20, 1, "t2@10"}, {1, 200, 210, 3, "t1@200"}};
    fspec w3[] = {{1, 100, 120, 1, "t1@100-again"}, {1, 0, 5, 1, "t1@0"}};
    write_one(s, "x", w1, 2);
    /* one write with two batches (and an empty one) */
    td_batch *bs[3] = {make_batch("x", w2a, 1), make_batch("x", NULL, 0), make_batch("x", w2b, 2)};
    TD_ASSERT_OK(td_store_write(s, bs, 3, &err));
    for (int i = 0; i < 3; i++) {
        td_batch_free(bs[i]);
    }
    write_one(s, "x", w3, 2);
    /* nothing to write is fine */
    TD_ASSERT_OK(td_store_write(s, NULL, 0, &err));

    td_buf got = TD_BUF_INIT;
    TD_ASSERT_OK(read_trace(s, "x", 1, 0, 0, &got));
    /* by start time; equal starts in write order */
    TD_ASSERT_EQ_STR(got.data, "t1@0;t1@100;t1@100-again;t1@200;t1@300;");
    TD_ASSERT_OK(read_trace(s, "x", 2, 0, 0, &got));
    TD_ASSERT_EQ_STR(got.data, "t2@10;t2@50;");
    td_buf_release(&got);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

static void test_time_filter(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    fspec f[] = {
        {9, 100, 200, 1, "A"}, /* [100,200] */
        {9, 150, 400, 1, "B"}, /* [150,400] */
        {9, 500, 600, 1, "C"}, /* [500,600] */
        {9, 700, 700, 1, "D"}, /* a single instant */
    };
    write_one(s, "t", f, 4);
    td_buf got = TD_BUF_INIT;
    static const struct {
        uint64_t start, end;
        const char *want;
    } cases[] = {
        {0, 0, "A;B;C;D;"},    /* no window */
        {999, 0, "A;B;C;D;"},  /* end 0 = no window, whatever start says */
        {0, 1000, "A;B;C;D;"}, /* window covers all */
        {0, 100, "A;"},        /* touches A's start */
        {200, 200, "A;B;"},    /* touches A's end, inside B */
        {201, 499, "B;"},      /* only B overlaps */
        {401, 499, NULL},      /* the gap */
        {450, 550, "C;"},      /* C's start inside */
        {600, 700, "C;D;"},    /* both edges */
        {701, 9999, NULL},     /* after everything */
        {0, 99, NULL},         /* before everything */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        td_status st = read_trace(s, "t", 9, cases[i].start, cases[i].end, &got);
        if (!cases[i].want) {
            TD_ASSERT_EQ_INT(st, TD_NOT_FOUND);
            TD_ASSERT_EQ_U64(got.len, 0);
        } else {
            TD_ASSERT_EQ_INT(st, TD_OK);
            TD_ASSERT_EQ_STR(got.data, cases[i].want);
        }
    }
    td_buf_release(&got);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

static td_status stop_after_one(void *ud, const uint8_t *data, size_t len, td_err *err)
{
    int *calls = ud;
    (*calls)++;
    (void)data;
    return td_err_set(err, TD_TOO_LARGE, "stop after %zu bytes", len);
}

static void test_not_found_and_tenants(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    fspec f[] = {{5, 10, 20, 1, "ab-secret"}};
    write_one(s, "ab", f, 1);
    fspec g[] = {{6, 10, 20, 1, "a-six"}};
    write_one(s, "a", g, 1);

    td_buf got = TD_BUF_INIT;
    TD_ASSERT_EQ_INT(read_trace(s, "ab", 5, 0, 0, &got), TD_OK);
    TD_ASSERT_EQ_STR(got.data, "ab-secret;");
    /* the same trace ID under other tenants, including prefixes of the name */
    TD_ASSERT_EQ_INT(read_trace(s, "a", 5, 0, 0, &got), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "abc", 5, 0, 0, &got), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "", 5, 0, 0, &got), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "ab", 6, 0, 0, &got), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "a", 6, 0, 0, &got), TD_OK);
    TD_ASSERT_EQ_INT(read_trace(s, "ab", 4, 0, 0, &got), TD_NOT_FOUND);
    TD_ASSERT_EQ_U64(got.len, 0);

    td_err err;
    td_err_init(&err);
    uint8_t id[16];
    tid_of(id, 5);
    TD_ASSERT_EQ_INT(td_store_trace_get(s, "ab", id, 0, 0, collect, &got, &err), TD_OK);
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_store_trace_get(s, "zz", id, 0, 0, collect, &got, &err), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(err.code, TD_NOT_FOUND);

    /* a callback error stops the scan and comes back as is */
    fspec more[] = {{5, 30, 40, 1, "ab-two"}};
    write_one(s, "ab", more, 1);
    int calls = 0;
    TD_ASSERT_EQ_INT(td_store_trace_get(s, "ab", id, 0, 0, stop_after_one, &calls, &err),
                     TD_TOO_LARGE);
    TD_ASSERT_EQ_INT(calls, 1);
    TD_ASSERT_EQ_STR(err.msg, "stop after 9 bytes");

    /* a tenant longer than any stored one is a caller error */
    char big[TD_TENANT_MAX + 2];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    TD_ASSERT_EQ_INT(td_store_trace_get(s, big, id, 0, 0, collect, &got, &err), TD_INVALID);

    td_buf_release(&got);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

static void test_reopen_durability(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    o.sync = true;
    td_store *s = open_store(&o);
    enum { NTRACE = 50 };
    for (unsigned tr = 0; tr < NTRACE; tr++) {
        fspec f[2] = {{tr, 10, 20, 1, ""}, {tr, 10, 30, 2, ""}};
        snprintf(f[0].text, sizeof(f[0].text), "first-%u", tr);
        snprintf(f[1].text, sizeof(f[1].text), "second-%u", tr);
        write_one(s, "dur", f, 2);
    }
    td_store_close(s);

    /* reopen: everything is there; new fragments with identical start never overwrite old ones */
    s = open_store(&o);
    td_buf got = TD_BUF_INIT, want = TD_BUF_INIT;
    for (unsigned tr = 0; tr < NTRACE; tr++) {
        fspec f[1] = {{tr, 10, 40, 1, ""}};
        snprintf(f[0].text, sizeof(f[0].text), "third-%u", tr);
        write_one(s, "dur", f, 1);
    }
    /* a few big fragments so the size estimate has something on disk after reopening */
    write_big(s, "dur", 64);
    td_store_close(s);

    s = open_store(&o);
    for (unsigned tr = 0; tr < NTRACE; tr++) {
        td_buf_reset(&want);
        td_buf_addf(&want, "first-%u;second-%u;third-%u;", tr, tr, tr);
        TD_ASSERT_EQ_INT(read_trace(s, "dur", tr, 0, 0, &got), TD_OK);
        TD_ASSERT_EQ_STR(got.data, want.data);
    }
    TD_ASSERT_EQ_INT(read_trace(s, "dur", 0x8000 + 63, 0, 0, &got), TD_OK);
    TD_ASSERT_EQ_U64(got.len, 2048 + 1);

    /* the size estimate is exported as a scrape-time gauge while the store is open */
    uint64_t size = td_store_approx_size(s);
    TD_CHECK(size > 0);
    td_buf m = TD_BUF_INIT;
    td_metrics_write(&m);
    char line[128];
    snprintf(line, sizeof(line), "\ntraced_leveldb_size_bytes %llu\n", (unsigned long long)size);
    TD_CHECK(strstr(m.data, line) != NULL);
    td_store_close(s);
    td_buf_reset(&m);
    td_metrics_write(&m);
    TD_CHECK(strstr(m.data, "\ntraced_leveldb_size_bytes 0\n") != NULL);
    td_buf_release(&m);

    td_buf_release(&got);
    td_buf_release(&want);
    opts_release(&o);
    tmp_remove();
}

/* Two stores open at once: closing the older must not unregister the newer one's gauge. */
static void test_size_gauge_owner(void)
{
    tmp_make();
    td_store_opts o1 = opts_for("one"), o2 = opts_for("two");
    /* give "two" some bytes on disk (a reopen flushes the log into a table) */
    td_store *s2 = open_store(&o2);
    write_big(s2, "t", 64);
    td_store_close(s2);

    td_store *s1 = open_store(&o1);
    s2 = open_store(&o2);
    td_store_close(s1);
    uint64_t size = td_store_approx_size(s2);
    TD_CHECK(size > 0);
    td_buf m = TD_BUF_INIT;
    td_metrics_write(&m);
    char line[128];
    snprintf(line, sizeof(line), "\ntraced_leveldb_size_bytes %llu\n", (unsigned long long)size);
    TD_CHECK(strstr(m.data, line) != NULL);
    td_buf_release(&m);
    td_store_close(s2);
    opts_release(&o1);
    opts_release(&o2);
    tmp_remove();
}

/* Failing each of the store's own allocations in turn: TD_NOMEM and nothing half written. */
static void test_write_oom(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    fspec f[] = {{77, 1, 2, 1, "oom-a"}, {77, 3, 4, 1, "oom-b"}, {78, 1, 2, 1, "oom-c"}};
    td_batch *b = make_batch("t", f, 3);
    td_buf got = TD_BUF_INIT;
    td_status st = TD_NOMEM;
    long n;
    for (n = 1; n < 100 && st != TD_OK; n++) {
        td_err err;
        td_err_init(&err);
        td_mem_fail_after(n);
        st = td_store_write(s, &b, 1, &err);
        bool failed = td_mem_fail_after(0);
        if (st != TD_OK) {
            TD_CHECK(failed);
            TD_ASSERT_EQ_INT(st, TD_NOMEM);
            TD_ASSERT_EQ_INT(read_trace(s, "t", 77, 0, 0, &got), TD_NOT_FOUND);
            TD_ASSERT_EQ_INT(read_trace(s, "t", 78, 0, 0, &got), TD_NOT_FOUND);
        }
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    TD_CHECK(n > 2); /* at least one injected failure was exercised */
    TD_ASSERT_OK(read_trace(s, "t", 77, 0, 0, &got));
    TD_ASSERT_EQ_STR(got.data, "oom-a;oom-b;");
    td_batch_free(b);
    td_buf_release(&got);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

/* ---- resource records ---- */

/*
 * td_hash128 names resource records on disk. SMHasher's verification of
 * MurmurHash3 x64_128 (hash keys {}, {0}, {0,1}, ... {0..254} with seeds 256..2,
 * hash the concatenated results with seed 0, read the first 4 bytes
 * little-endian) pins every step of it; a few more properties on top.
 */
static void test_hash128(void)
{
    uint8_t key[256], all[256 * 16], h[16], h2[16];
    for (unsigned i = 0; i < 256; i++) {
        key[i] = (uint8_t)i;
        td_hash128_seeded(key, i, 256 - i, all + i * 16);
    }
    td_hash128_seeded(all, sizeof(all), 0, h);
    uint32_t verification =
        (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    TD_ASSERT_EQ_U64(verification, 0x6384BA69u);
    /* seed 0 is td_hash128; alignment does not matter */
    uint8_t buf[64];
    memcpy(buf + 1, "service.name=checkout", 21);
    td_hash128(buf + 1, 21, h);
    td_hash128_seeded("service.name=checkout", 21, 0, h2);
    TD_ASSERT_EQ_MEM(h, h2, 16);
    /* one changed byte or one more byte changes both halves */
    buf[5] ^= 1;
    td_hash128(buf + 1, 21, h2);
    TD_CHECK(memcmp(h, h2, 8) != 0 && memcmp(h + 8, h2 + 8, 8) != 0);
    buf[5] ^= 1;
    buf[22] = 0;
    td_hash128(buf + 1, 22, h2);
    TD_CHECK(memcmp(h, h2, 8) != 0 && memcmp(h + 8, h2 + 8, 8) != 0);
}

/* A fragment naming a resource of its batch (res -1: it carries its own). */
typedef struct rfspec {
    unsigned tid;
    uint64_t start, end;
    int32_t res;
    char text[48];
} rfspec;

/* A batch with resource table res[0..nres) (their bytes are the strings). */
static td_batch *make_res_batch(const char *tenant, const char *const *res, size_t nres,
                                const rfspec *f, size_t n)
{
    size_t data = 0;
    for (size_t i = 0; i < nres; i++) {
        data += strlen(res[i]);
    }
    for (size_t i = 0; i < n; i++) {
        data += strlen(f[i].text);
    }
    td_batch *b = td_batch_new_res(tenant, n, nres, data);
    TD_CHECK(b != NULL);
    TD_ASSERT_EQ_U64(b->nres, nres);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        td_frag *fr = &b->frags[i];
        TD_ASSERT_EQ_INT(fr->res_index, -1);
        tid_of(fr->trace_id, f[i].tid);
        fr->start_ns = f[i].start;
        fr->end_ns = f[i].end;
        fr->nspans = 1;
        fr->len = (uint32_t)strlen(f[i].text);
        fr->res_index = f[i].res;
        memcpy(b->data + off, f[i].text, fr->len);
        fr->data = b->data + off;
        off += fr->len;
        b->q.spans++;
    }
    for (size_t i = 0; i < nres; i++) {
        td_res *r = &b->res[i];
        r->len = (uint32_t)strlen(res[i]);
        memcpy(b->data + off, res[i], r->len);
        r->data = b->data + off;
        td_hash128(r->data, r->len, r->hash);
        off += r->len;
    }
    TD_ASSERT_EQ_U64(off, data);
    return b;
}

static void write_res(td_store *s, const char *tenant, const char *const *res, size_t nres,
                      const rfspec *f, size_t n)
{
    td_batch *b = make_res_batch(tenant, res, nres, f, n);
    td_err err;
    td_err_init(&err);
    td_status st = td_store_write(s, &b, 1, &err);
    td_batch_free(b);
    TD_ASSERT_EQ_INT(st, TD_OK);
}

/* What collect() sees for a fragment read back with its resource put in front. */
static void want_joined(td_buf *w, const char *res, const char *text)
{
    size_t n = strlen(res);
    td_buf_addch(w, 0x0a);
    while (n >= 0x80) {
        td_buf_addch(w, (char)(n | 0x80));
        n >>= 7;
    }
    td_buf_addch(w, (char)n);
    td_buf_add(w, res, strlen(res));
    td_buf_add(w, text, strlen(text));
    td_buf_addch(w, ';');
}

#define ASSERT_BUF_EQ(got, want)                                                                   \
    do {                                                                                           \
        TD_ASSERT_EQ_U64((got).len, (want).len);                                                   \
        TD_ASSERT_EQ_MEM((got).data, (want).data, (want).len);                                     \
    } while (0)

static uint64_t res_metric(const char *outcome)
{
    return td_metric_get(td_metric_series(TD_M_STORE_RESOURCES, outcome, NULL, NULL));
}

/* The raw database of a closed store, for planting and removing records. */
typedef struct raw_db {
    leveldb_options_t *o;
    leveldb_readoptions_t *ro;
    leveldb_writeoptions_t *wo;
    leveldb_t *db;
} raw_db;

static void raw_open(raw_db *r, const td_store_opts *so)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/traces", so->dir);
    r->o = leveldb_options_create();
    r->ro = leveldb_readoptions_create();
    r->wo = leveldb_writeoptions_create();
    char *lerr = NULL;
    r->db = leveldb_open(r->o, path, &lerr);
    if (lerr) {
        fprintf(stderr, "  raw open: %s\n", lerr);
        leveldb_free(lerr);
    }
    TD_CHECK(r->db != NULL);
}

static void raw_close(raw_db *r)
{
    leveldb_close(r->db);
    leveldb_writeoptions_destroy(r->wo);
    leveldb_readoptions_destroy(r->ro);
    leveldb_options_destroy(r->o);
}

static void raw_put(raw_db *r, const uint8_t *k, size_t klen, const void *v, size_t vlen)
{
    char *lerr = NULL;
    leveldb_put(r->db, r->wo, (const char *)k, klen, v, vlen, &lerr);
    TD_CHECK(lerr == NULL);
}

/* Number of keys starting with prefix; the last one's value into *last (may be NULL). */
static size_t raw_count(raw_db *r, const uint8_t *prefix, size_t plen, td_buf *last)
{
    size_t n = 0;
    leveldb_iterator_t *it = leveldb_create_iterator(r->db, r->ro);
    for (leveldb_iter_seek(it, (const char *)prefix, plen); leveldb_iter_valid(it);
         leveldb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = leveldb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0) {
            break;
        }
        n++;
        if (last) {
            const char *v = leveldb_iter_value(it, &vlen);
            td_buf_reset(last);
            td_buf_add(last, v, vlen);
        }
    }
    leveldb_iter_destroy(it);
    return n;
}

static void test_res_round_trip(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    /* a resource of 300 bytes needs a two-byte length varint */
    char big[301];
    memset(big, 'r', 300);
    big[300] = '\0';
    const char *res[] = {"svc-A", big};
    rfspec f[] = {
        {1, 10, 20, 0, "a1"},
        {1, 30, 40, 1, "a2"},
        {1, 50, 60, -1, "own"},
        {2, 10, 20, 0, "b1"},
    };
    write_res(s, "t", res, 2, f, 4);

    td_buf got = TD_BUF_INIT, want = TD_BUF_INIT;
    TD_ASSERT_OK(read_trace(s, "t", 1, 0, 0, &got));
    want_joined(&want, "svc-A", "a1");
    want_joined(&want, big, "a2");
    td_buf_add(&want, "own;", 4);
    ASSERT_BUF_EQ(got, want);
    TD_ASSERT_OK(read_trace(s, "t", 2, 0, 0, &got));
    td_buf_reset(&want);
    want_joined(&want, "svc-A", "b1");
    ASSERT_BUF_EQ(got, want);
    /* a time window still filters on the fragment's own times */
    TD_ASSERT_OK(read_trace(s, "t", 1, 25, 45, &got));
    td_buf_reset(&want);
    want_joined(&want, big, "a2");
    ASSERT_BUF_EQ(got, want);
    /* another tenant sees none of it */
    TD_ASSERT_EQ_INT(read_trace(s, "u", 1, 0, 0, &got), TD_NOT_FOUND);
    td_store_close(s);

    /* on disk: one record per resource, holding its bytes; fragments are v2 */
    raw_db r;
    raw_open(&r, &o);
    uint8_t rk[TD__KEY_RES_MAX];
    uint8_t h[16];
    td_hash128("svc-A", 5, h);
    size_t rkl = td__key_res(rk, "t", 1, h);
    TD_ASSERT_EQ_U64(raw_count(&r, rk, rkl, &got), 1);
    TD_ASSERT_EQ_U64(got.len, 5);
    TD_ASSERT_EQ_MEM(got.data, "svc-A", 5);
    TD_ASSERT_EQ_U64(raw_count(&r, (const uint8_t *)"R", 1, NULL), 2);
    uint8_t tp[TD__KEY_TRACE_PREFIX_MAX];
    uint8_t id[16];
    tid_of(id, 2);
    size_t tpl = td__key_trace_prefix(tp, "t", 1, id);
    TD_ASSERT_EQ_U64(raw_count(&r, tp, tpl, &got), 1);
    TD_ASSERT_EQ_U64(got.len, 30 + 2);
    TD_ASSERT_EQ_INT((uint8_t)got.data[0], 2);
    TD_ASSERT_EQ_INT((uint8_t)got.data[13], TD__VAL_F_RES);
    TD_ASSERT_EQ_MEM(got.data + 14, h, 16);
    TD_ASSERT_EQ_MEM(got.data + 30, "b1", 2);
    raw_close(&r);

    td_buf_release(&got);
    td_buf_release(&want);
    opts_release(&o);
    tmp_remove();
}

static void test_res_shared(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    td_err err;
    td_err_init(&err);
    const char *shared[] = {"shared-resource"};
    const char *two[] = {"other-resource", "shared-resource"};
    uint64_t w0 = res_metric("written"), c0 = res_metric("cached");

    /* the first batch writes the record, later ones (same tenant) only refer to it */
    rfspec f1[] = {{1, 10, 20, 0, "one"}};
    write_res(s, "t", shared, 1, f1, 1);
    TD_ASSERT_EQ_U64(res_metric("written") - w0, 1);
    rfspec f2[] = {{1, 30, 40, 0, "two"}, {2, 30, 40, 0, "two-b"}};
    write_res(s, "t", shared, 1, f2, 2);
    TD_ASSERT_EQ_U64(res_metric("written") - w0, 1);
    TD_ASSERT_EQ_U64(res_metric("cached") - c0, 1);
    /* two batches of one write sharing a resource, one of them with a new one too */
    rfspec f3[] = {{1, 50, 60, 0, "three"}};
    rfspec f4[] = {{1, 70, 80, 1, "four"}, {3, 70, 80, 0, "four-b"}};
    td_batch *bs[2] = {make_res_batch("t", shared, 1, f3, 1), make_res_batch("t", two, 2, f4, 2)};
    TD_ASSERT_OK(td_store_write(s, bs, 2, &err));
    td_batch_free(bs[0]);
    td_batch_free(bs[1]);
    TD_ASSERT_EQ_U64(res_metric("written") - w0, 2);
    TD_ASSERT_EQ_U64(res_metric("cached") - c0, 3);
    /* the same resource under another tenant is that tenant's own record */
    rfspec g[] = {{1, 10, 20, 0, "u-one"}};
    write_res(s, "u", shared, 1, g, 1);
    TD_ASSERT_EQ_U64(res_metric("written") - w0, 3);

    td_buf got = TD_BUF_INIT, want = TD_BUF_INIT;
    TD_ASSERT_OK(read_trace(s, "t", 1, 0, 0, &got));
    want_joined(&want, "shared-resource", "one");
    want_joined(&want, "shared-resource", "two");
    want_joined(&want, "shared-resource", "three");
    want_joined(&want, "shared-resource", "four");
    ASSERT_BUF_EQ(got, want);
    TD_ASSERT_OK(read_trace(s, "t", 3, 0, 0, &got));
    td_buf_reset(&want);
    want_joined(&want, "other-resource", "four-b");
    ASSERT_BUF_EQ(got, want);
    TD_ASSERT_OK(read_trace(s, "u", 1, 0, 0, &got));
    td_buf_reset(&want);
    want_joined(&want, "shared-resource", "u-one");
    ASSERT_BUF_EQ(got, want);
    td_store_close(s);

    /* a new process does not know what was written: it puts the record again (idempotent) */
    s = open_store(&o);
    rfspec f5[] = {{1, 90, 99, 0, "five"}};
    write_res(s, "t", shared, 1, f5, 1);
    TD_ASSERT_EQ_U64(res_metric("written") - w0, 4);
    TD_ASSERT_OK(read_trace(s, "t", 1, 85, 0, &got));
    td_store_close(s);

    raw_db r;
    raw_open(&r, &o);
    static const uint8_t rt[3] = {'R', 1, 't'}, ru[3] = {'R', 1, 'u'};
    TD_ASSERT_EQ_U64(raw_count(&r, rt, 3, NULL), 2);
    TD_ASSERT_EQ_U64(raw_count(&r, ru, 3, NULL), 1);
    raw_close(&r);

    td_buf_release(&got);
    td_buf_release(&want);
    opts_release(&o);
    tmp_remove();
}

/* The recently-written table is bounded: many distinct resources still all get stored. */
static void test_res_many(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    enum { N = 20000 };
    char names[4][32];
    const char *res[4] = {names[0], names[1], names[2], names[3]};
    for (unsigned i = 0; i < N; i += 4) {
        rfspec f[4];
        for (unsigned k = 0; k < 4; k++) {
            snprintf(names[k], sizeof(names[k]), "res-%u", i + k);
            f[k] = (rfspec){i + k, 1, 2, (int32_t)k, "x"};
        }
        write_res(s, "t", res, 4, f, 4);
    }
    /* and again, in another order: evicted ones are put again, none is lost */
    for (unsigned i = 0; i < N; i += 4) {
        rfspec f[4];
        for (unsigned k = 0; k < 4; k++) {
            unsigned x = (i * 7919u + k) % N;
            snprintf(names[k], sizeof(names[k]), "res-%u", x);
            f[k] = (rfspec){x, 3, 4, (int32_t)k, "y"};
        }
        write_res(s, "t", res, 4, f, 4);
    }
    td_buf got = TD_BUF_INIT, want = TD_BUF_INIT;
    for (unsigned i = 0; i < N; i += 97) {
        TD_ASSERT_OK(read_trace(s, "t", i, 0, 0, &got));
        char name[32];
        snprintf(name, sizeof(name), "res-%u", i);
        td_buf_reset(&want);
        want_joined(&want, name, "x");
        TD_CHECK(got.len >= want.len);
        TD_ASSERT_EQ_MEM(got.data, want.data, want.len);
    }
    td_store_close(s);
    raw_db r;
    raw_open(&r, &o);
    TD_ASSERT_EQ_U64(raw_count(&r, (const uint8_t *)"R", 1, NULL), N);
    raw_close(&r);
    td_buf_release(&got);
    td_buf_release(&want);
    opts_release(&o);
    tmp_remove();
}

static void test_res_missing_is_corrupt(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    const char *res[] = {"gone", "kept"};
    rfspec f[] = {{1, 10, 20, 1, "k"}, {1, 30, 40, 0, "g"}};
    write_res(s, "t", res, 2, f, 2);
    td_store_close(s);

    raw_db r;
    raw_open(&r, &o);
    uint8_t rk[TD__KEY_RES_MAX], h[16];
    td_hash128("gone", 4, h);
    size_t rkl = td__key_res(rk, "t", 1, h);
    char *lerr = NULL;
    leveldb_delete(r.db, r.wo, (const char *)rk, rkl, &lerr);
    TD_CHECK(lerr == NULL);
    raw_close(&r);

    s = open_store(&o);
    td_buf got = TD_BUF_INIT;
    uint8_t id[16];
    tid_of(id, 1);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_store_trace_get(s, "t", id, 0, 0, collect, &got, &err), TD_CORRUPT);
    TD_CHECK(strstr(err.msg, "resource") != NULL);
    /* the fragment before the damaged one was visited; a window that avoids it reads fine */
    td_buf want = TD_BUF_INIT;
    want_joined(&want, "kept", "k");
    ASSERT_BUF_EQ(got, want);
    TD_ASSERT_OK(read_trace(s, "t", 1, 0, 25, &got));
    ASSERT_BUF_EQ(got, want);
    td_store_close(s);
    td_buf_release(&got);
    td_buf_release(&want);
    opts_release(&o);
    tmp_remove();
}

/* Values written by earlier versions (v1), and damaged v2 values. */
static void test_old_and_bad_values(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    const char *res[] = {"svc"};
    rfspec f[] = {{1, 100, 200, 0, "new"}};
    write_res(s, "t", res, 1, f, 1);
    td_store_close(s);

    /* a v1 fragment of the same trace, and one of another trace */
    raw_db r;
    raw_open(&r, &o);
    uint8_t k[TD__KEY_TRACE_MAX], v[TD__VAL_V1_HDR + 8];
    uint8_t id[16];
    tid_of(id, 1);
    size_t kl = td__key_trace(k, "t", 1, id, 50, 1);
    td__val_header_v1(v, 60, 3);
    memcpy(v + TD__VAL_V1_HDR, "old-rs", 6);
    raw_put(&r, k, kl, v, TD__VAL_V1_HDR + 6);
    tid_of(id, 2);
    kl = td__key_trace(k, "t", 1, id, 50, 2);
    raw_put(&r, k, kl, v, TD__VAL_V1_HDR); /* an empty v1 fragment */
    /* v2 damage: an unknown flag, a cut-off hash */
    tid_of(id, 3);
    uint8_t w[TD__VAL_V2_HDR_MAX + 4];
    size_t hl = td__val_header_v2(w, 10, 1, NULL);
    w[13] = 0x80;
    kl = td__key_trace(k, "t", 1, id, 5, 3);
    raw_put(&r, k, kl, w, hl);
    tid_of(id, 4);
    uint8_t h[16] = {0};
    hl = td__val_header_v2(w, 10, 1, h);
    kl = td__key_trace(k, "t", 1, id, 5, 4);
    raw_put(&r, k, kl, w, hl - 1);
    raw_close(&r);

    s = open_store(&o);
    td_buf got = TD_BUF_INIT, want = TD_BUF_INIT;
    TD_ASSERT_OK(read_trace(s, "t", 1, 0, 0, &got));
    td_buf_add(&want, "old-rs;", 7);
    want_joined(&want, "svc", "new");
    ASSERT_BUF_EQ(got, want);
    /* v1 end_ns still drives the window */
    TD_ASSERT_OK(read_trace(s, "t", 1, 55, 60, &got));
    TD_ASSERT_EQ_STR(got.data, "old-rs;");
    TD_ASSERT_OK(read_trace(s, "t", 2, 0, 0, &got));
    TD_ASSERT_EQ_STR(got.data, ";");
    TD_ASSERT_EQ_INT(read_trace(s, "t", 3, 0, 0, &got), TD_CORRUPT);
    TD_ASSERT_EQ_INT(read_trace(s, "t", 4, 0, 0, &got), TD_CORRUPT);
    td_store_close(s);
    td_buf_release(&got);
    td_buf_release(&want);
    opts_release(&o);
    tmp_remove();
}

/*
 * Failing each allocation of a write with resources: TD_NOMEM, nothing written,
 * and the resource not remembered as written (else the successful retry would
 * leave it out and the read would find it missing).
 */
static void test_res_write_oom(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    const char *res[] = {"r-one", "r-two"};
    rfspec f[] = {{7, 1, 2, 0, "a"}, {7, 3, 4, 1, "b"}, {8, 1, 2, -1, "c"}};
    td_batch *b = make_res_batch("t", res, 2, f, 3);
    td_buf got = TD_BUF_INIT, want = TD_BUF_INIT;
    td_status st = TD_NOMEM;
    long n;
    for (n = 1; n < 100 && st != TD_OK; n++) {
        td_err err;
        td_err_init(&err);
        td_mem_fail_after(n);
        st = td_store_write(s, &b, 1, &err);
        bool failed = td_mem_fail_after(0);
        if (st != TD_OK) {
            TD_CHECK(failed);
            TD_ASSERT_EQ_INT(st, TD_NOMEM);
            TD_ASSERT_EQ_INT(read_trace(s, "t", 7, 0, 0, &got), TD_NOT_FOUND);
        }
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    TD_CHECK(n > 2);
    TD_ASSERT_OK(read_trace(s, "t", 7, 0, 0, &got));
    want_joined(&want, "r-one", "a");
    want_joined(&want, "r-two", "b");
    ASSERT_BUF_EQ(got, want);

    /* reads: every allocation failing in turn gives TD_NOMEM, then the whole trace */
    uint8_t id[16];
    tid_of(id, 7);
    st = TD_NOMEM;
    for (n = 1; n < 100 && st != TD_OK; n++) {
        td_err err;
        td_err_init(&err);
        td_buf_reset(&got);
        td_mem_fail_after(n);
        st = td_store_trace_get(s, "t", id, 0, 0, collect, &got, &err);
        bool failed = td_mem_fail_after(0);
        if (st != TD_OK) {
            TD_CHECK(failed);
            TD_ASSERT_EQ_INT(st, TD_NOMEM);
        }
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    TD_CHECK(n > 2);
    ASSERT_BUF_EQ(got, want);
    td_batch_free(b);
    td_buf_release(&got);
    td_buf_release(&want);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

static void test_batch_new_res(void)
{
    td_batch *b = td_batch_new_res("t", 2, 3, 50);
    TD_CHECK(b != NULL);
    TD_ASSERT_EQ_U64(b->nres, 3);
    TD_ASSERT_EQ_U64((uintptr_t)b->res % _Alignof(td_res), 0);
    TD_CHECK((uint8_t *)b->res >= (uint8_t *)(b->frags + 2));
    TD_CHECK(b->data >= (uint8_t *)(b->res + 3));
    for (int i = 0; i < 2; i++) {
        TD_ASSERT_EQ_INT(b->frags[i].res_index, -1);
    }
    for (int i = 0; i < 3; i++) {
        TD_ASSERT_EQ_U64(b->res[i].len, 0);
        TD_CHECK(b->res[i].data == NULL);
    }
    memset(b->data, 0xcd, 50);
    td_batch_free(b);
    b = td_batch_new("t", 1, 0);
    TD_ASSERT_EQ_U64(b->nres, 0);
    TD_ASSERT_EQ_INT(b->frags[0].res_index, -1);
    td_batch_free(b);
    TD_CHECK(td_batch_new_res("t", 1, SIZE_MAX / sizeof(td_res), 0) == NULL);
    TD_CHECK(td_batch_new_res("t", 1, SIZE_MAX / 2, 0) == NULL);
}

/* Summaries seen by a scan, as "tid@start" with root/errors marks. */
typedef struct sum_seen {
    char text[1024];
    size_t n, stop_after;
} sum_seen;

static bool sum_cb(void *ud, const td_store_summary *sum)
{
    sum_seen *w = ud;
    size_t len = strlen(w->text);
    snprintf(w->text + len, sizeof(w->text) - len, "%s%u@%llu/%u", len ? ";" : "",
             (unsigned)sum->trace_id[15], (unsigned long long)(sum->start_ns / 60000000000ull),
             (unsigned)sum->nerrors);
    if (sum->has_root) {
        len = strlen(w->text);
        snprintf(w->text + len, sizeof(w->text) - len, "[%.*s:%.*s]", (int)sum->root_service_len,
                 sum->root_service, (int)sum->root_name_len, sum->root_name);
    }
    w->n++;
    return !w->stop_after || w->n < w->stop_after;
}

static void test_summaries(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    const uint64_t M = 60000000000ull; /* one minute bucket */
    td_batch *b = make_batch("t",
                             (fspec[]){{1, 10 * M, 10 * M + 5, 2, "a"},
                                       {2, 12 * M, 12 * M + 5, 1, "b"},
                                       {1, 13 * M + 1, 13 * M + 9, 1, "c"},
                                       {3, 20 * M, 20 * M + 5, 1, "d"}},
                             4);
    b->frags[0].has_root = true;
    b->frags[0].root_service = (const uint8_t *)"shop";
    b->frags[0].root_service_len = 4;
    b->frags[0].root_name = (const uint8_t *)"GET /";
    b->frags[0].root_name_len = 5;
    b->frags[1].nerrors = 1;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_write(s, &b, 1, &err));
    td_batch_free(b);
    write_one(s, "tt", (fspec[]){{9, 12 * M, 12 * M + 1, 1, "x"}}, 1); /* another tenant */

    /* newest bucket first, other tenants and buckets outside the window left out */
    sum_seen w = {0};
    uint64_t scanned;
    bool trunc;
    TD_ASSERT_OK(
        td_store_summaries(s, "t", 10 * M, 13 * M + 5, 0, sum_cb, &w, &scanned, &trunc, &err));
    TD_ASSERT_EQ_STR(w.text, "1@13/0;2@12/1;1@10/0[shop:GET /]");
    TD_ASSERT_EQ_U64(scanned, 3);
    TD_CHECK(!trunc);
    /* the fragment must overlap the window, not only its bucket */
    memset(&w, 0, sizeof(w));
    TD_ASSERT_OK(
        td_store_summaries(s, "t", 12 * M + 10, 13 * M, 0, sum_cb, &w, &scanned, &trunc, &err));
    TD_ASSERT_EQ_STR(w.text, "");
    /* the whole range; the scan bound; the callback stopping */
    memset(&w, 0, sizeof(w));
    TD_ASSERT_OK(td_store_summaries(s, "t", 0, UINT64_MAX, 2, sum_cb, &w, &scanned, &trunc, &err));
    TD_ASSERT_EQ_STR(w.text, "3@20/0;1@13/0");
    TD_CHECK(trunc);
    memset(&w, 0, sizeof(w));
    w.stop_after = 1;
    TD_ASSERT_OK(td_store_summaries(s, "t", 0, UINT64_MAX, 0, sum_cb, &w, &scanned, &trunc, &err));
    TD_ASSERT_EQ_STR(w.text, "3@20/0");
    TD_CHECK(!trunc);
    memset(&w, 0, sizeof(w));
    TD_ASSERT_OK(td_store_summaries(s, "tt", 0, UINT64_MAX, 0, sum_cb, &w, &scanned, &trunc, &err));
    TD_ASSERT_EQ_STR(w.text, "9@12/0");
    /* unknown tenant: nothing; the key layout round-trips */
    memset(&w, 0, sizeof(w));
    TD_ASSERT_OK(td_store_summaries(s, "zz", 0, UINT64_MAX, 0, sum_cb, &w, &scanned, &trunc, &err));
    TD_ASSERT_EQ_STR(w.text, "");
    uint8_t k[TD__KEY_SUM_MAX], tid[16];
    tid_of(tid, 7);
    TD_ASSERT_EQ_U64(td__key_sum(k, "ab", 2, 0x01020304, tid, 5), 2 + 2 + 28);
    TD_CHECK(k[0] == 'S' && k[1] == 2 && k[4] == 1 && k[7] == 4 && k[8 + 15] == 7 &&
             k[24 + 7] == 5);
    td_frag f = {.start_ns = 1,
                 .end_ns = 2,
                 .nspans = 3,
                 .nerrors = 4,
                 .has_root = true,
                 .root_service = (const uint8_t *)"s",
                 .root_service_len = 1};
    uint8_t v[TD__SUM_VAL_MAX];
    size_t vlen = td__val_sum(v, &f);
    td_store_summary sum;
    TD_CHECK(td__val_sum_parse(v, vlen, &sum));
    TD_CHECK(sum.has_root && sum.nerrors == 4 && sum.root_service_len == 1 &&
             sum.root_name_len == 0);
    TD_CHECK(!td__val_sum_parse(v, vlen - 1, &sum));
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}


/* ---- secondary index ---- */

#define MIN_NS 60000000000ull
#define HOUR_NS 3600000000000ull

/* One index entry to write: fragment i of the batch, scope, type, key, value. */
typedef struct ispec {
    uint32_t frag;
    uint8_t scope, type;
    const char *key;
    const char *val; /* NULL: use num (8 bytes, big-endian) */
    uint64_t num; /* with val: its length when not 0 (values holding NUL bytes) */
} ispec;

static size_t ispec_vlen(const ispec *e)
{
    return e->val ? (e->num ? e->num : strlen(e->val)) : 8;
}

/* A batch of fragments (trace tid, start) with index entries; fragment data "x". */
static td_batch *make_idx_batch(const char *tenant, const unsigned *tids, const uint64_t *starts,
                                size_t nf, const ispec *e, size_t ne)
{
    size_t data = nf;
    for (size_t i = 0; i < ne; i++) {
        data += strlen(e[i].key) + ispec_vlen(&e[i]);
    }
    td_batch *b = td_batch_new_idx(tenant, nf, 0, ne, data);
    TD_CHECK(b != NULL);
    uint8_t *p = b->data;
    for (size_t i = 0; i < nf; i++) {
        td_frag *fr = &b->frags[i];
        tid_of(fr->trace_id, tids[i]);
        fr->start_ns = starts[i];
        fr->end_ns = starts[i] + 1;
        fr->nspans = 1;
        *p = 'x';
        fr->data = p++;
        fr->len = 1;
    }
    for (size_t i = 0; i < ne; i++) {
        td_idx_entry *x = &b->idx[i];
        x->frag = e[i].frag;
        x->scope = e[i].scope;
        x->type = e[i].type;
        x->key_len = (uint16_t)strlen(e[i].key);
        memcpy(p, e[i].key, x->key_len);
        x->key = p;
        p += x->key_len;
        if (e[i].val) {
            x->val_len = (uint32_t)ispec_vlen(&e[i]);
            memcpy(p, e[i].val, x->val_len);
        } else {
            x->val_len = 8;
            td__put_be64(p, e[i].num);
        }
        x->val = p;
        p += x->val_len;
    }
    return b;
}

static void write_idx(td_store *s, const char *tenant, const unsigned *tids,
                      const uint64_t *starts, size_t nf, const ispec *e, size_t ne)
{
    td_batch *b = make_idx_batch(tenant, tids, starts, nf, e, ne);
    td_err err;
    td_err_init(&err);
    td_status st = td_store_write(s, &b, 1, &err);
    td_batch_free(b);
    TD_ASSERT_EQ_INT(st, TD_OK);
}

static bool name_cb(void *ud, uint8_t scope, const char *key, size_t len)
{
    td_buf *b = ud;
    td_buf_addf(b, "%c:%.*s;", scope, (int)len, key);
    return true;
}

static bool value_cb(void *ud, uint8_t type, const uint8_t *val, size_t len)
{
    td_buf *b = ud;
    if (type == TD_IDX_STRING || type == TD_IDX_KEYWORD) {
        td_buf_addf(b, "%c:", type);
        td_buf_add(b, val, len);
        td_buf_addch(b, ';');
    } else {
        td_buf_addf(b, "%c:%llu;", type, len == 8 ? (unsigned long long)td__get_be64(val) : 0ULL);
    }
    return true;
}

/* "tid@bucket;" per visited entry (tid as its last byte). */
static bool trace_cb(void *ud, const uint8_t id[16], uint64_t bucket)
{
    td_buf *b = ud;
    td_buf_addf(b, "%u@%llu;", (unsigned)id[15], (unsigned long long)bucket);
    return true;
}

static const char *names(td_store *s, const char *tenant, uint8_t scope, uint64_t a, uint64_t z,
                         size_t max, td_buf *b)
{
    td_err err;
    td_err_init(&err);
    td_buf_reset(b);
    TD_ASSERT_OK(td_store_tag_names(s, tenant, scope, a, z, max, name_cb, b, NULL, &err));
    return b->data;
}

static const char *values(td_store *s, const char *tenant, uint8_t scope, const char *key,
                          uint64_t a, uint64_t z, size_t max, td_buf *b)
{
    td_err err;
    td_err_init(&err);
    td_buf_reset(b);
    uint64_t insp = 0;
    TD_ASSERT_OK(td_store_tag_values(s, tenant, scope, key, strlen(key), a, z, max, value_cb, b,
                                     &insp, &err));
    TD_CHECK(b->len == 0 || insp > 0);
    return b->data;
}

/* Equality lookup of a string value; *exact and *trunc reported. */
static const char *traces_str(td_store *s, const char *tenant, uint8_t scope, const char *key,
                              uint8_t type, const char *val, uint64_t a, uint64_t z,
                              uint64_t max_scan, bool *exact, bool *trunc, td_buf *b)
{
    td_err err;
    td_err_init(&err);
    td_buf_reset(b);
    TD_ASSERT_OK(td_store_index_traces(s, tenant, scope, key, strlen(key), type,
                                       (const uint8_t *)val, strlen(val), (const uint8_t *)val,
                                       strlen(val), a, z, max_scan, trace_cb, b, exact, trunc,
                                       &err));
    return b->data;
}

static const char *traces_num(td_store *s, const char *tenant, uint8_t scope, const char *key,
                              uint64_t lo, uint64_t hi, uint64_t a, uint64_t z, bool *exact,
                              td_buf *b)
{
    td_err err;
    td_err_init(&err);
    td_buf_reset(b);
    uint8_t l[8], h[8];
    td__put_be64(l, lo);
    td__put_be64(h, hi);
    bool trunc;
    TD_ASSERT_OK(td_store_index_traces(s, tenant, scope, key, strlen(key), TD_IDX_INT, l, 8, h, 8,
                                       a, z, 0, trace_cb, b, exact, &trunc, &err));
    TD_CHECK(!trunc);
    return b->data;
}

static void test_idx_key_order(void)
{
    /* escaped strings sort like the raw bytes, and none is a prefix of another */
    static const char *const v[] = {"", "a", "a\0", "a\0\0", "a\x01", "ab", "b", "\xff"};
    static const size_t vl[] = {0, 1, 2, 3, 2, 2, 1, 1};
    uint8_t prev[TD__KEY_IDX_MAX], cur[TD__KEY_IDX_MAX];
    size_t plen = 0;
    uint8_t id[16];
    tid_of(id, 1);
    for (size_t i = 0; i < sizeof(vl) / sizeof(vl[0]); i++) {
        size_t n = td__key_idx(cur, "t", 1, 's', (const uint8_t *)"k", 1, 's',
                               (const uint8_t *)v[i], vl[i], 5, 9);
        /* decode it back */
        size_t pos = 1 + 1 + 1 + 1, klen = 0;
        uint8_t out[16];
        TD_CHECK(td__esc_get(cur, n, &pos, out, sizeof(out), &klen));
        TD_ASSERT_EQ_U64(klen, 1);
        TD_ASSERT_EQ_INT(cur[pos], 's');
        pos++;
        TD_CHECK(td__esc_get(cur, n, &pos, out, sizeof(out), &klen));
        TD_ASSERT_EQ_U64(klen, vl[i]);
        TD_ASSERT_EQ_MEM(out, v[i], vl[i]);
        TD_ASSERT_EQ_U64(n, pos + TD__IDX_TAIL);
        TD_ASSERT_EQ_U64(td__get_be32(cur + pos), 5);
        if (i > 0) {
            TD_CHECK(keycmp(prev, plen, cur, n) < 0);
            /* the successor of the previous value lies between the two */
            uint8_t succ[TD__KEY_IDX_MAX];
            memcpy(succ, prev, plen - TD__IDX_TAIL);
            size_t sl = td__esc_successor(succ, plen - TD__IDX_TAIL);
            TD_CHECK(keycmp(prev, plen, succ, sl) < 0);
            TD_CHECK(keycmp(succ, sl, cur, n) < 0);
        }
        memcpy(prev, cur, n);
        plen = n;
    }
    /* within a value: bucket, then seq; keys (tag names) also sort bytewise */
    uint8_t a[TD__KEY_IDX_MAX], b[TD__KEY_IDX_MAX];
    size_t na = td__key_idx(a, "t", 1, 's', (const uint8_t *)"k", 1, 'i', id, 8, 7, UINT64_MAX);
    size_t nb = td__key_idx(b, "t", 1, 's', (const uint8_t *)"k", 1, 'i', id, 8, 8, 0);
    TD_CHECK(keycmp(a, na, b, nb) < 0);
    nb = td__key_idx(b, "t", 1, 's', (const uint8_t *)"k", 1, 'i', id, 8, 7, UINT64_MAX - 1);
    TD_CHECK(keycmp(b, nb, a, na) < 0);
    na = td__key_tag(a, "t", 1, 'r', (const uint8_t *)"ab", 2, 9);
    nb = td__key_tag(b, "t", 1, 'r', (const uint8_t *)"abc", 3, 1);
    TD_CHECK(keycmp(a, na, b, nb) < 0);
    TD_ASSERT_EQ_INT(a[0], 'K');
    /* tenant "a" never shares a prefix with tenant "ab" */
    na = td__key_idx_prefix(a, "a", 1, 's', (const uint8_t *)"k", 1);
    nb = td__key_idx_prefix(b, "ab", 2, 's', (const uint8_t *)"k", 1);
    TD_CHECK(memcmp(a, b, na < nb ? na : nb) != 0);
    /* malformed escapes are rejected */
    const uint8_t bad[] = {'x', 0, 7};
    size_t pos = 0, n;
    uint8_t out[4];
    TD_CHECK(!td__esc_get(bad, sizeof(bad), &pos, out, sizeof(out), &n));
    const uint8_t open[] = {'x', 'y'};
    pos = 0;
    TD_CHECK(!td__esc_get(open, sizeof(open), &pos, out, sizeof(out), &n));
}

/* Numbers encode in memcmp order and decode back. */
static void test_idx_value_encoding(void)
{
    static const int64_t ints[] = {INT64_MIN, -5000000000LL, -1, 0, 1, 200, INT64_MAX};
    uint8_t prev[8], cur[8];
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        td_idx_put_int(cur, ints[i]);
        TD_ASSERT_EQ_INT(td_idx_get_int(cur), ints[i]);
        if (i) {
            TD_CHECK(memcmp(prev, cur, 8) < 0);
        }
        memcpy(prev, cur, 8);
    }
    static const double fl[] = {-INFINITY, -1e300, -2.5, -1e-300, -0.0, 0.0, 1e-300, 0.5, 2,
                                1e300,      INFINITY};
    for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
        td_idx_put_float(cur, fl[i]);
        double back = td_idx_get_float(cur);
        TD_ASSERT_EQ_MEM(&back, &fl[i], sizeof(back));
        if (i) {
            TD_CHECK(memcmp(prev, cur, 8) < 0);
        }
        memcpy(prev, cur, 8);
    }
    TD_ASSERT_EQ_INT(td_idx_durclass(0), 0);
    TD_ASSERT_EQ_INT(td_idx_durclass(1), 1);
    TD_ASSERT_EQ_INT(td_idx_durclass(1023), 10);
    TD_ASSERT_EQ_INT(td_idx_durclass(1024), 11);
    TD_ASSERT_EQ_INT(td_idx_durclass(UINT64_MAX), 64);
}

static void test_batch_new_idx(void)
{
    td_batch *b = td_batch_new_idx("t", 3, 2, 5, 40);
    TD_CHECK(b != NULL);
    TD_ASSERT_EQ_U64(b->nidx, 5);
    TD_ASSERT_EQ_U64((uintptr_t)b->idx % _Alignof(td_idx_entry), 0);
    TD_CHECK((uint8_t *)b->idx >= (uint8_t *)(b->res + 2));
    TD_CHECK(b->data >= (uint8_t *)(b->idx + 5));
    for (size_t i = 0; i < 5; i++) {
        TD_ASSERT_EQ_U64(b->idx[i].val_len, 0);
    }
    memset(b->data, 0xab, 40); /* ASan: the data area is all ours */
    td_batch_free(b);
    TD_CHECK(td_batch_new_idx("t", SIZE_MAX / 8, 0, SIZE_MAX / 8, 1) == NULL);
}

static void test_idx_round_trip(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    uint64_t t0 = 1000 * HOUR_NS; /* hour 1000, minute 60000 */
    /* trace 1 in minute 0 of hour 1000, trace 2 a minute later, trace 3 two hours later */
    unsigned tids[] = {1, 2, 3};
    uint64_t starts[] = {t0 + 5, t0 + MIN_NS + 5, t0 + 2 * HOUR_NS};
    ispec e[] = {
        {0, 'r', 's', "service.name", "api", 0},  {1, 'r', 's', "service.name", "db", 0},
        {2, 'r', 's', "service.name", "api", 0},  {0, 's', 'i', "http.status", NULL, 200},
        {1, 's', 'i', "http.status", NULL, 500},  {2, 's', 'i', "http.status", NULL, 404},
        {0, 'i', 'k', "status", "error", 0},      {2, 's', 's', "late.key", "v", 0},
        {1, 's', 's', "a", "x\0y", 3},
    };
    write_idx(s, "t", tids, starts, 3, e, sizeof(e) / sizeof(e[0]));
    /* another tenant's entries never show */
    ispec other[] = {{0, 'r', 's', "service.name", "zzz", 0}};
    write_idx(s, "tt", tids, starts, 1, other, 1);

    TD_ASSERT_EQ_STR(names(s, "t", 'r', 0, 0, 0, &b), "r:service.name;");
    TD_ASSERT_EQ_STR(names(s, "t", 's', 0, 0, 0, &b), "s:a;s:http.status;s:late.key;");
    TD_ASSERT_EQ_STR(names(s, "t", 's', 0, 0, 2, &b), "s:a;s:http.status;");
    /* window: hour 1000 only, then hour 1002 only */
    TD_ASSERT_EQ_STR(names(s, "t", 's', t0, t0 + 10, 0, &b), "s:a;s:http.status;");
    TD_ASSERT_EQ_STR(names(s, "t", 's', t0 + 2 * HOUR_NS, t0 + 3 * HOUR_NS, 0, &b),
                     "s:http.status;s:late.key;");
    TD_ASSERT_EQ_STR(names(s, "t", 's', 0, t0 - 1, 0, &b), "");
    TD_ASSERT_EQ_STR(names(s, "nobody", 's', 0, 0, 0, &b), "");

    TD_ASSERT_EQ_STR(values(s, "t", 'r', "service.name", 0, 0, 0, &b), "s:api;s:db;");
    TD_ASSERT_EQ_STR(values(s, "tt", 'r', "service.name", 0, 0, 0, &b), "s:zzz;");
    TD_ASSERT_EQ_STR(values(s, "t", 's', "http.status", 0, 0, 0, &b), "i:200;i:404;i:500;");
    TD_ASSERT_EQ_STR(values(s, "t", 's', "http.status", 0, 0, 1, &b), "i:200;");
    /* minute windows */
    TD_ASSERT_EQ_STR(values(s, "t", 's', "http.status", t0 + MIN_NS, t0 + MIN_NS, 0, &b),
                     "i:500;");
    TD_ASSERT_EQ_STR(values(s, "t", 'r', "service.name", t0 + MIN_NS, t0 + 3 * HOUR_NS, 0, &b),
                     "s:api;s:db;");
    TD_ASSERT_EQ_STR(values(s, "t", 'r', "service.name", t0 + 2 * MIN_NS, t0 + HOUR_NS, 0, &b),
                     "");
    TD_ASSERT_EQ_STR(values(s, "t", 'i', "status", 0, 0, 0, &b), "k:error;");
    td_buf_reset(&b);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_tag_values(s, "t", 's', "a", 1, 0, 0, 0, value_cb, &b, NULL, &err));
    TD_ASSERT_EQ_U64(b.len, 6); /* "s:x\0y;" with its NUL */

    /* lookups: newest bucket first */
    bool exact, trunc;
    uint64_t m0 = t0 / MIN_NS;
    char want[128];
    snprintf(want, sizeof(want), "3@%llu;1@%llu;", (unsigned long long)(m0 + 120),
             (unsigned long long)m0);
    TD_ASSERT_EQ_STR(traces_str(s, "t", 'r', "service.name", 's', "api", 0, UINT64_MAX / 2, 0,
                                &exact, &trunc, &b),
                     want);
    TD_CHECK(exact && !trunc);
    /* a truncated lookup says so and visits nothing */
    TD_ASSERT_EQ_STR(traces_str(s, "t", 'r', "service.name", 's', "api", 0, UINT64_MAX / 2, 1,
                                &exact, &trunc, &b),
                     "");
    TD_CHECK(exact && trunc);
    /* window cuts the later one; absent values are exactly empty */
    traces_str(s, "t", 'r', "service.name", 's', "api", t0, t0 + HOUR_NS, 0, &exact, &trunc, &b);
    snprintf(want, sizeof(want), "1@%llu;", (unsigned long long)m0);
    TD_ASSERT_EQ_STR(b.data, want);
    TD_ASSERT_EQ_STR(traces_str(s, "t", 'r', "service.name", 's', "nope", 0, UINT64_MAX / 2, 0,
                                &exact, &trunc, &b),
                     "");
    TD_CHECK(exact);
    /* the type is part of the value: the string "error" is not the keyword */
    TD_ASSERT_EQ_STR(
        traces_str(s, "t", 'i', "status", 's', "error", 0, UINT64_MAX / 2, 0, &exact, &trunc, &b),
        "");
    TD_ASSERT_EQ_STR(
        traces_str(s, "t", 'i', "status", 'k', "error", 0, UINT64_MAX / 2, 0, &exact, &trunc, &b),
        want);
    /* numeric ranges merge values, newest first */
    snprintf(want, sizeof(want), "3@%llu;2@%llu;", (unsigned long long)(m0 + 120),
             (unsigned long long)(m0 + 1));
    TD_ASSERT_EQ_STR(traces_num(s, "t", 's', "http.status", 400, 599, 0, UINT64_MAX / 2, &exact,
                                &b),
                     want);
    TD_CHECK(exact);
    TD_ASSERT_EQ_STR(traces_num(s, "t", 's', "http.status", 501, 599, 0, UINT64_MAX / 2, &exact,
                                &b),
                     "");
    TD_CHECK(exact);
    /* rewriting the same entries does not duplicate them */
    write_idx(s, "t", tids, starts, 3, e, sizeof(e) / sizeof(e[0]));
    TD_ASSERT_EQ_STR(traces_num(s, "t", 's', "http.status", 400, 599, 0, UINT64_MAX / 2, &exact,
                                &b),
                     want);
    TD_ASSERT_EQ_STR(names(s, "t", 's', 0, 0, 0, &b), "s:a;s:http.status;s:late.key;");
    TD_CHECK(td_store_approx_size_type(s, 'I') <= td_store_approx_size(s));

    td_buf_release(&b);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

static void test_idx_limits_and_restart(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    o.index_max_value_len = 16;
    o.index_max_values = 3;
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    td_metric *too_long = td_metric_series(TD_M_INDEX_SKIPPED, "value_too_long", NULL, NULL);
    td_metric *too_many = td_metric_series(TD_M_INDEX_SKIPPED, "too_many_values", NULL, NULL);
    td_metric *entries = td_metric_series(TD_M_INDEX_ENTRIES, NULL, NULL, NULL);
    uint64_t l0 = td_metric_get(too_long), m0 = td_metric_get(too_many),
             e0 = td_metric_get(entries);
    unsigned tids[] = {1, 2, 3, 4, 5};
    uint64_t starts[] = {MIN_NS, 2 * MIN_NS, 3 * MIN_NS, 4 * MIN_NS, 5 * MIN_NS};
    ispec e[] = {
        {0, 's', 's', "k", "v1", 0},
        {1, 's', 's', "k", "v2", 0},
        {2, 's', 's', "k", "a-value-longer-than-16", 0},
        {2, 's', 's', "k", "v3", 0},
        {3, 's', 's', "k", "v4", 0}, /* fourth distinct value: over the limit */
        {4, 's', 's', "k", "v1", 0}, /* known value: still indexed */
    };
    write_idx(s, "t", tids, starts, 5, e, 6);
    TD_ASSERT_EQ_U64(td_metric_get(too_long) - l0, 1);
    TD_ASSERT_EQ_U64(td_metric_get(too_many) - m0, 1);
    TD_ASSERT_EQ_U64(td_metric_get(entries) - e0, 4);
    TD_ASSERT_EQ_STR(values(s, "t", 's', "k", 0, 0, 0, &b), "s:v1;s:v2;s:v3;");
    bool exact, trunc;
    char want[64];
    snprintf(want, sizeof(want), "5@5;1@1;");
    TD_ASSERT_EQ_STR(traces_str(s, "t", 's', "k", 's', "v1", 0, HOUR_NS, 0, &exact, &trunc, &b),
                     want);
    TD_CHECK(exact);
    /* v4 was left out and the key is at its limit: not exact, nothing visited */
    traces_str(s, "t", 's', "k", 's', "v4", 0, HOUR_NS, 0, &exact, &trunc, &b);
    TD_CHECK(!exact);
    TD_ASSERT_EQ_U64(b.len, 0);
    traces_str(s, "t", 's', "k", 's', "a-value-longer-than-16", 0, HOUR_NS, 0, &exact, &trunc,
               &b);
    TD_CHECK(!exact);
    /* a string range is never exact; another key stays exact */
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_index_traces(s, "t", 's', "k", 1, 's', (const uint8_t *)"a", 1,
                                       (const uint8_t *)"z", 1, 0, HOUR_NS, 0, trace_cb, &b,
                                       &exact, &trunc, &err));
    TD_CHECK(!exact);
    traces_str(s, "t", 's', "other", 's', "x", 0, HOUR_NS, 0, &exact, &trunc, &b);
    TD_CHECK(exact);

    /* restart: the cap is rebuilt from the index, the known values still go in */
    td_store_close(s);
    s = open_store(&o);
    m0 = td_metric_get(too_many);
    e0 = td_metric_get(entries);
    ispec e2[] = {{0, 's', 's', "k", "v5", 0}, {1, 's', 's', "k", "v2", 0}};
    unsigned tids2[] = {6, 7};
    uint64_t starts2[] = {6 * MIN_NS, 7 * MIN_NS};
    write_idx(s, "t", tids2, starts2, 2, e2, 2);
    TD_ASSERT_EQ_U64(td_metric_get(too_many) - m0, 1);
    TD_ASSERT_EQ_U64(td_metric_get(entries) - e0, 1);
    TD_ASSERT_EQ_STR(values(s, "t", 's', "k", 0, 0, 0, &b), "s:v1;s:v2;s:v3;");
    TD_ASSERT_EQ_STR(traces_str(s, "t", 's', "k", 's', "v2", 0, HOUR_NS, 0, &exact, &trunc, &b),
                     "7@7;2@2;");
    TD_CHECK(exact);
    /* other tenants have limits of their own */
    write_idx(s, "u", tids2, starts2, 2, e2, 2);
    TD_ASSERT_EQ_STR(values(s, "u", 's', "k", 0, 0, 0, &b), "s:v2;s:v5;");

    td_buf_release(&b);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

/* Delete metadata key k with the store closed, as a store from before indexing lacks it. */
static void meta_delete(const td_store_opts *o, const char *k)
{
    td_buf path = TD_BUF_INIT;
    td_buf_addf(&path, "%s/traces", o->dir);
    leveldb_options_t *lo = leveldb_options_create();
    char *lerr = NULL;
    leveldb_t *db = leveldb_open(lo, path.data, &lerr);
    TD_CHECK(lerr == NULL);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_delete(db, wo, k, strlen(k), &lerr);
    TD_CHECK(lerr == NULL);
    leveldb_writeoptions_destroy(wo);
    leveldb_close(db);
    leveldb_options_destroy(lo);
    td_buf_release(&path);
}

/*
 * Exactness marks: the start of indexing (0 for a new store, "now" for one
 * holding older fragments) and the range of fragments written without entries.
 */
static void test_idx_since_and_hole(void)
{
    tmp_make();
    td_store_opts o = opts_for("new");
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    bool exact, trunc;
    traces_str(s, "t", 's', "k", 's', "v", 0, 10, 0, &exact, &trunc, &b);
    TD_CHECK(exact);
    /* a batch without index entries makes its time range inexact, and only that */
    write_one(s, "t", (fspec[]){{1, 5 * MIN_NS, 6 * MIN_NS, 1, "x"}}, 1);
    traces_str(s, "t", 's', "k", 's', "v", 0, 10, 0, &exact, &trunc, &b);
    TD_CHECK(exact);
    traces_str(s, "t", 's', "k", 's', "v", 0, 5 * MIN_NS, 0, &exact, &trunc, &b);
    TD_CHECK(!exact);
    traces_str(s, "t", 's', "k", 's', "v", 6 * MIN_NS, HOUR_NS, 0, &exact, &trunc, &b);
    TD_CHECK(!exact);
    traces_str(s, "t", 's', "k", 's', "v", 6 * MIN_NS + 1, HOUR_NS, 0, &exact, &trunc, &b);
    TD_CHECK(exact);
    /* batches with entries do not widen it */
    unsigned tids[] = {2};
    uint64_t starts[] = {9 * MIN_NS};
    ispec e[] = {{0, 's', 's', "k", "v", 0}};
    write_idx(s, "t", tids, starts, 1, e, 1);
    TD_ASSERT_EQ_STR(
        traces_str(s, "t", 's', "k", 's', "v", 7 * MIN_NS, HOUR_NS, 0, &exact, &trunc, &b),
        "2@9;");
    TD_CHECK(exact);
    td_store_close(s);
    s = open_store(&o); /* both marks persist */
    traces_str(s, "t", 's', "k", 's', "v", 0, 5 * MIN_NS, 0, &exact, &trunc, &b);
    TD_CHECK(!exact);
    traces_str(s, "t", 's', "k", 's', "v", 0, 10, 0, &exact, &trunc, &b);
    TD_CHECK(exact);
    td_store_close(s);
    opts_release(&o);

    /* an older store: fragments, but neither mark */
    o = opts_for("old");
    s = open_store(&o);
    write_one(s, "t", (fspec[]){{1, 5, 6, 1, "x"}}, 1);
    td_store_close(s);
    meta_delete(&o, TD__KEY_META_IDX_SINCE);
    meta_delete(&o, TD__KEY_META_IDX_HOLE);
    s = open_store(&o);
    traces_str(s, "t", 's', "k", 's', "v", 100, 200, 0, &exact, &trunc, &b);
    TD_CHECK(!exact);
    traces_str(s, "t", 's', "k", 's', "v", UINT64_MAX / 4, UINT64_MAX / 2, 0, &exact, &trunc, &b);
    TD_CHECK(exact);
    td_store_close(s);
    s = open_store(&o); /* the mark persists */
    traces_str(s, "t", 's', "k", 's', "v", 100, 200, 0, &exact, &trunc, &b);
    TD_CHECK(!exact);
    td_store_close(s);
    opts_release(&o);
    td_buf_release(&b);
    tmp_remove();
}

/*
 * A store whose 'I' records have the older format (raw trace IDs, no Midxfmt
 * mark): lookups meeting them are inexact, also for data dated after the
 * reopen (so Midxsince alone would not catch them), while records written
 * after the reopen are read through their 'W' tables.
 */
static void test_idx_old_format(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    bool exact, trunc;
    const uint64_t far = UINT64_MAX / 4; /* far after the wall clock */
    unsigned tids[] = {1, 2};
    uint64_t starts[] = {far, far + MIN_NS};
    ispec e[] = {{0, 's', 's', "k", "v", 0}, {1, 's', 's', "k", "v", 0}};
    write_idx(s, "t", tids, starts, 2, e, 2);
    traces_str(s, "t", 's', "k", 's', "v", far, far + HOUR_NS, 0, &exact, &trunc, &b);
    TD_CHECK(exact);
    TD_CHECK(strncmp(b.data, "2@", 2) == 0 && strstr(b.data, ";1@") != NULL);
    td_store_close(s);
    meta_delete(&o, TD__KEY_META_IDX_FMT);
    s = open_store(&o);
    traces_str(s, "t", 's', "k", 's', "v", far, far + HOUR_NS, 0, &exact, &trunc, &b);
    TD_CHECK(!exact);
    /* new records in another window are read */
    unsigned tids2[] = {3};
    uint64_t starts2[] = {far + 2 * HOUR_NS};
    write_idx(s, "t", tids2, starts2, 1, e, 1);
    traces_str(s, "t", 's', "k", 's', "v", far + HOUR_NS + 1, far + 3 * HOUR_NS, 0, &exact,
               &trunc, &b);
    TD_CHECK(exact);
    TD_CHECK(strncmp(b.data, "3@", 2) == 0);
    td_store_close(s);
    s = open_store(&o); /* the boundary persists */
    traces_str(s, "t", 's', "k", 's', "v", far, far + HOUR_NS, 0, &exact, &trunc, &b);
    TD_CHECK(!exact);
    traces_str(s, "t", 's', "k", 's', "v", far + HOUR_NS + 1, far + 3 * HOUR_NS, 0, &exact,
               &trunc, &b);
    TD_CHECK(exact);
    td_store_close(s);
    opts_release(&o);
    td_buf_release(&b);
    tmp_remove();
}

/* A write of more traces than one 'W' chunk holds: every position resolves to its trace. */
static void test_idx_wtab_chunks(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    enum { N = 200 };
    unsigned tids[N];
    uint64_t starts[N];
    ispec e[N + N / 3 + 1];
    size_t ne = 0;
    for (unsigned i = 0; i < N; i++) {
        tids[i] = i + 1;
        starts[i] = MIN_NS;
        e[ne++] = (ispec){i, 's', 's', "k", "v", 0};
        if (i % 3 == 0) {
            e[ne++] = (ispec){i, 's', 's', "k", "w", 0};
        }
    }
    write_idx(s, "t", tids, starts, N, e, ne);
    td_buf b = TD_BUF_INIT;
    bool exact, trunc;
    for (int pass = 0; pass < 2; pass++) {
        const char *val = pass ? "w" : "v";
        traces_str(s, "t", 's', "k", 's', val, 0, HOUR_NS, 0, &exact, &trunc, &b);
        TD_CHECK(exact && !trunc);
        size_t n = 0;
        for (const char *c = b.data; *c; c++) {
            n += *c == ';';
        }
        TD_ASSERT_EQ_U64(n, pass ? (N + 2) / 3 : N);
        for (unsigned i = 0; i < N; i += pass ? 3 : 1) {
            char want[32];
            snprintf(want, sizeof(want), "%u@1;", i + 1);
            char pre[34];
            snprintf(pre, sizeof(pre), ";%s", want);
            TD_CHECK(strncmp(b.data, want, strlen(want)) == 0 || strstr(b.data, pre) != NULL);
        }
    }
    td_buf_release(&b);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

/* A lookup whose write table is missing, short or malformed reports TD_CORRUPT. */
static void test_idx_wtab_corrupt(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    unsigned tids[] = {1, 2};
    uint64_t starts[] = {MIN_NS, MIN_NS};
    ispec e[] = {{0, 's', 's', "k", "v", 0}, {1, 's', 's', "k", "v", 0}};
    write_idx(s, "t", tids, starts, 2, e, 2);
    td_store_close(s);
    /* the write's table key */
    raw_db r;
    raw_open(&r, &o);
    uint8_t wkey[TD__KEY_WTAB_MAX];
    size_t wlen = 0;
    leveldb_iterator_t *it = leveldb_create_iterator(r.db, r.ro);
    leveldb_iter_seek(it, "W", 1);
    TD_CHECK(leveldb_iter_valid(it));
    const char *k = leveldb_iter_key(it, &wlen);
    TD_CHECK(wlen == 2 + 1 + 8 + 4 && k[0] == 'W');
    memcpy(wkey, k, wlen);
    size_t vlen;
    (void)leveldb_iter_value(it, &vlen);
    TD_ASSERT_EQ_U64(vlen, 32); /* two distinct traces */
    leveldb_iter_destroy(it);
    static const char *const bad[] = {"0123456789abcdef", "short"}; /* one trace; 5 bytes */
    for (size_t i = 0; i < 3; i++) {
        if (i < 2) {
            raw_put(&r, wkey, wlen, bad[i], strlen(bad[i]));
        } else {
            char *lerr = NULL;
            leveldb_delete(r.db, r.wo, (const char *)wkey, wlen, &lerr);
            TD_CHECK(lerr == NULL);
        }
        raw_close(&r);
        s = open_store(&o);
        td_err err;
        td_err_init(&err);
        bool exact, trunc;
        td_buf b = TD_BUF_INIT;
        TD_ASSERT_EQ_INT(td_store_index_traces(s, "t", 's', "k", 1, 's', (const uint8_t *)"v", 1,
                                               (const uint8_t *)"v", 1, 0, HOUR_NS, 0, trace_cb,
                                               &b, &exact, &trunc, &err),
                         TD_CORRUPT);
        TD_CHECK(!exact);
        td_buf_release(&b);
        td_store_close(s);
        raw_open(&r, &o);
    }
    raw_close(&r);
    opts_release(&o);
    tmp_remove();
}

/* A write that fails leaves no index entry, tag name or counted value behind. */
static void test_idx_write_oom(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    o.index_max_values = 2;
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    unsigned tids[] = {1, 2};
    uint64_t starts[] = {MIN_NS, 2 * MIN_NS};
    ispec e[] = {{0, 's', 's', "k", "a", 0}, {1, 's', 's', "k", "b", 0},
                 {1, 'r', 's', "service.name", "svc", 0}};
    td_batch *bt = make_idx_batch("t", tids, starts, 2, e, 3);
    td_status st = TD_NOMEM;
    long n;
    for (n = 1; n < 200 && st != TD_OK; n++) {
        td_err err;
        td_err_init(&err);
        td_mem_fail_after(n);
        st = td_store_write(s, &bt, 1, &err);
        bool failed = td_mem_fail_after(0);
        if (st != TD_OK) {
            TD_CHECK(failed);
            TD_ASSERT_EQ_INT(st, TD_NOMEM);
            TD_ASSERT_EQ_STR(names(s, "t", 's', 0, 0, 0, &b), "");
            TD_ASSERT_EQ_STR(values(s, "t", 's', "k", 0, 0, 0, &b), "");
        }
    }
    TD_ASSERT_EQ_INT(st, TD_OK);
    TD_CHECK(n > 3);
    td_batch_free(bt);
    /* the failed attempts did not use up the key's two values */
    TD_ASSERT_EQ_STR(values(s, "t", 's', "k", 0, 0, 0, &b), "s:a;s:b;");
    TD_ASSERT_EQ_STR(names(s, "t", 'r', 0, 0, 0, &b), "r:service.name;");
    /* reads under allocation failure report TD_NOMEM and nothing else */
    for (n = 1; n < 10; n++) {
        td_err err;
        td_err_init(&err);
        bool exact, trunc;
        td_mem_fail_after(n);
        st = td_store_index_traces(s, "t", 's', "k", 1, 's', (const uint8_t *)"a", 1,
                                   (const uint8_t *)"a", 1, 0, HOUR_NS, 0, trace_cb, &b, &exact,
                                   &trunc, &err);
        bool failed = td_mem_fail_after(0);
        TD_CHECK(st == TD_OK || (failed && st == TD_NOMEM && !exact));
    }
    td_buf_release(&b);
    td_store_close(s);
    opts_release(&o);
    tmp_remove();
}

/* ---- retention ---- */

static td_store_retained retain(td_store *s, uint64_t cutoff)
{
    td_store_retained r;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_retain(s, cutoff, NULL, &r, &err));
    return r;
}

/* The trace IDs (last byte) of every summary of tenant, newest minute first. */
static const char *sum_tids(td_store *s, const char *tenant, td_buf *b)
{
    sum_seen w = {0};
    uint64_t scanned;
    bool trunc;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(
        td_store_summaries(s, tenant, 0, UINT64_MAX / 2, 0, sum_cb, &w, &scanned, &trunc, &err));
    td_buf_reset(b);
    td_buf_addstr(b, w.text);
    return b->data;
}

static size_t raw_count_store(const td_store_opts *o, uint8_t type, const char *tenant)
{
    raw_db r;
    raw_open(&r, o);
    uint8_t p[2 + TD_TENANT_MAX];
    size_t tl = strlen(tenant);
    p[0] = type;
    p[1] = (uint8_t)tl;
    memcpy(p + 2, tenant, tl);
    size_t n = raw_count(&r, p, 2 + tl, NULL);
    raw_close(&r);
    return n;
}

/*
 * Data on both sides of the cutoff: old traces go from trace-by-ID, the
 * summaries, tag values and lookups; new ones stay. A trace with an old and a
 * new fragment keeps the new one only (retention is per fragment, by start).
 * 'W' tables go once no index record of their write is left.
 */
static void test_retention_traces(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    uint64_t t0 = 1000 * HOUR_NS;
    uint64_t cutoff = t0 + 10 * MIN_NS + 30000000000ull; /* minute 10 of hour 1000, +30 s */
    uint64_t m0 = t0 / MIN_NS;

    /* write 1: trace 1 (old, minute 0) and trace 6 (two hours older) */
    write_idx(s, "t", (unsigned[]){1, 6}, (uint64_t[]){t0 + 5, t0 - 2 * HOUR_NS}, 2,
              (ispec[]){{0, 'r', 's', "service.name", "api", 0},
                        {0, 's', 'i', "http.status", NULL, 200},
                        {1, 's', 's', "ancient.key", "v", 0}},
              3);
    /* write 2: trace 2 (new, minute 20) and trace 4 (old, minute 9): one 'W' table */
    write_idx(s, "t", (unsigned[]){2, 4}, (uint64_t[]){t0 + 20 * MIN_NS, t0 + 9 * MIN_NS}, 2,
              (ispec[]){{0, 'r', 's', "service.name", "api", 0},
                        {0, 's', 'i', "http.status", NULL, 500},
                        {1, 's', 'i', "http.status", NULL, 404}},
              3);
    /* writes 3 and 4: trace 3, an old fragment (minute 1) and a new one (minute 30) */
    write_idx(s, "t", (unsigned[]){3}, (uint64_t[]){t0 + MIN_NS}, 1,
              (ispec[]){{0, 'r', 's', "service.name", "db", 0}}, 1);
    write_idx(s, "t", (unsigned[]){3}, (uint64_t[]){t0 + 30 * MIN_NS}, 1,
              (ispec[]){{0, 'r', 's', "service.name", "db", 0}}, 1);
    /* write 5: another tenant, old */
    write_idx(s, "u", (unsigned[]){5}, (uint64_t[]){t0 + 2 * MIN_NS}, 1,
              (ispec[]){{0, 'r', 's', "service.name", "api", 0}}, 1);
    /* the boundary minute itself is kept: a fragment at minute 10 + 1 s */
    write_idx(s, "t", (unsigned[]){7}, (uint64_t[]){t0 + 10 * MIN_NS + 1000000000ull}, 1,
              (ispec[]){{0, 'r', 's', "service.name", "edge", 0}}, 1);

    TD_ASSERT_EQ_STR(names(s, "t", 's', 0, 0, 0, &b), "s:ancient.key;s:http.status;");
    uint64_t before =
        td_metric_get(td_metric_series(TD_M_RETENTION_DELETED, "traces", "fragment", NULL));

    /* retention 0 / cutoff 0 deletes nothing */
    td_store_retained r = retain(s, 0);
    TD_ASSERT_EQ_U64(r.fragments + r.index_records + r.tag_records + r.write_tables, 0);

    r = retain(s, cutoff);
    TD_ASSERT_EQ_U64(r.fragments, 5);     /* 1, 6, 4, 3's old one, 5 */
    TD_ASSERT_EQ_U64(r.write_tables, 3);  /* writes 1, 3 and 5 */
    TD_ASSERT_EQ_U64(r.tag_records, 1);   /* ancient.key's hour */
    TD_ASSERT_EQ_U64(r.index_records, 6); /* api, 200, ancient.key, 404, db; u: api */
    TD_ASSERT_EQ_U64(
        td_metric_get(td_metric_series(TD_M_RETENTION_DELETED, "traces", "fragment", NULL)),
        before + 5);

    /* trace by ID */
    TD_ASSERT_EQ_INT(read_trace(s, "t", 1, 0, 0, &b), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "t", 4, 0, 0, &b), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "t", 6, 0, 0, &b), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "u", 5, 0, 0, &b), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "t", 2, 0, 0, &b), TD_OK);
    TD_ASSERT_EQ_STR(b.data, "x;");
    TD_ASSERT_EQ_INT(read_trace(s, "t", 3, 0, 0, &b), TD_OK);
    TD_ASSERT_EQ_STR(b.data, "x;"); /* only its new fragment */
    TD_ASSERT_EQ_INT(read_trace(s, "t", 7, 0, 0, &b), TD_OK);

    /* search candidates (summaries): newest minute first */
    char want[256];
    snprintf(want, sizeof(want), "3@%llu/0;2@%llu/0;7@%llu/0", (unsigned long long)(m0 + 30),
             (unsigned long long)(m0 + 20), (unsigned long long)(m0 + 10));
    TD_ASSERT_EQ_STR(sum_tids(s, "t", &b), want);
    TD_ASSERT_EQ_STR(sum_tids(s, "u", &b), "");

    /* tag names and values */
    TD_ASSERT_EQ_STR(names(s, "t", 's', 0, 0, 0, &b), "s:http.status;");
    TD_ASSERT_EQ_STR(values(s, "t", 's', "http.status", 0, 0, 0, &b), "i:500;");
    TD_ASSERT_EQ_STR(values(s, "t", 'r', "service.name", 0, 0, 0, &b), "s:api;s:db;s:edge;");
    TD_ASSERT_EQ_STR(values(s, "u", 'r', "service.name", 0, 0, 0, &b), "");
    TD_ASSERT_EQ_STR(values(s, "t", 's', "ancient.key", 0, 0, 0, &b), "");

    /* lookups stay exact, over windows reaching before the cutoff too */
    bool exact, trunc;
    snprintf(want, sizeof(want), "2@%llu;", (unsigned long long)(m0 + 20));
    TD_ASSERT_EQ_STR(traces_str(s, "t", 'r', "service.name", 's', "api", 0, UINT64_MAX / 2, 0,
                                &exact, &trunc, &b),
                     want);
    TD_CHECK(exact);
    snprintf(want, sizeof(want), "3@%llu;", (unsigned long long)(m0 + 30));
    TD_ASSERT_EQ_STR(traces_str(s, "t", 'r', "service.name", 's', "db", 0, UINT64_MAX / 2, 0,
                                &exact, &trunc, &b),
                     want);
    TD_CHECK(exact);
    snprintf(want, sizeof(want), "2@%llu;", (unsigned long long)(m0 + 20));
    TD_ASSERT_EQ_STR(traces_num(s, "t", 's', "http.status", 0, 999, 0, UINT64_MAX / 2, &exact, &b),
                     want); /* write 2's table is still there */
    TD_CHECK(exact);
    TD_ASSERT_EQ_STR(
        traces_num(s, "t", 's', "http.status", 200, 200, 0, UINT64_MAX / 2, &exact, &b), "");
    TD_CHECK(exact);

    /* idempotent */
    r = retain(s, cutoff);
    TD_ASSERT_EQ_U64(r.fragments + r.index_records + r.tag_records + r.write_tables, 0);

    /* writes go on after a pass: an old value can come back, new ones are indexed */
    write_idx(s, "t", (unsigned[]){8}, (uint64_t[]){t0 + 40 * MIN_NS}, 1,
              (ispec[]){{0, 's', 'i', "http.status", NULL, 200}}, 1);
    snprintf(want, sizeof(want), "8@%llu;", (unsigned long long)(m0 + 40));
    TD_ASSERT_EQ_STR(
        traces_num(s, "t", 's', "http.status", 200, 200, 0, UINT64_MAX / 2, &exact, &b), want);
    td_store_close(s);

    /* on disk: the tables of writes 2, 4, 6 and 7 are left, none of tenant u */
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'W', "t"), 4);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'W', "u"), 0);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'I', "u"), 0);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'T', "t"), 4);

    td_buf_release(&b);
    opts_release(&o);
    tmp_remove();
}

/*
 * Many writes (more distinct write seqs than the first seq buffer holds), a
 * stop flag set before the pass (nothing deleted, TD_OK), then the full pass.
 */
static void test_retention_many(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    uint64_t t0 = 1000 * HOUR_NS;
    enum { N = 1500 };
    for (unsigned i = 0; i < N; i++) {
        /* old fragments in minutes 0..4, a new one every 100 writes */
        uint64_t start = i % 100 == 99 ? t0 + 30 * MIN_NS + i : t0 + (i % 5) * MIN_NS + i;
        write_idx(s, "t", (unsigned[]){i + 1}, (uint64_t[]){start}, 1,
                  (ispec[]){{0, 'r', 's', "service.name", i % 2 ? "a" : "b", 0}}, 1);
    }
    atomic_bool stop = true;
    td_store_retained r;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_retain(s, t0 + 10 * MIN_NS, &stop, &r, &err));
    TD_ASSERT_EQ_U64(r.fragments + r.index_records + r.write_tables, 0);
    TD_ASSERT_EQ_INT(read_trace(s, "t", 1, 0, 0, &b), TD_OK);

    r = retain(s, t0 + 10 * MIN_NS);
    TD_ASSERT_EQ_U64(r.fragments, N - N / 100);
    TD_ASSERT_EQ_U64(r.index_records, N - N / 100);
    TD_ASSERT_EQ_U64(r.write_tables, N - N / 100);
    TD_ASSERT_EQ_INT(read_trace(s, "t", 1, 0, 0, &b), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(read_trace(s, "t", 100, 0, 0, &b), TD_OK);
    bool exact, trunc;
    traces_str(s, "t", 'r', "service.name", 's', "b", 0, UINT64_MAX / 2, 0, &exact, &trunc, &b);
    TD_CHECK(exact);
    TD_ASSERT_EQ_U64(b.len, 0); /* every kept write (i = 99, 199, ...) has i odd: "a" */
    traces_str(s, "t", 'r', "service.name", 's', "a", 0, UINT64_MAX / 2, 0, &exact, &trunc, &b);
    TD_CHECK(exact);
    size_t n = 0;
    for (size_t i = 0; i < b.len; i++) {
        n += b.data[i] == ';';
    }
    TD_ASSERT_EQ_U64(n, N / 100);
    td_store_close(s);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'W', "t"), N / 100);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'T', "t"), N / 100);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'S', "t"), N / 100);
    td_buf_release(&b);
    opts_release(&o);
    tmp_remove();
}

/*
 * Retention passes racing a writer of old and new fragments and a reader of
 * index lookups: no pass or lookup fails (a 'W' table never goes before the
 * records naming it), and once the writer is done one more pass leaves
 * exactly the new fragments, all found through the index.
 */
typedef struct race_ctx {
    td_store *s;
    uint64_t t0;
    atomic_bool go; /* set by the retention loop: the writer starts only then */
    atomic_bool done;
    int failures;
} race_ctx;

enum { RACE_N = 600 };

static void *race_writer(void *p)
{
    race_ctx *c = p;
    while (!atomic_load(&c->go)) {
        sched_yield();
    }
    for (unsigned i = 0; i < RACE_N; i++) {
        /* a late fragment of an old trace next to a new one, in one write */
        uint64_t old = c->t0 + (i % 5) * MIN_NS, now = c->t0 + 30 * MIN_NS + i;
        td_batch *b = make_idx_batch(
            "t", (unsigned[]){i % 50 + 1, 1000 + i}, (uint64_t[]){old, now}, 2,
            (ispec[]){{0, 'r', 's', "service.name", "a", 0}, {1, 'r', 's', "service.name", "a", 0}},
            2);
        td_err err;
        td_err_init(&err);
        if (td_store_write(c->s, &b, 1, &err) != TD_OK) {
            c->failures++;
        }
        td_batch_free(b);
    }
    atomic_store(&c->done, true);
    return NULL;
}

static bool race_count(void *ud, const uint8_t id[16], uint64_t bucket)
{
    (void)id;
    (void)bucket;
    (*(size_t *)ud)++;
    return true;
}

static void *race_reader(void *p)
{
    race_ctx *c = p;
    while (!atomic_load(&c->done)) {
        size_t n = 0;
        bool exact, trunc;
        td_err err;
        td_err_init(&err);
        if (td_store_index_traces(c->s, "t", 'r', "service.name", 12, 's', (const uint8_t *)"a", 1,
                                  (const uint8_t *)"a", 1, 0, UINT64_MAX / 2, 0, race_count, &n,
                                  &exact, &trunc, &err) != TD_OK) {
            fprintf(stderr, "  lookup: %s\n", err.msg);
            c->failures++;
        }
    }
    return NULL;
}

static void test_retention_race(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    race_ctx c = {.s = open_store(&o), .t0 = 1000 * HOUR_NS};
    atomic_init(&c.go, false);
    atomic_init(&c.done, false);
    pthread_t w, rd;
    TD_ASSERT_EQ_INT(pthread_create(&w, NULL, race_writer, &c), 0);
    TD_ASSERT_EQ_INT(pthread_create(&rd, NULL, race_reader, &c), 0);
    /* at least one pass starts while the writer runs (a fast writer could finish first) */
    unsigned passes = 0;
    atomic_store(&c.go, true);
    do {
        retain(c.s, c.t0 + 10 * MIN_NS);
        passes++;
    } while (!atomic_load(&c.done));
    pthread_join(w, NULL);
    pthread_join(rd, NULL);
    TD_ASSERT_EQ_INT(c.failures, 0);
    TD_CHECK(passes > 0);
    retain(c.s, c.t0 + 10 * MIN_NS);
    size_t n = 0;
    bool exact, trunc;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_store_index_traces(c.s, "t", 'r', "service.name", 12, 's', (const uint8_t *)"a",
                                       1, (const uint8_t *)"a", 1, 0, UINT64_MAX / 2, 0, race_count,
                                       &n, &exact, &trunc, &err));
    TD_CHECK(exact);
    TD_ASSERT_EQ_U64(n, RACE_N);
    td_store_retained r = retain(c.s, c.t0 + 10 * MIN_NS);
    TD_ASSERT_EQ_U64(r.fragments + r.index_records + r.write_tables + r.tag_records, 0);
    td_store_close(c.s);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'T', "t"), RACE_N);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'W', "t"), RACE_N);
    opts_release(&o);
    tmp_remove();
}

/* A write of more traces than one 'W' chunk holds: its chunks go together or stay together. */
static void test_retention_chunks(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    uint64_t t0 = 1000 * HOUR_NS;
    enum { NT = 2 * TD__WTAB_CHUNK + 2 }; /* three chunks */
    unsigned tids[NT];
    uint64_t starts[NT];
    ispec e[NT];
    for (unsigned w = 0; w < 2; w++) {
        for (unsigned i = 0; i < NT; i++) {
            tids[i] = 1 + w * 1000 + i;
            /* write 1 (w = 1): its last trace, in the last chunk, is new */
            starts[i] = w == 1 && i == NT - 1 ? t0 + 30 * MIN_NS : t0 + i;
            e[i] = (ispec){i, 'r', 's', "service.name", w == 1 && i == NT - 1 ? "new" : "old", 0};
        }
        write_idx(s, "t", tids, starts, NT, e, NT);
    }
    td_store_retained r = retain(s, t0 + 10 * MIN_NS);
    TD_ASSERT_EQ_U64(r.fragments, 2 * NT - 1);
    TD_ASSERT_EQ_U64(r.write_tables, 3); /* write 0's three chunks */
    bool exact, trunc;
    char want[64];
    snprintf(want, sizeof(want), "%u@%llu;", (unsigned)((1 + 1000 + NT - 1) & 0xff),
             (unsigned long long)(t0 / MIN_NS + 30));
    TD_ASSERT_EQ_STR(traces_str(s, "t", 'r', "service.name", 's', "new", 0, UINT64_MAX / 2, 0,
                                &exact, &trunc, &b),
                     want);
    TD_CHECK(exact);
    TD_ASSERT_EQ_STR(traces_str(s, "t", 'r', "service.name", 's', "old", 0, UINT64_MAX / 2, 0,
                                &exact, &trunc, &b),
                     "");
    TD_CHECK(exact);
    td_store_close(s);
    TD_ASSERT_EQ_U64(raw_count_store(&o, 'W', "t"), 3);
    td_buf_release(&b);
    opts_release(&o);
    tmp_remove();
}

/*
 * A key at its index-max-values limit whose values all go with retention: the
 * writer's distinct-value table is cleared with the batch that removes them, so
 * a new value is admitted and indexed (not refused by a stale "key full").
 */
static void test_retention_value_limit(void)
{
    tmp_make();
    td_store_opts o = opts_for("db");
    o.index_max_values = 3;
    o.index_max_value_len = 256;
    td_store *s = open_store(&o);
    td_buf b = TD_BUF_INIT;
    uint64_t t0 = 1000 * HOUR_NS;
    const char *vals[] = {"v1", "v2", "v3"};
    for (unsigned i = 0; i < 3; i++) {
        write_idx(s, "t", (unsigned[]){i + 1}, (uint64_t[]){t0 + i}, 1,
                  (ispec[]){{0, 's', 's', "k", vals[i], 0}, {0, 's', 's', "keep", vals[i], 0}},
                  2);
    }
    /* "keep" gets a new record of v1: the value stays after the pass */
    write_idx(s, "t", (unsigned[]){9}, (uint64_t[]){t0 + 20 * MIN_NS}, 1,
              (ispec[]){{0, 's', 's', "keep", "v1", 0}}, 1);
    TD_ASSERT_EQ_STR(values(s, "t", 's', "k", 0, 0, 0, &b), "s:v1;s:v2;s:v3;");
    td_store_retained r = retain(s, t0 + 10 * MIN_NS);
    TD_ASSERT_EQ_U64(r.fragments, 3);
    TD_ASSERT_EQ_STR(values(s, "t", 's', "k", 0, 0, 0, &b), "");
    TD_ASSERT_EQ_STR(values(s, "t", 's', "keep", 0, 0, 0, &b), "s:v1;");
    write_idx(s, "t", (unsigned[]){10}, (uint64_t[]){t0 + 21 * MIN_NS}, 1,
              (ispec[]){{0, 's', 's', "k", "v4", 0}}, 1);
    bool exact, trunc;
    char want[64];
    snprintf(want, sizeof(want), "10@%llu;", (unsigned long long)(t0 / MIN_NS + 21));
    TD_ASSERT_EQ_STR(
        traces_str(s, "t", 's', "k", 's', "v4", 0, UINT64_MAX / 2, 0, &exact, &trunc, &b), want);
    TD_CHECK(exact);
    TD_ASSERT_EQ_STR(values(s, "t", 's', "k", 0, 0, 0, &b), "s:v4;");
    td_store_close(s);
    td_buf_release(&b);
    opts_release(&o);
    tmp_remove();
}

TEST_LIST = {
    {"retention_value_limit", test_retention_value_limit},
    {"retention_chunks", test_retention_chunks},
    {"retention_race", test_retention_race},
    {"retention_many", test_retention_many},
    {"retention_traces", test_retention_traces},
    {"idx_key_order", test_idx_key_order},
    {"batch_new_idx", test_batch_new_idx},
    {"idx_value_encoding", test_idx_value_encoding},
    {"idx_round_trip", test_idx_round_trip},
    {"idx_limits_and_restart", test_idx_limits_and_restart},
    {"idx_since_and_hole", test_idx_since_and_hole},
    {"idx_old_format", test_idx_old_format},
    {"idx_wtab_corrupt", test_idx_wtab_corrupt},
    {"idx_wtab_chunks", test_idx_wtab_chunks},
    {"idx_write_oom", test_idx_write_oom},
    {"summaries", test_summaries},
    {"key_layout", test_key_layout},
    {"key_order", test_key_order},
    {"batch_new", test_batch_new},
    {"options", test_options},
    {"open_errors", test_open_errors},
    {"write_read_many", test_write_read_many},
    {"batches_and_orders", test_batches_and_orders},
    {"time_filter", test_time_filter},
    {"not_found_and_tenants", test_not_found_and_tenants},
    {"reopen_durability", test_reopen_durability},
    {"size_gauge_owner", test_size_gauge_owner},
    {"write_oom", test_write_oom},
    {"hash128", test_hash128},
    {"batch_new_res", test_batch_new_res},
    {"res_round_trip", test_res_round_trip},
    {"res_shared", test_res_shared},
    {"res_many", test_res_many},
    {"res_missing_is_corrupt", test_res_missing_is_corrupt},
    {"old_and_bad_values", test_old_and_bad_values},
    {"res_write_oom", test_res_write_oom},
    {NULL, NULL},
};
