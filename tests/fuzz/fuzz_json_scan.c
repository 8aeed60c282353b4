/* The strict JSON scanner (worker/oai/json_scan.c) against json-c: whatever it accepts, the
 * parser reads as the same kind of value; the members it finds are the parser's; a member
 * spliced in place leaves a valid object with the new value and every other member. */
#include "fuzz.h"

#include "worker/oai/json_scan.h"
#include "worker/oai/oai_shape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    js_member_t want[] = {{.key = "model"}, {.key = "usage"}};
    js_info_t info;
    js_status_t st = js_scan(p, size, SHAPE_MAX_DEPTH - 1, want, 2, &info);
    if (st == JS_INVALID || st == JS_TOO_DEEP)
        return 0;
    json_object *parsed = shape_parse(p, size);
    /* json-c cannot end a bare top-level number without something after it */
    FUZZ_ASSERT(parsed || st == JS_NOT_OBJECT);
    if (!parsed)
        return 0;
    FUZZ_ASSERT((st == JS_OK) == json_object_is_type(parsed, json_type_object));
    if (st == JS_OK) {
        FUZZ_ASSERT(info.members >= json_object_object_length(parsed));
        if (info.members == json_object_object_length(parsed) && !info.escaped_key) {
            for (int k = 0; k < 2; k++) {
                json_object *v;
                FUZZ_ASSERT((want[k].count == 1) == json_object_object_get_ex(parsed, want[k].key, &v));
                if (want[k].count != 1)
                    continue;
                json_object *span = shape_parse(p + want[k].at, want[k].end - want[k].at);
                FUZZ_ASSERT(span && json_object_equal(span, v));
                json_object_put(span);
            }
            if (want[0].count == 1) {
                buf_t out = {0};
                FUZZ_ASSERT(js_splice(&out, p, size, want[0].at, want[0].end, "\"renamed\"", 9) == 0);
                json_object *r = shape_parse(out.data, out.len), *m;
                FUZZ_ASSERT(r && json_object_object_length(r) == json_object_object_length(parsed));
                FUZZ_ASSERT(json_object_object_get_ex(r, "model", &m) && json_object_is_type(m, json_type_string) &&
                            strcmp(json_object_get_string(m), "renamed") == 0);
                json_object_put(r);
                buf_free(&out);
            }
        }
    }
    json_object_put(parsed);
    return 0;
}
