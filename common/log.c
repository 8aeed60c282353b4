#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_INFO;
static int error_fd = STDERR_FILENO;
static int access_fd = STDERR_FILENO;
static char error_path[1024];
static char access_path[1024];

static const char *level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

static int open_log_file(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

/* Opens path into *fd unless it names stderr/off; keeps *fd when opening fails. */
static int reopen_one(int *fd, const char *path)
{
    if (path[0] == '\0' || strcmp(path, "off") == 0)
        return 0;
    int nfd = open_log_file(path);
    if (nfd < 0)
        return -1;
    if (*fd > STDERR_FILENO)
        close(*fd);
    *fd = nfd;
    return 0;
}

int log_open(int level, const char *err_path, const char *acc_path)
{
    log_level = level;
    snprintf(error_path, sizeof error_path, "%s", err_path ? err_path : "");
    snprintf(access_path, sizeof access_path, "%s", acc_path ? acc_path : "");
    if (strcmp(access_path, "off") == 0) {
        if (access_fd > STDERR_FILENO)
            close(access_fd);
        access_fd = -1;
    } else if (access_path[0] == '\0') {
        if (access_fd > STDERR_FILENO)
            close(access_fd);
        access_fd = STDERR_FILENO;
    }
    if (error_path[0] == '\0') {
        if (error_fd > STDERR_FILENO)
            close(error_fd);
        error_fd = STDERR_FILENO;
    }
    if (reopen_one(&error_fd, error_path) < 0 || reopen_one(&access_fd, access_path) < 0)
        return -1;
    return 0;
}

int log_reopen(void)
{
    int rc = 0;
    if (reopen_one(&error_fd, error_path) < 0) {
        log_error("cannot reopen error log %s: %s", error_path, strerror(errno));
        rc = -1;
    }
    if (reopen_one(&access_fd, access_path) < 0) {
        log_error("cannot reopen access log %s: %s", access_path, strerror(errno));
        rc = -1;
    }
    return rc;
}

void log_timestamp(char *out, unsigned long size)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

void log_msg(int level, const char *fmt, ...)
{
    if (level < log_level)
        return;
    char line[2048], ts[40];
    log_timestamp(ts, sizeof ts);
    int n = snprintf(line, sizeof line, "%s [%s] [%d] ", ts, level_names[level], (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(error_fd, line, len);
    (void)w;
}

int log_access_enabled(void) { return access_fd >= 0; }

void log_access_line(const char *line, unsigned long len)
{
    if (access_fd < 0)
        return;
    char small[4096];
    if (len + 1 <= sizeof small) {
        memcpy(small, line, len);
        small[len] = '\n';
        ssize_t w = write(access_fd, small, len + 1);
        (void)w;
    } else {
        struct iovec iov[2] = {{(void *)line, len}, {(void *)"\n", 1}};
        ssize_t w = writev(access_fd, iov, 2);
        (void)w;
    }
}
