/* db_lock.c: flock(2) on a file of its own. Not on the database file: SQLite
 * holds POSIX locks there, and closing any other descriptor of that file
 * would drop them. */
#include "db_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "parent_dir.h"

/* The process id the holder wrote, for the message; "another process" if unreadable. */
static void holder(int fd, char *out, size_t size)
{
    char buf[24] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    int pid = n > 0 ? atoi(buf) : 0;
    if (pid > 0)
        snprintf(out, size, "listbossd (pid %d)", pid);
    else
        snprintf(out, size, "another process");
}

static bool lock_path(const char *database, char *path, size_t size)
{
    return snprintf(path, size, "%s-listbossd.lock", database) < (int)size;
}

int lb_db_lock(const char *database, lb_error *err)
{
    char path[4096];
    if (!lock_path(database, path, sizeof path)) {
        lb_fail(err, "database", "path too long");
        return -1;
    }
    if (lb_ensure_parent_dir(database, "database", err))
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        lb_fail(err, "database", "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char who[64];
        int e = errno;
        holder(fd, who, sizeof who);
        close(fd);
        if (e == EWOULDBLOCK)
            lb_fail(err, "database", "%s is in use by %s: one listbossd per database", database, who);
        else
            lb_fail(err, "database", "cannot lock %s: %s", path, strerror(e));
        return -1;
    }
    char pid[24];
    int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* the lock holds all the same; only the message of a second daemon suffers */
    }
    return fd;
}

void lb_db_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* Read-only and without O_CREAT: the command-line user may not be the
 * daemon's, and a lock file it created could be one the daemon cannot open.
 * No file means no daemon: each one creates it before it opens the store.
 * A shared lock tests for the daemon's exclusive one. Granted, it is held
 * until the close below: a daemon starting in that very instant refuses as
 * it would beside another one, which is why the commands ask only when they
 * refuse to upgrade a store, not on every run. */
int lb_db_lock_holder(const char *database, char *who, size_t size)
{
    char path[4096];
    if (!lock_path(database, path, sizeof path))
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    int held = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0)
        held = errno == EWOULDBLOCK ? 1 : -1;
    if (held == 1)
        holder(fd, who, size);
    close(fd);
    return held;
}
