/* worker/core/failover.c and upstream.c: the retry and failover policy, driven through the one
 * upstream try against a scripted backend. Each target's backend_model names what the backend
 * does: "ok" answers, "500" fails before any byte, "down" cannot be reached, "chunk-then-500"
 * breaks after its first chunk, "429-once" refuses once with Retry-After: 1 and then answers. */
#include "common/clock.h"
#include "common/log.h"
#include "common/state.h"
#include "unit.h"
#include "worker/core/failover.h"
#include "worker/core/upstream.h"

#include <stdlib.h>
#include <time.h>

/* ---- the scripted backend ---- */

struct be_call {
    const char *script;
    int step;
};

#define MAX_OPENED 16
static struct {
    const char *backend_model;
    uint64_t at_ms;
} opened[MAX_OPENED];
static int nopened;

static int times_opened(const char *name)
{
    int n = 0;
    for (int i = 0; i < nopened; i++)
        n += strcmp(opened[i].backend_model, name) == 0;
    return n;
}

static be_call_t *fake_open(const be_request_t *breq, be_event_t *ev)
{
    const char *b = breq->backend_model;
    int before = times_opened(b);
    if (nopened < MAX_OPENED)
        opened[nopened++] = (typeof(opened[0])){b, clock_now_ms()};
    if (strcmp(b, "down") == 0) {
        be_event_error(ev, BE_ERR_CONNECT, 502, "server_error", "backend_connect", "The backend is unreachable.");
        return NULL;
    }
    if (strcmp(b, "429-once") == 0 && before == 0) {
        be_event_error(ev, BE_ERR_HTTP_4XX, 429, "requests", "rate_limit_exceeded", "Slow down.");
        ev->retry_after_s = 1;
        return NULL;
    }
    be_call_t *c = calloc(1, sizeof *c);
    c->script = b;
    return c;
}

static void fake_next(be_call_t *c, be_event_t *ev, int wait_ms)
{
    (void)wait_ms;
    int step = c->step++;
    *ev = (be_event_t){.type = BE_EV_END};
    if (strcmp(c->script, "500") == 0 || (strcmp(c->script, "chunk-then-500") == 0 && step == 1))
        be_event_error(ev, BE_ERR_HTTP_5XX, 502, "server_error", "backend_error", "The backend failed.");
    else if (step == 0)
        ev->type = BE_EV_CHUNK; /* a chunk with no object: the sink only counts it */
}

static void fake_close(be_call_t *c) { free(c); }

static const backend_ops_t fake_ops = {.type = {"scripted"}, .open = fake_open, .next = fake_next, .close = fake_close};

/* A sink that relays chunks as they come: after the first one the try can no longer fail. */
static upstream_step_t take(void *ctx, upstream_t *u, be_event_t *ev)
{
    (void)u;
    bool *sent = ctx;
    switch (ev->type) {
    case BE_EV_CHUNK: *sent = true; return UPSTREAM_MORE;
    case BE_EV_ERROR: return *sent ? UPSTREAM_ANSWERED : UPSTREAM_FAILED;
    case BE_EV_END: return UPSTREAM_ANSWERED;
    default: return UPSTREAM_MORE;
    }
}

/* What each try saw (the job the failover loop carries). */
typedef struct {
    int ntries;
    struct {
        const char *model;
        bool is_fallback;
    } tries[MAX_OPENED];
    try_result_t last_result;
} job_t;

static try_result_t scripted_try(request_t *req, void *job_arg, const cfg_model_t *m, bool is_fallback,
                                 const cfg_target_t *t, be_event_t *ev)
{
    job_t *job = job_arg;
    upstream_t u;
    if (upstream_begin(&u, req, m, is_fallback, t, false, ev) < 0)
        return TRY_FAILED;
    u.ops = &fake_ops;
    if (job->ntries < MAX_OPENED)
        job->tries[job->ntries++] = (typeof(job->tries[0])){m->name, is_fallback};
    be_request_t breq = {.backend = u.backend, .model = m, .backend_model = u.backend_model};
    bool sent = false;
    return job->last_result = upstream_run(&u, &breq, take, &sent, ev);
}

/* ---- a config of models on one backend ---- */

#define MAX_MODELS 4
#define MAX_TARGETS 4
typedef struct {
    cfg_t cfg;
    cfg_backend_t backend;
    cfg_model_t models[MAX_MODELS];
    cfg_target_t targets[MAX_MODELS][MAX_TARGETS];
    int fallbacks[MAX_MODELS];
} world_t;

/* Slots in the shared target state no other test uses: every world starts with fresh circuits. */
static int next_slot = 300;

static void world_init(world_t *w)
{
    memset(w, 0, sizeof *w);
    static char name[] = "b", type[] = "echo";
    w->backend = (cfg_backend_t){.name = name, .type = type, .metric_slot = 63};
    w->cfg.backends = &w->backend;
    w->cfg.nbackends = 1;
    w->cfg.models = w->models;
    w->cfg.retry = (cfg_retry_t){.attempts = 5, .backoff_ms = 1, .max_backoff_ms = 2, .deadline = 30,
                                 .retry_on = RETRY_ON_CONNECT | RETRY_ON_TIMEOUT | RETRY_ON_5XX | RETRY_ON_429};
    w->cfg.circuit_failures = 100;
    w->cfg.circuit_cooldown = 10;
    w->cfg.circuit_window = 10;
    w->cfg.circuit_min_requests = 1000;
}

/* Adds a model whose targets (tried in order) are the NULL-terminated backend_models. */
static cfg_model_t *add_model(world_t *w, const char *name, const char *const *targets)
{
    int i = w->cfg.nmodels++;
    cfg_model_t *m = &w->models[i];
    m->name = (char *)name;
    m->strategy = STRATEGY_ORDERED;
    m->backend_stream = -1;
    m->targets = w->targets[i];
    for (; targets[m->ntargets] && m->ntargets < MAX_TARGETS; m->ntargets++)
        m->targets[m->ntargets] = (cfg_target_t){.backend_model = (char *)targets[m->ntargets], .weight = 1,
                                                 .state_slot = next_slot++};
    return m;
}

/* A client that leaves at leaves_at_us (0: never), and how often the loop waited on it. */
typedef struct {
    uint64_t leaves_at_us;
    int waits;                  /* times the loop waited on the client */
} client_t;

static bool client_gone_within(void *ctx, int wait_ms)
{
    client_t *c = ctx;
    uint64_t now = clock_now_us(), until = now + (uint64_t)wait_ms * 1000;
    if (wait_ms > 0)
        c->waits++;
    if (c->leaves_at_us && c->leaves_at_us < until)
        until = c->leaves_at_us;
    if (until > now) {
        struct timespec ts = {(time_t)((until - now) / 1000000), (long)((until - now) % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    return c->leaves_at_us && clock_now_us() >= c->leaves_at_us;
}

/* One run of the loop: a world, a request for one of its models, its client and what came of it. */
typedef struct {
    world_t w;
    request_t req;
    client_t client;
    job_t job;
    be_event_t last;
    uint64_t client_deadline_ms; /* after the start; 0: none */
} run_t;

static bool shared_state(void)
{
    static int done;
    if (!done) {
        log_open(LOG_WARN, "", "off"); /* the loop's notes on each retry are not the test's output */
        done = st_init() == 0 ? 1 : -1;
    }
    return CHECK_MSG(done == 1, "st_init");
}

/* A fresh world in r; false if the shared state cannot be had. */
static bool setup(run_t *r)
{
    memset(r, 0, sizeof *r);
    world_init(&r->w);
    return shared_state();
}

/* Runs the failover loop on model m; the client leaves leaves_after_ms after the request starts
 * (0: it stays). */
static failover_outcome_t run(run_t *r, cfg_model_t *m, uint64_t leaves_after_ms)
{
    request_t *req = &r->req;
    memset(req, 0, sizeof *req);
    const request_client_t client = {.gone = client_gone_within, .ctx = &r->client, .fd = -1, .check_ms = 10};
    request_init(req, &r->w.cfg, REQUEST_HTTP, "POST", "/v1/chat/completions", &client);
    req->model_asked = m->name;
    req->model_routed = m->name;
    if (r->client_deadline_ms)
        req->deadline_us = req->start_us + r->client_deadline_ms * 1000;
    r->client = (client_t){.leaves_at_us = leaves_after_ms ? req->start_us + leaves_after_ms * 1000 : 0};
    r->job = (job_t){0};
    nopened = 0;
    return failover_run(req, &r->job, m, scripted_try, &r->last);
}

#define TARGETS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- the policy ---- */

static run_t r; /* one at a time: tests run in turn */

TEST(failover_retries_a_5xx_on_the_next_target)
{
    if (!setup(&r))
        return;
    CHECK_INT(run(&r, add_model(&r.w, "m", TARGETS("500", "ok")), 0), FAILOVER_ANSWERED);
    CHECK_INT(r.req.attempts, 2);
    CHECK_INT(nopened, 2);
    CHECK_STR(opened[0].backend_model, "500");
    CHECK_STR(opened[1].backend_model, "ok");
    CHECK_STR(r.req.error_reason, "");
    /* each try has its span: the failed one says why, the answered one nothing */
    CHECK_INT(r.req.ntries, 2);
    CHECK_STR(r.req.tries[0].error, "backend_5xx");
    CHECK_STR(r.req.tries[1].error, "");
    CHECK(r.req.tries[1].end_ns != 0);
}

TEST(failover_never_retries_after_the_first_byte)
{
    if (!setup(&r))
        return;
    CHECK_INT(run(&r, add_model(&r.w, "m", TARGETS("chunk-then-500", "ok")), 0), FAILOVER_ANSWERED);
    CHECK_INT(r.req.attempts, 1);
    CHECK_INT(nopened, 1);
    /* the broken answer's span ends with its error */
    CHECK_STR(r.req.tries[0].error, "backend_5xx");
}

TEST(failover_stops_at_the_attempts_budget)
{
    if (!setup(&r))
        return;
    r.w.cfg.retry.attempts = 2;
    CHECK_INT(run(&r, add_model(&r.w, "m", TARGETS("500", "down", "ok")), 0), FAILOVER_FAILED);
    CHECK_INT(r.req.attempts, 2);
    CHECK_INT(nopened, 2);
    CHECK_INT(r.last.error, BE_ERR_CONNECT); /* the last try's failure is the answer */
    CHECK_STR(r.req.error_reason, "backend_connect");
}

TEST(failover_stops_at_the_deadline)
{
    if (!setup(&r))
        return;
    /* the back-off after the first failure would end past the deadline: no second try */
    r.w.cfg.retry.deadline = 0.3;
    r.w.cfg.retry.backoff_ms = r.w.cfg.retry.max_backoff_ms = 2000;
    uint64_t t0 = clock_now_ms();
    CHECK_INT(run(&r, add_model(&r.w, "m", TARGETS("500", "ok")), 0), FAILOVER_FAILED);
    CHECK_INT(nopened, 1);
    CHECK_MSG(clock_now_ms() - t0 < 250, "answered after %llu ms, not at once", (unsigned long long)(clock_now_ms() - t0));
}

TEST(failover_stops_at_the_clients_deadline)
{
    if (!setup(&r))
        return;
    /* a gRPC call's own deadline counts as the retry deadline does */
    r.w.cfg.retry.backoff_ms = r.w.cfg.retry.max_backoff_ms = 2000;
    r.client_deadline_ms = 300;
    CHECK_INT(run(&r, add_model(&r.w, "m", TARGETS("500", "ok")), 0), FAILOVER_FAILED);
    CHECK_INT(nopened, 1);
}

TEST(failover_waits_out_a_retry_after)
{
    if (!setup(&r))
        return;
    CHECK_INT(run(&r, add_model(&r.w, "m", TARGETS("429-once")), 0), FAILOVER_ANSWERED);
    CHECK_INT(nopened, 2);
    if (nopened == 2)
        CHECK_MSG(opened[1].at_ms - opened[0].at_ms >= 950, "retried %llu ms after a Retry-After of 1 s",
                  (unsigned long long)(opened[1].at_ms - opened[0].at_ms));
    CHECK(r.client.waits > 0); /* the wait watched the client */
}

TEST(failover_stops_at_once_when_the_client_leaves_during_a_back_off)
{
    if (!setup(&r))
        return;
    r.w.cfg.retry.backoff_ms = r.w.cfg.retry.max_backoff_ms = 5000;
    uint64_t t0 = clock_now_ms();
    CHECK_INT(run(&r, add_model(&r.w, "m", TARGETS("500", "ok")), 100), FAILOVER_CLIENT_GONE);
    uint64_t took = clock_now_ms() - t0;
    CHECK_MSG(took < 1000, "the back-off went on %llu ms after the client left", (unsigned long long)took);
    CHECK_INT(nopened, 1);
    CHECK_STR(r.req.error_reason, "client_abort");
}

TEST(failover_stops_at_once_when_the_client_leaves_during_a_retry_after)
{
    if (!setup(&r))
        return;
    uint64_t t0 = clock_now_ms();
    CHECK_INT(run(&r, add_model(&r.w, "m", TARGETS("429-once")), 100), FAILOVER_CLIENT_GONE);
    uint64_t took = clock_now_ms() - t0;
    CHECK_MSG(took < 700, "the Retry-After wait went on %llu ms after the client left", (unsigned long long)took);
    CHECK_INT(nopened, 1);
}

TEST(failover_follows_the_fallback_chain_in_order)
{
    if (!setup(&r))
        return;
    cfg_model_t *m = add_model(&r.w, "main", TARGETS("500", "down"));
    add_model(&r.w, "first-fallback", TARGETS("500"));
    add_model(&r.w, "second-fallback", TARGETS("ok"));
    r.w.fallbacks[0] = 1;
    r.w.fallbacks[1] = 2;
    m->fallbacks = r.w.fallbacks;
    m->nfallbacks = 2;
    CHECK_INT(run(&r, m, 0), FAILOVER_ANSWERED);
    CHECK_INT(r.job.ntries, 4);
    const char *want[] = {"main", "main", "first-fallback", "second-fallback"};
    for (int i = 0; i < 4 && i < r.job.ntries; i++) {
        CHECK_STR(r.job.tries[i].model, want[i]);
        CHECK_INT(r.job.tries[i].is_fallback, i >= 2);
    }
    CHECK_STR(r.req.model_routed, "second-fallback"); /* the model that answered */
}

TEST(failover_without_a_usable_target_says_when_one_may_be)
{
    if (!setup(&r))
        return;
    cfg_model_t *m = add_model(&r.w, "m", TARGETS("ok"));
    st_target_block(m->targets[0].state_slot, clock_now_ms() + 5000);
    CHECK_INT(run(&r, m, 0), FAILOVER_NO_TARGET);
    CHECK_INT(nopened, 0);
    CHECK_MSG(r.req.retry_after_s >= 4 && r.req.retry_after_s <= 5, "Retry-After %d", r.req.retry_after_s);
    CHECK_STR(r.req.error_reason, "no_available_target");
}
