#include "common/lines.h"

#include <stdbool.h>
#include <string.h>

void lines_free(lines_t *s)
{
    buf_free(&s->partial);
    s->after_cr = false;
    s->started = false;
}

static lines_status_t give_up(lines_t *s, lines_status_t why)
{
    lines_free(s);
    return why;
}

static bool may_fit(const lines_t *s, size_t have) { return s->max_line == 0 || have <= s->max_line; }

static lines_status_t hand_out(lines_t *s, const char *line, size_t len, lines_fn fn, void *ud)
{
    if (!s->started) {
        s->started = true;
        if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) /* a byte order mark starts the stream */
            line += 3, len -= 3;
    }
    int rc = fn(ud, line, len);
    buf_reset(&s->partial);
    return rc < 0 ? give_up(s, LINES_STOPPED) : LINES_OK;
}

lines_status_t lines_feed(lines_t *s, const char *p, size_t n, lines_fn fn, void *ud)
{
    if (n > 0 && s->after_cr) { /* the "\n" of a "\r\n" cut between two pieces */
        s->after_cr = false;
        if (*p == '\n')
            p++, n--;
    }
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        const char *cr = memchr(p, '\r', take);
        size_t end_len = 1; /* the terminator's length */
        if (cr) {
            take = (size_t)(cr - p);
            if (take + 1 == n)
                s->after_cr = true;
            else if (p[take + 1] == '\n')
                end_len = 2;
        }
        if (!may_fit(s, s->partial.len + take))
            return give_up(s, LINES_TOO_LONG);
        if (!nl && !cr) {
            if (buf_append(&s->partial, p, n) < 0)
                return give_up(s, LINES_NO_MEMORY);
            return LINES_OK;
        }
        lines_status_t rc;
        if (s->partial.len == 0) { /* a whole line in this piece: no copy */
            rc = hand_out(s, p, take, fn, ud);
        } else {
            if (buf_append(&s->partial, p, take) < 0)
                return give_up(s, LINES_NO_MEMORY);
            rc = hand_out(s, s->partial.data, s->partial.len, fn, ud);
        }
        if (rc != LINES_OK)
            return rc;
        p += take + end_len;
        n -= take + end_len;
    }
    return LINES_OK;
}

lines_status_t lines_finish(lines_t *s, lines_fn fn, void *ud)
{
    lines_status_t rc = LINES_OK;
    if (s->partial.len > 0)
        rc = hand_out(s, s->partial.data, s->partial.len, fn, ud);
    lines_free(s);
    return rc;
}
