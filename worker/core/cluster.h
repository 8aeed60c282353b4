/* Per-key limits shared by every host that names the same Redis (config group "cluster").
 * Each call is one EVALSHA of a Lua script, so a check and its update are atomic across
 * hosts; every key it writes expires by itself. Connections come from a small per-process
 * pool (a request never waits behind another's call); each connect and command is bounded
 * by cluster.timeout_ms. After a failure, calls fail at once (no waiting) while a background
 * thread tries Redis again after each back-off; the outage is logged once and counted. */
#ifndef AIROUTER_CLUSTER_H
#define AIROUTER_CLUSTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/state.h"

typedef enum { CLUSTER_OK, CLUSTER_DOWN } cluster_result_t;

/* Worker, after fork: remembers the cluster settings (cfg outlives every call). */
void cluster_init(const cfg_t *cfg);
void cluster_shutdown(void);
bool cluster_enabled(void);
int cluster_on_error(void);   /* CLUSTER_ON_ERROR_* */
int cluster_hosts(void);

/* Requests per minute, the tokens-per-minute check (without reserving) and a concurrency
 * slot; *which as limits_admit. member (len >= 32) names the slot taken, for cluster_finish. */
cluster_result_t cluster_admit(const cfg_key_t *key, char *member, size_t member_len, int *retry_after_s,
                               st_key_usage_t *usage, char *which);
/* Reserves estimate tokens in the key's current window if it has room. */
cluster_result_t cluster_reserve(const cfg_key_t *key, long long estimate, uint64_t *window, int *retry_after_s,
                                 char *which);
/* Applies final - reserved to the window (or counts final now when window is 0) and gives
 * back the concurrency slot named member (NULL: none). Errors are counted, not returned. */
void cluster_finish(const cfg_key_t *key, uint64_t window, long long reserved, long long final, const char *member);

/* Budgets in micro-dollars per period id: reserves estimate if the key spent less than limit
 * (*which 'b' if not); settle replaces the reservation by the final cost. */
cluster_result_t cluster_budget_reserve(const cfg_key_t *key, unsigned long long period, long long limit,
                                        long long estimate, char *which);
void cluster_budget_settle(const cfg_key_t *key, unsigned long long period, long long reserved, long long final);

#endif
