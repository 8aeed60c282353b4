/* Deadlines on what a client sends: a watchdog thread that closes client connections whose
 * request head or body comes too slowly (slowloris), and that lets a draining worker close
 * only connections that are idle with nothing of a next request received.
 *
 * The front end reports each connection's life: opened, request line seen, head complete,
 * body bytes, body complete, request done, closed. Every call is thread-safe. */
#ifndef AIROUTER_CONN_WATCH_H
#define AIROUTER_CONN_WATCH_H
#include <stdbool.h>
#include <stddef.h>

typedef struct conn_watch conn_watch_t;

/* Starts the watchdog. header_timeout_s: the longest a whole request head may take;
 * min_body_rate: bytes per second a body must average once header_timeout_s has passed
 * since its head (0: no minimum). Returns 0, or -1 if the thread cannot start. */
int conn_watch_start(double header_timeout_s, long min_body_rate);
/* Stops the watchdog thread; entries left are freed by conn_watch_closed(). */
void conn_watch_stop(void);

/* A connection on socket fd was accepted. Returns its entry (owned by the watch until
 * conn_watch_closed), or NULL when out of memory (the connection is then not watched). */
conn_watch_t *conn_watch_opened(int fd);
/* The connection is closed (its socket not yet): forgets and frees the entry. */
void conn_watch_closed(conn_watch_t *w);

/* The request line of a request has been read. */
void conn_watch_head_begun(conn_watch_t *w);
/* The head is complete; the body (if any) follows. Returns false if the watchdog has
 * already cut the connection: the request must then be dropped. */
bool conn_watch_head_done(conn_watch_t *w);
/* n bytes of body arrived. Returns false if the connection was cut. */
bool conn_watch_body(conn_watch_t *w, size_t n);
/* The body is complete and the request is being answered. Returns false if cut. */
bool conn_watch_body_done(conn_watch_t *w);
/* The request is over; the connection waits for the next one. */
void conn_watch_request_done(conn_watch_t *w);
/* "header_timeout" or "body_too_slow" if the watchdog cut this connection (and answered
 * 408), else NULL. */
const char *conn_watch_cut_reason(conn_watch_t *w);

/* From now on, close every connection that has been idle a few seconds with nothing of a
 * next request received; requests that arrive are answered (with Connection: close).
 * final: the whole service stops, so no other worker will serve the client's next request:
 * idle connections are closed at once, as nginx does on a graceful stop. */
void conn_watch_drain(bool final);
/* Connections open (watched). */
unsigned conn_watch_open_count(void);

#endif
