/*
 * pgen.h - generator of realistic Go CPU pprof profiles for the profiling
 * benchmark (bench_pload), and the patchable gzip body that lets the loader
 * send one pre-built profile at many timestamps without compressing again.
 *
 * A generator models one service: a call tree over a few hundred functions
 * (Go runtime and standard library names plus the service's own packages),
 * a pool of distinct stacks (root-to-node paths of depth 10-40) and Zipf-like
 * stack weights. Each profile draws about `ticks` CPU samples of 10 ms from
 * the pool (per-profile weight jitter, a few rare stacks appear or not), as a
 * 10 s Go CPU profile: sample types samples/count and cpu/nanoseconds, period
 * cpu/nanoseconds 10,000,000, one sample per distinct stack, only the
 * locations, functions and strings the samples use (like runtime/pprof).
 * Everything is deterministic for a given service name, seed and variant.
 *
 * Thread-safety: a td_bench_pgen is read-only after td_bench_pgen_new except
 * td_bench_pgen_profile, which uses scratch space in it: one thread at a time.
 */
#ifndef TD_BENCH_PGEN_H
#define TD_BENCH_PGEN_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct td_bench_pgen td_bench_pgen;

/* nstacks: distinct stacks of the service's call tree (>= 50). Free with td_bench_pgen_free. */
td_bench_pgen *td_bench_pgen_new(const char *service, uint64_t seed, int nstacks);
void td_bench_pgen_free(td_bench_pgen *g);

/* What one generated profile holds. */
typedef struct td_bench_pgen_info {
    uint64_t records;   /* pprof Sample messages (distinct stacks in this profile) */
    uint64_t ticks;     /* sum of samples/count: CPU samples of 10 ms */
    uint64_t locations; /* Location messages */
    uint64_t functions; /* Function messages */
} td_bench_pgen_info;

/*
 * Append the raw (uncompressed) pprof of profile `variant` to out. time_nanos
 * is encoded last, as field 9 with a 9-byte varint, so the final
 * TD_BENCH_PGEN_TAIL bytes can be replaced by td_bench_pgen_time_tail for
 * another time (any time between 1972 and 2262 takes 9 bytes).
 */
#define TD_BENCH_PGEN_TAIL 10
void td_bench_pgen_profile(td_bench_pgen *g, uint64_t variant, int ticks, int64_t time_ns,
                           td_buf *out, td_bench_pgen_info *info);
void td_bench_pgen_time_tail(int64_t time_ns, uint8_t tail[TD_BENCH_PGEN_TAIL]);

/*
 * A gzip member of raw[0..len) whose last TD_BENCH_PGEN_TAIL uncompressed
 * bytes sit in a final deflate stored block, so they can be patched:
 * td_bench_pgz_build appends the member to out and fills *z with the offsets;
 * td_bench_pgz_patch rewrites the tail bytes and the CRC-32 in a copy of the
 * member starting at p. The prefix is compressed with zlib level 6.
 */
typedef struct td_bench_pgz {
    size_t tail_off; /* offset of the tail bytes in the member */
    size_t crc_off;  /* offset of the CRC-32 trailer field */
    uint32_t crc_prefix;
    size_t prefix_len;
} td_bench_pgz;
int td_bench_pgz_build(const uint8_t *raw, size_t len, td_buf *out, td_bench_pgz *z);
void td_bench_pgz_patch(const td_bench_pgz *z, uint8_t *p, const uint8_t tail[TD_BENCH_PGEN_TAIL]);

#endif
