/* common/oai_error.c */
#include "common/oai_error.h"
#include "unit.h"

#include <json-c/json.h>

TEST(oaierr_full)
{
    buf_t b = {0};
    CHECK_INT(oaierr_format(&b, "The model 'x' does not exist", "invalid_request_error", "model",
                            "model_not_found"),
              0);
    CHECK_STR(b.data, "{\"error\":{\"message\":\"The model 'x' does not exist\","
                      "\"type\":\"invalid_request_error\",\"param\":\"model\","
                      "\"code\":\"model_not_found\"}}");
    buf_free(&b);
}

TEST(oaierr_nulls)
{
    buf_t b = {0};
    CHECK_INT(oaierr_format(&b, "Bad gateway", "server_error", NULL, NULL), 0);
    CHECK_STR(b.data,
              "{\"error\":{\"message\":\"Bad gateway\",\"type\":\"server_error\",\"param\":null,"
              "\"code\":null}}");
    buf_free(&b);
}

TEST(oaierr_escapes_and_parses)
{
    buf_t b = {0};
    buf_appends(&b, "prefix|");
    CHECK_INT(oaierr_format(&b, "quote \" backslash \\ newline \n tab \t ctl \x02", "t\"y", "p\\",
                            "c\n"),
              0);
    CHECK_INT(strncmp(b.data, "prefix|", 7), 0); /* appends, does not overwrite */
    json_object *o = json_tokener_parse(b.data + 7);
    CHECK_MSG(o != NULL, "error body is not valid JSON: %s", b.data + 7);
    json_object *e = NULL, *v = NULL;
    if (o && CHECK(json_object_object_get_ex(o, "error", &e))) {
        CHECK(json_object_object_get_ex(e, "message", &v));
        CHECK_STR(json_object_get_string(v), "quote \" backslash \\ newline \n tab \t ctl \x02");
        CHECK(json_object_object_get_ex(e, "type", &v));
        CHECK_STR(json_object_get_string(v), "t\"y");
        CHECK(json_object_object_get_ex(e, "param", &v));
        CHECK_STR(json_object_get_string(v), "p\\");
        CHECK(json_object_object_get_ex(e, "code", &v));
        CHECK_STR(json_object_get_string(v), "c\n");
        CHECK_INT(json_object_object_length(e), 4);
    }
    json_object_put(o);
    buf_free(&b);
}
