/*
 * tracectl.h - internal interface shared by the files of the tracectl command.
 *
 * main.c owns the command table and the global options; each subcommand lives
 * in cmd_<name>.c and exports one td_ctl_cmd; http.c wraps libcurl; output.c
 * holds the formatting helpers every command uses (durations, IDs, OTLP
 * AnyValues, escaping of untrusted text for the terminal).
 *
 * Nothing here is installed or used outside cmd/tracectl. Only cmd/ may exit
 * (STYLE rule 4): commands return an exit code and main() exits with it.
 *
 * Thread-safety: tracectl is single-threaded; none of this is thread-safe.
 */
#ifndef TD_TRACECTL_H
#define TD_TRACECTL_H

#include "core/buf.h"
#include "core/status.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Exit codes: one table feeds the enum and every --help text, so the
 * documentation cannot drift from the behaviour.
 */
#define TD_CTL_EXIT_MAP(X)                                                                         \
    X(OK, 0,                                                                                       \
      "success (find: the trace was found; search: at least one trace matched; tags: something "   \
      "listed)")                                                                                   \
    X(NOT_FOUND, 1,                                                                                \
      "not found (find: HTTP 404 or an empty trace; search: no trace matched; tags: nothing "      \
      "listed)")                                                                                   \
    X(USAGE, 2, "usage error: unknown option, bad argument or bad --server URL")                   \
    X(UNREACHABLE, 3, "server unreachable: connection refused, timeout, DNS or transfer failure")  \
    X(SERVER, 4, "server error: any other HTTP status (body on stderr) or an unusable response")

typedef enum {
#define TD__CTL_EXIT_ENUM(name, code, help) TD_CTL_EXIT_##name = code,
    TD_CTL_EXIT_MAP(TD__CTL_EXIT_ENUM)
#undef TD__CTL_EXIT_ENUM
} td_ctl_exit;

/* Options every command accepts, before or after the command name. */
typedef struct td_ctl_opts {
    const char *server; /* base URL without trailing '/'; points into argv, env or a literal */
    const char *org_id; /* X-Scope-OrgID value, NULL = none */
    long timeout_ms;    /* whole-request timeout, > 0 */
    bool json;          /* --json: raw server JSON instead of human output */
} td_ctl_opts;

typedef struct td_ctl_cmd {
    const char *name;
    const char *summary; /* one line for `tracectl --help` */
    /* argv[0] is the command name; returns a td_ctl_exit value. */
    int (*run)(td_ctl_opts *o, int argc, char **argv);
    void (*help)(FILE *f);
} td_ctl_cmd;

extern const td_ctl_cmd td_ctl_cmd_find;
extern const td_ctl_cmd td_ctl_cmd_search;
extern const td_ctl_cmd td_ctl_cmd_tags;
extern const td_ctl_cmd td_ctl_cmd_profiles;

/* ---- main.c: option parsing shared by the commands ---- */

/*
 * If argv[*i] is the option `name` ("--server"), store its value (from
 * "--server=URL" or the next argument) in *val, advance *i past it and return 1.
 * Return 0 when argv[*i] is another option; -1 (after printing a usage error
 * for `cmd`) when the value is missing. When val is NULL the option is a flag
 * and "--flag=x" is refused.
 */
int td_ctl_opt(const char *cmd, int argc, char **argv, int *i, const char *name, const char **val);

/* Try the global options (--server, --json, --org-id, --timeout) at argv[*i]; same returns. */
int td_ctl_common_opt(td_ctl_opts *o, const char *cmd, int argc, char **argv, int *i);

/* Print "tracectl: <msg>" and a pointer to --help to stderr; returns TD_CTL_EXIT_USAGE. */
int td_ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Decimal digits only (no sign, no spaces), value in [lo, hi]; *out is set when all are digits. */
bool td_ctl_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* "30s", "15m", "1h", "2d" or a sum such as "1h30m"; > 0 and below 2^32 seconds. */
bool td_ctl_parse_since(const char *s, uint64_t *secs);

/* How a command turns --since / --start / --end into a window of unix seconds. */
typedef struct td_ctl_window_spec {
    uint64_t max;           /* largest accepted --start/--end, and cap on "now" */
    uint64_t default_since; /* window when none of the three is given; 0: no window (0, 0) */
    uint64_t min_start;     /* start when --since reaches back before the epoch */
} td_ctl_window_spec;

/*
 * Validate the options (either --since or both --start and --end, end after
 * start) and set *out_start, *out_end. Returns TD_CTL_EXIT_OK, or TD_CTL_EXIT_USAGE
 * after printing a usage error for `cmd`. Any option may be NULL (not given).
 */
int td_ctl_time_window(const char *cmd, const td_ctl_window_spec *spec, const char *since,
                       const char *start, const char *end, uint64_t *out_start, uint64_t *out_end);

/* The help block describing the global options, and the exit-code table. */
void td_ctl_help_common(FILE *f);
void td_ctl_help_exit_codes(FILE *f);

/* ---- http.c ---- */

typedef struct td_ctl_http_resp {
    long status; /* HTTP status code */
    td_buf body; /* response body, owned; release with td_ctl_http_resp_release */
} td_ctl_http_resp;

/* Upper bound on a response body; larger answers fail with TD_TOO_LARGE. */
#define TD_CTL_MAX_BODY ((size_t)512 << 20)

/*
 * GET o->server + path (path starts with '/') with the given Accept header and,
 * when set, X-Scope-OrgID. Any HTTP response, whatever its status, is TD_OK and
 * fills *resp, which the caller then releases. Errors (resp is released):
 * TD_INVALID bad URL or unsupported scheme; TD_IO connection refused, DNS
 * failure, timeout or broken transfer; TD_TOO_LARGE body over TD_CTL_MAX_BODY;
 * TD_INTERNAL anything else libcurl reports. curl_global_init must have run.
 */
td_status td_ctl_http_get(const td_ctl_opts *o, const char *path, const char *accept,
                          td_ctl_http_resp *resp, td_err *err);
/*
 * POST body[0..len) (Content-Type ctype) to o->server + path; otherwise exactly
 * td_ctl_http_get (statuses, errors, ownership of *resp).
 */
td_status td_ctl_http_post(const td_ctl_opts *o, const char *path, const char *accept,
                           const char *ctype, const void *body, size_t len, td_ctl_http_resp *resp,
                           td_err *err);
void td_ctl_http_resp_release(td_ctl_http_resp *resp);

/* Exit code for a failed td_ctl_http_get, after printing err to stderr. */
int td_ctl_http_fail(const td_ctl_opts *o, const td_err *err);

/* Append s percent-encoded: everything but RFC 3986 unreserved characters. */
void td_ctl_add_query_escaped(td_buf *b, const char *s);

/* Print "tracectl: server returned HTTP <n>" and the body (bounded, escaped) to stderr. */
void td_ctl_print_http_error(const td_ctl_http_resp *resp);

/* ---- output.c ---- */

/* Largest number of bytes td_ctl_id_decode writes. */
#define TD_CTL_ID_MAX 32

/*
 * Decode an ID as found in Tempo JSON: standard or URL-safe base64 (padding
 * optional); a string of exactly 16 or 32 hex digits is read as hex instead
 * (OTLP JSON style). Returns false for anything else or more than cap bytes.
 */
bool td_ctl_id_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* True when s is 1..32 hex digits (a trace ID as typed on the command line). */
bool td_ctl_trace_id_valid(const char *s);

/* Human duration, 3 significant figures: 850ns, 1.25µs, 100ms, 2.5s (>= 1000s: whole seconds). */
void td_ctl_fmt_duration(td_buf *b, uint64_t ns);

/* Flags for td_ctl_put_text. */
#define TD_CTL_TEXT_QUOTE 1u   /* wrap in double quotes, escaping '"' and '\' */
#define TD_CTL_TEXT_KEEP_NL 2u /* pass '\n' and '\t' through (multi-line error bodies) */

/*
 * Append untrusted text for a terminal: control characters (C0, DEL, C1) are
 * escaped as \n, \t, \xNN or \u00NN, so a span name cannot move the cursor.
 * At most about max bytes of text are written, cut on a UTF-8 boundary and
 * marked "…". Invalid UTF-8 bytes are escaped as \xNN.
 */
void td_ctl_put_text(td_buf *b, const char *s, size_t len, size_t max, unsigned flags);

/* True when a value must be quoted to read unambiguously in "key=value" lists. */
bool td_ctl_needs_quote(const char *s, size_t len);

/*
 * Append an OTLP AnyValue in Tempo JSON form ({"stringValue":..}, {"intValue":
 * "5"}, arrayValue as [a, b], kvlistValue as {k=v}, bytesValue as its base64
 * text). NULL or an empty object prints as "<empty>"; unknown shapes print as
 * "?". Output is bounded by about max bytes and nesting by a fixed depth.
 */
void td_ctl_put_anyvalue(td_buf *b, const json_t *v, size_t max);

/* A uint64 carried as a decimal string or a JSON number (Tempo JSON style). */
bool td_ctl_json_u64(const json_t *v, uint64_t *out);

/* Member `key` of obj when it exists and is a string, else NULL; *len gets its length. */
const char *td_ctl_json_str(const json_t *obj, const char *key, size_t *len);

/* Write body to f, adding a final newline when it lacks one. Returns false on a write error. */
bool td_ctl_write_body(FILE *f, td_slice body);

#endif
