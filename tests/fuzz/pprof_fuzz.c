/*
 * pprof_fuzz.c - libFuzzer entry for the pprof decoder and its normalisation into
 * a td_pwrite (STYLE rule 12). With gcc it links replay_main.c and replays
 * tests/fuzz/corpus/pprof/ under ctest.
 *
 * Each input goes through td_profiler_pprof_decode with small limits (so the
 * limit paths run too). When it decodes, the target checks the properties the
 * store relies on: every stack frame indexes a location, every sample a stack,
 * every series has sorted unique labels including __profile_type__. The same
 * bytes are then sent through the whole /ingest path as format=pprof and, when
 * they unpack as a push.v1 PushRequest, through the push path; both must fail
 * cleanly or succeed.
 * About one input in eight runs with an allocation failure injected.
 */
#include "core/mem.h"
#include "profiler/profiler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static td_status check_write(void *ud, const td_pwrite *w, td_err *err)
{
    (void)ud;
    (void)err;
    for (size_t i = 0; i < w->nstacks; i++) {
        for (uint32_t k = 0; k < w->stacks[i].nframes; k++) {
            TD_ASSERT(w->stacks[i].frames[k] < w->nlocs);
        }
    }
    TD_ASSERT(w->nseries > 0);
    for (size_t s = 0; s < w->nseries; s++) {
        const td_pseries_in *se = &w->series[s];
        bool has_pt = false;
        for (size_t i = 0; i < se->nlabels; i++) {
            TD_ASSERT(se->labels[i].value[0] != '\0');
            if (i) {
                TD_ASSERT(strcmp(se->labels[i - 1].name, se->labels[i].name) < 0);
            }
            has_pt = has_pt || strcmp(se->labels[i].name, "__profile_type__") == 0;
        }
        TD_ASSERT(has_pt);
        TD_ASSERT(se->nsamples > 0);
        for (size_t i = 0; i < se->nsamples; i++) {
            TD_ASSERT(se->samples[i].stack < w->nstacks);
            TD_ASSERT(se->samples[i].value != 0);
        }
    }
    return TD_OK;
}

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
    td_profiler_opts o = {.max_size = 8u << 20,
                          .max_samples = 10000,
                          .max_locations = 10000,
                          .max_functions = 10000,
                          .max_strings = 20000};
    uint64_t h = input_hash(data, size);
    if ((h & 7) == 0) {
        td_mem_fail_after((long)(1 + (h >> 3) % 64));
    }
    td_arena a;
    td_arena_init(&a, 16 * 1024, 256u << 20);
    td_err err;
    td_err_init(&err);
    td_pingest_result res;
    td_pingest_req r = {.tenant = "t",
                        .name = "app{env=fuzz}",
                        .format = "pprof",
                        .body = data,
                        .len = size,
                        .now_ns = 1764000000000000000LL};
    td_status st = td_profiler_ingest(&o, &r, &a, check_write, NULL, &res, &err);
    TD_ASSERT(st == TD_OK || st == TD_INVALID || st == TD_TOO_LARGE || st == TD_NOMEM);
    TD_ASSERT(st == TD_OK || (res.http >= 400 && err.msg[0]));

    /* the same bytes as a PushRequest (protobuf) */
    td_push_series *ps;
    size_t n;
    ProtobufCAllocator pa;
    td_proto_allocator_init(&pa, &a);
    const Push__V1__PushRequest *msg = push__v1__push_request__unpack(&pa, size, data);
    st = msg ? td_profiler_push_series(msg, &a, &ps, &n, &err) : TD_INVALID;
    TD_ASSERT(st == TD_OK || st == TD_INVALID || st == TD_NOMEM);
    if (st == TD_OK) {
        st = td_profiler_push(&o, "t", ps, n, 1764000000000000000LL, &a, check_write, NULL, &res,
                              &err);
        TD_ASSERT(st == TD_OK || st == TD_INVALID || st == TD_NOMEM || st == TD_TOO_LARGE);
    }
    td_mem_fail_after(0);
    td_arena_release(&a);
    return 0;
}
