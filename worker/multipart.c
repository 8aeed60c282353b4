#include "multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool mp_boundary(const char *ct, char *out, size_t size)
{
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
        return false;
    const char *b = strcasestr(ct, "boundary=");
    if (!b)
        return false;
    b += 9;
    bool quoted = *b == '"';
    if (quoted)
        b++;
    size_t n = 0;
    while (b[n] && (quoted ? b[n] != '"' : (b[n] != ';' && b[n] != ' ' && b[n] != '\t')))
        n++;
    if (n == 0 || n > 70 || n + 1 > size) /* RFC 2046: at most 70 characters */
        return false;
    memcpy(out, b, n);
    out[n] = '\0';
    return true;
}

/* Finds needle in [hay, hay+len). */
static const char *find(const char *hay, size_t len, const char *needle, size_t nlen)
{
    if (nlen == 0 || len < nlen)
        return NULL;
    for (const char *p = hay; (p = memchr(p, needle[0], (size_t)(hay + len - p) - nlen + 1));) {
        if (memcmp(p, needle, nlen) == 0)
            return p;
        if ((size_t)(++p - hay) > len - nlen)
            break;
    }
    return NULL;
}

bool mp_find_field(const char *body, size_t len, const char *boundary, const char *name, size_t *value_off,
                   size_t *value_len)
{
    char delim[80];
    size_t dl = (size_t)snprintf(delim, sizeof delim, "--%s", boundary);
    const char *end = body + len, *p = find(body, len, delim, dl);
    while (p) {
        const char *headers = p + dl;
        if (headers + 2 > end || (headers[0] == '-' && headers[1] == '-'))
            return false; /* the closing delimiter */
        const char *hend = find(headers, (size_t)(end - headers), "\r\n\r\n", 4);
        if (!hend)
            return false;
        const char *value = hend + 4;
        /* The part ends at CRLF + the next delimiter. */
        char next[84];
        size_t nl = (size_t)snprintf(next, sizeof next, "\r\n%s", delim);
        const char *vend = find(value, (size_t)(end - value), next, nl);
        if (!vend)
            return false;
        /* Content-Disposition: form-data; name="model" (and no filename: not a file). */
        size_t hlen = (size_t)(hend - headers);
        char quoted[80];
        size_t ql = (size_t)snprintf(quoted, sizeof quoted, "name=\"%s\"", name);
        const char *cd = find(headers, hlen, quoted, ql);
        if (cd && (cd == headers || cd[-1] == ' ' || cd[-1] == ';') && !find(headers, hlen, "filename=", 9)) {
            *value_off = (size_t)(value - body);
            *value_len = (size_t)(vend - value);
            return true;
        }
        p = vend + 2;
    }
    return false;
}
