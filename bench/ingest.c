/*
 * ingest.c - bench_ingest: an OTLP trace load generator for traced (or any OTLP
 * receiver).
 *
 *   bench_ingest --payload FILE.pb --proto grpc|http [--gzip] --target 127.0.0.1:PORT
 *                --connections N --duration SECONDS [--requests N] [--json-out FILE]
 *                [--pid PID] [--inflight K] [--rate REQ/S] [--warmup S] [--timeout-ms MS]
 *                [--tenant ID] [--gzip-mode template|fresh] [--gzip-level 1..9]
 *                [--refused-backoff-ms MS] [--progress SECONDS]
 *
 * Every request carries fresh traces: the payload is indexed once (payload.h) and
 * each request XORs all trace/span IDs with a pattern derived from its sequence
 * number, touching only the ID bytes.
 *
 * gRPC: N channels (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL=1, so N TCP connections),
 * each driven by its own thread and completion queue with --inflight concurrent
 * unary Export calls (default 4). HTTP: N keep-alive HTTP/1.1 connections, one
 * blocking thread each, POST /v1/traces application/x-protobuf.
 *
 * --gzip, default "template" mode: the request is gzipped by patching a gzip
 * template (payload.h) - no compression work per request, only a copy and a
 * CRC-32, so the generator stays cheap and IDs stay fresh. gRPC sends those bytes
 * as an already-compressed message (grpc_raw_compressed_byte_buffer_create on a
 * channel whose default algorithm is gzip). "fresh" mode compresses every request
 * instead: HTTP with zlib level 1 (td_gzip), gRPC by core's own gzip
 * (GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM); it costs client CPU, which on a
 * small machine is taken from the server under test.
 *
 * Accounting: ok = HTTP 2xx / gRPC OK; refused = HTTP 503 or 429 / gRPC
 * UNAVAILABLE sent by the server (the server shedding load; core's locally made
 * UNAVAILABLE for a connection failure carries no metadata and is a failure);
 * failed = everything else, including
 * transport errors and timeouts. After a refusal that connection (HTTP) or call
 * slot (gRPC) pauses --refused-backoff-ms (100) before its next request, as an
 * exporter would; the refused data is not resent. spans/s counts spans of ok requests minus the
 * spans the server reported as rejected in partial_success. Wire bytes are the
 * request bytes this process wrote: HTTP request line + headers + body; gRPC
 * message + its 5-byte frame prefix (HTTP/2 headers not included; in fresh gzip
 * mode core compresses, so the size is the gzip size of the payload measured once
 * at start-up). Latency is from the first byte sent to the full response, for ok
 * requests. With --pid the server's peak RSS (VmHWM, and the highest VmRSS sampled
 * every 100 ms during the run) and its CPU use are read from /proc.
 */
#include "payload.h"

#include "core/buf.h"
#include "core/gzip.h"
#include "core/mem.h"
#include "proto/proto.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define EXPORT_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
/* Status counters: HTTP statuses, gRPC codes 0..16, transport errors at 599. */
#define MAX_CODES 600
#define CODE_TRANSPORT 599
#define MAX_CONNS 1024
#define MAX_INFLIGHT 64

typedef enum { PROTO_GRPC, PROTO_HTTP } proto_kind;
typedef enum { GZ_TEMPLATE, GZ_FRESH } gzip_mode;

typedef struct opts {
    const char *payload;
    const char *target;
    const char *json_out;
    const char *tenant;
    proto_kind proto;
    bool gzip;
    gzip_mode gzmode;
    int gzip_level;
    int conns;
    int inflight;
    double duration_s;
    double warmup_s;
    uint64_t max_requests; /* 0 = unlimited */
    int timeout_ms;
    double rate;       /* total requests/s, 0 = as fast as possible */
    int backoff_ms;    /* pause of a connection / call slot after a refusal */
    double progress_s; /* print a progress line this often (0 = never) */
    long pid;
} opts;

/* What one connection measured; merged at the end. */
typedef struct stats {
    uint64_t ok, refused, failed, warmup;
    uint64_t spans_ok, spans_rejected;
    uint64_t wire_bytes, payload_bytes;
    uint32_t *lat_us;
    size_t nlat, cap;
    uint64_t codes[MAX_CODES];
    char last_error[160];
} stats;

/* Shared, read-mostly run state. Threads meet only at the atomics. */
typedef struct run {
    const opts *o;
    td_bench_payload pl;
    td_bench_gztpl gz;               /* valid when gzip && template mode */
    size_t fresh_gz_len;             /* gzip size of the payload (fresh-mode estimate) */
    uint64_t seed;                   /* per-run base of the ID keys */
    uint64_t t_start, t_warm, t_end; /* monotonic ns */
    atomic_uint_fast64_t issued;
    atomic_uint_fast64_t live_spans, live_refused, live_failed; /* for --progress */
    atomic_bool stop;
    struct sockaddr_in addr;
    const char *host_hdr;
} run;

typedef struct conn_ctx {
    run *r;
    int idx;
    stats st;
    uint64_t t_last_done;
    pthread_t th;
} conn_ctx;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Claim the next request number, or false when the run is over. */
static bool claim(run *r, uint64_t *idx)
{
    if (atomic_load(&r->stop) || now_ns() >= r->t_end) {
        return false;
    }
    uint64_t i = atomic_fetch_add(&r->issued, 1);
    if (r->o->max_requests && i >= r->o->max_requests) {
        return false;
    }
    *idx = i;
    return true;
}

static void lat_push(stats *s, uint64_t ns)
{
    if (s->nlat == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->lat_us = td_xrealloc(s->lat_us, s->cap * sizeof(*s->lat_us));
    }
    uint64_t us = ns / 1000;
    s->lat_us[s->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

typedef enum { OUT_OK, OUT_REFUSED, OUT_FAILED } outcome;

/* Record one finished request (requests finishing inside the warm-up are only counted as such). */
static void record(conn_ctx *c, uint64_t t0, uint64_t t1, outcome oc, int code, uint64_t rejected,
                   size_t wire)
{
    stats *s = &c->st;
    c->t_last_done = t1;
    if (code < 0 || code >= MAX_CODES) {
        code = CODE_TRANSPORT;
    }
    if (t1 < c->r->t_warm) {
        s->warmup++;
        return;
    }
    s->codes[code]++;
    s->wire_bytes += wire;
    s->payload_bytes += c->r->pl.len;
    switch (oc) {
    case OUT_OK:
        atomic_fetch_add_explicit(&c->r->live_spans, c->r->pl.nspans - rejected,
                                  memory_order_relaxed);
        s->ok++;
        s->spans_ok += c->r->pl.nspans;
        s->spans_rejected += rejected;
        lat_push(s, t1 - t0);
        break;
    case OUT_REFUSED:
        atomic_fetch_add_explicit(&c->r->live_refused, 1, memory_order_relaxed);
        s->refused++;
        break;
    case OUT_FAILED:
        atomic_fetch_add_explicit(&c->r->live_failed, 1, memory_order_relaxed);
        s->failed++;
        break;
    }
}

/* partial_success.rejected_spans of a protobuf ExportTraceServiceResponse (0 if none). */
static uint64_t rejected_from_response(const uint8_t *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    td_otlp_response *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(NULL, n,
                                                                                          p);
    if (!resp) {
        return 0;
    }
    uint64_t rej = 0;
    if (resp->partial_success && resp->partial_success->rejected_spans > 0) {
        rej = (uint64_t)resp->partial_success->rejected_spans;
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(resp,
                                                                                             NULL);
    return rej;
}

/* Pacing: each connection gets rate/conns requests per second on a fixed schedule. */
static void pace(const run *r, uint64_t *next_at)
{
    if (r->o->rate <= 0) {
        return;
    }
    uint64_t interval = (uint64_t)(1e9 * r->o->conns / r->o->rate);
    uint64_t now = now_ns();
    if (*next_at == 0 || now > *next_at + 1000000000ull) {
        *next_at = now; /* start, or fell far behind: do not burst to catch up */
    }
    if (*next_at > now) {
        sleep_ns(*next_at - now);
    }
    *next_at += interval;
}

/* ======================= HTTP/1.1 ======================= */

typedef struct http_conn {
    int fd;
    char rbuf[16384];
    size_t rlen;
} http_conn;

static int http_connect(run *r, http_conn *h)
{
    h->rlen = 0;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {r->o->timeout_ms / 1000, (r->o->timeout_ms % 1000) * 1000};
    setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(h->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(h->fd, (const struct sockaddr *)&r->addr, sizeof(r->addr)) != 0) {
        close(h->fd);
        h->fd = -1;
        return -1;
    }
    return 0;
}

static void http_close(http_conn *h)
{
    if (h->fd >= 0) {
        close(h->fd);
    }
    h->fd = -1;
    h->rlen = 0;
}

static int send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Read more bytes into rbuf; -1 on error/EOF/timeout or when the buffer is full. */
static int http_fill(http_conn *h)
{
    if (h->rlen >= sizeof(h->rbuf)) {
        return -1;
    }
    for (;;) {
        ssize_t n = recv(h->fd, h->rbuf + h->rlen, sizeof(h->rbuf) - h->rlen, 0);
        if (n > 0) {
            h->rlen += (size_t)n;
            return 0;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return -1;
    }
}

/* Take n body bytes (some may be in rbuf) appending up to 1 MiB of them to body. */
static int http_take(http_conn *h, size_t *pos, size_t n, td_buf *body)
{
    while (n > 0) {
        if (*pos == h->rlen) {
            h->rlen = *pos = 0;
            if (http_fill(h) != 0) {
                return -1;
            }
        }
        size_t k = h->rlen - *pos;
        if (k > n) {
            k = n;
        }
        if (body->len + k <= (1u << 20)) {
            td_buf_add(body, h->rbuf + *pos, k);
        }
        *pos += k;
        n -= k;
    }
    return 0;
}

/* Read one line ending in CRLF starting at *pos (refilling as needed); returns its start. */
static char *http_line(http_conn *h, size_t *pos)
{
    for (;;) {
        char *s = h->rbuf + *pos;
        char *e = memmem(s, h->rlen - *pos, "\r\n", 2);
        if (e) {
            *e = '\0';
            *pos = (size_t)(e - h->rbuf) + 2;
            return s;
        }
        if (*pos > 0) { /* compact so the line can grow */
            memmove(h->rbuf, h->rbuf + *pos, h->rlen - *pos);
            h->rlen -= *pos;
            *pos = 0;
        }
        if (http_fill(h) != 0) {
            return NULL;
        }
    }
}

/* Read one response; status and body out, *closing when the server ends the connection. */
static int http_response(http_conn *h, int *status, td_buf *body, bool *closing)
{
    size_t pos = 0;
    bool chunked = false;
    long long clen = -1;
    *closing = false;
    td_buf_reset(body);
    char *line = http_line(h, &pos);
    if (!line || strncmp(line, "HTTP/1.", 7) != 0 || strlen(line) < 12) {
        return -1;
    }
    *status = atoi(line + 9);
    if (strncmp(line, "HTTP/1.0", 8) == 0) {
        *closing = true;
    }
    while ((line = http_line(h, &pos)) != NULL && *line) {
        char *colon = strchr(line, ':');
        if (!colon) {
            continue;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        if (!strcasecmp(line, "content-length")) {
            clen = atoll(v);
        } else if (!strcasecmp(line, "transfer-encoding") && strcasestr(v, "chunked")) {
            chunked = true;
        } else if (!strcasecmp(line, "connection") && strcasestr(v, "close")) {
            *closing = true;
        }
    }
    if (!line) {
        return -1;
    }
    if (chunked) {
        for (;;) {
            char *sz = http_line(h, &pos);
            if (!sz) {
                return -1;
            }
            size_t n = (size_t)strtoull(sz, NULL, 16);
            if (n == 0) {
                /* trailers until the empty line */
                while ((line = http_line(h, &pos)) != NULL && *line) {
                }
                if (!line) {
                    return -1;
                }
                break;
            }
            if (http_take(h, &pos, n, body) != 0 || !http_line(h, &pos)) {
                return -1;
            }
        }
    } else if (clen > 0) {
        if (http_take(h, &pos, (size_t)clen, body) != 0) {
            return -1;
        }
    } else if (clen < 0 && *status >= 200 && *status != 204 && *status != 304) {
        *closing = true; /* body until EOF: not worth reading, just reconnect */
    }
    /* keep anything past this response (there should be nothing: no pipelining) */
    memmove(h->rbuf, h->rbuf + pos, h->rlen - pos);
    h->rlen -= pos;
    return 0;
}

static void *http_thread(void *arg)
{
    conn_ctx *c = arg;
    run *r = c->r;
    const opts *o = r->o;
    http_conn h = {.fd = -1};
    uint8_t *raw = td_xmalloc(r->pl.len);
    memcpy(raw, r->pl.data, r->pl.len);
    uint8_t *gzb = NULL;
    if (o->gzip && o->gzmode == GZ_TEMPLATE) {
        gzb = td_xmalloc(r->gz.len);
        memcpy(gzb, r->gz.data, r->gz.len);
    }
    td_buf fresh, body;
    td_buf_init(&fresh, o->gzip ? r->pl.len / 4 : 0);
    td_buf_init(&body, 256);
    char hdr[512];
    uint64_t next_at = 0, idx;

    while (claim(r, &idx)) {
        pace(r, &next_at);
        if (h.fd < 0 && http_connect(r, &h) != 0) {
            uint64_t t = now_ns();
            snprintf(c->st.last_error, sizeof(c->st.last_error), "connect: %s", strerror(errno));
            record(c, t, t, OUT_FAILED, CODE_TRANSPORT, 0, 0);
            sleep_ns(100000000ull); /* 100 ms before trying again */
            continue;
        }
        td_bench_ids ids;
        td_bench_ids_make(r->seed + idx, &ids);
        const uint8_t *bp;
        size_t blen;
        if (!o->gzip) {
            td_bench_patch(&r->pl, raw, NULL, NULL, &ids);
            bp = raw;
            blen = r->pl.len;
        } else if (o->gzmode == GZ_TEMPLATE) {
            td_bench_gztpl_patch(&r->pl, &r->gz, gzb, raw, &ids);
            bp = gzb;
            blen = r->gz.len;
        } else {
            td_bench_patch(&r->pl, raw, NULL, NULL, &ids);
            td_buf_reset(&fresh);
            td_err err;
            if (td_gzip(raw, r->pl.len, &fresh, &err) != TD_OK) {
                fprintf(stderr, "bench_ingest: gzip failed: %s\n", err.msg);
                abort();
            }
            bp = (const uint8_t *)fresh.data;
            blen = fresh.len;
        }
        char tenant_hdr[200] = "";
        if (o->tenant) {
            snprintf(tenant_hdr, sizeof(tenant_hdr), "X-Scope-OrgID: %s\r\n", o->tenant);
        }
        int hl =
            snprintf(hdr, sizeof(hdr),
                     "POST /v1/traces HTTP/1.1\r\nHost: %s\r\nUser-Agent: traced-bench/1\r\n"
                     "Content-Type: application/x-protobuf\r\n%s%sContent-Length: %zu\r\n\r\n",
                     r->host_hdr, o->gzip ? "Content-Encoding: gzip\r\n" : "", tenant_hdr, blen);
        struct iovec iov[2] = {{hdr, (size_t)hl}, {(void *)bp, blen}};
        uint64_t t0 = now_ns();
        int status = 0;
        bool closing = false;
        errno = 0;
        if (send_all(h.fd, iov, 2) != 0 || http_response(&h, &status, &body, &closing) != 0) {
            uint64_t t1 = now_ns();
            snprintf(c->st.last_error, sizeof(c->st.last_error), "http exchange: %s",
                     errno ? strerror(errno) : "connection closed or bad response");
            record(c, t0, t1, OUT_FAILED, CODE_TRANSPORT, 0, (size_t)hl + blen);
            http_close(&h);
            continue;
        }
        uint64_t t1 = now_ns();
        if (status >= 200 && status < 300) {
            record(c, t0, t1, OUT_OK, status,
                   rejected_from_response((const uint8_t *)body.data, body.len), (size_t)hl + blen);
        } else if (status == 503 || status == 429) {
            record(c, t0, t1, OUT_REFUSED, status, 0, (size_t)hl + blen);
            sleep_ns((uint64_t)o->backoff_ms * 1000000ull);
        } else {
            snprintf(c->st.last_error, sizeof(c->st.last_error), "HTTP %d: %.120s", status,
                     body.data);
            record(c, t0, t1, OUT_FAILED, status, 0, (size_t)hl + blen);
        }
        if (closing) {
            http_close(&h);
        }
    }
    http_close(&h);
    td_buf_release(&fresh);
    td_buf_release(&body);
    td_free(raw);
    td_free(gzb);
    return NULL;
}

/* ======================= gRPC ======================= */

typedef struct grpc_slot {
    conn_ctx *c;
    grpc_call *call;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    grpc_metadata md;
    uint8_t *raw; /* template-gzip scratch for the CRC */
    uint64_t t0;
    uint64_t not_before; /* backoff after a refusal */
    size_t wire;
    bool busy;
} grpc_slot;

static bool grpc_slot_start(grpc_slot *s, grpc_channel *ch, void *method, grpc_completion_queue *cq)
{
    conn_ctx *c = s->c;
    run *r = c->r;
    const opts *o = r->o;
    uint64_t idx;
    if (!claim(r, &idx)) {
        return false;
    }
    td_bench_ids ids;
    td_bench_ids_make(r->seed + idx, &ids);
    grpc_slice sl;
    if (o->gzip && o->gzmode == GZ_TEMPLATE) {
        sl = grpc_slice_malloc(r->gz.len);
        uint8_t *d = GRPC_SLICE_START_PTR(sl);
        memcpy(d, r->gz.data, r->gz.len);
        td_bench_gztpl_patch(&r->pl, &r->gz, d, s->raw, &ids);
        s->send_bb = grpc_raw_compressed_byte_buffer_create(&sl, 1, GRPC_COMPRESS_GZIP);
        s->wire = r->gz.len + 5;
    } else {
        sl = grpc_slice_malloc(r->pl.len);
        uint8_t *d = GRPC_SLICE_START_PTR(sl);
        memcpy(d, r->pl.data, r->pl.len);
        td_bench_patch(&r->pl, d, NULL, NULL, &ids);
        s->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
        s->wire = (o->gzip ? r->fresh_gz_len : r->pl.len) + 5;
    }
    grpc_slice_unref(sl);

    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_millis(o->timeout_ms, GPR_TIMESPAN));
    s->call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
                                                  deadline, NULL);
    grpc_metadata_array_init(&s->md_init);
    grpc_metadata_array_init(&s->md_trail);
    s->recv_bb = NULL;
    s->details = grpc_empty_slice();
    s->status = GRPC_STATUS_UNKNOWN;

    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (o->tenant) {
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &s->md;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md_init;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->md_trail;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;
    s->t0 = now_ns();
    grpc_call_error e = grpc_call_start_batch(s->call, ops, 6, s, NULL);
    if (e != GRPC_CALL_OK) {
        /* a bug in this program, never a server behaviour */
        fprintf(stderr, "bench_ingest: grpc_call_start_batch failed: %d\n", (int)e);
        abort();
    }
    s->busy = true;
    return true;
}

static void grpc_slot_finish(grpc_slot *s, bool success)
{
    conn_ctx *c = s->c;
    uint64_t t1 = now_ns();
    int code = success ? (int)s->status : CODE_TRANSPORT;
    if (success && s->status == GRPC_STATUS_OK) {
        uint64_t rej = 0;
        if (s->recv_bb) {
            grpc_byte_buffer_reader rd;
            if (grpc_byte_buffer_reader_init(&rd, s->recv_bb)) {
                grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
                rej = rejected_from_response(GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
                grpc_slice_unref(all);
                grpc_byte_buffer_reader_destroy(&rd);
            }
        }
        record(c, s->t0, t1, OUT_OK, code, rej, s->wire);
    } else if (success && s->status == GRPC_STATUS_UNAVAILABLE &&
               (s->md_trail.count > 0 || s->md_init.count > 0)) {
        /* shed by the server (it answered, with RetryInfo in traced's case); core's own
         * UNAVAILABLE for a failed connection carries no metadata and counts as failed */
        record(c, s->t0, t1, OUT_REFUSED, code, 0, s->wire);
        s->not_before = t1 + (uint64_t)c->r->o->backoff_ms * 1000000ull;
    } else {
        char *msg = grpc_slice_to_c_string(s->details);
        snprintf(c->st.last_error, sizeof(c->st.last_error), "grpc status %d: %.120s", code, msg);
        gpr_free(msg);
        record(c, s->t0, t1, OUT_FAILED, code, 0, s->wire);
        /* do not spin on a dead connection either */
        s->not_before = t1 + (uint64_t)c->r->o->backoff_ms * 1000000ull;
    }
    grpc_metadata_array_destroy(&s->md_init);
    grpc_metadata_array_destroy(&s->md_trail);
    grpc_slice_unref(s->details);
    grpc_byte_buffer_destroy(s->send_bb);
    if (s->recv_bb) {
        grpc_byte_buffer_destroy(s->recv_bb);
    }
    grpc_call_unref(s->call);
    s->call = NULL;
    s->send_bb = s->recv_bb = NULL;
    s->busy = false;
}

static void *grpc_thread(void *arg)
{
    conn_ctx *c = arg;
    run *r = c->r;
    const opts *o = r->o;

    grpc_arg args[4];
    int nargs = 0;
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[nargs++].value.integer = 1;
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_ENABLE_RETRIES; /* no retry buffering of 235 KB messages */
    args[nargs++].value.integer = 0;
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[nargs++].value.integer = 4 << 20;
    if (o->gzip) {
        args[nargs].type = GRPC_ARG_INTEGER;
        args[nargs].key = (char *)GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM;
        args[nargs++].value.integer = GRPC_COMPRESS_GZIP;
    }
    grpc_channel_args cargs = {(size_t)nargs, args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(o->target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    void *method = grpc_channel_register_call(ch, EXPORT_METHOD, NULL, NULL);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);

    int k = o->inflight;
    grpc_slot *slots = td_xcalloc((size_t)k, sizeof(*slots));
    for (int i = 0; i < k; i++) {
        slots[i].c = c;
        if (o->tenant) {
            slots[i].md.key = grpc_slice_from_static_string("x-scope-orgid");
            slots[i].md.value = grpc_slice_from_copied_string(o->tenant);
        }
        if (o->gzip && o->gzmode == GZ_TEMPLATE) {
            slots[i].raw = td_xmalloc(r->pl.len);
            memcpy(slots[i].raw, r->pl.data, r->pl.len);
        }
    }

    uint64_t next_at = 0;
    int busy = 0;
    bool more = true;
    for (;;) {
        /* start calls on free slots (paced when --rate is set) */
        uint64_t soonest = UINT64_MAX; /* earliest end of a refusal backoff */
        for (int i = 0; i < k && more; i++) {
            if (slots[i].busy) {
                continue;
            }
            if (slots[i].not_before > now_ns()) {
                if (slots[i].not_before < soonest) {
                    soonest = slots[i].not_before;
                }
                continue;
            }
            if (o->rate > 0) {
                uint64_t now = now_ns();
                if (next_at == 0 || now > next_at + 1000000000ull) {
                    next_at = now;
                }
                if (next_at > now) {
                    break; /* not yet: wait on the CQ until next_at */
                }
                next_at += (uint64_t)(1e9 * o->conns / o->rate);
            }
            if (grpc_slot_start(&slots[i], ch, method, cq)) {
                busy++;
            } else {
                more = false;
            }
        }
        if (!more && busy == 0) {
            break;
        }
        uint64_t wait_ns = 100000000ull;
        uint64_t now = now_ns();
        if (o->rate > 0 && more && busy < k) {
            wait_ns = next_at > now ? next_at - now : 0;
        }
        if (more && soonest != UINT64_MAX) {
            uint64_t w = soonest > now ? soonest - now : 0;
            if (w < wait_ns) {
                wait_ns = w;
            }
        }
        gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_nanos((int64_t)wait_ns, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(cq, dl, NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            grpc_slot_finish(ev.tag, ev.success != 0);
            busy--;
        } else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (more && (atomic_load(&r->stop) || now_ns() >= r->t_end)) {
            more = false;
        }
    }

    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    for (int i = 0; i < k; i++) {
        grpc_slice_unref(slots[i].md.value);
        td_free(slots[i].raw);
    }
    td_free(slots);
    return NULL;
}

/* ======================= server observation (/proc) ======================= */

typedef struct procmon {
    long pid;
    atomic_bool stop;
    long rss_peak_kb;
    pthread_t th;
} procmon;

static long proc_status_kb(long pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = atol(line + kl + 1);
            break;
        }
    }
    fclose(f);
    return v;
}

/* utime + stime of pid in seconds, or -1. */
static double proc_cpu_s(long pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (!p) {
        return -1;
    }
    unsigned long long ut = 0, st = 0;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void *procmon_thread(void *arg)
{
    procmon *m = arg;
    while (!atomic_load(&m->stop)) {
        long v = proc_status_kb(m->pid, "VmRSS");
        if (v > m->rss_peak_kb) {
            m->rss_peak_kb = v;
        }
        sleep_ns(100000000ull);
    }
    return NULL;
}

/* ======================= progress ======================= */

typedef struct progress {
    run *r;
    atomic_bool stop;
    pthread_t th;
} progress;

static void *progress_thread(void *arg)
{
    progress *pg = arg;
    run *r = pg->r;
    uint64_t step = (uint64_t)(r->o->progress_s * 1e9);
    uint64_t next = r->t_start + step, last_t = r->t_start;
    uint64_t last_spans = 0, last_ref = 0, last_fail = 0;
    while (!atomic_load(&pg->stop)) {
        uint64_t now = now_ns();
        if (now < next) {
            sleep_ns(next - now > 50000000ull ? 50000000ull : next - now);
            continue;
        }
        uint64_t sp = atomic_load(&r->live_spans), rf = atomic_load(&r->live_refused),
                 fl = atomic_load(&r->live_failed);
        double dt = (double)(now - last_t) / 1e9;
        fprintf(stderr, "  [%6.1f s] %8.0f spans/s accepted, %6.1f refused/s, %6.1f failed/s\n",
                (double)(now - r->t_start) / 1e9, (double)(sp - last_spans) / dt,
                (double)(rf - last_ref) / dt, (double)(fl - last_fail) / dt);
        last_spans = sp;
        last_ref = rf;
        last_fail = fl;
        last_t = now;
        next += step;
    }
    return NULL;
}

/* ======================= report ======================= */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, size_t n, double q)
{
    if (n == 0) {
        return 0;
    }
    size_t i = (size_t)ceil(q * (double)n);
    if (i > 0) {
        i--;
    }
    if (i >= n) {
        i = n - 1;
    }
    return v[i] / 1000.0;
}

typedef struct report {
    stats all;
    double elapsed_s;
    double spans_per_s, req_per_s, wire_mbps, payload_mbps;
    double p50, p90, p99, pmax;
    long vmhwm_kb, rss_peak_kb;
    double server_cpu, client_cpu;
} report;

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            fprintf(f, "\\%c", ch);
        } else if (ch < 0x20) {
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

static int write_json(const char *path, const opts *o, const run *r, const report *rp)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_ingest: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    const stats *s = &rp->all;
    fprintf(f, "{\n  \"proto\": \"%s\",\n  \"gzip\": %s,\n  \"gzip_mode\": \"%s\",\n",
            o->proto == PROTO_GRPC ? "grpc" : "http", o->gzip ? "true" : "false",
            o->gzip ? (o->gzmode == GZ_TEMPLATE ? "template" : "fresh") : "none");
    fprintf(f, "  \"target\": ");
    json_str(f, o->target);
    fprintf(f, ",\n  \"connections\": %d,\n  \"inflight\": %d,\n  \"rate_limit\": %.1f,\n",
            o->conns, o->proto == PROTO_GRPC ? o->inflight : 1, o->rate);
    fprintf(f, "  \"payload_bytes\": %zu,\n  \"payload_gzip_bytes\": %zu,\n", r->pl.len,
            o->gzip ? (o->gzmode == GZ_TEMPLATE ? r->gz.len : r->fresh_gz_len) : 0);
    fprintf(f, "  \"spans_per_request\": %zu,\n  \"elapsed_s\": %.3f,\n", r->pl.nspans,
            rp->elapsed_s);
    fprintf(f,
            "  \"requests\": {\"ok\": %" PRIu64 ", \"refused\": %" PRIu64 ", \"failed\": %" PRIu64
            ", \"warmup\": %" PRIu64 "},\n",
            s->ok, s->refused, s->failed, s->warmup);
    fprintf(f, "  \"spans_accepted\": %" PRIu64 ",\n  \"spans_rejected\": %" PRIu64 ",\n",
            s->spans_ok - s->spans_rejected, s->spans_rejected);
    fprintf(f, "  \"requests_per_s\": %.1f,\n  \"spans_per_s\": %.0f,\n", rp->req_per_s,
            rp->spans_per_s);
    fprintf(f, "  \"wire_mb_per_s\": %.2f,\n  \"payload_mb_per_s\": %.2f,\n", rp->wire_mbps,
            rp->payload_mbps);
    fprintf(f, "  \"latency_ms\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f},\n",
            rp->p50, rp->p90, rp->p99, rp->pmax);
    fprintf(f, "  \"client_cpu_cores\": %.3f,\n", rp->client_cpu);
    if (o->pid > 0) {
        fprintf(f,
                "  \"server\": {\"pid\": %ld, \"vmhwm_kb\": %ld, \"rss_peak_kb\": %ld, "
                "\"cpu_cores\": %.3f},\n",
                o->pid, rp->vmhwm_kb, rp->rss_peak_kb, rp->server_cpu);
    }
    fprintf(f, "  \"status_codes\": {");
    bool first = true;
    for (int i = 0; i < MAX_CODES; i++) {
        if (s->codes[i]) {
            fprintf(f, "%s\"%s%d\": %" PRIu64, first ? "" : ", ",
                    i == CODE_TRANSPORT ? "transport_error_" : "", i, s->codes[i]);
            first = false;
        }
    }
    fprintf(f, "},\n  \"last_error\": ");
    json_str(f, s->last_error);
    fprintf(f, "\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

static void print_human(const opts *o, const run *r, const report *rp)
{
    const stats *s = &rp->all;
    printf("bench_ingest: %s%s -> %s, %d connection(s), payload %zu B (%zu spans)",
           o->proto == PROTO_GRPC ? "grpc" : "http", o->gzip ? "+gzip" : "", o->target, o->conns,
           r->pl.len, r->pl.nspans);
    if (o->proto == PROTO_GRPC) {
        printf(" [inflight %d]", o->inflight);
    }
    if (o->gzip) {
        printf(", gzip %zu B (%s)", o->gzmode == GZ_TEMPLATE ? r->gz.len : r->fresh_gz_len,
               o->gzmode == GZ_TEMPLATE ? "template" : "fresh");
    }
    printf("\n");
    printf("  elapsed         %.2f s%s\n", rp->elapsed_s,
           o->warmup_s > 0 ? " (after warm-up)" : "");
    printf("  requests        ok %" PRIu64 "  refused %" PRIu64 "  failed %" PRIu64
           "  (warm-up %" PRIu64 ")\n",
           s->ok, s->refused, s->failed, s->warmup);
    printf("  throughput      %.0f spans/s  %.1f req/s\n", rp->spans_per_s, rp->req_per_s);
    printf("  bandwidth       %.2f MB/s on the wire, %.2f MB/s of protobuf\n", rp->wire_mbps,
           rp->payload_mbps);
    printf("  latency (ok)    p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", rp->p50,
           rp->p90, rp->p99, rp->pmax);
    if (s->spans_rejected) {
        printf("  partial_success %" PRIu64 " spans rejected by the server\n", s->spans_rejected);
    }
    printf("  client cpu      %.2f cores\n", rp->client_cpu);
    if (o->pid > 0) {
        printf("  server pid %ld   VmHWM %.1f MB  peak VmRSS %.1f MB  cpu %.2f cores\n", o->pid,
               rp->vmhwm_kb / 1024.0, rp->rss_peak_kb / 1024.0, rp->server_cpu);
    }
    printf("  %s", o->proto == PROTO_GRPC ? "grpc status    " : "http status    ");
    for (int i = 0; i < MAX_CODES; i++) {
        if (s->codes[i]) {
            printf(" %s%d:%" PRIu64, i == CODE_TRANSPORT ? "transport-error/" : "", i, s->codes[i]);
        }
    }
    printf("\n");
    if (s->last_error[0]) {
        printf("  last error      %s\n", s->last_error);
    }
}

/* ======================= main ======================= */

static void usage(FILE *f)
{
    fprintf(
        f, "usage: bench_ingest --payload FILE.pb --proto grpc|http [--gzip] --target HOST:PORT\n"
           "                    --connections N --duration SECONDS [--requests N]\n"
           "                    [--json-out FILE] [--pid PID] [--inflight K (grpc, 4)]\n"
           "                    [--rate REQ_PER_S] [--warmup SECONDS] [--timeout-ms MS (10000)]\n"
           "                    [--tenant ORGID] [--gzip-mode template|fresh] [--gzip-level 1..9]\n"
           "                    [--refused-backoff-ms MS (100)] [--progress SECONDS]\n"
           "HOST must be a dotted IPv4 address (e.g. 127.0.0.1).\n");
}

static double parse_num(const char *name, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "bench_ingest: --%s wants a number in [%g, %g], got '%s'\n", name, lo, hi,
                s);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, opts *o)
{
    enum {
        O_PAYLOAD = 1,
        O_PROTO,
        O_GZIP,
        O_TARGET,
        O_CONNS,
        O_DUR,
        O_REQS,
        O_JSON,
        O_PID,
        O_INFL,
        O_RATE,
        O_WARM,
        O_TMO,
        O_TENANT,
        O_GZMODE,
        O_GZLEVEL,
        O_BACKOFF,
        O_PROGRESS,
        O_HELP
    };
    static const struct option lopts[] = {
        {"payload", required_argument, NULL, O_PAYLOAD},
        {"proto", required_argument, NULL, O_PROTO},
        {"gzip", no_argument, NULL, O_GZIP},
        {"target", required_argument, NULL, O_TARGET},
        {"connections", required_argument, NULL, O_CONNS},
        {"duration", required_argument, NULL, O_DUR},
        {"requests", required_argument, NULL, O_REQS},
        {"json-out", required_argument, NULL, O_JSON},
        {"pid", required_argument, NULL, O_PID},
        {"inflight", required_argument, NULL, O_INFL},
        {"rate", required_argument, NULL, O_RATE},
        {"warmup", required_argument, NULL, O_WARM},
        {"timeout-ms", required_argument, NULL, O_TMO},
        {"tenant", required_argument, NULL, O_TENANT},
        {"gzip-mode", required_argument, NULL, O_GZMODE},
        {"gzip-level", required_argument, NULL, O_GZLEVEL},
        {"refused-backoff-ms", required_argument, NULL, O_BACKOFF},
        {"progress", required_argument, NULL, O_PROGRESS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0}};
    *o = (opts){.conns = 1,
                .inflight = 4,
                .duration_s = 10,
                .timeout_ms = 10000,
                .gzip_level = 6,
                .gzmode = GZ_TEMPLATE,
                .proto = PROTO_HTTP,
                .backoff_ms = 100};
    bool have_proto = false;
    int c;
    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (c) {
        case O_PAYLOAD:
            o->payload = optarg;
            break;
        case O_PROTO:
            have_proto = true;
            if (!strcmp(optarg, "grpc")) {
                o->proto = PROTO_GRPC;
            } else if (!strcmp(optarg, "http")) {
                o->proto = PROTO_HTTP;
            } else {
                fprintf(stderr, "bench_ingest: --proto is grpc or http\n");
                exit(2);
            }
            break;
        case O_GZIP:
            o->gzip = true;
            break;
        case O_TARGET:
            o->target = optarg;
            break;
        case O_CONNS:
            o->conns = (int)parse_num("connections", optarg, 1, MAX_CONNS);
            break;
        case O_DUR:
            o->duration_s = parse_num("duration", optarg, 0.1, 86400);
            break;
        case O_REQS:
            o->max_requests = (uint64_t)parse_num("requests", optarg, 1, 1e15);
            break;
        case O_JSON:
            o->json_out = optarg;
            break;
        case O_PID:
            o->pid = (long)parse_num("pid", optarg, 1, 1e9);
            break;
        case O_INFL:
            o->inflight = (int)parse_num("inflight", optarg, 1, MAX_INFLIGHT);
            break;
        case O_RATE:
            o->rate = parse_num("rate", optarg, 0, 1e7);
            break;
        case O_WARM:
            o->warmup_s = parse_num("warmup", optarg, 0, 3600);
            break;
        case O_TMO:
            o->timeout_ms = (int)parse_num("timeout-ms", optarg, 10, 600000);
            break;
        case O_TENANT:
            o->tenant = optarg;
            break;
        case O_GZMODE:
            if (!strcmp(optarg, "template")) {
                o->gzmode = GZ_TEMPLATE;
            } else if (!strcmp(optarg, "fresh")) {
                o->gzmode = GZ_FRESH;
            } else {
                fprintf(stderr, "bench_ingest: --gzip-mode is template or fresh\n");
                exit(2);
            }
            break;
        case O_GZLEVEL:
            o->gzip_level = (int)parse_num("gzip-level", optarg, 1, 9);
            break;
        case O_PROGRESS:
            o->progress_s = parse_num("progress", optarg, 0.1, 3600);
            break;
        case O_BACKOFF:
            o->backoff_ms = (int)parse_num("refused-backoff-ms", optarg, 0, 60000);
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc || !o->payload || !o->target || !have_proto) {
        usage(stderr);
        exit(2);
    }
    if (o->warmup_s >= o->duration_s) {
        fprintf(stderr, "bench_ingest: --warmup must be shorter than --duration\n");
        exit(2);
    }
    if (o->tenant && (strlen(o->tenant) > 150 || strpbrk(o->tenant, "\r\n"))) {
        fprintf(stderr, "bench_ingest: bad --tenant\n");
        exit(2);
    }
}

static int parse_target(const char *t, struct sockaddr_in *sa)
{
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || (size_t)(colon - t) >= 64) {
        return -1;
    }
    char host[64];
    memcpy(host, t, (size_t)(colon - t));
    host[colon - t] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535) {
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    opts o;
    parse_args(argc, argv, &o);
    static run r; /* large and long-lived; static only to keep it off the stack */
    r.o = &o;
    r.host_hdr = o.target;
    if (parse_target(o.target, &r.addr) != 0) {
        fprintf(stderr, "bench_ingest: --target must be IPv4:PORT, got '%s'\n", o.target);
        return 2;
    }
    td_err err;
    td_err_init(&err);
    if (td_bench_payload_load(o.payload, &r.pl, &err) != TD_OK) {
        fprintf(stderr, "bench_ingest: %s\n", err.msg);
        return 1;
    }
    if (o.gzip) {
        td_buf tmp;
        td_buf_init(&tmp, r.pl.len / 4);
        if (td_gzip(r.pl.data, r.pl.len, &tmp, &err) != TD_OK) {
            fprintf(stderr, "bench_ingest: %s\n", err.msg);
            return 1;
        }
        r.fresh_gz_len = tmp.len;
        td_buf_release(&tmp);
        if (o.gzmode == GZ_TEMPLATE &&
            td_bench_gztpl_build(&r.pl, o.gzip_level, &r.gz, &err) != TD_OK) {
            fprintf(stderr, "bench_ingest: %s (use --gzip-mode fresh)\n", err.msg);
            return 1;
        }
    }
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    r.seed = td_bench_mix64(((uint64_t)rt.tv_sec << 32) ^ (uint64_t)rt.tv_nsec ^
                            ((uint64_t)getpid() << 16));

    if (o.proto == PROTO_GRPC) {
        gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
        grpc_init();
    }

    procmon pm = {.pid = o.pid, .rss_peak_kb = -1};
    double srv_cpu0 = -1;
    if (o.pid > 0) {
        srv_cpu0 = proc_cpu_s(o.pid);
        if (srv_cpu0 < 0) {
            fprintf(stderr, "bench_ingest: cannot read /proc/%ld\n", o.pid);
            return 1;
        }
        pthread_create(&pm.th, NULL, procmon_thread, &pm);
    }

    conn_ctx *cs = td_xcalloc((size_t)o.conns, sizeof(*cs));
    double cli_cpu0 = cpu_self_s();
    r.t_start = now_ns();
    r.t_warm = r.t_start + (uint64_t)(o.warmup_s * 1e9);
    r.t_end = r.t_start + (uint64_t)(o.duration_s * 1e9);
    for (int i = 0; i < o.conns; i++) {
        cs[i].r = &r;
        cs[i].idx = i;
        if (pthread_create(&cs[i].th, NULL, o.proto == PROTO_GRPC ? grpc_thread : http_thread,
                           &cs[i]) != 0) {
            fprintf(stderr, "bench_ingest: pthread_create failed\n");
            return 1;
        }
    }
    progress pg = {.r = &r};
    if (o.progress_s > 0) {
        pthread_create(&pg.th, NULL, progress_thread, &pg);
    }
    for (int i = 0; i < o.conns; i++) {
        pthread_join(cs[i].th, NULL);
    }
    atomic_store(&r.stop, true);
    if (o.progress_s > 0) {
        atomic_store(&pg.stop, true);
        pthread_join(pg.th, NULL);
    }
    double cli_cpu1 = cpu_self_s();

    report rp;
    memset(&rp, 0, sizeof(rp));
    uint64_t t_last = r.t_warm;
    for (int i = 0; i < o.conns; i++) {
        stats *s = &cs[i].st;
        rp.all.ok += s->ok;
        rp.all.refused += s->refused;
        rp.all.failed += s->failed;
        rp.all.warmup += s->warmup;
        rp.all.spans_ok += s->spans_ok;
        rp.all.spans_rejected += s->spans_rejected;
        rp.all.wire_bytes += s->wire_bytes;
        rp.all.payload_bytes += s->payload_bytes;
        for (int k = 0; k < MAX_CODES; k++) {
            rp.all.codes[k] += s->codes[k];
        }
        if (s->last_error[0]) {
            memcpy(rp.all.last_error, s->last_error, sizeof(s->last_error));
        }
        for (size_t k = 0; k < s->nlat; k++) {
            lat_push(&rp.all, (uint64_t)s->lat_us[k] * 1000);
        }
        td_free(s->lat_us);
        if (cs[i].t_last_done > t_last) {
            t_last = cs[i].t_last_done;
        }
    }
    if (rp.all.nlat > 0) {
        qsort(rp.all.lat_us, rp.all.nlat, sizeof(*rp.all.lat_us), cmp_u32);
    }
    rp.elapsed_s = (double)(t_last - r.t_warm) / 1e9;
    if (rp.elapsed_s <= 0) {
        rp.elapsed_s = 1e-9;
    }
    uint64_t nreq = rp.all.ok + rp.all.refused + rp.all.failed;
    rp.req_per_s = (double)nreq / rp.elapsed_s;
    rp.spans_per_s = (double)(rp.all.spans_ok - rp.all.spans_rejected) / rp.elapsed_s;
    rp.wire_mbps = (double)rp.all.wire_bytes / rp.elapsed_s / 1e6;
    rp.payload_mbps = (double)rp.all.payload_bytes / rp.elapsed_s / 1e6;
    rp.p50 = pct_ms(rp.all.lat_us, rp.all.nlat, 0.50);
    rp.p90 = pct_ms(rp.all.lat_us, rp.all.nlat, 0.90);
    rp.p99 = pct_ms(rp.all.lat_us, rp.all.nlat, 0.99);
    rp.pmax = rp.all.nlat ? rp.all.lat_us[rp.all.nlat - 1] / 1000.0 : 0;
    double wall = (double)(now_ns() - r.t_start) / 1e9;
    rp.client_cpu = (cli_cpu1 - cli_cpu0) / wall;
    if (o.pid > 0) {
        double srv_cpu1 = proc_cpu_s(o.pid);
        atomic_store(&pm.stop, true);
        pthread_join(pm.th, NULL);
        rp.vmhwm_kb = proc_status_kb(o.pid, "VmHWM");
        rp.rss_peak_kb = pm.rss_peak_kb;
        rp.server_cpu = srv_cpu1 >= 0 ? (srv_cpu1 - srv_cpu0) / wall : -1;
    }

    print_human(&o, &r, &rp);
    int rc = 0;
    if (o.json_out && write_json(o.json_out, &o, &r, &rp) != 0) {
        rc = 1;
    }
    td_free(rp.all.lat_us);
    td_free(cs);
    if (o.proto == PROTO_GRPC) {
        grpc_shutdown();
    }
    td_bench_gztpl_release(&r.gz);
    td_bench_payload_release(&r.pl);
    /* exit status: 0 when at least one request succeeded and none failed outright */
    if (rc == 0 && (rp.all.ok == 0 || rp.all.failed > 0)) {
        rc = 3;
    }
    return rc;
}
