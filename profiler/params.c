/*
 * params.c - the small parsers of /ingest: `name`, from/until, the legacy
 * app-name suffix, sample_type_config JSON, folded text and multipart bodies.
 * All pure (bytes + arena -> result); each of the text formats has a fuzz target.
 */
#include "profiler/internal.h"

#include "core/mem.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- name: app{k=v,...} ---- */

static const char *trim(const char *s, size_t *n)
{
    while (*n && isspace((unsigned char)s[0])) {
        s++;
        (*n)--;
    }
    while (*n && isspace((unsigned char)s[*n - 1])) {
        (*n)--;
    }
    return s;
}

static bool label_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
}

td_status td_profiler_parse_name(const char *s, td_arena *a, char **app, td_plabel **labels,
                                 size_t *nlabels, td_err *err)
{
    *app = NULL;
    *labels = NULL;
    *nlabels = 0;
    if (!s) {
        return td_err_set(err, TD_INVALID, "name: application name is required");
    }
    size_t len = strlen(s);
    const char *brace = memchr(s, '{', len);
    size_t an = brace ? (size_t)(brace - s) : len;
    const char *ap = trim(s, &an);
    if (an == 0) {
        return td_err_set(err, TD_INVALID, "name: application name is required");
    }
    for (size_t i = 0; i < an; i++) {
        unsigned char c = (unsigned char)ap[i];
        if (c < 0x20 || c == 0x7f || c == '}' || c == '=' || c == ',') {
            return td_err_set(err, TD_INVALID, "name: invalid character in application name");
        }
    }
    if (!td__utf8_valid(ap, an)) {
        return td_err_set(err, TD_INVALID, "name: application name is not valid UTF-8");
    }
    *app = td_arena_strndup(a, ap, an);
    if (!*app) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    if (!brace) {
        return TD_OK;
    }
    const char *p = brace + 1, *end = s + len;
    const char *close = memchr(p, '}', (size_t)(end - p));
    if (!close) {
        return td_err_set(err, TD_INVALID, "name: missing closing '}'");
    }
    td__labels l;
    td__labels_init(&l, a);
    while (p < close) {
        const char *comma = memchr(p, ',', (size_t)(close - p));
        const char *item_end = comma ? comma : close;
        size_t n = (size_t)(item_end - p);
        const char *item = trim(p, &n);
        p = comma ? comma + 1 : close;
        if (n == 0) {
            continue; /* "a{}" and trailing commas */
        }
        const char *eq = memchr(item, '=', n);
        if (!eq) {
            return td_err_set(err, TD_INVALID, "name: label '%.*s' has no value", (int)n, item);
        }
        size_t kn = (size_t)(eq - item), vn = n - kn - 1;
        const char *k = trim(item, &kn), *v = trim(eq + 1, &vn);
        if (kn == 0) {
            return td_err_set(err, TD_INVALID, "name: empty label name");
        }
        for (size_t i = 0; i < kn; i++) {
            if (!label_name_char(k[i])) {
                return td_err_set(err, TD_INVALID, "name: invalid label name '%.*s'",
                                  (int)(kn > 64 ? 64 : kn), k);
            }
        }
        if (!td__utf8_valid(v, vn)) {
            return td_err_set(err, TD_INVALID, "name: label value of '%.*s' is not valid UTF-8",
                              (int)(kn > 64 ? 64 : kn), k);
        }
        char *kk = td_arena_strndup(a, k, kn), *vv = td_arena_strndup(a, v, vn);
        if (!kk || !vv) {
            return td_err_set(err, TD_NOMEM, "out of memory");
        }
        /* a later duplicate wins, as in a Go map */
        bool replaced = false;
        for (size_t i = 0; i < l.n; i++) {
            if (strcmp(l.v[i].name, kk) == 0) {
                l.v[i].value = vv;
                replaced = true;
            }
        }
        if (!replaced && !td__labels_add(&l, kk, vv)) {
            return td_err_set(err, TD_NOMEM, "out of memory");
        }
    }
    *labels = l.v;
    *nlabels = l.n;
    return TD_OK;
}

/* ---- from/until ---- */

static int64_t unit_seconds(const char *u, size_t n)
{
    if (n == 0) {
        return 0;
    }
    if (u[0] == 's') {
        return 1;
    }
    if ((n >= 3 && strncmp(u, "mon", 3) == 0) || u[0] == 'M') {
        return 3600 * 24 * 30;
    }
    if (u[0] == 'm') {
        return 60;
    }
    if (u[0] == 'h') {
        return 3600;
    }
    if (u[0] == 'd') {
        return 3600 * 24;
    }
    if (u[0] == 'w') {
        return 3600 * 24 * 7;
    }
    if (u[0] == 'y') {
        return 3600 * 24 * 365;
    }
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t sat_mul(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) {
        return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
    }
    return r;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return b < 0 ? INT64_MIN : INT64_MAX;
    }
    return r;
}

int64_t td_profiler_parse_time(const char *in, int64_t now_ns)
{
    if (!in) {
        return now_ns;
    }
    char s[64];
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '_' || *p == ',' || *p == '\t' || *p == '\n' || *p == '\r') {
            continue;
        }
        if (n + 1 >= sizeof(s)) {
            return now_ns; /* nothing this long is a time */
        }
        s[n++] = *p;
    }
    s[n] = '\0';
    bool digits = n > 0;
    for (size_t i = 0; i < n; i++) {
        digits = digits && isdigit((unsigned char)s[i]);
    }
    if (digits) {
        if (n == 8) {
            unsigned y = (unsigned)((s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
                                    (s[3] - '0'));
            unsigned m = (unsigned)((s[4] - '0') * 10 + (s[5] - '0'));
            unsigned d = (unsigned)((s[6] - '0') * 10 + (s[7] - '0'));
            if (y > 1900 && m >= 1 && m <= 12 && d >= 1 && d <= 31) {
                return sat_mul(days_from_civil(y, m, d) * 86400, 1000000000);
            }
        }
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno || v > (unsigned long long)INT64_MAX) {
            v = 0; /* Go's Atoi fails to 0 */
        }
        switch (n) {
        case 13:
            return sat_mul((int64_t)v, 1000000);
        case 16:
            return sat_mul((int64_t)v, 1000);
        case 19:
            return (int64_t)v;
        default:
            return sat_mul((int64_t)v, 1000000000);
        }
    }
    /* a reference (only "now" is known, anything else counts as now) and an offset */
    const char *off = strpbrk(s, "+-");
    if (!off) {
        return now_ns;
    }
    int64_t sign = *off == '-' ? -1 : 1;
    const char *p = off + 1;
    int64_t total = 0;
    while (*p) {
        int64_t num = 0;
        while (isdigit((unsigned char)*p)) {
            num = sat_add(sat_mul(num, 10), *p - '0');
            p++;
        }
        const char *u = p;
        while (*p && !isdigit((unsigned char)*p)) {
            p++;
        }
        total = sat_add(total, sat_mul(num, unit_seconds(u, (size_t)(p - u))));
    }
    return sat_add(now_ns, sat_mul(sat_mul(sign, total), 1000000000));
}

/* ---- legacy suffixes ---- */

td_status td_profiler_legacy_type(const char *app, td_arena *a, td_plegacy *out, td_err *err)
{
    static const struct {
        const char *suffix, *metric, *type, *unit;
    } map[] = {
        /* type NULL: the suffix itself */
        {"cpu", "process_cpu", "samples", "count"},
        {"wall", "wall", "samples", "count"},
        {"inuse_objects", "memory", NULL, "count"},
        {"inuse_space", "memory", NULL, "bytes"},
        {"alloc_objects", "memory", NULL, "count"},
        {"alloc_space", "memory", NULL, "bytes"},
        {"goroutines", "goroutine", NULL, "count"},
        {"mutex_count", "mutex", "contentions", "count"},
        {"mutex_duration", "mutex", "delay", "nanoseconds"},
        {"block_count", "block", "contentions", "count"},
        {"block_duration", "block", "delay", "nanoseconds"},
        {"itimer", "process_cpu", "samples", "count"},
        {"alloc_in_new_tlab_objects", "memory", NULL, "count"},
        {"alloc_in_new_tlab_bytes", "memory", NULL, "bytes"},
        {"alloc_outside_tlab_objects", "memory", NULL, "count"},
        {"alloc_outside_tlab_bytes", "memory", NULL, "bytes"},
        {"lock_count", "block", "contentions", "count"},
        {"lock_duration", "block", "delay", "nanoseconds"},
        {"live", "memory", NULL, "count"},
        {"exceptions", "exceptions", "samples", "count"},
        {"seconds", "wall", "samples", "count"},
        {"nanoseconds", "wall", "samples", "count"},
        {"microseconds", "wall", "samples", "count"},
        {"milliseconds", "wall", "samples", "count"},
        {"bytes", "memory", "samples", "bytes"},
    };
    const char *dot = strrchr(app, '.');
    const char *suffix = dot ? dot + 1 : "cpu";
    size_t an = dot ? (size_t)(dot - app) : strlen(app);
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(suffix, map[i].suffix) == 0) {
            out->app = td_arena_strndup(a, app, an);
            if (!out->app) {
                return td_err_set(err, TD_NOMEM, "out of memory");
            }
            out->metric = map[i].metric;
            out->type = map[i].type ? map[i].type : map[i].suffix;
            out->unit = map[i].unit;
            return TD_OK;
        }
    }
    return td_err_set(err, TD_INVALID, "unknown profile type: %.64s", suffix);
}

/* ---- sample_type_config ---- */

static const char *jstr(json_t *o, const char *k, td_arena *a)
{
    json_t *v = json_object_get(o, k);
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    return td_arena_strndup(a, s, strlen(s));
}

td_status td_profiler_parse_stc(const char *json, size_t len, td_arena *a, td_pstc_set *out,
                                td_err *err)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return td_err_set(err, TD_INVALID, "sample_type_config: %s",
                          root ? "not a JSON object" : je.text);
    }
    size_t n = json_object_size(root);
    td_pstc *v = td_arena_calloc(a, n ? n : 1, sizeof(*v));
    if (!v) {
        json_decref(root);
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    const char *k;
    json_t *e;
    size_t i = 0;
    json_object_foreach (root, k, e) {
        if (!json_is_object(e)) {
            if (json_is_null(e)) {
                continue;
            }
            json_decref(root);
            return td_err_set(err, TD_INVALID,
                              "sample_type_config: entry \"%.64s\" is not an "
                              "object",
                              k);
        }
        td_pstc *c = &v[i++];
        c->type = td_arena_strndup(a, k, strlen(k));
        c->display_name = jstr(e, "display-name", a);
        c->units = jstr(e, "units", a);
        c->aggregation = jstr(e, "aggregation", a);
        c->cumulative = json_is_true(json_object_get(e, "cumulative"));
        c->sampled = json_is_true(json_object_get(e, "sampled"));
        if (!c->type || !c->display_name || !c->units || !c->aggregation) {
            json_decref(root);
            return td_err_set(err, TD_NOMEM, "out of memory");
        }
    }
    json_decref(root);
    out->present = true;
    out->v = v;
    out->n = i;
    return TD_OK;
}

/* ---- folded text ---- */

td_status td_profiler_parse_folded(const char *text, size_t len, size_t max_lines, td_arena *a,
                                   td_pfolded_line **out, size_t *n, td_err *err)
{
    *out = NULL;
    *n = 0;
    /* count lines for one allocation */
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) {
        cap += text[i] == '\n';
    }
    td_pfolded_line *lines = td_arena_calloc(a, cap, sizeof(*lines));
    if (!lines) {
        return td_err_set(err, TD_NOMEM, "out of memory parsing folded text");
    }
    size_t nl = 0, lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        lineno++;
        size_t ln = (size_t)(le - p);
        if (ln && p[ln - 1] == '\r') {
            ln--;
        }
        const char *line = p;
        p = eol ? eol + 1 : end;
        if (memchr(line, '\0', ln)) {
            return td_err_set(err, TD_INVALID, "line %zu: NUL byte in folded text", lineno);
        }
        const char *sp = NULL;
        for (size_t i = ln; i > 0; i--) {
            if (line[i - 1] == ' ') {
                sp = line + i - 1;
                break;
            }
        }
        if (!sp) {
            continue;
        }
        const char *num = sp + 1;
        size_t numlen = (size_t)(line + ln - num);
        char buf[24];
        if (numlen == 0 || numlen >= sizeof(buf)) {
            return td_err_set(err, TD_INVALID, "line %zu: invalid sample count", lineno);
        }
        memcpy(buf, num, numlen);
        buf[numlen] = '\0';
        char *ep;
        errno = 0;
        long long v = strtoll(buf, &ep, 10);
        if (errno || *ep || ep == buf || isspace((unsigned char)buf[0])) {
            return td_err_set(err, TD_INVALID, "line %zu: invalid sample count \"%s\"", lineno,
                              buf);
        }
        if (max_lines && nl >= max_lines) {
            return td_err_set(err, TD_TOO_LARGE,
                              "profile has more than %zu stacks (profile-max-samples)", max_lines);
        }
        /* frames, root first, split on ';' */
        size_t sl = (size_t)(sp - line);
        size_t nf = 1;
        for (size_t i = 0; i < sl; i++) {
            nf += line[i] == ';';
        }
        const char **frames = td_arena_alloc(a, nf * sizeof(char *));
        if (!frames) {
            return td_err_set(err, TD_NOMEM, "out of memory parsing folded text");
        }
        size_t w = 0;
        const char *f = line;
        for (size_t i = 0; i <= sl; i++) {
            if (i == sl || line[i] == ';') {
                size_t fl = (size_t)(line + i - f);
                if (fl) {
                    frames[w] = td_arena_strndup(a, f, fl);
                    if (!frames[w]) {
                        return td_err_set(err, TD_NOMEM, "out of memory parsing folded text");
                    }
                    w++;
                }
                f = line + i + 1;
            }
        }
        lines[nl].frames = frames;
        lines[nl].nframes = (uint32_t)w;
        lines[nl].value = v;
        nl++;
    }
    *out = lines;
    *n = nl;
    return TD_OK;
}

/* ---- multipart/form-data (RFC 7578) ---- */

/* The boundary parameter of a Content-Type, unquoted, into out. */
static bool get_boundary(const char *ct, char *out, size_t cap)
{
    const char *p = ct;
    while ((p = strchr(p, ';')) != NULL) {
        p++;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (strncasecmp(p, "boundary=", 9) != 0) {
            continue;
        }
        p += 9;
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (p[n] && p[n] != '"') {
                n++;
            }
        } else {
            while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t') {
                n++;
            }
        }
        if (n == 0 || n > 70 || n + 1 > cap) {
            return false;
        }
        memcpy(out, p, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

static const char *memmem_s(const char *h, size_t hn, const char *n, size_t nn)
{
    return memmem(h, hn, n, nn);
}

/* A Content-Disposition parameter (name="x"), copied into the arena; NULL when absent. */
static const char *disp_param(const char *v, size_t vn, const char *key, td_arena *a)
{
    size_t kn = strlen(key);
    for (size_t i = 0; i + kn + 1 < vn; i++) {
        if ((i == 0 || v[i - 1] == ';' || v[i - 1] == ' ' || v[i - 1] == '\t') &&
            strncasecmp(v + i, key, kn) == 0 && v[i + kn] == '=') {
            const char *s = v + i + kn + 1;
            size_t rem = vn - (i + kn + 1), n = 0;
            if (rem && *s == '"') {
                s++;
                rem--;
                while (n < rem && s[n] != '"') {
                    n++;
                }
            } else {
                while (n < rem && s[n] != ';' && s[n] != ' ') {
                    n++;
                }
            }
            return td_arena_strndup(a, s, n);
        }
    }
    return NULL;
}

td_status td_profiler_multipart(const char *content_type, const void *body, size_t len, td_arena *a,
                                td_mpart **parts, size_t *nparts, td_err *err)
{
    enum { MAX_PARTS = 64 };
    *parts = NULL;
    *nparts = 0;
    char bnd[80], delim[84];
    if (!content_type || !get_boundary(content_type, bnd, sizeof(bnd))) {
        return td_err_set(err, TD_INVALID, "multipart: no boundary in Content-Type");
    }
    int dl = snprintf(delim, sizeof(delim), "--%s", bnd);
    td_mpart *v = td_arena_calloc(a, MAX_PARTS, sizeof(*v));
    if (!v) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    const char *b = body, *end = b + len;
    /* the first delimiter: at the start or after a CRLF (preamble ignored) */
    const char *p = memmem_s(b, len, delim, (size_t)dl);
    if (!p || (p != b && (p - b < 2 || p[-1] != '\n'))) {
        return td_err_set(err, TD_INVALID, "multipart: missing opening boundary");
    }
    size_t n = 0;
    for (;;) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            break; /* closing delimiter */
        }
        /* rest of the delimiter line */
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
        } else if (p < end && *p == '\n') {
            p++;
        } else {
            return td_err_set(err, TD_INVALID, "multipart: malformed boundary line");
        }
        if (n == MAX_PARTS) {
            return td_err_set(err, TD_INVALID, "multipart: more than %d parts", MAX_PARTS);
        }
        td_mpart *part = &v[n];
        part->name = "";
        /* headers until an empty line */
        for (;;) {
            const char *eol = memchr(p, '\n', (size_t)(end - p));
            if (!eol) {
                return td_err_set(err, TD_INVALID, "multipart: truncated part headers");
            }
            size_t hl = (size_t)(eol - p);
            if (hl && p[hl - 1] == '\r') {
                hl--;
            }
            const char *h = p;
            p = eol + 1;
            if (hl == 0) {
                break;
            }
            const char *colon = memchr(h, ':', hl);
            if (!colon) {
                return td_err_set(err, TD_INVALID, "multipart: malformed part header");
            }
            size_t nn = (size_t)(colon - h);
            if (nn == 19 && strncasecmp(h, "Content-Disposition", 19) == 0) {
                const char *val = colon + 1;
                size_t vn = hl - nn - 1;
                const char *nm = disp_param(val, vn, "name", a);
                part->name = nm ? nm : "";
                part->filename = disp_param(val, vn, "filename", a);
            }
        }
        /* body up to CRLF + delimiter */
        char term[88];
        int tl = snprintf(term, sizeof(term), "\r\n%s", delim);
        const char *q = memmem_s(p, (size_t)(end - p), term, (size_t)tl);
        size_t skip = (size_t)tl;
        if (!q) {
            /* tolerate bare LF line ends */
            q = memmem_s(p, (size_t)(end - p), term + 1, (size_t)tl - 1);
            skip = (size_t)tl - 1;
        }
        if (!q) {
            return td_err_set(err, TD_INVALID, "multipart: missing closing boundary");
        }
        part->data = (td_slice){p, (size_t)(q - p)};
        n++;
        p = q + skip - (size_t)dl;
    }
    *parts = v;
    *nparts = n;
    return TD_OK;
}
