#include "common/prompt.h"

#include <string.h>

#define F(n, bos, sp, ss, up, us, ap, as, gen, merge) {(char *)n, (char *)bos, (char *)sp, (char *)ss, (char *)up, (char *)us, (char *)ap, (char *)as, (char *)gen, merge, NULL}

/* Each model family's published chat template, as prefixes and suffixes. */
static const prompt_format_t builtins[] = {
    F("chatml", "", "<|im_start|>system\n", "<|im_end|>\n", "<|im_start|>user\n", "<|im_end|>\n",
      "<|im_start|>assistant\n", "<|im_end|>\n", "<|im_start|>assistant\n", false),
    F("llama2", "<s>", "<<SYS>>\n", "\n<</SYS>>\n\n", "[INST] ", " [/INST]", " ", " </s><s>", "", true),
    F("llama3", "<|begin_of_text|>", "<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>",
      "<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>",
      "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>",
      "<|start_header_id|>assistant<|end_header_id|>\n\n", false),
    F("mistral", "<s>", "", "\n\n", "[INST] ", " [/INST]", "", "</s>", "", true),
    F("gemma", "<bos>", "", "\n\n", "<start_of_turn>user\n", "<end_of_turn>\n", "<start_of_turn>model\n",
      "<end_of_turn>\n", "<start_of_turn>model\n", true),
    F("phi3", "", "<|system|>\n", "<|end|>\n", "<|user|>\n", "<|end|>\n", "<|assistant|>\n", "<|end|>\n",
      "<|assistant|>\n", false),
    F("zephyr", "", "<|system|>\n", "</s>\n", "<|user|>\n", "</s>\n", "<|assistant|>\n", "</s>\n", "<|assistant|>\n",
      false),
    F("alpaca", "", "", "\n\n", "### Instruction:\n", "\n\n", "### Response:\n", "\n\n", "### Response:\n", false),
    F("vicuna", "", "", " ", "USER: ", " ", "ASSISTANT: ", "</s>", "ASSISTANT:", false),
    F("plain", "", "", "\n\n", "", "\n\n", "", "\n\n", "", false),
};
#define NBUILTINS (sizeof builtins / sizeof builtins[0])

const prompt_format_t *prompt_builtin(const char *name)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return &builtins[i];
    return NULL;
}

const char *prompt_builtin_names(void)
{
    return "chatml, llama2, llama3, mistral, gemma, phi3, zephyr, alpaca, vicuna, plain";
}

void prompt_content_text(json_object *content, const char *sep, buf_t *out)
{
    if (json_object_is_type(content, json_type_string)) {
        buf_appends(out, json_object_get_string(content));
        return;
    }
    size_t n = json_object_is_type(content, json_type_array) ? json_object_array_length(content) : 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        json_object *part = json_object_array_get_idx(content, i), *t;
        if (json_object_is_type(part, json_type_string)) {
            t = part;
        } else if (!json_object_object_get_ex(part, "text", &t) || !json_object_is_type(t, json_type_string)) {
            continue;
        }
        if (!first)
            buf_appends(out, sep);
        buf_appends(out, json_object_get_string(t));
        first = false;
    }
}

/* A role that is missing or not a string (null, a number...) counts as the user's. */
static const char *role_of(json_object *m)
{
    json_object *r;
    const char *role = json_object_object_get_ex(m, "role", &r) && json_object_is_type(r, json_type_string)
                           ? json_object_get_string(r) : "user";
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
        return "system";
    if (strcmp(role, "assistant") == 0)
        return "assistant";
    return "user"; /* user, tool, function */
}

int prompt_render(const prompt_format_t *f, json_object *messages, buf_t *out)
{
    if (!json_object_is_type(messages, json_type_array))
        return -1;
    size_t n = json_object_array_length(messages);
    buf_t system = {0}, text = {0};
    /* All system text, in order, is one block. */
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(messages, i), *c;
        if (strcmp(role_of(m), "system") != 0 || !json_object_object_get_ex(m, "content", &c))
            continue;
        if (system.len)
            buf_appends(&system, "\n\n");
        prompt_content_text(c, "\n", &system);
    }
    buf_appends(out, f->bos);
    bool only_system = true, has_user = false;
    for (size_t i = 0; i < n; i++) {
        const char *role = role_of(json_object_array_get_idx(messages, i));
        only_system = only_system && strcmp(role, "system") == 0;
        has_user = has_user || strcmp(role, "user") == 0;
    }
    /* System text that is all there is, or that has no user turn to go into, is a user turn
     * of its own, first. */
    if (system.len && (only_system || (f->system_in_user && !has_user))) {
        buf_appends(out, f->user_prefix);
        buf_append(out, system.data, system.len);
        buf_appends(out, f->user_suffix);
        buf_reset(&system);
    }
    bool system_pending = system.len > 0;
    if (system_pending && !f->system_in_user) {
        buf_appends(out, f->system_prefix);
        buf_append(out, system.data, system.len);
        buf_appends(out, f->system_suffix);
        system_pending = false;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(messages, i), *c;
        const char *role = role_of(m);
        if (strcmp(role, "system") == 0)
            continue;
        buf_reset(&text);
        if (json_object_object_get_ex(m, "content", &c))
            prompt_content_text(c, "\n", &text);
        bool user = strcmp(role, "user") == 0;
        buf_appends(out, user ? f->user_prefix : f->assistant_prefix);
        if (user && system_pending) { /* the format has no system role */
            buf_appends(out, f->system_prefix);
            buf_append(out, system.data, system.len);
            buf_appends(out, f->system_suffix);
            system_pending = false;
        }
        if (text.len)
            buf_append(out, text.data, text.len);
        buf_appends(out, user ? f->user_suffix : f->assistant_suffix);
        if (!user && f->eos)
            buf_appends(out, f->eos);
    }
    buf_appends(out, f->generation_prompt);
    buf_free(&system);
    buf_free(&text);
    if (!out->data)
        buf_appends(out, "");
    return 0;
}
