/*
 * selector_fuzz.c - libFuzzer entry for the profile label selector parser
 * (store/pselector.c, STYLE rule 12). With gcc it links replay_main.c and
 * replays tests/fuzz/corpus/selector/ under ctest.
 *
 * Each input is parsed with a bounded arena. When it parses, every matcher
 * must be well formed (non-empty name, a value, a compiled regex exactly for
 * =~ and !~), and matching it against a few fixed label sets must work. About
 * one input in eight runs with an allocation failure injected (derived from
 * the input's hash, so a replay fails the same allocation): then only
 * TD_NOMEM may come back, and nothing may leak.
 */
#include "core/arena.h"
#include "core/mem.h"
#include "store/pstore.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const td_plabel set1[] = {
    {"__name__", "process_cpu"},
    {"__profile_type__", "process_cpu:cpu:nanoseconds:cpu:nanoseconds"},
    {"a", "x"},
    {"otel.scope.name", "lib"},
    {"service_name", "sh\xc3\xa9p"},
};
static const td_plabel set2[] = {{"b", ""}, {"c", "line1\nline2"}};

/* FNV-1a over the input: picks which inputs get an injected allocation failure. */
static uint64_t input_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = input_hash(data, size);
    bool inject = (h & 7) == 0;
    td_arena a;
    td_arena_init(&a, 4096, 4u * 1024 * 1024);
    td_err err;
    td_err_init(&err);
    if (inject) {
        td_mem_fail_after((long)(1 + (h >> 3) % 16));
    }
    td_pselector sel;
    td_status st = td_pselector_parse((const char *)data, size, &a, &sel, &err);
    bool injected = td_mem_fail_after(0);
    TD_ASSERT(st == TD_OK || st == TD_INVALID || st == TD_NOMEM);
    /* without an injected failure only a huge input may exhaust the arena */
    TD_ASSERT(st != TD_NOMEM || injected || size > 65536);
    TD_ASSERT(st == TD_OK || (err.code == st && err.msg[0]));
    if (st == TD_OK) {
        for (size_t i = 0; i < sel.n; i++) {
            const td_pmatcher *m = &sel.m[i];
            TD_ASSERT(m->name && m->name[0] && m->value);
            TD_ASSERT((m->re != NULL) == (m->op == TD_PM_RE || m->op == TD_PM_NRE));
        }
        (void)td_pselector_match(&sel, set1, sizeof(set1) / sizeof(set1[0]));
        (void)td_pselector_match(&sel, set2, sizeof(set2) / sizeof(set2[0]));
        (void)td_pselector_match(&sel, NULL, 0);
        td_pselector_release(&sel);
    } else {
        TD_ASSERT(sel.n == 0 && sel.m == NULL && sel.profile_type == NULL);
    }
    td_arena_release(&a);
    return 0;
}
