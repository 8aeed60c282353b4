/* Configuration: the loaded structs, loading (libconfig), ${VAR} substitution and validation.
 * The keys themselves are described in common/config_schema.h.
 * A cfg_t owns every string and array it points to; free it with cfg_free(). */
#ifndef AIROUTER_CONFIG_H
#define AIROUTER_CONFIG_H
#include <stdbool.h>
#include <stddef.h>

#include "common/prompt.h"

/* Request kinds a model can serve (bit set). */
enum {
    KIND_CHAT = 1u << 0,
    KIND_COMPLETIONS = 1u << 1,
    KIND_EMBEDDINGS = 1u << 2,
    KIND_SPEECH = 1u << 3,          /* /v1/audio/speech */
    KIND_TRANSCRIPTIONS = 1u << 4,  /* /v1/audio/transcriptions */
    KIND_TRANSLATIONS = 1u << 5,    /* /v1/audio/translations */
    KIND_IMAGES = 1u << 6,          /* /v1/images/generations, edits, variations */
    KIND_MODERATIONS = 1u << 7,     /* /v1/moderations */
    KIND_RESPONSES = 1u << 8,       /* /v1/responses */
    KIND_MESSAGES = 1u << 9,        /* /v1/messages (Anthropic's Messages API); chat models serve it too */
    KIND_COUNT = 10,
    KIND_ALL = (1u << KIND_COUNT) - 1,
};
const char *cfg_kind_name(unsigned kind);
/* 0..KIND_COUNT-1 for a single kind bit. */
int cfg_kind_index(unsigned kind);

/* A whole (non-streaming) answer from a backend is held in memory to be reshaped; a larger
 * one is refused. A stream's events are bounded by limits.max_event_bytes, never above it. */
#define CFG_MAX_ANSWER_BYTES (64u * 1024 * 1024)
#define CFG_DEFAULT_MAX_EVENT_BYTES (8u * 1024 * 1024)

/* What the loader knows of a backend type: its name in the config, the request kinds it can
 * serve and what its url is. The types are the worker's backends (worker/backend/backend.c),
 * which hand them over with cfg_set_backend_types before the first cfg_load. */
typedef enum { CFG_URL_NONE, CFG_URL_HTTP, CFG_URL_GRPC } cfg_url_kind_t;
typedef struct {
    const char *name;
    unsigned kinds;
    cfg_url_kind_t url;     /* none, http(s)://..., or a gRPC host:port */
} cfg_backend_type_t;
/* The backend types configs may name (types outlives every config). */
void cfg_set_backend_types(const cfg_backend_type_t *const *types, int n);

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
    char *health_path;      /* active health check: GET {url}{path}; NULL: none */
    double health_interval; /* seconds between checks */
    double health_timeout;
    int metric_slot;        /* index in the shared metrics (assigned by the master) */
} cfg_backend_t;

/* How a model served by Triton takes its inputs. */
enum { PROFILE_NONE, PROFILE_TRTLLM, PROFILE_VLLM };

/* Load-balancing strategies for a model with several targets. */
enum { STRATEGY_WEIGHTED, STRATEGY_LEAST_INFLIGHT, STRATEGY_ORDERED };

/* One place a model can be served: a backend and the model name it knows. */
typedef struct {
    int backend;            /* index into cfg_t.backends */
    char *backend_model;    /* NULL: pass the requested name through */
    int weight;             /* weighted round-robin share (1..1000) */
    int state_slot;         /* index in the shared target state (assigned by the master) */
} cfg_target_t;

typedef struct {
    char *name;             /* client-facing; may be a glob */
    bool is_glob;
    int backend;            /* the first target's backend (index into cfg_t.backends) */
    char *backend_model;    /* the first target's backend model; NULL: pass through */
    cfg_target_t *targets;  /* at least one; targets[0] matches backend/backend_model */
    int ntargets;
    int strategy;           /* STRATEGY_* */
    int *fallbacks;         /* model indexes tried when no target is available */
    int nfallbacks;
    unsigned kinds;         /* kinds served (explicit, or what every target's backend serves) */
    bool is_default;
    int backend_stream;     /* -1: as the client asks; 0/1: forced */
    int max_tokens;         /* default max_tokens where a backend needs one (anthropic, triton) */
    bool priced;            /* has a price group */
    double price_input;     /* dollars per million prompt tokens */
    double price_output;    /* dollars per million completion tokens */
    double price_cached_input; /* dollars per million cached prompt tokens (default: price_input) */
    /* triton targets */
    int profile;            /* PROFILE_* */
    const prompt_format_t *prompt_format; /* chat -> prompt (built-in or cfg_t.formats) */
    int batch_dim;          /* -1: the profile's; 0/1: shapes without/with a leading batch of 1 */
    bool cumulative_output; /* each streamed response holds all the text so far: send the new part */
    bool strip_prompt;      /* the answer starts with the prompt: cut it off */
    char **tensor_names;    /* "name=override" pairs, NULL-terminated */
    int ntensor_names;
    int metric_slot;        /* index in the shared metrics (assigned by the master) */
} cfg_model_t;

typedef struct {
    char *key;
    char *name;
    char **models;          /* globs; NULL/0: every model */
    int nmodels;
    long rpm;               /* requests per minute, 0: unlimited */
    long tpm;               /* tokens per minute (from usage), 0: unlimited */
    int max_concurrent;     /* requests in flight, 0: unlimited */
    double budget_usd;      /* spend allowed per budget_period; 0: no budget */
    int budget_period;      /* BUDGET_* */
    int state_slot;         /* index in the shared key state (assigned by the master) */
} cfg_key_t;

/* Budget periods, calendar-aligned in UTC; TOTAL never resets. */
enum { BUDGET_NONE, BUDGET_DAY, BUDGET_WEEK, BUDGET_MONTH, BUDGET_TOTAL };
const char *cfg_budget_period_name(int period);

/* A path prefix forwarded unchanged (but for auth) to one backend. */
typedef struct {
    char *prefix;           /* e.g. "/v1/files" */
    int backend;
} cfg_passthrough_t;

/* Shared limits across hosts (top-level "cluster" group). */
enum { CLUSTER_ON_ERROR_LOCAL, CLUSTER_ON_ERROR_ALLOW, CLUSTER_ON_ERROR_DENY };
typedef struct {
    char *redis;            /* URL as written (after ${VAR}); NULL: no cluster, limits per host */
    char *redis_host;       /* parsed from the URL */
    int redis_port;
    char *redis_user;       /* NULL: none */
    char *redis_password;   /* NULL: none */
    int redis_db;
    char *key_prefix;
    int on_error;           /* CLUSTER_ON_ERROR_* */
    int timeout_ms;         /* connect and each command */
    int hosts;              /* how many hosts share the limits (on_error = "local" divides by it) */
} cfg_cluster_t;

/* Parses redis://[[user]:password@]host[:port][/db] (also unix:///path is not supported).
 * Returns 0, or -1 with the reason in err. The out strings are malloc'd. */
int cfg_parse_redis_url(const char *url, char **host, int *port, char **user, char **password, int *db, char *err,
                        size_t errlen);

/* Retries and failover (top-level "retry" group). */
typedef struct {
    int attempts;           /* total tries per request, across targets and fallbacks */
    unsigned retry_on;      /* RETRY_ON_* bits */
    int backoff_ms;         /* first back-off; doubles per attempt, with jitter */
    int max_backoff_ms;
    double deadline;        /* seconds from the request's start after which no new try starts */
    bool attempts_header;   /* send x-airouter-attempts */
} cfg_retry_t;
enum { RETRY_ON_CONNECT = 1, RETRY_ON_TIMEOUT = 2, RETRY_ON_5XX = 4, RETRY_ON_429 = 8 };

typedef struct {
    char *path;
    char *listen;           /* as written */
    char *listen_host;      /* "" = any address */
    char *listen_port;
    int workers;
    long long rlimit_nofile; /* open files per worker; 0: the hard limit */
    char *pidfile;
    int log_level;
    char *error_log;
    char *access_log;
    size_t max_body_bytes;
    size_t max_event_bytes; /* longest stream event or line a backend may send */
    int max_connections;
    int idle_timeout;
    int drain_timeout;
    double header_timeout;  /* seconds for a whole request head */
    long min_body_rate;     /* bytes per second a body must keep up after its grace; 0: no minimum */
    cfg_backend_t *backends;
    int nbackends;
    cfg_model_t *models;
    int nmodels;
    long loaded_at;         /* unix time of loading: the "created" of listed models */
    char *grpc_listen;      /* ai_router gRPC API address ("host:port"), NULL: off */
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
    prompt_format_t *formats; /* prompt formats defined in the config */
    int nformats;
    cfg_passthrough_t *passthrough;
    int npassthrough;
    cfg_retry_t retry;
    int circuit_failures;   /* consecutive failures that open a target's circuit */
    double circuit_cooldown;/* seconds a circuit stays open before one probe */
    double circuit_failure_ratio; /* 0 = off; else failed/tries over the window that opens it */
    double circuit_window;  /* seconds */
    int circuit_min_requests;/* tries in the window before the ratio counts */
    bool hide_unavailable_models; /* /v1/models omits models with no available target */
    cfg_cluster_t cluster;
    char *state_file;       /* budgets' spend kept across restarts (no cluster); NULL: none */
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
