#include "common/urlpath.h"
#include "unit.h"

TEST(urlpath_dot_segments)
{
    CHECK_INT(urlpath_check("/v1/files/file-abc/content"), URLPATH_OK);
    CHECK_INT(urlpath_check("/v1/files/a..b/.c/d."), URLPATH_OK);
    CHECK_INT(urlpath_check("/v1/files/%2F-stays-an-id"), URLPATH_OK);
    CHECK_INT(urlpath_check("/v1/files/../chat/completions"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/./../../admin"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/.."), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/."), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/%2e%2e/x"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/%2E%2E/x"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/.%2e/x"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/%2e"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/x%2f..%2fadmin"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/x%5c..%5cadmin"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/x\\..\\admin"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/%252e%252e/x"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/%25252e%25252e"), URLPATH_DOT_SEGMENT);
    CHECK_INT(urlpath_check("/v1/files/%2525252525252e"), URLPATH_DEEP_ESCAPES);
}

TEST(urlpath_control_characters)
{
    CHECK_INT(urlpath_check("/v1/files/a%00b"), URLPATH_CONTROL);
    CHECK_INT(urlpath_check("/v1/files/a%0d%0aHost:%20x"), URLPATH_CONTROL);
    CHECK_INT(urlpath_check("/v1/files/a%7f"), URLPATH_CONTROL);
    CHECK_INT(urlpath_check("/v1/files/a%2500"), URLPATH_CONTROL);
    CHECK_INT(urlpath_check("/v1/files/a\tb"), URLPATH_CONTROL);
    CHECK_INT(urlpath_check("/v1/files/100%"), URLPATH_OK);
    CHECK_INT(urlpath_check("/v1/files/%zz%2"), URLPATH_OK);
}

TEST(urlpath_forwardable)
{
    CHECK(urlpath_forwardable("/v1/files/file-1%2Fx"));
    CHECK(urlpath_forwardable("limit=2&after=file-1"));
    CHECK(!urlpath_forwardable("/v1/files/a b"));
    CHECK(!urlpath_forwardable("/v1/files/a#b"));
    CHECK(!urlpath_forwardable("/v1/files/a\\b"));
    CHECK(!urlpath_forwardable("/v1/files/\xc3\xa9"));
    CHECK(!urlpath_forwardable("a=\"x\""));
}
