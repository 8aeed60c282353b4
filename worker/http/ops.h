/* The operators' endpoints: GET /health (liveness), GET /ready (readiness) and GET /metrics. */
#ifndef AIROUTER_OPS_H
#define AIROUTER_OPS_H
#include "worker/http/http.h"

enum MHD_Result ops_health(request_t *req);
/* 503 while the worker drains or when no target of any model is usable. */
enum MHD_Result ops_ready(request_t *req);
/* The Prometheus text; to this host only unless metrics.token or metrics.listen is set. */
enum MHD_Result ops_metrics(request_t *req);

#endif
