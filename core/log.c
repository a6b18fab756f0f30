/* log.c: logfmt writer. One fwrite per line so concurrent writers (tests
 * capturing stderr) never see interleaved halves. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum lb_log_level min_level = LB_LOG_INFO; /* process-wide by nature: stderr is */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void lb_log_set_level(enum lb_log_level level) { min_level = level; }

bool lb_log_enabled(enum lb_log_level level) { return level >= min_level; }

int lb_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

static int needs_quotes(const char *v)
{
    if (*v == '\0')
        return 1;
    for (; *v; v++)
        if (*v == ' ' || *v == '"' || *v == '=' || *v == '\\' || (unsigned char)*v < 0x20)
            return 1;
    return 0;
}

/* Appends ` key=value`, quoting and escaping the value when needed. */
static size_t append_pair(char *buf, size_t pos, size_t cap, const char *key, const char *val)
{
    if (pos >= cap)
        return pos;
    pos += (size_t)snprintf(buf + pos, cap - pos, " %s=", key);
    if (!needs_quotes(val)) {
        if (pos < cap)
            pos += (size_t)snprintf(buf + pos, cap - pos, "%s", val);
        return pos;
    }
    if (pos < cap)
        buf[pos++] = '"';
    for (; *val && pos + 3 < cap; val++) {
        unsigned char c = (unsigned char)*val;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c == '\n') {
            buf[pos++] = '\\';
            buf[pos++] = 'n';
        } else if (c < 0x20) {
            buf[pos++] = ' ';
        } else {
            buf[pos++] = (char)c;
        }
    }
    if (pos < cap)
        buf[pos++] = '"';
    return pos;
}

void lb_log(enum lb_log_level level, const char *msg, ...)
{
    if (level < min_level)
        return;
    char line[2048];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t pos = strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    pos += (size_t)snprintf(line + pos, sizeof line - pos, ".%03ldZ level=%s", now.tv_nsec / 1000000,
                            level_names[level]);
    pos = append_pair(line, pos, sizeof line - 2, "msg", msg);
    va_list ap;
    va_start(ap, msg);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *val = va_arg(ap, const char *);
        pos = append_pair(line, pos, sizeof line - 2, key, val ? val : "");
    }
    va_end(ap);
    if (pos > sizeof line - 2)
        pos = sizeof line - 2;
    line[pos++] = '\n';
    fwrite(line, 1, pos, stderr);
}
