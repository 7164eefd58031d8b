/*
 * pkeys.h - byte encoding of the profile database's keys and varints
 * (internal to store/; td__pk prefix). The layout is specified in
 * store/FORMAT-PROFILES.md; this header and pstore.c are its implementation,
 * shared with the unit tests (which plant damaged records).
 *
 * Every key is: record type (1) | tenant length L (1) | tenant (L) | rest.
 * Integers in keys are big-endian so that memcmp order is numeric order;
 * times are int64 with the sign bit flipped (td__pk_put_time) for the same
 * reason.
 *
 * Thread-safety: pure functions on caller-provided buffers; reentrant.
 */
#ifndef TD_STORE_PKEYS_H
#define TD_STORE_PKEYS_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Record types (leading key byte) of <data-dir>/profiles. Never renumber. */
#define TD__PK_COUNTER 'C'     /* per-tenant ID counters */
#define TD__PK_SERIES 'S'      /* series ID -> labels */
#define TD__PK_SERIES_HASH 's' /* hash of a label set -> series ID */
#define TD__PK_POSTING 'N'     /* label name, value -> series ID (empty value) */
#define TD__PK_TIME 'I'        /* series ID, time ms: the series has a profile then */
#define TD__PK_PROFILE 'X'     /* series ID, time ns, nonce -> samples */
#define TD__PK_LOC 'L'         /* location ID -> frame */
#define TD__PK_LOC_HASH 'l'    /* hash of a frame -> location ID */
#define TD__PK_STACK 'K'       /* stack ID -> location IDs */
#define TD__PK_STACK_HASH 'k'  /* hash of a location ID list -> stack ID */

/* Counter kinds (the byte after the tenant in a 'C' key). */
#define TD__PK_CNT_SERIES 's'
#define TD__PK_CNT_LOC 'l'
#define TD__PK_CNT_STACK 'k'

/* Value versions. */
#define TD__PK_V1 1

/* Profile value flags. */
#define TD__PK_F_SPANS 0x01
#define TD__PK_F_TRACES 0x02

/* type | L | tenant */
#define TD__PK_TENANT_MAX (2 + TD_TENANT_MAX)
/* type | L | tenant | id (8) | time (8) | nonce (4): the longest fixed-size key */
#define TD__PK_KEY_MAX (TD__PK_TENANT_MAX + 8 + 8 + 4 + 16)

static inline void td__pk_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t td__pk_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline void td__pk_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* int64 time with the sign bit flipped, big-endian: memcmp order = numeric order. */
static inline void td__pk_put_time(uint8_t *p, int64_t t)
{
    td__pk_put_be64(p, (uint64_t)t ^ (UINT64_C(1) << 63));
}

static inline int64_t td__pk_get_time(const uint8_t *p)
{
    return (int64_t)(td__pk_get_be64(p) ^ (UINT64_C(1) << 63));
}

/* type | L | tenant into k; returns its length. tlen <= TD_TENANT_MAX. */
static inline size_t td__pk_prefix(uint8_t *k, uint8_t type, const char *tenant, size_t tlen)
{
    k[0] = type;
    k[1] = (uint8_t)tlen;
    memcpy(k + 2, tenant, tlen);
    return 2 + tlen;
}

/* type | L | tenant | id (8) */
static inline size_t td__pk_id_key(uint8_t *k, uint8_t type, const char *tenant, size_t tlen,
                                   uint64_t id)
{
    size_t n = td__pk_prefix(k, type, tenant, tlen);
    td__pk_put_be64(k + n, id);
    return n + 8;
}

/* type | L | tenant | hash (16) */
static inline size_t td__pk_hash_key(uint8_t *k, uint8_t type, const char *tenant, size_t tlen,
                                     const uint8_t hash[16])
{
    size_t n = td__pk_prefix(k, type, tenant, tlen);
    memcpy(k + n, hash, 16);
    return n + 16;
}

/* 'X' | L | tenant | series (8) | time_ns (8, flipped) | nonce (4) */
static inline size_t td__pk_profile_key(uint8_t *k, const char *tenant, size_t tlen,
                                        uint64_t series, int64_t time_ns, uint32_t nonce)
{
    size_t n = td__pk_id_key(k, TD__PK_PROFILE, tenant, tlen, series);
    td__pk_put_time(k + n, time_ns);
    td__pk_put_be32(k + n + 8, nonce);
    return n + 12;
}

/* 'I' | L | tenant | series (8) | time_ms (8, flipped) */
static inline size_t td__pk_time_key(uint8_t *k, const char *tenant, size_t tlen, uint64_t series,
                                     int64_t time_ms)
{
    size_t n = td__pk_id_key(k, TD__PK_TIME, tenant, tlen, series);
    td__pk_put_time(k + n, time_ms);
    return n + 8;
}

/* Protobuf-style varint of v into p (at most 10 bytes); returns its length. */
static inline size_t td__pk_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Read a varint from *p (before end); false when cut short or longer than 10 bytes. */
static inline bool td__pk_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1) {
            return false;
        }
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

static inline uint64_t td__pk_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t td__pk_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

#endif
