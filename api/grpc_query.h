/*
 * grpc_query.h - gRPC over h2c on the query port (API-CONTRACT §1, §3.9): internals
 * of the api module shared by server.c and tests/unit/test_api.c (td__ prefix: not
 * a public interface).
 *
 * The query port has one listening socket (server.c). Every accepted connection is
 * classified by peeking at its first bytes (td__query_classify): the HTTP/2 client
 * preface means h2c, which is handed to a gRPC C core server that has no port of
 * its own (td__query_grpc_take_fd); anything else is HTTP/1.1 for libmicrohttpd.
 *
 * Methods are server-streaming with one request message (tempopb.StreamingQuerier
 * shape). A method is a row {full path, handler}. Handlers run on a small pool of
 * handler threads, never on the completion-queue threads, so a slow query or a
 * client that reads slowly never stalls other calls. A handler sends 0..N
 * messages with td__query_grpc_send and returns a status that becomes the call's
 * grpc-status. Calls to unregistered methods are answered UNIMPLEMENTED.
 *
 * Lifecycle: new -> register* -> start -> take_fd* -> stop -> free; start may
 * follow stop again (the registrations are kept).
 * Thread-safety: new/register/start/stop/free from one controlling thread;
 * take_fd from one thread at a time (the acceptor) between start and stop. The
 * call accessors are for the handler thread running that call.
 */
#ifndef TD_API_GRPC_QUERY_H
#define TD_API_GRPC_QUERY_H

#include "api/api.h"
#include "api/tempo.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- connection classification ---- */

/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113 §3.4) */
#define TD_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define TD_H2_PREFACE_LEN 24

typedef enum {
    TD_CONN_UNDECIDED, /* a strict prefix of the preface so far: peek again later */
    TD_CONN_HTTP1,     /* differs from the preface: HTTP/1.x */
    TD_CONN_H2,        /* the whole preface: HTTP/2 with prior knowledge */
} td__conn_kind;

/* Classify the first n bytes a client sent (n may exceed the preface length). */
td__conn_kind td__query_classify(const void *p, size_t n);

/* ---- the server ---- */

typedef struct td__query_grpc td__query_grpc;
typedef struct td__query_grpc_call td__query_grpc_call;

/*
 * A method handler. Runs on a handler thread with the call's log context pushed
 * (request id, tenant). It may call td__query_grpc_send any number of times and
 * returns the call's status: TD_OK ends the stream with grpc-status 0, anything
 * else with td_status_grpc(status) and err->msg as grpc-message (the message
 * reaches the client: keep it safe to show). Protocol rules such as "at least
 * one message" are the handler's business. Must not keep `call` after returning.
 */
typedef td_status (*td__query_grpc_handler)(td__query_grpc_call *call, void *cls, td_err *err);

typedef struct td__query_grpc_opts {
    bool multitenancy;      /* x-scope-orgid rules, as for HTTP (td__tempo_tenants) */
    size_t handler_threads; /* >= 1 */
} td__query_grpc_opts;

/* A server with no methods. Never fails (small allocation); free with _free. */
td__query_grpc *td__query_grpc_new(const td__query_grpc_opts *o);

/*
 * Add a method before start. path is the full method path, e.g.
 * "/tempopb.StreamingQuerier/Search" (copied); cls is passed to fn. Errors:
 * TD_INVALID for a path not of the form "/service/method", a duplicate, or a call
 * while the server runs.
 */
td_status td__query_grpc_register(td__query_grpc *g, const char *path, td__query_grpc_handler fn,
                                  void *cls, td_err *err);

/*
 * Create and start the gRPC core server (grpc_init), its two completion-queue
 * threads and the handler threads. Errors: TD_INTERNAL when core or a thread
 * cannot be set up (nothing is left running).
 */
td_status td__query_grpc_start(td__query_grpc *g, td_err *err);

/*
 * Serve the connected socket fd as an h2c connection. Takes fd in every case:
 * after the call gRPC core owns it (and closes it when the connection ends), or
 * it has been closed. The caller has already seen the full preface with MSG_PEEK
 * (core must read it itself). Sets O_NONBLOCK and TCP_NODELAY (core needs the
 * former and sets neither).
 */
void td__query_grpc_take_fd(td__query_grpc *g, int fd);

/*
 * Stop (NOTES-grpc-core §6): no new calls; running calls get a short grace period,
 * then are cancelled (clients see an error status); idle connections are closed;
 * every thread is joined. The caller must stop calling take_fd first. No-op when
 * not running.
 */
void td__query_grpc_stop(td__query_grpc *g);

/* Stop if running and free. NULL is fine. */
void td__query_grpc_free(td__query_grpc *g);

/* Number of registered methods. */
size_t td__query_grpc_nmethods(const td__query_grpc *g);

/* ---- inside a handler ---- */

/* The full method path, e.g. "/tempopb.StreamingQuerier/Search". */
const char *td__query_grpc_method(const td__query_grpc_call *call);

/* The request message (possibly empty). Valid until the handler returns. */
td_slice td__query_grpc_request(const td__query_grpc_call *call);

/* The tenants the call covers (x-scope-orgid resolved like X-Scope-OrgID on HTTP). */
const td__tenants *td__query_grpc_tenants(const td__query_grpc_call *call);

/* The call's arena, released when the handler returns (STYLE rule 5). */
td_arena *td__query_grpc_arena(td__query_grpc_call *call);

/*
 * Value of request metadata key (lowercase, e.g. "authorization") as a
 * NUL-terminated copy in the call's arena; NULL when absent (or out of memory).
 * -bin values come base64-decoded by core and may contain NULs.
 */
const char *td__query_grpc_metadata(td__query_grpc_call *call, const char *key, size_t *len);

/* Milliseconds until the client's deadline (INT64_MAX when it sent none; <= 0 = passed). */
int64_t td__query_grpc_remaining_ms(const td__query_grpc_call *call);

/* True once the call has ended early: client cancel, deadline, or server stop. */
bool td__query_grpc_cancelled(const td__query_grpc_call *call);

/* Largest message td__query_grpc_send accepts: Grafana's default receive limit is 4 MiB. */
#define TD_QUERY_GRPC_MAX_MSG ((size_t)4 * 1024 * 1024 - 1024)

/*
 * Send one response message (bytes are copied) and wait until core has taken it
 * (HTTP/2 flow control: a client that reads slowly slows the handler down). The
 * first send also sends the initial metadata. Errors: TD_TOO_LARGE above
 * TD_QUERY_GRPC_MAX_MSG (nothing sent; the handler may split and retry); TD_IO
 * when the call has ended (client cancel, deadline, server stop, or a client that
 * stopped reading for a long time): stop producing and return.
 */
td_status td__query_grpc_send(td__query_grpc_call *call, const void *msg, size_t len, td_err *err);

/* ---- the api's instance ---- */

/*
 * The query port's gRPC server, owned by api: methods are registered on it
 * between td_api_new and td_api_start (server.c registers the Tempo methods;
 * tests add their own).
 */
td__query_grpc *td__api_query_grpc(td_api *api);

#endif
