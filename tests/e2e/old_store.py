"""old_store: stores exactly as an older listbossd left them, for upgrade tests.

listbossd migrates its store forward at start (core/store_sqlite.c, one
migration per PRAGMA user_version; docs/storage.md section 2), and nothing
makes it stop at an older version. So a test that upgrades an older store
writes one itself, with make_store(). Every table and index below is spelled
as the migrations make it, character for character: sqlite_master holds
the same text an older daemon left.

How the schema moved, version by version:

  1  events (with a UNIQUE key on account, source, source event id: dedupe
     by index), events_by_lead, events_by_product
  2  + segmentations, jobs (state check `state IN (...)`), jobs_ready,
     jobs_dead, job_attempts, job_attempts_by_job, lead_state,
     integration_state
  3  + club_activity, a rowid table
  4  - events_by_product
  5  - events_by_lead
  6  events rebuilt without the UNIQUE key (the rebuild renamed it, hence
     `CREATE TABLE "events"`); + event_keys, filled from the events
  7  jobs rebuilt with `state = 'ready' OR ...` (same values); its two
     indexes made again
  8  club_activity rebuilt WITHOUT ROWID (renamed too)

(6's rebuild drops any index left on events, so after an upgrade nothing
tells whether 4 and 5 ran.) Each version below was checked against a replay
of the migrations' SQL from core/store_sqlite.c, 1 to N: the same
sqlite_master rows and the same columns. A new migration adds its version
here, and test_lifecycle's check of the latest one against a new daemon's
store fails until it does.

No migration so far added, removed or reordered a column: a row of a table
has the same columns in every version that has the table. When one does,
give that table a version of its own below and say so here.
"""
import sqlite3

LATEST = 8


def _sql(text):
    """The migrations' C strings are one line each, concatenated: "  id ...," then "  account ..."."""
    return "".join(line for line in text.strip().splitlines())


# --- events -------------------------------------------------------------------------------------
EVENT_COLUMNS = """
  id INTEGER PRIMARY KEY,
  account TEXT NOT NULL,
  source TEXT NOT NULL,
  source_event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  source_type TEXT NOT NULL,
  product_id TEXT,
  lead_email TEXT,
  occurred_at INTEGER,
  received_at INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('accepted','ignored')),
  is_test INTEGER NOT NULL DEFAULT 0,
  normalized TEXT NOT NULL,
  raw_content_type TEXT NOT NULL,
  raw_body BLOB NOT NULL"""

# versions 1-5: a redelivered event was refused by this UNIQUE key (its autoindex)
EVENTS_V1 = _sql("CREATE TABLE events (" + EVENT_COLUMNS + ",\n  UNIQUE (account, source, source_event_id)\n)")
# version 6 on: no key; built as events_v6 and renamed, which quotes the name
EVENTS_V6 = _sql('CREATE TABLE "events" (' + EVENT_COLUMNS + "\n)")
# versions 1-4 (by lead) and 1-3 (by product): indexes nothing read, dropped by 5 and 4
EVENTS_BY_LEAD = "CREATE INDEX events_by_lead ON events (account, lead_email)"
EVENTS_BY_PRODUCT = "CREATE INDEX events_by_product ON events (account, product_id, type)"
# version 6 on: the dedupe keys, one row per event, read into memory at start
EVENT_KEYS = _sql("""
CREATE TABLE event_keys (
  event_id INTEGER PRIMARY KEY,
  account TEXT NOT NULL,
  source TEXT NOT NULL,
  source_event_id TEXT NOT NULL
)""")

# --- the outbox and what its dispatch records (version 2) --------------------------------------
SEGMENTATIONS = _sql("""
CREATE TABLE segmentations (
  id INTEGER PRIMARY KEY,
  account TEXT NOT NULL,
  name TEXT NOT NULL,
  product_id TEXT NOT NULL,
  declaration TEXT NOT NULL,
  origin TEXT NOT NULL CHECK (origin IN ('config','cli')),
  status TEXT NOT NULL DEFAULT 'ok',
  reasons TEXT NOT NULL DEFAULT '[]',
  updated_at INTEGER NOT NULL,
  UNIQUE (account, name)
)""")
JOB_COLUMNS = """
  id INTEGER PRIMARY KEY,
  account TEXT NOT NULL,
  integration TEXT NOT NULL,
  lead_email TEXT NOT NULL,
  action TEXT NOT NULL,
  params TEXT NOT NULL,
  lead TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  event_id INTEGER NOT NULL,
  segmentation_id INTEGER NOT NULL,
  action_index INTEGER NOT NULL,
  state TEXT NOT NULL CHECK ({state}),
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_status INTEGER,
  last_reason TEXT"""
# versions 2-6: the state check an IN list (an ephemeral b-tree per statement)
JOBS_V2 = _sql("CREATE TABLE jobs (" + JOB_COLUMNS.format(state="state IN ('ready','done','dead')") + "\n)")
# version 7 on: the same values spelled with OR; made under its own name (the old one was renamed away)
JOBS_V7 = _sql("CREATE TABLE jobs (" +
               JOB_COLUMNS.format(state="state = 'ready' OR state = 'done' OR state = 'dead'") + "\n)")
JOBS_READY = "CREATE INDEX jobs_ready ON jobs (id) WHERE state = 'ready'"
JOBS_DEAD = "CREATE INDEX jobs_dead ON jobs (account, id) WHERE state = 'dead'"
JOB_ATTEMPTS = _sql("""
CREATE TABLE job_attempts (
  job_id INTEGER NOT NULL,
  at INTEGER NOT NULL,
  http_status INTEGER,
  outcome TEXT NOT NULL,
  reason TEXT
)""")
JOB_ATTEMPTS_BY_JOB = "CREATE INDEX job_attempts_by_job ON job_attempts (job_id)"
LEAD_STATE = _sql("""
CREATE TABLE lead_state (
  account TEXT NOT NULL,
  integration TEXT NOT NULL,
  lead_email TEXT NOT NULL,
  contact_ref TEXT,
  memberships TEXT NOT NULL DEFAULT '[]',
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (account, integration, lead_email)
)""")
INTEGRATION_STATE = _sql("""
CREATE TABLE integration_state (
  account TEXT NOT NULL,
  integration TEXT NOT NULL,
  broken INTEGER NOT NULL,
  reason TEXT,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (account, integration)
)""")

# --- Club activity (version 3) ------------------------------------------------------------------
CLUB_COLUMNS = """
  account TEXT NOT NULL,
  product_id TEXT NOT NULL,
  lead_email TEXT NOT NULL,
  last_access_at INTEGER NOT NULL DEFAULT 0,
  max_progress REAL NOT NULL DEFAULT -1,
  PRIMARY KEY (account, product_id, lead_email)"""
# versions 3-7: a rowid table, its key held again in an autoindex
CLUB_ACTIVITY_V3 = _sql("CREATE TABLE club_activity (" + CLUB_COLUMNS + "\n)")
# version 8 on: keyed by its primary key alone; built as club_activity_v8 and renamed
CLUB_ACTIVITY_V8 = _sql('CREATE TABLE "club_activity" (' + CLUB_COLUMNS + "\n) WITHOUT ROWID")

# (name, first version, last version or None while current, SQL), in the order a daemon made them
OBJECTS = [
    ("events", 1, 5, EVENTS_V1),
    ("events_by_lead", 1, 4, EVENTS_BY_LEAD),
    ("events_by_product", 1, 3, EVENTS_BY_PRODUCT),
    ("segmentations", 2, None, SEGMENTATIONS),
    ("jobs", 2, 6, JOBS_V2),
    ("jobs", 7, None, JOBS_V7),
    ("jobs_ready", 2, None, JOBS_READY),
    ("jobs_dead", 2, None, JOBS_DEAD),
    ("job_attempts", 2, None, JOB_ATTEMPTS),
    ("job_attempts_by_job", 2, None, JOB_ATTEMPTS_BY_JOB),
    ("lead_state", 2, None, LEAD_STATE),
    ("integration_state", 2, None, INTEGRATION_STATE),
    ("club_activity", 3, 7, CLUB_ACTIVITY_V3),
    ("club_activity", 8, None, CLUB_ACTIVITY_V8),
    ("events", 6, None, EVENTS_V6),
    ("event_keys", 6, None, EVENT_KEYS),
]


def schema(version):
    """{name: SQL} of every table and index a daemon of `version` left, as in sqlite_master."""
    assert 1 <= version <= LATEST, version
    return {name: sql for name, first, last, sql in OBJECTS if first <= version <= (last or LATEST)}


def tables(version):
    return [name for name, sql in schema(version).items() if sql.startswith("CREATE TABLE")]


def schema_of(path):
    """{name: (table, SQL)} of everything in a store's sqlite_master: tables, indexes, and the
    autoindexes of UNIQUE keys and rowid tables' primary keys (their SQL is None)."""
    con = sqlite3.connect(path, timeout=10)
    try:
        return {name: (table, sql) for name, table, sql in
                con.execute("SELECT name, tbl_name, sql FROM sqlite_master ORDER BY name")}
    finally:
        con.close()


def make_store(path, version, rows=None):
    """Turns the SQLite file at path (created if absent) into a store of schema `version`.

    Its tables and indexes become that version's, in WAL mode as every
    daemon left it, and user_version says `version`. A table named in rows
    ({table: [row tuple in column order, ...]}) holds those rows; any other
    table of that version keeps the rows it had (so a store a newer daemon
    wrote can be taken back with its data); a table that version lacks
    (event_keys below 6) is dropped with its rows. One transaction, so it
    may run beside a daemon, which sees the old store or the new one."""
    rows = rows or {}
    wanted = schema(version)
    unknown = set(rows) - set(tables(version))
    assert not unknown, "version %d has no table %s" % (version, sorted(unknown))
    con = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("BEGIN IMMEDIATE")
        existing = [name for (name,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        kept = {t: con.execute("SELECT * FROM " + t).fetchall() for t in existing
                if t in wanted and t not in rows}
        for t in existing:
            con.execute("DROP TABLE " + t)  # its indexes go with it
        for sql in wanted.values():
            con.execute(sql)
        for t, values in list(kept.items()) + list(rows.items()):
            for row in values:
                con.execute("INSERT INTO %s VALUES (%s)" % (t, ", ".join("?" * len(row))), row)
        con.execute("PRAGMA user_version = %d" % version)
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
