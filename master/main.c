/* airouter command line: start the master, test a config, or signal a running master. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_dump.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/state.h"
#include "master/master.h"
#include "master/pidfile.h"
#include "master/version.h"
#include "worker/backend/backend.h"

#ifndef AIROUTER_VERSION
#define AIROUTER_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: airouter [-c FILE] [-w N] [-p FILE] [-t | -T] [-s SIGNAL] [-V] [-h]\n"
            "  -c FILE   configuration file (default: etc/airouter.conf if present,\n"
            "            else /etc/airouter/airouter.conf)\n"
            "  -w N      number of worker processes (overrides 'workers')\n"
            "  -p FILE   pidfile (overrides 'pidfile')\n"
            "  -t        test the configuration and exit\n"
            "  -T        test the configuration, print it (defaults included, secrets\n"
            "            masked) and exit\n"
            "  -s SIGNAL send SIGNAL to the running master: reload, quit, stop, reopen\n"
            "  -V        print the version and the libraries' versions and exit\n"
            "  -h        print this help and exit\n");
}

static int send_signal(const char *name, const char *pidfile)
{
    static const struct {
        const char *name;
        int sig;
    } table[] = {{"reload", SIGHUP}, {"quit", SIGQUIT}, {"stop", SIGTERM}, {"reopen", SIGUSR1}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(name, table[i].name) != 0)
            continue;
        pid_t pid = pidfile_read_live(pidfile);
        if (pid <= 0) {
            fprintf(stderr, "airouter: no running master found through pidfile %s\n", pidfile);
            return 1;
        }
        if (kill(pid, table[i].sig) < 0) {
            fprintf(stderr, "airouter: cannot signal %d: %s\n", (int)pid, strerror(errno));
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "airouter: unknown signal '%s' (use reload, quit, stop or reopen)\n", name);
    return 1;
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *pidfile = NULL, *sig = NULL;
    int workers = 0, test_only = 0, dump = 0, opt;
    while ((opt = getopt(argc, argv, "c:w:p:tTs:Vh")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'p': pidfile = optarg; break;
        case 't': test_only = 1; break;
        case 'T': test_only = dump = 1; break;
        case 's': sig = optarg; break;
        case 'w': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "airouter: -w needs a number from 1 to 256\n");
                return 1;
            }
            workers = (int)n;
            break;
        }
        case 'V': version_print(stdout, AIROUTER_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 1;
    }
    if (!conf)
        conf = access("etc/airouter.conf", F_OK) == 0 ? "etc/airouter.conf" : "/etc/airouter/airouter.conf";
    if (sig && pidfile) /* no need to read the config (it may need variables this shell lacks) */
        return send_signal(sig, pidfile);

    char err[1024];
    be_describe_types();
    cfg_t *cfg = cfg_load(conf, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "airouter: %s\n", err);
        if (test_only)
            fprintf(stderr, "airouter: configuration %s test failed\n", conf);
        return 1;
    }
    if (test_only) {
        if (dump) { /* what it would run with: the command line's overrides included */
            if (workers)
                cfg->workers = workers;
            if (pidfile && strcmp(cfg->pidfile, pidfile) != 0) {
                free(cfg->pidfile);
                cfg->pidfile = strdup(pidfile);
            }
            cfg_dump(cfg, stdout);
            fflush(stdout);
        }
        fprintf(stderr, "airouter: configuration %s is ok\n", conf);
        cfg_free(cfg);
        return 0;
    }
    if (!pidfile)
        pidfile = cfg->pidfile;
    if (sig) {
        int rc = send_signal(sig, pidfile);
        cfg_free(cfg);
        return rc;
    }
    int fd = -1, mfd = -1;
    char *pidpath = strdup(pidfile); /* cfg may be replaced by a reload */
    if (!pidpath)
        goto fail;
    if (log_open(cfg->log_level, cfg->error_log, cfg->access_log) < 0) {
        fprintf(stderr, "airouter: cannot open log file: %s\n", strerror(errno));
        goto fail;
    }
    pid_t other = pidfile_read_live(pidpath);
    if (other > 0) {
        log_error("pidfile %s belongs to running process %d: is airouter already running?", pidpath,
                  (int)other);
        goto fail;
    }
    fd = master_bind(cfg->listen, cfg->listen_host, cfg->listen_port);
    if (fd < 0)
        goto fail;
    if (cfg->metrics_listen &&
        (mfd = master_bind(cfg->metrics_listen, cfg->metrics_listen_host, cfg->metrics_listen_port)) < 0)
        goto fail;
    if (met_init() < 0 || st_init() < 0 || pidfile_write(pidpath) < 0)
        goto fail;
    int rc = master_run(cfg, fd, mfd, workers, pidpath);
    free(pidpath);
    return rc;
fail:
    if (fd >= 0)
        close(fd);
    if (mfd >= 0)
        close(mfd);
    free(pidpath);
    cfg_free(cfg);
    return 1;
}
