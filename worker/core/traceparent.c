#include "worker/core/traceparent.h"

#include <stdio.h>
#include <string.h>

/* The value of n lowercase hex digits at s, or -1 if one is not. */
static long long hex_value(const char *s, size_t n)
{
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        int d;
        if (s[i] >= '0' && s[i] <= '9')
            d = s[i] - '0';
        else if (s[i] >= 'a' && s[i] <= 'f')
            d = s[i] - 'a' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* n lowercase hex digits at s, not all zeros: a valid trace or parent id. */
static bool valid_id(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hex_value(s + i, 1) < 0)
            return false;
    return strspn(s, "0") < n;
}

bool traceparent_parse(const char *h, traceparent_t *out)
{
    size_t n = h ? strlen(h) : 0;
    if (n < TRACEPARENT_LEN)
        return false;
    long long version = hex_value(h, 2), flags = hex_value(h + 53, 2);
    if (version < 0 || version == 0xff || flags < 0)
        return false;
    if (version == 0 ? n != TRACEPARENT_LEN : (n > TRACEPARENT_LEN && h[TRACEPARENT_LEN] != '-'))
        return false;
    if (h[2] != '-' || h[35] != '-' || h[52] != '-' || !valid_id(h + 3, 32) || !valid_id(h + 36, 16))
        return false;
    out->version = (unsigned)version;
    memcpy(out->trace_id, h + 3, 32);
    out->trace_id[32] = '\0';
    memcpy(out->parent_id, h + 36, 16);
    out->parent_id[16] = '\0';
    out->flags = (unsigned)flags;
    return true;
}

void traceparent_format(const traceparent_t *tp, char *out, size_t size)
{
    snprintf(out, size, "00-%s-%s-%02x", tp->trace_id, tp->parent_id, tp->flags & 0xffu);
}
