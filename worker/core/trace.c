#include "worker/core/trace.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rand_id.h"
#include "common/metrics.h"
#include "worker/core/traceparent.h"

#define EXPORT_TIMEOUT_MS 5000
#define STOP_FLUSH_TIMEOUT_MS 3000

static const cfg_t *trace_cfg;
static bool enabled;
static pthread_t exporter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
typedef struct {
    char *json;   /* owned: one request's span(s), comma-separated */
    int nspans;
} queued_t;
static queued_t *queue;    /* ring */
static int qcap, qhead, qlen;
static bool stopping;

void trace_begin(request_t *req, const char *header)
{
    traceparent_t tp;
    if (traceparent_parse(header, &tp)) {
        memcpy(req->trace_id, tp.trace_id, sizeof req->trace_id);
        memcpy(req->parent_span_id, tp.parent_id, sizeof req->parent_span_id);
        /* passed on as version 00 with the client's flags when we do not trace ourselves */
        traceparent_format(&tp, req->client_traceparent, sizeof req->client_traceparent);
    } else {
        rand_id_hex(req->trace_id, 16);
    }
    rand_id_hex(req->span_id, 8);
}

int trace_try_begin(request_t *req, const cfg_backend_t *backend, const char *backend_model)
{
    if (req->ntries >= (int)(sizeof req->tries / sizeof req->tries[0]))
        return -1;
    int i = req->ntries++;
    req->tries[i].backend = backend;
    req->tries[i].backend_model = backend_model;
    req->tries[i].start_ns = clock_unix_ns();
    req->tries[i].end_ns = 0;
    req->tries[i].error[0] = '\0';
    rand_id_hex(req->tries[i].span_id, 8);
    return i;
}

void trace_try_end(request_t *req, int i, const char *error)
{
    if (!req || i < 0 || i >= req->ntries || req->tries[i].end_ns)
        return;
    req->tries[i].end_ns = clock_unix_ns();
    snprintf(req->tries[i].error, sizeof req->tries[i].error, "%s", error ? error : "");
}

void trace_backend_header(const request_t *req, int i, char *out, size_t size)
{
    out[0] = '\0';
    if (enabled && i >= 0) {
        traceparent_t tp = {.flags = TRACEPARENT_SAMPLED}; /* the try's span is recorded */
        memcpy(tp.trace_id, req->trace_id, sizeof tp.trace_id);
        memcpy(tp.parent_id, req->tries[i].span_id, sizeof tp.parent_id);
        traceparent_format(&tp, out, size);
    } else if (req->client_traceparent[0]) /* not tracing: pass the client's context on unchanged */
        snprintf(out, size, "%s", req->client_traceparent);
}

/* ---- span encoding (OTLP/JSON: ids are hex, 64-bit numbers are strings) ---- */

static void attr_str(buf_t *b, bool *first, const char *key, const char *value)
{
    if (!value)
        return;
    buf_appends(b, *first ? "{\"key\":" : ",{\"key\":");
    *first = false;
    buf_append_json_string(b, key);
    buf_appends(b, ",\"value\":{\"stringValue\":");
    buf_append_json_string(b, value);
    buf_appends(b, "}}");
}

static void attr_int(buf_t *b, bool *first, const char *key, long long value)
{
    buf_appends(b, *first ? "{\"key\":" : ",{\"key\":");
    *first = false;
    buf_append_json_string(b, key);
    buf_printf(b, ",\"value\":{\"intValue\":\"%lld\"}}", value);
}

static void attr_double(buf_t *b, bool *first, const char *key, double value)
{
    buf_appends(b, *first ? "{\"key\":" : ",{\"key\":");
    *first = false;
    buf_append_json_string(b, key);
    buf_printf(b, ",\"value\":{\"doubleValue\":%.6f}}", value);
}

static void span_open(buf_t *b, const char *trace, const char *span, const char *parent, const char *name,
                      int kind, uint64_t start_ns, uint64_t end_ns)
{
    buf_printf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\"", trace, span);
    if (parent && parent[0])
        buf_printf(b, ",\"parentSpanId\":\"%s\"", parent);
    buf_appends(b, ",\"name\":");
    buf_append_json_string(b, name);
    buf_printf(b, ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\",\"attributes\":[",
               kind, (unsigned long long)start_ns, (unsigned long long)end_ns);
}

static void span_close(buf_t *b, bool error, const char *message)
{
    buf_appends(b, "],\"status\":{");
    if (error) {
        buf_appends(b, "\"code\":2");
        if (message) {
            buf_appends(b, ",\"message\":");
            buf_append_json_string(b, message);
        }
    }
    buf_appends(b, "}}");
}

/* "http://host:port/..." -> host and port, for server.address / server.port. */
static void url_host_port(const char *url, char *host, size_t hsize, int *port)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    *port = strncmp(url, "https", 5) == 0 ? 443 : 80;
    const char *end = p + strcspn(p, "/");
    const char *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close) {
            snprintf(host, hsize, "%.*s", (int)(close - p - 1), p + 1);
            colon = close[1] == ':' ? close + 1 : NULL;
        }
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        snprintf(host, hsize, "%.*s", (int)((colon ? colon : end) - p), p);
    }
    if (colon)
        *port = atoi(colon + 1);
}

static const char *operation(unsigned kind)
{
    /* GenAI semantic-convention names where they exist, the kind's name otherwise */
    return kind == KIND_CHAT ? "chat" : kind == KIND_COMPLETIONS ? "text_completion" : cfg_kind_name(kind);
}

static void enqueue(char *spans, int nspans)
{
    pthread_mutex_lock(&lock);
    if (qlen == qcap || stopping) {
        pthread_mutex_unlock(&lock);
        free(spans);
        met_spans(0, (uint64_t)nspans);
        return;
    }
    queue[(qhead + qlen++) % qcap] = (queued_t){spans, nspans};
    if (qlen >= trace_cfg->trace_batch_size)
        pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
}

/* gRPC status codes a server span counts as errors (the others are the client's doing) */
static bool grpc_server_error(int code)
{
    return code == 2 /* UNKNOWN */ || code == 4 /* DEADLINE_EXCEEDED */ || code == 12 /* UNIMPLEMENTED */ ||
           code == 13 /* INTERNAL */ || code == 14 /* UNAVAILABLE */ || code == 15 /* DATA_LOSS */;
}

void trace_request_done(const request_t *req)
{
    if (!enabled || !req->trace_id[0])
        return;
    uint64_t end_ns = clock_unix_ns();
    /* A backend's 4xx is the client's doing (it is relayed as such): not a server error. */
    bool backend_failed = req->error_reason[0] && strncmp(req->error_reason, "backend", 7) == 0 &&
                          strcmp(req->error_reason, "backend_4xx") != 0;
    bool grpc = req->protocol == REQUEST_GRPC;
    bool failed = backend_failed || (grpc ? grpc_server_error(req->grpc_code) : req->status >= 500);
    buf_t b = {0};
    char name[96];
    bool first = true;
    if (grpc) {
        /* RPC conventions: the span is named "package.Service/Method" */
        const char *path = req->path[0] == '/' ? req->path + 1 : req->path;
        const char *slash = strrchr(path, '/');
        char service[64];
        snprintf(service, sizeof service, "%.*s", slash ? (int)(slash - path) : 0, path);
        span_open(&b, req->trace_id, req->span_id, req->parent_span_id, path, 2, req->start_unix_ns, end_ns);
        attr_str(&b, &first, "rpc.system", "grpc");
        attr_str(&b, &first, "rpc.service", service);
        attr_str(&b, &first, "rpc.method", slash ? slash + 1 : path);
        attr_int(&b, &first, "rpc.grpc.status_code", req->grpc_code);
    } else {
        snprintf(name, sizeof name, "%s %s", req->method, req->path);
        span_open(&b, req->trace_id, req->span_id, req->parent_span_id, name, 2, req->start_unix_ns, end_ns);
        attr_str(&b, &first, "http.request.method", req->method);
        attr_str(&b, &first, "http.route", req->path);
        attr_int(&b, &first, "http.response.status_code", req->status);
    }
    attr_str(&b, &first, "airouter.request_id", req->id);
    attr_str(&b, &first, "gen_ai.request.model", req->model_asked);
    if (req->error_reason[0])
        attr_str(&b, &first, "error.type", req->error_reason);
    if (req->attempts > 1)
        attr_int(&b, &first, "airouter.attempts", req->attempts);
    span_close(&b, failed, failed ? req->error_reason : NULL);
    int nspans = 1;

    for (int i = 0; i < req->ntries; i++) {
        const cfg_backend_t *be = req->tries[i].backend;
        bool last = i == req->ntries - 1;
        nspans++;
        buf_appends(&b, ",");
        snprintf(name, sizeof name, "%s %.80s", operation(req->kind), req->model_asked ? req->model_asked : "");
        span_open(&b, req->trace_id, req->tries[i].span_id, req->span_id, name, 3, req->tries[i].start_ns,
                  req->tries[i].end_ns ? req->tries[i].end_ns : end_ns);
        first = true;
        attr_str(&b, &first, "gen_ai.operation.name", operation(req->kind));
        attr_str(&b, &first, "gen_ai.system", be->type);
        attr_str(&b, &first, "gen_ai.request.model", req->model_asked);
        attr_str(&b, &first, "gen_ai.response.model", req->tries[i].backend_model);
        if (last && req->tokens_in >= 0)
            attr_int(&b, &first, "gen_ai.usage.input_tokens", req->tokens_in);
        if (last && req->tokens_out >= 0)
            attr_int(&b, &first, "gen_ai.usage.output_tokens", req->tokens_out);
        if (last && req->cost_micro >= 0)
            attr_double(&b, &first, "airouter.cost_usd", (double)req->cost_micro / 1e6);
        attr_str(&b, &first, "airouter.backend", be->name);
        attr_int(&b, &first, "airouter.attempt", i + 1);
        if (be->url) {
            char host[256] = "";
            int port;
            url_host_port(be->url, host, sizeof host, &port);
            attr_str(&b, &first, "server.address", host);
            attr_int(&b, &first, "server.port", port);
        }
        /* The last try may also fail after the answer started (a broken stream). */
        const char *err = req->tries[i].error[0] ? req->tries[i].error
                          : last && strncmp(req->error_reason, "backend", 7) == 0 ? req->error_reason
                                                                                   : NULL;
        if (err)
            attr_str(&b, &first, "error.type", err);
        span_close(&b, err != NULL, err);
    }
    if (b.data)
        enqueue(b.data, nspans); /* ownership passes to the queue */
}

/* ---- exporter thread ---- */

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static void export_batch(CURL *curl, const queued_t *spans, int n)
{
    buf_t body = {0};
    buf_appends(&body, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    bool first = true;
    attr_str(&body, &first, "service.name", trace_cfg->service_name);
    attr_str(&body, &first, "service.version", AIROUTER_VERSION);
    buf_appends(&body, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"airouter\",\"version\":\"" AIROUTER_VERSION "\"},\"spans\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            buf_appends(&body, ",");
        buf_appends(&body, spans[i].json);
    }
    buf_appends(&body, "]}]}]}");
    int nspans = 0;
    for (int i = 0; i < n; i++)
        nspans += spans[i].nspans;

    char url[1100];
    snprintf(url, sizeof url, "%s/v1/traces", trace_cfg->otlp_endpoint);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)EXPORT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        met_spans((uint64_t)nspans, 0);
    } else {
        met_spans(0, (uint64_t)nspans);
        log_debug("trace export failed: %s (HTTP %ld); %d span(s) dropped",
                  rc != CURLE_OK ? curl_easy_strerror(rc) : "collector refused", status, nspans);
    }
    curl_slist_free_all(h);
    buf_free(&body);
}

static void *exporter_main(void *arg)
{
    (void)arg;
    CURL *curl = curl_easy_init();
    queued_t *batch = calloc((size_t)trace_cfg->trace_batch_size, sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&lock);
        if (qlen < trace_cfg->trace_batch_size && !stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += trace_cfg->trace_flush_interval_ms / 1000;
            until.tv_nsec += (long)(trace_cfg->trace_flush_interval_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&wake, &lock, &until);
        }
        int n = 0;
        while (qlen > 0 && n < trace_cfg->trace_batch_size && batch) {
            batch[n++] = queue[qhead];
            qhead = (qhead + 1) % qcap;
            qlen--;
        }
        bool done = stopping && qlen == 0;
        pthread_mutex_unlock(&lock);
        if (n > 0 && curl) {
            export_batch(curl, batch, n);
        } else {
            for (int i = 0; i < n; i++)
                met_spans(0, (uint64_t)batch[i].nspans);
        }
        for (int i = 0; i < n; i++)
            free(batch[i].json);
        if (done)
            break;
    }
    free(batch);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

int trace_start(const cfg_t *cfg)
{
    trace_cfg = cfg;
    if (!cfg->otlp_endpoint)
        return 0;
    qcap = cfg->trace_queue_size;
    queue = calloc((size_t)qcap, sizeof *queue);
    if (!queue) {
        log_error("tracing: out of memory");
        return -1;
    }
    if (pthread_create(&exporter, NULL, exporter_main, NULL) != 0) {
        log_error("tracing: cannot start the exporter thread");
        free(queue);
        queue = NULL;
        return -1;
    }
    enabled = true;
    return 0;
}

void trace_stop(void)
{
    if (!enabled)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += STOP_FLUSH_TIMEOUT_MS / 1000 + EXPORT_TIMEOUT_MS / 1000;
    if (pthread_timedjoin_np(exporter, NULL, &until) != 0)
        log_warn("tracing: the collector did not take the last spans in time");
    enabled = false;
}
