/*
 * test_core.c - the core module: buf, arena, queue, config, metrics, gzip,
 * status table, log.
 */
#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/gzip.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/queue.h"
#include "core/status.h"
#include "td_test.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- buf ---- */

static void check_buf_invariants(const td_buf *b)
{
    TD_CHECK(b->data != NULL);
    TD_ASSERT_EQ_INT(b->data[b->len], '\0');
    if (b->cap) {
        TD_CHECK(b->len < b->cap);
    } else {
        TD_ASSERT_EQ_U64(b->len, 0);
    }
}

static void test_buf_basics(void)
{
    td_buf b = TD_BUF_INIT;
    check_buf_invariants(&b);
    TD_ASSERT_EQ_STR(b.data, "");

    td_buf_add(&b, "abc", 3);
    td_buf_addch(&b, '-');
    td_buf_addstr(&b, "def");
    td_buf_add(&b, NULL, 0);
    check_buf_invariants(&b);
    TD_ASSERT_EQ_STR(b.data, "abc-def");
    TD_ASSERT_EQ_U64(b.len, 7);

    static const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
    td_buf_addhex(&b, bytes, sizeof(bytes));
    TD_ASSERT_EQ_STR(b.data, "abc-def000fa5ff");

    size_t cap = b.cap;
    td_buf_setlen(&b, 3);
    check_buf_invariants(&b);
    TD_ASSERT_EQ_STR(b.data, "abc");
    td_buf_reset(&b);
    check_buf_invariants(&b);
    TD_ASSERT_EQ_U64(b.cap, cap); /* reset keeps the memory */

    /* embedded NULs are data, not terminators */
    td_buf_add(&b, "a\0b", 3);
    TD_ASSERT_EQ_U64(b.len, 3);
    TD_ASSERT_EQ_MEM(b.data, "a\0b", 4);

    td_buf_release(&b);
    check_buf_invariants(&b);
    TD_ASSERT_EQ_U64(b.cap, 0);

    td_buf h;
    td_buf_init(&h, 1000);
    check_buf_invariants(&h);
    TD_CHECK(h.cap >= 1001);
    td_buf_release(&h);
}

static void test_buf_addf_growth(void)
{
    td_buf b = TD_BUF_INIT;
    td_buf_addf(&b, "%d-%s", 42, "x"); /* into the empty, unallocated buffer */
    TD_ASSERT_EQ_STR(b.data, "42-x");
    td_buf_reset(&b);

    /* many small appends crossing many capacity doublings */
    char expect[16];
    size_t len = 0;
    for (int i = 0; i < 20000; i++) {
        td_buf_addf(&b, "%d,", i);
        len += (size_t)snprintf(expect, sizeof(expect), "%d,", i);
        TD_ASSERT_EQ_U64(b.len, len);
    }
    check_buf_invariants(&b);
    TD_CHECK(strncmp(b.data, "0,1,2,3,", 8) == 0);
    TD_CHECK(strcmp(b.data + b.len - 6, "19999,") == 0);

    /* one append much larger than the current capacity, exactly filling it, and one byte past */
    td_buf c = TD_BUF_INIT;
    char big[5000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    td_buf_addf(&c, "[%s]", big);
    TD_ASSERT_EQ_U64(c.len, sizeof(big) + 1);
    TD_ASSERT_EQ_INT(c.data[0], '[');
    TD_ASSERT_EQ_INT(c.data[c.len - 1], ']');
    check_buf_invariants(&c);
    td_buf_reset(&c);
    size_t room = c.cap - 1;
    char *fill = td_xmalloc(room + 1);
    memset(fill, 'y', room);
    fill[room] = '\0';
    td_buf_addf(&c, "%s", fill);
    td_free(fill);
    TD_ASSERT_EQ_U64(c.len, room);
    TD_ASSERT_EQ_U64(c.cap, room + 1); /* exactly full: no growth needed */
    td_buf_addf(&c, "%c", 'q');
    TD_ASSERT_EQ_U64(c.len, room + 1);
    check_buf_invariants(&c);

    td_buf_release(&b);
    td_buf_release(&c);
}

static void test_buf_detach_and_grow_failures(void)
{
    td_buf b = TD_BUF_INIT;
    td_buf_addstr(&b, "hello");
    size_t len = 0;
    char *p = td_buf_detach(&b, &len);
    TD_ASSERT_EQ_STR(p, "hello");
    TD_ASSERT_EQ_U64(len, 5);
    check_buf_invariants(&b);
    TD_ASSERT_EQ_U64(b.cap, 0);
    td_free(p);

    /* detaching an empty buffer still gives heap memory the caller can free */
    p = td_buf_detach(&b, NULL);
    TD_ASSERT_EQ_STR(p, "");
    td_free(p);

    /* absurd sizes and OOM fail cleanly and leave the buffer as it was */
    td_buf_addstr(&b, "keep");
    size_t cap = b.cap;
    TD_CHECK(!td_buf_try_grow(&b, SIZE_MAX));
    TD_CHECK(!td_buf_try_grow(&b, SIZE_MAX - 4));
    td_mem_fail_after(1);
    TD_CHECK(!td_buf_try_grow(&b, cap * 4));
    TD_CHECK(td_mem_fail_after(0));
    TD_ASSERT_EQ_STR(b.data, "keep");
    TD_ASSERT_EQ_U64(b.cap, cap);
    check_buf_invariants(&b);
    TD_CHECK(td_buf_try_grow(&b, 0));
    TD_CHECK(!td_mem_fail_after(0)); /* nothing was injected since */
    td_buf_release(&b);

    td_buf e = TD_BUF_INIT;
    td_mem_fail_after(1);
    TD_CHECK(!td_buf_try_grow(&e, 10));
    td_mem_fail_after(0);
    check_buf_invariants(&e);
    TD_ASSERT_EQ_U64(e.cap, 0);
}

static void test_slice(void)
{
    td_slice s = TD_SLICE_LIT("abc");
    TD_ASSERT_EQ_U64(s.len, 3);
    TD_CHECK(td_slice_eq(s, "abc"));
    TD_CHECK(!td_slice_eq(s, "ab"));
    TD_CHECK(!td_slice_eq(s, "abcd"));
    TD_CHECK(td_slice_eq(td_slice_str("xyz"), "xyz"));
    TD_CHECK(td_slice_eq(td_slice_of("xyzw", 2), "xy"));
    td_buf b = TD_BUF_INIT;
    td_buf_addstr(&b, "hi");
    TD_CHECK(td_slice_eq(td_buf_slice(&b), "hi"));
    td_buf_release(&b);
}

/* ---- arena ---- */

static void test_arena_alignment_and_content(void)
{
    td_arena a;
    td_arena_init(&a, 1024, 0);
    char *ptrs[200];
    size_t sizes[200];
    for (int i = 0; i < 200; i++) {
        sizes[i] = (size_t)(i * 7 % 61);
        ptrs[i] = td_arena_alloc(&a, sizes[i]);
        TD_CHECK(ptrs[i] != NULL);
        TD_ASSERT_EQ_U64((uintptr_t)ptrs[i] % 16, 0);
        memset(ptrs[i], i, sizes[i]);
    }
    /* nothing overlapped: every block still holds its own byte */
    for (int i = 0; i < 200; i++) {
        for (size_t j = 0; j < sizes[i]; j++) {
            TD_ASSERT_EQ_INT((unsigned char)ptrs[i][j], i);
        }
    }
    /* size 0 still gives distinct memory */
    void *z1 = td_arena_alloc(&a, 0), *z2 = td_arena_alloc(&a, 0);
    TD_CHECK(z1 && z2 && z1 != z2);

    char *s = td_arena_strndup(&a, "hello world", 5);
    TD_ASSERT_EQ_STR(s, "hello");
    int nums[4] = {1, 2, 3, 4};
    int *d = td_arena_memdup(&a, nums, sizeof(nums));
    TD_ASSERT_EQ_MEM(d, nums, sizeof(nums));
    TD_CHECK(d != nums);
    uint64_t *zeros = td_arena_calloc(&a, 100, sizeof(uint64_t));
    TD_CHECK(zeros != NULL);
    for (int i = 0; i < 100; i++) {
        TD_ASSERT_EQ_U64(zeros[i], 0);
    }
    td_arena_release(&a);
    TD_CHECK(a.head == NULL);
    TD_ASSERT_EQ_U64(a.used, 0);
}

static void test_arena_big_and_release(void)
{
    td_arena a;
    td_arena_init(&a, 4096, 0);
    char *small1 = td_arena_alloc(&a, 16);
    /* more than a quarter chunk: a chunk of its own, the current one keeps filling */
    char *big = td_arena_alloc(&a, 100000);
    TD_CHECK(big != NULL);
    TD_ASSERT_EQ_U64((uintptr_t)big % 16, 0);
    memset(big, 1, 100000);
    char *small2 = td_arena_alloc(&a, 16);
    TD_CHECK(small2 == small1 + 16);
    TD_CHECK(a.used >= 100000 + 4096);

    /* release frees everything (ASan would report a leak) and the arena is reusable */
    td_arena_release(&a);
    TD_ASSERT_EQ_U64(a.used, 0);
    TD_ASSERT_EQ_U64(a.chunk_sz, 4096);
    char *again = td_arena_alloc(&a, 10);
    TD_CHECK(again != NULL);
    td_arena_release(&a);
    td_arena_release(&a); /* twice is harmless */

    /* a big first allocation */
    td_arena_init(&a, 1024, 0);
    TD_CHECK(td_arena_alloc(&a, 5000) != NULL);
    TD_CHECK(td_arena_alloc(&a, 8) != NULL);
    td_arena_release(&a);

    /* default chunk size */
    td_arena_init(&a, 0, 0);
    TD_CHECK(a.chunk_sz > 0);
    TD_CHECK(td_arena_alloc(&a, 1) != NULL);
    td_arena_release(&a);
}

static void test_arena_limit_and_overflow(void)
{
    td_arena a;
    td_arena_init(&a, 1024, 8192);
    size_t got = 0;
    while (td_arena_alloc(&a, 100) != NULL) {
        got += 100;
        TD_CHECK(got < 100000);
    }
    TD_CHECK(got > 0);
    TD_CHECK(a.used <= 8192);
    /* a single request above the limit fails even in a fresh arena */
    td_arena_release(&a);
    TD_CHECK(td_arena_alloc(&a, 9000) == NULL);
    TD_ASSERT_EQ_U64(a.used, 0);
    TD_CHECK(td_arena_alloc(&a, 100) != NULL); /* smaller ones still work */

    /* size overflow */
    TD_CHECK(td_arena_alloc(&a, SIZE_MAX) == NULL);
    TD_CHECK(td_arena_alloc(&a, SIZE_MAX - 8) == NULL);
    TD_CHECK(td_arena_calloc(&a, SIZE_MAX / 2, 3) == NULL);
    TD_CHECK(td_arena_strndup(&a, "x", SIZE_MAX) == NULL);
    td_arena_release(&a);

    /* OOM from the system */
    td_arena_init(&a, 1024, 0);
    td_mem_fail_after(1);
    TD_CHECK(td_arena_alloc(&a, 10) == NULL);
    TD_CHECK(td_mem_fail_after(0));
    TD_CHECK(td_arena_alloc(&a, 10) != NULL);
    td_arena_release(&a);
}

/* A released arena's chunks serve the thread's next arena; counts and faults stay the same. */
static void test_arena_chunk_cache(void)
{
    td_arena_cache_release();
    TD_ASSERT_EQ_U64(td_arena_cache_bytes(), 0);
    td_arena a;
    td_arena_init(&a, 100000, 0);
    char *p1 = td_arena_alloc(&a, 10);
    TD_CHECK(p1 != NULL);
    memset(p1, 1, 100000); /* the whole chunk the arena asked for is usable */
    size_t used = a.used;
    td_arena_release(&a);
    TD_CHECK(td_arena_cache_bytes() >= 100000);

    /* the next arena on this thread gets the same chunk and counts it the same */
    char *p2 = td_arena_alloc(&a, 10);
    TD_CHECK(p2 == p1);
    TD_ASSERT_EQ_U64(a.used, used);
    TD_ASSERT_EQ_U64(td_arena_cache_bytes(), 0);
    td_arena_release(&a);

    /* a chunk more than twice too big is left for an arena that needs it */
    td_arena small;
    td_arena_init(&small, 1024, 0);
    char *q = td_arena_alloc(&small, 10);
    TD_CHECK(q != NULL && q != p1);
    td_arena_release(&small);

    /* a reused chunk is a fault-injection point like the td_malloc it replaces */
    size_t cached = td_arena_cache_bytes();
    td_mem_fail_after(1);
    TD_CHECK(td_arena_alloc(&a, 10) == NULL);
    TD_CHECK(td_mem_fail_after(0));
    TD_ASSERT_EQ_U64(a.used, 0);
    TD_ASSERT_EQ_U64(td_arena_cache_bytes(), cached); /* still there */
    TD_CHECK(td_arena_alloc(&a, 10) == p1);
    td_arena_release(&a);

    /* the limit counts what the arena asked for, reused memory or not */
    td_arena_init(&a, 1024, 8192);
    size_t got = 0;
    while (td_arena_alloc(&a, 100) != NULL) {
        got += 100;
        TD_CHECK(got < 100000);
    }
    TD_CHECK(a.used <= 8192);
    size_t fresh = got;
    td_arena_release(&a);
    got = 0;
    while (td_arena_alloc(&a, 100) != NULL) {
        got += 100;
    }
    TD_ASSERT_EQ_U64(got, fresh);
    td_arena_release(&a);

    /* bounded in bytes ... */
    td_arena_init(&a, 1 << 20, 0);
    for (int i = 0; i < 8; i++) {
        TD_CHECK(td_arena_alloc(&a, 1 << 20) != NULL);
    }
    td_arena_release(&a);
    TD_CHECK(td_arena_cache_bytes() > 0 && td_arena_cache_bytes() <= TD_ARENA_CACHE_BYTES);
    td_arena_cache_release();
    TD_ASSERT_EQ_U64(td_arena_cache_bytes(), 0);

    /* ... and in chunks */
    td_arena_init(&a, 1024, 0);
    for (int i = 0; i < 4 * TD_ARENA_CACHE_CHUNKS; i++) {
        TD_CHECK(td_arena_alloc(&a, 1000) != NULL); /* a chunk each */
    }
    td_arena_release(&a);
    TD_CHECK(td_arena_cache_bytes() <= TD_ARENA_CACHE_CHUNKS * (1024 + 64));
    td_arena_cache_release();
    TD_ASSERT_EQ_U64(td_arena_cache_bytes(), 0);
}

typedef struct arena_thread_arg {
    td_arena *fill; /* arena to fill on the thread and leave for the caller to release */
    size_t cached;  /* the thread's cache after its own arenas */
    bool reused;
} arena_thread_arg;

static void *arena_thread(void *p)
{
    arena_thread_arg *t = p;
    TD_ASSERT(td_arena_alloc(t->fill, 20000) != NULL);
    td_arena a;
    td_arena_init(&a, 300000, 0);
    char *first = td_arena_alloc(&a, 64);
    td_arena_release(&a);
    t->reused = td_arena_alloc(&a, 64) == first;
    td_arena_release(&a);
    t->cached = td_arena_cache_bytes();
    return NULL; /* the cache is freed at thread exit: LSan would report it otherwise */
}

/* Each thread has its own cache, freed when the thread exits; release works across threads. */
static void test_arena_cache_threads(void)
{
    td_arena_cache_release();
    td_arena other;
    td_arena_init(&other, 1024, 0);
    arena_thread_arg t = {&other, 0, false};
    for (int i = 0; i < 3; i++) {
        pthread_t th;
        TD_CHECK(pthread_create(&th, NULL, arena_thread, &t) == 0);
        TD_CHECK(pthread_join(th, NULL) == 0);
        TD_CHECK(t.reused);
        TD_CHECK(t.cached >= 300000);
        TD_ASSERT_EQ_U64(td_arena_cache_bytes(), 0); /* not this thread's */
    }
    /* filled on the threads, released here: the chunks join this thread's cache */
    td_arena_release(&other);
    TD_CHECK(td_arena_cache_bytes() >= 3 * 20000);
    td_arena_cache_release();
    TD_ASSERT_EQ_U64(td_arena_cache_bytes(), 0);
}

/* ---- queue ---- */

typedef struct item {
    td_qitem q;
    int id;
} item;

static item *mkitem(item *it, int id, size_t spans, size_t bytes)
{
    memset(it, 0, sizeof(*it));
    it->id = id;
    it->q.spans = spans;
    it->q.bytes = bytes;
    it->q.next = (td_qitem *)(uintptr_t)0x1; /* push must not rely on a clean next */
    return it;
}

static void check_stats(td_queue *q, size_t items, size_t spans, size_t bytes)
{
    td_queue_stats st;
    td_queue_get_stats(q, &st);
    TD_ASSERT_EQ_U64(st.items, items);
    TD_ASSERT_EQ_U64(st.spans, spans);
    TD_ASSERT_EQ_U64(st.bytes, bytes);
}

static void test_queue_bounds(void)
{
    td_queue *q = td_queue_new(10, 1000);
    td_err err;
    td_err_init(&err);
    item it[8];
    td_queue_stats st;
    td_queue_get_stats(q, &st);
    TD_ASSERT_EQ_U64(st.max_spans, 10);
    TD_ASSERT_EQ_U64(st.max_bytes, 1000);

    /* bigger than the whole capacity: refused even when empty */
    TD_ASSERT_EQ_INT(td_queue_push(q, &mkitem(&it[0], 0, 11, 1)->q, &err), TD_OVERLOADED);
    TD_ASSERT_EQ_INT(td_queue_push(q, &mkitem(&it[0], 0, 1, 1001)->q, &err), TD_OVERLOADED);
    check_stats(q, 0, 0, 0);

    /* spans bound */
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[0], 0, 4, 10)->q, &err));
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[1], 1, 4, 10)->q, &err));
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_queue_push(q, &mkitem(&it[2], 2, 3, 10)->q, &err), TD_OVERLOADED);
    TD_ASSERT_EQ_INT(err.code, TD_OVERLOADED);
    TD_CHECK(err.msg[0] != '\0');
    /* all or nothing: the refused item left no trace */
    check_stats(q, 2, 8, 20);
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[2], 2, 2, 10)->q, &err)); /* exactly full */
    check_stats(q, 3, 10, 30);
    TD_ASSERT_EQ_INT(td_queue_push(q, &mkitem(&it[3], 3, 1, 1)->q, &err), TD_OVERLOADED);
    /* zero-span items still pass the span bound */
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[3], 3, 0, 1)->q, &err));

    /* bytes bound */
    TD_ASSERT_EQ_INT(td_queue_push(q, &mkitem(&it[4], 4, 0, 970)->q, &err), TD_OVERLOADED);
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[4], 4, 0, 969)->q, &err));
    check_stats(q, 5, 10, 1000);

    /* popping does not give space back; release does */
    td_qitem *chain = td_queue_pop(q, SIZE_MAX, 0);
    int n = 0;
    for (td_qitem *p = chain; p; p = p->next) {
        TD_ASSERT_EQ_INT(((item *)p)->id, n);
        n++;
    }
    TD_ASSERT_EQ_INT(n, 5);
    check_stats(q, 0, 10, 1000);
    TD_ASSERT_EQ_INT(td_queue_push(q, &mkitem(&it[5], 5, 1, 1)->q, &err), TD_OVERLOADED);
    td_queue_release(q, 4, 20);
    check_stats(q, 0, 6, 980);
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[5], 5, 4, 20)->q, &err));
    TD_ASSERT_EQ_INT(td_queue_push(q, &mkitem(&it[6], 6, 1, 0)->q, &err), TD_OVERLOADED);
    td_queue_release(q, 6, 980);

    td_qitem *left = NULL;
    td_queue_free(q, &left);
    TD_CHECK(left == &it[5].q);
    TD_CHECK(left->next == NULL);
}

static void test_queue_fifo_and_chaining(void)
{
    td_queue *q = td_queue_new(1000, 100000);
    td_err err;
    td_err_init(&err);
    item it[6];
    for (int i = 0; i < 6; i++) {
        TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[i], i, 1, 100)->q, &err));
    }
    /* up to max_bytes */
    td_qitem *c = td_queue_pop(q, 250, 0);
    TD_CHECK(c == &it[0].q && c->next == &it[1].q && c->next->next == NULL);
    check_stats(q, 4, 6, 600);
    /* at least one item even when it alone exceeds max_bytes */
    c = td_queue_pop(q, 50, 0);
    TD_CHECK(c == &it[2].q && c->next == NULL);
    /* exactly max_bytes */
    c = td_queue_pop(q, 200, 0);
    TD_CHECK(c == &it[3].q && c->next == &it[4].q && c->next->next == NULL);
    c = td_queue_pop(q, 100000, 0);
    TD_CHECK(c == &it[5].q && c->next == NULL);
    /* empty, no wait */
    TD_CHECK(td_queue_pop(q, 100000, 0) == NULL);
    /* empty, bounded wait */
    int64_t t0 = now_ms();
    TD_CHECK(td_queue_pop(q, 100000, 60) == NULL);
    TD_CHECK(now_ms() - t0 >= 50);
    check_stats(q, 0, 6, 600);

    /* FIFO continues after the queue drained */
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[0], 10, 0, 1)->q, &err));
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[1], 11, 0, 1)->q, &err));
    c = td_queue_pop(q, 1, 0);
    TD_ASSERT_EQ_INT(((item *)c)->id, 10);
    c = td_queue_pop(q, 1, 0);
    TD_ASSERT_EQ_INT(((item *)c)->id, 11);
    td_queue_release(q, 6, 602);
    check_stats(q, 0, 0, 0);
    td_queue_free(q, NULL);
}

typedef struct popper {
    td_queue *q;
    td_qitem *got;
    int64_t waited_ms;
} popper;

static void *pop_forever(void *arg)
{
    popper *p = arg;
    int64_t t0 = now_ms();
    p->got = td_queue_pop(p->q, SIZE_MAX, -1);
    p->waited_ms = now_ms() - t0;
    return NULL;
}

static void test_queue_wakeups_and_close(void)
{
    td_queue *q = td_queue_new(100, 100);
    td_err err;
    td_err_init(&err);
    item it[3];

    /* a push wakes a waiting pop */
    popper p = {q, NULL, 0};
    pthread_t th;
    TD_ASSERT_EQ_INT(pthread_create(&th, NULL, pop_forever, &p), 0);
    usleep(20000);
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[0], 0, 1, 1)->q, &err));
    pthread_join(th, NULL);
    TD_CHECK(p.got == &it[0].q);
    td_queue_release(q, 1, 1);

    /* close wakes a pop that waits forever, which returns NULL */
    p.got = (td_qitem *)(uintptr_t)1;
    TD_ASSERT_EQ_INT(pthread_create(&th, NULL, pop_forever, &p), 0);
    usleep(20000);
    TD_CHECK(!td_queue_closed(q));
    td_queue_close(q);
    pthread_join(th, NULL);
    TD_CHECK(p.got == NULL);
    TD_CHECK(td_queue_closed(q));

    /* closed: pushes refused (caller keeps the item), pops do not wait */
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_queue_push(q, &mkitem(&it[1], 1, 1, 1)->q, &err), TD_INTERNAL);
    TD_CHECK(strstr(err.msg, "shutting down") != NULL);
    check_stats(q, 0, 0, 0);
    int64_t t0 = now_ms();
    TD_CHECK(td_queue_pop(q, 100, 5000) == NULL);
    TD_CHECK(now_ms() - t0 < 1000);
    td_queue_free(q, NULL);

    /* closing a non-empty queue: pops still drain it */
    q = td_queue_new(100, 100);
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[0], 0, 1, 1)->q, &err));
    TD_ASSERT_OK(td_queue_push(q, &mkitem(&it[1], 1, 1, 1)->q, &err));
    td_queue_close(q);
    td_qitem *c = td_queue_pop(q, 1, -1);
    TD_CHECK(c == &it[0].q);
    c = td_queue_pop(q, 1, -1);
    TD_CHECK(c == &it[1].q);
    TD_CHECK(td_queue_pop(q, 1, -1) == NULL);
    td_queue_release(q, 2, 2);
    td_queue_free(q, NULL);
}

/* ---- config ---- */

typedef struct topts {
    char *name;
    int64_t count;
    uint64_t size;
    bool flag;
    int64_t timeout_ms;
    int64_t ranged;
} topts;

static const td_opt trows[] = {
    {"name", TD_OPT_STRING, "dflt", offsetof(topts, name), "A name.", 0, 0},
    {"count", TD_OPT_INT, "3", offsetof(topts, count), "How many.", 0, 0},
    {"size", TD_OPT_SIZE, "64MiB", offsetof(topts, size), "How big.", 0, 0},
    {"flag", TD_OPT_BOOL, NULL, offsetof(topts, flag), "Whether.", 0, 0},
    {"timeout", TD_OPT_DURATION, "10s", offsetof(topts, timeout_ms), "How long.", 0, 0},
    {"ranged.value", TD_OPT_INT, "5", offsetof(topts, ranged), "Bounded.", 1, 10},
};

static td_opt_table ttable(topts *o)
{
    memset(o, 0, sizeof(*o));
    return (td_opt_table){"test", trows, sizeof(trows) / sizeof(trows[0]), o};
}

static td_status load(topts *o, td_opt_table *t, int argc, const char **argv, const char **envp,
                      int *argi, td_err *err)
{
    *t = ttable(o);
    td_err_init(err);
    return td_config_load(t, 1, argc, (char **)argv, (char **)envp, argi, err);
}

static char cfg_path[4096];

static void write_cfg(const char *text)
{
    const char *base = getenv("TD_TEST_TMP");
    snprintf(cfg_path, sizeof(cfg_path), "%s/test_core-%d.conf", base && *base ? base : "/tmp",
             (int)getpid());
    FILE *f = fopen(cfg_path, "w");
    TD_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void test_config_defaults(void)
{
    topts o;
    td_opt_table t = ttable(&o);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_config_defaults(&t, 1, &err));
    TD_ASSERT_EQ_STR(o.name, "dflt");
    TD_ASSERT_EQ_INT(o.count, 3);
    TD_ASSERT_EQ_U64(o.size, 64ULL << 20);
    TD_CHECK(!o.flag);
    TD_ASSERT_EQ_INT(o.timeout_ms, 10000);
    TD_ASSERT_EQ_INT(o.ranged, 5);
    /* applying defaults again replaces (and frees) the string */
    TD_ASSERT_OK(td_config_set(&t, 1, "name", "other", "test", &err));
    TD_ASSERT_EQ_STR(o.name, "other");
    TD_ASSERT_OK(td_config_defaults(&t, 1, &err));
    TD_ASSERT_EQ_STR(o.name, "dflt");
    td_config_release(&t, 1);
    TD_CHECK(o.name == NULL);
}

static void test_config_precedence(void)
{
    topts o;
    td_opt_table t;
    td_err err;
    int argi = -1;
    write_cfg("# a comment\n"
              "\n"
              "  count = 5  \n"
              "name = \"from file\"\n"
              "size=1k\n"
              "timeout = 2m\n");

    /* file only, via --config */
    const char *a1[] = {"prog", "--config", cfg_path};
    TD_ASSERT_OK(load(&o, &t, 3, a1, NULL, &argi, &err));
    TD_ASSERT_EQ_INT(argi, 3);
    TD_ASSERT_EQ_INT(o.count, 5);
    TD_ASSERT_EQ_STR(o.name, "from file");
    TD_ASSERT_EQ_U64(o.size, 1024);
    TD_ASSERT_EQ_INT(o.timeout_ms, 120000);
    td_config_release(&t, 1);

    /* env over file; file named by TRACED_CONFIG */
    char envcfg[4200];
    snprintf(envcfg, sizeof(envcfg), "TRACED_CONFIG=%s", cfg_path);
    const char *env[] = {
        "PATH=/bin",       envcfg, "TRACED_COUNT=7", "TRACED_RANGED_VALUE=9", "TRACED_FLAG=yes",
        "TRACED_COUNTX=1", NULL};
    const char *a2[] = {"prog"};
    TD_ASSERT_OK(load(&o, &t, 1, a2, env, &argi, &err));
    TD_ASSERT_EQ_INT(o.count, 7);
    TD_ASSERT_EQ_INT(o.ranged, 9);
    TD_CHECK(o.flag);
    TD_ASSERT_EQ_STR(o.name, "from file");
    td_config_release(&t, 1);

    /* flags over env over file */
    const char *a3[] = {"prog",         "--count",    "9",        "--name=flag name",
                        "--flag=false", "positional", "--count=1"};
    TD_ASSERT_OK(load(&o, &t, 7, a3, env, &argi, &err));
    TD_ASSERT_EQ_INT(o.count, 9); /* parsing stopped at "positional" */
    TD_ASSERT_EQ_STR(o.name, "flag name");
    TD_CHECK(!o.flag);
    TD_ASSERT_EQ_INT(argi, 5);
    td_config_release(&t, 1);

    /* --config after an option that takes a value is still found (and its value skipped) */
    const char *a4[] = {"prog", "--count", "8", "--flag", "--config", cfg_path, "--size=2k"};
    TD_ASSERT_OK(load(&o, &t, 7, a4, NULL, &argi, &err));
    TD_ASSERT_EQ_STR(o.name, "from file");
    TD_ASSERT_EQ_INT(o.count, 8);
    TD_ASSERT_EQ_U64(o.size, 2048);
    TD_ASSERT_EQ_INT(o.timeout_ms, 120000);
    TD_ASSERT_EQ_INT(argi, 7);
    td_config_release(&t, 1);
    /* ... but not when it comes after the first positional argument */
    const char *a5[] = {"prog", "--count", "8", "run", "--config", cfg_path};
    TD_ASSERT_OK(load(&o, &t, 6, a5, NULL, &argi, &err));
    TD_ASSERT_EQ_STR(o.name, "dflt");
    TD_ASSERT_EQ_INT(argi, 3);
    td_config_release(&t, 1);

    /* --config on the command line beats TRACED_CONFIG */
    const char *env2[] = {"TRACED_CONFIG=/nonexistent/file", NULL};
    TD_ASSERT_OK(load(&o, &t, 3, a1, env2, &argi, &err));
    TD_ASSERT_EQ_INT(o.count, 5);
    td_config_release(&t, 1);
    unlink(cfg_path);
}

static void test_config_flags(void)
{
    topts o;
    td_opt_table t;
    td_err err;
    int argi;

    /* bare bool flags, with and without a following bool word */
    const char *a1[] = {"prog", "--flag", "--count", "2"};
    TD_ASSERT_OK(load(&o, &t, 4, a1, NULL, &argi, &err));
    TD_CHECK(o.flag);
    TD_ASSERT_EQ_INT(o.count, 2);
    td_config_release(&t, 1);

    const char *a2[] = {"prog", "--flag", "off", "rest"};
    TD_ASSERT_OK(load(&o, &t, 4, a2, NULL, &argi, &err));
    TD_CHECK(!o.flag);
    TD_ASSERT_EQ_INT(argi, 3);
    td_config_release(&t, 1);

    const char *a3[] = {"prog", "--flag", "file.txt"};
    TD_ASSERT_OK(load(&o, &t, 3, a3, NULL, &argi, &err));
    TD_CHECK(o.flag);
    TD_ASSERT_EQ_INT(argi, 2); /* the non-bool word is a positional argument */
    td_config_release(&t, 1);

    const char *a4[] = {"prog", "--flag"};
    TD_ASSERT_OK(load(&o, &t, 2, a4, NULL, &argi, &err));
    TD_CHECK(o.flag);
    td_config_release(&t, 1);

    /* "--" ends the options */
    const char *a5[] = {"prog", "--count=4", "--", "--count=5"};
    TD_ASSERT_OK(load(&o, &t, 4, a5, NULL, &argi, &err));
    TD_ASSERT_EQ_INT(o.count, 4);
    TD_ASSERT_EQ_INT(argi, 3);
    td_config_release(&t, 1);

    /* dotted names */
    const char *a6[] = {"prog", "--ranged.value", "10"};
    TD_ASSERT_OK(load(&o, &t, 3, a6, NULL, &argi, &err));
    TD_ASSERT_EQ_INT(o.ranged, 10);
    td_config_release(&t, 1);
}

static void expect_load_error(int argc, const char **argv, const char **envp, const char *msg)
{
    topts o;
    td_opt_table t;
    td_err err;
    int argi;
    td_status st = load(&o, &t, argc, argv, envp, &argi, &err);
    td_config_release(&t, 1);
    TD_ASSERT_EQ_INT(st, TD_INVALID);
    TD_ASSERT_EQ_INT(err.code, TD_INVALID);
    if (!strstr(err.msg, msg)) {
        TD__FAIL("error message \"%s\" lacks \"%s\"", err.msg, msg);
    }
}

static void test_config_errors(void)
{
    const char *a1[] = {"prog", "--nope=1"};
    expect_load_error(2, a1, NULL, "unknown option '--nope'");
    const char *a2[] = {"prog", "--count"};
    expect_load_error(2, a2, NULL, "'--count' needs a value");
    const char *a3[] = {"prog", "--count=abc"};
    expect_load_error(2, a3, NULL, "count: expected an integer, got 'abc'");
    const char *a4[] = {"prog", "--size", "12XB"};
    expect_load_error(3, a4, NULL, "size: expected a size such as");
    const char *a5[] = {"prog", "--timeout=5 parsecs"};
    expect_load_error(2, a5, NULL, "timeout: expected a duration such as");
    const char *a6[] = {"prog", "--flag=maybe"};
    expect_load_error(2, a6, NULL, "flag: expected true or false, got 'maybe'");
    const char *a7[] = {"prog", "--ranged.value=11"};
    expect_load_error(2, a7, NULL, "ranged.value: 11 is out of range [1, 10]");
    const char *a8[] = {"prog", "--ranged.value=0"};
    expect_load_error(2, a8, NULL, "out of range");
    const char *a9[] = {"prog", "--count=99999999999999999999"};
    expect_load_error(2, a9, NULL, "expected an integer");
    /* the source is named */
    const char *env[] = {"TRACED_COUNT=x", NULL};
    const char *a0[] = {"prog"};
    expect_load_error(1, a0, env, "TRACED_COUNT: count:");
    const char *a12[] = {"prog", "--config"};
    expect_load_error(2, a12, NULL, "'--config' needs a value");
    const char *a10[] = {"prog", "--config", "/nonexistent/traced.conf"};
    expect_load_error(3, a10, NULL, "/nonexistent/traced.conf");

    write_cfg("count = 1\nthis line has no equals sign\n");
    const char *a11[] = {"prog", "--config", cfg_path};
    expect_load_error(3, a11, NULL, ":2: expected 'name = value'");
    write_cfg("count = 1\n\nbogus = 2\n");
    expect_load_error(3, a11, NULL, ":3: unknown option 'bogus'");
    unlink(cfg_path);

    topts o;
    td_opt_table t = ttable(&o);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_config_set(&t, 1, "missing", "1", "api", &err), TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "api: unknown option 'missing'");
}

static void test_config_parsers(void)
{
    static const struct {
        const char *s;
        uint64_t v;
    } sizes[] = {
        {"0", 0},
        {"4096", 4096},
        {"18446744073709551615", UINT64_MAX},
        {"1k", 1024},
        {"1K", 1024},
        {"1kib", 1024},
        {"1kB", 1000},
        {"64MiB", 64ULL << 20},
        {"64m", 64ULL << 20},
        {"2MB", 2000000},
        {"1g", 1ULL << 30},
        {"1GiB", 1ULL << 30},
        {"2GB", 2000000000ULL},
        {"1.5k", 1536},
        {"5 MiB", 5ULL << 20},
        {"7b", 7},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t v = 12345;
        if (!td_parse_size(sizes[i].s, &v)) {
            TD__FAIL("td_parse_size(\"%s\") failed", sizes[i].s);
        }
        TD_ASSERT_EQ_U64(v, sizes[i].v);
    }
    static const char *bad_sizes[] = {
        "", "abc", "-1", "5X", "1.5.5k", "18446744073709551616", "99999999999GB", "k", " 5"};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        uint64_t v;
        if (td_parse_size(bad_sizes[i], &v)) {
            TD__FAIL("td_parse_size(\"%s\") accepted", bad_sizes[i]);
        }
    }

    static const struct {
        const char *s;
        int64_t ms;
    } durs[] = {
        {"500ms", 500},  {"10s", 10000},   {"10", 10000}, {"1.5s", 1500}, {"2m", 120000},
        {"1h", 3600000}, {"1d", 86400000}, {"0", 0},      {"0.5ms", 0},
    };
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        int64_t v = -1;
        if (!td_parse_duration_ms(durs[i].s, &v)) {
            TD__FAIL("td_parse_duration_ms(\"%s\") failed", durs[i].s);
        }
        TD_ASSERT_EQ_INT(v, durs[i].ms);
    }
    static const char *bad_durs[] = {"", "5x", "-1s", "s", "10 s", "1e300d", "ms"};
    for (size_t i = 0; i < sizeof(bad_durs) / sizeof(bad_durs[0]); i++) {
        int64_t v;
        if (td_parse_duration_ms(bad_durs[i], &v)) {
            TD__FAIL("td_parse_duration_ms(\"%s\") accepted", bad_durs[i]);
        }
    }

    static const char *yes[] = {"1", "true", "TRUE", "yes", "on", "On"};
    static const char *no[] = {"0", "false", "False", "no", "off", "OFF"};
    for (size_t i = 0; i < 6; i++) {
        int b = -1;
        TD_CHECK(td_parse_bool(yes[i], &b) && b == 1);
        TD_CHECK(td_parse_bool(no[i], &b) && b == 0);
    }
    int b;
    TD_CHECK(!td_parse_bool("", &b));
    TD_CHECK(!td_parse_bool("maybe", &b));
    TD_CHECK(!td_parse_bool("2", &b));
}

/* Run fn(t, 1, f) into a string. Caller frees with free(). */
static char *capture(void (*fn)(const td_opt_table *, size_t, FILE *), const td_opt_table *t)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    TD_CHECK(f != NULL);
    fn(t, 1, f);
    fclose(f);
    return text;
}

static void test_config_help_and_sample(void)
{
    topts o;
    td_opt_table t = ttable(&o);
    char *help = capture(td_config_help, &t);
    char *sample = capture(td_config_sample, &t);
    bool ok = strstr(help, "test options:") != NULL;
    for (size_t i = 0; ok && i < sizeof(trows) / sizeof(trows[0]); i++) {
        char flag[64], line[128];
        snprintf(flag, sizeof(flag), "--%s <", trows[i].name);
        snprintf(line, sizeof(line), "# %s = %s\n", trows[i].name,
                 trows[i].def ? trows[i].def : "");
        ok = strstr(help, flag) && strstr(help, trows[i].help) && strstr(sample, line) &&
             strstr(sample, trows[i].help);
        if (!ok) {
            fprintf(stderr, "  option %s missing from:\n%s\n%s\n", trows[i].name, help, sample);
        }
    }
    ok = ok && strstr(help, "env TRACED_RANGED_VALUE") && strstr(help, "default \"64MiB\"");
    free(help);
    free(sample);
    TD_CHECK(ok);
}

/* ---- metrics ---- */

static int64_t gauge_fn_1234(void *ud)
{
    return *(int64_t *)ud;
}

static void test_metrics_exposition(void)
{
    /* this is the only test in this binary that creates series, so the output is exact */
    td_count(TD_M_SPANS_DROPPED, 3, "queue_full", NULL);
    td_count(TD_M_SPANS_DROPPED, 2, "a\"b\\c\nd", NULL);
    td_count(TD_M_SPANS_DROPPED, 4, "queue_full", NULL);
    td_metric *g = td_metric_series(TD_M_QUEUE_SPANS, NULL, NULL, NULL);
    td_metric_set(g, 42);
    td_metric_set(g, -7);
    int64_t val = 1234;
    td_metric_gauge_fn(TD_M_QUEUE_BYTES, gauge_fn_1234, &val);
    td_metric *h = td_metric_series(TD_M_WRITE_BATCH_SECONDS, NULL, NULL, NULL);
    /* exactly representable values, so the sum prints exactly */
    td_metric_observe(h, 0.0009765625); /* 2^-10 */
    td_metric_observe(h, 0.25);         /* on a bound: le is inclusive */
    td_metric_observe(h, 1);
    td_metric_observe(h, 20); /* +Inf */
    td_metric *hq = td_metric_series(TD_M_QUERY_SECONDS, "/api/traces", NULL, NULL);
    td_metric_observe(hq, 0.5);
    td_count(TD_M_QUERY_REQUESTS, 1, "/api/search", "200");

    TD_ASSERT_EQ_U64(td_metric_get(td_metric_series(TD_M_SPANS_DROPPED, "queue_full", NULL, NULL)),
                     7);
    TD_ASSERT_EQ_U64(td_metric_get(h), 4);
    /* the same labels give the same series */
    TD_CHECK(td_metric_series(TD_M_QUERY_SECONDS, "/api/traces", NULL, NULL) == hq);

    td_buf out = TD_BUF_INIT;
    td_metrics_write(&out);
    const char *want =
        "# HELP traced_spans_dropped_total Spans refused or dropped, by reason.\n"
        "# TYPE traced_spans_dropped_total counter\n"
        "traced_spans_dropped_total{reason=\"queue_full\"} 7\n"
        "traced_spans_dropped_total{reason=\"a\\\"b\\\\c\\nd\"} 2\n"
        "# HELP traced_queue_spans Spans waiting in the write queue.\n"
        "# TYPE traced_queue_spans gauge\n"
        "traced_queue_spans -7\n"
        "# HELP traced_queue_bytes Bytes waiting in the write queue.\n"
        "# TYPE traced_queue_bytes gauge\n"
        "traced_queue_bytes 1234\n"
        "# HELP traced_write_batch_seconds Latency of one store write batch.\n"
        "# TYPE traced_write_batch_seconds histogram\n"
        "traced_write_batch_seconds_bucket{le=\"0.0005\"} 0\n"
        "traced_write_batch_seconds_bucket{le=\"0.001\"} 1\n"
        "traced_write_batch_seconds_bucket{le=\"0.0025\"} 1\n"
        "traced_write_batch_seconds_bucket{le=\"0.005\"} 1\n"
        "traced_write_batch_seconds_bucket{le=\"0.01\"} 1\n"
        "traced_write_batch_seconds_bucket{le=\"0.025\"} 1\n"
        "traced_write_batch_seconds_bucket{le=\"0.05\"} 1\n"
        "traced_write_batch_seconds_bucket{le=\"0.1\"} 1\n"
        "traced_write_batch_seconds_bucket{le=\"0.25\"} 2\n"
        "traced_write_batch_seconds_bucket{le=\"0.5\"} 2\n"
        "traced_write_batch_seconds_bucket{le=\"1\"} 3\n"
        "traced_write_batch_seconds_bucket{le=\"2.5\"} 3\n"
        "traced_write_batch_seconds_bucket{le=\"5\"} 3\n"
        "traced_write_batch_seconds_bucket{le=\"10\"} 3\n"
        "traced_write_batch_seconds_bucket{le=\"+Inf\"} 4\n"
        "traced_write_batch_seconds_sum 21.2509765625\n"
        "traced_write_batch_seconds_count 4\n"
        "# HELP traced_query_requests_total Query port requests by route and HTTP status.\n"
        "# TYPE traced_query_requests_total counter\n"
        "traced_query_requests_total{route=\"/api/search\",status=\"200\"} 1\n"
        "# HELP traced_query_duration_seconds Query port request latency by route.\n"
        "# TYPE traced_query_duration_seconds histogram\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.0005\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.001\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.0025\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.005\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.01\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.025\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.05\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.1\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.25\"} 0\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"0.5\"} 1\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"1\"} 1\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"2.5\"} 1\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"5\"} 1\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"10\"} 1\n"
        "traced_query_duration_seconds_bucket{route=\"/api/traces\",le=\"+Inf\"} 1\n"
        "traced_query_duration_seconds_sum{route=\"/api/traces\"} 0.5\n"
        "traced_query_duration_seconds_count{route=\"/api/traces\"} 1\n";
    TD_ASSERT_EQ_STR(out.data, want);

    /* the gauge fn runs at scrape time; unregistering needs the same ud */
    val = 99;
    td_buf_reset(&out);
    td_metrics_write(&out);
    TD_CHECK(strstr(out.data, "\ntraced_queue_bytes 99\n") != NULL);
    int64_t other = 5;
    td_metric_gauge_fn(TD_M_QUEUE_BYTES, NULL, &other); /* not the owner: no effect */
    td_buf_reset(&out);
    td_metrics_write(&out);
    TD_CHECK(strstr(out.data, "\ntraced_queue_bytes 99\n") != NULL);
    td_metric_gauge_fn(TD_M_QUEUE_BYTES, NULL, &val);
    td_buf_reset(&out);
    td_metrics_write(&out);
    TD_CHECK(strstr(out.data, "\ntraced_queue_bytes 0\n") != NULL);
    td_buf_release(&out);
}

/* ---- gzip ---- */

static void make_payload(td_buf *b, size_t n)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        /* half text-like, half noise */
        td_buf_addch(b, (char)(i % 2 ? 'a' + (x >> 16) % 26 : (x >> 8)));
    }
}

static void test_gzip_round_trip(void)
{
    td_buf in = TD_BUF_INIT, gz = TD_BUF_INIT, out = TD_BUF_INIT;
    td_err err;
    td_err_init(&err);
    make_payload(&in, 300000);
    TD_ASSERT_OK(td_gzip(in.data, in.len, &gz, &err));
    TD_CHECK(gz.len > 18 && (uint8_t)gz.data[0] == 0x1f && (uint8_t)gz.data[1] == 0x8b);
    td_buf_addstr(&out, "prefix:"); /* appends */
    TD_ASSERT_OK(td_gunzip(gz.data, gz.len, in.len, &out, &err));
    TD_ASSERT_EQ_U64(out.len, 7 + in.len);
    TD_ASSERT_EQ_MEM(out.data + 7, in.data, in.len);
    check_buf_invariants(&out);

    /* zlib streams are accepted too */
    uLongf zlen = compressBound((uLong)in.len);
    uint8_t *z = malloc(zlen);
    TD_CHECK(compress2(z, &zlen, (const Bytef *)in.data, (uLong)in.len, 6) == Z_OK);
    td_buf_reset(&out);
    TD_ASSERT_OK(td_gunzip(z, zlen, SIZE_MAX, &out, &err));
    TD_ASSERT_EQ_U64(out.len, in.len);
    free(z);

    /* empty payload */
    td_buf_reset(&gz);
    td_buf_reset(&out);
    TD_ASSERT_OK(td_gzip("", 0, &gz, &err));
    TD_ASSERT_OK(td_gunzip(gz.data, gz.len, 0, &out, &err));
    TD_ASSERT_EQ_U64(out.len, 0);

    td_buf_release(&in);
    td_buf_release(&gz);
    td_buf_release(&out);
}

static void test_gzip_bad_input(void)
{
    td_buf in = TD_BUF_INIT, gz = TD_BUF_INIT, out = TD_BUF_INIT;
    td_err err;
    td_err_init(&err);
    make_payload(&in, 50000);
    TD_ASSERT_OK(td_gzip(in.data, in.len, &gz, &err));

    /* truncated at several points, including inside the trailer */
    size_t cuts[] = {0, 1, 10, gz.len / 2, gz.len - 8, gz.len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        td_buf_reset(&out);
        td_err_init(&err);
        td_status st = td_gunzip(gz.data, cuts[i], 1 << 20, &out, &err);
        if (st != TD_INVALID) {
            TD__FAIL("cut at %zu of %zu: status %d", cuts[i], gz.len, (int)st);
        }
        TD_CHECK(err.msg[0] != '\0');
    }

    /* corrupt: garbage, a damaged header, damaged data, a wrong CRC */
    td_buf_reset(&out);
    TD_ASSERT_EQ_INT(td_gunzip("hello, world", 12, 1 << 20, &out, &err), TD_INVALID);
    char *bad = malloc(gz.len);
    memcpy(bad, gz.data, gz.len);
    bad[2] = 7; /* compression method */
    td_buf_reset(&out);
    TD_ASSERT_EQ_INT(td_gunzip(bad, gz.len, 1 << 20, &out, &err), TD_INVALID);
    memcpy(bad, gz.data, gz.len);
    for (size_t i = 20; i < 60; i++) {
        bad[i] = (char)0xff;
    }
    td_buf_reset(&out);
    TD_ASSERT_EQ_INT(td_gunzip(bad, gz.len, 1 << 20, &out, &err), TD_INVALID);
    memcpy(bad, gz.data, gz.len);
    bad[gz.len - 6] ^= 0x55; /* CRC32 */
    td_buf_reset(&out);
    TD_ASSERT_EQ_INT(td_gunzip(bad, gz.len, 1 << 20, &out, &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "corrupt") != NULL);
    free(bad);

    td_buf_release(&in);
    td_buf_release(&gz);
    td_buf_release(&out);
}

/* Inflating into an arena: sized from the trailer, grows when that is wrong, same errors. */
static void test_gzip_arena(void)
{
    td_buf in = TD_BUF_INIT, gz = TD_BUF_INIT, two = TD_BUF_INIT, ref = TD_BUF_INIT;
    td_err err;
    td_err_init(&err);
    make_payload(&in, 300000);
    TD_ASSERT_OK(td_gzip(in.data, in.len, &gz, &err));
    td_arena a;
    td_arena_init(&a, 4096, 0);
    td_slice out;
    TD_ASSERT_OK(td_gunzip_arena(gz.data, gz.len, in.len, &a, &out, &err));
    TD_ASSERT_EQ_U64(out.len, in.len);
    TD_ASSERT_EQ_MEM(out.ptr, in.data, in.len);
    /* one buffer of exactly the announced size, nothing copied */
    TD_CHECK(a.used < in.len + 256);
    td_arena_release(&a);

    /* two members: the trailer announces the small second one, the first is inflated */
    td_buf_add(&two, gz.data, gz.len);
    TD_ASSERT_OK(td_gzip("tail", 4, &two, &err));
    TD_ASSERT_OK(td_gunzip_arena(two.data, two.len, 1 << 20, &a, &out, &err));
    TD_ASSERT_OK(td_gunzip(two.data, two.len, 1 << 20, &ref, &err));
    TD_ASSERT_EQ_U64(out.len, in.len);
    TD_ASSERT_EQ_U64(ref.len, in.len);
    TD_ASSERT_EQ_MEM(out.ptr, in.data, in.len);
    td_arena_release(&a);

    /* zlib has no size: a guess, then doubling (zeros compress far beyond the guess) */
    size_t zn = 4 << 20;
    uint8_t *zeros = calloc(1, zn);
    uLongf zlen = compressBound((uLong)zn);
    uint8_t *z = malloc(zlen);
    TD_CHECK(zeros && z && compress2(z, &zlen, zeros, (uLong)zn, 6) == Z_OK);
    TD_ASSERT_OK(td_gunzip_arena(z, zlen, zn, &a, &out, &err));
    TD_ASSERT_EQ_U64(out.len, zn);
    TD_ASSERT_EQ_MEM(out.ptr, zeros, zn);
    td_arena_release(&a);
    /* over the limit, however it grows */
    TD_ASSERT_EQ_INT(td_gunzip_arena(z, zlen, zn - 1, &a, &out, &err), TD_TOO_LARGE);
    TD_ASSERT_EQ_U64(out.len, 0);
    td_arena_release(&a);

    /* a trailer claiming more than deflate can produce is not believed (then fails its check) */
    uint8_t *lie = malloc(gz.len);
    memcpy(lie, gz.data, gz.len);
    memset(lie + gz.len - 4, 0xff, 4);
    TD_ASSERT_EQ_INT(td_gunzip_arena(lie, gz.len, SIZE_MAX, &a, &out, &err), TD_INVALID);
    TD_CHECK(a.used < (size_t)gz.len * 1100);
    td_arena_release(&a);

    /* truncated and corrupt input, an arena that refuses, an empty body */
    TD_ASSERT_EQ_INT(td_gunzip_arena(gz.data, gz.len / 2, 1 << 20, &a, &out, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(td_gunzip_arena("hello, world", 12, 1 << 20, &a, &out, &err), TD_INVALID);
    td_arena_release(&a);
    td_arena_init(&a, 4096, 64 * 1024);
    TD_ASSERT_EQ_INT(td_gunzip_arena(gz.data, gz.len, 1 << 20, &a, &out, &err), TD_NOMEM);
    td_arena_release(&a);
    td_buf_reset(&gz);
    TD_ASSERT_OK(td_gzip("", 0, &gz, &err));
    TD_ASSERT_OK(td_gunzip_arena(gz.data, gz.len, 0, &a, &out, &err));
    TD_ASSERT_EQ_U64(out.len, 0);
    td_arena_release(&a);

    free(lie);
    free(z);
    free(zeros);
    td_buf_release(&in);
    td_buf_release(&gz);
    td_buf_release(&two);
    td_buf_release(&ref);
}

static void test_gzip_limit(void)
{
    td_buf zeros = TD_BUF_INIT, gz = TD_BUF_INIT, out = TD_BUF_INIT;
    td_err err;
    td_err_init(&err);
    td_buf_grow(&zeros, 20 << 20);
    memset(zeros.data, 0, 20 << 20);
    td_buf_setlen(&zeros, 20 << 20);
    TD_ASSERT_OK(td_gzip(zeros.data, zeros.len, &gz, &err));
    TD_CHECK(gz.len < 200000); /* a bomb: tiny in, huge out */

    TD_ASSERT_EQ_INT(td_gunzip(gz.data, gz.len, 1 << 20, &out, &err), TD_TOO_LARGE);
    TD_ASSERT_EQ_INT(err.code, TD_TOO_LARGE);
    TD_CHECK(out.len <= 1 << 20); /* stopped at the limit, not after inflating it all */

    /* exactly at the limit is fine; one byte under is not */
    td_buf_reset(&out);
    TD_ASSERT_OK(td_gunzip(gz.data, gz.len, zeros.len, &out, &err));
    TD_ASSERT_EQ_U64(out.len, zeros.len);
    td_buf_reset(&out);
    TD_ASSERT_EQ_INT(td_gunzip(gz.data, gz.len, zeros.len - 1, &out, &err), TD_TOO_LARGE);
    td_buf_reset(&out);
    td_buf_reset(&gz);
    TD_ASSERT_OK(td_gzip("x", 1, &gz, &err));
    TD_ASSERT_EQ_INT(td_gunzip(gz.data, gz.len, 0, &out, &err), TD_TOO_LARGE);

    td_buf_release(&zeros);
    td_buf_release(&gz);
    td_buf_release(&out);
}

/* ---- status ---- */

static void test_status_table(void)
{
    static const struct {
        td_status s;
        const char *name;
        int http, grpc;
    } want[] = {
        {TD_OK, "OK", 200, 0},
        {TD_INVALID, "INVALID", 400, 3},
        {TD_UNAUTHENTICATED, "UNAUTHENTICATED", 401, 16},
        {TD_NOT_FOUND, "NOT_FOUND", 404, 5},
        {TD_METHOD, "METHOD", 405, 12},
        {TD_TOO_LARGE, "TOO_LARGE", 413, 8},
        {TD_UNSUPPORTED, "UNSUPPORTED", 415, 12},
        {TD_LIMITED, "LIMITED", 429, 8},
        {TD_OVERLOADED, "OVERLOADED", 503, 14},
        {TD_NOMEM, "NOMEM", 503, 14},
        {TD_IO, "IO", 500, 13},
        {TD_CORRUPT, "CORRUPT", 500, 15},
        {TD_INTERNAL, "INTERNAL", 500, 13},
    };
    TD_ASSERT_EQ_INT(sizeof(want) / sizeof(want[0]), TD__STATUS_COUNT);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        TD_ASSERT_EQ_STR(td_status_name(want[i].s), want[i].name);
        TD_ASSERT_EQ_INT(td_status_http(want[i].s), want[i].http);
        TD_ASSERT_EQ_INT(td_status_grpc(want[i].s), want[i].grpc);
    }
    /* out of range maps to INTERNAL */
    TD_ASSERT_EQ_STR(td_status_name((td_status)999), "INTERNAL");
    TD_ASSERT_EQ_INT(td_status_http((td_status)-1), 500);
    TD_ASSERT_EQ_INT(td_status_grpc((td_status)TD__STATUS_COUNT), 13);

    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(err.code, TD_OK);
    TD_ASSERT_EQ_STR(err.msg, "");
    TD_ASSERT_EQ_INT(td_err_set(&err, TD_NOT_FOUND, "trace %s not found", "abc"), TD_NOT_FOUND);
    TD_ASSERT_EQ_INT(err.code, TD_NOT_FOUND);
    TD_ASSERT_EQ_STR(err.msg, "trace abc not found");
    TD_ASSERT_EQ_INT(td_err_set(NULL, TD_IO, "ignored"), TD_IO);
    /* long messages are truncated, never overflow */
    char big[1000];
    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    td_err_set(&err, TD_INTERNAL, "%s", big);
    TD_ASSERT_EQ_U64(strlen(err.msg), TD_ERR_MSG_MAX - 1);
}

/* ---- log ---- */

static int side_effects;

static int count_call(void)
{
    return ++side_effects;
}

/* Run td__log with stderr redirected; returns the captured text (caller frees). */
static char *capture_log(td_log_level lvl, const char *msg)
{
    char path[4200];
    const char *base = getenv("TD_TEST_TMP");
    snprintf(path, sizeof(path), "%s/test_core-log-%d", base && *base ? base : "/tmp",
             (int)getpid());
    FILE *f = fopen(path, "w+");
    TD_CHECK(f != NULL);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(f), STDERR_FILENO);
    td_log(lvl, "test", "%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *text = calloc(1, (size_t)n + 1);
    TD_CHECK(fread(text, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    unlink(path);
    return text;
}

static void test_log(void)
{
    td_log_level l;
    TD_CHECK(td_log_parse_level("debug", &l) && l == TD_LOG_DEBUG);
    TD_CHECK(td_log_parse_level("info", &l) && l == TD_LOG_INFO);
    TD_CHECK(td_log_parse_level("warn", &l) && l == TD_LOG_WARN);
    TD_CHECK(td_log_parse_level("warning", &l) && l == TD_LOG_WARN);
    TD_CHECK(td_log_parse_level("error", &l) && l == TD_LOG_ERROR);
    TD_CHECK(td_log_parse_level("off", &l) && l == TD_LOG_OFF);
    TD_CHECK(!td_log_parse_level("verbose", &l));
    TD_CHECK(!td_log_parse_level("", &l));

    /* below the level nothing is formatted: arguments are not even evaluated */
    td_log_set_level(TD_LOG_WARN);
    side_effects = 0;
    td_log(TD_LOG_INFO, "test", "%d", count_call());
    TD_ASSERT_EQ_INT(side_effects, 0);

    /* one JSON line with the fixed keys, escaped, and the request context */
    td_log_ctx_push("req-1", "tenant\"x");
    char *line = capture_log(TD_LOG_WARN, "bad \"thing\"\n\tdone");
    td_log_ctx_pop();
    TD_CHECK(strncmp(line, "{\"ts\":\"", 7) == 0);
    TD_CHECK(strstr(line, "Z\",\"level\":\"warn\",\"module\":\"test\","
                          "\"msg\":\"bad \\\"thing\\\"\\n\\u0009done\","
                          "\"request_id\":\"req-1\",\"tenant\":\"tenant\\\"x\"}\n") != NULL);
    TD_CHECK(strchr(line, '\n') == line + strlen(line) - 1);
    free(line);

    /* logfmt, without context after the pop */
    td_log_set_logfmt(true);
    line = capture_log(TD_LOG_ERROR, "plain");
    td_log_set_logfmt(false);
    TD_CHECK(strncmp(line, "ts=\"", 4) == 0);
    TD_CHECK(strstr(line, " level=\"error\" module=\"test\" msg=\"plain\"\n") != NULL);
    TD_CHECK(strstr(line, "request_id") == NULL);
    free(line);
    line = capture_log(TD_LOG_DEBUG, "filtered");
    TD_ASSERT_EQ_STR(line, "");
    free(line);
    td_log_set_level(TD_LOG_INFO);

    char id[17], id2[17];
    td_log_new_request_id(id);
    td_log_new_request_id(id2);
    TD_ASSERT_EQ_U64(strlen(id), 16);
    TD_ASSERT_EQ_U64(strspn(id, "0123456789abcdef"), 16);
    TD_CHECK(strcmp(id, id2) != 0);
}

static void test_log_throttle(void)
{
    _Atomic int64_t last = 0;
    _Atomic uint64_t supp = 0;
    uint64_t n = 99;
    /* the first line of a call site goes out */
    TD_CHECK(td__log_throttle(&last, &supp, &n));
    TD_ASSERT_EQ_U64(n, 0);
    /* more in the same second are suppressed and counted */
    int passed = 0;
    for (int i = 0; i < 5; i++) {
        passed += td__log_throttle(&last, &supp, &n);
    }
    /* (a second boundary may fall inside the loop and let one through) */
    TD_CHECK(passed <= 1);
    if (passed == 0) {
        TD_ASSERT_EQ_U64(supp, 5);
    }
    /* a second later the next line goes out and reports the suppressed count */
    int64_t now = last;
    last = now - 1;
    supp = 5;
    TD_CHECK(td__log_throttle(&last, &supp, &n));
    TD_ASSERT_EQ_U64(n, 5);
    TD_ASSERT_EQ_U64(supp, 0);
    TD_CHECK(last >= now);

    /* the macro compiles with and without arguments and respects the level */
    td_log_set_level(TD_LOG_OFF);
    TD_LOG_THROTTLED(TD_LOG_ERROR, "test", "no args");
    TD_LOG_THROTTLED(TD_LOG_ERROR, "test", "args %d %s", 1, "x");
    td_log_set_level(TD_LOG_INFO);
}

TEST_LIST = {
    {"buf_basics", test_buf_basics},
    {"buf_addf_growth", test_buf_addf_growth},
    {"buf_detach_and_grow_failures", test_buf_detach_and_grow_failures},
    {"slice", test_slice},
    {"arena_alignment_and_content", test_arena_alignment_and_content},
    {"arena_big_and_release", test_arena_big_and_release},
    {"arena_limit_and_overflow", test_arena_limit_and_overflow},
    {"arena_chunk_cache", test_arena_chunk_cache},
    {"arena_cache_threads", test_arena_cache_threads},
    {"queue_bounds", test_queue_bounds},
    {"queue_fifo_and_chaining", test_queue_fifo_and_chaining},
    {"queue_wakeups_and_close", test_queue_wakeups_and_close},
    {"config_defaults", test_config_defaults},
    {"config_precedence", test_config_precedence},
    {"config_flags", test_config_flags},
    {"config_errors", test_config_errors},
    {"config_parsers", test_config_parsers},
    {"config_help_and_sample", test_config_help_and_sample},
    {"metrics_exposition", test_metrics_exposition},
    {"gzip_round_trip", test_gzip_round_trip},
    {"gzip_bad_input", test_gzip_bad_input},
    {"gzip_limit", test_gzip_limit},
    {"gzip_arena", test_gzip_arena},
    {"status_table", test_status_table},
    {"log", test_log},
    {"log_throttle", test_log_throttle},
    {NULL, NULL},
};
