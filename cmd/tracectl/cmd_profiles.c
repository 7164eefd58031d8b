/*
 * cmd_profiles.c - `tracectl profiles`: the Pyroscope query API from the command line.
 *
 *   profiles types                 ProfileTypes: one profile type ID per line
 *   profiles labels [NAME]         LabelNames, or LabelValues of NAME
 *   profiles top --type ID         SelectMergeStacktraces, printed like `go tool pprof -top`
 *   profiles export --type ID -o F SelectMergeProfile, written as a gzipped pprof
 *
 * Calls are Connect unary POSTs to /querier.v1.QuerierService/<Method> (API-CONTRACT
 * §6.1): JSON for everything we print, application/proto for export so the pprof
 * bytes arrive unchanged. The export request is four protobuf fields, encoded here
 * by hand (tracectl links no protobuf library).
 *
 * top works on the flame graph: a function's flat value is the sum of the self
 * values of its nodes, its cumulative value the sum of the totals of its nodes
 * that have no ancestor of the same name (so recursion is counted once, as pprof
 * does per sample).
 */
#include "tracectl.h"

#include "core/gzip.h"
#include "core/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SINCE_S 3600
#define MAX_SPANS 64
#define SVC "/querier.v1.QuerierService/"
#define ACCEPT_JSON "application/json; allow-utf8-labelnames=true"

typedef struct pargs {
    const char *type, *query, *since, *start, *end, *out, *limit, *max_nodes;
    const char *spans[MAX_SPANS];
    size_t nspans;
    const char *positional;
    int64_t start_ms, end_ms;
} pargs;

/* ------------------------------------------------------------------ parsing */

static bool is_hex16(const char *s)
{
    if (strlen(s) != 16) {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) {
            return false;
        }
    }
    return true;
}

/* Parse the subcommand's arguments (argv[0] is the subcommand). */
static int parse_args(td_ctl_opts *o, const char *sub, int argc, char **argv, pargs *a)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "profiles %s", sub);
    int i = 1, r;
    bool only_args = false;
    while (i < argc) {
        if (!only_args && argv[i][0] == '-' && argv[i][1] != '\0') {
            if (strcmp(argv[i], "--") == 0) {
                only_args = true;
                i++;
                continue;
            }
            const char *span = NULL;
            if ((r = td_ctl_common_opt(o, "profiles", argc, argv, &i)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--type", &a->type)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--query", &a->query)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--since", &a->since)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--start", &a->start)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--end", &a->end)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--limit", &a->limit)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--max-nodes", &a->max_nodes)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--span-id", &span)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "-o", &a->out)) == 0 &&
                (r = td_ctl_opt("profiles", argc, argv, &i, "--output", &a->out)) == 0) {
                return td_ctl_usage_error("profiles", "unknown option '%s'", argv[i]);
            }
            if (r < 0) {
                return TD_CTL_EXIT_USAGE;
            }
            if (span) {
                if (!is_hex16(span)) {
                    return td_ctl_usage_error("profiles",
                                              "invalid --span-id '%s': want 16 hex digits", span);
                }
                if (a->nspans == MAX_SPANS) {
                    return td_ctl_usage_error("profiles", "at most %d --span-id options",
                                              MAX_SPANS);
                }
                a->spans[a->nspans++] = span;
            }
            continue;
        }
        if (a->positional) {
            return td_ctl_usage_error("profiles", "unexpected argument '%s' for %s", argv[i], cmd);
        }
        a->positional = argv[i++];
    }
    static const td_ctl_window_spec window = {UINT32_MAX, DEFAULT_SINCE_S, 0};
    uint64_t s, e;
    int rc = td_ctl_time_window("profiles", &window, a->since, a->start, a->end, &s, &e);
    if (rc != TD_CTL_EXIT_OK) {
        return rc;
    }
    a->start_ms = (int64_t)s * 1000;
    a->end_ms = (int64_t)e * 1000 + 999;
    return TD_CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ calls */

/*
 * POST a JSON request to method; on 200 *root is the parsed answer (or, with
 * o->json, the body is printed and *root stays NULL). Returns an exit code.
 */
static int call_json(const td_ctl_opts *o, const char *method, json_t *req, json_t **root)
{
    *root = NULL;
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body) {
        fputs("tracectl: out of memory\n", stderr);
        return TD_CTL_EXIT_SERVER;
    }
    char path[128];
    snprintf(path, sizeof(path), SVC "%s", method);
    td_ctl_http_resp resp;
    td_err err;
    td_err_init(&err);
    td_status st =
        td_ctl_http_post(o, path, ACCEPT_JSON, "application/json", body, strlen(body), &resp, &err);
    free(body);
    if (st != TD_OK) {
        return td_ctl_http_fail(o, &err);
    }
    int rc = TD_CTL_EXIT_OK;
    if (resp.status != 200) {
        td_ctl_print_http_error(&resp);
        rc = TD_CTL_EXIT_SERVER;
    } else if (o->json) {
        td_ctl_write_body(stdout, td_buf_slice(&resp.body));
    } else {
        json_error_t jerr;
        *root = json_loadb(resp.body.data, resp.body.len, JSON_ALLOW_NUL, &jerr);
        if (!*root || !json_is_object(*root)) {
            fprintf(stderr, "tracectl: the server's answer is not a JSON object\n");
            json_decref(*root);
            *root = NULL;
            rc = TD_CTL_EXIT_SERVER;
        }
    }
    td_ctl_http_resp_release(&resp);
    return rc;
}

static void print_line(const char *s)
{
    td_buf b = TD_BUF_INIT;
    td_ctl_put_text(&b, s, strlen(s), (size_t)4 << 10, 0);
    td_buf_addch(&b, '\n');
    fwrite(b.data, 1, b.len, stdout);
    td_buf_release(&b);
}

/* Print the strings of array `key` one per line; exit NOT_FOUND when there are none. */
static int print_strings(json_t *root, const char *key, const char *field)
{
    json_t *arr = json_object_get(root, key);
    size_t n = 0, i;
    json_t *v;
    json_array_foreach (arr, i, v) {
        size_t len;
        const char *s = field ? td_ctl_json_str(v, field, &len) : json_string_value(v);
        if (s) {
            print_line(s);
            n++;
        }
    }
    json_decref(root);
    return n ? TD_CTL_EXIT_OK : TD_CTL_EXIT_NOT_FOUND;
}

static json_t *range(const pargs *a)
{
    json_t *r = json_object();
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, a->start_ms);
    json_object_set_new(r, "start", json_string(buf));
    snprintf(buf, sizeof(buf), "%" PRId64, a->end_ms);
    json_object_set_new(r, "end", json_string(buf));
    return r;
}

static int run_types(td_ctl_opts *o, const pargs *a)
{
    json_t *root;
    int rc = call_json(o, "ProfileTypes", range(a), &root);
    return rc != TD_CTL_EXIT_OK || !root ? rc : print_strings(root, "profileTypes", "ID");
}

static int run_labels(td_ctl_opts *o, const pargs *a)
{
    json_t *req = range(a);
    json_t *m = json_array();
    json_array_append_new(m, json_string(a->query ? a->query : "{}"));
    json_object_set_new(req, "matchers", m);
    if (a->positional) {
        json_object_set_new(req, "name", json_string(a->positional));
    }
    json_t *root;
    int rc = call_json(o, a->positional ? "LabelValues" : "LabelNames", req, &root);
    return rc != TD_CTL_EXIT_OK || !root ? rc : print_strings(root, "names", NULL);
}

/* ------------------------------------------------------------------ top */

typedef struct fnode {
    int64_t x, total, self;
    size_t name;
    long parent; /* index into the previous level, -1 for the root */
} fnode;

typedef struct frow {
    const char *name;
    int64_t flat, cum;
} frow;

static int cmp_rows(const void *pa, const void *pb)
{
    const frow *a = pa, *b = pb;
    if (a->flat != b->flat) {
        return a->flat > b->flat ? -1 : 1;
    }
    if (a->cum != b->cum) {
        return a->cum > b->cum ? -1 : 1;
    }
    return strcmp(a->name, b->name);
}

static bool json_i64(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (!json_is_string(v)) {
        return false;
    }
    char *end;
    errno = 0;
    long long x = strtoll(json_string_value(v), &end, 10);
    if (errno || *end || end == json_string_value(v)) {
        return false;
    }
    *out = x;
    return true;
}

/* Print the flame graph like `go tool pprof -top`; false when it is malformed. */
static bool print_top(const json_t *fg, size_t limit, const char *type_id)
{
    const json_t *names = json_object_get(fg, "names"), *levels = json_object_get(fg, "levels");
    int64_t total = 0;
    json_i64(json_object_get(fg, "total"), &total);
    size_t nnames = json_array_size(names), nlevels = json_array_size(levels);
    fnode **lv = td_xcalloc(nlevels ? nlevels : 1, sizeof(*lv));
    size_t *nl = td_xcalloc(nlevels ? nlevels : 1, sizeof(*nl));
    frow *rows = td_xcalloc(nnames ? nnames : 1, sizeof(*rows));
    bool ok = true;
    for (size_t l = 0; ok && l < nlevels; l++) {
        const json_t *vals = json_object_get(json_array_get(levels, l), "values");
        size_t n = json_array_size(vals) / 4;
        lv[l] = td_xcalloc(n ? n : 1, sizeof(**lv));
        nl[l] = n;
        int64_t prev_end = 0;
        long p = 0;
        for (size_t k = 0; ok && k < n; k++) {
            int64_t v[4];
            for (int c = 0; c < 4; c++) {
                ok = ok && json_i64(json_array_get(vals, 4 * k + (size_t)c), &v[c]);
            }
            if (!ok || v[3] < 0 || (size_t)v[3] >= nnames) {
                ok = false;
                break;
            }
            fnode *f = &lv[l][k];
            f->x = prev_end + v[0];
            f->total = v[1];
            f->self = v[2];
            f->name = (size_t)v[3];
            prev_end = f->x + f->total;
            f->parent = -1;
            if (l > 0) {
                /* the last node of the previous level starting at or before x */
                while ((size_t)p + 1 < nl[l - 1] && lv[l - 1][p + 1].x <= f->x) {
                    p++;
                }
                f->parent = nl[l - 1] ? p : -1;
            }
        }
    }
    for (size_t l = 1; ok && l < nlevels; l++) {
        for (size_t k = 0; k < nl[l]; k++) {
            const fnode *f = &lv[l][k];
            frow *r = &rows[f->name];
            r->name = json_string_value(json_array_get(names, f->name));
            r->flat += f->self;
            /* cumulative: once per path, so skip nodes below a node of the same name */
            bool seen = false;
            long p = f->parent;
            for (size_t up = l - 1; up >= 1 && p >= 0 && !seen; up--) {
                seen = lv[up][p].name == f->name;
                p = lv[up][p].parent;
            }
            if (!seen) {
                r->cum += f->total;
            }
        }
    }
    if (ok) {
        size_t n = 0;
        for (size_t i = 0; i < nnames; i++) {
            if (rows[i].name) {
                rows[n++] = rows[i];
            }
        }
        qsort(rows, n, sizeof(*rows), cmp_rows);
        if (limit && limit < n) {
            n = limit;
        }
        int64_t shown = 0;
        for (size_t i = 0; i < n; i++) {
            shown += rows[i].flat;
        }
        double t = total ? (double)total : 1.0;
        printf("Type: %s\n", type_id);
        printf("Showing nodes accounting for %" PRId64 ", %.2f%% of %" PRId64 " total\n", shown,
               100.0 * (double)shown / t, total);
        printf("      flat  flat%%   sum%%        cum   cum%%\n");
        int64_t sum = 0;
        td_buf b = TD_BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            sum += rows[i].flat;
            td_buf_reset(&b);
            td_ctl_put_text(&b, rows[i].name ? rows[i].name : "?",
                            rows[i].name ? strlen(rows[i].name) : 1, 1024, 0);
            printf("%10" PRId64 " %6.2f%% %6.2f%% %10" PRId64 " %6.2f%%  %s\n", rows[i].flat,
                   100.0 * (double)rows[i].flat / t, 100.0 * (double)sum / t, rows[i].cum,
                   100.0 * (double)rows[i].cum / t, b.data);
        }
        td_buf_release(&b);
    }
    for (size_t l = 0; l < nlevels; l++) {
        td_free(lv[l]);
    }
    td_free(lv);
    td_free(nl);
    td_free(rows);
    return ok;
}

static int run_top(td_ctl_opts *o, const pargs *a)
{
    uint64_t limit = 0, maxn = 0;
    if (a->limit && !td_ctl_parse_uint(a->limit, 0, 1000000, &limit)) {
        return td_ctl_usage_error("profiles", "invalid --limit '%s'", a->limit);
    }
    if (a->max_nodes && !td_ctl_parse_uint(a->max_nodes, 0, 1048576, &maxn)) {
        return td_ctl_usage_error("profiles", "invalid --max-nodes '%s': 0-1048576", a->max_nodes);
    }
    json_t *req = range(a);
    json_object_set_new(req, "profileTypeID", json_string(a->type));
    json_object_set_new(req, "labelSelector", json_string(a->query ? a->query : "{}"));
    if (maxn) {
        json_object_set_new(req, "maxNodes", json_integer((json_int_t)maxn));
    }
    if (a->nspans) {
        json_t *s = json_array();
        for (size_t i = 0; i < a->nspans; i++) {
            json_array_append_new(s, json_string(a->spans[i]));
        }
        json_object_set_new(req, "spanSelector", s);
    }
    json_t *root;
    int rc =
        call_json(o, a->nspans ? "SelectMergeSpanProfile" : "SelectMergeStacktraces", req, &root);
    if (rc != TD_CTL_EXIT_OK || !root) {
        return rc;
    }
    const json_t *fg = json_object_get(root, "flamegraph");
    int64_t total = 0;
    json_i64(json_object_get(fg, "total"), &total);
    if (!fg || total == 0) {
        fputs("tracectl: no samples matched\n", stderr);
        rc = TD_CTL_EXIT_NOT_FOUND;
    } else if (!print_top(fg, (size_t)limit, a->type)) {
        fputs("tracectl: the server's flame graph is malformed\n", stderr);
        rc = TD_CTL_EXIT_SERVER;
    }
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ export */

static void pb_varint(td_buf *b, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        td_buf_addch(b, (char)(v ? c | 0x80 : c));
    } while (v);
}

static void pb_string(td_buf *b, unsigned num, const char *s)
{
    pb_varint(b, (uint64_t)num << 3 | 2);
    pb_varint(b, strlen(s));
    td_buf_addstr(b, s);
}

static int run_export(td_ctl_opts *o, const pargs *a)
{
    if (!a->out) {
        return td_ctl_usage_error("profiles", "export needs -o FILE (or -o - for stdout)");
    }
    /* SelectMergeProfileRequest: profile_typeID 1, label_selector 2, start 3, end 4 */
    td_buf req = TD_BUF_INIT;
    pb_string(&req, 1, a->type);
    pb_string(&req, 2, a->query ? a->query : "{}");
    pb_varint(&req, 3 << 3);
    pb_varint(&req, (uint64_t)a->start_ms);
    pb_varint(&req, 4 << 3);
    pb_varint(&req, (uint64_t)a->end_ms);
    td_ctl_http_resp resp;
    td_err err;
    td_err_init(&err);
    td_status st = td_ctl_http_post(o, SVC "SelectMergeProfile", "application/proto",
                                    "application/proto", req.data, req.len, &resp, &err);
    td_buf_release(&req);
    if (st != TD_OK) {
        return td_ctl_http_fail(o, &err);
    }
    int rc = TD_CTL_EXIT_OK;
    td_buf gz = TD_BUF_INIT;
    if (resp.status != 200) {
        td_ctl_print_http_error(&resp);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    if (td_gzip(resp.body.data, resp.body.len, &gz, &err) != TD_OK) {
        fprintf(stderr, "tracectl: gzip: %s\n", err.msg);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    bool to_stdout = strcmp(a->out, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(a->out, "wb");
    if (!f) {
        fprintf(stderr, "tracectl: cannot write %s: %s\n", a->out, strerror(errno));
        rc = TD_CTL_EXIT_USAGE;
        goto out;
    }
    bool wok = fwrite(gz.data, 1, gz.len, f) == gz.len;
    if (!to_stdout) {
        wok = fclose(f) == 0 && wok;
    }
    if (!wok) {
        fprintf(stderr, "tracectl: cannot write %s\n", a->out);
        rc = TD_CTL_EXIT_USAGE;
    } else if (!to_stdout) {
        fprintf(stderr, "tracectl: wrote %zu bytes (gzipped pprof) to %s\n", gz.len, a->out);
    }
out:
    td_buf_release(&gz);
    td_ctl_http_resp_release(&resp);
    return rc;
}

/* ------------------------------------------------------------------ command */

static void profiles_help(FILE *f)
{
    fputs("Usage: tracectl profiles types [--since D | --start S --end S]\n"
          "       tracectl profiles labels [NAME] [--query SELECTOR] [time options]\n"
          "       tracectl profiles top --type ID [--query SELECTOR] [--span-id HEX]...\n"
          "                             [--limit N] [--max-nodes N] [time options]\n"
          "       tracectl profiles export --type ID -o FILE [--query SELECTOR] [time options]\n"
          "\n"
          "Query continuous-profiling data (the Pyroscope API of the query port).\n"
          "\n"
          "  types    list the profile type IDs with data in the window\n"
          "  labels   list label names, or with NAME the values of that label\n"
          "  top      merge the matching profiles and print functions by flat and\n"
          "           cumulative value, like `go tool pprof -top`; --span-id keeps only the\n"
          "           samples of those spans (16 hex digits, repeatable)\n"
          "  export   write the merged profile as a gzipped pprof (`go tool pprof FILE`)\n"
          "\n"
          "Options:\n"
          "  --type ID          profile type, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds\n"
          "  --query SELECTOR   label selector, e.g. '{service_name=\"shop\"}' (default {})\n"
          "  --since DURATION   the last DURATION: 30s, 15m, 1h, 2d, 1h30m (default 1h)\n"
          "  --start S --end S  window in unix seconds (instead of --since)\n"
          "  -o, --output FILE  export destination (- = stdout)\n"
          "\n"
          "Output: one item per line (types, labels) or the top table; with --json the\n"
          "server's JSON answer unchanged. Nothing found exits 1; an answer other than 200\n"
          "(e.g. a bad --type or selector, HTTP 400) prints the server's message, exits 4.\n"
          "\n",
          f);
    td_ctl_help_common(f);
    fputc('\n', f);
    td_ctl_help_exit_codes(f);
}

static int profiles_run(td_ctl_opts *o, int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        return td_ctl_usage_error("profiles",
                                  "missing subcommand (it comes first): types, labels, top or "
                                  "export");
    }
    const char *sub = argv[1];
    pargs a = {0};
    int rc = parse_args(o, sub, argc - 1, argv + 1, &a);
    if (rc != TD_CTL_EXIT_OK) {
        return rc;
    }
    bool needs_type = strcmp(sub, "top") == 0 || strcmp(sub, "export") == 0;
    if (needs_type && (!a.type || !*a.type)) {
        return td_ctl_usage_error("profiles",
                                  "%s needs --type PROFILE_TYPE_ID (see 'tracectl "
                                  "profiles types')",
                                  sub);
    }
    if (strcmp(sub, "labels") != 0 && a.positional) {
        return td_ctl_usage_error("profiles", "unexpected argument '%s'", a.positional);
    }
    if (strcmp(sub, "types") == 0) {
        return run_types(o, &a);
    }
    if (strcmp(sub, "labels") == 0) {
        return run_labels(o, &a);
    }
    if (strcmp(sub, "top") == 0) {
        return run_top(o, &a);
    }
    if (strcmp(sub, "export") == 0) {
        return run_export(o, &a);
    }
    return td_ctl_usage_error("profiles", "unknown subcommand '%s': types, labels, top or export",
                              sub);
}

const td_ctl_cmd td_ctl_cmd_profiles = {
    .name = "profiles",
    .summary = "query profiles: types, labels, top functions, pprof export",
    .run = profiles_run,
    .help = profiles_help,
};
