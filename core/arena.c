#include "arena.h"

#include "mem.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define TD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TD_ASAN 1
#endif
#endif
#ifdef TD_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct td_arena_chunk {
    td_arena_chunk *next;
    size_t cap; /* usable bytes behind data; an arena may use fewer (see td_arena_alloc) */
    _Alignas(16) char data[];
};

/*
 * Chunks from this size on are rounded up to whole pages: glibc serves them with
 * mmap (main.c fixes its threshold at 256 KiB), which maps whole pages anyway,
 * and chunks of nearly the same size (one request's body and decode chunks are
 * all about its length) then fit each other. Smaller chunks come from malloc's
 * heap, where rounding would only waste memory.
 */
#define ROUND_FROM (256 * 1024)
#define ROUND_TO 4096

/* ---- the thread's chunk cache ---- */

/*
 * Per-thread state, not shared: each thread only ever touches its own cache, so
 * no locking. The key exists only for its destructor, which frees the cache when
 * the thread exits; it is created once and never changes afterwards.
 */
typedef struct chunk_cache {
    td_arena_chunk *free; /* released chunks, most recent first */
    size_t bytes;         /* their allocation sizes, headers included */
    unsigned n;
    bool armed; /* the thread-exit destructor is registered */
} chunk_cache;

static _Thread_local chunk_cache tl_cache;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static bool cache_key_ok;

static void cache_free_all(chunk_cache *cc)
{
    td_arena_chunk *c = cc->free;
    while (c) {
        td_arena_chunk *next = c->next;
        UNPOISON(c->data, c->cap);
        td_free(c);
        c = next;
    }
    cc->free = NULL;
    cc->bytes = 0;
    cc->n = 0;
    cc->armed = false; /* pthread cleared the key's value before calling us */
}

static void cache_on_thread_exit(void *p)
{
    cache_free_all(p);
}

static void cache_make_key(void)
{
    cache_key_ok = pthread_key_create(&cache_key, cache_on_thread_exit) == 0;
}

/* Make sure the cache is freed at thread exit; false: no caching on this thread. */
static bool cache_arm(chunk_cache *cc)
{
    if (cc->armed) {
        return true;
    }
    pthread_once(&cache_once, cache_make_key);
    if (!cache_key_ok || pthread_setspecific(cache_key, cc) != 0) {
        return false;
    }
    cc->armed = true;
    return true;
}

/* Keep c for this thread's next arenas, or free it when the cache is full. */
static void chunk_put(td_arena_chunk *c)
{
    chunk_cache *cc = &tl_cache;
    size_t bytes = c->cap + sizeof(*c);
    if (cc->n >= TD_ARENA_CACHE_CHUNKS || bytes > TD_ARENA_CACHE_BYTES - cc->bytes ||
        !cache_arm(cc)) {
        td_free(c);
        return;
    }
    POISON(c->data, c->cap);
    c->next = cc->free;
    cc->free = c;
    cc->bytes += bytes;
    cc->n++;
}

/*
 * A chunk with at least size usable bytes: the smallest cached one that is not
 * more than twice too big, else a new one. A cache hit goes through the same
 * fault injection as td_malloc. Only data[0..size) is made usable.
 */
static td_arena_chunk *chunk_get(size_t size, size_t total)
{
    chunk_cache *cc = &tl_cache;
    td_arena_chunk **best = NULL;
    for (td_arena_chunk **pp = &cc->free; *pp; pp = &(*pp)->next) {
        size_t cap = (*pp)->cap;
        if (cap >= size && cap / 2 <= size && (!best || cap < (*best)->cap)) {
            best = pp;
            if (cap == size) {
                break;
            }
        }
    }
    td_arena_chunk *c;
    if (best) {
        if (td__mem_inject_failure()) {
            return NULL;
        }
        c = *best;
        *best = c->next;
        cc->bytes -= c->cap + sizeof(*c);
        cc->n--;
    } else {
        size_t alloc = total; /* td_size_add leaves it alone on overflow */
        if (total >= ROUND_FROM && td_size_add(total, ROUND_TO - 1, &alloc)) {
            alloc &= ~(size_t)(ROUND_TO - 1);
        }
        c = td_malloc(alloc);
        if (!c) {
            return NULL;
        }
        c->cap = alloc - sizeof(*c);
        POISON(c->data, c->cap);
    }
    UNPOISON(c->data, size);
    return c;
}

void td_arena_cache_release(void)
{
    bool armed = tl_cache.armed;
    cache_free_all(&tl_cache);
    tl_cache.armed = armed; /* the key still points at this cache */
}

size_t td_arena_cache_bytes(void)
{
    return tl_cache.bytes;
}

/* ---- the arena ---- */

void td_arena_init(td_arena *a, size_t chunk_size, size_t limit)
{
    a->head = NULL;
    a->cur = a->end = NULL;
    a->used = 0;
    a->limit = limit;
    a->chunk_sz = chunk_size ? chunk_size : 16384;
}

void td_arena_release(td_arena *a)
{
    td_arena_chunk *c = a->head;
    while (c) {
        td_arena_chunk *next = c->next;
        chunk_put(c);
        c = next;
    }
    td_arena_init(a, a->chunk_sz, a->limit);
}

void *td_arena_alloc(td_arena *a, size_t n)
{
    size_t need;
    if (!td_size_add(n, 15, &need)) {
        return NULL;
    }
    need &= ~(size_t)15;
    if (need == 0) {
        need = 16;
    }
    if (a->cur && (size_t)(a->end - a->cur) >= need) {
        void *p = a->cur;
        a->cur += need;
        return p;
    }
    /* Big requests get a chunk of their own so the current chunk is not wasted. */
    size_t size = need > a->chunk_sz / 4 ? need : a->chunk_sz;
    size_t total;
    if (!td_size_add(size, sizeof(td_arena_chunk), &total)) {
        return NULL;
    }
    if (a->limit && (a->used + total > a->limit || total > a->limit)) {
        return NULL;
    }
    td_arena_chunk *c = chunk_get(size, total);
    if (!c) {
        return NULL;
    }
    /* the arena counts and uses what it asked for, even in a bigger reused chunk */
    a->used += total;
    if (size == a->chunk_sz || !a->head) {
        c->next = a->head;
        a->head = c;
        a->cur = c->data + need;
        a->end = c->data + size;
    } else {
        /* keep bump pointer on the current chunk; link the big one behind it */
        c->next = a->head->next;
        a->head->next = c;
    }
    return c->data;
}

void *td_arena_calloc(td_arena *a, size_t count, size_t size)
{
    size_t n;
    if (!td_size_mul(count, size, &n)) {
        return NULL;
    }
    void *p = td_arena_alloc(a, n);
    if (p) {
        memset(p, 0, n);
    }
    return p;
}

char *td_arena_strndup(td_arena *a, const char *s, size_t n)
{
    size_t total;
    if (!td_size_add(n, 1, &total)) {
        return NULL;
    }
    char *p = td_arena_alloc(a, total);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void *td_arena_memdup(td_arena *a, const void *p, size_t n)
{
    void *q = td_arena_alloc(a, n);
    if (q && n) {
        memcpy(q, p, n);
    }
    return q;
}
