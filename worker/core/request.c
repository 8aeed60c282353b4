#include "worker/core/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "worker/core/access_log.h"
#include "worker/core/trace.h"

void request_init(request_t *req, const cfg_t *cfg, request_protocol_t protocol, const char *method,
                  const char *path, const request_client_t *client)
{
    req->cfg = cfg;
    req->protocol = protocol;
    req->method = method;
    req->path = path;
    req->client = *client;
    req->start_us = clock_now_us();
    req->start_unix_ns = clock_unix_ns();
    req->grpc_code = -1;
    req->tokens_in = req->tokens_out = req->tokens_cached = req->cost_micro = -1;
}

void request_track(request_t *req, unsigned kind, const char *traceparent)
{
    req->kind = kind;
    met_in_flight(1); /* undone by request_finish */
    trace_begin(req, traceparent);
}

bool request_client_gone(request_t *req, int wait_ms)
{
    if (req->client.gone)
        return req->client.gone(req->client.ctx, wait_ms);
    if (wait_ms > 0) { /* nobody to watch: only the wait */
        struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

void request_note_usage(request_t *req, json_object *obj)
{
    json_object *u, *v;
    if (!json_object_object_get_ex(obj, "usage", &u) || !json_object_is_type(u, json_type_object))
        return;
    if (json_object_object_get_ex(u, "prompt_tokens", &v) && json_object_is_type(v, json_type_int))
        req->tokens_in = json_object_get_int64(v);
    if (json_object_object_get_ex(u, "completion_tokens", &v) && json_object_is_type(v, json_type_int))
        req->tokens_out = json_object_get_int64(v);
    else if (req->tokens_in >= 0 && req->kind == KIND_EMBEDDINGS)
        req->tokens_out = 0;
    json_object *d;
    if (json_object_object_get_ex(u, "prompt_tokens_details", &d) && json_object_is_type(d, json_type_object) &&
        json_object_object_get_ex(d, "cached_tokens", &v) && json_object_is_type(v, json_type_int))
        req->tokens_cached = json_object_get_int64(v);
}

/* A refusal of the key's limits: its message, Retry-After and reason for the log. */
static char refused(request_t *req, char which, int retry_after, char *msg, size_t msglen)
{
    if (!which)
        return 0;
    limits_message(req->key, which, retry_after, msg, msglen);
    req->retry_after_s = retry_after;
    snprintf(req->error_reason, sizeof req->error_reason, "%s",
             which == 'u' ? "cluster_unavailable" : which == 'b' ? "budget_exceeded" : "rate_limited");
    return which;
}

char request_admit(request_t *req, char *msg, size_t msglen)
{
    const cfg_key_t *k = req->key;
    if (!k)
        return 0;
    int retry_after;
    char which = limits_admit(k, &req->limits, &retry_after);
    req->key_usage_known = (k->rpm || k->tpm) && which != 'u';
    return refused(req, which, retry_after, msg, msglen);
}

char request_reserve(request_t *req, const cfg_model_t *model, size_t request_bytes, long long max_tokens,
                     char *msg, size_t msglen)
{
    if (!req->key && (!model || !model->priced))
        return 0;
    int retry_after;
    char which = limits_reserve_request(req->key, &req->limits, model, req->kind, request_bytes, max_tokens,
                                        &retry_after);
    return refused(req, which, retry_after, msg, msglen);
}

void request_finish(request_t *req)
{
    limits_outcome_t outcome = {
        .tokens_in = req->tokens_in,
        .tokens_out = req->tokens_out,
        .tokens_cached = req->tokens_cached,
        .served = (req->status < 400 && req->bytes_out > 0) || (req->client_abort && req->chunks_relayed > 0),
        .client_abort = req->client_abort,
        .chunks = req->chunks_relayed,
    };
    req->cost_micro = limits_end(req->key, &req->limits, &outcome);
    if (req->kind) {
        uint64_t now = clock_now_us();
        met_observe(MET_H_DURATION, req->model_slot, now - req->start_us);
        if (req->first_byte_us && req->stream)
            met_observe(MET_H_TTFT, req->model_slot, req->first_byte_us - req->start_us);
        if (req->tokens_in > 0 || req->tokens_out > 0)
            met_tokens(req->model_slot, req->tokens_in > 0 ? (uint64_t)req->tokens_in : 0,
                       req->tokens_out > 0 ? (uint64_t)req->tokens_out : 0);
        if (req->client_abort)
            met_client_abort(req->model_slot);
        /* last, in this order: a scrape reads them first (see metrics.c) */
        met_request(req->model_slot, req->backend_slot, req->kind, req->client_abort ? 499 : req->status);
        met_in_flight(-1);
        trace_request_done(req);
    }
    access_log_write(req);
    free(req->client_key);
    free(req->model_asked);
    free(req->provider);
    req->client_key = req->model_asked = req->provider = NULL;
}
