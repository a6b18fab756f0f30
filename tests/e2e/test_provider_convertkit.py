"""The Kit (ConvertKit) plugin against the fake Kit v4 server, through lbplug.

Each test drives one plugin call with the command-line host (env LBPLUG) and
then checks the fake's own state (/_fake/state) and the requests it saw
(/_fake/requests), not only lbplug's answer. The contract is
spec/providers/convertkit.md.
"""
import json
import os
import subprocess
import sys

from lbtest import run

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("LB_SRCDIR", os.path.join(HERE, "..", ".."))
FAKES = os.path.join(SRCDIR, "tests", "fakes")
LBPLUG = os.environ.get("LBPLUG", os.path.join(SRCDIR, "build", "lbplug-dev"))
PLUGIN_DIR = os.environ.get("LB_PLUGIN_DIR", os.path.join(SRCDIR, "build", "plugins-dev"))

sys.path.insert(0, FAKES)
import fakeproc  # noqa: E402
from fake_convertkit import VALID_KEY  # noqa: E402

EMAIL = "ana@example.com"


def plugin_path():
    return fakeproc.plugin_path("convertkit")


# --- the fake -----------------------------------------------------------------

SHARED = fakeproc.SharedFake("convertkit", "/v4")
FAKE = None


def fake():
    """The file's fake, reset; also kept in FAKE for the helpers below."""
    global FAKE
    FAKE = SHARED.get()
    return FAKE


teardown = SHARED.stop


# --- lbplug ---------------------------------------------------------------------

def lbplug(*args, key=VALID_KEY, base=None, expect_rc=0):
    argv = [LBPLUG, plugin_path(), "--set", "api_key=" + key, "--set", "base_url=" + (base or FAKE.base)]
    p = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=120)
    assert p.returncode == expect_rc, "lbplug exit %d (want %d)\nstdout: %s\nstderr: %s" % (
        p.returncode, expect_rc, p.stdout, p.stderr)
    assert VALID_KEY not in p.stdout and VALID_KEY not in p.stderr, "the API key leaked into lbplug's output"
    return json.loads(p.stdout)


def submit(action, email=EMAIL, params=(), **opts):
    args = ["submit", action, "--email", email]
    for k, v in params:
        args += ["--param", "%s=%s" % (k, v)]
    for k, v in opts.items():
        args += ["--" + k.replace("_", "-"), v]
    return lbplug(*args)


def expect(answer, status, **fields):
    assert answer["status"] == status, answer
    for k, v in fields.items():
        assert answer.get(k) == v, "%s: %r != %r in %r" % (k, answer.get(k), v, answer)
    return answer


def subscriber(state, email=EMAIL):
    subs = [s for s in state["subscribers"] if s["email_address"] == email]
    assert len(subs) == 1, "want exactly one subscriber %s: %r" % (email, state["subscribers"])
    return subs[0]


def taggings(state, tag):
    return [t for t in state["taggings"] if t["tag"] == tag]


def fake_requests_none():
    return FAKE.requests() == []


def upsert(email=EMAIL):
    return expect(submit("contact_upsert", email), "ok")["provider_ref"]


def tag_id(state, name):
    return [t["id"] for t in state["tags"] if t["name"] == name][0]


# --- describe, verify, list -------------------------------------------------------

def test_describe_declares_actions_and_tag_remove_prerequisite():
    fake()
    d = lbplug("describe")
    text = json.dumps(d)
    assert "convertkit" in text and "Kit (ConvertKit)" in text, d
    actions = {a["name"]: a for a in d["actions"]}
    assert set(actions) == {"contact_upsert", "tag_add", "tag_remove", "list_add", "sequence_add"}, actions
    assert actions["tag_remove"]["requires_action"] == "tag_add", actions["tag_remove"]
    assert actions["tag_remove"]["requires_param"] == "tag", actions["tag_remove"]
    assert not actions["tag_add"].get("requires_action"), actions["tag_add"]
    # Kit's unsubscribe is global (spec §5.4), so there is no per-list remove.
    assert "list_remove" not in actions
    assert fake_requests_none()


def test_verify_accepts_the_valid_key():
    fake()
    expect(lbplug("verify"), "ok", http_status=200)
    assert FAKE.requests() == [("GET", "/v4/tags")]


def test_verify_with_a_bad_key_is_auth():
    fake()
    expect(lbplug("verify", key="not-the-key"), "auth", http_status=401)


def test_verify_unreachable_is_retry():
    fake()
    expect(lbplug("verify", base="http://127.0.0.1:9/v4"), "retry")


def test_list_forms_gives_the_seeded_forms():
    fake()
    r = expect(lbplug("list", "forms"), "ok")
    assert sorted((x["id"], x["name"]) for x in r["resources"]) == [("1001", "Lead magnet"), ("1002", "Webinar signup")], r


def test_list_sequences():
    fake()
    r = expect(lbplug("list", "sequences"), "ok")
    assert [(x["id"], x["name"]) for x in r["resources"]] == [("2001", "Onboarding")], r


def test_list_tags_offers_names_and_follows_pages():
    fake()
    FAKE.control("seed", {"tags": ["t1", "t2", "t3", "t4", "t5"], "page_cap": 2})
    r = expect(lbplug("list", "tags"), "ok")
    # tag_add/tag_remove take a tag *name*, so the pickable value is the name
    assert sorted((x["id"], x["name"]) for x in r["resources"]) == [("t%d" % i, "t%d" % i) for i in range(1, 6)], r
    assert FAKE.requests() == [("GET", "/v4/tags")] * 3


def test_list_unknown_kind_fails():
    fake()
    expect(lbplug("list", "lists"), "fail")
    assert fake_requests_none()


# --- contact_upsert ---------------------------------------------------------------

def test_upsert_creates_an_active_subscriber():
    fake()
    r = expect(submit("contact_upsert", first_name="Ana", last_name="Lima"), "ok", http_status=201)
    s = subscriber(FAKE.state())
    assert r["provider_ref"] == str(s["id"]) and s["first_name"] == "Ana" and s["state"] == "active", (r, s)
    seen = FAKE.control("requests")
    assert seen[0]["headers"].get("X-Kit-Api-Key") == VALID_KEY, seen[0]["headers"]
    assert json.loads(seen[0]["body"]) == {"email_address": EMAIL, "first_name": "Ana", "state": "active"}


def test_upsert_twice_is_idempotent():
    fake()
    first = expect(submit("contact_upsert", first_name="Ana"), "ok", http_status=201)
    again = expect(submit("contact_upsert", first_name="Ana"), "ok", http_status=200)
    assert first["provider_ref"] == again["provider_ref"]
    assert len(FAKE.state()["subscribers"]) == 1


def test_upsert_takes_the_first_word_of_the_full_name():
    fake()
    submit("contact_upsert", name="Maria Clara Souza")
    assert subscriber(FAKE.state())["first_name"] == "Maria"


def test_upsert_invalid_email_is_fail_with_kits_reason():
    fake()
    r = expect(submit("contact_upsert", "ana@localhost"), "fail", http_status=422)
    assert "Email address is invalid" in r["reason"], r
    assert FAKE.state()["subscribers"] == []


# --- tag_add --------------------------------------------------------------------------

def test_tag_add_creates_the_subscriber_the_tag_and_the_tagging():
    fake()
    r = expect(submit("tag_add", params=[("tag", "buyer")]), "ok", http_status=201)
    st = FAKE.state()
    sid = subscriber(st)["id"]
    assert r["provider_ref"] == str(sid)
    assert [t["name"] for t in st["tags"]] == ["buyer"]
    assert [t["subscriber_id"] for t in taggings(st, "buyer")] == [sid]
    tid = tag_id(st, "buyer")
    assert FAKE.requests() == [("POST", "/v4/subscribers"), ("POST", "/v4/tags"),
                               ("POST", "/v4/tags/%d/subscribers/%d" % (tid, sid))]


def test_tag_add_twice_makes_one_tag_and_one_tagging():
    fake()
    expect(submit("tag_add", params=[("tag", "buyer")]), "ok", http_status=201)
    expect(submit("tag_add", params=[("tag", "buyer")]), "ok", http_status=200)
    st = FAKE.state()
    assert len(st["tags"]) == 1 and len(taggings(st, "buyer")) == 1, st


def test_tag_add_with_contact_ref_skips_the_upsert():
    fake()
    ref = upsert()
    before = len(FAKE.requests())
    expect(submit("tag_add", params=[("tag", "vip")], contact_ref=ref), "ok", provider_ref=ref)
    assert [m for m, _ in FAKE.requests()[before:]] == ["POST", "POST"]
    assert FAKE.requests()[before][1] == "/v4/tags"
    assert len(taggings(FAKE.state(), "vip")) == 1


def test_tag_add_with_a_stale_contact_ref_upserts_again():
    fake()
    r = expect(submit("tag_add", params=[("tag", "vip")], contact_ref="999999"), "ok")
    st = FAKE.state()
    sid = subscriber(st)["id"]
    assert r["provider_ref"] == str(sid) and len(taggings(st, "vip")) == 1
    assert ("POST", "/v4/tags/%d/subscribers/999999" % tag_id(st, "vip")) in FAKE.requests()


def test_tag_add_with_a_contact_ref_that_is_no_id_is_as_without_one():
    # a stored contact_ref is an earlier answer's: ".." must not climb the
    # path, nor come back as the contact's id to be stored again
    fake()
    upsert()
    before = len(FAKE.requests())
    r = expect(submit("tag_add", params=[("tag", "vip")], contact_ref=".."), "ok")
    st = FAKE.state()
    sid = subscriber(st)["id"]
    assert r["provider_ref"] == str(sid), r
    paths = [path for _, path in FAKE.requests()[before:]]
    assert not any("/.." in path for path in paths), paths
    assert ("POST", "/v4/tags/%d/subscribers/%d" % (tag_id(st, "vip"), sid)) in FAKE.requests()[before:]
    assert len(taggings(st, "vip")) == 1


def test_tag_param_is_declared_required():
    # the host refuses the job from the declaration alone (LB_PARAM_REQUIRED)
    fake()
    p = subprocess.run([LBPLUG, plugin_path(), "--set", "api_key=" + VALID_KEY, "--set", "base_url=" + FAKE.base,
                        "submit", "tag_add", "--email", EMAIL], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "tag" in p.stderr, p
    assert fake_requests_none()


# --- tag_remove -------------------------------------------------------------------------

def test_tag_remove_untags_by_email_without_creating_anything():
    fake()
    expect(submit("tag_add", params=[("tag", "buyer")]), "ok")
    before = len(FAKE.requests())
    expect(submit("tag_remove", params=[("tag", "buyer")]), "ok", http_status=204)
    st = FAKE.state()
    assert taggings(st, "buyer") == [] and len(st["subscribers"]) == 1 and len(st["tags"]) == 1
    seen = FAKE.control("requests")[before:]
    # spec §3/§5.3: DELETE /tags/{id}/subscribers with a JSON body
    assert [(r["method"], r["path"]) for r in seen] == [
        ("GET", "/v4/tags"), ("DELETE", "/v4/tags/%d/subscribers" % tag_id(st, "buyer"))]
    assert json.loads(seen[1]["body"]) == {"email_address": EMAIL}


def test_tag_remove_with_contact_ref_goes_by_id():
    fake()
    ref = expect(submit("tag_add", params=[("tag", "buyer")]), "ok")["provider_ref"]
    before = len(FAKE.requests())
    expect(submit("tag_remove", params=[("tag", "buyer")], contact_ref=ref), "ok")
    st = FAKE.state()
    assert taggings(st, "buyer") == []
    assert FAKE.requests()[before:][-1] == ("DELETE", "/v4/tags/%d/subscribers/%s" % (tag_id(st, "buyer"), ref))


def test_tag_remove_keeps_other_tags():
    fake()
    submit("tag_add", params=[("tag", "buyer")])
    submit("tag_add", params=[("tag", "student")])
    expect(submit("tag_remove", params=[("tag", "buyer")]), "ok")
    st = FAKE.state()
    assert taggings(st, "buyer") == [] and len(taggings(st, "student")) == 1


def test_tag_remove_finds_the_tag_on_a_later_page():
    fake()
    FAKE.control("seed", {"tags": ["a", "b", "c", "d"], "page_cap": 2})
    submit("tag_add", params=[("tag", "late")])
    expect(submit("tag_remove", params=[("tag", "late")]), "ok")
    assert taggings(FAKE.state(), "late") == []


def test_tag_remove_again_is_ok():
    fake()
    submit("tag_add", params=[("tag", "buyer")])
    expect(submit("tag_remove", params=[("tag", "buyer")]), "ok")
    expect(submit("tag_remove", params=[("tag", "buyer")]), "ok")
    assert taggings(FAKE.state(), "buyer") == []


def test_tag_remove_of_an_unknown_tag_fails_clearly_and_creates_nothing():
    fake()
    upsert()
    r = expect(submit("tag_remove", params=[("tag", "ghost")]), "fail")
    assert "ghost" in r["reason"] and "does not exist" in r["reason"], r
    assert FAKE.state()["tags"] == []


# --- list_add (forms) ---------------------------------------------------------------------

def test_list_add_puts_the_subscriber_on_the_form():
    fake()
    r = expect(submit("list_add", params=[("form", "1001")]), "ok", http_status=201)
    st = FAKE.state()
    sid = subscriber(st)["id"]
    assert r["provider_ref"] == str(sid)
    assert [(f["form_id"], f["subscriber_id"]) for f in st["form_subscriptions"]] == [(1001, sid)]


def test_list_add_twice_is_ok_and_single():
    fake()
    expect(submit("list_add", params=[("form", "1002")]), "ok", http_status=201)
    expect(submit("list_add", params=[("form", "1002")]), "ok", http_status=200)
    assert len(FAKE.state()["form_subscriptions"]) == 1


def test_list_add_to_an_unknown_form_fails_with_a_clear_reason():
    fake()
    r = expect(submit("list_add", params=[("form", "4242")]), "fail", http_status=404)
    assert "form" in r["reason"] and "4242" in r["reason"] and "not found" in r["reason"], r
    assert FAKE.state()["form_subscriptions"] == []


def test_list_add_with_a_non_numeric_form_fails_before_any_request():
    fake()
    r = expect(submit("list_add", params=[("form", "../tags")]), "fail")
    assert "form" in r["reason"], r
    assert fake_requests_none()


# --- sequence_add -----------------------------------------------------------------------

def test_sequence_add_subscribes_by_email():
    fake()
    expect(submit("sequence_add", params=[("sequence", "2001")]), "ok", http_status=201)
    st = FAKE.state()
    assert [q["sequence_id"] for q in st["sequence_subscriptions"]] == [2001]
    assert FAKE.requests()[-1] == ("POST", "/v4/sequences/2001/subscribers")
    expect(submit("sequence_add", params=[("sequence", "2001")]), "ok", http_status=200)
    assert len(FAKE.state()["sequence_subscriptions"]) == 1


def test_sequence_add_to_an_unknown_sequence_fails():
    fake()
    r = expect(submit("sequence_add", params=[("sequence", "77")]), "fail", http_status=404)
    assert "sequence" in r["reason"] and "77" in r["reason"], r


# --- errors ----------------------------------------------------------------------------

def test_submit_with_a_bad_key_is_auth():
    fake()
    r = lbplug("submit", "tag_add", "--email", EMAIL, "--param", "tag=x", key="wrong-key")
    expect(r, "auth", http_status=401)
    assert FAKE.state()["subscribers"] == []


def test_rate_limit_is_retry_with_the_window_as_hint():
    fake()
    FAKE.control("ratelimit", {"limit": 1, "window_s": 60})
    upsert()
    r = expect(submit("contact_upsert", "bea@example.com"), "retry", http_status=429, rate_limited=1)
    # no rate headers are documented (spec §4): the hint is the 60 s rolling window
    assert r["retry_after_ms"] == 60000, r
    assert len(FAKE.state()["subscribers"]) == 1


def test_rate_limit_mid_chain_then_retry_completes_once():
    fake()
    FAKE.control("ratelimit", {"limit": 2, "window_s": 60})   # upsert and tag create pass
    expect(submit("tag_add", params=[("tag", "buyer")]), "retry", rate_limited=1)
    assert taggings(FAKE.state(), "buyer") == []
    FAKE.control("ratelimit", {"limit": 100, "window_s": 60})
    expect(submit("tag_add", params=[("tag", "buyer")], attempt="2"), "ok")
    st = FAKE.state()
    assert len(st["subscribers"]) == 1 and len(st["tags"]) == 1 and len(taggings(st, "buyer")) == 1


def test_server_error_is_retry():
    fake()
    FAKE.control("fault", {"status": 500, "body": {"errors": ["Internal Server Error"]}, "count": 1})
    r = expect(submit("contact_upsert"), "retry", http_status=500, rate_limited=0)
    assert "Internal Server Error" in r["reason"], r


def test_server_error_on_the_tagging_is_retry():
    fake()
    FAKE.control("fault", {"status": 503, "count": 1, "path_prefix": "/v4/tags/"})
    expect(submit("tag_add", params=[("tag", "buyer")]), "retry", http_status=503)
    assert taggings(FAKE.state(), "buyer") == []


def test_closed_connection_is_retry():
    fake()
    FAKE.control("fault", {"close": True, "count": 1})
    expect(submit("contact_upsert"), "retry")
    assert FAKE.state()["subscribers"] == []


def test_reason_never_holds_the_key():
    fake()
    for r in (lbplug("verify"), submit("tag_add", params=[("tag", "x")]), lbplug("verify", key="bad-key-123")):
        assert VALID_KEY not in json.dumps(r) and "bad-key-123" not in r["reason"], r


if __name__ == "__main__":
    if not os.access(LBPLUG, os.X_OK) and "LBPLUG" not in os.environ:
        print("1..0 # SKIP lbplug not built (%s)" % LBPLUG)
        sys.exit(0)
    run(globals(), teardown=teardown)
