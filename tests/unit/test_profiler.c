/*
 * test_profiler.c - td_profiler: pprof decoding and its limits, the profile-type
 * derivation table of API-CONTRACT §5.3 (Go CPU, heap, mutex, block, goroutine,
 * wall, legacy suffixes, sampleRate scaling), sample_type_config, label rules,
 * from/until, folded text, multipart, and push.v1.
 *
 * Profiles are built in memory with protobuf-c (pbld below) and packed, so each
 * test states exactly what the client sent.
 */
#include "api/connect.h"
#include "core/gzip.h"
#include "core/mem.h"
#include "profiler/profiler.h"
#include "td_test.h"

#include <stdlib.h>
#include <string.h>

/* ---- a pprof builder ---- */

#define MAXN 64

typedef struct pbld {
    td_arena *a;
    td_pprof_profile p;
    char *str[MAXN];
    td_pprof_value_type vt[8], *vtp[8], period;
    td_pprof_function fn[MAXN], *fnp[MAXN];
    td_pprof_location loc[MAXN], *locp[MAXN];
    td_pprof_line line[MAXN], *linep[MAXN];
    size_t nline;
    td_pprof_mapping map, *mapp[1];
    td_pprof_sample smp[MAXN], *smpp[MAXN];
    td_pprof_label lab[MAXN], *labp[MAXN];
    size_t nlab;
    uint64_t ids[MAXN * 4];
    int64_t vals[MAXN * 4];
    size_t nids, nvals;
} pbld;

static void pb_init(pbld *b, td_arena *a)
{
    memset(b, 0, sizeof(*b));
    b->a = a;
    google__v1__profile__init(&b->p);
    b->str[0] = "";
    b->p.string_table = b->str;
    b->p.n_string_table = 1;
    b->p.sample_type = b->vtp;
    b->p.function = b->fnp;
    b->p.location = b->locp;
    b->p.sample = b->smpp;
}

static int64_t S(pbld *b, const char *s)
{
    for (size_t i = 0; i < b->p.n_string_table; i++) {
        if (strcmp(b->str[i], s) == 0) {
            return (int64_t)i;
        }
    }
    TD_CHECK(b->p.n_string_table < MAXN);
    b->str[b->p.n_string_table] = (char *)s;
    return (int64_t)b->p.n_string_table++;
}

static void add_type(pbld *b, const char *type, const char *unit)
{
    size_t i = b->p.n_sample_type++;
    google__v1__value_type__init(&b->vt[i]);
    b->vt[i].type = S(b, type);
    b->vt[i].unit = S(b, unit);
    b->vtp[i] = &b->vt[i];
}

static void set_period(pbld *b, const char *type, const char *unit)
{
    google__v1__value_type__init(&b->period);
    b->period.type = S(b, type);
    b->period.unit = S(b, unit);
    b->p.period_type = &b->period;
}

/* A function; returns its ID (index + 1). */
static uint64_t add_fn(pbld *b, const char *name)
{
    size_t i = b->p.n_function++;
    google__v1__function__init(&b->fn[i]);
    b->fn[i].id = i + 1;
    b->fn[i].name = S(b, name);
    b->fn[i].system_name = S(b, name);
    b->fn[i].filename = S(b, "main.go");
    b->fnp[i] = &b->fn[i];
    return i + 1;
}

/* A location with n lines (fids[0] innermost); returns its ID (index + 100). */
static uint64_t add_loc(pbld *b, const uint64_t *fids, size_t n)
{
    size_t i = b->p.n_location++;
    google__v1__location__init(&b->loc[i]);
    b->loc[i].id = i + 100;
    b->loc[i].line = &b->linep[b->nline];
    for (size_t k = 0; k < n; k++) {
        td_pprof_line *l = &b->line[b->nline];
        google__v1__line__init(l);
        l->function_id = fids[k];
        l->line = (int64_t)(10 * (k + 1));
        b->linep[b->nline++] = l;
    }
    b->loc[i].n_line = n;
    b->locp[i] = &b->loc[i];
    return i + 100;
}

/* A sample; labels as "key", "value" pairs (NULL-terminated). */
static td_pprof_sample *add_sample(pbld *b, const uint64_t *locs, size_t nlocs, const int64_t *v,
                                   size_t nv, const char *const *labels)
{
    size_t i = b->p.n_sample++;
    td_pprof_sample *s = &b->smp[i];
    google__v1__sample__init(s);
    s->location_id = &b->ids[b->nids];
    memcpy(s->location_id, locs, nlocs * sizeof(uint64_t));
    b->nids += nlocs;
    s->n_location_id = nlocs;
    s->value = &b->vals[b->nvals];
    memcpy(s->value, v, nv * sizeof(int64_t));
    b->nvals += nv;
    s->n_value = nv;
    s->label = &b->labp[b->nlab];
    for (size_t k = 0; labels && labels[k]; k += 2) {
        td_pprof_label *l = &b->lab[b->nlab];
        google__v1__label__init(l);
        l->key = S(b, labels[k]);
        l->str = S(b, labels[k + 1]);
        b->labp[b->nlab++] = l;
        s->n_label++;
    }
    b->smpp[i] = s;
    return s;
}

/* Serialized (optionally gzipped) into the arena. */
static td_slice pack(pbld *b, bool gz)
{
    size_t n = protobuf_c_message_get_packed_size(&b->p.base);
    uint8_t *buf = td_arena_alloc(b->a, n + 1);
    protobuf_c_message_pack(&b->p.base, buf);
    if (!gz) {
        return (td_slice){(const char *)buf, n};
    }
    td_buf z = TD_BUF_INIT;
    td_err err;
    TD_CHECK(td_gzip(buf, n, &z, &err) == TD_OK);
    char *c = td_arena_memdup(b->a, z.data, z.len);
    size_t zl = z.len;
    td_buf_release(&z);
    return (td_slice){c, zl};
}

/* Two functions main -> work, one location each; a classic 2-type sample set. */
static void go_stacks(pbld *b, uint64_t *l_main, uint64_t *l_work)
{
    uint64_t fm = add_fn(b, "main.main"), fw = add_fn(b, "main.work");
    *l_main = add_loc(b, &fm, 1);
    *l_work = add_loc(b, &fw, 1);
}

/* ---- capturing writes ---- */

#define MAXW 16
static td_pwrite writes[MAXW];
static size_t nwrites;

static td_status capture(void *ud, const td_pwrite *w, td_err *err)
{
    (void)ud;
    (void)err;
    TD_CHECK(nwrites < MAXW);
    writes[nwrites++] = *w;
    return TD_OK;
}

static const char *label(const td_pseries_in *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++) {
        if (strcmp(s->labels[i].name, name) == 0) {
            return s->labels[i].value;
        }
    }
    return NULL;
}

/* The series of the captured writes with this profile type ID, or NULL. */
static const td_pseries_in *series_of(const char *ptid)
{
    for (size_t w = 0; w < nwrites; w++) {
        for (size_t i = 0; i < writes[w].nseries; i++) {
            const char *v = label(&writes[w].series[i], "__profile_type__");
            if (v && strcmp(v, ptid) == 0) {
                return &writes[w].series[i];
            }
        }
    }
    return NULL;
}

static size_t total_series(void)
{
    size_t n = 0;
    for (size_t w = 0; w < nwrites; w++) {
        n += writes[w].nseries;
    }
    return n;
}

static td_profiler_opts opts(void)
{
    td_profiler_opts o = {0};
    const td_opt_table t = {"profiler", td_profiler_opt_rows, td_profiler_nopt_rows, &o};
    td_err err;
    TD_CHECK(td_config_defaults(&t, 1, &err) == TD_OK);
    return o;
}

#define NOW_NS 1764000000000000000LL

/* POST /ingest with format=pprof (or the given content type) of body. */
static td_status ingest(const char *name, const char *format, const char *ctype, td_slice body,
                        td_arena *a, td_pingest_result *res, td_err *err)
{
    td_profiler_opts o = opts();
    nwrites = 0;
    td_pingest_req r = {.tenant = "t1",
                        .name = name,
                        .from = "1764000000",
                        .until = "1764000010",
                        .spy_name = "gospy",
                        .format = format,
                        .content_type = ctype,
                        .body = body.ptr,
                        .len = body.len,
                        .now_ns = NOW_NS};
    td_err_init(err);
    return td_profiler_ingest(&o, &r, a, capture, NULL, res, err);
}

/* ---- tests: derivation (§5.3 table) ---- */

static void test_go_cpu(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    pbld b;
    pb_init(&b, &a);
    add_type(&b, "samples", "count");
    add_type(&b, "cpu", "nanoseconds");
    set_period(&b, "cpu", "nanoseconds");
    uint64_t lm, lw;
    go_stacks(&b, &lm, &lw);
    uint64_t st[] = {lw, lm};
    add_sample(&b, st, 2, (int64_t[]){3, 30000000}, 2, NULL);
    add_sample(&b, &lm, 1, (int64_t[]){1, 10000000}, 2, NULL);
    td_pingest_result res;
    td_err err;
    TD_ASSERT_OK(ingest("myapp{env=prod}", "pprof", "application/octet-stream", pack(&b, true), &a,
                        &res, &err));
    TD_ASSERT_EQ_INT(nwrites, 1);
    TD_ASSERT_EQ_INT(total_series(), 2);
    const td_pseries_in *s = series_of("process_cpu:samples:count:cpu:nanoseconds");
    TD_CHECK(s);
    TD_ASSERT_EQ_STR(label(s, "__name__"), "process_cpu");
    TD_ASSERT_EQ_STR(label(s, "__type__"), "samples");
    TD_ASSERT_EQ_STR(label(s, "__unit__"), "count");
    TD_ASSERT_EQ_STR(label(s, "__period_type__"), "cpu");
    TD_ASSERT_EQ_STR(label(s, "__period_unit__"), "nanoseconds");
    TD_ASSERT_EQ_STR(label(s, "service_name"), "myapp");
    TD_ASSERT_EQ_STR(label(s, "__service_name__"), "myapp");
    TD_ASSERT_EQ_STR(label(s, "pyroscope_spy"), "gospy");
    TD_ASSERT_EQ_STR(label(s, "env"), "prod");
    TD_CHECK(!label(s, "__delta__"));
    TD_CHECK(!label(s, "app_name"));
    TD_ASSERT_EQ_INT(s->nsamples, 2);
    /* labels sorted and unique */
    for (size_t i = 1; i < s->nlabels; i++) {
        TD_CHECK(strcmp(s->labels[i - 1].name, s->labels[i].name) < 0);
    }
    s = series_of("process_cpu:cpu:nanoseconds:cpu:nanoseconds");
    TD_CHECK(s);
    TD_ASSERT_EQ_INT(s->samples[0].value + s->samples[1].value, 40000000);
    /* stacks: leaf first */
    const td_pwrite *w = &writes[0];
    TD_ASSERT_EQ_INT(w->nstacks, 2);
    TD_ASSERT_EQ_INT(w->stacks[0].nframes, 2);
    TD_ASSERT_EQ_STR(w->locs[w->stacks[0].frames[0]].function, "main.work");
    TD_ASSERT_EQ_STR(w->locs[w->stacks[0].frames[1]].function, "main.main");
    /* time: from (time_nanos unset), duration until - from */
    TD_ASSERT_EQ_INT(w->time_ns, 1764000000000000000LL);
    TD_ASSERT_EQ_INT(w->duration_ns, 10000000000LL);
    TD_ASSERT_EQ_STR(w->tenant, "t1");
    TD_ASSERT_EQ_INT(res.samples, 4);
    td_arena_release(&a);
}

/* One profile with the given types/period; returns the metric name derived. */
static const char *derive(const char *const (*types)[2], size_t nt, const char *pt, const char *pu,
                          const char *stc_json, td_arena *a)
{
    pbld *b = td_arena_alloc(a, sizeof(pbld));
    pb_init(b, a);
    for (size_t i = 0; i < nt; i++) {
        add_type(b, types[i][0], types[i][1]);
    }
    if (pt) {
        set_period(b, pt, pu);
    }
    td_pstc_set stc = {0};
    td_err err;
    if (stc_json) {
        TD_CHECK(td_profiler_parse_stc(stc_json, strlen(stc_json), a, &stc, &err) == TD_OK);
    }
    return td_profiler_metric_name(&b->p, &stc);
}

static void test_derivation_table(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    const char *const cpu[][2] = {{"samples", "count"}, {"cpu", "nanoseconds"}};
    const char *const heap[][2] = {{"alloc_objects", "count"},
                                   {"alloc_space", "bytes"},
                                   {"inuse_objects", "count"},
                                   {"inuse_space", "bytes"}};
    const char *const cont[][2] = {{"contentions", "count"}, {"delay", "nanoseconds"}};
    const char *const gor[][2] = {{"goroutine", "count"}};
    const char *const wall[][2] = {{"samples", "count"}, {"wall", "nanoseconds"}};
    const char *const space[][2] = {{"space", "bytes"}};
    const char *const other[][2] = {{"foo", "count"}, {"bar", "count"}};
    TD_ASSERT_EQ_STR(derive(cpu, 2, "cpu", "nanoseconds", NULL, &a), "process_cpu");
    TD_ASSERT_EQ_STR(derive(heap, 4, "space", "bytes", NULL, &a), "memory");
    /* an unconfigured block profile looks like mutex (§5.3 step 2) */
    TD_ASSERT_EQ_STR(derive(cont, 2, "contentions", "count", NULL, &a), "mutex");
    TD_ASSERT_EQ_STR(derive(cont, 2, "contentions", "count",
                            "{\"contentions\":{\"display-name\":\"block_count\"},"
                            "\"delay\":{\"display-name\":\"block_duration\"}}",
                            &a),
                     "block");
    TD_ASSERT_EQ_STR(derive(cont, 2, "contentions", "count",
                            "{\"contentions\":{\"display-name\":\"mutex_count\"}}", &a),
                     "mutex");
    TD_ASSERT_EQ_STR(derive(gor, 1, "goroutine", "count", NULL, &a), "goroutines");
    TD_ASSERT_EQ_STR(derive(wall, 2, "wall", "nanoseconds", NULL, &a), "wall");
    TD_ASSERT_EQ_STR(derive(space, 1, NULL, NULL, NULL, &a), "memory");
    TD_ASSERT_EQ_STR(derive(other, 2, NULL, NULL, NULL, &a), "bar");
    /* sample_type_config replaces the defaults: samples is no longer "cpu" */
    const char *const smp[][2] = {{"samples", "count"}};
    TD_ASSERT_EQ_STR(derive(smp, 1, NULL, NULL, NULL, &a), "process_cpu");
    TD_ASSERT_EQ_STR(derive(smp, 1, NULL, NULL, "{}", &a), "samples");
    TD_ASSERT_EQ_STR(derive(smp, 1, NULL, NULL, "{\"samples\":{\"display-name\":\"x_cpu\"}}", &a),
                     "process_cpu");
    td_arena_release(&a);
}

/* The profile type IDs of a whole ingest, for the Go client profiles of §5.3. */
static void check_ids(const char *const (*types)[2], size_t nt, const char *pt, const char *pu,
                      const char *const *want, size_t nwant)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    pbld b;
    pb_init(&b, &a);
    for (size_t i = 0; i < nt; i++) {
        add_type(&b, types[i][0], types[i][1]);
    }
    set_period(&b, pt, pu);
    uint64_t lm, lw;
    go_stacks(&b, &lm, &lw);
    int64_t v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    add_sample(&b, &lw, 1, v, nt, NULL);
    td_pingest_result res;
    td_err err;
    TD_ASSERT_OK(ingest("svc", "pprof", NULL, pack(&b, false), &a, &res, &err));
    TD_ASSERT_EQ_INT(total_series(), nwant);
    for (size_t i = 0; i < nwant; i++) {
        if (!series_of(want[i])) {
            TD__FAIL("missing profile type %s", want[i]);
        }
    }
    td_arena_release(&a);
}

static void test_go_profile_types(void)
{
    const char *const heap[][2] = {{"alloc_objects", "count"},
                                   {"alloc_space", "bytes"},
                                   {"inuse_objects", "count"},
                                   {"inuse_space", "bytes"}};
    const char *const heap_ids[] = {
        "memory:alloc_objects:count:space:bytes", "memory:alloc_space:bytes:space:bytes",
        "memory:inuse_objects:count:space:bytes", "memory:inuse_space:bytes:space:bytes"};
    check_ids(heap, 4, "space", "bytes", heap_ids, 4);
    const char *const cont[][2] = {{"contentions", "count"}, {"delay", "nanoseconds"}};
    const char *const mutex_ids[] = {"mutex:contentions:count:contentions:count",
                                     "mutex:delay:nanoseconds:contentions:count"};
    check_ids(cont, 2, "contentions", "count", mutex_ids, 2);
    const char *const gor[][2] = {{"goroutine", "count"}};
    const char *const gor_ids[] = {"goroutines:goroutine:count:goroutine:count"};
    check_ids(gor, 1, "goroutine", "count", gor_ids, 1);
    const char *const wall[][2] = {{"wall", "nanoseconds"}};
    const char *const wall_ids[] = {"wall:wall:nanoseconds:wall:nanoseconds"};
    check_ids(wall, 1, "wall", "nanoseconds", wall_ids, 1);
}

/* pyroscope-go's block profile: multipart with sample_type_config naming it block. */
static const char *mp_body(td_arena *a, td_slice prof, const char *stc, bool prev, size_t *len)
{
    td_buf b = TD_BUF_INIT;
    const char *bd = "XyZb0undary";
    td_buf_addf(&b,
                "--%s\r\nContent-Disposition: form-data; name=\"profile\"; "
                "filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                bd);
    td_buf_add(&b, prof.ptr, prof.len);
    if (prev) {
        td_buf_addf(&b,
                    "\r\n--%s\r\nContent-Disposition: form-data; name=\"prev_profile\"; "
                    "filename=\"profile.pprof\"\r\n\r\n",
                    bd);
        td_buf_add(&b, prof.ptr, prof.len);
    }
    if (stc) {
        td_buf_addf(&b,
                    "\r\n--%s\r\nContent-Disposition: form-data; name=\"sample_type_config\"; "
                    "filename=\"sample_type_config.json\"\r\n\r\n%s",
                    bd, stc);
    }
    td_buf_addf(&b, "\r\n--%s--\r\n", bd);
    char *out = td_arena_memdup(a, b.data, b.len);
    *len = b.len;
    td_buf_release(&b);
    return out;
}

static void test_multipart_block(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    pbld b;
    pb_init(&b, &a);
    add_type(&b, "contentions", "count");
    add_type(&b, "delay", "nanoseconds");
    set_period(&b, "contentions", "count");
    uint64_t lm, lw;
    go_stacks(&b, &lm, &lw);
    add_sample(&b, &lw, 1, (int64_t[]){2, 500}, 2, NULL);
    size_t len;
    const char *body = mp_body(&a, pack(&b, true),
                               "{\"contentions\":{\"units\":\"lock_samples\",\"display-name\":"
                               "\"block_count\"},\"delay\":{\"units\":\"lock_nanoseconds\","
                               "\"display-name\":\"block_duration\"}}",
                               false, &len);
    const char *ct = "multipart/form-data; boundary=XyZb0undary";
    td_pingest_result res;
    td_err err;
    TD_ASSERT_OK(ingest("app{}", NULL, ct, (td_slice){body, len}, &a, &res, &err));
    TD_CHECK(series_of("block:contentions:count:contentions:count"));
    TD_CHECK(series_of("block:delay:nanoseconds:contentions:count"));
    /* format=pprof with a multipart body fails (§5.0) */
    TD_ASSERT_EQ_INT(ingest("app", "pprof", ct, (td_slice){body, len}, &a, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 422);
    /* prev_profile -> 422 */
    body = mp_body(&a, pack(&b, true), NULL, true, &len);
    TD_ASSERT_EQ_INT(ingest("app", NULL, ct, (td_slice){body, len}, &a, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 422);
    TD_CHECK(strstr(err.msg, "unsupported client version"));
    /* no profile part: 200, nothing stored */
    const char *empty = "--XyZb0undary\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n"
                        "--XyZb0undary--\r\n";
    TD_ASSERT_OK(ingest("app", NULL, ct, (td_slice){empty, strlen(empty)}, &a, &res, &err));
    TD_ASSERT_EQ_INT(nwrites, 0);
    /* malformed multipart -> 422 */
    TD_ASSERT_EQ_INT(ingest("app", NULL, ct, (td_slice){"garbage", 7}, &a, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 422);
    td_arena_release(&a);
}

static void test_multipart_parser(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_mpart *p;
    size_t n;
    td_err err;
    const char *body = "preamble\r\n--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
                       "one\r\n--b\r\ncontent-disposition: form-data; name=\"f\"; filename=\"x\""
                       "\r\n\r\nbin\r\nary\r\n--b--\r\n";
    TD_ASSERT_OK(td_profiler_multipart("multipart/form-data; boundary=\"b\"", body, strlen(body),
                                       &a, &p, &n, &err));
    TD_ASSERT_EQ_INT(n, 2);
    TD_ASSERT_EQ_STR(p[0].name, "a");
    TD_CHECK(p[0].filename == NULL);
    TD_ASSERT_EQ_INT(p[0].data.len, 3);
    TD_ASSERT_EQ_STR(p[1].name, "f");
    TD_ASSERT_EQ_STR(p[1].filename, "x");
    TD_ASSERT_EQ_INT(p[1].data.len, 8);
    TD_ASSERT_EQ_MEM(p[1].data.ptr, "bin\r\nary", 8);
    TD_ASSERT_EQ_INT(
        td_profiler_multipart("multipart/form-data", body, strlen(body), &a, &p, &n, &err),
        TD_INVALID);
    const char *trunc = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end";
    TD_ASSERT_EQ_INT(td_profiler_multipart("multipart/form-data; boundary=b", trunc, strlen(trunc),
                                           &a, &p, &n, &err),
                     TD_INVALID);
    td_arena_release(&a);
}

/* ---- labels ---- */

static void test_labels(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    pbld b;
    pb_init(&b, &a);
    add_type(&b, "cpu", "nanoseconds");
    set_period(&b, "cpu", "nanoseconds");
    uint64_t lm, lw;
    go_stacks(&b, &lm, &lw);
    const char *const l1[] = {
        "span_id",   "00000000000000ab", "trace_id", "0102030405060708090a0b0c0d0e0f10",
        "span_name", "GET /cart",        NULL};
    const char *const l2[] = {"profile_id", "00000000000000CD",    "span_name", "GET /cart",
                              "env",        "ignored-series-wins", NULL};
    const char *const l3[] = {"thread", "t1", NULL};
    add_sample(&b, &lw, 1, (int64_t[]){10}, 1, l1);
    add_sample(&b, &lm, 1, (int64_t[]){20}, 1, l2);
    add_sample(&b, &lm, 1, (int64_t[]){30}, 1, l3);
    add_sample(&b, &lm, 1, (int64_t[]){0}, 1, NULL); /* zero: dropped */
    td_pingest_result res;
    td_err err;
    TD_ASSERT_OK(ingest("shop{env=prod, service_name=checkout,__secret=x,__session_id__=s1,"
                        "otel.scope.name=lib}",
                        "pprof", NULL, pack(&b, false), &a, &res, &err));
    TD_ASSERT_EQ_INT(nwrites, 1);
    /* groups: {span_name} for samples 1 and 2 (env from the name wins), {thread} */
    TD_ASSERT_EQ_INT(writes[0].nseries, 2);
    TD_ASSERT_EQ_INT(res.samples, 3);
    const td_pseries_in *sp = NULL, *th = NULL;
    for (size_t i = 0; i < writes[0].nseries; i++) {
        const td_pseries_in *s = &writes[0].series[i];
        if (label(s, "span_name")) {
            sp = s;
        }
        if (label(s, "thread")) {
            th = s;
        }
        TD_ASSERT_EQ_STR(label(s, "service_name"), "checkout");
        TD_ASSERT_EQ_STR(label(s, "__service_name__"), "checkout");
        TD_CHECK(!label(s, "app_name")); /* pprof: the app name is dropped */
        TD_ASSERT_EQ_STR(label(s, "env"), "prod");
        TD_ASSERT_EQ_STR(label(s, "__session_id__"), "s1");
        TD_ASSERT_EQ_STR(label(s, "otel.scope.name"), "lib");
        TD_CHECK(!label(s, "__secret"));
        TD_CHECK(!label(s, "span_id") && !label(s, "trace_id") && !label(s, "profile_id"));
        TD_ASSERT_EQ_STR(label(s, "__name__"), "process_cpu");
    }
    TD_CHECK(sp && th);
    TD_ASSERT_EQ_STR(label(sp, "span_name"), "GET /cart");
    TD_ASSERT_EQ_INT(sp->nsamples, 2);
    TD_ASSERT_EQ_U64(sp->samples[0].span_id, 0xab);
    TD_ASSERT_EQ_INT(sp->samples[0].trace_id[0], 1);
    TD_ASSERT_EQ_INT(sp->samples[0].trace_id[15], 0x10);
    TD_ASSERT_EQ_U64(sp->samples[1].span_id, 0xcd); /* legacy profile_id, upper case hex */
    TD_ASSERT_EQ_INT(th->nsamples, 1);
    TD_ASSERT_EQ_U64(th->samples[0].span_id, 0);
    /* invalid label names in `name` -> 400 */
    TD_ASSERT_EQ_INT(ingest("shop{bad-name=1}", "pprof", NULL, pack(&b, false), &a, &res, &err),
                     TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 400);
    TD_CHECK(strncmp(err.msg, "name: ", 6) == 0);
    TD_ASSERT_EQ_INT(ingest("{a=b}", "pprof", NULL, pack(&b, false), &a, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(ingest(NULL, "pprof", NULL, pack(&b, false), &a, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(ingest("a{b=c", "pprof", NULL, pack(&b, false), &a, &res, &err), TD_INVALID);

    /* sample labels inside the pprof: an empty name or non-UTF-8 text refuses the profile */
    const char *const bad[][3] = {{"", "x", NULL}, {"bad\xffkey", "x", NULL}, {"k", "v\xff", NULL}};
    for (size_t i = 0; i < 3; i++) {
        size_t before = nwrites;
        pbld c;
        pb_init(&c, &a);
        add_type(&c, "cpu", "nanoseconds");
        set_period(&c, "cpu", "nanoseconds");
        uint64_t cm, cw;
        go_stacks(&c, &cm, &cw);
        add_sample(&c, &cm, 1, (int64_t[]){10}, 1, bad[i]);
        TD_ASSERT_EQ_INT(ingest("shop", "pprof", NULL, pack(&c, false), &a, &res, &err),
                         TD_INVALID);
        TD_ASSERT_EQ_INT(res.http, 422);
        TD_CHECK(strstr(err.msg, "label") != NULL);
        TD_ASSERT_EQ_U64(nwrites, before); /* nothing written */
    }
    /* an empty value is no label at all: accepted */
    pbld d;
    pb_init(&d, &a);
    add_type(&d, "cpu", "nanoseconds");
    uint64_t dm, dw;
    go_stacks(&d, &dm, &dw);
    add_sample(&d, &dm, 1, (int64_t[]){10}, 1, (const char *const[]){"k", "", NULL});
    TD_ASSERT_OK(ingest("shop", "pprof", NULL, pack(&d, false), &a, &res, &err));
    td_arena_release(&a);
}

static void test_parse_name(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    char *app;
    td_plabel *l;
    size_t n;
    td_err err;
    TD_ASSERT_OK(
        td_profiler_parse_name(" my.app.cpu { a = 1 ,b=x y,, a=2 } ", &a, &app, &l, &n, &err));
    TD_ASSERT_EQ_STR(app, "my.app.cpu");
    TD_ASSERT_EQ_INT(n, 2);
    TD_ASSERT_EQ_STR(l[0].name, "a");
    TD_ASSERT_EQ_STR(l[0].value, "2");
    TD_ASSERT_EQ_STR(l[1].value, "x y");
    TD_ASSERT_OK(td_profiler_parse_name("plain", &a, &app, &l, &n, &err));
    TD_ASSERT_EQ_INT(n, 0);
    TD_ASSERT_EQ_INT(td_profiler_parse_name("a{k}", &a, &app, &l, &n, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(td_profiler_parse_name("a{=v}", &a, &app, &l, &n, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(td_profiler_parse_name("a{k\"=v}", &a, &app, &l, &n, &err), TD_INVALID);
    td_arena_release(&a);
}

/* ---- from/until ---- */

static void test_parse_time(void)
{
    const int64_t now = NOW_NS;
    TD_ASSERT_EQ_INT(td_profiler_parse_time(NULL, now), now);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("now", now), now);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("now-1h", now), now - 3600000000000LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("now-1h30m", now), now - 5400000000000LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("now+10s", now), now + 10000000000LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("1764000000", now), 1764000000000000000LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("1764000000123", now), 1764000000123000000LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("1764000000123456", now), 1764000000123456000LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("1764000000123456789", now), 1764000000123456789LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("1_764_000_000", now), 1764000000000000000LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("1,764,000,000", now), 1764000000000000000LL);
    /* 8 digits: YYYYMMDD */
    TD_ASSERT_EQ_INT(td_profiler_parse_time("20251124", now), 1763942400000000000LL);
    /* other digit counts: seconds */
    TD_ASSERT_EQ_INT(td_profiler_parse_time("17640000001", now), INT64_MAX); /* saturates */
    TD_ASSERT_EQ_INT(td_profiler_parse_time("12345", now), 12345000000000LL);
    TD_ASSERT_EQ_INT(td_profiler_parse_time("garbage", now), now);
}

/* ---- legacy formats ---- */

static void test_legacy_suffixes(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    struct {
        const char *name, *app, *metric, *type, *unit;
    } rows[] = {
        {"app", "app", "process_cpu", "samples", "count"},
        {"app.cpu", "app", "process_cpu", "samples", "count"},
        {"my.app.wall", "my.app", "wall", "samples", "count"},
        {"a.alloc_objects", "a", "memory", "alloc_objects", "count"},
        {"a.alloc_space", "a", "memory", "alloc_space", "bytes"},
        {"a.inuse_objects", "a", "memory", "inuse_objects", "count"},
        {"a.inuse_space", "a", "memory", "inuse_space", "bytes"},
        {"a.goroutines", "a", "goroutine", "goroutines", "count"},
        {"a.mutex_count", "a", "mutex", "contentions", "count"},
        {"a.mutex_duration", "a", "mutex", "delay", "nanoseconds"},
        {"a.block_count", "a", "block", "contentions", "count"},
        {"a.block_duration", "a", "block", "delay", "nanoseconds"},
        {"a.lock_count", "a", "block", "contentions", "count"},
        {"a.lock_duration", "a", "block", "delay", "nanoseconds"},
        {"a.itimer", "a", "process_cpu", "samples", "count"},
        {"a.seconds", "a", "wall", "samples", "count"},
        {"a.bytes", "a", "memory", "samples", "bytes"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        td_plegacy lt;
        td_err err;
        TD_ASSERT_OK(td_profiler_legacy_type(rows[i].name, &a, &lt, &err));
        TD_ASSERT_EQ_STR(lt.app, rows[i].app);
        TD_ASSERT_EQ_STR(lt.metric, rows[i].metric);
        TD_ASSERT_EQ_STR(lt.type, rows[i].type);
        TD_ASSERT_EQ_STR(lt.unit, rows[i].unit);
    }
    td_plegacy lt;
    td_err err;
    TD_ASSERT_EQ_INT(td_profiler_legacy_type("my.app", &a, &lt, &err), TD_INVALID);
    td_arena_release(&a);
}

static void test_folded_ingest(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    const char *txt = "main;work;hot 3\nmain;idle 1\n\nmain;work;hot 2\nnospace\n";
    td_slice body = {txt, strlen(txt)};
    td_pingest_result res;
    td_err err;
    /* cpu with the default sampleRate 100: values * 1e7 ns */
    TD_ASSERT_OK(ingest("app.cpu{service_name=svc}", NULL, "text/plain", body, &a, &res, &err));
    const td_pseries_in *s = series_of("process_cpu:cpu:nanoseconds:cpu:nanoseconds");
    TD_CHECK(s);
    TD_ASSERT_EQ_STR(label(s, "service_name"), "svc");
    TD_ASSERT_EQ_STR(label(s, "app_name"), "app"); /* legacy: app_name kept */
    TD_ASSERT_EQ_INT(s->nsamples, 3);
    TD_ASSERT_EQ_INT(s->samples[0].value, 30000000);
    const td_pwrite *w = &writes[0];
    TD_ASSERT_EQ_INT(w->nstacks, 2); /* identical stacks merged */
    TD_ASSERT_EQ_INT(w->nlocs, 4);
    TD_ASSERT_EQ_STR(w->locs[w->stacks[0].frames[0]].function, "hot");
    /* wall: sampleRate 0 -> no scaling */
    td_profiler_opts o = opts();
    nwrites = 0;
    td_pingest_req r = {.tenant = "t",
                        .name = "app.wall",
                        .sample_rate = "0",
                        .body = txt,
                        .len = strlen(txt),
                        .now_ns = NOW_NS};
    TD_ASSERT_OK(td_profiler_ingest(&o, &r, &a, capture, NULL, &res, &err));
    s = series_of("wall:samples:count::");
    TD_CHECK(s);
    TD_ASSERT_EQ_STR(label(s, "service_name"), "app");
    TD_ASSERT_EQ_STR(label(s, "pyroscope_spy"), "unknown");
    TD_CHECK(!label(s, "__period_type__"));
    TD_ASSERT_EQ_INT(s->samples[0].value, 3);
    TD_ASSERT_EQ_INT(w->time_ns, NOW_NS);
    /* wall with sampleRate 250 -> 4 ms per sample */
    r.sample_rate = "250";
    TD_ASSERT_OK(td_profiler_ingest(&o, &r, &a, capture, NULL, &res, &err));
    s = series_of("wall:wall:nanoseconds:cpu:nanoseconds");
    TD_CHECK(s);
    TD_ASSERT_EQ_INT(s->samples[0].value, 12000000);
    /* non-numeric sampleRate -> 100 */
    r.name = "x.itimer";
    r.sample_rate = "abc";
    TD_ASSERT_OK(td_profiler_ingest(&o, &r, &a, capture, NULL, &res, &err));
    s = series_of("process_cpu:cpu:nanoseconds:cpu:nanoseconds");
    TD_CHECK(s);
    TD_ASSERT_EQ_INT(s->samples[0].value, 30000000);
    /* memory: unscaled, no period */
    r.name = "x.inuse_space";
    TD_ASSERT_OK(td_profiler_ingest(&o, &r, &a, capture, NULL, &res, &err));
    TD_CHECK(series_of("memory:inuse_space:bytes::"));
    /* dotted app name without a known suffix -> 400 */
    r.name = "my.app";
    TD_ASSERT_EQ_INT(td_profiler_ingest(&o, &r, &a, capture, NULL, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 400);
    /* bad count -> 422 */
    r.name = "app";
    r.body = "a;b x\n";
    r.len = 6;
    TD_ASSERT_EQ_INT(td_profiler_ingest(&o, &r, &a, capture, NULL, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 422);
    td_arena_release(&a);
}

static void test_folded_parser(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_pfolded_line *l;
    size_t n;
    td_err err;
    const char *t = "a;b;c 5\r\n;;x;; 2\nfoo bar 7\nlast -1";
    TD_ASSERT_OK(td_profiler_parse_folded(t, strlen(t), 0, &a, &l, &n, &err));
    TD_ASSERT_EQ_INT(n, 4);
    TD_ASSERT_EQ_INT(l[0].nframes, 3);
    TD_ASSERT_EQ_STR(l[0].frames[2], "c");
    TD_ASSERT_EQ_INT(l[0].value, 5);
    TD_ASSERT_EQ_INT(l[1].nframes, 1); /* empty frames skipped */
    TD_ASSERT_EQ_STR(l[2].frames[0], "foo bar");
    TD_ASSERT_EQ_INT(l[3].value, -1);
    TD_ASSERT_EQ_INT(td_profiler_parse_folded("a 1\nb 2\nc 3\n", 12, 2, &a, &l, &n, &err),
                     TD_TOO_LARGE);
    TD_ASSERT_EQ_INT(td_profiler_parse_folded("a 1x\n", 5, 0, &a, &l, &n, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(td_profiler_parse_folded("a \n", 3, 0, &a, &l, &n, &err), TD_INVALID);
    /* found by folded_fuzz: a NUL in a frame name would store an empty frame */
    TD_ASSERT_EQ_INT(td_profiler_parse_folded("\0\0x 1\n", 6, 0, &a, &l, &n, &err), TD_INVALID);
    td_arena_release(&a);
}

static void test_unsupported_formats(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    const char *fmts[] = {"trie", "tree", "lines", "jfr", "speedscope"};
    td_pingest_result res;
    td_err err;
    for (size_t i = 0; i < 5; i++) {
        TD_ASSERT_EQ_INT(ingest("app", fmts[i], NULL, (td_slice){"x", 1}, &a, &res, &err),
                         TD_INVALID);
        TD_ASSERT_EQ_INT(res.http, 400);
        TD_ASSERT_EQ_STR(err.msg, "unsupported format");
    }
    TD_ASSERT_EQ_INT(
        ingest("app", NULL, "binary/octet-stream+trie", (td_slice){"x", 1}, &a, &res, &err),
        TD_INVALID);
    /* speedscope comes before multipart */
    TD_ASSERT_EQ_INT(ingest("app", "speedscope", "multipart/form-data; boundary=b",
                            (td_slice){"x", 1}, &a, &res, &err),
                     TD_INVALID);
    TD_ASSERT_EQ_STR(err.msg, "unsupported format");
    td_arena_release(&a);
}

/* ---- decoder: limits and corrupt input ---- */

static void test_decode_errors(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_profiler_opts o = opts();
    td_pprof_profile *p;
    td_err err;
    pbld b;
    pb_init(&b, &a);
    add_type(&b, "cpu", "nanoseconds");
    uint64_t lm, lw;
    go_stacks(&b, &lm, &lw);
    add_sample(&b, &lw, 1, (int64_t[]){1}, 1, NULL);
    td_slice ok = pack(&b, false);
    TD_ASSERT_OK(td_profiler_pprof_decode(ok.ptr, ok.len, &o, &a, &p, &err));
    /* truncated: every proper prefix fails cleanly or parses (never crashes) */
    for (size_t n = 1; n < ok.len; n++) {
        td_status st = td_profiler_pprof_decode(ok.ptr, n, &o, &a, &p, &err);
        TD_CHECK(st == TD_OK || st == TD_INVALID);
    }
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode("\x0a\xff", 2, &o, &a, &p, &err), TD_INVALID);
    /* truncated gzip */
    td_slice gz = pack(&b, true);
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(gz.ptr, gz.len - 9, &o, &a, &p, &err), TD_INVALID);
    /* out-of-range string index */
    b.fn[0].name = 999;
    td_slice bad = pack(&b, false);
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(bad.ptr, bad.len, &o, &a, &p, &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "string index"));
    b.fn[0].name = S(&b, "main.main");
    /* unknown function in a line */
    b.line[0].function_id = 77;
    bad = pack(&b, false);
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(bad.ptr, bad.len, &o, &a, &p, &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "unknown function 77"));
    b.line[0].function_id = 1;
    /* unknown location in a sample */
    b.ids[0] = 555;
    bad = pack(&b, false);
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(bad.ptr, bad.len, &o, &a, &p, &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "unknown location 555"));
    b.ids[0] = lw;
    /* value count mismatch */
    b.smp[0].n_value = 0;
    bad = pack(&b, false);
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(bad.ptr, bad.len, &o, &a, &p, &err), TD_INVALID);
    b.smp[0].n_value = 1;
    /* duplicate location ID */
    b.loc[1].id = b.loc[0].id;
    bad = pack(&b, false);
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(bad.ptr, bad.len, &o, &a, &p, &err), TD_INVALID);
    b.loc[1].id = lw;
    /* string_table[0] not empty */
    b.str[0] = "x";
    bad = pack(&b, false);
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(bad.ptr, bad.len, &o, &a, &p, &err), TD_INVALID);
    b.str[0] = "";
    /* count limits */
    td_profiler_opts lim = o;
    lim.max_samples = 0;
    lim.max_strings = 2;
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(ok.ptr, ok.len, &lim, &a, &p, &err), TD_TOO_LARGE);
    TD_CHECK(strstr(err.msg, "profile-max-strings"));
    lim = o;
    lim.max_locations = 1;
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(ok.ptr, ok.len, &lim, &a, &p, &err), TD_TOO_LARGE);
    /* size limits: raw and a gzip bomb */
    lim = o;
    lim.max_size = 10;
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(ok.ptr, ok.len, &lim, &a, &p, &err), TD_TOO_LARGE);
    size_t big = 4u << 20;
    char *zeros = calloc(1, big);
    td_buf z = TD_BUF_INIT;
    TD_CHECK(td_gzip(zeros, big, &z, &err) == TD_OK);
    free(zeros);
    lim.max_size = 1u << 20;
    TD_ASSERT_EQ_INT(td_profiler_pprof_decode(z.data, z.len, &lim, &a, &p, &err), TD_TOO_LARGE);
    /* through /ingest: 413 */
    td_pingest_result res;
    td_pingest_req r = {.tenant = "t",
                        .name = "app",
                        .format = "pprof",
                        .body = z.data,
                        .len = z.len,
                        .now_ns = NOW_NS};
    TD_ASSERT_EQ_INT(td_profiler_ingest(&lim, &r, &a, capture, NULL, &res, &err), TD_TOO_LARGE);
    TD_ASSERT_EQ_INT(res.http, 413);
    td_buf_release(&z);
    /* corrupt pprof through /ingest: 422 */
    r.body = "\x0a\xff";
    r.len = 2;
    TD_ASSERT_EQ_INT(td_profiler_ingest(&o, &r, &a, capture, NULL, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 422);
    td_arena_release(&a);
}

static void test_empty_profiles(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    td_pingest_result res;
    td_err err;
    pbld b;
    pb_init(&b, &a);
    /* no sample types: 400 */
    TD_ASSERT_EQ_INT(ingest("app", "pprof", NULL, pack(&b, false), &a, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 400);
    /* no samples: accepted, nothing written */
    add_type(&b, "cpu", "nanoseconds");
    TD_ASSERT_OK(ingest("app", "pprof", NULL, pack(&b, false), &a, &res, &err));
    TD_ASSERT_EQ_INT(nwrites, 0);
    /* only zero values: nothing written */
    uint64_t lm, lw;
    go_stacks(&b, &lm, &lw);
    add_sample(&b, &lw, 1, (int64_t[]){0}, 1, NULL);
    TD_ASSERT_OK(ingest("app", "pprof", NULL, pack(&b, true), &a, &res, &err));
    TD_ASSERT_EQ_INT(nwrites, 0);
    /* an empty body with format=pprof is an empty profile: no sample types -> 400 */
    TD_ASSERT_EQ_INT(ingest("app", "pprof", NULL, (td_slice){"", 0}, &a, &res, &err), TD_INVALID);
    TD_ASSERT_EQ_INT(res.http, 400);
    td_arena_release(&a);
}

/* Inlined frames: one Location with two Lines -> two frames, callee first. */
static void test_inline_and_timestamps(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    pbld b;
    pb_init(&b, &a);
    add_type(&b, "cpu", "nanoseconds");
    uint64_t f1 = add_fn(&b, "inner"), f2 = add_fn(&b, "outer"), f3 = add_fn(&b, "main");
    uint64_t l1 = add_loc(&b, (uint64_t[]){f1, f2}, 2);
    uint64_t l2 = add_loc(&b, &f3, 1);
    uint64_t l3 = add_loc(&b, NULL, 0); /* no lines: no frame */
    add_sample(&b, (uint64_t[]){l1, l3, l2}, 3, (int64_t[]){5}, 1, NULL);
    b.p.time_nanos = 1764000005000000000LL;
    b.p.duration_nanos = 15000000000LL;
    td_pingest_result res;
    td_err err;
    TD_ASSERT_OK(ingest("app", "pprof", NULL, pack(&b, false), &a, &res, &err));
    const td_pwrite *w = &writes[0];
    TD_ASSERT_EQ_INT(w->stacks[0].nframes, 3);
    TD_ASSERT_EQ_STR(w->locs[w->stacks[0].frames[0]].function, "inner");
    TD_ASSERT_EQ_STR(w->locs[w->stacks[0].frames[1]].function, "outer");
    TD_ASSERT_EQ_STR(w->locs[w->stacks[0].frames[2]].function, "main");
    TD_ASSERT_EQ_INT(w->locs[w->stacks[0].frames[1]].line, 20);
    TD_ASSERT_EQ_STR(w->locs[w->stacks[0].frames[0]].file, "main.go");
    TD_ASSERT_EQ_INT(w->time_ns, 1764000005000000000LL);
    TD_ASSERT_EQ_INT(w->duration_ns, 15000000000LL);
    /* time_nanos in 1970 -> from */
    b.p.time_nanos = 1000;
    TD_ASSERT_OK(ingest("app", "pprof", NULL, pack(&b, false), &a, &res, &err));
    TD_ASSERT_EQ_INT(writes[0].time_ns, 1764000000000000000LL);
    td_arena_release(&a);
}

/* ---- push.v1 ---- */

static void put_varint(td_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        td_buf_addch(b, (char)(v | 0x80));
        v >>= 7;
    }
    td_buf_addch(b, (char)v);
}

static void put_bytes(td_buf *b, uint32_t field, const void *p, size_t n)
{
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    td_buf_add(b, p, n);
}

static void put_label(td_buf *b, const char *k, const char *v)
{
    td_buf lp = TD_BUF_INIT;
    put_bytes(&lp, 1, k, strlen(k));
    put_bytes(&lp, 2, v, strlen(v));
    put_bytes(b, 1, lp.data, lp.len);
    td_buf_release(&lp);
}

static td_status push(const td_buf *req, bool json, td_arena *a, td_pingest_result *res,
                      td_err *err)
{
    td_profiler_opts o = opts();
    td_push_series *s;
    size_t n;
    nwrites = 0;
    td_err_init(err);
    const Push__V1__PushRequest *msg;
    if (json) {
        ProtobufCMessage *m;
        td_status st = td_protojson_decode(&push__v1__push_request__descriptor, req->data, req->len,
                                           a, &m, err);
        if (st != TD_OK) {
            return st;
        }
        msg = (const Push__V1__PushRequest *)m;
    } else {
        ProtobufCAllocator pa;
        td_proto_allocator_init(&pa, a);
        msg = push__v1__push_request__unpack(&pa, req->len, (const uint8_t *)req->data);
        if (!msg) {
            return td_err_set(err, TD_INVALID, "malformed PushRequest");
        }
    }
    TD_ASSERT_OK(td_profiler_push_series(msg, a, &s, &n, err));
    return td_profiler_push(&o, "t", s, n, NOW_NS, a, capture, NULL, res, err);
}

static void test_push(void)
{
    td_arena a;
    td_arena_init(&a, 0, 0);
    pbld b;
    pb_init(&b, &a);
    add_type(&b, "goroutine", "count");
    set_period(&b, "goroutine", "count");
    uint64_t lm, lw;
    go_stacks(&b, &lm, &lw);
    add_sample(&b, &lw, 1, (int64_t[]){4}, 1, NULL);
    b.p.time_nanos = NOW_NS - 1000;
    td_slice prof = pack(&b, true);

    td_buf series = TD_BUF_INIT, req = TD_BUF_INIT;
    put_label(&series, "__name__", "goroutine");
    put_label(&series, "__delta__", "false");
    put_label(&series, "__other__", "x");
    put_label(&series, "k8s.pod", "p1");
    td_buf sample = TD_BUF_INIT;
    put_bytes(&sample, 1, prof.ptr, prof.len);
    put_bytes(&sample, 2, "id", 2);
    put_bytes(&series, 2, sample.data, sample.len);
    put_bytes(&series, 3, "\x0a\x01k", 3); /* an annotation: dropped */
    put_bytes(&req, 1, series.data, series.len);
    td_pingest_result res;
    td_err err;
    TD_ASSERT_OK(push(&req, false, &a, &res, &err));
    const td_pseries_in *s = series_of("goroutine:goroutine:count:goroutine:count");
    TD_CHECK(s);
    TD_ASSERT_EQ_STR(label(s, "service_name"), "unknown_service");
    TD_ASSERT_EQ_STR(label(s, "k8s.pod"), "p1");
    TD_CHECK(!label(s, "__delta__") && !label(s, "__other__"));
    TD_ASSERT_EQ_INT(writes[0].time_ns, NOW_NS - 1000);

    /* the same request as protojson */
    td_buf js = TD_BUF_INIT;
    td_buf_addstr(&js,
                  "{\"series\":[{\"labels\":[{\"name\":\"__name__\",\"value\":\"process_cpu\"},"
                  "{\"name\":\"service_name\",\"value\":\"api\"}],\"samples\":[{\"rawProfile\":\"");
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *pp = (const uint8_t *)prof.ptr;
    for (size_t i = 0; i < prof.len; i += 3) {
        uint32_t v = (uint32_t)pp[i] << 16;
        if (i + 1 < prof.len) {
            v |= (uint32_t)pp[i + 1] << 8;
        }
        if (i + 2 < prof.len) {
            v |= pp[i + 2];
        }
        td_buf_addch(&js, b64[v >> 18 & 63]);
        td_buf_addch(&js, b64[v >> 12 & 63]);
        td_buf_addch(&js, i + 1 < prof.len ? b64[v >> 6 & 63] : '=');
        td_buf_addch(&js, i + 2 < prof.len ? b64[v & 63] : '=');
    }
    td_buf_addstr(&js, "\",\"ID\":\"x\"}]}]}");
    TD_ASSERT_OK(push(&js, true, &a, &res, &err));
    s = series_of("process_cpu:goroutine:count:goroutine:count");
    TD_CHECK(s);
    TD_ASSERT_EQ_STR(label(s, "service_name"), "api");

    /* errors */
    td_buf e = TD_BUF_INIT;
    TD_ASSERT_EQ_INT(push(&e, false, &a, &res, &err), TD_INVALID); /* empty request */
    TD_ASSERT_EQ_INT(res.http, 400);
    td_buf_addstr(&e, "{\"series\":[{\"labels\":[],\"samples\":[]}]}");
    TD_ASSERT_EQ_INT(push(&e, true, &a, &res, &err), TD_INVALID); /* no __name__ */
    TD_CHECK(strstr(err.msg, "__name__"));
    td_buf_reset(&e);
    td_buf_addstr(&e, "{\"series\":[{\"labels\":[{\"name\":\"__name__\",\"value\":\"x\"}],"
                      "\"samples\":[{\"rawProfile\":\"AAAA\"}]}]}");
    TD_ASSERT_EQ_INT(push(&e, true, &a, &res, &err), TD_INVALID); /* malformed pprof */
    TD_ASSERT_EQ_INT(res.http, 400);
    td_buf_reset(&e);
    td_buf_addstr(&e, "{\"series\":[{\"labels\":[{\"name\":\"a\",\"value\":\"x\"},"
                      "{\"name\":\"a\",\"value\":\"y\"}]}]}");
    TD_ASSERT_EQ_INT(push(&e, true, &a, &res, &err), TD_INVALID); /* duplicate names */
    td_buf_reset(&e);
    td_buf_addstr(&e, "{\"series\":[{\"labels\":[{\"name\":\"__name__\",\"value\":\"x\"}],"
                      "\"samples\":[{\"rawProfile\":\"!!\"}]}]}");
    TD_ASSERT_EQ_INT(push(&e, true, &a, &res, &err), TD_INVALID); /* bad base64 */
    TD_ASSERT_EQ_INT(push(&(td_buf){.data = "\x0a\x05\x0a", .len = 3}, false, &a, &res, &err),
                     TD_INVALID);
    /* too old */
    b.p.time_nanos = NOW_NS - 2 * 3600 * 1000000000LL;
    prof = pack(&b, false);
    td_buf_reset(&req);
    td_buf_reset(&sample);
    td_buf_reset(&series);
    put_label(&series, "__name__", "goroutine");
    put_bytes(&sample, 1, prof.ptr, prof.len);
    put_bytes(&series, 2, sample.data, sample.len);
    put_bytes(&req, 1, series.data, series.len);
    TD_ASSERT_EQ_INT(push(&req, false, &a, &res, &err), TD_INVALID);
    TD_CHECK(strstr(err.msg, "too old"));
    /* time_nanos 0 -> now */
    b.p.time_nanos = 0;
    prof = pack(&b, false);
    td_buf_reset(&req);
    td_buf_reset(&sample);
    td_buf_reset(&series);
    put_label(&series, "__name__", "goroutine");
    put_bytes(&sample, 1, prof.ptr, prof.len);
    put_bytes(&series, 2, sample.data, sample.len);
    put_bytes(&req, 1, series.data, series.len);
    TD_ASSERT_OK(push(&req, false, &a, &res, &err));
    TD_ASSERT_EQ_INT(writes[0].time_ns, NOW_NS);
    td_buf_release(&e);
    td_buf_release(&js);
    td_buf_release(&sample);
    td_buf_release(&series);
    td_buf_release(&req);
    td_arena_release(&a);
}

/* Allocation failures while decoding and normalising: an error, never a crash or leak. */
static void test_nomem_countdown(void)
{
    pbld *b = calloc(1, sizeof(*b));
    td_arena pa;
    td_arena_init(&pa, 0, 0);
    pb_init(b, &pa);
    add_type(b, "samples", "count");
    add_type(b, "cpu", "nanoseconds");
    uint64_t lm, lw;
    go_stacks(b, &lm, &lw);
    const char *const l1[] = {"span_name", "x", NULL};
    add_sample(b, (uint64_t[]){lw, lm}, 2, (int64_t[]){1, 2}, 2, l1);
    td_slice body = pack(b, true);
    bool done = false;
    for (long n = 1; n < 200 && !done; n++) {
        td_arena a;
        td_arena_init(&a, 1024, 0);
        td_pingest_result res;
        td_err err;
        td_mem_fail_after(n);
        td_status st = ingest("app", "pprof", NULL, body, &a, &res, &err);
        bool injected = td_mem_fail_after(0);
        TD_CHECK(st == TD_OK || st == TD_NOMEM || st == TD_INVALID);
        done = !injected;
        if (done) {
            TD_ASSERT_OK(st);
        }
        td_arena_release(&a);
    }
    TD_CHECK(done);
    td_arena_release(&pa);
    free(b);
    td_arena_cache_release();
}

TEST_LIST = {
    {"go_cpu", test_go_cpu},
    {"derivation_table", test_derivation_table},
    {"go_profile_types", test_go_profile_types},
    {"multipart_block", test_multipart_block},
    {"multipart_parser", test_multipart_parser},
    {"labels", test_labels},
    {"parse_name", test_parse_name},
    {"parse_time", test_parse_time},
    {"legacy_suffixes", test_legacy_suffixes},
    {"folded_ingest", test_folded_ingest},
    {"folded_parser", test_folded_parser},
    {"unsupported_formats", test_unsupported_formats},
    {"decode_errors", test_decode_errors},
    {"empty_profiles", test_empty_profiles},
    {"inline_and_timestamps", test_inline_and_timestamps},
    {"push", test_push},
    {"nomem_countdown", test_nomem_countdown},
    {NULL, NULL},
};
