/* OpenAI API handlers. Each is called once the whole request body has arrived (http_of(req)->body),
 * and queues exactly one response. */
#ifndef AIROUTER_API_H
#define AIROUTER_API_H
#include <json-c/json.h>

#include "worker/core/failover.h"
#include "worker/http/http.h"
#include "worker/core/route.h"

/* One JSON inference request as the failover loop carries it (see api_try_target). */
typedef struct {
    json_object *body;           /* the client's request; model and stream set per try */
    json_object *stream_options; /* the client's, kept to restore per try (owned ref) */
    bool gateway;                /* answer in the ai_router gateway's shapes */
    unsigned kind;
    bool client_stream;
    bool client_usage;
    /* A Messages API client (worker/http/messages.c): the chat answer becomes a Message, a chat
     * stream Anthropic's events. */
    bool messages;
    json_object *stop_sequences; /* the Messages request's (borrowed), NULL: none */
    long long input_estimate;    /* message_start's input tokens until the backend counts them */
    /* The client's body as it came, when a try may send it on with only the model's value
     * [model_at, model_end) replaced (NULL: body is serialised). */
    const char *text;
    size_t text_len, model_at, model_end;
    int text_stream;             /* its "stream": -1 absent, 0 false, 1 true */
    bool text_stream_options;    /* it has "stream_options" */
} api_job_t;

/* One try of job (an api_job_t) against target t: a failover_try_fn. */
try_result_t api_try_target(request_t *req, void *job, const cfg_model_t *m, bool is_fallback,
                            const cfg_target_t *t, be_event_t *ev);

enum MHD_Result api_chat_completions(request_t *req);
enum MHD_Result api_completions(request_t *req);
enum MHD_Result api_embeddings(request_t *req);
enum MHD_Result api_models_list(request_t *req);
enum MHD_Result api_model_get(request_t *req);

/* Routes req->model_asked ("" = the kind's default) and runs body through failover.
 * gateway: answer in the ai_router HTTP gateway's shapes instead of OpenAI's. */
enum MHD_Result api_run(request_t *req, unsigned kind, json_object *body, bool gateway);

/* Shared with the other API handlers (worker/http/proxy.c). */
/* Parses the body as one JSON object; NULL (with a 400 queued in *rc) if it is not. */
json_object *api_parse_body(request_t *req, enum MHD_Result *rc);
enum MHD_Result api_missing_param(request_t *req, const char *param, const char *what);
/* 404 model_not_found, 400 unsupported_kind, or 400 when no model was given. */
enum MHD_Result api_route_error(request_t *req, route_status_t rs, unsigned kind);
enum MHD_Result api_respond_json(request_t *req, int status, json_object *obj);
/* Runs job through the failover loop on model and turns what happened into the answer: the
 * answer a try queued, the last backend error, 503 model_unavailable, or nothing (MHD_NO) for
 * a client that left. */
enum MHD_Result api_dispatch(request_t *req, void *job, const cfg_model_t *model, failover_try_fn try_target);

#endif
