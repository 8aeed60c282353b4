/*
 * ttfb - time to first SSE chunk for streaming OpenAI chat completions, over raw sockets.
 *
 * Sends N streaming POST /v1/chat/completions requests over C keep-alive connections (one thread
 * each) and measures, per request, the time from sending the request to the first decoded
 * `data:` event (TTFC) and to the end of the response (total). Prints one line:
 *   n=N errors=E ttfc_p50_ms=.. ttfc_p99_ms=.. total_p50_ms=.. total_p99_ms=..
 * A request counts as an error unless it got status 200, at least one `data:` event and
 * `data: [DONE]`.
 *
 * usage: ttfb -p PORT [-a ADDR] [-P PATH] [-m MODEL] [-n REQUESTS] [-c CONNS] [-T SECONDS]
 *             [-W WARMUP_PER_CONN]
 *
 * Build: cc -O2 -Wall -Wextra -Werror -pthread -o ttfb ttfb.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *g_addr = "127.0.0.1";
static int g_port;
static const char *g_path = "/v1/chat/completions";
static const char *g_model = "bench";
static long g_n = 1000;
static int g_conns = 1;
static double g_limit_s = 20;
static int g_warmup = 5;

static char g_req[4096];
static size_t g_req_len;
static double g_deadline;

static atomic_long g_next;     /* requests handed out */
static atomic_long g_errors;
static atomic_long g_done;     /* results recorded */
static double *g_ttfc, *g_total;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int dial(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)g_port)};
    if (inet_pton(AF_INET, g_addr, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* read with a deadline; returns bytes, 0 on EOF, -1 on error/timeout */
static ssize_t rd(int fd, char *p, size_t n)
{
    for (;;) {
        int left = (int)(g_deadline + 5000 - now_ms());
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        return k;
    }
}

/*
 * One request on fd. Returns 0 ok (keep connection), 1 ok but connection must be closed,
 * -1 error (close connection). *ttfc / *total in ms.
 */
static int one_request(int fd, double *ttfc, double *total)
{
    static __thread char raw[65536];
    static __thread char body[65536];
    size_t rlen = 0, blen = 0;
    double t0 = now_ms();
    *ttfc = -1;

    size_t off = 0;
    while (off < g_req_len) {
        ssize_t k = send(fd, g_req + off, g_req_len - off, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }

    /* headers */
    char *hend = NULL;
    for (;;) {
        if (rlen >= sizeof raw - 1)
            return -1;
        ssize_t k = rd(fd, raw + rlen, sizeof raw - 1 - rlen);
        if (k <= 0)
            return -1;
        rlen += (size_t)k;
        raw[rlen] = 0;
        hend = strstr(raw, "\r\n\r\n");
        if (hend)
            break;
    }
    size_t hlen = (size_t)(hend - raw) + 4;
    int status = 0;
    if (sscanf(raw, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    int chunked = 0, closing = 0;
    long clen = -1;
    for (char *line = strstr(raw, "\r\n") + 2; line < hend; line = strstr(line, "\r\n") + 2) {
        if (!strncasecmp(line, "Transfer-Encoding:", 18) && strcasestr(line, "chunked") &&
            strcasestr(line, "chunked") < strstr(line, "\r\n"))
            chunked = 1;
        else if (!strncasecmp(line, "Content-Length:", 15))
            clen = strtol(line + 15, NULL, 10);
        else if (!strncasecmp(line, "Connection:", 11) && strcasestr(line, "close") &&
                 strcasestr(line, "close") < strstr(line, "\r\n"))
            closing = 1;
    }
    memmove(raw, raw + hlen, rlen - hlen);
    rlen -= hlen;

    /* body: decode chunked framing incrementally */
    enum { SZ, DATA, DATA_CRLF, TRAILER, END } st = SZ;
    size_t remain = 0;
    int eof = 0;
    for (;;) {
        size_t pos = 0;
        if (!chunked) {
            size_t take = rlen;
            if (blen + take > sizeof body - 1)
                return -1;
            memcpy(body + blen, raw, take);
            blen += take;
            pos = take;
            if (clen >= 0 && (long)blen >= clen)
                st = END;
        } else {
            while (st != END) {
                if (st == SZ || st == DATA_CRLF || st == TRAILER) {
                    char *eol = memmem(raw + pos, rlen - pos, "\r\n", 2);
                    if (!eol)
                        break;
                    size_t linelen = (size_t)(eol - (raw + pos));
                    if (st == SZ) {
                        remain = strtoul(raw + pos, NULL, 16);
                        st = remain ? DATA : TRAILER;
                    } else if (st == DATA_CRLF) {
                        st = SZ;
                    } else if (linelen == 0) {
                        st = END;
                    }
                    pos += linelen + 2;
                } else { /* DATA */
                    size_t take = rlen - pos < remain ? rlen - pos : remain;
                    if (take == 0)
                        break;
                    if (blen + take > sizeof body - 1)
                        return -1;
                    memcpy(body + blen, raw + pos, take);
                    blen += take;
                    pos += take;
                    remain -= take;
                    if (!remain)
                        st = DATA_CRLF;
                }
            }
        }
        memmove(raw, raw + pos, rlen - pos);
        rlen -= pos;
        body[blen] = 0;
        if (*ttfc < 0 && strstr(body, "data:"))
            *ttfc = now_ms() - t0;
        if (st == END || eof)
            break;
        ssize_t k = rd(fd, raw + rlen, sizeof raw - rlen);
        if (k < 0)
            return -1;
        if (k == 0) {
            if (chunked || clen >= 0)
                return -1; /* truncated */
            eof = 1;
            closing = 1;
        }
        rlen += (size_t)k;
    }
    *total = now_ms() - t0;
    if (status != 200 || *ttfc < 0 || !strstr(body, "data: [DONE]"))
        return -1;
    return closing ? 1 : 0;
}

static void *runner(void *arg)
{
    (void)arg;
    int fd = -1;
    for (int w = 0; w < g_warmup && now_ms() < g_deadline; w++) {
        double a, b;
        if (fd < 0)
            fd = dial();
        if (fd < 0)
            break;
        int r = one_request(fd, &a, &b);
        if (r != 0) {
            close(fd);
            fd = -1;
        }
    }
    while (now_ms() < g_deadline) {
        long i = atomic_fetch_add(&g_next, 1);
        if (i >= g_n)
            break;
        if (fd < 0)
            fd = dial();
        double ttfc, total;
        int r = fd < 0 ? -1 : one_request(fd, &ttfc, &total);
        if (r < 0) {
            atomic_fetch_add(&g_errors, 1);
            if (fd >= 0)
                close(fd);
            fd = -1;
            usleep(1000);
            continue;
        }
        long j = atomic_fetch_add(&g_done, 1);
        g_ttfc[j] = ttfc;
        g_total[j] = total;
        if (r == 1) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double p)
{
    if (n <= 0)
        return 0;
    long i = (long)(p / 100.0 * (double)n + 0.5) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return v[i];
}

static void usage(void)
{
    fprintf(stderr, "usage: ttfb -p PORT [-a ADDR] [-P PATH] [-m MODEL] [-n REQUESTS] [-c CONNS] "
                    "[-T SECONDS] [-W WARMUP_PER_CONN]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:a:P:m:n:c:T:W:h")) != -1) {
        switch (opt) {
        case 'p': g_port = atoi(optarg); break;
        case 'a': g_addr = optarg; break;
        case 'P': g_path = optarg; break;
        case 'm': g_model = optarg; break;
        case 'n': g_n = atol(optarg); break;
        case 'c': g_conns = atoi(optarg); break;
        case 'T': g_limit_s = atof(optarg); break;
        case 'W': g_warmup = atoi(optarg); break;
        default: usage();
        }
    }
    if (g_port <= 0 || g_port > 65535 || g_n < 1 || g_conns < 1 || g_conns > 1024 || g_limit_s <= 0)
        usage();
    signal(SIGPIPE, SIG_IGN);

    char body[512];
    int bl = snprintf(body, sizeof body,
                      "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
                      "\"Say hello to the benchmark.\"}],\"stream\":true}",
                      g_model);
    int rl = snprintf(g_req, sizeof g_req,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s",
                      g_path, g_addr, g_port, bl, body);
    if (bl < 0 || rl < 0 || (size_t)rl >= sizeof g_req)
        usage();
    g_req_len = (size_t)rl;

    g_ttfc = calloc((size_t)g_n, sizeof *g_ttfc);
    g_total = calloc((size_t)g_n, sizeof *g_total);
    pthread_t *th = calloc((size_t)g_conns, sizeof *th);
    if (!g_ttfc || !g_total || !th) {
        fprintf(stderr, "ttfb: out of memory\n");
        return 1;
    }
    g_deadline = now_ms() + g_limit_s * 1000.0;
    for (int i = 0; i < g_conns; i++)
        if (pthread_create(&th[i], NULL, runner, NULL) != 0) {
            fprintf(stderr, "ttfb: pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < g_conns; i++)
        pthread_join(th[i], NULL);

    free(th);
    long n = atomic_load(&g_done);
    qsort(g_ttfc, (size_t)n, sizeof *g_ttfc, cmp);
    qsort(g_total, (size_t)n, sizeof *g_total, cmp);
    printf("n=%ld errors=%ld ttfc_p50_ms=%.3f ttfc_p99_ms=%.3f total_p50_ms=%.3f total_p99_ms=%.3f\n",
           n, atomic_load(&g_errors), pct(g_ttfc, n, 50), pct(g_ttfc, n, 99), pct(g_total, n, 50),
           pct(g_total, n, 99));
    return n > 0 ? 0 : 1;
}
