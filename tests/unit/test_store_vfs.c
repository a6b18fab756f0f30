/* test_store_vfs.c: the write-coalescing VFS (store_sqlite_vfs.c) when a
 * write fails. RLIMIT_FSIZE, with SIGXFSZ ignored, stands in for a full
 * disk; Check runs each test in a process of its own, so the limit and the
 * handler go with it. A checkpoint pass that fails leaves no lock behind and
 * no page that could land later over newer ones; a checkpoint that copies
 * only part of the WAL (SQLite does not sync the database then) does not
 * publish pages it could not write; and on a handle that collects writes, a
 * run that fails is dropped, its error comes back from the next sync
 * whatever call met it, and unlocks reach the file. */
#include <signal.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_sqlite_int.h"
#include "tap.h"

#define PAGE 4096

static char dir[64];
static char db_path[96];
static char wal_path[112];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/lb-test-vfs.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/store.db", dir);
    snprintf(wal_path, sizeof wal_path, "%s-wal", db_path);
}

static void remove_dir(void)
{
    const char *suffixes[] = {"", "-wal", "-shm", "-wal-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", db_path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

static long file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

/* No file may grow past `bytes` from here on: the disk is full. */
static void limit_files_to(long bytes)
{
    signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
    struct rlimit lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
    lim.rlim_cur = (rlim_t)bytes;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void lift_limit(void)
{
    struct rlimit lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
    lim.rlim_cur = lim.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
}

static sqlite3 *open_db(const char *vfs, int flags)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, flags, vfs), SQLITE_OK);
    exec_ok(db, "PRAGMA synchronous=FULL;"); /* the shim's condition (store_sqlite.c) */
    return db;
}

/* The writer's connection on the shim, its WAL empty, autocheckpoints off
 * (the daemon checkpoints on its own, store_sqlite_checkpoint.c). */
static sqlite3 *open_writer(const char *create)
{
    const char *vfs = lb_sqlite_coalescing_vfs();
    ck_assert_ptr_nonnull(vfs);
    sqlite3 *w = open_db(vfs, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    exec_ok(w, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;");
    sqlite3_wal_autocheckpoint(w, 0);
    exec_ok(w, create);
    exec_ok(w, "PRAGMA wal_checkpoint(TRUNCATE);");
    return w;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    ck_assert_msg(rc == SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* What a stock SQLite reads now: a sound file, and `rows` rows of t, every
 * one starting with `prefix`. */
static void check_with_stock_sqlite(int rows, const char *prefix)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE substr(v, 1, 3) = '%s'", prefix);
    ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), rows);
    ck_assert_int_eq(query_int(db, sql), rows);
    sqlite3_close(db);
}

static int checkpoint(sqlite3 *db, int mode, int *log, int *copied)
{
    return sqlite3_wal_checkpoint_v2(db, NULL, mode, log, copied);
}

/* The reviewer's case: the checkpoint thread's pass fails while it extends
 * the database. Its connection must keep no lock (the writer's checkpoints
 * would be busy for good and the WAL would never rewind) and no page of that
 * pass (a later flush would write it over the newer one the writer copies). */
START_TEST(a_failed_checkpoint_pass_leaves_no_lock_and_no_stale_page)
{
    make_dir();
    sqlite3 *w = open_writer("CREATE TABLE pad(x); CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                             "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 500)"
                             " INSERT INTO pad SELECT randomblob(3000) FROM r;");
    sqlite3 *c = open_db(lb_sqlite_coalescing_vfs(), SQLITE_OPEN_READWRITE); /* the checkpoint thread's */
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM sqlite_master"), 2);
    /* committed, on new pages past the end of the database file */
    exec_ok(w, "INSERT INTO t(v) SELECT 'v1-' || hex(randomblob(250)) FROM pad LIMIT 40;");
    int log = 0, copied = 0;
    limit_files_to(file_size(db_path));
    ck_assert_int_ne(checkpoint(c, SQLITE_CHECKPOINT_PASSIVE, &log, &copied), SQLITE_OK);
    lift_limit();
    exec_ok(w, "UPDATE t SET v = replace(v, 'v1-', 'v2-');");
    long wal_bytes = 0;
    for (int k = 0; k < 4; k++) { /* each commit after a whole copy starts the WAL over */
        ck_assert_int_eq(checkpoint(w, SQLITE_CHECKPOINT_PASSIVE, &log, &copied), SQLITE_OK);
        ck_assert_int_eq(copied, log);
        exec_ok(w, "INSERT INTO pad SELECT randomblob(3000) FROM pad LIMIT 50;");
        if (k == 0)
            wal_bytes = file_size(wal_path);
        ck_assert_int_le(file_size(wal_path), wal_bytes);
    }
    /* the checkpoint connection works again (its first pass may still report
     * the old failure, see store_sqlite_vfs.c) and writes nothing stale */
    checkpoint(c, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    exec_ok(w, "INSERT INTO pad SELECT randomblob(3000) FROM pad LIMIT 5;");
    ck_assert_int_eq(checkpoint(c, SQLITE_CHECKPOINT_PASSIVE, &log, &copied), SQLITE_OK);
    ck_assert_int_eq(copied, log);
    ck_assert_int_eq(sqlite3_close(c), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(w), SQLITE_OK);
    check_with_stock_sqlite(40, "v2-");
    remove_dir();
}
END_TEST

/* A reader's snapshot holds the checkpoint below the WAL's end, so SQLite
 * publishes what it copied (nBackfill) without syncing the database or
 * asking the VFS anything after its last page write. A page it could not
 * write must fail that write: published, a new reader would take it from the
 * database, and no later checkpoint would copy it again. */
START_TEST(a_checkpoint_short_of_the_wal_end_publishes_no_page_it_lost)
{
    make_dir();
    sqlite3 *w = open_writer("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE u(x);");
    sqlite3 *c = open_db(lb_sqlite_coalescing_vfs(), SQLITE_OPEN_READWRITE);
    sqlite3 *r = open_db(NULL, SQLITE_OPEN_READWRITE);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM sqlite_master"), 2);
    exec_ok(w, "WITH RECURSIVE q(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM q WHERE i < 40)"
               " INSERT INTO t(v) SELECT 'v1-' || hex(randomblob(1500)) FROM q;");
    exec_ok(r, "BEGIN;");
    ck_assert_int_eq(query_int(r, "SELECT count(*) FROM t"), 40);
    exec_ok(w, "INSERT INTO u VALUES (1);"); /* past the reader's snapshot */
    int log = 0, copied = 0;
    limit_files_to(file_size(db_path));
    int rc = checkpoint(c, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    lift_limit();
    exec_ok(r, "COMMIT;");
    sqlite3 *fresh = open_db(NULL, SQLITE_OPEN_READONLY);
    ck_assert_int_eq(query_int(fresh, "SELECT count(*) FROM t WHERE substr(v, 1, 3) = 'v1-'"), 40);
    sqlite3_close(fresh);
    ck_assert_msg(rc != SQLITE_OK, "a checkpoint that could not write its pages reported %d of %d copied", copied,
                  log);
    ck_assert_int_eq(checkpoint(w, SQLITE_CHECKPOINT_TRUNCATE, &log, &copied), SQLITE_OK);
    ck_assert_int_eq(file_size(wal_path), 0);
    sqlite3_close(r);
    ck_assert_int_eq(sqlite3_close(c), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(w), SQLITE_OK);
    check_with_stock_sqlite(40, "v1-");
    remove_dir();
}
END_TEST

/* The default VFS, except that a WAL is opened as a database, so it takes
 * locks and maps a wal-index (the unix VFS gives a WAL neither): the shim
 * collects a WAL's writes, and over this its unlocks can be seen. */
static int open_as_database(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    flags = (flags & ~SQLITE_OPEN_WAL) | SQLITE_OPEN_MAIN_DB;
    return real->xOpen(real, name, f, flags, out);
}

/* Registered as the default before the shim's first use, so the shim runs
 * over it: this needs the test in a process of its own (Check's default). */
static sqlite3_vfs *lockable_under_shim(void)
{
    static sqlite3_vfs lockable;
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    lockable = *real;
    lockable.zName = "lb-test-lockable";
    lockable.pAppData = real;
    lockable.xOpen = open_as_database;
    ck_assert_int_eq(sqlite3_vfs_register(&lockable, 1), SQLITE_OK);
    sqlite3_vfs *shim = sqlite3_vfs_find(lb_sqlite_coalescing_vfs());
    ck_assert_msg(shim && shim->pAppData == &lockable, "the shim was registered before this test (CK_FORK=no?)");
    return shim;
}

/* A handle opened as SQLite opens a WAL, on a name made as SQLite makes its
 * names (the unix VFS reads URI parameters behind it). */
static sqlite3_file *open_raw(sqlite3_vfs *vfs, sqlite3_filename name)
{
    sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile);
    ck_assert_ptr_nonnull(f);
    int out = 0;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL;
    ck_assert_int_eq(vfs->xOpen(vfs, name, f, flags, &out), SQLITE_OK);
    return f;
}

static void close_raw(sqlite3_file *f)
{
    f->pMethods->xClose(f);
    free(f);
}

static void write_page(sqlite3_file *f, char fill, sqlite3_int64 offset)
{
    char page[PAGE];
    memset(page, fill, sizeof page);
    ck_assert_int_eq(f->pMethods->xWrite(f, page, PAGE, offset), SQLITE_OK);
}

/* A page is collected, the disk fills, and the first call to flush it is
 * an unlock (SQLite ignores what unlocks return): the unlock still happens,
 * the page never reaches the file, not even once there is room again, and
 * the next sync, the call SQLite counts on, reports the failure once. */
static void check_unlock_after_failed_flush(sqlite3_file *f, sqlite3_file *other, void (*unlock)(sqlite3_file *),
                                            bool (*can_lock)(sqlite3_file *))
{
    long size = file_size(wal_path);
    write_page(f, 'b', size);
    limit_files_to(size);
    unlock(f);
    lift_limit();
    ck_assert_msg(can_lock(other), "the unlock did not reach the file");
    ck_assert_int_ne(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
    ck_assert_int_eq(file_size(wal_path), size);
    ck_assert_int_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
    ck_assert_int_eq(file_size(wal_path), size);
    write_page(f, 'c', size); /* and the handle writes again */
    ck_assert_int_eq(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
    ck_assert_int_eq(file_size(wal_path), size + PAGE);
}

static void file_unlock(sqlite3_file *f) { f->pMethods->xUnlock(f, SQLITE_LOCK_NONE); }

static bool can_lock_exclusive(sqlite3_file *f)
{
    const sqlite3_io_methods *m = f->pMethods;
    bool ok = m->xLock(f, SQLITE_LOCK_SHARED) == SQLITE_OK && m->xLock(f, SQLITE_LOCK_RESERVED) == SQLITE_OK &&
              m->xLock(f, SQLITE_LOCK_EXCLUSIVE) == SQLITE_OK;
    m->xUnlock(f, SQLITE_LOCK_NONE);
    return ok;
}

static void shm_unlock(sqlite3_file *f) { f->pMethods->xShmLock(f, 0, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE); }

static bool can_lock_shm(sqlite3_file *f)
{
    bool ok = f->pMethods->xShmLock(f, 0, 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) == SQLITE_OK;
    if (ok)
        shm_unlock(f);
    return ok;
}

START_TEST(a_failed_run_is_dropped_unlocks_go_through_and_the_next_sync_says_so)
{
    make_dir();
    sqlite3_filename name = sqlite3_create_filename(db_path, "", wal_path, 0, NULL);
    ck_assert_ptr_nonnull(name);
    sqlite3_vfs *shim_vfs = lockable_under_shim();
    sqlite3_file *shim = open_raw(shim_vfs, sqlite3_filename_wal(name));
    sqlite3_file *plain = open_raw(shim_vfs->pAppData, sqlite3_filename_wal(name));
    write_page(shim, 'a', 0);
    ck_assert_int_eq(shim->pMethods->xSync(shim, SQLITE_SYNC_NORMAL), SQLITE_OK);

    ck_assert_int_eq(shim->pMethods->xLock(shim, SQLITE_LOCK_SHARED), SQLITE_OK);
    ck_assert(!can_lock_exclusive(plain));
    check_unlock_after_failed_flush(shim, plain, file_unlock, can_lock_exclusive);

    void volatile *region;
    ck_assert_int_eq(shim->pMethods->xShmMap(shim, 0, 32768, 1, &region), SQLITE_OK);
    ck_assert_int_eq(plain->pMethods->xShmMap(plain, 0, 32768, 1, &region), SQLITE_OK);
    ck_assert_int_eq(shim->pMethods->xShmLock(shim, 0, 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE), SQLITE_OK);
    ck_assert(!can_lock_shm(plain));
    check_unlock_after_failed_flush(shim, plain, shm_unlock, can_lock_shm);

    plain->pMethods->xShmUnmap(plain, 0);
    shim->pMethods->xShmUnmap(shim, 1);
    close_raw(plain);
    close_raw(shim);
    sqlite3_free_filename(name);
    remove_dir();
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("store_vfs");
    TCase *tc = tcase_create("failures");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_failed_checkpoint_pass_leaves_no_lock_and_no_stale_page);
    tcase_add_test(tc, a_checkpoint_short_of_the_wal_end_publishes_no_page_it_lost);
    tcase_add_test(tc, a_failed_run_is_dropped_unlocks_go_through_and_the_next_sync_says_so);
    suite_add_tcase(suite, tc);
    return lb_run_suite_tap(suite);
}
