/*
 * otlp_fuzz.h - the body shared by the OTLP fuzz targets (otlp_pb_fuzz.c,
 * otlp_json_fuzz.c): decode, build the batch, check its invariants.
 *
 * The arena is bounded as in the daemon (64 MiB), so inputs that would need
 * more memory exercise the TD_TOO_LARGE path. About one input in eight also has
 * an allocation failure injected (derived from the input's hash, so a replay
 * fails the same allocation), exercising the TD_NOMEM paths (rule 14).
 */
#ifndef TD_OTLP_FUZZ_H
#define TD_OTLP_FUZZ_H

#include "collector/collector.h"
#include "core/log.h"
#include "core/mem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef td_status (*otlp_decode_fn)(const uint8_t *data, size_t size, td_arena *a,
                                    td_otlp_request **out, td_err *err);

/* FNV-1a over the input: picks which inputs get an injected allocation failure. */
static uint64_t input_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* One fuzz input through decode (the caller's decoder) and td_batch_build. */
static int otlp_fuzz_one(const uint8_t *data, size_t size, otlp_decode_fn decode)
{
    static bool quiet;
    if (!quiet) {
        /*
         * No log lines: noise here, and a log line formats into a td_buf, which
         * aborts when the injected allocation failure hits it.
         */
        td_log_set_level(TD_LOG_OFF);
        quiet = true;
    }
    uint64_t h = input_hash(data, size);
    td_arena a;
    td_arena_init(&a, 64 * 1024, 64u * 1024 * 1024);
    td_otlp_request *req = NULL;
    td_batch *b = NULL;
    td_ingest_result res;
    td_err err;
    td_err_init(&err);
    if ((h & 7) == 0) {
        td_mem_fail_after((long)(1 + (h >> 3) % 16));
    }
    td_status st = decode(data, size, &a, &req, &err);
    if (st == TD_OK) {
        st = td_batch_build(req, "fuzz", &a, &b, &res, &err);
    }
    td_mem_fail_after(0);
    if (st == TD_OK && b) {
        /* fragments must lie inside the batch and add up to the accepted spans */
        uint64_t n = 0;
        for (size_t i = 0; i < b->nfrags; i++) {
            TD_ASSERT(b->frags[i].data >= b->data &&
                      b->frags[i].data + b->frags[i].len <= b->data + b->data_cap);
            TD_ASSERT(b->frags[i].res_index >= -1 && b->frags[i].res_index < (int32_t)b->nres);
            n += b->frags[i].nspans;
        }
        /* and so must the resources they name */
        for (size_t i = 0; i < b->nres; i++) {
            TD_ASSERT(b->res[i].len > 0 && b->res[i].data >= b->data &&
                      b->res[i].data + b->res[i].len <= b->data + b->data_cap);
        }
        /* and the index entries: their fragment, key and value inside the batch */
        for (size_t i = 0; i < b->nidx; i++) {
            const td_idx_entry *e = &b->idx[i];
            TD_ASSERT(e->frag < b->nfrags && e->key_len >= 1 && e->key_len <= 255);
            TD_ASSERT(e->key >= b->data && e->key + e->key_len <= b->data + b->data_cap);
            TD_ASSERT(e->val >= b->data && e->val + e->val_len <= b->data + b->data_cap);
        }
        TD_ASSERT(n == res.accepted_spans && n == b->q.spans);
    }
    TD_ASSERT(st == TD_OK || err.code == st);
    td_batch_free(b);
    td_arena_release(&a);
    return 0;
}

#endif
