/* JSON fixtures and lookups for unit tests that check json-c output. */
#ifndef AIROUTER_UNIT_JSON_H
#define AIROUTER_UNIT_JSON_H
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

/* Parses a fixture; a fixture that does not parse fails the test. The caller owns the result. */
static inline json_object *parse(const char *s)
{
    json_object *o = json_tokener_parse(s);
    CHECK_MSG(o != NULL, "fixture JSON does not parse: %s", s);
    return o;
}

/* The value at a path like "choices.0.message.tool_calls.1.function.name" (NULL if absent or
 * JSON null). */
static inline json_object *at(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array)) {
            char *end;
            long i = strtol(tok, &end, 10);
            o = (*end || i < 0 || (size_t)i >= json_object_array_length(o)) ? NULL
                                                                            : json_object_array_get_idx(o, (size_t)i);
        } else if (!json_object_object_get_ex(o, tok, &o)) {
            o = NULL;
        }
    }
    return o;
}

/* Whether the path is present, possibly as JSON null. */
static inline bool has(json_object *o, const char *path)
{
    char parent[256];
    snprintf(parent, sizeof parent, "%s", path);
    char *dot = strrchr(parent, '.');
    const char *last = path;
    json_object *p = o;
    if (dot) {
        *dot = '\0';
        last = dot + 1;
        p = at(o, parent);
    }
    return p && json_object_is_type(p, json_type_object) && json_object_object_get_ex(p, last, NULL);
}

/* The string at path, NULL when it is absent or not a string. */
static inline const char *str_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* The integer at path, -999 when it is absent or not an integer. */
static inline long long int_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -999;
}

/* The length of the array at path, (size_t)-1 when it is absent or not an array. */
static inline size_t len_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    return v && json_object_is_type(v, json_type_array) ? json_object_array_length(v) : (size_t)-1;
}

#define CHECK_NULL_AT(o, path) CHECK_MSG(has(o, path) && at(o, path) == NULL, "%s should be present and null", path)
#define CHECK_ABSENT(o, path) CHECK_MSG(!has(o, path), "%s should be absent", path)

#endif
