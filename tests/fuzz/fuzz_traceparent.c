/* W3C traceparent (traceparent_parse in worker/core/traceparent.c, used by trace_begin): the
 * header as a client sends it. An accepted one is continued (its trace id kept, passed on as
 * version 00); anything else starts a new trace. Either way the ids are lowercase hex of the
 * right length. */
#include "fuzz.h"

#include <ctype.h>

#include "worker/core/trace.h"
#include "worker/core/traceparent.h"

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
    traceparent_t parsed;
    bool valid = traceparent_parse(tp, &parsed);
    if (valid) {
        FUZZ_ASSERT(size >= TRACEPARENT_LEN && parsed.version != 0xff && parsed.flags <= 0xff);
        FUZZ_ASSERT(all_hex(parsed.trace_id, 32) && all_hex(parsed.parent_id, 16));
        char again[TRACEPARENT_LEN + 1];
        traceparent_format(&parsed, again, sizeof again);
        traceparent_t round;
        FUZZ_ASSERT(traceparent_parse(again, &round) && memcmp(&round.trace_id, &parsed.trace_id, 33) == 0 &&
                    memcmp(&round.parent_id, &parsed.parent_id, 17) == 0 && round.flags == parsed.flags);
    }
    request_t *req = calloc(1, sizeof *req);
    trace_begin(req, tp);
    FUZZ_ASSERT(all_hex(req->trace_id, 32) && all_hex(req->span_id, 16));
    FUZZ_ASSERT(valid == (req->client_traceparent[0] != '\0'));
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
