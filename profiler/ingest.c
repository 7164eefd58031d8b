/*
 * ingest.c - the two ingest paths of td_profiler: Pyroscope's legacy POST /ingest
 * (format selection, pprof / multipart / folded) and push.v1 Push, down to one
 * td_pwrite per profile handed to the caller's write function. Also the option
 * table of the module.
 *
 * Status codes follow Pyroscope v2 (API-CONTRACT §5.0): bad metadata 400,
 * anything wrong inside the profile 422 (/ingest) or invalid_argument (push),
 * a profile over a size/count limit 413, unknown legacy suffix 400.
 */
#include "profiler/internal.h"

#include "core/mem.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const td_opt td_profiler_opt_rows[] = {
    {"profile-max-size", TD_OPT_SIZE, "64MiB", offsetof(td_profiler_opts, max_size),
     "Largest profile accepted, checked after decompression (pprof or folded text): larger "
     "ones are refused with 413 / invalid_argument, so gzip bombs stop at this size.",
     1024, 1024LL * 1024 * 1024},
    {"profile-max-samples", TD_OPT_INT, "1000000", offsetof(td_profiler_opts, max_samples),
     "Most samples (stacks of folded text) one profile may have.", 1, 100000000},
    {"profile-max-locations", TD_OPT_INT, "1000000", offsetof(td_profiler_opts, max_locations),
     "Most locations one pprof profile may have.", 1, 100000000},
    {"profile-max-functions", TD_OPT_INT, "1000000", offsetof(td_profiler_opts, max_functions),
     "Most functions one pprof profile may have.", 1, 100000000},
    {"profile-max-strings", TD_OPT_INT, "4000000", offsetof(td_profiler_opts, max_strings),
     "Most string table entries one pprof profile may have.", 1, 100000000},
    {"profile-reject-older-than", TD_OPT_DURATION, "1h",
     offsetof(td_profiler_opts, reject_older_ms),
     "push.v1: profiles whose time is older than this are refused (invalid_argument). "
     "0 = accept any age.",
     0, 0},
    {"profile-reject-newer-than", TD_OPT_DURATION, "10m",
     offsetof(td_profiler_opts, reject_newer_ms),
     "push.v1: profiles whose time lies further than this in the future are refused "
     "(invalid_argument). 0 = accept any.",
     0, 0},
};
const size_t td_profiler_nopt_rows = sizeof(td_profiler_opt_rows) / sizeof(td_profiler_opt_rows[0]);

#define NS_1971 (365LL * 86400 * 1000000000LL)

static td_status fail(td_pingest_result *res, int http, td_err *err, td_status code,
                      const char *msg)
{
    res->http = http;
    return td_err_set(err, code, "%s", msg);
}

/* fail() with a formatted message. */
__attribute__((format(printf, 3, 4))) static td_status failf(td_pingest_result *res, td_err *err,
                                                             const char *fmt, ...)
{
    char msg[TD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return fail(res, 400, err, TD_INVALID, msg);
}

/* HTTP status of a decode error: limits 413, corrupt 422, memory 503. */
static int decode_http(td_status st)
{
    switch (st) {
    case TD_TOO_LARGE:
        return 413;
    case TD_INVALID:
        return 422;
    default:
        return td_status_http(st);
    }
}

static bool media_is(const char *ct, const char *want)
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
    return n == strlen(want) && strncasecmp(ct, want, n) == 0;
}

static bool eq(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

/* sampleRate: non-numeric or negative -> 100 (Pyroscope's default). */
static uint32_t parse_rate(const char *s)
{
    if (!s || !*s) {
        return 100;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0 || v > UINT32_MAX) {
        return 100;
    }
    return (uint32_t)v;
}

/* ---- pprof ---- */

typedef struct ingest_ctx {
    const td_profiler_opts *o;
    const td_pingest_req *r;
    const char *app;
    const td_plabel *nlabels; /* from name{} */
    size_t nnlabels;
    const char *spy;
    int64_t from_ns, until_ns;
    td_arena *a;
    td_pwrite_fn fn;
    void *ud;
    td_pingest_result *res;
} ingest_ctx;

static td_status write_one(ingest_ctx *c, const td_pwrite *w, size_t nsamples, td_err *err)
{
    if (w->nseries == 0) {
        return TD_OK;
    }
    if (c->fn(c->ud, w, err) != TD_OK) {
        c->res->http = td_status_http(err->code);
        return err->code;
    }
    c->res->profiles++;
    c->res->series += w->nseries;
    c->res->samples += nsamples;
    return TD_OK;
}

static td_status ingest_pprof(ingest_ctx *c, const void *data, size_t len, const td_pstc_set *stc,
                              td_err *err)
{
    td_pprof_profile *p;
    td_status st = td_profiler_pprof_decode(data, len, c->o, c->a, &p, err);
    if (st != TD_OK) {
        c->res->http = decode_http(st);
        return st;
    }
    if (p->n_sample_type == 0) {
        return fail(c->res, 400, err, TD_INVALID, "profile has no sample types");
    }
    if (p->n_sample == 0) {
        return TD_OK; /* accepted and ignored */
    }
    /* client labels win over the defaults (an explicit service_name drops the app name) */
    td__labels l;
    td__labels_init(&l, c->a);
    bool ok = true;
    for (size_t i = 0; ok && i < c->nnlabels; i++) {
        if (td_profiler_label_allowed(c->nlabels[i].name)) {
            ok = td__labels_add(&l, c->nlabels[i].name, c->nlabels[i].value);
        }
    }
    ok = ok && td__labels_add(&l, "service_name", c->app) &&
         td__labels_add(&l, "pyroscope_spy", c->spy);
    if (!ok) {
        return fail(c->res, 503, err, TD_NOMEM, "out of memory");
    }
    td__labels_finish(&l);
    td_pnorm in = {
        .tenant = c->r->tenant,
        .p = p,
        .metric = td_profiler_metric_name(p, stc),
        .labels = l.v,
        .nlabels = l.n,
        .time_ns = p->time_nanos > NS_1971 ? p->time_nanos : c->from_ns,
        .duration_ns = p->duration_nanos > 0      ? p->duration_nanos
                       : c->until_ns > c->from_ns ? c->until_ns - c->from_ns
                                                  : 0,
    };
    td_pwrite w;
    size_t ns;
    if (td_profiler_pprof_to_write(&in, c->a, &w, &ns, err) != TD_OK) {
        c->res->http = decode_http(err->code);
        return err->code;
    }
    return write_one(c, &w, ns, err);
}

static td_status ingest_multipart(ingest_ctx *c, td_err *err)
{
    td_mpart *parts;
    size_t n;
    if (td_profiler_multipart(c->r->content_type, c->r->body, c->r->len, c->a, &parts, &n, err) !=
        TD_OK) {
        c->res->http = decode_http(err->code);
        return err->code;
    }
    const td_mpart *profile = NULL, *stc_part = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].filename) {
            continue; /* only file parts are read, as Go's form.ReadField does */
        }
        if (strcmp(parts[i].name, "profile") == 0 && !profile) {
            profile = &parts[i];
        } else if (strcmp(parts[i].name, "prev_profile") == 0) {
            return fail(c->res, 422, err, TD_INVALID,
                        "unsupported client version. Please update github.com/grafana/"
                        "pyroscope-go to the latest version");
        } else if (strcmp(parts[i].name, "sample_type_config") == 0 && !stc_part) {
            stc_part = &parts[i];
        }
    }
    td_pstc_set stc = {0};
    if (stc_part &&
        td_profiler_parse_stc(stc_part->data.ptr, stc_part->data.len, c->a, &stc, err) != TD_OK) {
        c->res->http = decode_http(err->code);
        return err->code;
    }
    if (!profile || profile->data.len == 0) {
        return TD_OK; /* nothing to store */
    }
    return ingest_pprof(c, profile->data.ptr, profile->data.len, &stc, err);
}

/* ---- folded ---- */

td_status td__folded_to_write(const td_pfolded_line *lines, size_t n, const char *tenant,
                              const td_plabel *labels, size_t nlabels, const td_plegacy *lt,
                              uint32_t sample_rate, int64_t time_ns, int64_t duration_ns,
                              td_arena *a, td_pwrite *out, size_t *nsamples, td_err *err)
{
    memset(out, 0, sizeof(*out));
    *nsamples = 0;
    out->tenant = tenant;
    out->time_ns = time_ns;
    out->duration_ns = duration_ns;
    const char *type = lt->type, *unit = lt->unit, *pt = "", *pu = "";
    int64_t scale = 1;
    bool timed = strcmp(lt->metric, "process_cpu") == 0 || strcmp(lt->metric, "wall") == 0;
    if (sample_rate && timed) {
        scale = 1000000000LL / sample_rate;
        type = strcmp(lt->metric, "wall") == 0 ? "wall" : "cpu";
        unit = "nanoseconds";
        pt = "cpu";
        pu = "nanoseconds";
    }
    size_t nf_total = 0;
    for (size_t i = 0; i < n; i++) {
        nf_total += lines[i].nframes;
    }
    td__dedup names, stk;
    td_ploc *locs = td_arena_calloc(a, nf_total + 1, sizeof(*locs));
    td_pstack *stacks = td_arena_calloc(a, n + 1, sizeof(*stacks));
    td_psample *samples = td_arena_calloc(a, n + 1, sizeof(*samples));
    if (!locs || !stacks || !samples || !td__dedup_init(&names, nf_total, a) ||
        !td__dedup_init(&stk, n, a)) {
        return td_err_set(err, TD_NOMEM, "out of memory converting folded text");
    }
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        const td_pfolded_line *ln = &lines[i];
        int64_t v;
        if (__builtin_mul_overflow(ln->value, scale, &v)) {
            return td_err_set(err, TD_INVALID, "sample value overflows");
        }
        if (v == 0) {
            continue;
        }
        uint32_t *fr = td_arena_alloc(a, (ln->nframes ? ln->nframes : 1) * sizeof(uint32_t));
        if (!fr) {
            return td_err_set(err, TD_NOMEM, "out of memory converting folded text");
        }
        for (uint32_t k = 0; k < ln->nframes; k++) {
            const char *f = ln->frames[ln->nframes - 1 - k]; /* leaf first */
            bool fresh;
            uint32_t li = td__dedup_get(&names, f, strlen(f), &fresh);
            if (fresh) {
                locs[li] = (td_ploc){f, "", "", 0, ""};
            }
            fr[k] = li;
        }
        bool fresh;
        uint32_t si = td__dedup_get(&stk, fr, ln->nframes * sizeof(uint32_t), &fresh);
        if (fresh) {
            stacks[si] = (td_pstack){fr, ln->nframes};
        }
        samples[ns++] = (td_psample){.stack = si, .value = v};
    }
    out->locs = locs;
    out->nlocs = names.n;
    out->stacks = stacks;
    out->nstacks = stk.n;
    if (ns == 0) {
        return TD_OK;
    }
    size_t idlen = strlen(lt->metric) + strlen(type) + strlen(unit) + strlen(pt) + strlen(pu) + 5;
    char *ptid = td_arena_alloc(a, idlen);
    td_pseries_in *series = td_arena_calloc(a, 1, sizeof(*series));
    if (!ptid || !series) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    snprintf(ptid, idlen, "%s:%s:%s:%s:%s", lt->metric, type, unit, pt, pu);
    const char *svc = NULL;
    for (size_t i = 0; i < nlabels; i++) {
        if (strcmp(labels[i].name, "service_name") == 0) {
            svc = labels[i].value;
        }
    }
    td__labels l;
    td__labels_init(&l, a);
    bool ok = td__labels_add(&l, "__name__", lt->metric) &&
              td__labels_add(&l, "__profile_type__", ptid) &&
              td__labels_add(&l, "__type__", type) && td__labels_add(&l, "__unit__", unit) &&
              td__labels_add(&l, "__period_type__", pt) &&
              td__labels_add(&l, "__period_unit__", pu) &&
              td__labels_add(&l, "__service_name__", svc ? svc : "");
    for (size_t i = 0; ok && i < nlabels; i++) {
        ok = td__labels_add(&l, labels[i].name, labels[i].value);
    }
    if (!ok) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    td__labels_finish(&l);
    series->labels = l.v;
    series->nlabels = l.n;
    series->samples = samples;
    series->nsamples = ns;
    out->series = series;
    out->nseries = 1;
    *nsamples = ns;
    return TD_OK;
}

static td_status ingest_folded(ingest_ctx *c, uint32_t rate, td_err *err)
{
    td_plegacy lt;
    if (td_profiler_legacy_type(c->app, c->a, &lt, err) != TD_OK) {
        c->res->http = td_status_http(err->code);
        return err->code;
    }
    if (c->o->max_size && c->r->len > c->o->max_size) {
        return fail(c->res, 413, err, TD_TOO_LARGE,
                    "profile exceeds the size limit (profile-max-size)");
    }
    td_pfolded_line *lines;
    size_t n;
    if (td_profiler_parse_folded(c->r->body, c->r->len, (size_t)c->o->max_samples, c->a, &lines, &n,
                                 err) != TD_OK) {
        c->res->http = decode_http(err->code);
        return err->code;
    }
    /* labels: client ones; service_name = app unless given, then app_name = app */
    td__labels l;
    td__labels_init(&l, c->a);
    bool ok = true, has_svc = false;
    for (size_t i = 0; ok && i < c->nnlabels; i++) {
        if (td_profiler_label_allowed(c->nlabels[i].name)) {
            has_svc = has_svc || strcmp(c->nlabels[i].name, "service_name") == 0;
            ok = td__labels_add(&l, c->nlabels[i].name, c->nlabels[i].value);
        }
    }
    ok = ok && td__labels_add(&l, has_svc ? "app_name" : "service_name", lt.app) &&
         td__labels_add(&l, "pyroscope_spy", c->spy);
    if (!ok) {
        return fail(c->res, 503, err, TD_NOMEM, "out of memory");
    }
    td__labels_finish(&l);
    td_pwrite w;
    size_t ns;
    int64_t dur = c->until_ns > c->from_ns ? c->until_ns - c->from_ns : 0;
    if (td__folded_to_write(lines, n, c->r->tenant, l.v, l.n, &lt, rate, c->from_ns, dur, c->a, &w,
                            &ns, err) != TD_OK) {
        c->res->http = decode_http(err->code);
        return err->code;
    }
    return write_one(c, &w, ns, err);
}

td_status td_profiler_ingest(const td_profiler_opts *o, const td_pingest_req *r, td_arena *a,
                             td_pwrite_fn fn, void *ud, td_pingest_result *res, td_err *err)
{
    memset(res, 0, sizeof(*res));
    res->http = 200;
    ingest_ctx c = {.o = o, .r = r, .a = a, .fn = fn, .ud = ud, .res = res};
    char *app;
    td_plabel *nl;
    size_t nn;
    if (td_profiler_parse_name(r->name, a, &app, &nl, &nn, err) != TD_OK) {
        res->http = td_status_http(err->code);
        return err->code;
    }
    c.app = app;
    c.nlabels = nl;
    c.nnlabels = nn;
    c.spy = r->spy_name && r->spy_name[0] ? r->spy_name : "unknown";
    c.from_ns = td_profiler_parse_time(r->from, r->now_ns);
    c.until_ns = td_profiler_parse_time(r->until, r->now_ns);
    uint32_t rate = parse_rate(r->sample_rate);

    /* format selection, in Pyroscope's order (§5.0, §5.1) */
    const char *f = r->format, *ct = r->content_type;
    if (eq(f, "trie") || media_is(ct, "binary/octet-stream+trie") || eq(f, "tree") ||
        media_is(ct, "binary/octet-stream+tree") || eq(f, "lines") || eq(f, "jfr") ||
        eq(f, "speedscope")) {
        return fail(res, 400, err, TD_INVALID, "unsupported format");
    }
    if (eq(f, "pprof")) {
        return ingest_pprof(&c, r->body, r->len, NULL, err);
    }
    if (media_is(ct, "multipart/form-data")) {
        return ingest_multipart(&c, err);
    }
    return ingest_folded(&c, rate, err);
}

/* ---- push.v1 ---- */

td_status td_profiler_push_series(const Push__V1__PushRequest *msg, td_arena *a,
                                  td_push_series **out, size_t *n, td_err *err)
{
    *out = NULL;
    *n = 0;
    td_push_series *v = td_arena_calloc(a, msg->n_series ? msg->n_series : 1, sizeof(*v));
    if (!v) {
        return td_err_set(err, TD_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < msg->n_series; i++) {
        const Push__V1__RawProfileSeries *s = msg->series[i];
        td_plabel *l = td_arena_calloc(a, s->n_labels ? s->n_labels : 1, sizeof(*l));
        td_slice *p = td_arena_calloc(a, s->n_samples ? s->n_samples : 1, sizeof(*p));
        if (!l || !p) {
            return td_err_set(err, TD_NOMEM, "out of memory");
        }
        for (size_t k = 0; k < s->n_labels; k++) {
            l[k] = (td_plabel){s->labels[k]->name, s->labels[k]->value};
        }
        for (size_t k = 0; k < s->n_samples; k++) {
            p[k] = (td_slice){(const char *)s->samples[k]->raw_profile.data,
                              s->samples[k]->raw_profile.len};
        }
        v[i] = (td_push_series){l, s->n_labels, p, s->n_samples};
    }
    *out = v;
    *n = msg->n_series;
    return TD_OK;
}

td_status td_profiler_push(const td_profiler_opts *o, const char *tenant, const td_push_series *s,
                           size_t n, int64_t now_ns, td_arena *a, td_pwrite_fn fn, void *ud,
                           td_pingest_result *res, td_err *err)
{
    memset(res, 0, sizeof(*res));
    res->http = 200;
    if (n == 0) {
        return fail(res, 400, err, TD_INVALID, "no profiles in the request");
    }
    for (size_t i = 0; i < n; i++) {
        const td_push_series *ps = &s[i];
        const char *metric = NULL;
        td__labels l;
        td__labels_init(&l, a);
        bool has_svc = false;
        for (size_t k = 0; k < ps->nlabels; k++) {
            const char *nm = ps->labels[k].name, *v = ps->labels[k].value;
            if (!nm || !nm[0] || !td__utf8_valid(nm, strlen(nm))) {
                return fail(res, 400, err, TD_INVALID, "invalid labels: empty or non-UTF-8 name");
            }
            if (!v || !td__utf8_valid(v, strlen(v))) {
                return failf(res, err, "invalid labels: value of %.64s is not valid UTF-8", nm);
            }
            for (size_t j = 0; j < k; j++) {
                if (strcmp(ps->labels[j].name, nm) == 0) {
                    return failf(res, err, "invalid labels: duplicate label name %.64s", nm);
                }
            }
            if (strcmp(nm, "__name__") == 0) {
                metric = v;
                continue;
            }
            if (!td_profiler_label_allowed(nm)) {
                continue;
            }
            has_svc = has_svc || strcmp(nm, "service_name") == 0;
            if (!td__labels_add(&l, nm, v)) {
                return fail(res, 503, err, TD_NOMEM, "out of memory");
            }
        }
        if (!metric || !metric[0]) {
            return fail(res, 400, err, TD_INVALID, "invalid labels: missing __name__");
        }
        if (!has_svc && !td__labels_add(&l, "service_name", "unknown_service")) {
            return fail(res, 503, err, TD_NOMEM, "out of memory");
        }
        td__labels_finish(&l);
        for (size_t k = 0; k < ps->nprofiles; k++) {
            td_pprof_profile *p;
            td_status st =
                td_profiler_pprof_decode(ps->profiles[k].ptr, ps->profiles[k].len, o, a, &p, err);
            if (st != TD_OK) {
                /* a push answers every profile problem with invalid_argument */
                res->http = st == TD_NOMEM ? 503 : 400;
                err->code = st == TD_NOMEM ? st : TD_INVALID;
                return err->code;
            }
            if (p->n_sample_type == 0) {
                return fail(res, 400, err, TD_INVALID, "profile has no sample types");
            }
            if (p->n_sample == 0) {
                continue;
            }
            int64_t t = p->time_nanos ? p->time_nanos : now_ns;
            if (o->reject_older_ms > 0 && t < now_ns - o->reject_older_ms * 1000000) {
                return failf(res, err,
                             "profile is too old: time %" PRId64 " ns is more than %" PRId64
                             " ms in the past "
                             "(profile-reject-older-than)",
                             t, o->reject_older_ms);
            }
            if (o->reject_newer_ms > 0 && t > now_ns + o->reject_newer_ms * 1000000) {
                return failf(res, err,
                             "profile is too far in the future: time %" PRId64
                             " ns is more than %" PRId64 " ms ahead "
                             "(profile-reject-newer-than)",
                             t, o->reject_newer_ms);
            }
            td_pnorm in = {.tenant = tenant,
                           .p = p,
                           .metric = metric,
                           .labels = l.v,
                           .nlabels = l.n,
                           .time_ns = t,
                           .duration_ns = p->duration_nanos > 0 ? p->duration_nanos : 0};
            td_pwrite w;
            size_t ns;
            if (td_profiler_pprof_to_write(&in, a, &w, &ns, err) != TD_OK) {
                res->http = td_status_http(err->code);
                return err->code;
            }
            if (w.nseries == 0) {
                continue;
            }
            if (fn(ud, &w, err) != TD_OK) {
                res->http = td_status_http(err->code);
                return err->code;
            }
            res->profiles++;
            res->series += w.nseries;
            res->samples += ns;
        }
    }
    return TD_OK;
}
