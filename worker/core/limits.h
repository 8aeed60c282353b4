/* Per-key limits for one request, whatever it came in on: requests per minute, tokens per
 * minute with a reservation taken before the request runs, concurrency, and budgets. Counts
 * live in the shared memory of this host, or in Redis when the config has a cluster group (see
 * cluster.h), with cluster.on_error deciding what happens while Redis cannot answer.
 *
 * A request goes: limits_admit when its key is known (before the body), limits_reserve when
 * its model and body are known, limits_end when it is over. With Redis, a key with tpm or a
 * budget is admitted and reserved in one call, at limits_reserve: a request makes one Redis
 * round trip on its path, whatever limits its key has. */
#ifndef AIROUTER_LIMITS_H
#define AIROUTER_LIMITS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/quota.h"
#include "common/state.h"

/* What a request holds between admission and limits_end. Zeroed at the start. */
typedef struct {
    bool admitted;        /* limits_end has work to do */
    bool deferred;        /* Redis: admission waits for limits_reserve, to go in the same call */
    char store;           /* where it was counted: 's' shared memory, 'r' Redis, 0 nowhere */
    bool holds_slot;      /* a concurrency slot */
    long long reserved;   /* tokens reserved */
    uint64_t window;      /* the window the reservation counts in (0: none) */
    char member[40];      /* Redis: this request's concurrency entry */
    st_key_usage_t usage; /* what the x-ratelimit-* headers show */
    /* spend: set by limits_reserve */
    bool priced;          /* its model has a price */
    bool uncharged;       /* checked against the budget, but costs nothing (no model) */
    bool usage_only;      /* charged from usage only, nothing without (set by the caller:
                           * answers that need not come from a model, as passthrough's) */
    long long prompt_estimate; /* tokens, as reserved */
    long long cost_estimate;   /* micro-dollars, when priced: what it costs if no usage comes */
    quota_price_t price;
    int model_slot;
    bool budgeted;        /* a budget reservation is held */
    bool budget_in_redis;
    long long budget_reserved; /* micro-dollars */
    unsigned long long period;
} limits_ticket_t;

/* Refusal codes: 'r' requests, 't' tokens, 'c' concurrency, 'b' budget (429 with *retry_after_s),
 * 'u' the shared state is unreachable and on_error is "deny" (503). 0: admitted. */

/* Checks and takes the key's request and concurrency allowance (with Redis and a key that has
 * tpm or a budget: nothing yet, see limits_reserve); t->usage gets what the x-ratelimit-*
 * headers show. */
char limits_admit(const cfg_key_t *key, limits_ticket_t *t, int *retry_after_s);
/* Once the request's model is known: reserves its token estimate (prompt + completion, see
 * quota_estimate) if the key's tokens-per-minute window has room, and its estimated cost if
 * the key has a budget and has spent less than it this period ('b' refused: *retry_after_s is
 * the seconds until the period starts again, 0 for "total"). model NULL: the request is
 * checked against the key's limits and budget but reserves and costs nothing (reading a stored
 * answer, counting tokens). key may be NULL (open API). Every request that limits_admit let
 * through must come here before it runs: a deferred admission is taken here. */
char limits_reserve(const cfg_key_t *key, limits_ticket_t *t, const cfg_model_t *model, long long prompt_estimate,
                    long long completion_estimate, int *retry_after_s);
/* limits_reserve with the estimate made from the request: body_bytes / 4 prompt tokens, and
 * the completion of quota_estimate (requested_max_tokens: the body's max_tokens, 0 if none;
 * none for kinds without a completion: embeddings, moderations). */
char limits_reserve_request(const cfg_key_t *key, limits_ticket_t *t, const cfg_model_t *model, unsigned kind,
                            size_t body_bytes, long long requested_max_tokens, int *retry_after_s);

/* What the request cost, in micro-dollars, from its usage; -1 when its model has no price or
 * no usage came. */
long long limits_cost(const limits_ticket_t *t, long long prompt, long long cached, long long completion);

/* How a request ended. */
typedef struct {
    long long tokens_in, tokens_out, tokens_cached; /* from the backend's usage; -1 unknown */
    bool served;            /* an answer (or part of one) went out */
    bool client_abort;      /* the client left before the end */
    long long chunks;       /* stream chunks the backend produced (a client that leaves pays for them) */
} limits_outcome_t;

/* Settles the reservations against what the request used: its usage; else, for a client that
 * left a stream, the prompt estimate and a token a chunk produced; else the estimate if it was
 * served (nothing for a usage_only ticket), nothing if it failed. Counts the spend and gives back the concurrency slot. Returns
 * what the request is charged in micro-dollars, -1 when its model has no price or it failed.
 * Safe to call twice: the second call settles nothing. */
long long limits_end(const cfg_key_t *key, limits_ticket_t *t, const limits_outcome_t *outcome);

/* The client-facing message for a refusal (fills msg). */
void limits_message(const cfg_key_t *key, char which, int retry_after_s, char *msg, size_t len);

#endif
