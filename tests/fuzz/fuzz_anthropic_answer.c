/* Anthropic Messages answers -> OpenAI (worker/backend/be_anthropic.c): each input line is one
 * stream event's data (translate_event) and the whole input one non-streaming message
 * (translate_message), as a backend sends them. Byte 0 sets want_usage. Everything produced
 * must be a JSON object that serialises. The translation is static, so this file includes
 * its source. */
#include "fuzz.h"

#include "worker/backend/be_anthropic.c"
#include "worker/oai/oai_shape.h"

static be_call_t *new_call(bool want_usage)
{
    be_call_t *c = calloc(1, sizeof *c);
    c->stream = true;
    c->want_usage = want_usage;
    c->model = strdup("claude-backend");
    snprintf(c->id, sizeof c->id, "chatcmpl-anthropic");
    for (int i = 0; i < MAX_TOOL_BLOCKS; i++)
        c->tool_index[i] = -1;
    return c;
}

static void check_out(json_object *o)
{
    FUZZ_ASSERT(json_object_is_type(o, json_type_object));
    FUZZ_ASSERT(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) != NULL);
    json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool want_usage = data[0] & 1;
    data++, size--;
    be_call_t *c = new_call(want_usage);
    const char *p = (const char *)data, *end = p + size;
    while (p < end && !c->ended) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        json_object *ev = shape_parse(p, n);
        if (ev && json_object_is_type(ev, json_type_object)) { /* the transport passes objects only */
            json_object *out = translate_event(c, ev);
            if (out)
                check_out(out);
            if (c->queued) {
                check_out(c->queued);
                c->queued = NULL;
            }
        }
        json_object_put(ev);
        p += n + 1;
    }
    anthropic_close(c);

    json_object *msg = shape_parse((const char *)data, size);
    if (msg && json_object_is_type(msg, json_type_object)) {
        c = new_call(want_usage);
        c->stream = false;
        check_out(translate_message(c, msg));
        anthropic_close(c);
    }
    json_object_put(msg);
    return 0;
}
