/* Anthropic Messages API backend: OpenAI chat requests become Messages calls, and
 * Messages answers and stream events become OpenAI completions and chunks as they
 * arrive. The HTTP side (keep-alive, timeouts, client watching, error mapping) is
 * the shared transport's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/prompt.h"
#include "worker/backend/http_backend.h"
#include "worker/oai/oai_shape.h"

#define DEFAULT_MAX_TOKENS 4096
#define MAX_TOOL_BLOCKS 64

struct be_call {
    hb_call_t *hb;
    json_object *body;            /* the Messages request (owned) */
    bool stream;
    bool want_usage;
    char *model;                  /* backend model (reported until message_start says otherwise) */
    char id[96];
    long created;
    long long input_tokens, output_tokens;
    const char *finish;           /* OpenAI finish_reason once known */
    int tool_index[MAX_TOOL_BLOCKS]; /* content block index -> OpenAI tool call index, -1: text */
    int ntools;
    bool tool_has_args[MAX_TOOL_BLOCKS]; /* a non-empty input_json_delta came for the block */
    bool ended;
    json_object *queued;          /* a second chunk produced by one event (owned) */
};

/* ---- request: OpenAI chat -> Messages ---- */

/* obj[key] as text (a string's value, other values as JSON), or dflt when the member is absent
 * or null: a null from a client or a backend must never reach strcmp or a string copy. */
static const char *member_str(json_object *obj, const char *key, const char *dflt)
{
    json_object *v;
    return json_object_object_get_ex(obj, key, &v) && v ? json_object_get_string(v) : dflt;
}

static json_object *text_block(const char *text)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("text"));
    json_object_object_add(b, "text", json_object_new_string(text));
    return b;
}

/* An OpenAI image_url part: data: URLs become base64 sources, others URL sources. */
static json_object *image_block(json_object *part)
{
    json_object *iu, *u;
    if (!json_object_object_get_ex(part, "image_url", &iu))
        return NULL;
    const char *url = json_object_object_get_ex(iu, "url", &u) ? json_object_get_string(u)
                      : json_object_is_type(iu, json_type_string) ? json_object_get_string(iu)
                                                                 : NULL;
    if (!url)
        return NULL;
    json_object *src = json_object_new_object();
    const char *comma = strchr(url, ',');
    if (strncmp(url, "data:", 5) == 0 && comma && strstr(url, ";base64,")) {
        const char *semi = strchr(url, ';');
        json_object_object_add(src, "type", json_object_new_string("base64"));
        json_object_object_add(src, "media_type", json_object_new_string_len(url + 5, (int)(semi - url - 5)));
        json_object_object_add(src, "data", json_object_new_string(comma + 1));
    } else {
        json_object_object_add(src, "type", json_object_new_string("url"));
        json_object_object_add(src, "url", json_object_new_string(url));
    }
    json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("image"));
    json_object_object_add(b, "source", src);
    return b;
}

/* The blocks of a user or assistant message. */
static json_object *content_blocks(json_object *msg, const char *role)
{
    json_object *blocks = json_object_new_array(), *content, *calls;
    if (json_object_object_get_ex(msg, "content", &content)) {
        if (json_object_is_type(content, json_type_string)) {
            if (json_object_get_string_len(content))
                json_object_array_add(blocks, text_block(json_object_get_string(content)));
        } else if (json_object_is_type(content, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(content); i++) {
                json_object *part = json_object_array_get_idx(content, i), *t;
                const char *ty = member_str(part, "type", "text");
                if (strcmp(ty, "text") == 0 && json_object_object_get_ex(part, "text", &t) && t)
                    json_object_array_add(blocks, text_block(json_object_get_string(t)));
                else if (strcmp(ty, "image_url") == 0) {
                    json_object *img = image_block(part);
                    if (img)
                        json_object_array_add(blocks, img);
                }
            }
        }
    }
    if (strcmp(role, "assistant") == 0 && json_object_object_get_ex(msg, "tool_calls", &calls) &&
        json_object_is_type(calls, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(calls); i++) {
            json_object *call = json_object_array_get_idx(calls, i), *fn, *args;
            json_object_object_get_ex(call, "function", &fn);
            json_object *b = json_object_new_object();
            json_object_object_add(b, "type", json_object_new_string("tool_use"));
            json_object_object_add(b, "id", json_object_new_string(member_str(call, "id", "toolu_0")));
            json_object_object_add(b, "name", json_object_new_string(fn ? member_str(fn, "name", "") : ""));
            json_object *input = NULL;
            if (fn && json_object_object_get_ex(fn, "arguments", &args) && json_object_is_type(args, json_type_string))
                input = shape_parse(json_object_get_string(args), (size_t)json_object_get_string_len(args));
            if (!json_object_is_type(input, json_type_object)) {
                json_object_put(input);
                input = json_object_new_object();
            }
            json_object_object_add(b, "input", input);
            json_object_array_add(blocks, b);
        }
    }
    return blocks;
}

/* Appends blocks to the last message if it has the same role (Anthropic wants turns to
 * alternate), else starts a new message. */
static void add_turn(json_object *messages, const char *role, json_object *blocks)
{
    size_t n = json_object_array_length(messages);
    if (json_object_array_length(blocks) == 0) {
        json_object_put(blocks);
        return;
    }
    if (n > 0) {
        json_object *last = json_object_array_get_idx(messages, n - 1), *r, *c;
        if (json_object_object_get_ex(last, "role", &r) && strcmp(json_object_get_string(r), role) == 0 &&
            json_object_object_get_ex(last, "content", &c)) {
            for (size_t i = 0; i < json_object_array_length(blocks); i++)
                json_object_array_add(c, json_object_get(json_object_array_get_idx(blocks, i)));
            json_object_put(blocks);
            return;
        }
    }
    json_object *m = json_object_new_object();
    json_object_object_add(m, "role", json_object_new_string(role));
    json_object_object_add(m, "content", blocks);
    json_object_array_add(messages, m);
}

static json_object *translate_tools(json_object *tools)
{
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(tools); i++) {
        json_object *t = json_object_array_get_idx(tools, i), *fn, *v;
        if (!json_object_object_get_ex(t, "function", &fn))
            continue;
        json_object *a = json_object_new_object();
        if (json_object_object_get_ex(fn, "name", &v))
            json_object_object_add(a, "name", json_object_get(v));
        if (json_object_object_get_ex(fn, "description", &v))
            json_object_object_add(a, "description", json_object_get(v));
        if (json_object_object_get_ex(fn, "parameters", &v))
            json_object_object_add(a, "input_schema", json_object_get(v));
        else
            json_object_object_add(a, "input_schema", json_tokener_parse("{\"type\":\"object\",\"properties\":{}}"));
        json_object_array_add(out, a);
    }
    return out;
}

static json_object *translate_tool_choice(json_object *tc)
{
    json_object *out = json_object_new_object(), *fn, *name;
    const char *s = json_object_is_type(tc, json_type_string) ? json_object_get_string(tc) : NULL;
    if (s) {
        json_object_object_add(out, "type", json_object_new_string(strcmp(s, "required") == 0 ? "any"
                                                                   : strcmp(s, "none") == 0   ? "none"
                                                                                              : "auto"));
    } else if (json_object_object_get_ex(tc, "function", &fn) && json_object_object_get_ex(fn, "name", &name)) {
        json_object_object_add(out, "type", json_object_new_string("tool"));
        json_object_object_add(out, "name", json_object_get(name));
    } else {
        json_object_object_add(out, "type", json_object_new_string("auto"));
    }
    return out;
}

static json_object *translate_request(const be_request_t *req)
{
    json_object *in = req->body, *out = json_object_new_object(), *messages = json_object_new_array(), *v;
    buf_t system = {0}, scratch = {0};
    json_object *msgs = NULL;
    json_object_object_get_ex(in, "messages", &msgs);
    size_t n = json_object_is_type(msgs, json_type_array) ? json_object_array_length(msgs) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(msgs, i);
        const char *role = member_str(m, "role", "user");
        json_object *content = NULL;
        json_object_object_get_ex(m, "content", &content);
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            if (system.len)
                buf_appends(&system, "\n\n");
            prompt_content_text(content, "\n", &system);
        } else if (strcmp(role, "tool") == 0) {
            json_object *b = json_object_new_object();
            json_object_object_add(b, "type", json_object_new_string("tool_result"));
            json_object_object_add(b, "tool_use_id", json_object_new_string(member_str(m, "tool_call_id", "")));
            buf_reset(&scratch);
            prompt_content_text(content, "\n", &scratch);
            json_object_object_add(b, "content", json_object_new_string(scratch.data ? scratch.data : ""));
            json_object *blocks = json_object_new_array();
            json_object_array_add(blocks, b);
            add_turn(messages, "user", blocks);
        } else {
            const char *r2 = strcmp(role, "assistant") == 0 ? "assistant" : "user";
            add_turn(messages, r2, content_blocks(m, r2));
        }
    }
    json_object_object_add(out, "model", json_object_new_string(req->backend_model));
    if (system.len)
        json_object_object_add(out, "system", json_object_new_string(system.data));
    json_object_object_add(out, "messages", messages);
    long long max_tokens = req->max_tokens > 0 ? req->max_tokens : DEFAULT_MAX_TOKENS;
    static const char *const max_keys[] = {"max_completion_tokens", "max_tokens"};
    for (int k = 0; k < 2; k++)
        if (json_object_object_get_ex(in, max_keys[k], &v) &&
            (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) &&
            json_object_get_double(v) >= 1) {
            max_tokens = (long long)json_object_get_double(v);
            break;
        }
    json_object_object_add(out, "max_tokens", json_object_new_int64(max_tokens));
    if (json_object_object_get_ex(in, "stop", &v) && v) {
        json_object *seqs = json_object_new_array();
        if (json_object_is_type(v, json_type_string))
            json_object_array_add(seqs, json_object_get(v));
        else if (json_object_is_type(v, json_type_array))
            for (size_t i = 0; i < json_object_array_length(v); i++)
                json_object_array_add(seqs, json_object_get(json_object_array_get_idx(v, i)));
        json_object_object_add(out, "stop_sequences", seqs);
    }
    if (json_object_object_get_ex(in, "temperature", &v) &&
        (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) {
        double t = json_object_get_double(v); /* OpenAI allows 0-2, Anthropic 0-1 */
        json_object_object_add(out, "temperature", json_object_new_double(t < 0 ? 0 : t > 1 ? 1 : t));
    }
    if (json_object_object_get_ex(in, "top_p", &v) &&
        (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        json_object_object_add(out, "top_p", json_object_get(v));
    if (json_object_object_get_ex(in, "user", &v) && json_object_is_type(v, json_type_string)) {
        json_object *md = json_object_new_object();
        json_object_object_add(md, "user_id", json_object_get(v));
        json_object_object_add(out, "metadata", md);
    }
    if (json_object_object_get_ex(in, "tools", &v) && json_object_is_type(v, json_type_array) &&
        json_object_array_length(v) > 0)
        json_object_object_add(out, "tools", translate_tools(v));
    if (json_object_object_get_ex(in, "tool_choice", &v) && v && json_object_object_get_ex(out, "tools", NULL))
        json_object_object_add(out, "tool_choice", translate_tool_choice(v)); /* Anthropic refuses it without tools */
    if (req->stream)
        json_object_object_add(out, "stream", json_object_new_boolean(1));
    buf_free(&system);
    buf_free(&scratch);
    return out;
}

/* ---- answer: Messages -> OpenAI ---- */

static const char *finish_reason(const char *stop)
{
    if (!stop)
        return "stop";
    if (strcmp(stop, "max_tokens") == 0 || strcmp(stop, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

static json_object *usage(long long in, long long out)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "prompt_tokens", json_object_new_int64(in));
    json_object_object_add(u, "completion_tokens", json_object_new_int64(out));
    json_object_object_add(u, "total_tokens", json_object_new_int64(in + out));
    return u;
}

static void read_usage(be_call_t *c, json_object *u)
{
    json_object *v;
    if (json_object_object_get_ex(u, "input_tokens", &v) && json_object_get_int64(v) > 0)
        c->input_tokens = json_object_get_int64(v);
    if (json_object_object_get_ex(u, "output_tokens", &v))
        c->output_tokens = json_object_get_int64(v); /* cumulative */
}

static void read_identity(be_call_t *c, json_object *msg)
{
    json_object *v;
    if (json_object_object_get_ex(msg, "id", &v) && json_object_is_type(v, json_type_string))
        snprintf(c->id, sizeof c->id, "chatcmpl-%s", json_object_get_string(v));
    if (json_object_object_get_ex(msg, "model", &v) && json_object_is_type(v, json_type_string)) {
        free(c->model);
        c->model = strdup(json_object_get_string(v));
    }
}

static json_object *translate_message(be_call_t *c, json_object *msg)
{
    json_object *content, *v;
    read_identity(c, msg);
    if (json_object_object_get_ex(msg, "usage", &v))
        read_usage(c, v);
    buf_t text = {0};
    json_object *tools = json_object_new_array();
    if (json_object_object_get_ex(msg, "content", &content) && json_object_is_type(content, json_type_array))
        for (size_t i = 0; i < json_object_array_length(content); i++) {
            json_object *b = json_object_array_get_idx(content, i), *t;
            const char *ty = member_str(b, "type", "");
            if (strcmp(ty, "text") == 0 && json_object_object_get_ex(b, "text", &t) && t)
                buf_appends(&text, json_object_get_string(t));
            else if (strcmp(ty, "tool_use") == 0) {
                json_object *call = json_object_new_object(), *fn = json_object_new_object(), *id, *name, *input;
                json_object_object_add(call, "id", json_object_object_get_ex(b, "id", &id) ? json_object_get(id) : NULL);
                json_object_object_add(call, "type", json_object_new_string("function"));
                json_object_object_add(fn, "name", json_object_object_get_ex(b, "name", &name) ? json_object_get(name) : NULL);
                json_object_object_add(fn, "arguments", json_object_new_string(
                                                            json_object_object_get_ex(b, "input", &input)
                                                                ? json_object_to_json_string_ext(input, JSON_C_TO_STRING_PLAIN)
                                                                : "{}"));
                json_object_object_add(call, "function", fn);
                json_object_array_add(tools, call);
            }
        }
    json_object *m = json_object_new_object();
    json_object_object_add(m, "role", json_object_new_string("assistant"));
    bool has_tools = json_object_array_length(tools) > 0;
    json_object_object_add(m, "content", text.len || !has_tools ? json_object_new_string(text.data ? text.data : "") : NULL);
    if (has_tools)
        json_object_object_add(m, "tool_calls", tools);
    else
        json_object_put(tools);
    buf_free(&text);
    json_object *choice = json_object_new_object();
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(choice, "message", m);
    json_object_object_add(choice, "logprobs", NULL);
    json_object_object_add(choice, "finish_reason",
                           json_object_new_string(finish_reason(json_object_object_get_ex(msg, "stop_reason", &v)
                                                                    ? json_object_get_string(v) : NULL)));
    json_object *o = shape_envelope(c->id, "chat.completion", c->created, c->model);
    json_object *choices = json_object_new_array();
    json_object_array_add(choices, choice);
    json_object_object_add(o, "choices", choices);
    json_object_object_add(o, "usage", usage(c->input_tokens, c->output_tokens));
    return o;
}

/* A chat.completion.chunk with one choice built from delta (owned) and finish. */
static json_object *chunk(be_call_t *c, json_object *delta, const char *finish)
{
    json_object *o = shape_envelope(c->id, "chat.completion.chunk", c->created, c->model);
    json_object *choice = json_object_new_object();
    json_object *choices = json_object_new_array();
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(choice, "delta", delta);
    json_object_object_add(choice, "logprobs", NULL);
    json_object_object_add(choice, "finish_reason", finish ? json_object_new_string(finish) : NULL);
    json_object_array_add(choices, choice);
    json_object_object_add(o, "choices", choices);
    return o;
}

static json_object *tool_delta(int index, json_object *id, json_object *name, const char *args)
{
    json_object *delta = json_object_new_object(), *calls = json_object_new_array(), *call = json_object_new_object();
    json_object *fn = json_object_new_object();
    json_object_object_add(call, "index", json_object_new_int(index));
    if (id) {
        json_object_object_add(call, "id", json_object_get(id));
        json_object_object_add(call, "type", json_object_new_string("function"));
    }
    if (name)
        json_object_object_add(fn, "name", json_object_get(name));
    json_object_object_add(fn, "arguments", json_object_new_string(args));
    json_object_object_add(call, "function", fn);
    json_object_array_add(calls, call);
    json_object_object_add(delta, "tool_calls", calls);
    return delta;
}

/* One stream event -> at most one OpenAI chunk (a second one waits in c->queued).
 * Returns NULL for events that produce nothing (ping, block stops...). */
static json_object *translate_event(be_call_t *c, json_object *evj)
{
    json_object *v, *d;
    const char *t = member_str(evj, "type", "");
    if (strcmp(t, "message_start") == 0) {
        if (json_object_object_get_ex(evj, "message", &v)) {
            read_identity(c, v);
            if (json_object_object_get_ex(v, "usage", &d))
                read_usage(c, d);
        }
        json_object *delta = json_object_new_object();
        json_object_object_add(delta, "role", json_object_new_string("assistant"));
        json_object_object_add(delta, "content", json_object_new_string(""));
        return chunk(c, delta, NULL);
    }
    if (strcmp(t, "content_block_start") == 0) {
        json_object *block, *idx;
        int bi = json_object_object_get_ex(evj, "index", &idx) ? json_object_get_int(idx) : 0;
        if (!json_object_object_get_ex(evj, "content_block", &block) ||
            strcmp(member_str(block, "type", ""), "tool_use") != 0)
            return NULL;
        if (bi < 0 || bi >= MAX_TOOL_BLOCKS)
            return NULL;
        c->tool_index[bi] = c->ntools++;
        json_object *id = NULL, *name = NULL;
        json_object_object_get_ex(block, "id", &id);
        json_object_object_get_ex(block, "name", &name);
        return chunk(c, tool_delta(c->tool_index[bi], id, name, ""), NULL);
    }
    if (strcmp(t, "content_block_delta") == 0) {
        json_object *idx, *text;
        int bi = json_object_object_get_ex(evj, "index", &idx) ? json_object_get_int(idx) : 0;
        if (!json_object_object_get_ex(evj, "delta", &d))
            return NULL;
        const char *dt = member_str(d, "type", "");
        if (strcmp(dt, "text_delta") == 0 && json_object_object_get_ex(d, "text", &text) && text) {
            json_object *delta = json_object_new_object();
            json_object_object_add(delta, "content", json_object_get(text));
            return chunk(c, delta, NULL);
        }
        if (strcmp(dt, "input_json_delta") == 0 && json_object_object_get_ex(d, "partial_json", &text) && text && bi >= 0 &&
            bi < MAX_TOOL_BLOCKS && c->tool_index[bi] >= 0) {
            if (!json_object_get_string_len(text))
                return NULL; /* the empty delta that opens every tool input */
            c->tool_has_args[bi] = true;
            return chunk(c, tool_delta(c->tool_index[bi], NULL, NULL, json_object_get_string(text)), NULL);
        }
        return NULL; /* thinking deltas and the like have no OpenAI counterpart */
    }
    if (strcmp(t, "content_block_stop") == 0) {
        /* A tool called without arguments streams no JSON at all; OpenAI's arguments are "{}",
         * as in a whole answer, so that clients can parse them. */
        json_object *idx;
        int bi = json_object_object_get_ex(evj, "index", &idx) ? json_object_get_int(idx) : 0;
        if (bi < 0 || bi >= MAX_TOOL_BLOCKS || c->tool_index[bi] < 0 || c->tool_has_args[bi])
            return NULL;
        c->tool_has_args[bi] = true;
        return chunk(c, tool_delta(c->tool_index[bi], NULL, NULL, "{}"), NULL);
    }
    if (strcmp(t, "message_delta") == 0) {
        if (json_object_object_get_ex(evj, "delta", &d) && json_object_object_get_ex(d, "stop_reason", &v) && v)
            c->finish = finish_reason(json_object_get_string(v));
        if (json_object_object_get_ex(evj, "usage", &v))
            read_usage(c, v);
        return NULL;
    }
    if (strcmp(t, "message_stop") == 0) {
        c->ended = true;
        if (c->want_usage) {
            c->queued = shape_envelope(c->id, "chat.completion.chunk", c->created, c->model);
            json_object_object_add(c->queued, "choices", json_object_new_array());
            json_object_object_add(c->queued, "usage", usage(c->input_tokens, c->output_tokens));
        }
        return chunk(c, json_object_new_object(), c->finish ? c->finish : "stop");
    }
    return NULL; /* ping, unknown future events */
}

/* ---- backend interface ---- */

static be_call_t *anthropic_open(const be_request_t *req, be_event_t *ev)
{
    if (be_refuse_many_choices(req, ev, "Anthropic"))
        return NULL;
    be_call_t *c = calloc(1, sizeof *c);
    if (!c) {
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter is out of memory.");
        return NULL;
    }
    c->stream = req->stream;
    c->want_usage = req->want_usage;
    c->model = strdup(req->backend_model);
    c->created = (long)time(NULL);
    snprintf(c->id, sizeof c->id, "chatcmpl-anthropic");
    for (int i = 0; i < MAX_TOOL_BLOCKS; i++)
        c->tool_index[i] = -1;
    c->body = translate_request(req);
    static const char *const headers[] = {"anthropic-version: " ANTHROPIC_VERSION, NULL};
    hb_options_t opt = {.path = "/messages", .headers = headers, .key_header = "x-api-key", .body = c->body};
    c->hb = hb_open(req, &opt, ev);
    if (!c->hb) {
        json_object_put(c->body);
        free(c->model);
        free(c);
        return NULL;
    }
    return c;
}

static void anthropic_next(be_call_t *c, be_event_t *ev, int wait_ms)
{
    for (;;) {
        if (c->queued) {
            memset(ev, 0, sizeof *ev);
            ev->type = BE_EV_CHUNK;
            ev->obj = c->queued;
            c->queued = NULL;
            return;
        }
        if (c->ended) {
            memset(ev, 0, sizeof *ev);
            ev->type = BE_EV_END;
            return;
        }
        hb_next(c->hb, ev, wait_ms);
        if (ev->type == BE_EV_RESPONSE) {
            json_object *msg = ev->obj;
            ev->obj = translate_message(c, msg);
            json_object_put(msg);
            c->ended = true;
            return;
        }
        if (ev->type == BE_EV_END && c->stream) /* the connection closed before message_stop */
            be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                           "The model's backend ended the stream early.");
        if (ev->type == BE_EV_ERROR && strcmp(ev->err_type, "overloaded_error") == 0) {
            /* The overload a 529 reports, told inside a stream: answered (and retried) the same way. */
            int retry_after_s = ev->retry_after_s;
            be_event_error(ev, BE_ERR_HTTP_5XX, 503, "server_error", "backend_overloaded",
                           "The model's backend is overloaded; try again shortly.");
            ev->retry_after_s = retry_after_s;
        }
        if (ev->type != BE_EV_CHUNK)
            return; /* PENDING, END, ERROR */
        json_object *out = translate_event(c, ev->obj);
        json_object_put(ev->obj);
        ev->obj = out;
        if (out)
            return;
        /* ping, block stops...: nothing to show, take the next event */
    }
}

static void anthropic_close(be_call_t *c)
{
    if (!c)
        return;
    hb_close(c->hb);
    json_object_put(c->body);
    json_object_put(c->queued);
    free(c->model);
    free(c);
}

/* The Messages API relayed as bytes (worker/http/messages.c): the key goes in x-api-key, and an
 * anthropic-version goes along unless the caller's headers carry the client's own. */
static be_call_t *anthropic_open_raw(const be_raw_request_t *req, be_event_t *ev)
{
    const char *headers[12];
    int n = 0;
    bool has_version = false;
    for (int i = 0; req->extra_headers && req->extra_headers[i] && n < 10; i++) {
        has_version |= strncasecmp(req->extra_headers[i], "anthropic-version:", 18) == 0;
        headers[n++] = req->extra_headers[i];
    }
    if (!has_version)
        headers[n++] = "anthropic-version: " ANTHROPIC_VERSION;
    headers[n] = NULL;
    be_raw_request_t r = *req;
    r.extra_headers = headers;
    r.key_header = "x-api-key";
    be_call_t *c = calloc(1, sizeof *c);
    if (!c) {
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter is out of memory.");
        return NULL;
    }
    c->hb = hb_open_raw(&r, ev); /* copies the header lines */
    if (!c->hb) {
        free(c);
        return NULL;
    }
    return c;
}

static void anthropic_next_raw(be_call_t *c, be_event_t *ev, int wait_ms) { hb_next_raw(c->hb, ev, wait_ms); }

const backend_ops_t be_anthropic_ops = {
    .open_raw = anthropic_open_raw,
    .next_raw = anthropic_next_raw,
    .type = {"anthropic", KIND_CHAT | KIND_MESSAGES, CFG_URL_HTTP},
    .worker_init = hb_worker_init,
    .worker_cleanup = hb_worker_cleanup,
    .open = anthropic_open,
    .next = anthropic_next,
    .close = anthropic_close,
};
