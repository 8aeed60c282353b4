/* Per-key limits for one request, whatever it came in on: requests per minute, tokens per
 * minute with a reservation taken before the request runs, and concurrency. Counts live in
 * the shared memory of this host, or in Redis when the config has a cluster group (see
 * cluster.h), with cluster.on_error deciding what happens while Redis cannot answer. */
#ifndef AIROUTER_LIMITS_H
#define AIROUTER_LIMITS_H
#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/quota.h"
#include "../common/state.h"

/* What a request holds between admission and limits_finish. Zeroed at the start. */
typedef struct {
    bool admitted;        /* limits_finish has work to do */
    char store;           /* where it was counted: 's' shared memory, 'r' Redis, 0 nowhere */
    bool holds_slot;      /* a concurrency slot */
    long long reserved;   /* tokens reserved */
    uint64_t window;      /* the window the reservation counts in (0: none) */
    char member[40];      /* Redis: this request's concurrency entry */
} limits_ticket_t;

/* Refusal codes: 'r' requests, 't' tokens, 'c' concurrency (429 with *retry_after_s),
 * 'u' the shared state is unreachable and on_error is "deny" (503). 0: admitted. */

/* Checks and takes the key's request and concurrency allowance; usage gets what the
 * x-ratelimit-* headers show. */
char limits_admit(const cfg_key_t *key, limits_ticket_t *t, int *retry_after_s, st_key_usage_t *usage);
/* Reserves estimate tokens (quota_estimate) if the key's tokens-per-minute window has room. */
char limits_reserve(const cfg_key_t *key, limits_ticket_t *t, long long estimate, int *retry_after_s);
/* Settles the reservation (or counts used tokens when none was taken) and gives back the
 * concurrency slot. used is ignored unless outcome is QUOTA_USAGE. Safe to call twice. */
void limits_finish(const cfg_key_t *key, limits_ticket_t *t, quota_outcome_t outcome, long long used);

/* The client-facing message for a refusal (fills msg). */
void limits_message(const cfg_key_t *key, char which, int retry_after_s, char *msg, size_t len);

#endif
