#include "common/lines.h"

#include <stdbool.h>
#include <string.h>

void lines_free(lines_t *s) { buf_free(&s->partial); }

static lines_status_t give_up(lines_t *s, lines_status_t why)
{
    lines_free(s);
    return why;
}

/* Whether a line whose first `have` bytes are known can still fit. One byte more than
 * max_line is allowed while the line is open: it may be the '\r' of its "\r\n". */
static bool may_fit(const lines_t *s, size_t have)
{
    return s->max_line == 0 || have <= s->max_line + 1;
}

static lines_status_t hand_out(lines_t *s, const char *line, size_t len, lines_fn fn, void *ud)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (s->max_line && len > s->max_line)
        return give_up(s, LINES_TOO_LONG);
    int rc = fn(ud, line, len);
    buf_reset(&s->partial);
    return rc < 0 ? give_up(s, LINES_STOPPED) : LINES_OK;
}

lines_status_t lines_feed(lines_t *s, const char *p, size_t n, lines_fn fn, void *ud)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!may_fit(s, s->partial.len + take))
            return give_up(s, LINES_TOO_LONG);
        if (!nl) {
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
        p += take + 1;
        n -= take + 1;
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
