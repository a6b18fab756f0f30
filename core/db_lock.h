/* db_lock.h: one listbossd per database.
 *
 * The store's dedupe index lives in the memory of the one process that
 * writes events (docs/storage.md §3): a second daemon on the same database
 * would not see the first one's keys and could store a redelivered event
 * twice. So the daemon holds an exclusive lock on a file beside the database
 * for as long as it runs, and a second one refuses to start. */
#ifndef LB_DB_LOCK_H
#define LB_DB_LOCK_H

#include <stddef.h>

#include "error.h"

/* Takes the lock of `database` (the file `<database>-listbossd.lock`, which
 * then holds this process's id). Returns the lock's descriptor, or -1 with
 * the reason, naming the process that holds it if another one does. */
int lb_db_lock(const char *database, lb_error *err);
/* Whether a daemon holds the lock of `database`, for a process that only
 * needs to know (the commands, cli.c): 1, naming the holder in `who` as the
 * refusal above does; 0 if none does; -1 if the lock file cannot be read. */
int lb_db_lock_holder(const char *database, char *who, size_t size);
/* Releases it (the kernel does too when the process ends, however it ends). */
void lb_db_unlock(int fd);

#endif
