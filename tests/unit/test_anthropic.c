/* worker/backend/be_anthropic.c: the OpenAI <-> Messages translations, on malformed input (found by
 * tests/fuzz/fuzz_anthropic_request.c and fuzz_anthropic_answer.c). A null where a string is
 * expected, from a client or a backend, must not crash the worker. The translations are
 * static, so this file includes the source (its object is left out of the link). */
#include <unistd.h>

#include "worker/backend/be_anthropic.c"
#include "unit.h"

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
