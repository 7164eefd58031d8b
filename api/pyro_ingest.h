/*
 * pyro_ingest.h - internal interface of the Pyroscope ingest routes of the query
 * port (pyro_ingest.c): POST /ingest, /pyroscope/ingest (API-CONTRACT §5.0, §5.1)
 * and the Connect unary POST /push.v1.PusherService/Push (§5.2). The profile
 * work is td_profiler's; this file is HTTP: method, tenant, content types,
 * status codes, JSON error bodies, metrics.
 *
 * Thread-safety: reentrant (td_pstore is thread-safe).
 */
#ifndef TD_API_PYRO_INGEST_H
#define TD_API_PYRO_INGEST_H

#include "core/buf.h"
#include "profiler/profiler.h"
#include "store/pstore.h"

#include <stdbool.h>

/* A query parameter or header of the request (NULL when absent). */
typedef const char *(*td__pyro_get_fn)(void *cookie, const char *name);

typedef struct td__pyro_ingest_req {
    td_pstore *ps; /* NULL: 503 / unavailable */
    const td_profiler_opts *opts;
    bool multitenancy;
    const char *method;
    const char *url; /* path; Push may have a routing prefix (Connect) */
    td_slice body;
    td__pyro_get_fn arg, header;
    void *cookie;
} td__pyro_ingest_req;

typedef struct td__pyro_ingest_reply {
    int status;
    const char *ctype; /* static string */
    td_buf *body;      /* appended to */
    const char *allow; /* Allow header of a 405, else NULL */
} td__pyro_ingest_reply;

/* POST /ingest: 200 with an empty body, or a JSON error {"code","message"}. */
void td__pyro_ingest(const td__pyro_ingest_req *in, td__pyro_ingest_reply *out);
/*
 * POST [prefix]/push.v1.PusherService/Push: empty PushResponse, or a Connect JSON
 * error (other methods of the service: unimplemented).
 */
void td__pyro_push(const td__pyro_ingest_req *in, td__pyro_ingest_reply *out);

#endif
