/*
 * config.h - configuration from one declarative table per module (STYLE rule 11).
 *
 * Each module describes its options as an array of td_opt rows pointing into its
 * own options struct. The same rows feed, in increasing precedence: built-in
 * defaults, the config file (`--config FILE` or TRACED_CONFIG; lines `name = value`,
 * `#` comments), environment variables (TRACED_<NAME> with '-' and '.' as '_',
 * upper case) and command-line flags (`--name value` or `--name=value`; a bare
 * `--name` sets a bool). td_config_help prints them all with defaults and
 * td_config_sample writes a fully commented config file.
 *
 * Value syntax: INT decimal; SIZE bytes with optional k/KiB/m/MiB/g/GiB (powers of
 * 1024) or kB/MB/GB (powers of 1000); BOOL true/false/1/0/yes/no/on/off;
 * DURATION a number with ms/s/m/h/d (plain number = seconds), stored as ms.
 *
 * Thread-safety: call from the main thread before other threads start; the
 * resulting structs are then read-only (the frozen config).
 */
#ifndef TD_CONFIG_H
#define TD_CONFIG_H

#include "status.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    TD_OPT_STRING,   /* char *, heap; freed by td_config_release */
    TD_OPT_INT,      /* int64_t */
    TD_OPT_SIZE,     /* uint64_t bytes */
    TD_OPT_BOOL,     /* bool */
    TD_OPT_DURATION, /* int64_t milliseconds */
} td_opt_type;

typedef struct td_opt {
    const char *name; /* "grpc-listen" */
    td_opt_type type;
    const char *def; /* default as text (NULL = empty string / 0) */
    size_t offset;   /* offsetof(module opts struct, field) */
    const char *help;
    int64_t min, max; /* inclusive bounds for INT/SIZE/DURATION; both 0 = unbounded */
} td_opt;

typedef struct td_opt_table {
    const char *module; /* heading in --help, e.g. "collector" */
    const td_opt *opts;
    size_t nopts;
    void *base; /* the module's options struct */
} td_opt_table;

/* Apply only the defaults (tests use this). */
td_status td_config_defaults(const td_opt_table *t, size_t nt, td_err *err);

/*
 * Defaults, then file, env and argv[1..] as described above. Parsing stops at the
 * first argument that does not start with "--" (or after "--"); its index is
 * stored in *argi. `--help` and `--version` are not handled here: the caller
 * checks for them first. envp may be NULL (then no environment is read).
 * Errors: TD_INVALID with a message naming the option and the source.
 */
td_status td_config_load(const td_opt_table *t, size_t nt, int argc, char **argv, char **envp,
                         int *argi, td_err *err);

/* Set one option by name from text (used by the loaders; handy in tests). */
td_status td_config_set(const td_opt_table *t, size_t nt, const char *name, const char *value,
                        const char *source, td_err *err);

/* Free the strings owned by the tables' structs. */
void td_config_release(const td_opt_table *t, size_t nt);

/* Print the option reference (flag, env, default, help) to f. */
void td_config_help(const td_opt_table *t, size_t nt, FILE *f);
/* Print a commented config file with every option at its default to f. */
void td_config_sample(const td_opt_table *t, size_t nt, FILE *f);

/* Value parsers, exposed for reuse and tests. Return false on bad syntax or overflow. */
int td_parse_size(const char *s, uint64_t *out);
int td_parse_duration_ms(const char *s, int64_t *out);
int td_parse_bool(const char *s, int *out);

#endif
