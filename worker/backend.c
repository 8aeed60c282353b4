/* Backend registry: adding a backend type adds one line to the table. */
#include "backend.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

extern const backend_ops_t be_echo_ops;
extern const backend_ops_t be_openai_ops;
extern const backend_ops_t be_anthropic_ops;
extern const backend_ops_t be_triton_ops;

static const backend_ops_t *const backend_table[] = {&be_echo_ops, &be_openai_ops, &be_anthropic_ops, &be_triton_ops};
#define NBACKEND_TYPES (sizeof backend_table / sizeof backend_table[0])

const backend_ops_t *backend_lookup(const char *type)
{
    for (size_t i = 0; i < NBACKEND_TYPES; i++)
        if (strcmp(backend_table[i]->type, type) == 0)
            return backend_table[i];
    return NULL;
}

int backends_worker_init(void)
{
    for (size_t i = 0; i < NBACKEND_TYPES; i++)
        if (backend_table[i]->worker_init && backend_table[i]->worker_init() < 0)
            return -1;
    return 0;
}

void backends_worker_cleanup(void)
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

bool client_gone(int fd)
{
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

void be_sanitise(char *msg, size_t size, const char *needle, const char *repl)
{
    size_t nl = needle ? strlen(needle) : 0, rl = strlen(repl);
    if (nl == 0)
        return;
    char out[1024];
    size_t o = 0;
    for (const char *p = msg; *p && o + 1 < sizeof out;) {
        if (strncmp(p, needle, nl) == 0) {
            for (size_t i = 0; i < rl && o + 1 < sizeof out; i++)
                out[o++] = repl[i];
            p += nl;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    snprintf(msg, size, "%s", out);
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
