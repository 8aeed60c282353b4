/* Error log (levelled, human-readable) and access log (one JSON line per request).
 * Both write whole lines with one write(2) on O_APPEND descriptors, so lines from
 * several threads and processes never interleave. */
#ifndef AIROUTER_LOG_H
#define AIROUTER_LOG_H
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Returns -1 for an unknown level name. */
int log_level_parse(const char *name);
/* error_path/access_path: "" = stderr; access_path "off" = no access log.
 * Returns -1 (with errno) if a file cannot be opened. */
int log_open(int level, const char *error_path, const char *access_path);
/* Re-opens the files (USR1, for logrotate). Keeps the old descriptor on failure. */
int log_reopen(void);
/* Writes one line to the error log. The formatted message is escaped (log_escape). */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies in to out (size bytes, NUL-terminated) with backslashes, control characters and
 * bytes that are not valid UTF-8 written as \\, \n, \r, \t or \xNN, so the text stays on one
 * line and reads back unambiguously. Stops before an escape that would not fit. Returns the
 * length written. */
size_t log_escape(char *out, size_t size, const char *in);
int log_access_enabled(void);
/* Writes one pre-formatted line (without trailing newline). */
void log_access_line(const char *line, unsigned long len);
/* ISO-8601 UTC time with milliseconds into out (at least 32 bytes). */
void log_timestamp(char *out, unsigned long size);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
