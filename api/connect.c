/*
 * connect.c - Connect unary calls and the protojson codec (contracts in connect.h).
 *
 * The codec walks protobuf-c descriptors, so every message of td_proto gets JSON
 * for free. Decoding goes through jansson's tree (the bodies are small query
 * requests, or Push bodies bounded by max_body); the tree is freed before the
 * handler runs, everything kept is copied into the request arena.
 */
#include "api/connect.h"
#include "api/json.h"
#include "core/gzip.h"
#include "proto/proto.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 64
#define DEFAULT_MAX_BODY ((size_t)64 << 20)

/* ---- codes ---- */

static const struct {
    const char *name;
    int http;
} codes[] = {
#define TD__CONNECT_ROW(name, wire, http) {wire, http},
    TD_CONNECT_CODE_MAP(TD__CONNECT_ROW)
#undef TD__CONNECT_ROW
};

const char *td_connect_code_name(td_connect_code c)
{
    return (size_t)c < sizeof(codes) / sizeof(codes[0]) ? codes[c].name : "unknown";
}

int td_connect_code_http(td_connect_code c)
{
    return (size_t)c < sizeof(codes) / sizeof(codes[0]) ? codes[c].http : 500;
}

td_connect_code td_connect_code_of(td_status s)
{
    switch (s) {
    case TD_OK:
        return TD_CONNECT_OK;
    case TD_INVALID:
        return TD_CONNECT_INVALID_ARGUMENT;
    case TD_UNAUTHENTICATED:
        return TD_CONNECT_UNAUTHENTICATED;
    case TD_NOT_FOUND:
        return TD_CONNECT_NOT_FOUND;
    case TD_METHOD:
    case TD_UNSUPPORTED:
        return TD_CONNECT_UNIMPLEMENTED;
    case TD_TOO_LARGE:
    case TD_LIMITED:
        return TD_CONNECT_RESOURCE_EXHAUSTED;
    case TD_OVERLOADED:
    case TD_NOMEM:
        return TD_CONNECT_UNAVAILABLE;
    case TD_CORRUPT:
        return TD_CONNECT_DATA_LOSS;
    default:
        return TD_CONNECT_INTERNAL;
    }
}

void td_connect_error_json(td_buf *out, td_connect_code code, const char *msg)
{
    td_json j;
    td_json_init(&j, out);
    td_json_begin_object(&j);
    td_json_key(&j, "code");
    td_json_string(&j, td_connect_code_name(code));
    if (msg && *msg) {
        td_json_key(&j, "message");
        td_json_string(&j, msg);
    }
    td_json_end_object(&j);
}

/* ---- protojson: names ---- */

void td_protojson_name(const char *proto_name, char *buf, size_t cap)
{
    size_t o = 0;
    bool up = false;
    for (const char *p = proto_name; *p && o + 1 < cap; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        char c = *p;
        if (up && c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        up = false;
        buf[o++] = c;
    }
    if (cap) {
        buf[o] = '\0';
    }
}

/* ---- protojson: encoding ---- */

static td_status encode_msg(const ProtobufCMessage *m, td_json *j, int depth, td_err *err);

static void encode_enum(const ProtobufCEnumDescriptor *ed, int v, td_json *j)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
    if (ev) {
        td_json_string(j, ev->name);
    } else {
        td_json_int(j, v);
    }
}

/* One value of field f stored at p (an element of a repeated field, or the field itself). */
static td_status encode_value(const ProtobufCFieldDescriptor *f, const void *p, td_json *j,
                              int depth, td_err *err)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        td_json_int(j, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        td_json_int(j, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        td_json_int64_str(j, *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        td_json_uint64_str(j, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        td_json_double(j, (double)*(const float *)p);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        td_json_double(j, *(const double *)p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        td_json_bool(j, *(const protobuf_c_boolean *)p);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        encode_enum(f->descriptor, *(const int *)p, j);
        break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        td_json_string(j, s ? s : "");
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        td_json_base64(j, b->data, b->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (!sub) {
            td_json_begin_object(j);
            td_json_end_object(j);
            break;
        }
        return encode_msg(sub, j, depth + 1, err);
    }
    }
    return TD_OK;
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Is the singular value at p the proto3 default (omitted without presence)? */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return *(const uint32_t *)p == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)p == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0 && !signbit(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0 && !signbit(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)p;
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int *)p == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    }
    return true;
}

/* Should singular field f of m be written? */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                          const void *p)
{
    const char *base = (const char *)m;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    }
    if (f->label == PROTOBUF_C_LABEL_REQUIRED) {
        return true;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
        f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        /* strings and messages carry presence in the pointer */
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            return *(char *const *)p != NULL &&
                   (f->default_value == NULL || *(char *const *)p != f->default_value);
        }
        return *(ProtobufCMessage *const *)p != NULL;
    }
    return !is_default(f, p); /* proto3 without presence */
}

static td_status encode_msg(const ProtobufCMessage *m, td_json *j, int depth, td_err *err)
{
    if (depth > MAX_DEPTH) {
        return td_err_set(err, TD_INTERNAL, "message nested too deeply");
    }
    const ProtobufCMessageDescriptor *d = m->descriptor;
    td_json_begin_object(j);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *p = (const char *)m + f->offset;
        char name[128];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            if (!n) {
                continue;
            }
            td_protojson_name(f->name, name, sizeof(name));
            td_json_key(j, name);
            td_json_begin_array(j);
            const char *arr = *(char *const *)p;
            size_t sz = value_size(f);
            for (size_t k = 0; k < n; k++) {
                if (encode_value(f, arr + k * sz, j, depth, err) != TD_OK) {
                    return err->code;
                }
            }
            td_json_end_array(j);
            continue;
        }
        if (!field_present(m, f, p)) {
            continue;
        }
        td_protojson_name(f->name, name, sizeof(name));
        td_json_key(j, name);
        if (encode_value(f, p, j, depth, err) != TD_OK) {
            return err->code;
        }
    }
    td_json_end_object(j);
    return TD_OK;
}

td_status td_protojson_encode(const ProtobufCMessage *m, td_buf *out, td_err *err)
{
    td_json j;
    td_json_init(&j, out);
    return encode_msg(m, &j, 0, err);
}

/* ---- protojson: decoding ---- */

typedef struct dec {
    td_arena *a;
    td_err *err;
    const char *field; /* proto name of the field being decoded, for messages */
} dec;

static td_status bad(dec *d, const char *what)
{
    return td_err_set(d->err, TD_INVALID, "invalid value for field %s: %s", d->field, what);
}

static td_status nomem(dec *d)
{
    return td_err_set(d->err, TD_NOMEM, "request too large");
}

/* Signed integer from a JSON number or decimal string, within [lo, hi]. */
static td_status get_int(dec *d, const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double r = json_real_value(v);
        if (r != floor(r) || r < -9.2233720368547758e18 || r >= 9.2233720368547758e18) {
            return bad(d, "not an integer");
        }
        x = (int64_t)r;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long ll = strtoll(s, &end, 10);
        if (!*s || *end || errno || s[0] == ' ' || s[0] == '+') {
            /* protojson also allows exponent forms like "1e3"; accept integral ones */
            double r = strtod(s, &end);
            if (!*s || *end || r != floor(r) || r < -9.2233720368547758e18 ||
                r >= 9.2233720368547758e18) {
                return bad(d, "not an integer");
            }
            ll = (long long)r;
        }
        x = ll;
    } else {
        return bad(d, "not an integer");
    }
    if (x < lo || x > hi) {
        return bad(d, "out of range");
    }
    *out = x;
    return TD_OK;
}

static td_status get_uint(dec *d, const json_t *v, uint64_t hi, uint64_t *out)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        if (s[0] >= '0' && s[0] <= '9') {
            unsigned long long u = strtoull(s, &end, 10);
            if (!*end && !errno && u <= hi) {
                *out = u;
                return TD_OK;
            }
        }
    }
    int64_t x = 0;
    if (get_int(d, v, 0, INT64_MAX, &x) != TD_OK) {
        return d->err->code;
    }
    if ((uint64_t)x > hi) {
        return bad(d, "out of range");
    }
    *out = (uint64_t)x;
    return TD_OK;
}

static td_status get_double(dec *d, const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return TD_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
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
        char *end;
        double r = strtod(s, &end);
        if (*s && !*end && isfinite(r)) {
            *out = r;
            return TD_OK;
        }
    }
    return bad(d, "not a number");
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

/* Standard or URL-safe base64, padding optional, into arena memory. */
static td_status get_bytes(dec *d, const char *s, size_t n, ProtobufCBinaryData *out)
{
    while (n && s[n - 1] == '=') {
        n--;
    }
    if (n % 4 == 1) {
        return bad(d, "bad base64");
    }
    uint8_t *o = td_arena_alloc(d->a, n / 4 * 3 + 3);
    if (!o) {
        return nomem(d);
    }
    size_t w = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            return bad(d, "bad base64");
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[w++] = (uint8_t)(acc >> bits);
        }
    }
    out->data = o;
    out->len = w;
    return TD_OK;
}

static td_status decode_msg(dec *d, const ProtobufCMessageDescriptor *md, const json_t *obj,
                            int depth, ProtobufCMessage **out);

/*
 * Decode v as one value of f into p. *skip is set for an unknown enum name (the
 * element or field is left out).
 */
static td_status decode_value(dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, void *p,
                              int depth, bool *skip)
{
    int64_t x;
    uint64_t u;
    *skip = false;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (get_int(d, v, INT32_MIN, INT32_MAX, &x) != TD_OK) {
            return d->err->code;
        }
        *(int32_t *)p = (int32_t)x;
        return TD_OK;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (get_uint(d, v, UINT32_MAX, &u) != TD_OK) {
            return d->err->code;
        }
        *(uint32_t *)p = (uint32_t)u;
        return TD_OK;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (get_int(d, v, INT64_MIN, INT64_MAX, &x) != TD_OK) {
            return d->err->code;
        }
        *(int64_t *)p = x;
        return TD_OK;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (get_uint(d, v, UINT64_MAX, &u) != TD_OK) {
            return d->err->code;
        }
        *(uint64_t *)p = u;
        return TD_OK;
    case PROTOBUF_C_TYPE_FLOAT: {
        double r;
        if (get_double(d, v, &r) != TD_OK) {
            return d->err->code;
        }
        *(float *)p = (float)r;
        return TD_OK;
    }
    case PROTOBUF_C_TYPE_DOUBLE:
        return get_double(d, v, (double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v)) {
            return bad(d, "not a boolean");
        }
        *(protobuf_c_boolean *)p = json_is_true(v);
        return TD_OK;
    case PROTOBUF_C_TYPE_ENUM:
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
            if (!ev) {
                *skip = true; /* unknown enum names are ignored (§5.0) */
                return TD_OK;
            }
            *(int *)p = ev->value;
            return TD_OK;
        }
        if (get_int(d, v, INT32_MIN, INT32_MAX, &x) != TD_OK) {
            return d->err->code;
        }
        *(int *)p = (int)x;
        return TD_OK;
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v)) {
            return bad(d, "not a string");
        }
        char *s = td_arena_strndup(d->a, json_string_value(v), json_string_length(v));
        if (!s) {
            return nomem(d);
        }
        *(char **)p = s;
        return TD_OK;
    }
    case PROTOBUF_C_TYPE_BYTES:
        if (!json_is_string(v)) {
            return bad(d, "not a base64 string");
        }
        return get_bytes(d, json_string_value(v), json_string_length(v), (ProtobufCBinaryData *)p);
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(v)) {
            return bad(d, "not an object");
        }
        const char *saved = d->field;
        td_status st = decode_msg(d, f->descriptor, v, depth + 1, (ProtobufCMessage **)p);
        d->field = saved;
        return st;
    }
    }
    return bad(d, "unsupported type");
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *md,
                                                  const char *key)
{
    char name[128];
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (strcmp(f->name, key) == 0) {
            return f;
        }
        td_protojson_name(f->name, name, sizeof(name));
        if (strcmp(name, key) == 0) {
            return f;
        }
    }
    return NULL;
}

static td_status decode_msg(dec *d, const ProtobufCMessageDescriptor *md, const json_t *obj,
                            int depth, ProtobufCMessage **out)
{
    if (depth > MAX_DEPTH) {
        return td_err_set(d->err, TD_INVALID, "message nested too deeply");
    }
    ProtobufCMessage *m = td_arena_alloc(d->a, md->sizeof_message);
    if (!m) {
        return nomem(d);
    }
    md->message_init(m);
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)obj, key, v) {
        const ProtobufCFieldDescriptor *f = find_field(md, key);
        if (!f || json_is_null(v)) {
            continue; /* unknown fields and nulls are ignored */
        }
        d->field = f->name;
        char *base = (char *)m;
        void *p = base + f->offset;
        bool skip;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v)) {
                return bad(d, "not an array");
            }
            size_t n = json_array_size(v), sz = value_size(f), k = 0;
            char *arr = n ? td_arena_calloc(d->a, n, sz) : NULL;
            if (n && !arr) {
                return nomem(d);
            }
            for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                if (json_is_null(e) && f->type != PROTOBUF_C_TYPE_MESSAGE) {
                    return bad(d, "null in an array");
                }
                if (f->type == PROTOBUF_C_TYPE_MESSAGE && json_is_null(e)) {
                    e = NULL;
                }
                if (!e) {
                    ProtobufCMessage *sub = td_arena_alloc(
                        d->a, ((const ProtobufCMessageDescriptor *)f->descriptor)->sizeof_message);
                    if (!sub) {
                        return nomem(d);
                    }
                    ((const ProtobufCMessageDescriptor *)f->descriptor)->message_init(sub);
                    *(ProtobufCMessage **)(arr + k * sz) = sub;
                    k++;
                    continue;
                }
                if (decode_value(d, f, e, arr + k * sz, depth, &skip) != TD_OK) {
                    return d->err->code;
                }
                if (!skip) {
                    k++;
                }
            }
            *(size_t *)(base + f->quantifier_offset) = k;
            *(void **)p = arr;
            continue;
        }
        if (decode_value(d, f, v, p, depth, &skip) != TD_OK) {
            return d->err->code;
        }
        if (skip) {
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                   f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) {
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
        }
    }
    *out = m;
    return TD_OK;
}

td_status td_protojson_decode(const ProtobufCMessageDescriptor *md, const char *json, size_t n,
                              td_arena *a, ProtobufCMessage **out, td_err *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, n, JSON_ALLOW_NUL, &je);
    if (!root) {
        return td_err_set(err, TD_INVALID, "invalid JSON: %s (line %d, column %d)", je.text,
                          je.line, je.column);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return td_err_set(err, TD_INVALID, "invalid JSON: expected an object for %s", md->name);
    }
    dec d = {.a = a, .err = err, .field = md->name};
    td_status st = decode_msg(&d, md, root, 0, out);
    json_decref(root);
    if (st != TD_OK) {
        *out = NULL;
    }
    return st;
}

/* ---- unary calls ---- */

const td_connect_method *td_connect_find(const td_connect_method *tab, size_t n, const char *url)
{
    size_t ul = strlen(url);
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(tab[i].path);
        if (ul >= pl && strcmp(url + ul - pl, tab[i].path) == 0) {
            return &tab[i];
        }
    }
    return NULL;
}

static void fail(td_connect_reply *rp, td_connect_code code, const char *msg)
{
    rp->status = td_connect_code_http(code);
    rp->ctype = "application/json";
    rp->code = code;
    td_buf_reset(&rp->body);
    td_connect_error_json(&rp->body, code, msg);
}

/* Content-Type -> codec; false when neither (case-insensitive, parameters ignored). */
static bool parse_ctype(const char *ct, td_connect_codec *codec)
{
    if (!ct) {
        return false;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    if (n == 17 && strncasecmp(ct, "application/proto", 17) == 0) {
        *codec = TD_CONNECT_PROTO;
        return true;
    }
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) {
        *codec = TD_CONNECT_JSON;
        return true;
    }
    return false;
}

void td_connect_serve(const td_connect_method *m, void *ud, const td_connect_req *rq, td_arena *a,
                      td_connect_reply *rp)
{
    rp->status = 200;
    rp->code = TD_CONNECT_OK;
    rp->allow_post = false;
    td_buf_reset(&rp->body);
    if (!rq->method || strcmp(rq->method, "POST") != 0) {
        rp->allow_post = true;
        fail(rp, TD_CONNECT_UNIMPLEMENTED, "method not allowed: use POST");
        rp->status = 405;
        return;
    }
    td_connect_codec codec;
    if (!parse_ctype(rq->content_type, &codec)) {
        fail(rp, TD_CONNECT_UNIMPLEMENTED,
             "unsupported content type (use application/proto or "
             "application/json)");
        rp->status = 415;
        return;
    }
    if (!m || !m->fn) {
        fail(rp, TD_CONNECT_UNIMPLEMENTED, "method not implemented");
        return;
    }
    td_err err;
    td_err_init(&err);
    const uint8_t *body = rq->body;
    size_t len = rq->len;
    const char *ce = rq->content_encoding;
    if (ce && *ce && strcasecmp(ce, "identity") != 0) {
        if (strcasecmp(ce, "gzip") != 0) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "unknown compression \"%.64s\": supported encodings are gzip", ce);
            fail(rp, TD_CONNECT_UNIMPLEMENTED, msg);
            return;
        }
        if (len) { /* an empty body is the empty message, never decompressed */
            td_slice out;
            size_t max = rq->max_body ? rq->max_body : DEFAULT_MAX_BODY;
            if (td_gunzip_arena(body, len, max, a, &out, &err) != TD_OK) {
                fail(rp,
                     err.code == TD_TOO_LARGE ? TD_CONNECT_RESOURCE_EXHAUSTED
                                              : TD_CONNECT_INVALID_ARGUMENT,
                     err.msg);
                return;
            }
            body = (const uint8_t *)out.ptr;
            len = out.len;
        }
    }
    ProtobufCMessage *in = NULL;
    if (codec == TD_CONNECT_JSON) {
        if (len == 0) {
            fail(rp, TD_CONNECT_INVALID_ARGUMENT, "empty JSON body: send {} for an empty message");
            return;
        }
        if (td_protojson_decode(m->in, (const char *)body, len, a, &in, &err) != TD_OK) {
            fail(rp, td_connect_code_of(err.code), err.msg);
            return;
        }
    } else {
        ProtobufCAllocator pa;
        td_proto_allocator_init(&pa, a);
        in = protobuf_c_message_unpack(m->in, &pa, len, body);
        if (!in) {
            fail(rp, TD_CONNECT_INVALID_ARGUMENT, "cannot decode the request message");
            return;
        }
    }
    td_connect_call call = {.req = rq, .codec = codec, .arena = a, .code = TD_CONNECT_OK};
    ProtobufCMessage *out = NULL;
    td_status st = m->fn(ud, &call, in, &out, &err);
    if (st != TD_OK) {
        td_connect_code c = call.code != TD_CONNECT_OK ? call.code : td_connect_code_of(st);
        fail(rp, c, err.msg[0] ? err.msg : td_status_name(st));
        return;
    }
    if (!out) {
        out = td_arena_alloc(a, m->out->sizeof_message);
        if (!out) {
            fail(rp, TD_CONNECT_RESOURCE_EXHAUSTED, "reply too large");
            return;
        }
        m->out->message_init(out);
    }
    if (codec == TD_CONNECT_JSON) {
        rp->ctype = "application/json";
        if (td_protojson_encode(out, &rp->body, &err) != TD_OK) {
            fail(rp, TD_CONNECT_INTERNAL, err.msg);
        }
        return;
    }
    rp->ctype = "application/proto";
    size_t n = protobuf_c_message_get_packed_size(out);
    td_buf_grow(&rp->body, n);
    protobuf_c_message_pack(out, (uint8_t *)rp->body.data);
    td_buf_setlen(&rp->body, n);
}
