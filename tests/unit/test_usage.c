/* worker/oai/usage.c: usage read from answers, and found in relayed bytes */
#include "worker/oai/oai_shape.h"
#include "worker/oai/usage.h"
#include "unit.h"

static usage_t read_answer(const char *json)
{
    usage_t u = USAGE_NONE;
    json_object *o = shape_parse(json, strlen(json));
    usage_from_answer(o, &u);
    json_object_put(o);
    return u;
}

TEST(usage_every_api_shape)
{
    usage_t u = read_answer("{\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,"
                            "\"prompt_tokens_details\":{\"cached_tokens\":4}}}");
    CHECK_INT(u.in, 11);
    CHECK_INT(u.out, 7);
    CHECK_INT(u.cached, 4);
    /* the Responses API, whole or in its response.completed event */
    u = read_answer("{\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":9,"
                    "\"input_tokens_details\":{\"cached_tokens\":3},\"output_tokens\":5}}}");
    CHECK_INT(u.in, 9);
    CHECK_INT(u.out, 5);
    CHECK_INT(u.cached, 3);
    /* gpt-image-1 and gpt-4o-transcribe: input and output tokens, nothing cached */
    u = read_answer("{\"data\":[],\"usage\":{\"input_tokens\":3,\"input_tokens_details\":{\"text_tokens\":3,"
                    "\"image_tokens\":0},\"output_tokens\":1056}}");
    CHECK_INT(u.in, 3);
    CHECK_INT(u.out, 1056);
    CHECK_INT(u.cached, -1);
    /* Anthropic: cache reads and writes are input too, the reads at the cached price */
    u = read_answer("{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,"
                    "\"cache_creation_input_tokens\":20,\"cache_read_input_tokens\":30,\"output_tokens\":1}}}");
    CHECK_INT(u.in, 60);
    CHECK_INT(u.cached, 30);
    CHECK_INT(u.out, 1);
    /* whisper's usage counts seconds, not tokens: no usage */
    usage_t none = USAGE_NONE;
    const char *whisper = "{\"text\":\"x\",\"usage\":{\"type\":\"duration\",\"seconds\":3}}";
    json_object *o = shape_parse(whisper, strlen(whisper));
    CHECK(!usage_from_answer(o, &none));
    json_object_put(o);
    CHECK_INT(none.in, -1);
    CHECK_INT(none.out, -1);
}

TEST(usage_request_fields)
{
    char model[16];
    long long max = -1;
    const char *body = "{\"model\":\"gpt-4.1\",\"max_output_tokens\":300,\"input\":\"hi\"}";
    CHECK(usage_request_model(body, strlen(body), model, sizeof model, &max));
    CHECK_STR(model, "gpt-4.1");
    CHECK_INT(max, 300);
    const char *nomodel = "{\"purpose\":\"batch\"}";
    CHECK(!usage_request_model(nomodel, strlen(nomodel), model, sizeof model, &max));
    const char *long_name = "{\"model\":\"a-model-name-longer-than-16\"}";
    CHECK(!usage_request_model(long_name, strlen(long_name), model, sizeof model, &max));
    CHECK(!usage_request_model("not json", 8, model, sizeof model, &max));
}

/* Feeds text to a scanner in pieces of step bytes. */
static void feed(usage_scan_t *s, const char *text, size_t step)
{
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i += step)
        usage_scan_feed(s, text + i, n - i < step ? n - i : step);
}

TEST(usage_scan_responses_stream_in_any_pieces)
{
    const char *stream =
        "event: response.created\n"
        "data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n"
        "event: response.output_text.delta\n"
        "data: {\"type\":\"response.output_text.delta\",\"delta\":\"say \\\"usage\\\": {\\\"input_tokens\\\": 99}\"}\n\n"
        "event: response.completed\n"
        "data: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"text\":\"}{\"}],"
        "\"usage\":{\"input_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":2},\"output_tokens\":8,"
        "\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":20}}}\n\n";
    for (size_t step = 1; step <= 64; step *= 2) {
        usage_scan_t s;
        usage_scan_init(&s);
        feed(&s, stream, step);
        /* the quoted "usage" inside a text delta is no key; null usage is skipped */
        CHECK_INT(s.found.in, 12);
        CHECK_INT(s.found.out, 8);
        CHECK_INT(s.found.cached, 2);
        CHECK_INT(s.events, 3);
        usage_scan_free(&s);
    }
}

TEST(usage_scan_merges_later_counts_and_skips_what_it_cannot_read)
{
    /* Anthropic: input in message_start, output in message_delta */
    usage_scan_t s;
    usage_scan_init(&s);
    feed(&s,
         "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,"
         "\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":"
         "{\"output_tokens\":15}}\n\n",
         5);
    CHECK_INT(s.found.in, 25);
    CHECK_INT(s.found.out, 15);
    usage_scan_free(&s);

    /* a whole JSON answer, pretty-printed */
    usage_scan_init(&s);
    feed(&s, "{\n  \"id\": \"run_1\",\n  \"usage\" :\n  {\n    \"prompt_tokens\": 5,\n    \"completion_tokens\": 7\n  }\n}\n", 3);
    CHECK_INT(s.found.in, 5);
    CHECK_INT(s.found.out, 7);
    CHECK_INT(s.events, 0);
    usage_scan_free(&s);

    /* no usage at all, and a usage object too long to be one */
    usage_scan_init(&s);
    feed(&s, "{\"results\":[{\"flagged\":false}],\"usage\":\"none\"}", 7);
    CHECK_INT(s.found.in, -1);
    static char big[USAGE_SCAN_MAX + 200];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"usage\":{\"input_tokens\":4,\"pad\":\"");
    memset(big + n, 'x', USAGE_SCAN_MAX);
    strcpy(big + n + USAGE_SCAN_MAX, "\"}}");
    feed(&s, big, 1000);
    CHECK_INT(s.found.in, -1);
    feed(&s, "{\"usage\":{\"input_tokens\":4}}", 100); /* and the scanner goes on after it */
    CHECK_INT(s.found.in, 4);
    usage_scan_free(&s);
}
