#!/usr/bin/env python3
"""bench/wal_frames.py: WAL frames per commit for the events table's layout.

Usage: bench/wal_frames.py STORE   (a store kept by LB_BENCH_KEEP=DIR bench/ingest: DIR/bench.db)

Copies the schema and 6,000 real event rows of STORE into a scratch database
and commits them in batches of 1, 5, 10, 25 and 60 events (each event with
its event_keys row, as the writer stores them), with checkpoints off, then
divides the WAL's frames by the commits and the events. Twice per batch size:
the events table as it is, and with each raw body in a table of its own
(event_bodies: event id, body), the split docs/benchmarks.md weighed. The
first 2,000 rows warm the tables up and are checkpointed away, so the
figures are for tables that already hold rows.
"""
import os
import sqlite3
import sys
import tempfile

COLUMNS = ("account, source, source_event_id, type, source_type, product_id, lead_email, occurred_at,"
           " received_at, status, is_test, normalized, raw_content_type, raw_body")


def commit(db, rows, split):
    db.execute("BEGIN")
    for r in rows:
        if split:
            cur = db.execute(f"INSERT INTO events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,x'')", r[:13])
            db.execute("INSERT INTO event_bodies VALUES (?, ?)", (cur.lastrowid, r[13]))
        else:
            cur = db.execute(f"INSERT INTO events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", r)
        db.execute("INSERT INTO event_keys VALUES (?, ?, ?, ?)", (cur.lastrowid, r[0], r[1], r[2]))
    db.execute("COMMIT")


def measure(folder, schema, rows, batch, split):
    path = os.path.join(folder, "frames.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    for (sql,) in schema:
        db.execute(sql)
    if split:
        db.execute("CREATE TABLE event_bodies (event_id INTEGER PRIMARY KEY, raw_body BLOB NOT NULL)")
    for i in range(0, 2000, 50):
        commit(db, rows[i:i + 50], split)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    commits = 0
    for i in range(2000, len(rows), batch):
        commit(db, rows[i:i + batch], split)
        commits += 1
    page = db.execute("PRAGMA page_size").fetchone()[0]
    frames = (os.path.getsize(path + "-wal") - 32) / (page + 24)
    db.close()
    return frames / commits, frames * (page + 24) / (len(rows) - 2000) / 1024


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench/wal_frames.py STORE")
    src = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    rows = src.execute(f"SELECT {COLUMNS} FROM events ORDER BY id LIMIT 6000").fetchall()
    schema = src.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
                         " ORDER BY type DESC").fetchall()
    src.close()
    if len(rows) < 6000:
        sys.exit("bench/wal_frames.py: the store holds fewer than 6,000 events")
    with tempfile.TemporaryDirectory() as folder:
        for batch in (1, 5, 10, 25, 60):
            for split in (False, True):
                per_commit, kb = measure(folder, schema, rows, batch, split)
                layout = "raw bodies apart" if split else "events as they are"
                print(f"batch {batch:3d}  {layout:19s} {per_commit:6.1f} frames/commit  {kb:5.2f} KB of WAL/event")


main()
