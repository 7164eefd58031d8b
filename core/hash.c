/*
 * hash.c - MurmurHash3 x64_128, written from the algorithm's description.
 *
 * Two 64-bit lanes absorb 16-byte blocks (each lane multiplies, rotates and
 * mixes in the other), the 1..15 tail bytes are folded in the same way, and
 * both lanes go through the 64-bit finalizer. Blocks are read little-endian
 * byte by byte, so the result does not depend on the host's byte order or on
 * the input's alignment. tests/unit/test_store.c checks SMHasher's
 * verification value, which pins every step above.
 */
#include "core/hash.h"

static const uint64_t C1 = 0x87c37b91114253d5ull;
static const uint64_t C2 = 0x4cf5ad432745937full;

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline void store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The finalizer: every input bit affects every output bit. */
static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static inline uint64_t mix_k1(uint64_t k1)
{
    k1 *= C1;
    k1 = rotl64(k1, 31);
    return k1 * C2;
}

static inline uint64_t mix_k2(uint64_t k2)
{
    k2 *= C2;
    k2 = rotl64(k2, 33);
    return k2 * C1;
}

void td_hash128_seeded(const void *p, size_t len, uint32_t seed, uint8_t out[TD_HASH128_LEN])
{
    const uint8_t *data = p;
    size_t nblocks = len / 16;
    uint64_t h1 = seed, h2 = seed;

    for (size_t i = 0; i < nblocks; i++) {
        const uint8_t *b = data + i * 16;
        h1 ^= mix_k1(load_le64(b));
        h1 = rotl64(h1, 27);
        h1 += h2;
        h1 = h1 * 5 + 0x52dce729;
        h2 ^= mix_k2(load_le64(b + 8));
        h2 = rotl64(h2, 31);
        h2 += h1;
        h2 = h2 * 5 + 0x38495ab5;
    }

    /* tail: bytes 8..14 go to lane 2, bytes 0..7 to lane 1, little-endian */
    const uint8_t *tail = data + nblocks * 16;
    size_t rest = len & 15;
    uint64_t k1 = 0, k2 = 0;
    for (size_t i = rest; i > 8; i--) {
        k2 |= (uint64_t)tail[i - 1] << (8 * (i - 9));
    }
    if (rest > 8) {
        h2 ^= mix_k2(k2);
    }
    for (size_t i = rest < 8 ? rest : 8; i > 0; i--) {
        k1 |= (uint64_t)tail[i - 1] << (8 * (i - 1));
    }
    if (rest > 0) {
        h1 ^= mix_k1(k1);
    }

    h1 ^= (uint64_t)len;
    h2 ^= (uint64_t)len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    store_le64(out, h1);
    store_le64(out + 8, h2);
}

void td_hash128(const void *p, size_t len, uint8_t out[TD_HASH128_LEN])
{
    td_hash128_seeded(p, len, 0, out);
}
