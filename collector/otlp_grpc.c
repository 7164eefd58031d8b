/*
 * otlp_grpc.c - OTLP/gRPC ingest (API-CONTRACT 2.1) on the gRPC C core
 * (grpc_unsecure, h2c), following shared/NOTES-grpc-core.md.
 *
 * Threading ("Model B" in the NOTES): one completion queue shared by
 * grpc-threads workers, all blocking in grpc_completion_queue_next, so even a
 * single client connection is served by every worker. Calls are requested in
 * advance (pre-posted slots); each slot re-posts a fresh one when its call
 * arrives, unless the server is stopping. Export uses
 * READ_INITIAL_BYTE_BUFFER, so the request message comes with the new-call event
 * and a call needs exactly one batch: initial metadata + message + status +
 * RECV_CLOSE. Oversized (after decompression) messages are refused by core with
 * RESOURCE_EXHAUSTED before we see them. Unregistered methods are requested too
 * and answered UNIMPLEMENTED, so no call ever waits for its deadline.
 *
 * Each call object carries an atomic refcount (handler + outstanding batch) so
 * its completion may run on any worker.
 */
#include "collector/internal.h"

#include "core/arena.h"
#include "core/log.h"
#include "core/mem.h"
#include "proto/proto.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define EXPORT_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define PREPOST_EXPORT_PER_THREAD 8
#define PREPOST_UNKNOWN 4
#define STOP_GRACE_MS 5000
#define MAX_METADATA_BYTES (16 * 1024) /* room for large JWTs in authorization */
#define RETRY_INFO_TYPE "type.googleapis.com/google.rpc.RetryInfo"

typedef enum { K_EXPORT, K_UNKNOWN } call_kind;
typedef enum { P_REQUESTED, P_SENDING } call_phase;

/* One requested call: first a pending slot, then the call being answered. */
typedef struct gcall {
    td_grpc_server *g;
    call_kind kind;
    _Atomic call_phase phase; /* set before start_batch, read by whichever worker completes it */
    _Atomic int refs;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload; /* K_EXPORT: the request message (ours once delivered) */
    grpc_call_details details; /* K_UNKNOWN: method and host */
    /* answer state, kept alive until the send batch completes */
    grpc_byte_buffer *resp;
    grpc_slice status_msg;
    grpc_metadata trailer;
    size_t ntrailers;
    int cancelled;
    char request_id[17];
} gcall;

struct td_grpc_server {
    td_collector *c;
    grpc_server *srv;
    grpc_completion_queue *cq;          /* calls and batches */
    grpc_completion_queue *shutdown_cq; /* only the shutdown notification */
    void *export_method;
    int port;
    size_t nthreads;
    pthread_t *threads;
    _Atomic bool stopping;
    size_t max_recv;
    int64_t retry_after_ms;
};

/* ---- gpr logging into td_log ---- */

static void gpr_to_td_log(gpr_log_func_args *a)
{
    /* core's ERROR lines are mostly caused by peers (bad frames, resets): warn */
    if (a->severity == GPR_LOG_SEVERITY_ERROR) {
        TD_LOG_THROTTLED(TD_LOG_WARN, "grpc", "%s (%s:%d)", a->message, a->file, a->line);
    } else {
        TD_LOG_THROTTLED(TD_LOG_DEBUG, "grpc", "%s (%s:%d)", a->message, a->file, a->line);
    }
}

static pthread_once_t gpr_log_once = PTHREAD_ONCE_INIT;
static void install_gpr_log(void)
{
    gpr_set_log_function(gpr_to_td_log);
}

/* ---- call objects ---- */

static gcall *gcall_new(td_grpc_server *g, call_kind kind)
{
    gcall *gc = td_xcalloc(1, sizeof(*gc));
    gc->g = g;
    gc->kind = kind;
    gc->phase = P_REQUESTED;
    atomic_init(&gc->refs, 1);
    grpc_metadata_array_init(&gc->md);
    if (kind == K_UNKNOWN) {
        grpc_call_details_init(&gc->details);
    }
    gc->status_msg = grpc_empty_slice();
    return gc;
}

static void gcall_free(gcall *gc)
{
    if (gc->payload) {
        grpc_byte_buffer_destroy(gc->payload);
    }
    if (gc->resp) {
        grpc_byte_buffer_destroy(gc->resp);
    }
    grpc_slice_unref(gc->status_msg);
    if (gc->ntrailers) {
        grpc_slice_unref(gc->trailer.key);
        grpc_slice_unref(gc->trailer.value);
    }
    /* metadata slices belong to the call: drop them before the call */
    grpc_metadata_array_destroy(&gc->md);
    if (gc->kind == K_UNKNOWN) {
        grpc_call_details_destroy(&gc->details);
    }
    if (gc->call) {
        grpc_call_unref(gc->call);
    }
    td_free(gc);
}

static void gcall_unref(gcall *gc)
{
    if (atomic_fetch_sub(&gc->refs, 1) == 1) {
        gcall_free(gc);
    }
}

/* Ask core for one more call of this kind; the slot comes back as a CQ event. */
static void post_request(td_grpc_server *g, call_kind kind)
{
    gcall *gc = gcall_new(g, kind);
    grpc_call_error e;
    if (kind == K_EXPORT) {
        e = grpc_server_request_registered_call(g->srv, g->export_method, &gc->call, &gc->deadline,
                                                &gc->md, &gc->payload, g->cq, g->cq, gc);
    } else {
        e = grpc_server_request_call(g->srv, &gc->call, &gc->details, &gc->md, g->cq, g->cq, gc);
    }
    if (e != GRPC_CALL_OK) {
        td_log(TD_LOG_ERROR, "otlp_grpc", "cannot request a call: grpc_call_error %d", (int)e);
        gcall_free(gc);
    }
}

/* ---- answering ---- */

/* grpc-status-details-bin: google.rpc.Status{code, message, [Any{RetryInfo}]}, raw bytes. */
static void add_retry_info(gcall *gc, int code, const char *msg)
{
    int64_t ms = gc->g->retry_after_ms;
    Google__Rpc__Duration d = GOOGLE__RPC__DURATION__INIT;
    d.seconds = ms / 1000;
    d.nanos = (int32_t)((ms % 1000) * 1000000);
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    ri.retry_delay = &d;
    uint8_t ribuf[64];
    size_t rilen = google__rpc__retry_info__get_packed_size(&ri);
    TD_ASSERT(rilen <= sizeof(ribuf));
    google__rpc__retry_info__pack(&ri, ribuf);

    Google__Rpc__Any any = GOOGLE__RPC__ANY__INIT;
    any.type_url = (char *)RETRY_INFO_TYPE;
    any.value.data = ribuf;
    any.value.len = rilen;
    Google__Rpc__Any *details[1] = {&any};
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = code;
    st.message = (char *)msg;
    st.n_details = 1;
    st.details = details;
    uint8_t buf[TD_ERR_MSG_MAX + 192];
    size_t n = google__rpc__status__get_packed_size(&st);
    TD_ASSERT(n <= sizeof(buf));
    google__rpc__status__pack(&st, buf);

    gc->trailer.key = grpc_slice_from_static_string("grpc-status-details-bin");
    gc->trailer.value = grpc_slice_from_copied_buffer((const char *)buf, n);
    gc->ntrailers = 1;
}

/*
 * Send the whole answer in one batch and drop the handler's reference. With
 * code OK, gc->resp holds the response message; otherwise the answer is
 * trailers-only with msg as grpc-message.
 */
static void answer(gcall *gc, grpc_status_code code, const char *msg)
{
    if (code != GRPC_STATUS_OK && msg && msg[0]) {
        grpc_slice_unref(gc->status_msg);
        gc->status_msg = grpc_slice_from_copied_string(msg);
    }
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = 0;
    n++;
    if (code == GRPC_STATUS_OK && gc->resp) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = gc->resp;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details =
        GRPC_SLICE_LENGTH(gc->status_msg) ? &gc->status_msg : NULL;
    ops[n].data.send_status_from_server.trailing_metadata_count = gc->ntrailers;
    ops[n].data.send_status_from_server.trailing_metadata = gc->ntrailers ? &gc->trailer : NULL;
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &gc->cancelled;
    n++;

    gc->phase = P_SENDING;
    atomic_fetch_add(&gc->refs, 1); /* for the batch */
    grpc_call_error e = grpc_call_start_batch(gc->call, ops, n, gc, NULL);
    if (e != GRPC_CALL_OK) {
        /* no tag will fire; never leave the client waiting for its deadline */
        td_log(TD_LOG_ERROR, "otlp_grpc", "grpc_call_start_batch failed (%d); cancelling call",
               (int)e);
        grpc_call_cancel_with_status(gc->call, code == GRPC_STATUS_OK ? GRPC_STATUS_INTERNAL : code,
                                     msg && msg[0] ? msg : "internal error", NULL);
        atomic_fetch_sub(&gc->refs, 1);
    }
    gcall_unref(gc);
}

static void answer_error(gcall *gc, td_status st, const char *msg)
{
    int code = td_status_grpc(st);
    if (st == TD_OVERLOADED || st == TD_NOMEM || st == TD_LIMITED) {
        add_retry_info(gc, code, msg);
        TD_LOG_THROTTLED(TD_LOG_WARN, "otlp_grpc", "answered status %d: %s", code, msg);
    } else {
        TD_LOG_THROTTLED(TD_LOG_INFO, "otlp_grpc", "answered status %d: %s", code, msg);
    }
    answer(gc, (grpc_status_code)code, msg);
}

static void answer_ok(gcall *gc, const td_ingest_result *res)
{
    td_otlp_response resp =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    if (res->rejected_spans || res->message[0]) {
        ps.rejected_spans = (int64_t)res->rejected_spans;
        ps.error_message = (char *)res->message;
        resp.partial_success = &ps;
    }
    size_t n =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__get_packed_size(
            &resp);
    grpc_slice s = n ? grpc_slice_malloc(n) : grpc_empty_slice();
    if (n) {
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__pack(
            &resp, GRPC_SLICE_START_PTR(s));
    }
    gc->resp = grpc_raw_byte_buffer_create(&s, 1); /* takes its own reference */
    grpc_slice_unref(s);
    td_log(TD_LOG_DEBUG, "otlp_grpc", "Export: OK, %llu spans accepted, %llu rejected",
           (unsigned long long)res->accepted_spans, (unsigned long long)res->rejected_spans);
    answer(gc, GRPC_STATUS_OK, NULL);
}

/* x-scope-orgid from the request metadata, NUL-terminated; NULL when absent. */
static const char *tenant_header(const gcall *gc, char *buf, size_t cap)
{
    for (size_t i = 0; i < gc->md.count; i++) {
        const grpc_metadata *m = &gc->md.metadata[i];
        if (grpc_slice_str_cmp(m->key, "x-scope-orgid") != 0) {
            continue;
        }
        size_t n = GRPC_SLICE_LENGTH(m->value);
        if (n >= cap) {
            n = cap - 1; /* still longer than any valid tenant: rejected as too long */
        }
        memcpy(buf, GRPC_SLICE_START_PTR(m->value), n);
        for (size_t j = 0; j < n; j++) {
            if (buf[j] == '\0') {
                buf[j] = '\x01'; /* never let an embedded NUL shorten the ID */
            }
        }
        buf[n] = '\0';
        return buf;
    }
    return NULL;
}

/*
 * The message bb as one buffer: a single uncompressed slice is borrowed (a
 * reference in *one, which the caller unrefs); anything else is copied into
 * arena a, which the caller releases. The copy needs no growing: the size is
 * known, and core has already checked it against max-recv-size.
 */
static td_status flatten(grpc_byte_buffer *bb, td_arena *a, grpc_slice *one, const uint8_t **out,
                         size_t *len, td_err *err)
{
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
        bb->data.raw.slice_buffer.count == 1) {
        *one = grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
        *out = GRPC_SLICE_START_PTR(*one);
        *len = GRPC_SLICE_LENGTH(*one);
        return TD_OK;
    }
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb)) {
        return td_err_set(err, TD_INVALID, "cannot read the request message");
    }
    /* buffer_out: what the reader reads, decompressed if bb were still compressed */
    size_t n = grpc_byte_buffer_length(rd.buffer_out);
    if (n == 0) {
        grpc_byte_buffer_reader_destroy(&rd);
        *out = (const uint8_t *)"";
        *len = 0;
        return TD_OK;
    }
    td_arena_init(a, n, 0);
    uint8_t *p = td_arena_alloc(a, n);
    if (!p) {
        grpc_byte_buffer_reader_destroy(&rd);
        return td_err_set(err, TD_NOMEM, "out of memory reading a request of %zu bytes", n);
    }
    size_t off = 0;
    grpc_slice *s;
    /* peek: no reference per slice; bb is ours and stays unchanged while we copy */
    while (grpc_byte_buffer_reader_peek(&rd, &s)) {
        size_t sl = GRPC_SLICE_LENGTH(*s);
        TD_ASSERT(sl <= n - off);
        memcpy(p + off, GRPC_SLICE_START_PTR(*s), sl);
        off += sl;
    }
    grpc_byte_buffer_reader_destroy(&rd);
    TD_ASSERT(off == n);
    *out = p;
    *len = n;
    return TD_OK;
}

static void handle_export(gcall *gc)
{
    td_grpc_server *g = gc->g;
    const td_collector_opts *o = td__collector_opts(g->c);
    char hdr[TD_TENANT_MAX + 8];
    char tenant[TD_TENANT_MAX + 1];
    td_err err;
    td_err_init(&err);

    td_status st = td__tenant_for_write(o, tenant_header(gc, hdr, sizeof(hdr)), tenant, &err);
    td_log_ctx_push(gc->request_id, st ? NULL : tenant);
    if (st) {
        td__collector_count_reject("grpc", st, 0);
        answer_error(gc, st, err.msg);
        td_log_ctx_pop();
        return;
    }
    if (!gc->payload) {
        td__collector_count_reject("grpc", TD_INVALID, 0);
        answer_error(gc, TD_INVALID, "missing request message");
        td_log_ctx_pop();
        return;
    }

    /*
     * One contiguous buffer for the decoder: borrow a single uncompressed slice,
     * else copy the slices (a big message always comes in many) into an arena.
     * That is the copy grpc_byte_buffer_reader_readall would make, but into
     * memory the thread's chunk cache keeps, rather than a fresh mapping.
     */
    td_arena flat_arena;
    td_arena_init(&flat_arena, 0, 0);
    const uint8_t *body = NULL;
    size_t len = 0;
    grpc_slice one = grpc_empty_slice();
    st = flatten(gc->payload, &flat_arena, &one, &body, &len, &err);
    grpc_byte_buffer_destroy(gc->payload);
    gc->payload = NULL;
    if (st) {
        td__collector_count_reject("grpc", st, 0);
        answer_error(gc, st, err.msg);
        td_arena_release(&flat_arena);
        td_log_ctx_pop();
        return;
    }

    td_ingest_result res;
    st = td__collector_submit(g->c, "grpc", TD_ENC_PROTOBUF, body, len, tenant, &res, &err);
    grpc_slice_unref(one);
    td_arena_release(&flat_arena);
    if (st) {
        answer_error(gc, st, err.msg);
    } else {
        answer_ok(gc, &res);
    }
    td_log_ctx_pop();
}

static void handle_unknown(gcall *gc)
{
    char method[160];
    size_t n = GRPC_SLICE_LENGTH(gc->details.method);
    if (n >= sizeof(method)) {
        n = sizeof(method) - 1;
    }
    memcpy(method, GRPC_SLICE_START_PTR(gc->details.method), n);
    method[n] = '\0';
    char msg[200];
    snprintf(msg, sizeof(msg), "unknown method %s", method);
    td_log_ctx_push(gc->request_id, NULL);
    td__collector_count_reject("grpc", TD_UNSUPPORTED, 0);
    TD_LOG_THROTTLED(TD_LOG_INFO, "otlp_grpc", "answered UNIMPLEMENTED: %s", msg);
    answer(gc, GRPC_STATUS_UNIMPLEMENTED, msg);
    td_log_ctx_pop();
}

/* ---- workers ---- */

static void *worker(void *arg)
{
    td_grpc_server *g = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }
        gcall *gc = ev.tag;
        if (gc->phase == P_SENDING) {
            if (!ev.success || gc->cancelled) {
                td_log(TD_LOG_DEBUG, "otlp_grpc", "call %s ended without a clean finish",
                       gc->request_id);
            }
            gcall_unref(gc);
            continue;
        }
        if (!ev.success) {
            /* a pending slot failed: the server is shutting down; do not re-post */
            gcall_unref(gc);
            continue;
        }
        if (!atomic_load(&g->stopping)) {
            /* keep the number of waiting slots constant; the call we hold keeps the server alive */
            post_request(g, gc->kind);
        }
        td_log_new_request_id(gc->request_id);
        if (gc->kind == K_EXPORT) {
            handle_export(gc);
        } else {
            handle_unknown(gc);
        }
    }
    return NULL;
}

/* ---- start / stop ---- */

static void destroy_cq(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

/* Shut the server down per NOTES 6; the workers (if any) are still draining g->cq. */
static void shutdown_server(td_grpc_server *g)
{
    atomic_store(&g->stopping, true);
    grpc_server_shutdown_and_notify(g->srv, g->shutdown_cq, g);
    gpr_timespec grace = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(STOP_GRACE_MS, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(g->shutdown_cq, grace, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        td_log(TD_LOG_WARN, "otlp_grpc", "calls still running after %d ms; cancelling them",
               STOP_GRACE_MS);
        grpc_server_cancel_all_calls(g->srv);
        ev = grpc_completion_queue_next(g->shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    grpc_server_destroy(g->srv);
    g->srv = NULL;
}

td_status td__grpc_start(td_collector *c, const char *listen, td_grpc_server **out, td_err *err)
{
    *out = NULL;
    const td_collector_opts *o = td__collector_opts(c);
    pthread_once(&gpr_log_once, install_gpr_log);
    grpc_init();
    gpr_set_log_verbosity(td__log_level <= TD_LOG_DEBUG ? GPR_LOG_SEVERITY_DEBUG
                                                        : GPR_LOG_SEVERITY_ERROR);

    td_grpc_server *g = td_xcalloc(1, sizeof(*g));
    g->c = c;
    g->max_recv = (size_t)o->max_recv_bytes;
    g->retry_after_ms = o->retry_after_ms;
    g->nthreads = (size_t)o->grpc_threads;
    atomic_init(&g->stopping, false);

    int max_recv = o->max_recv_bytes > INT_MAX ? INT_MAX : (int)o->max_recv_bytes;
    grpc_arg args[] = {
        /* a second traced on the same port must fail, not share connections */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
        /* checked by core after decompression: gzip bombs stop here */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = max_recv}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET,
         {.integer = (1 << GRPC_COMPRESS_NONE) | (1 << GRPC_COMPRESS_DEFLATE) |
                     (1 << GRPC_COMPRESS_GZIP)}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_METADATA_SIZE, {.integer = MAX_METADATA_BYTES}},
    };
    grpc_channel_args ca = {sizeof(args) / sizeof(args[0]), args};
    g->srv = grpc_server_create(&ca, NULL);
    g->cq = grpc_completion_queue_create_for_next(NULL);
    g->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(g->srv, g->cq, NULL);
    grpc_server_register_completion_queue(g->srv, g->shutdown_cq, NULL);
    g->export_method = grpc_server_register_method(g->srv, EXPORT_METHOD, NULL,
                                                   GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);

    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    g->port = g->export_method ? grpc_server_add_http2_port(g->srv, listen, creds) : 0;
    grpc_server_credentials_release(creds);
    if (g->port == 0) {
        shutdown_server(g);
        destroy_cq(g->cq);
        destroy_cq(g->shutdown_cq);
        td_free(g);
        grpc_shutdown();
        return td_err_set(err, TD_IO,
                          "cannot listen on %s for OTLP/gRPC (address in use or invalid)", listen);
    }
    grpc_server_start(g->srv);

    size_t nexport = g->nthreads * PREPOST_EXPORT_PER_THREAD;
    for (size_t i = 0; i < nexport; i++) {
        post_request(g, K_EXPORT);
    }
    for (size_t i = 0; i < PREPOST_UNKNOWN; i++) {
        post_request(g, K_UNKNOWN);
    }

    g->threads = td_xcalloc(g->nthreads, sizeof(pthread_t));
    for (size_t i = 0; i < g->nthreads; i++) {
        if (pthread_create(&g->threads[i], NULL, worker, g) != 0) {
            td_log(TD_LOG_ERROR, "otlp_grpc", "cannot create gRPC worker thread %zu", i);
            g->nthreads = i;
            break;
        }
    }
    if (g->nthreads == 0) {
        /* nobody would ever drain the queue: unwind with a temporary drainer */
        pthread_t t;
        bool drain = pthread_create(&t, NULL, worker, g) == 0;
        shutdown_server(g);
        grpc_completion_queue_shutdown(g->cq);
        if (drain) {
            pthread_join(t, NULL);
        }
        grpc_completion_queue_destroy(g->cq);
        destroy_cq(g->shutdown_cq);
        td_free(g->threads);
        td_free(g);
        grpc_shutdown();
        return td_err_set(err, TD_INTERNAL, "cannot start gRPC worker threads");
    }
    td_log(TD_LOG_DEBUG, "otlp_grpc", "listening on %s (port %d, %zu threads)", listen, g->port,
           g->nthreads);
    *out = g;
    return TD_OK;
}

int td__grpc_port(const td_grpc_server *g)
{
    return g ? g->port : 0;
}

void td__grpc_stop(td_grpc_server *g)
{
    if (!g) {
        return;
    }
    /*
     * NOTES 6: shutdown_and_notify, grace period, cancel_all_calls, wait for the
     * tag, destroy the server; pending slots come back to the workers with
     * success=0 and are freed there; then shut the CQs down and join.
     */
    shutdown_server(g);
    grpc_completion_queue_shutdown(g->cq);
    for (size_t i = 0; i < g->nthreads; i++) {
        pthread_join(g->threads[i], NULL);
    }
    grpc_completion_queue_destroy(g->cq);
    destroy_cq(g->shutdown_cq);
    td_free(g->threads);
    td_free(g);
    grpc_shutdown();
}
