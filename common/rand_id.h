/* Random identifiers (request ids, trace and span ids). A per-thread generator seeded once from
 * getrandom, so minting an id costs no system call. Unpredictable enough for ids, not for secrets. */
#ifndef AIROUTER_RAND_ID_H
#define AIROUTER_RAND_ID_H
#include <stddef.h>

/* Writes 2*nbytes lowercase hex digits and a NUL to out; never all zeros. */
void rand_id_hex(char *out, size_t nbytes);

#endif
