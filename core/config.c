#include "config.h"

#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *type_names[] = {"string", "int", "size", "bool", "duration"};

int td_parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

/* Parse a non-negative decimal number with an optional fraction; rest in *end. */
static int parse_number(const char *s, double *whole, const char **end)
{
    if (!isdigit((unsigned char)*s)) {
        return 0;
    }
    char *e;
    errno = 0;
    double d = strtod(s, &e);
    if (errno || e == s) {
        return 0;
    }
    *whole = d;
    *end = e;
    return 1;
}

int td_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {
        {"", 1},          {"b", 1},          {"k", 1024.0},   {"kib", 1024.0},
        {"kb", 1000.0},   {"m", 1048576.0},  {"mib", 1048576.0}, {"mb", 1e6},
        {"g", 1073741824.0}, {"gib", 1073741824.0}, {"gb", 1e9},
    };
    double d;
    const char *rest;
    /* exact integers keep full precision */
    char *e;
    errno = 0;
    unsigned long long ull = strtoull(s, &e, 10);
    if (!errno && e != s && *e == '\0' && isdigit((unsigned char)*s)) {
        *out = ull;
        return 1;
    }
    if (!parse_number(s, &d, &rest)) {
        return 0;
    }
    while (*rest == ' ') {
        rest++;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(rest, units[i].suffix) == 0) {
            double v = d * units[i].mult;
            if (v >= 18446744073709551615.0) {
                return 0;
            }
            *out = (uint64_t)v;
            return 1;
        }
    }
    return 0;
}

int td_parse_duration_ms(const char *s, int64_t *out)
{
    double d;
    const char *rest;
    if (!parse_number(s, &d, &rest)) {
        return 0;
    }
    double mult;
    if (*rest == '\0' || strcmp(rest, "s") == 0) {
        mult = 1000;
    } else if (strcmp(rest, "ms") == 0) {
        mult = 1;
    } else if (strcmp(rest, "m") == 0) {
        mult = 60e3;
    } else if (strcmp(rest, "h") == 0) {
        mult = 3600e3;
    } else if (strcmp(rest, "d") == 0) {
        mult = 86400e3;
    } else {
        return 0;
    }
    double v = d * mult;
    if (v > 9.2e18) {
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

static const td_opt *find(const td_opt_table *t, size_t nt, const char *name, size_t nlen,
                          void **base)
{
    for (size_t i = 0; i < nt; i++) {
        for (size_t j = 0; j < t[i].nopts; j++) {
            const td_opt *o = &t[i].opts[j];
            if (strlen(o->name) == nlen && strncmp(o->name, name, nlen) == 0) {
                *base = t[i].base;
                return o;
            }
        }
    }
    return NULL;
}

static td_status apply_opt(const td_opt *o, void *base, const char *value, const char *source,
                           td_err *err)
{
    char *field = (char *)base + o->offset;
    const char *v = value ? value : "";
    int64_t num = 0;
    bool bounded = o->min || o->max;
    switch (o->type) {
    case TD_OPT_STRING: {
        char **p = (char **)field;
        td_free(*p);
        *p = td_xstrdup(v);
        return TD_OK;
    }
    case TD_OPT_BOOL: {
        int b;
        if (!td_parse_bool(v, &b)) {
            return td_err_set(err, TD_INVALID, "%s: %s: expected true or false, got '%s'", source,
                              o->name, v);
        }
        *(bool *)field = b;
        return TD_OK;
    }
    case TD_OPT_INT: {
        char *e;
        errno = 0;
        long long ll = strtoll(v, &e, 10);
        if (errno || e == v || *e) {
            return td_err_set(err, TD_INVALID, "%s: %s: expected an integer, got '%s'", source,
                              o->name, v);
        }
        num = ll;
        break;
    }
    case TD_OPT_SIZE: {
        uint64_t u;
        if (!td_parse_size(v, &u) || u > INT64_MAX) {
            return td_err_set(err, TD_INVALID,
                              "%s: %s: expected a size such as 4096, 64MiB or 1GB, got '%s'",
                              source, o->name, v);
        }
        num = (int64_t)u;
        break;
    }
    case TD_OPT_DURATION:
        if (!td_parse_duration_ms(v, &num)) {
            return td_err_set(err, TD_INVALID,
                              "%s: %s: expected a duration such as 500ms, 10s or 24h, got '%s'",
                              source, o->name, v);
        }
        break;
    }
    if (bounded && (num < o->min || num > o->max)) {
        return td_err_set(err, TD_INVALID, "%s: %s: %s is out of range [%" PRId64 ", %" PRId64 "]",
                          source, o->name, v, o->min, o->max);
    }
    if (o->type == TD_OPT_SIZE) {
        *(uint64_t *)field = (uint64_t)num;
    } else {
        *(int64_t *)field = num;
    }
    return TD_OK;
}

td_status td_config_set(const td_opt_table *t, size_t nt, const char *name, const char *value,
                        const char *source, td_err *err)
{
    void *base;
    const td_opt *o = find(t, nt, name, strlen(name), &base);
    if (!o) {
        return td_err_set(err, TD_INVALID, "%s: unknown option '%s'", source, name);
    }
    return apply_opt(o, base, value, source, err);
}

td_status td_config_defaults(const td_opt_table *t, size_t nt, td_err *err)
{
    for (size_t i = 0; i < nt; i++) {
        for (size_t j = 0; j < t[i].nopts; j++) {
            const td_opt *o = &t[i].opts[j];
            const char *def = o->def ? o->def : (o->type == TD_OPT_STRING ? "" : "0");
            if (o->type == TD_OPT_BOOL && !o->def) {
                def = "false";
            }
            td_status st = apply_opt(o, t[i].base, def, "default", err);
            if (st) {
                return st;
            }
        }
    }
    return TD_OK;
}

static void env_name(const char *name, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "TRACED_");
    for (const char *p = name; *p && n + 1 < cap; p++) {
        out[n++] = (*p == '-' || *p == '.') ? '_' : (char)toupper((unsigned char)*p);
    }
    out[n] = '\0';
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) {
        *--e = '\0';
    }
    return s;
}

static td_status load_file(const td_opt_table *t, size_t nt, const char *path, td_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return td_err_set(err, TD_INVALID, "config file %s: %s", path, strerror(errno));
    }
    char line[4096];
    int lineno = 0;
    td_status st = TD_OK;
    while (!st && fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') {
            continue;
        }
        char *eq = strchr(s, '=');
        char src[300];
        snprintf(src, sizeof(src), "%s:%d", path, lineno);
        if (!eq) {
            st = td_err_set(err, TD_INVALID, "%s: expected 'name = value'", src);
            break;
        }
        *eq = '\0';
        char *name = trim(s);
        char *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = '\0';
            value++;
        }
        st = td_config_set(t, nt, name, value, src, err);
    }
    fclose(f);
    return st;
}

/*
 * Walk the command-line options exactly once per pass, with one set of rules for
 * which argument is an option value. The first pass (apply == false) only finds
 * the --config file, which must be loaded before env and flags are applied; it
 * skips every option value the same way the second pass consumes it, so
 * `--data-dir x --config f` finds f, and reports nothing (the second pass does).
 */
static td_status scan_flags(const td_opt_table *t, size_t nt, int argc, char **argv, bool apply,
                            const char **config_file, int *argi, td_err *err)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(a, "--", 2) != 0) {
            break;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            if (!eq && i + 1 >= argc) {
                return apply ? td_err_set(err, TD_INVALID, "option '--config' needs a value")
                             : TD_OK;
            }
            *config_file = eq ? eq + 1 : argv[++i];
            continue;
        }
        void *base;
        const td_opt *o = find(t, nt, name, nlen, &base);
        if (!o) {
            return apply ? td_err_set(err, TD_INVALID, "unknown option '--%.*s' (see --help)",
                                      (int)nlen, name)
                         : TD_OK;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (o->type == TD_OPT_BOOL &&
                   (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
            value = "true";
        } else if (o->type == TD_OPT_BOOL) {
            int dummy;
            value = td_parse_bool(argv[i + 1], &dummy) ? argv[++i] : "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return apply ? td_err_set(err, TD_INVALID, "option '--%s' needs a value", o->name)
                         : TD_OK;
        }
        if (apply) {
            td_status st = apply_opt(o, base, value, "command line", err);
            if (st) {
                return st;
            }
        }
    }
    if (argi) {
        *argi = i;
    }
    return TD_OK;
}

td_status td_config_load(const td_opt_table *t, size_t nt, int argc, char **argv, char **envp,
                         int *argi, td_err *err)
{
    td_status st = td_config_defaults(t, nt, err);
    if (st) {
        return st;
    }
    /* config file: flag wins over env */
    const char *file = NULL;
    scan_flags(t, nt, argc, argv, false, &file, NULL, err);
    if (!file && envp) {
        for (char **e = envp; *e; e++) {
            if (strncmp(*e, "TRACED_CONFIG=", 14) == 0 && (*e)[14]) {
                file = *e + 14;
            }
        }
    }
    if (file && (st = load_file(t, nt, file, err))) {
        return st;
    }
    if (envp) {
        for (size_t i = 0; i < nt; i++) {
            for (size_t j = 0; j < t[i].nopts; j++) {
                char ename[128];
                env_name(t[i].opts[j].name, ename, sizeof(ename));
                size_t el = strlen(ename);
                for (char **e = envp; *e; e++) {
                    if (strncmp(*e, ename, el) == 0 && (*e)[el] == '=') {
                        st = apply_opt(&t[i].opts[j], t[i].base, *e + el + 1, ename, err);
                        if (st) {
                            return st;
                        }
                    }
                }
            }
        }
    }
    const char *ignored = NULL;
    return scan_flags(t, nt, argc, argv, true, &ignored, argi, err);
}

void td_config_release(const td_opt_table *t, size_t nt)
{
    for (size_t i = 0; i < nt; i++) {
        for (size_t j = 0; j < t[i].nopts; j++) {
            if (t[i].opts[j].type == TD_OPT_STRING) {
                char **p = (char **)((char *)t[i].base + t[i].opts[j].offset);
                td_free(*p);
                *p = NULL;
            }
        }
    }
}

void td_config_help(const td_opt_table *t, size_t nt, FILE *f)
{
    for (size_t i = 0; i < nt; i++) {
        fprintf(f, "\n%s options:\n", t[i].module);
        for (size_t j = 0; j < t[i].nopts; j++) {
            const td_opt *o = &t[i].opts[j];
            char ename[128];
            env_name(o->name, ename, sizeof(ename));
            fprintf(f, "  --%s <%s>  (env %s, default \"%s\")\n      %s\n", o->name,
                    type_names[o->type], ename, o->def ? o->def : "", o->help);
        }
    }
}

void td_config_sample(const td_opt_table *t, size_t nt, FILE *f)
{
    fprintf(f, "# traced configuration file: `name = value` per line; every option is shown\n"
               "# at its default. Environment variables TRACED_<NAME> and --flags override it.\n");
    for (size_t i = 0; i < nt; i++) {
        fprintf(f, "\n# --- %s ---\n", t[i].module);
        for (size_t j = 0; j < t[i].nopts; j++) {
            const td_opt *o = &t[i].opts[j];
            fprintf(f, "\n# %s (%s)\n# %s = %s\n", o->help, type_names[o->type], o->name,
                    o->def ? o->def : "");
        }
    }
}
