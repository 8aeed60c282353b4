#include "worker/core/access_log.h"

#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"

static void string_or_null(buf_t *b, const char *key, const char *value)
{
    buf_appends(b, key);
    if (value)
        buf_append_json_string(b, value);
    else
        buf_appends(b, "null");
}

static void count_or_null(buf_t *b, const char *key, long long value)
{
    if (value >= 0)
        buf_printf(b, "%s%lld", key, value);
    else
        buf_printf(b, "%snull", key);
}

static void cost(buf_t *b, const request_t *req)
{
    if (req->cost_micro >= 0)
        buf_printf(b, ",\"cost_usd\":%.6f", (double)req->cost_micro / 1e6);
    else
        buf_appends(b, ",\"cost_usd\":null");
}

static void http_line(buf_t *b, const request_t *req, double duration_ms)
{
    buf_printf(b, ",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f,\"worker\":%d", req->status,
               (unsigned long long)req->bytes_out, duration_ms, (int)getpid());
    string_or_null(b, ",\"key\":", req->key ? req->key->name : NULL);
    string_or_null(b, ",\"model\":", req->model_asked);
    string_or_null(b, ",\"model_routed\":", req->model_routed);
    string_or_null(b, ",\"backend\":", req->backend_name);
    buf_printf(b, ",\"stream\":%s", req->stream ? "true" : "false");
    if (req->first_byte_us)
        buf_printf(b, ",\"ttfb_ms\":%.3f", (double)(req->first_byte_us - req->start_us) / 1000.0);
    else
        buf_appends(b, ",\"ttfb_ms\":null");
    count_or_null(b, ",\"tokens_in\":", req->tokens_in);
    count_or_null(b, ",\"tokens_out\":", req->tokens_out);
    cost(b, req);
    buf_printf(b, ",\"retries\":%d,\"client_abort\":%s", req->attempts > 1 ? req->attempts - 1 : 0,
               req->client_abort ? "true" : "false");
    if (req->trace_id[0])
        buf_printf(b, ",\"trace_id\":\"%s\"", req->trace_id);
    string_or_null(b, ",\"error\":", req->error_reason[0] ? req->error_reason : NULL);
}

/* A gRPC call's status is its code; "model" names the configured model that served it. */
static void grpc_line(buf_t *b, const request_t *req, double duration_ms)
{
    buf_printf(b, ",\"status\":%d,\"grpc_status\":", req->grpc_code);
    buf_append_json_string(b, req->grpc_status ? req->grpc_status : "UNKNOWN");
    buf_printf(b, ",\"duration_ms\":%.3f,\"worker\":%d", duration_ms, (int)getpid());
    string_or_null(b, ",\"key\":", req->key ? req->key->name : NULL);
    string_or_null(b, ",\"model\":", req->model_routed);
    string_or_null(b, ",\"backend\":", req->backend_name);
    cost(b, req);
    buf_printf(b, ",\"stream\":%s", req->stream ? "true" : "false");
    string_or_null(b, ",\"error\":", req->error_reason[0] && req->grpc_code != 0 ? req->error_reason : NULL);
}

void access_log_write(const request_t *req)
{
    if (!log_access_enabled())
        return;
    buf_t b = {0};
    char ts[40];
    log_timestamp(ts, sizeof ts);
    double duration_ms = (double)(clock_now_us() - req->start_us) / 1000.0;
    buf_printf(&b, "{\"time\":\"%s\"", ts);
    string_or_null(&b, ",\"request_id\":", req->id);
    string_or_null(&b, ",\"method\":", req->method ? req->method : "");
    string_or_null(&b, ",\"path\":", req->path ? req->path : "");
    if (req->protocol == REQUEST_GRPC)
        grpc_line(&b, req, duration_ms);
    else
        http_line(&b, req, duration_ms);
    buf_appends(&b, "}");
    if (b.data)
        log_access_line(b.data, b.len);
    buf_free(&b);
}
