/* Shared by the libFuzzer targets in this directory (built and run by `make fuzz`).
 * Each target feeds its parser the bytes libFuzzer gives it and stops (abort) on anything
 * a sanitizer does not already catch but the parser promises: a broken invariant. */
#ifndef AIROUTER_FUZZ_H
#define AIROUTER_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of data (caller frees). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Fails the run with a message: an invariant the code promises did not hold. */
#define FUZZ_ASSERT(cond)                                                                    \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* Cuts size bytes into pieces as a network would: the lengths come from seed (a byte of the
 * input), so the fuzzer explores every way a line or event can straddle two reads.
 * Returns the length of the next piece (at least 1 while bytes remain). */
static inline size_t fuzz_piece(uint8_t seed, size_t left, unsigned *state)
{
    if (seed == 0)
        return left; /* all at once */
    *state = *state * 1103515245u + 12345u + seed;
    size_t n = 1 + (*state >> 16) % (seed < 32 ? seed : 4096u);
    return n < left ? n : left;
}

#endif
