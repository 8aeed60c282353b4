/* The worker's HTTP server (libmicrohttpd, thread per connection) and the
 * per-request state shared with the API handlers. */
#ifndef AIROUTER_HTTP_H
#define AIROUTER_HTTP_H
#include <json-c/json.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "worker/core/limits.h"

typedef struct request {
    char id[72];                 /* X-Request-Id */
    uint64_t start_us;
    uint64_t first_byte_us;      /* streams: when the first event went out */
    const char *method;          /* MHD's; valid for the connection's life */
    const char *url;
    int endpoint;                /* index in the endpoint table, -1 none */
    bool anthropic;              /* Messages API: errors in Anthropic's shape, request-id header */
    buf_t body;                  /* owned: request body */
    size_t body_seen;            /* bytes received, including discarded ones */
    bool too_large;
    int status;
    uint64_t bytes_out;
    const cfg_key_t *key;        /* authenticated key, NULL if the API is open */
    char *client_key;            /* owned: the presented key (for pass_client_key) */
    char *model_asked;           /* owned */
    char *provider;              /* owned: ai_router gateway's provider filter, NULL: any */
    const char *model_routed;    /* borrowed from config */
    const char *backend_name;    /* borrowed from config */
    bool stream;
    unsigned kind;               /* KIND_* for API requests, 0 otherwise */
    int model_slot;              /* metrics slots: 0 = "other" / "none" */
    int backend_slot;
    long long tokens_in;         /* from the backend's usage; -1 unknown */
    long long tokens_out;
    long long tokens_cached;     /* prompt tokens served from the backend's cache; -1 unknown */
    long long cost_micro;        /* what it cost by the model's price, micro-dollars; -1 unknown */
    long long chunks_relayed;    /* streams: backend chunks relayed (a client that leaves pays for them) */
    bool client_abort;
    uint64_t last_event_us;      /* streams: when the previous event went out */
    /* tracing */
    char trace_id[33];
    char parent_span_id[17];     /* the client's span, "" if none */
    char client_traceparent[56]; /* the client's valid traceparent as sent (with its flags), "" if none */
    char span_id[17];
    uint64_t start_unix_ns;
    /* one entry per backend try (the last one answered or failed for good) */
    struct {
        const cfg_backend_t *backend;
        const char *backend_model;
        uint64_t start_ns, end_ns;
        char span_id[17];
        char error[24];
    } tries[8];
    int ntries;                  /* tries recorded (at most 8) */
    int attempts;                /* tries made */
    const char *backend_model;   /* of the last try: borrowed from config or model_asked */
    const cfg_backend_t *backend;/* of the last try, NULL before routing */
    int retry_after_s;           /* Retry-After header on the answer, 0 = none */
    bool ratelimit_headers;      /* send x-ratelimit-* (key with limits; counts in limits.usage) */
    limits_ticket_t limits;      /* what req->key's limits hold for this request */
    bool overloaded;             /* over the connection limit: answer 503 and close */
    const char *allow;           /* a 405's Allow header, if not the endpoint's methods */
    bool close_connection;       /* the request's framing cannot be trusted: answer and close */
    char error_reason[32];       /* for the access log */
    struct MHD_Connection *conn;
    /* a gRPC call's trace record (grpc_api.c): the span describes the call, not HTTP */
    bool grpc;
    int grpc_code;
} request_t;

extern const cfg_t *http_cfg;     /* the worker's config (never changes in a worker) */
extern volatile int http_draining;

/* metrics_fd: a separate socket that serves only /metrics and /health, or -1. */
int http_start(const cfg_t *cfg, int listen_fd, int metrics_fd);
/* Stops accepting; answers the requests in flight and those that arrive on open connections
 * (with Connection: close) and closes idle connections, until none is left or the drain
 * timeout passes; then stops. final: the whole service stops (see conn_watch_drain). */
void http_drain_and_stop(bool final);
unsigned http_active_requests(void);

uint64_t http_now_us(void);
uint64_t http_unix_ns(void);
/* Sends a complete response; takes ownership of nothing (body is copied). */
enum MHD_Result http_respond(request_t *req, int status, const char *content_type,
                             const char *body, size_t len);
enum MHD_Result http_respond_error(request_t *req, int status, const char *message,
                                   const char *type, const char *param, const char *code);
/* Answers a refusal of the key's limits (limits.h codes): 429 with Retry-After, type
 * "requests", "tokens" or "budget_exceeded"; 503 cluster_unavailable for 'u'. */
enum MHD_Result http_respond_limit(request_t *req, char which, int retry_after_s);
/* Once the request's model is known: takes its key's deferred admission and reserves its
 * estimated tokens and cost (limits_reserve_request, the completion asked for read from body,
 * which may be NULL). m NULL: checked against the key's limits and budget, charged nothing.
 * Returns -1 with the refusal queued in *rc. */
int http_reserve(request_t *req, unsigned kind, const cfg_model_t *m, json_object *body, enum MHD_Result *rc);
/* http_reserve for a passthrough request: charged from its answer's usage at the price of
 * the model its JSON body names, when that model has a price; else charged nothing. */
int http_reserve_passthrough(request_t *req, const char *content_type, enum MHD_Result *rc);
/* Adds the headers every response carries (request id, connection close when draining). */
void http_add_common_headers(request_t *req, struct MHD_Response *resp);
int http_client_fd(request_t *req);
/* A content reader's copy-out: hands MHD up to max bytes of pending from *off on. */
ssize_t http_hand_out(request_t *req, const buf_t *pending, size_t *off, char *out, size_t max);

#endif
