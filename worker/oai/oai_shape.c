#include "worker/oai/oai_shape.h"

#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* A tokener holds a SHAPE_MAX_DEPTH-deep parse stack (about 8 KB). A parse is short, so a few
 * shared tokeners serve every thread; kept per thread, one would stay with each connection's
 * thread (each open stream) for its whole life. */
#define TOKENER_POOL_MAX 32
static pthread_mutex_t tokener_lock = PTHREAD_MUTEX_INITIALIZER;
static json_tokener *tokener_pool[TOKENER_POOL_MAX];
static int tokener_pool_len;
static __thread bool c_locale_set;

static json_tokener *tokener_take(void)
{
    json_tokener *tok = NULL;
    pthread_mutex_lock(&tokener_lock);
    if (tokener_pool_len > 0)
        tok = tokener_pool[--tokener_pool_len];
    pthread_mutex_unlock(&tokener_lock);
    if (tok) {
        json_tokener_reset(tok);
        return tok;
    }
    return json_tokener_new_ex(SHAPE_MAX_DEPTH);
}

static void tokener_give_back(json_tokener *tok)
{
    pthread_mutex_lock(&tokener_lock);
    if (tokener_pool_len < TOKENER_POOL_MAX) {
        tokener_pool[tokener_pool_len++] = tok;
        tok = NULL;
    }
    pthread_mutex_unlock(&tokener_lock);
    if (tok)
        json_tokener_free(tok);
}

/* Parses with a pooled tokener; NULL (status says why) unless data is one JSON value. */
static json_object *parse_with(json_tokener *tok, const char *data, size_t len, shape_parse_status_t *status)
{
    if (len > 0x7fffffff)
        return NULL;
    json_object *obj = json_tokener_parse_ex(tok, data, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    if (err != json_tokener_success) {
        json_object_put(obj);
        if (err == json_tokener_error_depth)
            *status = SHAPE_PARSE_TOO_DEEP;
        return NULL;
    }
    size_t used = json_tokener_get_parse_end(tok);
    while (used < len && strchr(" \t\r\n", data[used]))
        used++;
    if (used != len) { /* trailing garbage */
        json_object_put(obj);
        return NULL;
    }
    *status = SHAPE_PARSE_OK;
    return obj;
}

json_object *shape_parse_status(const char *data, size_t len, shape_parse_status_t *status)
{
    shape_parse_status_t ignored;
    if (!status)
        status = &ignored;
    *status = SHAPE_PARSE_INVALID;
    if (!c_locale_set) {
        /* json-c switches to the "C" locale around every parse; from the process-wide locale that
         * duplicates it under glibc's global locale lock (a lock every request thread fights over),
         * from glibc's own C locale object it is free. Numbers are read the same either way. */
        locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (c_locale)
            uselocale(c_locale);
        c_locale_set = true;
    }
    json_tokener *tok = tokener_take();
    if (!tok)
        return NULL;
    json_object *obj = parse_with(tok, data, len, status);
    tokener_give_back(tok);
    return obj;
}

json_object *shape_parse(const char *data, size_t len) { return shape_parse_status(data, len, NULL); }

const char *shape_choice_text(json_object *obj, const char *field)
{
    json_object *choices, *m, *c;
    if (json_object_object_get_ex(obj, "choices", &choices) && json_object_is_type(choices, json_type_array) &&
        json_object_array_length(choices) > 0 &&
        json_object_object_get_ex(json_object_array_get_idx(choices, 0), field, &m) &&
        json_object_object_get_ex(m, "content", &c) && json_object_is_type(c, json_type_string))
        return json_object_get_string(c);
    return "";
}

void shape_set_model(json_object *obj, const char *model)
{
    if (json_object_is_type(obj, json_type_object) && json_object_object_get_ex(obj, "model", NULL))
        json_object_object_add(obj, "model", json_object_new_string(model));
}

void shape_set_models(json_object *obj, const char *model)
{
    json_object *inner;
    shape_set_model(obj, model);
    if (json_object_object_get_ex(obj, "response", &inner))
        shape_set_model(inner, model);
    if (json_object_object_get_ex(obj, "message", &inner) && json_object_is_type(inner, json_type_object))
        shape_set_model(inner, model); /* Anthropic's message_start */
}

static bool int_member(json_object *obj, const char *a, const char *b, long long *out)
{
    json_object *v;
    if ((json_object_object_get_ex(obj, a, &v) && json_object_is_type(v, json_type_int)) ||
        (json_object_object_get_ex(obj, b, &v) && json_object_is_type(v, json_type_int))) {
        *out = json_object_get_int64(v);
        return true;
    }
    return false;
}

bool shape_usage(json_object *obj, long long *in, long long *out)
{
    json_object *u = NULL, *inner;
    if (!json_object_is_type(obj, json_type_object))
        return false;
    if (!json_object_object_get_ex(obj, "usage", &u) || !json_object_is_type(u, json_type_object)) {
        u = NULL;
        if ((json_object_object_get_ex(obj, "response", &inner) || json_object_object_get_ex(obj, "message", &inner)) &&
            json_object_is_type(inner, json_type_object) &&
            (!json_object_object_get_ex(inner, "usage", &u) || !json_object_is_type(u, json_type_object)))
            u = NULL;
    }
    if (!u)
        return false;
    if (int_member(u, "prompt_tokens", "input_tokens", in)) {
        /* Anthropic counts prompt-cache reads and writes apart from input_tokens. */
        long long cached;
        if (int_member(u, "cache_creation_input_tokens", "cache_creation_input_tokens", &cached))
            *in += cached;
        if (int_member(u, "cache_read_input_tokens", "cache_read_input_tokens", &cached))
            *in += cached;
    }
    int_member(u, "completion_tokens", "output_tokens", out);
    return true;
}

bool shape_sse_data(const char *line, size_t len, const char **value, size_t *vlen)
{
    if (len < 5 || memcmp(line, "data:", 5) != 0)
        return false;
    size_t skip = len > 5 && line[5] == ' ' ? 6 : 5;
    *value = line + skip;
    *vlen = len - skip;
    return true;
}

static int sse_line(void *ud, const char *line, size_t n)
{
    shape_sse_t *s = ud;
    buf_t *out = s->out;
    const char *v;
    size_t vl;
    if (shape_sse_data(line, n, &v, &vl) && vl) {
        json_object *obj = shape_parse(v, vl);
        if (obj && json_object_is_type(obj, json_type_object)) {
            shape_usage(obj, &s->tokens_in, &s->tokens_out);
            shape_set_models(obj, s->model);
            size_t len;
            const char *js = shape_json(obj, &len);
            buf_append(out, "data: ", 6);
            buf_append(out, js, len);
            buf_append(out, "\n", 1);
            json_object_put(obj);
            return 0;
        }
        json_object_put(obj);
    }
    buf_append(out, line, n);
    buf_append(out, "\n", 1);
    return 0;
}

int shape_sse_feed(shape_sse_t *s, const char *p, size_t n, const char *model, buf_t *out)
{
    s->model = model;
    s->out = out;
    return lines_feed(&s->lines, p, n, sse_line, s) == LINES_OK ? 0 : -1;
}

void shape_sse_finish(shape_sse_t *s, const char *model, buf_t *out)
{
    s->model = model;
    s->out = out;
    lines_finish(&s->lines, sse_line, s);
}

const char *shape_json(json_object *obj, size_t *len)
{
    return json_object_to_json_string_length(obj, JSON_FLAGS, len);
}

int shape_append_sse(buf_t *out, json_object *obj)
{
    size_t n;
    const char *s = shape_json(obj, &n);
    if (buf_append(out, "data: ", 6) < 0 || buf_append(out, s, n) < 0 ||
        buf_append(out, "\n\n", 2) < 0)
        return -1;
    return 0;
}

/* ---- aggregation ---- */

typedef struct {
    char *id;
    char *type;
    char *name;
    buf_t arguments;
} agg_tool_t;

typedef struct {
    bool used;
    char *role;
    buf_t content;      /* chat content or completion text */
    bool has_content;
    json_object *finish_reason; /* owned reference */
    agg_tool_t *tools;
    int ntools;
} agg_choice_t;

struct shape_agg {
    unsigned kind;
    json_object *first;  /* first chunk (id, created, model, system_fingerprint) */
    json_object *usage;
    agg_choice_t *choices;
    int nchoices;
    size_t bytes;        /* text folded in so far */
};

shape_agg_t *shape_agg_new(unsigned kind)
{
    shape_agg_t *a = calloc(1, sizeof *a);
    if (a)
        a->kind = kind;
    return a;
}

static agg_choice_t *agg_choice(shape_agg_t *a, int index)
{
    if (index < 0 || index > 1024)
        return NULL;
    if (index >= a->nchoices) {
        agg_choice_t *n = realloc(a->choices, (size_t)(index + 1) * sizeof *n);
        if (!n)
            return NULL;
        memset(n + a->nchoices, 0, (size_t)(index + 1 - a->nchoices) * sizeof *n);
        a->choices = n;
        a->nchoices = index + 1;
    }
    a->choices[index].used = true;
    return &a->choices[index];
}

static void set_str(char **dst, json_object *v)
{
    if (v && json_object_is_type(v, json_type_string)) {
        free(*dst);
        *dst = strdup(json_object_get_string(v));
    }
}

/* Folds one tool call delta in; returns the bytes of arguments it added. */
static size_t agg_tool_delta(agg_choice_t *c, json_object *tc)
{
    json_object *v, *fn;
    int index = json_object_object_get_ex(tc, "index", &v) ? json_object_get_int(v) : c->ntools;
    if (index < 0 || index > 256)
        return 0;
    if (index >= c->ntools) {
        agg_tool_t *n = realloc(c->tools, (size_t)(index + 1) * sizeof *n);
        if (!n)
            return 0;
        memset(n + c->ntools, 0, (size_t)(index + 1 - c->ntools) * sizeof *n);
        c->tools = n;
        c->ntools = index + 1;
    }
    agg_tool_t *t = &c->tools[index];
    if (json_object_object_get_ex(tc, "id", &v))
        set_str(&t->id, v);
    if (json_object_object_get_ex(tc, "type", &v))
        set_str(&t->type, v);
    if (json_object_object_get_ex(tc, "function", &fn)) {
        if (json_object_object_get_ex(fn, "name", &v))
            set_str(&t->name, v);
        if (json_object_object_get_ex(fn, "arguments", &v) && json_object_is_type(v, json_type_string)) {
            size_t n = (size_t)json_object_get_string_len(v);
            buf_append(&t->arguments, json_object_get_string(v), n);
            return n;
        }
    }
    return 0;
}

/* Appends a text piece of a choice and counts it. */
static void agg_text(shape_agg_t *a, agg_choice_t *c, json_object *text)
{
    size_t n = (size_t)json_object_get_string_len(text);
    buf_append(&c->content, json_object_get_string(text), n);
    c->has_content = true;
    a->bytes += n;
}

size_t shape_agg_size(const shape_agg_t *a) { return a ? a->bytes : 0; }

void shape_agg_add(shape_agg_t *a, json_object *chunk)
{
    json_object *choices, *v;
    if (!a->first)
        a->first = json_object_get(chunk);
    if (json_object_object_get_ex(chunk, "usage", &v) && json_object_is_type(v, json_type_object)) {
        json_object_put(a->usage);
        a->usage = json_object_get(v);
    }
    if (!json_object_object_get_ex(chunk, "choices", &choices) ||
        !json_object_is_type(choices, json_type_array))
        return;
    size_t n = json_object_array_length(choices);
    for (size_t i = 0; i < n; i++) {
        json_object *ch = json_object_array_get_idx(choices, i), *delta, *text;
        int index = json_object_object_get_ex(ch, "index", &v) ? json_object_get_int(v) : (int)i;
        agg_choice_t *c = agg_choice(a, index);
        if (!c)
            continue;
        if (json_object_object_get_ex(ch, "finish_reason", &v) && v) {
            json_object_put(c->finish_reason);
            c->finish_reason = json_object_get(v);
        }
        if (a->kind != KIND_CHAT) {
            if (json_object_object_get_ex(ch, "text", &text) && json_object_is_type(text, json_type_string))
                agg_text(a, c, text);
            continue;
        }
        if (!json_object_object_get_ex(ch, "delta", &delta))
            continue;
        if (json_object_object_get_ex(delta, "role", &v))
            set_str(&c->role, v);
        if (json_object_object_get_ex(delta, "content", &v) && json_object_is_type(v, json_type_string))
            agg_text(a, c, v);
        if (json_object_object_get_ex(delta, "tool_calls", &v) && json_object_is_type(v, json_type_array))
            for (size_t t = 0; t < json_object_array_length(v); t++)
                a->bytes += agg_tool_delta(c, json_object_array_get_idx(v, t));
    }
}

static void copy_field(json_object *dst, json_object *src, const char *key)
{
    json_object *v;
    if (src && json_object_object_get_ex(src, key, &v))
        json_object_object_add(dst, key, json_object_get(v));
}

/* The envelope of another response (a completion or a chunk, may be NULL) under object: its
 * id, created, model and system_fingerprint as they are, the ones it lacks left out. */
static json_object *envelope_like(json_object *like, const char *object)
{
    json_object *o = json_object_new_object();
    copy_field(o, like, "id");
    json_object_object_add(o, "object", json_object_new_string(object));
    copy_field(o, like, "created");
    copy_field(o, like, "model");
    copy_field(o, like, "system_fingerprint");
    return o;
}

json_object *shape_envelope(const char *id, const char *object, long long created, const char *model)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "object", json_object_new_string(object));
    json_object_object_add(o, "created", json_object_new_int64(created));
    json_object_object_add(o, "model", json_object_new_string(model));
    return o;
}

json_object *shape_agg_finish(shape_agg_t *a)
{
    json_object *o = envelope_like(a->first, a->kind == KIND_CHAT ? "chat.completion" : "text_completion");
    json_object *arr = json_object_new_array();
    for (int i = 0; i < a->nchoices; i++) {
        agg_choice_t *c = &a->choices[i];
        if (!c->used)
            continue;
        json_object *ch = json_object_new_object();
        json_object_object_add(ch, "index", json_object_new_int(i));
        if (a->kind == KIND_CHAT) {
            json_object *m = json_object_new_object();
            json_object_object_add(m, "role", json_object_new_string(c->role ? c->role : "assistant"));
            json_object_object_add(m, "content",
                                   c->has_content ? json_object_new_string(c->content.data ? c->content.data : "") : NULL);
            if (c->ntools) {
                json_object *tools = json_object_new_array();
                for (int t = 0; t < c->ntools; t++) {
                    json_object *tc = json_object_new_object(), *fn = json_object_new_object();
                    json_object_object_add(tc, "id", json_object_new_string(c->tools[t].id ? c->tools[t].id : ""));
                    json_object_object_add(tc, "type", json_object_new_string(c->tools[t].type ? c->tools[t].type : "function"));
                    json_object_object_add(fn, "name", json_object_new_string(c->tools[t].name ? c->tools[t].name : ""));
                    json_object_object_add(fn, "arguments",
                                           json_object_new_string(c->tools[t].arguments.data ? c->tools[t].arguments.data : ""));
                    json_object_object_add(tc, "function", fn);
                    json_object_array_add(tools, tc);
                }
                json_object_object_add(m, "tool_calls", tools);
            }
            json_object_object_add(ch, "message", m);
        } else {
            json_object_object_add(ch, "text", json_object_new_string(c->content.data ? c->content.data : ""));
        }
        json_object_object_add(ch, "logprobs", NULL);
        json_object_object_add(ch, "finish_reason", json_object_get(c->finish_reason));
        json_object_array_add(arr, ch);
    }
    json_object_object_add(o, "choices", arr);
    if (a->usage)
        json_object_object_add(o, "usage", json_object_get(a->usage));
    return o;
}

void shape_agg_free(shape_agg_t *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->nchoices; i++) {
        agg_choice_t *c = &a->choices[i];
        free(c->role);
        buf_free(&c->content);
        json_object_put(c->finish_reason);
        for (int t = 0; t < c->ntools; t++) {
            free(c->tools[t].id);
            free(c->tools[t].type);
            free(c->tools[t].name);
            buf_free(&c->tools[t].arguments);
        }
        free(c->tools);
    }
    free(a->choices);
    json_object_put(a->first);
    json_object_put(a->usage);
    free(a);
}

/* ---- synthesis ---- */

static int emit(buf_t *out, json_object *chunk, json_object *choice)
{
    json_object *arr = json_object_new_array();
    if (choice)
        json_object_array_add(arr, choice);
    json_object_object_add(chunk, "choices", arr);
    int rc = shape_append_sse(out, chunk);
    json_object_put(chunk);
    return rc;
}

int shape_synthesise(unsigned kind, json_object *completion, bool include_usage, buf_t *out)
{
    const char *chunk_object = kind == KIND_CHAT ? "chat.completion.chunk" : "text_completion";
    json_object *choices, *v;
    if (!json_object_object_get_ex(completion, "choices", &choices) ||
        !json_object_is_type(choices, json_type_array))
        return -1;
    size_t n = json_object_array_length(choices);
    for (size_t i = 0; i < n; i++) {
        json_object *ch = json_object_array_get_idx(choices, i), *msg, *index;
        if (!json_object_object_get_ex(ch, "index", &index))
            index = NULL;
        json_object *body = json_object_new_object();
        json_object_object_add(body, "index", index ? json_object_get(index) : json_object_new_int((int)i));
        if (kind == KIND_CHAT) {
            json_object *delta = json_object_new_object();
            if (json_object_object_get_ex(ch, "message", &msg) && json_object_is_type(msg, json_type_object)) {
                json_object_object_foreach(msg, key, val)
                {
                    if (strcmp(key, "tool_calls") == 0 && json_object_is_type(val, json_type_array)) {
                        /* Stream deltas carry an index on every tool call. */
                        json_object *tools = json_object_new_array();
                        for (size_t t = 0; t < json_object_array_length(val); t++) {
                            json_object *tc = json_object_array_get_idx(val, t), *copy = NULL;
                            json_object_deep_copy(tc, &copy, NULL);
                            if (copy) {
                                json_object_object_add(copy, "index", json_object_new_int((int)t));
                                json_object_array_add(tools, copy);
                            }
                        }
                        json_object_object_add(delta, key, tools);
                    } else {
                        json_object_object_add(delta, key, json_object_get(val));
                    }
                }
            }
            json_object_object_add(body, "delta", delta);
        } else {
            copy_field(body, ch, "text");
        }
        json_object_object_add(body, "logprobs", NULL);
        json_object_object_add(body, "finish_reason", NULL);
        if (emit(out, envelope_like(completion, chunk_object), body) < 0)
            return -1;
        json_object *fin = json_object_new_object();
        json_object_object_add(fin, "index", index ? json_object_get(index) : json_object_new_int((int)i));
        if (kind == KIND_CHAT)
            json_object_object_add(fin, "delta", json_object_new_object());
        else
            json_object_object_add(fin, "text", json_object_new_string(""));
        json_object_object_add(fin, "logprobs", NULL);
        copy_field(fin, ch, "finish_reason");
        if (emit(out, envelope_like(completion, chunk_object), fin) < 0)
            return -1;
    }
    if (include_usage && json_object_object_get_ex(completion, "usage", &v)) {
        json_object *u = envelope_like(completion, chunk_object);
        json_object_object_add(u, "usage", json_object_get(v));
        if (emit(out, u, NULL) < 0)
            return -1;
    }
    return 0;
}

/* ---- the fast path for stream chunks: renaming the model without parsing ---- */

/* Index just past the JSON string starting at p[i] == '"', or 0 if it is not terminated. */
static size_t string_end(const char *p, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
        else if ((unsigned char)p[i] < 0x20)
            return 0; /* raw control characters are not JSON */
    }
    return 0;
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

bool shape_rename_model_text(const char *p, size_t n, const char *model_json, buf_t *out)
{
    if (memchr(p, '\n', n) || memchr(p, '\r', n))
        return false; /* would break the SSE framing as one data line */
    size_t i = skip_ws(p, n, 0);
    if (i >= n || p[i] != '{')
        return false;
    size_t model_at = 0, model_end = 0;
    int depth = 0;
    bool expect_key = false, done = false;
    for (; i < n && !done; i++) {
        char ch = p[i];
        if (ch == '"') {
            size_t end = string_end(p, n, i);
            if (!end)
                return false;
            if (depth == 1 && expect_key) {
                size_t klen = end - i - 2;
                const char *key = p + i + 1;
                if (memchr(key, '\\', klen))
                    return false; /* an escaped key ("mod\u0065l") is read by the parser */
                size_t v = skip_ws(p, n, end);
                if (v >= n || p[v] != ':')
                    return false;
                v = skip_ws(p, n, v + 1);
                if (v >= n)
                    return false;
                if ((klen == 5 && memcmp(key, "usage", 5) == 0) || (klen == 5 && memcmp(key, "error", 5) == 0)) {
                    if (!(n - v >= 4 && memcmp(p + v, "null", 4) == 0))
                        return false; /* usage and errors are read from the parsed object */
                } else if (klen == 5 && memcmp(key, "model", 5) == 0) {
                    if (p[v] != '"' || model_end)
                        return false; /* not a string, or twice: let the parser decide */
                    model_at = v;
                    model_end = string_end(p, n, v);
                    if (!model_end)
                        return false;
                }
                expect_key = false;
                i = v - 1; /* the value is scanned from here on */
                continue;
            }
            i = end - 1;
        } else if (ch == '{' || ch == '[') {
            depth++;
            expect_key = ch == '{' && depth == 1;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                done = true;
            if (depth < 0)
                return false;
        } else if (ch == ',') {
            if (depth == 1)
                expect_key = true;
        } else if (!strchr(" \t:0123456789+-.eEtruefalsn", ch) || ch == '\0') {
            return false; /* not a JSON token: let the parser reject it */
        }
    }
    if (!done || skip_ws(p, n, i) != n)
        return false;
    if (!model_end)
        return buf_append(out, p, n) == 0;
    return buf_append(out, p, model_at) == 0 && buf_appends(out, model_json) == 0 &&
           buf_append(out, p + model_end, n - model_end) == 0;
}
