/* common/prompt.c: chat messages rendered into one prompt string per format.
 *
 * The expected strings are written from each model family's published chat template
 * (the Hugging Face tokenizer_config.json chat_template, or the project's documented
 * prompt format), rendered as text with add_generation_prompt = true:
 *   chatml  ChatML (OpenAI / Qwen / OpenHermes): <|im_start|>ROLE\n...<|im_end|>\n
 *   llama2  Llama-2-chat: bos + "[INST] " ... " [/INST]" per user turn, system in <<SYS>> inside
 *           the first user turn, assistant " " + text + " " + eos; bos again before every [INST]
 *   llama3  Meta-Llama-3-Instruct: <|begin_of_text|>, header ids, content, <|eot_id|>
 *   mistral Mistral-7B-Instruct-v0.1 (tokenizer V1): "<s>[INST] " + user + " [/INST]" +
 *           assistant + "</s>"; mistral-common V1 puts the system prompt before the first user
 *           message, separated by "\n\n"
 *   gemma   Gemma instruct: <bos><start_of_turn>user\n...<end_of_turn>\n, assistant is "model";
 *           no system role: Gemma 3's template puts it in the first user turn + "\n\n"
 *   phi3    Phi-3 / Phi-3.5 instruct: <|system|>\n...<|end|>\n<|user|>\n...<|end|>\n<|assistant|>\n
 *   zephyr  zephyr-7b-beta: <|system|>\n...</s>\n<|user|>\n...</s>\n, generation "<|assistant|>\n"
 *   alpaca  Stanford Alpaca (text-generation-webui's Alpaca template for chats): system + "\n\n",
 *           "### Instruction:\n" + user + "\n\n", "### Response:\n" + assistant + "\n\n"
 *   vicuna  FastChat vicuna_v1.1: system + " USER: " + user + " ASSISTANT: " + assistant + "</s>"
 *   plain   no published template: role-less text, each message's text on its own paragraph
 *           (an assumption; see the test). */
#include <json-c/json.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/prompt.h"
#include "unit.h"

/* The conversation every built-in format is checked with. */
static const char *const CONVO =
    "[{\"role\":\"system\",\"content\":\"You are helpful.\"},"
    "{\"role\":\"user\",\"content\":\"Hello\"},"
    "{\"role\":\"assistant\",\"content\":\"Hi there!\"},"
    "{\"role\":\"user\",\"content\":\"How are you?\"}]";

/* Renders messages_json with the format named fmt (built-in) or given; returns a malloc'd
 * string or NULL (and records why). */
static char *render_with(const prompt_format_t *f, const char *messages_json)
{
    json_object *msgs = json_tokener_parse(messages_json);
    if (!CHECK_MSG(msgs != NULL, "fixture JSON does not parse: %s", messages_json))
        return NULL;
    buf_t out = {0};
    int rc = prompt_render(f, msgs, &out);
    json_object_put(msgs);
    if (!CHECK_MSG(rc == 0, "prompt_render(%s) returned %d", f ? f->name : "NULL", rc)) {
        buf_free(&out);
        return NULL;
    }
    char *s = strdup(out.data ? out.data : "");
    buf_free(&out);
    return s;
}

static char *render(const char *fmt, const char *messages_json)
{
    const prompt_format_t *f = prompt_builtin(fmt);
    if (!CHECK_MSG(f != NULL, "built-in prompt format '%s' is missing", fmt))
        return NULL;
    return render_with(f, messages_json);
}

#define EXPECT_RENDER(fmt_, json_, want_)                                                   \
    do {                                                                                     \
        char *got_ = render((fmt_), (json_));                                                \
        if (got_)                                                                            \
            CHECK_MSG(strcmp(got_, (want_)) == 0, "format %s:\n  got  \"%s\"\n  want \"%s\"", \
                      (fmt_), got_, (want_));                                                \
        free(got_);                                                                          \
    } while (0)

/* ---- one multi-turn conversation with a system message, per built-in format ---- */

TEST(prompt_builtin_chatml)
{
    EXPECT_RENDER("chatml", CONVO,
                  "<|im_start|>system\nYou are helpful.<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there!<|im_end|>\n"
                  "<|im_start|>user\nHow are you?<|im_end|>\n"
                  "<|im_start|>assistant\n");
}

TEST(prompt_builtin_llama2)
{
    EXPECT_RENDER("llama2", CONVO,
                  "<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello [/INST]"
                  " Hi there! </s>"
                  "<s>[INST] How are you? [/INST]");
}

TEST(prompt_builtin_llama3)
{
    EXPECT_RENDER("llama3", CONVO,
                  "<|begin_of_text|>"
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(prompt_builtin_mistral)
{
    EXPECT_RENDER("mistral", CONVO,
                  "<s>[INST] You are helpful.\n\nHello [/INST]"
                  "Hi there!</s>"
                  "[INST] How are you? [/INST]");
}

TEST(prompt_builtin_gemma)
{
    EXPECT_RENDER("gemma", CONVO,
                  "<bos><start_of_turn>user\nYou are helpful.\n\nHello<end_of_turn>\n"
                  "<start_of_turn>model\nHi there!<end_of_turn>\n"
                  "<start_of_turn>user\nHow are you?<end_of_turn>\n"
                  "<start_of_turn>model\n");
}

TEST(prompt_builtin_phi3)
{
    EXPECT_RENDER("phi3", CONVO,
                  "<|system|>\nYou are helpful.<|end|>\n"
                  "<|user|>\nHello<|end|>\n"
                  "<|assistant|>\nHi there!<|end|>\n"
                  "<|user|>\nHow are you?<|end|>\n"
                  "<|assistant|>\n");
}

TEST(prompt_builtin_zephyr)
{
    EXPECT_RENDER("zephyr", CONVO,
                  "<|system|>\nYou are helpful.</s>\n"
                  "<|user|>\nHello</s>\n"
                  "<|assistant|>\nHi there!</s>\n"
                  "<|user|>\nHow are you?</s>\n"
                  "<|assistant|>\n");
}

TEST(prompt_builtin_alpaca)
{
    EXPECT_RENDER("alpaca", CONVO,
                  "You are helpful.\n\n"
                  "### Instruction:\nHello\n\n"
                  "### Response:\nHi there!\n\n"
                  "### Instruction:\nHow are you?\n\n"
                  "### Response:\n");
}

TEST(prompt_builtin_vicuna)
{
    EXPECT_RENDER("vicuna", CONVO,
                  "You are helpful. USER: Hello ASSISTANT: Hi there!</s>USER: How are you? ASSISTANT:");
}

/* "plain" has no model family: what matters is that no markup is added and every message's
 * text arrives in order. Checked loosely (order, no special tokens), plus the exact string
 * for a single user message, which can only be the text itself. */
TEST(prompt_builtin_plain)
{
    char *got = render("plain", CONVO);
    if (got) {
        const char *a = strstr(got, "You are helpful.");
        const char *b = a ? strstr(a, "Hello") : NULL;
        const char *c = b ? strstr(b, "Hi there!") : NULL;
        const char *d = c ? strstr(c, "How are you?") : NULL;
        CHECK_MSG(a && b && c && d, "plain: every message's text in order, got \"%s\"", got);
        CHECK_MSG(!strchr(got, '<') && !strchr(got, '['), "plain: no markup, got \"%s\"", got);
    }
    free(got);
    got = render("plain", "[{\"role\":\"user\",\"content\":\"just this\"}]");
    if (got)
        CHECK_MSG(strstr(got, "just this") == got, "plain, one user message: starts with its text, got \"%s\"", got);
    free(got);
}

TEST(prompt_builtin_names_listed)
{
    static const char *const names[] = {"chatml", "llama2", "llama3", "mistral", "gemma",
                                        "phi3",   "zephyr", "alpaca", "vicuna",  "plain"};
    const char *list = prompt_builtin_names();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CHECK_MSG(prompt_builtin(names[i]) != NULL, "prompt_builtin(\"%s\") is NULL", names[i]);
        CHECK_MSG(list && strstr(list, names[i]), "prompt_builtin_names() lacks %s: \"%s\"", names[i],
                  list ? list : "(null)");
    }
    CHECK(prompt_builtin("no-such-format") == NULL);
    CHECK(prompt_builtin("ChatML") == NULL || prompt_builtin("ChatML") == prompt_builtin("chatml"));
}

/* ---- message shapes ---- */

TEST(prompt_content_parts_joined_with_newline)
{
    EXPECT_RENDER("chatml",
                  "[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"Be brief.\"},"
                  "{\"type\":\"text\",\"text\":\"Be kind.\"}]},"
                  "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"line one\"},"
                  "{\"type\":\"text\",\"text\":\"line two\"}]}]",
                  "<|im_start|>system\nBe brief.\nBe kind.<|im_end|>\n"
                  "<|im_start|>user\nline one\nline two<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* a part that is not text (an image) contributes nothing */
    EXPECT_RENDER("llama3",
                  "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                  "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x/y.png\"}},"
                  "{\"type\":\"text\",\"text\":\"b\"}]}]",
                  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na\nb<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(prompt_developer_is_system_tool_is_user)
{
    EXPECT_RENDER("chatml",
                  "[{\"role\":\"developer\",\"content\":\"Dev rules.\"},"
                  "{\"role\":\"user\",\"content\":\"Q\"},"
                  "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}]",
                  "<|im_start|>system\nDev rules.<|im_end|>\n"
                  "<|im_start|>user\nQ<|im_end|>\n"
                  "<|im_start|>user\n42<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* developer folds into the first user turn like system does */
    EXPECT_RENDER("llama2",
                  "[{\"role\":\"developer\",\"content\":\"Dev rules.\"},{\"role\":\"user\",\"content\":\"Q\"}]",
                  "<s>[INST] <<SYS>>\nDev rules.\n<</SYS>>\n\nQ [/INST]");
}

TEST(prompt_no_system_message)
{
    const char *convo = "[{\"role\":\"user\",\"content\":\"Hello\"},"
                        "{\"role\":\"assistant\",\"content\":\"Hi there!\"},"
                        "{\"role\":\"user\",\"content\":\"How are you?\"}]";
    EXPECT_RENDER("chatml", convo,
                  "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n"
                  "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_RENDER("llama2", convo, "<s>[INST] Hello [/INST] Hi there! </s><s>[INST] How are you? [/INST]");
    EXPECT_RENDER("mistral", convo, "<s>[INST] Hello [/INST]Hi there!</s>[INST] How are you? [/INST]");
    EXPECT_RENDER("gemma", convo,
                  "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there!<end_of_turn>\n"
                  "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n");
    EXPECT_RENDER("llama3", "[{\"role\":\"user\",\"content\":\"Hi\"}]",
                  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* A conversation of system text only: that text is the one user turn, in every format (no
 * system block and no empty user turn). */
TEST(prompt_system_only)
{
    static const char *const only = "[{\"role\":\"system\",\"content\":\"Only rules.\"}]";
    static const char *const want[][2] = {
        {"chatml", "<|im_start|>user\nOnly rules.<|im_end|>\n<|im_start|>assistant\n"},
        {"llama2", "<s>[INST] Only rules. [/INST]"},
        {"llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nOnly rules.<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n"},
        {"mistral", "<s>[INST] Only rules. [/INST]"},
        {"gemma", "<bos><start_of_turn>user\nOnly rules.<end_of_turn>\n<start_of_turn>model\n"},
        {"phi3", "<|user|>\nOnly rules.<|end|>\n<|assistant|>\n"},
        {"zephyr", "<|user|>\nOnly rules.</s>\n<|assistant|>\n"},
        {"alpaca", "### Instruction:\nOnly rules.\n\n### Response:\n"},
        {"vicuna", "USER: Only rules. ASSISTANT:"},
        {"plain", "Only rules.\n\n"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        EXPECT_RENDER(want[i][0], only, want[i][1]);
    /* several system and developer messages: joined, still the one user turn */
    EXPECT_RENDER("mistral",
                  "[{\"role\":\"system\",\"content\":\"A.\"},{\"role\":\"developer\",\"content\":\"B.\"}]",
                  "<s>[INST] A.\n\nB. [/INST]");
    /* a format without a system role and no user turn to fold it into: a user turn of its own */
    EXPECT_RENDER("mistral",
                  "[{\"role\":\"system\",\"content\":\"Rules.\"},{\"role\":\"assistant\",\"content\":\"Hi.\"}]",
                  "<s>[INST] Rules. [/INST]Hi.</s>");
}

/* The same for formats defined in the config. */
TEST(prompt_system_only_custom)
{
    char err[1024] = "";
    cfg_t *c = cfg_load("conf/prompt_custom.conf", err, sizeof err);
    if (!CHECK_MSG(c != NULL, "cfg_load(conf/prompt_custom.conf): %s", err))
        return;
    static const char *const want[][2] = {
        {"folded", "<BOS><U>Only rules.</U>\n<A>"},
        {"roles", "U: Only rules.\nA:"},
        {"eos", "<s>[U]Only rules.[A]"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const prompt_format_t *f = NULL;
        for (int j = 0; j < c->nformats; j++)
            if (strcmp(c->formats[j].name, want[i][0]) == 0)
                f = &c->formats[j];
        if (!CHECK_MSG(f != NULL, "no prompt format named %s in the config", want[i][0]))
            continue;
        char *got = render_with(f, "[{\"role\":\"system\",\"content\":\"Only rules.\"}]");
        if (got)
            CHECK_MSG(strcmp(got, want[i][1]) == 0, "format %s:\n  got  \"%s\"\n  want \"%s\"", want[i][0], got,
                      want[i][1]);
        free(got);
    }
    cfg_free(c);
}

TEST(prompt_not_an_array)
{
    const prompt_format_t *f = prompt_builtin("chatml");
    if (!CHECK(f != NULL))
        return;
    json_object *o = json_tokener_parse("{\"role\":\"user\"}");
    buf_t out = {0};
    CHECK_INT(prompt_render(f, o, &out), -1);
    CHECK_INT(prompt_render(f, NULL, &out), -1);
    buf_free(&out);
    json_object_put(o);
}

/* ---- formats defined in the config ---- */

static const prompt_format_t *format_named(const cfg_t *c, const char *name)
{
    for (int i = 0; i < c->nformats; i++)
        if (strcmp(c->formats[i].name, name) == 0)
            return &c->formats[i];
    CHECK_MSG(0, "no prompt format named %s in the config", name);
    return NULL;
}

static const cfg_model_t *model_named(const cfg_t *c, const char *name)
{
    for (int i = 0; i < c->nmodels; i++)
        if (strcmp(c->models[i].name, name) == 0)
            return &c->models[i];
    CHECK_MSG(0, "no model named %s in the config", name);
    return NULL;
}

TEST(prompt_custom_format_in_user)
{
    char err[1024] = "";
    cfg_t *c = cfg_load("conf/prompt_custom.conf", err, sizeof err);
    if (!CHECK_MSG(c != NULL, "cfg_load(conf/prompt_custom.conf): %s", err))
        return;
    const prompt_format_t *f = format_named(c, "folded");
    const cfg_model_t *m = model_named(c, "m-folded");
    if (f && m) {
        CHECK(f->system_in_user);
        CHECK_MSG(m->prompt_format == f, "model m-folded does not use the config's format 'folded'");
        CHECK_INT(m->profile, PROFILE_TRTLLM);
        char *got = render_with(f, CONVO);
        const char *want = "<BOS><U>[SYS]You are helpful.[/SYS] Hello</U>\n"
                           "<A>Hi there!</A>\n"
                           "<U>How are you?</U>\n"
                           "<A>";
        if (got)
            CHECK_MSG(strcmp(got, want) == 0, "format folded:\n  got  \"%s\"\n  want \"%s\"", got, want);
        free(got);
    }
    const prompt_format_t *r = format_named(c, "roles");
    m = model_named(c, "m-roles");
    if (r && m) {
        CHECK(!r->system_in_user);
        CHECK_MSG(m->prompt_format == r, "model m-roles does not use the config's format 'roles'");
        CHECK_INT(m->profile, PROFILE_VLLM);
        char *got = render_with(r, CONVO);
        const char *want = "S: You are helpful.\nU: Hello\nA: Hi there!\nU: How are you?\nA:";
        if (got)
            CHECK_MSG(strcmp(got, want) == 0, "format roles:\n  got  \"%s\"\n  want \"%s\"", got, want);
        free(got);
    }
    m = model_named(c, "m-builtin");
    if (m)
        CHECK(m->prompt_format == prompt_builtin("chatml"));
    /* eos closes every assistant turn of the history, not the generation prompt; without a
     * system prefix or suffix the system text stands alone */
    const prompt_format_t *e = format_named(c, "eos");
    if (e) {
        CHECK_STR(e->eos, "</s>");
        char *got = render_with(e, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
                                   "{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"},"
                                   "{\"role\":\"user\",\"content\":\"e\"}]");
        const char *want = "<s>[U]a[A]b</s>[U]c[A]d</s>[U]e[A]";
        if (got)
            CHECK_MSG(strcmp(got, want) == 0, "format eos:\n  got  \"%s\"\n  want \"%s\"", got, want);
        free(got);
    }
    const prompt_format_t *r2 = format_named(c, "roles");
    if (r2)
        CHECK_STR(r2->eos, ""); /* absent: empty */
    cfg_free(c);
}

/* ---- malformed messages (found by tests/fuzz/fuzz_prompt.c) ---- */

static void render_role_null(void)
{
    char *s = render("chatml", "[{\"role\":null,\"content\":\"a\"},{\"role\":7,\"content\":\"b\"},"
                               "{\"role\":[\"system\"],\"content\":\"c\"},{\"content\":\"d\"}]");
    _exit(s && strcmp(s, "<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n"
                         "<|im_start|>user\nc<|im_end|>\n<|im_start|>user\nd<|im_end|>\n"
                         "<|im_start|>assistant\n") == 0 ? 0 : 1);
}

TEST(prompt_role_not_a_string_is_the_user)
{
    int rc = unit_run_child(render_role_null);
    CHECK_MSG(rc == 0, "a message whose role is null or not a string: child status %d (1: wrong prompt, "
                       ">128: crashed)", rc);
}
