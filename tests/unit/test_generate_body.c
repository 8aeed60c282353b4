/* worker/oai/generate_body.c: the chat request the ai_router API (/generate, /stream, gRPC)
 * makes of a prompt, max_tokens, the stream flag and string parameters. */
#include <stdlib.h>

#include "worker/oai/generate_body.h"
#include "worker/oai/oai_shape.h"
#include "unit.h"

/* The body as JSON text, or "error: <reason>" (caller frees). params is JSON text or NULL. */
static char *body_of(const char *prompt, long max_tokens, const char *params, bool stream)
{
    json_object *p = params ? json_tokener_parse(params) : NULL;
    if (params && !CHECK_MSG(p != NULL, "fixture does not parse: %s", params))
        return strdup("(bad fixture)");
    char err[200] = "";
    json_object *body = generate_body_chat(prompt, max_tokens, p, stream, err, sizeof err);
    char *out;
    if (body) {
        CHECK_MSG(err[0] == '\0', "a body and an error: %s", err);
        out = strdup(shape_json(body, &(size_t){0}));
    } else {
        size_t n = strlen(err) + 8;
        out = malloc(n);
        snprintf(out, n, "error: %s", err);
    }
    json_object_put(body);
    json_object_put(p);
    return out;
}

static void check_body(const char *prompt, long max_tokens, const char *params, bool stream, const char *want)
{
    char *got = body_of(prompt, max_tokens, params, stream);
    CHECK_MSG(strcmp(got, want) == 0, "params %s\n    got:  %s\n    want: %s", params ? params : "NULL", got, want);
    free(got);
}

#define MSG(text) "{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"" text "\"}]"

TEST(generate_body_prompt_stream_and_max_tokens)
{
    check_body("hi", 0, NULL, false, MSG("hi") "}");
    check_body("hi", 0, "{}", false, MSG("hi") "}");
    check_body("hi", 0, NULL, true, MSG("hi") ",\"stream\":true}");
    check_body("hi", 50, NULL, true, MSG("hi") ",\"stream\":true,\"max_tokens\":50}");
    check_body("say \"x\"\n\\", 1, NULL, false, MSG("say \\\"x\\\"\\n\\\\") ",\"max_tokens\":1}");
    check_body("hi", -1, NULL, false, MSG("hi") "}"); /* not above 0: the model's default */
    /* max_tokens outside the parameters wins over one inside */
    check_body("hi", 9, "{\"max_tokens\":\"5\"}", false, MSG("hi") ",\"max_tokens\":9}");
    check_body("hi", 0, "{\"max_tokens\":\"5\"}", false, MSG("hi") ",\"max_tokens\":5}");
}

/* String values become what the OpenAI field takes; other fields keep their string. */
TEST(generate_body_string_parameters_typed)
{
    check_body("p", 0,
               "{\"temperature\":\"0.5\",\"top_p\":\"1\",\"presence_penalty\":\"-1.5e0\",\"frequency_penalty\":\" 2\","
               "\"max_completion_tokens\":\"7\",\"n\":\"1\",\"seed\":\"-3\",\"top_logprobs\":\"0\",\"top_k\":\"40\","
               "\"logprobs\":\"true\",\"parallel_tool_calls\":\"false\",\"store\":\"true\"}",
               false,
               MSG("p") ",\"temperature\":0.5,\"top_p\":1.0,\"presence_penalty\":-1.5,\"frequency_penalty\":2.0,"
                        "\"max_completion_tokens\":7,\"n\":1,\"seed\":-3,\"top_logprobs\":0,\"top_k\":40,"
                        "\"logprobs\":true,\"parallel_tool_calls\":false,\"store\":true}");
    check_body("p", 0,
               "{\"stop\":\"[\\\"a\\\",\\\"b\\\"]\",\"response_format\":\"{\\\"type\\\":\\\"json_object\\\"}\","
               "\"tools\":\"[{\\\"type\\\":\\\"function\\\",\\\"function\\\":{\\\"name\\\":\\\"f\\\"}}]\","
               "\"logit_bias\":\"{\\\"50256\\\":-100}\",\"stream_options\":\"{\\\"include_usage\\\":true}\","
               "\"metadata\":\"{\\\"k\\\":\\\"v\\\"}\",\"tool_choice\":\"auto\"}",
               true,
               MSG("p") ",\"stream\":true,\"stop\":[\"a\",\"b\"],\"response_format\":{\"type\":\"json_object\"},"
                        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"logit_bias\":{\"50256\":-100},"
                        "\"stream_options\":{\"include_usage\":true},\"metadata\":{\"k\":\"v\"},\"tool_choice\":\"auto\"}");
    /* a JSON field given a plain string keeps it (stop may be one string); fields the gateway does
     * not know pass through as strings, JSON-looking or not */
    check_body("p", 0, "{\"stop\":\"END\",\"user\":\"u1\",\"vendor_x\":\"[1]\",\"top_a\":\"0.5\"}", false,
               MSG("p") ",\"stop\":\"END\",\"user\":\"u1\",\"vendor_x\":\"[1]\",\"top_a\":\"0.5\"}");
}

/* A JSON client may send real numbers, booleans, arrays and objects: they are kept as they are. */
TEST(generate_body_typed_values_kept)
{
    check_body("p", 0,
               "{\"temperature\":0.25,\"n\":2,\"logprobs\":true,\"stop\":[\"x\"],\"tools\":[],\"response_format\":{},"
               "\"seed\":null,\"top_k\":\"3\"}",
               false,
               MSG("p") ",\"temperature\":0.25,\"n\":2,\"logprobs\":true,\"stop\":[\"x\"],\"tools\":[],"
                        "\"response_format\":{},\"seed\":null,\"top_k\":3}");
}

TEST(generate_body_refusals)
{
    static const struct {
        const char *params, *want;
    } cases[] = {
        {"{\"model\":\"other\"}", "error: parameter 'model' cannot be set here"},
        {"{\"messages\":\"[]\"}", "error: parameter 'messages' cannot be set here"},
        {"{\"stream\":\"true\"}", "error: parameter 'stream' cannot be set here"},
        {"{\"stream\":true}", "error: parameter 'stream' cannot be set here"},
        {"{\"temperature\":\"hot\"}", "error: parameter 'temperature' must be a number, not 'hot'"},
        {"{\"temperature\":\"\"}", "error: parameter 'temperature' must be a number, not ''"},
        {"{\"top_p\":\"0.5x\"}", "error: parameter 'top_p' must be a number, not '0.5x'"},
        {"{\"top_p\":\"nan\"}", "error: parameter 'top_p' must be a number, not 'nan'"},
        {"{\"top_p\":\"inf\"}", "error: parameter 'top_p' must be a number, not 'inf'"},
        {"{\"top_p\":\"1e999\"}", "error: parameter 'top_p' must be a number, not '1e999'"},
        {"{\"n\":\"1.5\"}", "error: parameter 'n' must be an integer, not '1.5'"},
        {"{\"seed\":\"5 \"}", "error: parameter 'seed' must be an integer, not '5 '"},
        {"{\"seed\":\"0x10\"}", "error: parameter 'seed' must be an integer, not '0x10'"},
        {"{\"seed\":\"99999999999999999999\"}", "error: parameter 'seed' must be an integer, not '99999999999999999999'"},
        {"{\"max_tokens\":\"\"}", "error: parameter 'max_tokens' must be an integer, not ''"},
        {"{\"logprobs\":\"True\"}", "error: parameter 'logprobs' must be true or false, not 'True'"},
        {"{\"store\":\"1\"}", "error: parameter 'store' must be true or false, not '1'"},
        {"{\"tools\":\"[{oops\"}", "error: parameter 'tools' is not valid JSON"},
        {"{\"response_format\":\"{} {}\"}", "error: parameter 'response_format' is not valid JSON"},
        /* the value is quoted up to 60 bytes */
        {"{\"temperature\":\"warm0123456789012345678901234567890123456789012345678901234567890123456789\"}",
         "error: parameter 'temperature' must be a number, not 'warm01234567890123456789012345678901234567890123456789012345'"},
        /* the first bad parameter is the one named */
        {"{\"temperature\":\"0.1\",\"n\":\"x\",\"model\":\"m\"}", "error: parameter 'n' must be an integer, not 'x'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_body("p", 5, cases[i].params, i % 2, cases[i].want);
}

/* JSON nested deeper than the parser takes is refused like any invalid JSON. */
TEST(generate_body_deep_json_refused)
{
    buf_t deep = {0}, params = {0};
    for (int i = 0; i <= SHAPE_MAX_DEPTH; i++)
        buf_appends(&deep, "[");
    for (int i = 0; i <= SHAPE_MAX_DEPTH; i++)
        buf_appends(&deep, "]");
    buf_appends(&params, "{\"tools\":");
    buf_append_json_string(&params, deep.data);
    buf_appends(&params, "}");
    check_body("p", 0, params.data, false, "error: parameter 'tools' is not valid JSON");
    buf_free(&deep);
    buf_free(&params);
}
