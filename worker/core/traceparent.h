/* The W3C Trace Context traceparent header, read from a client and written to a backend:
 * "<version>-<trace-id>-<parent-id>-<trace-flags>", lowercase hex (https://www.w3.org/TR/trace-context/). */
#ifndef AIROUTER_TRACEPARENT_H
#define AIROUTER_TRACEPARENT_H
#include <stdbool.h>
#include <stddef.h>

#define TRACEPARENT_SAMPLED 0x01u /* trace-flags: the caller may have recorded its span */
#define TRACEPARENT_LEN 55        /* of a version 00 header */

typedef struct {
    unsigned version;
    char trace_id[33];  /* 32 lowercase hex digits, not all zeros */
    char parent_id[17]; /* 16 lowercase hex digits, not all zeros */
    unsigned flags;
} traceparent_t;

/* Parses header (NULL: none) into out. False when it is not a valid traceparent: then a new
 * trace starts. Version 00 is exactly 55 characters; a later version may append "-..." fields,
 * which are ignored; version ff is invalid. */
bool traceparent_parse(const char *header, traceparent_t *out);
/* Writes tp as a version 00 header into out (at least TRACEPARENT_LEN + 1 bytes). */
void traceparent_format(const traceparent_t *tp, char *out, size_t size);

#endif
