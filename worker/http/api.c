/* OpenAI API handlers: validate, route, call the backend, relay or reshape the answer. */
#include "worker/http/api.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/state.h"
#include "common/oai_error.h"
#include "worker/oai/anthropic_shape.h"
#include "worker/backend/backend.h"
#include "worker/oai/json_scan.h"
#include "worker/oai/oai_shape.h"
#include "worker/core/balance.h"
#include "worker/core/failover.h"
#include "worker/core/route.h"
#include "worker/core/upstream.h"
#include "worker/oai/validate.h"

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

enum MHD_Result api_dispatch(request_t *req, void *job, const cfg_model_t *model, failover_try_fn try_target)
{
    be_event_t last;
    switch (failover_run(req, job, model, try_target, &last)) {
    case FAILOVER_ANSWERED:
        return http_of(req)->answer;
    case FAILOVER_FAILED:
        return http_respond_error(req, last.status, last.message, last.err_type,
                                  last.err_param[0] ? last.err_param : NULL, last.err_code[0] ? last.err_code : NULL);
    case FAILOVER_NO_TARGET: {
        char msg[300];
        snprintf(msg, sizeof msg, "No backend is available for the model '%.200s' right now; try again later.",
                 req->model_asked);
        return http_respond_error(req, 503, msg, "server_error", NULL, "model_unavailable");
    }
    case FAILOVER_CLIENT_GONE:
        break;
    }
    return MHD_NO; /* nobody to answer: close the connection */
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
    upstream_t up;              /* the backend call, ended once the stream is */
    buf_t pending;              /* SSE bytes not yet handed to MHD */
    size_t off;
    bool finished;
    unsigned kind;
    char *client_model;         /* owned */
    bool client_wants_usage;
    bool gateway;               /* ai_router /stream: bare text events */
    ashape_stream_t *amsg;      /* owned: a Messages API client's event state, NULL for OpenAI */
} relay_t;

static void relay_close_call(relay_t *r) { upstream_end(&r->up, NULL); }

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

/* Appends one backend chunk, rewritten for the client. */
static void relay_chunk(relay_t *r, json_object *chunk)
{
    json_object *choices;
    uint64_t now = clock_now_us();
    if (r->req->last_event_us)
        met_observe(MET_H_GAP, r->req->model_slot, now - r->req->last_event_us);
    r->req->last_event_us = now;
    r->req->chunks_relayed++;
    request_note_usage(r->req, chunk);
    if (r->amsg) {
        ashape_stream_chunk(r->amsg, chunk, &r->pending);
        return;
    }
    if (r->gateway) {
        gateway_text_event(&r->pending, shape_choice_text(chunk, "delta"));
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
    uint64_t now = clock_now_us();
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
        if (request_client_gone(r->req, 0))
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
        request_note_usage(r->req, ev->obj);
        if (r->amsg) {
            ashape_stream_completion(r->amsg, ev->obj, &r->pending);
            break;
        }
        if (r->gateway) {
            gateway_text_event(&r->pending, shape_choice_text(ev->obj, "message"));
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

/* What the first write of a stream may hold: the events that came with the first one. */
#define RELAY_FIRST_WRITE (8 * 1024)

/* Adds the events that have already arrived to pending, up to about limit bytes, so that they
 * leave in one write; nothing waits for more to come, so no event is delayed. -1 if the client
 * left. */
static int relay_drain(relay_t *r, size_t limit)
{
    while (!r->finished && r->pending.len < limit) {
        be_event_t ev;
        r->up.ops->next(r->up.call, &ev, 0);
        if (ev.type == BE_EV_PENDING)
            return 0;
        if (relay_event(r, &ev) < 0) {
            json_object_put(ev.obj);
            return -1;
        }
    }
    return 0;
}

/* Waits for the backend's next event, then takes those that came with it (http_relay_read's fill). */
static int relay_fill(void *cls, size_t max)
{
    relay_t *r = cls;
    be_event_t ev;
    r->up.ops->next(r->up.call, &ev, r->req->client.check_ms);
    if (relay_event(r, &ev) < 0) {
        json_object_put(ev.obj);
        relay_close_call(r); /* cancel the backend transfer at once */
        return -1;
    }
    if (relay_drain(r, max / 2) < 0) {
        relay_close_call(r);
        return -1;
    }
    return 0;
}

static ssize_t relay_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    relay_t *r = cls;
    return http_relay_read(r->req, &r->pending, &r->off, &r->finished, relay_fill, r, out, max);
}

static void relay_free(void *cls)
{
    relay_t *r = cls;
    r->req = r->up.req = NULL; /* the request may already be gone when the response is destroyed */
    relay_close_call(r);
    buf_free(&r->pending);
    free(r->client_model);
    if (r->amsg)
        ashape_stream_free(r->amsg);
    free(r->amsg);
    free(r);
}

/* Starts the SSE response; r->pending already holds the first event(s). When it holds the
 * whole stream (the backend sent it all at once, or it was synthesised), it goes out as one
 * body of known length: the head and the events leave in one write, with no chunk framing
 * and no second wake-up for the end. */
static enum MHD_Result start_stream(request_t *req, relay_t *r)
{
    struct MHD_Response *resp;
    if (r->finished) {
        resp = MHD_create_response_from_buffer(r->pending.len, r->pending.data, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->pending = (buf_t){0}; /* the response owns the bytes now */
        relay_free(r);
    } else {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, relay_read, r, relay_free);
        if (!resp)
            relay_free(r);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return http_queue(req, 200, resp);
}

/* ---- request handling ---- */

/* Parses the body as one JSON object; NULL (and a queued 400) when it is not. */
json_object *api_parse_body(request_t *req, enum MHD_Result *rc)
{
    const buf_t *body = &http_of(req)->body;
    shape_parse_status_t st = SHAPE_PARSE_INVALID;
    json_object *obj = body->len > 0 ? shape_parse_status(body->data, body->len, &st) : NULL;
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

/* A whole completion that came as text (model renamed): its usage is read from the usage
 * member alone, and the text goes out as it is. */
static void answer_text(request_t *req, const buf_t *text)
{
    js_member_t usage = {.key = "usage"};
    if (js_scan(text->data, text->len, SHAPE_MAX_DEPTH - 1, &usage, 1, NULL) == JS_OK && usage.count == 1) {
        json_object *u = shape_parse(text->data + usage.at, usage.end - usage.at), *o = json_object_new_object();
        if (o && u) {
            json_object_object_add(o, "usage", u);
            u = NULL;
            request_note_usage(req, o);
        }
        json_object_put(u);
        json_object_put(o);
    }
    req->first_byte_us = clock_now_us(); /* the access log's ttfb_ms: the answer is ready */
    http_respond(req, 200, "application/json", text->data, text->len);
}

/* Answers with a whole completion, in the shape the client asked for. */
static void answer_whole(request_t *req, const api_job_t *job, json_object *result)
{
    request_note_usage(req, result);
    shape_set_model(result, req->model_asked);
    req->first_byte_us = clock_now_us(); /* the access log's ttfb_ms: the answer is ready */
    if (job->gateway) { /* ai_router's shape: {"content","provider","model"} */
        json_object *g = json_object_new_object();
        json_object_object_add(g, "content", json_object_new_string(shape_choice_text(result, "message")));
        json_object_object_add(g, "provider", json_object_new_string(req->provider ? req->provider : ""));
        json_object_object_add(g, "model", json_object_new_string(req->model_asked));
        api_respond_json(req, 200, g);
        json_object_put(g);
    } else if (job->messages) {
        char err[200];
        json_object *msg = ashape_from_completion(result, req->model_asked, job->stop_sequences, err, sizeof err);
        if (msg)
            api_respond_json(req, 200, msg);
        else
            http_respond_error(req, 502, err, "server_error", NULL, "backend_error");
        json_object_put(msg);
    } else {
        api_respond_json(req, 200, result);
    }
}

/* A stream's first event: a failure may still be retried, or answered with a proper status
 * instead of an error inside a 200; anything else starts the SSE answer, which the relay goes
 * on with. */
static upstream_step_t take_first(void *ctx, upstream_t *u, be_event_t *ev)
{
    const api_job_t *job = ctx;
    request_t *req = u->req;
    if (ev->type == BE_EV_ERROR)
        return UPSTREAM_FAILED;
    relay_t *r = calloc(1, sizeof *r);
    if (!r || !(r->client_model = strdup(req->model_asked))) {
        free(r);
        json_object_put(ev->obj);
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "out of memory");
        http_of(req)->answer = MHD_NO;
        return UPSTREAM_ANSWERED;
    }
    r->req = req;
    r->up = *u;
    r->kind = job->kind;
    r->client_wants_usage = job->client_usage;
    r->gateway = job->gateway;
    if (job->messages) {
        if (!(r->amsg = calloc(1, sizeof *r->amsg))) {
            json_object_put(ev->obj);
            relay_free(r);
            http_of(req)->answer = MHD_NO;
            return UPSTREAM_KEEP; /* ended with the relay */
        }
        ashape_stream_init(r->amsg, req->model_asked, job->stop_sequences, job->input_estimate);
    }
    req->first_byte_us = clock_now_us();
    be_event_type_t first_type = ev->type;
    relay_event(r, ev);
    req->last_event_us = req->first_byte_us; /* gaps are counted from the first event */
    if (first_type == BE_EV_RESPONSE) { /* synthesised stream: the whole answer is here */
        if (r->amsg)
            ashape_stream_finish(r->amsg, &r->pending);
        else
            buf_appends(&r->pending, stream_end(r->gateway));
        r->finished = true;
        relay_close_call(r);
    } else if (relay_drain(r, RELAY_FIRST_WRITE) < 0) { /* the client left: nothing more to send */
        r->finished = true;
        relay_close_call(r);
    }
    start_stream(req, r);
    return UPSTREAM_KEEP;
}

/* Notes whether the client's body may be sent on as text: strict JSON whose top-level
 * members are the parsed body's (no key twice, none escaped), model among them once. */
static void plan_text(request_t *req, api_job_t *job)
{
    const buf_t *b = &http_of(req)->body;
    js_member_t want[] = {{.key = "model"}, {.key = "stream"}, {.key = "stream_options"}};
    js_info_t info;
    if (!b->data || js_scan(b->data, b->len, SHAPE_MAX_DEPTH - 1, want, 3, &info) != JS_OK || info.escaped_key ||
        info.members != json_object_object_length(job->body) || want[0].count != 1 || want[1].count > 1 ||
        want[2].count > 1)
        return;
    job->text_stream = -1;
    if (want[1].count) {
        const char *v = b->data + want[1].at;
        size_t l = want[1].end - want[1].at;
        if (l == 4 && memcmp(v, "true", 4) == 0)
            job->text_stream = 1;
        else if (l == 5 && memcmp(v, "false", 5) == 0)
            job->text_stream = 0;
        else
            return;
    }
    job->text_stream_options = want[2].count > 0;
    job->model_at = want[0].at;
    job->model_end = want[0].end;
    job->text = b->data;
    job->text_len = b->len;
}

/* The body a try sends, as text, if the client's says the same as the tree api_try_target
 * made of it (its model set, stream and stream_options as the try needs them). */
static bool text_for_try(const api_job_t *job, bool backend_stream, const char *backend_model, buf_t *out)
{
    if (!job->text)
        return false;
    if (job->kind != KIND_EMBEDDINGS) {
        /* the tree's stream is backend_stream if the client sent one or it differs from none */
        if (job->text_stream >= 0 ? job->text_stream != (int)backend_stream : backend_stream)
            return false;
        if (!backend_stream && job->text_stream_options) /* taken out of the tree */
            return false;
    }
    buf_t name = {0};
    bool ok = buf_append_json_string(&name, backend_model) == 0 &&
              js_splice(out, job->text, job->text_len, job->model_at, job->model_end, name.data, name.len) == 0;
    buf_free(&name);
    if (!ok)
        buf_free(out);
    return ok;
}

try_result_t api_try_target(request_t *req, void *job_arg, const cfg_model_t *m, bool is_fallback,
                            const cfg_target_t *t, be_event_t *ev)
{
    const api_job_t *job = job_arg;
    upstream_t u;
    if (upstream_begin(&u, req, m, is_fallback, t, false, ev) < 0)
        return TRY_FAILED;
    bool backend_stream = job->kind == KIND_EMBEDDINGS ? false
                          : m->backend_stream >= 0      ? m->backend_stream
                                                        : job->client_stream;
    json_object *body = job->body;
    json_object_object_add(body, "model", json_object_new_string(u.backend_model));
    if (job->kind != KIND_EMBEDDINGS) {
        if (backend_stream != job->client_stream || json_object_object_get_ex(body, "stream", NULL))
            json_object_object_add(body, "stream", json_object_new_boolean(backend_stream));
        if (!backend_stream)
            json_object_object_del(body, "stream_options");
        else if (job->stream_options)
            json_object_object_add(body, "stream_options", json_object_get(job->stream_options));
    }
    be_request_t breq = {
        .kind = job->kind,
        .backend = u.backend,
        .model = m,
        .backend_model = u.backend_model,
        .client_model = req->model_asked,
        .body = body,
        .stream = backend_stream,
        /* Folding a stream into one answer needs its usage even if the client did not ask. */
        .want_usage = backend_stream && (job->client_usage || !job->client_stream || u.backend->stream_usage ||
                                         job->messages),
        .max_tokens = m->max_tokens,
        .max_event_bytes = http_cfg->max_event_bytes,
        .chunk_text = job->client_stream && backend_stream && !job->gateway && !job->messages,
        .answer_text = !job->client_stream && !backend_stream && !job->gateway && !job->messages,
    };
    buf_t text = {0};
    /* with usage asked of a stream, the transport adds stream_options.include_usage to the tree */
    if (!(backend_stream && breq.want_usage) && text_for_try(job, backend_stream, u.backend_model, &text)) {
        breq.body_text = text.data;
        breq.body_text_len = text.len;
    }
    try_result_t res;
    if (job->client_stream) {
        res = upstream_run(&u, &breq, take_first, (void *)job, ev);
    } else {
        upstream_whole_t whole = {.kind = job->kind};
        res = upstream_run(&u, &breq, upstream_take_whole, &whole, ev);
        if (res == TRY_ANSWERED && !whole.result)
            answer_text(req, &whole.text);
        else if (res == TRY_ANSWERED)
            answer_whole(req, job, whole.result);
        upstream_whole_free(&whole);
    }
    buf_free(&text);
    return res;
}


enum MHD_Result api_run(request_t *req, unsigned kind, json_object *body, bool gateway)
{
    json_object *v;
    enum MHD_Result rc;
    api_job_t job = {.body = body, .kind = kind, .gateway = gateway};
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
    if (http_reserve(req, route.model, body, &rc) < 0)
        return rc;
    job.client_stream = kind != KIND_EMBEDDINGS && json_true(body, "stream");
    if (job.client_stream && json_object_object_get_ex(body, "stream_options", &v)) {
        job.client_usage = json_true(v, "include_usage");
        job.stream_options = json_object_get(v);
    }
    req->stream = job.client_stream;
    if (!gateway) /* the gateway's body is made from its own request, not sent by the client */
        plan_text(req, &job);
    rc = api_dispatch(req, &job, route.model, api_try_target);
    json_object_put(job.stream_options);
    return rc;
}

static enum MHD_Result handle_inference(request_t *req, unsigned kind, const char *required,
                                        const char *required_what)
{
    enum MHD_Result rc = MHD_YES;
    http_track(req, kind);
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
    uint64_t now = clock_now_ms();
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
    snprintf(id, sizeof id, "%s", req->path + strlen("/v1/models/"));
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
