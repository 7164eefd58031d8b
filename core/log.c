#include "log.h"

#include "buf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

td_log_level td__log_level = TD_LOG_INFO;
static bool use_logfmt;

static _Thread_local struct {
    char request_id[65];
    char tenant[151];
    bool set;
} ctx;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

bool td_log_parse_level(const char *s, td_log_level *out)
{
    for (int i = 0; i <= TD_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (td_log_level)i;
            return true;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = TD_LOG_WARN;
        return true;
    }
    return false;
}

void td_log_set_level(td_log_level lvl)
{
    td__log_level = lvl;
}

void td_log_set_logfmt(bool logfmt)
{
    use_logfmt = logfmt;
}

void td_log_ctx_push(const char *request_id, const char *tenant)
{
    snprintf(ctx.request_id, sizeof(ctx.request_id), "%s", request_id ? request_id : "");
    snprintf(ctx.tenant, sizeof(ctx.tenant), "%s", tenant ? tenant : "");
    ctx.set = true;
}

void td_log_ctx_pop(void)
{
    ctx.set = false;
    ctx.request_id[0] = ctx.tenant[0] = '\0';
}

void td_log_new_request_id(char out[17])
{
    uint8_t r[8];
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)pthread_self();
        memcpy(r, &x, sizeof(r));
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[16] = '\0';
}

bool td__log_throttle(_Atomic int64_t *last_sec, _Atomic uint64_t *suppressed, uint64_t *out_n)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = ts.tv_sec + 1; /* +1 so that 0 means "never logged" */
    int64_t last = atomic_load_explicit(last_sec, memory_order_relaxed);
    if (last == now || !atomic_compare_exchange_strong(last_sec, &last, now)) {
        atomic_fetch_add_explicit(suppressed, 1, memory_order_relaxed);
        return false;
    }
    *out_n = atomic_exchange(suppressed, 0);
    return true;
}

/* Append s as a JSON string body (no quotes), escaping what JSON requires. */
static void add_escaped(td_buf *b, const char *s, bool json)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            td_buf_addch(b, '\\');
            td_buf_addch(b, (char)c);
        } else if (c == '\n') {
            td_buf_addstr(b, "\\n");
        } else if (c < 0x20) {
            td_buf_addf(b, json ? "\\u%04x" : "\\x%02x", c);
        } else {
            td_buf_addch(b, (char)c);
        }
    }
}

static void add_field(td_buf *b, const char *key, const char *val, bool first)
{
    if (use_logfmt) {
        td_buf_addf(b, "%s%s=\"", first ? "" : " ", key);
        add_escaped(b, val, false);
        td_buf_addch(b, '"');
    } else {
        td_buf_addf(b, "%s\"%s\":\"", first ? "" : ",", key);
        add_escaped(b, val, true);
        td_buf_addch(b, '"');
    }
}

void td__log(td_log_level lvl, const char *module, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tsbuf[96];
    snprintf(tsbuf, sizeof(tsbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    td_buf b = TD_BUF_INIT;
    if (!use_logfmt) {
        td_buf_addch(&b, '{');
    }
    add_field(&b, "ts", tsbuf, true);
    add_field(&b, "level", level_names[lvl], false);
    add_field(&b, "module", module, false);
    add_field(&b, "msg", msg, false);
    if (ctx.set && ctx.request_id[0]) {
        add_field(&b, "request_id", ctx.request_id, false);
    }
    if (ctx.set && ctx.tenant[0]) {
        add_field(&b, "tenant", ctx.tenant, false);
    }
    if (!use_logfmt) {
        td_buf_addch(&b, '}');
    }
    td_buf_addch(&b, '\n');
    /* one write per line keeps lines whole across threads */
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    (void)w;
    td_buf_release(&b);
}
