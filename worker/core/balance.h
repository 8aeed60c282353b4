/* Choosing a target for one try: skips targets whose circuit is open, that are
 * blocked by a Retry-After or whose backend fails its health check, then applies
 * the model's strategy (weighted round-robin, least in-flight, ordered). */
#ifndef AIROUTER_BALANCE_H
#define AIROUTER_BALANCE_H
#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

/* Returns a target index of m, or -1 when none is usable now. Targets whose state
 * slots are in avoid[] (already tried) are skipped unless allow_avoided. */
int balance_pick(const cfg_t *cfg, const cfg_model_t *m, const int *avoid, int navoid, bool allow_avoided,
                 const char *provider, uint64_t now);
/* Whether a target of m (or of its fallbacks) is on a backend named provider or of
 * that type. */
bool balance_serves_provider(const cfg_t *cfg, const cfg_model_t *m, const char *provider);
/* Whether a target may be used for provider (NULL: any). */
bool balance_provider_match(const cfg_t *cfg, const cfg_target_t *t, const char *provider);

/* Whether any target of m could take a request now (for /ready and /v1/models). */
bool balance_model_available(const cfg_t *cfg, const cfg_model_t *m, uint64_t now);
/* The earliest time a target of m becomes usable again (0: one is usable now). */
uint64_t balance_next_free(const cfg_t *cfg, const cfg_model_t *m, uint64_t now);

#endif
