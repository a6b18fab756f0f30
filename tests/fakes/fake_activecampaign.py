"""fake_activecampaign: a local ActiveCampaign API v3 for the tests.

Follows spec/providers/activecampaign.md ("the spec", sections cited as §N):

  Auth        header "Api-Token: <key>"; the only valid key is VALID_KEY. A missing or
              wrong key gets 403 {"message": ...} (§3: "fake server should use 403").
  Contacts    GET  /api/3/contacts[?email=&limit=&offset=]    (FIND, §2)
              POST /api/3/contact/sync     201 created / 200 updated (UPSERT, §2)
              POST /api/3/contacts         201; 422 "duplicate" if the e-mail exists
              PUT  /api/3/contacts/{id}    200; 404 {"message":"No Result found for Subscriber with id N"}
              GET  /api/3/fields
  Lists       GET  /api/3/lists, GET /api/3/lists/{id}
              POST /api/3/contactLists     status 1 subscribe, 2 unsubscribe (§2, §4 quirk 5)
  Tags        GET  /api/3/tags[?search= (contains) | filters[search][eq]= ]
              POST /api/3/tags             201; 422 "duplicate" (names are case-insensitive);
                                           422 for a comma in the name
              POST /api/3/contactTags      201; 422 "duplicate" if already tagged (§4 quirk 4:
                                           undocumented, so the fake picks the §3 duplicate signal)
              GET  /api/3/contacts/{id}/contactTags
              DELETE /api/3/contactTags/{assocId}   200 {}; 404 SubscriberTag
  Automations GET  /api/3/automations
              POST /api/3/contactAutomations    201; 422 "duplicate" while the contact is in it
              GET  /api/3/contacts/{id}/contactAutomations, DELETE /api/3/contactAutomations/{id}

Ids are numbers sent as strings (§1). List endpoints answer meta.total as a string and page
with limit (<= 100, default 20) and offset (§4 quirk 7). Unknown ids in relations answer 404
{"message": "No Result found for <Entity> with id N"} (§3), where Entity is Subscriber, List,
Tag, SubscriberTag, Automation, SubscriberSeries. Missing relation attributes answer the §3
422 "Missing attribute" shape. Rate limiting (via /_fake/ratelimit) answers 429 with
Retry-After, RateLimit-Limit and RateLimit-Remaining (§3); every answer carries
RateLimit-Limit: 5.

Seed state: lists 1 "Buyers" and 2 "Leads"; tag 1 "customer"; automation 1 "Welcome";
custom field 1 "Billet URL" (the bank-slip link field the tests configure).

Run:  python3 tests/fakes/fake_activecampaign.py --port 0      (prints "listening PORT")
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakebase import Fake, reply, serve  # noqa: E402

VALID_KEY = "ac-test-key-5f1d8a2b9c0e4f6a"
RATE_LIMIT = 5  # §3: 5 requests per second per account
ROOT = "/api/3"


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%S-05:00")


def not_found(entity, ident):
    return reply(404, {"message": "No Result found for %s with id %s" % (entity, ident)})


def unprocessable(title, code, pointer, detail=""):
    return reply(422, {"errors": [{"title": title, "detail": detail, "code": code,
                                   "source": {"pointer": pointer}}]})


def missing_attribute(name):
    return reply(422, {"errors": [{"status": 422, "title": "Missing attribute",
                                   "source": {"pointer": "/data/attributes/" + name}}]})


def page(req, key, rows):
    """§4 quirk 7: limit (<= 100, default 20) and offset; meta.total is a string."""
    try:
        limit = max(1, min(100, int(req.q("limit", "20"))))
        offset = max(0, int(req.q("offset", "0")))
    except ValueError:
        return reply(400, {})
    return reply(200, {key: rows[offset:offset + limit], "meta": {"total": str(len(rows))}})


def as_id(value):
    """Relation ids arrive as numbers or strings (§1): the canonical string, or None."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text if text.isdigit() else None


class FakeActiveCampaign(Fake):
    name = "activecampaign"

    # --- state ------------------------------------------------------------------
    def reset_state(self):
        self.next_id = {}
        self.contacts = []
        self.lists = [self.row("list", name="Buyers", stringid="buyers"),
                      self.row("list", name="Leads", stringid="leads")]
        self.tags = [self.row("tag", tag="customer", tagType="contact", description="")]
        self.automations = [self.row("automation", name="Welcome", status="1")]
        self.fields = [self.row("field", title="Billet URL", type="text", perstag="BILLET_URL")]
        self.contact_lists = []
        self.contact_tags = []
        self.contact_automations = []
        self.field_values = []

    def row(self, kind, **attrs):
        self.next_id[kind] = self.next_id.get(kind, 0) + 1
        return dict(attrs, id=str(self.next_id[kind]), cdate=now())

    def state(self):
        return {"contacts": self.contacts, "lists": self.lists, "tags": self.tags,
                "automations": self.automations, "fields": self.fields,
                "contactLists": self.contact_lists, "contactTags": self.contact_tags,
                "contactAutomations": self.contact_automations, "fieldValues": self.field_values}

    @staticmethod
    def by_id(rows, ident):
        return next((r for r in rows if r["id"] == ident), None)

    def contact_by_email(self, email):
        email = (email or "").strip().lower()
        return next((c for c in self.contacts if c["email"] == email), None)

    # --- transport ----------------------------------------------------------------
    def rate_limited(self, req, retry_after_s):
        return reply(429, {"message": "Too Many Requests"},
                     {"Retry-After": str(retry_after_s), "RateLimit-Limit": str(RATE_LIMIT),
                      "RateLimit-Remaining": "0"})

    def route(self, req):
        if req.headers.get("Api-Token") != VALID_KEY:
            # §3: 401 or 403 with {"message"}; the fake uses 403
            return reply(403, {"message": "No Result found for API key. Please check your key."})
        if not req.path.startswith(ROOT + "/"):
            return reply(404, {"message": "Not Found"})
        status, headers, data = self.dispatch(req, req.path[len(ROOT):])
        headers.setdefault("RateLimit-Limit", str(RATE_LIMIT))
        return status, headers, data

    ROUTES = [
        ("GET", r"/contacts", "list_contacts"),
        ("POST", r"/contacts", "create_contact"),
        ("PUT", r"/contacts/(\d+)", "update_contact"),
        ("GET", r"/contacts/(\d+)", "get_contact"),
        ("POST", r"/contact/sync", "sync_contact"),
        ("GET", r"/fields", "list_fields"),
        ("GET", r"/lists", "list_lists"),
        ("GET", r"/lists/(\d+)", "get_list"),
        ("POST", r"/contactLists", "post_contact_list"),
        ("GET", r"/tags", "list_tags"),
        ("POST", r"/tags", "create_tag"),
        ("POST", r"/contactTags", "post_contact_tag"),
        ("GET", r"/contacts/(\d+)/contactTags", "list_contact_tags"),
        ("DELETE", r"/contactTags/(\d+)", "delete_contact_tag"),
        ("GET", r"/automations", "list_automations"),
        ("POST", r"/contactAutomations", "post_contact_automation"),
        ("GET", r"/contacts/(\d+)/contactAutomations", "list_contact_automations"),
        ("DELETE", r"/contactAutomations/(\d+)", "delete_contact_automation"),
    ]

    def dispatch(self, req, path):
        for method, pattern, handler in self.ROUTES:
            m = re.fullmatch(pattern, path)
            if m and method == req.method:
                if req.method in ("POST", "PUT"):
                    try:
                        body = req.json()
                    except ValueError:
                        return reply(400, {})  # §3: a generic bad request is 400 {}
                    if not isinstance(body, dict):
                        return reply(400, {})
                    return getattr(self, handler)(req, body, *m.groups())
                return getattr(self, handler)(req, *m.groups())
        return reply(404, {"message": "Not Found"})

    # --- contacts (§2 FIND, UPSERT, create, update) ---------------------------------
    def list_contacts(self, req):
        rows = self.contacts
        if req.q("email") is not None:
            rows = [c for c in rows if c["email"] == req.q("email").strip().lower()]
        return page(req, "contacts", rows)

    def get_contact(self, req, ident):
        c = self.by_id(self.contacts, ident)
        return reply(200, {"contact": c}) if c else not_found("Subscriber", ident)

    def check_contact(self, data):
        """Validates a {"contact": {...}} body: the contact dict, or an error reply."""
        c = data.get("contact")
        if not isinstance(c, dict):
            return None, missing_attribute("contact")
        email = c.get("email")
        if not isinstance(email, str) or not email.strip():
            return None, unprocessable("Contact Email Address is not valid.", "field_missing",
                                       "/data/attributes/email")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email.strip()):
            return None, unprocessable("Contact Email Address is not valid.", "email_invalid",
                                       "/data/attributes/email")
        for fv in c.get("fieldValues") or []:
            if not isinstance(fv, dict) or self.by_id(self.fields, as_id(fv.get("field"))) is None:
                # §4 quirk 6: a wrong field or format gives a generic 422
                return None, unprocessable("Invalid field value", "invalid", "/data/attributes/fieldValues")
        return c, None

    def apply_contact(self, contact, c):
        for key in ("firstName", "lastName", "phone"):
            if isinstance(c.get(key), str):
                contact[key] = c[key]
        contact["udate"] = now()
        values = []
        for fv in c.get("fieldValues") or []:
            field = as_id(fv.get("field"))
            row = next((v for v in self.field_values if v["contact"] == contact["id"] and v["field"] == field), None)
            if row is None:
                row = self.row("fieldValue", contact=contact["id"], field=field)
                self.field_values.append(row)
            row["value"] = str(fv.get("value", ""))
            values.append(row)
        return values

    def new_contact(self, email):
        contact = self.row("contact", email=email.strip().lower(), firstName="", lastName="", phone="")
        self.contacts.append(contact)
        return contact

    def sync_contact(self, req, data):
        """§2 UPSERT and §4 quirk 1: matches on e-mail only; 201 created, 200 updated."""
        c, error = self.check_contact(data)
        if error:
            return error
        contact = self.contact_by_email(c["email"])
        status = 200 if contact else 201
        contact = contact or self.new_contact(c["email"])
        values = self.apply_contact(contact, c)
        return reply(status, {"fieldValues": values, "contact": contact})

    def create_contact(self, req, data):
        c, error = self.check_contact(data)
        if error:
            return error
        if self.contact_by_email(c["email"]):
            return unprocessable("Email address already exists in the system", "duplicate", "/data/attributes/email")
        contact = self.new_contact(c["email"])
        values = self.apply_contact(contact, c)
        return reply(201, {"fieldValues": values, "contact": contact})

    def update_contact(self, req, data, ident):
        contact = self.by_id(self.contacts, ident)
        if contact is None:
            return not_found("Subscriber", ident)
        c = data.get("contact")
        if not isinstance(c, dict):
            return missing_attribute("contact")
        if isinstance(c.get("email"), str) and c["email"].strip():
            contact["email"] = c["email"].strip().lower()
        values = self.apply_contact(contact, c)
        return reply(200, {"fieldValues": values, "contact": contact})

    def list_fields(self, req):
        return page(req, "fields", self.fields)

    # --- lists (§2 LIST+ / LIST-) ----------------------------------------------------
    def list_lists(self, req):
        return page(req, "lists", self.lists)

    def get_list(self, req, ident):
        row = self.by_id(self.lists, ident)
        return reply(200, {"list": row}) if row else not_found("List", ident)

    def relation(self, data, wrapper, *names):
        """The ids of a {"<wrapper>": {name: id, ...}} body, or an error reply."""
        obj = data.get(wrapper)
        if not isinstance(obj, dict):
            return None, missing_attribute(names[0])
        ids = []
        for name in names:
            ident = as_id(obj.get(name))
            if ident is None:
                return None, missing_attribute(name)
            ids.append(ident)
        return ids, None

    def post_contact_list(self, req, data):
        ids, error = self.relation(data, "contactList", "contact", "list")
        if error:
            return error
        contact_id, list_id = ids
        status = as_id(data["contactList"].get("status"))
        if status not in ("1", "2"):
            return unprocessable("Invalid status", "invalid", "/data/attributes/status")
        if self.by_id(self.contacts, contact_id) is None:
            return not_found("Subscriber", contact_id)
        if self.by_id(self.lists, list_id) is None:
            return not_found("List", list_id)
        row = next((r for r in self.contact_lists if r["contact"] == contact_id and r["list"] == list_id), None)
        if row is None:
            row = self.row("contactList", contact=contact_id, list=list_id)
            self.contact_lists.append(row)
        row["status"] = status
        row["sourceid"] = str(data["contactList"].get("sourceid", "0"))
        row["udate"] = now()
        return reply(200, {"contactList": row, "contacts": [self.by_id(self.contacts, contact_id)]})

    # --- tags (§2 tag lookup, create, TAG+, TAG-) ----------------------------------------
    def list_tags(self, req):
        rows = self.tags
        eq = req.q("filters[search][eq]")
        search = req.q("search")
        if eq is not None:
            rows = [t for t in rows if t["tag"].lower() == eq.lower()]
        elif search is not None:
            rows = [t for t in rows if search.lower() in t["tag"].lower()]  # a "contains" match
        return page(req, "tags", rows)

    def create_tag(self, req, data):
        tag = data.get("tag")
        if not isinstance(tag, dict):
            return missing_attribute("tag")
        name = tag.get("tag")
        if not isinstance(name, str) or not name.strip():
            return unprocessable("Tag name is required", "field_missing", "/data/attributes/tag")
        if "," in name:
            return unprocessable("Tag names may not contain commas", "invalid", "/data/attributes/tag")
        if any(t["tag"].lower() == name.lower() for t in self.tags):
            return unprocessable("The tag name already exists", "duplicate", "/data/attributes/tag")
        row = self.row("tag", tag=name, tagType=tag.get("tagType", "contact"),
                       description=tag.get("description", ""))
        self.tags.append(row)
        return reply(201, {"tag": row})

    def post_contact_tag(self, req, data):
        ids, error = self.relation(data, "contactTag", "contact", "tag")
        if error:
            return error
        contact_id, tag_id = ids
        if self.by_id(self.contacts, contact_id) is None:
            return not_found("Subscriber", contact_id)
        if self.by_id(self.tags, tag_id) is None:
            return not_found("Tag", tag_id)
        if any(r["contact"] == contact_id and r["tag"] == tag_id for r in self.contact_tags):
            return unprocessable("The contact already has this tag", "duplicate", "/data/attributes/tag")
        row = self.row("contactTag", contact=contact_id, tag=tag_id)
        row["links"] = {"contact": "/api/3/contactTags/%s/contact" % row["id"],
                        "tag": "/api/3/contactTags/%s/tag" % row["id"]}
        self.contact_tags.append(row)
        return reply(201, {"contactTag": row})

    def list_contact_tags(self, req, contact_id):
        if self.by_id(self.contacts, contact_id) is None:
            return not_found("Subscriber", contact_id)
        return page(req, "contactTags", [r for r in self.contact_tags if r["contact"] == contact_id])

    def delete_contact_tag(self, req, assoc_id):
        row = self.by_id(self.contact_tags, assoc_id)
        if row is None:
            return not_found("SubscriberTag", assoc_id)
        self.contact_tags.remove(row)
        return reply(200, {})

    # --- automations (§2 SEQ+ / SEQ-) ---------------------------------------------------
    def list_automations(self, req):
        return page(req, "automations", self.automations)

    def post_contact_automation(self, req, data):
        ids, error = self.relation(data, "contactAutomation", "contact", "automation")
        if error:
            return error
        contact_id, automation_id = ids
        if self.by_id(self.contacts, contact_id) is None:
            return not_found("Subscriber", contact_id)
        if self.by_id(self.automations, automation_id) is None:
            return not_found("Automation", automation_id)
        if any(r["contact"] == contact_id and r["automation"] == automation_id for r in self.contact_automations):
            return unprocessable("The contact is already in this automation", "duplicate",
                                 "/data/attributes/automation")
        row = self.row("contactAutomation", contact=contact_id, automation=automation_id, status="1")
        self.contact_automations.append(row)
        return reply(201, {"contactAutomation": row})

    def list_contact_automations(self, req, contact_id):
        if self.by_id(self.contacts, contact_id) is None:
            return not_found("Subscriber", contact_id)
        rows = [r for r in self.contact_automations if r["contact"] == contact_id]
        return page(req, "contactAutomations", rows)

    def delete_contact_automation(self, req, assoc_id):
        row = self.by_id(self.contact_automations, assoc_id)
        if row is None:
            return not_found("SubscriberSeries", assoc_id)
        self.contact_automations.remove(row)
        return reply(200, {})


if __name__ == "__main__":
    serve(FakeActiveCampaign())
