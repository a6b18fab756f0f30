/* test_store_writer.c: the writer thread's grouping (store_writer.c). Tasks
 * queued while a transaction runs share the next one; each transaction is
 * marked on one task, so /metrics counts commits, not loop turns; and every
 * commit publishes the store's figures for /metrics. */
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "store.h"
#include "store_writer.h"
#include "tap.h"

static char dir[64];
static char db_path[96];

typedef struct probe {
    lb_write_task task;
    const char *name;
    sem_t *started, *release; /* set: run blocks until released */
    bool fail;
    bool writes;              /* run writes a row, as the dispatcher's tasks do */
    char *order;              /* done appends name here */
    size_t order_cap;
} probe;

static int probe_run(lb_store *store, void *arg, lb_error *err)
{
    probe *p = arg;
    if (p->started) {
        sem_post(p->started);
        sem_wait(p->release);
    }
    if (p->writes && lb_store_set_integration_state(store, "acct", p->name, true, "probe", err) != 0)
        return -1;
    return p->fail ? lb_fail(err, "probe", "%s failed", p->name) : 0;
}

static void probe_done(void *arg, int rc, const lb_error *err, double seconds)
{
    (void)rc;
    (void)err;
    (void)seconds;
    probe *p = arg;
    size_t len = strlen(p->order);
    snprintf(p->order + len, p->order_cap - len, "%s%s", len ? "," : "", p->name);
}

static void probe_init(probe *p, const char *name, size_t events, char *order, size_t cap)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->order = order;
    p->order_cap = cap;
    p->task.run = probe_run;
    p->task.done = probe_done;
    p->task.arg = p;
    p->task.events = events;
}

typedef struct world {
    struct event_base *base;
    lb_store store;
    lb_store_writer *writer;
} world;

static void world_open(world *w)
{
    snprintf(dir, sizeof dir, "/tmp/lb-test-writer.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/w.db", dir);
    lb_error err = {0};
    /* the checkpoint thread, as the daemon runs it: it keeps the WAL's figures */
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000, .checkpoint_thread = true};
    ck_assert_msg(lb_store_open(&w->store, db_path, &opts, &err) == 0, "%s", err.message);
    w->base = event_base_new();
    ck_assert_ptr_nonnull(w->base);
    w->writer = lb_store_writer_start(w->base, &w->store, &err);
    ck_assert_msg(w->writer != NULL, "%s", err.message);
}

static void world_close(world *w)
{
    lb_store_writer_stop(w->writer);
    lb_store_close(&w->store);
    event_base_free(w->base);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Holds the writer inside a transaction (task `gate`) while `queued` are
 * submitted, so they all land in the transaction after it. */
static void submit_behind_gate(world *w, probe *gate, probe **queued, size_t n)
{
    sem_t started, release;
    sem_init(&started, 0, 0);
    sem_init(&release, 0, 0);
    gate->started = &started;
    gate->release = &release;
    lb_store_writer_submit(w->writer, &gate->task);
    sem_wait(&started);
    for (size_t i = 0; i < n; i++)
        lb_store_writer_submit(w->writer, &queued[i]->task);
    sem_post(&release);
    lb_store_writer_wait_idle(w->writer);
    sem_destroy(&started);
    sem_destroy(&release);
}

START_TEST(tasks_queued_during_a_commit_share_the_next_and_it_is_counted_once)
{
    world w;
    world_open(&w);
    char order[64] = "";
    probe gate, a, b, c;
    probe_init(&gate, "gate", 1, order, sizeof order);
    probe_init(&a, "a", 0, order, sizeof order); /* not events: the mark goes to the first that has some */
    probe_init(&b, "b", 2, order, sizeof order);
    probe_init(&c, "c", 3, order, sizeof order);
    probe *queued[] = {&a, &b, &c};
    submit_behind_gate(&w, &gate, queued, 3);
    ck_assert_str_eq(order, "gate,a,b,c"); /* done runs in submission order */
    ck_assert(gate.task.tx_first);
    ck_assert_uint_eq(gate.task.tx_events, 1);
    ck_assert(!a.task.tx_first);
    ck_assert(b.task.tx_first);
    ck_assert_uint_eq(b.task.tx_events, 5); /* the whole transaction's events */
    ck_assert(!c.task.tx_first);
    ck_assert_uint_eq(c.task.tx_events, 0);
    ck_assert(a.task.seconds == c.task.seconds); /* one transaction, one duration */
    ck_assert_int_eq(a.task.rc, 0);
    ck_assert_int_eq(c.task.rc, 0);
    world_close(&w);
}
END_TEST

START_TEST(a_transaction_without_events_is_marked_nowhere)
{
    world w;
    world_open(&w);
    char order[64] = "";
    probe gate, a, b;
    probe_init(&gate, "gate", 0, order, sizeof order);
    probe_init(&a, "a", 0, order, sizeof order);
    probe_init(&b, "b", 0, order, sizeof order);
    probe *queued[] = {&a, &b};
    submit_behind_gate(&w, &gate, queued, 2);
    ck_assert(!gate.task.tx_first && !a.task.tx_first && !b.task.tx_first);
    world_close(&w);
}
END_TEST

/* A failing task rolls back its whole transaction: every task of it gets the
 * error, the transaction is still counted once, and the next one is new. */
START_TEST(a_failed_task_fails_its_transaction_only)
{
    world w;
    world_open(&w);
    char order[64] = "";
    probe gate, a, b;
    probe_init(&gate, "gate", 4, order, sizeof order);
    probe_init(&a, "a", 2, order, sizeof order);
    probe_init(&b, "b", 1, order, sizeof order);
    gate.fail = true;
    probe *queued[] = {&a, &b};
    submit_behind_gate(&w, &gate, queued, 2);
    ck_assert_int_eq(gate.task.rc, -1);
    ck_assert_str_eq(gate.task.err.message, "gate failed");
    ck_assert(gate.task.tx_first);
    ck_assert_uint_eq(gate.task.tx_events, 4);
    ck_assert_int_eq(a.task.rc, 0);
    ck_assert_int_eq(b.task.rc, 0);
    ck_assert(a.task.tx_first);
    ck_assert_uint_eq(a.task.tx_events, 3);
    world_close(&w);
}
END_TEST

/* A task submitted again after its done ran starts clean. */
START_TEST(a_reused_task_loses_its_old_mark)
{
    world w;
    world_open(&w);
    char order[64] = "";
    probe gate, a, b;
    probe_init(&gate, "gate", 1, order, sizeof order);
    probe_init(&a, "a", 2, order, sizeof order);
    probe_init(&b, "b", 1, order, sizeof order);
    probe *first[] = {&a, &b};
    submit_behind_gate(&w, &gate, first, 2);
    ck_assert(a.task.tx_first && !b.task.tx_first);
    probe_init(&gate, "gate", 1, order, sizeof order);
    probe *second[] = {&b, &a}; /* now b comes first */
    submit_behind_gate(&w, &gate, second, 2);
    ck_assert(b.task.tx_first && !a.task.tx_first);
    ck_assert_uint_eq(a.task.tx_events, 0);
    ck_assert_uint_eq(b.task.tx_events, 3);
    world_close(&w);
}
END_TEST

/* /metrics shows the store's figures as of the last commit, whoever made it:
 * a transaction of the dispatcher's (no events) refreshes them as well as the
 * ingest's, and a rolled-back one leaves them as they were. */
START_TEST(every_commit_publishes_the_store_figures_and_a_rollback_none)
{
    world w;
    world_open(&w);
    lb_store_stats published = {.wal_pages = 999999};
    lb_store_writer_publish_stats(w.writer, &published);
    char order[64] = "";
    probe a, b;
    probe_init(&a, "a", 0, order, sizeof order);
    a.writes = true;
    lb_store_writer_submit(w.writer, &a.task);
    lb_store_writer_wait_idle(w.writer);
    ck_assert_int_eq(a.task.rc, 0);
    ck_assert_uint_gt(a.task.stats.wal_pages, 0);
    ck_assert_uint_eq(published.wal_pages, a.task.stats.wal_pages);

    published.wal_pages = 12345;
    probe_init(&b, "b", 0, order, sizeof order);
    b.writes = true;
    b.fail = true;
    lb_store_writer_submit(w.writer, &b.task);
    lb_store_writer_wait_idle(w.writer);
    ck_assert_int_eq(b.task.rc, -1);
    ck_assert_uint_eq(published.wal_pages, 12345);

    lb_store_writer_publish_stats(w.writer, NULL);
    probe_init(&a, "a", 0, order, sizeof order);
    a.writes = true;
    lb_store_writer_submit(w.writer, &a.task);
    lb_store_writer_wait_idle(w.writer);
    ck_assert_int_eq(a.task.rc, 0);
    ck_assert_uint_eq(published.wal_pages, 12345);
    world_close(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_writer");
    TCase *tc = tcase_create("grouping");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tasks_queued_during_a_commit_share_the_next_and_it_is_counted_once);
    tcase_add_test(tc, a_transaction_without_events_is_marked_nowhere);
    tcase_add_test(tc, a_failed_task_fails_its_transaction_only);
    tcase_add_test(tc, a_reused_task_loses_its_old_mark);
    tcase_add_test(tc, every_commit_publishes_the_store_figures_and_a_rollback_none);
    suite_add_tcase(s, tc);
    return lb_run_suite_tap(s);
}
