/*
 * otlp_decode.c - OTLP ExportTraceServiceRequest (= TracesData) from protobuf bytes.
 *
 * protobuf-c does the unpacking, allocating from the request arena. Around it:
 *
 *  - a pre-scan bounds message nesting before protobuf-c recurses (it has no
 *    depth limit of its own, and a few bytes per level would otherwise let a
 *    client overflow the decoding thread's stack with nested AnyValues);
 *  - a wrapping allocator notices whether an allocation failed, because
 *    protobuf-c returns NULL both for malformed input and for out-of-memory, and
 *    the client must get 400 for the first and 413/503 for the second;
 *  - a post-pass folds the pre-1.0 instrumentation_library_spans (field 1000)
 *    into scope_spans and blanks profiles-only string_value_strindex values.
 *
 * Pure: no I/O and no globals besides the throttled warning (log sink).
 */
#include "collector/collector.h"
#include "core/log.h"
#include "core/mem.h"

#include <string.h>

/*
 * Deepest message nesting accepted. The request is level 0, a span attribute's
 * AnyValue level 5 (an event's or link's level 6), and each further AnyValue
 * costs two levels through an array (AnyValue, ArrayValue) or three through a
 * kvlist (AnyValue, KeyValueList, KeyValue). 200 admits the 64 nested AnyValues
 * the JSON decoder allows in either form. protobuf-c recurses once per level
 * with about 1 KiB of stack, so this stays far below any thread's stack.
 */
#define MAX_PB_DEPTH 200
/* AnyValue nesting walked by the strindex post-pass; the pre-scan bounds it. */
#define MAX_ANY_DEPTH MAX_PB_DEPTH

typedef enum { SCAN_OK, SCAN_DEEP, SCAN_BAD } scan_result;

/* Read a base-128 varint; false when truncated or longer than 10 bytes. */
static bool read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70 && p < end; shift += 7) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return true;
        }
    }
    return false;
}

/*
 * Walk the wire format of one message of type d at nesting level depth, and
 * descend into its message-typed fields. A sub-message of n bytes can hold at
 * most n/2 further levels (each level costs at least a tag and a length byte),
 * so small sub-messages are skipped without being scanned: in practice only the
 * request, resource spans, scope spans and spans themselves are walked, tag by
 * tag, and every byte is looked at by at most one level. Recursion is bounded
 * by MAX_PB_DEPTH.
 */
static scan_result scan_depth(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                              unsigned depth)
{
    const uint8_t *end = p + len;
    while (p < end) {
        uint64_t tag, n;
        if (!read_varint(&p, end, &tag)) {
            return SCAN_BAD;
        }
        switch (tag & 7) {
        case 0: /* varint */
            if (!read_varint(&p, end, &n)) {
                return SCAN_BAD;
            }
            break;
        case 1: /* 64-bit */
            if (end - p < 8) {
                return SCAN_BAD;
            }
            p += 8;
            break;
        case 5: /* 32-bit */
            if (end - p < 4) {
                return SCAN_BAD;
            }
            p += 4;
            break;
        case 2: { /* length-delimited */
            if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p)) {
                return SCAN_BAD;
            }
            uint64_t field = tag >> 3;
            const ProtobufCFieldDescriptor *f =
                field <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)field)
                                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth + 1 + n / 2 > MAX_PB_DEPTH) {
                if (depth + 1 > MAX_PB_DEPTH) {
                    return SCAN_DEEP;
                }
                scan_result r = scan_depth(f->descriptor, p, (size_t)n, depth + 1);
                if (r != SCAN_OK) {
                    return r;
                }
            }
            p += n;
            break;
        }
        default: /* groups (3, 4) and invalid wire types: protobuf-c refuses them too */
            return SCAN_BAD;
        }
    }
    return SCAN_OK;
}

/* The arena allocator, plus a note of whether (and for how much) it failed. */
typedef struct watch_alloc {
    ProtobufCAllocator inner;
    td_arena *arena;
    bool failed;
    size_t failed_size;
} watch_alloc;

static void *watch_alloc_fn(void *ud, size_t n)
{
    watch_alloc *w = ud;
    void *p = w->inner.alloc(w->inner.allocator_data, n);
    if (!p) {
        w->failed = true;
        w->failed_size = n;
    }
    return p;
}

static void watch_free_fn(void *ud, void *p)
{
    watch_alloc *w = ud;
    w->inner.free(w->inner.allocator_data, p);
}

/*
 * An arena allocation of need bytes failed: TD_TOO_LARGE when it would have
 * crossed the arena's limit (the request is too big to decode), else TD_NOMEM.
 * Mirrors td_arena_alloc's chunk rule; the margin covers the chunk header.
 */
static td_status alloc_failure(td_arena *a, size_t need, td_err *err)
{
    size_t size = need > a->chunk_sz / 4 ? need : a->chunk_sz;
    size_t want;
    if (a->limit && (!td_size_add(a->used, size, &want) || want + 256 > a->limit)) {
        return td_err_set(err, TD_TOO_LARGE,
                          "request needs more than %zu bytes of memory to decode", a->limit);
    }
    return td_err_set(err, TD_NOMEM, "out of memory decoding the request");
}

/* Blank string_value_strindex values (profiles-only) below v; count them. */
static size_t blank_strindex_any(td_otlp_any *v, unsigned depth);

static size_t blank_strindex_kvs(td_otlp_kv **kvs, size_t n, unsigned depth)
{
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        if (kvs[i] && kvs[i]->value) {
            hits += blank_strindex_any(kvs[i]->value, depth + 1);
        }
    }
    return hits;
}

static size_t blank_strindex_any(td_otlp_any *v, unsigned depth)
{
    size_t hits = 0;
    if (depth > MAX_ANY_DEPTH) {
        return 0; /* unreachable after the pre-scan; keeps the recursion bounded anyway */
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET;
        v->string_value_strindex = 0;
        return 1;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        if (v->array_value) {
            for (size_t i = 0; i < v->array_value->n_values; i++) {
                if (v->array_value->values[i]) {
                    hits += blank_strindex_any(v->array_value->values[i], depth + 1);
                }
            }
        }
        return hits;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        if (v->kvlist_value) {
            hits += blank_strindex_kvs(v->kvlist_value->values, v->kvlist_value->n_values, depth);
        }
        return hits;
    default:
        return 0;
    }
}

static size_t blank_strindex_span(td_otlp_span *s)
{
    size_t hits = blank_strindex_kvs(s->attributes, s->n_attributes, 0);
    for (size_t i = 0; i < s->n_events; i++) {
        hits += blank_strindex_kvs(s->events[i]->attributes, s->events[i]->n_attributes, 0);
    }
    for (size_t i = 0; i < s->n_links; i++) {
        hits += blank_strindex_kvs(s->links[i]->attributes, s->links[i]->n_attributes, 0);
    }
    return hits;
}

static size_t blank_strindex_scopes(td_otlp_scope_spans **ss, size_t n)
{
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        if (ss[i]->scope) {
            hits += blank_strindex_kvs(ss[i]->scope->attributes, ss[i]->scope->n_attributes, 0);
        }
        for (size_t j = 0; j < ss[i]->n_spans; j++) {
            hits += blank_strindex_span(ss[i]->spans[j]);
        }
    }
    return hits;
}

/*
 * Append instrumentation_library_spans (same layout, pre-1.0 SDKs) to scope_spans
 * so nothing downstream needs to know about field 1000.
 */
static td_status fold_ils(td_otlp_resource_spans *rs, td_arena *a, td_err *err)
{
    size_t n, bytes;
    if (!td_size_add(rs->n_scope_spans, rs->n_instrumentation_library_spans, &n) ||
        !td_size_mul(n, sizeof(*rs->scope_spans), &bytes)) {
        return td_err_set(err, TD_TOO_LARGE, "too many scope spans");
    }
    td_otlp_scope_spans **all = td_arena_alloc(a, bytes);
    if (!all) {
        return alloc_failure(a, bytes, err);
    }
    if (rs->n_scope_spans) {
        memcpy(all, rs->scope_spans, rs->n_scope_spans * sizeof(*all));
    }
    memcpy(all + rs->n_scope_spans, rs->instrumentation_library_spans,
           rs->n_instrumentation_library_spans * sizeof(*all));
    rs->scope_spans = all;
    rs->n_scope_spans = n;
    rs->instrumentation_library_spans = NULL;
    rs->n_instrumentation_library_spans = 0;
    return TD_OK;
}

td_status td_otlp_decode_pb(const uint8_t *data, size_t len, td_arena *a, td_otlp_request **req_out,
                            td_err *err)
{
    const ProtobufCMessageDescriptor *desc =
        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
    static const uint8_t empty[1];

    *req_out = NULL;
    if (!data) {
        data = empty; /* an empty body is a valid, empty request */
        len = 0;
    }
    switch (scan_depth(desc, data, len, 0)) {
    case SCAN_OK:
        break;
    case SCAN_DEEP:
        return td_err_set(err, TD_INVALID,
                          "request body is not a valid OTLP ExportTraceServiceRequest (protobuf): "
                          "messages nested deeper than %d levels",
                          MAX_PB_DEPTH);
    case SCAN_BAD:
        return td_err_set(err, TD_INVALID,
                          "request body is not a valid OTLP ExportTraceServiceRequest (protobuf)");
    }

    watch_alloc w = {.arena = a};
    td_proto_allocator_init(&w.inner, a);
    ProtobufCAllocator pa = {.alloc = watch_alloc_fn, .free = watch_free_fn, .allocator_data = &w};
    td_otlp_request *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(&pa, len,
                                                                                         data);
    if (!req) {
        if (w.failed) {
            return alloc_failure(a, w.failed_size, err);
        }
        return td_err_set(err, TD_INVALID,
                          "request body is not a valid OTLP ExportTraceServiceRequest (protobuf)");
    }

    size_t strindex = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        td_otlp_resource_spans *rs = req->resource_spans[i];
        if (rs->n_instrumentation_library_spans) {
            td_status st = fold_ils(rs, a, err);
            if (st != TD_OK) {
                return st;
            }
        }
        if (rs->resource) {
            strindex += blank_strindex_kvs(rs->resource->attributes, rs->resource->n_attributes, 0);
        }
        strindex += blank_strindex_scopes(rs->scope_spans, rs->n_scope_spans);
    }
    if (strindex) {
        TD_LOG_THROTTLED(TD_LOG_WARN, "collector",
                         "OTLP trace request used string_value_strindex (profiles-only) in %zu "
                         "attribute value(s); treated as empty",
                         strindex);
    }
    *req_out = req;
    return TD_OK;
}
