"""The daemon's command line, configuration errors, reload and shutdown."""
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid

from lbtest import (Daemon, DEFAULT_CONFIG, LISTBOSSD, fixture, free_port, run, with_id)

TESTHOTTOK = "TESTHOTTOK0000000000000000000000000000000"


def listbossd(*args, env=None, cwd=None):
    return subprocess.run([LISTBOSSD] + list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=30)


def test_version():
    r = listbossd("-V")
    assert r.returncode == 0 and r.stdout.startswith("listbossd "), r


def test_unknown_option_is_a_usage_error():
    r = listbossd("-z")
    assert r.returncode == 2 and "usage" in r.stderr, r


def test_check_accepts_a_good_config():
    d = Daemon()
    try:
        r = listbossd("-t", "-c", d.config_path, env=d.env)
        assert r.returncode == 0 and "ok" in r.stdout, r
    finally:
        d.cleanup()


def test_check_runs_no_command():
    d = Daemon()
    try:
        r = listbossd("-t", "-c", d.config_path, "-d", d.db, "replay", "acme", env=d.env)
        assert r.returncode == 2 and "takes no command" in r.stderr and "replay" in r.stderr, r
        assert not os.path.exists(d.db)  # nothing opened, nothing written
    finally:
        d.cleanup()


def test_check_names_the_bad_key():
    d = Daemon(config=DEFAULT_CONFIG + '\nlisen = "x"\n')
    try:
        r = listbossd("-t", "-c", d.config_path, env=d.env)
        assert r.returncode == 1 and "lisen" in r.stderr, r
    finally:
        d.cleanup()


def test_check_reports_a_missing_secret_without_printing_secrets():
    d = Daemon()
    env = dict(d.env)
    del env["LB_TEST_HOTTOK_A"]
    try:
        r = listbossd("-t", "-c", d.config_path, env=env)
        assert r.returncode == 1, r
        assert "accounts[1].hottok" in r.stderr and "LB_TEST_HOTTOK_A" in r.stderr, r
        assert env["LB_TEST_TOKEN_A"] not in r.stderr
    finally:
        d.cleanup()


def test_bad_config_stops_the_daemon_at_start():
    d = Daemon(config=DEFAULT_CONFIG.replace('max_body = "64k"', 'max_body = true'))
    try:
        d.start(wait=False)
        assert d.proc.wait(10) == 1
        assert "max_body" in d.stderr()
    finally:
        d.cleanup()


def test_embedded_demo_config_with_overrides():
    d = Daemon()
    try:
        port = free_port()
        db = os.path.join(d.dir, "demo.db")
        proc = subprocess.Popen([LISTBOSSD, "-l", "127.0.0.1:%d" % port, "-d", db], cwd=d.dir,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        d.proc, d.port = proc, port
        d.log = open(os.devnull, "wb")
        deadline = time.time() + 10
        while True:
            try:
                if d.get("/healthz").status == 200:
                    break
            except OSError:
                assert time.time() < deadline, "demo daemon did not start"
                time.sleep(0.05)
        r = d.post_hotmart(fixture("PURCHASE_APPROVED"), hottok=TESTHOTTOK)
        assert r.status == 200, r
        d.db = db
        assert d.query("SELECT account FROM events") == [("demo",)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert b"demo" in proc.stderr.read()
    finally:
        d.cleanup()


def test_sighup_with_a_bad_config_keeps_the_old_one():
    d = Daemon().start()
    try:
        d.write_config(DEFAULT_CONFIG + "\nthis is not lua\n")
        d.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "reload failed" not in d.stderr():
            assert time.time() < deadline, d.stderr()
            time.sleep(0.05)
        body = with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))
        assert d.post_hotmart(body).status == 200
        assert d.proc.poll() is None
    finally:
        d.cleanup()


def test_sighup_with_a_good_config_swaps_accounts():
    d = Daemon().start()
    try:
        new_tok = "hottok-gamma-5555555555"
        d.write_config(DEFAULT_CONFIG.replace("accounts = {{", "accounts = {{\n  {{ id = \"gamma\", hottok = \"%s\","
                                              " api_token = \"api-gamma-55555555\" }}," % new_tok))
        body = with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))
        assert d.post_hotmart(body, hottok=new_tok).status == 401
        d.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "configuration reloaded" not in d.stderr():
            assert time.time() < deadline, d.stderr()
            time.sleep(0.05)
        assert d.post_hotmart(body, hottok=new_tok).status == 200
        assert d.query("SELECT account FROM events WHERE source_event_id = ?", json.loads(body)["id"]) == [("gamma",)]
    finally:
        d.cleanup()


def test_sighup_names_the_keys_that_change_only_at_restart():
    d = Daemon().start()
    try:
        d.write_config('synchronous = "normal"\nclub_scan_interval = 7\nplugin_dir = "/nonexistent"\n'
                       'max_connections = 99\n' + DEFAULT_CONFIG)
        d.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "configuration reloaded" not in d.stderr():
            assert time.time() < deadline, d.stderr()
            time.sleep(0.05)
        log = d.stderr()
        for key in ("synchronous", "plugin_dir", "club_scan_interval", "max_connections"):
            assert "reload: %s changes only at restart" % key in log, log
        body = with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))
        assert d.post_hotmart(body).status == 200
    finally:
        d.cleanup()


SEG_CONFIG = DEFAULT_CONFIG.replace('''  {{ id = "acme", hottok = "env:LB_TEST_HOTTOK_A", api_token = "env:LB_TEST_TOKEN_A" }},''',
                                    '''  {{ id = "acme", hottok = "env:LB_TEST_HOTTOK_A", api_token = "env:LB_TEST_TOKEN_A",
     integrations = {{ {{ id = "sb", provider = "sandbox" }} }},
     segmentations = {{
       {{ name = "SEGNAME", product = "4123456", trigger = "purchase_approved", integration = "sb",
          actions = {{ {{ action = "tag_add", params = {{ tag = "SEGNAME" }} }} }} }},
     }} }},''')


def wait_logged(d, text, count):
    deadline = time.time() + 10
    while d.stderr().count(text) < count:
        assert d.proc.poll() is None, "listbossd died:\n" + d.stderr()[-3000:]
        assert time.time() < deadline, d.stderr()[-3000:]
        time.sleep(0.05)


def test_sighup_failing_after_the_new_segmentations_were_built_keeps_the_old_ones():
    # the last step of a reload (reading the ready jobs) fails, as it did for a
    # reviewer: the running engine, integrations and stored declarations must
    # be the old configuration's, not freed nor half replaced
    d = Daemon(config=SEG_CONFIG.replace("SEGNAME", "old")).start()
    try:
        d.write_config(SEG_CONFIG.replace("SEGNAME", "new"))
        con = sqlite3.connect(d.db, timeout=10)
        con.execute("ALTER TABLE jobs RENAME TO jobs_away")
        con.commit()
        d.send_signal(signal.SIGHUP)
        wait_logged(d, "reload failed", 1)
        con.execute("ALTER TABLE jobs_away RENAME TO jobs")
        con.commit()
        con.close()
        body = with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))
        r = d.post_hotmart(body)
        assert r.status == 200, r
        params = d.query("SELECT params FROM jobs WHERE event_id = ?", r.json()["event_id"])
        assert params == [(json.dumps({"tag": "old"}, separators=(",", ":")),)], params
        assert d.query("SELECT name FROM segmentations WHERE account = 'acme'") == [("old",)]
        # and a reload that works still swaps the whole configuration
        d.send_signal(signal.SIGHUP)
        wait_logged(d, "configuration reloaded", 1)
        assert d.query("SELECT name FROM segmentations WHERE account = 'acme'") == [("new",)]
    finally:
        d.cleanup()


def test_sighup_during_start_up_is_held_until_started():
    # SIGHUP's handler comes after the store is open, which takes a while on a
    # large store: a SIGHUP before it must not end the process (its default
    # action), and the reload it asks for runs once the daemon has started
    d = Daemon().start()
    try:
        d.stop()
        con = sqlite3.connect(d.db)
        # keys only, so opening the store is slow; ids far above the events' own
        con.executemany("INSERT INTO event_keys VALUES (?, 'acme', 'hotmart', ?)",
                        ((10**9 + i, "bulk-%d" % i) for i in range(300000)))
        con.commit()
        con.close()
        d.start(wait=False)
        lock, want = d.db + "-listbossd.lock", "%d\n" % d.proc.pid
        deadline = time.time() + 10
        while not os.path.exists(lock) or open(lock).read() != want:  # it has begun opening the store
            assert d.proc.poll() is None and time.time() < deadline, d.stderr()
            time.sleep(0.001)
        d.send_signal(signal.SIGHUP)
        d.wait_ready()
        wait_logged(d, "configuration reloaded", 1)
        assert d.post_hotmart(with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))).status == 200
        assert d.proc.poll() is None
    finally:
        d.cleanup()


def test_sigterm_finishes_in_flight_requests_and_exits_0():
    d = Daemon().start()
    try:
        acked, stop = [], threading.Event()

        def post_loop():
            conn = d.connection()
            while not stop.is_set():
                eid = str(uuid.uuid4())
                try:
                    r = d.post_hotmart(with_id(fixture("PURCHASE_APPROVED"), eid), conn=conn)
                except OSError:
                    return
                except Exception:
                    return
                if r.status == 200:
                    acked.append(eid)
                if r.headers.get("connection") == "close":
                    return

        threads = [threading.Thread(target=post_loop) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        d.send_signal(signal.SIGTERM)
        assert d.proc.wait(15) == 0, d.stderr()
        stop.set()
        for t in threads:
            t.join()
        assert acked, "no request was acknowledged"
        ids = {row[0] for row in d.query("SELECT source_event_id FROM events")}
        missing = [e for e in acked if e not in ids]
        assert not missing, missing[:5]
        assert "stopping" in d.stderr()
    finally:
        d.cleanup()


def test_sigint_stops_too():
    d = Daemon().start()
    try:
        d.send_signal(signal.SIGINT)
        assert d.proc.wait(10) == 0
    finally:
        d.cleanup()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_connections(d, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        socks.append(s)
    return socks


def test_past_max_connections_new_ones_wait_in_the_backlog():
    d = Daemon("max_connections = 16\n" + DEFAULT_CONFIG).start()
    socks = []
    try:
        socks = idle_connections(d, 40)  # 16 accepted, the rest in the kernel's backlog
        result = {}
        t = threading.Thread(target=lambda: result.update(r=d.get("/healthz")))
        t.start()
        t.join(1.0)
        assert t.is_alive(), "answered past the limit: %r" % result
        before = cpu_seconds(d.proc.pid)
        time.sleep(1.0)
        assert cpu_seconds(d.proc.pid) - before < 0.3, "the daemon spins while at the limit"
        for s in socks:
            s.close()
        socks = []
        t.join(10)
        assert not t.is_alive() and result["r"].status == 200, result
        log = d.stderr()
        assert log.count("connection limit reached") == 1, log
        assert "max_connections=16" in log, log
    finally:
        for s in socks:
            s.close()
        d.cleanup()


def test_no_descriptor_left_pauses_accepting_instead_of_spinning():
    """The descriptor limit drops under the daemon (as if the store or provider calls held the rest): accept
    fails with EMFILE. The daemon pauses accepting, logs it once, keeps answering the connections it has, and
    accepts again once descriptors are free."""
    d = Daemon().start()
    socks = []
    try:
        kept = d.connection()
        assert d.request("GET", "/healthz", conn=kept).status == 200
        open_fds = len(os.listdir("/proc/%d/fd" % d.proc.pid))
        subprocess.run(["prlimit", "--pid", str(d.proc.pid), "--nofile=%d:" % (open_fds + 4)], check=True)
        socks = idle_connections(d, 30)
        before = cpu_seconds(d.proc.pid)
        time.sleep(1.5)
        spent = cpu_seconds(d.proc.pid) - before
        log = d.stderr()
        assert log.count("accept failed") == 1, "%d lines:\n%s" % (log.count("accept failed"), log[-2000:])
        assert "Too many open files" in log, log[-2000:]
        assert spent < 0.5, "%.2f s of CPU in 1.5 s: the loop spins on accept" % spent
        assert d.request("GET", "/healthz", conn=kept).status == 200  # the connections it has are served
        kept.close()
        subprocess.run(["prlimit", "--pid", str(d.proc.pid), "--nofile=4096:"], check=True)
        for s in socks:
            s.close()
        socks = []
        assert d.get("/healthz").status == 200
        assert "accepting connections again" in d.stderr()
    finally:
        for s in socks:
            s.close()
        d.cleanup()


def test_port_in_use_is_a_clear_start_failure():
    a = Daemon().start()
    b = Daemon(args=["-l", "127.0.0.1:%d" % a.port])
    try:
        b.start(wait=False)
        assert b.proc.wait(10) == 1
        assert "cannot listen" in b.stderr()
    finally:
        a.cleanup()
        b.cleanup()


def test_a_second_daemon_on_the_same_database_refuses_to_start():
    # the dedupe index is in the first one's memory: a second writer could
    # store a redelivered event twice (docs/storage.md, Dedupe)
    a = Daemon().start()
    b = Daemon(args=["-d", a.db])
    c = Daemon(args=["-d", a.db])
    try:
        b.start(wait=False)
        assert b.proc.wait(10) == 1
        log = b.stderr()
        assert "is in use by listbossd (pid %d)" % a.proc.pid in log, log
        assert a.get("/healthz").status == 200
        a.stop(signal.SIGKILL)  # the kernel lets go of the lock, however the holder ends
        c.start()
        assert c.post_hotmart(with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))).status == 200
    finally:
        a.cleanup()
        b.cleanup()
        c.cleanup()


def test_a_version_5_store_is_upgraded_at_start_and_keeps_knowing_its_events():
    d = Daemon().start()
    try:
        body = with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))
        first = d.post_hotmart(body).json()
        assert first["duplicate"] is False
        d.stop()
        # the store as version 5 had it: a unique index on the events' keys, no event_keys
        con = sqlite3.connect(d.db)
        con.executescript("""
            DROP TABLE event_keys;
            ALTER TABLE events RENAME TO events_v6;
            CREATE TABLE events (id INTEGER PRIMARY KEY, account TEXT NOT NULL, source TEXT NOT NULL,
              source_event_id TEXT NOT NULL, type TEXT NOT NULL, source_type TEXT NOT NULL, product_id TEXT,
              lead_email TEXT, occurred_at INTEGER, received_at INTEGER NOT NULL,
              status TEXT NOT NULL CHECK (status IN ('accepted','ignored')), is_test INTEGER NOT NULL DEFAULT 0,
              normalized TEXT NOT NULL, raw_content_type TEXT NOT NULL, raw_body BLOB NOT NULL,
              UNIQUE (account, source, source_event_id));
            INSERT INTO events SELECT * FROM events_v6;
            DROP TABLE events_v6;
            DROP TABLE club_activity;
            CREATE TABLE club_activity (account TEXT NOT NULL, product_id TEXT NOT NULL, lead_email TEXT NOT NULL,
              last_access_at INTEGER NOT NULL DEFAULT 0, max_progress REAL NOT NULL DEFAULT -1,
              PRIMARY KEY (account, product_id, lead_email));
            INSERT INTO club_activity VALUES ('acme', '7', 'a@example.com', 1000, 0.5);
            PRAGMA user_version = 5;""")
        con.close()
        d.start()
        log = d.stderr()
        # an upgrade that copies every event takes a while: the log says so, then says when it is done
        assert re.search(r'msg="upgrading the store\'s schema[^"]*" from=5 to=6', log), log
        assert re.search(r'msg="store schema upgraded" version=6 ms=\d+', log), log
        again = d.post_hotmart(body).json()
        assert again == {"event_id": first["event_id"], "duplicate": True}, again
        assert d.query("SELECT count(*) FROM event_keys") == [(1,)]
        assert re.search(r'msg="upgrading the store\'s schema[^"]*" from=6 to=7', log), log
        assert re.search(r'msg="upgrading the store\'s schema[^"]*" from=7 to=8', log), log
        assert d.query("PRAGMA user_version") == [(8,)]
        # migration 7: the outbox's state check without an IN list
        jobs_sql = d.query("SELECT sql FROM sqlite_master WHERE name = 'jobs'")[0][0]
        assert " IN (" not in jobs_sql and "state = 'ready' OR" in jobs_sql, jobs_sql
        assert d.query("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'") == [(0,)]
        # migration 8: Club activity without a rowid, its rows kept
        club_sql = d.query("SELECT sql FROM sqlite_master WHERE name = 'club_activity'")[0][0]
        assert "WITHOUT ROWID" in club_sql, club_sql
        assert d.query("SELECT * FROM club_activity") == [("acme", "7", "a@example.com", 1000, 0.5)]
    finally:
        d.cleanup()


run(globals())
