#include "worker/http/http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rand_id.h"
#include "common/state.h"
#include "common/oai_error.h"
#include "common/urlpath.h"
#include "worker/http/conn_watch.h"
#include "worker/oai/anthropic_shape.h"
#include "worker/core/mem.h"
#include "worker/core/route.h"
#include "worker/oai/usage.h"

const cfg_t *http_cfg;
volatile int http_draining;
static struct MHD_Daemon *daemon_handle;
static struct MHD_Daemon *metrics_daemon;  /* separate /metrics listener, if configured */
static unsigned active_requests;
/* Open client connections; beyond limits.max_connections new ones get a fast 503. */
static unsigned open_connections;
/* libmicrohttpd's own cap sits above ours, so that it still accepts (and we answer)
 * connections over the limit instead of dropping them. */
#define OVERLOAD_SLACK 256
/* Connection threads keep jemalloc's per-thread cache (faster allocation) while the worker
 * has at most this many connections open; beyond, new ones start without it (see mem.c). */
#define CACHED_THREADS_MAX 64

/* Bodies above the limit are read and dropped up to this much more, so the client
 * can read the 413; beyond that the connection is simply closed. */
#define DISCARD_SLACK (1024 * 1024)

/* The routes the worker serves (http_start); none for a request before it is routed. */
static const http_route_t *routes;
static int nroutes;

static const char *allow_header(unsigned methods)
{
    switch (methods) {
    case HTTP_POST: return "POST";
    case HTTP_GET | HTTP_POST | HTTP_DELETE: return "GET, HEAD, POST, DELETE";
    default: return "GET, HEAD";
    }
}

ssize_t http_relay_read(request_t *req, buf_t *pending, size_t *off, const bool *finished,
                        int (*fill)(void *relay, size_t max), void *relay, char *out, size_t max)
{
    while (*off >= pending->len) {
        buf_reset(pending);
        *off = 0;
        if (*finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (fill(relay, max) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = pending->len - *off;
    if (n > max)
        n = max;
    memcpy(out, pending->data + *off, n);
    *off += n;
    req->bytes_out += n;
    return (ssize_t)n;
}

int http_keepalive_ms(void)
{
    /* A stream whose backend says nothing for a while gets an SSE comment, so neither the client
     * nor libmicrohttpd's idle timeout (which counts time spent waiting in the content reader)
     * closes it: every 15 s, or half the idle timeout if that is shorter. */
    int half = http_cfg->idle_timeout * 500;
    return half < 15000 ? half : 15000;
}

void http_track(request_t *req, unsigned kind)
{
    request_track(req, kind, MHD_lookup_connection_value(http_of(req)->conn, MHD_HEADER_KIND, "traceparent"));
}

/* The client as the core sees it: gone once its socket is hung up. */
static bool client_gone_within(void *ctx, int wait_ms)
{
    int fd = ((http_request_t *)ctx)->core.client.fd;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, fd >= 0 ? 1 : 0, wait_ms) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void add_ratelimit_headers(struct MHD_Response *resp, const char *what, long limit, long remaining,
                                  int reset_s)
{
    char name[48], v[32];
    snprintf(name, sizeof name, "x-ratelimit-limit-%s", what);
    snprintf(v, sizeof v, "%ld", limit);
    MHD_add_response_header(resp, name, v);
    snprintf(name, sizeof name, "x-ratelimit-remaining-%s", what);
    snprintf(v, sizeof v, "%ld", remaining);
    MHD_add_response_header(resp, name, v);
    snprintf(name, sizeof name, "x-ratelimit-reset-%s", what);
    snprintf(v, sizeof v, "%ds", reset_s);
    MHD_add_response_header(resp, name, v);
}

/* The headers every response carries (request id, connection close when draining...). */
static void add_common_headers(http_request_t *hr, struct MHD_Response *resp)
{
    const request_t *req = &hr->core;
    char v[32];
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    if (hr->anthropic)
        MHD_add_response_header(resp, "request-id", req->id);
    if (http_draining || hr->overloaded || hr->close_connection)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (req->retry_after_s > 0) {
        snprintf(v, sizeof v, "%d", req->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (http_cfg->retry.attempts_header && req->attempts > 0) {
        snprintf(v, sizeof v, "%d", req->attempts);
        MHD_add_response_header(resp, "x-airouter-attempts", v);
    }
    if (req->key_usage_known) {
        /* The same headers OpenAI sends, so clients that read them keep working. */
        const st_key_usage_t *u = &req->limits.usage;
        if (u->limit_requests)
            add_ratelimit_headers(resp, "requests", u->limit_requests, u->remaining_requests, u->reset_requests_s);
        if (u->limit_tokens)
            add_ratelimit_headers(resp, "tokens", u->limit_tokens, u->remaining_tokens, u->reset_tokens_s);
    }
}

enum MHD_Result http_queue(request_t *req, int status, struct MHD_Response *resp)
{
    http_request_t *hr = http_of(req);
    add_common_headers(hr, resp);
    req->status = status;
    hr->answer = MHD_queue_response(hr->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return hr->answer;
}

enum MHD_Result http_respond(request_t *req, int status, const char *content_type,
                             const char *body, size_t len)
{
    http_request_t *hr = http_of(req);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return hr->answer = MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == 405) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                hr->allow ? hr->allow : allow_header(hr->route ? hr->route->methods : HTTP_GET));
    }
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    req->bytes_out = len;
    return http_queue(req, status, resp);
}

enum MHD_Result http_respond_error(request_t *req, int status, const char *message,
                                   const char *type, const char *param, const char *code)
{
    buf_t b = {0};
    int rc_format;
    if (http_of(req)->anthropic) {
        const char *atype = ashape_error_type(status, &status);
        rc_format = ashape_error_format(&b, atype, message);
    } else {
        rc_format = oaierr_format(&b, message, type, param, code);
    }
    if (rc_format < 0) {
        buf_free(&b);
        return http_of(req)->answer = MHD_NO;
    }
    if (!req->error_reason[0])
        snprintf(req->error_reason, sizeof req->error_reason, "%s", code ? code : type);
    enum MHD_Result rc = http_respond(req, status, "application/json", b.data, b.len);
    buf_free(&b);
    return rc;
}

/* A client-supplied request id is kept if it is short and printable. */
static void set_request_id(request_t *req, struct MHD_Connection *conn)
{
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given) {
        size_t n = strlen(given);
        bool ok = n > 0 && n < sizeof req->id;
        for (size_t i = 0; ok && i < n; i++)
            ok = given[i] > 0x20 && given[i] < 0x7f && given[i] != '"' && given[i] != '\\';
        if (ok) {
            memcpy(req->id, given, n + 1);
            return;
        }
    }
    rand_id_hex(req->id, 16);
}

static bool method_allowed(unsigned methods, const char *method)
{
    return (methods & HTTP_ANY) ||
           ((methods & HTTP_GET) && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) ||
           ((methods & HTTP_POST) && strcmp(method, "POST") == 0) ||
           ((methods & HTTP_DELETE) && strcmp(method, "DELETE") == 0);
}

static const http_route_t *find_route(const char *path, bool *method_ok, const char *method)
{
    /* Routes by path first: a matcher (a passthrough rule) cannot shadow them. */
    for (int i = 0; i < nroutes; i++) {
        const http_route_t *r = &routes[i];
        if (!r->path)
            continue;
        size_t n = strlen(r->path);
        bool match = r->prefix ? strncmp(path, r->path, n) == 0 && path[n] : strcmp(path, r->path) == 0;
        if (!match)
            continue;
        *method_ok = method_allowed(r->methods, method);
        return r;
    }
    for (int i = 0; i < nroutes; i++)
        if (!routes[i].path && routes[i].match(path)) {
            *method_ok = method_allowed(routes[i].methods, method);
            return &routes[i];
        }
    return NULL;
}

/* The key from "Authorization: Bearer K" or "x-api-key: K". */
static const char *presented_key(struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        auth += 7;
        while (*auth == ' ')
            auth++;
        return auth;
    }
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
}

enum MHD_Result http_respond_refusal(request_t *req, char which, const char *msg)
{
    if (which == 'u')
        return http_respond_error(req, 503, msg, "server_error", NULL, "cluster_unavailable");
    if (which == 'b')
        return http_respond_error(req, 429, msg, "budget_exceeded", NULL, "budget_exceeded");
    return http_respond_error(req, 429, msg, which == 't' ? "tokens" : "requests", NULL, "rate_limit_exceeded");
}

static int reserve(request_t *req, const cfg_model_t *m, long long max_tokens, enum MHD_Result *rc)
{
    char msg[300];
    char which = request_reserve(req, m, http_of(req)->body.len, max_tokens, msg, sizeof msg);
    if (!which)
        return 0;
    *rc = http_respond_refusal(req, which, msg);
    return -1;
}

int http_reserve(request_t *req, const cfg_model_t *m, json_object *body, enum MHD_Result *rc)
{
    return reserve(req, m, body ? usage_max_tokens_asked(body) : 0, rc);
}

int http_reserve_passthrough(request_t *req, const char *content_type, enum MHD_Result *rc)
{
    const buf_t *body = &http_of(req)->body;
    const cfg_model_t *m = NULL;
    long long max_tokens = 0;
    char name[256];
    bool priced = false;
    for (int i = 0; i < http_cfg->nmodels && !priced; i++)
        priced = http_cfg->models[i].priced;
    if (priced && content_type && strncasecmp(content_type, "application/json", 16) == 0 &&
        usage_request_model(body->data, body->len, name, sizeof name, &max_tokens)) {
        m = route_model_named(http_cfg, name);
        if (m && !m->priced)
            m = NULL;
    }
    /* most forwarded APIs (files, batches, vector stores, fine-tuning) are no model's answer:
     * only a usage in the answer makes a charge */
    req->limits.usage_only = true;
    return reserve(req, m, max_tokens, rc);
}

/* Applies the key's per-minute and concurrency limits. Returns -1 with a queued 429 (503
 * when the shared limits cannot be reached and cluster.on_error is "deny"). */
static int admit_key(request_t *req, enum MHD_Result *rc)
{
    char msg[300];
    char which = request_admit(req, msg, sizeof msg);
    if (!which)
        return 0;
    *rc = http_respond_refusal(req, which, msg);
    return -1;
}

/* What the request head says about framing, as sent (MHD's lookup sees only the first of
 * repeated headers). */
typedef struct {
    int content_lengths, transfer_encodings, hosts;
    bool lengths_differ;
    bool bad_name;               /* a header name that is not an RFC 9110 token ("Name :") */
    bool bad_value;              /* a NUL or control character in a value */
    const char *content_length, *transfer_encoding;
} head_t;

static bool token_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static enum MHD_Result collect_head(void *cls, enum MHD_ValueKind kind, const char *name, size_t name_len,
                                    const char *value, size_t value_len)
{
    (void)kind;
    head_t *f = cls;
    if (!value)
        value = "", value_len = 0;
    for (size_t i = 0; i < name_len; i++)
        if (!token_char((unsigned char)name[i]))
            f->bad_name = true;
    if (name_len == 0)
        f->bad_name = true;
    for (size_t i = 0; i < value_len; i++)
        if (((unsigned char)value[i] < 0x20 && value[i] != '\t') || value[i] == 0x7f)
            f->bad_value = true;
    if (strcasecmp(name, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->content_lengths++ && strcmp(value, f->content_length) != 0)
            f->lengths_differ = true;
        f->content_length = value;
    } else if (strcasecmp(name, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encodings++;
        f->transfer_encoding = value;
    } else if (strcasecmp(name, MHD_HTTP_HEADER_HOST) == 0) {
        f->hosts++;
    }
    return MHD_YES;
}

/* Whether a Transfer-Encoding value is the chunked coding alone (RFC 9112 section 7). */
static bool chunked_only(const char *te)
{
    while (*te == ' ' || *te == '\t')
        te++;
    size_t n = strlen(te);
    while (n && (te[n - 1] == ' ' || te[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(te, "chunked", 7) == 0;
}

/* Whether the last coding of a Transfer-Encoding list is chunked. */
static bool chunked_last(const char *te)
{
    const char *last = strrchr(te, ',');
    return chunked_only(last ? last + 1 : te);
}

/* A body whose length two readers could see differently may hide a second request
 * (request smuggling), so the framing rules of RFC 9112 (sections 3.2, 5 and 6) that
 * libmicrohttpd does not enforce itself are enforced before anything else: the request
 * is refused and the connection closed. Returns -1 with the answer queued in *rc. */
static int check_framing(http_request_t *hr, const char *version, enum MHD_Result *rc)
{
    head_t f = {0};
    MHD_get_connection_values_n(hr->conn, MHD_HEADER_KIND, collect_head, &f);
    const char *why = NULL;
    int status = 400;
    bool http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
    if (f.bad_name)
        why = "A header name is not a token (no space may come before the colon).";
    else if (f.bad_value)
        why = "A header value has a control character.";
    else if (f.hosts > 1 || (http11 && f.hosts == 0))
        why = "An HTTP/1.1 request needs exactly one Host header.";
    else if (f.transfer_encodings && f.content_lengths)
        why = "The request has both Content-Length and Transfer-Encoding.";
    else if (f.transfer_encodings && !http11)
        why = "Transfer-Encoding needs HTTP/1.1.";
    else if (f.transfer_encodings > 1)
        why = "The request has more than one Transfer-Encoding header.";
    else if (f.transfer_encodings && !chunked_last(f.transfer_encoding))
        why = "Transfer-Encoding must end with chunked.";
    else if (f.transfer_encodings && !chunked_only(f.transfer_encoding))
        why = "Only the chunked transfer coding is supported.", status = 501;
    else if (f.lengths_differ)
        why = "The request has Content-Length headers that disagree.";
    if (!why)
        return 0;
    hr->close_connection = true;
    *rc = http_respond_error(&hr->core, status, why, "invalid_request_error", NULL,
                             status == 501 ? "unsupported_transfer_encoding" : "invalid_framing");
    return -1;
}

/* A path with dot segments or control characters, raw or percent-encoded, could leave
 * the prefix it is forwarded under; no endpoint needs one. Returns -1 with a queued 400. */
static int check_path(request_t *req, enum MHD_Result *rc)
{
    const char *why = NULL;
    switch (urlpath_check(req->path)) {
    case URLPATH_OK:
        return 0;
    case URLPATH_DOT_SEGMENT:
        why = "The path has a '.' or '..' segment (raw or percent-encoded); paths must be written out in full.";
        break;
    case URLPATH_CONTROL:
        why = "The path has a control character (raw or percent-encoded).";
        break;
    case URLPATH_DEEP_ESCAPES:
        why = "The path is percent-encoded too many times over.";
        break;
    }
    *rc = http_respond_error(req, 400, why, "invalid_request_error", NULL, "invalid_url");
    return -1;
}

/* First call for a request: check its framing and path, route it, check the method, key
 * and announced size. Returns MHD_YES with a queued response when it is already answered. */
static enum MHD_Result begin_request(http_request_t *hr, const char *version, bool on_metrics_port, bool *answered)
{
    request_t *req = &hr->core;
    struct MHD_Connection *conn = hr->conn;
    bool method_ok = false;
    enum MHD_Result rc;
    *answered = true;
    if (check_framing(hr, version, &rc) < 0 || check_path(req, &rc) < 0)
        return rc;
    const http_route_t *route = find_route(req->path, &method_ok, req->method);
    /* With a separate metrics listener, each port serves only its own paths. */
    if (route && (metrics_daemon || on_metrics_port)) {
        bool metrics_path = route->flags & HTTP_ROUTE_METRICS;
        if (on_metrics_port ? !(metrics_path || (route->flags & HTTP_ROUTE_OPS)) : metrics_path)
            route = NULL;
    }
    if (!route) {
        char msg[300];
        snprintf(msg, sizeof msg, "Invalid URL (%.16s %.200s)", req->method, req->path);
        return http_respond_error(req, 404, msg, "invalid_request_error", NULL, "unknown_url");
    }
    hr->route = route;
    hr->anthropic = route->flags & HTTP_ROUTE_ANTHROPIC;
    if (__atomic_load_n(&open_connections, __ATOMIC_RELAXED) > (unsigned)http_cfg->max_connections &&
        !(route->flags & (HTTP_ROUTE_OPS | HTTP_ROUTE_METRICS))) {
        hr->overloaded = true;
        req->retry_after_s = 1;
        return http_respond_error(req, 503, "airouter is at its connection limit; try again shortly.",
                                  "server_error", NULL, "server_overloaded");
    }
    if (!method_ok) {
        char msg[300];
        snprintf(msg, sizeof msg, "Method %.16s is not allowed for %.200s; use %s", req->method,
                 req->path, allow_header(route->methods));
        return http_respond_error(req, 405, msg, "invalid_request_error", NULL,
                                  "method_not_allowed");
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    /* A body a little over the limit is read and dropped, then answered, so that clients
     * that write it all before reading see the 413; a much larger one is refused at once. */
    if (cl && strtoull(cl, NULL, 10) > http_cfg->max_body_bytes + DISCARD_SLACK) {
        char msg[160];
        snprintf(msg, sizeof msg, "Request body too large: the limit is %zu bytes",
                 http_cfg->max_body_bytes);
        return http_respond_error(req, 413, msg, "invalid_request_error", NULL,
                                  "request_too_large");
    }
    if ((route->flags & HTTP_ROUTE_KEY) && http_cfg->nkeys > 0) {
        const char *k = presented_key(conn);
        req->key = route_authenticate(http_cfg, k);
        if (!req->key)
            return http_respond_error(
                req, 401,
                k && *k ? "Incorrect API key provided."
                        : "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' "
                          "or 'x-api-key: KEY'.",
                "invalid_request_error", NULL, "invalid_api_key");
        req->client_key = strdup(k);
        if ((route->flags & HTTP_ROUTE_LIMITED) && admit_key(req, &rc) < 0)
            return rc;
    } else if (route->flags & HTTP_ROUTE_KEY) {
        const char *k = presented_key(conn);
        if (k)
            req->client_key = strdup(k);
    }
    *answered = false;
    return MHD_YES;
}

static conn_watch_t *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    http_request_t *hr = *con_cls;
    conn_watch_t *watch = watch_of(conn);
    if (!hr) {
        if (!conn_watch_head_done(watch))
            return MHD_NO; /* cut for slowness just now: already answered 408 */
        hr = calloc(1, sizeof *hr);
        if (!hr)
            return MHD_NO;
        *con_cls = hr;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const request_client_t client = {
            .gone = client_gone_within, .ctx = hr, .fd = ci ? ci->connect_fd : -1, .check_ms = http_keepalive_ms(),
        };
        request_init(&hr->core, http_cfg, REQUEST_HTTP, method, url, &client);
        hr->conn = conn;
        __atomic_add_fetch(&active_requests, 1, __ATOMIC_SEQ_CST);
        set_request_id(&hr->core, conn);
        bool answered;
        enum MHD_Result rc = begin_request(hr, version, cls != NULL, &answered);
        if (answered) /* whatever body follows is only discarded: no rate to keep */
            conn_watch_body_done(watch);
        return answered ? rc : MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!conn_watch_body(watch, n))
            return MHD_NO;
        hr->body_seen += n;
        if (hr->body_seen > http_cfg->max_body_bytes) {
            hr->too_large = true;
            buf_free(&hr->body);
            return hr->body_seen > http_cfg->max_body_bytes + DISCARD_SLACK ? MHD_NO : MHD_YES;
        }
        return buf_append(&hr->body, upload_data, n) < 0 ? MHD_NO : MHD_YES;
    }
    if (!conn_watch_body_done(watch))
        return MHD_NO;
    if (hr->too_large) {
        char msg[160];
        snprintf(msg, sizeof msg, "Request body too large: the limit is %zu bytes",
                 http_cfg->max_body_bytes);
        return http_respond_error(&hr->core, 413, msg, "invalid_request_error", NULL,
                                  "request_too_large");
    }
    return hr->route->handler(&hr->core);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    http_request_t *hr = *con_cls;
    conn_watch_t *watch = watch_of(conn);
    if (!hr) {
        conn_watch_request_done(watch);
        return;
    }
    request_t *req = &hr->core;
    const char *cut_reason = conn_watch_cut_reason(watch);
    if (cut_reason && !req->status) {
        req->status = 408;
        snprintf(req->error_reason, sizeof req->error_reason, "%s", cut_reason);
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !req->error_reason[0])
        snprintf(req->error_reason, sizeof req->error_reason, "%s",
                 toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client_abort"
                 : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "client_timeout"
                 : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                   : "connection_error");
    if (!req->status)
        req->status = 499; /* closed before any response: nginx's convention */
    if (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || strcmp(req->error_reason, "client_abort") == 0)
        req->client_abort = true;
    request_finish(req);
    buf_free(&hr->body);
    free(hr);
    *con_cls = NULL;
    __atomic_sub_fetch(&active_requests, 1, __ATOMIC_SEQ_CST);
    conn_watch_request_done(watch);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        __atomic_add_fetch(&open_connections, 1, __ATOMIC_RELAXED);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? conn_watch_opened(ci->connect_fd) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        __atomic_sub_fetch(&open_connections, 1, __ATOMIC_RELAXED);
        /* MHD closes the socket only after this: the watchdog never sees a reused fd */
        conn_watch_closed(*socket_context);
        *socket_context = NULL;
    }
}

/* Called once a request line has been read: the request head's clock starts. The value
 * returned becomes the request's initial context, which on_request expects NULL. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls, (void)uri;
    conn_watch_head_begun(watch_of(conn));
    if (__atomic_load_n(&open_connections, __ATOMIC_RELAXED) > CACHED_THREADS_MAX)
        mem_thread_without_cache(); /* before the request's first allocation in this thread */
    return NULL;
}

unsigned http_active_requests(void) { return __atomic_load_n(&active_requests, __ATOMIC_SEQ_CST); }

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_debug("http: %s", msg);
}

/* URLs are kept as the client escaped them, so paths and queries are forwarded
 * exactly (a %2F in an id stays one); the few handlers that need a value decode it. */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    return strlen(s);
}

static struct MHD_Daemon *start_daemon(int fd, void *cls, const cfg_t *cfg)
{
    return MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ITC | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, cls, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections + OVERLOAD_SLACK,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, on_request_line, NULL,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_END);
}

bool http_has_metrics_listener(void) { return metrics_daemon != NULL; }

int http_start(const cfg_t *cfg, const http_route_t *table, int ntable, int listen_fd, int metrics_fd)
{
    http_cfg = cfg;
    routes = table;
    nroutes = ntable;
    if (conn_watch_start(cfg->header_timeout, cfg->min_body_rate) < 0)
        return -1;
    if (metrics_fd >= 0) {
        static int metrics_marker;
        metrics_daemon = start_daemon(metrics_fd, &metrics_marker, cfg);
        if (!metrics_daemon) {
            log_error("cannot start the metrics listener on %s", cfg->metrics_listen);
            return -1;
        }
    }
    daemon_handle = start_daemon(listen_fd, NULL, cfg);
    if (!daemon_handle) {
        log_error("cannot start the HTTP server on %s", cfg->listen);
        return -1;
    }
    return 0;
}

/* Stops accepting on d; our copy of its socket is closed so that, once the master and
 * every worker have let go of it, new connections are refused instead of queued. Quiesce
 * first: without it, stopping would shut down the shared listen socket. */
static void stop_accepting(struct MHD_Daemon *d)
{
    MHD_socket lfd = MHD_quiesce_daemon(d);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
}

void http_drain_and_stop(bool final)
{
    if (!daemon_handle)
        return;
    http_draining = 1; /* from now on every answer carries Connection: close */
    stop_accepting(daemon_handle);
    if (metrics_daemon)
        stop_accepting(metrics_daemon);
    /* A connection ends once it has answered its request, or once the watchdog has seen it
     * idle with nothing received: a request already on its way is answered, never cut. */
    conn_watch_drain(final);
    uint64_t deadline = clock_now_us() + (uint64_t)http_cfg->drain_timeout * 1000000u;
    while ((conn_watch_open_count() > 0 || http_active_requests() > 0) && clock_now_us() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (http_active_requests() > 0)
        log_warn("drain timeout: closing %u in-flight request(s)", http_active_requests());
    MHD_stop_daemon(daemon_handle);
    daemon_handle = NULL;
    if (metrics_daemon) {
        MHD_stop_daemon(metrics_daemon);
        metrics_daemon = NULL;
    }
    conn_watch_stop();
}
