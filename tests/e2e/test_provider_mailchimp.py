"""The Mailchimp plugin against the fake Mailchimp Marketing API v3, through lbplug.

Each test drives one plugin call with the command-line host (env LBPLUG) and
then checks the fake's own state (/_fake/state) and the requests it saw
(/_fake/requests), not only lbplug's answer. The contract is
spec/providers/mailchimp.md ("spec §N").
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from lbtest import run

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("LB_SRCDIR", os.path.join(HERE, "..", ".."))
FAKES = os.path.join(SRCDIR, "tests", "fakes")
LBPLUG = os.environ.get("LBPLUG", os.path.join(SRCDIR, "build", "lbplug-dev"))
PLUGIN_DIR = os.environ.get("LB_PLUGIN_DIR", os.path.join(SRCDIR, "build", "plugins-dev"))

sys.path.insert(0, FAKES)
import fakeproc  # noqa: E402
from fake_mailchimp import (BUYERS, JOURNEY, JOURNEY_STEP, KEY, NEWSLETTER, WORKFLOW,  # noqa: E402
                            WORKFLOW_EMAIL)

EMAIL = "ana@example.com"


def md5(email):
    return hashlib.md5(email.lower().encode()).hexdigest()


def plugin_path():
    return fakeproc.plugin_path("mailchimp")


# --- the fake -----------------------------------------------------------------

SHARED = fakeproc.SharedFake("mailchimp", "/3.0")
FAKE = None


def fake():
    """The file's fake, reset; also kept in FAKE for the helpers below."""
    global FAKE
    FAKE = SHARED.get()
    return FAKE


teardown = SHARED.stop


# --- lbplug ---------------------------------------------------------------------

def lbplug(*args, key=KEY, base=None, sets=(), expect_rc=0):
    """base="" leaves base_url unset (the default URL from the key's data center)."""
    argv = [LBPLUG, plugin_path(), "--set", "api_key=" + key]
    if base != "":
        argv += ["--set", "base_url=" + (base or FAKE.base)]
    for k, v in sets:
        argv += ["--set", "%s=%s" % (k, v)]
    p = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, LBPLUG_LOG_LEVEL="debug"))
    assert p.returncode == expect_rc, "lbplug exit %d (want %d)\nstdout: %s\nstderr: %s" % (
        p.returncode, expect_rc, p.stdout, p.stderr)
    for secret in (KEY, base64.b64encode(b"listboss:" + KEY.encode()).decode()):
        assert secret not in p.stdout and secret not in p.stderr, "the API key leaked into lbplug's output"
    return json.loads(p.stdout) if expect_rc == 0 else p


def submit(action, email=EMAIL, params=(), sets=(), key=KEY, **opts):
    args = ["submit", action, "--email", email]
    for k, v in params:
        args += ["--param", "%s=%s" % (k, v)]
    for k, v in opts.items():
        args += ["--" + k.replace("_", "-"), v]
    return lbplug(*args, sets=sets, key=key)


def expect(answer, status, **fields):
    assert answer["status"] == status, answer
    for k, v in fields.items():
        assert answer.get(k) == v, "%s: %r != %r in %r" % (k, answer.get(k), v, answer)
    return answer


def member(email=EMAIL, lid=BUYERS):
    return FAKE.state()["lists"][lid]["members"].get(md5(email))


def member_path(email=EMAIL, lid=BUYERS, suffix=""):
    return "/3.0/lists/%s/members/%s%s" % (lid, md5(email), suffix)


def upsert(email=EMAIL, lid=BUYERS, **opts):
    return expect(submit("contact_upsert", email, params=[("list", lid)], **opts), "ok")


# --- describe, verify, list -------------------------------------------------------

def test_describe_lists_the_actions_with_their_params():
    fake()
    d = lbplug("describe")
    text = json.dumps(d)
    assert "mailchimp" in text and "Mailchimp" in text, d
    actions = {a["name"]: a for a in d["actions"]}
    assert set(actions) == {"contact_upsert", "list_add", "list_remove", "list_unsubscribe", "tag_add",
                            "tag_remove", "sequence_add", "sequence_remove"}, sorted(actions)

    def params(name):
        return {p["name"]: p for p in actions[name]["params"]}

    assert set(params("list_add")) == {"list"} and "lists" in json.dumps(params("list_add")["list"])
    assert set(params("tag_add")) == {"tag", "list"} and "tags" in json.dumps(params("tag_add")["tag"])
    assert set(params("sequence_add")) == {"journey", "step", "workflow", "workflow_email"}
    assert not any(a.get("requires_action") for a in actions.values()), actions
    assert "api_key" in text and "base_url" in text and "double_opt_in" in text
    assert d["default_limits"]["concurrency"] == 10, d  # spec §3: 10 simultaneous connections
    assert FAKE.requests() == []


def test_verify_accepts_the_key_with_basic_auth():
    fake()
    expect(lbplug("verify"), "ok", http_status=200)
    seen = FAKE.seen()
    assert [(r["method"], r["path"]) for r in seen] == [("GET", "/3.0/ping")], seen
    auth = seen[0]["headers"].get("Authorization", "")
    # spec §1: Basic, any user name, the key as password
    assert auth.startswith("Basic ") and base64.b64decode(auth[6:]).decode().endswith(":" + KEY), auth


def test_verify_with_a_bad_key_is_auth():
    fake()
    r = expect(lbplug("verify", key="wrongkey-us21"), "auth", http_status=401)
    assert "API Key Invalid" in r["reason"], r


def test_verify_unreachable_is_retry():
    fake()
    expect(lbplug("verify", base="http://127.0.0.1:9/3.0"), "retry")


def test_list_audiences_follows_pages():
    fake()
    FAKE.control("seed", {"lists": [{"id": "aaaa%06d" % i, "name": "Extra %d" % i} for i in range(3)],
                          "page_cap": 2})
    r = expect(lbplug("list", "lists"), "ok")
    got = sorted((x["id"], x["name"]) for x in r["resources"])
    assert (BUYERS, "Buyers") in got and (NEWSLETTER, "Newsletter") in got and len(got) == 5, got
    assert FAKE.requests() == [("GET", "/3.0/lists")] * 3


def test_list_tags_of_the_default_audience():
    fake()
    upsert()
    expect(submit("tag_add", params=[("tag", "vip"), ("list", BUYERS)]), "ok")
    r = expect(lbplug("list", "tags", sets=[("list_id", BUYERS)]), "ok")
    # tag_add takes a tag *name* (spec §2), so the pickable value is the name
    assert sorted((x["id"], x["name"]) for x in r["resources"]) == [("seeded-tag", "seeded-tag"), ("vip", "vip")], r
    assert FAKE.requests()[-1] == ("GET", "/3.0/lists/%s/tag-search" % BUYERS)


def test_list_tags_without_an_audience_fails_without_a_request():
    fake()
    r = expect(lbplug("list", "tags"), "fail")
    assert "list_id" in r["reason"], r
    assert FAKE.requests() == []


def test_list_unknown_kind_fails():
    fake()
    expect(lbplug("list", "sequences"), "fail")
    assert FAKE.requests() == []


# --- contact_upsert / list_add ------------------------------------------------------

def test_upsert_puts_the_member_with_merge_fields():
    fake()
    r = upsert(first_name="Ana", last_name="Souza", phone="+5511999990000")
    m = member()
    assert r["provider_ref"] == md5(EMAIL) == m["id"], (r, m)
    assert m["status"] == "subscribed", m
    assert m["merge_fields"] == {"FNAME": "Ana", "LNAME": "Souza", "PHONE": "+5511999990000"}, m
    seen = FAKE.seen()
    assert [(x["method"], x["path"]) for x in seen] == [("PUT", member_path())], seen
    assert "skip_merge_validation=true" in seen[0]["query"], seen[0]
    body = json.loads(seen[0]["body"])
    # spec §4.2: status_if_new only; PUT has no tags field
    assert body["status_if_new"] == "subscribed" and "status" not in body and "tags" not in body, body


def test_upsert_twice_is_idempotent():
    fake()
    a = upsert(name="Ana Souza")
    b = upsert(name="Ana Souza")
    assert a["provider_ref"] == b["provider_ref"]
    members = [m for m in FAKE.state()["lists"][BUYERS]["members"].values() if m["email_address"] == EMAIL]
    assert len(members) == 1, members
    assert FAKE.requests() == [("PUT", member_path())] * 2


def test_upsert_splits_a_full_name():
    fake()
    upsert(name="Ana Maria Souza")
    assert member()["merge_fields"] == {"FNAME": "Ana", "LNAME": "Maria Souza"}, member()


def test_upsert_uses_the_list_id_setting_by_default():
    fake()
    expect(submit("contact_upsert", sets=[("list_id", NEWSLETTER)]), "ok")
    assert member(lid=NEWSLETTER)["status"] == "subscribed"


def test_upsert_without_an_audience_fails_without_a_request():
    fake()
    r = expect(submit("contact_upsert"), "fail")
    assert "list" in r["reason"], r
    assert FAKE.requests() == []


def test_a_dot_dot_audience_fails_without_a_request():
    # url_encode keeps dots: /lists/../members/... would be another resource
    fake()
    r = expect(submit("list_add", params=[("list", "..")]), "fail")
    assert "audience" in r["reason"], r
    assert FAKE.requests() == []


def test_double_opt_in_makes_new_members_pending():
    fake()
    r = expect(submit("list_add", params=[("list", BUYERS)], sets=[("double_opt_in", "true")]), "ok")
    assert member()["status"] == "pending", member()
    assert "pending" in r["reason"], r


def test_list_add_skips_required_merge_field_validation():
    fake()
    # Newsletter requires FNAME (spec §4.3); the buyer data may not have it
    expect(submit("list_add", params=[("list", NEWSLETTER)]), "ok", http_status=200)
    assert member(lid=NEWSLETTER)["status"] == "subscribed"


def test_list_add_on_an_unknown_list_fails_with_a_clear_reason():
    fake()
    r = expect(submit("list_add", params=[("list", "nosuchlist")]), "fail", http_status=404)
    assert "nosuchlist" in r["reason"] and "not found" in r["reason"], r
    assert all(member(lid=lid) is None for lid in (BUYERS, NEWSLETTER))


def test_list_add_leaves_an_unsubscribed_member_alone():
    fake()
    email = "unsubscribed@example.com"
    r = expect(submit("list_add", email, params=[("list", BUYERS)]), "ok")
    # spec §4.2: no "status", so no Member In Compliance State; the choice stands
    assert member(email)["status"] == "unsubscribed" and "unsubscribed" in r["reason"], (r, member(email))


def test_list_add_of_a_forgotten_email_fails():
    fake()
    r = expect(submit("list_add", "forgotten@example.com", params=[("list", BUYERS)]), "fail", http_status=400)
    assert "Forgotten Email Not Subscribed" in r["reason"], r
    assert member("forgotten@example.com") is None


def test_list_add_brings_an_archived_member_back():
    fake()
    upsert()
    expect(submit("list_remove", params=[("list", BUYERS)]), "ok")
    expect(submit("list_add", params=[("list", BUYERS)]), "ok")
    assert member()["status"] == "subscribed"


def test_email_with_plus_and_upper_case_is_hashed_lower_case():
    fake()
    email = "Lead+Promo@Example.COM"
    r = expect(submit("list_add", email, params=[("list", BUYERS)]), "ok")
    h = hashlib.md5(b"lead+promo@example.com").hexdigest()
    assert r["provider_ref"] == h, r
    assert FAKE.requests() == [("PUT", "/3.0/lists/%s/members/%s" % (BUYERS, h))]
    assert FAKE.state()["lists"][BUYERS]["members"][h]["email_address"].lower() == "lead+promo@example.com"


# --- list_remove / list_unsubscribe ----------------------------------------------------

def test_list_remove_archives_the_member():
    fake()
    upsert()
    r = expect(submit("list_remove", params=[("list", BUYERS)]), "ok", http_status=204)
    assert r["provider_ref"] == md5(EMAIL)
    assert member()["status"] == "archived", member()  # spec §4.5: archive, not delete-permanent
    assert FAKE.requests()[-1] == ("DELETE", member_path())


def test_list_remove_of_a_non_member_is_ok():
    fake()
    expect(submit("list_remove", params=[("list", BUYERS)]), "ok")
    # 404 is ambiguous (spec §3): the plugin checks the audience exists
    assert FAKE.requests() == [("DELETE", member_path()), ("GET", "/3.0/lists/" + BUYERS)]
    assert member() is None


def test_list_remove_on_an_unknown_list_fails():
    fake()
    r = expect(submit("list_remove", params=[("list", "nosuchlist")]), "fail", http_status=404)
    assert "nosuchlist" in r["reason"], r


def test_list_unsubscribe_patches_the_status():
    fake()
    upsert()
    expect(submit("list_unsubscribe", params=[("list", BUYERS)]), "ok", http_status=200)
    assert member()["status"] == "unsubscribed", member()
    last = FAKE.seen()[-1]
    assert (last["method"], last["path"]) == ("PATCH", member_path()) and json.loads(last["body"]) == {
        "status": "unsubscribed"}, last


# --- tags ---------------------------------------------------------------------------

def test_tag_add_then_tag_remove():
    fake()
    upsert()
    expect(submit("tag_add", params=[("tag", "Comprou Curso X"), ("list", BUYERS)]), "ok", http_status=204)
    s = FAKE.state()["lists"][BUYERS]
    assert s["members"][md5(EMAIL)]["tags"] == ["Comprou Curso X"]
    assert "Comprou Curso X" in s["tags"]  # spec §4.4: created on first use
    body = json.loads(FAKE.seen()[-1]["body"])
    assert body == {"tags": [{"name": "Comprou Curso X", "status": "active"}], "is_syncing": False}, body
    expect(submit("tag_remove", params=[("tag", "Comprou Curso X"), ("list", BUYERS)]), "ok", http_status=204)
    assert member()["tags"] == []
    assert json.loads(FAKE.seen()[-1]["body"])["tags"][0]["status"] == "inactive"


def test_tag_add_twice_is_idempotent():
    fake()
    upsert()
    for _ in range(2):
        expect(submit("tag_add", params=[("tag", "vip"), ("list", BUYERS)]), "ok")
    assert member()["tags"] == ["vip"]


def test_tag_add_creates_a_missing_member_first():
    fake()
    expect(submit("tag_add", params=[("tag", "vip")], sets=[("list_id", BUYERS)], name="Ana Souza"), "ok")
    assert FAKE.requests() == [("POST", member_path(suffix="/tags")), ("PUT", member_path()),
                               ("POST", member_path(suffix="/tags"))]
    m = member()
    assert m["tags"] == ["vip"] and m["status"] == "subscribed" and m["merge_fields"]["FNAME"] == "Ana", m


def test_tag_add_on_an_unknown_list_fails():
    fake()
    r = expect(submit("tag_add", params=[("tag", "vip"), ("list", "nosuchlist")]), "fail", http_status=404)
    assert "nosuchlist" in r["reason"], r


def test_tag_remove_of_a_non_member_is_ok_and_creates_nothing():
    fake()
    expect(submit("tag_remove", params=[("tag", "vip"), ("list", BUYERS)]), "ok")
    assert member() is None


def test_tag_add_without_a_tag_is_refused_without_a_request():
    fake()
    # "tag" is declared required, so the host refuses the job before the plugin runs
    p = lbplug("submit", "tag_add", "--email", EMAIL, "--param", "list=" + BUYERS, expect_rc=2)
    assert "tag" in p.stderr, p.stderr
    assert FAKE.requests() == []


# --- sequences ------------------------------------------------------------------------

def test_sequence_add_triggers_a_journey_step():
    fake()
    upsert()
    expect(submit("sequence_add", params=[("journey", JOURNEY), ("step", JOURNEY_STEP)]), "ok", http_status=204)
    assert FAKE.state()["journey_triggers"] == [{"journey_id": JOURNEY, "step_id": JOURNEY_STEP,
                                                 "email_address": EMAIL}]


def test_sequence_add_queues_a_classic_automation_email():
    fake()
    upsert()
    expect(submit("sequence_add", params=[("workflow", WORKFLOW), ("workflow_email", WORKFLOW_EMAIL)]), "ok",
           http_status=200)
    q = FAKE.state()["automation_queue"]
    assert [(x["workflow_id"], x["email_id"], x["email_address"]) for x in q] == [
        (WORKFLOW, WORKFLOW_EMAIL, EMAIL)], q


def test_sequence_add_of_a_non_member_fails():
    fake()
    r = expect(submit("sequence_add", params=[("journey", JOURNEY), ("step", JOURNEY_STEP)]), "fail",
               http_status=400)
    assert FAKE.state()["journey_triggers"] == [], r


def test_sequence_add_of_an_unknown_journey_fails():
    fake()
    upsert()
    r = expect(submit("sequence_add", params=[("journey", "999"), ("step", JOURNEY_STEP)]), "fail",
               http_status=404)
    assert "not found" in r["reason"], r


def test_sequence_add_without_ids_fails_without_a_request():
    fake()
    r = expect(submit("sequence_add", params=[("journey", JOURNEY)]), "fail")
    assert "journey" in r["reason"], r
    assert FAKE.requests() == []


def test_sequence_remove_from_a_classic_automation():
    fake()
    upsert()
    expect(submit("sequence_add", params=[("workflow", WORKFLOW), ("workflow_email", WORKFLOW_EMAIL)]), "ok")
    expect(submit("sequence_remove", params=[("workflow", WORKFLOW)]), "ok", http_status=200)
    s = FAKE.state()
    assert s["automation_queue"] == [] and [x["email_address"] for x in s["automation_removed"]] == [EMAIL], s


# --- error contract ------------------------------------------------------------------------

def test_submit_with_a_bad_key_is_auth():
    fake()
    r = expect(submit("list_add", params=[("list", BUYERS)], key="wrongkey-us21"), "auth", http_status=401)
    assert "API Key Invalid" in r["reason"], r
    assert member() is None


def test_429_without_headers_is_a_rate_limited_retry():
    fake()
    FAKE.control("ratelimit", {"limit": 1, "window_s": 60})
    upsert()  # the window's one request: the next one gets the fake's 429
    r = expect(submit("list_add", "bia@example.com", params=[("list", BUYERS)]), "retry", http_status=429,
               rate_limited=True)
    # spec §3: no Retry-After is documented, so no hint is invented: the core backs off
    assert r["retry_after_ms"] == 0 and "Too Many Requests" in r["reason"], r
    assert member("bia@example.com") is None


def test_429_retry_after_is_honoured_when_sent():
    fake()
    FAKE.fault(status=429, headers={"Retry-After": "7"},
               body={"title": "Too Many Requests", "status": 429, "detail": "slow down"})
    r = expect(submit("list_add", params=[("list", BUYERS)]), "retry", http_status=429, rate_limited=True)
    assert r["retry_after_ms"] == 7000, r


def test_the_eleventh_simultaneous_connection_gets_429():
    fake()
    FAKE.fault(delay_ms=1500, count=10)
    answers = []

    def ping():
        req = urllib.request.Request(FAKE.base + "/ping", headers={
            "Authorization": "Basic " + base64.b64encode(b"u:" + KEY.encode()).decode()})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answers.append(resp.status)
        except urllib.error.HTTPError as e:
            answers.append((e.code, json.loads(e.read())["title"], e.headers.get("Retry-After")))

    threads = [threading.Thread(target=ping) for _ in range(11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(200) == 10 and (429, "Too Many Requests", None) in answers, answers
    # and the plugin reads that 429 as a rate limit
    FAKE.fault(delay_ms=3000, count=10)
    holders = [threading.Thread(target=ping) for _ in range(10)]
    for t in holders:
        t.start()
    time.sleep(0.5)
    r = expect(submit("list_add", params=[("list", BUYERS)]), "retry", http_status=429, rate_limited=True)
    for t in holders:
        t.join()
    assert member() is None, r


def test_5xx_is_retry():
    fake()
    FAKE.fault(status=503, body={"title": "Internal Server Error", "status": 503, "detail": "try later"})
    r = expect(submit("list_add", params=[("list", BUYERS)]), "retry", http_status=503, rate_limited=False)
    assert "Internal Server Error" in r["reason"], r


def test_closed_connection_is_retry():
    fake()
    FAKE.fault(close=True)
    expect(submit("list_add", params=[("list", BUYERS)]), "retry", rate_limited=False)


def test_slow_answer_past_the_timeout_is_retry():
    fake()
    FAKE.fault(delay_ms=3000)
    expect(submit("list_add", params=[("list", BUYERS)], sets=[("timeout_ms", "500")]), "retry")


def test_member_exists_is_ok():
    fake()
    FAKE.fault(status=400, body={"title": "Member Exists", "status": 400,
                                 "detail": EMAIL + " is already a list member. Use PUT to insert or update list members."})
    r = expect(submit("list_add", params=[("list", BUYERS)]), "ok", http_status=400)
    assert r["provider_ref"] == md5(EMAIL), r


def test_member_in_compliance_state_fails_with_the_reason():
    fake()
    FAKE.fault(status=400, body={"title": "Member In Compliance State", "status": 400,
                                 "detail": EMAIL + " is in a compliance state due to unsubscribe, bounce, or "
                                                   "compliance review and cannot be subscribed."})
    r = expect(submit("list_add", params=[("list", BUYERS)]), "fail", http_status=400)
    assert "Member In Compliance State" in r["reason"], r


def test_signup_throttling_for_one_email_is_retry():
    fake()
    FAKE.fault(status=400, body={"title": "Invalid Resource", "status": 400,
                                 "detail": EMAIL + " has signed up to a lot of lists very recently; "
                                                   "we're not allowing more signups for now"})
    expect(submit("list_add", params=[("list", BUYERS)]), "retry", http_status=400)


def test_invalid_resource_reason_names_the_field():
    fake()
    FAKE.fault(status=400, body={"title": "Invalid Resource", "status": 400, "detail": "Your merge fields were invalid.",
                                 "errors": [{"field": "FNAME", "message": "Please enter a value"}]})
    r = expect(submit("list_add", params=[("list", BUYERS)]), "fail", http_status=400)
    assert "FNAME" in r["reason"] and "Please enter a value" in r["reason"], r


def test_a_key_without_a_data_center_is_refused_at_load():
    fake()
    p = lbplug("verify", key="nodatacenter", base="", expect_rc=2)
    assert "data-center" in p.stderr or "data center" in p.stderr, p.stderr


def test_a_dot_dot_list_id_setting_is_refused_at_load():
    # the default audience goes into every member path, like the param
    fake()
    p = lbplug("verify", sets=[("list_id", "..")], expect_rc=2)
    assert "list_id" in p.stderr, p.stderr
    assert FAKE.requests() == []


if __name__ == "__main__":
    run(globals(), teardown)
