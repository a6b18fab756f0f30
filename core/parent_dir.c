/* parent_dir.c: so that `database = "var/listboss.db"` works on a fresh checkout. */
#include "parent_dir.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int lb_ensure_parent_dir(const char *path, const char *field, lb_error *err)
{
    char *copy = strdup(path);
    if (!copy)
        return lb_fail(err, field, "out of memory");
    const char *dir = dirname(copy);
    int rc = 0;
    if (strcmp(dir, ".") != 0 && mkdir(dir, 0750) != 0 && errno != EEXIST)
        rc = lb_fail(err, field, "cannot create directory %s: %s", dir, strerror(errno));
    free(copy);
    return rc;
}
