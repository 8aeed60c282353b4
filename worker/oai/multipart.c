#include "worker/oai/multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool mp_boundary(const char *ct, char *out, size_t size)
{
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
        return false;
    /* "boundary=" twice, even inside another parameter, is refused: a backend that reads the
     * parameters less carefully could take the other one and see other fields. */
    const char *first = strcasestr(ct, "boundary=");
    if (!first || strcasestr(first + 1, "boundary="))
        return false;
    int found = 0;
    for (const char *p = ct + 19; (p = strchr(p, ';'));) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        size_t nl = (size_t)(p - name);
        while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
            nl--;
        if (*p != '=')
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        bool quoted = *p == '"';
        if (quoted)
            p++;
        size_t n = 0;
        while (p[n] && (quoted ? p[n] != '"' : (p[n] != ';' && p[n] != ' ' && p[n] != '\t')))
            n++;
        if (nl == 8 && strncasecmp(name, "boundary", 8) == 0) {
            if (found++ || n == 0 || n > 70 || n + 1 > size) /* RFC 2046: at most 70 characters */
                return false;
            memcpy(out, p, n);
            out[n] = '\0';
        }
        p += n;
    }
    return found == 1;
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

/* Whether the header block [h, end) names the field name in any spelling a lenient parser
 * might accept: any case, spaces around '=', quoted or not, name* included. */
static bool headers_name(const char *h, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = h; p + 4 <= end; p++) {
        if (strncasecmp(p, "name", 4) != 0 || (p > h && (isalnum((unsigned char)p[-1]) || p[-1] == '-' || p[-1] == '_')))
            continue;
        const char *v = p + 4;
        if (v < end && *v == '*')
            v++;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        if (v >= end || *v != '=')
            continue;
        v++;
        while (v < end && (*v == ' ' || *v == '\t' || *v == '"'))
            v++;
        const char *tick = memchr(v, '\'', (size_t)(end - v)); /* name*=utf-8''model */
        if (tick && tick + 1 < end && tick[1] == '\'' && (size_t)(tick - v) < 20)
            v = tick + 2;
        if ((size_t)(end - v) >= n && strncasecmp(v, name, n) == 0 &&
            (v + n == end || strchr("\"; \t\r\n", v[n])))
            return true;
    }
    return false;
}

int mp_count_fields(const char *body, size_t len, const char *boundary, const char *name)
{
    char delim[80];
    size_t dl = (size_t)snprintf(delim, sizeof delim, "--%s", boundary);
    const char *end = body + len;
    int count = 0;
    for (const char *p = find(body, len, delim, dl); p; p = find(p, (size_t)(end - p), delim, dl)) {
        p += dl;
        /* The part's headers end at the first blank line, CRLF or bare LF alike. */
        const char *hend = p;
        for (; hend < end; hend++)
            if (*hend == '\n' && ((hend + 1 < end && hend[1] == '\n') ||
                                  (hend + 2 < end && hend[1] == '\r' && hend[2] == '\n')))
                break;
        if (headers_name(p, hend, name))
            count++;
    }
    return count;
}
