/* Per-key limits for one request, whatever it came in on: requests per minute, tokens per
 * minute with a reservation taken before the request runs, and concurrency. Counts live in
 * the shared memory of this host, or in Redis when the config has a cluster group (see
 * cluster.h), with cluster.on_error deciding what happens while Redis cannot answer. */
#ifndef AIROUTER_LIMITS_H
#define AIROUTER_LIMITS_H
#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/quota.h"
#include "common/state.h"

/* What a request holds between admission and limits_finish. Zeroed at the start. */
typedef struct {
    bool admitted;        /* limits_finish has work to do */
    char store;           /* where it was counted: 's' shared memory, 'r' Redis, 0 nowhere */
    bool holds_slot;      /* a concurrency slot */
    long long reserved;   /* tokens reserved */
    uint64_t window;      /* the window the reservation counts in (0: none) */
    char member[40];      /* Redis: this request's concurrency entry */
    /* spend: set by limits_reserve when the model has a price */
    bool priced;
    long long prompt_estimate; /* tokens, as reserved */
    quota_price_t price;
    int model_slot;
    bool budgeted;        /* a budget reservation is held */
    bool budget_in_redis;
    long long budget_reserved; /* micro-dollars */
    unsigned long long period;
} limits_ticket_t;

/* Refusal codes: 'r' requests, 't' tokens, 'c' concurrency, 'b' budget (429 with *retry_after_s),
 * 'u' the shared state is unreachable and on_error is "deny" (503). 0: admitted. */

/* Checks and takes the key's request and concurrency allowance; usage gets what the
 * x-ratelimit-* headers show. */
char limits_admit(const cfg_key_t *key, limits_ticket_t *t, int *retry_after_s, st_key_usage_t *usage);
/* Once the request's model is known: reserves its token estimate (prompt + completion, see
 * quota_estimate) if the key's tokens-per-minute window has room, and its estimated cost if
 * the key has a budget and has spent less than it this period ('b' refused: *retry_after_s is
 * the seconds until the period starts again, 0 for "total"). key may be NULL (open API). */
char limits_reserve(const cfg_key_t *key, limits_ticket_t *t, const cfg_model_t *model, long long prompt_estimate,
                    long long completion_estimate, int *retry_after_s);
/* What the request cost, in micro-dollars, from its usage; -1 when its model has no price or
 * no usage came (then the estimate stands, see limits_finish). */
long long limits_cost(const limits_ticket_t *t, long long prompt, long long cached, long long completion);
/* Settles the reservations (or counts used tokens when none was taken), counts the spend and
 * gives back the concurrency slot. used and cost_micro are ignored unless outcome is
 * QUOTA_USAGE. Safe to call twice. */
void limits_finish(const cfg_key_t *key, limits_ticket_t *t, quota_outcome_t outcome, long long used,
                   long long cost_micro);

/* The client-facing message for a refusal (fills msg). */
void limits_message(const cfg_key_t *key, char which, int retry_after_s, char *msg, size_t len);

#endif
