/* The access log: one JSON line per request, written when it is over (log.access_log). */
#ifndef AIROUTER_ACCESS_LOG_H
#define AIROUTER_ACCESS_LOG_H
#include "worker/core/request.h"

/* Writes req's line (nothing when the access log is off). gRPC calls get the keys their
 * protocol has (grpc_status, no bytes or ttfb). */
void access_log_write(const request_t *req);

#endif
