/* cfg_expand_env (common/config.c) */
#include "common/config.h"
#include "unit.h"

#include <stdlib.h>

static void expect(const char *in, const char *want)
{
    char missing[64] = "untouched";
    char *got = cfg_expand_env(in, missing, sizeof missing);
    CHECK_MSG(got && strcmp(got, want) == 0, "cfg_expand_env(\"%s\") = %s%s%s, want \"%s\"", in,
              got ? "\"" : "", got ? got : "NULL", got ? "\"" : "", want);
    free(got);
}

static void expect_missing(const char *in, const char *var)
{
    char missing[64] = "";
    char *got = cfg_expand_env(in, missing, sizeof missing);
    CHECK_MSG(got == NULL, "cfg_expand_env(\"%s\") = \"%s\", want NULL", in, got ? got : "");
    CHECK_STR(missing, var);
    free(got);
}

TEST(env_plain_text_unchanged)
{
    expect("", "");
    expect("hello", "hello");
    expect("$HOME is not expanded", "$HOME is not expanded");
    expect("cost: $5 {x}", "cost: $5 {x}");
    expect("${", "${");
    expect("${UNTERMINATED", "${UNTERMINATED");
    expect("${}", "${}");
    expect("$", "$");
}

TEST(env_set_variables)
{
    setenv("UNIT_ENV_A", "alpha", 1);
    setenv("UNIT_ENV_B", "b", 1);
    expect("${UNIT_ENV_A}", "alpha");
    expect("x${UNIT_ENV_A}y", "xalphay");
    expect("${UNIT_ENV_A}${UNIT_ENV_B}${UNIT_ENV_A}", "alphabalpha");
    expect("Bearer ${UNIT_ENV_B}", "Bearer b");
    /* Growth: a value much longer than the input. */
    char big[2048];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    setenv("UNIT_ENV_BIG", big, 1);
    char want[2 * sizeof big + 8];
    snprintf(want, sizeof want, "<%s|%s>", big, big);
    expect("<${UNIT_ENV_BIG}|${UNIT_ENV_BIG}>", want);
    /* Set but empty, without a default: empty. */
    setenv("UNIT_ENV_EMPTY", "", 1);
    expect("[${UNIT_ENV_EMPTY}]", "[]");
    unsetenv("UNIT_ENV_A");
    unsetenv("UNIT_ENV_B");
    unsetenv("UNIT_ENV_BIG");
    unsetenv("UNIT_ENV_EMPTY");
}

TEST(env_defaults)
{
    unsetenv("UNIT_ENV_UNSET");
    expect("${UNIT_ENV_UNSET:-fallback}", "fallback");
    expect("a${UNIT_ENV_UNSET:-}b", "ab");
    expect("${UNIT_ENV_UNSET:-with spaces and : colons}", "with spaces and : colons");
    expect("${UNIT_ENV_UNSET:-http://h:1/v1}", "http://h:1/v1");
    setenv("UNIT_ENV_EMPTY", "", 1);
    expect("${UNIT_ENV_EMPTY:-used-when-empty}", "used-when-empty");
    setenv("UNIT_ENV_SET", "real", 1);
    expect("${UNIT_ENV_SET:-ignored}", "real");
    unsetenv("UNIT_ENV_EMPTY");
    unsetenv("UNIT_ENV_SET");
}

TEST(env_missing_variable)
{
    unsetenv("UNIT_ENV_NOPE");
    unsetenv("UNIT_ENV_NOPE2");
    expect_missing("${UNIT_ENV_NOPE}", "UNIT_ENV_NOPE");
    expect_missing("key-${UNIT_ENV_NOPE}-suffix", "UNIT_ENV_NOPE");
    setenv("UNIT_ENV_OK", "ok", 1);
    expect_missing("${UNIT_ENV_OK}${UNIT_ENV_NOPE2}", "UNIT_ENV_NOPE2");
    unsetenv("UNIT_ENV_OK");
    /* missing may be NULL. */
    char *r = cfg_expand_env("${UNIT_ENV_NOPE}", NULL, 0);
    CHECK(r == NULL);
    free(r);
    /* A small buffer truncates the name but stays terminated. */
    char small[5] = "xxxx";
    r = cfg_expand_env("${UNIT_ENV_NOPE}", small, sizeof small);
    CHECK(r == NULL);
    CHECK_STR(small, "UNIT");
    free(r);
}
