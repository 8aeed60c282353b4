/* Token reservation arithmetic, shared by the shared-memory and the Redis counters.
 * A request that passes the tokens-per-minute check reserves an estimate of what it will
 * use before it runs, so that concurrent requests cannot all pass a nearly full window;
 * when it ends the reservation is settled against what it really used. */
#ifndef AIROUTER_QUOTA_H
#define AIROUTER_QUOTA_H
#include <stdbool.h>
#include <stddef.h>

#define QUOTA_DEFAULT_COMPLETION 1024

/* The tokens a request may use: its prompt (body_bytes / 4, a generous guess for any
 * tokenizer) plus its completion: the request's own max_tokens / max_completion_tokens
 * when > 0, else the model's max_tokens when > 0, else QUOTA_DEFAULT_COMPLETION; no
 * completion at all for embeddings. Always >= 1. */
long long quota_estimate(size_t body_bytes, long long request_max_tokens, long long model_max_tokens,
                         bool has_completion);

/* How the request ended, for settling. */
typedef enum {
    QUOTA_USAGE,       /* the backend reported usage: used is the truth */
    QUOTA_FAILED,      /* nothing was served: the reservation is given back in full */
    QUOTA_NO_USAGE,    /* served, but no usage ever came: the estimate stands */
} quota_outcome_t;

/* The tokens to count finally for a request that reserved `reserved` and ended so. */
long long quota_settled(long long reserved, quota_outcome_t outcome, long long used);

/* A window's count after adding delta (may be negative), kept within 0..max. */
unsigned long long quota_add(unsigned long long count, long long delta, unsigned long long max);

/* Money is counted in micro-dollars (1e-6 USD), rounded up per request. */
typedef struct {
    double input, output, cached_input; /* dollars per million tokens */
} quota_price_t;

/* The cost of prompt tokens (of which cached were cached) and completion tokens. */
long long quota_cost_micro(const quota_price_t *price, long long prompt, long long cached, long long completion);

/* Budget periods (BUDGET_* of config.h): an id that changes when the period starts again
 * (UTC days, weeks from Monday, calendar months; always 0 for total), and the seconds from
 * unix time now until the next period starts (0 for total: never). */
unsigned long long quota_period_id(int period, long long now);
long long quota_period_left(int period, long long now);

#endif
