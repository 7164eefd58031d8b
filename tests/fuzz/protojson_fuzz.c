/*
 * protojson_fuzz.c - libFuzzer entry for the protojson decoder of the Connect
 * plumbing (api/connect.h, STYLE rule 12). With gcc it links replay_main.c and
 * replays tests/fuzz/corpus/protojson/ under ctest.
 *
 * Properties checked for every input, decoded as the two richest request types
 * (SelectSeriesRequest: strings, repeated strings, int64, double, enums, nested
 * optional message; DiffRequest: nested requests with repeated fields):
 *   - the decoder returns TD_OK or TD_INVALID (never anything else with a roomy
 *     arena), with a message on failure;
 *   - a decoded message encodes back to protojson, that JSON decodes again, and
 *     the second encoding is byte-identical to the first (a fixed point);
 *   - the decoded message packs to protobuf and unpacks again.
 */
#include "api/connect.h"
#include "core/mem.h"
#include "proto/proto.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
    td_arena a;
    td_arena_init(&a, 4096, 256u * 1024 * 1024);
    td_err err;
    td_err_init(&err);
    ProtobufCMessage *m = NULL;
    td_status st = td_protojson_decode(d, (const char *)data, size, &a, &m, &err);
    TD_ASSERT(st == TD_OK || st == TD_INVALID);
    if (st != TD_OK) {
        TD_ASSERT(err.msg[0] != '\0' && m == NULL);
        td_arena_release(&a);
        return;
    }
    td_buf j1 = TD_BUF_INIT, j2 = TD_BUF_INIT;
    TD_ASSERT(td_protojson_encode(m, &j1, &err) == TD_OK);
    ProtobufCMessage *m2 = NULL;
    TD_ASSERT(td_protojson_decode(d, j1.data, j1.len, &a, &m2, &err) == TD_OK);
    TD_ASSERT(td_protojson_encode(m2, &j2, &err) == TD_OK);
    TD_ASSERT(j1.len == j2.len && memcmp(j1.data, j2.data, j1.len) == 0);
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *pb = td_xmalloc(n ? n : 1);
    TD_ASSERT(protobuf_c_message_pack(m, pb) == n);
    ProtobufCMessage *m3 = protobuf_c_message_unpack(d, NULL, n, pb);
    TD_ASSERT(m3 != NULL);
    protobuf_c_message_free_unpacked(m3, NULL);
    td_free(pb);
    td_buf_release(&j1);
    td_buf_release(&j2);
    td_arena_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(&querier__v1__select_series_request__descriptor, data, size);
    one(&querier__v1__diff_request__descriptor, data, size);
    return 0;
}
