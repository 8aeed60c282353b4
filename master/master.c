#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/state.h"
#include "worker/worker.h"
#include "master/pidfile.h"

#define MAX_SLOTS 1024
#define RETIRE_WAIT_MS 10000      /* longest wait for a new generation before retiring the old */
#define FAST_STOP_WAIT_MS 5000
#define STARTUP_GRACE_MS 1000     /* dying sooner than this after start counts as a start-up failure */
#define BACKOFF_MAX_MS 30000
#define STATE_SNAPSHOT_MS 2000     /* how often budgets' spend is written to the state file */

typedef struct {
    pid_t pid;
    unsigned gen;
    int ready_fd;       /* read end of the worker's ready pipe, -1 once read */
    bool ready;
    bool stopping;      /* told to stop: do not replace when it exits */
    int met_slot;       /* its in-flight gauge in the shared metrics */
    uint64_t started_ms;
} slot_t;

static volatile sig_atomic_t got_hup, got_ttin, got_ttou, got_quit, got_term, got_usr1, got_chld;

static slot_t slots[MAX_SLOTS];
static int nslots;
static cfg_t *cfg;
static int listen_fd = -1;
static int old_listen_fd = -1;   /* previous generation's socket, until it is retired */
static int metrics_fd = -1;      /* separate /metrics socket, or -1 */
static bool met_slot_used[MET_WORKERS];
static unsigned generation = 1;
static int desired;
static int override;
static unsigned startup_failures;
static uint64_t next_spawn_ms;
static bool retire_pending;
static uint64_t retire_deadline;
static enum { RUNNING, STOPPING_GRACEFUL, STOPPING_FAST } state = RUNNING;
static uint64_t stop_deadline;

static void on_signal(int sig)
{
    switch (sig) {
    case SIGHUP: got_hup = 1; break;
    case SIGTTIN: got_ttin = 1; break;
    case SIGTTOU: got_ttou = 1; break;
    case SIGQUIT: got_quit = 1; break;
    case SIGTERM:
    case SIGINT: got_term = 1; break;
    case SIGUSR1: got_usr1 = 1; break;
    case SIGCHLD: got_chld = 1; break;
    }
}

static const int handled_signals[] = {SIGHUP, SIGTTIN, SIGTTOU, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGCHLD};
#define NHANDLED (int)(sizeof handled_signals / sizeof handled_signals[0])

int master_bind(const char *listen_spec, const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        log_error("listen %s: %s", listen_spec, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        log_error("cannot listen on %s: %s", listen_spec, strerror(err));
    return fd;
}

static int live_workers(unsigned gen)
{
    int n = 0;
    for (int i = 0; i < nslots; i++)
        if (slots[i].gen == gen && !slots[i].stopping)
            n++;
    return n;
}

static void spawn_worker(void)
{
    if (nslots >= MAX_SLOTS) {
        log_error("too many worker processes (%d): not starting another", nslots);
        return;
    }
    int met_slot = 0;
    while (met_slot < MET_WORKERS - 1 && met_slot_used[met_slot])
        met_slot++;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        log_error("pipe: %s", strerror(errno));
        return;
    }
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        for (int i = 0; i < nslots; i++)
            if (slots[i].ready_fd >= 0)
                close(slots[i].ready_fd);
        if (old_listen_fd >= 0)
            close(old_listen_fd);
        for (int i = 0; i < NHANDLED; i++)
            signal(handled_signals[i], SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        met_set_worker_slot(met_slot);
        st_set_worker_slot(met_slot);
        _exit(worker_run(cfg, listen_fd, metrics_fd, p[1], master));
    }
    close(p[1]);
    met_slot_used[met_slot] = true;
    slots[nslots++] = (slot_t){.pid = pid, .gen = generation, .ready_fd = p[0], .started_ms = clock_now_ms(),
                               .met_slot = met_slot};
    met_set_workers(nslots);
    log_info("worker %d started (generation %u)", (int)pid, generation);
}

/* value: queued with the signal (WORKER_QUIT_FINAL for a whole-service graceful stop), else 0. */
static void signal_workers(int sig, bool mark_stopping, unsigned below_gen, int value)
{
    for (int i = 0; i < nslots; i++) {
        if (slots[i].gen >= below_gen || (mark_stopping && slots[i].stopping && sig != SIGTERM))
            continue;
        if (value)
            sigqueue(slots[i].pid, sig, (union sigval){.sival_int = value});
        else
            kill(slots[i].pid, sig);
        if (mark_stopping)
            slots[i].stopping = true;
    }
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i;
        for (i = 0; i < nslots && slots[i].pid != pid; i++)
            ;
        if (i == nslots)
            continue;
        slot_t s = slots[i];
        if (s.ready_fd >= 0)
            close(s.ready_fd);
        slots[i] = slots[--nslots];
        met_clear_worker(s.met_slot); /* a killed worker's requests are no longer in flight */
        st_clear_worker(s.met_slot);
        met_slot_used[s.met_slot] = false;
        met_set_workers(nslots);
        if (WIFSIGNALED(status))
            log_msg(s.stopping ? LOG_INFO : LOG_WARN, "worker %d killed by signal %d", (int)pid, WTERMSIG(status));
        else
            log_msg(s.stopping ? LOG_INFO : LOG_WARN, "worker %d exited with status %d", (int)pid,
                    WEXITSTATUS(status));
        if (s.stopping || state != RUNNING || s.gen != generation)
            continue;
        met_worker_restarted();
        uint64_t now = clock_now_ms();
        if (!s.ready || now - s.started_ms < STARTUP_GRACE_MS) {
            startup_failures++;
            uint64_t delay = 100u << (startup_failures > 9 ? 9 : startup_failures - 1);
            if (delay > BACKOFF_MAX_MS)
                delay = BACKOFF_MAX_MS;
            next_spawn_ms = now + delay;
            log_error("worker start-up failing, next attempt in %llu ms", (unsigned long long)delay);
        } else {
            startup_failures = 0;
            next_spawn_ms = now; /* replaced at once */
        }
    }
}

/* Sets the open-file limit the workers inherit (each stream holds a client and a backend
 * socket): to rlimit_nofile, or by default to the hard limit. A value above the hard limit
 * raises that too, which needs privilege; when that fails the hard limit is used. */
static void set_nofile_limit(const cfg_t *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_warn("cannot read the open-file limit: %s", strerror(errno));
        return;
    }
    rlim_t want = c->rlimit_nofile > 0 ? (rlim_t)c->rlimit_nofile : rl.rlim_max;
    struct rlimit next = {want, want > rl.rlim_max ? want : rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &next) < 0) {
        int err = errno;
        next = (struct rlimit){rl.rlim_max, rl.rlim_max};
        if (want > rl.rlim_max && setrlimit(RLIMIT_NOFILE, &next) == 0)
            log_warn("cannot raise the open-file limit to %llu (rlimit_nofile): %s; using the hard limit %llu",
                     (unsigned long long)want, strerror(err), (unsigned long long)rl.rlim_max);
        else
            log_warn("cannot set the open-file limit to %llu: %s; it stays at %llu", (unsigned long long)want,
                     strerror(err), (unsigned long long)rl.rlim_cur);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    log_info("open-file limit per worker: %llu", (unsigned long long)rl.rlim_cur);
    /* a stream holds two descriptors; a few dozen more serve the worker itself */
    unsigned long long need = 2ull * (unsigned long long)c->max_connections + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn("open-file limit %llu is below the %llu that limits.max_connections = %d may need",
                 (unsigned long long)rl.rlim_cur, need, c->max_connections);
}

static void reload(void)
{
    char err[1024];
    cfg_t *next = cfg_load(cfg->path, err, sizeof err);
    if (!next) {
        log_error("reload: configuration %s; keeping current workers", err);
        met_reload(false);
        return;
    }
    int fd = listen_fd;
    if (strcmp(next->listen, cfg->listen) != 0) {
        fd = master_bind(next->listen, next->listen_host, next->listen_port);
        if (fd < 0) {
            log_error("reload: cannot listen on %s; keeping current workers", next->listen);
            cfg_free(next);
            met_reload(false);
            return;
        }
    }
    if ((next->metrics_listen == NULL) != (cfg->metrics_listen == NULL) ||
        (next->metrics_listen && strcmp(next->metrics_listen, cfg->metrics_listen) != 0))
        log_warn("reload: a change of metrics.listen takes effect at the next restart");
    /* The workers serve /metrics on the socket bound at start, whatever the new file says. */
    free(next->metrics_listen);
    next->metrics_listen = cfg->metrics_listen ? strdup(cfg->metrics_listen) : NULL;
    met_assign_slots(next);
    st_assign_slots(next);
    if (log_open(next->log_level, next->error_log, next->access_log) < 0)
        log_error("reload: cannot open a log file: %s", strerror(errno));
    if (fd != listen_fd) {
        if (old_listen_fd >= 0)
            close(old_listen_fd);
        old_listen_fd = listen_fd;
        listen_fd = fd;
    }
    cfg_free(cfg);
    cfg = next;
    set_nofile_limit(cfg);
    generation++;
    met_reload(true);
    met_set_generation(generation);
    desired = override ? override : cfg->workers;
    startup_failures = 0;
    next_spawn_ms = 0;
    for (int i = 0; i < desired; i++)
        spawn_worker();
    retire_pending = true;
    retire_deadline = clock_now_ms() + RETIRE_WAIT_MS;
    log_info("reload: generation %u started", generation);
}

/* Once the new generation serves (or the wait ran out), drain the old ones. */
static void retire_old_generations(void)
{
    bool all_ready = true;
    for (int i = 0; i < nslots; i++)
        if (slots[i].gen == generation && !slots[i].ready)
            all_ready = false;
    if (!all_ready && clock_now_ms() < retire_deadline)
        return;
    signal_workers(SIGQUIT, true, generation, 0);
    retire_pending = false;
    if (old_listen_fd >= 0) {
        close(old_listen_fd);
        old_listen_fd = -1;
    }
}

static void read_ready_pipes(struct pollfd *fds, int nfds, const int *slot_of)
{
    for (int k = 0; k < nfds; k++) {
        if (!fds[k].revents)
            continue;
        slot_t *s = &slots[slot_of[k]];
        char c;
        ssize_t r = read(s->ready_fd, &c, 1);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r == 1)
            s->ready = true;
        close(s->ready_fd);
        s->ready_fd = -1;
    }
}

static void begin_stop(bool graceful)
{
    state = graceful ? STOPPING_GRACEFUL : STOPPING_FAST;
    uint64_t wait = graceful ? (uint64_t)cfg->drain_timeout * 1000u + 5000u : FAST_STOP_WAIT_MS;
    stop_deadline = clock_now_ms() + wait;
    log_info("%s stop: stopping %d worker(s)", graceful ? "graceful" : "fast", nslots);
    signal_workers(graceful ? SIGQUIT : SIGTERM, true, UINT32_MAX, graceful ? WORKER_QUIT_FINAL : 0);
    if (listen_fd >= 0)
        close(listen_fd);
    if (old_listen_fd >= 0)
        close(old_listen_fd);
    if (metrics_fd >= 0)
        close(metrics_fd);
    listen_fd = old_listen_fd = metrics_fd = -1;
}

int master_run(cfg_t *c, int fd, int mfd, int workers_override, const char *pidfile)
{
    cfg = c;
    listen_fd = fd;
    metrics_fd = mfd;
    met_assign_slots(cfg);
    st_assign_slots(cfg);
    st_budget_load(cfg->state_file, cfg); /* a restart must not hand every key a fresh period */
    uint64_t next_snapshot = clock_now_ms() + STATE_SNAPSHOT_MS;
    met_set_generation(generation);
    override = workers_override;
    desired = override ? override : cfg->workers;
    set_nofile_limit(cfg);

    sigset_t block, orig;
    sigemptyset(&block);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NHANDLED; i++) {
        sigaddset(&block, handled_signals[i]);
        sigaction(handled_signals[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    /* Signals are only delivered inside ppoll below: handlers just set flags and the
     * loop acts on them, with no race between checking and sleeping. */
    sigprocmask(SIG_BLOCK, &block, &orig);
    sigset_t waitmask = orig;
    for (int i = 0; i < NHANDLED; i++)
        sigdelset(&waitmask, handled_signals[i]);

    log_info("airouter master %d listening on %s with %d worker(s)", (int)getpid(), cfg->listen, desired);
    for (;;) {
        if (got_chld) {
            got_chld = 0;
            reap();
        }
        if (got_term && state != STOPPING_FAST) {
            got_term = 0;
            begin_stop(false);
        }
        if (got_quit && state == RUNNING) {
            got_quit = 0;
            begin_stop(true);
        }
        if (got_usr1) {
            got_usr1 = 0;
            log_reopen();
            signal_workers(SIGUSR1, false, UINT32_MAX, 0);
        }
        if (state != RUNNING) {
            if (nslots == 0)
                break;
            if (clock_now_ms() >= stop_deadline) {
                log_warn("workers did not stop in time: killing %d", nslots);
                signal_workers(SIGKILL, false, UINT32_MAX, 0);
                stop_deadline = clock_now_ms() + FAST_STOP_WAIT_MS;
            }
        } else {
            if (got_hup) {
                got_hup = 0;
                reload();
            }
            if (got_ttin) {
                got_ttin = 0;
                if (desired < 256)
                    desired++;
                log_info("workers: %d", desired);
            }
            if (got_ttou) {
                got_ttou = 0;
                if (desired > 1) {
                    desired--;
                    /* Retire the newest worker of the current generation. */
                    int pick = -1;
                    for (int i = 0; i < nslots; i++)
                        if (slots[i].gen == generation && !slots[i].stopping &&
                            (pick < 0 || slots[i].started_ms >= slots[pick].started_ms))
                            pick = i;
                    if (pick >= 0 && live_workers(generation) > desired) {
                        kill(slots[pick].pid, SIGQUIT);
                        slots[pick].stopping = true;
                    }
                }
                log_info("workers: %d", desired);
            }
            uint64_t now = clock_now_ms();
            /* The back-off ends once a worker has stayed up past the start-up grace. */
            for (int i = 0; startup_failures && i < nslots; i++)
                if (slots[i].gen == generation && slots[i].ready && now - slots[i].started_ms >= STARTUP_GRACE_MS)
                    startup_failures = 0;
            while (live_workers(generation) < desired && now >= next_spawn_ms && nslots < MAX_SLOTS)
                spawn_worker();
            if (retire_pending)
                retire_old_generations();
        }

        if (cfg->state_file && clock_now_ms() >= next_snapshot) {
            st_budget_save(cfg->state_file, cfg);
            next_snapshot = clock_now_ms() + STATE_SNAPSHOT_MS;
        }
        struct pollfd fds[MAX_SLOTS];
        int slot_of[MAX_SLOTS], nfds = 0;
        for (int i = 0; i < nslots; i++)
            if (slots[i].ready_fd >= 0) {
                fds[nfds] = (struct pollfd){.fd = slots[i].ready_fd, .events = POLLIN};
                slot_of[nfds++] = i;
            }
        uint64_t now = clock_now_ms(), wake = now + 1000;
        if (state == RUNNING && live_workers(generation) < desired && next_spawn_ms > now && next_spawn_ms < wake)
            wake = next_spawn_ms;
        if (retire_pending && retire_deadline < wake)
            wake = retire_deadline;
        if (state != RUNNING && stop_deadline < wake)
            wake = stop_deadline;
        uint64_t ms = wake > now ? wake - now : 0;
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        int n = ppoll(fds, (nfds_t)nfds, &ts, &waitmask);
        if (n > 0)
            read_ready_pipes(fds, nfds, slot_of);
    }
    st_budget_save(cfg->state_file, cfg);
    log_info("airouter master %d exiting", (int)getpid());
    pidfile_remove(pidfile);
    cfg_free(cfg);
    return 0;
}
