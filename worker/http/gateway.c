#include "worker/http/gateway.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http/api.h"
#include "worker/oai/oai_shape.h"

/* OpenAI chat fields whose values are not strings. */
static const char *const number_fields[] = {"temperature", "top_p", "presence_penalty", "frequency_penalty", NULL};
static const char *const integer_fields[] = {"max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs",
                                             "top_k", NULL};
static const char *const boolean_fields[] = {"logprobs", "parallel_tool_calls", "store", NULL};
/* Fields that take structured JSON (given as a JSON text). */
static const char *const json_fields[] = {"stop", "logit_bias", "response_format", "tools", "tool_choice",
                                          "stream_options", "metadata", NULL};
/* Fields the gateway itself decides. */
static const char *const reserved_fields[] = {"model", "messages", "stream", NULL};

static bool in(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

json_object *gateway_chat_body(const char *prompt, long max_tokens, json_object *params, bool stream, char *err,
                               size_t errlen)
{
    json_object *body = json_object_new_object(), *messages = json_object_new_array(), *msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string("user"));
    json_object_object_add(msg, "content", json_object_new_string(prompt));
    json_object_array_add(messages, msg);
    json_object_object_add(body, "model", json_object_new_string(""));
    json_object_object_add(body, "messages", messages);
    if (stream)
        json_object_object_add(body, "stream", json_object_new_boolean(1));
    if (params) {
        json_object_object_foreach(params, key, val)
        {
            const char *s = json_object_is_type(val, json_type_string) ? json_object_get_string(val) : NULL;
            json_object *conv = NULL;
            if (in(reserved_fields, key)) {
                snprintf(err, errlen, "parameter '%s' cannot be set here", key);
                goto bad;
            }
            if (!s) { /* a JSON client may send real numbers and booleans: keep them */
                json_object_object_add(body, key, json_object_get(val));
                continue;
            }
            char *end;
            if (in(number_fields, key)) {
                errno = 0;
                double d = strtod(s, &end);
                if (end == s || *end || errno || !isfinite(d)) {
                    snprintf(err, errlen, "parameter '%s' must be a number, not '%.60s'", key, s);
                    goto bad;
                }
                conv = json_object_new_double(d);
            } else if (in(integer_fields, key)) {
                errno = 0;
                long long v = strtoll(s, &end, 10);
                if (end == s || *end || errno) {
                    snprintf(err, errlen, "parameter '%s' must be an integer, not '%.60s'", key, s);
                    goto bad;
                }
                conv = json_object_new_int64(v);
            } else if (in(boolean_fields, key)) {
                if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
                    snprintf(err, errlen, "parameter '%s' must be true or false, not '%.60s'", key, s);
                    goto bad;
                }
                conv = json_object_new_boolean(strcmp(s, "true") == 0);
            } else if (in(json_fields, key) && (s[0] == '[' || s[0] == '{')) {
                conv = shape_parse(s, strlen(s));
                if (!conv) {
                    snprintf(err, errlen, "parameter '%s' is not valid JSON", key);
                    goto bad;
                }
            } else {
                conv = json_object_get(val);
            }
            json_object_object_add(body, key, conv);
        }
    }
    if (max_tokens > 0)
        json_object_object_add(body, "max_tokens", json_object_new_int64(max_tokens));
    return body;
bad:
    json_object_put(body);
    return NULL;
}

static enum MHD_Result handle(request_t *req, bool stream)
{
    enum MHD_Result rc;
    http_track(req, KIND_CHAT);
    json_object *in_body = api_parse_body(req, &rc), *v;
    if (!in_body)
        return rc;
    const char *provider = NULL, *prompt = NULL, *model = "";
    long max_tokens = 0;
    json_object *params = NULL;
    if (json_object_object_get_ex(in_body, "provider", &v) && json_object_is_type(v, json_type_string))
        provider = json_object_get_string(v);
    if (json_object_object_get_ex(in_body, "prompt", &v) && json_object_is_type(v, json_type_string))
        prompt = json_object_get_string(v);
    if (json_object_object_get_ex(in_body, "model", &v) && json_object_is_type(v, json_type_string))
        model = json_object_get_string(v);
    if (json_object_object_get_ex(in_body, "max_tokens", &v) && v) {
        /* a number, or a numeric string as the original gateway accepted */
        char *end = NULL;
        const char *text = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        max_tokens = text ? strtol(text, &end, 10) : (long)json_object_get_int64(v);
        bool bad = text ? (end == text || *end) : !json_object_is_type(v, json_type_int);
        if (bad || max_tokens < 0) {
            rc = http_respond_error(req, 400, "max_tokens must be an integer, 0 (the model's default) or more.",
                                    "invalid_request_error", "max_tokens", "invalid_value");
            goto out;
        }
    }
    if (json_object_object_get_ex(in_body, "parameters", &v) && v) {
        if (!json_object_is_type(v, json_type_object)) {
            rc = http_respond_error(req, 400, "parameters must be an object of strings.", "invalid_request_error",
                                    "parameters", "invalid_type");
            goto out;
        }
        params = v;
    }
    if (!provider || !provider[0]) {
        rc = api_missing_param(req, "provider", "(a backend name or type)");
        goto out;
    }
    if (!prompt || !prompt[0]) {
        rc = api_missing_param(req, "prompt", NULL);
        goto out;
    }
    char err[200];
    json_object *body = gateway_chat_body(prompt, max_tokens, params, stream, err, sizeof err);
    if (!body) {
        rc = http_respond_error(req, 400, err, "invalid_request_error", "parameters", "invalid_value");
        goto out;
    }
    req->provider = strdup(provider);
    req->model_asked = strdup(model);
    rc = req->provider && req->model_asked ? api_run(req, KIND_CHAT, body, true) : MHD_NO;
    json_object_put(body);
out:
    json_object_put(in_body);
    return rc;
}

enum MHD_Result gateway_generate(request_t *req) { return handle(req, false); }
enum MHD_Result gateway_stream(request_t *req) { return handle(req, true); }
