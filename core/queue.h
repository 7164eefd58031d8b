/*
 * queue.h - the bounded batch queue between network threads and the writer.
 *
 * Items are intrusive (embed td_qitem first in your struct) and carry their size
 * in spans and bytes. The queue is bounded by both; td_queue_push never waits
 * for space: when either bound would be exceeded the push is refused with
 * TD_OVERLOADED and the caller keeps the item (and counts the drop, STYLE
 * rule 10). A push is all or nothing, so a request is never half-enqueued.
 *
 * Thread-safety: push from any thread; pop from one consumer (the writer).
 */
#ifndef TD_QUEUE_H
#define TD_QUEUE_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct td_qitem {
    struct td_qitem *next;
    size_t spans;
    size_t bytes;
} td_qitem;

typedef struct td_queue td_queue;

typedef struct td_queue_stats {
    size_t items, spans, bytes;
    size_t max_spans, max_bytes;
} td_queue_stats;

/* New empty queue. max_spans/max_bytes must be > 0. Free with td_queue_free. */
td_queue *td_queue_new(size_t max_spans, size_t max_bytes);
/* Frees the queue; items still queued are returned through `left` (may be NULL to assert empty). */
void td_queue_free(td_queue *q, td_qitem **left);

/*
 * Enqueue it. TD_OK: the queue owns it until popped. TD_OVERLOADED: full (the
 * caller still owns it). TD_INTERNAL: the queue is closed. An item larger than
 * the whole capacity is always refused.
 */
td_status td_queue_push(td_queue *q, td_qitem *it, td_err *err);

/*
 * Take queued items in FIFO order as a NULL-terminated chain, up to max_bytes
 * (at least one item if any). Waits up to timeout_ms for the first item
 * (0 = do not wait, <0 = wait forever). Returns NULL on timeout, or when the
 * queue is closed and empty.
 */
td_qitem *td_queue_pop(td_queue *q, size_t max_bytes, int timeout_ms);

/*
 * Tell the queue that items obtained by td_queue_pop are done (written); only
 * then is their space given back. Keeping space reserved until the write is
 * durable bounds memory by the configured limits.
 */
void td_queue_release(td_queue *q, size_t spans, size_t bytes);

/* Refuse further pushes and wake the consumer; pops still drain what is queued. */
void td_queue_close(td_queue *q);
bool td_queue_closed(td_queue *q);

void td_queue_get_stats(td_queue *q, td_queue_stats *out);

#endif
