/* The unit-test runner: the only main() of build/unit-tests. */
#include "unit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/backend/backend.h"

#define UNIT_MAX_TESTS 512

static struct {
    const char *name;
    unit_fn fn;
} tests[UNIT_MAX_TESTS];
static int ntests;
static const char *current = "?";
static long long passed, failed;

void unit_register(const char *name, unit_fn fn)
{
    if (ntests == UNIT_MAX_TESTS) {
        fprintf(stderr, "unit: too many tests (raise UNIT_MAX_TESTS)\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

bool unit_check(bool ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return true;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "%s:%d: [%s] FAILED: ", file, line, current);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    return false;
}

bool unit_check_str(const char *got, const char *want, const char *file, int line,
                    const char *expr)
{
    bool ok = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
    return unit_check(ok, file, line, "CHECK_STR(%s):\n    got:  %s%s%s\n    want: %s%s%s", expr,
                      got ? "\"" : "", got ? got : "NULL", got ? "\"" : "", want ? "\"" : "",
                      want ? want : "NULL", want ? "\"" : "");
}

bool unit_check_int(long long got, long long want, const char *file, int line, const char *expr)
{
    return unit_check(got == want, file, line, "CHECK_INT(%s): got %lld, want %lld", expr, got,
                      want);
}

int unit_run_child(unit_fn fn)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        fn();
        fflush(NULL);
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    be_describe_types(); /* the backend types configs may name, as airouter's main does */
    for (int i = 0; i < ntests; i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        current = tests[i].name;
        long long before = failed;
        tests[i].fn();
        if (failed != before)
            fprintf(stdout, "  -- %s: %lld failed check(s)\n", current, failed - before);
    }
    printf("unit: %lld passed, %lld failed\n", passed, failed);
    return failed ? 1 : 0;
}
