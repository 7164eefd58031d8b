/*
 * tempo_trace.c - trace by ID for the Tempo API: request parsing helpers, trace
 * assembly from stored fragments, and the protobuf / Tempo JSON encoders.
 *
 * Assembly model. The store hands back every fragment of a trace (one serialized
 * ResourceSpans each, from whichever request and service it came). Fragments of
 * one resource arrive many times (once per export request), so they are folded:
 * ResourceSpans whose resource and schema_url pack to the same bytes become one,
 * and inside it ScopeSpans with the same scope and schema_url become one. Spans
 * repeated by client retries (same span ID and kind, API-CONTRACT §3.3) are kept
 * once, the first copy in key order winning. Everything lives in the request's
 * arena, so nothing here frees anything.
 */
#include "api/json.h"
#include "api/tempo.h"
#include "core/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Request parsing                                                          */
/* ------------------------------------------------------------------------ */

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

/* Byte length of the UTF-8 character at p (1 for an invalid byte). */
static size_t utf8_char_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80 ? 1 : p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC0 ? 2 : 1;
    if (len > n) {
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 1;
        }
    }
    return len;
}

td_status td__tempo_parse_trace_id(const char *s, size_t n, uint8_t out[16], td_err *err)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (hexval(p[i]) < 0) {
            /*
             * Tempo ranges over the Go string: the position is the byte offset + 1
             * and the character is the whole UTF-8 rune (U+FFFD when invalid).
             */
            size_t cl = utf8_char_len(p + i, n - i);
            const char *ch = s + i;
            if (cl == 1 && p[i] >= 0x80) {
                ch = "\xEF\xBF\xBD";
                cl = 3;
            }
            return td_err_set(err, TD_INVALID,
                              "trace IDs can only contain hex characters: invalid character "
                              "'%.*s' at position %zu",
                              (int)cl, ch, i + 1);
        }
    }
    /* an odd count gets a leading zero digit */
    size_t nbytes = (n + 1) / 2;
    if (nbytes > 16) {
        return td_err_set(err, TD_INVALID, "trace IDs can't be larger than 128 bits");
    }
    memset(out, 0, 16);
    uint8_t *o = out + 16 - nbytes;
    size_t i = 0;
    if (n % 2) {
        *o++ = (uint8_t)hexval(p[0]);
        i = 1;
    }
    for (; i < n; i += 2) {
        *o++ = (uint8_t)(hexval(p[i]) << 4 | hexval(p[i + 1]));
    }
    return TD_OK;
}

/* strconv.Quote-like rendering of user text for error messages (bounded). */
static void go_quote(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    dst[o++] = '"';
    for (; *s && o + 6 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7F) {
            dst[o++] = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o++] = '"';
    dst[o] = '\0';
}

/* Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits only. */
static td_status parse_int64(const char *name, const char *s, int64_t *out, td_err *err)
{
    const char *p = s;
    if (*p == '+' || *p == '-') {
        p++;
    }
    bool ok = *p != '\0';
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9') {
            ok = false;
        }
    }
    char quoted[96];
    go_quote(quoted, sizeof(quoted), s);
    if (!ok) {
        return td_err_set(err, TD_INVALID,
                          "invalid %s: strconv.ParseInt: parsing %s: invalid syntax", name, quoted);
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) {
        return td_err_set(err, TD_INVALID,
                          "invalid %s: strconv.ParseInt: parsing %s: value out of range", name,
                          quoted);
    }
    *out = v;
    return TD_OK;
}

/* Seconds to nanoseconds, saturating; negative -> 0. */
static uint64_t sec_to_ns(int64_t sec)
{
    if (sec <= 0) {
        return 0;
    }
    if ((uint64_t)sec > UINT64_MAX / 1000000000u) {
        return UINT64_MAX;
    }
    return (uint64_t)sec * 1000000000u;
}

bool td__tempo_parse_go_duration(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return true;
    }
    if (!*p) {
        return false;
    }
    double total = 0;
    while (*p) {
        if (!((*p >= '0' && *p <= '9') || *p == '.')) {
            return false;
        }
        char *e;
        errno = 0;
        double v = strtod(p, &e);
        if (e == p || errno == ERANGE) {
            return false;
        }
        p = e;
        double unit;
        if (strncmp(p, "ns", 2) == 0) {
            unit = 1, p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            unit = 1e3, p += 2;
        } else if (strncmp(p, "\xc2\xb5s", 3) == 0 || strncmp(p, "\xce\xbcs", 3) == 0) {
            unit = 1e3, p += 3;
        } else if (strncmp(p, "ms", 2) == 0) {
            unit = 1e6, p += 2;
        } else if (*p == 's') {
            unit = 1e9, p++;
        } else if (*p == 'm') {
            unit = 60e9, p++;
        } else if (*p == 'h') {
            unit = 3600e9, p++;
        } else {
            return false;
        }
        total += v * unit;
    }
    if (total > 9.2e18) {
        return false;
    }
    *out = neg ? -(int64_t)total : (int64_t)total;
    return true;
}

td_status td__tempo_parse_range(const char *start, const char *end, uint64_t *start_ns,
                                uint64_t *end_ns, td_err *err)
{
    int64_t s = 0, e = 0;
    if (start && *start && parse_int64("start", start, &s, err) != TD_OK) {
        return err->code;
    }
    if (end && *end && parse_int64("end", end, &e, err) != TD_OK) {
        return err->code;
    }
    if (s != 0 && e != 0 && e <= s) {
        return td_err_set(err, TD_INVALID,
                          "http parameter start must be before end. received start=%" PRId64
                          " end=%" PRId64,
                          s, e);
    }
    *start_ns = 0;
    *end_ns = 0;
    if (s == 0 && e == 0) {
        return TD_OK;
    }
    *start_ns = sec_to_ns(s);
    if (e == 0) {
        *end_ns = UINT64_MAX;
    } else if (e < 0) {
        *end_ns = 1; /* a window before the epoch: nothing overlaps it */
    } else {
        /* end is a whole second: include spans up to its last nanosecond */
        uint64_t ens = sec_to_ns(e);
        *end_ns = ens > UINT64_MAX - 999999999u ? UINT64_MAX : ens + 999999999u;
    }
    return TD_OK;
}

td__tempo_format td__tempo_negotiate(const char *accept)
{
    if (!accept || !*accept) {
        return TD_TEMPO_JSON;
    }
    if (strstr(accept, "application/protobuf")) {
        return TD_TEMPO_PROTOBUF;
    }
    /* application/json and application/vnd.grafana.llm are both answered as JSON */
    return TD_TEMPO_JSON;
}

/* dskit's tenant ID alphabet: letters, digits and ! - _ . * ' ( ) */
static bool tenant_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!-_.*'()", c) != NULL);
}

static td_status check_tenant(const char *s, size_t n, td_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!tenant_char((unsigned char)s[i])) {
            return td_err_set(err, TD_INVALID,
                              "tenant ID '%.*s' contains unsupported character '%c'",
                              (int)(n > TD_TENANT_MAX ? TD_TENANT_MAX : n), s,
                              s[i] >= 0x20 && s[i] < 0x7F ? s[i] : '?');
        }
    }
    if (n > TD_TENANT_MAX) {
        return td_err_set(err, TD_INVALID, "tenant ID is too long: max %d characters",
                          TD_TENANT_MAX);
    }
    if (n == 0) {
        return td_err_set(err, TD_INVALID, "tenant ID is empty");
    }
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
        return td_err_set(err, TD_INVALID, "tenant ID is '.' or '..'");
    }
    return TD_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

td_status td__tempo_tenants(const char *header, bool multitenancy, td_arena *a, td__tenants *out,
                            td_err *err)
{
    out->n = 0;
    out->names = NULL;
    if (!multitenancy) {
        out->names = td_arena_alloc(a, sizeof(char *));
        if (!out->names) {
            return td_err_set(err, TD_NOMEM, "out of memory");
        }
        out->names[0] = TD_DEFAULT_TENANT;
        out->n = 1;
        return TD_OK;
    }
    if (!header || !*header) {
        return td_err_set(err, TD_UNAUTHENTICATED, "no org id");
    }
    size_t count = 1;
    for (const char *p = header; *p; p++) {
        count += *p == '|';
    }
    out->names = td_arena_calloc(a, count, sizeof(char *));
    if (!out->names) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    const char *p = header;
    for (size_t i = 0; i < count; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (check_tenant(p, n, err) != TD_OK) {
            return err->code;
        }
        out->names[i] = td_arena_strndup(a, p, n);
        if (!out->names[i]) {
            return td_err_set(err, TD_NOMEM, "out of memory");
        }
        p = bar ? bar + 1 : p + n;
    }
    qsort(out->names, count, sizeof(char *), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < count; i++) {
        if (w == 0 || strcmp(out->names[w - 1], out->names[i]) != 0) {
            out->names[w++] = out->names[i];
        }
    }
    out->n = w;
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* Assembly                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct scope_group {
    td_otlp_scope_spans *ss; /* copy of the first one seen; spans set at finish */
    const uint8_t *key;      /* packed scope + schema_url */
    size_t keylen;
    uint64_t hash;
    td_otlp_span **spans;
    size_t nspans, capspans;
} scope_group;

struct td__rs_group {
    td_otlp_resource_spans *rs; /* copy of the first one seen; scopes set at finish */
    const uint8_t *key;         /* packed resource + schema_url */
    size_t keylen;
    uint64_t hash;
    scope_group *scopes;
    size_t nscopes, capscopes;
};

struct td__span_slot {
    const td_otlp_span *span; /* NULL = free */
    uint64_t hash;
};

static void *pa_alloc(void *ud, size_t n)
{
    td__trace *t = ud;
    void *p = t->inner.alloc(t->inner.allocator_data, n);
    if (!p) {
        t->oom = true;
    }
    return p;
}

static void pa_free(void *ud, void *p)
{
    td__trace *t = ud;
    t->inner.free(t->inner.allocator_data, p);
}

void td__trace_init(td__trace *t, td_arena *a, uint64_t max_bytes)
{
    memset(t, 0, sizeof(*t));
    t->a = a;
    t->max_bytes = max_bytes;
    td_proto_allocator_init(&t->inner, a);
    t->pa.alloc = pa_alloc;
    t->pa.free = pa_free;
    t->pa.allocator_data = t;
    tempopb__trace__init(&t->out);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_SEED 0xcbf29ce484222325ull

/* Make room for one more element in an arena array (old storage is abandoned). */
static bool arr_reserve(td_arena *a, void **arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap) {
        return true;
    }
    size_t ncap = *cap ? *cap * 2 : 4;
    size_t bytes;
    if (!td_size_mul(ncap, elem, &bytes)) {
        return false;
    }
    void *p = td_arena_alloc(a, bytes);
    if (!p) {
        return false;
    }
    if (n) {
        memcpy(p, *arr, n * elem);
    }
    *arr = p;
    *cap = ncap;
    return true;
}

/*
 * Identity key of a resource or scope: its packed bytes, a separator-free length
 * prefix, and the schema URL. Returned in the arena; NULL on OOM.
 */
static uint8_t *make_key(td_arena *a, const ProtobufCMessage *m, const char *schema, size_t *keylen)
{
    size_t plen = m ? protobuf_c_message_get_packed_size(m) : 0;
    size_t slen = schema ? strlen(schema) : 0;
    size_t total;
    if (!td_size_add(plen, slen, &total) || !td_size_add(total, 8, &total)) {
        return NULL;
    }
    uint8_t *k = td_arena_alloc(a, total);
    if (!k) {
        return NULL;
    }
    uint64_t pl = plen;
    memcpy(k, &pl, 8);
    if (plen) {
        protobuf_c_message_pack(m, k + 8);
    }
    if (slen) {
        memcpy(k + 8 + plen, schema, slen);
    }
    *keylen = total;
    return k;
}

static uint64_t span_hash(const td_otlp_span *s)
{
    uint64_t h = fnv1a(FNV_SEED, s->span_id.data, s->span_id.len);
    uint32_t kind = (uint32_t)s->kind;
    return fnv1a(h, &kind, sizeof(kind));
}

static bool same_span(const td_otlp_span *a, const td_otlp_span *b)
{
    return a->kind == b->kind && a->span_id.len == b->span_id.len &&
           (a->span_id.len == 0 || memcmp(a->span_id.data, b->span_id.data, a->span_id.len) == 0);
}

static bool slots_grow(td__trace *t)
{
    size_t ncap = t->capslots ? t->capslots * 2 : 64;
    td__span_slot *ns = td_arena_calloc(t->a, ncap, sizeof(*ns));
    if (!ns) {
        return false;
    }
    for (size_t i = 0; i < t->capslots; i++) {
        if (t->slots[i].span) {
            size_t j = t->slots[i].hash & (ncap - 1);
            while (ns[j].span) {
                j = (j + 1) & (ncap - 1);
            }
            ns[j] = t->slots[i];
        }
    }
    t->slots = ns;
    t->capslots = ncap;
    return true;
}

/* Record s; returns 1 if new, 0 if (span_id, kind) was seen already, -1 on OOM. */
static int span_insert(td__trace *t, const td_otlp_span *s)
{
    if ((t->nslots + 1) * 2 > t->capslots && !slots_grow(t)) {
        return -1;
    }
    uint64_t h = span_hash(s);
    size_t j = h & (t->capslots - 1);
    while (t->slots[j].span) {
        if (t->slots[j].hash == h && same_span(t->slots[j].span, s)) {
            return 0;
        }
        j = (j + 1) & (t->capslots - 1);
    }
    t->slots[j].span = s;
    t->slots[j].hash = h;
    t->nslots++;
    return 1;
}

static td__rs_group *find_group(td__trace *t, const td_otlp_resource_spans *rs)
{
    size_t keylen;
    uint8_t *key = make_key(t->a, (const ProtobufCMessage *)rs->resource, rs->schema_url, &keylen);
    if (!key) {
        return NULL;
    }
    uint64_t h = fnv1a(FNV_SEED, key, keylen);
    for (size_t i = 0; i < t->ngroups; i++) {
        td__rs_group *g = &t->groups[i];
        if (g->hash == h && g->keylen == keylen && memcmp(g->key, key, keylen) == 0) {
            return g;
        }
    }
    if (!arr_reserve(t->a, (void **)&t->groups, t->ngroups, &t->capgroups, sizeof(*t->groups))) {
        return NULL;
    }
    td_otlp_resource_spans *copy = td_arena_memdup(t->a, rs, sizeof(*rs));
    if (!copy) {
        return NULL;
    }
    td__rs_group *g = &t->groups[t->ngroups++];
    memset(g, 0, sizeof(*g));
    g->rs = copy;
    g->key = key;
    g->keylen = keylen;
    g->hash = h;
    return g;
}

static scope_group *find_scope(td__trace *t, td__rs_group *g, const td_otlp_scope_spans *ss)
{
    size_t keylen;
    uint8_t *key = make_key(t->a, (const ProtobufCMessage *)ss->scope, ss->schema_url, &keylen);
    if (!key) {
        return NULL;
    }
    uint64_t h = fnv1a(FNV_SEED, key, keylen);
    for (size_t i = 0; i < g->nscopes; i++) {
        scope_group *sg = &g->scopes[i];
        if (sg->hash == h && sg->keylen == keylen && memcmp(sg->key, key, keylen) == 0) {
            return sg;
        }
    }
    if (!arr_reserve(t->a, (void **)&g->scopes, g->nscopes, &g->capscopes, sizeof(*g->scopes))) {
        return NULL;
    }
    td_otlp_scope_spans *copy = td_arena_memdup(t->a, ss, sizeof(*ss));
    if (!copy) {
        return NULL;
    }
    scope_group *sg = &g->scopes[g->nscopes++];
    memset(sg, 0, sizeof(*sg));
    sg->ss = copy;
    sg->key = key;
    sg->keylen = keylen;
    sg->hash = h;
    return sg;
}

/* Append resource attribute tenant=<name> (Tempo's cross-tenant marker). */
static bool add_tenant_attr(td__trace *t, td_otlp_resource_spans *rs, const char *name)
{
    td_otlp_resource *res = rs->resource;
    if (!res) {
        res = td_arena_alloc(t->a, sizeof(*res));
        if (!res) {
            return false;
        }
        opentelemetry__proto__resource__v1__resource__init(res);
        rs->resource = res;
    }
    td_otlp_kv *kv = td_arena_alloc(t->a, sizeof(*kv));
    td_otlp_any *v = td_arena_alloc(t->a, sizeof(*v));
    td_otlp_kv **attrs = td_arena_calloc(t->a, res->n_attributes + 1, sizeof(*attrs));
    if (!kv || !v || !attrs) {
        return false;
    }
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    kv->key = (char *)"tenant";
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)name;
    kv->value = v;
    if (res->n_attributes) {
        memcpy(attrs, res->attributes, res->n_attributes * sizeof(*attrs));
    }
    attrs[res->n_attributes] = kv;
    res->attributes = attrs;
    res->n_attributes++;
    return true;
}

static td_status add_scope_spans(td__trace *t, td__rs_group *g, td_otlp_scope_spans *ss,
                                 td_err *err)
{
    scope_group *sg = find_scope(t, g, ss);
    if (!sg) {
        return td_err_set(err, TD_NOMEM, "out of memory assembling the trace");
    }
    for (size_t i = 0; i < ss->n_spans; i++) {
        td_otlp_span *s = ss->spans[i];
        int r = span_insert(t, s);
        if (r < 0 || !arr_reserve(t->a, (void **)&sg->spans, sg->nspans, &sg->capspans,
                                  sizeof(*sg->spans))) {
            return td_err_set(err, TD_NOMEM, "out of memory assembling the trace");
        }
        if (r == 1) {
            sg->spans[sg->nspans++] = s;
            t->nspans++;
        }
    }
    return TD_OK;
}

td_status td__trace_add(td__trace *t, const uint8_t *data, size_t len, td_err *err)
{
    if (t->max_bytes && (len > t->max_bytes || t->inspected_bytes + len > t->max_bytes)) {
        t->inspected_bytes += len;
        t->partial = true;
        return td_err_set(err, TD_TOO_LARGE, "trace exceeds max size (max bytes: %" PRIu64 ")",
                          t->max_bytes);
    }
    t->inspected_bytes += len;
    t->oom = false;
    td_otlp_resource_spans *rs =
        opentelemetry__proto__trace__v1__resource_spans__unpack(&t->pa, len, data);
    if (!rs) {
        if (t->oom) {
            return td_err_set(err, TD_NOMEM, "out of memory decoding a stored fragment");
        }
        return td_err_set(err, TD_CORRUPT, "a stored trace fragment does not decode");
    }
    if (t->tenant_attr && !add_tenant_attr(t, rs, t->tenant_attr)) {
        return td_err_set(err, TD_NOMEM, "out of memory assembling the trace");
    }
    td__rs_group *g = find_group(t, rs);
    if (!g) {
        return td_err_set(err, TD_NOMEM, "out of memory assembling the trace");
    }
    for (size_t i = 0; i < rs->n_scope_spans; i++) {
        if (add_scope_spans(t, g, rs->scope_spans[i], err) != TD_OK) {
            return err->code;
        }
    }
    /* pre-1.0 SDKs: same layout under field 1000 */
    for (size_t i = 0; i < rs->n_instrumentation_library_spans; i++) {
        if (add_scope_spans(t, g, rs->instrumentation_library_spans[i], err) != TD_OK) {
            return err->code;
        }
    }
    t->nfrags++;
    return TD_OK;
}

static td_status frag_cb(void *ud, const uint8_t *data, size_t len, td_err *err)
{
    return td__trace_add(ud, data, len, err);
}

td_status td__trace_fetch(td__trace *t, td_store *s, const td__tenants *ts,
                          const uint8_t trace_id[16], uint64_t start_ns, uint64_t end_ns,
                          td_err *err)
{
    bool found = false;
    for (size_t i = 0; i < ts->n && !t->partial; i++) {
        t->tenant_attr = ts->n > 1 ? ts->names[i] : NULL;
        td_status st =
            td_store_trace_get(s, ts->names[i], trace_id, start_ns, end_ns, frag_cb, t, err);
        if (st == TD_NOT_FOUND) {
            continue;
        }
        if (st != TD_OK && !(st == TD_TOO_LARGE && t->partial)) {
            return st;
        }
        found = true;
    }
    t->tenant_attr = NULL;
    if (!found) {
        return td_err_set(err, TD_NOT_FOUND, "trace not found");
    }
    td_err_init(err);
    return TD_OK;
}

static int cmp_span(const void *pa, const void *pb)
{
    const td_otlp_span *a = *(const td_otlp_span *const *)pa;
    const td_otlp_span *b = *(const td_otlp_span *const *)pb;
    if (a->start_time_unix_nano != b->start_time_unix_nano) {
        return a->start_time_unix_nano < b->start_time_unix_nano ? -1 : 1;
    }
    if (a->end_time_unix_nano != b->end_time_unix_nano) {
        return a->end_time_unix_nano < b->end_time_unix_nano ? -1 : 1;
    }
    size_t n = a->span_id.len < b->span_id.len ? a->span_id.len : b->span_id.len;
    int c = n ? memcmp(a->span_id.data, b->span_id.data, n) : 0;
    if (c) {
        return c;
    }
    if (a->span_id.len != b->span_id.len) {
        return a->span_id.len < b->span_id.len ? -1 : 1;
    }
    return (int)a->kind - (int)b->kind;
}

td_status td__trace_finish(td__trace *t, td_err *err)
{
    td_otlp_resource_spans **rss = td_arena_calloc(t->a, t->ngroups ? t->ngroups : 1, sizeof(*rss));
    if (!rss) {
        return td_err_set(err, TD_NOMEM, "out of memory assembling the trace");
    }
    size_t nrs = 0;
    for (size_t i = 0; i < t->ngroups; i++) {
        td__rs_group *g = &t->groups[i];
        td_otlp_scope_spans **sss =
            td_arena_calloc(t->a, g->nscopes ? g->nscopes : 1, sizeof(*sss));
        if (!sss) {
            return td_err_set(err, TD_NOMEM, "out of memory assembling the trace");
        }
        size_t nss = 0;
        for (size_t k = 0; k < g->nscopes; k++) {
            scope_group *sg = &g->scopes[k];
            if (!sg->nspans) {
                continue; /* every span was a duplicate */
            }
            qsort(sg->spans, sg->nspans, sizeof(*sg->spans), cmp_span);
            sg->ss->spans = sg->spans;
            sg->ss->n_spans = sg->nspans;
            sss[nss++] = sg->ss;
        }
        if (!nss) {
            continue;
        }
        g->rs->scope_spans = sss;
        g->rs->n_scope_spans = nss;
        g->rs->instrumentation_library_spans = NULL;
        g->rs->n_instrumentation_library_spans = 0;
        rss[nrs++] = g->rs;
    }
    t->out.resourcespans = rss;
    t->out.n_resourcespans = nrs;
    return TD_OK;
}

/* ------------------------------------------------------------------------ */
/* Protobuf encoders                                                        */
/* ------------------------------------------------------------------------ */

static td_status pack_msg(const ProtobufCMessage *m, td_buf *out, td_err *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (!td_buf_try_grow(out, n)) {
        return td_err_set(err, TD_NOMEM, "out of memory encoding the trace");
    }
    size_t w = protobuf_c_message_pack(m, (uint8_t *)out->data + out->len);
    td_buf_setlen(out, out->len + w);
    return TD_OK;
}

td_status td__trace_pb_v1(const td__trace *t, td_buf *out, td_err *err)
{
    return pack_msg(&t->out.base, out, err);
}

td_status td__trace_pb_v2(const td__trace *t, td_buf *out, td_err *err)
{
    Tempopb__Trace tr = t->out;
    Tempopb__TraceByIDMetrics m = TEMPOPB__TRACE_BY_IDMETRICS__INIT;
    Tempopb__TraceByIDResponse r = TEMPOPB__TRACE_BY_IDRESPONSE__INIT;
    char msg[128];
    m.inspectedbytes = t->inspected_bytes;
    /* always set: Grafana reads field 1 without checking (`0a 00` when empty) */
    r.trace = &tr;
    r.metrics = &m;
    if (t->partial) {
        snprintf(msg, sizeof(msg),
                 "Trace exceeds maximum size of %" PRIu64 " bytes, a partial trace is returned",
                 t->max_bytes);
        r.status = TEMPOPB__PARTIAL_STATUS__PARTIAL;
        r.message = msg;
    }
    return pack_msg(&r.base, out, err);
}

/* ------------------------------------------------------------------------ */
/* Tempo JSON (gogo jsonpb style: zero values omitted, keys in field order)   */
/* ------------------------------------------------------------------------ */

/* Deeper AnyValue nesting than this is written as {} (keeps the stack bounded). */
#define MAX_VALUE_DEPTH 64

static void j_kvs(td_json *j, const char *key, td_otlp_kv *const *kvs, size_t n, int depth);

static void j_any(td_json *j, const td_otlp_any *v, int depth)
{
    td_json_begin_object(j);
    if (v && depth < MAX_VALUE_DEPTH) {
        switch (v->value_case) {
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
            td_json_key(j, "stringValue");
            td_json_string(j, v->string_value);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
            td_json_key(j, "boolValue");
            td_json_bool(j, v->bool_value);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
            td_json_key(j, "intValue");
            td_json_int64_str(j, v->int_value);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
            td_json_key(j, "doubleValue");
            td_json_double(j, v->double_value);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
            td_json_key(j, "arrayValue");
            td_json_begin_object(j);
            if (v->array_value && v->array_value->n_values) {
                td_json_key(j, "values");
                td_json_begin_array(j);
                for (size_t i = 0; i < v->array_value->n_values; i++) {
                    j_any(j, v->array_value->values[i], depth + 1);
                }
                td_json_end_array(j);
            }
            td_json_end_object(j);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
            td_json_key(j, "kvlistValue");
            td_json_begin_object(j);
            if (v->kvlist_value) {
                j_kvs(j, "values", v->kvlist_value->values, v->kvlist_value->n_values, depth + 1);
            }
            td_json_end_object(j);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
            td_json_key(j, "bytesValue");
            td_json_base64(j, v->bytes_value.data, v->bytes_value.len);
            break;
        default:
            /* not set, or the profiles-only string_value_strindex: an empty value */
            break;
        }
    }
    td_json_end_object(j);
}

void td__json_any(struct td_json *j, const td_otlp_any *v)
{
    j_any(j, v, 0);
}

/* "key":[{"key":..,"value":{..}},...], omitted when n == 0. */
static void j_kvs(td_json *j, const char *key, td_otlp_kv *const *kvs, size_t n, int depth)
{
    if (!n) {
        return;
    }
    td_json_key(j, key);
    td_json_begin_array(j);
    for (size_t i = 0; i < n; i++) {
        td_json_begin_object(j);
        if (kvs[i]->key && *kvs[i]->key) {
            td_json_key(j, "key");
            td_json_string(j, kvs[i]->key);
        }
        td_json_key(j, "value");
        j_any(j, kvs[i]->value, depth);
        td_json_end_object(j);
    }
    td_json_end_array(j);
}

static void j_str(td_json *j, const char *key, const char *v)
{
    if (v && *v) {
        td_json_key(j, key);
        td_json_string(j, v);
    }
}

static void j_u32(td_json *j, const char *key, uint32_t v)
{
    if (v) {
        td_json_key(j, key);
        td_json_int(j, v);
    }
}

static void j_u64s(td_json *j, const char *key, uint64_t v)
{
    if (v) {
        td_json_key(j, key);
        td_json_uint64_str(j, v);
    }
}

static void j_bytes(td_json *j, const char *key, ProtobufCBinaryData b)
{
    if (b.len) {
        td_json_key(j, key);
        td_json_base64(j, b.data, b.len);
    }
}

static const char *const kind_names[] = {
    "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
};
static const char *const status_names[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK",
                                           "STATUS_CODE_ERROR"};

/* An enum as its name; an unknown value as its number (what jsonpb does). */
static void j_enum(td_json *j, const char *key, int v, const char *const *names, int nnames)
{
    if (!v) {
        return;
    }
    td_json_key(j, key);
    if (v > 0 && v < nnames) {
        td_json_string(j, names[v]);
    } else {
        td_json_int(j, v);
    }
}

static void j_span(td_json *j, const td_otlp_span *s)
{
    td_json_begin_object(j);
    j_bytes(j, "traceId", s->trace_id);
    j_bytes(j, "spanId", s->span_id);
    j_str(j, "traceState", s->trace_state);
    j_bytes(j, "parentSpanId", s->parent_span_id);
    j_u32(j, "flags", s->flags);
    j_str(j, "name", s->name);
    j_enum(j, "kind", (int)s->kind, kind_names, 6);
    j_u64s(j, "startTimeUnixNano", s->start_time_unix_nano);
    j_u64s(j, "endTimeUnixNano", s->end_time_unix_nano);
    j_kvs(j, "attributes", s->attributes, s->n_attributes, 0);
    j_u32(j, "droppedAttributesCount", s->dropped_attributes_count);
    if (s->n_events) {
        td_json_key(j, "events");
        td_json_begin_array(j);
        for (size_t i = 0; i < s->n_events; i++) {
            const td_otlp_event *e = s->events[i];
            td_json_begin_object(j);
            j_u64s(j, "timeUnixNano", e->time_unix_nano);
            j_str(j, "name", e->name);
            j_kvs(j, "attributes", e->attributes, e->n_attributes, 0);
            j_u32(j, "droppedAttributesCount", e->dropped_attributes_count);
            td_json_end_object(j);
        }
        td_json_end_array(j);
    }
    j_u32(j, "droppedEventsCount", s->dropped_events_count);
    if (s->n_links) {
        td_json_key(j, "links");
        td_json_begin_array(j);
        for (size_t i = 0; i < s->n_links; i++) {
            const td_otlp_link *l = s->links[i];
            td_json_begin_object(j);
            j_bytes(j, "traceId", l->trace_id);
            j_bytes(j, "spanId", l->span_id);
            j_str(j, "traceState", l->trace_state);
            j_kvs(j, "attributes", l->attributes, l->n_attributes, 0);
            j_u32(j, "droppedAttributesCount", l->dropped_attributes_count);
            j_u32(j, "flags", l->flags);
            td_json_end_object(j);
        }
        td_json_end_array(j);
    }
    j_u32(j, "droppedLinksCount", s->dropped_links_count);
    /* Tempo always has a status; the all-default one is {} */
    td_json_key(j, "status");
    td_json_begin_object(j);
    if (s->status) {
        j_str(j, "message", s->status->message);
        j_enum(j, "code", (int)s->status->code, status_names, 3);
    }
    td_json_end_object(j);
    td_json_end_object(j);
}

static void j_resource_spans(td_json *j, const td_otlp_resource_spans *rs)
{
    td_json_begin_object(j);
    td_json_key(j, "resource");
    td_json_begin_object(j);
    if (rs->resource) {
        j_kvs(j, "attributes", rs->resource->attributes, rs->resource->n_attributes, 0);
        j_u32(j, "droppedAttributesCount", rs->resource->dropped_attributes_count);
    }
    td_json_end_object(j);
    if (rs->n_scope_spans) {
        td_json_key(j, "scopeSpans");
        td_json_begin_array(j);
        for (size_t i = 0; i < rs->n_scope_spans; i++) {
            const td_otlp_scope_spans *ss = rs->scope_spans[i];
            td_json_begin_object(j);
            td_json_key(j, "scope");
            td_json_begin_object(j);
            if (ss->scope) {
                j_str(j, "name", ss->scope->name);
                j_str(j, "version", ss->scope->version);
                j_kvs(j, "attributes", ss->scope->attributes, ss->scope->n_attributes, 0);
                j_u32(j, "droppedAttributesCount", ss->scope->dropped_attributes_count);
            }
            td_json_end_object(j);
            if (ss->n_spans) {
                td_json_key(j, "spans");
                td_json_begin_array(j);
                for (size_t k = 0; k < ss->n_spans; k++) {
                    j_span(j, ss->spans[k]);
                }
                td_json_end_array(j);
            }
            j_str(j, "schemaUrl", ss->schema_url);
            td_json_end_object(j);
        }
        td_json_end_array(j);
    }
    j_str(j, "schemaUrl", rs->schema_url);
    td_json_end_object(j);
}

static void j_batches(td_json *j, const char *key, const td__trace *t)
{
    if (!t->out.n_resourcespans) {
        return;
    }
    td_json_key(j, key);
    td_json_begin_array(j);
    for (size_t i = 0; i < t->out.n_resourcespans; i++) {
        j_resource_spans(j, t->out.resourcespans[i]);
    }
    td_json_end_array(j);
}

void td__trace_json_v1(const td__trace *t, td_buf *out)
{
    td_json j;
    td_json_init(&j, out);
    td_json_begin_object(&j);
    j_batches(&j, "batches", t);
    td_json_end_object(&j);
}

void td__trace_json_v2(const td__trace *t, td_buf *out)
{
    td_json j;
    td_json_init(&j, out);
    td_json_begin_object(&j);
    td_json_key(&j, "trace");
    td_json_begin_object(&j);
    j_batches(&j, "resourceSpans", t);
    td_json_end_object(&j);
    td_json_key(&j, "metrics");
    td_json_begin_object(&j);
    j_u64s(&j, "inspectedBytes", t->inspected_bytes);
    td_json_end_object(&j);
    if (t->partial) {
        td_json_key(&j, "status");
        td_json_string(&j, "PARTIAL");
        td_json_key(&j, "message");
        td_buf msg = TD_BUF_INIT;
        td_buf_addf(&msg,
                    "Trace exceeds maximum size of %" PRIu64 " bytes, a partial trace is returned",
                    t->max_bytes);
        td_json_string_n(&j, msg.data, msg.len);
        td_buf_release(&msg);
    }
    td_json_end_object(&j);
}
