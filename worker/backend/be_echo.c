/* Built-in echo backend: answers with the last user message (chat) or the prompt
 * (completions), so airouter does something real with nothing else running. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/prompt.h"
#include "worker/backend/backend.h"
#include "worker/oai/oai_shape.h"

struct be_call {
    unsigned kind;
    bool stream;
    bool want_usage;
    int client_fd;
    int delay_ms;
    char id[40];
    char *model;       /* owned */
    long created;
    char **words;      /* owned: answer split into pieces, each with its trailing space */
    int nwords;
    int next_word;
    int stage;         /* 0: role chunk, 1: words, 2: finish chunk, 3: usage, 4: end */
    long long due_ms;  /* when the next word may go out (chunk_delay_ms); 0 = not scheduled */
    int prompt_tokens;
};

static int count_words(const char *s)
{
    int n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            break;
        n++;
        while (*p && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
            p++;
    }
    return n;
}

/* Splits s into words that keep their trailing whitespace, so joining restores s. */
static int split_words(be_call_t *c, const char *s)
{
    size_t len = strlen(s);
    c->words = calloc(len + 1, sizeof *c->words);
    if (!c->words)
        return -1;
    const char *p = s;
    while (*p) {
        const char *start = p;
        while (*p && *p != ' ' && *p != '\n' && *p != '\t')
            p++;
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
        c->words[c->nwords] = strndup(start, (size_t)(p - start));
        if (!c->words[c->nwords])
            return -1;
        c->nwords++;
    }
    return 0;
}

static be_call_t *echo_open(const be_request_t *req, be_event_t *ev)
{
    if (be_refuse_many_choices(req, ev, "echo"))
        return NULL;
    buf_t prompt = {0}, answer = {0};
    json_object *v;
    if (req->kind == KIND_CHAT) {
        json_object *messages = NULL;
        json_object_object_get_ex(req->body, "messages", &messages);
        size_t n = json_object_is_type(messages, json_type_array) ? json_object_array_length(messages) : 0;
        for (size_t i = 0; i < n; i++) {
            json_object *m = json_object_array_get_idx(messages, i), *role, *content;
            if (!json_object_object_get_ex(m, "content", &content))
                continue;
            buf_t text = {0};
            prompt_content_text(content, " ", &text);
            if (text.data) {
                if (prompt.len)
                    buf_appends(&prompt, " ");
                buf_appends(&prompt, text.data);
                if (json_object_object_get_ex(m, "role", &role) &&
                    strcmp(json_object_get_string(role), "user") == 0) {
                    buf_reset(&answer);
                    buf_appends(&answer, text.data);
                }
            }
            buf_free(&text);
        }
    } else if (req->kind == KIND_COMPLETIONS) {
        if (json_object_object_get_ex(req->body, "prompt", &v)) {
            if (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0)
                v = json_object_array_get_idx(v, 0);
            if (json_object_is_type(v, json_type_string))
                buf_appends(&answer, json_object_get_string(v));
        }
        buf_appends(&prompt, answer.data ? answer.data : "");
    } else {
        be_event_error(ev, BE_ERR_INTERNAL, 400, "invalid_request_error", "unsupported_kind",
                       "the echo backend does not serve %s requests", cfg_kind_name(req->kind));
        return NULL;
    }
    be_call_t *c = calloc(1, sizeof *c);
    if (!c || split_words(c, answer.data ? answer.data : "") < 0) {
        if (c) {
            for (int i = 0; i < c->nwords; i++)
                free(c->words[i]);
            free(c->words);
        }
        free(c);
        buf_free(&prompt);
        buf_free(&answer);
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "out of memory");
        return NULL;
    }
    c->kind = req->kind;
    c->stream = req->stream;
    c->want_usage = req->want_usage;
    c->client_fd = req->client_fd;
    c->delay_ms = req->backend->chunk_delay_ms;
    c->model = strdup(req->backend_model);
    c->created = (long)time(NULL);
    c->prompt_tokens = count_words(prompt.data ? prompt.data : "");
    snprintf(c->id, sizeof c->id, "%s-echo%08lx%04x", req->kind == KIND_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long)random(), (unsigned)(random() & 0xffff));
    buf_free(&prompt);
    buf_free(&answer);
    return c;
}

static json_object *usage_object(const be_call_t *c)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "prompt_tokens", json_object_new_int(c->prompt_tokens));
    json_object_object_add(u, "completion_tokens", json_object_new_int(c->nwords));
    json_object_object_add(u, "total_tokens", json_object_new_int(c->prompt_tokens + c->nwords));
    return u;
}

/* One choice: chat delta/message or completion text, with finish_reason. */
static json_object *choice(const be_call_t *c, const char *role, const char *text,
                           const char *finish, bool whole)
{
    json_object *ch = json_object_new_object();
    json_object_object_add(ch, "index", json_object_new_int(0));
    if (c->kind == KIND_CHAT) {
        json_object *d = json_object_new_object();
        if (role)
            json_object_object_add(d, "role", json_object_new_string(role));
        if (text)
            json_object_object_add(d, "content", json_object_new_string(text));
        json_object_object_add(ch, whole ? "message" : "delta", d);
    } else {
        json_object_object_add(ch, "text", json_object_new_string(text ? text : ""));
    }
    json_object_object_add(ch, "logprobs", NULL);
    json_object_object_add(ch, "finish_reason", finish ? json_object_new_string(finish) : NULL);
    return ch;
}

static json_object *chunk(const be_call_t *c, json_object *ch)
{
    const char *object = c->kind == KIND_CHAT ? "chat.completion.chunk" : "text_completion";
    json_object *o = shape_envelope(c->id, object, c->created, c->model);
    json_object *arr = json_object_new_array();
    if (ch)
        json_object_array_add(arr, ch);
    json_object_object_add(o, "choices", arr);
    return o;
}

/* Waits out the per-chunk delay, watching the client, but never longer than wait_ms:
 * returns false with ev set (PENDING, or ERROR when the client left) if not yet due. */
static bool wait_delay(be_call_t *c, be_event_t *ev, int wait_ms)
{
    if (c->delay_ms <= 0)
        return true;
    if (!c->due_ms)
        c->due_ms = (long long)clock_now_ms() + c->delay_ms;
    long long left = c->due_ms - (long long)clock_now_ms();
    if (left > 0) {
        struct pollfd p = {.fd = c->client_fd, .events = POLLRDHUP};
        if (poll(&p, c->client_fd >= 0 ? 1 : 0, (int)(left < wait_ms ? left : wait_ms)) > 0 &&
            (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "client disconnected");
            return false;
        }
        if (c->due_ms > (long long)clock_now_ms()) {
            ev->type = BE_EV_PENDING;
            return false;
        }
    }
    c->due_ms = 0;
    return true;
}

static void echo_next(be_call_t *c, be_event_t *ev, int wait_ms)
{
    memset(ev, 0, sizeof *ev);
    if (!c->stream) {
        if (c->stage > 0) {
            ev->type = BE_EV_END;
            return;
        }
        if (!wait_delay(c, ev, wait_ms))
            return;
        buf_t all = {0};
        for (int i = 0; i < c->nwords; i++)
            buf_appends(&all, c->words[i]);
        const char *object = c->kind == KIND_CHAT ? "chat.completion" : "text_completion";
        json_object *o = shape_envelope(c->id, object, c->created, c->model);
        json_object *arr = json_object_new_array();
        json_object_array_add(arr, choice(c, "assistant", all.data ? all.data : "", "stop", true));
        json_object_object_add(o, "choices", arr);
        json_object_object_add(o, "usage", usage_object(c));
        buf_free(&all);
        c->stage = 4;
        ev->type = BE_EV_RESPONSE;
        ev->obj = o;
        return;
    }
    ev->type = BE_EV_CHUNK;
    switch (c->stage) {
    case 0:
        c->stage = 1;
        if (c->kind == KIND_CHAT) {
            ev->obj = chunk(c, choice(c, "assistant", "", NULL, false));
            return;
        }
        /* completions have no role chunk */
        __attribute__((fallthrough));
    case 1:
        if (c->next_word < c->nwords) {
            if (!wait_delay(c, ev, wait_ms))
                return;
            ev->obj = chunk(c, choice(c, NULL, c->words[c->next_word++], NULL, false));
            return;
        }
        c->stage = 2;
        __attribute__((fallthrough));
    case 2:
        c->stage = c->want_usage ? 3 : 4;
        ev->obj = chunk(c, choice(c, NULL, c->kind == KIND_CHAT ? NULL : "", "stop", false));
        return;
    case 3:
        c->stage = 4;
        ev->obj = chunk(c, NULL);
        json_object_object_add(ev->obj, "usage", usage_object(c));
        return;
    default:
        ev->type = BE_EV_END;
    }
}

static void echo_close(be_call_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nwords; i++)
        free(c->words[i]);
    free(c->words);
    free(c->model);
    free(c);
}

const backend_ops_t be_echo_ops = {
    .type = {"echo", KIND_CHAT | KIND_COMPLETIONS | KIND_MESSAGES, CFG_URL_NONE},
    .open = echo_open,
    .next = echo_next,
    .close = echo_close,
};
