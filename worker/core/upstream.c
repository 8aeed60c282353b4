#include "worker/core/upstream.h"

#include <string.h>

#include "common/clock.h"
#include "common/state.h"
#include "worker/core/trace.h"

/* How often a client without a socket is looked at while backend events keep coming. */
#define CLIENT_LOOK_US 20000u

int upstream_begin(upstream_t *u, request_t *req, const cfg_model_t *m, bool is_fallback, const cfg_target_t *t,
                   bool raw, be_event_t *ev)
{
    const cfg_backend_t *be = &req->cfg->backends[t->backend];
    const char *asked = req->model_asked && req->model_asked[0] ? req->model_asked : NULL;
    /* A target without backend_model gets the name asked for (a fallback model: its own). */
    *u = (upstream_t){
        .req = req,
        .backend = be,
        .ops = be_lookup(be->type),
        .backend_model = t->backend_model ? t->backend_model : is_fallback ? m->name : asked,
        .raw = raw,
        .target_slot = t->state_slot,
        .try_index = -1,
    };
    req->backend_name = be->name;
    req->backend_slot = be->metric_slot;
    req->backend = be;
    req->backend_model = u->backend_model;
    req->attempts++;
    if (!u->ops) {
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL,
                       "The model's backend is not available in this build.");
        return -1;
    }
    if (raw && !u->ops->open_raw) {
        const char *shown = asked ? asked : req->model_routed ? req->model_routed : "";
        be_event_error(ev, BE_ERR_INTERNAL, 400, "invalid_request_error", "unsupported_kind",
                       "The model '%.200s' does not serve %s requests.", shown, cfg_kind_name(req->kind));
        return -1;
    }
    return 0;
}

/* Fills in what every call of the request carries. */
static void fill_call(upstream_t *u, void *call)
{
    request_t *req = u->req;
    if (u->raw) {
        be_raw_request_t *rr = call;
        rr->client_key = req->client_key;
        rr->request_id = req->id;
        rr->traceparent = u->traceparent;
        rr->client_fd = req->client.fd;
    } else {
        be_request_t *br = call;
        br->client_key = req->client_key;
        br->request_id = req->id;
        br->traceparent = u->traceparent;
        br->client_fd = req->client.fd;
    }
}

try_result_t upstream_run(upstream_t *u, void *call, upstream_sink_fn sink, void *ctx, be_event_t *ev)
{
    request_t *req = u->req;
    u->try_index = trace_try_begin(req, u->backend, u->backend_model ? u->backend_model : "");
    trace_backend_header(req, u->try_index, u->traceparent, sizeof u->traceparent);
    fill_call(u, call);
    st_target_in_flight(u->target_slot, 1);
    u->call = u->raw ? u->ops->open_raw(call, ev) : u->ops->open(call, ev);
    if (!u->call) {
        st_target_in_flight(u->target_slot, -1);
        trace_try_end(req, u->try_index, be_error_name(ev->error));
        return TRY_FAILED;
    }
    upstream_step_t step;
    uint64_t looked_us = clock_now_us();
    for (;;) {
        if (u->raw)
            u->ops->next_raw(u->call, ev, req->client.check_ms);
        else
            u->ops->next(u->call, ev, req->client.check_ms);
        /* The client is looked at while the backend is silent, and, when there is no socket for
         * the backend to watch, now and then while events keep coming. */
        uint64_t now = clock_now_us();
        if (ev->type == BE_EV_PENDING || (req->client.fd < 0 && now - looked_us >= CLIENT_LOOK_US)) {
            looked_us = now;
            const char *why = request_client_gone(req, 0) ? "gone"
                              : req->deadline_us && now > req->deadline_us ? "deadline" : NULL;
            if (why) {
                json_object_put(ev->obj);
                if (why[0] == 'g')
                    be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "client left");
                else
                    be_event_error(ev, BE_ERR_TIMEOUT, 504, "server_error", "backend_timeout",
                                   "The call's deadline passed before the model answered.");
            } else if (ev->type == BE_EV_PENDING) {
                continue;
            }
        }
        if ((step = sink(ctx, u, ev)) != UPSTREAM_MORE)
            break;
    }
    if (step == UPSTREAM_KEEP) {
        u->call = NULL; /* the sink's copy ends it */
        return TRY_ANSWERED;
    }
    upstream_end(u, step == UPSTREAM_ANSWERED && ev->type != BE_EV_ERROR ? "" : be_error_name(ev->error));
    return step == UPSTREAM_FAILED ? TRY_FAILED : TRY_ANSWERED;
}

upstream_step_t upstream_take_whole(void *whole, upstream_t *u, be_event_t *ev)
{
    (void)u;
    upstream_whole_t *w = whole;
    switch (ev->type) {
    case BE_EV_CHUNK:
        if (!w->agg)
            w->agg = shape_agg_new(w->kind);
        if (w->agg)
            shape_agg_add(w->agg, ev->obj);
        json_object_put(ev->obj);
        ev->obj = NULL;
        if (shape_agg_size(w->agg) > CFG_MAX_ANSWER_BYTES) {
            be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                           "The model's backend sent an answer that is too large.");
            return UPSTREAM_FAILED;
        }
        return UPSTREAM_MORE;
    case BE_EV_RESPONSE:
        w->result = ev->obj;
        ev->obj = NULL;
        return UPSTREAM_ANSWERED;
    case BE_EV_ERROR:
        return UPSTREAM_FAILED;
    default: /* END */
        w->result = w->agg ? shape_agg_finish(w->agg) : NULL;
        if (w->result)
            return UPSTREAM_ANSWERED;
        be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                       "The model's backend returned an empty answer.");
        return UPSTREAM_FAILED;
    }
}

void upstream_whole_free(upstream_whole_t *w)
{
    shape_agg_free(w->agg);
    json_object_put(w->result);
    w->agg = NULL;
    w->result = NULL;
}

void upstream_end(upstream_t *u, const char *error)
{
    if (!u->call)
        return;
    u->ops->close(u->call);
    u->call = NULL;
    st_target_in_flight(u->target_slot, -1);
    if (!error) /* a relay that broke records why in the request */
        error = u->req && strncmp(u->req->error_reason, "backend", 7) == 0 ? u->req->error_reason : "";
    trace_try_end(u->req, u->try_index, error);
}
