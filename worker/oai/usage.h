/* Token usage in answers, whichever API made them: chat and completions, embeddings, the
 * Responses API, images, audio, Anthropic's Messages API. Read from a parsed object, or found
 * in bytes as they are relayed (JSON bodies and SSE streams) without parsing anything but the
 * usage objects themselves. */
#ifndef AIROUTER_USAGE_H
#define AIROUTER_USAGE_H
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

typedef struct {
    long long in, out, cached; /* prompt, completion, and cached prompt tokens; -1 not reported */
} usage_t;
#define USAGE_NONE {-1, -1, -1}

/* Reads a usage object: prompt_tokens or input_tokens (Anthropic's cache_creation_input_tokens
 * and cache_read_input_tokens added: it counts them apart), completion_tokens or output_tokens,
 * and cached tokens from prompt_tokens_details.cached_tokens, input_tokens_details.cached_tokens
 * or cache_read_input_tokens. Counts it does not find are left as they were. True if it found
 * prompt or completion tokens. */
bool usage_read(json_object *usage, usage_t *u);
/* usage_read of obj.usage, else obj.response.usage (Responses API events), else
 * obj.message.usage (Anthropic's message_start). */
bool usage_from_answer(json_object *obj, usage_t *u);

/* The completion tokens a JSON request asks for at most: max_completion_tokens, max_tokens or
 * max_output_tokens; 0 when it does not say. */
long long usage_max_tokens_asked(json_object *body);
/* A JSON request body's "model" (copied into model; false when the body is not a JSON object
 * with a model string that fits) and usage_max_tokens_asked. */
bool usage_request_model(const char *body, size_t len, char *model, size_t model_len, long long *max_tokens);

/* Finds every "usage": {...} object in a byte stream fed in pieces of any size (a JSON answer
 * or an SSE stream), parses only those, and merges their counts, later ones over earlier ones
 * (a stream's last usage is its total; Anthropic sends input and output in separate events).
 * Also counts SSE data lines (a client that leaves a stream pays a token per event).
 * A usage object longer than USAGE_SCAN_MAX is skipped. */
#define USAGE_SCAN_MAX 8192
typedef struct {
    usage_t found;              /* USAGE_NONE until a usage object is seen */
    long long events;           /* "data:" lines seen */
    /* scanner state */
    int state, matched, line_pos, depth;
    bool in_string, escaped;
    buf_t object;
} usage_scan_t;
void usage_scan_init(usage_scan_t *s);
void usage_scan_feed(usage_scan_t *s, const char *p, size_t n);
void usage_scan_free(usage_scan_t *s);

#endif
