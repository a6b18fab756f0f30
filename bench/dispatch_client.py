#!/usr/bin/env python3
"""bench/dispatch_client.py: the webhook side of bench/dispatch (stdlib only).

  post DAEMON_URL HOTTOK FIXTURE N LEADS TAG
      posts N PURCHASE_APPROVED webhooks (distinct envelope ids) whose buyer is
      one of LEADS addresses, lead-<k>@bench.example, over 8 keep-alive
      connections; fails unless every one is answered 200.
  drain FAKE_URL EXPECT TIMEOUT
      waits until the fake provider has seen EXPECT POST /tags, then prints
      provider calls per second from the first call to the last.
  latency DAEMON_URL HOTTOK FIXTURE FAKE_URL RATE COUNT
      posts COUNT webhooks one by one at RATE per second, each with its own
      buyer address, noting the send time (CLOCK_REALTIME); waits for the fake
      to have seen them all and prints the webhook-to-provider-call latency
      (fake arrival time - client send time) p50/p99/max.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse
import uuid


def conn_for(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def bodies_from(fixture):
    with open(fixture, "rb") as f:
        doc = json.load(f)
    return doc


def make_body(doc, event_id, email):
    doc["id"] = event_id
    doc["data"]["buyer"]["email"] = email
    return json.dumps(doc, separators=(",", ":")).encode()


def post_one(c, hottok, body):
    c.request("POST", "/webhooks/hotmart", body,
              {"Content-Type": "application/json", "X-HOTMART-HOTTOK": hottok})
    r = c.getresponse()
    r.read()
    return r.status


def cmd_post(url, hottok, fixture, n, leads, tag):
    n, leads = int(n), int(leads)
    doc = bodies_from(fixture)
    bodies = [make_body(doc, "%s-%d" % (tag, i), "lead-%d@bench.example" % (i % leads)) for i in range(n)]
    nthreads = 8
    bad = []

    def worker(k):
        c = conn_for(url)
        for i in range(k, n, nthreads):
            st = post_one(c, hottok, bodies[i])
            if st != 200:
                bad.append(st)
        c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.monotonic() - t0
    if bad:
        sys.exit("dispatch_client: %d webhooks not answered 200 (e.g. %s)" % (len(bad), bad[0]))
    print("posted %d webhooks (%d leads) in %.1f s" % (n, leads, dt))


def stats(fake):
    c = conn_for(fake)
    c.request("GET", "/__stats")
    r = c.getresponse()
    s = r.read().decode()
    c.close()
    return {k: int(v) for k, v in (kv.split("=") for kv in s.split())}


def cmd_drain(fake, expect, timeout):
    expect, timeout = int(expect), float(timeout)
    t0 = time.monotonic()
    last, last_change = -1, t0
    while True:
        s = stats(fake)
        now = time.monotonic()
        if s["tags"] != last:
            last, last_change = s["tags"], now
        if s["tags"] >= expect:
            break
        if now - t0 > timeout or now - last_change > 15:
            sys.exit("dispatch_client: the fake saw %d of %d calls after %.0f s" % (s["tags"], expect, now - t0))
        time.sleep(0.05)
    secs = (s["last_ns"] - s["first_ns"]) / 1e9
    rate = (s["tags"] - 1) / secs if secs > 0 else float("nan")
    print("provider calls: %d in %.2f s (first to last call): %.0f calls/s; %d connection(s) seen by the fake"
          % (s["tags"], secs, rate, s["connections"]))


def pct(v, p):
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def cmd_latency(url, hottok, fixture, fake, rate, count):
    rate, count = float(rate), int(count)
    doc = bodies_from(fixture)
    run = uuid.uuid4().hex[:8]
    emails = ["lat-%s-%d@bench.example" % (run, i) for i in range(count)]
    bodies = [make_body(doc, "lat-%s-%d" % (run, i), emails[i]) for i in range(count)]
    sent = {}
    c = conn_for(url)
    t0 = time.monotonic()
    for i in range(count):
        due = t0 + i / rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        sent[emails[i]] = time.time_ns()
        st = post_one(c, hottok, bodies[i])
        if st != 200:
            sys.exit("dispatch_client: webhook answered %d" % st)
    c.close()
    elapsed = time.monotonic() - t0
    deadline = time.monotonic() + 30
    while stats(fake)["tags"] < count:
        if time.monotonic() > deadline:
            sys.exit("dispatch_client: the fake did not see every call within 30 s")
        time.sleep(0.05)
    c = conn_for(fake)
    c.request("GET", "/__dump")
    dump = c.getresponse().read().decode()
    c.close()
    lat = []
    for line in dump.splitlines():
        ns, email = line.split(" ", 1)
        if email in sent:
            lat.append((int(ns) - sent.pop(email)) / 1e6)
    lat.sort()
    print("latency webhook -> provider call, %d webhooks at %.0f/s (achieved %.0f/s): "
          "p50 %.2f ms  p99 %.2f ms  max %.2f ms"
          % (len(lat), rate, count / elapsed, pct(lat, 50), pct(lat, 99), lat[-1] if lat else float("nan")))
    if sent:
        sys.exit("dispatch_client: %d webhooks never reached the fake" % len(sent))


if __name__ == "__main__":
    cmds = {"post": cmd_post, "drain": cmd_drain, "latency": cmd_latency}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
