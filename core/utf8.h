/*
 * utf8.h - decode and encode one UTF-8 character.
 *
 * The one UTF-8 codec behind the regex translator, the TraceQL lexer and
 * formatter, and the Pyroscope label-selector parser, so that all of them
 * accept and produce exactly the same bytes.
 *
 * Thread-safety: pure functions; reentrant.
 */
#ifndef TD_UTF8_H
#define TD_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decode one UTF-8 character at p (n bytes available): its length (1-4), or 0
 * when the bytes are not valid UTF-8 (overlong, surrogate, > U+10FFFF, cut).
 * *cp is set only on success.
 */
size_t td_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

/*
 * Write code point cp (at most U+10FFFF; the caller checks) as UTF-8 at out,
 * which has room for 4 bytes; returns the number of bytes written (1-4). No
 * NUL is written.
 */
size_t td_utf8_encode(char *out, uint32_t cp);

#endif
