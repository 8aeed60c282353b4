/* What one sleep and wake-up of a thread costs on this machine: two threads bounce a byte over a
 * loopback TCP connection, each blocking in poll() for the other, as a connection thread blocks
 * once for the backend and once for the client's next request. Prints µs per round trip (two
 * sleeps, two wake-ups, and a send/poll/recv each) with both threads on one CPU and free to
 * use two. Usage: switchcost [round trips, default 100000] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long rounds = 100000;

static void bounce(int fd, bool first)
{
    char c = 'x';
    for (long i = 0; i < rounds; i++) {
        if (first && send(fd, &c, 1, 0) != 1)
            exit(1);
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, -1) != 1 || recv(fd, &c, 1, 0) != 1)
            exit(1);
        if (!first && send(fd, &c, 1, 0) != 1)
            exit(1);
    }
}

static void *peer(void *arg)
{
    bounce(*(int *)arg, false);
    return NULL;
}

static double run(bool one_cpu)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sl) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) < 0)
        exit(1);
    int a = socket(AF_INET, SOCK_STREAM, 0);
    if (a < 0 || connect(a, (struct sockaddr *)&sa, sl) < 0)
        exit(1);
    int b = accept(l, NULL, NULL);
    if (b < 0)
        exit(1);
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    cpu_set_t set;
    CPU_ZERO(&set);
    if (one_cpu)
        CPU_SET(sched_getcpu(), &set);
    else
        for (int i = 0; i < CPU_SETSIZE; i++)
            CPU_SET(i, &set);
    sched_setaffinity(0, sizeof set, &set); /* the peer thread inherits it */
    pthread_t t;
    if (pthread_create(&t, NULL, peer, &b) != 0)
        exit(1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bounce(a, true);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    close(a), close(b), close(l);
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / (double)rounds;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (rounds = atol(argv[1])) <= 0)
        rounds = 100000;
    printf("one cpu:  %.2f us per round trip (2 sleeps + 2 wake-ups)\n", run(true));
    printf("two cpus: %.2f us per round trip (2 sleeps + 2 wake-ups, wake-ups across CPUs)\n", run(false));
    return 0;
}
