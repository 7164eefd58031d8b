#include "proto.h"

static void *arena_alloc(void *ud, size_t n)
{
    return td_arena_alloc(ud, n);
}

static void arena_free(void *ud, void *p)
{
    /* arena memory is dropped all at once with the request */
    (void)ud;
    (void)p;
}

void td_proto_allocator_init(ProtobufCAllocator *pa, td_arena *a)
{
    pa->alloc = arena_alloc;
    pa->free = arena_free;
    pa->allocator_data = a;
}
