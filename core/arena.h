/*
 * arena.h - per-request bump allocator (STYLE rule 5).
 *
 * Each ingest or query request owns one td_arena. Allocations are never freed
 * one by one; td_arena_release drops them all. An optional byte limit bounds how
 * much one request may use: past it td_arena_alloc returns NULL, which callers
 * report as TD_TOO_LARGE or TD_NOMEM.
 *
 * Chunk reuse: td_arena_release does not hand its chunks straight back to
 * malloc but to a small cache owned by the calling thread (at most
 * TD_ARENA_CACHE_BYTES and TD_ARENA_CACHE_CHUNKS), and the next arena on that
 * thread takes them from there. A thread serving one request after another thus
 * keeps reusing the same, already faulted-in memory instead of mapping, zeroing
 * and unmapping fresh pages per request (chunks of a few hundred KiB are mmap'd
 * by glibc). The cache is freed when the thread exits, or earlier with
 * td_arena_cache_release. Taking a chunk from the cache counts as an allocation
 * for td_mem_fail_after exactly like the td_malloc it replaces, and `used` and the
 * limit count the chunk size asked for, not the size of a reused chunk, so an
 * arena behaves the same whether its memory is fresh or reused. Under
 * AddressSanitizer cached chunks are poisoned.
 *
 * Thread-safety: an arena belongs to one thread at a time; it may be released
 * on another thread than the one that filled it (its chunks then go to that
 * thread's cache). The cache functions act on the calling thread's cache only.
 */
#ifndef TD_ARENA_H
#define TD_ARENA_H

#include <stddef.h>

typedef struct td_arena_chunk td_arena_chunk;

typedef struct td_arena {
    td_arena_chunk *head;
    char *cur;       /* next free byte in head */
    char *end;       /* end of head */
    size_t used;     /* bytes taken for this arena (chunk sizes asked for), all chunks */
    size_t limit;    /* 0 = unlimited */
    size_t chunk_sz; /* default chunk size */
} td_arena;

/* Bounds of one thread's cache of released chunks (chunk headers included). */
#define TD_ARENA_CACHE_BYTES (4u * 1024 * 1024)
#define TD_ARENA_CACHE_CHUNKS 32

/* Set up an empty arena; nothing is allocated until the first td_arena_alloc. */
void td_arena_init(td_arena *a, size_t chunk_size, size_t limit);
/* Drop every chunk (into the thread's cache, or free); the arena is empty and usable again. */
void td_arena_release(td_arena *a);

/* 16-byte aligned memory, or NULL when out of memory or over the limit. */
void *td_arena_alloc(td_arena *a, size_t n);
/* Zeroed variant; also NULL on count*size overflow. */
void *td_arena_calloc(td_arena *a, size_t count, size_t size);
/* Copy of s[0..n) plus a NUL, or NULL. */
char *td_arena_strndup(td_arena *a, const char *s, size_t n);
void *td_arena_memdup(td_arena *a, const void *p, size_t n);

/* Free the calling thread's cached chunks now (a thread that exits does this itself). */
void td_arena_cache_release(void);
/* Bytes held in the calling thread's cache, chunk headers included (tests, diagnostics). */
size_t td_arena_cache_bytes(void);

#endif
