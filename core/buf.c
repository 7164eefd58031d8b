#include "buf.h"

#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

char td__buf_empty[1];

void td_buf_init(td_buf *b, size_t hint)
{
    b->data = td__buf_empty;
    b->len = 0;
    b->cap = 0;
    if (hint) {
        td_buf_grow(b, hint);
    }
}

void td_buf_release(td_buf *b)
{
    if (b->cap) {
        td_free(b->data);
    }
    td_buf_init(b, 0);
}

void td_buf_reset(td_buf *b)
{
    td_buf_setlen(b, 0);
}

/* checked: allocation goes through td_realloc (fault injection applies). */
static bool grow(td_buf *b, size_t extra, bool checked)
{
    size_t need;
    if (!td_size_add(b->len, extra, &need) || !td_size_add(need, 1, &need)) {
        return false;
    }
    if (need <= b->cap) {
        return true;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (!td_size_mul(cap, 2, &cap)) {
            cap = need;
            break;
        }
    }
    void *old = b->cap ? b->data : NULL;
    char *p = checked ? td_realloc(old, cap) : realloc(old, cap);
    if (!p) {
        return false;
    }
    if (!b->cap) {
        p[0] = '\0';
    }
    b->data = p;
    b->cap = cap;
    return true;
}

bool td_buf_try_grow(td_buf *b, size_t extra)
{
    return grow(b, extra, true);
}

/* Small, program-chosen sizes: never fault-injected, abort on real OOM. */
void td_buf_grow(td_buf *b, size_t extra)
{
    if (!grow(b, extra, false)) {
        fprintf(stderr, "fatal: out of memory growing a buffer by %zu bytes\n", extra);
        abort();
    }
}

char *td_buf_detach(td_buf *b, size_t *len)
{
    if (!b->cap) {
        td_buf_grow(b, 1);
    }
    char *p = b->data;
    if (len) {
        *len = b->len;
    }
    td_buf_init(b, 0);
    return p;
}

void td_buf_setlen(td_buf *b, size_t len)
{
    TD_ASSERT(len <= (b->cap ? b->cap - 1 : 0));
    b->len = len;
    if (b->cap) {
        b->data[len] = '\0';
    }
}

void td_buf_add(td_buf *b, const void *p, size_t n)
{
    if (!n) {
        return;
    }
    td_buf_grow(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void td_buf_addstr(td_buf *b, const char *s)
{
    td_buf_add(b, s, strlen(s));
}

void td_buf_addch(td_buf *b, char c)
{
    td_buf_grow(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void td_buf_addf(td_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= (b->cap ? b->cap - b->len : 0)) {
        td_buf_grow(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void td_buf_addhex(td_buf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    td_buf_grow(b, n * 2);
    char *o = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        *o++ = hex[p[i] >> 4];
        *o++ = hex[p[i] & 15];
    }
    b->len += n * 2;
    b->data[b->len] = '\0';
}
