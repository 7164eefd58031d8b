/*
 * lexer.c - TraceQL tokens, following Tempo's lexer (text/scanner in GoTokens
 * mode plus TraceQL's attribute rules):
 *
 *   - whitespace is space, tab, CR, LF; `//` and block comments are skipped;
 *   - an attribute runs from its scope (`.`, `span.`, `resource.`, `event.`,
 *     `link.`, `instrumentation.`) up to whitespace or one of {}()=~!<>&|^, ;
 *     `"..."` parts inside it are quoted (escapes \" and \\ only) and
 *     concatenated, so `span.http.url` and `span."foo bar"` are single tokens;
 *   - a number glued to letters is a duration ("1h30m", "1.5s", "3d"), parsed
 *     Prometheus-style first, then as a Go duration, else an error;
 *   - strings are Go literals: "..." with Go escapes, or `raw`;
 *   - multi-character operators take the longest match (`!>>`, `&<<`, `=~`).
 *
 * Errors carry the position of the offending token's first character.
 */
#include "api/traceql/tql_int.h"
#include "core/hex.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* positions, errors, UTF-8                                                 */
/* ------------------------------------------------------------------------ */

void td__tql_linecol(const char *q, size_t len, size_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    if (off > len) {
        off = len;
    }
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)q[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++; /* count characters, not bytes: continuation bytes do not advance */
        }
    }
    *line = l;
    *col = c;
}

td_status td__tql_parse_error(td_err *err, const char *q, size_t len, size_t off, const char *fmt,
                              ...)
{
    char msg[TD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    unsigned line, col;
    td__tql_linecol(q, len, off, &line, &col);
    return td_err_set(err, TD_INVALID, "parse error at line %u, col %u: %s", line, col, msg);
}

td_status td__tql_unsupported(td_err *err, const char *q, size_t len, size_t off, const char *what)
{
    unsigned line, col;
    td__tql_linecol(q, len, off, &line, &col);
    return td_err_set(err, TD_INVALID, "unsupported TraceQL construct: %s at line %u, col %u", what,
                      line, col);
}

td_status td__tql_lex_check(const char *q, size_t len, td_err *err)
{
    const unsigned char *p = (const unsigned char *)q;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (p[i] == 0) {
            return td__tql_parse_error(err, q, len, i, "invalid character NUL");
        }
        size_t k = td_utf8_decode(p + i, len - i, &cp);
        if (k == 0) {
            return td__tql_parse_error(err, q, len, i, "invalid UTF-8 encoding");
        }
        i += k;
    }
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* character classes                                                        */
/* ------------------------------------------------------------------------ */

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_word_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_word(int c)
{
    return is_word_start(c) || is_digit(c);
}

/* Go's unicode.IsSpace. */
static bool is_space_rune(uint32_t r)
{
    switch (r) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return r >= 0x2000 && r <= 0x200A;
    }
}

/*
 * Tempo's isAttributeRune: anything but whitespace and {}()=~!<>&|^, . Returns
 * the byte length of the character at pos, or 0 when it ends the attribute.
 * The query is valid UTF-8 (td__tql_lex_check ran first).
 */
static size_t attr_rune(const td__tql_lexer *l, size_t pos)
{
    if (pos >= l->len) {
        return 0;
    }
    uint32_t r;
    size_t k = td_utf8_decode((const unsigned char *)l->q + pos, l->len - pos, &r);
    if (k == 0 || is_space_rune(r)) {
        return 0;
    }
    switch (r) {
    case '{':
    case '}':
    case '(':
    case ')':
    case '=':
    case '~':
    case '!':
    case '<':
    case '>':
    case '&':
    case '|':
    case '^':
    case ',':
        return 0;
    default:
        return k;
    }
}

/* ------------------------------------------------------------------------ */
/* durations                                                                */
/* ------------------------------------------------------------------------ */

#define NS_S 1000000000ull
#define NS_H (3600ull * NS_S)
#define NS_D (24ull * NS_H)

/* Prometheus model.ParseDuration: [Ny][Nw][Nd][Nh][Nm][Ns][Nms], integers, in order. */
static bool parse_prom_duration(const char *s, size_t n, int64_t *ns)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"y", 365 * NS_D}, {"w", 7 * NS_D}, {"d", NS_D},           {"h", NS_H},
                 {"m", 60 * NS_S},  {"s", NS_S},     {"ms", 1000ull * 1000}};
    const size_t nunits = sizeof(units) / sizeof(units[0]);
    if (n == 0) {
        return false;
    }
    if (n == 1 && s[0] == '0') {
        *ns = 0;
        return true;
    }
    uint64_t total = 0;
    size_t next_unit = 0, i = 0;
    while (i < n) {
        uint64_t v = 0;
        size_t d0 = i;
        while (i < n && is_digit((unsigned char)s[i])) {
            if (v > (UINT64_MAX - 9) / 10) {
                return false;
            }
            v = v * 10 + (uint64_t)(s[i] - '0');
            i++;
        }
        size_t u0 = i;
        while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
            i++;
        }
        if (i == d0 || u0 == d0 || u0 == i) {
            return false;
        }
        size_t k = next_unit;
        while (k < nunits &&
               (strlen(units[k].unit) != i - u0 || memcmp(units[k].unit, s + u0, i - u0) != 0)) {
            k++;
        }
        if (k == nunits) {
            return false;
        }
        next_unit = k + 1;
        if (v > (uint64_t)INT64_MAX / units[k].mult) {
            return false;
        }
        total += v * units[k].mult;
        if (total > (uint64_t)INT64_MAX) {
            return false;
        }
    }
    *ns = (int64_t)total;
    return true;
}

/* Go time.ParseDuration without the sign (the lexer never passes one). */
static bool parse_go_duration(const char *s, size_t n, int64_t *ns)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"ns", 1},           {"us", 1000}, {"\xC2\xB5s", 1000}, /* U+00B5 micro sign */
                 {"\xCE\xBCs", 1000},                                    /* U+03BC Greek mu */
                 {"ms", 1000 * 1000}, {"s", NS_S},  {"m", 60 * NS_S},    {"h", NS_H}};
    const uint64_t limit = 1ull << 63;
    size_t i = 0;
    uint64_t total = 0;
    if (n == 0) {
        return false;
    }
    if (n == 1 && s[0] == '0') {
        *ns = 0;
        return true;
    }
    while (i < n) {
        if (!(s[i] == '.' || is_digit((unsigned char)s[i]))) {
            return false;
        }
        uint64_t v = 0;
        size_t p0 = i;
        while (i < n && is_digit((unsigned char)s[i])) {
            if (v > (limit - 1) / 10) {
                return false;
            }
            v = v * 10 + (uint64_t)(s[i] - '0');
            if (v > limit) {
                return false;
            }
            i++;
        }
        bool pre = i != p0, post = false;
        uint64_t f = 0;
        double scale = 1;
        if (i < n && s[i] == '.') {
            i++;
            size_t f0 = i;
            bool overflow = false;
            while (i < n && is_digit((unsigned char)s[i])) {
                if (!overflow) {
                    if (f > (UINT64_MAX / 10) - 10) {
                        overflow = true; /* keep the digits we have, as Go does */
                    } else {
                        f = f * 10 + (uint64_t)(s[i] - '0');
                        scale *= 10;
                    }
                }
                i++;
            }
            post = i != f0;
        }
        if (!pre && !post) {
            return false;
        }
        size_t u0 = i;
        while (i < n && s[i] != '.' && !is_digit((unsigned char)s[i])) {
            i++;
        }
        if (u0 == i) {
            return false;
        }
        uint64_t mult = 0;
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
            if (strlen(units[k].unit) == i - u0 && memcmp(units[k].unit, s + u0, i - u0) == 0) {
                mult = units[k].mult;
                break;
            }
        }
        if (mult == 0) {
            return false;
        }
        if (v > limit / mult) {
            return false;
        }
        v *= mult;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)mult / scale));
            if (v > limit) {
                return false;
            }
        }
        total += v;
        if (total > limit) {
            return false;
        }
    }
    if (total > (uint64_t)INT64_MAX) {
        return false;
    }
    *ns = (int64_t)total;
    return true;
}

bool td__tql_parse_duration(const char *s, size_t n, int64_t *ns)
{
    return parse_prom_duration(s, n, ns) || parse_go_duration(s, n, ns);
}

/* ------------------------------------------------------------------------ */
/* tokens                                                                   */
/* ------------------------------------------------------------------------ */

static td_status lex_error(td__tql_lexer *l, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static td_status lex_error(td__tql_lexer *l, size_t off, const char *fmt, ...)
{
    char msg[TD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return td__tql_parse_error(l->err, l->q, l->len, off, "%s", msg);
}

static td_status nomem(td__tql_lexer *l)
{
    return td_err_set(l->err, TD_NOMEM, "out of memory parsing the query");
}

/* Skip whitespace and comments. */
static td_status skip_space(td__tql_lexer *l)
{
    for (;;) {
        if (l->pos >= l->len) {
            return TD_OK;
        }
        char c = l->q[l->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            l->pos++;
        } else if (c == '/' && l->pos + 1 < l->len && l->q[l->pos + 1] == '/') {
            while (l->pos < l->len && l->q[l->pos] != '\n') {
                l->pos++;
            }
        } else if (c == '/' && l->pos + 1 < l->len && l->q[l->pos + 1] == '*') {
            size_t start = l->pos;
            l->pos += 2;
            for (;;) {
                if (l->pos + 1 >= l->len) {
                    return lex_error(l, start, "%s", "comment not terminated");
                }
                if (l->q[l->pos] == '*' && l->q[l->pos + 1] == '/') {
                    l->pos += 2;
                    break;
                }
                l->pos++;
            }
        } else {
            return TD_OK;
        }
    }
}

/* "..." with Go escapes, or `raw` (CRs dropped, as Go does). */
static td_status lex_string(td__tql_lexer *l, td__tql_tok *t)
{
    size_t start = l->pos;
    char quote = l->q[l->pos++];
    /* The value is never longer than the source text. */
    size_t end = l->pos;
    while (end < l->len && l->q[end] != quote) {
        if (quote == '"' && l->q[end] == '\n') {
            return lex_error(l, start, "%s", "literal not terminated");
        }
        if (quote == '"' && l->q[end] == '\\' && end + 1 < l->len) {
            end++;
        }
        end++;
    }
    if (end >= l->len) {
        return lex_error(l, start, "%s", "literal not terminated");
    }
    char *o = td_arena_alloc(l->a, end - l->pos + 1);
    if (!o) {
        return nomem(l);
    }
    size_t n = 0;
    while (l->pos < end) {
        char c = l->q[l->pos];
        if (quote == '`') {
            if (c != '\r') {
                o[n++] = c;
            }
            l->pos++;
            continue;
        }
        if (c != '\\') {
            o[n++] = c;
            l->pos++;
            continue;
        }
        size_t esc = l->pos;
        char e = l->q[l->pos + 1];
        l->pos += 2;
        switch (e) {
        case 'a':
            o[n++] = '\a';
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'n':
            o[n++] = '\n';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'v':
            o[n++] = '\v';
            break;
        case '\\':
            o[n++] = '\\';
            break;
        case '"':
            o[n++] = '"';
            break;
        case 'x':
        case 'u':
        case 'U': {
            size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (size_t k = 0; k < digits; k++) {
                int h = l->pos < end ? td_hex_val((unsigned char)l->q[l->pos]) : -1;
                if (h < 0) {
                    return lex_error(l, esc, "%s", "invalid escape sequence in string");
                }
                v = v * 16 + (uint32_t)h;
                l->pos++;
            }
            if (e == 'x') {
                o[n++] = (char)v;
            } else {
                if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
                    return lex_error(l, esc, "%s", "invalid Unicode code point in string");
                }
                n += td_utf8_encode(o + n, v); /* at most as long as the escape itself */
            }
            break;
        }
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7': {
            uint32_t v = (uint32_t)(e - '0');
            for (int k = 0; k < 2; k++) {
                if (l->pos >= end || l->q[l->pos] < '0' || l->q[l->pos] > '7') {
                    return lex_error(l, esc, "%s", "invalid escape sequence in string");
                }
                v = v * 8 + (uint32_t)(l->q[l->pos] - '0');
                l->pos++;
            }
            if (v > 255) {
                return lex_error(l, esc, "%s", "invalid escape sequence in string");
            }
            o[n++] = (char)v;
            break;
        }
        default:
            return lex_error(l, esc, "%s", "invalid escape sequence in string");
        }
    }
    l->pos = end + 1;
    o[n] = '\0';
    t->kind = TQ_STRING;
    t->s = o;
    t->slen = n;
    return TD_OK;
}

/*
 * The attribute name starting at l->pos (after its scope). `any` reports
 * whether anything was consumed: `span.""` is a valid, empty name.
 */
static td_status lex_attr_name(td__tql_lexer *l, const char **name, size_t *name_len)
{
    size_t start = l->pos, p = l->pos;
    bool quoted = false;
    for (;;) {
        if (p < l->len && l->q[p] == '"') {
            size_t qstart = p;
            quoted = true;
            p++;
            for (;;) {
                if (p >= l->len) {
                    return lex_error(l, qstart, "%s", "unexpected EOF, expecting \"");
                }
                if (l->q[p] == '"') {
                    p++;
                    break;
                }
                if (l->q[p] == '\\') {
                    if (p + 1 >= l->len || (l->q[p + 1] != '"' && l->q[p + 1] != '\\')) {
                        return lex_error(l, p, "%s", "invalid escape sequence");
                    }
                    p++;
                }
                p++;
            }
            continue;
        }
        size_t k = attr_rune(l, p);
        if (k == 0) {
            break;
        }
        p += k;
    }
    if (p == start) {
        return lex_error(l, start, "%s", "syntax error: expected an attribute name");
    }
    char *o = td_arena_alloc(l->a, p - start + 1);
    if (!o) {
        return nomem(l);
    }
    size_t n = 0;
    if (!quoted) {
        memcpy(o, l->q + start, p - start);
        n = p - start;
    } else {
        for (size_t i = start; i < p;) {
            if (l->q[i] != '"') {
                o[n++] = l->q[i++];
                continue;
            }
            i++;
            while (l->q[i] != '"') {
                if (l->q[i] == '\\') {
                    i++;
                }
                o[n++] = l->q[i++];
            }
            i++;
        }
    }
    o[n] = '\0';
    l->pos = p;
    *name = o;
    *name_len = n;
    return TD_OK;
}

typedef struct {
    const char *word;
    td__tql_kw kw;
} kw_entry;

static const kw_entry keywords[] = {
    {"true", KW_TRUE},
    {"false", KW_FALSE},
    {"nil", KW_NIL},
    {"ok", KW_OK},
    {"error", KW_ERROR},
    {"unset", KW_UNSET},
    {"unspecified", KW_UNSPECIFIED},
    {"internal", KW_INTERNAL},
    {"server", KW_SERVER},
    {"client", KW_CLIENT},
    {"producer", KW_PRODUCER},
    {"consumer", KW_CONSUMER},
    {"minInt", KW_MININT},
    {"maxInt", KW_MAXINT},
    {"count", KW_COUNT},
    {"avg", KW_AVG},
    {"min", KW_MIN},
    {"max", KW_MAX},
    {"sum", KW_SUM},
    {"by", KW_BY},
    {"coalesce", KW_COALESCE},
    {"select", KW_SELECT},
    {"with", KW_WITH},
    {"rate", KW_RATE},
    {"count_over_time", KW_COUNT_OVER_TIME},
    {"min_over_time", KW_MIN_OVER_TIME},
    {"max_over_time", KW_MAX_OVER_TIME},
    {"avg_over_time", KW_AVG_OVER_TIME},
    {"sum_over_time", KW_SUM_OVER_TIME},
    {"quantile_over_time", KW_QUANTILE_OVER_TIME},
    {"histogram_over_time", KW_HISTOGRAM_OVER_TIME},
    {"compare", KW_COMPARE},
    {"topk", KW_TOPK},
    {"bottomk", KW_BOTTOMK},
};

typedef struct {
    const char *scope; /* "" for the unscoped spelling */
    const char *word;
    td_traceql_intrinsic id;
} intrinsic_entry;

/* Every spelling Tempo accepts for the intrinsics we implement. */
static const intrinsic_entry intrinsics[] = {
    {"", "name", TD_TRACEQL_I_NAME},
    {"", "status", TD_TRACEQL_I_STATUS},
    {"", "statusMessage", TD_TRACEQL_I_STATUS_MESSAGE},
    {"", "kind", TD_TRACEQL_I_KIND},
    {"", "duration", TD_TRACEQL_I_DURATION},
    {"", "traceDuration", TD_TRACEQL_I_TRACE_DURATION},
    {"", "rootName", TD_TRACEQL_I_ROOT_NAME},
    {"", "rootServiceName", TD_TRACEQL_I_ROOT_SERVICE},
    {"span", "name", TD_TRACEQL_I_NAME},
    {"span", "status", TD_TRACEQL_I_STATUS},
    {"span", "statusMessage", TD_TRACEQL_I_STATUS_MESSAGE},
    {"span", "kind", TD_TRACEQL_I_KIND},
    {"span", "duration", TD_TRACEQL_I_DURATION},
    {"span", "id", TD_TRACEQL_I_SPAN_ID},
    {"span", "parentID", TD_TRACEQL_I_PARENT_ID},
    {"span", "childCount", TD_TRACEQL_I_CHILD_COUNT},
    {"trace", "duration", TD_TRACEQL_I_TRACE_DURATION},
    {"trace", "rootName", TD_TRACEQL_I_ROOT_NAME},
    {"trace", "rootService", TD_TRACEQL_I_ROOT_SERVICE},
    {"trace", "id", TD_TRACEQL_I_TRACE_ID},
    {"event", "name", TD_TRACEQL_I_EVENT_NAME},
    {"event", "timeSinceStart", TD_TRACEQL_I_EVENT_TIME},
    {"link", "traceID", TD_TRACEQL_I_LINK_TRACE_ID},
    {"link", "spanID", TD_TRACEQL_I_LINK_SPAN_ID},
    {"instrumentation", "name", TD_TRACEQL_I_INSTR_NAME},
    {"instrumentation", "version", TD_TRACEQL_I_INSTR_VERSION},
};

/* Intrinsics Tempo knows that we do not implement: a clean "unsupported" error. */
static const char *const unsupported_intrinsics[] = {
    "parent",
    "nestedSetLeft",
    "nestedSetRight",
    "nestedSetParent",
};

static bool word_is(const char *w, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(w, s, n) == 0;
}

/* Canonical spelling of an intrinsic (the unscoped one when there is one). */
static const char *intrinsic_spelling(td_traceql_intrinsic id, char *buf, size_t cap)
{
    for (size_t i = 0; i < sizeof(intrinsics) / sizeof(intrinsics[0]); i++) {
        if (intrinsics[i].id == id) {
            if (intrinsics[i].scope[0]) {
                snprintf(buf, cap, "%s:%s", intrinsics[i].scope, intrinsics[i].word);
            } else {
                snprintf(buf, cap, "%s", intrinsics[i].word);
            }
            return buf;
        }
    }
    return "?";
}

static td_status set_intrinsic(td__tql_lexer *l, td__tql_tok *t, td_traceql_intrinsic id)
{
    char buf[48];
    const char *sp = intrinsic_spelling(id, buf, sizeof(buf));
    t->kind = TQ_INTRINSIC;
    t->attr.scope = TD_TRACEQL_SCOPE_INTRINSIC;
    t->attr.intrinsic = id;
    t->attr.name_len = strlen(sp);
    t->attr.name = td_arena_strndup(l->a, sp, t->attr.name_len);
    return t->attr.name ? TD_OK : nomem(l);
}

static td_status lex_word(td__tql_lexer *l, td__tql_tok *t)
{
    size_t start = l->pos;
    while (l->pos < l->len && is_word((unsigned char)l->q[l->pos])) {
        l->pos++;
    }
    const char *w = l->q + start;
    size_t n = l->pos - start;
    char next = l->pos < l->len ? l->q[l->pos] : '\0';

    if (next == '.') {
        static const struct {
            const char *word;
            td_traceql_scope scope;
        } scopes[] = {{"span", TD_TRACEQL_SCOPE_SPAN},
                      {"resource", TD_TRACEQL_SCOPE_RESOURCE},
                      {"event", TD_TRACEQL_SCOPE_EVENT},
                      {"link", TD_TRACEQL_SCOPE_LINK},
                      {"instrumentation", TD_TRACEQL_SCOPE_INSTRUMENTATION}};
        for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
            if (word_is(w, n, scopes[i].word)) {
                l->pos++;
                t->kind = TQ_ATTR;
                t->attr.scope = scopes[i].scope;
                t->attr.intrinsic = TD_TRACEQL_I_NONE;
                td_status st = lex_attr_name(l, &t->attr.name, &t->attr.name_len);
                t->len = l->pos - start;
                return st;
            }
        }
        if (word_is(w, n, "parent")) {
            l->pos++;
            const char *name;
            size_t name_len;
            td_status st = lex_attr_name(l, &name, &name_len);
            t->kind = TQ_ATTR;
            t->unsupported = "parent scope (parent.<attribute>)";
            t->len = l->pos - start;
            return st;
        }
    }
    if (next == ':') {
        static const char *const colon_scopes[] = {"span", "trace", "event", "link",
                                                   "instrumentation"};
        for (size_t i = 0; i < sizeof(colon_scopes) / sizeof(colon_scopes[0]); i++) {
            if (!word_is(w, n, colon_scopes[i])) {
                continue;
            }
            l->pos++;
            size_t w2 = l->pos;
            while (l->pos < l->len && is_word((unsigned char)l->q[l->pos])) {
                l->pos++;
            }
            t->len = l->pos - start;
            for (size_t k = 0; k < sizeof(intrinsics) / sizeof(intrinsics[0]); k++) {
                if (strcmp(intrinsics[k].scope, colon_scopes[i]) == 0 &&
                    word_is(l->q + w2, l->pos - w2, intrinsics[k].word)) {
                    return set_intrinsic(l, t, intrinsics[k].id);
                }
            }
            for (size_t k = 0; k < sizeof(unsupported_intrinsics) / sizeof(char *); k++) {
                if (word_is(l->q + w2, l->pos - w2, unsupported_intrinsics[k])) {
                    t->kind = TQ_INTRINSIC;
                    t->unsupported = unsupported_intrinsics[k];
                    return TD_OK;
                }
            }
            char what[80];
            snprintf(what, sizeof(what), "%.*s", (int)(t->len > 64 ? 64 : t->len), w);
            return lex_error(l, start, "unknown intrinsic: %s", what);
        }
    }
    t->len = n;
    for (size_t k = 0; k < sizeof(intrinsics) / sizeof(intrinsics[0]); k++) {
        if (!intrinsics[k].scope[0] && word_is(w, n, intrinsics[k].word)) {
            return set_intrinsic(l, t, intrinsics[k].id);
        }
    }
    for (size_t k = 0; k < sizeof(unsupported_intrinsics) / sizeof(char *); k++) {
        if (word_is(w, n, unsupported_intrinsics[k])) {
            t->kind = TQ_INTRINSIC;
            t->unsupported = unsupported_intrinsics[k];
            return TD_OK;
        }
    }
    for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
        if (word_is(w, n, keywords[k].word)) {
            t->kind = TQ_KEYWORD;
            t->kw = keywords[k].kw;
            return TD_OK;
        }
    }
    t->kind = TQ_IDENT;
    t->s = w;
    t->slen = n;
    return TD_OK;
}

/* Is the byte at p part of a run glued to a number (a duration suffix)? */
static size_t glued(const td__tql_lexer *l, size_t p)
{
    if (p >= l->len) {
        return 0;
    }
    unsigned char c = (unsigned char)l->q[p];
    if (is_word(c) || c == '.') {
        return 1;
    }
    if (p + 1 < l->len && ((c == 0xC2 && (unsigned char)l->q[p + 1] == 0xB5) ||
                           (c == 0xCE && (unsigned char)l->q[p + 1] == 0xBC))) {
        return 2; /* µ and μ */
    }
    return 0;
}

static td_status lex_number(td__tql_lexer *l, td__tql_tok *t)
{
    size_t start = l->pos, p = l->pos;
    bool is_float = false;
    while (p < l->len && is_digit((unsigned char)l->q[p])) {
        p++;
    }
    if (p < l->len && l->q[p] == '.') {
        is_float = true;
        p++;
        while (p < l->len && is_digit((unsigned char)l->q[p])) {
            p++;
        }
    }
    if (p < l->len && (l->q[p] == 'e' || l->q[p] == 'E')) {
        size_t e = p + 1;
        if (e < l->len && (l->q[e] == '+' || l->q[e] == '-')) {
            e++;
        }
        if (e < l->len && is_digit((unsigned char)l->q[e])) {
            is_float = true;
            p = e;
            while (p < l->len && is_digit((unsigned char)l->q[p])) {
                p++;
            }
        }
    }
    size_t num_end = p;
    while (glued(l, p)) {
        p += glued(l, p);
    }
    t->off = start;
    t->len = p - start;
    l->pos = p;
    char text[64];
    if (p != num_end) {
        int64_t ns;
        if (!td__tql_parse_duration(l->q + start, p - start, &ns)) {
            snprintf(text, sizeof(text), "%.*s", (int)(p - start > 40 ? 40 : p - start),
                     l->q + start);
            return lex_error(l, start, "invalid duration: %s", text);
        }
        t->kind = TQ_DURATION;
        t->i = ns;
        return TD_OK;
    }
    /* the digits as a C string: on the stack when short, else in the arena */
    size_t n = num_end - start;
    char *digits = text;
    if (n >= sizeof(text)) {
        digits = td_arena_strndup(l->a, l->q + start, n);
        if (!digits) {
            return nomem(l);
        }
    } else {
        memcpy(text, l->q + start, n);
        text[n] = '\0';
    }
    if (is_float) {
        errno = 0;
        double v = strtod(digits, NULL);
        if (isinf(v)) {
            return lex_error(l, start, "%s", "value out of range");
        }
        t->kind = TQ_FLOAT;
        t->f = v;
        return TD_OK;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(digits[i] - '0')) / 10) {
            return lex_error(l, start, "%s", "value out of range");
        }
        v = v * 10 + (uint64_t)(digits[i] - '0');
    }
    t->kind = TQ_INT;
    t->i = (int64_t)v;
    return TD_OK;
}

td_status td__tql_lex(td__tql_lexer *l, td__tql_tok *t)
{
    memset(t, 0, sizeof(*t));
    td_status st = skip_space(l);
    if (st != TD_OK) {
        return st;
    }
    t->off = l->pos;
    if (l->pos >= l->len) {
        t->kind = TQ_EOF;
        return TD_OK;
    }
    const char *q = l->q;
    size_t p = l->pos;
    char c = q[p];
    char c1 = p + 1 < l->len ? q[p + 1] : '\0';
    char c2 = p + 2 < l->len ? q[p + 2] : '\0';
    size_t n = 1;
    switch (c) {
    case '{':
        t->kind = TQ_LBRACE;
        break;
    case '}':
        t->kind = TQ_RBRACE;
        break;
    case '(':
        t->kind = TQ_LPAREN;
        break;
    case ')':
        t->kind = TQ_RPAREN;
        break;
    case ',':
        t->kind = TQ_COMMA;
        break;
    case '+':
        t->kind = TQ_ADD;
        break;
    case '-':
        t->kind = TQ_SUB;
        break;
    case '*':
        t->kind = TQ_MUL;
        break;
    case '/':
        t->kind = TQ_DIV;
        break;
    case '%':
        t->kind = TQ_MOD;
        break;
    case '^':
        t->kind = TQ_POW;
        break;
    case '~':
        t->kind = TQ_TILDE;
        break;
    case '=':
        t->kind = c1 == '~' ? (n = 2, TQ_RE) : TQ_EQ;
        break;
    case '!':
        if (c1 == '=') {
            t->kind = TQ_NEQ, n = 2;
        } else if (c1 == '~') {
            t->kind = TQ_NRE, n = 2;
        } else if (c1 == '>') {
            t->kind = c2 == '>' ? (n = 3, TQ_NOT_DESC) : (n = 2, TQ_NOT_CHILD);
        } else if (c1 == '<') {
            t->kind = c2 == '<' ? (n = 3, TQ_NOT_ANCE) : (n = 2, TQ_NOT_PARENT);
        } else {
            t->kind = TQ_NOT;
        }
        break;
    case '>':
        t->kind = c1 == '=' ? (n = 2, TQ_GTE) : c1 == '>' ? (n = 2, TQ_DESC) : TQ_GT;
        break;
    case '<':
        t->kind = c1 == '=' ? (n = 2, TQ_LTE) : c1 == '<' ? (n = 2, TQ_ANCE) : TQ_LT;
        break;
    case '|':
        t->kind = c1 == '|' ? (n = 2, TQ_OR) : TQ_PIPE;
        break;
    case '&':
        if (c1 == '&') {
            t->kind = TQ_AND, n = 2;
        } else if (c1 == '~') {
            t->kind = TQ_UNION_SIBL, n = 2;
        } else if (c1 == '>') {
            t->kind = c2 == '>' ? (n = 3, TQ_UNION_DESC) : (n = 2, TQ_UNION_CHILD);
        } else if (c1 == '<') {
            t->kind = c2 == '<' ? (n = 3, TQ_UNION_ANCE) : (n = 2, TQ_UNION_PARENT);
        } else {
            return lex_error(l, p, "%s", "syntax error: unexpected character '&'");
        }
        break;
    case '"':
    case '`':
        st = lex_string(l, t);
        t->len = l->pos - t->off;
        return st;
    case '.':
        if (is_digit((unsigned char)c1)) {
            return lex_number(l, t);
        }
        l->pos++;
        t->kind = TQ_ATTR;
        t->attr.scope = TD_TRACEQL_SCOPE_NONE;
        st = lex_attr_name(l, &t->attr.name, &t->attr.name_len);
        t->len = l->pos - t->off;
        return st;
    default:
        if (is_digit((unsigned char)c)) {
            return lex_number(l, t);
        }
        if (is_word_start((unsigned char)c)) {
            return lex_word(l, t);
        }
        {
            uint32_t cp;
            size_t k = td_utf8_decode((const unsigned char *)q + p, l->len - p, &cp);
            char what[8];
            if (k == 0) {
                k = 1;
            }
            memcpy(what, q + p, k);
            what[k] = '\0';
            if ((unsigned char)c < 0x20 || c == 0x7f) {
                snprintf(what, sizeof(what), "\\x%02x", (unsigned char)c);
            }
            return lex_error(l, p, "syntax error: unexpected character '%s'", what);
        }
    }
    l->pos += n;
    t->len = n;
    return TD_OK;
}
