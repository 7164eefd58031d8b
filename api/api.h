/*
 * api.h - the query port (default 3200): Tempo trace-by-ID routes, /api/search, tag names and
 * values (/api/search/tags, /api/v2/search/tags, /api/[v2]/search/tag/{tag}/values), TraceQL
 * metrics (/api/metrics/query_range, /api/metrics/query), /api/echo,
 * /api/status/buildinfo, /ready, /health and /metrics; the Pyroscope query API
 * (querier.v1 over Connect, /pyroscope/render...) and Pyroscope ingest (/ingest,
 * push.v1 Push; api/pyro_ingest.c) when a profile store is set, also on the optional
 * second listener `pyroscope-listen` (Pyroscope's port 4040).
 *
 * Lifecycle: td_api_new -> td_api_start -> td_api_set_ready(true) once every
 * other part is up -> td_api_stop -> td_api_free.
 *
 * Thread-safety: new/start/stop/free from one controlling thread; set_ready and
 * port from any thread. Requests are served on the HTTP library's threads.
 */
#ifndef TD_API_H
#define TD_API_H

#include "core/config.h"
#include "core/status.h"
#include "profiler/profiler.h"
#include "store/pstore.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct td_api_opts {
    char *listen;              /* "0.0.0.0:3200" */
    int64_t threads;           /* HTTP worker threads */
    uint64_t max_trace_bytes;  /* v1 -> 422 / v2 -> PARTIAL beyond this */
    bool multitenancy;         /* require X-Scope-OrgID */
    int64_t search_max_traces; /* candidate traces one /api/search inspects at most */
    uint64_t search_max_bytes; /* stored bytes one search reads at most (0 = unlimited) */
    int64_t search_timeout_ms; /* wall time one search runs at most (0 = unlimited) */
    char *pyroscope_listen;    /* second listener serving the same routes; "" = off */
    td_profiler_opts profiler; /* profile ingest limits (td_profiler_opt_rows, own table) */
} td_api_opts;

extern const td_opt td_api_opt_rows[];
extern const size_t td_api_nopt_rows;

typedef struct td_api td_api;

td_status td_api_new(const td_api_opts *o, td_store *store, td_api **out, td_err *err);
/*
 * The profile store the Pyroscope routes read (not owned; must outlive the api).
 * Call before td_api_start; without it those routes answer 503 / unavailable.
 */
void td_api_set_pstore(td_api *api, td_pstore *ps);
/* Bind and serve. Errors: TD_IO when the port cannot be bound. */
td_status td_api_start(td_api *api, td_err *err);
/* /ready answers 200 only while ready is true (503 with a reason otherwise). */
void td_api_set_ready(td_api *api, bool ready);
void td_api_stop(td_api *api);
void td_api_free(td_api *api);
int td_api_port(const td_api *api);
/* Bound port of pyroscope-listen, 0 when off or stopped. */
int td_api_pyroscope_port(const td_api *api);

#endif
