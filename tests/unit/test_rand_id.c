/* common/rand_id.c */
#include "common/rand_id.h"
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

TEST(rand_id_hex_shape)
{
    for (size_t n = 1; n <= 16; n++) {
        char id[40];
        memset(id, 'x', sizeof id);
        rand_id_hex(id, n);
        CHECK_INT(strlen(id), 2 * n);
        CHECK_MSG(strspn(id, "0123456789abcdef") == 2 * n, "lowercase hex: %s", id);
        CHECK_MSG(strspn(id, "0") < 2 * n, "not all zeros: %s", id);
    }
}

TEST(rand_id_hex_distinct)
{
    enum { N = 20000 };
    char (*ids)[17] = malloc(sizeof *ids * N);
    for (int i = 0; i < N; i++)
        rand_id_hex(ids[i], 8);
    qsort(ids, N, sizeof *ids, cmp_str);
    int dups = 0;
    for (int i = 1; i < N; i++)
        dups += strcmp(ids[i - 1], ids[i]) == 0;
    CHECK_INT(dups, 0);
    /* every hex digit turns up in every position: no stuck bits */
    for (int pos = 0; pos < 16; pos++) {
        unsigned seen = 0;
        for (int i = 0; i < N; i++)
            seen |= 1u << (ids[i][pos] <= '9' ? ids[i][pos] - '0' : ids[i][pos] - 'a' + 10);
        CHECK_MSG(seen == 0xffff, "position %d digits seen %#x", pos, seen);
    }
    free(ids);
}

static void *one_id(void *out)
{
    rand_id_hex(out, 16);
    return NULL;
}

TEST(rand_id_hex_threads_and_fork_differ)
{
    char a[33], b[33];
    pthread_t t1, t2;
    pthread_create(&t1, NULL, one_id, a);
    pthread_create(&t2, NULL, one_id, b);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK_MSG(strcmp(a, b) != 0, "two threads: %s %s", a, b);

    /* a forked child must not repeat the parent's next id */
    char mine[33], childs[33] = "";
    rand_id_hex(mine, 16); /* seed this thread before the fork */
    int fds[2];
    if (!CHECK(pipe(fds) == 0))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        char id[33];
        rand_id_hex(id, 16);
        ssize_t w = write(fds[1], id, 33);
        _exit(w == 33 ? 0 : 1);
    }
    rand_id_hex(mine, 16);
    CHECK(read(fds[0], childs, 33) == 33);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    CHECK_MSG(strcmp(mine, childs) != 0, "parent and child after fork: %s %s", mine, childs);
}
