/* OpenAI-compatible backends (OpenAI, vLLM, llama.cpp, TGI, Mistral...): the request
 * already is what they expect, so this is the HTTP transport with OpenAI's paths. */
#include "worker/backend/http_backend.h"

static const char *kind_path(unsigned kind)
{
    switch (kind) {
    case KIND_CHAT: return "/chat/completions";
    case KIND_COMPLETIONS: return "/completions";
    default: return "/embeddings";
    }
}

/* The transport's calls are this backend's calls. */
static be_call_t *openai_open(const be_request_t *req, be_event_t *ev)
{
    hb_options_t opt = {.path = kind_path(req->kind), .stream_usage = true, .chunk_text = req->chunk_text,
                         .answer_text = req->answer_text};
    return (be_call_t *)hb_open(req, &opt, ev);
}

static void openai_next(be_call_t *c, be_event_t *ev, int wait_ms) { hb_next((hb_call_t *)c, ev, wait_ms); }
static void openai_close(be_call_t *c) { hb_close((hb_call_t *)c); }
static be_call_t *openai_open_raw(const be_raw_request_t *req, be_event_t *ev)
{
    return (be_call_t *)hb_open_raw(req, ev);
}
static void openai_next_raw(be_call_t *c, be_event_t *ev, int wait_ms) { hb_next_raw((hb_call_t *)c, ev, wait_ms); }

const backend_ops_t be_openai_ops = {
    .type = {"openai", KIND_ALL, CFG_URL_HTTP},
    .worker_init = hb_worker_init,
    .worker_cleanup = hb_worker_cleanup,
    .open = openai_open,
    .next = openai_next,
    .close = openai_close,
    .open_raw = openai_open_raw,
    .next_raw = openai_next_raw,
};
