/*
 * buf.h - td_buf, the one owning growable byte buffer, and td_slice, a borrowed view.
 *
 * td_buf invariants (as git's strbuf): after td_buf_init, data is never NULL and
 * data[len] == '\0'; the only way to take the memory out is td_buf_detach.
 * Appends of small, program-chosen sizes abort on OOM; td_buf_try_grow is the
 * checked variant for sizes that come from the wire.
 *
 * Thread-safety: a td_buf belongs to one thread at a time.
 */
#ifndef TD_BUF_H
#define TD_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct td_buf {
    char *data;
    size_t len;
    size_t cap;
} td_buf;

typedef struct td_slice {
    const char *ptr;
    size_t len;
} td_slice;

#define TD_BUF_INIT {td__buf_empty, 0, 0}
extern char td__buf_empty[];

#define TD_SLICE_LIT(s) ((td_slice){(s), sizeof(s) - 1})
static inline td_slice td_slice_of(const void *p, size_t n)
{
    return (td_slice){(const char *)p, n};
}
static inline td_slice td_slice_str(const char *s)
{
    return (td_slice){s, strlen(s)};
}
static inline bool td_slice_eq(td_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && memcmp(a.ptr, s, n) == 0;
}

void td_buf_init(td_buf *b, size_t hint);
/* Free the memory and return b to the initialised, empty state. */
void td_buf_release(td_buf *b);
/* Keep the memory, set len to 0. */
void td_buf_reset(td_buf *b);
/* Ensure room for `extra` more bytes (plus the NUL). Aborts on OOM. */
void td_buf_grow(td_buf *b, size_t extra);
/* Same, but returns false instead of aborting when extra is absurd or memory is out. */
bool td_buf_try_grow(td_buf *b, size_t extra);
/* Return the data (heap, NUL-terminated, caller frees with td_free) and reinit b. */
char *td_buf_detach(td_buf *b, size_t *len);

void td_buf_add(td_buf *b, const void *p, size_t n);
void td_buf_addstr(td_buf *b, const char *s);
void td_buf_addch(td_buf *b, char c);
void td_buf_addf(td_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void td_buf_setlen(td_buf *b, size_t len);

static inline td_slice td_buf_slice(const td_buf *b)
{
    return (td_slice){b->data, b->len};
}

/* Lowercase hex of n bytes appended to b. */
void td_buf_addhex(td_buf *b, const uint8_t *p, size_t n);

#endif
