/* OpenAI API handlers. Each is called once the whole request body is in req->body,
 * and queues exactly one response. */
#ifndef AIROUTER_API_H
#define AIROUTER_API_H
#include "http.h"

enum MHD_Result api_chat_completions(request_t *req);
enum MHD_Result api_completions(request_t *req);
enum MHD_Result api_embeddings(request_t *req);
enum MHD_Result api_models_list(request_t *req);
enum MHD_Result api_model_get(request_t *req);

#endif
