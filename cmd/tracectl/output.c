/*
 * output.c - formatting helpers shared by tracectl commands.
 *
 * Everything printed comes from a server we do not control, so all text goes
 * through td_ctl_put_text (terminal escapes neutralised, length bounded) and
 * every JSON access tolerates missing or oddly typed members.
 */
#include "tracectl.h"

#include "core/mem.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Nesting shown for array/kvlist attribute values before eliding with "…". */
#define ANYVALUE_MAX_DEPTH 8

static const char ELLIPSIS[] = "\xe2\x80\xa6"; /* U+2026 */

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

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

bool td_ctl_id_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    /* 16 or 32 hex digits never come out of Tempo's base64 for 8/16-byte IDs
     * (those are 12 and 24 characters), so reading them as hex is unambiguous. */
    if (len == 16 || len == 32) {
        size_t i;
        for (i = 0; i < len && hexval((unsigned char)s[i]) >= 0; i++) {
        }
        if (i == len) {
            if (len / 2 > cap) {
                return false;
            }
            for (i = 0; i < len; i += 2) {
                out[i / 2] =
                    (uint8_t)(hexval((unsigned char)s[i]) << 4 | hexval((unsigned char)s[i + 1]));
            }
            *out_len = len / 2;
            return true;
        }
    }
    while (len > 0 && s[len - 1] == '=') {
        len--;
    }
    if (len % 4 == 1) {
        return false;
    }
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap) {
                return false;
            }
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out_len = n;
    return true;
}

bool td_ctl_trace_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (hexval((unsigned char)s[i]) < 0) {
            return false;
        }
    }
    return true;
}

void td_ctl_fmt_duration(td_buf *b, uint64_t ns)
{
    static const struct {
        uint64_t scale;
        const char *unit;
    } units[] = {{1, "ns"}, {1000, "\xc2\xb5s"}, {1000000, "ms"}, {1000000000, "s"}};

    if (ns >= UINT64_C(999500000000)) {
        /* 1000 s and up: whole seconds read better than 1e+03s. */
        td_buf_addf(b, "%" PRIu64 "s", ns / 1000000000 + (ns % 1000000000 >= 500000000));
        return;
    }
    /* Round to 3 significant figures in integers (no float drift: 1.25ms stays 1.25ms). */
    uint64_t r = ns, p = 1;
    while (r >= 1000) {
        r /= 10;
        p *= 10;
    }
    if (p > 1) {
        uint64_t q = ns / p, rem = ns % p;
        if (rem * 2 >= p) {
            q++;
        }
        r = q * p; /* < 1e12 here, no overflow */
    }
    size_t u = 0;
    while (u + 1 < sizeof(units) / sizeof(units[0]) && r >= units[u + 1].scale) {
        u++;
    }
    uint64_t whole = r / units[u].scale, frac = r % units[u].scale;
    td_buf_addf(b, "%" PRIu64, whole);
    int wdigits = whole >= 100 ? 3 : whole >= 10 ? 2 : 1;
    int decimals = 3 - wdigits;
    if (frac && decimals > 0) {
        /* frac has at most `decimals` significant leading digits after rounding. */
        uint64_t div = units[u].scale;
        char digits[4];
        int nd = 0;
        for (int d = 0; d < decimals; d++) {
            div /= 10;
            digits[nd++] = (char)('0' + (frac / div) % 10);
        }
        while (nd > 0 && digits[nd - 1] == '0') {
            nd--;
        }
        if (nd > 0) {
            td_buf_addch(b, '.');
            td_buf_add(b, digits, (size_t)nd);
        }
    }
    td_buf_addstr(b, units[u].unit);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
    } else {
        return 0;
    }
    if (n > avail) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return n;
}

void td_ctl_put_text(td_buf *b, const char *s, size_t len, size_t max, unsigned flags)
{
    const unsigned char *p = (const unsigned char *)s;
    bool quote = flags & TD_CTL_TEXT_QUOTE;
    size_t written = 0;
    char esc[8];

    if (quote) {
        td_buf_addch(b, '"');
    }
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(p + i, len - i);
        const char *out = (const char *)p + i;
        size_t out_n = n;
        if (n == 0) {
            snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
            out = esc;
            out_n = 4;
            n = 1;
        } else if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
            if ((flags & TD_CTL_TEXT_KEEP_NL) && (p[i] == '\n' || p[i] == '\t')) {
                /* pass through */
            } else if (p[i] == '\n') {
                out = "\\n", out_n = 2;
            } else if (p[i] == '\t') {
                out = "\\t", out_n = 2;
            } else if (p[i] == '\r') {
                out = "\\r", out_n = 2;
            } else {
                snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
                out = esc, out_n = 4;
            }
        } else if (n == 1 && quote && (p[i] == '"' || p[i] == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)p[i];
            out = esc, out_n = 2;
        } else if (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            /* C1 controls U+0080..U+009F: some terminals act on them. */
            snprintf(esc, sizeof(esc), "\\u00%02x", p[i + 1]);
            out = esc, out_n = 6;
        }
        if (written + out_n > max) {
            td_buf_addstr(b, ELLIPSIS);
            break;
        }
        td_buf_add(b, out, out_n);
        written += out_n;
        i += n;
    }
    if (quote) {
        td_buf_addch(b, '"');
    }
}

bool td_ctl_needs_quote(const char *s, size_t len)
{
    if (len == 0) {
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || strchr("\"\\=,[]{}", c)) {
            return true;
        }
    }
    return false;
}

/* Shortest %g form of d that reads back as d. */
static void put_double(td_buf *b, double d)
{
    if (isnan(d)) {
        td_buf_addstr(b, "NaN");
        return;
    }
    if (isinf(d)) {
        td_buf_addstr(b, d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) {
            break;
        }
    }
    td_buf_addstr(b, tmp);
}

static void put_number(td_buf *b, const json_t *v)
{
    if (json_is_integer(v)) {
        td_buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else {
        put_double(b, json_number_value(v));
    }
}

static void put_scalar_text(td_buf *b, const json_t *s, size_t max)
{
    const char *p = json_string_value(s);
    size_t n = json_string_length(s);
    td_ctl_put_text(b, p, n, max, td_ctl_needs_quote(p, n) ? TD_CTL_TEXT_QUOTE : 0);
}

static void put_anyvalue(td_buf *b, const json_t *v, size_t limit, int depth);

static size_t room_left(const td_buf *b, size_t limit)
{
    return b->len < limit ? limit - b->len : 0;
}

/* Elements of an ArrayValue/KeyValueList: {"values":[...]} (missing = empty). */
static const json_t *list_values(const json_t *wrapper)
{
    const json_t *vals = json_is_object(wrapper) ? json_object_get(wrapper, "values") : NULL;
    return json_is_array(vals) ? vals : NULL;
}

static void put_list(td_buf *b, const json_t *wrapper, bool kv, size_t limit, int depth)
{
    const json_t *vals = list_values(wrapper);
    size_t n = vals ? json_array_size(vals) : 0;
    td_buf_addch(b, kv ? '{' : '[');
    if (depth >= ANYVALUE_MAX_DEPTH && n) {
        td_buf_addstr(b, ELLIPSIS);
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (b->len >= limit) {
            td_buf_addstr(b, ELLIPSIS);
            break;
        }
        if (i) {
            td_buf_addstr(b, ", ");
        }
        const json_t *e = json_array_get(vals, i);
        if (kv) {
            const json_t *k = json_is_object(e) ? json_object_get(e, "key") : NULL;
            if (json_is_string(k)) {
                td_ctl_put_text(b, json_string_value(k), json_string_length(k), room_left(b, limit),
                                0);
            }
            td_buf_addch(b, '=');
            e = json_is_object(e) ? json_object_get(e, "value") : NULL;
        }
        put_anyvalue(b, e, limit, depth + 1);
    }
    td_buf_addch(b, kv ? '}' : ']');
}

static void put_anyvalue(td_buf *b, const json_t *v, size_t limit, int depth)
{
    size_t room = room_left(b, limit);
    const json_t *x;
    if (!v || json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0)) {
        td_buf_addstr(b, "<empty>");
        return;
    }
    if (!json_is_object(v)) {
        td_buf_addch(b, '?');
        return;
    }
    if ((x = json_object_get(v, "stringValue")) && json_is_string(x)) {
        put_scalar_text(b, x, room);
    } else if ((x = json_object_get(v, "boolValue")) && json_is_boolean(x)) {
        td_buf_addstr(b, json_is_true(x) ? "true" : "false");
    } else if ((x = json_object_get(v, "intValue")) || (x = json_object_get(v, "doubleValue"))) {
        /* int64 as a decimal string (Tempo JSON), or a number; doubles may be "NaN". */
        if (json_is_number(x)) {
            put_number(b, x);
        } else if (json_is_string(x)) {
            put_scalar_text(b, x, room);
        } else {
            td_buf_addch(b, '?');
        }
    } else if ((x = json_object_get(v, "arrayValue"))) {
        put_list(b, x, false, limit, depth);
    } else if ((x = json_object_get(v, "kvlistValue"))) {
        put_list(b, x, true, limit, depth);
    } else if ((x = json_object_get(v, "bytesValue")) && json_is_string(x)) {
        put_scalar_text(b, x, room);
    } else {
        td_buf_addch(b, '?');
    }
}

void td_ctl_put_anyvalue(td_buf *b, const json_t *v, size_t max)
{
    size_t limit;
    if (!td_size_add(b->len, max, &limit)) {
        limit = SIZE_MAX;
    }
    put_anyvalue(b, v, limit, 0);
}

bool td_ctl_json_u64(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0) {
            return false;
        }
        *out = (uint64_t)i;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0) || d >= 18446744073709551615.0) {
            return false;
        }
        *out = (uint64_t)d;
        return true;
    }
    if (!json_is_string(v)) {
        return false;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > 20) {
        return false;
    }
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (r > (UINT64_MAX - d) / 10) {
            return false;
        }
        r = r * 10 + d;
    }
    *out = r;
    return true;
}

const char *td_ctl_json_str(const json_t *obj, const char *key, size_t *len)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (!json_is_string(v)) {
        *len = 0;
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

bool td_ctl_write_body(FILE *f, td_slice body)
{
    if (body.len) {
        fwrite(body.ptr, 1, body.len, f);
    }
    if (body.len == 0 || body.ptr[body.len - 1] != '\n') {
        fputc('\n', f);
    }
    return !ferror(f);
}
