/*
 * logfmt.h - a small logfmt parser for the legacy `tags` search parameter
 * (API-CONTRACT §3.5): `k=v k2="v with space" flag`.
 *
 * Pairs are separated by spaces (any byte <= ' '). A key is a run of bytes
 * > ' ' other than '=' and '"'. A key without '=' has an empty value. A value
 * is either unquoted (bytes > ' ' other than '=' and '"') or double-quoted with
 * Go escapes (\" \\ \/ \b \f \n \r \t \uXXXX). Pure: no I/O, all memory from
 * the arena; keys and values are NUL-terminated copies (a value may contain
 * NUL from \u0000, so use the lengths).
 */
#ifndef TD_API_LOGFMT_H
#define TD_API_LOGFMT_H

#include "core/arena.h"
#include "core/status.h"

#include <stddef.h>

typedef struct td_logfmt_pair {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
} td_logfmt_pair;

/*
 * Parse s[0..n). On success *out holds *nout pairs in input order (an empty or
 * all-space input gives 0 pairs). Errors: TD_INVALID with
 * "invalid tags: ..." (syntax, or "tag K has been set twice" for a duplicate
 * key), TD_NOMEM when the arena is exhausted.
 */
td_status td_logfmt_parse(const char *s, size_t n, td_arena *a, td_logfmt_pair **out, size_t *nout,
                          td_err *err);

#endif
