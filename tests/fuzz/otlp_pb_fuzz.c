/*
 * otlp_pb_fuzz.c - libFuzzer entry for the OTLP protobuf decoder and the batch
 * builder (STYLE rule 12). With gcc it links replay_main.c and replays
 * tests/fuzz/corpus/otlp_pb/ under ctest. The shared body is in otlp_fuzz.h.
 */
#include "otlp_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return otlp_fuzz_one(data, size, td_otlp_decode_pb);
}
