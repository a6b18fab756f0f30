/* dispatch_persist.c: the dispatcher's persistence on the store writer
 * thread. Kept apart from dispatcher.c so unit tests can drive the
 * dispatcher with an in-memory persistence and no SQLite. */
#include "dispatcher.h"

#include <stdlib.h>

#include "store.h" /* lb_store_record_outcome, lb_store_set_integration_state */
#include "store_writer.h"

typedef struct outcome_task {
    lb_write_task task;
    const lb_job_outcome *outcomes;
    size_t n;
    lb_persist_done done;
    void *ctx;
} outcome_task;

typedef struct state_task {
    lb_write_task task;
    const char *account, *integration, *reason;
    bool broken;
    lb_persist_done done;
    void *ctx;
} state_task;

/* ---- outcomes ---------------------------------------------------------------------- */

/* Writer thread, inside the transaction. */
static int run_outcomes(lb_store *store, void *arg, lb_error *err)
{
    const outcome_task *t = arg;
    for (size_t i = 0; i < t->n; i++)
        if (lb_store_record_outcome(store, &t->outcomes[i], err) != 0)
            return -1; /* the whole batch rolls back; the dispatcher retries it */
    return 0;
}

static void done_outcomes(void *arg, int rc, const lb_error *err, double commit_seconds)
{
    (void)commit_seconds;
    outcome_task *t = arg;
    t->done(t->ctx, rc, err);
    free(t);
}

static void record_outcomes(void *ud, const lb_job_outcome *outcomes, size_t n, lb_persist_done done, void *ctx)
{
    outcome_task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        lb_error err;
        lb_fail(&err, "", "out of memory");
        done(ctx, -1, &err); /* the dispatcher retries after store_retry_ms */
        return;
    }
    *t = (outcome_task){.outcomes = outcomes, .n = n, .done = done, .ctx = ctx};
    t->task.run = run_outcomes;
    t->task.done = done_outcomes;
    t->task.arg = t;
    lb_store_writer_submit(ud, &t->task);
}

/* ---- integration state ------------------------------------------------------------- */

static int run_state(lb_store *store, void *arg, lb_error *err)
{
    const state_task *t = arg;
    return lb_store_set_integration_state(store, t->account, t->integration, t->broken, t->reason, err);
}

static void done_state(void *arg, int rc, const lb_error *err, double commit_seconds)
{
    (void)commit_seconds;
    state_task *t = arg;
    t->done(t->ctx, rc, err);
    free(t);
}

static void set_integration_state(void *ud, const char *account, const char *integration, bool broken,
                                  const char *reason, lb_persist_done done, void *ctx)
{
    state_task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        lb_error err;
        lb_fail(&err, integration, "out of memory");
        done(ctx, -1, &err);
        return;
    }
    *t = (state_task){.account = account, .integration = integration, .reason = reason, .broken = broken,
                      .done = done, .ctx = ctx};
    t->task.run = run_state;
    t->task.done = done_state;
    t->task.arg = t;
    lb_store_writer_submit(ud, &t->task);
}

lb_dispatcher *lb_dispatcher_new(struct event_base *base, struct lb_store_writer *writer, lb_metrics *metrics,
                                 const lb_dispatcher_options *opts)
{
    const lb_dispatch_persist persist = {
        .ud = writer,
        .record_outcomes = record_outcomes,
        .set_integration_state = set_integration_state,
        .free = NULL, /* the writer is the daemon's */
    };
    return lb_dispatcher_new_with(base, &persist, metrics, opts);
}
