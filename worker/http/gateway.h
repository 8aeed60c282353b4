/* The ai_router API, over HTTP (POST /generate, POST /stream) and over gRPC
 * (ai_router.AIRouter): a provider, a model, a prompt and string parameters become a
 * one-message chat request through the same routing, keys and failover as /v1. */
#ifndef AIROUTER_GATEWAY_H
#define AIROUTER_GATEWAY_H
#include <json-c/json.h>

#include "worker/http/http.h"

enum MHD_Result gateway_generate(request_t *req);
enum MHD_Result gateway_stream(request_t *req);

/* Builds the chat request body (owned by the caller) for a prompt, max_tokens (0: the
 * model's default) and the string parameters (an object of strings, may be NULL),
 * whose values become numbers or booleans where the OpenAI field expects one. Returns
 * NULL with a reason in err when a parameter cannot be converted. */
json_object *gateway_chat_body(const char *prompt, long max_tokens, json_object *params, bool stream, char *err,
                               size_t errlen);

#endif
