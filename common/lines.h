/* Splits a byte stream into lines, with a bound on a line's length. Each byte is looked at
 * once whatever the pieces it arrives in: only an unfinished line is kept between calls,
 * and the search for its end resumes with the new bytes. */
#ifndef AIROUTER_LINES_H
#define AIROUTER_LINES_H
#include <stddef.h>

#include "common/buf.h"

typedef struct {
    buf_t partial;   /* the unfinished line (owned) */
    size_t max_line; /* longest line allowed, its "\r\n" or "\n" not counted; 0: no bound */
} lines_t;

typedef enum {
    LINES_OK = 0,
    LINES_TOO_LONG = -1, /* a line passed max_line: the stream must end */
    LINES_STOPPED = -2,  /* the callback asked to stop */
    LINES_NO_MEMORY = -3,
} lines_status_t;

/* Receives each complete line without its terminator ("\n", or "\r\n"); the text is valid
 * during the call only. Returns 0 to go on, -1 to stop. */
typedef int (*lines_fn)(void *ud, const char *line, size_t len);

/* Feeds n bytes, calling fn for each line they complete. Anything but LINES_OK leaves the
 * scanner empty (its memory freed): the rest of the stream cannot be framed any more. */
lines_status_t lines_feed(lines_t *s, const char *p, size_t n, lines_fn fn, void *ud);
/* Hands out an unterminated last line, if any, then frees the state. */
lines_status_t lines_finish(lines_t *s, lines_fn fn, void *ud);
void lines_free(lines_t *s);

#endif
