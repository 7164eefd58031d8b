/*
 * json.c - the JSON writer. See json.h for the output rules; the notes here say
 * why the less obvious choices were made.
 */
#include "api/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void td_json_init(td_json *j, td_buf *out)
{
    j->out = out;
    j->comma = false;
}

/* Called before every key and value: separates it from the previous value. */
static void sep(td_json *j)
{
    if (j->comma) {
        td_buf_addch(j->out, ',');
    }
}

void td_json_begin_object(td_json *j)
{
    sep(j);
    td_buf_addch(j->out, '{');
    j->comma = false;
}

void td_json_end_object(td_json *j)
{
    td_buf_addch(j->out, '}');
    j->comma = true;
}

void td_json_begin_array(td_json *j)
{
    sep(j);
    td_buf_addch(j->out, '[');
    j->comma = false;
}

void td_json_end_array(td_json *j)
{
    td_buf_addch(j->out, ']');
    j->comma = true;
}

void td_json_key_n(td_json *j, const char *key, size_t n)
{
    sep(j);
    td_buf_addch(j->out, '"');
    td_json_append_escaped(j->out, key, n);
    td_buf_add(j->out, "\":", 2);
    /* the value that follows must not get a comma */
    j->comma = false;
}

void td_json_key(td_json *j, const char *key)
{
    td_json_key_n(j, key, strlen(key));
}

/*
 * Length of the valid UTF-8 sequence starting at p (at most n bytes), or 0 when
 * the first byte does not start one. Overlong forms, UTF-16 surrogates and code
 * points above U+10FFFF are invalid (RFC 3629 table).
 */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) {
            lo = 0xA0; /* overlong */
        } else if (c == 0xED) {
            hi = 0x9F; /* surrogates */
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) {
            lo = 0x90; /* overlong */
        } else if (c == 0xF4) {
            hi = 0x8F; /* > U+10FFFF */
        }
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return len;
}

void td_json_append_escaped(td_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* copy the longest run that needs no escaping in one go */
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') {
            run++;
        }
        if (run > i) {
            td_buf_add(out, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t len = utf8_len(p + i, n - i);
            if (len) {
                td_buf_add(out, p + i, len);
                i += len;
            } else {
                /* one replacement character per bad byte, like Go's encoder */
                td_buf_add(out, "\xEF\xBF\xBD", 3);
                i++;
            }
            continue;
        }
        char esc[7] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
            break;
        }
        td_buf_add(out, esc, elen);
        i++;
    }
}

void td_json_string_n(td_json *j, const char *s, size_t n)
{
    sep(j);
    td_buf_addch(j->out, '"');
    td_json_append_escaped(j->out, s, n);
    td_buf_addch(j->out, '"');
    j->comma = true;
}

void td_json_string(td_json *j, const char *s)
{
    td_json_string_n(j, s, strlen(s));
}

void td_json_int64_str(td_json *j, int64_t v)
{
    sep(j);
    td_buf_addf(j->out, "\"%" PRId64 "\"", v);
    j->comma = true;
}

void td_json_uint64_str(td_json *j, uint64_t v)
{
    sep(j);
    td_buf_addf(j->out, "\"%" PRIu64 "\"", v);
    j->comma = true;
}

void td_json_int(td_json *j, int64_t v)
{
    sep(j);
    td_buf_addf(j->out, "%" PRId64, v);
    j->comma = true;
}

/*
 * Go's encoding/json layout (what gogo jsonpb and hence Tempo emit): the
 * shortest digit string that parses back to the same double, written in
 * positional form when 1e-6 <= |v| < 1e21 and in exponent form ("1e+21",
 * "1.5e-7") otherwise.
 */
void td_json_append_double(td_buf *out, double v)
{
    if (isnan(v)) {
        td_buf_addstr(out, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        td_buf_addstr(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    if (v == 0) {
        td_buf_addstr(out, signbit(v) ? "-0" : "0");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    /* tmp is "[-]d[.ddd]e[+-]x"; split it into sign, digits and exponent */
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg) {
        p++;
    }
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++) {
        if (*p != '.') {
            digits[nd++] = *p;
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    int exp = atoi(p + 1);
    double a = fabs(v);
    if (neg) {
        td_buf_addch(out, '-');
    }
    if (a < 1e-6 || a >= 1e21) {
        td_buf_addch(out, digits[0]);
        if (nd > 1) {
            td_buf_addch(out, '.');
            td_buf_add(out, digits + 1, nd - 1);
        }
        td_buf_addf(out, "e%c%d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    if (exp < 0) {
        td_buf_add(out, "0.", 2);
        for (int i = 0; i < -exp - 1; i++) {
            td_buf_addch(out, '0');
        }
        td_buf_add(out, digits, nd);
        return;
    }
    size_t ip = (size_t)exp + 1; /* digits before the point */
    if (nd <= ip) {
        td_buf_add(out, digits, nd);
        for (size_t i = nd; i < ip; i++) {
            td_buf_addch(out, '0');
        }
    } else {
        td_buf_add(out, digits, ip);
        td_buf_addch(out, '.');
        td_buf_add(out, digits + ip, nd - ip);
    }
}

void td_json_double(td_json *j, double v)
{
    sep(j);
    td_json_append_double(j->out, v);
    j->comma = true;
}

void td_json_bool(td_json *j, bool v)
{
    sep(j);
    td_buf_addstr(j->out, v ? "true" : "false");
    j->comma = true;
}

void td_json_null(td_json *j)
{
    sep(j);
    td_buf_add(j->out, "null", 4);
    j->comma = true;
}

void td_json_raw(td_json *j, const char *s, size_t n)
{
    sep(j);
    td_buf_add(j->out, s, n);
    j->comma = true;
}

void td_json_append_base64(td_buf *out, const uint8_t *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t full = n / 3 * 3;
    td_buf_grow(out, (n + 2) / 3 * 4);
    char *o = out->data + out->len;
    for (size_t i = 0; i < full; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tbl[w >> 18];
        *o++ = tbl[(w >> 12) & 63];
        *o++ = tbl[(w >> 6) & 63];
        *o++ = tbl[w & 63];
    }
    if (n - full == 1) {
        uint32_t w = (uint32_t)p[full] << 16;
        *o++ = tbl[w >> 18];
        *o++ = tbl[(w >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - full == 2) {
        uint32_t w = (uint32_t)p[full] << 16 | (uint32_t)p[full + 1] << 8;
        *o++ = tbl[w >> 18];
        *o++ = tbl[(w >> 12) & 63];
        *o++ = tbl[(w >> 6) & 63];
        *o++ = '=';
    }
    td_buf_setlen(out, (size_t)(o - out->data));
}

void td_json_base64(td_json *j, const uint8_t *p, size_t n)
{
    sep(j);
    td_buf_addch(j->out, '"');
    td_json_append_base64(j->out, p, n);
    td_buf_addch(j->out, '"');
    j->comma = true;
}
