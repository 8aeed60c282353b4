/* The ai_router API, over HTTP (POST /generate, POST /stream) and over gRPC
 * (ai_router.AIRouter): a provider, a model, a prompt and string parameters become a
 * one-message chat request through the same routing, keys and failover as /v1. */
#ifndef AIROUTER_GATEWAY_H
#define AIROUTER_GATEWAY_H
#include <json-c/json.h>

#include "worker/http/http.h"

enum MHD_Result gateway_generate(request_t *req);
enum MHD_Result gateway_stream(request_t *req);

#endif
