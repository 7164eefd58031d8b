#include "queue.h"

#include "mem.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

struct td_queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    td_qitem *head, *tail;
    size_t items;
    size_t spans, bytes;         /* queued + popped but not yet released */
    size_t max_spans, max_bytes;
    bool closed;
};

td_queue *td_queue_new(size_t max_spans, size_t max_bytes)
{
    TD_ASSERT(max_spans > 0 && max_bytes > 0);
    td_queue *q = td_xcalloc(1, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->nonempty, &ca);
    pthread_condattr_destroy(&ca);
    q->max_spans = max_spans;
    q->max_bytes = max_bytes;
    return q;
}

void td_queue_free(td_queue *q, td_qitem **left)
{
    if (!q) {
        return;
    }
    if (left) {
        *left = q->head;
    } else {
        TD_ASSERT(q->head == NULL);
    }
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->lock);
    td_free(q);
}

td_status td_queue_push(td_queue *q, td_qitem *it, td_err *err)
{
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        pthread_mutex_unlock(&q->lock);
        return td_err_set(err, TD_INTERNAL, "server is shutting down");
    }
    if (it->spans > q->max_spans - q->spans || it->bytes > q->max_bytes - q->bytes) {
        pthread_mutex_unlock(&q->lock);
        return td_err_set(err, TD_OVERLOADED, "write queue is full, retry later");
    }
    q->spans += it->spans;
    q->bytes += it->bytes;
    q->items++;
    it->next = NULL;
    if (q->tail) {
        q->tail->next = it;
    } else {
        q->head = it;
    }
    q->tail = it;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
    return TD_OK;
}

td_qitem *td_queue_pop(td_queue *q, size_t max_bytes, int timeout_ms)
{
    pthread_mutex_lock(&q->lock);
    if (!q->head && !q->closed && timeout_ms != 0) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        if (timeout_ms > 0) {
            dl.tv_sec += timeout_ms / 1000;
            dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
        }
        while (!q->head && !q->closed) {
            int rc = timeout_ms > 0 ? pthread_cond_timedwait(&q->nonempty, &q->lock, &dl)
                                    : pthread_cond_wait(&q->nonempty, &q->lock);
            if (rc == ETIMEDOUT) {
                break;
            }
        }
    }
    td_qitem *first = q->head;
    td_qitem *last = NULL;
    size_t taken = 0;
    for (td_qitem *it = q->head; it; it = it->next) {
        if (last && taken + it->bytes > max_bytes) {
            break;
        }
        taken += it->bytes;
        last = it;
        q->items--;
    }
    if (last) {
        q->head = last->next;
        if (!q->head) {
            q->tail = NULL;
        }
        last->next = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    return first;
}

void td_queue_release(td_queue *q, size_t spans, size_t bytes)
{
    pthread_mutex_lock(&q->lock);
    TD_ASSERT(spans <= q->spans && bytes <= q->bytes);
    q->spans -= spans;
    q->bytes -= bytes;
    pthread_mutex_unlock(&q->lock);
}

void td_queue_close(td_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

bool td_queue_closed(td_queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool c = q->closed;
    pthread_mutex_unlock(&q->lock);
    return c;
}

void td_queue_get_stats(td_queue *q, td_queue_stats *out)
{
    pthread_mutex_lock(&q->lock);
    out->items = q->items;
    out->spans = q->spans;
    out->bytes = q->bytes;
    out->max_spans = q->max_spans;
    out->max_bytes = q->max_bytes;
    pthread_mutex_unlock(&q->lock);
}
