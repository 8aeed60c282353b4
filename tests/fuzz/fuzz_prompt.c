/* Prompt templates (common/prompt.c): a client's chat messages rendered with every
 * built-in format, as the Triton backend does. Input: the request's messages as JSON. */
#include "fuzz.h"

#include "common/prompt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_tokener *tok = json_tokener_new_ex(256);
    json_object *messages = json_tokener_parse_ex(tok, (const char *)data, (int)(size > 1 << 20 ? 1 << 20 : size));
    json_tokener_free(tok);
    if (!messages)
        return 0;
    for (const char *names = prompt_builtin_names(); *names;) {
        size_t n = strcspn(names, ",");
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)n, names);
        const prompt_format_t *f = prompt_builtin(name);
        FUZZ_ASSERT(f);
        buf_t out = {0};
        int rc = prompt_render(f, messages, &out);
        FUZZ_ASSERT(rc == 0 || !json_object_is_type(messages, json_type_array));
        FUZZ_ASSERT(!out.data || strlen(out.data) <= out.len);
        buf_free(&out);
        names += n + (names[n] == ',');
        names += strspn(names, " ");
    }
    json_object_put(messages);
    return 0;
}
