/* test_store.c: what the SQLite store writes is what a stock SQLite reads
 * back, byte for byte, through the write-coalescing VFS
 * (store_sqlite_vfs.c): transactions larger than one write call of the unix
 * VFS and than the shim's buffer, WAL checkpoints in between (SQLite's own,
 * and the checkpoint thread's), a reopen, and the dedupe index afterwards;
 * then the dedupe index itself (store_sqlite_keys.c): within a transaction,
 * across a rollback, by account and source, and after migrating version 5;
 * and that no_upgrade (the commands) leaves an older schema as it is. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_sqlite.h"
#include "tap.h"

#define BODY_LEN 3000

static char dir[64];
static char db_path[96];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/lb-test-store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/store.db", dir);
}

static void remove_dir(void)
{
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", db_path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* A body that differs in every byte position from one event to the next, so
 * a page written to the wrong place or not at all shows. */
static void fill_body(char *body, int n)
{
    for (int i = 0; i < BODY_LEN; i++)
        body[i] = (char)('a' + (i * 7 + n * 13) % 26);
}

/* Stores event `<prefix>-<n>` with body n, inside the open transaction. */
static int put_one(lb_store *s, const char *prefix, int n, lb_store_put_result *r, lb_error *err)
{
    char id[32], body[BODY_LEN];
    snprintf(id, sizeof id, "%s-%d", prefix, n);
    fill_body(body, n);
    lb_event ev = {.source = "hotmart", .source_event_id = id, .type = "purchase.approved",
                   .source_type = "PURCHASE_APPROVED", .lead_email = "buyer@example.com"};
    lb_store_event in = {.account = "acct", .event = &ev, .normalized_json = "{}", .normalized_len = 2,
                         .raw_body = body, .raw_len = BODY_LEN, .raw_content_type = "application/json",
                         .received_at_ms = 1};
    return lb_store_put_event(s, &in, r, err);
}

/* Stores event `id` of account/source with a small body, inside the open transaction. */
static lb_store_put_result put_key(lb_store *s, const char *account, const char *source, const char *id)
{
    lb_event ev = {.source = source, .source_event_id = id, .type = "purchase.approved",
                   .source_type = "PURCHASE_APPROVED", .lead_email = "buyer@example.com"};
    lb_store_event in = {.account = account, .event = &ev, .normalized_json = "{}", .normalized_len = 2,
                         .raw_body = "{}", .raw_len = 2, .raw_content_type = "application/json",
                         .received_at_ms = 1};
    lb_store_put_result r = {0};
    lb_error err = {0};
    ck_assert_msg(lb_store_put_event(s, &in, &r, &err) == 0, "%s", err.message);
    return r;
}

static int64_t count_rows(const char *table)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A fresh directory and a store in it, as the command-line tools open one;
 * `collide`: every event key gets the same hash. */
static void open_fresh_store(lb_store *s, bool collide)
{
    make_dir();
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000};
    ck_assert_msg(lb_store_open(s, db_path, &opts, &err) == 0, "%s", err.message);
    if (collide)
        lb_store_sqlite_collide_keys_for_test(s);
}

/* Closes the store and checks it holds `n` events, each with its key. */
static void close_holding(lb_store *s, int64_t n)
{
    lb_store_close(s);
    ck_assert_int_eq(count_rows("events"), n);
    ck_assert_int_eq(count_rows("event_keys"), n);
    remove_dir();
}

static void put_events(lb_store *s, int first, int count)
{
    lb_error err = {0};
    ck_assert_int_eq(lb_store_begin(s, &err), 0);
    for (int n = first; n < first + count; n++) {
        lb_store_put_result r;
        ck_assert_msg(put_one(s, "ev", n, &r, &err) == 0, "%s", err.message);
        ck_assert(!r.duplicate);
    }
    ck_assert_msg(lb_store_commit(s, &err) == 0, "%s", err.message);
}

/* Reads the file with SQLite's own VFS and checks every row. */
static void check_with_stock_sqlite(int expected)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT source_event_id, raw_body FROM events ORDER BY id", -1, &st,
                                        NULL),
                     SQLITE_OK);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char id[32], body[BODY_LEN];
        snprintf(id, sizeof id, "ev-%d", n);
        fill_body(body, n);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), id);
        ck_assert_int_eq(sqlite3_column_bytes(st, 1), BODY_LEN);
        ck_assert_msg(memcmp(sqlite3_column_blob(st, 1), body, BODY_LEN) == 0, "body of %s differs", id);
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    ck_assert_int_eq(n, expected);
}

/* _i: 0 with SQLite's automatic checkpoints, 1 with the checkpoint thread */
START_TEST(large_transactions_and_checkpoints_read_back_exactly)
{
    make_dir();
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000, .checkpoint_thread = _i == 1};
    ck_assert_msg(lb_store_open(&s, db_path, &opts, &err) == 0, "%s", err.message);
    /* 2,500 events of 3 KB: one transaction of about 8 MB (past the shim's
     * 4 MiB run and the unix VFS's 128 KiB write), then small ones past the
     * 4 MiB auto-checkpoint several times */
    put_events(&s, 0, 2500);
    for (int i = 0; i < 60; i++)
        put_events(&s, 2500 + i * 50, 50);
    check_with_stock_sqlite(5500); /* while the writer is open: WAL plus database */
    lb_store_close(&s);
    check_with_stock_sqlite(5500); /* after the close-time checkpoint */
    remove_dir();
}
END_TEST

/* Below the writer's own rewind threshold (4 MiB) only the thread can copy
 * pages into the database file: its size shows the thread works. */
START_TEST(checkpoint_thread_copies_the_wal_into_the_database)
{
    make_dir();
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000, .checkpoint_thread = true};
    ck_assert_int_eq(lb_store_open(&s, db_path, &opts, &err), 0);
    struct stat st;
    ck_assert_int_eq(stat(db_path, &st), 0);
    off_t empty = st.st_size;
    for (int i = 0; i < 10; i++) /* about 2 MB of WAL */
        put_events(&s, i * 50, 50);
    bool copied = false;
    for (int i = 0; i < 200 && !copied; i++) { /* up to 10 s */
        ck_assert_int_eq(stat(db_path, &st), 0);
        copied = st.st_size > empty + 400 * BODY_LEN;
        if (!copied)
            usleep(50 * 1000);
    }
    ck_assert_msg(copied, "the database file stayed at %lld bytes", (long long)st.st_size);
    check_with_stock_sqlite(500);
    lb_store_close(&s);
    remove_dir();
}
END_TEST

/* A busy machine: a thread that spins on the core the test runs on. */
typedef struct spinner {
    pthread_t thread;
    atomic_bool stop;
} spinner;

static void *spin(void *arg)
{
    spinner *sp = arg;
    while (!atomic_load_explicit(&sp->stop, memory_order_relaxed))
        ;
    return NULL;
}

/* Pins this thread (and the threads it starts from now on) to its current
 * core and starts a spinner there. */
static void busy_one_core(spinner *sp)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    atomic_init(&sp->stop, false);
    ck_assert_int_eq(pthread_create(&sp->thread, NULL, spin, sp), 0);
}

static void spinner_stop(spinner *sp)
{
    atomic_store(&sp->stop, true);
    pthread_join(sp->thread, NULL);
}

/* With the thread copying, only the writer's own rewind (from 4 MiB of WAL)
 * starts the WAL over: without it the WAL would hold every page written.
 * On a busy core the thread (at nice 10) gets little time and the writer's
 * rewinds find it copying; past 16 MiB the writer waits for it (before that
 * wait: 20-34 MB and growing, on one core with a spinner). */
START_TEST(wal_stays_bounded_under_steady_writes)
{
    make_dir();
    spinner busy;
    busy_one_core(&busy);
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000, .checkpoint_thread = true};
    ck_assert_int_eq(lb_store_open(&s, db_path, &opts, &err), 0);
    for (int i = 0; i < 240; i++) /* 12,000 events: about 50 MB of WAL frames in all */
        put_events(&s, i * 50, 50);
    spinner_stop(&busy);
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    struct stat st;
    ck_assert_int_eq(stat(wal, &st), 0);
    /* 16 MiB at most, plus what the writer commits while the thread holds
     * the checkpoint lock; never the whole 12,000 events (over 60 MB) */
    ck_assert_msg(st.st_size < 20 * 1024 * 1024, "the WAL grew to %lld bytes", (long long)st.st_size);
    check_with_stock_sqlite(12000);
    lb_store_close(&s);
    remove_dir();
}
END_TEST

static lb_store_stats stats_of(lb_store *s)
{
    lb_store_stats st;
    lb_store_stats_get(s, &st);
    return st;
}

/* The database file's page size, read with SQLite's own VFS. */
static int page_size_of_file(void)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int size = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return size;
}

/* A database file whose page size is fixed at `size` (a store made before
 * listboss chose its own): a table made and dropped writes the first page. */
static void make_file_with_pages(int size)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d; CREATE TABLE t (x); DROP TABLE t;", size);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Another program's database, locked by it while the daemon opens it as
 * its store: the schema version cannot be read within the busy timeout.
 * Unknown is no store of ours: the open fails. Before, the check took the
 * failed read for "not version 0", and once the lock went (after the read
 * timed out, before the pragmas did) the file was switched to WAL and
 * filled with our tables. */
static void *hold_exclusive(void *arg)
{
    sqlite3 *db = arg;
    usleep(300 * 1000);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

START_TEST(a_locked_foreign_database_is_not_taken_for_a_store)
{
    make_dir();
    sqlite3 *other;
    ck_assert_int_eq(sqlite3_open(db_path, &other), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(other, "CREATE TABLE notes (body TEXT); BEGIN EXCLUSIVE;", NULL, NULL, NULL),
                     SQLITE_OK);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, hold_exclusive, other), 0);
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 200};
    int rc = lb_store_open(&s, db_path, &opts, &err);
    pthread_join(t, NULL);
    if (rc == 0)
        lb_store_close(&s);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_nonnull(strstr(err.message, "locked"));
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(other, "SELECT count(*) FROM sqlite_master", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 1); /* its table alone */
    sqlite3_finalize(st);
    sqlite3_close(other);
    ck_assert_int_eq(page_size_of_file(), 4096); /* and no page of ours */
    remove_dir();
}
END_TEST

/* A reader that keeps one snapshot open (an operator's sqlite3 shell left
 * inside a transaction, say) holds every WAL frame after it: no checkpoint
 * may copy them, so the WAL cannot start over and grows. /metrics shows it:
 * the WAL's pages after each commit, and the commits that found it at its
 * hard size (16 MiB) and waited for a checkpoint. Once the reader lets go,
 * the WAL starts over and the waits stop.
 * _i: 0 a new store, with its 16 KiB pages; 1 a file made with 4 KiB pages,
 * which it keeps, and whose WAL sizes are the same in bytes. */
START_TEST(a_pinned_wal_shows_in_the_stats_and_recovers)
{
    make_dir();
    const int page_size = _i == 0 ? LB_SQLITE_PAGE_SIZE : 4096;
    if (_i == 1)
        make_file_with_pages(page_size);
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000, .checkpoint_thread = true};
    ck_assert_int_eq(lb_store_open(&s, db_path, &opts, &err), 0);
    ck_assert_int_eq(page_size_of_file(), page_size);
    put_events(&s, 0, 10);
    ck_assert_uint_gt(stats_of(&s).wal_pages, 0);
    ck_assert_uint_eq(stats_of(&s).wal_full_waits, 0);

    sqlite3 *reader;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(reader, "SELECT count(*) FROM events", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW); /* the statement's snapshot stays until reset */
    int n = 10;
    for (int i = 0; i < 400 && stats_of(&s).wal_full_waits < 3; i++, n += 50)
        put_events(&s, n, 50);
    lb_store_stats pinned = stats_of(&s);
    ck_assert_uint_ge(pinned.wal_pages, LB_SQLITE_WAL_HARD_BYTES / page_size);
    ck_assert_uint_ge(pinned.wal_full_waits, 3);
    sqlite3_finalize(st);
    sqlite3_close(reader);

    /* free again: within a few commits the WAL starts over */
    uint64_t pages = pinned.wal_pages;
    const uint64_t rewind_pages = LB_SQLITE_WAL_REWIND_BYTES / page_size;
    for (int i = 0; i < 200 && pages >= rewind_pages; i++, n += 50) {
        put_events(&s, n, 50);
        pages = stats_of(&s).wal_pages;
    }
    ck_assert_msg(pages < rewind_pages, "the WAL still holds %llu pages", (unsigned long long)pages);
    uint64_t waits = stats_of(&s).wal_full_waits;
    put_events(&s, n, 50);
    n += 50;
    ck_assert_uint_eq(stats_of(&s).wal_full_waits, waits);
    check_with_stock_sqlite(n);
    lb_store_close(&s);
    remove_dir();
}
END_TEST

/* The disk fills up mid-commit (RLIMIT_FSIZE stands in for it): the commit
 * reports the failure instead of passing for durable, nothing of it is
 * stored, what was committed before stays, and writing works again once
 * there is room. The shim drops a run that failed and reports it from the
 * next sync; this is the case where that matters. */
START_TEST(a_write_that_fails_fails_the_commit_and_loses_nothing_committed)
{
    make_dir();
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000};
    ck_assert_int_eq(lb_store_open(&s, db_path, &opts, &err), 0);
    put_events(&s, 0, 100);
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    struct stat st;
    ck_assert_int_eq(stat(wal, &st), 0);
    struct rlimit old, tight;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    tight = old;
    tight.rlim_cur = (rlim_t)st.st_size + 64 * 1024;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &tight), 0);
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    int rc = 0;
    for (int n = 100000; n < 100200 && rc == 0; n++) { /* about 600 KB: past the limit */
        lb_store_put_result r;
        rc = put_one(&s, "lost", n, &r, &err);
    }
    if (rc == 0)
        rc = lb_store_commit(&s, &err);
    ck_assert_msg(rc != 0, "a commit past the file size limit claimed success");
    lb_store_rollback(&s);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    put_events(&s, 100, 100); /* room again: writing goes on */
    lb_store_close(&s);
    check_with_stock_sqlite(200); /* ev-0 .. ev-199, nothing of the failed commit */
    remove_dir();
}
END_TEST

/* _i = 1: the dedupe index is read at open (the daemon's way), else by the first event */
START_TEST(reopened_store_still_knows_its_events)
{
    make_dir();
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000};
    ck_assert_int_eq(lb_store_open(&s, db_path, &opts, &err), 0);
    put_events(&s, 0, 300);
    lb_store_close(&s);
    opts.load_event_keys = _i == 1;
    ck_assert_int_eq(lb_store_open(&s, db_path, &opts, &err), 0);
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    lb_store_put_result r;
    ck_assert_int_eq(put_one(&s, "ev", 7, &r, &err), 0);
    ck_assert(r.duplicate);
    ck_assert_int_eq(r.event_id, 8); /* ids start at 1 */
    ck_assert_int_eq(lb_store_commit(&s, &err), 0);
    lb_store_close(&s);
    check_with_stock_sqlite(300);
    remove_dir();
}
END_TEST

START_TEST(a_second_copy_in_the_same_transaction_is_a_duplicate)
{
    lb_store s;
    lb_error err = {0};
    open_fresh_store(&s, false);
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    lb_store_put_result first = put_key(&s, "acct", "hotmart", "e-1");
    lb_store_put_result again = put_key(&s, "acct", "hotmart", "e-1");
    ck_assert(!first.duplicate);
    ck_assert(again.duplicate);
    ck_assert_int_eq(again.event_id, first.event_id);
    ck_assert_int_eq(lb_store_commit(&s, &err), 0);
    close_holding(&s, 1);
}
END_TEST

/* The key is account, source and id together: a part can neither be left
 * out nor run into the next one ("ab"+"c" is not "a"+"bc"). _i = 1: every
 * key has the same hash, so the comparison with the stored key decides. */
START_TEST(the_same_id_under_another_account_or_source_is_a_new_event)
{
    lb_store s;
    lb_error err = {0};
    open_fresh_store(&s, _i == 1);
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    const char *keys[][3] = {{"a", "hotmart", "x"}, {"b", "hotmart", "x"}, {"a", "shop", "x"},
                             {"ab", "c", "x"},      {"a", "bc", "x"},      {"a", "hotmart", "X"}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        ck_assert_msg(!put_key(&s, keys[i][0], keys[i][1], keys[i][2]).duplicate, "key %zu", i);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        lb_store_put_result r = put_key(&s, keys[i][0], keys[i][1], keys[i][2]);
        ck_assert_msg(r.duplicate && r.event_id == (int64_t)i + 1, "key %zu", i);
    }
    ck_assert_int_eq(lb_store_commit(&s, &err), 0);
    close_holding(&s, 6);
}
END_TEST

/* A rolled back key is stored again, as new, and the committed ones stay
 * known; _i = 1 with every key under one hash. The id of the rolled back
 * event is taken by the next one: what the map kept for it must not match. */
START_TEST(a_rolled_back_event_can_be_stored_again)
{
    lb_store s;
    lb_error err = {0};
    open_fresh_store(&s, _i == 1);
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    int64_t kept = put_key(&s, "acct", "hotmart", "kept").event_id;
    ck_assert_int_eq(lb_store_commit(&s, &err), 0);
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    ck_assert(!put_key(&s, "acct", "hotmart", "undone").duplicate);
    lb_store_rollback(&s);
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    lb_store_put_result other = put_key(&s, "acct", "hotmart", "other");
    ck_assert(!other.duplicate);
    ck_assert_int_eq(other.event_id, kept + 1); /* the undone one's id */
    ck_assert(!put_key(&s, "acct", "hotmart", "undone").duplicate);
    lb_store_put_result r = put_key(&s, "acct", "hotmart", "kept");
    ck_assert(r.duplicate);
    ck_assert_int_eq(r.event_id, kept);
    ck_assert_int_eq(lb_store_commit(&s, &err), 0);
    close_holding(&s, 3);
}
END_TEST

START_TEST(storing_outside_a_transaction_is_refused)
{
    lb_store s;
    lb_error err = {0};
    open_fresh_store(&s, false);
    lb_event ev = {.source = "hotmart", .source_event_id = "e", .type = "t", .source_type = "T"};
    lb_store_event in = {.account = "acct", .event = &ev, .normalized_json = "{}", .normalized_len = 2,
                         .raw_body = "{}", .raw_len = 2, .raw_content_type = "application/json"};
    lb_store_put_result r;
    ck_assert_int_eq(lb_store_put_event(&s, &in, &r, &err), -1);
    ck_assert_str_eq(err.message, "storing an event outside a transaction");
    lb_store_close(&s);
    remove_dir();
}
END_TEST

/* The outbox as migration 2 made it: its state check an IN list. */
static const char *const jobs_v2 =
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, account TEXT NOT NULL, integration TEXT NOT NULL,"
    " lead_email TEXT NOT NULL, action TEXT NOT NULL, params TEXT NOT NULL, lead TEXT NOT NULL,"
    " idempotency_key TEXT NOT NULL UNIQUE, event_id INTEGER NOT NULL, segmentation_id INTEGER NOT NULL,"
    " action_index INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('ready','done','dead')),"
    " attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, last_status INTEGER, last_reason TEXT);"
    "CREATE INDEX jobs_ready ON jobs (id) WHERE state = 'ready';"
    "CREATE INDEX jobs_dead ON jobs (account, id) WHERE state = 'dead';";

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
    sqlite3_free(msg);
}

/* A store made by this build, then taken back to an older version by hand
 * (each SQL text in turn; the last sets user_version). */
static void make_downgraded_store(const char *drop, const char *create, const char *fill)
{
    lb_store s;
    open_fresh_store(&s, false);
    lb_store_close(&s);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    exec_ok(db, drop);
    exec_ok(db, create);
    exec_ok(db, fill);
    sqlite3_close(db);
}

/* ... then opened again, which migrates it forward. */
static void open_downgraded_store(lb_store *s, const char *drop, const char *create, const char *fill)
{
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000};
    make_downgraded_store(drop, create, fill);
    ck_assert_msg(lb_store_open(s, db_path, &opts, &err) == 0, "%s", err.message);
}

/* Migration 7 rebuilds the outbox with its state check spelled without IN
 * (an IN list cost an ephemeral b-tree per insert and update): every job
 * keeps its columns, ids and indexes, and a state outside the three is still
 * refused. */
START_TEST(migration_7_keeps_the_jobs_and_their_check)
{
    lb_store s;
    open_downgraded_store(&s, "DROP TABLE jobs;", jobs_v2,
                          "INSERT INTO jobs VALUES (7, 'acct', 'crm', 'a@example.com', 'tag_add', '{\"tag\":\"x\"}',"
                          " '{\"name\":\"A\"}', '3:1:0', 3, 1, 0, 'ready', 0, 100, 200, 100, NULL, NULL);"
                          "INSERT INTO jobs VALUES (8, 'acct', 'crm', 'b@example.com', 'list_add', '{}', '{}', '3:2:0',"
                          " 3, 2, 0, 'dead', 5, 100, 900, 950, 422, 'invalid e-mail');"
                          "PRAGMA user_version = 6;");
    lb_store_close(&s);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT sql FROM sqlite_master WHERE name = 'jobs'),"
                                        " (SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
                                        "  WHERE type = 'index' AND tbl_name = 'jobs' ORDER BY name)),"
                                        " (SELECT count(*) FROM sqlite_master WHERE name = 'jobs_v6'),"
                                        " group_concat(id || '|' || account || '|' || integration || '|' || lead_email"
                                        "  || '|' || action || '|' || params || '|' || lead || '|' || idempotency_key"
                                        "  || '|' || event_id || '|' || segmentation_id || '|' || action_index || '|'"
                                        "  || state || '|' || attempts || '|' || created_at || '|' || next_attempt_at"
                                        "  || '|' || updated_at || '|' || ifnull(last_status, '-') || '|'"
                                        "  || ifnull(last_reason, '-'), ';')"
                                        " FROM (SELECT * FROM jobs ORDER BY id)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    const char *sql = (const char *)sqlite3_column_text(st, 0);
    ck_assert_ptr_null(strstr(sql, " IN ("));
    ck_assert_ptr_nonnull(strstr(sql, "state = 'ready' OR state = 'done' OR state = 'dead'"));
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 1), "jobs_dead,jobs_ready,sqlite_autoindex_jobs_1");
    ck_assert_int_eq(sqlite3_column_int(st, 2), 0);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 3),
                     "7|acct|crm|a@example.com|tag_add|{\"tag\":\"x\"}|{\"name\":\"A\"}|3:1:0|3|1|0|ready|0|100|200|"
                     "100|-|-;8|acct|crm|b@example.com|list_add|{}|{}|3:2:0|3|2|0|dead|5|100|900|950|422|"
                     "invalid e-mail");
    sqlite3_finalize(st);
    ck_assert_int_eq(sqlite3_exec(db, "UPDATE jobs SET state = 'gone' WHERE id = 7", NULL, NULL, NULL),
                     SQLITE_CONSTRAINT);
    ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO jobs (account, integration, lead_email, action, params, lead,"
                                      " idempotency_key, event_id, segmentation_id, action_index, state, created_at,"
                                      " next_attempt_at, updated_at) VALUES ('a', 'i', 'e', 'x', '{}', '{}',"
                                      " '3:1:0', 3, 1, 0, 'ready', 1, 1, 1)",
                                  NULL, NULL, NULL),
                     SQLITE_CONSTRAINT); /* the idempotency key is still unique */
    sqlite3_close(db);
    remove_dir();
}
END_TEST

/* Club activity as migration 3 made it: a rowid table and its key's autoindex. */
static const char *const club_activity_v3 =
    "CREATE TABLE club_activity (account TEXT NOT NULL, product_id TEXT NOT NULL, lead_email TEXT NOT NULL,"
    " last_access_at INTEGER NOT NULL DEFAULT 0, max_progress REAL NOT NULL DEFAULT -1,"
    " PRIMARY KEY (account, product_id, lead_email));";

static void collect_club_row(const lb_club_activity *a, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%s|%s|%s|%lld|%g;", a->account, a->product_id, a->lead_email,
             (long long)a->last_access_ms, a->max_progress);
}

/* Migration 8 rebuilds club_activity WITHOUT ROWID: its rows survive, no
 * autoindex is left beside it (the key is stored once, and an upsert goes
 * down one b-tree), and
 * the store's upsert still keeps the latest access and the highest progress. */
START_TEST(migration_8_keys_club_activity_by_its_primary_key_alone)
{
    lb_store s;
    lb_error err = {0};
    open_downgraded_store(&s, "DROP TABLE club_activity;", club_activity_v3,
                          "INSERT INTO club_activity VALUES ('acct', '7', 'a@example.com', 1000, 0.5);"
                          "INSERT INTO club_activity VALUES ('acct', '7', 'b@example.com', 0, 0.25);"
                          "PRAGMA user_version = 7;");
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    lb_club_activity later = {"acct", "7", "a@example.com", 2000, 0.25}; /* a later login, less progress */
    lb_club_activity earlier = {"acct", "7", "b@example.com", 0, 0.75};  /* no login, more progress */
    lb_club_activity fresh = {"acct", "8", "a@example.com", 3000, -1};
    ck_assert_int_eq(lb_store_put_club_activity(&s, &later, &err), 0);
    ck_assert_int_eq(lb_store_put_club_activity(&s, &earlier, &err), 0);
    ck_assert_int_eq(lb_store_put_club_activity(&s, &fresh, &err), 0);
    ck_assert_int_eq(lb_store_commit(&s, &err), 0);
    char rows[512] = "";
    ck_assert_int_eq(lb_store_load_club_activity(&s, collect_club_row, rows, &err), 0);
    ck_assert_str_eq(rows, "acct|7|a@example.com|2000|0.5;acct|7|b@example.com|0|0.75;acct|8|a@example.com|3000|-1;");
    lb_store_close(&s);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT sql FROM sqlite_master WHERE name = 'club_activity'),"
                                        " (SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                                        "  tbl_name = 'club_activity'),"
                                        " (SELECT count(*) FROM sqlite_master WHERE name = 'club_activity_v8')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_ptr_nonnull(strstr((const char *)sqlite3_column_text(st, 0), "WITHOUT ROWID"));
    ck_assert_int_eq(sqlite3_column_int(st, 1), 0);
    ck_assert_int_eq(sqlite3_column_int(st, 2), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_dir();
}
END_TEST

/* The schema version and club_activity's SQL, read from the file. */
static void read_schema(int *version, char *club_sql, size_t size)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT user_version FROM pragma_user_version),"
                                        " (SELECT sql FROM sqlite_master WHERE name = 'club_activity')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    *version = sqlite3_column_int(st, 0);
    snprintf(club_sql, size, "%s", (const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* no_upgrade (the commands, which may run beside an older daemon): a store
 * of this build's schema opens; an older one is refused, saying so, and left
 * as it was. */
START_TEST(no_upgrade_opens_a_current_store_and_leaves_an_older_one_alone)
{
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000, .must_exist = true, .no_upgrade = true};
    open_fresh_store(&s, false);
    lb_store_close(&s);
    ck_assert_msg(lb_store_open(&s, db_path, &opts, &err) == 0, "%s", err.message);
    lb_store_close(&s);
    remove_dir();
    make_downgraded_store("DROP TABLE club_activity;", club_activity_v3,
                          "INSERT INTO club_activity VALUES ('acct', '7', 'a@example.com', 1000, 0.5);"
                          "PRAGMA user_version = 7;");
    ck_assert_int_eq(lb_store_open(&s, db_path, &opts, &err), LB_STORE_NEEDS_UPGRADE);
    ck_assert_msg(strstr(err.message, "needs an upgrade (version 7 -> 8)"), "%s", err.message);
    int version;
    char club_sql[512];
    read_schema(&version, club_sql, sizeof club_sql);
    ck_assert_int_eq(version, 7);
    ck_assert_ptr_null(strstr(club_sql, "WITHOUT ROWID"));
    ck_assert_int_eq(count_rows("club_activity"), 1);
    remove_dir();
}
END_TEST

/* A database of version 5 (a unique index on the events' keys) loses the
 * index, and its events' keys move to event_keys: they are still known. */
START_TEST(a_version_5_database_keeps_knowing_its_events)
{
    make_dir();
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    const char *v5 =
        "CREATE TABLE events (id INTEGER PRIMARY KEY, account TEXT NOT NULL, source TEXT NOT NULL,"
        " source_event_id TEXT NOT NULL, type TEXT NOT NULL, source_type TEXT NOT NULL, product_id TEXT,"
        " lead_email TEXT, occurred_at INTEGER, received_at INTEGER NOT NULL,"
        " status TEXT NOT NULL CHECK (status IN ('accepted','ignored')), is_test INTEGER NOT NULL DEFAULT 0,"
        " normalized TEXT NOT NULL, raw_content_type TEXT NOT NULL, raw_body BLOB NOT NULL,"
        " UNIQUE (account, source, source_event_id));"
        "INSERT INTO events VALUES (5, 'acct', 'hotmart', 'old-5', 'purchase.approved', 'PURCHASE_APPROVED',"
        " '1', 'a@example.com', 10, 20, 'accepted', 0, '{\"n\":5}', 'application/json', x'7b7d');"
        "INSERT INTO events VALUES (9, 'acct', 'hotmart', 'old-9', 'purchase.refunded', 'PURCHASE_REFUNDED',"
        " NULL, NULL, NULL, 30, 'ignored', 1, '{\"n\":9}', 'application/x-www-form-urlencoded', x'6869');"
        "PRAGMA user_version = 5;";
    exec_ok(db, v5);
    exec_ok(db, jobs_v2);
    exec_ok(db, club_activity_v3);
    sqlite3_close(db);
    lb_store s;
    lb_error err = {0};
    lb_store_options opts = {.sync_full = true, .busy_timeout_ms = 1000};
    ck_assert_msg(lb_store_open(&s, db_path, &opts, &err) == 0, "%s", err.message);
    ck_assert_int_eq(lb_store_begin(&s, &err), 0);
    lb_store_put_result r = put_key(&s, "acct", "hotmart", "old-9");
    ck_assert(r.duplicate);
    ck_assert_int_eq(r.event_id, 9);
    r = put_key(&s, "acct", "hotmart", "new");
    ck_assert(!r.duplicate);
    ck_assert_int_eq(r.event_id, 10); /* ids go on from the old rows */
    ck_assert_int_eq(lb_store_commit(&s, &err), 0);
    lb_store_close(&s);
    ck_assert_int_eq(count_rows("event_keys"), 3);
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                                        " tbl_name = 'events'), normalized, raw_content_type, hex(raw_body), status,"
                                        " is_test, received_at FROM events WHERE id = 9",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 0); /* no index left on events */
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 1), "{\"n\":9}");
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 2), "application/x-www-form-urlencoded");
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 3), "6869");
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 4), "ignored");
    ck_assert_int_eq(sqlite3_column_int(st, 5), 1);
    ck_assert_int_eq(sqlite3_column_int(st, 6), 30);
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_dir();
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("store");
    TCase *tc = tcase_create("sqlite");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, large_transactions_and_checkpoints_read_back_exactly, 0, 2);
    tcase_add_test(tc, checkpoint_thread_copies_the_wal_into_the_database);
    tcase_add_test(tc, migration_7_keeps_the_jobs_and_their_check);
    tcase_add_test(tc, migration_8_keys_club_activity_by_its_primary_key_alone);
    tcase_add_test(tc, no_upgrade_opens_a_current_store_and_leaves_an_older_one_alone);
    tcase_add_test(tc, wal_stays_bounded_under_steady_writes);
    tcase_add_loop_test(tc, a_pinned_wal_shows_in_the_stats_and_recovers, 0, 2);
    tcase_add_test(tc, a_locked_foreign_database_is_not_taken_for_a_store);
    tcase_add_test(tc, a_write_that_fails_fails_the_commit_and_loses_nothing_committed);
    tcase_add_loop_test(tc, reopened_store_still_knows_its_events, 0, 2);
    tcase_add_test(tc, a_second_copy_in_the_same_transaction_is_a_duplicate);
    tcase_add_loop_test(tc, the_same_id_under_another_account_or_source_is_a_new_event, 0, 2);
    tcase_add_loop_test(tc, a_rolled_back_event_can_be_stored_again, 0, 2);
    tcase_add_test(tc, storing_outside_a_transaction_is_refused);
    tcase_add_test(tc, a_version_5_database_keeps_knowing_its_events);
    suite_add_tcase(suite, tc);
    return lb_run_suite_tap(suite);
}
