#include "common/metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"
#include "common/slots.h"

#define NBUCKETS 15
static const double bucket_bounds[NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                               2.5,   5,    10,    30,   60,  120, 300};

typedef struct {
    uint64_t buckets[NBUCKETS + 1]; /* per bucket (not cumulative); last is +Inf */
    uint64_t count;
    uint64_t sum_us;
} met_hist_t;

typedef struct {
    char model_names[MET_MODELS][128];
    int nmodels;
    char backend_names[MET_BACKENDS][64];
    int nbackends;
    uint64_t requests[MET_MODELS][MET_BACKENDS][KIND_COUNT][MET_NCLASSES];
    met_hist_t hists[MET_NHISTS][MET_MODELS];
    uint64_t tokens[MET_MODELS][2];
    uint64_t backend_errors[MET_BACKENDS][MET_NREASONS];
    uint64_t aborts[MET_MODELS];
    int64_t in_flight[MET_WORKERS];
    uint64_t workers_alive, worker_restarts, reloads_ok, reloads_failed, generation;
    uint64_t spans_exported, spans_dropped;
    uint64_t cluster_errors;
    uint64_t cluster_state[MET_WORKERS]; /* per worker: 0 no cluster (or gone), 1 up, 2 down */
} met_shm_t;

static met_shm_t *shm;
static int self_slot;

/* Release adds and acquire loads: a scrape reads the counters a request bumps last (in flight, then
   requests_total) first, so one that sees a request finished also sees everything it counted. */
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELEASE)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

int met_init(void)
{
    void *p = mmap(NULL, sizeof(met_shm_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("cannot map shared memory for metrics");
        return -1;
    }
    shm = p;
    strcpy(shm->model_names[0], "other");
    shm->nmodels = 1;
    strcpy(shm->backend_names[0], "none");
    shm->nbackends = 1;
    return 0;
}

/* The slot of a label value; 0 ("other"/"none") when the table is full or the name too long to
 * show whole. */
static int name_slot(char *names, size_t width, int *n, int max, const char *name)
{
    if (strlen(name) >= width)
        return 0;
    int slot = slots_find_or_add(names, width, width, 1, n, max, name);
    return slot < 0 ? 0 : slot;
}

void met_assign_slots(cfg_t *cfg)
{
    if (!shm)
        return;
    for (int i = 0; i < cfg->nbackends; i++)
        cfg->backends[i].metric_slot = name_slot(&shm->backend_names[0][0], sizeof shm->backend_names[0],
                                                 &shm->nbackends, MET_BACKENDS, cfg->backends[i].name);
    for (int i = 0; i < cfg->nmodels; i++)
        cfg->models[i].metric_slot = name_slot(&shm->model_names[0][0], sizeof shm->model_names[0],
                                               &shm->nmodels, MET_MODELS, cfg->models[i].name);
}

void met_set_worker_slot(int slot) { self_slot = slot >= 0 && slot < MET_WORKERS ? slot : 0; }

void met_clear_worker(int slot)
{
    if (shm && slot >= 0 && slot < MET_WORKERS) {
        STORE(&shm->in_flight[slot], 0);
        STORE(&shm->cluster_state[slot], 0);
    }
}

static bool ok_model(int m) { return shm && m >= 0 && m < MET_MODELS; }
static bool ok_backend(int b) { return shm && b >= 0 && b < MET_BACKENDS; }

void met_in_flight(int delta)
{
    if (shm)
        ADD(&shm->in_flight[self_slot], delta);
}

void met_request(int model, int backend, unsigned kind, int status)
{
    if (!ok_model(model) || !ok_backend(backend))
        return;
    int cls = status >= 500 ? MET_5XX : status >= 400 ? MET_4XX : MET_2XX;
    ADD(&shm->requests[model][backend][cfg_kind_index(kind)][cls], 1);
}

void met_observe(enum met_hist_kind h, int model, uint64_t micros)
{
    if (!ok_model(model))
        return;
    met_hist_t *hist = &shm->hists[h][model];
    double secs = (double)micros / 1e6;
    int b = 0;
    while (b < NBUCKETS && secs > bucket_bounds[b])
        b++;
    ADD(&hist->buckets[b], 1);
    ADD(&hist->sum_us, micros);
    ADD(&hist->count, 1);
}

void met_tokens(int model, uint64_t prompt, uint64_t completion)
{
    if (!ok_model(model))
        return;
    ADD(&shm->tokens[model][0], prompt);
    ADD(&shm->tokens[model][1], completion);
}

void met_backend_error(int backend, enum met_reason reason)
{
    if (ok_backend(backend) && reason < MET_NREASONS)
        ADD(&shm->backend_errors[backend][reason], 1);
}

void met_client_abort(int model)
{
    if (ok_model(model))
        ADD(&shm->aborts[model], 1);
}

void met_spans(uint64_t exported, uint64_t dropped)
{
    if (!shm)
        return;
    ADD(&shm->spans_exported, exported);
    ADD(&shm->spans_dropped, dropped);
}

void met_cluster_error(void)
{
    if (shm)
        ADD(&shm->cluster_errors, 1);
}

void met_cluster_up(bool up)
{
    if (shm)
        STORE(&shm->cluster_state[self_slot], up ? 1 : 2);
}

void met_set_workers(int alive)
{
    if (shm)
        STORE(&shm->workers_alive, (uint64_t)alive);
}

void met_worker_restarted(void)
{
    if (shm)
        ADD(&shm->worker_restarts, 1);
}

void met_reload(bool ok)
{
    if (shm)
        ADD(ok ? &shm->reloads_ok : &shm->reloads_failed, 1);
}

void met_set_generation(unsigned gen)
{
    if (shm)
        STORE(&shm->generation, gen);
}

/* Label values are config names: escape them as Prometheus requires anyway. */
static void label(buf_t *out, const char *key, const char *value)
{
    buf_printf(out, "%s=\"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            buf_printf(out, "\\%c", *p);
        else if (*p == '\n')
            buf_appends(out, "\\n");
        else
            buf_append(out, p, 1);
    }
    buf_appends(out, "\"");
}

static void help(buf_t *out, const char *name, const char *type, const char *text)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

void met_label(buf_t *out, const char *key, const char *value) { label(out, key, value); }
void met_help(buf_t *out, const char *name, const char *type, const char *text) { help(out, name, type, text); }

static void render_hist(buf_t *out, enum met_hist_kind h, const char *name, const char *text)
{
    help(out, name, "histogram", text);
    int nmodels = LOAD(&shm->nmodels);
    for (int m = 0; m < nmodels; m++) {
        met_hist_t *hist = &shm->hists[h][m];
        uint64_t count = LOAD(&hist->count);
        if (!count)
            continue;
        uint64_t cum = 0;
        for (int b = 0; b <= NBUCKETS; b++) {
            cum += LOAD(&hist->buckets[b]);
            buf_printf(out, "%s_bucket{", name);
            label(out, "model", shm->model_names[m]);
            if (b < NBUCKETS)
                buf_printf(out, ",le=\"%g\"} %llu\n", bucket_bounds[b], (unsigned long long)cum);
            else
                buf_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        buf_printf(out, "%s_sum{", name);
        label(out, "model", shm->model_names[m]);
        buf_printf(out, "} %.6f\n", (double)LOAD(&hist->sum_us) / 1e6);
        buf_printf(out, "%s_count{", name);
        label(out, "model", shm->model_names[m]);
        buf_printf(out, "} %llu\n", (unsigned long long)count);
    }
}

int met_render(buf_t *out, const char *version)
{
    static const char *const classes[] = {"2xx", "4xx", "5xx"};
    static const char *const reasons[] = {"connect", "timeout", "5xx", "4xx", "protocol"};
    if (!shm)
        return -1;
    int nmodels = LOAD(&shm->nmodels), nbackends = LOAD(&shm->nbackends);
    int64_t in_flight = 0; /* read first: see the ADD comment */
    for (int i = 0; i < MET_WORKERS; i++)
        in_flight += LOAD(&shm->in_flight[i]);

    help(out, "airouter_build_info", "gauge", "Build information.");
    buf_appends(out, "airouter_build_info{");
    label(out, "version", version);
    buf_appends(out, "} 1\n");

    help(out, "airouter_requests_total", "counter", "API requests by model, backend, kind and status class.");
    for (int m = 0; m < nmodels; m++)
        for (int b = 0; b < nbackends; b++)
            for (int k = 0; k < KIND_COUNT; k++)
                for (int c = 0; c < MET_NCLASSES; c++) {
                    uint64_t v = LOAD(&shm->requests[m][b][k][c]);
                    if (!v)
                        continue;
                    buf_appends(out, "airouter_requests_total{");
                    label(out, "model", shm->model_names[m]);
                    buf_appends(out, ",");
                    label(out, "backend", shm->backend_names[b]);
                    buf_printf(out, ",kind=\"%s\",status_class=\"%s\"} %llu\n", cfg_kind_name(1u << k), classes[c],
                               (unsigned long long)v);
                }

    help(out, "airouter_requests_in_flight", "gauge", "API requests being served.");
    buf_printf(out, "airouter_requests_in_flight %lld\n", (long long)(in_flight > 0 ? in_flight : 0));

    render_hist(out, MET_H_DURATION, "airouter_request_duration_seconds", "Time to serve an API request.");
    render_hist(out, MET_H_TTFT, "airouter_time_to_first_token_seconds",
                "Time from request to the first stream event.");
    render_hist(out, MET_H_GAP, "airouter_stream_chunk_gap_seconds", "Time between consecutive stream events.");

    help(out, "airouter_tokens_total", "counter", "Tokens reported by backends in usage.");
    for (int m = 0; m < nmodels; m++)
        for (int t = 0; t < 2; t++) {
            uint64_t v = LOAD(&shm->tokens[m][t]);
            if (!v)
                continue;
            buf_appends(out, "airouter_tokens_total{");
            label(out, "model", shm->model_names[m]);
            buf_printf(out, ",type=\"%s\"} %llu\n", t ? "completion" : "prompt", (unsigned long long)v);
        }

    help(out, "airouter_backend_errors_total", "counter", "Failed backend calls by backend and reason.");
    for (int b = 0; b < nbackends; b++)
        for (int r = 0; r < MET_NREASONS; r++) {
            uint64_t v = LOAD(&shm->backend_errors[b][r]);
            if (!v)
                continue;
            buf_appends(out, "airouter_backend_errors_total{");
            label(out, "backend", shm->backend_names[b]);
            buf_printf(out, ",reason=\"%s\"} %llu\n", reasons[r], (unsigned long long)v);
        }

    help(out, "airouter_client_aborts_total", "counter", "Requests whose client left before the answer was complete.");
    for (int m = 0; m < nmodels; m++) {
        uint64_t v = LOAD(&shm->aborts[m]);
        if (!v)
            continue;
        buf_appends(out, "airouter_client_aborts_total{");
        label(out, "model", shm->model_names[m]);
        buf_printf(out, "} %llu\n", (unsigned long long)v);
    }

    help(out, "airouter_workers", "gauge", "Worker processes alive.");
    buf_printf(out, "airouter_workers %llu\n", (unsigned long long)LOAD(&shm->workers_alive));
    help(out, "airouter_worker_restarts_total", "counter", "Workers that died unexpectedly and were replaced.");
    buf_printf(out, "airouter_worker_restarts_total %llu\n", (unsigned long long)LOAD(&shm->worker_restarts));
    help(out, "airouter_config_reloads_total", "counter", "Configuration reloads by result.");
    buf_printf(out, "airouter_config_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)LOAD(&shm->reloads_ok));
    buf_printf(out, "airouter_config_reloads_total{result=\"failed\"} %llu\n",
               (unsigned long long)LOAD(&shm->reloads_failed));
    help(out, "airouter_config_generation", "gauge", "Configuration generation (1 at start, +1 per reload).");
    buf_printf(out, "airouter_config_generation %llu\n", (unsigned long long)LOAD(&shm->generation));
    help(out, "airouter_trace_spans_exported_total", "counter", "Spans sent to the OTLP collector.");
    buf_printf(out, "airouter_trace_spans_exported_total %llu\n", (unsigned long long)LOAD(&shm->spans_exported));
    help(out, "airouter_trace_spans_dropped_total", "counter", "Spans dropped (queue full or collector failing).");
    buf_printf(out, "airouter_trace_spans_dropped_total %llu\n", (unsigned long long)LOAD(&shm->spans_dropped));
    bool cluster = false, cluster_down = false;
    for (int i = 0; i < MET_WORKERS; i++) {
        uint64_t state = LOAD(&shm->cluster_state[i]);
        cluster |= state != 0;
        cluster_down |= state == 2;
    }
    if (cluster) {
        help(out, "airouter_cluster_up", "gauge",
             "1 while every worker of this host reaches the shared limits' Redis, 0 while one does not.");
        buf_printf(out, "airouter_cluster_up %d\n", cluster_down ? 0 : 1);
        help(out, "airouter_cluster_errors_total", "counter", "Calls to the shared limits' Redis that failed.");
        buf_printf(out, "airouter_cluster_errors_total %llu\n", (unsigned long long)LOAD(&shm->cluster_errors));
    }
    return 0;
}
