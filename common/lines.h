/* Splits a byte stream into lines, with a bound on a line's length. A line ends with "\r\n",
 * "\n" or a lone "\r", as in an event stream (text/event-stream), even when a "\r\n" is cut
 * between two pieces, and a UTF-8 byte order mark at the start of the stream is dropped. Only
 * an unfinished line is kept between calls. */
#ifndef AIROUTER_LINES_H
#define AIROUTER_LINES_H
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

typedef struct {
    buf_t partial;   /* the unfinished line (owned) */
    size_t max_line; /* longest line allowed, its terminator not counted; 0: no bound */
    bool after_cr;   /* the last piece ended with "\r": a "\n" that starts the next is its end */
    bool started;    /* a line has been handed out (a byte order mark is looked for before) */
} lines_t;

typedef enum {
    LINES_OK = 0,
    LINES_TOO_LONG = -1, /* a line passed max_line: the stream must end */
    LINES_STOPPED = -2,  /* the callback asked to stop */
    LINES_NO_MEMORY = -3,
} lines_status_t;

/* Receives each complete line without its terminator; the text is valid
 * during the call only. Returns 0 to go on, -1 to stop. */
typedef int (*lines_fn)(void *ud, const char *line, size_t len);

/* Feeds n bytes, calling fn for each line they complete. Anything but LINES_OK leaves the
 * scanner empty (its memory freed): the rest of the stream cannot be framed any more. */
lines_status_t lines_feed(lines_t *s, const char *p, size_t n, lines_fn fn, void *ud);
/* Hands out an unterminated last line, if any, then frees the state. */
lines_status_t lines_finish(lines_t *s, lines_fn fn, void *ud);
void lines_free(lines_t *s);

#endif
