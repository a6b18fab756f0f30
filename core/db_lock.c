/* db_lock.c: flock(2) on a file of its own. Not on the database file: SQLite
 * holds POSIX locks there, and closing any other descriptor of that file
 * would drop them. */
#include "db_lock.h"

#include <errno.h>
#include <fcntl.h>
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

int lb_db_lock(const char *database, lb_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s-listbossd.lock", database) >= (int)sizeof path) {
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
