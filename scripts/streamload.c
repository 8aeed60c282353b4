/*
 * streamload - hold many concurrent streaming chat completions open, for `make capacity`.
 *
 * Opens N connections to ADDR:PORT at R per second, each sending one streaming
 * POST /v1/chat/completions ("Connection: close") and reading the SSE answer to `data: [DONE]`.
 * A stream counts as completed when it got HTTP 200, at least one `data:` event and
 * `data: [DONE]`; anything else (refused, reset, other status, no [DONE] before the deadline)
 * counts as failed. The work is split over enough processes that each stays under its
 * open-file limit (raised to the hard limit first). Stops by itself after T seconds at most.
 *
 * Prints, on stdout:
 *   "all_open n=N open=K" once every stream has had its first event or ended, K of them still open
 *   (the moment to sample the proxy; K = N when none failed early),
 *   "result n=N completed=C failed=F events=E seconds=S" at the end, then the failures by kind:
 *   "failures no_answer=A status=B cut=C running=D" (no HTTP answer at all; an answer other than
 *   200; a 200 stream that ended without [DONE]; a 200 stream still running at the deadline).
 *
 * usage: streamload -p PORT [-a ADDR] [-n STREAMS] [-r PER_SECOND] [-m MODEL] [-T SECONDS]
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o streamload streamload.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TAIL 16 /* bytes kept between reads so that a marker split across reads is still seen */

enum { CONNECTING, READING, DONE };

typedef struct {
    int fd;
    int state;
    int status;        /* HTTP status, 0 before the status line */
    long events;       /* "data:" lines seen */
    int finished;      /* saw data: [DONE] */
    int counted_open;  /* counted in the "first event" total */
    size_t sent;
    char tail[TAIL + 1];
    size_t tail_len;
} stream_t;

static const char *g_addr = "127.0.0.1";
static int g_port;
static long g_n = 1000;
static long g_rate = 2000;
static const char *g_model = "bench";
static int g_limit_s = 120;
static char g_request[1024];
static size_t g_request_len;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t count_marker(const char *hay, size_t n, const char *marker)
{
    size_t m = strlen(marker), count = 0;
    for (const char *p = hay; (p = memmem(p, n - (size_t)(p - hay), marker, m)); p += m)
        count++;
    return count;
}

/* Scans one read: the status line, "data:" events and the [DONE] marker. */
static void on_bytes(stream_t *s, const char *p, size_t n)
{
    char scan[TAIL + 65536];
    size_t len = s->tail_len;
    memcpy(scan, s->tail, len);
    memcpy(scan + len, p, n);
    len += n;
    if (s->status == 0 && len >= 12 && memcmp(scan, "HTTP/1.", 7) == 0)
        s->status = atoi(scan + 9);
    /* the tail is re-scanned: count only markers that end in the new bytes */
    size_t old = count_marker(scan, s->tail_len, "data:");
    s->events += (long)(count_marker(scan, len, "data:") - old);
    if (memmem(scan, len, "data: [DONE]", 12))
        s->finished = 1;
    size_t keep = len < TAIL ? len : TAIL;
    memcpy(s->tail, scan + len - keep, keep);
    s->tail_len = keep;
}

/* One process's share: returns 0 and its counts through the pipe fd. */
static int run_share(long n, long rate, int out_fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    stream_t *ss = calloc((size_t)n, sizeof *ss);
    if (ep < 0 || !ss)
        return 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, g_addr, &sa.sin_addr);
    double start = now_s(), deadline = start + g_limit_s;
    long opened = 0, done = 0, completed = 0, first_events = 0, early_ends = 0, events = 0;
    long no_answer = 0, bad_status = 0, cut = 0, running = 0;
    int reported_open = 0;
    char buf[65536];
    while (done < n && now_s() < deadline) {
        long due = (long)((now_s() - start) * (double)rate) + 1;
        while (opened < n && opened < due) {
            stream_t *s = &ss[opened++];
            s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (s->fd < 0 || (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)) {
                if (s->fd >= 0)
                    close(s->fd);
                s->state = DONE;
                done++;
                early_ends++;
                no_answer++;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = s};
            epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
        }
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 10);
        for (int i = 0; i < k; i++) {
            stream_t *s = evs[i].data.ptr;
            if (s->state == CONNECTING && (evs[i].events & EPOLLOUT)) {
                ssize_t w = send(s->fd, g_request + s->sent, g_request_len - s->sent, MSG_NOSIGNAL);
                if (w > 0)
                    s->sent += (size_t)w;
                if (s->sent == g_request_len) {
                    s->state = READING;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
                    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                } else if (w < 0 && errno != EAGAIN) {
                    s->state = DONE;
                }
            }
            if (s->state == READING && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                ssize_t r;
                while ((r = recv(s->fd, buf, sizeof buf, 0)) > 0)
                    on_bytes(s, buf, (size_t)r);
                if (s->events > 0 && !s->counted_open) {
                    s->counted_open = 1;
                    first_events++;
                }
                if (s->finished || r == 0 || (r < 0 && errno != EAGAIN))
                    s->state = DONE;
            } else if (evs[i].events & (EPOLLHUP | EPOLLERR)) {
                s->state = DONE;
            }
            if (s->state == DONE) {
                if (!s->counted_open)
                    early_ends++;
                close(s->fd);
                done++;
                events += s->events;
                if (s->status == 200 && s->events > 0 && s->finished)
                    completed++;
                else if (s->status == 0)
                    no_answer++;
                else if (s->status != 200)
                    bad_status++;
                else
                    cut++;
            }
        }
        if (!reported_open && first_events + early_ends == n) {
            reported_open = 1;
            char line[32];
            int len = snprintf(line, sizeof line, "O %ld\n", n - done);
            if (write(out_fd, line, (size_t)len) != len)
                return 1;
        }
    }
    for (long i = 0; i < n; i++) /* still running at the deadline */
        if (ss[i].state != DONE) {
            if (ss[i].status == 0)
                no_answer++;
            else if (ss[i].status != 200)
                bad_status++;
            else
                running++;
        }
    char line[128];
    int len = snprintf(line, sizeof line, "R %ld %ld %ld %ld %ld %ld %ld\n", completed, n - completed, events,
                       no_answer, bad_status, cut, running);
    return write(out_fd, line, (size_t)len) == len ? 0 : 1;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:a:n:r:m:T:")) != -1) {
        switch (opt) {
        case 'p': g_port = atoi(optarg); break;
        case 'a': g_addr = optarg; break;
        case 'n': g_n = atol(optarg); break;
        case 'r': g_rate = atol(optarg); break;
        case 'm': g_model = optarg; break;
        case 'T': g_limit_s = atoi(optarg); break;
        default: goto usage;
        }
    }
    if (g_port <= 0 || g_n < 1 || g_rate < 1 || g_limit_s < 1 || strlen(g_model) > 200)
        goto usage;
    char body[512];
    int blen = snprintf(body, sizeof body,
                        "{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hold\"}]}",
                        g_model);
    g_request_len = (size_t)snprintf(g_request, sizeof g_request,
                                     "POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\n"
                                     "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                                     "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
                                     g_addr, g_port, blen, body);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    long per = (long)rl.rlim_cur - 64;
    if (per > 50000)
        per = 50000;
    int nproc = (int)((g_n + per - 1) / per);
    int pipes[64], got[64] = {0};
    pid_t pids[64];
    if (nproc > 64) {
        fprintf(stderr, "streamload: open-file limit %ld too low for %ld streams\n", (long)rl.rlim_cur, g_n);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    double start = now_s();
    for (int i = 0; i < nproc; i++) {
        long share = g_n / nproc + (i < g_n % nproc);
        int p[2];
        if (pipe(p) < 0)
            return 1;
        pids[i] = fork();
        if (pids[i] == 0) {
            close(p[0]);
            _exit(run_share(share, g_rate / nproc + 1, p[1]));
        }
        close(p[1]);
        pipes[i] = p[0];
    }
    long completed = 0, failed = 0, events = 0, open_now = 0, no_answer = 0, bad_status = 0, cut = 0, running = 0;
    int opened = 0, results = 0;
    char in[256];
    size_t inlen[64] = {0};
    char acc[64][256];
    for (int i = 0; i < nproc; i++)
        fcntl(pipes[i], F_SETFL, O_NONBLOCK);
    while (results < nproc) {
        for (int i = 0; i < nproc; i++) {
            if (pipes[i] < 0)
                continue;
            ssize_t r = read(pipes[i], in, sizeof in);
            if (r == 0) {
                close(pipes[i]);
                pipes[i] = -1;
                results++;
                continue;
            }
            for (ssize_t j = 0; j < r; j++) {
                if (inlen[i] < sizeof acc[i] - 1)
                    acc[i][inlen[i]++] = in[j];
                if (in[j] != '\n')
                    continue;
                acc[i][inlen[i]] = '\0';
                long k = 0, c = 0, f = 0, e = 0, na = 0, bs = 0, ct = 0, rn = 0;
                if (sscanf(acc[i], "O %ld", &k) == 1) {
                    open_now += k;
                    if (++opened == nproc) {
                        printf("all_open n=%ld open=%ld seconds=%.1f\n", g_n, open_now, now_s() - start);
                        fflush(stdout);
                    }
                } else if (sscanf(acc[i], "R %ld %ld %ld %ld %ld %ld %ld", &c, &f, &e, &na, &bs, &ct, &rn) == 7) {
                    completed += c;
                    failed += f;
                    events += e;
                    no_answer += na;
                    bad_status += bs;
                    cut += ct;
                    running += rn;
                    got[i] = 1;
                }
                inlen[i] = 0;
            }
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < nproc; i++) {
        if (!got[i])
            failed += g_n / nproc + (i < g_n % nproc);
        waitpid(pids[i], NULL, 0);
    }
    printf("result n=%ld completed=%ld failed=%ld events=%ld seconds=%.1f\n", g_n, completed, failed, events,
           now_s() - start);
    printf("failures no_answer=%ld status=%ld cut=%ld running=%ld\n", no_answer, bad_status, cut, running);
    return failed == 0 ? 0 : 2;
usage:
    fprintf(stderr, "usage: streamload -p PORT [-a ADDR] [-n STREAMS] [-r PER_SECOND] [-m MODEL] [-T SECONDS]\n");
    return 1;
}
