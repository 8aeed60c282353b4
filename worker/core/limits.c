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

char limits_admit(const cfg_key_t *k, limits_ticket_t *t, int *retry_after_s, st_key_usage_t *u)
{
    memset(u, 0, sizeof *u);
    *retry_after_s = 0;
    if (!has_limits(k))
        return 0;
    char which;
    if (cluster_enabled()) {
        cluster_result_t r = cluster_admit(k, t->member, sizeof t->member, retry_after_s, u, &which);
        if (r == CLUSTER_OK) {
            t->store = 'r';
            if (!which) {
                t->admitted = true;
                t->holds_slot = k->max_concurrent > 0;
            }
            return which;
        }
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
        which = st_key_admit(&share, clock_now_ms(), retry_after_s, u);
    } else {
        which = st_key_admit(k, clock_now_ms(), retry_after_s, u);
    }
    t->store = 's';
    if (!which) {
        t->admitted = true;
        t->holds_slot = k->max_concurrent > 0;
    }
    return which;
}

static char reserve_tokens(const cfg_key_t *k, limits_ticket_t *t, long long estimate, int *retry_after_s)
{
    if (!k || !k->tpm || !t->admitted || t->reserved)
        return 0;
    char which = 0;
    if (t->store == 'r') {
        if (cluster_reserve(k, estimate, &t->window, retry_after_s, &which) == CLUSTER_OK) {
            if (!which)
                t->reserved = estimate;
            return which;
        }
        /* Redis went away between admission and now: the request was admitted there. */
        return 0;
    }
    if (t->store != 's')
        return 0;
    cfg_key_t share = cluster_enabled() ? local_share(k) : *k;
    which = st_key_reserve(&share, estimate, clock_now_ms(), &t->window, retry_after_s);
    if (!which)
        t->reserved = estimate;
    return which;
}

/* Budgets are counted on this host's shared memory (kept across restarts by the state
 * file), or in Redis with a cluster group. */
static char reserve_budget(const cfg_key_t *k, limits_ticket_t *t, long long estimate, int *retry_after_s)
{
    long long now = (long long)time(NULL);
    t->period = quota_period_id(k->budget_period, now);
    long long limit = (long long)(k->budget_usd * 1e6 + 0.5);
    char which = 0;
    if (cluster_enabled() && cluster_budget_reserve(k, t->period, limit, estimate, &which) == CLUSTER_OK) {
        t->budget_in_redis = true;
    } else {
        which = st_budget_reserve(k, t->period, limit, estimate);
    }
    if (which) {
        *retry_after_s = (int)quota_period_left(k->budget_period, now);
        return 'b';
    }
    t->budgeted = true;
    t->budget_reserved = estimate;
    return 0;
}

char limits_reserve(const cfg_key_t *k, limits_ticket_t *t, const cfg_model_t *m, long long prompt_estimate,
                    long long completion_estimate, int *retry_after_s)
{
    *retry_after_s = 0;
    t->prompt_estimate = prompt_estimate;
    if (m && m->priced) {
        t->priced = true;
        t->price = (quota_price_t){m->price_input, m->price_output, m->price_cached_input};
        t->model_slot = m->metric_slot;
    }
    if (!k)
        return 0;
    if (t->priced && k->budget_period != BUDGET_NONE && !t->budgeted) {
        long long cost = quota_cost_micro(&t->price, prompt_estimate, 0, completion_estimate);
        char which = reserve_budget(k, t, cost, retry_after_s);
        if (which)
            return which;
        t->admitted = true;
    }
    char which = reserve_tokens(k, t, prompt_estimate + completion_estimate, retry_after_s);
    if (which && t->budgeted) { /* refused after all: the budget reservation goes back */
        if (t->budget_in_redis)
            cluster_budget_settle(k, t->period, t->budget_reserved, 0);
        else
            st_budget_settle(k, t->period, t->budget_reserved, 0);
        t->budgeted = false;
    }
    return which;
}

long long limits_cost(const limits_ticket_t *t, long long prompt, long long cached, long long completion)
{
    if (!t->priced || (prompt < 0 && completion < 0))
        return -1;
    return quota_cost_micro(&t->price, prompt, cached, completion);
}

void limits_finish(const cfg_key_t *k, limits_ticket_t *t, quota_outcome_t outcome, long long used, long long cost_micro)
{
    if (!k || !t->admitted)
        return;
    t->admitted = false;
    if (t->budgeted) {
        long long final = outcome == QUOTA_USAGE ? (cost_micro > 0 ? cost_micro : 0)
                          : outcome == QUOTA_FAILED ? 0
                                                    : t->budget_reserved;
        if (t->budget_in_redis)
            cluster_budget_settle(k, t->period, t->budget_reserved, final);
        else
            st_budget_settle(k, t->period, t->budget_reserved, final);
        t->budgeted = false;
    }
    if (t->priced) {
        long long spent = outcome == QUOTA_USAGE ? cost_micro : outcome == QUOTA_FAILED ? 0 : t->budget_reserved;
        st_spend_count(k, t->model_slot, spent);
    }
    long long final = quota_settled(t->reserved, outcome, used);
    if (t->store == 'r') {
        if (t->reserved || final > 0 || t->holds_slot)
            cluster_finish(k, t->window, t->reserved, final, t->holds_slot ? t->member : NULL);
        return;
    }
    if (t->store != 's')
        return;
    if (t->reserved)
        st_key_settle(k, t->window, t->reserved, final, clock_now_ms());
    else if (final > 0)
        st_key_tokens(k, (uint64_t)final, clock_now_ms());
    if (t->holds_slot)
        st_key_release(k);
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
