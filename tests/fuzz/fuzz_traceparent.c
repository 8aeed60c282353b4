/* W3C traceparent (trace_begin_with in worker/core/trace.c): the header as a client sends it.
 * An accepted one is continued (its trace id kept, passed on as version 00); anything else
 * starts a new trace. Either way the ids are lowercase hex of the right length. */
#include "fuzz.h"

#include <ctype.h>

#include "worker/core/trace.h"

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return 0;
    return s[n] == '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *tp = fuzz_strndup(data, size);
    request_t *req = calloc(1, sizeof *req);
    trace_begin_with(req, tp);
    FUZZ_ASSERT(all_hex(req->trace_id, 32) && all_hex(req->span_id, 16));
    if (req->client_traceparent[0]) {
        FUZZ_ASSERT(strlen(req->client_traceparent) == 55 && strncmp(req->client_traceparent, "00-", 3) == 0);
        FUZZ_ASSERT(memcmp(req->trace_id, tp + 3, 32) == 0 && all_hex(req->parent_span_id, 16));
        FUZZ_ASSERT(strspn(req->trace_id, "0") < 32 && strspn(req->parent_span_id, "0") < 16);
    } else {
        FUZZ_ASSERT(req->parent_span_id[0] == '\0');
    }
    free(req);
    free(tp);
    return 0;
}
