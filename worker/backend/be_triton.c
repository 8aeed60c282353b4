/* NVIDIA Triton Inference Server backend (KServe v2 gRPC), for TensorRT-LLM and vLLM
 * models. A chat becomes one prompt (the model's prompt_format); OpenAI parameters
 * become the profile's input tensors. Every call is a ModelStreamInfer with one
 * request (decoupled models reject ModelInfer) and empty final responses enabled,
 * so the end is always seen; the answer comes back as OpenAI chunks or one
 * completion. One channel per Triton backend per worker, reused. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/prompt.h"
#include "worker/backend/backend.h"
#include "worker/oai/oai_shape.h"
#include "worker/rpc/rpc_client.h"
#include "triton.pb-c.h"

#define METHOD "/inference.GRPCInferenceService/ModelStreamInfer"
#define SLICE_MS 200        /* how often a wait checks the client and the timeouts */
#define CLIENT_CHECK_US 20000u /* how often a stream of messages checks the client */
#define DEFAULT_MAX_TOKENS 512
/* Token counts a backend reports are held below this, so that sums of them cannot overflow. */
#define MAX_TOKEN_COUNT (1LL << 40)

static pthread_mutex_t channels_lock = PTHREAD_MUTEX_INITIALIZER;
static const cfg_backend_t *channel_owner[64];
static rpc_channel_t *channels[64];
static int nchannels;
static bool rpc_up;

typedef Inference__ModelInferRequest Req;
typedef Inference__ModelInferRequest__InferInputTensor Tensor;

struct be_call {
    rpc_stream_t *rpc;
    bool finished;          /* the final response (or the stream's end) was seen */
    bool failed;
    const cfg_backend_t *be;
    const cfg_model_t *model;
    unsigned kind;
    bool stream;
    bool want_usage;
    int client_fd;
    uint64_t client_checked_us; /* when the client was last looked at */
    size_t max_event;       /* streams: the largest message taken */
    char *backend_model, *client_model;
    char id[96];
    long created;
    bool role_sent;
    bool answered;          /* the whole answer (non-streaming) was handed out */
    buf_t text;             /* whole answer (non-streaming) */
    buf_t seen;             /* cumulative_output: the text so far */
    char *prompt;           /* strip_prompt: what the model may echo first */
    bool prompt_checked;
    long long max_tokens;
    char finish[24];
    long long prompt_tokens, completion_tokens;
    uint64_t start_us, last_us;
    json_object *queued[3];
    int nqueued;
};

static int triton_worker_init(void)
{
    rpc_client_init(); /* per worker, after fork: never in the master */
    rpc_up = true;
    return 0;
}

static void triton_worker_cleanup(void)
{
    if (!rpc_up)
        return;
    pthread_mutex_lock(&channels_lock);
    for (int i = 0; i < nchannels; i++)
        rpc_client_channel_close(channels[i]);
    nchannels = 0;
    pthread_mutex_unlock(&channels_lock);
    rpc_client_shutdown();
    rpc_up = false;
}

/* The worker's channel to a Triton backend, made on first use. */
static rpc_channel_t *channel_for(const cfg_backend_t *be)
{
    rpc_channel_t *ch = NULL;
    pthread_mutex_lock(&channels_lock);
    for (int i = 0; i < nchannels && !ch; i++)
        if (channel_owner[i] == be)
            ch = channels[i];
    if (!ch && nchannels < 64) {
        /* Triton sets no send limit; the 4 MiB default receive limit is too low for a whole
         * answer, but a backend must not fill the worker's memory. */
        ch = rpc_client_channel_open(be->url, CFG_MAX_ANSWER_BYTES);
        if (ch) {
            channel_owner[nchannels] = be;
            channels[nchannels++] = ch;
        }
    }
    pthread_mutex_unlock(&channels_lock);
    return ch;
}

/* ---- request building ---- */

/* The name a model gives a tensor: the profile's, unless tensor_names overrides it. */
static const char *tensor_name(const cfg_model_t *m, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < m->ntensor_names; i++)
        if (strncmp(m->tensor_names[i], name, n) == 0 && m->tensor_names[i][n] == '=')
            return m->tensor_names[i] + n + 1;
    return name;
}

typedef struct {
    Req req;
    Tensor *tensors[24];
    Tensor tensor_store[24];
    int64_t shapes[24][2];
    ProtobufCBinaryData raw[24];
    buf_t raw_bufs[24];
    Inference__ModelInferRequest__InferRequestedOutputTensor *outs[6];
    Inference__ModelInferRequest__InferRequestedOutputTensor out_store[6];
    Inference__ModelInferRequest__ParametersEntry *params[1];
    Inference__ModelInferRequest__ParametersEntry param_entry;
    Inference__InferParameter param_value;
    bool batch;
} builder_t;

static buf_t *add_input(builder_t *b, const cfg_model_t *m, const char *name, const char *datatype, int64_t n)
{
    size_t i = b->req.n_inputs;
    if (i >= 24)
        return NULL;
    Tensor *t = &b->tensor_store[i];
    *t = (Tensor)INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
    t->name = (char *)tensor_name(m, name);
    t->datatype = (char *)datatype;
    /* TensorRT-LLM ensembles batch ([1, n]); vLLM models do not ([n]). */
    if (b->batch) {
        b->shapes[i][0] = 1;
        b->shapes[i][1] = n;
        t->n_shape = 2;
    } else {
        b->shapes[i][0] = n;
        t->n_shape = 1;
    }
    t->shape = b->shapes[i];
    b->tensors[i] = t;
    b->req.n_inputs++;
    return &b->raw_bufs[i];
}

static void put_u32(buf_t *out, uint32_t v)
{
    unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    buf_append(out, le, 4);
}

/* BYTES elements: a 4-byte little-endian length, then the bytes, per element. */
static void add_bytes(builder_t *b, const cfg_model_t *m, const char *name, const char *const *values, int n)
{
    buf_t *raw = add_input(b, m, name, "BYTES", n);
    for (int i = 0; raw && i < n; i++) {
        put_u32(raw, (uint32_t)strlen(values[i]));
        buf_appends(raw, values[i]);
    }
}

static void add_bool(builder_t *b, const cfg_model_t *m, const char *name, bool v)
{
    buf_t *raw = add_input(b, m, name, "BOOL", 1);
    unsigned char byte = v ? 1 : 0;
    if (raw)
        buf_append(raw, &byte, 1);
}

static void add_i32(builder_t *b, const cfg_model_t *m, const char *name, int32_t v)
{
    buf_t *raw = add_input(b, m, name, "INT32", 1);
    if (raw)
        put_u32(raw, (uint32_t)v);
}

static void add_f32(builder_t *b, const cfg_model_t *m, const char *name, double v)
{
    buf_t *raw = add_input(b, m, name, "FP32", 1);
    float f = (float)v;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if (raw)
        put_u32(raw, bits);
}

static void add_u64(builder_t *b, const cfg_model_t *m, const char *name, uint64_t v)
{
    buf_t *raw = add_input(b, m, name, "UINT64", 1);
    if (raw) {
        put_u32(raw, (uint32_t)v);
        put_u32(raw, (uint32_t)(v >> 32));
    }
}

static void add_output(builder_t *b, const cfg_model_t *m, const char *name)
{
    size_t i = b->req.n_outputs;
    if (i >= 6)
        return;
    b->out_store[i] = (Inference__ModelInferRequest__InferRequestedOutputTensor)
        INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT;
    b->out_store[i].name = (char *)tensor_name(m, name);
    b->outs[i] = &b->out_store[i];
    b->req.n_outputs++;
}

static bool number(json_object *body, const char *key, double *out)
{
    json_object *v;
    if (!json_object_object_get_ex(body, key, &v) ||
        !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return false;
    *out = json_object_get_double(v);
    return true;
}

/* OpenAI "stop" as a list of strings (at most 16). */
/* The strings of body[key], a string or an array of them (at most 16). */
static int stop_list(json_object *body, const char *key, const char **out)
{
    json_object *v;
    int n = 0;
    if (!json_object_object_get_ex(body, key, &v) || !v)
        return 0;
    if (json_object_is_type(v, json_type_string)) {
        out[n++] = json_object_get_string(v);
    } else if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v) && n < 16; i++) {
            json_object *e = json_object_array_get_idx(v, i);
            if (json_object_is_type(e, json_type_string))
                out[n++] = json_object_get_string(e);
        }
    }
    return n;
}

static json_object *string_array(const char *const *strings, int n)
{
    json_object *arr = json_object_new_array();
    for (int i = 0; i < n; i++)
        json_object_array_add(arr, json_object_new_string(strings[i]));
    return arr;
}

/* Fills the profile's tensors from the OpenAI request. Parameters a profile cannot
 * express (n, logprobs, tools, response_format, logit_bias...) are not sent. */
/* Returns the max_tokens sent. */
static long long build_inputs(builder_t *b, const cfg_model_t *m, const char *prompt, json_object *body, bool stream)
{
    double d;
    json_object *v;
    long long max_tokens = m->max_tokens > 0 ? m->max_tokens : DEFAULT_MAX_TOKENS;
    if ((json_object_object_get_ex(body, "max_completion_tokens", &v) || json_object_object_get_ex(body, "max_tokens", &v)) &&
        json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
        max_tokens = json_object_get_int64(v);
    const char *stops[16], *bad[16];
    int nstops = stop_list(body, "stop", stops);
    int nbad = stop_list(body, "bad_words", bad); /* not OpenAI's: an extension both profiles take */
    const char *text[1] = {prompt};
    add_bytes(b, m, "text_input", text, 1);
    if (m->profile == PROFILE_TRTLLM) {
        add_i32(b, m, "max_tokens", (int32_t)max_tokens);
        add_bool(b, m, "stream", stream);
        add_bool(b, m, "exclude_input_in_output", true); /* else the prompt is echoed */
        if (number(body, "temperature", &d))
            add_f32(b, m, "temperature", d);
        if (number(body, "top_p", &d))
            add_f32(b, m, "top_p", d);
        if (number(body, "top_k", &d))
            add_i32(b, m, "top_k", (int32_t)d);
        if (number(body, "presence_penalty", &d))
            add_f32(b, m, "presence_penalty", d);
        if (number(body, "frequency_penalty", &d))
            add_f32(b, m, "frequency_penalty", d);
        if (number(body, "seed", &d) && d >= 0)
            add_u64(b, m, "seed", (uint64_t)d);
        if (nstops > 0)
            add_bytes(b, m, "stop_words", stops, nstops);
        if (nbad > 0)
            add_bytes(b, m, "bad_words", bad, nbad);
        add_output(b, m, "text_output");
        return max_tokens;
    }
    /* vLLM: the sampling parameters travel as one JSON text. */
    json_object *sp = json_object_new_object();
    json_object_object_add(sp, "max_tokens", json_object_new_int64(max_tokens));
    static const char *const pass[] = {"temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty",
                                       "seed", "min_p", "repetition_penalty", NULL};
    for (int i = 0; pass[i]; i++)
        if (json_object_object_get_ex(body, pass[i], &v) &&
            (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
            json_object_object_add(sp, pass[i], json_object_get(v));
    if (nstops > 0)
        json_object_object_add(sp, "stop", string_array(stops, nstops));
    if (nbad > 0)
        json_object_object_add(sp, "bad_words", string_array(bad, nbad));
    const char *sp_text[1] = {json_object_to_json_string_ext(sp, JSON_C_TO_STRING_PLAIN)};
    add_bool(b, m, "stream", stream);
    add_bytes(b, m, "sampling_parameters", sp_text, 1);
    add_bool(b, m, "exclude_input_in_output", true);
    add_bool(b, m, "return_finish_reason", true);
    add_bool(b, m, "return_num_input_tokens", true);
    add_bool(b, m, "return_num_output_tokens", true);
    json_object_put(sp);
    add_output(b, m, "text_output");
    add_output(b, m, "finish_reason");
    add_output(b, m, "num_input_tokens");
    add_output(b, m, "num_output_tokens");
    return max_tokens;
}

/* ---- answer decoding ---- */

static uint32_t get_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* The first BYTES element of a raw output (length-prefixed), appended to out. */
static void first_bytes(const ProtobufCBinaryData *raw, buf_t *out)
{
    if (raw->len < 4)
        return;
    uint32_t n = get_u32(raw->data);
    if (n > raw->len - 4)
        n = (uint32_t)(raw->len - 4);
    buf_append(out, raw->data + 4, n);
}

static long long first_int(const Inference__ModelInferResponse__InferOutputTensor *t, const ProtobufCBinaryData *raw)
{
    if (raw->len >= 8 && (strcmp(t->datatype, "INT64") == 0 || strcmp(t->datatype, "UINT64") == 0))
        return (long long)((uint64_t)get_u32(raw->data) | (uint64_t)get_u32(raw->data + 4) << 32);
    if (raw->len >= 4)
        return (long long)get_u32(raw->data);
    return -1;
}

static json_object *usage_obj(be_call_t *c)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "prompt_tokens", json_object_new_int64(c->prompt_tokens));
    json_object_object_add(u, "completion_tokens", json_object_new_int64(c->completion_tokens));
    json_object_object_add(u, "total_tokens", json_object_new_int64(c->prompt_tokens + c->completion_tokens));
    return u;
}

/* The model's own finish reason, else "length" when the token count reached max_tokens. */
static const char *finish_of(be_call_t *c)
{
    if (c->finish[0])
        return c->finish;
    return c->completion_tokens >= 0 && c->max_tokens > 0 && c->completion_tokens >= c->max_tokens ? "length" : "stop";
}

static json_object *make_chunk(be_call_t *c, const char *text, const char *finish, bool role)
{
    bool chat = c->kind == KIND_CHAT;
    json_object *o = shape_envelope(c->id, chat ? "chat.completion.chunk" : "text_completion", c->created, c->backend_model);
    json_object *choices = json_object_new_array(), *ch = json_object_new_object();
    json_object_object_add(ch, "index", json_object_new_int(0));
    if (chat) {
        json_object *delta = json_object_new_object();
        if (role)
            json_object_object_add(delta, "role", json_object_new_string("assistant"));
        if (text)
            json_object_object_add(delta, "content", json_object_new_string(text));
        json_object_object_add(ch, "delta", delta);
    } else {
        json_object_object_add(ch, "text", json_object_new_string(text ? text : ""));
    }
    json_object_object_add(ch, "logprobs", NULL);
    json_object_object_add(ch, "finish_reason", finish ? json_object_new_string(finish) : NULL);
    json_object_array_add(choices, ch);
    json_object_object_add(o, "choices", choices);
    return o;
}

static json_object *make_completion(be_call_t *c)
{
    bool chat = c->kind == KIND_CHAT;
    json_object *o = shape_envelope(c->id, chat ? "chat.completion" : "text_completion", c->created, c->backend_model);
    json_object *choices = json_object_new_array(), *ch = json_object_new_object();
    json_object_object_add(ch, "index", json_object_new_int(0));
    const char *text = c->text.data ? c->text.data : "";
    if (chat) {
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "role", json_object_new_string("assistant"));
        json_object_object_add(msg, "content", json_object_new_string(text));
        json_object_object_add(ch, "message", msg);
    } else {
        json_object_object_add(ch, "text", json_object_new_string(text));
    }
    json_object_object_add(ch, "logprobs", NULL);
    json_object_object_add(ch, "finish_reason", json_object_new_string(finish_of(c)));
    json_object_array_add(choices, ch);
    json_object_object_add(o, "choices", choices);
    if (c->prompt_tokens >= 0 && c->completion_tokens >= 0)
        json_object_object_add(o, "usage", usage_obj(c));
    return o;
}

/* Turns what a response carried into the new text: cuts an echoed prompt, and with
 * cumulative output keeps only what was not seen before. */
static void new_text(be_call_t *c, buf_t *piece)
{
    if (c->model->strip_prompt && !c->prompt_checked && c->prompt && piece->len) {
        size_t pl = strlen(c->prompt);
        if (piece->len >= pl && memcmp(piece->data, c->prompt, pl) == 0)
            buf_consume(piece, pl);
        c->prompt_checked = true;
    }
    if (!c->model->cumulative_output || !piece->len)
        return;
    if (piece->len >= c->seen.len && memcmp(piece->data, c->seen.data ? c->seen.data : "", c->seen.len) == 0) {
        size_t old = c->seen.len;
        buf_reset(&c->seen);
        buf_append(&c->seen, piece->data, piece->len);
        buf_consume(piece, old);
    } else { /* the model rewrote earlier text: nothing sane to add but the whole */
        buf_reset(&c->seen);
        buf_append(&c->seen, piece->data, piece->len);
    }
}

/* One ModelStreamInferResponse: queue its chunks, or fill ev with a failure. */
static bool handle_response(be_call_t *c, Inference__ModelStreamInferResponse *r, be_event_t *ev)
{
    if (r->error_message && r->error_message[0]) {
        char msg[400];
        be_client_message(msg, sizeof msg, r->error_message, c->be, c->backend_model, c->client_model);
        be_event_error(ev, BE_ERR_HTTP_5XX, 502, "server_error", "backend_error", "The model's backend failed: %s", msg);
        c->failed = true;
        return false;
    }
    Inference__ModelInferResponse *ir = r->infer_response;
    if (!ir)
        return true;
    buf_t piece = {0};
    for (size_t i = 0; i < ir->n_outputs && i < ir->n_raw_output_contents; i++) {
        const Inference__ModelInferResponse__InferOutputTensor *t = ir->outputs[i];
        const ProtobufCBinaryData *raw = &ir->raw_output_contents[i];
        if (strcmp(t->name, tensor_name(c->model, "text_output")) == 0) {
            first_bytes(raw, &piece);
        } else if (strcmp(t->name, tensor_name(c->model, "finish_reason")) == 0) {
            buf_t f = {0};
            first_bytes(raw, &f);
            /* vLLM says "None" until the sequence ends; "abort" maps to stop */
            if (f.data && (strcmp(f.data, "length") == 0 || strcmp(f.data, "stop") == 0))
                snprintf(c->finish, sizeof c->finish, "%s", f.data);
            buf_free(&f);
        } else if (strcmp(t->name, tensor_name(c->model, "num_input_tokens")) == 0) {
            long long v = first_int(t, raw);
            if (v >= 0)
                c->prompt_tokens = v < MAX_TOKEN_COUNT ? v : MAX_TOKEN_COUNT;
        } else if (strcmp(t->name, tensor_name(c->model, "num_output_tokens")) == 0) {
            long long v = first_int(t, raw); /* per response: a delta */
            if (v >= 0) {
                long long sum = (c->completion_tokens < 0 ? 0 : c->completion_tokens) + (v < MAX_TOKEN_COUNT ? v : MAX_TOKEN_COUNT);
                c->completion_tokens = sum < MAX_TOKEN_COUNT ? sum : MAX_TOKEN_COUNT;
            }
        }
    }
    new_text(c, &piece);
    bool final = false;
    for (size_t i = 0; i < ir->n_parameters; i++)
        if (strcmp(ir->parameters[i]->key, "triton_final_response") == 0 && ir->parameters[i]->value &&
            ir->parameters[i]->value->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM)
            final = ir->parameters[i]->value->bool_param;
    if (c->stream) {
        /* Empty steps (a special token decoded to nothing) are not relayed. */
        if (piece.len || !c->role_sent) {
            c->queued[c->nqueued++] = make_chunk(c, piece.data ? piece.data : "", NULL, !c->role_sent);
            c->role_sent = true;
        }
        if (final) {
            c->queued[c->nqueued++] = make_chunk(c, c->kind == KIND_CHAT ? NULL : "", finish_of(c), false);
            if (c->want_usage && c->prompt_tokens >= 0 && c->completion_tokens >= 0) {
                const char *object = c->kind == KIND_CHAT ? "chat.completion.chunk" : "text_completion";
                json_object *u = shape_envelope(c->id, object, c->created, c->backend_model);
                json_object_object_add(u, "choices", json_object_new_array());
                json_object_object_add(u, "usage", usage_obj(c));
                c->queued[c->nqueued++] = u;
            }
        }
    } else if (piece.len) {
        if (c->model->cumulative_output) /* the last response holds the whole text */
            buf_reset(&c->text);
        if (c->text.len + piece.len > CFG_MAX_ANSWER_BYTES) {
            buf_free(&piece);
            c->failed = true;
            be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                           "The model's backend sent an answer that is too large.");
            return false;
        }
        buf_append(&c->text, c->model->cumulative_output ? c->seen.data : piece.data,
                   c->model->cumulative_output ? c->seen.len : piece.len);
    }
    buf_free(&piece);
    if (final)
        c->finished = true;
    return true;
}

/* ---- backend interface ---- */

static void call_free(be_call_t *c)
{
    if (!c)
        return;
    if (c->rpc && !c->finished)
        rpc_client_stream_cancel(c->rpc); /* the client left or the call failed: stop Triton's work */
    rpc_client_stream_free(c->rpc);
    for (int i = 0; i < c->nqueued; i++)
        json_object_put(c->queued[i]);
    buf_free(&c->text);
    buf_free(&c->seen);
    free(c->prompt);
    free(c->backend_model);
    free(c->client_model);
    free(c);
}


static be_call_t *triton_open(const be_request_t *req, be_event_t *ev)
{
    if (be_refuse_many_choices(req, ev, "Triton"))
        return NULL;
    const cfg_model_t *m = req->model;
    if (!m || m->profile == PROFILE_NONE) {
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "The model has no Triton profile.");
        return NULL;
    }
    buf_t prompt = {0};
    json_object *v;
    if (req->kind == KIND_CHAT) {
        json_object *messages = NULL;
        json_object_object_get_ex(req->body, "messages", &messages);
        if (prompt_render(m->prompt_format, messages, &prompt) < 0) {
            be_event_error(ev, BE_ERR_INTERNAL, 400, "invalid_request_error", NULL, "'messages' must be an array.");
            return NULL;
        }
    } else if (req->kind == KIND_COMPLETIONS && json_object_object_get_ex(req->body, "prompt", &v)) {
        if (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0)
            v = json_object_array_get_idx(v, 0);
        if (!json_object_is_type(v, json_type_string)) {
            be_event_error(ev, BE_ERR_INTERNAL, 400, "invalid_request_error", "invalid_value",
                           "Triton models take the prompt as text.");
            return NULL;
        }
        buf_appends(&prompt, json_object_get_string(v));
    } else if (req->kind == KIND_COMPLETIONS) {
        be_event_error(ev, BE_ERR_INTERNAL, 400, "invalid_request_error", "missing_required_parameter",
                       "The request has no prompt.");
        return NULL;
    } else { /* the config lets no other kind reach a Triton model */
        be_event_error(ev, BE_ERR_INTERNAL, 400, "invalid_request_error", "unsupported_kind",
                       "Triton models serve chat and completions only.");
        return NULL;
    }

    be_call_t *c = calloc(1, sizeof *c);
    if (!c) {
        buf_free(&prompt);
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter is out of memory.");
        return NULL;
    }
    c->be = req->backend;
    c->model = m;
    c->kind = req->kind;
    c->stream = req->stream;
    c->want_usage = req->want_usage;
    c->client_fd = req->client_fd;
    c->max_event = req->max_event_bytes ? req->max_event_bytes : CFG_DEFAULT_MAX_EVENT_BYTES;
    c->backend_model = strdup(req->backend_model);
    c->client_model = strdup(req->client_model ? req->client_model : req->backend_model);
    c->created = (long)time(NULL);
    c->prompt_tokens = c->completion_tokens = -1;
    c->prompt = m->strip_prompt && prompt.data ? strdup(prompt.data) : NULL;
    snprintf(c->id, sizeof c->id, "%s-%s", req->kind == KIND_CHAT ? "chatcmpl" : "cmpl", req->request_id);

    builder_t *b = calloc(1, sizeof *b);
    if (!b) {
        buf_free(&prompt);
        call_free(c);
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter is out of memory.");
        return NULL;
    }
    b->req = (Req)INFERENCE__MODEL_INFER_REQUEST__INIT;
    b->batch = m->batch_dim >= 0 ? m->batch_dim : m->profile == PROFILE_TRTLLM;
    b->req.model_name = c->backend_model;
    b->req.id = (char *)req->request_id;
    /* Always ask for the flag-only final response, so the end of every request is seen. */
    b->param_value = (Inference__InferParameter)INFERENCE__INFER_PARAMETER__INIT;
    b->param_value.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM;
    b->param_value.bool_param = 1;
    b->param_entry = (Inference__ModelInferRequest__ParametersEntry)INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT;
    b->param_entry.key = (char *)"triton_enable_empty_final_response";
    b->param_entry.value = &b->param_value;
    b->params[0] = &b->param_entry;
    b->req.n_parameters = 1;
    b->req.parameters = b->params;
    c->max_tokens = build_inputs(b, m, prompt.data ? prompt.data : "", req->body, req->stream);
    b->req.inputs = b->tensors;
    b->req.outputs = b->outs;
    for (size_t i = 0; i < b->req.n_inputs; i++) {
        b->raw[i].data = (uint8_t *)(b->raw_bufs[i].data ? b->raw_bufs[i].data : "");
        b->raw[i].len = b->raw_bufs[i].len;
    }
    b->req.n_raw_input_contents = b->req.n_inputs;
    b->req.raw_input_contents = b->raw;
    size_t len = inference__model_infer_request__get_packed_size(&b->req);
    uint8_t *payload = malloc(len ? len : 1);
    if (payload)
        inference__model_infer_request__pack(&b->req, payload);
    for (size_t i = 0; i < 24; i++)
        buf_free(&b->raw_bufs[i]);
    free(b);
    buf_free(&prompt);
    if (!payload) {
        call_free(c);
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter is out of memory.");
        return NULL;
    }

    rpc_metadata_t md[1];
    size_t nmd = 0;
    if (req->traceparent && req->traceparent[0]) /* W3C trace context as gRPC metadata */
        md[nmd++] = (rpc_metadata_t){.key = "traceparent", .value = req->traceparent};
    c->rpc = rpc_client_stream_start(channel_for(c->be), METHOD, md, nmd, (int64_t)(c->be->timeout * 1000));
    if (!c->rpc) {
        free(payload);
        call_free(c);
        be_event_error(ev, BE_ERR_CONNECT, 502, "server_error", "backend_unavailable", "The model's backend is unavailable.");
        return NULL;
    }
    int sent = rpc_client_stream_send(c->rpc, payload, len, true);
    free(payload);
    if (sent < 0) {
        call_free(c);
        be_event_error(ev, BE_ERR_INTERNAL, 500, "server_error", NULL, "airouter could not start the Triton call.");
        return NULL;
    }
    c->start_us = c->last_us = clock_now_us();
    return c;
}

/* The stream ended without a final response: the call's status says why. */
static void stream_ended(be_call_t *c, be_event_t *ev)
{
    const char *message;
    rpc_status_t status = rpc_client_stream_finish(c->rpc, &message);
    char detail[300];
    be_client_message(detail, sizeof detail, message, c->be, c->backend_model, c->client_model);
    log_warn("backend '%s': Triton call ended with status %d: %s", c->be->name, (int)status, detail);
    c->failed = true;
    if (status == RPC_STATUS_RESOURCE_EXHAUSTED && strcasestr(detail, "larger than max")) {
        /* grpc's own words for a message over the channel's receive limit */
        be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                       "The model's backend sent an answer that is too large.");
        return;
    }
    switch (status) {
    case RPC_STATUS_OK:
        be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                       "The model's backend ended the stream before its final response.");
        break;
    case RPC_STATUS_UNAVAILABLE:
        be_event_error(ev, BE_ERR_CONNECT, 502, "server_error", "backend_unavailable", "The model's backend is unavailable.");
        break;
    case RPC_STATUS_DEADLINE_EXCEEDED:
        be_event_error(ev, BE_ERR_TIMEOUT, 504, "server_error", "backend_timeout", "The model's backend did not answer in time.");
        break;
    case RPC_STATUS_INVALID_ARGUMENT:
    case RPC_STATUS_NOT_FOUND:
        be_event_error(ev, BE_ERR_HTTP_5XX, 502, "server_error", "backend_error",
                       "The model's backend rejected the request: %s", detail);
        break;
    default:
        be_event_error(ev, BE_ERR_HTTP_5XX, 502, "server_error", "backend_error", "The model's backend failed: %s", detail);
    }
}

static void triton_next(be_call_t *c, be_event_t *ev, int wait_ms)
{
    memset(ev, 0, sizeof *ev);
    uint64_t wait_end = clock_now_us() + (uint64_t)wait_ms * 1000u;
    for (;;) {
        if (c->nqueued > 0) {
            ev->type = BE_EV_CHUNK;
            ev->obj = c->queued[0];
            memmove(c->queued, c->queued + 1, (size_t)(--c->nqueued) * sizeof c->queued[0]);
            return;
        }
        if (c->failed) {
            be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error", "The model's backend failed.");
            return;
        }
        if (c->finished) {
            if (!c->stream && !c->answered) {
                c->answered = true;
                ev->type = BE_EV_RESPONSE;
                ev->obj = make_completion(c);
                return;
            }
            ev->type = BE_EV_END;
            return;
        }
        uint64_t now = clock_now_us();
        uint64_t limit = c->role_sent || c->text.len ? c->last_us + (uint64_t)(c->be->idle_timeout * 1e6)
                                                     : c->start_us + (uint64_t)(c->be->first_byte_timeout * 1e6);
        if (now >= limit) {
            c->failed = true;
            be_event_error(ev, BE_ERR_TIMEOUT, 504, "server_error", "backend_timeout", "The model's backend did not answer in time.");
            return;
        }
        if (now >= wait_end) {
            ev->type = BE_EV_PENDING;
            return;
        }
        uint64_t until = limit < wait_end ? limit : wait_end;
        int slice = (int)((until - now) / 1000u) + 1;
        if (slice > SLICE_MS)
            slice = SLICE_MS;
        const void *data;
        size_t len;
        /* a stream's messages are events; a whole answer may take up to the channel's limit */
        rpc_recv_t got = rpc_client_stream_recv(c->rpc, slice, c->stream ? c->max_event : SIZE_MAX, &data, &len);
        if (got == RPC_RECV_TIMEOUT) {
            if (be_client_gone(c->client_fd)) {
                be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "client disconnected");
                return;
            }
            continue;
        }
        if (got == RPC_RECV_END) {
            stream_ended(c, ev);
            return;
        }
        c->last_us = clock_now_us();
        if (got == RPC_RECV_TOO_LARGE) {
            c->failed = true;
            log_warn("backend '%s': a stream message passed limits.max_event_bytes (%zu)", c->be->name, c->max_event);
            be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                           "The model's backend sent a stream event larger than %zu bytes.", c->max_event);
            return;
        }
        Inference__ModelStreamInferResponse *r =
            got == RPC_RECV_MESSAGE ? inference__model_stream_infer_response__unpack(NULL, len, data) : NULL;
        if (!r) {
            c->failed = true;
            be_event_error(ev, BE_ERR_PROTOCOL, 502, "server_error", "backend_error",
                           "The model's backend sent a message that is not a ModelStreamInferResponse.");
            return;
        }
        bool ok = handle_response(c, r, ev);
        inference__model_stream_infer_response__free_unpacked(r, NULL);
        if (!ok)
            return;
        /* Messages that keep coming skip the wait that watches the client: look now and then. */
        if (c->last_us - c->client_checked_us >= CLIENT_CHECK_US) {
            c->client_checked_us = c->last_us;
            if (be_client_gone(c->client_fd)) {
                be_event_error(ev, BE_ERR_CLIENT_GONE, 499, "client_gone", NULL, "client disconnected");
                return;
            }
        }
    }
}

static void triton_close(be_call_t *c) { call_free(c); }

/* One unary call (ServerReady / ModelReady); returns the reply's "ready" or false. */
static bool unary_ready(rpc_channel_t *ch, const char *method, const ProtobufCMessage *msg, int timeout_ms, char *why,
                        size_t whylen)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *request = malloc(len ? len : 1);
    if (!request) {
        snprintf(why, whylen, "cannot start the call");
        return false;
    }
    protobuf_c_message_pack(msg, request);
    buf_t reply = {0}, message = {0};
    int status = rpc_client_unary(ch, method, request, len, NULL, 0, timeout_ms, &reply, &message);
    free(request);
    bool ready = false;
    if (status == RPC_STATUS_OK) {
        /* ServerReadyResponse and ModelReadyResponse are both { bool ready = 1; } */
        Inference__ServerReadyResponse *r =
            inference__server_ready_response__unpack(NULL, reply.len, (const uint8_t *)(reply.data ? reply.data : ""));
        ready = r && r->ready;
        if (r)
            inference__server_ready_response__free_unpacked(r, NULL);
        if (!ready)
            snprintf(why, whylen, "not ready");
    } else if (status >= 0) {
        snprintf(why, whylen, "status %d: %s", status, message.data ? message.data : "");
    } else {
        snprintf(why, whylen, "cannot start the call");
    }
    buf_free(&reply);
    buf_free(&message);
    return ready;
}

/* ServerReady, then ModelReady for model (if given). */
static int triton_probe(const cfg_backend_t *be, const char *model, int timeout_ms, char *why, size_t whylen)
{
    rpc_channel_t *ch = channel_for(be);
    if (!ch) {
        snprintf(why, whylen, "no channel");
        return -1;
    }
    Inference__ServerReadyRequest sr = INFERENCE__SERVER_READY_REQUEST__INIT;
    if (!unary_ready(ch, "/inference.GRPCInferenceService/ServerReady", &sr.base, timeout_ms, why, whylen))
        return -1;
    if (model && model[0]) {
        Inference__ModelReadyRequest mr = INFERENCE__MODEL_READY_REQUEST__INIT;
        mr.name = (char *)model;
        char inner[200] = "";
        if (!unary_ready(ch, "/inference.GRPCInferenceService/ModelReady", &mr.base, timeout_ms, inner, sizeof inner)) {
            snprintf(why, whylen, "model '%s' %s", model, inner);
            return -1;
        }
    }
    return 0;
}

const backend_ops_t be_triton_ops = {
    .type = {"triton", KIND_CHAT | KIND_COMPLETIONS | KIND_MESSAGES, CFG_URL_GRPC},
    .worker_init = triton_worker_init,
    .worker_cleanup = triton_worker_cleanup,
    .open = triton_open,
    .next = triton_next,
    .close = triton_close,
    .probe = triton_probe,
};
