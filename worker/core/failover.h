/* Retries and failover across a model's targets and fallbacks. */
#ifndef AIROUTER_FAILOVER_H
#define AIROUTER_FAILOVER_H
#include <stdbool.h>
#include <stdint.h>

#include "worker/backend/backend.h"
#include "worker/http/http.h"

/* One try against one target: either an answer (or a final error) has been queued
 * (TRY_ANSWERED), or the try failed before anything reached the client (TRY_FAILED,
 * the failure in *ev) and it may be retried elsewhere. */
typedef enum { TRY_ANSWERED, TRY_FAILED } try_result_t;
typedef try_result_t (*failover_try_fn)(request_t *req, const void *job, const cfg_model_t *m, bool is_fallback,
                                        const cfg_target_t *t, be_event_t *ev, enum MHD_Result *rc);

/* Tries targets until one answers or the policy says stop, then answers the client
 * (the last error, or 503 model_unavailable when no target was usable). */
enum MHD_Result failover_dispatch(request_t *req, const void *job, const cfg_model_t *model, failover_try_fn fn);
/* Answers with a backend failure (nothing, and MHD_NO, when the client left). */
enum MHD_Result failover_respond_error(request_t *req, const be_event_t *ev);
/* Whether a failed try may be retried under the retry policy. */
bool failover_retryable(const be_event_t *ev);
/* Records a try's outcome (answered, or failed with ev) in the target's circuit. */
void failover_account(const cfg_target_t *t, const be_event_t *ev, bool answered, uint64_t now);
/* Counts a failed backend call in the metrics (a departed client is not one). */
void failover_count_error(const request_t *req, be_error_t err);

#endif
