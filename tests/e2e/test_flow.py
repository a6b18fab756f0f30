"""Segmentation engine end to end: webhook in over HTTP, jobs out, the sandbox provider runs them.

The sandbox provider succeeds at once and the core records each move in
lead_state, so these tests see the whole path (ingest transaction ->
segmentation engine -> outbox -> dispatcher -> store) without a network.
"""
import json
import os
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
import uuid

from lbtest import Daemon, HOTTOK_A, HOTTOK_B, TOKEN_B, fixture, run

RULES_DIR = os.environ.get("LISTBOSS_RULES_DIR",
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "rules"))
PRODUCT = "4123456"
DEADLINE_S = 15


# --- config as Python data -> Lua ----------------------------------------------

def lua(v, indent=""):
    """Python value as Lua source: dicts become records, lists become sequences."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid Lua string literal for our ASCII values
    inner = indent + "  "
    if isinstance(v, dict):
        items = ["%s[%s] = %s" % (inner, json.dumps(k), lua(x, inner)) for k, x in v.items()]
    else:
        items = [inner + lua(x, inner) for x in v]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}" if items else "{}"


def seg(name, trigger, actions, product=PRODUCT, integration="sb", conditions=None, enabled=None):
    s = {"name": name, "product": product, "trigger": trigger, "integration": integration,
         "actions": [{"action": a, "params": p} for a, p in actions]}
    if conditions:
        s["conditions"] = [{"id": c, "params": p} for c, p in conditions]
    if enabled is not None:
        s["enabled"] = enabled
    return s


BUYERS = seg("buyers", "purchase_approved", [("list_add", {"list": "buyers"}), ("tag_add", {"tag": "customer"})])
REFUNDS = seg("refunds", "purchase_refunded", [("tag_remove", {"tag": "customer"}), ("tag_add", {"tag": "refunded"})])
PIX = seg("pix buyers", "purchase_approved", [("tag_add", {"tag": "pix"})],
          conditions=[("payment_method", {"in": ["PIX"]})])
CARTS = seg("carts", "cart_abandonment", [("tag_add", {"tag": "cart"})],
            conditions=[("installments", {"op": "gt", "value": 1})])
OTHER = seg("other product", "purchase_approved", [("tag_add", {"tag": "other"})], product="7777777")
BETA_BUYERS = seg("beta buyers", "purchase_approved", [("tag_add", {"tag": "beta-customer"})])


def config(d, acme_segs, beta_segs=(), rules_dir=None):
    cfg = {
        "listen": "127.0.0.1:%d" % d.port,
        "database": d.db,
        "accounts": [
            {"id": "acme", "hottok": "env:LB_TEST_HOTTOK_A", "api_token": "env:LB_TEST_TOKEN_A",
             "integrations": [{"id": "sb", "provider": "sandbox"}], "segmentations": list(acme_segs)},
            {"id": "beta", "hottok": "file:%s/beta.hottok" % d.dir, "api_token": TOKEN_B,
             "integrations": [{"id": "sb", "provider": "sandbox"}], "segmentations": list(beta_segs)},
        ],
    }
    for a in cfg["accounts"]:
        if not a["segmentations"]:
            del a["segmentations"]
    if rules_dir:
        cfg["rules_dir"] = rules_dir
    return "\n".join("%s = %s" % (k, lua(v)) for k, v in cfg.items()) + "\n"


def write_config(d, text):
    with open(d.config_path, "w") as f:
        f.write(text)


def start_daemon(acme_segs, beta_segs=(), rules_dir=None):
    d = Daemon()
    write_config(d, config(d, acme_segs, beta_segs, rules_dir))
    DAEMONS.append(d)
    return d.start()


def reload(d, text, expect="configuration reloaded"):
    """Writes a new config, sends SIGHUP and waits for the daemon to log the outcome."""
    marks = ("configuration reloaded", "reload failed")
    before = {m: d.stderr().count(m) for m in marks}
    write_config(d, text)
    d.send_signal(signal.SIGHUP)
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        log = d.stderr()
        done = [m for m in marks if log.count(m) > before[m]]
        if done:
            assert done == [expect], "expected %r after SIGHUP, got %r:\n%s" % (expect, done, log[-3000:])
            return
        assert d.proc.poll() is None, "listbossd died on SIGHUP:\n" + log[-3000:]
        time.sleep(0.02)
    raise AssertionError("no reload outcome logged:\n" + d.stderr()[-3000:])


# --- events and store ------------------------------------------------------------

def event(name, email=None, product=None, payment=None):
    """A fixture with a fresh id, optionally another buyer e-mail, product or payment type."""
    doc = json.loads(fixture(name))
    doc["id"] = str(uuid.uuid4())
    if email:
        doc["data"]["buyer"]["email"] = email
    if product:
        doc["data"]["product"]["id"] = int(product)
    if payment:
        doc["data"]["purchase"]["payment"]["type"] = payment
    return json.dumps(doc).encode()


def new_email(tag="lead"):
    return "%s-%s@example.com" % (tag, uuid.uuid4().hex[:10])


def post(d, body, hottok=HOTTOK_A, duplicate=False):
    r = d.post_hotmart(body, hottok=hottok)
    assert r.status == 200, r
    doc = r.json()
    assert doc["duplicate"] is duplicate, doc
    return doc["event_id"]


JOB_COLS = "id, account, integration, lead_email, action, params, lead, idempotency_key, event_id, " \
           "segmentation_id, action_index, state, attempts, last_reason"


def jobs(d, where="1", *params):
    rows = d.query("SELECT %s FROM jobs WHERE %s ORDER BY id" % (JOB_COLS, where), *params)
    return [dict(zip([c.strip() for c in JOB_COLS.split(",")], r)) for r in rows]


def seg_ids(d, account="acme"):
    return dict(d.query("SELECT name, id FROM segmentations WHERE account = ?", account))


def wait_done(d, where, *params, timeout=DEADLINE_S):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = jobs(d, where, *params)
        if rows and all(j["state"] == "done" for j in rows):
            return rows
        time.sleep(0.02)
    raise AssertionError("jobs not done in %ss: %r\n%s" % (timeout, jobs(d, where, *params), d.stderr()[-2000:]))


def memberships(d, email, account="acme", integration="sb"):
    rows = d.query("SELECT memberships FROM lead_state WHERE account = ? AND integration = ? AND lead_email = ?",
                   account, integration, email)
    return set(json.loads(rows[0][0])) if rows else None


DAEMONS = []
D = start_daemon([BUYERS, REFUNDS, PIX, CARTS, OTHER], [BETA_BUYERS])


def teardown():
    for d in DAEMONS:
        d.cleanup()


# --- tests -------------------------------------------------------------------------------

def test_segmentations_are_stored_with_their_status():
    rows = {n: (s, json.loads(r)) for n, s, r in D.query("SELECT name, status, reasons FROM segmentations"
                                                         " WHERE account = 'acme'")}
    assert set(rows) == {"buyers", "refunds", "pix buyers", "carts", "other product"}, rows
    for name in ("buyers", "refunds", "pix buyers", "other product"):
        assert rows[name] == ("ok", []), (name, rows[name])
    beta = D.query("SELECT name, status FROM segmentations WHERE account = 'beta'")
    assert beta == [("beta buyers", "ok")], beta


def test_webhook_makes_one_job_per_action_in_action_order():
    email = new_email("order")
    eid = post(D, event("PURCHASE_APPROVED", email=email))
    rows = jobs(D, "event_id = ?", eid)  # written in the ingest transaction: there at the answer
    sid = seg_ids(D)["buyers"]
    assert [(j["action"], json.loads(j["params"])) for j in rows] == [
        ("list_add", {"list": "buyers"}), ("tag_add", {"tag": "customer"})], rows
    assert [j["id"] for j in rows] == sorted(j["id"] for j in rows)
    assert [j["action_index"] for j in rows] == [0, 1], rows
    assert [j["idempotency_key"] for j in rows] == ["%d:%d:0" % (eid, sid), "%d:%d:1" % (eid, sid)], rows
    for j in rows:
        assert (j["account"], j["integration"], j["lead_email"], j["segmentation_id"]) == ("acme", "sb", email, sid), j
        lead = json.loads(j["lead"])
        assert lead.get("first_name") == "Ana" and lead.get("last_name") == "Teste", lead
        assert "billet_url" not in lead, lead
    wait_done(D, "event_id = ?", eid)


def test_several_matching_segmentations_queue_in_declaration_order():
    email = new_email("pix")
    eid = post(D, event("PURCHASE_APPROVED", email=email, payment="PIX"))
    rows = jobs(D, "event_id = ?", eid)
    ids = seg_ids(D)
    got = [(j["segmentation_id"], j["action_index"], j["action"]) for j in rows]
    assert got == [(ids["buyers"], 0, "list_add"), (ids["buyers"], 1, "tag_add"),
                   (ids["pix buyers"], 0, "tag_add")], got
    assert [j["idempotency_key"] for j in rows] == ["%d:%d:%d" % (eid, s, i) for s, i, _ in got]
    wait_done(D, "event_id = ?", eid)
    assert memberships(D, email) == {"list:buyers", "tag:customer", "tag:pix"}, memberships(D, email)


def test_duplicate_webhook_makes_no_jobs():
    body = event("PURCHASE_APPROVED", email=new_email("dup"))
    eid = post(D, body)
    first = jobs(D, "event_id = ?", eid)
    assert len(first) == 2, first
    total = D.query("SELECT count(*) FROM jobs")[0][0]
    for _ in range(3):
        assert post(D, body, duplicate=True) == eid
    wait_done(D, "event_id = ?", eid)
    assert [j["id"] for j in jobs(D, "event_id = ?", eid)] == [j["id"] for j in first]
    assert D.query("SELECT count(*) FROM jobs")[0][0] == total
    assert D.query("SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.event_id = ?",
                   eid)[0][0] == 2


def test_condition_that_does_not_pass_makes_no_jobs():
    email = new_email("card")
    eid = post(D, event("PURCHASE_APPROVED", email=email))  # the fixture pays with CREDIT_CARD
    pix = seg_ids(D)["pix buyers"]
    assert jobs(D, "event_id = ? AND segmentation_id = ?", eid, pix) == []
    assert len(jobs(D, "event_id = ?", eid)) == 2  # the unconditional segmentation did run
    wait_done(D, "event_id = ?", eid)
    assert "tag:pix" not in memberships(D, email)


def test_needs_review_segmentation_keeps_its_reasons_and_never_runs():
    status, reasons = D.query("SELECT status, reasons FROM segmentations WHERE account = 'acme' AND name = 'carts'")[0]
    assert status == "needs_review", status
    reasons = json.loads(reasons)
    assert [(r["code"], r["field"]) for r in reasons] == [("condition_not_applicable", "conditions[1].id")], reasons
    assert "installments" in reasons[0]["message"], reasons
    carts = seg_ids(D)["carts"]
    email = new_email("cart")
    doc = json.loads(event("PURCHASE_OUT_OF_SHOPPING_CART"))
    doc["data"]["buyer"]["email"] = email
    eid = post(D, json.dumps(doc).encode())
    assert D.query("SELECT type FROM events WHERE id = ?", eid) == [("cart.abandoned",)]
    assert jobs(D, "event_id = ?", eid) == []
    assert jobs(D, "segmentation_id = ?", carts) == []
    assert memberships(D, email) is None


def test_jobs_run_and_lead_state_follows_the_lead():
    email = new_email("move")
    approved = post(D, event("PURCHASE_APPROVED", email=email))
    done = wait_done(D, "event_id = ?", approved)
    assert all(j["attempts"] == 1 for j in done), done
    assert memberships(D, email) == {"list:buyers", "tag:customer"}, memberships(D, email)
    refunded = post(D, event("PURCHASE_REFUNDED", email=email))
    rows = jobs(D, "event_id = ?", refunded)
    sid = seg_ids(D)["refunds"]
    assert [(j["action"], j["idempotency_key"]) for j in rows] == [
        ("tag_remove", "%d:%d:0" % (refunded, sid)), ("tag_add", "%d:%d:1" % (refunded, sid))], rows
    wait_done(D, "event_id = ?", refunded)
    assert memberships(D, email) == {"list:buyers", "tag:refunded"}, memberships(D, email)
    attempts = D.query("SELECT a.job_id, a.outcome FROM job_attempts a JOIN jobs j ON j.id = a.job_id"
                       " WHERE j.lead_email = ? ORDER BY a.rowid", email)
    assert [o for _, o in attempts] == ["ok"] * 4, attempts
    assert [i for i, _ in attempts] == sorted(i for i, _ in attempts), attempts  # lane order kept
    ref = D.query("SELECT contact_ref FROM lead_state WHERE account = 'acme' AND lead_email = ?", email)
    assert ref == [("sandbox:" + email,)], ref


def test_events_of_another_product_make_nothing():
    email = new_email("other")
    before = D.query("SELECT count(*) FROM jobs")[0][0]
    eid = post(D, event("PURCHASE_APPROVED", email=email, product="8888888"))
    assert D.query("SELECT product_id FROM events WHERE id = ?", eid) == [("8888888",)]
    assert jobs(D, "event_id = ?", eid) == []
    assert D.query("SELECT count(*) FROM jobs")[0][0] == before
    assert memberships(D, email) is None
    # and a segmentation of another product does not fire for 4123456
    eid = post(D, event("PURCHASE_APPROVED", email=email))
    other = seg_ids(D)["other product"]
    assert jobs(D, "segmentation_id = ?", other) == []
    # while its own product does
    eid = post(D, event("PURCHASE_APPROVED", email=email, product="7777777"))
    assert [(j["segmentation_id"], j["action"]) for j in jobs(D, "event_id = ?", eid)] == [(other, "tag_add")]
    wait_done(D, "lead_email = ?", email)


def test_two_accounts_are_isolated():
    email = new_email("both")
    body = event("PURCHASE_APPROVED", email=email)
    a = post(D, body, hottok=HOTTOK_A)
    b = post(D, body, hottok=HOTTOK_B)  # the same Hotmart id is another account's own event
    assert a != b
    ja, jb = jobs(D, "event_id = ?", a), jobs(D, "event_id = ?", b)
    acme_ids, beta_ids = set(seg_ids(D, "acme").values()), set(seg_ids(D, "beta").values())
    assert {j["account"] for j in ja} == {"acme"} and {j["segmentation_id"] for j in ja} <= acme_ids, ja
    assert [(j["account"], j["action"], json.loads(j["params"])) for j in jb] == [
        ("beta", "tag_add", {"tag": "beta-customer"})], jb
    assert jb[0]["segmentation_id"] in beta_ids
    wait_done(D, "lead_email = ?", email)
    assert memberships(D, email, "acme") == {"list:buyers", "tag:customer"}
    assert memberships(D, email, "beta") == {"tag:beta-customer"}
    # beta has no refund segmentation: acme's does not run for beta's events
    r = post(D, event("PURCHASE_REFUNDED", email=email), hottok=HOTTOK_B)
    assert jobs(D, "event_id = ?", r) == []
    assert memberships(D, email, "beta") == {"tag:beta-customer"}
    assert memberships(D, email, "acme") == {"list:buyers", "tag:customer"}


def test_sighup_disabling_or_removing_a_segmentation_stops_its_jobs():
    keep = seg("keep", "purchase_approved", [("tag_add", {"tag": "kept"})])
    off = seg("switch off", "purchase_approved", [("tag_add", {"tag": "off"})])
    gone = seg("remove me", "purchase_approved", [("list_add", {"list": "gone"})])
    d = start_daemon([keep, off, gone])
    ids = seg_ids(d)
    eid = post(d, event("PURCHASE_APPROVED", email=new_email("hup")))
    assert sorted(j["segmentation_id"] for j in jobs(d, "event_id = ?", eid)) == sorted(ids.values())
    wait_done(d, "event_id = ?", eid)

    reload(d, config(d, [keep, dict(off, enabled=False)]))
    rows = dict((n, (i, s)) for n, i, s in d.query("SELECT name, id, status FROM segmentations WHERE account = 'acme'"))
    assert set(rows) == {"keep", "switch off"}, rows
    assert rows["keep"] == (ids["keep"], "ok"), rows  # the id (part of idempotency keys) is stable
    assert rows["switch off"] == (ids["switch off"], "disabled"), rows
    email = new_email("hup")
    eid = post(d, event("PURCHASE_APPROVED", email=email))
    got = jobs(d, "event_id = ?", eid)
    assert [(j["segmentation_id"], j["action"]) for j in got] == [(ids["keep"], "tag_add")], got
    wait_done(d, "event_id = ?", eid)
    assert memberships(d, email) == {"tag:kept"}

    reload(d, config(d, [keep, off]))  # switched back on
    eid = post(d, event("PURCHASE_APPROVED", email=new_email("hup")))
    assert sorted(j["segmentation_id"] for j in jobs(d, "event_id = ?", eid)) == [ids["keep"], ids["switch off"]]
    wait_done(d, "event_id = ?", eid)


def test_sighup_with_broken_rules_keeps_the_old_segmentations():
    good = tempfile.mkdtemp(prefix="lbrules-good-")
    bad = tempfile.mkdtemp(prefix="lbrules-bad-")
    try:
        shutil.copytree(RULES_DIR, os.path.join(good, "rules"))
        shutil.copytree(RULES_DIR, os.path.join(bad, "rules"))
        with open(os.path.join(bad, "rules", "triggers", "purchase_approved.lua"), "a") as f:
            f.write("\nthis is not lua (\n")
        good_dir, bad_dir = os.path.join(good, "rules"), os.path.join(bad, "rules")
        d = start_daemon([BUYERS, REFUNDS], rules_dir=good_dir)
        ids = seg_ids(d)
        # the new config also drops "refunds": nothing of it may be applied
        reload(d, config(d, [BUYERS], rules_dir=bad_dir), expect="reload failed")
        assert "purchase_approved" in d.stderr().split("reload failed")[-1].splitlines()[0], d.stderr()[-2000:]
        assert seg_ids(d) == ids
        assert d.query("SELECT name, status FROM segmentations ORDER BY id") == [("buyers", "ok"), ("refunds", "ok")]
        email = new_email("rules")
        a = post(d, event("PURCHASE_APPROVED", email=email))
        r = post(d, event("PURCHASE_REFUNDED", email=email))
        assert [j["segmentation_id"] for j in jobs(d, "event_id = ?", a)] == [ids["buyers"]] * 2
        assert [j["segmentation_id"] for j in jobs(d, "event_id = ?", r)] == [ids["refunds"]] * 2
        wait_done(d, "lead_email = ?", email)
        assert memberships(d, email) == {"list:buyers", "tag:refunded"}
        # once the rules are fixed, the same reload applies
        reload(d, config(d, [BUYERS], rules_dir=good_dir))
        assert list(seg_ids(d)) == ["buyers"]
        r = post(d, event("PURCHASE_REFUNDED", email=email))
        assert jobs(d, "event_id = ?", r) == []
    finally:
        shutil.rmtree(good, ignore_errors=True)
        shutil.rmtree(bad, ignore_errors=True)


def test_api_event_makes_jobs_like_a_webhook():
    email = new_email("api")
    doc = {"id": str(uuid.uuid4()), "type": "purchase.approved", "lead": {"email": email.upper(), "name": "Api Lead"},
           "product": {"id": 4123456}, "purchase": {"payment_method": "pix"}}
    r = D.post_event(doc)
    assert r.status == 200, r
    eid = r.json()["event_id"]
    rows = jobs(D, "event_id = ?", eid)
    ids = seg_ids(D)
    assert [(j["segmentation_id"], j["action"], j["lead_email"]) for j in rows] == [
        (ids["buyers"], "list_add", email), (ids["buyers"], "tag_add", email),
        (ids["pix buyers"], "tag_add", email)], rows
    assert json.loads(rows[0]["lead"]) == {"name": "Api Lead"}, rows[0]
    wait_done(D, "event_id = ?", eid)
    assert memberships(D, email) == {"list:buyers", "tag:customer", "tag:pix"}


def test_ignored_event_makes_no_jobs():
    doc = json.loads(event("PURCHASE_APPROVED", email=new_email("ignored")))
    doc["event"] = "ORDER_FULFILLMENT"
    r = D.post_hotmart(json.dumps(doc).encode())
    assert r.status == 200 and r.json().get("ignored") is True, r
    assert jobs(D, "event_id = ?", r.json()["event_id"]) == []


def test_test_events_act_only_while_not_ignored_by_config():
    doc = json.loads(event("PURCHASE_APPROVED", email=new_email("test")))
    doc["data"]["product"]["name"] = "Produto test postback2 x"
    eid = post(D, json.dumps(doc).encode())  # ignore_test_events defaults to false: it acts
    assert D.query("SELECT is_test FROM events WHERE id = ?", eid) == [(1,)]
    assert len(jobs(D, "event_id = ?", eid)) == 2
    d = start_daemon([BUYERS])
    text = config(d, [BUYERS]) + "ignore_test_events = true\n"
    reload(d, text)
    doc["id"] = str(uuid.uuid4())
    eid = post(d, json.dumps(doc).encode())
    assert d.query("SELECT status FROM events WHERE id = ?", eid) == [("ignored",)]
    assert jobs(d, "event_id = ?", eid) == []


def test_concurrent_events_of_one_lead_keep_their_order():
    email = new_email("burst")
    bodies = [event("PURCHASE_APPROVED" if i % 2 == 0 else "PURCHASE_REFUNDED", email=email) for i in range(20)]
    results = [None] * len(bodies)

    def send(i):
        conn = D.connection()
        try:
            results[i] = D.post_hotmart(bodies[i], conn=conn)
        finally:
            conn.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and r.status == 200 for r in results), results
    eids = [r.json()["event_id"] for r in results]
    rows = wait_done(D, "lead_email = ?", email)
    assert len(rows) == 2 * len(bodies), rows
    # jobs are numbered in event order, then action order
    keys = [(j["event_id"], j["action_index"]) for j in rows]
    assert keys == sorted(keys), keys
    assert {j["event_id"] for j in rows} == set(eids)
    # and they ran one at a time in id order
    order = [i for (i,) in D.query("SELECT a.job_id FROM job_attempts a JOIN jobs j ON j.id = a.job_id"
                                    " WHERE j.lead_email = ? ORDER BY a.rowid", email)]
    assert order == [j["id"] for j in rows], order
    want = set()
    for j in rows:  # replay the actions in job order
        kind, value = j["action"].split("_")[0], list(json.loads(j["params"]).values())[0]
        (want.add if j["action"].endswith("_add") else want.discard)("%s:%s" % (kind, value))
    assert memberships(D, email) == want, (memberships(D, email), want)


def test_concurrent_duplicates_queue_once():
    body = event("PURCHASE_REFUNDED", email=new_email("dupes"))
    results = []

    def send():
        results.append(D.post_hotmart(body))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status == 200 for r in results), results
    eids = {r.json()["event_id"] for r in results}
    assert len(eids) == 1 and sum(not r.json()["duplicate"] for r in results) == 1, results
    rows = jobs(D, "event_id = ?", eids.pop())
    assert [j["action"] for j in rows] == ["tag_remove", "tag_add"], rows
    assert len({j["idempotency_key"] for j in rows}) == 2


def test_restart_keeps_segmentation_ids_and_runs_waiting_jobs():
    d = start_daemon([BUYERS, REFUNDS])
    ids = seg_ids(d)
    email = new_email("restart")
    a = post(d, event("PURCHASE_APPROVED", email=email))
    wait_done(d, "event_id = ?", a)
    assert d.stop() == 0, d.stderr()[-2000:]
    # a job left ready by a previous run (as after a crash between commit and call) runs at start
    db = sqlite3.connect(d.db)
    db.execute("UPDATE jobs SET state = 'ready' WHERE event_id = ? AND action_index = 1", (a,))
    db.commit()
    db.close()
    d.start()
    assert seg_ids(d) == ids
    wait_done(d, "event_id = ?", a)
    r = post(d, event("PURCHASE_REFUNDED", email=email))
    assert [j["idempotency_key"] for j in jobs(d, "event_id = ?", r)] == ["%d:%d:%d" % (r, ids["refunds"], i)
                                                                         for i in (0, 1)]
    wait_done(d, "event_id = ?", r)
    assert memberships(d, email) == {"list:buyers", "tag:refunded"}


def test_segmentations_the_providers_cannot_run_need_review():
    ghost = seg("ghost", "purchase_approved", [("tag_add", {"tag": "x"})], integration="ghost")
    orphan = seg("orphan remove", "purchase_refunded", [("list_remove", {"list": "vip"})])
    unknown = seg("unknown action", "purchase_approved", [("fly_to_moon", {"tag": "x"})])
    d = Daemon()
    DAEMONS.append(d)
    text = config(d, [BUYERS, ghost, orphan, unknown])
    # a second acme integration whose provider plugin does not exist
    text = text.replace('"integrations"] = {', '"integrations"] = {\n      { id = "ghost", provider = "nosuch" },', 1)
    assert "nosuch" in text
    write_config(d, text)
    d.start()
    rows = {n: (st, [(r["code"], r["field"]) for r in json.loads(rs)]) for n, st, rs in
            d.query("SELECT name, status, reasons FROM segmentations WHERE account = 'acme'")}
    assert rows["buyers"] == ("ok", []), rows
    assert rows["ghost"] == ("needs_review", [("provider_not_loaded", "integration")]), rows
    assert rows["orphan remove"] == ("needs_review", [("missing_prerequisite", "actions[1].params.list")]), rows
    assert rows["unknown action"] == ("needs_review", [("unknown_action", "actions[1].action")]), rows
    email = new_email("review")
    a = post(d, event("PURCHASE_APPROVED", email=email))
    r = post(d, event("PURCHASE_REFUNDED", email=email))
    assert [j["action"] for j in jobs(d, "event_id = ?", a)] == ["list_add", "tag_add"]
    assert jobs(d, "event_id = ?", r) == []
    wait_done(d, "event_id = ?", a)


def test_daemon_is_still_healthy():
    for d in DAEMONS:
        if d.proc.poll() is None:
            assert d.get("/healthz").status == 200
    assert D.proc.poll() is None, D.stderr()[-3000:]


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


def test_zz_daemons_stop_cleanly_without_sanitizer_reports():
    """Last: stops every daemon with SIGTERM (so a sanitizer build runs its leak check) and reads the logs."""
    problems = []
    for d in DAEMONS:
        if d.proc is not None and d.proc.poll() is None:
            rc = d.stop()
            if rc != 0:
                problems.append("%s: exit status %s" % (d.dir, rc))
        log = d.stderr() if os.path.exists(d.log_path) else ""
        for mark in SANITIZER_MARKS:
            if mark in log:
                i = log.index(mark)
                problems.append("%s: %s" % (d.dir, log[max(0, i - 200):i + 3000]))
                break
    assert not problems, "\n".join(problems)


run(globals(), teardown=teardown)
