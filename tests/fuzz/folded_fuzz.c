/*
 * folded_fuzz.c - libFuzzer entry for the text parsers of /ingest (STYLE rule
 * 12): folded/collapsed stacks, the `name` parameter, from/until, multipart
 * bodies and sample_type_config JSON. With gcc it links replay_main.c and replays
 * tests/fuzz/corpus/folded/ under ctest.
 *
 * The whole input is ingested as folded text under a cpu and a memory app name
 * (checking the written stacks and series), parsed as a multipart body, and
 * its first line is used as a `name`, a time and a sample_type_config.
 */
#include "core/mem.h"
#include "profiler/profiler.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static td_status check_write(void *ud, const td_pwrite *w, td_err *err)
{
    (void)ud;
    (void)err;
    TD_ASSERT(w->nseries == 1);
    for (size_t i = 0; i < w->nstacks; i++) {
        for (uint32_t k = 0; k < w->stacks[i].nframes; k++) {
            TD_ASSERT(w->stacks[i].frames[k] < w->nlocs);
            TD_ASSERT(w->locs[w->stacks[i].frames[k]].function[0] != '\0');
        }
    }
    for (size_t i = 0; i < w->series[0].nsamples; i++) {
        TD_ASSERT(w->series[0].samples[i].stack < w->nstacks);
    }
    return TD_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_profiler_opts o = {.max_size = 8u << 20, .max_samples = 10000};
    td_arena a;
    td_arena_init(&a, 16 * 1024, 256u << 20);
    td_err err;
    td_pingest_result res;
    const char *names[] = {"app.cpu{a=b}", "app.alloc_space", "app.wall"};
    for (size_t i = 0; i < 3; i++) {
        td_pingest_req r = {.tenant = "t",
                            .name = names[i],
                            .sample_rate = i == 2 ? "0" : "97",
                            .body = data,
                            .len = size,
                            .now_ns = 1764000000000000000LL};
        td_status st = td_profiler_ingest(&o, &r, &a, check_write, NULL, &res, &err);
        TD_ASSERT(st == TD_OK || st == TD_INVALID || st == TD_TOO_LARGE || st == TD_NOMEM);
    }
    td_mpart *parts;
    size_t np;
    td_status st =
        td_profiler_multipart("multipart/form-data; boundary=b", data, size, &a, &parts, &np, &err);
    TD_ASSERT(st == TD_OK || st == TD_INVALID);
    for (size_t i = 0; st == TD_OK && i < np; i++) {
        TD_ASSERT(parts[i].data.ptr >= (const char *)data &&
                  parts[i].data.ptr + parts[i].data.len <= (const char *)data + size);
    }

    /* the first line as a name, a time and a sample_type_config */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ln = nl ? (size_t)(nl - data) : size;
    char *line = td_arena_strndup(&a, (const char *)data, ln);
    if (line && strlen(line) == ln) {
        char *app;
        td_plabel *l;
        size_t n;
        st = td_profiler_parse_name(line, &a, &app, &l, &n, &err);
        TD_ASSERT(st == TD_OK || st == TD_INVALID || st == TD_NOMEM);
        (void)td_profiler_parse_time(line, 1764000000000000000LL);
        td_pstc_set stc;
        st = td_profiler_parse_stc(line, ln, &a, &stc, &err);
        TD_ASSERT(st == TD_OK || st == TD_INVALID || st == TD_NOMEM);
    }
    td_arena_release(&a);
    return 0;
}
