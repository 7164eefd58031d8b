/*
 * otlp_json_fuzz.c - libFuzzer entry for the OTLP JSON decoder and the batch
 * builder (STYLE rule 12). With gcc it links replay_main.c and replays
 * tests/fuzz/corpus/otlp_json/ under ctest. The shared body is in otlp_fuzz.h.
 */
#include "otlp_fuzz.h"

static td_status decode_json(const uint8_t *data, size_t size, td_arena *a,
                             td_otlp_request **out, td_err *err)
{
    return td_otlp_decode_json((const char *)data, size, a, out, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return otlp_fuzz_one(data, size, decode_json);
}
