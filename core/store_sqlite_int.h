/* store_sqlite_int.h: what the SQLite store's files share (private). */
#ifndef LB_STORE_SQLITE_INT_H
#define LB_STORE_SQLITE_INT_H

#include <stdbool.h>
#include <sqlite3.h>

#include "key_map.h"
#include "siphash.h"
#include "store.h"

/* Statements prepared on first use, by slot. */
enum lb_sqlite_cached {
    LB_SQ_INSERT_JOB,
    LB_SQ_UPDATE_JOB,
    LB_SQ_INSERT_ATTEMPT,
    LB_SQ_GET_LEAD,
    LB_SQ_PUT_LEAD,
    LB_SQ_PUT_INTEGRATION,
    LB_SQ_PENDING_JOBS,
    LB_SQ_PUT_SEGMENTATION,
    LB_SQ_LOAD_SEGMENTATIONS,
    LB_SQ_SEGMENTATION_STATUS,
    LB_SQ_PUT_CLUB,
    LB_SQ_COUNT_KEYS,
    LB_SQ_ALL_KEYS,
    LB_SQ_GET_KEY,
    LB_SQ_PUT_KEY,
    LB_SQLITE_CACHED_MAX
};

typedef struct lb_sqlite_checkpointer lb_sqlite_checkpointer;

typedef struct sqlite_store {
    sqlite3 *db;
    lb_sqlite_checkpointer *checkpointer; /* NULL: SQLite's automatic checkpoints */
    sqlite3_stmt *begin, *commit, *rollback, *insert_event;
    sqlite3_stmt *cached[LB_SQLITE_CACHED_MAX];
    bool in_tx;
    struct {
        bool loaded;         /* map holds every stored key (store_sqlite_keys.c) */
        lb_siphash_key seed; /* this process's: senders cannot aim keys at one slot */
        lb_key_map map;
        bool collide;        /* tests: every key gets one hash, so only the check tells them apart */
    } keys;
} sqlite_store;

int lb_sqlite_fail(lb_error *err, sqlite3 *db, const char *what);
int lb_sqlite_step_done(sqlite_store *s, sqlite3_stmt *st, const char *what, lb_error *err);
/* Dedupe (store_sqlite_keys.c). find: 1 with *found when the key is stored
 * already, 0 when not (*hash is then what add takes), -1 on error. add: inside
 * the transaction that inserted event `id`. forget: frees the map; the next
 * find loads it again. */
int lb_sqlite_keys_find(sqlite_store *s, const char *account, const char *source, const char *source_event_id,
                        uint64_t *hash, int64_t *found, lb_error *err);
int lb_sqlite_keys_add(sqlite_store *s, uint64_t hash, int64_t id, const char *account, const char *source,
                       const char *source_event_id, lb_error *err);
void lb_sqlite_keys_forget(sqlite_store *s);
void lb_sqlite_dedupe_stats(const sqlite_store *s, lb_store_stats *out);
/* Reads event_keys into the map; find does it when the map is not loaded. */
int lb_sqlite_keys_load(sqlite_store *s, lb_error *err);
void lb_sqlite_bind_text_or_null(sqlite3_stmt *st, int i, const char *v);
/* The cached statement for a slot, prepared from sql the first time; NULL on error. */
sqlite3_stmt *lb_sqlite_cached(sqlite_store *s, enum lb_sqlite_cached slot, const char *sql, lb_error *err);

/* store_sqlite_vfs.c: the name of the write-coalescing VFS (for
 * synchronous=FULL only), or NULL if it cannot be registered. */
const char *lb_sqlite_coalescing_vfs(void);

/* The database's page size (store_sqlite.c). */
int lb_sqlite_page_size(sqlite3 *db);

/* store_sqlite_checkpoint.c: checkpoints of writer_db's WAL on a thread with
 * its own connection to path; stop it before closing writer_db. */
lb_sqlite_checkpointer *lb_sqlite_checkpointer_start(sqlite3 *writer_db, const char *path, const char *vfs,
                                                     bool sync_full, lb_error *err);
void lb_sqlite_checkpointer_stop(lb_sqlite_checkpointer *c, sqlite3 *writer_db);
/* The WAL's figures for lb_store_stats, on the writer's thread. */
void lb_sqlite_checkpointer_stats(const lb_sqlite_checkpointer *c, lb_store_stats *out);

/* store_sqlite_jobs.c */
int lb_sqlite_put_job(void *impl, lb_outbox_job *job, bool *inserted, lb_error *err);
int lb_sqlite_record_outcome(void *impl, const lb_job_outcome *o, lb_error *err);
int lb_sqlite_set_integration_state(void *impl, const char *account, const char *integration, bool broken,
                                    const char *reason, lb_error *err);
int lb_sqlite_load_pending_jobs(void *impl, lb_job_visit visit, void *ud, lb_error *err);
int lb_sqlite_list_jobs(void *impl, const char *account, lb_job_state state, lb_job_visit visit, void *ud,
                        lb_error *err);
int lb_sqlite_replay_dead(void *impl, const char *account, int64_t job_id, int64_t now_ms, int64_t *count,
                          lb_error *err);

/* store_sqlite_segs.c */
int lb_sqlite_put_segmentation(void *impl, const lb_stored_segmentation *seg, int64_t *id, lb_error *err);
int lb_sqlite_delete_segmentation(void *impl, const char *account, const char *name, bool *deleted, lb_error *err);
int lb_sqlite_load_segmentations(void *impl, lb_segmentation_visit visit, void *ud, lb_error *err);
int lb_sqlite_set_segmentation_status(void *impl, int64_t id, const char *status, const char *reasons_json,
                                      lb_error *err);

/* store_sqlite_club.c */
int lb_sqlite_put_club_activity(void *impl, const lb_club_activity *a, lb_error *err);
int lb_sqlite_load_club_activity(void *impl, lb_club_visit visit, void *ud, lb_error *err);

#endif
