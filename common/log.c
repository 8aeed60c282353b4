#include "common/log.h"

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

/* Length of the valid UTF-8 sequence at p (2-4 bytes, not a C1 control), or 0. */
static size_t utf8_printable(const unsigned char *p)
{
    size_t n;
    unsigned cp, min;
    if ((p[0] & 0xe0) == 0xc0)
        n = 2, min = 0xa0, cp = p[0] & 0x1f; /* U+0080..U+009F are C1 controls */
    else if ((p[0] & 0xf0) == 0xe0)
        n = 3, min = 0x800, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        n = 4, min = 0x10000, cp = p[0] & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    return cp >= min && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? n : 0;
}

size_t log_escape(char *out, size_t size, const char *in)
{
    size_t o = 0;
    if (size == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)in; *p;) {
        char esc[8];
        size_t n = 1, elen;
        const char *e = esc;
        if (*p == '\\') {
            e = "\\\\", elen = 2;
        } else if (*p == '\n') {
            e = "\\n", elen = 2;
        } else if (*p == '\r') {
            e = "\\r", elen = 2;
        } else if (*p == '\t') {
            e = "\\t", elen = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            elen = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p);
        } else if (*p < 0x80) {
            e = (const char *)p, elen = 1;
        } else if ((n = utf8_printable(p)) > 0) {
            e = (const char *)p, elen = n;
        } else {
            n = 1;
            elen = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p);
        }
        if (o + elen + 1 > size)
            break; /* never a cut escape or character */
        memcpy(out + o, e, elen);
        o += elen;
        p += n;
    }
    out[o] = '\0';
    return o;
}

void log_msg(int level, const char *fmt, ...)
{
    if (level < log_level)
        return;
    char msg[2048], line[2048 + 64], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_timestamp(ts, sizeof ts);
    int n = snprintf(line, sizeof line, "%s [%s] [%d] ", ts, level_names[level], (int)getpid());
    /* Messages quote what clients and backends sent (model names, paths, error texts): escaped
     * here, once, so that nothing from outside can end a line or forge the next one. */
    size_t len = (size_t)n + log_escape(line + n, sizeof line - (size_t)n - 1, msg);
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
