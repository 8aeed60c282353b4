/* Triton answers (handle_response in worker/backend/be_triton.c): the ModelStreamInferResponse
 * messages a Triton server streams back, decoded and turned into OpenAI chunks or one
 * completion, as triton_next does once gRPC has handed a message over.
 * Input: byte 0 picks the call (bit 0 stream, bit 1 completions rather than chat, bit 3
 * cumulative_output, bit 4 strip_prompt, bit 5 want_usage, bit 6 renamed tensors),
 * then messages, each a 2-byte little-endian length and that many protobuf bytes.
 * The decoding is static, so this file includes its source. */
#include "fuzz.h"

#include "worker/backend/be_triton.c"

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
    static char *renamed[] = {(char *)"text_output=out", (char *)"finish_reason=why", NULL};
    static const cfg_backend_t be = {.name = (char *)"triton", .type = (char *)"triton",
                                     .url = (char *)"127.0.0.1:8001"};
    uint8_t flags = data[0];
    cfg_model_t m = {.name = (char *)"m", .profile = PROFILE_TRTLLM, .cumulative_output = flags & 8,
                     .strip_prompt = flags & 16, .tensor_names = flags & 64 ? renamed : NULL,
                     .ntensor_names = flags & 64 ? 2 : 0};
    be_call_t *c = calloc(1, sizeof *c);
    c->be = &be;
    c->model = &m;
    c->kind = flags & 2 ? KIND_COMPLETIONS : KIND_CHAT;
    c->stream = flags & 1;
    c->want_usage = flags & 32;
    c->client_fd = -1;
    c->backend_model = strdup("backend-model");
    c->client_model = strdup("client-model");
    c->prompt_tokens = c->completion_tokens = -1;
    c->max_tokens = 16;
    c->prompt = m.strip_prompt ? strdup("<|user|>hi") : NULL;
    snprintf(c->id, sizeof c->id, "chatcmpl-fuzz");

    for (size_t off = 1; off + 2 <= size && !c->finished && !c->failed;) {
        size_t n = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (n > size - off)
            n = size - off;
        Inference__ModelStreamInferResponse *r = inference__model_stream_infer_response__unpack(NULL, n, data + off);
        off += n;
        if (!r)
            break; /* triton_next fails the call here */
        be_event_t ev = {0};
        bool ok = handle_response(c, r, &ev);
        inference__model_stream_infer_response__free_unpacked(r, NULL);
        if (!ok)
            FUZZ_ASSERT(ev.type == BE_EV_ERROR && ev.status == 502);
        while (c->nqueued > 0) { /* handed out, as triton_next does */
            json_object *o = c->queued[0];
            memmove(c->queued, c->queued + 1, (size_t)(--c->nqueued) * sizeof c->queued[0]);
            check_out(o);
        }
    }
    if (c->finished && !c->stream) {
        check_out(make_completion(c));
    }
    call_free(c);
    return 0;
}
