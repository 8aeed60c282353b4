/* What a request is, whatever protocol it came in on: the record both front ends fill and the
 * core reads (routing, key limits, failover, tracing, metrics, the access log). A front end
 * keeps its protocol's own state beside the record and lends the core a way to see whether
 * its client is still there; the core never reaches the client otherwise. */
#ifndef AIROUTER_REQUEST_H
#define AIROUTER_REQUEST_H
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/state.h"
#include "worker/core/limits.h"

typedef enum { REQUEST_HTTP, REQUEST_GRPC } request_protocol_t;

/* The client as the core sees it. */
typedef struct {
    /* Waits up to wait_ms (0: only looks) for the client to leave; true once it has gone. */
    bool (*gone)(void *ctx, int wait_ms);
    void *ctx;
    int fd;        /* the client's socket, which backends watch while they wait; -1: none */
    int check_ms;  /* the longest a wait for a backend lasts before gone() is asked again */
} request_client_t;

#define REQUEST_MAX_TRIES 8

typedef struct request {
    const cfg_t *cfg;            /* the worker's config (outlives every request) */
    request_protocol_t protocol;
    char id[72];                 /* X-Request-Id, or the call's id */
    const char *method;          /* the HTTP method; gRPC: "GRPC" (borrowed, outlives the record) */
    const char *path;            /* the URL path as sent; gRPC: the full method name (borrowed) */
    request_client_t client;
    uint64_t start_us;           /* clock_now_us */
    uint64_t start_unix_ns;
    uint64_t deadline_us;        /* the client's own deadline (gRPC), 0: none */

    /* what the request asks for */
    unsigned kind;               /* KIND_* once it is an API request, 0 otherwise */
    bool stream;
    const cfg_key_t *key;        /* authenticated key, NULL if the API is open */
    char *client_key;            /* owned: the presented key (for pass_client_key) */
    char *model_asked;           /* owned */
    char *provider;              /* owned: the ai_router API's provider filter, NULL: any */
    const char *model_routed;    /* borrowed from config */
    int model_slot;              /* metrics slots: 0 = "other" / "none" */
    int backend_slot;

    /* the tries: the last one's backend (borrowed from config) and the count made */
    const cfg_backend_t *backend;
    const char *backend_name;
    const char *backend_model;   /* borrowed from config or model_asked */
    int attempts;

    /* the answer */
    int status;                  /* HTTP: the status; gRPC: the HTTP status its code counts as */
    int grpc_code;               /* gRPC: the call's status code, -1 otherwise */
    const char *grpc_status;     /* gRPC: that code's name */
    uint64_t bytes_out;
    uint64_t first_byte_us;      /* streams: when the first event went out; others: when the answer was ready */
    uint64_t last_event_us;      /* streams: when the previous event went out */
    long long chunks_relayed;    /* streams: backend chunks relayed (a client that leaves pays for them) */
    bool client_abort;
    int retry_after_s;           /* Retry-After for the client, 0 = none */
    char error_reason[32];       /* for the access log and the trace; "" = none */
    long long tokens_in;         /* from the backend's usage; -1 unknown */
    long long tokens_out;
    long long tokens_cached;     /* prompt tokens served from the backend's cache; -1 unknown */
    long long cost_micro;        /* by the model's price, micro-dollars; -1 unknown */

    /* key limits */
    limits_ticket_t limits;      /* what key's limits hold for this request */
    bool key_usage_known;        /* limits.usage holds the key's rate-limit counts (for x-ratelimit-*) */

    /* tracing */
    char trace_id[33];
    char parent_span_id[17];     /* the client's span, "" if none */
    char client_traceparent[56]; /* the client's valid traceparent as sent (with its flags), "" if none */
    char span_id[17];
    struct {
        const cfg_backend_t *backend;
        const char *backend_model;
        uint64_t start_ns, end_ns;
        char span_id[17];
        char error[24];
    } tries[REQUEST_MAX_TRIES];  /* one per backend try (the last one answered or failed for good) */
    int ntries;                  /* tries recorded (at most REQUEST_MAX_TRIES) */
} request_t;

/* Starts a record the caller has zeroed: its clocks, unknown counts, the client. The caller sets
 * the id. */
void request_init(request_t *req, const cfg_t *cfg, request_protocol_t protocol, const char *method,
                  const char *path, const request_client_t *client);
/* From now on the request is an API request of kind: counted in flight, traced (continuing the
 * client's traceparent, NULL: none) and counted in the request metrics when it is done. */
void request_track(request_t *req, unsigned kind, const char *traceparent);
/* Waits up to wait_ms (0: only looks) for the client to leave; true once it has. */
bool request_client_gone(request_t *req, int wait_ms);

/* Notes the token counts of an OpenAI response or chunk that carries usage. */
void request_note_usage(request_t *req, json_object *obj);

/* Applies the key's per-minute and concurrency limits (with Redis, a key with tpm or a budget is
 * admitted by request_reserve, in the same call as its reservations). Returns 0 when admitted,
 * else why not ('r', 't', 'c' over a limit: 429; 'u' the shared limits cannot be reached and
 * cluster.on_error is "deny": 503) with the client's message in msg, and error_reason and
 * retry_after_s set. */
char request_admit(request_t *req, char *msg, size_t msglen);
/* Once the model is known: reserves the request's estimated tokens and cost (from its size in
 * bytes and the completion tokens it asks for at most, 0: unsaid) against the key's tokens per
 * minute and budget (limits_reserve_request; model NULL: checked, but reserves and costs
 * nothing). Every request request_admit let through comes here before it runs. Returns 0, or
 * 'b' (budget) or another refusal, as request_admit. */
char request_reserve(request_t *req, const cfg_model_t *model, size_t request_bytes, long long max_tokens,
                     char *msg, size_t msglen);

/* The request is over (status, error_reason, client_abort final): settles its key's limits,
 * counts it in the metrics, queues its trace, writes its access-log line, and frees what the
 * record owns. */
void request_finish(request_t *req);

#endif
