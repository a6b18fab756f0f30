/* store.h: the one interface in front of the database. All SQL lives behind
 * it (store_sqlite.c today), so another engine is one more ops table.
 *
 * Writes happen in batches: begin, put each event of one loop turn, commit.
 * The caller answers nothing before commit returns 0; on any failure it rolls
 * back and every request of the batch is told to retry, so an event is either
 * wholly stored or not at all. */
#ifndef LB_STORE_H
#define LB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"
#include "club_state.h"
#include "job.h"

typedef struct lb_store_event {
    const char *account;
    const lb_event *event;
    const char *normalized_json; /* the event document as text */
    size_t normalized_len;
    const char *raw_body;        /* the delivery as received */
    size_t raw_len;
    const char *raw_content_type;
    int64_t received_at_ms;
} lb_store_event;

typedef struct lb_store_put_result {
    int64_t event_id; /* the server's id; for a duplicate, the first copy's */
    bool duplicate;
} lb_store_put_result;

typedef struct lb_store_options {
    bool sync_full;      /* synchronous=FULL (else NORMAL) */
    int busy_timeout_ms; /* how long a write waits for another writer's lock */
    bool checkpoint_thread; /* WAL checkpoints on a thread of their own, not inside commits (the daemon) */
    bool load_event_keys;   /* read the dedupe index at open, not at the first event (the daemon: the
                             * first webhook after a start must not wait for it) */
    bool must_exist;        /* open an existing database only, creating neither it nor its folder (the
                             * CLI: a mistyped path must fail, not answer from a new empty store) */
    bool no_upgrade;        /* never migrate: a schema older than this build's is left as it is and the
                             * open fails with LB_STORE_NEEDS_UPGRADE (the CLI: an older daemon may be
                             * running on the store, cli.c) */
} lb_store_options;

/* lb_store_open's failure when no_upgrade finds an older schema; err says
 * from which version to which. */
#define LB_STORE_NEEDS_UPGRADE (-2)

/* What the store says about itself in /metrics. */
typedef struct lb_store_stats {
    /* the dedupe index in memory: its entries (about one per stored event)
     * and the bytes it holds */
    uint64_t dedupe_keys, dedupe_bytes;
    /* the write-ahead log: its length in pages after the last commit (0 if
     * the engine has none or does not say), and how many commits found it at
     * its hard size and waited for a checkpoint before they returned */
    uint64_t wal_pages, wal_full_waits;
} lb_store_stats;

/* Receives one stored job; the visitor takes ownership (lb_job_free). */
typedef void (*lb_job_visit)(lb_outbox_job *job, void *ud);

/* A segmentation row; strings are valid during the visit only. */
typedef struct lb_stored_segmentation {
    int64_t id;
    const char *account, *name, *product_id;
    const char *declaration; /* JSON, the shape of docs/segmentations.md */
    const char *origin;      /* "config" | "cli" */
    const char *status;      /* "ok" | "needs_review" | ... */
    const char *reasons;     /* JSON array */
} lb_stored_segmentation;
typedef void (*lb_segmentation_visit)(const lb_stored_segmentation *seg, void *ud);

typedef void (*lb_club_visit)(const lb_club_activity *a, void *ud);

typedef struct lb_store_ops {
    const char *engine;
    int (*begin)(void *impl, lb_error *err);
    int (*put_event)(void *impl, const lb_store_event *in, lb_store_put_result *out, lb_error *err);
    int (*commit)(void *impl, lb_error *err);
    void (*rollback)(void *impl);
    void (*close)(void *impl);
    int (*put_job)(void *impl, lb_outbox_job *job, bool *inserted, lb_error *err);
    int (*record_outcome)(void *impl, const lb_job_outcome *o, lb_error *err);
    int (*set_integration_state)(void *impl, const char *account, const char *integration, bool broken,
                                 const char *reason, lb_error *err);
    int (*load_pending_jobs)(void *impl, lb_job_visit visit, void *ud, lb_error *err);
    int (*list_jobs)(void *impl, const char *account, lb_job_state state, lb_job_visit visit, void *ud,
                     lb_error *err);
    int (*replay_dead)(void *impl, const char *account, int64_t job_id, int64_t now_ms, int64_t *count,
                       lb_error *err);
    int (*put_segmentation)(void *impl, const lb_stored_segmentation *seg, int64_t *id, lb_error *err);
    int (*delete_segmentation)(void *impl, const char *account, const char *name, bool *deleted, lb_error *err);
    int (*load_segmentations)(void *impl, lb_segmentation_visit visit, void *ud, lb_error *err);
    int (*set_segmentation_status)(void *impl, int64_t id, const char *status, const char *reasons_json,
                                   lb_error *err);
    int (*put_club_activity)(void *impl, const lb_club_activity *a, lb_error *err);
    int (*load_club_activity)(void *impl, lb_club_visit visit, void *ud, lb_error *err);
    /* on the thread that writes (or before it starts) */
    void (*stats)(void *impl, lb_store_stats *out);
} lb_store_ops;

typedef struct lb_store {
    const lb_store_ops *ops;
    void *impl;
} lb_store;

/* Opens the store at `location` (a SQLite file path), creating and migrating
 * its schema. Returns 0, or -1 (or LB_STORE_NEEDS_UPGRADE) with the reason. */
int lb_store_open(lb_store *store, const char *location, const lb_store_options *opts, lb_error *err);
void lb_store_close(lb_store *store);

static inline int lb_store_begin(lb_store *s, lb_error *err) { return s->ops->begin(s->impl, err); }
static inline int lb_store_put_event(lb_store *s, const lb_store_event *in, lb_store_put_result *out,
                                     lb_error *err)
{
    return s->ops->put_event(s->impl, in, out, err);
}
static inline int lb_store_commit(lb_store *s, lb_error *err) { return s->ops->commit(s->impl, err); }
static inline void lb_store_rollback(lb_store *s) { s->ops->rollback(s->impl); }

/* Jobs (the outbox). put_job: inside a transaction; *inserted is false when a
 * job with the same idempotency key exists (then job->id is not set). */
static inline int lb_store_put_job(lb_store *s, lb_outbox_job *job, bool *inserted, lb_error *err)
{
    return s->ops->put_job(s->impl, job, inserted, err);
}
/* One attempt's result: the job row, the attempt history and the lead state. */
static inline int lb_store_record_outcome(lb_store *s, const lb_job_outcome *o, lb_error *err)
{
    return s->ops->record_outcome(s->impl, o, err);
}
static inline int lb_store_set_integration_state(lb_store *s, const char *account, const char *integration,
                                                 bool broken, const char *reason, lb_error *err)
{
    return s->ops->set_integration_state(s->impl, account, integration, broken, reason, err);
}
/* Every job still to run (state ready), in id order. */
static inline int lb_store_load_pending_jobs(lb_store *s, lb_job_visit visit, void *ud, lb_error *err)
{
    return s->ops->load_pending_jobs(s->impl, visit, ud, err);
}
/* An account's jobs in one state (dead letters, say), in id order, with the last attempt's status and reason. */
static inline int lb_store_list_jobs(lb_store *s, const char *account, lb_job_state state, lb_job_visit visit,
                                     void *ud, lb_error *err)
{
    return s->ops->list_jobs(s->impl, account, state, visit, ud, err);
}
/* Dead letters back to ready (job_id 0: all of the account's); *count replayed. */
static inline int lb_store_replay_dead(lb_store *s, const char *account, int64_t job_id, int64_t now_ms,
                                       int64_t *count, lb_error *err)
{
    return s->ops->replay_dead(s->impl, account, job_id, now_ms, count, err);
}

/* Segmentations: upsert by (account, name), delete, list, and the
 * consistency status the checks computed. */
static inline int lb_store_put_segmentation(lb_store *s, const lb_stored_segmentation *seg, int64_t *id,
                                            lb_error *err)
{
    return s->ops->put_segmentation(s->impl, seg, id, err);
}
static inline int lb_store_delete_segmentation(lb_store *s, const char *account, const char *name, bool *deleted,
                                               lb_error *err)
{
    return s->ops->delete_segmentation(s->impl, account, name, deleted, err);
}
static inline int lb_store_load_segmentations(lb_store *s, lb_segmentation_visit visit, void *ud, lb_error *err)
{
    return s->ops->load_segmentations(s->impl, visit, ud, err);
}
static inline int lb_store_set_segmentation_status(lb_store *s, int64_t id, const char *status,
                                                   const char *reasons_json, lb_error *err)
{
    return s->ops->set_segmentation_status(s->impl, id, status, reasons_json, err);
}

/* Club activity (last login, highest progress) per account, product and lead. */
static inline int lb_store_put_club_activity(lb_store *s, const lb_club_activity *a, lb_error *err)
{
    return s->ops->put_club_activity(s->impl, a, err);
}
static inline void lb_store_stats_get(lb_store *s, lb_store_stats *out)
{
    s->ops->stats(s->impl, out);
}
static inline int lb_store_load_club_activity(lb_store *s, lb_club_visit visit, void *ud, lb_error *err)
{
    return s->ops->load_club_activity(s->impl, visit, ud, err);
}

#endif
