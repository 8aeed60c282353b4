/* worker/oai/anthropic_shape.c: Anthropic errors, Messages -> chat requests, chat answers -> Messages
 * and Anthropic's stream events. */
#include "worker/oai/anthropic_shape.h"
#include "unit.h"
#include "unit_json.h"

#include <stdlib.h>
#include <string.h>

TEST(ashape_error_types_and_statuses)
{
    int st;
    CHECK_STR(ashape_error_type(400, &st), "invalid_request_error");
    CHECK_INT(st, 400);
    CHECK_STR(ashape_error_type(401, &st), "authentication_error");
    CHECK_STR(ashape_error_type(403, &st), "permission_error");
    CHECK_STR(ashape_error_type(404, &st), "not_found_error");
    CHECK_STR(ashape_error_type(413, &st), "request_too_large");
    CHECK_STR(ashape_error_type(429, &st), "rate_limit_error");
    CHECK_STR(ashape_error_type(503, &st), "overloaded_error");
    CHECK_INT(st, 529);
    CHECK_STR(ashape_error_type(502, &st), "api_error");
    CHECK_INT(st, 500);
    CHECK_STR(ashape_error_type(405, &st), "invalid_request_error");
    CHECK_INT(st, 405);
    buf_t b = {0};
    ashape_error_format(&b, "not_found_error", "no \"x\"");
    CHECK_STR(b.data, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"no \\\"x\\\"\"}}");
    buf_free(&b);
}

TEST(ashape_request_to_chat)
{
    json_object *req = parse(
        "{\"model\":\"m\",\"max_tokens\":50,\"temperature\":0.3,\"top_k\":4,\"stop_sequences\":[\"END\"],"
        "\"metadata\":{\"user_id\":\"u1\"},\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},"
        "\"system\":[{\"type\":\"text\",\"text\":\"sys\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
        "\"tools\":[{\"name\":\"t1\",\"description\":\"d\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"t1\",\"disable_parallel_tool_use\":true},"
        "\"messages\":["
        "{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"s\"},"
        "{\"type\":\"text\",\"text\":\"calling\"},{\"type\":\"tool_use\",\"id\":\"tu1\",\"name\":\"t1\",\"input\":{\"a\":1}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"tu1\",\"content\":[{\"type\":\"text\",\"text\":\"r1\"}]},"
        "{\"type\":\"text\",\"text\":\"and?\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"AAA=\"}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"tu2\",\"name\":\"t1\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"tu2\",\"content\":\"bad\",\"is_error\":true}]}"
        "]}");
    char err[300] = "";
    const char *param = NULL;
    json_object *c = ashape_to_chat(req, err, sizeof err, &param);
    if (!CHECK_MSG(c != NULL, "translation failed: %s", err)) {
        json_object_put(req);
        return;
    }
    CHECK_INT(json_object_get_int(at(c, "max_tokens")), 50);
    CHECK_INT(json_object_get_int(at(c, "top_k")), 4);
    CHECK_STR(str_at(c, "stop.0"), "END");
    CHECK_STR(str_at(c, "user"), "u1");
    CHECK(at(c, "thinking") == NULL);
    CHECK_STR(str_at(c, "messages.0.role"), "system");
    CHECK_STR(str_at(c, "messages.0.content"), "sys");
    CHECK_STR(str_at(c, "messages.1.content"), "hi");
    CHECK_STR(str_at(c, "messages.2.role"), "assistant");
    CHECK_STR(str_at(c, "messages.2.content"), "calling");
    CHECK_STR(str_at(c, "messages.2.tool_calls.0.id"), "tu1");
    CHECK_STR(str_at(c, "messages.2.tool_calls.0.function.arguments"), "{\"a\":1}");
    /* the tool answer comes first, then the rest of the user's turn */
    CHECK_STR(str_at(c, "messages.3.role"), "tool");
    CHECK_STR(str_at(c, "messages.3.tool_call_id"), "tu1");
    CHECK_STR(str_at(c, "messages.3.content"), "r1");
    CHECK_STR(str_at(c, "messages.4.role"), "user");
    CHECK_STR(str_at(c, "messages.4.content.0.text"), "and?");
    CHECK_STR(str_at(c, "messages.4.content.1.image_url.url"), "data:image/png;base64,AAA=");
    json_object *content = (json_object *)1;
    CHECK(json_object_object_get_ex(at(c, "messages.5"), "content", &content) && content == NULL); /* null: only calls */
    CHECK_STR(str_at(c, "messages.5.tool_calls.0.function.arguments"), "{}");
    CHECK_STR(str_at(c, "messages.6.content"), "Error: bad");
    CHECK_STR(str_at(c, "tools.0.function.name"), "t1");
    CHECK_STR(str_at(c, "tools.0.function.parameters.type"), "object");
    CHECK_STR(str_at(c, "tool_choice.function.name"), "t1");
    CHECK(at(c, "parallel_tool_calls") && !json_object_get_boolean(at(c, "parallel_tool_calls")));
    json_object_put(c);
    json_object_put(req);
}

TEST(ashape_request_refusals)
{
    static const struct {
        const char *json, *param;
    } cases[] = {
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"document\"}]}]}",
         "messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"type\":\"bash_20250124\",\"name\":\"bash\"}],"
         "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "tools"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"mcp_servers\":[],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "mcp_servers"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tool_choice\":{\"type\":\"maybe\"},"
         "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "tool_choice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *req = parse(cases[i].json);
        char err[300] = "";
        const char *param = NULL;
        json_object *c = ashape_to_chat(req, err, sizeof err, &param);
        CHECK_MSG(c == NULL && err[0], "case %zu translated: %s", i, cases[i].json);
        CHECK_MSG(param && strcmp(param, cases[i].param) == 0, "case %zu: param %s, want %s", i, param ? param : "NULL",
                  cases[i].param);
        json_object_put(c);
        json_object_put(req);
    }
}

TEST(ashape_completion_to_message)
{
    json_object *comp = parse(
        "{\"choices\":[{\"index\":0,\"finish_reason\":\"tool_calls\",\"message\":{\"role\":\"assistant\",\"content\":\"ok\","
        "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":2}\"}},"
        "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"\"}}]}}],"
        "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":5}}");
    char err[200];
    json_object *m = ashape_from_completion(comp, "client-model", NULL, err, sizeof err);
    if (CHECK(m != NULL)) {
        CHECK_STR(str_at(m, "type"), "message");
        CHECK_STR(str_at(m, "model"), "client-model");
        CHECK_STR(str_at(m, "stop_reason"), "tool_use");
        CHECK_STR(str_at(m, "content.0.text"), "ok");
        CHECK_STR(str_at(m, "content.1.type"), "tool_use");
        CHECK_STR(str_at(m, "content.1.id"), "c1");
        CHECK_INT(json_object_get_int(at(m, "content.1.input.x")), 2);
        CHECK_STR(str_at(m, "content.2.name"), "g");
        CHECK(json_object_is_type(at(m, "content.2.input"), json_type_object));
        CHECK_INT(json_object_get_int(at(m, "usage.input_tokens")), 11);
        CHECK_INT(json_object_get_int(at(m, "usage.output_tokens")), 5);
    }
    json_object_put(m);
    json_object_put(comp);

    /* vLLM names the stop string that ended it: stop_sequence */
    json_object *stops = parse("[null,\"###\"]"); /* a null entry is skipped, not compared */
    comp = parse("{\"choices\":[{\"finish_reason\":\"stop\",\"stop_reason\":\"###\",\"message\":{\"content\":\"a\"}}]}");
    m = ashape_from_completion(comp, "m", stops, err, sizeof err);
    CHECK_STR(str_at(m, "stop_reason"), "stop_sequence");
    CHECK_STR(str_at(m, "stop_sequence"), "###");
    json_object_put(m);
    json_object_put(comp);
    comp = parse("{\"choices\":[{\"finish_reason\":\"length\",\"message\":{\"content\":\"a\"}}]}");
    m = ashape_from_completion(comp, "m", stops, err, sizeof err);
    CHECK_STR(str_at(m, "stop_reason"), "max_tokens");
    json_object_put(m);
    json_object_put(comp);
    /* arguments that are not an object cannot become a tool_use input: refused, not guessed */
    comp = parse("{\"choices\":[{\"finish_reason\":\"tool_calls\",\"message\":{\"tool_calls\":[{\"id\":\"c\","
                 "\"function\":{\"name\":\"f\",\"arguments\":\"{oops\"}}]}}]}");
    m = ashape_from_completion(comp, "m", NULL, err, sizeof err);
    CHECK(m == NULL);
    json_object_put(comp);
    json_object_put(stops);
}

/* The event names of an SSE text, comma-separated. */
static void event_names(const char *sse, char *out, size_t n)
{
    out[0] = '\0';
    for (const char *p = sse; (p = strstr(p, "event: ")); p += 7) {
        const char *e = strchr(p, '\n');
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%.*s", len ? "," : "", (int)(e - p - 7), p + 7);
    }
}

TEST(ashape_stream_order_text_and_tools)
{
    static const char *const chunks[] = {
        "{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c2\",\"function\":{\"name\":\"g\",\"arguments\":\"\"}}]}}]}",
        "{\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4}}",
    };
    ashape_stream_t s;
    ashape_stream_init(&s, "cm", NULL, 7);
    buf_t out = {0};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        json_object *c = parse(chunks[i]);
        ashape_stream_chunk(&s, c, &out);
        json_object_put(c);
    }
    ashape_stream_finish(&s, &out);
    char names[1024];
    event_names(out.data, names, sizeof names);
    CHECK_STR(names, "message_start,content_block_start,ping,content_block_delta,content_block_stop,"
                     "content_block_start,content_block_delta,content_block_delta,content_block_stop,"
                     "content_block_start,content_block_delta,content_block_stop,message_delta,message_stop");
    /* message_start: the estimate until the backend counts; message_delta: the backend's counts */
    CHECK(strstr(out.data, "\"usage\":{\"input_tokens\":7,\"output_tokens\":1}") != NULL);
    CHECK(strstr(out.data, "\"usage\":{\"input_tokens\":9,\"output_tokens\":4}") != NULL);
    CHECK(strstr(out.data, "\"stop_reason\":\"tool_use\"") != NULL);
    CHECK(strstr(out.data, "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}") != NULL); /* the tool without arguments */
    CHECK(strstr(out.data, "\"model\":\"cm\"") != NULL);
    buf_free(&out);
    ashape_stream_free(&s);
}

TEST(ashape_stream_empty_and_whole)
{
    ashape_stream_t s;
    buf_t out = {0};
    char names[512];
    ashape_stream_init(&s, "m", NULL, 3);
    ashape_stream_finish(&s, &out);
    event_names(out.data, names, sizeof names);
    CHECK_STR(names, "message_start,content_block_start,ping,content_block_stop,message_delta,message_stop");
    CHECK(strstr(out.data, "\"stop_reason\":\"end_turn\"") != NULL);
    buf_free(&out);
    ashape_stream_free(&s);

    ashape_stream_init(&s, "m", NULL, 3);
    json_object *comp = parse("{\"choices\":[{\"finish_reason\":\"length\",\"message\":{\"content\":\"abc\"}}],"
                              "\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}");
    ashape_stream_completion(&s, comp, &out);
    ashape_stream_finish(&s, &out);
    event_names(out.data, names, sizeof names);
    CHECK_STR(names, "message_start,content_block_start,ping,content_block_delta,content_block_stop,message_delta,"
                     "message_stop");
    CHECK(strstr(out.data, "\"input_tokens\":2,\"output_tokens\":1") != NULL);
    CHECK(strstr(out.data, "\"stop_reason\":\"max_tokens\"") != NULL);
    json_object_put(comp);
    buf_free(&out);
    ashape_stream_free(&s);

    ashape_stream_error(&out, "overloaded_error", "busy");
    CHECK_STR(out.data, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n");
    buf_free(&out);
}

TEST(ashape_estimate)
{
    json_object *a = parse("{\"messages\":[{\"role\":\"user\",\"content\":\"abcd abcd abcd abcd\"}]}");
    json_object *b = parse("{\"system\":\"a long system prompt of some words\",\"messages\":[{\"role\":\"user\","
                           "\"content\":[{\"type\":\"text\",\"text\":\"abcd abcd abcd abcd\"}]}]}");
    long long na = ashape_estimate_tokens(a), nb = ashape_estimate_tokens(b);
    CHECK_MSG(na >= 5 && na <= 12, "estimate %lld", na);
    CHECK_MSG(nb > na, "system counts: %lld vs %lld", nb, na);
    json_object_put(a);
    json_object_put(b);
}

/* Claude Code's tools answer with images (screenshots): the tool message keeps the text, the
 * images follow in the user's part of the turn. */
TEST(ashape_tool_result_with_image)
{
    json_object *req = parse(
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
        "{\"role\":\"user\",\"content\":\"look\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"shot\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":["
        "{\"type\":\"text\",\"text\":\"here\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"QUJD\"}}]}]}]}");
    char err[300] = "";
    const char *param = NULL;
    json_object *c = ashape_to_chat(req, err, sizeof err, &param);
    if (CHECK_MSG(c != NULL, "translation failed: %s", err)) {
        CHECK_STR(str_at(c, "messages.2.role"), "tool");
        CHECK_STR(str_at(c, "messages.2.content"), "here");
        CHECK_STR(str_at(c, "messages.3.role"), "user");
        CHECK_STR(str_at(c, "messages.3.content.0.image_url.url"), "data:image/png;base64,QUJD");
        CHECK(at(c, "messages.4") == NULL);
    }
    json_object_put(c);
    json_object_put(req);
}

/* A backend tool call without an id still gets one, whole or streamed: a client answers a
 * tool_use by its id. */
TEST(ashape_tool_call_without_id_gets_one)
{
    json_object *comp = parse("{\"choices\":[{\"finish_reason\":\"tool_calls\",\"message\":{\"tool_calls\":["
                              "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}");
    char err[200];
    json_object *m = ashape_from_completion(comp, "m", NULL, err, sizeof err);
    const char *id = str_at(m, "content.0.id");
    CHECK_MSG(id && strncmp(id, "toolu_", 6) == 0 && strlen(id) == 6 + 24, "id %s", id ? id : "NULL");
    CHECK_STR(str_at(m, "content.0.name"), "f");
    json_object_put(m);
    json_object_put(comp);

    ashape_stream_t s;
    ashape_stream_init(&s, "m", NULL, 1);
    buf_t out = {0};
    json_object *c = parse("{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"g\"}}]}}]}");
    ashape_stream_chunk(&s, c, &out);
    json_object_put(c);
    const char *start = out.data ? strstr(out.data, "\"type\":\"tool_use\",\"id\":\"toolu_") : NULL;
    CHECK_MSG(start != NULL, "no tool_use with an id in: %s", out.data ? out.data : "");
    /* an index past the blocks it can track is ignored, not written out of bounds */
    c = parse("{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":64,\"id\":\"x\",\"function\":{\"name\":\"h\"}},"
              "{\"index\":-1,\"id\":\"y\",\"function\":{\"name\":\"h\"}}]}}]}");
    size_t before = out.len;
    ashape_stream_chunk(&s, c, &out);
    CHECK_INT(out.len, before);
    json_object_put(c);
    buf_free(&out);
    ashape_stream_free(&s);
}

TEST(ashape_request_tool_choice_system_and_stream)
{
    static const struct {
        const char *choice, *want_str, *want_fn;
    } cases[] = {
        {"{\"type\":\"auto\"}", "auto", NULL},
        {"{\"type\":\"any\"}", "required", NULL},
        {"{\"type\":\"none\"}", "none", NULL},
        {"{\"type\":\"tool\",\"name\":\"t1\"}", NULL, "t1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"model\":\"m\",\"max_tokens\":5,\"system\":\"be brief\",\"stream\":true,\"stop_sequences\":[],"
                 "\"tools\":[{\"name\":\"t1\",\"input_schema\":{\"type\":\"object\"}}],\"tool_choice\":%s,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                 cases[i].choice);
        json_object *req = parse(json);
        char err[300] = "";
        const char *param = NULL;
        json_object *c = ashape_to_chat(req, err, sizeof err, &param);
        if (CHECK_MSG(c != NULL, "%s: %s", cases[i].choice, err)) {
            if (cases[i].want_str)
                CHECK_STR(str_at(c, "tool_choice"), cases[i].want_str);
            else {
                CHECK_STR(str_at(c, "tool_choice.type"), "function");
                CHECK_STR(str_at(c, "tool_choice.function.name"), cases[i].want_fn);
            }
            CHECK_ABSENT(c, "parallel_tool_calls");
            CHECK_STR(str_at(c, "messages.0.role"), "system");
            CHECK_STR(str_at(c, "messages.0.content"), "be brief");
            CHECK_STR(str_at(c, "messages.1.content"), "x");
            CHECK(json_object_get_boolean(at(c, "stream")));
            CHECK_ABSENT(c, "stop"); /* no sequences: no stop */
            CHECK_STR(str_at(c, "tools.0.type"), "function");
        }
        json_object_put(c);
        json_object_put(req);
    }
}

TEST(ashape_request_type_refusals)
{
    static const struct {
        const char *extra, *param;
    } cases[] = {
        {"\"temperature\":\"0.5\"", "temperature"},
        {"\"top_p\":true", "top_p"},
        {"\"top_k\":1.5", "top_k"},
        {"\"stop_sequences\":\"END\"", "stop_sequences"},
        {"\"stop_sequences\":[\"a\",1]", "stop_sequences"},
        {"\"stream\":\"yes\"", "stream"},
        {"\"system\":5", "system"},
        {"\"tools\":{}", "tools"},
        {"\"tools\":[{\"input_schema\":{\"type\":\"object\"}}]", "tools"},
        {"\"tools\":[{\"name\":\"t\"}]", "tools"},
        {"\"tool_choice\":{}", "tool_choice"},
        {"\"tool_choice\":{\"type\":\"tool\"}", "tool_choice"},
        {"\"container\":\"c\"", "container"},
        {"\"max_tokens\":2.5", "max_tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s}",
                 cases[i].extra);
        json_object *req = parse(json);
        char err[300] = "";
        const char *param = NULL;
        json_object *c = ashape_to_chat(req, err, sizeof err, &param);
        CHECK_MSG(c == NULL && err[0] && param && strcmp(param, cases[i].param) == 0, "%s: %s (param %s)",
                  cases[i].extra, c ? "translated" : err, param ? param : "NULL");
        json_object_put(c);
        json_object_put(req);
    }
}

TEST(ashape_finish_reason_mapping)
{
    static const char *const map[][2] = {
        {"\"stop\"", "end_turn"},         {"\"length\"", "max_tokens"},     {"\"tool_calls\"", "tool_use"},
        {"\"function_call\"", "tool_use"}, {"\"content_filter\"", "refusal"}, {"null", "end_turn"},
        {"\"something_new\"", "end_turn"},
    };
    json_object *stops = parse("[\"###\"]");
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char json[256];
        /* a stop_reason that is not one of the request's sequences does not make a stop_sequence */
        snprintf(json, sizeof json,
                 "{\"choices\":[{\"finish_reason\":%s,\"stop_reason\":\"other\",\"message\":{\"content\":\"a\"}}]}",
                 map[i][0]);
        json_object *comp = parse(json);
        char err[200];
        json_object *m = ashape_from_completion(comp, "m", stops, err, sizeof err);
        CHECK_MSG(str_at(m, "stop_reason") && strcmp(str_at(m, "stop_reason"), map[i][1]) == 0, "%s -> %s, want %s",
                  map[i][0], str_at(m, "stop_reason"), map[i][1]);
        CHECK_NULL_AT(m, "stop_sequence");
        json_object_put(m);
        json_object_put(comp);
    }
    json_object_put(stops);
}
