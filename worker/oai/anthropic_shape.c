/* Messages API <-> OpenAI chat, both ways, and Anthropic's error shape. Pure JSON work. */
#include "worker/oai/anthropic_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rand_id.h"

/* ---- errors ---- */

const char *ashape_error_type(int status, int *out_status)
{
    *out_status = status;
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: *out_status = 529; return "overloaded_error";
    default: break;
    }
    if (status >= 500) {
        *out_status = 500;
        return "api_error";
    }
    return "invalid_request_error";
}

int ashape_error_format(buf_t *out, const char *type, const char *message)
{
    if (buf_appends(out, "{\"type\":\"error\",\"error\":{\"type\":") < 0 || buf_append_json_string(out, type) < 0 ||
        buf_appends(out, ",\"message\":") < 0 || buf_append_json_string(out, message ? message : "") < 0 ||
        buf_appends(out, "}}") < 0)
        return -1;
    return 0;
}

/* ---- small JSON helpers ---- */

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v = get(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool is_str(json_object *v) { return v && json_object_is_type(v, json_type_string); }
static bool is_arr(json_object *v) { return v && json_object_is_type(v, json_type_array); }
static bool is_obj(json_object *v) { return v && json_object_is_type(v, json_type_object); }

#define FAIL(p, ...)                                                                                                   \
    do {                                                                                                               \
        snprintf(err, errlen, __VA_ARGS__);                                                                            \
        *param = (p);                                                                                                  \
        goto bad;                                                                                                      \
    } while (0)

static json_object *image_part(json_object *blk);

/* The text of a tool_result's content (a string or text blocks; its image blocks, when images is
 * not NULL, go to *images as image_url parts). NULL when it holds other blocks. */
static char *tool_result_text(json_object *content, json_object **images)
{
    buf_t b = {0};
    if (!content)
        return strdup("");
    if (is_str(content))
        return strdup(json_object_get_string(content));
    if (!is_arr(content))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(content); i++) {
        json_object *blk = json_object_array_get_idx(content, i), *img;
        const char *type = get_str(blk, "type"), *text = get_str(blk, "text");
        if (images && type && strcmp(type, "image") == 0 && (img = image_part(blk))) {
            if (!*images)
                *images = json_object_new_array();
            json_object_array_add(*images, img);
            continue;
        }
        if (!type || strcmp(type, "text") != 0 || !text) {
            buf_free(&b);
            return NULL;
        }
        if (b.len)
            buf_appends(&b, "\n");
        buf_appends(&b, text);
    }
    return b.data ? b.data : strdup("");
}

/* An image block as an OpenAI image_url part, or NULL if its source is not one we know. */
static json_object *image_part(json_object *blk)
{
    json_object *src = get(blk, "source");
    const char *st = get_str(src, "type"), *url = NULL;
    char *data_url = NULL;
    if (st && strcmp(st, "base64") == 0 && get_str(src, "media_type") && get_str(src, "data")) {
        size_t n = strlen(get_str(src, "media_type")) + strlen(get_str(src, "data")) + 16;
        data_url = malloc(n);
        if (!data_url)
            return NULL;
        snprintf(data_url, n, "data:%s;base64,%s", get_str(src, "media_type"), get_str(src, "data"));
        url = data_url;
    } else if (st && strcmp(st, "url") == 0 && get_str(src, "url")) {
        url = get_str(src, "url");
    } else {
        return NULL;
    }
    json_object *part = json_object_new_object(), *iu = json_object_new_object();
    json_object_object_add(iu, "url", json_object_new_string(url));
    json_object_object_add(part, "type", json_object_new_string("image_url"));
    json_object_object_add(part, "image_url", iu);
    free(data_url);
    return part;
}

/* Appends the OpenAI messages for one Messages turn. Returns 0, or -1 with err set. */
static int add_turn(json_object *out, json_object *turn, size_t idx, char *err, size_t errlen, const char **param)
{
    const char *role = get_str(turn, "role");
    json_object *content = get(turn, "content");
    json_object *parts = NULL, *tool_calls = NULL;
    buf_t text = {0};
    bool only_text = true;
    if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
        FAIL("messages", "messages.%zu.role: must be \"user\" or \"assistant\"", idx);
    bool assistant = strcmp(role, "assistant") == 0;
    if (is_str(content)) {
        json_object *m = json_object_new_object();
        json_object_object_add(m, "role", json_object_new_string(role));
        json_object_object_add(m, "content", json_object_get(content));
        json_object_array_add(out, m);
        return 0;
    }
    if (!is_arr(content))
        FAIL("messages", "messages.%zu.content: must be a string or an array of content blocks", idx);
    parts = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(content); i++) {
        json_object *blk = json_object_array_get_idx(content, i);
        const char *type = get_str(blk, "type");
        if (!type)
            FAIL("messages", "messages.%zu.content.%zu.type: Field required", idx, i);
        if (strcmp(type, "text") == 0) {
            const char *t = get_str(blk, "text");
            if (!t)
                FAIL("messages", "messages.%zu.content.%zu.text: Field required", idx, i);
            json_object *p = json_object_new_object();
            json_object_object_add(p, "type", json_object_new_string("text"));
            json_object_object_add(p, "text", json_object_new_string(t));
            json_object_array_add(parts, p);
            if (text.len)
                buf_appends(&text, "\n");
            buf_appends(&text, t);
        } else if (strcmp(type, "image") == 0 && !assistant) {
            json_object *p = image_part(blk);
            if (!p)
                FAIL("messages", "messages.%zu.content.%zu.source: an image needs a base64 or url source", idx, i);
            json_object_array_add(parts, p);
            only_text = false;
        } else if (strcmp(type, "tool_use") == 0 && assistant) {
            const char *id = get_str(blk, "id"), *name = get_str(blk, "name");
            json_object *input = get(blk, "input");
            if (!id || !name)
                FAIL("messages", "messages.%zu.content.%zu: a tool_use block needs an id and a name", idx, i);
            json_object *call = json_object_new_object(), *fn = json_object_new_object();
            json_object_object_add(fn, "name", json_object_new_string(name));
            json_object_object_add(fn, "arguments", json_object_new_string(
                                                        input ? json_object_to_json_string_ext(input, JSON_C_TO_STRING_PLAIN) : "{}"));
            json_object_object_add(call, "id", json_object_new_string(id));
            json_object_object_add(call, "type", json_object_new_string("function"));
            json_object_object_add(call, "function", fn);
            if (!tool_calls)
                tool_calls = json_object_new_array();
            json_object_array_add(tool_calls, call);
        } else if (strcmp(type, "tool_result") == 0 && !assistant) {
            const char *id = get_str(blk, "tool_use_id");
            json_object *is_error = get(blk, "is_error");
            json_object *images = NULL;
            char *t = tool_result_text(get(blk, "content"), &images);
            if (!id || !t) {
                free(t);
                json_object_put(images);
                FAIL("messages", "messages.%zu.content.%zu: a tool_result needs a tool_use_id and text or image "
                                 "content (this model's backend takes no other blocks in tool results)", idx, i);
            }
            /* A tool message carries text only: its images follow in the user's part of the turn. */
            for (size_t k = 0; images && k < json_object_array_length(images); k++) {
                json_object_array_add(parts, json_object_get(json_object_array_get_idx(images, k)));
                only_text = false;
            }
            json_object_put(images);
            json_object *m = json_object_new_object();
            json_object_object_add(m, "role", json_object_new_string("tool"));
            json_object_object_add(m, "tool_call_id", json_object_new_string(id));
            if (is_error && json_object_get_boolean(is_error)) {
                size_t n = strlen(t) + 16;
                char *e = malloc(n);
                if (e) {
                    snprintf(e, n, "Error: %s", t);
                    json_object_object_add(m, "content", json_object_new_string(e));
                    free(e);
                }
            } else {
                json_object_object_add(m, "content", json_object_new_string(t));
            }
            free(t);
            /* Tool answers go first: OpenAI wants them right after the assistant's calls. */
            json_object_array_add(out, m);
        } else if (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0) {
            /* the model's earlier reasoning: a chat backend takes none back */
        } else {
            FAIL("messages", "messages.%zu.content.%zu.type: '%.40s' blocks are not supported by this model's backend",
                 idx, i, type);
        }
    }
    if (json_object_array_length(parts) > 0 || tool_calls) {
        json_object *m = json_object_new_object();
        json_object_object_add(m, "role", json_object_new_string(role));
        if (assistant || only_text)
            json_object_object_add(m, "content", text.len || !tool_calls ? json_object_new_string(text.data ? text.data : "")
                                                                          : NULL);
        else
            json_object_object_add(m, "content", json_object_get(parts));
        if (tool_calls)
            json_object_object_add(m, "tool_calls", tool_calls);
        tool_calls = NULL;
        json_object_array_add(out, m);
    }
    json_object_put(parts);
    buf_free(&text);
    return 0;
bad:
    json_object_put(parts);
    json_object_put(tool_calls);
    buf_free(&text);
    return -1;
}

/* Anthropic's tools as OpenAI function tools. */
static json_object *tools_to_chat(json_object *tools, char *err, size_t errlen, const char **param)
{
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(tools); i++) {
        json_object *t = json_object_array_get_idx(tools, i);
        const char *type = get_str(t, "type"), *name = get_str(t, "name");
        if (type && strcmp(type, "custom") != 0)
            FAIL("tools", "tools.%zu: the server tool '%.60s' is not supported by this model's backend", i, type);
        if (!name)
            FAIL("tools", "tools.%zu.name: Field required", i);
        json_object *schema = get(t, "input_schema");
        if (!is_obj(schema))
            FAIL("tools", "tools.%zu.input_schema: Field required", i);
        json_object *fn = json_object_new_object(), *tool = json_object_new_object();
        json_object_object_add(fn, "name", json_object_new_string(name));
        if (get_str(t, "description"))
            json_object_object_add(fn, "description", json_object_new_string(get_str(t, "description")));
        json_object_object_add(fn, "parameters", json_object_get(schema));
        json_object_object_add(tool, "type", json_object_new_string("function"));
        json_object_object_add(tool, "function", fn);
        json_object_array_add(out, tool);
    }
    return out;
bad:
    json_object_put(out);
    return NULL;
}

json_object *ashape_to_chat(json_object *req, char *err, size_t errlen, const char **param)
{
    json_object *out = json_object_new_object(), *messages = json_object_new_array(), *v;
    json_object_object_add(out, "messages", messages);
    *param = NULL;
    static const char *const refused[] = {"mcp_servers", "container", NULL};
    for (int i = 0; refused[i]; i++)
        if (get(req, refused[i]))
            FAIL(refused[i], "%s: not supported by this model's backend", refused[i]);
    if ((v = get(req, "model")))
        json_object_object_add(out, "model", json_object_get(v));
    v = get(req, "max_tokens");
    if (!v || !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)
        FAIL("max_tokens", "max_tokens: %s", v ? "must be an integer of 1 or more" : "Field required");
    json_object_object_add(out, "max_tokens", json_object_get(v));

    json_object *system = get(req, "system");
    if (system) {
        char *text = is_str(system) ? strdup(json_object_get_string(system)) : tool_result_text(system, NULL);
        if (!text)
            FAIL("system", "system: must be a string or an array of text blocks");
        if (text[0]) {
            json_object *m = json_object_new_object();
            json_object_object_add(m, "role", json_object_new_string("system"));
            json_object_object_add(m, "content", json_object_new_string(text));
            json_object_array_add(messages, m);
        }
        free(text);
    }
    json_object *turns = get(req, "messages");
    if (!is_arr(turns) || json_object_array_length(turns) == 0)
        FAIL("messages", "messages: %s", turns ? "must be a non-empty array" : "Field required");
    for (size_t i = 0; i < json_object_array_length(turns); i++)
        if (add_turn(messages, json_object_array_get_idx(turns, i), i, err, errlen, param) < 0)
            goto bad;

    static const char *const numbers[] = {"temperature", "top_p", NULL};
    for (int i = 0; numbers[i]; i++)
        if ((v = get(req, numbers[i]))) {
            if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
                FAIL(numbers[i], "%s: must be a number", numbers[i]);
            json_object_object_add(out, numbers[i], json_object_get(v));
        }
    if ((v = get(req, "top_k"))) {
        if (!json_object_is_type(v, json_type_int))
            FAIL("top_k", "top_k: must be an integer");
        json_object_object_add(out, "top_k", json_object_get(v));
    }
    if ((v = get(req, "stop_sequences"))) {
        if (!is_arr(v))
            FAIL("stop_sequences", "stop_sequences: must be an array of strings");
        for (size_t i = 0; i < json_object_array_length(v); i++)
            if (!is_str(json_object_array_get_idx(v, i)))
                FAIL("stop_sequences", "stop_sequences.%zu: must be a string", i);
        if (json_object_array_length(v) > 0)
            json_object_object_add(out, "stop", json_object_get(v));
    }
    if ((v = get(req, "stream"))) {
        if (!json_object_is_type(v, json_type_boolean))
            FAIL("stream", "stream: must be a boolean");
        json_object_object_add(out, "stream", json_object_get(v));
    }
    if (get_str(get(req, "metadata"), "user_id"))
        json_object_object_add(out, "user", json_object_new_string(get_str(get(req, "metadata"), "user_id")));
    json_object *tools = get(req, "tools");
    if (tools) {
        if (!is_arr(tools))
            FAIL("tools", "tools: must be an array");
        json_object *t = tools_to_chat(tools, err, errlen, param);
        if (!t)
            goto bad;
        if (json_object_array_length(t) > 0)
            json_object_object_add(out, "tools", t);
        else
            json_object_put(t);
    }
    json_object *choice = get(req, "tool_choice");
    if (choice) {
        const char *type = get_str(choice, "type");
        if (!type)
            FAIL("tool_choice", "tool_choice.type: Field required");
        if (strcmp(type, "auto") == 0) {
            json_object_object_add(out, "tool_choice", json_object_new_string("auto"));
        } else if (strcmp(type, "any") == 0) {
            json_object_object_add(out, "tool_choice", json_object_new_string("required"));
        } else if (strcmp(type, "none") == 0) {
            json_object_object_add(out, "tool_choice", json_object_new_string("none"));
        } else if (strcmp(type, "tool") == 0 && get_str(choice, "name")) {
            json_object *c = json_object_new_object(), *fn = json_object_new_object();
            json_object_object_add(fn, "name", json_object_new_string(get_str(choice, "name")));
            json_object_object_add(c, "type", json_object_new_string("function"));
            json_object_object_add(c, "function", fn);
            json_object_object_add(out, "tool_choice", c);
        } else {
            FAIL("tool_choice", "tool_choice: type must be auto, any, none or tool (with a name)");
        }
        json_object *dp = get(choice, "disable_parallel_tool_use");
        if (dp && json_object_get_boolean(dp) && get(out, "tools"))
            json_object_object_add(out, "parallel_tool_calls", json_object_new_boolean(0));
    }
    return out;
bad:
    json_object_put(out);
    return NULL;
}

/* ---- token estimate ---- */

static size_t text_bytes(json_object *v)
{
    if (!v)
        return 0;
    if (is_str(v))
        return (size_t)json_object_get_string_len(v);
    size_t n = 0;
    if (is_arr(v)) {
        for (size_t i = 0; i < json_object_array_length(v); i++)
            n += text_bytes(json_object_array_get_idx(v, i));
    } else if (is_obj(v)) {
        json_object_object_foreach(v, key, val)
        {
            if (strcmp(key, "data") == 0 && is_str(val)) /* image bytes: a flat cost below */
                n += 1000 * 4;
            else if (strcmp(key, "type") != 0 && strcmp(key, "cache_control") != 0)
                n += text_bytes(val);
        }
    }
    return n;
}

long long ashape_estimate_tokens(json_object *req)
{
    size_t bytes = text_bytes(get(req, "system")) + text_bytes(get(req, "messages"));
    json_object *tools = get(req, "tools");
    if (tools)
        bytes += strlen(json_object_to_json_string_ext(tools, JSON_C_TO_STRING_PLAIN));
    return (long long)((bytes + 3) / 4) + 3 * (long long)(is_arr(get(req, "messages"))
                                                               ? json_object_array_length(get(req, "messages"))
                                                               : 0);
}

/* ---- answers ---- */

static void new_message_id(char *id, size_t n)
{
    char hex[33];
    rand_id_hex(hex, 12);
    snprintf(id, n, "msg_%s", hex);
}

/* A tool_use block for an OpenAI tool call, with input (owned, taken). A call without an id
 * gets a fresh one, since Anthropic clients answer a tool_use by its id. */
static json_object *tool_use_block(json_object *call, json_object *input)
{
    char idbuf[48];
    const char *id = get_str(call, "id"), *name = get_str(get(call, "function"), "name");
    if (!id) {
        char hex[25];
        rand_id_hex(hex, 12);
        snprintf(idbuf, sizeof idbuf, "toolu_%s", hex);
        id = idbuf;
    }
    json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("tool_use"));
    json_object_object_add(b, "id", json_object_new_string(id));
    json_object_object_add(b, "name", json_object_new_string(name ? name : ""));
    json_object_object_add(b, "input", input);
    return b;
}

/* stop_reason for an OpenAI finish_reason; *stop_seq set when a stop sequence is known to have
 * ended it (vLLM reports the matched string as choices[].stop_reason). */
static const char *stop_reason(const char *finish, json_object *choice, json_object *stop_sequences,
                               const char **stop_seq)
{
    *stop_seq = NULL;
    if (!finish)
        return "end_turn";
    if (strcmp(finish, "length") == 0)
        return "max_tokens";
    if (strcmp(finish, "tool_calls") == 0 || strcmp(finish, "function_call") == 0)
        return "tool_use";
    if (strcmp(finish, "content_filter") == 0)
        return "refusal";
    const char *matched = get_str(choice, "stop_reason");
    if (matched && is_arr(stop_sequences))
        for (size_t i = 0; i < json_object_array_length(stop_sequences); i++)
            if (is_str(json_object_array_get_idx(stop_sequences, i)) &&
                strcmp(json_object_get_string(json_object_array_get_idx(stop_sequences, i)), matched) == 0) {
                *stop_seq = matched;
                return "stop_sequence";
            }
    return "end_turn";
}

static json_object *usage_object(long long in, long long out)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "input_tokens", json_object_new_int64(in > 0 ? in : 0));
    json_object_object_add(u, "output_tokens", json_object_new_int64(out > 0 ? out : 0));
    return u;
}

static long long usage_field(json_object *obj, const char *key)
{
    json_object *v = get(get(obj, "usage"), key);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

json_object *ashape_from_completion(json_object *completion, const char *model, json_object *stop_sequences,
                                    char *err, size_t errlen)
{
    json_object *choices = get(completion, "choices");
    json_object *choice = is_arr(choices) && json_object_array_length(choices) ? json_object_array_get_idx(choices, 0)
                                                                               : NULL;
    json_object *msg = get(choice, "message"), *content = json_object_new_array();
    const char *text = get_str(msg, "content");
    if (text && text[0]) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "type", json_object_new_string("text"));
        json_object_object_add(b, "text", json_object_new_string(text));
        json_object_array_add(content, b);
    }
    json_object *calls = get(msg, "tool_calls");
    for (size_t i = 0; is_arr(calls) && i < json_object_array_length(calls); i++) {
        json_object *call = json_object_array_get_idx(calls, i), *fn = get(call, "function");
        const char *args = get_str(fn, "arguments");
        json_object *input = args && args[0] ? json_tokener_parse(args) : json_object_new_object();
        if (!is_obj(input)) {
            json_object_put(input);
            json_object_put(content);
            snprintf(err, errlen, "The model produced tool arguments that are not a JSON object.");
            return NULL;
        }
        json_object_array_add(content, tool_use_block(call, input));
    }
    if (json_object_array_length(content) == 0) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "type", json_object_new_string("text"));
        json_object_object_add(b, "text", json_object_new_string(""));
        json_object_array_add(content, b);
    }
    const char *seq;
    const char *reason = stop_reason(get_str(choice, "finish_reason"), choice, stop_sequences, &seq);
    char id[40];
    new_message_id(id, sizeof id);
    json_object *m = json_object_new_object();
    json_object_object_add(m, "id", json_object_new_string(id));
    json_object_object_add(m, "type", json_object_new_string("message"));
    json_object_object_add(m, "role", json_object_new_string("assistant"));
    json_object_object_add(m, "model", json_object_new_string(model));
    json_object_object_add(m, "content", content);
    json_object_object_add(m, "stop_reason", json_object_new_string(reason));
    json_object_object_add(m, "stop_sequence", seq ? json_object_new_string(seq) : NULL);
    json_object_object_add(m, "usage", usage_object(usage_field(completion, "prompt_tokens"),
                                                    usage_field(completion, "completion_tokens")));
    return m;
}

/* ---- stream ---- */

static void emit(buf_t *out, const char *event, json_object *data)
{
    buf_appends(out, "event: ");
    buf_appends(out, event);
    buf_appends(out, "\ndata: ");
    buf_appends(out, json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN));
    buf_appends(out, "\n\n");
    json_object_put(data);
}

void ashape_stream_init(ashape_stream_t *s, const char *model, json_object *stop_sequences, long long input_estimate)
{
    memset(s, 0, sizeof *s);
    s->model = strdup(model ? model : "");
    s->stop_sequences = json_object_get(stop_sequences);
    s->input_estimate = input_estimate;
    s->open = -1;
    s->tokens_in = s->tokens_out = -1;
    for (int i = 0; i < 64; i++)
        s->tool_block[i] = -1;
    new_message_id(s->id, sizeof s->id);
}

void ashape_stream_free(ashape_stream_t *s)
{
    free(s->model);
    s->model = NULL;
    json_object_put(s->stop_sequences);
    s->stop_sequences = NULL;
}

static void start(ashape_stream_t *s, buf_t *out)
{
    if (s->started)
        return;
    s->started = true;
    json_object *m = json_object_new_object(), *ev = json_object_new_object();
    json_object_object_add(m, "id", json_object_new_string(s->id));
    json_object_object_add(m, "type", json_object_new_string("message"));
    json_object_object_add(m, "role", json_object_new_string("assistant"));
    json_object_object_add(m, "model", json_object_new_string(s->model));
    json_object_object_add(m, "content", json_object_new_array());
    json_object_object_add(m, "stop_reason", NULL);
    json_object_object_add(m, "stop_sequence", NULL);
    json_object_object_add(m, "usage", usage_object(s->tokens_in >= 0 ? s->tokens_in : s->input_estimate, 1));
    json_object_object_add(ev, "type", json_object_new_string("message_start"));
    json_object_object_add(ev, "message", m);
    emit(out, "message_start", ev);
}

static json_object *indexed(const char *type, int index)
{
    json_object *ev = json_object_new_object();
    json_object_object_add(ev, "type", json_object_new_string(type));
    json_object_object_add(ev, "index", json_object_new_int(index));
    return ev;
}

static void delta(buf_t *out, int index, const char *type, const char *key, const char *value)
{
    json_object *ev = indexed("content_block_delta", index), *d = json_object_new_object();
    json_object_object_add(d, "type", json_object_new_string(type));
    json_object_object_add(d, key, json_object_new_string(value));
    json_object_object_add(ev, "delta", d);
    emit(out, "content_block_delta", ev);
}

static void close_block(ashape_stream_t *s, buf_t *out)
{
    if (s->open < 0)
        return;
    /* A tool called without arguments still gets input that parses: {}. */
    if (s->open_is_tool && !s->open_tool_has_args)
        delta(out, s->open, "input_json_delta", "partial_json", "{}");
    emit(out, "content_block_stop", indexed("content_block_stop", s->open));
    s->open = -1;
}

static void open_block(ashape_stream_t *s, json_object *block, bool tool, buf_t *out)
{
    close_block(s, out);
    s->open = s->nblocks++;
    s->open_is_tool = tool;
    s->open_tool_has_args = false;
    json_object *ev = indexed("content_block_start", s->open);
    json_object_object_add(ev, "content_block", block);
    emit(out, "content_block_start", ev);
    if (!s->pinged) {
        s->pinged = true;
        json_object *p = json_object_new_object();
        json_object_object_add(p, "type", json_object_new_string("ping"));
        emit(out, "ping", p);
    }
}

static void text(ashape_stream_t *s, const char *t, buf_t *out)
{
    if (s->open < 0 || s->open_is_tool) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "type", json_object_new_string("text"));
        json_object_object_add(b, "text", json_object_new_string(""));
        open_block(s, b, false, out);
    }
    delta(out, s->open, "text_delta", "text", t);
}

static void tool_call(ashape_stream_t *s, json_object *call, buf_t *out)
{
    json_object *iv = get(call, "index"), *fn = get(call, "function");
    int idx = iv ? json_object_get_int(iv) : 0;
    if (idx < 0 || idx >= (int)(sizeof s->tool_block / sizeof s->tool_block[0]))
        return;
    if (s->tool_block[idx] < 0) {
        open_block(s, tool_use_block(call, json_object_new_object()), true, out);
        s->tool_block[idx] = s->open;
    }
    const char *args = get_str(fn, "arguments");
    if (args && args[0]) {
        if (s->open == s->tool_block[idx])
            s->open_tool_has_args = true;
        delta(out, s->tool_block[idx], "input_json_delta", "partial_json", args);
    }
}

/* Takes the token counts an OpenAI chunk or completion carries, and opens the message. */
static void note_usage_and_start(ashape_stream_t *s, json_object *obj, buf_t *out)
{
    long long in = usage_field(obj, "prompt_tokens"), o = usage_field(obj, "completion_tokens");
    if (in >= 0)
        s->tokens_in = in;
    if (o >= 0)
        s->tokens_out = o;
    start(s, out);
}

/* Remembers the stop reason (and the stop sequence matched, if any) of a finished choice. */
static void note_stop(ashape_stream_t *s, const char *finish, json_object *choice)
{
    const char *seq;
    snprintf(s->stop_reason, sizeof s->stop_reason, "%s", stop_reason(finish, choice, s->stop_sequences, &seq));
    s->has_stop_sequence = seq != NULL;
    if (seq)
        snprintf(s->stop_sequence, sizeof s->stop_sequence, "%s", seq);
}

void ashape_stream_chunk(ashape_stream_t *s, json_object *chunk, buf_t *out)
{
    note_usage_and_start(s, chunk, out);
    json_object *choices = get(chunk, "choices");
    if (!is_arr(choices) || json_object_array_length(choices) == 0)
        return;
    json_object *choice = json_object_array_get_idx(choices, 0), *d = get(choice, "delta");
    const char *t = get_str(d, "content");
    if (t && t[0])
        text(s, t, out);
    json_object *calls = get(d, "tool_calls");
    for (size_t i = 0; is_arr(calls) && i < json_object_array_length(calls); i++)
        tool_call(s, json_object_array_get_idx(calls, i), out);
    const char *finish = get_str(choice, "finish_reason");
    if (finish) {
        note_stop(s, finish, choice);
    }
}

void ashape_stream_completion(ashape_stream_t *s, json_object *completion, buf_t *out)
{
    note_usage_and_start(s, completion, out);
    json_object *choices = get(completion, "choices");
    json_object *choice = is_arr(choices) && json_object_array_length(choices) ? json_object_array_get_idx(choices, 0)
                                                                               : NULL;
    json_object *msg = get(choice, "message");
    const char *t = get_str(msg, "content");
    if (t && t[0])
        text(s, t, out);
    json_object *calls = get(msg, "tool_calls");
    for (size_t i = 0; is_arr(calls) && i < json_object_array_length(calls) && i < 64; i++) {
        json_object *call = json_object_array_get_idx(calls, i), *c = json_object_new_object();
        json_object_object_add(c, "index", json_object_new_int((int)i));
        if (get(call, "id"))
            json_object_object_add(c, "id", json_object_get(get(call, "id")));
        if (get(call, "function"))
            json_object_object_add(c, "function", json_object_get(get(call, "function")));
        tool_call(s, c, out);
        json_object_put(c);
    }
    note_stop(s, get_str(choice, "finish_reason"), choice);
}

void ashape_stream_finish(ashape_stream_t *s, buf_t *out)
{
    if (s->finished)
        return;
    start(s, out);
    if (s->nblocks == 0) { /* an empty answer is still one (empty) text block */
        json_object *b = json_object_new_object();
        json_object_object_add(b, "type", json_object_new_string("text"));
        json_object_object_add(b, "text", json_object_new_string(""));
        open_block(s, b, false, out);
    }
    close_block(s, out);
    json_object *ev = json_object_new_object(), *d = json_object_new_object();
    json_object_object_add(d, "stop_reason", json_object_new_string(s->stop_reason[0] ? s->stop_reason : "end_turn"));
    json_object_object_add(d, "stop_sequence", s->has_stop_sequence ? json_object_new_string(s->stop_sequence) : NULL);
    json_object_object_add(ev, "type", json_object_new_string("message_delta"));
    json_object_object_add(ev, "delta", d);
    json_object *u = json_object_new_object();
    if (s->tokens_in >= 0)
        json_object_object_add(u, "input_tokens", json_object_new_int64(s->tokens_in));
    json_object_object_add(u, "output_tokens", json_object_new_int64(s->tokens_out >= 0 ? s->tokens_out : 0));
    json_object_object_add(ev, "usage", u);
    emit(out, "message_delta", ev);
    json_object *stop = json_object_new_object();
    json_object_object_add(stop, "type", json_object_new_string("message_stop"));
    emit(out, "message_stop", stop);
    s->finished = true;
}

void ashape_stream_error(buf_t *out, const char *type, const char *message)
{
    buf_appends(out, "event: error\ndata: ");
    ashape_error_format(out, type, message);
    buf_appends(out, "\n\n");
}
