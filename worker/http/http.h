/* The worker's HTTP server (libmicrohttpd, thread per connection), its requests and the
 * replies handlers queue with. */
#ifndef AIROUTER_HTTP_H
#define AIROUTER_HTTP_H
#include <json-c/json.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "worker/core/request.h"

/* An HTTP request: the core's record of it and what only HTTP has. Handlers are given the
 * core record (&core) and reach the rest with http_of(). */
typedef struct {
    request_t core;
    struct MHD_Connection *conn;
    const struct http_route *route; /* NULL until routed */
    bool anthropic;              /* Messages API: errors in Anthropic's shape, request-id header */
    buf_t body;                  /* owned: request body */
    size_t body_seen;            /* bytes received, including discarded ones */
    bool too_large;
    bool overloaded;             /* over the connection limit: answer 503 and close */
    const char *allow;           /* a 405's Allow header, if not the endpoint's methods */
    bool close_connection;       /* the request's framing cannot be trusted: answer and close */
    enum MHD_Result answer;      /* what queuing the answer returned (MHD_NO: close the connection) */
} http_request_t;

/* The HTTP request whose core record req is (every request_t the HTTP front end hands out). */
static inline http_request_t *http_of(request_t *req)
{
    return (http_request_t *)((char *)req - offsetof(http_request_t, core));
}

/* A route's methods (GET also allows HEAD). */
enum { HTTP_GET = 1, HTTP_POST = 2, HTTP_DELETE = 4, HTTP_ANY = 8 };
/* What a route is besides its handler. */
enum {
    HTTP_ROUTE_KEY = 1,       /* needs an API key (when the config has keys) */
    HTTP_ROUTE_LIMITED = 2,   /* counts against the key's limits */
    HTTP_ROUTE_ANTHROPIC = 4, /* errors in Anthropic's shape, with a request-id header */
    HTTP_ROUTE_OPS = 8,       /* also served on the metrics listener; never refused at the connection limit */
    HTTP_ROUTE_METRICS = 16,  /* with a metrics listener, served there only; never refused at the connection limit */
};

/* A handler answers a routed request once its whole body has arrived, queuing one response. */
typedef enum MHD_Result (*http_handler_fn)(request_t *req);

typedef struct http_route {
    const char *path;         /* NULL: match says which paths the route takes, after every path route */
    bool prefix;              /* path is a prefix (with something after it) */
    unsigned methods;         /* HTTP_GET... */
    unsigned flags;           /* HTTP_ROUTE_... */
    http_handler_fn handler;
    bool (*match)(const char *path);
} http_route_t;

extern const cfg_t *http_cfg;     /* the worker's config (never changes in a worker) */
extern volatile int http_draining;

/* Serves routes (the table outlives the server) on listen_fd; metrics_fd: a separate socket
 * that serves only the HTTP_ROUTE_METRICS and HTTP_ROUTE_OPS routes, or -1. */
int http_start(const cfg_t *cfg, const http_route_t *routes, int nroutes, int listen_fd, int metrics_fd);
/* Whether a separate metrics listener serves the metrics. */
bool http_has_metrics_listener(void);
/* Stops accepting; answers the requests in flight and those that arrive on open connections
 * (with Connection: close) and closes idle connections, until none is left or the drain
 * timeout passes; then stops. final: the whole service stops (see conn_watch_drain). */
void http_drain_and_stop(bool final);
unsigned http_active_requests(void);

/* Sends a complete response; takes ownership of nothing (body is copied). */
enum MHD_Result http_respond(request_t *req, int status, const char *content_type,
                             const char *body, size_t len);
/* Queues resp (the common headers added) with status; resp is destroyed. */
enum MHD_Result http_queue(request_t *req, int status, struct MHD_Response *resp);
enum MHD_Result http_respond_error(request_t *req, int status, const char *message,
                                   const char *type, const char *param, const char *code);
/* From now on req is an API request of kind (request_track), continuing the client's
 * traceparent header. */
void http_track(request_t *req, unsigned kind);
/* How long a stream may wait for its backend before a keep-alive goes out. */
int http_keepalive_ms(void);
/* Answers a refusal of the key's limits (request_admit, request_reserve) with its message:
 * 429 with Retry-After, type "requests", "tokens" or "budget_exceeded"; 503
 * cluster_unavailable for 'u'. */
enum MHD_Result http_respond_refusal(request_t *req, char which, const char *msg);
/* Once the request's model is known: takes its key's deferred admission and reserves its
 * estimated tokens and cost (request_reserve, the completion asked for read from body, which
 * may be NULL). m NULL: checked against the key's limits and budget, charged nothing. Returns
 * -1 with the refusal queued in *rc. */
int http_reserve(request_t *req, const cfg_model_t *m, json_object *body, enum MHD_Result *rc);
/* http_reserve for a passthrough request: charged from its answer's usage at the price of
 * the model its JSON body names, when that model has a price; else charged nothing. */
int http_reserve_passthrough(request_t *req, const char *content_type, enum MHD_Result *rc);
/* A relay's content reader: hands MHD up to max bytes of pending from *off on; when they are
 * used up, refills pending with fill(relay, max) (-1: end the answer with an error) until
 * *finished says the relay is over. */
ssize_t http_relay_read(request_t *req, buf_t *pending, size_t *off, const bool *finished,
                        int (*fill)(void *relay, size_t max), void *relay, char *out, size_t max);

#endif
