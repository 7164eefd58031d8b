/*
 * metrics.h - the process-wide metrics registry, exported as Prometheus text.
 *
 * Every metric family is declared once, in TD_METRIC_DEFS below (STYLE rule 10):
 * id, type, name, help, label names (up to three, comma separated, "" for none).
 * A series is one family plus label values; td_metric_series returns a stable
 * pointer that callers may cache. Counter/gauge/histogram updates are lock-free
 * atomics; series lookup takes a mutex.
 *
 * Thread-safety: everything here is thread-safe. The registry is one of the three
 * allowed globals (STYLE rule 8).
 */
#ifndef TD_METRICS_H
#define TD_METRICS_H

#include "buf.h"

#include <stdint.h>

typedef enum { TD_COUNTER, TD_GAUGE, TD_HISTOGRAM } td_metric_type;

/* Histogram buckets (seconds) shared by all latency histograms. */
#define TD_LATENCY_BUCKETS                                                                         \
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10

#define TD_METRIC_DEFS(X)                                                                          \
    X(BUILD_INFO, TD_GAUGE, "traced_build_info", "Build information; value is always 1.",          \
      "version")                                                                                   \
    X(INGEST_REQUESTS, TD_COUNTER, "traced_ingest_requests_total",                                 \
      "OTLP trace ingest requests by protocol (grpc, http) and outcome.", "protocol,outcome")      \
    X(SPANS_ACCEPTED, TD_COUNTER, "traced_spans_accepted_total",                                   \
      "Spans accepted (enqueued for writing) by protocol.", "protocol")                            \
    X(BYTES_ACCEPTED, TD_COUNTER, "traced_bytes_accepted_total",                                   \
      "Request bytes (after decompression) accepted by protocol.", "protocol")                     \
    X(SPANS_DROPPED, TD_COUNTER, "traced_spans_dropped_total",                                     \
      "Spans refused or dropped, by reason.", "reason")                                            \
    X(BYTES_DROPPED, TD_COUNTER, "traced_bytes_dropped_total",                                     \
      "Request bytes refused or dropped, by reason.", "reason")                                    \
    X(QUEUE_SPANS, TD_GAUGE, "traced_queue_spans", "Spans waiting in the write queue.", "")        \
    X(QUEUE_BYTES, TD_GAUGE, "traced_queue_bytes", "Bytes waiting in the write queue.", "")        \
    X(QUEUE_BATCHES, TD_GAUGE, "traced_queue_batches", "Batches waiting in the write queue.", "")  \
    X(QUEUE_CAP_SPANS, TD_GAUGE, "traced_queue_capacity_spans",                                    \
      "Capacity of the write queue in spans.", "")                                                 \
    X(QUEUE_CAP_BYTES, TD_GAUGE, "traced_queue_capacity_bytes",                                    \
      "Capacity of the write queue in bytes.", "")                                                 \
    X(SPANS_WRITTEN, TD_COUNTER, "traced_spans_written_total", "Spans written to the store.", "")  \
    X(WRITE_BATCH_SECONDS, TD_HISTOGRAM, "traced_write_batch_seconds",                             \
      "Latency of one store write batch.", "")                                                     \
    X(WRITE_ERRORS, TD_COUNTER, "traced_write_errors_total",                                       \
      "Store write batches that failed and were retried.", "")                                     \
    X(STORE_SIZE, TD_GAUGE, "traced_leveldb_size_bytes",                                           \
      "Approximate size of the LevelDB store on disk.", "")                                        \
    X(STORE_RESOURCES, TD_COUNTER, "traced_store_resources_total",                                 \
      "Resources of written batches: outcome=written (a resource record was put) or "              \
      "cached (written recently, skipped).",                                                       \
      "outcome")                                                                                   \
    X(INDEX_ENTRIES, TD_COUNTER, "traced_index_entries_total",                                     \
      "Search index entries written (a trace ID under one attribute value and minute).", "")       \
    X(INDEX_SKIPPED, TD_COUNTER, "traced_index_skipped_total",                                     \
      "Attribute values not put into the search index, by reason (value_too_long, "                \
      "too_many_values); they stay searchable by scanning.",                                       \
      "reason")                                                                                    \
    X(QUERY_REQUESTS, TD_COUNTER, "traced_query_requests_total",                                   \
      "Query port requests by route and HTTP status.", "route,status")                             \
    X(QUERY_SECONDS, TD_HISTOGRAM, "traced_query_duration_seconds",                                \
      "Query port request latency by route.", "route")                                             \
    X(PROFILES_INGESTED, TD_COUNTER, "traced_profiles_ingested_total",                             \
      "Profiles written to the profile store, by ingest path (ingest, push).", "path")             \
    X(PROFILE_SAMPLES_INGESTED, TD_COUNTER, "traced_profile_samples_ingested_total",               \
      "Profile samples (one per stack and sample type) written, by ingest path.", "path")          \
    X(PROFILES_REJECTED, TD_COUNTER, "traced_profiles_rejected_total",                             \
      "Profile ingest requests refused, by ingest path and reason (HTTP status).", "path,reason")  \
    X(PROFILES_WRITTEN, TD_COUNTER, "traced_profiles_written_total",                               \
      "Profiles (one per series of an ingested profile) written to the profile store.", "")        \
    X(PROFILE_SAMPLES_WRITTEN, TD_COUNTER, "traced_profile_samples_written_total",                 \
      "Samples stored in written profiles (after merging equal stacks and dropping zeros).", "")   \
    X(PROFILE_SYMBOLS, TD_COUNTER, "traced_profile_symbols_total",                                 \
      "Symbols of written profiles by kind (location, stack, series) and outcome: cached "         \
      "(interned recently), found (already in the store), written (new).",                         \
      "kind,outcome")                                                                              \
    X(PROFILE_STORE_SIZE, TD_GAUGE, "traced_profiles_leveldb_size_bytes",                          \
      "Approximate size of the profile LevelDB database on disk.", "")                             \
    X(RETENTION_DELETED, TD_COUNTER, "traced_retention_deleted_total",                             \
      "Records deleted by retention, by store (traces, profiles) and kind (traces: fragment, "     \
      "index, tag, write_table; profiles: profile, time_index, series, posting).",                 \
      "store,kind")                                                                                \
    X(RETENTION_LAST_PASS, TD_GAUGE, "traced_retention_last_pass_seconds",                         \
      "Duration of the last retention pass (both stores), in whole seconds.", "")

typedef enum {
#define TD__MID(id, type, name, help, labels) TD_M_##id,
    TD_METRIC_DEFS(TD__MID)
#undef TD__MID
        TD__M_COUNT
} td_metric_id;

typedef struct td_metric td_metric;

/*
 * The series of family id with the given label values (NULL for unused ones).
 * Created on first use; the pointer stays valid for the life of the process.
 */
td_metric *td_metric_series(td_metric_id id, const char *l1, const char *l2, const char *l3);

void td_metric_add(td_metric *m, uint64_t v);    /* counters (and gauges) */
void td_metric_set(td_metric *m, int64_t v);     /* gauges */
void td_metric_observe(td_metric *m, double v);  /* histograms */
uint64_t td_metric_get(const td_metric *m);      /* counter/gauge value, or histogram count */

/* Shorthand for one-off updates: look the series up and add v. */
void td_count(td_metric_id id, uint64_t v, const char *l1, const char *l2);

/*
 * Make the unlabeled series of a gauge family computed at scrape time by fn(ud).
 * fn runs on the scraping thread and must be thread-safe. fn == NULL removes the
 * registration, but only when ud matches the registered one (so two owners, e.g.
 * two open stores, cannot remove each other's gauge).
 */
void td_metric_gauge_fn(td_metric_id id, int64_t (*fn)(void *ud), void *ud);

/* Append every family in Prometheus text exposition format 0.0.4. */
void td_metrics_write(td_buf *out);

#endif
