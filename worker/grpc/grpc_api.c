/* The ai_router.AIRouter gRPC API (RouteRequest, StreamingRouteRequest) and server reflection
 * for it, served by each worker with grpc core on grpc_listen (every worker binds it with
 * SO_REUSEPORT, which grpc core sets by default, so the kernel spreads connections). One thread
 * takes new calls; each call is served in a thread of its own, like an HTTP connection, calling
 * the backend synchronously. */
#include "worker/grpc/grpc_api.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/rand_id.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/state.h"
#include "ai_router.pb-c.h"
#include "worker/backend/backend.h"
#include "worker/core/balance.h"
#include "worker/core/failover.h"
#include "worker/core/request.h"
#include "worker/core/route.h"
#include "worker/core/upstream.h"
#include "worker/grpc/grpc_reflection.h"
#include "worker/oai/generate_body.h"
#include "worker/oai/oai_shape.h"
#include "worker/oai/validate.h"

#define MAX_MESSAGE (50 * 1024 * 1024)
#define POLL_MS 200 /* how often a waiting call checks for cancellation, its deadline, a stop */

typedef enum { RPC_UNARY, RPC_STREAM, RPC_REFLECT_V1, RPC_REFLECT_V1ALPHA, RPC_OTHER } rpc_kind_t;

/* The registered methods, by kind. A reflection call is a bidi stream: its messages are read
 * one at a time, so nothing is read with the call. */
static const struct {
    const char *path;
    grpc_server_register_method_payload_handling payload;
} methods[RPC_OTHER] = {
    [RPC_UNARY] = {"/ai_router.AIRouter/RouteRequest", GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER},
    [RPC_STREAM] = {"/ai_router.AIRouter/StreamingRouteRequest", GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER},
    [RPC_REFLECT_V1] = {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", GRPC_SRM_PAYLOAD_NONE},
    [RPC_REFLECT_V1ALPHA] = {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", GRPC_SRM_PAYLOAD_NONE},
};

typedef struct {
    request_t req;             /* the call as the core sees it (every kind of call has one) */
    rpc_kind_t kind;
    grpc_call *call;
    grpc_completion_queue *cq; /* bound to the call; plucked by its thread */
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details;
    bool closed;               /* the close-on-server op completed (cancelled or done) */
    int cancelled;
    bool sent_initial;
    bool ended_waiting;        /* a stream ended (by a stop or idleness) while it waited for a message */
    grpc_status_code code;     /* the status sent */
} rpc_t;

static const cfg_t *gcfg;
static grpc_server *server;
static grpc_completion_queue *server_cq;
static void *registered[RPC_OTHER];
static pthread_t loop_thread;
static bool started;
static volatile int stopping;
static unsigned in_flight;
static char tag_shutdown, tag_batch, tag_close, tag_status;

/* ---- call plumbing ---- */

static const char *grpc_status_name(grpc_status_code code)
{
    switch (code) {
    case GRPC_STATUS_OK: return "OK";
    case GRPC_STATUS_CANCELLED: return "CANCELLED";
    case GRPC_STATUS_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case GRPC_STATUS_DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case GRPC_STATUS_NOT_FOUND: return "NOT_FOUND";
    case GRPC_STATUS_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case GRPC_STATUS_UNIMPLEMENTED: return "UNIMPLEMENTED";
    case GRPC_STATUS_INTERNAL: return "INTERNAL";
    case GRPC_STATUS_UNAVAILABLE: return "UNAVAILABLE";
    case GRPC_STATUS_UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
    }
}

/* Notes why the call failed, for the access log and the trace (the first reason stands). */
static void set_error(rpc_t *r, const char *reason)
{
    if (!r->req.error_reason[0])
        snprintf(r->req.error_reason, sizeof r->req.error_reason, "%s", reason);
}

static bool batch(rpc_t *r, grpc_op *ops, size_t n)
{
    if (grpc_call_start_batch(r->call, ops, n, &tag_batch, NULL) != GRPC_CALL_OK)
        return false;
    grpc_event ev = grpc_completion_queue_pluck(r->cq, &tag_batch, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* The call's client as the core sees it (request_client_t.gone): gone once the call's close op
 * completed, which a client's cancel (or its deadline) makes happen. Waits up to wait_ms. */
static bool call_gone(void *ctx, int wait_ms)
{
    rpc_t *r = ctx;
    if (!r->closed) {
        gpr_timespec until = wait_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                        gpr_time_from_millis(wait_ms, GPR_TIMESPAN))
                                         : gpr_time_0(GPR_CLOCK_MONOTONIC);
        grpc_event ev = grpc_completion_queue_pluck(r->cq, &tag_close, until, NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            r->closed = true;
    }
    return r->closed;
}

static grpc_op initial_md_op(void)
{
    grpc_op op = {.op = GRPC_OP_SEND_INITIAL_METADATA};
    op.data.send_initial_metadata.count = 0;
    return op;
}

/* Sends one message (with the initial metadata, the first time); false if the call is over. */
static bool send_message(rpc_t *r, grpc_slice slice)
{
    r->req.bytes_out += GRPC_SLICE_LENGTH(slice);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    grpc_op ops[2];
    size_t n = 0;
    if (!r->sent_initial) {
        ops[n++] = initial_md_op();
        r->sent_initial = true;
    }
    ops[n] = (grpc_op){.op = GRPC_OP_SEND_MESSAGE};
    ops[n++].data.send_message.send_message = bb;
    bool ok = batch(r, ops, n);
    grpc_byte_buffer_destroy(bb);
    return ok;
}

/* Sends one AIResponse with content (provider and model as the client asked). */
static bool send_response(rpc_t *r, const char *content)
{
    AiRouter__AIResponse resp = AI_ROUTER__AIRESPONSE__INIT;
    resp.content = (char *)content;
    resp.provider = r->req.provider ? r->req.provider : "";
    resp.model = r->req.model_asked;
    grpc_slice slice = grpc_slice_malloc(ai_router__airesponse__get_packed_size(&resp));
    ai_router__airesponse__pack(&resp, GRPC_SLICE_START_PTR(slice));
    return send_message(r, slice);
}

/* Fills ops (room for two) with the initial metadata if not sent yet and the status; *d must
 * outlive the batch. Returns the count of ops. */
static size_t status_ops(rpc_t *r, grpc_op *ops, grpc_status_code code, grpc_slice *d)
{
    size_t n = 0;
    if (!r->sent_initial) {
        ops[n++] = initial_md_op();
        r->sent_initial = true;
    }
    ops[n] = (grpc_op){.op = GRPC_OP_SEND_STATUS_FROM_SERVER};
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details = d;
    ops[n++].data.send_status_from_server.trailing_metadata_count = 0;
    return n;
}

static void send_status(rpc_t *r, grpc_status_code code, const char *details)
{
    grpc_slice d = grpc_slice_from_copied_string(details ? details : "");
    grpc_op ops[2];
    batch(r, ops, status_ops(r, ops, code, &d));
    grpc_slice_unref(d);
    r->code = code;
    if (code != GRPC_STATUS_OK)
        set_error(r, grpc_status_name(code));
}

/* The HTTP status class a gRPC status counts as in the metrics. */
static int http_class(grpc_status_code code)
{
    switch (code) {
    case GRPC_STATUS_OK: return 200;
    case GRPC_STATUS_CANCELLED: return 499;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_NOT_FOUND:
    case GRPC_STATUS_PERMISSION_DENIED:
    case GRPC_STATUS_UNAUTHENTICATED:
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
    case GRPC_STATUS_UNIMPLEMENTED: return 400;
    default: return 500;
    }
}

/* The status a backend failure means to a gRPC client. */
static grpc_status_code status_for(const be_event_t *ev)
{
    switch (ev->error) {
    case BE_ERR_TIMEOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case BE_ERR_HTTP_4XX:
        /* ev->status is what an HTTP client would get: a refused backend credential is 502 */
        return ev->status == 429   ? GRPC_STATUS_RESOURCE_EXHAUSTED
               : ev->status == 404 ? GRPC_STATUS_NOT_FOUND
               : ev->status >= 500 ? GRPC_STATUS_UNAVAILABLE
                                   : GRPC_STATUS_INVALID_ARGUMENT;
    case BE_ERR_CLIENT_GONE: return GRPC_STATUS_CANCELLED;
    case BE_ERR_INTERNAL: return GRPC_STATUS_INTERNAL;
    default: return GRPC_STATUS_UNAVAILABLE; /* connect, 5xx, protocol */
    }
}

/* The value of metadata key (lower case), as an owned string; NULL if absent. */
static char *metadata_value(const grpc_metadata_array *md, const char *key)
{
    for (size_t i = 0; i < md->count; i++)
        if (grpc_slice_str_cmp(md->metadata[i].key, key) == 0)
            return strndup((const char *)GRPC_SLICE_START_PTR(md->metadata[i].value),
                           GRPC_SLICE_LENGTH(md->metadata[i].value));
    return NULL;
}

/* The key of an authorization entry, with or without "Bearer ". */
static char *bearer(const grpc_metadata_array *md)
{
    char *v = metadata_value(md, "authorization");
    if (v && strncasecmp(v, "Bearer ", 7) == 0 && v[7])
        memmove(v, v + 7, strlen(v + 7) + 1);
    return v;
}

/* ---- serving one call ---- */

/* One ai_router call as the failover loop carries it. */
typedef struct {
    rpc_t *r;
    json_object *body;          /* the chat request; model and stream set per try */
    bool stream;                /* StreamingRouteRequest: a message per piece of text */
    bool broke;                 /* the answer broke after it began: why in broken */
    be_event_t broken;
} rpc_job_t;

/* A stream's pieces as they go out (the sink of a streaming call's tries). */
typedef struct {
    rpc_job_t *job;
    bool sent;                  /* a piece has gone out: the try can no longer be retried */
} pieces_t;

/* The answer cannot go on: before any piece the try may be retried, after one it broke. */
static upstream_step_t stop_pieces(pieces_t *p, be_event_t *ev)
{
    if (!p->sent)
        return UPSTREAM_FAILED;
    p->job->broke = true;
    p->job->broken = *ev;
    failover_count_error(&p->job->r->req, ev->error);
    return UPSTREAM_ANSWERED;
}

/* Sends a piece of text; false (ev says why) once the client has gone. */
static bool send_piece(pieces_t *p, const char *piece, be_event_t *ev)
{
    request_t *req = &p->job->r->req;
    uint64_t now = clock_now_us();
    if (req->last_event_us) /* the stream histograms, as for HTTP streams */
        met_observe(MET_H_GAP, req->model_slot, now - req->last_event_us);
    else
        req->first_byte_us = now;
    req->last_event_us = now;
    req->chunks_relayed++;
    p->sent = true;
    if (send_response(p->job->r, piece))
        return true;
    be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "the client went away");
    return false;
}

static upstream_step_t take_pieces(void *ctx, upstream_t *u, be_event_t *ev)
{
    pieces_t *p = ctx;
    request_t *req = u->req;
    switch (ev->type) {
    case BE_EV_CHUNK: {
        json_object *chunk = ev->obj; /* be_event_error in send_piece forgets it */
        ev->obj = NULL;
        request_note_usage(req, chunk);
        const char *piece = shape_choice_text(chunk, "delta");
        bool ok = !piece[0] || send_piece(p, piece, ev);
        json_object_put(chunk);
        return ok ? UPSTREAM_MORE : stop_pieces(p, ev);
    }
    case BE_EV_RESPONSE: { /* a backend called without streaming: the whole text as one piece */
        json_object *whole = ev->obj; /* send_piece's be_event_error forgets it */
        ev->obj = NULL;
        request_note_usage(req, whole);
        const char *text = shape_choice_text(whole, "message");
        bool ok = !text[0] || send_piece(p, text, ev);
        json_object_put(whole);
        return ok ? UPSTREAM_ANSWERED : stop_pieces(p, ev);
    }
    case BE_EV_END:
        return UPSTREAM_ANSWERED;
    case BE_EV_ERROR:
        return stop_pieces(p, ev);
    default:
        return UPSTREAM_MORE;
    }
}

/* One try of the call against target t: a failover_try_fn. A stream's pieces go out as they come;
 * a unary call's answer is gathered whole, then sent. */
static try_result_t rpc_try(request_t *req, void *job_arg, const cfg_model_t *m, bool is_fallback,
                            const cfg_target_t *t, be_event_t *ev)
{
    rpc_job_t *job = job_arg;
    upstream_t u;
    if (upstream_begin(&u, req, m, is_fallback, t, false, ev) < 0)
        return TRY_FAILED;
    /* How the backend is called may be forced per model; the client's shape is kept. */
    bool backend_stream = m->backend_stream >= 0 ? m->backend_stream : job->stream;
    json_object_object_add(job->body, "model", json_object_new_string(u.backend_model));
    json_object_object_add(job->body, "stream", json_object_new_boolean(backend_stream));
    be_request_t breq = {
        .kind = KIND_CHAT,
        .backend = u.backend,
        .model = m,
        .backend_model = u.backend_model,
        .client_model = req->model_asked,
        .body = job->body,
        .stream = backend_stream,
        .want_usage = backend_stream && u.backend->stream_usage, /* token metrics and tpm */
        .max_tokens = m->max_tokens,
        .max_event_bytes = gcfg->max_event_bytes,
    };
    if (job->stream) {
        pieces_t p = {.job = job};
        return upstream_run(&u, &breq, take_pieces, &p, ev);
    }
    upstream_whole_t whole = {.kind = KIND_CHAT};
    try_result_t res = upstream_run(&u, &breq, upstream_take_whole, &whole, ev);
    if (res == TRY_ANSWERED) {
        request_note_usage(req, whole.result);
        if (!send_response(job->r, shape_choice_text(whole.result, "message"))) {
            job->broke = true;
            be_event_error(&job->broken, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "the client went away");
        }
    }
    upstream_whole_free(&whole);
    return res;
}

/* Routes the call and answers it: its key, the model it may use, the request it makes, then the
 * failover loop, whose outcome becomes the call's status. */
static void serve(rpc_t *r, AiRouter__AIRequest *in)
{
    request_t *req = &r->req;
    req->client_key = bearer(&r->md);
    json_object *params = NULL, *body = NULL;
    char msg[300];

    if (gcfg->nkeys > 0) {
        req->key = route_authenticate(gcfg, req->client_key);
        if (!req->key) {
            send_status(r, GRPC_STATUS_UNAUTHENTICATED,
                        req->client_key ? "Incorrect API key provided." : "Send an API key as 'authorization: Bearer KEY'.");
            goto out;
        }
        char which = request_admit(req, msg, sizeof msg);
        if (which) {
            send_status(r, which == 'u' ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
            goto out;
        }
    }
    const char *model = in->model ? in->model : "";
    route_t route;
    route_status_t rs = route_resolve(gcfg, req->key, model, KIND_CHAT, &route);
    if (rs == ROUTE_NOT_FOUND) {
        route_t any;
        bool exists = route_resolve(gcfg, NULL, model, KIND_CHAT, &any) == ROUTE_OK;
        snprintf(msg, sizeof msg, exists ? "This API key may not use the model '%.200s'." : "The model '%.200s' does not exist.",
                 model[0] ? model : "(default)");
        send_status(r, exists ? GRPC_STATUS_PERMISSION_DENIED : GRPC_STATUS_NOT_FOUND, msg);
        goto out;
    }
    if (rs == ROUTE_WRONG_KIND) {
        send_status(r, GRPC_STATUS_INVALID_ARGUMENT, "The model does not serve chat requests.");
        goto out;
    }
    const cfg_model_t *m = route.model;
    req->model_routed = m->name;
    req->model_slot = m->metric_slot;
    if (!model[0]) { /* the default model: answers and backends get its name */
        free(req->model_asked);
        if (!(req->model_asked = strdup(m->name))) {
            send_status(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "The server is out of memory.");
            goto out;
        }
    }
    if (in->provider && in->provider[0]) {
        if (!balance_serves_provider(gcfg, m, in->provider)) {
            snprintf(msg, sizeof msg, "The model '%.100s' is not served by provider '%.100s'.", req->model_asked,
                     in->provider);
            send_status(r, GRPC_STATUS_INVALID_ARGUMENT, msg);
            goto out;
        }
        req->provider = strdup(in->provider);
    }
    if (!in->prompt || !in->prompt[0]) {
        send_status(r, GRPC_STATUS_INVALID_ARGUMENT, "The prompt is empty.");
        goto out;
    }
    if (in->max_tokens < 0) {
        send_status(r, GRPC_STATUS_INVALID_ARGUMENT, "max_tokens must be 0 (the model's default) or more.");
        goto out;
    }
    params = json_object_new_object();
    for (size_t i = 0; i < in->n_parameters; i++)
        if (in->parameters[i]->key)
            json_object_object_add(params, in->parameters[i]->key,
                                   json_object_new_string(in->parameters[i]->value ? in->parameters[i]->value : ""));
    char err[200];
    body = generate_body_chat(in->prompt, in->max_tokens, params, r->kind == RPC_STREAM, err, sizeof err);
    if (!body) {
        send_status(r, GRPC_STATUS_INVALID_ARGUMENT, err);
        goto out;
    }
    validate_error_t bad;
    if (validate_request(KIND_CHAT, body, &bad) < 0) {
        send_status(r, GRPC_STATUS_INVALID_ARGUMENT, bad.message);
        goto out;
    }
    char refused = request_reserve(req, m, strlen(in->prompt) + 64, in->max_tokens, msg, sizeof msg);
    if (refused) {
        send_status(r, refused == 'u' ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
        goto out;
    }

    rpc_job_t job = {.r = r, .body = body, .stream = r->kind == RPC_STREAM};
    be_event_t last;
    switch (failover_run(req, &job, m, rpc_try, &last)) {
    case FAILOVER_ANSWERED:
        if (!job.broke) {
            send_status(r, GRPC_STATUS_OK, "");
        } else if (job.broken.error == BE_ERR_CLIENT_GONE) {
            r->code = GRPC_STATUS_CANCELLED;
            set_error(r, "client_abort");
        } else {
            set_error(r, be_error_name(job.broken.error));
            send_status(r, status_for(&job.broken), job.broken.message);
        }
        break;
    case FAILOVER_FAILED:
        send_status(r, status_for(&last), last.message);
        break;
    case FAILOVER_NO_TARGET:
        send_status(r, GRPC_STATUS_UNAVAILABLE, "No backend is available for this model right now.");
        break;
    case FAILOVER_CLIENT_GONE:
        r->code = GRPC_STATUS_CANCELLED;
        break;
    }
out:
    json_object_put(params);
    json_object_put(body);
}

static void rpc_free(rpc_t *r)
{
    if (r->call)
        grpc_call_unref(r->call);
    if (r->cq) {
        grpc_completion_queue_shutdown(r->cq);
        while (grpc_completion_queue_pluck(r->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(r->cq);
    }
    grpc_metadata_array_destroy(&r->md);
    if (r->kind == RPC_OTHER)
        grpc_call_details_destroy(&r->details);
    if (r->payload)
        grpc_byte_buffer_destroy(r->payload);
    free(r);
}

/* Ends a stream that waits for its client's next message with UNAVAILABLE (the client may call
 * again); the pending receive then completes with nothing. */
static void end_waiting_stream(rpc_t *r, const char *why, const char *reason)
{
    grpc_slice d = grpc_slice_from_static_string(why);
    grpc_op ops[2];
    size_t n = status_ops(r, ops, GRPC_STATUS_UNAVAILABLE, &d);
    if (grpc_call_start_batch(r->call, ops, n, &tag_status, NULL) == GRPC_CALL_OK)
        grpc_completion_queue_pluck(r->cq, &tag_status, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    else
        grpc_call_cancel(r->call, NULL);
    r->code = GRPC_STATUS_UNAVAILABLE;
    set_error(r, reason);
    r->ended_waiting = true;
}

/* Waits for the call's pending receive (started with tag_batch). A stream that waits for its
 * client longer than limits.idle_timeout, or while the worker stops (so that it does not hold the
 * drain), is ended. */
static grpc_event await_receive(rpc_t *r)
{
    uint64_t idle_until = clock_now_us() + (uint64_t)gcfg->idle_timeout * 1000000u;
    for (;;) {
        gpr_timespec poll = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(POLL_MS, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_pluck(r->cq, &tag_batch, poll, NULL);
        if (ev.type != GRPC_QUEUE_TIMEOUT)
            return ev;
        if (r->ended_waiting) /* the receive completes soon */
            continue;
        if (stopping)
            end_waiting_stream(r, "This airouter worker is stopping; call again.", "worker_stopping");
        else if (gcfg->idle_timeout > 0 && clock_now_us() > idle_until)
            end_waiting_stream(r, "The stream waited too long for a request (limits.idle_timeout).", "idle_timeout");
    }
}

/* A server reflection stream: one response per request message, in order, until the client
 * half-closes (OK), cancels, or the stream waits too long or while the worker stops. */
static void serve_reflection(rpc_t *r)
{
    for (;;) {
        grpc_byte_buffer *msg = NULL;
        grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
        op.data.recv_message.recv_message = &msg;
        if (grpc_call_start_batch(r->call, &op, 1, &tag_batch, NULL) != GRPC_CALL_OK) {
            send_status(r, GRPC_STATUS_INTERNAL, "The call cannot be read.");
            return;
        }
        grpc_event ev = await_receive(r);
        if (r->ended_waiting) {
            if (msg)
                grpc_byte_buffer_destroy(msg);
            return;
        }
        if (!ev.success || !msg) { /* cancelled, or the client has no more requests */
            if (msg)
                grpc_byte_buffer_destroy(msg);
            if (ev.success) {
                send_status(r, GRPC_STATUS_OK, "");
            } else {
                r->code = GRPC_STATUS_CANCELLED;
                set_error(r, "client_abort");
            }
            return;
        }
        grpc_byte_buffer_reader rd;
        grpc_slice in = grpc_empty_slice();
        if (grpc_byte_buffer_reader_init(&rd, msg)) {
            in = grpc_byte_buffer_reader_readall(&rd);
            grpc_byte_buffer_reader_destroy(&rd);
        }
        grpc_byte_buffer_destroy(msg);
        uint8_t *out = NULL;
        size_t out_len = 0;
        int rc = grpc_reflection_answer(GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in), &out, &out_len);
        grpc_slice_unref(in);
        if (rc == -1) {
            send_status(r, GRPC_STATUS_INVALID_ARGUMENT, "The message is not a valid ServerReflectionRequest.");
            return;
        }
        if (rc < 0) {
            send_status(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "The server is out of memory.");
            return;
        }
        grpc_slice reply = grpc_slice_new(out, out_len, free); /* the slice owns out */
        if (!send_message(r, reply)) {
            r->code = GRPC_STATUS_CANCELLED;
            set_error(r, "client_abort");
            return;
        }
    }
}

static void *serve_thread(void *arg)
{
    rpc_t *r = arg;
    const char *method = r->kind == RPC_OTHER ? "(unknown)" : methods[r->kind].path;
    const request_client_t client = {.gone = call_gone, .ctx = r, .fd = -1, .check_ms = POLL_MS};
    request_t *req = &r->req;
    request_init(req, gcfg, REQUEST_GRPC, "GRPC", method, &client);
    rand_id_hex(req->id, 8);
    req->stream = r->kind != RPC_UNARY && r->kind != RPC_OTHER;
    if (gpr_time_cmp(r->deadline, gpr_inf_future(r->deadline.clock_type)) != 0) {
        int64_t left_ms = gpr_time_to_millis(gpr_time_sub(r->deadline, gpr_now(r->deadline.clock_type)));
        req->deadline_us = req->start_us + (uint64_t)(left_ms > 0 ? left_ms : 0) * 1000u;
    }
    grpc_op close_op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    close_op.data.recv_close_on_server.cancelled = &r->cancelled;
    grpc_call_start_batch(r->call, &close_op, 1, &tag_close, NULL);
    if (r->kind == RPC_OTHER) {
        send_status(r, GRPC_STATUS_UNIMPLEMENTED, "airouter serves ai_router.AIRouter and server reflection only");
    } else if (r->kind == RPC_REFLECT_V1 || r->kind == RPC_REFLECT_V1ALPHA) {
        serve_reflection(r);
    } else {
        char *tp = metadata_value(&r->md, "traceparent");
        request_track(req, KIND_CHAT, tp);
        free(tp);
        AiRouter__AIRequest *in = NULL;
        if (r->payload) {
            grpc_byte_buffer_reader rd;
            if (grpc_byte_buffer_reader_init(&rd, r->payload)) {
                grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
                grpc_byte_buffer_reader_destroy(&rd);
                in = ai_router__airequest__unpack(NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
                grpc_slice_unref(all);
            }
        }
        if (in && in->model && in->model[0])
            req->model_asked = strdup(in->model);
        if (!in)
            send_status(r, GRPC_STATUS_INVALID_ARGUMENT, "The request is not a valid ai_router.AIRequest.");
        else
            serve(r, in);
        ai_router__airequest__free_unpacked(in, NULL);
    }
    /* the call is over once its close op completes: only then is `cancelled` final */
    if (!r->closed && grpc_completion_queue_pluck(r->cq, &tag_close, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type ==
                          GRPC_OP_COMPLETE)
        r->closed = true;
    grpc_status_code code = r->cancelled && r->code == GRPC_STATUS_OK ? GRPC_STATUS_CANCELLED : r->code;
    req->grpc_code = (int)code;
    req->grpc_status = grpc_status_name(code);
    req->status = http_class(r->code);
    req->client_abort = r->cancelled;
    request_finish(req);
    rpc_free(r);
    __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* ---- server ---- */

static rpc_t *ask_for_call(rpc_kind_t kind)
{
    rpc_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = kind;
    r->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array_init(&r->md);
    grpc_call_error e;
    if (kind == RPC_OTHER) {
        grpc_call_details_init(&r->details);
        e = grpc_server_request_call(server, &r->call, &r->details, &r->md, r->cq, server_cq, r);
    } else {
        grpc_byte_buffer **payload = methods[kind].payload == GRPC_SRM_PAYLOAD_NONE ? NULL : &r->payload;
        e = grpc_server_request_registered_call(server, registered[kind], &r->call, &r->deadline, &r->md, payload,
                                                r->cq, server_cq, r);
    }
    if (e != GRPC_CALL_OK) {
        log_error("grpc: cannot wait for calls (error %d)", (int)e);
        rpc_free(r);
        return NULL;
    }
    return r;
}

static void *loop_main(void *arg)
{
    (void)arg;
    for (int k = 0; k <= RPC_OTHER; k++)
        ask_for_call((rpc_kind_t)k);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(server_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &tag_shutdown) { /* every call is finished: the queue can go */
            grpc_completion_queue_shutdown(server_cq);
            continue;
        }
        rpc_t *r = ev.tag;
        if (!ev.success) { /* the server is shutting down: this request will not be matched */
            rpc_free(r);
            continue;
        }
        if (!stopping)
            ask_for_call(r->kind);
        __atomic_add_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 512 * 1024);
        if (pthread_create(&t, &attr, serve_thread, r) != 0) {
            log_error("grpc: cannot start a thread for a call");
            grpc_call_cancel(r->call, NULL);
            rpc_free(r);
            __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

int grpc_api_start(const cfg_t *cfg)
{
    gcfg = cfg;
    if (!cfg->grpc_listen)
        return 0;
    if (grpc_reflection_init() < 0)
        return -1;
    grpc_init(); /* in the worker, after fork: never in the master */
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = MAX_MESSAGE},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = MAX_MESSAGE},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 1},
    };
    grpc_channel_args cargs = {.num_args = sizeof args / sizeof args[0], .args = args};
    server = grpc_server_create(&cargs, NULL);
    server_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(server, server_cq, NULL);
    for (int k = 0; k < RPC_OTHER; k++)
        registered[k] = grpc_server_register_method(server, methods[k].path, NULL, methods[k].payload, 0);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(server, cfg->grpc_listen, creds);
    grpc_server_credentials_release(creds);
    if (!port) {
        log_error("grpc: cannot listen on %s", cfg->grpc_listen);
        grpc_server_destroy(server);
        grpc_completion_queue_shutdown(server_cq);
        grpc_completion_queue_destroy(server_cq);
        server = NULL;
        grpc_reflection_free();
        return -1;
    }
    grpc_server_start(server);
    if (pthread_create(&loop_thread, NULL, loop_main, NULL) != 0) {
        log_error("grpc: cannot start the call thread");
        return -1;
    }
    started = true;
    return 0;
}

unsigned grpc_api_in_flight(void) { return __atomic_load_n(&in_flight, __ATOMIC_SEQ_CST); }

void grpc_api_quiesce(void)
{
    if (!started || stopping)
        return;
    stopping = 1;
    /* No new calls; the ones running go on. GOAWAY sends clients to other workers. */
    grpc_server_shutdown_and_notify(server, server_cq, &tag_shutdown);
}

void grpc_api_stop(int drain_s)
{
    if (!started)
        return;
    grpc_api_quiesce();
    uint64_t deadline = clock_now_us() + (uint64_t)drain_s * 1000000u;
    while (grpc_api_in_flight() > 0 && clock_now_us() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (grpc_api_in_flight() > 0) {
        log_warn("grpc: drain timeout: cancelling %u call(s)", grpc_api_in_flight());
        grpc_server_cancel_all_calls(server);
        while (grpc_api_in_flight() > 0) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    pthread_join(loop_thread, NULL);
    grpc_server_destroy(server);
    grpc_completion_queue_destroy(server_cq);
    server = NULL;
    started = false;
    grpc_shutdown();
    grpc_reflection_free();
}
