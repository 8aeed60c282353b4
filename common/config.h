/* Configuration: schema, loading (libconfig), ${VAR} substitution and validation.
 * A cfg_t owns every string and array it points to; free it with cfg_free(). */
#ifndef AIROUTER_CONFIG_H
#define AIROUTER_CONFIG_H
#include <stdbool.h>
#include <stddef.h>

/* Request kinds a model can serve (bit set). */
enum {
    KIND_CHAT = 1u << 0,
    KIND_COMPLETIONS = 1u << 1,
    KIND_EMBEDDINGS = 1u << 2,
    KIND_ALL = (1u << 3) - 1,
};
const char *cfg_kind_name(unsigned kind);

typedef struct {
    char *name;
    char *type;             /* "echo", "openai" */
    unsigned kinds;         /* kinds this backend type can serve */
    char *url;              /* openai: base URL including /v1, no trailing slash */
    char *api_key;          /* NULL: none */
    char **headers;         /* "Name: value" lines */
    int nheaders;
    bool pass_client_key;
    double connect_timeout; /* seconds */
    double first_byte_timeout;
    double idle_timeout;
    double timeout;         /* whole non-streaming call */
    int chunk_delay_ms;     /* echo only */
    bool stream_usage;      /* ask streaming calls for usage (token metrics) */
    int metric_slot;        /* index in the shared metrics (assigned by the master) */
} cfg_backend_t;

typedef struct {
    char *name;             /* client-facing; may be a glob */
    bool is_glob;
    int backend;            /* index into cfg_t.backends */
    char *backend_model;    /* NULL: pass the requested name through */
    unsigned kinds;         /* kinds served (explicit or the backend's) */
    bool is_default;
    int backend_stream;     /* -1: as the client asks; 0/1: forced */
    int metric_slot;        /* index in the shared metrics (assigned by the master) */
} cfg_model_t;

typedef struct {
    char *key;
    char *name;
    char **models;          /* globs; NULL/0: every model */
    int nmodels;
} cfg_key_t;

typedef struct {
    char *path;
    char *listen;           /* as written */
    char *listen_host;      /* "" = any address */
    char *listen_port;
    int workers;
    char *pidfile;
    int log_level;
    char *error_log;
    char *access_log;
    size_t max_body_bytes;
    int max_connections;
    int idle_timeout;
    int drain_timeout;
    cfg_backend_t *backends;
    int nbackends;
    cfg_model_t *models;
    int nmodels;
    long loaded_at;         /* unix time of loading: the "created" of listed models */
    char *metrics_token;    /* NULL: /metrics is open */
    char *metrics_listen;   /* NULL: /metrics on the main listener */
    char *metrics_listen_host, *metrics_listen_port;
    char *otlp_endpoint;    /* NULL: tracing off */
    char *service_name;
    int trace_queue_size;
    int trace_batch_size;
    int trace_flush_interval_ms;
    cfg_key_t *keys;
    int nkeys;
} cfg_t;

/* Loads and validates path. On failure returns NULL and writes "FILE:LINE: reason"
 * (or "FILE: reason") into err. */
cfg_t *cfg_load(const char *path, char *err, size_t errlen);
void cfg_free(cfg_t *cfg);

/* Replaces ${VAR} and ${VAR:-default} from the environment. Returns a malloc'd
 * string, or NULL with the missing variable's name in missing (if given). */
char *cfg_expand_env(const char *in, char *missing, size_t missinglen);

/* Shell-style glob match (* and ?) used for model names and key model lists. */
bool cfg_glob_match(const char *pattern, const char *name);

#endif
