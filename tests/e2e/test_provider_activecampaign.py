#!/usr/bin/env python3
"""The ActiveCampaign plugin end to end: lbplug drives the real plugin against
tests/fakes/fake_activecampaign.py, and every test checks the fake's state
(/_fake/state, /_fake/requests), not only the plugin's answer.

Environment: LBPLUG (the plugin host; default build/lbplug-dev), LB_PLUGIN_DIR
(folder holding activecampaign.so; default build/plugins-dev), LB_SRCDIR.
"""
import json
import os
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("LB_SRCDIR", os.path.normpath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRCDIR, "tests", "fakes"))

from lbtest import run  # noqa: E402
from fake_activecampaign import VALID_KEY  # noqa: E402
import fakeproc  # noqa: E402

LBPLUG = os.environ.get("LBPLUG", os.path.join(SRCDIR, "build", "lbplug-dev"))
BILLET_FIELD = "1"  # the fake's seeded "Billet URL" custom field


def plugin_path():
    return fakeproc.plugin_path("activecampaign")


# --- the fake ------------------------------------------------------------------

SHARED = fakeproc.SharedFake("activecampaign")
teardown = SHARED.stop


def fake():
    return SHARED.get(reset=False)


def fresh():
    """Forget all state, faults and rate limits; return the fake."""
    f = fake()
    f.control("reset", {})
    return f


def state():
    return fake().control("state")


def requests_seen():
    return fake().control("requests")


def fault(**spec):
    fake().control("fault", spec)


# --- lbplug ------------------------------------------------------------------------

def lbplug(*args, api_key=VALID_KEY, billet_field=BILLET_FIELD, api_url=None, expect_rc=0):
    settings = ["--set", "api_url=" + (api_url or fake().root), "--set", "api_key=" + api_key]
    if billet_field is not None:
        settings += ["--set", "billet_field_id=" + billet_field]
    argv = [LBPLUG, plugin_path()] + settings + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert p.returncode == expect_rc, "lbplug exited %d (want %d)\nstdout: %s\nstderr: %s" % (
        p.returncode, expect_rc, p.stdout, p.stderr)
    assert api_key not in p.stdout + p.stderr or len(api_key) < 4, "the API key leaked into lbplug's output"
    return json.loads(p.stdout) if p.stdout.strip() else None


def submit(action, email="buyer@example.com", params=None, **opts):
    args = ["submit", action, "--email", email]
    for k, v in (params or {}).items():
        args += ["--param", "%s=%s" % (k, v)]
    for opt in ("name", "first_name", "last_name", "phone", "contact_ref", "billet_url"):
        if opts.get(opt) is not None:
            args += ["--" + opt.replace("_", "-"), opts.pop(opt)]
    return lbplug(*args, **opts)


def api(method, path, body=None):
    """Calls the fake's ActiveCampaign API directly, to seed state."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(fake().root + "/api/3" + path, data=data, method=method,
                                 headers={"Api-Token": VALID_KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def seed_tags(names):
    return [api("POST", "/tags", {"tag": {"tag": n, "tagType": "contact", "description": ""}})["tag"]["id"]
            for n in names]


def contact(email):
    rows = [c for c in state()["contacts"] if c["email"] == email]
    assert len(rows) <= 1, "duplicate contacts for %s: %r" % (email, rows)
    return rows[0] if rows else None


def paths(method=None):
    return [r["path"] for r in requests_seen() if method is None or r["method"] == method]


def assert_status(res, status, http_status=None):
    assert res["status"] == status, "want %s, got %r" % (status, res)
    if http_status is not None:
        assert res["http_status"] == http_status, "want HTTP %s, got %r" % (http_status, res)


# --- describe, verify, list ---------------------------------------------------------

def test_describe():
    d = lbplug("describe")
    assert d["name"] == "activecampaign"
    assert d["can_send_billet"] is True
    assert d["default_limits"]["rate_per_s"] == 5  # spec §3: 5 requests/second per account
    actions = {a["name"]: a for a in d["actions"]}
    assert set(actions) == {"contact_upsert", "list_add", "list_remove", "tag_add", "tag_remove", "sequence_add"}
    assert [p["name"] for p in actions["list_add"]["params"]] == ["list"]
    assert [p["name"] for p in actions["tag_remove"]["params"]] == ["tag"]
    assert [p["name"] for p in actions["sequence_add"]["params"]] == ["automation"]
    assert all(a["requires_action"] is None for a in d["actions"])
    config = {c["key"]: c for c in d["config"]}
    assert config["api_url"]["required"] and not config["api_url"]["secret"]
    assert config["api_key"]["required"] and config["api_key"]["secret"]
    assert "billet_field_id" in config


def test_verify_ok():
    fresh()
    res = lbplug("verify")
    assert_status(res, "ok", 200)
    reqs = requests_seen()
    assert len(reqs) == 1 and reqs[0]["method"] == "GET" and reqs[0]["path"] == "/api/3/contacts"
    assert reqs[0]["headers"].get("Api-Token") == VALID_KEY


def test_verify_bad_key_is_auth():
    fresh()
    assert_status(lbplug("verify", api_key="not-the-key-123"), "auth", 403)


def test_api_url_with_api_root_and_slash():
    fresh()
    assert_status(lbplug("verify", api_url=fake().root + "/api/3/"), "ok", 200)
    assert paths() == ["/api/3/contacts"]


def test_list_resources():
    fresh()
    lists = lbplug("list", "lists")
    assert_status(lists, "ok")
    assert [(r["id"], r["name"]) for r in lists["resources"]] == [("1", "Buyers"), ("2", "Leads")]
    tags = lbplug("list", "tags")
    assert [(r["id"], r["name"]) for r in tags["resources"]] == [("1", "customer")]
    autos = lbplug("list", "automations")
    assert [(r["id"], r["name"]) for r in autos["resources"]] == [("1", "Welcome")]
    assert_status(lbplug("list", "campaigns"), "fail")


# --- contact_upsert ------------------------------------------------------------------

def test_upsert_creates_contact():
    fresh()
    res = submit("contact_upsert", name="Maria da Silva", phone="+55 11 99999-0000")
    assert_status(res, "ok")
    c = contact("buyer@example.com")
    assert c and (c["firstName"], c["lastName"], c["phone"]) == ("Maria", "da Silva", "+55 11 99999-0000")
    assert res["provider_ref"] == c["id"]
    reqs = requests_seen()
    assert [(r["method"], r["path"]) for r in reqs] == [("POST", "/api/3/contact/sync")]
    body = json.loads(reqs[0]["body"])
    assert body["contact"]["email"] == "buyer@example.com"
    assert reqs[0]["headers"].get("Api-Token") == VALID_KEY
    assert "application/json" in reqs[0]["headers"].get("Content-Type", "")


def test_upsert_twice_is_idempotent():
    fresh()
    first = submit("contact_upsert", first_name="Ana")
    second = submit("contact_upsert", first_name="Ana", last_name="Lima")
    assert_status(first, "ok")
    assert_status(second, "ok")
    assert len(state()["contacts"]) == 1
    assert first["provider_ref"] == second["provider_ref"]
    assert contact("buyer@example.com")["lastName"] == "Lima"


def test_upsert_does_not_blank_unknown_fields():
    fresh()
    submit("contact_upsert", first_name="Ana", phone="123")
    submit("contact_upsert")
    c = contact("buyer@example.com")
    assert (c["firstName"], c["phone"]) == ("Ana", "123")


def test_billet_link_lands_in_configured_field():
    fresh()
    link = 'https://pay.example.com/boleto?id=1&x="q"'
    res = submit("contact_upsert", billet_url=link)
    assert_status(res, "ok")
    values = [v for v in state()["fieldValues"] if v["contact"] == res["provider_ref"]]
    assert [(v["field"], v["value"]) for v in values] == [(BILLET_FIELD, link)]


def test_billet_link_not_sent_without_field():
    fresh()
    assert_status(submit("contact_upsert", billet_url="https://pay.example.com/b", billet_field=None), "ok")
    assert state()["fieldValues"] == []
    assert "fieldValues" not in json.loads(requests_seen()[0]["body"])["contact"]


def test_upsert_invalid_email_is_fail():
    fresh()
    res = submit("contact_upsert", email="broken@nodot")
    assert_status(res, "fail", 422)
    assert "not valid" in res["reason"]
    assert state()["contacts"] == []


# --- lists ------------------------------------------------------------------------------

def test_list_add():
    fresh()
    res = submit("list_add", params={"list": "1"})
    assert_status(res, "ok")
    c = contact("buyer@example.com")
    assert res["provider_ref"] == c["id"]
    rows = state()["contactLists"]
    assert [(r["contact"], r["list"], r["status"]) for r in rows] == [(c["id"], "1", "1")]
    assert paths("POST") == ["/api/3/contact/sync", "/api/3/contactLists"]


def test_list_add_twice_is_idempotent():
    fresh()
    assert_status(submit("list_add", params={"list": "2"}), "ok")
    assert_status(submit("list_add", params={"list": "2"}), "ok")
    assert len(state()["contacts"]) == 1
    assert len(state()["contactLists"]) == 1


def test_list_remove_sets_status_2():
    fresh()
    ref = submit("list_add", params={"list": "1"})["provider_ref"]
    res = submit("list_remove", params={"list": "1"})
    assert_status(res, "ok")
    assert res["provider_ref"] == ref
    assert [(r["contact"], r["status"]) for r in state()["contactLists"]] == [(ref, "2")]
    assert "/api/3/contact/sync" not in paths()[2:]  # a removal looks up, never creates


def test_list_remove_unknown_contact_is_ok_and_creates_nothing():
    fresh()
    res = submit("list_remove", email="ghost@example.com", params={"list": "1"})
    assert_status(res, "ok")
    assert state()["contacts"] == [] and state()["contactLists"] == []


def test_list_add_unknown_list_fails_clearly():
    fresh()
    res = submit("list_add", params={"list": "999"})
    assert_status(res, "fail", 404)
    assert "list" in res["reason"] and "999" in res["reason"]
    assert state()["contactLists"] == []


def test_list_add_non_numeric_list_fails_without_requests():
    fresh()
    res = submit("list_add", params={"list": "Buyers"})
    assert_status(res, "fail")
    assert res["requests"] == 0 and requests_seen() == []


def test_list_add_with_a_leading_zero_list_id_fails_without_requests():
    # the id goes into the JSON body as a number, and 01 is no JSON number
    fresh()
    res = submit("list_add", params={"list": "01"})
    assert_status(res, "fail")
    assert res["requests"] == 0 and requests_seen() == []


def test_list_add_with_contact_ref_skips_sync():
    fresh()
    ref = submit("contact_upsert")["provider_ref"]
    fresh_requests = len(requests_seen())
    res = submit("list_add", params={"list": "1"}, contact_ref=ref)
    assert_status(res, "ok")
    assert res["requests"] == 1 and res["provider_ref"] == ref
    assert paths()[fresh_requests:] == ["/api/3/contactLists"]


def test_stale_contact_ref_is_resolved_again():
    fresh()
    res = submit("list_add", params={"list": "1"}, contact_ref="4242")
    assert_status(res, "ok")
    c = contact("buyer@example.com")
    assert res["provider_ref"] == c["id"] != "4242"
    assert [(r["contact"], r["list"]) for r in state()["contactLists"]] == [(c["id"], "1")]


# --- tags --------------------------------------------------------------------------------

def test_tag_add_creates_missing_tag_once():
    fresh()
    first = submit("tag_add", params={"tag": "VIP"})
    second = submit("tag_add", params={"tag": "vip"})  # names are case-insensitive (spec §2)
    assert_status(first, "ok")
    assert_status(second, "ok")
    s = state()
    vip = [t for t in s["tags"] if t["tag"].lower() == "vip"]
    assert len(vip) == 1 and vip[0]["tag"] == "VIP"
    assert [(r["contact"], r["tag"]) for r in s["contactTags"]] == [(first["provider_ref"], vip[0]["id"])]
    assert paths("POST").count("/api/3/tags") == 1
    assert paths("POST").count("/api/3/contactTags") == 1  # the second add saw the tag was there


def test_tag_add_existing_tag_does_not_create():
    fresh()
    res = submit("tag_add", params={"tag": "Customer"})
    assert_status(res, "ok")
    s = state()
    assert len(s["tags"]) == 1
    assert [(r["contact"], r["tag"]) for r in s["contactTags"]] == [(res["provider_ref"], "1")]
    assert "/api/3/tags" not in paths("POST")


def test_tag_add_search_is_exact_not_contains():
    fresh()
    submit("tag_add", params={"tag": "customer-gold"})  # "search" matches "customer" too (contains)
    names = sorted(t["tag"] for t in state()["tags"])
    assert names == ["customer", "customer-gold"]
    tag_id = next(t["id"] for t in state()["tags"] if t["tag"] == "customer-gold")
    assert [r["tag"] for r in state()["contactTags"]] == [tag_id]


def test_tag_lookup_pages_past_100():
    """spec §4 quirk 7: pages of at most 100. "search" is a contains match, so
    "promo" finds all 150 "promo-N" tags first and the exact one on page 2."""
    fresh()
    seed_tags(["promo-%d" % i for i in range(150)])
    (promo,) = seed_tags(["promo"])
    res = submit("tag_add", params={"tag": "promo"})
    assert_status(res, "ok")
    assert [r["tag"] for r in state()["contactTags"]] == [promo]
    assert "/api/3/tags" not in paths("POST")[151:]  # found it: no second "promo"
    tag_searches = [r for r in requests_seen() if r["method"] == "GET" and r["path"] == "/api/3/tags"]
    assert len(tag_searches) == 2 and "offset=100" in tag_searches[1]["query"]


def test_contact_tags_page_past_100():
    """The association we look for is on the second page of the contact's contactTags."""
    fresh()
    ref = api("POST", "/contact/sync", {"contact": {"email": "buyer@example.com"}})["contact"]["id"]
    ids = seed_tags(["t%d" % i for i in range(120)])
    for tag_id in ids:
        api("POST", "/contactTags", {"contactTag": {"contact": ref, "tag": tag_id}})
    seeded = len(requests_seen())
    res = submit("tag_add", params={"tag": "t110"}, contact_ref=ref)
    assert_status(res, "ok")
    assert "already" in res["reason"]
    assert "/api/3/contactTags" not in paths("POST")[seeded:]
    res = submit("tag_remove", params={"tag": "t115"}, contact_ref=ref)
    assert_status(res, "ok")
    assert ids[115] not in [r["tag"] for r in state()["contactTags"]]
    assert len(state()["contactTags"]) == 119


def test_list_resources_pages_past_100():
    fresh()
    seed_tags(["x%d" % i for i in range(130)])
    res = lbplug("list", "tags")
    assert_status(res, "ok")
    assert len(res["resources"]) == 131 and res["requests"] == 2


def test_tag_add_with_comma_fails():
    fresh()
    res = submit("tag_add", params={"tag": "a,b"})
    assert_status(res, "fail")
    assert "comma" in res["reason"] and requests_seen() == []


def test_tag_remove_deletes_association():
    fresh()
    added = submit("tag_add", params={"tag": "Lead"})
    assoc = state()["contactTags"][0]["id"]
    res = submit("tag_remove", params={"tag": "LEAD"})
    assert_status(res, "ok")
    assert res["provider_ref"] == added["provider_ref"]
    s = state()
    assert s["contactTags"] == []
    assert any(t["tag"] == "Lead" for t in s["tags"])  # the tag itself stays
    assert "/api/3/contactTags/" + assoc in paths("DELETE")
    again = submit("tag_remove", params={"tag": "Lead"})
    assert_status(again, "ok")
    assert paths("DELETE").count("/api/3/contactTags/" + assoc) == 1


def test_tag_remove_unknown_tag_or_contact_is_ok():
    fresh()
    assert_status(submit("tag_remove", email="ghost@example.com", params={"tag": "customer"}), "ok")
    submit("contact_upsert")
    assert_status(submit("tag_remove", params={"tag": "never-made"}), "ok")
    s = state()
    assert [c["email"] for c in s["contacts"]] == ["buyer@example.com"]
    assert len(s["tags"]) == 1 and s["contactTags"] == []


def test_tag_remove_keeps_other_tags():
    fresh()
    submit("tag_add", params={"tag": "a"})
    submit("tag_add", params={"tag": "b"})
    submit("tag_remove", params={"tag": "a"})
    s = state()
    b_id = next(t["id"] for t in s["tags"] if t["tag"] == "b")
    assert [r["tag"] for r in s["contactTags"]] == [b_id]


# --- automations --------------------------------------------------------------------------

def test_sequence_add():
    fresh()
    res = submit("sequence_add", params={"automation": "1"})
    assert_status(res, "ok", 201)
    c = contact("buyer@example.com")
    assert [(r["contact"], r["automation"]) for r in state()["contactAutomations"]] == [(c["id"], "1")]


def test_sequence_add_twice_is_ok_on_duplicate():
    fresh()
    submit("sequence_add", params={"automation": "1"})
    res = submit("sequence_add", params={"automation": "1"})
    assert_status(res, "ok", 422)  # spec §3: 422 "duplicate" means already done
    assert len(state()["contactAutomations"]) == 1


def test_sequence_add_unknown_automation_fails():
    fresh()
    res = submit("sequence_add", params={"automation": "77"})
    assert_status(res, "fail", 404)
    assert "automation" in res["reason"] and "77" in res["reason"]
    assert state()["contactAutomations"] == []


# --- errors, limits, faults ----------------------------------------------------------------

def test_bad_key_on_submit_is_auth():
    fresh()
    res = submit("tag_add", params={"tag": "VIP"}, api_key="wrong-key-0000")
    assert_status(res, "auth", 403)
    assert res["requests"] == 1
    assert state()["contacts"] == []


def test_rate_limit_429_is_retry_with_retry_after():
    """The fake's own rate limiter (5 req/s in production; 1 per 30 s here)
    answers 429 + Retry-After through its rate_limited hook."""
    f = fresh()
    f.control("ratelimit", {"limit": 1, "window_s": 30})
    res = submit("tag_add", params={"tag": "VIP"})  # sync passes, the tag search is limited
    f.control("ratelimit", None, method="POST")  # off again
    assert_status(res, "retry", 429)
    assert res["rate_limited"]
    assert 25000 <= res["retry_after_ms"] <= 30000, res
    s = state()
    assert len(s["contacts"]) == 1 and s["contactTags"] == [] and len(s["tags"]) == 1


def test_429_retry_after_value_is_honoured():
    fresh()
    fault(status=429, count=1, headers={"Retry-After": "7"}, body={"message": "Too Many Requests"})
    res = submit("contact_upsert")
    assert_status(res, "retry", 429)
    assert res["rate_limited"] and res["retry_after_ms"] == 7000
    assert state()["contacts"] == []
    assert_status(submit("contact_upsert"), "ok")  # the limit has passed: it goes through


def test_5xx_is_retry():
    fresh()
    for code in (500, 502, 503):
        fault(status=code, count=1, path_prefix="/api/3/contactLists")
        res = submit("list_add", params={"list": "1"})
        assert_status(res, "retry", code)
        assert not res["rate_limited"]
    assert state()["contactLists"] == []
    assert_status(submit("list_add", params={"list": "1"}), "ok")
    assert len(state()["contactLists"]) == 1


def test_closed_connection_is_retry():
    fresh()
    fault(close=True, count=1)
    res = submit("contact_upsert")
    assert_status(res, "retry", 0)
    assert not res["rate_limited"]


def test_400_is_fail():
    fresh()
    fault(status=400, count=1, body={})
    assert_status(submit("contact_upsert"), "fail", 400)


if __name__ == "__main__":
    run(globals(), teardown)
