/* One upstream try, the skeleton every try follows whatever it relays: hold the target's
 * in-flight slot, begin the try's span, open the backend call, pull its events into the
 * caller's sink, close the call, end the span. The sink decides what the events become (a
 * JSON answer, a byte relay, gRPC messages); it may also keep the call open and hand it to a
 * relay that ends it later (upstream_end). */
#ifndef AIROUTER_UPSTREAM_H
#define AIROUTER_UPSTREAM_H
#include <stdbool.h>

#include "worker/backend/backend.h"
#include "worker/core/failover.h"
#include "worker/core/request.h"
#include "worker/oai/oai_shape.h"

typedef struct {
    request_t *req;              /* NULL once the request is gone (a relay outliving it) */
    const cfg_backend_t *backend;
    const backend_ops_t *ops;
    const char *backend_model;   /* what the target calls the model; NULL: the request's body says */
    bool raw;                    /* relayed as bytes: open_raw and next_raw */
    be_call_t *call;             /* open call; NULL before and once ended */
    int target_slot;             /* its in-flight count is held while the call is open */
    int try_index;               /* the try's span (trace_try_begin), -1: none */
    char traceparent[64];        /* what the backend is sent */
} upstream_t;

typedef enum {
    UPSTREAM_MORE,     /* pull the next event */
    UPSTREAM_ANSWERED, /* the client has its answer: close (an ERROR event in ev: the answer broke after it began) */
    UPSTREAM_FAILED,   /* nothing reached the client: ev holds the failure (an ERROR event); close */
    UPSTREAM_KEEP,     /* answered, and the call goes on in the sink's hands (a copy of *u): not closed here */
} upstream_step_t;

/* Takes one event of the call (never PENDING: waits are the skeleton's; a client that left or
 * whose deadline passed comes as an ERROR event). Owns ev->obj. */
typedef upstream_step_t (*upstream_sink_fn)(void *sink, upstream_t *u, be_event_t *ev);

/* Starts a try of req on target t of model m (a fallback when is_fallback): counts the attempt,
 * notes the backend and the model name it gets in req and u. Returns -1 with ev filled when the
 * backend's type cannot make the call (raw: relayed as bytes); nothing is held then. */
int upstream_begin(upstream_t *u, request_t *req, const cfg_model_t *m, bool is_fallback, const cfg_target_t *t,
                   bool raw, be_event_t *ev);
/* Runs the call: call (a be_request_t, or a be_raw_request_t when u->raw) gets the request's
 * id, key, traceparent and client socket filled in, and is opened; events go to sink until it
 * says otherwise. A client that leaves, or whose deadline passes, reaches the sink as an error
 * (BE_ERR_CLIENT_GONE, BE_ERR_TIMEOUT). */
try_result_t upstream_run(upstream_t *u, void *call, upstream_sink_fn sink, void *ctx, be_event_t *ev);
/* A sink that gathers a whole answer: one response, or a backend stream folded into one (its text
 * at most CFG_MAX_ANSWER_BYTES). Start it zeroed but for kind; once the try answered, result holds
 * the answer. upstream_whole_free frees what it holds. */
typedef struct {
    unsigned kind;
    shape_agg_t *agg;
    json_object *result;
    buf_t text;           /* or, when the backend handed it out so (answer_text), its JSON text */
} upstream_whole_t;
upstream_step_t upstream_take_whole(void *whole, upstream_t *u, be_event_t *ev);
void upstream_whole_free(upstream_whole_t *w);

/* Ends a call kept by a sink (nothing if already ended): closes it, gives the target's slot back,
 * ends the span with error (NULL: the request's own backend error, if it has one). */
void upstream_end(upstream_t *u, const char *error);

#endif
