#include "worker/oai/generate_body.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

json_object *generate_body_chat(const char *prompt, long max_tokens, json_object *params, bool stream, char *err,
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
