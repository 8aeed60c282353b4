/* The strict JSON scanner (json_scan.h). Iterative: a nesting stack of max_depth bytes. */
#include "worker/oai/json_scan.h"

#include <stdlib.h>
#include <string.h>

#define MAX_STACK 1024

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* p[i] is '"': the index just past the closing quote, 0 if the string is malformed.
 * *escaped tells whether it holds a backslash escape. */
static size_t string_end(const char *p, size_t n, size_t i, bool *escaped)
{
    *escaped = false;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (c != '\\')
            continue;
        *escaped = true;
        if (++i >= n)
            return 0;
        switch (p[i]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            break;
        case 'u':
            if (n - i < 5 || !is_hex(p[i + 1]) || !is_hex(p[i + 2]) || !is_hex(p[i + 3]) || !is_hex(p[i + 4]))
                return 0;
            i += 4;
            break;
        default:
            return 0;
        }
    }
    return 0;
}

/* A number at p[i]: the index just past it, 0 if malformed. */
static size_t number_end(const char *p, size_t n, size_t i)
{
    if (i < n && p[i] == '-')
        i++;
    if (i >= n || !is_digit(p[i]))
        return 0;
    if (p[i] == '0')
        i++;
    else
        while (i < n && is_digit(p[i]))
            i++;
    if (i < n && p[i] == '.') {
        if (++i >= n || !is_digit(p[i]))
            return 0;
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || !is_digit(p[i]))
            return 0;
        while (i < n && is_digit(p[i]))
            i++;
    }
    return i;
}

static size_t literal_end(const char *p, size_t n, size_t i, const char *word)
{
    size_t l = strlen(word);
    return n - i >= l && memcmp(p + i, word, l) == 0 ? i + l : 0;
}

js_status_t js_scan(const char *p, size_t n, int max_depth, js_member_t *want, int nwant, js_info_t *info)
{
    char stack[MAX_STACK];
    if (max_depth > MAX_STACK)
        max_depth = MAX_STACK;
    if (max_depth < 0)
        max_depth = 0;
    for (int k = 0; k < nwant; k++)
        want[k].count = 0, want[k].at = want[k].end = 0;
    if (info)
        *info = (js_info_t){0};
    int depth = 0, pending = -1; /* pending: the wanted member whose value is being scanned */
    size_t i = skip_ws(p, n, 0);
    bool object = i < n && p[i] == '{', esc;
    enum { VALUE, AFTER, KEY } state = VALUE;
    for (;;) {
        if (state == VALUE) {
            if (i >= n)
                return JS_INVALID;
            char c = p[i];
            if (c == '{' || c == '[') {
                if (depth >= max_depth)
                    return JS_TOO_DEEP;
                stack[depth++] = c;
                i = skip_ws(p, n, i + 1);
                if (i < n && p[i] == (c == '{' ? '}' : ']')) {
                    depth--;
                    i++;
                    state = AFTER;
                } else {
                    state = c == '{' ? KEY : VALUE;
                }
                continue;
            }
            size_t e;
            if (c == '"')
                e = string_end(p, n, i, &esc);
            else if (c == '-' || is_digit(c))
                e = number_end(p, n, i);
            else if (c == 't')
                e = literal_end(p, n, i, "true");
            else if (c == 'f')
                e = literal_end(p, n, i, "false");
            else if (c == 'n')
                e = literal_end(p, n, i, "null");
            else
                e = 0;
            if (!e)
                return JS_INVALID;
            i = e;
            state = AFTER;
        } else if (state == AFTER) {
            if (pending >= 0 && depth == 1) {
                want[pending].end = i;
                pending = -1;
            }
            i = skip_ws(p, n, i);
            if (depth == 0)
                return i != n ? JS_INVALID : object ? JS_OK : JS_NOT_OBJECT;
            char top = stack[depth - 1];
            if (i >= n)
                return JS_INVALID;
            if (p[i] == ',') {
                i = skip_ws(p, n, i + 1);
                state = top == '{' ? KEY : VALUE;
            } else if (p[i] == (top == '{' ? '}' : ']')) {
                depth--;
                i++;
            } else {
                return JS_INVALID;
            }
        } else { /* KEY */
            if (i >= n || p[i] != '"')
                return JS_INVALID;
            size_t e = string_end(p, n, i, &esc);
            if (!e)
                return JS_INVALID;
            if (depth == 1) {
                if (info) {
                    info->members++;
                    info->escaped_key |= esc;
                }
                size_t klen = e - i - 2;
                for (int k = 0; k < nwant && !esc; k++)
                    if (strlen(want[k].key) == klen && memcmp(want[k].key, p + i + 1, klen) == 0) {
                        pending = k;
                        want[k].count++;
                        break;
                    }
            }
            i = skip_ws(p, n, e);
            if (i >= n || p[i] != ':')
                return JS_INVALID;
            i = skip_ws(p, n, i + 1);
            if (pending >= 0 && depth == 1)
                want[pending].at = i;
            state = VALUE;
        }
    }
}

int js_splice(buf_t *out, const char *p, size_t n, size_t at, size_t end, const char *with, size_t wlen)
{
    if (at > end || end > n)
        return -1;
    return buf_append(out, p, at) < 0 || buf_append(out, with, wlen) < 0 || buf_append(out, p + end, n - end) < 0
               ? -1
               : 0;
}
