/*
 * collector.c - the collector's lifecycle and the ingest path shared by both
 * transports: tenant check, decode, batch build, enqueue, and the counting of
 * every outcome (STYLE rule 10).
 *
 * Memory: each request decodes into its own arena (rule 5); the only data that
 * outlives the request is the td_batch handed to the queue (the one hand-off).
 * Nothing here blocks: a full queue refuses the push and the transport answers
 * 503 / UNAVAILABLE with a retry delay.
 */
#include "collector/internal.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/queue.h"

#include <stddef.h>
#include <string.h>

#define MIB (1024LL * 1024LL)
#define GIB (1024LL * MIB)

/* ---- options ---- */

const td_opt td_collector_opt_rows[] = {
    {"grpc-listen", TD_OPT_STRING, "0.0.0.0:4317", offsetof(td_collector_opts, grpc_listen),
     "OTLP/gRPC listen address host:port (port 0 = ephemeral; empty disables).", 0, 0},
    {"http-listen", TD_OPT_STRING, "0.0.0.0:4318", offsetof(td_collector_opts, http_listen),
     "OTLP/HTTP listen address host:port (port 0 = ephemeral; empty disables).", 0, 0},
    {"max-recv-size", TD_OPT_SIZE, "64MiB", offsetof(td_collector_opts, max_recv_bytes),
     "Largest accepted ingest request, checked after decompression (larger: 413 / "
     "RESOURCE_EXHAUSTED).",
     1024, GIB},
    {"queue-max-spans", TD_OPT_INT, "1000000", offsetof(td_collector_opts, queue_max_spans),
     "Write queue bound in spans; requests beyond it get 503 / UNAVAILABLE with a retry delay.", 1,
     1000000000},
    {"queue-max-bytes", TD_OPT_SIZE, "32MiB", offsetof(td_collector_opts, queue_max_bytes),
     "Write queue bound in bytes of encoded spans (the main memory knob of ingest).", 64 * 1024,
     64 * GIB},
    {"write-batch-size", TD_OPT_SIZE, "8MiB", offsetof(td_collector_opts, write_batch_bytes),
     "Most bytes the writer hands to the store in one atomic write.", 64 * 1024, GIB},
    {"grpc-threads", TD_OPT_INT, "2", offsetof(td_collector_opts, grpc_threads),
     "Threads serving OTLP/gRPC calls (decoding runs on them).", 1, 64},
    {"http-threads", TD_OPT_INT, "2", offsetof(td_collector_opts, http_threads),
     "Threads serving OTLP/HTTP requests (decoding runs on them).", 1, 64},
    {"retry-after", TD_OPT_DURATION, "1s", offsetof(td_collector_opts, retry_after_ms),
     "Delay suggested to clients when the queue is full (Retry-After, gRPC RetryInfo).", 1,
     3600 * 1000},
};
const size_t td_collector_nopt_rows =
    sizeof(td_collector_opt_rows) / sizeof(td_collector_opt_rows[0]);

/* ---- the store as a sink ---- */

static td_status store_sink_write(void *ud, td_batch *const *batches, size_t n, td_err *err)
{
    return td_store_write(ud, batches, n, err);
}

td_sink td_sink_store(td_store *s)
{
    return (td_sink){store_sink_write, s};
}

/* ---- lifecycle ---- */

typedef enum { C_NEW, C_STARTED, C_STOPPED } c_state;

struct td_collector {
    td_collector_opts opts; /* private copy; strings owned */
    td_sink sink;
    td_queue *q;
    td_writer *writer;
    td_grpc_server *grpc;
    td_http_server *http;
    int grpc_port, http_port;
    c_state state;
};

static int64_t gauge_queue(void *ud, int which)
{
    td_queue_stats s;
    td_queue_get_stats(((td_collector *)ud)->q, &s);
    switch (which) {
    case 0:
        return (int64_t)s.spans;
    case 1:
        return (int64_t)s.bytes;
    case 2:
        return (int64_t)s.items;
    case 3:
        return (int64_t)s.max_spans;
    default:
        return (int64_t)s.max_bytes;
    }
}
static int64_t gauge_spans(void *ud)
{
    return gauge_queue(ud, 0);
}
static int64_t gauge_bytes(void *ud)
{
    return gauge_queue(ud, 1);
}
static int64_t gauge_batches(void *ud)
{
    return gauge_queue(ud, 2);
}
static int64_t gauge_cap_spans(void *ud)
{
    return gauge_queue(ud, 3);
}
static int64_t gauge_cap_bytes(void *ud)
{
    return gauge_queue(ud, 4);
}

/* on=false unregisters; the registry only drops a registration made with the same ud. */
static void register_gauges(td_collector *c, bool on)
{
    td_metric_gauge_fn(TD_M_QUEUE_SPANS, on ? gauge_spans : NULL, c);
    td_metric_gauge_fn(TD_M_QUEUE_BYTES, on ? gauge_bytes : NULL, c);
    td_metric_gauge_fn(TD_M_QUEUE_BATCHES, on ? gauge_batches : NULL, c);
    td_metric_gauge_fn(TD_M_QUEUE_CAP_SPANS, on ? gauge_cap_spans : NULL, c);
    td_metric_gauge_fn(TD_M_QUEUE_CAP_BYTES, on ? gauge_cap_bytes : NULL, c);
}

td_status td_collector_new(const td_collector_opts *o, td_sink sink, td_collector **out,
                           td_err *err)
{
    *out = NULL;
    if (!sink.write) {
        return td_err_set(err, TD_INVALID, "collector: no sink");
    }
    if (o->queue_max_spans == 0 || o->queue_max_bytes == 0 || o->max_recv_bytes == 0 ||
        o->write_batch_bytes == 0 || o->grpc_threads < 1 || o->http_threads < 1) {
        return td_err_set(err, TD_INVALID,
                          "collector: queue bounds, max-recv-size, write-batch-size and thread "
                          "counts must be positive");
    }
    if (o->max_recv_bytes > (uint64_t)GIB) {
        return td_err_set(err, TD_INVALID, "collector: max-recv-size must be at most 1GiB");
    }
    td_collector *c = td_xcalloc(1, sizeof(*c));
    c->opts = *o;
    c->opts.grpc_listen = td_xstrdup(o->grpc_listen ? o->grpc_listen : "");
    c->opts.http_listen = td_xstrdup(o->http_listen ? o->http_listen : "");
    c->sink = sink;
    c->q = td_queue_new((size_t)o->queue_max_spans, (size_t)o->queue_max_bytes);
    c->state = C_NEW;
    register_gauges(c, true);
    *out = c;
    return TD_OK;
}

/* Stop whatever of listeners/writer is running; leaves the queue closed and empty. */
static void stop_all(td_collector *c)
{
    /* Listeners first: in-flight requests finish and enqueue, nothing new arrives. */
    if (c->http) {
        td__http_stop(c->http);
        c->http = NULL;
    }
    if (c->grpc) {
        td__grpc_stop(c->grpc);
        c->grpc = NULL;
    }
    td_queue_close(c->q);
    if (c->writer) {
        /* drains everything accepted into the sink before returning */
        td__writer_stop(c->writer);
        c->writer = NULL;
    }
}

td_status td_collector_start(td_collector *c, td_err *err)
{
    if (c->state != C_NEW) {
        return td_err_set(err, TD_INTERNAL, "collector: already started");
    }
    c->writer = td__writer_start(c->q, c->sink, (size_t)c->opts.write_batch_bytes);
    if (!c->writer) {
        c->state = C_STOPPED;
        td_queue_close(c->q);
        return td_err_set(err, TD_INTERNAL, "collector: cannot start the writer thread");
    }
    td_status st = TD_OK;
    if (c->opts.grpc_listen[0]) {
        st = td__grpc_start(c, c->opts.grpc_listen, &c->grpc, err);
        if (!st) {
            c->grpc_port = td__grpc_port(c->grpc);
        }
    }
    if (!st && c->opts.http_listen[0]) {
        st = td__http_start(c, c->opts.http_listen, &c->http, err);
        if (!st) {
            c->http_port = td__http_port(c->http);
        }
    }
    if (st) {
        stop_all(c);
        c->grpc_port = c->http_port = 0;
        c->state = C_STOPPED;
        return st;
    }
    c->state = C_STARTED;
    return TD_OK;
}

void td_collector_stop(td_collector *c)
{
    if (!c || c->state == C_STOPPED) {
        return;
    }
    if (c->state == C_NEW) {
        /*
         * Never started, but requests may have been submitted directly (tests):
         * run a writer just long enough to drain them into the sink.
         */
        c->writer = td__writer_start(c->q, c->sink, (size_t)c->opts.write_batch_bytes);
    }
    stop_all(c);
    c->state = C_STOPPED;
}

void td_collector_free(td_collector *c)
{
    if (!c) {
        return;
    }
    td_collector_stop(c);
    register_gauges(c, false);
    td_qitem *left = NULL;
    td_queue_free(c->q, &left);
    while (left) {
        /* only if the writer could not run at all; nothing was acknowledged as written */
        td_qitem *next = left->next;
        td_batch_free((td_batch *)left);
        left = next;
    }
    td_free(c->opts.grpc_listen);
    td_free(c->opts.http_listen);
    td_free(c);
}

int td_collector_grpc_port(const td_collector *c)
{
    return c ? c->grpc_port : 0;
}

int td_collector_http_port(const td_collector *c)
{
    return c ? c->http_port : 0;
}

const td_collector_opts *td__collector_opts(const td_collector *c)
{
    return &c->opts;
}

/* ---- counting ---- */

static const char *outcome_label(td_status st, const td_ingest_result *res)
{
    switch (st) {
    case TD_OK:
        return res && res->rejected_spans ? "partial" : "ok";
    case TD_INVALID:
        return "invalid";
    case TD_TOO_LARGE:
        return "too_large";
    case TD_OVERLOADED:
    case TD_LIMITED:
        return "overloaded";
    case TD_UNAUTHENTICATED:
        return "unauthenticated";
    case TD_UNSUPPORTED:
    case TD_METHOD:
        return "unsupported";
    default:
        return "error";
    }
}

/* Drop reason for the bytes of a refused request (spans are counted separately). */
static const char *drop_reason(td_status st)
{
    switch (st) {
    case TD_OVERLOADED:
    case TD_LIMITED:
        return "queue_full";
    case TD_INVALID:
        return "invalid";
    case TD_TOO_LARGE:
        return "too_large";
    case TD_UNAUTHENTICATED:
        return "unauthenticated";
    case TD_UNSUPPORTED:
    case TD_METHOD:
        return "unsupported";
    default:
        return "error";
    }
}

void td__collector_count_reject(const char *protocol, td_status st, size_t bytes)
{
    td_count(TD_M_INGEST_REQUESTS, 1, protocol, outcome_label(st, NULL));
    if (st != TD_OK && bytes) {
        td_count(TD_M_BYTES_DROPPED, bytes, drop_reason(st), NULL);
    }
}

/* ---- the shared ingest path ---- */

/*
 * Replace every byte that is not part of a well-formed UTF-8 sequence with '?',
 * in place: messages go into protobuf strings and JSON, both of which must be
 * UTF-8, and decoder messages may quote client bytes.
 */
static void utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t need = c < 0x80                   ? 0
                      : (c >= 0xc2 && c <= 0xdf) ? 1
                      : (c >= 0xe0 && c <= 0xef) ? 2
                      : (c >= 0xf0 && c <= 0xf4) ? 3
                                                 : SIZE_MAX;
        size_t i = 1;
        if (need != SIZE_MAX) {
            while (i <= need && (p[i] & 0xc0) == 0x80) {
                i++;
            }
        }
        if (need == SIZE_MAX || i <= need) {
            *p++ = '?';
            continue;
        }
        p += need + 1;
    }
}

/* Arena sizing: 64 KiB chunks at least; a decoded tree is ~4x the wire size. */
#define ARENA_MIN_CHUNK (64 * 1024)
#define ARENA_MAX_CHUNK (1024 * 1024)
#define ARENA_LIMIT_FACTOR 8
#define ARENA_MIN_LIMIT (4 * 1024 * 1024)

td_status td__collector_submit(td_collector *c, const char *protocol, td_encoding enc,
                               const uint8_t *body, size_t len, const char *tenant,
                               td_ingest_result *res, td_err *err)
{
    memset(res, 0, sizeof(*res));
    td_status st;
    if (len > c->opts.max_recv_bytes) {
        st = td_err_set(err, TD_TOO_LARGE, "request of %zu bytes exceeds the limit of %llu bytes",
                        len, (unsigned long long)c->opts.max_recv_bytes);
        td__collector_count_reject(protocol, st, len);
        return st;
    }

    size_t chunk =
        len < ARENA_MIN_CHUNK ? ARENA_MIN_CHUNK : (len > ARENA_MAX_CHUNK ? ARENA_MAX_CHUNK : len);
    size_t limit;
    if (!td_size_mul((size_t)c->opts.max_recv_bytes, ARENA_LIMIT_FACTOR, &limit)) {
        limit = SIZE_MAX;
    }
    if (limit < ARENA_MIN_LIMIT) {
        limit = ARENA_MIN_LIMIT;
    }
    td_arena arena;
    td_arena_init(&arena, chunk, limit);

    td_otlp_request *req = NULL;
    td_batch *batch = NULL;
    if (enc == TD_ENC_JSON) {
        st = td_otlp_decode_json((const char *)body, len, &arena, &req, err);
    } else {
        st = td_otlp_decode_pb(body, len, &arena, &req, err);
    }
    if (!st) {
        st = td_batch_build(req, tenant, &arena, &batch, res, err);
    }
    /* the decoded tree is no longer needed; the batch is its own heap block */
    td_arena_release(&arena);

    size_t queued_spans = 0;
    if (!st && batch) {
        queued_spans = batch->q.spans;
        st = td_queue_push(c->q, &batch->q, err);
        if (st == TD_INTERNAL) {
            /* queue closed: we are shutting down; the client should retry elsewhere/later */
            st = td_err_set(err, TD_OVERLOADED, "server is shutting down, retry later");
        }
        if (st) {
            /* the push refused the whole batch: nothing of this request was enqueued */
            td_batch_free(batch);
            batch = NULL;
        }
    }

    utf8_sanitize(res->message);
    if (err) {
        utf8_sanitize(err->msg);
    }
    if (res->rejected_spans) {
        td_count(TD_M_SPANS_DROPPED, res->rejected_spans, "invalid_id", NULL);
    }
    if (st == TD_OK) {
        td_count(TD_M_INGEST_REQUESTS, 1, protocol, outcome_label(st, res));
        if (res->accepted_spans) {
            td_count(TD_M_SPANS_ACCEPTED, res->accepted_spans, protocol, NULL);
        }
        td_count(TD_M_BYTES_ACCEPTED, len, protocol, NULL);
        return TD_OK;
    }
    if (queued_spans) {
        td_count(TD_M_SPANS_DROPPED, queued_spans, drop_reason(st), NULL);
    }
    res->accepted_spans = 0;
    td__collector_count_reject(protocol, st, len);
    if (st == TD_OVERLOADED) {
        TD_LOG_THROTTLED(TD_LOG_WARN, "collector", "refused %s request of %zu spans: %s", protocol,
                         queued_spans, err ? err->msg : "queue full");
    }
    return st;
}

/* ---- tenants (API-CONTRACT 9) ---- */

static bool tenant_char_ok(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
        return true;
    }
    /* the dskit set: each listed character on its own (not a range) */
    return ch == '!' || ch == '-' || ch == '_' || ch == '.' || ch == '*' || ch == '\'' ||
           ch == '(' || ch == ')';
}

td_status td__tenant_for_write(const td_collector_opts *o, const char *header,
                               char out[TD_TENANT_MAX + 1], td_err *err)
{
    if (!o->multitenancy) {
        memcpy(out, TD_DEFAULT_TENANT, sizeof(TD_DEFAULT_TENANT));
        return TD_OK;
    }
    out[0] = '\0';
    if (!header || !header[0]) {
        return td_err_set(err, TD_UNAUTHENTICATED, "no org id");
    }
    if (strchr(header, '|')) {
        return td_err_set(err, TD_INVALID,
                          "multiple org IDs present: writes take exactly one tenant");
    }
    size_t n = strlen(header);
    if (n > TD_TENANT_MAX) {
        return td_err_set(err, TD_INVALID, "tenant ID is too long: max %d characters",
                          TD_TENANT_MAX);
    }
    if (strcmp(header, ".") == 0 || strcmp(header, "..") == 0) {
        return td_err_set(err, TD_INVALID, "tenant ID is '.' or '..'");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)header[i];
        if (!tenant_char_ok(ch)) {
            if (ch >= 0x21 && ch < 0x7f) {
                return td_err_set(err, TD_INVALID, "tenant ID contains unsupported character '%c'",
                                  ch);
            }
            return td_err_set(err, TD_INVALID, "tenant ID contains unsupported character 0x%02x",
                              ch);
        }
    }
    memcpy(out, header, n + 1);
    return TD_OK;
}
