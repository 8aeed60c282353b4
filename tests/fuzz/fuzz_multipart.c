/* multipart/form-data (worker/oai/multipart.c): the Content-Type (the input's first line) gives
 * the boundary, the rest is the body in which the model field is looked up. A field found
 * must lie inside the body and be followed by its delimiter. */
#include "fuzz.h"

#include "worker/oai/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    char *ct = fuzz_strndup(data, (size_t)(nl - data));
    size_t len = size - (size_t)(nl + 1 - data);
    char *body = malloc(len ? len : 1); /* exactly len bytes: reading past them is caught */
    memcpy(body, nl + 1, len);
    char boundary[80];
    if (mp_boundary(ct, boundary, sizeof boundary)) {
        FUZZ_ASSERT(strlen(boundary) >= 1 && strlen(boundary) <= 70);
        static const char *const names[] = {"model", "file", ""};
        for (int i = 0; i < 3; i++) {
            size_t off = 0, vlen = 0;
            if (mp_find_field(body, len, boundary, names[i], &off, &vlen)) {
                FUZZ_ASSERT(off <= len && vlen <= len - off);
                FUZZ_ASSERT(len - off - vlen >= 2 + 2 + strlen(boundary));
                FUZZ_ASSERT(memcmp(body + off + vlen, "\r\n--", 4) == 0);
            }
        }
    }
    free(body);
    free(ct);
    return 0;
}
