#!/usr/bin/env python3
"""bench/job_rows.py: what one outbox row costs SQLite, per check variant.

Usage: bench/job_rows.py [ROWS]   (default 200000)

Inserts ROWS jobs one statement execution each (as the writer does: a
prepared INSERT ... ON CONFLICT DO NOTHING, stepped once per job) into the
jobs table of core/store_sqlite.c, in one transaction, then updates half of
them to 'done' (as the dispatcher does), and prints microseconds per row for
three spellings of the state check: migration 2's IN list, migration 7's ORs,
and no check. One INSERT ... SELECT of many rows would hide what an IN list
costs: SQLite builds its ephemeral b-tree once per statement execution, so
only per-row executions show it. Uses a scratch database in /tmp.
"""
import os
import sqlite3
import sys
import tempfile
import time

CHECKS = [
    ("IN list (migration 2)", "state IN ('ready','done','dead')"),
    ("ORs (migration 7)", "state = 'ready' OR state = 'done' OR state = 'dead'"),
    ("no check", "1"),
]
INSERT = ("INSERT INTO jobs (account, integration, lead_email, action, params, lead, idempotency_key, event_id,"
          " segmentation_id, action_index, state, attempts, created_at, next_attempt_at, updated_at)"
          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'ready', 0, ?11, ?12, ?11)"
          " ON CONFLICT (idempotency_key) DO NOTHING")
UPDATE = "UPDATE jobs SET state = 'done', attempts = 1, updated_at = ?2 WHERE id = ?1"


def schema(check):
    return f"""CREATE TABLE jobs (id INTEGER PRIMARY KEY, account TEXT NOT NULL, integration TEXT NOT NULL,
      lead_email TEXT NOT NULL, action TEXT NOT NULL, params TEXT NOT NULL, lead TEXT NOT NULL,
      idempotency_key TEXT NOT NULL UNIQUE, event_id INTEGER NOT NULL, segmentation_id INTEGER NOT NULL,
      action_index INTEGER NOT NULL, state TEXT NOT NULL CHECK ({check}), attempts INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
      last_status INTEGER, last_reason TEXT);
    CREATE INDEX jobs_ready ON jobs (id) WHERE state = 'ready';
    CREATE INDEX jobs_dead ON jobs (account, id) WHERE state = 'dead';"""


def measure(check, n, folder):
    path = os.path.join(folder, "jobs.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema(check))
    rows = [("bench", "sandbox", f"t1-{x}@bench.example", "tag_add", '{"tag":"seg-1"}',
             '{"name":"Ana Teste","first_name":"Ana"}', f"{1000000 + x // 5}:{x % 5}:0", 1000000 + x // 5, x % 5,
             0, 1768482362000, 1768482362000) for x in range(n)]
    db.execute("BEGIN")
    t0 = time.perf_counter()
    db.executemany(INSERT, rows)
    inserted = time.perf_counter() - t0
    db.execute("COMMIT")
    db.execute("BEGIN")
    t0 = time.perf_counter()
    db.executemany(UPDATE, [(i, 5) for i in range(1, n // 2 + 1)])
    updated = time.perf_counter() - t0
    db.execute("COMMIT")
    db.close()
    return inserted / n * 1e6, updated / (n // 2) * 1e6


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    print(f"sqlite {sqlite3.sqlite_version}, {n} jobs, one statement execution per row")
    with tempfile.TemporaryDirectory() as folder:
        for name, check in CHECKS:
            ins, upd = measure(check, n, folder)
            print(f"{name:24s} insert {ins:5.2f} us/row   update {upd:5.2f} us/row")


main()
