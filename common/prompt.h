/* Prompt formats: how a chat conversation becomes the one prompt string that models
 * served raw (Triton) take. A format is a set of role prefixes and suffixes; a
 * format without a system role folds the system text into the first user turn. */
#ifndef AIROUTER_PROMPT_H
#define AIROUTER_PROMPT_H
#include <json-c/json.h>
#include <stdbool.h>

#include "common/buf.h"

typedef struct {
    char *name;
    char *bos;                 /* once, at the start */
    char *system_prefix, *system_suffix;
    char *user_prefix, *user_suffix;
    char *assistant_prefix, *assistant_suffix;
    char *generation_prompt;   /* after the last message, to start the answer */
    bool system_in_user;       /* no system role: system text goes into the first user turn */
    char *eos;                 /* after each assistant turn of the history; NULL: none */
} prompt_format_t;

/* The built-in format called name, or NULL. */
const prompt_format_t *prompt_builtin(const char *name);
/* The built-in names, comma-separated (for messages). */
const char *prompt_builtin_names(void);
/* Appends the text of an OpenAI message content to out: a string as it is, or the text parts
 * of an array (strings, or objects with a string "text") with sep between them. */
void prompt_content_text(json_object *content, const char *sep, buf_t *out);
/* Renders OpenAI chat messages (array) with fmt into out. Content arrays have their
 * text parts joined with newlines; "tool" and "developer" messages count as user and
 * system. Returns -1 if messages is not an array. */
int prompt_render(const prompt_format_t *fmt, json_object *messages, buf_t *out);

#endif
