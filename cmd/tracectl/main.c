/*
 * main.c - tracectl entry point: global options and the command table.
 *
 * Layout follows git's git.c + builtin/: this file only finds the command and
 * parses what every command shares; each command parses its own arguments in
 * cmd_<name>.c. Global options may come before the command name or anywhere
 * after it, so `tracectl --json find ...` and `tracectl find ... --json` agree.
 */
#include "tracectl.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_SERVER "http://127.0.0.1:3200"
#define DEFAULT_TIMEOUT_MS 10000L

static const td_ctl_cmd *const commands[] = {
    &td_ctl_cmd_find,
    &td_ctl_cmd_search,
    &td_ctl_cmd_tags,
    &td_ctl_cmd_profiles,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const td_ctl_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i]->name, name) == 0) {
            return commands[i];
        }
    }
    return NULL;
}

int td_ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("tracectl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd) {
        fprintf(stderr, "\nTry 'tracectl %s --help'.\n", cmd);
    } else {
        fputs("\nTry 'tracectl --help'.\n", stderr);
    }
    return TD_CTL_EXIT_USAGE;
}

int td_ctl_opt(const char *cmd, int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) {
        return 0;
    }
    if (a[n] == '\0') {
        if (!val) {
            (*i)++;
            return 1;
        }
        if (*i + 1 >= argc) {
            td_ctl_usage_error(cmd, "option '%s' needs a value", name);
            return -1;
        }
        *val = argv[*i + 1];
        *i += 2;
        return 1;
    }
    if (a[n] != '=') {
        return 0; /* a longer option that merely shares the prefix */
    }
    if (!val) {
        td_ctl_usage_error(cmd, "option '%s' takes no value", name);
        return -1;
    }
    *val = a + n + 1;
    (*i)++;
    return 1;
}

/* Seconds, fractions allowed ("0.5"), within (0, 1 day]; stored as milliseconds. */
static bool parse_timeout(const char *s, long *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno || !(v > 0) || v > 86400) {
        return false;
    }
    long m = (long)(v * 1000.0 + 0.5);
    *ms = m > 0 ? m : 1;
    return true;
}

bool td_ctl_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > hi) {
            return false;
        }
    }
    *out = v;
    return v >= lo;
}

bool td_ctl_parse_since(const char *s, uint64_t *secs)
{
    uint64_t total = 0;
    if (!*s) {
        return false;
    }
    while (*s) {
        uint64_t v = 0;
        const char *p = s;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > UINT32_MAX) {
                return false;
            }
            p++;
        }
        uint64_t unit = *p == 's' ? 1 : *p == 'm' ? 60 : *p == 'h' ? 3600 : *p == 'd' ? 86400 : 0;
        if (p == s || !unit) {
            return false;
        }
        total += v * unit;
        if (total > UINT32_MAX) {
            return false;
        }
        s = p + 1;
    }
    *secs = total;
    return total > 0;
}

int td_ctl_time_window(const char *cmd, const td_ctl_window_spec *spec, const char *since,
                       const char *start, const char *end, uint64_t *out_start, uint64_t *out_end)
{
    uint64_t v_since = spec->default_since;
    if (since && (start || end)) {
        return td_ctl_usage_error(cmd, "use either --since or --start/--end, not both");
    }
    if (start || end) {
        if (!start || !end) {
            return td_ctl_usage_error(cmd, "--start and --end go together");
        }
        if (!td_ctl_parse_uint(start, 0, spec->max, out_start)) {
            return td_ctl_usage_error(cmd, "invalid --start '%s': want unix seconds", start);
        }
        if (!td_ctl_parse_uint(end, 0, spec->max, out_end)) {
            return td_ctl_usage_error(cmd, "invalid --end '%s': want unix seconds", end);
        }
        if (*out_end <= *out_start) {
            return td_ctl_usage_error(cmd, "--end must be after --start");
        }
        return TD_CTL_EXIT_OK;
    }
    if (since && !td_ctl_parse_since(since, &v_since)) {
        return td_ctl_usage_error(
            cmd, "invalid --since '%s': want a duration such as 30s, 15m, 1h or 2d", since);
    }
    if (!v_since) {
        /* nothing given and no default: the server picks the window */
        *out_start = *out_end = 0;
        return TD_CTL_EXIT_OK;
    }
    time_t now = time(NULL);
    uint64_t e = now > 0 ? (uint64_t)now : 0;
    if (e > spec->max) {
        e = spec->max;
    }
    *out_end = e;
    *out_start = e > v_since ? e - v_since : spec->min_start;
    return TD_CTL_EXIT_OK;
}

int td_ctl_common_opt(td_ctl_opts *o, const char *cmd, int argc, char **argv, int *i)
{
    const char *v = NULL;
    int r;
    if ((r = td_ctl_opt(cmd, argc, argv, i, "--server", &v)) != 0) {
        if (r > 0) {
            o->server = v;
        }
        return r;
    }
    if ((r = td_ctl_opt(cmd, argc, argv, i, "--org-id", &v)) != 0) {
        if (r > 0) {
            /* A header value must not smuggle in another header line. */
            if (strpbrk(v, "\r\n") || *v == '\0') {
                td_ctl_usage_error(cmd, "--org-id must be a non-empty single-line value");
                return -1;
            }
            o->org_id = v;
        }
        return r;
    }
    if ((r = td_ctl_opt(cmd, argc, argv, i, "--timeout", &v)) != 0) {
        if (r > 0 && !parse_timeout(v, &o->timeout_ms)) {
            td_ctl_usage_error(cmd, "--timeout wants a number of seconds in (0, 86400], got '%s'",
                               v);
            return -1;
        }
        return r;
    }
    if ((r = td_ctl_opt(cmd, argc, argv, i, "--json", NULL)) != 0) {
        if (r > 0) {
            o->json = true;
        }
        return r;
    }
    return 0;
}

void td_ctl_help_common(FILE *f)
{
    fputs("Global options (before or after the command):\n"
          "  --server URL       query API base URL (default: $TRACECTL_SERVER,\n"
          "                     else " DEFAULT_SERVER ")\n"
          "  --org-id TENANT    send X-Scope-OrgID: TENANT (multi-tenant servers)\n"
          "  --timeout SECONDS  give up on a request after this long (default 10)\n"
          "  --json             print the server's JSON unchanged, for scripts\n"
          "  -h, --help         show help; `tracectl COMMAND --help` for a command\n"
          "  --version          print the version\n",
          f);
}

void td_ctl_help_exit_codes(FILE *f)
{
    fputs("Exit codes:\n", f);
#define TD__CTL_EXIT_HELP(name, code, help) fprintf(f, "  %d  %s\n", code, help);
    TD_CTL_EXIT_MAP(TD__CTL_EXIT_HELP)
#undef TD__CTL_EXIT_HELP
}

static void main_help(FILE *f)
{
    fputs("Usage: tracectl [GLOBAL OPTIONS] COMMAND [OPTIONS]\n"
          "\n"
          "Command-line client for the traced query API (Tempo-compatible).\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    }
    fputc('\n', f);
    td_ctl_help_common(f);
    fputc('\n', f);
    td_ctl_help_exit_codes(f);
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int run(int argc, char **argv)
{
    td_ctl_opts o = {.server = NULL, .org_id = NULL, .timeout_ms = DEFAULT_TIMEOUT_MS};
    int i = 1;

    /* Global options before the command name. */
    while (i < argc && argv[i][0] == '-') {
        if (is_help(argv[i])) {
            main_help(stdout);
            return TD_CTL_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("tracectl %s\n", TD_VERSION);
            return TD_CTL_EXIT_OK;
        }
        int r = td_ctl_common_opt(&o, NULL, argc, argv, &i);
        if (r < 0) {
            return TD_CTL_EXIT_USAGE;
        }
        if (r == 0) {
            return td_ctl_usage_error(NULL, "unknown option '%s'", argv[i]);
        }
    }
    if (i >= argc) {
        main_help(stderr);
        return TD_CTL_EXIT_USAGE;
    }

    const char *name = argv[i];
    if (strcmp(name, "help") == 0) {
        /* `tracectl help [COMMAND]` */
        const td_ctl_cmd *c = i + 1 < argc ? find_command(argv[i + 1]) : NULL;
        if (i + 1 < argc && !c) {
            return td_ctl_usage_error(NULL, "unknown command '%s'", argv[i + 1]);
        }
        if (c) {
            c->help(stdout);
        } else {
            main_help(stdout);
        }
        return TD_CTL_EXIT_OK;
    }
    const td_ctl_cmd *cmd = find_command(name);
    if (!cmd) {
        return td_ctl_usage_error(NULL, "unknown command '%s'", name);
    }
    for (int j = i + 1; j < argc; j++) {
        if (strcmp(argv[j], "--") == 0) {
            break;
        }
        if (is_help(argv[j])) {
            cmd->help(stdout);
            return TD_CTL_EXIT_OK;
        }
    }

    /* The environment is read here only, after the flags that might override it. */
    const char *env = getenv("TRACECTL_SERVER");
    if (!o.server) {
        o.server = env && *env ? env : DEFAULT_SERVER;
    }
    return cmd->run(&o, argc - i, argv + i);
}

int main(int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("tracectl: cannot initialise libcurl\n", stderr);
        return TD_CTL_EXIT_SERVER;
    }
    int rc = run(argc, argv);
    curl_global_cleanup();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("tracectl: error writing to standard output\n", stderr);
        if (rc == TD_CTL_EXIT_OK) {
            rc = TD_CTL_EXIT_SERVER; /* never report success for output that was lost */
        }
    }
    return rc;
}
