/*
 * pprof_decode.c - pprof bytes -> a checked td_pprof_profile (API-CONTRACT §7).
 *
 * protobuf-c unpacks into the request arena; what it accepts is then checked
 * once here, so that everything downstream (normalisation, flame graphs) can
 * index string_table and resolve IDs without checking again. protobuf-c itself
 * refuses truncated input, wrong wire types and bad UTF-8 in string fields.
 * Memory: a message unpacks to at most a small multiple of its size, and the
 * size is bounded by profile-max-size before unpacking; the count limits are
 * checked right after.
 */
#include "profiler/internal.h"

#include "core/gzip.h"

#include <inttypes.h>
#include <string.h>

/* ---- an ID -> index map (open addressing; IDs are non-zero) ---- */

td_status td__idmap_init(td__idmap *m, size_t n, td_arena *a, td_err *err)
{
    size_t cap = 16;
    while (cap < 2 * n + 1) {
        cap *= 2;
    }
    m->cap = cap;
    m->dense = true;
    m->ndense = 0;
    m->keys = td_arena_calloc(a, cap, sizeof(*m->keys));
    m->vals = td_arena_calloc(a, cap, sizeof(*m->vals));
    if (!m->keys || !m->vals) {
        return td_err_set(err, TD_NOMEM, "out of memory indexing the profile");
    }
    return TD_OK;
}

static size_t id_slot(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

static void idmap_insert(td__idmap *m, uint64_t id, uint32_t v)
{
    size_t i = id_slot(id, m->cap);
    while (m->keys[i]) {
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = id;
    m->vals[i] = v;
}

bool td__idmap_put(td__idmap *m, uint64_t id, uint32_t v)
{
    if (m->dense) {
        if (v == m->ndense && id == (uint64_t)v + 1) {
            m->ndense++;
            return true;
        }
        m->dense = false;
        for (uint32_t k = 0; k < m->ndense; k++) {
            idmap_insert(m, (uint64_t)k + 1, k);
        }
    }
    size_t i = id_slot(id, m->cap);
    while (m->keys[i]) {
        if (m->keys[i] == id) {
            return false;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = id;
    m->vals[i] = v;
    return true;
}

bool td__idmap_get(const td__idmap *m, uint64_t id, uint32_t *v)
{
    if (!id) {
        return false;
    }
    if (m->dense) {
        if (id > m->ndense) {
            return false;
        }
        *v = (uint32_t)(id - 1);
        return true;
    }
    size_t i = id_slot(id, m->cap);
    while (m->keys[i]) {
        if (m->keys[i] == id) {
            *v = m->vals[i];
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return false;
}

/* ---- checks ---- */

#define STR_OK(p, idx) ((idx) >= 0 && (uint64_t)(idx) < (uint64_t)(p)->n_string_table)

static td_status bad_str(td_err *err, const char *what, size_t i, int64_t idx)
{
    return td_err_set(err, TD_INVALID, "%s %zu: string index %" PRId64 " out of range", what, i,
                      idx);
}

static td_status check_value_type(const td_pprof_profile *p, const td_pprof_value_type *vt,
                                  const char *what, size_t i, td_err *err)
{
    if (!STR_OK(p, vt->type)) {
        return bad_str(err, what, i, vt->type);
    }
    if (!STR_OK(p, vt->unit)) {
        return bad_str(err, what, i, vt->unit);
    }
    return TD_OK;
}

static td_status check_limits(const td_pprof_profile *p, const td_profiler_opts *o, td_err *err)
{
    struct {
        size_t n;
        int64_t max;
        const char *what, *opt;
    } lim[] = {
        {p->n_sample, o->max_samples, "samples", "profile-max-samples"},
        {p->n_location, o->max_locations, "locations", "profile-max-locations"},
        {p->n_function, o->max_functions, "functions", "profile-max-functions"},
        {p->n_string_table, o->max_strings, "strings", "profile-max-strings"},
    };
    for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
        if (lim[i].max > 0 && (uint64_t)lim[i].n > (uint64_t)lim[i].max) {
            return td_err_set(err, TD_TOO_LARGE,
                              "profile has %zu %s, more than the limit of %" PRId64 " (%s)",
                              lim[i].n, lim[i].what, lim[i].max, lim[i].opt);
        }
    }
    return TD_OK;
}

/* Every index and reference of p, after the limits. */
static td_status check_profile(const td_pprof_profile *p, td_arena *a, td_err *err)
{
    if (p->n_string_table == 0) {
        /* nothing may refer to a string: only an entirely empty profile passes */
        if (p->n_sample_type || p->n_sample || p->n_function || p->n_mapping || p->n_comment ||
            p->period_type) {
            return td_err_set(err, TD_INVALID, "empty string table");
        }
        return TD_OK;
    }
    if (p->string_table[0][0] != '\0') {
        return td_err_set(err, TD_INVALID, "string_table[0] must be the empty string");
    }
    for (size_t i = 0; i < p->n_sample_type; i++) {
        if (!p->sample_type[i]) {
            return td_err_set(err, TD_INVALID, "sample_type %zu is missing", i);
        }
        if (check_value_type(p, p->sample_type[i], "sample_type", i, err) != TD_OK) {
            return err->code;
        }
    }
    if (p->period_type && check_value_type(p, p->period_type, "period_type", 0, err) != TD_OK) {
        return err->code;
    }
    int64_t scalars[] = {p->drop_frames, p->keep_frames, p->default_sample_type, p->doc_url};
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
        if (!STR_OK(p, scalars[i])) {
            return bad_str(err, "profile field", i, scalars[i]);
        }
    }
    for (size_t i = 0; i < p->n_comment; i++) {
        if (!STR_OK(p, p->comment[i])) {
            return bad_str(err, "comment", i, p->comment[i]);
        }
    }

    td__idmap fm, lm;
    if (td__idmap_init(&fm, p->n_function, a, err) != TD_OK ||
        td__idmap_init(&lm, p->n_location, a, err) != TD_OK) {
        return err->code;
    }
    for (size_t i = 0; i < p->n_function; i++) {
        const td_pprof_function *f = p->function[i];
        if (!STR_OK(p, f->name) || !STR_OK(p, f->system_name) || !STR_OK(p, f->filename)) {
            return td_err_set(err, TD_INVALID, "function %" PRIu64 ": string index out of range",
                              f->id);
        }
        if (!f->id) {
            return td_err_set(err, TD_INVALID, "function %zu has ID 0", i);
        }
        if (!td__idmap_put(&fm, f->id, (uint32_t)i)) {
            return td_err_set(err, TD_INVALID, "duplicate function ID %" PRIu64, f->id);
        }
    }
    for (size_t i = 0; i < p->n_mapping; i++) {
        const td_pprof_mapping *m = p->mapping[i];
        if (!STR_OK(p, m->filename) || !STR_OK(p, m->build_id)) {
            return td_err_set(err, TD_INVALID, "mapping %" PRIu64 ": string index out of range",
                              m->id);
        }
    }
    for (size_t i = 0; i < p->n_location; i++) {
        const td_pprof_location *l = p->location[i];
        if (!l->id) {
            return td_err_set(err, TD_INVALID, "location %zu has ID 0", i);
        }
        if (!td__idmap_put(&lm, l->id, (uint32_t)i)) {
            return td_err_set(err, TD_INVALID, "duplicate location ID %" PRIu64, l->id);
        }
        for (size_t k = 0; k < l->n_line; k++) {
            uint32_t fi;
            if (!td__idmap_get(&fm, l->line[k]->function_id, &fi)) {
                return td_err_set(err, TD_INVALID,
                                  "location %" PRIu64 " refers to unknown function %" PRIu64, l->id,
                                  l->line[k]->function_id);
            }
        }
    }
    for (size_t i = 0; i < p->n_sample; i++) {
        const td_pprof_sample *s = p->sample[i];
        if (s->n_value != p->n_sample_type) {
            return td_err_set(err, TD_INVALID, "sample %zu has %zu values for %zu sample types", i,
                              s->n_value, p->n_sample_type);
        }
        for (size_t k = 0; k < s->n_location_id; k++) {
            uint32_t li;
            if (!td__idmap_get(&lm, s->location_id[k], &li)) {
                return td_err_set(err, TD_INVALID, "sample %zu refers to unknown location %" PRIu64,
                                  i, s->location_id[k]);
            }
        }
        for (size_t k = 0; k < s->n_label; k++) {
            const td_pprof_label *lb = s->label[k];
            if (!STR_OK(p, lb->key) || !STR_OK(p, lb->str) || !STR_OK(p, lb->num_unit)) {
                return td_err_set(err, TD_INVALID, "sample %zu: label string index out of range",
                                  i);
            }
        }
    }
    return TD_OK;
}

td_status td_profiler_pprof_decode(const void *data, size_t len, const td_profiler_opts *o,
                                   td_arena *a, td_pprof_profile **out, td_err *err)
{
    *out = NULL;
    const uint8_t *b = data;
    td_slice raw = {(const char *)data, len};
    size_t max = o->max_size ? (size_t)o->max_size : SIZE_MAX;
    if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
        td_err gerr;
        td_err_init(&gerr);
        td_status st = td_gunzip_arena(data, len, max, a, &raw, &gerr);
        if (st == TD_TOO_LARGE) {
            return td_err_set(err, TD_TOO_LARGE,
                              "decompressed profile exceeds the limit of %zu bytes "
                              "(profile-max-size)",
                              max);
        }
        if (st != TD_OK) {
            return td_err_set(err, st, "failed to decompress the profile: %s", gerr.msg);
        }
    } else if (len > max) {
        return td_err_set(err, TD_TOO_LARGE,
                          "profile of %zu bytes exceeds the limit of %zu bytes (profile-max-size)",
                          len, max);
    }
    ProtobufCAllocator pa;
    td_proto_allocator_init(&pa, a);
    td_pprof_profile *p = (td_pprof_profile *)protobuf_c_message_unpack(
        &google__v1__profile__descriptor, &pa, raw.len, (const uint8_t *)raw.ptr);
    if (!p) {
        return td_err_set(err, TD_INVALID,
                          "failed to parse the profile: malformed or truncated "
                          "pprof protobuf");
    }
    if (check_limits(p, o, err) != TD_OK || check_profile(p, a, err) != TD_OK) {
        return err->code;
    }
    *out = p;
    return TD_OK;
}
