/* Allocator settings for the worker's connection threads. */
#ifndef AIROUTER_MEM_H
#define AIROUTER_MEM_H

/* Makes the calling thread allocate without a per-thread cache. Call it before the thread
 * allocates much; a no-op when the allocator is not jemalloc (the sanitizer builds). */
void mem_thread_without_cache(void);

#endif
