#include "worker/core/route.h"

#include <string.h>

bool route_key_allows(const cfg_key_t *key, const char *name)
{
    if (!key || key->nmodels == 0)
        return true;
    for (int i = 0; i < key->nmodels; i++)
        if (cfg_glob_match(key->models[i], name))
            return true;
    return false;
}

static route_status_t finish(const cfg_t *cfg, const cfg_key_t *key, const cfg_model_t *m,
                             const char *name, bool via_default, route_t *out)
{
    /* A key limited to some models must not learn that others exist: same 404.
     * A glob entry is allowed by the requested name or by the glob itself; the
     * default only if the key may use the default model. */
    bool allowed = via_default ? route_key_allows(key, m->name)
                               : route_key_allows(key, name) || (m->is_glob && route_key_allows(key, m->name));
    if (!allowed)
        return ROUTE_NOT_FOUND;
    out->model = m;
    out->backend = &cfg->backends[m->backend];
    out->backend_model = m->backend_model ? m->backend_model : name;
    return ROUTE_OK;
}

route_status_t route_resolve(const cfg_t *cfg, const cfg_key_t *key, const char *name,
                             unsigned kind, route_t *out)
{
    bool wrong_kind = false;
    if (!name[0]) /* no model named: only the kind's default can serve */
        goto fallback_to_default;
    for (int i = 0; i < cfg->nmodels; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (!m->is_glob && strcmp(m->name, name) == 0) {
            if (!(m->kinds & kind))
                return route_key_allows(key, m->name) ? ROUTE_WRONG_KIND : ROUTE_NOT_FOUND;
            return finish(cfg, key, m, name, false, out);
        }
    }
    for (int i = 0; i < cfg->nmodels; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (m->is_glob && cfg_glob_match(m->name, name)) {
            if (m->kinds & kind)
                return finish(cfg, key, m, name, false, out);
            wrong_kind = true;
        }
    }
    if (wrong_kind)
        return route_key_allows(key, name) ? ROUTE_WRONG_KIND : ROUTE_NOT_FOUND;
fallback_to_default:
    for (int i = 0; i < cfg->nmodels; i++) {
        const cfg_model_t *m = &cfg->models[i];
        if (m->is_default && (m->kinds & kind))
            return finish(cfg, key, m, name, true, out);
    }
    return ROUTE_NOT_FOUND;
}

const cfg_model_t *route_model_named(const cfg_t *cfg, const char *name)
{
    for (int i = 0; i < cfg->nmodels; i++)
        if (!cfg->models[i].is_glob && strcmp(cfg->models[i].name, name) == 0)
            return &cfg->models[i];
    for (int i = 0; i < cfg->nmodels; i++)
        if (cfg->models[i].is_glob && cfg_glob_match(cfg->models[i].name, name))
            return &cfg->models[i];
    return NULL;
}

bool route_secret_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
    return diff == 0;
}

const cfg_key_t *route_authenticate(const cfg_t *cfg, const char *presented)
{
    const cfg_key_t *found = NULL;
    if (!presented || !presented[0])
        return NULL;
    for (int i = 0; i < cfg->nkeys; i++)
        if (route_secret_equal(presented, cfg->keys[i].key) && !found)
            found = &cfg->keys[i];
    return found;
}
