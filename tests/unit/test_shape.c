/* worker/oai/oai_shape.c: model renaming, stream aggregation, stream synthesis. */
#include "common/config.h"
#include "worker/oai/oai_shape.h"
#include "unit.h"
#include "unit_json.h"

#include <stdlib.h>

/* ---- shape_set_model / shape_json / shape_append_sse ---- */

TEST(shape_set_model_replaces_only_existing)
{
    json_object *o = parse("{\"id\":\"x\",\"model\":\"backend-model-v2\",\"object\":\"chat.completion\"}");
    shape_set_model(o, "client-name");
    CHECK_STR(str_at(o, "model"), "client-name");
    CHECK_STR(str_at(o, "id"), "x");
    json_object_put(o);

    o = parse("{\"id\":\"x\"}");
    shape_set_model(o, "client-name");
    CHECK_ABSENT(o, "model");
    json_object_put(o);

    o = parse("{\"model\":null}"); /* present, even if null */
    shape_set_model(o, "m");
    CHECK_STR(str_at(o, "model"), "m");
    json_object_put(o);

    o = parse("[{\"model\":\"inner\"}]"); /* not an object: untouched */
    shape_set_model(o, "m");
    CHECK_STR(str_at(o, "0.model"), "inner");
    json_object_put(o);
    shape_set_model(NULL, "m"); /* no crash */
}

TEST(shape_json_and_sse)
{
    json_object *o = parse("{ \"a\" : \"x/y\", \"b\": [1, 2],\"c\":{\"d\":null} }");
    size_t n = 0;
    const char *s = shape_json(o, &n);
    CHECK_STR(s, "{\"a\":\"x/y\",\"b\":[1,2],\"c\":{\"d\":null}}");
    CHECK_INT(n, strlen("{\"a\":\"x/y\",\"b\":[1,2],\"c\":{\"d\":null}}"));
    buf_t b = {0};
    buf_appends(&b, "event-before\n");
    CHECK_INT(shape_append_sse(&b, o), 0);
    CHECK_STR(b.data, "event-before\ndata: {\"a\":\"x/y\",\"b\":[1,2],\"c\":{\"d\":null}}\n\n");
    buf_free(&b);
    json_object_put(o);
}

/* ---- aggregation ---- */

static json_object *aggregate(unsigned kind, const char *const *chunks)
{
    shape_agg_t *a = shape_agg_new(kind);
    if (!CHECK(a != NULL))
        return NULL;
    for (const char *const *c = chunks; *c; c++) {
        json_object *o = parse(*c);
        shape_agg_add(a, o);
        json_object_put(o); /* the aggregator keeps its own references */
    }
    json_object *r = shape_agg_finish(a);
    shape_agg_free(a);
    return r;
}

TEST(shape_agg_chat_content_tools_usage)
{
    static const char *const chunks[] = {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
        "\"model\":\"gpt-4o-2024\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
        "\"finish_reason\":null}],\"usage\":null}",
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
        "\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"
        "\"finish_reason\":null}],\"usage\":null}",
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\\"w\\\"\"},"
        "\"finish_reason\":null}]}",
        /* Tool call 0 starts: id, type, name, empty arguments. */
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"\"}}]},\"finish_reason\":null}]}",
        /* Its arguments arrive in pieces... */
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}",
        /* ...interleaved with tool call 1 in the same chunk. */
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":["
        "{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"get_time\","
        "\"arguments\":\"{}\"}},"
        "{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}",
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":null}",
        /* include_usage's last chunk: no choices, usage. */
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
        "\"model\":\"gpt-4o-2024\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,"
        "\"completion_tokens\":5,\"total_tokens\":15}}",
        NULL,
    };
    json_object *r = aggregate(KIND_CHAT, chunks);
    if (!r)
        return;
    CHECK_STR(str_at(r, "id"), "chatcmpl-1");
    CHECK_STR(str_at(r, "object"), "chat.completion");
    CHECK_INT(int_at(r, "created"), 1700000000);
    CHECK_STR(str_at(r, "model"), "gpt-4o-2024");
    CHECK_STR(str_at(r, "system_fingerprint"), "fp_1");
    CHECK_INT(len_at(r, "choices"), 1);
    CHECK_INT(int_at(r, "choices.0.index"), 0);
    CHECK_STR(str_at(r, "choices.0.message.role"), "assistant");
    CHECK_STR(str_at(r, "choices.0.message.content"), "Hello \"w\"");
    CHECK_INT(len_at(r, "choices.0.message.tool_calls"), 2);
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.0.id"), "call_a");
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.0.type"), "function");
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.0.function.name"), "get_weather");
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.0.function.arguments"),
              "{\"city\":\"Paris\"}");
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.1.id"), "call_b");
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.1.function.name"), "get_time");
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.1.function.arguments"), "{}");
    CHECK_ABSENT(r, "choices.0.message.tool_calls.0.index"); /* a completion has no index */
    CHECK_NULL_AT(r, "choices.0.logprobs");
    CHECK_STR(str_at(r, "choices.0.finish_reason"), "tool_calls");
    CHECK_INT(int_at(r, "usage.prompt_tokens"), 10);
    CHECK_INT(int_at(r, "usage.completion_tokens"), 5);
    CHECK_INT(int_at(r, "usage.total_tokens"), 15);
    json_object_put(r);
}

TEST(shape_agg_chat_tools_only_has_null_content)
{
    static const char *const chunks[] = {
        "{\"id\":\"c2\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{"
        "\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_x\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}",
        "{\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"function\":{\"arguments\":\"{\\\"a\\\"\"}}]}}]}",
        "{\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"function\":{\"arguments\":\":1}\"}}]}}]}",
        "{\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
        NULL,
    };
    json_object *r = aggregate(KIND_CHAT, chunks);
    if (!r)
        return;
    CHECK_NULL_AT(r, "choices.0.message.content");
    CHECK_INT(len_at(r, "choices.0.message.tool_calls"), 1);
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.0.function.arguments"), "{\"a\":1}");
    CHECK_ABSENT(r, "usage"); /* no usage chunk, no usage */
    CHECK_ABSENT(r, "system_fingerprint");
    json_object_put(r);
}

TEST(shape_agg_chat_several_choices)
{
    static const char *const chunks[] = {
        "{\"id\":\"c3\",\"created\":2,\"model\":\"m\",\"choices\":["
        "{\"index\":1,\"delta\":{\"role\":\"assistant\",\"content\":\"B\"}},"
        "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"A\"}}]}",
        "{\"id\":\"c3\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}",
        "{\"id\":\"c3\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"b\"},"
        "\"finish_reason\":\"length\"}]}",
        "{\"id\":\"c3\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
        NULL,
    };
    json_object *r = aggregate(KIND_CHAT, chunks);
    if (!r)
        return;
    CHECK_INT(len_at(r, "choices"), 2);
    CHECK_INT(int_at(r, "choices.0.index"), 0);
    CHECK_STR(str_at(r, "choices.0.message.content"), "Aa");
    CHECK_STR(str_at(r, "choices.0.finish_reason"), "stop");
    CHECK_INT(int_at(r, "choices.1.index"), 1);
    CHECK_STR(str_at(r, "choices.1.message.content"), "Bb");
    CHECK_STR(str_at(r, "choices.1.finish_reason"), "length");
    CHECK_ABSENT(r, "choices.0.message.tool_calls");
    json_object_put(r);
}

TEST(shape_agg_completions_text)
{
    static const char *const chunks[] = {
        "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"davinci\","
        "\"choices\":[{\"index\":0,\"text\":\"Once\",\"logprobs\":null,\"finish_reason\":null}]}",
        "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"davinci\","
        "\"choices\":[{\"index\":0,\"text\":\" upon\",\"logprobs\":null,\"finish_reason\":null}]}",
        "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"davinci\","
        "\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"length\"}]}",
        "{\"id\":\"cmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,"
        "\"total_tokens\":3}}",
        NULL,
    };
    json_object *r = aggregate(KIND_COMPLETIONS, chunks);
    if (!r)
        return;
    CHECK_STR(str_at(r, "id"), "cmpl-1");
    CHECK_STR(str_at(r, "object"), "text_completion");
    CHECK_STR(str_at(r, "model"), "davinci");
    CHECK_INT(int_at(r, "created"), 5);
    CHECK_INT(len_at(r, "choices"), 1);
    CHECK_STR(str_at(r, "choices.0.text"), "Once upon");
    CHECK_STR(str_at(r, "choices.0.finish_reason"), "length");
    CHECK_NULL_AT(r, "choices.0.logprobs");
    CHECK_ABSENT(r, "choices.0.message");
    CHECK_INT(int_at(r, "usage.total_tokens"), 3);
    json_object_put(r);
}

TEST(shape_agg_empty_and_odd_input)
{
    /* Nothing folded in: an empty but well-formed completion. */
    shape_agg_t *a = shape_agg_new(KIND_CHAT);
    json_object *r = shape_agg_finish(a);
    CHECK_STR(str_at(r, "object"), "chat.completion");
    CHECK_INT(len_at(r, "choices"), 0);
    json_object_put(r);
    shape_agg_free(a);
    shape_agg_free(NULL);

    /* Chunks of the wrong shape are ignored rather than crashing. */
    static const char *const chunks[] = {
        "{\"id\":\"c4\",\"model\":\"m\",\"choices\":{\"not\":\"an array\"}}",
        "{\"id\":\"c4\",\"choices\":[{\"index\":0,\"delta\":\"not an object\"}]}",
        "{\"id\":\"c4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":7,\"tool_calls\":{}}}]}",
        "{\"id\":\"c4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}",
        "{\"id\":\"c4\",\"choices\":[{\"index\":99999,\"delta\":{\"content\":\"far\"}}]}",
        "{\"id\":\"c4\",\"choices\":[{\"index\":-1,\"delta\":{\"content\":\"neg\"}}]}",
        "[1,2,3]",
        NULL,
    };
    r = aggregate(KIND_CHAT, chunks);
    if (!r)
        return;
    CHECK_INT(len_at(r, "choices"), 1);
    CHECK_STR(str_at(r, "choices.0.message.content"), "ok");
    json_object_put(r);
}

/* ---- synthesis ---- */

/* Splits "data: X\n\n" events into parsed objects; returns the count (max 16). */
static int sse_events(const char *s, json_object **ev)
{
    int n = 0;
    while (s && *s && n < 16) {
        if (!CHECK_MSG(strncmp(s, "data: ", 6) == 0, "event does not start with 'data: ': %s", s))
            break;
        const char *end = strstr(s, "\n\n");
        if (!CHECK_MSG(end != NULL, "event not terminated by a blank line: %s", s))
            break;
        char *one = strndup(s + 6, (size_t)(end - s - 6));
        CHECK_MSG(strchr(one, '\n') == NULL, "newline inside an event: %s", one);
        ev[n] = json_tokener_parse(one);
        CHECK_MSG(ev[n] != NULL, "event is not JSON: %s", one);
        free(one);
        n++;
        s = end + 2;
    }
    return n;
}

static void put_events(json_object **ev, int n)
{
    for (int i = 0; i < n; i++)
        json_object_put(ev[i]);
}

static const char *chat_completion =
    "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"created\":1700000001,"
    "\"model\":\"client-model\",\"system_fingerprint\":\"fp_9\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"Hi there\",\"tool_calls\":["
    "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},"
    "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"g\","
    "\"arguments\":\"{\\\"x\\\":1}\"}}]},"
    "\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}";

TEST(shape_synthesise_chat_with_usage)
{
    json_object *c = parse(chat_completion);
    buf_t b = {0};
    CHECK_INT(shape_synthesise(KIND_CHAT, c, true, &b), 0);
    json_object *ev[16];
    int n = sse_events(b.data, ev);
    CHECK_MSG(strstr(b.data ? b.data : "", "[DONE]") == NULL, "synthesis must not add [DONE]");
    if (CHECK_INT(n, 3)) {
        for (int i = 0; i < 3; i++) {
            CHECK_STR(str_at(ev[i], "id"), "chatcmpl-9");
            CHECK_STR(str_at(ev[i], "object"), "chat.completion.chunk");
            CHECK_INT(int_at(ev[i], "created"), 1700000001);
            CHECK_STR(str_at(ev[i], "model"), "client-model");
            CHECK_STR(str_at(ev[i], "system_fingerprint"), "fp_9");
        }
        /* 1: the whole message as one delta; tool calls carry their index. */
        CHECK_INT(len_at(ev[0], "choices"), 1);
        CHECK_INT(int_at(ev[0], "choices.0.index"), 0);
        CHECK_STR(str_at(ev[0], "choices.0.delta.role"), "assistant");
        CHECK_STR(str_at(ev[0], "choices.0.delta.content"), "Hi there");
        CHECK_INT(len_at(ev[0], "choices.0.delta.tool_calls"), 2);
        CHECK_INT(int_at(ev[0], "choices.0.delta.tool_calls.0.index"), 0);
        CHECK_STR(str_at(ev[0], "choices.0.delta.tool_calls.0.id"), "call_1");
        CHECK_STR(str_at(ev[0], "choices.0.delta.tool_calls.0.function.name"), "f");
        CHECK_INT(int_at(ev[0], "choices.0.delta.tool_calls.1.index"), 1);
        CHECK_STR(str_at(ev[0], "choices.0.delta.tool_calls.1.function.arguments"), "{\"x\":1}");
        CHECK_NULL_AT(ev[0], "choices.0.finish_reason");
        CHECK_ABSENT(ev[0], "usage");
        /* 2: empty delta with the finish reason. */
        CHECK_INT(len_at(ev[1], "choices"), 1);
        CHECK_INT(json_object_object_length(at(ev[1], "choices.0.delta")), 0);
        CHECK_STR(str_at(ev[1], "choices.0.finish_reason"), "tool_calls");
        CHECK_ABSENT(ev[1], "usage");
        /* 3: usage only, choices empty. */
        CHECK_INT(len_at(ev[2], "choices"), 0);
        CHECK_INT(int_at(ev[2], "usage.total_tokens"), 7);
    }
    put_events(ev, n);
    /* The completion itself is not modified (tool_calls were copied, not indexed in place). */
    CHECK_ABSENT(c, "choices.0.message.tool_calls.0.index");
    buf_free(&b);
    json_object_put(c);
}

TEST(shape_synthesise_chat_without_usage)
{
    json_object *c = parse(chat_completion);
    buf_t b = {0};
    CHECK_INT(shape_synthesise(KIND_CHAT, c, false, &b), 0);
    json_object *ev[16];
    int n = sse_events(b.data, ev);
    if (CHECK_INT(n, 2)) {
        CHECK_ABSENT(ev[0], "usage");
        CHECK_ABSENT(ev[1], "usage");
        CHECK_STR(str_at(ev[1], "choices.0.finish_reason"), "tool_calls");
    }
    put_events(ev, n);
    buf_free(&b);
    json_object_put(c);

    /* include_usage with no usage in the completion: no usage chunk. */
    c = parse("{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
              "\"content\":\"k\"},\"finish_reason\":\"stop\"}]}");
    CHECK_INT(shape_synthesise(KIND_CHAT, c, true, &b), 0);
    n = sse_events(b.data, ev);
    CHECK_INT(n, 2);
    put_events(ev, n);
    buf_free(&b);
    json_object_put(c);
}

TEST(shape_synthesise_completions)
{
    json_object *c = parse("{\"id\":\"cmpl-2\",\"object\":\"text_completion\",\"created\":9,"
                           "\"model\":\"davinci\",\"choices\":[{\"index\":0,\"text\":\"abc\","
                           "\"logprobs\":null,\"finish_reason\":\"stop\"},{\"index\":1,"
                           "\"text\":\"xyz\",\"logprobs\":null,\"finish_reason\":\"length\"}],"
                           "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,"
                           "\"total_tokens\":2}}");
    buf_t b = {0};
    CHECK_INT(shape_synthesise(KIND_COMPLETIONS, c, true, &b), 0);
    json_object *ev[16];
    int n = sse_events(b.data, ev);
    if (CHECK_INT(n, 5)) {
        CHECK_STR(str_at(ev[0], "object"), "text_completion");
        CHECK_INT(int_at(ev[0], "choices.0.index"), 0);
        CHECK_STR(str_at(ev[0], "choices.0.text"), "abc");
        CHECK_NULL_AT(ev[0], "choices.0.finish_reason");
        CHECK_ABSENT(ev[0], "choices.0.delta");
        CHECK_STR(str_at(ev[1], "choices.0.text"), "");
        CHECK_STR(str_at(ev[1], "choices.0.finish_reason"), "stop");
        CHECK_INT(int_at(ev[2], "choices.0.index"), 1);
        CHECK_STR(str_at(ev[2], "choices.0.text"), "xyz");
        CHECK_STR(str_at(ev[3], "choices.0.finish_reason"), "length");
        CHECK_INT(len_at(ev[4], "choices"), 0);
        CHECK_INT(int_at(ev[4], "usage.total_tokens"), 2);
    }
    put_events(ev, n);
    buf_free(&b);
    json_object_put(c);
}

TEST(shape_synthesise_rejects_no_choices)
{
    buf_t b = {0};
    json_object *c = parse("{\"id\":\"x\",\"object\":\"chat.completion\"}");
    CHECK_INT(shape_synthesise(KIND_CHAT, c, true, &b), -1);
    json_object_put(c);
    c = parse("{\"id\":\"x\",\"choices\":\"nope\"}");
    CHECK_INT(shape_synthesise(KIND_CHAT, c, true, &b), -1);
    json_object_put(c);
    CHECK_INT(b.len, 0);
    buf_free(&b);
}

TEST(shape_synthesise_then_aggregate_round_trip)
{
    json_object *c = parse(chat_completion);
    buf_t b = {0};
    CHECK_INT(shape_synthesise(KIND_CHAT, c, true, &b), 0);
    json_object *ev[16];
    int n = sse_events(b.data, ev);
    shape_agg_t *a = shape_agg_new(KIND_CHAT);
    for (int i = 0; i < n; i++)
        shape_agg_add(a, ev[i]);
    put_events(ev, n);
    json_object *r = shape_agg_finish(a);
    shape_agg_free(a);
    CHECK_STR(str_at(r, "id"), "chatcmpl-9");
    CHECK_STR(str_at(r, "object"), "chat.completion");
    CHECK_STR(str_at(r, "model"), "client-model");
    CHECK_STR(str_at(r, "choices.0.message.content"), "Hi there");
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.1.id"), "call_2");
    CHECK_STR(str_at(r, "choices.0.message.tool_calls.1.function.arguments"), "{\"x\":1}");
    CHECK_STR(str_at(r, "choices.0.finish_reason"), "tool_calls");
    CHECK_INT(int_at(r, "usage.completion_tokens"), 4);
    json_object_put(r);
    buf_free(&b);
    json_object_put(c);
}

/* A backend's (malformed) completion must not crash the worker when a streaming client
 * is served from a non-streaming backend call. Run in a child: a crash is a failure. */
static void synthesise_message_null(void)
{
    json_object *c = json_tokener_parse(
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":null,\"finish_reason\":\"stop\"}]}");
    buf_t b = {0};
    shape_synthesise(KIND_CHAT, c, false, &b);
    buf_free(&b);
    json_object_put(c);
}

static void synthesise_message_string(void)
{
    json_object *c = json_tokener_parse(
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":\"hi\",\"finish_reason\":\"stop\"}]}");
    buf_t b = {0};
    shape_synthesise(KIND_CHAT, c, false, &b);
    buf_free(&b);
    json_object_put(c);
}

static void synthesise_choice_not_object(void)
{
    json_object *c = json_tokener_parse("{\"id\":\"x\",\"choices\":[null, 3, \"s\"]}");
    buf_t b = {0};
    shape_synthesise(KIND_CHAT, c, false, &b);
    shape_synthesise(KIND_COMPLETIONS, c, false, &b);
    buf_free(&b);
    json_object_put(c);
}

TEST(shape_synthesise_malformed_does_not_crash)
{
    int rc = unit_run_child(synthesise_message_null);
    CHECK_MSG(rc == 0, "shape_synthesise crashed on \"message\":null (child status %d)", rc);
    rc = unit_run_child(synthesise_message_string);
    CHECK_MSG(rc == 0, "shape_synthesise crashed on \"message\":\"hi\" (child status %d)", rc);
    rc = unit_run_child(synthesise_choice_not_object);
    CHECK_MSG(rc == 0, "shape_synthesise crashed on non-object choices (child status %d)", rc);
}

TEST(shape_usage_both_namings_and_nested_response)
{
    long long in = -1, out = -1;
    json_object *o = parse("{\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,\"total_tokens\":19}}");
    CHECK(shape_usage(o, &in, &out));
    CHECK_INT(in, 12);
    CHECK_INT(out, 7);
    json_object_put(o);

    in = out = -1; /* the Responses API: response.usage with input/output_tokens */
    o = parse("{\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"model\":\"m\","
              "\"usage\":{\"input_tokens\":30,\"output_tokens\":4,\"total_tokens\":34}}}");
    CHECK(shape_usage(o, &in, &out));
    CHECK_INT(in, 30);
    CHECK_INT(out, 4);
    json_object_put(o);

    in = out = -1; /* a transcription: input only; the missing count stays as it was */
    o = parse("{\"text\":\"hi\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":9}}");
    CHECK(shape_usage(o, &in, &out));
    CHECK_INT(in, 9);
    CHECK_INT(out, -1);
    json_object_put(o);

    in = out = -1; /* Anthropic's message_start: message.usage, prompt-cache tokens count as input */
    o = parse("{\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":10,"
              "\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}");
    CHECK(shape_usage(o, &in, &out));
    CHECK_INT(in, 117);
    CHECK_INT(out, 1);
    shape_set_models(o, "client");
    CHECK_STR(json_object_get_string(json_object_object_get(json_object_object_get(o, "message"), "model")), "client");
    json_object_put(o);

    in = out = 5; /* no usage, usage null, usage not an object: nothing changes */
    const char *none[] = {"{\"id\":\"x\"}", "{\"usage\":null}", "{\"usage\":3}", "{\"response\":{\"id\":\"r\"}}",
                          "{\"usage\":{\"prompt_tokens\":\"12\"}}", "[1,2]"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        o = parse(none[i]);
        bool found = shape_usage(o, &in, &out);
        CHECK_MSG(found == (i == 4), "%s: found %d", none[i], found);
        CHECK_INT(in, 5);
        CHECK_INT(out, 5);
        json_object_put(o);
    }
}

TEST(shape_sse_rewrite_keeps_usage_and_renames)
{
    shape_sse_t s = SHAPE_SSE_INIT(0);
    buf_t out = {0};
    const char *stream =
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"backend-m\"}}\n\n"
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"backend-m\","
        "\"usage\":{\"input_tokens\":11,\"output_tokens\":22}}}\n\n";
    /* fed in awkward pieces, as a network would */
    for (size_t i = 0, n = strlen(stream); i < n; i += 7)
        shape_sse_feed(&s, stream + i, n - i < 7 ? n - i : 7, "client-m", &out);
    CHECK_INT(s.tokens_in, 11);
    CHECK_INT(s.tokens_out, 22);
    shape_sse_finish(&s, "client-m", &out);
    CHECK(out.data && strstr(out.data, "event: response.completed\n") != NULL);
    CHECK(out.data && strstr(out.data, "backend-m") == NULL);
    CHECK(out.data && strstr(out.data, "\"model\":\"client-m\"") != NULL);
    buf_free(&out);

    shape_sse_t none = SHAPE_SSE_INIT(0); /* a stream without usage leaves the counts unknown */
    shape_sse_feed(&none, "data: {\"model\":\"x\"}\n\n", 21, "y", &out);
    shape_sse_finish(&none, "y", &out);
    CHECK_INT(none.tokens_in, -1);
    CHECK_INT(none.tokens_out, -1);
    buf_free(&out);
}

TEST(shape_sse_rewrite_refuses_a_line_over_the_bound)
{
    shape_sse_t s = SHAPE_SSE_INIT(32);
    buf_t out = {0};
    CHECK_INT(shape_sse_feed(&s, "data: {\"model\":\"b\"}\n\n", 21, "c", &out), 0);
    CHECK_STR(out.data, "data: {\"model\":\"c\"}\n\n");
    char big[64];
    memset(big, 'x', sizeof big);
    CHECK_INT(shape_sse_feed(&s, "data: ", 6, "c", &out), 0);
    CHECK_INT(shape_sse_feed(&s, big, sizeof big, "c", &out), -1); /* never ends: refused at the bound */
    CHECK(s.lines.partial.data == NULL);
    shape_sse_finish(&s, "c", &out);
    CHECK_STR(out.data, "data: {\"model\":\"c\"}\n\n");
    buf_free(&out);
}

TEST(shape_agg_counts_the_text_folded_in)
{
    shape_agg_t *a = shape_agg_new(KIND_CHAT);
    CHECK_INT(shape_agg_size(a), 0);
    json_object *c1 = json_tokener_parse("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}");
    json_object *c2 = json_tokener_parse("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                                         "\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}");
    shape_agg_add(a, c1);
    shape_agg_add(a, c2);
    CHECK_INT(shape_agg_size(a), 5 + 7);
    json_object_put(c1);
    json_object_put(c2);
    shape_agg_free(a);
    CHECK_INT(shape_agg_size(NULL), 0);
}

/* The fast rename must give what parsing, shape_set_model and re-parsing give, or refuse. */
static void rename_case(const char *in, bool want_ok, const char *want)
{
    buf_t out = {0};
    bool ok = shape_rename_model_text(in, strlen(in), "\"client-m\"", &out);
    CHECK_MSG(ok == want_ok, "%s: fast path %s", in, ok ? "taken" : "refused");
    if (ok && want)
        CHECK_MSG(out.data && strcmp(out.data, want) == 0, "%s\n    got:  %s\n    want: %s", in, out.data ? out.data : "",
                  want);
    if (ok) { /* same meaning as the slow path */
        json_object *slow = json_tokener_parse(in), *fast = json_tokener_parse(out.data ? out.data : "");
        CHECK_MSG(slow && fast, "%s: both parse", in);
        if (slow && fast) {
            shape_set_model(slow, "client-m");
            CHECK_MSG(json_object_equal(slow, fast), "%s: same object as the slow path", in);
        }
        json_object_put(slow);
        json_object_put(fast);
    }
    buf_free(&out);
}

TEST(shape_rename_model_text_fast_path)
{
    rename_case("{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"backend-m\",\"choices\":[{\"index\":0,"
                "\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}",
                true,
                "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"client-m\",\"choices\":[{\"index\":0,"
                "\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}");
    /* bytes other than the model are kept exactly (spacing, number spelling) */
    rename_case("{ \"model\" : \"b\", \"x\": 1.50e2 , \"y\":-0.0001}", true, "{ \"model\" : \"client-m\", \"x\": 1.50e2 , \"y\":-0.0001}");
    /* nested "model" keys and values that look like keys are left alone */
    rename_case("{\"a\":{\"model\":\"inner\"},\"b\":[\"model\",\"x\"],\"model\":\"top\"}", true,
                "{\"a\":{\"model\":\"inner\"},\"b\":[\"model\",\"x\"],\"model\":\"client-m\"}");
    rename_case("{\"t\":\"a \\\"model\\\": \\\"x\\\" in text\",\"model\":\"m\"}", true,
                "{\"t\":\"a \\\"model\\\": \\\"x\\\" in text\",\"model\":\"client-m\"}");
    rename_case("{\"model\":\"esc\\\"aped\\\\\"}", true, "{\"model\":\"client-m\"}");
    rename_case("{\"no_model\":true}", true, "{\"no_model\":true}");
    rename_case("{\"usage\":null,\"model\":\"m\"}", true, "{\"usage\":null,\"model\":\"client-m\"}");
    rename_case("{\"emoji\":\"\xf0\x9f\x98\x80\",\"model\":\"m\"}", true, "{\"emoji\":\"\xf0\x9f\x98\x80\",\"model\":\"client-m\"}");
    /* refused: usage or error to read, odd model, not one object on one line, not JSON */
    rename_case("{\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1}}", false, NULL);
    rename_case("{\"error\":{\"message\":\"x\"}}", false, NULL);
    rename_case("{\"model\":null}", false, NULL);
    rename_case("{\"model\":\"a\",\"model\":\"b\"}", false, NULL);
    rename_case("{\"model\":\"m\",\n\"x\":1}", false, NULL);
    rename_case("[{\"model\":\"m\"}]", false, NULL);
    rename_case("{\"model\":\"m\"} {}", false, NULL);
    rename_case("{\"model\":\"m\"", false, NULL);
    rename_case("{\"model\":\"m}", false, NULL);
    rename_case("{\"x\":nonsense,\"model\":\"m\"}", false, NULL);
    rename_case("{\"x\":\"tab\tin string\"}", false, NULL);
    rename_case("{\"x\":1}]", false, NULL);
    rename_case("", false, NULL);
    /* an escaped top-level key is the parser's to read: "mod\u0065l" is "model", and a fast path
     * that took it for another key would pass the backend's name through (tests/fuzz/fuzz_shape.c) */
    rename_case("{\"mod\\u0065l\":\"backend-secret\",\"choices\":[]}", false, NULL);
    rename_case("{\"\\u0075sage\":{\"prompt_tokens\":1},\"model\":\"m\"}", false, NULL);
}
