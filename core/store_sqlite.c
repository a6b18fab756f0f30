/* store_sqlite.c: the store on SQLite in WAL mode.
 *
 * Durability: synchronous=FULL by default, so a COMMIT that returned has been
 * fsynced; the caller acknowledges events only after that. Schema changes are
 * an append-only list of migrations keyed by PRAGMA user_version, each applied
 * in its own transaction. */
#include "store_sqlite.h"
#include "limiter.h" /* lb_clock_ms_fine */
#include "log.h"
#include "parent_dir.h"
#include "store_sqlite_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>



/* Append only: never edit a migration that has shipped. */
static const char *const migrations[] = {
    /* 1: events, raw and normalized side by side */
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  source_event_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  source_type TEXT NOT NULL,"
    "  product_id TEXT,"
    "  lead_email TEXT,"
    "  occurred_at INTEGER,"
    "  received_at INTEGER NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('accepted','ignored')),"
    "  is_test INTEGER NOT NULL DEFAULT 0,"
    "  normalized TEXT NOT NULL,"
    "  raw_content_type TEXT NOT NULL,"
    "  raw_body BLOB NOT NULL,"
    "  UNIQUE (account, source, source_event_id)"
    ");"
    "CREATE INDEX events_by_lead ON events (account, lead_email);"
    "CREATE INDEX events_by_product ON events (account, product_id, type);",
    /* 2: segmentations, the outbox, attempts, lead and integration state */
    "CREATE TABLE segmentations ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  product_id TEXT NOT NULL,"
    "  declaration TEXT NOT NULL,"
    "  origin TEXT NOT NULL CHECK (origin IN ('config','cli')),"
    "  status TEXT NOT NULL DEFAULT 'ok',"
    "  reasons TEXT NOT NULL DEFAULT '[]',"
    "  updated_at INTEGER NOT NULL,"
    "  UNIQUE (account, name)"
    ");"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  integration TEXT NOT NULL,"
    "  lead_email TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  params TEXT NOT NULL,"
    "  lead TEXT NOT NULL,"
    "  idempotency_key TEXT NOT NULL UNIQUE,"
    "  event_id INTEGER NOT NULL,"
    "  segmentation_id INTEGER NOT NULL,"
    "  action_index INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('ready','done','dead')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  last_status INTEGER,"
    "  last_reason TEXT"
    ");"
    "CREATE INDEX jobs_ready ON jobs (id) WHERE state = 'ready';"
    "CREATE INDEX jobs_dead ON jobs (account, id) WHERE state = 'dead';"
    "CREATE TABLE job_attempts ("
    "  job_id INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  http_status INTEGER,"
    "  outcome TEXT NOT NULL,"
    "  reason TEXT"
    ");"
    "CREATE INDEX job_attempts_by_job ON job_attempts (job_id);"
    "CREATE TABLE lead_state ("
    "  account TEXT NOT NULL,"
    "  integration TEXT NOT NULL,"
    "  lead_email TEXT NOT NULL,"
    "  contact_ref TEXT,"
    "  memberships TEXT NOT NULL DEFAULT '[]',"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (account, integration, lead_email)"
    ");"
    "CREATE TABLE integration_state ("
    "  account TEXT NOT NULL,"
    "  integration TEXT NOT NULL,"
    "  broken INTEGER NOT NULL,"
    "  reason TEXT,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (account, integration)"
    ");",
    /* 3: Club activity, for progress thresholds and inactivity triggers */
    "CREATE TABLE club_activity ("
    "  account TEXT NOT NULL,"
    "  product_id TEXT NOT NULL,"
    "  lead_email TEXT NOT NULL,"
    "  last_access_at INTEGER NOT NULL DEFAULT 0,"
    "  max_progress REAL NOT NULL DEFAULT -1,"
    "  PRIMARY KEY (account, product_id, lead_email)"
    ");",
    /* 4: no query reads events by product and type; the index cost every
     * stored event a b-tree insert and its pages in each commit */
    "DROP INDEX IF EXISTS events_by_product;",
    /* 5: nor by lead; with buyers spread over the tree, each event dirtied a
     * leaf of it in the WAL and again at the checkpoint: 2.5 of 13.7 KB of
     * disk writes per event (docs/benchmarks.md) */
    "DROP INDEX IF EXISTS events_by_lead;",
    /* 6: no unique index on the events' keys: with UUIDs each event dirtied a
     * random leaf of it, about half of an event's disk writes. The keys are
     * appended to event_keys instead and looked up in memory
     * (store_sqlite_keys.c). Rebuilding the table is how SQLite drops a
     * UNIQUE constraint. */
    "CREATE TABLE events_v6 ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  source_event_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  source_type TEXT NOT NULL,"
    "  product_id TEXT,"
    "  lead_email TEXT,"
    "  occurred_at INTEGER,"
    "  received_at INTEGER NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('accepted','ignored')),"
    "  is_test INTEGER NOT NULL DEFAULT 0,"
    "  normalized TEXT NOT NULL,"
    "  raw_content_type TEXT NOT NULL,"
    "  raw_body BLOB NOT NULL"
    ");"
    "INSERT INTO events_v6 SELECT id, account, source, source_event_id, type, source_type, product_id, lead_email,"
    "  occurred_at, received_at, status, is_test, normalized, raw_content_type, raw_body FROM events;"
    "DROP TABLE events;"
    "ALTER TABLE events_v6 RENAME TO events;"
    "CREATE TABLE event_keys ("
    "  event_id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  source_event_id TEXT NOT NULL"
    ");"
    "INSERT INTO event_keys SELECT id, account, source, source_event_id FROM events;",
    /* 7: the jobs' state check without IN: SQLite builds an ephemeral b-tree
     * of an IN list of three or more values each time the statement runs, so
     * every job insert and state update paid for one (≈ 1.6 of 4.2 us a row,
     * docs/benchmarks.md). The check is the same set of values. Rebuilt,
     * because SQLite cannot change a CHECK in place. */
    "ALTER TABLE jobs RENAME TO jobs_v6;"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  integration TEXT NOT NULL,"
    "  lead_email TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  params TEXT NOT NULL,"
    "  lead TEXT NOT NULL,"
    "  idempotency_key TEXT NOT NULL UNIQUE,"
    "  event_id INTEGER NOT NULL,"
    "  segmentation_id INTEGER NOT NULL,"
    "  action_index INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state = 'ready' OR state = 'done' OR state = 'dead'),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  last_status INTEGER,"
    "  last_reason TEXT"
    ");"
    "INSERT INTO jobs SELECT id, account, integration, lead_email, action, params, lead, idempotency_key, event_id,"
    "  segmentation_id, action_index, state, attempts, created_at, next_attempt_at, updated_at, last_status,"
    "  last_reason FROM jobs_v6;"
    "DROP TABLE jobs_v6;"
    "CREATE INDEX jobs_ready ON jobs (id) WHERE state = 'ready';"
    "CREATE INDEX jobs_dead ON jobs (account, id) WHERE state = 'dead';",
    /* 8: Club activity keyed by its primary key alone (WITHOUT ROWID). As a
     * rowid table it held each key twice, in the row and in the key's
     * autoindex, and an upsert went down both b-trees: now half the pages,
     * one descent, and 5-15 % fewer WAL pages per upsert (bench/club_rows.py).
     * Rebuilt, because a table cannot change to WITHOUT ROWID. */
    "CREATE TABLE club_activity_v8 ("
    "  account TEXT NOT NULL,"
    "  product_id TEXT NOT NULL,"
    "  lead_email TEXT NOT NULL,"
    "  last_access_at INTEGER NOT NULL DEFAULT 0,"
    "  max_progress REAL NOT NULL DEFAULT -1,"
    "  PRIMARY KEY (account, product_id, lead_email)"
    ") WITHOUT ROWID;"
    "INSERT INTO club_activity_v8 SELECT account, product_id, lead_email, last_access_at, max_progress"
    "  FROM club_activity;"
    "DROP TABLE club_activity;"
    "ALTER TABLE club_activity_v8 RENAME TO club_activity;",
};

int lb_sqlite_fail(lb_error *err, sqlite3 *db, const char *what)
{
    return lb_fail(err, "", "%s: %s", what, db ? sqlite3_errmsg(db) : "cannot allocate");
}

static int exec_sql(sqlite3 *db, const char *sql, lb_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    lb_fail(err, "", "%s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
}

/* The value of a pragma that answers one integer, or -1 if it cannot be
 * read (the file busy past the timeout, say). */
static int pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int user_version(sqlite3 *db)
{
    return pragma_int(db, "PRAGMA user_version");
}

static int latest_version(void)
{
    return (int)(sizeof migrations / sizeof *migrations);
}

/* no_upgrade's check, before any pragma or migration can write to the file.
 * A newer schema passes here: migrate refuses it, with or without the option.
 * Version 0 is no older store: every store the daemon made is at least 1
 * (migration 1 sets it with the tables, in one transaction), so this is an
 * empty file or another program's database, and "needs an upgrade" would
 * send the operator to start a daemon that fills it with our tables. */
static int refuse_older_schema(sqlite3 *db, const char *path, lb_error *err)
{
    int current = user_version(db), latest = latest_version();
    if (current < 0)
        return lb_sqlite_fail(err, db, "reading schema version");
    if (current >= latest)
        return 0;
    if (current == 0)
        return lb_fail(err, "database",
                       "%s is not a listboss store (schema version 0): check -d or database in the configuration",
                       path);
    lb_fail(err, "database", "the schema of %s needs an upgrade (version %d -> %d)", path, current, latest);
    return LB_STORE_NEEDS_UPGRADE;
}

/* The daemon's check, before any pragma can write to the file: a schema
 * version of 0 with tables in it is another program's database (every store
 * the daemon made is at version 1 or later, set with its tables in one
 * transaction), which migration 1 would fill with ours and WAL mode would
 * change under that program. An empty file or database is a new store. */
static int refuse_foreign_database(sqlite3 *db, const char *path, lb_error *err)
{
    int version = user_version(db);
    if (version < 0) /* busy past the timeout, say: unknown is no store of ours */
        return lb_sqlite_fail(err, db, "reading schema version");
    if (version > 0)
        return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) != SQLITE_OK)
        return lb_sqlite_fail(err, db, "reading the database's schema");
    int objects = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (objects < 0)
        return lb_sqlite_fail(err, db, "reading the database's schema");
    if (objects == 0)
        return 0;
    return lb_fail(err, "database",
                   "%s is not a listboss store (schema version 0, with another program's tables in it): check -d "
                   "or database in the configuration",
                   path);
}

/* Upgrades an existing store, logging each step: some copy every event
 * (migration 6 took 25 s for 300k events here), and a daemon that says
 * nothing meanwhile looks hung. A new database is not logged step by step. */
static int migrate(sqlite3 *db, lb_error *err)
{
    const int latest = latest_version();
    int current = user_version(db);
    if (current < 0)
        return lb_sqlite_fail(err, db, "reading schema version");
    if (current > latest)
        return lb_fail(err, "database", "schema version %d is newer than this listbossd (%d)", current, latest);
    for (int v = current; v < latest; v++) {
        char bump[64], from[16], to[16], ms[32];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d;", v + 1);
        snprintf(from, sizeof from, "%d", v);
        snprintf(to, sizeof to, "%d", v + 1);
        if (current > 0)
            lb_log(LB_LOG_INFO, "upgrading the store's schema; the daemon answers once it is done", "from", from,
                   "to", to, NULL);
        double t0 = lb_clock_ms_fine(CLOCK_MONOTONIC);
        if (exec_sql(db, "BEGIN IMMEDIATE", err) || exec_sql(db, migrations[v], err) ||
            exec_sql(db, bump, err) || exec_sql(db, "COMMIT", err)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        snprintf(ms, sizeof ms, "%.0f", lb_clock_ms_fine(CLOCK_MONOTONIC) - t0);
        if (current > 0)
            lb_log(LB_LOG_INFO, "store schema upgraded", "version", to, "ms", ms, NULL);
    }
    return 0;
}

static int prepare_all(sqlite_store *s, lb_error *err)
{
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } list[] = {
        {&s->begin, "BEGIN IMMEDIATE"},
        {&s->commit, "COMMIT"},
        {&s->rollback, "ROLLBACK"},
        {&s->insert_event,
         "INSERT INTO events (account, source, source_event_id, type, source_type, product_id, lead_email,"
         " occurred_at, received_at, status, is_test, normalized, raw_content_type, raw_body)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"},
    };
    for (size_t i = 0; i < sizeof list / sizeof *list; i++)
        if (sqlite3_prepare_v3(s->db, list[i].sql, -1, SQLITE_PREPARE_PERSISTENT, list[i].st, NULL) != SQLITE_OK)
            return lb_sqlite_fail(err, s->db, "preparing statements");
    return 0;
}

static void sqlite_close(void *impl)
{
    sqlite_store *s = impl;
    if (!s)
        return;
    lb_sqlite_checkpointer_stop(s->checkpointer, s->db);
    sqlite3_stmt *all[] = {s->begin, s->commit, s->rollback, s->insert_event};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        sqlite3_finalize(all[i]);
    for (size_t i = 0; i < LB_SQLITE_CACHED_MAX; i++)
        sqlite3_finalize(s->cached[i]);
    sqlite3_close_v2(s->db);
    lb_sqlite_keys_forget(s);
    free(s);
}

/* The database's page size, which SQLite fixed when it made the file. */
int lb_sqlite_page_size(sqlite3 *db)
{
    int size = pragma_int(db, "PRAGMA page_size");
    return size >= 512 ? size : 4096; /* SQLite's smallest page; its default if the pragma failed */
}

/* Pragmas, schema, statements, and the checkpoint thread if asked for.
 * Returns 0, -1 or LB_STORE_NEEDS_UPGRADE. */
static int set_up(sqlite_store *s, const char *path, const char *vfs, const lb_store_options *opts, lb_error *err)
{
    sqlite3_busy_timeout(s->db, opts->busy_timeout_ms);
    int rc = opts->no_upgrade ? refuse_older_schema(s->db, path, err) : refuse_foreign_database(s->db, path, err);
    if (rc)
        return rc;
    /* 16 MiB of page cache: the writer appends (events, event_keys, jobs),
     * so little is read twice. 64 MiB made it slower, not faster (12.5
     * against 11.1 us per event, docs/benchmarks.md), likely because the
     * pages a large cache recycles are cold in the CPU's caches.
     *
     * 16 KiB pages for a new store (an existing one keeps the size it was
     * made with: SQLite fixes it with the first page). An event row is
     * about 2.6 KB, so a 4 KiB leaf held one row and a quarter-page hole;
     * at 16 KiB six rows fill it, and the checkpoint copies a quarter of
     * the pages, each in one read and one write: its CPU per event halved,
     * and bench/ingest went from a median of 26.6k to 30.4k events/s, p99
     * 6.4-31 ms to 4.2-5.1 (docs/benchmarks.md). Before journal_mode, which
     * writes the first page of a new file. */
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA page_size=%d; PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384;",
             LB_SQLITE_PAGE_SIZE);
    const char *sync = opts->sync_full ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;";
    if (exec_sql(s->db, pragmas, err) || exec_sql(s->db, sync, err) || migrate(s->db, err) || prepare_all(s, err))
        return -1;
    /* SQLite's own checkpoints (no thread: the CLI, tests) at the thread's
     * rewind size, whatever the page size; the thread replaces them */
    sqlite3_wal_autocheckpoint(s->db, LB_SQLITE_WAL_REWIND_BYTES / lb_sqlite_page_size(s->db));
    if (opts->load_event_keys && lb_sqlite_keys_load(s, err))
        return -1;
    if (opts->checkpoint_thread &&
        !(s->checkpointer = lb_sqlite_checkpointer_start(s->db, path, vfs, opts->sync_full, err)))
        return -1;
    return 0;
}

/* The daemon's first start creates the database and its folder; with
 * must_exist a missing file is an error naming the path. */
static int prepare_path(const char *path, const lb_store_options *opts, lb_error *err)
{
    if (!opts->must_exist)
        return lb_ensure_parent_dir(path, "database", err);
    struct stat st;
    if (stat(path, &st) == 0)
        return 0;
    lb_fail(err, "database", "no database at %s: %s", path, strerror(errno));
    return -1;
}

int lb_store_sqlite_open(const char *path, const lb_store_options *opts, void **impl, lb_error *err)
{
    if (prepare_path(path, opts, err))
        return -1;
    sqlite_store *s = calloc(1, sizeof *s);
    if (!s)
        return lb_fail(err, "database", "out of memory");
    if (lb_siphash_random_key(&s->keys.seed)) {
        free(s);
        return lb_fail(err, "database", "cannot read random bytes for the dedupe index");
    }
    /* no CREATE with must_exist, so a file removed since the stat is not made anew */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (opts->must_exist ? 0 : SQLITE_OPEN_CREATE);
    /* one write per run of pages instead of two per WAL frame; safe only when
     * every commit is synced (store_sqlite_vfs.c) */
    const char *vfs = opts->sync_full ? lb_sqlite_coalescing_vfs() : NULL;
    if (sqlite3_open_v2(path, &s->db, flags, vfs) != SQLITE_OK) {
        lb_fail(err, "database", "cannot open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sqlite_close(s);
        return -1;
    }
    int rc = set_up(s, path, vfs, opts, err);
    if (rc) {
        sqlite_close(s);
        return rc;
    }
    *impl = s;
    return 0;
}

/* Runs a statement without result rows and resets it. */
int lb_sqlite_step_done(sqlite_store *s, sqlite3_stmt *st, const char *what, lb_error *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : lb_sqlite_fail(err, s->db, what);
}

static int sqlite_begin(void *impl, lb_error *err)
{
    sqlite_store *s = impl;
    if (lb_sqlite_step_done(s, s->begin, "begin", err))
        return -1;
    s->in_tx = true;
    return 0;
}

static int sqlite_commit(void *impl, lb_error *err)
{
    sqlite_store *s = impl;
    if (lb_sqlite_step_done(s, s->commit, "commit", err))
        return -1; /* still in the transaction: the caller rolls back */
    s->in_tx = false;
    return 0;
}

static void sqlite_rollback(void *impl)
{
    sqlite_store *s = impl;
    if (sqlite3_get_autocommit(s->db) == 0)
        lb_sqlite_step_done(s, s->rollback, "rollback", NULL);
    s->in_tx = false;
}

void lb_sqlite_bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int sqlite_put_event(void *impl, const lb_store_event *in, lb_store_put_result *out, lb_error *err)
{
    sqlite_store *s = impl;
    const lb_event *ev = in->event;
    if (!s->in_tx) /* the event and its key must commit together */
        return lb_fail(err, "", "storing an event outside a transaction");
    uint64_t hash;
    int64_t id;
    int known = lb_sqlite_keys_find(s, in->account, ev->source, ev->source_event_id, &hash, &id, err);
    if (known < 0)
        return -1;
    if (known) {
        out->event_id = id;
        out->duplicate = true;
        return 0;
    }
    sqlite3_stmt *st = s->insert_event;
    sqlite3_bind_text(st, 1, in->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ev->source_event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ev->source_type, -1, SQLITE_STATIC);
    lb_sqlite_bind_text_or_null(st, 6, ev->product_id);
    lb_sqlite_bind_text_or_null(st, 7, ev->lead_email);
    if (ev->occurred_at_ms)
        sqlite3_bind_int64(st, 8, ev->occurred_at_ms);
    else
        sqlite3_bind_null(st, 8);
    sqlite3_bind_int64(st, 9, in->received_at_ms);
    sqlite3_bind_text(st, 10, ev->ignored ? "ignored" : "accepted", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 11, ev->test);
    sqlite3_bind_text(st, 12, in->normalized_json, (int)in->normalized_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, in->raw_content_type, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 14, in->raw_body, (int)in->raw_len, SQLITE_STATIC);
    int rc = lb_sqlite_step_done(s, st, "storing an event", err);
    sqlite3_clear_bindings(st);
    if (rc)
        return -1;
    out->event_id = sqlite3_last_insert_rowid(s->db);
    out->duplicate = false;
    return lb_sqlite_keys_add(s, hash, out->event_id, in->account, ev->source, ev->source_event_id, err);
}

static void sqlite_stats(void *impl, lb_store_stats *out)
{
    const sqlite_store *s = impl;
    *out = (lb_store_stats){0};
    lb_sqlite_dedupe_stats(s, out);
    if (s->checkpointer)
        lb_sqlite_checkpointer_stats(s->checkpointer, out);
}

const lb_store_ops lb_store_sqlite_ops = {
    .engine = "sqlite",
    .begin = sqlite_begin,
    .put_event = sqlite_put_event,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .close = sqlite_close,
    .put_job = lb_sqlite_put_job,
    .record_outcome = lb_sqlite_record_outcome,
    .set_integration_state = lb_sqlite_set_integration_state,
    .load_pending_jobs = lb_sqlite_load_pending_jobs,
    .list_jobs = lb_sqlite_list_jobs,
    .replay_dead = lb_sqlite_replay_dead,
    .put_segmentation = lb_sqlite_put_segmentation,
    .delete_segmentation = lb_sqlite_delete_segmentation,
    .load_segmentations = lb_sqlite_load_segmentations,
    .set_segmentation_status = lb_sqlite_set_segmentation_status,
    .put_club_activity = lb_sqlite_put_club_activity,
    .load_club_activity = lb_sqlite_load_club_activity,
    .stats = sqlite_stats,
};

sqlite3_stmt *lb_sqlite_cached(sqlite_store *s, enum lb_sqlite_cached slot, const char *sql, lb_error *err)
{
    if (!s->cached[slot] &&
        sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->cached[slot], NULL) != SQLITE_OK) {
        lb_sqlite_fail(err, s->db, "preparing a statement");
        return NULL;
    }
    return s->cached[slot];
}
