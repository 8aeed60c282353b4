/* Anthropic's Messages API for clients, as pure JSON work: its error shape, a Messages request
 * turned into an OpenAI chat request, and an OpenAI chat answer (whole, or chunk by chunk) turned
 * back into a Message or into Anthropic's stream events. */
#ifndef AIROUTER_ANTHROPIC_SHAPE_H
#define AIROUTER_ANTHROPIC_SHAPE_H
#include <json-c/json.h>
#include <stdbool.h>

#include "common/buf.h"

/* Anthropic's status and error type for an error airouter answers with status: 400
 * invalid_request_error, 401 authentication_error, 403 permission_error, 404 not_found_error,
 * 413 request_too_large, 429 rate_limit_error, 503/529 overloaded_error (529), other 5xx api_error
 * (500); other 4xx keep their status as invalid_request_error. */
const char *ashape_error_type(int status, int *out_status);
/* Appends {"type":"error","error":{"type":type,"message":message}}. Returns 0, -1 without memory. */
int ashape_error_format(buf_t *out, const char *type, const char *message);

/* Builds the OpenAI chat request for a Messages request (caller owns it). NULL when the request
 * is malformed or asks for what a chat backend cannot do: then err says why and *param names the
 * field. Dropped on the way (see airouter.8): cache_control, thinking, service_tier, citations
 * settings; refused: server tools, documents, mcp_servers, container. */
json_object *ashape_to_chat(json_object *req, char *err, size_t errlen, const char **param);

/* A rough count of the tokens a Messages request's input holds (about 4 bytes of text each),
 * for backends that cannot count them. */
long long ashape_estimate_tokens(json_object *req);

/* The Message for a whole OpenAI chat completion (caller owns it); stop_sequences is the
 * request's (may be NULL). NULL with err set when the completion cannot be expressed (tool
 * arguments that are not a JSON object). */
json_object *ashape_from_completion(json_object *completion, const char *model, json_object *stop_sequences,
                                    char *err, size_t errlen);

/* OpenAI chat chunks in, Anthropic stream events out:
 *   message_start, content_block_start, ping (after the first block opens), content_block_delta
 *   (text_delta / input_json_delta), content_block_stop, message_delta, message_stop. */
typedef struct {
    char *model;                /* owned */
    char id[40];
    json_object *stop_sequences; /* the request's (owned ref), NULL: none */
    long long input_estimate;   /* for message_start when the backend has not counted yet */
    bool started, pinged, finished;
    int nblocks;                /* blocks opened so far */
    int open;                   /* index of the open block, -1 none */
    bool open_is_tool;
    bool open_tool_has_args;
    int tool_block[64];         /* OpenAI tool_call index -> block index, -1 none */
    char stop_reason[32];
    char stop_sequence[256];
    bool has_stop_sequence;
    long long tokens_in, tokens_out; /* from the backend's usage; -1 unknown */
} ashape_stream_t;

/* stop_sequences: the request's (may be NULL; a reference is taken). */
void ashape_stream_init(ashape_stream_t *s, const char *model, json_object *stop_sequences, long long input_estimate);
/* Appends the events one chunk makes. */
void ashape_stream_chunk(ashape_stream_t *s, json_object *chunk, buf_t *out);
/* Appends the events for a whole completion (a backend that answered without streaming). */
void ashape_stream_completion(ashape_stream_t *s, json_object *completion, buf_t *out);
/* Closes the open block and appends message_delta and message_stop. */
void ashape_stream_finish(ashape_stream_t *s, buf_t *out);
/* Appends an error event. */
void ashape_stream_error(buf_t *out, const char *type, const char *message);
void ashape_stream_free(ashape_stream_t *s);

#endif
