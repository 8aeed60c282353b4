/* Just enough multipart/form-data to find a field's value in a request body, so the
 * model name can be swapped while the file parts are sent on untouched. */
#ifndef AIROUTER_MULTIPART_H
#define AIROUTER_MULTIPART_H
#include <stdbool.h>
#include <stddef.h>

/* Copies the boundary parameter of a multipart/form-data Content-Type into out.
 * Returns false if the type is not multipart/form-data or has no usable boundary. */
bool mp_boundary(const char *content_type, char *out, size_t size);
/* Finds the value of the (non-file) field called name. Returns false if absent. */
bool mp_find_field(const char *body, size_t len, const char *boundary, const char *name, size_t *value_off,
                   size_t *value_len);

/* How many parts name the field called name in any spelling a lenient parser might accept
 * (any case, unquoted, name*=, a filename, LF-only lines). More than mp_find_field's one means
 * a backend could read another value than the one airouter routed by. */
int mp_count_fields(const char *body, size_t len, const char *boundary, const char *name);

#endif
