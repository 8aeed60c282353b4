/* Anthropic's Messages API for clients: POST /v1/messages and /v1/messages/count_tokens.
 * Anthropic backends get the request relayed (only the model replaced); the others get it
 * translated to an OpenAI chat request and their answer translated back. */
#ifndef AIROUTER_MESSAGES_H
#define AIROUTER_MESSAGES_H
#include "worker/http/http.h"

enum MHD_Result messages_create(request_t *req);
enum MHD_Result messages_count_tokens(request_t *req);

#endif
