/*
 * cmd_find.c - `tracectl find`: fetch one trace by ID and print it as a tree.
 *
 * The server answers Tempo's v2 trace-by-ID JSON (API-CONTRACT §3.4). Spans are
 * flattened into one array, linked to their parents through a sorted ID index,
 * and printed depth-first with an explicit stack: a trace of 10k spans nested
 * 10k deep costs a heap array, never C stack. Spans whose parent is absent are
 * grouped under "(missing parent <id>)" lines; a parent loop, which only a
 * buggy producer can create, is cut and shown the same way, so every span is
 * printed exactly once.
 */
#include "tracectl.h"

#include "core/mem.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NONE SIZE_MAX
/* Span IDs are 8 bytes; anything up to 16 is kept, longer ones count as absent. */
#define SPAN_ID_MAX 16
/* Tree indentation stops growing past this depth; deeper lines show "[depth N]". */
#define MAX_DRAW_DEPTH 48
/* Key attributes shown per span, and the byte budgets of the printed fields. */
#define MAX_KEY_ATTRS 4
#define MAX_SERVICE_BYTES 80
#define MAX_NAME_BYTES 200
#define MAX_VALUE_BYTES 120

typedef enum { LINK_ROOT, LINK_CHILD, LINK_MISSING, LINK_CYCLE } link_kind;

typedef struct span {
    const json_t *js;
    const char *service; /* NULL = no service.name */
    size_t service_len;
    uint64_t start, end;
    bool has_start, has_end;
    uint8_t id_len, parent_len;
    bool parent_bad; /* parentSpanId present but not decodable */
    link_kind link;
    size_t parent; /* index when link == LINK_CHILD */
    uint8_t id[SPAN_ID_MAX];
    uint8_t parent_id[SPAN_ID_MAX];
} span;

/* A root-level entry: one root span, or a group of spans sharing a missing parent. */
typedef struct entry {
    uint64_t start;
    size_t first; /* span index (root) or first position in the orphan list (group) */
    size_t count; /* 0 for a root span */
} entry;

typedef struct trace {
    span *spans;
    size_t n;
    size_t nservices;
    uint64_t start, end;
    uint8_t trace_id[TD_CTL_ID_MAX];
    size_t trace_id_len;
} trace;

/* ------------------------------------------------------------------ parsing */

static const json_t *member(const json_t *obj, const char *key)
{
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

/* The first member of obj among keys[] that is an array (v2 / v1 / pre-1.0 names). */
static const json_t *array_member(const json_t *obj, const char *const *keys)
{
    for (; *keys; keys++) {
        const json_t *v = member(obj, *keys);
        if (json_is_array(v)) {
            return v;
        }
    }
    return NULL;
}

static const char *const RESOURCE_SPANS_KEYS[] = {"resourceSpans", "batches", NULL};
static const char *const SCOPE_SPANS_KEYS[] = {"scopeSpans", "instrumentationLibrarySpans", NULL};
static const char *const SPANS_KEYS[] = {"spans", NULL};

/* The Trace object: {"trace":{...}} in v2; tolerate a v1-shaped body too. */
static const json_t *trace_object(const json_t *root)
{
    const json_t *t = member(root, "trace");
    if (json_is_object(t)) {
        return t;
    }
    return array_member(root, RESOURCE_SPANS_KEYS) ? root : NULL;
}

/* Value of attribute `key` in an OTLP attribute list, or NULL. */
static const json_t *attr_get(const json_t *attrs, const char *key)
{
    size_t i;
    const json_t *kv;
    if (!json_is_array(attrs)) {
        return NULL;
    }
    json_array_foreach(attrs, i, kv)
    {
        const json_t *k = member(kv, "key");
        if (json_is_string(k) && strcmp(json_string_value(k), key) == 0) {
            return member(kv, "value");
        }
    }
    return NULL;
}

static void resource_service(const json_t *rs, const char **s, size_t *len)
{
    const json_t *v = attr_get(member(member(rs, "resource"), "attributes"), "service.name");
    *s = td_ctl_json_str(v, "stringValue", len);
}

static bool decode_id(const json_t *span_js, const char *key, uint8_t *out, size_t cap,
                      uint8_t *len, bool *present)
{
    size_t n, got;
    const char *s = td_ctl_json_str(span_js, key, &n);
    *present = s && n;
    *len = 0;
    if (!*present || !td_ctl_id_decode(s, n, out, cap, &got)) {
        return false;
    }
    *len = (uint8_t)got;
    return true;
}

static void load_span(trace *t, span *sp, const json_t *js, const char *svc, size_t svc_len)
{
    bool present;
    memset(sp, 0, sizeof(*sp));
    sp->js = js;
    sp->service = svc;
    sp->service_len = svc_len;
    sp->parent = NONE;
    sp->has_start = td_ctl_json_u64(member(js, "startTimeUnixNano"), &sp->start) && sp->start;
    sp->has_end = td_ctl_json_u64(member(js, "endTimeUnixNano"), &sp->end) && sp->end;
    decode_id(js, "spanId", sp->id, SPAN_ID_MAX, &sp->id_len, &present);
    if (!decode_id(js, "parentSpanId", sp->parent_id, SPAN_ID_MAX, &sp->parent_len, &present)) {
        sp->parent_bad = present;
    }
    if (!t->trace_id_len) {
        uint8_t l;
        if (decode_id(js, "traceId", t->trace_id, sizeof(t->trace_id), &l, &present)) {
            t->trace_id_len = l;
        }
    }
}

typedef struct svc_ref {
    const char *s;
    size_t len;
} svc_ref;

static int svc_cmp(const void *a, const void *b)
{
    const svc_ref *x = a, *y = b;
    if (!x->s || !y->s) {
        return (x->s != NULL) - (y->s != NULL);
    }
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * Flatten every span of the Trace object into t->spans. Returns false only on
 * OOM; a trace with no spans yields t->n == 0 ("not found").
 */
static bool trace_load(trace *t, const json_t *tr)
{
    const json_t *rss = array_member(tr, RESOURCE_SPANS_KEYS);
    size_t nrs = rss ? json_array_size(rss) : 0, total = 0, i, j;
    const json_t *rs, *ss;

    memset(t, 0, sizeof(*t));
    for (i = 0; i < nrs; i++) {
        const json_t *sss = array_member(json_array_get(rss, i), SCOPE_SPANS_KEYS);
        json_array_foreach(sss, j, ss)
        {
            const json_t *arr = array_member(ss, SPANS_KEYS), *js;
            size_t k;
            json_array_foreach(arr, k, js)
            {
                total += json_is_object(js);
            }
        }
    }
    if (total == 0) {
        return true;
    }
    t->spans = td_calloc(total, sizeof(span));
    svc_ref *svcs = td_calloc(nrs, sizeof(svc_ref));
    if (!t->spans || !svcs) {
        td_free(svcs);
        return false;
    }
    size_t nsvc = 0;
    json_array_foreach(rss, i, rs)
    {
        const char *svc;
        size_t svc_len, before = t->n;
        resource_service(rs, &svc, &svc_len);
        json_array_foreach(array_member(rs, SCOPE_SPANS_KEYS), j, ss)
        {
            const json_t *arr = array_member(ss, SPANS_KEYS), *js;
            size_t k;
            json_array_foreach(arr, k, js)
            {
                if (json_is_object(js)) {
                    load_span(t, &t->spans[t->n++], js, svc, svc_len);
                }
            }
        }
        if (t->n > before) {
            svcs[nsvc++] = (svc_ref){svc, svc_len};
        }
    }
    qsort(svcs, nsvc, sizeof(svc_ref), svc_cmp);
    for (i = 0; i < nsvc; i++) {
        t->nservices += i == 0 || svc_cmp(&svcs[i - 1], &svcs[i]) != 0;
    }
    td_free(svcs);

    bool any = false;
    for (i = 0; i < t->n; i++) {
        const span *s = &t->spans[i];
        if (s->has_start && (!any || s->start < t->start)) {
            t->start = s->start;
            any = true;
        }
    }
    t->end = t->start;
    for (i = 0; i < t->n; i++) {
        if (t->spans[i].has_end && t->spans[i].end > t->end) {
            t->end = t->spans[i].end;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ linking */

/*
 * Comparators get the trace through glibc's qsort_r (the project builds with
 * _GNU_SOURCE), which keeps this file free of a mutable sort-context global.
 */

static int id_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    return c ? c : (alen > blen) - (alen < blen);
}

static int by_id(const void *a, const void *b, void *ctx)
{
    const trace *t = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const span *p = &t->spans[x], *q = &t->spans[y];
    int c = id_cmp(p->id, p->id_len, q->id, q->id_len);
    return c ? c : (x > y) - (x < y);
}

/* Start time, then input order: missing start times sort last. */
static int by_start(const void *a, const void *b, void *ctx)
{
    const trace *t = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const span *p = &t->spans[x], *q = &t->spans[y];
    if (p->has_start != q->has_start) {
        return p->has_start ? -1 : 1;
    }
    if (p->start != q->start) {
        return p->start < q->start ? -1 : 1;
    }
    return (x > y) - (x < y);
}

/* Orphans: grouped by (link kind, missing parent ID), then by start. */
static int by_group(const void *a, const void *b, void *ctx)
{
    const trace *t = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const span *p = &t->spans[x], *q = &t->spans[y];
    if (p->link != q->link) {
        return p->link < q->link ? -1 : 1;
    }
    int c = id_cmp(p->parent_id, p->parent_len, q->parent_id, q->parent_len);
    return c ? c : by_start(a, b, ctx);
}

static bool same_group(const span *p, const span *q)
{
    return p->link == q->link &&
           id_cmp(p->parent_id, p->parent_len, q->parent_id, q->parent_len) == 0;
}

static int by_entry_start(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    return (x->first > y->first) - (x->first < y->first);
}

/* Index of the first span with this ID, or NONE. */
static size_t lookup(const trace *t, const size_t *index, const uint8_t *id, size_t len)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const span *s = &t->spans[index[mid]];
        if (id_cmp(s->id, s->id_len, id, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < t->n) {
        const span *s = &t->spans[index[lo]];
        if (id_cmp(s->id, s->id_len, id, len) == 0) {
            return index[lo];
        }
    }
    return NONE;
}

typedef struct tree {
    size_t *kid_off; /* children of span i: kids[kid_off[i] .. kid_off[i+1]) */
    size_t *kids;
    size_t *orphans; /* span indexes of LINK_MISSING/LINK_CYCLE spans, grouped */
    entry *entries;  /* root-level entries in display order */
    size_t nentries;
} tree;

static void tree_release(tree *tr)
{
    td_free(tr->kid_off);
    td_free(tr->kids);
    td_free(tr->orphans);
    td_free(tr->entries);
    memset(tr, 0, sizeof(*tr));
}

/* Cut parent loops: walk up from every span once (O(n)), marking the path. */
static bool cut_cycles(trace *t)
{
    uint8_t *state = td_calloc(t->n, 1); /* 0 new, 1 on the current path, 2 done */
    size_t *path = td_calloc(t->n, sizeof(size_t));
    if (!state || !path) {
        td_free(state);
        td_free(path);
        return false;
    }
    for (size_t i = 0; i < t->n; i++) {
        size_t len = 0, j = i;
        while (j != NONE && state[j] == 0) {
            state[j] = 1;
            path[len++] = j;
            j = t->spans[j].parent;
        }
        if (j != NONE && state[j] == 1) {
            /* j's chain leads back to j: detach it; its parent is shown as a cycle. */
            t->spans[j].link = LINK_CYCLE;
            t->spans[j].parent = NONE;
        }
        while (len > 0) {
            state[path[--len]] = 2;
        }
    }
    td_free(state);
    td_free(path);
    return true;
}

static bool tree_build(trace *t, tree *tr)
{
    size_t n = t->n, i, norph = 0;
    size_t *index = td_calloc(n, sizeof(size_t));
    memset(tr, 0, sizeof(*tr));
    tr->kid_off = td_calloc(n + 1, sizeof(size_t));
    tr->kids = td_calloc(n, sizeof(size_t));
    tr->orphans = td_calloc(n, sizeof(size_t));
    tr->entries = td_calloc(n, sizeof(entry));
    if (!index || !tr->kid_off || !tr->kids || !tr->orphans || !tr->entries) {
        goto fail;
    }
    for (i = 0; i < n; i++) {
        index[i] = i;
    }
    qsort_r(index, n, sizeof(size_t), by_id, t);
    for (i = 0; i < n; i++) {
        span *s = &t->spans[i];
        if (s->parent_bad) {
            s->link = LINK_MISSING; /* shown as "(missing parent ?)" */
        } else if (s->parent_len == 0) {
            s->link = LINK_ROOT;
        } else {
            s->parent = lookup(t, index, s->parent_id, s->parent_len);
            s->link = s->parent == NONE ? LINK_MISSING : LINK_CHILD;
        }
    }
    if (!cut_cycles(t)) {
        goto fail;
    }

    /* Children in CSR form: count, prefix-sum, fill, then sort each run by start. */
    for (i = 0; i < n; i++) {
        if (t->spans[i].link == LINK_CHILD) {
            tr->kid_off[t->spans[i].parent + 1]++;
        }
    }
    for (i = 0; i < n; i++) {
        tr->kid_off[i + 1] += tr->kid_off[i];
    }
    for (i = 0; i < n; i++) {
        index[i] = tr->kid_off[i]; /* reuse as fill cursors */
    }
    for (i = 0; i < n; i++) {
        if (t->spans[i].link == LINK_CHILD) {
            tr->kids[index[t->spans[i].parent]++] = i;
        }
    }
    for (i = 0; i < n; i++) {
        size_t k = tr->kid_off[i + 1] - tr->kid_off[i];
        if (k > 1) {
            qsort_r(tr->kids + tr->kid_off[i], k, sizeof(size_t), by_start, t);
        }
    }

    /* Root-level entries: each root span, and each group of orphans. */
    for (i = 0; i < n; i++) {
        link_kind l = t->spans[i].link;
        if (l == LINK_ROOT) {
            tr->entries[tr->nentries++] = (entry){t->spans[i].start, i, 0};
        } else if (l == LINK_MISSING || l == LINK_CYCLE) {
            tr->orphans[norph++] = i;
        }
    }
    qsort_r(tr->orphans, norph, sizeof(size_t), by_group, t);
    for (i = 0; i < norph;) {
        size_t j = i + 1;
        uint64_t start = UINT64_MAX;
        while (j < norph && same_group(&t->spans[tr->orphans[i]], &t->spans[tr->orphans[j]])) {
            j++;
        }
        for (size_t k = i; k < j; k++) {
            const span *s = &t->spans[tr->orphans[k]];
            if (s->has_start && s->start < start) {
                start = s->start;
            }
        }
        /* `first` doubles as tie-breaker, so offset groups past every span index. */
        tr->entries[tr->nentries++] = (entry){start, n + i, j - i};
        i = j;
    }
    for (i = 0; i < tr->nentries; i++) {
        if (tr->entries[i].count == 0 && !t->spans[tr->entries[i].first].has_start) {
            tr->entries[i].start = UINT64_MAX;
        }
    }
    qsort(tr->entries, tr->nentries, sizeof(entry), by_entry_start);
    td_free(index);
    return true;

fail:
    td_free(index);
    tree_release(tr);
    return false;
}

/* ------------------------------------------------------------------ printing */

/* An enum sent as a number; after the int-as-real fallback parse it may be a real. */
static bool small_int(const json_t *v, int *out)
{
    double d;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < -1000 || i > 1000) {
            return false;
        }
        *out = (int)i;
        return true;
    }
    if (!json_is_real(v)) {
        return false;
    }
    d = json_real_value(v);
    if (!(d >= -1000 && d <= 1000) || d != (double)(int)d) {
        return false;
    }
    *out = (int)d;
    return true;
}

static const char *kind_short(const json_t *k, char *tmp, size_t tmpsz)
{
    static const char *const names[] = {"unspecified", "internal", "server",
                                        "client",      "producer", "consumer"};
    if (!k) {
        return names[0]; /* Tempo JSON omits the zero value */
    }
    int v;
    if (json_is_number(k)) {
        return small_int(k, &v) && v >= 0 && v <= 5 ? names[v] : "?";
    }
    if (!json_is_string(k)) {
        return "?";
    }
    const char *s = json_string_value(k);
    if (strncmp(s, "SPAN_KIND_", 10) == 0) {
        s += 10;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i]) == 0) {
            return names[i];
        }
    }
    /* Unknown enum name: show it, lower-cased and bounded. */
    size_t j = 0;
    for (; s[j] && j + 1 < tmpsz; j++) {
        char c = s[j];
        tmp[j] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : (c > ' ' && c < 0x7f ? c : '?'));
    }
    tmp[j] = '\0';
    return tmp;
}

static void put_status(td_buf *b, const json_t *st)
{
    const json_t *code = member(st, "code");
    int c = 0;
    if (json_is_number(code)) {
        if (!small_int(code, &c)) {
            c = 0;
        }
    } else if (json_is_string(code)) {
        const char *s = json_string_value(code);
        c = strcmp(s, "STATUS_CODE_OK") == 0 ? 1 : strcmp(s, "STATUS_CODE_ERROR") == 0 ? 2 : 0;
    }
    if (c == 1) {
        td_buf_addstr(b, "ok");
    } else if (c == 2) {
        size_t n;
        const char *msg = td_ctl_json_str(st, "message", &n);
        td_buf_addstr(b, "error");
        if (msg && n) {
            td_buf_addstr(b, ": ");
            td_ctl_put_text(b, msg, n, MAX_VALUE_BYTES, 0);
        }
    } else {
        td_buf_addch(b, '-');
    }
}

/*
 * Attributes worth a place on the span line, in display order. Error details
 * are picked first so they are never crowded out; the rest fill the remaining
 * slots in table order.
 */
static const struct {
    const char *key;
    bool error;
} key_attrs[] = {
    {"http.request.method", false},
    {"http.method", false},
    {"http.route", false},
    {"url.path", false},
    {"http.target", false},
    {"http.response.status_code", false},
    {"http.status_code", false},
    {"db.system.name", false},
    {"db.system", false},
    {"rpc.method", false},
    {"messaging.system", false},
    {"error.type", true},
    {"error", true},
    {"exception.message", true},
};
#define NKEY_ATTRS (sizeof(key_attrs) / sizeof(key_attrs[0]))

/* exception.message from the span's "exception" events (where OTel SDKs record it). */
static const json_t *exception_event_message(const json_t *js)
{
    const json_t *events = member(js, "events"), *ev;
    size_t i;
    json_array_foreach(events, i, ev)
    {
        size_t n;
        const char *name = td_ctl_json_str(ev, "name", &n);
        if (name && strcmp(name, "exception") == 0) {
            const json_t *v = attr_get(member(ev, "attributes"), "exception.message");
            if (v) {
                return v;
            }
        }
    }
    return NULL;
}

static void put_key_attrs(td_buf *b, const json_t *js)
{
    const json_t *found[NKEY_ATTRS] = {0};
    const json_t *attrs = member(js, "attributes"), *kv;
    size_t i, k;
    json_array_foreach(attrs, i, kv)
    {
        const json_t *key = member(kv, "key");
        if (!json_is_string(key)) {
            continue;
        }
        for (k = 0; k < NKEY_ATTRS; k++) {
            if (!found[k] && strcmp(json_string_value(key), key_attrs[k].key) == 0) {
                found[k] = kv;
                break;
            }
        }
    }
    bool show[NKEY_ATTRS] = {0};
    const json_t *exc_value = NULL;
    size_t exc = NKEY_ATTRS - 1, nshow = 0;
    if (!found[exc] && (exc_value = exception_event_message(js)) != NULL) {
        found[exc] = exc_value; /* marker; the value is exc_value */
    }
    for (int pass = 0; pass < 2; pass++) {
        for (k = 0; k < NKEY_ATTRS && nshow < MAX_KEY_ATTRS; k++) {
            if (found[k] && !show[k] && key_attrs[k].error == (pass == 0)) {
                show[k] = true;
                nshow++;
            }
        }
    }
    bool first = true;
    for (k = 0; k < NKEY_ATTRS; k++) {
        if (!show[k]) {
            continue;
        }
        td_buf_addstr(b, first ? "  " : " ");
        first = false;
        td_buf_addstr(b, key_attrs[k].key);
        td_buf_addch(b, '=');
        const json_t *v = found[k] == exc_value ? exc_value : member(found[k], "value");
        td_ctl_put_anyvalue(b, v, MAX_VALUE_BYTES);
    }
}

static void put_span(td_buf *b, const trace *t, const span *s)
{
    char kind_tmp[24];
    size_t n;
    if (s->service) {
        td_ctl_put_text(b, s->service, s->service_len, MAX_SERVICE_BYTES, 0);
    } else {
        td_buf_addstr(b, "(unknown)");
    }
    td_buf_addstr(b, "  ");
    const char *name = td_ctl_json_str(s->js, "name", &n);
    if (name && n) {
        td_ctl_put_text(b, name, n, MAX_NAME_BYTES, 0);
    } else {
        td_buf_addstr(b, "<unnamed>");
    }
    td_buf_addf(b, "  [%s]  +", kind_short(member(s->js, "kind"), kind_tmp, sizeof(kind_tmp)));
    if (s->has_start) {
        td_ctl_fmt_duration(b, s->start - t->start);
    } else {
        td_buf_addch(b, '?');
    }
    td_buf_addstr(b, "  ");
    if (s->has_start && s->has_end && s->end >= s->start) {
        td_ctl_fmt_duration(b, s->end - s->start);
    } else {
        td_buf_addch(b, '?');
    }
    td_buf_addstr(b, "  ");
    put_status(b, member(s->js, "status"));
    put_key_attrs(b, s->js);
}

typedef struct frame {
    const size_t *kids;
    size_t nkids, pos;
    size_t prefix_len; /* prefix bytes for this frame's children */
    size_t depth;      /* depth of this frame's children */
} frame;

static const char GLYPH_MID[] = "\xe2\x94\x9c\xe2\x94\x80 ";  /* "├─ " */
static const char GLYPH_LAST[] = "\xe2\x94\x94\xe2\x94\x80 "; /* "└─ " */
static const char GLYPH_PIPE[] = "\xe2\x94\x82  ";            /* "│  " */

/*
 * Print kids (and, depth-first, all their descendants) below a root-level line.
 * stack has room for t->n + 1 frames: every frame but the first belongs to a
 * distinct span.
 */
static void print_subtree(FILE *f, const trace *t, const tree *tr, const size_t *kids, size_t nkids,
                          frame *stack, td_buf *prefix, td_buf *line)
{
    size_t top = 0;
    td_buf_reset(prefix);
    stack[0] = (frame){kids, nkids, 0, 0, 1};
    while (top != NONE) {
        frame *fr = &stack[top];
        if (fr->pos == fr->nkids) {
            top = top == 0 ? NONE : top - 1;
            continue;
        }
        size_t i = fr->kids[fr->pos++];
        bool last = fr->pos == fr->nkids;
        td_buf_setlen(prefix, fr->prefix_len);
        td_buf_reset(line);
        td_buf_add(line, prefix->data, prefix->len);
        td_buf_addstr(line, last ? GLYPH_LAST : GLYPH_MID);
        if (fr->depth > MAX_DRAW_DEPTH) {
            td_buf_addf(line, "[depth %zu] ", fr->depth);
        }
        put_span(line, t, &t->spans[i]);
        td_buf_addch(line, '\n');
        fwrite(line->data, 1, line->len, f);

        size_t k0 = tr->kid_off[i], k1 = tr->kid_off[i + 1];
        if (k1 > k0) {
            if (fr->depth < MAX_DRAW_DEPTH) {
                td_buf_addstr(prefix, last ? "   " : GLYPH_PIPE);
            }
            size_t depth = fr->depth + 1;
            stack[++top] = (frame){tr->kids + k0, k1 - k0, 0, prefix->len, depth};
        }
    }
}

static void put_id_hex(td_buf *b, const uint8_t *id, size_t len)
{
    td_buf_addhex(b, id, len);
}

static bool print_tree(FILE *f, trace *t, const char *requested_id)
{
    tree tr;
    if (!tree_build(t, &tr)) {
        return false;
    }
    frame *stack = td_calloc(t->n + 1, sizeof(frame));
    if (!stack) {
        tree_release(&tr);
        return false;
    }
    td_buf line = TD_BUF_INIT, prefix = TD_BUF_INIT;

    td_buf_addstr(&line, "Trace ");
    if (t->trace_id_len) {
        for (size_t i = t->trace_id_len; i < 16; i++) {
            td_buf_addstr(&line, "00");
        }
        put_id_hex(&line, t->trace_id, t->trace_id_len);
    } else {
        /* No decodable traceId in the answer: show what was asked for, as the server pads it. */
        for (size_t i = strlen(requested_id); i < 32; i++) {
            td_buf_addch(&line, '0');
        }
        for (const char *p = requested_id; *p; p++) {
            td_buf_addch(&line, (char)((*p >= 'A' && *p <= 'F') ? *p - 'A' + 'a' : *p));
        }
    }
    td_buf_addf(&line, "  %zu span%s  %zu service%s  duration ", t->n, t->n == 1 ? "" : "s",
                t->nservices, t->nservices == 1 ? "" : "s");
    td_ctl_fmt_duration(&line, t->end - t->start);
    td_buf_addch(&line, '\n');
    fwrite(line.data, 1, line.len, f);

    for (size_t e = 0; e < tr.nentries; e++) {
        const entry *en = &tr.entries[e];
        td_buf_reset(&line);
        if (en->count == 0) {
            size_t i = en->first;
            put_span(&line, t, &t->spans[i]);
            td_buf_addch(&line, '\n');
            fwrite(line.data, 1, line.len, f);
            print_subtree(f, t, &tr, tr.kids + tr.kid_off[i], tr.kid_off[i + 1] - tr.kid_off[i],
                          stack, &prefix, &line);
        } else {
            const size_t *members = tr.orphans + (en->first - t->n);
            const span *s = &t->spans[members[0]];
            td_buf_addstr(&line, s->link == LINK_CYCLE ? "(parent cycle " : "(missing parent ");
            if (s->parent_bad) {
                td_buf_addch(&line, '?');
            } else {
                put_id_hex(&line, s->parent_id, s->parent_len);
            }
            td_buf_addstr(&line, ")\n");
            fwrite(line.data, 1, line.len, f);
            print_subtree(f, t, &tr, members, en->count, stack, &prefix, &line);
        }
    }
    td_buf_release(&line);
    td_buf_release(&prefix);
    td_free(stack);
    tree_release(&tr);
    return true;
}

/* ------------------------------------------------------------------ command */

static void find_help(FILE *f)
{
    fputs("Usage: tracectl find --trace-id ID [--start S --end S] [GLOBAL OPTIONS]\n"
          "       tracectl find ID ...\n"
          "\n"
          "Fetch one trace (GET /api/v2/traces/ID) and print it as a span tree.\n"
          "\n"
          "Options:\n"
          "  --trace-id ID  trace ID, 1-32 hex digits (shorter IDs are zero-padded)\n"
          "  --start S      search window start, unix seconds (optional)\n"
          "  --end S        search window end, unix seconds (optional, > start)\n"
          "\n"
          "Output: a header line\n"
          "  Trace <id>  <N> spans  <M> services  duration <d>\n"
          "then one line per span, children under their parent ordered by start:\n"
          "  <service>  <name>  [<kind>]  +<offset>  <duration>  <status>  <k=v ...>\n"
          "where offset counts from the trace start, status is ok, error[: message]\n"
          "or - (unset), and k=v are up to 4 key attributes (HTTP, DB, RPC, errors).\n"
          "Spans whose parent is not in the trace are listed under\n"
          "\"(missing parent <span id>)\". With --json the server's JSON body is printed\n"
          "unchanged; a trace that is not found prints nothing on stdout.\n"
          "\n",
          f);
    td_ctl_help_common(f);
    fputc('\n', f);
    td_ctl_help_exit_codes(f);
}

/* Unix seconds: decimal digits that fit an int64. */
static bool valid_seconds(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 19) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return n < 19 || strcmp(s, "9223372036854775807") <= 0;
}

static int seconds_cmp(const char *a, const char *b)
{
    while (*a == '0' && a[1]) {
        a++;
    }
    while (*b == '0' && b[1]) {
        b++;
    }
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
}

/* Parse the JSON body; a number too big for int64 is retried as a double rather than refused. */
static json_t *parse_body(const td_buf *body, json_error_t *jerr)
{
    json_t *root = json_loadb(body->data, body->len, JSON_ALLOW_NUL, jerr);
    if (!root) {
        json_error_t again;
        root = json_loadb(body->data, body->len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &again);
    }
    return root;
}

static int find_run(td_ctl_opts *o, int argc, char **argv)
{
    const char *id = NULL, *start = NULL, *end = NULL, *v = NULL;
    bool only_args = false; /* after "--" */
    int i = 1, r;
    while (i < argc) {
        if (!only_args && argv[i][0] == '-' && argv[i][1] != '\0') {
            if (strcmp(argv[i], "--") == 0) {
                only_args = true;
                i++;
                continue;
            }
            if ((r = td_ctl_common_opt(o, "find", argc, argv, &i)) == 0 &&
                (r = td_ctl_opt("find", argc, argv, &i, "--start", &start)) == 0 &&
                (r = td_ctl_opt("find", argc, argv, &i, "--end", &end)) == 0 &&
                (r = td_ctl_opt("find", argc, argv, &i, "--trace-id", &v)) == 0) {
                return td_ctl_usage_error("find", "unknown option '%s'", argv[i]);
            }
            if (r < 0) {
                return TD_CTL_EXIT_USAGE;
            }
            if (!v) {
                continue;
            }
        } else {
            v = argv[i++]; /* the ID as a plain argument */
        }
        if (id) {
            return td_ctl_usage_error("find", "more than one trace ID given ('%s', '%s')", id, v);
        }
        id = v;
        v = NULL;
    }
    if (!id) {
        return td_ctl_usage_error("find", "missing --trace-id");
    }
    if (!td_ctl_trace_id_valid(id)) {
        return td_ctl_usage_error("find", "invalid trace ID '%s': want 1 to 32 hex digits", id);
    }
    if (start && !valid_seconds(start)) {
        return td_ctl_usage_error("find", "invalid --start '%s': want unix seconds", start);
    }
    if (end && !valid_seconds(end)) {
        return td_ctl_usage_error("find", "invalid --end '%s': want unix seconds", end);
    }
    if (start && end && seconds_cmp(end, start) <= 0) {
        return td_ctl_usage_error("find", "--end must be after --start");
    }

    td_buf path = TD_BUF_INIT;
    td_buf_addf(&path, "/api/v2/traces/%s", id);
    if (start || end) {
        td_buf_addch(&path, '?');
        if (start) {
            td_buf_addf(&path, "start=%s%s", start, end ? "&" : "");
        }
        if (end) {
            td_buf_addf(&path, "end=%s", end);
        }
    }
    td_ctl_http_resp resp;
    td_err err;
    td_err_init(&err);
    td_status st = td_ctl_http_get(o, path.data, "application/json", &resp, &err);
    td_buf_release(&path);
    if (st != TD_OK) {
        return td_ctl_http_fail(o, &err);
    }

    int rc = TD_CTL_EXIT_OK;
    json_t *root = NULL;
    trace t = {0};
    if (resp.status == 404) {
        fprintf(stderr, "tracectl: trace %s not found\n", id);
        rc = TD_CTL_EXIT_NOT_FOUND;
        goto out;
    }
    if (resp.status != 200) {
        td_ctl_print_http_error(&resp);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    json_error_t jerr;
    root = parse_body(&resp.body, &jerr);
    if (!root) {
        fprintf(stderr, "tracectl: the server's answer is not valid JSON: %s (line %d)\n",
                jerr.text, jerr.line);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    if (!json_is_object(root)) {
        fputs("tracectl: the server's answer is not a JSON object\n", stderr);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    const json_t *tr = trace_object(root);
    if (!trace_load(&t, tr)) {
        fputs("tracectl: out of memory\n", stderr);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    if (t.n == 0) {
        fprintf(stderr, "tracectl: trace %s not found\n", id);
        rc = TD_CTL_EXIT_NOT_FOUND;
        goto out;
    }
    if (o->json) {
        td_ctl_write_body(stdout, td_buf_slice(&resp.body));
    } else if (!print_tree(stdout, &t, id)) {
        fputs("tracectl: out of memory\n", stderr);
        rc = TD_CTL_EXIT_SERVER;
    }
    size_t plen;
    const char *partial = td_ctl_json_str(root, "status", &plen);
    if (partial && strcmp(partial, "PARTIAL") == 0) {
        size_t n;
        const char *msg = td_ctl_json_str(root, "message", &n);
        td_buf b = TD_BUF_INIT;
        td_buf_addstr(&b, "tracectl: warning: the server returned a partial trace");
        if (msg && n) {
            td_buf_addstr(&b, ": ");
            td_ctl_put_text(&b, msg, n, 512, 0);
        }
        td_buf_addch(&b, '\n');
        fwrite(b.data, 1, b.len, stderr);
        td_buf_release(&b);
    }

out:
    td_free(t.spans);
    json_decref(root);
    td_ctl_http_resp_release(&resp);
    return rc;
}

const td_ctl_cmd td_ctl_cmd_find = {
    .name = "find",
    .summary = "fetch a trace by ID and print its span tree",
    .run = find_run,
    .help = find_help,
};
