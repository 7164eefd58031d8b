#include "mem.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Countdown for injected failures; <= 0 means off. */
static atomic_long fail_countdown;
static atomic_bool fail_happened;

static bool inject(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n <= 0) {
        return false;
    }
    if (atomic_fetch_sub(&fail_countdown, 1) == 1) {
        atomic_store(&fail_happened, true);
        return true;
    }
    return false;
}

bool td__mem_inject_failure(void)
{
    return inject();
}

bool td_mem_fail_after(long n)
{
    atomic_store(&fail_countdown, n);
    return atomic_exchange(&fail_happened, false);
}

void *td_malloc(size_t n)
{
    return inject() ? NULL : malloc(n ? n : 1);
}

void *td_calloc(size_t count, size_t size)
{
    return inject() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *td_realloc(void *p, size_t n)
{
    return inject() ? NULL : realloc(p, n ? n : 1);
}

void td_free(void *p)
{
    free(p);
}

_Noreturn void td__bug(const char *file, int line, const char *msg)
{
    fprintf(stderr, "BUG at %s:%d: %s\n", file, line, msg);
    abort();
}

static void *oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *td_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *td_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    return p ? p : oom(count * size);
}

void *td_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *td_xstrndup(const char *s, size_t n)
{
    char *p = td_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *td_xstrdup(const char *s)
{
    return td_xstrndup(s, strlen(s));
}
