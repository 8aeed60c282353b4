/* Backend registry: adding a backend type adds one line to the table, which is also what the
 * config loader knows of the types. */
#include "worker/backend/backend.h"

#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/config_dump.h"

extern const backend_ops_t be_echo_ops;
extern const backend_ops_t be_openai_ops;
extern const backend_ops_t be_anthropic_ops;
extern const backend_ops_t be_triton_ops;

static const backend_ops_t *const backend_table[] = {&be_echo_ops, &be_openai_ops, &be_anthropic_ops, &be_triton_ops};
#define NBACKEND_TYPES (sizeof backend_table / sizeof backend_table[0])

const backend_ops_t *be_lookup(const char *type)
{
    for (size_t i = 0; i < NBACKEND_TYPES; i++)
        if (strcmp(backend_table[i]->type.name, type) == 0)
            return backend_table[i];
    return NULL;
}

void be_describe_types(void)
{
    static const cfg_backend_type_t *types[NBACKEND_TYPES];
    for (size_t i = 0; i < NBACKEND_TYPES; i++)
        types[i] = &backend_table[i]->type;
    cfg_set_backend_types(types, (int)NBACKEND_TYPES);
}

/* The secrets of the worker's config: pointers into it (it lives as long as the worker). */
#define MAX_SECRETS 256
static const char *secrets[MAX_SECRETS];
static size_t secret_lens[MAX_SECRETS];
static int nsecrets;
/* Shorter values are not secrets worth the damage replacing them would do to a message. */
#define MIN_SECRET_LEN 4

static void add_secret(const char *s, size_t n)
{
    if (n >= MIN_SECRET_LEN && nsecrets < MAX_SECRETS) {
        secrets[nsecrets] = s;
        secret_lens[nsecrets++] = n;
    }
}

static void collect_secrets(const cfg_t *cfg)
{
    nsecrets = 0;
    for (int i = 0; i < cfg->nbackends; i++) {
        const cfg_backend_t *be = &cfg->backends[i];
        if (be->api_key)
            add_secret(be->api_key, strlen(be->api_key));
        for (int h = 0; h < be->nheaders; h++) {
            const char *line = be->headers[h], *colon = strchr(line, ':');
            if (!colon || !cfg_dump_secret_name(line, (size_t)(colon - line)))
                continue;
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            add_secret(v, strlen(v));
            const char *space = strchr(v, ' '); /* "Bearer TOKEN": the token alone too */
            if (space)
                add_secret(space + 1, strlen(space + 1));
        }
    }
    /* Longest first, so a secret that contains another is replaced whole. */
    for (int i = 1; i < nsecrets; i++)
        for (int j = i; j > 0 && secret_lens[j] > secret_lens[j - 1]; j--) {
            const char *s = secrets[j];
            size_t n = secret_lens[j];
            secrets[j] = secrets[j - 1], secret_lens[j] = secret_lens[j - 1];
            secrets[j - 1] = s, secret_lens[j - 1] = n;
        }
}

/* Replaces every occurrence of needle in b with repl. */
static int replace_all(buf_t *b, const char *needle, size_t nl, const char *repl)
{
    if (nl == 0 || !b->data || !memmem(b->data, b->len, needle, nl))
        return 0;
    buf_t out = {0};
    const char *p = b->data, *end = b->data + b->len, *hit;
    while ((hit = memmem(p, (size_t)(end - p), needle, nl))) {
        if (buf_append(&out, p, (size_t)(hit - p)) < 0 || buf_appends(&out, repl) < 0)
            goto oom;
        p = hit + nl;
    }
    if (buf_append(&out, p, (size_t)(end - p)) < 0)
        goto oom;
    buf_free(b);
    *b = out;
    return 0;
oom:
    buf_free(&out);
    buf_free(b);
    return -1;
}

int be_scrub_secrets(buf_t *b)
{
    for (int i = 0; i < nsecrets; i++)
        if (replace_all(b, secrets[i], secret_lens[i], "[redacted]") < 0)
            return -1;
    return 0;
}

void be_client_message(char *msg, size_t size, const char *text, const cfg_backend_t *be,
                       const char *backend_model, const char *client_model)
{
    buf_t b = {0};
    if (buf_appends(&b, text) < 0 || be_scrub_secrets(&b) < 0 ||
        (be && be->url && replace_all(&b, be->url, strlen(be->url), "the backend") < 0) ||
        (backend_model && client_model &&
         replace_all(&b, backend_model, strlen(backend_model), client_model) < 0)) {
        snprintf(msg, size, "The model's backend rejected the request.");
        buf_free(&b);
        return;
    }
    snprintf(msg, size, "%s", b.data ? b.data : "");
    buf_free(&b);
}

static bool type_used(const cfg_t *cfg, const char *type)
{
    for (int i = 0; i < cfg->nbackends; i++)
        if (strcmp(cfg->backends[i].type, type) == 0)
            return true;
    return false;
}

int be_worker_init(const cfg_t *cfg)
{
    collect_secrets(cfg);
    for (size_t i = 0; i < NBACKEND_TYPES; i++)
        if (backend_table[i]->worker_init && type_used(cfg, backend_table[i]->type.name) &&
            backend_table[i]->worker_init() < 0)
            return -1;
    return 0;
}

void be_worker_cleanup(void)
{
    for (size_t i = 0; i < NBACKEND_TYPES; i++)
        if (backend_table[i]->worker_cleanup)
            backend_table[i]->worker_cleanup();
}

void be_event_error(be_event_t *ev, be_error_t err, int status, const char *type,
                    const char *code, const char *fmt, ...)
{
    ev->type = BE_EV_ERROR;
    ev->obj = NULL;
    ev->error = err;
    ev->status = status;
    ev->err_param[0] = '\0';
    ev->retry_after_s = 0;
    snprintf(ev->err_type, sizeof ev->err_type, "%s", type);
    snprintf(ev->err_code, sizeof ev->err_code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->message, sizeof ev->message, fmt, ap);
    va_end(ap);
}

bool be_refuse_many_choices(const be_request_t *req, be_event_t *ev, const char *backend_name)
{
    json_object *n;
    if (!req->body || !json_object_object_get_ex(req->body, "n", &n) || !json_object_is_type(n, json_type_int) ||
        json_object_get_int64(n) <= 1)
        return false;
    be_event_error(ev, BE_ERR_INTERNAL, 400, "invalid_request_error", "unsupported_value",
                   "Invalid 'n': this model's %s backend gives one choice per request, so 'n' must be 1.",
                   backend_name);
    snprintf(ev->err_param, sizeof ev->err_param, "n");
    return true;
}

bool be_client_gone(int fd)
{
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

const char *be_error_name(be_error_t e)
{
    switch (e) {
    case BE_ERR_CONNECT: return "backend_connect";
    case BE_ERR_TIMEOUT: return "backend_timeout";
    case BE_ERR_HTTP_4XX: return "backend_4xx";
    case BE_ERR_HTTP_5XX: return "backend_5xx";
    case BE_ERR_PROTOCOL: return "backend_protocol";
    case BE_ERR_CLIENT_GONE: return "client_abort";
    case BE_ERR_INTERNAL: return "internal";
    default: return "none";
    }
}
