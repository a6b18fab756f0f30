/* secret.c: env:NAME, file:PATH and literal secret references.
 * Every buffer that held a secret is wiped before it is freed, so a core dump
 * or a later heap read shows zeros rather than tokens. */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reference prefixes are matched exactly: "ENV:X" must not silently become the
 * literal secret "ENV:X", which anyone reading the config could guess. */
static bool miscased_prefix(const char *ref)
{
    return (strncasecmp(ref, "env:", 4) == 0 && strncmp(ref, "env:", 4) != 0) ||
           (strncasecmp(ref, "file:", 5) == 0 && strncmp(ref, "file:", 5) != 0);
}

static char *dup_or_fail(const char *value, const char *field, lb_error *err)
{
    char *copy = strdup(value);
    if (!copy)
        lb_fail(err, field, "out of memory");
    return copy;
}

static char *from_env(const char *name, const char *field, lb_error *err)
{
    if (*name == '\0') {
        lb_fail(err, field, "\"env:\" needs a variable name, e.g. \"env:LISTBOSS_HOTTOK\"");
        return NULL;
    }
    const char *value = getenv(name);
    if (!value) {
        lb_fail(err, field, "environment variable %.120s is not set", name);
        return NULL;
    }
    if (*value == '\0') {
        lb_fail(err, field, "environment variable %.120s is empty", name);
        return NULL;
    }
    return dup_or_fail(value, field, err);
}

/* Reads at most cap + 1 bytes, so the caller can tell "exactly cap" from
 * "too big" without reading a huge file to the end. Returns the byte count or -1. */
static ssize_t read_capped(int fd, char *buf, size_t cap)
{
    size_t total = 0;
    while (total < cap + 1) {
        ssize_t n = read(fd, buf + total, cap + 1 - total);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        total += (size_t)n;
    }
    return (ssize_t)total;
}

/* Opens a regular file only: a FIFO or a device would block or never end. */
static int open_secret_file(const char *path, const char *field, lb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return lb_fail(err, field, "cannot open secret file %.120s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lb_fail(err, field, "secret file %.120s is not a regular file", path);
    }
    return fd;
}

/* Strips one trailing "\n" (or "\r\n"): `echo token > file` adds one, and an
 * editor may add it too, but the token itself never ends with a newline. */
static size_t strip_newline(const char *buf, size_t len)
{
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    return len;
}

/* Checks the content read from `path`; returns its useful length or -1. */
static ssize_t check_file_content(const char *buf, ssize_t got, const char *path,
                                  const char *field, lb_error *err)
{
    if (got < 0)
        return lb_fail(err, field, "cannot read secret file %.120s: %s", path, strerror(errno));
    if ((size_t)got > LB_SECRET_FILE_MAX)
        return lb_fail(err, field, "secret file %.120s is larger than %d KiB", path,
                       LB_SECRET_FILE_MAX / 1024);
    size_t len = strip_newline(buf, (size_t)got);
    if (len == 0)
        return lb_fail(err, field, "secret file %.120s is empty", path);
    if (memchr(buf, '\0', len))
        return lb_fail(err, field, "secret file %.120s contains a NUL byte", path);
    return (ssize_t)len;
}

static char *from_file(const char *path, const char *field, lb_error *err)
{
    if (*path == '\0') {
        lb_fail(err, field, "\"file:\" needs a path, e.g. \"file:/run/secrets/hottok\"");
        return NULL;
    }
    int fd = open_secret_file(path, field, err);
    if (fd < 0)
        return NULL;
    char *buf = malloc(LB_SECRET_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        lb_fail(err, field, "out of memory");
        return NULL;
    }
    ssize_t got = read_capped(fd, buf, LB_SECRET_FILE_MAX);
    int saved_errno = errno;
    close(fd);
    errno = saved_errno;
    ssize_t len = check_file_content(buf, got, path, field, err);
    char *value = len < 0 ? NULL : strndup(buf, (size_t)len);
    if (len >= 0 && !value)
        lb_fail(err, field, "out of memory");
    explicit_bzero(buf, got > 0 ? (size_t)got : 0);
    free(buf);
    return value;
}

/* Says where a too-short value came from, without quoting it. */
static int fail_short(const char *ref, const char *field, lb_error *err)
{
    if (strncmp(ref, "env:", 4) == 0)
        return lb_fail(err, field, "the value of environment variable %.120s is shorter than %d characters",
                       ref + 4, LB_SECRET_MIN_LEN);
    if (strncmp(ref, "file:", 5) == 0)
        return lb_fail(err, field, "the content of secret file %.120s is shorter than %d characters",
                       ref + 5, LB_SECRET_MIN_LEN);
    return lb_fail(err, field, "secret is shorter than %d characters", LB_SECRET_MIN_LEN);
}

char *lb_secret_resolve(const char *ref, const char *field, lb_error *err)
{
    char *value;
    if (strncmp(ref, "env:", 4) == 0) {
        value = from_env(ref + 4, field, err);
    } else if (strncmp(ref, "file:", 5) == 0) {
        value = from_file(ref + 5, field, err);
    } else if (miscased_prefix(ref)) {
        lb_fail(err, field, "secret reference prefixes are lower case: write \"env:NAME\" or \"file:PATH\"");
        return NULL;
    } else {
        value = dup_or_fail(ref, field, err);
    }
    if (value && strlen(value) < LB_SECRET_MIN_LEN) {
        lb_secret_free(value);
        fail_short(ref, field, err);
        return NULL;
    }
    return value;
}

void lb_secret_free(char *secret)
{
    if (!secret)
        return;
    explicit_bzero(secret, strlen(secret));
    free(secret);
}
