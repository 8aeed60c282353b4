/* The Messages API translation (worker/oai/anthropic_shape.c), both ways. The first byte picks
 * what the rest is: a client's Messages request (-> OpenAI chat request, token estimate), a
 * backend's chat completion (-> Message, and -> the events of a stream), or a backend's chat
 * stream, one chunk per line (-> Anthropic's events). Invariants: a refused request says why; a
 * translated one has a messages array; a stream always ends with message_delta and
 * message_stop, and every data line it writes is one JSON object. */
#include "fuzz.h"

#include "worker/oai/anthropic_shape.h"
#include "worker/oai/oai_shape.h"

/* Every "data: " line of out parses, and the last event is message_stop. */
static void check_events(const buf_t *out)
{
    FUZZ_ASSERT(out->len > 0);
    const char *end = out->data + out->len;
    for (const char *p = out->data; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        FUZZ_ASSERT(nl != NULL);
        if (nl - p > 6 && memcmp(p, "data: ", 6) == 0) {
            json_object *o = shape_parse(p + 6, (size_t)(nl - p - 6));
            FUZZ_ASSERT(o && json_object_is_type(o, json_type_object));
            json_object_put(o);
        }
        p = nl + 1;
    }
    static const char tail[] = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    FUZZ_ASSERT(out->len >= sizeof tail - 1 && memcmp(end - (sizeof tail - 1), tail, sizeof tail - 1) == 0);
    FUZZ_ASSERT(strstr(out->data, "event: message_delta\n") != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    json_object *stops = json_tokener_parse("[\"###\", \"END\"]");
    if (mode == 0) {
        json_object *req = shape_parse(text, len);
        if (req && json_object_is_type(req, json_type_object)) {
            char err[300] = "";
            const char *param = NULL;
            json_object *chat = ashape_to_chat(req, err, sizeof err, &param), *messages;
            if (chat)
                FUZZ_ASSERT(json_object_object_get_ex(chat, "messages", &messages) &&
                            json_object_is_type(messages, json_type_array));
            else
                FUZZ_ASSERT(err[0] != '\0' && param != NULL);
            FUZZ_ASSERT(ashape_estimate_tokens(req) >= 0);
            json_object_put(chat);
        }
        json_object_put(req);
    } else if (mode == 1) {
        json_object *completion = shape_parse(text, len);
        if (completion && json_object_is_type(completion, json_type_object)) {
            char err[200] = "";
            json_object *msg = ashape_from_completion(completion, "client-model", stops, err, sizeof err), *content;
            if (msg)
                FUZZ_ASSERT(json_object_object_get_ex(msg, "content", &content) &&
                            json_object_is_type(content, json_type_array) && json_object_array_length(content) > 0);
            else
                FUZZ_ASSERT(err[0] != '\0');
            json_object_put(msg);
            ashape_stream_t s;
            buf_t out = {0};
            ashape_stream_init(&s, "client-model", stops, 5);
            ashape_stream_completion(&s, completion, &out);
            ashape_stream_finish(&s, &out);
            check_events(&out);
            buf_free(&out);
            ashape_stream_free(&s);
        }
        json_object_put(completion);
    } else {
        ashape_stream_t s;
        buf_t out = {0};
        ashape_stream_init(&s, "client-model", stops, 5);
        for (size_t off = 0; off < len;) {
            const char *nl = memchr(text + off, '\n', len - off);
            size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
            json_object *chunk = shape_parse(text + off, n);
            if (chunk && json_object_is_type(chunk, json_type_object))
                ashape_stream_chunk(&s, chunk, &out);
            json_object_put(chunk);
            off += n + 1;
        }
        ashape_stream_finish(&s, &out);
        check_events(&out);
        buf_free(&out);
        ashape_stream_free(&s);
    }
    json_object_put(stops);
    return 0;
}
