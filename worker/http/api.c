/* OpenAI API handlers: validate, route, call the backend, relay or reshape the answer. */
#include "worker/http/api.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/state.h"
#include "common/oai_error.h"
#include "worker/oai/anthropic_shape.h"
#include "worker/backend/backend.h"
#include "worker/oai/oai_shape.h"
#include "worker/core/balance.h"
#include "worker/core/failover.h"
#include "worker/core/limits.h"
#include "worker/core/route.h"
#include "worker/core/trace.h"
#include "worker/oai/validate.h"

/* A stream whose backend says nothing for a while gets an SSE comment, so neither the
 * client nor libmicrohttpd's idle timeout (which counts time spent waiting in the
 * content reader) closes it: every 15 s, or half the idle timeout if that is shorter. */
enum MHD_Result api_route_error(request_t *req, route_status_t rs, unsigned kind)
{
    char msg[400];
    if (rs == ROUTE_WRONG_KIND) {
        snprintf(msg, sizeof msg, "The model '%.200s' does not serve %s requests.", req->model_asked,
                 cfg_kind_name(kind));
        return http_respond_error(req, 400, msg, "invalid_request_error", "model", "unsupported_kind");
    }
    if (!req->model_asked || !req->model_asked[0]) {
        snprintf(msg, sizeof msg, "No model was given and no default model serves %s requests.", cfg_kind_name(kind));
        return http_respond_error(req, 400, msg, "invalid_request_error", "model", "missing_required_parameter");
    }
    snprintf(msg, sizeof msg, "The model '%.200s' does not exist or you do not have access to it.", req->model_asked);
    return http_respond_error(req, 404, msg, "invalid_request_error", "model", "model_not_found");
}

int api_keepalive_ms(void)
{
    int half = http_cfg->idle_timeout * 500;
    return half < 15000 ? half : 15000;
}



/* Remembers the token counts of a response or chunk that carries usage. */
static void note_usage(request_t *req, json_object *obj)
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


enum MHD_Result api_respond_json(request_t *req, int status, json_object *obj)
{
    size_t len;
    const char *s = shape_json(obj, &len);
    return http_respond(req, status, "application/json", s, len);
}

/* ---- streaming relay ---- */

typedef struct {
    request_t *req;             /* valid while the reader runs */
    const backend_ops_t *ops;
    be_call_t *call;            /* owned; NULL once closed */
    buf_t pending;              /* SSE bytes not yet handed to MHD */
    size_t off;
    bool finished;
    unsigned kind;
    char *client_model;         /* owned */
    bool client_wants_usage;
    bool gateway;               /* ai_router /stream: bare text events */
    ashape_stream_t *amsg;      /* owned: a Messages API client's event state, NULL for OpenAI */
    int target_slot;            /* its in-flight count is held until the call closes */
    int try_index;              /* for the trace */
} relay_t;

static void relay_close_call(relay_t *r)
{
    if (r->call) {
        r->ops->close(r->call);
        r->call = NULL;
        st_target_in_flight(r->target_slot, -1);
        trace_try_end(r->req, r->try_index, r->req && strncmp(r->req->error_reason, "backend", 7) == 0
                                                ? r->req->error_reason : "");
    }
}

/* The last event of a stream that ended well. */
static const char *stream_end(bool gateway)
{
    return gateway ? "event: done\ndata: \n\n" : "data: [DONE]\n\n";
}

/* A piece of text as one SSE event; a newline in it continues the event on another
 * data line, as SSE defines, so the framing holds whatever the text. */
static void gateway_text_event(buf_t *out, const char *text)
{
    if (!text || !text[0])
        return;
    buf_appends(out, "data: ");
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            buf_appends(out, "\ndata: ");
        else if (*p != '\r')
            buf_append(out, p, 1);
    }
    buf_appends(out, "\n\n");
}

/* choices[0].message.content of a chat completion ("" if none). */
static const char *completion_text(json_object *completion)
{
    json_object *choices, *msg, *content;
    if (json_object_object_get_ex(completion, "choices", &choices) && json_object_is_type(choices, json_type_array) &&
        json_object_array_length(choices) > 0 &&
        json_object_object_get_ex(json_object_array_get_idx(choices, 0), "message", &msg) &&
        json_object_object_get_ex(msg, "content", &content) && json_object_is_type(content, json_type_string))
        return json_object_get_string(content);
    return "";
}

/* Appends one backend chunk, rewritten for the client. */
static void relay_chunk(relay_t *r, json_object *chunk)
{
    json_object *choices;
    uint64_t now = http_now_us();
    if (r->req->last_event_us)
        met_observe(MET_H_GAP, r->req->model_slot, now - r->req->last_event_us);
    r->req->last_event_us = now;
    r->req->chunks_relayed++;
    note_usage(r->req, chunk);
    if (r->amsg) {
        ashape_stream_chunk(r->amsg, chunk, &r->pending);
        return;
    }
    if (r->gateway) {
        json_object *choices, *delta, *content;
        if (json_object_object_get_ex(chunk, "choices", &choices) && json_object_is_type(choices, json_type_array) &&
            json_object_array_length(choices) > 0 &&
            json_object_object_get_ex(json_object_array_get_idx(choices, 0), "delta", &delta) &&
            json_object_object_get_ex(delta, "content", &content) && json_object_is_type(content, json_type_string))
            gateway_text_event(&r->pending, json_object_get_string(content));
        return;
    }
    if (!r->client_wants_usage) {
        /* We asked the backend for usage on our own account: hide it. */
        if (json_object_object_get_ex(chunk, "choices", &choices) &&
            json_object_is_type(choices, json_type_array) && json_object_array_length(choices) == 0 &&
            json_object_object_get_ex(chunk, "usage", NULL))
            return;
    }
    shape_set_model(chunk, r->client_model);
    shape_append_sse(&r->pending, chunk);
}

/* A chunk the backend handed out as text, model already renamed (be_request_t.chunk_text). */
static void relay_chunk_text(relay_t *r, const char *text, size_t len)
{
    uint64_t now = http_now_us();
    if (r->req->last_event_us)
        met_observe(MET_H_GAP, r->req->model_slot, now - r->req->last_event_us);
    r->req->last_event_us = now;
    buf_append(&r->pending, "data: ", 6);
    buf_append(&r->pending, text, len);
    buf_append(&r->pending, "\n\n", 2);
}

static void relay_error_event(relay_t *r, const be_event_t *ev)
{
    if (r->amsg) {
        int status;
        ashape_stream_error(&r->pending, ashape_error_type(ev->status, &status), ev->message);
    } else {
        buf_t e = {0};
        oaierr_format(&e, ev->message, ev->err_type, ev->err_param[0] ? ev->err_param : NULL,
                      ev->err_code[0] ? ev->err_code : NULL);
        buf_appends(&r->pending, r->gateway ? "event: error\ndata: " : "data: ");
        buf_append(&r->pending, e.data, e.len);
        buf_appends(&r->pending, "\n\n");
        buf_free(&e);
    }
    snprintf(r->req->error_reason, sizeof r->req->error_reason, "%s", be_error_name(ev->error));
    failover_count_error(r->req, ev->error);
    log_warn("request %s: stream to model '%s' failed after it started: %s", r->req->id,
             r->client_model, ev->message);
}

/* Turns one backend event into bytes in r->pending. Returns -1 if the client left. */
static int relay_event(relay_t *r, be_event_t *ev)
{
    switch (ev->type) {
    case BE_EV_PENDING:
        if (client_gone(http_client_fd(r->req)))
            return -1;
        buf_appends(&r->pending, ": keep-alive\n\n");
        break;
    case BE_EV_CHUNK:
        if (ev->obj)
            relay_chunk(r, ev->obj);
        else
            relay_chunk_text(r, ev->data, ev->len);
        break;
    case BE_EV_RESPONSE:
        note_usage(r->req, ev->obj);
        if (r->amsg) {
            ashape_stream_completion(r->amsg, ev->obj, &r->pending);
            break;
        }
        if (r->gateway) {
            gateway_text_event(&r->pending, completion_text(ev->obj));
            break;
        }
        shape_set_model(ev->obj, r->client_model);
        shape_synthesise(r->kind, ev->obj, r->client_wants_usage, &r->pending);
        break;
    case BE_EV_END:
        if (r->amsg)
            ashape_stream_finish(r->amsg, &r->pending);
        else
            buf_appends(&r->pending, stream_end(r->gateway));
        r->finished = true;
        relay_close_call(r); /* give the backend connection back before the client reads */
        break;
    case BE_EV_ERROR:
        if (ev->error == BE_ERR_CLIENT_GONE) {
            snprintf(r->req->error_reason, sizeof r->req->error_reason, "client_abort");
            return -1;
        }
        relay_error_event(r, ev);
        r->finished = true;
        relay_close_call(r);
        break;
    case BE_EV_HEADERS:
    case BE_EV_DATA:
        break; /* byte-relay events: not produced by JSON calls */
    }
    json_object_put(ev->obj);
    ev->obj = NULL;
    return 0;
}

static ssize_t relay_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    relay_t *r = cls;
    while (r->off >= r->pending.len) {
        buf_reset(&r->pending);
        r->off = 0;
        if (r->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        be_event_t ev;
        r->ops->next(r->call, &ev, api_keepalive_ms());
        if (relay_event(r, &ev) < 0) {
            json_object_put(ev.obj);
            relay_close_call(r); /* cancel the backend transfer at once */
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        /* Events that have already arrived go out in the same write; nothing waits
         * for more to come, so no event is delayed. */
        while (!r->finished && r->pending.len < max / 2) {
            r->ops->next(r->call, &ev, 0);
            if (ev.type == BE_EV_PENDING)
                break;
            if (relay_event(r, &ev) < 0) {
                json_object_put(ev.obj);
                relay_close_call(r);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
    }
    return http_hand_out(r->req, &r->pending, &r->off, out, max);
}

static void relay_free(void *cls)
{
    relay_t *r = cls;
    r->req = NULL; /* the request may already be gone when the response is destroyed */
    relay_close_call(r);
    buf_free(&r->pending);
    free(r->client_model);
    if (r->amsg)
        ashape_stream_free(r->amsg);
    free(r->amsg);
    free(r);
}

/* Starts the SSE response; r->pending already holds the first event(s). */
static enum MHD_Result start_stream(request_t *req, relay_t *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, relay_read, r, relay_free);
    if (!resp) {
        relay_free(r);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    http_add_common_headers(req, resp);
    req->status = 200;
    enum MHD_Result rc = MHD_queue_response(req->conn, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- request handling ---- */

/* Parses the body as one JSON object; NULL (and a queued 400) when it is not. */
json_object *api_parse_body(request_t *req, enum MHD_Result *rc)
{
    shape_parse_status_t st = SHAPE_PARSE_INVALID;
    json_object *obj = req->body.len > 0 ? shape_parse_status(req->body.data, req->body.len, &st) : NULL;
    if (!obj && st == SHAPE_PARSE_TOO_DEEP) {
        char msg[160];
        snprintf(msg, sizeof msg, "The JSON body of your request nests objects and arrays more than %d levels deep.",
                 SHAPE_MAX_DEPTH);
        *rc = http_respond_error(req, 400, msg, "invalid_request_error", NULL, "invalid_json");
        return NULL;
    }
    if (!obj) {
        *rc = http_respond_error(req, 400,
                                 "We could not parse the JSON body of your request. The body must "
                                 "be a JSON object (with Content-Type: application/json).",
                                 "invalid_request_error", NULL, "invalid_json");
        return NULL;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        *rc = http_respond_error(req, 400, "The request body must be a JSON object.",
                                 "invalid_request_error", NULL, "invalid_json");
        return NULL;
    }
    return obj;
}

enum MHD_Result api_missing_param(request_t *req, const char *param, const char *what)
{
    char msg[200];
    snprintf(msg, sizeof msg, "Missing required parameter: '%s'%s%s.", param, what ? " " : "",
             what ? what : "");
    return http_respond_error(req, 400, msg, "invalid_request_error", param,
                              "missing_required_parameter");
}

static bool json_true(json_object *obj, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_boolean) &&
           json_object_get_boolean(v);
}

/* One try against one target. Either the answer (or a final error) has been queued
 * (TRY_ANSWERED), or the try failed before anything reached the client (TRY_FAILED,
 * with the failure in *ev) and the caller may try elsewhere. */

typedef api_job_t job_t;

/* Pulls a non-streaming answer: one response, or a backend stream folded into one.
 * Returns the response, or NULL with *ev holding the error. */
static json_object *collect_whole(request_t *req, const backend_ops_t *ops, be_call_t *call, unsigned kind,
                                  be_event_t *ev)
{
    shape_agg_t *agg = NULL;
    json_object *result = NULL;
    for (;;) {
        ops->next(call, ev, api_keepalive_ms());
        if (ev->type == BE_EV_PENDING) {
            if (client_gone(http_client_fd(req))) {
                be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "client left");
                break;
            }
            continue;
        }
        if (ev->type == BE_EV_CHUNK) {
            if (!agg)
                agg = shape_agg_new(kind);
            if (agg)
                shape_agg_add(agg, ev->obj);
            json_object_put(ev->obj);
            ev->obj = NULL;
            if (shape_agg_size(agg) > CFG_MAX_ANSWER_BYTES) {
                be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                               "The model's backend sent an answer that is too large.");
                break;
            }
            continue;
        }
        if (ev->type == BE_EV_RESPONSE)
            result = ev->obj;
        break; /* RESPONSE, END or ERROR */
    }
    if (ev->type != BE_EV_ERROR && !result && agg)
        result = shape_agg_finish(agg);
    shape_agg_free(agg);
    if (ev->type != BE_EV_ERROR && !result)
        be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                       "The model's backend returned an empty answer.");
    return ev->type == BE_EV_ERROR ? NULL : result;
}

try_result_t api_try_target(request_t *req, const void *job_arg, const cfg_model_t *m, bool is_fallback,
                               const cfg_target_t *t, be_event_t *ev, enum MHD_Result *rc)
{
    const job_t *job = job_arg;
    const cfg_backend_t *be = &http_cfg->backends[t->backend];
    const backend_ops_t *ops = backend_lookup(be->type);
    /* Pass-through targets get the name asked for; a fallback model's, its own name. */
    const char *backend_model = t->backend_model ? t->backend_model : is_fallback ? m->name : req->model_asked;
    req->backend_name = be->name;
    req->backend_slot = be->metric_slot;
    req->backend = be;
    req->backend_model = backend_model;
    req->attempts++;
    if (!ops) {
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL,
                       "The model's backend is not available in this build.");
        return TRY_FAILED;
    }
    bool backend_stream = job->kind == KIND_EMBEDDINGS ? false
                          : m->backend_stream >= 0      ? m->backend_stream
                                                        : job->client_stream;
    json_object *body = job->body;
    json_object_object_add(body, "model", json_object_new_string(backend_model));
    if (job->kind != KIND_EMBEDDINGS) {
        if (backend_stream != job->client_stream || json_object_object_get_ex(body, "stream", NULL))
            json_object_object_add(body, "stream", json_object_new_boolean(backend_stream));
        if (!backend_stream)
            json_object_object_del(body, "stream_options");
        else if (job->stream_options)
            json_object_object_add(body, "stream_options", json_object_get(job->stream_options));
    }
    int try_index = trace_try_begin(req, be, backend_model);
    char traceparent[64];
    trace_backend_header(req, try_index, traceparent, sizeof traceparent);
    be_request_t breq = {
        .kind = job->kind,
        .backend = be,
        .model = m,
        .backend_model = backend_model,
        .client_model = req->model_asked,
        .body = body,
        .stream = backend_stream,
        /* Folding a stream into one answer needs its usage even if the client did not ask. */
        .want_usage = backend_stream && (job->client_usage || !job->client_stream || be->stream_usage || job->messages),
        .max_tokens = m->max_tokens,
        .client_key = req->client_key,
        .request_id = req->id,
        .client_fd = http_client_fd(req),
        .max_event_bytes = http_cfg->max_event_bytes,
        .traceparent = traceparent,
        .chunk_text = job->client_stream && backend_stream && !job->gateway && !job->messages,
    };
    st_target_in_flight(t->state_slot, 1);
    be_call_t *call = ops->open(&breq, ev);
    if (!call) {
        st_target_in_flight(t->state_slot, -1);
        trace_try_end(req, try_index, be_error_name(ev->error));
        return TRY_FAILED;
    }

    if (!job->client_stream) {
        json_object *result = collect_whole(req, ops, call, job->kind, ev);
        ops->close(call);
        st_target_in_flight(t->state_slot, -1);
        trace_try_end(req, try_index, result ? "" : be_error_name(ev->error));
        if (!result)
            return TRY_FAILED;
        note_usage(req, result);
        shape_set_model(result, req->model_asked);
        req->first_byte_us = http_now_us(); /* the access log's ttfb_ms: the answer is ready */
        if (job->gateway) { /* ai_router's shape: {"content","provider","model"} */
            json_object *g = json_object_new_object();
            json_object_object_add(g, "content", json_object_new_string(completion_text(result)));
            json_object_object_add(g, "provider", json_object_new_string(req->provider ? req->provider : ""));
            json_object_object_add(g, "model", json_object_new_string(req->model_asked));
            *rc = api_respond_json(req, 200, g);
            json_object_put(g);
        } else if (job->messages) {
            char err[200];
            json_object *msg = ashape_from_completion(result, req->model_asked, job->stop_sequences, err, sizeof err);
            *rc = msg ? api_respond_json(req, 200, msg) : http_respond_error(req, 502, err, "server_error", NULL, "backend_error");
            json_object_put(msg);
        } else {
            *rc = api_respond_json(req, 200, result);
        }
        json_object_put(result);
        return TRY_ANSWERED;
    }

    /* Streaming: wait for the first event, so that an early failure can still be
     * retried or answered with a proper status instead of an error inside a 200. */
    for (;;) {
        ops->next(call, ev, api_keepalive_ms());
        if (ev->type != BE_EV_PENDING)
            break;
        if (client_gone(http_client_fd(req))) {
            be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "client left");
            break;
        }
    }
    if (ev->type == BE_EV_ERROR) {
        ops->close(call);
        st_target_in_flight(t->state_slot, -1);
        trace_try_end(req, try_index, be_error_name(ev->error));
        return TRY_FAILED;
    }
    relay_t *r = calloc(1, sizeof *r);
    if (!r || !(r->client_model = strdup(req->model_asked))) {
        free(r);
        json_object_put(ev->obj);
        ops->close(call);
        st_target_in_flight(t->state_slot, -1);
        trace_try_end(req, try_index, "internal");
        *rc = MHD_NO;
        return TRY_ANSWERED;
    }
    r->req = req;
    r->ops = ops;
    r->call = call;
    r->kind = job->kind;
    r->client_wants_usage = job->client_usage;
    r->gateway = job->gateway;
    if (job->messages) {
        if (!(r->amsg = calloc(1, sizeof *r->amsg))) {
            json_object_put(ev->obj);
            relay_free(r);
            *rc = MHD_NO;
            return TRY_ANSWERED;
        }
        ashape_stream_init(r->amsg, req->model_asked, job->stop_sequences, job->input_estimate);
    }
    r->target_slot = t->state_slot;
    r->try_index = try_index;
    req->first_byte_us = http_now_us();
    be_event_t first = *ev;
    relay_event(r, &first);
    req->last_event_us = req->first_byte_us; /* gaps are counted from the first event */
    if (ev->type == BE_EV_RESPONSE) { /* synthesised stream: the whole answer is here */
        if (r->amsg)
            ashape_stream_finish(r->amsg, &r->pending);
        else
            buf_appends(&r->pending, stream_end(r->gateway));
        r->finished = true;
        relay_close_call(r);
    }
    *rc = start_stream(req, r);
    return TRY_ANSWERED;
}


enum MHD_Result api_run(request_t *req, unsigned kind, json_object *body, bool gateway)
{
    json_object *v;
    enum MHD_Result rc;
    job_t job = {.body = body, .kind = kind, .gateway = gateway};
    validate_error_t bad;
    if (validate_request(kind, body, &bad) < 0)
        return http_respond_error(req, 400, bad.message, "invalid_request_error", bad.param, bad.code);
    route_t route;
    route_status_t rs = route_resolve(http_cfg, req->key, req->model_asked, kind, &route);
    if (rs != ROUTE_OK)
        return api_route_error(req, rs, kind);
    req->model_routed = route.model->name;
    req->model_slot = route.model->metric_slot;
    if (!req->model_asked[0]) { /* the gateway's "default model": pass its name on */
        free(req->model_asked);
        req->model_asked = strdup(route.model->name);
        if (!req->model_asked)
            return MHD_NO;
    }
    if (req->provider && !balance_serves_provider(http_cfg, route.model, req->provider)) {
        char msg[400];
        snprintf(msg, sizeof msg, "The model '%.200s' is not served by provider '%.100s'.", req->model_asked,
                 req->provider);
        return http_respond_error(req, 400, msg, "invalid_request_error", "provider", "unsupported_provider");
    }
    if (http_reserve(req, kind, route.model, body, &rc) < 0)
        return rc;
    job.client_stream = kind != KIND_EMBEDDINGS && json_true(body, "stream");
    if (job.client_stream && json_object_object_get_ex(body, "stream_options", &v)) {
        job.client_usage = json_true(v, "include_usage");
        job.stream_options = json_object_get(v);
    }
    req->stream = job.client_stream;
    rc = failover_dispatch(req, &job, route.model, api_try_target);
    json_object_put(job.stream_options);
    return rc;
}

static enum MHD_Result handle_inference(request_t *req, unsigned kind, const char *required,
                                        const char *required_what)
{
    enum MHD_Result rc = MHD_YES;
    req->kind = kind;
    met_in_flight(1); /* undone when the request completes */
    trace_begin(req);
    json_object *body = api_parse_body(req, &rc), *v;
    if (!body)
        return rc;
    if (!json_object_object_get_ex(body, "model", &v) || !json_object_is_type(v, json_type_string) ||
        !json_object_get_string_len(v)) {
        rc = api_missing_param(req, "model", "(a model name string)");
    } else if (!(req->model_asked = strdup(json_object_get_string(v)))) {
        rc = MHD_NO;
    } else if (!json_object_object_get_ex(body, required, &v) || !v) {
        rc = api_missing_param(req, required, required_what);
    } else {
        rc = api_run(req, kind, body, false);
    }
    json_object_put(body);
    return rc;
}

enum MHD_Result api_chat_completions(request_t *req)
{
    return handle_inference(req, KIND_CHAT, "messages", "(the conversation so far)");
}

enum MHD_Result api_completions(request_t *req)
{
    return handle_inference(req, KIND_COMPLETIONS, "prompt", NULL);
}

enum MHD_Result api_embeddings(request_t *req)
{
    return handle_inference(req, KIND_EMBEDDINGS, "input", NULL);
}

static json_object *model_object(const char *id)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "object", json_object_new_string("model"));
    json_object_object_add(o, "created", json_object_new_int64(http_cfg->loaded_at));
    json_object_object_add(o, "owned_by", json_object_new_string("airouter"));
    return o;
}

enum MHD_Result api_models_list(request_t *req)
{
    json_object *list = json_object_new_object(), *data = json_object_new_array();
    json_object_object_add(list, "object", json_object_new_string("list"));
    uint64_t now = st_now_ms();
    for (int i = 0; i < http_cfg->nmodels; i++) {
        const cfg_model_t *m = &http_cfg->models[i];
        if (m->is_glob || !route_key_allows(req->key, m->name))
            continue;
        if (http_cfg->hide_unavailable_models && !balance_model_available(http_cfg, m, now))
            continue;
        json_object_array_add(data, model_object(m->name));
    }
    json_object_object_add(list, "data", data);
    enum MHD_Result rc = api_respond_json(req, 200, list);
    json_object_put(list);
    return rc;
}

enum MHD_Result api_model_get(request_t *req)
{
    char id[512];
    snprintf(id, sizeof id, "%s", req->url + strlen("/v1/models/"));
    MHD_http_unescape(id); /* URLs arrive as escaped by the client */
    /* A name is listed if it would route by itself: exactly or through a glob. */
    for (int i = 0; i < http_cfg->nmodels; i++) {
        const cfg_model_t *m = &http_cfg->models[i];
        bool match = m->is_glob ? cfg_glob_match(m->name, id) : strcmp(m->name, id) == 0;
        if (match && (route_key_allows(req->key, id) || route_key_allows(req->key, m->name))) {
            json_object *o = model_object(id);
            enum MHD_Result rc = api_respond_json(req, 200, o);
            json_object_put(o);
            return rc;
        }
    }
    char msg[300];
    snprintf(msg, sizeof msg, "The model '%.200s' does not exist or you do not have access to it.", id);
    return http_respond_error(req, 404, msg, "invalid_request_error", "model", "model_not_found");
}
