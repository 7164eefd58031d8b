/*
 * cmd_tags.c - `tracectl tags`: list tag names (grouped by scope) or the values
 * of one tag, from Tempo's v2 tag endpoints (API-CONTRACT §3.6, §3.7).
 *
 *   tracectl tags                          GET /api/v2/search/tags
 *   tracectl tags resource.service.name    GET /api/v2/search/tag/resource.service.name/values
 *   tracectl tags service.name             the same for ".service.name" (a bare key is
 *                                          made unscoped, or scoped with --scope)
 *
 * Everything printed comes from the server, so names and values go through
 * td_ctl_put_text (terminal escapes neutralised, length bounded).
 */
#include "tracectl.h"

#include "core/mem.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIMIT 100000 /* the server's cap per scope / per answer */
#define TEXT_BYTES 1024  /* escaped bytes shown per name or value */

static const char *const SCOPES[] = {"resource",        "span",  "intrinsic", "event", "link",
                                     "instrumentation", "trace", "none"};

/* Intrinsics spelled without a scope; everything else unscoped is an attribute key. */
static const char *const UNSCOPED_INTRINSICS[] = {
    "name",          "status",          "kind",       "duration",     "statusMessage", "rootName",
    "traceDuration", "rootServiceName", "childCount", "nestedSetLeft"};

static const char *const SCOPE_PREFIXES[] = {
    "span.", "resource.", "event.", "link.", "instrumentation.",
    "span:", "trace:",    "event:", "link:", "instrumentation:"};

static bool starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* True when key can follow a scope's '.' without quotes. */
static bool plain_key(const char *k)
{
    for (; *k; k++) {
        unsigned char c = (unsigned char)*k;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/' || c >= 0x80)) {
            return false;
        }
    }
    return true;
}

/*
 * The TraceQL identifier for NAME: kept as written when it already is one
 * (scoped, ".key", an intrinsic); a bare key gets "<scope>." (or "." without
 * --scope), quoted when it holds characters TraceQL does not allow bare.
 */
static void identifier(td_buf *b, const char *name, const char *scope)
{
    for (size_t i = 0; i < sizeof(SCOPE_PREFIXES) / sizeof(SCOPE_PREFIXES[0]); i++) {
        if (starts_with(name, SCOPE_PREFIXES[i])) {
            td_buf_addstr(b, name);
            return;
        }
    }
    for (size_t i = 0; i < sizeof(UNSCOPED_INTRINSICS) / sizeof(UNSCOPED_INTRINSICS[0]); i++) {
        if (strcmp(name, UNSCOPED_INTRINSICS[i]) == 0 && (!scope || !strcmp(scope, "intrinsic"))) {
            td_buf_addstr(b, name);
            return;
        }
    }
    if (name[0] == '.') {
        td_buf_addstr(b, name);
        return;
    }
    if (scope && strcmp(scope, "none") != 0 && strcmp(scope, "intrinsic") != 0) {
        td_buf_addstr(b, scope);
    }
    td_buf_addch(b, '.');
    if (plain_key(name)) {
        td_buf_addstr(b, name);
        return;
    }
    td_buf_addch(b, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\') {
            td_buf_addch(b, '\\');
        }
        td_buf_addch(b, *p);
    }
    td_buf_addch(b, '"');
}

static const json_t *member(const json_t *obj, const char *key)
{
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

/* Print the scopes of a SearchTagsV2Response; returns the number of names. */
static size_t print_names(FILE *f, const json_t *scopes)
{
    size_t total = 0, i, k;
    const json_t *sc, *t;
    td_buf line = TD_BUF_INIT;
    json_array_foreach (scopes, i, sc) {
        size_t nlen;
        const char *name = td_ctl_json_str(sc, "name", &nlen);
        const json_t *tags = member(sc, "tags");
        td_buf_reset(&line);
        td_ctl_put_text(&line, name ? name : "?", name ? nlen : 1, 64, 0);
        td_buf_addf(&line, " (%zu):\n", json_array_size(tags));
        json_array_foreach (tags, k, t) {
            if (!json_is_string(t)) {
                continue;
            }
            td_buf_addstr(&line, "  ");
            td_ctl_put_text(&line, json_string_value(t), json_string_length(t), TEXT_BYTES, 0);
            td_buf_addch(&line, '\n');
            total++;
        }
        fwrite(line.data, 1, line.len, f);
    }
    td_buf_release(&line);
    return total;
}

/* Print a SearchTagValuesV2Response as "TYPE  VALUE" lines; returns the number of values. */
static size_t print_values(FILE *f, const json_t *values)
{
    size_t n = 0, i;
    const json_t *v;
    td_buf line = TD_BUF_INIT;
    json_array_foreach (values, i, v) {
        size_t tl, vl;
        const char *type = td_ctl_json_str(v, "type", &tl);
        const char *val = td_ctl_json_str(v, "value", &vl);
        if (!val) {
            continue;
        }
        td_buf_reset(&line);
        size_t before = line.len;
        td_ctl_put_text(&line, type ? type : "?", type ? tl : 1, 16, 0);
        for (size_t w = line.len - before; w < 9; w++) {
            td_buf_addch(&line, ' ');
        }
        td_ctl_put_text(&line, val, vl, TEXT_BYTES,
                        td_ctl_needs_quote(val, vl) ? TD_CTL_TEXT_QUOTE : 0);
        td_buf_addch(&line, '\n');
        fwrite(line.data, 1, line.len, f);
        n++;
    }
    td_buf_release(&line);
    return n;
}

static void tags_help(FILE *f)
{
    fputs("Usage: tracectl tags [NAME] [--scope SCOPE] [--since DURATION | --start S --end S]\n"
          "                     [--limit N] [GLOBAL OPTIONS]\n"
          "\n"
          "Without NAME, list the tag names the server knows, grouped by scope\n"
          "(GET /api/v2/search/tags). With NAME, list the values of that tag\n"
          "(GET /api/v2/search/tag/NAME/values).\n"
          "\n"
          "NAME is a TraceQL identifier (resource.service.name, span.http.route, .key,\n"
          "name, status, span:kind, ...) or a bare attribute key such as service.name,\n"
          "which is looked up as .service.name (span, then resource attributes), or as\n"
          "SCOPE.service.name with --scope.\n"
          "\n"
          "Options:\n"
          "  --scope SCOPE     resource, span, intrinsic, event, link, instrumentation,\n"
          "                    trace or none (all, the default)\n"
          "  --since DURATION  only tags seen in the last DURATION: 30s, 15m, 1h, 2d or\n"
          "                    sums such as 1h30m (default: all the server has)\n"
          "  --start S         window start, unix seconds (with --end; not with --since)\n"
          "  --end S           window end, unix seconds (> start)\n"
          "  --limit N         at most N names per scope, or N values, 1-100000\n"
          "\n"
          "Examples:\n"
          "  tracectl tags --scope resource\n"
          "  tracectl tags resource.service.name --since 1h\n"
          "  tracectl tags status\n"
          "\n"
          "Output: names as \"SCOPE (N):\" followed by one indented name per line; values\n"
          "as one \"TYPE  VALUE\" line each (TYPE is string, int, float, bool or keyword;\n"
          "values that need it are quoted). With --json the server's JSON body is printed\n"
          "unchanged. Nothing listed exits 1; a name the server rejects (HTTP 400) prints\n"
          "the server's message on stderr and exits 4.\n"
          "\n",
          f);
    td_ctl_help_common(f);
    fputc('\n', f);
    td_ctl_help_exit_codes(f);
}

static int tags_run(td_ctl_opts *o, int argc, char **argv)
{
    const char *name = NULL, *scope = NULL, *since = NULL, *start = NULL, *end = NULL,
               *limit = NULL;
    bool only_args = false;
    int i = 1, r;
    while (i < argc) {
        if (!only_args && argv[i][0] == '-' && argv[i][1] != '\0') {
            if (strcmp(argv[i], "--") == 0) {
                only_args = true;
                i++;
                continue;
            }
            if ((r = td_ctl_common_opt(o, "tags", argc, argv, &i)) == 0 &&
                (r = td_ctl_opt("tags", argc, argv, &i, "--scope", &scope)) == 0 &&
                (r = td_ctl_opt("tags", argc, argv, &i, "--since", &since)) == 0 &&
                (r = td_ctl_opt("tags", argc, argv, &i, "--start", &start)) == 0 &&
                (r = td_ctl_opt("tags", argc, argv, &i, "--end", &end)) == 0 &&
                (r = td_ctl_opt("tags", argc, argv, &i, "--limit", &limit)) == 0) {
                return td_ctl_usage_error("tags", "unknown option '%s'", argv[i]);
            }
            if (r < 0) {
                return TD_CTL_EXIT_USAGE;
            }
            continue;
        }
        if (name) {
            return td_ctl_usage_error("tags", "more than one tag name given ('%s', '%s')", name,
                                      argv[i]);
        }
        name = argv[i++];
    }
    if (name && !*name) {
        return td_ctl_usage_error("tags", "empty tag name");
    }
    if (scope) {
        bool ok = false;
        for (size_t k = 0; k < sizeof(SCOPES) / sizeof(SCOPES[0]); k++) {
            ok = ok || strcmp(scope, SCOPES[k]) == 0;
        }
        if (!ok) {
            return td_ctl_usage_error("tags",
                                      "invalid --scope '%s': want resource, span, intrinsic, "
                                      "event, link, instrumentation, trace or none",
                                      scope);
        }
    }
    uint64_t v_limit = 0, v_start = 0, v_end = 0;
    if (limit && !td_ctl_parse_uint(limit, 1, MAX_LIMIT, &v_limit)) {
        return td_ctl_usage_error("tags", "invalid --limit '%s': want a number from 1 to %d", limit,
                                  MAX_LIMIT);
    }
    /* the tag endpoints read start/end as signed 32-bit seconds */
    static const td_ctl_window_spec window = {INT32_MAX, 0, 1};
    int rc = td_ctl_time_window("tags", &window, since, start, end, &v_start, &v_end);
    if (rc != TD_CTL_EXIT_OK) {
        return rc;
    }

    td_buf path = TD_BUF_INIT, ident = TD_BUF_INIT;
    char sep = '?';
    if (name) {
        identifier(&ident, name, scope);
        td_buf_addstr(&path, "/api/v2/search/tag/");
        td_ctl_add_query_escaped(&path, ident.data);
        td_buf_addstr(&path, "/values");
    } else {
        td_buf_addstr(&path, "/api/v2/search/tags");
        if (scope) {
            td_buf_addstr(&path, "?scope=");
            td_ctl_add_query_escaped(&path, scope);
            sep = '&';
        }
    }
    if (v_limit) {
        td_buf_addf(&path, "%climit=%" PRIu64, sep, v_limit);
        sep = '&';
    }
    if (v_end) {
        td_buf_addf(&path, "%cstart=%" PRIu64 "&end=%" PRIu64, sep, v_start, v_end);
    }

    td_ctl_http_resp resp;
    td_err err;
    td_err_init(&err);
    td_status st = td_ctl_http_get(o, path.data, "application/json", &resp, &err);
    td_buf_release(&path);
    td_buf_release(&ident);
    if (st != TD_OK) {
        return td_ctl_http_fail(o, &err);
    }
    rc = TD_CTL_EXIT_OK;
    json_t *root = NULL;
    if (resp.status != 200) {
        td_ctl_print_http_error(&resp);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    json_error_t jerr;
    root = json_loadb(resp.body.data, resp.body.len, JSON_ALLOW_NUL, &jerr);
    if (!root || !json_is_object(root)) {
        fprintf(stderr, "tracectl: the server's answer is not a JSON object: %s\n",
                root ? "other JSON" : jerr.text);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    const json_t *list = member(root, name ? "tagValues" : "scopes");
    if (list && !json_is_array(list)) {
        fprintf(stderr, "tracectl: the server's answer has no %s list\n",
                name ? "tagValues" : "scopes");
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    size_t n = 0;
    if (o->json) {
        td_ctl_write_body(stdout, td_buf_slice(&resp.body));
        /* count what the answer lists, for the exit code */
        size_t k;
        const json_t *sc;
        if (name) {
            n = json_array_size(list);
        } else {
            json_array_foreach (list, k, sc) {
                n += json_array_size(member(sc, "tags"));
            }
        }
    } else {
        n = name ? print_values(stdout, list) : print_names(stdout, list);
    }
    if (n == 0) {
        rc = TD_CTL_EXIT_NOT_FOUND;
        if (!o->json) {
            fputs(name ? "tracectl: no values\n" : "tracectl: no tags\n", stderr);
        }
    } else if (v_limit && n >= v_limit && name && !o->json) {
        fprintf(stderr, "tracectl: showing the first %zu values; raise --limit for more\n", n);
    }
out:
    json_decref(root);
    td_ctl_http_resp_release(&resp);
    return rc;
}

const td_ctl_cmd td_ctl_cmd_tags = {
    .name = "tags",
    .summary = "list tag names by scope, or the values of one tag",
    .run = tags_run,
    .help = tags_help,
};
