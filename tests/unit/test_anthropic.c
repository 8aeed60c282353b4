/* worker/backend/be_anthropic.c: the OpenAI <-> Messages translations, on well-formed requests,
 * answers and stream events, and on malformed input (as tests/fuzz/fuzz_anthropic_request.c and
 * fuzz_anthropic_answer.c send it). A null where a string is expected, from a client or a backend,
 * must not crash the worker. The translations are static, so this file includes the source (its
 * object is left out of the link). */
#include <unistd.h>

#include "worker/backend/be_anthropic.c"
#include "unit.h"
#include "unit_json.h"

/* {"role":null}, null content parts, null tool call ids and names: every message still
 * becomes a turn, a null role counting as the user's. Exits 0 if so. */
static void request_with_nulls(void)
{
    json_object *body = json_tokener_parse(
        "{\"model\":\"c\",\"messages\":[{\"role\":null,\"content\":\"hi\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":null,\"text\":\"a\"},{\"type\":\"text\",\"text\":null}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":null,\"function\":{\"name\":null}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":null,\"content\":\"r\"}]}");
    be_request_t req = {.kind = KIND_CHAT, .backend_model = "claude-b", .client_model = "c", .body = body};
    json_object *out = translate_request(&req), *messages, *first, *role;
    int ok = json_object_object_get_ex(out, "messages", &messages) && json_object_array_length(messages) == 3 &&
             (first = json_object_array_get_idx(messages, 0)) && json_object_object_get_ex(first, "role", &role) &&
             strcmp(json_object_get_string(role), "user") == 0;
    json_object_put(out);
    json_object_put(body);
    _exit(ok ? 0 : 1);
}

/* Stream events and a message with null types, texts and stop reasons. */
static void answer_with_nulls(void)
{
    be_call_t c = {.model = strdup("claude-b"), .stream = true};
    for (int i = 0; i < MAX_TOOL_BLOCKS; i++)
        c.tool_index[i] = -1;
    static const char *const events[] = {
        "{\"type\":null}",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":null}}",
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":null}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":null}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":null}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":null}}",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null}}",
    };
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        json_object *ev = json_tokener_parse(events[i]);
        json_object_put(translate_event(&c, ev));
        json_object_put(ev);
    }
    json_object *msg = json_tokener_parse("{\"content\":[{\"type\":null},{\"type\":\"text\",\"text\":null}],"
                                          "\"stop_reason\":null}");
    json_object *out = translate_message(&c, msg);
    int ok = json_object_is_type(out, json_type_object);
    json_object_put(out);
    json_object_put(msg);
    free(c.model);
    _exit(ok ? 0 : 1);
}

TEST(anthropic_request_nulls_do_not_crash)
{
    int rc = unit_run_child(request_with_nulls);
    CHECK_MSG(rc == 0, "an OpenAI request with null roles, types, ids: child status %d (1: wrong translation, "
                       ">128 or UBSan's 1: crashed)", rc);
}

TEST(anthropic_answer_nulls_do_not_crash)
{
    int rc = unit_run_child(answer_with_nulls);
    CHECK_MSG(rc == 0, "Anthropic events and a message with null types and texts: child status %d", rc);
}

/* ---- the translations on well-formed input ---- */

static json_object *request_for(const char *json, int model_max_tokens, bool stream)
{
    json_object *body = parse(json);
    be_request_t req = {.kind = KIND_CHAT, .backend_model = "claude-b", .client_model = "c", .body = body,
                        .max_tokens = model_max_tokens, .stream = stream};
    json_object *out = translate_request(&req);
    json_object_put(body);
    return out;
}

TEST(anthropic_request_system_roles_and_turns)
{
    json_object *m = request_for(
        "{\"model\":\"c\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"no jokes\"}]},"
        "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"},"
        "{\"role\":\"assistant\",\"content\":\"\"},"
        "{\"role\":\"assistant\",\"content\":\"c\",\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}},{\"id\":\"call_2\",\"type\":\"function\","
        "\"function\":{\"name\":\"g\",\"arguments\":\"not json\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"r1\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"r2\"}]},"
        "{\"role\":\"user\",\"content\":\"d\"}]}",
        0, false);
    /* system and developer messages join the top-level system, in order */
    CHECK_STR(str_at(m, "system"), "be brief\n\nno jokes");
    CHECK_STR(str_at(m, "model"), "claude-b");
    /* same-role turns merge (Anthropic wants them to alternate), an empty turn is dropped */
    CHECK_INT(len_at(m, "messages"), 3);
    CHECK_STR(str_at(m, "messages.0.role"), "user");
    CHECK_STR(str_at(m, "messages.0.content.0.text"), "a");
    CHECK_STR(str_at(m, "messages.0.content.1.text"), "b");
    CHECK_STR(str_at(m, "messages.1.role"), "assistant");
    CHECK_STR(str_at(m, "messages.1.content.0.text"), "c");
    CHECK_STR(str_at(m, "messages.1.content.1.type"), "tool_use");
    CHECK_STR(str_at(m, "messages.1.content.1.id"), "call_1");
    CHECK_STR(str_at(m, "messages.1.content.1.name"), "f");
    CHECK_INT(int_at(m, "messages.1.content.1.input.x"), 1);
    /* arguments that are not a JSON object become an empty input */
    CHECK(json_object_is_type(at(m, "messages.1.content.2.input"), json_type_object) &&
          json_object_object_length(at(m, "messages.1.content.2.input")) == 0);
    /* tool answers are tool_result blocks of one user turn, with the user's next words */
    CHECK_STR(str_at(m, "messages.2.role"), "user");
    CHECK_STR(str_at(m, "messages.2.content.0.type"), "tool_result");
    CHECK_STR(str_at(m, "messages.2.content.0.tool_use_id"), "call_1");
    CHECK_STR(str_at(m, "messages.2.content.0.content"), "r1");
    CHECK_STR(str_at(m, "messages.2.content.1.tool_use_id"), "call_2");
    CHECK_STR(str_at(m, "messages.2.content.1.content"), "r2");
    CHECK_STR(str_at(m, "messages.2.content.2.text"), "d");
    CHECK_ABSENT(m, "stream");
    json_object_put(m);
}

TEST(anthropic_request_tools_and_tool_choice)
{
    static const struct {
        const char *choice, *type, *name;
    } cases[] = {
        {"\"auto\"", "auto", NULL},
        {"\"required\"", "any", NULL},
        {"\"none\"", "none", NULL},
        {"{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", "tool", "f"},
        {"{\"type\":\"weird\"}", "auto", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":%s,\"tools\":["
                 "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\","
                 "\"parameters\":{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}}},"
                 "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}]}",
                 cases[i].choice);
        json_object *m = request_for(json, 0, false);
        CHECK_MSG(str_at(m, "tool_choice.type") && strcmp(str_at(m, "tool_choice.type"), cases[i].type) == 0,
                  "tool_choice %s: %s", cases[i].choice, str_at(m, "tool_choice.type"));
        CHECK_STR(str_at(m, "tool_choice.name"), cases[i].name);
        CHECK_STR(str_at(m, "tools.0.name"), "f");
        CHECK_STR(str_at(m, "tools.0.description"), "d");
        CHECK_STR(str_at(m, "tools.0.input_schema.properties.q.type"), "string");
        /* a function without parameters still has an object schema, which Anthropic requires */
        CHECK_STR(str_at(m, "tools.1.name"), "g");
        CHECK_STR(str_at(m, "tools.1.input_schema.type"), "object");
        json_object_put(m);
    }
    /* tool_choice without tools: Anthropic refuses it, so it is left out */
    json_object *m = request_for("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\","
                                 "\"tools\":[]}",
                                 0, false);
    CHECK_ABSENT(m, "tools");
    CHECK_ABSENT(m, "tool_choice");
    json_object_put(m);
}

TEST(anthropic_request_images)
{
    json_object *m = request_for(
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/webp;base64,UklGRg==\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/a.png\",\"detail\":\"high\"}},"
        "{\"type\":\"image_url\",\"image_url\":\"https://example.com/b.png\"},"
        "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AA==\",\"format\":\"wav\"}}]}]}",
        0, false);
    CHECK_STR(str_at(m, "messages.0.content.0.text"), "what?");
    CHECK_STR(str_at(m, "messages.0.content.1.type"), "image");
    CHECK_STR(str_at(m, "messages.0.content.1.source.type"), "base64");
    CHECK_STR(str_at(m, "messages.0.content.1.source.media_type"), "image/webp");
    CHECK_STR(str_at(m, "messages.0.content.1.source.data"), "UklGRg==");
    CHECK_STR(str_at(m, "messages.0.content.2.source.type"), "url");
    CHECK_STR(str_at(m, "messages.0.content.2.source.url"), "https://example.com/a.png");
    CHECK_STR(str_at(m, "messages.0.content.3.source.url"), "https://example.com/b.png");
    CHECK_INT(len_at(m, "messages.0.content"), 4); /* no Anthropic block for audio */
    json_object_put(m);
}

TEST(anthropic_request_stop_max_tokens_and_sampling)
{
    /* max_tokens: the request's, max_completion_tokens first; else the model's default; else 4096 */
    static const struct {
        const char *extra;
        int model_default;
        long long want;
    } mt[] = {
        {"", 0, DEFAULT_MAX_TOKENS},
        {"", 300, 300},
        {",\"max_tokens\":50", 300, 50},
        {",\"max_tokens\":50,\"max_completion_tokens\":70", 300, 70},
        {",\"max_tokens\":0", 300, 300},
        {",\"max_tokens\":\"50\"", 0, DEFAULT_MAX_TOKENS},
        {",\"max_tokens\":12.0", 0, 12},
    };
    for (size_t i = 0; i < sizeof mt / sizeof mt[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]%s}", mt[i].extra);
        json_object *m = request_for(json, mt[i].model_default, false);
        CHECK_MSG(int_at(m, "max_tokens") == mt[i].want, "%s (model default %d): max_tokens %lld, want %lld",
                  mt[i].extra, mt[i].model_default, int_at(m, "max_tokens"), mt[i].want);
        json_object_put(m);
    }
    json_object *m = request_for("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":\"END\","
                                 "\"temperature\":1.7,\"top_p\":0.5,\"user\":\"u-1\",\"stream\":true}",
                                 0, true);
    CHECK_INT(len_at(m, "stop_sequences"), 1);
    CHECK_STR(str_at(m, "stop_sequences.0"), "END");
    CHECK(json_object_get_double(at(m, "temperature")) == 1.0); /* OpenAI's 0-2 clamped to 0-1 */
    CHECK(json_object_get_double(at(m, "top_p")) == 0.5);
    CHECK_STR(str_at(m, "metadata.user_id"), "u-1");
    CHECK(json_object_get_boolean(at(m, "stream")));
    json_object_put(m);
    m = request_for("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\"],\"temperature\":-1}", 0,
                    false);
    CHECK_INT(len_at(m, "stop_sequences"), 2);
    CHECK_STR(str_at(m, "stop_sequences.1"), "b");
    CHECK(json_object_get_double(at(m, "temperature")) == 0.0);
    json_object_put(m);
    m = request_for("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":null}", 0, false);
    CHECK_ABSENT(m, "stop_sequences");
    json_object_put(m);
}

static be_call_t *answer_call(bool stream, bool want_usage)
{
    be_call_t *c = calloc(1, sizeof *c);
    c->model = strdup("claude-b");
    c->stream = stream;
    c->want_usage = want_usage;
    c->created = 1700000000;
    snprintf(c->id, sizeof c->id, "chatcmpl-anthropic");
    for (int i = 0; i < MAX_TOOL_BLOCKS; i++)
        c->tool_index[i] = -1;
    return c;
}

static void answer_call_free(be_call_t *c)
{
    json_object_put(c->queued);
    free(c->model);
    free(c);
}

TEST(anthropic_answer_text_tools_and_usage)
{
    be_call_t *c = answer_call(false, false);
    json_object *msg = parse(
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-real\","
        "\"content\":[{\"type\":\"text\",\"text\":\"Hel\"},{\"type\":\"thinking\",\"thinking\":\"hm\"},"
        "{\"type\":\"text\",\"text\":\"lo\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{\"a\":[1]}}],"
        "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
        "\"usage\":{\"input_tokens\":12,\"output_tokens\":7}}");
    json_object *o = translate_message(c, msg);
    CHECK_STR(str_at(o, "object"), "chat.completion");
    CHECK_STR(str_at(o, "id"), "chatcmpl-msg_1");
    CHECK_STR(str_at(o, "model"), "claude-real");
    CHECK_STR(str_at(o, "choices.0.message.role"), "assistant");
    CHECK_STR(str_at(o, "choices.0.message.content"), "Hello");
    CHECK_STR(str_at(o, "choices.0.message.tool_calls.0.id"), "toolu_1");
    CHECK_STR(str_at(o, "choices.0.message.tool_calls.0.type"), "function");
    CHECK_STR(str_at(o, "choices.0.message.tool_calls.0.function.name"), "f");
    CHECK_STR(str_at(o, "choices.0.message.tool_calls.0.function.arguments"), "{\"a\":[1]}");
    CHECK_STR(str_at(o, "choices.0.finish_reason"), "tool_calls");
    CHECK_INT(int_at(o, "usage.prompt_tokens"), 12);
    CHECK_INT(int_at(o, "usage.completion_tokens"), 7);
    CHECK_INT(int_at(o, "usage.total_tokens"), 19);
    json_object_put(o);
    json_object_put(msg);
    /* only tool calls: content is null, as OpenAI sends it */
    msg = parse("{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}],\"stop_reason\":\"tool_use\"}");
    o = translate_message(c, msg);
    CHECK_NULL_AT(o, "choices.0.message.content");
    CHECK_STR(str_at(o, "choices.0.message.tool_calls.0.function.arguments"), "{}");
    json_object_put(o);
    json_object_put(msg);
    /* no content at all: an empty string */
    msg = parse("{\"content\":[],\"stop_reason\":\"end_turn\"}");
    o = translate_message(c, msg);
    CHECK_STR(str_at(o, "choices.0.message.content"), "");
    json_object_put(o);
    json_object_put(msg);
    answer_call_free(c);
}

TEST(anthropic_stop_reason_mapping)
{
    static const char *const map[][2] = {
        {"end_turn", "stop"},        {"stop_sequence", "stop"},   {"max_tokens", "length"},
        {"tool_use", "tool_calls"},  {"refusal", "content_filter"}, {"model_context_window_exceeded", "length"},
        {"pause_turn", "stop"},      {"something_new", "stop"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        CHECK_MSG(strcmp(finish_reason(map[i][0]), map[i][1]) == 0, "%s -> %s, want %s", map[i][0],
                  finish_reason(map[i][0]), map[i][1]);
    CHECK_STR(finish_reason(NULL), "stop");
}

/* Feeds events to translate_event and collects the chunks, queued ones included. */
static json_object *stream_events(be_call_t *c, const char *const *events, size_t n)
{
    json_object *chunks = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *ev = parse(events[i]);
        json_object *ch = translate_event(c, ev);
        if (ch)
            json_object_array_add(chunks, ch);
        if (c->queued) {
            json_object_array_add(chunks, c->queued);
            c->queued = NULL;
        }
        json_object_put(ev);
    }
    return chunks;
}

TEST(anthropic_stream_events_to_chunks)
{
    static const char *const events[] = {
        "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"type\":\"message\",\"role\":\"assistant\","
        "\"content\":[],\"model\":\"claude-real\",\"stop_reason\":null,\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        "{\"type\":\"ping\"}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}",
        "{\"type\":\"content_block_stop\",\"index\":0}",
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_a\","
        "\"name\":\"f\",\"input\":{}}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}",
        "{\"type\":\"content_block_stop\",\"index\":1}",
        "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_b\","
        "\"name\":\"g\",\"input\":{}}}",
        "{\"type\":\"content_block_stop\",\"index\":2}",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
        "\"usage\":{\"output_tokens\":15}}",
        "{\"type\":\"message_stop\"}",
    };
    be_call_t *c = answer_call(true, true);
    json_object *ch = stream_events(c, events, sizeof events / sizeof events[0]);
    /* role, "Hi", tool a opens, two argument pieces, tool b opens, its "{}", the finish, usage */
    if (CHECK_INT(json_object_array_length(ch), 9)) {
        CHECK_STR(str_at(ch, "0.object"), "chat.completion.chunk");
        CHECK_STR(str_at(ch, "0.id"), "chatcmpl-msg_9");
        CHECK_STR(str_at(ch, "0.model"), "claude-real");
        CHECK_STR(str_at(ch, "0.choices.0.delta.role"), "assistant");
        CHECK_STR(str_at(ch, "1.choices.0.delta.content"), "Hi");
        CHECK_INT(int_at(ch, "2.choices.0.delta.tool_calls.0.index"), 0);
        CHECK_STR(str_at(ch, "2.choices.0.delta.tool_calls.0.id"), "toolu_a");
        CHECK_STR(str_at(ch, "2.choices.0.delta.tool_calls.0.function.name"), "f");
        CHECK_STR(str_at(ch, "3.choices.0.delta.tool_calls.0.function.arguments"), "{\"q\":");
        CHECK_STR(str_at(ch, "4.choices.0.delta.tool_calls.0.function.arguments"), "1}");
        CHECK_ABSENT(ch, "4.choices.0.delta.tool_calls.0.id");
        CHECK_INT(int_at(ch, "5.choices.0.delta.tool_calls.0.index"), 1);
        CHECK_STR(str_at(ch, "5.choices.0.delta.tool_calls.0.id"), "toolu_b");
        CHECK_STR(str_at(ch, "6.choices.0.delta.tool_calls.0.function.arguments"), "{}");
        CHECK_STR(str_at(ch, "7.choices.0.finish_reason"), "tool_calls");
        CHECK_NULL_AT(ch, "1.choices.0.finish_reason");
        CHECK_INT(len_at(ch, "8.choices"), 0);
        CHECK_INT(int_at(ch, "8.usage.prompt_tokens"), 20);
        CHECK_INT(int_at(ch, "8.usage.completion_tokens"), 15); /* message_delta's count is cumulative */
        CHECK_INT(int_at(ch, "8.usage.total_tokens"), 35);
    }
    CHECK(c->ended);
    json_object_put(ch);
    answer_call_free(c);

    /* without include_usage no usage chunk; a stop_sequence finishes with "stop", max_tokens with "length" */
    static const char *const short_events[][3] = {
        {"{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":1}}}",
         "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"##\"}}",
         "{\"type\":\"message_stop\"}"},
        {"{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}",
         "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"}}", "{\"type\":\"message_stop\"}"},
    };
    static const char *const want[] = {"stop", "length"};
    for (int i = 0; i < 2; i++) {
        c = answer_call(true, false);
        ch = stream_events(c, short_events[i], 3);
        CHECK_INT(json_object_array_length(ch), 2);
        CHECK_STR(str_at(ch, "1.choices.0.finish_reason"), want[i]);
        json_object_put(ch);
        answer_call_free(c);
    }
}
