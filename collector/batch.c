/*
 * batch.c - from a decoded request to the one heap block handed to the queue.
 *
 * Every span is validated (16-byte and 8-byte non-zero IDs); invalid ones are
 * counted, never silently dropped. The valid spans of each ResourceSpans are
 * grouped by trace ID and each (resource, trace) group becomes one fragment: a
 * serialized ResourceSpans with the original resource and schema URL, one
 * ScopeSpans per original scope that has spans of that trace, and those spans
 * in their original order. The grouping sorts span indices by trace ID
 * (O(n log n)), so fragments come out in trace-ID order, the store's key order.
 *
 * The resource is not repeated in every fragment: each distinct resource of the
 * request (by its packed bytes) is packed once into the batch's resource table
 * with its 128-bit hash, and the fragments of that resource leave ResourceSpans
 * field 1 out and name the table entry instead (td_frag.res_index). The store
 * writes each resource once and puts it back in front of the fragment when
 * reading (store/FORMAT.md). A ResourceSpans without a resource, or with one
 * that packs to nothing, keeps it inline (res_index -1).
 *
 * Each fragment also gets its search index entries (td_idx_entry, store/FORMAT.md
 * 'I' records): the distinct (scope, key, typed value) of its resource, scopes,
 * spans, events and links, plus the intrinsics name, status, kind,
 * statusMessage, duration class and, for a fragment holding a parentless span,
 * rootName and rootServiceName. Their key and value bytes are copied into the
 * batch and counted in its queue bytes like the fragment data.
 *
 * The fragment messages are built in the request arena and point at the decoded
 * spans (nothing is copied before packing); they are packed straight into the
 * batch, the one copy that outlives the request (STYLE rule 5).
 */
#include "collector/collector.h"
#include "core/hash.h"
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One valid span: its trace ID as a sort key plus where it came from. */
typedef struct span_ref {
    uint64_t hi, lo; /* trace ID, big-endian halves: sorts like memcmp */
    uint32_t seq;    /* position in the ResourceSpans, for a stable order */
    uint32_t scope;  /* index of its ScopeSpans */
    td_otlp_span *span;
} span_ref;

/* One fragment to pack. */
typedef struct frag_plan {
    td_otlp_resource_spans msg;
    const uint8_t *trace_id;
    uint64_t start_ns, end_ns;
    uint32_t nspans;
    int32_t res_index; /* into the resource table, or -1: msg carries the resource */
    const td_otlp_resource *resource; /* the original resource (msg may leave it out) */
    size_t len;
    /* search summary: the earliest span with an empty parent_span_id, error count */
    const td_otlp_span *root;
    const char *root_service; /* its resource's service.name, or NULL */
    size_t root_service_len, root_name_len;
    uint32_t nerrors;
} frag_plan;

/* One distinct resource of the request, packed in the arena. */
typedef struct res_plan {
    uint8_t hash[TD_HASH128_LEN];
    const uint8_t *data;
    size_t len;
} res_plan;

/*
 * The request's distinct resources: res[0..n) in first-seen order, found through
 * an open-addressing index of n_slots (a power of two, at least twice the most
 * entries there can be) holding res indices, -1 = empty.
 */
typedef struct res_table {
    res_plan *res;
    size_t n;
    int32_t *slots;
    size_t n_slots;
    size_t bytes; /* sum of res[i].len */
} res_table;

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

static bool span_ids_valid(const td_otlp_span *s)
{
    return s->trace_id.len == 16 && s->span_id.len == 8 && !all_zero(s->trace_id.data, 16) &&
           !all_zero(s->span_id.data, 8);
}

static int cmp_ref(const void *pa, const void *pb)
{
    const span_ref *a = pa, *b = pb;
    if (a->hi != b->hi) {
        return a->hi < b->hi ? -1 : 1;
    }
    if (a->lo != b->lo) {
        return a->lo < b->lo ? -1 : 1;
    }
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The i-th scope of rs, counting instrumentation_library_spans after scope_spans. */
static td_otlp_scope_spans *scope_at(const td_otlp_resource_spans *rs, size_t i)
{
    return i < rs->n_scope_spans ? rs->scope_spans[i]
                                 : rs->instrumentation_library_spans[i - rs->n_scope_spans];
}

/*
 * An arena allocation of need bytes failed: TD_TOO_LARGE when it would have
 * crossed the arena's limit (the request is too big to process), else TD_NOMEM.
 * Mirrors td_arena_alloc's chunk rule; the margin covers the chunk header.
 */
static td_status arena_fail(td_arena *a, size_t need, td_err *err)
{
    size_t size = need > a->chunk_sz / 4 ? need : a->chunk_sz;
    size_t want;
    if (a->limit && (!td_size_add(a->used, size, &want) || want + 256 > a->limit)) {
        return td_err_set(err, TD_TOO_LARGE, "request needs more than %zu bytes of memory",
                          a->limit);
    }
    return td_err_set(err, TD_NOMEM, "out of memory building the span batch");
}

/*
 * Build the fragment message for refs[0..n) (one trace of rs, sorted by seq, so
 * scope indices never decrease). Everything it points to lives in the arena or in
 * the decoded request.
 */
static bool plan_fragment(const td_otlp_resource_spans *rs, int32_t res_index, const span_ref *refs,
                          size_t n, td_arena *a, frag_plan *fp, size_t *fail_need)
{
    size_t nscopes = 1;
    for (size_t i = 1; i < n; i++) {
        nscopes += refs[i].scope != refs[i - 1].scope;
    }
    /* One block: scope pointers, scope messages, span pointers. */
    size_t need, spans_sz;
    if (!td_size_mul(nscopes, sizeof(td_otlp_scope_spans *) + sizeof(td_otlp_scope_spans), &need) ||
        !td_size_mul(n, sizeof(td_otlp_span *), &spans_sz) || !td_size_add(need, spans_sz, &need)) {
        *fail_need = SIZE_MAX;
        return false;
    }
    td_otlp_scope_spans **sp = td_arena_alloc(a, need);
    if (!sp) {
        *fail_need = need;
        return false;
    }
    td_otlp_scope_spans *ss = (td_otlp_scope_spans *)(sp + nscopes);
    td_otlp_span **spans = (td_otlp_span **)(ss + nscopes);

    opentelemetry__proto__trace__v1__resource_spans__init(&fp->msg);
    fp->msg.base.n_unknown_fields = rs->base.n_unknown_fields;
    fp->msg.base.unknown_fields = rs->base.unknown_fields;
    /* with a table entry the resource is stored separately (field 1 left out) */
    fp->msg.resource = res_index >= 0 ? NULL : rs->resource;
    fp->res_index = res_index;
    fp->resource = rs->resource;
    fp->msg.schema_url = rs->schema_url;
    fp->msg.n_scope_spans = nscopes;
    fp->msg.scope_spans = sp;
    fp->trace_id = refs[0].span->trace_id.data;
    fp->start_ns = UINT64_MAX;
    fp->end_ns = 0;
    fp->nspans = (uint32_t)n;
    fp->root = NULL;
    fp->nerrors = 0;

    size_t k = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || refs[i].scope != refs[i - 1].scope) {
            const td_otlp_scope_spans *orig = scope_at(rs, refs[i].scope);
            k++;
            opentelemetry__proto__trace__v1__scope_spans__init(&ss[k]);
            ss[k].base.n_unknown_fields = orig->base.n_unknown_fields;
            ss[k].base.unknown_fields = orig->base.unknown_fields;
            ss[k].scope = orig->scope;
            ss[k].schema_url = orig->schema_url;
            ss[k].spans = spans + i;
            sp[k] = &ss[k];
        }
        ss[k].n_spans++;
        td_otlp_span *s = refs[i].span;
        spans[i] = s;
        /* A span without an end time still occupies its start instant. */
        uint64_t end = s->end_time_unix_nano > s->start_time_unix_nano ? s->end_time_unix_nano
                                                                       : s->start_time_unix_nano;
        if (s->start_time_unix_nano < fp->start_ns) {
            fp->start_ns = s->start_time_unix_nano;
        }
        if (end > fp->end_ns) {
            fp->end_ns = end;
        }
        if (s->status &&
            s->status->code ==
                OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR) {
            fp->nerrors++;
        }
        if (s->parent_span_id.len == 0 &&
            (!fp->root || s->start_time_unix_nano < fp->root->start_time_unix_nano)) {
            fp->root = s;
        }
    }
    fp->root_service = NULL;
    fp->root_service_len = fp->root_name_len = 0;
    if (fp->root) {
        fp->root_name_len = fp->root->name ? strlen(fp->root->name) : 0;
        const td_otlp_resource *r = rs->resource;
        for (size_t i = 0; r && i < r->n_attributes; i++) {
            const td_otlp_kv *kv = r->attributes[i];
            if (kv->key && strcmp(kv->key, "service.name") == 0 && kv->value &&
                kv->value->value_case ==
                    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
                kv->value->string_value) {
                fp->root_service = kv->value->string_value;
                fp->root_service_len = strlen(fp->root_service);
                break;
            }
        }
    }
    fp->len = opentelemetry__proto__trace__v1__resource_spans__get_packed_size(&fp->msg);
    return true;
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/*
 * Pack rs's resource into the arena and find or add it in t; *index is its
 * entry, or -1 when it stays inline (no resource, or one that packs to nothing).
 * false on arena exhaustion (*fail_need says how much was asked for).
 */
static bool res_intern(res_table *t, const td_otlp_resource *r, td_arena *a, int32_t *index,
                       size_t *fail_need)
{
    *index = -1;
    if (!r) {
        return true;
    }
    size_t len = opentelemetry__proto__resource__v1__resource__get_packed_size(r);
    if (len == 0) {
        return true;
    }
    uint8_t *data = td_arena_alloc(a, len);
    if (!data) {
        *fail_need = len;
        return false;
    }
    opentelemetry__proto__resource__v1__resource__pack(r, data);
    res_plan p;
    td_hash128(data, len, p.hash);
    p.data = data;
    p.len = len;
    size_t mask = t->n_slots - 1;
    for (size_t j = load_le64(p.hash) & mask;; j = (j + 1) & mask) {
        int32_t k = t->slots[j];
        if (k < 0) {
            TD_ASSERT(t->n < t->n_slots / 2);
            t->res[t->n] = p;
            t->slots[j] = (int32_t)t->n;
            t->bytes += len;
            *index = (int32_t)t->n++;
            return true;
        }
        const res_plan *q = &t->res[k];
        if (q->len == len && memcmp(q->hash, p.hash, sizeof(p.hash)) == 0 &&
            memcmp(q->data, data, len) == 0) {
            *index = k; /* the arena copy just made is simply abandoned */
            return true;
        }
    }
}

/* Room for up to max distinct resources (0: nothing to allocate). */
static bool res_table_init(res_table *t, size_t max, td_arena *a, size_t *fail_need)
{
    memset(t, 0, sizeof(*t));
    if (max == 0) {
        return true;
    }
    size_t n_slots = 4;
    while (n_slots < 2 * max) {
        n_slots *= 2;
    }
    size_t res_sz = max * sizeof(*t->res), slots_sz = n_slots * sizeof(*t->slots);
    t->res = td_arena_alloc(a, res_sz);
    if (!t->res) {
        *fail_need = res_sz;
        return false;
    }
    t->slots = td_arena_alloc(a, slots_sz);
    if (!t->slots) {
        *fail_need = slots_sz;
        return false;
    }
    memset(t->slots, 0xff, slots_sz); /* all -1 */
    t->n_slots = n_slots;
    return true;
}

/* ---- index entries ---- */

/*
 * The distinct (scope, type, key, value) of the request: every attribute
 * occurrence is looked up here once, so de-duplication per fragment is a stamp
 * compare and the store groups entries by value id (td_batch.nvids) instead of
 * hashing strings per entry. Fixed-width values (int, float, bool, durclass)
 * are encoded into num; strings point into the decoded request.
 */
typedef struct idx_val {
    uint64_t h;
    uint8_t scope, type;
    bool inline_val; /* the value is num[0..val_len) */
    uint16_t key_len;
    uint32_t val_len;
    uint32_t stamp; /* frag + 1 of the last fragment given an entry of this value */
    const uint8_t *key;
    const uint8_t *val;
    uint8_t num[8];
    uint32_t key_str, val_str; /* their entries in the string table (str_table) */
} idx_val;

/* One entry: a fragment and a value id. */
typedef struct idx_plan {
    uint32_t frag, vid;
} idx_plan;

/*
 * The distinct byte strings of the index values (keys and values), each
 * copied into the batch once: keys repeat across values, and copying them per
 * value would grow the batch. Open addressing over strs indices (-1 empty),
 * n_slots a power of two at least twice the most strings there can be.
 */
typedef struct str_ent {
    const uint8_t *p;
    uint32_t len;
    uint32_t off; /* offset in the batch's index string area */
} str_ent;

typedef struct str_table {
    str_ent *strs;
    size_t n;
    int32_t *slots;
    size_t n_slots;
    size_t bytes;
} str_table;

/* Entries and values of the whole request, grown in arena chunks like the fragment plans. */
typedef struct idx_list {
    idx_plan *e;
    size_t n, cap;
    idx_val *v;
    size_t nv, vcap;
    uint32_t *slots; /* value id + 1, 0 = empty; nslots a power of two > 2 nv */
    size_t nslots;
    /* the values of the last resource seen (its fragments are consecutive) */
    const td_otlp_resource *res;
    uint32_t *res_vids;
    size_t res_n, res_cap;
    bool collect; /* idx_add collects into res_vids instead of adding entries */
    td_arena *a;
    size_t fail_need; /* set when an arena allocation failed */
} idx_list;

static const char *const status_kw[] = {"unset", "ok", "error"};
static const char *const kind_kw[] = {"unspecified", "internal", "server",
                                      "client",      "producer", "consumer"};

/* Grow an arena array *p of *cap elements of size sz (n used) by doubling. */
static bool arena_grow(idx_list *l, void **p, size_t *cap, size_t n, size_t sz)
{
    size_t ncap = *cap ? *cap * 2 : 64;
    size_t need;
    if (!td_size_mul(ncap, sz, &need)) {
        l->fail_need = SIZE_MAX;
        return false;
    }
    void *np = td_arena_alloc(l->a, need);
    if (!np) {
        l->fail_need = need;
        return false;
    }
    if (n) {
        memcpy(np, *p, n * sz);
    }
    *p = np;
    *cap = ncap;
    return true;
}

/* Give fragment frag an entry of value vid, unless it has one already. */
static bool idx_use(idx_list *l, uint32_t frag, uint32_t vid)
{
    idx_val *v = &l->v[vid];
    if (v->stamp == frag + 1) {
        return true;
    }
    v->stamp = frag + 1;
    if (l->n == l->cap && !arena_grow(l, (void **)&l->e, &l->cap, l->n, sizeof(*l->e))) {
        return false;
    }
    l->e[l->n++] = (idx_plan){frag, vid};
    return true;
}

static uint64_t str_hash(const uint8_t *p, size_t n);

/* Rehash the value index into twice the slots. */
static bool idx_rehash(idx_list *l)
{
    size_t ns = l->nslots ? l->nslots * 2 : 256;
    size_t need;
    if (!td_size_mul(ns, sizeof(*l->slots), &need)) {
        l->fail_need = SIZE_MAX;
        return false;
    }
    uint32_t *slots = td_arena_alloc(l->a, need);
    if (!slots) {
        l->fail_need = need;
        return false;
    }
    memset(slots, 0, need);
    for (size_t i = 0; i < l->nv; i++) {
        size_t j = l->v[i].h & (ns - 1);
        while (slots[j]) {
            j = (j + 1) & (ns - 1);
        }
        slots[j] = (uint32_t)i + 1;
    }
    l->slots = slots;
    l->nslots = ns;
    return true;
}

/*
 * Find or add the value (scope, type, key, val) and give fragment frag an
 * entry of it (or, while collecting a resource's values, note its id). val
 * points at num (copied) when inline_val.
 */
static bool idx_add(idx_list *l, uint32_t frag, uint8_t scope, uint8_t type, const uint8_t *key,
                    size_t klen, const uint8_t *val, size_t vlen, bool inline_val)
{
    uint64_t h = str_hash(key, klen) ^ ((uint64_t)scope << 40 | (uint64_t)type << 48);
    h = (h ^ str_hash(val, vlen)) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 32;
    if (2 * (l->nv + 1) > l->nslots && !idx_rehash(l)) {
        return false;
    }
    size_t j = h & (l->nslots - 1);
    uint32_t vid = UINT32_MAX;
    for (; l->slots[j]; j = (j + 1) & (l->nslots - 1)) {
        const idx_val *v = &l->v[l->slots[j] - 1];
        if (v->h == h && v->scope == scope && v->type == type && v->key_len == klen &&
            v->val_len == vlen && memcmp(v->key, key, klen) == 0 &&
            (vlen == 0 || memcmp(v->inline_val ? v->num : v->val, val, vlen) == 0)) {
            vid = l->slots[j] - 1;
            break;
        }
    }
    if (vid == UINT32_MAX) {
        if (l->nv >= INT32_MAX / 8) {
            l->fail_need = SIZE_MAX;
            return false;
        }
        if (l->nv == l->vcap && !arena_grow(l, (void **)&l->v, &l->vcap, l->nv, sizeof(*l->v))) {
            return false;
        }
        idx_val *v = &l->v[l->nv];
        *v = (idx_val){.h = h,
                       .scope = scope,
                       .type = type,
                       .inline_val = inline_val,
                       .key_len = (uint16_t)klen,
                       .val_len = (uint32_t)vlen,
                       .key = key,
                       .val = val};
        if (inline_val) {
            memcpy(v->num, val, vlen);
            v->val = NULL;
        }
        vid = (uint32_t)l->nv++;
        l->slots[j] = vid + 1;
    }
    if (l->collect) {
        if (l->res_n == l->res_cap &&
            !arena_grow(l, (void **)&l->res_vids, &l->res_cap, l->res_n, sizeof(*l->res_vids))) {
            return false;
        }
        l->res_vids[l->res_n++] = vid;
        return true;
    }
    return idx_use(l, frag, vid);
}

/* A string-valued entry; keys outside 1..255 bytes are not indexed (FORMAT.md). */
static bool idx_str(idx_list *l, uint32_t frag, uint8_t scope, uint8_t type, const char *key,
                    const char *val, size_t val_len)
{
    size_t klen = key ? strlen(key) : 0;
    if (klen == 0 || klen > 255 || val_len > UINT32_MAX) {
        return true;
    }
    return idx_add(l, frag, scope, type, (const uint8_t *)key, klen,
                   (const uint8_t *)(val ? val : ""), val_len, false);
}

/* A fixed-width entry with its encoded value bytes. */
static bool idx_num(idx_list *l, uint32_t frag, uint8_t scope, uint8_t type, const char *key,
                    const uint8_t *val, size_t val_len)
{
    size_t klen = key ? strlen(key) : 0;
    if (klen == 0 || klen > 255) {
        return true;
    }
    return idx_add(l, frag, scope, type, (const uint8_t *)key, klen, val, val_len, true);
}

/*
 * An attribute value: scalars as typed entries, arrays as one entry per scalar
 * element (a TraceQL comparison matches an array if any element does); kvlist,
 * bytes and nested arrays are not indexed. Encodings are store.h's td_idx_type.
 */
static bool idx_any(idx_list *l, uint32_t frag, uint8_t scope, const char *key,
                    const td_otlp_any *v, bool in_array)
{
    uint8_t b[8];
    if (!v) {
        return true;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        return idx_str(l, frag, scope, TD_IDX_STRING, key, v->string_value,
                       v->string_value ? strlen(v->string_value) : 0);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        td_idx_put_int(b, v->int_value);
        return idx_num(l, frag, scope, TD_IDX_INT, key, b, 8);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        td_idx_put_float(b, v->double_value);
        return idx_num(l, frag, scope, TD_IDX_FLOAT, key, b, 8);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        b[0] = v->bool_value ? 1 : 0;
        return idx_num(l, frag, scope, TD_IDX_BOOL, key, b, 1);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        if (in_array || !v->array_value) {
            return true;
        }
        for (size_t i = 0; i < v->array_value->n_values; i++) {
            if (!idx_any(l, frag, scope, key, v->array_value->values[i], true)) {
                return false;
            }
        }
        return true;
    default:
        return true;
    }
}

static bool idx_kvs(idx_list *l, uint32_t frag, uint8_t scope, td_otlp_kv *const *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (kvs[i] && !idx_any(l, frag, scope, kvs[i]->key, kvs[i]->value, false)) {
            return false;
        }
    }
    return true;
}

/*
 * The n < 8 bytes at p as a little-endian word, the value memcpy gave on the
 * little-endian hosts we run on, without a variable-length memcpy call (in the
 * profile that call cost a third of the entry lookup): two overlapping loads,
 * whose shared bytes are equal, so OR-ing them is exact.
 */
static inline uint64_t load_tail(const uint8_t *p, size_t n)
{
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return (uint64_t)lo | (uint64_t)hi << (8 * (n - 4));
    }
    if (n == 0) {
        return 0;
    }
    return (uint64_t)p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) |
           (uint64_t)p[n - 1] << (8 * (n - 1));
}

/* A cheap 64-bit hash, 8 bytes per step (strings here are short). */
static uint64_t str_hash(const uint8_t *p, size_t n)
{
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    uint64_t h = (uint64_t)n * m;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * m;
        h ^= h >> 29;
    }
    uint64_t w = load_tail(p + i, n - i);
    h = (h ^ w) * m;
    return h ^ (h >> 32);
}

/*
 * Plan the index entries of fragment frag (fp), each distinct value once (the
 * value's stamp). The resource's values are looked up once per resource, not
 * per fragment. The duration class uses the evaluator's span
 * duration (end - start, 0 when end is earlier). Root intrinsics are indexed
 * for every parentless span of the fragment and every service.name string of its
 * resource: the trace's root is chosen across all of its fragments, and a
 * superset of entries keeps lookups exact.
 */
static bool idx_fragment(idx_list *l, const frag_plan *fp, uint32_t frag)
{
    const td_otlp_resource *r = fp->resource;
    if (r != l->res) {
        /* a new resource: its values once, for all of its fragments */
        l->res = NULL;
        l->res_n = 0;
        l->collect = true;
        bool ok = !r || idx_kvs(l, frag, TD_IDX_RESOURCE, r->attributes, r->n_attributes);
        l->collect = false;
        if (!ok) {
            return false;
        }
        l->res = r;
    }
    for (size_t i = 0; i < l->res_n; i++) {
        if (!idx_use(l, frag, l->res_vids[i])) {
            return false;
        }
    }
    bool has_root = false;
    for (size_t k = 0; k < fp->msg.n_scope_spans; k++) {
        const td_otlp_scope_spans *ss = fp->msg.scope_spans[k];
        if (ss->scope &&
            !idx_kvs(l, frag, TD_IDX_SCOPE, ss->scope->attributes, ss->scope->n_attributes)) {
            return false;
        }
        for (size_t j = 0; j < ss->n_spans; j++) {
            const td_otlp_span *sp = ss->spans[j];
            if (!idx_kvs(l, frag, TD_IDX_SPAN, sp->attributes, sp->n_attributes)) {
                return false;
            }
            for (size_t x = 0; x < sp->n_events; x++) {
                if (!idx_kvs(l, frag, TD_IDX_EVENT, sp->events[x]->attributes,
                             sp->events[x]->n_attributes)) {
                    return false;
                }
            }
            for (size_t x = 0; x < sp->n_links; x++) {
                if (!idx_kvs(l, frag, TD_IDX_LINK, sp->links[x]->attributes,
                             sp->links[x]->n_attributes)) {
                    return false;
                }
            }
            const char *name = sp->name ? sp->name : "";
            if (!idx_str(l, frag, TD_IDX_INTRINSIC, TD_IDX_STRING, "name", name, strlen(name))) {
                return false;
            }
            uint32_t code = sp->status ? (uint32_t)sp->status->code : 0;
            if (code < 3 && !idx_str(l, frag, TD_IDX_INTRINSIC, TD_IDX_KEYWORD, "status",
                                     status_kw[code], strlen(status_kw[code]))) {
                return false;
            }
            uint32_t kind = (uint32_t)sp->kind;
            if (kind < 6 && !idx_str(l, frag, TD_IDX_INTRINSIC, TD_IDX_KEYWORD, "kind",
                                     kind_kw[kind], strlen(kind_kw[kind]))) {
                return false;
            }
            const char *msg = sp->status ? sp->status->message : NULL;
            if (msg && *msg &&
                !idx_str(l, frag, TD_IDX_INTRINSIC, TD_IDX_STRING, "statusMessage", msg,
                         strlen(msg))) {
                return false;
            }
            uint64_t d = sp->end_time_unix_nano >= sp->start_time_unix_nano
                             ? sp->end_time_unix_nano - sp->start_time_unix_nano
                             : 0;
            uint8_t dc = td_idx_durclass(d);
            if (!idx_num(l, frag, TD_IDX_INTRINSIC, TD_IDX_DURCLASS, "duration", &dc, 1)) {
                return false;
            }
            if (sp->parent_span_id.len == 0) {
                has_root = true;
                if (!idx_str(l, frag, TD_IDX_INTRINSIC, TD_IDX_STRING, "rootName", name,
                             strlen(name))) {
                    return false;
                }
            }
        }
    }
    for (size_t i = 0; has_root && r && i < r->n_attributes; i++) {
        const td_otlp_kv *kv = r->attributes[i];
        if (kv && kv->key && strcmp(kv->key, "service.name") == 0 && kv->value &&
            kv->value->value_case ==
                OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
            const char *v = kv->value->string_value ? kv->value->string_value : "";
            if (!idx_str(l, frag, TD_IDX_INTRINSIC, TD_IDX_STRING, "rootServiceName", v,
                         strlen(v))) {
                return false;
            }
        }
    }
    return true;
}

static uint32_t str_intern(str_table *t, const uint8_t *p, size_t len)
{
    size_t mask = t->n_slots - 1;
    for (size_t j = str_hash(p, len) & mask;; j = (j + 1) & mask) {
        int32_t k = t->slots[j];
        if (k < 0) {
            TD_ASSERT(t->n < t->n_slots / 2);
            t->strs[t->n] = (str_ent){p, (uint32_t)len, (uint32_t)t->bytes};
            t->bytes += len;
            t->slots[j] = (int32_t)t->n;
            return (uint32_t)t->n++;
        }
        const str_ent *q = &t->strs[k];
        if (q->len == len && (len == 0 || memcmp(q->p, p, len) == 0)) {
            return (uint32_t)k;
        }
    }
}

/*
 * Intern every entry's key and value. false on arena exhaustion (*fail_need)
 * or when the strings could not be addressed with 32-bit offsets (SIZE_MAX).
 */
static bool str_table_build(str_table *t, idx_list *l, td_arena *a, size_t *fail_need)
{
    memset(t, 0, sizeof(*t));
    if (l->nv == 0) {
        return true;
    }
    size_t max = 2 * l->nv, n_slots = 4;
    while (n_slots < 2 * max) {
        n_slots *= 2;
    }
    t->strs = td_arena_alloc(a, max * sizeof(*t->strs));
    t->slots = t->strs ? td_arena_alloc(a, n_slots * sizeof(*t->slots)) : NULL;
    if (!t->slots) {
        *fail_need = n_slots * sizeof(*t->slots) + max * sizeof(*t->strs);
        return false;
    }
    memset(t->slots, 0xff, n_slots * sizeof(*t->slots));
    t->n_slots = n_slots;
    for (size_t i = 0; i < l->nv; i++) {
        idx_val *e = &l->v[i];
        e->key_str = str_intern(t, e->key, e->key_len);
        e->val_str = str_intern(t, e->inline_val ? e->num : e->val, e->val_len);
        if (t->bytes > UINT32_MAX) {
            *fail_need = SIZE_MAX;
            return false;
        }
    }
    return true;
}

static void set_rejected_message(td_ingest_result *res)
{
    snprintf(res->message, sizeof(res->message),
             "%llu span%s rejected: invalid trace_id or span_id",
             (unsigned long long)res->rejected_spans, res->rejected_spans == 1 ? "" : "s");
}

td_status td_batch_build(const td_otlp_request *req, const char *tenant, td_arena *a,
                         td_batch **out, td_ingest_result *res, td_err *err)
{
    td_ingest_result scratch;
    if (!res) {
        res = &scratch;
    }
    memset(res, 0, sizeof(*res));
    *out = NULL;

    /*
     * Pass 1: count spans to size the reference array, overflow-checked, and the
     * resources with spans to size the resource table (each such ResourceSpans
     * took far more arena memory to decode than its table entry takes).
     */
    size_t max_spans = 0, max_res = 0;
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const td_otlp_resource_spans *rs = req->resource_spans[r];
        size_t nscopes = rs->n_scope_spans + rs->n_instrumentation_library_spans;
        size_t n = 0;
        for (size_t i = 0; i < nscopes; i++) {
            n += scope_at(rs, i)->n_spans;
        }
        if (n > max_spans) {
            max_spans = n;
        }
        max_res += n > 0 && rs->resource;
    }
    if (max_spans > UINT32_MAX) {
        return td_err_set(err, TD_TOO_LARGE, "too many spans in one resource");
    }
    if (max_res > INT32_MAX / 4) {
        return td_err_set(err, TD_TOO_LARGE, "too many resources in one request");
    }
    res_table rt;
    size_t rt_need;
    if (!res_table_init(&rt, max_res, a, &rt_need)) {
        return arena_fail(a, rt_need, err);
    }

    /*
     * Pass 2: per ResourceSpans, validate, sort and plan fragments. The plan array
     * grows in arena chunks (its final size is unknown until all groups are seen).
     */
    span_ref *refs = NULL;
    if (max_spans) {
        size_t need;
        if (!td_size_mul(max_spans, sizeof(*refs), &need)) {
            return td_err_set(err, TD_TOO_LARGE, "too many spans in one resource");
        }
        refs = td_arena_alloc(a, need);
        if (!refs) {
            return arena_fail(a, need, err);
        }
    }
    frag_plan *plans = NULL;
    size_t nplans = 0, cap_plans = 0;
    idx_list il = {.a = a};
    size_t total = 0;
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const td_otlp_resource_spans *rs = req->resource_spans[r];
        size_t nscopes = rs->n_scope_spans + rs->n_instrumentation_library_spans;
        size_t nrefs = 0;
        uint32_t seq = 0;
        for (size_t i = 0; i < nscopes; i++) {
            const td_otlp_scope_spans *ss = scope_at(rs, i);
            for (size_t j = 0; j < ss->n_spans; j++) {
                td_otlp_span *s = ss->spans[j];
                if (!span_ids_valid(s)) {
                    res->rejected_spans++;
                    continue;
                }
                span_ref *ref = &refs[nrefs++];
                ref->hi = load_be64(s->trace_id.data);
                ref->lo = load_be64(s->trace_id.data + 8);
                ref->seq = seq++;
                ref->scope = (uint32_t)i;
                ref->span = s;
            }
        }
        if (nrefs == 0) {
            continue;
        }
        res->accepted_spans += nrefs;
        qsort(refs, nrefs, sizeof(*refs), cmp_ref);
        int32_t res_index;
        size_t res_need;
        if (!res_intern(&rt, rs->resource, a, &res_index, &res_need)) {
            return arena_fail(a, res_need, err);
        }

        for (size_t i = 0; i < nrefs;) {
            size_t j = i + 1;
            while (j < nrefs && refs[j].hi == refs[i].hi && refs[j].lo == refs[i].lo) {
                j++;
            }
            if (nplans == cap_plans) {
                /* Double; the old array stays in the arena (small: one entry per trace). */
                size_t ncap = cap_plans ? cap_plans * 2 : 16;
                frag_plan *np = td_arena_alloc(a, ncap * sizeof(*np));
                if (!np) {
                    return arena_fail(a, ncap * sizeof(*np), err);
                }
                if (nplans) {
                    /* Nothing points into a plan, so moving them is fine. */
                    memcpy(np, plans, nplans * sizeof(*np));
                }
                plans = np;
                cap_plans = ncap;
            }
            frag_plan *fp = &plans[nplans];
            size_t fail_need;
            if (!plan_fragment(rs, res_index, refs + i, j - i, a, fp, &fail_need)) {
                return arena_fail(a, fail_need, err);
            }
            if (fp->len > UINT32_MAX || !td_size_add(total, fp->len, &total) ||
                !td_size_add(total, fp->root_service_len, &total) ||
                !td_size_add(total, fp->root_name_len, &total) ||
                fp->root_service_len > UINT32_MAX || fp->root_name_len > UINT32_MAX) {
                return td_err_set(err, TD_TOO_LARGE, "span batch too large");
            }
            if (nplans >= UINT32_MAX) {
                return td_err_set(err, TD_TOO_LARGE, "span batch too large");
            }
            if (!idx_fragment(&il, fp, (uint32_t)nplans)) {
                if (il.fail_need == SIZE_MAX) {
                    return td_err_set(err, TD_TOO_LARGE, "span batch too large");
                }
                return arena_fail(a, il.fail_need, err);
            }
            nplans++;
            i = j;
        }
    }
    if (res->rejected_spans) {
        set_rejected_message(res);
    }
    if (nplans == 0) {
        return TD_OK;
    }
    str_table stt;
    size_t st_need;
    if (!str_table_build(&stt, &il, a, &st_need)) {
        if (st_need == SIZE_MAX) {
            return td_err_set(err, TD_TOO_LARGE, "span batch too large");
        }
        return arena_fail(a, st_need, err);
    }

    /*
     * Queue accounting: data (fragments, resources, root strings, index keys and
     * values) + per-fragment, per-resource and per-entry overhead + the header,
     * all checked.
     */
    size_t frag_bytes, res_bytes, idx_bytes, data_bytes, qbytes;
    if (rt.bytes > UINT32_MAX || !td_size_add(total, rt.bytes, &data_bytes) ||
        !td_size_add(data_bytes, stt.bytes, &data_bytes) ||
        !td_size_mul(nplans, sizeof(td_frag), &frag_bytes) ||
        !td_size_mul(rt.n, sizeof(td_res), &res_bytes) ||
        !td_size_mul(il.n, sizeof(td_idx_entry), &idx_bytes) ||
        !td_size_add(data_bytes, frag_bytes, &qbytes) || !td_size_add(qbytes, res_bytes, &qbytes) ||
        !td_size_add(qbytes, idx_bytes, &qbytes) ||
        !td_size_add(qbytes, sizeof(td_batch), &qbytes)) {
        return td_err_set(err, TD_TOO_LARGE, "span batch too large");
    }
    td_batch *b = td_batch_new_idx(tenant, nplans, rt.n, il.n, data_bytes);
    if (!b) {
        return td_err_set(err, TD_NOMEM, "out of memory allocating a span batch of %zu bytes",
                          qbytes);
    }

    uint8_t *p = b->data;
    for (size_t i = 0; i < nplans; i++) {
        frag_plan *fp = &plans[i];
        td_frag *f = &b->frags[i];
        size_t n = opentelemetry__proto__trace__v1__resource_spans__pack(&fp->msg, p);
        TD_ASSERT(n == fp->len);
        memcpy(f->trace_id, fp->trace_id, 16);
        f->start_ns = fp->start_ns;
        f->end_ns = fp->end_ns;
        f->nspans = fp->nspans;
        f->len = (uint32_t)n;
        f->data = p;
        f->res_index = fp->res_index;
        p += n;
    }
    for (size_t i = 0; i < rt.n; i++) {
        td_res *r = &b->res[i];
        memcpy(r->hash, rt.res[i].hash, sizeof(r->hash));
        memcpy(p, rt.res[i].data, rt.res[i].len);
        r->len = (uint32_t)rt.res[i].len;
        r->data = p;
        p += rt.res[i].len;
    }
    /* root strings last, after fragments and resources (counted in total above) */
    for (size_t i = 0; i < nplans; i++) {
        frag_plan *fp = &plans[i];
        td_frag *f = &b->frags[i];
        f->nerrors = fp->nerrors;
        f->has_root = fp->root != NULL;
        if (!fp->root) {
            continue;
        }
        f->root_service = p;
        f->root_service_len = (uint32_t)fp->root_service_len;
        if (fp->root_service_len) {
            memcpy(p, fp->root_service, fp->root_service_len);
        }
        p += fp->root_service_len;
        f->root_name = p;
        f->root_name_len = (uint32_t)fp->root_name_len;
        if (fp->root_name_len) {
            memcpy(p, fp->root->name, fp->root_name_len);
        }
        p += fp->root_name_len;
    }
    /* the index strings last, each once; entries point at them */
    for (size_t i = 0; i < stt.n; i++) {
        if (stt.strs[i].len) {
            memcpy(p + stt.strs[i].off, stt.strs[i].p, stt.strs[i].len);
        }
    }
    for (size_t i = 0; i < il.n; i++) {
        const idx_val *v = &il.v[il.e[i].vid];
        td_idx_entry *x = &b->idx[i];
        x->frag = il.e[i].frag;
        x->vid = il.e[i].vid;
        x->scope = v->scope;
        x->type = v->type;
        x->key_len = v->key_len;
        x->val_len = v->val_len;
        x->key = p + stt.strs[v->key_str].off;
        x->val = p + stt.strs[v->val_str].off;
    }
    b->nvids = il.nv;
    TD_ASSERT((size_t)(p - b->data) + stt.bytes == data_bytes);
    b->q.spans = (size_t)res->accepted_spans;
    b->q.bytes = qbytes;
    *out = b;
    return TD_OK;
}
