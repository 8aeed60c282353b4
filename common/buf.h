/* Growable byte buffer. The buffer owns `data`; it is always NUL-terminated. */
#ifndef AIROUTER_BUF_H
#define AIROUTER_BUF_H
#include <stddef.h>

typedef struct {
    char *data;   /* owned; NULL until first append */
    size_t len;
    size_t cap;
} buf_t;

int buf_append(buf_t *b, const void *p, size_t n);
int buf_appends(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes. */
void buf_consume(buf_t *b, size_t n);
void buf_reset(buf_t *b);
void buf_free(buf_t *b);
/* Appends s as a JSON string literal (with quotes). */
int buf_append_json_string(buf_t *b, const char *s);

#endif
