/* common/buf.c */
#include "common/buf.h"
#include "unit.h"

#include <stdlib.h>

TEST(buf_append_grows_and_terminates)
{
    buf_t b = {0};
    CHECK(b.data == NULL);
    CHECK_INT(buf_append(&b, "abc", 3), 0);
    CHECK_INT(b.len, 3);
    CHECK_STR(b.data, "abc");
    CHECK(b.cap >= 4);
    /* Grow well past the first allocation. */
    int rc = 0;
    for (int i = 0; i < 1000; i++)
        rc |= buf_append(&b, "0123456789", 10);
    CHECK_INT(rc, 0);
    CHECK_INT(b.len, 3 + 10000);
    CHECK(b.cap > b.len);
    CHECK_INT(b.data[b.len], '\0');
    CHECK_INT(strncmp(b.data + 3, "0123456789", 10), 0);
    CHECK_INT(strncmp(b.data + b.len - 10, "0123456789", 10), 0);
    buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, 0);
}

TEST(buf_append_empty_and_binary)
{
    buf_t b = {0};
    CHECK_INT(buf_append(&b, "", 0), 0);
    CHECK(b.data != NULL);
    CHECK_INT(b.len, 0);
    CHECK_STR(b.data, "");
    CHECK_INT(buf_append(&b, "a\0b", 3), 0);
    CHECK_INT(b.len, 3);
    CHECK_INT(memcmp(b.data, "a\0b", 4), 0);
    buf_free(&b);
}

TEST(buf_appends_and_printf)
{
    buf_t b = {0};
    CHECK_INT(buf_appends(&b, "x="), 0);
    CHECK_INT(buf_printf(&b, "%d,%s,%05.1f", 42, "hi", 3.14159), 0);
    CHECK_STR(b.data, "x=42,hi,003.1");
    CHECK_INT(b.len, strlen("x=42,hi,003.1"));
    /* printf on an empty buffer and of an empty string. */
    buf_t c = {0};
    CHECK_INT(buf_printf(&c, "%s", ""), 0);
    CHECK(c.data != NULL);
    CHECK_STR(c.data, "");
    CHECK_INT(c.len, 0);
    /* A long printf forces growth. */
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_INT(buf_printf(&c, "[%s]", big), 0);
    CHECK_INT(c.len, sizeof big + 1);
    CHECK_INT(c.data[0], '[');
    CHECK_INT(c.data[c.len - 1], ']');
    CHECK_INT(c.data[c.len], '\0');
    buf_free(&b);
    buf_free(&c);
}

TEST(buf_consume_and_reset)
{
    buf_t b = {0};
    buf_consume(&b, 5); /* on a never-used buffer: no crash */
    CHECK_INT(b.len, 0);
    buf_reset(&b);
    CHECK_INT(b.len, 0);
    buf_appends(&b, "hello world");
    buf_consume(&b, 6);
    CHECK_STR(b.data, "world");
    CHECK_INT(b.len, 5);
    buf_consume(&b, 0);
    CHECK_STR(b.data, "world");
    buf_consume(&b, 5);
    CHECK_STR(b.data, "");
    CHECK_INT(b.len, 0);
    buf_appends(&b, "abc");
    buf_consume(&b, 100);
    CHECK_STR(b.data, "");
    CHECK_INT(b.len, 0);
    buf_appends(&b, "again");
    size_t cap = b.cap;
    buf_reset(&b);
    CHECK_STR(b.data, "");
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, cap); /* reset keeps the allocation */
    buf_appends(&b, "ok");
    CHECK_STR(b.data, "ok");
    buf_free(&b);
    buf_free(&b); /* twice is harmless */
}

TEST(buf_json_string_escapes)
{
    buf_t b = {0};
    CHECK_INT(buf_append_json_string(&b, "plain"), 0);
    CHECK_STR(b.data, "\"plain\"");
    buf_reset(&b);
    CHECK_INT(buf_append_json_string(&b, ""), 0);
    CHECK_STR(b.data, "\"\"");
    buf_reset(&b);
    CHECK_INT(buf_append_json_string(&b, "a\"b\\c\nd\re\tf"), 0);
    CHECK_STR(b.data, "\"a\\\"b\\\\c\\nd\\re\\tf\"");
    buf_reset(&b);
    CHECK_INT(buf_append_json_string(&b, "\x01\x1f\b\f"), 0);
    CHECK_STR(b.data, "\"\\u0001\\u001f\\u0008\\u000c\"");
    buf_reset(&b);
    /* UTF-8 and '/' pass through unchanged. */
    CHECK_INT(buf_append_json_string(&b, "h\xc3\xa9llo/\xe2\x82\xac"), 0);
    CHECK_STR(b.data, "\"h\xc3\xa9llo/\xe2\x82\xac\"");
    buf_reset(&b);
    buf_appends(&b, "{\"k\":");
    buf_append_json_string(&b, "v");
    buf_appends(&b, "}");
    CHECK_STR(b.data, "{\"k\":\"v\"}");
    buf_free(&b);
}

TEST(buf_json_string_keeps_utf8_and_replaces_invalid_bytes)
{
    buf_t b = {0};
    buf_append_json_string(&b, "caf\xc3\xa9 \xf0\x9f\x8c\x8d");
    CHECK_STR(b.data, "\"caf\xc3\xa9 \xf0\x9f\x8c\x8d\"");
    buf_reset(&b);
    /* A 4-byte character cut after 2 bytes, a lone continuation byte, raw 0xFF. */
    buf_append_json_string(&b, "a\xf0\x9f");
    CHECK_STR(b.data, "\"a\\ufffd\\ufffd\"");
    buf_reset(&b);
    buf_append_json_string(&b, "\x80x\xff");
    CHECK_STR(b.data, "\"\\ufffdx\\ufffd\"");
    buf_reset(&b);
    /* Overlong encoding and a UTF-16 surrogate are not valid UTF-8 either. */
    buf_append_json_string(&b, "\xc0\xaf\xed\xa0\x80");
    CHECK_STR(b.data, "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
    buf_free(&b);
}
