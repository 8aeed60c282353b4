#include "worker/http/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http/api.h"
#include "worker/oai/generate_body.h"

static enum MHD_Result handle(request_t *req, bool stream)
{
    enum MHD_Result rc;
    http_track(req, KIND_CHAT);
    json_object *in_body = api_parse_body(req, &rc), *v;
    if (!in_body)
        return rc;
    const char *provider = NULL, *prompt = NULL, *model = "";
    long max_tokens = 0;
    json_object *params = NULL;
    if (json_object_object_get_ex(in_body, "provider", &v) && json_object_is_type(v, json_type_string))
        provider = json_object_get_string(v);
    if (json_object_object_get_ex(in_body, "prompt", &v) && json_object_is_type(v, json_type_string))
        prompt = json_object_get_string(v);
    if (json_object_object_get_ex(in_body, "model", &v) && json_object_is_type(v, json_type_string))
        model = json_object_get_string(v);
    if (json_object_object_get_ex(in_body, "max_tokens", &v) && v) {
        /* a number, or a numeric string as the original gateway accepted */
        char *end = NULL;
        const char *text = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        max_tokens = text ? strtol(text, &end, 10) : (long)json_object_get_int64(v);
        bool bad = text ? (end == text || *end) : !json_object_is_type(v, json_type_int);
        if (bad || max_tokens < 0) {
            rc = http_respond_error(req, 400, "max_tokens must be an integer, 0 (the model's default) or more.",
                                    "invalid_request_error", "max_tokens", "invalid_value");
            goto out;
        }
    }
    if (json_object_object_get_ex(in_body, "parameters", &v) && v) {
        if (!json_object_is_type(v, json_type_object)) {
            rc = http_respond_error(req, 400, "parameters must be an object of strings.", "invalid_request_error",
                                    "parameters", "invalid_type");
            goto out;
        }
        params = v;
    }
    if (!provider || !provider[0]) {
        rc = api_missing_param(req, "provider", "(a backend name or type)");
        goto out;
    }
    if (!prompt || !prompt[0]) {
        rc = api_missing_param(req, "prompt", NULL);
        goto out;
    }
    char err[200];
    json_object *body = generate_body_chat(prompt, max_tokens, params, stream, err, sizeof err);
    if (!body) {
        rc = http_respond_error(req, 400, err, "invalid_request_error", "parameters", "invalid_value");
        goto out;
    }
    req->provider = strdup(provider);
    req->model_asked = strdup(model);
    rc = req->provider && req->model_asked ? api_run(req, KIND_CHAT, body, true) : MHD_NO;
    json_object_put(body);
out:
    json_object_put(in_body);
    return rc;
}

enum MHD_Result gateway_generate(request_t *req) { return handle(req, false); }
enum MHD_Result gateway_stream(request_t *req) { return handle(req, true); }
