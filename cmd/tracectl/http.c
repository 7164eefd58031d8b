/*
 * http.c - the one place tracectl talks HTTP (libcurl easy interface).
 *
 * Each command makes one request, so a fresh easy handle per call is simpler
 * than keeping one around. The distinction that matters to scripts is made
 * here: "no HTTP answer at all" (TD_IO, exit 3) versus "an answer we did not
 * like" (the caller looks at the status, exit 1 or 4).
 */
#include "tracectl.h"

#include "core/mem.h"

#include <curl/curl.h>
#include <string.h>

typedef struct sink {
    td_buf *body;
    bool too_large;
    bool nomem;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb; /* libcurl guarantees size == 1 */
    if (n > TD_CTL_MAX_BODY || s->body->len > TD_CTL_MAX_BODY - n) {
        s->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (!td_buf_try_grow(s->body, n)) {
        s->nomem = true;
        return 0;
    }
    memcpy(s->body->data + s->body->len, ptr, n);
    td_buf_setlen(s->body, s->body->len + n);
    return n;
}

/* Errors where no usable HTTP exchange took place: the server is "unreachable". */
static bool is_transport_error(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* GET (ctype NULL) or POST body[0..len) with Content-Type ctype. */
static td_status http_do(const td_ctl_opts *o, const char *path, const char *accept,
                         const char *ctype, const void *body, size_t len, td_ctl_http_resp *resp,
                         td_err *err)
{
    td_status st = TD_OK;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    td_buf url = TD_BUF_INIT;
    td_buf line = TD_BUF_INIT;
    sink s = {.body = &resp->body};

    resp->status = 0;
    td_buf_init(&resp->body, 0);

    /* "--server http://h:3200/" and ".../prefix/" both work: drop trailing slashes. */
    size_t n = strlen(o->server);
    while (n > 0 && o->server[n - 1] == '/') {
        n--;
    }
    if (n == 0) {
        return td_err_set(err, TD_INVALID, "empty --server URL");
    }
    td_buf_add(&url, o->server, n);
    td_buf_addstr(&url, path);

    CURL *h = curl_easy_init();
    if (!h) {
        td_buf_release(&url);
        return td_err_set(err, TD_INTERNAL, "cannot create a libcurl handle");
    }
    td_buf_addf(&line, "Accept: %s", accept);
    hdrs = curl_slist_append(hdrs, line.data);
    if (ctype) {
        td_buf_reset(&line);
        td_buf_addf(&line, "Content-Type: %s", ctype);
        hdrs = curl_slist_append(hdrs, line.data);
    }
    if (o->org_id) {
        td_buf_reset(&line);
        td_buf_addf(&line, "X-Scope-OrgID: %s", o->org_id);
        hdrs = curl_slist_append(hdrs, line.data);
    }
    if (!hdrs) {
        st = td_err_set(err, TD_NOMEM, "out of memory");
        goto out;
    }

    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tracectl/" TD_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* gzip etc. if libcurl has it */
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    if (ctype) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, len ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif

    CURLcode c = curl_easy_perform(h);
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(c);
    if (c == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    } else if (s.too_large) {
        st = td_err_set(err, TD_TOO_LARGE, "response body larger than %zu MiB",
                        TD_CTL_MAX_BODY >> 20);
    } else if (s.nomem) {
        st = td_err_set(err, TD_NOMEM, "out of memory reading the response");
    } else if (c == CURLE_URL_MALFORMAT || c == CURLE_UNSUPPORTED_PROTOCOL) {
        st = td_err_set(err, TD_INVALID, "bad --server URL '%s': %s", o->server, why);
    } else if (is_transport_error(c)) {
        st = td_err_set(err, TD_IO, "%s", why);
    } else {
        st = td_err_set(err, TD_INTERNAL, "%s", why);
    }

out:
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    td_buf_release(&line);
    td_buf_release(&url);
    if (st != TD_OK) {
        td_ctl_http_resp_release(resp);
    }
    return st;
}

td_status td_ctl_http_get(const td_ctl_opts *o, const char *path, const char *accept,
                          td_ctl_http_resp *resp, td_err *err)
{
    return http_do(o, path, accept, NULL, NULL, 0, resp, err);
}

td_status td_ctl_http_post(const td_ctl_opts *o, const char *path, const char *accept,
                           const char *ctype, const void *body, size_t len, td_ctl_http_resp *resp,
                           td_err *err)
{
    return http_do(o, path, accept, ctype, body, len, resp, err);
}

void td_ctl_add_query_escaped(td_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            td_buf_addch(b, (char)c);
        } else {
            td_buf_addch(b, '%');
            td_buf_addch(b, hex[c >> 4]);
            td_buf_addch(b, hex[c & 15]);
        }
    }
}

void td_ctl_http_resp_release(td_ctl_http_resp *resp)
{
    td_buf_release(&resp->body);
    resp->status = 0;
}

int td_ctl_http_fail(const td_ctl_opts *o, const td_err *err)
{
    switch (err->code) {
    case TD_INVALID:
        fprintf(stderr, "tracectl: %s\n", err->msg);
        return TD_CTL_EXIT_USAGE;
    case TD_IO:
        fprintf(stderr, "tracectl: cannot reach %s: %s\n", o->server, err->msg);
        return TD_CTL_EXIT_UNREACHABLE;
    default:
        fprintf(stderr, "tracectl: request to %s failed: %s\n", o->server, err->msg);
        return TD_CTL_EXIT_SERVER;
    }
}

void td_ctl_print_http_error(const td_ctl_http_resp *resp)
{
    td_buf b = TD_BUF_INIT;
    td_buf_addf(&b, "tracectl: server returned HTTP %ld", resp->status);
    /* Trim the trailing newline Go's http.Error adds; keep the rest readable. */
    size_t n = resp->body.len;
    while (n > 0 && (resp->body.data[n - 1] == '\n' || resp->body.data[n - 1] == '\r')) {
        n--;
    }
    if (n) {
        td_buf_addstr(&b, ": ");
        td_ctl_put_text(&b, resp->body.data, n, (size_t)64 << 10, TD_CTL_TEXT_KEEP_NL);
    }
    td_buf_addch(&b, '\n');
    fwrite(b.data, 1, b.len, stderr);
    td_buf_release(&b);
}
