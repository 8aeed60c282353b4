/* Per-key limits shared by every host that names the same Redis (config group "cluster").
 * Each call is one EVALSHA of a Lua script (loaded when a worker starts), so a check and its
 * update are atomic across hosts; every key it writes expires by itself. Connections come
 * from a small per-process pool (a request never waits behind another's call); each connect
 * and command is bounded by cluster.timeout_ms. After a failure, calls fail at once (no waiting) while a background
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

/* What a request asks of the key's shared counts before it runs. */
typedef struct {
    long long tokens;            /* to reserve in the tokens-per-minute window (0: none) */
    bool budget;                 /* the key has a budget: check it and reserve cost */
    unsigned long long period;   /* budget period id (quota_period_id) */
    long long budget_limit;      /* micro-dollars per period */
    long long cost;              /* micro-dollars to reserve */
} cluster_ask_t;

typedef struct {
    char which;                  /* 0 admitted, else the refusal: 'r', 't', 'c' or 'b' */
    int retry_after_s;           /* seconds left in the minute, for 'r' and 't' */
    uint64_t window;             /* the window the tokens were reserved in (0: none) */
    st_key_usage_t usage;        /* what the x-ratelimit-* headers show */
} cluster_answer_t;

/* Everything a request takes before it runs, in one Redis call (one round trip on the
 * request's path): its request in the minute, a concurrency slot (named in member, len >= 32),
 * room in the tokens-per-minute window and the budget, and the reservations of ask. Nothing
 * but the request count is taken when a check refuses. */
cluster_result_t cluster_admit(const cfg_key_t *key, const cluster_ask_t *ask, char *member, size_t member_len,
                               cluster_answer_t *answer);

/* What a request gives back when it ends. */
typedef struct {
    uint64_t window;             /* from cluster_answer_t (0: tokens are counted now) */
    long long reserved_tokens, final_tokens;
    const char *member;          /* the concurrency slot, NULL: none */
    bool budget;                 /* a cost reservation is held in period */
    unsigned long long period;
    long long reserved_cost, final_cost;
} cluster_settle_t;

/* Queues the settlement for a background thread (pipelined with others, off the request's
 * path). Errors are counted, not returned. */
void cluster_settle(const cfg_key_t *key, const cluster_settle_t *settle);

#endif
