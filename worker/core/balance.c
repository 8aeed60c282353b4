#include "worker/core/balance.h"

#include <string.h>

#include "common/state.h"

bool balance_provider_match(const cfg_t *cfg, const cfg_target_t *t, const char *provider)
{
    const cfg_backend_t *b = &cfg->backends[t->backend];
    return !provider || strcmp(b->name, provider) == 0 || strcmp(b->type, provider) == 0;
}

bool balance_serves_provider(const cfg_t *cfg, const cfg_model_t *m, const char *provider)
{
    for (int i = 0; i < m->ntargets; i++)
        if (balance_provider_match(cfg, &m->targets[i], provider))
            return true;
    for (int f = 0; f < m->nfallbacks; f++) {
        const cfg_model_t *fb = &cfg->models[m->fallbacks[f]];
        for (int i = 0; i < fb->ntargets; i++)
            if (balance_provider_match(cfg, &fb->targets[i], provider))
                return true;
    }
    return false;
}

static bool target_ok(const cfg_t *cfg, const cfg_target_t *t, uint64_t now)
{
    bool probe;
    return st_backend_healthy(cfg->backends[t->backend].metric_slot) &&
           st_target_usable(t->state_slot, now, false, &probe);
}

static bool avoided(int slot, const int *avoid, int navoid)
{
    for (int i = 0; i < navoid; i++)
        if (avoid[i] == slot)
            return true;
    return false;
}

/* Picks among usable targets, with or without the avoided ones. */
static int pick_among(const cfg_t *cfg, const cfg_model_t *m, const int *avoid, int navoid, uint64_t now,
                      bool allow_avoided, const char *provider, unsigned long long skip_mask)
{
    int cand[64], n = 0;
    for (int i = 0; i < m->ntargets && n < 64; i++) {
        const cfg_target_t *t = &m->targets[i];
        if (((skip_mask >> i) & 1) || !balance_provider_match(cfg, t, provider))
            continue;
        if (!allow_avoided && avoided(t->state_slot, avoid, navoid))
            continue;
        if (target_ok(cfg, t, now))
            cand[n++] = i;
    }
    if (n == 0)
        return -1;
    switch (m->strategy) {
    case STRATEGY_ORDERED:
        return cand[0];
    case STRATEGY_LEAST_INFLIGHT: {
        int best = cand[0];
        int64_t best_load = st_target_load(m->targets[best].state_slot);
        for (int i = 1; i < n; i++) {
            int64_t load = st_target_load(m->targets[cand[i]].state_slot);
            if (load < best_load) {
                best = cand[i];
                best_load = load;
            }
        }
        return best;
    }
    default: {
        long total = 0;
        for (int i = 0; i < n; i++)
            total += m->targets[cand[i]].weight;
        long pos = (long)(st_round_robin(m->metric_slot) % (uint64_t)total);
        for (int i = 0; i < n; i++) {
            pos -= m->targets[cand[i]].weight;
            if (pos < 0)
                return cand[i];
        }
        return cand[n - 1];
    }
    }
}

int balance_pick(const cfg_t *cfg, const cfg_model_t *m, const int *avoid, int navoid, bool allow_avoided,
                 const char *provider, uint64_t now)
{
    unsigned long long lost = 0; /* targets whose half-open probe another request took */
    for (int round = 0; round < m->ntargets + 1; round++) {
        int i = pick_among(cfg, m, avoid, navoid, now, allow_avoided, provider, lost);
        if (i < 0)
            return -1;
        bool probe;
        /* Taking the target for real: a half-open circuit admits one probe only. */
        if (st_target_usable(m->targets[i].state_slot, now, true, &probe))
            return i;
        lost |= 1ull << (i & 63);
    }
    return -1;
}

bool balance_model_available(const cfg_t *cfg, const cfg_model_t *m, uint64_t now)
{
    for (int i = 0; i < m->ntargets; i++)
        if (target_ok(cfg, &m->targets[i], now))
            return true;
    return false;
}

uint64_t balance_next_free(const cfg_t *cfg, const cfg_model_t *m, uint64_t now)
{
    uint64_t best = 0;
    for (int i = 0; i < m->ntargets; i++) {
        const cfg_target_t *t = &m->targets[i];
        if (!st_backend_healthy(cfg->backends[t->backend].metric_slot))
            continue;
        uint64_t at = st_target_free_at(t->state_slot);
        if (at <= now)
            return 0;
        if (!best || at < best)
            best = at;
    }
    return best;
}
