/* Handlers for the OpenAI endpoints relayed as bytes, and passthrough rules. */
#ifndef AIROUTER_PROXY_H
#define AIROUTER_PROXY_H
#include "http.h"

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
