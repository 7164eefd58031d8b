/*
 * internal.h - cross-file internals of the collector (td__ prefix; not public).
 */
#ifndef TD_COLLECTOR_INTERNAL_H
#define TD_COLLECTOR_INTERNAL_H

#include "collector/collector.h"
#include "core/queue.h"

/* ---- writer.c: the single thread draining the queue into the sink ---- */

typedef struct td_writer td_writer;

/*
 * Start the writer thread. It pops up to batch_bytes per sink write, times each
 * write into traced_write_batch_seconds, counts traced_spans_written_total, and on
 * a sink error keeps the batches and retries with backoff (counting
 * traced_write_errors_total) so acknowledged spans are never lost while the
 * process lives. Space is released to the queue only after a successful write.
 * Returns NULL if the thread cannot be created.
 */
td_writer *td__writer_start(td_queue *q, td_sink sink, size_t batch_bytes);

/*
 * Wait until the queue is closed and fully drained into the sink, then join and
 * free. The caller closes the queue (td_queue_close) before calling this.
 */
void td__writer_stop(td_writer *w);

/* ---- collector.c: the path shared by both transports ---- */

/* Encoding of a request body. */
typedef enum { TD_ENC_PROTOBUF, TD_ENC_JSON } td_encoding;

/*
 * Decode body (already decompressed), build the batch and enqueue it for tenant.
 * Counts everything it decides (traced_ingest_requests_total{protocol,outcome},
 * spans/bytes accepted and dropped by reason). protocol is "grpc" or "http".
 * Returns TD_OK (res says accepted/rejected), TD_INVALID (undecodable),
 * TD_OVERLOADED (queue full: nothing enqueued), TD_TOO_LARGE / TD_NOMEM.
 */
td_status td__collector_submit(td_collector *c, const char *protocol, td_encoding enc,
                               const uint8_t *body, size_t len, const char *tenant,
                               td_ingest_result *res, td_err *err);

/* Count one ingest request outcome that never reached td__collector_submit. */
void td__collector_count_reject(const char *protocol, td_status st, size_t bytes);

/*
 * Tenant from an X-Scope-OrgID value (NULL/empty when absent). With multitenancy
 * off the tenant is always TD_DEFAULT_TENANT. Errors: TD_UNAUTHENTICATED (missing
 * with multitenancy on), TD_INVALID (bad characters, too long, or '|' on write).
 */
td_status td__tenant_for_write(const td_collector_opts *o, const char *header,
                               char out[TD_TENANT_MAX + 1], td_err *err);

const td_collector_opts *td__collector_opts(const td_collector *c);

/* ---- otlp_grpc.c / otlp_http.c ---- */

typedef struct td_grpc_server td_grpc_server;
typedef struct td_http_server td_http_server;

td_status td__grpc_start(td_collector *c, const char *listen, td_grpc_server **out, td_err *err);
int td__grpc_port(const td_grpc_server *g);
void td__grpc_stop(td_grpc_server *g); /* stop accepting, finish in-flight calls, free */

td_status td__http_start(td_collector *c, const char *listen, td_http_server **out, td_err *err);
int td__http_port(const td_http_server *h);
void td__http_stop(td_http_server *h);

#endif
