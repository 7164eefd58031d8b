/*
 * grpc_query.c - the gRPC C core server behind the query port's h2c connections
 * (API-CONTRACT §1 rule 5, §3.9; shared/NOTES-grpc-core.md §5-§7).
 *
 * The server has no listening port: server.c hands it connected sockets
 * (grpc_server_add_channel_from_fd, insecure credentials only).
 *
 * Threading. Two completion-queue threads share one CQ ("Model B" in the NOTES)
 * and only dispatch events; they never run a handler and never block. Handlers
 * run on a small pool of handler threads, because a handler may take long (a
 * search) and waits for each of its SEND_MESSAGE batches to complete: doing that
 * on a CQ thread could leave nobody to deliver the completion it waits for.
 *
 * One call, in order:
 *   1. A pre-posted request slot fires (READ_INITIAL_BYTE_BUFFER: the request
 *      message comes with it). The CQ thread re-posts a slot, starts a
 *      RECV_CLOSE_ON_SERVER batch (which tells us about client cancel and
 *      deadline), and queues the call for a handler thread. Calls to methods
 *      nobody registered (grpc_server_request_call slots) are answered
 *      UNIMPLEMENTED right there, so no client ever waits for its deadline.
 *   2. The handler thread resolves the tenants and runs the handler. Each
 *      td__query_grpc_send is one batch (initial metadata with the first message)
 *      and waits for its completion, so at most one send batch is in flight.
 *   3. The handler's status goes out in a final batch.
 * Completions may run on either CQ thread, so a call is reference-counted: the
 * owner (CQ thread, then handler thread) plus one reference per batch in flight.
 */
#include "api/grpc_query.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/store.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MOD "query_grpc"
#define CQ_THREADS 2
#define PREPOST_PER_METHOD 4
#define PREPOST_UNKNOWN 4
#define QUEUE_CAP 64        /* calls waiting for a handler thread; beyond: UNAVAILABLE */
#define STOP_GRACE_MS 2000  /* running calls may finish within this at stop */
#define SEND_STALL_MS 60000 /* a client that reads nothing this long is cancelled */
#define MAX_RECV_BYTES (4 << 20)
#define MAX_METADATA_BYTES (16 * 1024) /* room for large JWTs in authorization */
#define MAX_IDLE_MS (10 * 60 * 1000)
#define ARENA_CHUNK (64 * 1024)
#define REQUEST_ID_MAX 64
#define ROUTE_UNKNOWN "grpc:other" /* metrics route of unregistered methods (bounded labels) */

/* ---- classification ---- */

td__conn_kind td__query_classify(const void *p, size_t n)
{
    size_t k = n < TD_H2_PREFACE_LEN ? n : TD_H2_PREFACE_LEN;
    if (memcmp(p, TD_H2_PREFACE, k) != 0) {
        return TD_CONN_HTTP1;
    }
    return k == TD_H2_PREFACE_LEN ? TD_CONN_H2 : TD_CONN_UNDECIDED;
}

/* ---- types ---- */

typedef struct method {
    char *path;
    td__query_grpc_handler fn;
    void *cls;
    void *handle; /* grpc_server_register_method, while running */
} method;

typedef enum { T_REQUEST, T_CLOSE, T_SEND, T_FINAL, T__COUNT } tag_kind;

/* CQ tags point at one of these inside the call, so the event says which batch ended. */
typedef struct optag {
    td__query_grpc_call *call;
    tag_kind kind;
} optag;

struct td__query_grpc_call {
    td__query_grpc *g;
    const method *m; /* NULL: a method nobody registered */
    _Atomic int refs;
    optag tags[T__COUNT];
    bool active; /* counted in g->active */

    /* filled by core when the request slot fires */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* unregistered methods only */
    int close_cancelled;       /* RECV_CLOSE_ON_SERVER */
    atomic_bool cancelled;

    /* the send chain: one batch at a time, owned by the handler thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool send_done, send_ok;
    bool sent_initial;
    grpc_metadata initial_md; /* x-request-id */
    grpc_byte_buffer *out;    /* message of the batch in flight */
    grpc_slice status_msg;    /* kept until the final batch completes */

    /* handler state */
    grpc_slice request;
    td_arena arena;
    td__tenants tenants;
    char request_id[REQUEST_ID_MAX + 1];
    struct timespec t0;
};

struct td__query_grpc {
    td__query_grpc_opts o;
    method *methods;
    size_t nmethods, capmethods;

    bool running;
    grpc_server *srv;
    grpc_server_credentials *creds;     /* kept for add_channel_from_fd */
    grpc_completion_queue *cq;          /* calls and batches */
    grpc_completion_queue *shutdown_cq; /* only the shutdown notification */
    pthread_t cq_threads[CQ_THREADS];
    size_t ncq_threads;
    pthread_t *hthreads;
    size_t nhthreads;
    atomic_bool stopping;
    atomic_int active; /* calls that arrived and are not freed yet */

    /* calls waiting for a handler thread */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    td__query_grpc_call *queue[QUEUE_CAP];
    size_t qhead, qlen;
    bool qstop;
};

/* ---- call objects ---- */

static td__query_grpc_call *call_new(td__query_grpc *g, const method *m)
{
    td__query_grpc_call *c = td_xcalloc(1, sizeof(*c));
    c->g = g;
    c->m = m;
    atomic_init(&c->refs, 1);
    for (int i = 0; i < T__COUNT; i++) {
        c->tags[i].call = c;
        c->tags[i].kind = (tag_kind)i;
    }
    grpc_metadata_array_init(&c->md);
    if (!m) {
        grpc_call_details_init(&c->details);
    }
    atomic_init(&c->cancelled, false);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->status_msg = grpc_empty_slice();
    c->request = grpc_empty_slice();
    c->initial_md.key = grpc_empty_slice();
    c->initial_md.value = grpc_empty_slice();
    return c;
}

static void call_free(td__query_grpc_call *c)
{
    if (c->payload) {
        grpc_byte_buffer_destroy(c->payload);
    }
    if (c->out) {
        grpc_byte_buffer_destroy(c->out);
    }
    grpc_slice_unref(c->status_msg);
    grpc_slice_unref(c->request);
    grpc_slice_unref(c->initial_md.key);
    grpc_slice_unref(c->initial_md.value);
    /* metadata slices belong to the call: drop them before the call */
    grpc_metadata_array_destroy(&c->md);
    if (!c->m) {
        grpc_call_details_destroy(&c->details);
    }
    if (c->call) {
        grpc_call_unref(c->call);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    if (c->active) {
        atomic_fetch_sub(&c->g->active, 1);
    }
    td_free(c);
}

static void call_unref(td__query_grpc_call *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        call_free(c);
    }
}

/* Start a batch holding one more reference; on failure the reference is dropped again. */
static grpc_call_error start_batch(td__query_grpc_call *c, const grpc_op *ops, size_t n,
                                   tag_kind kind)
{
    atomic_fetch_add(&c->refs, 1);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tags[kind], NULL);
    if (e != GRPC_CALL_OK) {
        atomic_fetch_sub(&c->refs, 1); /* no tag will fire */
        TD_LOG_THROTTLED(TD_LOG_ERROR, MOD, "grpc_call_start_batch failed (%d)", (int)e);
    }
    return e;
}

/* Ask core for one more call of method m (NULL: any unregistered method). */
static void post_request(td__query_grpc *g, const method *m)
{
    td__query_grpc_call *c = call_new(g, m);
    grpc_call_error e;
    if (m) {
        e = grpc_server_request_registered_call(g->srv, m->handle, &c->call, &c->deadline, &c->md,
                                                &c->payload, g->cq, g->cq, &c->tags[T_REQUEST]);
    } else {
        e = grpc_server_request_call(g->srv, &c->call, &c->details, &c->md, g->cq, g->cq,
                                     &c->tags[T_REQUEST]);
    }
    if (e != GRPC_CALL_OK) {
        td_log(TD_LOG_ERROR, MOD, "cannot request a call: grpc_call_error %d", (int)e);
        call_free(c);
    }
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The value of request metadata key, or NULL. The slice belongs to the call. */
static const grpc_slice *md_find(const td__query_grpc_call *c, const char *key)
{
    for (size_t i = 0; i < c->md.count; i++) {
        if (grpc_slice_str_cmp(c->md.metadata[i].key, key) == 0) {
            return &c->md.metadata[i].value;
        }
    }
    return NULL;
}

/* x-request-id from the client when it is short and printable (as on HTTP), else a fresh one. */
static void pick_request_id(td__query_grpc_call *c)
{
    const grpc_slice *v = md_find(c, "x-request-id");
    if (v) {
        size_t n = GRPC_SLICE_LENGTH(*v);
        const uint8_t *p = GRPC_SLICE_START_PTR(*v);
        bool ok = n > 0 && n <= REQUEST_ID_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            ok = p[i] > 0x20 && p[i] < 0x7F;
        }
        if (ok) {
            memcpy(c->request_id, p, n);
            c->request_id[n] = '\0';
            return;
        }
    }
    td_log_new_request_id(c->request_id);
}

/*
 * Send the call's status (and the initial metadata if no message went out) in
 * the final batch, and count the call. Does not drop the caller's reference.
 */
static void finish(td__query_grpc_call *c, td_status st, const td_err *err)
{
    grpc_status_code code = st == TD_OK ? GRPC_STATUS_OK : (grpc_status_code)td_status_grpc(st);
    const char *msg = NULL;
    if (st != TD_OK) {
        msg = err && err->msg[0] ? err->msg : td_status_name(st);
        grpc_slice_unref(c->status_msg);
        c->status_msg = grpc_slice_from_copied_string(msg);
    }
    /* counted before the client can see the status */
    char label[16];
    snprintf(label, sizeof(label), "grpc:%d", (int)code);
    const char *route = c->m ? c->m->path : ROUTE_UNKNOWN;
    double secs = seconds_since(&c->t0);
    td_metric_add(td_metric_series(TD_M_QUERY_REQUESTS, route, label, NULL), 1);
    td_metric_observe(td_metric_series(TD_M_QUERY_SECONDS, route, NULL, NULL), secs);
    if (code == GRPC_STATUS_OK) {
        td_log(TD_LOG_DEBUG, MOD, "%s -> OK (%.3f ms)", route, secs * 1e3);
    } else if (atomic_load(&c->cancelled)) {
        /* the client cancelled, its deadline passed, or we are stopping: nobody hears this */
        td_log(TD_LOG_DEBUG, MOD, "%s ended early (%.3f ms): %s", route, secs * 1e3, msg);
    } else if (st == TD_INTERNAL || st == TD_IO || st == TD_CORRUPT || st == TD_NOMEM) {
        TD_LOG_THROTTLED(TD_LOG_ERROR, MOD, "%s -> %d: %s", route, (int)code, msg);
    } else {
        TD_LOG_THROTTLED(TD_LOG_INFO, MOD, "%s -> %d: %s", route, (int)code, msg);
    }
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!c->sent_initial) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 1;
        ops[n].data.send_initial_metadata.metadata = &c->initial_md;
        n++;
        c->sent_initial = true;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details = msg ? &c->status_msg : NULL;
    n++;
    if (start_batch(c, ops, n, T_FINAL) != GRPC_CALL_OK) {
        /* never leave the client waiting for its deadline */
        grpc_call_cancel_with_status(c->call, code == GRPC_STATUS_OK ? GRPC_STATUS_INTERNAL : code,
                                     msg ? msg : "internal error", NULL);
    }
}

/* ---- handler threads ---- */

static bool enqueue(td__query_grpc *g, td__query_grpc_call *c)
{
    pthread_mutex_lock(&g->qmu);
    bool ok = g->qlen < QUEUE_CAP && !g->qstop;
    if (ok) {
        g->queue[(g->qhead + g->qlen) % QUEUE_CAP] = c;
        g->qlen++;
        pthread_cond_signal(&g->qcv);
    }
    pthread_mutex_unlock(&g->qmu);
    return ok;
}

/* The request as one contiguous slice (borrowed when it already is one). */
static td_status flatten_request(td__query_grpc_call *c, td_err *err)
{
    grpc_byte_buffer *bb = c->payload;
    if (!bb) {
        /* the client half-closed without sending its message */
        return td_err_set(err, TD_INVALID, "missing request message");
    }
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
        bb->data.raw.slice_buffer.count == 1) {
        c->request = grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
        return TD_OK;
    }
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb)) {
        return td_err_set(err, TD_INVALID, "cannot read the request message");
    }
    c->request = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    return TD_OK;
}

/* x-scope-orgid as a C string in the arena, NULs made invalid characters; NULL if absent. */
static const char *tenant_header(td__query_grpc_call *c)
{
    size_t n;
    const char *v = td__query_grpc_metadata(c, "x-scope-orgid", &n);
    if (v) {
        char *w = (char *)v;
        for (size_t i = 0; i < n; i++) {
            if (w[i] == '\0') {
                w[i] = '\x01'; /* never let an embedded NUL shorten the ID */
            }
        }
    }
    return v;
}

static void run_call(td__query_grpc_call *c)
{
    td__query_grpc *g = c->g;
    td_err err;
    td_err_init(&err);
    td_log_ctx_push(c->request_id, NULL);
    td_arena_init(&c->arena, ARENA_CHUNK, 0);

    td_status st;
    if (atomic_load(&c->cancelled) || atomic_load(&g->stopping)) {
        st = td_err_set(&err, TD_OVERLOADED, "server is shutting down or the call was cancelled");
    } else if ((st = flatten_request(c, &err)) == TD_OK) {
        /* the same tenant rules as X-Scope-OrgID on HTTP */
        const char *org = tenant_header(c);
        st = td__tempo_tenants(org, g->o.multitenancy, &c->arena, &c->tenants, &err);
        if (st == TD_OK) {
            td_log_ctx_push(c->request_id, g->o.multitenancy ? org : TD_DEFAULT_TENANT);
            st = c->m->fn(c, c->m->cls, &err);
        }
    }
    finish(c, st, &err);
    td_arena_release(&c->arena);
    td_log_ctx_pop();
}

static void *handler_thread(void *arg)
{
    td__query_grpc *g = arg;
    for (;;) {
        pthread_mutex_lock(&g->qmu);
        while (g->qlen == 0 && !g->qstop) {
            pthread_cond_wait(&g->qcv, &g->qmu);
        }
        if (g->qlen == 0) {
            pthread_mutex_unlock(&g->qmu);
            break;
        }
        td__query_grpc_call *c = g->queue[g->qhead];
        g->qhead = (g->qhead + 1) % QUEUE_CAP;
        g->qlen--;
        pthread_mutex_unlock(&g->qmu);
        run_call(c);
        call_unref(c);
    }
    return NULL;
}

/* ---- CQ threads ---- */

/* A request slot fired: a new call (success) or a slot failed by server shutdown. */
static void on_new_call(td__query_grpc_call *c, bool success)
{
    td__query_grpc *g = c->g;
    if (!success) {
        call_unref(c); /* never became a call; do not re-post */
        return;
    }
    c->active = true;
    atomic_fetch_add(&g->active, 1);
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    if (!atomic_load(&g->stopping)) {
        /* keep the number of waiting slots constant */
        post_request(g, c->m);
    }
    pick_request_id(c);
    c->initial_md.key = grpc_slice_from_static_string("x-request-id");
    c->initial_md.value = grpc_slice_from_copied_string(c->request_id);

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    start_batch(c, &op, 1, T_CLOSE);

    td_err err;
    td_err_init(&err);
    if (!c->m) {
        char path[160];
        size_t n = GRPC_SLICE_LENGTH(c->details.method);
        n = n < sizeof(path) ? n : sizeof(path) - 1;
        memcpy(path, GRPC_SLICE_START_PTR(c->details.method), n);
        path[n] = '\0';
        td_log_ctx_push(c->request_id, NULL);
        td_err_set(&err, TD_UNSUPPORTED, "unknown method %s", path);
        finish(c, TD_UNSUPPORTED, &err);
        td_log_ctx_pop();
        call_unref(c);
        return;
    }
    if (!enqueue(g, c)) {
        td_log_ctx_push(c->request_id, NULL);
        td_err_set(&err, TD_OVERLOADED, "too many queries in progress, retry later");
        finish(c, TD_OVERLOADED, &err);
        td_log_ctx_pop();
        call_unref(c);
    }
    /* else the handler thread owns our reference now */
}

static void dispatch(grpc_event ev)
{
    optag *t = ev.tag;
    td__query_grpc_call *c = t->call;
    switch (t->kind) {
    case T_REQUEST:
        on_new_call(c, ev.success != 0);
        return;
    case T_CLOSE:
        if (!ev.success || c->close_cancelled) {
            atomic_store(&c->cancelled, true);
        }
        break;
    case T_SEND:
        pthread_mutex_lock(&c->mu);
        c->send_done = true;
        c->send_ok = ev.success != 0;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        break;
    case T_FINAL:
    case T__COUNT:
        break;
    }
    call_unref(c);
}

static void *cq_thread(void *arg)
{
    td__query_grpc *g = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type == GRPC_OP_COMPLETE) {
            dispatch(ev);
        }
    }
    return NULL;
}

/* ---- lifecycle ---- */

td__query_grpc *td__query_grpc_new(const td__query_grpc_opts *o)
{
    td__query_grpc *g = td_xcalloc(1, sizeof(*g));
    g->o = *o;
    if (g->o.handler_threads < 1) {
        g->o.handler_threads = 1;
    }
    atomic_init(&g->stopping, false);
    atomic_init(&g->active, 0);
    pthread_mutex_init(&g->qmu, NULL);
    pthread_cond_init(&g->qcv, NULL);
    return g;
}

td_status td__query_grpc_register(td__query_grpc *g, const char *path, td__query_grpc_handler fn,
                                  void *cls, td_err *err)
{
    if (g->running) {
        return td_err_set(err, TD_INVALID, "gRPC methods must be registered before start");
    }
    const char *slash = path && path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (!fn || !slash || slash == path + 1 || !slash[1] || strchr(slash + 1, '/')) {
        return td_err_set(err, TD_INVALID, "bad gRPC method path '%s' (want /service/method)",
                          path ? path : "(null)");
    }
    for (size_t i = 0; i < g->nmethods; i++) {
        if (strcmp(g->methods[i].path, path) == 0) {
            return td_err_set(err, TD_INVALID, "gRPC method %s registered twice", path);
        }
    }
    if (g->nmethods == g->capmethods) {
        size_t cap = g->capmethods ? g->capmethods * 2 : 8;
        method *m = td_xcalloc(cap, sizeof(*m));
        if (g->nmethods) {
            memcpy(m, g->methods, g->nmethods * sizeof(*m));
        }
        td_free(g->methods);
        g->methods = m;
        g->capmethods = cap;
    }
    method *m = &g->methods[g->nmethods++];
    m->path = td_xstrdup(path);
    m->fn = fn;
    m->cls = cls;
    return TD_OK;
}

size_t td__query_grpc_nmethods(const td__query_grpc *g)
{
    return g->nmethods;
}

/* Shut a CQ down and drain it on this thread (used when no CQ thread runs). */
static void drain_cq(grpc_completion_queue *cq, bool dispatch_events)
{
    grpc_completion_queue_shutdown(cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (dispatch_events && ev.type == GRPC_OP_COMPLETE) {
            dispatch(ev);
        }
    }
}

/*
 * NOTES §6 order. Safe on a server that never started (the shutdown tag then
 * comes at once). Running calls get STOP_GRACE_MS, but only while there are
 * calls: with none left, idle connections are cut at once.
 */
static void teardown(td__query_grpc *g)
{
    atomic_store(&g->stopping, true);
    grpc_server_shutdown_and_notify(g->srv, g->shutdown_cq, g);
    bool cancelled = false;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        gpr_timespec slice =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                         gpr_time_from_millis(cancelled ? 1000 : 50, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(g->shutdown_cq, slice, NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            break;
        }
        if (!cancelled &&
            (atomic_load(&g->active) == 0 || seconds_since(&t0) * 1e3 >= STOP_GRACE_MS)) {
            if (atomic_load(&g->active) > 0) {
                td_log(TD_LOG_WARN, MOD, "%d gRPC calls still running after %d ms; cancelling",
                       atomic_load(&g->active), STOP_GRACE_MS);
            }
            /* cancels the calls and closes every connection, idle ones included */
            grpc_server_cancel_all_calls(g->srv);
            cancelled = true;
        }
    }
    /* handlers may still be finishing calls; their completions need the CQ threads */
    pthread_mutex_lock(&g->qmu);
    g->qstop = true;
    pthread_cond_broadcast(&g->qcv);
    pthread_mutex_unlock(&g->qmu);
    for (size_t i = 0; i < g->nhthreads; i++) {
        pthread_join(g->hthreads[i], NULL);
    }
    td_free(g->hthreads);
    g->hthreads = NULL;
    g->nhthreads = 0;

    grpc_server_destroy(g->srv);
    g->srv = NULL;
    if (g->ncq_threads) {
        grpc_completion_queue_shutdown(g->cq);
        for (size_t i = 0; i < g->ncq_threads; i++) {
            pthread_join(g->cq_threads[i], NULL);
        }
        g->ncq_threads = 0;
    } else {
        drain_cq(g->cq, true); /* frees the failed request slots */
    }
    grpc_completion_queue_destroy(g->cq);
    g->cq = NULL;
    drain_cq(g->shutdown_cq, false);
    grpc_completion_queue_destroy(g->shutdown_cq);
    g->shutdown_cq = NULL;
    grpc_server_credentials_release(g->creds);
    g->creds = NULL;
    for (size_t i = 0; i < g->nmethods; i++) {
        g->methods[i].handle = NULL;
    }
    g->running = false;
    grpc_shutdown();
}

td_status td__query_grpc_start(td__query_grpc *g, td_err *err)
{
    TD_ASSERT(!g->running);
    grpc_init();
    atomic_store(&g->stopping, false);
    g->qstop = false;
    g->running = true;

    grpc_arg args[] = {
        /* requests are small; answers are limited by TD_QUERY_GRPC_MAX_MSG */
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = MAX_RECV_BYTES}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_METADATA_SIZE, {.integer = MAX_METADATA_BYTES}},
        /* bound idle h2c connections (HTTP/1.1 ones have libmicrohttpd's timeout); a GOAWAY
           is graceful, clients such as Grafana's simply reconnect */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_CONNECTION_IDLE_MS, {.integer = MAX_IDLE_MS}},
    };
    grpc_channel_args ca = {sizeof(args) / sizeof(args[0]), args};
    g->srv = grpc_server_create(&ca, NULL);
    g->cq = grpc_completion_queue_create_for_next(NULL);
    g->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(g->srv, g->cq, NULL);
    grpc_server_register_completion_queue(g->srv, g->shutdown_cq, NULL);
    g->creds = grpc_insecure_server_credentials_create();
    td_status st = TD_OK;
    for (size_t i = 0; i < g->nmethods && st == TD_OK; i++) {
        g->methods[i].handle = grpc_server_register_method(
            g->srv, g->methods[i].path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!g->methods[i].handle) {
            st = td_err_set(err, TD_INTERNAL, "cannot register gRPC method %s", g->methods[i].path);
        }
    }
    for (size_t i = 0; i < CQ_THREADS && st == TD_OK; i++) {
        if (pthread_create(&g->cq_threads[i], NULL, cq_thread, g) != 0) {
            st = td_err_set(err, TD_INTERNAL, "cannot create a gRPC thread");
            break;
        }
        g->ncq_threads++;
    }
    g->hthreads = td_xcalloc(g->o.handler_threads, sizeof(pthread_t));
    for (size_t i = 0; i < g->o.handler_threads && st == TD_OK; i++) {
        if (pthread_create(&g->hthreads[i], NULL, handler_thread, g) != 0) {
            st = td_err_set(err, TD_INTERNAL, "cannot create a gRPC handler thread");
            break;
        }
        g->nhthreads++;
    }
    if (st != TD_OK) {
        teardown(g);
        return st;
    }
    grpc_server_start(g->srv);
    for (size_t i = 0; i < g->nmethods; i++) {
        for (int k = 0; k < PREPOST_PER_METHOD; k++) {
            post_request(g, &g->methods[i]);
        }
    }
    for (int k = 0; k < PREPOST_UNKNOWN; k++) {
        post_request(g, NULL);
    }
    td_log(TD_LOG_DEBUG, MOD, "gRPC on the query port: %zu methods, %zu handler threads",
           g->nmethods, g->nhthreads);
    return TD_OK;
}

void td__query_grpc_take_fd(td__query_grpc *g, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    int one = 1;
    if (!g->running || atomic_load(&g->stopping) || fl < 0 ||
        fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        close(fd);
        return;
    }
    /* small stream messages must not wait for Nagle */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    grpc_server_add_channel_from_fd(g->srv, fd, g->creds);
}

void td__query_grpc_stop(td__query_grpc *g)
{
    if (g && g->running) {
        teardown(g);
    }
}

void td__query_grpc_free(td__query_grpc *g)
{
    if (!g) {
        return;
    }
    td__query_grpc_stop(g);
    for (size_t i = 0; i < g->nmethods; i++) {
        td_free(g->methods[i].path);
    }
    td_free(g->methods);
    pthread_mutex_destroy(&g->qmu);
    pthread_cond_destroy(&g->qcv);
    td_free(g);
}

/* ---- call accessors ---- */

const char *td__query_grpc_method(const td__query_grpc_call *call)
{
    return call->m ? call->m->path : "";
}

td_slice td__query_grpc_request(const td__query_grpc_call *call)
{
    return td_slice_of(GRPC_SLICE_START_PTR(call->request), GRPC_SLICE_LENGTH(call->request));
}

const td__tenants *td__query_grpc_tenants(const td__query_grpc_call *call)
{
    return &call->tenants;
}

td_arena *td__query_grpc_arena(td__query_grpc_call *call)
{
    return &call->arena;
}

const char *td__query_grpc_metadata(td__query_grpc_call *call, const char *key, size_t *len)
{
    const grpc_slice *v = md_find(call, key);
    if (!v) {
        return NULL;
    }
    size_t n = GRPC_SLICE_LENGTH(*v);
    char *s = td_arena_alloc(&call->arena, n + 1);
    if (!s) {
        return NULL;
    }
    memcpy(s, GRPC_SLICE_START_PTR(*v), n);
    s[n] = '\0';
    if (len) {
        *len = n;
    }
    return s;
}

int64_t td__query_grpc_remaining_ms(const td__query_grpc_call *call)
{
    gpr_timespec dl = call->deadline;
    if (gpr_time_cmp(dl, gpr_inf_future(dl.clock_type)) == 0) {
        return INT64_MAX;
    }
    dl = gpr_convert_clock_type(dl, GPR_CLOCK_MONOTONIC);
    gpr_timespec left = gpr_time_sub(dl, gpr_now(GPR_CLOCK_MONOTONIC));
    return left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

bool td__query_grpc_cancelled(const td__query_grpc_call *call)
{
    return atomic_load(&call->cancelled);
}

td_status td__query_grpc_send(td__query_grpc_call *c, const void *msg, size_t len, td_err *err)
{
    if (len > TD_QUERY_GRPC_MAX_MSG) {
        return td_err_set(err, TD_TOO_LARGE, "response message of %zu bytes exceeds the %zu limit",
                          len, TD_QUERY_GRPC_MAX_MSG);
    }
    if (atomic_load(&c->cancelled)) {
        return td_err_set(err, TD_IO, "the call has ended");
    }
    grpc_slice s = len ? grpc_slice_from_copied_buffer(msg, len) : grpc_empty_slice();
    c->out = grpc_raw_byte_buffer_create(&s, 1); /* takes its own reference */
    grpc_slice_unref(s);

    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!c->sent_initial) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 1;
        ops[n].data.send_initial_metadata.metadata = &c->initial_md;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->out;
    n++;
    pthread_mutex_lock(&c->mu);
    c->send_done = false;
    pthread_mutex_unlock(&c->mu);
    if (start_batch(c, ops, n, T_SEND) != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(c->out);
        c->out = NULL;
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL, "internal error", NULL);
        atomic_store(&c->cancelled, true);
        return td_err_set(err, TD_IO, "cannot send a message");
    }
    c->sent_initial = true;

    /* wait for the completion; a client that reads nothing for SEND_STALL_MS is cut off */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SEND_STALL_MS / 1000;
    bool stalled = false;
    pthread_mutex_lock(&c->mu);
    while (!c->send_done) {
        if (stalled) {
            pthread_cond_wait(&c->cv, &c->mu);
        } else if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT && !c->send_done) {
            stalled = true;
            pthread_mutex_unlock(&c->mu);
            TD_LOG_THROTTLED(TD_LOG_WARN, MOD, "%s: client read nothing for %d s; cancelling",
                             c->m ? c->m->path : "?", SEND_STALL_MS / 1000);
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                                         "client stopped reading", NULL);
            pthread_mutex_lock(&c->mu);
        }
    }
    bool ok = c->send_ok;
    pthread_mutex_unlock(&c->mu);
    grpc_byte_buffer_destroy(c->out);
    c->out = NULL;
    if (!ok) {
        atomic_store(&c->cancelled, true);
        return td_err_set(err, TD_IO, "the call has ended");
    }
    return TD_OK;
}
