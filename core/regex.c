/*
 * regex.c - translate an RE2-syntax regex (TraceQL, Prometheus label
 * selectors) into a POSIX extended regex that regcomp(3)/regexec(3) run with
 * the same match/no-match answer.
 *
 * Tempo matches `=~ "p"` with Go's regexp as ^(?s:p)$, and Prometheus label
 * matchers (so Pyroscope selectors) the same way: fully anchored, `.`
 * matching newline. The translation keeps that meaning in the C locale, where
 * regexec works on bytes:
 *   - `.` becomes one UTF-8 character: ([^\x80-\xbf][\x80-\xbf]*), i.e. a lead
 *     byte and its continuation bytes (a byte-wise `.` would count é as two);
 *   - classes are computed as sets of code points: the ASCII part becomes one
 *     bracket expression, the non-ASCII part alternations of UTF-8 byte ranges,
 *     so [^a], \D, [à-ÿ] and negation work on characters, not bytes;
 *   - a non-ASCII literal is wrapped in a group so `é+` repeats the character;
 *   - (?i) is done by rewriting ASCII letters as [aA] (scoped flags work too);
 *   - lazy quantifiers become greedy (same answer for a full match);
 *   - an estimate of the compiled size (counted repetitions multiply it) is
 *     bounded, because glibc expands a{1000} into 1000 copies.
 * What cannot be translated faithfully is rejected, never approximated.
 */
#include "core/regex.h"

#include "core/buf.h"
#include "core/hex.h"
#include "core/mem.h"
#include "core/utf8.h"

#include <stdarg.h>
#include <stdbool.h>

#include <stdio.h>
#include <string.h>

#define COST_MAX 20000
#define GROUP_MAX 64
#define RANGES_MAX 128
#define REPEAT_MAX 1000

typedef struct {
    uint32_t lo, hi;
} cp_range;

/* A set of code points: ASCII as a bitmap, the rest as sorted disjoint ranges. */
typedef struct {
    bool ascii[128];
    cp_range r[RANGES_MAX];
    size_t nr;
} cp_set;

typedef struct {
    bool icase, dotnl; /* flags in effect before the group opened */
    size_t cost;       /* cost of the group's content so far */
} group;

typedef struct {
    const unsigned char *p;
    size_t n, i;
    td_buf out;
    char *why;
    size_t whylen;
    bool icase, dotnl;
    group g[GROUP_MAX + 1];
    int depth;
    enum { LAST_NONE, LAST_ATOM, LAST_REPEAT, LAST_ASSERT } last;
    size_t last_cost;  /* cost of the last atom (for repetition) */
    size_t last_start; /* where the last atom starts in out */
} rx;

static bool fail(rx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(rx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->why, x->whylen, fmt, ap);
    va_end(ap);
    return false;
}

static size_t sat_add(size_t a, size_t b)
{
    size_t r;
    return td_size_add(a, b, &r) && r <= COST_MAX * 2 ? r : COST_MAX * 2;
}

static size_t sat_mul(size_t a, size_t b)
{
    size_t r;
    return td_size_mul(a, b, &r) && r <= COST_MAX * 2 ? r : COST_MAX * 2;
}

/* An atom of the given cost was emitted starting at out offset start. */
static bool atom(rx *x, size_t start, size_t cost)
{
    x->g[x->depth].cost = sat_add(x->g[x->depth].cost, cost);
    x->last = LAST_ATOM;
    x->last_cost = cost;
    x->last_start = start;
    if (x->g[x->depth].cost > COST_MAX) {
        return fail(x, "regex too large");
    }
    return true;
}

static bool is_special(int c)
{
    return c && strchr(".[]()*+?{}|^$\\", c) != NULL;
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* One ASCII character as a literal (case-folded under (?i)). */
static void emit_ascii(rx *x, int c)
{
    if (x->icase && is_alpha(c)) {
        td_buf_addf(&x->out, "[%c%c]", c | 0x20, c & ~0x20);
    } else if (is_special(c)) {
        td_buf_addch(&x->out, '\\');
        td_buf_addch(&x->out, (char)c);
    } else {
        td_buf_addch(&x->out, (char)c);
    }
}

/* A literal character: ASCII directly, others as a group of their bytes. */
static bool emit_literal(rx *x, uint32_t cp)
{
    size_t start = x->out.len;
    if (cp == 0) {
        return fail(x, "NUL characters are not supported in regexes");
    }
    if (cp < 0x80) {
        emit_ascii(x, (int)cp);
    } else {
        unsigned char b[4];
        size_t k = td_utf8_encode((char *)b, cp);
        td_buf_addch(&x->out, '(');
        td_buf_add(&x->out, b, k);
        td_buf_addch(&x->out, ')');
    }
    return atom(x, start, 1);
}

/* ---- code point sets ---- */

static bool set_add(rx *x, cp_set *s, uint32_t lo, uint32_t hi)
{
    for (; lo <= hi && lo < 0x80; lo++) {
        if (lo) {
            s->ascii[lo] = true;
        }
    }
    if (lo > hi) {
        return true;
    }
    /* insert [lo, hi], keeping the list sorted and merged */
    cp_range tmp[RANGES_MAX + 1];
    size_t n = 0;
    bool placed = false;
    for (size_t k = 0; k < s->nr; k++) {
        cp_range r = s->r[k];
        if (!placed && lo < r.lo) {
            tmp[n++] = (cp_range){lo, hi};
            placed = true;
        }
        tmp[n++] = r;
        if (n > RANGES_MAX) {
            return fail(x, "character class too complex");
        }
    }
    if (!placed) {
        tmp[n++] = (cp_range){lo, hi};
    }
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        if (m && tmp[k].lo <= s->r[m - 1].hi + 1) {
            if (tmp[k].hi > s->r[m - 1].hi) {
                s->r[m - 1].hi = tmp[k].hi;
            }
        } else {
            if (m == RANGES_MAX) {
                return fail(x, "character class too complex");
            }
            s->r[m++] = tmp[k];
        }
    }
    s->nr = m;
    return true;
}

static void set_negate(cp_set *s)
{
    for (int c = 1; c < 128; c++) {
        s->ascii[c] = !s->ascii[c];
    }
    cp_range out[RANGES_MAX + 1];
    size_t n = 0;
    uint32_t next = 0x80;
    for (size_t k = 0; k < s->nr; k++) {
        if (s->r[k].lo > next) {
            out[n++] = (cp_range){next, s->r[k].lo - 1};
        }
        next = s->r[k].hi + 1;
    }
    if (next <= 0x10FFFF) {
        out[n++] = (cp_range){next, 0x10FFFF};
    }
    /* complementing k sorted ranges gives at most k+1 */
    if (n > RANGES_MAX) {
        n = RANGES_MAX; /* cannot happen with RANGES_MAX-1 inputs; keep bounds safe */
    }
    memcpy(s->r, out, n * sizeof(cp_range));
    s->nr = n;
}

/* \d \w \s and their negations (ASCII, as in RE2). */
static bool set_perl(rx *x, cp_set *s, int c)
{
    cp_set t;
    memset(&t, 0, sizeof(t));
    switch (c | 0x20) {
    case 'd':
        set_add(x, &t, '0', '9');
        break;
    case 'w':
        set_add(x, &t, '0', '9');
        set_add(x, &t, 'A', 'Z');
        set_add(x, &t, 'a', 'z');
        set_add(x, &t, '_', '_');
        break;
    case 's':
        set_add(x, &t, '\t', '\n');
        set_add(x, &t, '\f', '\r');
        set_add(x, &t, ' ', ' ');
        break;
    }
    if (c >= 'A' && c <= 'Z') {
        set_negate(&t);
    }
    for (int k = 1; k < 128; k++) {
        s->ascii[k] |= t.ascii[k];
    }
    for (size_t k = 0; k < t.nr; k++) {
        if (!set_add(x, s, t.r[k].lo, t.r[k].hi)) {
            return false;
        }
    }
    return true;
}

static bool set_posix(rx *x, cp_set *s, const char *name, size_t len, bool neg)
{
    static const struct {
        const char *name;
        const char *ranges; /* pairs lo,hi */
    } classes[] = {
        {"alnum", "09AZaz"},
        {"alpha", "AZaz"},
        {"ascii", "\x01\x7f"},
        {"blank", "\t\t  "},
        {"cntrl", "\x01\x1f\x7f\x7f"},
        {"digit", "09"},
        {"graph", "!~"},
        {"lower", "az"},
        {"print", " ~"},
        {"punct", "!/:@[`{~"},
        {"space", "\t\r  "},
        {"upper", "AZ"},
        {"word", "09AZaz__"},
        {"xdigit", "09AFaf"},
    };
    for (size_t k = 0; k < sizeof(classes) / sizeof(classes[0]); k++) {
        if (strlen(classes[k].name) != len || memcmp(classes[k].name, name, len) != 0) {
            continue;
        }
        cp_set t;
        memset(&t, 0, sizeof(t));
        for (const char *r = classes[k].ranges; *r; r += 2) {
            set_add(x, &t, (unsigned char)r[0], (unsigned char)r[1]);
        }
        if (neg) {
            set_negate(&t);
        }
        for (int c = 1; c < 128; c++) {
            s->ascii[c] |= t.ascii[c];
        }
        for (size_t j = 0; j < t.nr; j++) {
            if (!set_add(x, s, t.r[j].lo, t.r[j].hi)) {
                return false;
            }
        }
        return true;
    }
    return fail(x, "invalid character class range: [:%.*s:]", (int)(len > 20 ? 20 : len), name);
}

static void set_fold(cp_set *s)
{
    for (int c = 'a'; c <= 'z'; c++) {
        if (s->ascii[c] || s->ascii[c - 32]) {
            s->ascii[c] = s->ascii[c - 32] = true;
        }
    }
}

static void add_byte(td_buf *o, int b)
{
    td_buf_addch(o, (char)b);
}

/* One byte range inside a bracket: [\xLL-\xHH] or a single byte. */
static void emit_byte_range(td_buf *o, int lo, int hi)
{
    if (lo == hi) {
        if (lo < 0x80) {
            if (is_special(lo)) {
                td_buf_addch(o, '\\');
            }
            add_byte(o, lo);
        } else {
            td_buf_addch(o, '[');
            add_byte(o, lo);
            td_buf_addch(o, ']');
        }
        return;
    }
    td_buf_addch(o, '[');
    add_byte(o, lo);
    td_buf_addch(o, '-');
    add_byte(o, hi);
    td_buf_addch(o, ']');
}

/* Emit [lo, hi] (same UTF-8 length, >= 0x80) as alternatives of byte-range sequences. */
static void emit_utf8_range(rx *x, uint32_t lo, uint32_t hi, bool *first, size_t *cost)
{
    if (lo > hi) {
        return;
    }
    /* skip surrogates, which have no UTF-8 encoding */
    if (lo <= 0xDFFF && hi >= 0xD800) {
        if (lo < 0xD800) {
            emit_utf8_range(x, lo, 0xD7FF, first, cost);
        }
        if (hi > 0xDFFF) {
            emit_utf8_range(x, 0xE000, hi, first, cost);
        }
        return;
    }
    static const uint32_t bounds[] = {0x7F, 0x7FF, 0xFFFF};
    for (size_t k = 0; k < 3; k++) {
        if (lo <= bounds[k] && hi > bounds[k]) {
            emit_utf8_range(x, lo, bounds[k], first, cost);
            emit_utf8_range(x, bounds[k] + 1, hi, first, cost);
            return;
        }
    }
    for (int i = 1; i < 4; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                emit_utf8_range(x, lo, lo | m, first, cost);
                emit_utf8_range(x, (lo | m) + 1, hi, first, cost);
                return;
            }
            if ((hi & m) != m) {
                emit_utf8_range(x, lo, (hi & ~m) - 1, first, cost);
                emit_utf8_range(x, hi & ~m, hi, first, cost);
                return;
            }
        }
    }
    unsigned char a[4], b[4];
    size_t k = td_utf8_encode((char *)a, lo);
    td_utf8_encode((char *)b, hi);
    if (!*first) {
        td_buf_addch(&x->out, '|');
    }
    *first = false;
    for (size_t j = 0; j < k; j++) {
        emit_byte_range(&x->out, a[j], b[j]);
    }
    *cost = sat_add(*cost, k);
}

/* The ASCII part of a set as one POSIX bracket expression; false if empty. */
static bool emit_ascii_bracket(td_buf *o, const cp_set *s)
{
    bool any = false;
    for (int c = 1; c < 128; c++) {
        any |= s->ascii[c];
    }
    if (!any) {
        return false;
    }
    bool only_caret = true;
    for (int c = 1; c < 128; c++) {
        if (s->ascii[c] && c != '^') {
            only_caret = false;
        }
    }
    if (only_caret) {
        td_buf_addstr(o, "\\^");
        return true;
    }
    /*
     * POSIX bracket rules: ']' must come first, '-' last, '^' not first, and '['
     * must not precede ':', '.' or '='. So: ']' first, runs of ordinary
     * characters, then '[', '^', '-'.
     */
    td_buf_addch(o, '[');
    bool wrote = false;
    if (s->ascii[']']) {
        td_buf_addch(o, ']');
        wrote = true;
    }
    for (int c = 1; c < 128;) {
        if (!s->ascii[c] || c == ']' || c == '-' || c == '^' || c == '[') {
            c++;
            continue;
        }
        int e = c;
        while (e + 1 < 128 && s->ascii[e + 1] && e + 1 != ']' && e + 1 != '-' && e + 1 != '^' &&
               e + 1 != '[') {
            e++;
        }
        if (e - c >= 2) {
            add_byte(o, c);
            td_buf_addch(o, '-');
            add_byte(o, e);
        } else {
            for (int k = c; k <= e; k++) {
                add_byte(o, k);
            }
        }
        wrote = true;
        c = e + 1;
    }
    if (s->ascii['[']) {
        td_buf_addch(o, '[');
        wrote = true;
    }
    if (s->ascii['^']) {
        if (!wrote) {
            /* only '^' and '-': "-^" keeps '^' off the first position */
            td_buf_addstr(o, "-^");
            td_buf_addch(o, ']');
            return true;
        }
        td_buf_addch(o, '^');
    }
    if (s->ascii['-']) {
        td_buf_addch(o, '-');
    }
    td_buf_addch(o, ']');
    return true;
}

static bool emit_set(rx *x, cp_set *s)
{
    size_t start = x->out.len;
    if (x->icase) {
        set_fold(s);
    }
    bool all_nonascii = s->nr == 1 && s->r[0].lo == 0x80 && s->r[0].hi == 0x10FFFF;
    td_buf bracket = TD_BUF_INIT;
    bool has_ascii = emit_ascii_bracket(&bracket, s);
    size_t cost = 1;
    if (!s->nr) {
        if (has_ascii) {
            td_buf_add(&x->out, bracket.data, bracket.len);
        } else {
            td_buf_addstr(&x->out, "[^\x01-\xff]"); /* empty class: matches nothing */
        }
        td_buf_release(&bracket);
        return atom(x, start, 1);
    }
    td_buf_addch(&x->out, '(');
    bool first = true;
    if (has_ascii) {
        td_buf_add(&x->out, bracket.data, bracket.len);
        first = false;
    }
    td_buf_release(&bracket);
    if (all_nonascii) {
        if (!first) {
            td_buf_addch(&x->out, '|');
        }
        td_buf_addstr(&x->out, "[\xc0-\xff][\x80-\xbf]*");
        cost += 2;
    } else {
        for (size_t k = 0; k < s->nr; k++) {
            emit_utf8_range(x, s->r[k].lo, s->r[k].hi, &first, &cost);
        }
    }
    td_buf_addch(&x->out, ')');
    return atom(x, start, cost);
}

/* ---- escapes ---- */

/*
 * A character escape after '\' (x->i at the character after the backslash):
 * *cp on success. Class escapes are handled by the callers.
 */
static bool escape_cp(rx *x, uint32_t *cp)
{
    if (x->i >= x->n) {
        return fail(x, "trailing backslash at end of expression");
    }
    int c = x->p[x->i++];
    switch (c) {
    case 'a':
        *cp = 7;
        return true;
    case 'f':
        *cp = '\f';
        return true;
    case 't':
        *cp = '\t';
        return true;
    case 'n':
        *cp = '\n';
        return true;
    case 'r':
        *cp = '\r';
        return true;
    case 'v':
        *cp = '\v';
        return true;
    case 'x': {
        uint32_t v = 0;
        if (x->i < x->n && x->p[x->i] == '{') {
            x->i++;
            size_t nd = 0;
            while (x->i < x->n && x->p[x->i] != '}') {
                int h = td_hex_val(x->p[x->i]);
                if (h < 0 || ++nd > 8) {
                    return fail(x, "invalid escape sequence: \\x{");
                }
                v = v * 16 + (uint32_t)h;
                x->i++;
            }
            if (x->i >= x->n || nd == 0) {
                return fail(x, "invalid escape sequence: \\x{");
            }
            x->i++;
        } else {
            for (int k = 0; k < 2; k++) {
                int h = x->i < x->n ? td_hex_val(x->p[x->i]) : -1;
                if (h < 0) {
                    return fail(x, "invalid escape sequence: \\x");
                }
                v = v * 16 + (uint32_t)h;
                x->i++;
            }
        }
        if (v > 0x10FFFF) {
            return fail(x, "invalid escape sequence: \\x");
        }
        *cp = v;
        return true;
    }
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
        /* Go: \1-\7 followed by a non-digit would be a backreference */
        if (x->i >= x->n || x->p[x->i] < '0' || x->p[x->i] > '7') {
            return fail(x, "invalid escape sequence: \\%c (backreferences are not supported)", c);
        }
        /* fallthrough */
    case '0': {
        uint32_t v = (uint32_t)(c - '0');
        for (int k = 0; k < 2 && x->i < x->n && x->p[x->i] >= '0' && x->p[x->i] <= '7'; k++) {
            v = v * 8 + (uint32_t)(x->p[x->i++] - '0');
        }
        *cp = v;
        return true;
    }
    default:
        if (c < 0x80 && !((c >= '0' && c <= '9') || is_alpha(c) || c == '_')) {
            *cp = (uint32_t)c; /* escaped punctuation */
            return true;
        }
        if (c == 'p' || c == 'P') {
            return fail(x, "unsupported regex syntax: \\%c (Unicode classes)", c);
        }
        if (c >= 0x80) {
            return fail(x, "invalid escape sequence: \\ before a non-ASCII character");
        }
        return fail(x, "invalid escape sequence: \\%c", c);
    }
}

/* The next literal character of the pattern (valid UTF-8 required). */
static bool next_cp(rx *x, uint32_t *cp)
{
    size_t k = td_utf8_decode(x->p + x->i, x->n - x->i, cp);
    if (k == 0) {
        return fail(x, "invalid UTF-8 in regex");
    }
    x->i += k;
    return true;
}

/* [...] class; x->i just past '['. */
static bool parse_class(rx *x)
{
    cp_set s;
    memset(&s, 0, sizeof(s));
    bool neg = false;
    if (x->i < x->n && x->p[x->i] == '^') {
        neg = true;
        x->i++;
    }
    bool first = true;
    for (;;) {
        if (x->i >= x->n) {
            return fail(x, "missing closing ]");
        }
        unsigned char c = x->p[x->i];
        if (c == ']' && !first) {
            x->i++;
            break;
        }
        first = false;
        if (c == '[' && x->i + 1 < x->n && x->p[x->i + 1] == ':') {
            size_t j = x->i + 2;
            bool cneg = j < x->n && x->p[j] == '^';
            if (cneg) {
                j++;
            }
            size_t name = j;
            while (j + 1 < x->n && !(x->p[j] == ':' && x->p[j + 1] == ']')) {
                j++;
            }
            if (j + 1 < x->n) {
                if (!set_posix(x, &s, (const char *)x->p + name, j - name, cneg)) {
                    return false;
                }
                x->i = j + 2;
                continue;
            }
            /* not a class name: '[' is a literal */
        }
        uint32_t lo = 0;
        if (c == '\\') {
            x->i++;
            if (x->i < x->n && strchr("dDwWsS", x->p[x->i]) && x->p[x->i]) {
                if (!set_perl(x, &s, x->p[x->i++])) {
                    return false;
                }
                continue;
            }
            if (!escape_cp(x, &lo)) {
                return false;
            }
        } else if (!next_cp(x, &lo)) {
            return false;
        }
        uint32_t hi = lo;
        if (x->i + 1 < x->n && x->p[x->i] == '-' && x->p[x->i + 1] != ']') {
            x->i++;
            if (x->p[x->i] == '\\') {
                x->i++;
                if (x->i < x->n && strchr("dDwWsS", x->p[x->i]) && x->p[x->i]) {
                    return fail(x, "invalid character class range");
                }
                if (!escape_cp(x, &hi)) {
                    return false;
                }
            } else if (!next_cp(x, &hi)) {
                return false;
            }
            if (hi < lo) {
                return fail(x, "invalid character class range");
            }
        }
        if (lo == 0) {
            if (hi == 0) {
                continue; /* NUL never occurs in a stored string */
            }
            lo = 1;
        }
        if (!set_add(x, &s, lo, hi)) {
            return false;
        }
    }
    if (x->icase) {
        set_fold(&s); /* (?i)[^a] excludes both a and A: fold before negating */
    }
    if (neg) {
        set_negate(&s);
    }
    return emit_set(x, &s);
}

/* {n}, {n,}, {n,m} at x->i (just past '{'): true and the counts, else not a repeat. */
static bool parse_repeat(rx *x, long *min, long *max)
{
    size_t j = x->i;
    long a = 0, b;
    size_t d = j;
    while (j < x->n && x->p[j] >= '0' && x->p[j] <= '9' && a <= 100000) {
        a = a * 10 + (x->p[j++] - '0');
    }
    if (j == d || j >= x->n) {
        return false;
    }
    if (x->p[j] == '}') {
        b = a;
    } else if (x->p[j] == ',') {
        j++;
        if (j < x->n && x->p[j] == '}') {
            b = -1;
        } else {
            d = j;
            b = 0;
            while (j < x->n && x->p[j] >= '0' && x->p[j] <= '9' && b <= 100000) {
                b = b * 10 + (x->p[j++] - '0');
            }
            if (j == d || j >= x->n || x->p[j] != '}') {
                return false;
            }
        }
    } else {
        return false;
    }
    x->i = j + 1;
    *min = a;
    *max = b;
    return true;
}

static bool repeat(rx *x, const char *op, long min, long max)
{
    if (x->last == LAST_NONE) {
        return fail(x, "missing argument to repetition operator: %s", op);
    }
    if (x->last == LAST_REPEAT) {
        return fail(x, "invalid nested repetition operator: %s", op);
    }
    if (x->last == LAST_ASSERT) {
        return fail(x, "unsupported regex syntax: repetition of an empty-width assertion");
    }
    if (min > REPEAT_MAX || max > REPEAT_MAX || (max >= 0 && max < min)) {
        return fail(x, "invalid repeat count: %s", op);
    }
    td_buf_addstr(&x->out, op);
    /* lazy form: same match/no-match answer for an anchored match */
    if (x->i < x->n && x->p[x->i] == '?') {
        x->i++;
    }
    long times = max >= 0 ? max : min + 1;
    if (times < 1) {
        times = 1;
    }
    group *g = &x->g[x->depth];
    size_t extra = sat_mul(x->last_cost, (size_t)times - 1);
    g->cost = sat_add(g->cost, extra);
    x->last = LAST_REPEAT;
    x->last_cost = sat_mul(x->last_cost, (size_t)times);
    if (g->cost > COST_MAX) {
        return fail(x, "regex too large");
    }
    return true;
}

/* (? ...: flags, non-capturing and named groups. x->i just past "(?". */
static bool parse_group_ext(rx *x, bool *opens_group)
{
    if (x->i < x->n && x->p[x->i] == ':') {
        x->i++;
        *opens_group = true;
        return true;
    }
    if (x->i < x->n && (x->p[x->i] == 'P' || x->p[x->i] == '<')) {
        if (x->p[x->i] == 'P') {
            x->i++;
        }
        if (x->i >= x->n || x->p[x->i] != '<') {
            return fail(x, "invalid or unsupported Perl syntax: (?P");
        }
        x->i++;
        size_t s = x->i;
        while (x->i < x->n && (is_alpha(x->p[x->i]) || x->p[x->i] == '_' ||
                               (x->p[x->i] >= '0' && x->p[x->i] <= '9'))) {
            x->i++;
        }
        if (x->i == s || x->i >= x->n || x->p[x->i] != '>') {
            return fail(x, "invalid named capture");
        }
        x->i++;
        *opens_group = true;
        return true;
    }
    bool icase = x->icase, dotnl = x->dotnl, negated = false, any = false;
    while (x->i < x->n) {
        int c = x->p[x->i++];
        switch (c) {
        case 'i':
            icase = !negated;
            any = true;
            break;
        case 's':
            dotnl = !negated;
            any = true;
            break;
        case 'U':
            any = true; /* ungreedy: no effect on a full match */
            break;
        case 'm':
            if (!negated) {
                return fail(x, "unsupported regex syntax: (?m) multi-line mode");
            }
            any = true;
            break;
        case '-':
            if (negated) {
                return fail(x, "invalid or unsupported Perl syntax: (?-");
            }
            negated = true;
            any = false;
            break;
        case ')':
        case ':':
            if (!any) {
                return fail(x, "invalid or unsupported Perl syntax: (?");
            }
            if (c == ')') {
                /* flags for the rest of the current group */
                x->icase = icase;
                x->dotnl = dotnl;
                *opens_group = false;
            } else {
                *opens_group = true;
                /* the new flags apply inside the group only: set after push */
                x->g[x->depth + 1].icase = icase;
                x->g[x->depth + 1].dotnl = dotnl;
            }
            return true;
        default:
            return fail(x, "invalid or unsupported Perl syntax: (?%c", c);
        }
    }
    return fail(x, "missing closing )");
}

static bool translate(rx *x)
{
    while (x->i < x->n) {
        unsigned char c = x->p[x->i];
        size_t start = x->out.len;
        switch (c) {
        case '(': {
            x->i++;
            if (x->depth >= GROUP_MAX) {
                return fail(x, "regex nesting too deep");
            }
            bool opens = true, flagged = false;
            if (x->i < x->n && x->p[x->i] == '?') {
                x->i++;
                /* parse_group_ext may stash scoped flags in g[depth+1] */
                x->g[x->depth + 1].icase = x->icase;
                x->g[x->depth + 1].dotnl = x->dotnl;
                if (!parse_group_ext(x, &opens)) {
                    return false;
                }
                flagged = true;
            }
            if (!opens) {
                break; /* (?i): flags only */
            }
            bool icase = x->g[x->depth + 1].icase, dotnl = x->g[x->depth + 1].dotnl;
            x->depth++;
            x->g[x->depth].icase = x->icase; /* restored at ')' */
            x->g[x->depth].dotnl = x->dotnl;
            x->g[x->depth].cost = 0;
            if (flagged) {
                x->icase = icase;
                x->dotnl = dotnl;
            }
            td_buf_addch(&x->out, '(');
            x->last = LAST_NONE;
            /* remember where the group starts for repetition of the whole group */
            x->last_start = start;
            break;
        }
        case ')': {
            if (x->depth == 0) {
                return fail(x, "unexpected )");
            }
            x->i++;
            size_t cost = x->g[x->depth].cost + 1;
            x->icase = x->g[x->depth].icase;
            x->dotnl = x->g[x->depth].dotnl;
            x->depth--;
            td_buf_addch(&x->out, ')');
            /* find the matching '(' offset: not needed, repetition appends after */
            if (!atom(x, start, cost)) {
                return false;
            }
            break;
        }
        case '|':
            x->i++;
            td_buf_addch(&x->out, '|');
            x->last = LAST_NONE;
            break;
        case '*':
        case '+':
        case '?': {
            x->i++;
            char op[2] = {(char)c, 0};
            if (!repeat(x, op, c == '+' ? 1 : 0, c == '?' ? 1 : -1)) {
                return false;
            }
            break;
        }
        case '{': {
            x->i++;
            long min, max;
            size_t s = x->i - 1;
            if (parse_repeat(x, &min, &max)) {
                char op[32];
                snprintf(op, sizeof(op), "%.*s", (int)(x->i - s), (const char *)x->p + s);
                if (!repeat(x, op, min, max)) {
                    return false;
                }
            } else if (!emit_literal(x, '{')) {
                return false;
            }
            break;
        }
        case '^':
        case '$':
            x->i++;
            td_buf_addch(&x->out, (char)c);
            x->last = LAST_ASSERT;
            break;
        case '.':
            x->i++;
            td_buf_addstr(&x->out,
                          x->dotnl ? "([^\x80-\xbf][\x80-\xbf]*)" : "([^\n\x80-\xbf][\x80-\xbf]*)");
            if (!atom(x, start, 3)) {
                return false;
            }
            break;
        case '[':
            x->i++;
            if (!parse_class(x)) {
                return false;
            }
            break;
        case '\\': {
            x->i++;
            if (x->i >= x->n) {
                return fail(x, "trailing backslash at end of expression");
            }
            unsigned char e = x->p[x->i];
            if (e && strchr("dDwWsS", e)) {
                x->i++;
                cp_set s;
                memset(&s, 0, sizeof(s));
                if (!set_perl(x, &s, e) || !emit_set(x, &s)) {
                    return false;
                }
                break;
            }
            if (e == 'b' || e == 'B') {
                x->i++;
                td_buf_addch(&x->out, '\\');
                td_buf_addch(&x->out, (char)e);
                x->last = LAST_ASSERT;
                break;
            }
            if (e == 'A' || e == 'z') {
                x->i++;
                td_buf_addch(&x->out, e == 'A' ? '^' : '$');
                x->last = LAST_ASSERT;
                break;
            }
            if (e == 'Q') {
                x->i++;
                while (x->i < x->n) {
                    if (x->p[x->i] == '\\' && x->i + 1 < x->n && x->p[x->i + 1] == 'E') {
                        x->i += 2;
                        break;
                    }
                    uint32_t cp;
                    if (!next_cp(x, &cp) || !emit_literal(x, cp)) {
                        return false;
                    }
                }
                break;
            }
            if (e == 'C') {
                return fail(x, "unsupported regex syntax: \\C");
            }
            uint32_t cp;
            if (!escape_cp(x, &cp) || !emit_literal(x, cp)) {
                return false;
            }
            break;
        }
        default: {
            uint32_t cp;
            if (!next_cp(x, &cp) || !emit_literal(x, cp)) {
                return false;
            }
            break;
        }
        }
    }
    if (x->depth != 0) {
        return fail(x, "missing closing )");
    }
    return true;
}

td_status td_regex_translate(const char *src, size_t n, td_arena *a, const char **out, char *why,
                             size_t whylen)
{
    if (n > TD_REGEX_MAX) {
        snprintf(why, whylen, "regex longer than %d bytes", TD_REGEX_MAX);
        return TD_INVALID;
    }
    rx x;
    memset(&x, 0, sizeof(x));
    x.p = (const unsigned char *)src;
    x.n = n;
    x.why = why;
    x.whylen = whylen;
    x.dotnl = true; /* Tempo compiles ^(?s:...)$ */
    td_buf_init(&x.out, n * 2 + 16);
    td_buf_addstr(&x.out, "^(");
    bool ok = translate(&x);
    td_buf_addstr(&x.out, ")$");
    td_status st = TD_INVALID;
    if (ok) {
        const char *s = td_arena_strndup(a, x.out.data, x.out.len);
        if (s) {
            *out = s;
            st = TD_OK;
        } else {
            snprintf(why, whylen, "out of memory");
            st = TD_NOMEM;
        }
    }
    td_buf_release(&x.out);
    return st;
}
