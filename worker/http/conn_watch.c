#include "worker/http/conn_watch.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/oai_error.h"

typedef enum {
    PHASE_IDLE,  /* waiting for a request: just accepted, or between kept-alive requests */
    PHASE_HEAD,  /* a request head is arriving */
    PHASE_BODY,  /* the head is complete, the body is arriving */
    PHASE_BUSY,  /* the request is being answered: no deadline from here */
    PHASE_CUT,   /* closed by the watchdog */
} phase_t;

struct conn_watch {
    conn_watch_t *prev, *next;
    int fd;
    phase_t phase;
    bool kept_alive;       /* a request has completed on it */
    uint64_t since_us;     /* when the phase's clock started (accept for a first head) */
    uint64_t rx_mark;      /* bytes the socket had received when it became idle */
    uint64_t body_bytes;
    const char *cut_reason;
};

/* While draining, a connection idle this long with nothing received is closed. Closing an
 * idle keep-alive connection always races with a request the client may be writing (it has
 * not seen the close yet); a client that has been silent for seconds is unlikely to be doing
 * so, even one stalled by a busy machine. A busy client instead gets its next request
 * answered with Connection: close. */
#define DRAIN_QUIET_US 5000000u
static uint64_t drain_quiet_us = DRAIN_QUIET_US;
#define TICK_MAX_US 250000u
#define TICK_MIN_US 10000u
#define DRAIN_TICK_US 50000u

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static conn_watch_t *conns;          /* every open connection, under lock */
static unsigned nconns;
static bool draining, stopping, running;
static pthread_t thread;
static uint64_t header_timeout_us;
static long body_rate;
static buf_t reply_head_timeout, reply_body_slow; /* complete 408 responses, built at start */

/* Bytes the kernel has received on the socket so far (0 if it cannot tell). MHD reads
 * them at once into its own buffer, so this is how "something arrived" is seen. */
static uint64_t bytes_received(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return 0;
    return ti.tcpi_bytes_received;
}

static int build_408(buf_t *out, const char *message, const char *code)
{
    buf_t body = {0};
    int rc = oaierr_format(&body, message, "invalid_request_error", NULL, code);
    if (rc == 0)
        rc = buf_printf(out,
                        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                        body.len) < 0 || buf_append(out, body.data, body.len) < 0 ? -1 : 0;
    buf_free(&body);
    return rc;
}

/* Under lock. Answers 408 (unless reply is NULL) and shuts the socket down: the
 * connection's thread sees the end of input and closes it. The socket stays open until
 * conn_watch_closed(), so fd cannot have been reused. */
static void cut(conn_watch_t *w, const char *reason, const buf_t *reply)
{
    if (reply)
        (void)!send(w->fd, reply->data, reply->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(w->fd, SHUT_RDWR);
    w->phase = PHASE_CUT;
    w->cut_reason = reply ? reason : NULL;
    log_debug("closing a client connection: %s", reason);
}

/* Under lock: applies the deadlines (and the drain) to one connection. */
static void check(conn_watch_t *w, uint64_t now)
{
    uint64_t age = now - w->since_us;
    switch (w->phase) {
    case PHASE_IDLE:
        if (w->kept_alive) {
            uint64_t rx = bytes_received(w->fd);
            if (rx != w->rx_mark) { /* the next request has begun: its head's clock starts */
                w->phase = PHASE_HEAD;
                w->since_us = now;
            } else if (draining && age >= drain_quiet_us) {
                cut(w, "idle while draining", NULL);
            }
        } else if (age >= header_timeout_us) {
            bool said_something = bytes_received(w->fd) > 0;
            cut(w, said_something ? "header_timeout" : "silent past header_timeout",
                said_something ? &reply_head_timeout : NULL);
        } else if (draining && age >= drain_quiet_us && bytes_received(w->fd) == 0) {
            cut(w, "idle while draining", NULL);
        }
        break;
    case PHASE_HEAD:
        if (age >= header_timeout_us)
            cut(w, "header_timeout", &reply_head_timeout);
        break;
    case PHASE_BODY:
        if (body_rate > 0 && age >= header_timeout_us + w->body_bytes * 1000000u / (uint64_t)body_rate)
            cut(w, "body_too_slow", &reply_body_slow);
        break;
    case PHASE_BUSY:
    case PHASE_CUT:
        break;
    }
}

static void *watch_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        uint64_t now = clock_now_us();
        for (conn_watch_t *w = conns; w; w = w->next)
            check(w, now);
        uint64_t tick = header_timeout_us / 4 < TICK_MAX_US ? header_timeout_us / 4 : TICK_MAX_US;
        if (tick < TICK_MIN_US)
            tick = TICK_MIN_US;
        if (draining && tick > DRAIN_TICK_US)
            tick = DRAIN_TICK_US;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + tick * 1000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&wake, &lock, &until);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int conn_watch_start(double header_timeout_s, long min_body_rate)
{
    header_timeout_us = (uint64_t)(header_timeout_s * 1e6);
    if (header_timeout_us < 1000)
        header_timeout_us = 1000;
    body_rate = min_body_rate;
    if (build_408(&reply_head_timeout, "The request head was not received in time (limits.header_timeout).",
                  "request_timeout") < 0 ||
        build_408(&reply_body_slow, "The request body arrived too slowly (limits.min_body_rate).",
                  "request_timeout") < 0) {
        log_error("out of memory");
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&thread, NULL, watch_main, NULL);
    if (rc != 0) {
        log_error("cannot start the connection watchdog: %s", strerror(rc));
        return -1;
    }
    running = true;
    return 0;
}

void conn_watch_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    running = false;
    buf_free(&reply_head_timeout);
    buf_free(&reply_body_slow);
}

conn_watch_t *conn_watch_opened(int fd)
{
    conn_watch_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fd = fd;
    w->phase = PHASE_IDLE;
    w->since_us = clock_now_us();
    pthread_mutex_lock(&lock);
    w->next = conns;
    if (conns)
        conns->prev = w;
    conns = w;
    nconns++;
    pthread_mutex_unlock(&lock);
    return w;
}

void conn_watch_closed(conn_watch_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        conns = w->next;
    if (w->next)
        w->next->prev = w->prev;
    nconns--;
    pthread_mutex_unlock(&lock);
    free(w);
}

void conn_watch_head_begun(conn_watch_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&lock);
    if (w->phase == PHASE_IDLE) {
        w->phase = PHASE_HEAD;
        if (w->kept_alive) /* a first head's clock runs from the accept */
            w->since_us = clock_now_us();
    }
    pthread_mutex_unlock(&lock);
}

/* Moves w to phase `to` unless the watchdog has cut it (then returns false). */
static bool advance(conn_watch_t *w, phase_t to)
{
    if (!w)
        return true;
    pthread_mutex_lock(&lock);
    bool live = w->phase != PHASE_CUT;
    if (live && to != w->phase) {
        w->since_us = clock_now_us();
        w->phase = to;
        w->body_bytes = 0;
    }
    pthread_mutex_unlock(&lock);
    return live;
}

bool conn_watch_head_done(conn_watch_t *w) { return advance(w, PHASE_BODY); }

bool conn_watch_body(conn_watch_t *w, size_t n)
{
    if (!w)
        return true;
    pthread_mutex_lock(&lock);
    bool live = w->phase != PHASE_CUT;
    w->body_bytes += n;
    pthread_mutex_unlock(&lock);
    return live;
}

bool conn_watch_body_done(conn_watch_t *w) { return advance(w, PHASE_BUSY); }

void conn_watch_request_done(conn_watch_t *w)
{
    if (!w)
        return;
    uint64_t rx = bytes_received(w->fd);
    pthread_mutex_lock(&lock);
    if (w->phase != PHASE_CUT) {
        w->phase = PHASE_IDLE;
        w->kept_alive = true;
        w->since_us = clock_now_us();
        w->rx_mark = rx;
    }
    pthread_mutex_unlock(&lock);
}

const char *conn_watch_cut_reason(conn_watch_t *w)
{
    if (!w)
        return NULL;
    pthread_mutex_lock(&lock);
    const char *r = w->cut_reason;
    pthread_mutex_unlock(&lock);
    return r;
}

void conn_watch_drain(bool final)
{
    pthread_mutex_lock(&lock);
    draining = true;
    drain_quiet_us = final ? 0 : DRAIN_QUIET_US;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
}

unsigned conn_watch_open_count(void)
{
    pthread_mutex_lock(&lock);
    unsigned n = nconns;
    pthread_mutex_unlock(&lock);
    return n;
}
