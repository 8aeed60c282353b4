/* Reshaping OpenAI responses: the client-facing model name, aggregating a stream
 * into one completion, and synthesising a stream from one completion. */
#ifndef AIROUTER_OAI_SHAPE_H
#define AIROUTER_OAI_SHAPE_H
#include <json-c/json.h>
#include <stdbool.h>

#include "common/buf.h"
#include "common/lines.h"

/* How deep JSON may nest (objects and arrays): json-c's default of 32 refuses real tool
 * schemas. Parsing is iterative, but serialising and freeing recurse once per level: at this
 * depth they take under 32 KB of a request thread's stack. */
#define SHAPE_MAX_DEPTH 256

typedef enum { SHAPE_PARSE_OK, SHAPE_PARSE_INVALID, SHAPE_PARSE_TOO_DEEP } shape_parse_status_t;

/* Parses exactly one JSON value from data (surrounding whitespace allowed); NULL if the
 * text is not that. Reuses a per-thread parser: allocating one per call is costly. */
json_object *shape_parse(const char *data, size_t len);
/* shape_parse, saying why it failed in *status (may be NULL). */
json_object *shape_parse_status(const char *data, size_t len, shape_parse_status_t *status);

/* A new response object holding id, object ("chat.completion", "chat.completion.chunk",
 * "text_completion"), created and model: the start of a completion or chunk (caller owns it). */
json_object *shape_envelope(const char *id, const char *object, long long created, const char *model);

/* choices[0].<field>.content of a completion (field "message") or chunk ("delta"); "" if none. */
const char *shape_choice_text(json_object *obj, const char *field);

/* Sets obj.model to model when obj has a model field. */
void shape_set_model(json_object *obj, const char *model);
/* Serialises obj compactly. The string belongs to obj. */
const char *shape_json(json_object *obj, size_t *len);
/* Appends "data: <obj>\n\n". */
int shape_append_sse(buf_t *out, json_object *obj);

/* Sets model in obj and in a nested "response" object (the Responses API's events
 * carry the model there) or "message" object (Anthropic's message_start). */
void shape_set_models(json_object *obj, const char *model);

/* Rewrites the JSON data lines of an SSE stream as it passes (shape_set_models),
 * keeping every other line (event:, id:, comments) as it is. */
typedef struct {
    lines_t lines;   /* the scanner, holding a partial line */
    const char *model;
    buf_t *out;
    long long tokens_in, tokens_out; /* from the last event with usage (shape_usage); -1 none */
} shape_sse_t;
/* longest: the longest line the stream may carry (0: no bound). */
#define SHAPE_SSE_INIT(longest) {.lines = {.max_line = (longest)}, .tokens_in = -1, .tokens_out = -1}

/* Whether line (one line of an SSE stream, without its terminator) is a "data:" field: its
 * value, without the one space that may follow the colon, in *value and *vlen. */
bool shape_sse_data(const char *line, size_t len, const char **value, size_t *vlen);

/* Reads token usage from obj.usage, obj.response.usage (the Responses API) or obj.message.usage
 * (Anthropic's message_start), in either naming: prompt_tokens/completion_tokens or
 * input_tokens/output_tokens; Anthropic's cache_creation/cache_read_input_tokens count as input. Leaves a count it does not find
 * as it was; false if there is no usage object. */
bool shape_usage(json_object *obj, long long *in, long long *out);
/* Appends the rewritten lines that p completes to out. Returns 0, or -1 when a line is
 * longer than the bound (or memory ran out): the stream must end there. */
int shape_sse_feed(shape_sse_t *s, const char *p, size_t n, const char *model, buf_t *out);
/* Emits a last unterminated line, and frees the state. */
void shape_sse_finish(shape_sse_t *s, const char *model, buf_t *out);

/* Appends the JSON object text p with its top-level "model" string replaced by model_json
 * (a JSON string literal, quotes included), without parsing it. False (out untouched unless
 * memory ran out) when the text is not plainly one object on one line, or has a
 * top-level "usage" or "error" that is not null, or a "model" that is not a string: such
 * chunks must go through the parser. */
bool shape_rename_model_text(const char *p, size_t n, const char *model_json, buf_t *out);

typedef struct shape_agg shape_agg_t;
shape_agg_t *shape_agg_new(unsigned kind);
/* Folds one stream chunk in (does not take ownership). */
void shape_agg_add(shape_agg_t *agg, json_object *chunk);
/* Bytes of text (content, tool arguments) folded in so far; 0 for NULL. */
size_t shape_agg_size(const shape_agg_t *agg);
/* Builds the completion object (caller owns it). */
json_object *shape_agg_finish(shape_agg_t *agg);
void shape_agg_free(shape_agg_t *agg);

/* Appends the SSE chunks equivalent to a whole completion (without [DONE]).
 * include_usage adds OpenAI's usage-only last chunk. */
int shape_synthesise(unsigned kind, json_object *completion, bool include_usage, buf_t *out);

#endif
