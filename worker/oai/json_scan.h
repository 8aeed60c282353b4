/* A strict JSON scanner: checks that text is one JSON value as RFC 8259 defines it and notes
 * where the members of its top-level object are, without building anything. For text that is
 * passed on with one field replaced, or one field read. */
#ifndef AIROUTER_JSON_SCAN_H
#define AIROUTER_JSON_SCAN_H
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

typedef enum {
    JS_OK,          /* one JSON object */
    JS_NOT_OBJECT,  /* one JSON value, not an object */
    JS_TOO_DEEP,    /* objects and arrays nest deeper than asked */
    JS_INVALID,     /* not one JSON value */
} js_status_t;

/* A top-level member to find. */
typedef struct {
    const char *key;  /* in: its name, compared with the raw key text (a key with escapes never matches) */
    size_t at, end;   /* out: its value's text is [at, end) (the last occurrence) */
    int count;        /* out: how often the key occurs at the top level */
} js_member_t;

typedef struct {
    int members;       /* members of the top-level object */
    bool escaped_key;  /* one of its keys has a backslash escape */
} js_info_t;

/* Scans p[0..n): whitespace, one value, whitespace. Containers may nest max_depth deep.
 * want (nwant entries, may be NULL) and info (may be NULL) are filled when the value is an
 * object; their figures mean nothing unless JS_OK is returned. */
js_status_t js_scan(const char *p, size_t n, int max_depth, js_member_t *want, int nwant, js_info_t *info);

/* Appends p with [at, end) replaced by with (wlen bytes). 0, or -1 when memory ran out. */
int js_splice(buf_t *out, const char *p, size_t n, size_t at, size_t end, const char *with, size_t wlen);

#endif
