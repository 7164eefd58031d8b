#include "arena.h"

#include "mem.h"

#include <string.h>

struct td_arena_chunk {
    td_arena_chunk *next;
    size_t size;
    /* payload follows, aligned by the union below */
    _Alignas(16) char data[];
};

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
        td_free(c);
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
    td_arena_chunk *c = td_malloc(total);
    if (!c) {
        return NULL;
    }
    c->size = size;
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
