/* Handlers for the OpenAI endpoints relayed as bytes, and passthrough rules. */
#ifndef AIROUTER_PROXY_H
#define AIROUTER_PROXY_H
#include <json-c/json.h>

#include "worker/core/failover.h"
#include "worker/http/http.h"

/* A request relayed as bytes, as the failover loop carries it (see proxy_try). */
typedef struct {
    unsigned kind;
    const char *method;
    char path[1024];            /* after the backend's /v1 */
    const char *query;          /* NULL: none */
    const char *content_type;   /* the client's */
    json_object *json;          /* JSON requests: re-serialised per try with the model set */
    /* multipart requests: the model value's place in the body (absent: inserted) */
    bool multipart;
    bool has_model_field;
    size_t model_off, model_len;
    char boundary[80];
    bool passthrough;           /* relay everything, errors included, rewrite nothing */
    const char *extra_headers[4];
} proxy_job_t;

/* One try of job (a proxy_job_t) against target t: a failover_try_fn. */
try_result_t proxy_try(request_t *req, void *job, const cfg_model_t *m, bool is_fallback,
                       const cfg_target_t *t, be_event_t *ev);

enum MHD_Result proxy_speech(request_t *req);
enum MHD_Result proxy_transcriptions(request_t *req);
enum MHD_Result proxy_translations(request_t *req);
enum MHD_Result proxy_image_generations(request_t *req);
enum MHD_Result proxy_image_edits(request_t *req);
enum MHD_Result proxy_image_variations(request_t *req);
enum MHD_Result proxy_moderations(request_t *req);
enum MHD_Result proxy_responses(request_t *req);
enum MHD_Result proxy_response_by_id(request_t *req);
enum MHD_Result proxy_passthrough(request_t *req);

/* The passthrough rule whose prefix url falls under, or NULL. */
const cfg_passthrough_t *proxy_match(const char *url);
/* The request's query string, re-encoded (thread-local; NULL when there is none). */
const char *proxy_query_string(request_t *req);

#endif
