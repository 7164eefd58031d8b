/*
 * otlp_http.c - OTLP/HTTP ingest (API-CONTRACT 2.4): POST /v1/traces on
 * libmicrohttpd with an internal polling thread pool and keep-alive.
 *
 * A request moves through MHD's callback in three steps: headers (every check
 * that needs no body happens here), body chunks (accumulated up to
 * max-recv-size, then discarded), and the final call, which decompresses,
 * submits and answers. Errors found early are answered only after the body has
 * been read (and thrown away, within a budget) so the connection stays usable
 * and the client reads the answer rather than a reset; the one exception is a
 * Content-Length that is already over the limit, answered at once with 413
 * (MHD then closes the connection).
 *
 * Nothing here blocks on the write queue: a full queue is an immediate 503 with
 * Retry-After.
 */
#include "collector/internal.h"

#include "core/arena.h"
#include "core/buf.h"
#include "core/gzip.h"
#include "core/log.h"
#include "core/mem.h"
#include "proto/proto.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TRACES_PATH "/v1/traces"
#define CT_PROTOBUF "application/x-protobuf"
#define CT_JSON "application/json"
#define STOP_GRACE_MS 5000
#define CONN_TIMEOUT_S 120
#define CONN_MEMORY (64 * 1024)
/* Unwanted body bytes read (and dropped) so the client still gets its answer; past this, close. */
#define DISCARD_MIN (64 * 1024 * 1024)
/* First body buffer when the length is not known in advance (chunked transfer encoding). */
#define BODY_MIN (64 * 1024)

struct td_http_server {
    td_collector *c;
    struct MHD_Daemon *d;
    int port;
    size_t max_recv;
    int64_t retry_after_ms;
    _Atomic int active; /* requests between their first callback and completion */
};

/* Per-request state, owned by MHD's *con_cls slot; freed in on_completed. */
typedef struct hreq {
    td_http_server *h;
    td_status early; /* error found before the final call (TD_OK: none) */
    td_err err;
    bool text_errors; /* answer errors as text/plain (content type not usable) */
    td_encoding enc;
    bool gzip;
    bool discarding; /* body is read and dropped (early error or over the limit) */
    bool answered;   /* a response is queued; later callbacks have nothing to do */
    bool answer_now; /* answer at the headers (oversized Content-Length) */
    size_t raw_len;  /* body bytes received, kept or not */
    size_t discard_budget;
    char tenant[TD_TENANT_MAX + 1];
    char request_id[65];
    /*
     * The body as received, in the request's own arena (so its memory comes from
     * the thread's chunk cache, not a fresh mapping per request): sized from
     * Content-Length when there is one, else doubled as chunks arrive.
     */
    td_arena arena;
    char *body;
    size_t body_len, body_cap;
} hreq;

/* ---- small helpers ---- */

static bool media_type_is(const char *v, const char *want)
{
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    size_t n = strcspn(v, ";");
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    return n == strlen(want) && strncasecmp(v, want, n) == 0;
}

/* Same comparison for a token such as a Content-Encoding value. */
static bool token_is(const char *v, const char *want)
{
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    return n == strlen(want) && strncasecmp(v, want, n) == 0;
}

/* Keep a client's X-Request-Id only if it is short and harmless in logs and headers. */
static bool request_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Append s as the body of a JSON string: escapes quotes, backslash and controls. */
static void json_escape(td_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        switch (ch) {
        case '"':
            td_buf_addstr(b, "\\\"");
            break;
        case '\\':
            td_buf_addstr(b, "\\\\");
            break;
        case '\n':
            td_buf_addstr(b, "\\n");
            break;
        case '\r':
            td_buf_addstr(b, "\\r");
            break;
        case '\t':
            td_buf_addstr(b, "\\t");
            break;
        default:
            if (ch < 0x20 || ch == 0x7f) {
                char u[7] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15], 0};
                td_buf_addstr(b, u);
            } else {
                /* messages are valid UTF-8 (td__collector_submit sanitises them) */
                td_buf_addch(b, (char)ch);
            }
        }
    }
}

/* ---- responses ---- */

static enum MHD_Result send_buf(struct MHD_Connection *conn, hreq *r, unsigned int code,
                                const char *ctype, const void *data, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
    }
    if (code == MHD_HTTP_SERVICE_UNAVAILABLE || code == MHD_HTTP_TOO_MANY_REQUESTS) {
        char ra[32];
        int64_t ms = r->h->retry_after_ms;
        snprintf(ra, sizeof(ra), "%lld", (long long)((ms + 999) / 1000));
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    enum MHD_Result ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, hreq *r, unsigned int code,
                                 const char *text)
{
    return send_buf(conn, r, code, "text/plain; charset=utf-8", text, strlen(text));
}

/* An error answer: google.rpc.Status encoded like the request, or the fixed text bodies. */
static enum MHD_Result send_error(struct MHD_Connection *conn, hreq *r, td_status st,
                                  const char *msg)
{
    unsigned int code = (unsigned int)td_status_http(st);
    if (st == TD_METHOD) {
        return send_text(conn, r, code, "405 method not allowed, supported: [POST]");
    }
    if (st == TD_UNSUPPORTED) {
        return send_text(conn, r, code,
                         "415 unsupported media type, supported: [application/json, "
                         "application/x-protobuf]");
    }
    if (st == TD_NOT_FOUND || r->text_errors) {
        char line[TD_ERR_MSG_MAX + 16];
        snprintf(line, sizeof(line), "%u %s", code, msg);
        return send_text(conn, r, code, line);
    }
    if (r->enc == TD_ENC_JSON) {
        td_buf b = TD_BUF_INIT;
        td_buf_addf(&b, "{\"code\":%d,\"message\":\"", td_status_grpc(st));
        json_escape(&b, msg);
        td_buf_addstr(&b, "\"}");
        enum MHD_Result ret = send_buf(conn, r, code, CT_JSON, b.data, b.len);
        td_buf_release(&b);
        return ret;
    }
    Google__Rpc__Status s = GOOGLE__RPC__STATUS__INIT;
    s.code = td_status_grpc(st);
    s.message = (char *)msg;
    uint8_t buf[TD_ERR_MSG_MAX + 32]; /* code + message + tags always fit */
    size_t n = google__rpc__status__get_packed_size(&s);
    TD_ASSERT(n <= sizeof(buf));
    google__rpc__status__pack(&s, buf);
    return send_buf(conn, r, code, CT_PROTOBUF, buf, n);
}

static enum MHD_Result send_ok(struct MHD_Connection *conn, hreq *r, const td_ingest_result *res)
{
    if (r->enc == TD_ENC_JSON) {
        td_buf b = TD_BUF_INIT;
        if (res->rejected_spans || res->message[0]) {
            td_buf_addf(&b, "{\"partialSuccess\":{\"rejectedSpans\":\"%llu\",\"errorMessage\":\"",
                        (unsigned long long)res->rejected_spans);
            json_escape(&b, res->message);
            td_buf_addstr(&b, "\"}}");
        } else {
            td_buf_addstr(&b, "{}");
        }
        enum MHD_Result ret = send_buf(conn, r, MHD_HTTP_OK, CT_JSON, b.data, b.len);
        td_buf_release(&b);
        return ret;
    }
    td_otlp_response resp =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    if (res->rejected_spans || res->message[0]) {
        ps.rejected_spans = (int64_t)res->rejected_spans;
        ps.error_message = (char *)res->message;
        resp.partial_success = &ps;
    }
    uint8_t buf[sizeof(res->message) + 64];
    size_t n =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__get_packed_size(
            &resp);
    TD_ASSERT(n <= sizeof(buf));
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__pack(&resp, buf);
    return send_buf(conn, r, MHD_HTTP_OK, CT_PROTOBUF, buf, n);
}

/* ---- the request callbacks ---- */

/* How many refused body bytes we read and drop to answer cleanly (max-recv-size is <= 1 GiB). */
static size_t discard_budget(const td_http_server *h)
{
    return 2 * h->max_recv > DISCARD_MIN ? 2 * h->max_recv : DISCARD_MIN;
}

static void set_early(hreq *r, td_status st, const char *msg)
{
    if (r->early == TD_OK) {
        td_err_set(&r->err, st, "%s", msg);
        r->early = st;
    }
}

/*
 * Room for n more body bytes (body_len + n <= max-recv-size, checked by the
 * caller); exact: exactly that much (the length is known). Growing copies what
 * arrived so far into a block twice as big; the old block stays in the arena
 * until the request ends, which at most doubles what a chunked body costs.
 * False when out of memory.
 */
static bool body_reserve(hreq *r, size_t n, bool exact)
{
    size_t need = r->body_len + n;
    if (need <= r->body_cap) {
        return true;
    }
    size_t cap = exact ? need : r->body_cap ? 2 * r->body_cap : BODY_MIN;
    if (cap < need) {
        cap = need;
    }
    if (cap > r->h->max_recv) {
        cap = r->h->max_recv;
    }
    char *p = td_arena_alloc(&r->arena, cap);
    if (!p) {
        return false;
    }
    if (r->body_len) {
        memcpy(p, r->body, r->body_len);
    }
    r->body = p;
    r->body_cap = cap;
    return true;
}

/* Forget the body and give its memory back (to the thread's chunk cache). */
static void body_drop(hreq *r)
{
    td_arena_release(&r->arena);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
}

/* Everything decidable from the request line and headers. */
static void check_headers(hreq *r, struct MHD_Connection *conn, const char *url, const char *method)
{
    const td_collector_opts *o = td__collector_opts(r->h->c);
    r->text_errors = true;
    if (strcmp(url, TRACES_PATH) != 0) {
        set_early(r, TD_NOT_FOUND, "page not found");
        return;
    }
    if (strcmp(method, "POST") != 0) {
        set_early(r, TD_METHOD, "method not allowed");
        return;
    }
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (ct && media_type_is(ct, CT_PROTOBUF)) {
        r->enc = TD_ENC_PROTOBUF;
    } else if (ct && media_type_is(ct, CT_JSON)) {
        r->enc = TD_ENC_JSON;
    } else {
        set_early(r, TD_UNSUPPORTED, "unsupported media type");
        return;
    }
    r->text_errors = false; /* from here on errors are google.rpc.Status like the request */

    const char *ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (ce && (token_is(ce, "gzip") || token_is(ce, "x-gzip"))) {
        r->gzip = true;
    } else if (ce && !token_is(ce, "identity") && !token_is(ce, "")) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "unsupported Content-Encoding \"%.64s\": supported are gzip and identity", ce);
        set_early(r, TD_INVALID, msg);
        return;
    }

    const char *org = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Scope-OrgID");
    td_err terr;
    td_err_init(&terr);
    if (td__tenant_for_write(o, org, r->tenant, &terr) != TD_OK) {
        set_early(r, terr.code, terr.msg);
        return;
    }

    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (!errno && end != cl && n > r->h->max_recv) {
            td_err_set(&r->err, TD_TOO_LARGE,
                       "request body of %llu bytes exceeds the limit of %zu bytes", n,
                       r->h->max_recv);
            r->early = TD_TOO_LARGE;
            /*
             * Answer before the body when the client waits for 100-continue (it then
             * never sends it) or when the body is too big to read and drop; else read
             * and drop it first, so a client still busy sending is not cut off by a
             * reset before it reads the 413.
             */
            const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
            r->answer_now =
                (expect && token_is(expect, "100-continue")) || n > discard_budget(r->h);
            return;
        }
        if (!errno && end != cl && n > 0) {
            /* allocate the exact body once; a failure here just means trying again later */
            (void)body_reserve(r, (size_t)n, true);
        }
    }
}

static void log_answer(const hreq *r, td_status st, const char *msg)
{
    if (st == TD_OK) {
        td_log(TD_LOG_DEBUG, "otlp_http", "POST %s: 200", TRACES_PATH);
    } else if (st == TD_OVERLOADED || st == TD_NOMEM || st == TD_INTERNAL || st == TD_IO) {
        TD_LOG_THROTTLED(TD_LOG_WARN, "otlp_http", "answered %d: %s", td_status_http(st), msg);
    } else {
        TD_LOG_THROTTLED(TD_LOG_INFO, "otlp_http", "answered %d: %s", td_status_http(st), msg);
    }
    (void)r;
}

/* The final call: decompress, submit, answer. */
static enum MHD_Result finish(struct MHD_Connection *conn, hreq *r)
{
    td_http_server *h = r->h;
    if (r->early) {
        td__collector_count_reject("http", r->early, r->raw_len);
        log_answer(r, r->early, r->err.msg);
        return send_error(conn, r, r->early, r->err.msg);
    }
    td_err err;
    td_err_init(&err);
    td_slice body = {r->body ? r->body : "", r->body_len};
    td_status st = TD_OK;
    if (r->gzip) {
        /* inflated next to the compressed body, in the same arena */
        st = td_gunzip_arena(body.ptr, body.len, h->max_recv, &r->arena, &body, &err);
        if (st) {
            td__collector_count_reject("http", st, r->raw_len);
        }
    }
    td_ingest_result res;
    memset(&res, 0, sizeof(res));
    if (!st) {
        /* decoded straight from the buffer MHD's chunks were copied into: one copy */
        st = td__collector_submit(h->c, "http", r->enc, (const uint8_t *)body.ptr, body.len,
                                  r->tenant, &res, &err);
    }
    body_drop(r);
    log_answer(r, st, err.msg);
    if (st) {
        return send_error(conn, r, st, err.msg);
    }
    return send_ok(conn, r, &res);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    td_http_server *h = cls;
    hreq *r = *con_cls;
    if (!r) {
        r = td_xcalloc(1, sizeof(*r));
        r->h = h;
        td_err_init(&r->err);
        /* no limit: body_reserve and td_gunzip_arena bound what goes in by max-recv-size */
        td_arena_init(&r->arena, BODY_MIN, 0);
        strcpy(r->tenant, TD_DEFAULT_TENANT);
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (rid && request_id_ok(rid)) {
            snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
        } else {
            td_log_new_request_id(r->request_id);
        }
        atomic_fetch_add(&h->active, 1);
        *con_cls = r;
        td_log_ctx_push(r->request_id, NULL);
        check_headers(r, conn, url, method);
        r->discard_budget = discard_budget(h);
        enum MHD_Result ret = MHD_YES;
        if (r->answer_now) {
            /* Content-Length over the limit: answer now, MHD closes the connection afterwards */
            td__collector_count_reject("http", r->early, 0);
            log_answer(r, r->early, r->err.msg);
            ret = send_error(conn, r, r->early, r->err.msg);
            r->answered = true;
        }
        r->discarding = r->early != TD_OK;
        td_log_ctx_pop();
        return ret;
    }

    if (r->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    td_log_ctx_push(r->request_id, r->tenant);
    enum MHD_Result ret = MHD_YES;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->raw_len += n;
        if (!r->discarding && n > h->max_recv - r->body_len) {
            td_err_set(&r->err, TD_TOO_LARGE, "request body exceeds the limit of %zu bytes",
                       h->max_recv);
            r->early = TD_TOO_LARGE;
            r->discarding = true;
            body_drop(r);
        } else if (!r->discarding && !body_reserve(r, n, false)) {
            td_err_set(&r->err, TD_NOMEM, "out of memory reading the request body");
            r->early = TD_NOMEM;
            r->discarding = true;
            body_drop(r);
        } else if (!r->discarding) {
            memcpy(r->body + r->body_len, upload_data, n);
            r->body_len += n;
        } else if (n > r->discard_budget) {
            /* a huge body nobody will read: drop the connection instead of reading on */
            TD_LOG_THROTTLED(TD_LOG_INFO, "otlp_http",
                             "closing connection: a refused request body keeps coming");
            td__collector_count_reject("http", r->early, r->raw_len);
            ret = MHD_NO;
        } else {
            r->discard_budget -= n;
        }
    } else {
        ret = finish(conn, r);
        r->answered = true;
    }
    td_log_ctx_pop();
    (void)version;
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    td_http_server *h = cls;
    hreq *r = *con_cls;
    if (!r) {
        return;
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        td_log(TD_LOG_DEBUG, "otlp_http", "request %s ended early (code %d)", r->request_id,
               (int)toe);
    }
    body_drop(r);
    td_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&h->active, 1);
    (void)conn;
}

/* The format comes from libmicrohttpd itself (its external-logger contract). */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    TD_LOG_THROTTLED(TD_LOG_WARN, "otlp_http", "microhttpd: %s", msg);
    (void)cls;
}

/* ---- listening socket ---- */

/*
 * Split "host:port" / "[v6]:port" / ":port". An empty host, "0.0.0.0", "*" or
 * "::" mean every interface (dual-stack when IPv6 exists, like the gRPC side).
 */
static td_status split_listen(const char *listen, char *host, size_t hcap, char *port, size_t pcap,
                              td_err *err)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || !colon[1]) {
        return td_err_set(err, TD_INVALID, "http-listen \"%s\": expected host:port", listen);
    }
    const char *hs = listen;
    size_t hl = (size_t)(colon - listen);
    if (hl >= 2 && hs[0] == '[' && hs[hl - 1] == ']') {
        hs++;
        hl -= 2;
    }
    if (hl >= hcap || strlen(colon + 1) >= pcap) {
        return td_err_set(err, TD_INVALID, "http-listen \"%s\": address too long", listen);
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return TD_OK;
}

static int bind_one(const struct addrinfo *ai, bool dual_stack, int *saved_errno)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
        *saved_errno = errno;
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof(int));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0) {
        *saved_errno = errno;
        close(fd);
        return -1;
    }
    return fd;
}

static td_status open_listener(const char *listen, int *fd_out, int *port_out, td_err *err)
{
    char host[256], port[32];
    td_status st = split_listen(listen, host, sizeof(host), port, sizeof(port), err);
    if (st) {
        return st;
    }
    bool any = !host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0 ||
               strcmp(host, "::") == 0;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = any ? AF_INET6 : AF_UNSPEC;
    int rc = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (rc != 0 && any) {
        /* no IPv6 on this host: plain IPv4 any-address */
        hints.ai_family = AF_INET;
        rc = getaddrinfo(NULL, port, &hints, &res);
    }
    if (rc != 0) {
        return td_err_set(err, TD_INVALID, "http-listen \"%s\": %s", listen, gai_strerror(rc));
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = bind_one(ai, any, &saved);
    }
    if (fd < 0 && any && strcmp(host, "::") != 0) {
        /* dual-stack bind failed (IPv6 disabled): fall back to IPv4 */
        freeaddrinfo(res);
        res = NULL;
        hints.ai_family = AF_INET;
        if (getaddrinfo(NULL, port, &hints, &res) == 0) {
            for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
                fd = bind_one(ai, false, &saved);
            }
        }
    }
    if (res) {
        freeaddrinfo(res);
    }
    if (fd < 0) {
        return td_err_set(err, TD_IO, "cannot listen on %s for OTLP/HTTP: %s", listen,
                          strerror(saved));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int p = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        p = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    *fd_out = fd;
    *port_out = p;
    return TD_OK;
}

/* ---- start / stop ---- */

td_status td__http_start(td_collector *c, const char *listen, td_http_server **out, td_err *err)
{
    *out = NULL;
    const td_collector_opts *o = td__collector_opts(c);
    int fd = -1, port = 0;
    td_status st = open_listener(listen, &fd, &port, err);
    if (st) {
        return st;
    }
    td_http_server *h = td_xcalloc(1, sizeof(*h));
    h->c = c;
    h->port = port;
    h->max_recv = (size_t)o->max_recv_bytes;
    h->retry_after_ms = o->retry_after_ms;
    atomic_init(&h->active, 0);

    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    unsigned int threads = (unsigned int)o->http_threads;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL},
        {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
        {MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_MEMORY, NULL},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
    if (!h->d) {
        /* MHD closes the listen socket on its failure paths */
        td_free(h);
        return td_err_set(err, TD_IO, "cannot start the OTLP/HTTP server on %s", listen);
    }
    td_log(TD_LOG_DEBUG, "otlp_http", "listening on %s (port %d, %u threads)", listen, port,
           threads);
    *out = h;
    return TD_OK;
}

int td__http_port(const td_http_server *h)
{
    return h ? h->port : 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void td__http_stop(td_http_server *h)
{
    if (!h) {
        return;
    }
    /* Stop accepting; keep serving requests already in progress for a grace period. */
    MHD_socket lfd = MHD_quiesce_daemon(h->d);
    if (lfd != MHD_INVALID_SOCKET) {
        close(lfd);
    }
    int64_t deadline = now_ms() + STOP_GRACE_MS;
    while (atomic_load(&h->active) > 0 && now_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&h->active) > 0) {
        td_log(TD_LOG_WARN, "otlp_http", "stopping with %d request(s) still in progress",
               atomic_load(&h->active));
    }
    MHD_stop_daemon(h->d);
    td_free(h);
}
