"""fake_mailchimp: a local Mailchimp Marketing API v3 that speaks the contract of
spec/providers/mailchimp.md ("spec §N" below).

Auth (spec §1): HTTP Basic, any user name, the API key as password. The one
accepted key is KEY ("testkey-us21") unless --key says otherwise. Everything
lives under /3.0, so a plugin's base_url is http://127.0.0.1:PORT/3.0.

Seeded on every reset (ids are constants below):
  audience BUYERS "Buyers"          merge fields FNAME LNAME ADDRESS PHONE BIRTHDAY, none required
      unsubscribed@example.com      status "unsubscribed"  (compliance state, spec §3)
      cleaned@example.com           status "cleaned"
      forgotten@example.com         permanently deleted    (spec §3, §4.5)
      tag "seeded-tag"
  audience NEWSLETTER "Newsletter"  FNAME is required: 400 without it unless
                                    ?skip_merge_validation=true (spec §4.3)
  classic automation WORKFLOW, email WORKFLOW_EMAIL, on BUYERS (spec §2 SEQ+)
  Customer Journey JOURNEY, step JOURNEY_STEP, on BUYERS

Throttling (spec §3): "10 simultaneous connections per user", 429 "Too Many
Requests" as problem+json and no Retry-After / X-RateLimit-* headers. Both the
concurrency cap (--max-connections, default 10) and fakebase's /_fake/ratelimit
window answer that way.

/_fake/seed (POST, this fake's own control): {"lists": [{"id", "name"}], "page_cap": N}
adds audiences, and caps GET /lists pages at N items whatever `count` asks, so a
test can see a client follow total_items across pages.

/_fake/state: {"lists": {id: {"name", "members": {hash: member}, "tags": {name: id},
"forgotten": [hash]}}, "automation_queue": [...], "automation_removed": [...],
"journey_triggers": [...], "max_in_flight": N}. A member is
{"id", "email_address", "status", "merge_fields", "tags": [names], "list_id"}.

Run: python3 fake_mailchimp.py --port 0 [--key KEY] [--max-connections N]
"""
import argparse
import base64
import hashlib
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakebase import Fake, Server, make_handler, reply  # noqa: E402

KEY = "testkey-us21"
BUYERS = "57afe96172"
NEWSLETTER = "1a2b3c4d5e"
WORKFLOW = "b0a1c2d3e4"
WORKFLOW_EMAIL = "f5e6d7c8b9"
JOURNEY = "101"
JOURNEY_STEP = "202"

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
DEFAULT_MERGE = ("FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY")
ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"


def md5_lower(email):
    """Spec §1: subscriber_hash = lowercase hex MD5 of the lowercased email."""
    return hashlib.md5(email.lower().encode()).hexdigest()


def problem(status, title, detail, errors=None):
    """Spec §3: an RFC 7807 problem document."""
    body = {"type": ERRORS_DOC, "title": title, "status": status, "detail": detail,
            "instance": str(uuid.uuid4())}
    if errors:
        body["errors"] = errors
    return reply(status, body, content_type="application/problem+json; charset=utf-8")


def not_found():
    return problem(404, "Resource Not Found", "The requested resource could not be found.")


def invalid(detail, errors=None):
    return problem(400, "Invalid Resource", detail, errors)


class BadRequest(Exception):
    """Raised while reading a body; carries the answer."""

    def __init__(self, answer):
        super().__init__()
        self.answer = answer


class FakeMailchimp(Fake):
    name = "mailchimp"

    def __init__(self, key=KEY):
        self.key = key
        self.in_flight = 0          # survives resets: requests are still open
        super().__init__()

    # --- state ------------------------------------------------------------------
    def reset_state(self):
        self.next_id = 1000
        self.lists = {}
        self.add_list(BUYERS, "Buyers", required=())
        self.add_list(NEWSLETTER, "Newsletter", required=("FNAME",))
        buyers = self.lists[BUYERS]
        for email, status in (("unsubscribed@example.com", "unsubscribed"),
                              ("cleaned@example.com", "cleaned")):
            self.new_member(BUYERS, email, status, {})
        buyers["forgotten"].add(md5_lower("forgotten@example.com"))
        self.tag_id(buyers, "seeded-tag")
        self.automations = {WORKFLOW: {"list_id": BUYERS, "emails": {WORKFLOW_EMAIL}}}
        self.journeys = {JOURNEY: {"list_id": BUYERS, "steps": {JOURNEY_STEP}}}
        self.automation_queue = []
        self.automation_removed = []
        self.journey_triggers = []
        self.max_in_flight = 0
        self.page_cap = 1000

    def control(self, req):
        if req.path != "/_fake/seed":
            return super().control(req)
        doc = req.json() or {}
        with self.lock:
            for lst in doc.get("lists", []):
                self.add_list(lst["id"], lst["name"], required=())
            self.page_cap = int(doc.get("page_cap", self.page_cap))
        return reply(204)

    def add_list(self, lid, name, required):
        self.lists[lid] = {"id": lid, "name": name, "members": {}, "tags": {}, "forgotten": set(),
                           "required": set(required)}

    def state(self):
        lists = {}
        for lid, lst in self.lists.items():
            lists[lid] = {"name": lst["name"], "members": {h: self.public_member(m) for h, m in lst["members"].items()},
                          "tags": dict(lst["tags"]), "forgotten": sorted(lst["forgotten"])}
        return {"lists": lists, "automation_queue": self.automation_queue,
                "automation_removed": self.automation_removed, "journey_triggers": self.journey_triggers,
                "max_in_flight": self.max_in_flight}

    def public_member(self, m):
        return {k: (sorted(v) if k == "tags" else v) for k, v in m.items()}

    def new_id(self):
        self.next_id += 1
        return self.next_id

    def tag_id(self, lst, name):
        """Spec §4.4: tags are created on first use."""
        if name not in lst["tags"]:
            lst["tags"][name] = self.new_id()
        return lst["tags"][name]

    def new_member(self, lid, email, status, merge):
        h = md5_lower(email)
        m = {"id": h, "email_address": email, "unique_email_id": uuid.uuid4().hex[:10],
             "contact_id": uuid.uuid4().hex, "status": status, "merge_fields": dict(merge),
             "tags": set(), "list_id": lid, "last_changed": self.now()}
        self.lists[lid]["members"][h] = m
        return m

    @staticmethod
    def now():
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())

    def member_view(self, lst, m):
        """The member object (spec §2: id, email_address, status, merge_fields, tags [{id,name}]...)."""
        out = {k: v for k, v in m.items() if k != "tags"}
        out["tags"] = [{"id": lst["tags"][t], "name": t} for t in sorted(m["tags"])]
        out["tags_count"] = len(m["tags"])
        return out

    # --- auth and throttling ------------------------------------------------------
    def check_auth(self, req):
        """Spec §1 / §3: Basic with any user; 401 API Key Missing / API Key Invalid."""
        h = req.headers.get("Authorization") or ""
        if not h:
            return problem(401, "API Key Missing", "Your request did not include an API key.")
        scheme, _, cred = h.partition(" ")
        password = None
        if scheme.lower() == "basic":
            try:
                password = base64.b64decode(cred.strip(), validate=True).decode().partition(":")[2]
            except Exception:
                password = None
        if password != self.key:
            return problem(401, "API Key Invalid",
                           "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
        return None

    def too_many(self):
        """Spec §3: 429 Too Many Requests, and no rate-limit headers are documented."""
        return problem(429, "Too Many Requests",
                       "You have exceeded the limit of 10 simultaneous connections.")

    def rate_limited(self, req, retry_after_s):
        return self.too_many()

    # --- routing --------------------------------------------------------------------
    ROUTES = [
        (r"/ping", {"GET": "ping"}),
        (r"/lists", {"GET": "get_lists"}),
        (r"/lists/(?P<lid>[^/]+)", {"GET": "get_list"}),
        (r"/lists/(?P<lid>[^/]+)/members", {"POST": "post_member"}),
        (r"/lists/(?P<lid>[^/]+)/members/(?P<h>[^/]+)",
         {"GET": "get_member", "PUT": "put_member", "PATCH": "patch_member", "DELETE": "delete_member"}),
        (r"/lists/(?P<lid>[^/]+)/members/(?P<h>[^/]+)/tags", {"GET": "get_member_tags", "POST": "post_tags"}),
        (r"/lists/(?P<lid>[^/]+)/members/(?P<h>[^/]+)/actions/delete-permanent", {"POST": "delete_permanent"}),
        (r"/lists/(?P<lid>[^/]+)/tag-search", {"GET": "tag_search"}),
        (r"/automations/(?P<wf>[^/]+)/emails/(?P<em>[^/]+)/queue", {"POST": "queue"}),
        (r"/automations/(?P<wf>[^/]+)/removed-subscribers", {"POST": "remove_subscriber"}),
        (r"/customer-journeys/journeys/(?P<j>[^/]+)/steps/(?P<s>[^/]+)/actions/trigger", {"POST": "trigger"}),
    ]

    def route(self, req):
        if not req.path.startswith("/3.0/"):
            return not_found()
        denied = self.check_auth(req)
        if denied:
            return denied
        path = req.path[len("/3.0"):].rstrip("/")
        for pattern, methods in self.ROUTES:
            m = re.fullmatch(pattern, path)
            if not m:
                continue
            if req.method not in methods:
                return problem(405, "Method Not Allowed",
                               "The requested method and resource are not compatible. "
                               "See the Allow header for this resource's available methods.")
            try:
                return getattr(self, methods[req.method])(req, **m.groupdict())
            except BadRequest as e:
                return e.answer
        return not_found()

    # --- helpers for handlers -------------------------------------------------------
    @staticmethod
    def body(req):
        try:
            doc = req.json()
        except ValueError:
            raise BadRequest(problem(400, "JSON Parse Error",
                                     "We encountered an unspecified JSON parsing error."))
        if not isinstance(doc, dict):
            raise BadRequest(invalid("The resource submitted could not be validated."))
        return doc

    def audience(self, lid):
        lst = self.lists.get(lid)
        if lst is None:
            raise BadRequest(not_found())
        return lst

    @staticmethod
    def live(lst, h):
        """A member that is on the audience (archived ones are not)."""
        m = lst["members"].get(h)
        return m if m and m["status"] != "archived" else None

    @staticmethod
    def check_status(field, value):
        if value is not None and value not in STATUSES:
            raise BadRequest(invalid("The resource submitted could not be validated. For field-specific "
                                     "details, see the 'errors' array.",
                                     [{"field": field, "message": "Data did not match any of the schemas "
                                                                  "described in anyOf."}]))

    @staticmethod
    def check_forgotten(lst, h, email):
        if h in lst["forgotten"]:
            raise BadRequest(problem(400, "Forgotten Email Not Subscribed",
                                     "%s was permanently deleted and cannot be re-imported. The contact "
                                     "must re-subscribe to get back on the list." % email))

    @staticmethod
    def check_compliance(m, new_status):
        """Spec §3, §4.2: an unsubscribed/cleaned member cannot be set to subscribed."""
        if new_status == "subscribed" and m["status"] in ("unsubscribed", "cleaned"):
            raise BadRequest(problem(400, "Member In Compliance State",
                                     "%s is in a compliance state due to unsubscribe, bounce, or compliance "
                                     "review and cannot be subscribed." % m["email_address"]))

    @staticmethod
    def merge_fields(req, lst, doc, creating):
        """Spec §4.3: per-audience merge tags; a missing required one is a 400
        unless skip_merge_validation=true. Unknown tags are dropped."""
        merge = doc.get("merge_fields") or {}
        if not isinstance(merge, dict):
            raise BadRequest(invalid("Your merge fields were invalid.",
                                     [{"field": "merge_fields", "message": "Schema describes object"}]))
        known = {k: v for k, v in merge.items() if k in DEFAULT_MERGE}
        if creating and req.q("skip_merge_validation") != "true":
            for tag in sorted(lst["required"]):
                if not known.get(tag):
                    raise BadRequest(invalid("Your merge fields were invalid.",
                                             [{"field": tag, "message": "Please enter a value"}]))
        return known

    # --- handlers ---------------------------------------------------------------------
    def ping(self, req):
        return reply(200, {"health_status": "Everything's Chimpy!"})

    def get_lists(self, req):
        count = min(int(req.q("count", "10")), 1000, self.page_cap)
        offset = int(req.q("offset", "0"))
        ids = sorted(self.lists)
        page = [{"id": i, "name": self.lists[i]["name"],
                 "stats": {"member_count": sum(1 for m in self.lists[i]["members"].values()
                                               if m["status"] == "subscribed")}}
                for i in ids[offset:offset + count]]
        return reply(200, {"lists": page, "total_items": len(ids)})

    def get_list(self, req, lid):
        lst = self.audience(lid)
        return reply(200, {"id": lid, "name": lst["name"]})

    def get_member(self, req, lid, h):
        lst = self.audience(lid)
        m = lst["members"].get(h)
        return reply(200, self.member_view(lst, m)) if m else not_found()

    def put_member(self, req, lid, h):
        """Spec §2 UPSERT: create with status_if_new, or update; 200 both ways."""
        lst = self.audience(lid)
        doc = self.body(req)
        email = doc.get("email_address")
        if email is not None and md5_lower(str(email)) != h:
            return invalid("The email address in the body does not match the subscriber hash.",
                           [{"field": "email_address", "message": "Does not match the subscriber hash"}])
        self.check_status("status", doc.get("status"))
        self.check_status("status_if_new", doc.get("status_if_new"))
        m = self.live(lst, h)
        if m is None:
            return self.create_from_put(req, lst, h, doc)
        if doc.get("status"):
            self.check_compliance(m, doc["status"])
            m["status"] = doc["status"]
        m["merge_fields"].update(self.merge_fields(req, lst, doc, creating=False))
        m["last_changed"] = self.now()
        return reply(200, self.member_view(lst, m))

    def create_from_put(self, req, lst, h, doc):
        email = doc.get("email_address")
        if not email:
            return invalid("The resource submitted could not be validated.",
                           [{"field": "email_address", "message": "This value should not be blank."}])
        self.check_forgotten(lst, h, email)
        status = doc.get("status_if_new") or doc.get("status")
        if not status:
            return invalid("The resource submitted could not be validated.",
                           [{"field": "status_if_new", "message": "This value should not be blank."}])
        merge = self.merge_fields(req, lst, doc, creating=True)
        old = lst["members"].get(h)  # an archived member comes back (spec §4.5)
        m = self.new_member(lst["id"], email, status, merge)
        if old:
            m["tags"] = old["tags"]
        return reply(200, self.member_view(lst, m))

    def post_member(self, req, lid):
        """Spec §2 LIST+ (create only): 400 Member Exists when already there."""
        lst = self.audience(lid)
        doc = self.body(req)
        email, status = doc.get("email_address"), doc.get("status")
        if not email or not status:
            field = "email_address" if not email else "status"
            return invalid("The resource submitted could not be validated.",
                           [{"field": field, "message": "This value should not be blank."}])
        self.check_status("status", status)
        h = md5_lower(email)
        if self.live(lst, h):
            return problem(400, "Member Exists",
                           "%s is already a list member. Use PUT to insert or update list members." % email)
        self.check_forgotten(lst, h, email)
        m = self.new_member(lid, email, status, self.merge_fields(req, lst, doc, creating=True))
        for t in doc.get("tags") or []:
            self.tag_id(lst, t)
            m["tags"].add(t)
        return reply(200, self.member_view(lst, m))

    def patch_member(self, req, lid, h):
        """Spec §2 Update only / LIST- unsubscribe: 404 if absent."""
        lst = self.audience(lid)
        m = self.live(lst, h)
        if m is None:
            return not_found()
        doc = self.body(req)
        self.check_status("status", doc.get("status"))
        if doc.get("status"):
            self.check_compliance(m, doc["status"])
            m["status"] = doc["status"]
        m["merge_fields"].update(self.merge_fields(req, lst, doc, creating=False))
        m["last_changed"] = self.now()
        return reply(200, self.member_view(lst, m))

    def delete_member(self, req, lid, h):
        """Spec §2 LIST- (archive): 204; the member can be re-added."""
        lst = self.audience(lid)
        m = lst["members"].get(h)
        if m is None:
            return not_found()
        m["status"] = "archived"
        m["last_changed"] = self.now()
        return reply(204)

    def delete_permanent(self, req, lid, h):
        """Spec §2, §4.5: gone for good; re-adding gives Forgotten Email Not Subscribed."""
        lst = self.audience(lid)
        if h not in lst["members"]:
            return not_found()
        del lst["members"][h]
        lst["forgotten"].add(h)
        return reply(204)

    def get_member_tags(self, req, lid, h):
        lst = self.audience(lid)
        m = self.live(lst, h)
        if m is None:
            return not_found()
        tags = [{"id": lst["tags"][t], "name": t, "date_added": m["last_changed"]} for t in sorted(m["tags"])]
        return reply(200, {"tags": tags, "total_items": len(tags)})

    def post_tags(self, req, lid, h):
        """Spec §2 TAG+/TAG-, §4.4: 204; 404 if the member is not on the audience."""
        lst = self.audience(lid)
        m = self.live(lst, h)
        if m is None:
            return not_found()
        tags = self.body(req).get("tags")
        ok = isinstance(tags, list) and all(
            isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"].strip()
            and t.get("status") in ("active", "inactive") for t in tags)
        if not ok:
            return invalid("The resource submitted could not be validated.",
                           [{"field": "tags", "message": "Each tag needs a name and a status of active or inactive"}])
        for t in tags:
            if t["status"] == "active":
                self.tag_id(lst, t["name"])
                m["tags"].add(t["name"])
            else:
                m["tags"].discard(t["name"])
        return reply(204)

    def tag_search(self, req, lid):
        """Spec §2: tag-search matches by name prefix."""
        lst = self.audience(lid)
        prefix = req.q("name", "")
        tags = [{"id": i, "name": n} for n, i in sorted(lst["tags"].items()) if n.startswith(prefix)]
        return reply(200, {"tags": tags, "total_items": len(tags)})

    def subscribed_member(self, lid, email):
        """Spec §4.7: automations only take members already on their audience."""
        if not isinstance(email, str) or not email:
            raise BadRequest(invalid("The resource submitted could not be validated.",
                                     [{"field": "email_address", "message": "This value should not be blank."}]))
        m = self.live(self.lists[lid], md5_lower(email))
        if m is None or m["status"] != "subscribed":
            raise BadRequest(problem(400, "Bad Request",
                                     "%s is not a subscribed member of the audience." % email))
        return m

    def queue(self, req, wf, em):
        """Spec §2 SEQ+ (classic automation): 200 queue item."""
        a = self.automations.get(wf)
        if a is None or em not in a["emails"]:
            return not_found()
        m = self.subscribed_member(a["list_id"], self.body(req).get("email_address"))
        item = {"id": m["id"], "workflow_id": wf, "email_id": em, "list_id": a["list_id"],
                "email_address": m["email_address"], "next_send": self.now()}
        if not any(q["id"] == m["id"] and q["email_id"] == em for q in self.automation_queue):
            self.automation_queue.append(item)
        return reply(200, item)

    def remove_subscriber(self, req, wf):
        """Spec §2 SEQ- (classic automation): 200."""
        a = self.automations.get(wf)
        if a is None:
            return not_found()
        email = self.body(req).get("email_address")
        if not isinstance(email, str) or not email:
            return invalid("The resource submitted could not be validated.",
                           [{"field": "email_address", "message": "This value should not be blank."}])
        item = {"id": md5_lower(email), "workflow_id": wf, "list_id": a["list_id"], "email_address": email}
        self.automation_queue = [q for q in self.automation_queue
                                 if not (q["workflow_id"] == wf and q["id"] == item["id"])]
        self.automation_removed.append(item)
        return reply(200, item)

    def trigger(self, req, j, s):
        """Spec §2 SEQ+ (Customer Journey): 204."""
        jr = self.journeys.get(j)
        if jr is None or s not in jr["steps"]:
            return not_found()
        m = self.subscribed_member(jr["list_id"], self.body(req).get("email_address"))
        self.journey_triggers.append({"journey_id": j, "step_id": s, "email_address": m["email_address"]})
        return reply(204)


def limited_handler(fake, limit):
    """fakebase's handler plus spec §3's cap on simultaneous connections: the
    request that would be number limit+1 in flight gets the 429."""
    base = make_handler(fake)

    class Handler(base):
        def handle_any(self):
            if self.path.startswith("/_fake/"):
                return base.handle_any(self)
            with fake.lock:
                fake.in_flight += 1
                fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                over = limit and fake.in_flight > limit
            try:
                if not over:
                    return base.handle_any(self)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.requests.append({"method": self.command, "path": self.path.split("?")[0],
                                          "query": self.path.partition("?")[2], "headers": dict(self.headers),
                                          "body": body.decode("utf-8", "replace"), "throttled": True})
                return self.send(*fake.too_many())
            finally:
                with fake.lock:
                    fake.in_flight -= 1

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    return Handler


def main(argv=None):
    ap = argparse.ArgumentParser(description="fake Mailchimp Marketing API v3")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default=KEY, help="the one API key accepted (default %s)" % KEY)
    ap.add_argument("--max-connections", type=int, default=10,
                    help="simultaneous requests before 429 (spec: 10; 0 = no cap)")
    args = ap.parse_args(argv)
    fake = FakeMailchimp(args.key)
    srv = Server(("127.0.0.1", args.port), limited_handler(fake, args.max_connections))
    print("listening %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
