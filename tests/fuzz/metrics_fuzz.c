/*
 * metrics_fuzz.c - libFuzzer entry for the TraceQL metrics parameters and
 * evaluation (api/tempo_metrics.h, STYLE rule 12). With gcc it links
 * replay_main.c and replays tests/fuzz/corpus/metrics/ under ctest.
 *
 * The input is up to six '\n'-separated fields: q, start, end, since, step and
 * a mode ("i" = instant). Properties checked for every input:
 *   - td__metrics_parse_http returns TD_OK or TD_INVALID (never anything else);
 *   - on success start < end, the step is positive and the interval count is
 *     within the limit (+2 for alignment);
 *   - td__metrics_new returns TD_OK or TD_INVALID ("invalid TraceQL query: ...");
 *   - a query that compiles evaluates a small synthetic trace, and both
 *     encodings succeed; the protobuf one decodes as the response message.
 */
#include "api/tempo_metrics.h"
#include "core/mem.h"
#include "proto/proto.h"
#include "tempopb/tempo_metrics.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW_NS 1700000007300000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A trace of three spans (two services, attributes of several types) inside the window. */
static void observe_synthetic(td__metrics *m, uint64_t start_ns, uint64_t end_ns)
{
    static uint8_t tid[16] = {1};
    static uint8_t sid[3][8] = {{1}, {2}, {3}};
    td_otlp_any sv[2], av[3];
    td_otlp_kv skv[2], akv[3];
    td_otlp_kv *skvp[2], *akvp[3];
    td_otlp_resource res[2];
    td_otlp_span sp[3];
    td_traceql_span ts[3];
    static const char *const svcs[] = {"alpha", "beta"};
    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__common__v1__any_value__init(&sv[i]);
        sv[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        sv[i].string_value = (char *)svcs[i];
        opentelemetry__proto__common__v1__key_value__init(&skv[i]);
        skv[i].key = (char *)"service.name";
        skv[i].value = &sv[i];
        skvp[i] = &skv[i];
        opentelemetry__proto__resource__v1__resource__init(&res[i]);
        res[i].attributes = &skvp[i];
        res[i].n_attributes = 1;
    }
    uint64_t span = end_ns > start_ns ? end_ns - start_ns : 1;
    for (int i = 0; i < 3; i++) {
        opentelemetry__proto__common__v1__any_value__init(&av[i]);
        if (i == 0) {
            av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
            av[i].int_value = 1000;
        } else if (i == 1) {
            av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
            av[i].double_value = 2.5;
        } else {
            av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
            av[i].bool_value = 1;
        }
        opentelemetry__proto__common__v1__key_value__init(&akv[i]);
        akv[i].key = (char *)"n";
        akv[i].value = &av[i];
        akvp[i] = &akv[i];
        opentelemetry__proto__trace__v1__span__init(&sp[i]);
        sp[i].trace_id = (ProtobufCBinaryData){16, tid};
        sp[i].span_id = (ProtobufCBinaryData){8, sid[i]};
        sp[i].name = (char *)"op";
        sp[i].start_time_unix_nano = start_ns + span / 4 * (uint64_t)(i + 1);
        sp[i].end_time_unix_nano = sp[i].start_time_unix_nano + 1000000ull * (uint64_t)(i + 1);
        sp[i].attributes = &akvp[i];
        sp[i].n_attributes = 1;
        ts[i] = (td_traceql_span){&sp[i], &res[i % 2], NULL, -1};
    }
    td_arena a;
    td_arena_init(&a, 4096, 64u * 1024 * 1024);
    td_err err;
    td_err_init(&err);
    td_traceql_trace t;
    if (td_traceql_trace_init(&t, ts, 3, &a, &err) == TD_OK) {
        td_status st = td__metrics_observe(m, &t, &a, &err);
        TD_ASSERT(st == TD_OK || st == TD_INVALID);
    }
    td_arena_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192 || memchr(data, 0, size)) {
        return 0;
    }
    char *buf = malloc(size + 1);
    TD_ASSERT(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *f[6] = {0};
    char *p = buf;
    for (int i = 0; i < 6 && p; i++) {
        f[i] = p;
        p = strchr(p, '\n');
        if (p) {
            *p++ = '\0';
        }
    }
    bool instant = f[5] && f[5][0] == 'i';
    td__metrics_args in = {.q = f[0], .start = f[1], .end = f[2], .since = f[3], .step = f[4]};
    td__metrics_params prm;
    td_err err;
    td_err_init(&err);
    td_status st = td__metrics_parse_http(&in, instant, NOW_NS, &prm, &err);
    TD_ASSERT(st == TD_OK || st == TD_INVALID);
    if (st == TD_OK) {
        TD_ASSERT(prm.start_ns < prm.end_ns && prm.step_ns > 0);
        TD_ASSERT((prm.end_ns - prm.start_ns) / prm.step_ns <= TD__METRICS_MAX_INTERVALS + 2);
        td__metrics *m = NULL;
        st = td__metrics_new(&prm, &m, &err);
        TD_ASSERT(st == TD_OK || st == TD_INVALID);
        if (st == TD_INVALID) {
            TD_ASSERT(strncmp(err.msg, "invalid TraceQL query: ", 23) == 0);
        }
        if (st == TD_OK) {
            observe_synthetic(m, prm.start_ns, prm.end_ns);
            td_buf out = TD_BUF_INIT;
            TD_ASSERT(td__metrics_encode(m, &out, &err) == TD_OK);
            td__metrics_free(m);
            prm.pb = true;
            TD_ASSERT(td__metrics_new(&prm, &m, &err) == TD_OK);
            observe_synthetic(m, prm.start_ns, prm.end_ns);
            td_buf_reset(&out);
            TD_ASSERT(td__metrics_encode(m, &out, &err) == TD_OK);
            if (prm.instant_response) {
                Tempopb__QueryInstantResponse *r = tempopb__query_instant_response__unpack(
                    NULL, out.len, (const uint8_t *)out.data);
                TD_ASSERT(r != NULL);
                tempopb__query_instant_response__free_unpacked(r, NULL);
            } else {
                Tempopb__QueryRangeResponse *r =
                    tempopb__query_range_response__unpack(NULL, out.len, (const uint8_t *)out.data);
                TD_ASSERT(r != NULL);
                tempopb__query_range_response__free_unpacked(r, NULL);
            }
            td_buf_release(&out);
            td__metrics_free(m);
        }
    }
    free(buf);
    return 0;
}
