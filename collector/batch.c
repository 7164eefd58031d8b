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
 * The fragment messages are built in the request arena and point at the decoded
 * spans (nothing is copied before packing); they are packed straight into the
 * batch, the one copy that outlives the request (STYLE rule 5).
 */
#include "collector/collector.h"
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
    size_t len;
} frag_plan;

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
static bool plan_fragment(const td_otlp_resource_spans *rs, const span_ref *refs, size_t n,
                          td_arena *a, frag_plan *fp, size_t *fail_need)
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
    fp->msg.resource = rs->resource;
    fp->msg.schema_url = rs->schema_url;
    fp->msg.n_scope_spans = nscopes;
    fp->msg.scope_spans = sp;
    fp->trace_id = refs[0].span->trace_id.data;
    fp->start_ns = UINT64_MAX;
    fp->end_ns = 0;
    fp->nspans = (uint32_t)n;

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
    }
    fp->len = opentelemetry__proto__trace__v1__resource_spans__get_packed_size(&fp->msg);
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

    /* Pass 1: count spans to size the reference array, overflow-checked. */
    size_t max_spans = 0;
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
    }
    if (max_spans > UINT32_MAX) {
        return td_err_set(err, TD_TOO_LARGE, "too many spans in one resource");
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
            if (!plan_fragment(rs, refs + i, j - i, a, fp, &fail_need)) {
                return arena_fail(a, fail_need, err);
            }
            if (fp->len > UINT32_MAX || !td_size_add(total, fp->len, &total)) {
                return td_err_set(err, TD_TOO_LARGE, "span batch too large");
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

    /* Queue accounting: data + per-fragment overhead + the header, all checked. */
    size_t frag_bytes, qbytes;
    if (!td_size_mul(nplans, sizeof(td_frag), &frag_bytes) ||
        !td_size_add(total, frag_bytes, &qbytes) ||
        !td_size_add(qbytes, sizeof(td_batch), &qbytes)) {
        return td_err_set(err, TD_TOO_LARGE, "span batch too large");
    }
    td_batch *b = td_batch_new(tenant, nplans, total);
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
        p += n;
    }
    b->q.spans = (size_t)res->accepted_spans;
    b->q.bytes = qbytes;
    *out = b;
    return TD_OK;
}
