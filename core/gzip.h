/*
 * gzip.h - bounded gzip/deflate decoding and gzip encoding (zlib).
 *
 * Thread-safety: reentrant.
 */
#ifndef TD_GZIP_H
#define TD_GZIP_H

#include "buf.h"
#include "status.h"

/*
 * Inflate a gzip (or zlib) stream in[0..len) and append to out. Output larger
 * than max_out -> TD_TOO_LARGE (so gzip bombs stop at the limit); corrupt or
 * truncated input -> TD_INVALID. On error out may hold partial data.
 */
td_status td_gunzip(const void *in, size_t len, size_t max_out, td_buf *out, td_err *err);

/* Gzip in[0..len) appending to out (level 1, favouring speed). */
td_status td_gzip(const void *in, size_t len, td_buf *out, td_err *err);

#endif
