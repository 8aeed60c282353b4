/* The one failover loop: tries a model's targets, then its fallbacks, under the retry policy
 * (attempts, back-off, deadline, a backend's Retry-After), keeping the shared circuit state up
 * to date, and says what happened; each front end turns that into its own answer. Every wait
 * ends at once when the client leaves. */
#ifndef AIROUTER_FAILOVER_H
#define AIROUTER_FAILOVER_H
#include <stdbool.h>

#include "worker/backend/backend.h"
#include "worker/core/request.h"

/* One try against one target: either the client has its answer, or an answer has begun that
 * will end on its own (TRY_ANSWERED), or the try failed before anything reached the client
 * (TRY_FAILED, the failure in *ev) and may be retried elsewhere. */
typedef enum { TRY_ANSWERED, TRY_FAILED } try_result_t;
/* A try of job against target t of model m (a fallback of the model routed to when is_fallback). */
typedef try_result_t (*failover_try_fn)(request_t *req, void *job, const cfg_model_t *m, bool is_fallback,
                                        const cfg_target_t *t, be_event_t *ev);

typedef enum {
    FAILOVER_ANSWERED,    /* a try answered */
    FAILOVER_FAILED,      /* the tries failed: *last is the last failure, req->retry_after_s its Retry-After */
    FAILOVER_NO_TARGET,   /* no target could be tried: req->retry_after_s says when one may be */
    FAILOVER_CLIENT_GONE, /* the client left */
} failover_outcome_t;

/* Tries job on the targets of model (req->model_routed), then of its fallbacks, until one
 * answers or the policy says stop. error_reason is set unless a try answered. */
failover_outcome_t failover_run(request_t *req, void *job, const cfg_model_t *model, failover_try_fn try_target,
                                be_event_t *last);
/* Counts a failed backend call in the metrics (a departed client is not one). */
void failover_count_error(const request_t *req, be_error_t err);

#endif
