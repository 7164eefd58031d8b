/*
 * hex.h - hexadecimal digits and fixed-length hex IDs (span and trace IDs).
 *
 * Header-only: two small pure functions used by the profiler's series labels
 * and the Pyroscope query API, which must accept exactly the same IDs.
 *
 * Thread-safety: pure functions; reentrant and async-signal-safe.
 */
#ifndef TD_HEX_H
#define TD_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The value of hex digit c (0-9, a-f, A-F), or -1 for any other character. */
static inline int td_hex_val(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/*
 * Decode the NUL-terminated s, which must be exactly 2 * n hex digits (either
 * case), into out[0..n). Returns false, with out partly written, otherwise.
 */
static inline bool td_hex_decode(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = td_hex_val(s[2 * i]), lo = td_hex_val(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

#endif
