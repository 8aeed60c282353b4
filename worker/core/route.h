/* Model routing and client key checks, all read from the loaded config. */
#ifndef AIROUTER_ROUTE_H
#define AIROUTER_ROUTE_H
#include "common/config.h"

typedef enum {
    ROUTE_OK,
    ROUTE_NOT_FOUND,   /* no model by that name (or the key may not use it): 404 */
    ROUTE_WRONG_KIND,  /* the model exists but does not serve this kind: 400 */
} route_status_t;

typedef struct {
    const cfg_model_t *model;
    const cfg_backend_t *backend;
    const char *backend_model;  /* borrowed from the config or the request */
} route_t;

/* Resolves name for kind: exact name, first matching glob in config order, then the
 * kind's default. key (NULL when the API is open) must be allowed to use the model. */
route_status_t route_resolve(const cfg_t *cfg, const cfg_key_t *key, const char *name,
                             unsigned kind, route_t *out);
/* The model called name (exact name, else the first matching glob), or NULL: no default. */
const cfg_model_t *route_model_named(const cfg_t *cfg, const char *name);
/* The key whose secret equals presented (constant-time compare), or NULL. */
const cfg_key_t *route_authenticate(const cfg_t *cfg, const char *presented);
/* Compares a presented secret without an early exit, so timing does not reveal how
 * much of it matched. */
bool route_secret_equal(const char *presented, const char *secret);
/* Whether key may use the client-facing model name. */
bool route_key_allows(const cfg_key_t *key, const char *name);

#endif
