#include "common/urlpath.h"

#include <stdlib.h>
#include <string.h>

/* Rounds of percent-decoding looked through: a chain of proxies rarely decodes more. */
#define DECODE_ROUNDS 4

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in place; returns whether anything was decoded. A %00 becomes a 0x01 byte
 * here, so the string stays whole and the byte still counts as a control character. */
static bool decode_once(char *s)
{
    bool changed = false;
    char *out = s;
    for (const char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = hex_value(p[1])) >= 0 && (lo = hex_value(p[2])) >= 0) {
            int c = hi * 16 + lo;
            *out++ = (char)(c == 0 ? 1 : c);
            p += 2;
            changed = true;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return changed;
}

static urlpath_status_t check_plain(const char *s)
{
    const char *seg = s;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\0' || c == '/' || c == '\\') {
            size_t n = (size_t)(p - seg);
            if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return URLPATH_DOT_SEGMENT;
            if (c == '\0')
                return URLPATH_OK;
            seg = p + 1;
        } else if (c < 0x20 || c == 0x7f) {
            return URLPATH_CONTROL;
        }
    }
}

urlpath_status_t urlpath_check(const char *path)
{
    char *s = strdup(path);
    if (!s)
        return URLPATH_CONTROL; /* refuse what cannot be checked */
    urlpath_status_t st = check_plain(s);
    for (int round = 0; st == URLPATH_OK && round < DECODE_ROUNDS && decode_once(s); round++)
        st = check_plain(s);
    if (st == URLPATH_OK && decode_once(s))
        st = URLPATH_DEEP_ESCAPES;
    free(s);
    return st;
}

bool urlpath_forwardable(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || strchr("\"<>\\^`{|}#", *c))
            return false;
    return true;
}
