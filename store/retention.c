/*
 * retention.c - the retention thread: sleeps on a condition variable so that
 * td_retention_stop wakes it at once, runs a pass over both stores, repeats.
 */
#include "store/retention.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define MODULE "retention"
#define FIRST_PASS_DELAY_MS 1000

struct td_retention {
    td_store *store;
    td_pstore *pstore;
    int64_t retention_ms, interval_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    atomic_bool stop;    /* set under lock (for the wait), read by passes without */
};

static uint64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

td_status td_retention_pass(td_store *store, td_pstore *pstore, int64_t retention_ms,
                            const atomic_bool *stop, td_err *err)
{
    if (retention_ms <= 0) {
        return TD_OK;
    }
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    uint64_t now = now_ns(CLOCK_REALTIME), ret = (uint64_t)retention_ms * 1000000u;
    uint64_t cutoff = now > ret ? now - ret : 0;
    td_status first = TD_OK;
    td_err e = {0};
    td_store_retained tr = {0};
    td_pstore_retained pr = {0};
    if (store && cutoff > 0) {
        td_status st = td_store_retain(store, cutoff, stop, &tr, &e);
        if (st) {
            td_log(TD_LOG_ERROR, MODULE, "trace retention pass failed: %s", e.msg);
            first = st;
            if (err) {
                *err = e;
            }
        }
    }
    if (pstore && cutoff > 0) {
        td_status st = td_pstore_retain(pstore, (int64_t)cutoff, stop, &pr, &e);
        if (st) {
            td_log(TD_LOG_ERROR, MODULE, "profile retention pass failed: %s", e.msg);
            if (!first) {
                first = st;
                if (err) {
                    *err = e;
                }
            }
        }
    }
    double secs = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    td_metric_set(td_metric_series(TD_M_RETENTION_LAST_PASS, NULL, NULL, NULL),
                  (int64_t)(secs + 0.5));
    if (tr.fragments || tr.index_records || pr.profiles || pr.series) {
        td_log(TD_LOG_INFO, MODULE,
               "retention pass: %llu fragments, %llu index records, %llu tag records, "
               "%llu write tables, %llu profiles, %llu series deleted in %.3f s",
               (unsigned long long)tr.fragments, (unsigned long long)tr.index_records,
               (unsigned long long)tr.tag_records, (unsigned long long)tr.write_tables,
               (unsigned long long)pr.profiles, (unsigned long long)pr.series, secs);
    }
    return first;
}

/* Wait ms or until stopped; true when stopped. */
static bool wait_ms(td_retention *r, int64_t ms)
{
    uint64_t dl = now_ns(CLOCK_MONOTONIC) + (uint64_t)ms * 1000000u;
    struct timespec ts = {(time_t)(dl / 1000000000u), (long)(dl % 1000000000u)};
    pthread_mutex_lock(&r->lock);
    while (!r->stop && pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0) {
    }
    bool stop = r->stop;
    pthread_mutex_unlock(&r->lock);
    return stop;
}

static void *run(void *arg)
{
    td_retention *r = arg;
    int64_t delay = FIRST_PASS_DELAY_MS;
    while (!wait_ms(r, delay)) {
        td_retention_pass(r->store, r->pstore, r->retention_ms, &r->stop, NULL);
        delay = r->interval_ms;
    }
    return NULL;
}

td_status td_retention_start(const td_store_opts *o, td_store *store, td_pstore *pstore,
                             td_retention **out, td_err *err)
{
    *out = NULL;
    td_metric_set(td_metric_series(TD_M_RETENTION_LAST_PASS, NULL, NULL, NULL), 0);
    if (o->retention_ms <= 0) {
        td_log(TD_LOG_INFO, MODULE, "retention is 0: traces and profiles are kept forever");
        return TD_OK;
    }
    td_retention *r = td_xcalloc(1, sizeof(*r));
    r->store = store;
    r->pstore = pstore;
    r->retention_ms = o->retention_ms;
    r->interval_ms = o->retention_interval_ms > 0 ? o->retention_interval_ms : 600000;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        td_free(r);
        return td_err_set(err, TD_INTERNAL, "cannot start the retention thread");
    }
    *out = r;
    return TD_OK;
}

void td_retention_stop(td_retention *r)
{
    if (!r) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    td_free(r);
}
