/* The rest of the OpenAI API surface (audio, images, moderations, responses) and
 * passthrough rules. These requests are relayed as bytes: only the model name is
 * rewritten on the way in, and "model" fields of JSON answers and SSE events on the
 * way out. Uploads are sent from the request buffer in segments, never copied. */
#include "worker/http/proxy.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/oai_error.h"
#include "common/state.h"
#include "common/urlpath.h"
#include "worker/oai/anthropic_shape.h"
#include "worker/http/api.h"
#include "worker/backend/backend.h"
#include "worker/core/balance.h"
#include "worker/core/failover.h"
#include "worker/oai/multipart.h"
#include "worker/oai/oai_shape.h"
#include "worker/core/route.h"
#include "worker/core/upstream.h"
#include "worker/oai/usage.h"


/* ---- streaming relay of an answer ---- */

typedef struct {
    request_t *req;             /* valid while the reader runs */
    upstream_t up;              /* the backend call, ended once the relay is */
    buf_t pending;
    size_t off;
    bool finished;
    bool sse;                   /* rewrite "model" in data lines */
    shape_sse_t rewriter;
    char *client_model;
    usage_scan_t *usage;        /* JSON and SSE answers: where their usage is read */
} proxy_relay_t;

static void relay_close(proxy_relay_t *r) { upstream_end(&r->up, NULL); }

/* Token usage and events seen in the answer so far (the Responses API sends usage in its
 * response.completed event). */
static void note_stream_usage(proxy_relay_t *r, const char *p, size_t n)
{
    if (!r->usage || !r->req)
        return;
    usage_scan_feed(r->usage, p, n);
    const usage_t *u = &r->usage->found;
    r->req->tokens_in = u->in;
    r->req->tokens_out = u->out;
    r->req->tokens_cached = u->cached;
    r->req->chunks_relayed = r->usage->events;
}

/* Turns one event into bytes; returns -1 when the stream must be cut. */
static int relay_event(proxy_relay_t *r, be_event_t *ev)
{
    switch (ev->type) {
    case BE_EV_DATA:
        note_stream_usage(r, ev->data, ev->len);
        if (r->sse) {
            if (shape_sse_feed(&r->rewriter, ev->data, ev->len, r->client_model, &r->pending) < 0) {
                be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                               "The model's backend sent a stream event larger than %zu bytes.",
                               r->rewriter.lines.max_line);
                return relay_event(r, ev);
            }
        } else {
            buf_append(&r->pending, ev->data, ev->len);
        }
        return 0;
    case BE_EV_END:
        if (r->sse)
            shape_sse_finish(&r->rewriter, r->client_model, &r->pending);
        r->finished = true;
        relay_close(r);
        return 0;
    case BE_EV_PENDING:
        if (request_client_gone(r->req, 0)) {
            snprintf(r->req->error_reason, sizeof r->req->error_reason, "client_abort");
            return -1;
        }
        if (r->sse)
            buf_appends(&r->pending, ": keep-alive\n\n");
        return 0;
    case BE_EV_ERROR:
        if (ev->error == BE_ERR_CLIENT_GONE) {
            snprintf(r->req->error_reason, sizeof r->req->error_reason, "client_abort");
            return -1;
        }
        snprintf(r->req->error_reason, sizeof r->req->error_reason, "%s", be_error_name(ev->error));
        failover_count_error(r->req, ev->error);
        log_warn("request %s: relay from backend '%s' failed after it started: %s", r->req->id,
                 r->req->backend_name ? r->req->backend_name : "?", ev->message);
        if (!r->sse)
            return -1; /* a binary body cannot carry an error: cut it short */
        buf_t e = {0};
        if (http_of(r->req)->anthropic) {
            int status;
            ashape_error_format(&e, ashape_error_type(ev->status, &status), ev->message);
        } else {
            oaierr_format(&e, ev->message, ev->err_type, NULL, ev->err_code[0] ? ev->err_code : NULL);
        }
        /* The blank line first ends an event whose lines were relayed in part (a client drops it). */
        buf_appends(&r->pending, "\nevent: error\ndata: ");
        buf_append(&r->pending, e.data, e.len);
        buf_appends(&r->pending, "\n\n");
        buf_free(&e);
        r->finished = true;
        relay_close(r);
        return 0;
    default:
        return 0;
    }
}

/* Waits for the backend's next bytes (http_relay_read's fill). */
static int relay_fill(void *cls, size_t max)
{
    (void)max;
    proxy_relay_t *r = cls;
    be_event_t ev;
    r->up.ops->next_raw(r->up.call, &ev, r->req->client.check_ms);
    if (relay_event(r, &ev) < 0) {
        relay_close(r);
        return -1;
    }
    return 0;
}

static ssize_t relay_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    proxy_relay_t *r = cls;
    return http_relay_read(r->req, &r->pending, &r->off, &r->finished, relay_fill, r, out, max);
}

static void relay_free(void *cls)
{
    proxy_relay_t *r = cls;
    r->req = r->up.req = NULL; /* may already be gone */
    relay_close(r);
    if (r->sse)
        shape_sse_finish(&r->rewriter, r->client_model, &r->pending);
    buf_free(&r->pending);
    free(r->client_model);
    if (r->usage)
        usage_scan_free(r->usage);
    free(r->usage);
    free(r);
}

/* ---- one try ---- */

/* A relayed answer as it starts: the backend's status line, then either the whole (JSON) answer
 * read here, or a relay that goes on with the call. */
typedef struct {
    const proxy_job_t *job;
    const char *asked;          /* the client-facing model name, NULL: none */
    enum { AWAIT_HEADERS, READ_WHOLE, HEAD_ONLY, RELAYED } state;
    int status;
    char content_type[128];
    buf_t answer;               /* owned: a JSON answer, read whole */
} relayed_t;

/* Starts relaying the rest of the answer as it comes; the relay owns the call from now on. */
static void start_relay(relayed_t *s, upstream_t *u)
{
    request_t *req = u->req;
    proxy_relay_t *r = calloc(1, sizeof *r);
    if (!r || !(r->client_model = strdup(s->asked ? s->asked : ""))) {
        free(r);
        upstream_end(u, "internal");
        http_of(req)->answer = MHD_NO;
        return;
    }
    r->req = req;
    r->up = *u;
    r->rewriter = (shape_sse_t)SHAPE_SSE_INIT(http_cfg->max_event_bytes);
    r->sse = !s->job->passthrough && s->asked && strncasecmp(s->content_type, "text/event-stream", 17) == 0;
    /* forwarded downloads (a batch's output file is full of usage objects) are not read */
    if (s->status < 300 && (!s->job->passthrough || req->limits.priced) &&
        (strncasecmp(s->content_type, "text/event-stream", 17) == 0 ||
         strncasecmp(s->content_type, "application/json", 16) == 0) &&
        (r->usage = malloc(sizeof *r->usage)))
        usage_scan_init(r->usage);
    req->stream = strncasecmp(s->content_type, "text/event-stream", 17) == 0;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, relay_read, r, relay_free);
    if (!resp) {
        relay_free(r);
        http_of(req)->answer = MHD_NO;
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, s->content_type);
    if (req->stream) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    }
    http_queue(req, s->status, resp);
}

static upstream_step_t take_relayed(void *ctx, upstream_t *u, be_event_t *ev)
{
    relayed_t *s = ctx;
    request_t *req = u->req;
    if (s->state == AWAIT_HEADERS) {
        if (ev->type != BE_EV_HEADERS) {
            if (ev->type != BE_EV_ERROR)
                be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                               "The model's backend sent no answer.");
            return UPSTREAM_FAILED;
        }
        s->status = ev->status;
        snprintf(s->content_type, sizeof s->content_type, "%s", ev->content_type);
        req->first_byte_us = clock_now_us();
        if (strcmp(req->method, "HEAD") == 0) {
            s->state = HEAD_ONLY; /* no body to relay */
            return UPSTREAM_ANSWERED;
        }
        if (!s->job->passthrough && strncasecmp(s->content_type, "application/json", 16) == 0) {
            s->state = READ_WHOLE;
            return UPSTREAM_MORE;
        }
        s->state = RELAYED;
        start_relay(s, u);
        return UPSTREAM_KEEP;
    }
    switch (ev->type) { /* READ_WHOLE */
    case BE_EV_DATA:
        if (s->answer.len + ev->len > CFG_MAX_ANSWER_BYTES) {
            be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                           "The model's backend sent an answer that is too large.");
            return UPSTREAM_FAILED;
        }
        buf_append(&s->answer, ev->data, ev->len);
        return UPSTREAM_MORE;
    case BE_EV_END:
        return UPSTREAM_ANSWERED;
    case BE_EV_ERROR:
        return UPSTREAM_FAILED;
    default:
        return UPSTREAM_MORE;
    }
}

/* Answers with a JSON answer read whole, its model names renamed. */
static void answer_whole(request_t *req, relayed_t *s)
{
    json_object *obj = s->answer.len ? shape_parse(s->answer.data, s->answer.len) : NULL;
    if (obj && json_object_is_type(obj, json_type_object) && s->asked) {
        usage_t u = USAGE_NONE;
        if (s->status < 300 && usage_from_answer(obj, &u)) {
            req->tokens_in = u.in;
            req->tokens_out = u.out;
            req->tokens_cached = u.cached;
        }
        shape_set_models(obj, s->asked);
        api_respond_json(req, s->status, obj);
    } else {
        http_respond(req, s->status, s->content_type, s->answer.data ? s->answer.data : "", s->answer.len);
    }
    json_object_put(obj);
}

try_result_t proxy_try(request_t *req, void *job_arg, const cfg_model_t *m, bool is_fallback,
                       const cfg_target_t *t, be_event_t *ev)
{
    const proxy_job_t *job = job_arg;
    upstream_t u;
    if (upstream_begin(&u, req, m, is_fallback, t, true, ev) < 0)
        return TRY_FAILED;
    const char *backend_model = u.backend_model;
    const char *asked = req->model_asked && req->model_asked[0] ? req->model_asked : NULL;
    if (!asked && !job->passthrough) /* no model given: answers name the model that served it */
        asked = req->model_routed;

    /* The body, as segments around the model name. */
    struct iovec seg[4];
    int nseg = 0;
    char model_part[512];
    const buf_t *in = &http_of(req)->body;
    const char *body = in->data ? in->data : "";
    size_t len = in->len;
    if (job->json) {
        if (backend_model)
            json_object_object_add(job->json, "model", json_object_new_string(backend_model));
        else
            json_object_object_del(job->json, "model");
        size_t n;
        const char *js = shape_json(job->json, &n);
        seg[nseg++] = (struct iovec){(void *)js, n};
    } else if (job->multipart && backend_model && job->has_model_field) {
        seg[nseg++] = (struct iovec){(void *)body, job->model_off};
        seg[nseg++] = (struct iovec){(void *)backend_model, strlen(backend_model)};
        size_t rest = job->model_off + job->model_len;
        seg[nseg++] = (struct iovec){(void *)(body + rest), len - rest};
    } else if (job->multipart && backend_model) {
        /* No model field in the upload, but the target names one: add it in front. */
        int n = snprintf(model_part, sizeof model_part,
                         "--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n%.200s\r\n", job->boundary,
                         backend_model);
        seg[nseg++] = (struct iovec){model_part, (size_t)n};
        seg[nseg++] = (struct iovec){(void *)body, len};
    } else if (len > 0) {
        seg[nseg++] = (struct iovec){(void *)body, len};
    }
    be_raw_request_t rr = {
        .backend = u.backend,
        .method = job->method,
        .path = job->path,
        .query = job->query,
        .content_type = job->content_type,
        .body = seg,
        .nbody = nseg,
        .extra_headers = job->extra_headers,
        .backend_model = backend_model,
        .client_model = asked ? asked : "",
        .sanitise_errors = !job->passthrough,
    };
    relayed_t s = {.job = job, .asked = asked};
    try_result_t res = upstream_run(&u, &rr, take_relayed, &s, ev);
    if (res == TRY_ANSWERED && s.state == HEAD_ONLY)
        /* a streamed response would still end in a chunk terminator: answer with an empty body */
        http_respond(req, s.status, s.content_type, "", 0);
    else if (res == TRY_ANSWERED && s.state == READ_WHOLE)
        answer_whole(req, &s);
    buf_free(&s.answer);
    return res;
}

/* ---- handlers ---- */

/* The longest path and query forwarded: a longer one would be cut short, and a cut
 * request is a different request. */
#define MAX_FORWARD_PATH 1000
#define MAX_FORWARD_QUERY 2000

/* Checks what a request forwards as it was sent: its path (from the backend's /v1 on) and
 * query string. Returns -1 with the answer queued in *rc. */
static int check_forwarded(request_t *req, const char *path, const char *query, enum MHD_Result *rc)
{
    if (strlen(path) > MAX_FORWARD_PATH || (query && strlen(query) > MAX_FORWARD_QUERY)) {
        *rc = http_respond_error(req, 414, "The path or query string is too long to forward.",
                                 "invalid_request_error", NULL, "invalid_url");
        return -1;
    }
    if (!urlpath_forwardable(path) || (query && !urlpath_forwardable(query))) {
        *rc = http_respond_error(req, 400, "The path or query string has characters that cannot be forwarded.",
                                 "invalid_request_error", NULL, "invalid_url");
        return -1;
    }
    return 0;
}

/* Routes and dispatches a job whose model is req->model_asked ("" = the kind's default). */
static enum MHD_Result route_and_dispatch(request_t *req, proxy_job_t *job)
{
    route_t route;
    route_status_t rs = route_resolve(http_cfg, req->key, req->model_asked, job->kind, &route);
    if (rs != ROUTE_OK)
        return api_route_error(req, rs, job->kind);
    req->model_routed = route.model->name;
    req->model_slot = route.model->metric_slot;
    enum MHD_Result rc;
    if (http_reserve(req, route.model, job->json, &rc) < 0)
        return rc;
    return api_dispatch(req, job, route.model, proxy_try);
}

static void begin(request_t *req, proxy_job_t *job, unsigned kind, const char *path)
{
    struct MHD_Connection *conn = http_of(req)->conn;
    http_track(req, kind);
    job->kind = kind;
    job->method = req->method;
    snprintf(job->path, sizeof job->path, "%s", path);
    job->content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *beta = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "OpenAI-Beta");
    static __thread char beta_line[256];
    if (beta && strlen(beta) < 200 && !strpbrk(beta, "\r\n")) {
        snprintf(beta_line, sizeof beta_line, "OpenAI-Beta: %s", beta);
        job->extra_headers[0] = beta_line;
    }
}

/* JSON body with a "model" (required unless the kind has a default model). */
static enum MHD_Result handle_json(request_t *req, unsigned kind, const char *path, bool model_required)
{
    proxy_job_t job = {0};
    begin(req, &job, kind, path);
    enum MHD_Result rc;
    json_object *body = api_parse_body(req, &rc), *v;
    if (!body)
        return rc;
    job.json = body;
    job.content_type = "application/json";
    if (json_object_object_get_ex(body, "model", &v) && json_object_is_type(v, json_type_string) &&
        json_object_get_string_len(v)) {
        req->model_asked = strdup(json_object_get_string(v));
    } else if (model_required) {
        rc = api_missing_param(req, "model", "(a model name string)");
        json_object_put(body);
        return rc;
    } else {
        req->model_asked = strdup("");
    }
    req->stream = json_object_object_get_ex(body, "stream", &v) && json_object_get_boolean(v);
    rc = route_and_dispatch(req, &job);
    json_object_put(body);
    return rc;
}

/* multipart/form-data upload with a "model" field (required unless defaulted). */
static enum MHD_Result handle_multipart(request_t *req, unsigned kind, const char *path, bool model_required)
{
    proxy_job_t job = {0};
    begin(req, &job, kind, path);
    job.multipart = true;
    if (!mp_boundary(job.content_type, job.boundary, sizeof job.boundary))
        return http_respond_error(req, 400, "This endpoint takes a multipart/form-data body (with a boundary).",
                                  "invalid_request_error", NULL, "invalid_content_type");
    const buf_t *in = &http_of(req)->body;
    const char *body = in->data ? in->data : "";
    job.has_model_field = mp_find_field(body, in->len, job.boundary, "model", &job.model_off, &job.model_len);
    /* The model routed by must be the only one the backend can read. */
    int models = mp_count_fields(body, in->len, job.boundary, "model");
    if (models > 1 || (models == 1 && !job.has_model_field))
        return http_respond_error(req, 400,
                                  "The form must have at most one 'model' field, sent as "
                                  "Content-Disposition: form-data; name=\"model\" without a filename.",
                                  "invalid_request_error", "model", "invalid_value");
    if (job.has_model_field && job.model_len > 0 && job.model_len < 256)
        req->model_asked = strndup(body + job.model_off, job.model_len);
    else if (model_required)
        return api_missing_param(req, "model", "(a form field)");
    else
        req->model_asked = strdup("");
    if (!req->model_asked)
        return MHD_NO;
    return route_and_dispatch(req, &job);
}

enum MHD_Result proxy_speech(request_t *req) { return handle_json(req, KIND_SPEECH, "/audio/speech", true); }
enum MHD_Result proxy_transcriptions(request_t *req)
{
    return handle_multipart(req, KIND_TRANSCRIPTIONS, "/audio/transcriptions", true);
}
enum MHD_Result proxy_translations(request_t *req)
{
    return handle_multipart(req, KIND_TRANSLATIONS, "/audio/translations", true);
}
enum MHD_Result proxy_image_generations(request_t *req)
{
    return handle_json(req, KIND_IMAGES, "/images/generations", false);
}
enum MHD_Result proxy_image_edits(request_t *req) { return handle_multipart(req, KIND_IMAGES, "/images/edits", false); }
enum MHD_Result proxy_image_variations(request_t *req)
{
    return handle_multipart(req, KIND_IMAGES, "/images/variations", false);
}
enum MHD_Result proxy_moderations(request_t *req) { return handle_json(req, KIND_MODERATIONS, "/moderations", false); }
enum MHD_Result proxy_responses(request_t *req) { return handle_json(req, KIND_RESPONSES, "/responses", true); }

const char *proxy_query_string(request_t *req);

/* GET/DELETE /v1/responses/{id}: the id does not say which model made it, so these go
 * to the default responses model (or the first model that serves responses). */
enum MHD_Result proxy_response_by_id(request_t *req)
{
    enum MHD_Result rc;
    const char *query = proxy_query_string(req);
    if (check_forwarded(req, req->path + 3, query, &rc) < 0)
        return rc;
    proxy_job_t job = {0};
    begin(req, &job, KIND_RESPONSES, req->path + 3);
    const cfg_model_t *m = NULL;
    for (int i = 0; i < http_cfg->nmodels && !m; i++)
        if (http_cfg->models[i].is_default && (http_cfg->models[i].kinds & KIND_RESPONSES))
            m = &http_cfg->models[i];
    for (int i = 0; i < http_cfg->nmodels && !m; i++)
        if (!http_cfg->models[i].is_glob && (http_cfg->models[i].kinds & KIND_RESPONSES))
            m = &http_cfg->models[i];
    if (!m || !route_key_allows(req->key, m->name))
        return http_respond_error(req, 404, "No model that serves responses is available to you.",
                                  "invalid_request_error", NULL, "model_not_found");
    req->model_asked = strdup(m->name);
    req->model_routed = m->name;
    req->model_slot = m->metric_slot;
    job.query = query;
    if (http_reserve(req, NULL, NULL, &rc) < 0) /* its answer was paid for when it was made */
        return rc;
    return api_dispatch(req, &job, m, proxy_try);
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    buf_t *b = cls;
    /* keys and values are still escaped as the client sent them */
    if (b->len)
        buf_append(b, "&", 1);
    buf_appends(b, key);
    if (value) {
        buf_append(b, "=", 1);
        buf_appends(b, value);
    }
    return MHD_YES;
}

/* One query buffer per connection thread, reused by its requests and freed when the thread
 * ends (a plain __thread buffer would leak with every connection: each has its own thread). */
static pthread_key_t query_key;
static pthread_once_t query_once = PTHREAD_ONCE_INIT;
static void query_free(void *q)
{
    buf_free(q);
    free(q);
}
static void query_key_init(void) { pthread_key_create(&query_key, query_free); }

const char *proxy_query_string(request_t *req)
{
    pthread_once(&query_once, query_key_init);
    buf_t *q = pthread_getspecific(query_key);
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q || pthread_setspecific(query_key, q) != 0) {
            free(q);
            return NULL;
        }
    }
    buf_reset(q);
    MHD_get_connection_values(http_of(req)->conn, MHD_GET_ARGUMENT_KIND, collect_arg, q);
    return q->len ? q->data : NULL;
}

const cfg_passthrough_t *proxy_match(const char *url)
{
    for (int i = 0; i < http_cfg->npassthrough; i++) {
        const cfg_passthrough_t *p = &http_cfg->passthrough[i];
        size_t n = strlen(p->prefix);
        if (strncmp(url, p->prefix, n) == 0 && (url[n] == '\0' || url[n] == '/' || p->prefix[n - 1] == '/'))
            return p;
    }
    return NULL;
}

/* The methods a passthrough rule forwards. Others are refused: TRACE would have the backend
 * echo the request, airouter's credentials included, and CONNECT or made-up tokens have no
 * business on an API. */
#define PASSTHROUGH_METHODS "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

static bool passthrough_method(const char *m)
{
    static const char *const allowed[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strcmp(m, allowed[i]) == 0)
            return true;
    return false;
}

/* Forwards the request unchanged but for auth: the backend's own key (or, with
 * pass_client_key, the client's) replaces whatever the client sent. */
enum MHD_Result proxy_passthrough(request_t *req)
{
    const cfg_passthrough_t *p = proxy_match(req->path);
    if (!p)
        return http_respond_error(req, 404, "Invalid URL", "invalid_request_error", NULL, "unknown_url");
    if (!passthrough_method(req->method)) {
        char msg[200];
        snprintf(msg, sizeof msg, "Method %.16s is not forwarded; use %s.", req->method, PASSTHROUGH_METHODS);
        http_of(req)->allow = PASSTHROUGH_METHODS;
        return http_respond_error(req, 405, msg, "invalid_request_error", NULL, "method_not_allowed");
    }
    enum MHD_Result rc;
    const char *query = proxy_query_string(req);
    if (check_forwarded(req, req->path + 3, query, &rc) < 0)
        return rc;
    struct MHD_Connection *conn = http_of(req)->conn;
    proxy_job_t job = {0};
    job.method = req->method;
    snprintf(job.path, sizeof job.path, "%s", req->path + 3); /* the backend URL ends in /v1 */
    job.query = query;
    job.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    job.passthrough = true;
    const char *beta = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "OpenAI-Beta");
    char beta_line[256];
    if (beta && strlen(beta) < 200 && !strpbrk(beta, "\r\n")) {
        snprintf(beta_line, sizeof beta_line, "OpenAI-Beta: %s", beta);
        job.extra_headers[0] = beta_line;
    }
    /* A one-target model of its own, so failover and circuit state work as for any call. */
    cfg_target_t target = {.backend = p->backend, .weight = 1, .state_slot = -1};
    cfg_model_t model = {.name = p->prefix, .targets = &target, .ntargets = 1, .metric_slot = 0};
    req->backend_name = http_cfg->backends[p->backend].name;
    if (http_reserve_passthrough(req, job.content_type, &rc) < 0)
        return rc;
    return api_dispatch(req, &job, &model, proxy_try);
}
