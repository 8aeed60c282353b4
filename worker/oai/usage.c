#include "worker/oai/usage.h"

#include <string.h>

#include "worker/oai/oai_shape.h"

static bool int_member(json_object *obj, const char *name, long long *out)
{
    json_object *v;
    if (!obj || !json_object_object_get_ex(obj, name, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *out = json_object_get_int64(v);
    return true;
}

static json_object *object_member(json_object *obj, const char *name)
{
    json_object *v;
    return json_object_object_get_ex(obj, name, &v) && json_object_is_type(v, json_type_object) ? v : NULL;
}

bool usage_read(json_object *usage, usage_t *u)
{
    if (!usage || !json_object_is_type(usage, json_type_object))
        return false;
    bool found = false;
    long long v;
    if (int_member(usage, "prompt_tokens", &u->in) || int_member(usage, "input_tokens", &u->in)) {
        found = true;
        if (int_member(usage, "cache_creation_input_tokens", &v))
            u->in += v;
        if (int_member(usage, "cache_read_input_tokens", &v)) {
            u->in += v;
            u->cached = v;
        }
    }
    if (int_member(usage, "completion_tokens", &u->out) || int_member(usage, "output_tokens", &u->out))
        found = true;
    if (!int_member(object_member(usage, "prompt_tokens_details"), "cached_tokens", &u->cached))
        int_member(object_member(usage, "input_tokens_details"), "cached_tokens", &u->cached);
    return found;
}

bool usage_from_answer(json_object *obj, usage_t *u)
{
    if (!obj || !json_object_is_type(obj, json_type_object))
        return false;
    json_object *inner, *usage = object_member(obj, "usage");
    if (!usage && ((inner = object_member(obj, "response")) || (inner = object_member(obj, "message"))))
        usage = object_member(inner, "usage");
    return usage_read(usage, u);
}

long long usage_max_tokens_asked(json_object *body)
{
    static const char *const names[] = {"max_completion_tokens", "max_tokens", "max_output_tokens"};
    json_object *v;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (json_object_object_get_ex(body, names[i], &v) &&
            (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
            return (long long)json_object_get_double(v);
    return 0;
}

bool usage_request_model(const char *body, size_t len, char *model, size_t model_len, long long *max_tokens)
{
    json_object *obj = body && len ? shape_parse(body, len) : NULL, *v;
    bool ok = obj && json_object_object_get_ex(obj, "model", &v) && json_object_is_type(v, json_type_string) &&
              (size_t)json_object_get_string_len(v) < model_len && json_object_get_string_len(v) > 0;
    if (ok) {
        memcpy(model, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
        *max_tokens = usage_max_tokens_asked(obj);
    }
    json_object_put(obj);
    return ok;
}

/* ---- the scanner ---- */

enum { SEEK, AFTER_KEY, AFTER_COLON, IN_OBJECT };
static const char key[] = "\"usage\"";
static const char data_field[] = "data:";

void usage_scan_init(usage_scan_t *s)
{
    memset(s, 0, sizeof *s);
    s->found = (usage_t)USAGE_NONE;
}

void usage_scan_free(usage_scan_t *s) { buf_free(&s->object); }

static bool json_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* A whole usage object was captured: its counts go over the earlier ones. */
static void take_object(usage_scan_t *s)
{
    json_object *obj = shape_parse(s->object.data, s->object.len);
    usage_read(obj, &s->found);
    json_object_put(obj);
}

/* One byte of an object being captured. */
static void object_byte(usage_scan_t *s, char c)
{
    if (buf_append(&s->object, &c, 1) < 0 || s->object.len > USAGE_SCAN_MAX) {
        s->state = SEEK;
        return;
    }
    if (s->in_string) {
        if (s->escaped)
            s->escaped = false;
        else if (c == '\\')
            s->escaped = true;
        else if (c == '"')
            s->in_string = false;
        return;
    }
    if (c == '"')
        s->in_string = true;
    else if (c == '{')
        s->depth++;
    else if (c == '}' && --s->depth == 0) {
        take_object(s);
        s->state = SEEK;
    }
}

void usage_scan_feed(usage_scan_t *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        /* SSE events: "data:" at the start of a line */
        if (c == '\n')
            s->line_pos = 0;
        else if (s->line_pos >= 0 && c == data_field[s->line_pos]) {
            if (++s->line_pos == (int)sizeof data_field - 1) {
                s->events++;
                s->line_pos = -1;
            }
        } else {
            s->line_pos = -1;
        }
        /* "usage" as a key (inside a string its quotes would be escaped), then ':' and '{' */
        switch (s->state) {
        case SEEK:
            if (c == key[s->matched]) {
                if (++s->matched == (int)sizeof key - 1) {
                    s->state = AFTER_KEY;
                    s->matched = 0;
                }
            } else {
                s->matched = c == '"' ? 1 : 0;
            }
            break;
        case AFTER_KEY:
            if (c == ':')
                s->state = AFTER_COLON;
            else if (!json_space(c))
                s->state = SEEK, s->matched = c == '"' ? 1 : 0;
            break;
        case AFTER_COLON:
            if (c == '{') {
                buf_reset(&s->object);
                s->depth = 0;
                s->in_string = s->escaped = false;
                s->state = IN_OBJECT;
                object_byte(s, c);
            } else if (!json_space(c)) {
                s->state = SEEK, s->matched = c == '"' ? 1 : 0;
            }
            break;
        default:
            object_byte(s, c);
            break;
        }
    }
}
