/*
 * cmd_search.c - `tracectl search`: run a TraceQL search and print the matches
 * as a table.
 *
 * The server answers Tempo's SearchResponse JSON (API-CONTRACT §3.5). Every
 * cell is escaped for the terminal first (td_ctl_put_text), then cut to its
 * column's width in characters with a trailing "…", so a hostile service name
 * can neither move the cursor nor push the other columns out of line.
 */
#include "tracectl.h"

#include "core/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_LIMIT 20
#define DEFAULT_SINCE_S 3600
/* Server-side bounds (API-CONTRACT corrections: limit > 262144 or spss > 100 is a 400). */
#define MAX_LIMIT 262144
#define MAX_SPSS 100
/* Widest a text column may grow, in characters; longer cells end in "…". */
#define MAX_SERVICE_COLS 24
#define MAX_NAME_COLS 40
/* Bytes of escaped text kept per cell before cutting to the column width. */
#define CELL_BYTES 512

enum { COL_ID, COL_SERVICE, COL_NAME, COL_START, COL_DURATION, COL_MATCHED, NCOLS };

static const char *const HEADERS[NCOLS] = {"TRACE ID", "ROOT SERVICE", "ROOT NAME",
                                           "START",    "DURATION",     "MATCHED"};
static const size_t MAX_COLS[NCOLS] = {32, MAX_SERVICE_COLS, MAX_NAME_COLS, 19, 16, 12};

typedef struct row {
    td_buf cell[NCOLS];
} row;

/* ------------------------------------------------------------------ cells */

static const json_t *member(const json_t *obj, const char *key)
{
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

/* Characters (UTF-8 code points) in s; escaped cells are valid UTF-8. */
static size_t text_width(const char *s, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        w += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return w;
}

/* Cut b to at most cols characters, the last one "…" when anything was dropped. */
static void fit(td_buf *b, size_t cols)
{
    if (text_width(b->data, b->len) <= cols) {
        return;
    }
    size_t w = 0, i = 0;
    for (; i < b->len; i++) {
        if (((unsigned char)b->data[i] & 0xC0) != 0x80) {
            if (w == cols - 1) {
                break;
            }
            w++;
        }
    }
    td_buf_setlen(b, i);
    td_buf_addstr(b, "\xe2\x80\xa6");
}

static void put_string_cell(td_buf *b, const json_t *obj, const char *key)
{
    size_t n;
    const char *s = td_ctl_json_str(obj, key, &n);
    if (!s || n == 0) {
        td_buf_addch(b, '-');
        return;
    }
    td_ctl_put_text(b, s, n, CELL_BYTES, 0);
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

/* Tempo writes hex trace IDs without leading zeros; show all 32 digits, lowercase. */
static void put_trace_id(td_buf *b, const json_t *tr)
{
    size_t n;
    const char *s = td_ctl_json_str(tr, "traceID", &n);
    uint8_t id[TD_CTL_ID_MAX];
    size_t idlen;
    if (!s || n == 0) {
        td_buf_addch(b, '-');
    } else if (n <= 32 && all_hex(s, n)) {
        for (size_t i = n; i < 32; i++) {
            td_buf_addch(b, '0');
        }
        for (size_t i = 0; i < n; i++) {
            td_buf_addch(b, (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 'a' : s[i]));
        }
    } else if (td_ctl_id_decode(s, n, id, sizeof(id), &idlen) && idlen <= 16) {
        for (size_t i = idlen; i < 16; i++) {
            td_buf_addstr(b, "00");
        }
        td_buf_addhex(b, id, idlen);
    } else {
        td_ctl_put_text(b, s, n, CELL_BYTES, 0);
    }
}

static void put_start(td_buf *b, const json_t *tr)
{
    uint64_t ns;
    if (!td_ctl_json_u64(member(tr, "startTimeUnixNano"), &ns) || ns == 0) {
        td_buf_addch(b, '-');
        return;
    }
    time_t secs = (time_t)(ns / 1000000000u);
    struct tm tm;
    char tmp[64];
    if (!localtime_r(&secs, &tm) || strftime(tmp, sizeof(tmp), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        td_buf_addch(b, '?');
        return;
    }
    td_buf_addstr(b, tmp);
}

static void put_duration(td_buf *b, const json_t *tr)
{
    uint64_t ms = 0;
    const json_t *v = member(tr, "durationMs");
    if (v && !td_ctl_json_u64(v, &ms)) {
        td_buf_addch(b, '?');
        return;
    }
    if (ms == 0) {
        td_buf_addstr(b, "<1ms"); /* zero is omitted in Tempo JSON: under a millisecond */
        return;
    }
    if (ms > UINT64_MAX / 1000000u) {
        ms = UINT64_MAX / 1000000u;
    }
    td_ctl_fmt_duration(b, ms * 1000000u);
}

/* Sum of spanSets[].matched; a server that only sends spanSet gives its matched. */
static void put_matched(td_buf *b, const json_t *tr)
{
    const json_t *sets = member(tr, "spanSets"), *set;
    uint64_t sum = 0, m;
    bool any = false;
    size_t i;
    if (json_is_array(sets) && json_array_size(sets) > 0) {
        json_array_foreach (sets, i, set) {
            if (td_ctl_json_u64(member(set, "matched"), &m)) {
                sum += m;
            }
            any = any || json_is_object(set);
        }
    } else if (json_is_object(member(tr, "spanSet"))) {
        any = true;
        if (td_ctl_json_u64(member(member(tr, "spanSet"), "matched"), &m)) {
            sum = m;
        }
    }
    if (any) {
        td_buf_addf(b, "%" PRIu64, sum);
    } else {
        td_buf_addch(b, '-');
    }
}

/* ------------------------------------------------------------------ table */

/* Returns false when out of memory (nothing printed). */
static bool print_table(FILE *f, const json_t *traces)
{
    size_t n = json_array_size(traces), i;
    row *rows = td_calloc(n ? n : 1, sizeof(row));
    size_t width[NCOLS];
    if (!rows) {
        return false;
    }
    for (int c = 0; c < NCOLS; c++) {
        width[c] = strlen(HEADERS[c]);
    }
    for (i = 0; i < n; i++) {
        const json_t *tr = json_array_get(traces, i);
        row *r = &rows[i];
        for (int c = 0; c < NCOLS; c++) {
            td_buf_init(&r->cell[c], 0);
        }
        put_trace_id(&r->cell[COL_ID], tr);
        put_string_cell(&r->cell[COL_SERVICE], tr, "rootServiceName");
        put_string_cell(&r->cell[COL_NAME], tr, "rootTraceName");
        put_start(&r->cell[COL_START], tr);
        put_duration(&r->cell[COL_DURATION], tr);
        put_matched(&r->cell[COL_MATCHED], tr);
        for (int c = 0; c < NCOLS; c++) {
            fit(&r->cell[c], MAX_COLS[c]);
            size_t w = text_width(r->cell[c].data, r->cell[c].len);
            if (w > width[c]) {
                width[c] = w;
            }
        }
    }

    td_buf line = TD_BUF_INIT;
    for (size_t k = n ? 0 : 1; k <= n; k++) { /* no header over an empty table */
        td_buf_reset(&line);
        for (int c = 0; c < NCOLS; c++) {
            const char *s = k == 0 ? HEADERS[c] : rows[k - 1].cell[c].data;
            size_t len = k == 0 ? strlen(s) : rows[k - 1].cell[c].len;
            td_buf_add(&line, s, len);
            if (c + 1 < NCOLS) {
                for (size_t w = text_width(s, len); w < width[c] + 2; w++) {
                    td_buf_addch(&line, ' ');
                }
            }
        }
        td_buf_addch(&line, '\n');
        fwrite(line.data, 1, line.len, f);
    }
    fprintf(f, "%zu trace%s\n", n, n == 1 ? "" : "s");
    td_buf_release(&line);
    for (i = 0; i < n; i++) {
        for (int c = 0; c < NCOLS; c++) {
            td_buf_release(&rows[i].cell[c]);
        }
    }
    td_free(rows);
    return true;
}

/* ------------------------------------------------------------------ arguments */

static void search_help(FILE *f)
{
    fputs("Usage: tracectl search 'TRACEQL' [--since DURATION | --start S --end S]\n"
          "                       [--limit N] [--spss N] [GLOBAL OPTIONS]\n"
          "\n"
          "Search traces with a TraceQL query (GET /api/search) and print one line per\n"
          "matching trace, newest first.\n"
          "\n"
          "Options:\n"
          "  --since DURATION  search the last DURATION: 30s, 15m, 1h, 2d or sums such\n"
          "                    as 1h30m (default 1h)\n"
          "  --start S         window start, unix seconds (with --end; not with --since)\n"
          "  --end S           window end, unix seconds (> start)\n"
          "  --limit N         at most N traces, 1-262144 (default 20)\n"
          "  --spss N          spans per span set the server returns, 1-100 (server\n"
          "                    default 3; only visible with --json)\n"
          "\n"
          "Example:\n"
          "  tracectl search '{ resource.service.name = \"cart\" && status = error }' --since 15m\n"
          "\n"
          "Output: a table with the columns\n"
          "  TRACE ID  ROOT SERVICE  ROOT NAME  START  DURATION  MATCHED\n"
          "where START is the trace start in local time (YYYY-MM-DD HH:MM:SS), DURATION\n"
          "the trace duration, MATCHED the number of spans that matched the query; long\n"
          "names are cut with \"…\". A last line counts the traces (\"N traces\"); when\n"
          "N reaches --limit a note on stderr says there may be more. With --json the\n"
          "server's JSON body is printed unchanged. No matching trace exits 1; a query\n"
          "the server rejects (HTTP 400) prints the server's message on stderr, exits 4.\n"
          "\n",
          f);
    td_ctl_help_common(f);
    fputc('\n', f);
    td_ctl_help_exit_codes(f);
}

/* ------------------------------------------------------------------ command */

static int search_run(td_ctl_opts *o, int argc, char **argv)
{
    const char *query = NULL, *since = NULL, *start = NULL, *end = NULL, *limit = NULL,
               *spss = NULL;
    bool only_args = false;
    int i = 1, r;
    while (i < argc) {
        if (!only_args && argv[i][0] == '-' && argv[i][1] != '\0') {
            if (strcmp(argv[i], "--") == 0) {
                only_args = true;
                i++;
                continue;
            }
            if ((r = td_ctl_common_opt(o, "search", argc, argv, &i)) == 0 &&
                (r = td_ctl_opt("search", argc, argv, &i, "--since", &since)) == 0 &&
                (r = td_ctl_opt("search", argc, argv, &i, "--start", &start)) == 0 &&
                (r = td_ctl_opt("search", argc, argv, &i, "--end", &end)) == 0 &&
                (r = td_ctl_opt("search", argc, argv, &i, "--limit", &limit)) == 0 &&
                (r = td_ctl_opt("search", argc, argv, &i, "--spss", &spss)) == 0) {
                return td_ctl_usage_error("search", "unknown option '%s'", argv[i]);
            }
            if (r < 0) {
                return TD_CTL_EXIT_USAGE;
            }
            continue;
        }
        if (query) {
            return td_ctl_usage_error("search",
                                      "more than one query given ('%s', '%s'); quote the query",
                                      query, argv[i]);
        }
        query = argv[i++];
    }
    if (!query || !*query) {
        return td_ctl_usage_error("search", "missing TraceQL query, e.g. '{ status = error }'");
    }

    uint64_t v_limit = DEFAULT_LIMIT, v_spss = 0, v_start, v_end;
    if (limit && !td_ctl_parse_uint(limit, 1, MAX_LIMIT, &v_limit)) {
        return td_ctl_usage_error("search", "invalid --limit '%s': want a number from 1 to %d",
                                  limit, MAX_LIMIT);
    }
    if (spss && !td_ctl_parse_uint(spss, 1, MAX_SPSS, &v_spss)) {
        return td_ctl_usage_error("search", "invalid --spss '%s': want a number from 1 to %d", spss,
                                  MAX_SPSS);
    }
    static const td_ctl_window_spec window = {UINT32_MAX, DEFAULT_SINCE_S, 0};
    int rc = td_ctl_time_window("search", &window, since, start, end, &v_start, &v_end);
    if (rc != TD_CTL_EXIT_OK) {
        return rc;
    }

    td_buf path = TD_BUF_INIT;
    td_buf_addstr(&path, "/api/search?q=");
    td_ctl_add_query_escaped(&path, query);
    td_buf_addf(&path, "&limit=%" PRIu64 "&start=%" PRIu64 "&end=%" PRIu64, v_limit, v_start,
                v_end);
    if (v_spss) {
        td_buf_addf(&path, "&spss=%" PRIu64, v_spss);
    }

    td_ctl_http_resp resp;
    td_err err;
    td_err_init(&err);
    td_status st = td_ctl_http_get(o, path.data, "application/json", &resp, &err);
    td_buf_release(&path);
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
    if (!root) {
        json_error_t again;
        root = json_loadb(resp.body.data, resp.body.len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
                          &again);
    }
    if (!root) {
        fprintf(stderr, "tracectl: the server's answer is not valid JSON: %s (line %d)\n",
                jerr.text, jerr.line);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    const json_t *traces = member(root, "traces");
    if (!json_is_object(root) || (traces && !json_is_array(traces))) {
        fputs("tracectl: the server's answer is not a SearchResponse object\n", stderr);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    /* Tempo omits an empty "traces" array entirely. */
    size_t n = json_array_size(traces);
    if (o->json) {
        td_ctl_write_body(stdout, td_buf_slice(&resp.body));
    } else if (!print_table(stdout, traces)) {
        fputs("tracectl: out of memory\n", stderr);
        rc = TD_CTL_EXIT_SERVER;
        goto out;
    }
    if (n == 0) {
        rc = TD_CTL_EXIT_NOT_FOUND;
    } else if (n >= v_limit && !o->json) {
        fprintf(stderr, "tracectl: showing the first %zu traces; raise --limit for more\n", n);
    }

out:
    json_decref(root);
    td_ctl_http_resp_release(&resp);
    return rc;
}

const td_ctl_cmd td_ctl_cmd_search = {
    .name = "search",
    .summary = "search traces with a TraceQL query and list the matches",
    .run = search_run,
    .help = search_help,
};
