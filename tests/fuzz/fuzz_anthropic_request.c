/* OpenAI chat request -> Anthropic Messages request (translate_request in
 * worker/backend/be_anthropic.c): a client's body, once it is a JSON object with a model, as the
 * API hands it to the backend. The result must serialise and hold a messages array.
 * The translation is static, so this file includes its source. */
#include "fuzz.h"

#include "worker/backend/be_anthropic.c"
#include "worker/oai/oai_shape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_object *body = shape_parse((const char *)data, size);
    if (!body || !json_object_is_type(body, json_type_object)) {
        json_object_put(body);
        return 0;
    }
    be_request_t req = {.kind = KIND_CHAT, .backend_model = "claude-backend", .client_model = "claude",
                        .body = body, .stream = size & 1, .max_tokens = (int)(size % 3) * 100};
    json_object *out = translate_request(&req), *messages;
    FUZZ_ASSERT(json_object_object_get_ex(out, "messages", &messages) &&
                json_object_is_type(messages, json_type_array));
    FUZZ_ASSERT(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN) != NULL);
    json_object_put(out);
    json_object_put(body);
    return 0;
}
