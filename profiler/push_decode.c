/*
 * push_decode.c - push.v1.PushRequest (proto/push/v1/push.proto, API-CONTRACT
 * §5.2) from protobuf or protojson into td_push_series.
 *
 * The protobuf side is a small wire-format walker rather than generated code:
 * only four messages and six fields are read, raw_profile bytes are borrowed
 * from the body instead of copied, and unknown fields are skipped by wire type
 * (§0). The JSON side uses jansson and accepts both the JSON names
 * (rawProfile) and the proto names (raw_profile), as protojson does.
 */
#include "profiler/internal.h"

#include <jansson.h>
#include <string.h>

/* ---- protobuf wire reading ---- */

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static bool varint(rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            return false;
        }
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Next field: number, wire type, and for wire type 2 the payload. */
static bool field(rd *r, uint32_t *num, uint32_t *wt, rd *payload)
{
    uint64_t tag;
    if (!varint(r, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
        return false;
    }
    *num = (uint32_t)(tag >> 3);
    *wt = (uint32_t)(tag & 7);
    uint64_t n;
    switch (*wt) {
    case 0:
        return varint(r, &n);
    case 1:
        if (r->end - r->p < 8) {
            return false;
        }
        r->p += 8;
        return true;
    case 5:
        if (r->end - r->p < 4) {
            return false;
        }
        r->p += 4;
        return true;
    case 2:
        if (!varint(r, &n) || n > (uint64_t)(r->end - r->p)) {
            return false;
        }
        payload->p = r->p;
        payload->end = r->p + n;
        r->p += n;
        return true;
    default:
        return false;
    }
}

static char *str_of(const rd *s, td_arena *a)
{
    return td_arena_strndup(a, (const char *)s->p, (size_t)(s->end - s->p));
}

/* A growable array in the arena. */
static void *grow(td_arena *a, void *v, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) {
        return v;
    }
    size_t nc = *cap ? 2 * *cap : 4;
    void *nv = td_arena_alloc(a, nc * size);
    if (nv && n) {
        memcpy(nv, v, n * size);
    }
    *cap = nc;
    return nv;
}

static td_status bad(td_err *err)
{
    return td_err_set(err, TD_INVALID, "malformed PushRequest protobuf");
}

static td_status nomem(td_err *err)
{
    return td_err_set(err, TD_NOMEM, "out of memory decoding the PushRequest");
}

static td_status decode_series(rd *r, td_arena *a, td_push_series *out, td_err *err)
{
    td_plabel *labels = NULL;
    td_slice *profs = NULL;
    size_t nl = 0, cl = 0, np = 0, cp = 0;
    while (r->p < r->end) {
        uint32_t num, wt;
        rd pl;
        if (!field(r, &num, &wt, &pl)) {
            return bad(err);
        }
        if (wt != 2) {
            continue;
        }
        if (num == 1) { /* LabelPair */
            const char *name = "", *value = "";
            while (pl.p < pl.end) {
                uint32_t n2, w2;
                rd s;
                if (!field(&pl, &n2, &w2, &s)) {
                    return bad(err);
                }
                if (w2 == 2 && (n2 == 1 || n2 == 2)) {
                    char *x = str_of(&s, a);
                    if (!x) {
                        return nomem(err);
                    }
                    *(n2 == 1 ? &name : &value) = x;
                }
            }
            labels = grow(a, labels, nl, &cl, sizeof(*labels));
            if (!labels) {
                return nomem(err);
            }
            labels[nl++] = (td_plabel){name, value};
        } else if (num == 2) { /* RawSample */
            td_slice raw = {"", 0};
            while (pl.p < pl.end) {
                uint32_t n2, w2;
                rd s;
                if (!field(&pl, &n2, &w2, &s)) {
                    return bad(err);
                }
                if (w2 == 2 && n2 == 1) {
                    raw = (td_slice){(const char *)s.p, (size_t)(s.end - s.p)};
                }
            }
            profs = grow(a, profs, np, &cp, sizeof(*profs));
            if (!profs) {
                return nomem(err);
            }
            profs[np++] = raw;
        }
        /* 3: annotations are server-side only; dropped */
    }
    *out = (td_push_series){labels, nl, profs, np};
    return TD_OK;
}

static td_status decode_pb(const void *body, size_t len, td_arena *a, td_push_series **out,
                           size_t *n, td_err *err)
{
    rd r = {body, (const uint8_t *)body + len};
    td_push_series *v = NULL;
    size_t nv = 0, cv = 0;
    while (r.p < r.end) {
        uint32_t num, wt;
        rd pl;
        if (!field(&r, &num, &wt, &pl)) {
            return bad(err);
        }
        if (num != 1 || wt != 2) {
            continue;
        }
        v = grow(a, v, nv, &cv, sizeof(*v));
        if (!v) {
            return nomem(err);
        }
        if (decode_series(&pl, a, &v[nv], err) != TD_OK) {
            return err->code;
        }
        nv++;
    }
    *out = v;
    *n = nv;
    return TD_OK;
}

/* ---- protojson ---- */

static int b64val(int c)
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

/* Standard or URL-safe base64, padding optional (as protojson accepts). */
static bool b64_decode(const char *s, size_t n, td_arena *a, td_slice *out)
{
    while (n && s[n - 1] == '=') {
        n--;
    }
    uint8_t *o = td_arena_alloc(a, n * 3 / 4 + 1);
    if (!o) {
        return false;
    }
    size_t w = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            return false;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[w++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 6) {
        return false; /* a single dangling character */
    }
    *out = (td_slice){(const char *)o, w};
    return true;
}

static json_t *get2(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return v ? v : json_object_get(o, b);
}

static td_status jbad(td_err *err, const char *what)
{
    return td_err_set(err, TD_INVALID, "invalid PushRequest JSON: %s", what);
}

static td_status decode_json(const void *body, size_t len, td_arena *a, td_push_series **out,
                             size_t *n, td_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!root) {
        return td_err_set(err, TD_INVALID, "invalid PushRequest JSON: %s", je.text);
    }
    td_status st = TD_OK;
    json_t *series = json_object_get(root, "series");
    if (!json_is_object(root) || (series && !json_is_array(series) && !json_is_null(series))) {
        st = jbad(err, "series must be an array");
        goto out;
    }
    size_t ns = json_is_array(series) ? json_array_size(series) : 0;
    td_push_series *v = td_arena_calloc(a, ns ? ns : 1, sizeof(*v));
    if (!v) {
        st = nomem(err);
        goto out;
    }
    for (size_t i = 0; i < ns; i++) {
        json_t *s = json_array_get(series, i);
        json_t *labels = json_object_get(s, "labels"), *samples = json_object_get(s, "samples");
        if (!json_is_object(s) || (labels && !json_is_array(labels) && !json_is_null(labels)) ||
            (samples && !json_is_array(samples) && !json_is_null(samples))) {
            st = jbad(err, "bad series entry");
            goto out;
        }
        size_t nl = json_is_array(labels) ? json_array_size(labels) : 0;
        size_t np = json_is_array(samples) ? json_array_size(samples) : 0;
        td_plabel *lv = td_arena_calloc(a, nl ? nl : 1, sizeof(*lv));
        td_slice *pv = td_arena_calloc(a, np ? np : 1, sizeof(*pv));
        if (!lv || !pv) {
            st = nomem(err);
            goto out;
        }
        for (size_t k = 0; k < nl; k++) {
            json_t *l = json_array_get(labels, k);
            json_t *nm = json_object_get(l, "name"), *vl = json_object_get(l, "value");
            if (!json_is_object(l) || (nm && !json_is_string(nm)) || (vl && !json_is_string(vl))) {
                st = jbad(err, "bad label");
                goto out;
            }
            const char *ns_ = nm ? json_string_value(nm) : "";
            const char *vs = vl ? json_string_value(vl) : "";
            lv[k].name = td_arena_strndup(a, ns_, strlen(ns_));
            lv[k].value = td_arena_strndup(a, vs, strlen(vs));
            if (!lv[k].name || !lv[k].value) {
                st = nomem(err);
                goto out;
            }
        }
        for (size_t k = 0; k < np; k++) {
            json_t *smp = json_array_get(samples, k);
            json_t *raw = json_is_object(smp) ? get2(smp, "rawProfile", "raw_profile") : NULL;
            if (!json_is_object(smp) || (raw && !json_is_string(raw))) {
                st = jbad(err, "bad sample");
                goto out;
            }
            pv[k] = (td_slice){"", 0};
            if (raw && !b64_decode(json_string_value(raw), json_string_length(raw), a, &pv[k])) {
                st = jbad(err, "rawProfile is not valid base64");
                goto out;
            }
        }
        v[i] = (td_push_series){lv, nl, pv, np};
    }
    *out = v;
    *n = ns;
out:
    json_decref(root);
    return st;
}

td_status td_profiler_push_decode(const void *body, size_t len, bool json, td_arena *a,
                                  td_push_series **out, size_t *n, td_err *err)
{
    *out = NULL;
    *n = 0;
    if (json) {
        if (len == 0) {
            return td_err_set(err, TD_INVALID, "empty JSON body");
        }
        return decode_json(body, len, a, out, n, err);
    }
    return decode_pb(body, len, a, out, n, err);
}
