/*
 * otlp_json.c - OTLP/JSON ExportTraceServiceRequest into the same protobuf-c
 * structs the protobuf decoder produces (API-CONTRACT 2.5).
 *
 * jansson parses the body into a temporary tree; every message, array and string
 * that survives is copied into the request arena, then the tree is dropped, so
 * the result has exactly the lifetime of a protobuf-decoded request.
 *
 * Leniency follows the OpenTelemetry Collector's decoder: lowerCamel and
 * snake_case keys, enum names or numbers, 64-bit integers as strings or numbers,
 * unknown keys ignored, null = absent. Strictness is where a wrong value would
 * silently corrupt data: IDs must be well-formed hex of the exact length, integers
 * must be in range and are never routed through a double, and a value of the
 * wrong JSON type is an error naming its full key path, e.g.
 * "resourceSpans[0].scopeSpans[1].spans[3].startTimeUnixNano: expected an integer".
 *
 * Pure: no I/O and no globals.
 */
#include "collector/collector.h"
#include "core/mem.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deepest AnyValue nesting accepted (an attribute's value is depth 1). */
#define MAX_ANY_DEPTH 64
/* Path frames: a dozen above the attributes, at most four per AnyValue level. */
#define MAX_FRAMES (16 + 4 * MAX_ANY_DEPTH)
/* Longest key path quoted in an error message; longer ones lose their middle. */
#define MAX_PATH_SHOWN 180

/* One step of the key path to the value being decoded: a key or an index. */
typedef struct frame {
    const char *key; /* NULL for an array index */
    size_t idx;
} frame;

typedef struct jctx {
    td_arena *a;
    td_err *err;
    unsigned nframes;
    frame path[MAX_FRAMES];
} jctx;

/* Path bookkeeping is two stores per step; the text is only built on error. */
static void push_key(jctx *c, const char *key)
{
    if (c->nframes < MAX_FRAMES) {
        c->path[c->nframes].key = key;
    }
    c->nframes++;
}

static void push_idx(jctx *c, size_t i)
{
    if (c->nframes < MAX_FRAMES) {
        c->path[c->nframes].key = NULL;
        c->path[c->nframes].idx = i;
    }
    c->nframes++;
}

static void pop(jctx *c)
{
    c->nframes--;
}

static void render_path(const jctx *c, char *out, size_t cap)
{
    size_t len = 0;
    unsigned n = c->nframes < MAX_FRAMES ? c->nframes : MAX_FRAMES;
    out[0] = '\0';
    for (unsigned i = 0; i < n && len + 1 < cap; i++) {
        int w;
        if (c->path[i].key) {
            w = snprintf(out + len, cap - len, "%s%s", i ? "." : "", c->path[i].key);
        } else {
            w = snprintf(out + len, cap - len, "[%zu]", c->path[i].idx);
        }
        if (w < 0) {
            break;
        }
        len += (size_t)w < cap - len ? (size_t)w : cap - len - 1;
    }
    if (len > MAX_PATH_SHOWN) {
        /* keep the head (which resource/span) and the tail (which key), cut at steps */
        size_t head = 60, from = len - (MAX_PATH_SHOWN - head - 5);
        while (head > 0 && out[head] != '.' && out[head] != '[') {
            head--;
        }
        while (out[from] && out[from] != '.' && out[from] != '[') {
            from++;
        }
        memcpy(out + head, " ... ", 5);
        memmove(out + head + 5, out + from, len - from + 1);
    }
}

/* TD_INVALID "<path>: <what>". Returns TD_INVALID. */
static td_status fail(jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static td_status fail(jctx *c, const char *fmt, ...)
{
    char path[2048], what[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    render_path(c, path, sizeof(path));
    if (!path[0]) {
        return td_err_set(c->err, TD_INVALID, "JSON request: %s", what);
    }
    return td_err_set(c->err, TD_INVALID, "%s: %s", path, what);
}

/*
 * An arena allocation of need bytes failed: TD_TOO_LARGE when it would have
 * crossed the arena's limit, else TD_NOMEM. Mirrors td_arena_alloc's chunk rule.
 */
static td_status oom(jctx *c, size_t need)
{
    td_arena *a = c->a;
    size_t size = need > a->chunk_sz / 4 ? need : a->chunk_sz;
    size_t want;
    if (a->limit && (!td_size_add(a->used, size, &want) || want + 256 > a->limit)) {
        return td_err_set(c->err, TD_TOO_LARGE,
                          "request needs more than %zu bytes of memory to decode", a->limit);
    }
    return td_err_set(c->err, TD_NOMEM, "out of memory decoding the request");
}

/* ---- keys ---- */

/* A known key: its lowerCamel spelling and, when different, its snake_case one. */
typedef struct key_name {
    const char *camel;
    const char *snake;
} key_name;

/* Index of key in names[0..n), or -1 for an unknown key (ignored). */
static int key_index(const char *key, const key_name *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (key[0] == names[i].camel[0] && strcmp(key, names[i].camel) == 0) {
            return i;
        }
        if (names[i].snake && key[0] == names[i].snake[0] && strcmp(key, names[i].snake) == 0) {
            return i;
        }
    }
    return -1;
}

#define NKEYS(t) ((int)(sizeof(t) / sizeof((t)[0])))

/* ---- scalar values ---- */

static const char *type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static td_status get_string(jctx *c, const json_t *j, char **out)
{
    if (!json_is_string(j)) {
        return fail(c, "expected a string, got %s", type_name(j));
    }
    size_t n = json_string_length(j);
    char *s = td_arena_strndup(c->a, json_string_value(j), n);
    if (!s) {
        return oom(c, n + 1);
    }
    *out = s;
    return TD_OK;
}

/* Decimal digits with an optional '-' (when neg_ok) into magnitude and sign. */
static bool parse_decimal(const char *s, size_t n, bool neg_ok, uint64_t *mag, bool *neg)
{
    size_t i = 0;
    *neg = false;
    if (n > 0 && s[0] == '-' && neg_ok) {
        *neg = true;
        i = 1;
    }
    if (i == n) {
        return false;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *mag = v;
    return true;
}

/*
 * A JSON integer, an integral JSON real, or a decimal string, into [min, max]
 * (as a signed 64-bit range) or [0, umax] for unsigned targets. Integers written
 * as integers or strings are exact; only a value the client itself wrote as a
 * real goes through a double.
 */
static td_status get_int(jctx *c, const json_t *j, bool is_signed, uint64_t umax, int64_t smin,
                         int64_t smax, const char *what, uint64_t *out)
{
    uint64_t mag = 0;
    bool neg = false;
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        neg = v < 0;
        mag = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    } else if (json_is_real(j)) {
        double d = json_real_value(j);
        if (!(d == floor(d)) || !(d > -9223372036854775808.0 && d < 18446744073709551616.0)) {
            return fail(c, "expected %s, got a non-integral number", what);
        }
        neg = d < 0;
        mag = neg ? (uint64_t)(-d) : (uint64_t)d;
    } else if (json_is_string(j)) {
        if (!parse_decimal(json_string_value(j), json_string_length(j), true, &mag, &neg)) {
            return fail(c, "expected %s, got a string that is not a decimal integer", what);
        }
    } else {
        return fail(c, "expected %s, got %s", what, type_name(j));
    }
    if (is_signed) {
        bool ok = neg ? mag <= (uint64_t)0 - (uint64_t)smin : mag <= (uint64_t)smax;
        if (!ok) {
            return fail(c, "out of range for %s", what);
        }
        *out = neg ? (uint64_t)0 - mag : mag;
    } else {
        if ((neg && mag != 0) || mag > umax) {
            return fail(c, neg ? "expected %s, got a negative value" : "out of range for %s", what);
        }
        *out = mag;
    }
    return TD_OK;
}

static td_status get_u32(jctx *c, const json_t *j, uint32_t *out)
{
    uint64_t v;
    td_status st = get_int(c, j, false, UINT32_MAX, 0, 0, "an unsigned 32-bit integer", &v);
    if (st == TD_OK) {
        *out = (uint32_t)v;
    }
    return st;
}

/* fixed64 nanosecond times: non-negative. */
static td_status get_u64(jctx *c, const json_t *j, uint64_t *out)
{
    return get_int(c, j, false, UINT64_MAX, 0, 0, "a non-negative integer (number or string)", out);
}

static td_status get_i64(jctx *c, const json_t *j, int64_t *out)
{
    uint64_t v;
    td_status st =
        get_int(c, j, true, 0, INT64_MIN, INT64_MAX, "an integer (number or string)", &v);
    if (st == TD_OK) {
        *out = (int64_t)v;
    }
    return st;
}

/* A number, or "NaN" / "Infinity" / "-Infinity", or a numeric string. */
static td_status get_double(jctx *c, const json_t *j, double *out)
{
    if (json_is_number(j)) {
        *out = json_number_value(j);
        return TD_OK;
    }
    if (!json_is_string(j)) {
        return fail(c, "expected a number, got %s", type_name(j));
    }
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (strcmp(s, "NaN") == 0) {
        *out = NAN;
        return TD_OK;
    }
    if (strcmp(s, "Infinity") == 0) {
        *out = INFINITY;
        return TD_OK;
    }
    if (strcmp(s, "-Infinity") == 0) {
        *out = -INFINITY;
        return TD_OK;
    }
    /* Plain decimal notation only: strtod would also take "inf", hex and spaces. */
    bool plain = n > 0 && n < 64 && strlen(s) == n;
    for (size_t i = 0; plain && i < n; i++) {
        plain = strchr("0123456789+-.eE", s[i]) != NULL;
    }
    char *end;
    double d = plain ? strtod(s, &end) : 0;
    if (!plain || end != s + n) {
        return fail(c, "expected a number, got a string that is not one");
    }
    *out = d;
    return TD_OK;
}

static td_status get_bool(jctx *c, const json_t *j, protobuf_c_boolean *out)
{
    if (!json_is_boolean(j)) {
        return fail(c, "expected a boolean, got %s", type_name(j));
    }
    *out = json_is_true(j);
    return TD_OK;
}

/* An enum as its number (or a decimal string) or its name (names[i] has value i). */
static td_status get_enum(jctx *c, const json_t *j, const char *const *names, int nnames,
                          const char *what, int *out)
{
    if (json_is_string(j)) {
        const char *str = json_string_value(j);
        uint64_t mag;
        bool neg;
        for (int i = 0; i < nnames; i++) {
            if (strcmp(str, names[i]) == 0) {
                *out = i;
                return TD_OK;
            }
        }
        if (!parse_decimal(str, json_string_length(j), true, &mag, &neg)) {
            return fail(c, "unknown %s \"%.40s\"", what, str);
        }
    }
    uint64_t v;
    td_status st = get_int(c, j, true, 0, INT32_MIN, INT32_MAX, "an enum number or name", &v);
    if (st == TD_OK) {
        *out = (int)(int64_t)v;
    }
    return st;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}

/*
 * A trace/span ID: hex of exactly nbytes bytes, any case. "" is an empty ID (the
 * batch builder rejects it for trace_id/span_id; for parentSpanId it means root).
 */
static td_status get_hex_id(jctx *c, const json_t *j, size_t nbytes, ProtobufCBinaryData *out)
{
    if (!json_is_string(j)) {
        return fail(c, "expected a hex string, got %s", type_name(j));
    }
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (n == 0) {
        out->len = 0;
        out->data = NULL;
        return TD_OK;
    }
    if (n != 2 * nbytes) {
        return fail(c, "expected %zu hex characters, got %zu", 2 * nbytes, n);
    }
    uint8_t *p = td_arena_alloc(c->a, nbytes);
    if (!p) {
        return oom(c, nbytes);
    }
    for (size_t i = 0; i < nbytes; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return fail(c, "invalid hex character at offset %zu", hi < 0 ? 2 * i : 2 * i + 1);
        }
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    out->data = p;
    out->len = nbytes;
    return TD_OK;
}

static int b64val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if (ch == '+' || ch == '-') { /* '-' and '_': the URL-safe alphabet, as proto3 JSON */
        return 62;
    }
    if (ch == '/' || ch == '_') {
        return 63;
    }
    return -1;
}

/* Standard base64 (the URL-safe alphabet too); padding optional. */
static td_status get_base64(jctx *c, const json_t *j, ProtobufCBinaryData *out)
{
    if (!json_is_string(j)) {
        return fail(c, "expected a base64 string, got %s", type_name(j));
    }
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    size_t pad = 0;
    while (pad < 2 && n > 0 && s[n - 1] == '=') {
        n--;
        pad++;
    }
    if (n % 4 == 1 || (pad && (n + pad) % 4 != 0)) {
        return fail(c, "invalid base64 length");
    }
    size_t cap = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    uint8_t *p = td_arena_alloc(c->a, cap ? cap : 1);
    if (!p) {
        return oom(c, cap);
    }
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            return fail(c, "invalid base64 character at offset %zu", i);
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            p[o++] = (uint8_t)(acc >> bits);
        }
    }
    out->data = p;
    out->len = o;
    return TD_OK;
}

/* ---- messages ---- */

/* Fill msg (already allocated, not yet initialised) from object j. */
typedef td_status (*msg_fn)(jctx *c, const json_t *j, void *msg, unsigned depth);

static td_status need_object(jctx *c, const json_t *j)
{
    return json_is_object(j) ? TD_OK : fail(c, "expected an object, got %s", type_name(j));
}

/*
 * A JSON array of objects into a protobuf-c repeated message field: the pointer
 * array and the messages in one arena block. Elements may not be null.
 */
static td_status get_repeated(jctx *c, const json_t *j, size_t msg_size, msg_fn fn, unsigned depth,
                              size_t *n_out, void ***out)
{
    if (!json_is_array(j)) {
        return fail(c, "expected an array, got %s", type_name(j));
    }
    size_t n = json_array_size(j);
    if (n == 0) {
        *n_out = 0;
        *out = NULL;
        return TD_OK;
    }
    size_t each, total;
    if (!td_size_add(msg_size, sizeof(void *), &each) || !td_size_mul(n, each, &total)) {
        return oom(c, SIZE_MAX);
    }
    void **pp = td_arena_alloc(c->a, total);
    if (!pp) {
        return oom(c, total);
    }
    char *m = (char *)(pp + n);
    for (size_t i = 0; i < n; i++) {
        const json_t *el = json_array_get(j, i);
        push_idx(c, i);
        pp[i] = m + i * msg_size;
        td_status st = need_object(c, el);
        if (st == TD_OK) {
            st = fn(c, el, pp[i], depth);
        }
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    *n_out = n;
    *out = pp;
    return TD_OK;
}

#define GET_REPEATED(c, j, type, fn, depth, nfield, field)                                         \
    get_repeated((c), (j), sizeof(type), (fn), (depth), &(nfield), (void ***)&(field))

/* A single sub-message: allocate, then fn. */
static td_status get_message(jctx *c, const json_t *j, size_t msg_size, msg_fn fn, unsigned depth,
                             void **out)
{
    td_status st = need_object(c, j);
    if (st != TD_OK) {
        return st;
    }
    void *m = td_arena_alloc(c->a, msg_size);
    if (!m) {
        return oom(c, msg_size);
    }
    st = fn(c, j, m, depth);
    if (st == TD_OK) {
        *out = m;
    }
    return st;
}

#define GET_MESSAGE(c, j, type, fn, depth, field)                                                  \
    get_message((c), (j), sizeof(type), (fn), (depth), (void **)&(field))

static td_status decode_any(jctx *c, const json_t *j, void *msg, unsigned depth);
static td_status decode_any_elem(jctx *c, const json_t *j, void *msg, unsigned depth);

/* KeyValue whose AnyValue sits at nesting depth + 1. */
static td_status decode_kv(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    static const key_name keys[] = {{"key", NULL}, {"value", NULL}};
    td_otlp_kv *kv = msg;
    opentelemetry__proto__common__v1__key_value__init(kv);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = k == 0 ? get_string(c, v, &kv->key)
                              : GET_MESSAGE(c, v, td_otlp_any, decode_any, depth + 1, kv->value);
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_array_value(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    static const key_name keys[] = {{"values", NULL}};
    td_otlp_array *arr = msg;
    opentelemetry__proto__common__v1__array_value__init(arr);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        if (key_index(key, keys, NKEYS(keys)) < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st =
            GET_REPEATED(c, v, td_otlp_any, decode_any_elem, depth, arr->n_values, arr->values);
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_kvlist_value(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    static const key_name keys[] = {{"values", NULL}};
    td_otlp_kvlist *list = msg;
    opentelemetry__proto__common__v1__key_value_list__init(list);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        if (key_index(key, keys, NKEYS(keys)) < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st =
            GET_REPEATED(c, v, td_otlp_kv, decode_kv, depth, list->n_values, list->values);
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

/* Called as an element decoder with the parent's level; this value is one deeper. */
static td_status decode_any_elem(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    return decode_any(c, j, msg, depth + 1);
}

/* AnyValue at nesting level depth (an attribute's value is level 1). */
static td_status decode_any(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    enum { STRING, BOOL, INT, DOUBLE, ARRAY, KVLIST, BYTES };
    static const key_name keys[] = {
        [STRING] = {"stringValue", "string_value"}, [BOOL] = {"boolValue", "bool_value"},
        [INT] = {"intValue", "int_value"},          [DOUBLE] = {"doubleValue", "double_value"},
        [ARRAY] = {"arrayValue", "array_value"},    [KVLIST] = {"kvlistValue", "kvlist_value"},
        [BYTES] = {"bytesValue", "bytes_value"},
    };
    td_otlp_any *any = msg;
    opentelemetry__proto__common__v1__any_value__init(any);
    if (depth > MAX_ANY_DEPTH) {
        return fail(c, "AnyValue nesting deeper than %d levels", MAX_ANY_DEPTH);
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = TD_OK;
        /* A oneof: with several members present, the last one wins. */
        switch (k) {
        case STRING:
            st = get_string(c, v, &any->string_value);
            any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            break;
        case BOOL:
            st = get_bool(c, v, &any->bool_value);
            any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
            break;
        case INT:
            st = get_i64(c, v, &any->int_value);
            any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
            break;
        case DOUBLE:
            st = get_double(c, v, &any->double_value);
            any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
            break;
        case ARRAY:
            st = GET_MESSAGE(c, v, td_otlp_array, decode_array_value, depth, any->array_value);
            any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
            break;
        case KVLIST:
            st = GET_MESSAGE(c, v, td_otlp_kvlist, decode_kvlist_value, depth, any->kvlist_value);
            any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
            break;
        case BYTES:
            st = get_base64(c, v, &any->bytes_value);
            any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
            break;
        }
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

#define GET_ATTRIBUTES(c, v, nfield, field)                                                        \
    GET_REPEATED(c, v, td_otlp_kv, decode_kv, 0, nfield, field)

static td_status decode_scope(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    enum { NAME, VERSION, ATTRS, DROPPED };
    static const key_name keys[] = {
        [NAME] = {"name", NULL},
        [VERSION] = {"version", NULL},
        [ATTRS] = {"attributes", NULL},
        [DROPPED] = {"droppedAttributesCount", "dropped_attributes_count"},
    };
    td_otlp_scope *sc = msg;
    opentelemetry__proto__common__v1__instrumentation_scope__init(sc);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = TD_OK;
        switch (k) {
        case NAME:
            st = get_string(c, v, &sc->name);
            break;
        case VERSION:
            st = get_string(c, v, &sc->version);
            break;
        case ATTRS:
            st = GET_ATTRIBUTES(c, v, sc->n_attributes, sc->attributes);
            break;
        case DROPPED:
            st = get_u32(c, v, &sc->dropped_attributes_count);
            break;
        }
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_resource(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    enum { ATTRS, DROPPED };
    static const key_name keys[] = {
        [ATTRS] = {"attributes", NULL},
        [DROPPED] = {"droppedAttributesCount", "dropped_attributes_count"},
    };
    td_otlp_resource *r = msg;
    opentelemetry__proto__resource__v1__resource__init(r);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = k == ATTRS ? GET_ATTRIBUTES(c, v, r->n_attributes, r->attributes)
                                  : get_u32(c, v, &r->dropped_attributes_count);
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_status(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    static const key_name keys[] = {{"message", NULL}, {"code", NULL}};
    static const char *const codes[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"};
    td_otlp_status *s = msg;
    opentelemetry__proto__trace__v1__status__init(s);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        int code = 0;
        td_status st = k == 0 ? get_string(c, v, &s->message)
                              : get_enum(c, v, codes, NKEYS(codes), "status code", &code);
        if (st != TD_OK) {
            return st;
        }
        if (k == 1) {
            s->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)code;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_event(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    enum { TIME, NAME, ATTRS, DROPPED };
    static const key_name keys[] = {
        [TIME] = {"timeUnixNano", "time_unix_nano"},
        [NAME] = {"name", NULL},
        [ATTRS] = {"attributes", NULL},
        [DROPPED] = {"droppedAttributesCount", "dropped_attributes_count"},
    };
    td_otlp_event *e = msg;
    opentelemetry__proto__trace__v1__span__event__init(e);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = TD_OK;
        switch (k) {
        case TIME:
            st = get_u64(c, v, &e->time_unix_nano);
            break;
        case NAME:
            st = get_string(c, v, &e->name);
            break;
        case ATTRS:
            st = GET_ATTRIBUTES(c, v, e->n_attributes, e->attributes);
            break;
        case DROPPED:
            st = get_u32(c, v, &e->dropped_attributes_count);
            break;
        }
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_link(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    enum { TRACE_ID, SPAN_ID, TRACE_STATE, ATTRS, DROPPED, FLAGS };
    static const key_name keys[] = {
        [TRACE_ID] = {"traceId", "trace_id"},
        [SPAN_ID] = {"spanId", "span_id"},
        [TRACE_STATE] = {"traceState", "trace_state"},
        [ATTRS] = {"attributes", NULL},
        [DROPPED] = {"droppedAttributesCount", "dropped_attributes_count"},
        [FLAGS] = {"flags", NULL},
    };
    td_otlp_link *l = msg;
    opentelemetry__proto__trace__v1__span__link__init(l);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = TD_OK;
        switch (k) {
        case TRACE_ID:
            st = get_hex_id(c, v, 16, &l->trace_id);
            break;
        case SPAN_ID:
            st = get_hex_id(c, v, 8, &l->span_id);
            break;
        case TRACE_STATE:
            st = get_string(c, v, &l->trace_state);
            break;
        case ATTRS:
            st = GET_ATTRIBUTES(c, v, l->n_attributes, l->attributes);
            break;
        case DROPPED:
            st = get_u32(c, v, &l->dropped_attributes_count);
            break;
        case FLAGS:
            st = get_u32(c, v, &l->flags);
            break;
        }
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_span(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    enum {
        TRACE_ID,
        SPAN_ID,
        TRACE_STATE,
        PARENT,
        FLAGS,
        NAME,
        KIND,
        START,
        END,
        ATTRS,
        DROPPED_ATTRS,
        EVENTS,
        DROPPED_EVENTS,
        LINKS,
        DROPPED_LINKS,
        STATUS,
    };
    static const key_name keys[] = {
        [TRACE_ID] = {"traceId", "trace_id"},
        [SPAN_ID] = {"spanId", "span_id"},
        [TRACE_STATE] = {"traceState", "trace_state"},
        [PARENT] = {"parentSpanId", "parent_span_id"},
        [FLAGS] = {"flags", NULL},
        [NAME] = {"name", NULL},
        [KIND] = {"kind", NULL},
        [START] = {"startTimeUnixNano", "start_time_unix_nano"},
        [END] = {"endTimeUnixNano", "end_time_unix_nano"},
        [ATTRS] = {"attributes", NULL},
        [DROPPED_ATTRS] = {"droppedAttributesCount", "dropped_attributes_count"},
        [EVENTS] = {"events", NULL},
        [DROPPED_EVENTS] = {"droppedEventsCount", "dropped_events_count"},
        [LINKS] = {"links", NULL},
        [DROPPED_LINKS] = {"droppedLinksCount", "dropped_links_count"},
        [STATUS] = {"status", NULL},
    };
    static const char *const kinds[] = {
        "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
    };
    td_otlp_span *s = msg;
    opentelemetry__proto__trace__v1__span__init(s);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = TD_OK;
        int kind = 0;
        switch (k) {
        case TRACE_ID:
            st = get_hex_id(c, v, 16, &s->trace_id);
            break;
        case SPAN_ID:
            st = get_hex_id(c, v, 8, &s->span_id);
            break;
        case TRACE_STATE:
            st = get_string(c, v, &s->trace_state);
            break;
        case PARENT:
            st = get_hex_id(c, v, 8, &s->parent_span_id);
            break;
        case FLAGS:
            st = get_u32(c, v, &s->flags);
            break;
        case NAME:
            st = get_string(c, v, &s->name);
            break;
        case KIND:
            st = get_enum(c, v, kinds, NKEYS(kinds), "span kind", &kind);
            s->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)kind;
            break;
        case START:
            st = get_u64(c, v, &s->start_time_unix_nano);
            break;
        case END:
            st = get_u64(c, v, &s->end_time_unix_nano);
            break;
        case ATTRS:
            st = GET_ATTRIBUTES(c, v, s->n_attributes, s->attributes);
            break;
        case DROPPED_ATTRS:
            st = get_u32(c, v, &s->dropped_attributes_count);
            break;
        case EVENTS:
            st = GET_REPEATED(c, v, td_otlp_event, decode_event, 0, s->n_events, s->events);
            break;
        case DROPPED_EVENTS:
            st = get_u32(c, v, &s->dropped_events_count);
            break;
        case LINKS:
            st = GET_REPEATED(c, v, td_otlp_link, decode_link, 0, s->n_links, s->links);
            break;
        case DROPPED_LINKS:
            st = get_u32(c, v, &s->dropped_links_count);
            break;
        case STATUS:
            st = GET_MESSAGE(c, v, td_otlp_status, decode_status, 0, s->status);
            break;
        }
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_scope_spans(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    enum { SCOPE, LIBRARY, SPANS, SCHEMA };
    static const key_name keys[] = {
        [SCOPE] = {"scope", NULL},
        /* pre-1.0 name of the scope inside instrumentationLibrarySpans */
        [LIBRARY] = {"instrumentationLibrary", "instrumentation_library"},
        [SPANS] = {"spans", NULL},
        [SCHEMA] = {"schemaUrl", "schema_url"},
    };
    td_otlp_scope_spans *ss = msg;
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = TD_OK;
        switch (k) {
        case SCOPE:
        case LIBRARY:
            st = GET_MESSAGE(c, v, td_otlp_scope, decode_scope, 0, ss->scope);
            break;
        case SPANS:
            st = GET_REPEATED(c, v, td_otlp_span, decode_span, 0, ss->n_spans, ss->spans);
            break;
        case SCHEMA:
            st = get_string(c, v, &ss->schema_url);
            break;
        }
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

static td_status decode_resource_spans(jctx *c, const json_t *j, void *msg, unsigned depth)
{
    enum { RESOURCE, SCOPE_SPANS, SCHEMA, ILS };
    static const key_name keys[] = {
        [RESOURCE] = {"resource", NULL},
        [SCOPE_SPANS] = {"scopeSpans", "scope_spans"},
        [SCHEMA] = {"schemaUrl", "schema_url"},
        [ILS] = {"instrumentationLibrarySpans", "instrumentation_library_spans"},
    };
    td_otlp_resource_spans *rs = msg;
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int k = key_index(key, keys, NKEYS(keys));
        if (k < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = TD_OK;
        switch (k) {
        case RESOURCE:
            st = GET_MESSAGE(c, v, td_otlp_resource, decode_resource, 0, rs->resource);
            break;
        case SCOPE_SPANS:
            st = GET_REPEATED(c, v, td_otlp_scope_spans, decode_scope_spans, 0, rs->n_scope_spans,
                              rs->scope_spans);
            break;
        case SCHEMA:
            st = get_string(c, v, &rs->schema_url);
            break;
        case ILS:
            st = GET_REPEATED(c, v, td_otlp_scope_spans, decode_scope_spans, 0,
                              rs->n_instrumentation_library_spans,
                              rs->instrumentation_library_spans);
            break;
        }
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    /* Fold the pre-1.0 list into scope_spans, as the protobuf decoder does. */
    if (rs->n_instrumentation_library_spans) {
        size_t n = rs->n_scope_spans + rs->n_instrumentation_library_spans;
        td_otlp_scope_spans **all = td_arena_alloc(c->a, n * sizeof(*all));
        if (!all) {
            return oom(c, n * sizeof(*all));
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
    }
    return TD_OK;
}

static td_status decode_request(jctx *c, const json_t *j, td_otlp_request *req)
{
    static const key_name keys[] = {{"resourceSpans", "resource_spans"}};
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        if (key_index(key, keys, NKEYS(keys)) < 0 || json_is_null(v)) {
            continue;
        }
        push_key(c, key);
        td_status st = GET_REPEATED(c, v, td_otlp_resource_spans, decode_resource_spans, 0,
                                    req->n_resource_spans, req->resource_spans);
        if (st != TD_OK) {
            return st;
        }
        pop(c);
    }
    return TD_OK;
}

/* ---- jansson's memory ---- */

/*
 * jansson allocates every value, key and hash table with its own malloc, and
 * freeing that tree costs as much again: about half of the parse time for a
 * typical request. Its allocator hooks are process-wide and take no context, so
 * the arena of the request being parsed travels in a thread-local set only for
 * the duration of td_otlp_decode_json (STYLE rule 8 allows no other globals;
 * this is a call-scoped argument that jansson's API cannot carry). While it is
 * set, jansson's allocations come from the arena and its frees are no-ops: the
 * objects of one parse never outlive it and never cross threads. Outside a
 * parse the hooks are plain malloc/free, so other jansson users keep working.
 *
 * This also bounds jansson's memory (often ten times the body) by the arena
 * limit, and makes its allocation failures visible: jansson reports most of
 * them as syntax errors and may even drop a byte of a string silently, so any
 * failure during a parse discards the result as TD_NOMEM / TD_TOO_LARGE.
 */
static _Thread_local td_arena *tl_arena;
static _Thread_local size_t tl_failed; /* size of a failed allocation, 0 if none */

static void *json_arena_malloc(size_t n)
{
    if (!tl_arena) {
        return malloc(n);
    }
    void *p = td_arena_alloc(tl_arena, n);
    if (!p) {
        tl_failed = n ? n : 1;
    }
    return p;
}

static void json_arena_free(void *p)
{
    if (!tl_arena) {
        free(p);
    }
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    json_set_alloc_funcs(json_arena_malloc, json_arena_free);
}

td_status td_otlp_decode_json(const char *data, size_t len, td_arena *a, td_otlp_request **req_out,
                              td_err *err)
{
    *req_out = NULL;
    /* The context holds the error path (a few KiB): keep it off the stack. */
    jctx *c = td_arena_alloc(a, sizeof(*c));
    td_otlp_request *req = td_arena_alloc(a, sizeof(*req));
    if (!c || !req) {
        return td_err_set(err, TD_NOMEM, "out of memory decoding the request");
    }
    c->a = a;
    c->err = err;
    c->nframes = 0;

    /* Route jansson into the arena, unless someone replaced the hooks since. */
    pthread_once(&hooks_once, install_hooks);
    json_malloc_t cur_malloc;
    json_free_t cur_free;
    json_get_alloc_funcs(&cur_malloc, &cur_free);
    bool routed = cur_malloc == json_arena_malloc;
    if (routed) {
        tl_arena = a;
        tl_failed = 0;
    }

    json_error_t jerr;
    json_t *root = json_loadb(data ? data : "", data ? len : 0, JSON_ALLOW_NUL, &jerr);
    td_status st;
    if (routed && tl_failed) {
        st = oom(c, tl_failed);
    } else if (!root) {
        /* unrouted: jansson reports a failed set-up allocation with no text */
        if (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0') {
            st = td_err_set(err, TD_NOMEM, "out of memory parsing the JSON request");
        } else {
            st = td_err_set(err, TD_INVALID, "invalid JSON at line %d column %d: %s", jerr.line,
                            jerr.column, jerr.text);
        }
    } else {
        st = need_object(c, root);
        if (st == TD_OK) {
            st = decode_request(c, root, req);
        }
    }
    if (root) {
        json_decref(root);
    }
    tl_arena = NULL;
    if (st == TD_OK) {
        *req_out = req;
    }
    return st;
}
