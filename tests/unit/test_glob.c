/* cfg_glob_match (common/config.c) */
#include "common/config.h"
#include "unit.h"

#define MATCH(p, s) CHECK_MSG(cfg_glob_match(p, s), "glob '%s' should match '%s'", p, s)
#define NOMATCH(p, s) CHECK_MSG(!cfg_glob_match(p, s), "glob '%s' should not match '%s'", p, s)

TEST(glob_literal)
{
    MATCH("gpt-4o", "gpt-4o");
    NOMATCH("gpt-4o", "gpt-4");
    NOMATCH("gpt-4", "gpt-4o");
    NOMATCH("gpt-4o", "GPT-4o"); /* case-sensitive */
    MATCH("", "");
    NOMATCH("", "a");
    NOMATCH("a", "");
}

TEST(glob_star)
{
    MATCH("*", "");
    MATCH("*", "anything");
    MATCH("gpt-4o*", "gpt-4o");
    MATCH("gpt-4o*", "gpt-4o-mini");
    NOMATCH("gpt-4o*", "gpt-4");
    MATCH("*-mini", "gpt-4o-mini");
    NOMATCH("*-mini", "gpt-4o-mini-2");
    MATCH("a*b*c", "abc");
    MATCH("a*b*c", "axxbyyc");
    MATCH("a*b*c", "abcbc");
    NOMATCH("a*b*c", "axxbyy");
    MATCH("**", "x");
    MATCH("a**", "a");
    MATCH("*a*", "banana");
    NOMATCH("*z*", "banana");
    MATCH("*ana", "banana"); /* needs backtracking */
    MATCH("llama-*-instruct", "llama-3.1-8b-instruct");
    NOMATCH("llama-*-instruct", "llama-3.1-8b-instruct-q4");
}

TEST(glob_question)
{
    MATCH("?", "a");
    NOMATCH("?", "");
    NOMATCH("?", "ab");
    MATCH("embed-?", "embed-3");
    NOMATCH("embed-?", "embed-");
    NOMATCH("embed-?", "embed-33");
    MATCH("?*", "a");
    NOMATCH("?*", "");
    MATCH("*?", "abc");
    MATCH("a?c*", "abcdef");
}

TEST(glob_star_against_literal_star_in_name)
{
    /* A '*' in the pattern is a wildcard even where the name has a literal '*'
     * (client-supplied model names can contain any character). */
    MATCH("*", "*");
    MATCH("*", "*x");
    MATCH("a*", "a*b");
    MATCH("gpt-*", "gpt-*-turbo");
    MATCH("?", "*");
}
