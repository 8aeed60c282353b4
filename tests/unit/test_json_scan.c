/* worker/oai/json_scan.c: the strict scanner, the top-level members it finds, the splice */
#include <string.h>

#include "worker/oai/json_scan.h"
#include "unit.h"

static js_status_t scan(const char *s) { return js_scan(s, strlen(s), 8, NULL, 0, NULL); }

TEST(json_scan_accepts_json)
{
    CHECK_INT(scan("{}"), JS_OK);
    CHECK_INT(scan(" \t\r\n{ \"a\" : [1, -2.5e+3, 0, 0.25E-1, true, false, null, \"x\\u00e9\\n\"] }\n"), JS_OK);
    CHECK_INT(scan("{\"a\":{\"b\":{}},\"c\":[[],{}]}"), JS_OK);
    CHECK_INT(scan("[1,2]"), JS_NOT_OBJECT);
    CHECK_INT(scan("\"s\""), JS_NOT_OBJECT);
    CHECK_INT(scan("-0"), JS_NOT_OBJECT);
    CHECK_INT(scan("null"), JS_NOT_OBJECT);
}

TEST(json_scan_refuses_what_is_not_json)
{
    const char *bad[] = {"", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "{,}", "{'a':1}",
                         "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":tru}",
                         "{\"a\":NaN}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"tab\there\"}",
                         "{\"a\":1}{}", "{\"a\":1} x", "{a:1}", "{\"a\" 1}", "[1 2]", "{\"a\":[}", "{\"a\":\"x}",
                         "{\"a\":1]", "[1}", "{\"a\":\"\\"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (scan(bad[i]) != JS_INVALID)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(scan(bad[i]) == JS_INVALID);
    }
    /* a NUL inside is not JSON either */
    CHECK_INT(js_scan("{\"a\":\"x\0\"}", 9, 8, NULL, 0, NULL), JS_INVALID);
}

TEST(json_scan_depth)
{
    CHECK_INT(scan("[[[[[[[[1]]]]]]]]"), JS_NOT_OBJECT); /* 8 deep */
    CHECK_INT(scan("[[[[[[[[[1]]]]]]]]]"), JS_TOO_DEEP); /* 9 */
    CHECK_INT(js_scan("{\"a\":{}}", 8, 1, NULL, 0, NULL), JS_TOO_DEEP);
    CHECK_INT(js_scan("{\"a\":1}", 7, 1, NULL, 0, NULL), JS_OK);
}

TEST(json_scan_finds_top_level_members)
{
    const char *s = "{\"messages\":[{\"model\":\"inner\"}],\"model\" : \"gpt\" ,\"usage\":{\"prompt_tokens\":3},"
                    "\"n\":2}";
    js_member_t want[] = {{.key = "model"}, {.key = "usage"}, {.key = "stream"}};
    js_info_t info;
    CHECK_INT(js_scan(s, strlen(s), 8, want, 3, &info), JS_OK);
    CHECK_INT(info.members, 4);
    CHECK(!info.escaped_key);
    CHECK_INT(want[0].count, 1);
    CHECK(want[0].end - want[0].at == 5 && memcmp(s + want[0].at, "\"gpt\"", 5) == 0);
    CHECK_INT(want[1].count, 1);
    CHECK(want[1].end - want[1].at == 19 && memcmp(s + want[1].at, "{\"prompt_tokens\":3}", 19) == 0);
    CHECK_INT(want[2].count, 0);

    /* twice: counted, the last one noted */
    s = "{\"model\":1,\"model\":[2]}";
    CHECK_INT(js_scan(s, strlen(s), 8, want, 1, &info), JS_OK);
    CHECK_INT(want[0].count, 2);
    CHECK(want[0].end - want[0].at == 3 && memcmp(s + want[0].at, "[2]", 3) == 0);
    CHECK_INT(info.members, 2);

    /* an escaped key is not matched, but reported */
    s = "{\"mod\\u0065l\":\"x\"}";
    CHECK_INT(js_scan(s, strlen(s), 8, want, 1, &info), JS_OK);
    CHECK_INT(want[0].count, 0);
    CHECK(info.escaped_key);
    CHECK_INT(info.members, 1);
}

TEST(json_scan_splice)
{
    const char *s = "{\"model\":\"a\",\"x\":1}";
    js_member_t want[] = {{.key = "model"}};
    CHECK_INT(js_scan(s, strlen(s), 8, want, 1, NULL), JS_OK);
    buf_t out = {0};
    CHECK_INT(js_splice(&out, s, strlen(s), want[0].at, want[0].end, "\"backend\"", 9), 0);
    CHECK_STR(out.data, "{\"model\":\"backend\",\"x\":1}");
    buf_free(&out);
    CHECK_INT(js_splice(&out, s, strlen(s), 5, 4, "", 0), -1);
    buf_free(&out);
}
