/*
 * collector.h - OTLP trace ingest: gRPC on :4317, OTLP/HTTP on :4318, the bounded
 * queue and the writer that drains it into a sink (the store).
 *
 * Lifecycle: td_collector_new -> td_collector_start -> ... -> td_collector_stop
 * (stops listeners, drains the queue into the sink, joins the writer) ->
 * td_collector_free.
 *
 * Thread-safety: new/start/stop/free from one controlling thread; the stats and
 * port getters from any thread.
 */
#ifndef TD_COLLECTOR_H
#define TD_COLLECTOR_H

#include "core/arena.h"
#include "core/config.h"
#include "core/status.h"
#include "proto/proto.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct td_collector_opts {
    char *grpc_listen;        /* "0.0.0.0:4317"; "" disables */
    char *http_listen;        /* "0.0.0.0:4318"; "" disables */
    uint64_t max_recv_bytes;  /* max request after decompression (64 MiB) */
    uint64_t queue_max_spans; /* queue bound in spans */
    uint64_t queue_max_bytes; /* queue bound in bytes */
    uint64_t write_batch_bytes; /* max bytes per store write */
    int64_t grpc_threads;
    int64_t http_threads;
    int64_t retry_after_ms;   /* Retry-After / RetryInfo delay when overloaded */
    bool multitenancy;        /* require X-Scope-OrgID */
} td_collector_opts;

extern const td_opt td_collector_opt_rows[];
extern const size_t td_collector_nopt_rows;

/*
 * The boundary behind the queue: the writer hands batches to a sink. The store is
 * the default sink; another (e.g. Kafka) can sit here. write() must be atomic per
 * call: all n batches written, or an error and none. It runs on the writer thread.
 */
typedef struct td_sink {
    td_status (*write)(void *ud, td_batch *const *batches, size_t n, td_err *err);
    void *ud;
} td_sink;

/* The sink that writes into a td_store. */
td_sink td_sink_store(td_store *s);

typedef struct td_collector td_collector;

td_status td_collector_new(const td_collector_opts *o, td_sink sink, td_collector **out,
                           td_err *err);
/* Start the writer and bind the listeners. Errors: TD_IO when a port cannot be bound. */
td_status td_collector_start(td_collector *c, td_err *err);
/* Stop accepting, drain everything already accepted into the sink, stop the writer. */
void td_collector_stop(td_collector *c);
void td_collector_free(td_collector *c);

/* Bound ports (useful with ":0" listen addresses); 0 if disabled or not started. */
int td_collector_grpc_port(const td_collector *c);
int td_collector_http_port(const td_collector *c);

/* ---- pieces shared by the transports, exposed for tests and fuzzing ---- */

/* Result of one ingest request, for the partial_success answer. */
typedef struct td_ingest_result {
    uint64_t accepted_spans;
    uint64_t rejected_spans;
    char message[256]; /* why spans were rejected; empty when none */
} td_ingest_result;

/*
 * Decode an OTLP ExportTraceServiceRequest (= TracesData) from protobuf bytes into
 * arena memory. Pure: no I/O, no globals. Errors: TD_INVALID (message says what),
 * TD_NOMEM / TD_TOO_LARGE when the arena limit is hit.
 */
td_status td_otlp_decode_pb(const uint8_t *data, size_t len, td_arena *a,
                            td_otlp_request **req_out, td_err *err);

/* Same for OTLP JSON (API-CONTRACT 2.5). Errors: TD_INVALID naming the bad key/value. */
td_status td_otlp_decode_json(const char *data, size_t len, td_arena *a,
                              td_otlp_request **req_out, td_err *err);

/*
 * Validate spans (16/8-byte non-zero IDs), group the valid ones by trace ID and pack
 * one fragment per (resource, trace) into a new heap batch for tenant. Each distinct
 * resource is packed once into the batch's resource table (b->res, with its
 * td_hash128) and its fragments refer to it (res_index) instead of repeating it;
 * fragments of a ResourceSpans without a (non-empty) resource carry it inline.
 * Each fragment's distinct search index entries (b->idx; store/FORMAT.md 'I'
 * records) are built too; their key and value bytes (each distinct string once)
 * and entry structs count in q.bytes. *out is NULL when no span was valid.
 * res counts accepted/rejected spans.
 */
td_status td_batch_build(const td_otlp_request *req, const char *tenant, td_arena *a, td_batch **out,
                         td_ingest_result *res, td_err *err);

#endif
