#include "worker/core/health.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/state.h"
#include "worker/backend/backend.h"

#define TICK_MS 200

static const cfg_t *health_cfg;
static pthread_t thread;
static bool running;
static volatile int stop_flag;

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

/* GET {url}{path}: healthy on 2xx. */
static bool check(CURL *curl, const cfg_backend_t *b)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s", b->url, b->health_path);
    struct curl_slist *h = NULL;
    char auth[1100];
    bool anthropic = strcmp(b->type, "anthropic") == 0; /* its own key header and a version */
    if (b->api_key) {
        snprintf(auth, sizeof auth, anthropic ? "x-api-key: %s" : "Authorization: Bearer %s", b->api_key);
        h = curl_slist_append(h, auth);
    }
    if (anthropic)
        h = curl_slist_append(h, "anthropic-version: " ANTHROPIC_VERSION);
    for (int i = 0; i < b->nheaders; i++)
        h = curl_slist_append(h, b->headers[i]);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(b->health_timeout * 1000));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(b->connect_timeout * 1000));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "airouter-health");
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return rc == CURLE_OK && status >= 200 && status < 300;
}

/* A model name served by backend b, for ModelReady (the first target naming one). */
static const char *model_on(const cfg_backend_t *b)
{
    for (int i = 0; i < health_cfg->nmodels; i++)
        for (int t = 0; t < health_cfg->models[i].ntargets; t++) {
            const cfg_target_t *tg = &health_cfg->models[i].targets[t];
            if (&health_cfg->backends[tg->backend] == b && tg->backend_model)
                return tg->backend_model;
        }
    return NULL;
}

/* Backends not checked over HTTP (Triton) have a readiness probe of their own. */
static bool probe(const cfg_backend_t *b, char *why, size_t whylen)
{
    const backend_ops_t *ops = be_lookup(b->type);
    if (!ops || !ops->probe)
        return true;
    return ops->probe(b, model_on(b), (int)(b->health_timeout > 0 ? b->health_timeout * 1000 : 2000), why, whylen) == 0;
}

static bool has_probe(const cfg_backend_t *b)
{
    const backend_ops_t *ops = be_lookup(b->type);
    return ops && ops->probe;
}

static void *health_main(void *arg)
{
    (void)arg;
    /* Say at start-up whether each probe-able backend (Triton) is ready. */
    for (int i = 0; i < health_cfg->nbackends && !stop_flag; i++) {
        const cfg_backend_t *b = &health_cfg->backends[i];
        if (!has_probe(b))
            continue;
        char why[300] = "";
        if (probe(b, why, sizeof why))
            log_info("backend '%s' is ready", b->name);
        else
            log_warn("backend '%s' is not ready: %s", b->name, why);
    }
    CURL *curl = curl_easy_init();
    int n = health_cfg->nbackends;
    uint64_t *next = calloc((size_t)n, sizeof *next);
    bool *known = calloc((size_t)n, sizeof *known), *was = calloc((size_t)n, sizeof *was);
    double shortest = 3600;
    for (int i = 0; i < n; i++)
        if (health_cfg->backends[i].health_path && health_cfg->backends[i].health_interval < shortest)
            shortest = health_cfg->backends[i].health_interval;
    /* A leader silent for three intervals (at least 3 s) is presumed gone. */
    uint64_t ttl = (uint64_t)(shortest * 3000) < 3000 ? 3000 : (uint64_t)(shortest * 3000);
    while (!stop_flag && curl && next && known && was) {
        uint64_t now = clock_now_ms();
        if (st_health_lease(getpid(), now, ttl)) {
            for (int i = 0; i < n && !stop_flag; i++) {
                const cfg_backend_t *b = &health_cfg->backends[i];
                if (!b->health_path || !b->url || now < next[i])
                    continue;
                char why[300] = "";
                bool ok = has_probe(b) ? probe(b, why, sizeof why)
                          : strncmp(b->url, "http", 4) == 0 ? check(curl, b)
                                                             : true;
                next[i] = clock_now_ms() + (uint64_t)(b->health_interval * 1000);
                st_backend_health(b->metric_slot, ok);
                if (!known[i] || was[i] != ok)
                    log_msg(ok ? LOG_INFO : LOG_WARN, "health check: backend '%s' is %s%s%s", b->name,
                            ok ? "healthy" : "unhealthy", why[0] ? ": " : "", why);
                known[i] = true;
                was[i] = ok;
            }
        }
        struct timespec ts = {0, TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(next);
    free(known);
    free(was);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

int health_start(const cfg_t *cfg)
{
    health_cfg = cfg;
    bool any = false;
    for (int i = 0; i < cfg->nbackends; i++)
        any |= (cfg->backends[i].health_path != NULL && cfg->backends[i].url != NULL) || has_probe(&cfg->backends[i]);
    if (!any)
        return 0;
    if (pthread_create(&thread, NULL, health_main, NULL) != 0) {
        log_error("cannot start the health-check thread");
        return -1;
    }
    running = true;
    return 0;
}

void health_stop(void)
{
    if (!running)
        return;
    stop_flag = 1;
    pthread_join(thread, NULL);
    running = false;
}
