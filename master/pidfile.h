/* The master's pidfile: written atomically, refused while a live master owns it. */
#ifndef AIROUTER_PIDFILE_H
#define AIROUTER_PIDFILE_H
#include <sys/types.h>

/* The pid in path if that process is alive, else 0. */
pid_t pidfile_read_live(const char *path);
/* Writes our pid through a temporary file and rename. Fails if a live process owns it. */
int pidfile_write(const char *path);
/* Removes path if it still names us. */
void pidfile_remove(const char *path);

#endif
