/* Request validation in OpenAI's words: "Invalid 'max_tokens': integer below minimum value.
 * Expected a value >= 1, but got 0 instead." and the like, with OpenAI's codes. */
#include "worker/oai/validate.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/config.h"

static int fail(validate_error_t *err, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(validate_error_t *err, const char *param, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    snprintf(err->param, sizeof err->param, "%s", param);
    snprintf(err->code, sizeof err->code, "%s", code);
    return -1;
}

/* "a string", "an integer"...: how OpenAI names the type it got. */
static const char *type_phrase(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_boolean: return "a boolean";
    case json_type_int: return "an integer";
    case json_type_double: return "a decimal";
    case json_type_string: return "a string";
    case json_type_array: return "an array";
    case json_type_object: return "an object";
    default: return "null";
    }
}

/* The value as JSON text, for "but got ... instead": 3 rather than 3.0 for a number that came
 * as text (the gRPC API's parameters). */
static const char *shown(json_object *v, char *buf, size_t size)
{
    const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
    size_t len = strlen(text);
    if (json_object_is_type(v, json_type_double) && len > 2 && strcmp(text + len - 2, ".0") == 0) {
        snprintf(buf, size, "%.*s", (int)(len - 2), text);
        return buf;
    }
    return text;
}

/* An integer field: absent or null passes; else an integer within [min, max]. */
static int check_integer(json_object *body, const char *key, long long min, long long max, validate_error_t *err)
{
    json_object *v;
    if (!json_object_object_get_ex(body, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return fail(err, key, "invalid_type", "Invalid type for '%s': expected an integer, but got %s instead.", key,
                    type_phrase(v));
    long long n = json_object_get_int64(v);
    char buf[48];
    if (n < min)
        return fail(err, key, "integer_below_min_value",
                    "Invalid '%s': integer below minimum value. Expected a value >= %lld, but got %.40s instead.", key,
                    min, shown(v, buf, sizeof buf));
    if (n > max)
        return fail(err, key, "integer_above_max_value",
                    "Invalid '%s': integer above maximum value. Expected a value <= %lld, but got %.40s instead.", key,
                    max, shown(v, buf, sizeof buf));
    return 0;
}

/* A number field: absent or null passes; else a number within [min, max]. */
static int check_decimal(json_object *body, const char *key, double min, double max, validate_error_t *err)
{
    json_object *v;
    if (!json_object_object_get_ex(body, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return fail(err, key, "invalid_type", "Invalid type for '%s': expected a decimal, but got %s instead.", key,
                    type_phrase(v));
    double d = json_object_get_double(v);
    char buf[48];
    if (d < min)
        return fail(err, key, "decimal_below_min_value",
                    "Invalid '%s': decimal below minimum value. Expected a value >= %g, but got %.40s instead.", key, min,
                    shown(v, buf, sizeof buf));
    if (d > max)
        return fail(err, key, "decimal_above_max_value",
                    "Invalid '%s': decimal above maximum value. Expected a value <= %g, but got %.40s instead.", key, max,
                    shown(v, buf, sizeof buf));
    return 0;
}

static int check_messages(json_object *body, validate_error_t *err)
{
    static const char *const roles[] = {"system", "assistant", "user", "function", "tool", "developer"};
    json_object *msgs;
    if (!json_object_object_get_ex(body, "messages", &msgs) || !msgs)
        return fail(err, "messages", "missing_required_parameter", "Missing required parameter: 'messages'.");
    if (!json_object_is_type(msgs, json_type_array))
        return fail(err, "messages", "invalid_type", "Invalid type for 'messages': expected an array, but got %s instead.",
                    type_phrase(msgs));
    size_t n = json_object_array_length(msgs);
    if (n == 0)
        return fail(err, "messages", "empty_array",
                    "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array "
                    "instead.");
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(msgs, i), *role;
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_object_is_type(m, json_type_object))
            return fail(err, param, "invalid_type", "Invalid type for '%s': expected an object, but got %s instead.", param,
                        type_phrase(m));
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_object_object_get_ex(m, "role", &role) || !role)
            return fail(err, param, "missing_required_parameter", "Missing required parameter: '%s'.", param);
        if (!json_object_is_type(role, json_type_string))
            return fail(err, param, "invalid_type", "Invalid type for '%s': expected a string, but got %s instead.", param,
                        type_phrase(role));
        bool known = false;
        for (size_t r = 0; r < sizeof roles / sizeof roles[0] && !known; r++)
            known = strcmp(json_object_get_string(role), roles[r]) == 0;
        if (!known)
            return fail(err, param, "invalid_value",
                        "Invalid value: '%.40s'. Supported values are: 'system', 'assistant', 'user', 'function', "
                        "'tool', and 'developer'.",
                        json_object_get_string(role));
    }
    return 0;
}

int validate_request(unsigned kind, json_object *body, validate_error_t *err)
{
    json_object *v;
    if (kind != KIND_CHAT && kind != KIND_COMPLETIONS)
        return 0;
    if (kind == KIND_CHAT && check_messages(body, err) < 0)
        return -1;
    if (check_integer(body, "max_tokens", 1, INT32_MAX, err) < 0 ||
        check_integer(body, "max_completion_tokens", 1, INT32_MAX, err) < 0 ||
        check_integer(body, "n", 1, 128, err) < 0 || check_decimal(body, "temperature", 0, 2, err) < 0 ||
        check_decimal(body, "top_p", 0, 1, err) < 0)
        return -1;
    if (json_object_object_get_ex(body, "stream", &v) && v && !json_object_is_type(v, json_type_boolean))
        return fail(err, "stream", "invalid_type", "Invalid type for 'stream': expected a boolean, but got %s instead.",
                    type_phrase(v));
    return 0;
}
