/*
 * hash.h - a 128-bit non-cryptographic hash for content addressing.
 *
 * td_hash128 is MurmurHash3 x64_128 (Austin Appleby's public-domain design)
 * with seed 0, its two 64-bit halves written little-endian, so the 16 bytes are
 * the same on every host. It is used where stored data is addressed by its
 * content (the store's resource records, store/FORMAT.md): over millions of
 * distinct inputs an accidental collision of 128 bits is practically
 * impossible. It is NOT collision-resistant against an adversary who chooses
 * the inputs; never use it where that matters.
 *
 * Thread-safety: pure function; reentrant and async-signal-safe.
 */
#ifndef TD_HASH_H
#define TD_HASH_H

#include <stddef.h>
#include <stdint.h>

#define TD_HASH128_LEN 16

/* Hash len bytes at p (p may be NULL when len is 0) with seed into out[16]. */
void td_hash128_seeded(const void *p, size_t len, uint32_t seed, uint8_t out[TD_HASH128_LEN]);

/* td_hash128_seeded with seed 0: the hash the store's formats use. */
void td_hash128(const void *p, size_t len, uint8_t out[TD_HASH128_LEN]);

#endif
