/*
 * writer.c - the single thread that drains the queue into the sink.
 *
 * Spans are acknowledged to clients once queued, so the writer never drops a
 * chain while the process runs: a failing sink is retried with exponential
 * backoff, and queue space stays reserved until the write succeeded (which is
 * what pushes back on clients with 503s while the store is down). Only during
 * shutdown, when waiting longer would hang the process, does it give up after
 * SHUTDOWN_GIVE_UP_MS, counting every span it loses.
 *
 * Queue gauges (traced_queue_*) are not touched here: the collector owns them.
 */
#include "collector/internal.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#define MODULE "writer"

#define POP_TIMEOUT_MS 100
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000
#define SHUTDOWN_GIVE_UP_MS 10000

struct td_writer {
    pthread_t thread;
    td_queue *q;
    td_sink sink;
    size_t batch_bytes;

    /* the popped chain as an array, as sink.write wants it; grows, never shrinks */
    td_batch **arr;
    size_t arr_cap;

    /* when the queue was first seen closed (monotonic ms), 0 while running */
    int64_t closed_at_ms;
    uint64_t lost_spans;

    td_metric *m_seconds;
    td_metric *m_written;
    td_metric *m_errors;
    td_metric *m_dropped_spans;
    td_metric *m_dropped_bytes;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
        /* EINTR: sleep the rest */
    }
}

static bool shutting_down(td_writer *w)
{
    if (!w->closed_at_ms && td_queue_closed(w->q)) {
        w->closed_at_ms = mono_ms();
    }
    return w->closed_at_ms != 0;
}

/*
 * Turn the chain into w->arr. The array only ever grows to the longest chain,
 * which the queue's bounds limit, so an allocation failure here is a small OOM.
 */
static size_t gather(td_writer *w, td_qitem *chain, size_t *spans, size_t *bytes)
{
    size_t n = 0;
    *spans = *bytes = 0;
    for (td_qitem *it = chain; it; it = it->next) {
        if (n == w->arr_cap) {
            w->arr_cap = w->arr_cap ? w->arr_cap * 2 : 64;
            w->arr = td_xrealloc(w->arr, w->arr_cap * sizeof(*w->arr));
        }
        /* td_batch embeds its td_qitem as the first member */
        w->arr[n++] = (td_batch *)it;
        *spans += it->spans;
        *bytes += it->bytes;
    }
    return n;
}

/* Hand back the queue space of the chain and free its batches. */
static void finish(td_writer *w, size_t n, size_t spans, size_t bytes)
{
    td_queue_release(w->q, spans, bytes);
    for (size_t i = 0; i < n; i++) {
        td_batch_free(w->arr[i]);
    }
}

/* Write one chain, retrying until it succeeds or shutdown gives up on it. */
static void write_chain(td_writer *w, size_t n, size_t spans, size_t bytes)
{
    int64_t backoff = BACKOFF_MIN_MS;
    for (;;) {
        td_err err;
        td_err_init(&err);
        double t0 = mono_seconds();
        td_status st = w->sink.write(w->sink.ud, w->arr, n, &err);
        td_metric_observe(w->m_seconds, mono_seconds() - t0);
        if (st == TD_OK) {
            td_metric_add(w->m_written, spans);
            finish(w, n, spans, bytes);
            return;
        }
        td_metric_add(w->m_errors, 1);
        if (shutting_down(w) && mono_ms() - w->closed_at_ms >= SHUTDOWN_GIVE_UP_MS) {
            TD_LOG_THROTTLED(TD_LOG_ERROR, MODULE,
                             "shutting down: dropping %zu spans after the store kept failing: %s",
                             spans, err.msg);
            td_metric_add(w->m_dropped_spans, spans);
            td_metric_add(w->m_dropped_bytes, bytes);
            w->lost_spans += spans;
            finish(w, n, spans, bytes);
            return;
        }
        TD_LOG_THROTTLED(TD_LOG_ERROR, MODULE,
                         "store write of %zu spans failed (%s: %s); retrying in %lld ms", spans,
                         td_status_name(st), err.msg, (long long)backoff);
        sleep_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

static void *writer_main(void *arg)
{
    td_writer *w = arg;
    for (;;) {
        td_qitem *chain = td_queue_pop(w->q, w->batch_bytes, POP_TIMEOUT_MS);
        if (!chain) {
            /*
             * NULL is a timeout or "closed and empty". Once closed no push can
             * succeed, so one more non-waiting pop tells the two apart even if
             * items arrived between the timeout and the close.
             */
            if (!td_queue_closed(w->q)) {
                continue;
            }
            chain = td_queue_pop(w->q, w->batch_bytes, 0);
            if (!chain) {
                break;
            }
        }
        size_t spans, bytes;
        size_t n = gather(w, chain, &spans, &bytes);
        write_chain(w, n, spans, bytes);
    }
    if (w->lost_spans) {
        td_log(TD_LOG_ERROR, MODULE, "shutdown lost %llu spans that could not be written",
               (unsigned long long)w->lost_spans);
    }
    return NULL;
}

td_writer *td__writer_start(td_queue *q, td_sink sink, size_t batch_bytes)
{
    TD_ASSERT(sink.write != NULL);
    td_writer *w = td_xcalloc(1, sizeof(*w));
    w->q = q;
    w->sink = sink;
    w->batch_bytes = batch_bytes ? batch_bytes : 1;
    w->m_seconds = td_metric_series(TD_M_WRITE_BATCH_SECONDS, NULL, NULL, NULL);
    w->m_written = td_metric_series(TD_M_SPANS_WRITTEN, NULL, NULL, NULL);
    w->m_errors = td_metric_series(TD_M_WRITE_ERRORS, NULL, NULL, NULL);
    w->m_dropped_spans = td_metric_series(TD_M_SPANS_DROPPED, "write_failed", NULL, NULL);
    w->m_dropped_bytes = td_metric_series(TD_M_BYTES_DROPPED, "write_failed", NULL, NULL);

    /* the thread inherits a full signal mask: signals belong to the main thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        td_free(w);
        return NULL;
    }
    pthread_setname_np(w->thread, "td-writer");
    return w;
}

void td__writer_stop(td_writer *w)
{
    if (!w) {
        return;
    }
    TD_ASSERT(td_queue_closed(w->q)); /* otherwise the join below never returns */
    pthread_join(w->thread, NULL);
    td_free(w->arr);
    td_free(w);
}
