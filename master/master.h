/* The master process: binds, forks and supervises workers, reacts to signals. */
#ifndef AIROUTER_MASTER_H
#define AIROUTER_MASTER_H
#include "../common/config.h"

/* Binds cfg's listen address; returns the socket or -1 (logged). */
int master_bind(const cfg_t *cfg);
/* Supervises until stopped. Takes ownership of cfg and listen_fd. workers_override:
 * 0 = use the config's count. Returns the exit status. */
int master_run(cfg_t *cfg, int listen_fd, int workers_override, const char *pidfile);

#endif
