/*
 * httpc.c - minimal blocking HTTP/1.1 keep-alive client (see httpc.h).
 *
 * Responses are parsed from one growing input buffer: headers up to the blank
 * line, then either Content-Length bytes, chunks, or (Connection: close without
 * a length) everything until EOF. Socket timeouts (SO_RCVTIMEO/SO_SNDTIMEO) bound
 * each system call, so a stuck server turns into TD_IO rather than a hang.
 */
#include "httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

td_status td_bench_http_init(td_bench_http *h, const char *target, int timeout_ms, td_err *err)
{
    memset(h, 0, sizeof(*h));
    h->fd = -1;
    h->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    td_buf_init(&h->in, 1 << 16);
    char host[64];
    const char *colon = strrchr(target, ':');
    if (!colon || (size_t)(colon - target) >= sizeof(host) || colon == target) {
        return td_err_set(err, TD_INVALID, "target must be host:port: %s", target);
    }
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535) {
        return td_err_set(err, TD_INVALID, "bad port in %s", target);
    }
    h->addr.sin_family = AF_INET;
    h->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &h->addr.sin_addr) !=
        1) {
        return td_err_set(err, TD_INVALID, "target host must be an IPv4 address: %s", host);
    }
    return TD_OK;
}

static void conn_close(td_bench_http *h)
{
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
    }
    td_buf_reset(&h->in);
    h->in_pos = 0;
}

void td_bench_http_release(td_bench_http *h)
{
    conn_close(h);
    td_buf_release(&h->in);
}

void td_bench_http_resp_init(td_bench_http_resp *r)
{
    r->status = 0;
    r->retry_after = -1;
    td_buf_init(&r->body, 4096);
}

void td_bench_http_resp_release(td_bench_http_resp *r)
{
    td_buf_release(&r->body);
}

static td_status conn_open(td_bench_http *h, td_err *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return td_err_set(err, TD_IO, "socket: %s", strerror(errno));
    }
    struct timeval tv = {.tv_sec = h->timeout_ms / 1000, .tv_usec = (h->timeout_ms % 1000) * 1000};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&h->addr, sizeof(h->addr)) != 0) {
        int e = errno;
        close(fd);
        return td_err_set(err, TD_IO, "connect: %s", strerror(e));
    }
    h->fd = fd;
    h->connects++;
    td_buf_reset(&h->in);
    h->in_pos = 0;
    return TD_OK;
}

/* Read more bytes into h->in. 1 = got some, 0 = EOF, -1 = error/timeout. */
static int fill(td_bench_http *h)
{
    if (h->in_pos > 0 && h->in_pos == h->in.len) {
        td_buf_reset(&h->in);
        h->in_pos = 0;
    }
    td_buf_grow(&h->in, 1 << 16);
    for (;;) {
        ssize_t n = recv(h->fd, h->in.data + h->in.len, h->in.cap - h->in.len - 1, 0);
        if (n > 0) {
            td_buf_setlen(&h->in, h->in.len + (size_t)n);
            return 1;
        }
        if (n == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

/* Find "\r\n" from h->in_pos; returns its offset or -1 (need more bytes). */
static long find_crlf(const td_bench_http *h, size_t from)
{
    for (size_t i = from; i + 1 < h->in.len; i++) {
        if (h->in.data[i] == '\r' && h->in.data[i + 1] == '\n') {
            return (long)i;
        }
    }
    return -1;
}

/* Take n body bytes (reading as needed). */
static int take(td_bench_http *h, size_t n, td_buf *out)
{
    while (n > 0) {
        if (h->in_pos == h->in.len) {
            if (fill(h) <= 0) {
                return -1;
            }
        }
        size_t have = h->in.len - h->in_pos;
        size_t k = have < n ? have : n;
        if (out) {
            td_buf_add(out, h->in.data + h->in_pos, k);
        }
        h->in_pos += k;
        n -= k;
    }
    return 0;
}

/* Read one CRLF-terminated line; returns its start offset in h->in (NUL-terminated). */
static long line(td_bench_http *h, bool *eof_first)
{
    for (;;) {
        long e = find_crlf(h, h->in_pos);
        if (e >= 0) {
            long start = (long)h->in_pos;
            h->in.data[e] = '\0';
            h->in_pos = (size_t)e + 2;
            return start;
        }
        /* keep the partial line: compact it to the front before reading more */
        if (h->in_pos > 0) {
            size_t rest = h->in.len - h->in_pos;
            memmove(h->in.data, h->in.data + h->in_pos, rest);
            td_buf_setlen(&h->in, rest);
            h->in_pos = 0;
        }
        bool was_empty = h->in.len == 0;
        int rc = fill(h);
        if (rc <= 0) {
            if (eof_first && was_empty) {
                *eof_first = true;
            }
            return -1;
        }
    }
}

static td_status read_response(td_bench_http *h, td_bench_http_resp *r, bool *eof_first,
                               td_err *err)
{
    bool chunked = false, closing = false;
    long long clen = -1;
    long off = line(h, eof_first);
    if (off < 0) {
        return td_err_set(err, TD_IO, "no response (%s)", errno ? strerror(errno) : "EOF");
    }
    const char *sl = h->in.data + off;
    if (strncmp(sl, "HTTP/1.", 7) != 0 || strlen(sl) < 12) {
        return td_err_set(err, TD_IO, "bad status line");
    }
    r->status = atoi(sl + 9);
    if (sl[7] == '0') {
        closing = true;
    }
    for (;;) {
        off = line(h, NULL);
        if (off < 0) {
            return td_err_set(err, TD_IO, "truncated headers");
        }
        char *hl = h->in.data + off;
        if (*hl == '\0') {
            break;
        }
        char *colon = strchr(hl, ':');
        if (!colon) {
            continue;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        if (!strcasecmp(hl, "content-length")) {
            clen = strtoll(v, NULL, 10);
        } else if (!strcasecmp(hl, "transfer-encoding") && strcasestr(v, "chunked")) {
            chunked = true;
        } else if (!strcasecmp(hl, "connection") && strcasestr(v, "close")) {
            closing = true;
        } else if (!strcasecmp(hl, "retry-after")) {
            r->retry_after = atoi(v);
        }
    }
    if (chunked) {
        for (;;) {
            off = line(h, NULL);
            if (off < 0) {
                return td_err_set(err, TD_IO, "truncated chunk header");
            }
            unsigned long long n = strtoull(h->in.data + off, NULL, 16);
            if (n == 0) {
                /* trailers until the empty line */
                for (;;) {
                    off = line(h, NULL);
                    if (off < 0) {
                        return td_err_set(err, TD_IO, "truncated trailer");
                    }
                    if (h->in.data[off] == '\0') {
                        break;
                    }
                }
                break;
            }
            if (take(h, (size_t)n, &r->body) != 0 || take(h, 2, NULL) != 0) {
                return td_err_set(err, TD_IO, "truncated chunk");
            }
        }
    } else if (clen >= 0) {
        if (take(h, (size_t)clen, &r->body) != 0) {
            return td_err_set(err, TD_IO, "truncated body");
        }
    } else if (r->status >= 200 && r->status != 204 && r->status != 304) {
        /* no length: the body runs to EOF */
        for (;;) {
            if (h->in_pos < h->in.len) {
                td_buf_add(&r->body, h->in.data + h->in_pos, h->in.len - h->in_pos);
                h->in_pos = h->in.len;
            }
            int rc = fill(h);
            if (rc == 0) {
                break;
            }
            if (rc < 0) {
                return td_err_set(err, TD_IO, "body read failed");
            }
        }
        closing = true;
    }
    if (closing) {
        conn_close(h);
    }
    return TD_OK;
}

static int send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
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

td_status td_bench_http_do(td_bench_http *h, const char *method, const char *path,
                           const char *headers, const void *body, size_t blen,
                           td_bench_http_resp *r, td_err *err)
{
    td_buf head = TD_BUF_INIT;
    td_buf_addf(&head, "%s %s HTTP/1.1\r\nHost: bench\r\n%s", method, path, headers ? headers : "");
    if (body || blen) {
        td_buf_addf(&head, "Content-Length: %zu\r\n", blen);
    }
    td_buf_addstr(&head, "\r\n");
    td_status st = TD_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = h->fd >= 0;
        if (!reused && (st = conn_open(h, err)) != TD_OK) {
            break;
        }
        struct iovec iov[2] = {{head.data, head.len}, {(void *)(uintptr_t)body, blen}};
        r->status = 0;
        r->retry_after = -1;
        td_buf_reset(&r->body);
        if (send_all(h->fd, iov, blen ? 2 : 1) != 0) {
            st = td_err_set(err, TD_IO, "send: %s", strerror(errno));
            conn_close(h);
            if (reused) {
                continue;
            }
            break;
        }
        bool eof_first = false;
        errno = 0;
        st = read_response(h, r, &eof_first, err);
        if (st != TD_OK) {
            conn_close(h);
            if (reused && eof_first) {
                continue; /* the server had closed the idle connection: retry once */
            }
        }
        break;
    }
    td_buf_release(&head);
    return st;
}

void td_bench_urlenc(td_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            td_buf_addch(b, (char)c);
        } else {
            td_buf_addch(b, '%');
            td_buf_addch(b, hex[c >> 4]);
            td_buf_addch(b, hex[c & 15]);
        }
    }
}
