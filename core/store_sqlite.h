/* store_sqlite.h: the embedded SQLite engine of the store interface. */
#ifndef LB_STORE_SQLITE_H
#define LB_STORE_SQLITE_H

#include "store.h"

/* The page size of a new store; an existing one keeps its own. */
#define LB_SQLITE_PAGE_SIZE 16384
/* The WAL's sizes, in bytes (store_sqlite_checkpoint.c): the checkpoint
 * thread is woken at the first, the writer rewinds the WAL at the second,
 * and at the third commits wait for a checkpoint. */
#define LB_SQLITE_WAL_CHECKPOINT_BYTES (1 << 20)
#define LB_SQLITE_WAL_REWIND_BYTES (4 << 20)
#define LB_SQLITE_WAL_HARD_BYTES (4 * LB_SQLITE_WAL_REWIND_BYTES)

extern const lb_store_ops lb_store_sqlite_ops;
/* lb_store_open's contract; *impl is set on success only. */
int lb_store_sqlite_open(const char *path, const lb_store_options *opts, void **impl, lb_error *err);
/* Tests only: gives every event key the same hash, so that the dedupe index
 * must tell keys apart by comparing them (store_sqlite_keys.c). */
void lb_store_sqlite_collide_keys_for_test(lb_store *store);

#endif
