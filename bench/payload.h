/*
 * payload.h - a replayable OTLP ExportTraceServiceRequest whose IDs can be
 * rewritten per request without re-encoding, shared by bench_ingest and
 * bench_ceiling.
 *
 * td_bench_payload_load reads the packed request, decodes it once with
 * protobuf-c (to validate it and count spans), and walks the packed bytes with a
 * small wire-format walker that records the byte offset of every 16-byte trace
 * ID and every 8-byte span ID (span_id, parent_span_id, link trace/span IDs).
 *
 * Rewriting is an XOR with a per-request pattern: all trace IDs of one request
 * are XORed with the same 16-byte pattern and all span IDs with the same 8-byte
 * pattern. XOR is a bijection, so IDs that were equal stay equal (parents and
 * links keep pointing at the right span) and distinct IDs stay distinct, while
 * every request gets a fresh, random-looking set of traces. Only the ID bytes
 * are written, so a rewrite costs a few microseconds for 512 spans.
 *
 * td_bench_gztpl builds a gzip encoding of the payload in which every ID byte
 * sits in a deflate *stored* block, so a request can be gzipped by copying the
 * template, patching the IDs at their compressed offsets and recomputing the
 * CRC-32 (see payload.c for why no back-reference ever reads an ID byte).
 *
 * Thread-safety: a loaded payload and a built template are read-only and can be
 * shared by any number of threads; each thread patches its own copies.
 */
#ifndef TD_BENCH_PAYLOAD_H
#define TD_BENCH_PAYLOAD_H

#include "core/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct td_bench_payload {
    uint8_t *data; /* packed request (heap), timestamps possibly shifted */
    size_t len;
    size_t nspans;
    size_t nresources;
    uint32_t *trace_off; /* offsets of 16-byte trace IDs */
    size_t ntrace;
    uint32_t *span_off; /* offsets of 8-byte span IDs (span, parent, link) */
    size_t nspan;
    uint32_t *time_off; /* offsets of fixed64 span start/end and event times */
    size_t ntime;
    uint64_t max_time_ns; /* largest timestamp found (0 if none) */
} td_bench_payload;

/* The per-request XOR patterns. */
typedef struct td_bench_ids {
    uint8_t trace[16];
    uint8_t span[8];
} td_bench_ids;

/*
 * Load and index path. Errors: TD_IO (cannot read), TD_INVALID (not a decodable
 * ExportTraceServiceRequest, or the walker and protobuf-c disagree). Release with
 * td_bench_payload_release.
 */
td_status td_bench_payload_load(const char *path, td_bench_payload *p, td_err *err);
/* Same for bytes already in memory (copied). */
td_status td_bench_payload_parse(const uint8_t *data, size_t len, td_bench_payload *p, td_err *err);
void td_bench_payload_release(td_bench_payload *p);

/* Add delta_ns to every recorded timestamp of p->data (used once, at load). */
void td_bench_payload_shift_times(td_bench_payload *p, int64_t delta_ns);

/* Derive the patterns for request `key` (any 64-bit value; distinct keys -> distinct IDs). */
void td_bench_ids_make(uint64_t key, td_bench_ids *ids);

/*
 * Write the rewritten IDs into dst. dst holds a copy of p->data (or a template of
 * it); the ID bytes are read from p->data and written at toff[i]/soff[i] in dst,
 * or at the payload's own offsets when toff/soff are NULL.
 */
void td_bench_patch(const td_bench_payload *p, uint8_t *dst, const uint32_t *toff,
                    const uint32_t *soff, const td_bench_ids *ids);

/* 64-bit mixer (splitmix64 finaliser), handy for seeds. */
uint64_t td_bench_mix64(uint64_t x);

/* ---- patchable gzip ---- */

typedef struct td_bench_gztpl {
    uint8_t *data; /* a complete gzip member (heap) */
    size_t len;
    uint32_t *trace_off; /* where p->trace_off[i] landed in data */
    uint32_t *span_off;  /* where p->span_off[i] landed in data */
} td_bench_gztpl;

/*
 * Build the template for p at zlib level (1..9) and verify it by inflating two
 * differently patched copies. Errors: TD_NOMEM, TD_INTERNAL (zlib failure or
 * verification mismatch).
 */
td_status td_bench_gztpl_build(const td_bench_payload *p, int level, td_bench_gztpl *t,
                               td_err *err);
void td_bench_gztpl_release(td_bench_gztpl *t);

/*
 * Produce the gzip body of one request: dst (t->len bytes, holding a copy of
 * t->data) gets the IDs of ids and the matching CRC-32. raw is a scratch copy of
 * p->data owned by the caller; its IDs are rewritten too (the CRC is computed
 * over it), so after the call raw is exactly the uncompressed request.
 */
void td_bench_gztpl_patch(const td_bench_payload *p, const td_bench_gztpl *t, uint8_t *dst,
                          uint8_t *raw, const td_bench_ids *ids);

#endif
