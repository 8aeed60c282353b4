/* Tiny unit-test framework for airouter.
 *
 * A test is `TEST(name) { ... }` in any tests/unit/test_*.c file; it registers itself
 * (constructor) and the runner in test_main.c calls every registered test in order.
 * CHECK* macros record failures with file:line and keep going. The runner prints each
 * failing check and ends with "unit: N passed, M failed" (N/M count checks); it exits
 * non-zero if any check failed. An optional argument runs only tests whose name
 * contains it. */
#ifndef AIROUTER_UNIT_H
#define AIROUTER_UNIT_H
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef void (*unit_fn)(void);

void unit_register(const char *name, unit_fn fn);
/* Records one check; returns ok so callers can guard dependent checks. */
bool unit_check(bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool unit_check_str(const char *got, const char *want, const char *file, int line,
                    const char *expr);
bool unit_check_int(long long got, long long want, const char *file, int line,
                    const char *expr);
/* Runs fn in a forked child. Returns its exit status, or 128+signal if it died
 * from a signal (a crash counts as a failure without taking the runner down). */
int unit_run_child(unit_fn fn);

/* The function is unit_test_<name>, so a test may share a name with the code under test. */
#define TEST(name)                                                                \
    static void unit_test_##name(void);                                           \
    __attribute__((constructor)) static void unit_reg_##name(void)                \
    {                                                                             \
        unit_register(#name, unit_test_##name);                                   \
    }                                                                             \
    static void unit_test_##name(void)

#define CHECK(cond) unit_check(!!(cond), __FILE__, __LINE__, "CHECK(%s)", #cond)
#define CHECK_MSG(cond, ...) unit_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_STR(got, want) unit_check_str((got), (want), __FILE__, __LINE__, #got)
#define CHECK_INT(got, want) \
    unit_check_int((long long)(got), (long long)(want), __FILE__, __LINE__, #got)

#endif
