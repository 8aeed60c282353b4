/* The interface every backend type implements. The HTTP layer only talks to this:
 * open a call, pull events until END or ERROR, close (which cancels if unfinished).
 * Backends speak OpenAI shapes to the HTTP layer: a whole response object, or a
 * sequence of OpenAI stream chunks. */
#ifndef AIROUTER_BACKEND_H
#define AIROUTER_BACKEND_H
#include <json-c/json.h>
#include <stdbool.h>
#include <sys/uio.h>

#include "common/buf.h"
#include "common/config.h"

typedef struct be_call be_call_t;

/* The Messages API version airouter speaks (sent as anthropic-version on every call). */
#define ANTHROPIC_VERSION "2023-06-01"

typedef struct {
    unsigned kind;                 /* KIND_CHAT, ... */
    const cfg_backend_t *backend;
    const cfg_model_t *model;      /* the model entry being served (its backend options) */
    const char *backend_model;     /* name the backend knows the model by */
    const char *client_model;      /* name the client asked for (errors say this one) */
    json_object *body;             /* the client's request (borrowed); model already rewritten */
    bool stream;                   /* call the backend in streaming mode */
    bool want_usage;               /* a streaming call should report usage */
    int max_tokens;                /* the model's default max_tokens (0: the backend's) */
    const char *client_key;        /* the key the client presented (for pass_client_key) */
    const char *request_id;
    const char *traceparent;       /* W3C trace context for the backend, "" for none */
    int client_fd;                 /* watched so a departed client cancels the call */
    size_t max_event_bytes;        /* longest stream event (or line of one) the backend may send */
    /* The caller relays chunks to an OpenAI client as they are: a backend that speaks OpenAI
     * may hand a chunk out as its JSON text, model already renamed to client_model, instead of
     * parsing it (chunks with usage or an error still come parsed). */
    bool chunk_text;
} be_request_t;

/* A request relayed as bytes (audio, images, moderations, responses, passthrough):
 * the HTTP layer keeps the body, the backend sends its segments without copying. */
typedef struct {
    const cfg_backend_t *backend;
    const char *method;            /* GET, POST, DELETE, ... */
    const char *path;              /* appended to the backend URL (which ends in /v1) */
    bool beside_v1;                /* path replaces the URL's trailing /v1 (vLLM's /tokenize) */
    const char *query;             /* without '?', or NULL */
    const char *content_type;      /* of the body, or NULL */
    const struct iovec *body;      /* segments, sent in order; must outlive the call */
    int nbody;
    const char *const *extra_headers; /* NULL-terminated "Name: value" lines, or NULL */
    const char *key_header;        /* the header the backend key goes in; NULL: Authorization: Bearer */
    const char *backend_model;     /* errors: this name is replaced by client_model */
    const char *client_model;
    bool sanitise_errors;          /* false: error answers are relayed as they are */
    const char *client_key;
    const char *request_id;
    const char *traceparent;
    int client_fd;
} be_raw_request_t;

typedef enum {
    BE_EV_PENDING,   /* nothing within the wait: the caller may send a keep-alive */
    BE_EV_RESPONSE,  /* a whole (non-streaming) response object in ev->obj */
    BE_EV_CHUNK,     /* one stream chunk in ev->obj, or (chunk_text) NULL and its text in data/len */
    BE_EV_END,       /* the stream finished normally */
    BE_EV_ERROR,     /* failure: see the error fields */
    BE_EV_HEADERS,   /* byte relay: the backend's status and content type */
    BE_EV_DATA,      /* byte relay: ev->data/ev->len, valid until the next call */
} be_event_type_t;

/* Why a call failed; the HTTP layer maps it to a status and logs it. */
typedef enum {
    BE_ERR_NONE,
    BE_ERR_CONNECT,     /* backend unreachable */
    BE_ERR_TIMEOUT,     /* connect, first-byte, idle or total timeout */
    BE_ERR_HTTP_4XX,    /* backend rejected the request: status passed through */
    BE_ERR_HTTP_5XX,
    BE_ERR_PROTOCOL,    /* unparseable or truncated answer */
    BE_ERR_CLIENT_GONE, /* the client disconnected; nothing more to send */
    BE_ERR_INTERNAL,
} be_error_t;

typedef struct {
    be_event_type_t type;
    json_object *obj;          /* RESPONSE/CHUNK: owned by the receiver (json_object_put) */
    be_error_t error;          /* ERROR */
    int status;                /* ERROR: HTTP status for the client */
    char message[512];         /* ERROR: client-safe message (no backend details) */
    char err_type[48];         /* ERROR: OpenAI error type */
    char err_code[48];         /* ERROR: OpenAI error code, "" = null */
    char err_param[64];        /* ERROR: the offending parameter, "" = null */
    int retry_after_s;         /* ERROR: the backend's Retry-After (429/503), 0 = none */
    const char *data;          /* DATA, and CHUNK as text; valid until the next call */
    size_t len;
    char content_type[128];    /* HEADERS */
} be_event_t;

typedef struct {
    cfg_backend_type_t type;       /* its name in the config, the kinds it serves, what its url is */
    /* Once per worker after fork; may be NULL. */
    int (*worker_init)(void);
    void (*worker_cleanup)(void);
    /* Starts a call. Returns NULL and fills ev (ERROR) on immediate failure. */
    be_call_t *(*open)(const be_request_t *req, be_event_t *ev);
    /* Blocks up to wait_ms for the next event (PENDING when nothing came). */
    void (*next)(be_call_t *call, be_event_t *ev, int wait_ms);
    /* Ends the call, cancelling the transfer if it is unfinished. */
    void (*close)(be_call_t *call);
    /* Byte relay, for backend types that serve more than chat, completions and
     * embeddings (NULL: they do not). Closed with close(). */
    be_call_t *(*open_raw)(const be_raw_request_t *req, be_event_t *ev);
    void (*next_raw)(be_call_t *call, be_event_t *ev, int wait_ms);
    /* Readiness of a backend that is not checked over HTTP (Triton's ServerReady and,
     * for model, ModelReady); NULL: none. Returns 0 when ready, else -1 and why. */
    int (*probe)(const cfg_backend_t *be, const char *model, int timeout_ms, char *why, size_t whylen);
} backend_ops_t;

/* The backend module for a config type name, or NULL. */
const backend_ops_t *be_lookup(const char *type);
/* Tells the config loader which backend types there are (cfg_set_backend_types): once, before the
 * first cfg_load of any process that loads configs. */
void be_describe_types(void);
/* Once per worker after fork: the worker_init of each backend type cfg uses (a type's libraries
 * cost memory only if used), and the secrets be_scrub_secrets knows. */
int be_worker_init(const cfg_t *cfg);
void be_worker_cleanup(void);

/* A short name for logs, metrics and traces ("backend_timeout", "client_abort"...). */
const char *be_error_name(be_error_t e);

/* Fills ev as an ERROR event. */
void be_event_error(be_event_t *ev, be_error_t err, int status, const char *type,
                    const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* For backend types that produce one choice per request: true (and ev filled as a 400 on
 * param n) when the request asks for more, so a client never silently gets fewer choices. */
bool be_refuse_many_choices(const be_request_t *req, be_event_t *ev, const char *backend_name);

/* Copies a backend's error text into msg (size bytes) fit for a client: every configured
 * backend secret (see be_scrub_secrets) becomes "[redacted]", be's URL "the backend" and
 * backend_model client_model. Works on the whole text before it is cut to size, so no
 * part of a secret survives the cut. */
void be_client_message(char *msg, size_t size, const char *text, const cfg_backend_t *be,
                       const char *backend_model, const char *client_model);
/* Replaces every configured backend secret in b (any bytes) with "[redacted]": the api_key of
 * every backend, and the values of headers whose names say they carry a credential (with and
 * without their "Bearer " scheme). Returns -1 when out of memory (b is then emptied). */
int be_scrub_secrets(buf_t *b);

/* True if the client on fd has closed its end (polls, never blocks). */
bool be_client_gone(int fd);

#endif
