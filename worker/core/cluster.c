#include "worker/core/cluster.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/rand_id.h"

/* Each script takes the key's base name ("PREFIX" "key:" NAME) first and reads Redis's
 * clock, so that every host counts in the same minute whatever its own clock says.
 *
 * admit: everything a request asks before it runs, in one call: its request in the minute (rpm),
 * a concurrency slot, room in the tokens-per-minute window and in the budget, then the token and
 * cost reservations. Nothing is taken unless every check passes, but for the rpm count, which a
 * refused request uses up as on one host. ARGV: base, rpm, tpm, max_concurrent, slot member,
 * slot lease, tokens to reserve, budget period id, budget limit (-1: no budget), cost to reserve,
 * budget key ttl (0: none). Returns {refusal code or '', seconds left in the minute, requests
 * counted, tokens used before, window reserved in (minute + 1, or 0)}. */
static const char admit_lua[] =
    "local now = tonumber(redis.call('TIME')[1])\n"
    "local minute = math.floor(now / 60)\n"
    "local left = 60 - now % 60\n"
    "local base = ARGV[1]\n"
    "local rpm, tpm, conc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local tokens, blimit = tonumber(ARGV[7]), tonumber(ARGV[9])\n"
    "local tk = base .. ':t:' .. minute\n"
    "local used = 0\n"
    "if tpm > 0 then\n"
    "  used = tonumber(redis.call('GET', tk) or '0')\n"
    "  if used >= tpm then return {'t', left, 0, used, 0} end\n"
    "end\n"
    "local count = 0\n"
    "if rpm > 0 then\n"
    "  local rk = base .. ':r:' .. minute\n"
    "  count = redis.call('INCR', rk)\n"
    "  if count == 1 then redis.call('EXPIRE', rk, 120) end\n"
    "  if count > rpm then return {'r', left, count, used, 0} end\n"
    "end\n"
    "local ck = base .. ':c'\n"
    "if conc > 0 then\n"
    "  redis.call('ZREMRANGEBYSCORE', ck, '-inf', now)\n"
    "  if redis.call('ZCARD', ck) >= conc then return {'c', 1, count, used, 0} end\n"
    "end\n"
    "local bk = base .. ':b:' .. ARGV[8]\n"
    "if blimit >= 0 and tonumber(redis.call('GET', bk) or '0') >= blimit then return {'b', left, count, used, 0} end\n"
    "if conc > 0 then\n"
    "  local lease = tonumber(ARGV[6])\n"
    "  redis.call('ZADD', ck, now + lease, ARGV[5])\n"
    "  redis.call('EXPIRE', ck, lease)\n"
    "end\n"
    "local window = 0\n"
    "if tpm > 0 and tokens > 0 then\n"
    "  redis.call('INCRBY', tk, tokens)\n"
    "  redis.call('EXPIRE', tk, 120)\n"
    "  window = minute + 1\n"
    "end\n"
    "if blimit >= 0 then\n"
    "  redis.call('INCRBY', bk, ARGV[10])\n"
    "  if tonumber(ARGV[11]) > 0 then redis.call('EXPIRE', bk, ARGV[11]) end\n"
    "end\n"
    "return {'', left, count, used, window}\n";

/* settle: what requests give back when they end, six arguments each, for any number of
 * requests: base, window (minute + 1, or 0: no reservation), token delta, slot member ("" none),
 * budget period id ("" none), cost delta. Tokens count only in the window they were reserved
 * in (or now, without a reservation); a budget period whose key expired is left alone. */
static const char settle_lua[] =
    "local minute = math.floor(tonumber(redis.call('TIME')[1]) / 60)\n"
    "for i = 1, #ARGV - 5, 6 do\n"
    "  local base, w, d = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])\n"
    "  if d ~= 0 then\n"
    "    if w == 0 and d > 0 then w = minute + 1 end\n"
    "    if w - 1 == minute then\n"
    "      local tk = base .. ':t:' .. minute\n"
    "      if redis.call('INCRBY', tk, d) < 0 then redis.call('SET', tk, 0) end\n"
    "      redis.call('EXPIRE', tk, 120)\n"
    "    end\n"
    "  end\n"
    "  if ARGV[i + 3] ~= '' then redis.call('ZREM', base .. ':c', ARGV[i + 3]) end\n"
    "  local bd = tonumber(ARGV[i + 5])\n"
    "  if ARGV[i + 4] ~= '' and bd ~= 0 then\n"
    "    local bk = base .. ':b:' .. ARGV[i + 4]\n"
    "    if redis.call('EXISTS', bk) == 1 and redis.call('INCRBY', bk, bd) < 0 then\n"
    "      redis.call('SET', bk, 0, 'KEEPTTL')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return 1\n";

enum { SCRIPT_ADMIT, SCRIPT_SETTLE, NSCRIPTS };
static const char *const scripts[NSCRIPTS] = {admit_lua, settle_lua};

/* A concurrency slot is held at most this long: a host that died holding one frees it then. */
#define SLOT_LEASE_S 600
#define POOL_MAX 64
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static const cfg_cluster_t *conf;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static redisContext *pool[POOL_MAX];
static int npool;
static char shas[NSCRIPTS][41];    /* written under pool_lock before shas_ready is set */
static int shas_ready;             /* every script is loaded (read without the lock) */
static uint64_t retry_at_ms;       /* while down: no call before this */
static uint64_t backoff_ms = BACKOFF_MIN_MS;
static int down;                   /* an outage is in progress (logged once) */
static uint64_t last_ok_ms;        /* when a call last succeeded */

static pthread_t prober;
static bool prober_running;
static volatile int prober_stop;

static void drop_pool(void)
{
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < npool; i++)
        redisFree(pool[i]);
    npool = 0;
    pthread_mutex_unlock(&pool_lock);
}

bool cluster_enabled(void) { return conf != NULL; }
int cluster_on_error(void) { return conf ? conf->on_error : CLUSTER_ON_ERROR_LOCAL; }
int cluster_hosts(void) { return conf ? conf->hosts : 1; }

static struct timeval timeout_tv(void)
{
    struct timeval tv = {conf->timeout_ms / 1000, (conf->timeout_ms % 1000) * 1000};
    return tv;
}

static bool reply_ok(redisReply *r) { return r && r->type != REDIS_REPLY_ERROR; }

/* A fresh connection, authenticated, on the configured database; NULL on failure. */
static redisContext *connect_redis(void)
{
    redisContext *c = redisConnectWithTimeout(conf->redis_host, conf->redis_port, timeout_tv());
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, timeout_tv());
    redisReply *r = NULL;
    if (conf->redis_password) {
        r = conf->redis_user ? redisCommand(c, "AUTH %s %s", conf->redis_user, conf->redis_password)
                             : redisCommand(c, "AUTH %s", conf->redis_password);
        if (!reply_ok(r))
            goto fail;
        freeReplyObject(r);
    }
    if (conf->redis_db) {
        r = redisCommand(c, "SELECT %d", conf->redis_db);
        if (!reply_ok(r))
            goto fail;
        freeReplyObject(r);
    }
    return c;
fail:
    if (r && r->type == REDIS_REPLY_ERROR)
        log_warn("cluster: Redis refused the connection setup: %s", r->str);
    freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* Loads every script on c (SCRIPT LOAD is idempotent: the SHA is the script's). 0 or -1. */
static int load_scripts(redisContext *c)
{
    char got[NSCRIPTS][41];
    for (int i = 0; i < NSCRIPTS; i++) {
        redisReply *r = redisCommand(c, "SCRIPT LOAD %s", scripts[i]);
        bool ok = r && r->type == REDIS_REPLY_STRING && r->len == 40;
        if (ok)
            memcpy(got[i], r->str, 41);
        freeReplyObject(r);
        if (!ok)
            return -1;
    }
    pthread_mutex_lock(&pool_lock);
    memcpy(shas, got, sizeof shas);
    pthread_mutex_unlock(&pool_lock);
    __atomic_store_n(&shas_ready, 1, __ATOMIC_RELEASE);
    return 0;
}

/* Takes a connection (NULL: Redis is down or unreachable: the caller applies on_error);
 * *pooled says whether it was used before (and so may have been closed by a restarted Redis). */
static redisContext *take(bool *pooled)
{
    *pooled = false;
    if (__atomic_load_n(&down, __ATOMIC_ACQUIRE))
        return NULL; /* the prober thread finds out when Redis is back; nobody waits meanwhile */
    pthread_mutex_lock(&pool_lock);
    redisContext *c = npool ? pool[--npool] : NULL;
    pthread_mutex_unlock(&pool_lock);
    if (c) {
        *pooled = true;
        return c;
    }
    return connect_redis();
}

static void give_back(redisContext *c)
{
    pthread_mutex_lock(&pool_lock);
    if (npool < POOL_MAX) {
        pool[npool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    if (c)
        redisFree(c);
}

static void mark_failure(const char *why)
{
    met_cluster_error();
    drop_pool(); /* the pooled connections went to the same Redis: none is to be trusted */
    uint64_t b = __atomic_load_n(&backoff_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&retry_at_ms, clock_now_ms() + b, __ATOMIC_RELEASE);
    __atomic_store_n(&backoff_ms, b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2, __ATOMIC_RELAXED);
    int was = __atomic_exchange_n(&down, 1, __ATOMIC_ACQ_REL);
    if (!was) {
        log_warn("cluster: Redis %s:%d unreachable (%s); applying on_error = %s until it answers", conf->redis_host,
                 conf->redis_port, why, (const char *[]){"local", "allow", "deny"}[conf->on_error]);
        met_cluster_up(false);
    }
}

static void mark_success(void)
{
    __atomic_store_n(&last_ok_ms, clock_now_ms(), __ATOMIC_RELAXED);
    if (__atomic_load_n(&down, __ATOMIC_RELAXED) && __atomic_exchange_n(&down, 0, __ATOMIC_ACQ_REL)) {
        log_info("cluster: Redis %s:%d answers again; shared counting resumed", conf->redis_host, conf->redis_port);
        met_cluster_up(true);
        __atomic_store_n(&backoff_ms, BACKOFF_MIN_MS, __ATOMIC_RELAXED);
    }
}

/* Connects and loads the scripts, so that the first requests find a warm connection and the
 * scripts' SHAs known. 0 on success (the connection is pooled), -1 if Redis cannot be used. */
static int warm_up(void)
{
    redisContext *c = connect_redis();
    if (!c)
        return -1;
    if (load_scripts(c) < 0 || c->err) {
        redisFree(c);
        return -1;
    }
    give_back(c);
    return 0;
}

/* A PING on a pooled connection when no call has succeeded for IDLE_CHECK_MS, so that an idle
 * worker finds an outage (and shows it in airouter_cluster_up) before a request does. */
#define IDLE_CHECK_MS 1000
static void check_idle(void)
{
    if (clock_now_ms() - __atomic_load_n(&last_ok_ms, __ATOMIC_RELAXED) < IDLE_CHECK_MS)
        return;
    bool pooled;
    redisContext *c = take(&pooled);
    redisReply *r = c ? redisCommand(c, "PING") : NULL;
    bool ok = r && !c->err && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (ok) {
        give_back(c);
        mark_success();
        return;
    }
    if (c)
        redisFree(c);
    if (!__atomic_load_n(&down, __ATOMIC_ACQUIRE))
        mark_failure("no answer to PING");
}

/* Warms up; then, while Redis answers, checks it when idle; while it does not, tries it again
 * after each back-off, in the background, so that no request ever waits for a reconnection
 * and counting resumes as soon as Redis answers. */
static void *probe_loop(void *arg)
{
    (void)arg;
    if (warm_up() < 0)
        mark_failure("cannot connect");
    else
        mark_success();
    while (!__atomic_load_n(&prober_stop, __ATOMIC_ACQUIRE)) {
        struct timespec tick = {0, 50 * 1000000L};
        nanosleep(&tick, NULL);
        if (!__atomic_load_n(&down, __ATOMIC_ACQUIRE)) {
            check_idle();
            continue;
        }
        if (clock_now_ms() < __atomic_load_n(&retry_at_ms, __ATOMIC_ACQUIRE))
            continue;
        if (warm_up() == 0) {
            mark_success();
            continue;
        }
        uint64_t b = __atomic_load_n(&backoff_ms, __ATOMIC_RELAXED);
        __atomic_store_n(&retry_at_ms, clock_now_ms() + b, __ATOMIC_RELEASE);
        __atomic_store_n(&backoff_ms, b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* One EVALSHA on c: the only command a request sends. Scripts are loaded by warm_up; if Redis
 * has forgotten them (restarted or flushed) they are loaded again and the call repeated. NULL
 * when c failed or Redis answered an error (why says which). */
static redisReply *call_script(redisContext *c, int which, int argc, const char **argv, char *why, size_t whylen)
{
    const char *small_args[16], **args = small_args;
    size_t small_lens[16], *lens = small_lens;
    char sha[41];
    redisReply *r = NULL;
    if (3 + argc > 16) { /* a batch of settlements */
        args = malloc((size_t)(3 + argc) * sizeof *args);
        lens = malloc((size_t)(3 + argc) * sizeof *lens);
        if (!args || !lens) {
            free(args);
            free(lens);
            snprintf(why, whylen, "out of memory");
            return NULL;
        }
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!__atomic_load_n(&shas_ready, __ATOMIC_ACQUIRE) && load_scripts(c) < 0)
            break;
        pthread_mutex_lock(&pool_lock);
        memcpy(sha, shas[which], sizeof sha);
        pthread_mutex_unlock(&pool_lock);
        args[0] = "EVALSHA";
        args[1] = sha;
        args[2] = "0";
        for (int i = 0; i < argc; i++)
            args[3 + i] = argv[i];
        for (int i = 0; i < 3 + argc; i++)
            lens[i] = strlen(args[i]);
        r = redisCommandArgv(c, 3 + argc, args, lens);
        if (attempt == 0 && r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(r);
            r = NULL;
            if (load_scripts(c) < 0)
                break;
            continue;
        }
        break;
    }
    if (args != small_args) {
        free(args);
        free(lens);
    }
    if (r && !c->err && r->type != REDIS_REPLY_ERROR)
        return r;
    snprintf(why, whylen, "%s", c->err ? c->errstr : r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
    freeReplyObject(r);
    return NULL;
}

/* A pooled connection that the server closed (a restarted Redis), as opposed to a timeout. */
static bool closed_by_server(const redisContext *c)
{
    return c->err == REDIS_ERR_EOF || (c->err == REDIS_ERR_IO && strstr(c->errstr, "reset") != NULL) ||
           (c->err == REDIS_ERR_IO && strstr(c->errstr, "pipe") != NULL);
}

/* Runs a script with string arguments; returns its reply (the caller frees it) or NULL. */
static redisReply *run(int which, int argc, const char **argv)
{
    bool pooled;
    redisContext *c = take(&pooled);
    if (!c) {
        if (!__atomic_load_n(&down, __ATOMIC_ACQUIRE))
            mark_failure("cannot connect");
        else
            met_cluster_error();
        return NULL;
    }
    char why[128];
    redisReply *r = call_script(c, which, argc, argv, why, sizeof why);
    if (!r && pooled && closed_by_server(c)) { /* once more on a fresh connection */
        redisFree(c);
        c = connect_redis();
        if (!c) {
            mark_failure("cannot connect");
            return NULL;
        }
        r = call_script(c, which, argc, argv, why, sizeof why);
    }
    if (!r) {
        redisFree(c);
        mark_failure(why);
        return NULL;
    }
    give_back(c);
    mark_success();
    return r;
}

static void key_base(const cfg_key_t *k, char *out, size_t len)
{
    snprintf(out, len, "%skey:%s", conf->key_prefix, k->name);
}

/* ---- settlements, off the request's path ----
 * What a request gives back when it ends (its concurrency slot, the rest of its reservations)
 * changes no answer, so a thread sends it while the connection goes on to its next request:
 * it lets a batch gather for SETTLE_GATHER_US (a slot or the rest of a reservation is held that
 * much longer, never less), then sends it in one script call. A full queue makes the caller
 * send its own. */

#define SETTLE_QUEUE 4096
#define SETTLE_BATCH 64
#define SETTLE_GATHER_US 2000

typedef struct {
    const cfg_key_t *key;       /* the worker's config outlives the queue */
    uint64_t window;
    long long token_delta;
    char member[40];            /* "" none */
    bool has_period;
    unsigned long long period;
    long long cost_delta;
} settlement_t;

/* The script's arguments for e, formatted into space. */
typedef struct {
    char base[256], window[24], delta[24], member[40], period[24], cost[24];
    const char *argv[6];
} settle_args_t;

static void settle_args(const settlement_t *e, settle_args_t *a)
{
    key_base(e->key, a->base, sizeof a->base);
    snprintf(a->window, sizeof a->window, "%llu", (unsigned long long)e->window);
    snprintf(a->delta, sizeof a->delta, "%lld", e->token_delta);
    snprintf(a->member, sizeof a->member, "%s", e->member);
    if (e->has_period)
        snprintf(a->period, sizeof a->period, "%llu", e->period);
    else
        a->period[0] = '\0';
    snprintf(a->cost, sizeof a->cost, "%lld", e->cost_delta);
    const char *argv[6] = {a->base, a->window, a->delta, a->member, a->period, a->cost};
    memcpy(a->argv, argv, sizeof argv);
}

static settlement_t *settle_queue;      /* ring of SETTLE_QUEUE */
static unsigned settle_head, settle_len;
static pthread_mutex_t settle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t settle_wake = PTHREAD_COND_INITIALIZER;
static pthread_t settler;
static bool settler_running;
static bool settler_stop;               /* under settle_lock */

/* Sends n settlements in one script call (the outage rules apply to it as to any call). */
static void settle_batch(const settlement_t *batch, int n)
{
    settle_args_t *a = malloc((size_t)n * sizeof *a);
    const char **argv = malloc((size_t)n * 6 * sizeof *argv);
    if (a && argv) {
        for (int i = 0; i < n; i++) {
            settle_args(&batch[i], &a[i]);
            memcpy(argv + 6 * i, a[i].argv, sizeof a[i].argv);
        }
        freeReplyObject(run(SCRIPT_SETTLE, 6 * n, argv));
    } else {
        met_cluster_error();
    }
    free(argv);
    free(a);
}

static void *settle_loop(void *arg)
{
    (void)arg;
    settlement_t *batch = malloc(SETTLE_BATCH * sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&settle_lock);
        while (!settle_len && !settler_stop)
            pthread_cond_wait(&settle_wake, &settle_lock);
        if (!settle_len && settler_stop) {
            pthread_mutex_unlock(&settle_lock);
            break;
        }
        if (!settler_stop && settle_len < SETTLE_BATCH) {
            pthread_mutex_unlock(&settle_lock);
            struct timespec gather = {0, SETTLE_GATHER_US * 1000L};
            nanosleep(&gather, NULL);
            pthread_mutex_lock(&settle_lock);
        }
        int n = 0;
        while (settle_len && n < SETTLE_BATCH && batch) {
            batch[n++] = settle_queue[settle_head];
            settle_head = (settle_head + 1) % SETTLE_QUEUE;
            settle_len--;
        }
        pthread_mutex_unlock(&settle_lock);
        if (batch)
            settle_batch(batch, n);
    }
    free(batch);
    return NULL;
}

static void settle_later(const settlement_t *e)
{
    bool queued = false;
    if (settler_running) {
        pthread_mutex_lock(&settle_lock);
        if (settle_len < SETTLE_QUEUE && !settler_stop) {
            settle_queue[(settle_head + settle_len) % SETTLE_QUEUE] = *e;
            settle_len++;
            queued = true;
            pthread_cond_signal(&settle_wake);
        }
        pthread_mutex_unlock(&settle_lock);
    }
    if (!queued)
        settle_batch(e, 1);
}

/* ---- the calls ---- */

static long long elem_int(redisReply *r, size_t i)
{
    if (i >= r->elements)
        return 0;
    redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_INTEGER ? e->integer : e->type == REDIS_REPLY_STRING ? atoll(e->str) : 0;
}

static char elem_code(redisReply *r)
{
    if (r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len < 1)
        return 0;
    return r->element[0]->str[0];
}

/* How long a budget period's key outlives the period's start: its length and a day more. */
static long long budget_ttl(int period)
{
    switch (period) {
    case BUDGET_DAY: return 2 * 86400;
    case BUDGET_WEEK: return 8 * 86400;
    case BUDGET_MONTH: return 32 * 86400;
    default: return 0;
    }
}

cluster_result_t cluster_admit(const cfg_key_t *k, const cluster_ask_t *ask, char *member, size_t member_len,
                               cluster_answer_t *ans)
{
    char base[256], rpm[24], tpm[24], conc[24], lease[16], tokens[24], period[24], limit[24], cost[24], ttl[24];
    key_base(k, base, sizeof base);
    snprintf(rpm, sizeof rpm, "%ld", k->rpm);
    snprintf(tpm, sizeof tpm, "%ld", k->tpm);
    snprintf(conc, sizeof conc, "%d", k->max_concurrent);
    snprintf(lease, sizeof lease, "%d", SLOT_LEASE_S);
    snprintf(tokens, sizeof tokens, "%lld", ask->tokens);
    snprintf(period, sizeof period, "%llu", ask->period);
    snprintf(limit, sizeof limit, "%lld", ask->budget ? ask->budget_limit : -1LL);
    snprintf(cost, sizeof cost, "%lld", ask->budget ? ask->cost : 0LL);
    snprintf(ttl, sizeof ttl, "%lld", budget_ttl(k->budget_period));
    member[0] = '\0';
    if (k->max_concurrent) {
        char id[24];
        rand_id_hex(id, 8);
        snprintf(member, member_len, "%d:%s", (int)getpid(), id);
    }
    const char *argv[] = {base, rpm, tpm, conc, member, lease, tokens, period, limit, cost, ttl};
    redisReply *r = run(SCRIPT_ADMIT, 11, argv);
    if (!r)
        return CLUSTER_DOWN;
    memset(ans, 0, sizeof *ans);
    ans->which = r->type == REDIS_REPLY_ARRAY ? elem_code(r) : 0;
    int left = (int)elem_int(r, 1);
    long long count = elem_int(r, 2), used = elem_int(r, 3);
    ans->window = ans->which ? 0 : (uint64_t)elem_int(r, 4);
    freeReplyObject(r);
    st_key_usage_t *u = &ans->usage;
    u->reset_requests_s = u->reset_tokens_s = left;
    if (k->rpm) {
        u->limit_requests = k->rpm;
        u->remaining_requests = count >= k->rpm ? 0 : k->rpm - (long)count;
    }
    if (k->tpm) {
        u->limit_tokens = k->tpm;
        u->remaining_tokens = used >= k->tpm ? 0 : k->tpm - (long)used;
    }
    ans->retry_after_s = ans->which ? (left > 0 ? left : 1) : 0;
    return CLUSTER_OK;
}

void cluster_settle(const cfg_key_t *k, const cluster_settle_t *s)
{
    long long token_delta = s->window ? s->final_tokens - s->reserved_tokens : s->final_tokens;
    long long cost_delta = s->budget ? s->final_cost - s->reserved_cost : 0;
    if (!token_delta && !s->member && !cost_delta)
        return;
    settlement_t e = {.key = k, .window = s->window, .token_delta = token_delta, .has_period = s->budget && cost_delta,
                      .period = s->period, .cost_delta = cost_delta};
    if (s->member)
        snprintf(e.member, sizeof e.member, "%s", s->member);
    settle_later(&e);
}

void cluster_init(const cfg_t *cfg)
{
    conf = cfg->cluster.redis ? &cfg->cluster : NULL;
    if (!conf)
        return;
    met_cluster_up(true);
    prober_running = pthread_create(&prober, NULL, probe_loop, NULL) == 0;
    if (!prober_running)
        log_warn("cluster: cannot start the Redis reconnection thread: an outage will last until restart");
    settle_queue = calloc(SETTLE_QUEUE, sizeof *settle_queue);
    settler_running = settle_queue && pthread_create(&settler, NULL, settle_loop, NULL) == 0;
}

void cluster_shutdown(void)
{
    if (settler_running) { /* what is queued still goes out */
        pthread_mutex_lock(&settle_lock);
        settler_stop = true;
        pthread_cond_signal(&settle_wake);
        pthread_mutex_unlock(&settle_lock);
        pthread_join(settler, NULL);
        settler_running = false;
    }
    free(settle_queue);
    settle_queue = NULL;
    if (prober_running) {
        __atomic_store_n(&prober_stop, 1, __ATOMIC_RELEASE);
        pthread_join(prober, NULL);
        prober_running = false;
    }
    drop_pool();
}
