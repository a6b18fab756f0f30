"""Providers end to end: Hotmart webhook over HTTP -> jobs -> provider plugins -> fake provider servers.

Three stateful fakes (Mailchimp, ActiveCampaign, Kit) run for the whole file;
each test resets them and starts its own listbossd, whose integrations point
at the fakes. Every test checks the fake's own state (/_fake/state) and the
requests it saw (/_fake/requests), not only the store.
"""
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

from lbtest import LISTBOSSD, Daemon, TOKEN_B, fixture, run

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.environ.get("LB_FAKES", os.path.join(HERE, "..", "fakes"))
sys.path.insert(0, FAKES)
import fake_activecampaign  # noqa: E402
import fake_convertkit  # noqa: E402
import fake_mailchimp  # noqa: E402
from fakeproc import FakeProcess  # noqa: E402

MC_KEY = fake_mailchimp.KEY
MC_LIST = fake_mailchimp.BUYERS
AC_KEY = fake_activecampaign.VALID_KEY
AC_LIST = "1"  # seeded "Buyers"
KIT_KEY = fake_convertkit.VALID_KEY
KIT_FORM = str(fake_convertkit.SEED_FORMS[0]["id"])
PRODUCT = "4123456"
DEADLINE_S = 30


# --- fakes -------------------------------------------------------------------------

class FakeServer(FakeProcess):
    def requests(self):
        return self.seen()


FAKE = {}
DAEMONS = []


def fakes():
    """Start of every test: stops the previous tests' daemons (so none of them talks to the fakes any
    more) and resets the fakes' state, faults and request logs."""
    retire_daemons()
    if not FAKE:
        for name in ("mailchimp", "activecampaign", "convertkit"):
            FAKE[name] = FakeServer(name)
    for f in FAKE.values():
        f.reset()
    return FAKE["mailchimp"], FAKE["activecampaign"], FAKE["convertkit"]


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")
PROBLEMS = []


def retire_daemons():
    """Stops every running daemon with SIGTERM and notes a bad exit or a sanitizer report in its log."""
    for d in DAEMONS:
        if d.proc is None or getattr(d, "retired", False):
            continue
        d.retired = True
        try:
            rc = d.stop()
            if rc not in (0, -signal.SIGKILL):
                PROBLEMS.append("%s: exit status %s" % (d.dir, rc))
        except AssertionError as e:
            PROBLEMS.append("%s: %s" % (d.dir, e))
        log = d.stderr()
        for mark in SANITIZER_MARKS:
            if mark in log:
                i = log.index(mark)
                PROBLEMS.append("%s: %s" % (d.dir, log[max(0, i - 200):i + 3000]))
                break


def teardown():
    for d in DAEMONS:
        try:
            d.cleanup()
        except Exception:
            pass
    for f in FAKE.values():
        f.stop()


# --- config ------------------------------------------------------------------------------

def lua(v, indent=""):
    """Python value as Lua source: dicts become records, lists become sequences."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    inner = indent + "  "
    if isinstance(v, dict):
        items = ["%s[%s] = %s" % (inner, json.dumps(k), lua(x, inner)) for k, x in v.items()]
    else:
        items = [inner + lua(x, inner) for x in v]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}" if items else "{}"


def seg(name, trigger, integration, actions):
    return {"name": name, "product": PRODUCT, "trigger": trigger, "integration": integration,
            "actions": [{"action": a, "params": p} for a, p in actions]}


def integrations(mc_key="env:LB_TEST_MC_KEY", ac_key=AC_KEY, kit_key=KIT_KEY, drop=(), mc_root=None, limits=None):
    all_ = [
        {"id": "mc", "provider": "mailchimp",
         "settings": {"api_key": mc_key, "base_url": (mc_root or FAKE["mailchimp"].root) + "/3.0"}},
        {"id": "ac", "provider": "activecampaign",
         "settings": {"api_key": ac_key, "api_url": FAKE["activecampaign"].root}},
        {"id": "kit", "provider": "convertkit",
         "settings": {"api_key": kit_key, "base_url": FAKE["convertkit"].root + "/v4"}},
    ]
    return [dict(i, **(limits or {})) for i in all_ if i["id"] not in drop]


BUYER_SEGS = [
    seg("mc buyers", "purchase_approved", "mc", [("list_add", {"list": MC_LIST}),
                                                 ("tag_add", {"tag": "customer", "list": MC_LIST})]),
    seg("ac buyers", "purchase_approved", "ac", [("list_add", {"list": AC_LIST}), ("tag_add", {"tag": "customer"})]),
    seg("kit buyers", "purchase_approved", "kit", [("list_add", {"form": KIT_FORM}), ("tag_add", {"tag": "customer"})]),
]
REFUND_SEGS = [
    seg("mc refunds", "purchase_refunded", "mc", [("tag_remove", {"tag": "customer", "list": MC_LIST})]),
    seg("ac refunds", "purchase_refunded", "ac", [("tag_remove", {"tag": "customer"})]),
    seg("kit refunds", "purchase_refunded", "kit", [("tag_remove", {"tag": "customer"})]),
]


def config(d, segs, more_accounts=(), **integ):
    cfg = {
        "listen": "127.0.0.1:%d" % d.port,
        "database": d.db,
        "accounts": [
            {"id": "acme", "hottok": "env:LB_TEST_HOTTOK_A", "api_token": "env:LB_TEST_TOKEN_A",
             "integrations": integrations(**integ), "segmentations": list(segs)},
            {"id": "beta", "hottok": "file:%s/beta.hottok" % d.dir, "api_token": TOKEN_B},
        ] + list(more_accounts),
    }
    return "\n".join("%s = %s" % (k, lua(v)) for k, v in cfg.items()) + "\n"


def write_config(d, text):
    with open(d.config_path, "w") as f:
        f.write(text)


def start_daemon(segs, **integ):
    d = Daemon(env={"LB_TEST_MC_KEY": MC_KEY})
    DAEMONS.append(d)
    write_config(d, config(d, segs, **integ))
    return d.start()


def reload(d, text):
    before = d.stderr().count("configuration reloaded")
    write_config(d, text)
    d.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while d.stderr().count("configuration reloaded") == before:
        assert "reload failed" not in d.stderr(), d.stderr()[-3000:]
        assert time.time() < deadline, "no reload logged:\n" + d.stderr()[-3000:]
        time.sleep(0.02)


# --- events and store -------------------------------------------------------------------------

def new_email(tag="lead"):
    return "%s-%s@example.com" % (tag, uuid.uuid4().hex[:10])


def event(name, email):
    doc = json.loads(fixture(name))
    doc["id"] = str(uuid.uuid4())
    doc["data"]["buyer"]["email"] = email
    return json.dumps(doc).encode()


def post(d, body):
    r = d.post_hotmart(body)
    assert r.status == 200 and r.json()["duplicate"] is False, r
    return r.json()["event_id"]


JOB_COLS = ["id", "integration", "lead_email", "action", "params", "state", "attempts", "last_status", "last_reason"]


def jobs(d, where="1", *params):
    rows = d.query("SELECT %s FROM jobs WHERE %s ORDER BY id" % (", ".join(JOB_COLS), where), *params)
    return [dict(zip(JOB_COLS, r)) for r in rows]


def attempts(d, job_id):
    return d.query("SELECT at, http_status, outcome, reason FROM job_attempts WHERE job_id = ? ORDER BY rowid", job_id)


def wait_for(what, check, timeout=DEADLINE_S, interval=0.05, d=None):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if d is not None and d.proc.poll() is not None:
            raise AssertionError("listbossd exited while waiting for %s:\n%s" % (what, d.stderr()[-3000:]))
        if time.time() > deadline:
            raise AssertionError("timed out after %ss waiting for %s%s" % (
                timeout, what, ("\n" + d.stderr()[-3000:]) if d is not None else ""))
        time.sleep(interval)


def wait_states(d, where, *params, states=("done",), timeout=DEADLINE_S):
    def check():
        rows = jobs(d, where, *params)
        return rows if rows and all(j["state"] in states for j in rows) else None
    try:
        return wait_for("jobs %s" % (states,), check, timeout, d=d)
    except AssertionError as e:
        raise AssertionError("%s\njobs: %r" % (e, jobs(d, where, *params)))


# --- what the fakes hold ------------------------------------------------------------------------

def md5(email):
    return hashlib.md5(email.lower().encode()).hexdigest()


def mc_member(email, list_id=MC_LIST):
    return FAKE["mailchimp"].state()["lists"][list_id]["members"].get(md5(email))


def ac_contacts(email):
    return [c for c in FAKE["activecampaign"].state()["contacts"] if c["email"] == email.lower()]


def ac_in_list(email, list_id=AC_LIST):
    st = FAKE["activecampaign"].state()
    ids = {c["id"] for c in st["contacts"] if c["email"] == email.lower()}
    return [cl for cl in st["contactLists"] if cl["contact"] in ids and str(cl["list"]) == list_id
            and str(cl.get("status")) == "1"]


def ac_tags(email):
    st = FAKE["activecampaign"].state()
    ids = {c["id"] for c in st["contacts"] if c["email"] == email.lower()}
    names = {t["id"]: t["tag"] for t in st["tags"]}
    return sorted(names[ct["tag"]] for ct in st["contactTags"] if ct["contact"] in ids)


def kit_in_form(email, form=KIT_FORM):
    return [s for s in FAKE["convertkit"].state()["form_subscriptions"]
            if s["email"] == email.lower() and str(s["form_id"]) == form]


def kit_tags(email):
    return sorted(t["tag"] for t in FAKE["convertkit"].state()["taggings"] if t["email"] == email.lower())


def kit_subscribers(email):
    return [s for s in FAKE["convertkit"].state()["subscribers"] if s["email_address"] == email.lower()]


# --- tests ---------------------------------------------------------------------------------------------

def test_purchase_approved_reaches_every_provider():
    fakes()
    d = start_daemon(BUYER_SEGS)
    email = new_email("ana")
    eid = post(d, event("PURCHASE_APPROVED", email))
    rows = wait_states(d, "event_id = ?", eid)
    assert sorted((j["integration"], j["action"]) for j in rows) == sorted(
        (i, a) for i in ("mc", "ac", "kit") for a in ("list_add", "tag_add")), rows
    m = mc_member(email)
    assert m is not None and m["status"] == "subscribed" and m["tags"] == ["customer"], m
    assert m["merge_fields"].get("FNAME") == "Ana", m
    assert len(ac_contacts(email)) == 1 and len(ac_in_list(email)) == 1, FAKE["activecampaign"].state()
    assert ac_tags(email) == ["customer"], ac_tags(email)
    assert len(kit_subscribers(email)) == 1 and len(kit_in_form(email)) == 1, FAKE["convertkit"].state()
    assert kit_tags(email) == ["customer"]
    for j in rows:
        assert j["attempts"] == 1 and j["last_reason"] is not None, j
    ls = d.query("SELECT integration, memberships FROM lead_state WHERE lead_email = ?", email)
    assert {i: sorted(json.loads(m)) for i, m in ls} == {
        "mc": ["list:" + MC_LIST, "tag:customer"], "ac": ["list:" + AC_LIST, "tag:customer"],
        "kit": ["list:" + KIT_FORM, "tag:customer"]}, ls


def broken_state(d, integration):
    rows = d.query("SELECT broken, reason FROM integration_state WHERE account = 'acme' AND integration = ?",
                   integration)
    return rows[0] if rows else None


def test_bad_credentials_park_the_jobs_until_a_reload_fixes_them():
    fakes()
    d = start_daemon(BUYER_SEGS, mc_key="wrong-key-0000-us21", ac_key="ac-wrong-key-000000000",
                     kit_key="kit-wrong-key-0000000000")
    email = new_email("auth")
    eid = post(d, event("PURCHASE_APPROVED", email))
    for integ in ("mc", "ac", "kit"):
        wait_for("%s broken in integration_state" % integ,
                 lambda: (broken_state(d, integ) or (0,))[0] == 1, d=d)
    for integ in ("mc", "ac", "kit"):
        broken, reason = broken_state(d, integ)
        assert reason and ("401" in reason or "403" in reason or "refuse" in reason.lower()
                           or "auth" in reason.lower() or "key" in reason.lower()), (integ, reason)
        assert "wrong-key" not in reason, reason  # never the secret
    rows = jobs(d, "event_id = ?", eid)
    assert all(j["state"] == "ready" and j["attempts"] == 0 for j in rows), rows
    for j in rows:
        outcomes = {o for _, _, o, _ in attempts(d, j["id"])}
        assert outcomes <= {"auth"}, (j, outcomes)
    assert "integration broken" in d.stderr()
    assert mc_member(email) is None and ac_contacts(email) == [] and kit_subscribers(email) == []
    time.sleep(1.5)  # parked: still not dead-lettered
    assert all(j["state"] == "ready" for j in jobs(d, "event_id = ?", eid))

    reload(d, config(d, BUYER_SEGS))  # the right keys: env: for Mailchimp, literals for the others
    rows = wait_states(d, "event_id = ?", eid)
    assert all(j["attempts"] == 1 for j in rows), rows
    for integ in ("mc", "ac", "kit"):
        assert (broken_state(d, integ) or (0,))[0] == 0, (integ, broken_state(d, integ))
    m = mc_member(email)
    assert m is not None and m["tags"] == ["customer"], m
    assert len(ac_in_list(email)) == 1 and ac_tags(email) == ["customer"]
    assert len(kit_in_form(email)) == 1 and kit_tags(email) == ["customer"]


def test_429_retry_after_is_honoured():
    fakes()
    for f in FAKE.values():
        f.fault(status=429, count=1, headers={"Retry-After": "2"}, body={"message": "Too Many Requests"})
    d = start_daemon(BUYER_SEGS)
    emails = [new_email("slow") for _ in range(3)]
    eids = [post(d, event("PURCHASE_APPROVED", e)) for e in emails]
    rows = wait_states(d, "event_id IN (%s)" % ",".join(map(str, eids)))
    limited = {}
    for j in rows:
        att = attempts(d, j["id"])
        assert [o for _, _, o, _ in att][-1] == "ok", (j, att)
        if att[0][2] == "rate_limited":
            limited.setdefault(j["integration"], []).append((j, att))
    assert sorted(limited) == ["ac", "kit", "mc"], limited
    for integ, hits in limited.items():
        assert len(hits) == 1, hits
        j, att = hits[0]
        assert att[0][1] == 429, att
        assert [o for _, _, o, _ in att] == ["rate_limited", "ok"], att
        assert att[1][0] - att[0][0] >= 2000, "%s: next attempt %d ms after the 429" % (integ, att[1][0] - att[0][0])
        assert j["attempts"] == 1, j  # a rate limit does not count against the job
        # the whole integration paused: no other attempt of it finished inside the window
        t = att[0][0]
        others = d.query("SELECT a.job_id, a.at - ? FROM job_attempts a JOIN jobs j ON j.id = a.job_id"
                         " WHERE j.integration = ? AND a.at > ? + 500 AND a.at < ? + 2000", t, integ, t, t)
        assert others == [], (integ, others)
    for e in emails:
        assert mc_member(e)["tags"] == ["customer"] and len(ac_in_list(e)) == 1 and kit_tags(e) == ["customer"]


def test_429_without_retry_after_pauses_the_integration():
    """Mailchimp's 429 carries no header: the whole integration still pauses, for the backoff's base
    (1 s) the first time, so leads whose jobs come after it wait too."""
    mc, _, _ = fakes()
    mc.fault(status=429, count=1, body={"title": "Too Many Requests", "status": 429, "detail": "slow down"})
    d = start_daemon(BUYER_SEGS)
    emails = [new_email("calm") for _ in range(3)]
    eids = [post(d, event("PURCHASE_APPROVED", emails[0]))]
    limited = "SELECT a.at FROM job_attempts a JOIN jobs j ON j.id = a.job_id" \
              " WHERE j.integration = 'mc' AND a.outcome = 'rate_limited'"
    t = wait_for("the 429", lambda: d.query(limited), d=d)[0][0]
    eids += [post(d, event("PURCHASE_APPROVED", e)) for e in emails[1:]]
    rows = wait_states(d, "event_id IN (%s)" % ",".join(map(str, eids)))
    assert len(d.query(limited)) == 1
    for j in rows:
        if j["integration"] != "mc":
            continue
        att = attempts(d, j["id"])
        assert [o for _, _, o, _ in att][-1] == "ok", (j, att)
        if j["lead_email"] != emails[0]:
            # posted after the 429: not one call before the pause ended (1 ms of rounding between clocks)
            assert att[0][0] >= t + 999, "%s: first attempt %d ms after the 429" % (j, att[0][0] - t)
    assert mc_member(emails[0])["tags"] == ["customer"] and all(mc_member(e)["tags"] == ["customer"] for e in emails)


def deliveries(provider, reqs, emails, faulted=3):
    """[(lead, action)] for the requests that deliver a job's effect, in arrival order.

    The fakes were reset just before, so the first `faulted` requests are the ones that got the
    injected 5xx (in practice the first request of each lane: nothing else is in flight yet)."""
    out = []
    if provider == "mailchimp":
        hashes = {md5(e): e for e in emails}
        for r in reqs:
            parts = r["path"].split("/")
            if len(parts) < 6 or parts[4] != "members" or parts[5] not in hashes:
                continue
            lead = hashes[parts[5]]
            if r["method"] == "PUT" and len(parts) == 6:
                out.append((lead, "list_add"))
            elif r["method"] == "POST" and parts[-1] == "tags":
                status = json.loads(r["body"])["tags"][0]["status"]
                out.append((lead, "tag_add" if status == "active" else "tag_remove"))
    elif provider == "activecampaign":
        st = FAKE["activecampaign"].state()
        contacts = {c["id"]: c["email"] for c in st["contacts"]}
        assoc, created = {}, 0  # contactTag ids are handed out 1, 2, 3... by the POSTs that succeed
        for i, r in enumerate(reqs):
            if r["method"] == "POST" and r["path"] == "/api/3/contactLists":
                out.append((contacts.get(str(json.loads(r["body"])["contactList"]["contact"])), "list_add"))
            elif r["method"] == "POST" and r["path"] == "/api/3/contactTags":
                lead = contacts.get(str(json.loads(r["body"])["contactTag"]["contact"]))
                out.append((lead, "tag_add"))
                if i >= faulted:
                    created += 1
                    assoc[str(created)] = lead
            elif r["method"] == "DELETE" and r["path"].startswith("/api/3/contactTags/"):
                out.append((assoc.get(r["path"].rsplit("/", 1)[1]), "tag_remove"))
    else:
        subs = {str(x["id"]): x["email_address"] for x in FAKE["convertkit"].state()["subscribers"]}
        for r in reqs:
            parts = r["path"].split("/")
            if len(parts) != 6 or parts[4] != "subscribers" or parts[5] not in subs:
                continue
            if parts[2] == "forms" and r["method"] == "POST":
                out.append((subs[parts[5]], "list_add"))
            elif parts[2] == "tags":
                out.append((subs[parts[5]], "tag_add" if r["method"] == "POST" else "tag_remove"))
    return out


def test_5xx_storm_then_recovery_delivers_each_job_once_in_order():
    fakes()
    for f in FAKE.values():
        f.fault(status=503, count=3, body={"message": "Service Unavailable"})
    d = start_daemon(BUYER_SEGS + REFUND_SEGS)
    emails = [new_email("storm") for _ in range(3)]
    for e in emails:
        post(d, event("PURCHASE_APPROVED", e))
    for e in emails:  # queued while the approvals are still failing
        post(d, event("PURCHASE_REFUNDED", e))
    rows = wait_states(d, "1")
    assert len(rows) == 3 * 3 * 3, rows
    retries = {}
    for j in rows:
        att = attempts(d, j["id"])
        assert att[-1][2] == "ok" and all(o == "retry" and s == 503 for _, s, o, _ in att[:-1]), (j, att)
        assert j["attempts"] == len(att), (j, att)  # a 5xx counts as an attempt
        retries[j["id"]] = len(att) - 1
    by_integ = {i: sum(retries[j["id"]] for j in rows if j["integration"] == i) for i in ("mc", "ac", "kit")}
    assert by_integ == {"mc": 3, "ac": 3, "kit": 3}, by_integ  # every injected 503 reached a job
    integ_of = {"mailchimp": "mc", "activecampaign": "ac", "convertkit": "kit"}
    for name, f in FAKE.items():
        seen = deliveries(name, f.requests(), emails)
        for e in emails:
            actions = [a for lead, a in seen if lead == e]
            spans = []
            for a in ("list_add", "tag_add", "tag_remove"):
                idx = [i for i, x in enumerate(actions) if x == a]
                job = [j for j in rows if j["integration"] == integ_of[name] and j["lead_email"] == e
                       and j["action"] == a]
                assert len(job) == 1, (name, e, a, job)
                # delivered exactly once: one request per attempt that got as far as this request
                assert 1 <= len(idx) <= 1 + retries[job[0]["id"]], (name, e, a, actions, retries[job[0]["id"]])
                if name == "mailchimp":  # one request per job: the count is exact
                    assert len(idx) == 1 + retries[job[0]["id"]], (e, a, actions)
                spans.append((min(idx), max(idx)))
            for (_, hi1), (lo2, _) in zip(spans, spans[1:]):
                assert hi1 < lo2, "%s: %s's actions out of order: %r" % (name, e, actions)
    for e in emails:
        m = mc_member(e)
        assert m["status"] == "subscribed" and m["tags"] == [], m
        assert len(ac_contacts(e)) == 1 and len(ac_in_list(e)) == 1 and ac_tags(e) == [], e
        assert len(kit_subscribers(e)) == 1 and len(kit_in_form(e)) == 1 and kit_tags(e) == [], e


def test_unknown_list_is_dead_lettered_and_stays_dead():
    fakes()
    segs = [
        seg("mc bad", "purchase_approved", "mc", [("list_add", {"list": "0000000000"}),
                                                  ("list_add", {"list": MC_LIST})]),
        seg("ac bad", "purchase_approved", "ac", [("list_add", {"list": "999"}),
                                                  ("list_add", {"list": AC_LIST})]),
        seg("kit bad", "purchase_approved", "kit", [("list_add", {"form": "9999"}),
                                                    ("list_add", {"form": KIT_FORM})]),
    ]
    d = start_daemon(segs)
    email = new_email("dead")
    eid = post(d, event("PURCHASE_APPROVED", email))
    rows = wait_states(d, "event_id = ?", eid, states=("done", "dead"))
    dead = {j["integration"]: j for j in rows if j["state"] == "dead"}
    assert sorted(dead) == ["ac", "kit", "mc"], rows
    assert [j["state"] for j in rows] == ["dead", "done"] * 3, rows  # the lane goes on after a dead job
    for integ, bad in (("mc", "0000000000"), ("ac", "999"), ("kit", "9999")):
        j = dead[integ]
        assert j["attempts"] == 1 and j["last_status"] == 404, j
        reason = j["last_reason"]
        assert bad in reason and ("not found" in reason.lower() or "unknown" in reason.lower()), reason
        assert [o for _, _, o, _ in attempts(d, j["id"])] == ["fail"], attempts(d, j["id"])
    # the lane went on with the next job
    assert mc_member(email) is not None and len(ac_in_list(email)) == 1 and len(kit_in_form(email)) == 1
    seen = {n: len(f.requests()) for n, f in FAKE.items()}
    reload(d, config(d, segs))  # neither a reload ...
    time.sleep(1.5)  # (longer than any retry backoff would be)
    assert d.stop() == 0
    d.start()  # ... nor a restart brings a dead letter back
    time.sleep(1.5)
    after = {j["id"]: j for j in jobs(d, "event_id = ?", eid)}
    for integ, j in dead.items():
        assert after[j["id"]]["state"] == "dead" and after[j["id"]]["attempts"] == 1, after[j["id"]]
        assert len(attempts(d, j["id"])) == 1
    assert {n: len(f.requests()) for n, f in FAKE.items()} == seen

    # the command line lists them with their last error, and a replay (then
    # SIGHUP) runs one again: the list is still unknown, so it dies again
    listed = cli(d, "dead-letters", "acme")
    mc = [j for j in listed if j["id"] == dead["mc"]["id"]]
    assert mc and mc[0]["last_status"] == 404 and "0000000000" in mc[0]["last_reason"], listed
    assert cli(d, "replay", "acme", str(dead["mc"]["id"])) == {"replayed": 1}
    reload(d, config(d, segs))
    deadline = time.time() + DEADLINE_S
    while len(attempts(d, dead["mc"]["id"])) < 2:
        assert time.time() < deadline, attempts(d, dead["mc"]["id"])
        time.sleep(0.05)
    wait_states(d, "id = ?", dead["mc"]["id"], states=("dead",))


def cli(d, *args):
    r = subprocess.run([LISTBOSSD, "-c", d.config_path] + list(args), capture_output=True, text=True,
                       env=d.env, cwd=d.dir, timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return json.loads(r.stdout)


def with_calls_in_flight(slow, delay_ms, count, segs, tag, n, calls):
    """Makes each fake in `slow` answer its next `count` calls after `delay_ms`, starts a daemon with
    `segs`, posts `n` purchases (one buyer each) and waits until `calls()` says calls are out.
    Returns the daemon, the buyers and the event ids."""
    for f in slow:
        f.fault(delay_ms=delay_ms, count=count)
    d = start_daemon(segs)
    emails = [new_email(tag) for _ in range(n)]
    eids = [post(d, event("PURCHASE_APPROVED", e)) for e in emails]
    wait_for("calls in flight", calls, timeout=10, d=d)
    return d, emails, eids


def every_fake_called():
    return all(f.requests() for f in FAKE.values())


def three_mailchimp_calls():
    return len(FAKE["mailchimp"].requests()) >= 3


def test_kill_9_with_calls_in_flight_loses_no_job():
    fakes()
    d, emails, eids = with_calls_in_flight(FAKE.values(), 1500, 4, BUYER_SEGS, "crash", 5, every_fake_called)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.log.close()
    where = "event_id IN (%s)" % ",".join(map(str, eids))
    before = jobs(d, where)
    assert len(before) == 5 * 6, before
    # calls were in flight: the fake saw a request for a job the store still has as ready
    hashes = {r["path"].split("/")[5] for r in FAKE["mailchimp"].requests() if len(r["path"].split("/")) >= 6}
    in_flight = [j for j in before if j["integration"] == "mc" and j["action"] == "list_add"
                 and j["state"] == "ready" and md5(j["lead_email"]) in hashes]
    assert in_flight, (before, FAKE["mailchimp"].requests())
    d.start()
    rows = wait_states(d, where)
    assert all(j["state"] == "done" for j in rows)
    for e in emails:
        m = mc_member(e)
        assert m is not None and m["status"] == "subscribed" and m["tags"] == ["customer"], (e, m)
        assert len(ac_contacts(e)) == 1, ac_contacts(e)
        assert len(ac_in_list(e)) == 1 and ac_tags(e) == ["customer"], (e, ac_in_list(e), ac_tags(e))
        assert len(kit_subscribers(e)) == 1 and len(kit_in_form(e)) == 1 and kit_tags(e) == ["customer"], e
    ls = d.query("SELECT count(*) FROM lead_state WHERE lead_email IN (%s)" % ",".join("?" * len(emails)), *emails)
    assert ls == [(15,)], ls
    assert d.query("PRAGMA integrity_check") == [("ok",)]


def test_sighup_with_calls_in_flight_still_completes_every_job():
    fakes()
    d, emails, eids = with_calls_in_flight(FAKE.values(), 1000, 3, BUYER_SEGS, "hup", 3, every_fake_called)
    # a changed limit replaces every integration while its calls are out
    reload(d, config(d, BUYER_SEGS, limits={"concurrency": 8}))
    rows = wait_states(d, "event_id IN (%s)" % ",".join(map(str, eids)))
    assert len(rows) == 3 * 6
    for e in emails:
        assert mc_member(e)["tags"] == ["customer"], e
        assert len(ac_contacts(e)) == 1 and len(ac_in_list(e)) == 1 and ac_tags(e) == ["customer"], e
        assert len(kit_subscribers(e)) == 1 and len(kit_in_form(e)) == 1 and kit_tags(e) == ["customer"], e
    assert d.proc.poll() is None


def test_reload_that_leaves_an_integration_alone_sends_no_call_twice():
    """A reload that only adds an account keeps mc's running instance: its calls in flight finish where
    they are, none is aborted and sent again (a tag_add twice, a subscription twice)."""
    fakes()
    d, emails, eids = with_calls_in_flight([FAKE["mailchimp"]], 3000, 3, BUYER_SEGS[:1], "keep", 3,
                                           three_mailchimp_calls)
    gamma = {"id": "gamma", "hottok": "hottok-gamma-0123456789abcdef", "api_token": "api-token-gamma-0123456789"}
    t = int(time.time() * 1000)
    reload(d, config(d, BUYER_SEGS[:1], more_accounts=[gamma]))
    rows = wait_states(d, "event_id IN (%s)" % ",".join(map(str, eids)))
    assert len(rows) == 3 * 2, rows
    seen = deliveries("mailchimp", FAKE["mailchimp"].requests(), emails)
    for e in emails:
        assert [a for lead, a in seen if lead == e] == ["list_add", "tag_add"], (e, seen)
    for j in rows:
        att = attempts(d, j["id"])
        assert [o for _, _, o, _ in att] == ["ok"], (j, att)
        assert j["action"] != "list_add" or att[0][0] > t, (j, att, t)  # it was out when the SIGHUP came


def mc_password(req):
    cred = req["headers"].get("Authorization", "").partition(" ")[2]
    return base64.b64decode(cred).decode().partition(":")[2]


def test_reload_that_changes_a_setting_replaces_the_integration():
    """A changed base_url, and then a secret rotated in its file (the config text unchanged: the resolved
    value is what counts), each replace mc: its next calls go out with the new value."""
    fakes()
    other = FakeServer("mailchimp")
    try:
        d = Daemon()
        DAEMONS.append(d)
        key_file = os.path.join(d.dir, "mc.key")
        with open(key_file, "w") as f:
            f.write(MC_KEY + "\n")
        write_config(d, config(d, BUYER_SEGS[:1], mc_key="file:" + key_file))
        d.start()
        first = new_email("first")
        wait_states(d, "event_id = ?", post(d, event("PURCHASE_APPROVED", first)))
        text = config(d, BUYER_SEGS[:1], mc_key="file:" + key_file, mc_root=other.root)
        reload(d, text)
        moved = new_email("moved")
        wait_states(d, "event_id = ?", post(d, event("PURCHASE_APPROVED", moved)))
        assert other.state()["lists"][MC_LIST]["members"][md5(moved)]["tags"] == ["customer"]
        assert not [r for r in FAKE["mailchimp"].requests() if md5(moved) in r["path"]]
        with open(key_file, "w") as f:
            f.write("rotated-key-us21\n")
        reload(d, text)
        rotated = new_email("rotated")
        post(d, event("PURCHASE_APPROVED", rotated))
        sent = wait_for("a call for the lead after the rotation", lambda: [
            r for r in other.requests() if md5(rotated) in r["path"]], timeout=10, d=d)
        assert mc_password(sent[0]) == "rotated-key-us21", sent[0]["headers"]
    finally:
        retire_daemons()
        other.stop()


def test_sigterm_lets_calls_in_flight_finish_and_records_them():
    fakes()
    d, emails, eids = with_calls_in_flight([FAKE["mailchimp"]], 1500, 3, BUYER_SEGS[:1], "term", 3,
                                           three_mailchimp_calls)
    t = time.time()
    assert d.stop() == 0, d.stderr()[-3000:]
    assert time.time() - t < 10, "shutdown took %.1fs" % (time.time() - t)
    where = "event_id IN (%s)" % ",".join(map(str, eids))
    heads = [j for j in jobs(d, where) if j["action"] == "list_add"]
    assert all(j["state"] == "done" for j in heads), heads  # finished and recorded, not abandoned
    for j in heads:
        assert [o for _, _, o, _ in attempts(d, j["id"])] == ["ok"], attempts(d, j["id"])
    d.start()
    wait_states(d, where)
    puts = [r for r in FAKE["mailchimp"].requests() if r["method"] == "PUT"]
    assert len(puts) == 3, puts  # none repeated after the restart


def test_integration_removed_by_reload_parks_its_jobs():
    fakes()
    FAKE["convertkit"].fault(status=503, count=1, body={"errors": ["Service Unavailable"]})
    d = start_daemon(BUYER_SEGS)
    email = new_email("removed")
    eid = post(d, event("PURCHASE_APPROVED", email))
    wait_for("the Kit job failing once", lambda: any(
        a[2] == "retry" for j in jobs(d, "event_id = ? AND integration = 'kit'", eid) for a in attempts(d, j["id"])),
        timeout=10, d=d)
    # Kit leaves the configuration (and its segmentation with it) while its job waits for a retry
    text = config(d, BUYER_SEGS[:2], drop=("kit",))
    assert '"convertkit"' not in text, text
    t = int(time.time() * 1000)
    reload(d, text)
    wait_states(d, "event_id = ? AND integration != 'kit'", eid)
    seen = len(FAKE["convertkit"].requests())
    time.sleep(3)  # well past the retry's backoff (1-2 s)
    kit = jobs(d, "event_id = ? AND integration = 'kit'", eid)
    ran = d.query("SELECT job_id, at - ?, outcome FROM job_attempts WHERE job_id IN (%s) AND at > ?"
                  % ",".join(str(j["id"]) for j in kit), t, t)
    assert [j["state"] for j in kit] == ["ready", "ready"], (kit, "attempts after the reload (ms after it):", ran)
    assert len(FAKE["convertkit"].requests()) == seen, FAKE["convertkit"].requests()[seen:]
    assert kit_in_form(email) == []


def test_restart_with_fixed_credentials_clears_the_stored_broken_state():
    fakes()
    d = start_daemon(BUYER_SEGS[:1], mc_key="wrong-key-0000-us21")
    email = new_email("restart")
    eid = post(d, event("PURCHASE_APPROVED", email))
    wait_for("mc broken in integration_state", lambda: (broken_state(d, "mc") or (0,))[0] == 1, d=d)
    assert d.stop() == 0
    write_config(d, config(d, BUYER_SEGS[:1]))  # the right key, applied by a restart instead of SIGHUP
    d.start()
    wait_states(d, "event_id = ?", eid)
    assert mc_member(email)["tags"] == ["customer"]
    # the integration works again: the stored alert must not outlive the problem
    assert (broken_state(d, "mc") or (0,))[0] == 0, broken_state(d, "mc")


def test_default_limits_keep_activecampaign_within_its_request_rate():
    """ActiveCampaign allows 5 requests/s (the plugin's default rate 5, burst 5); a token bucket of
    rate 5 and burst 5 can send at most 10 requests in any one second, so the fake refuses the 11th."""
    fakes()
    FAKE["activecampaign"].control("ratelimit", {"limit": 10, "window_s": 1})
    d = start_daemon(BUYER_SEGS[1:2] + REFUND_SEGS[1:2])
    emails = [new_email("rate") for _ in range(3)]
    for e in emails:
        post(d, event("PURCHASE_APPROVED", e))
    for e in emails:
        post(d, event("PURCHASE_REFUNDED", e))
    rows = wait_states(d, "1")
    limited = d.query("SELECT job_id, at, reason FROM job_attempts WHERE outcome = 'rate_limited'")
    n = len(FAKE["activecampaign"].requests())
    assert limited == [], "%d of %d jobs were refused by the provider's rate limit (%d HTTP requests):\n%r" % (
        len(limited), len(rows), n, limited)


def test_zz_daemons_stopped_cleanly_without_sanitizer_reports():
    """Last: every daemon was stopped with SIGTERM (so a sanitizer build ran its leak check)."""
    retire_daemons()
    assert not PROBLEMS, "\n".join(PROBLEMS)


run(globals(), teardown=teardown)
