/* POST /v1/messages and /v1/messages/count_tokens: routed like chat (kind messages), through the
 * same keys, limits and failover. Per target: an anthropic backend gets the request relayed as
 * it is but for the model (worker/http/proxy.c's machinery), any other backend a translated chat
 * request whose answer becomes a Message or Anthropic's stream events (worker/http/api.c's). */
#include "worker/http/messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "worker/oai/anthropic_shape.h"
#include "worker/http/api.h"
#include "worker/backend/backend.h"
#include "worker/oai/oai_shape.h"
#include "worker/http/proxy.h"
#include "worker/core/route.h"

typedef struct {
    json_object *body;         /* the client's Messages request */
    bool count_tokens;
    proxy_job_t relay;         /* for anthropic targets */
    api_job_t chat;            /* for the others; chat.body made on the first such try */
    char version_line[256], beta_line[1100];
} messages_job_t;

/* "Name: value" from the client's header, if it is present and safe to forward. */
static const char *forwarded_header(request_t *req, const char *name, char *line, size_t size)
{
    const char *v = MHD_lookup_connection_value(http_of(req)->conn, MHD_HEADER_KIND, name);
    if (!v || !v[0] || strlen(v) + strlen(name) + 3 > size || strpbrk(v, "\r\n"))
        return NULL;
    size_t n = strlen(name);
    memcpy(line, name, n);
    memcpy(line + n, ": ", 2);
    memcpy(line + n + 2, v, strlen(v) + 1);
    return line;
}

/* The input tokens of a Messages request as counted by the backend's tokenizer (vLLM's POST
 * /tokenize, beside /v1), or -1 when the backend does not offer one or it fails. */
static long long backend_token_count(request_t *req, const cfg_backend_t *be, const char *backend_model,
                                     json_object *body)
{
    const backend_ops_t *ops = be_lookup(be->type);
    if (!ops || !ops->open_raw || strcmp(be->type, "openai") != 0)
        return -1;
    /* The chat form of the request; count_tokens has no max_tokens, the translation wants one. */
    json_object *copy = json_object_new_object(), *v;
    json_object_object_foreach(body, key, val) json_object_object_add(copy, key, json_object_get(val));
    json_object_object_add(copy, "max_tokens", json_object_new_int(1));
    char err[300];
    const char *param;
    json_object *chat = ashape_to_chat(copy, err, sizeof err, &param);
    json_object_put(copy);
    if (!chat)
        return -1;
    json_object *q = json_object_new_object();
    json_object_object_add(q, "model", json_object_new_string(backend_model));
    if (json_object_object_get_ex(chat, "messages", &v))
        json_object_object_add(q, "messages", json_object_get(v));
    if (json_object_object_get_ex(chat, "tools", &v))
        json_object_object_add(q, "tools", json_object_get(v));
    json_object_put(chat);
    size_t n;
    const char *js = shape_json(q, &n);
    struct iovec seg = {(void *)js, n};
    be_raw_request_t rr = {
        .backend = be, .method = "POST", .path = "/tokenize", .beside_v1 = true,
        .content_type = "application/json", .body = &seg, .nbody = 1,
        .backend_model = backend_model, .client_model = req->model_asked, .sanitise_errors = true,
        .client_key = req->client_key, .request_id = req->id, .traceparent = "", .client_fd = req->client.fd,
    };
    be_event_t ev;
    long long count = -1;
    buf_t answer = {0};
    be_call_t *call = ops->open_raw(&rr, &ev);
    bool ok = false;
    while (call) {
        ops->next_raw(call, &ev, req->client.check_ms);
        if (ev.type == BE_EV_HEADERS && ev.status != 200)
            break;
        if (ev.type == BE_EV_DATA && (answer.len + ev.len > CFG_MAX_ANSWER_BYTES || buf_append(&answer, ev.data, ev.len) < 0))
            break;
        if (ev.type == BE_EV_END) {
            ok = true;
            break;
        }
        if (ev.type == BE_EV_ERROR || (ev.type == BE_EV_PENDING && request_client_gone(req, 0)))
            break;
    }
    if (call)
        ops->close(call);
    json_object *a = ok && answer.len ? shape_parse(answer.data, answer.len) : NULL;
    if (a && json_object_object_get_ex(a, "count", &v) && json_object_is_type(v, json_type_int))
        count = json_object_get_int64(v);
    json_object_put(a);
    buf_free(&answer);
    json_object_put(q);
    return count;
}

static enum MHD_Result answer_count(request_t *req, json_object *body, long long counted)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "input_tokens", json_object_new_int64(counted >= 0 ? counted : ashape_estimate_tokens(body)));
    enum MHD_Result rc = api_respond_json(req, 200, o);
    json_object_put(o);
    return rc;
}

static try_result_t messages_try(request_t *req, void *job_arg, const cfg_model_t *m, bool is_fallback,
                                 const cfg_target_t *t, be_event_t *ev)
{
    messages_job_t *job = job_arg; /* the chat body is made here once */
    const cfg_backend_t *be = &http_cfg->backends[t->backend];
    if (strcmp(be->type, "anthropic") == 0)
        return proxy_try(req, &job->relay, m, is_fallback, t, ev);
    if (job->count_tokens) {
        /* Counted by the backend's tokenizer where it has one, else estimated here. */
        const char *backend_model = t->backend_model ? t->backend_model : is_fallback ? m->name : req->model_asked;
        req->backend_name = be->name;
        req->backend_slot = be->metric_slot;
        req->backend = be;
        req->backend_model = backend_model;
        answer_count(req, job->body, backend_token_count(req, be, backend_model, job->body));
        return TRY_ANSWERED;
    }
    if (!job->chat.body) {
        char err[300];
        const char *param;
        job->chat.body = ashape_to_chat(job->body, err, sizeof err, &param);
        if (!job->chat.body) {
            http_respond_error(req, 400, err, "invalid_request_error", param, "invalid_value");
            return TRY_ANSWERED;
        }
    }
    return api_try_target(req, &job->chat, m, is_fallback, t, ev);
}

static enum MHD_Result handle(request_t *req, bool count_tokens)
{
    enum MHD_Result rc = MHD_YES;
    http_track(req, KIND_MESSAGES);
    json_object *body = api_parse_body(req, &rc), *v;
    if (!body)
        return rc;
    messages_job_t job = {.body = body, .count_tokens = count_tokens};
    if (!json_object_object_get_ex(body, "model", &v) || !json_object_is_type(v, json_type_string) ||
        !json_object_get_string_len(v)) {
        rc = http_respond_error(req, 400, "model: Field required", "invalid_request_error", "model", NULL);
        goto out;
    }
    if (!json_object_object_get_ex(body, "messages", &v) || !json_object_is_type(v, json_type_array)) {
        rc = http_respond_error(req, 400, "messages: Field required", "invalid_request_error", "messages", NULL);
        goto out;
    }
    if (!(req->model_asked = strdup(json_object_get_string(json_object_object_get(body, "model"))))) {
        rc = MHD_NO;
        goto out;
    }
    route_t route;
    route_status_t rs = route_resolve(http_cfg, req->key, req->model_asked, KIND_MESSAGES, &route);
    if (rs != ROUTE_OK) {
        rc = api_route_error(req, rs, KIND_MESSAGES);
        goto out;
    }
    req->model_routed = route.model->name;
    req->model_slot = route.model->metric_slot;

    job.relay.kind = KIND_MESSAGES;
    job.relay.method = "POST";
    snprintf(job.relay.path, sizeof job.relay.path, "%s", count_tokens ? "/messages/count_tokens" : "/messages");
    job.relay.content_type = "application/json";
    job.relay.json = body;
    int nh = 0;
    const char *line = forwarded_header(req, "anthropic-version", job.version_line, sizeof job.version_line);
    if (line)
        job.relay.extra_headers[nh++] = line;
    if ((line = forwarded_header(req, "anthropic-beta", job.beta_line, sizeof job.beta_line)))
        job.relay.extra_headers[nh++] = line;

    job.chat.kind = KIND_CHAT; /* what the backend is asked for; metrics count req->kind */
    job.chat.messages = true;
    job.chat.client_stream = !count_tokens && json_object_object_get_ex(body, "stream", &v) &&
                             json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
    job.chat.stop_sequences = json_object_object_get_ex(body, "stop_sequences", &v) ? v : NULL;
    job.chat.input_estimate = ashape_estimate_tokens(body);
    req->stream = job.chat.client_stream;
    /* counting tokens costs nothing, but is checked against the key's limits */
    if (http_reserve(req, count_tokens ? NULL : route.model, body, &rc) < 0)
        goto out;
    rc = api_dispatch(req, &job, route.model, messages_try);
out:
    json_object_put(job.chat.body);
    json_object_put(body);
    return rc;
}

enum MHD_Result messages_create(request_t *req) { return handle(req, false); }
enum MHD_Result messages_count_tokens(request_t *req) { return handle(req, true); }
