/* The HTTP transport of the HTTP-based backend types (openai, anthropic), over
 * libcurl. Each call drives a multi handle from the caller's thread (socket_action on the
 * sockets curl asks for, polled together with the client's socket), so a stream is relayed
 * without an extra thread and a departed client cancels the transfer at once. JSON answers
 * and SSE events come back parsed, or as text with the model renamed when the caller can
 * take that (chunk_text, answer_text); what they mean is the backend type's business. */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/lines.h"
#include "common/log.h"
#include "worker/backend/curl_nowakeup.h"
#include "worker/backend/http_backend.h"
#include "worker/oai/json_scan.h"
#include "worker/oai/oai_shape.h"

#define POOL_MAX 256
/* While data keeps arriving the wait that watches the client does not run: the client is
 * looked at this often instead. */
#define CLIENT_CHECK_US 20000u

/* A multi handle and its easy handle travel together: with the multi interface the
 * connection cache lives in the multi handle, so reusing the pair keeps backend
 * connections alive across requests and client connections. */
/* The pair is driven with curl_multi_socket_action(): airouter polls the sockets curl asks
 * for itself and tells curl which one is ready, so curl does not poll again to find out. */
#define PAIR_SOCKS 4
typedef struct {
    CURLM *multi;
    CURL *easy;
    struct {
        curl_socket_t fd;
        short events;           /* POLLIN / POLLOUT */
    } socks[PAIR_SOCKS];        /* what curl wants watched (its socket callback) */
    int nsocks;
    bool timer_set;             /* curl's timer (its timer callback) */
    uint64_t timer_at_us;
    bool options_set;           /* the options every JSON call shares are in place */
} curl_pair_t;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static curl_pair_t *pool[POOL_MAX];
static int pool_len;
static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

/* A stream chunk: parsed, or (chunk_text calls) its JSON text with the model renamed. */
typedef struct {
    json_object *obj;
    char *text;
} queued_chunk_t;

struct hb_call {
    curl_pair_t *pair;
    struct curl_slist *headers;
    char *body;                 /* request body; curl reads it during the transfer */
    const cfg_backend_t *be;
    char *backend_model;
    char *client_model;
    bool stream;
    int client_fd;
    bool watch_client;          /* false once the client has pipelined bytes pending */
    long status;
    bool got_headers;
    bool is_sse;
    bool transfer_done;
    bool response_sent;
    CURLcode result;
    buf_t resp;                 /* whole body (non-SSE answers and errors) */
    lines_t lines;              /* SSE: the line scanner (holds a partial line) */
    buf_t data;                 /* SSE: the event's data lines */
    size_t max_event;           /* SSE: bound of an event's data, and of a line */
    queued_chunk_t *queue;      /* chunks not yet handed out */
    int qhead, qlen, qcap;
    buf_t model_json;           /* chunk_text: the client's model as a JSON string literal */
    char *handed_text;          /* chunk_text: the text of the chunk handed out last */
    bool stream_failed;
    be_event_t failure;         /* set when stream_failed */
    uint64_t start_us, last_data_us;
    uint64_t client_checked_us; /* when the client was last looked at */
    int retry_after_s;          /* from a Retry-After header */
    bool headers_seen;          /* got_headers as of the last pump: a change ends a wait */
    /* byte relay */
    bool raw;
    bool raw_errors_as_is;      /* passthrough: error answers are relayed like any other */
    bool hold_body;             /* ... but read whole and scrubbed of secrets first */
    bool body_scrubbed;
    bool headers_reported;
    char content_type[128];
    buf_t rawbuf;               /* bytes received, not yet handed out */
    buf_t rawout;               /* bytes handed out by the last event */
    const struct iovec *segs;   /* request body segments (the caller's) */
    int nsegs, seg;
    size_t seg_off;
    bool chunk_text;            /* hand plain chunks out as text (hb_options_t) */
    bool answer_text;           /* hand a whole answer out as text (hb_options_t) */
    char errbuf[CURL_ERROR_SIZE];
};

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    (void)h, (void)a, (void)u;
    pthread_mutex_lock(&share_locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    (void)h, (void)u;
    pthread_mutex_unlock(&share_locks[d]);
}

int hb_worker_init(void)
{
    static bool done; /* shared by every HTTP-based backend type */
    if (done)
        return 0;
    done = true;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("libcurl initialisation failed");
        return -1;
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&share_locks[i], NULL);
    /* DNS and TLS sessions may be shared between threads; connections may not. */
    share = curl_share_init();
    if (share) {
        curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    return 0;
}

static void pair_free(curl_pair_t *p)
{
    if (!p)
        return;
    curl_easy_cleanup(p->easy);
    curl_multi_cleanup(p->multi);
    free(p);
}

void hb_worker_cleanup(void)
{
    if (!share && pool_len == 0)
        return;
    pthread_mutex_lock(&pool_lock);
    while (pool_len > 0)
        pair_free(pool[--pool_len]);
    pthread_mutex_unlock(&pool_lock);
    if (share)
        curl_share_cleanup(share);
    share = NULL;
    curl_global_cleanup();
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp)
{
    (void)e, (void)sockp;
    curl_pair_t *p = ud;
    int i = 0;
    while (i < p->nsocks && p->socks[i].fd != fd)
        i++;
    if (what == CURL_POLL_REMOVE) {
        if (i < p->nsocks)
            p->socks[i] = p->socks[--p->nsocks];
        return 0;
    }
    if (i == p->nsocks) {
        if (p->nsocks == PAIR_SOCKS)
            return -1;
        p->nsocks++;
    }
    p->socks[i].fd = fd;
    p->socks[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *ud)
{
    (void)m;
    curl_pair_t *p = ud;
    p->timer_set = timeout_ms >= 0;
    if (p->timer_set)
        p->timer_at_us = timeout_ms == 0 ? 0 : clock_now_us() + (uint64_t)timeout_ms * 1000u;
    return 0;
}

/* A pair ready for a transfer. `keep_options`: the caller sets only what differs between
 * JSON calls, so a pair last used by one keeps the rest; any other use starts afresh. */
static curl_pair_t *pair_take(bool keep_options)
{
    curl_pair_t *p = NULL;
    pthread_mutex_lock(&pool_lock);
    if (pool_len > 0)
        p = pool[--pool_len];
    pthread_mutex_unlock(&pool_lock);
    if (p) {
        if (!keep_options || !p->options_set) {
            curl_easy_reset(p->easy);
            p->options_set = false;
        }
        return p;
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->multi = curl_nowakeup_multi_init();
    p->easy = curl_easy_init();
    if (!p->multi || !p->easy) {
        pair_free(p);
        return NULL;
    }
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
    return p;
}

static void pair_give_back(curl_pair_t *p)
{
    pthread_mutex_lock(&pool_lock);
    if (pool_len < POOL_MAX) {
        pool[pool_len++] = p;
        p = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    pair_free(p);
}

static int queue_push(hb_call_t *c, json_object *obj, char *text)
{
    if (c->qhead + c->qlen == c->qcap) {
        if (c->qhead > 0) {
            memmove(c->queue, c->queue + c->qhead, (size_t)c->qlen * sizeof *c->queue);
            c->qhead = 0;
        } else {
            int cap = c->qcap ? c->qcap * 2 : 16;
            queued_chunk_t *q = realloc(c->queue, (size_t)cap * sizeof *q);
            if (!q)
                return -1;
            c->queue = q;
            c->qcap = cap;
        }
    }
    c->queue[c->qhead + c->qlen++] = (queued_chunk_t){obj, text};
    return 0;
}

/* Hands the oldest queued chunk out as a CHUNK event. */
static void queue_pop(hb_call_t *c, be_event_t *ev)
{
    queued_chunk_t q = c->queue[c->qhead++];
    c->qlen--;
    ev->type = BE_EV_CHUNK;
    ev->obj = q.obj;
    if (q.text) {
        free(c->handed_text);
        c->handed_text = q.text;
        ev->data = q.text;
        ev->len = strlen(q.text);
    }
}

/* Reads an OpenAI-style error object's message, type and code into ev. */
static void read_backend_error(hb_call_t *c, json_object *err_obj, be_event_t *ev)
{
    json_object *e = err_obj, *v;
    if (json_object_object_get_ex(err_obj, "error", &v) && json_object_is_type(v, json_type_object))
        e = v;
    /* The client must see its own model name, never the backend's, its address or a key. */
    if ((json_object_object_get_ex(e, "message", &v) && json_object_is_type(v, json_type_string)) ||
        (json_object_object_get_ex(e, "detail", &v) && json_object_is_type(v, json_type_string)))
        be_client_message(ev->message, sizeof ev->message, json_object_get_string(v), c->be, c->backend_model,
                          c->client_model);
    if (json_object_object_get_ex(e, "type", &v) && json_object_is_type(v, json_type_string))
        snprintf(ev->err_type, sizeof ev->err_type, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(e, "code", &v) && json_object_is_type(v, json_type_string))
        snprintf(ev->err_code, sizeof ev->err_code, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(e, "param", &v) && json_object_is_type(v, json_type_string))
        snprintf(ev->err_param, sizeof ev->err_param, "%s", json_object_get_string(v));
}

/* One complete SSE event's data. */
static void sse_dispatch(hb_call_t *c)
{
    if (c->data.len == 0)
        return;
    if (strcmp(c->data.data, "[DONE]") == 0) {
        buf_reset(&c->data);
        return;
    }
    if (c->chunk_text && !c->stream_failed) {
        /* Plain chunks skip the parser: only the model is renamed (oai_shape.c). */
        buf_t text = {0};
        if (shape_rename_model_text(c->data.data, c->data.len, c->model_json.data, &text)) {
            buf_reset(&c->data);
            if (queue_push(c, NULL, text.data) < 0)
                buf_free(&text);
            return;
        }
        buf_free(&text);
    }
    json_object *obj = shape_parse(c->data.data, c->data.len);
    buf_reset(&c->data);
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        if (!c->stream_failed) {
            c->stream_failed = true;
            be_event_error(&c->failure, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                           "The model's backend sent a malformed stream event.");
        }
        return;
    }
    json_object *err;
    if (json_object_object_get_ex(obj, "error", &err) && !c->stream_failed) {
        c->stream_failed = true;
        be_event_error(&c->failure, BE_ERR_HTTP_5XX, 502, "server_error", "backend_error",
                       "The model's backend reported an error during the stream.");
        read_backend_error(c, obj, &c->failure);
        c->failure.retry_after_s = c->retry_after_s; /* the 200's Retry-After, if it had one */
        json_object_put(obj);
        return;
    }
    if (c->stream_failed || queue_push(c, obj, NULL) < 0)
        json_object_put(obj);
}

/* Ends the stream: the backend sent more than an event may hold. */
static void sse_too_large(hb_call_t *c)
{
    buf_free(&c->data);
    lines_free(&c->lines);
    if (c->stream_failed)
        return;
    c->stream_failed = true;
    be_event_error(&c->failure, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                   "The model's backend sent a stream event larger than %zu bytes.", c->max_event);
    log_warn("backend '%s': a stream event passed limits.max_event_bytes (%zu)", c->be->name, c->max_event);
}

/* One line of the stream (lines_fn). Returns -1 when the event outgrows its bound. */
static int sse_line(void *ud, const char *line, size_t len)
{
    hb_call_t *c = ud;
    const char *v;
    size_t vl;
    if (len == 0) {
        sse_dispatch(c);
    } else if (shape_sse_data(line, len, &v, &vl)) {
        if (c->data.len + (c->data.len ? 1 : 0) + vl > c->max_event)
            return -1;
        if ((c->data.len && buf_append(&c->data, "\n", 1) < 0) || buf_append(&c->data, v, vl) < 0)
            return -1;
    }
    /* Comments (":"), "event:", "id:" and "retry:" lines carry nothing we relay. */
    return 0;
}

/* Returns -1 when the stream cannot go on (an event or line too large). */
static int sse_feed(hb_call_t *c, const char *p, size_t n)
{
    if (lines_feed(&c->lines, p, n, sse_line, c) == LINES_OK)
        return 0;
    sse_too_large(c);
    return -1;
}

/* The end of the stream: an unterminated last event still counts. */
static void sse_end(hb_call_t *c)
{
    if (lines_finish(&c->lines, sse_line, c) == LINES_OK && sse_line(c, "", 0) == 0)
        return;
    sse_too_large(c);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    hb_call_t *c = ud;
    size_t len = size * n;
    if (len > 12 && len < 200 && strncasecmp(p, "retry-after:", 12) == 0) {
        char v[200];
        snprintf(v, sizeof v, "%.*s", (int)(len - 12), p + 12);
        char *end;
        long secs = strtol(v, &end, 10);
        if (end != v && secs >= 0) {
            c->retry_after_s = (int)(secs > 86400 ? 86400 : secs);
        } else { /* an HTTP date */
            time_t when = curl_getdate(v, NULL);
            time_t now = time(NULL);
            if (when > now)
                c->retry_after_s = (int)(when - now > 86400 ? 86400 : when - now);
        }
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(c->pair->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) {
            c->status = code;
            c->got_headers = true;
            c->last_data_us = clock_now_us();
            const char *ct = NULL;
            curl_easy_getinfo(c->pair->easy, CURLINFO_CONTENT_TYPE, &ct);
            snprintf(c->content_type, sizeof c->content_type, "%s", ct ? ct : "application/octet-stream");
            c->is_sse = c->stream && code == 200 && ct && strncasecmp(ct, "text/event-stream", 17) == 0;
            c->hold_body = c->raw && c->raw_errors_as_is && code >= 400;
        }
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    hb_call_t *c = ud;
    size_t len = size * n;
    c->last_data_us = clock_now_us();
    if (c->hold_body && c->rawbuf.len + len > CFG_MAX_ANSWER_BYTES)
        return 0;
    if (c->raw && (c->status < 400 || c->raw_errors_as_is))
        return buf_append(&c->rawbuf, p, len) < 0 ? 0 : len;
    if (c->is_sse)
        return sse_feed(c, p, len) < 0 ? 0 : len; /* 0 aborts the transfer */
    if (c->resp.len + len > CFG_MAX_ANSWER_BYTES)
        return 0; /* aborts the transfer: reported as a protocol error */
    return buf_append(&c->resp, p, len) < 0 ? 0 : len;
}

/* What every call sends: the request id, the trace context, the key (as a Bearer token
 * or in key_header), the caller's extra lines and the backend's configured headers. */
static struct curl_slist *add_common_headers(struct curl_slist *h, const cfg_backend_t *be, const char *request_id,
                                             const char *traceparent, const char *client_key, const char *key_header,
                                             const char *const *extra)
{
    char line[2048];
    snprintf(line, sizeof line, "X-Request-Id: %s", request_id);
    h = curl_slist_append(h, line);
    if (traceparent && traceparent[0]) {
        snprintf(line, sizeof line, "traceparent: %s", traceparent);
        h = curl_slist_append(h, line);
    }
    const char *key = be->api_key ? be->api_key : be->pass_client_key ? client_key : NULL;
    if (key && *key && !strpbrk(key, "\r\n")) {
        if (key_header)
            snprintf(line, sizeof line, "%s: %s", key_header, key);
        else
            snprintf(line, sizeof line, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, line);
    }
    for (int i = 0; extra && extra[i]; i++)
        h = curl_slist_append(h, extra[i]);
    for (int i = 0; i < be->nheaders; i++)
        h = curl_slist_append(h, be->headers[i]);
    return h;
}

/* Ends the call's header list h with "Expect:" (no 100-continue round trip) and what every call
 * sends, and takes a curl pair (pair_take's keep_options). -1 when memory ran out. */
static int call_ready(hb_call_t *c, struct curl_slist *h, const char *request_id, const char *traceparent,
                      const char *client_key, const char *key_header, const char *const *extra, bool keep_options)
{
    h = curl_slist_append(h, "Expect:");
    h = add_common_headers(h, c->be, request_id, traceparent, client_key, key_header, extra);
    c->headers = h;
    if (!h)
        return -1;
    c->pair = pair_take(keep_options);
    return c->pair ? 0 : -1;
}

/* The options every transfer shares; then it starts (on the call's own multi handle). */
static int start_transfer(hb_call_t *c, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->be->connect_timeout * 1000));
    if (!c->pair->options_set) {
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "airouter");
        if (share)
            curl_easy_setopt(e, CURLOPT_SHARE, share);
    }
    c->start_us = c->last_data_us = clock_now_us();
    if (curl_multi_add_handle(c->pair->multi, e) != CURLM_OK)
        return -1;
    return 0;
}

static void call_free(hb_call_t *c)
{
    if (!c)
        return;
    if (c->pair) {
        curl_multi_remove_handle(c->pair->multi, c->pair->easy); /* cancels if unfinished */
        pair_give_back(c->pair);
    }
    curl_slist_free_all(c->headers);
    free(c->body);
    free(c->backend_model);
    free(c->client_model);
    buf_free(&c->resp);
    buf_free(&c->rawbuf);
    buf_free(&c->rawout);
    lines_free(&c->lines);
    buf_free(&c->data);
    for (int i = 0; i < c->qlen; i++) {
        json_object_put(c->queue[c->qhead + i].obj);
        free(c->queue[c->qhead + i].text);
    }
    free(c->queue);
    free(c->handed_text);
    buf_free(&c->model_json);
    free(c);
}

/* Hands the call over once its transfer is under way; frees it and says why if it is not. */
static hb_call_t *started(hb_call_t *c, CURL *e, be_event_t *ev)
{
    if (start_transfer(c, e) < 0) {
        call_free(c);
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter could not start the backend call.");
        return NULL;
    }
    return c;
}

hb_call_t *hb_open(const be_request_t *req, const hb_options_t *opt, be_event_t *ev)
{
    const cfg_backend_t *be = req->backend;
    hb_call_t *c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->be = be;
    c->stream = req->stream;
    c->max_event = req->max_event_bytes ? req->max_event_bytes : CFG_DEFAULT_MAX_EVENT_BYTES;
    c->lines.max_line = c->max_event;
    c->client_fd = req->client_fd;
    c->watch_client = req->client_fd >= 0;
    c->backend_model = strdup(req->backend_model);
    c->client_model = strdup(req->client_model ? req->client_model : req->backend_model);
    if (!c->backend_model || !c->client_model)
        goto oom;
    c->chunk_text = opt->chunk_text && req->stream;
    c->answer_text = opt->answer_text && !req->stream;
    if (c->chunk_text && buf_append_json_string(&c->model_json, c->client_model) < 0)
        goto oom;
    json_object *send = opt->body ? opt->body : req->body;
    if (req->stream && req->want_usage && opt->stream_usage) {
        json_object *so;
        if (!json_object_object_get_ex(req->body, "stream_options", &so) ||
            !json_object_is_type(so, json_type_object)) {
            so = json_object_new_object();
            json_object_object_add(req->body, "stream_options", so);
        }
        json_object_object_add(so, "include_usage", json_object_new_boolean(1));
    }
    size_t body_len;
    if (!opt->body && req->body_text && !(req->stream && req->want_usage && opt->stream_usage)) {
        body_len = req->body_text_len; /* the caller's text says it: no serialising */
        c->body = malloc(body_len + 1);
        if (!c->body)
            goto oom;
        memcpy(c->body, req->body_text, body_len);
        c->body[body_len] = '\0';
    } else {
        const char *body = json_object_to_json_string_length(
            send, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &body_len);
        c->body = strndup(body, body_len);
        if (!c->body)
            goto oom;
    }

    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, req->stream ? "Accept: text/event-stream" : "Accept: application/json");
    if (call_ready(c, h, req->request_id, req->traceparent, req->client_key, opt->key_header, opt->headers,
                   true) < 0)
        goto oom;
    CURL *e = c->pair->easy;
    char url[2048];
    snprintf(url, sizeof url, "%s%s", be->url, opt->path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    hb_call_t *r = started(c, e, ev);
    if (r)
        r->pair->options_set = true; /* a JSON call sets nothing beyond the shared options */
    return r;
oom:
    call_free(c);
    be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter is out of memory.");
    return NULL;
}

/* A whole answer handed out as text, its model renamed: true if it is plainly one JSON object
 * (no key twice or escaped); anything else goes through the parser, which decides. */
static bool answer_as_text(hb_call_t *c, be_event_t *ev)
{
    js_member_t model = {.key = "model"};
    js_info_t info;
    if (!c->resp.data || js_scan(c->resp.data, c->resp.len, SHAPE_MAX_DEPTH - 1, &model, 1, &info) != JS_OK ||
        info.escaped_key || model.count > 1)
        return false;
    buf_t text = {0}, name = {0};
    bool ok = model.count == 0 ? buf_append(&text, c->resp.data, c->resp.len) == 0
                               : buf_append_json_string(&name, c->client_model) == 0 &&
                                     js_splice(&text, c->resp.data, c->resp.len, model.at, model.end, name.data,
                                               name.len) == 0;
    buf_free(&name);
    if (!ok) {
        buf_free(&text);
        return false;
    }
    free(c->handed_text);
    c->handed_text = text.data;
    c->response_sent = true;
    ev->type = BE_EV_RESPONSE;
    ev->data = text.data;
    ev->len = text.len;
    return true;
}

/* The event that ends a finished transfer. */
static void finish_event(hb_call_t *c, be_event_t *ev)
{
    if (c->result != CURLE_OK) {
        switch (c->result) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_SSL_CONNECT_ERROR:
            be_event_error(ev, BE_ERR_CONNECT, 502, "server_error", "backend_unavailable",
                           "The model's backend is unavailable.");
            break;
        case CURLE_OPERATION_TIMEDOUT:
            be_event_error(ev, BE_ERR_TIMEOUT, 504, "server_error", "backend_timeout",
                           "The model's backend did not answer in time.");
            break;
        case CURLE_WRITE_ERROR:
            be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                           "The model's backend sent an answer that is too large.");
            break;
        default:
            be_event_error(ev, c->got_headers ? BE_ERR_PROTOCOL : BE_ERR_CONNECT, 502,
                           "server_error", c->got_headers ? "backend_error" : "backend_unavailable",
                           c->got_headers ? "The connection to the model's backend broke during the answer."
                                          : "The model's backend closed the connection without answering.");
        }
        log_warn("backend '%s': %s (%s)", c->be->name, curl_easy_strerror(c->result),
                 c->errbuf[0] ? c->errbuf : "no detail");
        return;
    }
    if (c->status >= 400) {
        json_object *err = shape_parse(c->resp.data ? c->resp.data : "", c->resp.len);
        if (c->status == 529) { /* Anthropic's "overloaded": the client should come back */
            be_event_error(ev, BE_ERR_HTTP_5XX, 503, "server_error", "backend_overloaded",
                           "The model's backend is overloaded; try again shortly.");
            ev->retry_after_s = c->retry_after_s;
        } else if (c->status >= 500) {
            be_event_error(ev, BE_ERR_HTTP_5XX, 502, "server_error", "backend_error",
                           "The model's backend failed (HTTP %ld).", c->status);
        } else if ((c->status == 401 || c->status == 403) && !c->be->pass_client_key) {
            /* airouter's own credentials were refused: not the client's fault. */
            be_event_error(ev, BE_ERR_HTTP_4XX, 502, "server_error", "backend_auth_failed",
                           "The model's backend refused airouter's credentials.");
        } else {
            be_event_error(ev, BE_ERR_HTTP_4XX, (int)c->status, "invalid_request_error", NULL,
                           "The model's backend rejected the request (HTTP %ld).", c->status);
            if (err)
                read_backend_error(c, err, ev);
        }
        if (c->status == 429 || c->status == 503)
            ev->retry_after_s = c->retry_after_s;
        log_info("backend '%s' answered HTTP %ld", c->be->name, c->status);
        json_object_put(err);
        return;
    }
    if (c->is_sse) {
        sse_end(c);
        if (c->qlen > 0) {
            queue_pop(c, ev);
            return;
        }
        if (c->stream_failed) {
            *ev = c->failure;
            return;
        }
        ev->type = BE_EV_END;
        return;
    }
    if (c->response_sent) {
        ev->type = BE_EV_END;
        return;
    }
    if (c->answer_text && answer_as_text(c, ev))
        return;
    json_object *obj = shape_parse(c->resp.data ? c->resp.data : "", c->resp.len);
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                       "The model's backend sent an answer that is not JSON.");
        return;
    }
    c->response_sent = true;
    ev->type = BE_EV_RESPONSE;
    ev->obj = obj;
}

/* Returns true if the client has left. */
static bool check_client(hb_call_t *c, bool readable)
{
    if (c->client_fd < 0)
        return false;
    if (c->watch_client) {
        if (!readable)
            return false;
        char byte;
        ssize_t r = recv(c->client_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return true;
        if (r > 0)
            c->watch_client = false; /* pipelined bytes: watch for hang-up only from now on */
        return false;
    }
    return be_client_gone(c->client_fd);
}

/* Looks at the client without waiting; true if it has left. */
static bool client_left_now(hb_call_t *c)
{
    c->client_checked_us = clock_now_us();
    if (c->client_fd < 0)
        return false;
    struct pollfd p = {.fd = c->client_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return true;
    return check_client(c, true);
}

/* Notes the end of the transfer, if curl reports it. */
static void read_done(hb_call_t *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->pair->multi, &left)))
        if (msg->msg == CURLMSG_DONE) {
            c->transfer_done = true;
            c->result = msg->data.result;
        }
}

/* Drives the transfer once: checks the timeouts, runs curl, waits for the backend
 * or the client (never past wait_end). Returns true with ev set when the caller
 * must return it (timeout, nothing within the wait, client gone). */
static bool pump(hb_call_t *c, be_event_t *ev, uint64_t wait_end)
{
    const cfg_backend_t *be = c->be;
    uint64_t now = clock_now_us(), limit;
    const char *what;
    if (!c->got_headers) {
        limit = c->start_us + (uint64_t)(be->first_byte_timeout * 1e6);
        what = "first byte";
        uint64_t total = c->start_us + (uint64_t)(be->timeout * 1e6);
        if (!c->stream && !c->raw && total < limit) { /* the total bounds the wait for headers too */
            limit = total;
            what = "total";
        }
    } else if (c->is_sse || c->raw) {
        limit = c->last_data_us + (uint64_t)(be->idle_timeout * 1e6);
        what = "idle";
    } else {
        limit = c->start_us + (uint64_t)(be->timeout * 1e6);
        what = "total";
    }
    if (now >= limit) {
        log_warn("backend '%s': %s timeout", be->name, what);
        be_event_error(ev, BE_ERR_TIMEOUT, 504, "server_error", "backend_timeout",
                       "The model's backend did not answer in time.");
        return true;
    }
    if (now >= wait_end) {
        ev->type = BE_EV_PENDING;
        return true;
    }
    curl_pair_t *p = c->pair;
    int running = 0;
    if (p->timer_set && now >= p->timer_at_us) {
        p->timer_set = false;
        curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    read_done(c);
    if (c->transfer_done || c->qlen > 0 || c->stream_failed || (c->rawbuf.len > 0 && !c->hold_body) ||
        c->got_headers != c->headers_seen) {
        if (!c->transfer_done && now - c->client_checked_us >= CLIENT_CHECK_US && client_left_now(c)) {
            be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "client disconnected");
            return true;
        }
        return false;
    }
    uint64_t until = limit < wait_end ? limit : wait_end;
    bool timer = p->timer_set && p->timer_at_us < until;
    if (timer)
        until = p->timer_at_us;
    int timeout_ms = until > now ? (int)((until - now + 999u) / 1000u) : 0;
    if (!timer && timeout_ms == 0)
        timeout_ms = 1;
    if (timeout_ms > 1000)
        timeout_ms = 1000;
    bool watching = c->watch_client && c->client_fd >= 0;
    if (!watching && timeout_ms > 250)
        timeout_ms = 250;
    struct pollfd fds[PAIR_SOCKS + 1];
    int n = 0;
    for (int i = 0; i < p->nsocks; i++)
        fds[n++] = (struct pollfd){.fd = p->socks[i].fd, .events = p->socks[i].events};
    int nsocks = n;
    if (watching)
        fds[n++] = (struct pollfd){.fd = c->client_fd, .events = POLLIN};
    int ready = poll(fds, (nfds_t)n, timeout_ms);
    for (int i = 0; ready > 0 && i < nsocks; i++) {
        short r = fds[i].revents;
        if (!r)
            continue;
        int bits = (r & (POLLIN | POLLHUP) ? CURL_CSELECT_IN : 0) | (r & POLLOUT ? CURL_CSELECT_OUT : 0) |
                   (r & (POLLERR | POLLNVAL) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(p->multi, fds[i].fd, bits, &running);
    }
    read_done(c);
    if (check_client(c, watching && ready > 0 && fds[nsocks].revents)) {
        be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "client disconnected");
        return true;
    }
    return false;
}

void hb_next(hb_call_t *c, be_event_t *ev, int wait_ms)
{
    memset(ev, 0, sizeof *ev);
    uint64_t wait_end = clock_now_us() + (uint64_t)wait_ms * 1000u;
    for (;;) {
        if (c->qlen > 0) {
            queue_pop(c, ev);
            return;
        }
        if (c->stream_failed) {
            *ev = c->failure;
            return;
        }
        if (c->transfer_done) {
            finish_event(c, ev);
            return;
        }
        c->headers_seen = c->got_headers;
        if (pump(c, ev, wait_end))
            return;
    }
}

/* ---- byte relay: the rest of the API surface and passthrough ---- */

/* curl reads the request body from the caller's segments: nothing is copied. */
static size_t read_segments(char *out, size_t size, size_t n, void *ud)
{
    hb_call_t *c = ud;
    size_t want = size * n, done = 0;
    while (done < want && c->seg < c->nsegs) {
        const struct iovec *v = &c->segs[c->seg];
        size_t left = v->iov_len - c->seg_off, take = left < want - done ? left : want - done;
        memcpy(out + done, (const char *)v->iov_base + c->seg_off, take);
        done += take;
        c->seg_off += take;
        if (c->seg_off == v->iov_len) {
            c->seg++;
            c->seg_off = 0;
        }
    }
    return done;
}

hb_call_t *hb_open_raw(const be_raw_request_t *req, be_event_t *ev)
{
    const cfg_backend_t *be = req->backend;
    hb_call_t *c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->be = be;
    c->raw = true;
    c->raw_errors_as_is = !req->sanitise_errors;
    c->client_fd = req->client_fd;
    c->watch_client = req->client_fd >= 0;
    c->backend_model = strdup(req->backend_model ? req->backend_model : "");
    c->client_model = strdup(req->client_model ? req->client_model : "");
    c->segs = req->body;
    c->nsegs = req->nbody;
    if (!c->backend_model || !c->client_model)
        goto oom;
    curl_off_t body_len = 0;
    for (int i = 0; i < req->nbody; i++)
        body_len += (curl_off_t)req->body[i].iov_len;

    char line[2048];
    struct curl_slist *h = NULL;
    if (req->content_type && !strpbrk(req->content_type, "\r\n")) {
        snprintf(line, sizeof line, "Content-Type: %s", req->content_type);
        h = curl_slist_append(h, line);
    }
    if (call_ready(c, h, req->request_id, req->traceparent, req->client_key, req->key_header, req->extra_headers,
                   false) < 0)
        goto oom;
    CURL *e = c->pair->easy;
    char url[4096];
    int base_len = (int)strlen(be->url);
    if (req->beside_v1 && base_len >= 3 && strcmp(be->url + base_len - 3, "/v1") == 0)
        base_len -= 3;
    snprintf(url, sizeof url, "%.*s%s%s%s", base_len, be->url, req->path, req->query ? "?" : "",
             req->query ? req->query : "");
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L); /* else curl waits for a body that never comes */
    } else if (strcmp(req->method, "GET") != 0) {
        if (req->nbody > 0 || strcmp(req->method, "POST") == 0) {
            curl_easy_setopt(e, CURLOPT_POST, 1L);
            curl_easy_setopt(e, CURLOPT_READFUNCTION, read_segments);
            curl_easy_setopt(e, CURLOPT_READDATA, c);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, body_len);
        }
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    return started(c, e, ev);
oom:
    call_free(c);
    be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter is out of memory.");
    return NULL;
}

/* Events of a byte relay: HEADERS (status, content type), then DATA until END. A
 * backend error (unless passed on as is) becomes one ERROR, as for JSON calls. */
void hb_next_raw(hb_call_t *c, be_event_t *ev, int wait_ms)
{
    memset(ev, 0, sizeof *ev);
    uint64_t wait_end = clock_now_us() + (uint64_t)wait_ms * 1000u;
    buf_reset(&c->rawout);
    for (;;) {
        bool relayed = c->got_headers && (c->status < 400 || c->raw_errors_as_is);
        if (relayed && !c->headers_reported) {
            c->headers_reported = true;
            ev->type = BE_EV_HEADERS;
            ev->status = (int)c->status;
            snprintf(ev->content_type, sizeof ev->content_type, "%s", c->content_type);
            ev->retry_after_s = c->retry_after_s;
            return;
        }
        if (c->hold_body && c->transfer_done && c->result == CURLE_OK && !c->body_scrubbed) {
            /* An error may quote what it was sent, the backend's key included. */
            c->body_scrubbed = true;
            be_scrub_secrets(&c->rawbuf);
        }
        if (relayed && c->rawbuf.len > 0 && (!c->hold_body || c->body_scrubbed)) {
            buf_t t = c->rawout; /* hand the bytes over without copying */
            c->rawout = c->rawbuf;
            c->rawbuf = t;
            ev->type = BE_EV_DATA;
            ev->data = c->rawout.data;
            ev->len = c->rawout.len;
            return;
        }
        if (c->transfer_done) {
            if (c->result == CURLE_OK && relayed)
                ev->type = BE_EV_END;
            else
                finish_event(c, ev);
            return;
        }
        c->headers_seen = c->got_headers;
        if (pump(c, ev, wait_end))
            return;
    }
}

void hb_close(hb_call_t *c) { call_free(c); }
