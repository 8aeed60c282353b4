/* worker/rpc/rpc_client.c: how calls end when the server is not there, stays silent, or the
 * caller gives up. Each test runs in a child (grpc core starts threads the runner must not
 * fork with) that exits with the number of the first step that failed; an alarm turns a hang
 * into a failure. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "worker/rpc/rpc_client.h"

#define METHOD "/test.Service/Method"

static const rpc_metadata_t md[] = {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}};

/* A listening socket on 127.0.0.1 that never accepts (the kernel completes connections, no
 * HTTP/2 comes back); with close_it, a port nobody listens on. Returns the port. */
static int local_port(bool close_it, int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
        _exit(99);
    if (close_it)
        close(fd);
    else
        *fd_out = fd;
    return ntohs(a.sin_port);
}

static rpc_channel_t *channel_to(int port)
{
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_channel_t *ch = rpc_client_channel_open(target, 1 << 20);
    if (!ch)
        _exit(98);
    return ch;
}

/* Receives until the stream ends, in slices of 100 ms, for at most 5 s; true if it ended. */
static bool recv_until_end(rpc_stream_t *s)
{
    const void *data;
    size_t len;
    for (int i = 0; i < 50; i++) {
        rpc_recv_t got = rpc_client_stream_recv(s, 100, 1024, &data, &len);
        if (got == RPC_RECV_END)
            return true;
        if (got != RPC_RECV_TIMEOUT)
            return false;
    }
    return false;
}

static void closed_port(void)
{
    alarm(20);
    rpc_client_init();
    rpc_channel_t *ch = channel_to(local_port(true, NULL));
    buf_t reply = {0}, message = {0};
    if (rpc_client_unary(ch, METHOD, "x", 1, md, 1, 2000, &reply, &message) != RPC_STATUS_UNAVAILABLE)
        _exit(1);
    rpc_stream_t *s = rpc_client_stream_start(ch, METHOD, md, 1, 2000);
    if (!s)
        _exit(2);
    if (rpc_client_stream_send(s, "hello", 5, true) != 0)
        _exit(3);
    if (!recv_until_end(s))
        _exit(4);
    const char *why = NULL;
    if (rpc_client_stream_finish(s, &why) != RPC_STATUS_UNAVAILABLE || !why)
        _exit(5);
    rpc_client_stream_free(s);
    rpc_client_channel_close(ch);
    buf_free(&reply);
    buf_free(&message);
    rpc_client_shutdown();
    _exit(0);
}

TEST(rpc_client_closed_port_is_unavailable)
{
    int rc = unit_run_child(closed_port);
    CHECK_MSG(rc == 0, "a closed port: unary and stream end UNAVAILABLE: failed at step %d", rc);
}

static void silent_server(void)
{
    alarm(20);
    rpc_client_init();
    int fd;
    rpc_channel_t *ch = channel_to(local_port(false, &fd));
    rpc_stream_t *s = rpc_client_stream_start(ch, METHOD, md, 1, 300);
    if (!s || rpc_client_stream_send(s, "hello", 5, true) != 0)
        _exit(1);
    const void *data;
    size_t len;
    if (rpc_client_stream_recv(s, 20, 1024, &data, &len) != RPC_RECV_TIMEOUT)
        _exit(2);
    if (!recv_until_end(s)) /* the call's deadline ends it */
        _exit(3);
    const char *why;
    if (rpc_client_stream_finish(s, &why) != RPC_STATUS_DEADLINE_EXCEEDED)
        _exit(4);
    rpc_client_stream_free(s);
    if (rpc_client_unary(ch, METHOD, "", 0, NULL, 0, 200, NULL, NULL) != RPC_STATUS_DEADLINE_EXCEEDED)
        _exit(5);
    rpc_client_channel_close(ch);
    close(fd);
    rpc_client_shutdown();
    _exit(0);
}

TEST(rpc_client_silent_server_times_out)
{
    int rc = unit_run_child(silent_server);
    CHECK_MSG(rc == 0, "a silent server: receives time out, then the deadline ends the call: failed at step %d", rc);
}

static void caller_gives_up(void)
{
    alarm(20);
    rpc_client_init();
    int fd;
    rpc_channel_t *ch = channel_to(local_port(false, &fd));
    const void *data;
    size_t len;
    /* cancelled long before its 60 s deadline */
    rpc_stream_t *s = rpc_client_stream_start(ch, METHOD, NULL, 0, 60000);
    if (!s || rpc_client_stream_send(s, "hello", 5, true) != 0)
        _exit(1);
    if (rpc_client_stream_recv(s, 20, 1024, &data, &len) != RPC_RECV_TIMEOUT)
        _exit(2);
    rpc_client_stream_cancel(s);
    if (!recv_until_end(s))
        _exit(3);
    const char *why;
    if (rpc_client_stream_finish(s, &why) != RPC_STATUS_CANCELLED)
        _exit(4);
    rpc_client_stream_free(s);
    /* freed with a receive outstanding: free cancels, and returns */
    s = rpc_client_stream_start(ch, METHOD, md, 1, 60000);
    if (!s || rpc_client_stream_send(s, "hello", 5, false) != 0)
        _exit(5);
    if (rpc_client_stream_recv(s, 20, 1024, &data, &len) != RPC_RECV_TIMEOUT)
        _exit(6);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rpc_client_stream_free(s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* at once, not after the second a finished call is given for its status */
    if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 900)
        _exit(7);
    /* never sent on */
    rpc_client_stream_free(rpc_client_stream_start(ch, METHOD, md, 1, 60000));
    rpc_client_channel_close(ch);
    close(fd);
    rpc_client_shutdown();
    _exit(0);
}

TEST(rpc_client_cancel_and_free_end_the_call)
{
    int rc = unit_run_child(caller_gives_up);
    CHECK_MSG(rc == 0, "cancel ends a call CANCELLED; free ends one still receiving: failed at step %d", rc);
}

TEST(rpc_client_no_channel)
{
    CHECK(rpc_client_stream_start(NULL, METHOD, NULL, 0, 1000) == NULL);
    CHECK_INT(rpc_client_unary(NULL, METHOD, "", 0, NULL, 0, 1000, NULL, NULL), -1);
}
