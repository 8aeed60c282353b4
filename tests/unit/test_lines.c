#include <stdlib.h>

#include "common/lines.h"
#include "unit.h"

/* Collects the lines handed out, each followed by '|'. */
typedef struct {
    buf_t got;
    int calls;
    int stop_at; /* the callback asks to stop on this call (0: never) */
} seen_t;

static int collect(void *ud, const char *line, size_t len)
{
    seen_t *s = ud;
    s->calls++;
    buf_append(&s->got, line, len);
    buf_append(&s->got, "|", 1);
    return s->calls == s->stop_at ? -1 : 0;
}

/* Feeds text in pieces of `step` bytes; returns the last status. */
static lines_status_t feed_in_pieces(lines_t *l, const char *text, size_t step, seen_t *s)
{
    lines_status_t rc = LINES_OK;
    for (size_t i = 0, n = strlen(text); i < n && rc == LINES_OK; i += step)
        rc = lines_feed(l, text + i, n - i < step ? n - i : step, collect, s);
    return rc;
}

TEST(lines_split_whatever_the_pieces)
{
    const char *text = "data: a\r\n\r\nevent: x\ndata: {\"b\":1}\n\n: c\nlast";
    for (size_t step = 1; step <= strlen(text); step++) {
        lines_t l = {.max_line = 0};
        seen_t s = {0};
        CHECK_INT(feed_in_pieces(&l, text, step, &s), LINES_OK);
        CHECK_INT(lines_finish(&l, collect, &s), LINES_OK);
        CHECK_MSG(s.got.data && strcmp(s.got.data, "data: a||event: x|data: {\"b\":1}||: c|last|") == 0,
                  "pieces of %zu: %s", step, s.got.data ? s.got.data : "(none)");
        CHECK(l.partial.data == NULL);
        buf_free(&s.got);
    }
}

TEST(lines_end_with_cr_lf_or_both)
{
    /* a lone "\r" ends a line, "\r\n" is one end even when cut between pieces, "\n\r" is two */
    const char *text = "a\rb\r\nc\n\rd\r\r\ne\r";
    for (size_t step = 1; step <= strlen(text); step++) {
        lines_t l = {.max_line = 0};
        seen_t s = {0};
        CHECK_INT(feed_in_pieces(&l, text, step, &s), LINES_OK);
        CHECK_INT(lines_finish(&l, collect, &s), LINES_OK);
        CHECK_MSG(s.got.data && strcmp(s.got.data, "a|b|c||d||e|") == 0, "pieces of %zu: %s", step,
                  s.got.data ? s.got.data : "(none)");
        buf_free(&s.got);
    }
    /* a "\r" at the end of one piece does not swallow the next piece's first byte unless it is "\n" */
    lines_t l = {0};
    seen_t s = {0};
    CHECK_INT(lines_feed(&l, "x\r", 2, collect, &s), LINES_OK);
    CHECK_INT(lines_feed(&l, "y\n", 2, collect, &s), LINES_OK);
    CHECK_INT(lines_feed(&l, "z\r", 2, collect, &s), LINES_OK);
    CHECK_INT(lines_feed(&l, "\n", 1, collect, &s), LINES_OK);
    CHECK_INT(lines_feed(&l, "\n", 1, collect, &s), LINES_OK);
    CHECK_INT(lines_finish(&l, collect, &s), LINES_OK);
    CHECK_STR(s.got.data, "x|y|z||");
    buf_free(&s.got);
}

TEST(lines_byte_order_mark_dropped_at_the_start_only)
{
    const char *text = "\xEF\xBB\xBF" "a\n\xEF\xBB\xBF" "b\n";
    for (size_t step = 1; step <= strlen(text); step++) {
        lines_t l = {.max_line = 0};
        seen_t s = {0};
        CHECK_INT(feed_in_pieces(&l, text, step, &s), LINES_OK);
        CHECK_INT(lines_finish(&l, collect, &s), LINES_OK);
        CHECK_MSG(s.got.data && strcmp(s.got.data, "a|\xEF\xBB\xBF" "b|") == 0, "pieces of %zu", step);
        buf_free(&s.got);
    }
    /* a first line that is only the mark is an empty line */
    lines_t l = {0};
    seen_t s = {0};
    CHECK_INT(lines_feed(&l, "\xEF\xBB\xBF\nx\n", 6, collect, &s), LINES_OK);
    CHECK_STR(s.got.data, "|x|");
    lines_free(&l);
    buf_free(&s.got);
}

TEST(lines_bound_counts_the_line_not_its_terminator)
{
    /* exactly max_line bytes, with "\n" and with "\r\n", in one piece and byte by byte */
    const char *ok[] = {"12345678\n", "12345678\r\n", "12345678\r"};
    for (int i = 0; i < 3; i++)
        for (size_t step = 1; step <= 10; step += 9) {
            lines_t l = {.max_line = 8};
            seen_t s = {0};
            CHECK_INT(feed_in_pieces(&l, ok[i], step, &s), LINES_OK);
            CHECK_STR(s.got.data, "12345678|");
            lines_free(&l);
            buf_free(&s.got);
        }
    /* one byte more: refused, whether the line ends or not, and its memory let go */
    const char *long_ones[] = {"123456789\n", "123456789\r\n", "123456789\r", "123456789", "1234567890123"};
    for (int i = 0; i < 5; i++)
        for (size_t step = 1; step <= 13; step += 12) {
            lines_t l = {.max_line = 8};
            seen_t s = {0};
            lines_status_t rc = feed_in_pieces(&l, long_ones[i], step, &s);
            CHECK_MSG(rc == LINES_TOO_LONG, "%s in pieces of %zu: %d", long_ones[i], step, rc);
            CHECK_INT(s.calls, 0);
            CHECK(l.partial.data == NULL && l.partial.cap == 0);
            buf_free(&s.got);
        }
    /* short lines before the long one are handed out */
    lines_t l = {.max_line = 4};
    seen_t s = {0};
    CHECK_INT(lines_feed(&l, "ab\ncd\nefghij", 12, collect, &s), LINES_TOO_LONG);
    CHECK_STR(s.got.data, "ab|cd|");
    buf_free(&s.got);
}

TEST(lines_memory_stays_within_the_bound)
{
    /* a line that never ends, fed in 4 KiB pieces: refused at the bound, never held whole */
    enum { MAX = 64 * 1024 };
    char piece[4096];
    memset(piece, 'x', sizeof piece);
    lines_t l = {.max_line = MAX};
    seen_t s = {0};
    size_t fed = 0, most = 0;
    lines_status_t rc = LINES_OK;
    while (rc == LINES_OK && fed < 100 * MAX) {
        rc = lines_feed(&l, piece, sizeof piece, collect, &s);
        fed += sizeof piece;
        if (l.partial.cap > most)
            most = l.partial.cap;
    }
    CHECK_INT(rc, LINES_TOO_LONG);
    CHECK_MSG(fed <= MAX + 2 * sizeof piece, "refused after %zu bytes", fed);
    CHECK_MSG(most <= 2 * (MAX + 2), "held up to %zu bytes", most);
    CHECK_INT(s.calls, 0);
}

TEST(lines_callback_may_stop)
{
    lines_t l = {0};
    seen_t s = {.stop_at = 2};
    CHECK_INT(lines_feed(&l, "a\nb\nc\n", 6, collect, &s), LINES_STOPPED);
    CHECK_STR(s.got.data, "a|b|");
    CHECK(l.partial.data == NULL);
    buf_free(&s.got);
}
