/*
 * arena.h - per-request bump allocator (STYLE rule 5).
 *
 * Each ingest or query request owns one td_arena. Allocations are never freed
 * one by one; td_arena_release drops them all. An optional byte limit bounds how
 * much one request may use: past it td_arena_alloc returns NULL, which callers
 * report as TD_TOO_LARGE or TD_NOMEM.
 *
 * Thread-safety: an arena belongs to one thread at a time.
 */
#ifndef TD_ARENA_H
#define TD_ARENA_H

#include <stddef.h>

typedef struct td_arena_chunk td_arena_chunk;

typedef struct td_arena {
    td_arena_chunk *head;
    char *cur;       /* next free byte in head */
    char *end;       /* end of head */
    size_t used;     /* bytes taken from the system, all chunks */
    size_t limit;    /* 0 = unlimited */
    size_t chunk_sz; /* default chunk size */
} td_arena;

/* Set up an empty arena; nothing is allocated until the first td_arena_alloc. */
void td_arena_init(td_arena *a, size_t chunk_size, size_t limit);
/* Free every chunk; the arena is empty and usable again afterwards. */
void td_arena_release(td_arena *a);

/* 16-byte aligned memory, or NULL when out of memory or over the limit. */
void *td_arena_alloc(td_arena *a, size_t n);
/* Zeroed variant; also NULL on count*size overflow. */
void *td_arena_calloc(td_arena *a, size_t count, size_t size);
/* Copy of s[0..n) plus a NUL, or NULL. */
char *td_arena_strndup(td_arena *a, const char *s, size_t n);
void *td_arena_memdup(td_arena *a, const void *p, size_t n);

#endif
