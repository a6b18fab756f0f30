"""fake_convertkit: a local Kit (formerly ConvertKit) API v4 server for tests.

Speaks the contract in spec/providers/convertkit.md (cited as "spec §N"),
under the path prefix /v4, so a plugin's base_url is http://127.0.0.1:PORT/v4.

Authentication (spec §1): header "X-Kit-Api-Key: VALID_KEY" (or
"Authorization: Bearer VALID_OAUTH_TOKEN"). Anything else is
401 {"errors": ["..."]} (spec §4).
"""
import base64
import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakebase import Fake, reply, serve  # noqa: E402

VALID_KEY = "kit-test-api-key-0123456789abcdef"
VALID_OAUTH_TOKEN = "kit-test-oauth-token-0123456789"

SEED_FORMS = [{"id": 1001, "name": "Lead magnet"}, {"id": 1002, "name": "Webinar signup"}]
SEED_SEQUENCES = [{"id": 2001, "name": "Onboarding"}]
CUSTOM_FIELDS = ("last_name", "phone")   # keys that exist in this fake account (spec §5.1)

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NOT_FOUND = {"errors": ["Not Found"]}     # spec §4, v4 404 text [inf]


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def errors(status, *messages):
    return reply(status, {"errors": list(messages)})


class KitFake(Fake):
    name = "convertkit"

    # --- state ------------------------------------------------------------------
    def reset_state(self):
        self.next_id = {"subscriber": 1, "tag": 5001}
        self.subscribers = {}          # id -> subscriber object
        self.by_email = {}             # email -> id
        self.tags = {}                 # id -> {id, name, created_at}
        self.taggings = {}             # (tag_id, subscriber_id) -> tagged_at
        self.forms = {f["id"]: dict(f, created_at=now(), type="embed", archived=False) for f in SEED_FORMS}
        self.sequences = {s["id"]: dict(s, created_at=now(), hold=False, repeat=False) for s in SEED_SEQUENCES}
        self.form_subs = {}            # (form_id, subscriber_id) -> added_at
        self.sequence_subs = {}        # (sequence_id, subscriber_id) -> added_at
        self.page_cap = 1000           # spec §3: per_page <= 1000
        self.unknown_fields = "warn"   # spec §4: "ignored with warnings" or "422"; both seen

    def state(self):
        email = lambda sid: self.subscribers[sid]["email_address"]  # noqa: E731
        return {
            "subscribers": list(self.subscribers.values()),
            "tags": list(self.tags.values()),
            "taggings": [{"tag_id": t, "tag": self.tags[t]["name"], "subscriber_id": s, "email": email(s)}
                         for (t, s) in self.taggings],
            "forms": list(self.forms.values()),
            "form_subscriptions": [{"form_id": f, "subscriber_id": s, "email": email(s)} for (f, s) in self.form_subs],
            "sequences": list(self.sequences.values()),
            "sequence_subscriptions": [{"sequence_id": q, "subscriber_id": s, "email": email(s)}
                                       for (q, s) in self.sequence_subs],
        }

    def control(self, req):
        """Adds POST /_fake/seed {"tags": [names], "page_cap": N, "unknown_fields": "warn"|"422"}."""
        if req.path != "/_fake/seed":
            return super().control(req)
        doc = req.json() or {}
        with self.lock:
            for name in doc.get("tags", []):
                self.tag_by_name(name, create=True)
            self.page_cap = int(doc.get("page_cap", self.page_cap))
            self.unknown_fields = doc.get("unknown_fields", self.unknown_fields)
        return reply(204)

    # --- helpers ----------------------------------------------------------------
    def new_id(self, kind):
        n = self.next_id[kind]
        self.next_id[kind] += 1
        return n

    def tag_by_name(self, name, create=False):
        for t in self.tags.values():
            if t["name"] == name:
                return t, False
        if not create:
            return None, False
        t = {"id": self.new_id("tag"), "name": name, "created_at": now()}
        self.tags[t["id"]] = t
        return t, True

    def subscriber_by(self, email=None, sid=None):
        if sid is not None:
            return self.subscribers.get(sid)
        i = self.by_email.get((email or "").strip().lower())
        return self.subscribers.get(i) if i else None

    def paginate(self, req, key, items):
        """Cursor pagination (spec §3): ?per_page=&after=; cursors are opaque."""
        try:
            per_page = min(int(req.q("per_page", "500")), self.page_cap)
        except ValueError:
            return errors(422, "per_page must be an integer")
        start = 0
        if req.q("after"):
            try:
                start = json.loads(base64.b64decode(req.q("after")))[0]
            except Exception:
                return errors(422, "Invalid cursor")
        page = items[start:start + per_page]
        cursor = lambda i: base64.b64encode(json.dumps([i]).encode()).decode()  # noqa: E731
        return reply(200, {key: page, "pagination": {
            "has_previous_page": start > 0, "has_next_page": start + per_page < len(items),
            "start_cursor": cursor(start), "end_cursor": cursor(start + len(page)), "per_page": per_page}})

    def authorized(self, req):
        if req.headers.get("X-Kit-Api-Key") == VALID_KEY:
            return True
        return req.headers.get("Authorization") == "Bearer " + VALID_OAUTH_TOKEN

    def body(self, req):
        try:
            doc = req.json() if req.body else {}
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    # --- routing ----------------------------------------------------------------
    ROUTES = [
        ("GET", r"/v4/subscribers", "list_subscribers"),
        ("POST", r"/v4/subscribers", "upsert_subscriber"),
        ("POST", r"/v4/subscribers/(\d+)/unsubscribe", "unsubscribe"),
        ("GET", r"/v4/tags", "list_tags"),
        ("POST", r"/v4/tags", "create_tag"),
        ("POST", r"/v4/tags/(\d+)/subscribers", "tag_by_email"),
        ("POST", r"/v4/tags/(\d+)/subscribers/(\d+)", "tag_by_id"),
        ("DELETE", r"/v4/tags/(\d+)/subscribers", "untag_by_email"),
        ("DELETE", r"/v4/tags/(\d+)/subscribers/(\d+)", "untag_by_id"),
        ("GET", r"/v4/forms", "list_forms"),
        ("POST", r"/v4/forms/(\d+)/subscribers", "form_by_email"),
        ("POST", r"/v4/forms/(\d+)/subscribers/(\d+)", "form_by_id"),
        ("GET", r"/v4/sequences", "list_sequences"),
        ("POST", r"/v4/sequences/(\d+)/subscribers", "sequence_by_email"),
    ]

    def route(self, req):
        if not self.authorized(req):
            present = req.headers.get("X-Kit-Api-Key") or req.headers.get("Authorization")
            return errors(401, "The API key is invalid" if present else "API Key not present")
        for method, pattern, handler in self.ROUTES:
            m = re.fullmatch(pattern, req.path.rstrip("/") or "/")
            if m and method == req.method:
                return getattr(self, handler)(req, *(int(g) for g in m.groups()))
        return reply(404, NOT_FOUND)

    def rate_limited(self, req, retry_after_s):
        # spec §4: 429 once over 120 per rolling 60 s; no rate-limit or
        # Retry-After headers are documented, so none are sent.
        return errors(429, "Rate limit hit. Please wait and retry.")

    # --- subscribers (spec §3 FIND, UPSERT, LIST-) ------------------------------
    def list_subscribers(self, req):
        status = req.q("status", "active")   # spec §3: defaults to active
        subs = [s for s in self.subscribers.values()
                if (status == "all" or s["state"] == status)
                and (not req.q("email_address") or s["email_address"] == req.q("email_address").lower())]
        return self.paginate(req, "subscribers", subs)

    def upsert_subscriber(self, req):
        doc = self.body(req)
        if doc is None:
            return errors(422, "Request body must be a JSON object")
        email = str(doc.get("email_address") or "").strip().lower()
        if not EMAIL_RE.match(email):
            return errors(422, "Email address is invalid")
        fields = doc.get("fields") or {}
        unknown = [k for k in fields if k not in CUSTOM_FIELDS]
        if unknown and self.unknown_fields == "422":
            return errors(422, "Custom field(s) not found: " + ", ".join(unknown))
        sub = self.subscriber_by(email=email)
        created = sub is None
        if created:
            sub = {"id": self.new_id("subscriber"), "first_name": None, "email_address": email,
                   "state": doc.get("state") or "active", "created_at": now(),
                   "fields": {k: None for k in CUSTOM_FIELDS}}
            self.subscribers[sub["id"]] = sub
            self.by_email[email] = sub["id"]
        # An existing subscriber: only first_name (and fields) change; state
        # cannot be changed here (spec §3 UPSERT).
        if "first_name" in doc:
            sub["first_name"] = doc["first_name"]
        sub["fields"].update({k: v for k, v in fields.items() if k in CUSTOM_FIELDS})
        answer = {"subscriber": sub}
        if unknown:
            answer["warnings"] = ["Custom field(s) not found: " + ", ".join(unknown)]
        return reply(201 if created else 200, answer)

    def unsubscribe(self, req, sid):
        sub = self.subscriber_by(sid=sid)
        if not sub:
            return reply(404, NOT_FOUND)
        sub["state"] = "cancelled"   # global (spec §5.4)
        return reply(204)

    # --- tags (spec §3 TAG+, TAG-; §5.6) -----------------------------------------
    def list_tags(self, req):
        return self.paginate(req, "tags", sorted(self.tags.values(), key=lambda t: t["id"]))

    def create_tag(self, req):
        doc = self.body(req)
        name = (doc or {}).get("name")
        if not isinstance(name, str) or not name.strip():
            return errors(422, "Name can't be blank")
        tag, created = self.tag_by_name(name, create=True)
        return reply(201 if created else 200, {"tag": tag})

    def member_target(self, req, sid):
        """The subscriber a member request names: by id in the path, or by the
        body's email_address. Returns (subscriber, error_reply)."""
        if sid is not None:
            sub = self.subscriber_by(sid=sid)
            return (sub, None) if sub else (None, reply(404, NOT_FOUND))
        doc = self.body(req)
        email = str((doc or {}).get("email_address") or "").strip().lower()
        if not EMAIL_RE.match(email):
            return None, errors(422, "Email address is invalid")
        sub = self.subscriber_by(email=email)
        # spec §5.2: the subscriber must already exist [404 inf]
        return (sub, None) if sub else (None, reply(404, NOT_FOUND))

    def add_member(self, req, container, table, cid, sid, stamp):
        if cid not in container:
            return reply(404, NOT_FOUND)
        sub, err = self.member_target(req, sid)
        if err:
            return err
        key = (cid, sub["id"])
        existed = key in table
        if not existed:
            table[key] = now()
        return reply(200 if existed else 201, {"subscriber": dict(sub, **{stamp: table[key]})})

    def tag_by_email(self, req, tid):
        return self.add_member(req, self.tags, self.taggings, tid, None, "tagged_at")

    def tag_by_id(self, req, tid, sid):
        return self.add_member(req, self.tags, self.taggings, tid, sid, "tagged_at")

    def untag(self, req, tid, sid):
        if tid not in self.tags:
            return reply(404, NOT_FOUND)
        sub, err = self.member_target(req, sid)
        if err:
            return err
        self.taggings.pop((tid, sub["id"]), None)
        return reply(204)

    def untag_by_email(self, req, tid):
        return self.untag(req, tid, None)

    def untag_by_id(self, req, tid, sid):
        return self.untag(req, tid, sid)

    # --- forms and sequences (spec §3 LIST+, SEQ+) ------------------------------
    def list_forms(self, req):
        return self.paginate(req, "forms", list(self.forms.values()))

    def form_by_email(self, req, fid):
        return self.add_member(req, self.forms, self.form_subs, fid, None, "added_at")

    def form_by_id(self, req, fid, sid):
        return self.add_member(req, self.forms, self.form_subs, fid, sid, "added_at")

    def list_sequences(self, req):
        return self.paginate(req, "sequences", list(self.sequences.values()))

    def sequence_by_email(self, req, qid):
        return self.add_member(req, self.sequences, self.sequence_subs, qid, None, "added_at")


if __name__ == "__main__":
    serve(KitFake())
