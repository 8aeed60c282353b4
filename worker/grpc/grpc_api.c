/* The ai_router.AIRouter gRPC API (RouteRequest, StreamingRouteRequest) and server reflection
 * for it, served by each worker with grpc core on grpc_listen (every worker binds it with
 * SO_REUSEPORT, which grpc core sets by default, so the kernel spreads connections). One thread
 * takes new calls; each call is served in a thread of its own, like an HTTP connection, calling
 * the backend synchronously. */
#include "worker/grpc/grpc_api.h"
#include "worker/core/limits.h"

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
#include "common/log.h"
#include "common/metrics.h"
#include "common/state.h"
#include "ai_router.pb-c.h"
#include "worker/backend/backend.h"
#include "worker/core/balance.h"
#include "worker/core/failover.h"
#include "worker/http/gateway.h"
#include "worker/grpc/grpc_reflection.h"
#include "worker/http/http.h"
#include "worker/core/trace.h"
#include "worker/oai/oai_shape.h"
#include "worker/core/route.h"
#include "worker/oai/validate.h"

#define MAX_MESSAGE (50 * 1024 * 1024)
#define POLL_MS 200 /* how often a waiting call checks for cancellation, its deadline, a stop */
#define CLIENT_CHECK_US 20000u /* how often a stream of chunks checks for cancellation */

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
    /* for logs and metrics */
    char id[40];
    uint64_t start_us;
    const cfg_key_t *key;
    const char *model;
    int model_slot, backend_slot;
    const char *backend;
    const char *error;
    grpc_status_code code;
    char *client_key;          /* the presented key (for pass_client_key) */
    long long tokens_in, tokens_out;
    long long chunks;          /* chunks the backend produced (a client that cancels pays for them) */
    long long cost_micro;      /* by the model's price; -1 unknown */
    limits_ticket_t limits;    /* what key's limits hold for this call */
    request_t *trace;          /* the call's trace record (trace.h); NULL if out of memory */
    uint64_t first_piece_us;   /* streams: when the first piece went out (0: none yet) */
    uint64_t last_piece_us;
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


static bool batch(rpc_t *r, grpc_op *ops, size_t n)
{
    if (grpc_call_start_batch(r->call, ops, n, &tag_batch, NULL) != GRPC_CALL_OK)
        return false;
    grpc_event ev = grpc_completion_queue_pluck(r->cq, &tag_batch, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* True once the client cancelled (or the call otherwise ended). */
static bool gone(rpc_t *r)
{
    if (!r->closed) {
        grpc_event ev = grpc_completion_queue_pluck(r->cq, &tag_close, gpr_time_0(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            r->closed = true;
    }
    return r->closed;
}

static bool past_deadline(rpc_t *r)
{
    return gpr_time_cmp(gpr_now(r->deadline.clock_type), r->deadline) > 0;
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

static bool send_response(rpc_t *r, const char *content, const char *provider, const char *model)
{
    AiRouter__AIResponse resp = AI_ROUTER__AIRESPONSE__INIT;
    resp.content = (char *)content;
    resp.provider = (char *)provider;
    resp.model = (char *)model;
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
    if (code != GRPC_STATUS_OK && !r->error)
        r->error = grpc_status_name(code);
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

/* The bearer token of the call's "authorization" metadata (malloc'd), or NULL. */
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

/* Keeps the token counts of a response or chunk that carries usage. */
static void note_usage(rpc_t *r, json_object *obj)
{
    json_object *u, *v;
    if (!json_object_object_get_ex(obj, "usage", &u) || !json_object_is_type(u, json_type_object))
        return;
    if (json_object_object_get_ex(u, "prompt_tokens", &v) && json_object_is_type(v, json_type_int))
        r->tokens_in = json_object_get_int64(v);
    if (json_object_object_get_ex(u, "completion_tokens", &v) && json_object_is_type(v, json_type_int))
        r->tokens_out = json_object_get_int64(v);
}

/* choices[0].message.content, or delta.content of a chunk ("" if none). */
static const char *text_of(json_object *obj, const char *field)
{
    json_object *choices, *m, *c;
    if (json_object_object_get_ex(obj, "choices", &choices) && json_object_is_type(choices, json_type_array) &&
        json_object_array_length(choices) > 0 &&
        json_object_object_get_ex(json_object_array_get_idx(choices, 0), field, &m) &&
        json_object_object_get_ex(m, "content", &c) && json_object_is_type(c, json_type_string))
        return json_object_get_string(c);
    return "";
}

typedef enum { TRY_OK, TRY_FAIL, TRY_SENT_FAIL } rpc_try_t;

/* One backend try. TRY_FAIL: nothing reached the client, ev says why. */
static rpc_try_t try_call(rpc_t *r, const cfg_model_t *m, bool is_fallback, const cfg_target_t *t, json_object *body,
                          const char *provider, const char *model_name, be_event_t *ev)
{
    const cfg_backend_t *be = &gcfg->backends[t->backend];
    const backend_ops_t *ops = backend_lookup(be->type);
    const char *backend_model = t->backend_model ? t->backend_model : is_fallback ? m->name : model_name;
    bool stream = r->kind == RPC_STREAM;
    /* How the backend is called may be forced per model; the client's shape is kept. */
    bool backend_stream = m->backend_stream >= 0 ? m->backend_stream : stream;
    r->backend = be->name;
    r->backend_slot = be->metric_slot;
    json_object_object_add(body, "model", json_object_new_string(backend_model));
    json_object_object_add(body, "stream", json_object_new_boolean(backend_stream));
    be_request_t breq = {
        .kind = KIND_CHAT,
        .backend = be,
        .model = m,
        .backend_model = backend_model,
        .client_model = model_name,
        .body = body,
        .stream = backend_stream,
        .want_usage = backend_stream && be->stream_usage, /* token metrics and tpm */
        .max_tokens = m->max_tokens,
        .client_key = r->client_key,
        .request_id = r->id,
        .traceparent = "",
        .client_fd = -1,
        .max_event_bytes = gcfg->max_event_bytes,
    };
    if (!ops) {
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "backend type not available");
        return TRY_FAIL;
    }
    char traceparent[64] = "";
    int try_index = -1;
    if (r->trace) {
        r->trace->attempts++;
        try_index = trace_try_begin(r->trace, be, backend_model);
        trace_backend_header(r->trace, try_index, traceparent, sizeof traceparent);
        breq.traceparent = traceparent;
    }
    st_target_in_flight(t->state_slot, 1);
    be_call_t *call = ops->open(&breq, ev);
    if (!call) {
        st_target_in_flight(t->state_slot, -1);
        trace_try_end(r->trace, try_index, be_error_name(ev->error));
        return TRY_FAIL;
    }
    rpc_try_t result = TRY_FAIL;
    shape_agg_t *agg = NULL;
    bool sent = false;
    uint64_t checked_us = http_now_us(); /* when the client was last looked at */
    for (;;) {
        ops->next(call, ev, POLL_MS);
        /* Chunks that keep coming skip the PENDING branch below: look at the client now and then. */
        if (ev->type == BE_EV_CHUNK && http_now_us() - checked_us >= CLIENT_CHECK_US) {
            checked_us = http_now_us();
            if (gone(r)) {
                json_object_put(ev->obj);
                be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "the client cancelled the call");
                break;
            }
        }
        if (ev->type == BE_EV_PENDING) {
            if (gone(r)) {
                be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "the client cancelled the call");
                break;
            }
            if (past_deadline(r)) {
                be_event_error(ev, BE_ERR_TIMEOUT, 504, "server_error", "backend_timeout",
                               "The call's deadline passed before the model answered.");
                break;
            }
            continue;
        }
        if (ev->type == BE_EV_CHUNK || ev->type == BE_EV_RESPONSE)
            note_usage(r, ev->obj);
        if (ev->type == BE_EV_CHUNK) {
            r->chunks++;
            if (stream) {
                const char *piece = text_of(ev->obj, "delta");
                if (piece[0]) {
                    uint64_t now = http_now_us(); /* the stream histograms, as for HTTP streams */
                    if (r->last_piece_us)
                        met_observe(MET_H_GAP, r->model_slot, now - r->last_piece_us);
                    else
                        r->first_piece_us = now;
                    r->last_piece_us = now;
                    if (!send_response(r, piece, provider, model_name)) {
                        json_object_put(ev->obj);
                        be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "the client went away");
                        break;
                    }
                    sent = true;
                }
            } else {
                if (!agg)
                    agg = shape_agg_new(KIND_CHAT);
                if (agg)
                    shape_agg_add(agg, ev->obj);
            }
            json_object_put(ev->obj);
            if (shape_agg_size(agg) > CFG_MAX_ANSWER_BYTES) {
                be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                               "The model's backend sent an answer that is too large.");
                break;
            }
            continue;
        }
        if (ev->type == BE_EV_RESPONSE) {
            bool ok;
            if (stream) { /* a forced non-streaming call: the whole text as one piece */
                const char *whole = text_of(ev->obj, "message");
                ok = !whole[0] || send_response(r, whole, provider, model_name);
            } else {
                ok = send_response(r, text_of(ev->obj, "message"), provider, model_name);
            }
            json_object_put(ev->obj);
            result = ok ? TRY_OK : TRY_SENT_FAIL;
            break;
        }
        if (ev->type == BE_EV_END) {
            if (!stream) {
                json_object *whole = agg ? shape_agg_finish(agg) : NULL;
                bool ok = send_response(r, whole ? text_of(whole, "message") : "", provider, model_name);
                json_object_put(whole);
                result = ok ? TRY_OK : TRY_SENT_FAIL;
            } else {
                result = TRY_OK;
            }
            break;
        }
        break; /* ERROR */
    }
    if (result == TRY_FAIL && sent)
        result = TRY_SENT_FAIL; /* a stream broke after it started: never retried */
    shape_agg_free(agg);
    ops->close(call);
    st_target_in_flight(t->state_slot, -1);
    trace_try_end(r->trace, try_index, result == TRY_OK ? "" : be_error_name(ev->error));
    return result;
}

static void serve(rpc_t *r, AiRouter__AIRequest *in)
{
    const char *provider = in->provider && in->provider[0] ? in->provider : NULL;
    r->client_key = bearer(&r->md);
    json_object *params = NULL, *body = NULL;

    if (gcfg->nkeys > 0) {
        r->key = route_authenticate(gcfg, r->client_key);
        if (!r->key) {
            send_status(r, GRPC_STATUS_UNAUTHENTICATED,
                        r->client_key ? "Incorrect API key provided." : "Send an API key as 'authorization: Bearer KEY'.");
            goto out;
        }
        int retry_after;
        char which = limits_admit(r->key, &r->limits, &retry_after);
        if (which) {
            char msg[300];
            limits_message(r->key, which, retry_after, msg, sizeof msg);
            send_status(r, which == 'u' ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
            goto out;
        }
    }
    const char *model = in->model ? in->model : "";
    route_t route;
    route_status_t rs = route_resolve(gcfg, r->key, model, KIND_CHAT, &route);
    if (rs == ROUTE_NOT_FOUND) {
        route_t any;
        bool exists = route_resolve(gcfg, NULL, model, KIND_CHAT, &any) == ROUTE_OK;
        char msg[300];
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
    const char *model_name = model[0] ? model : m->name;
    r->model = m->name;
    r->model_slot = m->metric_slot;
    if (provider && !balance_serves_provider(gcfg, m, provider)) {
        char msg[300];
        snprintf(msg, sizeof msg, "The model '%.100s' is not served by provider '%.100s'.", model_name, provider);
        send_status(r, GRPC_STATUS_INVALID_ARGUMENT, msg);
        goto out;
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
    body = gateway_chat_body(in->prompt, in->max_tokens, params, r->kind == RPC_STREAM, err, sizeof err);
    if (!body) {
        send_status(r, GRPC_STATUS_INVALID_ARGUMENT, err);
        goto out;
    }
    validate_error_t bad;
    if (validate_request(KIND_CHAT, body, &bad) < 0) {
        send_status(r, GRPC_STATUS_INVALID_ARGUMENT, bad.message);
        goto out;
    }
    if (r->key || m->priced) {
        int retry_after;
        char which = limits_reserve_request(r->key, &r->limits, m, KIND_CHAT, strlen(in->prompt) + 64, in->max_tokens,
                                            &retry_after);
        if (which) {
            char msg[300];
            limits_message(r->key, which, retry_after, msg, sizeof msg);
            send_status(r, which == 'u' ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
            r->error = which == 'b' ? "budget_exceeded" : which == 'u' ? "cluster_unavailable" : "rate_limited";
            goto out;
        }
    }

    /* Targets of the model, then of its fallbacks, under the retry policy. */
    const cfg_model_t *chain[17];
    int nchain = 0, tried[32], ntried = 0;
    chain[nchain++] = m;
    for (int f = 0; f < m->nfallbacks && nchain < 17; f++)
        chain[nchain++] = &gcfg->models[m->fallbacks[f]];
    be_event_t last = {0};
    bool failed = false;
    for (int attempt = 1; attempt <= gcfg->retry.attempts; attempt++) {
        const cfg_model_t *cm = NULL;
        int ti = -1;
        uint64_t now = st_now_ms();
        for (int pass = 0; pass < 2 && ti < 0; pass++)
            for (int c = 0; c < nchain && ti < 0; c++) {
                ti = balance_pick(gcfg, chain[c], tried, ntried, pass == 1, provider, now);
                cm = chain[c];
            }
        if (ti < 0)
            break;
        const cfg_target_t *t = &cm->targets[ti];
        be_event_t ev = {0};
        rpc_try_t res = try_call(r, cm, cm != m, t, body, provider ? provider : "", model_name, &ev);
        failover_account(t, &ev, res != TRY_FAIL, st_now_ms());
        if (res == TRY_OK) {
            send_status(r, GRPC_STATUS_OK, "");
            goto out;
        }
        if (ev.error != BE_ERR_CLIENT_GONE) {
            r->error = be_error_name(ev.error);
            met_backend_error(r->backend_slot, ev.error == BE_ERR_CONNECT ? MET_ERR_CONNECT
                                               : ev.error == BE_ERR_TIMEOUT ? MET_ERR_TIMEOUT
                                               : ev.error == BE_ERR_HTTP_4XX ? MET_ERR_4XX
                                               : ev.error == BE_ERR_HTTP_5XX ? MET_ERR_5XX
                                                                              : MET_ERR_PROTOCOL);
        }
        last = ev;
        failed = true;
        if (res == TRY_SENT_FAIL || ev.error == BE_ERR_CLIENT_GONE || !failover_retryable(&ev) || past_deadline(r))
            break;
        if (ntried < 32)
            tried[ntried++] = t->state_slot;
        /* the same back-off as HTTP requests: doubling, with jitter, within the retry deadline */
        uint64_t step = (uint64_t)gcfg->retry.backoff_ms << (attempt - 1 < 16 ? attempt - 1 : 16);
        if (step > (uint64_t)gcfg->retry.max_backoff_ms)
            step = (uint64_t)gcfg->retry.max_backoff_ms;
        uint64_t wait = step / 2 + (step ? (uint64_t)random() % (step / 2 + 1) : 0);
        if ((http_now_us() - r->start_us) / 1000 + wait >= (uint64_t)(gcfg->retry.deadline * 1000))
            break;
        struct timespec pause = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    if (!failed) {
        send_status(r, GRPC_STATUS_UNAVAILABLE, "No backend is available for this model right now.");
        r->error = "no_available_target";
    } else if (last.error != BE_ERR_CLIENT_GONE) {
        send_status(r, status_for(&last), last.message);
    } else {
        r->code = GRPC_STATUS_CANCELLED;
        r->error = "client_abort";
    }
out:
    {
        bool client_abort = r->error && strcmp(r->error, "client_abort") == 0;
        limits_outcome_t outcome = {
            .tokens_in = r->tokens_in,
            .tokens_out = r->tokens_out,
            .tokens_cached = -1,
            .served = r->code == GRPC_STATUS_OK || (client_abort && r->chunks > 0),
            .client_abort = client_abort,
            .chunks = r->chunks,
        };
        r->cost_micro = limits_end(r->key, &r->limits, &outcome);
    }
    if (r->tokens_in > 0 || r->tokens_out > 0)
        met_tokens(r->model_slot, r->tokens_in > 0 ? (uint64_t)r->tokens_in : 0, r->tokens_out > 0 ? (uint64_t)r->tokens_out : 0);
    json_object_put(params);
    json_object_put(body);
}

static void access_log(rpc_t *r, const char *method)
{
    if (!log_access_enabled())
        return;
    buf_t b = {0};
    char ts[40];
    log_timestamp(ts, sizeof ts);
    buf_printf(&b, "{\"time\":\"%s\",\"request_id\":\"%s\",\"method\":\"GRPC\",\"path\":", ts, r->id);
    buf_append_json_string(&b, method);
    buf_printf(&b, ",\"status\":%d,\"grpc_status\":\"%s\",\"duration_ms\":%.3f,\"worker\":%d,\"key\":",
               (int)r->code, grpc_status_name(r->code),
               (double)(http_now_us() - r->start_us) / 1000.0, (int)getpid());
    if (r->key)
        buf_append_json_string(&b, r->key->name);
    else
        buf_appends(&b, "null");
    buf_appends(&b, ",\"model\":");
    if (r->model)
        buf_append_json_string(&b, r->model);
    else
        buf_appends(&b, "null");
    buf_appends(&b, ",\"backend\":");
    if (r->backend)
        buf_append_json_string(&b, r->backend);
    else
        buf_appends(&b, "null");
    if (r->cost_micro >= 0)
        buf_printf(&b, ",\"cost_usd\":%.6f", (double)r->cost_micro / 1e6);
    else
        buf_appends(&b, ",\"cost_usd\":null");
    buf_printf(&b, ",\"stream\":%s,\"error\":", r->kind != RPC_UNARY && r->kind != RPC_OTHER ? "true" : "false");
    if (r->error && r->code != GRPC_STATUS_OK)
        buf_append_json_string(&b, r->error);
    else
        buf_appends(&b, "null");
    buf_appends(&b, "}");
    log_access_line(b.data, b.len);
    buf_free(&b);
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
    free(r->client_key);
    if (r->trace)
        free(r->trace->model_asked);
    free(r->trace);
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
    r->error = reason;
    r->ended_waiting = true;
}

/* Waits for the call's pending receive (started with tag_batch). A stream that waits for its
 * client longer than limits.idle_timeout, or while the worker stops (so that it does not hold the
 * drain), is ended. */
static grpc_event await_receive(rpc_t *r)
{
    uint64_t idle_until = http_now_us() + (uint64_t)gcfg->idle_timeout * 1000000u;
    for (;;) {
        gpr_timespec poll = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(POLL_MS, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_pluck(r->cq, &tag_batch, poll, NULL);
        if (ev.type != GRPC_QUEUE_TIMEOUT)
            return ev;
        if (r->ended_waiting) /* the receive completes soon */
            continue;
        if (stopping)
            end_waiting_stream(r, "This airouter worker is stopping; call again.", "worker_stopping");
        else if (gcfg->idle_timeout > 0 && http_now_us() > idle_until)
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
                r->error = "client_abort";
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
            r->error = "client_abort";
            return;
        }
    }
}

static void *serve_thread(void *arg)
{
    rpc_t *r = arg;
    r->start_us = http_now_us();
    rand_id_hex(r->id, 8);
    grpc_op close_op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    close_op.data.recv_close_on_server.cancelled = &r->cancelled;
    grpc_call_start_batch(r->call, &close_op, 1, &tag_close, NULL);
    const char *method = r->kind == RPC_OTHER ? "(unknown)" : methods[r->kind].path;
    if (r->kind == RPC_OTHER) {
        send_status(r, GRPC_STATUS_UNIMPLEMENTED, "airouter serves ai_router.AIRouter and server reflection only");
    } else if (r->kind == RPC_REFLECT_V1 || r->kind == RPC_REFLECT_V1ALPHA) {
        serve_reflection(r);
    } else {
        met_in_flight(1);
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
        r->trace = calloc(1, sizeof *r->trace);
        if (r->trace) {
            request_t *tr = r->trace;
            tr->grpc = true;
            tr->url = method;
            tr->method = "POST";
            tr->kind = KIND_CHAT;
            tr->start_unix_ns = http_unix_ns();
            tr->tokens_in = tr->tokens_out = tr->cost_micro = -1;
            snprintf(tr->id, sizeof tr->id, "%s", r->id);
            char *tp = metadata_value(&r->md, "traceparent");
            trace_begin_with(tr, tp);
            free(tp);
            if (in && in->model && in->model[0])
                tr->model_asked = strdup(in->model);
        }
        if (!in)
            send_status(r, GRPC_STATUS_INVALID_ARGUMENT, "The request is not a valid ai_router.AIRequest.");
        else
            serve(r, in);
        /* the call is over once its close op completes: only then is `cancelled` final */
        if (!r->closed && grpc_completion_queue_pluck(r->cq, &tag_close, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type ==
                              GRPC_OP_COMPLETE)
            r->closed = true;
        if (r->trace) { /* before `in` goes: the tries may name its model */
            request_t *tr = r->trace;
            tr->grpc_code = r->cancelled && r->code == GRPC_STATUS_OK ? GRPC_STATUS_CANCELLED : (int)r->code;
            if (r->error && r->code != GRPC_STATUS_OK)
                snprintf(tr->error_reason, sizeof tr->error_reason, "%s", r->error);
            if (!tr->model_asked && r->model)
                tr->model_asked = strdup(r->model);
            tr->tokens_in = r->tokens_in;
            tr->cost_micro = r->cost_micro;
            tr->tokens_out = r->tokens_out;
            trace_request_done(tr);
        }
        ai_router__airequest__free_unpacked(in, NULL);
        met_observe(MET_H_DURATION, r->model_slot, http_now_us() - r->start_us);
        if (r->first_piece_us)
            met_observe(MET_H_TTFT, r->model_slot, r->first_piece_us - r->start_us);
        if (r->cancelled)
            met_client_abort(r->model_slot);
        /* last, in this order: a scrape reads them first (see metrics.c) */
        met_request(r->model_slot, r->backend_slot, KIND_CHAT, r->cancelled ? 499 : http_class(r->code));
        met_in_flight(-1);
    }
    if (!r->closed)
        grpc_completion_queue_pluck(r->cq, &tag_close, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    access_log(r, method);
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
    r->tokens_in = r->tokens_out = r->cost_micro = -1; /* unknown until a backend reports usage */
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
    uint64_t deadline = http_now_us() + (uint64_t)drain_s * 1000000u;
    while (grpc_api_in_flight() > 0 && http_now_us() < deadline) {
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
