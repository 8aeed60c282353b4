/* airouter's configuration schema: one table per libconfig group, and the checks that span
 * several fields of a group (names that must be unique, references to other groups by name,
 * backend types, URLs). The walker that reads the tables is common/config.c. */
#include "common/config_schema.h"
#include "common/log.h"
#include "common/urlpath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef cfg_loader_t loader_t;

/* The backend types configs may name (cfg_set_backend_types). */
static const cfg_backend_type_t *const *backend_types;
static int nbackend_types;

void cfg_set_backend_types(const cfg_backend_type_t *const *types, int n)
{
    backend_types = types;
    nbackend_types = n;
}

const char *const cfg_kind_names[KIND_COUNT] = {"chat",         "completions", "embeddings",  "speech",
                                                   "transcriptions", "translations", "images",   "moderations",
                                                   "responses",    "messages"};
const char *const cfg_log_level_names[4] = {"debug", "info", "warn", "error"};
const char *const cfg_retry_on_names[4] = {"connect", "timeout", "5xx", "429"};
const char *const cfg_strategy_names[3] = {"weighted", "least_inflight", "ordered"};
const char *const cfg_profile_names[3] = {NULL, "trtllm", "vllm"};
const char *const cfg_on_error_names[3] = {"local", "allow", "deny"};
const char *const cfg_system_names[2] = {"native", "in_user"};
static const char *const period_names[] = {NULL, "day", "week", "month", "total"};

int cfg_kind_index(unsigned kind)
{
    for (int i = 0; i < KIND_COUNT; i++)
        if (kind == 1u << i)
            return i;
    return 0;
}

const char *cfg_kind_name(unsigned kind)
{
    int i = cfg_kind_index(kind);
    return kind == 1u << i ? cfg_kind_names[i] : "unknown";
}

const char *cfg_budget_period_name(int p)
{
    return p > BUDGET_NONE && p <= BUDGET_TOTAL ? period_names[p] : "none";
}

static const cfg_field_t *field_named(const cfg_group_t *grp, const char *name)
{
    const cfg_field_t *f = grp->fields;
    while (f->name && strcmp(f->name, name) != 0)
        f++;
    return f;
}

static int parse_listen(loader_t *ld, const config_setting_t *s, const char *l, char **out_host, char **out_port)
{
    const char *colon;
    char *host;
    if (l[0] == '[') {
        const char *close = strchr(l, ']');
        if (!close || close[1] != ':')
            return cfg_fail(ld, s, "listen '%s' must be host:port", l);
        host = strndup(l + 1, (size_t)(close - l - 1));
        colon = close + 1;
    } else {
        colon = strrchr(l, ':');
        if (!colon)
            return cfg_fail(ld, s, "listen '%s' must be host:port", l);
        host = strndup(l, (size_t)(colon - l));
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!host || *end || colon[1] == '\0' || port < 1 || port > 65535) {
        free(host);
        return cfg_fail(ld, s, "listen '%s': port must be 1-65535", l);
    }
    *out_host = host;
    *out_port = strdup(colon + 1);
    return 0;
}

/* Only checks that the address parses. */
static int check_address(loader_t *ld, const config_setting_t *s, const char *l)
{
    char *h = NULL, *p = NULL;
    int rc = parse_listen(ld, s, l, &h, &p);
    free(h);
    free(p);
    return rc;
}

static int find_backend(const cfg_t *cfg, const char *name)
{
    for (int b = 0; b < cfg->nbackends; b++)
        if (strcmp(cfg->backends[b].name, name) == 0)
            return b;
    return -1;
}

/* Reads string key of g (absent: *out stays NULL). */
static int hook_string(loader_t *ld, const config_setting_t *g, const char *key, char **out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    return s ? cfg_read_string(ld, s, key, out) : 0;
}

/* ---- top level ---- */

static int listen_check(loader_t *ld, const config_setting_t *s, char *obj, const cfg_field_t *f)
{
    (void)f;
    cfg_t *cfg = (cfg_t *)(void *)obj;
    return parse_listen(ld, s, cfg->listen, &cfg->listen_host, &cfg->listen_port);
}

static int grpc_listen_check(loader_t *ld, const config_setting_t *s, char *obj, const cfg_field_t *f)
{
    (void)f;
    cfg_t *cfg = (cfg_t *)(void *)obj;
    if (!cfg->grpc_listen)
        return 0;
    if (check_address(ld, s, cfg->grpc_listen) < 0)
        return -1;
    if (strcmp(cfg->grpc_listen, cfg->listen) == 0)
        return cfg_fail(ld, s, "grpc_listen must differ from listen");
    return 0;
}

static int metrics_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)where, (void)owner;
    cfg_t *cfg = (cfg_t *)(void *)obj;
    const config_setting_t *l = config_setting_get_member(g, "listen");
    if (cfg->metrics_listen &&
        parse_listen(ld, l, cfg->metrics_listen, &cfg->metrics_listen_host, &cfg->metrics_listen_port) < 0)
        return -1;
    if (cfg->metrics_listen && strcmp(cfg->metrics_listen, cfg->listen) == 0)
        return cfg_fail(ld, l, "metrics.listen must differ from listen (leave it out to serve /metrics there)");
    return 0;
}

static int tracing_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)where, (void)owner;
    cfg_t *cfg = (cfg_t *)(void *)obj;
    if (!cfg->otlp_endpoint)
        return 0;
    if (strncmp(cfg->otlp_endpoint, "http://", 7) != 0 && strncmp(cfg->otlp_endpoint, "https://", 8) != 0)
        return cfg_fail(ld, config_setting_get_member(g, "otlp_endpoint"),
                    "tracing.otlp_endpoint must start with http:// or https://");
    size_t el = strlen(cfg->otlp_endpoint);
    while (el > 0 && cfg->otlp_endpoint[el - 1] == '/')
        cfg->otlp_endpoint[--el] = '\0';
    return 0;
}

static int retry_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)ld, (void)g, (void)where, (void)owner;
    cfg_retry_t *r = (cfg_retry_t *)(void *)obj;
    if (r->max_backoff_ms < r->backoff_ms)
        r->max_backoff_ms = r->backoff_ms;
    return 0;
}

static int cluster_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)where, (void)owner;
    cfg_cluster_t *c = (cfg_cluster_t *)(void *)obj;
    char why[160];
    if (c->redis && cfg_parse_redis_url(c->redis, &c->redis_host, &c->redis_port, &c->redis_user, &c->redis_password,
                                        &c->redis_db, why, sizeof why) < 0)
        return cfg_fail(ld, config_setting_get_member(g, "redis"), "cluster.redis %s", why);
    return 0;
}

/* ---- backends ---- */

static int health_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)owner;
    const cfg_backend_t *b = (const cfg_backend_t *)(const void *)obj;
    if (!b->health_path || b->health_path[0] != '/')
        return cfg_fail(ld, g, "%s: 'path' must start with /", where);
    return 0;
}

static int backend_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)owner;
    cfg_t *cfg = ld->cfg;
    cfg_backend_t *b = (cfg_backend_t *)(void *)obj;
    if (!b->name || !b->name[0])
        return cfg_fail(ld, g, "%s needs a 'name'", where);
    if (!b->type)
        return cfg_fail(ld, g, "backend '%s' needs a 'type'", b->name);
    for (const cfg_backend_t *o = cfg->backends; o < b; o++)
        if (strcmp(o->name, b->name) == 0)
            return cfg_fail(ld, g, "backend name '%s' is used twice", b->name);
    int t = 0;
    while (t < nbackend_types && strcmp(b->type, backend_types[t]->name) != 0)
        t++;
    if (t == nbackend_types) {
        char names[128] = "";
        for (int k = 0; k < nbackend_types; k++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "",
                     backend_types[k]->name);
        return cfg_fail(ld, config_setting_get_member(g, "type"), "backend '%s': unknown type '%s' (known: %s)", b->name,
                    b->type, names);
    }
    b->kinds = backend_types[t]->kinds;
    if (backend_types[t]->url == CFG_URL_GRPC) {
        if (b->url && strncmp(b->url, "grpc://", 7) == 0)
            memmove(b->url, b->url + 7, strlen(b->url + 7) + 1);
        if (!b->url)
            return cfg_fail(ld, g, "backend '%s' needs a 'url' of the form host:port (Triton's gRPC port)", b->name);
        if (check_address(ld, config_setting_get_member(g, "url"), b->url) < 0)
            return -1;
    }
    if (backend_types[t]->url == CFG_URL_HTTP) {
        if (!b->url || (strncmp(b->url, "http://", 7) != 0 && strncmp(b->url, "https://", 8) != 0))
            return cfg_fail(ld, g, "backend '%s' needs a 'url' starting with http:// or https://", b->name);
        size_t ul = strlen(b->url);
        while (ul > 0 && b->url[ul - 1] == '/')
            b->url[--ul] = '\0';
    }
    for (int h = 0; h < b->nheaders; h++) {
        const char *colon = strchr(b->headers[h], ':');
        if (!colon || colon == b->headers[h] || strpbrk(b->headers[h], "\r\n"))
            return cfg_fail(ld, config_setting_get_member(g, "headers"),
                        "backend '%s': header '%s' must look like \"Name: value\"", b->name, b->headers[h]);
    }
    return 0;
}

/* ---- models ---- */

/* A target's backend, by name; owner is the model ("model 'x'"). */
static int target_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)where;
    cfg_target_t *t = (cfg_target_t *)(void *)obj;
    char *backend = NULL;
    if (hook_string(ld, g, "backend", &backend) < 0)
        return -1;
    if (!backend)
        return cfg_fail(ld, g, "%s needs a 'backend' (or a 'targets' list)", owner);
    t->backend = find_backend(ld->cfg, backend);
    if (t->backend < 0)
        cfg_fail(ld, config_setting_get_member(g, "backend"), "%s: no backend named '%s'", owner, backend);
    free(backend);
    return t->backend < 0 ? -1 : 0;
}

static const cfg_group_t target_group;
static const cfg_group_t model_group;

/* A model is served by "backend" (+ "backend_model") or by a "targets" list. */
static int model_targets(loader_t *ld, const config_setting_t *g, cfg_model_t *m, const char *self)
{
    config_setting_t *list = config_setting_get_member(g, "targets");
    if (list && (config_setting_get_member(g, "backend") || config_setting_get_member(g, "backend_model")))
        return cfg_fail(ld, list, "%s: use either 'backend' or 'targets', not both", self);
    if (list) {
        if (cfg_walk_list(ld, g, field_named(&model_group, "targets"), (char *)m, self) < 0)
            return -1;
    } else {
        if (!(m->targets = calloc(1, sizeof *m->targets)))
            return cfg_fail(ld, g, "out of memory");
        m->ntargets = 1;
        if (cfg_walk_fields(ld, g, &target_group, (char *)m->targets, self) < 0 ||
            target_check(ld, g, (char *)m->targets, self, self) < 0)
            return -1;
    }
    m->backend = m->targets[0].backend;
    if (m->targets[0].backend_model && !(m->backend_model = strdup(m->targets[0].backend_model)))
        return cfg_fail(ld, g, "out of memory");
    return 0;
}

static int model_prompt_format(loader_t *ld, const config_setting_t *g, cfg_model_t *m)
{
    char *format = NULL;
    if (hook_string(ld, g, "prompt_format", &format) < 0)
        return -1;
    if (!format)
        return 0;
    const cfg_t *cfg = ld->cfg;
    m->prompt_format = prompt_builtin(format);
    for (int i = 0; !m->prompt_format && i < cfg->nformats; i++)
        if (strcmp(cfg->formats[i].name, format) == 0)
            m->prompt_format = &cfg->formats[i];
    if (!m->prompt_format)
        cfg_fail(ld, config_setting_get_member(g, "prompt_format"),
             "model '%s': unknown prompt_format '%s' (built in: %s; or one of prompt_formats)", m->name, format,
             prompt_builtin_names());
    free(format);
    return m->prompt_format ? 0 : -1;
}

static const cfg_group_t tensor_group;

/* tensor_names = { name = "override"; } kept as "name=override" pairs. */
static int model_tensor_names(loader_t *ld, const config_setting_t *g, cfg_model_t *m)
{
    config_setting_t *tn = config_setting_get_member(g, "tensor_names");
    if (!tn)
        return 0;
    char where[160];
    snprintf(where, sizeof where, "model '%s' tensor_names", m->name);
    if (!config_setting_is_group(tn))
        return cfg_fail(ld, tn, "%s must be a group %s", where, tensor_group.shape);
    if (cfg_check_keys(ld, tn, where, tensor_group.fields) < 0)
        return -1;
    int n = config_setting_length(tn);
    if (!(m->tensor_names = calloc((size_t)n + 1, sizeof *m->tensor_names)))
        return cfg_fail(ld, tn, "out of memory");
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(tn, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING || !config_setting_get_string(e)[0])
            return cfg_fail(ld, e, "%s: '%s' must be a non-empty string", where, config_setting_name(e));
        if (asprintf(&m->tensor_names[i], "%s=%s", config_setting_name(e), config_setting_get_string(e)) < 0) {
            m->tensor_names[i] = NULL;
            return cfg_fail(ld, e, "out of memory");
        }
        m->ntensor_names++;
    }
    return 0;
}

/* Triton takes tensors and a prompt: a model with a triton target must say how. */
static int check_triton(loader_t *ld, const config_setting_t *g, const cfg_model_t *m)
{
    bool on_triton = false;
    for (int t = 0; t < m->ntargets; t++)
        on_triton |= strcmp(ld->cfg->backends[m->targets[t].backend].type, "triton") == 0;
    if (on_triton && m->profile == PROFILE_NONE)
        return cfg_fail(ld, g, "model '%s' is served by Triton and needs a 'profile' (trtllm or vllm)", m->name);
    if (on_triton && !m->prompt_format && (m->kinds & KIND_CHAT))
        return cfg_fail(ld, g, "model '%s' is served by Triton and needs a 'prompt_format' (built in: %s)", m->name,
                    prompt_builtin_names());
    return 0;
}

/* Kinds: as written, or what every target's backend serves; every target must serve them. */
static int model_kinds(loader_t *ld, const config_setting_t *g, cfg_model_t *m)
{
    const cfg_t *cfg = ld->cfg;
    const config_setting_t *kinds = config_setting_get_member(g, "kinds");
    if (!kinds) {
        m->kinds = KIND_ALL;
        for (int t = 0; t < m->ntargets; t++)
            m->kinds &= cfg->backends[m->targets[t].backend].kinds;
    } else if (m->kinds & KIND_CHAT) { /* a chat model answers the Messages API through translation */
        m->kinds |= KIND_MESSAGES;
    }
    for (int t = 0; t < m->ntargets; t++) {
        const cfg_backend_t *be = &cfg->backends[m->targets[t].backend];
        unsigned refused = m->kinds & ~be->kinds;
        if (refused)
            return cfg_fail(ld, kinds, "model '%s': backend '%s' (type %s) cannot serve %s requests", m->name, be->name,
                        be->type, cfg_kind_name(refused & -refused));
    }
    return 0;
}

static int model_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)owner;
    cfg_t *cfg = ld->cfg;
    cfg_model_t *m = (cfg_model_t *)(void *)obj;
    if (!m->name || !m->name[0])
        return cfg_fail(ld, g, "%s needs a 'name'", where);
    char self[512];
    snprintf(self, sizeof self, "model '%s'", m->name);
    m->is_glob = strpbrk(m->name, "*?") != NULL;
    if (model_targets(ld, g, m, self) < 0 || model_prompt_format(ld, g, m) < 0 || model_tensor_names(ld, g, m) < 0 ||
        model_kinds(ld, g, m) < 0 || check_triton(ld, g, m) < 0)
        return -1;
    if (m->kinds == 0)
        return cfg_fail(ld, g, config_setting_get_member(g, "kinds") ? "model '%s': 'kinds' is empty"
                                                                 : "model '%s': no kind is served by every target",
                    m->name);
    unsigned defaults = 0;
    for (const cfg_model_t *o = cfg->models; o < m; o++) {
        if (strcmp(o->name, m->name) == 0)
            return cfg_fail(ld, g, "model name '%s' is used twice", m->name);
        defaults |= o->is_default ? o->kinds : 0;
    }
    if (m->is_default && (defaults & m->kinds))
        return cfg_fail(ld, config_setting_get_member(g, "default"), "model '%s': another model is already the default for %s",
                    m->name, cfg_kind_name(defaults & m->kinds & -(defaults & m->kinds)));
    return 0;
}

static int price_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)ld, (void)g, (void)where, (void)owner;
    cfg_model_t *m = (cfg_model_t *)(void *)obj;
    if (m->price_cached_input < 0)
        m->price_cached_input = m->price_input;
    m->priced = true;
    return 0;
}

/* Fallbacks name other models; resolved once every model is known. */
static int fallbacks_check(loader_t *ld, const config_setting_t *list, char *obj, const cfg_field_t *f)
{
    (void)f;
    cfg_t *cfg = (cfg_t *)(void *)obj;
    for (int i = 0; i < cfg->nmodels; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        const config_setting_t *s = config_setting_get_member(g, "fallbacks");
        cfg_model_t *m = &cfg->models[i];
        char **names = NULL;
        int n = 0, rc = s ? cfg_read_strings(ld, s, "fallbacks", &names, &n) : 0;
        if (rc == 0 && n > 0 && !(m->fallbacks = calloc((size_t)n, sizeof *m->fallbacks)))
            rc = cfg_fail(ld, g, "out of memory");
        for (int k = 0; rc == 0 && k < n; k++) {
            int idx = -1;
            for (int j = 0; j < cfg->nmodels; j++)
                if (!cfg->models[j].is_glob && strcmp(cfg->models[j].name, names[k]) == 0)
                    idx = j;
            if (idx < 0)
                rc = cfg_fail(ld, s, "model '%s': fallback '%s' is not a configured model name (globs cannot be fallbacks)",
                          m->name, names[k]);
            else if (idx == i)
                rc = cfg_fail(ld, s, "model '%s' cannot be its own fallback", m->name);
            else if ((cfg->models[idx].kinds & m->kinds) != m->kinds)
                rc = cfg_fail(ld, s, "model '%s': fallback '%s' does not serve every kind this model serves", m->name,
                          names[k]);
            else
                m->fallbacks[m->nfallbacks++] = idx;
        }
        for (int k = 0; names && k < n; k++)
            free(names[k]);
        free(names);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- prompt formats, api keys, passthrough ---- */

static int format_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)owner;
    const prompt_format_t *f = (const prompt_format_t *)(const void *)obj;
    if (!f->name || !f->name[0])
        return cfg_fail(ld, g, "%s needs a 'name'", where);
    if (prompt_builtin(f->name))
        return cfg_fail(ld, g, "prompt format '%s' is built in; give yours another name", f->name);
    return 0;
}

static int budget_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)obj, (void)where, (void)owner;
    return config_setting_get_member(g, "usd") ? 0 : cfg_fail(ld, g, "a budget needs 'usd'");
}

static int key_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)owner;
    const cfg_key_t *k = (const cfg_key_t *)(const void *)obj;
    if (!k->name || !k->name[0])
        return cfg_fail(ld, g, "%s needs a 'name' (it is what the logs show)", where);
    if (!k->key || strlen(k->key) < 8)
        return cfg_fail(ld, g, "api key '%s': 'key' must be at least 8 characters", k->name);
    for (const cfg_key_t *o = ld->cfg->keys; o < k; o++)
        if (strcmp(o->key, k->key) == 0)
            return cfg_fail(ld, g, "api key '%s' has the same key as '%s'", k->name, o->name);
    return 0;
}

static int passthrough_check(loader_t *ld, const config_setting_t *g, char *obj, const char *where, const char *owner)
{
    (void)owner;
    cfg_passthrough_t *p = (cfg_passthrough_t *)(void *)obj;
    char *backend = NULL;
    if (hook_string(ld, g, "backend", &backend) < 0)
        return -1;
    if (!p->prefix || strncmp(p->prefix, "/v1/", 4) != 0 || strlen(p->prefix) < 5 ||
        urlpath_check(p->prefix) != URLPATH_OK || !urlpath_forwardable(p->prefix) || strchr(p->prefix, '%')) {
        free(backend);
        return cfg_fail(ld, g,
                    "%s: 'prefix' must be a path under /v1/, like \"/v1/files\", without '.' or '..' segments, "
                    "escapes or characters that cannot be forwarded",
                    where);
    }
    const cfg_t *cfg = ld->cfg;
    p->backend = backend ? find_backend(cfg, backend) : -1;
    if (p->backend < 0 || strcmp(cfg->backends[p->backend].type, "openai") != 0)
        cfg_fail(ld, g, "%s: 'backend' must name an HTTP backend (type openai)%s%s", where, backend ? ", not " : "",
             backend ? backend : "");
    bool bad = p->backend < 0 || strcmp(cfg->backends[p->backend].type, "openai") != 0;
    free(backend);
    return bad ? -1 : 0;
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
static int top_check(loader_t *ld, const config_setting_t *root, char *obj, const char *where, const char *owner)
{
    (void)where, (void)owner;
    const cfg_t *cfg = (const cfg_t *)(const void *)obj;
    for (int i = 0; i < cfg->nkeys; i++) {
        const cfg_key_t *k = &cfg->keys[i];
        if (k->budget_period == BUDGET_NONE)
            continue;
        config_setting_t *at = config_setting_get_elem(config_setting_get_member(root, "api_keys"), (unsigned)i);
        for (int j = 0; j < cfg->nmodels; j++) {
            const cfg_model_t *m = &cfg->models[j];
            if (!key_reaches(k, m))
                continue;
            if (!m->priced)
                return cfg_fail(ld, at, "api key '%s' has a budget but can reach model '%s', which has no price", k->name,
                            m->name);
            for (int f = 0; f < m->nfallbacks; f++)
                if (!cfg->models[m->fallbacks[f]].priced)
                    return cfg_fail(ld, at,
                                "api key '%s' has a budget but can reach model '%s' (fallback of '%s'), which has no "
                                "price",
                                k->name, cfg->models[m->fallbacks[f]].name, m->name);
        }
        if (!cfg->cluster.redis && !cfg->state_file)
            return cfg_fail(ld, at,
                        "api key '%s' has a budget: set state_file (or a cluster group) so that its spend survives "
                        "restarts",
                        k->name);
    }
    return 0;
}

/* ---- the tables ---- */

#define SZ(st, m) sizeof(((st *)0)->m)
#define NNAMES(nm) ((int)(sizeof nm / sizeof nm[0]))
#define STR(st, key, m, def, fl) {.name = key, .type = CFG_STRING, .flags = fl, .off = offsetof(st, m), .sdef = def}
#define STRS(st, key, m, count) \
    {.name = key, .type = CFG_STRINGS, .off = offsetof(st, m), .count_off = offsetof(st, count)}
#define INT(st, key, m, lo, hi, def) \
    {.name = key, .type = CFG_INT, .off = offsetof(st, m), .size = SZ(st, m), .min = lo, .max = hi, .idef = def}
#define NUM(st, key, kind, m, hi, def) {.name = key, .type = kind, .off = offsetof(st, m), .dmax = hi, .ddef = def}
#define SECONDS(st, key, m, def) NUM(st, key, CFG_SECONDS, m, 86400, def)
#define BOOL(st, key, m, def) {.name = key, .type = CFG_BOOL, .off = offsetof(st, m), .size = SZ(st, m), .idef = def}
#define TRISTATE(st, key, m) {.name = key, .type = CFG_TRISTATE, .off = offsetof(st, m), .size = SZ(st, m), .idef = -1}
#define ENUM(st, key, m, nm, def, fl, text)                                                                      \
    {.name = key, .type = CFG_ENUM, .flags = fl, .off = offsetof(st, m), .size = SZ(st, m), .names = nm,        \
     .nnames = NNAMES(nm), .idef = def, .msg = text}
#define FLAGS(st, key, m, nm, def, text)                                                                         \
    {.name = key, .type = CFG_FLAGS, .off = offsetof(st, m), .size = SZ(st, m), .names = nm, .nnames = NNAMES(nm), \
     .idef = def, .msg = text}
#define GROUP(key, fl, at, grp) {.name = key, .type = CFG_GROUP, .flags = fl, .off = at, .group = &grp}
#define LIST(st, key, m, count, fl, grp, not_list, empty_msg)                                                     \
    {.name = key, .type = CFG_LIST, .flags = fl, .off = offsetof(st, m), .count_off = offsetof(st, count),      \
     .group = &grp, .msg = not_list, .empty = empty_msg}
#define CUSTOM(key) {.name = key, .type = CFG_CUSTOM}
#define END {0}

static const cfg_group_t log_group = {"{ ... }", (const cfg_field_t[]){
    ENUM(cfg_t, "level", log_level, cfg_log_level_names, LOG_INFO, 0, "log level must be debug, info, warn or error"),
    STR(cfg_t, "error_log", error_log, "", 0),
    STR(cfg_t, "access_log", access_log, "", 0),
    END}, 0, NULL, NULL};

static const cfg_group_t metrics_group = {"{ ... }", (const cfg_field_t[]){
    STR(cfg_t, "token", metrics_token, NULL, CFG_EMPTY_UNSET),
    STR(cfg_t, "listen", metrics_listen, NULL, 0),
    END}, 0, NULL, metrics_check};

static const cfg_group_t tracing_group = {"{ ... }", (const cfg_field_t[]){
    STR(cfg_t, "otlp_endpoint", otlp_endpoint, NULL, CFG_EMPTY_UNSET),
    STR(cfg_t, "service_name", service_name, "airouter", 0),
    INT(cfg_t, "queue_size", trace_queue_size, 1, 1000000, 2048),
    INT(cfg_t, "batch_size", trace_batch_size, 1, 10000, 256),
    INT(cfg_t, "flush_interval_ms", trace_flush_interval_ms, 10, 3600000, 1000),
    END}, 0, NULL, tracing_check};

static const cfg_group_t retry_group = {"{ ... }", (const cfg_field_t[]){
    INT(cfg_retry_t, "attempts", attempts, 1, 20, 2),
    INT(cfg_retry_t, "backoff_ms", backoff_ms, 0, 60000, 100),
    INT(cfg_retry_t, "max_backoff_ms", max_backoff_ms, 0, 600000, 2000),
    SECONDS(cfg_retry_t, "deadline", deadline, 120),
    BOOL(cfg_retry_t, "attempts_header", attempts_header, false),
    FLAGS(cfg_retry_t, "retry_on", retry_on, cfg_retry_on_names,
          RETRY_ON_CONNECT | RETRY_ON_TIMEOUT | RETRY_ON_5XX | RETRY_ON_429, "retry_on: unknown condition"),
    END}, 0, NULL, retry_check};

static const cfg_group_t circuit_group = {"{ ... }", (const cfg_field_t[]){
    INT(cfg_t, "failures", circuit_failures, 1, 1000, 5),
    SECONDS(cfg_t, "cooldown", circuit_cooldown, 30),
    NUM(cfg_t, "failure_ratio", CFG_FRACTION, circuit_failure_ratio, 1, 0), /* 0: off */
    SECONDS(cfg_t, "window", circuit_window, 60),
    INT(cfg_t, "min_requests", circuit_min_requests, 1, 1000000, 20),
    END}, 0, NULL, NULL};

static const cfg_group_t limits_group = {"{ ... }", (const cfg_field_t[]){
    INT(cfg_t, "max_body_bytes", max_body_bytes, 1024, 1LL << 34, 10 * 1024 * 1024),
    INT(cfg_t, "max_event_bytes", max_event_bytes, 1024, CFG_MAX_ANSWER_BYTES, CFG_DEFAULT_MAX_EVENT_BYTES),
    INT(cfg_t, "max_connections", max_connections, 1, 100000, 1024),
    INT(cfg_t, "idle_timeout", idle_timeout, 1, 86400, 60),
    INT(cfg_t, "drain_timeout", drain_timeout, 0, 86400, 30),
    SECONDS(cfg_t, "header_timeout", header_timeout, 10),
    INT(cfg_t, "min_body_rate", min_body_rate, 0, 1LL << 30, 1024),
    END}, 0, NULL, NULL};

static const cfg_group_t cluster_group = {"{ ... }", (const cfg_field_t[]){
    STR(cfg_cluster_t, "redis", redis, NULL, CFG_EMPTY_UNSET),
    STR(cfg_cluster_t, "key_prefix", key_prefix, "airouter:", 0),
    ENUM(cfg_cluster_t, "on_error", on_error, cfg_on_error_names, CLUSTER_ON_ERROR_LOCAL, 0,
         "cluster.on_error must be \"local\", \"allow\" or \"deny\""),
    INT(cfg_cluster_t, "timeout_ms", timeout_ms, 1, 10000, 5),
    INT(cfg_cluster_t, "hosts", hosts, 1, 1000, 1),
    END}, 0, NULL, cluster_check};

static const cfg_group_t health_group = {"{ path = \"/models\"; interval = 10; }", (const cfg_field_t[]){
    STR(cfg_backend_t, "path", health_path, "/models", 0),
    SECONDS(cfg_backend_t, "interval", health_interval, 10),
    SECONDS(cfg_backend_t, "timeout", health_timeout, 2),
    END}, 0, NULL, health_check};

static const cfg_group_t backend_group = {"{ ... }", (const cfg_field_t[]){
    STR(cfg_backend_t, "name", name, NULL, 0),
    STR(cfg_backend_t, "type", type, NULL, 0),
    STR(cfg_backend_t, "url", url, NULL, 0),
    STR(cfg_backend_t, "api_key", api_key, NULL, CFG_EMPTY_UNSET), /* "${KEY:-}" left empty: no key */
    STRS(cfg_backend_t, "headers", headers, nheaders),
    BOOL(cfg_backend_t, "pass_client_key", pass_client_key, false),
    SECONDS(cfg_backend_t, "connect_timeout", connect_timeout, 10),
    SECONDS(cfg_backend_t, "first_byte_timeout", first_byte_timeout, 300),
    SECONDS(cfg_backend_t, "idle_timeout", idle_timeout, 120),
    SECONDS(cfg_backend_t, "timeout", timeout, 600),
    BOOL(cfg_backend_t, "stream_usage", stream_usage, true),
    INT(cfg_backend_t, "chunk_delay_ms", chunk_delay_ms, 0, 60000, 0),
    GROUP("health_check", CFG_PRESENCE | CFG_OWNED, 0, health_group),
    END}, sizeof(cfg_backend_t), "backend", backend_check};

static const cfg_group_t format_group = {"{ name = ...; ... }", (const cfg_field_t[]){
    STR(prompt_format_t, "name", name, NULL, 0),
    ENUM(prompt_format_t, "system", system_in_user, cfg_system_names, 0, CFG_OWNER_MSG,
         "'system' must be native or in_user"),
    STR(prompt_format_t, "bos", bos, "", 0),
    STR(prompt_format_t, "system_prefix", system_prefix, "", 0),
    STR(prompt_format_t, "system_suffix", system_suffix, "", 0),
    STR(prompt_format_t, "user_prefix", user_prefix, "", 0),
    STR(prompt_format_t, "user_suffix", user_suffix, "", 0),
    STR(prompt_format_t, "assistant_prefix", assistant_prefix, "", 0),
    STR(prompt_format_t, "assistant_suffix", assistant_suffix, "", 0),
    STR(prompt_format_t, "generation_prompt", generation_prompt, "", 0),
    STR(prompt_format_t, "eos", eos, "", 0),
    END}, sizeof(prompt_format_t), "prompt format", format_check};

static const cfg_group_t target_group = {"{ backend = ...; }", (const cfg_field_t[]){
    CUSTOM("backend"),
    STR(cfg_target_t, "backend_model", backend_model, NULL, 0),
    INT(cfg_target_t, "weight", weight, 1, 1000, 1),
    END}, sizeof(cfg_target_t), NULL, target_check};

static const cfg_group_t price_group = {"{ input = ...; output = ...; }", (const cfg_field_t[]){
    NUM(cfg_model_t, "input", CFG_AMOUNT, price_input, 1e6, 0),
    NUM(cfg_model_t, "output", CFG_AMOUNT, price_output, 1e6, 0),
    NUM(cfg_model_t, "cached_input", CFG_AMOUNT, price_cached_input, 1e6, -1), /* -1: as input */
    END}, 0, NULL, price_check};

/* The tensors a Triton model's names may override. */
static const cfg_group_t tensor_group = {"{ name = \"override\"; }", (const cfg_field_t[]){
    CUSTOM("text_input"), CUSTOM("max_tokens"), CUSTOM("stream"), CUSTOM("temperature"), CUSTOM("top_p"),
    CUSTOM("top_k"), CUSTOM("presence_penalty"), CUSTOM("frequency_penalty"), CUSTOM("seed"), CUSTOM("stop_words"),
    CUSTOM("bad_words"), CUSTOM("exclude_input_in_output"), CUSTOM("sampling_parameters"),
    CUSTOM("return_finish_reason"), CUSTOM("return_num_input_tokens"), CUSTOM("return_num_output_tokens"),
    CUSTOM("text_output"), CUSTOM("finish_reason"), CUSTOM("num_input_tokens"), CUSTOM("num_output_tokens"),
    END}, 0, NULL, NULL};

static const cfg_group_t model_group = {"{ ... }", (const cfg_field_t[]){
    STR(cfg_model_t, "name", name, NULL, 0),
    BOOL(cfg_model_t, "default", is_default, false),
    TRISTATE(cfg_model_t, "backend_stream", backend_stream),
    INT(cfg_model_t, "max_tokens", max_tokens, 1, 10000000, 0),
    GROUP("price", CFG_PRESENCE, 0, price_group),
    CUSTOM("backend"),
    {.name = "backend_model", .type = CFG_STRING, .flags = CFG_BY_HOOK, .off = offsetof(cfg_model_t, backend_model)},
    LIST(cfg_model_t, "targets", targets, ntargets, CFG_BY_HOOK | CFG_OWNED | CFG_OWNER_MSG | CFG_LISTS_ONLY,
         target_group, "'targets' must be a non-empty list of groups ( { backend = ...; }, ... )",
         "'targets' must be a non-empty list of groups ( { backend = ...; }, ... )"),
    ENUM(cfg_model_t, "profile", profile, cfg_profile_names, PROFILE_NONE, CFG_OWNER_MSG,
         "profile must be trtllm or vllm"),
    CUSTOM("prompt_format"),
    TRISTATE(cfg_model_t, "batch_dim", batch_dim),
    BOOL(cfg_model_t, "cumulative_output", cumulative_output, false),
    BOOL(cfg_model_t, "strip_prompt", strip_prompt, false),
    {.name = "tensor_names", .type = CFG_STRINGS, .flags = CFG_BY_HOOK, .off = offsetof(cfg_model_t, tensor_names),
     .count_off = offsetof(cfg_model_t, ntensor_names), .group = &tensor_group},
    FLAGS(cfg_model_t, "kinds", kinds, cfg_kind_names, 0, "unknown kind"),
    ENUM(cfg_model_t, "strategy", strategy, cfg_strategy_names, STRATEGY_WEIGHTED, CFG_OWNER_MSG,
         "strategy must be weighted, least_inflight or ordered"),
    CUSTOM("fallbacks"),
    END}, sizeof(cfg_model_t), "model", model_check};

static const cfg_group_t budget_group = {"{ usd = ...; period = ...; }", (const cfg_field_t[]){
    NUM(cfg_key_t, "usd", CFG_AMOUNT, budget_usd, 1e7, 0),
    ENUM(cfg_key_t, "period", budget_period, period_names, BUDGET_MONTH, 0,
         "budget.period must be \"day\", \"week\", \"month\" or \"total\""),
    END}, 0, NULL, budget_check};

static const cfg_group_t key_group = {"{ ... }", (const cfg_field_t[]){
    STR(cfg_key_t, "key", key, NULL, 0),
    STR(cfg_key_t, "name", name, NULL, 0),
    STRS(cfg_key_t, "models", models, nmodels),
    INT(cfg_key_t, "rpm", rpm, 0, 100000000, 0),
    INT(cfg_key_t, "tpm", tpm, 0, 1000000000000LL, 0),
    INT(cfg_key_t, "max_concurrent", max_concurrent, 0, 1000000, 0),
    GROUP("budget", CFG_PRESENCE, 0, budget_group),
    END}, sizeof(cfg_key_t), "api key", key_check};

static const cfg_group_t passthrough_group = {"{ prefix = ...; backend = ...; }", (const cfg_field_t[]){
    STR(cfg_passthrough_t, "prefix", prefix, NULL, 0),
    CUSTOM("backend"),
    END}, sizeof(cfg_passthrough_t), NULL, passthrough_check};

/* In the order they are read: lists that name others come after them. */
const cfg_group_t cfg_schema_top = {"{ ... }", (const cfg_field_t[]){
    {.name = "listen", .type = CFG_STRING, .off = offsetof(cfg_t, listen), .sdef = "127.0.0.1:8080",
     .check = listen_check},
    STR(cfg_t, "pidfile", pidfile, "/run/airouter.pid", 0),
    INT(cfg_t, "workers", workers, 1, 256, 2),
    INT(cfg_t, "rlimit_nofile", rlimit_nofile, 64, 1LL << 30, 0), /* 0: the hard limit */
    GROUP("log", 0, 0, log_group),
    {.name = "grpc_listen", .type = CFG_STRING, .flags = CFG_EMPTY_UNSET, .off = offsetof(cfg_t, grpc_listen),
     .check = grpc_listen_check},
    GROUP("metrics", 0, 0, metrics_group),
    GROUP("tracing", 0, 0, tracing_group),
    GROUP("retry", 0, offsetof(cfg_t, retry), retry_group),
    GROUP("circuit_breaker", 0, 0, circuit_group),
    BOOL(cfg_t, "hide_unavailable_models", hide_unavailable_models, false),
    GROUP("limits", 0, 0, limits_group),
    LIST(cfg_t, "backends", backends, nbackends, CFG_REQUIRED, backend_group,
         "'backends' must be a list of groups: ( { ... }, ... )", "'backends' is empty"),
    LIST(cfg_t, "prompt_formats", formats, nformats, CFG_LISTS_ONLY, format_group,
         "'prompt_formats' must be a list of groups: ( { name = ...; ... } )", NULL),
    {.name = "models", .type = CFG_LIST, .flags = CFG_REQUIRED, .off = offsetof(cfg_t, models),
     .count_off = offsetof(cfg_t, nmodels), .group = &model_group,
     .msg = "'models' must be a list of groups: ( { ... }, ... )",
     .empty = "'models' is empty: nothing could be routed", .check = fallbacks_check},
    LIST(cfg_t, "api_keys", keys, nkeys, 0, key_group, "'api_keys' must be a list of groups: ( { ... }, ... )", NULL),
    LIST(cfg_t, "passthrough", passthrough, npassthrough, CFG_LISTS_ONLY, passthrough_group,
         "'passthrough' must be a list of groups: ( { prefix = ...; backend = ...; } )", NULL),
    GROUP("cluster", 0, offsetof(cfg_t, cluster), cluster_group),
    STR(cfg_t, "state_file", state_file, NULL, CFG_EMPTY_UNSET),
    END}, 0, NULL, top_check};

void cfg_free(cfg_t *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < cfg->nmodels; i++)
        free(cfg->models[i].fallbacks);
    cfg_free_group(&cfg_schema_top, (char *)cfg);
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->listen_port);
    free(cfg->metrics_listen_host);
    free(cfg->metrics_listen_port);
    free(cfg->cluster.redis_host);
    free(cfg->cluster.redis_user);
    free(cfg->cluster.redis_password);
    free(cfg);
}
