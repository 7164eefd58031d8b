/*
 * traced - OTLP trace ingest and Tempo-compatible query daemon.
 *
 * Thin on purpose (STYLE rule 16): load the option tables, block signals, open
 * the store, start the query API and the collector, wait for SIGINT/SIGTERM,
 * then stop everything in the reverse order, draining accepted spans first.
 *
 * Exit codes: 0 clean stop (or --help/--version/--print-config), 1 runtime
 * failure (store cannot open, port in use, ...), 2 usage or configuration error.
 */
#include "api/api.h"
#include "collector/collector.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/pstore.h"
#include "store/retention.h"
#include "store/store.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#ifndef TD_VERSION
#define TD_VERSION "0.0.0"
#endif

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

extern char **environ;

/* The daemon's own options. */
typedef struct traced_opts {
    char *log_level;
    char *log_format;
} traced_opts;

static const td_opt traced_opt_rows[] = {
    {"log-level", TD_OPT_STRING, "info", offsetof(traced_opts, log_level),
     "Least severe log level written to stderr: debug, info, warn, error or off.", 0, 0},
    {"log-format", TD_OPT_STRING, "json", offsetof(traced_opts, log_format),
     "Log line format: json (one JSON object per line) or logfmt.", 0, 0},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: traced [--config FILE] [--<option> VALUE]...\n"
               "       traced --help | --version | --print-config\n"
               "\n"
               "Receives OpenTelemetry traces (OTLP/gRPC and OTLP/HTTP), stores them and serves\n"
               "the Tempo query API. Every option can also be set in the config file\n"
               "(`name = value`) or as the environment variable TRACED_<NAME>; flags win over\n"
               "the environment, which wins over the file.\n"
               "\n"
               "  --config FILE     read options from FILE (also TRACED_CONFIG)\n"
               "  --help            show this help\n"
               "  --version         print the version\n"
               "  --print-config    print a commented config file with every default\n");
}

/* Is flag among the leading "--" arguments (before "--" or the first positional)? */
static bool has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], flag) == 0) {
            return true;
        }
    }
    return false;
}

/* "host:port" for the log line: the configured host with the port actually bound. */
static void bound_addr(char *out, size_t cap, const char *listen, int port)
{
    if (!listen || !listen[0] || port <= 0) {
        snprintf(out, cap, "disabled");
        return;
    }
    const char *colon = strrchr(listen, ':');
    int hl = colon ? (int)(colon - listen) : 0;
    snprintf(out, cap, "%.*s:%d", hl, listen, port);
}

int main(int argc, char **argv)
{
    traced_opts topts = {0};
    td_store_opts sopts = {0};
    td_collector_opts copts = {0};
    td_api_opts aopts = {0};
    const td_opt_table tables[] = {
        {"traced", traced_opt_rows, sizeof(traced_opt_rows) / sizeof(traced_opt_rows[0]), &topts},
        {"store", td_store_opt_rows, td_store_nopt_rows, &sopts},
        {"collector", td_collector_opt_rows, td_collector_nopt_rows, &copts},
        {"api", td_api_opt_rows, td_api_nopt_rows, &aopts},
        {"profiler", td_profiler_opt_rows, td_profiler_nopt_rows, &aopts.profiler},
    };
    const size_t ntables = sizeof(tables) / sizeof(tables[0]);

    if (has_flag(argc, argv, "--help") || has_flag(argc, argv, "-h")) {
        usage(stdout);
        td_config_help(tables, ntables, stdout);
        return 0;
    }
    if (has_flag(argc, argv, "--version")) {
        printf("traced %s\n", TD_VERSION);
        return 0;
    }
    if (has_flag(argc, argv, "--print-config")) {
        td_config_sample(tables, ntables, stdout);
        return 0;
    }

    td_err err;
    td_err_init(&err);
    int argi = argc;
    if (td_config_load(tables, ntables, argc, argv, environ, &argi, &err) != TD_OK) {
        fprintf(stderr, "traced: %s\n", err.msg);
        td_config_release(tables, ntables);
        return EXIT_USAGE;
    }
    if (argi < argc) {
        fprintf(stderr, "traced: unexpected argument '%s' (see --help)\n", argv[argi]);
        td_config_release(tables, ntables);
        return EXIT_USAGE;
    }
    td_log_level lvl;
    if (!td_log_parse_level(topts.log_level, &lvl)) {
        fprintf(stderr, "traced: log-level: expected debug, info, warn, error or off, got '%s'\n",
                topts.log_level);
        td_config_release(tables, ntables);
        return EXIT_USAGE;
    }
    if (strcmp(topts.log_format, "json") != 0 && strcmp(topts.log_format, "logfmt") != 0) {
        fprintf(stderr, "traced: log-format: expected json or logfmt, got '%s'\n",
                topts.log_format);
        td_config_release(tables, ntables);
        return EXIT_USAGE;
    }
    td_log_set_level(lvl);
    td_log_set_logfmt(strcmp(topts.log_format, "logfmt") == 0);

    /*
     * Block the stop signals before any thread exists (gRPC core starts its own),
     * so every thread inherits the mask and only sigwait below receives them.
     */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    /*
     * Batches of a few hundred KiB are allocated on network threads and freed on
     * the writer. A fixed mmap threshold (glibc otherwise raises it dynamically up
     * to 32 MiB) returns them to the OS at once instead of leaving them parked in
     * per-thread malloc arenas: measured in bench/, this cut peak RSS at saturation
     * by about a quarter. Request bodies and decode arenas do not pay for this:
     * their chunks are reused per thread, within a bound (core/arena.h).
     */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);

    td_metric_set(td_metric_series(TD_M_BUILD_INFO, TD_VERSION, NULL, NULL), 1);
    /* one multitenancy switch for the whole daemon; the api table owns the option */
    copts.multitenancy = aopts.multitenancy;

    int rc = EXIT_RUNTIME;
    td_store *store = NULL;
    td_pstore *pstore = NULL;
    td_api *api = NULL;
    td_collector *col = NULL;
    td_retention *ret = NULL;
    if (td_store_open(&sopts, &store, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "traced", "cannot open the store in %s: %s", sopts.dir, err.msg);
        goto out;
    }
    if (td_pstore_open(&sopts, &pstore, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "traced", "cannot open the profile store in %s: %s", sopts.dir,
               err.msg);
        goto out;
    }
    if (td_api_new(&aopts, store, &api, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "traced", "cannot start the query API: %s", err.msg);
        goto out;
    }
    td_api_set_pstore(api, pstore);
    if (td_api_start(api, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "traced", "cannot start the query API: %s", err.msg);
        goto out;
    }
    if (td_collector_new(&copts, td_sink_store(store), &col, &err) != TD_OK ||
        td_collector_start(col, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "traced", "cannot start the collector: %s", err.msg);
        goto out;
    }
    /* after the collector: a failed start must not leave a thread deleting data */
    if (td_retention_start(&sopts, store, pstore, &ret, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "traced", "cannot start retention: %s", err.msg);
        goto out;
    }
    td_api_set_ready(api, true);

    char grpc[300], http[300], query[300], pyro[300];
    bound_addr(grpc, sizeof(grpc), copts.grpc_listen, td_collector_grpc_port(col));
    bound_addr(http, sizeof(http), copts.http_listen, td_collector_http_port(col));
    bound_addr(query, sizeof(query), aopts.listen, td_api_port(api));
    bound_addr(pyro, sizeof(pyro), aopts.pyroscope_listen, td_api_pyroscope_port(api));
    td_log(TD_LOG_INFO, "traced",
           "traced started version=%s grpc=%s http=%s query=%s pyroscope=%s data=%s", TD_VERSION,
           grpc, http, query, pyro, sopts.dir);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    td_log(TD_LOG_INFO, "traced", "received %s, shutting down",
           sig == SIGINT ? "SIGINT" : "SIGTERM");
    td_api_set_ready(api, false);
    /* stops both listeners and drains every accepted span into the store */
    td_collector_stop(col);
    rc = 0;

out:
    /* first: its pass in progress ends after one write batch */
    td_retention_stop(ret);
    td_collector_stop(col);
    if (api) {
        td_api_stop(api);
    }
    td_collector_free(col);
    td_api_free(api);
    if (pstore) {
        td_pstore_close(pstore);
    }
    td_store_close(store);
    if (rc == 0) {
        td_log(TD_LOG_INFO, "traced", "traced stopped");
    }
    td_config_release(tables, ntables);
    return rc;
}
