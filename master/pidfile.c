#include "master/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static pid_t pidfile_read(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid > 0 ? (pid_t)pid : 0;
}

pid_t pidfile_read_live(const char *path)
{
    pid_t pid = pidfile_read(path);
    if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM))
        return pid;
    return 0;
}

int pidfile_write(const char *path)
{
    pid_t other = pidfile_read_live(path);
    if (other > 0 && other != getpid()) {
        log_error("pidfile %s belongs to running process %d: is airouter already running?", path,
                  (int)other);
        return -1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("cannot write pidfile %s: %s", tmp, strerror(errno));
        return -1;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%d\n", (int)getpid());
    if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
        log_error("cannot write pidfile %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        log_error("cannot rename pidfile to %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void pidfile_remove(const char *path)
{
    if (pidfile_read(path) == getpid())
        unlink(path);
}
