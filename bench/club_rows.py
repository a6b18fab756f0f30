#!/usr/bin/env python3
"""bench/club_rows.py: what Club activity costs SQLite, as a rowid table with
its key's autoindex (migration 3) and WITHOUT ROWID (migration 8).

Usage: bench/club_rows.py [STUDENTS]   (default 200000)

Fills club_activity with STUDENTS rows (20 products, keys spread over the
tree), then runs 500 transactions of 28 upserts each (the writer's statement
from core/store_sqlite_club.c; 28 is a commit of bench/ingest) for students
picked at random among those stored, and prints the WAL pages written per
upsert and the table's size in pages. Uses a scratch database in /tmp.
"""
import os
import random
import sqlite3
import sys
import tempfile

COLUMNS = ("account TEXT NOT NULL, product_id TEXT NOT NULL, lead_email TEXT NOT NULL,"
           " last_access_at INTEGER NOT NULL DEFAULT 0, max_progress REAL NOT NULL DEFAULT -1,"
           " PRIMARY KEY (account, product_id, lead_email)")
UPSERT = ("INSERT INTO club_activity (account, product_id, lead_email, last_access_at, max_progress)"
          " VALUES ('acme', ?1, ?2, ?3, ?4) ON CONFLICT (account, product_id, lead_email) DO UPDATE SET"
          " last_access_at = max(last_access_at, excluded.last_access_at),"
          " max_progress = max(max_progress, excluded.max_progress)")
TRANSACTIONS, PER_TRANSACTION = 500, 28


def measure(path, table_suffix, students):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")  # every frame stays countable
    db.execute("CREATE TABLE club_activity (%s)%s" % (COLUMNS, table_suffix))
    db.execute("BEGIN")
    db.executemany("INSERT INTO club_activity VALUES ('acme', ?, ?, 0, 0.1)",
                   ((str(i % 20), "student%07d@example.com" % (i * 7919 % 10**7)) for i in range(students)))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    keys = db.execute("SELECT product_id, lead_email FROM club_activity").fetchall()
    rng = random.Random(1)
    for t in range(TRANSACTIONS):
        db.execute("BEGIN")
        for _ in range(PER_TRANSACTION):
            product, email = rng.choice(keys)
            db.execute(UPSERT, (product, email, 10**12 + t, 0.5))
        db.execute("COMMIT")
    frames = db.execute("PRAGMA wal_checkpoint").fetchone()[1]
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    return frames / (TRANSACTIONS * PER_TRANSACTION), pages


def main():
    students = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    print("%d students, %d transactions of %d upserts of stored students" % (students, TRANSACTIONS,
                                                                            PER_TRANSACTION))
    with tempfile.TemporaryDirectory(prefix="lb-club-rows.") as scratch:
        for name, suffix in (("rowid + autoindex (migration 3)", ""), ("WITHOUT ROWID (migration 8)", " WITHOUT ROWID")):
            per_upsert, pages = measure(os.path.join(scratch, "club%d.db" % len(suffix)), suffix, students)
            print("%-32s %.2f WAL pages per upsert, database %d pages" % (name, per_upsert, pages))


main()
