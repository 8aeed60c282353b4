#include "common/oai_error.h"

static int append_or_null(buf_t *b, const char *s)
{
    return s ? buf_append_json_string(b, s) : buf_appends(b, "null");
}

int oaierr_format(buf_t *out, const char *message, const char *type, const char *param,
                  const char *code)
{
    if (buf_appends(out, "{\"error\":{\"message\":") < 0 || buf_append_json_string(out, message) < 0 ||
        buf_appends(out, ",\"type\":") < 0 || buf_append_json_string(out, type) < 0 ||
        buf_appends(out, ",\"param\":") < 0 || append_or_null(out, param) < 0 ||
        buf_appends(out, ",\"code\":") < 0 || append_or_null(out, code) < 0 ||
        buf_appends(out, "}}") < 0)
        return -1;
    return 0;
}
