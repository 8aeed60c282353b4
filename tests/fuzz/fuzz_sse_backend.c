/* The HTTP transport's SSE parser (worker/backend/http_backend.c): a backend's stream bytes, cut
 * into reads at fuzzed places, go through the line scanner and event dispatch exactly as
 * on_body feeds them; every queued chunk is handed out and freed as hb_next would; an
 * event or line over the bound (4 KB here) fails the call.
 * Input: byte 0 picks the read sizes, byte 1 bit 0 the chunk_text mode; the rest is the
 * stream. The parser is static, so this file includes its source. */
#include "fuzz.h"

#include "worker/backend/http_backend.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const cfg_backend_t be = {.name = (char *)"b", .type = (char *)"openai",
                                     .url = (char *)"http://10.0.0.1:8000/v1"};
    hb_call_t *c = calloc(1, sizeof *c);
    c->be = &be;
    c->stream = c->is_sse = true;
    c->backend_model = strdup("backend-model");
    c->client_model = strdup("client-model");
    c->chunk_text = data[1] & 1;
    c->max_event = 4096; /* small, so that the fuzzer reaches the bound (hb_open sets it from the config) */
    c->lines.max_line = c->max_event;
    if (c->chunk_text)
        buf_append_json_string(&c->model_json, c->client_model);
    uint8_t seed = data[0];
    data += 2, size -= 2;
    unsigned state = 0;
    for (size_t off = 0; off < size;) {
        size_t n = fuzz_piece(seed, size - off, &state);
        if (sse_feed(c, (const char *)data + off, n) < 0) /* on_body aborts the transfer */
            break;
        off += n;
        while (c->qlen) { /* hand everything out, as hb_next does */
            be_event_t ev = {0};
            queue_pop(c, &ev);
            if (ev.obj)
                FUZZ_ASSERT(json_object_is_type(ev.obj, json_type_object));
            else
                FUZZ_ASSERT(ev.data && ev.len == strlen(ev.data));
            json_object_put(ev.obj);
        }
    }
    if (!c->stream_failed)
        sse_end(c); /* the end of the transfer, as finish_event does */
    if (c->stream_failed)
        FUZZ_ASSERT(c->failure.type == BE_EV_ERROR && c->failure.status >= 400);
    call_free(c);
    return 0;
}
