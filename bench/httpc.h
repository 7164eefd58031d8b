/*
 * httpc.h - a minimal blocking HTTP/1.1 keep-alive client for the bench tools
 * (bench_load posts OTLP, bench_query times the query API). IPv4 host:port only;
 * it is meant for 127.0.0.1 and speaks just enough HTTP for traced: a status line,
 * Content-Length or chunked bodies, Connection: close and Retry-After.
 *
 * Thread-safety: one td_bench_http per thread; nothing is shared.
 */
#ifndef TD_BENCH_HTTPC_H
#define TD_BENCH_HTTPC_H

#include "core/buf.h"
#include "core/status.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

typedef struct td_bench_http {
    int fd; /* -1 when not connected */
    struct sockaddr_in addr;
    int timeout_ms;
    td_buf in; /* bytes read but not yet consumed, from in_pos */
    size_t in_pos;
    uint64_t connects; /* connections opened (1 + reconnects) */
} td_bench_http;

typedef struct td_bench_http_resp {
    int status;      /* HTTP status code */
    int retry_after; /* seconds from Retry-After, -1 when absent */
    td_buf body;     /* owned; td_bench_http_resp_release frees it */
} td_bench_http_resp;

/*
 * Prepare a client for target "a.b.c.d:port" (no connection yet). timeout_ms
 * bounds every single send/receive. Errors: TD_INVALID (bad target).
 */
td_status td_bench_http_init(td_bench_http *h, const char *target, int timeout_ms, td_err *err);
void td_bench_http_release(td_bench_http *h);

void td_bench_http_resp_init(td_bench_http_resp *r);
void td_bench_http_resp_release(td_bench_http_resp *r);

/*
 * Send one request and read its whole response into r (r->body is reset first).
 * path is the request target ("/api/search?q=..."); headers is NULL or extra
 * header lines, each ending in "\r\n"; body may be NULL when blen is 0. The
 * connection is kept alive; if a reused connection turns out to be closed before
 * any response byte arrives, the request is sent once more on a fresh one.
 * Errors: TD_IO (connect, send, receive, timeout or a malformed response; the
 * connection is closed).
 */
td_status td_bench_http_do(td_bench_http *h, const char *method, const char *path,
                           const char *headers, const void *body, size_t blen,
                           td_bench_http_resp *r, td_err *err);

/* Append s to b percent-encoded for a query string value (RFC 3986 unreserved kept). */
void td_bench_urlenc(td_buf *b, const char *s);

#endif
