#include "common/config.h"
#include "common/log.h"
#include "common/buf.h"
#include "common/urlpath.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The backend types configs may name (cfg_set_backend_types). */
static const cfg_backend_type_t *const *backend_types;
static int nbackend_types;

void cfg_set_backend_types(const cfg_backend_type_t *const *types, int n)
{
    backend_types = types;
    nbackend_types = n;
}

static const char *kind_names[KIND_COUNT] = {"chat",   "completions", "embeddings",  "speech",   "transcriptions",
                                             "translations", "images", "moderations", "responses", "messages"};

int cfg_kind_index(unsigned kind)
{
    for (int i = 0; i < KIND_COUNT; i++)
        if (kind == 1u << i)
            return i;
    return 0;
}

const char *cfg_kind_name(unsigned kind)
{
    for (unsigned i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
        if (kind == 1u << i)
            return kind_names[i];
    return "unknown";
}

/* Loader state: the file name and the error buffer travel together. */
typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} loader_t;

__attribute__((format(printf, 3, 4))) static int fail(loader_t *ld, const config_setting_t *s,
                                                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = s ? config_setting_source_line(s) : 0;
    if (line > 0)
        snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->path, line, msg);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->path, msg);
    return -1;
}

char *cfg_expand_env(const char *in, char *missing, size_t missinglen)
{
    size_t cap = strlen(in) + 1, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = in; *p;) {
        const char *val = NULL;
        size_t vlen = 0, skip = 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (end) {
                char name[256];
                const char *def = NULL;
                size_t nlen = (size_t)(end - (p + 2));
                const char *colon = memchr(p + 2, ':', nlen);
                if (colon && colon[1] == '-') {
                    def = colon + 2;
                    nlen = (size_t)(colon - (p + 2));
                }
                if (nlen == 0 || nlen >= sizeof name) {
                    val = p;
                    vlen = 1;
                } else {
                    memcpy(name, p + 2, nlen);
                    name[nlen] = '\0';
                    const char *env = getenv(name);
                    if (env && (env[0] || !def)) {
                        val = env;
                        vlen = strlen(env);
                    } else if (def) {
                        val = def;
                        vlen = (size_t)(end - def);
                    } else {
                        if (missing)
                            snprintf(missing, missinglen, "%s", name);
                        free(out);
                        return NULL;
                    }
                    skip = (size_t)(end - p) + 1;
                }
            }
        }
        if (!val) {
            val = p;
            vlen = 1;
        }
        if (len + vlen + 1 > cap) {
            while (len + vlen + 1 > cap)
                cap *= 2;
            char *n = realloc(out, cap);
            if (!n) {
                free(out);
                return NULL;
            }
            out = n;
        }
        memcpy(out + len, val, vlen);
        len += vlen;
        p += skip;
    }
    out[len] = '\0';
    return out;
}

bool cfg_glob_match(const char *pat, const char *s)
{
    /* Iterative matcher with single-star backtracking: linear in practice. */
    const char *star = NULL, *mark = NULL;
    while (*s) {
        if (*pat == '*') { /* before the literal test: a name may contain '*' itself */
            star = pat++;
            mark = s;
        } else if (*pat == '?' || *pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++mark;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

/* Every child of group must be named in allowed (NULL-terminated). */
static int check_keys(loader_t *ld, const config_setting_t *group, const char *where,
                      const char *const *allowed)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        config_setting_t *c = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(c);
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (name && strcmp(name, *a) == 0)
                ok = true;
        if (!ok)
            return fail(ld, c, "unknown key '%s' in %s", name ? name : "?", where);
    }
    return 0;
}

/* Typed getters: absent keys leave *out untouched and return 0. */
static int get_string(loader_t *ld, const config_setting_t *g, const char *key, char **out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(ld, s, "'%s' must be a string", key);
    char missing[256];
    char *v = cfg_expand_env(config_setting_get_string(s), missing, sizeof missing);
    if (!v)
        return fail(ld, s, "'%s': environment variable %s is not set", key, missing);
    free(*out);
    *out = v;
    return 0;
}

static int get_int(loader_t *ld, const config_setting_t *g, const char *key, long long min,
                   long long max, long long *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return fail(ld, s, "'%s' must be an integer", key);
    long long v = config_setting_get_int64(s);
    if (v < min || v > max)
        return fail(ld, s, "'%s' must be between %lld and %lld", key, min, max);
    *out = v;
    return 0;
}

/* An integer or a float setting as a double; -1 for any other type. */
static int setting_number(const config_setting_t *s, double *v)
{
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        *v = (double)config_setting_get_int64(s);
    else if (t == CONFIG_TYPE_FLOAT)
        *v = config_setting_get_float(s);
    else
        return -1;
    return 0;
}

/* A number in (0, max]: integers and floats alike. kind ("a number of seconds") and unit (" seconds")
 * word the error messages. */
static int get_positive(loader_t *ld, const config_setting_t *g, const char *key, double max, const char *kind,
                        const char *unit, double *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    double v;
    if (setting_number(s, &v) < 0)
        return fail(ld, s, "'%s' must be %s", key, kind);
    if (!(v > 0 && v <= max))
        return fail(ld, s, "'%s' must be more than 0 and at most %g%s", key, max, unit);
    *out = v;
    return 0;
}

static int get_seconds(loader_t *ld, const config_setting_t *g, const char *key, double *out)
{
    return get_positive(ld, g, key, 86400, "a number of seconds", " seconds", out);
}

/* A fraction: more than 0, at most 1. */
static int get_fraction(loader_t *ld, const config_setting_t *g, const char *key, double *out)
{
    return get_positive(ld, g, key, 1, "a number", "", out);
}

/* A number from 0 to max (prices, budgets). */
static int get_amount(loader_t *ld, const config_setting_t *g, const char *key, double max, double *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    double v;
    if (setting_number(s, &v) < 0)
        return fail(ld, s, "'%s' must be a number", key);
    if (!(v >= 0 && v <= max))
        return fail(ld, s, "'%s' must be from 0 to %g", key, max);
    *out = v;
    return 0;
}

const char *cfg_budget_period_name(int p)
{
    static const char *const names[] = {"none", "day", "week", "month", "total"};
    return p >= 0 && p <= BUDGET_TOTAL ? names[p] : "none";
}

static int get_bool(loader_t *ld, const config_setting_t *g, const char *key, bool *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(ld, s, "'%s' must be true or false", key);
    *out = config_setting_get_bool(s);
    return 0;
}

/* A list or array of strings, each env-expanded. */
static int get_strings(loader_t *ld, const config_setting_t *g, const char *key, char ***out,
                       int *count)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return fail(ld, s, "'%s' must be a list of strings", key);
    int n = config_setting_length(s);
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v)
        return fail(ld, s, "out of memory");
    *out = v;
    *count = n;
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return fail(ld, e, "'%s' must be a list of strings", key);
        char missing[256];
        v[i] = cfg_expand_env(config_setting_get_string(e), missing, sizeof missing);
        if (!v[i])
            return fail(ld, e, "'%s': environment variable %s is not set", key, missing);
    }
    return 0;
}

static int parse_listen(loader_t *ld, const config_setting_t *s, const char *l, char **out_host,
                        char **out_port)
{
    const char *colon;
    char *host;
    if (l[0] == '[') {
        const char *close = strchr(l, ']');
        if (!close || close[1] != ':')
            return fail(ld, s, "listen '%s' must be host:port", l);
        host = strndup(l + 1, (size_t)(close - l - 1));
        colon = close + 1;
    } else {
        colon = strrchr(l, ':');
        if (!colon)
            return fail(ld, s, "listen '%s' must be host:port", l);
        host = strndup(l, (size_t)(colon - l));
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!host || *end || colon[1] == '\0' || port < 1 || port > 65535) {
        free(host);
        return fail(ld, s, "listen '%s': port must be 1-65535", l);
    }
    *out_host = host;
    *out_port = strdup(colon + 1);
    return 0;
}

static int parse_kinds(loader_t *ld, const config_setting_t *m, unsigned *out)
{
    char **names = NULL;
    int n = 0, rc = get_strings(ld, m, "kinds", &names, &n);
    unsigned kinds = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        unsigned k = 0;
        for (unsigned j = 0; j < sizeof kind_names / sizeof kind_names[0]; j++)
            if (strcmp(names[i], kind_names[j]) == 0)
                k = 1u << j;
        if (!k)
            rc = fail(ld, config_setting_get_member(m, "kinds"),
                      "unknown kind '%s' (known: chat, completions, embeddings, speech, transcriptions, "
                      "translations, images, moderations, responses, messages)",
                      names[i]);
        kinds |= k;
    }
    if (kinds & KIND_CHAT) /* a chat model answers the Messages API through translation */
        kinds |= KIND_MESSAGES;
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    if (rc == 0 && names)
        *out = kinds;
    return rc;
}

static const char *const top_keys[] = {"listen", "workers", "pidfile", "log", "limits",
                                       "backends", "models", "api_keys", "metrics", "tracing",
                                       "retry", "circuit_breaker", "hide_unavailable_models", "passthrough", "grpc_listen",
                                       "prompt_formats", "rlimit_nofile", "cluster", "state_file", NULL};
static const char *const price_keys[] = {"input", "output", "cached_input", NULL};
static const char *const budget_keys[] = {"usd", "period", NULL};
static const char *const cluster_keys[] = {"redis", "key_prefix", "on_error", "timeout_ms", "hosts", NULL};
static const char *const passthrough_keys[] = {"prefix", "backend", NULL};
static const char *const retry_keys[] = {"attempts", "retry_on", "backoff_ms", "max_backoff_ms", "deadline",
                                         "attempts_header", NULL};
static const char *const circuit_keys[] = {"failures", "cooldown", "failure_ratio", "window", "min_requests", NULL};
static const char *const target_keys[] = {"backend", "backend_model", "weight", NULL};
static const char *const health_keys[] = {"path", "interval", "timeout", NULL};
static const char *const metrics_keys[] = {"token", "listen", NULL};
static const char *const tracing_keys[] = {"otlp_endpoint", "service_name", "queue_size", "batch_size",
                                           "flush_interval_ms", NULL};
static const char *const log_keys[] = {"level", "error_log", "access_log", NULL};
static const char *const limit_keys[] = {"max_body_bytes", "max_event_bytes", "max_connections", "idle_timeout",
                                         "drain_timeout", "header_timeout", "min_body_rate", NULL};
static const char *const backend_keys[] = {
    "name", "type", "url", "api_key", "headers", "pass_client_key", "connect_timeout",
    "first_byte_timeout", "idle_timeout", "timeout", "chunk_delay_ms", "stream_usage", "health_check", NULL};
static const char *const model_keys[] = {"name", "backend", "backend_model", "kinds", "default",
                                         "backend_stream", "targets", "strategy", "fallbacks", "max_tokens", "profile",
                                         "prompt_format", "batch_dim", "tensor_names", "cumulative_output",
                                         "strip_prompt", "price", NULL};
static const char *const format_keys[] = {"name", "bos", "eos", "system_prefix", "system_suffix", "user_prefix", "user_suffix",
                                          "assistant_prefix", "assistant_suffix", "generation_prompt", "system",
                                          NULL};
static const char *const tensor_keys[] = {"text_input", "max_tokens", "stream", "temperature", "top_p", "top_k",
                                          "presence_penalty", "frequency_penalty", "seed", "stop_words", "bad_words",
                                          "exclude_input_in_output", "sampling_parameters", "return_finish_reason",
                                          "return_num_input_tokens", "return_num_output_tokens", "text_output",
                                          "finish_reason", "num_input_tokens", "num_output_tokens", NULL};
static const char *const key_keys[] = {"key", "name", "models", "rpm", "tpm", "max_concurrent", "budget", NULL};

const cfg_schema_group_t cfg_schema[] = {
    {"", top_keys},           {"log", log_keys},          {"limits", limit_keys},
    {"metrics", metrics_keys}, {"tracing", tracing_keys}, {"retry", retry_keys},
    {"circuit_breaker", circuit_keys}, {"backends", backend_keys}, {"backends.health_check", health_keys},
    {"models", model_keys},   {"models.targets", target_keys}, {"api_keys", key_keys},
    {"prompt_formats", format_keys}, {"passthrough", passthrough_keys}, {"cluster", cluster_keys},
    {"models.price", price_keys}, {"api_keys.budget", budget_keys}, {NULL, NULL},
};

static int load_backends(loader_t *ld, config_t *lc, cfg_t *cfg)
{
    config_setting_t *list = config_lookup(lc, "backends");
    if (!list)
        return fail(ld, NULL, "no 'backends' defined");
    if (!config_setting_is_list(list) && !config_setting_is_array(list))
        return fail(ld, list, "'backends' must be a list of groups: ( { ... }, ... )");
    int n = config_setting_length(list);
    if (n == 0)
        return fail(ld, list, "'backends' is empty");
    cfg->backends = calloc((size_t)n, sizeof *cfg->backends);
    if (!cfg->backends)
        return fail(ld, list, "out of memory");
    cfg->nbackends = n;
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        cfg_backend_t *b = &cfg->backends[i];
        char where[32];
        snprintf(where, sizeof where, "backends[%d]", i);
        b->connect_timeout = 10;
        b->first_byte_timeout = 300;
        b->idle_timeout = 120;
        b->timeout = 600;
        b->stream_usage = true;
        if (!config_setting_is_group(g))
            return fail(ld, g, "%s must be a group { ... }", where);
        long long delay = 0;
        if (check_keys(ld, g, where, backend_keys) < 0 || get_string(ld, g, "name", &b->name) < 0 ||
            get_string(ld, g, "type", &b->type) < 0 || get_string(ld, g, "url", &b->url) < 0 ||
            get_string(ld, g, "api_key", &b->api_key) < 0 ||
            get_strings(ld, g, "headers", &b->headers, &b->nheaders) < 0 ||
            get_bool(ld, g, "pass_client_key", &b->pass_client_key) < 0 ||
            get_seconds(ld, g, "connect_timeout", &b->connect_timeout) < 0 ||
            get_seconds(ld, g, "first_byte_timeout", &b->first_byte_timeout) < 0 ||
            get_seconds(ld, g, "idle_timeout", &b->idle_timeout) < 0 ||
            get_seconds(ld, g, "timeout", &b->timeout) < 0 ||
            get_bool(ld, g, "stream_usage", &b->stream_usage) < 0 ||
            get_int(ld, g, "chunk_delay_ms", 0, 60000, &delay) < 0)
            return -1;
        b->chunk_delay_ms = (int)delay;
        if (!b->name || !b->name[0])
            return fail(ld, g, "%s needs a 'name'", where);
        if (!b->type)
            return fail(ld, g, "backend '%s' needs a 'type'", b->name);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->backends[j].name, b->name) == 0)
                return fail(ld, g, "backend name '%s' is used twice", b->name);
        bool known = false;
        cfg_url_kind_t url_kind = CFG_URL_NONE;
        for (int t = 0; t < nbackend_types; t++)
            if (strcmp(b->type, backend_types[t]->name) == 0) {
                known = true;
                b->kinds = backend_types[t]->kinds;
                url_kind = backend_types[t]->url;
            }
        if (!known) {
            char names[128] = "";
            for (int t = 0; t < nbackend_types; t++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", t ? ", " : "",
                         backend_types[t]->name);
            return fail(ld, config_setting_get_member(g, "type"), "backend '%s': unknown type '%s' (known: %s)",
                        b->name, b->type, names);
        }
        if (url_kind == CFG_URL_GRPC) {
            char *h = NULL, *port = NULL;
            if (b->url && strncmp(b->url, "grpc://", 7) == 0)
                memmove(b->url, b->url + 7, strlen(b->url + 7) + 1);
            if (!b->url)
                return fail(ld, g, "backend '%s' needs a 'url' of the form host:port (Triton's gRPC port)", b->name);
            int rc = parse_listen(ld, config_setting_get_member(g, "url"), b->url, &h, &port);
            free(h);
            free(port);
            if (rc < 0)
                return -1;
        }
        if (url_kind == CFG_URL_HTTP) {
            if (!b->url || (strncmp(b->url, "http://", 7) != 0 && strncmp(b->url, "https://", 8) != 0))
                return fail(ld, g, "backend '%s' needs a 'url' starting with http:// or https://",
                            b->name);
            size_t ul = strlen(b->url);
            while (ul > 0 && b->url[ul - 1] == '/')
                b->url[--ul] = '\0';
        }
        config_setting_t *hc = config_setting_get_member(g, "health_check");
        if (hc) {
            char hwhere[96];
            snprintf(hwhere, sizeof hwhere, "backend '%s' health_check", b->name);
            b->health_interval = 10;
            b->health_timeout = 2;
            if (!config_setting_is_group(hc))
                return fail(ld, hc, "%s must be a group { path = \"/models\"; interval = 10; }", hwhere);
            if (check_keys(ld, hc, hwhere, health_keys) < 0 || get_string(ld, hc, "path", &b->health_path) < 0 ||
                get_seconds(ld, hc, "interval", &b->health_interval) < 0 ||
                get_seconds(ld, hc, "timeout", &b->health_timeout) < 0)
                return -1;
            if (!b->health_path)
                b->health_path = strdup("/models");
            if (!b->health_path || b->health_path[0] != '/')
                return fail(ld, hc, "%s: 'path' must start with /", hwhere);
        }
        if (b->api_key && !b->api_key[0]) { /* "${KEY:-}" left empty: no key */
            free(b->api_key);
            b->api_key = NULL;
        }
        for (int h = 0; h < b->nheaders; h++) {
            const char *colon = strchr(b->headers[h], ':');
            if (!colon || colon == b->headers[h] || strpbrk(b->headers[h], "\r\n"))
                return fail(ld, config_setting_get_member(g, "headers"),
                            "backend '%s': header '%s' must look like \"Name: value\"", b->name,
                            b->headers[h]);
        }
    }
    return 0;
}

static int find_backend(const cfg_t *cfg, const char *name)
{
    for (int b = 0; b < cfg->nbackends; b++)
        if (strcmp(cfg->backends[b].name, name) == 0)
            return b;
    return -1;
}

/* Reads one target ("backend", "backend_model", "weight") from group g. */
static int load_target(loader_t *ld, const config_setting_t *g, const cfg_t *cfg, const char *model,
                       cfg_target_t *t)
{
    char *backend = NULL;
    long long weight = 1;
    if (get_string(ld, g, "backend", &backend) < 0 || get_string(ld, g, "backend_model", &t->backend_model) < 0 ||
        get_int(ld, g, "weight", 1, 1000, &weight) < 0) {
        free(backend);
        return -1;
    }
    t->weight = (int)weight;
    if (!backend)
        return fail(ld, g, "model '%s' needs a 'backend' (or a 'targets' list)", model);
    t->backend = find_backend(cfg, backend);
    if (t->backend < 0) {
        fail(ld, config_setting_get_member(g, "backend"), "model '%s': no backend named '%s'", model, backend);
        free(backend);
        return -1;
    }
    free(backend);
    return 0;
}

/* A model is served by "backend" (+ "backend_model") or by a "targets" list. */
static int load_targets(loader_t *ld, const config_setting_t *g, const cfg_t *cfg, cfg_model_t *m)
{
    config_setting_t *list = config_setting_get_member(g, "targets");
    if (list && (config_setting_get_member(g, "backend") || config_setting_get_member(g, "backend_model")))
        return fail(ld, list, "model '%s': use either 'backend' or 'targets', not both", m->name);
    if (!list) {
        m->targets = calloc(1, sizeof *m->targets);
        if (!m->targets)
            return fail(ld, g, "out of memory");
        m->ntargets = 1;
        if (load_target(ld, g, cfg, m->name, &m->targets[0]) < 0)
            return -1;
    } else {
        if (!config_setting_is_list(list) || config_setting_length(list) == 0)
            return fail(ld, list, "model '%s': 'targets' must be a non-empty list of groups ( { backend = ...; }, ... )",
                        m->name);
        int n = config_setting_length(list);
        m->targets = calloc((size_t)n, sizeof *m->targets);
        if (!m->targets)
            return fail(ld, list, "out of memory");
        m->ntargets = n;
        for (int i = 0; i < n; i++) {
            config_setting_t *tg = config_setting_get_elem(list, (unsigned)i);
            char where[160];
            snprintf(where, sizeof where, "model '%s' targets[%d]", m->name, i);
            if (!config_setting_is_group(tg))
                return fail(ld, tg, "%s must be a group { backend = ...; }", where);
            if (check_keys(ld, tg, where, target_keys) < 0 || load_target(ld, tg, cfg, m->name, &m->targets[i]) < 0)
                return -1;
        }
    }
    m->backend = m->targets[0].backend;
    if (m->targets[0].backend_model && !(m->backend_model = strdup(m->targets[0].backend_model)))
        return fail(ld, g, "out of memory");
    return 0;
}

/* Model keys for Triton targets: profile, prompt_format, batch_dim, tensor_names. */
static int load_triton_keys(loader_t *ld, const config_setting_t *g, const cfg_t *cfg, cfg_model_t *m)
{
    char *profile = NULL, *format = NULL;
    bool bd = false;
    m->batch_dim = -1;
    if (get_string(ld, g, "profile", &profile) < 0 || get_string(ld, g, "prompt_format", &format) < 0 ||
        get_bool(ld, g, "batch_dim", &bd) < 0) {
        free(profile);
        free(format);
        return -1;
    }
    if (config_setting_get_member(g, "batch_dim"))
        m->batch_dim = bd;
    if (get_bool(ld, g, "cumulative_output", &m->cumulative_output) < 0 || get_bool(ld, g, "strip_prompt", &m->strip_prompt) < 0)
        return -1;
    int rc = 0;
    if (profile) {
        m->profile = strcmp(profile, "trtllm") == 0 ? PROFILE_TRTLLM : strcmp(profile, "vllm") == 0 ? PROFILE_VLLM : -1;
        if (m->profile < 0)
            rc = fail(ld, config_setting_get_member(g, "profile"), "model '%s': profile must be trtllm or vllm",
                      m->name);
    }
    if (rc == 0 && format) {
        m->prompt_format = prompt_builtin(format);
        for (int i = 0; !m->prompt_format && i < cfg->nformats; i++)
            if (strcmp(cfg->formats[i].name, format) == 0)
                m->prompt_format = &cfg->formats[i];
        if (!m->prompt_format)
            rc = fail(ld, config_setting_get_member(g, "prompt_format"),
                      "model '%s': unknown prompt_format '%s' (built in: %s; or one of prompt_formats)", m->name,
                      format, prompt_builtin_names());
    }
    free(profile);
    free(format);
    if (rc < 0)
        return -1;
    config_setting_t *tn = config_setting_get_member(g, "tensor_names");
    if (tn) {
        char where[160];
        snprintf(where, sizeof where, "model '%s' tensor_names", m->name);
        if (!config_setting_is_group(tn))
            return fail(ld, tn, "%s must be a group { name = \"override\"; }", where);
        if (check_keys(ld, tn, where, tensor_keys) < 0)
            return -1;
        int n = config_setting_length(tn);
        m->tensor_names = calloc((size_t)n + 1, sizeof *m->tensor_names);
        if (!m->tensor_names)
            return fail(ld, tn, "out of memory");
        for (int i = 0; i < n; i++) {
            config_setting_t *e = config_setting_get_elem(tn, (unsigned)i);
            if (config_setting_type(e) != CONFIG_TYPE_STRING || !config_setting_get_string(e)[0])
                return fail(ld, e, "%s: '%s' must be a non-empty string", where, config_setting_name(e));
            size_t len = strlen(config_setting_name(e)) + strlen(config_setting_get_string(e)) + 2;
            m->tensor_names[i] = malloc(len);
            if (!m->tensor_names[i])
                return fail(ld, e, "out of memory");
            snprintf(m->tensor_names[i], len, "%s=%s", config_setting_name(e), config_setting_get_string(e));
            m->ntensor_names++;
        }
    }
    return 0;
}

/* Triton takes tensors and a prompt: a model with a triton target must say how. */
static int check_triton(loader_t *ld, const config_setting_t *g, const cfg_t *cfg, const cfg_model_t *m)
{
    /* Triton takes a prompt: every triton target needs to know how to build one. */
    bool on_triton = false;
    for (int t = 0; t < m->ntargets; t++)
        on_triton |= strcmp(cfg->backends[m->targets[t].backend].type, "triton") == 0;
    if (on_triton && m->profile == PROFILE_NONE)
        return fail(ld, g, "model '%s' is served by Triton and needs a 'profile' (trtllm or vllm)", m->name);
    if (on_triton && !m->prompt_format && (m->kinds & KIND_CHAT))
        return fail(ld, g, "model '%s' is served by Triton and needs a 'prompt_format' (built in: %s)", m->name,
                    prompt_builtin_names());
    return 0;
}

static int load_formats(loader_t *ld, config_t *lc, cfg_t *cfg)
{
    config_setting_t *list = config_lookup(lc, "prompt_formats");
    if (!list)
        return 0;
    if (!config_setting_is_list(list))
        return fail(ld, list, "'prompt_formats' must be a list of groups: ( { name = ...; ... } )");
    int n = config_setting_length(list);
    cfg->formats = calloc((size_t)n + 1, sizeof *cfg->formats);
    if (!cfg->formats)
        return fail(ld, list, "out of memory");
    cfg->nformats = n;
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        prompt_format_t *f = &cfg->formats[i];
        char where[40], *system = NULL;
        snprintf(where, sizeof where, "prompt_formats[%d]", i);
        char **fields[] = {&f->bos,         &f->system_prefix,    &f->system_suffix,    &f->user_prefix, &f->user_suffix,
                           &f->assistant_prefix, &f->assistant_suffix, &f->generation_prompt, &f->eos};
        const char *names[] = {"bos", "system_prefix", "system_suffix", "user_prefix", "user_suffix",
                               "assistant_prefix", "assistant_suffix", "generation_prompt", "eos"};
        if (!config_setting_is_group(g))
            return fail(ld, g, "%s must be a group { name = ...; ... }", where);
        if (check_keys(ld, g, where, format_keys) < 0 || get_string(ld, g, "name", &f->name) < 0 ||
            get_string(ld, g, "system", &system) < 0)
            return -1;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            if (get_string(ld, g, names[k], fields[k]) < 0)
                return -1;
            if (!*fields[k] && !(*fields[k] = strdup("")))
                return fail(ld, g, "out of memory");
        }
        if (!f->name || !f->name[0])
            return fail(ld, g, "%s needs a 'name'", where);
        if (prompt_builtin(f->name))
            return fail(ld, g, "prompt format '%s' is built in; give yours another name", f->name);
        f->system_in_user = system && strcmp(system, "in_user") == 0;
        bool bad = system && strcmp(system, "in_user") != 0 && strcmp(system, "native") != 0;
        free(system);
        if (bad)
            return fail(ld, config_setting_get_member(g, "system"),
                        "prompt format '%s': 'system' must be native or in_user", f->name);
    }
    return 0;
}

/* Fallbacks name other models; resolved once every model is known. */
static int load_fallbacks(loader_t *ld, const config_setting_t *list, cfg_t *cfg)
{
    for (int i = 0; i < cfg->nmodels; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        cfg_model_t *m = &cfg->models[i];
        char **names = NULL;
        int n = 0, rc = get_strings(ld, g, "fallbacks", &names, &n);
        if (rc == 0 && n > 0 && !(m->fallbacks = calloc((size_t)n, sizeof *m->fallbacks)))
            rc = fail(ld, g, "out of memory");
        for (int f = 0; rc == 0 && f < n; f++) {
            int idx = -1;
            for (int j = 0; j < cfg->nmodels; j++)
                if (!cfg->models[j].is_glob && strcmp(cfg->models[j].name, names[f]) == 0)
                    idx = j;
            if (idx < 0)
                rc = fail(ld, config_setting_get_member(g, "fallbacks"),
                          "model '%s': fallback '%s' is not a configured model name (globs cannot be fallbacks)",
                          m->name, names[f]);
            else if (idx == i)
                rc = fail(ld, config_setting_get_member(g, "fallbacks"), "model '%s' cannot be its own fallback",
                          m->name);
            else if ((cfg->models[idx].kinds & m->kinds) != m->kinds)
                rc = fail(ld, config_setting_get_member(g, "fallbacks"),
                          "model '%s': fallback '%s' does not serve every kind this model serves", m->name, names[f]);
            else
                m->fallbacks[m->nfallbacks++] = idx;
        }
        for (int f = 0; names && f < n; f++)
            free(names[f]);
        free(names);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int load_models(loader_t *ld, config_t *lc, cfg_t *cfg)
{
    config_setting_t *list = config_lookup(lc, "models");
    if (!list)
        return fail(ld, NULL, "no 'models' defined");
    if (!config_setting_is_list(list) && !config_setting_is_array(list))
        return fail(ld, list, "'models' must be a list of groups: ( { ... }, ... )");
    int n = config_setting_length(list);
    if (n == 0)
        return fail(ld, list, "'models' is empty: nothing could be routed");
    cfg->models = calloc((size_t)n + 1, sizeof *cfg->models);
    if (!cfg->models)
        return fail(ld, list, "out of memory");
    cfg->nmodels = n;
    unsigned defaults = 0;
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        cfg_model_t *m = &cfg->models[i];
        char where[32];
        snprintf(where, sizeof where, "models[%d]", i);
        m->backend_stream = -1;
        if (!config_setting_is_group(g))
            return fail(ld, g, "%s must be a group { ... }", where);
        bool bs = false;
        if (check_keys(ld, g, where, model_keys) < 0 || get_string(ld, g, "name", &m->name) < 0 ||
            get_bool(ld, g, "default", &m->is_default) < 0 ||
            get_bool(ld, g, "backend_stream", &bs) < 0)
            return -1;
        if (config_setting_get_member(g, "backend_stream"))
            m->backend_stream = bs;
        long long mt = 0;
        if (get_int(ld, g, "max_tokens", 1, 10000000, &mt) < 0)
            return -1;
        m->max_tokens = (int)mt;
        config_setting_t *price = config_setting_get_member(g, "price");
        if (price) {
            if (!config_setting_is_group(price))
                return fail(ld, price, "'price' must be a group { input = ...; output = ...; }");
            m->price_cached_input = -1;
            if (check_keys(ld, price, "price", price_keys) < 0 ||
                get_amount(ld, price, "input", 1e6, &m->price_input) < 0 ||
                get_amount(ld, price, "output", 1e6, &m->price_output) < 0 ||
                get_amount(ld, price, "cached_input", 1e6, &m->price_cached_input) < 0)
                return -1;
            if (m->price_cached_input < 0)
                m->price_cached_input = m->price_input;
            m->priced = true;
        }
        if (!m->name || !m->name[0])
            return fail(ld, g, "%s needs a 'name'", where);
        m->is_glob = strpbrk(m->name, "*?") != NULL;
        if (load_targets(ld, g, cfg, m) < 0 || load_triton_keys(ld, g, cfg, m) < 0) /* needs the targets */
            return -1;
        unsigned served = KIND_ALL;
        for (int t = 0; t < m->ntargets; t++)
            served &= cfg->backends[m->targets[t].backend].kinds;
        m->kinds = served;
        if (parse_kinds(ld, g, &m->kinds) < 0)
            return -1;
        for (int t = 0; t < m->ntargets; t++) {
            const cfg_backend_t *be = &cfg->backends[m->targets[t].backend];
            unsigned refused = m->kinds & ~be->kinds;
            if (refused)
                return fail(ld, config_setting_get_member(g, "kinds"),
                            "model '%s': backend '%s' (type %s) cannot serve %s requests", m->name, be->name,
                            be->type, cfg_kind_name(refused & -refused));
        }
        if (check_triton(ld, g, cfg, m) < 0)
            return -1;
        if (m->kinds == 0)
            return fail(ld, g, config_setting_get_member(g, "kinds") ? "model '%s': 'kinds' is empty"
                                                                     : "model '%s': no kind is served by every target",
                        m->name);
        char *strategy = NULL;
        if (get_string(ld, g, "strategy", &strategy) < 0)
            return -1;
        if (strategy) {
            m->strategy = strcmp(strategy, "weighted") == 0       ? STRATEGY_WEIGHTED
                          : strcmp(strategy, "least_inflight") == 0 ? STRATEGY_LEAST_INFLIGHT
                          : strcmp(strategy, "ordered") == 0        ? STRATEGY_ORDERED
                                                                    : -1;
            free(strategy);
            if (m->strategy < 0)
                return fail(ld, config_setting_get_member(g, "strategy"),
                            "model '%s': strategy must be weighted, least_inflight or ordered", m->name);
        }
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->models[j].name, m->name) == 0)
                return fail(ld, g, "model name '%s' is used twice", m->name);
        if (m->is_default) {
            if (defaults & m->kinds)
                return fail(ld, config_setting_get_member(g, "default"),
                            "model '%s': another model is already the default for %s", m->name,
                            cfg_kind_name(defaults & m->kinds & -(defaults & m->kinds)));
            defaults |= m->kinds;
        }
    }
    return load_fallbacks(ld, list, cfg);
}

static int load_keys(loader_t *ld, config_t *lc, cfg_t *cfg)
{
    config_setting_t *list = config_lookup(lc, "api_keys");
    if (!list)
        return 0;
    if (!config_setting_is_list(list) && !config_setting_is_array(list))
        return fail(ld, list, "'api_keys' must be a list of groups: ( { ... }, ... )");
    int n = config_setting_length(list);
    cfg->keys = calloc((size_t)n + 1, sizeof *cfg->keys);
    if (!cfg->keys)
        return fail(ld, list, "out of memory");
    cfg->nkeys = n;
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        cfg_key_t *k = &cfg->keys[i];
        char where[32];
        snprintf(where, sizeof where, "api_keys[%d]", i);
        if (!config_setting_is_group(g))
            return fail(ld, g, "%s must be a group { ... }", where);
        long long rpm = 0, tpm = 0, conc = 0;
        if (check_keys(ld, g, where, key_keys) < 0 || get_string(ld, g, "key", &k->key) < 0 ||
            get_string(ld, g, "name", &k->name) < 0 ||
            get_strings(ld, g, "models", &k->models, &k->nmodels) < 0 ||
            get_int(ld, g, "rpm", 0, 100000000, &rpm) < 0 || get_int(ld, g, "tpm", 0, 1000000000000LL, &tpm) < 0 ||
            get_int(ld, g, "max_concurrent", 0, 1000000, &conc) < 0)
            return -1;
        k->rpm = (long)rpm;
        k->tpm = (long)tpm;
        k->max_concurrent = (int)conc;
        config_setting_t *budget = config_setting_get_member(g, "budget");
        if (budget) {
            char *period = NULL;
            if (!config_setting_is_group(budget))
                return fail(ld, budget, "'budget' must be a group { usd = ...; period = ...; }");
            if (check_keys(ld, budget, "budget", budget_keys) < 0 ||
                get_amount(ld, budget, "usd", 1e7, &k->budget_usd) < 0 || get_string(ld, budget, "period", &period) < 0) {
                free(period);
                return -1;
            }
            k->budget_period = BUDGET_MONTH;
            if (period) {
                k->budget_period = BUDGET_NONE;
                for (int p = BUDGET_DAY; p <= BUDGET_TOTAL; p++)
                    if (strcmp(period, cfg_budget_period_name(p)) == 0)
                        k->budget_period = p;
                free(period);
                if (k->budget_period == BUDGET_NONE)
                    return fail(ld, config_setting_get_member(budget, "period"),
                                "budget.period must be \"day\", \"week\", \"month\" or \"total\"");
            }
            if (!config_setting_get_member(budget, "usd"))
                return fail(ld, budget, "a budget needs 'usd'");
        }
        if (!k->name || !k->name[0])
            return fail(ld, g, "%s needs a 'name' (it is what the logs show)", where);
        if (!k->key || strlen(k->key) < 8)
            return fail(ld, g, "api key '%s': 'key' must be at least 8 characters", k->name);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->keys[j].key, k->key) == 0)
                return fail(ld, g, "api key '%s' has the same key as '%s'", k->name,
                            cfg->keys[j].name);
    }
    return 0;
}

static int load_passthrough(loader_t *ld, config_t *lc, cfg_t *cfg)
{
    config_setting_t *list = config_lookup(lc, "passthrough");
    if (!list)
        return 0;
    if (!config_setting_is_list(list))
        return fail(ld, list, "'passthrough' must be a list of groups: ( { prefix = ...; backend = ...; } )");
    int n = config_setting_length(list);
    cfg->passthrough = calloc((size_t)n + 1, sizeof *cfg->passthrough);
    if (!cfg->passthrough)
        return fail(ld, list, "out of memory");
    cfg->npassthrough = n;
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        cfg_passthrough_t *p = &cfg->passthrough[i];
        char where[32], *backend = NULL;
        snprintf(where, sizeof where, "passthrough[%d]", i);
        if (!config_setting_is_group(g))
            return fail(ld, g, "%s must be a group { prefix = ...; backend = ...; }", where);
        if (check_keys(ld, g, where, passthrough_keys) < 0 || get_string(ld, g, "prefix", &p->prefix) < 0 ||
            get_string(ld, g, "backend", &backend) < 0) {
            free(backend);
            return -1;
        }
        if (!p->prefix || strncmp(p->prefix, "/v1/", 4) != 0 || strlen(p->prefix) < 5 ||
            urlpath_check(p->prefix) != URLPATH_OK || !urlpath_forwardable(p->prefix) || strchr(p->prefix, '%')) {
            free(backend);
            return fail(ld, g,
                        "%s: 'prefix' must be a path under /v1/, like \"/v1/files\", without '.' or '..' segments, "
                        "escapes or characters that cannot be forwarded",
                        where);
        }
        p->backend = backend ? find_backend(cfg, backend) : -1;
        if (p->backend < 0 || strcmp(cfg->backends[p->backend].type, "openai") != 0) {
            fail(ld, g, "%s: 'backend' must name an HTTP backend (type openai)%s%s", where, backend ? ", not " : "",
                 backend ? backend : "");
            free(backend);
            return -1;
        }
        free(backend);
    }
    return 0;
}

static int load_top(loader_t *ld, config_t *lc, cfg_t *cfg)
{
    config_setting_t *root = config_root_setting(lc);
    if (check_keys(ld, root, "the top level", top_keys) < 0)
        return -1;
    cfg->listen = strdup("127.0.0.1:8080");
    cfg->pidfile = strdup("/run/airouter.pid");
    cfg->error_log = strdup("");
    cfg->access_log = strdup("");
    if (!cfg->listen || !cfg->pidfile || !cfg->error_log || !cfg->access_log)
        return fail(ld, NULL, "out of memory");
    cfg->workers = 2;
    cfg->log_level = 1;
    cfg->max_body_bytes = 10 * 1024 * 1024;
    cfg->max_event_bytes = CFG_DEFAULT_MAX_EVENT_BYTES;
    cfg->max_connections = 1024;
    cfg->idle_timeout = 60;
    cfg->drain_timeout = 30;
    cfg->header_timeout = 10;
    cfg->min_body_rate = 1024;
    long long v;
    if (get_string(ld, root, "listen", &cfg->listen) < 0 ||
        get_string(ld, root, "pidfile", &cfg->pidfile) < 0)
        return -1;
    if (parse_listen(ld, config_setting_get_member(root, "listen"), cfg->listen, &cfg->listen_host,
                     &cfg->listen_port) < 0)
        return -1;
    v = cfg->workers;
    if (get_int(ld, root, "workers", 1, 256, &v) < 0)
        return -1;
    cfg->workers = (int)v;
    v = 0;
    if (get_int(ld, root, "rlimit_nofile", 64, 1LL << 30, &v) < 0)
        return -1;
    cfg->rlimit_nofile = v;
    config_setting_t *log = config_setting_get_member(root, "log");
    if (log) {
        char *level = NULL;
        if (!config_setting_is_group(log))
            return fail(ld, log, "'log' must be a group { ... }");
        if (check_keys(ld, log, "log", log_keys) < 0 || get_string(ld, log, "level", &level) < 0 ||
            get_string(ld, log, "error_log", &cfg->error_log) < 0 ||
            get_string(ld, log, "access_log", &cfg->access_log) < 0) {
            free(level);
            return -1;
        }
        if (level) {
            cfg->log_level = log_level_parse(level);
            free(level);
            if (cfg->log_level < 0)
                return fail(ld, config_setting_get_member(log, "level"),
                            "log level must be debug, info, warn or error");
        }
    }
    if (get_string(ld, root, "grpc_listen", &cfg->grpc_listen) < 0)
        return -1;
    if (cfg->grpc_listen && !cfg->grpc_listen[0]) {
        free(cfg->grpc_listen);
        cfg->grpc_listen = NULL;
    }
    if (cfg->grpc_listen) {
        char *h = NULL, *p = NULL;
        int rc = parse_listen(ld, config_setting_get_member(root, "grpc_listen"), cfg->grpc_listen, &h, &p);
        free(h);
        free(p);
        if (rc < 0)
            return -1;
        if (strcmp(cfg->grpc_listen, cfg->listen) == 0)
            return fail(ld, config_setting_get_member(root, "grpc_listen"), "grpc_listen must differ from listen");
    }
    config_setting_t *met = config_setting_get_member(root, "metrics");
    if (met) {
        if (!config_setting_is_group(met))
            return fail(ld, met, "'metrics' must be a group { ... }");
        if (check_keys(ld, met, "metrics", metrics_keys) < 0 ||
            get_string(ld, met, "token", &cfg->metrics_token) < 0 ||
            get_string(ld, met, "listen", &cfg->metrics_listen) < 0)
            return -1;
        if (cfg->metrics_token && !cfg->metrics_token[0]) {
            free(cfg->metrics_token);
            cfg->metrics_token = NULL;
        }
        if (cfg->metrics_listen &&
            (parse_listen(ld, config_setting_get_member(met, "listen"), cfg->metrics_listen,
                          &cfg->metrics_listen_host, &cfg->metrics_listen_port) < 0))
            return -1;
        if (cfg->metrics_listen && strcmp(cfg->metrics_listen, cfg->listen) == 0)
            return fail(ld, config_setting_get_member(met, "listen"),
                        "metrics.listen must differ from listen (leave it out to serve /metrics there)");
    }
    cfg->service_name = strdup("airouter");
    cfg->trace_queue_size = 2048;
    cfg->trace_batch_size = 256;
    cfg->trace_flush_interval_ms = 1000;
    config_setting_t *tr = config_setting_get_member(root, "tracing");
    if (tr) {
        if (!config_setting_is_group(tr))
            return fail(ld, tr, "'tracing' must be a group { ... }");
        long long q = cfg->trace_queue_size, bs = cfg->trace_batch_size, fi = cfg->trace_flush_interval_ms;
        if (check_keys(ld, tr, "tracing", tracing_keys) < 0 ||
            get_string(ld, tr, "otlp_endpoint", &cfg->otlp_endpoint) < 0 ||
            get_string(ld, tr, "service_name", &cfg->service_name) < 0 ||
            get_int(ld, tr, "queue_size", 1, 1000000, &q) < 0 ||
            get_int(ld, tr, "batch_size", 1, 10000, &bs) < 0 ||
            get_int(ld, tr, "flush_interval_ms", 10, 3600000, &fi) < 0)
            return -1;
        cfg->trace_queue_size = (int)q;
        cfg->trace_batch_size = (int)bs;
        cfg->trace_flush_interval_ms = (int)fi;
        if (cfg->otlp_endpoint && !cfg->otlp_endpoint[0]) {
            free(cfg->otlp_endpoint);
            cfg->otlp_endpoint = NULL;
        }
        if (cfg->otlp_endpoint) {
            if (strncmp(cfg->otlp_endpoint, "http://", 7) != 0 && strncmp(cfg->otlp_endpoint, "https://", 8) != 0)
                return fail(ld, config_setting_get_member(tr, "otlp_endpoint"),
                            "tracing.otlp_endpoint must start with http:// or https://");
            size_t el = strlen(cfg->otlp_endpoint);
            while (el > 0 && cfg->otlp_endpoint[el - 1] == '/')
                cfg->otlp_endpoint[--el] = '\0';
        }
    }
    cfg->retry = (cfg_retry_t){.attempts = 2,
                               .retry_on = RETRY_ON_CONNECT | RETRY_ON_TIMEOUT | RETRY_ON_5XX | RETRY_ON_429,
                               .backoff_ms = 100, .max_backoff_ms = 2000, .deadline = 120};
    config_setting_t *rt = config_setting_get_member(root, "retry");
    if (rt) {
        long long at = cfg->retry.attempts, bo = cfg->retry.backoff_ms, mb = cfg->retry.max_backoff_ms;
        char **on = NULL;
        int non = 0;
        if (!config_setting_is_group(rt))
            return fail(ld, rt, "'retry' must be a group { ... }");
        int rc = check_keys(ld, rt, "retry", retry_keys) < 0 || get_int(ld, rt, "attempts", 1, 20, &at) < 0 ||
                         get_int(ld, rt, "backoff_ms", 0, 60000, &bo) < 0 ||
                         get_int(ld, rt, "max_backoff_ms", 0, 600000, &mb) < 0 ||
                         get_seconds(ld, rt, "deadline", &cfg->retry.deadline) < 0 ||
                         get_bool(ld, rt, "attempts_header", &cfg->retry.attempts_header) < 0 ||
                         get_strings(ld, rt, "retry_on", &on, &non) < 0
                     ? -1
                     : 0;
        if (rc == 0 && on) {
            cfg->retry.retry_on = 0;
            for (int i = 0; rc == 0 && i < non; i++) {
                unsigned bit = strcmp(on[i], "connect") == 0   ? RETRY_ON_CONNECT
                               : strcmp(on[i], "timeout") == 0 ? RETRY_ON_TIMEOUT
                               : strcmp(on[i], "5xx") == 0     ? RETRY_ON_5XX
                               : strcmp(on[i], "429") == 0     ? RETRY_ON_429
                                                               : 0;
                if (!bit)
                    rc = fail(ld, config_setting_get_member(rt, "retry_on"),
                              "retry_on: unknown condition '%s' (known: connect, timeout, 5xx, 429)", on[i]);
                cfg->retry.retry_on |= bit;
            }
        }
        for (int i = 0; on && i < non; i++)
            free(on[i]);
        free(on);
        if (rc < 0)
            return -1;
        cfg->retry.attempts = (int)at;
        cfg->retry.backoff_ms = (int)bo;
        cfg->retry.max_backoff_ms = (int)(mb < bo ? bo : mb);
    }
    cfg->circuit_failures = 5;
    cfg->circuit_cooldown = 30;
    cfg->circuit_failure_ratio = 0; /* off */
    cfg->circuit_window = 60;
    cfg->circuit_min_requests = 20;
    config_setting_t *cb = config_setting_get_member(root, "circuit_breaker");
    if (cb) {
        long long f = cfg->circuit_failures, mr = cfg->circuit_min_requests;
        if (!config_setting_is_group(cb))
            return fail(ld, cb, "'circuit_breaker' must be a group { ... }");
        if (check_keys(ld, cb, "circuit_breaker", circuit_keys) < 0 || get_int(ld, cb, "failures", 1, 1000, &f) < 0 ||
            get_seconds(ld, cb, "cooldown", &cfg->circuit_cooldown) < 0 ||
            get_fraction(ld, cb, "failure_ratio", &cfg->circuit_failure_ratio) < 0 ||
            get_seconds(ld, cb, "window", &cfg->circuit_window) < 0 ||
            get_int(ld, cb, "min_requests", 1, 1000000, &mr) < 0)
            return -1;
        cfg->circuit_failures = (int)f;
        cfg->circuit_min_requests = (int)mr;
    }
    if (get_bool(ld, root, "hide_unavailable_models", &cfg->hide_unavailable_models) < 0)
        return -1;
    config_setting_t *lim = config_setting_get_member(root, "limits");
    if (lim) {
        if (!config_setting_is_group(lim))
            return fail(ld, lim, "'limits' must be a group { ... }");
        if (check_keys(ld, lim, "limits", limit_keys) < 0)
            return -1;
        v = (long long)cfg->max_body_bytes;
        if (get_int(ld, lim, "max_body_bytes", 1024, 1LL << 34, &v) < 0)
            return -1;
        cfg->max_body_bytes = (size_t)v;
        v = (long long)cfg->max_event_bytes;
        if (get_int(ld, lim, "max_event_bytes", 1024, (long long)CFG_MAX_ANSWER_BYTES, &v) < 0)
            return -1;
        cfg->max_event_bytes = (size_t)v;
        v = cfg->max_connections;
        if (get_int(ld, lim, "max_connections", 1, 100000, &v) < 0)
            return -1;
        cfg->max_connections = (int)v;
        v = cfg->idle_timeout;
        if (get_int(ld, lim, "idle_timeout", 1, 86400, &v) < 0)
            return -1;
        cfg->idle_timeout = (int)v;
        v = cfg->drain_timeout;
        if (get_int(ld, lim, "drain_timeout", 0, 86400, &v) < 0)
            return -1;
        cfg->drain_timeout = (int)v;
        if (get_seconds(ld, lim, "header_timeout", &cfg->header_timeout) < 0)
            return -1;
        v = cfg->min_body_rate;
        if (get_int(ld, lim, "min_body_rate", 0, 1LL << 30, &v) < 0)
            return -1;
        cfg->min_body_rate = (long)v;
    }
    return 0;
}

/* libconfig 1.5 silently truncates an integer literal beyond 32 bits unless it ends in L
 * (tpm = 5000000000 would load as 705032704). Returns a copy of text in which every such
 * literal outside strings and comments has its L, so large limits mean what they say;
 * lines keep their numbers. NULL when out of memory. */
static char *widen_large_integers(const char *text, size_t len)
{
    char *out = malloc(len + len / 2 + 2), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '"') { /* a string, with its escapes */
            *o++ = text[i++];
            while (i < len && text[i] != '"') {
                if (text[i] == '\\' && i + 1 < len)
                    *o++ = text[i++];
                *o++ = text[i++];
            }
            if (i < len)
                *o++ = text[i++];
        } else if (c == '#' || (c == '/' && i + 1 < len && text[i + 1] == '/')) {
            while (i < len && text[i] != '\n')
                *o++ = text[i++];
        } else if (c == '/' && i + 1 < len && text[i + 1] == '*') {
            *o++ = text[i++];
            *o++ = text[i++];
            while (i < len && !(text[i] == '*' && i + 1 < len && text[i + 1] == '/'))
                *o++ = text[i++];
        } else if (c >= '0' && c <= '9' &&
                   (i == 0 || !(isalnum((unsigned char)text[i - 1]) || text[i - 1] == '_' || text[i - 1] == '.'))) {
            size_t start = i;
            bool hex = c == '0' && i + 1 < len && (text[i + 1] == 'x' || text[i + 1] == 'X');
            if (hex)
                i += 2;
            while (i < len && (hex ? isxdigit((unsigned char)text[i]) : isdigit((unsigned char)text[i])))
                i++;
            bool integer = i >= len || !(isalnum((unsigned char)text[i]) || text[i] == '_' || text[i] == '.');
            errno = 0;
            unsigned long long v = strtoull(text + start, NULL, hex ? 16 : 10);
            bool wide = v > 2147483647ULL || errno == ERANGE;
            memcpy(o, text + start, i - start);
            o += i - start;
            if (integer && wide)
                *o++ = 'L';
        } else {
            *o++ = text[i++];
        }
    }
    *o = '\0';
    return out;
}

/* The file's text with large integers widened, or NULL with errno set. */
static char *read_config_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    buf_t raw = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&raw, chunk, n);
    int failed = ferror(f);
    fclose(f);
    char *text = failed ? NULL : widen_large_integers(raw.data ? raw.data : "", raw.len);
    buf_free(&raw);
    if (failed)
        errno = EIO;
    return text;
}

int cfg_parse_redis_url(const char *url, char **host, int *port, char **user, char **password, int *db, char *err,
                        size_t errlen)
{
    *host = *user = *password = NULL;
    *port = 6379;
    *db = 0;
    if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen,
                 "asks for TLS (rediss://), which this build of airouter cannot do (hiredis %d.%d, without TLS): "
                 "use redis:// on a private network, or through a TLS tunnel (stunnel, spiped)",
                 HIREDIS_MAJOR, HIREDIS_MINOR);
        return -1;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "must start with redis://");
        return -1;
    }
    const char *p = url + 8, *end = p + strcspn(p, "/?#");
    const char *at = memrchr(p, '@', (size_t)(end - p));
    if (at) { /* [user]:password@ or password@ */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                *user = strndup(p, (size_t)(colon - p));
            *password = strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            *password = strndup(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *hend = end;
    if (*p == '[') { /* [v6]:port */
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            goto bad;
        *host = strndup(p + 1, (size_t)(close - p - 1));
        hend = close + 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        *host = strndup(p, (size_t)(hend - p));
    }
    if (!*host || !**host)
        goto bad;
    if (hend < end) {
        if (*hend != ':' || hend + 1 == end)
            goto bad;
        char *e;
        long v = strtol(hend + 1, &e, 10);
        if (e != end || v < 1 || v > 65535)
            goto bad;
        *port = (int)v;
    }
    if (*end == '/' && end[1]) {
        char *e;
        long v = strtol(end + 1, &e, 10);
        if (*e || v < 0 || v > 1000000)
            goto bad;
        *db = (int)v;
    } else if (*end && *end != '/') {
        goto bad;
    }
    return 0;
bad:
    snprintf(err, errlen, "must be redis://[[user]:password@]host[:port][/db]");
    free(*host);
    free(*user);
    free(*password);
    *host = *user = *password = NULL;
    return -1;
}

static int load_cluster(loader_t *ld, config_t *lc, cfg_t *cfg)
{
    cfg_cluster_t *c = &cfg->cluster;
    c->timeout_ms = 5;
    c->hosts = 1;
    c->on_error = CLUSTER_ON_ERROR_LOCAL;
    if (!(c->key_prefix = strdup("airouter:")))
        return fail(ld, NULL, "out of memory");
    config_setting_t *g = config_lookup(lc, "cluster");
    if (!g)
        return 0;
    if (!config_setting_is_group(g))
        return fail(ld, g, "'cluster' must be a group { ... }");
    char *on_error = NULL;
    long long timeout = c->timeout_ms, hosts = c->hosts;
    if (check_keys(ld, g, "cluster", cluster_keys) < 0 || get_string(ld, g, "redis", &c->redis) < 0 ||
        get_string(ld, g, "key_prefix", &c->key_prefix) < 0 || get_string(ld, g, "on_error", &on_error) < 0 ||
        get_int(ld, g, "timeout_ms", 1, 10000, &timeout) < 0 || get_int(ld, g, "hosts", 1, 1000, &hosts) < 0) {
        free(on_error);
        return -1;
    }
    c->timeout_ms = (int)timeout;
    c->hosts = (int)hosts;
    if (on_error) {
        static const char *const names[] = {"local", "allow", "deny"};
        int found = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(on_error, names[i]) == 0)
                found = i;
        free(on_error);
        if (found < 0)
            return fail(ld, config_setting_get_member(g, "on_error"),
                        "cluster.on_error must be \"local\", \"allow\" or \"deny\"");
        c->on_error = found;
    }
    if (c->redis && !c->redis[0]) { /* as -T prints "no cluster" */
        free(c->redis);
        c->redis = NULL;
    }
    if (!c->redis)
        return 0;
    char why[160];
    if (cfg_parse_redis_url(c->redis, &c->redis_host, &c->redis_port, &c->redis_user, &c->redis_password,
                            &c->redis_db, why, sizeof why) < 0)
        return fail(ld, config_setting_get_member(g, "redis"), "cluster.redis %s", why);
    return 0;
}

/* Whether a request with key k can end up served under model m (directly or as a glob). */
static bool key_reaches(const cfg_key_t *k, const cfg_model_t *m)
{
    if (k->nmodels == 0)
        return true;
    for (int i = 0; i < k->nmodels; i++)
        if (cfg_glob_match(k->models[i], m->name) || (m->is_glob && cfg_glob_match(m->name, k->models[i])))
            return true;
    return false;
}

/* A key with a budget must reach only priced models (fallbacks included); its spend must be
 * kept somewhere that outlives a restart. */
static int check_budgets(loader_t *ld, config_t *lc, cfg_t *cfg)
{
    config_setting_t *top = config_root_setting(lc);
    if (get_string(ld, top, "state_file", &cfg->state_file) < 0)
        return -1;
    if (cfg->state_file && !cfg->state_file[0]) {
        free(cfg->state_file);
        cfg->state_file = NULL;
    }
    for (int i = 0; i < cfg->nkeys; i++) {
        const cfg_key_t *k = &cfg->keys[i];
        if (k->budget_period == BUDGET_NONE)
            continue;
        config_setting_t *where = config_setting_get_elem(config_lookup(lc, "api_keys"), (unsigned)i);
        for (int j = 0; j < cfg->nmodels; j++) {
            const cfg_model_t *m = &cfg->models[j];
            if (!key_reaches(k, m))
                continue;
            if (!m->priced)
                return fail(ld, where, "api key '%s' has a budget but can reach model '%s', which has no price", k->name,
                            m->name);
            for (int f = 0; f < m->nfallbacks; f++)
                if (!cfg->models[m->fallbacks[f]].priced)
                    return fail(ld, where, "api key '%s' has a budget but can reach model '%s' (fallback of '%s'), which has no price",
                                k->name, cfg->models[m->fallbacks[f]].name, m->name);
        }
        if (!cfg->cluster.redis && !cfg->state_file)
            return fail(ld, where, "api key '%s' has a budget: set state_file (or a cluster group) so that its spend survives restarts",
                        k->name);
    }
    return 0;
}

cfg_t *cfg_load(const char *path, char *err, size_t errlen)
{
    loader_t ld = {path, err, errlen};
    config_t lc;
    cfg_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    config_init(&lc);
    char *text = read_config_text(path);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read file: %s", path, strerror(errno));
        goto fail;
    }
    int parsed = config_read_string(&lc, text);
    free(text);
    if (!parsed) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read file: %s", path, strerror(errno));
        else
            snprintf(err, errlen, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
                     config_error_line(&lc), config_error_text(&lc));
        goto fail;
    }
    cfg->path = strdup(path);
    cfg->loaded_at = (long)time(NULL);
    if (!cfg->path || load_top(&ld, &lc, cfg) < 0 || load_backends(&ld, &lc, cfg) < 0 ||
        load_formats(&ld, &lc, cfg) < 0 || load_models(&ld, &lc, cfg) < 0 || load_keys(&ld, &lc, cfg) < 0 || load_passthrough(&ld, &lc, cfg) < 0 ||
        load_cluster(&ld, &lc, cfg) < 0 || check_budgets(&ld, &lc, cfg) < 0)
        goto fail;
    config_destroy(&lc);
    return cfg;
fail:
    config_destroy(&lc);
    cfg_free(cfg);
    return NULL;
}

static void free_strings(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void cfg_free(cfg_t *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < cfg->nbackends; i++) {
        cfg_backend_t *b = &cfg->backends[i];
        free(b->name);
        free(b->type);
        free(b->url);
        free(b->api_key);
        free(b->health_path);
        free_strings(b->headers, b->nheaders);
    }
    free(cfg->backends);
    for (int i = 0; i < cfg->nmodels; i++) {
        free(cfg->models[i].name);
        free(cfg->models[i].backend_model);
        for (int t = 0; t < cfg->models[i].ntargets; t++)
            free(cfg->models[i].targets[t].backend_model);
        free_strings(cfg->models[i].tensor_names, cfg->models[i].ntensor_names);
        free(cfg->models[i].targets);
        free(cfg->models[i].fallbacks);
    }
    free(cfg->models);
    for (int i = 0; i < cfg->nformats; i++) {
        prompt_format_t *f = &cfg->formats[i];
        char *fields[] = {f->name, f->bos, f->system_prefix, f->system_suffix, f->user_prefix, f->user_suffix,
                          f->assistant_prefix, f->assistant_suffix, f->generation_prompt, f->eos};
        for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
            free(fields[k]);
    }
    free(cfg->formats);
    for (int i = 0; i < cfg->npassthrough; i++)
        free(cfg->passthrough[i].prefix);
    free(cfg->passthrough);
    for (int i = 0; i < cfg->nkeys; i++) {
        free(cfg->keys[i].key);
        free(cfg->keys[i].name);
        free_strings(cfg->keys[i].models, cfg->nkeys ? cfg->keys[i].nmodels : 0);
    }
    free(cfg->keys);
    free(cfg->cluster.redis);
    free(cfg->cluster.redis_host);
    free(cfg->cluster.redis_user);
    free(cfg->cluster.redis_password);
    free(cfg->cluster.key_prefix);
    free(cfg->state_file);
    free(cfg->path);
    free(cfg->listen);
    free(cfg->listen_host);
    free(cfg->listen_port);
    free(cfg->pidfile);
    free(cfg->error_log);
    free(cfg->access_log);
    free(cfg->grpc_listen);
    free(cfg->metrics_token);
    free(cfg->metrics_listen);
    free(cfg->metrics_listen_host);
    free(cfg->metrics_listen_port);
    free(cfg->otlp_endpoint);
    free(cfg->service_name);
    free(cfg);
}
