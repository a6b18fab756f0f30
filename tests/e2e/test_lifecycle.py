"""The daemon's command line, configuration errors, reload and shutdown."""
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid

from lbtest import (Daemon, DEFAULT_CONFIG, HOTTOK_B, LISTBOSSD, fixture, free_port, run, with_id)
from old_store import LATEST, make_store, schema_of, tables as old_store_tables

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


def test_the_daemon_leaves_another_programs_database_alone():
    """A database of another program given as the store has schema version
    0 and tables: the daemon refuses it at start, exit 1, and leaves it as
    it was (before, migration 1 added our tables and WAL mode changed its
    header). An empty file is a new store, made as always."""
    d = Daemon()
    foreign = os.path.join(d.dir, "foreign.db")
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('not ours')")
    db.close()
    with open(foreign, "rb") as f:
        before = f.read()
    refused = Daemon(args=["-d", foreign])
    empty = Daemon(args=["-d", os.path.join(d.dir, "empty.db")])
    open(os.path.join(d.dir, "empty.db"), "w").close()
    try:
        refused.start(wait=False)
        assert refused.proc.wait(10) == 1
        log = refused.stderr()
        assert ("%s is not a listboss store (schema version 0, with another program's tables in it): check -d"
                " or database in the configuration" % foreign) in log, log
        with open(foreign, "rb") as f:
            assert f.read() == before
        assert not os.path.exists(foreign + "-wal")
        empty.start()
        assert empty.post_hotmart(with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))).status == 200
        empty.stop()
        empty.db = os.path.join(d.dir, "empty.db")
        assert empty.query("PRAGMA user_version") == [(LATEST,)]
        assert empty.query("PRAGMA page_size") == [(16384,)]
    finally:
        d.cleanup()
        refused.cleanup()
        empty.cleanup()


# --- a store an older listbossd left, upgraded at start -------------------------------------------
#
# old_store.make_store writes a store exactly as the daemon of an older
# version left it (its tables, indexes and SQL text; see old_store.py for how
# the schema moved). OLD_ROWS fills every table a later migration rebuilds or
# fills (events, jobs, club_activity, and event_keys from the events) and the
# ones none touches, so that a migration that loses a row, a value or an index
# shows. DEFAULT_CONFIG declares no integration and no Club, so the running
# daemon writes to none of these tables but events and event_keys.

T = 1768482362000  # 2026-01-15, when these rows were written
NEVER = 4102444800000  # 2100-01-01: the ready job is not due while the test runs
OLD_ID_A, OLD_ID_B = str(uuid.uuid4()), str(uuid.uuid4())
OLD_BODY_A = with_id(fixture("PURCHASE_APPROVED"), OLD_ID_A)
OLD_LEAD = '{"name":"Ana Teste","first_name":"Ana","last_name":"Teste"}'
OLD_DECLARATION = json.dumps({
    "account": "acme", "name": "vip", "product": "4123456", "trigger": {"id": "purchase_approved", "params": {}},
    "conditions": [], "integration": "local", "actions": [{"action": "tag_add", "params": {"tag": "vip"}}],
    "options": {"send_billet_link": False}, "enabled": True, "status": "ok", "reasons": []}, separators=(",", ":"))

OLD_ROWS = {
    # ids with gaps: the ids must survive the copy, and new events go on after the highest
    "events": [
        (3, "acme", "hotmart", OLD_ID_A, "purchase.approved", "PURCHASE_APPROVED", "4123456",
         "ana.teste@example.com", T - 60000, T, "accepted", 0, '{"type":"purchase.approved"}',
         "application/json", OLD_BODY_A),
        (7, "acme", "hotmart", OLD_ID_B, "purchase.refunded", "PURCHASE_REFUNDED", None, None, None, T + 1000,
         "ignored", 1, '{"type":"purchase.refunded"}', "application/x-www-form-urlencoded",
         ("id=%s&event=PURCHASE_REFUNDED" % OLD_ID_B).encode()),
        # the same Hotmart id under another account is another event
        (8, "beta", "hotmart", OLD_ID_A, "purchase.approved", "PURCHASE_APPROVED", "99", "bia@example.com",
         T - 50000, T + 2000, "accepted", 0, '{"type":"purchase.approved"}', "application/json", b"{}"),
    ],
    # added with the command line: the daemon keeps it (a config one it does not declare, it drops)
    "segmentations": [(1, "acme", "vip", "4123456", OLD_DECLARATION, "cli", "ok", "[]", T - 3600000)],
    # one job in each state, with what its attempts left in it
    "jobs": [
        (1, "acme", "local", "ana.teste@example.com", "list_add", '{"list":"buyers"}', OLD_LEAD, "3:1:0", 3, 1, 0,
         "done", 1, T, T, T + 5, 200, None),
        (2, "acme", "local", "ana.teste@example.com", "tag_add", '{"tag":"vip"}', OLD_LEAD, "3:1:1", 3, 1, 1,
         "dead", 8, T, T + 3600000, T + 3600000, 422, "invalid e-mail"),
        (5, "acme", "local", "ana.teste@example.com", "tag_add", '{"tag":"customer"}', OLD_LEAD, "3:1:2", 3, 1, 2,
         "ready", 2, T, NEVER, T + 60000, 503, "service unavailable"),
    ],
    "job_attempts": [(1, T + 5, 200, "ok", None), (2, T + 3600000, 422, "fail", "invalid e-mail"),
                     (5, T + 60000, 503, "retry", "service unavailable")],
    "lead_state": [("acme", "local", "ana.teste@example.com", "sandbox:ana.teste@example.com", '["list:buyers"]',
                    T + 5)],
    "integration_state": [("acme", "local", 1, "401: bad credentials", T + 7200000)],
    # a login and progress; progress with no login yet; a login with no progress yet (-1)
    "club_activity": [("acme", "4123456", "ana.teste@example.com", T + 10000, 0.5),
                      ("acme", "4123456", "bruno@example.com", 0, 0.25),
                      ("beta", "99", "bia@example.com", T + 20000, -1.0)],
    # since migration 6, one per event, written with it
    "event_keys": [(3, "acme", "hotmart", OLD_ID_A), (7, "acme", "hotmart", OLD_ID_B),
                   (8, "beta", "hotmart", OLD_ID_A)],
}
ROW_ORDER = {"events": "id", "event_keys": "event_id", "segmentations": "id", "jobs": "id", "job_attempts": "job_id",
             "lead_state": "lead_email", "integration_state": "integration",
             "club_activity": "account, product_id, lead_email"}


def daemon_on_old_store(version):
    """A Daemon whose store a listbossd of `version` left, with OLD_ROWS in every table that version has."""
    d = Daemon()
    make_store(d.db, version, {t: rows for t, rows in OLD_ROWS.items() if t in old_store_tables(version)})
    return d


def current_schema():
    """The schema a store of this build has: old_store's latest version, which
    test_the_latest_old_store_is_the_schema_listbossd_creates holds to what the daemon makes."""
    folder = tempfile.mkdtemp(prefix="lbtest-schema-")
    try:
        make_store(os.path.join(folder, "store.db"), LATEST)
        return schema_of(os.path.join(folder, "store.db"))
    finally:
        shutil.rmtree(folder)


def kept(table, rows):
    """What of a table's rows an upgrade keeps as they were: all of it, but a
    segmentation's status and reasons, which the daemon works out again at each start."""
    return [r[:6] + r[8:] for r in rows] if table == "segmentations" else rows


def assert_upgraded(d, version):
    """The store of `version` under d is now this build's, every old row in it with its values."""
    assert d.query("PRAGMA user_version") == [(LATEST,)]
    # table by table, index by index (the autoindex of a UNIQUE key or primary key too): each migration's work,
    # and nothing left of the tables a rebuild copied from (events_v6, jobs_v6, club_activity_v8)
    got, want = schema_of(d.db), current_schema()
    for name in sorted(set(got) | set(want)):
        assert got.get(name, "(none)") == want.get(name, "(none)"), (version, name, got.get(name), want.get(name))
    for table, order in ROW_ORDER.items():
        rows = d.query("SELECT * FROM %s ORDER BY %s" % (table, order))
        if table in old_store_tables(version):
            want = OLD_ROWS[table]
        elif table == "event_keys":
            want = [(r[0], r[1], r[2], r[3]) for r in OLD_ROWS["events"]]  # migration 6 filled it from the events
        else:
            want = []  # a table made by a later migration starts empty
        assert kept(table, rows) == kept(table, want), (version, table, rows, want)
    # the daemon read event_keys: a redelivery of an old event is a duplicate, per account
    assert d.post_hotmart(OLD_BODY_A).json() == {"event_id": 3, "duplicate": True}
    assert d.post_hotmart(with_id(fixture("PURCHASE_APPROVED"), OLD_ID_B)).json() == {"event_id": 7,
                                                                                     "duplicate": True}
    assert d.post_hotmart(OLD_BODY_A, hottok=HOTTOK_B).json() == {"event_id": 8, "duplicate": True}


def test_a_version_5_store_is_upgraded_at_start_and_keeps_everything_it_held():
    # version 5: the events' UNIQUE key (no event_keys), the outbox's state
    # check an IN list, Club activity a rowid table; migrations 6, 7 and 8 remain
    d = daemon_on_old_store(5)
    try:
        d.start()
        log = d.stderr()
        # an upgrade that copies every event takes a while: the log says so, then says when it is done
        for v in (6, 7, 8):
            assert re.search(r'msg="upgrading the store\'s schema[^"]*" from=%d to=%d' % (v - 1, v), log), log
            assert re.search(r'msg="store schema upgraded" version=%d ms=\d+' % v, log), log
        assert "from=4 " not in log and "from=8 " not in log, log  # those three only
        assert_upgraded(d, 5)
        # migration 6: no key on events any more; a new event gets the id after the old ones' highest
        assert d.query("SELECT name FROM sqlite_master WHERE tbl_name = 'events' AND type = 'index'") == []
        fresh = d.post_hotmart(with_id(fixture("PURCHASE_APPROVED"), str(uuid.uuid4()))).json()
        assert fresh == {"event_id": 9, "duplicate": False}, fresh
        assert d.query("SELECT event_id, account FROM event_keys WHERE event_id = 9") == [(9, "acme")]
        # migration 7: the outbox's check spelled with OR; a state outside the three is still refused, and an
        # idempotency key still unique
        jobs_sql = d.query("SELECT sql FROM sqlite_master WHERE name = 'jobs'")[0][0]
        assert " IN (" not in jobs_sql and "state = 'ready' OR state = 'done' OR state = 'dead'" in jobs_sql
        db = sqlite3.connect(d.db, timeout=10)
        try:
            for bad in ("UPDATE jobs SET state = 'gone' WHERE id = 5",
                        "INSERT INTO jobs SELECT 6, account, integration, lead_email, action, params, lead,"
                        " idempotency_key, event_id, segmentation_id, action_index, state, attempts, created_at,"
                        " next_attempt_at, updated_at, last_status, last_reason FROM jobs WHERE id = 5"):
                try:
                    db.execute(bad)
                    raise AssertionError("accepted: " + bad)
                except sqlite3.IntegrityError:
                    pass
        finally:
            db.close()
        # what the daemon's commands read from the rebuilt outbox
        r = listbossd("-c", d.config_path, "dead-letters", "acme", env=d.env, cwd=d.dir)
        assert r.returncode == 0, r
        assert [(j["id"], j["attempts"], j["last_status"], j["last_reason"]) for j in json.loads(r.stdout)] == [
            (2, 8, 422, "invalid e-mail")], r.stdout
        # migration 8: Club activity keyed by its primary key alone, no rowid
        club_sql = d.query("SELECT sql FROM sqlite_master WHERE name = 'club_activity'")[0][0]
        assert club_sql.endswith(") WITHOUT ROWID"), club_sql
        assert d.query("SELECT count(*) FROM sqlite_master WHERE tbl_name = 'club_activity' AND type = 'index'") == [
            (0,)]
    finally:
        d.cleanup()


def test_a_store_of_each_older_version_is_upgraded_and_keeps_everything_it_held():
    # from version 1 (events only) on: migrations 2 and 3 add the tables, 6
    # to 8 as above; each start runs the ones its store lacks. 4 and 5 drop
    # the events' two indexes, but 6's rebuild of events drops whatever
    # index is left on them: after an upgrade nothing tells whether 4 and 5
    # ran, and no test of an upgraded store can

    for version in range(1, LATEST):
        d = daemon_on_old_store(version)
        try:
            d.start()
            log = d.stderr()
            for v in range(version + 1, LATEST + 1):
                assert re.search(r'msg="store schema upgraded" version=%d ms=\d+' % v, log), (version, log)
            assert_upgraded(d, version)
        finally:
            d.cleanup()


def test_the_latest_old_store_is_the_schema_listbossd_creates():
    # what the upgrade tests compare with: old_store's newest version, spelled
    # by hand, is what this build's daemon makes in a new store
    d = Daemon().start()
    try:
        d.stop()
        assert d.query("PRAGMA user_version") == [(LATEST,)]
        assert schema_of(d.db) == current_schema()
    finally:
        d.cleanup()


run(globals())
