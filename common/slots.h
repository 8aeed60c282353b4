/* Name tables in shared memory: the master gives each configured name a slot, keeping the
 * slots of names seen before, so counters survive reloads. */
#ifndef AIROUTER_SLOTS_H
#define AIROUTER_SLOTS_H
#include <stddef.h>

/* Finds name among the *n names of a table (each name a NUL-terminated string of at most
 * width - 1 bytes, stride bytes apart), looking from index first on, or adds it as entry *n.
 * Names are compared and stored cut to width - 1 bytes. Returns the slot, or -1 when the
 * table already has max entries. *n is published after the name is written. */
int slots_find_or_add(char *names, size_t stride, size_t width, int first, int *n, int max, const char *name);

#endif
