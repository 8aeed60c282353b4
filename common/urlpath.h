/* Checks on a request path, as the client escaped it, before it is routed or forwarded
 * to a backend: a forwarded path must never leave the prefix it was matched under. */
#ifndef AIROUTER_URLPATH_H
#define AIROUTER_URLPATH_H
#include <stdbool.h>

typedef enum {
    URLPATH_OK,
    URLPATH_DOT_SEGMENT,  /* a "." or ".." segment, raw or percent-encoded (at any depth) */
    URLPATH_CONTROL,      /* a control character or NUL once decoded (%00, %0a...) */
    URLPATH_DEEP_ESCAPES, /* still percent-encoded after every round looked through */
} urlpath_status_t;

/* Looks at path raw and after each round of percent-decoding (so %2e%2e, .%2e and
 * %252e%252e all count), taking '/', '\\' and their encodings as separators. */
urlpath_status_t urlpath_check(const char *path);

/* Whether s can go into a backend URL as it is: printable ASCII without the characters
 * that URLs do not allow or that end the path ('#', space, quotes, '\\' ...). */
bool urlpath_forwardable(const char *s);

#endif
