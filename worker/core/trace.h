/* OpenTelemetry traces: one SERVER span per API request and a CLIENT child span for
 * its backend call, exported as OTLP/JSON over HTTP by a per-worker thread with a
 * bounded queue, so a slow or dead collector never delays a request. */
#ifndef AIROUTER_TRACE_H
#define AIROUTER_TRACE_H
#include <stdbool.h>

#include "common/config.h"
#include "worker/core/request.h"

/* Starts the exporter thread when tracing is configured. */
int trace_start(const cfg_t *cfg);
/* Exports what is queued (bounded wait) and stops the thread. */
void trace_stop(void);

/* Sets the request's trace and span ids, continuing the client's traceparent (NULL: none) when it
 * is valid. An HTTP request's span describes its method, path and status; a gRPC call's its
 * method name (path) and grpc_code. */
void trace_begin(request_t *req, const char *traceparent);
/* Starts recording a backend try (its span id, start time). Returns its index, -1 if
 * no more are recorded. */
int trace_try_begin(request_t *req, const cfg_backend_t *backend, const char *backend_model);
/* Ends the try (error: "" when it succeeded). */
void trace_try_end(request_t *req, int index, const char *error);
/* The traceparent to send to the backend for try index (out: at least 56 bytes); "" if none. */
void trace_backend_header(const request_t *req, int index, char *out, size_t size);
/* Queues the request's spans (no-op when tracing is off). */
void trace_request_done(const request_t *req);

#endif
