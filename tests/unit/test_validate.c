/* worker/oai/validate.c: the request fields airouter reads, checked in OpenAI's words. */
#include <json-c/json.h>

#include "common/config.h"
#include "worker/oai/validate.h"
#include "unit.h"

/* Validates body_json as a request of kind; want_param NULL: must pass. */
static void expect(unsigned kind, const char *body_json, const char *want_param, const char *want_code,
                   const char *want_message)
{
    json_object *body = json_tokener_parse(body_json);
    if (!CHECK_MSG(body != NULL, "fixture JSON does not parse: %s", body_json))
        return;
    validate_error_t err = {0};
    int rc = validate_request(kind, body, &err);
    if (!want_param) {
        CHECK_MSG(rc == 0, "%s: refused (%s: %s)", body_json, err.param, err.message);
    } else if (CHECK_MSG(rc == -1, "%s: accepted", body_json)) {
        CHECK_STR(err.param, want_param);
        CHECK_STR(err.code, want_code);
        if (want_message)
            CHECK_STR(err.message, want_message);
    }
    json_object_put(body);
}

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

TEST(validate_passes_good_requests)
{
    expect(KIND_CHAT, "{" MSGS "}", NULL, NULL, NULL);
    expect(KIND_CHAT,
           "{" MSGS ",\"max_tokens\":1,\"max_completion_tokens\":4096,\"n\":128,\"temperature\":0,\"top_p\":1,"
           "\"stream\":true,\"unknown\":\"kept\"}",
           NULL, NULL, NULL);
    expect(KIND_CHAT, "{" MSGS ",\"max_tokens\":null,\"temperature\":null,\"n\":null,\"stream\":null}", NULL, NULL, NULL);
    expect(KIND_CHAT, "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"developer\"},{\"role\":\"tool\"},"
                      "{\"role\":\"function\"},{\"role\":\"assistant\"}]}", NULL, NULL, NULL);
    expect(KIND_COMPLETIONS, "{\"prompt\":\"p\",\"temperature\":2.0,\"top_p\":0.5}", NULL, NULL, NULL);
    /* other kinds are not this module's */
    expect(KIND_EMBEDDINGS, "{\"input\":\"x\",\"max_tokens\":0}", NULL, NULL, NULL);
}

TEST(validate_numbers)
{
    expect(KIND_CHAT, "{" MSGS ",\"max_tokens\":0}", "max_tokens", "integer_below_min_value",
           "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.");
    expect(KIND_COMPLETIONS, "{\"prompt\":\"p\",\"max_completion_tokens\":-3}", "max_completion_tokens",
           "integer_below_min_value", NULL);
    expect(KIND_CHAT, "{" MSGS ",\"max_tokens\":1.5}", "max_tokens", "invalid_type",
           "Invalid type for 'max_tokens': expected an integer, but got a decimal instead.");
    expect(KIND_CHAT, "{" MSGS ",\"max_tokens\":3000000000}", "max_tokens", "integer_above_max_value", NULL);
    expect(KIND_CHAT, "{" MSGS ",\"n\":0}", "n", "integer_below_min_value", NULL);
    expect(KIND_CHAT, "{" MSGS ",\"n\":200}", "n", "integer_above_max_value",
           "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 200 instead.");
    expect(KIND_CHAT, "{" MSGS ",\"temperature\":\"hot\"}", "temperature", "invalid_type",
           "Invalid type for 'temperature': expected a decimal, but got a string instead.");
    expect(KIND_CHAT, "{" MSGS ",\"temperature\":2.01}", "temperature", "decimal_above_max_value",
           "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.01 instead.");
    expect(KIND_CHAT, "{" MSGS ",\"top_p\":-0.5}", "top_p", "decimal_below_min_value",
           "Invalid 'top_p': decimal below minimum value. Expected a value >= 0, but got -0.5 instead.");
    expect(KIND_CHAT, "{" MSGS ",\"top_p\":[1]}", "top_p", "invalid_type", NULL);
    expect(KIND_CHAT, "{" MSGS ",\"stream\":\"yes\"}", "stream", "invalid_type",
           "Invalid type for 'stream': expected a boolean, but got a string instead.");
}

TEST(validate_messages)
{
    expect(KIND_CHAT, "{\"messages\":[]}", "messages", "empty_array",
           "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.");
    expect(KIND_CHAT, "{\"messages\":{}}", "messages", "invalid_type", NULL);
    expect(KIND_CHAT, "{}", "messages", "missing_required_parameter", NULL);
    expect(KIND_CHAT, "{\"messages\":[{\"role\":\"user\"},42]}", "messages[1]", "invalid_type",
           "Invalid type for 'messages[1]': expected an object, but got an integer instead.");
    expect(KIND_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role", "missing_required_parameter",
           "Missing required parameter: 'messages[0].role'.");
    expect(KIND_CHAT, "{\"messages\":[{\"role\":null}]}", "messages[0].role", "missing_required_parameter", NULL);
    expect(KIND_CHAT, "{\"messages\":[{\"role\":7}]}", "messages[0].role", "invalid_type", NULL);
    expect(KIND_CHAT, "{\"messages\":[{\"role\":\"user\"},{\"role\":\"User\"}]}", "messages[1].role", "invalid_value",
           "Invalid value: 'User'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and "
           "'developer'.");
    /* messages come first, as the field every chat needs */
    expect(KIND_CHAT, "{\"messages\":[],\"max_tokens\":0}", "messages", "empty_array", NULL);
}
