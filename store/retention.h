/*
 * retention.h - the background thread deleting old traces and profiles
 * (store/FORMAT.md and store/FORMAT-PROFILES.md, "Retention"). A module of
 * its own header because it drives both stores; the deleting itself is
 * td_store_retain and td_pstore_retain.
 *
 * Every pass computes one cutoff, now - retention, and hands it to both
 * stores. The first pass runs about a second after td_retention_start, then
 * one every retention-interval (measured from the end of the previous pass).
 *
 * Thread-safety: start and stop from one thread (main); the stores must stay
 * open until td_retention_stop returns.
 */
#ifndef TD_STORE_RETENTION_H
#define TD_STORE_RETENTION_H

#include "core/status.h"
#include "store/pstore.h"
#include "store/store.h"

typedef struct td_retention td_retention;

/*
 * Start the thread for o->retention_ms / o->retention_interval_ms over store
 * and pstore (pstore may be NULL). With retention 0 no thread is started and
 * *out is NULL (nothing is ever deleted). Errors: TD_INTERNAL (no thread).
 */
td_status td_retention_start(const td_store_opts *o, td_store *store, td_pstore *pstore,
                             td_retention **out, td_err *err);

/*
 * Stop and join the thread, then free r. NULL is fine. A pass in progress
 * ends after its current write batch (at most 4 MiB of deletes), so this
 * returns promptly; the next start's passes finish the work.
 */
void td_retention_stop(td_retention *r);

/*
 * Run one pass now with cutoff now - retention_ms, on the calling thread
 * (the thread's body; tests call it directly); either store may be NULL,
 * stop may be NULL, err may be NULL. Sets traced_retention_last_pass_seconds.
 * Errors from either store are logged and the first is returned.
 */
td_status td_retention_pass(td_store *store, td_pstore *pstore, int64_t retention_ms,
                            const atomic_bool *stop, td_err *err);

#endif
