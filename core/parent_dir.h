/* parent_dir.h: the folder a file is to be created in. */
#ifndef LB_PARENT_DIR_H
#define LB_PARENT_DIR_H

#include "error.h"

/* Creates the parent folder of `path` (one level, mode 0750) if it is
 * missing; 0, or -1 with the reason under the key `field`. */
int lb_ensure_parent_dir(const char *path, const char *field, lb_error *err);

#endif
