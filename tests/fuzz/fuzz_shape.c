/* OpenAI answer shaping (worker/oai/oai_shape.c): each input line is a JSON answer or stream
 * chunk from a backend. Each goes through the parser, the model renaming (the text fast
 * path must agree with the parsed one), usage reading and stream synthesis; all chunks
 * are folded into a completion (chat and text), which is streamed again. */
#include "fuzz.h"

#include "common/config.h"
#include "worker/oai/oai_shape.h"

#define MODEL "client-model"

/* What the text fast path produced must be the object with its model (if any) renamed. */
static void check_rename(const char *line, size_t n, json_object *parsed)
{
    buf_t text = {0};
    if (!shape_rename_model_text(line, n, "\"" MODEL "\"", &text) || !json_object_is_type(parsed, json_type_object)) {
        buf_free(&text);
        return;
    }
    json_object *renamed = shape_parse(text.data, text.len), *model;
    FUZZ_ASSERT(renamed && json_object_is_type(renamed, json_type_object));
    if (json_object_object_get_ex(parsed, "model", NULL))
        FUZZ_ASSERT(json_object_object_get_ex(renamed, "model", &model) && json_object_is_type(model, json_type_string) &&
                    strcmp(json_object_get_string(model), MODEL) == 0);
    else
        FUZZ_ASSERT(!json_object_object_get_ex(renamed, "model", NULL));
    FUZZ_ASSERT(json_object_object_length(renamed) == json_object_object_length(parsed));
    json_object_put(renamed);
    buf_free(&text);
}

/* Every event of a synthesised stream is "data: <JSON object>\n\n". */
static void check_stream(const buf_t *out)
{
    if (!out->data)
        return;
    const char *p = out->data, *end = out->data + out->len;
    while (p < end) {
        FUZZ_ASSERT(end - p > 6 && memcmp(p, "data: ", 6) == 0);
        const char *e = memmem(p, (size_t)(end - p), "\n\n", 2);
        FUZZ_ASSERT(e);
        json_object *o = shape_parse(p + 6, (size_t)(e - p - 6));
        FUZZ_ASSERT(o && json_object_is_type(o, json_type_object));
        json_object_put(o);
        p = e + 2;
    }
}

static void synthesise(unsigned kind, json_object *completion)
{
    buf_t out = {0};
    if (shape_synthesise(kind, completion, true, &out) == 0)
        check_stream(&out);
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    shape_agg_t *chat = shape_agg_new(KIND_CHAT), *text = shape_agg_new(KIND_COMPLETIONS);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        json_object *obj = shape_parse(p, n);
        check_rename(p, n, obj);
        if (obj && json_object_is_type(obj, json_type_object)) {
            long long in = -1, out = -1;
            shape_usage(obj, &in, &out);
            shape_agg_add(chat, obj);
            shape_agg_add(text, obj);
            synthesise(KIND_CHAT, obj);
            synthesise(KIND_COMPLETIONS, obj);
            shape_set_models(obj, MODEL);
            buf_t sse = {0};
            shape_append_sse(&sse, obj);
            check_stream(&sse);
            buf_free(&sse);
        }
        json_object_put(obj);
        p += n + 1;
    }
    json_object *c = shape_agg_finish(chat), *t = shape_agg_finish(text);
    synthesise(KIND_CHAT, c);
    synthesise(KIND_COMPLETIONS, t);
    json_object_put(c);
    json_object_put(t);
    shape_agg_free(chat);
    shape_agg_free(text);
    return 0;
}
