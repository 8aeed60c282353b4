/* Checks the fields of an OpenAI request that airouter itself reads, before it is routed,
 * so that every backend type refuses the same bad values with OpenAI's own errors. */
#ifndef AIROUTER_VALIDATE_H
#define AIROUTER_VALIDATE_H
#include <json-c/json.h>

typedef struct {
    char message[320];
    char param[64];  /* the offending field, e.g. "max_tokens" or "messages[0].role" */
    char code[48];   /* OpenAI's code, e.g. "integer_below_min_value" */
} validate_error_t;

/* Checks body (a JSON object) of a request of kind (KIND_CHAT, ...): messages (chat), max_tokens,
 * max_completion_tokens, n, temperature, top_p and stream. Absent and null fields pass, as do
 * fields it does not know. Returns 0, or -1 with err filled (400 invalid_request_error). */
int validate_request(unsigned kind, json_object *body, validate_error_t *err);

#endif
