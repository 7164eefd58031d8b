/*
 * test_writer.c - the writer thread against a fake sink: order, chaining,
 * queue space released only after a write, retries that lose nothing, drain on
 * stop, and the bounded give-up when the sink fails during shutdown.
 */
#include "collector/internal.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/store.h"
#include "td_test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- fake sink ---- */

typedef struct fake_sink {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int fail_next; /* fail this many calls (-1: fail forever) */
    bool block;    /* hold every call until unblocked */
    bool in_write; /* a call is waiting in block */
    int calls, failures;
    size_t max_batches_per_call;
    size_t max_bytes_per_call;
    td_buf order; /* tenants of written batches: "b0,b1,..." */
    size_t written;
} fake_sink;

static void fake_init(fake_sink *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    td_buf_init(&f->order, 0);
}

static void fake_release(fake_sink *f)
{
    td_buf_release(&f->order);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
}

static td_status fake_write(void *ud, td_batch *const *b, size_t n, td_err *err)
{
    fake_sink *f = ud;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    f->in_write = true;
    pthread_cond_broadcast(&f->cond);
    while (f->block) {
        pthread_cond_wait(&f->cond, &f->lock);
    }
    f->in_write = false;
    if (f->fail_next) {
        if (f->fail_next > 0) {
            f->fail_next--;
        }
        f->failures++;
        pthread_mutex_unlock(&f->lock);
        return td_err_set(err, TD_IO, "fake disk is full");
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        td_buf_addf(&f->order, "%s,", b[i]->tenant);
        bytes += b[i]->q.bytes;
    }
    if (n > f->max_batches_per_call) {
        f->max_batches_per_call = n;
    }
    if (bytes > f->max_bytes_per_call) {
        f->max_bytes_per_call = bytes;
    }
    f->written += n;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return TD_OK;
}

static td_sink sink_of(fake_sink *f)
{
    return (td_sink){fake_write, f};
}

/* ---- helpers ---- */

static td_batch *mk(unsigned i, size_t spans, size_t bytes)
{
    char name[32];
    snprintf(name, sizeof(name), "b%u", i);
    td_batch *b = td_batch_new(name, 0, 0);
    TD_CHECK(b != NULL);
    b->q.spans = spans;
    b->q.bytes = bytes;
    return b;
}

static void push(td_queue *q, td_batch *b)
{
    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_queue_push(q, &b->q, &err), TD_OK);
}

static uint64_t metric(td_metric_id id, const char *l1)
{
    return td_metric_get(td_metric_series(id, l1, NULL, NULL));
}

static void expected_order(td_buf *b, unsigned n)
{
    td_buf_reset(b);
    for (unsigned i = 0; i < n; i++) {
        td_buf_addf(b, "b%u,", i);
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait (bounded) until the queue holds no reserved space. */
static bool wait_released(td_queue *q, int64_t timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    td_queue_stats st;
    for (;;) {
        td_queue_get_stats(q, &st);
        if (st.spans == 0 && st.bytes == 0) {
            return true;
        }
        if (now_ms() > until) {
            return false;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void assert_queue_empty(td_queue *q)
{
    td_queue_stats st;
    td_queue_get_stats(q, &st);
    TD_ASSERT_EQ_U64(st.items, 0);
    TD_ASSERT_EQ_U64(st.spans, 0);
    TD_ASSERT_EQ_U64(st.bytes, 0);
}

/* ---- tests ---- */

static void test_order_and_chaining(void)
{
    fake_sink f;
    fake_init(&f);
    td_queue *q = td_queue_new(100000, 1 << 20);
    uint64_t written0 = metric(TD_M_SPANS_WRITTEN, NULL);
    uint64_t hist0 = metric(TD_M_WRITE_BATCH_SECONDS, NULL);
    enum { N = 200 };
    /* queue before starting, so chains are as long as batch_bytes allows */
    for (unsigned i = 0; i < N; i++) {
        push(q, mk(i, 3, 100));
    }
    td_writer *w = td__writer_start(q, sink_of(&f), 250);
    TD_CHECK(w != NULL);
    td_queue_close(q);
    td__writer_stop(w);

    td_buf want = TD_BUF_INIT;
    expected_order(&want, N);
    TD_ASSERT_EQ_STR(f.order.data, want.data);
    TD_ASSERT_EQ_U64(f.written, N);
    TD_ASSERT_EQ_U64(f.max_batches_per_call, 2); /* 100 + 100 <= 250 < 300 */
    TD_ASSERT_EQ_U64(f.max_bytes_per_call, 200);
    TD_ASSERT_EQ_INT(f.calls, N / 2);
    TD_ASSERT_EQ_U64(metric(TD_M_SPANS_WRITTEN, NULL) - written0, 3 * N);
    TD_ASSERT_EQ_U64(metric(TD_M_WRITE_BATCH_SECONDS, NULL) - hist0, (uint64_t)f.calls);
    assert_queue_empty(q);
    td_queue_free(q, NULL);
    td_buf_release(&want);
    fake_release(&f);
}

/* While a write is in flight its space stays reserved; afterwards it is given back. */
static void test_space_released_after_write(void)
{
    fake_sink f;
    fake_init(&f);
    f.block = true;
    td_queue *q = td_queue_new(10, 1000);
    td_writer *w = td__writer_start(q, sink_of(&f), 1 << 20);
    TD_CHECK(w != NULL);
    push(q, mk(0, 10, 500));

    pthread_mutex_lock(&f.lock);
    while (!f.in_write) {
        pthread_cond_wait(&f.cond, &f.lock);
    }
    pthread_mutex_unlock(&f.lock);
    /* popped, but not written: still full */
    td_queue_stats st;
    td_queue_get_stats(q, &st);
    TD_ASSERT_EQ_U64(st.items, 0);
    TD_ASSERT_EQ_U64(st.spans, 10);
    TD_ASSERT_EQ_U64(st.bytes, 500);
    td_batch *extra = mk(1, 1, 1);
    td_err err;
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_queue_push(q, &extra->q, &err), TD_OVERLOADED);

    pthread_mutex_lock(&f.lock);
    f.block = false;
    pthread_cond_broadcast(&f.cond);
    pthread_mutex_unlock(&f.lock);
    TD_CHECK(wait_released(q, 10000));
    push(q, extra);

    td_queue_close(q);
    td__writer_stop(w);
    TD_ASSERT_EQ_STR(f.order.data, "b0,b1,");
    assert_queue_empty(q);
    td_queue_free(q, NULL);
    fake_release(&f);
}

static void test_retry_loses_nothing(void)
{
    fake_sink f;
    fake_init(&f);
    f.fail_next = 4;
    td_queue *q = td_queue_new(1000, 1 << 20);
    uint64_t errors0 = metric(TD_M_WRITE_ERRORS, NULL);
    uint64_t dropped0 = metric(TD_M_SPANS_DROPPED, "write_failed");
    uint64_t written0 = metric(TD_M_SPANS_WRITTEN, NULL);
    td_writer *w = td__writer_start(q, sink_of(&f), 150);
    TD_CHECK(w != NULL);
    enum { N = 7 };
    for (unsigned i = 0; i < N; i++) {
        push(q, mk(i, 2, 100));
    }
    /* let the failures happen while running (backoff 10+20+40+80 ms) */
    TD_CHECK(wait_released(q, 20000));
    td_queue_close(q);
    td__writer_stop(w);

    td_buf want = TD_BUF_INIT;
    expected_order(&want, N);
    TD_ASSERT_EQ_STR(f.order.data, want.data);
    TD_ASSERT_EQ_INT(f.failures, 4);
    TD_ASSERT_EQ_U64(metric(TD_M_WRITE_ERRORS, NULL) - errors0, 4);
    TD_ASSERT_EQ_U64(metric(TD_M_SPANS_DROPPED, "write_failed") - dropped0, 0);
    TD_ASSERT_EQ_U64(metric(TD_M_SPANS_WRITTEN, NULL) - written0, 2 * N);
    assert_queue_empty(q);
    td_queue_free(q, NULL);
    td_buf_release(&want);
    fake_release(&f);
}

/* Close + stop right after a burst: everything accepted reaches the sink. */
static void test_stop_drains(void)
{
    fake_sink f;
    fake_init(&f);
    f.fail_next = 2; /* a short outage during shutdown is still retried */
    td_queue *q = td_queue_new(1000000, 64 << 20);
    td_writer *w = td__writer_start(q, sink_of(&f), 4096);
    TD_CHECK(w != NULL);
    enum { N = 5000 };
    for (unsigned i = 0; i < N; i++) {
        push(q, mk(i, 1, 64 + i % 100));
    }
    td_queue_close(q);
    td_batch *late = mk(N, 1, 1);
    td_err err;
    td_err_init(&err);
    TD_CHECK(td_queue_push(q, &late->q, &err) != TD_OK); /* closed: refused */
    td_batch_free(late);
    td__writer_stop(w);

    td_buf want = TD_BUF_INIT;
    expected_order(&want, N);
    TD_ASSERT_EQ_STR(f.order.data, want.data);
    TD_CHECK(f.max_bytes_per_call <= 4096);
    assert_queue_empty(q);
    td_queue_free(q, NULL);
    td_buf_release(&want);
    fake_release(&f);
}

/* An idle writer stops promptly, and a stop with nothing ever queued works. */
static void test_idle_stop(void)
{
    fake_sink f;
    fake_init(&f);
    td_queue *q = td_queue_new(10, 10);
    td_writer *w = td__writer_start(q, sink_of(&f), 10);
    TD_CHECK(w != NULL);
    int64_t t0 = now_ms();
    td_queue_close(q);
    td__writer_stop(w);
    TD_CHECK(now_ms() - t0 < 2000);
    TD_ASSERT_EQ_INT(f.calls, 0);
    td_queue_free(q, NULL);
    fake_release(&f);
}

/*
 * A sink that never recovers must not hang shutdown: after the give-up time the
 * writer drops what it holds, counts it and frees it (this test takes ~10 s).
 */
static void test_shutdown_gives_up(void)
{
    fake_sink f;
    fake_init(&f);
    f.fail_next = -1;
    td_queue *q = td_queue_new(1000, 1 << 20);
    uint64_t dropped0 = metric(TD_M_SPANS_DROPPED, "write_failed");
    uint64_t dbytes0 = metric(TD_M_BYTES_DROPPED, "write_failed");
    uint64_t written0 = metric(TD_M_SPANS_WRITTEN, NULL);
    for (unsigned i = 0; i < 3; i++) {
        push(q, mk(i, 5, 100));
    }
    td_writer *w = td__writer_start(q, sink_of(&f), 100); /* one batch per write */
    TD_CHECK(w != NULL);
    td_queue_close(q);
    int64_t t0 = now_ms();
    td__writer_stop(w);
    int64_t took = now_ms() - t0;
    TD_CHECK(took >= 9000 && took < 30000);
    TD_ASSERT_EQ_U64(metric(TD_M_SPANS_DROPPED, "write_failed") - dropped0, 15);
    TD_ASSERT_EQ_U64(metric(TD_M_BYTES_DROPPED, "write_failed") - dbytes0, 300);
    TD_ASSERT_EQ_U64(metric(TD_M_SPANS_WRITTEN, NULL) - written0, 0);
    TD_ASSERT_EQ_U64(f.written, 0);
    assert_queue_empty(q);
    td_queue_free(q, NULL);
    fake_release(&f);
}

TEST_LIST = {
    {"order_and_chaining", test_order_and_chaining},
    {"space_released_after_write", test_space_released_after_write},
    {"retry_loses_nothing", test_retry_loses_nothing},
    {"stop_drains", test_stop_drains},
    {"idle_stop", test_idle_stop},
    {"shutdown_gives_up", test_shutdown_gives_up},
    {NULL, NULL},
};
