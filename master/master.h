/* The master process: binds, forks and supervises workers, reacts to signals. */
#ifndef AIROUTER_MASTER_H
#define AIROUTER_MASTER_H
#include "common/config.h"

/* Binds a "host:port" listen address (already split); returns the socket or -1 (logged). */
int master_bind(const char *listen_spec, const char *host, const char *port);
/* Supervises until stopped. Takes ownership of cfg, listen_fd and metrics_fd (-1: none).
 * workers_override: 0 = use the config's count. Returns the exit status. */
int master_run(cfg_t *cfg, int listen_fd, int metrics_fd, int workers_override, const char *pidfile);

#endif
