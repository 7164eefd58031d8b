/*
 * pselector.c - Prometheus-style label selectors for profile series
 * (API-CONTRACT §6.2): `ID{name="v", name!="v", name=~"re", name!~"re"}`.
 *
 * The grammar follows Prometheus' vector selector as Pyroscope parses it:
 *
 *   selector := ws [metric ws] ['{' ws [matcher (ws ',' ws matcher)* ws [','] ws] '}'] ws
 *   metric   := [a-zA-Z_:][a-zA-Z0-9_:.]*        (a profile type ID, kept as is)
 *   matcher  := name ws op ws string
 *   name     := [a-zA-Z_][a-zA-Z0-9_.]* | string  (dotted names as Pyroscope stores them;
 *                                                 a quoted name as in Prometheus 3)
 *   op       := '=' | '!=' | '=~' | '!~'
 *   string   := "..." | '...' (Go escapes) | `...` (raw)
 *   ws       := [ \t\r\n]*
 *
 * Pure: no I/O, no globals (STYLE rule 12); strings live in the caller's
 * arena, compiled regexes on the heap until td_pselector_release. Errors give
 * the 1-based character position ("parse error at char N: ...").
 */
#include "store/pstore.h"

#include "core/hex.h"
#include "core/mem.h"
#include "core/regex.h"
#include "core/utf8.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* More matchers than any real selector has; bounds the regexes one selector compiles. */
#define MATCHERS_MAX 1024

typedef struct sp {
    const char *s;
    size_t n, i;
    td_arena *a;
    td_err *err;
    td_pmatcher *m;
    size_t nm, cap;
} sp;

/* 1-based position in characters (UTF-8 lead bytes) of byte offset off. */
static size_t char_pos(const char *s, size_t off)
{
    size_t c = 1;
    for (size_t i = 0; i < off; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    return c;
}

static td_status perr(sp *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static td_status perr(sp *p, size_t off, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return td_err_set(p->err, TD_INVALID, "parse error at char %zu: %s", char_pos(p->s, off), msg);
}

static td_status nomem(sp *p)
{
    return td_err_set(p->err, TD_NOMEM, "out of memory parsing a label selector");
}

/* What is at offset off, for messages: 'x', end of input, U+XXXX or invalid UTF-8. */
static void describe(const sp *p, size_t off, char *buf, size_t len)
{
    if (off >= p->n) {
        snprintf(buf, len, "end of input");
        return;
    }
    unsigned char c = (unsigned char)p->s[off];
    if (c >= 0x20 && c < 0x7f) {
        snprintf(buf, len, "'%c'", c);
        return;
    }
    uint32_t cp;
    if (c < 0x80 || td_utf8_decode((const unsigned char *)p->s + off, p->n - off, &cp) == 0) {
        if (c < 0x80) {
            snprintf(buf, len, "character 0x%02x", c);
        } else {
            snprintf(buf, len, "invalid UTF-8");
        }
        return;
    }
    snprintf(buf, len, "character U+%04X", (unsigned)cp);
}

static td_status unexpected(sp *p, size_t off, const char *expected)
{
    char what[32];
    describe(p, off, what, sizeof(what));
    return perr(p, off, "unexpected %s, expected %s", what, expected);
}

static void skip_ws(sp *p)
{
    while (p->i < p->n && strchr(" \t\r\n", p->s[p->i]) && p->s[p->i]) {
        p->i++;
    }
}

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* n hex digits at s[i..]: the value, or -1. */
static long hexn(const sp *p, size_t i, int n)
{
    if (p->n - i < (size_t)n) {
        return -1;
    }
    long v = 0;
    for (int k = 0; k < n; k++) {
        int h = td_hex_val(p->s[i + (size_t)k]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

/*
 * A quoted string at p->i (which holds the quote): its unescaped bytes,
 * NUL-terminated, in the arena. Go rules: in "..." and '...' the escapes
 * \a \b \f \n \r \t \v \\ \<own quote> \NNN (octal, <= 255) \xNN \uNNNN
 * \UNNNNNNNN (no surrogates, <= U+10FFFF), no raw newline; `...` is raw. An
 * escape never produces more bytes than it spans, so the string's extent
 * (found first) bounds the copy.
 */
static td_status parse_string(sp *p, const char **out, size_t *outlen)
{
    size_t start = p->i;
    char q = p->s[p->i++];
    /* size the copy by the string's extent, not the rest of the input */
    size_t end = p->i;
    while (end < p->n && p->s[end] != q && (q == '`' || p->s[end] != '\n')) {
        end += (q != '`' && p->s[end] == '\\' && end + 1 < p->n) ? 2 : 1;
    }
    char *o = td_arena_alloc(p->a, end - start + 1);
    if (!o) {
        return nomem(p);
    }
    size_t k = 0;
    for (;;) {
        if (p->i >= p->n) {
            return perr(p, start, "unterminated string");
        }
        size_t at = p->i;
        char c = p->s[p->i];
        if (c == q) {
            p->i++;
            break;
        }
        if (c == '\0') {
            return perr(p, at, "NUL character in string");
        }
        if (q == '`') {
            o[k++] = c;
            p->i++;
            continue;
        }
        if (c == '\n') {
            return perr(p, start, "unterminated string (newline inside quotes)");
        }
        if (c != '\\') {
            o[k++] = c;
            p->i++;
            continue;
        }
        p->i++;
        if (p->i >= p->n) {
            return perr(p, start, "unterminated string");
        }
        char e = p->s[p->i++];
        long v;
        switch (e) {
        case 'a':
            o[k++] = '\a';
            break;
        case 'b':
            o[k++] = '\b';
            break;
        case 'f':
            o[k++] = '\f';
            break;
        case 'n':
            o[k++] = '\n';
            break;
        case 'r':
            o[k++] = '\r';
            break;
        case 't':
            o[k++] = '\t';
            break;
        case 'v':
            o[k++] = '\v';
            break;
        case '\\':
            o[k++] = '\\';
            break;
        case '"':
        case '\'':
            if (e != q) {
                return perr(p, at, "invalid escape sequence \\%c in a %c-quoted string", e, q);
            }
            o[k++] = e;
            break;
        case 'x':
            if ((v = hexn(p, p->i, 2)) < 0) {
                return perr(p, at, "invalid escape sequence \\x: expected 2 hex digits");
            }
            if (v == 0) {
                return perr(p, at, "NUL character in string");
            }
            p->i += 2;
            o[k++] = (char)v;
            break;
        case 'u':
        case 'U': {
            int nd = e == 'u' ? 4 : 8;
            if ((v = hexn(p, p->i, nd)) < 0) {
                return perr(p, at, "invalid escape sequence \\%c: expected %d hex digits", e, nd);
            }
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
                return perr(p, at, "invalid escape sequence \\%c: not a Unicode character", e);
            }
            if (v == 0) {
                return perr(p, at, "NUL character in string");
            }
            p->i += (size_t)nd;
            k += td_utf8_encode(o + k, (uint32_t)v);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                v = e - '0';
                for (int d = 0; d < 2; d++) {
                    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '7') {
                        return perr(p, at, "invalid escape sequence: octal needs 3 digits");
                    }
                    v = v * 8 + (p->s[p->i++] - '0');
                }
                if (v > 255) {
                    return perr(p, at, "invalid escape sequence: octal value over 255");
                }
                if (v == 0) {
                    return perr(p, at, "NUL character in string");
                }
                o[k++] = (char)v;
                break;
            }
            if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7f) {
                return perr(p, at, "unknown escape sequence \\%c", e);
            }
            return perr(p, at, "unknown escape sequence");
        }
    }
    o[k] = '\0';
    *out = o;
    *outlen = k;
    return TD_OK;
}

static bool is_quote(char c)
{
    return c == '"' || c == '\'' || c == '`';
}

/* Append a matcher (compiling its regex). at: offset of its value, for messages. */
static td_status add_matcher(sp *p, const char *name, const char *value, size_t vlen,
                             td_pmatch_op op, size_t at)
{
    if (p->nm == MATCHERS_MAX) {
        return perr(p, at, "too many matchers (limit %d)", MATCHERS_MAX);
    }
    if (p->nm == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 8;
        td_pmatcher *nmv = td_arena_alloc(p->a, ncap * sizeof(*nmv));
        if (!nmv) {
            return nomem(p);
        }
        if (p->nm) {
            memcpy(nmv, p->m, p->nm * sizeof(*nmv));
        }
        p->m = nmv;
        p->cap = ncap;
    }
    td_pmatcher *m = &p->m[p->nm];
    m->name = name;
    m->value = value;
    m->op = op;
    m->re = NULL;
    if (op == TD_PM_RE || op == TD_PM_NRE) {
        char why[160];
        const char *posix = NULL;
        td_status st = td_regex_translate(value, vlen, p->a, &posix, why, sizeof(why));
        if (st == TD_NOMEM) {
            return nomem(p);
        }
        if (st) {
            return perr(p, at, "invalid regex \"%.*s\": %s", (int)(vlen > 60 ? 60 : vlen), value,
                        why);
        }
        regex_t *re = td_malloc(sizeof(*re));
        if (!re) {
            return nomem(p);
        }
        int rc = regcomp(re, posix, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char buf[96];
            regerror(rc, re, buf, sizeof(buf));
            td_free(re);
            return perr(p, at, "invalid regex \"%.*s\": %s", (int)(vlen > 60 ? 60 : vlen), value,
                        buf);
        }
        m->re = re;
    }
    p->nm++;
    return TD_OK;
}

static td_status parse_matcher(sp *p)
{
    size_t at = p->i;
    const char *name;
    if (p->i < p->n && is_alpha_(p->s[p->i])) {
        while (p->i < p->n &&
               (is_alpha_(p->s[p->i]) || is_digit(p->s[p->i]) || p->s[p->i] == '.')) {
            p->i++;
        }
        name = td_arena_strndup(p->a, p->s + at, p->i - at);
        if (!name) {
            return nomem(p);
        }
    } else if (p->i < p->n && is_quote(p->s[p->i])) {
        size_t len;
        td_status st = parse_string(p, &name, &len);
        if (st) {
            return st;
        }
        if (len == 0) {
            return perr(p, at, "empty label name");
        }
    } else if (p->i < p->n && is_digit(p->s[p->i])) {
        return perr(p, at, "label name must not start with a digit");
    } else {
        return unexpected(p, at, "a label name");
    }
    skip_ws(p);
    size_t opat = p->i;
    td_pmatch_op op;
    if (p->i + 1 < p->n && p->s[p->i] == '=' && p->s[p->i + 1] == '~') {
        op = TD_PM_RE;
        p->i += 2;
    } else if (p->i + 1 < p->n && p->s[p->i] == '!' && p->s[p->i + 1] == '~') {
        op = TD_PM_NRE;
        p->i += 2;
    } else if (p->i + 1 < p->n && p->s[p->i] == '!' && p->s[p->i + 1] == '=') {
        op = TD_PM_NE;
        p->i += 2;
    } else if (p->i < p->n && p->s[p->i] == '=') {
        op = TD_PM_EQ;
        p->i++;
    } else {
        return unexpected(p, opat, "one of =, !=, =~, !~ after the label name");
    }
    skip_ws(p);
    size_t vat = p->i;
    if (p->i >= p->n || !is_quote(p->s[p->i])) {
        return unexpected(p, vat, "a quoted string");
    }
    const char *value;
    size_t vlen;
    td_status st = parse_string(p, &value, &vlen);
    if (st) {
        return st;
    }
    return add_matcher(p, name, value, vlen, op, vat);
}

static td_status parse(sp *p, td_pselector *out)
{
    /* the whole input must be UTF-8 without NUL: check once, with the position */
    for (size_t i = 0; i < p->n;) {
        uint32_t cp;
        size_t k = td_utf8_decode((const unsigned char *)p->s + i, p->n - i, &cp);
        if (k == 0) {
            return perr(p, i, "invalid UTF-8");
        }
        if (cp == 0) {
            return perr(p, i, "NUL character");
        }
        i += k;
    }
    skip_ws(p);
    if (p->i < p->n && (is_alpha_(p->s[p->i]) || p->s[p->i] == ':')) {
        size_t at = p->i;
        while (p->i < p->n && (is_alpha_(p->s[p->i]) || is_digit(p->s[p->i]) || p->s[p->i] == ':' ||
                               p->s[p->i] == '.')) {
            p->i++;
        }
        out->profile_type = td_arena_strndup(p->a, p->s + at, p->i - at);
        if (!out->profile_type) {
            return nomem(p);
        }
        skip_ws(p);
    }
    if (p->i >= p->n) {
        return TD_OK;
    }
    if (p->s[p->i] != '{') {
        return unexpected(p, p->i, out->profile_type ? "'{' or end of input" : "'{'");
    }
    size_t open = p->i++;
    for (;;) {
        skip_ws(p);
        if (p->i >= p->n) {
            return perr(p, open, "missing closing '}'");
        }
        if (p->s[p->i] == '}') {
            p->i++;
            break;
        }
        if (p->s[p->i] == ',') {
            return unexpected(p, p->i, "a label name");
        }
        td_status st = parse_matcher(p);
        if (st) {
            return st;
        }
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            break;
        }
        if (p->i >= p->n) {
            return perr(p, open, "missing closing '}'");
        }
        return unexpected(p, p->i, "',' or '}' after a matcher");
    }
    skip_ws(p);
    if (p->i < p->n) {
        return unexpected(p, p->i, "end of input after '}'");
    }
    return TD_OK;
}

td_status td_pselector_parse(const char *s, size_t n, td_arena *a, td_pselector *out, td_err *err)
{
    memset(out, 0, sizeof(*out));
    sp p = {.s = s ? s : "", .n = s ? n : 0, .a = a, .err = err};
    td_status st = parse(&p, out);
    out->m = p.m;
    out->n = p.nm;
    if (st) {
        td_pselector_release(out);
        memset(out, 0, sizeof(*out));
    }
    return st;
}

void td_pselector_release(td_pselector *sel)
{
    if (!sel) {
        return;
    }
    for (size_t i = 0; i < sel->n; i++) {
        if (sel->m[i].re) {
            regfree(sel->m[i].re);
            td_free(sel->m[i].re);
            sel->m[i].re = NULL;
        }
    }
}

/* The value of name in the sorted labels, or "" when absent. */
static const char *label_value(const td_plabel *labels, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(labels[mid].name, name);
        if (c == 0) {
            return labels[mid].value;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return "";
}

bool td_pselector_match(const td_pselector *sel, const td_plabel *labels, size_t n)
{
    if (sel->profile_type &&
        strcmp(label_value(labels, n, "__profile_type__"), sel->profile_type) != 0) {
        return false;
    }
    for (size_t i = 0; i < sel->n; i++) {
        const td_pmatcher *m = &sel->m[i];
        const char *v = label_value(labels, n, m->name);
        bool ok;
        switch (m->op) {
        case TD_PM_EQ:
            ok = strcmp(v, m->value) == 0;
            break;
        case TD_PM_NE:
            ok = strcmp(v, m->value) != 0;
            break;
        case TD_PM_RE:
            ok = regexec(m->re, v, 0, NULL, 0) == 0;
            break;
        case TD_PM_NRE:
            ok = regexec(m->re, v, 0, NULL, 0) != 0;
            break;
        default:
            ok = false;
            break;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}
