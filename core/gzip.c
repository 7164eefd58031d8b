#include "gzip.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

/* Deflate expands at most about 1032:1; a larger claimed size is a lie. */
#define MAX_RATIO 1032
/* First output buffer when nothing better is known: a typical OTLP compression ratio. */
#define GUESS_RATIO 8

/*
 * Where the inflated bytes go: buf[0..cap) of which len are written. grow makes
 * cap at least want (moving buf and the len bytes written); false: out of memory.
 */
typedef struct zout {
    char *buf;
    size_t len, cap;
    bool (*grow)(struct zout *o, size_t want);
    void *ud;
} zout;

/*
 * The output size to allocate first: the gzip trailer's ISIZE (the size mod
 * 2^32 of the last member) when it is plausible, else a guess; never more than
 * max_out, at least 1.
 */
static size_t first_size(const unsigned char *in, size_t len, size_t max_out)
{
    size_t bound = len > SIZE_MAX / MAX_RATIO ? SIZE_MAX : len * MAX_RATIO;
    size_t want = 0;
    if (len >= 18 && in[0] == 0x1f && in[1] == 0x8b) {
        const unsigned char *t = in + len - 4;
        want = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
        if (want > bound) {
            want = 0;
        }
    }
    if (want == 0) {
        want = len > SIZE_MAX / GUESS_RATIO ? SIZE_MAX : len * GUESS_RATIO;
    }
    if (want > max_out) {
        want = max_out;
    }
    return want ? want : 1;
}

static td_status inflate_to(const void *in, size_t len, size_t max_out, zout *o, td_err *err)
{
    z_stream zs = {0};
    /* 15 + 32: auto-detect gzip or zlib header */
    if (inflateInit2(&zs, 15 + 32) != Z_OK) {
        return td_err_set(err, TD_NOMEM, "cannot initialise gzip decoder");
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    size_t next = first_size(in, len, max_out);
    td_status st = TD_OK;
    for (;;) {
        if (o->len >= max_out) {
            /* one more byte would exceed: probe if the stream really has more */
            unsigned char probe;
            zs.next_out = &probe;
            zs.avail_out = 1;
            int rc = inflate(&zs, Z_NO_FLUSH);
            if (rc == Z_STREAM_END && zs.avail_out == 1) {
                break;
            }
            st = td_err_set(err, TD_TOO_LARGE, "decompressed body exceeds the limit of %zu bytes",
                            max_out);
            break;
        }
        if (o->len == o->cap) {
            /* max_out - len > 0 here, so the buffer always grows */
            size_t want = o->len + (next < max_out - o->len ? next : max_out - o->len);
            if (!o->grow(o, want)) {
                st = td_err_set(err, TD_NOMEM, "out of memory decompressing body");
                break;
            }
            next = o->cap; /* doubling from here on */
        }
        size_t room = o->cap - o->len;
        if (room > max_out - o->len) {
            room = max_out - o->len;
        }
        if (room > UINT_MAX) {
            room = UINT_MAX;
        }
        zs.next_out = (Bytef *)o->buf + o->len;
        zs.avail_out = (uInt)room;
        int rc = inflate(&zs, Z_NO_FLUSH);
        o->len += room - zs.avail_out;
        if (rc == Z_STREAM_END) {
            break;
        }
        if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
            st = td_err_set(err, TD_INVALID, "gzip body is truncated");
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            st = td_err_set(err, TD_INVALID, "gzip body is corrupt: %s",
                            zs.msg ? zs.msg : "bad data");
            break;
        }
    }
    inflateEnd(&zs);
    return st;
}

/* ---- into a td_buf ---- */

typedef struct buf_out {
    td_buf *b;
    size_t start; /* where the output begins in b */
} buf_out;

static bool grow_buf(zout *o, size_t want)
{
    buf_out *bo = o->ud;
    td_buf *b = bo->b;
    b->len = bo->start + o->len;
    if (!td_buf_try_grow(b, want - o->len)) {
        return false;
    }
    o->buf = b->data + bo->start;
    o->cap = b->cap - 1 - bo->start; /* keep room for the NUL */
    return true;
}

td_status td_gunzip(const void *in, size_t len, size_t max_out, td_buf *out, td_err *err)
{
    buf_out bo = {out, out->len};
    zout o = {out->data + out->len, 0, 0, grow_buf, &bo};
    td_status st = inflate_to(in, len, max_out, &o, err);
    if (o.len) {
        td_buf_setlen(out, bo.start + o.len);
    }
    return st;
}

/* ---- into an arena ---- */

static bool grow_arena(zout *o, size_t want)
{
    char *p = td_arena_alloc(o->ud, want);
    if (!p) {
        return false;
    }
    if (o->len) {
        memcpy(p, o->buf, o->len);
    }
    o->buf = p;
    o->cap = want;
    return true;
}

td_status td_gunzip_arena(const void *in, size_t len, size_t max_out, td_arena *a, td_slice *out,
                          td_err *err)
{
    zout o = {NULL, 0, 0, grow_arena, a};
    td_status st = inflate_to(in, len, max_out, &o, err);
    *out = st ? (td_slice){"", 0} : (td_slice){o.buf ? o.buf : "", o.len};
    return st;
}

/* ---- encoding ---- */

td_status td_gzip(const void *in, size_t len, td_buf *out, td_err *err)
{
    z_stream zs = {0};
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return td_err_set(err, TD_NOMEM, "cannot initialise gzip encoder");
    }
    size_t bound = deflateBound(&zs, (uLong)len);
    if (!td_buf_try_grow(out, bound)) {
        deflateEnd(&zs);
        return td_err_set(err, TD_NOMEM, "out of memory compressing body");
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    out->len += bound - zs.avail_out;
    out->data[out->len] = '\0';
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? TD_OK : td_err_set(err, TD_INTERNAL, "gzip encoding failed");
}
