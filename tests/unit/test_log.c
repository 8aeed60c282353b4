#include "common/log.h"
#include "unit.h"

TEST(log_escape_keeps_one_line)
{
    char out[128];
    log_escape(out, sizeof out, "model 'x\n2026-01-01 [error] forged'\r\t\x1b[31m\\");
    CHECK_STR(out, "model 'x\\n2026-01-01 [error] forged'\\r\\t\\x1b[31m\\\\");
    log_escape(out, sizeof out, "caf\xc3\xa9 \xe2\x82\xac ok");
    CHECK_STR(out, "caf\xc3\xa9 \xe2\x82\xac ok");
    /* invalid UTF-8, a C1 control (U+009B, a terminal's CSI) and DEL */
    log_escape(out, sizeof out, "a\xff\xc3(\xc2\x9b\x7f");
    CHECK_STR(out, "a\\xff\\xc3(\\xc2\\x9b\\x7f");
}

TEST(log_escape_never_cuts_an_escape)
{
    char out[6];
    CHECK_INT(log_escape(out, sizeof out, "abcd\ne"), 4);
    CHECK_STR(out, "abcd");
    CHECK_INT(log_escape(out, sizeof out, "abcd\x01"), 4);
    CHECK_STR(out, "abcd");
    CHECK_INT(log_escape(out, sizeof out, "abc\xe2\x82\xac"), 3);
    CHECK_STR(out, "abc");
}
