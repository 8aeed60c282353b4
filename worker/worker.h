/* A worker process: serves HTTP on the inherited listen socket until told to stop. */
#ifndef AIROUTER_WORKER_H
#define AIROUTER_WORKER_H
#include <sys/types.h>

#include "common/config.h"

/* The value the master queues with the SIGQUIT of a whole-service stop (sigqueue), so that a
 * worker knows no other worker will take its clients' next requests. */
#define WORKER_QUIT_FINAL 1

/* Runs in the child after fork. metrics_fd: separate /metrics socket or -1. ready_fd gets one byte once the worker serves
 * (then is closed). Returns the process exit status. */
int worker_run(const cfg_t *cfg, int listen_fd, int metrics_fd, int ready_fd, pid_t master_pid);

#endif
