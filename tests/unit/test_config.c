/* cfg_load / cfg_free (common/config.c). Paths are relative to tests/unit. */
#include "common/config.h"
#include "common/log.h"
#include "unit.h"

#include <sanitizer/lsan_interface.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static cfg_t *load_ok(const char *path)
{
    char err[1024] = "";
    cfg_t *cfg = cfg_load(path, err, sizeof err);
    CHECK_MSG(cfg != NULL, "cfg_load(%s) failed: %s", path, err);
    return cfg;
}

TEST(config_kind_names)
{
    CHECK_STR(cfg_kind_name(KIND_CHAT), "chat");
    CHECK_STR(cfg_kind_name(KIND_COMPLETIONS), "completions");
    CHECK_STR(cfg_kind_name(KIND_EMBEDDINGS), "embeddings");
    CHECK_STR(cfg_kind_name(0), "unknown");
    CHECK_STR(cfg_kind_name(KIND_CHAT | KIND_COMPLETIONS), "unknown");
}

TEST(config_minimal_defaults)
{
    long before = (long)time(NULL);
    cfg_t *c = load_ok("conf/good_minimal.conf");
    if (!c)
        return;
    CHECK_STR(c->path, "conf/good_minimal.conf");
    CHECK(c->loaded_at >= before && c->loaded_at <= (long)time(NULL));
    CHECK_STR(c->listen, "127.0.0.1:8080");
    CHECK_STR(c->listen_host, "127.0.0.1");
    CHECK_STR(c->listen_port, "8080");
    CHECK_INT(c->workers, 2);
    CHECK_INT(c->rlimit_nofile, 0); /* the hard limit */
    CHECK_STR(c->pidfile, "/run/airouter.pid");
    CHECK_INT(c->log_level, LOG_INFO);
    CHECK_STR(c->error_log, "");
    CHECK_STR(c->access_log, "");
    CHECK_INT(c->max_body_bytes, 10 * 1024 * 1024);
    CHECK_INT(c->max_event_bytes, 8 * 1024 * 1024);
    CHECK_INT(c->max_connections, 1024);
    CHECK_INT(c->idle_timeout, 60);
    CHECK_INT(c->drain_timeout, 30);
    CHECK(c->header_timeout == 10);
    CHECK_INT(c->min_body_rate, 1024);
    CHECK_INT(c->nkeys, 0);
    if (CHECK_INT(c->nbackends, 1)) {
        const cfg_backend_t *b = &c->backends[0];
        CHECK_STR(b->name, "e");
        CHECK_STR(b->type, "echo");
        CHECK_INT(b->kinds, KIND_CHAT | KIND_COMPLETIONS | KIND_MESSAGES);
        CHECK(b->url == NULL);
        CHECK(b->api_key == NULL);
        CHECK_INT(b->nheaders, 0);
        CHECK(!b->pass_client_key);
        CHECK(b->connect_timeout == 10);
        CHECK(b->first_byte_timeout == 300);
        CHECK(b->idle_timeout == 120);
        CHECK(b->timeout == 600);
        CHECK_INT(b->chunk_delay_ms, 0);
    }
    if (CHECK_INT(c->nmodels, 1)) {
        const cfg_model_t *m = &c->models[0];
        CHECK_STR(m->name, "echo");
        CHECK(!m->is_glob);
        CHECK_INT(m->backend, 0);
        CHECK(m->backend_model == NULL);
        CHECK_INT(m->kinds, KIND_CHAT | KIND_COMPLETIONS | KIND_MESSAGES); /* the backend's kinds */
        CHECK(!m->is_default);
        CHECK_INT(m->backend_stream, -1);
    }
    cfg_free(c);
}

TEST(config_full_every_key)
{
    setenv("UNIT_UP_KEY", "sk-up-secret", 1);
    setenv("UNIT_ADMIN_KEY", "sk-admin-0001", 1);
    unsetenv("UNIT_ENV_NAME"); /* header default "prod" */
    unsetenv("UNIT_OPT_KEY");  /* "${UNIT_OPT_KEY:-}": no api key */
    cfg_t *c = load_ok("conf/good_full.conf");
    unsetenv("UNIT_UP_KEY");
    unsetenv("UNIT_ADMIN_KEY");
    if (!c)
        return;
    CHECK_STR(c->listen, "[::1]:9090");
    CHECK_STR(c->listen_host, "::1");
    CHECK_STR(c->listen_port, "9090");
    CHECK_INT(c->workers, 4);
    CHECK_INT(c->rlimit_nofile, 65536);
    CHECK_STR(c->pidfile, "/tmp/airouter-unit.pid");
    CHECK_INT(c->log_level, LOG_DEBUG);
    CHECK_STR(c->error_log, "/tmp/airouter-unit-error.log");
    CHECK_STR(c->access_log, "off");
    CHECK_INT(c->max_body_bytes, 2048);
    CHECK_INT(c->max_event_bytes, 65536);
    CHECK_INT(c->max_connections, 10);
    CHECK_INT(c->idle_timeout, 5);
    CHECK_INT(c->drain_timeout, 0);
    CHECK(c->header_timeout == 2.5);
    CHECK_INT(c->min_body_rate, 0);

    if (CHECK_INT(c->nbackends, 3)) {
        const cfg_backend_t *e = &c->backends[0], *up = &c->backends[1], *opt = &c->backends[2];
        CHECK_STR(e->name, "echo");
        CHECK_STR(e->type, "echo");
        CHECK_INT(e->kinds, KIND_CHAT | KIND_COMPLETIONS | KIND_MESSAGES);
        CHECK_INT(e->chunk_delay_ms, 25);

        CHECK_STR(up->name, "up");
        CHECK_STR(up->type, "openai");
        CHECK_INT(up->kinds, KIND_ALL);
        CHECK_STR(up->url, "https://api.example.com/v1"); /* trailing slashes dropped */
        CHECK_STR(up->api_key, "sk-up-secret");
        if (CHECK_INT(up->nheaders, 2)) {
            CHECK_STR(up->headers[0], "X-Org: acme");
            CHECK_STR(up->headers[1], "X-Env: prod");
        }
        CHECK(up->pass_client_key);
        CHECK(up->connect_timeout == 1.5);
        CHECK(up->first_byte_timeout == 20);
        CHECK(up->idle_timeout == 7.25);
        CHECK(up->timeout == 30);
        CHECK_INT(up->chunk_delay_ms, 0);

        CHECK_STR(opt->name, "opt");
        CHECK_STR(opt->url, "http://localhost:8000/v1");
        CHECK(opt->api_key == NULL); /* empty after expansion = no key */
        CHECK(!opt->pass_client_key);
    }

    if (CHECK_INT(c->nmodels, 5)) {
        const cfg_model_t *m = c->models;
        CHECK_STR(m[0].name, "echo");
        CHECK(!m[0].is_glob);
        CHECK_INT(m[0].backend, 0);
        CHECK_INT(m[0].kinds, KIND_CHAT | KIND_MESSAGES); /* chat models serve messages too */
        CHECK(m[0].is_default);
        CHECK_INT(m[0].backend_stream, -1);
        CHECK(m[0].backend_model == NULL);

        CHECK_STR(m[1].name, "gpt-4o*");
        CHECK(m[1].is_glob);
        CHECK_INT(m[1].backend, 1);
        CHECK_INT(m[1].kinds, KIND_CHAT | KIND_COMPLETIONS | KIND_MESSAGES);
        CHECK(!m[1].is_default);
        CHECK_INT(m[1].backend_stream, 1);

        CHECK_STR(m[2].name, "fast");
        CHECK(!m[2].is_glob);
        CHECK_INT(m[2].backend, 1);
        CHECK_STR(m[2].backend_model, "gpt-4o-mini");
        CHECK_INT(m[2].kinds, KIND_ALL);
        CHECK_INT(m[2].backend_stream, 0);

        CHECK_STR(m[3].name, "embed-?");
        CHECK(m[3].is_glob);
        CHECK_INT(m[3].backend, 2);
        CHECK_INT(m[3].kinds, KIND_EMBEDDINGS);
        CHECK(m[3].is_default);

        CHECK_STR(m[4].name, "echo-text");
        CHECK_INT(m[4].backend, 0);
        CHECK_INT(m[4].kinds, KIND_COMPLETIONS);
        CHECK(m[4].is_default);
    }

    if (CHECK_INT(c->nkeys, 2)) {
        const cfg_key_t *k = c->keys;
        CHECK_STR(k[0].key, "sk-team-a-123");
        CHECK_STR(k[0].name, "team-a");
        if (CHECK_INT(k[0].nmodels, 2)) {
            CHECK_STR(k[0].models[0], "echo");
            CHECK_STR(k[0].models[1], "gpt-4o*");
        }
        CHECK_STR(k[1].key, "sk-admin-0001");
        CHECK_STR(k[1].name, "admin");
        CHECK_INT(k[1].nmodels, 0);
    }
    cfg_free(c);
}

TEST(config_large_integers_keep_their_value)
{
    cfg_t *c = load_ok("conf/good_large_integers.conf");
    if (!c)
        return;
    if (CHECK_INT(c->nkeys, 3)) {
        CHECK(c->keys[0].tpm == 5000000000L);
        CHECK(c->keys[0].rpm == 12);
        CHECK_STR(c->keys[0].key, "sk-5000000000");
        CHECK(c->keys[1].tpm == 0x100000000L);
        CHECK(c->keys[2].tpm == 2147483647L);
    }
    if (CHECK_INT(c->backends[0].nheaders, 1))
        CHECK_STR(c->backends[0].headers[0], "X-Note: 5000000000");
    cfg_free(c);
}

TEST(config_listen_any_address)
{
    cfg_t *c = load_ok("conf/good_listen_any.conf");
    if (!c)
        return;
    CHECK_STR(c->listen_host, "");
    CHECK_STR(c->listen_port, "8081");
    cfg_free(c);
}

TEST(config_env_default_used_when_unset_or_empty)
{
    static const char *vars[] = {"UNIT_LISTEN", "UNIT_URL", "UNIT_KEY", "UNIT_MODEL"};
    /* Unset: every default applies. */
    for (int i = 0; i < 4; i++)
        unsetenv(vars[i]);
    cfg_t *c = load_ok("conf/env_default.conf");
    if (c) {
        CHECK_STR(c->listen_port, "7070");
        CHECK_STR(c->backends[0].url, "http://fallback:9/v1");
        CHECK(c->backends[0].api_key == NULL);
        CHECK_STR(c->models[0].name, "m");
        cfg_free(c);
    }
    /* Set but empty: the defaults apply too. */
    for (int i = 0; i < 4; i++)
        setenv(vars[i], "", 1);
    c = load_ok("conf/env_default.conf");
    if (c) {
        CHECK_STR(c->listen_port, "7070");
        CHECK_STR(c->backends[0].url, "http://fallback:9/v1");
        CHECK(c->backends[0].api_key == NULL);
        CHECK_STR(c->models[0].name, "m");
        cfg_free(c);
    }
    /* Set: the environment wins. */
    setenv("UNIT_LISTEN", "0.0.0.0:7171", 1);
    setenv("UNIT_URL", "https://real.example/v1/", 1);
    setenv("UNIT_KEY", "sk-from-env", 1);
    setenv("UNIT_MODEL", "real-model", 1);
    c = load_ok("conf/env_default.conf");
    if (c) {
        CHECK_STR(c->listen_host, "0.0.0.0");
        CHECK_STR(c->listen_port, "7171");
        CHECK_STR(c->backends[0].url, "https://real.example/v1");
        CHECK_STR(c->backends[0].api_key, "sk-from-env");
        CHECK_STR(c->models[0].name, "real-model");
        cfg_free(c);
    }
    for (int i = 0; i < 4; i++)
        unsetenv(vars[i]);
}

/* ---- bad files: each fails with exactly this "FILE:LINE: reason" ---- */

static const struct {
    const char *file;
    const char *err;
} bad[] = {
    {"bad_syntax.conf", "conf/bad_syntax.conf:3: syntax error"},
    {"bad_top_key.conf", "conf/bad_top_key.conf:2: unknown key 'worker' in the top level"},
    {"bad_backend_key.conf", "conf/bad_backend_key.conf:6: unknown key 'urll' in backends[1]"},
    {"bad_model_key.conf", "conf/bad_model_key.conf:5: unknown key 'backend_name' in models[0]"},
    {"bad_log_key.conf", "conf/bad_log_key.conf:3: unknown key 'file' in log"},
    {"bad_limits_key.conf", "conf/bad_limits_key.conf:3: unknown key 'max_body' in limits"},
    {"bad_max_event_bytes.conf",
     "conf/bad_max_event_bytes.conf:2: 'max_event_bytes' must be between 1024 and 67108864"},
    {"bad_apikey_key.conf", "conf/bad_apikey_key.conf:5: unknown key 'model' in api_keys[0]"},
    {"bad_type_workers.conf", "conf/bad_type_workers.conf:3: 'workers' must be an integer"},
    {"bad_type_workers_range.conf",
     "conf/bad_type_workers_range.conf:3: 'workers' must be between 1 and 256"},
    {"bad_rlimit_nofile.conf",
     "conf/bad_rlimit_nofile.conf:3: 'rlimit_nofile' must be between 64 and 1073741824"},
    {"bad_type_bool.conf", "conf/bad_type_bool.conf:3: 'pass_client_key' must be true or false"},
    {"bad_type_seconds.conf", "conf/bad_type_seconds.conf:3: 'timeout' must be a number of seconds"},
    {"bad_type_seconds_zero.conf",
     "conf/bad_type_seconds_zero.conf:3: 'connect_timeout' must be more than 0 and at most 86400 "
     "seconds"},
    {"bad_header_timeout.conf",
     "conf/bad_header_timeout.conf:3: 'header_timeout' must be more than 0 and at most 86400 seconds"},
    {"bad_min_body_rate.conf", "conf/bad_min_body_rate.conf:3: 'min_body_rate' must be between 0 and 1073741824"},
    {"bad_type_string.conf", "conf/bad_type_string.conf:2: 'name' must be a string"},
    {"bad_type_headers.conf", "conf/bad_type_headers.conf:3: 'headers' must be a list of strings"},
    {"bad_type_kinds.conf", "conf/bad_type_kinds.conf:4: 'kinds' must be a list of strings"},
    {"bad_unknown_kind.conf",
     "conf/bad_unknown_kind.conf:4: unknown kind 'pictures' (known: chat, completions, embeddings, speech, "
     "transcriptions, translations, images, moderations, responses, messages)"},
    {"bad_empty_kinds.conf", "conf/bad_empty_kinds.conf:3: model 'm': 'kinds' is empty"},
    {"bad_type_log.conf", "conf/bad_type_log.conf:3: 'log' must be a group { ... }"},
    {"bad_log_level.conf", "conf/bad_log_level.conf:4: log level must be debug, info, warn or error"},
    {"bad_backends_group.conf",
     "conf/bad_backends_group.conf:1: 'backends' must be a list of groups: ( { ... }, ... )"},
    {"bad_no_backends.conf", "conf/bad_no_backends.conf: no 'backends' defined"},
    {"bad_no_models.conf", "conf/bad_no_models.conf: no 'models' defined"},
    {"bad_listen_noport.conf", "conf/bad_listen_noport.conf:4: listen '127.0.0.1' must be host:port"},
    {"bad_listen_emptyport.conf",
     "conf/bad_listen_emptyport.conf:1: listen 'localhost:': port must be 1-65535"},
    {"bad_listen_port_high.conf",
     "conf/bad_listen_port_high.conf:1: listen '127.0.0.1:65536': port must be 1-65535"},
    {"bad_listen_port_zero.conf",
     "conf/bad_listen_port_zero.conf:1: listen '0.0.0.0:0': port must be 1-65535"},
    {"bad_listen_port_text.conf",
     "conf/bad_listen_port_text.conf:1: listen '127.0.0.1:http': port must be 1-65535"},
    {"bad_listen_ipv6.conf", "conf/bad_listen_ipv6.conf:1: listen '[::1]8080' must be host:port"},
    {"bad_backend_type.conf",
     "conf/bad_backend_type.conf:4: backend 'tr': unknown type 'triton-grpc' (known: echo, openai, anthropic, triton)"},
    {"bad_backend_notype.conf", "conf/bad_backend_notype.conf:2: backend 'e' needs a 'type'"},
    {"bad_backend_noname.conf", "conf/bad_backend_noname.conf:3: backends[1] needs a 'name'"},
    {"bad_model_backend.conf",
     "conf/bad_model_backend.conf:5: model 'gpt': no backend named 'openai'"},
    {"bad_model_nobackend.conf", "conf/bad_model_nobackend.conf:3: model 'echo' needs a 'backend' (or a 'targets' list)"},
    {"bad_dup_backend.conf", "conf/bad_dup_backend.conf:4: backend name 'e' is used twice"},
    {"bad_dup_model.conf", "conf/bad_dup_model.conf:5: model name 'echo' is used twice"},
    {"bad_two_defaults.conf",
     "conf/bad_two_defaults.conf:6: model 'c': another model is already the default for chat"},
    {"bad_kinds_echo.conf",
     "conf/bad_kinds_echo.conf:4: model 'emb': backend 'e' (type echo) cannot serve embeddings requests"},
    {"bad_kinds_triton.conf",
     "conf/bad_kinds_triton.conf:4: model 'llm': backend 't' (type triton) cannot serve embeddings requests"},
    {"bad_openai_nourl.conf",
     "conf/bad_openai_nourl.conf:3: backend 'up' needs a 'url' starting with http:// or https://"},
    {"bad_openai_url_scheme.conf",
     "conf/bad_openai_url_scheme.conf:2: backend 'up' needs a 'url' starting with http:// or "
     "https://"},
    {"bad_header_colon.conf",
     "conf/bad_header_colon.conf:3: backend 'up': header 'X-Foo bar' must look like \"Name: "
     "value\""},
    {"bad_header_leading_colon.conf",
     "conf/bad_header_leading_colon.conf:3: backend 'up': header ': value' must look like \"Name: "
     "value\""},
    {"bad_missing_env.conf",
     "conf/bad_missing_env.conf:3: 'api_key': environment variable UNIT_SURELY_UNSET_VAR is not "
     "set"},
    {"bad_missing_env_list.conf",
     "conf/bad_missing_env_list.conf:4: 'headers': environment variable UNIT_SURELY_UNSET_TENANT "
     "is not set"},
    {"bad_short_key.conf",
     "conf/bad_short_key.conf:5: api key 'short': 'key' must be at least 8 characters"},
    {"bad_key_noname.conf",
     "conf/bad_key_noname.conf:4: api_keys[0] needs a 'name' (it is what the logs show)"},
    {"bad_dup_key.conf", "conf/bad_dup_key.conf:5: api key 'b' has the same key as 'a'"},
    {"does_not_exist.conf", "conf/does_not_exist.conf: cannot read file: No such file or directory"},
    {"bad_targets_and_backend.conf",
     "conf/bad_targets_and_backend.conf:3: model 'm': use either 'backend' or 'targets', not both"},
    {"bad_target_weight.conf", "conf/bad_target_weight.conf:4: 'weight' must be between 1 and 1000"},
    {"bad_strategy.conf",
     "conf/bad_strategy.conf:3: model 'm': strategy must be weighted, least_inflight or ordered"},
    {"bad_fallback_unknown.conf",
     "conf/bad_fallback_unknown.conf:3: model 'm': fallback 'nope' is not a configured model name (globs "
     "cannot be fallbacks)"},
    {"bad_fallback_kinds.conf",
     "conf/bad_fallback_kinds.conf:3: model 'm': fallback 'n' does not serve every kind this model serves"},
    {"bad_retry_on.conf",
     "conf/bad_retry_on.conf:3: retry_on: unknown condition '4xx' (known: connect, timeout, 5xx, 429)"},
    {"bad_target_key.conf", "conf/bad_target_key.conf:2: unknown key 'model' in model 'm' targets[0]"},
    {"bad_failure_ratio.conf", "conf/bad_failure_ratio.conf:3: 'failure_ratio' must be more than 0 and at most 1"},
    {"bad_min_requests.conf", "conf/bad_min_requests.conf:3: 'min_requests' must be between 1 and 1000000"},
    {"bad_passthrough_dots.conf",
     "conf/bad_passthrough_dots.conf:4: passthrough[0]: 'prefix' must be a path under /v1/, like \"/v1/files\", "
     "without '.' or '..' segments, escapes or characters that cannot be forwarded"},
    /* from the schema tables: an unknown key in each kind of group */
    {"bad_health_key.conf", "conf/bad_health_key.conf:3: unknown key 'every' in backend 'o' health_check"},
    {"bad_price_key.conf", "conf/bad_price_key.conf:3: unknown key 'outptu' in price"},
    {"bad_tensor_key.conf", "conf/bad_tensor_key.conf:3: unknown key 'textinput' in model 'm' tensor_names"},
    {"bad_format_key.conf", "conf/bad_format_key.conf:3: unknown key 'user_prefx' in prompt_formats[0]"},
    {"bad_cluster_key.conf", "conf/bad_cluster_key.conf:5: unknown key 'timeout' in cluster"},
    {"bad_budget_key.conf", "conf/bad_budget_key.conf:4: unknown key 'per' in budget"},
    {"bad_passthrough_key.conf", "conf/bad_passthrough_key.conf:3: unknown key 'to' in passthrough[0]"},
    /* wrong types, ranges and enum names */
    {"bad_type_enum.conf", "conf/bad_type_enum.conf:3: 'strategy' must be a string"},
    {"bad_type_amount.conf", "conf/bad_type_amount.conf:3: 'input' must be a number"},
    {"bad_tracing_range.conf", "conf/bad_tracing_range.conf:4: 'queue_size' must be between 1 and 1000000"},
    {"bad_budget_range.conf", "conf/bad_budget_range.conf:5: 'usd' must be from 0 to 1e+07"},
    {"bad_on_error.conf", "conf/bad_on_error.conf:4: cluster.on_error must be \"local\", \"allow\" or \"deny\""},
    {"bad_budget_period.conf",
     "conf/bad_budget_period.conf:5: budget.period must be \"day\", \"week\", \"month\" or \"total\""},
    {"bad_format_system.conf", "conf/bad_format_system.conf:4: prompt format 'mine': 'system' must be native or in_user"},
    {"bad_profile.conf", "conf/bad_profile.conf:3: model 'm': profile must be trtllm or vllm"},
};

static void load_bad(const char *file, const char *want)
{
    char path[256], err[1024];
    snprintf(path, sizeof path, "conf/%s", file);
    strcpy(err, "(err not written)");
    cfg_t *c = cfg_load(path, err, sizeof err);
    CHECK_MSG(c == NULL, "%s: loaded, but should fail with: %s", path, want);
    cfg_free(c);
    CHECK_MSG(strcmp(err, want) == 0, "%s:\n    got:  %s\n    want: %s", path, err, want);
}

TEST(config_bad_files)
{
    unsetenv("UNIT_SURELY_UNSET_VAR");
    unsetenv("UNIT_SURELY_UNSET_TENANT");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        load_bad(bad[i].file, bad[i].err);
}

TEST(config_error_buffer_truncates_safely)
{
    char err[16];
    memset(err, 'x', sizeof err);
    cfg_t *c = cfg_load("conf/bad_top_key.conf", err, sizeof err);
    CHECK(c == NULL);
    CHECK(memchr(err, '\0', sizeof err) != NULL);
    CHECK_STR(err, "conf/bad_top_ke");
}

TEST(config_free_null)
{
    cfg_free(NULL); /* no crash */
    CHECK(1);
}

/* ---- leaks on error paths (the master re-validates on every HUP) ---- */

static void load_every_bad_then_leak_check(void)
{
    char err[1024];
    unsetenv("UNIT_SURELY_UNSET_VAR");
    unsetenv("UNIT_SURELY_UNSET_TENANT");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "conf/%s", bad[i].file);
        cfg_free(cfg_load(path, err, sizeof err));
    }
    _exit(__lsan_do_recoverable_leak_check() ? 1 : 0);
}

TEST(config_bad_files_do_not_leak)
{
    int rc = unit_run_child(load_every_bad_then_leak_check);
    CHECK_MSG(rc == 0, "loading the bad files leaked memory (LeakSanitizer report above), rc=%d",
              rc);
}

static void load_log_leak_then_leak_check(void)
{
    char err[1024];
    cfg_t *c = cfg_load("conf/bad_log_leak.conf", err, sizeof err);
    if (c || strcmp(err, "conf/bad_log_leak.conf:5: 'error_log' must be a string") != 0)
        _exit(2);
    _exit(__lsan_do_recoverable_leak_check() ? 1 : 0);
}

TEST(config_log_error_after_level_does_not_leak)
{
    /* log.level is read into a temporary; a later error in the same group
     * (error_log/access_log) must not leak it. */
    int rc = unit_run_child(load_log_leak_then_leak_check);
    CHECK_MSG(rc != 2, "bad_log_leak.conf did not fail with the expected message");
    CHECK_MSG(rc == 0, "cfg_load leaked log.level on a later error in 'log' (rc=%d)", rc);
}

static void load_good_then_leak_check(void)
{
    char err[1024];
    setenv("UNIT_UP_KEY", "sk-up-secret", 1);
    setenv("UNIT_ADMIN_KEY", "sk-admin-0001", 1);
    cfg_free(cfg_load("conf/good_full.conf", err, sizeof err));
    cfg_free(cfg_load("conf/good_minimal.conf", err, sizeof err));
    _exit(__lsan_do_recoverable_leak_check() ? 1 : 0);
}

TEST(config_good_files_do_not_leak)
{
    CHECK_INT(unit_run_child(load_good_then_leak_check), 0);
}

TEST(config_resilience_keys)
{
    char err[1024] = "";
    cfg_t *c = cfg_load("conf/good_resilience.conf", err, sizeof err);
    CHECK_MSG(c != NULL, "good_resilience.conf: %s", err);
    if (!c)
        return;
    const cfg_model_t *m = &c->models[0];
    CHECK_INT(m->ntargets, 2);
    CHECK_INT(m->targets[0].weight, 3);
    CHECK_INT(m->targets[1].weight, 1);
    CHECK_STR(m->targets[0].backend_model, "x");
    CHECK(m->targets[1].backend_model == NULL);
    CHECK_INT(m->backend, 0); /* the shorthand fields mirror the first target */
    CHECK_STR(m->backend_model, "x");
    CHECK_INT(m->strategy, STRATEGY_LEAST_INFLIGHT);
    CHECK_INT(m->nfallbacks, 1);
    CHECK_INT(m->fallbacks[0], 1);
    CHECK_INT((int)m->kinds, (int)(KIND_CHAT | KIND_COMPLETIONS | KIND_MESSAGES)); /* what both targets serve */
    CHECK_INT(c->retry.attempts, 4);
    CHECK_INT((int)c->retry.retry_on, RETRY_ON_5XX);
    CHECK_INT(c->retry.backoff_ms, 50);
    CHECK_INT(c->retry.max_backoff_ms, 400);
    CHECK(c->retry.deadline == 30);
    CHECK(c->retry.attempts_header);
    CHECK_INT(c->circuit_failures, 3);
    CHECK(c->circuit_cooldown == 2.5);
    CHECK(c->circuit_failure_ratio == 0.25);
    CHECK(c->circuit_window == 30);
    CHECK_INT(c->circuit_min_requests, 8);
    CHECK(c->hide_unavailable_models);
    CHECK_INT((int)c->keys[0].rpm, 10);
    CHECK_INT((int)c->keys[0].tpm, 5000);
    CHECK_INT(c->keys[0].max_concurrent, 2);
    cfg_free(c);

    /* Defaults when the groups are absent. */
    c = cfg_load("conf/good_minimal.conf", err, sizeof err);
    CHECK_MSG(c != NULL, "good_minimal.conf: %s", err);
    if (!c)
        return;
    CHECK_INT(c->retry.attempts, 2);
    CHECK_INT((int)c->retry.retry_on, RETRY_ON_CONNECT | RETRY_ON_TIMEOUT | RETRY_ON_5XX | RETRY_ON_429);
    CHECK_INT(c->circuit_failures, 5);
    CHECK(c->circuit_failure_ratio == 0); /* off */
    CHECK(c->circuit_window == 60);
    CHECK_INT(c->circuit_min_requests, 20);
    CHECK_INT(c->models[0].ntargets, 1);
    CHECK_INT(c->models[0].strategy, STRATEGY_WEIGHTED);
    CHECK(!c->hide_unavailable_models);
    cfg_free(c);
}

TEST(config_empty_metrics_token_keeps_grpc_listen)
{
    char err[1024] = "";
    cfg_t *c = cfg_load("conf/good_grpc_empty_token.conf", err, sizeof err);
    CHECK_MSG(c != NULL, "good_grpc_empty_token.conf: %s", err);
    if (!c)
        return;
    CHECK(c->metrics_token == NULL); /* "" means no token */
    CHECK_STR(c->grpc_listen, "127.0.0.1:50051");
    cfg_free(c);
}

/* A Triton model serves chat and completions (and messages, through chat) only: without 'kinds'
 * those, never embeddings. */
TEST(config_triton_default_kinds)
{
    char err[1024] = "";
    cfg_t *c = cfg_load("conf/prompt_custom.conf", err, sizeof err);
    if (!CHECK_MSG(c != NULL, "cfg_load(conf/prompt_custom.conf): %s", err))
        return;
    for (int i = 0; i < c->nmodels; i++)
        CHECK_MSG(c->models[i].kinds == (KIND_CHAT | KIND_COMPLETIONS | KIND_MESSAGES), "model %s: kinds 0x%x", c->models[i].name,
                  c->models[i].kinds);
    cfg_free(c);
}

/* Defaults come from the tables: an empty group gets every default, and a group whose defaults
 * apply only when written (health_check, price) gets them once it is. */
TEST(config_group_defaults)
{
    cfg_t *c = load_ok("conf/good_group_defaults.conf");
    if (!c)
        return;
    CHECK_INT(c->retry.attempts, 2);
    CHECK_INT(c->retry.retry_on, RETRY_ON_CONNECT | RETRY_ON_TIMEOUT | RETRY_ON_5XX | RETRY_ON_429);
    CHECK_INT(c->retry.backoff_ms, 100);
    CHECK_INT(c->retry.max_backoff_ms, 2000);
    CHECK(c->retry.deadline == 120);
    CHECK(!c->retry.attempts_header);
    CHECK(c->cluster.redis == NULL);
    CHECK_STR(c->cluster.key_prefix, "airouter:");
    CHECK_INT(c->cluster.on_error, CLUSTER_ON_ERROR_LOCAL);
    CHECK_INT(c->cluster.timeout_ms, 5);
    CHECK_INT(c->cluster.hosts, 1);
    CHECK_INT(c->circuit_failures, 5);
    CHECK(c->circuit_failure_ratio == 0);
    CHECK_STR(c->service_name, "airouter");
    CHECK_INT(c->trace_queue_size, 2048);
    if (CHECK_INT(c->nbackends, 1)) {
        CHECK_STR(c->backends[0].health_path, "/models");
        CHECK(c->backends[0].health_interval == 10);
        CHECK(c->backends[0].health_timeout == 2);
        CHECK(c->backends[0].stream_usage);
    }
    if (CHECK_INT(c->nmodels, 1)) {
        const cfg_model_t *m = &c->models[0];
        CHECK(m->priced);
        CHECK(m->price_input == 2.5);
        CHECK(m->price_output == 0);
        CHECK(m->price_cached_input == 2.5); /* as input */
        CHECK_INT(m->strategy, STRATEGY_WEIGHTED);
        CHECK_INT(m->backend_stream, -1);
        CHECK_INT(m->batch_dim, -1);
        CHECK_INT(m->targets[0].weight, 1);
    }
    cfg_free(c);
    c = load_ok("conf/good_minimal.conf"); /* health_check absent: no check, no defaults */
    if (c && CHECK_INT(c->nbackends, 1)) {
        CHECK(c->backends[0].health_path == NULL);
        CHECK(c->backends[0].health_interval == 0);
        CHECK(!c->models[0].priced);
    }
    cfg_free(c);
}
