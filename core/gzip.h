/*
 * gzip.h - bounded gzip/deflate decoding and gzip encoding (zlib).
 *
 * Thread-safety: reentrant.
 */
#ifndef TD_GZIP_H
#define TD_GZIP_H

#include "arena.h"
#include "buf.h"
#include "status.h"

/*
 * Inflate a gzip (or zlib) stream in[0..len) and append to out. Output larger
 * than max_out -> TD_TOO_LARGE (so gzip bombs stop at the limit); corrupt or
 * truncated input -> TD_INVALID; TD_NOMEM. On error out may hold partial data.
 * The output is sized up front from the gzip trailer (see td_gunzip_arena).
 */
td_status td_gunzip(const void *in, size_t len, size_t max_out, td_buf *out, td_err *err);

/*
 * Same, but the output is allocated in a (out->ptr, valid until the arena is
 * released; out->len bytes, not NUL-terminated). The first buffer has the size
 * the gzip trailer announces (ISIZE), believed only up to max_out and to what
 * deflate can expand len bytes to, so a well-formed single-member body is
 * inflated with one allocation and no copy; otherwise the buffer doubles (the
 * old one stays in the arena until it is released). Errors as td_gunzip, plus
 * TD_NOMEM when the arena refuses memory; *out is then empty.
 */
td_status td_gunzip_arena(const void *in, size_t len, size_t max_out, td_arena *a, td_slice *out,
                          td_err *err);

/* Gzip in[0..len) appending to out (level 1, favouring speed). */
td_status td_gzip(const void *in, size_t len, td_buf *out, td_err *err);

#endif
