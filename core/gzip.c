#include "gzip.h"

#include <zlib.h>

td_status td_gunzip(const void *in, size_t len, size_t max_out, td_buf *out, td_err *err)
{
    z_stream zs = {0};
    /* 15 + 32: auto-detect gzip or zlib header */
    if (inflateInit2(&zs, 15 + 32) != Z_OK) {
        return td_err_set(err, TD_NOMEM, "cannot initialise gzip decoder");
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    size_t start = out->len;
    td_status st = TD_OK;
    for (;;) {
        size_t produced = out->len - start;
        if (produced >= max_out) {
            /* one more byte would exceed: probe if the stream really has more */
            unsigned char probe;
            zs.next_out = &probe;
            zs.avail_out = 1;
            int rc = inflate(&zs, Z_NO_FLUSH);
            if (rc == Z_STREAM_END && zs.avail_out == 1) {
                break;
            }
            st = td_err_set(err, TD_TOO_LARGE,
                            "decompressed body exceeds the limit of %zu bytes", max_out);
            break;
        }
        size_t chunk = max_out - produced;
        if (chunk > 256 * 1024) {
            chunk = 256 * 1024;
        }
        if (!td_buf_try_grow(out, chunk)) {
            st = td_err_set(err, TD_NOMEM, "out of memory decompressing body");
            break;
        }
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)chunk;
        int rc = inflate(&zs, Z_NO_FLUSH);
        out->len += chunk - zs.avail_out;
        out->data[out->len] = '\0';
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
