/*
 * logfmt_fuzz.c - libFuzzer entry for the logfmt parser (api/logfmt.h) and the
 * legacy search `tags` translation (STYLE rule 12). With gcc it links
 * replay_main.c and replays tests/fuzz/corpus/logfmt/ under ctest.
 *
 * Properties checked for every input:
 *   - td_logfmt_parse returns TD_OK or TD_INVALID ("invalid tags: ..."), never
 *     anything else with a roomy arena;
 *   - on success every key is non-empty, made only of bytes > ' ' other than
 *     '=' and '"', NUL-terminated, and no key repeats;
 *   - as a NUL-free `tags` parameter, td__search_parse either fails with
 *     "invalid tags: ..." or yields a query that the TraceQL parser accepts.
 */
#include "api/logfmt.h"
#include "api/tempo.h"
#include "api/traceql/traceql.h"
#include "core/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_arena a;
    td_arena_init(&a, 4096, 64u * 1024 * 1024);
    td_err err;
    td_err_init(&err);
    td_logfmt_pair *p = NULL;
    size_t n = 0;
    td_status st = td_logfmt_parse((const char *)data, size, &a, &p, &n, &err);
    TD_ASSERT(st == TD_OK || st == TD_INVALID);
    if (st == TD_INVALID) {
        TD_ASSERT(strncmp(err.msg, "invalid tags: ", 14) == 0);
    }
    for (size_t i = 0; st == TD_OK && i < n; i++) {
        TD_ASSERT(p[i].key_len > 0 && p[i].key[p[i].key_len] == '\0');
        TD_ASSERT(p[i].val[p[i].val_len] == '\0');
        for (size_t k = 0; k < p[i].key_len; k++) {
            unsigned char c = (unsigned char)p[i].key[k];
            TD_ASSERT(c > ' ' && c != '=' && c != '"');
        }
        for (size_t j = 0; j < i; j++) {
            TD_ASSERT(p[j].key_len != p[i].key_len || memcmp(p[j].key, p[i].key, p[i].key_len));
        }
    }
    td_arena_release(&a);

    /* the translation through the search parameters */
    if (size > 0 && size < 4096 && !memchr(data, 0, size)) {
        char *tags = malloc(size + 1);
        TD_ASSERT(tags != NULL);
        memcpy(tags, data, size);
        tags[size] = '\0';
        td__search_params sp;
        td_err_init(&err);
        td__search_args in = {.tags = tags};
        st = td__search_parse(&in, 1700000000, &sp, &err);
        if (st == TD_OK) {
            td_arena_init(&a, 4096, 64u * 1024 * 1024);
            td_traceql_query *q = NULL;
            td_status qs = td_traceql_parse(sp.q, strlen(sp.q), &a, &q, &err);
            if (qs != TD_OK) {
                fprintf(stderr, "tags %s -> query does not parse: %s\n  %s\n", tags, sp.q, err.msg);
                abort();
            }
            td_arena_release(&a);
        } else {
            TD_ASSERT(st == TD_INVALID);
        }
        free(tags);
    }
    return 0;
}
