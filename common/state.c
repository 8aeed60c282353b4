#include "common/state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/quota.h"
#include "common/slots.h"

typedef struct {
    char name[192];             /* "backend\x1fbackend_model" */
    uint32_t failures;          /* consecutive */
    uint64_t open_until;        /* ms; 0 = circuit closed */
    uint64_t probe_since;       /* ms; 0 = no half-open probe running */
    uint64_t blocked_until;     /* ms; Retry-After */
    int64_t in_flight;
    uint64_t window[ST_WINDOW_BUCKETS]; /* tries per window/10: bucket id << 40 | ok << 20 | failed */
} st_target_t;

typedef struct {
    char name[128];
    uint64_t requests;          /* minute << 32 | count */
    uint64_t tokens;            /* minute << 40 | count */
    int64_t concurrent;
    uint64_t spend;             /* budget period id << 44 | micro-dollars */
} st_key_t;

typedef struct {
    st_target_t targets[ST_TARGETS];
    int ntargets;
    st_key_t keys[ST_KEYS];
    int nkeys;
    uint64_t round_robin[MET_MODELS];
    uint8_t backend_unhealthy[ST_BACKENDS];
    /* What each worker holds, so the master can give it back when the worker dies. */
    int32_t worker_targets[MET_WORKERS][ST_TARGETS];
    int32_t worker_keys[MET_WORKERS][ST_KEYS];
    pid_t health_leader;
    uint64_t health_heartbeat;
    uint64_t spent[ST_KEYS][MET_MODELS]; /* micro-dollars, ever (a counter) */
} st_shm_t;

static st_shm_t *shm;
static int self;

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define CAS(p, oldp, v) __atomic_compare_exchange_n((p), (oldp), (v), false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

int st_init(void)
{
    void *p = mmap(NULL, sizeof(st_shm_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("cannot map shared memory for target and key state");
        return -1;
    }
    shm = p;
    return 0;
}

void st_set_worker_slot(int worker_slot) { self = worker_slot >= 0 && worker_slot < MET_WORKERS ? worker_slot : 0; }

/* The slot of a target or key name; slot 0, shared, when the table is full. */
static int name_slot(char *names, size_t stride, int *n, int max, const char *name)
{
    int slot = slots_find_or_add(names, stride, 128, 0, n, max, name);
    if (slot < 0) {
        log_warn("shared state full: '%s' shares slot 0", name);
        return 0;
    }
    return slot;
}

void st_assign_slots(cfg_t *cfg)
{
    if (!shm)
        return;
    for (int i = 0; i < cfg->nmodels; i++)
        for (int t = 0; t < cfg->models[i].ntargets; t++) {
            cfg_target_t *tg = &cfg->models[i].targets[t];
            char name[128];
            /* A pass-through target differs per requested name, but shares one circuit. */
            snprintf(name, sizeof name, "%s\x1f%s", cfg->backends[tg->backend].name,
                     tg->backend_model ? tg->backend_model : "*");
            tg->state_slot = name_slot(shm->targets[0].name, sizeof shm->targets[0], &shm->ntargets, ST_TARGETS, name);
        }
    /* A backend without health checks is never held out by an old verdict. */
    for (int i = 0; i < cfg->nbackends; i++)
        if (!cfg->backends[i].health_path || !cfg->backends[i].url)
            st_backend_health(cfg->backends[i].metric_slot, true);
    for (int i = 0; i < cfg->nkeys; i++)
        cfg->keys[i].state_slot = name_slot(shm->keys[0].name, sizeof shm->keys[0], &shm->nkeys, ST_KEYS,
                                           cfg->keys[i].name);
}

void st_clear_worker(int w)
{
    if (!shm || w < 0 || w >= MET_WORKERS)
        return;
    for (int t = 0; t < ST_TARGETS; t++) {
        int32_t v = __atomic_exchange_n(&shm->worker_targets[w][t], 0, __ATOMIC_ACQ_REL);
        if (v)
            ADD(&shm->targets[t].in_flight, -v);
    }
    for (int k = 0; k < ST_KEYS; k++) {
        int32_t v = __atomic_exchange_n(&shm->worker_keys[w][k], 0, __ATOMIC_ACQ_REL);
        if (v)
            ADD(&shm->keys[k].concurrent, -v);
    }
}

static bool ok_target(int slot) { return shm && slot >= 0 && slot < ST_TARGETS; }

bool st_target_usable(int slot, uint64_t now, bool take_probe, bool *probe)
{
    *probe = false;
    if (!ok_target(slot))
        return true;
    st_target_t *t = &shm->targets[slot];
    if (LOAD(&t->blocked_until) > now)
        return false;
    uint64_t open_until = LOAD(&t->open_until);
    if (!open_until)
        return true;
    if (now < open_until)
        return false;
    /* Half-open: one probe at a time. A probe whose worker vanished (so it never
     * reported) is given up after two minutes. */
    uint64_t since = LOAD(&t->probe_since);
    if (since && now - since < 120000)
        return false;
    if (!take_probe)
        return true;
    if (!CAS(&t->probe_since, &since, now))
        return false;
    *probe = true;
    return true;
}

/* ---- failure-ratio window: ST_WINDOW_BUCKETS buckets of window/ST_WINDOW_BUCKETS each ---- */
#define BUCKET_ID_MASK 0xffffffULL
#define COUNT_MAX 0xfffffULL

static uint64_t bucket_ms(uint64_t window_ms)
{
    uint64_t b = window_ms / ST_WINDOW_BUCKETS;
    return b ? b : 1;
}

static void window_count(st_target_t *t, bool ok, uint64_t now, uint64_t window_ms)
{
    uint64_t epoch = now / bucket_ms(window_ms), id = epoch & BUCKET_ID_MASK;
    uint64_t *w = &t->window[epoch % ST_WINDOW_BUCKETS];
    uint64_t cur = LOAD(w), next;
    do {
        /* a bucket last used in an older round starts again from zero */
        uint64_t oks = (cur >> 40) == id ? (cur >> 20) & COUNT_MAX : 0;
        uint64_t fails = (cur >> 40) == id ? cur & COUNT_MAX : 0;
        if (ok && oks < COUNT_MAX)
            oks++;
        else if (!ok && fails < COUNT_MAX)
            fails++;
        next = id << 40 | oks << 20 | fails;
    } while (!CAS(w, &cur, next));
}

static void window_sum(st_target_t *t, uint64_t now, uint64_t window_ms, uint64_t *tries, uint64_t *fails)
{
    uint64_t id = (now / bucket_ms(window_ms)) & BUCKET_ID_MASK;
    *tries = *fails = 0;
    for (int i = 0; i < ST_WINDOW_BUCKETS; i++) {
        uint64_t v = LOAD(&t->window[i]);
        if (((id - (v >> 40)) & BUCKET_ID_MASK) >= ST_WINDOW_BUCKETS)
            continue; /* older than the window */
        *tries += ((v >> 20) & COUNT_MAX) + (v & COUNT_MAX);
        *fails += v & COUNT_MAX;
    }
}

static void window_clear(st_target_t *t)
{
    for (int i = 0; i < ST_WINDOW_BUCKETS; i++)
        STORE(&t->window[i], 0);
}

void st_target_success(int slot, const st_circuit_t *cb, uint64_t now)
{
    if (!ok_target(slot))
        return;
    st_target_t *t = &shm->targets[slot];
    STORE(&t->failures, 0);
    if (LOAD(&t->open_until)) { /* the half-open probe answered: close, and judge afresh */
        window_clear(t);
        STORE(&t->open_until, 0);
        STORE(&t->probe_since, 0);
    }
    if (cb->failure_ratio > 0)
        window_count(t, true, now, cb->window_ms);
}

st_open_reason_t st_target_failure(int slot, const st_circuit_t *cb, uint64_t now)
{
    if (!ok_target(slot))
        return ST_STAYS_CLOSED;
    st_target_t *t = &shm->targets[slot];
    uint32_t f = ADD(&t->failures, 1);
    st_open_reason_t why = ST_STAYS_CLOSED;
    if (LOAD(&t->probe_since) != 0)
        why = ST_OPEN_PROBE_FAILED;
    else if ((int)f >= cb->failures)
        why = ST_OPEN_CONSECUTIVE;
    else if (cb->failure_ratio > 0) {
        window_count(t, false, now, cb->window_ms);
        uint64_t tries, fails;
        window_sum(t, now, cb->window_ms, &tries, &fails);
        if (tries >= (uint64_t)cb->min_requests && (double)fails >= cb->failure_ratio * (double)tries)
            why = ST_OPEN_RATIO;
    }
    if (why != ST_STAYS_CLOSED) {
        STORE(&t->open_until, now + (uint64_t)(cb->cooldown_s * 1000));
        STORE(&t->probe_since, 0);
        window_clear(t);
    }
    return why;
}

void st_target_block(int slot, uint64_t until)
{
    if (!ok_target(slot))
        return;
    uint64_t cur = LOAD(&shm->targets[slot].blocked_until);
    while (cur < until && !CAS(&shm->targets[slot].blocked_until, &cur, until))
        ;
}

uint64_t st_target_free_at(int slot)
{
    if (!ok_target(slot))
        return 0;
    uint64_t a = LOAD(&shm->targets[slot].open_until), b = LOAD(&shm->targets[slot].blocked_until);
    return a > b ? a : b;
}

void st_target_in_flight(int slot, int delta)
{
    if (!ok_target(slot))
        return;
    ADD(&shm->worker_targets[self][slot], delta);
    ADD(&shm->targets[slot].in_flight, delta);
}

int64_t st_target_load(int slot) { return ok_target(slot) ? LOAD(&shm->targets[slot].in_flight) : 0; }

uint64_t st_round_robin(int model_slot)
{
    if (!shm || model_slot < 0 || model_slot >= MET_MODELS)
        return 0;
    return __atomic_fetch_add(&shm->round_robin[model_slot], 1, __ATOMIC_RELAXED);
}

void st_backend_health(int b, bool healthy)
{
    if (shm && b >= 0 && b < ST_BACKENDS)
        STORE(&shm->backend_unhealthy[b], healthy ? 0 : 1);
}

bool st_backend_healthy(int b)
{
    return !(shm && b >= 0 && b < ST_BACKENDS && LOAD(&shm->backend_unhealthy[b]));
}

bool st_health_lease(pid_t me, uint64_t now, uint64_t ttl_ms)
{
    if (!shm)
        return false;
    pid_t leader = LOAD(&shm->health_leader);
    if (leader == me) {
        STORE(&shm->health_heartbeat, now);
        return true;
    }
    if (leader && now - LOAD(&shm->health_heartbeat) < ttl_ms)
        return false;
    if (!CAS(&shm->health_leader, &leader, me))
        return false;
    STORE(&shm->health_heartbeat, now);
    return true;
}

/* ---- per-key limits ---- */

#define TOKEN_BITS 40
#define TOKEN_MASK ((1ull << TOKEN_BITS) - 1)

static bool ok_key(const cfg_key_t *k) { return shm && k && k->state_slot >= 0 && k->state_slot < ST_KEYS; }

char st_key_admit(const cfg_key_t *k, uint64_t now, int *retry_after_s, st_key_usage_t *u)
{
    memset(u, 0, sizeof *u);
    *retry_after_s = 0;
    if (!ok_key(k))
        return 0;
    st_key_t *s = &shm->keys[k->state_slot];
    uint64_t minute = now / 60000, secs_left = 60 - (now / 1000) % 60;
    u->reset_requests_s = u->reset_tokens_s = (int)secs_left;
    if (k->tpm) {
        uint64_t v = LOAD(&s->tokens);
        uint64_t used = (v >> TOKEN_BITS) == (minute & 0xffffff) ? v & TOKEN_MASK : 0;
        u->limit_tokens = k->tpm;
        u->remaining_tokens = used >= (uint64_t)k->tpm ? 0 : k->tpm - (long)used;
        if (used >= (uint64_t)k->tpm) {
            *retry_after_s = (int)secs_left;
            return 't';
        }
    }
    if (k->rpm) {
        uint64_t old = LOAD(&s->requests), next;
        for (;;) {
            uint64_t count = (old >> 32) == (minute & 0xffffffff) ? old & 0xffffffff : 0;
            if (count >= (uint64_t)k->rpm) {
                u->limit_requests = k->rpm;
                *retry_after_s = (int)secs_left;
                return 'r';
            }
            next = (minute << 32) | (count + 1);
            if (CAS(&s->requests, &old, next))
                break;
        }
        u->limit_requests = k->rpm;
        u->remaining_requests = k->rpm - (long)(next & 0xffffffff);
    }
    if (k->max_concurrent) {
        int64_t cur = LOAD(&s->concurrent);
        for (;;) {
            if (cur >= k->max_concurrent) {
                *retry_after_s = 1;
                /* The request slot taken above is not given back: it was asked for. */
                return 'c';
            }
            if (CAS(&s->concurrent, &cur, cur + 1))
                break;
        }
        ADD(&shm->worker_keys[self][k->state_slot], 1);
    }
    return 0;
}

void st_key_release(const cfg_key_t *k)
{
    if (!ok_key(k) || !k->max_concurrent)
        return;
    ADD(&shm->keys[k->state_slot].concurrent, -1);
    ADD(&shm->worker_keys[self][k->state_slot], -1);
}

void st_key_tokens(const cfg_key_t *k, uint64_t tokens, uint64_t now)
{
    if (!ok_key(k) || !k->tpm || !tokens)
        return;
    st_key_t *s = &shm->keys[k->state_slot];
    uint64_t minute = (now / 60000) & 0xffffff, old = LOAD(&s->tokens), next;
    do {
        uint64_t used = (old >> TOKEN_BITS) == minute ? old & TOKEN_MASK : 0;
        uint64_t sum = used + tokens;
        if (sum > TOKEN_MASK)
            sum = TOKEN_MASK;
        next = (minute << TOKEN_BITS) | sum;
    } while (!CAS(&s->tokens, &old, next));
}

char st_key_reserve(const cfg_key_t *k, long long estimate, uint64_t now, uint64_t *window, int *retry_after_s)
{
    *window = 0;
    *retry_after_s = 0;
    if (!ok_key(k) || !k->tpm)
        return 0;
    st_key_t *s = &shm->keys[k->state_slot];
    uint64_t minute = (now / 60000) & 0xffffff, old = LOAD(&s->tokens), next;
    do {
        uint64_t used = (old >> TOKEN_BITS) == minute ? old & TOKEN_MASK : 0;
        if (used >= (uint64_t)k->tpm) {
            *retry_after_s = (int)(60 - (now / 1000) % 60);
            return 't';
        }
        next = (minute << TOKEN_BITS) | quota_add(used, estimate, TOKEN_MASK);
    } while (!CAS(&s->tokens, &old, next));
    *window = minute + 1; /* 0 means "nothing reserved" */
    return 0;
}

void st_key_settle(const cfg_key_t *k, uint64_t window, long long reserved, long long used, uint64_t now)
{
    if (!ok_key(k) || !k->tpm || !window)
        return;
    uint64_t minute = (now / 60000) & 0xffffff;
    if (window - 1 != minute || used == reserved)
        return; /* the window it counted in is over: what it held there stays */
    st_key_t *s = &shm->keys[k->state_slot];
    uint64_t old = LOAD(&s->tokens), next;
    do {
        if ((old >> TOKEN_BITS) != minute)
            return;
        next = (minute << TOKEN_BITS) | quota_add(old & TOKEN_MASK, used - reserved, TOKEN_MASK);
    } while (!CAS(&s->tokens, &old, next));
}

uint64_t st_key_tokens_used(const cfg_key_t *k, uint64_t now)
{
    if (!ok_key(k))
        return 0;
    uint64_t v = LOAD(&shm->keys[k->state_slot].tokens);
    return (v >> TOKEN_BITS) == ((now / 60000) & 0xffffff) ? v & TOKEN_MASK : 0;
}

/* ---- budgets ---- */

#define SPEND_BITS 44
#define SPEND_MASK ((1ull << SPEND_BITS) - 1)
#define PERIOD_MASK 0xfffffull

char st_budget_reserve(const cfg_key_t *k, unsigned long long period, long long limit, long long estimate)
{
    if (!ok_key(k))
        return 0;
    st_key_t *s = &shm->keys[k->state_slot];
    uint64_t id = period & PERIOD_MASK, old = LOAD(&s->spend), next;
    do {
        uint64_t spent = (old >> SPEND_BITS) == id ? old & SPEND_MASK : 0;
        if (spent >= (uint64_t)limit)
            return 'b';
        next = id << SPEND_BITS | quota_add(spent, estimate, SPEND_MASK);
    } while (!CAS(&s->spend, &old, next));
    return 0;
}

void st_budget_settle(const cfg_key_t *k, unsigned long long period, long long reserved, long long final)
{
    if (!ok_key(k) || reserved == final)
        return;
    st_key_t *s = &shm->keys[k->state_slot];
    uint64_t id = period & PERIOD_MASK, old = LOAD(&s->spend), next;
    do {
        if ((old >> SPEND_BITS) != id)
            return; /* a new period began: what the old one held stays there */
        next = id << SPEND_BITS | quota_add(old & SPEND_MASK, final - reserved, SPEND_MASK);
    } while (!CAS(&s->spend, &old, next));
}

long long st_budget_spent(const cfg_key_t *k, unsigned long long period)
{
    if (!ok_key(k))
        return 0;
    uint64_t v = LOAD(&shm->keys[k->state_slot].spend);
    return (v >> SPEND_BITS) == (period & PERIOD_MASK) ? (long long)(v & SPEND_MASK) : 0;
}

void st_spend_count(const cfg_key_t *k, int model_slot, long long micro)
{
    if (ok_key(k) && model_slot >= 0 && model_slot < MET_MODELS && micro > 0)
        ADD(&shm->spent[k->state_slot][model_slot], (uint64_t)micro);
}

/* The state file: one line per budgeted key, "name<TAB>period<TAB>period id<TAB>micro-dollars". */
int st_budget_save(const char *path, const cfg_t *cfg)
{
    if (!shm || !path)
        return 0;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        log_warn("cannot write the state file %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "# airouter budget state: key, period, period id, micro-dollars spent\n");
    for (int i = 0; i < cfg->nkeys; i++) {
        const cfg_key_t *k = &cfg->keys[i];
        if (k->budget_period == BUDGET_NONE || !ok_key(k))
            continue;
        uint64_t v = LOAD(&shm->keys[k->state_slot].spend);
        fprintf(f, "%s\t%s\t%llu\t%llu\n", k->name, cfg_budget_period_name(k->budget_period),
                (unsigned long long)(v >> SPEND_BITS), (unsigned long long)(v & SPEND_MASK));
    }
    int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        log_warn("cannot write the state file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int st_budget_load(const char *path, const cfg_t *cfg)
{
    if (!shm || !path)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        log_warn("cannot read the state file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char name[256], period[16];
        unsigned long long id, micro;
        if (line[0] == '#' || sscanf(line, "%255[^\t]\t%15[^\t]\t%llu\t%llu", name, period, &id, &micro) != 4)
            continue;
        for (int i = 0; i < cfg->nkeys; i++) {
            const cfg_key_t *k = &cfg->keys[i];
            /* a key whose period kind changed starts afresh */
            if (strcmp(k->name, name) == 0 && ok_key(k) && strcmp(cfg_budget_period_name(k->budget_period), period) == 0)
                STORE(&shm->keys[k->state_slot].spend, (id & PERIOD_MASK) << SPEND_BITS | (micro & SPEND_MASK));
        }
    }
    fclose(f);
    return 0;
}

/* Targets are named "backend\x1fbackend_model" ("*": the requested name passes through). */
static void target_labels(buf_t *out, const char *name)
{
    char backend[192];
    const char *sep = strchr(name, '\x1f');
    snprintf(backend, sizeof backend, "%.*s", sep ? (int)(sep - name) : (int)strlen(name), name);
    met_label(out, "backend", backend);
    buf_appends(out, ",");
    met_label(out, "backend_model", sep ? sep + 1 : "*");
}

void st_render(buf_t *out, const cfg_t *cfg)
{
    if (!shm)
        return;
    int n = LOAD(&shm->ntargets);
    met_help(out, "airouter_target_circuit_open", "gauge",
             "1 while a target's circuit is open or half-open (backend and backend model).");
    for (int i = 0; i < n && i < ST_TARGETS; i++) {
        buf_appends(out, "airouter_target_circuit_open{");
        target_labels(out, shm->targets[i].name);
        buf_printf(out, "} %d\n", LOAD(&shm->targets[i].open_until) ? 1 : 0);
    }
    met_help(out, "airouter_target_in_flight", "gauge", "Requests in flight to a target.");
    for (int i = 0; i < n && i < ST_TARGETS; i++) {
        int64_t v = LOAD(&shm->targets[i].in_flight);
        buf_appends(out, "airouter_target_in_flight{");
        target_labels(out, shm->targets[i].name);
        buf_printf(out, "} %lld\n", (long long)(v > 0 ? v : 0));
    }
    met_help(out, "airouter_spend_usd_total", "counter", "Dollars spent by a key on a model (price table), on this host.");
    for (int i = 0; cfg && i < cfg->nkeys; i++) {
        const cfg_key_t *k = &cfg->keys[i];
        if (!ok_key(k))
            continue;
        for (int m = 0; m < cfg->nmodels; m++) {
            int ms = cfg->models[m].metric_slot;
            if (!cfg->models[m].priced || ms < 0 || ms >= MET_MODELS)
                continue;
            buf_appends(out, "airouter_spend_usd_total{");
            met_label(out, "key", k->name);
            buf_appends(out, ",");
            met_label(out, "model", cfg->models[m].name);
            buf_printf(out, "} %.6f\n", (double)LOAD(&shm->spent[k->state_slot][ms]) / 1e6);
        }
    }
    met_help(out, "airouter_backend_healthy", "gauge", "0 while a backend fails its active health checks, else 1.");
    for (int b = 0; cfg && b < cfg->nbackends; b++) {
        buf_appends(out, "airouter_backend_healthy{");
        met_label(out, "backend", cfg->backends[b].name);
        buf_printf(out, "} %d\n", st_backend_healthy(cfg->backends[b].metric_slot) ? 1 : 0);
    }
}
