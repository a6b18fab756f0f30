"""listbossd's commands: catalogue, segmentations, add/remove, evaluate, dead letters."""
import json
import os
import subprocess

from lbtest import DEFAULT_CONFIG, FIXTURES, LISTBOSSD, Daemon, run

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


def cli(*args, expect=0):
    r = subprocess.run([LISTBOSSD, "-c", D.config_path] + list(args), capture_output=True, text=True, env=D.env,
                       cwd=D.dir, timeout=60)
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


setup_store()
run(globals(), teardown=D.cleanup)
