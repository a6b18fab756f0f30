"""listbossd's commands: catalogue, segmentations, add/remove, evaluate, dead letters; beside a running
daemon, on a store older than them, which they leave to the daemon to upgrade, and on a file that is no store."""
import json
import os
import signal
import sqlite3
import subprocess
import time

from lbtest import DEFAULT_CONFIG, FIXTURES, LISTBOSSD, Daemon, run
from old_store import make_store

CONFIG = DEFAULT_CONFIG.replace('''  {{ id = "acme", hottok = "env:LB_TEST_HOTTOK_A", api_token = "env:LB_TEST_TOKEN_A" }},''', '''  {{ id = "acme", hottok = "env:LB_TEST_HOTTOK_A", api_token = "env:LB_TEST_TOKEN_A",
     integrations = {{ {{ id = "local", provider = "sandbox" }} }},
     segmentations = {{
       {{ name = "buyers", product = "4123456", trigger = "purchase_approved", integration = "local",
          actions = {{ {{ action = "list_add", params = {{ list = "buyers" }} }},
                       {{ action = "tag_add", params = {{ tag = "customer" }} }} }} }},
       {{ name = "pix-only", product = "4123456", trigger = "purchase_approved", integration = "local",
          conditions = {{ {{ id = "payment_method", params = {{ ["in"] = {{ "PIX" }} }} }} }},
          actions = {{ {{ action = "tag_add", params = {{ tag = "pix" }} }} }} }},
     }} }},''')

D = Daemon(config=CONFIG)


def setup_store():
    """The commands open an existing store only: the daemon's first start creates it."""
    D.start()
    D.stop()
    assert os.path.exists(D.db)


def run_cli(*args):
    return subprocess.run([LISTBOSSD, "-c", D.config_path] + list(args), capture_output=True, text=True, env=D.env,
                          cwd=D.dir, timeout=60)


def cli(*args, expect=0):
    r = run_cli(*args)
    assert r.returncode == expect, (args, r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout) if r.stdout.strip() else None


def write(name, doc):
    path = os.path.join(D.dir, name)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def test_help_lists_the_commands_and_opens_nothing():
    r = subprocess.run([LISTBOSSD, "-d", os.path.join(D.dir, "no-such.db"), "help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r
    for command in ("catalogue", "segmentations", "evaluate", "dead-letters", "replay"):
        assert command in r.stdout, r.stdout
    assert not os.path.exists(os.path.join(D.dir, "no-such.db"))


def test_catalogue_lists_every_trigger_and_condition():
    cat = cli("catalogue")
    triggers = {t["id"] for t in cat["triggers"]}
    conditions = {c["id"] for c in cat["conditions"]}
    assert len(triggers) >= 25 and len(conditions) == 7, (triggers, conditions)
    for t in ["cart_abandonment", "bank_slip_issued", "purchase_approved", "purchase_refunded",
              "club_progress", "club_inactive_15", "club_inactive_30", "subscription_canceled_customer"]:
        assert t in triggers, t
    for t in cat["triggers"]:
        assert t["label"] and t["description"] and t["group"], t


def test_configured_segmentations_are_listed_with_their_status():
    segs = {s["name"]: s for s in cli("segmentations", "acme")}
    assert set(segs) == {"buyers", "pix-only"}, segs
    assert segs["buyers"]["status"] == "ok" and segs["buyers"]["reasons"] == []


def test_add_refuses_an_inconsistent_segmentation_with_every_reason():
    path = write("bad.json", {"name": "bad", "product": "4123456", "trigger": {"id": "cart_abandonment"},
                              "conditions": [{"id": "installments", "params": {"op": "gt", "value": 2}},
                                             {"id": "no_such_condition"}],
                              "integration": "local",
                              "actions": [{"action": "list_remove", "params": {"list": "never-added"}},
                                          {"action": "fly_to_the_moon"}]})
    out = cli("segmentation", "add", "acme", path, expect=1)
    codes = sorted(r["code"] for r in out["reasons"])
    assert out["saved"] is False
    for code in ["condition_not_applicable", "unknown_condition", "missing_prerequisite", "unknown_action"]:
        assert code in codes, (code, out)
    assert "bad" not in {s["name"] for s in cli("segmentations", "acme")}


def test_add_then_remove_a_consistent_segmentation():
    path = write("good.json", {"name": "refunds", "product": "4123456", "trigger": {"id": "purchase_refunded"},
                               "integration": "local", "actions": [{"action": "tag_add", "params": {"tag": "refunded"}}]})
    out = cli("segmentation", "add", "acme", path)
    assert out["saved"] is True and out["id"] > 0
    assert "refunds" in {s["name"] for s in cli("segmentations", "acme")}
    assert cli("segmentation", "remove", "acme", "refunds") == {"removed": True}
    assert cli("segmentation", "remove", "acme", "refunds", expect=1) == {"removed": False}


def test_add_refuses_an_unknown_account_and_a_malformed_file():
    path = write("x.json", {"name": "x"})
    cli("segmentation", "add", "nobody", path, expect=1)
    cli("segmentation", "add", "acme", path, expect=1)
    bad = os.path.join(D.dir, "broken.json")
    with open(bad, "w") as f:
        f.write("{not json")
    cli("segmentation", "add", "acme", bad, expect=1)


def test_evaluate_prints_decisions_and_queues_nothing():
    out = cli("evaluate", "acme", os.path.join(FIXTURES, "PURCHASE_APPROVED.json"))
    actions = [(d["segmentation"], d["action"], d["params"]) for d in out["decisions"]]
    assert actions == [("buyers", "list_add", {"list": "buyers"}), ("buyers", "tag_add", {"tag": "customer"})], out
    assert any(s["segmentation"] == "pix-only" for s in out["skipped"]), out
    assert D.query("SELECT count(*) FROM jobs") == [(0,)]
    out = cli("evaluate", "acme", os.path.join(FIXTURES, "PURCHASE_REFUNDED.json"))
    assert out["decisions"] == [], out


def test_evaluate_rejects_a_bad_event_file():
    path = write("noemail.json", {"id": "x", "event": "PURCHASE_APPROVED", "data": {"product": {"id": 1}}})
    cli("evaluate", "acme", path, expect=1)


def test_dead_letters_and_replay_with_none():
    assert cli("dead-letters", "acme") == []
    assert cli("replay", "acme", expect=1) == {"replayed": 0}
    cli("replay", "acme", "not-a-number", expect=1)


def test_dead_letters_and_replay_refuse_an_unknown_account():
    for args in [("dead-letters", "nobody"), ("replay", "nobody"), ("replay", "nobody", "1")]:
        r = subprocess.run([LISTBOSSD, "-c", D.config_path] + list(args), capture_output=True, text=True,
                           env=D.env, cwd=D.dir, timeout=60)
        assert (r.returncode, r.stdout) == (1, ""), (args, r.returncode, r.stdout, r.stderr)
        assert "account: no such account in the configuration" in r.stderr, (args, r.stderr)


def test_a_mistyped_database_path_is_an_error_and_creates_nothing():
    folder = os.path.join(D.dir, "typo")
    db = os.path.join(folder, "lisboss.db")
    for args in [("dead-letters", "acme"), ("replay", "acme"), ("segmentations",),
                 ("segmentation", "remove", "acme", "x")]:
        r = subprocess.run([LISTBOSSD, "-c", D.config_path, "-d", db] + list(args), capture_output=True, text=True,
                           env=D.env, cwd=D.dir, timeout=60)
        assert r.returncode == 1 and r.stdout == "", (args, r.returncode, r.stdout, r.stderr)
        assert db in r.stderr and "no database" in r.stderr, (args, r.stderr)
        assert not os.path.exists(folder), args


def test_unknown_command_is_a_usage_error():
    cli("frobnicate", expect=2)


# --- beside a running daemon, and a store older than the commands ------------------------------

def store_exec(script):
    """Writes to the store as another program would, beside the daemon or not."""
    con = sqlite3.connect(D.db, timeout=10, isolation_level=None)
    try:
        con.executescript(script)
    finally:
        con.close()


def test_the_commands_work_beside_a_running_listbossd():
    # reading needs no stop, and replay is meant for a running daemon: replay, then SIGHUP
    D.start()
    try:
        store_exec("""INSERT INTO jobs (account, integration, lead_email, action, params, lead, idempotency_key,
                     event_id, segmentation_id, action_index, state, attempts, created_at, next_attempt_at,
                     updated_at, last_status, last_reason)
                   VALUES ('acme', 'local', 'ana@example.com', 'tag_add', '{"tag":"customer"}',
                     '{"name":"Ana Teste"}', 'beside:1:0', 1, 1, 0, 'dead', 8, 1, 1, 1, 503,
                     'gave up after 8 attempts: 503');""")
        job = D.query("SELECT id FROM jobs WHERE idempotency_key = 'beside:1:0'")[0][0]
        dead = cli("dead-letters", "acme")
        assert [(j["id"], j["last_status"]) for j in dead] == [(job, 503)], dead
        assert {"buyers", "pix-only"} <= {s["name"] for s in cli("segmentations", "acme")}
        assert cli("evaluate", "acme", os.path.join(FIXTURES, "PURCHASE_APPROVED.json"))["decisions"]
        assert cli("replay", "acme", str(job)) == {"replayed": 1}
        D.send_signal(signal.SIGHUP)  # the daemon picks the replayed job up and the sandbox does it
        deadline = time.time() + 10
        while D.query("SELECT state FROM jobs WHERE id = ?", job) != [("done",)]:
            assert time.time() < deadline, (D.query("SELECT * FROM jobs WHERE id = ?", job), D.stderr()[-3000:])
            time.sleep(0.05)
    finally:
        D.stop()


# every command opens the store, so every one must leave an older one alone
COMMANDS = [("dead-letters", "acme"), ("replay", "acme"), ("replay", "acme", "1"), ("segmentations", "acme"),
            ("catalogue",), ("evaluate", "acme", os.path.join(FIXTURES, "PURCHASE_APPROVED.json")),
            ("segmentation", "remove", "acme", "nothing")]


def take_back_to_version_7():
    """The store as version 7 left it (old_store.py): club_activity a rowid
    table, which migration 8 copies into a WITHOUT ROWID one, with a row in
    it; the other tables keep their rows. One transaction, so it can run
    under the daemon."""
    make_store(D.db, 7, {"club_activity": [("acme", "4123456", "ana@example.com", 1000, 0.5)]})


def schema():
    """What a migration would change: the version, every table and index, and the rows it copies."""
    return (D.query("PRAGMA user_version"),
            D.query("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"),
            D.query("SELECT * FROM club_activity ORDER BY lead_email"))


def assert_refused(args, who, advice):
    r = run_cli(*args)
    assert (r.returncode, r.stdout) == (os.EX_TEMPFAIL, ""), (args, r.returncode, r.stdout, r.stderr)
    assert r.stderr == ("listbossd: database: the schema of %s needs an upgrade (version 7 -> 8), and %s running on"
                        " it. Only the daemon upgrades a store, as it starts: %s, then run the command again\n"
                        % (D.db, who, advice)), (args, r.stderr)


def test_an_older_store_is_left_alone_while_listbossd_runs_on_it():
    # after a package upgrade the old daemon runs on, with SQL written for its
    # schema: the new binary's commands must not migrate the store under it.
    # The daemon here stands for the old one: it holds the lock as any
    # listbossd does, and the store is taken back to version 7 under it.
    D.start()
    try:
        take_back_to_version_7()
        before = schema()
        assert before[0] == [(7,)]
        for args in COMMANDS:
            assert_refused(args, "listbossd (pid %d) is" % D.proc.pid,
                           "restart that one with this listbossd (or, if it is starting, let it finish)")
        assert schema() == before
        assert D.get("/healthz").status == 200
    finally:
        D.stop()
    # as the message says: the new daemon upgrades the store as it starts, then the commands work
    D.start()
    D.stop()
    assert D.query("PRAGMA user_version") == [(8,)]
    assert D.query("SELECT * FROM club_activity") == [("acme", "4123456", "ana@example.com", 1000, 0.5)]
    assert cli("dead-letters", "acme") == []


def test_an_older_store_is_left_alone_with_no_listbossd_running():
    # only the daemon upgrades, as it starts (cli.c says why); nor does a
    # command create the daemon's lock file, which it would own
    lock = D.db + "-listbossd.lock"
    os.unlink(lock)
    take_back_to_version_7()
    before = schema()
    for args in COMMANDS:
        assert_refused(args, "no listbossd is", "start listbossd once")
    assert schema() == before
    assert not os.path.exists(lock)
    D.start()
    D.stop()
    assert D.query("PRAGMA user_version") == [(8,)]
    assert cli("dead-letters", "acme") == []


def test_a_file_that_is_no_listboss_store_is_named_so():
    """An empty file or another program's SQLite database has schema version
    0: not an older store to upgrade (every store the daemon made is at 1 or
    later), and "start listbossd once" would have it fill the file with its
    tables. The commands say what it is, exit 1 and leave it as it was."""
    empty = os.path.join(D.dir, "empty.db")
    open(empty, "w").close()
    foreign = os.path.join(D.dir, "foreign.db")
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('not ours')")
    db.close()
    for path in (empty, foreign):
        with open(path, "rb") as f:
            before = f.read()
        for args in COMMANDS:
            r = run_cli("-d", path, *args)
            assert (r.returncode, r.stdout) == (1, ""), (path, args, r.returncode, r.stdout, r.stderr)
            assert r.stderr == ("listbossd: database: %s is not a listboss store (schema version 0): check -d or"
                                " database in the configuration\n" % path), (path, args, r.stderr)
        with open(path, "rb") as f:
            assert f.read() == before, path
        assert not os.path.exists(path + "-listbossd.lock") and not os.path.exists(path + "-wal"), path


setup_store()
run(globals(), teardown=D.cleanup)
