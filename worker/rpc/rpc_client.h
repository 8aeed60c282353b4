/* A gRPC client transport over grpc core, for the backends that speak gRPC: channels, unary
 * calls and streaming calls, with bytes in and bytes out (the caller packs and unpacks its own
 * messages). Every type is opaque, so no grpc header reaches the caller. */
#ifndef AIROUTER_RPC_CLIENT_H
#define AIROUTER_RPC_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

typedef struct rpc_channel rpc_channel_t;
typedef struct rpc_stream rpc_stream_t;

/* The status codes of the gRPC protocol, with its numbers (they may be logged as numbers). */
typedef enum {
    RPC_STATUS_OK = 0,
    RPC_STATUS_CANCELLED = 1,
    RPC_STATUS_UNKNOWN = 2,
    RPC_STATUS_INVALID_ARGUMENT = 3,
    RPC_STATUS_DEADLINE_EXCEEDED = 4,
    RPC_STATUS_NOT_FOUND = 5,
    RPC_STATUS_ALREADY_EXISTS = 6,
    RPC_STATUS_PERMISSION_DENIED = 7,
    RPC_STATUS_RESOURCE_EXHAUSTED = 8,
    RPC_STATUS_FAILED_PRECONDITION = 9,
    RPC_STATUS_ABORTED = 10,
    RPC_STATUS_OUT_OF_RANGE = 11,
    RPC_STATUS_UNIMPLEMENTED = 12,
    RPC_STATUS_INTERNAL = 13,
    RPC_STATUS_UNAVAILABLE = 14,
    RPC_STATUS_DATA_LOSS = 15,
    RPC_STATUS_UNAUTHENTICATED = 16,
} rpc_status_t;

/* One metadata entry sent with a call; the key in lower case. */
typedef struct {
    const char *key;
    const char *value;
} rpc_metadata_t;

/* What rpc_client_stream_recv found. */
typedef enum {
    RPC_RECV_MESSAGE,   /* a message: *data and *len hold it */
    RPC_RECV_TIMEOUT,   /* none yet: the receive stays outstanding, ask again */
    RPC_RECV_END,       /* no more messages: rpc_client_stream_finish says why */
    RPC_RECV_TOO_LARGE, /* a message longer than max_len, dropped unread */
    RPC_RECV_UNREADABLE /* a message whose bytes could not be read out */
} rpc_recv_t;

/* grpc core's lifetime in a process: once per worker after fork, never in the master. Counted,
 * so the gRPC server and the backends may each take and release it. */
void rpc_client_init(void);
void rpc_client_shutdown(void);

/* An insecure channel to target ("host:port"), connecting lazily and reconnecting after
 * 200 ms, backing off to 2 s. Messages received may be up to max_receive_bytes; sent ones
 * have no limit. Returns NULL when grpc refuses the target. Safe to share between threads. */
rpc_channel_t *rpc_client_channel_open(const char *target, size_t max_receive_bytes);
/* Closes the channel (NULL: nothing). */
void rpc_client_channel_close(rpc_channel_t *ch);

/* One unary call to method ("/package.Service/Method") carrying request (len bytes) and md
 * (nmd entries), ended by the server or by timeout_ms. Returns the call's status code, with
 * the reply message's bytes appended to reply (nothing when none came) and the status message
 * to message (either may be NULL); -1 when the call could not be started. */
int rpc_client_unary(rpc_channel_t *ch, const char *method, const void *request, size_t len,
                     const rpc_metadata_t *md, size_t nmd, int timeout_ms, buf_t *reply, buf_t *message);

/* Makes a streaming call to method with md (nmd entries, copied) as its initial metadata,
 * which leaves with the first message; the call ends at the latest timeout_ms from now.
 * Returns NULL when no call could be made on ch (NULL included). A stream is used by one
 * thread at a time, and sends before it receives. */
rpc_stream_t *rpc_client_stream_start(rpc_channel_t *ch, const char *method, const rpc_metadata_t *md, size_t nmd,
                                      int64_t timeout_ms);
/* Sends one message (copied), and with last closes the sending side. Returns 0, or -1 when
 * the send could not be started (the stream is then of no use; free it). A send waits for
 * the one before it to leave. */
int rpc_client_stream_send(rpc_stream_t *s, const void *data, size_t len, bool last);
/* Waits up to timeout_ms for the next message; see rpc_recv_t. A message is valid until the
 * next call on s. */
rpc_recv_t rpc_client_stream_recv(rpc_stream_t *s, int timeout_ms, size_t max_len, const void **data, size_t *len);
/* Asks the server to stop the call; what is outstanding ends soon after. */
void rpc_client_stream_cancel(rpc_stream_t *s);
/* Waits for the call's end and returns its status code, with *message its status message
 * (NUL-terminated, valid until the stream is freed). */
rpc_status_t rpc_client_stream_finish(rpc_stream_t *s, const char **message);
/* Frees the stream (NULL: nothing). A receive still outstanding cancels the call first, since
 * nobody will read what comes; a call whose status has not come within a second is cancelled. */
void rpc_client_stream_free(rpc_stream_t *s);

#endif
