/* jemalloc gives each thread a cache of freed blocks, refilled in batches from the shared
 * arenas. With a thread per connection, those caches held about 90 KB for every open stream
 * (make capacity), most of it blocks that only that thread could reuse. Threads can do
 * without one: their blocks then come from the arenas directly, a little slower. */
#include "worker/core/mem.h"

#include <stdbool.h>
#include <stddef.h>

/* jemalloc's control interface; NULL when another allocator is linked. */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

void mem_thread_without_cache(void)
{
    if (!mallctl)
        return;
    bool enabled = false;
    mallctl("thread.tcache.enabled", NULL, NULL, &enabled, sizeof enabled);
}
