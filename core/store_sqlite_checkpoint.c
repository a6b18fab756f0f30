/* store_sqlite_checkpoint.c: WAL checkpoints on their own thread.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses the
 * threshold: that commit copies a thousand pages into the database and
 * fsyncs it before it returns, and every request of its batch waits. Here
 * the writer's WAL hook only wakes a thread with its own connection, which
 * copies pages (PASSIVE: it never blocks the writer) while the writer goes
 * on committing.
 *
 * The thread alone cannot rewind the WAL: SQLite starts it again from the
 * top only when a write transaction begins with every frame copied, which a
 * busy writer rarely sees while another thread copies. So once the WAL is
 * four times the threshold long, the writer runs a passive checkpoint itself
 * after its commit; the thread has copied nearly everything by then, so it
 * costs little, and the next transaction rewinds the WAL. If the thread is
 * copying at that moment the writer's attempt returns at once (SQLITE_BUSY)
 * and the next commit tries again: up to there the writer never waits.
 *
 * On a machine too busy to give the thread (at nice 10) its share, those
 * attempts keep failing and the WAL would grow without end (a unit test on
 * one core with a spinning thread beside it saw 20-34 MB and rising). So at
 * four times the rewind size the writer waits for the thread's pass to end
 * and checkpoints itself, with the thread held off: commits slow down to
 * the speed of the checkpoint, which bounds the WAL. */
#include "store_sqlite_int.h"
#include "log.h"
#include "store_sqlite.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

/* The WAL's sizes (store_sqlite.h) are in bytes and turned into pages for
 * the store's page size. A 4 MiB WAL rather than 16: each rewind leaves
 * less for the writer's own checkpoint to finish, and p99 fell from 7.8-8.9
 * to 5.5-7.6 ms with 4 KiB pages (docs/benchmarks.md), and from 4.5-5.5 to
 * 4.0-4.3 ms with 16 KiB ones. */

struct lb_sqlite_checkpointer {
    sqlite3 *db; /* the thread's own connection */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle;   /* the thread finished a pass */
    bool requested, stopping;
    bool copying;          /* the thread is inside a checkpoint */
    bool writer_copying;   /* the writer is: the thread must not start one */
    /* the WAL's sizes in pages (LB_*_BYTES at the store's page size) */
    int checkpoint_pages, rewind_pages, hard_pages;
    /* the writer's own, set in its WAL hook */
    uint64_t wal_pages;    /* the WAL's length after the last commit */
    uint64_t full_waits;   /* the writer's waits at the hard size, for /metrics */
    uint64_t warned_waits; /* full_waits at the last warning */
    time_t warned_at;      /* one warning a minute at most */
};

static void *checkpointer_main(void *arg)
{
    lb_sqlite_checkpointer *c = arg;
    pthread_setname_np(pthread_self(), "lb-checkpoint");
    /* background work: on a busy machine the loop and the writer, whose
     * time every request waits for, go first (ignored if not allowed) */
    setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while ((!c->requested || c->writer_copying) && !c->stopping)
            pthread_cond_wait(&c->wake, &c->lock);
        if (c->stopping)
            break;
        c->requested = false;
        c->copying = true;
        pthread_mutex_unlock(&c->lock);
        int wal_pages = 0, copied = 0;
        sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal_pages, &copied);
        pthread_mutex_lock(&c->lock);
        c->copying = false;
        pthread_cond_signal(&c->idle);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* At most once a minute: how many commits waited since the last warning. */
static void warn_of_waits(lb_sqlite_checkpointer *c)
{
    time_t now = time(NULL);
    if (now - c->warned_at < 60)
        return;
    char n[24], pages[24];
    snprintf(n, sizeof n, "%llu", (unsigned long long)(c->full_waits - c->warned_waits));
    snprintf(pages, sizeof pages, "%llu", (unsigned long long)c->wal_pages);
    lb_log(LB_LOG_WARN,
           "the WAL reached its hard size; commits waited for a checkpoint (is the machine overloaded, "
           "or is a reader holding an old snapshot?)",
           "waits", n, "wal_pages", pages, NULL);
    c->warned_waits = c->full_waits;
    c->warned_at = now;
}

/* The writer, with the WAL at its hard size: waits for the thread's pass,
 * then copies what is left with the thread held off. */
static void writer_checkpoint_waiting(lb_sqlite_checkpointer *c, sqlite3 *writer_db, const char *name)
{
    pthread_mutex_lock(&c->lock);
    while (c->copying)
        pthread_cond_wait(&c->idle, &c->lock);
    c->writer_copying = true;
    pthread_mutex_unlock(&c->lock);
    int log = 0, copied = 0;
    sqlite3_wal_checkpoint_v2(writer_db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    pthread_mutex_lock(&c->lock);
    c->writer_copying = false;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    c->full_waits++; /* the writer's own fields from here on */
    warn_of_waits(c);
}

/* The writer's WAL hook, after each commit. */
static int on_wal_commit(void *arg, sqlite3 *writer_db, const char *name, int wal_pages)
{
    lb_sqlite_checkpointer *c = arg;
    c->wal_pages = (uint64_t)wal_pages;
    if (wal_pages >= c->hard_pages) {
        writer_checkpoint_waiting(c, writer_db, name);
        return SQLITE_OK;
    }
    if (wal_pages >= c->rewind_pages) {
        int log = 0, copied = 0;
        sqlite3_wal_checkpoint_v2(writer_db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
        return SQLITE_OK;
    }
    if (wal_pages >= c->checkpoint_pages) {
        pthread_mutex_lock(&c->lock);
        c->requested = true;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
    }
    return SQLITE_OK;
}

static void size_the_wal(lb_sqlite_checkpointer *c, int page_size)
{
    c->checkpoint_pages = LB_SQLITE_WAL_CHECKPOINT_BYTES / page_size;
    c->rewind_pages = LB_SQLITE_WAL_REWIND_BYTES / page_size;
    c->hard_pages = LB_SQLITE_WAL_HARD_BYTES / page_size;
}

lb_sqlite_checkpointer *lb_sqlite_checkpointer_start(sqlite3 *writer_db, const char *path, const char *vfs,
                                                     bool sync_full, lb_error *err)
{
    lb_sqlite_checkpointer *c = calloc(1, sizeof *c);
    if (!c) {
        lb_fail(err, "database", "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    /* A connection that has read nothing has not opened the WAL yet, and
     * its checkpoints silently do nothing: read the schema once. The sync
     * level decides whether a checkpoint syncs the database before it
     * publishes what it copied: the writer's. */
    const char *setup = sync_full ? "PRAGMA synchronous=FULL; SELECT count(*) FROM sqlite_master;"
                                  : "PRAGMA synchronous=NORMAL; SELECT count(*) FROM sqlite_master;";
    if (sqlite3_open_v2(path, &c->db, flags, vfs) != SQLITE_OK ||
        sqlite3_exec(c->db, setup, NULL, NULL, NULL) != SQLITE_OK) {
        lb_sqlite_fail(err, c->db, "opening the checkpoint connection");
        sqlite3_close_v2(c->db);
        free(c);
        return NULL;
    }
    size_the_wal(c, lb_sqlite_page_size(writer_db));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    pthread_cond_init(&c->idle, NULL);
    if (pthread_create(&c->thread, NULL, checkpointer_main, c) != 0) {
        lb_fail(err, "database", "cannot start the checkpoint thread");
        sqlite3_close_v2(c->db);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->wake);
        pthread_cond_destroy(&c->idle);
        free(c);
        return NULL;
    }
    sqlite3_wal_hook(writer_db, on_wal_commit, c); /* replaces the automatic checkpoint */
    return c;
}

/* Before the writer's connection closes, so that the last one out (the
 * writer) checkpoints everything and removes the WAL. */
void lb_sqlite_checkpointer_stop(lb_sqlite_checkpointer *c, sqlite3 *writer_db)
{
    if (!c)
        return;
    sqlite3_wal_hook(writer_db, NULL, NULL);
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    sqlite3_close_v2(c->db);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->idle);
    free(c);
}

void lb_sqlite_checkpointer_stats(const lb_sqlite_checkpointer *c, lb_store_stats *out)
{
    out->wal_pages = c->wal_pages;
    out->wal_full_waits = c->full_waits;
}
