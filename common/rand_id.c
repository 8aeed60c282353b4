#include "common/rand_id.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* A forked child must not repeat its parent's sequence: the fork generation is bumped in the
 * child and a thread reseeds when its seed is from an older generation. */
static unsigned fork_generation = 1;
static __thread unsigned seeded_generation;
static __thread uint64_t state;

static void on_fork_child(void) { __atomic_add_fetch(&fork_generation, 1, __ATOMIC_RELAXED); }

__attribute__((constructor)) static void rand_id_init(void) { pthread_atfork(NULL, NULL, on_fork_child); }

static void seed(void)
{
    uint64_t s;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)&s;
    }
    state = s;
    seeded_generation = __atomic_load_n(&fork_generation, __ATOMIC_RELAXED);
}

/* splitmix64: a Weyl sequence through a 64-bit finaliser. */
static uint64_t next64(void)
{
    if (seeded_generation != __atomic_load_n(&fork_generation, __ATOMIC_RELAXED))
        seed();
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rand_id_hex(char *out, size_t nbytes)
{
    static const char digits[] = "0123456789abcdef";
    bool nonzero = false;
    while (!nonzero) {
        uint64_t r = 0;
        for (size_t i = 0; i < nbytes; i++) {
            if (i % 8 == 0)
                r = next64();
            unsigned char b = (unsigned char)(r >> (i % 8 * 8));
            nonzero |= b != 0;
            out[2 * i] = digits[b >> 4];
            out[2 * i + 1] = digits[b & 15];
        }
    }
    out[2 * nbytes] = '\0';
}
