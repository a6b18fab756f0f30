"""Time-based triggers: progress thresholds once per lead and threshold, and
15/30 days without login once per lead and period, from the Club data the
server recorded (events posted to /v1/events)."""
import contextlib
import json
import sqlite3
import time
import uuid

from lbtest import DEFAULT_CONFIG, Daemon, run

DAY_MS = 24 * 3600 * 1000
CONFIG = "club_scan_interval = 1\n" + DEFAULT_CONFIG.replace(
    '''  {{ id = "acme", hottok = "env:LB_TEST_HOTTOK_A", api_token = "env:LB_TEST_TOKEN_A" }},''', '''  {{ id = "acme", hottok = "env:LB_TEST_HOTTOK_A", api_token = "env:LB_TEST_TOKEN_A",
     integrations = {{ {{ id = "local", provider = "sandbox" }} }},
     segmentations = {{
       {{ name = "half", product = "77", trigger = {{ id = "club_progress", params = {{ percent = 50 }} }},
          integration = "local", actions = {{ {{ action = "tag_add", params = {{ tag = "half" }} }} }} }},
       {{ name = "away15", product = "77", trigger = "club_inactive_15", integration = "local",
          actions = {{ {{ action = "tag_add", params = {{ tag = "away15" }} }} }} }},
       {{ name = "away30", product = "77", trigger = "club_inactive_30", integration = "local",
          actions = {{ {{ action = "tag_add", params = {{ tag = "away30" }} }} }} }},
     }} }},''')

D = Daemon(config=CONFIG).start()


def now_ms():
    return int(time.time() * 1000)


def post(etype, email, **club):
    doc = {"id": str(uuid.uuid4()), "type": etype, "occurred_at": now_ms(), "product": {"id": "77"},
           "lead": {"email": email}, "club": club}
    r = D.post_event(doc)
    assert r.status == 200, r
    return r.json()


def jobs(email, tag=None):
    rows = D.query("SELECT params FROM jobs WHERE lead_email = ? ORDER BY id", email)
    return [p for (p,) in rows if tag is None or tag in p]


def wait_for(fn, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return fn()


def test_progress_threshold_fires_once_per_lead():
    post("club.progress", "p1@example.com", progress=40)
    assert jobs("p1@example.com") == []
    post("club.progress", "p1@example.com", progress=60)
    assert len(wait_for(lambda: jobs("p1@example.com", "half"))) == 1
    post("club.progress", "p1@example.com", progress=75)
    post("club.progress", "p1@example.com", progress=100)
    time.sleep(0.3)
    assert len(jobs("p1@example.com", "half")) == 1


def test_progress_first_event_past_the_threshold_fires():
    post("club.progress", "p2@example.com", progress=90)
    assert len(wait_for(lambda: jobs("p2@example.com", "half"))) == 1


def test_fifteen_days_without_login_fires_once():
    post("club.last_access", "a15@example.com", last_access_at=now_ms() - 16 * DAY_MS)
    assert len(wait_for(lambda: jobs("a15@example.com", "away15"))) == 1
    time.sleep(2.5)  # more scans: nothing new
    assert len(jobs("a15@example.com")) == 1
    rows = D.query("SELECT source, type FROM events WHERE lead_email = ? AND type = 'club.inactive'",
                   "a15@example.com")
    assert rows == [("scheduler", "club.inactive")], rows


def test_thirty_days_fires_the_thirty_day_trigger_only():
    post("club.last_access", "a30@example.com", last_access_at=now_ms() - 31 * DAY_MS)
    assert len(wait_for(lambda: jobs("a30@example.com", "away30"))) == 1
    time.sleep(1.5)
    assert jobs("a30@example.com", "away15") == []


def test_a_recent_login_fires_nothing():
    post("club.last_access", "here@example.com", last_access_at=now_ms() - 2 * DAY_MS)
    time.sleep(2.5)
    assert jobs("here@example.com") == []


def test_a_new_login_starts_a_new_period():
    email = "back@example.com"
    post("club.last_access", email, last_access_at=now_ms() - 20 * DAY_MS)
    assert len(wait_for(lambda: jobs(email, "away15"))) == 1
    post("club.last_access", email, last_access_at=now_ms() - 17 * DAY_MS)  # logged in again, then left again
    assert len(wait_for(lambda: len(jobs(email, "away15")) == 2 and jobs(email, "away15"))) == 2


@contextlib.contextmanager
def store_locked():
    """Another writer holds the store: the daemon's commits fail meanwhile."""
    locker = sqlite3.connect(D.db, timeout=5, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def test_a_progress_answered_503_counts_when_its_retry_is_stored():
    email = "retry@example.com"
    post("club.progress", email, progress=40)
    doc = {"id": str(uuid.uuid4()), "type": "club.progress", "occurred_at": now_ms(), "product": {"id": "77"},
           "lead": {"email": email}, "club": {"progress": 60}}
    with store_locked():
        r = D.post_event(doc)
        assert r.status == 503, r
    r = D.post_event(doc)  # the sender's retry
    assert r.status == 200 and r.json()["duplicate"] is False, r
    # the retry crosses 50 % as the first delivery would have: the threshold fires,
    # the event says where the student came from, and the new progress is stored
    assert len(wait_for(lambda: jobs(email, "half"))) == 1
    (normalized,) = D.query("SELECT normalized FROM events WHERE source_event_id = ?", doc["id"])[0]
    assert json.loads(normalized)["club"]["previous_progress"] == 40, normalized
    rows = D.query("SELECT max_progress FROM club_activity WHERE lead_email = ?", email)
    assert rows == [(60,)], rows


def test_an_inactivity_event_whose_commit_fails_is_made_again():
    email = "later15@example.com"
    # 15 days without login in 1.5 s: the store is held by then, so the
    # scan's event fails to commit, with no request to answer
    post("club.last_access", email, last_access_at=now_ms() - 15 * DAY_MS + 1500)
    with store_locked():
        time.sleep(3.5)
        assert jobs(email) == []
    assert D.get("/healthz").status == 200  # still up
    assert len(wait_for(lambda: jobs(email, "away15"))) == 1
    time.sleep(1.5)
    assert len(jobs(email)) == 1
    assert "store write failed; batch answered 503" in D.stderr()


def test_a_duplicate_with_other_content_changes_nothing():
    email = "dup@example.com"
    doc = {"id": str(uuid.uuid4()), "type": "club.progress", "occurred_at": now_ms(), "product": {"id": "77"},
           "lead": {"email": email}, "club": {"progress": 30}}
    assert D.post_event(doc).json()["duplicate"] is False
    doc["club"]["progress"] = 90  # the same event id, other content
    assert D.post_event(doc).json()["duplicate"] is True
    assert D.query("SELECT max_progress FROM club_activity WHERE lead_email = ?", email) == [(30,)]
    assert jobs(email) == []  # 90 crossed nothing: it was never stored
    later = post("club.progress", email, progress=45)
    (normalized,) = D.query("SELECT normalized FROM events WHERE id = ?", later["event_id"])[0]
    assert json.loads(normalized)["club"]["previous_progress"] == 30, normalized


def test_metrics_count_provider_calls():
    text = D.get("/metrics").body.decode()
    line = [l for l in text.splitlines() if l.startswith('listboss_job_attempts_total{outcome="ok"}')]
    assert line and int(line[0].split()[-1]) >= 1, text
    assert "listboss_jobs_queued " in text and "listboss_integrations_broken 0" in text


def test_restart_does_not_fire_a_period_twice():
    before = len(jobs("a15@example.com"))
    D.stop()
    D.start()
    time.sleep(2.5)
    assert len(jobs("a15@example.com")) == before
    post("club.progress", "p1@example.com", progress=95)  # the highest progress survived the restart
    time.sleep(0.3)
    assert len(jobs("p1@example.com", "half")) == 1


run(globals(), teardown=D.cleanup)
