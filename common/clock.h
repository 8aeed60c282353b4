/* Clocks. Monotonic times are CLOCK_MONOTONIC, which is system-wide: a time taken in one
 * process compares with one taken in another (shared-memory deadlines rely on it). */
#ifndef AIROUTER_CLOCK_H
#define AIROUTER_CLOCK_H
#include <stdint.h>

uint64_t clock_now_us(void);
uint64_t clock_now_ms(void);
/* Wall-clock time in nanoseconds since the epoch (span timestamps). */
uint64_t clock_unix_ns(void);

#endif
