/* worker/core/route.c against tests/unit/conf/route.conf */
#include "worker/core/route.h"
#include "unit.h"

static cfg_t *load(const char *path)
{
    char err[1024] = "";
    cfg_t *c = cfg_load(path, err, sizeof err);
    CHECK_MSG(c != NULL, "cfg_load(%s): %s", path, err);
    return c;
}

static const cfg_key_t *key_named(const cfg_t *c, const char *name)
{
    for (int i = 0; i < c->nkeys; i++)
        if (strcmp(c->keys[i].name, name) == 0)
            return &c->keys[i];
    CHECK_MSG(0, "no key named %s in the fixture", name);
    return NULL;
}

/* Expects ROUTE_OK to model index m_ on the backend named be_ with backend_model bm_. */
#define EXPECT_OK(c_, key_, nm_, kind_, m_, be_, bm_)                                         \
    do {                                                                                      \
        route_t r_ = {0};                                                                     \
        route_status_t st_ = route_resolve((c_), (key_), (nm_), (kind_), &r_);                \
        if (CHECK_MSG(st_ == ROUTE_OK, "route '%s' (%s): status %d, want ROUTE_OK", (nm_),    \
                      cfg_kind_name(kind_), (int)st_)) {                                      \
            CHECK_MSG(r_.model == &(c_)->models[m_], "route '%s' (%s): model '%s', want '%s'", \
                      (nm_), cfg_kind_name(kind_), r_.model ? r_.model->name : "NULL",        \
                      (c_)->models[m_].name);                                                 \
            CHECK_STR(r_.backend ? r_.backend->name : NULL, (be_));                           \
            CHECK_STR(r_.backend_model, (bm_));                                               \
        }                                                                                     \
    } while (0)

#define EXPECT_STATUS(c_, key_, nm_, kind_, want_)                                            \
    do {                                                                                      \
        route_t r_ = {0};                                                                     \
        route_status_t st_ = route_resolve((c_), (key_), (nm_), (kind_), &r_);                \
        CHECK_MSG(st_ == (want_), "route '%s' (%s): status %d, want %s", (nm_),               \
                  cfg_kind_name(kind_), (int)st_, #want_);                                    \
    } while (0)

TEST(route_exact_before_glob)
{
    cfg_t *c = load("conf/route.conf");
    if (!c)
        return;
    /* "gpt-4o" also matches the earlier glob "gpt-4o*": the exact name wins. */
    EXPECT_OK(c, NULL, "gpt-4o", KIND_CHAT, 2, "up", "gpt-4o-2024-08-06");
    EXPECT_OK(c, NULL, "echo", KIND_CHAT, 0, "echo", "echo");
    EXPECT_OK(c, NULL, "echo", KIND_COMPLETIONS, 0, "echo", "echo");
    EXPECT_OK(c, NULL, "e5", KIND_EMBEDDINGS, 6, "up", "intfloat/e5");
    cfg_free(c);
}

TEST(route_glob_first_match_in_config_order)
{
    cfg_t *c = load("conf/route.conf");
    if (!c)
        return;
    /* Matches "gpt-4o*" and "gpt-*": the first in config order wins. */
    EXPECT_OK(c, NULL, "gpt-4o-mini", KIND_CHAT, 1, "up", "gpt-4o-mini");
    EXPECT_OK(c, NULL, "gpt-3.5-turbo", KIND_CHAT, 3, "echo", "gpt-3.5-turbo");
    /* "gpt-4o*" is chat-only: for completions the next matching glob serves it. */
    EXPECT_OK(c, NULL, "gpt-4o-mini", KIND_COMPLETIONS, 3, "echo", "gpt-4o-mini");
    EXPECT_OK(c, NULL, "text-davinci-003", KIND_COMPLETIONS, 4, "up", "text-davinci-003");
    EXPECT_OK(c, NULL, "embed-large", KIND_EMBEDDINGS, 5, "up", "embed-large");
    cfg_free(c);
}

TEST(route_backend_model_pass_through)
{
    cfg_t *c = load("conf/route.conf");
    if (!c)
        return;
    const char *name = "gpt-4o-audio";
    route_t r = {0};
    if (CHECK_INT(route_resolve(c, NULL, name, KIND_CHAT, &r), ROUTE_OK)) {
        CHECK(c->models[1].backend_model == NULL);
        CHECK(r.backend_model == name); /* borrowed from the request */
        CHECK(r.backend == &c->backends[c->models[1].backend]);
    }
    memset(&r, 0, sizeof r);
    if (CHECK_INT(route_resolve(c, NULL, "gpt-4o", KIND_CHAT, &r), ROUTE_OK))
        CHECK(r.backend_model == c->models[2].backend_model); /* borrowed from the config */
    cfg_free(c);
}

TEST(route_default_per_kind)
{
    cfg_t *c = load("conf/route.conf");
    if (!c)
        return;
    /* Unknown names fall back to the kind's default; the requested name passes through
     * unless the default has a backend_model. */
    EXPECT_OK(c, NULL, "nonexistent", KIND_CHAT, 0, "echo", "nonexistent");
    EXPECT_OK(c, NULL, "nonexistent", KIND_COMPLETIONS, 0, "echo", "nonexistent");
    EXPECT_OK(c, NULL, "nonexistent", KIND_EMBEDDINGS, 6, "up", "intfloat/e5");
    EXPECT_OK(c, NULL, "", KIND_CHAT, 0, "echo", "");
    cfg_free(c);
}

TEST(route_not_found_without_default)
{
    cfg_t *c = load("conf/good_minimal.conf");
    if (!c)
        return;
    EXPECT_STATUS(c, NULL, "nonexistent", KIND_CHAT, ROUTE_NOT_FOUND);
    EXPECT_STATUS(c, NULL, "ech", KIND_CHAT, ROUTE_NOT_FOUND);
    EXPECT_STATUS(c, NULL, "echo2", KIND_CHAT, ROUTE_NOT_FOUND);
    EXPECT_STATUS(c, NULL, "nonexistent", KIND_EMBEDDINGS, ROUTE_NOT_FOUND);
    EXPECT_OK(c, NULL, "echo", KIND_CHAT, 0, "e", "echo");
    cfg_free(c);
}

TEST(route_wrong_kind)
{
    cfg_t *c = load("conf/route.conf");
    if (!c)
        return;
    /* Exact name that does not serve the kind: 400, not the default. */
    EXPECT_STATUS(c, NULL, "echo", KIND_EMBEDDINGS, ROUTE_WRONG_KIND);
    EXPECT_STATUS(c, NULL, "e5", KIND_CHAT, ROUTE_WRONG_KIND);
    EXPECT_STATUS(c, NULL, "gpt-4o", KIND_COMPLETIONS, ROUTE_WRONG_KIND);
    /* Only globs of another kind match: 400 too. */
    EXPECT_STATUS(c, NULL, "text-davinci-003", KIND_CHAT, ROUTE_WRONG_KIND);
    EXPECT_STATUS(c, NULL, "embed-large", KIND_COMPLETIONS, ROUTE_WRONG_KIND);
    EXPECT_STATUS(c, NULL, "gpt-4o-mini", KIND_EMBEDDINGS, ROUTE_WRONG_KIND);
    cfg_free(c);
}

TEST(route_key_restrictions)
{
    cfg_t *c = load("conf/route.conf");
    if (!c)
        return;
    const cfg_key_t *a = key_named(c, "a"), *b = key_named(c, "b"), *k = key_named(c, "c");
    if (!a || !b || !k) {
        cfg_free(c);
        return;
    }
    /* a: only "gpt-4o*". */
    EXPECT_OK(c, a, "gpt-4o", KIND_CHAT, 2, "up", "gpt-4o-2024-08-06");
    EXPECT_OK(c, a, "gpt-4o-mini", KIND_CHAT, 1, "up", "gpt-4o-mini");
    EXPECT_STATUS(c, a, "echo", KIND_CHAT, ROUTE_NOT_FOUND);
    EXPECT_STATUS(c, a, "gpt-3.5-turbo", KIND_CHAT, ROUTE_NOT_FOUND);
    EXPECT_STATUS(c, a, "nonexistent", KIND_CHAT, ROUTE_NOT_FOUND); /* not via the default */
    EXPECT_STATUS(c, a, "nonexistent", KIND_EMBEDDINGS, ROUTE_NOT_FOUND);
    /* A model the key may not use must not reveal itself with a 400. */
    EXPECT_STATUS(c, a, "echo", KIND_EMBEDDINGS, ROUTE_NOT_FOUND);
    EXPECT_STATUS(c, a, "text-davinci-003", KIND_CHAT, ROUTE_NOT_FOUND);
    /* ...but a model it may use still gets the 400. */
    EXPECT_STATUS(c, a, "gpt-4o", KIND_EMBEDDINGS, ROUTE_WRONG_KIND);

    /* b: no list = every model. */
    EXPECT_OK(c, b, "echo", KIND_CHAT, 0, "echo", "echo");
    EXPECT_OK(c, b, "gpt-3.5-turbo", KIND_CHAT, 3, "echo", "gpt-3.5-turbo");
    EXPECT_OK(c, b, "nonexistent", KIND_EMBEDDINGS, 6, "up", "intfloat/e5");
    EXPECT_STATUS(c, b, "echo", KIND_EMBEDDINGS, ROUTE_WRONG_KIND);

    /* c: "echo", "text-*", "chat-only". */
    EXPECT_OK(c, k, "echo", KIND_COMPLETIONS, 0, "echo", "echo");
    EXPECT_OK(c, k, "text-ada", KIND_COMPLETIONS, 4, "up", "text-ada");
    EXPECT_OK(c, k, "chat-only", KIND_CHAT, 7, "up", "chat-only");
    EXPECT_STATUS(c, k, "text-ada", KIND_CHAT, ROUTE_WRONG_KIND);
    EXPECT_STATUS(c, k, "chat-only", KIND_COMPLETIONS, ROUTE_WRONG_KIND);
    EXPECT_STATUS(c, k, "gpt-4o", KIND_CHAT, ROUTE_NOT_FOUND);
    EXPECT_STATUS(c, k, "e5", KIND_EMBEDDINGS, ROUTE_NOT_FOUND);
    /* The chat default ("echo") is a model c may use. */
    EXPECT_OK(c, k, "nonexistent", KIND_CHAT, 0, "echo", "nonexistent");
    /* The embeddings default ("e5") is not. */
    EXPECT_STATUS(c, k, "nonexistent", KIND_EMBEDDINGS, ROUTE_NOT_FOUND);

    /* d: "team-*". A name the key may use that no model matches falls to the
     * default, which the key may not use: it must not be served. */
    const cfg_key_t *d = key_named(c, "d");
    CHECK(d != NULL);
    if (d)
        EXPECT_STATUS(c, d, "team-anything", KIND_CHAT, ROUTE_NOT_FOUND);
    cfg_free(c);
}

TEST(route_key_allows_globs)
{
    cfg_t *c = load("conf/route.conf");
    if (!c)
        return;
    const cfg_key_t *a = key_named(c, "a"), *b = key_named(c, "b");
    CHECK(route_key_allows(NULL, "anything"));
    if (a) {
        CHECK(route_key_allows(a, "gpt-4o"));
        CHECK(route_key_allows(a, "gpt-4o-mini"));
        CHECK(!route_key_allows(a, "gpt-4"));
        CHECK(!route_key_allows(a, "echo"));
        CHECK(!route_key_allows(a, ""));
    }
    if (b) {
        CHECK(route_key_allows(b, "anything"));
        CHECK(route_key_allows(b, ""));
    }
    cfg_free(c);
}

TEST(route_authenticate_keys)
{
    cfg_t *c = load("conf/route.conf");
    if (!c)
        return;
    CHECK(route_authenticate(c, "sk-aaaaaaaa") == &c->keys[0]);
    CHECK(route_authenticate(c, "sk-bbbbbbbb") == &c->keys[1]);
    CHECK(route_authenticate(c, "sk-cccccccc") == &c->keys[2]);
    CHECK(route_authenticate(c, "sk-bbbbbbbc") == NULL);  /* last byte differs */
    CHECK(route_authenticate(c, "Sk-bbbbbbbb") == NULL);  /* first byte differs */
    CHECK(route_authenticate(c, "sk-bbbbbbb") == NULL);   /* a prefix */
    CHECK(route_authenticate(c, "sk-bbbbbbbbb") == NULL); /* an extension */
    CHECK(route_authenticate(c, "sk-bbbbbbbb ") == NULL);
    CHECK(route_authenticate(c, "x") == NULL);
    CHECK(route_authenticate(c, "") == NULL);
    CHECK(route_authenticate(c, NULL) == NULL);
    cfg_free(c);

    /* No keys configured: nothing authenticates (the API is open; callers skip auth). */
    c = load("conf/good_minimal.conf");
    if (!c)
        return;
    CHECK(route_authenticate(c, "sk-aaaaaaaa") == NULL);
    CHECK(route_authenticate(c, "") == NULL);
    cfg_free(c);
}
