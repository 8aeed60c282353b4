/* The gRPC client transport: grpc core channels, and calls each on their own completion queue
 * that only the calling thread plucks, so a call needs no thread of its own. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "worker/rpc/rpc_client.h"

_Static_assert(RPC_STATUS_OK == (int)GRPC_STATUS_OK && RPC_STATUS_DEADLINE_EXCEEDED == (int)GRPC_STATUS_DEADLINE_EXCEEDED &&
                   RPC_STATUS_RESOURCE_EXHAUSTED == (int)GRPC_STATUS_RESOURCE_EXHAUSTED &&
                   RPC_STATUS_UNAVAILABLE == (int)GRPC_STATUS_UNAVAILABLE &&
                   RPC_STATUS_UNAUTHENTICATED == (int)GRPC_STATUS_UNAUTHENTICATED,
               "rpc_status_t follows the gRPC protocol's numbers");

struct rpc_channel {
    grpc_channel *ch;
};

struct rpc_stream {
    grpc_call *call;
    grpc_completion_queue *cq;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice status_details;
    char *status_message;
    grpc_byte_buffer *recv;
    grpc_slice message;   /* the message last handed out */
    grpc_metadata *md;    /* the initial metadata, until the first message takes it along */
    size_t nmd;
    bool sent;            /* the first message has been sent */
    bool broken;          /* a send could not be started */
    bool send_pending;    /* each batch's completion not collected yet */
    bool recv_pending;
    bool status_pending;
};

/* A call's batches, told apart on its own queue. */
static char tag_unary, tag_send, tag_recv, tag_status;

void rpc_client_init(void) { grpc_init(); }

void rpc_client_shutdown(void) { grpc_shutdown(); }

static gpr_timespec after_ms(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static gpr_timespec forever(void) { return gpr_inf_future(GPR_CLOCK_REALTIME); }

rpc_channel_t *rpc_client_channel_open(const char *target, size_t max_receive_bytes)
{
    rpc_channel_t *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = max_receive_bytes < INT_MAX ? (int)max_receive_bytes : INT_MAX},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = -1},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 200},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 2000},
    };
    grpc_channel_args cargs = {.num_args = sizeof args / sizeof args[0], .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    ch->ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (!ch->ch) {
        free(ch);
        return NULL;
    }
    return ch;
}

void rpc_client_channel_close(rpc_channel_t *ch)
{
    if (!ch)
        return;
    grpc_channel_destroy(ch->ch);
    free(ch);
}

/* A call to method on ch whose completions go to cq; NULL if grpc makes none. */
static grpc_call *call_create(rpc_channel_t *ch, grpc_completion_queue *cq, const char *method, int64_t timeout_ms)
{
    grpc_slice path = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path, NULL,
                                               after_ms(timeout_ms), NULL);
    grpc_slice_unref(path);
    return call;
}

/* md as grpc takes it (NULL for none); its slices are released by md_free once the batch that
 * sends them has started. */
static grpc_metadata *md_make(const rpc_metadata_t *md, size_t nmd)
{
    grpc_metadata *g = nmd ? calloc(nmd, sizeof *g) : NULL;
    for (size_t i = 0; g && i < nmd; i++) {
        g[i].key = grpc_slice_from_copied_string(md[i].key);
        g[i].value = grpc_slice_from_copied_string(md[i].value);
    }
    return g;
}

static void md_free(grpc_metadata *g, size_t nmd)
{
    for (size_t i = 0; g && i < nmd; i++) {
        grpc_slice_unref(g[i].key);
        grpc_slice_unref(g[i].value);
    }
    free(g);
}

static grpc_byte_buffer *byte_buffer_of(const void *data, size_t len)
{
    grpc_slice payload = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_slice_unref(payload);
    return bb;
}

/* The bytes of bb as one slice; false if they cannot be read out (a compressed message that
 * does not decompress). */
static bool read_all(grpc_byte_buffer *bb, grpc_slice *out)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return false;
    *out = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    return true;
}

/* Shuts cq down and destroys it once every completion left in it has been taken. */
static void queue_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, forever(), NULL).type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

int rpc_client_unary(rpc_channel_t *ch, const char *method, const void *request, size_t len,
                     const rpc_metadata_t *md, size_t nmd, int timeout_ms, buf_t *reply, buf_t *message)
{
    if (!ch)
        return -1;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call *call = call_create(ch, cq, method, timeout_ms);
    grpc_byte_buffer *bb = byte_buffer_of(request, len), *got = NULL;
    grpc_metadata *gmd = md_make(md, nmd);
    grpc_metadata_array imd, tmd;
    grpc_metadata_array_init(&imd);
    grpc_metadata_array_init(&tmd);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6] = {{.op = GRPC_OP_SEND_INITIAL_METADATA}, {.op = GRPC_OP_SEND_MESSAGE},
                      {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT}, {.op = GRPC_OP_RECV_INITIAL_METADATA},
                      {.op = GRPC_OP_RECV_MESSAGE},           {.op = GRPC_OP_RECV_STATUS_ON_CLIENT}};
    ops[0].data.send_initial_metadata.count = gmd ? nmd : 0;
    ops[0].data.send_initial_metadata.metadata = gmd;
    ops[1].data.send_message.send_message = bb;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
    ops[4].data.recv_message.recv_message = &got;
    ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    int rc = -1;
    if (call && grpc_call_start_batch(call, ops, 6, &tag_unary, NULL) == GRPC_CALL_OK) {
        /* the call's deadline ends the wait */
        grpc_completion_queue_pluck(cq, &tag_unary, forever(), NULL);
        rc = (int)status;
        grpc_slice all;
        if (reply && got && read_all(got, &all)) {
            buf_append(reply, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
            grpc_slice_unref(all);
        }
        if (message)
            buf_append(message, GRPC_SLICE_START_PTR(details), GRPC_SLICE_LENGTH(details));
    }
    if (call)
        grpc_call_unref(call);
    md_free(gmd, nmd);
    grpc_byte_buffer_destroy(bb);
    if (got)
        grpc_byte_buffer_destroy(got);
    grpc_metadata_array_destroy(&imd);
    grpc_metadata_array_destroy(&tmd);
    grpc_slice_unref(details);
    queue_destroy(cq);
    return rc;
}

rpc_stream_t *rpc_client_stream_start(rpc_channel_t *ch, const char *method, const rpc_metadata_t *md, size_t nmd,
                                      int64_t timeout_ms)
{
    rpc_stream_t *s = ch ? calloc(1, sizeof *s) : NULL;
    if (!s)
        return NULL;
    s->cq = grpc_completion_queue_create_for_pluck(NULL);
    s->call = call_create(ch, s->cq, method, timeout_ms);
    s->status_details = grpc_empty_slice();
    s->message = grpc_empty_slice();
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    if (!s->call) {
        rpc_client_stream_free(s);
        return NULL;
    }
    s->md = md_make(md, nmd);
    s->nmd = s->md ? nmd : 0;
    return s;
}

static void pluck(rpc_stream_t *s, void *tag, gpr_timespec deadline, bool *pending)
{
    if (*pending && grpc_completion_queue_pluck(s->cq, tag, deadline, NULL).type == GRPC_OP_COMPLETE)
        *pending = false;
}

/* The first send carries the initial metadata and asks for the server's, all in one batch, then
 * asks for the call's status, as a unary call would. */
int rpc_client_stream_send(rpc_stream_t *s, const void *data, size_t len, bool last)
{
    if (s->broken)
        return -1;
    pluck(s, &tag_send, forever(), &s->send_pending); /* one message in flight at a time */
    grpc_byte_buffer *bb = byte_buffer_of(data, len);
    grpc_op ops[4];
    size_t n = 0;
    if (!s->sent) {
        ops[n] = (grpc_op){.op = GRPC_OP_SEND_INITIAL_METADATA};
        ops[n].data.send_initial_metadata.count = s->nmd;
        ops[n++].data.send_initial_metadata.metadata = s->md;
    }
    ops[n] = (grpc_op){.op = GRPC_OP_SEND_MESSAGE};
    ops[n++].data.send_message.send_message = bb;
    if (last)
        ops[n++] = (grpc_op){.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT};
    if (!s->sent) {
        ops[n] = (grpc_op){.op = GRPC_OP_RECV_INITIAL_METADATA};
        ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    }
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, &tag_send, NULL);
    grpc_byte_buffer_destroy(bb); /* the batch holds its own reference */
    s->send_pending = e == GRPC_CALL_OK;
    if (!s->sent && e == GRPC_CALL_OK) {
        grpc_op st = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
        st.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
        st.data.recv_status_on_client.status = &s->status;
        st.data.recv_status_on_client.status_details = &s->status_details;
        e = grpc_call_start_batch(s->call, &st, 1, &tag_status, NULL);
        s->status_pending = e == GRPC_CALL_OK;
    }
    if (!s->sent) {
        md_free(s->md, s->nmd);
        s->md = NULL;
        s->sent = true;
    }
    s->broken = e != GRPC_CALL_OK;
    return s->broken ? -1 : 0;
}

rpc_recv_t rpc_client_stream_recv(rpc_stream_t *s, int timeout_ms, size_t max_len, const void **data, size_t *len)
{
    grpc_slice_unref(s->message);
    s->message = grpc_empty_slice();
    if (!s->recv_pending) {
        grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
        op.data.recv_message.recv_message = &s->recv;
        if (grpc_call_start_batch(s->call, &op, 1, &tag_recv, NULL) != GRPC_CALL_OK)
            return RPC_RECV_END;
        s->recv_pending = true;
    }
    if (grpc_completion_queue_pluck(s->cq, &tag_recv, after_ms(timeout_ms), NULL).type == GRPC_QUEUE_TIMEOUT)
        return RPC_RECV_TIMEOUT;
    s->recv_pending = false;
    if (!s->recv)
        return RPC_RECV_END;
    grpc_byte_buffer *bb = s->recv;
    s->recv = NULL;
    rpc_recv_t got = RPC_RECV_MESSAGE;
    if (grpc_byte_buffer_length(bb) > max_len)
        got = RPC_RECV_TOO_LARGE;
    else if (!read_all(bb, &s->message))
        got = RPC_RECV_UNREADABLE;
    grpc_byte_buffer_destroy(bb);
    *data = GRPC_SLICE_START_PTR(s->message);
    *len = GRPC_SLICE_LENGTH(s->message);
    return got;
}

void rpc_client_stream_cancel(rpc_stream_t *s) { grpc_call_cancel(s->call, NULL); }

rpc_status_t rpc_client_stream_finish(rpc_stream_t *s, const char **message)
{
    pluck(s, &tag_status, forever(), &s->status_pending);
    if (!s->status_message)
        s->status_message = strndup((const char *)GRPC_SLICE_START_PTR(s->status_details),
                                    GRPC_SLICE_LENGTH(s->status_details));
    *message = s->status_message ? s->status_message : "";
    return (rpc_status_t)s->status;
}

/* Collects the completion of every batch started on the call: each holds a reference to the
 * call until it is plucked, so one left in the queue keeps the call and its arena (about 20 KB)
 * alive for ever. The status of a finished call is normally there already; one that is not
 * within a second is cut short by a cancel. */
static void collect_batches(rpc_stream_t *s)
{
    pluck(s, &tag_status, after_ms(1000), &s->status_pending);
    if (s->status_pending)
        grpc_call_cancel(s->call, NULL);
    pluck(s, &tag_status, forever(), &s->status_pending);
    pluck(s, &tag_send, forever(), &s->send_pending);
    pluck(s, &tag_recv, forever(), &s->recv_pending);
}

void rpc_client_stream_free(rpc_stream_t *s)
{
    if (!s)
        return;
    if (s->call) {
        if (s->recv_pending)
            grpc_call_cancel(s->call, NULL);
        collect_batches(s);
        grpc_call_unref(s->call);
    }
    queue_destroy(s->cq);
    if (s->recv)
        grpc_byte_buffer_destroy(s->recv);
    grpc_slice_unref(s->message);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->status_details);
    md_free(s->md, s->nmd);
    free(s->status_message);
    free(s);
}
