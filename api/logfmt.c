/*
 * logfmt.c - logfmt parser for the legacy search `tags` parameter (logfmt.h).
 */
#include "api/logfmt.h"

#include <stdbool.h>
#include <string.h>

static bool key_byte(unsigned char c)
{
    return c > ' ' && c != '=' && c != '"';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static size_t put_utf8(char *o, unsigned v)
{
    if (v < 0x80) {
        o[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (char)(0xc0 | (v >> 6));
        o[1] = (char)(0x80 | (v & 0x3f));
        return 2;
    }
    o[0] = (char)(0xe0 | (v >> 12));
    o[1] = (char)(0x80 | ((v >> 6) & 0x3f));
    o[2] = (char)(0x80 | (v & 0x3f));
    return 3;
}

static char *copy(td_arena *a, const char *s, size_t n)
{
    char *p = td_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

td_status td_logfmt_parse(const char *s, size_t n, td_arena *a, td_logfmt_pair **out, size_t *nout,
                          td_err *err)
{
    *out = NULL;
    *nout = 0;
    /* upper bound on pairs: each needs at least one key byte and a separator */
    size_t cap = n / 2 + 1;
    td_logfmt_pair *pairs = td_arena_alloc(a, cap * sizeof(*pairs));
    if (!pairs) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    size_t np = 0, i = 0;
    for (;;) {
        while (i < n && (unsigned char)s[i] <= ' ') {
            i++;
        }
        if (i >= n) {
            break;
        }
        size_t k0 = i;
        while (i < n && key_byte((unsigned char)s[i])) {
            i++;
        }
        if (i == k0) {
            return td_err_set(err, TD_INVALID, "invalid tags: unexpected '%c' at offset %zu", s[i],
                              i);
        }
        td_logfmt_pair *p = &pairs[np];
        p->key_len = i - k0;
        if (!(p->key = copy(a, s + k0, p->key_len))) {
            return td_err_set(err, TD_NOMEM, "out of memory");
        }
        p->val = "";
        p->val_len = 0;
        if (i < n && s[i] == '=') {
            i++;
            if (i < n && s[i] == '"') {
                i++;
                /* decoded is never longer than the quoted text */
                char *v = td_arena_alloc(a, n - i + 1);
                if (!v) {
                    return td_err_set(err, TD_NOMEM, "out of memory");
                }
                size_t vn = 0;
                bool closed = false;
                while (i < n) {
                    unsigned char c = (unsigned char)s[i];
                    if (c == '"') {
                        i++;
                        closed = true;
                        break;
                    }
                    if (c != '\\') {
                        v[vn++] = (char)c;
                        i++;
                        continue;
                    }
                    if (i + 1 >= n) {
                        break;
                    }
                    unsigned char e = (unsigned char)s[i + 1];
                    i += 2;
                    switch (e) {
                    case '"':
                    case '\\':
                    case '/':
                        v[vn++] = (char)e;
                        break;
                    case 'b':
                        v[vn++] = '\b';
                        break;
                    case 'f':
                        v[vn++] = '\f';
                        break;
                    case 'n':
                        v[vn++] = '\n';
                        break;
                    case 'r':
                        v[vn++] = '\r';
                        break;
                    case 't':
                        v[vn++] = '\t';
                        break;
                    case 'u': {
                        unsigned cp = 0;
                        for (int d = 0; d < 4; d++) {
                            int h =
                                i + (size_t)d < n ? hexval((unsigned char)s[i + (size_t)d]) : -1;
                            if (h < 0) {
                                return td_err_set(err, TD_INVALID,
                                                  "invalid tags: invalid \\u escape at offset %zu",
                                                  i - 2);
                            }
                            cp = cp * 16 + (unsigned)h;
                        }
                        i += 4;
                        vn += put_utf8(v + vn, cp); /* at most 3 bytes for 6 of input */
                        break;
                    }
                    default:
                        return td_err_set(err, TD_INVALID,
                                          "invalid tags: invalid escape sequence at offset %zu",
                                          i - 2);
                    }
                }
                if (!closed) {
                    return td_err_set(err, TD_INVALID, "invalid tags: unterminated quoted value");
                }
                v[vn] = '\0';
                p->val = v;
                p->val_len = vn;
            } else {
                size_t v0 = i;
                while (i < n && key_byte((unsigned char)s[i])) {
                    i++;
                }
                if (i < n && (s[i] == '=' || s[i] == '"')) {
                    return td_err_set(err, TD_INVALID,
                                      "invalid tags: unexpected '%c' at offset %zu", s[i], i);
                }
                p->val_len = i - v0;
                if (!(p->val = copy(a, s + v0, p->val_len))) {
                    return td_err_set(err, TD_NOMEM, "out of memory");
                }
            }
        } else if (i < n && s[i] == '"') {
            return td_err_set(err, TD_INVALID, "invalid tags: unexpected '\"' at offset %zu", i);
        }
        if (i < n && (unsigned char)s[i] > ' ') {
            return td_err_set(err, TD_INVALID, "invalid tags: unexpected '%c' at offset %zu", s[i],
                              i);
        }
        for (size_t j = 0; j < np; j++) {
            if (pairs[j].key_len == p->key_len && !memcmp(pairs[j].key, p->key, p->key_len)) {
                return td_err_set(err, TD_INVALID, "invalid tags: tag %s has been set twice",
                                  p->key);
            }
        }
        np++;
    }
    *out = pairs;
    *nout = np;
    return TD_OK;
}
