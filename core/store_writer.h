/* store_writer.h: the one thread that writes to the store.
 *
 * The event loop never waits for SQLite or fsync: it hands write tasks to this
 * thread and gets each task's `done` back on the loop once its transaction
 * has committed (or rolled back). The thread runs every task queued by the
 * time it is free in ONE transaction, so while one commit is being fsynced
 * the next group is already forming: group commit without blocking the loop.
 * The store is used only by this thread while the writer runs. */
#ifndef LB_STORE_WRITER_H
#define LB_STORE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>

#include "error.h"
#include "store.h"

typedef struct lb_store_writer lb_store_writer;
typedef struct lb_write_task lb_write_task;

struct lb_write_task {
    /* Writer thread, inside the transaction: 0, or -1 to fail the whole transaction. */
    int (*run)(lb_store *store, void *arg, lb_error *err);
    /* Loop thread, after COMMIT (rc 0) or ROLLBACK (rc -1). */
    void (*done)(void *arg, int rc, const lb_error *err, double commit_seconds);
    void *arg;
    size_t events; /* how many events run stores (0 for other writes); set by the submitter */
    /* the writer's */
    int rc;
    lb_error err;
    double seconds;
    /* Set on one task per transaction, the first that stores events: the
     * events of its whole transaction (tasks queued while a commit runs share
     * the next one), so a done callback can count each commit once. */
    bool tx_first;
    size_t tx_events;
    lb_store_stats stats; /* the store's figures right after the COMMIT (rc 0) */
    lb_write_task *next;
};

lb_store_writer *lb_store_writer_start(struct event_base *base, lb_store *store, lb_error *err);
/* Queues a task; its memory stays the caller's and untouched by it until done runs. */
void lb_store_writer_submit(lb_store_writer *w, lb_write_task *task);
/* Runs on the loop until every submitted task's done has run. */
void lb_store_writer_wait_idle(lb_store_writer *w);
/* Loop thread: after every committed transaction, whoever submitted it,
 * the store's figures as of that COMMIT are copied into *to (the daemon's
 * /metrics), before the transaction's done callbacks run. NULL stops it. */
void lb_store_writer_publish_stats(lb_store_writer *w, lb_store_stats *to);
/* Finishes queued tasks, stops the thread. */
void lb_store_writer_stop(lb_store_writer *w);

#endif
