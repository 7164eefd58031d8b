/*
 * test_collector.c - the collector: tenant validation, the shared submit path
 * against a tiny queue and a fake sink, and both transports in-process (a raw
 * HTTP/1.1 client over a plain socket, and a gRPC C core client).
 */
#include "collector/internal.h"
#include "core/gzip.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "proto/proto.h"
#include "td_test.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- a fake sink: counts what the writer hands it; can be held shut ---- */

typedef struct fake_sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_closed; /* write() waits while true */
    bool in_write;
    uint64_t spans, batches, writes;
    char last_tenant[TD_TENANT_MAX + 1];
} fake_sink;

static td_status fake_write(void *ud, td_batch *const *b, size_t n, td_err *err)
{
    fake_sink *s = ud;
    pthread_mutex_lock(&s->mu);
    s->in_write = true;
    pthread_cond_broadcast(&s->cv);
    while (s->gate_closed) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    for (size_t i = 0; i < n; i++) {
        s->spans += b[i]->q.spans;
        s->batches++;
        snprintf(s->last_tenant, sizeof(s->last_tenant), "%s", b[i]->tenant);
    }
    s->writes++;
    s->in_write = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    (void)err;
    return TD_OK;
}

static void sink_init(fake_sink *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void sink_release(fake_sink *s)
{
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

static void sink_gate(fake_sink *s, bool closed)
{
    pthread_mutex_lock(&s->mu);
    s->gate_closed = closed;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static uint64_t sink_spans(fake_sink *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->spans;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Wait (bounded) until the writer is blocked inside write(). */
static bool sink_wait_in_write(fake_sink *s, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->in_write) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) != 0) {
            break;
        }
    }
    bool ok = s->in_write;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* Wait (bounded) until the sink has seen n spans, so later deltas are exact. */
static bool sink_wait_spans(fake_sink *s, uint64_t n, int ms)
{
    for (int waited = 0; waited < ms; waited += 5) {
        if (sink_spans(s) >= n) {
            return sink_spans(s) == n;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static td_sink sink_of(fake_sink *s)
{
    return (td_sink){fake_write, s};
}

/* ---- request payloads ---- */

/*
 * Pack an ExportTraceServiceRequest with nvalid good spans and ninvalid spans whose
 * span_id is all zero, all in one trace derived from seed. Returns its length.
 */
static size_t make_pb(uint8_t *buf, size_t cap, int nvalid, int ninvalid, uint32_t seed)
{
    enum { MAXS = 64 };
    int n = nvalid + ninvalid;
    TD_ASSERT(n <= MAXS);
    static _Thread_local td_otlp_span spans[MAXS];
    static _Thread_local td_otlp_span *sp[MAXS];
    static _Thread_local uint8_t tid[16], sids[MAXS][8];
    for (int i = 0; i < 16; i++) {
        tid[i] = (uint8_t)(seed * 31u + (uint32_t)i + 1u);
    }
    for (int i = 0; i < n; i++) {
        td_otlp_span s = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
        memset(sids[i], 0, 8);
        if (i < nvalid) {
            sids[i][0] = (uint8_t)(i + 1);
            sids[i][7] = (uint8_t)seed;
        }
        s.trace_id.data = tid;
        s.trace_id.len = 16;
        s.span_id.data = sids[i];
        s.span_id.len = 8;
        s.name = (char *)"op";
        s.start_time_unix_nano = 1700000000000000000ull + (uint64_t)i;
        s.end_time_unix_nano = 1700000000000001000ull + (uint64_t)i;
        spans[i] = s;
        sp[i] = &spans[i];
    }
    td_otlp_any av = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    av.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    av.string_value = (char *)"svc";
    td_otlp_kv kv = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
    kv.key = (char *)"service.name";
    kv.value = &av;
    td_otlp_kv *kvp = &kv;
    td_otlp_resource res = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    res.n_attributes = 1;
    res.attributes = &kvp;
    td_otlp_scope_spans ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.n_spans = (size_t)n;
    ss.spans = sp;
    td_otlp_scope_spans *ssp = &ss;
    td_otlp_resource_spans rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    rs.resource = &res;
    rs.n_scope_spans = 1;
    rs.scope_spans = &ssp;
    td_otlp_resource_spans *rsp = &rs;
    td_otlp_request req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.n_resource_spans = 1;
    req.resource_spans = &rsp;
    size_t len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &req);
    TD_ASSERT(len <= cap);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, buf);
    return len;
}

/* OTLP JSON with n valid spans (plus one with an empty spanId when bad_one). */
static void make_json(td_buf *b, int n, bool bad_one, uint32_t seed)
{
    td_buf_addstr(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                     "\"value\":{\"stringValue\":\"shop\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
                     "\"m\"},\"spans\":[");
    for (int i = 0; i < n + (bad_one ? 1 : 0); i++) {
        char sid[17] = "";
        if (i < n) {
            snprintf(sid, sizeof(sid), "eee19b7e%08x", (unsigned)i + 1);
        }
        td_buf_addf(
            b,
            "%s{\"traceId\":\"5b8efff798038103d269b633%08x\",\"spanId\":\"%s\","
            "\"name\":\"GET /cart\",\"kind\":2,\"startTimeUnixNano\":\"1544712660000000000\","
            "\"endTimeUnixNano\":\"1544712661000000000\"}",
            i ? "," : "", seed, sid);
    }
    td_buf_addstr(b, "]}]}]}");
}

static uint64_t mval(td_metric_id id, const char *l1, const char *l2)
{
    return td_metric_get(td_metric_series(id, l1, l2, NULL));
}

/* Value of an unlabeled series in the Prometheus text (scrape-time gauges). */
static long long scrape(const char *name)
{
    td_buf out = TD_BUF_INIT;
    td_metrics_write(&out);
    long long v = -1;
    size_t nl = strlen(name);
    for (const char *p = out.data; p && *p;) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
            v = atoll(p + nl + 1);
            break;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    td_buf_release(&out);
    return v;
}

static void default_opts(td_collector_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->grpc_listen = (char *)"";
    o->http_listen = (char *)"";
    o->max_recv_bytes = 64 * 1024;
    o->queue_max_spans = 1000;
    o->queue_max_bytes = 16 * 1024 * 1024;
    o->write_batch_bytes = 1024 * 1024;
    o->grpc_threads = 2;
    o->http_threads = 2;
    o->retry_after_ms = 1500;
}

/* ---- tests ---- */

static void test_tenant(void)
{
    static const struct {
        bool mt;
        const char *hdr;
        td_status want;
        const char *tenant;
    } cases[] = {
        {false, NULL, TD_OK, "single-tenant"},
        {false, "team-a", TD_OK, "single-tenant"},
        {false, "a|b", TD_OK, "single-tenant"}, /* header ignored when off */
        {true, NULL, TD_UNAUTHENTICATED, ""},
        {true, "", TD_UNAUTHENTICATED, ""},
        {true, "team-a", TD_OK, "team-a"},
        {true, "Az09!-_.*'()", TD_OK, "Az09!-_.*'()"},
        {true, "anonymous", TD_OK, "anonymous"},
        {true, "a|b", TD_INVALID, ""},
        {true, "|", TD_INVALID, ""},
        {true, ".", TD_INVALID, ""},
        {true, "..", TD_INVALID, ""},
        {true, "...", TD_OK, "..."},
        {true, "a b", TD_INVALID, ""},
        {true, "a/b", TD_INVALID, ""},
        {true, "a#b", TD_INVALID, ""}, /* '!-_' is a list, not a range */
        {true, "a:b", TD_INVALID, ""},
        {true, "caf\xc3\xa9", TD_INVALID, ""},
    };
    td_collector_opts o;
    default_opts(&o);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        o.multitenancy = cases[i].mt;
        char out[TD_TENANT_MAX + 1];
        td_err err;
        td_err_init(&err);
        td_status st = td__tenant_for_write(&o, cases[i].hdr, out, &err);
        if (st != cases[i].want) {
            fprintf(stderr, "  case %zu (%s): %s\n", i, cases[i].hdr ? cases[i].hdr : "NULL",
                    err.msg);
        }
        TD_ASSERT_EQ_INT(st, cases[i].want);
        if (st == TD_OK) {
            TD_ASSERT_EQ_STR(out, cases[i].tenant);
        } else {
            TD_CHECK(err.msg[0] != '\0');
        }
    }
    /* length: 150 is fine, 151 is not */
    char id[TD_TENANT_MAX + 2];
    memset(id, 'x', sizeof(id));
    id[TD_TENANT_MAX] = '\0';
    o.multitenancy = true;
    char out[TD_TENANT_MAX + 1];
    TD_ASSERT_EQ_INT(td__tenant_for_write(&o, id, out, NULL), TD_OK);
    TD_ASSERT_EQ_STR(out, id);
    id[TD_TENANT_MAX] = 'x';
    id[TD_TENANT_MAX + 1] = '\0';
    TD_ASSERT_EQ_INT(td__tenant_for_write(&o, id, out, NULL), TD_INVALID);
}

static void test_options(void)
{
    td_collector_opts o;
    memset(&o, 0, sizeof(o));
    td_opt_table t = {"collector", td_collector_opt_rows, td_collector_nopt_rows, &o};
    TD_ASSERT_OK(td_config_defaults(&t, 1, NULL));
    TD_ASSERT_EQ_STR(o.grpc_listen, "0.0.0.0:4317");
    TD_ASSERT_EQ_STR(o.http_listen, "0.0.0.0:4318");
    TD_ASSERT_EQ_U64(o.max_recv_bytes, 64ull << 20);
    TD_ASSERT_EQ_U64(o.queue_max_spans, 1000000);
    TD_ASSERT_EQ_U64(o.write_batch_bytes, 8ull << 20);
    TD_ASSERT_EQ_INT(o.grpc_threads, 2);
    TD_ASSERT_EQ_INT(o.http_threads, 2);
    TD_ASSERT_EQ_INT(o.retry_after_ms, 1000);
    TD_ASSERT_EQ_U64(o.queue_max_bytes, 32ull << 20);
    for (size_t i = 0; i < td_collector_nopt_rows; i++) {
        /* the api table owns "multitenancy" */
        TD_CHECK(strcmp(td_collector_opt_rows[i].name, "multitenancy") != 0);
    }
    TD_ASSERT_EQ_INT(td_config_set(&t, 1, "grpc-threads", "0", "test", NULL), TD_INVALID);
    td_config_release(&t, 1);
}

static void test_submit_overload(void)
{
    fake_sink sink;
    sink_init(&sink);
    td_collector_opts o;
    default_opts(&o);
    o.queue_max_spans = 10;
    td_collector *c;
    TD_ASSERT_OK(td_collector_new(&o, sink_of(&sink), &c, NULL));

    uint64_t ok0 = mval(TD_M_INGEST_REQUESTS, "http", "ok");
    uint64_t over0 = mval(TD_M_INGEST_REQUESTS, "http", "overloaded");
    uint64_t partial0 = mval(TD_M_INGEST_REQUESTS, "http", "partial");
    uint64_t invalid0 = mval(TD_M_INGEST_REQUESTS, "http", "invalid");
    uint64_t acc0 = mval(TD_M_SPANS_ACCEPTED, "http", NULL);
    uint64_t accb0 = mval(TD_M_BYTES_ACCEPTED, "http", NULL);
    uint64_t qf0 = mval(TD_M_SPANS_DROPPED, "queue_full", NULL);
    uint64_t qfb0 = mval(TD_M_BYTES_DROPPED, "queue_full", NULL);
    uint64_t bad0 = mval(TD_M_SPANS_DROPPED, "invalid_id", NULL);

    /* Not started: no writer drains, so the queue fills deterministically. */
    uint8_t buf[8192];
    size_t n1 = make_pb(buf, sizeof(buf), 8, 0, 1);
    td_ingest_result res;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(
        td__collector_submit(c, "http", TD_ENC_PROTOBUF, buf, n1, TD_DEFAULT_TENANT, &res, &err));
    TD_ASSERT_EQ_U64(res.accepted_spans, 8);
    TD_ASSERT_EQ_U64(res.rejected_spans, 0);
    TD_ASSERT_EQ_INT(scrape("traced_queue_spans"), 8);
    TD_ASSERT_EQ_INT(scrape("traced_queue_batches"), 1);
    TD_ASSERT_EQ_INT(scrape("traced_queue_capacity_spans"), 10);

    /* 8 + 5 > 10: refused as a whole, nothing half-enqueued */
    size_t n2 = make_pb(buf, sizeof(buf), 5, 0, 2);
    td_status st =
        td__collector_submit(c, "http", TD_ENC_PROTOBUF, buf, n2, TD_DEFAULT_TENANT, &res, &err);
    TD_ASSERT_EQ_INT(st, TD_OVERLOADED);
    TD_ASSERT_EQ_U64(res.accepted_spans, 0);
    TD_ASSERT_EQ_INT(scrape("traced_queue_spans"), 8);
    TD_ASSERT_EQ_U64(mval(TD_M_INGEST_REQUESTS, "http", "overloaded") - over0, 1);
    TD_ASSERT_EQ_U64(mval(TD_M_SPANS_DROPPED, "queue_full", NULL) - qf0, 5);
    TD_ASSERT_EQ_U64(mval(TD_M_BYTES_DROPPED, "queue_full", NULL) - qfb0, n2);

    /* partial: 2 valid fit exactly, 1 invalid is rejected and counted */
    size_t n3 = make_pb(buf, sizeof(buf), 2, 1, 3);
    TD_ASSERT_OK(
        td__collector_submit(c, "http", TD_ENC_PROTOBUF, buf, n3, TD_DEFAULT_TENANT, &res, &err));
    TD_ASSERT_EQ_U64(res.accepted_spans, 2);
    TD_ASSERT_EQ_U64(res.rejected_spans, 1);
    TD_CHECK(res.message[0] != '\0');
    TD_ASSERT_EQ_U64(mval(TD_M_SPANS_DROPPED, "invalid_id", NULL) - bad0, 1);
    TD_ASSERT_EQ_U64(mval(TD_M_INGEST_REQUESTS, "http", "partial") - partial0, 1);

    /* undecodable */
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01};
    st = td__collector_submit(c, "http", TD_ENC_PROTOBUF, junk, sizeof(junk), TD_DEFAULT_TENANT,
                              &res, &err);
    TD_ASSERT_EQ_INT(st, TD_INVALID);
    TD_ASSERT_EQ_U64(mval(TD_M_INGEST_REQUESTS, "http", "invalid") - invalid0, 1);

    /* empty request: full success, nothing queued */
    TD_ASSERT_OK(
        td__collector_submit(c, "http", TD_ENC_PROTOBUF, buf, 0, TD_DEFAULT_TENANT, &res, &err));
    TD_ASSERT_EQ_U64(res.accepted_spans, 0);

    TD_ASSERT_EQ_U64(mval(TD_M_INGEST_REQUESTS, "http", "ok") - ok0, 2);
    TD_ASSERT_EQ_U64(mval(TD_M_SPANS_ACCEPTED, "http", NULL) - acc0, 10);
    TD_ASSERT_EQ_U64(mval(TD_M_BYTES_ACCEPTED, "http", NULL) - accb0, n1 + n3);

    /* stop drains everything accepted into the sink */
    td_collector_stop(c);
    TD_ASSERT_EQ_U64(sink_spans(&sink), 10);
    TD_ASSERT_EQ_STR(sink.last_tenant, TD_DEFAULT_TENANT);
    td_collector_free(c);
    sink_release(&sink);
}

/* ---- a tiny blocking HTTP/1.1 client ---- */

typedef struct hconn {
    int fd;
    char buf[256 * 1024];
    size_t len;
} hconn;

typedef struct hresp {
    int status;
    char headers[4096];
    char body[8192];
    size_t body_len;
    bool closed; /* server closed the connection after this response */
} hresp;

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    TD_ASSERT(fd >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        c += w;
        n -= (size_t)w;
    }
    return true;
}

/* Read more bytes into the connection buffer; false on EOF/error. */
static bool fill(hconn *h)
{
    if (h->len == sizeof(h->buf)) {
        return false;
    }
    ssize_t r = recv(h->fd, h->buf + h->len, sizeof(h->buf) - h->len, 0);
    if (r <= 0) {
        return false;
    }
    h->len += (size_t)r;
    return true;
}

static const char *header_of(const hresp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = r->headers; *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol) {
            break;
        }
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Read one response (Content-Length framed) from h; false if none could be read. */
static bool read_response(hconn *h, hresp *r)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = memmem(h->buf, h->len, "\r\n\r\n", 4))) {
        if (!fill(h)) {
            return false;
        }
    }
    size_t hlen = (size_t)(end - h->buf) + 4;
    if (sscanf(h->buf, "HTTP/1.%*d %d", &r->status) != 1) {
        return false;
    }
    const char *first_eol = strstr(h->buf, "\r\n");
    size_t hl = hlen - (size_t)(first_eol + 2 - h->buf);
    if (hl >= sizeof(r->headers)) {
        return false;
    }
    memcpy(r->headers, first_eol + 2, hl);
    r->headers[hl] = '\0';
    char v[64];
    size_t clen = 0;
    if (header_of(r, "Content-Length", v, sizeof(v))) {
        clen = (size_t)strtoull(v, NULL, 10);
    }
    while (h->len < hlen + clen) {
        if (!fill(h)) {
            return false;
        }
    }
    r->body_len = clen < sizeof(r->body) - 1 ? clen : sizeof(r->body) - 1;
    memcpy(r->body, h->buf + hlen, r->body_len);
    r->body[r->body_len] = '\0';
    memmove(h->buf, h->buf + hlen + clen, h->len - hlen - clen);
    h->len -= hlen + clen;
    if (header_of(r, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0) {
        r->closed = true;
    }
    return true;
}

/* One request on a fresh connection. */
static int http_req(int port, const char *method, const char *path, const char *extra_headers,
                    const void *body, size_t blen, hresp *r)
{
    int fd = tcp_connect(port);
    if (fd < 0) {
        return -1;
    }
    char head[2048];
    int hn = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n", method,
                      path, extra_headers ? extra_headers : "", blen);
    static _Thread_local hconn h;
    h.fd = fd;
    h.len = 0;
    bool ok = send_all(fd, head, (size_t)hn) && (blen == 0 || send_all(fd, body, blen)) &&
              read_response(&h, r);
    close(fd);
    return ok ? r->status : -1;
}

static bool unpack_status(const hresp *r, int *code, char *msg, size_t cap)
{
    Google__Rpc__Status *s =
        google__rpc__status__unpack(NULL, r->body_len, (const uint8_t *)r->body);
    if (!s) {
        return false;
    }
    *code = s->code;
    snprintf(msg, cap, "%s", s->message);
    google__rpc__status__free_unpacked(s, NULL);
    return true;
}

#define CT_PB "Content-Type: application/x-protobuf\r\n"
#define CT_JSON "Content-Type: application/json\r\n"

static void test_http(void)
{
    fake_sink sink;
    sink_init(&sink);
    td_collector_opts o;
    default_opts(&o);
    o.http_listen = (char *)"127.0.0.1:0";
    o.max_recv_bytes = 16 * 1024;
    o.queue_max_spans = 10;
    td_collector *c;
    TD_ASSERT_OK(td_collector_new(&o, sink_of(&sink), &c, NULL));
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_collector_start(c, &err));
    int port = td_collector_http_port(c);
    TD_CHECK(port > 0);
    TD_ASSERT_EQ_INT(td_collector_grpc_port(c), 0);

    hresp r;
    char v[256];
    uint8_t pb[8192];

    /* 405 for other methods, with the Collector's wording */
    TD_ASSERT_EQ_INT(http_req(port, "GET", "/v1/traces", NULL, NULL, 0, &r), 405);
    TD_ASSERT_EQ_STR(r.body, "405 method not allowed, supported: [POST]");
    TD_ASSERT_EQ_STR(header_of(&r, "Allow", v, sizeof(v)), "POST");
    TD_CHECK(strncmp(header_of(&r, "Content-Type", v, sizeof(v)), "text/plain", 10) == 0);
    TD_ASSERT_EQ_INT(http_req(port, "PUT", "/v1/traces", CT_JSON, "{}", 2, &r), 405);

    /* 404 elsewhere */
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/logs", CT_JSON, "{}", 2, &r), 404);

    /* 415 for other media types; parameters and case do not matter for the good ones */
    TD_ASSERT_EQ_INT(
        http_req(port, "POST", "/v1/traces", "Content-Type: text/plain\r\n", "{}", 2, &r), 415);
    TD_ASSERT_EQ_STR(r.body, "415 unsupported media type, supported: [application/json, "
                             "application/x-protobuf]");
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", NULL, "{}", 2, &r), 415);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces",
                              "Content-Type: Application/JSON; charset=utf-8\r\n", "{}", 2, &r),
                     200);
    TD_ASSERT_EQ_STR(r.body, "{}");
    TD_ASSERT_EQ_STR(header_of(&r, "Content-Type", v, sizeof(v)), "application/json");

    /* 200 JSON with spans; X-Request-Id echoed */
    td_buf jb = TD_BUF_INIT;
    make_json(&jb, 2, false, 1);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_JSON "X-Request-Id: abc-123\r\n",
                              jb.data, jb.len, &r),
                     200);
    TD_ASSERT_EQ_STR(r.body, "{}");
    TD_ASSERT_EQ_STR(header_of(&r, "X-Request-Id", v, sizeof(v)), "abc-123");

    /* partial success in JSON */
    td_buf_reset(&jb);
    make_json(&jb, 1, true, 2);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_JSON, jb.data, jb.len, &r), 200);
    TD_CHECK(strncmp(r.body, "{\"partialSuccess\":{\"rejectedSpans\":\"1\",\"errorMessage\":\"",
                     52) == 0);
    TD_CHECK(header_of(&r, "X-Request-Id", v, sizeof(v)) && strlen(v) == 16);

    /* 200 protobuf: an empty ExportTraceServiceResponse is 0 bytes */
    size_t n = make_pb(pb, sizeof(pb), 1, 0, 3);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_PB, pb, n, &r), 200);
    TD_ASSERT_EQ_U64(r.body_len, 0);
    TD_ASSERT_EQ_STR(header_of(&r, "Content-Type", v, sizeof(v)), "application/x-protobuf");

    /* partial success in protobuf */
    n = make_pb(pb, sizeof(pb), 1, 2, 4);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_PB, pb, n, &r), 200);
    td_otlp_response *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, r.body_len, (const uint8_t *)r.body);
    TD_CHECK(resp && resp->partial_success);
    TD_ASSERT_EQ_INT(resp->partial_success->rejected_spans, 2);
    TD_CHECK(resp->partial_success->error_message[0] != '\0');
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(resp,
                                                                                             NULL);

    /* gzip */
    n = make_pb(pb, sizeof(pb), 2, 0, 5);
    td_buf gz = TD_BUF_INIT;
    TD_ASSERT_OK(td_gzip(pb, n, &gz, NULL));
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_PB "Content-Encoding: gzip\r\n",
                              gz.data, gz.len, &r),
                     200);

    /* 400: bad protobuf answers a google.rpc.Status in protobuf */
    int code;
    char msg[256];
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01};
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_PB, junk, sizeof(junk), &r), 400);
    TD_CHECK(unpack_status(&r, &code, msg, sizeof(msg)));
    TD_ASSERT_EQ_INT(code, 3);
    TD_CHECK(msg[0] != '\0');

    /* 400: bad JSON answers {"code":3,"message":...} */
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_JSON, "{\"resourceSpans\":[", 18, &r),
                     400);
    TD_CHECK(strncmp(r.body, "{\"code\":3,\"message\":\"", 21) == 0);
    TD_ASSERT_EQ_STR(header_of(&r, "Content-Type", v, sizeof(v)), "application/json");

    /* 400: truncated gzip */
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_PB "Content-Encoding: gzip\r\n",
                              gz.data, gz.len - 6, &r),
                     400);
    TD_CHECK(unpack_status(&r, &code, msg, sizeof(msg)));
    TD_ASSERT_EQ_INT(code, 3);

    /* 400: unknown encoding */
    TD_ASSERT_EQ_INT(
        http_req(port, "POST", "/v1/traces", CT_JSON "Content-Encoding: br\r\n", "{}", 2, &r), 400);
    TD_CHECK(strstr(r.body, "Content-Encoding") != NULL);

    /* 413: Content-Length over the limit; the body is read and dropped, then answered */
    static char big[40 * 1024];
    memset(big, ' ', sizeof(big));
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_JSON, big, sizeof(big), &r), 413);
    TD_CHECK(strncmp(r.body, "{\"code\":8,", 10) == 0);
    TD_CHECK(!r.closed);

    /* 413 with Expect: 100-continue is answered before the body, which is never sent */
    {
        int fd = tcp_connect(port);
        TD_CHECK(fd >= 0);
        static hconn h;
        h.fd = fd;
        h.len = 0;
        char head[256];
        int hn = snprintf(head, sizeof(head),
                          "POST /v1/traces HTTP/1.1\r\nHost: x\r\n" CT_JSON
                          "Expect: 100-continue\r\nContent-Length: %zu\r\n\r\n",
                          sizeof(big));
        TD_CHECK(send_all(fd, head, (size_t)hn));
        TD_CHECK(read_response(&h, &r));
        TD_ASSERT_EQ_INT(r.status, 413);
        close(fd);
    }

    /* 413: a chunked body that grows over the limit */
    {
        int fd = tcp_connect(port);
        TD_CHECK(fd >= 0);
        static hconn h;
        h.fd = fd;
        h.len = 0;
        const char *head =
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\n" CT_JSON "Transfer-Encoding: chunked\r\n\r\n";
        TD_CHECK(send_all(fd, head, strlen(head)));
        char chunk_head[32];
        int chn = snprintf(chunk_head, sizeof(chunk_head), "%zx\r\n", sizeof(big));
        TD_CHECK(send_all(fd, chunk_head, (size_t)chn) && send_all(fd, big, sizeof(big)) &&
                 send_all(fd, "\r\n0\r\n\r\n", 7));
        TD_CHECK(read_response(&h, &r));
        TD_ASSERT_EQ_INT(r.status, 413);
        close(fd);
    }

    /* 200: chunked bodies (no Content-Length) grow as pieces arrive, plain and gzip */
    for (int gzipped = 0; gzipped < 2; gzipped++) {
        int fd = tcp_connect(port);
        TD_CHECK(fd >= 0);
        static hconn h;
        h.fd = fd;
        h.len = 0;
        /*
         * The queue holds 10 spans: let the writer drain the 7 + 3 * gzipped spans
         * accepted so far, or a slow (loaded, unoptimised) writer turns this into 503.
         */
        TD_CHECK(sink_wait_spans(&sink, 7 + 3 * (uint64_t)gzipped, 5000));
        n = make_pb(pb, sizeof(pb), 3, 0, (uint32_t)(20 + gzipped));
        td_buf body = TD_BUF_INIT;
        if (gzipped) {
            TD_ASSERT_OK(td_gzip(pb, n, &body, NULL));
        } else {
            td_buf_add(&body, pb, n);
        }
        td_buf req = TD_BUF_INIT;
        td_buf_addf(&req,
                    "POST /v1/traces HTTP/1.1\r\nHost: x\r\n" CT_PB "%s"
                    "Transfer-Encoding: chunked\r\n\r\n",
                    gzipped ? "Content-Encoding: gzip\r\n" : "");
        size_t piece = body.len / 3 + 1;
        for (size_t off = 0; off < body.len; off += piece) {
            size_t k = body.len - off < piece ? body.len - off : piece;
            td_buf_addf(&req, "%zx\r\n", k);
            td_buf_add(&req, body.data + off, k);
            td_buf_addstr(&req, "\r\n");
        }
        td_buf_addstr(&req, "0\r\n\r\n");
        TD_CHECK(send_all(fd, req.data, req.len));
        TD_CHECK(read_response(&h, &r));
        TD_ASSERT_EQ_INT(r.status, 200);
        close(fd);
        td_buf_release(&req);
        td_buf_release(&body);
    }

    /* 413: a gzip body that inflates over the limit */
    td_buf_reset(&gz);
    TD_ASSERT_OK(td_gzip(big, sizeof(big), &gz, NULL));
    TD_CHECK(gz.len < o.max_recv_bytes);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_JSON "Content-Encoding: gzip\r\n",
                              gz.data, gz.len, &r),
                     413);

    /* pipelining: two requests in one write, two answers in order on one connection */
    {
        int fd = tcp_connect(port);
        TD_CHECK(fd >= 0);
        static hconn h;
        h.fd = fd;
        h.len = 0;
        td_buf two = TD_BUF_INIT;
        td_buf_reset(&jb);
        make_json(&jb, 1, false, 7);
        td_buf_addf(&two,
                    "POST /v1/traces HTTP/1.1\r\nHost: x\r\n" CT_JSON
                    "X-Request-Id: first\r\nContent-Length: %zu\r\n\r\n%s",
                    jb.len, jb.data);
        td_buf_addf(&two,
                    "POST /v1/traces HTTP/1.1\r\nHost: x\r\n" CT_PB
                    "X-Request-Id: second\r\nContent-Length: %zu\r\n\r\n",
                    (size_t)sizeof(junk));
        td_buf_add(&two, junk, sizeof(junk));
        TD_CHECK(send_all(fd, two.data, two.len));
        td_buf_release(&two);
        TD_CHECK(read_response(&h, &r));
        TD_ASSERT_EQ_INT(r.status, 200);
        TD_ASSERT_EQ_STR(header_of(&r, "X-Request-Id", v, sizeof(v)), "first");
        TD_CHECK(read_response(&h, &r));
        TD_ASSERT_EQ_INT(r.status, 400);
        TD_ASSERT_EQ_STR(header_of(&r, "X-Request-Id", v, sizeof(v)), "second");
        /* keep-alive: a third request on the same connection */
        n = make_pb(pb, sizeof(pb), 1, 0, 8);
        char head[256];
        int hn = snprintf(
            head, sizeof(head),
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\n" CT_PB "Content-Length: %zu\r\n\r\n", n);
        TD_CHECK(send_all(fd, head, (size_t)hn) && send_all(fd, pb, n));
        TD_CHECK(read_response(&h, &r));
        TD_ASSERT_EQ_INT(r.status, 200);
        close(fd);
    }

    /* 503 + Retry-After while the queue is full: hold the writer inside the sink */
    TD_CHECK(sink_wait_spans(&sink, 15, 5000)); /* everything so far is written */
    uint64_t before = sink_spans(&sink);
    sink_gate(&sink, true);
    n = make_pb(pb, sizeof(pb), 8, 0, 9);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_PB, pb, n, &r), 200);
    TD_CHECK(sink_wait_in_write(&sink, 5000));
    n = make_pb(pb, sizeof(pb), 5, 0, 10);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_PB, pb, n, &r), 503);
    TD_ASSERT_EQ_STR(header_of(&r, "Retry-After", v, sizeof(v)), "2"); /* 1.5 s rounded up */
    TD_CHECK(unpack_status(&r, &code, msg, sizeof(msg)));
    TD_ASSERT_EQ_INT(code, 14);
    sink_gate(&sink, false);

    td_collector_stop(c);
    TD_ASSERT_EQ_U64(sink_spans(&sink) - before, 8);
    /* accepted: 2 + 1 (partial) + 1 + 1 (partial) + 2 (gzip) + 3 + 3 (chunked) + 1 + 1
     * (pipelined) + 8 */
    TD_ASSERT_EQ_U64(sink_spans(&sink), 23);
    TD_CHECK(tcp_connect(port) < 0); /* the listener is gone */
    td_collector_free(c);
    td_buf_release(&jb);
    td_buf_release(&gz);
    sink_release(&sink);
}

static void test_http_multitenancy(void)
{
    fake_sink sink;
    sink_init(&sink);
    td_collector_opts o;
    default_opts(&o);
    o.http_listen = (char *)"127.0.0.1:0";
    o.multitenancy = true;
    td_collector *c;
    TD_ASSERT_OK(td_collector_new(&o, sink_of(&sink), &c, NULL));
    TD_ASSERT_OK(td_collector_start(c, NULL));
    int port = td_collector_http_port(c);
    hresp r;
    uint8_t pb[4096];
    size_t n = make_pb(pb, sizeof(pb), 3, 0, 1);
    TD_ASSERT_EQ_INT(http_req(port, "POST", "/v1/traces", CT_PB, pb, n, &r), 401);
    TD_ASSERT_EQ_INT(
        http_req(port, "POST", "/v1/traces", CT_PB "X-Scope-OrgID: a|b\r\n", pb, n, &r), 400);
    TD_ASSERT_EQ_INT(
        http_req(port, "POST", "/v1/traces", CT_PB "X-Scope-OrgID: a/b\r\n", pb, n, &r), 400);
    TD_ASSERT_EQ_INT(
        http_req(port, "POST", "/v1/traces", CT_PB "X-Scope-OrgID: team-a\r\n", pb, n, &r), 200);
    td_collector_stop(c);
    TD_ASSERT_EQ_U64(sink_spans(&sink), 3);
    TD_ASSERT_EQ_STR(sink.last_tenant, "team-a");
    td_collector_free(c);
    sink_release(&sink);
}

/* ---- a gRPC C core client ---- */

typedef struct gresult {
    grpc_status_code status;
    char message[256];
    uint8_t body[4096];
    size_t body_len;
    bool has_body;
    uint8_t details[1024]; /* grpc-status-details-bin, raw */
    size_t details_len;
} gresult;

static void grpc_unary(grpc_channel *ch, const char *method, const void *req, size_t len,
                       const char *tenant, gresult *out)
{
    memset(out, 0, sizeof(*out));
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec dl =
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(10000, GPR_TIMESPAN));
    grpc_slice m = grpc_slice_from_static_string(method);
    grpc_call *call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL, dl, NULL);
    TD_ASSERT(call);
    grpc_slice s = grpc_slice_from_copied_buffer(req, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    grpc_metadata md;
    memset(&md, 0, sizeof(md));
    size_t nmd = 0;
    if (tenant) {
        md.key = grpc_slice_from_static_string("x-scope-orgid");
        md.value = grpc_slice_from_copied_string(tenant);
        nmd = 1;
    }
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_byte_buffer *resp = NULL;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = nmd ? &md : NULL;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &out->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    TD_ASSERT(grpc_call_start_batch(call, ops, 6, (void *)1, NULL) == GRPC_CALL_OK);
    grpc_event ev =
        grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    TD_ASSERT(ev.type == GRPC_OP_COMPLETE);
    snprintf(out->message, sizeof(out->message), "%.*s", (int)GRPC_SLICE_LENGTH(details),
             (const char *)GRPC_SLICE_START_PTR(details));
    if (resp) {
        grpc_byte_buffer_reader rd;
        TD_ASSERT(grpc_byte_buffer_reader_init(&rd, resp));
        grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
        out->has_body = true;
        out->body_len = GRPC_SLICE_LENGTH(all) < sizeof(out->body) ? GRPC_SLICE_LENGTH(all) : 0;
        memcpy(out->body, GRPC_SLICE_START_PTR(all), out->body_len);
        grpc_slice_unref(all);
        grpc_byte_buffer_reader_destroy(&rd);
        grpc_byte_buffer_destroy(resp);
    }
    for (size_t i = 0; i < trail_md.count; i++) {
        if (grpc_slice_str_cmp(trail_md.metadata[i].key, "grpc-status-details-bin") == 0) {
            size_t dn = GRPC_SLICE_LENGTH(trail_md.metadata[i].value);
            out->details_len = dn < sizeof(out->details) ? dn : 0;
            memcpy(out->details, GRPC_SLICE_START_PTR(trail_md.metadata[i].value),
                   out->details_len);
        }
    }
    if (nmd) {
        grpc_slice_unref(md.value);
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_byte_buffer_destroy(bb);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

#define EXPORT "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

static grpc_channel *grpc_connect(int port, bool gzip)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    grpc_arg arg = {GRPC_ARG_INTEGER,
                    (char *)GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM,
                    {.integer = GRPC_COMPRESS_GZIP}};
    grpc_channel_args args = {1, &arg};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, gzip ? &args : NULL);
    grpc_channel_credentials_release(creds);
    return ch;
}

static void test_grpc(void)
{
    fake_sink sink;
    sink_init(&sink);
    td_collector_opts o;
    default_opts(&o);
    o.grpc_listen = (char *)"127.0.0.1:0";
    o.queue_max_spans = 10;
    o.max_recv_bytes = 16 * 1024;
    td_collector *c;
    TD_ASSERT_OK(td_collector_new(&o, sink_of(&sink), &c, NULL));
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_collector_start(c, &err));
    int port = td_collector_grpc_port(c);
    TD_CHECK(port > 0);

    grpc_init();
    grpc_channel *ch = grpc_connect(port, false);
    gresult g;
    uint8_t pb[8192];
    uint64_t ok0 = mval(TD_M_INGEST_REQUESTS, "grpc", "ok");

    /* OK with an empty response */
    size_t n = make_pb(pb, sizeof(pb), 2, 0, 1);
    grpc_unary(ch, EXPORT, pb, n, NULL, &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_OK);
    TD_CHECK(g.has_body);
    TD_ASSERT_EQ_U64(g.body_len, 0);
    TD_ASSERT_EQ_U64(mval(TD_M_INGEST_REQUESTS, "grpc", "ok") - ok0, 1);

    /* partial_success */
    n = make_pb(pb, sizeof(pb), 1, 2, 2);
    grpc_unary(ch, EXPORT, pb, n, NULL, &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_OK);
    td_otlp_response *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, g.body_len, g.body);
    TD_CHECK(resp && resp->partial_success);
    TD_ASSERT_EQ_INT(resp->partial_success->rejected_spans, 2);
    TD_CHECK(resp->partial_success->error_message[0] != '\0');
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(resp,
                                                                                             NULL);

    /* undecodable -> INVALID_ARGUMENT */
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01};
    grpc_unary(ch, EXPORT, junk, sizeof(junk), NULL, &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_INVALID_ARGUMENT);
    TD_CHECK(g.message[0] != '\0');

    /* unknown method -> UNIMPLEMENTED, promptly */
    grpc_unary(ch, "/grpc.health.v1.Health/Check", "", 0, NULL, &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_UNIMPLEMENTED);

    /* over max-recv-size (after decompression) -> RESOURCE_EXHAUSTED from core */
    static uint8_t big[20 * 1024];
    memset(big, 0, sizeof(big));
    grpc_unary(ch, EXPORT, big, sizeof(big), NULL, &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_RESOURCE_EXHAUSTED);

    /* gzip on the wire */
    grpc_channel *gch = grpc_connect(port, true);
    n = make_pb(pb, sizeof(pb), 1, 0, 3);
    grpc_unary(gch, EXPORT, pb, n, NULL, &g);
    if (g.status != GRPC_STATUS_OK) {
        fprintf(stderr, "  gzip export: %d %s\n", g.status, g.message);
    }
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_OK);
    grpc_unary(gch, EXPORT, big, sizeof(big), NULL, &g); /* compresses to little, still too big */
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    grpc_channel_destroy(gch);

    /* queue full -> UNAVAILABLE with RetryInfo in grpc-status-details-bin */
    TD_CHECK(sink_wait_spans(&sink, 4, 5000));
    uint64_t before = sink_spans(&sink);
    sink_gate(&sink, true);
    n = make_pb(pb, sizeof(pb), 8, 0, 4);
    grpc_unary(ch, EXPORT, pb, n, NULL, &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_OK);
    TD_CHECK(sink_wait_in_write(&sink, 5000));
    n = make_pb(pb, sizeof(pb), 5, 0, 5);
    grpc_unary(ch, EXPORT, pb, n, NULL, &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_UNAVAILABLE);
    TD_CHECK(g.details_len > 0);
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, g.details_len, g.details);
    TD_CHECK(st);
    TD_ASSERT_EQ_INT(st->code, 14);
    TD_ASSERT_EQ_U64(st->n_details, 1);
    TD_ASSERT_EQ_STR(st->details[0]->type_url, "type.googleapis.com/google.rpc.RetryInfo");
    Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(NULL, st->details[0]->value.len,
                                                                 st->details[0]->value.data);
    TD_CHECK(ri && ri->retry_delay);
    TD_ASSERT_EQ_INT(ri->retry_delay->seconds, 1);
    TD_ASSERT_EQ_INT(ri->retry_delay->nanos, 500000000);
    google__rpc__retry_info__free_unpacked(ri, NULL);
    google__rpc__status__free_unpacked(st, NULL);
    sink_gate(&sink, false);

    grpc_channel_destroy(ch);
    grpc_shutdown();
    td_collector_stop(c);
    TD_ASSERT_EQ_U64(sink_spans(&sink) - before, 8);
    TD_ASSERT_EQ_U64(sink_spans(&sink), 2 + 1 + 1 + 8);
    td_collector_free(c);
    sink_release(&sink);
}

static void test_grpc_multitenancy(void)
{
    fake_sink sink;
    sink_init(&sink);
    td_collector_opts o;
    default_opts(&o);
    o.grpc_listen = (char *)"127.0.0.1:0";
    o.multitenancy = true;
    td_collector *c;
    TD_ASSERT_OK(td_collector_new(&o, sink_of(&sink), &c, NULL));
    TD_ASSERT_OK(td_collector_start(c, NULL));
    grpc_init();
    grpc_channel *ch = grpc_connect(td_collector_grpc_port(c), false);
    gresult g;
    uint8_t pb[4096];
    size_t n = make_pb(pb, sizeof(pb), 3, 0, 1);
    grpc_unary(ch, EXPORT, pb, n, NULL, &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_UNAUTHENTICATED);
    grpc_unary(ch, EXPORT, pb, n, "a|b", &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_INVALID_ARGUMENT);
    grpc_unary(ch, EXPORT, pb, n, "team-b", &g);
    TD_ASSERT_EQ_INT(g.status, GRPC_STATUS_OK);
    grpc_channel_destroy(ch);
    grpc_shutdown();
    td_collector_stop(c);
    TD_ASSERT_EQ_U64(sink_spans(&sink), 3);
    TD_ASSERT_EQ_STR(sink.last_tenant, "team-b");
    td_collector_free(c);
    sink_release(&sink);
}

/* A second collector on ports already in use fails with TD_IO and cleans up. */
static void test_port_in_use(void)
{
    fake_sink sink;
    sink_init(&sink);
    td_collector_opts o;
    default_opts(&o);
    o.grpc_listen = (char *)"127.0.0.1:0";
    o.http_listen = (char *)"127.0.0.1:0";
    td_collector *a, *b;
    TD_ASSERT_OK(td_collector_new(&o, sink_of(&sink), &a, NULL));
    TD_ASSERT_OK(td_collector_start(a, NULL));
    char gl[64], hl[64];
    snprintf(gl, sizeof(gl), "127.0.0.1:%d", td_collector_grpc_port(a));
    snprintf(hl, sizeof(hl), "127.0.0.1:%d", td_collector_http_port(a));
    td_err err;

    o.grpc_listen = gl;
    o.http_listen = (char *)"127.0.0.1:0";
    TD_ASSERT_OK(td_collector_new(&o, sink_of(&sink), &b, NULL));
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_collector_start(b, &err), TD_IO);
    TD_CHECK(strstr(err.msg, gl) != NULL);
    td_collector_free(b);

    o.grpc_listen = (char *)"";
    o.http_listen = hl;
    TD_ASSERT_OK(td_collector_new(&o, sink_of(&sink), &b, NULL));
    td_err_init(&err);
    TD_ASSERT_EQ_INT(td_collector_start(b, &err), TD_IO);
    TD_CHECK(strstr(err.msg, "in use") != NULL);
    td_collector_free(b);

    td_collector_free(a); /* stop + free in one */
    TD_ASSERT_EQ_U64(sink_spans(&sink), 0);
    sink_release(&sink);
}


/* ---- index entries of td_batch_build ---- */

/* How many entries of fragment frag are (scope, type, key, value). */
static int idx_count(const td_batch *b, uint32_t frag, uint8_t scope, uint8_t type,
                     const char *key, const void *val, size_t vlen)
{
    int n = 0;
    for (size_t i = 0; i < b->nidx; i++) {
        const td_idx_entry *e = &b->idx[i];
        if (e->frag == frag && e->scope == scope && e->type == type &&
            e->key_len == strlen(key) && memcmp(e->key, key, e->key_len) == 0 &&
            e->val_len == vlen && (vlen == 0 || memcmp(e->val, val, vlen) == 0)) {
            n++;
        }
    }
    return n;
}

static int idx_str_count(const td_batch *b, uint32_t frag, uint8_t scope, uint8_t type,
                         const char *key, const char *val)
{
    return idx_count(b, frag, scope, type, key, val, strlen(val));
}

static int idx_int_count(const td_batch *b, uint32_t frag, uint8_t scope, const char *key,
                         int64_t v)
{
    uint8_t x[8];
    uint64_t u = (uint64_t)v ^ (1ull << 63);
    for (int i = 7; i >= 0; i--) {
        x[i] = (uint8_t)u;
        u >>= 8;
    }
    return idx_count(b, frag, scope, TD_IDX_INT, key, x, 8);
}

/* Entries of fragment frag whose key is key, whatever the value. */
static int idx_key_count(const td_batch *b, uint32_t frag, uint8_t scope, const char *key)
{
    int n = 0;
    for (size_t i = 0; i < b->nidx; i++) {
        const td_idx_entry *e = &b->idx[i];
        n += e->frag == frag && e->scope == scope && e->key_len == strlen(key) &&
             memcmp(e->key, key, e->key_len) == 0;
    }
    return n;
}

#define TRACE_A "0000000000000000000000000000000a"
#define TRACE_B "0000000000000000000000000000000b"

static void test_batch_index_entries(void)
{
    char longkey[301];
    memset(longkey, 'k', 300);
    longkey[300] = '\0';
    td_buf j = TD_BUF_INIT;
    td_buf_addf(
        &j,
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
        "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
        "\"scopeSpans\":[{\"scope\":{\"name\":\"lib\",\"attributes\":["
        "{\"key\":\"scope.a\",\"value\":{\"stringValue\":\"x\"}}]},\"spans\":["
        /* trace A, root */
        "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"0000000000000001\",\"name\":\"root-op\","
        "\"kind\":2,\"startTimeUnixNano\":\"1000\",\"endTimeUnixNano\":\"2024\","
        "\"status\":{\"code\":2,\"message\":\"boom\"},\"attributes\":["
        "{\"key\":\"arr\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\"},"
        "{\"stringValue\":\"b\"},{\"stringValue\":\"a\"},{\"intValue\":\"5\"},"
        "{\"arrayValue\":{\"values\":[{\"stringValue\":\"nested\"}]}}]}}},"
        "{\"key\":\"http.code\",\"value\":{\"intValue\":\"200\"}},"
        "{\"key\":\"ratio\",\"value\":{\"doubleValue\":0.5}},"
        "{\"key\":\"ok\",\"value\":{\"boolValue\":true}},"
        "{\"key\":\"kv\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"in\","
        "\"value\":{\"stringValue\":\"side\"}}]}}},"
        "{\"key\":\"raw\",\"value\":{\"bytesValue\":\"AAE=\"}},"
        "{\"key\":\"%s\",\"value\":{\"stringValue\":\"too-long-key\"}}],"
        "\"events\":[{\"name\":\"e\",\"attributes\":[{\"key\":\"ev.k\","
        "\"value\":{\"stringValue\":\"ev\"}}]}],"
        "\"links\":[{\"traceId\":\"" TRACE_B "\",\"spanId\":\"0000000000000009\","
        "\"attributes\":[{\"key\":\"ln.k\",\"value\":{\"intValue\":\"-3\"}}]}]},"
        /* trace A, child */
        "{\"traceId\":\"" TRACE_A "\",\"spanId\":\"0000000000000002\","
        "\"parentSpanId\":\"0000000000000001\",\"name\":\"child\",\"kind\":3,"
        "\"startTimeUnixNano\":\"1500\",\"endTimeUnixNano\":\"1500\","
        "\"attributes\":[{\"key\":\"http.code\",\"value\":{\"intValue\":\"200\"}}]},"
        /* trace B, a child only */
        "{\"traceId\":\"" TRACE_B "\",\"spanId\":\"0000000000000003\","
        "\"parentSpanId\":\"0000000000000007\",\"name\":\"b-op\","
        "\"startTimeUnixNano\":\"3000\",\"endTimeUnixNano\":\"2000\"}"
        "]}]}]}",
        longkey);
    td_arena a;
    td_arena_init(&a, 64 * 1024, 0);
    td_otlp_request *req = NULL;
    td_err err;
    td_err_init(&err);
    TD_ASSERT_OK(td_otlp_decode_json(j.data, j.len, &a, &req, &err));
    td_batch *b = NULL;
    TD_ASSERT_OK(td_batch_build(req, "t", &a, &b, NULL, &err));
    TD_CHECK(b != NULL);
    TD_ASSERT_EQ_INT(b->nfrags, 2);
    TD_ASSERT_EQ_INT(b->frags[0].trace_id[15], 0x0a);

    /* attributes of every scope, arrays per element, each distinct entry once */
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'r', 's', "service.name", "svc"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 1, 'r', 's', "service.name", "svc"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'n', 's', "scope.a", "x"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 's', 's', "arr", "a"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 's', 's', "arr", "b"), 1);
    TD_ASSERT_EQ_INT(idx_int_count(b, 0, 's', "arr", 5), 1);
    TD_ASSERT_EQ_INT(idx_key_count(b, 0, 's', "arr"), 3); /* nested arrays are not indexed */
    TD_ASSERT_EQ_INT(idx_int_count(b, 0, 's', "http.code", 200), 1); /* two spans, one entry */
    uint8_t half[8] = {0xbf, 0xe0, 0, 0, 0, 0, 0, 0}; /* 0.5 = 0x3fe0...: sign bit flipped */
    TD_ASSERT_EQ_INT(idx_count(b, 0, 's', 'f', "ratio", half, 8), 1);
    uint8_t one = 1;
    TD_ASSERT_EQ_INT(idx_count(b, 0, 's', 'b', "ok", &one, 1), 1);
    TD_ASSERT_EQ_INT(idx_key_count(b, 0, 's', "kv"), 0);
    TD_ASSERT_EQ_INT(idx_key_count(b, 0, 's', "raw"), 0);
    TD_ASSERT_EQ_INT(idx_key_count(b, 0, 's', longkey), 0);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'e', 's', "ev.k", "ev"), 1);
    TD_ASSERT_EQ_INT(idx_int_count(b, 0, 'l', "ln.k", -3), 1);

    /* intrinsics */
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 's', "name", "root-op"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 's', "name", "child"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 'k', "status", "error"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 'k', "status", "unset"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 'k', "kind", "server"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 'k', "kind", "client"), 1);
    TD_ASSERT_EQ_INT(idx_key_count(b, 0, 'i', "statusMessage"), 1); /* empty ones are not */
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 's', "statusMessage", "boom"), 1);
    uint8_t d11 = 11, d0 = 0; /* 1024 ns: class 11 ([2^10, 2^11)); 0 ns: class 0 */
    TD_ASSERT_EQ_INT(idx_count(b, 0, 'i', 'd', "duration", &d11, 1), 1);
    TD_ASSERT_EQ_INT(idx_count(b, 0, 'i', 'd', "duration", &d0, 1), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 's', "rootName", "root-op"), 1);
    TD_ASSERT_EQ_INT(idx_key_count(b, 0, 'i', "rootName"), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 0, 'i', 's', "rootServiceName", "svc"), 1);
    /* trace B: no root span, so no root entries; end before start is duration 0 */
    TD_ASSERT_EQ_INT(idx_key_count(b, 1, 'i', "rootName"), 0);
    TD_ASSERT_EQ_INT(idx_key_count(b, 1, 'i', "rootServiceName"), 0);
    TD_ASSERT_EQ_INT(idx_str_count(b, 1, 'i', 's', "name", "b-op"), 1);
    TD_ASSERT_EQ_INT(idx_count(b, 1, 'i', 'd', "duration", &d0, 1), 1);
    TD_ASSERT_EQ_INT(idx_str_count(b, 1, 'i', 'k', "kind", "unspecified"), 1);

    /* no duplicates at all, and honest queue bytes */
    for (size_t x = 0; x < b->nidx; x++) {
        const td_idx_entry *e = &b->idx[x];
        for (size_t y = x + 1; y < b->nidx; y++) {
            const td_idx_entry *f = &b->idx[y];
            TD_CHECK(!(e->frag == f->frag && e->scope == f->scope && e->type == f->type &&
                       e->key_len == f->key_len && memcmp(e->key, f->key, e->key_len) == 0 &&
                       e->val_len == f->val_len &&
                       (e->val_len == 0 || memcmp(e->val, f->val, e->val_len) == 0)));
        }
        TD_CHECK(e->key >= b->data && e->key + e->key_len <= b->data + b->data_cap);
        TD_CHECK(e->val >= b->data && e->val + e->val_len <= b->data + b->data_cap);
    }
    TD_ASSERT_EQ_U64(b->q.bytes, sizeof(td_batch) + b->nfrags * sizeof(td_frag) +
                                     b->nres * sizeof(td_res) + b->nidx * sizeof(td_idx_entry) +
                                     b->data_cap);
    td_batch_free(b);
    td_arena_release(&a);
    td_buf_release(&j);
}

/* Arena exhaustion while planning index entries fails cleanly (no batch, no leak). */
static void test_batch_index_arena_limit(void)
{
    td_buf j = TD_BUF_INIT;
    td_buf_addstr(&j, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[");
    for (int i = 0; i < 200; i++) {
        td_buf_addf(&j,
                    "%s{\"traceId\":\"%032x\",\"spanId\":\"%016x\",\"name\":\"op%d\","
                    "\"attributes\":[{\"key\":\"k%d\",\"value\":{\"stringValue\":\"v%d\"}}]}",
                    i ? "," : "", i + 1, i + 1, i, i, i);
    }
    td_buf_addstr(&j, "]}]}]}");
    bool ok = false, limited = false;
    for (size_t limit = 64 * 1024; limit <= 16 * 1024 * 1024 && !ok; limit *= 2) {
        td_arena a;
        td_arena_init(&a, 16 * 1024, limit);
        td_otlp_request *req = NULL;
        td_err err;
        td_err_init(&err);
        td_status st = td_otlp_decode_json(j.data, j.len, &a, &req, &err);
        if (st == TD_OK) {
            td_batch *b = NULL;
            st = td_batch_build(req, "t", &a, &b, NULL, &err);
            if (st == TD_OK) {
                TD_CHECK(b != NULL);
                TD_ASSERT_EQ_INT(b->nfrags, 200);
                TD_CHECK(b->nidx >= 200 * 6);
                td_batch_free(b);
                ok = true;
            } else {
                TD_CHECK(b == NULL);
                TD_ASSERT_EQ_INT(st, TD_TOO_LARGE);
                limited = true;
            }
        }
        td_arena_release(&a);
    }
    TD_CHECK(ok);
    (void)limited;
    td_buf_release(&j);
}

TEST_LIST = {
    {"batch_index_entries", test_batch_index_entries},
    {"batch_index_arena_limit", test_batch_index_arena_limit},
    {"tenant", test_tenant},
    {"options", test_options},
    {"submit_overload", test_submit_overload},
    {"http", test_http},
    {"http_multitenancy", test_http_multitenancy},
    {"grpc", test_grpc},
    {"grpc_multitenancy", test_grpc_multitenancy},
    {"port_in_use", test_port_in_use},
    {NULL, NULL},
};
