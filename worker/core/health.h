/* Active health checks of backends. Every worker runs the thread, but only the one
 * holding the shared lease checks (so a backend is probed once per interval, not
 * once per worker); if that worker dies, another takes the lease over. */
#ifndef AIROUTER_HEALTH_H
#define AIROUTER_HEALTH_H
#include "common/config.h"

int health_start(const cfg_t *cfg);
void health_stop(void);

#endif
