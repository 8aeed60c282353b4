#include "common/slots.h"

#include <stdio.h>
#include <string.h>

int slots_find_or_add(char *names, size_t stride, size_t width, int first, int *n, int max, const char *name)
{
    for (int i = first; i < *n; i++)
        if (strncmp(names + (size_t)i * stride, name, width - 1) == 0)
            return i;
    if (*n >= max)
        return -1;
    snprintf(names + (size_t)*n * stride, width, "%s", name);
    int slot = *n;
    __atomic_store_n(n, slot + 1, __ATOMIC_RELEASE);
    return slot;
}
