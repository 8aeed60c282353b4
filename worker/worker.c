#include "worker/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/backend/backend.h"
#include "worker/core/cluster.h"
#include "worker/core/health.h"
#include "worker/core/trace.h"
#include "worker/grpc/grpc_api.h"
#include "worker/http/api.h"
#include "worker/http/gateway.h"
#include "worker/http/http.h"
#include "worker/http/messages.h"
#include "worker/http/ops.h"
#include "worker/http/proxy.h"

static bool passthrough_rule_matches(const char *path) { return proxy_match(path) != NULL; }

#define API (HTTP_ROUTE_KEY | HTTP_ROUTE_LIMITED)
/* What the HTTP server serves: the paths first, in this order; a passthrough rule takes what
 * none of them does. */
static const http_route_t routes[] = {
    {"/health", false, HTTP_GET, HTTP_ROUTE_OPS, ops_health, NULL},
    {"/ready", false, HTTP_GET, 0, ops_ready, NULL},
    {"/metrics", false, HTTP_GET, HTTP_ROUTE_METRICS, ops_metrics, NULL},
    {"/v1/chat/completions", false, HTTP_POST, API, api_chat_completions, NULL},
    {"/v1/completions", false, HTTP_POST, API, api_completions, NULL},
    {"/v1/embeddings", false, HTTP_POST, API, api_embeddings, NULL},
    {"/v1/models", false, HTTP_GET, HTTP_ROUTE_KEY, api_models_list, NULL},
    {"/v1/models/", true, HTTP_GET, HTTP_ROUTE_KEY, api_model_get, NULL},
    {"/v1/audio/speech", false, HTTP_POST, API, proxy_speech, NULL},
    {"/v1/audio/transcriptions", false, HTTP_POST, API, proxy_transcriptions, NULL},
    {"/v1/audio/translations", false, HTTP_POST, API, proxy_translations, NULL},
    {"/v1/images/generations", false, HTTP_POST, API, proxy_image_generations, NULL},
    {"/v1/images/edits", false, HTTP_POST, API, proxy_image_edits, NULL},
    {"/v1/images/variations", false, HTTP_POST, API, proxy_image_variations, NULL},
    {"/v1/moderations", false, HTTP_POST, API, proxy_moderations, NULL},
    {"/v1/responses", false, HTTP_POST, API, proxy_responses, NULL},
    {"/v1/responses/", true, HTTP_GET | HTTP_POST | HTTP_DELETE, API, proxy_response_by_id, NULL},
    {"/v1/messages", false, HTTP_POST, API | HTTP_ROUTE_ANTHROPIC, messages_create, NULL},
    {"/v1/messages/count_tokens", false, HTTP_POST, API | HTTP_ROUTE_ANTHROPIC, messages_count_tokens, NULL},
    {"/generate", false, HTTP_POST, API, gateway_generate, NULL},
    {"/stream", false, HTTP_POST, API, gateway_stream, NULL},
    {NULL, false, HTTP_ANY, API, proxy_passthrough, passthrough_rule_matches},
};
#define NROUTES ((int)(sizeof routes / sizeof routes[0]))

/* Sanitizer builds: gcc says __SANITIZE_ADDRESS__, clang __has_feature(address_sanitizer). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WORKER_LEAK_CHECK 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WORKER_LEAK_CHECK 1
#endif
#ifdef WORKER_LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

/* A worker ends with _exit() (a forked child must not run the master's atexit work), which
 * skips LeakSanitizer's check at exit; after a graceful stop everything the worker allocated
 * has been freed, so the ASan build checks here. Leaks are reported (log_path) and end the
 * worker with LeakSanitizer's exit code. */
static void leak_check(void)
{
#ifdef WORKER_LEAK_CHECK
    __lsan_do_leak_check();
#endif
}

int worker_run(const cfg_t *cfg, int listen_fd, int metrics_fd, int ready_fd, pid_t master_pid)
{
    /* Die with the master: no orphans serving an old config. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid)
        return 1;

    /* Every thread (MHD's included) inherits this mask; the main thread takes the
     * signals synchronously below, so no handler runs in a request thread. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)(time(NULL) ^ getpid()));

    cluster_init(cfg);
    if (be_worker_init(cfg) < 0 || trace_start(cfg) < 0 || health_start(cfg) < 0 ||
        http_start(cfg, routes, NROUTES, listen_fd, metrics_fd) < 0 || grpc_api_start(cfg) < 0) {
        log_error("worker start-up failed");
        return 2;
    }
    char one = '1';
    if (write(ready_fd, &one, 1) < 0)
        log_warn("cannot tell the master this worker is ready: %s", strerror(errno));
    close(ready_fd);

    for (;;) {
        struct timespec tick = {1, 0};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &tick);
        if (sig < 0) {
            if (getppid() != master_pid) {
                log_warn("master is gone: worker exiting");
                _exit(0);
            }
            continue;
        }
        if (sig == SIGUSR1) {
            log_reopen();
        } else if (sig == SIGQUIT) {
            log_debug("graceful stop: draining %u request(s)", http_active_requests());
            grpc_api_quiesce(); /* both APIs stop taking work, then both drain */
            time_t drain_start = time(NULL);
            /* the master marks the QUIT of a whole-service stop (no other worker takes over) */
            bool final = info.si_code == SI_QUEUE && info.si_value.sival_int == WORKER_QUIT_FINAL;
            http_drain_and_stop(final);
            int left = cfg->drain_timeout - (int)(time(NULL) - drain_start); /* one deadline for both */
            grpc_api_stop(left > 0 ? left : 0);
            health_stop();
            trace_stop(); /* after the drain: the last requests' spans are queued */
            be_worker_cleanup();
            cluster_shutdown();
            leak_check();
            return 0;
        } else if (sig == SIGTERM || sig == SIGINT) {
            _exit(0); /* fast stop: in-flight requests are cut */
        }
    }
}
