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
 * clock, so that every host counts in the same minute whatever its own clock says. */
static const char admit_lua[] =
    "local now = tonumber(redis.call('TIME')[1])\n"
    "local minute = math.floor(now / 60)\n"
    "local left = 60 - now % 60\n"
    "local base = ARGV[1]\n"
    "local rpm, tpm, conc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local used = 0\n"
    "if tpm > 0 then\n"
    "  used = tonumber(redis.call('GET', base .. ':t:' .. minute) or '0')\n"
    "  if used >= tpm then return {'t', left, 0, used} end\n"
    "end\n"
    "local count = 0\n"
    "if rpm > 0 then\n"
    "  local rk = base .. ':r:' .. minute\n"
    "  count = redis.call('INCR', rk)\n"
    "  if count == 1 then redis.call('EXPIRE', rk, 120) end\n"
    "  if count > rpm then return {'r', left, count, used} end\n"
    "end\n"
    "if conc > 0 then\n"
    "  local ck = base .. ':c'\n"
    "  redis.call('ZREMRANGEBYSCORE', ck, '-inf', now)\n"
    "  if redis.call('ZCARD', ck) >= conc then return {'c', 1, count, used} end\n"
    "  local lease = tonumber(ARGV[6])\n"
    "  redis.call('ZADD', ck, now + lease, ARGV[5])\n"
    "  redis.call('EXPIRE', ck, lease)\n"
    "end\n"
    "return {'', left, count, used}\n";

static const char reserve_lua[] =
    "local now = tonumber(redis.call('TIME')[1])\n"
    "local minute = math.floor(now / 60)\n"
    "local tk = ARGV[1] .. ':t:' .. minute\n"
    "local used = tonumber(redis.call('GET', tk) or '0')\n"
    "if used >= tonumber(ARGV[2]) then return {'t', 60 - now % 60, 0} end\n"
    "redis.call('INCRBY', tk, ARGV[3])\n"
    "redis.call('EXPIRE', tk, 120)\n"
    "return {'', 0, minute + 1}\n";

/* ARGV: base, window (minute + 1, or 0: no reservation), delta, member ("" none). */
static const char finish_lua[] =
    "local w, d = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if d ~= 0 then\n"
    "  local minute = math.floor(tonumber(redis.call('TIME')[1]) / 60)\n"
    "  if w == 0 and d > 0 then w = minute + 1 end\n"
    "  if w - 1 == minute then\n"
    "    local tk = ARGV[1] .. ':t:' .. minute\n"
    "    if redis.call('INCRBY', tk, d) < 0 then redis.call('SET', tk, 0) end\n"
    "    redis.call('EXPIRE', tk, 120)\n"
    "  end\n"
    "end\n"
    "if ARGV[4] ~= '' then redis.call('ZREM', ARGV[1] .. ':c', ARGV[4]) end\n"
    "return 1\n";

/* ARGV: base, period id, limit, estimate, ttl seconds (0: keep for ever, a "total" budget). */
static const char budget_reserve_lua[] =
    "local bk = ARGV[1] .. ':b:' .. ARGV[2]\n"
    "local spent = tonumber(redis.call('GET', bk) or '0')\n"
    "if spent >= tonumber(ARGV[3]) then return {'b', spent} end\n"
    "redis.call('INCRBY', bk, ARGV[4])\n"
    "if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', bk, ARGV[5]) end\n"
    "return {'', spent}\n";

/* ARGV: base, period id, delta. A period whose key expired is left alone. */
static const char budget_settle_lua[] =
    "local bk = ARGV[1] .. ':b:' .. ARGV[2]\n"
    "if redis.call('EXISTS', bk) == 0 then return 0 end\n"
    "if redis.call('INCRBY', bk, ARGV[3]) < 0 then redis.call('SET', bk, 0, 'KEEPTTL') end\n"
    "return 1\n";

enum { SCRIPT_ADMIT, SCRIPT_RESERVE, SCRIPT_FINISH, SCRIPT_BUDGET_RESERVE, SCRIPT_BUDGET_SETTLE, NSCRIPTS };
static const char *const scripts[NSCRIPTS] = {admit_lua, reserve_lua, finish_lua, budget_reserve_lua,
                                              budget_settle_lua};

/* A concurrency slot is held at most this long: a host that died holding one frees it then. */
#define SLOT_LEASE_S 600
#define POOL_MAX 64
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static const cfg_cluster_t *conf;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static redisContext *pool[POOL_MAX];
static int npool;
static char shas[NSCRIPTS][41];    /* set under pool_lock by the first connection */
static uint64_t retry_at_ms;       /* while down: no call before this */
static uint64_t backoff_ms = BACKOFF_MIN_MS;
static int down;                   /* an outage is in progress (logged once) */

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

static redisContext *connect_redis(void);
static void give_back(redisContext *c);
static void mark_success(void);
static void settle_later(int script, int argc, const char **argv);

/* While Redis is down, tries it again after each back-off, in the background, so that no
 * request ever waits for a reconnection and counting resumes as soon as Redis answers. */
static void *probe_loop(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&prober_stop, __ATOMIC_ACQUIRE)) {
        struct timespec tick = {0, 50 * 1000000L};
        nanosleep(&tick, NULL);
        if (!__atomic_load_n(&down, __ATOMIC_ACQUIRE) || clock_now_ms() < __atomic_load_n(&retry_at_ms, __ATOMIC_ACQUIRE))
            continue;
        redisContext *c = connect_redis();
        redisReply *r = c ? redisCommand(c, "PING") : NULL;
        bool ok = r && c && !c->err && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (ok) {
            give_back(c);
            mark_success();
            continue;
        }
        if (c)
            redisFree(c);
        uint64_t b = __atomic_load_n(&backoff_ms, __ATOMIC_RELAXED);
        __atomic_store_n(&retry_at_ms, clock_now_ms() + b, __ATOMIC_RELEASE);
        __atomic_store_n(&backoff_ms, b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2, __ATOMIC_RELAXED);
    }
    return NULL;
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

static int load_script(redisContext *c, int which)
{
    redisReply *r = redisCommand(c, "SCRIPT LOAD %s", scripts[which]);
    int rc = r && r->type == REDIS_REPLY_STRING && r->len == 40 ? 0 : -1;
    if (rc == 0) {
        pthread_mutex_lock(&pool_lock);
        memcpy(shas[which], r->str, 40);
        shas[which][40] = '\0';
        pthread_mutex_unlock(&pool_lock);
    }
    freeReplyObject(r);
    return rc;
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
    if (__atomic_exchange_n(&down, 0, __ATOMIC_ACQ_REL)) {
        log_info("cluster: Redis %s:%d answers again; shared counting resumed", conf->redis_host, conf->redis_port);
        met_cluster_up(true);
    }
    __atomic_store_n(&backoff_ms, BACKOFF_MIN_MS, __ATOMIC_RELAXED);
}

/* One EVALSHA on c, loading the script first if this process has not yet, and again if
 * Redis has forgotten it (restarted or flushed). NULL when c failed or Redis answered an error. */
static redisReply *call_script(redisContext *c, int which, int argc, const char **argv, char *why, size_t whylen)
{
    const char *args[16];
    size_t lens[16];
    char nkeys[] = "0", sha[41];
    redisReply *r = NULL;
    for (int attempt = 0; attempt < 3; attempt++) {
        pthread_mutex_lock(&pool_lock);
        memcpy(sha, shas[which], sizeof sha);
        pthread_mutex_unlock(&pool_lock);
        if (!sha[0]) {
            if (load_script(c, which) < 0)
                break;
            continue;
        }
        args[0] = "EVALSHA";
        args[1] = sha;
        args[2] = nkeys;
        for (int i = 0; i < argc; i++)
            args[3 + i] = argv[i];
        for (int i = 0; i < 3 + argc; i++)
            lens[i] = strlen(args[i]);
        r = redisCommandArgv(c, 3 + argc, args, lens);
        if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(r);
            r = NULL;
            if (load_script(c, which) < 0)
                break;
            continue;
        }
        break;
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

/* ---- settlements, off the request's path ----
 * What a request gives back when it ends (its concurrency slot, the rest of its reservations)
 * changes no answer, so a thread sends it, pipelined, while the connection goes on to its next
 * request. A full queue makes the caller send its own. */

#define SETTLE_QUEUE 4096
#define SETTLE_BATCH 64

typedef struct {
    int script, argc;
    char args[4][256];
} settlement_t;

static settlement_t *settle_queue;      /* ring of SETTLE_QUEUE */
static unsigned settle_head, settle_len;
static pthread_mutex_t settle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t settle_wake = PTHREAD_COND_INITIALIZER;
static pthread_t settler;
static bool settler_running;
static bool settler_stop;               /* under settle_lock */

static void settle_now(const settlement_t *e)
{
    const char *argv[4];
    for (int i = 0; i < e->argc; i++)
        argv[i] = e->args[i];
    freeReplyObject(run(e->script, e->argc, argv));
}

/* Sends a batch on one connection, pipelined; entries that could not go are sent one by one
 * (which applies the outage rules). */
static void settle_batch(settlement_t *batch, int n)
{
    bool pooled;
    redisContext *c = take(&pooled);
    int sent = 0, done = 0;
    for (; c && sent < n; sent++) {
        const settlement_t *e = &batch[sent];
        char sha[41];
        pthread_mutex_lock(&pool_lock);
        memcpy(sha, shas[e->script], sizeof sha);
        pthread_mutex_unlock(&pool_lock);
        if (!sha[0])
            break;
        const char *args[7] = {"EVALSHA", sha, "0"};
        size_t lens[7];
        for (int i = 0; i < e->argc; i++)
            args[3 + i] = e->args[i];
        for (int i = 0; i < 3 + e->argc; i++)
            lens[i] = strlen(args[i]);
        if (redisAppendCommandArgv(c, 3 + e->argc, args, lens) != REDIS_OK)
            break;
    }
    bool broken = false;
    for (; c && done < sent; done++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) {
            broken = true;
            break;
        }
        redisReply *r = reply;
        bool retry = r && r->type == REDIS_REPLY_ERROR; /* NOSCRIPT after a restart, say */
        freeReplyObject(r);
        if (retry)
            settle_now(&batch[done]);
    }
    if (c && !broken && !c->err)
        give_back(c);
    else if (c)
        redisFree(c);
    for (int i = done; i < n; i++)
        settle_now(&batch[i]);
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

static void settle_later(int script, int argc, const char **argv)
{
    settlement_t e = {.script = script, .argc = argc};
    for (int i = 0; i < argc && i < 4; i++)
        snprintf(e.args[i], sizeof e.args[i], "%s", argv[i]);
    bool queued = false;
    if (settler_running) {
        pthread_mutex_lock(&settle_lock);
        if (settle_len < SETTLE_QUEUE && !settler_stop) {
            settle_queue[(settle_head + settle_len) % SETTLE_QUEUE] = e;
            settle_len++;
            queued = true;
            pthread_cond_signal(&settle_wake);
        }
        pthread_mutex_unlock(&settle_lock);
    }
    if (!queued)
        settle_now(&e);
}

static void key_base(const cfg_key_t *k, char *out, size_t len)
{
    snprintf(out, len, "%skey:%s", conf->key_prefix, k->name);
}

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

cluster_result_t cluster_admit(const cfg_key_t *k, char *member, size_t member_len, int *retry_after_s,
                               st_key_usage_t *u, char *which)
{
    char base[256], rpm[24], tpm[24], conc[24], lease[16];
    key_base(k, base, sizeof base);
    snprintf(rpm, sizeof rpm, "%ld", k->rpm);
    snprintf(tpm, sizeof tpm, "%ld", k->tpm);
    snprintf(conc, sizeof conc, "%d", k->max_concurrent);
    snprintf(lease, sizeof lease, "%d", SLOT_LEASE_S);
    member[0] = '\0';
    if (k->max_concurrent) {
        char id[24];
        rand_id_hex(id, 8);
        snprintf(member, member_len, "%d:%s", (int)getpid(), id);
    }
    const char *argv[] = {base, rpm, tpm, conc, member, lease};
    redisReply *r = run(SCRIPT_ADMIT, 6, argv);
    if (!r)
        return CLUSTER_DOWN;
    *which = r->type == REDIS_REPLY_ARRAY ? elem_code(r) : 0;
    int left = (int)elem_int(r, 1);
    long long count = elem_int(r, 2), used = elem_int(r, 3);
    freeReplyObject(r);
    u->reset_requests_s = u->reset_tokens_s = left;
    if (k->rpm) {
        u->limit_requests = k->rpm;
        u->remaining_requests = count >= k->rpm ? 0 : k->rpm - (long)count;
    }
    if (k->tpm) {
        u->limit_tokens = k->tpm;
        u->remaining_tokens = used >= k->tpm ? 0 : k->tpm - (long)used;
    }
    *retry_after_s = *which ? (left > 0 ? left : 1) : 0;
    return CLUSTER_OK;
}

cluster_result_t cluster_reserve(const cfg_key_t *k, long long estimate, uint64_t *window, int *retry_after_s,
                                 char *which)
{
    char base[256], tpm[24], est[24];
    key_base(k, base, sizeof base);
    snprintf(tpm, sizeof tpm, "%ld", k->tpm);
    snprintf(est, sizeof est, "%lld", estimate);
    const char *argv[] = {base, tpm, est};
    redisReply *r = run(SCRIPT_RESERVE, 3, argv);
    if (!r)
        return CLUSTER_DOWN;
    *which = r->type == REDIS_REPLY_ARRAY ? elem_code(r) : 0;
    *retry_after_s = *which ? (int)elem_int(r, 1) : 0;
    *window = *which ? 0 : (uint64_t)elem_int(r, 2);
    freeReplyObject(r);
    return CLUSTER_OK;
}

void cluster_finish(const cfg_key_t *k, uint64_t window, long long reserved, long long final, const char *member)
{
    long long delta = window ? final - reserved : final;
    if (!delta && !member)
        return;
    char base[256], w[24], d[24];
    key_base(k, base, sizeof base);
    snprintf(w, sizeof w, "%llu", (unsigned long long)window);
    snprintf(d, sizeof d, "%lld", delta);
    const char *argv[] = {base, w, d, member ? member : ""};
    settle_later(SCRIPT_FINISH, 4, argv);
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

cluster_result_t cluster_budget_reserve(const cfg_key_t *k, unsigned long long period, long long limit,
                                        long long estimate, char *which)
{
    char base[256], p[24], l[24], e[24], ttl[24];
    key_base(k, base, sizeof base);
    snprintf(p, sizeof p, "%llu", period);
    snprintf(l, sizeof l, "%lld", limit);
    snprintf(e, sizeof e, "%lld", estimate);
    snprintf(ttl, sizeof ttl, "%lld", budget_ttl(k->budget_period));
    const char *argv[] = {base, p, l, e, ttl};
    redisReply *r = run(SCRIPT_BUDGET_RESERVE, 5, argv);
    if (!r)
        return CLUSTER_DOWN;
    *which = r->type == REDIS_REPLY_ARRAY ? elem_code(r) : 0;
    freeReplyObject(r);
    return CLUSTER_OK;
}

void cluster_budget_settle(const cfg_key_t *k, unsigned long long period, long long reserved, long long final)
{
    if (final == reserved)
        return;
    char base[256], p[24], d[24];
    key_base(k, base, sizeof base);
    snprintf(p, sizeof p, "%llu", period);
    snprintf(d, sizeof d, "%lld", final - reserved);
    const char *argv[] = {base, p, d};
    settle_later(SCRIPT_BUDGET_SETTLE, 3, argv);
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
