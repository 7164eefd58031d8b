/*
 * keys.h - byte encoding of store keys and values (internal to store/; td__ prefix).
 *
 * The layout is specified in store/FORMAT.md; this header is its only
 * implementation, shared by store.c and the unit tests (which check that
 * memcmp order of encoded keys is the order FORMAT.md promises).
 * All integers are big-endian so that memcmp order equals numeric order.
 *
 * Thread-safety: pure functions on caller-provided buffers; reentrant.
 */
#ifndef TD_STORE_KEYS_H
#define TD_STORE_KEYS_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Leading byte of every key: the record type. */
#define TD__REC_TRACE 'T' /* trace fragment */
#define TD__REC_META 'M'  /* store metadata, e.g. "Mseq" */
#define TD__REC_RES 'R'   /* resource, addressed by its hash */
#define TD__REC_SUM 'S'   /* per-fragment search summary */
#define TD__REC_IDX 'I'   /* index entry: (scope, key, typed value, minute) -> trace */
#define TD__REC_TAG 'K'   /* tag name seen: (scope, key, hour) */
#define TD__REC_WTAB 'W'  /* per-write trace table: (write seq) -> trace IDs of 'I' records */

/* 'T' | tenant length | tenant | trace_id (16) ... */
#define TD__KEY_TRACE_PREFIX_MAX (1 + 1 + TD_TENANT_MAX + 16)
/* ... | start_ns (8) | seq (8) */
#define TD__KEY_TRACE_MAX (TD__KEY_TRACE_PREFIX_MAX + 8 + 8)

/* Metadata key holding the next unused seq (value: 8 bytes big-endian). */
#define TD__KEY_META_SEQ "Mseq"

/*
 * Metadata key holding the wall-clock time (ns, 8 bytes big-endian) from which
 * on every written fragment was indexed: 0 for a store that indexed from its
 * first write, the time of the first open by an indexing version otherwise.
 */
#define TD__KEY_META_IDX_SINCE "Midxsince"

/*
 * Metadata key holding the data-time range [lo, hi] (ns, 8 + 8 bytes big-endian)
 * of fragments written without index entries (batches with nidx == 0); absent
 * when there were none. Lookups whose window overlaps it are inexact.
 */
#define TD__KEY_META_IDX_HOLE "Midxhole"

/*
 * Metadata key holding the index value format (1 byte, TD__IDX_FMT) and the
 * first write seq (8 bytes big-endian) whose 'I' records have that format:
 * 'I' records with a smaller seq were written in an older format and are not
 * read (lookups reaching them are inexact).
 */
#define TD__KEY_META_IDX_FMT "Midxfmt"
#define TD__IDX_FMT 2

/* 'R' | tenant length | tenant | resource hash (16) */
#define TD__KEY_RES_MAX (1 + 1 + TD_TENANT_MAX + 16)

/*
 * Fragment values.
 * v1: version (1) | end_ns (8) | nspans (4) | fragment bytes (a whole ResourceSpans).
 * v2: version (2) | end_ns (8) | nspans (4) | flags (1) | [hash (16)] | fragment bytes;
 *     with TD__VAL_F_RES the hash is present and names the fragment's resource
 *     record, and the fragment bytes are a ResourceSpans without field 1.
 */
#define TD__VAL_V1 1
#define TD__VAL_V1_HDR 13
#define TD__VAL_V2 2
#define TD__VAL_F_RES 0x01
#define TD__VAL_V2_HDR_MAX (13 + 1 + 16)

static inline void td__put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t td__get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline void td__put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t td__get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * Write the prefix shared by every fragment of one trace of one tenant into
 * out[TD__KEY_TRACE_PREFIX_MAX]; returns its length. tlen must be <= TD_TENANT_MAX.
 * The length byte before the tenant is what keeps tenant "a" from being a
 * prefix of tenant "ab".
 */
static inline size_t td__key_trace_prefix(uint8_t *out, const char *tenant, size_t tlen,
                                          const uint8_t trace_id[16])
{
    out[0] = TD__REC_TRACE;
    out[1] = (uint8_t)tlen;
    memcpy(out + 2, tenant, tlen);
    memcpy(out + 2 + tlen, trace_id, 16);
    return 2 + tlen + 16;
}

/* Full fragment key into out[TD__KEY_TRACE_MAX]; returns its length. */
static inline size_t td__key_trace(uint8_t *out, const char *tenant, size_t tlen,
                                   const uint8_t trace_id[16], uint64_t start_ns, uint64_t seq)
{
    size_t n = td__key_trace_prefix(out, tenant, tlen, trace_id);
    td__put_be64(out + n, start_ns);
    td__put_be64(out + n + 8, seq);
    return n + 16;
}

/*
 * Split a fragment key whose first plen bytes are a known trace prefix.
 * false when the key does not have exactly 16 bytes after the prefix.
 */
static inline bool td__key_trace_tail(const uint8_t *key, size_t klen, size_t plen,
                                      uint64_t *start_ns, uint64_t *seq)
{
    if (klen != plen + 16) {
        return false;
    }
    *start_ns = td__get_be64(key + plen);
    *seq = td__get_be64(key + plen + 8);
    return true;
}

/*
 * Resource record key into out[TD__KEY_RES_MAX]; returns its length. Like trace
 * keys, the tenant is length-prefixed, so tenants never share resource records.
 */
static inline size_t td__key_res(uint8_t *out, const char *tenant, size_t tlen,
                                 const uint8_t hash[16])
{
    out[0] = TD__REC_RES;
    out[1] = (uint8_t)tlen;
    memcpy(out + 2, tenant, tlen);
    memcpy(out + 2 + tlen, hash, 16);
    return 2 + tlen + 16;
}

/*
 * Summary records ('S'): key 'S' | tenant length | tenant | bucket (4) |
 * trace_id (16) | seq (8); bucket = start_ns / TD__SUM_BUCKET_NS (minutes).
 */
#define TD__SUM_BUCKET_NS 60000000000ull
#define TD__KEY_SUM_PREFIX_MAX (1 + 1 + TD_TENANT_MAX)
#define TD__KEY_SUM_MAX (TD__KEY_SUM_PREFIX_MAX + 4 + 16 + 8)
/* Root strings longer than this are cut (at a byte boundary) in the summary. */
#define TD__SUM_STR_MAX 1024
/*
 * Summary value v1: version (1) | start_ns (8) | end_ns (8) | nspans (4) |
 * nerrors (4) | flags (1) [ | svc_len (2) | svc | name_len (2) | name ]
 * with the bracketed part present iff flags & TD__SUM_F_ROOT.
 */
#define TD__SUM_V1 1
#define TD__SUM_HDR 26
#define TD__SUM_F_ROOT 0x01
#define TD__SUM_VAL_MAX (TD__SUM_HDR + 4 + 2 * TD__SUM_STR_MAX)

static inline uint32_t td__sum_bucket(uint64_t start_ns)
{
    uint64_t b = start_ns / TD__SUM_BUCKET_NS;
    return b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
}

/* 'S' | tenant length | tenant into out[TD__KEY_SUM_PREFIX_MAX]; returns its length. */
static inline size_t td__key_sum_prefix(uint8_t *out, const char *tenant, size_t tlen)
{
    out[0] = TD__REC_SUM;
    out[1] = (uint8_t)tlen;
    memcpy(out + 2, tenant, tlen);
    return 2 + tlen;
}

/* Full summary key into out[TD__KEY_SUM_MAX]; returns its length. */
static inline size_t td__key_sum(uint8_t *out, const char *tenant, size_t tlen, uint32_t bucket,
                                 const uint8_t trace_id[16], uint64_t seq)
{
    size_t n = td__key_sum_prefix(out, tenant, tlen);
    td__put_be32(out + n, bucket);
    memcpy(out + n + 4, trace_id, 16);
    td__put_be64(out + n + 20, seq);
    return n + 28;
}

/* Encode a summary value into out[TD__SUM_VAL_MAX]; returns its length. */
static inline size_t td__val_sum(uint8_t *out, const td_frag *f)
{
    out[0] = TD__SUM_V1;
    td__put_be64(out + 1, f->start_ns);
    td__put_be64(out + 9, f->end_ns);
    td__put_be32(out + 17, f->nspans);
    td__put_be32(out + 21, f->nerrors);
    out[25] = f->has_root ? TD__SUM_F_ROOT : 0;
    size_t n = TD__SUM_HDR;
    if (f->has_root) {
        size_t sl = f->root_service_len > TD__SUM_STR_MAX ? TD__SUM_STR_MAX : f->root_service_len;
        size_t nl = f->root_name_len > TD__SUM_STR_MAX ? TD__SUM_STR_MAX : f->root_name_len;
        out[n] = (uint8_t)(sl >> 8);
        out[n + 1] = (uint8_t)sl;
        if (sl) {
            memcpy(out + n + 2, f->root_service, sl);
        }
        n += 2 + sl;
        out[n] = (uint8_t)(nl >> 8);
        out[n + 1] = (uint8_t)nl;
        if (nl) {
            memcpy(out + n + 2, f->root_name, nl);
        }
        n += 2 + nl;
    }
    return n;
}

/* Parse a summary value (trace_id is left alone); false when malformed. */
static inline bool td__val_sum_parse(const uint8_t *v, size_t vlen, td_store_summary *out)
{
    if (vlen < TD__SUM_HDR || v[0] != TD__SUM_V1 || (v[25] & ~TD__SUM_F_ROOT) != 0) {
        return false;
    }
    out->start_ns = td__get_be64(v + 1);
    out->end_ns = td__get_be64(v + 9);
    out->nspans = td__get_be32(v + 17);
    out->nerrors = td__get_be32(v + 21);
    out->has_root = (v[25] & TD__SUM_F_ROOT) != 0;
    out->root_service = out->root_name = NULL;
    out->root_service_len = out->root_name_len = 0;
    size_t n = TD__SUM_HDR;
    if (out->has_root) {
        if (vlen < n + 2) {
            return false;
        }
        size_t sl = (size_t)v[n] << 8 | v[n + 1];
        if (vlen < n + 2 + sl + 2) {
            return false;
        }
        out->root_service = (const char *)v + n + 2;
        out->root_service_len = sl;
        n += 2 + sl;
        size_t nl = (size_t)v[n] << 8 | v[n + 1];
        if (vlen < n + 2 + nl) {
            return false;
        }
        out->root_name = (const char *)v + n + 2;
        out->root_name_len = nl;
        n += 2 + nl;
    }
    return n == vlen;
}

/*
 * Index records ('I', 'K'). Attribute keys and values are stored escaped so that
 * memcmp order of the encoding is the byte order of the raw strings and no
 * encoding is a prefix of another: every 0x00 byte becomes 0x00 0xff and the
 * string ends with 0x00 0x00. Skipping every record of one string is a seek to
 * its encoding with the final 0x00 replaced by 0x01 (td__esc_successor).
 *
 *   'I' | L | tenant | scope | esc(key) | type | esc(value) | minute (4) | seq (8)
 *       value: positions in the write's 'W' table (td__varint_put, gap-coded)
 *   'K' | L | tenant | scope | esc(key) | hour (4)
 */
#define TD__IDX_KEY_MAX 255  /* longer attribute keys are not indexed */
#define TD__IDX_VAL_MAX 4096 /* upper bound of index-max-value-len */
#define TD__TAG_BUCKET_NS 3600000000000ull
/* 'I' | L | tenant | scope | esc(key) */
#define TD__KEY_IDX_PREFIX_MAX (1 + 1 + TD_TENANT_MAX + 1 + 2 * TD__IDX_KEY_MAX + 2)
/* ... | type | esc(value) | bucket | seq; also bounds every 'K' key */
#define TD__KEY_IDX_MAX (TD__KEY_IDX_PREFIX_MAX + 1 + 2 * TD__IDX_VAL_MAX + 2 + 4 + 8)
#define TD__IDX_TAIL 12 /* bucket + seq after the value of an 'I' key */
#define TD__TAG_TAIL 4  /* hour after the key of a 'K' key */

/* Escape p[0..n) into out (room for 2n + 2 bytes); returns the bytes written. */
static inline size_t td__esc_put(uint8_t *out, const uint8_t *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        out[o++] = p[i];
        if (p[i] == 0) {
            out[o++] = 0xff;
        }
    }
    out[o++] = 0;
    out[o++] = 0;
    return o;
}

/*
 * Decode an escaped string at k[*pos..klen) into out (room for cap bytes; the
 * decoded length goes to *n) and move *pos past its terminator. false when the
 * bytes are not a well-formed escaped string or it decodes to more than cap.
 */
static inline bool td__esc_get(const uint8_t *k, size_t klen, size_t *pos, uint8_t *out,
                               size_t cap, size_t *n)
{
    size_t i = *pos, o = 0;
    for (;;) {
        if (i >= klen) {
            return false;
        }
        uint8_t c = k[i++];
        if (c == 0) {
            if (i >= klen) {
                return false;
            }
            uint8_t e = k[i++];
            if (e == 0) {
                break;
            }
            if (e != 0xff) {
                return false;
            }
        }
        if (o >= cap) {
            return false;
        }
        out[o++] = c;
    }
    *pos = i;
    *n = o;
    return true;
}

/*
 * Turn the escaped string ending at key[end) (its 0x00 0x00 terminator being
 * key[end-2..end)) into the smallest key above every key that continues it:
 * the terminator's last byte becomes 0x01. Returns end (the key length to seek).
 */
static inline size_t td__esc_successor(uint8_t *key, size_t end)
{
    key[end - 1] = 0x01;
    return end;
}

/* 'I' | L | tenant | scope | esc(key) into out[TD__KEY_IDX_PREFIX_MAX]; returns its length. */
static inline size_t td__key_idx_prefix(uint8_t *out, const char *tenant, size_t tlen,
                                        uint8_t scope, const uint8_t *key, size_t klen)
{
    out[0] = TD__REC_IDX;
    out[1] = (uint8_t)tlen;
    memcpy(out + 2, tenant, tlen);
    out[2 + tlen] = scope;
    return 3 + tlen + td__esc_put(out + 3 + tlen, key, klen);
}

/* Full 'I' key into out[TD__KEY_IDX_MAX] (vlen <= TD__IDX_VAL_MAX); returns its length. */
static inline size_t td__key_idx(uint8_t *out, const char *tenant, size_t tlen, uint8_t scope,
                                 const uint8_t *key, size_t klen, uint8_t type,
                                 const uint8_t *val, size_t vlen, uint32_t bucket, uint64_t seq)
{
    size_t n = td__key_idx_prefix(out, tenant, tlen, scope, key, klen);
    out[n++] = type;
    n += td__esc_put(out + n, val, vlen);
    td__put_be32(out + n, bucket);
    td__put_be64(out + n + 4, seq);
    return n + TD__IDX_TAIL;
}

/*
 * Per-write trace tables ('W'): key 'W' | L | tenant | seq (8) | chunk (4), seq
 * the same as in the 'I' keys of the write; value: the distinct trace IDs (16
 * bytes each) the write's 'I' records of this tenant refer to by position, in
 * chunks of TD__WTAB_CHUNK: chunk c holds positions c * TD__WTAB_CHUNK onwards,
 * so a lookup reads 1 KiB per trace it resolves, not the write's whole table.
 */
#define TD__WTAB_CHUNK 64
#define TD__KEY_WTAB_MAX (1 + 1 + TD_TENANT_MAX + 8 + 4)

/* Full 'W' key into out[TD__KEY_WTAB_MAX]; returns its length. */
static inline size_t td__key_wtab(uint8_t *out, const char *tenant, size_t tlen, uint64_t seq,
                                  uint32_t chunk)
{
    out[0] = TD__REC_WTAB;
    out[1] = (uint8_t)tlen;
    memcpy(out + 2, tenant, tlen);
    td__put_be64(out + 2 + tlen, seq);
    td__put_be32(out + 10 + tlen, chunk);
    return 14 + tlen;
}

/*
 * 'I' values: the positions (in the write's 'W' table) of the traces holding
 * the value, ascending and distinct, as varints: the first position, then each
 * gap minus one. At most 5 bytes per varint (positions are < 2^32).
 */
static inline size_t td__varint_put(uint8_t *p, uint32_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Read a varint at p[*pos..len) into *v; false when truncated or over 32 bits. */
static inline bool td__varint_get(const uint8_t *p, size_t len, size_t *pos, uint32_t *v)
{
    uint64_t x = 0;
    for (unsigned sh = 0; sh < 35; sh += 7) {
        if (*pos >= len) {
            return false;
        }
        uint8_t c = p[(*pos)++];
        x |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) {
            if (x > UINT32_MAX) {
                return false;
            }
            *v = (uint32_t)x;
            return true;
        }
    }
    return false;
}

/* 'K' | L | tenant | scope into out (room for 3 + TD_TENANT_MAX); returns its length. */
static inline size_t td__key_tag_prefix(uint8_t *out, const char *tenant, size_t tlen,
                                        uint8_t scope)
{
    out[0] = TD__REC_TAG;
    out[1] = (uint8_t)tlen;
    memcpy(out + 2, tenant, tlen);
    out[2 + tlen] = scope;
    return 3 + tlen;
}

/* Full 'K' key into out[TD__KEY_IDX_PREFIX_MAX + 4]; returns its length. */
static inline size_t td__key_tag(uint8_t *out, const char *tenant, size_t tlen, uint8_t scope,
                                 const uint8_t *key, size_t klen, uint32_t hour)
{
    size_t n = td__key_tag_prefix(out, tenant, tlen, scope);
    n += td__esc_put(out + n, key, klen);
    td__put_be32(out + n, hour);
    return n + TD__TAG_TAIL;
}

static inline uint32_t td__tag_bucket(uint64_t start_ns)
{
    uint64_t b = start_ns / TD__TAG_BUCKET_NS;
    return b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
}

/* Write a v1 value header into out[TD__VAL_V1_HDR] (kept for tests: v1 stays readable). */
static inline void td__val_header_v1(uint8_t *out, uint64_t end_ns, uint32_t nspans)
{
    out[0] = TD__VAL_V1;
    td__put_be64(out + 1, end_ns);
    td__put_be32(out + 9, nspans);
}

/*
 * Write a v2 value header into out[TD__VAL_V2_HDR_MAX]; res_hash NULL for a
 * fragment that carries its own resource. Returns the header length (14 or 30).
 */
static inline size_t td__val_header_v2(uint8_t *out, uint64_t end_ns, uint32_t nspans,
                                       const uint8_t *res_hash)
{
    out[0] = TD__VAL_V2;
    td__put_be64(out + 1, end_ns);
    td__put_be32(out + 9, nspans);
    out[13] = res_hash ? TD__VAL_F_RES : 0;
    if (!res_hash) {
        return 14;
    }
    memcpy(out + 14, res_hash, 16);
    return 30;
}

/* A parsed fragment value; pointers into the value. */
typedef struct td__val {
    uint64_t end_ns;
    uint32_t nspans;
    const uint8_t *res_hash; /* NULL: frag is a whole ResourceSpans */
    const uint8_t *frag;
    size_t frag_len;
} td__val;

/*
 * Parse a stored value of any version; false when it is too short, of an unknown
 * version or has flags this code does not know.
 */
static inline bool td__val_parse(const uint8_t *v, size_t vlen, td__val *out)
{
    size_t hdr;
    if (vlen < TD__VAL_V1_HDR) {
        return false;
    }
    out->res_hash = NULL;
    if (v[0] == TD__VAL_V1) {
        hdr = TD__VAL_V1_HDR;
    } else if (v[0] == TD__VAL_V2) {
        if (vlen < 14 || (v[13] & ~TD__VAL_F_RES) != 0) {
            return false;
        }
        hdr = 14;
        if (v[13] & TD__VAL_F_RES) {
            if (vlen < 30) {
                return false;
            }
            out->res_hash = v + 14;
            hdr = 30;
        }
    } else {
        return false;
    }
    out->end_ns = td__get_be64(v + 1);
    out->nspans = td__get_be32(v + 9);
    out->frag = v + hdr;
    out->frag_len = vlen - hdr;
    return true;
}

#endif
