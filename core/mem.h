/*
 * mem.h - allocation with a fault-injection hook, and checked size arithmetic.
 *
 * td_malloc/td_calloc/td_realloc return NULL on failure (including injected
 * failures) and must be checked; use them for any size that comes from the wire.
 * td_xmalloc & co abort on OOM and are for small fixed-size allocations only
 * (STYLE rule 4). Everything is released with td_free.
 *
 * Thread-safety: all functions are thread-safe; td_mem_fail_after is a test hook
 * meant to be set while a single test thread runs.
 */
#ifndef TD_MEM_H
#define TD_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *td_malloc(size_t n);
void *td_calloc(size_t count, size_t size);
void *td_realloc(void *p, size_t n);
void td_free(void *p);

void *td_xmalloc(size_t n);
void *td_xcalloc(size_t count, size_t size);
void *td_xrealloc(void *p, size_t n);
char *td_xstrdup(const char *s);
char *td_xstrndup(const char *s, size_t n);

/*
 * Make the Nth td_malloc/td_calloc/td_realloc from now fail (1 = the next one);
 * 0 disables injection. Returns whether an injected failure happened since the
 * last call (so a countdown test knows when the code under test ran out of
 * allocations to fail).
 */
bool td_mem_fail_after(long n);

/*
 * For allocators that hand out memory they already hold (the arena's chunk
 * cache): count one allocation against td_mem_fail_after's countdown, as
 * td_malloc would, and return true when this one must fail.
 */
bool td__mem_inject_failure(void);

/* Checked arithmetic: return false (and leave *out untouched) on overflow. */
static inline bool td_size_add(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
static inline bool td_size_mul(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* Abort with file:line for a broken invariant (a bug, never a bad input). */
#define TD_BUG(msg) td__bug(__FILE__, __LINE__, msg)
#define TD_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            td__bug(__FILE__, __LINE__, "assertion failed: " #cond);                               \
        }                                                                                          \
    } while (0)
_Noreturn void td__bug(const char *file, int line, const char *msg);

#endif
