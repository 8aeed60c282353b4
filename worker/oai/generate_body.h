/* The chat request the ai_router API makes of a prompt and its string parameters (POST /generate
 * and /stream, and ai_router.AIRouter over gRPC). */
#ifndef AIROUTER_GENERATE_BODY_H
#define AIROUTER_GENERATE_BODY_H
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* Builds the chat request body (owned by the caller) for a prompt, max_tokens (0: the
 * model's default) and the string parameters (an object of strings, may be NULL),
 * whose values become numbers or booleans where the OpenAI field expects one. Returns
 * NULL with a reason in err when a parameter cannot be converted. */
json_object *generate_body_chat(const char *prompt, long max_tokens, json_object *params, bool stream, char *err,
                                size_t errlen);

#endif
