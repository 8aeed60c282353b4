#include "worker/core/limits.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "worker/core/cluster.h"

static bool has_limits(const cfg_key_t *k) { return k && (k->rpm || k->tpm || k->max_concurrent); }

/* The limits a host applies on its own while Redis cannot answer (on_error = "local"):
 * each of cluster.hosts hosts takes its share, at least one. */
static cfg_key_t local_share(const cfg_key_t *k)
{
    cfg_key_t share = *k;
    int hosts = cluster_hosts();
    if (hosts > 1) {
        if (share.rpm)
            share.rpm = share.rpm / hosts > 0 ? share.rpm / hosts : 1;
        if (share.tpm)
            share.tpm = share.tpm / hosts > 0 ? share.tpm / hosts : 1;
        if (share.max_concurrent)
            share.max_concurrent = share.max_concurrent / hosts > 0 ? share.max_concurrent / hosts : 1;
    }
    return share;
}

static bool has_budget(const cfg_key_t *k) { return k && k->budget_period != BUDGET_NONE; }

/* Redis cannot answer: applies cluster.on_error to an admission ('u' for deny). */
static char admit_unreachable(const cfg_key_t *k, limits_ticket_t *t, int *retry_after_s)
{
    switch (cluster_on_error()) {
    case CLUSTER_ON_ERROR_ALLOW:
        t->admitted = true;
        t->store = 0;
        return 0;
    case CLUSTER_ON_ERROR_DENY:
        *retry_after_s = 1;
        return 'u';
    default:
        break; /* local: this host's share, counted here */
    }
    cfg_key_t share = local_share(k);
    char which = st_key_admit(&share, clock_now_ms(), retry_after_s, &t->usage);
    t->store = 's';
    if (!which) {
        t->admitted = true;
        t->holds_slot = k->max_concurrent > 0;
    }
    return which;
}

char limits_admit(const cfg_key_t *k, limits_ticket_t *t, int *retry_after_s)
{
    memset(&t->usage, 0, sizeof t->usage);
    *retry_after_s = 0;
    if (cluster_enabled() && k && (k->tpm || has_budget(k))) {
        t->deferred = true; /* the reservations need the body: one call then, for all */
        return 0;
    }
    if (!has_limits(k))
        return 0;
    char which;
    if (cluster_enabled()) {
        cluster_ask_t ask = {0};
        cluster_answer_t a;
        if (cluster_admit(k, &ask, t->member, sizeof t->member, &a) == CLUSTER_DOWN)
            return admit_unreachable(k, t, retry_after_s);
        t->store = 'r';
        t->usage = a.usage;
        *retry_after_s = a.retry_after_s;
        which = a.which;
    } else {
        which = st_key_admit(k, clock_now_ms(), retry_after_s, &t->usage);
        t->store = 's';
    }
    if (!which) {
        t->admitted = true;
        t->holds_slot = k->max_concurrent > 0;
    }
    return which;
}

/* Tokens in this host's shared memory (Redis's are reserved by cluster_admit). */
static char reserve_tokens(const cfg_key_t *k, limits_ticket_t *t, long long estimate, int *retry_after_s)
{
    if (!k || !k->tpm || !t->admitted || t->reserved || t->store != 's' || estimate <= 0)
        return 0;
    cfg_key_t share = cluster_enabled() ? local_share(k) : *k;
    char which = st_key_reserve(&share, estimate, clock_now_ms(), &t->window, retry_after_s);
    if (!which)
        t->reserved = estimate;
    return which;
}

/* The budget in this host's shared memory (kept across restarts by the state file): without
 * a cluster group, or while Redis cannot answer. */
static char reserve_budget(const cfg_key_t *k, limits_ticket_t *t, long long estimate, int *retry_after_s)
{
    long long now = (long long)time(NULL);
    t->period = quota_period_id(k->budget_period, now);
    long long limit = (long long)(k->budget_usd * 1e6 + 0.5);
    if (st_budget_reserve(k, t->period, limit, estimate)) {
        *retry_after_s = (int)quota_period_left(k->budget_period, now);
        return 'b';
    }
    t->budgeted = true;
    t->budget_reserved = estimate;
    return 0;
}

/* A deferred admission and every reservation, in one Redis call. Returns -1 when Redis
 * cannot answer (nothing taken), else 0 with *which as limits_reserve. */
static int reserve_in_redis(const cfg_key_t *k, limits_ticket_t *t, long long tokens, bool budget, long long cost,
                            char *which, int *retry_after_s)
{
    long long now = (long long)time(NULL);
    cluster_ask_t ask = {.tokens = k->tpm ? tokens : 0, .budget = budget};
    if (budget) {
        ask.period = quota_period_id(k->budget_period, now);
        ask.budget_limit = (long long)(k->budget_usd * 1e6 + 0.5);
        ask.cost = cost;
    }
    cluster_answer_t a;
    if (cluster_admit(k, &ask, t->member, sizeof t->member, &a) == CLUSTER_DOWN)
        return -1;
    t->store = 'r';
    t->usage = a.usage;
    *which = a.which;
    *retry_after_s = a.which == 'b' ? (int)quota_period_left(k->budget_period, now) : a.retry_after_s;
    if (a.which)
        return 0;
    t->admitted = true;
    t->holds_slot = k->max_concurrent > 0;
    if (ask.tokens && a.window) {
        t->reserved = ask.tokens;
        t->window = a.window;
    }
    if (budget) {
        t->budgeted = t->budget_in_redis = true;
        t->period = ask.period;
        t->budget_reserved = cost;
    }
    return 0;
}

char limits_reserve(const cfg_key_t *k, limits_ticket_t *t, const cfg_model_t *m, long long prompt_estimate,
                    long long completion_estimate, int *retry_after_s)
{
    *retry_after_s = 0;
    t->uncharged = !m;
    t->prompt_estimate = m ? prompt_estimate : 0;
    long long tokens = m ? prompt_estimate + completion_estimate : 0;
    if (m && m->priced) {
        t->priced = true;
        t->price = (quota_price_t){m->price_input, m->price_output, m->price_cached_input};
        t->model_slot = m->metric_slot;
        t->cost_estimate = quota_cost_micro(&t->price, prompt_estimate, 0, completion_estimate);
    }
    if (!k)
        return 0;
    bool budget = has_budget(k) && !t->budgeted;
    long long cost = t->priced ? t->cost_estimate : 0;
    char which = 0;
    if (t->deferred) {
        t->deferred = false;
        if (reserve_in_redis(k, t, tokens, budget, cost, &which, retry_after_s) == 0)
            return which;
        /* Redis cannot answer: on_error decides, and what is counted is counted here */
        if (has_limits(k) && (which = admit_unreachable(k, t, retry_after_s)))
            return which;
    }
    if (budget) {
        if ((which = reserve_budget(k, t, cost, retry_after_s)))
            return which;
        t->admitted = true;
    }
    which = reserve_tokens(k, t, tokens, retry_after_s);
    if (which && t->budgeted) { /* refused after all: the budget reservation goes back */
        st_budget_settle(k, t->period, t->budget_reserved, 0);
        t->budgeted = false;
    }
    return which;
}

char limits_reserve_request(const cfg_key_t *k, limits_ticket_t *t, const cfg_model_t *m, unsigned kind,
                            size_t body_bytes, long long requested_max_tokens, int *retry_after_s)
{
    bool completion = !(kind & (KIND_EMBEDDINGS | KIND_MODERATIONS));
    long long total = quota_estimate(body_bytes, requested_max_tokens, m ? m->max_tokens : 0, completion);
    long long prompt = (long long)(body_bytes / 4);
    return limits_reserve(k, t, m, prompt, total > prompt ? total - prompt : 0, retry_after_s);
}

long long limits_cost(const limits_ticket_t *t, long long prompt, long long cached, long long completion)
{
    if (!t->priced || (prompt < 0 && completion < 0))
        return -1;
    return quota_cost_micro(&t->price, prompt, cached, completion);
}

/* Settles what t holds: tokens final (quota_settled), cost_micro the final cost of a request
 * that reported usage. */
static void finish(const cfg_key_t *k, limits_ticket_t *t, quota_outcome_t outcome, long long used,
                   long long cost_micro)
{
    if (!k || !t->admitted)
        return;
    t->admitted = false;
    long long final_cost = outcome == QUOTA_USAGE ? (cost_micro > 0 ? cost_micro : 0)
                           : outcome == QUOTA_FAILED ? 0
                                                     : t->budget_reserved;
    bool budget_redis = t->budgeted && t->budget_in_redis;
    if (t->budgeted && !t->budget_in_redis)
        st_budget_settle(k, t->period, t->budget_reserved, final_cost);
    if (t->priced) {
        long long spent = outcome == QUOTA_USAGE ? cost_micro : outcome == QUOTA_FAILED ? 0 : t->cost_estimate;
        st_spend_count(k, t->model_slot, spent);
    }
    long long final = quota_settled(t->reserved, outcome, used);
    if (t->store == 'r' || budget_redis) {
        cluster_settle_t s = {
            .window = t->window,
            .reserved_tokens = t->reserved,
            .final_tokens = t->store == 'r' && k->tpm ? final : t->reserved, /* no tpm: nothing to count */
            .member = t->store == 'r' && t->holds_slot ? t->member : NULL,
            .budget = budget_redis,
            .period = t->period,
            .reserved_cost = t->budget_reserved,
            .final_cost = final_cost,
        };
        cluster_settle(k, &s);
    }
    t->budgeted = false;
    if (t->store != 's')
        return;
    if (t->reserved)
        st_key_settle(k, t->window, t->reserved, final, clock_now_ms());
    else if (final > 0)
        st_key_tokens(k, (uint64_t)final, clock_now_ms());
    if (t->holds_slot)
        st_key_release(k);
}

long long limits_end(const cfg_key_t *k, limits_ticket_t *t, const limits_outcome_t *o)
{
    long long used = (o->tokens_in > 0 ? o->tokens_in : 0) + (o->tokens_out > 0 ? o->tokens_out : 0);
    long long cost = limits_cost(t, o->tokens_in, o->tokens_cached, o->tokens_out);
    quota_outcome_t how = o->tokens_in >= 0 || o->tokens_out >= 0 ? QUOTA_USAGE
                          : !o->served                           ? QUOTA_FAILED
                                                                 : QUOTA_NO_USAGE;
    if (how == QUOTA_NO_USAGE && o->client_abort && o->chunks > 0) {
        /* left mid-stream, before any usage: settled with what was produced, a chunk a token */
        how = QUOTA_USAGE;
        used = t->prompt_estimate + o->chunks;
        cost = limits_cost(t, t->prompt_estimate, 0, o->chunks);
    }
    if (how == QUOTA_NO_USAGE && t->usage_only)
        how = QUOTA_FAILED;
    if (t->uncharged) { /* what it read was paid for when it was made */
        how = QUOTA_FAILED;
        cost = -1;
    }
    if (how == QUOTA_NO_USAGE)
        cost = t->priced ? t->cost_estimate : -1;
    finish(k, t, how, used, cost);
    return cost;
}

void limits_message(const cfg_key_t *k, char which, int retry_after_s, char *msg, size_t len)
{
    if (which == 'r')
        snprintf(msg, len, "Rate limit reached for requests per minute (RPM) on key '%.100s': limit %ld. Please try again in %ds.",
                 k->name, k->rpm, retry_after_s);
    else if (which == 't')
        snprintf(msg, len, "Rate limit reached for tokens per minute (TPM) on key '%.100s': limit %ld. Please try again in %ds.",
                 k->name, k->tpm, retry_after_s);
    else if (which == 'c')
        snprintf(msg, len, "Too many concurrent requests on key '%.100s': limit %d. Please try again shortly.", k->name,
                 k->max_concurrent);
    else if (which == 'b') {
        long long now = (long long)time(NULL);
        char when[64] = "";
        if (k->budget_period != BUDGET_TOTAL) {
            time_t reset = (time_t)(now + retry_after_s);
            struct tm tm;
            gmtime_r(&reset, &tm);
            strftime(when, sizeof when, " It resets at %Y-%m-%dT%H:%M:%SZ.", &tm);
        }
        snprintf(msg, len, "Budget exceeded on key '%.100s': $%.2f per %s.%s", k->name, k->budget_usd,
                 k->budget_period == BUDGET_TOTAL ? "lifetime" : cfg_budget_period_name(k->budget_period), when);
    } else
        snprintf(msg, len, "The shared rate-limit state is unreachable; please try again shortly.");
}
