/*
 * benchmock - a small, fast mock OpenAI-compatible backend for `make bench`.
 *
 * Answers POST /v1/chat/completions with a fixed chat.completion (or, when the request body has
 * "stream": true, an SSE stream of K chunks in chunked transfer encoding, ending with
 * `data: [DONE]`), POST /v1/completions likewise as text_completion, GET /v1/models and
 * GET /health.  HTTP/1.1 keep-alive and pipelining, Content-Length or chunked request bodies,
 * Expect: 100-continue.  One epoll loop per thread, each thread with its own SO_REUSEPORT
 * listener.  No dependencies beyond libc.
 *
 * usage: benchmock -p PORT [-a ADDR] [-t THREADS] [-k CHUNKS] [-d CHUNK_DELAY_MS]
 *
 * Build: cc -O2 -Wall -Wextra -Werror -pthread -o benchmock benchmock.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_BODY_BYTES (16 * 1024 * 1024)
#define MODEL_NAME "bench-backend-model"

/* ---- configuration (set once in main, read-only afterwards) ---- */
static const char *g_addr = "127.0.0.1";
static int g_port;
static int g_threads = 2;
static int g_chunks = 20;
static int g_delay_ms;

/* ---- growable byte buffer ---- */
struct buf {
    char *p;      /* owned */
    size_t len;
    size_t cap;
};

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("benchmock: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void buf_add(struct buf *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_printf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("vsnprintf failed");
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        buf_reserve(b, (size_t)n + 1);
    }
}

static void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* ---- canned responses, built once at start-up ---- */
enum kind { K_CHAT, K_COMPL, K_NKINDS };

struct canned {
    struct buf full;          /* complete HTTP response, non-streaming */
    struct buf sfull[2];      /* complete streaming response, [include_usage] */
    struct buf shead;         /* streaming: status line + headers */
    struct buf *events;       /* streaming: each event already framed as one HTTP chunk */
    int nevents;              /* role/first, K content, final; then usage (optional), [DONE] */
};
static struct canned g_canned[K_NKINDS];
static struct buf g_models_resp, g_health_resp, g_404_resp, g_400_resp, g_continue;

static void add_http_chunk(struct buf *b, const char *data, size_t n)
{
    buf_printf(b, "%zx\r\n", n);
    buf_add(b, data, n);
    buf_add(b, "\r\n", 2);
}

static void fixed_response(struct buf *out, int status, const char *reason, const char *body)
{
    buf_printf(out,
               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
               "\r\n%s",
               status, reason, strlen(body), body);
}

static void build_canned(void)
{
    static const char *ids[K_NKINDS] = {"chatcmpl-benchmock", "cmpl-benchmock"};
    static const char *objs[K_NKINDS] = {"chat.completion", "text_completion"};
    static const char *sobjs[K_NKINDS] = {"chat.completion.chunk", "text_completion"};
    char body[2048];
    char ev[1024];

    /* non-streaming answer: the K tokens joined */
    struct buf text = {0};
    for (int i = 0; i < g_chunks; i++)
        buf_printf(&text, "tok%d ", i);
    buf_add(&text, "", 1);

    for (int k = 0; k < K_NKINDS; k++) {
        struct canned *c = &g_canned[k];
        if (k == K_CHAT)
            snprintf(body, sizeof body,
                     "{\"id\":\"%s\",\"object\":\"%s\",\"created\":1700000000,\"model\":\"" MODEL_NAME
                     "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                     "\"%s\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{"
                     "\"prompt_tokens\":8,\"completion_tokens\":%d,\"total_tokens\":%d}}",
                     ids[k], objs[k], text.p, g_chunks, g_chunks + 8);
        else
            snprintf(body, sizeof body,
                     "{\"id\":\"%s\",\"object\":\"%s\",\"created\":1700000000,\"model\":\"" MODEL_NAME
                     "\",\"choices\":[{\"index\":0,\"text\":\"%s\",\"logprobs\":null,"
                     "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":8,"
                     "\"completion_tokens\":%d,\"total_tokens\":%d}}",
                     ids[k], objs[k], text.p, g_chunks, g_chunks + 8);
        fixed_response(&c->full, 200, "OK", body);

        buf_printf(&c->shead, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                              "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n");
        c->nevents = g_chunks + 4;
        c->events = calloc((size_t)c->nevents, sizeof *c->events);
        if (!c->events)
            die("out of memory");
        int e = 0;
        for (int i = -1; i <= g_chunks; i++) {
            const char *delta_or_text;
            char piece[64];
            if (i < g_chunks)
                snprintf(piece, sizeof piece, i < 0 ? "" : "tok%d ", i);
            else
                piece[0] = 0;
            if (k == K_CHAT) {
                char delta[160];
                if (i < 0)
                    snprintf(delta, sizeof delta, "{\"role\":\"assistant\",\"content\":\"\"}");
                else if (i < g_chunks)
                    snprintf(delta, sizeof delta, "{\"content\":\"%s\"}", piece);
                else
                    snprintf(delta, sizeof delta, "{}");
                snprintf(ev, sizeof ev,
                         "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":1700000000,\"model\":\""
                         MODEL_NAME "\",\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,"
                         "\"finish_reason\":%s}]}\n\n",
                         ids[k], sobjs[k], delta, i == g_chunks ? "\"stop\"" : "null");
            } else {
                delta_or_text = piece;
                snprintf(ev, sizeof ev,
                         "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":1700000000,\"model\":\""
                         MODEL_NAME "\",\"choices\":[{\"index\":0,\"text\":\"%s\",\"logprobs\":null,"
                         "\"finish_reason\":%s}]}\n\n",
                         ids[k], sobjs[k], delta_or_text, i == g_chunks ? "\"stop\"" : "null");
            }
            add_http_chunk(&c->events[e++], ev, strlen(ev));
        }
        snprintf(ev, sizeof ev,
                 "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":1700000000,\"model\":\"" MODEL_NAME
                 "\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":%d,"
                 "\"total_tokens\":%d}}\n\n",
                 ids[k], sobjs[k], g_chunks, g_chunks + 8);
        add_http_chunk(&c->events[e++], ev, strlen(ev));
        static const char done[] = "data: [DONE]\n\n";
        add_http_chunk(&c->events[e], done, sizeof done - 1);
        buf_add(&c->events[e], "0\r\n\r\n", 5);
        e++;
        /* e == nevents; usage event is index nevents-2 */
        for (int u = 0; u < 2; u++) {
            buf_add(&c->sfull[u], c->shead.p, c->shead.len);
            for (int j = 0; j < c->nevents; j++) {
                if (j == c->nevents - 2 && !u)
                    continue;
                buf_add(&c->sfull[u], c->events[j].p, c->events[j].len);
            }
        }
    }
    free(text.p);

    fixed_response(&g_models_resp, 200, "OK",
                   "{\"object\":\"list\",\"data\":[{\"id\":\"" MODEL_NAME
                   "\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"benchmock\"}]}");
    fixed_response(&g_health_resp, 200, "OK", "{\"status\":\"ok\"}");
    fixed_response(&g_404_resp, 404, "Not Found",
                   "{\"error\":{\"message\":\"unknown path\",\"type\":\"invalid_request_error\","
                   "\"param\":null,\"code\":\"unknown_url\"}}");
    fixed_response(&g_400_resp, 400, "Bad Request",
                   "{\"error\":{\"message\":\"bad request\",\"type\":\"invalid_request_error\","
                   "\"param\":null,\"code\":null}}");
    buf_printf(&g_continue, "HTTP/1.1 100 Continue\r\n\r\n");
}

/* ---- connections ---- */
enum { TAG_LISTEN, TAG_CONN, TAG_TIMER };

struct conn;
struct tag {
    int type;
    struct conn *c;
};

struct conn {
    struct tag tag;        /* epoll data for the socket */
    struct tag ttag;       /* epoll data for the timer */
    int fd;
    int tfd;               /* timerfd while a delayed stream runs, else -1 */
    struct buf in;
    struct buf out;
    size_t out_off;
    int want_out;          /* EPOLLOUT registered */
    int close_after;       /* close once out is flushed */
    int sent_continue;
    /* delayed stream state */
    const struct canned *sc;
    int snext;             /* next event index */
    int susage;
};

struct worker {
    int ep;
    int lfd;
    struct tag ltag;
};

static void conn_free(struct worker *w, struct conn *c)
{
    (void)w;
    if (c->tfd >= 0)
        close(c->tfd);
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c);
}

static void set_out_interest(struct worker *w, struct conn *c, int want)
{
    if (want == c->want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0),
                             .data.ptr = &c->tag};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

/* Returns -1 if the connection must be closed. */
static int conn_flush(struct worker *w, struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out_interest(w, c, 1);
            return 0;
        }
        return -1;
    }
    c->out.len = 0;
    c->out_off = 0;
    set_out_interest(w, c, 0);
    if (c->close_after && !c->sc)
        return -1;
    return 0;
}

static void queue(struct conn *c, const struct buf *b)
{
    buf_add(&c->out, b->p, b->len);
}

/* case-insensitive search for a header line's value; returns pointer to value or NULL */
static const char *find_header(const char *hdrs, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = hdrs, *end = hdrs + len;
    /* skip request line */
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
        return NULL;
    p = eol + 1;
    while (p < end) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

static int value_has(const char *v, size_t vlen, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i + tl <= vlen; i++)
        if (strncasecmp(v + i, token, tl) == 0)
            return 1;
    return 0;
}

/* does the JSON body contain "KEY" : true ? (good enough for a benchmark mock) */
static int body_flag_true(const char *b, size_t n, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 2 <= n; i++) {
        if (b[i] != '"' || memcmp(b + i + 1, key, kl) != 0 || b[i + 1 + kl] != '"')
            continue;
        size_t j = i + kl + 2;
        while (j < n && (b[j] == ' ' || b[j] == '\t' || b[j] == '\r' || b[j] == '\n'))
            j++;
        if (j >= n || b[j] != ':')
            continue;
        j++;
        while (j < n && (b[j] == ' ' || b[j] == '\t' || b[j] == '\r' || b[j] == '\n'))
            j++;
        if (j + 4 <= n && memcmp(b + j, "true", 4) == 0)
            return 1;
    }
    return 0;
}

/*
 * Decode a chunked body starting at p (len bytes available).  On success returns the number of
 * bytes the chunked encoding occupies and writes the decoded body into *dec; 0 if incomplete;
 * -1 if malformed.
 */
static long dechunk(const char *p, size_t len, struct buf *dec)
{
    size_t i = 0;
    dec->len = 0;
    for (;;) {
        const char *eol = memmem(p + i, len - i, "\r\n", 2);
        if (!eol)
            return 0;
        char *endp;
        unsigned long sz = strtoul(p + i, &endp, 16);
        if (endp == p + i)
            return -1;
        i = (size_t)(eol - p) + 2;
        if (sz == 0) {
            /* trailers until empty line */
            for (;;) {
                const char *e2 = memmem(p + i, len - i, "\r\n", 2);
                if (!e2)
                    return 0;
                size_t linelen = (size_t)(e2 - (p + i));
                i += linelen + 2;
                if (linelen == 0)
                    return (long)i;
            }
        }
        if (sz > MAX_BODY_BYTES || dec->len + sz > MAX_BODY_BYTES)
            return -1;
        if (len - i < sz + 2)
            return 0;
        buf_add(dec, p + i, sz);
        i += sz + 2;
    }
}

static void start_stream(struct worker *w, struct conn *c, const struct canned *k, int usage)
{
    if (g_delay_ms <= 0) {
        queue(c, &k->sfull[usage]);
        return;
    }
    queue(c, &k->shead);
    queue(c, &k->events[0]);
    c->sc = k;
    c->snext = 1;
    c->susage = usage;
    c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->tfd < 0)
        die("timerfd_create: %s", strerror(errno));
    struct itimerspec its = {0};
    its.it_value.tv_sec = g_delay_ms / 1000;
    its.it_value.tv_nsec = (long)(g_delay_ms % 1000) * 1000000L;
    its.it_interval = its.it_value;
    timerfd_settime(c->tfd, 0, &its, NULL);
    c->ttag.type = TAG_TIMER;
    c->ttag.c = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->ttag};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, c->tfd, &ev);
}

/* Parse and answer as many complete requests as are buffered. Returns -1 to close. */
static int conn_process(struct worker *w, struct conn *c)
{
    struct buf dec = {0};
    int rc = 0;
    while (!c->sc && c->in.len > 0) {
        char *hend = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
        if (!hend) {
            if (c->in.len > MAX_HEADER_BYTES)
                rc = -1;
            break;
        }
        size_t hlen = (size_t)(hend - c->in.p) + 4;
        const char *h = c->in.p;
        const char *sp1 = memchr(h, ' ', hlen);
        if (!sp1) {
            rc = -1;
            break;
        }
        const char *sp2 = memchr(sp1 + 1, ' ', hlen - (size_t)(sp1 + 1 - h));
        if (!sp2) {
            rc = -1;
            break;
        }
        size_t mlen = (size_t)(sp1 - h);
        const char *path = sp1 + 1;
        size_t plen = (size_t)(sp2 - path);
        int http10 = strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;

        size_t vlen;
        const char *v;
        int keep = !http10;
        if ((v = find_header(h, hlen, "Connection", &vlen))) {
            if (value_has(v, vlen, "close"))
                keep = 0;
            else if (value_has(v, vlen, "keep-alive"))
                keep = 1;
        }

        const char *body = h + hlen;
        size_t avail = c->in.len - hlen, blen = 0, consumed;
        if ((v = find_header(h, hlen, "Transfer-Encoding", &vlen)) && value_has(v, vlen, "chunked")) {
            long n = dechunk(body, avail, &dec);
            if (n < 0) {
                rc = -1;
                break;
            }
            if (n == 0) {
                if (!c->sent_continue && find_header(h, hlen, "Expect", &vlen)) {
                    queue(c, &g_continue);
                    c->sent_continue = 1;
                }
                break;
            }
            body = dec.p ? dec.p : "";
            blen = dec.len;
            consumed = hlen + (size_t)n;
        } else {
            if ((v = find_header(h, hlen, "Content-Length", &vlen)))
                blen = strtoul(v, NULL, 10);
            if (blen > MAX_BODY_BYTES) {
                rc = -1;
                break;
            }
            if (avail < blen) {
                if (!c->sent_continue && find_header(h, hlen, "Expect", &vlen)) {
                    queue(c, &g_continue);
                    c->sent_continue = 1;
                }
                break;
            }
            consumed = hlen + blen;
        }

#define IS(m, p) (mlen == strlen(m) && memcmp(h, m, mlen) == 0 && plen == strlen(p) && \
                  memcmp(path, p, plen) == 0)
        int kind = -1;
        if (IS("POST", "/v1/chat/completions"))
            kind = K_CHAT;
        else if (IS("POST", "/v1/completions"))
            kind = K_COMPL;
        if (kind >= 0) {
            if (body_flag_true(body, blen, "stream"))
                start_stream(w, c, &g_canned[kind], body_flag_true(body, blen, "include_usage"));
            else
                queue(c, &g_canned[kind].full);
        } else if (IS("GET", "/v1/models")) {
            queue(c, &g_models_resp);
        } else if (IS("GET", "/health")) {
            queue(c, &g_health_resp);
        } else {
            queue(c, &g_404_resp);
        }
#undef IS
        c->sent_continue = 0;
        if (!keep)
            c->close_after = 1;
        buf_consume(&c->in, consumed);
        if (!keep)
            break;
    }
    free(dec.p);
    return rc;
}

static void on_timer(struct worker *w, struct conn *c)
{
    uint64_t ticks;
    if (read(c->tfd, &ticks, sizeof ticks) < 0)
        return;
    const struct canned *k = c->sc;
    /* events: 0 role, 1..K content, K+1 finish, K+2 usage (optional), K+3 [DONE] */
    for (uint64_t t = 0; t < ticks && c->snext < k->nevents; t++) {
        queue(c, &k->events[c->snext++]);
        if (c->snext == k->nevents - 2) { /* finish chunk sent: usage and [DONE] follow at once */
            if (c->susage)
                queue(c, &k->events[k->nevents - 2]);
            queue(c, &k->events[k->nevents - 1]);
            c->snext = k->nevents;
        }
    }
    if (c->snext >= k->nevents) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->tfd, NULL);
        close(c->tfd);
        c->tfd = -1;
        c->sc = NULL;
    }
}

static void conn_close(struct worker *w, struct conn *c)
{
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->tfd >= 0)
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->tfd, NULL);
    conn_free(w, c);
}

/* Returns -1 if the connection must be closed (the caller closes it). */
static int on_readable(struct worker *w, struct conn *c)
{
    for (;;) {
        buf_reserve(&c->in, 16384);
        ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            if ((size_t)n < 16384)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1; /* EOF or error */
    }
    if (conn_process(w, c) < 0 || conn_flush(w, c) < 0)
        return -1;
    return 0;
}

static void on_accept(struct worker *w)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            die("out of memory");
        c->fd = fd;
        c->tfd = -1;
        c->tag.type = TAG_CONN;
        c->tag.c = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->tag};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

static int make_listener(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    if (inet_pton(AF_INET, g_addr, &sa.sin_addr) != 1)
        die("bad address %s", g_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind %s:%d: %s", g_addr, g_port, strerror(errno));
    if (listen(fd, 4096) < 0)
        die("listen: %s", strerror(errno));
    return fd;
}

/* drop every event of this batch that refers to a connection just freed (pointers compared only) */
static void forget(struct epoll_event *evs, int n, const struct conn *c)
{
    for (int j = 0; j < n; j++)
        if (evs[j].data.ptr == &c->tag || evs[j].data.ptr == &c->ttag)
            evs[j].data.ptr = NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        /* timers first (they only add output), then sockets */
        for (int i = 0; i < n; i++) {
            struct tag *t = evs[i].data.ptr;
            if (t && t->type == TAG_TIMER) {
                struct conn *c = t->c;
                on_timer(w, c);
                if (conn_flush(w, c) < 0) {
                    /* the same connection may appear elsewhere in this batch */
                    forget(evs, n, c);
                    conn_close(w, c);
                } else if (!c->sc && c->in.len) {
                    /* pipelined request waiting behind the stream */
                    if (conn_process(w, c) < 0 || conn_flush(w, c) < 0) {
                        forget(evs, n, c);
                        conn_close(w, c);
                    }
                }
            }
        }
        for (int i = 0; i < n; i++) {
            struct tag *t = evs[i].data.ptr;
            if (!t || t->type == TAG_TIMER)
                continue;
            if (t->type == TAG_LISTEN) {
                on_accept(w);
                continue;
            }
            struct conn *c = t->c;
            int dead = (evs[i].events & (EPOLLERR | EPOLLHUP)) != 0;
            if (!dead && (evs[i].events & EPOLLOUT))
                dead = conn_flush(w, c) < 0;
            if (!dead && (evs[i].events & (EPOLLIN | EPOLLRDHUP)))
                dead = on_readable(w, c) < 0;
            if (dead) {
                forget(evs, n, c);
                conn_close(w, c);
            }
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: benchmock -p PORT [-a ADDR] [-t THREADS] [-k CHUNKS] [-d CHUNK_DELAY_MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:a:t:k:d:h")) != -1) {
        switch (opt) {
        case 'p': g_port = atoi(optarg); break;
        case 'a': g_addr = optarg; break;
        case 't': g_threads = atoi(optarg); break;
        case 'k': g_chunks = atoi(optarg); break;
        case 'd': g_delay_ms = atoi(optarg); break;
        default: usage();
        }
    }
    if (g_port <= 0 || g_port > 65535 || g_threads < 1 || g_threads > 64 || g_chunks < 1 ||
        g_chunks > 10000 || g_delay_ms < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    build_canned();

    /* SO_REUSEPORT would silently share the port with another such listener: refuse instead */
    {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
        if (inet_pton(AF_INET, g_addr, &sa.sin_addr) != 1)
            die("bad address %s", g_addr);
        int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (probe < 0 || bind(probe, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("bind %s:%d: %s", g_addr, g_port, strerror(errno));
        close(probe);
    }
    struct worker *ws = calloc((size_t)g_threads, sizeof *ws);
    if (!ws)
        die("out of memory");
    for (int i = 0; i < g_threads; i++) {
        ws[i].lfd = make_listener();
        ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
        if (ws[i].ep < 0)
            die("epoll_create1: %s", strerror(errno));
        ws[i].ltag.type = TAG_LISTEN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ws[i].ltag};
        epoll_ctl(ws[i].ep, EPOLL_CTL_ADD, ws[i].lfd, &ev);
    }
    fprintf(stderr, "benchmock: listening on %s:%d (%d threads, %d chunks, %d ms/chunk)\n", g_addr,
            g_port, g_threads, g_chunks, g_delay_ms);
    for (int i = 1; i < g_threads; i++) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker_main, &ws[i]) != 0)
            die("pthread_create failed");
        pthread_detach(th);
    }
    worker_main(&ws[0]);
    return 0;
}
