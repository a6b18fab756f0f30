"""kill -9 under load: every acknowledged event survives, exactly once."""
import json
import signal
import threading
import time
import uuid

from lbtest import Daemon, fixture, run

TEMPLATES = [json.loads(fixture(n)) for n in ("PURCHASE_APPROVED", "PURCHASE_OUT_OF_SHOPPING_CART",
                                              "CLUB_MODULE_COMPLETED", "SWITCH_PLAN")]
CLIENTS = 16


def hammer(d, acked, stop):
    conn = d.connection(timeout=5)
    n = 0
    while not stop.is_set():
        doc = dict(TEMPLATES[n % len(TEMPLATES)])
        n += 1
        doc["id"] = str(uuid.uuid4())
        try:
            r = d.post_hotmart(json.dumps(doc), conn=conn)
        except Exception:
            return  # the daemon died mid-request: this one was never acknowledged
        if r.status == 200:
            acked.append((doc["id"], r.json()["event_id"]))


def load_then_kill(d, seconds):
    acked, stop = [], threading.Event()
    threads = [threading.Thread(target=hammer, args=(d, acked, stop)) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    d.log.close()
    return acked


def check_store(d, acked):
    rows = d.query("SELECT source_event_id, id FROM events")
    by_source = {}
    for sid, eid in rows:
        by_source.setdefault(sid, []).append(eid)
    dupes = [s for s, ids in by_source.items() if len(ids) > 1]
    assert not dupes, dupes[:5]
    lost = [(s, e) for s, e in acked if by_source.get(s) != [e]]
    assert not lost, "acknowledged but not stored: %r" % lost[:5]
    assert d.query("PRAGMA integrity_check") == [("ok",)]
    half = d.query("SELECT count(*) FROM events WHERE normalized = '' OR length(raw_body) = 0")
    assert half == [(0,)], half


def test_kill_9_under_load_loses_no_acknowledged_event():
    d = Daemon().start()
    try:
        total = []
        for round_ in range(3):
            acked = load_then_kill(d, 1.0 + round_ * 0.5)
            assert acked, "nothing was acknowledged in round %d" % round_
            total.extend(acked)
            d.start()  # restart on the same database: recovery runs here
            check_store(d, total)
        print("# %d acknowledged events checked over 3 kills" % len(total))
    finally:
        d.cleanup()


def test_acknowledged_events_are_still_duplicates_after_restart():
    d = Daemon().start()
    try:
        acked = load_then_kill(d, 0.7)
        d.start()
        sid, eid = acked[len(acked) // 2]
        doc = dict(TEMPLATES[0])
        doc["id"] = sid
        r = d.post_hotmart(json.dumps(doc))
        assert r.status == 200 and r.json() == {"event_id": eid, "duplicate": True}, r
    finally:
        d.cleanup()


run(globals())
