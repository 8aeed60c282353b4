#include "worker/core/failover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/state.h"
#include "worker/core/balance.h"

/* Counts a failed backend call under its reason (a departed client is not one). */
void failover_count_error(const request_t *req, be_error_t err)
{
    static const int reason[] = {
        [BE_ERR_CONNECT] = MET_ERR_CONNECT, [BE_ERR_TIMEOUT] = MET_ERR_TIMEOUT,
        [BE_ERR_HTTP_4XX] = MET_ERR_4XX,    [BE_ERR_HTTP_5XX] = MET_ERR_5XX,
        [BE_ERR_PROTOCOL] = MET_ERR_PROTOCOL,
    };
    if (err == BE_ERR_CONNECT || err == BE_ERR_TIMEOUT || err == BE_ERR_HTTP_4XX ||
        err == BE_ERR_HTTP_5XX || err == BE_ERR_PROTOCOL)
        met_backend_error(req->backend_slot, (enum met_reason)reason[err]);
}

/* Whether a failed try may be retried elsewhere under the retry policy. */
static bool retryable(const cfg_t *cfg, const be_event_t *ev)
{
    unsigned on = cfg->retry.retry_on;
    switch (ev->error) {
    case BE_ERR_CONNECT: return on & RETRY_ON_CONNECT;
    case BE_ERR_TIMEOUT: return on & RETRY_ON_TIMEOUT;
    case BE_ERR_HTTP_5XX:
    case BE_ERR_PROTOCOL: return on & RETRY_ON_5XX;
    case BE_ERR_HTTP_4XX: return ev->status == 429 && (on & RETRY_ON_429);
    default: return false;
    }
}

/* Records a try's outcome (answered, or failed with ev) in the target's shared circuit state. */
static void account(const cfg_t *cfg, const cfg_target_t *t, const be_event_t *ev, bool answered, uint64_t now)
{
    const st_circuit_t cb = {
        .failures = cfg->circuit_failures,
        .cooldown_s = cfg->circuit_cooldown,
        .failure_ratio = cfg->circuit_failure_ratio,
        .window_ms = (uint64_t)(cfg->circuit_window * 1000),
        .min_requests = cfg->circuit_min_requests,
    };
    if (answered) {
        /* An answer (even a 4xx the client caused) shows the target works. */
        st_target_success(t->state_slot, &cb, now);
        return;
    }
    switch (ev->error) {
    case BE_ERR_CONNECT:
    case BE_ERR_TIMEOUT:
    case BE_ERR_HTTP_5XX:
    case BE_ERR_PROTOCOL: {
        const char *name = cfg->backends[t->backend].name, *model = t->backend_model ? t->backend_model : "*";
        switch (st_target_failure(t->state_slot, &cb, now)) {
        case ST_OPEN_CONSECUTIVE:
            log_warn("target %s/%s: circuit open for %g s after %d consecutive failures", name, model,
                     cb.cooldown_s, cb.failures);
            break;
        case ST_OPEN_RATIO:
            log_warn("target %s/%s: circuit open for %g s: %g%% or more of its tries in the last %g s failed",
                     name, model, cb.cooldown_s, cb.failure_ratio * 100, cfg->circuit_window);
            break;
        case ST_OPEN_PROBE_FAILED:
            log_warn("target %s/%s: circuit open again for %g s: the probe failed", name, model, cb.cooldown_s);
            break;
        case ST_STAYS_CLOSED:
            break;
        }
        break;
    }
    case BE_ERR_HTTP_4XX:
        if (ev->status == 429) /* rate-limited: keep it out for as long as it asks */
            st_target_block(t->state_slot, now + (uint64_t)(ev->retry_after_s > 0 ? ev->retry_after_s : 1) * 1000);
        else
            st_target_success(t->state_slot, &cb, now);
        break;
    default:
        break;
    }
}

/* Waits ms; true if the client left meanwhile (the wait then ends at once). */
static bool client_left_during(request_t *req, uint64_t ms)
{
    uint64_t end = clock_now_ms() + ms;
    for (;;) {
        uint64_t now = clock_now_ms();
        if (now >= end)
            return false;
        if (request_client_gone(req, (int)(end - now)))
            return true;
    }
}

/* The end of the loop with the last failure. */
static failover_outcome_t failed(request_t *req, const be_event_t *ev, be_event_t *last)
{
    *last = *ev;
    snprintf(req->error_reason, sizeof req->error_reason, "%s", be_error_name(ev->error));
    if (ev->error == BE_ERR_CLIENT_GONE)
        return FAILOVER_CLIENT_GONE;
    req->retry_after_s = ev->retry_after_s;
    return FAILOVER_FAILED;
}

static failover_outcome_t left(request_t *req)
{
    snprintf(req->error_reason, sizeof req->error_reason, "client_abort");
    return FAILOVER_CLIENT_GONE;
}

failover_outcome_t failover_run(request_t *req, void *job, const cfg_model_t *model, failover_try_fn try_target,
                                be_event_t *last)
{
    const cfg_t *cfg = req->cfg;
    const cfg_retry_t *rp = &cfg->retry;
    const cfg_model_t *chain[17];
    int nchain = 0;
    chain[nchain++] = model;
    for (int f = 0; f < model->nfallbacks && nchain < 17; f++)
        chain[nchain++] = &cfg->models[model->fallbacks[f]];
    uint64_t deadline = req->start_us / 1000 + (uint64_t)(rp->deadline * 1000);
    if (req->deadline_us && req->deadline_us / 1000 < deadline) /* the client's own comes first */
        deadline = req->deadline_us / 1000;
    int tried[32], ntried = 0;
    be_event_t ev = {0};
    bool failed_before = false;

    for (;;) {
        uint64_t now = clock_now_ms();
        const cfg_model_t *m = NULL;
        int ti = -1;
        /* Untried targets first, across the model and its fallbacks; then tried ones again. */
        for (int pass = 0; pass < 2 && ti < 0; pass++)
            for (int c = 0; c < nchain && ti < 0; c++) {
                ti = balance_pick(cfg, chain[c], tried, ntried, pass == 1, req->provider, now);
                m = chain[c];
            }
        if (ti < 0) {
            /* Nothing usable now: wait for the soonest target to come back if the
             * deadline and the attempt budget allow, else say so. */
            uint64_t soonest = 0;
            for (int c = 0; c < nchain; c++) {
                uint64_t at = balance_next_free(cfg, chain[c], now);
                if (at && (!soonest || at < soonest))
                    soonest = at;
            }
            /* Only a backend's own Retry-After is waited out; an open circuit or a failed
             * health check is answered at once (with a Retry-After for the client). */
            if (failed_before && ev.status == 429 && soonest && soonest < deadline && req->attempts < rp->attempts) {
                if (client_left_during(req, soonest - now + 1))
                    return left(req);
                continue;
            }
            if (failed_before)
                return failed(req, &ev, last);
            uint64_t wait_s = soonest > now ? (soonest - now + 999) / 1000 : 1;
            req->retry_after_s = (int)(wait_s > 3600 ? 3600 : wait_s);
            snprintf(req->error_reason, sizeof req->error_reason, "no_available_target");
            return FAILOVER_NO_TARGET;
        }
        if (m != model)
            req->model_slot = m->metric_slot, req->model_routed = m->name;
        const cfg_target_t *t = &m->targets[ti];
        ev = (be_event_t){0};
        try_result_t res = try_target(req, job, m, m != model, t, &ev);
        now = clock_now_ms();
        account(cfg, t, &ev, res == TRY_ANSWERED, now);
        if (res == TRY_ANSWERED)
            return FAILOVER_ANSWERED;
        failover_count_error(req, ev.error);
        failed_before = true;
        if (ntried < 32)
            tried[ntried++] = t->state_slot;
        if (!retryable(cfg, &ev) || req->attempts >= rp->attempts || now >= deadline)
            return failed(req, &ev, last);
        /* Exponential back-off with jitter (half to all of the step), within the deadline. */
        uint64_t step = (uint64_t)rp->backoff_ms << (req->attempts - 1 < 16 ? req->attempts - 1 : 16);
        if (step > (uint64_t)rp->max_backoff_ms)
            step = (uint64_t)rp->max_backoff_ms;
        uint64_t wait = step / 2 + (step ? (uint64_t)random() % (step / 2 + 1) : 0);
        if (now + wait >= deadline)
            return failed(req, &ev, last);
        log_info("request %s: try %d on backend '%s' failed (%s); retrying in %llu ms", req->id, req->attempts,
                 cfg->backends[t->backend].name, be_error_name(ev.error), (unsigned long long)wait);
        if (wait && client_left_during(req, wait))
            return left(req);
    }
}
