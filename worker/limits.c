#include "limits.h"

#include <stdio.h>
#include <string.h>

#include "cluster.h"

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
        which = st_key_admit(&share, st_now_ms(), retry_after_s, u);
    } else {
        which = st_key_admit(k, st_now_ms(), retry_after_s, u);
    }
    t->store = 's';
    if (!which) {
        t->admitted = true;
        t->holds_slot = k->max_concurrent > 0;
    }
    return which;
}

char limits_reserve(const cfg_key_t *k, limits_ticket_t *t, long long estimate, int *retry_after_s)
{
    *retry_after_s = 0;
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
    which = st_key_reserve(&share, estimate, st_now_ms(), &t->window, retry_after_s);
    if (!which)
        t->reserved = estimate;
    return which;
}

void limits_finish(const cfg_key_t *k, limits_ticket_t *t, quota_outcome_t outcome, long long used)
{
    if (!k || !t->admitted)
        return;
    t->admitted = false;
    long long final = quota_settled(t->reserved, outcome, used);
    if (t->store == 'r') {
        cluster_finish(k, t->window, t->reserved, final, t->holds_slot ? t->member : NULL);
        return;
    }
    if (t->store != 's')
        return;
    if (t->reserved)
        st_key_settle(k, t->window, t->reserved, final, st_now_ms());
    else if (final > 0)
        st_key_tokens(k, (uint64_t)final, st_now_ms());
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
    else
        snprintf(msg, len, "The shared rate-limit state is unreachable; please try again shortly.");
}
