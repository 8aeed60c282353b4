/* HTTP transport shared by the HTTP-based backend types (openai, anthropic). */
#ifndef AIROUTER_HTTP_BACKEND_H
#define AIROUTER_HTTP_BACKEND_H
#include "worker/backend/backend.h"

typedef struct hb_call hb_call_t;

/* How a JSON call is made. */
typedef struct {
    const char *path;                /* appended to the backend URL */
    const char *const *headers;      /* extra "Name: value" lines, NULL-terminated, or NULL */
    const char *key_header;          /* send the key as "NAME: key"; NULL: Authorization: Bearer */
    json_object *body;               /* the body to send; NULL: req->body */
    bool stream_usage;               /* add stream_options.include_usage when req->want_usage */
    bool chunk_text;                 /* OpenAI-shaped chunks may come as text (req->chunk_text) */
    bool answer_text;                /* and the whole answer (req->answer_text) */
} hb_options_t;

int hb_worker_init(void);
void hb_worker_cleanup(void);
/* A JSON call: events are RESPONSE (the parsed JSON answer) or CHUNK (each SSE data
 * JSON), then END; backend errors come as one ERROR with an OpenAI-style message. */
hb_call_t *hb_open(const be_request_t *req, const hb_options_t *opt, be_event_t *ev);
void hb_next(hb_call_t *c, be_event_t *ev, int wait_ms);
/* A byte relay (see be_raw_request_t). */
hb_call_t *hb_open_raw(const be_raw_request_t *req, be_event_t *ev);
void hb_next_raw(hb_call_t *c, be_event_t *ev, int wait_ms);
void hb_close(hb_call_t *c);

#endif
